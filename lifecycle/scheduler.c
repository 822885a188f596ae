/* The host's scheduler: one pass runs the scheduled actions that are due,
 * applies restart policies to VMs whose supervisor and QEMU are both gone
 * (nothing else would: the supervisor applies them while it lives),
 * autostarts once per host boot and, where the host enables it, deploys
 * PENDING VMs while memory lasts. qvm has no daemon: a systemd timer,
 * cron or `qvm scheduler`'s own loop runs the passes, and the pass lock
 * keeps two of them from doing anything twice. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "restart.h"
#include "run.h"
#include "sched.h"

#define BOOT_ID_FILE "/proc/sys/kernel/random/boot_id"
/* An action that runs later than this after its time is marked late
 * (missed while the host was down, or with no pass for that long):
 * QVM_SCHEDULE_LATE_MS for tests. */
#define LATE_MS         300000
#define DEFAULT_RESERVE (256ull << 20)

static int64_t env_ms(const char *name, int64_t dflt)
{
	const char *v = getenv(name);
	uint64_t n;

	return v && util_parse_uint(v, 0, INT32_MAX, &n, NULL) == 0 ? (int64_t)n : dflt;
}

int lc_pass_lock(const char *root, int timeout_ms, int *ret_fd, util_err *err)
{
	_cleanup_free_ char *dir = util_xasprintf("%s/run", root);
	_cleanup_free_ char *path = util_xasprintf("%s/scheduler.lock", dir);
	int r = util_mkdir_p(dir, 0700, err);

	if (r == 0)
		r = util_lock_path(path, true, timeout_ms, ret_fd, err);
	if (r == -EBUSY)
		return util_err_set(err, -EBUSY,
		                    "another scheduler pass, host boot or host shutdown is running "
		                    "under '%s'; try again",
		                    root);
	return r;
}

int lc_boot_id(char **ret, util_err *err)
{
	const char *file = getenv("QVM_BOOT_ID_FILE");
	_cleanup_free_ char *data = NULL;
	int r;

	if (!file || !*file)
		file = BOOT_ID_FILE;
	r = util_read_file(file, 256, &data, NULL, err);
	if (r < 0)
		return util_err_prefix(err, "cannot read the host's boot id");
	data[strcspn(data, "\n")] = '\0';
	if (!*data || util_validate_printable(data, "the boot id", NULL) < 0)
		return util_err_set(err, -EINVAL, "the boot id in '%s' is empty or not text", file);
	*ret = TAKE_PTR(data);
	return 0;
}

int lc_host_record(const char *root, json_t *set, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0) {
		json_decref(set);
		return r;
	}
	return lc_db_append(db, json_pack("{s:s, s:o}", "type", "host", "set", set), NULL, err);
}

int lc_sched_note(const char *root, uint64_t id, const char *name, const char *what, int result,
                  const char *error, json_t *report, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *reason = util_xasprintf("%s: %s", what, result < 0 ? "failed" : "ok");
	json_t *rec =
	        json_pack("{s:s, s:I, s:s, s:s, s:s}", "type", "sched-act", "id", (json_int_t)id,
	                  "what", what, "result", result < 0 ? "failed" : "ok", "reason", reason);
	int r;

	if (error)
		json_object_set_new(rec, "error", json_string(error));
	if (report)
		json_array_append_new(json_object_get(report, "actions"),
		                      json_pack("{s:s, s:I, s:s, s:O, s:b, s:s, s:s?}", "vm", name,
		                                "vm_id", (json_int_t)id, "what", what, "entry",
		                                json_null(), "late", 0, "result",
		                                result < 0 ? "failed" : "ok", "error", error));
	r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r < 0) {
		json_decref(rec);
		return r;
	}
	return lc_db_append(db, rec, NULL, err);
}

static lc_run_opts run_opts_of(const lc_pass_opts *o)
{
	return (lc_run_opts){ .lock_timeout_ms = o->lock_timeout_ms, .disk_roots = o->disk_roots };
}

int lc_sched_start(const char *root, const lc_vm *vm, const char *what, const lc_pass_opts *o,
                   json_t *report, util_err *err)
{
	char id[24];
	lc_run_opts ro = run_opts_of(o);
	util_err e = { 0 };
	int r;

	snprintf(id, sizeof(id), "%" PRIu64, vm->id);
	if (vm->state == LC_SUSPENDED || vm->state == LC_STOPPED)
		r = lc_vm_resume(root, id, &ro, &e);
	else
		r = lc_vm_start(root, id, &ro, &e);
	return lc_sched_note(root, vm->id, vm->def.name, what, r, r < 0 ? e.msg : NULL, report,
	                     err);
}

/* ---- scheduled actions ------------------------------------------------------------------ */

static bool opt_on(json_t *e, const char *key)
{
	return json_is_true(json_object_get(json_object_get(e, "opts"), key));
}

/* A tag given to a repeated action gets the run's number: each run makes
 * a snapshot of its own. */
static char *run_tag(json_t *e, size_t i)
{
	const char *tag = json_string_value(json_array_get(json_object_get(e, "args"), i));

	if (!tag)
		return NULL;
	if (!json_integer_value(json_object_get(e, "every_ms")))
		return util_xstrdup(tag);
	return util_xasprintf("%s-%" PRId64, tag,
	                      (int64_t)json_integer_value(json_object_get(e, "runs")) + 1);
}

static int run_action(const char *root, uint64_t vm_id, json_t *e, const lc_pass_opts *o,
                      util_err *err)
{
	const char *a = json_string_value(json_object_get(e, "action"));
	lc_run_opts ro = run_opts_of(o);
	_cleanup_free_ char *tag = NULL;
	char id[24];
	uint64_t disk;

	snprintf(id, sizeof(id), "%" PRIu64, vm_id);
	ro.hard = opt_on(e, "hard");
	ro.hard_after = opt_on(e, "hard_after");
	ro.timeout_s =
	        (int)json_integer_value(json_object_get(json_object_get(e, "opts"), "timeout"));
	if (util_streq(a, "start"))
		return lc_vm_start(root, id, &ro, err);
	if (util_streq(a, "shutdown") || util_streq(a, "poweroff"))
		return lc_vm_shutdown(root, id, util_streq(a, "shutdown"), &ro, err);
	if (util_streq(a, "reboot"))
		return lc_vm_reboot(root, id, &ro, err);
	if (util_streq(a, "pause") || util_streq(a, "unpause"))
		return lc_vm_pause(root, id, util_streq(a, "pause"), &ro, err);
	if (util_streq(a, "suspend") || util_streq(a, "stop"))
		return lc_vm_suspend(root, id, util_streq(a, "stop"), &ro, err);
	if (util_streq(a, "resume"))
		return lc_vm_resume(root, id, &ro, err);
	if (util_streq(a, "undeploy"))
		return lc_vm_undeploy(root, id, &ro, err);
	if (util_streq(a, "delete"))
		return lc_vm_remove(root, id, opt_on(e, "wipe"), false, &ro, err);
	if (util_streq(a, "snapshot-create")) {
		tag = run_tag(e, 0);
		return lc_vm_snapshot_create(root, id, tag, opt_on(e, "no_memory"), &ro, NULL, err);
	}
	if (util_streq(a, "disk-snapshot-create")) {
		lc_disk_opts d = { .run = ro, .disk_roots = o->disk_roots };
		const char *ds = json_string_value(json_array_get(json_object_get(e, "args"), 0));
		int r = util_parse_uint(ds ? ds : "", 0, LC_DISKS_MAX * 64, &disk, err);

		tag = run_tag(e, 1);
		if (r < 0)
			return r;
		return lc_vm_disk_snapshot(root, id, (unsigned)disk, LC_DSNAP_CREATE, tag, &d, NULL,
		                           err);
	}
	return util_err_set(err, -EINVAL, "unknown scheduled action '%s'", a ? a : "");
}

/* The run after one due at due, at now: a repeated action skips the
 * times it missed (a missed action runs once); 0 when none is left. */
static int64_t next_run(json_t *e, int64_t due, int64_t now, json_int_t runs)
{
	int64_t every = json_integer_value(json_object_get(e, "every_ms"));
	int64_t until = json_integer_value(json_object_get(e, "until_ms"));
	json_int_t count = json_integer_value(json_object_get(e, "count"));
	int64_t next;

	if (every <= 0 || (count && runs >= count))
		return 0;
	next = due + every;
	if (next <= now)
		next += ((now - next) / every + 1) * every;
	return until && next > until ? 0 : next;
}

typedef struct due {
	uint64_t vm;
	json_int_t entry;
	int64_t at;
} due;

static int due_cmp(const void *a, const void *b)
{
	const due *x = a, *y = b;

	return x->at < y->at ? -1 : x->at > y->at ? 1 : x->vm < y->vm ? -1 : x->vm > y->vm;
}

/* The due entries of every live VM, soonest first (new array). */
static int collect_due(const char *root, int64_t now, due **ret, size_t *ret_n, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	due *list = NULL;
	size_t n = 0;
	int r = lc_db_open(root, 0, &db, err);

	for (size_t i = 0; r == 0 && i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);
		json_t *e;
		size_t k;

		if (vm->state == LC_DONE)
			continue;
		json_array_foreach (json_object_get(vm->sched, "entries"), k, e) {
			int64_t at = json_integer_value(json_object_get(e, "next_ms"));

			if (!at || at > now)
				continue;
			list = util_xrealloc(list, (n + 1) * sizeof(*list));
			list[n++] =
			        (due){ vm->id, json_integer_value(json_object_get(e, "id")), at };
		}
	}
	if (r < 0)
		return r;
	if (n > 1)
		qsort(list, n, sizeof(*list), due_cmp);
	*ret = list;
	*ret_n = n;
	return 0;
}

/* Append a "sched-run" record of entry e of VM vm_id: the run due at
 * (due_ms, late or not) with its result ("started" when it is claimed, before the
 * action; "ok", "failed" or "interrupted" after it), the entry's runs and
 * next run. */
static int record_run(const char *root, uint64_t vm_id, json_t *e, int64_t due_ms, bool late,
                      const char *result, const char *error, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *reason = NULL;
	const char *action = json_string_value(json_object_get(e, "action"));
	json_int_t entry = json_integer_value(json_object_get(e, "id"));
	json_t *rec;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	reason = util_xasprintf("scheduled %s (action %" PRId64 "%s): %s", action, (int64_t)entry,
	                        late ? ", late" : "", result);
	rec = json_pack("{s:s, s:I, s:I, s:s, s:I, s:b, s:s, s:O, s:O, s:s}", "type", "sched-run",
	                "id", (json_int_t)vm_id, "entry", entry, "action", action, "due_ms",
	                (json_int_t)due_ms, "late", late, "result", result, "next_ms",
	                json_object_get(e, "next_ms"), "runs", json_object_get(e, "runs"), "reason",
	                reason);
	if (error)
		json_object_set_new(rec, "error", json_string(error));
	return lc_db_append(db, rec, NULL, err);
}

/* Entry d of its VM as it is now (new reference), or NULL when it is
 * gone or was run or changed meanwhile; *ret_name is the VM's name. */
static int load_entry(const char *root, const due *d, json_t **ret_e, char **ret_name,
                      util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm;
	json_t *x;
	size_t i;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	*ret_e = NULL;
	vm = lc_db_vm_by_id(db, d->vm);
	if (!vm || vm->state == LC_DONE)
		return 0;
	json_array_foreach (json_object_get(vm->sched, "entries"), i, x)
		if (json_integer_value(json_object_get(x, "id")) == d->entry &&
		    json_integer_value(json_object_get(x, "next_ms")) == d->at)
			*ret_e = json_deep_copy(x);
	*ret_name = util_xstrdup(vm->def.name);
	return 0;
}

/* Run one due entry: claimed first (its next run recorded), so that a
 * pass that dies in the action never runs it twice; then its outcome. */
static int run_due(const char *root, const due *d, const lc_pass_opts *o, json_t *report,
                   util_err *err)
{
	_cleanup_json_ json_t *e = NULL;
	_cleanup_free_ char *name = NULL;
	util_err ae = { 0 };
	int64_t now = util_realtime_ms();
	bool late = now - d->at > env_ms("QVM_SCHEDULE_LATE_MS", LATE_MS);
	json_int_t runs;
	int r = load_entry(root, d, &e, &name, err);

	if (r < 0 || !e)
		return r;
	runs = json_integer_value(json_object_get(e, "runs")) + 1;
	json_object_set_new(e, "next_ms", json_integer(next_run(e, d->at, now, runs)));
	json_object_set_new(e, "runs", json_integer(runs));
	r = record_run(root, d->vm, e, d->at, late, "started", NULL, err);
	if (r < 0)
		return r;
	util_crash_point("scheduler-after-claim");
	/* the tag of a repeated snapshot counts the runs before this one */
	json_object_set_new(e, "runs", json_integer(runs - 1));
	r = run_action(root, d->vm, e, o, &ae);
	json_object_set_new(e, "runs", json_integer(runs));
	json_array_append_new(json_object_get(report, "actions"),
	                      json_pack("{s:s, s:I, s:s, s:I, s:b, s:s, s:s?}", "vm", name, "vm_id",
	                                (json_int_t)d->vm, "what",
	                                json_string_value(json_object_get(e, "action")), "entry",
	                                d->entry, "late", late, "result", r < 0 ? "failed" : "ok",
	                                "error", r < 0 ? ae.msg : NULL));
	return record_run(root, d->vm, e, d->at, late, r < 0 ? "failed" : "ok",
	                  r < 0 ? ae.msg : NULL, err);
}

/* A run claimed by a pass that died before its outcome (the pass lock
 * says none runs now): recorded as interrupted, and not run again. */
static int settle_interrupted(const char *root, const lc_pass_opts *o, json_t *report,
                              util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *todo = json_array();
	json_t *t;
	size_t k;
	int r = lc_db_open(root, 0, &db, err);

	(void)o;
	(void)report;
	for (size_t i = 0; r == 0 && i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);
		json_t *e;

		json_array_foreach (json_object_get(vm->sched, "entries"), k, e) {
			json_t *last = json_object_get(e, "last");

			if (vm->state != LC_DONE &&
			    util_streq(json_string_value(json_object_get(last, "result")),
			               "started"))
				json_array_append_new(todo, json_pack("{s:I, s:O}", "vm",
				                                      (json_int_t)vm->id, "e", e));
		}
	}
	lc_db_close(TAKE_PTR(db));
	json_array_foreach (r == 0 ? todo : NULL, k, t) {
		json_t *e = json_object_get(t, "e"), *last = json_object_get(e, "last");

		r = record_run(root, (uint64_t)json_integer_value(json_object_get(t, "vm")), e,
		               json_integer_value(json_object_get(last, "due_ms")),
		               json_is_true(json_object_get(last, "late")), "interrupted",
		               "the scheduler pass that ran it ended before it did (was qvm "
		               "killed?); it is not run again: look at the vm",
		               err);
		if (r < 0)
			break;
	}
	return r;
}

static int run_due_actions(const char *root, const lc_pass_opts *o, json_t *report, util_err *err)
{
	_cleanup_free_ due *list = NULL;
	size_t n = 0;
	int r = collect_due(root, util_realtime_ms(), &list, &n, err);

	for (size_t i = 0; r == 0 && i < n; i++)
		r = run_due(root, &list[i], o, report, err);
	return r;
}

/* ---- reconciling, restarting, deploying ------------------------------------------------- */

/* The ids of the live VMs that match (new array, 0-terminated). */
static int ids_where(const char *root, bool (*match)(const lc_vm *vm, void *ud), void *ud,
                     uint64_t **ret, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	uint64_t *ids;
	size_t n = 0;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	ids = util_xcalloc(lc_db_count(db) + 1, sizeof(*ids));
	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);

		if (vm->state != LC_DONE && match(vm, ud))
			ids[n++] = vm->id;
	}
	*ret = ids;
	return 0;
}

static bool unsupervised(const lc_vm *vm, void *ud)
{
	(void)ud;
	return vm->state == LC_ACTIVE && !lc_vm_supervised(vm);
}

/* As list does: a VM whose supervisor died is adopted or settled, so that
 * the steps after see what is true. A busy VM is left to its command. */
static int reconcile_all(const char *root, const lc_pass_opts *o, json_t *report, util_err *err)
{
	_cleanup_free_ uint64_t *ids = NULL;
	int r = ids_where(root, unsupervised, NULL, &ids, err);

	(void)o;
	(void)report;
	for (size_t i = 0; r == 0 && ids[i]; i++) {
		util_err ignored = { 0 };

		lc_vm_reconcile(root, ids[i], &ignored);
	}
	return r;
}

static bool orphan_failed(const lc_vm *vm, void *ud)
{
	(void)ud;
	return vm->state == LC_FAILED && vm->def.restart != LC_RESTART_NO &&
	       util_streq(vm->reason, LC_REASON_ORPHANED);
}

/* Restart VM id if its policy says so and its backoff has passed; past
 * the cap (counted with the supervisor's restarts: restart.c) it stays
 * FAILED, saying so as the supervisor does (and is not looked at again). */
static int restart_one(const char *root, uint64_t id, const lc_pass_opts *o, json_t *report,
                       util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *why = NULL;
	char why_not[160];
	int64_t now = util_realtime_ms();
	size_t recent;
	lc_vm *vm;
	int r = lc_load_vm(root, id, &db, &vm, err);

	if (r < 0 || !orphan_failed(vm, NULL))
		return r;
	recent = lc_restart_recent(vm, now);
	if (now - vm->state_ms < lc_restart_backoff_ms(recent))
		return 0; /* the next pass, once its backoff has passed */
	if (lc_restart_allowed(recent, vm->def.restart, why_not, sizeof(why_not))) {
		r = lc_restart_note(root, id, "the scheduler", recent, err);
		return r < 0 ? r : lc_sched_start(root, vm, "restart", o, report, err);
	}
	why = util_xasprintf("%s; %s", LC_REASON_ORPHANED, why_not);
	lc_db_close(TAKE_PTR(db));
	return lc_record(root, id, LC_FAILED, LC_LCM_NONE, why, why, NULL, err);
}

static int restart_orphans(const char *root, const lc_pass_opts *o, json_t *report, util_err *err)
{
	_cleanup_free_ uint64_t *ids = NULL;
	int r = ids_where(root, orphan_failed, NULL, &ids, err);

	for (size_t i = 0; r == 0 && ids[i]; i++)
		r = restart_one(root, ids[i], o, report, err);
	return r;
}

static bool autostartable(const lc_vm *vm, void *ud)
{
	(void)ud;
	return vm->def.autostart && vm->state != LC_ACTIVE && vm->state != LC_HOLD &&
	       vm->state != LC_UNKNOWN;
}

static int start_ids(const char *root, const uint64_t *ids, const char *what,
                     bool (*still)(const lc_vm *vm, void *ud), const lc_pass_opts *o,
                     json_t *report, util_err *err)
{
	int r = 0;

	for (size_t i = 0; r == 0 && ids[i]; i++) {
		_cleanup_db_ lc_db *db = NULL;
		lc_vm *vm;

		r = lc_load_vm(root, ids[i], &db, &vm, err);
		if (r == 0 && vm->state != LC_DONE && still(vm, NULL))
			r = lc_sched_start(root, vm, what, o, report, err);
	}
	return r;
}

int lc_sched_autostart(const char *root, const lc_pass_opts *o, json_t *report, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *boot = NULL;
	_cleanup_free_ uint64_t *ids = NULL;
	int r = lc_boot_id(&boot, err);

	if (r == 0)
		r = lc_db_open(root, 0, &db, err);
	if (r < 0)
		return r;
	json_object_set_new(report, "boot_id", json_string(boot));
	if (util_streq(json_string_value(json_object_get(lc_db_host(db), "autostart-boot")), boot))
		return 0;
	lc_db_close(TAKE_PTR(db));
	r = ids_where(root, autostartable, NULL, &ids, err);
	if (r == 0)
		r = start_ids(root, ids, "autostart", autostartable, o, report, err);
	if (r == 0)
		r = lc_host_record(root, json_pack("{s:s}", "autostart-boot", boot), err);
	return r;
}

static bool pending(const lc_vm *vm, void *ud)
{
	(void)ud;
	return vm->state == LC_PENDING;
}

static uint64_t host_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

/* The memory a VM deployed now may take: the host's, less what VMs hold
 * and the reserve; *ret_on: deploy-pending is on. */
static int deploy_room(const char *root, bool *ret_on, uint64_t *ret_room, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	uint64_t held = 0, reserve = DEFAULT_RESERVE, total = host_memory();
	const char *rs;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	*ret_on = util_streq(json_string_value(json_object_get(lc_db_host(db), "deploy-pending")),
	                     "on");
	rs = json_string_value(json_object_get(lc_db_host(db), "memory-reserve"));
	if (util_streq(rs, "0"))
		reserve = 0;
	else if (rs && util_parse_size(rs, &reserve, err) < 0)
		return util_err_prefix(err, "the host's memory-reserve");
	for (size_t i = 0; i < lc_db_count(db); i++)
		if (lc_vm_holds_host(lc_db_vm_at(db, i)))
			held += lc_db_vm_at(db, i)->def.memory;
	*ret_room = total > held + reserve ? total - held - reserve : 0;
	return 0;
}

/* PENDING VMs in id order while they fit; the first that does not stops
 * the deployment (no later VM overtakes it). HOLD is skipped. */
static int deploy_pending(const char *root, const lc_pass_opts *o, json_t *report, util_err *err)
{
	_cleanup_free_ uint64_t *ids = NULL;
	bool on = false;
	uint64_t room = 0;
	int r = deploy_room(root, &on, &room, err);

	if (r < 0 || !on)
		return r;
	r = ids_where(root, pending, NULL, &ids, err);
	for (size_t i = 0; r == 0 && ids[i]; i++) {
		_cleanup_db_ lc_db *db = NULL;
		lc_vm *vm;

		r = lc_load_vm(root, ids[i], &db, &vm, err);
		if (r < 0 || vm->state != LC_PENDING)
			continue;
		if (vm->def.memory > room) {
			json_object_set_new(report, "waiting", json_string(vm->def.name));
			break;
		}
		room -= vm->def.memory;
		r = lc_sched_start(root, vm, "deploy", o, report, err);
	}
	return r;
}

int lc_pass_run(const char *root, const char *what, const lc_pass_step *steps, size_t n,
                const lc_pass_opts *o, json_t *report, json_t **ret_report, util_err *err)
{
	_cleanup_json_ json_t *owned = report;
	_cleanup_close_ int lock = -1;
	int r = lc_pass_lock(root, o->pass_timeout_ms, &lock, err);

	for (size_t i = 0; r == 0 && i < n; i++)
		r = steps[i](root, o, report, err);
	if (r < 0)
		return util_err_prefix(err, "%s under '%s'", what, root);
	*ret_report = TAKE_PTR(owned);
	return 0;
}

int lc_scheduler_pass(const char *root, const lc_pass_opts *o, json_t **ret_report, util_err *err)
{
	/* the order matters: what a dead supervisor or pass left is settled
	 * first, so the actions after see what is true */
	static const lc_pass_step steps[] = {
		reconcile_all,   settle_interrupted, run_due_actions,
		restart_orphans, lc_sched_autostart, deploy_pending,
	};

	return lc_pass_run(root, "scheduler pass", steps, UTIL_ARRAY_SIZE(steps), o,
	                   json_pack("{s:n, s:[]}", "boot_id", "actions"), ret_report, err);
}
