/* The disks of an existing vm: attach, detach, resize, cd-rom media and
 * internal disk snapshots — live over the command QMP socket when the vm
 * runs, on the definition and files when it is off. Each operation records
 * an intent before its first step; the disks' settling (settle_disks) completes or rolls back
 * one a crashed qvm left behind, looking at what QEMU, the definition and
 * the files really hold. */
#include <dirent.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "run.h"
#include "vm_command.h"
#include "snap_tree.h"
#include "storage/storage.h"

#define ATTACH_OP "disk-attach"
#define DETACH_OP "disk-detach"
#define RESIZE_OP "disk-resize"
#define CDROM_OP  "cdrom"
#define DSNAP_OP  "disk-snapshot"
#define PROLOG_OP "disk-prolog"

/* ---- journal helpers ------------------------------------------------------------ */

static int open_writer(const char *root, lc_db **ret_db, util_err *err)
{
	return lc_db_open(root, LC_DB_WRITE, ret_db, err);
}

static lc_vm *vm_of(lc_db *db, uint64_t id, util_err *err)
{
	lc_vm *vm = lc_db_vm_by_id(db, id);

	if (!vm)
		util_err_set(err, -ENOENT, "no vm with id %" PRIu64, id);
	return vm;
}

/* Finish an intent in one writer transaction: the redefinition (if def is
 * given, it replaces the vm's), the state back to `back` when live, and
 * the done record. */
static int finish(const char *root, uint64_t id, uint64_t seq, const lc_vmdef *def, bool live,
                  lc_lcm back, const char *reason, const char *result, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = NULL;
	int r = open_writer(root, &db, err);

	if (r < 0)
		return r;
	if (!(vm = vm_of(db, id, err)))
		return err->code;
	/* one sync for all three; not committed, none is written and the
	 * intent stays open for the disks' settling */
	lc_db_group_begin(db);
	if (def) {
		json_t *rec = json_pack("{s:s, s:I}", "type", "redefine", "id", (json_int_t)id);

		json_object_update_new(rec, lc_db_def_fields(def));
		r = lc_db_append(db, rec, NULL, err);
		if (r < 0)
			return r;
		util_crash_point("disk-before-done");
	}
	if (live && vm->state == LC_ACTIVE &&
	    (vm->lcm == LC_LCM_HOTPLUG || vm->lcm == LC_LCM_SNAPSHOT)) {
		r = lc_db_record_state(db, vm, LC_ACTIVE, back, reason, NULL, err);
		if (r < 0)
			return r;
	}
	r = lc_db_done(db, seq, result, err);
	return r < 0 ? r : lc_db_group_commit(db, err);
}

/* ---- what state allows what --------------------------------------------------------- */

static bool is_off(lc_state s)
{
	return s == LC_PENDING || s == LC_HOLD || s == LC_POWEROFF || s == LC_UNDEPLOYED ||
	       s == LC_FAILED;
}

/* Live (ACTIVE/RUNNING, or PAUSED when paused_ok) or off; anything else is
 * refused naming the state. */
static int op_mode(const lc_vm *vm, const char *what, bool paused_ok, bool *ret_live, util_err *err)
{
	_cleanup_free_ char *now = lc_state_text(vm);

	if (vm->state == LC_ACTIVE &&
	    (vm->lcm == LC_LCM_RUNNING || (paused_ok && vm->lcm == LC_LCM_PAUSED))) {
		if (!lc_vm_supervised(vm))
			return util_err_set(
			        err, -EAGAIN,
			        "cannot %s '%s': its supervisor is gone; run 'qvm recover %s --retry'",
			        what, vm->def.name, vm->def.name);
		*ret_live = true;
		return 0;
	}
	if (is_off(vm->state)) {
		*ret_live = false;
		return 0;
	}
	return util_err_set(
	        err, -EPERM,
	        "cannot %s '%s': it is %s; this needs ACTIVE/RUNNING%s or a vm that is off (POWEROFF, PENDING, HOLD, UNDEPLOYED, FAILED)",
	        what, vm->def.name, now, paused_ok ? ", ACTIVE/PAUSED" : "");
}

static lc_disk *find_disk(lc_vmdef *def, unsigned id)
{
	for (size_t i = 0; i < def->n_disks; i++)
		if (def->disks[i].id == id)
			return &def->disks[i];
	return NULL;
}

static int no_such_disk(const lc_vmdef *def, unsigned id, util_err *err)
{
	char ids[LC_DISKS_MAX * 12] = "";
	size_t len = 0;

	for (size_t i = 0; i < def->n_disks; i++)
		len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%u", i ? ", " : "",
		                        def->disks[i].id);
	return util_err_set(err, -ENOENT,
	                    "vm '%s' has no disk %u; its disks are: %s (see 'qvm show %s')",
	                    def->name, id, def->n_disks ? ids : "none", def->name);
}

/* A copy of def (deep, through JSON: the journal's own form). */
static int copy_def(const lc_vmdef *def, lc_vmdef *ret, util_err *err)
{
	_cleanup_json_ json_t *j = lc_vmdef_to_json(def);

	return lc_vmdef_from_json(j, ret, err);
}

static void remove_disk_at(lc_vmdef *def, unsigned id)
{
	for (size_t i = 0; i < def->n_disks; i++) {
		if (def->disks[i].id != id)
			continue;
		lc_disk_clear(&def->disks[i]);
		memmove(&def->disks[i], &def->disks[i + 1],
		        (def->n_disks - i - 1) * sizeof(lc_disk));
		def->n_disks--;
		return;
	}
}

/* Append a copy of d (through JSON) to def. */
static int add_disk(lc_vmdef *def, json_t *disk_json, util_err *err)
{
	_cleanup_json_ json_t *j = lc_vmdef_to_json(def);
	lc_vmdef nd;
	int r;

	json_array_append(json_object_get(j, "disks"), disk_json);
	r = lc_vmdef_from_json(j, &nd, err);
	if (r < 0)
		return r;
	lc_vmdef_clear(def);
	*def = nd;
	return 0;
}

static json_t *disk_json_of(const lc_disk *d)
{
	/* labels and user given: lc_vmdef_to_json() would leak the empty
	 * objects it makes for NULL ones */
	_cleanup_json_ json_t *labels = json_object(), *user = json_object();
	lc_vmdef one = { .disks = (lc_disk *)d, .n_disks = 1, .labels = labels, .user = user };
	_cleanup_json_ json_t *j = lc_vmdef_to_json(&one);

	return json_incref(json_array_get(json_object_get(j, "disks"), 0));
}

/* ---- QMP helpers ------------------------------------------------------------------------ */

static int qmp_run(qmp_client *q, const char *cmd, json_t *args /* stolen */, json_t **ret,
                   util_err *err)
{
	_cleanup_json_ json_t *a = args;

	return qmp_execute(q, cmd, a, 0, ret, err);
}

/* Is there a device with this id (under /machine/peripheral)? */
static int device_exists(qmp_client *q, const char *id, bool *ret, util_err *err)
{
	_cleanup_json_ json_t *list = NULL;
	json_t *e;
	size_t i;
	int r = qmp_run(q, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &list,
	                err);

	if (r < 0)
		return r;
	*ret = false;
	json_array_foreach (list, i, e)
		if (util_streq(json_string_value(json_object_get(e, "name")), id))
			*ret = true;
	return 0;
}

/* The named block node, as query-named-block-nodes shows it (new ref), or
 * NULL in *ret when there is none. */
static int find_node(qmp_client *q, const char *node, json_t **ret, util_err *err)
{
	_cleanup_json_ json_t *list = NULL;
	json_t *e;
	size_t i;
	int r = qmp_run(q, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), &list, err);

	if (r < 0)
		return r;
	*ret = NULL;
	json_array_foreach (list, i, e)
		if (util_streq(json_string_value(json_object_get(e, "node-name")), node)) {
			*ret = json_incref(e);
			break;
		}
	return 0;
}

/* SCSI disks hang off scsi0, which exists only if the vm booted with a
 * SCSI disk: add the controller first when it is missing. */
static int ensure_scsi(qmp_client *q, const lc_vmdef *def, util_err *err)
{
	bool have;
	int r = device_exists(q, "scsi0", &have, err);

	if (r < 0 || have)
		return r;
	return lc_hotplug_device_add(
	        q, def, json_pack("{s:s, s:s}", "driver", "virtio-scsi-pci", "id", "scsi0"), NULL,
	        err);
}

/* Wait for DEVICE_DELETED of device id until deadline (monotonic ms). */
static int wait_deleted(qmp_client *q, const char *id, int64_t deadline, util_err *err)
{
	for (;;) {
		_cleanup_json_ json_t *ev = NULL;
		int64_t left = deadline - util_now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = qmp_wait_event(q, "DEVICE_DELETED", (int)left, &ev, err);
		if (r < 0)
			return r;
		if (util_streq(json_string_value(
		                       json_object_get(json_object_get(ev, "data"), "device")),
		               id))
			return 0;
	}
}

static void node_name(char *buf, size_t len, unsigned id)
{
	snprintf(buf, len, "disk%u", id);
}

/* ---- one disk operation --------------------------------------------------------------------- */

/* What every operation below keeps from holding the vm to letting it go:
 * each takes the same steps (hold, open the journal, check the state,
 * record the intent, let the journal go, talk to QEMU, finish or roll
 * back), and these are those steps. */
typedef struct disk_op {
	lc_cmd c;                     /* the held vm and its QEMU (c.qmp, when live) */
	const lc_disk_opts *o;        /* never NULL */
	lc_db *db;                    /* the writer, until the intent is recorded */
	lc_vm *vm;                    /* the vm in db */
	lc_vmdef nd;                  /* the definition the operation leads to */
	char *images;                 /* the image store */
	const char *default_roots[2]; /* { images, NULL }: unless o names disk roots */
	uint64_t seq;                 /* the intent */
	bool live;
	lc_lcm back; /* the lcm state a live vm returns to */
} disk_op;

static int op_hold(disk_op *op, const char *root, const char *name, const lc_disk_opts *o,
                   util_err *err)
{
	static const lc_disk_opts none = { 0 };
	int r;

	*op = (disk_op){ .o = o ? o : &none, .back = LC_LCM_RUNNING };
	r = lc_cmd_hold(&op->c, root, name, &op->o->run, err);
	if (r < 0)
		return r;
	lc_cmd_let_go(&op->c); /* op_open() reads it as the journal's writer */
	op->images = util_xasprintf("%s/images", root);
	op->default_roots[0] = op->images;
	return 0;
}

/* The folders image paths may come from: the caller's, else the store. */
static const char *const *op_roots(const disk_op *op)
{
	return op->o->disk_roots ? op->o->disk_roots : op->default_roots;
}

/* The journal's writer and the vm in it; with a disk id, that disk too. */
static int op_open(disk_op *op, const unsigned *disk_id, lc_disk **ret_disk, util_err *err)
{
	lc_disk *d;
	int r = open_writer(op->c.root, &op->db, err);

	if (r < 0)
		return r;
	if (!(op->vm = vm_of(op->db, op->c.h.id, err)))
		return err->code;
	if (disk_id) {
		if (!(d = find_disk(&op->vm->def, *disk_id)))
			return no_such_disk(&op->vm->def, *disk_id, err);
		*ret_disk = d;
	}
	return 0;
}

/* op_mode() on the opened vm, remembering the state to return to. */
static int op_check(disk_op *op, const char *what, bool paused_ok, util_err *err)
{
	int r = op_mode(op->vm, what, paused_ok, &op->live, err);

	if (r == 0)
		op->back = op->vm->lcm;
	return r;
}

/* Record the intent (data stolen) and, live, the vm in `during`, which
 * keeps other operations off it; then let the journal go: QMP waits must
 * not hold it. */
static int op_record(disk_op *op, const char *name, json_t *data, lc_lcm during, const char *reason,
                     util_err *err)
{
	int r;

	lc_db_group_begin(op->db); /* one sync for both */
	r = lc_db_intent(op->db, name, op->c.h.id, data, &op->seq, err);
	if (r == 0 && op->live)
		r = lc_db_record_state(op->db, op->vm, LC_ACTIVE, during, reason, NULL, err);
	if (r == 0)
		r = lc_db_group_commit(op->db, err);
	if (r < 0)
		return r;
	lc_db_close(TAKE_PTR(op->db));
	op->vm = NULL; /* it lived in the journal */
	return 0;
}

static int op_connect(disk_op *op, util_err *err)
{
	return lc_cmd_qmp(&op->c, err);
}

/* Finish the intent; with redefine, the vm takes op->nd. */
static int op_finish(disk_op *op, bool redefine, const char *reason, const char *result,
                     util_err *err)
{
	return finish(op->c.root, op->c.h.id, op->seq, redefine ? &op->nd : NULL, op->live,
	              op->back, reason, result, err);
}

/* Close a failed operation's intent as rolled back. Its error stays the
 * one to report: what goes wrong here is left to the next command, which
 * settles the intent. */
static void op_roll_back(disk_op *op, const char *reason)
{
	util_err ignored = { 0 };

	op_finish(op, false, reason, "rolled-back", &ignored);
}

/* Let go of all op holds (the vm lock too); returns r, so that an
 * operation ends with `return op_end(&op, r)`. */
static int op_end(disk_op *op, int r)
{
	lc_vmdef_clear(&op->nd);
	lc_db_close(TAKE_PTR(op->db));
	lc_cmd_end(&op->c, r);
	free(TAKE_PTR(op->images));
	return r;
}

/* ---- attach ------------------------------------------------------------------------------- */

/* A node of that name with no device: left by a detach whose blockdev-del
 * QEMU refused. A disk attached under its name would be refused as a
 * duplicate: delete it first. */
static int drop_stale_node(qmp_client *q, const char *node, util_err *err)
{
	_cleanup_json_ json_t *n = NULL;
	bool present = false;
	int r = find_node(q, node, &n, err);

	if (r == 0 && n)
		r = device_exists(q, node, &present, err);
	if (r == 0 && n && !present)
		r = qmp_run(q, "blockdev-del", json_pack("{s:s}", "node-name", node), NULL, err);
	return r;
}

/* QEMU side of an attach: blockdev-add, then device_add; undone on failure.
 * ret_pci: where the device went. */
static int attach_live(qmp_client *q, const lc_vmdef *def, const lc_disk *d, lc_pci *ret_pci,
                       util_err *err)
{
	json_t *bd, *dev;
	char node[32];
	int r;

	node_name(node, sizeof(node), d->id);
	lc_disk_qemu_json(d, &bd, &dev);
	if (d->bus == LC_BUS_SCSI && (r = ensure_scsi(q, def, err)) < 0) {
		json_decref(bd);
		json_decref(dev);
		return r;
	}
	r = drop_stale_node(q, node, err);
	if (r == 0)
		r = qmp_run(q, "blockdev-add", bd, NULL, err);
	else
		json_decref(bd);
	if (r < 0) {
		json_decref(dev);
		return r;
	}
	util_crash_point("disk-attach-after-blockdev");
	r = lc_hotplug_device_add(q, def, dev, ret_pci, err);
	if (r < 0) {
		util_err ignored = { 0 };

		qmp_run(q, "blockdev-del", json_pack("{s:s}", "node-name", node), NULL, &ignored);
		return r;
	}
	util_crash_point("disk-attach-after-device");
	return 0;
}

/* After a QMP failure that leaves QEMU's side unknown (the connection
 * closed, or no reply in time: QEMU may have done it all the same), take
 * out on a fresh connection whatever of the attach QEMU holds. On failure
 * the intent stays open for the next command to settle. */
static int attach_undo_unknown(disk_op *op, const lc_disk *d, util_err *err)
{
	_cleanup_json_ json_t *n = NULL;
	bool present = false;
	char node[32];
	int r;

	qmp_close(TAKE_PTR(op->c.qmp));
	node_name(node, sizeof(node), d->id);
	r = op_connect(op, err);
	if (r == 0)
		r = device_exists(op->c.qmp, node, &present, err);
	if (r == 0 && present) {
		r = qmp_run(op->c.qmp, "device_del", json_pack("{s:s}", "id", node), NULL, err);
		if (r == 0)
			r = wait_deleted(op->c.qmp, node,
			                 util_now_ms() + LC_DETACH_TIMEOUT_S * 1000, err);
	}
	if (r == 0)
		r = find_node(op->c.qmp, node, &n, err);
	if (r == 0 && n)
		r = qmp_run(op->c.qmp, "blockdev-del", json_pack("{s:s}", "node-name", node), NULL,
		            err);
	return r;
}

int lc_vm_disk_attach(const char *root, const char *name, lc_disk *disk, const lc_disk_opts *o,
                      json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *djson = NULL;
	disk_op op;
	unsigned id = 0;
	bool made = false;
	int r = op_hold(&op, root, name, o, err);

	if (r < 0)
		return r;
	r = op_open(&op, NULL, NULL, err);
	if (r == 0)
		r = op_check(&op, "attach a disk to", false, err);
	if (r < 0)
		goto out;
	if (op.vm->def.n_disks >= LC_DISKS_MAX) {
		r = util_err_set(
		        err, -ENOSPC,
		        "cannot attach a disk to '%s': it has %d disks, the most a vm may have",
		        op.c.h.name, LC_DISKS_MAX);
		goto out;
	}
	if (op.live && disk->bus == LC_BUS_IDE) {
		r = util_err_set(
		        err, -ENOTSUP,
		        "cannot attach an ide disk to '%s' while it runs (ide has no hotplug); use --bus virtio or scsi, or attach it while the vm is off",
		        op.c.h.name);
		goto out;
	}
	for (size_t i = 0; i < op.vm->def.n_disks; i++)
		if (op.vm->def.disks[i].id >= id)
			id = op.vm->def.disks[i].id + 1;
	disk->id = id;
	r = lc_place_disk(op.db, op.c.h.id, disk, op_roots(&op), err);
	if (r < 0) {
		util_err_prefix(err, "cannot attach a disk to '%s'", op.c.h.name);
		goto out;
	}
	djson = disk_json_of(disk);
	r = copy_def(&op.vm->def, &op.nd, err);
	if (r == 0)
		r = add_disk(&op.nd, djson, err);
	if (r == 0)
		r = lc_vmdef_validate(&op.nd, err);
	if (r == 0)
		r = op_record(&op, ATTACH_OP,
		              json_pack("{s:O, s:b, s:s}", "disk", djson, "live", op.live, "prev",
		                        lc_lcm_name(op.back)),
		              LC_LCM_HOTPLUG, "attaching a disk", err);
	if (r < 0)
		goto out;
	util_crash_point("disk-attach-after-intent");

	r = lc_make_disk(disk, err);
	if (r < 0)
		goto rollback;
	made = true;
	util_crash_point("disk-attach-after-file");
	/* placing checked the source; it may have been swapped while the
	 * overlay was made: checked again right before QEMU opens it */
	r = lc_check_disk_files(root, op.c.h.id, disk, op_roots(&op), err);
	if (r < 0)
		goto rollback;
	if (op.live) {
		util_err uerr = { 0 };

		r = op_connect(&op, err);
		if (r == 0)
			r = attach_live(op.c.qmp, &op.nd, disk, &op.nd.disks[op.nd.n_disks - 1].pci,
			                err);
		if (r < 0 && op.c.qmp && !qmp_alive(op.c.qmp) &&
		    attach_undo_unknown(&op, disk, &uerr) < 0)
			goto out; /* QEMU's side unknown: the next command settles it */
		if (r < 0)
			goto rollback;
	}
	r = op_finish(&op, true, "disk attached", "ok", err);
	if (r < 0)
		goto out; /* recorded as far as it got: the next command settles it */
	if (ret_json)
		*ret_json =
		        json_pack("{s:s, s:i, s:b, s:s, s:O}", "vm", op.c.h.name, "disk", (int)id,
		                  "live", op.live, "path", disk->path, "definition", djson);
	goto out;

rollback : {
	util_err ignored = { 0 };

	if (made)
		stor_remove_disk(disk->path, false, &ignored);
	op_roll_back(&op, "disk attach failed; rolled back");
	util_err_prefix(err, "cannot attach disk %u to '%s'", id, op.c.h.name);
}
out:
	return op_end(&op, r);
}

/* ---- detach -------------------------------------------------------------------------------- */

/* QEMU's side of a detach: device_del, the guest's release, blockdev-del.
 * < 0 when the disk stays (the caller rolls back), 1 when QEMU's side is
 * unknown (the intent stays for the next command). */
static int detach_live(disk_op *op, unsigned disk_id, int timeout_s, util_err *err)
{
	char node[32];
	bool present = true;
	int r;

	node_name(node, sizeof(node), disk_id);
	r = op_connect(op, err);
	if (r == 0)
		r = device_exists(op->c.qmp, node, &present, err);
	/* gone already: a guest that released it after an earlier
	 * detach gave up waiting */
	if (r == 0 && present) {
		r = qmp_run(op->c.qmp, "device_del", json_pack("{s:s}", "id", node), NULL, err);
		/* asked before (a detach that gave up waiting): wait again */
		if (r == -EREMOTEIO && strstr(err->msg, "in the process of unplug")) {
			util_err_clear(err);
			r = 0;
		}
		util_crash_point("disk-detach-after-device-del");
		if (r == 0)
			r = wait_deleted(op->c.qmp, node, util_now_ms() + timeout_s * 1000, err);
		if (r == -ETIMEDOUT)
			r = util_err_set(
			        err, -ETIMEDOUT,
			        "the guest did not release disk %u within %d s, so it stays attached and in the definition (a guest without hotplug support, or one still using it); the request stays pending in the guest: if it lets go later, run disk-detach again",
			        disk_id, timeout_s);
	}
	if (r < 0 && !qmp_alive(op->c.qmp)) {
		/* no answer, or none in time: QEMU may have done it
		 * all the same; ask again on a fresh connection */
		util_err aerr = { 0 };

		qmp_close(TAKE_PTR(op->c.qmp));
		if (op_connect(op, &aerr) < 0 ||
		    device_exists(op->c.qmp, node, &present, &aerr) < 0)
			return 1; /* unknown: the next command settles it */
		if (!present) {
			util_err_clear(err);
			r = 0;
		}
	}
	if (r < 0)
		return r;
	util_crash_point("disk-detach-after-device");
	r = qmp_run(op->c.qmp, "blockdev-del", json_pack("{s:s}", "node-name", node), NULL, err);
	if (r < 0 && !qmp_alive(op->c.qmp)) {
		/* once more on a fresh connection */
		qmp_close(TAKE_PTR(op->c.qmp));
		if (op_connect(op, NULL) == 0)
			qmp_run(op->c.qmp, "blockdev-del", json_pack("{s:s}", "node-name", node),
			        NULL, NULL);
	}
	/* the device is gone: the detach goes on, a node qemu would not
	 * delete is left to it until it stops (an attach of its name drops
	 * it first) */
	util_err_clear(err);
	return 0;
}

int lc_vm_disk_detach(const char *root, const char *name, unsigned disk_id, const lc_disk_opts *o,
                      json_t **ret_json, util_err *err)
{
	_cleanup_free_ char *path = NULL;
	disk_op op;
	lc_disk *d = NULL;
	bool owned = false;
	char node[32];
	int timeout_s, r = op_hold(&op, root, name, o, err);

	if (r < 0)
		return r;
	timeout_s = op.o->timeout_s > 0 ? op.o->timeout_s : LC_DETACH_TIMEOUT_S;
	node_name(node, sizeof(node), disk_id);
	r = op_open(&op, &disk_id, &d, err);
	if (r == 0)
		r = op_check(&op, "detach a disk from", false, err);
	if (r < 0)
		goto out;
	path = util_xstrdup(d->path);
	owned = d->owned;
	r = copy_def(&op.vm->def, &op.nd, err);
	if (r < 0)
		goto out;
	remove_disk_at(&op.nd, disk_id);
	r = op_record(&op, DETACH_OP,
	              json_pack("{s:o, s:b, s:s, s:i}", "disk", disk_json_of(d), "live", op.live,
	                        "prev", lc_lcm_name(op.back), "timeout_s", timeout_s),
	              LC_LCM_HOTPLUG, "detaching a disk", err);
	if (r < 0)
		goto out;
	util_crash_point("disk-detach-after-intent");

	if (op.live) {
		r = detach_live(&op, disk_id, timeout_s, err);
		if (r > 0)
			goto out;
		if (r < 0)
			goto rollback;
	}
	util_crash_point("disk-detach-before-define");
	r = op_finish(&op, true, "disk detached", "ok", err);
	if (r < 0)
		goto out;
	/* the definition no longer has it: its file goes (as a non-persistent
	 * disk does in OpenNebula); a crash before this is finished by
	 * recovery */
	if (owned && stor_remove_disk(path, false, err) < 0)
		goto out_detached;
	if (ret_json)
		*ret_json = json_pack("{s:s, s:i, s:b, s:o}", "vm", op.c.h.name, "disk",
		                      (int)disk_id, "live", op.live, "removed",
		                      owned ? json_string(path) : json_null());
	goto out;

out_detached:
	util_err_prefix(err, "disk %u was detached from '%s' but its file could not be removed",
	                disk_id, op.c.h.name);
	goto out;
rollback:
	op_roll_back(&op, "disk detach failed; nothing changed");
	util_err_prefix(err, "cannot detach disk %u from '%s'", disk_id, op.c.h.name);
out:
	return op_end(&op, r);
}

/* ---- resize -------------------------------------------------------------------------------- */

/* The disk's ImageInfo (new ref): QEMU's when live (q), qemu-img's when
 * off. */
static int image_info(qmp_client *q, const lc_disk *d, json_t **ret, util_err *err)
{
	_cleanup_json_ json_t *info = NULL;
	char node[32];
	int r;

	if (!q)
		return stor_disk_info(d->path, d->format, ret, err);
	node_name(node, sizeof(node), d->id);
	r = find_node(q, node, &info, err);
	if (r < 0)
		return r;
	if (!info)
		return util_err_set(err, -ENOENT, "qemu has no block node '%s'", node);
	*ret = json_incref(json_object_get(info, "image"));
	return 0;
}

/* The disk's current virtual size. */
static int current_size(qmp_client *q, const lc_disk *d, uint64_t *ret, util_err *err)
{
	_cleanup_json_ json_t *img = NULL;
	int r = image_info(q, d, &img, err);

	if (r < 0)
		return r;
	*ret = (uint64_t)json_integer_value(json_object_get(img, "virtual-size"));
	return 0;
}

static int do_resize(qmp_client *q, const lc_disk *d, uint64_t size, bool shrink, util_err *err)
{
	char node[32];

	node_name(node, sizeof(node), d->id);
	if (q)
		return qmp_run(q, "block_resize",
		               json_pack("{s:s, s:I}", "node-name", node, "size", (json_int_t)size),
		               NULL, err);
	return stor_resize(d->path, d->format, size, shrink, err);
}

int lc_vm_disk_resize(const char *root, const char *name, unsigned disk_id, uint64_t size,
                      const lc_disk_opts *o, json_t **ret_json, util_err *err)
{
	disk_op op;
	lc_disk *d = NULL;
	uint64_t cur = 0;
	char a[16], b[16];
	int r = op_hold(&op, root, name, o, err);

	if (r < 0)
		return r;
	r = op_open(&op, &disk_id, &d, err);
	if (r == 0)
		r = op_check(&op, "resize a disk of", true, err);
	if (r == 0 && (size == 0 || size % 512))
		r = util_err_set(
		        err, -EINVAL,
		        "cannot resize disk %u of '%s': the size must be a non-zero multiple of 512 bytes",
		        disk_id, op.c.h.name);
	if (r == 0 && d->readonly)
		r = util_err_set(err, -EPERM, "cannot resize disk %u of '%s': it is read-only",
		                 disk_id, op.c.h.name);
	/* off, qemu-img opens the disk's whole chain (its base image too) */
	if (r == 0 && !op.live &&
	    (r = lc_check_disk_files(root, op.c.h.id, d, op_roots(&op), err)) < 0)
		util_err_prefix(err, "cannot resize disk %u of '%s'", disk_id, op.c.h.name);
	if (r < 0)
		goto out;
	if (op.live)
		r = op_connect(&op, err);
	if (r == 0)
		r = current_size(op.c.qmp, d, &cur, err);
	if (r < 0) {
		util_err_prefix(err, "cannot resize disk %u of '%s'", disk_id, op.c.h.name);
		goto out;
	}
	if (size < cur && !op.o->shrink) {
		r = util_err_set(
		        err, -EPERM,
		        "cannot shrink disk %u of '%s' from %s to %s without --shrink (data beyond the new end is lost; shrink the guest's filesystem first)",
		        disk_id, op.c.h.name, util_format_size(cur, a, sizeof(a)),
		        util_format_size(size, b, sizeof(b)));
		goto out;
	}
	r = copy_def(&op.vm->def, &op.nd, err);
	if (r < 0)
		goto out;
	find_disk(&op.nd, disk_id)->size = size;
	r = op_record(&op, RESIZE_OP,
	              json_pack("{s:i, s:I, s:b, s:b, s:s}", "disk", (int)disk_id, "size",
	                        (json_int_t)size, "shrink", op.o->shrink, "live", op.live, "prev",
	                        lc_lcm_name(op.back)),
	              LC_LCM_HOTPLUG, "resizing a disk", err);
	if (r < 0)
		goto out;
	util_crash_point("disk-resize-after-intent");
	r = do_resize(op.c.qmp, find_disk(&op.nd, disk_id), size, op.o->shrink, err);
	if (r < 0) {
		op_roll_back(&op, "disk resize failed");
		util_err_prefix(err, "cannot resize disk %u of '%s'", disk_id, op.c.h.name);
		goto out;
	}
	util_crash_point("disk-resize-after-resize");
	r = op_finish(&op, true, "disk resized", "ok", err);
	if (r == 0 && ret_json)
		*ret_json = json_pack("{s:s, s:i, s:b, s:I, s:I}", "vm", op.c.h.name, "disk",
		                      (int)disk_id, "live", op.live, "old_size", (json_int_t)cur,
		                      "size", (json_int_t)size);
out:
	return op_end(&op, r);
}

/* ---- cd-rom ---------------------------------------------------------------------------------- */

/* The medium in device dev (query-block by qdev id): its node and file
 * name, both NULL when the tray is empty; *ret_found false without such a
 * device. */
static int medium_of(qmp_client *q, const char *dev, char **ret_node, char **ret_file,
                     bool *ret_found, util_err *err)
{
	_cleanup_json_ json_t *list = NULL;
	json_t *e;
	size_t i;
	int r = qmp_run(q, "query-block", NULL, &list, err);

	if (r < 0)
		return r;
	*ret_node = *ret_file = NULL;
	*ret_found = false;
	json_array_foreach (list, i, e) {
		const char *qdev = json_string_value(json_object_get(e, "qdev"));
		json_t *ins = json_object_get(e, "inserted");

		if (!qdev ||
		    !(util_streq(qdev, dev) || (util_startswith(qdev, "/machine/peripheral/") &&
		                                util_streq(qdev + 20, dev))))
			continue;
		*ret_found = true;
		if (ins) {
			*ret_node =
			        util_xstrdup(json_string_value(json_object_get(ins, "node-name")));
			*ret_file = util_xstrdup(json_string_value(json_object_get(ins, "file")));
		}
	}
	return 0;
}

/* blockdev-add of a read-only raw node on iso, named `node`. */
static int cdrom_node_add(qmp_client *q, const char *node, const char *iso, util_err *err)
{
	return qmp_run(q, "blockdev-add",
	               json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:b}}", "node-name", node, "driver",
	                         "raw", "read-only", 1, "file", "driver", "file", "filename", iso,
	                         "read-only", 1),
	               NULL, err);
}

/* A fresh node name for a medium: the old medium's may still be in use. */
static void cdrom_node_name(char *buf, size_t len)
{
	snprintf(buf, len, "cdrom0-%" PRIx64, (uint64_t)util_realtime_ms());
}

/* Put node (NULL: none) into the drive: open the tray, take out what is
 * there, insert node, close the tray. change: a change asked for (its
 * crash and failure points apply), not a restore. */
static int cdrom_put(qmp_client *q, const char *node, bool change, util_err *err)
{
	int r = qmp_run(q, "blockdev-open-tray",
	                json_pack("{s:s, s:b}", "id", "cdrom0", "force", 1), NULL, err);

	if (r == 0)
		r = qmp_run(q, "blockdev-remove-medium", json_pack("{s:s}", "id", "cdrom0"), NULL,
		            err);
	if (r == 0 && change)
		util_crash_point("cdrom-after-remove");
	if (r == 0 && node) {
		if (change)
			r = util_fail_point("cdrom-before-insert", err);
		if (r == 0)
			r = qmp_run(q, "blockdev-insert-medium",
			            json_pack("{s:s, s:s}", "id", "cdrom0", "node-name", node),
			            NULL, err);
	}
	if (r == 0)
		r = qmp_run(q, "blockdev-close-tray", json_pack("{s:s}", "id", "cdrom0"), NULL,
		            err);
	return r;
}

/* Delete the cd-rom media nodes ("cdrom0" from the command line, "cdrom0-*"
 * added since) that are not in the drive: an old medium once its
 * successor is in, a new one a failure or crash left out. */
static void cdrom_drop_spare(qmp_client *q, const char *keep)
{
	_cleanup_json_ json_t *list = NULL;
	util_err ignored = { 0 };
	json_t *e;
	size_t i;

	if (qmp_run(q, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), &list, &ignored) <
	    0)
		return;
	json_array_foreach (list, i, e) {
		const char *n = json_string_value(json_object_get(e, "node-name"));

		if (!n || util_streq(n, keep) ||
		    !(util_streq(n, "cdrom0") || util_startswith(n, "cdrom0-")))
			continue;
		qmp_run(q, "blockdev-del", json_pack("{s:s}", "node-name", n), NULL, &ignored);
		util_err_clear(&ignored);
	}
}

/* Make the drive hold iso (NULL: empty), as the definition says: after a
 * failed or interrupted change, the old medium goes back in. Its node is
 * still there (a change deletes the old node last), else a new one is
 * made. */
static int cdrom_restore(qmp_client *q, const char *iso, util_err *err)
{
	_cleanup_free_ char *mnode = NULL, *mfile = NULL;
	_cleanup_json_ json_t *list = NULL;
	char fresh[40];
	const char *node = NULL;
	bool found;
	json_t *e;
	size_t i;
	int r = medium_of(q, "cdrom0", &mnode, &mfile, &found, err);

	if (r < 0 || !found)
		return r;
	if (iso ? util_streq(mfile, iso) : !mfile) {
		cdrom_drop_spare(q, mnode);
		return 0;
	}
	if (iso) {
		r = qmp_run(q, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), &list,
		            err);
		if (r < 0)
			return r;
		json_array_foreach (list, i, e) {
			const char *n = json_string_value(json_object_get(e, "node-name"));

			if (n && (util_streq(n, "cdrom0") || util_startswith(n, "cdrom0-")) &&
			    util_streq(json_string_value(json_object_get(e, "file")), iso))
				node = n;
		}
		if (!node) {
			cdrom_node_name(fresh, sizeof(fresh));
			r = cdrom_node_add(q, fresh, iso, err);
			if (r < 0)
				return r;
			node = fresh;
		}
	}
	r = cdrom_put(q, node, false, err);
	if (r == 0)
		cdrom_drop_spare(q, node);
	return r;
}

/* Change the medium of a running vm's drive to iso (NULL: eject). The new
 * node is added first and the old one deleted last, so that a failure
 * part way puts the old medium back (and a crash leaves it for
 * the disks' settling (settle_disks) to put back); the new node never outlives a failure. */
static int cdrom_live(qmp_client *q, const char *vmname, const char *iso, const char *old_iso,
                      util_err *err)
{
	_cleanup_free_ char *old = NULL, *file = NULL;
	char node[40];
	bool found;
	int r = medium_of(q, "cdrom0", &old, &file, &found, err);

	if (r < 0)
		return r;
	if (!found)
		return util_err_set(
		        err, -ENODEV,
		        "vm '%s' has no cd-rom drive (it started without an ISO); change the cd-rom while it is off",
		        vmname);
	if (iso) {
		cdrom_node_name(node, sizeof(node));
		r = cdrom_node_add(q, node, iso, err);
		if (r < 0)
			return r;
	}
	r = cdrom_put(q, iso ? node : NULL, true, err);
	if (r < 0) {
		util_err ignored = { 0 };

		/* the drive back to what the definition says, the new node gone */
		cdrom_restore(q, old_iso, &ignored);
		if (iso)
			qmp_run(q, "blockdev-del", json_pack("{s:s}", "node-name", node), NULL,
			        &ignored);
		return r;
	}
	cdrom_drop_spare(q, iso ? node : NULL);
	return 0;
}

int lc_vm_cdrom(const char *root, const char *name, const char *iso, const lc_disk_opts *o,
                json_t **ret_json, util_err *err)
{
	_cleanup_free_ char *real = NULL, *old_iso = NULL;
	disk_op op;
	int r = op_hold(&op, root, name, o, err);

	if (r < 0)
		return r;
	if (iso && (r = stor_check_path(iso, op_roots(&op), &real, err)) < 0) {
		util_err_prefix(err, "cannot insert into the cd-rom of '%s'", op.c.h.name);
		goto out;
	}
	r = op_open(&op, NULL, NULL, err);
	if (r == 0)
		r = op_check(&op, iso ? "insert a cd-rom into" : "eject the cd-rom of", true, err);
	if (r == 0 && op.vm->def.machine == LC_MACHINE_MICROVM)
		r = util_err_set(err, -ENOTSUP, "vm '%s' is a microvm, which has no cd-rom drive",
		                 op.c.h.name);
	if (r == 0)
		r = copy_def(&op.vm->def, &op.nd, err);
	if (r < 0)
		goto out;
	old_iso = op.vm->def.cdrom ? util_xstrdup(op.vm->def.cdrom) : NULL;
	free(op.nd.cdrom);
	op.nd.cdrom = real ? util_xstrdup(real) : NULL;
	r = op_record(&op, CDROM_OP,
	              json_pack("{s:o, s:b, s:s}", "iso", real ? json_string(real) : json_null(),
	                        "live", op.live, "prev", lc_lcm_name(op.back)),
	              LC_LCM_HOTPLUG, iso ? "inserting a cd-rom" : "ejecting the cd-rom", err);
	if (r < 0)
		goto out;
	if (op.live) {
		r = op_connect(&op, err);
		/* checked again right before QEMU opens it */
		if (r == 0 && real && (r = stor_check_path(real, op_roots(&op), NULL, err)) < 0)
			util_err_prefix(err, "cdrom");
		if (r == 0)
			r = cdrom_live(op.c.qmp, op.c.h.name, real, old_iso, err);
		if (r < 0) {
			op_roll_back(&op, "cd-rom change failed");
			util_err_prefix(err, "cannot change the cd-rom of '%s'", op.c.h.name);
			goto out;
		}
	}
	util_crash_point("cdrom-before-define");
	r = op_finish(&op, true, iso ? "cd-rom inserted" : "cd-rom ejected", "ok", err);
	if (r == 0 && ret_json)
		*ret_json = json_pack("{s:s, s:b, s:o}", "vm", op.c.h.name, "live", op.live,
		                      "cdrom", real ? json_string(real) : json_null());
out:
	return op_end(&op, r);
}

/* ---- disk snapshots -------------------------------------------------------------------------- */

/* Snapshots as qvm prints them, from QEMU's or qemu-img's ImageInfo list. */
static json_t *snap_list(json_t *snaps)
{
	json_t *out = json_array(), *s;
	size_t i;

	json_array_foreach (snaps, i, s)
		json_array_append_new(
		        out, json_pack("{s:O, s:O, s:I, s:I}", "id", json_object_get(s, "id"),
		                       "name", json_object_get(s, "name"), "date_ms",
		                       json_integer_value(json_object_get(s, "date-sec")) * 1000 +
		                               json_integer_value(json_object_get(s, "date-nsec")) /
		                                       1000000,
		                       "vm_state_size",
		                       json_integer_value(json_object_get(s, "vm-state-size"))));
	return out;
}

static int list_snaps(qmp_client *q, const lc_disk *d, json_t **ret, util_err *err)
{
	_cleanup_json_ json_t *img = NULL;
	int r = image_info(q, d, &img, err);

	if (r < 0)
		return r;
	*ret = snap_list(json_object_get(img, "snapshots"));
	return 0;
}

/* The snapshot a TAG|ID names: by name first, then by id. */
static json_t *snap_find(json_t *list, const char *tag)
{
	json_t *s;
	size_t i;

	json_array_foreach (list, i, s)
		if (util_streq(json_string_value(json_object_get(s, "name")), tag))
			return s;
	json_array_foreach (list, i, s)
		if (util_streq(json_string_value(json_object_get(s, "id")), tag))
			return s;
	return NULL;
}

/* How qemu-img names an existing snapshot: `snapshot -d` looks names up
 * only, so the name (all-digit names are refused at creation, so a name
 * never reads as an id), or the id of a nameless one. */
static const char *snap_ref(json_t *snap, const char *tag)
{
	const char *n = json_string_value(json_object_get(snap, "name"));

	if (!snap)
		return tag;
	return n && *n ? n : json_string_value(json_object_get(snap, "id"));
}

static int snap_live(qmp_client *q, const lc_disk *d, lc_dsnap_op op, json_t *snap, const char *tag,
                     util_err *err)
{
	char node[32];

	node_name(node, sizeof(node), d->id);
	if (op == LC_DSNAP_CREATE)
		return qmp_run(q, "blockdev-snapshot-internal-sync",
		               json_pack("{s:s, s:s}", "device", node, "name", tag), NULL, err);
	return qmp_run(q, "blockdev-snapshot-delete-internal-sync",
	               json_pack("{s:s, s:O, s:O}", "device", node, "id",
	                         json_object_get(snap, "id"), "name",
	                         json_object_get(snap, "name")),
	               NULL, err);
}

/* May op go on with tag on disk disk_id (list: the disk's snapshots)?
 * *ret_snap (borrowed from list) is the disk snapshot tag names, or NULL. */
static int check_tag(const disk_op *dop, unsigned disk_id, lc_dsnap_op op, const char *tag,
                     json_t *list, json_t **ret_snap, util_err *err)
{
	json_t *snap = snap_find(list, tag), *vsnap;

	/* a vm snapshot's part of this disk is the vm snapshot's: its name is
	 * not taken again, and it goes only with snapshot-delete */
	if (op == LC_DSNAP_CREATE && (vsnap = lc_snap_of_disk(dop->vm, disk_id, tag))) {
		return util_err_set(
		        err, -EEXIST,
		        "cannot create a snapshot of disk %u of '%s': '%s' is the tag of vm snapshot %" PRId64
		        ", which disk %u is part of; choose another tag",
		        disk_id, dop->c.h.name, tag,
		        (int64_t)json_integer_value(json_object_get(vsnap, "id")), disk_id);
	}
	if (op == LC_DSNAP_DELETE && snap &&
	    (vsnap = lc_snap_of_disk(dop->vm, disk_id,
	                             json_string_value(json_object_get(snap, "name"))))) {
		const char *vtag = json_string_value(json_object_get(vsnap, "tag"));

		return util_err_set(
		        err, -EPERM,
		        "cannot delete snapshot '%s' of disk %u of '%s': it is disk %u's part of vm snapshot %" PRId64
		        " '%s'; delete that with qvm snapshot-delete %s %s",
		        vtag, disk_id, dop->c.h.name, disk_id,
		        (int64_t)json_integer_value(json_object_get(vsnap, "id")), vtag,
		        dop->c.h.name, vtag);
	}
	if (op == LC_DSNAP_CREATE && snap)
		return util_err_set(err, -EEXIST,
		                    "disk %u of '%s' has a snapshot named '%s' already (id %s)",
		                    disk_id, dop->c.h.name, tag,
		                    json_string_value(json_object_get(snap, "id")));
	if (op != LC_DSNAP_CREATE && !snap)
		return util_err_set(
		        err, -ENOENT,
		        "disk %u of '%s' has no snapshot '%s' (see 'qvm disk-snapshot-list %s %u')",
		        disk_id, dop->c.h.name, tag, dop->c.h.name, disk_id);
	*ret_snap = snap;
	return 0;
}

/* Do op on the disk (dcopy): live through QEMU under an intent, else with
 * qemu-img on the file. */
static int run_disk_snapshot(disk_op *dop, const lc_disk *dcopy, lc_dsnap_op op, json_t *snap,
                             const char *tag, util_err *err)
{
	int r = 0;

	/* off, qemu-img changes the file alone: no intent, nothing to settle */
	if (dop->live)
		r = op_record(dop, DSNAP_OP,
		              json_pack("{s:i, s:s, s:b, s:s}", "disk", (int)dcopy->id, "tag", tag,
		                        "live", dop->live, "prev", lc_lcm_name(dop->back)),
		              LC_LCM_SNAPSHOT, "disk snapshot", err);
	if (r < 0)
		return r;
	lc_db_close(TAKE_PTR(dop->db));
	if (dop->live) {
		util_crash_point("disk-snapshot-after-intent");
		r = snap_live(dop->c.qmp, dcopy, op, snap, tag, err);
	} else {
		r = stor_snapshot(dcopy->path,
		                  op == LC_DSNAP_CREATE   ? STOR_SNAP_CREATE
		                  : op == LC_DSNAP_REVERT ? STOR_SNAP_APPLY
		                                          : STOR_SNAP_DELETE,
		                  snap_ref(snap, tag), err);
	}
	if (dop->live) {
		util_err ferr = { 0 };
		int f = op_finish(dop, false, r < 0 ? "disk snapshot failed" : "disk snapshot done",
		                  r < 0 ? "failed" : "ok", &ferr);

		if (r == 0 && f < 0) {
			if (err)
				*err = ferr;
			r = f;
		} else {
			util_err_clear(&ferr);
		}
	}
	return r;
}

int lc_vm_disk_snapshot(const char *root, const char *name, unsigned disk_id, lc_dsnap_op op,
                        const char *tag, const lc_disk_opts *o, json_t **ret_json, util_err *err)
{
	static const char *const what[] = { "create a snapshot of", "list the snapshots of",
		                            "revert", "delete a snapshot of" };
	_cleanup_json_ json_t *list = NULL;
	lc_disk dcopy = { 0 };
	disk_op dop;
	lc_disk *d = NULL;
	json_t *snap = NULL;
	int r;

	if (op == LC_DSNAP_CREATE) {
		r = util_validate_name(tag, "snapshot tag", err);
		if (r == 0 && strspn(tag, "0123456789") == strlen(tag))
			r = util_err_set(
			        err, -EINVAL,
			        "snapshot tag '%s' is all digits, which would read as a snapshot id; choose a name",
			        tag);
		if (r < 0)
			return r;
	}
	r = op_hold(&dop, root, name, o, err);
	if (r < 0)
		return r;
	r = op_open(&dop, &disk_id, &d, err);
	if (r < 0)
		goto out;
	if (op == LC_DSNAP_REVERT && dop.vm->state == LC_ACTIVE) {
		_cleanup_free_ char *now = lc_state_text(dop.vm);

		r = util_err_set(
		        err, -EBUSY,
		        "cannot revert disk %u of '%s' while it runs (%s): a disk is reverted with the vm off; poweroff it first",
		        disk_id, dop.c.h.name, now);
		goto out;
	}
	if (op == LC_DSNAP_LIST && dop.vm->state != LC_ACTIVE)
		dop.live = false; /* a vm that is not running may always be looked at */
	else if ((r = op_check(&dop, what[op], true, err)) < 0)
		goto out;
	if (!util_streq(d->format, "qcow2")) {
		r = util_err_set(
		        err, -ENOTSUP,
		        "cannot %s disk %u of '%s': it is a %s disk, and internal snapshots need qcow2",
		        what[op], disk_id, dop.c.h.name, d->format ? d->format : "?");
		goto out;
	}
	dcopy.id = d->id;
	dcopy.path = util_xstrdup(d->path);
	dcopy.format = util_xstrdup(d->format);
	if (dop.live)
		r = op_connect(&dop, err);
	if (r == 0)
		r = list_snaps(dop.c.qmp, &dcopy, &list, err);
	if (r < 0) {
		util_err_prefix(err, "cannot %s disk %u of '%s'", what[op], disk_id, dop.c.h.name);
		goto out;
	}
	if (op == LC_DSNAP_LIST) {
		if (ret_json)
			*ret_json = TAKE_PTR(list);
		goto out;
	}
	r = check_tag(&dop, disk_id, op, tag, list, &snap, err);
	/* qemu-img opens the disk's whole chain (its base image too) */
	if (r == 0 && !dop.live)
		r = lc_check_disk_files(root, dop.c.h.id, d, op_roots(&dop), err);
	if (r == 0)
		r = run_disk_snapshot(&dop, &dcopy, op, snap, tag, err);
	if (r < 0) {
		util_err_prefix(err, "cannot %s disk %u of '%s'", what[op], disk_id, dop.c.h.name);
		goto out;
	}
	if (ret_json)
		*ret_json = json_pack("{s:s, s:i, s:s, s:b}", "vm", dop.c.h.name, "disk",
		                      (int)disk_id, "tag", tag, "live", dop.live);
out:
	lc_disk_clear(&dcopy);
	return op_end(&dop, r);
}

/* ---- PROLOG: missing disks made at start ------------------------------------------------ */

size_t lc_prolog_missing(const lc_vmdef *def, unsigned ids[LC_DISKS_MAX])
{
	size_t n = 0;

	for (size_t i = 0; i < def->n_disks && n < LC_DISKS_MAX; i++) {
		const lc_disk *d = &def->disks[i];
		struct stat st;

		if (d->owned && d->path && lstat(d->path, &st) < 0 && errno == ENOENT)
			ids[n++] = d->id;
	}
	return n;
}

/* Temporary files of a disk creation (storage's ".qvm-create-*") that a
 * crash left in the vm's folder: nothing else makes files there while the
 * VM lock is held. */
static void drop_create_temps(const char *vmdir)
{
	DIR *dir = opendir(vmdir);
	struct dirent *e;

	if (!dir)
		return;
	while ((e = readdir(dir)))
		if (util_startswith(e->d_name, ".qvm-create-")) {
			_cleanup_free_ char *path = util_xasprintf("%s/%s", vmdir, e->d_name);

			unlink(path);
		}
	closedir(dir);
}

static char *vmdir_of(const char *root, uint64_t id)
{
	return util_xasprintf("%s/vms/%" PRIu64, root, id);
}

/* Remove the files of disks ids of def (missing is fine). */
static int remove_made(const lc_vmdef *def, const unsigned *ids, size_t n, util_err *err)
{
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		const lc_disk *d = find_disk((lc_vmdef *)def, ids[i]);
		int k;

		if (d && d->owned && (k = stor_remove_disk(d->path, false, err)) < 0 && r == 0)
			r = k;
	}
	return r;
}

int lc_prolog_disks_make(const char *root, uint64_t id, const lc_vmdef *def, lc_prolog_disks *ret,
                         util_err *err)
{
	_cleanup_free_ char *vmdir = vmdir_of(root, id);
	lc_prolog_disks p = { 0 };
	json_t *disks;
	int r;

	p.n = lc_prolog_missing(def, p.ids);
	if (p.n == 0) {
		*ret = p;
		return 0;
	}
	disks = json_array();
	for (size_t i = 0; i < p.n; i++)
		json_array_append_new(disks, json_integer(p.ids[i]));
	{
		_cleanup_db_ lc_db *db = NULL;

		r = open_writer(root, &db, err);
		if (r == 0)
			r = lc_db_intent(db, PROLOG_OP, id, json_pack("{s:o}", "disks", disks),
			                 &p.seq, err);
		else
			json_decref(disks);
		if (r < 0)
			return r;
	}
	r = util_mkdir_p(vmdir, 0700, err);
	if (r == 0)
		drop_create_temps(vmdir);
	for (size_t i = 0; i < p.n && r == 0; i++) {
		const lc_disk *d = find_disk((lc_vmdef *)def, p.ids[i]);

		r = d ? lc_make_disk(d, err)
		      : util_err_set(err, -ENOENT, "disk %u is gone", p.ids[i]);
	}
	if (r < 0) {
		util_err ignored = { 0 };

		lc_prolog_disks_end(root, id, def, &p, false, &ignored);
		return util_err_prefix(err, "cannot make the missing disks");
	}
	*ret = p;
	return 0;
}

int lc_prolog_disks_end(const char *root, uint64_t id, const lc_vmdef *def,
                        const lc_prolog_disks *p, bool ok, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *vmdir = vmdir_of(root, id);
	int r;

	if (!p || !p->seq)
		return 0;
	if (!ok) {
		util_err ignored = { 0 };

		remove_made(def, p->ids, p->n, &ignored);
		drop_create_temps(vmdir);
	}
	r = open_writer(root, &db, err);
	return r < 0 ? r : lc_db_done(db, p->seq, ok ? "ok" : "rolled-back", err);
}

/* ---- recovery -------------------------------------------------------------------------------- */

/* Settle one intent. q is the vm's QEMU when it runs, else NULL. Decides
 * from what is real: the definition, QEMU's devices and nodes, the files. */
/* The node of a device QEMU no longer lists: its DEVICE_DELETED went to
 * a qvm that died, and the device may still be letting go of the node
 * (blockdev-del answers "in use" until it has): try for a while. */
static void delete_node_of_gone_device(qmp_client *q, const char *node)
{
	for (int tries = 0; tries < 50; tries++) {
		_cleanup_json_ json_t *n = NULL;
		util_err ignored = { 0 };

		if (find_node(q, node, &n, &ignored) < 0 || !n)
			return;
		if (qmp_run(q, "blockdev-del", json_pack("{s:s}", "node-name", node), NULL,
		            &ignored) == 0)
			return;
		usleep(100 * 1000);
	}
}

/* What settling one interrupted disk operation works with. */
typedef struct settle_ctx {
	const char *root;
	lc_vm *vm;
	uint64_t seq;
	json_t *data;  /* the intent's data (borrowed) */
	json_t *dj;    /* its "disk" (borrowed) */
	qmp_client *q; /* the VM's QEMU, when the operation was live */
	lc_lcm back;   /* the LCM state the VM returns to */
	lc_disk d;     /* attach, detach: the disk */
	lc_vmdef nd;   /* a copy of the definition, to record changed */
	char node[32];
} settle_ctx;

static int settle_attach(settle_ctx *c, util_err *err)
{
	bool present = false;
	int r;

	if (find_disk(&c->vm->def, c->d.id))
		return finish(c->root, c->vm->id, c->seq, NULL, true, c->back,
		              "disk attached (finished after a crash)", "ok", err);
	if (c->q && (r = device_exists(c->q, c->node, &present, err)) < 0)
		return r;
	if (present) {
		/* QEMU has it and the guest may use it: keep it */
		r = add_disk(&c->nd, c->dj, err);
		if (r == 0)
			r = finish(c->root, c->vm->id, c->seq, &c->nd, true, c->back,
			           "disk attached (finished after a crash)", "ok", err);
		return r;
	}
	if (c->q) {
		_cleanup_json_ json_t *n = NULL;

		r = find_node(c->q, c->node, &n, err);
		if (r == 0 && n)
			r = qmp_run(c->q, "blockdev-del", json_pack("{s:s}", "node-name", c->node),
			            NULL, err);
		if (r < 0)
			return r;
	}
	if (c->d.owned && c->d.path && (r = stor_remove_disk(c->d.path, false, err)) < 0)
		return r;
	return finish(c->root, c->vm->id, c->seq, NULL, true, c->back,
	              "disk attach interrupted; rolled back", "rolled-back", err);
}

static int settle_detach(settle_ctx *c, util_err *err)
{
	bool in_def = find_disk(&c->vm->def, c->d.id) != NULL, present = true;
	int timeout_s = (int)json_integer_value(json_object_get(c->data, "timeout_s"));
	int r;

	if (in_def && c->q && (r = device_exists(c->q, c->node, &present, err)) < 0)
		return r;
	if (in_def && c->q && present) {
		/* the detach was asked for: ask (again) and give the guest
		 * its time; whether it lets go decides the way */
		util_err ignored = { 0 };

		if (qmp_run(c->q, "device_del", json_pack("{s:s}", "id", c->node), NULL,
		            &ignored) == 0 ||
		    util_streq(ignored.qmp_class, "GenericError"))
			wait_deleted(c->q, c->node,
			             util_now_ms() +
			                     (timeout_s > 0 ? timeout_s : LC_DETACH_TIMEOUT_S) *
			                             1000,
			             &ignored);
		if ((r = device_exists(c->q, c->node, &present, err)) < 0)
			return r;
	}
	if (in_def && (!c->q || present))
		/* nothing was taken away (a pending device_del may still be
		 * honoured by the guest: detach again then) */
		return finish(c->root, c->vm->id, c->seq, NULL, true, c->back,
		              "disk detach interrupted; rolled back", "rolled-back", err);
	if (c->q)
		delete_node_of_gone_device(c->q, c->node);
	remove_disk_at(&c->nd, c->d.id);
	r = finish(c->root, c->vm->id, c->seq, in_def ? &c->nd : NULL, true, c->back,
	           "disk detached (finished after a crash)", "ok", err);
	if (r == 0 && c->d.owned && c->d.path)
		r = stor_remove_disk(c->d.path, false, err);
	return r;
}

/* Idempotent: do it (again) and record it. */
static int settle_resize(settle_ctx *c, util_err *err)
{
	lc_disk *cur = find_disk(&c->nd, (unsigned)json_integer_value(c->dj));
	uint64_t size = (uint64_t)json_integer_value(json_object_get(c->data, "size"));
	int r;

	if (!cur)
		return finish(c->root, c->vm->id, c->seq, NULL, true, c->back,
		              "disk resize interrupted", "rolled-back", err);
	r = do_resize(c->q, cur, size, json_is_true(json_object_get(c->data, "shrink")), err);
	if (r < 0) {
		util_err ignored = { 0 };

		finish(c->root, c->vm->id, c->seq, NULL, true, c->back, "disk resize interrupted",
		       "rolled-back", &ignored);
		util_err_clear(err);
		return 0; /* the definition still tells the old size: consistent */
	}
	cur->size = size;
	return finish(c->root, c->vm->id, c->seq, &c->nd, true, c->back,
	              "disk resized (finished after a crash)", "ok", err);
}

static int settle_cdrom(settle_ctx *c, util_err *err)
{
	const char *iso = json_string_value(json_object_get(c->data, "iso"));
	_cleanup_free_ char *mnode = NULL, *mfile = NULL;
	bool found = false, forward = !c->q;
	int r;

	if (c->q && (r = medium_of(c->q, "cdrom0", &mnode, &mfile, &found, err)) < 0)
		return r;
	/* live: the change is finished if the drive holds what was asked
	 * for; otherwise the old medium goes back in (its node is still
	 * there: a change deletes it last), as the definition says */
	if (c->q)
		forward = iso ? util_streq(mfile, iso) : !mfile;
	if (c->q && forward)
		cdrom_drop_spare(c->q, mnode);
	if (c->q && !forward && (r = cdrom_restore(c->q, c->vm->def.cdrom, err)) < 0)
		return r;
	free(c->nd.cdrom);
	c->nd.cdrom = iso ? util_xstrdup(iso) : NULL;
	return finish(c->root, c->vm->id, c->seq, forward ? &c->nd : NULL, true, c->back,
	              forward ? "cd-rom changed (finished after a crash)"
	                      : "cd-rom change interrupted; rolled back",
	              forward ? "ok" : "rolled-back", err);
}

/* A start that died in PROLOG (rolled back to its old state by then): the
 * disks it made were not there before it. */
static int settle_prolog(settle_ctx *c, util_err *err)
{
	_cleanup_free_ char *vmdir = vmdir_of(c->root, c->vm->id);
	unsigned ids[LC_DISKS_MAX];
	size_t n = 0, i;
	json_t *v;
	int r;

	json_array_foreach (json_object_get(c->data, "disks"), i, v)
		if (n < LC_DISKS_MAX)
			ids[n++] = (unsigned)json_integer_value(v);
	if (c->vm->state == LC_ACTIVE && c->vm->lcm != LC_LCM_PROLOG)
		/* it went on to run: what it made is in use */
		return finish(c->root, c->vm->id, c->seq, NULL, false, c->back, NULL, "ok", err);
	r = remove_made(&c->vm->def, ids, n, err);
	if (r == 0)
		drop_create_temps(vmdir);
	if (r == 0)
		r = finish(c->root, c->vm->id, c->seq, NULL, false, c->back, NULL, "rolled-back",
		           err);
	return r;
}

/* The disk an attach or detach intent carries, read as the definition
 * reads disks. */
static int intent_disk(const lc_vm *vm, json_t *dj, lc_disk *ret, util_err *err)
{
	_cleanup_json_ json_t *wrap = lc_vmdef_to_json(&vm->def);
	lc_vmdef one;
	int r;

	json_object_set_new(wrap, "disks", json_pack("[O]", dj));
	r = lc_vmdef_from_json(wrap, &one, err);
	if (r < 0)
		return r;
	*ret = one.disks[0];
	memset(&one.disks[0], 0, sizeof(lc_disk));
	lc_vmdef_clear(&one);
	return 0;
}

static const struct {
	const char *op;
	int (*fn)(settle_ctx *c, util_err *err);
} settlers[] = {
	{ ATTACH_OP, settle_attach }, { DETACH_OP, settle_detach }, { RESIZE_OP, settle_resize },
	{ CDROM_OP, settle_cdrom },   { PROLOG_OP, settle_prolog },
};

static int settle_one(const char *root, lc_vm *vm, uint64_t seq, json_t *intent, qmp_client *q,
                      util_err *err)
{
	const char *op = json_string_value(json_object_get(intent, "op"));
	json_t *data = json_object_get(intent, "data");
	settle_ctx c = { .root = root,
		         .vm = vm,
		         .seq = seq,
		         .data = data,
		         .dj = json_object_get(data, "disk"),
		         .back = LC_LCM_RUNNING };
	int (*fn)(settle_ctx *, util_err *) = NULL;
	int r = 0;

	if (json_is_true(json_object_get(data, "live")))
		c.q = q;
	lc_lcm_parse(json_string_value(json_object_get(data, "prev")), &c.back, NULL);
	if (util_streq(op, ATTACH_OP) || util_streq(op, DETACH_OP))
		r = intent_disk(vm, c.dj, &c.d, err);
	node_name(c.node, sizeof(c.node), c.d.id);
	if (r == 0)
		r = copy_def(&vm->def, &c.nd, err);
	for (size_t i = 0; r == 0 && i < sizeof(settlers) / sizeof(settlers[0]); i++)
		if (util_streq(op, settlers[i].op))
			fn = settlers[i].fn;
	if (r == 0 && fn)
		r = fn(&c, err);
	else if (r == 0) /* a disk snapshot: atomic in qemu, only the state is left */
		r = finish(root, vm->id, seq, NULL, true, c.back, "disk snapshot interrupted", "ok",
		           err);
	lc_disk_clear(&c.d);
	lc_vmdef_clear(&c.nd);
	return r;
}

static bool our_op(const char *op)
{
	return util_streq(op, ATTACH_OP) || util_streq(op, DETACH_OP) ||
	       util_streq(op, RESIZE_OP) || util_streq(op, CDROM_OP) || util_streq(op, DSNAP_OP) ||
	       util_streq(op, PROLOG_OP);
}

/* Complete or roll back the disk operations (disk-*, cdrom, disk-prolog)
 * a crashed qvm left on VM id. With the VM lock held; the journal is
 * opened as needed. */
static int settle_disks(const char *root, uint64_t id, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *mine = json_object();
	_cleanup_qmp_ qmp_client *q = NULL;
	const char *key;
	json_t *intent;
	lc_vm *vm = NULL;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	json_object_foreach (lc_db_intents(db), key, intent) {
		if ((uint64_t)json_integer_value(json_object_get(intent, "id")) == id &&
		    our_op(json_string_value(json_object_get(intent, "op"))))
			json_object_set(mine, key, intent);
	}
	if (json_object_size(mine) == 0)
		return 0;
	if (!(vm = vm_of(db, id, err)))
		return err->code;
	if (vm->state == LC_ACTIVE) {
		util_err ignored = { 0 };

		/* no QEMU to ask: an operation on it cannot be judged yet */
		if (lc_command_qmp(root, id, vm->def.name, &q, &ignored) < 0)
			return 0;
	}
	json_object_foreach (mine, key, intent) {
		_cleanup_db_ lc_db *now = NULL;
		lc_vm *v;

		/* the definition as it is now: an earlier intent may change it */
		r = lc_db_open(root, 0, &now, err);
		if (r == 0 && !(v = vm_of(now, id, err)))
			r = err->code;
		if (r == 0)
			r = settle_one(root, v, strtoull(key, NULL, 10), intent, q, err);
		if (r < 0)
			return util_err_prefix(err, "cannot settle the interrupted %s of '%s'",
			                       json_string_value(json_object_get(intent, "op")),
			                       vm->def.name);
	}
	return 1;
}

__attribute__((constructor)) static void register_disk_settling(void)
{
	lc_on_settle(LC_SETTLE_ON_HOLD | LC_SETTLE_ON_READ, 10, settle_disks);
}
