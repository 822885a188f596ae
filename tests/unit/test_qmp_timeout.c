/* The per-class default QMP timeouts are really applied when a caller
 * passes 0: this test compiles its own copy of the client with the class
 * constants shortened (so it waits a fraction of a second, not minutes)
 * and lets a fake server, a forked child, never answer. What is checked is
 * behaviour: -ETIMEDOUT, and a message naming the command and the class's
 * timeout. */
#define QMP_TIMEOUT_CONNECT_MS 150
#define QMP_TIMEOUT_QUICK_MS   200
#define QMP_TIMEOUT_DEVICE_MS  300
#define QMP_TIMEOUT_JOB_MS     400
#include "qmp/client.c"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "tap.h"

#define GREETING                                                                                   \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"capabilities\": []}}\r\n"

/* One line from the client (the command), or exit: the test decides. */
static json_t *srv_read_line(int fd)
{
	char line[4096];
	size_t n = 0;

	while (n < sizeof(line) - 1) {
		ssize_t r = read(fd, line + n, 1);

		if (r <= 0)
			_exit(0);
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	return json_loads(line, 0, NULL);
}

/* Greeting and capabilities, when greet; then silence until the client
 * closes. */
static void srv_mute(int fd, bool greet)
{
	char buf[256];

	if (greet) {
		json_t *cmd;

		if (write(fd, GREETING, strlen(GREETING)) < 0)
			_exit(0);
		cmd = srv_read_line(fd);
		dprintf(fd, "{\"return\": {}, \"id\": %lld}\r\n",
		        (long long)json_integer_value(json_object_get(cmd, "id")));
		json_decref(cmd);
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static pid_t serve(bool greet, int *ret_fd)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		exit(2);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		exit(2);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		srv_mute(sv[1], greet);
		_exit(0);
	}
	close(sv[1]);
	*ret_fd = sv[0];
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* cmd with timeout 0 against a server that never answers it. */
static void check_class(const char *cmd, int class_ms, const char *class)
{
	char expect[64];
	util_err err = { 0 };
	qmp_client *c = NULL;
	int fd, r;
	pid_t pid = serve(true, &fd);

	r = qmp_connect_fd(fd, 3000, &c, &err);
	if (!ok(r == 0, "connect for %s: %s", cmd, r ? err.msg : "ok")) {
		reap(pid);
		return;
	}
	is_int(qmp_default_timeout_ms(cmd), class_ms, "%s is of the %s class", cmd, class);
	r = qmp_execute(c, cmd, NULL, 0, NULL, &err);
	is_int(r, -ETIMEDOUT, "%s with timeout 0 times out (-ETIMEDOUT)", cmd);
	snprintf(expect, sizeof(expect), "within %d ms", class_ms);
	ok(strstr(err.msg, cmd) && strstr(err.msg, expect), "after the %s class's default (%s): %s",
	   class, expect, err.msg);
	qmp_close(c);
	reap(pid);
}

int main(void)
{
	util_err err = { 0 };
	qmp_client *c = NULL;
	int fd, r;
	pid_t pid;

	check_class("query-status", QMP_TIMEOUT_QUICK_MS, "quick");
	check_class("device_add", QMP_TIMEOUT_DEVICE_MS, "device");
	check_class("snapshot-save", QMP_TIMEOUT_JOB_MS, "job");

	/* connecting with timeout 0: the connect class */
	pid = serve(false, &fd);
	r = qmp_connect_fd(fd, 0, &c, &err);
	is_int(r, -ETIMEDOUT, "connect with timeout 0 to a silent monitor times out");
	ok(strstr(err.msg, "greeting") && strstr(err.msg, "within 150 ms"),
	   "after the connect default: %s", err.msg);
	ok(c == NULL, "no client handed out");
	reap(pid);
	return done_testing();
}
