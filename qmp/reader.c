/* The QMP framing reader: turns a byte stream split anywhere into whole JSON
 * objects, one per line, with a size cap, and no I/O of its own. */
#include <stdarg.h>
#include <string.h>

#include "qmp.h"
#include "reader.h"

void qmp_reader_init(qmp_reader *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max ? max : QMP_MAX_MESSAGE;
}

void qmp_reader_free(qmp_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->start = r->len = r->cap = r->scan = r->tail = 0;
	r->over = false;
}

/* Record a sticky error; the buffer is released at once since the stream is
 * dead (it may hold up to the 10 MiB cap). */
static int reader_fail(qmp_reader *r, util_err *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int reader_fail(qmp_reader *r, util_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
	va_end(ap);
	r->error = code;
	qmp_reader_free(r);
	return util_err_set(err, code, "%s", r->errmsg);
}

static int reader_sticky(const qmp_reader *r, util_err *err)
{
	return util_err_set(err, r->error, "%s", r->errmsg);
}

static int too_big(qmp_reader *r, util_err *err)
{
	return reader_fail(r, err, -EMSGSIZE, "qmp message larger than the %zu bytes cap", r->max);
}

int qmp_reader_feed(qmp_reader *r, const void *data, size_t n, util_err *err)
{
	const char *p = data, *end = p + n, *nl, *line = p;
	size_t tail = r->tail, keep = n;

	if (r->error)
		return reader_sticky(r, err);
	if (r->over)
		return too_big(r, err);
	if (n == 0)
		return 0;

	/* Check the cap before buffering, so a line that never ends cannot make
	 * us hold more than about the cap. A line may be max + 1 bytes when its
	 * last byte is the '\r' of "\r\n"; qmp_reader_next() checks exactly.
	 * The complete lines before an oversized one are kept, so the messages
	 * that came before it are still handed out before the error. */
	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		if (tail + (size_t)(nl - p) > r->max + 1) {
			r->over = true;
			break;
		}
		tail = 0;
		p = nl + 1;
		line = p;
	}
	if (!r->over) {
		tail += (size_t)(end - p);
		if (tail > r->max + 1 || (tail == r->max + 1 && end[-1] != '\r'))
			r->over = true;
	}
	if (r->over) {
		keep = (size_t)(line - (const char *)data);
		tail = 0;
	}

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->len -= r->start;
		r->scan -= r->start;
		r->start = 0;
	}
	if (r->over && keep == 0) {
		/* The oversized line began in earlier feeds: drop its start. */
		r->len -= r->tail;
		if (r->scan > r->len)
			r->scan = r->len;
	}
	if (r->cap - r->len < keep) {
		size_t want = r->len + keep, cap = r->cap ? r->cap : 4096;

		while (cap < want)
			cap *= 2;
		r->buf = util_xrealloc(r->buf, cap);
		r->cap = cap;
	}
	if (keep)
		memcpy(r->buf + r->len, data, keep);
	r->len += keep;
	r->tail = tail;
	return 0;
}

/* A short, printable excerpt of a bad line for the error message. */
static void excerpt(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, m = n < outlen - 4 ? n : outlen - 4;

	for (i = 0; i < m; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
	if (m < n)
		strcpy(out + i, "...");
}

int qmp_reader_next(qmp_reader *r, json_t **ret_msg, util_err *err)
{
	if (r->error)
		return reader_sticky(r, err);

	for (;;) {
		char *line = r->buf + r->start, *nl;
		size_t n;
		json_error_t jerr;
		json_t *msg;
		char ex[40];

		if (r->scan >= r->len)
			return r->over ? too_big(r, err) : 0;
		nl = memchr(r->buf + r->scan, '\n', r->len - r->scan);
		if (!nl) {
			r->scan = r->len;
			return r->over ? too_big(r, err) : 0;
		}
		n = (size_t)(nl - line);
		r->start = r->scan = (size_t)(nl + 1 - r->buf);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;
		if (n > r->max)
			return too_big(r, err);

		msg = json_loadb(line, n, 0, &jerr);
		if (!msg) {
			excerpt(line, n, ex, sizeof(ex));
			return reader_fail(r, err, -EPROTO,
			                   "qmp sent a line that is not json: %s ('%s')", jerr.text,
			                   ex);
		}
		if (!json_is_object(msg)) {
			json_decref(msg);
			excerpt(line, n, ex, sizeof(ex));
			return reader_fail(r, err, -EPROTO,
			                   "qmp sent json that is not an object ('%s')", ex);
		}
		*ret_msg = msg;
		return 1;
	}
}

size_t qmp_reader_pending(const qmp_reader *r)
{
	return r->len - r->start;
}
