/* Checkpoints of a VM on this host: suspend and stop (QEMU writes memory
 * and device state to a file in the VM's folder through an fd qvm opened,
 * then quits), resume from one (a QEMU started with -incoming defer reads
 * it back; the resume and undeploy commands are vm_run.c's), its discard,
 * and the settling of what a crash left of them. The checkpoint
 * is precious: its size and SHA-256 are recorded when it is written, and a
 * file that does not match them is refused before QEMU reads a byte. */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>

#include "network.h"
#include "run.h"
#include "vm_command.h"

#define CKPT_FILE          "checkpoint"
#define CKPT_PART          "checkpoint.part"
#define CKPT_FDNAME        "qvm-checkpoint"
#define MIGRATE_POLL_MS    50
#define MIGRATE_TIMEOUT_MS (30 * 60 * 1000)
#define QUIT_WAIT_MS       30000

static char *ckpt_path(const char *root, uint64_t id, const char *file)
{
	lc_paths p;
	char *path;

	lc_paths_init(&p, root, id);
	path = util_xasprintf("%s/%s", p.vmdir, file);
	lc_paths_clear(&p);
	return path;
}

static void vmdir_sync(const char *root, uint64_t id)
{
	lc_paths p;

	lc_paths_init(&p, root, id);
	util_fsync_dir(p.vmdir, NULL);
	lc_paths_clear(&p);
}

/* qmp_execute with arguments it consumes */
static int qmp_do(qmp_client *q, const char *cmd, json_t *args, json_t **ret, util_err *err)
{
	_cleanup_json_ json_t *a = args;

	return qmp_execute(q, cmd, a, 0, ret, err);
}

/* getfd of fd (borrowed) as CKPT_FDNAME */
static int qmp_getfd(qmp_client *q, int fd, util_err *err)
{
	_cleanup_json_ json_t *a = json_pack("{s:s}", "fdname", CKPT_FDNAME);

	return qmp_execute_with_fd(q, "getfd", a, fd, 0, NULL, err);
}

/* ---- records ------------------------------------------------------------------------------ */

/* The seq of VM id's open intent of op, 0 when none. */
static uint64_t open_intent(lc_db *db, uint64_t id, const char *op)
{
	const char *key;
	json_t *in;

	json_object_foreach (lc_db_intents(db), key, in)
		if ((uint64_t)json_integer_value(json_object_get(in, "id")) == id &&
		    util_streq(json_string_value(json_object_get(in, "op")), op))
			return strtoull(key, NULL, 10);
	return 0;
}

/* One step of a suspend or resume, with one sync: open the intent op_open
 * (may be NULL), record the VM's state (state LC_STATE_COUNT: none), close
 * the intent op_close (may be NULL) with result. extra (stolen, may be
 * NULL) adds fields to the state record. */
static int save_step(const char *root, uint64_t id, const char *op_open, const char *op_close,
                     const char *result, lc_state state, lc_lcm lcm, const char *reason,
                     const char *error, json_t *extra, util_err *err)
{
	_cleanup_json_ json_t *more = extra;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	uint64_t seq = 0;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	if (!lc_db_vm_by_id(db, id))
		return util_err_set(err, -ENOENT, "no vm with id %" PRIu64, id);
	if (op_close)
		seq = open_intent(db, id, op_close);
	lc_db_group_begin(db);
	if (op_open)
		r = lc_db_intent(db, op_open, id, NULL, NULL, err);
	if (r == 0 && state != LC_STATE_COUNT) {
		json_t *rec =
		        json_pack("{s:s, s:I, s:s, s:s}", "type", "state", "id", (json_int_t)id,
		                  "state", lc_state_name(state), "lcm", lc_lcm_name(lcm));

		json_object_set_new(rec, "reason", reason ? json_string(reason) : json_null());
		if (error)
			json_object_set_new(rec, "error", json_string(error));
		if (more)
			json_object_update(rec, more);
		r = lc_db_append_state(db, id, state, rec, err);
	}
	if (r == 0 && seq)
		r = lc_db_done(db, seq, result, err);
	return r < 0 ? r : lc_db_group_commit(db, err);
}

static int cmd_step(lc_cmd *c, const char *op_open, const char *op_close, const char *result,
                    lc_state state, lc_lcm lcm, const char *reason, const char *error,
                    json_t *extra, util_err *err)
{
	int r;

	lc_cmd_let_go(c);
	r = save_step(c->root, c->h.id, op_open, op_close, result, state, lcm, reason, error, extra,
	              err);
	if (r == 0)
		r = lc_cmd_reload(c, err);
	return r;
}

/* ---- the checkpoint file ----------------------------------------------------------------- */

/* Size and SHA-256 of what fd holds from its start. */
static int hash_checkpoint(int fd, uint64_t *ret_size, char hex[65], util_err *err)
{
	int r = util_sha256_fd(fd, ret_size, hex);

	return r < 0 ? util_err_errno(err, r, "cannot read the checkpoint") : 0;
}

/* Make the written part durable, measure it and put it in place:
 * *ret is what the journal records of it (new reference). */
static int seal_checkpoint(const char *root, uint64_t id, json_t **ret, util_err *err)
{
	_cleanup_free_ char *part = ckpt_path(root, id, CKPT_PART);
	_cleanup_free_ char *file = ckpt_path(root, id, CKPT_FILE);
	_cleanup_close_ int fd = open(part, O_RDONLY | O_CLOEXEC);
	char hex[65];
	uint64_t size;
	int r;

	if (fd < 0 || fsync(fd) < 0)
		return util_err_errno(err, -errno, "cannot make the checkpoint %s durable", part);
	r = hash_checkpoint(fd, &size, hex, err);
	if (r < 0)
		return r;
	if (size == 0)
		return util_err_set(err, -EIO, "qemu wrote an empty checkpoint");
	if (rename(part, file) < 0)
		return util_err_errno(err, -errno, "cannot rename the checkpoint to %s", file);
	vmdir_sync(root, id);
	*ret = json_pack("{s:s, s:I, s:s, s:I}", "file", CKPT_FILE, "size", (json_int_t)size,
	                 "sha256", hex, "time_ms", (json_int_t)util_realtime_ms());
	return 0;
}

int lc_checkpoint_open(const char *root, const lc_vm *vm, int *ret_fd, util_err *err)
{
	_cleanup_free_ char *file = ckpt_path(root, vm->id, CKPT_FILE);
	_cleanup_close_ int fd = -1;
	const char *want = json_string_value(json_object_get(vm->checkpoint, "sha256"));
	uint64_t want_size = (uint64_t)json_integer_value(json_object_get(vm->checkpoint, "size"));
	struct stat st;
	uint64_t size;
	char hex[65];
	int r;

	if (!vm->checkpoint || !want)
		return util_err_set(err, -ENOENT, "'%s' has no checkpoint recorded", vm->def.name);
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return util_err_errno(err, -errno, "its checkpoint %s cannot be opened", file);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return util_err_set(err, -EBADMSG, "its checkpoint %s is not a regular file", file);
	if ((uint64_t)st.st_size != want_size)
		return util_err_set(
		        err, -EBADMSG,
		        "its checkpoint %s is %" PRIu64 " bytes, but %" PRIu64
		        " were recorded when it was written (truncated or replaced); it is kept",
		        file, (uint64_t)st.st_size, want_size);
	r = hash_checkpoint(fd, &size, hex, err);
	if (r < 0)
		return r;
	if (size != want_size || strcmp(hex, want))
		return util_err_set(
		        err, -EBADMSG,
		        "its checkpoint %s does not match the SHA-256 recorded when it was written (corrupt or replaced); it is kept",
		        file);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return util_err_errno(err, -errno, "cannot read the checkpoint");
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* ---- migration ------------------------------------------------------------------------------ */

/* Wait for the migration (out or in) to end: 0 when "completed". */
static int migrate_wait(qmp_client *q, const char *what, util_err *err)
{
	int64_t deadline = util_now_ms() + MIGRATE_TIMEOUT_MS;

	for (;;) {
		_cleanup_json_ json_t *info = NULL;
		const char *status;
		int r = qmp_do(q, "query-migrate", NULL, &info, err);

		if (r < 0)
			return r;
		status = json_string_value(json_object_get(info, "status"));
		if (util_streq(status, "completed"))
			return 0;
		if (util_streq(status, "failed") || util_streq(status, "cancelled")) {
			const char *desc = json_string_value(json_object_get(info, "error-desc"));

			return util_err_set(err, -EIO, "qemu's %s failed%s%s", what,
			                    desc ? ": " : "", desc ? desc : "");
		}
		if (util_now_ms() > deadline)
			return util_err_set(err, -ETIMEDOUT, "qemu's %s did not end within %d s",
			                    what, MIGRATE_TIMEOUT_MS / 1000);
		poll(NULL, 0, MIGRATE_POLL_MS);
	}
}

int lc_checkpoint_load(qmp_client *q, int fd, util_err *err)
{
	int r = qmp_getfd(q, fd, err);

	util_crash_point("resume-after-getfd");
	if (r == 0)
		r = qmp_do(q, "migrate-incoming", json_pack("{s:s}", "uri", "fd:" CKPT_FDNAME),
		           NULL, err);
	util_crash_point("resume-after-incoming");
	if (r == 0)
		r = migrate_wait(q, "load of the checkpoint", err);
	return r < 0 ? util_err_prefix(err, "cannot load the checkpoint") : 0;
}

/* Have the VM's QEMU write its checkpoint to CKPT_PART, the guest paused
 * first (a single pass, and nothing changes after the moment saved). */
static int write_checkpoint(lc_cmd *c, bool running, json_t **ret, util_err *err)
{
	_cleanup_free_ char *part = ckpt_path(c->root, c->h.id, CKPT_PART);
	_cleanup_close_ int fd = -1;
	int r;

	unlink(part);
	fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return util_err_errno(err, -errno, "cannot create the checkpoint %s", part);
	r = running ? qmp_do(c->qmp, "stop", NULL, NULL, err) : 0;
	util_crash_point("suspend-after-stop");
	/* a file takes what it is given: no 32 MiB/s throttle */
	if (r == 0)
		r = qmp_do(c->qmp, "migrate-set-parameters",
		           json_pack("{s:I}", "max-bandwidth", (json_int_t)1 << 40), NULL, err);
	if (r == 0)
		r = qmp_getfd(c->qmp, fd, err);
	close(TAKE_FD(fd));
	util_crash_point("suspend-after-getfd");
	if (r == 0)
		r = qmp_do(c->qmp, "migrate", json_pack("{s:s}", "uri", "fd:" CKPT_FDNAME), NULL,
		           err);
	util_crash_point("suspend-after-migrate-start");
	if (r == 0)
		r = migrate_wait(c->qmp, "save", err);
	util_crash_point("suspend-after-migrate");
	if (r == 0)
		r = seal_checkpoint(c->root, c->h.id, ret, err);
	return r;
}

/* ---- suspend, stop ----------------------------------------------------------------------- */

/* A suspend that did not get as far as recording its checkpoint goes
 * back: the migration cancelled, the guest continued (if it ran), the
 * files removed, the VM where it was (unless QEMU went meanwhile and its
 * supervisor recorded that). q may be NULL (then it is connected). */
static int save_rollback(const char *root, uint64_t id, const char *name, qmp_client *q,
                         const char *why, util_err *err)
{
	_cleanup_qmp_ qmp_client *own = NULL;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *part = ckpt_path(root, id, CKPT_PART);
	_cleanup_free_ char *file = ckpt_path(root, id, CKPT_FILE);
	_cleanup_json_ json_t *info = NULL;
	lc_lcm back = LC_LCM_RUNNING;
	lc_vm *vm;
	int r = lc_load_vm(root, id, &db, &vm, err);

	if (r < 0)
		return r;
	if (vm->state != LC_ACTIVE || vm->lcm != LC_LCM_SAVE || vm->checkpoint)
		return save_step(root, id, NULL, "suspend",
		                 vm->state == LC_SUSPENDED || vm->state == LC_STOPPED ? "ok"
		                                                                      : "failed",
		                 LC_STATE_COUNT, 0, NULL, NULL, NULL, err);
	if (vm->prev_state)
		lc_lcm_parse(vm->prev_state, &back, NULL);
	lc_db_close(TAKE_PTR(db));
	if (!q && lc_command_qmp(root, id, name, &own, NULL) == 0)
		q = own;
	if (q) {
		if (qmp_do(q, "query-migrate", NULL, &info, NULL) == 0 &&
		    !util_streq(json_string_value(json_object_get(info, "status")), "completed"))
			qmp_do(q, "migrate_cancel", NULL, NULL, NULL);
		qmp_do(q, "closefd", json_pack("{s:s}", "fdname", CKPT_FDNAME), NULL, NULL);
		if (back == LC_LCM_RUNNING)
			qmp_do(q, "cont", NULL, NULL, NULL);
	}
	unlink(part);
	unlink(file);
	return save_step(root, id, NULL, "suspend", "rolled-back", LC_ACTIVE, back,
	                 "the suspend was rolled back; the guest goes on", why, NULL, err);
}

/* The checkpoint is recorded: QEMU quits, and its supervisor records the
 * target (lc_save_final). Waits for that. */
static int save_finish(const char *root, uint64_t id, const char *name, qmp_client *q,
                       util_err *err)
{
	_cleanup_qmp_ qmp_client *own = NULL;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	pid_t sup;
	uint64_t sup_start;
	int r = lc_load_vm(root, id, &db, &vm, err);

	if (r < 0)
		return r;
	sup = vm->supervisor_pid;
	sup_start = vm->supervisor_starttime;
	lc_db_close(TAKE_PTR(db));
	if (!q && lc_command_qmp(root, id, name, &own, NULL) == 0)
		q = own;
	if (q)
		qmp_do(q, "quit", NULL, NULL, NULL); /* it may close before it answers */
	util_crash_point("suspend-after-quit");
	qmp_close(TAKE_PTR(own));
	lc_wait_pid_exit(sup, sup_start, QUIT_WAIT_MS);
	/* a supervisor that died on the way: reconciliation finishes it */
	r = lc_reconcile_locked(root, id, NULL, err);
	if (r < 0)
		return r;
	r = lc_load_vm(root, id, &db, &vm, err);
	if (r < 0)
		return r;
	if (vm->state == LC_ACTIVE)
		return util_err_set(err, -EIO,
		                    "its qemu did not quit after writing the checkpoint");
	lc_db_close(TAKE_PTR(db));
	return save_step(root, id, NULL, "suspend", "ok", LC_STATE_COUNT, 0, NULL, NULL, NULL, err);
}

static int suspend_act(lc_cmd *c, void *arg, util_err *err)
{
	lc_state to = *(const lc_state *)arg;
	lc_lcm was = c->vm->lcm;
	json_t *ckpt = NULL, *intent;
	char reason[128];
	int r;

	/* before anything is recorded: a checkpoint that could not load
	 * is refused, not written */
	r = lc_check_hotplug_placed(c->qmp, &c->vm->def, err);
	if (r < 0)
		return r;
	intent = json_pack("{s:s, s:s}", "target", lc_state_name(to), "prev", lc_lcm_name(was));
	r = cmd_step(c, "suspend", NULL, NULL, LC_ACTIVE, LC_LCM_SAVE,
	             to == LC_STOPPED ? "stop requested: writing a checkpoint"
	                              : "suspend requested: writing a checkpoint",
	             NULL, json_deep_copy(intent), err);
	util_crash_point("suspend-after-intent");
	if (r == 0)
		r = write_checkpoint(c, was == LC_LCM_RUNNING, &ckpt, err);
	util_crash_point("suspend-after-write");
	if (r < 0) {
		util_err ignored = { 0 };

		json_decref(intent);
		lc_cmd_let_go(c);
		save_rollback(c->root, c->h.id, c->h.name, c->qmp, err->msg, &ignored);
		return r;
	}
	snprintf(reason, sizeof(reason), "checkpoint written (%" PRIu64 " bytes)",
	         (uint64_t)json_integer_value(json_object_get(ckpt, "size")));
	json_object_set_new(intent, "checkpoint", ckpt);
	r = cmd_step(c, NULL, NULL, NULL, LC_ACTIVE, LC_LCM_SAVE, reason, NULL, intent, err);
	if (r < 0)
		return r;
	util_crash_point("suspend-after-record");
	lc_cmd_let_go(c);
	return save_finish(c->root, c->h.id, c->h.name, c->qmp, err);
}

static const lc_cmd_kind suspend_kind = { "suspend", LC_OP_SUSPEND, true, suspend_act };
static const lc_cmd_kind stop_kind = { "stop", LC_OP_STOP, true, suspend_act };

int lc_vm_suspend(const char *root, const char *name, bool to_stopped, const lc_run_opts *opts,
                  util_err *err)
{
	lc_state to = to_stopped ? LC_STOPPED : LC_SUSPENDED;

	return lc_cmd_run(to_stopped ? &stop_kind : &suspend_kind, root, name, opts, &to, err);
}

bool lc_save_final(const char *root, uint64_t id, lc_state *ret_state)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	lc_state to;

	if (lc_load_vm(root, id, &db, &vm, NULL) < 0 || vm->state != LC_ACTIVE ||
	    vm->lcm != LC_LCM_SAVE || !vm->checkpoint || lc_state_parse(vm->target, &to, NULL) < 0)
		return false;
	*ret_state = to;
	return true;
}

/* ---- resume ------------------------------------------------------------------------------------
 */

static int settle_checkpoints(const char *root, uint64_t id, util_err *err);

bool lc_resume_wanted(const lc_vm *vm, lc_state *ret_back)
{
	lc_state back;

	if (vm->state != LC_ACTIVE || vm->lcm != LC_LCM_BOOT || !vm->checkpoint ||
	    lc_state_parse(vm->prev_state, &back, NULL) < 0 ||
	    (back != LC_SUSPENDED && back != LC_STOPPED))
		return false;
	*ret_back = back;
	return true;
}

/* The guest runs: its checkpoint goes, and the journal says so. */
static int drop_checkpoint(const char *root, uint64_t id, lc_state state, lc_lcm lcm,
                           const char *reason, const char *op_close, util_err *err)
{
	_cleanup_free_ char *file = ckpt_path(root, id, CKPT_FILE);

	if (unlink(file) < 0 && errno != ENOENT)
		return util_err_errno(err, -errno, "cannot remove the checkpoint %s", file);
	vmdir_sync(root, id);
	util_crash_point("resume-after-unlink");
	return save_step(root, id, NULL, op_close, "ok", state, lcm, reason, NULL,
	                 json_pack("{s:n}", "checkpoint"), err);
}

int lc_resume_checked(lc_cmd *c, const char *verb, util_err *err)
{
	_cleanup_free_ char *prev = lc_state_text(c->vm);
	int fd = -1;
	int r = lc_checkpoint_open(c->root, c->vm, &fd, err);

	/* refused before anything changes: the VM stays as it is, the file kept */
	if (r < 0)
		return util_err_prefix(err, "cannot %s '%s'", verb, c->h.name);
	close(fd);
	r = cmd_step(c, "resume", NULL, NULL, LC_ACTIVE, LC_LCM_BOOT, "resume from its checkpoint",
	             NULL,
	             json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "prev", prev, "qemu_pid", 0,
	                       "qemu_starttime", 0, "supervisor_pid", 0, "supervisor_starttime", 0,
	                       "started", 0),
	             err);
	if (r < 0)
		return r;
	util_crash_point("resume-after-intent");
	lc_cmd_let_go(c);
	r = lc_spawn_supervisor(c->root, c->h.id, c->h.lock, false, false, LC_SPAWN_TIMEOUT_MS,
	                        err);
	if (r < 0) {
		util_err ignored = { 0 };

		/* its supervisor recorded where it went back to; what one that
		 * died left is settled as after a crash */
		if (lc_cmd_reload(c, &ignored) == 0)
			lc_wait_pid_exit(c->vm->supervisor_pid, c->vm->supervisor_starttime, 5000);
		lc_cmd_let_go(c);
		settle_checkpoints(c->root, c->h.id, &ignored);
		return util_err_prefix(err, "cannot %s '%s'", verb, c->h.name);
	}
	util_crash_point("resume-after-running");
	r = lc_cmd_reload(c, err);
	if (r == 0)
		r = drop_checkpoint(c->root, c->h.id, LC_ACTIVE, c->vm->lcm,
		                    "resumed; its checkpoint was removed", "resume", err);
	return r;
}

/* ---- discard --------------------------------------------------------------------------
 */

int lc_checkpoint_discard(lc_cmd *c, lc_state to, util_err *err)
{
	if (!c->o->discard_checkpoint)
		return util_err_set(
		        err, -EPERM,
		        "cannot %s '%s': it is %s with a checkpoint of its memory; add --discard-checkpoint to drop it (or use 'qvm resume')",
		        to == LC_POWEROFF ? "poweroff" : "undeploy", c->h.name,
		        lc_state_name(c->vm->state));
	lc_cmd_let_go(c);
	return drop_checkpoint(c->root, c->h.id, to, LC_LCM_NONE,
	                       "its checkpoint was discarded (--discard-checkpoint)", NULL, err);
}

bool lc_vm_holds_host(const lc_vm *vm)
{
	return vm->state == LC_ACTIVE || vm->state == LC_SUSPENDED || vm->state == LC_POWEROFF;
}

/* ---- settling what a crash left ------------------------------------------------------------- */

/* A resume cut short before its guest ran: whatever runs it goes, and the
 * VM is back where it was with its checkpoint. */
static int resume_rollback(const char *root, uint64_t id, lc_vm *vm, lc_state back, util_err *err)
{
	lc_paths p;
	pid_t qpid;
	uint64_t qstart;

	lc_kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
	lc_find_qemu(vm, &qpid, &qstart);
	lc_kill_and_wait(qpid, qstart);
	lc_paths_init(&p, root, id);
	lc_remove_rundir(&p);
	lc_paths_clear(&p);
	lc_nics_remove_taps(vm);
	return save_step(root, id, NULL, "resume", "rolled-back", back, LC_LCM_NONE,
	                 "the resume was interrupted before the guest ran; rolled back", NULL,
	                 json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
	                           "supervisor_pid", 0, "supervisor_starttime", 0),
	                 err);
}

/* Does a QEMU of the VM run its guest (the resume's cont happened)? */
static bool guest_runs(const char *root, const lc_vm *vm)
{
	_cleanup_qmp_ qmp_client *q = NULL;
	_cleanup_json_ json_t *st = NULL;
	pid_t qpid;
	uint64_t qstart;

	lc_find_qemu(vm, &qpid, &qstart);
	return qpid > 0 && lc_command_qmp(root, vm->id, vm->def.name, &q, NULL) == 0 &&
	       qmp_do(q, "query-status", NULL, &st, NULL) == 0 &&
	       json_is_true(json_object_get(st, "running"));
}

static int settle_resume(const char *root, uint64_t id, lc_db **dbp, lc_vm *vm, util_err *err)
{
	lc_state back, state;
	lc_lcm lcm = vm->lcm;
	int r;

	if (lc_resume_wanted(vm, &back) && !guest_runs(root, vm))
		return resume_rollback(root, id, vm, back, err);
	if (vm->state == LC_ACTIVE && lcm == LC_LCM_BOOT) {
		/* it runs from its checkpoint: adopted as running, which
		 * reconciliation does once its supervisor is gone */
		lc_kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
		lc_db_close(TAKE_PTR(*dbp));
		r = lc_reconcile_locked(root, id, NULL, err);
		if (r < 0)
			return r;
		r = lc_load_vm(root, id, dbp, &vm, err);
		if (r < 0)
			return r;
		lcm = vm->lcm;
	}
	state = vm->state;
	lc_db_close(TAKE_PTR(*dbp));
	if (state == LC_ACTIVE && (lcm == LC_LCM_RUNNING || lcm == LC_LCM_PAUSED))
		return drop_checkpoint(root, id, LC_ACTIVE, lcm,
		                       "resumed; its checkpoint was removed (after its qvm died)",
		                       "resume", err);
	return save_step(root, id, NULL, "resume", "rolled-back", LC_STATE_COUNT, 0, NULL, NULL,
	                 NULL, err);
}

/* With the VM lock held, an open suspend or resume intent is one whose
 * qvm died: finish it (the checkpoint is recorded, or the guest runs) or
 * roll it back. */
static int settle_checkpoints(const char *root, uint64_t id, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *name = NULL;
	lc_vm *vm;
	int r = lc_load_vm(root, id, &db, &vm, err);
	bool suspend, resume;

	if (r < 0)
		return r;
	suspend = open_intent(db, id, "suspend") != 0;
	resume = open_intent(db, id, "resume") != 0;
	if (!suspend && !resume)
		return 0;
	name = util_xstrdup(vm->def.name);
	if (resume)
		r = settle_resume(root, id, &db, vm, err);
	else if (vm->state == LC_ACTIVE && vm->lcm == LC_LCM_SAVE && vm->checkpoint) {
		lc_db_close(TAKE_PTR(db));
		r = save_finish(root, id, name, NULL, err);
	} else {
		lc_db_close(TAKE_PTR(db));
		r = save_rollback(root, id, name, NULL, "its qvm died during the suspend", err);
	}
	return r < 0 ? r : 1;
}

__attribute__((constructor)) static void register_checkpoint_settling(void)
{
	lc_on_settle(LC_SETTLE_ON_HOLD | LC_SETTLE_ON_READ, 30, settle_checkpoints);
}
