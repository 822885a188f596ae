/* util: names, string lists, sizes, numbers, option escaping, atomic files, locks, util_run. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "util/util.h"
#include "tap.h"

static void names(void)
{
	static const char *const good[] = {
		"web", "a", "Web-01.prod_x", "0vm",
		"a23456789012345678901234567890123456789012345678901234567890123"
	};
	static const char *const bad[] = {
		"",
		"-web",
		".web",
		"_web",
		"we/b",
		"we b",
		"web\n",
		"we,b",
		"web;rm",
		"wéb",
		"a234567890123456789012345678901234567890123456789012345678901234",
		"../x",
		"x=y"
	};
	util_err err = { 0 };

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(good); i++)
		ok(util_validate_name(good[i], "vm name", &err) == 0, "name '%s' accepted",
		   good[i]);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
		ok(util_validate_name(bad[i], "vm name", &err) == -EINVAL, "name '%s' refused",
		   bad[i]);
		ok(strstr(err.msg, "vm name") != NULL, "... naming what: %s", err.msg);
	}
}

static void sizes(void)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "512M", 512ull << 20 }, { "10G", 10ull << 30 }, { "1T", 1ull << 40 },
		{ "4096", 4096 },         { "2K", 2048 },         { "1GiB", 1ull << 30 },
		{ "1gb", 1ull << 30 },    { "3m", 3ull << 20 },
	};
	static const char *const bad[] = { "",          "0",    "0G",
		                           "-1G",       "G",    "1.5G",
		                           "1X",        "10GG", "18446744073709551616",
		                           "16777216T", " 1G",  "1G " };
	util_err err = { 0 };
	char buf[16];
	uint64_t v;

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(good); i++)
		ok(util_parse_size(good[i].s, &v, &err) == 0 && v == good[i].v, "size '%s'",
		   good[i].s);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++)
		ok(util_parse_size(bad[i], &v, &err) < 0, "size '%s' refused: %s", bad[i], err.msg);
	is_str(util_format_size(512ull << 20, buf, sizeof(buf)), "512M", "format 512M");
	is_str(util_format_size(3ull << 30, buf, sizeof(buf)), "3G", "format 3G");
	is_str(util_format_size(1000, buf, sizeof(buf)), "1000", "format 1000 bytes");
	ok(util_parse_uint("42", 1, 100, &v, &err) == 0 && v == 42, "uint 42");
	ok(util_parse_uint("101", 1, 100, &v, &err) == -ERANGE, "uint out of range");
	ok(util_parse_uint("4x", 1, 100, &v, &err) == -EINVAL, "uint junk");
}

static void escaping(void)
{
	_cleanup_free_ char *a = NULL, *b = NULL;
	char *c = NULL;
	util_err err = { 0 };

	ok(util_qemu_opt_escape("/a,b,,c", &a, &err) == 0, "escape");
	is_str(a, "/a,,b,,,,c", "commas doubled");
	ok(util_qemu_opt_escape("plain", &b, &err) == 0, "escape plain");
	is_str(b, "plain", "plain unchanged");
	ok(util_qemu_opt_escape("a\nb", &c, &err) == -EINVAL && c == NULL, "newline refused");
	ok(util_qemu_opt_escape("a\x7f", &c, &err) == -EINVAL, "DEL refused");
}

static void files_and_locks(void)
{
	char dir[] = "/tmp/qvm-unit.XXXXXX";
	_cleanup_free_ char *path = NULL, *lock = NULL, *data = NULL, *deep = NULL;
	util_err err = { 0 };
	struct stat st;
	int fd = -1, fd2 = -1, status;
	pid_t pid;
	int64_t t0;

	ok(mkdtemp(dir) != NULL, "temp dir");
	path = util_xasprintf("%s/f", dir);
	ok(util_write_file_atomic(path, "hello", 5, &err) == 0, "atomic write");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "file is 0600");
	ok(util_read_file(path, 100, &data, NULL, &err) == 0 && !strcmp(data, "hello"),
	   "read back");
	free(data);
	data = NULL;
	ok(util_read_file(path, 3, &data, NULL, &err) == -EFBIG, "read cap enforced");
	deep = util_xasprintf("%s/a/b/c", dir);
	ok(util_mkdir_p(deep, 0700, &err) == 0 && stat(deep, &st) == 0 && S_ISDIR(st.st_mode),
	   "mkdir -p");

	lock = util_xasprintf("%s/lock", dir);
	ok(util_lock_path(lock, true, 0, &fd, &err) == 0, "lock taken");
	pid = fork();
	if (pid == 0) {
		/* a second holder (another process: flock is per open file) */
		int f2 = -1;
		int r = util_lock_path(lock, true, 200, &f2, NULL);

		_exit(r == -EBUSY ? 0 : 1);
	}
	t0 = util_now_ms();
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a second locker gives up with -EBUSY");
	ok(util_now_ms() - t0 >= 150, "... after waiting about its timeout");
	close(fd);
	fd = -1;

	/* a holder killed with SIGKILL releases the lock at once */
	pid = fork();
	if (pid == 0) {
		int f3;

		if (util_lock_path(lock, true, 0, &f3, NULL) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	for (int i = 0; i < 100; i++) {
		if (util_lock_path(lock, true, 0, &fd2, NULL) == -EBUSY)
			break;
		close(fd2);
		fd2 = -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	ok(util_lock_path(lock, true, 1000, &fd2, &err) == 0,
	   "lock free after its holder was killed");
	close(fd2);
	ok(util_rm_rf(dir, &err) == 0 && stat(dir, &st) < 0, "rm -rf");
}

static void running(void)
{
	char *argv1[] = { "sh", "-c", "echo out; echo err >&2; exit 3", NULL };
	char *argv2[] = { "sleep", "5", NULL };
	char *argv3[] = { "/nonexistent/prog", NULL };
	char *argv4[] = { "sh", "-c", "ls -l /proc/self/fd | wc -l", NULL };
	_cleanup_free_ char *out = NULL, *errs = NULL, *fds = NULL;
	util_err err = { 0 };
	int keep = open("/dev/null", O_RDONLY); /* not CLOEXEC: must still not leak */

	ok(util_run(argv1, &(util_run_opts){ .ret_stdout = &out, .ret_stderr = &errs }, &err) == 3,
	   "exit status returned");
	is_str(out, "out\n", "stdout captured");
	is_str(errs, "err\n", "stderr captured");
	ok(util_run(argv2, &(util_run_opts){ .timeout_ms = 200 }, &err) == -ETIMEDOUT,
	   "timeout kills the child: %s", err.msg);
	ok(util_run(argv3, NULL, &err) < 0, "missing program: %s", err.msg);
	ok(util_run(argv4, &(util_run_opts){ .ret_stdout = &fds }, &err) == 0, "fd listing ran");
	/* total line + 0,1,2 + the fd ls opens for the listing */
	ok(fds && atoi(fds) <= 5, "child has only fds 0-2 (listing: %s)", fds ? fds : "?");
	close(keep);
}

static void processes(void)
{
	char dir[] = "/tmp/qvm-unit.XXXXXX";
	_cleanup_free_ char *sock = NULL, *longpath = NULL;
	util_err err = { 0 };
	uint64_t start, again;
	int fd = -1, cfd = -1, pidfd = -1, status;
	pid_t pid;
	struct pollfd pfd;

	ok(util_proc_starttime(getpid(), &start, &err) == 0 && start > 0, "own start time");
	ok(util_proc_alive(getpid(), start), "alive with the right start time");
	ok(!util_proc_alive(getpid(), start + 1),
	   "not alive with another start time (a reused pid)");
	ok(!util_proc_alive(0, 0) && !util_proc_alive(-1, 0), "pid 0 and -1 are never alive");

	/* a zombie has exited, whatever kill(pid, 0) says */
	pid = fork();
	if (pid == 0)
		_exit(0);
	ok(util_pidfd_open(pid, &pidfd, &err) == 0, "pidfd of the child");
	pfd = (struct pollfd){ pidfd, POLLIN, 0 };
	ok(poll(&pfd, 1, 5000) == 1, "the pidfd is readable once the child exits");
	ok(kill(pid, 0) == 0, "the unreaped child still answers kill(pid, 0)");
	ok(util_proc_starttime(pid, &again, &err) == -ESRCH, "but it counts as gone: %s", err.msg);
	waitpid(pid, &status, 0);
	close(pidfd);

	ok(mkdtemp(dir) != NULL, "temp dir");
	sock = util_xasprintf("%s/s.sock", dir);
	ok(util_unix_listen(sock, 4, &fd, &err) == 0, "listen");
	ok(util_unix_connect(sock, &cfd, &err) == 0, "connect");
	ok((fcntl(fd, F_GETFD) & FD_CLOEXEC) && (fcntl(cfd, F_GETFD) & FD_CLOEXEC),
	   "both close-on-exec");
	close(cfd);
	close(fd);
	ok(util_unix_listen(sock, 4, &fd, &err) == 0, "a stale socket file is replaced");
	close(fd);
	longpath = util_xasprintf("%s/%0120d.sock", dir, 0);
	ok(util_unix_listen(longpath, 4, &fd, &err) == -ENAMETOOLONG &&
	           strstr(err.msg, "shorter --root"),
	   "a path too long for sun_path is refused: %s", err.msg);
	util_rm_rf(dir, NULL);
}

static void string_lists(void)
{
	static const char *const v[] = { "create", "delete", NULL };

	ok(util_strv_contains(v, "delete"), "a list holds one of its strings");
	ok(!util_strv_contains(v, "del"), "... not a prefix of one");
	ok(!util_strv_contains(v, NULL), "... nor NULL");
	ok(!util_strv_contains(NULL, "create"), "a NULL list holds nothing");
}

/* util_read_fd: the whole-file reader the journal shares with
 * util_read_file, on an fd the caller opened (one it also writes). */
static void reading_fds(void)
{
	char path[] = "/tmp/qvm-unit-read.XXXXXX";
	_cleanup_free_ char *data = NULL;
	util_err err = { 0 };
	size_t len = 0;
	int fd = mkstemp(path);

	ok(fd >= 0 && util_write_all(fd, "0123456789", 10) == 0, "a file of 10 bytes");
	lseek(fd, 0, SEEK_SET);
	ok(util_read_fd(fd, path, 10, &data, &len, &err) == 0 && len == 10 &&
	           !strcmp(data, "0123456789"),
	   "util_read_fd reads it all, NUL-terminated");
	free(data);
	data = NULL;
	lseek(fd, 0, SEEK_SET);
	ok(util_read_fd(fd, path, 9, &data, &len, &err) == -EFBIG && !data && len == 10,
	   "one byte over the cap is -EFBIG, nothing returned");
	ok(strstr(err.msg, "larger than 9 bytes") != NULL, "... and says the cap: %s", err.msg);
	ftruncate(fd, 0);
	lseek(fd, 0, SEEK_SET);
	ok(util_read_fd(fd, path, 9, &data, NULL, &err) == 0 && data && !*data,
	   "an empty file is an empty string");
	close(fd);
	unlink(path);
}

static void errno_names(void)
{
	char buf[16];

	is_str(util_errno_name(-ENOENT, buf, sizeof(buf)), "ENOENT", "-ENOENT is 'ENOENT'");
	is_str(util_errno_name(EBUSY, buf, sizeof(buf)), "EBUSY", "EBUSY is 'EBUSY'");
	is_str(util_errno_name(-4095, buf, sizeof(buf)), "4095",
	       "a code with no name is its number");
}

static void appending(void)
{
	char *s = NULL;

	util_append(&s, "labels");
	util_append(&s, " %s=%d", "a", 1);
	is_str(s, "labels a=1", "util_append starts from NULL and appends");
	free(s);
}

int main(void)
{
	names();
	errno_names();
	appending();
	reading_fds();
	string_lists();
	sizes();
	escaping();
	files_and_locks();
	running();
	processes();
	return done_testing();
}
