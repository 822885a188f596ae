#!/usr/bin/env bash
# The host's side: autostart once per host boot (the boot id read from a
# file the test points QVM_BOOT_ID_FILE at), HOLD skipped; a simulated
# host crash (supervisor and qemu killed) then a new boot id brings the
# autostart vm back; host shutdown (ACPI, in parallel) then host boot
# brings back the running autostart vms and not the others; host shutdown
# --mode suspend then host boot resumes them; the restart policy applied
# by the scheduler after the supervisor and qemu were both killed;
# deploy-pending with hold/release and the memory reserve.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
. "$(dirname "$0")/../lib/host.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
export QVM_BOOT_ID_FILE=$QVM_TEST_ROOT/boot_id QVM_RESTART_BACKOFF_MS=0
echo boot-1 >"$QVM_BOOT_ID_FILE"
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS QVM_SCHEDULE_LATE_MS

host() { "$QVM" host --json | json "$1"; }

define a "" --autostart
define h "" --autostart --hold
define n ""

# ============================================================================
section "autostart once per boot"
pass_ok "the first pass of boot-1"
like "$OUT" "a: autostart ok" "... autostarts a"
is "$(state a)" "ACTIVE/RUNNING" "... a runs"
is "$(state h)" "HOLD" "... h (autostart, HOLD) is skipped"
is "$(state n)" "PENDING" "... n (no autostart) is left alone"
is "$(host 'd["autostart_boot_id"]')" "boot-1" "the journal records the boot whose autostart ran"
run "$QVM" poweroff --hard a
is "$RC" 0 "poweroff a" || diag "$ERR"
pass >/dev/null
is "$(state a)" "POWEROFF" "a second pass in the same boot autostarts nothing"
is "$(acts a autostart)" 1 "... a was autostarted once"

section "a host crash and a new boot"
run "$QVM" start a
is "$RC" 0 "start a" || diag "$ERR"
crash a
mark a
echo boot-2 >"$QVM_BOOT_ID_FILE"
pass_ok "the first pass of boot-2"
is "$(state a)" "ACTIVE/RUNNING" "... brings a back (its qemu and supervisor were gone)"
is "$(acts a autostart)" 2 "... autostarted a second time"
is "$(state h)" "HOLD" "... h still skipped"

# ============================================================================
section "host shutdown, host boot"
mark n
run "$QVM" start n
is "$RC" 0 "start n (not autostart)" || diag "$ERR"
ready a
ready n
t0=$SECONDS
run "$QVM" host shutdown --timeout 30
is "$RC" 0 "host shutdown --timeout 30" || diag "$ERR"
ok "... within 20 s (the guests heard the ACPI button: no hard poweroff at 30 s)" test $((SECONDS - t0)) -lt 20
is "$(state a) $(state n)" "POWEROFF POWEROFF" "... both vms are off"
is "$(host 'sorted(v["name"] for v in d["stopped"].values())')" "['a', 'n']" "... recorded as stopped by the host"
"$QVM" history a | grep -q "sched-act .*host shutdown: ok" &&
	ok "... in each vm's history" true || not_ok "... in each vm's history"
run "$QVM" host boot
is "$RC" 0 "host boot (same boot id)" || diag "$ERR"
like "$OUT" "a: host boot ok" "... brings a back"
is "$(state a)" "ACTIVE/RUNNING" "... a (autostart) runs"
is "$(state n)" "POWEROFF" "... n (not autostart) stays off"
is "$(host 'd["stopped"]')" "{}" "... and the record of the stopped vms is gone"

section "host shutdown --mode suspend, host boot"
run "$QVM" start n
is "$RC" 0 "start n again (not autostart)" || diag "$ERR"
run "$QVM" host shutdown --mode suspend --timeout 30
is "$RC" 0 "host shutdown --mode suspend" || diag "$ERR"
is "$(state a) $(state n)" "SUSPENDED SUSPENDED" "... a and n are SUSPENDED (in parallel)"
like "$OUT" "a: host shutdown \(suspend\) ok" "... it says so for a"
like "$OUT" "n: host shutdown \(suspend\) ok" "... and for n"
echo boot-3 >"$QVM_BOOT_ID_FILE"
run "$QVM" host boot
is "$RC" 0 "host boot (a new boot)" || diag "$ERR"
is "$(state a) $(state n)" "ACTIVE/RUNNING ACTIVE/RUNNING" "... resumes both (n too: the host suspended it)"
like "$("$QVM" history a)" "resume" "... from their checkpoints"
run pass
is "$(acts a autostart)" 2 "the pass after host boot autostarts nothing more"
run "$QVM" poweroff --hard n
is "$RC" 0 "poweroff n" || diag "$ERR"
section "host shutdown: a guest that ignores the ACPI button"
define deaf qvm.acpi=ignore
mark deaf
run "$QVM" start deaf
is "$RC" 0 "start deaf (qvm.acpi=ignore)" || diag "$ERR"
ready deaf
t0=$SECONDS
run "$QVM" host shutdown --timeout 3
is "$RC" 0 "host shutdown --timeout 3" || diag "$ERR"
is "$(state a) $(state deaf)" "POWEROFF POWEROFF" "... both are off: deaf powered off hard after the timeout"
ok "... within the timeout and the hard poweroff's slack (<= 15 s)" test $((SECONDS - t0)) -le 15
like "$(reasons deaf | tail -1)" "POWEROFF" "... deaf's last state is POWEROFF"
run "$QVM" delete deaf
is "$RC" 0 "delete deaf" || diag "$ERR"
run "$QVM" host boot
is "$(state a)" "ACTIVE/RUNNING" "host boot brings a back again"
is "$("$QVM" host --json | schema_violations)" "" "host --json follows the JSON rules"
is "$("$QVM" host set memory-reserve=256M --json | schema_violations)" "" "host set --json follows them"
is "$("$QVM" host boot --json | schema_violations)" "" "host boot --json follows them"
run "$QVM" host shutdown --mode nap
is "$RC" 2 "host shutdown --mode nap is a usage error"
run "$QVM" host set deploy-pending=maybe
is "$RC" 2 "host set deploy-pending=maybe is a usage error"

# ============================================================================
section "the restart policy, applied by the scheduler"
run "$QVM" poweroff --hard a
run "$QVM" delete n
define r "" --restart on-failure
run "$QVM" start r
is "$RC" 0 "start r (--restart on-failure)" || diag "$ERR"
crash r
QVM_RESTART_BACKOFF_MS=60000 pass_ok "a pass with a backoff of 60 s"
is "$(state r)" "FAILED" "... leaves r FAILED: its backoff has not passed"
pass_ok "a pass with no backoff, after r's supervisor and qemu were killed"
like "$OUT" "r: restart ok" "... restarts r"
is "$(state r)" "ACTIVE/RUNNING" "... r runs"
like "$(reasons r | grep FAILED)" "its qemu and its supervisor are gone" "... it was FAILED for that"
is "$(acts r restart)" 1 "... the restart is in r's history"
# the cap: 10 restarts within the window (widened: a slow machine must not
# let the first ones age out), then r stays FAILED, saying so
export QVM_RESTART_WINDOW_MS=600000
for i in 2 3 4 5 6 7 8 9 10; do
	crash r
	pass >/dev/null
done
is "$(acts r restart)" 10 "ten restarts by the scheduler"
crash r
pass_ok "the pass after the 11th crash"
is "$(state r)" "FAILED" "... leaves r FAILED"
like "$(reasons r | tail -1)" "restarted 10 times within 600 s: not again \(restart policy on-failure\)" \
	"... its reason says the cap was reached"
n=$(last_seq r)
pass >/dev/null
is "$(last_seq r)" "$n" "... and a later pass leaves it alone (nothing recorded)"
unset QVM_RESTART_WINDOW_MS
run "$QVM" delete r
is "$RC" 0 "delete r" || diag "$ERR"

# ============================================================================
section "deploy-pending, hold and release, the reserve"
run "$QVM" delete a
define p1 "" --hold
define p2 ""
define p3 ""
run pass
is "$(state p2)" "PENDING" "deploy-pending is off by default: nothing deployed"
mem=$(host 'd["memory"]')
held=$(host 'd["memory_committed"]')
reserve=$(((mem - held - 384 * 1048576) / 1048576))M
run "$QVM" host set deploy-pending=on "memory-reserve=$reserve"
is "$RC" 0 "host set deploy-pending=on memory-reserve=$reserve (room for one 256M vm)" || diag "$ERR"
pass_ok "a pass" --json
is "$(state p1) $(state p2) $(state p3)" "HOLD ACTIVE/RUNNING PENDING" "... skips p1 (HOLD), deploys p2, p3 waits for memory"
is "$(echo "$OUT" | json 'd.get("waiting")')" "p3" "... the pass says p3 waits"
run "$QVM" release p1
is "$RC" 0 "release p1" || diag "$ERR"
run "$QVM" delete p2
run pass
is "$(state p1) $(state p3)" "ACTIVE/RUNNING PENDING" "p1 released, p2 gone: p1 comes first (id order), p3 still waits"
run "$QVM" host set memory-reserve=0
is "$RC" 0 "host set memory-reserve=0" || diag "$ERR"
run pass
is "$(state p3)" "ACTIVE/RUNNING" "with no reserve p3 is deployed"
is "$(acts p3 deploy)" 1 "... the deployment is in its history"
for v in p1 p3 h; do "$QVM" delete $v >/dev/null || not_ok "delete $v"; done
is "$(runtime_left)" "" "nothing of the vms' runtime is left"
done_testing
