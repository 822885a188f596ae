/* Lifecycle's side of the image store: the store's operations for cli/,
 * which VMs use an image (so that it is not deleted under them), and
 * saving a stopped VM's disk as a new store image (disk-saveas). */
#include <inttypes.h>
#include <string.h>

#include "run.h"
#include "vm_command.h"
#include "storage/storage.h"

/* The metadata as the commands print it: the time in *_ms, null for no
 * source. */
static json_t *image_json(const stor_image *img)
{
	json_t *j = stor_image_to_json(img);

	json_object_del(j, "created");
	json_object_set_new(j, "created_ms", json_integer(img->created_ms));
	json_object_set_new(j, "source",
	                    img->source && *img->source ? json_string(img->source) : json_null());
	json_object_set_new(j, "path", json_string(img->file));
	return j;
}

int lc_image_import(const char *root, const lc_image_import_opts *o, json_t **ret_image,
                    util_err *err)
{
	_cleanup_stor_image_ stor_image img = { 0 };
	_cleanup_free_ char *images = util_xasprintf("%s/images", root);
	const char *default_roots[] = { images, NULL };
	stor_import_opts so = {
		.name = o->name,
		.source = o->source,
		.sha256 = o->sha256,
		.format = o->format,
		.ca_file = o->ca_file,
		.max_size = o->max_size,
		.stall_timeout_s = o->stall_timeout_s,
		.progress = o->progress,
		.progress_ud = o->progress_ud,
		.allowed_roots = o->disk_roots ? o->disk_roots : default_roots,
	};
	int r = stor_image_import(root, &so, &img, err);

	if (r < 0)
		return r;
	*ret_image = image_json(&img);
	return 0;
}

int lc_image_get(const char *root, const char *name, json_t **ret_image, util_err *err)
{
	_cleanup_stor_image_ stor_image img = { 0 };
	int r = stor_image_get(root, name, &img, err);

	if (r < 0)
		return r;
	*ret_image = image_json(&img);
	return 0;
}

int lc_image_list(const char *root, json_t **ret_images, util_err *err)
{
	stor_image *v = NULL;
	size_t n = 0;
	json_t *a;
	int r = stor_image_list(root, &v, &n, err);

	if (r < 0)
		return r;
	a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, image_json(&v[i]));
	stor_image_list_free(v, n);
	*ret_images = a;
	return 0;
}

int lc_image_delete(lc_db *db, const char *name, unsigned *ret_partials, util_err *err)
{
	_cleanup_stor_image_ stor_image img = { 0 };
	_cleanup_free_ char *users = NULL;
	const char *root = lc_db_root(db);
	unsigned partials = 0;
	int r = stor_image_get(root, name, &img, err);

	if (r == -ENOENT) {
		/* no image, but perhaps a download of it given up half-way */
		util_err e2 = { 0 };

		if (stor_image_discard_partials(root, name, &partials, &e2) == 0 && partials) {
			*ret_partials = partials;
			return 0;
		}
		return r;
	}
	if (r == 0 && lc_image_users(db, img.file, &users, err) > 0)
		r = util_err_set(
		        err, -EBUSY,
		        "cannot delete image '%s': vm %s uses it; delete that vm first (or its disk)",
		        name, users);
	if (r == 0)
		r = stor_image_delete(root, name, err);
	if (r < 0)
		return r;
	*ret_partials = 0;
	return 0;
}

int lc_image_users(lc_db *db, const char *image_file, char **ret_names, util_err *err)
{
	_cleanup_free_ char *real = realpath(image_file, NULL);
	char *names = NULL;

	(void)err;
	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);

		if (vm->state == LC_DONE)
			continue;
		for (size_t k = 0; k < vm->def.n_disks; k++) {
			const lc_disk *d = &vm->def.disks[k];

			if (!util_streq(d->backing, image_file) &&
			    !util_streq(d->path, image_file) &&
			    !(real && (util_streq(d->backing, real) || util_streq(d->path, real))))
				continue;
			if (names) {
				char *more = util_xasprintf("%s, '%s'", names, vm->def.name);

				free(names);
				names = more;
			} else {
				names = util_xasprintf("'%s'", vm->def.name);
			}
			break;
		}
	}
	*ret_names = names;
	return names ? 1 : 0;
}

int lc_vm_disk_saveas(const char *root, const char *name, unsigned disk_id, const char *image_name,
                      const lc_run_opts *opts, json_t **ret_image, util_err *err)
{
	_cleanup_free_ char *images = stor_images_dir(root), *source = NULL, *state = NULL;
	_cleanup_free_ char *backing_dir = NULL;
	_cleanup_stor_image_ stor_image img = { 0 };
	const lc_disk *d = NULL;
	lc_vm *vm;
	lc_cmd c;
	int r = util_validate_name(image_name, "image name", err);

	if (r < 0)
		return r;
	/* the VM lock keeps it from starting while its disk is read */
	r = lc_cmd_hold(&c, root, name, opts, err);
	if (r < 0)
		return r;
	vm = c.vm;
	if (vm->state == LC_ACTIVE || vm->state == LC_UNKNOWN || vm->state == LC_DONE) {
		state = lc_state_text(vm);
		r = util_err_set(
		        err, -EBUSY,
		        vm->state == LC_DONE
		                ? "cannot save a disk of vm '%s': it is %s and has no disks left"
		                : "cannot save a disk of vm '%s' while it is %s: its disk is in use; power it off first (qvm poweroff %s)",
		        c.h.name, state, c.h.name);
		goto out;
	}
	for (size_t i = 0; i < vm->def.n_disks; i++)
		if (vm->def.disks[i].id == disk_id)
			d = &vm->def.disks[i];
	if (!d) {
		r = util_err_set(err, -ENOENT, "vm '%s' has no disk %u; see qvm show %s", c.h.name,
		                 disk_id, c.h.name);
		goto out;
	}
	/* qemu-img reads the whole chain: checked again as start does */
	r = lc_check_disk_files(root, c.h.id, d, opts ? opts->disk_roots : NULL, err);
	if (r < 0) {
		util_err_prefix(err, "cannot save disk %u of vm '%s' as image '%s'", disk_id,
		                c.h.name, image_name);
		goto out;
	}
	if (d->backing) {
		char *slash;

		backing_dir = util_xstrdup(d->backing);
		slash = strrchr(backing_dir, '/');
		if (slash && slash != backing_dir)
			*slash = '\0';
	}
	{
		const char *roots[] = { images, backing_dir, NULL };

		source = util_xasprintf("vm '%s' disk %u", c.h.name, disk_id);
		r = stor_image_save_disk(root, image_name, d->path, d->format, roots, source, &img,
		                         err);
	}
	if (r < 0)
		util_err_prefix(err, "cannot save disk %u of vm '%s' as image '%s'", disk_id,
		                c.h.name, image_name);
	else if (ret_image)
		*ret_image = image_json(&img);
out:
	return lc_cmd_end(&c, r);
}
