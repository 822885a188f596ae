/* Point a qcow2 file at another path of the same backing file, without
 * touching its data (qemu-img rebase -u): a disk received from another
 * host names the base image where that host keeps it. */
#include "internal.h"

int stor_set_backing(const char *path, const char *backing_path, const char *backing_format,
                     util_err *err)
{
	_cleanup_free_ char *qemu_img = NULL;
	_cleanup_free_ char *errtext = NULL;
	util_run_opts ro = { .ret_stderr = &errtext };
	int r = stor_qemu_img(&qemu_img, err);

	if (r < 0)
		return r;
	r = util_run((char *const[]){ qemu_img, "rebase", "-u", "-f", "qcow2", "-b",
	                              (char *)backing_path, "-F", (char *)backing_format, "--",
	                              (char *)path, NULL },
	             &ro, err);
	if (r < 0)
		return util_err_prefix(err, "cannot set the backing file of '%s'", path);
	if (r != 0)
		return stor_qemu_img_failed(err, errtext, "cannot set the backing file of '%s'",
		                            path);
	return 0;
}
