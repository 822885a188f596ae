/* Durable file writes, whole-file reads, folder trees and kernel locks. */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

int util_mkdir_p(const char *path, mode_t mode, util_err *err)
{
	_cleanup_free_ char *copy = NULL;

	/* the common case, one call: the parents are there */
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return util_err_errno(err, -errno, "cannot create folder '%s'", path);
	copy = util_xstrdup(path);
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			return util_err_errno(err, -errno, "cannot create folder '%s'", copy);
		*p = '/';
	}
	if (mkdir(copy, mode) < 0 && errno != EEXIST)
		return util_err_errno(err, -errno, "cannot create folder '%s'", copy);
	return 0;
}

int util_fsync_dir(const char *dir, util_err *err)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return util_err_errno(err, -errno, "cannot open folder '%s'", dir);
	if (fsync(fd) < 0)
		return util_err_errno(err, -errno, "cannot sync folder '%s'", dir);
	return 0;
}

int util_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int util_write_file_atomic(const char *path, const void *data, size_t len, util_err *err)
{
	return util_write_file_atomic_fp(path, data, len, NULL, err);
}

int util_write_file_atomic_fp(const char *path, const void *data, size_t len,
                              const char *fail_point, util_err *err)
{
	_cleanup_free_ char *tmp = util_xasprintf("%s.tmp.%d", path, (int)getpid());
	_cleanup_free_ char *dircopy = util_xstrdup(path);
	_cleanup_close_ int fd = -1;
	int r;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return util_err_errno(err, -errno, "cannot create '%s'", tmp);
	r = util_write_all(fd, data, len);
	if (r == 0 && fail_point)
		r = util_fail_point(fail_point, NULL);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return util_err_errno(err, r, "cannot write '%s'", path);
	}
	if (close(TAKE_FD(fd)) < 0) {
		r = -errno;
		unlink(tmp);
		return util_err_errno(err, r, "cannot write '%s'", path);
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return util_err_errno(err, r, "cannot replace '%s'", path);
	}
	return util_fsync_dir(dirname(dircopy), err);
}

int util_read_fd(int fd, const char *path, size_t max, char **ret_data, size_t *ret_len,
                 util_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = util_xrealloc(buf, cap + 1);
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return util_err_errno(err, -errno, "cannot read '%s'", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return util_err_set(err, -EFBIG, "'%s' is larger than %zu bytes", path,
			                    max);
	}
	buf[len] = '\0';
	*ret_data = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

int util_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len, util_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return util_err_errno(err, -errno, "cannot open '%s'", path);
	return util_read_fd(fd, path, max, ret_data, ret_len, err);
}

static int rm_rf_at(int parent, const char *name, const char *path, util_err *err)
{
	struct stat st;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0
		                       : util_err_errno(err, -errno, "cannot remove '%s'", path);
	if (S_ISDIR(st.st_mode)) {
		int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d;
		struct dirent *de;
		int r = 0;

		if (fd < 0)
			return util_err_errno(err, -errno, "cannot open folder '%s'", path);
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			return util_err_errno(err, -errno, "cannot open folder '%s'", path);
		}
		while (r == 0 && (de = readdir(d))) {
			_cleanup_free_ char *sub = NULL;

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			sub = util_xasprintf("%s/%s", path, de->d_name);
			r = rm_rf_at(dirfd(d), de->d_name, sub, err);
		}
		closedir(d);
		if (r < 0)
			return r;
		if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return util_err_errno(err, -errno, "cannot remove folder '%s'", path);
		return 0;
	}
	if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
		return util_err_errno(err, -errno, "cannot remove '%s'", path);
	return 0;
}

int util_rm_rf(const char *path, util_err *err)
{
	return rm_rf_at(AT_FDCWD, path, path, err);
}

static void lock_alarm(int sig)
{
	(void)sig; /* only interrupts flock() */
}

int util_lock_path(const char *path, bool exclusive, int timeout_ms, int *ret_fd, util_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r;

	if (fd < 0)
		return util_err_errno(err, -errno, "cannot open lock '%s'", path);
	r = util_lock_fd(fd, path, exclusive, timeout_ms, err);
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int util_lock_fd(int fd, const char *path, bool exclusive, int timeout_ms, util_err *err)
{
	int op = exclusive ? LOCK_EX : LOCK_SH;
	struct sigaction sa = { .sa_handler = lock_alarm }, old;
	timer_t timer;
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
	struct itimerspec its = { 0 };
	int r;

	if (flock(fd, op | LOCK_NB) == 0)
		return 0;
	if (errno != EWOULDBLOCK)
		return util_err_errno(err, -errno, "cannot lock '%s'", path);
	if (timeout_ms == 0)
		return util_err_set(err, -EBUSY, "'%s' is locked by another qvm", path);
	if (timeout_ms < 0) {
		while ((r = flock(fd, op)) < 0 && errno == EINTR)
			;
		if (r < 0)
			return util_err_errno(err, -errno, "cannot lock '%s'", path);
		return 0;
	}
	/* A blocking flock() bounded by a one-shot timer signal: the kernel
	 * wakes us the moment the holder lets go, no polling. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, &old) < 0)
		return util_err_errno(err, -errno, "cannot wait for lock '%s'", path);
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) < 0) {
		r = -errno;
		sigaction(SIGALRM, &old, NULL);
		return util_err_errno(err, r, "cannot wait for lock '%s'", path);
	}
	its.it_value.tv_sec = timeout_ms / 1000;
	its.it_value.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
	/* Keep firing after the deadline: a signal that lands just before
	 * flock() is entered would otherwise be lost. */
	its.it_interval.tv_nsec = 50 * 1000000L;
	timer_settime(timer, 0, &its, NULL);
	int64_t deadline = util_now_ms() + timeout_ms;
	do {
		r = flock(fd, op) < 0 ? -errno : 0;
	} while (r == -EINTR && util_now_ms() < deadline);
	timer_delete(timer);
	sigaction(SIGALRM, &old, NULL);
	if (r == -EINTR)
		return util_err_set(err, -EBUSY, "'%s' is still locked by another qvm after %d ms",
		                    path, timeout_ms);
	if (r < 0)
		return util_err_errno(err, r, "cannot lock '%s'", path);
	return 0;
}
