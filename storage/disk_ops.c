/* storage: changing an existing disk file while no QEMU has it open —
 * resize and internal qcow2 snapshots — through qemu-img with the format
 * always explicit and `--` before every file name. */
#include <string.h>

#include <jansson.h>

#include "storage/internal.h"

#define DISK_OP_TIMEOUT_MS (10 * 60 * 1000)

/* Run qemu-img with args (NULL-terminated, after the program name). The
 * message on failure is "<what> '<path>': <qemu-img's first line>". */
static int run_img(const char *const *args, const char *what, const char *path, char **ret_out,
                   util_err *err)
{
	_cleanup_free_ char *qemu_img = NULL, *errtext = NULL, *out = NULL, *safe = stor_safe(path);
	_cleanup_strv_ char **av = NULL;
	util_strv sv = { 0 };
	util_run_opts ro = { .ret_stderr = &errtext,
		             .ret_stdout = &out,
		             .timeout_ms = DISK_OP_TIMEOUT_MS };
	int r = stor_qemu_img(&qemu_img, err);

	if (r < 0)
		return r;
	util_strv_push(&sv, qemu_img);
	for (size_t i = 0; args[i]; i++)
		util_strv_push(&sv, args[i]);
	av = util_strv_steal(&sv);
	r = util_run(av, &ro, err);
	if (r < 0)
		return util_err_prefix(err, "%s '%s'", what, safe);
	if (r != 0) {
		if (errtext && strstr(errtext, "Failed to get \"write\" lock"))
			return util_err_set(err, -EBUSY,
			                    "%s '%s': another process (a running vm?) has it open",
			                    what, safe);
		return stor_qemu_img_failed(err, errtext, "%s '%s'", what, safe);
	}
	if (ret_out)
		*ret_out = TAKE_PTR(out);
	return 0;
}

int stor_resize(const char *path, const char *format, uint64_t size_bytes, bool shrink,
                util_err *err)
{
	char size[32];
	const char *args[8];
	int n = 0, r;

	r = stor_check_local(path, "disk path", NULL, err);
	if (r < 0)
		return r;
	if (!stor_format_supported(format))
		return util_err_set(err, -ENOTSUP, "cannot resize a disk of format '%s'", format);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)size_bytes);
	args[n++] = "resize";
	args[n++] = "-f";
	args[n++] = format;
	if (shrink)
		args[n++] = "--shrink";
	args[n++] = "--";
	args[n++] = path;
	args[n++] = size;
	args[n] = NULL;
	return run_img(args, "cannot resize", path, NULL, err);
}

/* `qemu-img snapshot` has no -f: the format goes in --image-opts, where
 * commas in the file name are doubled. */
static int image_opts(const char *path, char **ret, util_err *err)
{
	_cleanup_free_ char *esc = NULL;
	int r = stor_check_local(path, "disk path", NULL, err);

	if (r == 0)
		r = util_qemu_opt_escape(path, &esc, err);
	if (r < 0)
		return r;
	*ret = util_xasprintf("driver=qcow2,file.driver=file,file.filename=%s", esc);
	return 0;
}

int stor_snapshot(const char *path, stor_snap_op op, const char *tag, util_err *err)
{
	static const char *const flags[] = { "-c", "-a", "-d" };
	static const char *const what[] = { "cannot create a snapshot of", "cannot revert",
		                            "cannot delete a snapshot of" };
	_cleanup_free_ char *opts = NULL;
	const char *args[8];
	int r;

	if ((unsigned)op >= UTIL_ARRAY_SIZE(flags))
		return util_err_set(err, -EINVAL, "unknown snapshot operation");
	r = image_opts(path, &opts, err);
	if (r < 0)
		return r;
	args[0] = "snapshot";
	args[1] = flags[op];
	args[2] = tag;
	args[3] = "--image-opts";
	args[4] = "--";
	args[5] = opts;
	args[6] = NULL;
	return run_img(args, what[op], path, NULL, err);
}

int stor_disk_info(const char *path, const char *format, json_t **ret, util_err *err)
{
	_cleanup_free_ char *out = NULL, *safe = stor_safe(path);
	const char *args[] = { "info", "-f", format, "--output=json", "--", path, NULL };
	json_t *j;
	int r = stor_check_local(path, "disk path", NULL, err);

	if (r == 0 && !stor_format_supported(format))
		r = util_err_set(err, -ENOTSUP, "cannot inspect a disk of format '%s'", format);
	if (r == 0)
		r = run_img(args, "cannot inspect", path, &out, err);
	if (r < 0)
		return r;
	j = json_loads(out ? out : "", 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return util_err_set(err, -EPROTO,
		                    "cannot inspect '%s': qemu-img printed no JSON object", safe);
	}
	*ret = j;
	return 0;
}
