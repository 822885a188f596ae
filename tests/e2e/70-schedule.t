#!/usr/bin/env bash
# Scheduled actions run by `qvm scheduler --once`: a poweroff at +3 s runs
# at the first pass after its time (not before) and is in the history; a
# repeated action runs twice and ends after --count; an action missed for
# longer than the grace runs once, marked late (a repeated one moves on
# past the runs it missed); a failing action records its error and is not
# retried; two schedulers at once do each action once; show, schedule-list
# and delete; bad arguments are usage errors. One guest.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
. "$(dirname "$0")/../lib/host.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
export QVM_BOOT_ID_FILE=$QVM_TEST_ROOT/boot_id
echo boot-70 >"$QVM_BOOT_ID_FILE"
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS QVM_SCHEDULE_LATE_MS

# runs_of VM ENTRY: the outcomes of scheduled action ENTRY's runs, "[late ]RESULT" a line
# (the record that claims a run before it, "started", left out)
runs_of() {
	"$QVM" history "$1" --json | "$PY" -c '
import json, sys
for r in json.load(sys.stdin):
    if r["type"] == "sched-run" and "(action %s" % sys.argv[1] in (r["reason"] or "") \
            and not r["reason"].endswith(": started"):
        print(("late " if ", late" in r["reason"] else "") + r["reason"].rsplit(": ", 1)[1])
' "$2"
}
entry() { "$QVM" schedule-list "$1" --json | json "[e for e in d if e['id'] == $2][0]$3"; }

define s
run "$QVM" start s
is "$RC" 0 "start s" || diag "$ERR"

# ============================================================================
section "a poweroff at +3 s"
run "$QVM" schedule s poweroff --hard --at +3s
is "$RC" 0 "schedule s poweroff --hard --at +3s" || diag "$ERR"
like "$OUT" "^s: action 1, poweroff at " "... says which action and when"
pass_ok "a pass before its time"
is "$(state s)" "ACTIVE/RUNNING" "... does not run it"
is "$(runs_of s 1)" "" "... and records no run"
sleep 3.2
pass_ok "a pass after its time"
like "$OUT" "s: poweroff ok" "... runs it"
is "$(state s)" "POWEROFF" "... the vm is POWEROFF"
is "$(runs_of s 1)" "ok" "... its run is in the history, ok, on time"
is "$(entry s 1 '["next_ms"]')" 0 "... and the action has no next run"
run pass
is "$(runs_of s 1)" "ok" "another pass does not run it again"

# ============================================================================
section "a repeated action: --every 1s --count 2"
run "$QVM" start s
is "$RC" 0 "start s again" || diag "$ERR"
run "$QVM" schedule s reboot --hard --at +1s --every 1s --count 2
is "$RC" 0 "schedule s reboot --hard --every 1s --count 2" || diag "$ERR"
sleep 1.1
pass >/dev/null
is "$(runs_of s 2)" "ok" "the first pass after its time runs it once"
next=$(entry s 2 '["next_ms"]')
ok "... and moves it to its next run" test "$next" -gt 0
sleep 1.1
pass >/dev/null
is "$(runs_of s 2 | tr '\n' ' ')" "ok ok " "the next pass runs it a second time"
is "$(entry s 2 '["next_ms"]')" 0 "... which was the last (--count 2)"
is "$(entry s 2 '["runs"]')" 2 "... runs: 2"
sleep 1.1
pass >/dev/null
is "$(runs_of s 2 | wc -l)" 2 "a third pass does not run it"
wait_state s "ACTIVE/RUNNING" "$BOOT_S"
is "$STATE" "ACTIVE/RUNNING" "the vm runs after its reboots"

# ============================================================================
section "missed actions run once, marked late"
export QVM_SCHEDULE_LATE_MS=500
run "$QVM" schedule s pause --at +1s
is "$RC" 0 "schedule s pause --at +1s" || diag "$ERR"
run "$QVM" schedule s snapshot-list --at +1s
is "$RC" 2 "an action that is not a lifecycle command is a usage error"
run "$QVM" schedule s unpause --at +1s --every 1s
is "$RC" 0 "schedule s unpause --every 1s (no end)" || diag "$ERR"
sleep 3.5
before_ms=$(date +%s%3N)
pass_ok "a pass 2.5 s after their time (the grace is 0.5 s)"
like "$OUT" "s: pause \(late\) ok" "... runs the pause, marked late"
is "$(runs_of s 3)" "late ok" "... in the history as late"
is "$(runs_of s 4)" "late ok" "the repeated unpause that missed 3 runs runs once, late"
ok "... and moves on to a run after the pass began" test "$(entry s 4 '["next_ms"]')" -gt "$before_ms"
is "$(entry s 4 '["last"]["late"]')" "True" "schedule-list shows its last run was late"
is "$(state s)" "ACTIVE/RUNNING" "pause then unpause: the vm runs"
unset QVM_SCHEDULE_LATE_MS
run "$QVM" schedule-delete s 4
is "$RC" 0 "schedule-delete s 4" || diag "$ERR"
run "$QVM" schedule-delete s 4
is "$RC" 1 "... a second time fails" && like "$ERR" "has no scheduled action 4" "... saying so"

# ============================================================================
section "a failing action records its error, no retry"
run "$QVM" schedule s start --at +1s
is "$RC" 0 "schedule s start (it runs already)" || diag "$ERR"
sleep 1.1
pass >/dev/null
is "$(runs_of s 5)" "failed" "the run failed"
like "$(entry s 5 '["last"]["error"]')" "cannot start 's'" "... its error is recorded"
is "$(entry s 5 '["next_ms"]')" 0 "... and it is not run again"
"$QVM" history s | grep -q "scheduled start (action 5): failed" &&
	ok "history shows it" true || not_ok "history shows it"

section "a pass killed in the action: the run is not repeated"
run "$QVM" schedule s pause --at +1s
is "$RC" 0 "schedule s pause (action 6)" || diag "$ERR"
sleep 1.1
QVM_CRASH_AT=scheduler-after-claim run pass
is "$RC" 99 "a pass dies once it claimed the run (QVM_CRASH_AT=scheduler-after-claim)"
pass_ok "the next pass"
is "$(runs_of s 6)" "interrupted" "... records the run as interrupted"
like "$(entry s 6 '["last"]["error"]')" "ended before it did" "... saying why"
is "$(state s)" "ACTIVE/RUNNING" "... and does not run it again"
is "$(entry s 6 '["next_ms"]')" 0 "... nor later"

# ============================================================================
section "two schedulers at once do each action once"
for i in 1 2 3 4; do
	"$QVM" schedule s reboot --hard --at +1s >/dev/null || not_ok "schedule reboot $i"
done
sleep 1.1
pass >"$QVM_TEST_ROOT/p1" 2>&1 &
p1=$!
pass >"$QVM_TEST_ROOT/p2" 2>&1 &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
is "$r1 $r2" "0 0" "both passes succeed"
total=0
for e in 7 8 9 10; do total=$((total + $(runs_of s $e | wc -l))); done
is "$total" 4 "each of the 4 actions ran once"
is "$(cat "$QVM_TEST_ROOT/p1" "$QVM_TEST_ROOT/p2" | grep -c 'reboot ok')" 4 "... 4 runs reported between them"

# ============================================================================
section "the scheduler's loop; scheduled snapshots respect snapshots.max"
"$QVM" create d --disk 16M >/dev/null || bail_out "create d"
"$QVM" update d snapshots.max=2 >/dev/null || bail_out "update d snapshots.max=2"
run "$QVM" schedule d snapshot-create auto --at +1s --every 1s --count 3
is "$RC" 0 "schedule d snapshot-create auto --every 1s --count 3" || diag "$ERR"
"$QVM" scheduler --interval 1 >"$QVM_TEST_ROOT/loop" 2>&1 &
loop=$!
deadline=$((SECONDS + 20))
until [ "$(runs_of d 1 | wc -l)" -ge 3 ] || [ $SECONDS -ge $deadline ]; do sleep 0.3; done
kill -TERM $loop
wait $loop
is "$?" 0 "scheduler (a loop) ends at SIGTERM, exit status 0"
is "$(runs_of d 1 | tr '\n' ' ')" "ok ok ok " "... it ran the snapshot at each of its passes, 3 times"
is "$(grep -c 'snapshot-create ok' "$QVM_TEST_ROOT/loop")" 3 "... and said so"
is "$("$QVM" snapshot-list d --json | json '" ".join(s["tag"] for s in d["snapshots"])')" "auto-2 auto-3" \
	"each run took its own snapshot (TAG-N), pruned to snapshots.max=2"
"$QVM" delete d >/dev/null || not_ok "delete d"

# ============================================================================
section "show, schedule-list, JSON, arguments"
"$QVM" schedule s snapshot-create nightly --at 02:00 --every 1d --count 3 >/dev/null
"$QVM" show s >"$QVM_TEST_ROOT/show"
grep -q '^SCHEDULE' "$QVM_TEST_ROOT/show" && ok "show lists the schedule" true || not_ok "show lists the schedule"
grep -Eq '^11 +snapshot-create nightly +[0-9-]+ 02:00:00 +1d' "$QVM_TEST_ROOT/show" &&
	ok "... the entry with its next run at 02:00 local and its interval" true ||
	{ not_ok "... the entry with its next run at 02:00 local and its interval"; diag_file "$QVM_TEST_ROOT/show" 40; }
is "$("$QVM" show s --json | json 'len(d["schedule"])')" 10 "show --json has the schedule (10 actions: one was deleted)"
is "$("$QVM" schedule-list --json | schema_violations)" "" "schedule-list --json follows the JSON rules"
is "$("$QVM" show s --json | schema_violations)" "" "show --json (with its schedule) follows them"
is "$("$QVM" schedule s pause --at +1h --json | schema_violations)" "" "schedule --json follows them"
is "$("$QVM" schedule-delete s 12 --json | schema_violations)" "" "schedule-delete --json follows them"
is "$(pass --json | schema_violations)" "" "scheduler --once --json follows them"
run "$QVM" schedule s poweroff --at 2026-12-24T18:00:00Z --json
is "$RC" 0 "an ISO 8601 time in UTC" || diag "$ERR"
is "$(echo "$OUT" | json 'd["at_ms"]')" 1798135200000 "... is that moment"
run "$QVM" schedule s poweroff --at 1999-01-01T00:00
is "$RC" 2 "a time in the past is a usage error"
run "$QVM" schedule s poweroff --at +1m --count 2
is "$RC" 2 "--count without --every is a usage error"
run "$QVM" schedule s poweroff --at +1m --every 1h --count 2 --until +2h
is "$RC" 2 "--count with --until is a usage error"
run "$QVM" schedule s pause --hard --at +1m
is "$RC" 2 "an option the action does not take is a usage error"
like "$ERR" "pause does not take --hard" "... saying which"
run "$QVM" schedule s poweroff --at 25:00
is "$RC" 2 "a clock time that is none is a usage error"
run "$QVM" schedule nosuch poweroff --at +1m
is "$RC" 1 "a vm that does not exist fails" && like "$ERR" "no vm named 'nosuch'" "... saying so"
run "$QVM" scheduler --interval 0
is "$RC" 2 "scheduler --interval 0 is a usage error"

run "$QVM" delete s
is "$RC" 0 "delete s" || diag "$ERR"
pass_ok "a pass with the vm deleted does nothing to it"
is "$(runtime_left)" "" "nothing of the vm's runtime is left"
done_testing
