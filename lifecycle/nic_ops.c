/* nic-attach and nic-detach: on a stopped VM the definition alone changes;
 * on a running one the tap, QEMU's netdev and device are added or removed
 * (getfd + netdev_add + device_add; device_del + DEVICE_DELETED +
 * netdev_del) in ACTIVE/HOTPLUG, under a journal intent so that a crash is
 * completed or rolled back. Any failure rolls back every step before it.
 * The journal is let go while QEMU is worked on: what the supervisor
 * records meanwhile (QEMU exited, the guest powered off) wins over the
 * outcome. */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "network.h"
#include "vm_command.h"

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
	if (n->pci.bus)
		json_object_set_new(
		        j, "pci",
		        json_pack("{s:s, s:i}", "bus", n->pci.bus, "slot", (int)n->pci.slot));
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
	if (json_string_value(json_object_get(json_object_get(j, "pci"), "bus"))) {
		n->pci.bus = util_xstrdup(
		        json_string_value(json_object_get(json_object_get(j, "pci"), "bus")));
		n->pci.slot = (unsigned)json_integer_value(
		        json_object_get(json_object_get(j, "pci"), "slot"));
	}
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

/* Is device id in the running QEMU: 1 yes, 0 no, or negative when QEMU
 * did not say (an error of another class than DeviceNotFound, no answer).
 * Taking any failure for "no" made a detach forget a nic whose device
 * stayed in the guest. */
static int device_state(qmp_client *q, const char *id, util_err *err)
{
	_cleanup_free_ char *path = util_xasprintf("/machine/peripheral/%s", id);
	_cleanup_json_ json_t *args = json_pack("{s:s, s:s}", "path", path, "property", "type");
	util_err mine = { 0 };
	int r = qmp_execute(q, "qom-get", args, 0, NULL, &mine);

	if (r == 0)
		return 1;
	if (util_streq(mine.qmp_class, "DeviceNotFound"))
		return 0;
	if (err)
		*err = mine;
	return r;
}

/* ... where "did not say" counts as present (nothing is undone on it). */
static bool device_present(qmp_client *q, const char *id)
{
	return device_state(q, id, NULL) != 0;
}

static int netdev_del(qmp_client *q, unsigned nic_id)
{
	_cleanup_json_ json_t *args = json_pack("{s:o}", "id", json_sprintf("net%u", nic_id));

	return qmp_execute(q, "netdev_del", args, 0, NULL, NULL);
}

/* A connection that QEMU left unanswered (a timeout ends it) or dropped
 * is replaced by a new one (*q NULL when QEMU cannot be reached): what
 * QEMU did meanwhile is looked at, and undone, there. */
static void reconnect_if_dead(const char *root, const lc_vm *vm, qmp_client **q)
{
	util_err ignored = { 0 };

	if (!*q || qmp_alive(*q))
		return;
	qmp_close(TAKE_PTR(*q));
	lc_command_qmp(root, vm->id, vm->def.name, q, &ignored);
}

/* The name getfd gives the tap's fd in QEMU until netdev_add takes it. */
static void fd_name(char *buf, size_t len, unsigned nic_id)
{
	snprintf(buf, len, "qvm-tap%u", nic_id);
}

/* Close the tap's fd that getfd left in QEMU (none is fine). */
static void closefd(qmp_client *q, unsigned nic_id)
{
	char name[32];
	_cleanup_json_ json_t *args = NULL;

	fd_name(name, sizeof(name), nic_id);
	args = json_pack("{s:s}", "fdname", name);
	qmp_execute(q, "closefd", args, 0, NULL, NULL);
}

static bool has_nic(const lc_vm *vm, unsigned nic_id)
{
	for (size_t i = 0; i < vm->def.n_nics; i++)
		if (vm->def.nics[i].id == nic_id)
			return true;
	return false;
}

/* Is vm where a hotplug left it, so that its outcome may be recorded as
 * the state? The supervisor records QEMU's exit meanwhile (EPILOG, then
 * POWEROFF, FAILED or a restart): that is the state then. */
static bool still_hotplug(const lc_vm *vm)
{
	return vm && vm->state == LC_ACTIVE && vm->lcm == LC_LCM_HOTPLUG;
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

/* The QEMU side of settling an open nic intent of a qvm that died: is
 * the nic's device in QEMU (*ret_present)? An attach whose device is not
 * there has its netdev, the fd getfd left and its tap removed. A detach is
 * carried through as asked: device_del (again: its qvm may have died
 * before or after sending it) and, with wait, a bounded wait for the guest
 * to let go; once the device is gone its netdev and tap go too. -EAGAIN
 * when it cannot be judged now: a QEMU that does not answer but may still
 * run, or a detach that would have to wait (wait false: the journal's
 * writer is held). */
static int settle_qemu(const char *root, const lc_vm *vm, bool attach, const lc_nic *n, bool wait,
                       bool *ret_present)
{
	_cleanup_qmp_ qmp_client *q = NULL;
	char dev[32];
	bool present = false;

	snprintf(dev, sizeof(dev), "nic%u", n->id);
	if (vm->state == LC_ACTIVE) {
		util_err ignored = { 0 };
		pid_t pid = 0;
		uint64_t start;

		if (lc_command_qmp(root, vm->id, vm->def.name, &q, &ignored) < 0) {
			/* its supervisor records QEMU's exit; a QEMU alive
			 * but silent is UNKNOWN to reconciliation */
			if (lc_vm_supervised(vm) ||
			    (lc_find_qemu(vm, &pid, &start) == 0 && pid > 0))
				return -EAGAIN;
		} else {
			int st = device_state(q, dev, NULL);

			if (st < 0)
				return -EAGAIN; /* QEMU did not say: not judged now */
			present = st;
		}
	}
	if (!attach && present) {
		util_err ignored = { 0 };
		_cleanup_json_ json_t *args = json_pack("{s:s}", "id", dev);

		/* nothing was asked of QEMU before HOTPLUG was recorded */
		if (vm->lcm != LC_LCM_HOTPLUG) {
			*ret_present = true;
			return 0;
		}
		if (!wait)
			return -EAGAIN;
		qmp_execute(q, "device_del", args, 0, NULL, &ignored);
		for (int64_t end = util_now_ms() + DEVICE_DELETED_TIMEOUT_MS;
		     present && util_now_ms() < end;) {
			_cleanup_json_ json_t *ev = NULL;
			int w = qmp_wait_event(q, "DEVICE_DELETED", 250, &ev, &ignored);

			/* QEMU went away: its supervisor records that first */
			if (w < 0 && w != -ETIMEDOUT)
				return -EAGAIN;
			present = device_present(q, dev);
		}
	}
	if (!present) {
		if (q) {
			netdev_del(q, n->id);
			closefd(q, n->id);
		}
		tap_remove(vm->id, n->id);
	}
	*ret_present = present;
	return 0;
}

/* Record how an open nic intent was settled, in db (the writer): an
 * attach whose device is in QEMU is completed, any other is rolled back;
 * a detach whose device is gone is completed, else it is given up (the
 * nic stays; nic-detach may be run again). */
static int settle_record(lc_db *db, uint64_t seq, uint64_t id, bool attach, const lc_nic *n,
                         bool present, util_err *err)
{
	lc_vm *vm = lc_db_vm_by_id(db, id);
	bool completed = attach ? present : !present;
	int r = 0;

	if (!vm)
		return lc_db_done(db, seq, "rolled-back", err);
	/* a crash after the redefinition: it is there already */
	if (attach && present && !has_nic(vm, n->id))
		r = redefine(db, vm, n, -1, err);
	else if (!attach && !present && has_nic(vm, n->id))
		r = redefine(db, vm, NULL, (int)n->id, err);
	if (r == 0 && still_hotplug(vm))
		r = lc_db_record_state(db, vm, LC_ACTIVE, LC_LCM_RUNNING,
		                       completed ? "an interrupted nic hotplug was completed"
		                                 : "an interrupted nic hotplug was rolled back",
		                       NULL, err);
	if (r == 0)
		r = lc_db_done(db, seq, completed ? "ok" : attach ? "rolled-back" : "failed", err);
	return r;
}

static bool nic_op(const char *op)
{
	return util_streq(op, "nic-attach") || util_streq(op, "nic-detach");
}

/* From the journal's recovery, with the writer and the VM lock held: what
 * can be settled without waiting on the guest is; the rest is left to the
 * VM's reconciliation (settle_nics: its next command, qvm list). */
int lc_nic_recover(lc_db *db, uint64_t seq, json_t *in, util_err *err)
{
	const char *op = json_string_value(json_object_get(in, "op"));
	uint64_t id = (uint64_t)json_integer_value(json_object_get(in, "id"));
	lc_vm *vm = lc_db_vm_by_id(db, id);
	bool attach = util_streq(op, "nic-attach"), present = false;
	lc_nic n;
	int r;

	if (!nic_op(op))
		return 0;
	if (!vm)
		return lc_db_done(db, seq, "rolled-back", err);
	nic_from(json_object_get(json_object_get(in, "data"), "nic"), &n);
	r = settle_qemu(lc_db_root(db), vm, attach, &n, false, &present);
	if (r == 0)
		r = settle_record(db, seq, id, attach, &n, present, err);
	else if (r == -EAGAIN)
		r = 0;
	lc_nic_clear(&n);
	return r;
}

/* With the VM lock held, while it is ACTIVE/HOTPLUG: settle the open nic
 * intents of VM id (1 if there were some). */
static int settle_nics(const char *root, uint64_t id, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *rdb = NULL;
	_cleanup_json_ json_t *mine = json_object();
	const char *key;
	json_t *in;
	int r = lc_db_open(root, 0, &rdb, err), settled = 0;

	if (r < 0)
		return r;
	json_object_foreach (lc_db_intents(rdb), key, in)
		if ((uint64_t)json_integer_value(json_object_get(in, "id")) == id &&
		    nic_op(json_string_value(json_object_get(in, "op"))))
			json_object_set(mine, key, in);
	lc_db_close(TAKE_PTR(rdb));
	json_object_foreach (mine, key, in) {
		_cleanup_(lc_db_closep) lc_db *db = NULL;
		bool attach =
		        util_streq(json_string_value(json_object_get(in, "op")), "nic-attach");
		bool present = false;
		lc_vm *vm;
		lc_nic n;

		/* QEMU first, with the journal free (a detach may wait on the
		 * guest), then the record */
		r = lc_load_vm(root, id, &rdb, &vm, err);
		if (r < 0)
			return r;
		nic_from(json_object_get(json_object_get(in, "data"), "nic"), &n);
		r = settle_qemu(root, vm, attach, &n, true, &present);
		lc_db_close(TAKE_PTR(rdb));
		if (r == 0)
			r = lc_db_open(root, LC_DB_WRITE, &db, err);
		/* the writer's own recovery may have settled it already */
		if (r == 0 && json_object_get(lc_db_intents(db), key))
			r = settle_record(db, strtoull(key, NULL, 10), id, attach, &n, present,
			                  err);
		lc_nic_clear(&n);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			return r;
		settled = 1;
	}
	return settled;
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
 * getfd, netdev_add, device_add. On failure every step done is undone.
 * The failure points (QVM_FAIL_AT) make the step after them fail. */
static int hot_add(const char *root, const lc_vm *vm, lc_nic *n, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *rdb = NULL;
	_cleanup_qmp_ qmp_client *q = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_json_ json_t *nd = NULL, *dev = NULL;
	char fdname[32], netdev[32], devid[32];
	bool have_fd = false, have_netdev = false;
	int r;

	fd_name(fdname, sizeof(fdname), n->id);
	snprintf(netdev, sizeof(netdev), "net%u", n->id);
	snprintf(devid, sizeof(devid), "nic%u", n->id);
	r = lc_db_open(root, 0, &rdb, err);
	if (r == 0)
		r = lc_nic_open_tap(rdb, vm, n, &fd, err);
	if (r < 0)
		return r;
	util_crash_point("nic-attach-after-tap");
	r = lc_command_qmp(root, vm->id, vm->def.name, &q, err);
	if (r == 0)
		r = util_fail_point("nic-attach-after-tap", err);
	if (r == 0) {
		_cleanup_json_ json_t *args = json_pack("{s:s}", "fdname", fdname);

		r = qmp_execute_with_fd(q, "getfd", args, fd, 0, NULL, err);
	}
	if (r < 0)
		goto undo;
	have_fd = true;
	/* QEMU holds its own copy now: ours goes, so the tap lives as long
	 * as QEMU's netdev does */
	close(TAKE_FD(fd));
	util_crash_point("nic-attach-after-getfd");
	nd = json_pack("{s:s, s:s, s:s, s:b}", "type", "tap", "id", netdev, "fd", fdname, "vhost",
	               0);
	r = util_fail_point("nic-attach-after-getfd", err);
	if (r == 0)
		r = qmp_execute(q, "netdev_add", nd, 0, NULL, err);
	if (r == -EREMOTEIO && device_state(q, devid, NULL) == 0 && netdev_del(q, n->id) == 0) {
		/* a netdev of this name without its device: left by a detach
		 * whose netdev_del QEMU refused, it would refuse this attach
		 * and every later one of the nic id. It went: once more. */
		util_err_clear(err);
		r = qmp_execute(q, "netdev_add", nd, 0, NULL, err);
	}
	if (r < 0)
		goto undo;
	/* the netdev took the fd out of QEMU's named ones */
	have_fd = false;
	have_netdev = true;
	util_crash_point("nic-attach-after-netdev");
	dev = json_pack("{s:s, s:s, s:s, s:s}", "driver",
	                util_streq(n->model, "e1000") ? "e1000" : "virtio-net-pci", "netdev",
	                netdev, "id", devid, "mac", n->mac);
	r = util_fail_point("nic-attach-after-netdev", err);
	if (r == 0)
		r = lc_hotplug_device_add(q, &vm->def, json_incref(dev), &n->pci, err);
	if (r < 0)
		goto undo;
	util_crash_point("nic-attach-after-device");
	return 0;

undo:
	if (q && !qmp_alive(q)) {
		/* QEMU did not answer (or dropped us): it may have done the
		 * step all the same, and a netdev left behind would refuse
		 * every later attach of this nic id */
		reconnect_if_dead(root, vm, &q);
		if (q && device_state(q, devid, NULL) == 1) {
			util_err_clear(err);
			return 0; /* the device is in: done all the same */
		}
		have_netdev = have_fd = q != NULL;
	}
	if (have_netdev)
		netdev_del(q, n->id);
	if (have_fd)
		closefd(q, n->id);
	if (fd >= 0)
		close(TAKE_FD(fd));
	tap_remove(vm->id, n->id);
	return r;
}

/* ---- attach and detach ----------------------------------------------------------------- */

/* Hold the vm and open the journal's writer with it in: how attach and
 * detach start. Nothing is held on failure. */
static int hold_open(lc_cmd *c, const char *root, const char *name, const lc_run_opts *opts,
                     lc_db **ret_db, lc_vm **ret_vm, util_err *err)
{
	lc_db *db = NULL;
	int r = lc_cmd_hold(c, root, name, opts, err);

	if (r < 0)
		return r;
	lc_cmd_let_go(c);
	r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r < 0)
		return lc_cmd_end(c, r);
	*ret_vm = lc_db_vm_by_id(db, c->h.id);
	*ret_db = db;
	return 0;
}

/* ---- the live half of attach and detach ------------------------------------------------ */

/* What tells a live attach from a live detach; the steps are the same. */
typedef struct hot_change {
	const char *op; /* the intent's op, the crash points' prefix */
	/* an attach's apply sets n->pci: where the nic went */
	int (*apply)(const char *root, const lc_vm *vm, lc_nic *n, util_err *err);
	const lc_nic *add;  /* the nic the definition gains, or NULL */
	int remove_id;      /* the nic it loses, or -1 */
	const char *failed; /* the state's reason when apply fails, */
	const char *result; /* and the done record's result then */
	const char *ok;     /* the state's reason when it works */
} hot_change;

/* Record the intent (it holds the MAC and the lease) and HOTPLUG, let the
 * journal go while QEMU is worked on, then take it again (*db, the writer
 * on entry, is the new writer or NULL on return) to record the outcome.
 * The state goes back to RUNNING only from HOTPLUG: if QEMU exited
 * meanwhile, what the supervisor recorded stays. what prefixes a failure:
 * "cannot attach a nic to 'vm'". */
static int hot_change_run(const char *root, uint64_t id, lc_db **db, lc_vm *vm, lc_nic *n,
                          const hot_change *c, const char *what, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *rdb = NULL;
	_cleanup_free_ char *now = NULL;
	lc_vm *rvm;
	util_err hot_err = { 0 };
	util_err ignored = { 0 };
	char point[64];
	uint64_t seq;
	/* the QEMU worked on: a guest's reboot meanwhile keeps it, an exit
	 * (and a restart) does not */
	pid_t qemu_pid = vm->qemu_pid;
	uint64_t qemu_start = vm->qemu_starttime;
	bool same_qemu;
	int r;

	/* the intent and the state it puts the vm in: one sync */
	lc_db_group_begin(*db);
	r = lc_db_intent(*db, c->op, vm->id, json_pack("{s:o}", "nic", nic_json(n)), &seq, err);
	if (r == 0)
		r = lc_db_record_state(*db, vm, LC_ACTIVE, LC_LCM_HOTPLUG, c->op, NULL, err);
	if (r == 0)
		r = lc_db_group_commit(*db, err);
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
	now = lc_state_text(vm);
	same_qemu = vm->state == LC_ACTIVE && qemu_pid > 0 && vm->qemu_pid == qemu_pid &&
	            vm->qemu_starttime == qemu_start;
	if (r < 0) {
		char reason[600];

		snprintf(reason, sizeof(reason), "%s: %.500s", c->failed, err->msg);
		if (still_hotplug(vm))
			lc_db_record_state(*db, vm, LC_ACTIVE, LC_LCM_RUNNING, reason, NULL,
			                   &ignored);
		lc_db_done(*db, seq, c->result, &ignored);
		util_err_prefix(err, "%s", what);
		if (!same_qemu) {
			char cause[sizeof(err->msg)];

			snprintf(cause, sizeof(cause), "%s", err->msg);
			util_err_set(err, r, "%s; meanwhile its qemu exited: it is %s now", cause,
			             now);
		}
		return r;
	}
	snprintf(point, sizeof(point), "%s-before-record", c->op);
	util_crash_point(point);
	if (!same_qemu && !stopped(vm)) {
		/* QEMU exited and is being restarted (EPILOG, BOOT): the new one
		 * is made from the definition as it was */
		lc_db_done(*db, seq, c->result, &ignored);
		return util_err_set(err, -EAGAIN,
		                    "%s: its qemu exited meanwhile and it is %s now; nothing was "
		                    "changed: run the command again",
		                    what, now);
	}
	/* (a vm stopped meanwhile: the change holds for its definition, as
	 * it would have on a stopped vm) */
	r = util_fail_point(point, err);
	/* the new definition, the state back and the done: one sync (not
	 * committed, none is written, and the open intent is settled) */
	lc_db_group_begin(*db);
	if (r == 0)
		r = redefine(*db, vm, c->add, c->remove_id, err);
	if (r == 0 && still_hotplug(vm))
		r = lc_db_record_state(*db, vm, LC_ACTIVE, LC_LCM_RUNNING, c->ok, NULL, err);
	if (r == 0)
		r = lc_db_done(*db, seq, "ok", err);
	if (r == 0)
		r = lc_db_group_commit(*db, err);
	if (r < 0 && same_qemu)
		util_err_prefix(err,
		                "%s: qemu has the change but it could not be recorded (the next "
		                "qvm command on '%s' records it)",
		                what, vm->def.name);
	else if (r < 0)
		util_err_prefix(err, "%s", what);
	return r;
}

int lc_vm_nic_attach(const char *root, const char *name, const char *network, const char *mac,
                     const char *ip, const char *model, const lc_run_opts *opts,
                     unsigned *ret_nic_id, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_nic n = { 0 };
	lc_cmd c;
	lc_vm *vm;
	bool hot;
	int r = hold_open(&c, root, name, opts, &db, &vm, err);

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
		                 c.h.name, LC_NICS_MAX);
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
	if (r == 0) {
		char tap[16];

		/* a stopped vm needs the tap at its next start */
		r = net_tap_name(vm->id, n.id, tap, sizeof(tap), err);
	}
	if (r < 0) {
		util_err_prefix(err, "cannot attach a nic to '%s'", c.h.name);
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
		_cleanup_free_ char *what = util_xasprintf("cannot attach a nic to '%s'", c.h.name);

		r = hot_change_run(root, c.h.id, &db, vm, &n, &attach, what, err);
	}
out:
	if (r == 0 && ret_nic_id)
		*ret_nic_id = n.id;
	lc_nic_clear(&n);
	lc_cmd_end(&c, 0);
	return r < 0 ? r : 0;
}

/* ---- detach ------------------------------------------------------------------------------ */

static int hot_remove(const char *root, const lc_vm *vm, lc_nic *n, util_err *err)
{
	_cleanup_qmp_ qmp_client *q = NULL;
	_cleanup_json_ json_t *args = NULL, *ev = NULL;
	char devid[32];
	int r = lc_command_qmp(root, vm->id, vm->def.name, &q, err);

	if (r < 0)
		return r;
	snprintf(devid, sizeof(devid), "nic%u", n->id);
	r = device_state(q, devid, err);
	if (r < 0)
		return r;
	if (r) {
		args = json_pack("{s:s}", "id", devid);
		r = qmp_execute(q, "device_del", args, 0, NULL, err);
		if (r < 0 && !qmp_alive(q)) {
			/* no answer: the device may be gone all the same */
			reconnect_if_dead(root, vm, &q);
			if (q && device_state(q, devid, NULL) == 0)
				goto unplugged;
		}
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
				r = device_state(q, devid, err);
				if (r < 0)
					return r;
				if (!r)
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
unplugged:
	/* once more on a new connection if QEMU dropped this one: a netdev
	 * left would refuse the next attach of this nic id */
	if (netdev_del(q, n->id) < 0 && !qmp_alive(q)) {
		reconnect_if_dead(root, vm, &q);
		if (q)
			netdev_del(q, n->id);
	}
	tap_remove(vm->id, n->id);
	return 0;
}

int lc_vm_nic_detach(const char *root, const char *name, unsigned nic_id, const lc_run_opts *opts,
                     util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_nic n = { 0 };
	const lc_nic *found = NULL;
	lc_cmd c;
	lc_vm *vm;
	bool hot;
	int r = hold_open(&c, root, name, opts, &db, &vm, err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < vm->def.n_nics; i++)
		if (vm->def.nics[i].id == nic_id)
			found = &vm->def.nics[i];
	if (!found) {
		r = util_err_set(err, -ENOENT,
		                 "cannot detach nic %u of '%s': it has no nic %u (see qvm show %s)",
		                 nic_id, c.h.name, nic_id, c.h.name);
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
		        util_xasprintf("cannot detach nic %u of '%s'", nic_id, c.h.name);

		r = hot_change_run(root, c.h.id, &db, vm, &n, &detach, what, err);
	}
out:
	lc_nic_clear(&n);
	lc_cmd_end(&c, 0);
	return r < 0 ? r : 0;
}

__attribute__((constructor)) static void register_nic_recovery(void)
{
	lc_store_on_intent("nic-", lc_nic_recover);
	lc_on_settle(LC_SETTLE_ON_HOTPLUG, 0, settle_nics);
}
