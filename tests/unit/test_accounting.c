/* Accounting from a scripted journal: the records a supervisor writes for
 * a boot, an adoption, a QEMU's exit with its CPU time, a restart by the
 * policy, and a host crash (no exit record: the run ends at the record
 * that settled it, CPU unknown); the window's clipping; the restarts
 * count, also after the journal is compacted into a snapshot. */
#include <string.h>
#include <sys/stat.h>

#include "lifecycle/lifecycle.h"
#include "tap.h"

#define HOUR 3600000LL
#define T0   1700000000000LL /* some time: records carry it explicitly */

static uint64_t vm_id;

/* A state record of the VM at time t, with its fields as JSON text. */
static int rec(lc_db *db, int64_t t, const char *state, const char *lcm, const char *fields,
               util_err *err)
{
	json_t *r = json_loads(fields ? fields : "{}", 0, NULL);

	json_object_set_new(r, "type", json_string("state"));
	json_object_set_new(r, "id", json_integer((json_int_t)vm_id));
	json_object_set_new(r, "time", json_integer(t));
	json_object_set_new(r, "state", json_string(state));
	if (lcm)
		json_object_set_new(r, "lcm", json_string(lcm));
	return lc_db_append(db, r, NULL, err);
}

/* Three runs: [T0+100, T0+1h+100] POWEROFF (an adoption inside, CPU 1.5 s),
 * [T0+2h, T0+3h] FAILED (then restarted, CPU 2.5 s), [T0+3h+10, T0+5h] FAILED
 * with no exit record (the host died with it). */
static int script(lc_db *db, util_err *err)
{
	int r = 0;

	r = r ?: rec(db, T0, "ACTIVE", "BOOT", "{\"reason\": \"start\"}", err);
	r = r ?: rec(db, T0 + 100, "ACTIVE", "BOOT", "{\"qemu_pid\": 100}", err);
	r = r ?: rec(db, T0 + 200, "ACTIVE", "RUNNING", "{\"qemu_pid\": 100, \"started\": 1}", err);
	r = r
	            ?: rec(db, T0 + 5000, "ACTIVE", "RUNNING",
	                   "{\"qemu_pid\": 100, \"reason\": \"adopted by a new supervisor\"}", err);
	r = r ?: rec(db, T0 + 9000, "ACTIVE", "SNAPSHOT", NULL, err);
	r = r ?: rec(db, T0 + 9500, "ACTIVE", "RUNNING", NULL, err);
	r = r
	            ?: rec(db, T0 + HOUR + 100, "ACTIVE", "EPILOG",
	                   "{\"qemu_pid\": 0, \"target\": \"POWEROFF\", \"cpu_ms\": 1500, "
	                   "\"reason\": \"powered off\"}",
	                   err);
	r = r ?: rec(db, T0 + HOUR + 150, "POWEROFF", NULL, NULL, err);
	r = r ?: rec(db, T0 + 2 * HOUR, "ACTIVE", "BOOT", "{\"qemu_pid\": 101}", err);
	r = r
	            ?: rec(db, T0 + 3 * HOUR, "ACTIVE", "EPILOG",
	                   "{\"qemu_pid\": 0, \"target\": \"FAILED\", \"cpu_ms\": 2500, "
	                   "\"reason\": \"qemu was killed by signal 9 (Killed)\"}",
	                   err);
	r = r
	            ?: rec(db, T0 + 3 * HOUR + 5, "ACTIVE", "BOOT",
	                   "{\"qemu_pid\": 0, \"restart\": true}", err);
	r = r ?: rec(db, T0 + 3 * HOUR + 10, "ACTIVE", "BOOT", "{\"qemu_pid\": 102}", err);
	r = r ?: rec(db, T0 + 3 * HOUR + 20, "ACTIVE", "RUNNING", "{\"qemu_pid\": 102}", err);
	r = r
	            ?: rec(db, T0 + 5 * HOUR, "FAILED", NULL,
	                   "{\"qemu_pid\": 0, \"reason\": \"its qemu is gone\"}", err);
	return r;
}

static json_t *run_at(json_t *acc, size_t i)
{
	return json_array_get(
	        json_object_get(json_array_get(json_object_get(acc, "vms"), 0), "runs"), i);
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static void check_runs(lc_db *db, const char *when)
{
	_cleanup_json_ json_t *acc = NULL, *clip = NULL;
	util_err err = { 0 };
	json_t *total;

	if (!ok(lc_accounting(db, vm_id, 0, T0 + 6 * HOUR, &acc, &err) == 0, "%s: accounting: %s",
	        when, err.msg))
		return;
	is_int((int)json_array_size(
	               json_object_get(json_array_get(json_object_get(acc, "vms"), 0), "runs")),
	       3, "%s: three runs (adoption and snapshot inside one, a restart starts one)", when);
	is_int((int)(num(run_at(acc, 0), "start_ms") - T0), 100, "%s: run 1 starts at the spawn",
	       when);
	is_str(json_string_value(json_object_get(run_at(acc, 0), "ended")), "POWEROFF",
	       "%s: run 1 ended POWEROFF", when);
	ok(num(run_at(acc, 0), "hours") == 1.0 && num(run_at(acc, 0), "cpu_seconds") == 1.5 &&
	           num(run_at(acc, 0), "memory_gib_hours") == 0.5,
	   "%s: run 1: 1 h, 1.5 CPU s, 0.5 GiB-h (512 MiB)", when);
	is_str(json_string_value(json_object_get(run_at(acc, 1), "ended")), "FAILED",
	       "%s: run 2 ended FAILED (its exit record's target)", when);
	ok(num(run_at(acc, 1), "hours") == 1.0 && num(run_at(acc, 1), "cpu_seconds") == 2.5,
	   "%s: run 2: 1 h, 2.5 CPU s", when);
	ok(json_is_null(json_object_get(run_at(acc, 2), "cpu_seconds")) &&
	           (int64_t)num(run_at(acc, 2), "end_ms") == T0 + 5 * HOUR,
	   "%s: run 3 (the host died with it): ends at the settling record, CPU unknown", when);
	total = json_object_get(acc, "total");
	ok(json_is_false(json_object_get(total, "cpu_complete")) &&
	           num(total, "cpu_seconds") == 4.0,
	   "%s: the total's CPU is a lower bound, 4 s", when);
	ok(num(run_at(acc, 0), "end_ms") <= num(run_at(acc, 1), "start_ms") &&
	           num(run_at(acc, 1), "end_ms") <= num(run_at(acc, 2), "start_ms"),
	   "%s: the runs do not overlap", when);
	/* a window from the middle of run 2 to the middle of run 3 */
	ok(lc_accounting(db, vm_id, T0 + 2 * HOUR + HOUR / 2, T0 + 4 * HOUR, &clip, &err) == 0,
	   "%s: accounting in a window", when);
	is_int((int)json_array_size(
	               json_object_get(json_array_get(json_object_get(clip, "vms"), 0), "runs")),
	       2, "%s: the window holds runs 2 and 3", when);
	ok(num(run_at(clip, 0), "hours") == 0.5 && num(run_at(clip, 0), "cpu_seconds") == 1.25,
	   "%s: run 2 clipped: half an hour, half its CPU seconds", when);
}

int main(void)
{
	char tmpl[] = "/tmp/qvm-unit-acct.XXXXXX";
	const char *root = mkdtemp(tmpl);
	lc_create_opts co = { 0 };
	util_err err = { 0 };
	lc_db *db = NULL;
	lc_vm *vm;
	lc_vmdef def;
	int r;

	lc_vmdef_init(&def);
	def.name = util_xstrdup("acct");
	def.memory = 512ull << 20;
	r = root && lc_db_open(root, LC_DB_WRITE, &db, &err) == 0 &&
	                    lc_vm_create(db, &def, &co, &vm_id, &err) == 0
	            ? script(db, &err)
	            : -1;
	lc_vmdef_clear(&def);
	if (!ok(r == 0, "a vm and its scripted records: %s", err.msg))
		return done_testing();
	check_runs(db, "from the log");
	vm = lc_db_vm_by_id(db, vm_id);
	is_int((int)(vm ? vm->restarts : 0), 1, "the restart is counted");
	/* past the compaction threshold: the records move to the history */
	for (int i = 0; i < 140 && r == 0; i++)
		r = rec(db, T0 + 5 * HOUR + 1 + i, "FAILED", NULL, NULL, &err);
	lc_db_close(db);
	db = NULL;
	ok(r == 0 && lc_db_open(root, 0, &db, &err) == 0, "reopened after compaction: %s", err.msg);
	{
		_cleanup_free_ char *hist = util_xasprintf("%s/journal/history", root);
		struct stat st;

		ok(stat(hist, &st) == 0 && S_ISDIR(st.st_mode), "the journal was compacted (%s)",
		   hist);
	}
	vm = db ? lc_db_vm_by_id(db, vm_id) : NULL;
	is_int((int)(vm ? vm->restarts : 0), 1, "the restart count survives the snapshot");
	if (db)
		check_runs(db, "from the history");
	lc_db_close(db);
	util_rm_rf(root, NULL);
	return done_testing();
}
