/* A tiny TAP producer for qvm's unit tests (run by prove). */
#ifndef QVM_TAP_H
#define QVM_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3), unused)) static int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

__attribute__((format(printf, 1, 2), unused)) static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* is_str(got, expected, name): equal strings, NULL-safe, with a diagnosis. */
#define is_str(got, exp, ...)                                                                      \
	do {                                                                                       \
		const char *g_ = (got), *e_ = (exp);                                               \
		int c_ = (g_ && e_) ? !strcmp(g_, e_) : g_ == e_;                                  \
		if (!ok(c_, __VA_ARGS__))                                                          \
			diag("got '%s', expected '%s'", g_ ? g_ : "(null)", e_ ? e_ : "(null)");   \
	} while (0)

#define is_int(got, exp, ...)                                                                      \
	do {                                                                                       \
		long long g_ = (long long)(got), e_ = (long long)(exp);                            \
		if (!ok(g_ == e_, __VA_ARGS__))                                                    \
			diag("got %lld, expected %lld", g_, e_);                                   \
	} while (0)

static inline int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
