/* The QMP client against a fake server — a forked child speaking scripted
 * bytes over a socketpair or a unix socket — for the faults real QEMU will
 * not produce on demand: silence, garbage, odd interleavings, splits, a
 * close mid-reply, oversized messages; plus fd passing checked by inode. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "qmp/qmp.h"
#include "tap.h"

#define GREETING                                                                                   \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "          \
	"\"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n"

/* ---- the fake server (child side) ---------------------------------------
 * Server functions run in the child and _exit() with 0 when everything the
 * client sent was as expected, another status naming the check otherwise. */

typedef void (*server_fn)(int fd);

static void srv_write(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			_exit(0); /* the client went away: its test decides */
		}
		s += w;
		n -= (size_t)w;
	}
}

static void srv_send(int fd, const char *s)
{
	srv_write(fd, s, strlen(s));
}

static void srv_sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void srv_sendf(int fd, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		_exit(90);
	va_end(ap);
	srv_send(fd, s);
	free(s);
}

/* One byte per write, paced, so the client really sees every split. */
static void srv_send_bytewise(int fd, const char *s)
{
	for (; *s; s++) {
		srv_write(fd, s, 1);
		usleep(200);
	}
}

/* Read one command line; the fd passed with its first bytes, if any, goes
 * to *ret_fd together with the bytes that came with it. */
static json_t *srv_read_cmd_fd(int fd, int *ret_fd, char *first, size_t first_len)
{
	char line[65536];
	size_t n = 0;
	bool first_read = true;

	if (ret_fd)
		*ret_fd = -1;
	for (;;) {
		union {
			struct cmsghdr align;
			char b[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct iovec iov = { line + n, first_read ? sizeof(line) - n - 1 : 1 };
		struct msghdr mh = { .msg_iov = &iov,
			             .msg_iovlen = 1,
			             .msg_control = ctl.b,
			             .msg_controllen = sizeof(ctl.b) };
		ssize_t r;
		char *nl;

		/* Peek the first read so it does not swallow a second line. */
		if (first_read) {
			r = recv(fd, line, sizeof(line) - 1, MSG_PEEK);
			if (r <= 0)
				return NULL;
			line[r] = '\0';
			nl = memchr(line, '\n', (size_t)r);
			iov.iov_len = nl ? (size_t)(nl - line + 1) : (size_t)r;
		}
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (r <= 0)
			return NULL;
		if (first_read) {
			struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

			if (cm && cm->cmsg_type == SCM_RIGHTS && ret_fd)
				memcpy(ret_fd, CMSG_DATA(cm), sizeof(int));
			if (first)
				snprintf(first, first_len, "%.*s", (int)r, line);
			first_read = false;
		}
		n += (size_t)r;
		line[n] = '\0';
		if (line[n - 1] == '\n')
			return json_loads(line, 0, NULL);
		if (n >= sizeof(line) - 1)
			_exit(91);
	}
}

static json_t *srv_read_cmd(int fd)
{
	return srv_read_cmd_fd(fd, NULL, NULL, 0);
}

/* Read a command, check its name, return its id. */
static json_int_t srv_expect(int fd, const char *name)
{
	json_t *cmd = srv_read_cmd(fd);
	json_int_t id;

	if (!cmd)
		_exit(92);
	if (!util_streq(json_string_value(json_object_get(cmd, "execute")), name))
		_exit(93);
	if (!json_is_integer(json_object_get(cmd, "id")))
		_exit(94);
	id = json_integer_value(json_object_get(cmd, "id"));
	json_decref(cmd);
	return id;
}

static void srv_reply(int fd, json_int_t id, const char *ret)
{
	srv_sendf(fd, "{\"return\": %s, \"id\": %lld}\r\n", ret, (long long)id);
}

static void srv_handshake(int fd)
{
	srv_send(fd, GREETING);
	srv_reply(fd, srv_expect(fd, "qmp_capabilities"), "{}");
}

/* Stay until the client closes (bounded), so its reads see no early EOF. */
static void srv_wait_eof(int fd)
{
	char buf[4096];

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };

		if (poll(&pfd, 1, 20000) <= 0)
			_exit(95);
		if (read(fd, buf, sizeof(buf)) <= 0)
			return;
	}
}

static pid_t serve_on(int fd, int other, server_fn fn)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGPIPE, SIG_IGN);
		if (other >= 0)
			close(other);
		fn(fd);
		_exit(0);
	}
	return pid;
}

/* Start fn in a child on one end of a socketpair; the other end is the
 * client's. */
static pid_t serve(server_fn fn, int *ret_client_fd)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		exit(2);
	}
	pid = serve_on(sv[1], sv[0], fn);
	close(sv[1]);
	*ret_client_fd = sv[0];
	return pid;
}

/* The child's exit status (killed children count as failures). */
static int reap(pid_t pid, bool kill_it)
{
	int status;

	if (kill_it)
		kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	if (WIFSIGNALED(status))
		return kill_it && WTERMSIG(status) == SIGKILL ? 0 : 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* Connect a client to a fresh fake server; NULL (and a failed test) if the
 * handshake fails. */
static qmp_client *start(server_fn fn, pid_t *ret_pid)
{
	qmp_client *c = NULL;
	util_err err = { 0 };
	int fd, r;

	*ret_pid = serve(fn, &fd);
	r = qmp_connect_fd(fd, 3000, &c, &err);
	if (r < 0) {
		ok(0, "connect to the fake server");
		diag("%s", err.msg);
		return NULL;
	}
	return c;
}

/* ---- scenarios ----------------------------------------------------------- */

static void srv_basic(int fd)
{
	json_t *cmd;
	json_int_t id1, id2;

	srv_handshake(fd);
	id1 = srv_expect(fd, "query-status");
	srv_reply(fd, id1, "{\"status\": \"running\", \"running\": true}");
	cmd = srv_read_cmd(fd);
	if (!cmd || !util_streq(json_string_value(json_object_get(cmd, "execute")), "device_add"))
		_exit(3);
	id2 = json_integer_value(json_object_get(cmd, "id"));
	if (id2 <= id1)
		_exit(4);
	json_t *args = json_object_get(cmd, "arguments");
	if (!util_streq(json_string_value(json_object_get(args, "driver")), "virtio-net-pci") ||
	    !util_streq(json_string_value(json_object_get(args, "id")), "net,0\"x"))
		_exit(5);
	json_decref(cmd);
	srv_reply(fd, id2, "{}");
	/* No arguments member when none are given. */
	cmd = srv_read_cmd(fd);
	if (!cmd || json_object_get(cmd, "arguments"))
		_exit(6);
	srv_reply(fd, json_integer_value(json_object_get(cmd, "id")), "[1, 2]");
	json_decref(cmd);
	srv_wait_eof(fd);
}

static void test_basic(void)
{
	util_err err = { 0 };
	json_t *ret = NULL, *args;
	qmp_client *c;
	pid_t pid;
	int r;

	diag("basic exchange");
	c = start(srv_basic, &pid);
	if (!c) {
		reap(pid, true);
		return;
	}
	ok(qmp_alive(c), "connected and alive");
	json_t *g = qmp_greeting(c);
	is_int(json_integer_value(json_object_get(
	               json_object_get(json_object_get(g, "version"), "qemu"), "minor")),
	       2, "greeting holds the qemu version");
	ok(json_is_array(json_object_get(g, "capabilities")), "and the capabilities");
	is_int(fcntl(qmp_fd(c), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC, "the socket is close-on-exec");
	ok(fcntl(qmp_fd(c), F_GETFL) & O_NONBLOCK, "and non-blocking");

	r = qmp_execute(c, "query-status", NULL, 0, &ret, &err);
	is_int(r, 0, "query-status succeeds");
	is_str(json_string_value(json_object_get(ret, "status")), "running",
	       "the return value is handed back");
	json_decref(ret);
	ret = NULL;

	args = json_pack("{s:s, s:s}", "driver", "virtio-net-pci", "id", "net,0\"x");
	r = qmp_execute(c, "device_add", args, 0, NULL, &err);
	is_int(r, 0, "device_add with arguments, return not wanted");
	is_int(args->refcount, 1, "arguments are borrowed, not stolen");
	json_decref(args);

	r = qmp_execute(c, "query-foo", NULL, 0, &ret, &err);
	ok(r == 0 && json_is_array(ret) && json_array_size(ret) == 2,
	   "a non-object return value comes back as is");
	json_decref(ret);

	args = json_integer(3);
	r = qmp_execute(c, "x", args, 0, NULL, &err);
	is_int(r, -EINVAL, "non-object arguments are refused");
	json_decref(args);
	r = qmp_execute(c, "", NULL, 0, NULL, &err);
	is_int(r, -EINVAL, "an empty command name is refused");
	r = qmp_execute(c, "x", NULL, -1, NULL, &err);
	is_int(r, -EINVAL, "a negative timeout is refused");
	ok(qmp_alive(c), "caller mistakes do not kill the connection");
	qmp_close(c);
	is_int(reap(pid, false), 0, "the server saw the expected commands");
}

static void srv_silent(int fd)
{
	srv_wait_eof(fd);
}

static void srv_garbage_greeting(int fd)
{
	srv_send(fd, "Welcome to QEMU!\r\n");
	srv_wait_eof(fd);
}

static void srv_not_a_greeting(int fd)
{
	srv_send(fd, "{\"return\": {}, \"id\": 1}\r\n");
	srv_wait_eof(fd);
}

static void srv_close_at_once(int fd)
{
	(void)fd;
}

static void srv_caps_refused(int fd)
{
	srv_send(fd, GREETING);
	srv_sendf(fd,
	          "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities "
	          "negotiation is already complete, command ignored\"}, \"id\": %lld}\r\n",
	          (long long)srv_expect(fd, "qmp_capabilities"));
	srv_wait_eof(fd);
}

static int connect_fake(server_fn fn, int timeout_ms, util_err *err, int64_t *ret_elapsed,
                        pid_t *ret_pid)
{
	qmp_client *c = NULL;
	int fd, r;
	int64_t t0;

	*ret_pid = serve(fn, &fd);
	t0 = util_now_ms();
	r = qmp_connect_fd(fd, timeout_ms, &c, err);
	*ret_elapsed = util_now_ms() - t0;
	ok(r < 0 ? c == NULL : c != NULL, "client handed out only on success");
	qmp_close(c);
	return r;
}

static void test_handshake_faults(void)
{
	util_err err = { 0 };
	int64_t ms;
	pid_t pid;
	int r;

	diag("handshake faults");
	r = connect_fake(srv_silent, 300, &err, &ms, &pid);
	is_int(r, -ETIMEDOUT, "no greeting: -ETIMEDOUT");
	ok(ms >= 295, "not before the timeout (%lld ms for 300)", (long long)ms);
	ok(strstr(err.msg, "greeting") != NULL, "message: %s", err.msg);
	reap(pid, true);

	r = connect_fake(srv_garbage_greeting, 3000, &err, &ms, &pid);
	is_int(r, -EPROTO, "garbage greeting: -EPROTO");
	ok(strstr(err.msg, "Welcome") != NULL, "message shows the garbage: %s", err.msg);
	reap(pid, true);

	r = connect_fake(srv_not_a_greeting, 3000, &err, &ms, &pid);
	is_int(r, -EPROTO, "a first message that is not a greeting: -EPROTO");
	ok(strstr(err.msg, "greeting") != NULL, "message: %s", err.msg);
	reap(pid, true);

	r = connect_fake(srv_close_at_once, 3000, &err, &ms, &pid);
	is_int(r, -EPIPE, "closed before the greeting: -EPIPE");
	ok(strstr(err.msg, "closed") != NULL, "message: %s", err.msg);
	reap(pid, true);

	r = connect_fake(srv_caps_refused, 3000, &err, &ms, &pid);
	is_int(r, -EREMOTEIO, "capabilities refused: -EREMOTEIO");
	is_str(err.qmp_class, "CommandNotFound", "with the class");
	reap(pid, true);

	/* The fd is taken even on failure. */
	{
		int p[2];

		if (pipe2(p, O_CLOEXEC) == 0) {
			qmp_client *c = NULL;

			r = qmp_connect_fd(p[0], 100, &c, &err);
			is_int(r, -ENOTSOCK, "a pipe is not a qmp socket: -ENOTSOCK");
			ok(fcntl(p[0], F_GETFD) < 0 && errno == EBADF, "and its fd was closed");
			close(p[1]);
		}
		int dg = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		r = qmp_connect_fd(dg, 100, NULL, &err);
		is_int(r, -ENOTSOCK, "a datagram socket is refused too");
		ok(fcntl(dg, F_GETFD) < 0, "and closed");
		r = qmp_connect_fd(-1, 100, NULL, NULL);
		is_int(r, -EBADF, "fd -1 is -EBADF (NULL err is fine)");
	}
}

static void srv_event_before_caps(int fd)
{
	json_int_t id;

	srv_send(fd, GREETING);
	id = srv_expect(fd, "qmp_capabilities");
	srv_send(fd,
	         "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\r\n");
	srv_send(fd, "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 2, \"microseconds\": 0}}"
	             "\r\n");
	srv_reply(fd, id, "{}");
	srv_wait_eof(fd);
}

typedef struct seen {
	char names[64][32];
	int n;
	int busy_code;
	qmp_client *client;
} seen;

static void record_event(qmp_client *client, json_t *event, void *userdata)
{
	seen *s = userdata;

	if (s->n < 64)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s",
		         json_string_value(json_object_get(event, "event")));
	s->n++;
	if (s->client == client) {
		util_err err;

		s->busy_code = qmp_execute(client, "query-status", NULL, 0, NULL, &err);
	}
}

static void test_event_before_caps(void)
{
	seen s = { 0 };
	qmp_client *c;
	json_t *ev;
	pid_t pid;

	diag("events before the capabilities reply");
	c = start(srv_event_before_caps, &pid);
	if (c) {
		ev = qmp_next_event(c);
		is_str(json_string_value(json_object_get(ev, "event")), "STOP",
		       "the event before the capabilities reply is queued");
		json_decref(ev);
		ev = qmp_next_event(c);
		is_str(json_string_value(json_object_get(ev, "event")), "RESUME", "in order");
		json_decref(ev);
		ok(qmp_next_event(c) == NULL, "then the queue is empty");
		qmp_close(c);
	}
	reap(pid, true);

	c = start(srv_event_before_caps, &pid);
	if (c) {
		qmp_set_event_cb(c, record_event, &s);
		ok(s.n == 2 && !strcmp(s.names[0], "STOP") && !strcmp(s.names[1], "RESUME"),
		   "a callback set later gets the queued events at once, in order");
		ok(qmp_next_event(c) == NULL, "and they left the queue");
		qmp_close(c);
	}
	reap(pid, true);
}

static void srv_unknown_id(int fd)
{
	json_int_t id;

	srv_handshake(fd);
	id = srv_expect(fd, "query-status");
	srv_sendf(fd, "{\"return\": {\"which\": \"stale\"}, \"id\": %lld}\r\n", (long long)id - 1);
	srv_sendf(fd, "{\"return\": {\"which\": \"future\"}, \"id\": %lld}\r\n",
	          (long long)id + 100);
	srv_sendf(fd, "{\"return\": {\"which\": \"string\"}, \"id\": \"%lld\"}\r\n", (long long)id);
	srv_send(fd, "{\"return\": {\"which\": \"none\"}}\r\n");
	srv_sendf(fd,
	          "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}, \"id\": %lld}\r\n",
	          (long long)id + 1);
	srv_send(fd, "{\"something\": \"else\"}\r\n");
	usleep(50000);
	srv_sendf(fd, "{\"return\": {\"which\": \"right\"}, \"id\": %lld}\r\n", (long long)id);
	srv_wait_eof(fd);
}

static void test_unknown_id(void)
{
	util_err err = { 0 };
	json_t *ret = NULL;
	qmp_client *c;
	pid_t pid;
	int r;

	diag("replies with unknown ids");
	c = start(srv_unknown_id, &pid);
	if (c) {
		r = qmp_execute(c, "query-status", NULL, 2000, &ret, &err);
		is_int(r, 0, "replies with other ids are dropped");
		is_str(json_string_value(json_object_get(ret, "which")), "right",
		       "and the one with our id is taken");
		json_decref(ret);
		ok(qmp_next_event(c) == NULL, "nothing dropped ends up as an event");
		ok(qmp_alive(c), "the connection is fine");
		qmp_close(c);
	}
	reap(pid, true);
}

static void srv_bytewise(int fd)
{
	json_int_t id;
	char buf[256];

	srv_send_bytewise(fd, GREETING);
	id = srv_expect(fd, "qmp_capabilities");
	snprintf(buf, sizeof(buf), "{\"return\": {}, \"id\": %lld}\r\n", (long long)id);
	srv_send_bytewise(fd, buf);
	id = srv_expect(fd, "query-version");
	srv_send_bytewise(fd, "{\"event\": \"RTC_CHANGE\", \"data\": {\"offset\": 1}}\r\n");
	snprintf(buf, sizeof(buf),
	         "{\"return\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, "
	         "\"package\": \"\"}, \"id\": %lld}\r\n",
	         (long long)id);
	srv_send_bytewise(fd, buf);
	srv_wait_eof(fd);
}

static void test_bytewise(void)
{
	util_err err = { 0 };
	json_t *ret = NULL, *ev;
	qmp_client *c;
	pid_t pid;
	int r;

	diag("everything split byte by byte");
	c = start(srv_bytewise, &pid);
	if (c) {
		ok(1, "greeting and capabilities reply byte by byte");
		r = qmp_execute(c, "query-version", NULL, 0, &ret, &err);
		is_int(r, 0, "a reply byte by byte");
		is_int(json_integer_value(json_object_get(json_object_get(ret, "qemu"), "major")),
		       7, "intact");
		json_decref(ret);
		ev = qmp_next_event(c);
		is_str(json_string_value(json_object_get(ev, "event")), "RTC_CHANGE",
		       "the event before it, byte by byte, is queued");
		json_decref(ev);
		qmp_close(c);
	}
	reap(pid, true);
}

static void srv_one_write(int fd)
{
	json_int_t id;
	char buf[1024];

	srv_handshake(fd);
	id = srv_expect(fd, "query-status");
	snprintf(buf, sizeof(buf),
	         "{\"event\": \"A\"}\r\n"
	         "{\"return\": {\"which\": \"stale\"}, \"id\": %lld}\r\n"
	         "{\"return\": {\"which\": \"right\"}, \"id\": %lld}\r\n"
	         "{\"event\": \"B\"}\r\n"
	         "{\"return\": {\"which\": \"late\"}, \"id\": %lld}\r\n"
	         "{\"event\": \"C\"}\n",
	         (long long)id + 7, (long long)id, (long long)id + 9);
	srv_send(fd, buf);
	id = srv_expect(fd, "query-kvm");
	srv_reply(fd, id, "{\"enabled\": false}");
	srv_wait_eof(fd);
}

static void test_one_write(void)
{
	util_err err = { 0 };
	json_t *ret = NULL, *ev;
	qmp_client *c;
	pid_t pid;
	int r;

	diag("several messages in one write");
	c = start(srv_one_write, &pid);
	if (c) {
		r = qmp_execute(c, "query-status", NULL, 0, &ret, &err);
		is_int(r, 0, "the right reply among several in one write");
		is_str(json_string_value(json_object_get(ret, "which")), "right", "is taken");
		json_decref(ret);
		const char *want[] = { "A", "B", "C" };
		for (int i = 0; i < 3; i++) {
			ev = qmp_next_event(c);
			is_str(json_string_value(json_object_get(ev, "event")), want[i],
			       "event %s, before or after the reply, is queued", want[i]);
			json_decref(ev);
		}
		/* Nothing is left behind in the client's buffer: a poll() loop
		 * would never see it. */
		is_int(qmp_dispatch(c, &err), 0, "dispatch afterwards finds nothing");
		r = qmp_execute(c, "query-kvm", NULL, 0, &ret, &err);
		ok(r == 0 && json_is_false(json_object_get(ret, "enabled")),
		   "the next command gets its own reply");
		json_decref(ret);
		qmp_close(c);
	}
	reap(pid, true);
}

static void srv_close_mid_reply(int fd)
{
	srv_handshake(fd);
	srv_expect(fd, "query-status");
	srv_send(fd,
	         "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false}}\r\n{\"return\": {\"sta");
	/* exit closes the socket */
}

static void srv_close_no_reply(int fd)
{
	srv_handshake(fd);
	srv_expect(fd, "quit");
}

/* Exit with part of the command unread: the kernel reports a reset. */
static void srv_close_unread(int fd)
{
	char buf[4];

	srv_handshake(fd);
	if (read(fd, buf, sizeof(buf)) <= 0)
		_exit(3);
}

static void test_close_mid_reply(void)
{
	util_err err = { 0 };
	json_t *ret = NULL, *ev;
	qmp_client *c;
	pid_t pid;
	int r;

	diag("qemu closes the socket");
	c = start(srv_close_mid_reply, &pid);
	if (c) {
		r = qmp_execute(c, "query-status", NULL, 5000, &ret, &err);
		is_int(r, -EPIPE, "closed mid-reply: -EPIPE");
		ok(strstr(err.msg, "query-status") && strstr(err.msg, "middle of a message"),
		   "message: %s", err.msg);
		ok(ret == NULL, "no return value");
		ok(!qmp_alive(c), "the client is dead");
		ev = qmp_next_event(c);
		is_str(json_string_value(json_object_get(ev, "event")), "SHUTDOWN",
		       "the event sent before the close is still readable");
		json_decref(ev);
		/* "earlier failure": refused at once, without touching the
		 * socket (a new attempt would report the close itself) */
		r = qmp_execute(c, "query-status", NULL, 5000, &ret, &err);
		is_int(r, -EPIPE, "the next command fails with the same code");
		ok(strstr(err.msg, "earlier failure") && strstr(err.msg, "middle of a message"),
		   "without trying again, quoting the first failure: %s", err.msg);
		is_int(qmp_dispatch(c, &err), -EPIPE, "so does dispatch");
		r = qmp_wait_event(c, "X", 1000, &ev, &err);
		is_int(r, -EPIPE, "and waiting for an event");
		qmp_close(c);
	}
	reap(pid, false);

	c = start(srv_close_no_reply, &pid);
	if (c) {
		r = qmp_execute(c, "quit", NULL, 0, NULL, &err);
		is_int(r, -EPIPE, "closed without a reply: -EPIPE");
		ok(strstr(err.msg, "closed the qmp connection") != NULL, "message: %s", err.msg);
		qmp_close(c);
	}
	reap(pid, false);

	c = start(srv_close_unread, &pid);
	if (c) {
		r = qmp_execute(c, "quit", NULL, 0, NULL, &err);
		is_int(r, -EPIPE, "closed with our command unread (a reset): -EPIPE too");
		ok(strstr(err.msg, "closed the qmp connection") != NULL, "message: %s", err.msg);
		qmp_close(c);
	}
	reap(pid, false);
}

/* Exits 7 if anything arrives after the one command: a dead client must
 * not send. */
static void srv_never_reply(int fd)
{
	char buf[4096];

	srv_handshake(fd);
	srv_expect(fd, "device_del");
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, 20000) <= 0)
			_exit(95);
		n = read(fd, buf, sizeof(buf));
		if (n == 0)
			return;
		if (n > 0)
			_exit(7);
	}
}

static void test_timeout(void)
{
	util_err err = { 0 };
	json_t *args = json_pack("{s:s}", "id", "disk1"), *ret = NULL;
	qmp_client *c;
	int64_t t0, ms;
	pid_t pid;
	int r;

	diag("a reply that never comes");
	c = start(srv_never_reply, &pid);
	if (c) {
		t0 = util_now_ms();
		r = qmp_execute(c, "device_del", args, 300, &ret, &err);
		ms = util_now_ms() - t0;
		is_int(r, -ETIMEDOUT, "no reply: -ETIMEDOUT");
		ok(ms >= 295, "not before the given timeout (%lld ms for 300)", (long long)ms);
		ok(strstr(err.msg, "device_del") && strstr(err.msg, "300 ms"), "message: %s",
		   err.msg);
		ok(!qmp_alive(c), "the client is dead");
		r = qmp_execute(c, "query-status", NULL, 0, &ret, &err);
		is_int(r, -ETIMEDOUT, "further calls fail with the same code");
		ok(strstr(err.msg, "earlier failure") && strstr(err.msg, "device_del"),
		   "without waiting again, quoting the first failure: %s", err.msg);
		qmp_close(c);
		is_int(reap(pid, false), 0, "qemu never saw the later command");
	} else {
		reap(pid, true);
	}
	json_decref(args);
}

/* Events without end, never a reply: the deadline must still hold. */
static void srv_flood_forever(int fd)
{
	static char burst[64 * 1024];
	const char ev[] = "{\"event\": \"RTC_CHANGE\", \"data\": {\"offset\": 1}}\r\n";
	size_t n = 0;
	int64_t end;

	while (n + sizeof(ev) < sizeof(burst)) {
		memcpy(burst + n, ev, sizeof(ev) - 1);
		n += sizeof(ev) - 1;
	}
	srv_handshake(fd);
	srv_expect(fd, "query-status");
	end = util_now_ms() + 20000;
	while (util_now_ms() < end)
		srv_write(fd, burst, n); /* exits when the client closes */
}

static void test_timeout_under_flood(void)
{
	util_err err = { 0 };
	qmp_client *c;
	int64_t t0, ms;
	pid_t pid;
	int r;

	diag("a reply that never comes while events flood in");
	c = start(srv_flood_forever, &pid);
	if (c) {
		t0 = util_now_ms();
		r = qmp_execute(c, "query-status", NULL, 300, NULL, &err);
		ms = util_now_ms() - t0;
		is_int(r, -ETIMEDOUT, "-ETIMEDOUT although data keeps arriving");
		ok(ms >= 295, "not before the timeout (%lld ms for 300)", (long long)ms);
		ok(qmp_events_dropped(c) > 0, "the queue stayed bounded (%zu dropped)",
		   qmp_events_dropped(c));
		qmp_close(c);
	}
	reap(pid, true);
}

static void srv_error_reply(int fd)
{
	srv_handshake(fd);
	srv_sendf(fd,
	          "{\"id\": %lld, \"error\": {\"class\": \"DeviceNotFound\", "
	          "\"desc\": \"Device 'nope' not found\"}}\r\n",
	          (long long)srv_expect(fd, "device_del"));
	srv_sendf(fd, "{\"error\": {}, \"id\": %lld}\r\n", (long long)srv_expect(fd, "stop"));
	srv_reply(fd, srv_expect(fd, "cont"), "{}");
	srv_wait_eof(fd);
}

static void test_error_reply(void)
{
	util_err err = { 0 };
	json_t *args = json_pack("{s:s}", "id", "nope"), *ret = NULL;
	qmp_client *c;
	pid_t pid;
	int r;

	diag("error replies");
	c = start(srv_error_reply, &pid);
	if (c) {
		r = qmp_execute(c, "device_del", args, 0, &ret, &err);
		is_int(r, -EREMOTEIO, "an error reply is -EREMOTEIO");
		is_int(err.code, -EREMOTEIO, "in the error object too");
		is_str(err.qmp_class, "DeviceNotFound", "the class is preserved");
		ok(strstr(err.msg, "Device 'nope' not found") && strstr(err.msg, "device_del"),
		   "the message names the command and holds the desc: %s", err.msg);
		ok(ret == NULL, "ret_return untouched");
		util_err_prefix(&err, "cannot detach 'nope'");
		is_str(err.qmp_class, "DeviceNotFound", "the class survives util_err_prefix");
		r = qmp_execute(c, "stop", NULL, 0, NULL, &err);
		ok(r == -EREMOTEIO && err.qmp_class[0] == '\0',
		   "an error without class or desc is still -EREMOTEIO (%s)", err.msg);
		ok(qmp_alive(c), "the connection stays usable");
		r = qmp_execute(c, "cont", NULL, 0, NULL, &err);
		is_int(r, 0, "the next command works");
		qmp_close(c);
	}
	json_decref(args);
	reap(pid, true);
}

static void srv_oversized(int fd)
{
	static char chunk[65536];

	srv_handshake(fd);
	srv_expect(fd, "query-block");
	srv_send(fd, "{\"event\": \"BLOCK_IO_ERROR\"}\r\n{\"return\": \"");
	memset(chunk, 'a', sizeof(chunk));
	for (size_t sent = 0; sent <= QMP_MAX_MESSAGE; sent += sizeof(chunk))
		srv_write(fd, chunk, sizeof(chunk));
	srv_send(fd, "\"}\r\n");
	srv_wait_eof(fd);
}

static void test_oversized(void)
{
	util_err err = { 0 };
	json_t *ret = NULL, *ev;
	qmp_client *c;
	pid_t pid;
	int r;

	diag("an oversized message");
	c = start(srv_oversized, &pid);
	if (c) {
		r = qmp_execute(c, "query-block", NULL, 10000, &ret, &err);
		is_int(r, -EMSGSIZE, "a reply over 10 MiB is -EMSGSIZE");
		ok(strstr(err.msg, "cap") != NULL, "message: %s", err.msg);
		ok(!qmp_alive(c), "the connection is unusable");
		ev = qmp_next_event(c);
		is_str(json_string_value(json_object_get(ev, "event")), "BLOCK_IO_ERROR",
		       "the event before it was delivered");
		json_decref(ev);
		qmp_close(c);
	}
	reap(pid, true);
}

static char fd_test_path[64];

static void srv_getfd(int fd)
{
	char first[64];
	struct stat want, got;
	int passed;
	json_t *cmd;

	srv_handshake(fd);
	cmd = srv_read_cmd_fd(fd, &passed, first, sizeof(first));
	if (!cmd)
		_exit(3);
	if (passed < 0)
		_exit(4); /* no fd came with the command's first bytes */
	if (!util_startswith(first, "{\"execute\":\"getfd\""))
		_exit(5);
	if (!util_streq(
	            json_string_value(json_object_get(json_object_get(cmd, "arguments"), "fdname")),
	            "disk0"))
		_exit(6);
	if (stat(fd_test_path, &want) < 0 || fstat(passed, &got) < 0)
		_exit(7);
	if (want.st_dev != got.st_dev || want.st_ino != got.st_ino)
		_exit(8); /* not the same file */
	srv_reply(fd, json_integer_value(json_object_get(cmd, "id")), "{}");
	json_decref(cmd);
	close(passed);

	/* add-fd as well, the other command that takes an fd. */
	cmd = srv_read_cmd_fd(fd, &passed, first, sizeof(first));
	if (!cmd || passed < 0 || !util_startswith(first, "{\"execute\":\"add-fd\""))
		_exit(9);
	if (fstat(passed, &got) < 0 || want.st_ino != got.st_ino)
		_exit(10);
	srv_sendf(fd, "{\"return\": {\"fdset-id\": 1, \"fd\": 42}, \"id\": %lld}\r\n",
	          (long long)json_integer_value(json_object_get(cmd, "id")));
	json_decref(cmd);
	srv_wait_eof(fd);
}

static void test_fd_passing(void)
{
	util_err err = { 0 };
	json_t *args, *ret = NULL;
	qmp_client *c;
	pid_t pid;
	int fd, r;

	diag("fd passing");
	snprintf(fd_test_path, sizeof(fd_test_path), "/tmp/qvm-test-qmp-fd.XXXXXX");
	fd = mkostemp(fd_test_path, O_CLOEXEC);
	if (fd < 0) {
		ok(0, "mkostemp");
		return;
	}
	c = start(srv_getfd, &pid);
	if (c) {
		r = qmp_execute_with_fd(c, "getfd", NULL, -1, 0, NULL, &err);
		is_int(r, -EBADF, "fd -1 is refused");
		r = qmp_execute_with_fd(c, "getfd", NULL, 9999, 0, NULL, &err);
		is_int(r, -EBADF, "a closed fd is refused");
		ok(qmp_alive(c), "without costing the connection");

		args = json_pack("{s:s}", "fdname", "disk0");
		r = qmp_execute_with_fd(c, "getfd", args, fd, 0, NULL, &err);
		is_int(r, 0, "getfd with an fd");
		json_decref(args);
		ok(fcntl(fd, F_GETFD) >= 0, "the caller's fd stays open (borrowed)");

		args = json_pack("{s:i}", "fdset-id", 1);
		r = qmp_execute_with_fd(c, "add-fd", args, fd, 0, &ret, &err);
		is_int(r, 0, "add-fd with an fd");
		is_int(json_integer_value(json_object_get(ret, "fd")), 42, "returns its result");
		json_decref(ret);
		json_decref(args);
		qmp_close(c);
	}
	is_int(reap(pid, false), 0,
	       "the server received the same file (same inode) with the command's first bytes");
	close(fd);
	unlink(fd_test_path);
}

static void srv_events(int fd)
{
	srv_handshake(fd);
	usleep(20000);
	srv_send(fd, "{\"event\": \"A\"}\r\n");
	usleep(20000);
	srv_send(fd,
	         "{\"event\": \"B\"}\r\n{\"event\": \"C\"}\r\n{\"return\": {}, \"id\": 77}\r\n");
	usleep(20000);
	srv_send(fd, "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
	             "\"guest-shutdown\"}}\r\n");
}

static void test_dispatch(void)
{
	util_err err = { 0 };
	seen s = { 0 };
	qmp_client *c;
	int64_t deadline;
	pid_t pid;
	int r = 0, total = 0, rounds = 0;
	json_t *ev;

	diag("a supervisor's poll loop");
	c = start(srv_events, &pid);
	if (c) {
		qmp_set_event_cb(c, record_event, &s);
		deadline = util_now_ms() + 5000;
		while (util_now_ms() < deadline) {
			struct pollfd pfd = { qmp_fd(c), POLLIN, 0 };

			if (poll(&pfd, 1, 1000) <= 0)
				continue;
			r = qmp_dispatch(c, &err);
			rounds++;
			if (r < 0)
				break;
			total += r;
		}
		is_int(r, -EPIPE, "dispatch returns -EPIPE at the end of the stream");
		ok(s.n == 4 && !strcmp(s.names[0], "A") && !strcmp(s.names[1], "B") &&
		           !strcmp(s.names[2], "C") && !strcmp(s.names[3], "SHUTDOWN"),
		   "the callback saw every event in order (%d events, %d rounds)", s.n, rounds);
		ok(total >= 3 && total <= 4, "dispatch counted them (%d)", total);
		ok(!qmp_alive(c), "the client is dead afterwards");
		is_int(qmp_dispatch(c, &err), -EPIPE, "and dispatch keeps saying so");
		qmp_close(c);
	}
	reap(pid, false);

	/* Without a callback: the queue, and the last event is not lost to
	 * the close right behind it. */
	c = start(srv_events, &pid);
	if (c) {
		deadline = util_now_ms() + 5000;
		while (util_now_ms() < deadline) {
			struct pollfd pfd = { qmp_fd(c), POLLIN, 0 };

			if (poll(&pfd, 1, 1000) > 0 && (r = qmp_dispatch(c, &err)) < 0)
				break;
		}
		is_int(r, -EPIPE, "queue mode: -EPIPE at the end");
		int n = 0;
		const char *last = NULL;
		while ((ev = qmp_next_event(c))) {
			n++;
			if (util_streq(json_string_value(json_object_get(ev, "event")), "SHUTDOWN"))
				last = "SHUTDOWN";
			json_decref(ev);
		}
		ok(n == 4 && last, "all 4 events queued, SHUTDOWN included (%d)", n);
		qmp_close(c);
	}
	reap(pid, false);
}

static void srv_wait(int fd)
{
	srv_handshake(fd);
	srv_reply(fd, srv_expect(fd, "system_powerdown"), "{}");
	srv_send(fd, "{\"event\": \"RTC_CHANGE\", \"data\": {\"offset\": 0}}\r\n");
	srv_send(fd, "{\"event\": \"POWERDOWN\"}\r\n");
	usleep(100000);
	srv_send(fd, "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
	             "\"guest-shutdown\"}}\r\n");
	srv_reply(fd, srv_expect(fd, "query-status"), "{\"status\": \"shutdown\"}");
	srv_wait_eof(fd);
}

static void test_wait_event(void)
{
	util_err err = { 0 };
	json_t *ev = NULL;
	qmp_client *c;
	int64_t t0, ms;
	pid_t pid;
	int r;

	diag("waiting for events");
	c = start(srv_wait, &pid);
	if (c) {
		r = qmp_execute(c, "system_powerdown", NULL, 0, NULL, &err);
		is_int(r, 0, "system_powerdown");
		r = qmp_wait_event(c, "SHUTDOWN", 3000, &ev, &err);
		is_int(r, 0, "SHUTDOWN waited for");
		is_str(json_string_value(json_object_get(json_object_get(ev, "data"), "reason")),
		       "guest-shutdown", "with its data");
		json_decref(ev);
		ev = NULL;
		r = qmp_wait_event(c, "POWERDOWN", 0, &ev, &err);
		ok(r == 0 && ev, "an event already queued is taken at once");
		json_decref(ev);
		ev = qmp_next_event(c);
		is_str(json_string_value(json_object_get(ev, "event")), "RTC_CHANGE",
		       "other events stayed queued");
		json_decref(ev);
		ok(qmp_next_event(c) == NULL, "the waited-for ones left the queue");
		ev = NULL;
		t0 = util_now_ms();
		r = qmp_wait_event(c, "NEVER", 200, &ev, &err);
		ms = util_now_ms() - t0;
		is_int(r, -ETIMEDOUT, "an event that does not come: -ETIMEDOUT");
		ok(ms >= 195, "not before the timeout (%lld ms for 200)", (long long)ms);
		ok(strstr(err.msg, "NEVER") != NULL, "message: %s", err.msg);
		ok(ev == NULL, "ret_event untouched");
		ok(qmp_alive(c), "a wait that times out does not kill the connection");
		r = qmp_execute(c, "query-status", NULL, 0, NULL, &err);
		is_int(r, 0, "commands still work");
		is_int(qmp_wait_event(c, "X", -1, &ev, &err), -EINVAL, "negative timeout refused");
		qmp_close(c);
	}
	reap(pid, true);
}

static void srv_flood(int fd)
{
	json_int_t id;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	srv_handshake(fd);
	id = srv_expect(fd, "query-status");
	f = open_memstream(&buf, &len);
	for (int i = 0; i < QMP_EVENT_QUEUE_MAX + 10; i++)
		fprintf(f, "{\"event\": \"E\", \"data\": {\"n\": %d}}\r\n", i);
	fprintf(f, "{\"return\": {}, \"id\": %lld}\r\n", (long long)id);
	fclose(f);
	srv_write(fd, buf, len);
	free(buf);
	srv_wait_eof(fd);
}

static void test_queue_cap(void)
{
	util_err err = { 0 };
	qmp_client *c;
	json_t *ev;
	pid_t pid;
	int n = 0, r;

	diag("the event queue is bounded");
	c = start(srv_flood, &pid);
	if (c) {
		r = qmp_execute(c, "query-status", NULL, 0, NULL, &err);
		is_int(r, 0, "reply after a flood of events");
		is_int(qmp_events_dropped(c), 10, "the 10 oldest beyond the cap were dropped");
		ev = qmp_next_event(c);
		is_int(json_integer_value(json_object_get(json_object_get(ev, "data"), "n")), 10,
		       "the queue starts at the oldest kept");
		json_decref(ev);
		while ((ev = qmp_next_event(c))) {
			n++;
			json_decref(ev);
		}
		is_int(n + 1, QMP_EVENT_QUEUE_MAX, "and holds exactly the cap");
		qmp_close(c);
	}
	reap(pid, true);
}

static void srv_event_during_cmd(int fd)
{
	json_int_t id;

	srv_handshake(fd);
	id = srv_expect(fd, "stop");
	srv_send(fd, "{\"event\": \"STOP\"}\r\n");
	srv_reply(fd, id, "{}");
	srv_wait_eof(fd);
}

static void test_reentrancy(void)
{
	util_err err = { 0 };
	seen s = { 0 };
	qmp_client *c;
	pid_t pid;
	int r;

	diag("callbacks cannot re-enter");
	c = start(srv_event_during_cmd, &pid);
	if (c) {
		s.client = c;
		qmp_set_event_cb(c, record_event, &s);
		r = qmp_execute(c, "stop", NULL, 0, NULL, &err);
		is_int(r, 0, "stop succeeds");
		is_int(s.n, 1, "the event during the command went to the callback");
		is_int(s.busy_code, -EBUSY, "qmp_execute from the callback is -EBUSY");
		ok(qmp_alive(c), "and harmless");
		qmp_close(c);
	}
	reap(pid, true);
}

/* ---- connecting by path -------------------------------------------------- */

static char sock_path[108];

static int listen_on(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0) {
		perror("listen");
		exit(2);
	}
	return fd;
}

static void srv_accept_and_serve(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		_exit(3);
	srv_handshake(fd);
	srv_reply(fd, srv_expect(fd, "query-name"), "{}");
	srv_wait_eof(fd);
}

/* Let the backlog filler wait 300 ms, then accept everything. */
static void srv_accept_late(int lfd)
{
	int filler;

	usleep(300000);
	filler = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (filler < 0)
		_exit(4);
	close(filler);
	srv_accept_and_serve(lfd);
}

static int connect_raw(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static void test_connect_path(void)
{
	util_err err = { 0 };
	char dir[] = "/tmp/qvm-test-qmp.XXXXXX", longpath[200];
	qmp_client *c = NULL;
	int64_t t0, ms;
	pid_t pid;
	int lfd, r, filler;

	diag("connecting by path");
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/qmp.sock", dir);

	lfd = listen_on(sock_path, 4);
	pid = serve_on(lfd, -1, srv_accept_and_serve);
	close(lfd);
	r = qmp_connect_path(sock_path, 3000, &c, &err);
	is_int(r, 0, "connect by path");
	if (r == 0) {
		is_int(qmp_execute(c, "query-name", NULL, 0, NULL, &err), 0, "and talk");
		is_int(fcntl(qmp_fd(c), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC, "close-on-exec");
	}
	qmp_close(c);
	c = NULL;
	is_int(reap(pid, false), 0, "server side fine");

	/* The listener's backlog is full (backlog 0 admits one pending
	 * connection): connect waits for room, bounded. */
	lfd = listen_on(sock_path, 0);
	filler = connect_raw(sock_path);
	ok(filler >= 0, "a first connection fills the backlog");
	r = connect_raw(sock_path);
	is_int(r, -EAGAIN, "a second plain non-blocking connect gets EAGAIN");
	if (r >= 0)
		close(r);
	t0 = util_now_ms();
	r = qmp_connect_path(sock_path, 300, &c, &err);
	ms = util_now_ms() - t0;
	is_int(r, -ETIMEDOUT, "full backlog: -ETIMEDOUT");
	ok(ms >= 295, "not before the timeout (%lld ms for 300)", (long long)ms);
	ok(strstr(err.msg, "backlog") != NULL, "message: %s", err.msg);

	pid = serve_on(lfd, -1, srv_accept_late);
	t0 = util_now_ms();
	r = qmp_connect_path(sock_path, 5000, &c, &err);
	ms = util_now_ms() - t0;
	is_int(r, 0, "full backlog that drains in time: connected (%lld ms)", (long long)ms);
	if (r == 0)
		is_int(qmp_execute(c, "query-name", NULL, 0, NULL, &err), 0, "and talk");
	ok(c && (fcntl(qmp_fd(c), F_GETFL) & O_NONBLOCK), "the socket is back to non-blocking");
	qmp_close(c);
	c = NULL;
	close(filler);
	close(lfd);
	is_int(reap(pid, false), 0, "server side fine");

	unlink(sock_path);
	r = qmp_connect_path(sock_path, 300, &c, &err);
	is_int(r, -ENOENT, "a missing socket: -ENOENT");
	ok(strstr(err.msg, sock_path) != NULL, "message names it: %s", err.msg);

	lfd = listen_on(sock_path, 1);
	close(lfd);
	r = qmp_connect_path(sock_path, 300, &c, &err);
	is_int(r, -ECONNREFUSED, "nobody listening: -ECONNREFUSED");
	unlink(sock_path);

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	r = qmp_connect_path(longpath, 300, &c, &err);
	is_int(r, -ENAMETOOLONG, "a path too long for sun_path: -ENAMETOOLONG");
	is_int(qmp_connect_path("", 300, &c, NULL), -EINVAL, "an empty path: -EINVAL");
	rmdir(dir);
}

/* ---- the rest ------------------------------------------------------------ */

static void test_default_timeouts(void)
{
	static const struct {
		const char *cmd;
		int ms;
	} t[] = {
		{ "query-status", QMP_TIMEOUT_QUICK_MS },
		{ "query-migrate", QMP_TIMEOUT_QUICK_MS },
		{ "qmp_capabilities", QMP_TIMEOUT_QUICK_MS },
		{ "cont", QMP_TIMEOUT_QUICK_MS },
		{ "stop", QMP_TIMEOUT_QUICK_MS },
		{ "system_powerdown", QMP_TIMEOUT_QUICK_MS },
		{ "system_reset", QMP_TIMEOUT_QUICK_MS },
		{ "quit", QMP_TIMEOUT_QUICK_MS },
		{ "getfd", QMP_TIMEOUT_QUICK_MS },
		{ "add-fd", QMP_TIMEOUT_QUICK_MS },
		{ "device_add", QMP_TIMEOUT_DEVICE_MS },
		{ "device_del", QMP_TIMEOUT_DEVICE_MS },
		{ "blockdev-add", QMP_TIMEOUT_DEVICE_MS },
		{ "blockdev-del", QMP_TIMEOUT_DEVICE_MS },
		{ "netdev_add", QMP_TIMEOUT_DEVICE_MS },
		{ "netdev_del", QMP_TIMEOUT_DEVICE_MS },
		{ "block_resize", QMP_TIMEOUT_DEVICE_MS },
		{ "blockdev-snapshot-internal-sync", QMP_TIMEOUT_DEVICE_MS },
		{ "blockdev-snapshot-delete-internal-sync", QMP_TIMEOUT_DEVICE_MS },
		{ "no-such-command", QMP_TIMEOUT_DEVICE_MS },
		{ "snapshot-save", QMP_TIMEOUT_JOB_MS },
		{ "snapshot-load", QMP_TIMEOUT_JOB_MS },
		{ "migrate", QMP_TIMEOUT_JOB_MS },
		{ "migrate-incoming", QMP_TIMEOUT_JOB_MS },
		{ "blockdev-create", QMP_TIMEOUT_JOB_MS },
		{ "block-job-cancel", QMP_TIMEOUT_JOB_MS },
		{ "job-dismiss", QMP_TIMEOUT_JOB_MS },
	};

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(t); i++)
		is_int(qmp_default_timeout_ms(t[i].cmd), t[i].ms, "default timeout of %s",
		       t[i].cmd);
	ok(QMP_TIMEOUT_QUICK_MS == 5000 && QMP_TIMEOUT_DEVICE_MS == 60000 &&
	           QMP_TIMEOUT_JOB_MS == 600000,
	   "classes are 5 s, 60 s, 10 min");
	is_int(qmp_default_timeout_ms(NULL), QMP_TIMEOUT_DEVICE_MS, "NULL is the middle class");
}

static void test_null_safety(void)
{
	util_err err;

	qmp_close(NULL);
	ok(qmp_greeting(NULL) == NULL, "qmp_greeting(NULL)");
	ok(qmp_next_event(NULL) == NULL, "qmp_next_event(NULL)");
	ok(qmp_fd(NULL) == -1, "qmp_fd(NULL)");
	ok(!qmp_alive(NULL), "qmp_alive(NULL)");
	is_int(qmp_execute(NULL, "x", NULL, 0, NULL, &err), -EINVAL, "qmp_execute(NULL)");
	is_int(qmp_dispatch(NULL, NULL), -EINVAL, "qmp_dispatch(NULL)");
	{
		_cleanup_qmp_ qmp_client *c = NULL;
		ok(c == NULL, "_cleanup_qmp_ accepts NULL");
	}
}

int main(void)
{
	/* SIGPIPE stays at its default: the library must not raise it. A
	 * watchdog turns a hang into a failure. */
	alarm(120);
	test_basic();
	test_handshake_faults();
	test_event_before_caps();
	test_unknown_id();
	test_bytewise();
	test_one_write();
	test_close_mid_reply();
	test_timeout();
	test_timeout_under_flood();
	test_error_reply();
	test_oversized();
	test_fd_passing();
	test_dispatch();
	test_wait_event();
	test_queue_cap();
	test_reentrancy();
	test_connect_path();
	test_default_timeouts();
	test_null_safety();
	return done_testing();
}
