/* Private to lifecycle/: what the two ends of a migration share
 * (migrate.c, the source; receive.c, the destination): the wire between
 * them (mig_wire.c), one JSON object a line, and the bytes of a file
 * after a "data" line. */
#ifndef QVM_LC_MIG_WIRE_H
#define QVM_LC_MIG_WIRE_H

#include "run.h"

/* Chunks of file data on the wire. */
#define LC_WIRE_CHUNK (1u << 20)
/* The longest line of JSON (an offer carries the whole definition). */
#define LC_WIRE_LINE_MAX (LC_VMDEF_JSON_MAX + (64 << 10))

/* One end of the wire: lines and data read from in, written to out. */
typedef struct lc_wire {
	int in, out;
	char *buf; /* read ahead of what was handed out */
	size_t start, len, cap;
	uint64_t bytes_out, bytes_in; /* file data moved */
} lc_wire;

void lc_wire_init(lc_wire *w, int in, int out);
void lc_wire_clear(lc_wire *w);

/* Send msg (consumed) as one line. */
int lc_wire_send(lc_wire *w, json_t *msg, util_err *err);
/* The next line as a JSON object (new reference); -EPIPE when the other
 * end closed. */
int lc_wire_recv(lc_wire *w, json_t **ret, util_err *err);
/* A reply of the other end: {"ok": true, ...} is 0 and *ret (may be
 * NULL) the reply; {"ok": false, "error": MSG} is -EREMOTEIO with MSG. */
int lc_wire_reply(lc_wire *w, json_t **ret, util_err *err);
/* Answer the other end: ok, or the error err holds. */
int lc_wire_answer(lc_wire *w, int r, const util_err *e, json_t *more, util_err *err);

/* Send the file fd holds (size bytes) as "data" lines with their bytes,
 * holes skipped (SEEK_DATA), and an "eof" line. progress (may be NULL) is
 * told the bytes sent so far. */
typedef void (*lc_wire_progress)(void *ud, uint64_t done);
int lc_wire_send_file(lc_wire *w, int fd, uint64_t size, lc_wire_progress progress, void *ud,
                      util_err *err);
/* Receive one into fd (an empty file, made size bytes long first: what
 * was a hole stays one). */
int lc_wire_recv_file(lc_wire *w, int fd, uint64_t size, util_err *err);

/* Source side (migrate.c) and the receiving command (receive.c) are the
 * public lc_vm_migrate() and lc_vm_receive() of lifecycle.h. */

#endif
