/* Commands that drive running VMs — start, shutdown, poweroff, reboot,
 * pause, resume, undeploy, delete of a running VM, recover, boot. Each command holds the VM
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
#include "vm_command.h"
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
static int prolog(lc_cmd *c, const char *prev, util_err *err)
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

	if (c->vm->def.ci_user_data && c->vm->def.n_nics) {
		_cleanup_json_ json_t *nics = lc_vm_nics_json(c->db, c->vm);

		generated_network_config = lc_nics_network_config(nics);
	}
	seed = lc_seed_wanted(&c->vm->def, generated_network_config);
	n_missing = lc_prolog_missing(&c->vm->def, missing);
	if (!seed && !n_missing)
		return lc_seed_build(c->root, c->h.id, &c->vm->def, NULL, err);
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
	r = lc_cmd_record(c, LC_ACTIVE, LC_LCM_PROLOG, reason, NULL,
	                  json_pack("{s:s, s:i, s:i, s:i, s:i}", "prev", prev, "qemu_pid", 0,
	                            "qemu_starttime", 0, "supervisor_pid", 0,
	                            "supervisor_starttime", 0),
	                  err);
	if (r < 0)
		return r;
	r = lc_prolog_disks_make(c->root, c->h.id, &c->vm->def, &made, err);
	if (r == 0) {
		util_crash_point("start-prolog-before-seed");
		r = lc_seed_build(c->root, c->h.id, &c->vm->def, generated_network_config, err);
	}
	if (r == 0) {
		util_crash_point("start-prolog-after-seed");
		r = lc_prolog_disks_end(c->root, c->h.id, &c->vm->def, &made, true, err);
	}
	if (r < 0) {
		util_err ignored = { 0 };

		lc_prolog_disks_end(c->root, c->h.id, &c->vm->def, &made, false, &ignored);
		if (lc_state_parse(prev, &back, NULL) < 0)
			back = LC_FAILED;
		lc_cmd_record(
		        c, back, LC_LCM_NONE,
		        n_missing ? "start failed in PROLOG: its disks or seed could not be made"
		                  : "start failed: no cloud-init seed",
		        err->msg, NULL, &ignored);
		return util_err_prefix(err, "cannot start '%s'", c->h.name);
	}
	return 0;
}

/* A start whose supervisor failed: one that died without recording is
 * settled now, once it is gone for good (its pipe closes a little before
 * it exits). If its QEMU was adopted and runs, the start did happen. */
static int start_failed(lc_cmd *c, util_err *err)
{
	util_err ignored = { 0 };

	if (lc_cmd_reload(c, &ignored) == 0)
		lc_wait_pid_exit(c->vm->supervisor_pid, c->vm->supervisor_starttime, 5000);
	lc_cmd_let_go(c);
	if (lc_reconcile_locked(c->root, c->h.id, NULL, &ignored) > 0 &&
	    lc_cmd_reload(c, &ignored) == 0 && c->vm->state == LC_ACTIVE &&
	    c->vm->lcm == LC_LCM_RUNNING && lc_vm_supervised(c->vm)) {
		util_err_clear(err);
		return 0;
	}
	return util_err_prefix(err, "cannot start '%s'", c->h.name);
}

/* The start of a held VM whose state was checked: PROLOG, the BOOT
 * record, the supervisor. */
static int start_checked(lc_cmd *c, util_err *err)
{
	_cleanup_free_ char *prev = NULL;
	json_t *extra;
	/* what create checked may have been swapped since: checked again
	 * before anything is recorded or made, so a refusal leaves the vm
	 * as it was (see SECURITY in qvm(8) for the window that remains) */
	int r = lc_check_vm_files(c->root, c->h.id, &c->vm->def, c->o->disk_roots, err);

	if (r < 0) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		return util_err_set(
		        err, r,
		        "cannot start '%s' (it stays %s): %s (files are checked again "
		        "at each start: restore the file or change the vm's definition)",
		        c->h.name, lc_state_name(c->vm->state), why);
	}
	prev = lc_state_text(c->vm);
	if (c->vm->state == LC_ACTIVE || c->vm->state == LC_UNKNOWN) {
		free(prev);
		prev = util_xstrdup("FAILED");
	}
	r = prolog(c, prev, err);
	if (r < 0)
		return r;
	/* no uptime until it runs (not the last boot's) */
	extra = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "prev", prev, "qemu_pid", 0,
	                  "qemu_starttime", 0, "supervisor_pid", 0, "supervisor_starttime", 0,
	                  "started", 0);
	r = lc_cmd_record(c, LC_ACTIVE, LC_LCM_BOOT, "start", NULL, extra, err);
	if (r < 0)
		return r;
	util_crash_point("start-after-intent");
	lc_cmd_let_go(c);
	/* The supervisor inherits the VM lock and lets go once QEMU runs, so
	 * no reconciliation can mistake a start in flight for a dead one. */
	r = lc_spawn_supervisor(c->root, c->h.id, c->h.lock, false, c->o->no_wait,
	                        LC_SPAWN_TIMEOUT_MS, err);
	return r < 0 ? start_failed(c, err) : 0;
}

static int start_act(lc_cmd *c, void *arg, util_err *err)
{
	pid_t stray;
	uint64_t stray_start;

	(void)arg;
	if (c->vm->state == LC_SUSPENDED || c->vm->state == LC_STOPPED)
		return lc_resume_checked(c, "start", err);
	/* never twice: a QEMU of this VM that the journal lost track of */
	lc_find_qemu(c->vm, &stray, &stray_start);
	if (stray > 0)
		return util_err_set(
		        err, -EEXIST,
		        "cannot start '%s': a qemu of it still runs (pid %d); use 'qvm boot' to replace it or 'qvm recover --success' to adopt it",
		        c->h.name, (int)stray);
	return start_checked(c, err);
}

static const lc_cmd_kind start_kind = { "start", LC_OP_START, false, start_act };

int lc_vm_start(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	return lc_cmd_run(&start_kind, root, name, opts, NULL, err);
}

static int boot_act(lc_cmd *c, void *arg, util_err *err)
{
	pid_t qpid;
	uint64_t qstart;

	(void)arg;
	/* never twice: whatever runs this VM goes first */
	lc_kill_and_wait(c->vm->supervisor_pid, c->vm->supervisor_starttime);
	lc_find_qemu(c->vm, &qpid, &qstart);
	lc_kill_and_wait(qpid, qstart);
	return start_checked(c, err);
}

static const lc_cmd_kind boot_kind = { "boot", LC_OP_BOOT, false, boot_act };

int lc_vm_boot(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	static const lc_run_opts blocking = { 0 };
	lc_run_opts o = opts ? *opts : blocking;

	o.no_wait = false; /* boot always waits for the guest */
	return lc_cmd_run(&boot_kind, root, name, &o, NULL, err);
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
static int cancel_restart(lc_cmd *c, lc_state target, util_err *err)
{
	lc_paths p;
	int r;

	lc_kill_and_wait(c->vm->supervisor_pid, c->vm->supervisor_starttime);
	lc_paths_init(&p, c->root, c->h.id);
	lc_remove_rundir(&p);
	lc_paths_clear(&p);
	lc_nics_remove_taps(c->vm);
	if (target == LC_DONE) {
		r = lc_remove_vm_files(c->db, c->vm, false, err);
		if (r < 0)
			return r;
	}
	return lc_cmd_record(c, target, LC_LCM_NONE,
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
static void request_failed(lc_cmd *c, lc_lcm lcm, const char *reason, const char *why)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	util_err ignored = { 0 };
	lc_vm *vm;

	lc_cmd_let_go(c);
	if (lc_db_open(c->root, LC_DB_WRITE, &db, &ignored) == 0 &&
	    (vm = lc_db_vm_by_id(db, c->h.id)) && vm->state == LC_ACTIVE &&
	    vm->lcm == LC_LCM_SHUTDOWN)
		lc_db_record_state(db, vm, LC_ACTIVE, lcm, reason, why, &ignored);
}

/* QEMU went away while the guest rebooted (it died, or its supervisor
 * gave the reboot up and powered it off): say what the vm is once its
 * supervisor has recorded that. before is the vm as it was before the
 * reboot. */
static void reboot_lost(lc_cmd *c, const lc_vm *before, util_err *err)
{
	_cleanup_free_ char *now = NULL;
	util_err ignored = { 0 };
	char cause[sizeof(err->msg)];

	snprintf(cause, sizeof(cause), "%s", err->msg);
	lc_wait_pid_exit(before->qemu_pid, before->qemu_starttime, 3000);
	lc_wait_pid_exit(before->supervisor_pid, before->supervisor_starttime, 1000);
	if (lc_cmd_reload(c, &ignored) < 0)
		return;
	now = lc_state_text(c->vm);
	util_err_set(err, err->code, "%s; it is %s now", cause, now);
}

/* After a shutdown's request reached QEMU: wait for the supervisor to
 * record the end (it exits then; a guest that ignores ACPI makes it record
 * RUNNING after the timeout instead), and say what the wait ended in. */
static int shutdown_wait(lc_cmd *c, const char *verb, int timeout_s, pid_t sup_pid,
                         uint64_t sup_start, util_err *err)
{
	_cleanup_free_ char *now = NULL;
	util_err ignored = { 0 };
	bool same;
	int r;

	lc_cmd_let_go(c);
	lc_wait_pid_exit(sup_pid, sup_start, c->o->hard ? 15000 : timeout_s * 1000 + 1500);
	/* a supervisor that died on the way: finish the stop now (a new
	 * supervisor quits a QEMU that is left, then records the end) */
	if (lc_reconcile_locked(c->root, c->h.id, NULL, &ignored) > 0 &&
	    lc_cmd_reload(c, &ignored) == 0 && c->vm->state == LC_ACTIVE)
		lc_wait_pid_exit(c->vm->supervisor_pid, c->vm->supervisor_starttime, 15000);
	r = lc_cmd_reload(c, err);
	if (r < 0 || c->vm->state != LC_ACTIVE)
		return r;
	now = lc_state_text(c->vm);
	/* the supervisor's reason, unless it only says the same again */
	same = !c->vm->reason || strstr(c->vm->reason, "ignored the ACPI shutdown");

	return util_err_set(
	        err, -ETIMEDOUT,
	        "cannot %s '%s': the guest did not shut down within %d s, so it is %s again%s%s%s; use --hard or --hard-after",
	        verb, c->h.name, timeout_s, now, same ? "" : " (", same ? "" : c->vm->reason,
	        same ? "" : ")");
}

static int shutdown_to(lc_cmd *c, lc_state target, util_err *err);

static int shutdown_act(lc_cmd *c, void *arg, util_err *err)
{
	bool to_done = *(const bool *)arg;

	if (c->vm->state == LC_SUSPENDED || c->vm->state == LC_STOPPED)
		return lc_checkpoint_discard(c, LC_POWEROFF, err);
	return shutdown_to(c, to_done ? LC_DONE : LC_POWEROFF, err);
}

static int shutdown_to(lc_cmd *c, lc_state target, util_err *err)
{
	bool to_done = target == LC_DONE;
	const char *verb = to_done ? "shutdown" : target == LC_POWEROFF ? "poweroff" : "undeploy";
	const lc_run_opts *o = c->o;
	int timeout_s = o->timeout_s > 0 ? o->timeout_s : LC_SHUTDOWN_TIMEOUT_S;
	pid_t sup_pid = c->vm->supervisor_pid;
	uint64_t sup_start = c->vm->supervisor_starttime;
	lc_lcm was = c->vm->lcm;
	int r;

	if (restart_pending(c->vm))
		return cancel_restart(c, target, err);
	r = lc_cmd_qmp(c, err);
	if (r == 0)
		r = lc_cmd_record(c, LC_ACTIVE, LC_LCM_SHUTDOWN,
		                  o->hard ? "hard stop requested" : "ACPI shutdown requested", NULL,
		                  json_pack("{s:s, s:I, s:b, s:s}", "target", lc_state_name(target),
		                            "timeout_ms", (json_int_t)timeout_s * 1000,
		                            "hard_after", o->hard_after, "prev", lc_lcm_name(was)),
		                  err);
	if (r < 0)
		return r;
	util_crash_point(to_done                 ? "shutdown-after-intent"
	                 : target == LC_POWEROFF ? "poweroff-after-intent"
	                                         : "undeploy-after-intent");
	if (was == LC_LCM_PAUSED && !o->hard)
		qmp_execute(c->qmp, "cont", NULL, 0, NULL,
		            NULL); /* a paused guest cannot hear ACPI */
	r = qmp_execute(c->qmp, o->hard ? "quit" : "system_powerdown", NULL, 0, NULL, err);
	if (r == -EPIPE && o->hard)
		r = 0; /* quit: QEMU may close before it answers */
	if (r < 0) {
		request_failed(c, was, "the shutdown request failed", err->msg);
		return r;
	}
	lc_cmd_qmp_close(c);
	util_crash_point(to_done ? "shutdown-after-send" : "poweroff-after-send");
	lc_record_sent(c->root, c->h.id, NULL);
	if (o->no_wait)
		return 0;
	return shutdown_wait(c, verb, timeout_s, sup_pid, sup_start, err);
}

static const lc_cmd_kind shutdown_kind = { "shutdown", LC_OP_SHUTDOWN, false, shutdown_act };
static const lc_cmd_kind poweroff_kind = { "poweroff", LC_OP_POWEROFF, false, shutdown_act };

int lc_vm_shutdown(const char *root, const char *name, bool to_done, const lc_run_opts *opts,
                   util_err *err)
{
	return lc_cmd_run(to_done ? &shutdown_kind : &poweroff_kind, root, name, opts, &to_done,
	                  err);
}

static int reboot_act(lc_cmd *c, void *arg, util_err *err)
{
	_cleanup_json_ json_t *ev = NULL;
	int timeout_s = c->o->timeout_s > 0 ? c->o->timeout_s : LC_SHUTDOWN_TIMEOUT_S;
	const lc_vm before = { .qemu_pid = c->vm->qemu_pid,
		               .qemu_starttime = c->vm->qemu_starttime,
		               .supervisor_pid = c->vm->supervisor_pid,
		               .supervisor_starttime = c->vm->supervisor_starttime };
	lc_lcm was = c->vm->lcm;
	int r;

	(void)arg;
	if (c->o->hard) /* the supervisor records the reset from QEMU's RESET event */
		return qmp_execute(c->qmp, "system_reset", NULL, 0, NULL, err);
	r = lc_cmd_record(c, LC_ACTIVE, LC_LCM_SHUTDOWN, "ACPI reboot requested", NULL,
	                  json_pack("{s:s, s:I, s:s}", "target", "REBOOT", "timeout_ms",
	                            (json_int_t)timeout_s * 1000, "prev", lc_lcm_name(was)),
	                  err);
	if (r < 0)
		return r;
	util_crash_point("reboot-after-intent");
	r = qmp_execute(c->qmp, "system_powerdown", NULL, 0, NULL, err);
	if (r < 0) {
		/* left in SHUTDOWN, nothing would ever end the reboot */
		request_failed(c, was, "the reboot request failed", err->msg);
		return r;
	}
	lc_record_sent(c->root, c->h.id, NULL);
	if (c->o->no_wait)
		return 0;
	/* the guest shuts down, the supervisor resets and continues it */
	lc_cmd_let_go(c);
	r = qmp_wait_event(c->qmp, "RESUME", timeout_s * 1000 + 5000, &ev, err);
	if (r == -ETIMEDOUT)
		r = util_err_set(
		        err, -ETIMEDOUT,
		        "cannot reboot '%s': the guest did not reboot within %d s (it ignored the ACPI request); use --hard",
		        c->h.name, timeout_s);
	else if (r < 0)
		reboot_lost(c, &before, err);
	return r;
}

static const lc_cmd_kind reboot_kind = { "reboot", LC_OP_REBOOT, true, reboot_act };

int lc_vm_reboot(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	return lc_cmd_run(&reboot_kind, root, name, opts, NULL, err);
}

static int pause_act(lc_cmd *c, void *arg, util_err *err)
{
	bool pause = *(const bool *)arg;
	int r = qmp_execute(c->qmp, pause ? "stop" : "cont", NULL, 0, NULL, err);

	if (r == 0)
		r = lc_cmd_record(c, LC_ACTIVE, pause ? LC_LCM_PAUSED : LC_LCM_RUNNING,
		                  pause ? "paused" : "unpaused", NULL, NULL, err);
	return r;
}

static const lc_cmd_kind pause_kind = { "pause", LC_OP_PAUSE, true, pause_act };
static const lc_cmd_kind unpause_kind = { "unpause", LC_OP_UNPAUSE, true, pause_act };

int lc_vm_pause(const char *root, const char *name, bool pause, const lc_run_opts *opts,
                util_err *err)
{
	return lc_cmd_run(pause ? &pause_kind : &unpause_kind, root, name, opts, &pause, err);
}

/* ---- resume, undeploy (their checkpoints: vm_save.c) ------------------------------------- */

static int resume_act(lc_cmd *c, void *arg, util_err *err)
{
	int r;

	(void)arg;
	if (c->vm->state == LC_SUSPENDED || c->vm->state == LC_STOPPED)
		return lc_resume_checked(c, "resume", err);
	if (c->vm->state != LC_ACTIVE) /* POWEROFF, UNDEPLOYED: it boots */
		return start_act(c, NULL, err);
	r = lc_cmd_qmp(c, err);
	if (r == 0)
		r = qmp_execute(c->qmp, "cont", NULL, 0, NULL, err);
	if (r == 0)
		r = lc_cmd_record(c, LC_ACTIVE, LC_LCM_RUNNING, "unpaused", NULL, NULL, err);
	return r;
}

static const lc_cmd_kind resume_kind = { "resume", LC_OP_RESUME, false, resume_act };

int lc_vm_resume(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	static const lc_run_opts blocking = { 0 };
	lc_run_opts o = opts ? *opts : blocking;

	o.no_wait = false; /* the checkpoint goes only once the guest runs */
	return lc_cmd_run(&resume_kind, root, name, &o, NULL, err);
}

static int undeploy_act(lc_cmd *c, void *arg, util_err *err)
{
	(void)arg;
	if (c->vm->state == LC_POWEROFF)
		return lc_cmd_record(c, LC_UNDEPLOYED, LC_LCM_NONE,
		                     "undeployed: its host resources are released", NULL, NULL,
		                     err);
	return shutdown_to(c, LC_UNDEPLOYED, err);
}

static const lc_cmd_kind undeploy_kind = { "undeploy", LC_OP_UNDEPLOY, false, undeploy_act };

int lc_vm_undeploy(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	return lc_cmd_run(&undeploy_kind, root, name, opts, NULL, err);
}

/* ---- delete, recover ------------------------------------------------------------------------- */

/* Stop whatever runs the VM, hard, and wait until the supervisor recorded
 * the end. With the VM lock held. */
static int stop_hard(lc_cmd *c, lc_state target, util_err *err)
{
	pid_t sup_pid = c->vm->supervisor_pid, qpid;
	uint64_t sup_start = c->vm->supervisor_starttime, qstart;
	bool unknown = c->vm->state == LC_UNKNOWN;
	int r;

	if (c->vm->state != LC_ACTIVE && !unknown)
		return 0;
	if (restart_pending(c->vm))
		return cancel_restart(c, target, err);
	r = lc_cmd_record(c, LC_ACTIVE, LC_LCM_SHUTDOWN, "hard stop requested", NULL,
	                  json_pack("{s:s, s:I, s:s}", "target", lc_state_name(target),
	                            "timeout_ms", (json_int_t)1000, "prev",
	                            lc_lcm_name(c->vm->lcm)),
	                  err);
	if (r < 0)
		return r;
	if (lc_cmd_qmp(c, NULL) == 0 &&
	    qmp_execute(c->qmp, "quit", NULL, 0, NULL, NULL) != -EREMOTEIO)
		lc_record_sent(c->root, c->h.id, NULL);
	lc_cmd_qmp_close(c);
	if (lc_wait_pid_exit(sup_pid, sup_start, 15000) < 0 || unknown) {
		/* unreachable or stuck: kill both and settle it ourselves */
		lc_kill_and_wait(sup_pid, sup_start);
		lc_find_qemu(c->vm, &qpid, &qstart);
		lc_kill_and_wait(qpid, qstart);
	}
	lc_cmd_let_go(c);
	return lc_reconcile_locked(c->root, c->h.id, NULL, err) < 0 ? err->code : 0;
}
/* How delete goes: wipe the owned disks, or keep the VM and recreate it. */
typedef struct remove_how {
	bool wipe, recreate;
} remove_how;

static int remove_act(lc_cmd *c, void *arg, util_err *err)
{
	const remove_how *how = arg;
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = NULL;
	int r = stop_hard(c, LC_POWEROFF, err);

	lc_cmd_let_go(c);
	if (r == 0)
		r = lc_db_open(c->root, LC_DB_WRITE, &db, err);
	if (r == 0 && !(vm = lc_db_vm_by_id(db, c->h.id)))
		r = util_err_set(err, -ENOENT, "vm '%s' vanished", c->h.name);
	/* the lock we hold is the one delete takes: hand it over (released
	 * in between, a queued command could take it and make us "busy") */
	if (r == 0) {
		int lock = TAKE_FD(c->h.lock);

		r = how->recreate ? lc_vm_recreate(db, vm, lock, err)
		                  : lc_vm_delete(db, vm, lock, how->wipe, err);
	}
	return r;
}

/* the states delete accepts, from the table, before anything is done */
static const lc_cmd_kind remove_kind = { "delete", LC_OP_REMOVE, false, remove_act };

int lc_vm_remove(const char *root, const char *name, bool wipe, bool recreate,
                 const lc_run_opts *opts, util_err *err)
{
	remove_how how = { wipe, recreate };

	return lc_cmd_run(&remove_kind, root, name, opts, &how, err);
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

/* recover --success: adopt the QEMU that runs, or say none does */
static int recover_success(lc_cmd *c, util_err *err)
{
	pid_t qpid;
	uint64_t qstart;

	if (c->vm->state == LC_ACTIVE && lc_vm_supervised(c->vm))
		return refuse_driven(c->vm, c->h.name, "there is nothing to recover", err);
	lc_find_qemu(c->vm, &qpid, &qstart);
	lc_cmd_let_go(c);
	if (qpid > 0)
		return lc_spawn_supervisor(c->root, c->h.id, -1, true, false, LC_SPAWN_TIMEOUT_MS,
		                           err);
	return lc_cmd_record(c, LC_POWEROFF, LC_LCM_NONE, "recovered: no qemu runs it", NULL,
	                     json_pack("{s:i, s:i}", "qemu_pid", 0, "supervisor_pid", 0), err);
}

/* recover --failure, --delete: kill what is left, FAILED (then deleted) */
static int recover_failure(lc_cmd *c, bool delete, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	pid_t qpid;
	uint64_t qstart;
	lc_paths p;
	int r;

	/* recover is for a VM nothing drives: killing a healthy one takes
	 * the user saying so */
	if (c->vm->state == LC_ACTIVE && lc_vm_supervised(c->vm) && !c->o->force)
		return refuse_driven(c->vm, c->h.name,
		                     "recover is for a vm nothing drives (use poweroff --hard or "
		                     "delete, or add --force to kill it anyway)",
		                     err);
	lc_kill_and_wait(c->vm->supervisor_pid, c->vm->supervisor_starttime);
	lc_find_qemu(c->vm, &qpid, &qstart);
	lc_kill_and_wait(qpid, qstart);
	lc_paths_init(&p, c->root, c->h.id);
	lc_remove_rundir(&p);
	lc_paths_clear(&p);
	r = lc_cmd_record(c, LC_FAILED, LC_LCM_NONE, "recovered as failed", NULL,
	                  json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
	                            "supervisor_pid", 0, "supervisor_starttime", 0),
	                  err);
	if (r < 0 || !delete)
		return r;
	lc_cmd_let_go(c);
	r = lc_db_open(c->root, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_vm_delete(db, lc_db_vm_by_id(db, c->h.id), TAKE_FD(c->h.lock), false, err);
	return r;
}

static int recover_act(lc_cmd *c, void *arg, util_err *err)
{
	lc_recover_how how = *(const lc_recover_how *)arg;
	int r;

	switch (how) {
	case LC_RECOVER_RETRY:
		lc_cmd_let_go(c);
		r = lc_reconcile_locked(c->root, c->h.id, NULL, err);
		return r < 0 ? r : 0;
	case LC_RECOVER_SUCCESS:
		return recover_success(c, err);
	case LC_RECOVER_FAILURE:
	case LC_RECOVER_DELETE:
		break;
	}
	return recover_failure(c, how == LC_RECOVER_DELETE, err);
}

static const lc_cmd_kind recover_kind = { "recover", LC_OP_RECOVER, false, recover_act };

int lc_vm_recover(const char *root, const char *name, lc_recover_how how, const lc_run_opts *opts,
                  util_err *err)
{
	return lc_cmd_run(&recover_kind, root, name, opts, &how, err);
}
