/* A child process qvm talks to over pipes (the ssh of a migration): its
 * stdin and stdout are pipes, its stderr a memory file read after it ends,
 * so that an error it printed can be quoted. It inherits the environment,
 * as a program the user names (QVM_SSH) expects: HOME, SSH_AUTH_SOCK. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "util.h"

extern char **environ;

static void child_exec(const char *prog, char *const argv[], int in_r, int out_w, int err_fd)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* a session of its own: a ^C at qvm's terminal is qvm's to handle */
	setsid();
	if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_fd, 2) < 0)
		_exit(127);
	close_range(3, ~0U, 0);
	execve(prog, argv, environ);
	_exit(127);
}

int util_spawn_piped(char *const argv[], util_child *ret, util_err *err)
{
	_cleanup_free_ char *prog = NULL;
	int inp[2] = { -1, -1 }, outp[2] = { -1, -1 };
	_cleanup_close_ int errfd = -1;
	pid_t pid;
	int r = util_find_program(argv[0], &prog, err);

	if (r < 0)
		return r;
	errfd = memfd_create("qvm-child-stderr", MFD_CLOEXEC);
	if (errfd < 0 || pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
		r = util_err_errno(err, -errno, "cannot make pipes for '%s'", argv[0]);
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		r = util_err_errno(err, -errno, "cannot fork for '%s'", argv[0]);
		goto fail;
	}
	if (pid == 0)
		child_exec(prog, argv, inp[0], outp[1], errfd);
	close(inp[0]);
	close(outp[1]);
	ret->pid = pid;
	ret->to_fd = inp[1];
	ret->from_fd = outp[0];
	ret->err_fd = TAKE_FD(errfd);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (inp[i] >= 0)
			close(inp[i]);
		if (outp[i] >= 0)
			close(outp[i]);
	}
	return r;
}

char *util_child_stderr(const util_child *c)
{
	char buf[4096];
	ssize_t n;
	size_t len;

	if (c->err_fd < 0)
		return util_xstrdup("");
	n = pread(c->err_fd, buf, sizeof(buf) - 1, 0);
	len = n > 0 ? (size_t)n : 0;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	/* the last line is what it said last: the reason */
	for (char *p = buf; *p; p++)
		if (*p == '\r')
			*p = ' ';
	return util_xstrdup(strrchr(buf, '\n') ? strrchr(buf, '\n') + 1 : buf);
}

int util_child_end(util_child *c, int kill_signal)
{
	int status = 0;

	if (c->to_fd >= 0)
		close(c->to_fd);
	if (c->from_fd >= 0)
		close(c->from_fd);
	c->to_fd = c->from_fd = -1;
	if (c->pid > 0) {
		if (kill_signal)
			kill(c->pid, kill_signal);
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void util_child_clear(util_child *c)
{
	if (c->pid > 0)
		util_child_end(c, SIGKILL);
	if (c->err_fd >= 0)
		close(c->err_fd);
	c->err_fd = -1;
}
