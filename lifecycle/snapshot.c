/* VM snapshots (as CloudStack's and OpenNebula's): internal qcow2
 * snapshots of every disk of a VM, with its memory when it runs (QEMU's
 * snapshot-save/-load/-delete jobs) or of its disks alone (qemu-img when it
 * is off). The tree — each snapshot's parent is the one the VM was at when
 * it was taken — and the current snapshot live in the journal; every
 * operation is an intent finished or rolled back after a crash. */
#include <inttypes.h>
#include <string.h>

#include "run.h"
#include "vm_command.h"
#include "snapshot.h"
#include "storage/storage.h"

/* Queries and job-dismiss use the QMP client's default timeouts (timeout 0). */
#define JOB_PREFIX "qvm-snap-"

static int64_t jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- the disks a snapshot covers ---------------------------------------------------- */

/* The disks of one operation: QEMU's node names ("disk<id>", as
 * qemu_argv.c names them) and the files. */
typedef struct target {
	qmp_client *qmp; /* the running VM's QEMU; NULL: qemu-img on the files */
	size_t n;
	unsigned ids[LC_DISKS_MAX];
	char *paths[LC_DISKS_MAX];
} target;

static void target_clear(target *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->paths[i]);
	qmp_close(t->qmp);
	memset(t, 0, sizeof(*t));
}

static void node_of(unsigned id, char *buf, size_t len)
{
	snprintf(buf, len, "disk%u", id);
}

static json_t *nodes_json(const target *t)
{
	json_t *a = json_array();
	char node[32];

	for (size_t i = 0; i < t->n; i++) {
		node_of(t->ids[i], node, sizeof(node));
		json_array_append_new(a, json_string(node));
	}
	return a;
}

static json_t *ids_json(const target *t)
{
	json_t *a = json_array();

	for (size_t i = 0; i < t->n; i++)
		json_array_append_new(a, json_integer(t->ids[i]));
	return a;
}

/* Every writable disk of vm; a disk in another format than qcow2 cannot
 * hold internal snapshots, so such a VM is refused. Read-only disks never
 * change and are left out. */
static int target_all(const lc_vm *vm, target *t, util_err *err)
{
	for (size_t i = 0; i < vm->def.n_disks; i++) {
		const lc_disk *d = &vm->def.disks[i];

		if (!util_streq(d->format, "qcow2"))
			return util_err_set(
			        err, -EOPNOTSUPP,
			        "disk %u of '%s' is %s: vm snapshots need every disk in qcow2 (internal snapshots); detach it or convert it",
			        d->id, vm->def.name, d->format ? d->format : "of no format");
		if (d->readonly || !d->path)
			continue;
		if (t->n == LC_DISKS_MAX)
			break;
		t->ids[t->n] = d->id;
		t->paths[t->n++] = util_xstrdup(d->path);
	}
	if (t->n == 0)
		return util_err_set(
		        err, -EOPNOTSUPP,
		        "'%s' has no writable disk: a vm snapshot is kept in its qcow2 disks",
		        vm->def.name);
	return 0;
}

int lc_snap_check_disks(const lc_vm *vm, util_err *err)
{
	target t = { 0 };
	int r = target_all(vm, &t, err);

	target_clear(&t);
	return r;
}

/* The disks a snapshot was taken of (its "disks" ids) that the VM still
 * has; strict: each must be there. */
static int target_of(const lc_vm *vm, json_t *snap, bool strict, target *t, util_err *err)
{
	json_t *v;
	size_t i;

	json_array_foreach (json_object_get(snap, "disks"), i, v) {
		unsigned id = (unsigned)json_integer_value(v);
		const lc_disk *d = NULL;

		for (size_t k = 0; k < vm->def.n_disks; k++)
			if (vm->def.disks[k].id == id)
				d = &vm->def.disks[k];
		if (!d || !d->path) {
			if (strict)
				return util_err_set(
				        err, -ENOENT,
				        "disk %u of snapshot '%s' is no longer attached to '%s'",
				        id, jstr(snap, "tag"), vm->def.name);
			continue;
		}
		if (t->n == LC_DISKS_MAX)
			break;
		t->ids[t->n] = d->id;
		t->paths[t->n++] = util_xstrdup(d->path);
	}
	return 0;
}

/* ---- the definition a snapshot was taken with ------------------------------------- */

/* What of the definition a VM snapshot holds: the machine its disks and
 * memory state belong to (memory, vcpus, the cdrom, each disk and its
 * size). The NICs (their addresses are leases of the network's), labels,
 * user data and the restart policy are the VM's and stay as they are. */
static json_t *hw_of(const lc_vmdef *def)
{
	json_t *disks = json_array();

	for (size_t i = 0; i < def->n_disks; i++)
		json_array_append_new(disks,
		                      json_pack("{s:I, s:I}", "id", (json_int_t)def->disks[i].id,
		                                "size", (json_int_t)def->disks[i].size));
	return json_pack("{s:I, s:i, s:o, s:o}", "memory", (json_int_t)def->memory, "vcpus",
	                 (int)def->vcpus, "cdrom",
	                 def->cdrom ? json_string(def->cdrom) : json_null(), "disks", disks);
}

/* Is disk id one of snapshot s's disk set? That of its stored definition;
 * a record from before the definition was stored lists only the writable
 * disks it holds. */
static bool snap_has_disk(json_t *s, unsigned id)
{
	json_t *hw = json_object_get(s, "definition"), *v;
	size_t i;

	json_array_foreach (json_object_get(hw, "disks"), i, v)
		if (jint(v, "id") == (json_int_t)id)
			return true;
	if (hw)
		return false;
	json_array_foreach (json_object_get(s, "disks"), i, v)
		if (json_integer_value(v) == (json_int_t)id)
			return true;
	return false;
}

/* A revert needs the disk set the snapshot was taken with: a disk
 * attached since holds no part of it (its guest would lose it under a
 * running revert, and the definition would keep it), and one detached
 * since cannot be brought back. Refused, as CloudStack does, before
 * anything changes: the user detaches it (or attaches it back) first. */
int lc_snap_check_disk_set(const lc_vm *vm, json_t *s, util_err *err)
{
	json_t *hw = json_object_get(s, "definition"), *v;
	size_t i;

	for (size_t k = 0; k < vm->def.n_disks; k++) {
		const lc_disk *d = &vm->def.disks[k];

		if (!hw && (d->readonly || !d->path))
			continue;
		if (!snap_has_disk(s, d->id))
			return util_err_set(
			        err, -EBUSY,
			        "disk %u was attached to '%s' after snapshot '%s' was taken and holds no part of it; detach it first (qvm disk-detach %s %u), then revert",
			        d->id, vm->def.name, jstr(s, "tag"), vm->def.name, d->id);
	}
	json_array_foreach (json_object_get(hw, "disks"), i, v) {
		bool there = false;

		for (size_t k = 0; k < vm->def.n_disks; k++)
			there = there || vm->def.disks[k].id == (unsigned)jint(v, "id");
		if (!there)
			return util_err_set(
			        err, -ENOENT,
			        "disk %u of snapshot '%s' is no longer attached to '%s', so the vm cannot go back to it",
			        (unsigned)jint(v, "id"), jstr(s, "tag"), vm->def.name);
	}
	return 0;
}

/* The "redefine" record that gives vm back what of its definition hw (a
 * snapshot's) holds, or NULL when nothing differs (or hw is from a record
 * that stored none). A running VM keeps the medium its QEMU has in the
 * cdrom drive (snapshot-load does not change it), so its cdrom stays. */
static json_t *restore_rec(const lc_vm *vm, json_t *hw, bool running, const char *reason)
{
	_cleanup_json_ json_t *now = lc_vmdef_to_json(&vm->def);
	_cleanup_json_ json_t *j = json_deep_copy(now);
	util_err ignored = { 0 };
	json_t *d, *h, *rec;
	lc_vmdef nd;
	size_t i, k;

	if (!json_is_object(hw))
		return NULL;
	json_object_set(j, "memory", json_object_get(hw, "memory"));
	json_object_set(j, "vcpus", json_object_get(hw, "vcpus"));
	if (!running)
		json_object_set(j, "cdrom", json_object_get(hw, "cdrom"));
	json_array_foreach (json_object_get(j, "disks"), i, d)
		json_array_foreach (json_object_get(hw, "disks"), k, h)
			if (jint(h, "id") == jint(d, "id"))
				json_object_set(d, "size", json_object_get(h, "size"));
	if (json_equal(j, now) || lc_vmdef_from_json(j, &nd, &ignored) < 0)
		return NULL;
	rec = json_pack("{s:s, s:I, s:s}", "type", "redefine", "id", (json_int_t)vm->id, "reason",
	                reason);
	json_object_update_new(rec, lc_db_def_fields(&nd));
	lc_vmdef_clear(&nd);
	return rec;
}

/* ---- QMP jobs ----------------------------------------------------------------------- */

static json_t *find_job(json_t *jobs, const char *id)
{
	json_t *j;
	size_t i;

	json_array_foreach (jobs, i, j)
		if (util_streq(jstr(j, "id"), id))
			return j;
	return NULL;
}

/* Wait until job id concludes, dismiss it, and report its error. Looks at
 * query-jobs first, so a job started by a qvm that died is waited for too. */
static int wait_job(qmp_client *q, const char *id, util_err *err)
{
	int64_t deadline = util_now_ms() + QMP_TIMEOUT_JOB_MS;
	_cleanup_free_ char *error = NULL;
	int r;

	for (;;) {
		_cleanup_json_ json_t *jobs = NULL, *ev = NULL;
		json_t *job;
		int64_t left = deadline - util_now_ms();

		r = qmp_execute(q, "query-jobs", NULL, 0, &jobs, err);
		if (r < 0)
			return r;
		job = find_job(jobs, id);
		if (!job)
			return util_err_set(err, -ENOENT, "qemu knows no job '%s'", id);
		if (util_streq(jstr(job, "status"), "concluded")) {
			if (jstr(job, "error"))
				error = util_xstrdup(jstr(job, "error"));
			break;
		}
		if (left <= 0)
			return util_err_set(err, -ETIMEDOUT, "job '%s' did not end within %d s", id,
			                    QMP_TIMEOUT_JOB_MS / 1000);
		/* any status change: look again */
		r = qmp_wait_event(q, "JOB_STATUS_CHANGE", (int)(left < 1000 ? left : 1000), &ev,
		                   err);
		if (r < 0 && r != -ETIMEDOUT)
			return r;
		util_err_clear(err);
	}
	{
		_cleanup_json_ json_t *args = json_pack("{s:s}", "id", id);

		r = qmp_execute(q, "job-dismiss", args, 0, NULL, err);
	}
	if (r < 0)
		return r;
	if (error)
		return util_err_set(err, -EIO, "%s", error);
	return 0;
}

static int run_job(qmp_client *q, const char *cmd, json_t *args /* stolen */, util_err *err)
{
	_cleanup_json_ json_t *owned = args;
	_cleanup_free_ char *id = util_xstrdup(jstr(args, "job-id"));
	int r = qmp_execute(q, cmd, args, 0, NULL, err);

	return r < 0 ? r : wait_job(q, id, err);
}

/* Jobs of ours a qvm that died left behind: wait for them and dismiss
 * them, so their ids are free again. */
static int settle_jobs(qmp_client *q, util_err *err)
{
	_cleanup_json_ json_t *jobs = NULL;
	json_t *j;
	size_t i;
	int r = qmp_execute(q, "query-jobs", NULL, 0, &jobs, err);

	if (r < 0)
		return r;
	json_array_foreach (jobs, i, j) {
		const char *id = jstr(j, "id");
		util_err ignored = { 0 };

		if (id && util_startswith(id, JOB_PREFIX))
			wait_job(q, id, &ignored); /* its outcome is checked on the disks */
	}
	return 0;
}

/* ---- operations on the disks -------------------------------------------------------- */

/* How many internal snapshots named tag each disk of t holds (QEMU's
 * view when it runs, qemu-img's when off). qcow2 allows several of one
 * name, and qemu-img and QEMU's snapshot jobs then act on the first:
 * callers act only where a name is unambiguous. */
static int target_count(target *t, const char *tag, unsigned count[], util_err *err)
{
	memset(count, 0, sizeof(unsigned) * LC_DISKS_MAX);
	if (t->qmp) {
		_cleanup_json_ json_t *nodes = NULL;
		json_t *n;
		size_t i;
		_cleanup_json_ json_t *args = json_pack("{s:b}", "flat", 1);
		int r = qmp_execute(t->qmp, "query-named-block-nodes", args, 0, &nodes, err);

		if (r < 0)
			return r;
		json_array_foreach (nodes, i, n) {
			json_t *s;
			size_t k;

			for (size_t d = 0; d < t->n; d++) {
				char node[32];

				node_of(t->ids[d], node, sizeof(node));
				if (!util_streq(jstr(n, "node-name"), node))
					continue;
				json_array_foreach (
				        json_object_get(json_object_get(n, "image"), "snapshots"),
				        k, s)
					if (util_streq(jstr(s, "name"), tag))
						count[d]++;
			}
		}
		return 0;
	}
	for (size_t d = 0; d < t->n; d++) {
		_cleanup_json_ json_t *info = NULL;
		json_t *s;
		size_t k;
		int r = stor_disk_info(t->paths[d], "qcow2", &info, err);

		if (r < 0)
			return r;
		json_array_foreach (json_object_get(info, "snapshots"), k, s)
			if (util_streq(jstr(s, "name"), tag))
				count[d]++;
	}
	return 0;
}

/* Refuse to act on tag where a disk holds it more than once: which one is
 * the VM snapshot's cannot be told, and the other may be the user's. */
static int check_unique(const target *t, const char *vmname, const char *tag,
                        const unsigned count[], util_err *err)
{
	for (size_t d = 0; d < t->n; d++)
		if (count[d] > 1)
			return util_err_set(
			        err, -ENOTUNIQ,
			        "disk %u of '%s' holds %u internal snapshots named '%s', so qvm cannot tell which one belongs to the vm snapshot and leaves both alone (one was made outside qvm; see qvm disk-snapshot-list %s %u)",
			        t->ids[d], vmname, count[d], tag, vmname, t->ids[d]);
	return 0;
}

/* Delete tag from every disk of t that holds it (missing is fine; held
 * twice is refused, see check_unique). Only ever called for a tag no disk
 * held before the snapshot was taken (lc_vm_snapshot_create checks), so
 * what it removes is the VM snapshot's own. */
static int target_remove(target *t, const char *vmname, const char *tag, const char *crash_point,
                         util_err *err)
{
	unsigned count[LC_DISKS_MAX];
	int r = target_count(t, tag, count, err);

	if (r == 0)
		r = check_unique(t, vmname, tag, count, err);
	if (r < 0)
		return r;
	if (t->qmp) {
		json_t *devices = json_array();
		char node[32];

		for (size_t d = 0; d < t->n; d++) {
			node_of(t->ids[d], node, sizeof(node));
			if (count[d])
				json_array_append_new(devices, json_string(node));
		}
		if (json_array_size(devices) == 0) {
			json_decref(devices);
			return 0;
		}
		r = run_job(t->qmp, "snapshot-delete",
		            json_pack("{s:s, s:s, s:o}", "job-id", JOB_PREFIX "delete", "tag", tag,
		                      "devices", devices),
		            err);
		if (crash_point)
			util_crash_point(crash_point);
		return r;
	}
	for (size_t d = 0; d < t->n; d++) {
		if (!count[d])
			continue;
		r = stor_snapshot(t->paths[d], STOR_SNAP_DELETE, tag, err);
		if (r < 0)
			return r;
		if (crash_point)
			util_crash_point(crash_point);
	}
	return 0;
}

/* Is tag free on every disk of t? A disk snapshot of that name (made with
 * disk-snapshot-create, or by hand) would be taken for the VM snapshot's
 * by a later revert or delete, so it is refused. */
static int target_free(target *t, const char *tag, bool *ret_free, unsigned *ret_disk,
                       util_err *err)
{
	unsigned count[LC_DISKS_MAX];
	int r = target_count(t, tag, count, err);

	if (r < 0)
		return r;
	*ret_free = true;
	for (size_t d = 0; d < t->n; d++)
		if (count[d]) {
			*ret_free = false;
			*ret_disk = t->ids[d];
			break;
		}
	return 0;
}

static int qmp_status(qmp_client *q, bool *ret_running, util_err *err)
{
	_cleanup_json_ json_t *st = NULL;
	int r = qmp_execute(q, "query-status", NULL, 0, &st, err);

	if (r == 0)
		*ret_running = json_is_true(json_object_get(st, "running"));
	return r;
}

/* The size of the memory state snapshot tag holds on disk_id, as QEMU
 * reports it; -1 when it cannot say. */
static json_int_t vmstate_size(qmp_client *q, unsigned disk_id, const char *tag)
{
	_cleanup_json_ json_t *args = json_pack("{s:b}", "flat", 1);
	_cleanup_json_ json_t *nodes = NULL;
	char node[32];
	json_t *n, *s;
	size_t i, k;

	node_of(disk_id, node, sizeof(node));
	if (qmp_execute(q, "query-named-block-nodes", args, 0, &nodes, NULL) < 0)
		return -1;
	json_array_foreach (nodes, i, n) {
		if (!util_streq(jstr(n, "node-name"), node))
			continue;
		json_array_foreach (json_object_get(json_object_get(n, "image"), "snapshots"), k, s)
			if (util_streq(jstr(s, "name"), tag))
				return jint(s, "vm-state-size");
	}
	return -1;
}

/* Take tag on every disk of t. With QEMU: memory (vmstate on the first
 * disk) unless no_memory, then disk by disk with the guest paused so the
 * disks agree with each other. */
static int target_create(target *t, const char *tag, bool memory, util_err *err)
{
	bool running = false;
	char node[32];
	int r = 0;

	if (t->qmp && memory) {
		node_of(t->ids[0], node, sizeof(node));
		r = run_job(t->qmp, "snapshot-save",
		            json_pack("{s:s, s:s, s:s, s:o}", "job-id", JOB_PREFIX "save", "tag",
		                      tag, "vmstate", node, "devices", nodes_json(t)),
		            err);
		return r < 0 ? r : util_fail_point("snapshot-create-after-disk", err);
	}
	if (t->qmp) {
		r = qmp_status(t->qmp, &running, err);
		if (r == 0 && running)
			r = qmp_execute(t->qmp, "stop", NULL, 0, NULL, err);
		if (r < 0)
			return r;
	}
	for (size_t d = 0; d < t->n && r == 0; d++) {
		if (t->qmp) {
			_cleanup_json_ json_t *args = NULL;

			node_of(t->ids[d], node, sizeof(node));
			args = json_pack("{s:s, s:s}", "device", node, "name", tag);
			r = qmp_execute(t->qmp, "blockdev-snapshot-internal-sync", args, 0, NULL,
			                err);
		} else {
			r = stor_snapshot(t->paths[d], STOR_SNAP_CREATE, tag, err);
		}
		if (r == 0)
			util_crash_point("snapshot-create-disk");
		/* a failure once some disks took it: the rollback's case */
		if (r == 0)
			r = util_fail_point("snapshot-create-after-disk", err);
	}
	if (running) {
		util_err ignored = { 0 };

		qmp_execute(t->qmp, "cont", NULL, 0, NULL, r < 0 ? &ignored : err);
	}
	return r;
}

/* Bring every disk of t (and with QEMU the memory, from vmstate) back to
 * tag; refused before anything changes unless each disk holds tag exactly
 * once (qemu-img and snapshot-load would take the first of several). */
static int target_revert(target *t, const char *vmname, const char *tag, unsigned vmstate,
                         util_err *err)
{
	unsigned count[LC_DISKS_MAX];
	char node[32];
	int r = target_count(t, tag, count, err);

	if (r == 0)
		r = check_unique(t, vmname, tag, count, err);
	if (r < 0)
		return r;
	for (size_t d = 0; d < t->n; d++)
		if (!count[d])
			return util_err_set(
			        err, -ENOENT,
			        "disk %u of '%s' holds no internal snapshot named '%s' (removed by hand, or the disk was replaced)",
			        t->ids[d], vmname, tag);
	if (t->qmp) {
		node_of(vmstate, node, sizeof(node));
		return run_job(t->qmp, "snapshot-load",
		               json_pack("{s:s, s:s, s:s, s:o}", "job-id", JOB_PREFIX "load", "tag",
		                         tag, "vmstate", node, "devices", nodes_json(t)),
		               err);
	}
	for (size_t d = 0; d < t->n; d++) {
		r = stor_snapshot(t->paths[d], STOR_SNAP_APPLY, tag, err);
		if (r < 0)
			return r;
		util_crash_point("snapshot-revert-disk");
	}
	return 0;
}

/* ---- journal --------------------------------------------------------------------------- */

static json_t *state_rec(uint64_t id, lc_lcm lcm, const char *reason, const char *prev)
{
	json_t *rec = json_pack("{s:s, s:I, s:s, s:s, s:s}", "type", "state", "id", (json_int_t)id,
	                        "state", lc_state_name(LC_ACTIVE), "lcm", lc_lcm_name(lcm),
	                        "reason", reason);

	if (prev)
		json_object_set_new(rec, "prev", json_string(prev));
	return rec;
}

/* A state record that takes a VM out of ACTIVE/SNAPSHOT (the operation's
 * end) while the VM is no longer in it: its supervisor recorded meanwhile
 * that QEMU exited (EPILOG, FAILED, a restart pending), and that stays. */
static bool stale_restore(lc_db *db, json_t *rec)
{
	const lc_vm *vm;

	if (!util_streq(json_string_value(json_object_get(rec, "type")), "state") ||
	    util_streq(json_string_value(json_object_get(rec, "lcm")),
	               lc_lcm_name(LC_LCM_SNAPSHOT)))
		return false;
	vm = lc_db_vm_by_id(db, (uint64_t)json_integer_value(json_object_get(rec, "id")));
	return vm && !(vm->state == LC_ACTIVE && vm->lcm == LC_LCM_SNAPSHOT);
}

/* Append records (stolen, NULL entries skipped) in one short writer
 * transaction; *ret_seq (may be NULL) gets the first one's sequence. */
static int append(const char *root, uint64_t *ret_seq, util_err *err, json_t *a, json_t *b,
                  json_t *c, json_t *d)
{
	json_t *recs[] = { a, b, c, d };
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);
	size_t i;

	if (r == 0)
		lc_db_group_begin(db); /* one sync for all */
	for (i = 0; i < UTIL_ARRAY_SIZE(recs); i++) {
		uint64_t seq;

		if (!recs[i])
			continue;
		if (r < 0 || stale_restore(db, recs[i])) {
			json_decref(recs[i]);
			continue;
		}
		r = lc_db_append(db, recs[i], &seq, err);
		if (r == 0 && ret_seq && i == 0)
			*ret_seq = seq;
	}
	return r < 0 ? r : lc_db_group_commit(db, err);
}

/* ---- recovery ---------------------------------------------------------------------------- */

/* The QEMU of an ACTIVE VM, or NULL (off). -EAGAIN: ACTIVE but out of
 * reach (its supervisor's reconciliation settles it first). */
static int reach(const char *root, const lc_vm *vm, qmp_client **ret, util_err *err)
{
	*ret = NULL;
	if (vm->state != LC_ACTIVE)
		return 0;
	if (lc_command_qmp(root, vm->id, vm->def.name, ret, err) < 0)
		return -EAGAIN;
	return 0;
}

int lc_snap_recover(lc_db *db, uint64_t seq, json_t *intent, util_err *err)
{
	const char *op = jstr(intent, "op");
	uint64_t id = (uint64_t)jint(intent, "id");
	json_t *data = json_object_get(intent, "data");
	const char *tag = jstr(data, "tag");
	lc_vm *vm = lc_db_vm_by_id(db, id);
	_cleanup_(target_clear) target t = { 0 };
	util_err why = { 0 };
	const char *result = "ok";
	int r;

	if (!vm || vm->state == LC_DONE || !tag)
		return lc_db_append(db, lc_done_rec(seq, "rolled-back", NULL), NULL, err);
	if (reach(lc_db_root(db), vm, &t.qmp, &why) == -EAGAIN)
		return 0;
	if (t.qmp)
		settle_jobs(t.qmp, &why);
	/* the disks the intent named */
	target_of(vm, data, false, &t, &why);
	if (util_streq(op, "snapshot-create")) {
		json_t *s = lc_snap_by_id(vm, jint(data, "snap"), NULL);

		/* a --quiesce whose qvm died: the guest must not stay frozen */
		if (json_is_true(json_object_get(data, "quiesce")) && vm->state == LC_ACTIVE)
			lc_vm_thaw(lc_db_root(db), vm, &why);
		if (!(s && util_streq(jstr(s, "tag"), tag))) {
			/* not recorded: the internal snapshots it made go. Only an
			 * intent that checked no disk held the tag ("fresh") may
			 * remove it: otherwise it could be a disk snapshot of the
			 * user's that the create never made */
			r = 0;
			if (json_is_true(json_object_get(data, "fresh")))
				r = target_remove(&t, vm->def.name, tag, NULL, &why);
			result = r < 0 ? "failed" : "rolled-back";
		}
	} else if (util_streq(op, "snapshot-delete")) {
		r = target_remove(&t, vm->def.name, tag, NULL, &why);
		if (r == 0 && lc_snap_by_id(vm, jint(data, "snap"), NULL))
			r = lc_db_append(db,
			                 json_pack("{s:s, s:I, s:I, s:s, s:s}", "type",
			                           "snapshot-del", "id", (json_int_t)id, "snap",
			                           (json_int_t)jint(data, "snap"), "tag", tag,
			                           "reason",
			                           "snapshot deleted (finished after a crash)"),
			                 NULL, err);
		result = r < 0 ? "failed" : "ok";
	} else if (util_streq(op, "snapshot-revert")) {
		/* finished: the VM was asked to go back there */
		if (t.qmp && !json_is_true(json_object_get(data, "memory")))
			r = util_err_set(
			        &why, -EINVAL,
			        "a snapshot without memory cannot be loaded into a running vm");
		else
			r = target_revert(&t, vm->def.name, tag, (unsigned)jint(data, "vmstate"),
			                  &why);
		if (r == 0 && lc_snap_by_id(vm, jint(data, "snap"), NULL))
			r = lc_db_append(db,
			                 json_pack("{s:s, s:I, s:I, s:s, s:s}", "type",
			                           "snapshot-current", "id", (json_int_t)id, "snap",
			                           (json_int_t)jint(data, "snap"), "tag", tag,
			                           "reason", "reverted (finished after a crash)"),
			                 NULL, err);
		if (r == 0) {
			json_t *redef =
			        restore_rec(vm, json_object_get(data, "definition"), t.qmp != NULL,
			                    "reverted (finished after a crash)");

			r = redef ? lc_db_append(db, redef, NULL, err) : 0;
		}
		result = r < 0 ? "failed" : "ok";
	} else {
		return 0; /* unknown to this version */
	}
	if (vm->state == LC_ACTIVE && vm->lcm == LC_LCM_SNAPSHOT) {
		lc_lcm prev = LC_LCM_RUNNING;
		bool running = false;

		if (vm->prev_state)
			lc_lcm_parse(vm->prev_state, &prev, NULL);
		/* a disk-only snapshot pauses the guest: let it run again */
		if (t.qmp && prev == LC_LCM_RUNNING && qmp_status(t.qmp, &running, &why) == 0 &&
		    !running)
			qmp_execute(t.qmp, "cont", NULL, 0, NULL, &why);
		r = lc_db_append(
		        db, state_rec(id, prev, "snapshot operation settled after a crash", NULL),
		        NULL, err);
		if (r < 0)
			return r;
	}
	/* a failure is kept in the done record: it must not block every
	 * later writer of the journal */
	return lc_db_append(db,
	                    lc_done_rec(seq, result, util_streq(result, "failed") ? why.msg : NULL),
	                    NULL, err);
}

/* With the VM lock held: settle the VM's own interrupted snapshot
 * intents, which the journal's recovery skips while the lock is held. */
static int settle_snapshots(const char *root, uint64_t id, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_json_ json_t *open = NULL;
	const char *key;
	json_t *intent;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	open = json_deep_copy(lc_db_intents(db));
	json_object_foreach (open, key, intent) {
		if ((uint64_t)jint(intent, "id") != id ||
		    !util_startswith(jstr(intent, "op") ? jstr(intent, "op") : "", "snapshot-"))
			continue;
		r = lc_snap_recover(db, strtoull(key, NULL, 10), intent, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- commands ------------------------------------------------------------------------------ */

/* Running (ACTIVE/RUNNING or PAUSED: through QEMU) or off (PENDING, HOLD,
 * POWEROFF, UNDEPLOYED: qemu-img). Anything else is refused. */
static int check_state(const lc_vm *vm, const char *what, bool *ret_running, util_err *err)
{
	_cleanup_free_ char *text = NULL;

	if (vm->state == LC_ACTIVE && (vm->lcm == LC_LCM_RUNNING || vm->lcm == LC_LCM_PAUSED)) {
		*ret_running = true;
		return 0;
	}
	if (vm->state == LC_PENDING || vm->state == LC_HOLD || vm->state == LC_POWEROFF ||
	    vm->state == LC_UNDEPLOYED) {
		*ret_running = false;
		return 0;
	}
	text = lc_state_text(vm);
	return util_err_set(
	        err, -EBUSY,
	        "cannot %s '%s': it is %s; snapshots need it ACTIVE/RUNNING, ACTIVE/PAUSED, PENDING, HOLD, POWEROFF or UNDEPLOYED",
	        what, vm->def.name, text);
}

/* With the VM off qemu-img opens each disk's whole chain, its base image
 * too: checked again first, as start does (in the caller's disk roots;
 * NULL: ROOT/images). */
static int target_trusted(const char *root, const lc_cmd *x, const target *t, util_err *err)
{
	for (size_t i = 0; i < t->n && !t->qmp; i++)
		for (size_t k = 0; k < x->vm->def.n_disks; k++) {
			const lc_disk *d = &x->vm->def.disks[k];
			int r;

			if (d->id == t->ids[i] &&
			    (r = lc_check_disk_files(root, x->h.id, d, x->o->disk_roots, err)) < 0)
				return r;
		}
	return 0;
}

/* Delete snapshot s (borrowed from x->vm) of a held VM. */
static int delete_held(const char *root, lc_cmd *x, json_t *s, bool running, const char *why,
                       util_err *err)
{
	_cleanup_(target_clear) target t = { 0 };
	_cleanup_free_ char *tag = util_xstrdup(jstr(s, "tag"));
	_cleanup_free_ char *reason = NULL;
	int64_t sid = jint(s, "id");
	const char *prev = lc_lcm_name(x->vm->lcm);
	uint64_t intent;
	int r;

	if (running && (r = lc_command_qmp(root, x->h.id, x->h.name, &t.qmp, err)) < 0)
		return r;
	target_of(x->vm, s, false, &t, err);
	r = target_trusted(root, x, &t, err);
	if (r < 0)
		return util_err_prefix(err, "cannot delete snapshot '%s' of '%s'", tag, x->h.name);
	r = append(root, &intent, err,
	           lc_intent_rec("snapshot-delete", x->h.id,
	                         json_pack("{s:I, s:s, s:o}", "snap", (json_int_t)sid, "tag", tag,
	                                   "disks", ids_json(&t))),
	           running ? state_rec(x->h.id, LC_LCM_SNAPSHOT, "deleting a snapshot", prev)
	                   : NULL,
	           NULL, NULL);
	if (r < 0)
		return r;
	util_crash_point("snapshot-delete-after-intent");
	r = target_remove(&t, x->h.name, tag, "snapshot-delete-disk", err);
	if (r < 0) {
		util_err ignored = { 0 };

		append(root, NULL, &ignored,
		       running ? state_rec(x->h.id, x->vm->lcm, "snapshot deletion failed", NULL)
		               : NULL,
		       lc_done_rec(intent, "failed", err->msg), NULL, NULL);
		return util_err_prefix(err, "cannot delete snapshot '%s' of '%s'", tag, x->h.name);
	}
	util_crash_point("snapshot-delete-before-record");
	reason = util_xasprintf("snapshot %" PRId64 " '%s' deleted%s", sid, tag, why ? why : "");
	r = append(root, NULL, err,
	           json_pack("{s:s, s:I, s:I, s:s, s:s}", "type", "snapshot-del", "id",
	                     (json_int_t)x->h.id, "snap", (json_int_t)sid, "tag", tag, "reason",
	                     reason),
	           running ? state_rec(x->h.id, x->vm->lcm, "snapshot deleted", NULL) : NULL,
	           lc_done_rec(intent, "ok", NULL), NULL);
	if (r == 0)
		r = lc_cmd_reload(x, err);
	return r;
}

static json_t *oldest(const lc_vm *vm)
{
	json_t *best = NULL, *s;
	size_t i;

	json_array_foreach (lc_snap_items(vm), i, s)
		if (!best || jint(s, "created") < jint(best, "created") ||
		    (jint(s, "created") == jint(best, "created") &&
		     jint(s, "id") < jint(best, "id")))
			best = s;
	return best;
}

/* An explicit tag: a valid name, not all digits, not in the tree yet. */
static int pick_tag(const lc_vm *vm, const char *tag, char **ret, util_err *err)
{
	int r = util_validate_name(tag, "snapshot tag", err);

	if (r < 0)
		return r;
	if (util_all_digits(tag))
		return util_err_set(
		        err, -EINVAL,
		        "snapshot tag '%s' is all digits, which names snapshots by id; add a letter",
		        tag);
	if (lc_snap_by_tag(vm, tag))
		return util_err_set(
		        err, -EEXIST,
		        "vm '%s' has a snapshot tagged '%s' already; choose another tag or delete it",
		        vm->def.name, tag);
	*ret = util_xstrdup(tag);
	return 0;
}

/* A tag for a new snapshot of a VM: the one asked for, refused when the
 * tree or a disk of t has it; or snap-<sid>[-N], the first free one. */
static int choose_tag(const lc_vm *vm, target *t, const char *tag_arg, int64_t sid, char **ret,
                      util_err *err)
{
	_cleanup_free_ char *tag = NULL;
	unsigned disk = 0;
	bool free_on_disks = false;
	int r;

	if (tag_arg) {
		r = pick_tag(vm, tag_arg, &tag, err);
		if (r == 0)
			r = target_free(t, tag, &free_on_disks, &disk, err);
		if (r < 0)
			return r;
		if (!free_on_disks)
			return util_err_set(
			        err, -EEXIST,
			        "disk %u of '%s' holds an internal snapshot named '%s' already (a disk snapshot: see qvm disk-snapshot-list %s %u); a vm snapshot of that name would be mistaken for it: choose another tag",
			        disk, vm->def.name, tag, vm->def.name, disk);
		*ret = TAKE_PTR(tag);
		return 0;
	}
	for (unsigned n = 1; n < 1000; n++) {
		free(tag);
		tag = n == 1 ? util_xasprintf("snap-%" PRId64, sid)
		             : util_xasprintf("snap-%" PRId64 "-%u", sid, n);
		if (lc_snap_by_tag(vm, tag))
			continue;
		r = target_free(t, tag, &free_on_disks, &disk, err);
		if (r < 0)
			return r;
		if (free_on_disks) {
			*ret = TAKE_PTR(tag);
			return 0;
		}
	}
	return util_err_set(err, -EEXIST, "no free snapshot tag for '%s'; give one", vm->def.name);
}

/* Delete the oldest snapshots of a held VM while it has more than its
 * maximum. Runs once a new snapshot is recorded, never before: a new one
 * that fails must not cost an old one. */
static int prune(const char *root, lc_cmd *x, bool running, util_err *err)
{
	json_t *old;
	int r = 0;

	while (json_array_size(lc_snap_items(x->vm)) > lc_vm_snapshots_max(x->vm) &&
	       (old = oldest(x->vm))) {
		_cleanup_free_ char *why = util_xasprintf(" (pruned: at most %u snapshots)",
		                                          lc_vm_snapshots_max(x->vm));

		r = delete_held(root, x, old, running, why, err);
		if (r < 0)
			break;
	}
	return r;
}

/* After a failure that left t's connection dead (no answer, or none in
 * time: QEMU may have done it all the same), a fresh one for the
 * rollback, once qvm's jobs ended. False when QEMU cannot be reached: the
 * intent then stays for the next command to settle. */
static bool reconnect_for_rollback(const char *root, const lc_held *h, target *t)
{
	util_err ignored = { 0 };

	if (!t->qmp || qmp_alive(t->qmp))
		return true;
	qmp_close(TAKE_PTR(t->qmp));
	return lc_command_qmp(root, h->id, h->name, &t->qmp, &ignored) == 0 &&
	       settle_jobs(t->qmp, &ignored) == 0;
}

/* --quiesce takes a running vm only. */
static int quiesce_check(const lc_cmd *x, bool running, const lc_run_opts *opts, util_err *err)
{
	if (opts && opts->quiesce && !running)
		return util_err_set(
		        err, -EPERM,
		        "cannot snapshot '%s' with --quiesce: it is not running (its disks are at rest)",
		        x->h.name);
	return 0;
}

/* --quiesce: the guest's filesystems frozen, under the intent (whose
 * recovery thaws them if this qvm dies); thaw_if() thaws on every path. */
static int freeze_if(const char *root, lc_cmd *x, const lc_run_opts *opts, util_err *err)
{
	int r = opts && opts->quiesce ? lc_vm_freeze(root, x->vm, err) : 0;

	util_crash_point("snapshot-create-after-freeze");
	return r;
}

/* After a --quiesce snapshot, done or failed (r, returned): the guest's
 * filesystems thawed (a failure to is only noted: the snapshot's own
 * result stands). */
static int thaw_if(const char *root, lc_cmd *x, const lc_run_opts *opts, int r)
{
	util_err e = { 0 };

	if (opts && opts->quiesce && x->vm && lc_vm_thaw(root, x->vm, &e) < 0)
		util_trace("%s", e.msg);
	return r;
}

/* target_create(), with --quiesce between a freeze and a thaw. */
static int create_quiesced(const char *root, lc_cmd *x, const lc_run_opts *opts, target *t,
                           const char *tag, bool memory, util_err *err)
{
	int r = freeze_if(root, x, opts, err);

	return r < 0 ? r : thaw_if(root, x, opts, target_create(t, tag, memory, err));
}

int lc_vm_snapshot_create(const char *root, const char *name, const char *tag_arg, bool no_memory,
                          const lc_run_opts *opts, json_t **ret_snap, util_err *err)
{
	_cleanup_(lc_cmd_endp) lc_cmd x = { .h = { .lock = -1 } };
	_cleanup_(target_clear) target t = { 0 };
	_cleanup_free_ char *tag = NULL, *reason = NULL, *prev = NULL;
	_cleanup_json_ json_t *snap = NULL;
	bool running = false, memory;
	lc_lcm lcm;
	int64_t sid, done_ms;
	uint64_t intent;
	int r = lc_cmd_hold(&x, root, name, opts, err);

	if (r == 0)
		r = check_state(x.vm, "snapshot", &running, err);
	if (r == 0 && (r = target_all(x.vm, &t, err)) < 0)
		util_err_prefix(err, "cannot snapshot '%s'", x.vm->def.name);
	if (r < 0)
		return r;
	sid = x.vm->snapshots ? jint(x.vm->snapshots, "next") : 1;
	if (sid <= 0)
		sid = 1;
	if (running && (r = lc_command_qmp(root, x.h.id, x.h.name, &t.qmp, err)) < 0)
		return r;
	if ((r = target_trusted(root, &x, &t, err)) < 0)
		return util_err_prefix(err, "cannot snapshot '%s'", x.vm->def.name);
	r = choose_tag(x.vm, &t, tag_arg, sid, &tag, err);
	if (r < 0)
		return util_err_prefix(err, "cannot snapshot '%s'", x.h.name);
	memory = running && !no_memory;
	lcm = x.vm->lcm;
	if ((r = quiesce_check(&x, running, opts, err)) < 0)
		return r;
	prev = util_xstrdup(lc_lcm_name(lcm));
	snap = json_pack("{s:I, s:s, s:I, s:b, s:o, s:I, s:s}", "id", (json_int_t)sid, "tag", tag,
	                 "parent", (json_int_t)lc_snap_current(x.vm), "memory", memory, "disks",
	                 ids_json(&t), "created", (json_int_t)util_realtime_ms(), "state",
	                 running ? lc_lcm_name(lcm) : lc_state_name(x.vm->state));
	json_object_set_new(snap, "vmstate", memory ? json_integer(t.ids[0]) : json_null());
	json_object_set_new(snap, "definition", hw_of(&x.vm->def));
	/* "fresh": no disk held the tag before this intent, so what a
	 * rollback finds under it is this operation's own */
	r = append(
	        root, &intent, err,
	        lc_intent_rec("snapshot-create", x.h.id,
	                      json_pack("{s:I, s:s, s:o, s:b, s:b, s:b}", "snap", (json_int_t)sid,
	                                "tag", tag, "disks", ids_json(&t), "memory", memory,
	                                "fresh", 1, "quiesce", opts && opts->quiesce)),
	        running ? state_rec(x.h.id, LC_LCM_SNAPSHOT, "taking a snapshot", prev) : NULL,
	        NULL, NULL);
	if (r < 0)
		return r;
	util_crash_point("snapshot-create-after-intent");
	r = create_quiesced(root, &x, opts, &t, tag, memory, err);
	if (r < 0 && !reconnect_for_rollback(root, &x.h, &t))
		return util_err_prefix(err, "cannot snapshot '%s'", x.h.name);
	if (r < 0) {
		util_err ignored = { 0 };

		target_remove(&t, x.h.name, tag, NULL, &ignored);
		append(root, NULL, &ignored,
		       running ? state_rec(x.h.id, lcm, "snapshot failed", NULL) : NULL,
		       lc_done_rec(intent, "rolled-back", err->msg), NULL, NULL);
		return util_err_prefix(err, "cannot snapshot '%s'", x.h.name);
	}
	util_crash_point("snapshot-create-before-record");
	if (memory) {
		json_int_t size = vmstate_size(t.qmp, t.ids[0], tag);

		json_object_set_new(snap, "vmstate_size",
		                    size >= 0 ? json_integer(size) : json_null());
	}
	/* its time is the moment it was complete, in the tree and in history */
	done_ms = util_realtime_ms();
	json_object_set_new(snap, "created", json_integer(done_ms));
	reason = util_xasprintf("snapshot %" PRId64 " '%s' taken (%s)", sid, tag,
	                        memory ? "memory and disks" : "disks");
	r = append(root, NULL, err,
	           json_pack("{s:s, s:I, s:O, s:s, s:s, s:I}", "type", "snapshot-add", "id",
	                     (json_int_t)x.h.id, "snap", snap, "tag", tag, "reason", reason, "time",
	                     (json_int_t)done_ms),
	           running ? state_rec(x.h.id, lcm, "snapshot taken", NULL) : NULL,
	           lc_done_rec(intent, "ok", NULL), NULL);
	if (r < 0)
		return r;
	/* the command socket takes one client: delete_held connects anew */
	qmp_close(TAKE_PTR(t.qmp));
	r = lc_cmd_reload(&x, err);
	if (r == 0)
		r = prune(root, &x, running, err);
	if (r < 0)
		return util_err_prefix(
		        err,
		        "snapshot %" PRId64
		        " '%s' of '%s' was taken, but the oldest could not be pruned to keep at most %u",
		        sid, tag, x.h.name, lc_vm_snapshots_max(x.vm));
	if (ret_snap)
		*ret_snap = lc_snap_public(snap);
	return 0;
}

/* Revert a held VM to snapshot s (borrowed from x->vm): its disks, with
 * QEMU its memory, and what of its definition the snapshot holds. */
static int revert_held(const char *root, lc_cmd *x, json_t *s, bool running, bool *ret_redefined,
                       util_err *err)
{
	_cleanup_(target_clear) target t = { 0 };
	_cleanup_free_ char *tag = util_xstrdup(jstr(s, "tag")), *reason = NULL;
	json_t *hw = json_object_get(s, "definition"), *redef;
	bool memory = json_is_true(json_object_get(s, "memory"));
	unsigned vmstate = (unsigned)jint(s, "vmstate");
	int64_t sid = jint(s, "id");
	uint64_t intent;
	json_t *data;
	int r = lc_snap_check_disk_set(x->vm, s, err);

	if (r == 0)
		r = target_of(x->vm, s, true, &t, err);
	if (r == 0 && running)
		r = lc_command_qmp(root, x->h.id, x->h.name, &t.qmp, err);
	if (r == 0)
		r = target_trusted(root, x, &t, err);
	if (r < 0)
		return util_err_prefix(err, "cannot revert '%s' to snapshot '%s'", x->h.name, tag);
	data = json_pack("{s:I, s:s, s:o, s:b, s:I}", "snap", (json_int_t)sid, "tag", tag, "disks",
	                 ids_json(&t), "memory", memory, "vmstate", (json_int_t)vmstate);
	/* a recovery that finishes the revert restores the definition too */
	if (hw)
		json_object_set(data, "definition", hw);
	r = append(root, &intent, err, lc_intent_rec("snapshot-revert", x->h.id, data),
	           running ? state_rec(x->h.id, LC_LCM_SNAPSHOT, "reverting to a snapshot",
	                               lc_lcm_name(x->vm->lcm))
	                   : NULL,
	           NULL, NULL);
	if (r < 0)
		return r;
	util_crash_point("snapshot-revert-after-intent");
	r = target_revert(&t, x->h.name, tag, vmstate, err);
	if (r < 0) {
		util_err ignored = { 0 };

		append(root, NULL, &ignored,
		       running ? state_rec(x->h.id, x->vm->lcm, "snapshot revert failed", NULL)
		               : NULL,
		       lc_done_rec(intent, "failed", err->msg), NULL, NULL);
		return util_err_prefix(err, "cannot revert '%s' to snapshot '%s'", x->h.name, tag);
	}
	util_crash_point("snapshot-revert-before-record");
	reason = util_xasprintf(
	        "reverted to snapshot %" PRId64 " '%s' (%s)", sid, tag,
	        running  ? "memory and disks"
	        : memory ? "disks only: the vm is off, its memory state was not loaded"
	                 : "disks");
	redef = restore_rec(x->vm, hw, running, reason);
	*ret_redefined = redef != NULL;
	return append(root, NULL, err,
	              json_pack("{s:s, s:I, s:I, s:s, s:s}", "type", "snapshot-current", "id",
	                        (json_int_t)x->h.id, "snap", (json_int_t)sid, "tag", tag, "reason",
	                        reason),
	              redef, running ? state_rec(x->h.id, x->vm->lcm, reason, NULL) : NULL,
	              lc_done_rec(intent, "ok", NULL));
}

/* The VM, held, reverted to snap_arg; *ret_result says what came back. */
static int revert_once(const char *root, const char *name, const char *snap_arg,
                       const lc_run_opts *opts, json_t **ret_result, util_err *err)
{
	_cleanup_(lc_cmd_endp) lc_cmd x = { .h = { .lock = -1 } };
	json_t *s = NULL;
	bool running = false, redefined = false;
	int r = lc_cmd_hold(&x, root, name, opts, err);

	if (r == 0)
		r = lc_snap_find(x.vm, snap_arg, &s, err);
	if (r == 0)
		r = check_state(x.vm, "revert", &running, err);
	if (r < 0)
		return r;
	if (running && !json_is_true(json_object_get(s, "memory")))
		return util_err_set(
		        err, -EINVAL,
		        "cannot revert '%s' to snapshot '%s' while it runs: the snapshot holds no memory (taken with --no-memory or while the vm was off); power it off (qvm poweroff %s) and revert then",
		        x.h.name, jstr(s, "tag"), x.h.name);
	r = revert_held(root, &x, s, running, &redefined, err);
	if (r < 0)
		return r;
	*ret_result = json_pack("{s:s, s:s, s:I, s:b, s:b, s:O?, s:b}", "vm", x.h.name, "reverted",
	                        jstr(s, "tag"), "id", (json_int_t)jint(s, "id"), "snapshot_memory",
	                        json_is_true(json_object_get(s, "memory")), "memory", running,
	                        "disks", json_object_get(s, "disks"), "definition", redefined);
	return 0;
}

int lc_vm_snapshot_revert(const char *root, const char *name, const char *snap_arg, bool start,
                          const lc_run_opts *opts, json_t **ret_result, util_err *err)
{
	_cleanup_json_ json_t *first = NULL, *second = NULL;
	json_t *res;
	int r = revert_once(root, name, snap_arg, opts, &first, err);

	if (r < 0)
		return r;
	res = first;
	if (start && !json_is_true(json_object_get(first, "memory"))) {
		/* --running on a VM that is off: start it, and load the memory
		 * state into the running QEMU, as virsh snapshot-revert
		 * --running does (a snapshot of disks only just boots) */
		r = lc_vm_start(root, name, opts, err);
		if (r == 0 && json_is_true(json_object_get(first, "snapshot_memory")))
			r = revert_once(root, name, snap_arg, opts, &second, err);
		if (r < 0)
			return util_err_prefix(
			        err,
			        "'%s' was reverted to the disks of snapshot '%s', but not started from it",
			        name, snap_arg);
		if (second) {
			json_object_set(second, "definition", json_object_get(first, "definition"));
			res = second;
		}
		json_object_set_new(res, "started", json_true());
	}
	if (!json_object_get(res, "started"))
		json_object_set_new(res, "started", json_false());
	if (ret_result)
		*ret_result = json_incref(res);
	return 0;
}

int lc_vm_snapshot_delete(const char *root, const char *name, const char *snap_arg,
                          const lc_run_opts *opts, util_err *err)
{
	_cleanup_(lc_cmd_endp) lc_cmd x = { .h = { .lock = -1 } };
	json_t *s = NULL;
	bool running = false;
	int r = lc_cmd_hold(&x, root, name, opts, err);

	if (r == 0)
		r = lc_snap_find(x.vm, snap_arg, &s, err);
	if (r == 0)
		r = check_state(x.vm, "delete a snapshot of", &running, err);
	if (r == 0)
		r = delete_held(root, &x, s, running, NULL, err);
	return r;
}

int lc_vm_snapshot_list(const char *root, const char *name, json_t **ret, util_err *err)
{
	_cleanup_(lc_cmd_endp) lc_cmd x = { .h = { .lock = -1 } };
	int r = lc_cmd_hold(&x, root, name, NULL, err);

	if (r < 0)
		return r;
	*ret = json_pack("{s:s}", "vm", x.h.name);
	json_object_update_new(*ret, lc_vm_snapshots_json(x.vm));
	return 0;
}

__attribute__((constructor)) static void register_snapshot_handlers(void)
{
	lc_store_on_intent("snapshot-", lc_snap_recover);
	lc_on_settle(LC_SETTLE_ON_HOLD, 20, settle_snapshots);
}
