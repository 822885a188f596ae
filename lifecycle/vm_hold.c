/* Holding a VM for a command: its name resolved, its lock taken (bounded),
 * and the journal reconciled with reality first: a QEMU whose supervisor
 * died is adopted or settled, and what a crashed command left half done
 * is settled through the handlers the operations registered
 * (lc_on_settle). Calls no operation. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "network.h"
#include "run.h"
#include "storage/storage.h"

/* ---- settling what crashed commands left ---------------------------------------------- */

static struct {
	unsigned when;
	int order;
	lc_settle_fn fn;
} settlers[LC_SETTLE_HANDLERS];
static size_t n_settlers;

/* Kept sorted by order as they come: constructors run in link order,
 * which must not decide what is settled first. */
void lc_on_settle(unsigned when, int order, lc_settle_fn fn)
{
	size_t i = n_settlers;

	if (n_settlers == LC_SETTLE_HANDLERS)
		abort(); /* before main: a programming error, never a dropped handler */
	for (; i > 0 && settlers[i - 1].order > order; i--)
		settlers[i] = settlers[i - 1];
	settlers[i].when = when;
	settlers[i].order = order;
	settlers[i].fn = fn;
	n_settlers++;
}

/* Run the handlers registered for moment when; 1 when one changed something. */
static int settle_vm(const char *root, uint64_t id, unsigned when, util_err *err)
{
	int changed = 0;

	for (size_t i = 0; i < n_settlers; i++) {
		int r;

		if (!(settlers[i].when & when))
			continue;
		r = settlers[i].fn(root, id, err);
		if (r < 0)
			return r;
		changed |= r > 0;
	}
	return changed;
}

/* ---- holding a VM ------------------------------------------------------------------------ */

/* The VM's state while its lock is still held: what this command left. */
static void note_left(const lc_held *h)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	util_err ignored = { 0 };
	lc_vm *vm;

	if (lc_db_open(h->root, LC_DB_SUMMARY, &db, &ignored) < 0 ||
	    !(vm = lc_db_vm_by_id(db, h->id)))
		return;
	*h->left = (lc_vm_left){ .set = true,
		                 .id = vm->id,
		                 .seq = vm->n_recent ? vm->recent[vm->n_recent - 1] : 0,
		                 .state = vm->state,
		                 .lcm = vm->lcm };
}

void lc_held_clear(lc_held *h)
{
	if (h->left && h->root && h->lock >= 0)
		note_left(h);
	h->left = NULL;
	free(h->name);
	if (h->lock >= 0)
		close(h->lock);
	h->lock = -1;
	h->name = NULL;
}

int lc_vm_lock_wait(const char *root, uint64_t id, const char *name, int timeout_ms, int *ret_fd,
                    util_err *err)
{
	_cleanup_free_ char *run = util_xasprintf("%s/run", root);
	_cleanup_free_ char *path = lc_vm_lock_path(root, id);
	int r = util_mkdir_p(run, 0700, err);

	if (r == 0)
		r = util_lock_path(path, true, timeout_ms, ret_fd, err);
	if (r == -EBUSY)
		return util_err_set(
		        err, -EBUSY,
		        "vm '%s' is busy: another qvm command is working on it (waited %d s); try again later",
		        name, timeout_ms / 1000);
	return r;
}

/* Resolve the name, take the VM lock (bounded), reconcile. The database is
 * not kept open: commands record through short transactions. */
int lc_hold_vm(const char *root, const char *name, const lc_run_opts *o, lc_held *h, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	bool settle = true;
	lc_vm *vm;
	int r = lc_db_open(root, LC_DB_SUMMARY, &db, err);

	h->lock = -1;
	h->name = NULL;
	h->root = root;
	h->left = o ? o->ret_left : NULL;
	if (r == 0)
		r = lc_db_find(db, name, &vm, err);
	if (r < 0)
		return r;
	h->id = vm->id;
	h->name = util_xstrdup(vm->def.name);
	r = lc_vm_lock_wait(root, h->id, h->name,
	                    o && o->lock_timeout_ms ? o->lock_timeout_ms : LC_LOCK_TIMEOUT_MS,
	                    &h->lock, err);
	if (r == 0)
		r = lc_reconcile_locked(root, h->id, &settle, err);
	/* then what a crash cut short: a disk operation, a snapshot operation
	 * (each takes the journal's writer lock: not when nothing is open) */
	if (r >= 0 && settle)
		r = settle_vm(root, h->id, LC_SETTLE_ON_HOLD, err);
	if (r < 0)
		lc_held_clear(h);
	return r < 0 ? r : 0;
}

/* ---- reconciliation ------------------------------------------------------------------------ */

/* Reconciliation found neither the supervisor nor the QEMU of VM id
 * (*dbp, a reader's copy it closes, holds vm): finish what was under way,
 * or roll back a start that never ran. */
static int settle_gone(const char *root, uint64_t id, lc_db **dbp, lc_vm *vm, util_err *err)
{
	_cleanup_free_ char *reason = NULL;
	lc_state final;
	lc_paths paths;
	int r;

	lc_paths_init(&paths, root, id);
	lc_remove_rundir(&paths);
	lc_paths_clear(&paths);
	lc_nics_remove_taps(vm);
	if ((vm->lcm == LC_LCM_BOOT || vm->lcm == LC_LCM_PROLOG) && vm->prev_state &&
	    lc_state_parse(vm->prev_state, &final, NULL) == 0) {
		reason = util_xstrdup("the start was interrupted before qemu ran; rolled back");
	} else if ((vm->lcm == LC_LCM_SHUTDOWN || vm->lcm == LC_LCM_EPILOG ||
	            (vm->lcm == LC_LCM_SAVE && vm->checkpoint)) &&
	           vm->target && lc_state_parse(vm->target, &final, NULL) == 0 &&
	           final != LC_ACTIVE) {
		reason = util_xasprintf("%s (finished after its supervisor died)",
		                        final == LC_DONE ? "shut down" : lc_state_name(final));
	} else {
		final = LC_FAILED;
		reason = util_xstrdup(LC_REASON_ORPHANED);
	}
	if (final == LC_DONE) {
		r = lc_remove_vm_files(*dbp, vm, false, err);
		if (r < 0)
			return r;
	}
	lc_db_close(TAKE_PTR(*dbp));
	r = lc_record(root, id, final, LC_LCM_NONE, reason, final == LC_FAILED ? reason : NULL,
	              json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
	                        "supervisor_pid", 0, "supervisor_starttime", 0),
	              err);
	return r < 0 ? r : 1;
}

/* With the VM lock held: if the journal says ACTIVE but no live supervisor
 * drives the VM, adopt its QEMU or settle what is left. Returns 1 when it
 * changed something. *ret_settle (may be NULL) is false only when nothing
 * changed and the VM has no open intent: no operation needs settling. */
int lc_reconcile_locked(const char *root, uint64_t id, bool *ret_settle, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *reason = NULL;
	lc_vm *vm;
	pid_t qpid;
	uint64_t qstart;
	lc_lcm lcm;
	int changed = 0;
	int r = lc_load_vm(root, id, &db, &vm, err);

	if (r < 0)
		return r;
	if (lc_db_has_intent(db, id, LC_DEF_OPS)) {
		/* a delete or recreate its qvm died in: finish it first */
		lc_db_close(TAKE_PTR(db));
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
		if (r == 0)
			r = lc_db_recover_vm(db, id, LC_DEF_OPS, err);
		lc_db_close(TAKE_PTR(db));
		if (r < 0)
			return r;
		r = lc_load_vm(root, id, &db, &vm, err);
		if (r < 0)
			return r;
		changed = 1;
	}
	if (vm->state == LC_ACTIVE && vm->lcm == LC_LCM_SHUTDOWN && !vm->request_sent &&
	    vm->prev_state && lc_vm_supervised(vm) &&
	    lc_lcm_parse(vm->prev_state, &lcm, NULL) == 0) {
		/* its qvm died between recording the intent and asking QEMU:
		 * nothing was asked, so nothing happens — back to where it was */
		reason = util_xasprintf(
		        "the %s request was interrupted before it reached qemu; rolled back",
		        vm->target && !strcmp(vm->target, "REBOOT") ? "reboot" : "shutdown");
		lc_db_close(TAKE_PTR(db));
		r = lc_record(root, id, LC_ACTIVE, lcm, reason, NULL, NULL, err);
		return r < 0 ? r : 1;
	}
	if (vm->state == LC_ACTIVE && vm->lcm == LC_LCM_HOTPLUG) {
		/* a nic-attach/detach whose qvm died: complete or undo it */
		lc_db_close(TAKE_PTR(db));
		r = settle_vm(root, id, LC_SETTLE_ON_HOTPLUG, err);
		if (r < 0)
			return r;
		changed = r > 0;
		r = lc_load_vm(root, id, &db, &vm, err);
		if (r < 0)
			return r;
	}
	/* then, whatever the nic recovery did, a QEMU nobody supervises */
	if (vm->state != LC_ACTIVE || lc_vm_supervised(vm)) {
		if (ret_settle)
			*ret_settle = changed || lc_db_has_intent(db, id, NULL);
		return changed;
	}
	lc_find_qemu(vm, &qpid, &qstart);
	if (qpid > 0) {
		util_err aerr = { 0 };

		lc_db_close(TAKE_PTR(db));
		r = lc_spawn_supervisor(root, id, -1, true, false, LC_SPAWN_TIMEOUT_MS, &aerr);
		if (r == 0)
			return 1;
		/* alive but unreachable: its fate is not known */
		r = lc_record(root, id, LC_UNKNOWN, LC_LCM_NONE,
		              "its supervisor died and its qemu cannot be reached", aerr.msg,
		              json_pack("{s:i, s:I, s:i}", "qemu_pid", (int)qpid, "qemu_starttime",
		                        (json_int_t)qstart, "supervisor_pid", 0),
		              err);
		return r < 0 ? r : 1;
	}
	/* QEMU is gone too */
	return settle_gone(root, id, &db, vm, err);
}

int lc_vm_reconcile(const char *root, uint64_t id, util_err *err)
{
	_cleanup_close_ int lock = -1;
	_cleanup_free_ char *path = lc_vm_lock_path(root, id);

	int r, s;

	if (util_lock_path(path, true, 0, &lock, NULL) < 0)
		return 0; /* a command holds it and will reconcile */
	r = lc_reconcile_locked(root, id, NULL, err);
	if (r < 0)
		return r;
	s = settle_vm(root, id, LC_SETTLE_ON_READ, err);
	return s < 0 ? s : (r | s);
}

/* ---- QMP commands from qvm --------------------------------------------------------------- */

int lc_command_qmp(const char *root, uint64_t id, const char *name, qmp_client **ret, util_err *err)
{
	lc_paths p;
	int r;

	lc_paths_init(&p, root, id);
	r = qmp_connect_path(p.qmp_command, 0, ret, err);
	lc_paths_clear(&p);
	if (r < 0)
		return util_err_prefix(err, "cannot reach the qemu of '%s'", name);
	return 0;
}

char *lc_state_text(const lc_vm *vm)
{
	if (vm->state == LC_ACTIVE)
		return util_xasprintf("ACTIVE/%s", lc_lcm_name(vm->lcm));
	return util_xstrdup(lc_state_name(vm->state));
}
