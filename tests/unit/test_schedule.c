/* Scheduled actions: the time forms (+30m, HH:MM, ISO 8601 local and with
 * a zone), intervals, the actions and their options, and the schedule and
 * the host's settings kept by the store across a compaction and in every
 * kind of open. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lifecycle/lifecycle.h"
#include "tap.h"

static int64_t at(const char *s, int64_t now)
{
	int64_t ms = -1;
	util_err err = { 0 };

	if (lc_sched_parse_time(s, now, &ms, &err) < 0)
		return -1;
	return ms;
}

static void test_times(void)
{
	/* 2026-12-08 00:00:00 UTC */
	const int64_t now = 1796688000000LL;
	int64_t iv = 0;
	util_err err = { 0 };

	setenv("TZ", "UTC0", 1);
	tzset();
	is_int(at("+30m", now), now + 30 * 60000, "+30m");
	is_int(at("+2h", now), now + 2 * 3600000, "+2h");
	is_int(at("+1d", now), now + 86400000, "+1d");
	is_int(at("+10s", now), now + 10000, "+10s");
	is_int(at("01:30", now), now + 90 * 60000, "HH:MM later today");
	is_int(at("00:00", now), now + 86400000, "HH:MM now is tomorrow's");
	is_int(at("2026-12-24T18:00", now), 1798135200000LL, "ISO 8601 local (UTC here)");
	is_int(at("2026-12-24 18:00:30", now), 1798135230000LL, "... with a space and seconds");
	is_int(at("2026-12-24T18:00Z", now), 1798135200000LL, "... Z");
	is_int(at("2026-12-24T19:00+01:00", now), 1798135200000LL, "... +01:00");
	is_int(at("2026-12-24T17:00-01:00", now), 1798135200000LL, "... -01:00");
	is_int(at("2026-12-24", now), 1798070400000LL, "a date alone: its midnight");
	/* local time is the zone's: 18:00 in CET is 17:00 UTC */
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	is_int(at("2026-12-24T18:00", now), 1798131600000LL, "ISO 8601 in local time (CET)");
	is_int(at("2026-07-01T18:00", now), 1782921600000LL, "... in summer time (CEST)");
	is_int(at("2026-12-24T18:00Z", now), 1798135200000LL, "Z is UTC whatever the zone");
	setenv("TZ", "UTC0", 1);
	tzset();
	for (const char *const *b =
	             (const char *const[]){ "", "+", "+0m", "+5", "+5x", "24:00", "12:60", "1:30",
	                                    "12:30:00x", "2026-13-01", "2026-12-24T18",
	                                    "2026-12-24T18:00+1", "tomorrow", "+367d", NULL };
	     *b; b++)
		is_int(at(*b, now), -1, "'%s' is refused", *b);
	ok(lc_sched_parse_time("soon", now, &iv, &err) == -EINVAL &&
	           strstr(err.msg, "'soon' is not a time: give +30m"),
	   "the refusal says what a time is: %s", err.msg);
	ok(lc_sched_parse_interval("90m", &iv, &err) == 0 && iv == 90 * 60000, "interval 90m");
	ok(lc_sched_parse_interval("1d", &iv, &err) == 0 && iv == 86400000, "interval 1d");
	ok(lc_sched_parse_interval("0s", &iv, &err) < 0, "interval 0s is refused");
	ok(lc_sched_parse_interval("2w", &iv, &err) < 0, "interval 2w is refused");
	ok(lc_sched_parse_interval("400d", &iv, &err) < 0, "more than a year is refused");
}

static void test_actions(void)
{
	static char *tag[] = { "nightly" }, *dsnap[] = { "0", "nightly" }, *bad[] = { "a/b" };
	util_err err = { 0 };

	ok(lc_sched_action_check("poweroff", LC_SCHED_OPT_HARD | LC_SCHED_OPT_TIMEOUT, 0, NULL,
	                         &err) == 0,
	   "poweroff --hard --timeout");
	ok(lc_sched_action_check("snapshot-create", LC_SCHED_OPT_NO_MEMORY, 1, tag, &err) == 0,
	   "snapshot-create TAG --no-memory");
	ok(lc_sched_action_check("disk-snapshot-create", 0, 2, dsnap, &err) == 0,
	   "disk-snapshot-create DISK_ID TAG");
	ok(lc_sched_action_check("disk-snapshot-create", 0, 1, tag, &err) < 0 &&
	           strstr(err.msg, "DISK_ID and TAG"),
	   "disk-snapshot-create without its TAG: %s", err.msg);
	ok(lc_sched_action_check("pause", LC_SCHED_OPT_HARD, 0, NULL, &err) < 0 &&
	           strstr(err.msg, "pause does not take --hard"),
	   "pause --hard: %s", err.msg);
	ok(lc_sched_action_check("start", 0, 1, tag, &err) < 0, "start takes no operand");
	ok(lc_sched_action_check("snapshot-create", 0, 1, bad, &err) < 0,
	   "a tag that is no name is refused");
	ok(lc_sched_action_check("migrate", 0, 0, NULL, &err) < 0 &&
	           strstr(err.msg, "not an action a schedule runs"),
	   "migrate is no scheduled action");
}

/* Enough records that closing compacts the log into the snapshot. */
static void many_records(const char *root)
{
	char pair[64];
	char *pairs[] = { pair };
	util_err err = { 0 };
	int r = 0;

	for (int i = 0; i < 140 && r == 0; i++) {
		snprintf(pair, sizeof(pair), "memory-reserve=%dM", 100 + i);
		r = lc_host_set(root, pairs, 1, &err);
	}
	ok(r == 0, "140 host records: %s", err.msg);
}

static void check_kept(const char *root, const char *how, const char *reserve)
{
	_cleanup_db_ lc_db *db = NULL;
	util_err err = { 0 };
	lc_vm *vm = NULL;
	json_t *e;

	ok(lc_db_open_vm(root, "s", &db, &vm, &err) == 0, "%s: open one vm: %s", how, err.msg);
	e = json_array_get(json_object_get(vm ? vm->sched : NULL, "entries"), 0);
	is_str(json_string_value(json_object_get(e, "action")), "reboot",
	       "%s: the vm's schedule is kept", how);
	lc_db_close(TAKE_PTR(db));
	ok(lc_db_open(root, 0, &db, &err) == 0, "%s: open all: %s", how, err.msg);
	is_str(json_string_value(json_object_get(lc_db_host(db), "memory-reserve")), reserve,
	       "%s: the host's last setting is kept", how);
	is_str(json_string_value(json_object_get(lc_db_host(db), "deploy-pending")), "on",
	       "%s: ... and its first", how);
	vm = lc_db_vm_by_id(db, 1);
	is_int(json_array_size(json_object_get(vm ? vm->sched : NULL, "entries")), 1,
	       "%s: one entry (the deleted one stays deleted)", how);
}

static void test_store(void)
{
	char tmpl[] = "/tmp/qvm-test-schedule.XXXXXX";
	const char *root = mkdtemp(tmpl);
	_cleanup_db_ lc_db *db = NULL;
	char *on[] = { "deploy-pending=on" }, *bad[] = { "color=blue" };
	lc_sched_spec sp = { .action = "reboot", .opts = LC_SCHED_OPT_HARD };
	lc_vmdef def;
	uint64_t id = 0;
	util_err err = { 0 };

	lc_vmdef_init(&def);
	def.name = util_xstrdup("s");
	ok(lc_db_open(root, LC_DB_WRITE, &db, &err) == 0 &&
	           lc_vm_create(db, &def, &(lc_create_opts){ 0 }, &id, &err) == 0,
	   "create vm s: %s", err.msg);
	lc_vmdef_clear(&def);
	lc_db_close(TAKE_PTR(db));
	sp.at_ms = util_realtime_ms() + 3600000;
	ok(lc_sched_add(root, "s", &sp, NULL, &err) == 0, "schedule a reboot: %s", err.msg);
	sp.action = "pause";
	sp.opts = 0;
	ok(lc_sched_add(root, "s", &sp, NULL, &err) == 0, "schedule a pause: %s", err.msg);
	ok(lc_sched_delete(root, "s", 2, &err) == 0, "delete the pause: %s", err.msg);
	ok(lc_sched_delete(root, "s", 2, &err) == -ENOENT, "... twice: %s", err.msg);
	ok(lc_host_set(root, on, 1, &err) == 0, "host set deploy-pending=on: %s", err.msg);
	ok(lc_host_set(root, bad, 1, &err) == -EINVAL && strstr(err.msg, "not a host setting"),
	   "host set color=blue is refused: %s", err.msg);
	check_kept(root, "in the log", NULL);
	many_records(root);
	{
		_cleanup_free_ char *path = util_xasprintf("%s/journal/snapshot.json", root);
		_cleanup_free_ char *snap = NULL;

		ok(util_read_file(path, 1 << 20, &snap, NULL, &err) == 0 &&
		           strstr(snap, "\"memory-reserve\"") && strstr(snap, "\"sched\""),
		   "the journal was compacted: its snapshot holds the host and the schedule");
	}
	check_kept(root, "after a compaction", "239M");
	util_rm_rf(root, &err);
}

int main(void)
{
	test_times();
	test_actions();
	test_store();
	return done_testing();
}
