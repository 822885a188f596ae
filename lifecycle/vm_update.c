/* The keys of a definition that update changes, and when each takes
 * effect: memory and vcpus only while the vm is off (they are what QEMU
 * starts with; resize is the live way), and so the display and its VNC
 * server, the boot files, machine, accel,
 * restart policy and cloud-init files in any state but a checkpoint's
 * (at the next start while the vm runs), autostart at once. */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "run.h"
#include "cloudinit.h"
#include "storage/storage.h"
#include "vm_ops.h"

typedef enum key_when {
	WHEN_OFF,        /* only while the vm is off */
	WHEN_NEXT_START, /* recorded at once, used from the next start */
	WHEN_ANY,        /* also while a checkpoint is kept; nothing of QEMU */
} key_when;

enum {
	K_MEMORY,
	K_VCPUS,
	K_APPEND,
	K_KERNEL,
	K_INITRD,
	K_MACHINE,
	K_ACCEL,
	K_RESTART,
	K_AUTOSTART,
	K_CI_USER,
	K_CI_META,
	K_CI_NET,
	K_MAX_VCPUS,
	K_MAX_MEMORY,
	K_VNC,
	K_VNC_LISTEN,
	K_GUEST_AGENT,
};

static const struct {
	const char *key;
	key_when when;
} keys[] = {
	[K_MEMORY] = { "memory", WHEN_OFF },
	[K_VCPUS] = { "vcpus", WHEN_OFF },
	[K_APPEND] = { "append", WHEN_NEXT_START },
	[K_KERNEL] = { "kernel", WHEN_NEXT_START },
	[K_INITRD] = { "initrd", WHEN_NEXT_START },
	[K_MACHINE] = { "machine", WHEN_NEXT_START },
	[K_ACCEL] = { "accel", WHEN_NEXT_START },
	/* the supervisor reads the policy as it starts QEMU */
	[K_RESTART] = { "restart", WHEN_ANY },
	/* for a host scheduler: nothing of the running vm */
	[K_AUTOSTART] = { "autostart", WHEN_ANY },
	[K_CI_USER] = { "cloud-init.user-data", WHEN_NEXT_START },
	[K_CI_META] = { "cloud-init.meta-data", WHEN_NEXT_START },
	[K_CI_NET] = { "cloud-init.network-config", WHEN_NEXT_START },
	/* the room QEMU is started with */
	[K_MAX_VCPUS] = { "max-vcpus", WHEN_OFF },
	[K_MAX_MEMORY] = { "max-memory", WHEN_OFF },
	/* a display device and a VNC server: QEMU's command line */
	[K_VNC] = { "vnc", WHEN_OFF },
	[K_VNC_LISTEN] = { "vnc_listen", WHEN_OFF },
	[K_GUEST_AGENT] = { "guest-agent", WHEN_NEXT_START },
};

static int key_index(const char *key)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(keys); i++)
		if (util_streq(keys[i].key, key))
			return (int)i;
	return -1;
}

static bool key_known(const char *key)
{
	return key_index(key) >= 0;
}

bool lc_update_key_is_path(const char *key)
{
	int k = key_index(key);

	return k == K_KERNEL || k == K_INITRD || k == K_CI_USER || k == K_CI_META || k == K_CI_NET;
}

static char **path_slot(lc_vmdef *def, int k)
{
	switch (k) {
	case K_KERNEL:
		return &def->kernel;
	case K_INITRD:
		return &def->initrd;
	case K_CI_USER:
		return &def->ci_user_data;
	case K_CI_META:
		return &def->ci_meta_data;
	default:
		return &def->ci_network_config;
	}
}

/* kernel, initrd, cloud-init files: absolute, within roots when given. */
static int set_path(lc_vmdef *def, int k, const char *value, const char *const *roots,
                    util_err *err)
{
	char **slot = path_slot(def, k), *real = NULL;
	int r;

	if (!*value) {
		free(*slot);
		*slot = NULL;
		return 0;
	}
	r = lc_path_check_protocol(value, keys[k].key, err);
	/* cli/ makes a relative path absolute after its syntax check */
	if (r == 0 && roots && value[0] != '/')
		r = util_err_set(err, -EINVAL, "%s path '%s' is not absolute", keys[k].key, value);
	if (r == 0 && roots && (r = stor_check_path(value, roots, &real, err)) < 0)
		util_err_prefix(err, "%s", keys[k].key);
	if (r < 0)
		return r;
	free(*slot);
	*slot = real ? real : util_xstrdup(value);
	return 0;
}

static int set_bool(bool *slot, const char *value, const char *key, util_err *err)
{
	if (util_streq(value, "yes") || util_streq(value, "on") || util_streq(value, "true"))
		*slot = true;
	else if (util_streq(value, "no") || util_streq(value, "off") || util_streq(value, "false"))
		*slot = false;
	else
		return util_err_set(err, -EINVAL, "invalid %s '%s' (use yes or no)", key, value);
	return 0;
}

static int set_number(lc_vmdef *def, int k, const char *value, util_err *err)
{
	_cleanup_free_ char *withunit = NULL;
	uint64_t n;

	if (k == K_VCPUS || k == K_MAX_VCPUS) {
		if (util_parse_uint(value, k == K_VCPUS, LC_VCPUS_MAX, &n, err) < 0)
			return util_err_prefix(err, "invalid %s", keys[k].key);
		*(k == K_VCPUS ? &def->vcpus : &def->max_vcpus) = (unsigned)n;
		return 0;
	}
	if (k == K_MAX_MEMORY && util_streq(value, "0")) {
		def->max_memory = 0;
		return 0;
	}
	/* a bare number is MiB, as for --memory */
	if (*value && strspn(value, "0123456789") == strlen(value))
		value = withunit = util_xasprintf("%sM", value);
	if (util_parse_size(value, &n, err) < 0)
		return util_err_prefix(err, "invalid %s", keys[k].key);
	*(k == K_MEMORY ? &def->memory : &def->max_memory) = n;
	return 0;
}

/* vnc=on|off (on: on loopback unless vnc_listen says where), or
 * vnc_listen=ADDR (which turns it on) into def. */
static int set_vnc(lc_vmdef *def, int k, const char *value, util_err *err)
{
	if (k == K_VNC_LISTEN) {
		if (lc_vnc_listen_check(value, err) < 0)
			return util_err_prefix(err, "invalid vnc_listen");
		free(def->vnc_listen);
		def->vnc_listen = util_xstrdup(value);
	} else if (util_streq(value, "on")) {
		if (!def->vnc_listen)
			def->vnc_listen = util_xstrdup(LC_VNC_LISTEN_DEFAULT);
	} else if (util_streq(value, "off")) {
		free(def->vnc_listen);
		def->vnc_listen = NULL;
	} else {
		return util_err_set(err, -EINVAL, "invalid vnc '%s': give on or off", value);
	}
	return 0;
}

/* Set key to value in def. An empty value clears an optional key (append,
 * kernel, initrd, cloud-init files). A path is checked against roots (the
 * disk folder policy) and stored resolved; with roots NULL only its syntax
 * is checked, as cli/ does before any work. */
static int key_set(lc_vmdef *def, const char *key, const char *value, const char *const *roots,
                   util_err *err)
{
	int k = key_index(key);

	switch (k) {
	case K_MEMORY:
	case K_VCPUS:
	case K_MAX_VCPUS:
	case K_MAX_MEMORY:
		return set_number(def, k, value, err);
	case K_APPEND:
		free(def->append);
		def->append = *value ? util_xstrdup(value) : NULL;
		return 0;
	case K_MACHINE:
		return lc_machine_parse(value, &def->machine, err);
	case K_ACCEL:
		return lc_accel_parse(value, &def->accel, err);
	case K_RESTART:
		return lc_restart_parse(value, &def->restart, err);
	case K_AUTOSTART:
		return set_bool(&def->autostart, value, key, err);
	case K_VNC:
	case K_VNC_LISTEN:
		return set_vnc(def, k, value, err);
	case K_GUEST_AGENT:
		return set_bool(&def->guest_agent, value, key, err);
	case -1:
		return util_err_set(err, -EINVAL, "'%s' is not a key update sets", key);
	default:
		return set_path(def, k, value, roots, err);
	}
}

/* The states in which a checkpoint holds the machine as it was saved. */
static bool has_checkpoint(const lc_vm *vm)
{
	return vm->state == LC_SUSPENDED || vm->state == LC_STOPPED;
}

/* May the keys changed (names, borrowed) change while vm is in its
 * state? On success *ret_later is a new array of the keys that take
 * effect only at the vm's next start (empty when none). */
static int keys_check(const lc_vm *vm, json_t *changed, json_t **ret_later, util_err *err)
{
	_cleanup_json_ json_t *later = json_array();
	_cleanup_free_ char *state = lc_state_text(vm);
	bool off = lc_state_check(LC_OP_RESIZE_COLD, vm->def.name, vm->state, vm->lcm, NULL) == 0;
	json_t *v;
	size_t i;

	json_array_foreach (changed, i, v) {
		int k = key_index(json_string_value(v));

		if (k < 0 || off || keys[k].when == WHEN_ANY)
			continue;
		if (keys[k].when == WHEN_OFF)
			return util_err_set(
			        err, -EPERM,
			        "memory, vcpus, their maxima and vnc change only while the vm is off, and it is %s; power it off first (qvm poweroff %s), or resize memory and vcpus live with qvm resize",
			        state, vm->def.name);
		if (has_checkpoint(vm))
			return util_err_set(
			        err, -EPERM,
			        "'%s' cannot change while the vm is %s: its checkpoint holds the machine it was saved with; resume it first, or qvm poweroff %s --discard-checkpoint",
			        keys[k].key, state, vm->def.name);
		json_array_append(later, v);
	}
	*ret_later = TAKE_PTR(later);
	return 0;
}

/* Which of the three inputs keys change, in lc_seed_inputs order. */
static bool changed_inputs(json_t *changed, bool which[3])
{
	json_t *v;
	size_t i;
	bool any = false;

	which[0] = which[1] = which[2] = false;
	json_array_foreach (changed, i, v) {
		int k = key_index(json_string_value(v));

		if (k >= K_CI_USER && k <= K_CI_NET)
			any = which[k - K_CI_USER] = true;
	}
	return any;
}

/* The cloud-init inputs among changed, in two halves around the record
 * that redefines vm as nd. prepare reads nd's changed files (refusing a
 * missing or oversized one) into *ret and removes the vm's copies of the
 * changed inputs; commit writes the new copies. A crash between them
 * leaves no copy of a changed input, and a vm without its copy reads the
 * file its definition names at start: the old file before the record,
 * the new one after it, never a mix. */
static int seed_prepare(const lc_db *db, const lc_vm *vm, const lc_vmdef *nd, json_t *changed,
                        lc_seed_inputs *ret, util_err *err)
{
	_cleanup_free_ char *vmdir = lc_vm_dir(db, vm->id);
	lc_seed_inputs in = { 0 };
	lc_vmdef only;
	bool which[3];
	int r;

	if (!changed_inputs(changed, which)) {
		*ret = in;
		return 0;
	}
	/* read only the changed files: an unchanged one may be gone since
	 * its copy was taken */
	lc_vmdef_init(&only);
	only.ci_user_data = which[0] ? nd->ci_user_data : NULL;
	only.ci_meta_data = which[1] ? nd->ci_meta_data : NULL;
	only.ci_network_config = which[2] ? nd->ci_network_config : NULL;
	r = lc_seed_read_inputs(&only, &in, err);
	if (r == 0)
		r = lc_seed_drop_inputs(vmdir, which, err);
	json_decref(only.labels);
	json_decref(only.user);
	if (r < 0) {
		lc_seed_inputs_clear(&in);
		return r;
	}
	*ret = in;
	return 0;
}

static int seed_commit(const lc_db *db, const lc_vm *vm, const lc_seed_inputs *in, util_err *err)
{
	_cleanup_free_ char *vmdir = lc_vm_dir(db, vm->id);

	util_crash_point("update-before-seed-copies");
	return lc_seed_save_inputs(vmdir, in, err);
}

/* ---- update ---------------------------------------------------------------------- */

/* Keys of the definition that update does not store as user data (a typo
 * of the intent would otherwise be kept silently), and where each one is
 * changed instead. The keys update sets are vm_update.c's. */
static const struct {
	const char *key, *how;
} def_keys[] = {
	{ "name", "use qvm rename" },
	{ "uuid", "a vm's uuid never changes" },
	{ "disks", "use disk-attach, disk-detach or disk-resize" },
	{ "nics", "use nic-attach or nic-detach" },
	{ "cdrom", "use cdrom-insert or cdrom-eject" },
	{ "labels", "give label.KEY=VALUE" },
	{ "user", "give KEY=VALUE" },
	{ "cloud_init", "give cloud-init.user-data=FILE (or meta-data, network-config)" },
	{ "cloud-init", "give cloud-init.user-data=FILE (or meta-data, network-config)" },
};

/* Value checks for the user data keys qvm itself reads. */
static int check_user_value(const char *key, const char *value, util_err *err)
{
	uint64_t n;

	if (util_streq(key, "snapshots.max") && *value &&
	    util_parse_uint(value, 1, LC_SNAPSHOTS_MAX_LIMIT, &n, err) < 0)
		return util_err_prefix(err, "snapshots.max must be a number of snapshots");
	return 0;
}

int lc_update_pair_check(const char *pair, util_err *err)
{
	_cleanup_free_ char *key = util_xstrdup(pair);
	char *eq = strchr(key, '=');
	const char *k = key;
	lc_vmdef scratch;
	int r;

	if (!eq)
		return util_err_set(err, -EINVAL, "'%s' is not KEY=VALUE", pair);
	*eq = '\0';
	if (util_startswith(key, "label."))
		k = key + strlen("label.");
	if (!*k)
		return util_err_set(err, -EINVAL, "'%s' has no key: give %sKEY=VALUE", pair,
		                    k == key ? "" : "label.");
	r = util_validate_name(k, k == key ? "key" : "label key", err);
	if (r == 0) {
		_cleanup_free_ char *what = util_xasprintf("the value of '%s'", k);

		r = util_validate_printable(eq + 1, what, err);
	}
	if (r < 0 || k != key)
		return r;
	if (key_known(k)) {
		lc_vmdef_init(&scratch);
		r = key_set(&scratch, k, eq + 1, NULL, err);
		lc_vmdef_clear(&scratch);
		return r;
	}
	for (size_t d = 0; d < UTIL_ARRAY_SIZE(def_keys); d++)
		if (util_streq(k, def_keys[d].key))
			return util_err_set(err, -EINVAL,
			                    "'%s' is part of the definition, not user data; %s", k,
			                    def_keys[d].how);
	return check_user_value(k, eq + 1, err);
}

/* "update: memory 256M→512M, kernel, labels" — the keys an update changes */
static char *update_reason(const char *verb, const lc_vmdef *old, const lc_vmdef *nd,
                           json_t *changed, json_t *labels, json_t *user)
{
	char *why = util_xasprintf("%s:", verb);
	const char *sep = " ";
	char a[16], b[16];
	json_t *v;
	size_t i;

	if (old->memory != nd->memory) {
		util_append(&why, "%smemory %s→%s", sep,
		            util_format_size(old->memory, a, sizeof(a)),
		            util_format_size(nd->memory, b, sizeof(b)));
		sep = ", ";
	}
	if (old->vcpus != nd->vcpus) {
		util_append(&why, "%svcpus %u→%u", sep, old->vcpus, nd->vcpus);
		sep = ", ";
	}
	if (!util_streq(old->vnc_listen, nd->vnc_listen)) {
		util_append(&why, "%svnc %s→%s", sep, old->vnc_listen ?: "off",
		            nd->vnc_listen ?: "off");
		sep = ", ";
	}
	json_array_foreach (changed, i, v) {
		const char *k = json_string_value(v);

		if (!util_streq(k, "memory") && !util_streq(k, "vcpus") && !util_streq(k, "vnc") &&
		    !util_streq(k, "vnc_listen")) {
			util_append(&why, "%s%s", sep, k);
			sep = ", ";
		}
	}
	if (json_object_size(labels)) {
		util_append(&why, "%slabels", sep);
		sep = ", ";
	}
	if (json_object_size(user))
		util_append(&why, "%suser data", sep);
	return why;
}

static bool has_string(json_t *array, const char *s)
{
	json_t *v;
	size_t i;

	json_array_foreach (array, i, v)
		if (util_streq(json_string_value(v), s))
			return true;
	return false;
}

/* pairs into changes of labels and user (a null value deletes the key),
 * and the definition's keys into nd, a copy of vm's definition made at
 * the first of them, whose names go to changed (once each). */
static int sort_pairs(const lc_vm *vm, char *const *pairs, size_t n, const char *const *roots,
                      json_t *labels, json_t *user, lc_vmdef *nd, json_t *changed, util_err *err)
{
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		_cleanup_free_ char *key = util_xstrdup(pairs[i]);
		char *eq = strchr(key, '=');
		json_t *target = user;
		const char *k = key;

		r = lc_update_pair_check(pairs[i], err);
		if (r < 0)
			break;
		*eq = '\0';
		if (util_startswith(key, "label.")) {
			target = labels;
			k = key + strlen("label.");
		}
		if (target == user && key_known(k)) {
			if (!json_array_size(changed)) {
				_cleanup_json_ json_t *j = lc_vmdef_to_json(&vm->def);

				lc_vmdef_clear(nd);
				r = lc_vmdef_from_json(j, nd, err);
			}
			if (!has_string(changed, k))
				json_array_append_new(changed, json_string(k));
			if (r == 0)
				r = key_set(nd, k, eq + 1, roots, err);
			continue;
		}
		json_object_set_new(target, k, eq[1] ? json_string(eq + 1) : json_null());
	}
	return r;
}

/* Labels and user data alone: an "update" record. */
static int update_data(lc_db *db, lc_vm *vm, json_t *labels, json_t *user, util_err *err)
{
	/* the bounds on labels and user data hold for the result */
	_cleanup_json_ json_t *cur = lc_vmdef_to_json(&vm->def);
	lc_vmdef nd;
	int r = lc_vmdef_from_json(cur, &nd, err);

	if (r < 0)
		return r;
	lc_json_apply_changes(nd.labels, labels);
	lc_json_apply_changes(nd.user, user);
	r = lc_vmdef_validate(&nd, err);
	lc_vmdef_clear(&nd);
	if (r == 0)
		r = lc_db_append(db,
		                 json_pack("{s:s, s:I, s:O, s:O}", "type", "update", "id",
		                           (json_int_t)vm->id, "labels", labels, "user", user),
		                 NULL, err);
	return r;
}

/* Keys of the definition (with any labels and user data in the same
 * record: one transaction): a "redefine" record, the cloud-init copies
 * of changed inputs replaced around it (seed_prepare, seed_commit). */
static int update_def(lc_db *db, lc_vm *vm, const char *verb, lc_vmdef *nd, json_t *changed,
                      json_t *labels, json_t *user, util_err *err)
{
	_cleanup_(lc_seed_inputs_clear) lc_seed_inputs ci = { 0 };
	_cleanup_free_ char *why = NULL;
	json_t *rec;
	int r;

	lc_json_apply_changes(nd->labels, labels);
	lc_json_apply_changes(nd->user, user);
	r = lc_vmdef_validate(nd, err);
	if (r == 0)
		r = seed_prepare(db, vm, nd, changed, &ci, err);
	if (r < 0)
		return r;
	util_crash_point("update-before-redefine");
	/* history shows the reason of a redefine: what changed */
	why = update_reason(verb, &vm->def, nd, changed, labels, user);
	rec = json_pack("{s:s, s:I, s:s}", "type", "redefine", "id", (json_int_t)vm->id, "reason",
	                why);
	json_object_update_new(rec, lc_db_def_fields(nd));
	r = lc_db_append(db, rec, NULL, err);
	if (r == 0 && (r = seed_commit(db, vm, &ci, err)) < 0)
		/* the vm reads its files from the paths recorded until then */
		util_err_prefix(err, "the definition is recorded, but");
	return r;
}

int lc_vm_update(lc_db *db, lc_vm *vm, int held_lock, char *const *pairs, size_t n,
                 const lc_update_opts *opts, util_err *err)
{
	_cleanup_json_ json_t *labels = json_object(), *user = json_object();
	_cleanup_json_ json_t *changed = json_array(), *later = NULL;
	_cleanup_free_ char *images = util_xasprintf("%s/images", lc_db_root(db));
	const char *default_roots[] = { images, NULL };
	const char *const *roots = opts && opts->disk_roots ? opts->disk_roots : default_roots;
	_cleanup_close_ int lock = held_lock;
	lc_vmdef nd;
	int r;

	r = lc_state_check(LC_OP_UPDATE, vm->def.name, vm->state, vm->lcm, err);
	if (r < 0)
		return r;
	if (n == 0)
		return util_err_set(err, -EINVAL,
		                    "nothing to update: give KEY=VALUE or label.KEY=VALUE");
	lc_vmdef_init(&nd);
	r = sort_pairs(vm, pairs, n, roots, labels, user, &nd, changed, err);
	if (r == 0)
		r = keys_check(vm, changed, &later, err);
	/* The VM lock, for every change: a disk or nic operation under way
	 * (which rewrites the whole definition when it ends) would otherwise
	 * overwrite this one. Not waited for: we hold the journal. */
	if (r == 0 && lock < 0)
		r = lc_vm_lock(db, vm->id, 0, &lock, err);
	if (r == 0 && !json_array_size(changed))
		r = update_data(db, vm, labels, user, err);
	else if (r == 0)
		r = update_def(db, vm, opts && opts->verb ? opts->verb : "update", &nd, changed,
		               labels, user, err);
	lc_vmdef_clear(&nd);
	if (r < 0)
		return util_err_prefix(err, "cannot update '%s'", vm->def.name);
	if (opts && opts->ret_later)
		*opts->ret_later = TAKE_PTR(later);
	return 0;
}

/* ---- rename ---------------------------------------------------------------------- */

int lc_vm_rename(lc_db *db, lc_vm *vm, int held_lock, const char *new_name, util_err *err)
{
	_cleanup_close_ int lock = held_lock;
	_cleanup_free_ char *old = util_xstrdup(vm->def.name), *why = NULL;
	_cleanup_json_ json_t *j = lc_vmdef_to_json(&vm->def);
	lc_vmdef nd;
	json_t *rec;
	int r = lc_state_check(LC_OP_RENAME, old, vm->state, vm->lcm, err);

	if (r == 0 && util_streq(old, new_name))
		r = util_err_set(err, -EINVAL, "the vm is named '%s' already", old);
	if (r == 0)
		r = lc_vm_name_free(db, new_name, err);
	json_object_set_new(j, "name", json_string(new_name));
	if (r == 0 && (r = lc_vmdef_from_json(j, &nd, err)) == 0) {
		/* the lock, as for update: an operation under way would write
		 * the old name back when it ends */
		if (lock < 0)
			r = lc_vm_lock(db, vm->id, 0, &lock, err);
		why = util_xasprintf("rename: '%s'→'%s'", old, new_name);
		rec = json_pack("{s:s, s:I, s:s}", "type", "redefine", "id", (json_int_t)vm->id,
		                "reason", why);
		json_object_update_new(rec, lc_db_def_fields(&nd));
		if (r == 0)
			r = lc_db_append(db, rec, NULL, err);
		else
			json_decref(rec);
		lc_vmdef_clear(&nd);
	}
	if (r < 0)
		return util_err_prefix(err, "cannot rename '%s' to '%s'", old, new_name);
	return 0;
}

/* ---- edit ------------------------------------------------------------------------ */

/* Parts of a definition edit leaves as they are, and where they change. */
static const struct {
	const char *key, *how;
} kept_keys[] = {
	{ "name", "use qvm rename" },
	{ "uuid", "a vm's uuid never changes" },
	{ "disks", "use disk-attach, disk-detach or disk-resize" },
	{ "nics", "use nic-attach or nic-detach" },
	{ "cdrom", "use cdrom-insert or cdrom-eject" },
};

/* The pair that sets key (as update names it) to the edited value v. */
static int pair_of(const char *key, json_t *v, util_strv *pairs, util_err *err)
{
	if (json_is_null(v) || (json_is_string(v) && !*json_string_value(v)))
		util_strv_pushf(pairs, "%s=", key);
	else if (json_is_string(v))
		util_strv_pushf(pairs, "%s=%s", key, json_string_value(v));
	else if (json_is_boolean(v))
		util_strv_pushf(pairs, "%s=%s", key, json_is_true(v) ? "yes" : "no");
	else if (json_is_integer(v) && strstr(key, "memory") && json_integer_value(v))
		/* a whole number of MiB: lc_vmdef_from_json checked it */
		util_strv_pushf(pairs, "%s=%" JSON_INTEGER_FORMAT "M", key,
		                json_integer_value(v) >> 20);
	else if (json_is_integer(v))
		util_strv_pushf(pairs, "%s=%" JSON_INTEGER_FORMAT, key, json_integer_value(v));
	else
		return util_err_set(err, -EINVAL, "'%s' has a value of the wrong type", key);
	return 0;
}

/* Pairs for the keys of map (labels or user data) that differ from old:
 * set or changed ones with their value, removed ones empty. */
static int map_pairs(json_t *old, json_t *now, const char *prefix, util_strv *pairs, util_err *err)
{
	const char *k;
	json_t *v;

	json_object_foreach (now, k, v) {
		if (json_equal(json_object_get(old, k), v))
			continue;
		/* as a pair it would set the definition's key */
		if (!*prefix && key_known(k))
			return util_err_set(
			        err, -EINVAL,
			        "user data key '%s' is also a key of the definition; remove it", k);
		util_strv_pushf(pairs, "%s%s=%s", prefix, k, json_string_value(v));
	}
	json_object_foreach (old, k, v)
		if (!json_object_get(now, k))
			util_strv_pushf(pairs, "%s%s=", prefix, k);
	return 0;
}

/* The top-level keys of a definition's JSON and the update keys they are. */
static const struct {
	const char *json, *key;
} edit_keys[] = {
	{ "memory", "memory" },         { "vcpus", "vcpus" },
	{ "machine", "machine" },       { "accel", "accel" },
	{ "kernel", "kernel" },         { "initrd", "initrd" },
	{ "append", "append" },         { "restart", "restart" },
	{ "autostart", "autostart" },   { "max_vcpus", "max-vcpus" },
	{ "max_memory", "max-memory" }, { "guest_agent", "guest-agent" },
};

int lc_edit_pairs(const lc_vmdef *cur, json_t *text, char ***ret_pairs, util_err *err)
{
	static const char *const ci[][2] = { { "user_data", "cloud-init.user-data" },
		                             { "meta_data", "cloud-init.meta-data" },
		                             { "network_config", "cloud-init.network-config" } };
	_cleanup_json_ json_t *old = lc_vmdef_to_json(cur), *edited = NULL;
	_cleanup_(util_strv_clear) util_strv pairs = { 0 };
	lc_vmdef check;
	int r;

	/* the whole definition first: a typo of a key, a bad value; then
	 * compared in its normal form (a key left out has its default) */
	r = lc_vmdef_from_json(text, &check, err);
	if (r < 0)
		return r;
	edited = lc_vmdef_to_json(&check);
	lc_vmdef_clear(&check);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(kept_keys); i++)
		if (!json_equal(json_object_get(old, kept_keys[i].key),
		                json_object_get(edited, kept_keys[i].key)))
			return util_err_set(err, -EINVAL, "'%s' cannot change in an edit; %s",
			                    kept_keys[i].key, kept_keys[i].how);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(edit_keys) && r == 0; i++) {
		json_t *v = json_object_get(edited, edit_keys[i].json);

		if (!json_equal(json_object_get(old, edit_keys[i].json), v))
			r = pair_of(edit_keys[i].key, v, &pairs, err);
	}
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(ci) && r == 0; i++) {
		json_t *v = json_object_get(json_object_get(edited, "cloud_init"), ci[i][0]);
		json_t *o = json_object_get(json_object_get(old, "cloud_init"), ci[i][0]);

		if (!json_equal(o, v))
			r = pair_of(ci[i][1], v, &pairs, err);
	}
	if (r == 0)
		r = map_pairs(json_object_get(old, "labels"), json_object_get(edited, "labels"),
		              "label.", &pairs, err);
	if (r == 0)
		r = map_pairs(json_object_get(old, "user"), json_object_get(edited, "user"), "",
		              &pairs, err);
	if (r < 0)
		return r;
	*ret_pairs = util_strv_steal(&pairs);
	return 0;
}
