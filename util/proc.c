/* Processes and unix sockets: identities that survive pid reuse, pidfds,
 * listening sockets made before QEMU starts. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "util.h"

static int fill_addr(const char *path, struct sockaddr_un *sa, util_err *err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return util_err_set(
		        err, -ENAMETOOLONG,
		        "socket path '%s' is longer than %zu bytes; use a shorter --root", path,
		        sizeof(sa->sun_path) - 1);
	memcpy(sa->sun_path, path, strlen(path));
	return 0;
}

/* A new stream socket for path, with its address in *sa. */
static int unix_socket(const char *path, struct sockaddr_un *sa, int *ret_fd, util_err *err)
{
	int r = fill_addr(path, sa, err);

	if (r < 0)
		return r;
	*ret_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*ret_fd < 0)
		return util_err_errno(err, -errno, "cannot create a socket for '%s'", path);
	return 0;
}

int util_unix_listen(const char *path, int backlog, int *ret_fd, util_err *err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int fd = -1;
	int r = unix_socket(path, &sa, &fd, err);

	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return util_err_errno(err, -errno, "cannot replace socket '%s'", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return util_err_errno(err, -errno, "cannot bind socket '%s'", path);
	if (chmod(path, 0600) < 0 || listen(fd, backlog) < 0) {
		r = -errno;
		unlink(path);
		return util_err_errno(err, r, "cannot listen on socket '%s'", path);
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int util_unix_connect(const char *path, int *ret_fd, util_err *err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int fd = -1;
	int r = unix_socket(path, &sa, &fd, err);

	if (r < 0)
		return r;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return util_err_errno(err, -errno, "cannot connect to '%s'", path);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int util_proc_starttime(pid_t pid, uint64_t *ret, util_err *err)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return util_err_set(err, -ESRCH, "no process %d", (int)pid);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return util_err_set(err, -ESRCH, "process %d is gone", (int)pid);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return util_err_set(err, -ESRCH, "process %d is gone", (int)pid);
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: skip to the last ')' */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return util_err_set(err, -EIO, "cannot parse '%s'", path);
	p += 2;
	/* a zombie has exited: it is not alive, whatever its pid says */
	if (*p == 'Z' || *p == 'X')
		return util_err_set(err, -ESRCH, "process %d has exited", (int)pid);
	/* fields 3.. : state(3) then 18 more up to starttime (22) */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return util_err_set(err, -EIO, "cannot parse '%s'", path);
		p++;
	}
	if (sscanf(p, "%llu", &start) != 1)
		return util_err_set(err, -EIO, "cannot parse '%s'", path);
	*ret = start;
	return 0;
}

bool util_proc_alive(pid_t pid, uint64_t starttime)
{
	uint64_t now;

	return pid > 0 && util_proc_starttime(pid, &now, NULL) == 0 && now == starttime;
}

int util_pidfd_open(pid_t pid, int *ret_fd, util_err *err)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		return util_err_errno(err, -errno, "cannot watch process %d", (int)pid);
	/* pidfds are close-on-exec from birth */
	*ret_fd = fd;
	return 0;
}
