/* Child processes without a shell: execve from an argument array, a minimal
 * environment, only fds 0-2, optional rlimits and a timeout. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "util.h"

#define DEFAULT_PATH        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_TIMEOUT_MS  60000
#define DEFAULT_CAPTURE_MAX (1u << 20)

int util_find_program(const char *name, char **ret_path, util_err *err)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = NULL;
	char *save = NULL;

	if (strchr(name, '/')) {
		if (access(name, X_OK) < 0)
			return util_err_errno(err, -errno, "cannot run '%s'", name);
		*ret_path = util_xstrdup(name);
		return 0;
	}
	copy = util_xstrdup(path && *path ? path : DEFAULT_PATH);
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *full = util_xasprintf("%s/%s", dir, name);
		struct stat st;

		if (*dir == '/' && stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(full, X_OK) == 0) {
			*ret_path = TAKE_PTR(full);
			return 0;
		}
	}
	return util_err_set(err, -ENOENT, "'%s' is not installed (not found in PATH)", name);
}

typedef struct capture {
	int fd;
	char *buf;
	size_t len, max;
	bool truncated;
} capture;

static void capture_read(capture *c)
{
	char tmp[4096];
	ssize_t n = read(c->fd, tmp, sizeof(tmp));

	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			close(c->fd);
			c->fd = -1;
		}
		return;
	}
	if (c->len + (size_t)n > c->max) {
		n = (ssize_t)(c->max - c->len);
		c->truncated = true;
	}
	c->buf = util_xrealloc(c->buf, c->len + (size_t)n + 1);
	memcpy(c->buf + c->len, tmp, (size_t)n);
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
}

static void child_exec(const char *prog, char *const argv[], const util_run_opts *o, int out_w,
                       int err_w)
{
	static char *const envp[] = { "PATH=" DEFAULT_PATH, "LC_ALL=C", NULL };
	int in = open(o->stdin_path ? o->stdin_path : "/dev/null", O_RDONLY);
	int null = open("/dev/null", O_WRONLY);
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (in < 0 || null < 0)
		_exit(127);
	if (dup2(in, 0) < 0 || dup2(out_w >= 0 ? out_w : null, 1) < 0 ||
	    dup2(err_w >= 0 ? err_w : null, 2) < 0)
		_exit(127);
	close_range(3, ~0U, 0);
	if (o->rlimit_as) {
		struct rlimit rl = { o->rlimit_as, o->rlimit_as };
		setrlimit(RLIMIT_AS, &rl);
	}
	if (o->rlimit_cpu) {
		struct rlimit rl = { o->rlimit_cpu, o->rlimit_cpu };
		setrlimit(RLIMIT_CPU, &rl);
	}
	execve(prog, argv, envp);
	_exit(127);
}

/* Read the child's output into cap until it has exited and closed both
 * pipes, or timeout_ms have passed (then it is killed: returns true). The
 * pipes are closed on return; the child is not reaped. */
static bool collect(pid_t pid, capture cap[2], int timeout_ms)
{
	int64_t deadline;
	bool timed_out = false, exited = false;
	int pidfd;

	deadline = util_now_ms() + timeout_ms;
	/* Poll the child's pidfd with the pipes: the timeout holds even when
	 * nothing is captured, and no sleeping is needed to notice the exit. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		struct pollfd pfd[3] = { { cap[0].fd, POLLIN, 0 },
			                 { cap[1].fd, POLLIN, 0 },
			                 { exited ? -1 : pidfd, POLLIN, 0 } };
		int64_t left = deadline - util_now_ms();

		if (cap[0].fd < 0 && cap[1].fd < 0 && (exited || pidfd < 0))
			break;
		if (left <= 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		if (poll(pfd, 3, (int)left) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++)
			if (cap[i].fd >= 0 && pfd[i].revents)
				capture_read(&cap[i]);
		if (pfd[2].revents)
			exited = true;
	}
	if (pidfd >= 0)
		close(pidfd);
	for (int i = 0; i < 2; i++)
		if (cap[i].fd >= 0)
			close(cap[i].fd);
	return timed_out;
}

int util_run(char *const argv[], const util_run_opts *opts, util_err *err)
{
	static const util_run_opts none = { 0 };
	const util_run_opts *o = opts ? opts : &none;
	_cleanup_free_ char *prog = NULL;
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	capture cap[2] = { { .fd = -1 }, { .fd = -1 } };
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	int status, r;
	bool timed_out;
	pid_t pid;

	r = util_find_program(argv[0], &prog, err);
	if (r < 0)
		return r;
	if ((o->ret_stdout && pipe2(outp, O_CLOEXEC) < 0) ||
	    (o->ret_stderr && pipe2(errp, O_CLOEXEC) < 0)) {
		r = -errno;
		goto fail_pipes;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto fail_pipes;
	}
	if (pid == 0)
		child_exec(prog, argv, o, outp[1], errp[1]);
	if (outp[1] >= 0)
		close(outp[1]);
	if (errp[1] >= 0)
		close(errp[1]);
	cap[0] = (capture){ .fd = outp[0],
		            .max = o->stdout_max ? o->stdout_max : DEFAULT_CAPTURE_MAX };
	cap[1] = (capture){ .fd = errp[0], .max = DEFAULT_CAPTURE_MAX };
	timed_out = collect(pid, cap, timeout);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			r = util_err_errno(err, -errno, "cannot wait for '%s'", argv[0]);
			goto out;
		}
	}
	if (timed_out) {
		r = util_err_set(err, -ETIMEDOUT, "'%s' did not finish within %d ms and was killed",
		                 argv[0], timeout);
	} else if (WIFSIGNALED(status)) {
		r = util_err_set(err, -ECHILD, "'%s' was killed by signal %d (%s)", argv[0],
		                 WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else if (WEXITSTATUS(status) == 127) {
		r = util_err_set(err, -ENOEXEC, "cannot execute '%s'", prog);
	} else {
		r = WEXITSTATUS(status);
	}
	if (r >= 0) {
		if (o->ret_stdout)
			*o->ret_stdout = cap[0].buf ? TAKE_PTR(cap[0].buf) : util_xstrdup("");
		if (o->ret_stderr)
			*o->ret_stderr = cap[1].buf ? TAKE_PTR(cap[1].buf) : util_xstrdup("");
	}
out:
	free(cap[0].buf);
	free(cap[1].buf);
	return r;
fail_pipes:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return util_err_errno(err, r, "cannot run '%s'", argv[0]);
}
