/* Memory, strings and string vectors. Allocation failure aborts: a CLI that
 * cannot allocate a few bytes has nothing sensible left to do. */
#include <stdarg.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util.h"

static void *oom(void)
{
	static const char msg[] = "qvm: out of memory\n";

	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing more we can do */
	}
	abort();
}

void *util_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	return p ? p : oom();
}

void *util_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	return p ? p : oom();
}

void *util_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	return q ? q : oom();
}

char *util_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");

	return p ? p : oom();
}

char *util_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? oom() : s;
}

void util_append(char **s, const char *fmt, ...)
{
	va_list ap;
	char *more, *all;

	va_start(ap, fmt);
	if (vasprintf(&more, fmt, ap) < 0)
		oom();
	va_end(ap);
	all = util_xasprintf("%s%s", *s ? *s : "", more);
	free(more);
	free(*s);
	*s = all;
}

bool util_strv_contains(const char *const *v, const char *s)
{
	for (; s && v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

void util_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

size_t util_strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

void util_strv_push_take(util_strv *sv, char *s)
{
	if (sv->n + 2 > sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 16;
		sv->v = util_xrealloc(sv->v, sv->cap * sizeof(char *));
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void util_strv_push(util_strv *sv, const char *s)
{
	util_strv_push_take(sv, util_xstrdup(s));
}

void util_strv_pushf(util_strv *sv, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	va_end(ap);
	util_strv_push_take(sv, s);
}

char **util_strv_steal(util_strv *sv)
{
	char **v = sv->v;

	if (!v)
		v = util_xcalloc(1, sizeof(char *));
	sv->v = NULL;
	sv->n = sv->cap = 0;
	return v;
}

void util_strv_clear(util_strv *sv)
{
	util_strv_free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

bool util_all_digits(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

bool util_streq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

bool util_startswith(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

int64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_crash_point(const char *point)
{
	const char *at = getenv("QVM_CRASH_AT");

	if (at && !strcmp(at, point))
		_exit(99);
}

void util_stop_point(const char *point)
{
	const char *at = getenv("QVM_STOP_AT");

	if (at && !strcmp(at, point))
		raise(SIGSTOP);
}

int util_fail_point(const char *point, util_err *err)
{
	const char *at = getenv("QVM_FAIL_AT");

	if (!at || strcmp(at, point))
		return 0;
	return util_err_set(err, -EIO, "injected failure at '%s' (QVM_FAIL_AT)", point);
}

int util_random_bytes(void *buf, size_t len, util_err *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = getrandom((char *)buf + done, len - done, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return util_err_errno(err, -errno, "cannot read random bytes");
		}
		done += (size_t)n;
	}
	return 0;
}
