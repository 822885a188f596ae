/* Operations on VM definitions that need no running QEMU: create,
 * hold/release, delete, and the recovery of those interrupted by a crash.
 * Each is one transaction under the journal's exclusive lock: an intent is
 * recorded before the first file is touched and a completion after. */
#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <sys/un.h>

#include "cloudinit.h"
#include "network.h"
#include "run.h"
#include "snap_tree.h"
#include "vm_ops.h"
#include "storage/storage.h"

/* ---- identity ------------------------------------------------------------- */

static int make_uuid(char **ret, util_err *err)
{
	uint8_t b[16];
	int r = util_random_bytes(b, sizeof(b), err);

	if (r < 0)
		return r;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	*ret = util_xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	                      "%02x%02x%02x%02x%02x%02x",
	                      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
	                      b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

/* ---- disks ------------------------------------------------------------------- */

/* A disk made from a store image: a qcow2 overlay whose backing file and
 * backing format are the image's (a format= that contradicts the store's
 * record is refused, never silently used). */
static int place_store_disk(lc_db *db, lc_disk *d, util_err *err)
{
	_cleanup_stor_image_ stor_image img = { 0 };
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	char *real;
	int r = stor_image_get(lc_db_root(db), d->source, &img, err);

	/* "10X" was most likely meant as a size: say both readings failed */
	if (r == -ENOENT && isdigit((unsigned char)d->source[0]))
		return util_err_set(err, -ENOENT,
		                    "disk %u: '%s' is neither a size (such as 512M or 10G) nor an "
		                    "image in the store; see qvm image list",
		                    d->id, d->source);
	if (r < 0)
		return util_err_prefix(err, "disk %u", d->id);
	if (d->backing_format && strcmp(d->backing_format, img.format))
		return util_err_set(
		        err, -EINVAL,
		        "disk %u: image '%s' is %s, not %s as declared; declare it %s or leave the format out (the store knows it)",
		        d->id, img.name, img.format, d->backing_format, img.format);
	r = stor_inspect_before_open(img.file, img.format, NULL, &info, err);
	if (r < 0)
		return util_err_prefix(err, "disk %u: image '%s'", d->id, img.name);
	real = realpath(img.file, NULL);
	if (!real)
		return util_err_errno(err, -errno, "disk %u: image '%s'", d->id, img.name);
	free(d->backing);
	d->backing = real;
	free(d->backing_format);
	d->backing_format = util_xstrdup(img.format);
	d->size = info.virtual_size;
	return 0;
}

/* Decide where each disk lives and what it is made from, without making
 * anything: the base images are checked (path policy, inspection) so that
 * a bad one is refused before any intent is recorded. */
static int place_disks(lc_db *db, lc_vmdef *def, uint64_t id, const char *const *roots,
                       util_err *err)
{
	_cleanup_free_ char *vmdir = lc_vm_dir(db, id);

	for (size_t i = 0; i < def->n_disks; i++) {
		lc_disk *d = &def->disks[i];
		_cleanup_free_ char *real = NULL;
		_cleanup_stor_image_info_ stor_image_info info = { 0 };
		uint64_t size;
		int r;

		bool blank = d->source && d->source[0] != '/' &&
		             util_parse_size(d->source, &size, NULL) == 0;
		/* a blank disk may be raw; one made from an image is always a
		 * qcow2 overlay on it */
		const char *format = blank && util_streq(d->format, "raw") ? "raw" : "qcow2";

		if (!blank && d->format && !util_streq(d->format, "qcow2"))
			return util_err_set(
			        err, -EINVAL,
			        "disk %u: a disk made from an image is a qcow2 overlay on it, never %s; format= names the image's format, or a blank disk's own",
			        d->id, d->format);
		free(d->path);
		d->path = util_xasprintf("%s/disk%u.%s", vmdir, d->id, format);
		free(d->format);
		d->format = util_xstrdup(format);
		d->owned = true;
		if (blank) {
			/* a blank disk */
			free(d->backing);
			d->backing = NULL;
			free(d->backing_format);
			d->backing_format = NULL;
			d->size = size;
			continue;
		}
		if (d->source && d->source[0] != '/') {
			r = place_store_disk(db, d, err);
			if (r < 0)
				return r;
			continue;
		}
		if (!d->source)
			return util_err_set(err, -EINVAL, "disk %u: no size or image", d->id);
		r = stor_check_path(d->source, roots, &real, err);
		if (r < 0)
			return util_err_prefix(err, "disk %u", d->id);
		if (!d->backing_format)
			d->backing_format = util_xstrdup("qcow2");
		r = stor_inspect_before_open(real, d->backing_format, NULL, &info, err);
		if (r < 0)
			return util_err_prefix(err, "disk %u", d->id);
		free(d->backing);
		d->backing = TAKE_PTR(real);
		d->size = info.virtual_size; /* an overlay is as large as its base */
	}
	return 0;
}

/* One disk added to an existing VM (disk-attach): the same placement. */
int lc_place_disk(lc_db *db, uint64_t id, lc_disk *d, const char *const *roots, util_err *err)
{
	lc_vmdef one = { .disks = d, .n_disks = 1 };

	return place_disks(db, &one, id, roots, err);
}

int lc_path_check_protocol(const char *path, const char *what, util_err *err)
{
	if (!path || path[strcspn(path, ":/")] != ':')
		return 0;
	/* storage's check says what the pseudo-path is */
	stor_check_path(path, NULL, NULL, err);
	return util_err_prefix(err, "%s", what);
}

/* Files QEMU reads besides disks (kernel, initrd, ISO, cloud-init input)
 * obey the same folder policy: a kernel path of /etc/shadow would hand the
 * host's secrets to the guest. */
static int place_files(lc_vmdef *def, const char *const *roots, util_err *err)
{
	struct {
		char **slot;
		const char *what;
	} files[] = {
		{ &def->kernel, "kernel" },
		{ &def->initrd, "initrd" },
		{ &def->cdrom, "cdrom" },
		{ &def->ci_user_data, "cloud-init user-data" },
		{ &def->ci_meta_data, "cloud-init meta-data" },
		{ &def->ci_network_config, "cloud-init network-config" },
	};

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(files); i++) {
		char *real = NULL;
		int r;

		if (!*files[i].slot)
			continue;
		r = stor_check_path(*files[i].slot, roots, &real, err);
		if (r < 0)
			return util_err_prefix(err, "%s", files[i].what);
		free(*files[i].slot);
		*files[i].slot = real;
	}
	return 0;
}

static int make_disks(const lc_vmdef *def, util_err *err)
{
	for (size_t i = 0; i < def->n_disks; i++) {
		const lc_disk *d = &def->disks[i];
		int r;

		if (d->backing)
			r = stor_create_overlay(d->path, d->backing, d->backing_format, err);
		else
			r = stor_create_blank(d->path, d->format, d->size, err);
		if (r < 0)
			return util_err_prefix(err, "disk %u", d->id);
		util_crash_point("create-disk");
	}
	return 0;
}

int lc_make_disk(const lc_disk *d, util_err *err)
{
	lc_vmdef one = { .disks = (lc_disk *)d, .n_disks = 1 };

	return make_disks(&one, err);
}

/* Remove the folders of a VM that never was recorded (a rolled-back create). */
static int remove_unrecorded(lc_db *db, uint64_t id, util_err *err)
{
	_cleanup_free_ char *vmdir = lc_vm_dir(db, id);
	_cleanup_free_ char *rundir = lc_vm_run_dir(db, id);
	int r = util_rm_rf(vmdir, err);

	return r < 0 ? r : util_rm_rf(rundir, err);
}

/* ---- intents -------------------------------------------------------------------- */

/* The VM's sockets must fit sun_path: refused now, never truncated later. */
static int check_socket_paths(lc_db *db, uint64_t id, util_err *err)
{
	lc_paths p;
	size_t longest;
	struct sockaddr_un sa;
	int r = 0;

	lc_paths_init(&p, lc_db_root(db), id);
	longest = strlen(p.qmp_event);
	if (strlen(p.console) > longest)
		longest = strlen(p.console);
	if (longest >= sizeof(sa.sun_path))
		r = util_err_set(
		        err, -ENAMETOOLONG,
		        "the vm's socket paths under '%s' would be %zu bytes, more than a unix socket allows (%zu); use a shorter --root",
		        lc_db_root(db), longest, sizeof(sa.sun_path) - 1);
	lc_paths_clear(&p);
	return r;
}

/* ---- create ---------------------------------------------------------------------- */

int lc_vm_name_free(lc_db *db, const char *name, util_err *err)
{
	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *o = lc_db_vm_at(db, i);

		if (o->state != LC_DONE && util_streq(o->def.name, name))
			return util_err_set(err, -EEXIST,
			                    "a vm named '%s' exists already (id %" PRIu64
			                    "); choose another name or delete it",
			                    name, o->id);
	}
	return 0;
}

int lc_vm_create(lc_db *db, lc_vmdef *def, const lc_create_opts *opts, uint64_t *ret_id,
                 util_err *err)
{
	_cleanup_free_ char *vmdir = NULL;
	_cleanup_free_ char *images = util_xasprintf("%s/images", lc_db_root(db));
	const char *default_roots[] = { images, NULL };
	const char *const *roots = opts && opts->disk_roots ? opts->disk_roots : default_roots;
	_cleanup_close_ int lock = -1;
	_cleanup_(lc_seed_inputs_clear) lc_seed_inputs ci = { 0 };
	uint64_t id, intent;
	json_t *rec;
	int r;

	r = lc_vmdef_validate(def, err);
	if (r < 0)
		return r;
	r = lc_vm_name_free(db, def->name, err);
	if (r < 0)
		return r;
	id = lc_db_next_id(db);
	r = check_socket_paths(db, id, err);
	if (r == 0)
		r = place_disks(db, def, id, roots, err);
	if (r == 0)
		r = place_files(def, roots, err);
	/* read now, so that a missing or oversized file is refused before
	 * anything is made; the VM keeps copies (see cloudinit.c) */
	if (r == 0)
		r = lc_seed_read_inputs(def, &ci, err);
	if (r < 0)
		return util_err_prefix(err, "cannot create vm '%s'", def->name);
	if (!def->uuid && (r = make_uuid(&def->uuid, err)) < 0)
		return r;
	/* MACs and leases: recorded with the definition, held until delete */
	r = lc_nics_assign(db, def, id, err);
	if (r < 0)
		return util_err_prefix(err, "cannot create vm '%s'", def->name);
	r = lc_vm_lock(db, id, 0, &lock, err);
	if (r < 0)
		return r;

	/* The intent names the folder that recovery removes if we die. */
	r = lc_db_intent(db, "create", id, json_pack("{s:s}", "name", def->name), &intent, err);
	if (r < 0)
		return util_err_prefix(err, "cannot create vm '%s'", def->name);
	util_crash_point("create-after-intent");
	vmdir = lc_vm_dir(db, id);
	r = util_mkdir_p(vmdir, 0700, err);
	if (r == 0)
		r = make_disks(def, err);
	if (r == 0)
		r = lc_seed_save_inputs(vmdir, &ci, err);
	if (r < 0)
		goto rollback;
	util_crash_point("create-before-define");
	rec = json_pack("{s:s, s:I, s:s}", "type", "define", "id", (json_int_t)id, "state",
	                opts && opts->hold ? "HOLD" : "PENDING");
	json_object_update_new(rec, lc_db_def_fields(def));
	r = lc_db_append(db, rec, NULL, err);
	if (r < 0)
		goto rollback;
	util_crash_point("create-before-done");
	r = lc_db_done(db, intent, "ok", err);
	if (r < 0) /* defined; recovery completes the intent */
		return util_err_prefix(
		        err,
		        "vm '%s' is defined, but its creation could not be closed in the journal (the next command does it)",
		        def->name);
	lc_vmdef_clear(def);
	*ret_id = id;
	return 0;

rollback : {
	util_err ignored = { 0 };

	remove_unrecorded(db, id, &ignored);
	lc_db_done(db, intent, "rolled-back", &ignored);
	return util_err_prefix(err, "cannot create vm '%s'", def->name);
}
}

/* ---- hold ------------------------------------------------------------------------ */

int lc_vm_hold(lc_db *db, lc_vm *vm, bool hold, util_err *err)
{
	int r = lc_state_check(hold ? LC_OP_HOLD : LC_OP_RELEASE, vm->def.name, vm->state, vm->lcm,
	                       err);

	if (r < 0)
		return r;
	return lc_db_record_state(db, vm, hold ? LC_HOLD : LC_PENDING, LC_LCM_NONE,
	                          hold ? "hold" : "release", NULL, err);
}

/* ---- delete ------------------------------------------------------------------------ */

/* How delete and recreate begin: a state they apply to, the VM lock (kept
 * in *ret_lock), the intent op with data (stolen) recorded. */
static int begin_removal(lc_db *db, lc_vm *vm, const char *op, json_t *data, int *ret_lock,
                         uint64_t *ret_intent, util_err *err)
{
	_cleanup_json_ json_t *owned = data;
	int r = lc_state_check(LC_OP_DELETE, vm->def.name, vm->state, vm->lcm, err);

	if (r == 0 && *ret_lock < 0)
		r = lc_vm_lock(db, vm->id, 0, ret_lock, err);
	if (r < 0)
		return r;
	return lc_db_intent(db, op, vm->id, TAKE_PTR(owned), ret_intent, err);
}

int lc_vm_delete(lc_db *db, lc_vm *vm, int held_lock, bool wipe, util_err *err)
{
	_cleanup_close_ int lock = held_lock;
	uint64_t intent;
	int r = begin_removal(db, vm, "delete", json_pack("{s:b}", "wipe", wipe), &lock, &intent,
	                      err);

	if (r < 0)
		return r;
	util_crash_point("delete-after-intent");
	r = lc_remove_vm_files(db, vm, wipe, err);
	if (r < 0) {
		util_err ignored = { 0 };

		/* Files may be half gone: keep the VM, but say what is left. */
		lc_db_done(db, intent, "failed", &ignored);
		return util_err_prefix(err, "cannot delete '%s'", vm->def.name);
	}
	util_crash_point("delete-before-done");
	r = lc_db_record_state(db, vm, LC_DONE, LC_LCM_NONE, "deleted", NULL, err);
	if (r == 0)
		r = lc_db_done(db, intent, "ok", err);
	return r;
}

/* ---- recreate ------------------------------------------------------------------------ */

/* Fresh disks from the same definition (blank ones blank again, overlays
 * empty on their base), no snapshots, PENDING; the end of the recreate
 * intent at seq. FAILED (with why) when the disks cannot be made. */
static int recreate_disks(lc_db *db, lc_vm *vm, uint64_t intent, const char *done_reason,
                          util_err *err)
{
	int r = 0;

	for (size_t i = 0; i < vm->def.n_disks && r == 0; i++)
		if (vm->def.disks[i].owned)
			r = stor_remove_disk(vm->def.disks[i].path, false, err);
	if (r == 0)
		r = make_disks(&vm->def, err);
	if (r < 0) {
		util_err ignored = { 0 };

		lc_db_record_state(db, vm, LC_FAILED, LC_LCM_NONE, "recreate failed", err->msg,
		                   &ignored);
		lc_db_done(db, intent, "failed", &ignored);
		return util_err_prefix(err, "cannot recreate '%s'", vm->def.name);
	}
	/* fresh disks hold no snapshots */
	r = lc_snap_forget_all(db, vm, err);
	if (r == 0)
		r = lc_db_record_state(db, vm, LC_PENDING, LC_LCM_NONE, done_reason, NULL, err);
	if (r == 0)
		r = lc_db_done(db, intent, "ok", err);
	return r;
}

int lc_vm_recreate(lc_db *db, lc_vm *vm, int held_lock, util_err *err)
{
	_cleanup_close_ int lock = held_lock;
	uint64_t intent;
	int r = begin_removal(db, vm, "recreate", NULL, &lock, &intent, err);

	if (r < 0)
		return r;
	util_crash_point("recreate-after-intent");
	return recreate_disks(db, vm, intent, "recreated", err);
}

/* ---- recovery ------------------------------------------------------------------------ */

/* The VM lock of the intent's VM is held (its owner died with it).
 * Deletion and recreation are finished, unless the VM was started since:
 * then the command that died is superseded. */
static bool superseded(lc_vm *vm)
{
	return vm && (vm->state == LC_ACTIVE || vm->state == LC_UNKNOWN);
}

/* Creation is rolled back unless the definition made it into the journal. */
static int recover_create(lc_db *db, uint64_t seq, json_t *intent, util_err *err)
{
	uint64_t id = (uint64_t)json_integer_value(json_object_get(intent, "id"));
	int r;

	if (lc_db_vm_by_id(db, id))
		return lc_db_done(db, seq, "ok", err);
	r = remove_unrecorded(db, id, err);
	if (r < 0)
		return util_err_prefix(err, "cannot roll back the creation of vm %" PRIu64, id);
	return lc_db_done(db, seq, "rolled-back", err);
}

static int recover_delete(lc_db *db, uint64_t seq, json_t *intent, util_err *err)
{
	uint64_t id = (uint64_t)json_integer_value(json_object_get(intent, "id"));
	bool wipe = json_is_true(json_object_get(json_object_get(intent, "data"), "wipe"));
	lc_vm *vm = lc_db_vm_by_id(db, id);
	int r;

	if (superseded(vm))
		return lc_db_done(db, seq, "superseded", err);
	if (vm && vm->state != LC_DONE) {
		r = lc_remove_vm_files(db, vm, wipe, err);
		if (r == 0)
			r = lc_db_record_state(db, vm, LC_DONE, LC_LCM_NONE,
			                       "deleted (finished after a crash)", NULL, err);
		if (r < 0)
			return util_err_prefix(err, "cannot finish deleting vm %" PRIu64, id);
	}
	return lc_db_done(db, seq, "ok", err);
}

/* Its disks may be half removed or half made: make them all afresh, as it
 * would have. */
static int recover_recreate(lc_db *db, uint64_t seq, json_t *intent, util_err *err)
{
	lc_vm *vm = lc_db_vm_by_id(db, (uint64_t)json_integer_value(json_object_get(intent, "id")));

	if (superseded(vm))
		return lc_db_done(db, seq, "superseded", err);
	if (vm && vm->state != LC_DONE)
		return recreate_disks(db, vm, seq, "recreated (finished after a crash)", err);
	return lc_db_done(db, seq, "ok", err);
}

__attribute__((constructor)) static void register_definition_recovery(void)
{
	lc_store_on_intent("create", recover_create);
	lc_store_on_intent("delete", recover_delete);
	lc_store_on_intent("recreate", recover_recreate);
}

/* ---- show ------------------------------------------------------------------------------ */

json_t *lc_vm_to_json(const lc_vm *vm)
{
	json_t *j = json_pack("{s:I, s:s, s:s, s:o, s:s}", "id", (json_int_t)vm->id, "name",
	                      vm->def.name, "state", lc_state_name(vm->state), "lcm",
	                      lc_lcm_json(vm->lcm), "short", lc_short_name(vm->state, vm->lcm));

	json_object_set_new(j, "created_ms", json_integer(vm->created_ms));
	json_object_set_new(j, "since_ms", json_integer(vm->state_ms));
	json_object_set_new(j, "reason", vm->reason ? json_string(vm->reason) : json_null());
	json_object_set_new(j, "last_error",
	                    vm->last_error ? json_string(vm->last_error) : json_null());
	json_object_set_new(j, "qemu_pid", vm->qemu_pid ? json_integer(vm->qemu_pid) : json_null());
	json_object_set_new(j, "supervisor_pid",
	                    vm->supervisor_pid ? json_integer(vm->supervisor_pid) : json_null());
	json_object_set_new(j, "accel", vm->accel ? json_string(vm->accel) : json_null());
	json_object_set_new(j, "definition", lc_vmdef_to_json(&vm->def));
	json_object_set_new(j, "snapshots", lc_vm_snapshots_json(vm));
	json_object_set_new(j, "checkpoint",
	                    vm->checkpoint ? json_deep_copy(vm->checkpoint) : json_null());
	json_object_set_new(j, "schedule", lc_sched_json(vm));
	return j;
}
