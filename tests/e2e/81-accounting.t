#!/usr/bin/env bash
# qvm accounting against a scripted run of one vm: start, poweroff, start
# again, a hard reboot and a live snapshot revert (the same run), kill -9
# of its QEMU (FAILED), start,
# kill -9 of its supervisor (a controller crash: the next qvm adopts the
# QEMU, the run goes on), poweroff. Three runs, each between the clock
# readings taken around the commands that began and ended it, in order and
# never overlapping; hours, CPU seconds and memory-hours add up; --since and
# --until clip; --csv. And a restart by the policy: a run of its own, and
# metrics' restarts counter.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G

now_ms() { echo $(($(date +%s%N) / 1000000)); }
recorded() { "$QVM" show "$1" --json | json "d[\"$2\"] or 0"; }
booted() { # booted NAME N: the Nth READY line of its console
	wait_for_file_line "$QVM_ROOT/vms/$(vm_id "$1")/console.log" '^QVM-READY ' "$BOOT_S" "$2" ||
		{ explain "$1"; bail_out "$1 does not boot"; }
}
lines_of() { line_count "$QVM_ROOT/vms/$(vm_id "$1")/console.log"; }
# acc EXPR: the Python expression EXPR of `accounting acc1 --json` (d)
acc() { "$QVM" accounting acc1 --json "${@:2}" | json "$1"; }

define acc1 qvm.counter=1 --disk 32M
id=$(vm_id acc1)

t0=$(now_ms)
run "$QVM" start acc1
is "$RC" 0 "start" || diag "$ERR"
booted acc1 0
run "$QVM" poweroff acc1
is "$RC" 0 "poweroff" || diag "$ERR"
t1=$(now_ms)
n=$(lines_of acc1)
run "$QVM" start acc1
is "$RC" 0 "start again" || diag "$ERR"
booted acc1 "$n"
n=$(lines_of acc1)
run "$QVM" reboot acc1 --hard
is "$RC" 0 "reboot --hard (the same qemu: the same run)" || diag "$ERR"
booted acc1 "$n"
run "$QVM" snapshot-create acc1 s1
is "$RC" 0 "snapshot-create (memory)" || diag "$ERR"
run "$QVM" snapshot-revert acc1 s1
is "$RC" 0 "snapshot-revert while it runs (the same qemu: the same run)" || diag "$ERR"
sleep 1
q=$(recorded acc1 qemu_pid)
kill -9 "$q"
wait_state acc1 FAILED 30 || diag "state: $STATE"
t2=$(now_ms)
is "$(state acc1)" FAILED "kill -9 of its qemu: FAILED"
n=$(lines_of acc1)
run "$QVM" start acc1
is "$RC" 0 "start after the crash" || diag "$ERR"
booted acc1 "$n"
sup=$(recorded acc1 supervisor_pid)
kill -9 "$sup"
wait_pid_gone "$sup" 5
run "$QVM" list
like "$OUT" "acc1 +runn" "list adopts the qemu of the killed supervisor"
ok "a new supervisor drives it" test "$(recorded acc1 supervisor_pid)" != "$sup"
sleep 1
run "$QVM" poweroff acc1
is "$RC" 0 "poweroff of the adopted vm" || diag "$ERR"
t3=$(now_ms)

# ---- the runs ----------------------------------------------------------------
run "$QVM" accounting acc1 --json
is "$RC" 0 "accounting acc1 --json" || diag "$ERR"
A=$OUT
is "$(json 'len(d["vms"]), len(d["vms"][0]["runs"])' <<<"$A")" "1 3" \
	"three runs: the reboot, the snapshot revert and the adoption each stayed in one"
is "$(json '" ".join(r["ended"] for r in d["vms"][0]["runs"])' <<<"$A")" "POWEROFF FAILED POWEROFF" \
	"how each ended: POWEROFF, FAILED (kill -9), POWEROFF"
is "$(json 'd["vms"][0]["runs"][1]["reason"]' <<<"$A")" "qemu was killed by signal 9 (Killed)" \
	"the crash's reason is recorded"
# each run lies between the clock readings around its commands
is "$(json "' '.join(str(int(a <= r['start_ms'] <= r['end_ms'] <= b)) for r, (a, b) in
	zip(d['vms'][0]['runs'], [($t0, $t1), ($t1, $t2), ($t2, $t3)]))" <<<"$A")" "1 1 1" \
	"each run starts and ends within its commands' clock readings"
is "$(json "all(x['end_ms'] <= y['start_ms'] for x, y in zip(d['vms'][0]['runs'], d['vms'][0]['runs'][1:]))" <<<"$A")" \
	True "the runs do not overlap"
is "$(json "all(abs(r['hours'] - (r['end_ms'] - r['start_ms']) / 3.6e6) < 1e-9 and
	abs(r['memory_gib_hours'] - 0.25 * r['hours']) < 1e-9 for r in d['vms'][0]['runs'])" <<<"$A")" \
	True "hours from start to end; memory-hours 0.25 GiB times hours"
is "$(json "all(isinstance(r['cpu_seconds'], float) and 0 < r['cpu_seconds'] for r in d['vms'][0]['runs'])" <<<"$A")" \
	True "every run has its CPU seconds (the killed one's and the adopted one's too)"
is "$(json "all(r['cpu_seconds'] <= (r['end_ms'] - r['start_ms']) / 1000 * 1.05 + 0.1 for r in d['vms'][0]['runs'])" <<<"$A")" \
	True "CPU seconds no more than the run's wall time (one vCPU)"
is "$(json "all(abs(d['total'][k] - sum(r[k] for r in d['vms'][0]['runs'])) < 1e-6 for k in ('hours', 'cpu_seconds', 'memory_gib_hours')) and d['total']['cpu_complete']" <<<"$A")" \
	True "the totals are the sums of the runs"

# ---- the window ----------------------------------------------------------------
is "$(acc '" ".join(r["ended"] for r in d["vms"][0]["runs"])' --since "@$((t1 / 1000 + 1))")" \
	"FAILED POWEROFF" "--since after the first run: the other two"
is "$(acc '" ".join(r["ended"] for r in d["vms"][0]["runs"])' --until "@$((t1 / 1000 - 0))")" \
	"POWEROFF" "--until before the second run: the first"
mid=$(json "(d['vms'][0]['runs'][1]['start_ms'] + d['vms'][0]['runs'][1]['end_ms']) // 2000 + 1" <<<"$A")
is "$(acc "round(d['vms'][0]['runs'][0]['hours'] / (d['vms'][0]['runs'][0]['end_ms'] - $mid * 1000) * 3.6e6, 3)" --since "@$mid")" \
	"1.0" "a run cut by --since counts the hours inside the window"
run "$QVM" accounting acc1 --since 2030-01-01 --until 2020-01-01
is "$RC" 2 "--since after --until: usage error"
run "$QVM" accounting acc1 --since yesterday
is "$RC" 2 "a time that does not parse: usage error"
like "$ERR" "'yesterday' is not a time" "... saying so"

# ---- text and CSV ---------------------------------------------------------------
run "$QVM" accounting
is "$RC" 0 "accounting (every vm)" || diag "$ERR"
like "$OUT" "^ +ID +NAME +START +END +ENDED +HOURS +CPU-S +MEM +MEM-GiB-H" "the table's header"
is "$(grep -c " acc1 .* 256M " <<<"$OUT")" 3 "the table: a line per run"
like "$(tail -1 <<<"$OUT")" "^TOTAL +[0-9.]+ +[0-9.]+ +[0-9.]+$" "the table: a total"
run "$QVM" accounting --csv
is "$(head -1 <<<"$OUT")" "id,name,start,end,ended,hours,cpu_seconds,memory,memory_gib_hours" "csv: header"
is "$(grep -c "^$id,acc1,20[0-9-]*T[0-9:]*Z,20[0-9-]*T[0-9:]*Z,[A-Z]*,[0-9.]*,[0-9.]*,268435456,[0-9.]*$" <<<"$OUT")" 3 \
	"csv: a line per run, UTC times"
run "$QVM" accounting --csv --json
is "$RC" 2 "--csv with --json: usage error"

# ---- the whole controller and its qemu killed: accounting settles it ----------
n=$(lines_of acc1)
run "$QVM" start acc1
is "$RC" 0 "start once more" || diag "$ERR"
booted acc1 "$n"
sup=$(recorded acc1 supervisor_pid)
q=$(recorded acc1 qemu_pid)
kill -9 "$sup" "$q"
wait_pid_gone "$sup" 5
wait_pid_gone "$q" 5
t4=$(now_ms)
run "$QVM" accounting acc1 --json
is "$RC" 0 "accounting right after the supervisor and its qemu were killed" || diag "$ERR"
is "$(json 'len(d["vms"][0]["runs"])' <<<"$OUT")" 4 "a fourth run"
is "$(json "d['vms'][0]['runs'][3]['end_ms'] is not None and d['vms'][0]['runs'][3]['end_ms'] >= $t4 - 60000, d['vms'][0]['runs'][3]['cpu_seconds'], d['total']['cpu_complete']" <<<"$OUT")" \
	"True None False" "it settled the vm: the run ended, its CPU unknown, the total a lower bound"
like "$(state acc1)" "^(FAILED|POWEROFF|UNKNOWN)$" "the vm is no longer ACTIVE"

# ---- a restart by the policy ---------------------------------------------------
define acc2 "" --restart on-failure --memory 128M
run "$QVM" start acc2
booted acc2 0
n=$(lines_of acc2)
kill -9 "$(recorded acc2 qemu_pid)"
booted acc2 "$n"
wait_state acc2 ACTIVE/RUNNING 30
run "$QVM" metrics
like "$(grep "^qvm_vm_restarts_total{name=\"acc2\"" <<<"$OUT")" " 1$" "metrics: acc2 restarted once"
like "$(grep "^qvm_vm_restarts_total{name=\"acc1\"" <<<"$OUT")" " 0$" "metrics: acc1 never (restart policy no)"
is "$("$QVM" accounting acc2 --json | json '" ".join(str(r["ended"]) for r in d["vms"][0]["runs"])')" \
	"FAILED None" "accounting: the crashed run, and the restarted one still running"
run "$QVM" delete acc2
run "$QVM" delete acc1
is "$RC" 0 "delete acc1" || diag "$ERR"
is "$(acc 'len(d["vms"][0]["runs"])')" 4 "a deleted (DONE) vm keeps its runs (by id: $id)" 2>/dev/null
done_testing
