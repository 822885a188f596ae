/* storage: making and removing disk files. A new image is built under a
 * temporary name and renamed into place, so a failure or a concurrent
 * create never leaves a half-made or clobbered disk behind. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/internal.h"

#define WIPE_CHUNK (1u << 20)

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	/* path is absolute, so there is a slash */
	return slash == path ? util_xstrdup("/") : strndup(path, (size_t)(slash - path));
}

static int check_new_path(const char *path, util_err *err)
{
	_cleanup_free_ char *safe = NULL;
	struct stat st;
	int r;

	r = stor_check_local(path, "image path", NULL, err);
	if (r < 0)
		return r;
	safe = stor_safe(path);
	if (path[strlen(path) - 1] == '/')
		return util_err_set(err, -EISDIR, "image path '%s' names a folder, not a file",
		                    safe);
	if (lstat(path, &st) == 0)
		return util_err_set(err, -EEXIST,
		                    "'%s' already exists; qvm never overwrites a disk", safe);
	if (errno != ENOENT)
		return util_err_errno(err, -errno, "cannot access '%s'", safe);
	return 0;
}

/* Replace every `from` in *s by `to`. */
static void replace_all(char **s, const char *from, const char *to)
{
	size_t nf = strlen(from), nt = strlen(to), hits = 0;
	char *out, *o;
	const char *p, *hit;

	if (!*s || !nf)
		return;
	for (p = *s; (hit = strstr(p, from)); p = hit + nf)
		hits++;
	if (!hits)
		return;
	out = o = util_xmalloc(strlen(*s) - hits * nf + hits * nt + 1);
	for (p = *s; (hit = strstr(p, from)); p = hit + nf) {
		memcpy(o, p, (size_t)(hit - p));
		o += hit - p;
		memcpy(o, to, nt);
		o += nt;
	}
	strcpy(o, p);
	free(*s);
	*s = out;
}

static int sync_file(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Run `qemu-img create -f <format> <opts...> -- <tmp> [size]` on a fresh 0600
 * temporary file next to path, then move it to path. qemu-img keeps the
 * mode of a file that already exists (it truncates it), so the disk is
 * never readable by others, whatever the umask. */
static int create_image(const char *path, const char *format, const char *const *opts,
                        const char *size, util_err *err)
{
	_cleanup_free_ char *qemu_img = NULL, *dir = NULL, *tmp = NULL, *errtext = NULL;
	_cleanup_free_ char *safe = NULL;
	util_strv argv = { 0 };
	_cleanup_strv_ char **av = NULL;
	util_run_opts ro = { .ret_stderr = &errtext };
	int fd, r;

	r = check_new_path(path, err);
	if (r < 0)
		return r;
	r = stor_qemu_img(&qemu_img, err);
	if (r < 0)
		return r;
	safe = stor_safe(path);
	dir = dir_of(path);
	if (!dir)
		abort();
	tmp = util_xasprintf("%s/.qvm-create-XXXXXX", strcmp(dir, "/") ? dir : "");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return util_err_errno(err, -errno, "cannot create '%s'", safe);
	if (fchmod(fd, 0600) < 0) {
		r = util_err_errno(err, -errno, "cannot create '%s'", safe);
		close(fd);
		goto fail;
	}
	close(fd);

	util_strv_push(&argv, qemu_img);
	util_strv_push(&argv, "create");
	util_strv_push(&argv, "-f");
	util_strv_push(&argv, format);
	for (size_t i = 0; opts && opts[i]; i++)
		util_strv_push(&argv, opts[i]);
	util_strv_push(&argv, "--");
	util_strv_push(&argv, tmp);
	if (size)
		util_strv_push(&argv, size);
	av = util_strv_steal(&argv);

	r = util_run(av, &ro, err);
	if (r < 0) {
		util_err_prefix(err, "cannot create '%s'", safe);
		goto fail;
	}
	if (r != 0) {
		/* qemu-img names the file it was given: that is the one the
		 * message already names, under its temporary name. */
		_cleanup_free_ char *tmp_colon = util_xasprintf("%s: ", tmp);

		replace_all(&errtext, tmp_colon, "");
		replace_all(&errtext, tmp, path);
		r = stor_qemu_img_failed(err, errtext, "cannot create '%s'", safe);
		goto fail;
	}
	r = sync_file(tmp);
	if (r < 0) {
		util_err_errno(err, r, "cannot sync '%s'", safe);
		goto fail;
	}
	r = stor_rename_noreplace(tmp, path);
	if (r == -EEXIST) {
		util_err_set(err, r, "'%s' already exists; qvm never overwrites a disk", safe);
		goto fail;
	}
	if (r < 0) {
		util_err_errno(err, r, "cannot create '%s'", safe);
		goto fail;
	}
	return util_fsync_dir(dir, err);
fail:
	unlink(tmp);
	return r;
}

int stor_create_overlay(const char *path, const char *backing_path, const char *backing_format,
                        util_err *err)
{
	static const char *const anywhere[] = { "/", NULL };
	const char *opts[] = { "-F", backing_format, "-b", backing_path, NULL };
	int r;

	if (!stor_format_supported(backing_format)) {
		_cleanup_free_ char *safe_f = stor_safe(backing_format);

		return util_err_set(err, -ENOTSUP,
		                    "cannot create an overlay on a %s backing file; qvm uses only "
		                    "qcow2 and raw",
		                    safe_f);
	}
	/* Absolute and protocol-free: the name is stored in the overlay and
	 * resolved again every time the overlay is opened. Commas need no
	 * escaping: qemu-img 7.2 stores -b verbatim (it does not go through
	 * the "key=value,..." option parser), and so does the header. */
	r = stor_check_under(backing_path, anywhere, "backing file", NULL, "", NULL, err);
	if (r < 0) {
		_cleanup_free_ char *safe = stor_safe(path);

		return util_err_prefix(err, "cannot create '%s'", safe);
	}
	return create_image(path, "qcow2", opts, NULL, err);
}

int stor_create_blank(const char *path, const char *format, uint64_t size_bytes, util_err *err)
{
	char size[32];

	if (!stor_format_supported(format)) {
		_cleanup_free_ char *safe_f = stor_safe(format);

		return util_err_set(err, -ENOTSUP,
		                    "cannot create a %s disk; qvm uses only qcow2 and raw", safe_f);
	}
	if (size_bytes == 0 || size_bytes % 512)
		return util_err_set(err, -EINVAL,
		                    "disk size %" PRIu64 " is not a non-zero multiple of 512 bytes",
		                    size_bytes);
	snprintf(size, sizeof(size), "%" PRIu64, size_bytes);
	return create_image(path, format, NULL, size, err);
}

/* Overwrite the data of fd with zeros. Only allocated ranges: holes read
 * as zeros already, and filling them would allocate the whole virtual size
 * of a sparse file. */
static int wipe_fd(int fd, off_t size)
{
	_cleanup_free_ char *zeros = util_xcalloc(1, WIPE_CHUNK);
	off_t off = 0;

	while (off < size) {
		off_t data = lseek(fd, off, SEEK_DATA), end;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (data < 0 && errno != EINVAL)
			return -errno;
		if (data < 0) {
			data = off; /* no SEEK_DATA here: write everything */
			end = size;
		} else {
			end = lseek(fd, data, SEEK_HOLE);
			if (end < 0)
				return -errno;
			if (end > size)
				end = size;
		}
		while (data < end) {
			size_t n = (size_t)(end - data) < WIPE_CHUNK ? (size_t)(end - data)
			                                             : WIPE_CHUNK;
			ssize_t w = pwrite(fd, zeros, n, data);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return w < 0 ? -errno : -EIO;
			data += w;
		}
		off = end;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

int stor_remove_disk(const char *path, bool wipe, util_err *err)
{
	_cleanup_free_ char *safe = NULL, *dir = NULL;
	struct stat st, fst;
	int r;

	r = stor_check_local(path, "disk path", NULL, err);
	if (r < 0)
		return r;
	safe = stor_safe(path);
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return util_err_errno(err, -errno, "cannot remove '%s'", safe);
	}
	if (S_ISLNK(st.st_mode))
		return util_err_set(
		        err, -EINVAL,
		        "'%s' is a symbolic link, not a disk file; refusing to remove it", safe);
	if (!S_ISREG(st.st_mode))
		return util_err_set(err, -EINVAL,
		                    "'%s' is not a regular file; refusing to remove it", safe);
	if (wipe) {
		_cleanup_close_ int fd =
		        open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

		if (fd < 0)
			return util_err_errno(err, -errno, "cannot open '%s' to wipe it", safe);
		if (fstat(fd, &fst) < 0)
			return util_err_errno(err, -errno, "cannot wipe '%s'", safe);
		if (!S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino)
			return util_err_set(err, -EAGAIN,
			                    "'%s' changed while it was being removed; try again",
			                    safe);
		if (fst.st_nlink > 1)
			return util_err_set(
			        err, -EMLINK,
			        "'%s' has other hard links (%ju); wiping it would destroy "
			        "their data too: remove the other links first",
			        safe, (uintmax_t)fst.st_nlink - 1);
		r = wipe_fd(fd, fst.st_size);
		if (r < 0)
			return util_err_errno(err, r, "cannot wipe '%s'", safe);
	}
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return 0;
		return util_err_errno(err, -errno, "cannot remove '%s'", safe);
	}
	dir = dir_of(path);
	if (!dir)
		abort();
	return util_fsync_dir(dir, err);
}
