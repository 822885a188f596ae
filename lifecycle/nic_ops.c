/* nic-attach and nic-detach: on a stopped VM the definition alone changes;
 * on a running one the tap, QEMU's netdev and device are added or removed
 * (getfd + netdev_add + device_add; device_del + DEVICE_DELETED +
 * netdev_del) in ACTIVE/HOTPLUG, under a journal intent so that a crash is
 * completed or rolled back. Any failure rolls back every step before it. */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "network.h"

#define DEVICE_DELETED_TIMEOUT_MS 30000

/* ---- helpers ---------------------------------------------------------------------- */

static json_t *nic_json(const lc_nic *n)
{
	json_t *j = json_pack("{s:i, s:s, s:s}", "id", (int)n->id, "network", n->network, "model",
	                      n->model ? n->model : "virtio");

	if (n->mac)
		json_object_set_new(j, "mac", json_string(n->mac));
	if (n->ip)
		json_object_set_new(j, "ip", json_string(n->ip));
	return j;
}

static void nic_from(json_t *j, lc_nic *n)
{
	memset(n, 0, sizeof(*n));
	n->id = (unsigned)json_integer_value(json_object_get(j, "id"));
	n->network = util_xstrdup(json_string_value(json_object_get(j, "network")));
	n->model = util_xstrdup(json_string_value(json_object_get(j, "model")) ?: "virtio");
	if (json_string_value(json_object_get(j, "mac")))
		n->mac = util_xstrdup(json_string_value(json_object_get(j, "mac")));
	if (json_string_value(json_object_get(j, "ip")))
		n->ip = util_xstrdup(json_string_value(json_object_get(j, "ip")));
}

static int copy_def(const lc_vmdef *def, lc_vmdef *ret, util_err *err)
{
	_cleanup_json_ json_t *j = lc_vmdef_to_json(def);

	return lc_vmdef_from_json(j, ret, err);
}

/* Record vm's definition with nic added (add) or nic `id` removed. */
static int redefine(lc_db *db, lc_vm *vm, const lc_nic *add, int remove_id, util_err *err)
{
	lc_vmdef def;
	json_t *rec;
	int r = copy_def(&vm->def, &def, err);

	if (r < 0)
		return r;
	if (add) {
		json_t *j = nic_json(add);

		def.nics = util_xrealloc(def.nics, (def.n_nics + 1) * sizeof(lc_nic));
		nic_from(j, &def.nics[def.n_nics++]);
		json_decref(j);
	}
	if (remove_id >= 0) {
		for (size_t i = 0; i < def.n_nics; i++) {
			if (def.nics[i].id != (unsigned)remove_id)
				continue;
			lc_nic_clear(&def.nics[i]);
			memmove(&def.nics[i], &def.nics[i + 1],
			        (def.n_nics - i - 1) * sizeof(lc_nic));
			def.n_nics--;
			break;
		}
	}
	r = lc_vmdef_validate(&def, err);
	if (r == 0) {
		rec = json_pack("{s:s, s:I}", "type", "redefine", "id", (json_int_t)vm->id);
		json_object_update_new(rec, lc_db_def_fields(&def));
		r = lc_db_append(db, rec, NULL, err);
	}
	lc_vmdef_clear(&def);
	return r;
}

static int intent(lc_db *db, const char *op, uint64_t id, const lc_nic *n, uint64_t *ret_seq,
                  util_err *err)
{
	return lc_db_append(db,
	                    json_pack("{s:s, s:s, s:I, s:{s:o}}", "type", "intent", "op", op, "id",
	                              (json_int_t)id, "data", "nic", nic_json(n)),
	                    ret_seq, err);
}

static int done(lc_db *db, uint64_t id, uint64_t seq, const char *result, util_err *err)
{
	return lc_db_append(db,
	                    json_pack("{s:s, s:I, s:I, s:s}", "type", "done", "id", (json_int_t)id,
	                              "intent", (json_int_t)seq, "result", result),
	                    NULL, err);
}

static bool running(const lc_vm *vm)
{
	/* a paused guest cannot take part in an ACPI hotplug */
	return vm->state == LC_ACTIVE && vm->lcm == LC_LCM_RUNNING;
}

static bool stopped(const lc_vm *vm)
{
	switch (vm->state) {
	case LC_PENDING:
	case LC_HOLD:
	case LC_POWEROFF:
	case LC_UNDEPLOYED:
	case LC_FAILED:
	case LC_STOPPED:
		return true;
	default:
		return false;
	}
}

static int state_refusal(const char *what, const lc_vm *vm, util_err *err)
{
	_cleanup_free_ char *st = lc_state_text(vm);

	return util_err_set(err, -EBUSY,
	                    "cannot %s '%s': it is %s; it must be ACTIVE/RUNNING (hotplug) or "
	                    "stopped (definition only)",
	                    what, vm->def.name, st);
}

/* Is device id in the running QEMU? */
static bool device_present(qmp_client *q, const char *id)
{
	_cleanup_free_ char *path = util_xasprintf("/machine/peripheral/%s", id);
	_cleanup_json_ json_t *args = json_pack("{s:s, s:s}", "path", path, "property", "type");

	return qmp_execute(q, "qom-get", args, 0, NULL, NULL) == 0;
}

static void netdev_del(qmp_client *q, unsigned nic_id)
{
	_cleanup_json_ json_t *args = json_pack("{s:o}", "id", json_sprintf("net%u", nic_id));

	qmp_execute(q, "netdev_del", args, 0, NULL, NULL);
}

static void tap_remove(uint64_t vm_id, unsigned nic_id)
{
	char tap[16];
	net_link_info li;

	if (net_tap_name(vm_id, nic_id, tap, sizeof(tap), NULL) == 0 &&
	    net_link_get(tap, &li, NULL) == 0 && li.kind == NET_KIND_TAP)
		net_link_delete(tap, NULL);
}

/* ---- crash recovery ------------------------------------------------------------------ */

/* An open nic intent of a qvm that died (its VM lock is ours now). An
 * attach whose device made it into QEMU is completed, any other is undone;
 * a detach whose device is gone is completed, else it is given up (the nic
 * stays; nic-detach may be run again). */
int lc_nic_recover(lc_db *db, uint64_t seq, json_t *in, util_err *err)
{
	const char *op = json_string_value(json_object_get(in, "op"));
	uint64_t id = (uint64_t)json_integer_value(json_object_get(in, "id"));
	lc_vm *vm = lc_db_vm_by_id(db, id);
	const char *root = lc_db_root(db);
	_cleanup_qmp_ qmp_client *q = NULL;
	lc_nic n;
	char dev[32];
	bool present = false, completed = false;
	int r = 0;

	if (!vm || (!util_streq(op, "nic-attach") && !util_streq(op, "nic-detach")))
		return 0;
	{
		nic_from(json_object_get(json_object_get(in, "data"), "nic"), &n);
		snprintf(dev, sizeof(dev), "nic%u", n.id);
		if (vm->state == LC_ACTIVE && lc_vm_supervised(vm) &&
		    lc_command_qmp(root, id, vm->def.name, &q, NULL) == 0)
			present = device_present(q, dev);
		if (util_streq(op, "nic-attach")) {
			if (present) {
				r = redefine(db, vm, &n, -1, err);
				completed = true;
			} else {
				if (q)
					netdev_del(q, n.id);
				tap_remove(id, n.id);
			}
		} else if (!present) {
			if (q)
				netdev_del(q, n.id);
			tap_remove(id, n.id);
			r = redefine(db, vm, NULL, (int)n.id, err);
			completed = true;
		}
		if (r == 0 && vm->state == LC_ACTIVE && vm->lcm == LC_LCM_HOTPLUG)
			r = lc_db_record_state(
			        db, vm, LC_ACTIVE, LC_LCM_RUNNING,
			        completed ? "an interrupted nic hotplug was completed"
			                  : "an interrupted nic hotplug was rolled back",
			        NULL, err);
		if (r == 0)
			r = done(db, id, seq, completed ? "ok" : "rolled-back", err);
		lc_nic_clear(&n);
	}
	return r;
}

int lc_nic_recover_vm(const char *root, uint64_t id, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_json_ json_t *open = NULL;
	const char *key;
	json_t *in;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	open = json_deep_copy(lc_db_intents(db));
	json_object_foreach (open, key, in) {
		if ((uint64_t)json_integer_value(json_object_get(in, "id")) != id)
			continue;
		r = lc_nic_recover(db, strtoull(key, NULL, 10), in, err);
		if (r < 0)
			return r;
		r = 1;
	}
	return r;
}

/* ---- attach ------------------------------------------------------------------------------ */

static unsigned next_nic_id(const lc_vmdef *def)
{
	unsigned id = 0;

	for (size_t i = 0; i < def->n_nics; i++)
		if (def->nics[i].id >= id)
			id = def->nics[i].id + 1;
	return id;
}

/* The hot part, with the intent recorded and the journal unlocked: tap,
 * getfd, netdev_add, device_add. On failure every step done is undone. */
static int hot_add(const char *root, const lc_vm *vm, const lc_nic *n, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *rdb = NULL;
	_cleanup_qmp_ qmp_client *q = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_json_ json_t *nd = NULL, *dev = NULL;
	char fdname[32], netdev[32], devid[32];
	bool have_netdev = false;
	int r;

	snprintf(fdname, sizeof(fdname), "qvm-tap%u", n->id);
	snprintf(netdev, sizeof(netdev), "net%u", n->id);
	snprintf(devid, sizeof(devid), "nic%u", n->id);
	r = lc_db_open(root, 0, &rdb, err);
	if (r == 0)
		r = lc_nic_open_tap(rdb, vm, n, &fd, err);
	if (r < 0)
		return r;
	util_crash_point("nic-attach-after-tap");
	r = lc_command_qmp(root, vm->id, vm->def.name, &q, err);
	if (r < 0)
		goto undo;
	{
		_cleanup_json_ json_t *args = json_pack("{s:s}", "fdname", fdname);

		r = qmp_execute_with_fd(q, "getfd", args, fd, 0, NULL, err);
	}
	if (r < 0)
		goto undo;
	/* QEMU holds its own copy now: ours goes, so the tap lives as long
	 * as QEMU's netdev does */
	close(TAKE_FD(fd));
	util_crash_point("nic-attach-after-getfd");
	nd = json_pack("{s:s, s:s, s:s, s:b}", "type", "tap", "id", netdev, "fd", fdname, "vhost",
	               0);
	r = qmp_execute(q, "netdev_add", nd, 0, NULL, err);
	if (r < 0) {
		_cleanup_json_ json_t *args = json_pack("{s:s}", "fdname", fdname);

		qmp_execute(q, "closefd", args, 0, NULL, NULL);
		goto undo;
	}
	have_netdev = true;
	util_crash_point("nic-attach-after-netdev");
	dev = json_pack("{s:s, s:s, s:s, s:s}", "driver",
	                util_streq(n->model, "e1000") ? "e1000" : "virtio-net-pci", "netdev",
	                netdev, "id", devid, "mac", n->mac);
	r = qmp_execute(q, "device_add", dev, 0, NULL, err);
	if (r < 0)
		goto undo;
	util_crash_point("nic-attach-after-device");
	return 0;

undo:
	if (have_netdev && q)
		netdev_del(q, n->id);
	if (fd >= 0)
		close(TAKE_FD(fd));
	tap_remove(vm->id, n->id);
	return r;
}

/* ---- attach and detach ----------------------------------------------------------------- */

/* Hold the vm and open the journal's writer with it in: how attach and
 * detach start. Nothing is held on failure. */
static int hold_open(const char *root, const char *name, const lc_run_opts *opts, lc_held *ret_h,
                     lc_db **ret_db, lc_vm **ret_vm, util_err *err)
{
	lc_db *db = NULL;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r < 0) {
		lc_held_clear(&h);
		return r;
	}
	*ret_vm = lc_db_vm_by_id(db, h.id);
	*ret_db = db;
	*ret_h = h;
	return 0;
}

/* ---- the live half of attach and detach ------------------------------------------------ */

/* What tells a live attach from a live detach; the steps are the same. */
typedef struct hot_change {
	const char *op; /* the intent's op, the crash points' prefix */
	int (*apply)(const char *root, const lc_vm *vm, const lc_nic *n, util_err *err);
	const lc_nic *add;  /* the nic the definition gains, or NULL */
	int remove_id;      /* the nic it loses, or -1 */
	const char *failed; /* the state's reason when apply fails, */
	const char *result; /* and the done record's result then */
	const char *ok;     /* the state's reason when it works */
} hot_change;

/* Record the intent (it holds the MAC and the lease) and HOTPLUG, let the
 * journal go while QEMU is worked on, then take it again (*db, the writer
 * on entry, is the new writer or NULL on return) to record the outcome.
 * what prefixes a failure of apply: "cannot attach a nic to 'vm'". */
static int hot_change_run(const char *root, uint64_t id, lc_db **db, lc_vm *vm, const lc_nic *n,
                          const hot_change *c, const char *what, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *rdb = NULL;
	lc_vm *rvm;
	util_err hot_err = { 0 };
	util_err ignored = { 0 };
	char point[64];
	uint64_t seq;
	int r = intent(*db, c->op, vm->id, n, &seq, err);

	if (r == 0)
		r = lc_db_record_state(*db, vm, LC_ACTIVE, LC_LCM_HOTPLUG, c->op, NULL, err);
	if (r < 0)
		return r;
	snprintf(point, sizeof(point), "%s-after-intent", c->op);
	util_crash_point(point);
	lc_db_close(TAKE_PTR(*db));
	r = lc_load_vm(root, id, &rdb, &rvm, err);
	if (r == 0)
		r = c->apply(root, rvm, n, &hot_err);
	if (r < 0 && hot_err.msg[0])
		*err = hot_err;
	if (lc_db_open(root, LC_DB_WRITE, db, r < 0 ? &ignored : err) < 0)
		return r < 0 ? r : -EIO;
	vm = lc_db_vm_by_id(*db, id);
	if (r < 0) {
		char reason[600];

		snprintf(reason, sizeof(reason), "%s: %.500s", c->failed, err->msg);
		lc_db_record_state(*db, vm, LC_ACTIVE, LC_LCM_RUNNING, reason, NULL, &ignored);
		done(*db, vm->id, seq, c->result, &ignored);
		util_err_prefix(err, "%s", what);
		return r;
	}
	snprintf(point, sizeof(point), "%s-before-record", c->op);
	util_crash_point(point);
	r = redefine(*db, vm, c->add, c->remove_id, err);
	if (r == 0)
		r = lc_db_record_state(*db, vm, LC_ACTIVE, LC_LCM_RUNNING, c->ok, NULL, err);
	if (r == 0)
		r = done(*db, vm->id, seq, "ok", err);
	return r;
}

int lc_vm_nic_attach(const char *root, const char *name, const char *network, const char *mac,
                     const char *ip, const char *model, const lc_run_opts *opts,
                     unsigned *ret_nic_id, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_nic n = { 0 };
	lc_held h;
	lc_vm *vm;
	bool hot;
	int r = hold_open(root, name, opts, &h, &db, &vm, err);

	if (r < 0)
		return r;
	hot = running(vm);
	if (!hot && !stopped(vm)) {
		r = state_refusal("attach a nic to", vm, err);
		goto out;
	}
	if (vm->def.n_nics >= LC_NICS_MAX) {
		r = util_err_set(err, -ENOSPC,
		                 "cannot attach a nic to '%s': it has %d, the most a vm may have",
		                 h.name, LC_NICS_MAX);
		goto out;
	}
	if (model && !util_streq(model, "virtio") && !util_streq(model, "e1000")) {
		r = util_err_set(err, -EINVAL,
		                 "nic model '%s' is not supported (use virtio or e1000)", model);
		goto out;
	}
	n.id = next_nic_id(&vm->def);
	n.network = util_xstrdup(network);
	n.model = util_xstrdup(model ? model : "virtio");
	n.mac = mac ? util_xstrdup(mac) : NULL;
	n.ip = ip ? util_xstrdup(ip) : NULL;
	r = lc_nic_assign(db, vm->def.uuid, &n, vm->def.nics, vm->def.n_nics, err);
	if (r == 0 && hot) {
		char tap[16];

		r = net_tap_name(vm->id, n.id, tap, sizeof(tap), err);
	}
	if (r < 0) {
		util_err_prefix(err, "cannot attach a nic to '%s'", h.name);
		goto out;
	}
	if (!hot) {
		r = redefine(db, vm, &n, -1, err);
		goto out;
	}

	{
		const hot_change attach = {
			.op = "nic-attach",
			.apply = hot_add,
			.add = &n,
			.remove_id = -1,
			.failed = "nic-attach failed and was rolled back",
			.result = "rolled-back",
			.ok = "nic attached",
		};
		_cleanup_free_ char *what = util_xasprintf("cannot attach a nic to '%s'", h.name);

		r = hot_change_run(root, h.id, &db, vm, &n, &attach, what, err);
	}
out:
	if (r == 0 && ret_nic_id)
		*ret_nic_id = n.id;
	lc_nic_clear(&n);
	lc_held_clear(&h);
	return r < 0 ? r : 0;
}

/* ---- detach ------------------------------------------------------------------------------ */

static int hot_remove(const char *root, const lc_vm *vm, const lc_nic *n, util_err *err)
{
	_cleanup_qmp_ qmp_client *q = NULL;
	_cleanup_json_ json_t *args = NULL, *ev = NULL;
	char devid[32];
	int r = lc_command_qmp(root, vm->id, vm->def.name, &q, err);

	if (r < 0)
		return r;
	snprintf(devid, sizeof(devid), "nic%u", n->id);
	if (device_present(q, devid)) {
		args = json_pack("{s:s}", "id", devid);
		r = qmp_execute(q, "device_del", args, 0, NULL, err);
		if (r < 0)
			return r;
		util_crash_point("nic-detach-after-device-del");
		/* the guest releases the device: wait for DEVICE_DELETED, bounded;
		 * the device's absence counts too (the event may have gone by) */
		for (int64_t end = util_now_ms() + DEVICE_DELETED_TIMEOUT_MS;;) {
			const char *which;
			bool mine;

			r = qmp_wait_event(q, "DEVICE_DELETED", 250, &ev, err);
			if (r == -ETIMEDOUT) {
				if (!device_present(q, devid))
					break;
				if (util_now_ms() < end)
					continue;
				return util_err_set(
				        err, -ETIMEDOUT,
				        "the guest did not release nic %u within %d s (it may "
				        "still do so); run nic-detach again later",
				        n->id, DEVICE_DELETED_TIMEOUT_MS / 1000);
			}
			if (r < 0)
				return r;
			which = json_string_value(
			        json_object_get(json_object_get(ev, "data"), "device"));
			mine = util_streq(which, devid); /* which is ev's: compare first */
			json_decref(TAKE_PTR(ev));
			if (mine)
				break;
		}
	}
	netdev_del(q, n->id);
	tap_remove(vm->id, n->id);
	return 0;
}

int lc_vm_nic_detach(const char *root, const char *name, unsigned nic_id, const lc_run_opts *opts,
                     util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_nic n = { 0 };
	const lc_nic *found = NULL;
	lc_held h;
	lc_vm *vm;
	bool hot;
	int r = hold_open(root, name, opts, &h, &db, &vm, err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < vm->def.n_nics; i++)
		if (vm->def.nics[i].id == nic_id)
			found = &vm->def.nics[i];
	if (!found) {
		r = util_err_set(err, -ENOENT,
		                 "cannot detach nic %u of '%s': it has no nic %u (see qvm show %s)",
		                 nic_id, h.name, nic_id, h.name);
		goto out;
	}
	hot = running(vm);
	if (!hot && !stopped(vm)) {
		r = state_refusal("detach a nic from", vm, err);
		goto out;
	}
	{
		json_t *j = nic_json(found);

		nic_from(j, &n);
		json_decref(j);
	}
	if (!hot) {
		/* the lease goes with the nic */
		r = redefine(db, vm, NULL, (int)nic_id, err);
		goto out;
	}
	{
		const hot_change detach = {
			.op = "nic-detach",
			.apply = hot_remove,
			.remove_id = (int)nic_id,
			.failed = "nic-detach failed",
			.result = "failed",
			.ok = "nic detached",
		};
		_cleanup_free_ char *what =
		        util_xasprintf("cannot detach nic %u of '%s'", nic_id, h.name);

		r = hot_change_run(root, h.id, &db, vm, &n, &detach, what, err);
	}
out:
	lc_nic_clear(&n);
	lc_held_clear(&h);
	return r < 0 ? r : 0;
}
