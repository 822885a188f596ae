/* storage: internal qcow2 snapshots of a disk that no QEMU has open — what
 * VM snapshots of a stopped VM use: list, create, apply, delete through
 * qemu-img with the format given explicitly (--image-opts). */
#include <string.h>

#include "storage/internal.h"

#define SNAP_TIMEOUT_MS 120000

/* driver=qcow2,file.driver=file,file.filename=PATH: qemu-img snapshot has no
 * -f, and a probed format is never trusted. */
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

int stor_qcow2_snapshot_list(const char *path, char ***ret_tags, util_err *err)
{
	_cleanup_free_ char *qemu_img = NULL, *out = NULL, *errtext = NULL, *safe = stor_safe(path);
	_cleanup_json_ json_t *j = NULL;
	util_run_opts opts = { .ret_stdout = &out, .ret_stderr = &errtext,
			       .timeout_ms = SNAP_TIMEOUT_MS };
	util_strv tags = { 0 };
	json_error_t jerr;
	json_t *s;
	size_t i;
	int r = stor_check_local(path, "disk path", NULL, err);

	if (r == 0)
		r = stor_qemu_img(&qemu_img, err);
	if (r < 0)
		return r;
	{
		char *argv[] = { qemu_img, "info", "-f", "qcow2", "--output=json", "--",
				 (char *)path, NULL };

		r = util_run(argv, &opts, err);
	}
	if (r < 0)
		return util_err_prefix(err, "cannot list the snapshots of '%s'", safe);
	if (r != 0)
		return stor_qemu_img_failed(err, errtext, "cannot list the snapshots of '%s'", safe);
	j = json_loads(out, 0, &jerr);
	if (!json_is_object(j))
		return util_err_set(err, -EPROTO,
				    "cannot list the snapshots of '%s': qemu-img printed no JSON object",
				    safe);
	json_array_foreach(json_object_get(j, "snapshots"), i, s) {
		const char *name = json_string_value(json_object_get(s, "name"));

		if (name)
			util_strv_push(&tags, name);
	}
	*ret_tags = util_strv_steal(&tags); /* empty, not NULL, without any */
	return 0;
}

int stor_qcow2_snapshot(const char *path, char op, const char *tag, util_err *err)
{
	_cleanup_free_ char *qemu_img = NULL, *opts_text = NULL, *errtext = NULL;
	_cleanup_free_ char *safe = stor_safe(path);
	util_run_opts ro = { .ret_stderr = &errtext, .timeout_ms = SNAP_TIMEOUT_MS };
	const char *what = op == 'c' ? "create" : op == 'a' ? "apply" : "delete";
	char flag[3] = { '-', op, '\0' };
	int r;

	if (op != 'c' && op != 'a' && op != 'd')
		return util_err_set(err, -EINVAL, "unknown snapshot operation '%c'", op);
	r = util_validate_name(tag, "snapshot tag", err);
	if (r == 0)
		r = image_opts(path, &opts_text, err);
	if (r == 0)
		r = stor_qemu_img(&qemu_img, err);
	if (r < 0)
		return r;
	{
		char *argv[] = { qemu_img, "snapshot", "--image-opts", flag, (char *)tag, "--",
				 opts_text, NULL };

		r = util_run(argv, &ro, err);
	}
	if (r < 0)
		return util_err_prefix(err, "cannot %s snapshot '%s' of '%s'", what, tag, safe);
	if (r != 0) {
		if (errtext && strstr(errtext, "Failed to get \"write\" lock"))
			return util_err_set(err, -EBUSY,
					    "cannot %s snapshot '%s' of '%s': another process (a running vm?) has it open",
					    what, tag, safe);
		return stor_qemu_img_failed(err, errtext, "cannot %s snapshot '%s' of '%s'", what, tag,
					    safe);
	}
	return 0;
}
