#!/usr/bin/env bash
# One restart cap for a VM, whoever restarts it: the supervisor and the
# host's scheduler count the same restarts (in the journal). A VM whose
# supervisor restarted it 4 times, then lost it, gets 6 restarts from the
# scheduler and ends FAILED with the cap's words; one the scheduler
# restarted 3 times gets 7 from its new supervisor. Then a host shutdown
# killed (kill -9) while its VMs go down: the supervisors finish the
# shutdowns, nothing is left half-done, and host boot brings back exactly
# the VMs that were running and are autostart.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
. "$(dirname "$0")/../lib/host.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
export QVM_BOOT_ID_FILE=$QVM_TEST_ROOT/boot_id
# restarts at once; the window widened so that slow boots all count
export QVM_RESTART_BACKOFF_MS=0 QVM_RESTART_WINDOW_MS=600000
echo boot-74 >"$QVM_BOOT_ID_FILE"
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS QVM_SCHEDULE_LATE_MS
CAP="restarted 10 times within 600 s: not again \(restart policy on-failure\)"

# restarts VM BY: the restarts of VM that BY ("supervisor", "scheduler") counted
restarts() {
	"$QVM" history "$1" --json | "$PY" -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)
          if r["type"] == "restart" and r["reason"].endswith("by the " + sys.argv[1])))' "$2"
}
# sup_restart VM: kill -9 VM's qemu only; its supervisor restarts it (0),
# or does not (1, once VM is no longer ACTIVE)
sup_restart() {
	local old new deadline=$((SECONDS + BOOT_S))
	old=$(pids_matching "$(uuid_of "$1")")
	wait_state "$1" ACTIVE/RUNNING "$BOOT_S"
	kill -9 $old
	wait_pid_gone "$old" 10
	while [ $SECONDS -lt $deadline ]; do
		new=$(pids_matching "$(uuid_of "$1")")
		[ -n "$new" ] && [ "$new" != "$old" ] && return 0
		[[ "$(state "$1")" == ACTIVE* ]] || return 1
		sleep 0.05
	done
	return 1
}
# sched_restarts VM MAX: crash VM and run a pass, until a pass leaves it
# FAILED; prints how many passes restarted it
sched_restarts() {
	local n=0
	while [ $n -lt "$2" ]; do
		wait_state "$1" ACTIVE/RUNNING "$BOOT_S"
		crash "$1"
		pass >/dev/null
		[ "$(state "$1")" = FAILED ] && break
		n=$((n + 1))
	done
	echo $n
}

# ============================================================================
section "the supervisor's restarts count against the scheduler's cap"
define r "" --restart on-failure
run "$QVM" start r
is "$RC" 0 "start r (--restart on-failure)" || diag "$ERR"
for i in 1 2 3 4; do
	sup_restart r || not_ok "the supervisor restarts r ($i)"
done
is "$(restarts r supervisor)" 4 "r's supervisor restarted it 4 times, each counted in its history"
is "$(sched_restarts r 12)" 6 "after its supervisor was lost, the scheduler restarted r 6 times: 10 in all"
is "$(restarts r scheduler)" 6 "... each counted in its history"
is "$(state r)" FAILED "... then r is FAILED"
like "$(reasons r | tail -1)" "^FAILED its qemu and its supervisor are gone; $CAP\$" \
	"... with the cap's reason"
n=$(last_seq r)
pass >/dev/null
is "$(last_seq r)" "$n" "... and a later pass leaves it alone"
is "$(pids_matching "$(uuid_of r)")" "" "... no qemu of r is left"

section "the scheduler's restarts count against the supervisor's cap"
define r2 "" --restart on-failure
run "$QVM" start r2
is "$RC" 0 "start r2 (--restart on-failure)" || diag "$ERR"
is "$(sched_restarts r2 3)" 3 "the scheduler restarted r2 3 times"
n=0
while [ $n -lt 12 ] && sup_restart r2; do n=$((n + 1)); done
is "$n" 7 "then its new supervisor restarted it 7 times: 10 in all"
wait_state r2 FAILED 30
is "$STATE" FAILED "... then r2 is FAILED"
like "$(reasons r2 | tail -1)" "^FAILED qemu was killed by signal 9.*; $CAP\$" \
	"... with the same cap's words" || diag "$(reasons r2 | tail -1)"
is "$(sups "$(vm_id r2)")" 0 "... its supervisor is gone"
run "$QVM" delete r
run "$QVM" delete r2
unset QVM_RESTART_BACKOFF_MS QVM_RESTART_WINDOW_MS

# ============================================================================
section "host shutdown killed while its vms go down"
define a "" --autostart
define deaf qvm.acpi=ignore --autostart
define c ""
define d "" --autostart
mark a
mark deaf
echo boot-74b >"$QVM_BOOT_ID_FILE"
pass_ok "the first pass of a new boot autostarts a, deaf and d"
run "$QVM" start c
is "$RC" 0 "start c (not autostart)" || diag "$ERR"
run "$QVM" poweroff --hard d
is "$RC" 0 "poweroff d (autostart, off)" || diag "$ERR"
ready a
ready deaf
"$QVM" host shutdown --timeout 4 >/dev/null 2>&1 &
hs=$!
wait_state a POWEROFF 20
is "$STATE" POWEROFF "host shutdown: a goes down"
is "$(state deaf)" ACTIVE/SHUTDOWN "... deaf (ignores ACPI) is still going down"
ok "... host shutdown still runs" kill -0 $hs
kill -9 $hs
wait $hs 2>/dev/null
wait_state deaf POWEROFF 20
is "$STATE" POWEROFF "after host shutdown was killed, deaf's supervisor still powers it off past the timeout"
wait_state c POWEROFF 20
is "$STATE" POWEROFF "... c is down too"
left=""
for v in a deaf c d; do
	[ -n "$(pids_matching "$(uuid_of $v)")" ] && left+="qemu:$v "
	[ "$(sups "$(vm_id $v)")" = 0 ] || left+="supervisor:$v "
	[ -z "$(open_intents "$(vm_id $v)")" ] || left+="intent:$v "
done
is "$left" "" "... no qemu, supervisor or open intent of any vm is left"
is "$("$QVM" host --json | json 'sorted(v["name"] for v in d["stopped"].values())')" \
	"['a', 'c', 'deaf']" "... the host's record of what it stopped is kept"
mark a
mark deaf
t0=$SECONDS
run "$QVM" host boot
is "$RC" 0 "host boot (the pass lock is free)" || diag "$ERR"
ok "... at once, not after a wait for a lock (<= 10 s)" test $((SECONDS - t0)) -le 10
is "$(state a) $(state deaf) $(state c) $(state d)" "ACTIVE/RUNNING ACTIVE/RUNNING POWEROFF POWEROFF" \
	"... brings back exactly a and deaf: running at host shutdown, and autostart"
is "$("$QVM" host --json | json 'd["stopped"]')" "{}" "... and clears the record"
ready a
ready deaf
for v in a deaf c d; do
	run "$QVM" delete "$v"
	is "$RC" 0 "delete $v" || diag "$ERR"
done

done_testing
