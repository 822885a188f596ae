/* The files QEMU opens for a VM, checked again right before it opens them
 * (start, each restart, disk-attach): what create checked may have been
 * swapped since. The same storage checks as create's decide. */
#include <string.h>
#include <sys/stat.h>

#include "run.h"
#include "storage/storage.h"

/* The base image of a disk (its overlay's backing file, which QEMU opens
 * read-only): still a plain file under the roots, reached through no link,
 * and still what create accepted — of its recorded format (a raw base
 * that now looks like qcow2 is refused), self-contained (no external data
 * file, no backing file of its own). */
static int check_base(const lc_disk *d, const char *const *roots, util_err *err)
{
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	int r = stor_check_path(d->backing, roots, NULL, err);

	if (r == 0)
		r = stor_inspect_before_open(d->backing, d->backing_format, NULL, &info, err);
	return r < 0 ? util_err_prefix(err, "base image") : 0;
}

/* The disk file itself (for an owned disk, the overlay qvm made in the
 * vm's folder): a plain file where it was, no link; a
 * qcow2 one self-contained and recording exactly the defined backing file
 * and format, so that what qemu-img and QEMU read from its header is what
 * the definition says. A raw disk's content is the guest's own (it may
 * well look like qcow2): QEMU opens it as raw, never probing it. */
static int check_top(const lc_disk *d, const char *vmdir, const char *const *backing_roots,
                     util_err *err)
{
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	int r = d->owned ? stor_check_own(d->path, vmdir, err)
	                 : stor_check_path(d->path, backing_roots, NULL, err);

	if (r < 0 || !util_streq(d->format, "qcow2"))
		return r;
	r = stor_inspect_before_open(d->path, d->format, d->backing ? backing_roots : NULL, &info,
	                             err);
	if (r < 0)
		return r;
	if (d->backing && (info.chain_depth != 1 || !util_streq(info.chain[1], d->backing) ||
	                   !util_streq(info.backing_format, d->backing_format)))
		return util_err_set(err, -EPERM,
		                    "'%s' no longer records '%s' (%s) as its backing file, as qvm "
		                    "made it; restore the disk or recreate the vm",
		                    d->path, d->backing, d->backing_format);
	return 0;
}

static int check_disk(const lc_disk *d, const char *vmdir, const char *const *roots, util_err *err)
{
	struct stat st;
	int r = 0;

	if (d->backing)
		r = check_base(d, roots, err);
	/* an owned disk that is missing is made again (PROLOG) from its base */
	if (r == 0 && d->path && !(d->owned && lstat(d->path, &st) < 0 && errno == ENOENT))
		r = check_top(d, vmdir, roots, err);
	return r < 0 ? util_err_prefix(err, "disk %u", d->id) : 0;
}

int lc_check_disk_files(const char *root, uint64_t id, const lc_disk *d, const char *const *roots,
                        util_err *err)
{
	_cleanup_free_ char *images = util_xasprintf("%s/images", root);
	const char *default_roots[] = { images, NULL };
	lc_paths p;
	int r;

	lc_paths_init(&p, root, id);
	r = check_disk(d, p.vmdir, roots ? roots : default_roots, err);
	lc_paths_clear(&p);
	return r;
}

int lc_check_vm_files(const char *root, uint64_t id, const lc_vmdef *def, const char *const *roots,
                      util_err *err)
{
	_cleanup_free_ char *images = util_xasprintf("%s/images", root);
	const char *default_roots[] = { images, NULL };
	const struct {
		const char *path, *what;
	} files[] = {
		{ def->kernel, "kernel" },
		{ def->initrd, "initrd" },
		{ def->cdrom, "cdrom" },
	};
	lc_paths p;
	int r = 0;

	if (!roots)
		roots = default_roots;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(files) && r == 0; i++)
		if (files[i].path && (r = stor_check_path(files[i].path, roots, NULL, err)) < 0)
			util_err_prefix(err, "%s", files[i].what);
	lc_paths_init(&p, root, id);
	for (size_t i = 0; i < def->n_disks && r == 0; i++)
		r = check_disk(&def->disks[i], p.vmdir, roots, err);
	lc_paths_clear(&p);
	return r;
}
