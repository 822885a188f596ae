/* Scheduled actions of VMs: the time forms a schedule takes, its entries
 * kept in the journal (the "sched-" records, replayed onto lc_vm.sched
 * here), and adding, listing and deleting them. The scheduler
 * (scheduler.c) runs them and records each run. */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "run.h"
#include "sched.h"

#define ENTRIES_MAX 64

/* The actions a schedule can run, the options each takes, and how many
 * operands after the action (min..max). */
static const struct {
	const char *name;
	unsigned opts; /* LC_SCHED_OPT_* */
	unsigned min_args, max_args;
} actions[] = {
	{ "start", 0, 0, 0 },
	{ "shutdown", LC_SCHED_OPT_HARD | LC_SCHED_OPT_HARD_AFTER | LC_SCHED_OPT_TIMEOUT, 0, 0 },
	{ "poweroff", LC_SCHED_OPT_HARD | LC_SCHED_OPT_HARD_AFTER | LC_SCHED_OPT_TIMEOUT, 0, 0 },
	{ "reboot", LC_SCHED_OPT_HARD, 0, 0 },
	{ "pause", 0, 0, 0 },
	{ "unpause", 0, 0, 0 },
	{ "suspend", 0, 0, 0 },
	{ "stop", 0, 0, 0 },
	{ "resume", 0, 0, 0 },
	{ "undeploy", LC_SCHED_OPT_HARD | LC_SCHED_OPT_TIMEOUT, 0, 0 },
	{ "snapshot-create", LC_SCHED_OPT_NO_MEMORY, 0, 1 },
	{ "disk-snapshot-create", 0, 2, 2 },
	{ "delete", LC_SCHED_OPT_WIPE, 0, 0 },
};

static const char *const opt_names[] = { "--hard", "--hard-after", "--timeout", "--no-memory",
	                                 "--wipe" };

/* ---- time --------------------------------------------------------------------------------- */

/* "30s", "30m", "2h", "1d": a positive count and a unit. */
int lc_sched_parse_interval(const char *s, int64_t *ret_ms, util_err *err)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = { { 's', 1000 }, { 'm', 60000 }, { 'h', 3600000 }, { 'd', 86400000 } };
	size_t n = strlen(s);
	_cleanup_free_ char *num = NULL;
	uint64_t v;

	for (size_t i = 0; n > 1 && i < UTIL_ARRAY_SIZE(units); i++) {
		if (s[n - 1] != units[i].unit)
			continue;
		num = util_xasprintf("%.*s", (int)(n - 1), s);
		if (!util_all_digits(num) || util_parse_uint(num, 1, 366 * 86400, &v, NULL) < 0 ||
		    (int64_t)v * units[i].ms > 366LL * 86400000)
			break;
		*ret_ms = (int64_t)v * units[i].ms;
		return 0;
	}
	return util_err_set(err, -EINVAL,
	                    "'%s' is not an interval: give a number and a unit, s, m, h or d "
	                    "(30m, 2h, 1d), up to a year",
	                    s);
}

/* "HH:MM": the next such local time after now. */
static int parse_clock(const char *s, int64_t now_ms, int64_t *ret_ms)
{
	unsigned hh, mm;
	char end;
	time_t now = (time_t)(now_ms / 1000), t;
	struct tm tm;

	if (strlen(s) != 5 || sscanf(s, "%2u:%2u%c", &hh, &mm, &end) != 2 || hh > 23 || mm > 59)
		return -EINVAL;
	localtime_r(&now, &tm);
	tm.tm_hour = (int)hh;
	tm.tm_min = (int)mm;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (t <= now) {
		tm.tm_mday++;
		tm.tm_isdst = -1;
		t = mktime(&tm);
	}
	*ret_ms = (int64_t)t * 1000;
	return 0;
}

/* ISO 8601: "YYYY-MM-DD[THH:MM[:SS]]" (a space for the T too) in local
 * time, or with "Z" or "+HH:MM"/"-HH:MM" after it. */
static int parse_iso(const char *s, int64_t *ret_ms)
{
	struct tm tm = { 0 };
	const char *p;
	time_t t;
	int off = 0;
	bool zone = false;

	p = strptime(s, "%Y-%m-%d", &tm);
	if (!p)
		return -EINVAL;
	if (*p == 'T' || *p == ' ') {
		const char *q = strptime(p + 1, "%H:%M", &tm);

		if (!q)
			return -EINVAL;
		p = q;
		if (*p == ':' && !(p = strptime(p + 1, "%S", &tm)))
			return -EINVAL;
	}
	if (*p == 'Z') {
		zone = true;
		p++;
	} else if (*p == '+' || *p == '-') {
		unsigned hh, mm;

		if (strlen(p) != 6 || sscanf(p + 1, "%2u:%2u", &hh, &mm) != 2 || p[3] != ':' ||
		    hh > 14 || mm > 59)
			return -EINVAL;
		off = (int)(hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
		zone = true;
		p += 6;
	}
	if (*p)
		return -EINVAL;
	tm.tm_isdst = -1;
	t = zone ? timegm(&tm) - off : mktime(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ret_ms = (int64_t)t * 1000;
	return 0;
}

int lc_sched_parse_time(const char *s, int64_t now_ms, int64_t *ret_ms, util_err *err)
{
	int64_t ms;

	if (s[0] == '+' && lc_sched_parse_interval(s + 1, &ms, NULL) == 0) {
		*ret_ms = now_ms + ms;
		return 0;
	}
	if (parse_clock(s, now_ms, ret_ms) == 0 || parse_iso(s, ret_ms) == 0)
		return 0;
	return util_err_set(err, -EINVAL,
	                    "'%s' is not a time: give +30m, +2h, +1d (from now), HH:MM (its next "
	                    "occurrence) or an ISO 8601 date and time (2026-12-24T18:00, local "
	                    "unless it ends in Z or +HH:MM)",
	                    s);
}

/* ---- actions ------------------------------------------------------------------------------ */

static int action_index(const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(actions); i++)
		if (util_streq(actions[i].name, name))
			return (int)i;
	return -1;
}

int lc_sched_action_check(const char *action, unsigned opts, size_t n_args, char *const *args,
                          util_err *err)
{
	int i = action_index(action);

	if (i < 0)
		return util_err_set(err, -EINVAL,
		                    "'%s' is not an action a schedule runs: give start, shutdown, "
		                    "poweroff, reboot, pause, unpause, suspend, stop, resume, "
		                    "undeploy, snapshot-create, disk-snapshot-create or delete",
		                    action);
	for (size_t b = 0; b < UTIL_ARRAY_SIZE(opt_names); b++)
		if ((opts & (1u << b)) && !(actions[i].opts & (1u << b)))
			return util_err_set(err, -EINVAL, "%s does not take %s", action,
			                    opt_names[b]);
	if (n_args < actions[i].min_args || n_args > actions[i].max_args)
		return util_err_set(err, -EINVAL, "%s takes %s", action,
		                    actions[i].max_args == 0   ? "no operand after it"
		                    : actions[i].min_args == 2 ? "DISK_ID and TAG after it"
		                                               : "at most a TAG after it");
	for (size_t k = 0; k < n_args; k++) {
		int r = util_validate_name(
		        args[k], k == 0 && actions[i].min_args == 2 ? "disk id" : "snapshot tag",
		        err);

		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the model: replay of sched- records onto lc_vm.sched --------------------------------- */

json_t *lc_sched_of(lc_vm *vm)
{
	if (!vm->sched)
		vm->sched = json_pack("{s:i, s:[], s:[]}", "next", 1, "entries", "restarts");
	return vm->sched;
}

static json_t *entry_by_id(const lc_vm *vm, json_int_t id, size_t *ret_index)
{
	json_t *e;
	size_t i;

	json_array_foreach (json_object_get(vm->sched, "entries"), i, e)
		if (json_integer_value(json_object_get(e, "id")) == id) {
			if (ret_index)
				*ret_index = i;
			return e;
		}
	return NULL;
}

static int sched_apply(lc_vm *vm, uint64_t seq, json_t *rec, util_err *err)
{
	const char *type = json_string_value(json_object_get(rec, "type"));
	json_t *s = lc_sched_of(vm), *e;
	json_int_t id = json_integer_value(json_object_get(rec, "entry"));
	size_t i;

	if (util_streq(type, "sched-add")) {
		e = json_object_get(rec, "add");
		id = json_integer_value(json_object_get(e, "id"));
		json_array_append_new(json_object_get(s, "entries"), json_deep_copy(e));
		if (id >= json_integer_value(json_object_get(s, "next")))
			json_object_set_new(s, "next", json_integer(id + 1));
		return 0;
	}
	if (util_streq(type, "sched-act"))
		return 0; /* history only (restarts are counted by restart.c) */
	e = entry_by_id(vm, id, &i);
	if (!e || !(util_streq(type, "sched-delete") || util_streq(type, "sched-run")))
		return util_err_set(err, -EBADMSG,
		                    "journal record %" PRIu64
		                    " (%s) names no schedule entry %" PRId64 " of vm %" PRIu64,
		                    seq, type ? type : "?", (int64_t)id, vm->id);
	if (util_streq(type, "sched-delete"))
		return json_array_remove(json_object_get(s, "entries"), i) == 0 ? 0 : -EBADMSG;
	json_object_set(e, "next_ms", json_object_get(rec, "next_ms"));
	json_object_set(e, "runs", json_object_get(rec, "runs"));
	json_object_set_new(e, "last",
	                    json_pack("{s:O, s:O, s:O, s:b, s:O}", "time_ms",
	                              json_object_get(rec, "time"), "due_ms",
	                              json_object_get(rec, "due_ms"), "result",
	                              json_object_get(rec, "result"), "late",
	                              json_is_true(json_object_get(rec, "late")), "error",
	                              json_object_get(rec, "error") ?: json_null()));
	return 0;
}

__attribute__((constructor)) static void sched_register(void)
{
	lc_store_on_record("sched-", sched_apply);
}

/* ---- adding, deleting, listing ------------------------------------------------------------ */

static json_t *entry_new(json_int_t id, const lc_sched_spec *sp)
{
	json_t *args = json_array(), *opts = json_object();

	for (size_t i = 0; i < sp->n_args; i++)
		json_array_append_new(args, json_string(sp->args[i]));
	if (sp->opts & LC_SCHED_OPT_HARD)
		json_object_set_new(opts, "hard", json_true());
	if (sp->opts & LC_SCHED_OPT_HARD_AFTER)
		json_object_set_new(opts, "hard_after", json_true());
	if (sp->opts & LC_SCHED_OPT_TIMEOUT)
		json_object_set_new(opts, "timeout", json_integer(sp->timeout_s));
	if (sp->opts & LC_SCHED_OPT_NO_MEMORY)
		json_object_set_new(opts, "no_memory", json_true());
	if (sp->opts & LC_SCHED_OPT_WIPE)
		json_object_set_new(opts, "wipe", json_true());
	return json_pack("{s:I, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:i, s:n}", "id", id,
	                 "action", sp->action, "args", args, "opts", opts, "at_ms",
	                 (json_int_t)sp->at_ms, "next_ms", (json_int_t)sp->at_ms, "every_ms",
	                 (json_int_t)sp->every_ms, "until_ms", (json_int_t)sp->until_ms, "count",
	                 (json_int_t)sp->count, "runs", 0, "last");
}

int lc_sched_add(const char *root, const char *name, const lc_sched_spec *sp, json_t **ret_entry,
                 util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *reason = NULL;
	json_int_t id;
	lc_vm *vm;
	int r = lc_sched_action_check(sp->action, sp->opts, sp->n_args, sp->args, err);

	if (r == 0 && sp->until_ms && sp->until_ms < sp->at_ms)
		r = util_err_set(err, -EINVAL, "--until is before --at: nothing would run");
	if (r == 0)
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_db_find(db, name, &vm, err);
	if (r == 0 && vm->state == LC_DONE)
		r = util_err_set(err, -ENOENT, "vm '%s' is DONE", name);
	if (r == 0 && json_array_size(json_object_get(vm->sched, "entries")) >= ENTRIES_MAX)
		r = util_err_set(err, -ENOSPC,
		                 "vm '%s' has %d scheduled actions already; delete one first "
		                 "(qvm schedule-delete)",
		                 vm->def.name, ENTRIES_MAX);
	if (r < 0)
		return util_err_prefix(err, "cannot schedule %s of '%s'", sp->action, name);
	id = vm->sched ? json_integer_value(json_object_get(vm->sched, "next")) : 1;
	reason = util_xasprintf("%s scheduled (action %" PRId64 ")", sp->action, (int64_t)id);
	r = lc_db_append(db,
	                 json_pack("{s:s, s:I, s:o, s:s}", "type", "sched-add", "id",
	                           (json_int_t)vm->id, "add", entry_new(id, sp), "reason", reason),
	                 NULL, err);
	if (r < 0)
		return util_err_prefix(err, "cannot schedule %s of '%s'", sp->action, name);
	if (ret_entry)
		*ret_entry = lc_sched_entry_json(vm, entry_by_id(vm, id, NULL));
	return 0;
}

int lc_sched_delete(const char *root, const char *name, unsigned entry_id, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r == 0)
		r = lc_db_find(db, name, &vm, err);
	if (r == 0 && !entry_by_id(vm, entry_id, NULL))
		r = util_err_set(err, -ENOENT,
		                 "vm '%s' has no scheduled action %u (qvm schedule-list %s)",
		                 vm->def.name, entry_id, vm->def.name);
	if (r == 0)
		r = lc_db_append(db,
		                 json_pack("{s:s, s:I, s:i, s:s}", "type", "sched-delete", "id",
		                           (json_int_t)vm->id, "entry", (int)entry_id, "reason",
		                           "scheduled action deleted"),
		                 NULL, err);
	if (r < 0)
		return util_err_prefix(err, "cannot delete scheduled action %u of '%s'", entry_id,
		                       name);
	return 0;
}

json_t *lc_sched_entry_json(const lc_vm *vm, json_t *e)
{
	json_t *j = json_deep_copy(e);

	json_object_set_new(j, "vm", json_string(vm->def.name));
	json_object_set_new(j, "vm_id", json_integer((json_int_t)vm->id));
	return j;
}

json_t *lc_sched_json(const lc_vm *vm)
{
	json_t *out = json_array(), *e;
	size_t i;

	json_array_foreach (json_object_get(vm->sched, "entries"), i, e)
		json_array_append_new(out, lc_sched_entry_json(vm, e));
	return out;
}

static void append_all(json_t *out, json_t *more)
{
	json_array_extend(out, more);
	json_decref(more);
}

int lc_sched_list(const char *root, const char *name, json_t **ret, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *out = json_array();
	lc_vm *vm;
	int r = lc_db_open(root, 0, &db, err);

	if (r == 0 && name) {
		r = lc_db_find_any(db, name, &vm, err);
		if (r == 0)
			append_all(out, lc_sched_json(vm));
	}
	for (size_t i = 0; r == 0 && !name && i < lc_db_count(db); i++) {
		vm = lc_db_vm_at(db, i);
		if (vm->state != LC_DONE)
			append_all(out, lc_sched_json(vm));
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(out);
	return 0;
}
