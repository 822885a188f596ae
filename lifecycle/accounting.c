/* Accounting from the journal, as OpenNebula's oneacct: each run of a VM
 * (one QEMU process, from its spawn to its exit), how it ended, its hours,
 * CPU seconds and memory-hours, clipped to a window. A run is a property
 * of the records, not of who wrote them: a reboot or a snapshot revert
 * inside one QEMU stays one run, an adoption after a crashed supervisor
 * continues the run, and a restart by the policy starts a new one. */
#include <string.h>

#include "lifecycle.h"

#define MS_PER_HOUR 3600000.0
#define GIB         1073741824.0

/* One VM's walk through its records. */
typedef struct acct_vm {
	uint64_t id;
	char *name;
	uint64_t memory;  /* as defined now (the record's "memory") */
	json_t *runs;     /* its runs, each a new object */
	json_t *open;     /* the run under way (a member of runs), or NULL */
	int64_t start_ms; /* of the open run */
} acct_vm;

typedef struct acct_walk {
	int64_t since_ms, until_ms; /* the window; until is "now" when none */
	uint64_t only_id;           /* 0: every VM */
	acct_vm *vms;
	size_t n, cap;
} acct_walk;

static acct_vm *vm_of(acct_walk *a, uint64_t id)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->vms[i].id == id)
			return &a->vms[i];
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->vms = util_xrealloc(a->vms, a->cap * sizeof(*a->vms));
	}
	a->vms[a->n] = (acct_vm){ .id = id, .runs = json_array() };
	return &a->vms[a->n++];
}

static const char *str_of(json_t *rec, const char *key)
{
	return json_string_value(json_object_get(rec, key));
}

/* Does this state record say a QEMU runs the VM? ACTIVE with a pid, or in
 * an LCM state only a live QEMU has. */
static bool says_running(json_t *rec, lc_lcm lcm)
{
	json_t *pid = json_object_get(rec, "qemu_pid");

	if (json_is_integer(pid))
		return json_integer_value(pid) > 0 && lcm != LC_LCM_EPILOG;
	return lcm != LC_LCM_NONE && lcm != LC_LCM_PROLOG && lcm != LC_LCM_BOOT &&
	       lcm != LC_LCM_EPILOG;
}

/* Does it end the run under way: the VM left ACTIVE, its QEMU exited
 * (EPILOG), or a record says no QEMU runs it any more (pid 0: a restart's
 * wait). */
static bool says_ended(json_t *rec, lc_state state, lc_lcm lcm)
{
	json_t *pid = json_object_get(rec, "qemu_pid");

	return state != LC_ACTIVE || lcm == LC_LCM_EPILOG ||
	       (json_is_integer(pid) && json_integer_value(pid) == 0);
}

static void run_open(acct_vm *v, int64_t t)
{
	v->start_ms = t;
	v->open = json_pack("{s:I, s:n, s:n, s:n, s:n, s:I}", "start_ms", (json_int_t)t, "end_ms",
	                    "ended", "reason", "cpu_seconds", "memory", (json_int_t)v->memory);
	json_array_append_new(v->runs, v->open);
}

/* The end of the run under way: the state it led to (an EPILOG record's
 * target), why, and the CPU time its QEMU used (recorded at its exit). */
static void run_close(acct_vm *v, json_t *rec, lc_state state, int64_t t)
{
	const char *target = str_of(rec, "target");
	json_t *cpu = json_object_get(rec, "cpu_ms");

	json_object_set_new(v->open, "end_ms", json_integer(t));
	json_object_set_new(
	        v->open, "ended",
	        json_string(state == LC_ACTIVE && target ? target : lc_state_name(state)));
	if (str_of(rec, "reason"))
		json_object_set(v->open, "reason", json_object_get(rec, "reason"));
	if (json_is_integer(cpu))
		json_object_set_new(v->open, "cpu_seconds",
		                    json_real((double)json_integer_value(cpu) / 1000.0));
	v->open = NULL;
}

static int record_cb(uint64_t seq, json_t *rec, void *ud, util_err *err)
{
	acct_walk *a = ud;
	const char *type = str_of(rec, "type");
	json_t *idv = json_object_get(rec, "id");
	int64_t t = json_integer_value(json_object_get(rec, "time"));
	lc_state state;
	lc_lcm lcm = LC_LCM_NONE;
	acct_vm *v;

	(void)seq;
	(void)err;
	if (!json_is_integer(idv) ||
	    (a->only_id && (uint64_t)json_integer_value(idv) != a->only_id))
		return 0;
	if (!util_streq(type, "state") && !util_streq(type, "define") &&
	    !util_streq(type, "redefine"))
		return 0;
	v = vm_of(a, (uint64_t)json_integer_value(idv));
	if (str_of(rec, "name")) {
		free(v->name);
		v->name = util_xstrdup(str_of(rec, "name"));
	}
	if (json_is_integer(json_object_get(rec, "memory")))
		v->memory = (uint64_t)json_integer_value(json_object_get(rec, "memory"));
	if (!str_of(rec, "state") || lc_state_parse(str_of(rec, "state"), &state, NULL) < 0)
		return 0;
	if (str_of(rec, "lcm") && lc_lcm_parse(str_of(rec, "lcm"), &lcm, NULL) < 0)
		return 0;
	if (v->open && says_ended(rec, state, lcm))
		run_close(v, rec, state, t);
	else if (!v->open && state == LC_ACTIVE && says_running(rec, lcm))
		run_open(v, t);
	return 0;
}

/* The part of a run inside the window: hours, and the CPU seconds and
 * memory-hours in proportion. Runs outside it are dropped. */
static bool clip_run(const acct_walk *a, json_t *run, int64_t now)
{
	int64_t start = json_integer_value(json_object_get(run, "start_ms"));
	json_t *endv = json_object_get(run, "end_ms");
	int64_t end = json_is_integer(endv) ? json_integer_value(endv) : now;
	int64_t from = start > a->since_ms ? start : a->since_ms;
	int64_t to = end < a->until_ms ? end : a->until_ms;
	json_t *cpu = json_object_get(run, "cpu_seconds");
	double hours, share;

	if (to < from || (to == from && start != end))
		return false;
	hours = (double)(to - from) / MS_PER_HOUR;
	share = end > start ? (double)(to - from) / (double)(end - start) : 1.0;
	json_object_set_new(run, "hours", json_real(hours));
	json_object_set_new(run, "memory_gib_hours",
	                    json_real((double)json_integer_value(json_object_get(run, "memory")) /
	                              GIB * hours));
	if (json_is_real(cpu))
		json_object_set_new(run, "cpu_seconds", json_real(json_real_value(cpu) * share));
	return true;
}

static void add_to(json_t *sum, json_t *run)
{
	static const char *const keys[] = { "hours", "cpu_seconds", "memory_gib_hours" };

	for (size_t k = 0; k < UTIL_ARRAY_SIZE(keys); k++) {
		json_t *v = json_object_get(run, keys[k]);

		json_object_set_new(sum, keys[k],
		                    json_real(json_real_value(json_object_get(sum, keys[k])) +
		                              (json_is_real(v) ? json_real_value(v) : 0)));
	}
	/* a run whose CPU time was not recorded makes the sum a lower bound */
	if (!json_is_real(json_object_get(run, "cpu_seconds")))
		json_object_set_new(sum, "cpu_complete", json_false());
}

static json_t *new_sum(void)
{
	return json_pack("{s:f, s:f, s:f, s:b}", "hours", 0.0, "cpu_seconds", 0.0,
	                 "memory_gib_hours", 0.0, "cpu_complete", 1);
}

/* The run still under way of a VM that runs: its CPU time so far. */
static void live_cpu(lc_db *db, const acct_vm *v, json_t *run)
{
	const lc_vm *vm = lc_db_vm_by_id(db, v->id);
	lc_proc_stat ps;

	if (vm && vm->state == LC_ACTIVE && lc_qemu_stat(vm, &ps, NULL) == 0)
		json_object_set_new(run, "cpu_seconds", json_real(ps.cpu_s));
}

static json_t *vm_json(lc_db *db, const acct_walk *a, acct_vm *v, int64_t now, json_t *total)
{
	json_t *runs = json_array(), *sum = new_sum(), *run;
	size_t i;

	if (v->open)
		live_cpu(db, v, v->open);
	json_array_foreach (v->runs, i, run) {
		if (!clip_run(a, run, now))
			continue;
		add_to(sum, run);
		add_to(total, run);
		json_array_append(runs, run);
	}
	return json_pack("{s:I, s:s, s:o, s:o}", "id", (json_int_t)v->id, "name",
	                 v->name ? v->name : "?", "runs", runs, "total", sum);
}

int lc_accounting(lc_db *db, uint64_t id, int64_t since_ms, int64_t until_ms, json_t **ret,
                  util_err *err)
{
	int64_t now = util_realtime_ms();
	acct_walk a = { .since_ms = since_ms,
		        .until_ms = until_ms > 0 ? until_ms : now,
		        .only_id = id };
	json_t *vms = json_array(), *total = new_sum();
	int r = lc_db_foreach_record(db, id, record_cb, &a, err);

	for (size_t i = 0; r == 0 && i < a.n; i++) {
		json_t *j = vm_json(db, &a, &a.vms[i], now, total);

		if (json_array_size(json_object_get(j, "runs")) || id)
			json_array_append_new(vms, j);
		else
			json_decref(j);
	}
	for (size_t i = 0; i < a.n; i++) {
		free(a.vms[i].name);
		json_decref(a.vms[i].runs);
	}
	free(a.vms);
	if (r < 0) {
		json_decref(vms);
		json_decref(total);
		return util_err_prefix(err, "cannot read the journal for accounting");
	}
	*ret = json_pack("{s:I, s:I, s:o, s:o}", "since_ms", (json_int_t)a.since_ms, "until_ms",
	                 (json_int_t)a.until_ms, "vms", vms, "total", total);
	return 0;
}
