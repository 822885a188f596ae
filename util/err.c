/* The error object: one message with its cause, built on the way up; and
 * the trace sink -v sets. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static int err_vset(util_err *err, int code, const char *fmt, va_list ap)
{
	if (code >= 0)
		code = -EIO;
	if (!err)
		return code;
	err->code = code;
	err->qmp_class[0] = '\0';
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return code;
}

int util_err_set(util_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = err_vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int util_err_errno(util_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = err_vset(err, code, fmt, ap);
	va_end(ap);
	if (err) {
		size_t len = strlen(err->msg);
		snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(-code));
	}
	return code;
}

const char *util_errno_name(int code, char *buf, size_t len)
{
	const char *name;

	if (code < 0)
		code = -code;
	name = code ? strerrorname_np(code) : NULL;
	if (name)
		return name;
	snprintf(buf, len, "%d", code);
	return buf;
}

int util_err_prefix(util_err *err, const char *fmt, ...)
{
	char prefix[1024], old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return -EIO;
	if (err->code >= 0)
		err->code = -EIO;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation of an over-long chain of contexts is acceptable. */
	size_t n = strlen(prefix);
	if (n > sizeof(err->msg) - 1)
		n = sizeof(err->msg) - 1;
	memcpy(err->msg, prefix, n);
	if (old[0] && n + 2 < sizeof(err->msg)) {
		memcpy(err->msg + n, ": ", 2);
		n += 2;
		size_t m = strlen(old);
		if (m > sizeof(err->msg) - 1 - n)
			m = sizeof(err->msg) - 1 - n;
		memcpy(err->msg + n, old, m);
		n += m;
	}
	err->msg[n] = '\0';
	return err->code;
}

void util_err_clear(util_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->qmp_class[0] = '\0';
	err->msg[0] = '\0';
}

static util_trace_fn trace_fn;

void util_trace_set(util_trace_fn fn)
{
	trace_fn = fn;
}

bool util_tracing(void)
{
	return trace_fn != NULL;
}

void util_trace(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (!trace_fn)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line))
		memcpy(line + sizeof(line) - 4, "...", 4);
	trace_fn(line);
}
