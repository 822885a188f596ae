/* Commands that drive running VMs — start, shutdown, poweroff, reboot,
 * pause, delete of a running VM, recover, boot. Each command holds the VM
 * lock for its whole run (vm_hold.c); the journal lock only while it
 * records. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cloudinit.h"
#include "network.h"
#include "run.h"
#include "snapshot.h"
#include "storage/storage.h"

/* ---- start ------------------------------------------------------------------------------ */

/* What a VM needs on the host before QEMU starts, prepared while it is
 * ACTIVE/PROLOG (recorded first, with the state to return to): the owned
 * disk files that are missing (after a recreate or a create that failed
 * part way, or lost), made again from the definition, and its cloud-init
 * seed, rebuilt at each start. A failure returns the VM to prev and
 * removes the disks it made; a crash leaves PROLOG with no supervisor,
 * which reconciliation rolls back to prev as it does an interrupted BOOT,
 * and the disks' intent is settled (their files removed) by
 * the disks' settling. A VM with neither skips PROLOG (its stale seed, if
 * any, is removed). */
static int prolog(const char *root, lc_db *db, lc_held *h, const lc_vm *vm, const char *prev,
                  util_err *err)
{
	/* A VM that uses cloud-init and has nics gets their leases as a
	 * network-config (when the user gave none; see lc_seed_files()),
	 * made now since nic-attach changes them. A VM without cloud-init
	 * gets no seed it did not ask for: an extra disk would move the
	 * guest's device names. */
	_cleanup_free_ char *generated_network_config = NULL, *reason = NULL, *list = NULL;
	lc_prolog_disks made = { 0 };
	unsigned missing[LC_DISKS_MAX];
	size_t n_missing;
	bool seed;
	lc_state back;
	int r;

	if (vm->def.ci_user_data && vm->def.n_nics) {
		_cleanup_json_ json_t *nics = lc_vm_nics_json(db, vm);

		generated_network_config = lc_nics_network_config(nics);
	}
	seed = lc_seed_wanted(&vm->def, generated_network_config);
	n_missing = lc_prolog_missing(&vm->def, missing);
	if (!seed && !n_missing)
		return lc_seed_build(root, h->id, &vm->def, NULL, err);
	for (size_t i = 0; i < n_missing; i++) {
		char *more =
		        util_xasprintf("%s%s%u", list ? list : "", list ? ", " : "", missing[i]);

		free(list);
		list = more;
	}
	if (!n_missing)
		reason = util_xstrdup("start: preparing the cloud-init seed");
	else
		reason = util_xasprintf("start: making missing disk%s %s%s",
		                        n_missing > 1 ? "s" : "", list,
		                        seed ? " and the cloud-init seed" : "");
	r = lc_record(root, h->id, LC_ACTIVE, LC_LCM_PROLOG, reason, NULL,
	              json_pack("{s:s, s:i, s:i, s:i, s:i}", "prev", prev, "qemu_pid", 0,
	                        "qemu_starttime", 0, "supervisor_pid", 0, "supervisor_starttime",
	                        0),
	              err);
	if (r < 0)
		return r;
	r = lc_prolog_disks_make(root, h->id, &vm->def, &made, err);
	if (r == 0) {
		util_crash_point("start-prolog-before-seed");
		r = lc_seed_build(root, h->id, &vm->def, generated_network_config, err);
	}
	if (r == 0) {
		util_crash_point("start-prolog-after-seed");
		r = lc_prolog_disks_end(root, h->id, &vm->def, &made, true, err);
	}
	if (r < 0) {
		util_err ignored = { 0 };

		lc_prolog_disks_end(root, h->id, &vm->def, &made, false, &ignored);
		if (lc_state_parse(prev, &back, NULL) < 0)
			back = LC_FAILED;
		lc_record(root, h->id, back, LC_LCM_NONE,
		          n_missing ? "start failed in PROLOG: its disks or seed could not be made"
		                    : "start failed: no cloud-init seed",
		          err->msg, NULL, &ignored);
		return util_err_prefix(err, "cannot start '%s'", h->name);
	}
	return 0;
}

static int start_held(const char *root, lc_held *h, bool force, bool no_wait, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *prev = NULL;
	lc_vm *vm;
	json_t *extra;
	int r = lc_load_vm(root, h->id, &db, &vm, err);

	if (r < 0)
		return r;
	if (!force) {
		pid_t stray;
		uint64_t stray_start;

		r = lc_state_check(LC_OP_START, h->name, vm->state, vm->lcm, err);
		if (r < 0)
			return r;
		/* never twice: a QEMU of this VM that the journal lost track of */
		lc_find_qemu(vm, &stray, &stray_start);
		if (stray > 0)
			return util_err_set(
			        err, -EEXIST,
			        "cannot start '%s': a qemu of it still runs (pid %d); use 'qvm boot' to replace it or 'qvm recover --success' to adopt it",
			        h->name, (int)stray);
	}
	prev = lc_state_text(vm);
	if (vm->state == LC_ACTIVE || vm->state == LC_UNKNOWN) {
		free(prev);
		prev = util_xstrdup("FAILED");
	}
	r = prolog(root, db, h, vm, prev, err);
	if (r < 0)
		return r;
	lc_db_close(TAKE_PTR(db));
	/* no uptime until it runs (not the last boot's) */
	extra = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "prev", prev, "qemu_pid", 0,
	                  "qemu_starttime", 0, "supervisor_pid", 0, "supervisor_starttime", 0,
	                  "started", 0);
	r = lc_record(root, h->id, LC_ACTIVE, LC_LCM_BOOT, "start", NULL, extra, err);
	if (r < 0)
		return r;
	util_crash_point("start-after-intent");
	/* The supervisor inherits the VM lock and lets go once QEMU runs, so
	 * no reconciliation can mistake a start in flight for a dead one. */
	r = lc_spawn_supervisor(root, h->id, h->lock, false, no_wait, LC_SPAWN_TIMEOUT_MS, err);
	if (r < 0) {
		util_err ignored = { 0 };

		/* a supervisor that died without recording: settle it now,
		 * once it is gone for good (its pipe closes a little before it
		 * exits). If its QEMU was adopted and runs, the start did happen. */
		if (lc_load_vm(root, h->id, &db, &vm, &ignored) == 0)
			lc_wait_pid_exit(vm->supervisor_pid, vm->supervisor_starttime, 5000);
		lc_db_close(TAKE_PTR(db));
		if (lc_reconcile_locked(root, h->id, NULL, &ignored) > 0 &&
		    lc_load_vm(root, h->id, &db, &vm, &ignored) == 0 && vm->state == LC_ACTIVE &&
		    vm->lcm == LC_LCM_RUNNING && lc_vm_supervised(vm)) {
			util_err_clear(err);
			return 0;
		}
		return util_err_prefix(err, "cannot start '%s'", h->name);
	}
	return 0;
}

int lc_vm_start(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = start_held(root, &h, false, opts && opts->no_wait, err);
	lc_held_clear(&h);
	return r;
}

int lc_vm_boot(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	pid_t qpid;
	uint64_t qstart;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = lc_load_vm(root, h.id, &db, &vm, err);
	if (r == 0 &&
	    !(vm->state == LC_UNKNOWN || (vm->state == LC_ACTIVE && vm->lcm == LC_LCM_BOOT)))
		r = util_err_set(
		        err, -EPERM,
		        "cannot boot '%s': it is %s; boot needs UNKNOWN or ACTIVE/BOOT (use start)",
		        h.name,
		        vm->state == LC_ACTIVE ? lc_lcm_name(vm->lcm) : lc_state_name(vm->state));
	if (r == 0) {
		/* never twice: whatever runs this VM goes first */
		lc_kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
		lc_find_qemu(vm, &qpid, &qstart);
		lc_kill_and_wait(qpid, qstart);
		lc_db_close(TAKE_PTR(db));
		r = start_held(root, &h, true, false, err);
	}
	lc_held_clear(&h);
	return r;
}

/* ---- shutdown, poweroff, reboot, pause ------------------------------------------------------ */

/* QEMU died and its supervisor waits on a timer to restart it: ACTIVE/BOOT
 * with no QEMU. The supervisor takes the VM lock before it restarts, so
 * while a command holds the lock, ending it is safe. */
static bool restart_pending(const lc_vm *vm)
{
	return vm->state == LC_ACTIVE && vm->lcm == LC_LCM_BOOT && lc_vm_supervised(vm) &&
	       !util_proc_alive(vm->qemu_pid, vm->qemu_starttime);
}

/* Cancel a pending restart (with the VM lock held): end the waiting
 * supervisor and record target, POWEROFF or DONE (whose files go). */
static int cancel_restart(const char *root, const lc_db *db, const lc_vm *vm, lc_state target,
                          util_err *err)
{
	lc_paths p;
	int r;

	lc_kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
	lc_paths_init(&p, root, vm->id);
	lc_remove_rundir(&p);
	lc_paths_clear(&p);
	lc_nics_remove_taps(vm);
	if (target == LC_DONE) {
		r = lc_remove_vm_files(db, vm, false, err);
		if (r < 0)
			return r;
	}
	return lc_record(root, vm->id, target, LC_LCM_NONE,
	                 target == LC_DONE ? "shut down; its pending restart was cancelled"
	                                   : "powered off; its pending restart was cancelled",
	                 NULL,
	                 json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
	                           "supervisor_pid", 0, "supervisor_starttime", 0),
	                 err);
}

/* A shutdown's or reboot's request did not reach QEMU: the VM goes back
 * to lcm, where it was, unless its supervisor recorded meanwhile that
 * QEMU went (the likely reason the request failed). Looked at and
 * recorded in one transaction: between a look and a record of their
 * own, the supervisor could record QEMU's end, and the VM would be
 * ACTIVE with nothing running it. */
static void request_failed(const char *root, uint64_t id, lc_lcm lcm, const char *reason,
                           const char *why)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	util_err ignored = { 0 };
	lc_vm *vm;

	if (lc_db_open(root, LC_DB_WRITE, &db, &ignored) == 0 && (vm = lc_db_vm_by_id(db, id)) &&
	    vm->state == LC_ACTIVE && vm->lcm == LC_LCM_SHUTDOWN)
		lc_db_record_state(db, vm, LC_ACTIVE, lcm, reason, why, &ignored);
}

/* Wait for the supervisor to finish (QEMU gone, final state recorded). */
static int wait_supervisor(const lc_vm *vm, int timeout_ms)
{
	return lc_wait_pid_exit(vm->supervisor_pid, vm->supervisor_starttime, timeout_ms);
}

int lc_vm_shutdown(const char *root, const char *name, bool to_done, const lc_run_opts *opts,
                   util_err *err)
{
	static const lc_run_opts none = { 0 };
	const lc_run_opts *o = opts ? opts : &none;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *qmp = NULL;
	_cleanup_free_ char *now = NULL;
	int timeout_s = o->timeout_s > 0 ? o->timeout_s : LC_SHUTDOWN_TIMEOUT_S;
	pid_t sup_pid;
	uint64_t sup_start;
	lc_vm *vm;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = lc_load_vm(root, h.id, &db, &vm, err);
	if (r == 0)
		r = lc_state_check(to_done ? LC_OP_SHUTDOWN : LC_OP_POWEROFF, h.name, vm->state,
		                   vm->lcm, err);
	if (r < 0)
		goto out;
	if (restart_pending(vm)) {
		r = cancel_restart(root, db, vm, to_done ? LC_DONE : LC_POWEROFF, err);
		goto out;
	}
	sup_pid = vm->supervisor_pid;
	sup_start = vm->supervisor_starttime;
	r = lc_command_qmp(root, h.id, h.name, &qmp, err);
	if (r < 0)
		goto out;
	r = lc_record(root, h.id, LC_ACTIVE, LC_LCM_SHUTDOWN,
	              o->hard ? "hard stop requested" : "ACPI shutdown requested", NULL,
	              json_pack("{s:s, s:I, s:b, s:s}", "target", to_done ? "DONE" : "POWEROFF",
	                        "timeout_ms", (json_int_t)timeout_s * 1000, "hard_after",
	                        o->hard_after, "prev", lc_lcm_name(vm->lcm)),
	              err);
	if (r < 0)
		goto out;
	util_crash_point(to_done ? "shutdown-after-intent" : "poweroff-after-intent");
	if (vm->lcm == LC_LCM_PAUSED && !o->hard)
		qmp_execute(qmp, "cont", NULL, 0, NULL, NULL); /* a paused guest cannot hear ACPI */
	r = qmp_execute(qmp, o->hard ? "quit" : "system_powerdown", NULL, 0, NULL, err);
	if (r == -EPIPE && o->hard)
		r = 0; /* quit: QEMU may close before it answers */
	if (r < 0) {
		request_failed(root, h.id, vm->lcm, "the shutdown request failed", err->msg);
		goto out;
	}
	qmp_close(TAKE_PTR(qmp));
	util_crash_point(to_done ? "shutdown-after-send" : "poweroff-after-send");
	lc_record_sent(root, h.id, NULL);
	if (o->no_wait)
		goto out;
	/* the supervisor exits once the final state is recorded; a guest that
	 * ignores ACPI makes it record RUNNING after the timeout instead */
	lc_db_close(TAKE_PTR(db));
	wait_supervisor(&(lc_vm){ .supervisor_pid = sup_pid, .supervisor_starttime = sup_start },
	                o->hard ? 15000 : timeout_s * 1000 + 1500);
	/* a supervisor that died on the way: finish the stop now (a new
	 * supervisor quits a QEMU that is left, then records the end) */
	{
		util_err ignored = { 0 };

		if (lc_reconcile_locked(root, h.id, NULL, &ignored) > 0 &&
		    lc_load_vm(root, h.id, &db, &vm, &ignored) == 0 && vm->state == LC_ACTIVE)
			wait_supervisor(vm, 15000);
		lc_db_close(TAKE_PTR(db));
	}
	r = lc_load_vm(root, h.id, &db, &vm, err);
	if (r < 0)
		goto out;
	now = lc_state_text(vm);
	/* the supervisor's reason, unless it only says the same again */
	if (vm->state == LC_ACTIVE) {
		bool same = !vm->reason || strstr(vm->reason, "ignored the ACPI shutdown");

		r = util_err_set(
		        err, -ETIMEDOUT,
		        "cannot %s '%s': the guest did not shut down within %d s, so it is %s again%s%s%s; use --hard or --hard-after",
		        to_done ? "shutdown" : "poweroff", h.name, timeout_s, now, same ? "" : " (",
		        same ? "" : vm->reason, same ? "" : ")");
	}
out:
	/* a failed request (QEMU's error, no answer) says which vm */
	if (r < 0 && !util_startswith(err->msg, "cannot "))
		util_err_prefix(err, "cannot %s '%s'", to_done ? "shutdown" : "poweroff", h.name);
	lc_held_clear(&h);
	return r;
}

/* QEMU went away while the guest rebooted (it died, or its supervisor
 * gave the reboot up and powered it off): say what the vm is once its
 * supervisor has recorded that. vm is as it was before the reboot. */
static void reboot_lost(const char *root, const lc_vm *vm, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *now = NULL;
	util_err ignored = { 0 };
	char cause[sizeof(err->msg)];
	lc_vm *vm_now;

	snprintf(cause, sizeof(cause), "%s", err->msg);
	lc_wait_pid_exit(vm->qemu_pid, vm->qemu_starttime, 3000);
	lc_wait_pid_exit(vm->supervisor_pid, vm->supervisor_starttime, 1000);
	if (lc_load_vm(root, vm->id, &db, &vm_now, &ignored) < 0)
		return;
	now = lc_state_text(vm_now);
	util_err_set(err, err->code, "%s; it is %s now", cause, now);
}

int lc_vm_reboot(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	static const lc_run_opts none = { 0 };
	const lc_run_opts *o = opts ? opts : &none;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *qmp = NULL;
	_cleanup_json_ json_t *ev = NULL;
	int timeout_s = o->timeout_s > 0 ? o->timeout_s : LC_SHUTDOWN_TIMEOUT_S;
	lc_vm *vm;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = lc_load_vm(root, h.id, &db, &vm, err);
	if (r == 0)
		r = lc_state_check(LC_OP_REBOOT, h.name, vm->state, vm->lcm, err);
	if (r == 0)
		r = lc_command_qmp(root, h.id, h.name, &qmp, err);
	if (r < 0)
		goto out;
	if (o->hard) {
		/* the supervisor records the reset from QEMU's RESET event */
		r = qmp_execute(qmp, "system_reset", NULL, 0, NULL, err);
		goto out;
	}
	r = lc_record(root, h.id, LC_ACTIVE, LC_LCM_SHUTDOWN, "ACPI reboot requested", NULL,
	              json_pack("{s:s, s:I, s:s}", "target", "REBOOT", "timeout_ms",
	                        (json_int_t)timeout_s * 1000, "prev", lc_lcm_name(vm->lcm)),
	              err);
	if (r < 0)
		goto out;
	util_crash_point("reboot-after-intent");
	r = qmp_execute(qmp, "system_powerdown", NULL, 0, NULL, err);
	if (r < 0) {
		/* left in SHUTDOWN, nothing would ever end the reboot */
		request_failed(root, h.id, vm->lcm, "the reboot request failed", err->msg);
		goto out;
	}
	lc_record_sent(root, h.id, NULL);
	if (o->no_wait)
		goto out;
	/* the guest shuts down, the supervisor resets and continues it */
	r = qmp_wait_event(qmp, "RESUME", timeout_s * 1000 + 5000, &ev, err);
	if (r == -ETIMEDOUT)
		r = util_err_set(
		        err, -ETIMEDOUT,
		        "cannot reboot '%s': the guest did not reboot within %d s (it ignored the ACPI request); use --hard",
		        h.name, timeout_s);
	else if (r < 0)
		reboot_lost(root, vm, err);
out:
	if (r < 0 && !util_startswith(err->msg, "cannot "))
		util_err_prefix(err, "cannot reboot '%s'", h.name);
	lc_held_clear(&h);
	return r;
}

int lc_vm_pause(const char *root, const char *name, bool pause, const lc_run_opts *opts,
                util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *qmp = NULL;
	lc_vm *vm;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = lc_load_vm(root, h.id, &db, &vm, err);
	if (r == 0)
		r = lc_state_check(pause ? LC_OP_PAUSE : LC_OP_UNPAUSE, h.name, vm->state, vm->lcm,
		                   err);
	if (r == 0)
		r = lc_command_qmp(root, h.id, h.name, &qmp, err);
	if (r == 0)
		r = qmp_execute(qmp, pause ? "stop" : "cont", NULL, 0, NULL, err);
	if (r == 0)
		r = lc_record(root, h.id, LC_ACTIVE, pause ? LC_LCM_PAUSED : LC_LCM_RUNNING,
		              pause ? "paused" : "unpaused", NULL, NULL, err);
	if (r < 0 && !util_startswith(err->msg, "cannot "))
		util_err_prefix(err, "cannot %s '%s'", pause ? "pause" : "unpause", h.name);
	lc_held_clear(&h);
	return r;
}

/* ---- delete, recover ------------------------------------------------------------------------- */

/* Stop whatever runs the VM, hard, and wait until the supervisor recorded
 * the end. With the VM lock held. */
static int stop_hard(const char *root, lc_held *h, lc_state target, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *qmp = NULL;
	lc_vm *vm;
	pid_t qpid;
	uint64_t qstart;
	int r = lc_load_vm(root, h->id, &db, &vm, err);

	if (r < 0 || (vm->state != LC_ACTIVE && vm->state != LC_UNKNOWN))
		return r;
	if (restart_pending(vm))
		return cancel_restart(root, db, vm, target, err);
	r = lc_record(root, h->id, LC_ACTIVE, LC_LCM_SHUTDOWN, "hard stop requested", NULL,
	              json_pack("{s:s, s:I, s:s}", "target", lc_state_name(target), "timeout_ms",
	                        (json_int_t)1000, "prev", lc_lcm_name(vm->lcm)),
	              err);
	if (r < 0)
		return r;
	if (lc_command_qmp(root, h->id, h->name, &qmp, NULL) == 0 &&
	    qmp_execute(qmp, "quit", NULL, 0, NULL, NULL) != -EREMOTEIO)
		lc_record_sent(root, h->id, NULL);
	qmp_close(TAKE_PTR(qmp));
	if (wait_supervisor(vm, 15000) < 0 || vm->state == LC_UNKNOWN) {
		/* unreachable or stuck: kill both and settle it ourselves */
		lc_kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
		lc_find_qemu(vm, &qpid, &qstart);
		lc_kill_and_wait(qpid, qstart);
	}
	lc_db_close(TAKE_PTR(db));
	return lc_reconcile_locked(root, h->id, NULL, err) < 0 ? err->code : 0;
}

int lc_vm_remove(const char *root, const char *name, bool wipe, bool recreate,
                 const lc_run_opts *opts, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	/* the states delete accepts, from the table, before anything is done */
	r = lc_load_vm(root, h.id, &db, &vm, err);
	if (r == 0)
		r = lc_state_check(LC_OP_REMOVE, h.name, vm->state, vm->lcm, err);
	lc_db_close(TAKE_PTR(db));
	if (r == 0)
		r = stop_hard(root, &h, LC_POWEROFF, err);
	if (r == 0)
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r == 0 && !(vm = lc_db_vm_by_id(db, h.id)))
		r = util_err_set(err, -ENOENT, "vm '%s' vanished", h.name);
	/* the lock we hold is the one delete takes: hand it over (released
	 * in between, a queued command could take it and make us "busy") */
	if (r == 0) {
		int lock = TAKE_FD(h.lock);

		r = recreate ? lc_vm_recreate(db, vm, lock, err)
		             : lc_vm_delete(db, vm, lock, wipe, err);
	}
	lc_held_clear(&h);
	return r;
}

/* recover of a VM whose live supervisor drives it: -EALREADY, and why */
static int refuse_driven(const lc_vm *vm, const char *name, const char *why, util_err *err)
{
	_cleanup_free_ char *now = lc_state_text(vm);

	return util_err_set(
	        err, -EALREADY,
	        "cannot recover '%s': it is %s and its supervisor (pid %d) drives it; %s", name,
	        now, (int)vm->supervisor_pid, why);
}

int lc_vm_recover(const char *root, const char *name, lc_recover_how how, const lc_run_opts *opts,
                  util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	pid_t qpid;
	uint64_t qstart;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = lc_load_vm(root, h.id, &db, &vm, err);
	if (r < 0)
		goto out;
	if (vm->state != LC_ACTIVE && vm->state != LC_UNKNOWN && vm->state != LC_FAILED) {
		r = util_err_set(
		        err, -EPERM,
		        "cannot recover '%s': it is %s; recover needs ACTIVE, UNKNOWN or FAILED",
		        h.name, lc_state_name(vm->state));
		goto out;
	}
	switch (how) {
	case LC_RECOVER_RETRY:
		lc_db_close(TAKE_PTR(db));
		r = lc_reconcile_locked(root, h.id, NULL, err);
		r = r < 0 ? r : 0;
		break;
	case LC_RECOVER_SUCCESS:
		if (vm->state == LC_ACTIVE && lc_vm_supervised(vm)) {
			r = refuse_driven(vm, h.name, "there is nothing to recover", err);
			break;
		}
		lc_find_qemu(vm, &qpid, &qstart);
		lc_db_close(TAKE_PTR(db));
		if (qpid > 0) {
			r = lc_spawn_supervisor(root, h.id, -1, true, false, LC_SPAWN_TIMEOUT_MS,
			                        err);
		} else {
			r = lc_record(root, h.id, LC_POWEROFF, LC_LCM_NONE,
			              "recovered: no qemu runs it", NULL,
			              json_pack("{s:i, s:i}", "qemu_pid", 0, "supervisor_pid", 0),
			              err);
		}
		break;
	case LC_RECOVER_FAILURE:
	case LC_RECOVER_DELETE:
		/* recover is for a VM nothing drives: killing a healthy one
		 * takes the user saying so */
		if (vm->state == LC_ACTIVE && lc_vm_supervised(vm) && !opts->force) {
			r = refuse_driven(
			        vm, h.name,
			        "recover is for a vm nothing drives (use poweroff --hard or "
			        "delete, or add --force to kill it anyway)",
			        err);
			break;
		}
		lc_kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
		lc_find_qemu(vm, &qpid, &qstart);
		lc_kill_and_wait(qpid, qstart);
		lc_db_close(TAKE_PTR(db));
		{
			lc_paths p;

			lc_paths_init(&p, root, h.id);
			lc_remove_rundir(&p);
			lc_paths_clear(&p);
		}
		r = lc_record(root, h.id, LC_FAILED, LC_LCM_NONE, "recovered as failed", NULL,
		              json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
		                        "supervisor_pid", 0, "supervisor_starttime", 0),
		              err);
		if (r == 0 && how == LC_RECOVER_DELETE) {
			r = lc_db_open(root, LC_DB_WRITE, &db, err);
			if (r == 0)
				r = lc_vm_delete(db, lc_db_vm_by_id(db, h.id), TAKE_FD(h.lock),
				                 false, err);
		}
		break;
	}
out:
	/* what failed on the way (an adoption, a record) says which command */
	if (r < 0 && !util_startswith(err->msg, "cannot recover"))
		util_err_prefix(err, "cannot recover '%s'", h.name);
	lc_held_clear(&h);
	return r;
}
