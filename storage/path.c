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

int stor_check_path(const char *path, const char *const *allowed_roots, char **ret_realpath,
                    util_err *err)
{
	return stor_check_under(path, allowed_roots, "path", NULL,
	                        "add the folder to QVM_DISK_ROOTS or import the file as an image",
	                        ret_realpath, err);
}
