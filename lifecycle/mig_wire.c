/* The wire between the two ends of a migration: one JSON object a line,
 * and after a "data" line as many bytes of a file as it says. It runs over
 * the ssh channel (the source's pipes to ssh, the destination's stdin and
 * stdout), so it is read with a buffer of its own. */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>

#include "mig_wire.h"

void lc_wire_init(lc_wire *w, int in, int out)
{
	memset(w, 0, sizeof(*w));
	w->in = in;
	w->out = out;
}

void lc_wire_clear(lc_wire *w)
{
	free(w->buf);
	w->buf = NULL;
	w->start = w->len = w->cap = 0;
}

int lc_wire_send(lc_wire *w, json_t *msg, util_err *err)
{
	_cleanup_json_ json_t *m = msg;
	_cleanup_free_ char *s = json_dumps(m, JSON_COMPACT);
	int r;

	if (!s)
		return util_err_set(err, -ENOMEM, "cannot encode a message");
	util_append(&s, "\n");
	r = util_write_all(w->out, s, strlen(s));
	return r < 0 ? util_err_errno(err, r, "the connection broke") : 0;
}

/* Read more into the buffer: -EPIPE at the other end's close. */
static int fill(lc_wire *w, util_err *err)
{
	ssize_t n;

	if (w->start > 0) {
		memmove(w->buf, w->buf + w->start, w->len);
		w->start = 0;
	}
	if (w->len == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64 << 10;
		w->buf = util_xrealloc(w->buf, w->cap);
	}
	do
		n = read(w->in, w->buf + w->len, w->cap - w->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return util_err_errno(err, -errno, "the connection broke");
	if (n == 0)
		return util_err_set(err, -EPIPE, "the connection closed");
	w->len += (size_t)n;
	return 0;
}

int lc_wire_recv(lc_wire *w, json_t **ret, util_err *err)
{
	json_error_t je;
	char *nl;
	json_t *j;

	while (!(nl = w->len ? memchr(w->buf + w->start, '\n', w->len) : NULL)) {
		int r;

		if (w->len > LC_WIRE_LINE_MAX)
			return util_err_set(err, -EBADMSG, "a message is longer than %d bytes",
			                    LC_WIRE_LINE_MAX);
		r = fill(w, err);
		if (r < 0)
			return r;
	}
	j = json_loadb(w->buf + w->start, (size_t)(nl - (w->buf + w->start)), 0, &je);
	w->len -= (size_t)(nl + 1 - (w->buf + w->start));
	w->start = (size_t)(nl + 1 - w->buf);
	if (!json_is_object(j)) {
		json_decref(j);
		return util_err_set(err, -EBADMSG, "a message is not a JSON object: %s", je.text);
	}
	*ret = j;
	return 0;
}

int lc_wire_reply(lc_wire *w, json_t **ret, util_err *err)
{
	_cleanup_json_ json_t *m = NULL;
	int r = lc_wire_recv(w, &m, err);

	if (r < 0)
		return r;
	if (!json_is_true(json_object_get(m, "ok"))) {
		const char *e = json_string_value(json_object_get(m, "error"));

		return util_err_set(err, -EREMOTEIO, "%s", e ? e : "it failed and did not say why");
	}
	if (ret)
		*ret = TAKE_PTR(m);
	return 0;
}

int lc_wire_answer(lc_wire *w, int r, const util_err *e, json_t *more, util_err *err)
{
	json_t *m = json_pack("{s:b}", "ok", r >= 0);

	if (r < 0)
		json_object_set_new(m, "error", json_string(e->msg[0] ? e->msg : strerror(-r)));
	if (more)
		json_object_update_new(m, more);
	return lc_wire_send(w, m, err);
}

/* Send bytes [off, off+len) of fd. */
static int send_extent(lc_wire *w, int fd, uint64_t off, uint64_t len, char *buf,
                       lc_wire_progress progress, void *ud, util_err *err)
{
	while (len > 0) {
		size_t n = len < LC_WIRE_CHUNK ? (size_t)len : LC_WIRE_CHUNK;
		ssize_t got = pread(fd, buf, n, (off_t)off);
		int r;

		if (got < 0)
			return util_err_errno(err, -errno, "cannot read the file");
		if (got == 0)
			return util_err_set(err, -EIO, "the file shrank while it was sent");
		r = lc_wire_send(w,
		                 json_pack("{s:s, s:I, s:I}", "op", "data", "offset",
		                           (json_int_t)off, "len", (json_int_t)got),
		                 err);
		if (r == 0 && (r = util_write_all(w->out, buf, (size_t)got)) < 0)
			return util_err_errno(err, r, "the connection broke");
		if (r < 0)
			return r;
		off += (uint64_t)got;
		len -= (uint64_t)got;
		w->bytes_out += (uint64_t)got;
		if (progress)
			progress(ud, w->bytes_out);
	}
	return 0;
}

int lc_wire_send_file(lc_wire *w, int fd, uint64_t size, lc_wire_progress progress, void *ud,
                      util_err *err)
{
	_cleanup_free_ char *buf = util_xmalloc(LC_WIRE_CHUNK);
	uint64_t off = 0;

	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA), hole;
		int r;

		if (data < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (data < 0)
			data = (off_t)off; /* no SEEK_DATA here: all of it */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		r = send_extent(w, fd, (uint64_t)data, (uint64_t)(hole - data), buf, progress, ud,
		                err);
		if (r < 0)
			return r;
		off = (uint64_t)hole;
	}
	return lc_wire_send(w, json_pack("{s:s}", "op", "eof"), err);
}

/* Take len bytes from the wire into fd at off. */
static int recv_extent(lc_wire *w, int fd, uint64_t off, uint64_t len, util_err *err)
{
	while (len > 0) {
		size_t n;
		ssize_t put;
		int r;

		if (w->len == 0 && (r = fill(w, err)) < 0)
			return r;
		n = w->len < len ? w->len : (size_t)len;
		put = pwrite(fd, w->buf + w->start, n, (off_t)off);
		if (put < 0)
			return util_err_errno(err, -errno, "cannot write the file");
		w->start += (size_t)put;
		w->len -= (size_t)put;
		off += (uint64_t)put;
		len -= (uint64_t)put;
		w->bytes_in += (uint64_t)put;
	}
	return 0;
}

int lc_wire_recv_file(lc_wire *w, int fd, uint64_t size, util_err *err)
{
	if (ftruncate(fd, (off_t)size) < 0)
		return util_err_errno(err, -errno, "cannot size the file");
	for (;;) {
		_cleanup_json_ json_t *m = NULL;
		const char *op;
		uint64_t off, len;
		int r = lc_wire_recv(w, &m, err);

		if (r < 0)
			return r;
		op = json_string_value(json_object_get(m, "op"));
		if (util_streq(op, "eof"))
			return fsync(fd) < 0 ? util_err_errno(err, -errno, "cannot sync the file")
			                     : 0;
		if (!util_streq(op, "data"))
			return util_err_set(err, -EBADMSG, "expected file data, got '%s'",
			                    op ? op : "?");
		off = (uint64_t)json_integer_value(json_object_get(m, "offset"));
		len = (uint64_t)json_integer_value(json_object_get(m, "len"));
		if (off > size || len > size - off)
			return util_err_set(err, -EBADMSG,
			                    "file data at %" PRIu64 "+%" PRIu64
			                    " lies past its end (%" PRIu64 " bytes)",
			                    off, len, size);
		r = recv_extent(w, fd, off, len, err);
		if (r < 0)
			return r;
	}
}
