/* storage: the disk path policy — a disk is a plain local regular file
 * under a folder the administrator allowed, never a qemu pseudo-protocol. */
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/internal.h"

int stor_check_local(const char *path, const char *what, const char *fix, util_err *err)
{
	_cleanup_free_ char *safe = NULL;
	size_t scheme;

	if (!path || !*path)
		return util_err_set(err, -EINVAL, "%s is empty", what);
	safe = stor_safe(path);
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return util_err_set(err, -EINVAL,
			                    "%s '%s' contains a control character (0x%02x)", what,
			                    safe, *p);
	/* qemu's own test (path_has_protocol): a ':' before any '/' makes
	 * "scheme:rest" a protocol — json:, nbd:, http:, file: and so on. */
	scheme = strcspn(path, ":/");
	if (path[scheme] == ':') {
		_cleanup_free_ char *head = util_xstrdup(path), *name = NULL;

		head[scheme] = '\0';
		name = stor_safe(head);

		return util_err_set(
		        err, -EINVAL, "%s '%s' is a '%s:' pseudo-path, not a local file; %s", what,
		        safe, name, fix ?: "qvm opens only local files: give an absolute path");
	}
	if (path[0] != '/')
		return util_err_set(err, -EINVAL, "%s '%s' is not absolute; %s", what, safe,
		                    fix ?: "give the full path starting with '/'");
	return 0;
}

/* Is the resolved path `real` inside the resolved folder `root`? Compare
 * on component boundaries: /srv/img is not under /srv/i. */
static bool path_is_under(const char *real, const char *root)
{
	size_t n = strlen(root);

	if (n == 1 && root[0] == '/')
		return real[0] == '/';
	return strncmp(real, root, n) == 0 && real[n] == '/';
}

static char *roots_list(const char *const *roots)
{
	util_strv parts = { 0 };
	_cleanup_strv_ char **v = NULL;
	size_t len = 1;
	char *out;

	for (size_t i = 0; roots && roots[i]; i++)
		util_strv_push_take(&parts, stor_safe(roots[i]));
	if (!parts.n) {
		util_strv_clear(&parts);
		return util_xstrdup("none configured");
	}
	v = util_strv_steal(&parts);
	for (size_t i = 0; v[i]; i++)
		len += strlen(v[i]) + 2;
	out = util_xmalloc(len);
	out[0] = '\0';
	for (size_t i = 0; v[i]; i++) {
		if (i)
			strcat(out, ", ");
		strcat(out, v[i]);
	}
	return out;
}

int stor_check_under(const char *path, const char *const *roots, const char *what,
                     const char *local_fix, const char *hint, char **ret_realpath, util_err *err)
{
	_cleanup_free_ char *safe = NULL, *real = NULL, *list = NULL;
	struct stat st;
	int r;

	r = stor_check_local(path, what, local_fix, err);
	if (r < 0)
		return r;
	safe = stor_safe(path);
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return util_err_set(err, -ENOENT, "%s '%s' does not exist", what, safe);
		return util_err_errno(err, -errno, "cannot access %s '%s'", what, safe);
	}
	if (S_ISDIR(st.st_mode))
		return util_err_set(err, -EISDIR,
		                    "%s '%s' is a directory; a disk must be a regular file", what,
		                    safe);
	if (S_ISBLK(st.st_mode))
		return util_err_set(
		        err, -EINVAL,
		        "%s '%s' is a block device; only regular files are supported for now", what,
		        safe);
	if (!S_ISREG(st.st_mode))
		return util_err_set(
		        err, -EINVAL,
		        "%s '%s' is not a regular file; only regular files are supported for now",
		        what, safe);
	real = realpath(path, NULL);
	if (!real)
		return util_err_errno(err, -errno, "cannot resolve %s '%s'", what, safe);

	for (size_t i = 0; roots && roots[i]; i++) {
		_cleanup_free_ char *root = NULL, *safe_root = NULL;

		if (roots[i][0] != '/') {
			safe_root = stor_safe(roots[i]);
			return util_err_set(
			        err, -EINVAL,
			        "allowed folder '%s' is not absolute; fix the configuration",
			        safe_root);
		}
		root = realpath(roots[i], NULL);
		if (!root)
			continue; /* a folder that does not exist holds nothing */
		if (path_is_under(real, root)) {
			if (ret_realpath)
				*ret_realpath = TAKE_PTR(real);
			return 0;
		}
	}
	list = roots_list(roots);
	if (strcmp(real, path)) {
		_cleanup_free_ char *safe_real = stor_safe(real);

		return util_err_set(err, -EACCES,
		                    "%s '%s' (really '%s') is not under an allowed folder (%s); %s",
		                    what, safe, safe_real, list, hint);
	}
	return util_err_set(err, -EACCES, "%s '%s' is not under an allowed folder (%s); %s", what,
	                    safe, list, hint);
}

/* path (absolute) with "//", "." and ".." taken out by text alone: what
 * its realpath is when no link is on the way. */
static char *lexical_path(const char *path)
{
	_cleanup_free_ char *copy = util_xstrdup(path);
	char *out = util_xmalloc(strlen(path) + 2), *save = NULL;
	size_t len = 0;

	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			while (len > 0 && out[--len] != '/')
				;
			continue;
		}
		out[len++] = '/';
		memcpy(out + len, c, strlen(c));
		len += strlen(c);
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return out;
}

/* A path is taken only as it is: no symbolic link anywhere on it (its
 * realpath is itself, once "." and ".." are read as text). qvm records
 * that path and checks it again each time QEMU is to open the file: a link made meanwhile (an ISO
 * swapped for a link to /etc/shadow) fails the same test, whatever it
 * points to. */
static int check_no_link(const char *path, util_err *err)
{
	_cleanup_free_ char *safe = stor_safe(path), *real = NULL, *safe_real = NULL;
	_cleanup_free_ char *plain = lexical_path(path);
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0; /* stor_check_under() says what is wrong */
	real = realpath(path, NULL);
	if (!real && S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		target[n > 0 ? n : 0] = '\0';
		real = util_xstrdup(target); /* a dangling link: where it points */
	}
	if (!real || !strcmp(real, plain))
		return 0;
	safe_real = stor_safe(real);
	if (S_ISLNK(st.st_mode))
		return util_err_set(err, -ELOOP,
		                    "path '%s' is a symbolic link (to '%s'); qvm opens no file "
		                    "through a link: give the real file's path",
		                    safe, safe_real);
	return util_err_set(err, -ELOOP,
	                    "path '%s' goes through a symbolic link (it is really '%s'); qvm "
	                    "opens no file through a link: give the real path",
	                    safe, safe_real);
}

int stor_check_policy(const char *path, const char *const *allowed_roots, const char *hint,
                      char **ret_realpath, util_err *err)
{
	int r = stor_check_local(path, "path", NULL, err);

	if (r == 0)
		r = check_no_link(path, err);
	if (r < 0)
		return r;
	return stor_check_under(path, allowed_roots, "path", NULL, hint, ret_realpath, err);
}

int stor_check_own(const char *path, const char *dir, util_err *err)
{
	const char *own[] = { dir, NULL };
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		_cleanup_free_ char *safe = stor_safe(path);

		return util_err_set(
		        err, -ELOOP,
		        "'%s' is a symbolic link, not the file qvm made; remove the link "
		        "(the disk is made again at the next start) or restore the file",
		        safe);
	}
	return stor_check_under(path, own, "disk file", NULL, "qvm keeps it in the vm's folder",
	                        NULL, err);
}

int stor_check_path(const char *path, const char *const *allowed_roots, char **ret_realpath,
                    util_err *err)
{
	return stor_check_policy(path, allowed_roots,
	                         "add the folder to QVM_DISK_ROOTS or import the file as an image",
	                         ret_realpath, err);
}
