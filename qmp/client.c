/* The QMP client: connection set-up, commands matched to replies by id,
 * events to a callback or a queue, fd passing. Every wait is a poll() with a
 * deadline, so a hung QEMU costs its caller a bounded time and nothing more. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "qmp.h"
#include "reader.h"

#define READ_CHUNK 65536
/* Reads per qmp_dispatch() call: 1 MiB, then back to the caller's loop. */
#define DISPATCH_MAX_READS 16

struct qmp_client {
	int fd;
	qmp_reader rd;
	json_t *greeting;   /* the greeting's "QMP" member */
	json_int_t last_id; /* ids are a counter; 1 is qmp_capabilities */
	qmp_event_fn cb;
	void *cb_data;
	json_t *events;   /* queued events, oldest first */
	size_t dropped;   /* events dropped because the queue was full */
	size_t delivered; /* events delivered, for qmp_dispatch()'s count */
	bool busy;        /* reading; callbacks may not re-enter */
	int dead;         /* 0, or the errno that made the connection unusable */
	char dead_msg[sizeof(((util_err *)0)->msg)];
};

typedef enum want_kind { WANT_GREETING, WANT_REPLY, WANT_EVENT } want_kind;

/* What a wait is for; result is a new reference once it has come. */
typedef struct want {
	want_kind kind;
	json_int_t id;
	const char *event;
	json_t *result;
} want;

/* ---- helpers ------------------------------------------------------------- */

static void mark_dead(qmp_client *c, const util_err *err)
{
	if (c->dead)
		return;
	c->dead = err->code < 0 ? err->code : -EIO;
	snprintf(c->dead_msg, sizeof(c->dead_msg), "%s", err->msg);
}

/* A dead client fails at once, with the code and message of the failure
 * that killed it. */
static int fail_dead(const qmp_client *c, util_err *err, const char *what)
{
	return util_err_set(err, c->dead,
	                    "%s: qmp connection unusable after an earlier failure (%s)", what,
	                    c->dead_msg);
}

/* A compact, printable excerpt of a message for error texts. */
static void brief(const json_t *msg, char *out, size_t len)
{
	_cleanup_free_ char *s = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
	size_t n = s ? strlen(s) : 0;

	if (!s) {
		snprintf(out, len, "?");
		return;
	}
	if (n > len - 1)
		snprintf(out, len, "%.*s...", (int)(len - 4), s);
	else
		snprintf(out, len, "%s", s);
}

static int ms_left(int64_t deadline)
{
	int64_t left = deadline - util_now_ms();

	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* ---- events -------------------------------------------------------------- */

static void deliver_event(qmp_client *c, json_t *msg)
{
	c->delivered++;
	if (c->cb) {
		bool was_busy = c->busy;

		c->busy = true;
		c->cb(c, msg, c->cb_data);
		c->busy = was_busy;
		json_decref(msg);
		return;
	}
	if (json_array_size(c->events) >= QMP_EVENT_QUEUE_MAX) {
		json_array_remove(c->events, 0);
		c->dropped++;
	}
	json_array_append_new(c->events, msg);
}

/* ---- reading ------------------------------------------------------------- */

/* Route one message (owned): 1 when it is what w waits for, 0 when it was
 * delivered or dropped, <0 on a protocol error. */
static int handle_message(qmp_client *c, json_t *msg, want *w, util_err *err)
{
	json_t *v;

	if (w && w->kind == WANT_GREETING) {
		v = json_object_get(msg, "QMP");
		if (!json_is_object(v)) {
			char ex[64];

			brief(msg, ex, sizeof(ex));
			json_decref(msg);
			return util_err_set(err, -EPROTO, "expected the qmp greeting, got '%s'",
			                    ex);
		}
		w->result = json_incref(v);
		json_decref(msg);
		return 1;
	}

	v = json_object_get(msg, "event");
	if (v) {
		if (!json_is_string(v)) {
			json_decref(msg);
			return 0;
		}
		util_trace("qmp <- event %s", json_string_value(v));
		if (w && w->kind == WANT_EVENT && !strcmp(json_string_value(v), w->event)) {
			w->result = json_incref(msg);
			if (c->cb)
				deliver_event(c, msg);
			else
				json_decref(msg);
			return 1;
		}
		deliver_event(c, msg);
		return 0;
	}

	if (json_object_get(msg, "return") || json_object_get(msg, "error")) {
		v = json_object_get(msg, "id");
		if (w && w->kind == WANT_REPLY && json_is_integer(v) &&
		    json_integer_value(v) == w->id) {
			w->result = msg;
			return 1;
		}
	}
	/* A reply to a command we gave up on (or sent by someone else), or a
	 * shape this client does not know: nobody waits for it. */
	json_decref(msg);
	return 0;
}

/* Handle the complete messages buffered: 1 as soon as w is satisfied (the
 * rest stays buffered), 0 when the buffer holds no complete message any
 * more, <0 on error. With w NULL, delivers everything. */
static int process_buffered(qmp_client *c, want *w, util_err *err)
{
	for (;;) {
		json_t *msg;
		int r = qmp_reader_next(&c->rd, &msg, err);

		if (r <= 0)
			return r;
		r = handle_message(c, msg, w, err);
		if (r != 0)
			return r;
	}
}

/* QEMU never sends fds; should a peer do so, they are closed rather than
 * leaked into this process. */
static void close_received_fds(struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
}

/* One non-blocking read into the framing reader: >0 bytes read, 0 nothing
 * available, -EPIPE at end of stream, <0 on error. */
static int read_some(qmp_client *c, util_err *err)
{
	char buf[READ_CHUNK];
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * 8)];
	} ctl;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	do {
		mh.msg_control = ctl.b;
		mh.msg_controllen = sizeof(ctl.b);
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		/* A unix socket closed with unread data in it reads as a reset:
		 * QEMU reads commands byte by byte and may exit (after quit)
		 * before it read our trailing newline. For callers both are
		 * "QEMU is gone", so both are -EPIPE. */
		if (errno == ECONNRESET)
			return util_err_set(err, -EPIPE, "qemu closed the qmp connection");
		return util_err_errno(err, -errno, "cannot read from the qmp socket");
	}
	close_received_fds(&mh);
	if (n == 0) {
		if (qmp_reader_pending(&c->rd) > 0)
			return util_err_set(
			        err, -EPIPE,
			        "qemu closed the qmp connection in the middle of a message");
		return util_err_set(err, -EPIPE, "qemu closed the qmp connection");
	}
	int r = qmp_reader_feed(&c->rd, buf, (size_t)n, err);
	return r < 0 ? r : (int)n;
}

/* Read and route messages until w is satisfied (1) or the deadline passes
 * (-ETIMEDOUT, with a message for the caller to replace), or an error. The
 * deadline holds even while data keeps coming (a QEMU flooding events). */
static int pump(qmp_client *c, want *w, int64_t deadline, util_err *err)
{
	bool last_round = false;

	for (;;) {
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		int r, left;

		r = process_buffered(c, w, err);
		if (r != 0)
			return r;
		if (last_round)
			return util_err_set(err, -ETIMEDOUT, "timed out");
		r = read_some(c, err);
		if (r < 0)
			return r;
		left = ms_left(deadline);
		if (r > 0) {
			/* Route what came in, then give up if the time is over. */
			last_round = left == 0;
			continue;
		}
		if (left == 0)
			return util_err_set(err, -ETIMEDOUT, "timed out");
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			return util_err_errno(err, -errno, "cannot poll the qmp socket");
	}
}

/* ---- writing ------------------------------------------------------------- */

/* Write all of data; when fd >= 0 it travels with the first byte. */
static int send_all(qmp_client *c, const char *data, size_t len, int fd, int64_t deadline,
                    util_err *err)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n;

		if (fd >= 0 && off == 0) {
			union {
				struct cmsghdr align;
				char b[CMSG_SPACE(sizeof(int))];
			} ctl;
			struct iovec iov = { (char *)data, len };
			struct msghdr mh = { .msg_iov = &iov,
				             .msg_iovlen = 1,
				             .msg_control = ctl.b,
				             .msg_controllen = sizeof(ctl.b) };
			struct cmsghdr *cm;

			memset(&ctl, 0, sizeof(ctl));
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
			n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		} else {
			n = send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { c->fd, POLLOUT, 0 };
			int left = ms_left(deadline);

			if (left == 0)
				return util_err_set(err, -ETIMEDOUT,
				                    "qemu is not reading the qmp socket");
			if (poll(&pfd, 1, left) < 0 && errno != EINTR)
				return util_err_errno(err, -errno, "cannot poll the qmp socket");
			continue;
		}
		if (errno == EPIPE || errno == ECONNRESET)
			return util_err_set(err, -EPIPE, "qemu closed the qmp connection");
		return util_err_errno(err, -errno, "cannot write to the qmp socket");
	}
	return 0;
}

/* ---- commands ------------------------------------------------------------ */

/* Send one command and wait for its reply until deadline. Fatal errors mark
 * the client dead; a QMP error reply does not. */
static int run_command(qmp_client *c, const char *cmd, json_t *args, int fd, int64_t deadline,
                       int timeout_ms, json_t **ret_return, util_err *err)
{
	_cleanup_json_ json_t *req = NULL, *reply = NULL;
	_cleanup_free_ char *text = NULL, *line = NULL;
	json_int_t id = ++c->last_id;
	want w = { .kind = WANT_REPLY, .id = id };
	util_err drain_err;
	json_t *e;
	int r;

	req = json_pack("{s:s, s:I}", "execute", cmd, "id", (json_int_t)id);
	if (!req)
		return util_err_set(err, -EINVAL, "qmp command name '%s' is not valid utf-8", cmd);
	if (args && json_object_set(req, "arguments", args) < 0)
		return util_err_set(err, -EINVAL, "cannot build qmp command '%s'", cmd);
	text = json_dumps(req, JSON_COMPACT);
	if (!text)
		return util_err_set(err, -EINVAL, "cannot encode qmp command '%s'", cmd);
	line = util_xasprintf("%s\n", text);

	util_trace("qmp -> %s%s", text, fd >= 0 ? " (with an fd)" : "");
	r = send_all(c, line, strlen(line), fd, deadline, err);
	if (r < 0) {
		util_err_prefix(err, "qmp command '%s'", cmd);
		mark_dead(c, err);
		util_trace("qmp <- %s: %s", cmd, err->msg);
		return r;
	}

	r = pump(c, &w, deadline, err);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			util_err_set(err, -ETIMEDOUT,
			             "qmp command '%s': no reply from qemu within %d ms", cmd,
			             timeout_ms);
		else
			util_err_prefix(err, "qmp command '%s'", cmd);
		mark_dead(c, err);
		util_trace("qmp <- %s: %s", cmd, err->msg);
		return r;
	}
	reply = w.result;

	/* Hand out the events that came in the same read as the reply now: a
	 * supervisor's poll() would not wake up for bytes already in our
	 * buffer. */
	if (process_buffered(c, NULL, &drain_err) < 0)
		mark_dead(c, &drain_err);

	e = json_object_get(reply, "error");
	if (e) {
		const char *cls = json_string_value(json_object_get(e, "class"));
		const char *desc = json_string_value(json_object_get(e, "desc"));

		r = util_err_set(err, -EREMOTEIO, "qmp command '%s' failed: %s", cmd,
		                 desc ? desc : "(no description)");
		snprintf(err->qmp_class, sizeof(err->qmp_class), "%s", cls ? cls : "");
		util_trace("qmp <- %s: error %s: %s", cmd, cls ? cls : "?",
		           desc ? desc : "(no description)");
		return r;
	}
	util_trace("qmp <- %s: return", cmd);
	if (ret_return)
		*ret_return = json_incref(json_object_get(reply, "return"));
	return 0;
}

static const char *const quick_cmds[] = {
	"qmp_capabilities", "cont",     "stop",     "system_powerdown", "system_reset",
	"system_wakeup",    "quit",     "getfd",    "closefd",          "add-fd",
	"remove-fd",        "qom-get",  "qom-list", "qom-set",          "set_link",
	"inject-nmi",       "send-key", "balloon",
};
static const char *const job_cmds[] = {
	"blockdev-create", "block-commit",    "block-stream",    "drive-mirror",
	"drive-backup",    "blockdev-mirror", "blockdev-backup", "dump-guest-memory",
};
static const char *const job_prefixes[] = { "snapshot-", "migrate", "block-job-", "job-" };

int qmp_default_timeout_ms(const char *cmd)
{
	if (!cmd)
		return QMP_TIMEOUT_DEVICE_MS;
	if (util_startswith(cmd, "query-") || util_startswith(cmd, "x-query-"))
		return QMP_TIMEOUT_QUICK_MS;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(quick_cmds); i++)
		if (!strcmp(cmd, quick_cmds[i]))
			return QMP_TIMEOUT_QUICK_MS;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(job_cmds); i++)
		if (!strcmp(cmd, job_cmds[i]))
			return QMP_TIMEOUT_JOB_MS;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(job_prefixes); i++)
		if (util_startswith(cmd, job_prefixes[i]))
			return QMP_TIMEOUT_JOB_MS;
	return QMP_TIMEOUT_DEVICE_MS;
}

static int execute_common(qmp_client *c, const char *cmd, json_t *args, int fd, int timeout_ms,
                          json_t **ret_return, util_err *err)
{
	util_err local;
	int r;

	if (!err)
		err = &local;
	if (!c || !cmd || !*cmd)
		return util_err_set(err, -EINVAL, "qmp command without a client or a name");
	if (args && !json_is_object(args))
		return util_err_set(err, -EINVAL, "arguments of qmp command '%s' are not an object",
		                    cmd);
	if (timeout_ms < 0)
		return util_err_set(err, -EINVAL, "negative timeout for qmp command '%s'", cmd);
	if (c->busy)
		return util_err_set(err, -EBUSY,
		                    "qmp command '%s' issued while the client is busy "
		                    "(from an event callback?)",
		                    cmd);
	if (c->dead) {
		char what[128];

		snprintf(what, sizeof(what), "qmp command '%s'", cmd);
		return fail_dead(c, err, what);
	}
	if (timeout_ms == 0)
		timeout_ms = qmp_default_timeout_ms(cmd);

	c->busy = true;
	r = run_command(c, cmd, args, fd, util_now_ms() + timeout_ms, timeout_ms, ret_return, err);
	c->busy = false;
	return r;
}

int qmp_execute(qmp_client *client, const char *cmd, json_t *args, int timeout_ms,
                json_t **ret_return, util_err *err)
{
	return execute_common(client, cmd, args, -1, timeout_ms, ret_return, err);
}

int qmp_execute_with_fd(qmp_client *client, const char *cmd, json_t *args, int fd, int timeout_ms,
                        json_t **ret_return, util_err *err)
{
	/* Checked here: a bad fd would fail sendmsg() before a byte is sent,
	 * and should not cost the connection. */
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return util_err_set(err, -EBADF, "qmp command '%s': cannot pass fd %d: not open",
		                    cmd ? cmd : "?", fd);
	return execute_common(client, cmd, args, fd, timeout_ms, ret_return, err);
}

/* ---- connecting ---------------------------------------------------------- */

static qmp_client *client_new(int fd)
{
	qmp_client *c = util_xcalloc(1, sizeof(*c));

	c->fd = fd;
	qmp_reader_init(&c->rd, 0);
	c->events = json_array();
	if (!c->events)
		abort();
	return c;
}

void qmp_close(qmp_client *client)
{
	if (!client)
		return;
	if (client->fd >= 0)
		close(client->fd);
	qmp_reader_free(&client->rd);
	json_decref(client->greeting);
	json_decref(client->events);
	free(client);
}

/* Greeting, then capabilities negotiation, both before the deadline. */
static int handshake(qmp_client *c, int64_t deadline, int timeout_ms, util_err *err)
{
	want w = { .kind = WANT_GREETING };
	int r;

	r = pump(c, &w, deadline, err);
	if (r == -ETIMEDOUT)
		return util_err_set(
		        err, r,
		        "no qmp greeting from qemu within %d ms "
		        "(qemu is hung or overloaded, or another client holds this monitor)",
		        timeout_ms);
	if (r < 0)
		return util_err_prefix(err, "cannot read the qmp greeting");
	c->greeting = w.result;
	return run_command(c, "qmp_capabilities", NULL, -1, deadline, timeout_ms, NULL, err);
}

static int adopt(int fd, int64_t deadline, int timeout_ms, qmp_client **ret_client, util_err *err)
{
	qmp_client *c = client_new(fd);
	int r;

	r = handshake(c, deadline, timeout_ms, err);
	if (r < 0) {
		qmp_close(c);
		return r;
	}
	*ret_client = c;
	return 0;
}

/* AF_UNIX never returns EINPROGRESS, but EAGAIN when the listener's backlog
 * is full, and offers no poll() event for room in it. A blocking connect
 * with SO_SNDTIMEO makes the kernel itself wait for room, bounded. */
static int connect_full_backlog(int fd, const struct sockaddr_un *sa, const char *path,
                                int64_t deadline, int timeout_ms, util_err *err)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return util_err_errno(err, -errno, "cannot connect to qmp socket '%s'", path);
	for (;;) {
		int left = ms_left(deadline), r, e;
		struct timeval tv = { left / 1000, (left % 1000) * 1000 }, zero = { 0, 0 };

		if (left == 0)
			return util_err_set(err, -ETIMEDOUT,
			                    "cannot connect to qmp socket '%s': no room in its "
			                    "backlog within %d ms",
			                    path, timeout_ms);
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
		    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
			return util_err_errno(err, -errno, "cannot connect to qmp socket '%s'",
			                      path);
		r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
		e = errno;
		if (fcntl(fd, F_SETFL, flags) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof(zero)) < 0)
			return util_err_errno(err, -errno, "cannot connect to qmp socket '%s'",
			                      path);
		if (r == 0)
			return 0;
		if (e != EAGAIN && e != EINTR)
			return util_err_errno(err, -e, "cannot connect to qmp socket '%s'", path);
	}
}

static int connect_deadline(int fd, const struct sockaddr_un *sa, const char *path,
                            int64_t deadline, int timeout_ms, util_err *err)
{
	struct pollfd pfd = { fd, POLLOUT, 0 };
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return 0;
	if (errno == EAGAIN)
		return connect_full_backlog(fd, sa, path, deadline, timeout_ms, err);
	if (errno != EINPROGRESS)
		return util_err_errno(err, -errno, "cannot connect to qmp socket '%s'", path);
	for (;;) {
		int left = ms_left(deadline), r;

		if (left == 0)
			return util_err_set(err, -ETIMEDOUT,
			                    "cannot connect to qmp socket '%s' within %d ms", path,
			                    timeout_ms);
		r = poll(&pfd, 1, left);
		if (r < 0 && errno != EINTR)
			return util_err_errno(err, -errno, "cannot connect to qmp socket '%s'",
			                      path);
		if (r > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return util_err_errno(err, -errno, "cannot connect to qmp socket '%s'", path);
	if (soerr)
		return util_err_errno(err, -soerr, "cannot connect to qmp socket '%s'", path);
	return 0;
}

int qmp_connect_path(const char *path, int timeout_ms, qmp_client **ret_client, util_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	util_err local;
	int64_t deadline;
	int r;

	if (!err)
		err = &local;
	if (!path || !*path)
		return util_err_set(err, -EINVAL, "no qmp socket path");
	if (strlen(path) >= sizeof(sa.sun_path))
		return util_err_set(err, -ENAMETOOLONG,
		                    "qmp socket path '%s' is too long for a unix socket "
		                    "(%zu bytes at most)",
		                    path, sizeof(sa.sun_path) - 1);
	if (timeout_ms < 0)
		return util_err_set(err, -EINVAL, "negative timeout for qmp socket '%s'", path);
	if (timeout_ms == 0)
		timeout_ms = QMP_TIMEOUT_CONNECT_MS;
	deadline = util_now_ms() + timeout_ms;
	memcpy(sa.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return util_err_errno(err, -errno, "cannot create a socket for qmp '%s'", path);
	r = connect_deadline(fd, &sa, path, deadline, timeout_ms, err);
	if (r < 0)
		return r;
	r = adopt(TAKE_FD(fd), deadline, timeout_ms, ret_client, err);
	if (r < 0)
		return util_err_prefix(err, "qmp socket '%s'", path);
	util_trace("qmp connected to '%s'", path);
	return 0;
}

int qmp_connect_fd(int fd, int timeout_ms, qmp_client **ret_client, util_err *err)
{
	_cleanup_close_ int owned = fd;
	int type = 0, flags;
	socklen_t len = sizeof(type);
	util_err local;

	if (!err)
		err = &local;
	if (fd < 0)
		return util_err_set(err, -EBADF, "no qmp fd to adopt");
	if (timeout_ms < 0)
		return util_err_set(err, -EINVAL, "negative timeout for qmp fd %d", fd);
	if (timeout_ms == 0)
		timeout_ms = QMP_TIMEOUT_CONNECT_MS;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return util_err_errno(err, -errno, "cannot use fd %d for qmp", fd);
	if (type != SOCK_STREAM)
		return util_err_set(err, -ENOTSOCK, "cannot use fd %d for qmp: not a stream socket",
		                    fd);
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return util_err_errno(err, -errno, "cannot use fd %d for qmp", fd);
	return adopt(TAKE_FD(owned), util_now_ms() + timeout_ms, timeout_ms, ret_client, err);
}

json_t *qmp_greeting(const qmp_client *client)
{
	return client ? client->greeting : NULL;
}

/* ---- events -------------------------------------------------------------- */

void qmp_set_event_cb(qmp_client *client, qmp_event_fn cb, void *userdata)
{
	bool was_busy;

	if (!client)
		return;
	client->cb = cb;
	client->cb_data = userdata;
	was_busy = client->busy;
	client->busy = true;
	while (client->cb && json_array_size(client->events) > 0) {
		json_t *ev = json_incref(json_array_get(client->events, 0));

		json_array_remove(client->events, 0);
		client->cb(client, ev, client->cb_data);
		json_decref(ev);
	}
	client->busy = was_busy;
}

json_t *qmp_next_event(qmp_client *client)
{
	json_t *ev;

	if (!client || json_array_size(client->events) == 0)
		return NULL;
	ev = json_incref(json_array_get(client->events, 0));
	json_array_remove(client->events, 0);
	return ev;
}

size_t qmp_events_dropped(const qmp_client *client)
{
	return client ? client->dropped : 0;
}

int qmp_wait_event(qmp_client *client, const char *name, int timeout_ms, json_t **ret_event,
                   util_err *err)
{
	want w = { .kind = WANT_EVENT, .event = name };
	util_err local, drain_err;
	char what[128];
	size_t i;
	json_t *ev;
	int r;

	if (!err)
		err = &local;
	if (!client || !name)
		return util_err_set(err, -EINVAL, "qmp event wait without a client or a name");
	if (timeout_ms < 0)
		return util_err_set(err, -EINVAL, "negative timeout for qmp event '%s'", name);
	if (client->busy)
		return util_err_set(err, -EBUSY,
		                    "wait for qmp event '%s' while the client is busy "
		                    "(from an event callback?)",
		                    name);
	json_array_foreach (client->events, i, ev) {
		if (util_streq(json_string_value(json_object_get(ev, "event")), name)) {
			*ret_event = json_incref(ev);
			json_array_remove(client->events, i);
			return 0;
		}
	}
	snprintf(what, sizeof(what), "waiting for qmp event '%s'", name);
	if (client->dead)
		return fail_dead(client, err, what);

	client->busy = true;
	r = pump(client, &w, util_now_ms() + timeout_ms, err);
	if (r > 0 && process_buffered(client, NULL, &drain_err) < 0)
		mark_dead(client, &drain_err);
	client->busy = false;
	if (r == -ETIMEDOUT)
		return util_err_set(err, r, "no qmp event '%s' from qemu within %d ms", name,
		                    timeout_ms);
	if (r < 0) {
		util_err_prefix(err, "%s", what);
		mark_dead(client, err);
		return r;
	}
	*ret_event = w.result;
	return 0;
}

/* ---- supervisor loop ----------------------------------------------------- */

int qmp_fd(const qmp_client *client)
{
	return client ? client->fd : -1;
}

bool qmp_alive(const qmp_client *client)
{
	return client && !client->dead;
}

int qmp_dispatch(qmp_client *client, util_err *err)
{
	util_err local;
	int r;

	if (!err)
		err = &local;
	if (!client)
		return util_err_set(err, -EINVAL, "qmp dispatch without a client");
	if (client->busy)
		return util_err_set(
		        err, -EBUSY,
		        "qmp dispatch while the client is busy (from an event callback?)");
	if (client->dead)
		return fail_dead(client, err, "qmp dispatch");

	client->busy = true;
	client->delivered = 0;
	r = process_buffered(client, NULL, err);
	for (int i = 0; r >= 0 && i < DISPATCH_MAX_READS; i++) {
		r = read_some(client, err);
		if (r <= 0)
			break;
		r = process_buffered(client, NULL, err);
	}
	client->busy = false;
	if (r < 0) {
		mark_dead(client, err);
		return r;
	}
	return (int)client->delivered;
}
