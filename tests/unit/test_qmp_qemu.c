/* The QMP client against real QEMU: a listening socket made here and handed
 * over as the only inherited fd, queries, an error class, fd passing, events
 * and quit. QEMU is always killed and reaped, whatever fails. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "qmp/qmp.h"
#include "tap.h"

static volatile pid_t qemu_pid = -1;
static char tmpdir[] = "/tmp/qvm-test-qmp-qemu.XXXXXX";
static char sock_path[100], log_path[128], marker_path[128];

/* The watchdog: a hung test must still leave no QEMU behind. */
static void on_alarm(int sig)
{
	static const char msg[] = "not ok - watchdog: test hung, qemu killed\n";

	(void)sig;
	if (qemu_pid > 0)
		kill(qemu_pid, SIGKILL);
	/* unlink() and rmdir() are async-signal-safe. */
	unlink(sock_path);
	unlink(log_path);
	unlink(marker_path);
	rmdir(tmpdir);
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(1);
}

static void dump_log(void)
{
	_cleanup_free_ char *data = NULL;

	if (util_read_file(log_path, 65536, &data, NULL, NULL) == 0 && data[0])
		diag("qemu log: %s", data);
}

/* Kill (if still running) and reap QEMU; returns its wait status. */
static int reap_qemu(bool kill_it)
{
	int status = -1;

	if (qemu_pid <= 0)
		return -1;
	if (kill_it)
		kill(qemu_pid, SIGKILL);
	while (waitpid(qemu_pid, &status, 0) < 0 && errno == EINTR)
		;
	qemu_pid = -1;
	return status;
}

/* Wait for QEMU to exit on its own, up to timeout_ms, without sleeping:
 * poll() on a pidfd. True when it exited (and was reaped). */
static bool wait_qemu_exit(int timeout_ms, int *ret_status)
{
	int pidfd = (int)syscall(SYS_pidfd_open, qemu_pid, 0);
	struct pollfd pfd = { pidfd, POLLIN, 0 };
	bool exited;

	if (pidfd < 0)
		return false;
	exited = poll(&pfd, 1, timeout_ms) == 1;
	close(pidfd);
	if (exited)
		*ret_status = reap_qemu(false);
	return exited;
}

/* fork + execve QEMU with lfd as its fd 3 and nothing else but 0-2. */
static pid_t spawn_qemu(const char *qemu, int lfd)
{
	char *argv[] = {
		(char *)qemu,
		"-nodefaults",
		"-no-user-config",
		"-S",
		"-display",
		"none",
		"-machine",
		"pc",
		"-accel",
		"tcg",
		"-m",
		"64",
		"-chardev",
		"socket,id=qmp,fd=3,server=on,wait=off",
		"-mon",
		"chardev=qmp,mode=control",
		NULL,
	};
	char *envp[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", NULL };
	pid_t pid = fork();

	if (pid != 0)
		return pid;

	/* Child: QEMU dies with the test, whatever happens to it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int high = fcntl(lfd, F_DUPFD_CLOEXEC, 100);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (high < 0 || null < 0 || log < 0)
		_exit(126);
	if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(log, 2) < 0 || dup2(high, 3) < 0)
		_exit(126);
	close_range(4, ~0U, 0);
	execve(qemu, argv, envp);
	_exit(127);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* QEMU must hold fd 3 as the QMP socket and none of this process's other
 * fds — the marker was opened without O_CLOEXEC on purpose. */
static void check_inherited_fds(void)
{
	char dir[64], path[96], target[256];
	bool marker_leaked = false, fd3_socket = false;
	ssize_t n;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)qemu_pid);
	for (int fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "%s/%d", dir, fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strstr(target, "marker"))
			marker_leaked = true;
		if (fd == 3 && util_startswith(target, "socket:"))
			fd3_socket = true;
	}
	ok(fd3_socket, "qemu's fd 3 is the qmp socket");
	ok(!marker_leaked, "qemu did not inherit the test's other fds");
}

/* Everything that talks to QEMU; returns false to make main() kill it. */
static bool run(qmp_client *c)
{
	util_err err = { 0 };
	json_t *ret = NULL, *args, *ev = NULL, *g;
	int r, p[2];

	check_inherited_fds();
	g = qmp_greeting(c);
	json_t *ver = json_object_get(json_object_get(g, "version"), "qemu");
	ok(json_integer_value(json_object_get(ver, "major")) >= 7, "greeting: qemu %lld.%lld.%lld",
	   (long long)json_integer_value(json_object_get(ver, "major")),
	   (long long)json_integer_value(json_object_get(ver, "minor")),
	   (long long)json_integer_value(json_object_get(ver, "micro")));

	r = qmp_execute(c, "query-status", NULL, 0, &ret, &err);
	is_int(r, 0, "query-status");
	is_str(json_string_value(json_object_get(ret, "status")), "prelaunch",
	       "status is prelaunch under -S");
	ok(json_is_false(json_object_get(ret, "running")), "not running");
	json_decref(ret);
	ret = NULL;

	r = qmp_execute(c, "query-version", NULL, 0, &ret, &err);
	is_int(r, 0, "query-version");
	ok(json_equal(json_object_get(ret, "qemu"), ver), "agrees with the greeting");
	json_decref(ret);
	ret = NULL;

	/* Error classes, as QEMU 7.2 reports them. */
	args = json_pack("{s:s}", "id", "no-such-device");
	r = qmp_execute(c, "device_del", args, 0, &ret, &err);
	json_decref(args);
	is_int(r, -EREMOTEIO, "device_del of a missing device: -EREMOTEIO");
	is_str(err.qmp_class, "DeviceNotFound", "class DeviceNotFound");
	ok(strstr(err.msg, "no-such-device") != NULL, "message: %s", err.msg);
	r = qmp_execute(c, "no-such-command", NULL, 0, &ret, &err);
	is_int(r, -EREMOTEIO, "an unknown command: -EREMOTEIO");
	is_str(err.qmp_class, "CommandNotFound", "class CommandNotFound");
	args = json_pack("{s:s}", "bogus", "x");
	r = qmp_execute(c, "query-status", args, 0, &ret, &err);
	json_decref(args);
	is_int(r, -EREMOTEIO, "an unexpected argument: -EREMOTEIO");
	is_str(err.qmp_class, "GenericError", "class GenericError (%s)", err.msg);
	ok(qmp_alive(c), "errors leave the connection usable");

	/* fd passing: QEMU must really hold the fd afterwards. */
	if (pipe2(p, O_CLOEXEC) < 0)
		return false;
	args = json_pack("{s:s}", "fdname", "testfd");
	r = qmp_execute_with_fd(c, "getfd", args, p[1], 0, NULL, &err);
	json_decref(args);
	is_int(r, 0, "getfd with an fd (%s)", r ? err.msg : "ok");
	args = json_pack("{s:s}", "fdname", "testfd");
	r = qmp_execute(c, "closefd", args, 0, NULL, &err);
	is_int(r, 0, "closefd finds it: qemu received the fd");
	r = qmp_execute(c, "closefd", args, 0, NULL, &err);
	json_decref(args);
	is_int(r, -EREMOTEIO, "a second closefd fails (%s)", err.qmp_class);

	args = json_pack("{s:i, s:s}", "fdset-id", 7, "opaque", "qvm-test");
	r = qmp_execute_with_fd(c, "add-fd", args, p[0], 0, &ret, &err);
	json_decref(args);
	is_int(r, 0, "add-fd with an fd");
	is_int(json_integer_value(json_object_get(ret, "fdset-id")), 7, "into fdset 7");
	json_decref(ret);
	ret = NULL;
	r = qmp_execute(c, "query-fdsets", NULL, 0, &ret, &err);
	{
		json_t *set = json_array_get(ret, 0), *fds = json_object_get(set, "fds");

		ok(r == 0 && json_integer_value(json_object_get(set, "fdset-id")) == 7 &&
		           json_array_size(fds) == 1 &&
		           util_streq(json_string_value(
		                              json_object_get(json_array_get(fds, 0), "opaque")),
		                      "qvm-test"),
		   "query-fdsets lists the passed fd");
	}
	json_decref(ret);
	ret = NULL;
	close(p[0]);
	close(p[1]);

	/* Events: cont, stop. */
	r = qmp_execute(c, "cont", NULL, 0, NULL, &err);
	is_int(r, 0, "cont");
	r = qmp_wait_event(c, "RESUME", 5000, &ev, &err);
	is_int(r, 0, "RESUME event");
	json_decref(ev);
	ev = NULL;
	r = qmp_execute(c, "stop", NULL, 0, NULL, &err);
	is_int(r, 0, "stop");
	r = qmp_wait_event(c, "STOP", 5000, &ev, &err);
	is_int(r, 0, "STOP event");
	ok(json_is_object(json_object_get(ev, "timestamp")), "events carry a timestamp");
	json_decref(ev);
	ev = NULL;
	r = qmp_execute(c, "query-status", NULL, 0, &ret, &err);
	is_str(json_string_value(json_object_get(ret, "status")), "paused", "now paused");
	json_decref(ret);
	ret = NULL;

	/* quit: the reply, then SHUTDOWN with reason host-qmp-quit, then EOF. */
	r = qmp_execute(c, "quit", NULL, 0, NULL, &err);
	ok(r == 0 || r == -EPIPE, "quit (%d)", r);
	r = qmp_wait_event(c, "SHUTDOWN", 5000, &ev, &err);
	is_int(r, 0, "SHUTDOWN event after quit (%s)", r ? err.msg : "ok");
	json_t *data = json_object_get(ev, "data");
	is_str(json_string_value(json_object_get(data, "reason")), "host-qmp-quit",
	       "reason host-qmp-quit");
	ok(json_is_false(json_object_get(data, "guest")), "not guest-initiated");
	json_decref(ev);
	ev = NULL;
	for (r = 0; r >= 0;) {
		struct pollfd pfd = { qmp_fd(c), POLLIN, 0 };

		if (poll(&pfd, 1, 5000) != 1)
			break;
		r = qmp_dispatch(c, &err);
	}
	is_int(r, -EPIPE, "then the connection closes: dispatch says -EPIPE");
	ok(!qmp_alive(c), "and the client is dead");
	return true;
}

int main(void)
{
	_cleanup_free_ char *qemu = NULL;
	util_err err = { 0 };
	qmp_client *c = NULL;
	int lfd, r, status = -1, marker;

	signal(SIGALRM, on_alarm);
	alarm(90);

	r = util_find_program("qemu-system-x86_64", &qemu, &err);
	if (!ok(r == 0, "qemu-system-x86_64 is installed")) {
		diag("%s", err.msg);
		return done_testing();
	}
	if (!mkdtemp(tmpdir)) {
		ok(0, "mkdtemp");
		return done_testing();
	}
	snprintf(sock_path, sizeof(sock_path), "%s/qmp.sock", tmpdir);
	snprintf(log_path, sizeof(log_path), "%s/qemu.log", tmpdir);

	snprintf(marker_path, sizeof(marker_path), "%s/marker", tmpdir);
	/* Inheritable on purpose, and away from the fds the child rearranges. */
	r = open(marker_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	marker = r >= 0 ? fcntl(r, F_DUPFD, 200) : -1;
	if (r >= 0)
		close(r);

	lfd = listen_unix(sock_path);
	if (!ok(lfd >= 0, "listening socket made before qemu starts")) {
		rmdir(tmpdir);
		return done_testing();
	}
	qemu_pid = spawn_qemu(qemu, lfd);
	ok(qemu_pid > 0, "qemu spawned (pid %d)", (int)qemu_pid);
	close(lfd);
	close(marker);

	r = qmp_connect_path(sock_path, 10000, &c, &err);
	if (!ok(r == 0, "qmp_connect_path to qemu")) {
		diag("%s", err.msg);
	} else if (!run(c)) {
		ok(0, "test setup");
	}
	qmp_close(c);

	/* After quit QEMU exits by itself; otherwise (a failure above) kill it. */
	if (qemu_pid > 0 && !wait_qemu_exit(10000, &status))
		status = reap_qemu(true);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "qemu exited with status 0 (0x%x)",
	   status);
	if (tap_failed)
		dump_log();
	ok(qemu_pid == -1, "qemu reaped, nothing left behind");

	unlink(sock_path);
	unlink(log_path);
	unlink(marker_path);
	rmdir(tmpdir);
	return done_testing();
}
