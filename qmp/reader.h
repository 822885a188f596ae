/* qmp/reader: the framing reader, private to qmp/ (and its unit tests).
 * Pure: bytes in, whole JSON objects out; no I/O. */
#ifndef QVM_QMP_READER_H
#define QVM_QMP_READER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util/util.h"

/* QEMU writes one JSON object per line, ending in "\r\n" (a bare "\n" is
 * accepted too). Bytes may be fed split anywhere, several messages at once.
 * Empty lines are skipped. A line longer than the cap fails with -EMSGSIZE
 * as soon as it is known to be too long (without waiting for its end nor
 * buffering more than the cap); a
 * line that is not JSON, or JSON that is not an object, fails with -EPROTO.
 * Errors are sticky: the stream cannot be resynchronised, so every later
 * call fails the same way. */
typedef struct qmp_reader {
	char *buf;
	size_t start; /* first byte not yet handed out */
	size_t len;   /* end of the buffered bytes */
	size_t cap;   /* allocated size of buf */
	size_t scan;  /* no '\n' in [start, scan) */
	size_t tail;  /* length of the unterminated last line */
	size_t max;   /* cap on one message, without its line end */
	bool over;    /* a line over the cap follows the buffered ones */
	int error;    /* sticky negative errno, 0 while healthy */
	char errmsg[256];
} qmp_reader;

/* max: the cap on one message in bytes (0: QMP_MAX_MESSAGE). */
void qmp_reader_init(qmp_reader *r, size_t max);

/* Free the buffer; the reader may be initialised again. Accepts a reader
 * that was zeroed or already freed. */
void qmp_reader_free(qmp_reader *r);

/* Append n bytes: 0, or the sticky error. A line over the cap is noticed
 * here, as soon as it passes the cap: the complete messages before it are
 * still returned by qmp_reader_next(), which then fails with -EMSGSIZE (and
 * so does a further feed). */
int qmp_reader_feed(qmp_reader *r, const void *data, size_t n, util_err *err);

/* Take the next complete message: 1 and *ret_msg a new reference to a JSON
 * object; 0 when no complete line is buffered (*ret_msg untouched);
 * -EPROTO or -EMSGSIZE (sticky). */
int qmp_reader_next(qmp_reader *r, json_t **ret_msg, util_err *err);

/* Bytes received but not yet returned as messages (a partial line). */
size_t qmp_reader_pending(const qmp_reader *r);

#endif
