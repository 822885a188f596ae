#!/usr/bin/env bash
# Running VMs end to end, with real QEMU and the test guest: start, list,
# show, pause/unpause, console, soft and hard reboot, kill -9 of QEMU (FAILED,
# and the on-failure restart policy), a QEMU that cannot start, ACPI
# shutdown, a guest that powers off or reboots by itself, a guest that
# ignores ACPI, delete of a running VM, delete --recreate, history.
# Each boot costs ~3 s of TCG: one guest is reused across steps.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg
export QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT/img
mkdir -p "$QVM_TEST_ROOT/img"
NL=$'\n'

# From tests/lib/vm.sh: run, json, define NAME [EXTRA_APPEND] [create
# flags...] (a vm booting the test guest), vm_id, uuid_of, state,
# wait_state, last_seq, explain.
console_log() { echo "$QVM_ROOT/vms/$(vm_id "$1")/console.log"; }
# history lines "SEQ STATE[/LCM] REASON" of records after seq $2 (default 0)
hist() {
	"$QVM" history "$1" --json | "$PY" -c '
import json, sys
for r in json.load(sys.stdin):
    if r.get("type") != "state" or r["seq"] <= int(sys.argv[1]):
        continue
    lcm = r.get("lcm") or ""
    print(r["seq"], r["state"] + ("/" + lcm if lcm else ""), r.get("reason") or "")' "${2:-0}"
}
# states_in HISTORY_TEXT: the STATE column of `qvm history`, one line
states_in() { awk 'NR > 1 && ($4 == "state" || $4 == "define") {print $5}' <<<"$1" | tr '\n' ' '; }
# count_lines FILE ERE
count_lines() { tr -d '\r' <"$1" 2>/dev/null | grep -a -c -E -- "$2"; }
no_qemu_of() { [ -z "$(pids_matching "$1")" ]; }
# wait_gone STRING TIMEOUT_S: every process whose command line holds STRING
# (a qemu by its uuid, a supervisor) is gone
wait_gone() {
	local p
	for p in $(pids_matching "$1"); do
		wait_pid_gone "$p" "$2" || return 1
	done
}
# no_supervisor ID: the supervisor of vm ID in this root is gone (bounded)
no_supervisor() { wait_gone "$QVM_ROOT __supervise $1 --" 5; }

# ---- 1. start, list, show, start again -------------------------------------
define g "qvm.counter=1"
gid=$(vm_id g)
guuid=$(uuid_of g)
glog=$QVM_ROOT/vms/$gid/console.log
# g's accel is auto (the default): without /dev/kvm (as here) auto itself
# chooses tcg, so let it; with one, QVM_ACCEL keeps tests off KVM
if [ -e /dev/kvm ]; then
	run "$QVM" start g
else
	run env -u QVM_ACCEL "$QVM" start g
fi
is "$RC" 0 "start" || diag "$ERR"
like "$OUT" "^g: ACTIVE/(BOOT|RUNNING)$" "start prints the state reached"
if wait_for_file_line "$glog" '^QVM-READY uptime=' $BOOT_S; then
	ok "the guest booted: console.log has the READY line"
else
	not_ok "the guest booted: console.log has the READY line"
	explain g
	bail_out "the guest does not boot under qvm"
fi
is "$(stat -c %a "$glog")" 600 "console.log is private (0600)"
run "$QVM" list
like "$OUT" "(^|$NL) +$gid +g +runn +[0-9]+% +256M +[0-9]+[smhd]" "list: runn with a CPU % and an uptime"
run "$QVM" show g
like "$OUT" "STATE +ACTIVE/RUNNING" "show: ACTIVE/RUNNING"
like "$OUT" "UPTIME +[0-9]+[smhd]" "show: an uptime"
# g is defined with --accel auto (the default); QEMU runs it under tcg
like "$OUT" "ACCEL +tcg \(auto\)" "show: the accelerator QEMU runs with, auto resolved"
run "$QVM" show g --json
is "$(json 'd["accel"], d["definition"]["accel"]' <<<"$OUT")" "tcg auto" \
	"show --json: accel in use beside the definition's"
run "$QVM" start g
is "$RC" 1 "start of a running vm is refused"
like "$ERR" "cannot start 'g': it is ACTIVE/RUNNING; start needs PENDING" "... naming the state and the states needed"
is "$(pids_matching "$guuid" | wc -l)" 1 "... and no second qemu runs it"
is "$(pids_matching "$QVM_ROOT __supervise $gid --" | wc -l)" 1 "one supervisor runs it"

# ---- 6. pause, unpause ------------------------------------------------------
ok "the counter runs before the pause" wait_for_file_line "$glog" '^QVM-COUNTER ' 5 "$(line_count "$glog")"
run "$QVM" pause g
is "$RC" 0 "pause" || diag "$ERR"
is "$(state g)" "ACTIVE/PAUSED" "paused: ACTIVE/PAUSED"
like "$("$QVM" list)" " g +paus " "list: paus"
sleep 0.5 # a line already in the UART may still land
n1=$(count_lines "$glog" '^QVM-COUNTER ')
sleep 2
n2=$(count_lines "$glog" '^QVM-COUNTER ')
is "$n2" "$n1" "no QVM-COUNTER line for 2 s while paused"
run "$QVM" pause g
is "$RC" 1 "pause of a paused vm is refused"
like "$ERR" "it is ACTIVE/PAUSED" "... naming the state"
run "$QVM" unpause g
is "$RC" 0 "unpause" || diag "$ERR"
is "$(state g)" "ACTIVE/RUNNING" "unpaused: ACTIVE/RUNNING"
if wait_for_file_line "$glog" '^QVM-COUNTER ' 10 "$(line_count "$glog")"; then
	ok "the counter runs again after unpause"
else
	not_ok "the counter runs again after unpause"
	explain g
fi

# ---- 9. console through a pipe ----------------------------------------------
OUT=$(echo | timeout 10 "$QVM" console g 2>"$QVM_TEST_ROOT/stderr")
RC=$?
is "$RC" 0 "console with a pipe exits by itself" || diag "$(cat "$QVM_TEST_ROOT/stderr")"
like "$OUT" "QVM-COUNTER [0-9]+" "console prints the guest's output"

# ---- 5. reboot: soft, hard ----------------------------------------------------
seq0=$(last_seq g)
after=$(line_count "$glog")
run "$QVM" reboot g
is "$RC" 0 "reboot (soft)" || diag "$ERR"
if wait_for_file_line "$glog" '^QVM-READY ' $BOOT_S "$after"; then
	ok "soft reboot: the guest booted again"
else
	not_ok "soft reboot: the guest booted again"
	explain g
fi
like "$(sed -n "$((after + 1)),\$p" "$glog" | tr -d '\r')" $'(^|\n)QVM-POWEROFF\n' \
	"soft reboot: the guest heard the ACPI button first"
is "$(state g)" "ACTIVE/RUNNING" "soft reboot: still ACTIVE/RUNNING"
new=$(hist g "$seq0")
is "$(grep -c -i 'reboot' <<<"$new" | tr -d ' ')" 2 "soft reboot: the request and one reboot record" ||
	diag "$new"
is "$(grep -c '^[0-9]* ACTIVE/RUNNING ' <<<"$new")" 1 "soft reboot: exactly one new RUNNING record" ||
	diag "$new"
like "$(grep '^[0-9]* ACTIVE/RUNNING ' <<<"$new")" "reboot" "... saying it rebooted"
is "$(grep -c -v -E '^[0-9]* ACTIVE/(SHUTDOWN|RUNNING) ' <<<"$new")" 0 "soft reboot: no other transition"
is "$(pids_matching "$guuid" | wc -l)" 1 "soft reboot: the same single qemu"

seq0=$(last_seq g)
after=$(line_count "$glog")
run "$QVM" reboot g --hard
is "$RC" 0 "reboot --hard" || diag "$ERR"
if wait_for_file_line "$glog" '^QVM-READY ' $BOOT_S "$after"; then
	ok "reboot --hard: the guest booted again"
else
	not_ok "reboot --hard: the guest booted again"
	explain g
fi
is "$(state g)" "ACTIVE/RUNNING" "reboot --hard: still ACTIVE/RUNNING"
new=$(hist g "$seq0")
is "$(wc -l <<<"$new" | tr -d ' ')" 1 "reboot --hard: exactly one history record" || diag "$new"
like "$new" "ACTIVE/RUNNING reset by the host" "... saying the host reset it"

# ---- 7. kill -9 of QEMU: FAILED, then start works -------------------------------
qpid=$(pids_matching "$guuid")
is "$(wc -w <<<"$qpid" | tr -d ' ')" 1 "one qemu runs the vm (found by its uuid)"
kill -9 $qpid
if wait_state g "FAILED" 20; then
	ok "kill -9 of qemu: FAILED"
else
	not_ok "kill -9 of qemu: FAILED (is $STATE)"
	explain g
fi
run "$QVM" show g
like "$OUT" "REASON +.*signal 9" "show: the reason names signal 9"
like "$OUT" "ACCEL +auto$NL" "show: a vm that is not running has only its definition's accel"
is "$("$QVM" show g --json | json 'd["accel"]')" None "... and accel null in --json"
like "$OUT" "LAST ERROR +.*signal 9" "show: ... as the last error"
ok "the supervisor is gone too" no_supervisor "$gid"
ok "the runtime folder is gone" test ! -e "$QVM_ROOT/run/$gid"
after=$(line_count "$glog")
run "$QVM" start g
is "$RC" 0 "start after the crash" || diag "$ERR"
if wait_for_file_line "$glog" '^QVM-READY ' $BOOT_S "$after"; then
	ok "... boots the guest again"
else
	not_ok "... boots the guest again"
	explain g
fi

# ---- 2. shutdown (ACPI) to DONE; 11. history --------------------------------
# The vm folder (console.log with it) goes at DONE: keep the log open to
# read what the guest printed after that.
after=$(line_count "$glog")
exec 7<"$glog"
on_exit 'exec 7<&-'
run "$QVM" shutdown g
is "$RC" 0 "shutdown" || { diag "$ERR"; explain g; }
is "$OUT" "g: DONE" "shutdown prints DONE"
printed=$(tail -n "+$((after + 1))" <&7 | tr -d '\r')
exec 7<&-
like "$printed" "(^|$NL)QVM-POWEROFF($NL|$)" "the guest heard the ACPI button (QVM-POWEROFF)" ||
	diag "$printed"
run "$QVM" list --all
like "$OUT" "(^|$NL) +$gid +g +done " "list --all: DONE"
run "$QVM" list
ok "list: a DONE vm is hidden" test -z "$(grep -E "^ +$gid +g " <<<"$OUT")"
ok "its folder ROOT/vms/$gid is gone" test ! -e "$QVM_ROOT/vms/$gid"
ok "its runtime folder is gone" test ! -e "$QVM_ROOT/run/$gid"
ok "its lock file is gone" test ! -e "$QVM_ROOT/run/vm-$gid.lock"
ok "no qemu of it is left" wait_gone "$guuid" 5
ok "no supervisor of it is left" no_supervisor "$gid"
run "$QVM" history "$gid"
is "$RC" 0 "history of the DONE vm by id" || diag "$ERR"
# the STATE column, in order, for the last start ... DONE
states=$(states_in "$OUT")
like "$states" "^PENDING ACTIVE/BOOT ACTIVE/BOOT ACTIVE/RUNNING " "history starts: PENDING, BOOT, RUNNING"
like "$states" "ACTIVE/PAUSED ACTIVE/RUNNING " "history: PAUSED, RUNNING"
like "$states" "ACTIVE/EPILOG FAILED ACTIVE/BOOT ACTIVE/BOOT ACTIVE/RUNNING " "history: the crash (EPILOG, FAILED), then BOOT, RUNNING"
like "$states" "ACTIVE/BOOT ACTIVE/RUNNING ACTIVE/SHUTDOWN ACTIVE/EPILOG DONE $" \
	"history ends: BOOT, RUNNING, SHUTDOWN, EPILOG, DONE"
like "$OUT" "DONE +shut down" "history: DONE says shut down"

# ---- 8. a kernel QEMU cannot load ----------------------------------------------
: >"$QVM_TEST_ROOT/img/empty-vmlinuz"
run "$QVM" create bad --memory 256M --kernel "$QVM_TEST_ROOT/img/empty-vmlinuz"
is "$RC" 0 "create a vm with an empty kernel file" || diag "$ERR"
buuid=$(uuid_of bad)
run "$QVM" start bad
is "$RC" 1 "start of a vm QEMU cannot boot fails"
like "$ERR" "could not load kernel" "... with QEMU's own error line" || explain bad
like "$ERR" "cannot start 'bad'" "... naming the vm"
run "$QVM" show bad
like "$OUT" "STATE +FAILED" "show: FAILED"
like "$OUT" "LAST ERROR +.*could not load kernel" "show: the last error is QEMU's line"
ok "no qemu of it runs" no_qemu_of "$buuid"
ok "no supervisor of it runs" no_supervisor "$(vm_id bad)"
ok "its runtime folder is gone" test ! -e "$QVM_ROOT/run/$(vm_id bad)"

# ---- 3. a guest that powers itself off; start again ---------------------------------
define self "qvm.poweroff=2" --disk 16M
sid=$(vm_id self)
slog=$QVM_ROOT/vms/$sid/console.log
run "$QVM" start self
is "$RC" 0 "start a guest that powers itself off" || diag "$ERR"
if wait_state self "POWEROFF" $BOOT_S; then
	ok "it powered off: POWEROFF"
else
	not_ok "it powered off: POWEROFF (is $STATE)"
	explain self
fi
is "$(count_lines "$slog" '^QVM-POWEROFF self$')" 1 "the guest said it powered off"
run "$QVM" show self
like "$OUT" "REASON +the guest powered off" "show: the reason says the guest did it"
ok "no qemu of it is left" wait_gone "$(uuid_of self)" 5
run "$QVM" start self
is "$RC" 0 "start again from POWEROFF" || diag "$ERR"
if wait_for_file_line "$slog" '^QVM-READY ' $BOOT_S "$(grep -a -n '^QVM-READY' "$slog" | head -1 | cut -d: -f1)"; then
	ok "... READY is printed a second time"
else
	not_ok "... READY is printed a second time"
	explain self
fi
wait_state self "POWEROFF" $BOOT_S
is "$STATE" "POWEROFF" "... and it powered off again"

# ---- 10b. delete --recreate of a POWEROFF vm: PENDING, fresh disks -------------------
sdisk=$("$QVM" show self --json | json 'd["definition"]["disks"][0]["path"]')
qemu-io -f qcow2 -c 'write -P 0xab 0 64k' "$sdisk" >/dev/null
like "$(qemu-img map --output=json -f qcow2 "$sdisk")" '"data": true' "the disk has data written in it"
run "$QVM" delete self --recreate
is "$RC" 0 "delete --recreate of a POWEROFF vm" || diag "$ERR"
is "$OUT" "self: PENDING" "... prints PENDING"
is "$(state self)" "PENDING" "... and it is PENDING"
ok "its disk exists" test -f "$sdisk"
map=$(qemu-img map --output=json -f qcow2 "$sdisk")
like "$map" '"data": false' "the disk is fresh" || diag "$map"
ok "... no data in it" test -z "$(grep '"data": true' <<<"$map")"
run "$QVM" delete self
is "$RC" 0 "delete it"

# ---- 4. a guest that ignores ACPI ---------------------------------------------------
define deaf "qvm.acpi=ignore"
duuid=$(uuid_of deaf)
dlog=$(console_log deaf)
run "$QVM" start deaf
is "$RC" 0 "start a guest that ignores ACPI" || diag "$ERR"
wait_for_file_line "$dlog" '^QVM-READY ' $BOOT_S || explain deaf
run "$QVM" poweroff deaf --timeout 2
is "$RC" 1 "poweroff --timeout 2 of a guest that ignores ACPI fails"
like "$ERR" "cannot poweroff 'deaf': the guest did not shut down within 2 s" "... saying so"
is "$(grep -o 'ignored the ACPI\|did not shut down' <<<"$ERR" | wc -l)" 1 "... once, not again in the reason"
like "$ERR" "--hard" "... and what to do"
wait_state deaf "ACTIVE/RUNNING" 10
is "$STATE" "ACTIVE/RUNNING" "it is back to ACTIVE/RUNNING"
run "$QVM" show deaf
like "$OUT" "REASON +the guest ignored the ACPI shutdown" "show: the reason is the ignored shutdown"
is "$(pids_matching "$duuid" | wc -l)" 1 "its qemu still runs"
run "$QVM" poweroff deaf --hard
is "$RC" 0 "poweroff --hard" || diag "$ERR"
is "$(state deaf)" "POWEROFF" "... POWEROFF"
ok "... its qemu is gone" wait_gone "$duuid" 5
run "$QVM" show deaf
like "$OUT" "REASON +powered off" "show: powered off (by the host)"
run "$QVM" history deaf
is "$(states_in "$OUT")" \
	"PENDING ACTIVE/BOOT ACTIVE/BOOT ACTIVE/RUNNING ACTIVE/SHUTDOWN ACTIVE/RUNNING ACTIVE/SHUTDOWN ACTIVE/EPILOG POWEROFF " \
	"history NAME: the ignored ACPI shutdown, then the hard one, in order"
after=$(line_count "$dlog")
run "$QVM" start deaf
is "$RC" 0 "start it again" || diag "$ERR"
wait_for_file_line "$dlog" '^QVM-READY ' $BOOT_S "$after" || explain deaf
run "$QVM" poweroff deaf --timeout 2 --hard-after
is "$RC" 0 "poweroff --timeout 2 --hard-after" || { diag "$ERR"; explain deaf; }
is "$(state deaf)" "POWEROFF" "... POWEROFF"
ok "... its qemu is gone" wait_gone "$duuid" 5
run "$QVM" delete deaf
is "$RC" 0 "delete it"

# ---- 5c. a guest that reboots itself; 10a. delete of a running vm ----------------------
define rb "qvm.reboot=4"
rbid=$(vm_id rb)
rbuuid=$(uuid_of rb)
rblog=$QVM_ROOT/vms/$rbid/console.log
run "$QVM" start rb
is "$RC" 0 "start a guest that reboots itself" || diag "$ERR"
wait_for_file_line "$rblog" '^QVM-READY ' $BOOT_S || explain rb
seq0=$(last_seq rb)
if wait_for_file_line "$rblog" '^QVM-REBOOT$' 20 && wait_for_file_line "$rblog" '^QVM-READY ' $BOOT_S "$TAP_LINENO"; then
	ok "it rebooted and booted again"
else
	not_ok "it rebooted and booted again"
	explain rb
fi
new=$(hist rb "$seq0")
is "$(wc -l <<<"$new" | tr -d ' ')" 1 "one history record for the guest's reboot" || diag "$new"
like "$new" "ACTIVE/RUNNING the guest rebooted" "... 'the guest rebooted'"
is "$(state rb)" "ACTIVE/RUNNING" "still ACTIVE/RUNNING"
run "$QVM" delete rb
is "$RC" 0 "delete of a RUNNING vm" || diag "$ERR"
run "$QVM" list --all
like "$OUT" "(^|$NL) +$rbid +rb +done " "... it is DONE"
ok "... its folder is gone" test ! -e "$QVM_ROOT/vms/$rbid"
ok "... no qemu of it is left" wait_gone "$rbuuid" 5
ok "... no supervisor of it is left" no_supervisor "$rbid"
run "$QVM" history "$rbid"
like "$OUT" "ACTIVE/SHUTDOWN +hard stop requested" "history: a hard stop"

# ---- 7b. restart policy on-failure -----------------------------------------------------
define phoenix "qvm.counter=1" --restart on-failure
pxid=$(vm_id phoenix)
puuid=$(uuid_of phoenix)
plog=$QVM_ROOT/vms/$pxid/console.log
run "$QVM" start phoenix
is "$RC" 0 "start a vm with --restart on-failure" || diag "$ERR"
wait_for_file_line "$plog" '^QVM-READY ' $BOOT_S || explain phoenix
seq0=$(last_seq phoenix)
qpid=$(pids_matching "$puuid")
kill -9 $qpid
if wait_for_file_line "$plog" '^QVM-READY ' $BOOT_S "$(line_count "$plog")"; then
	ok "kill -9 of its qemu: it boots again by itself"
else
	not_ok "kill -9 of its qemu: it boots again by itself"
	explain phoenix
fi
is "$(state phoenix)" "ACTIVE/RUNNING" "... ACTIVE/RUNNING"
qpid2=$(pids_matching "$puuid")
ok "... under a new qemu" test -n "$qpid2" -a "$qpid2" != "$qpid"
new=$(hist phoenix "$seq0")
like "$new" "ACTIVE/EPILOG qemu was killed by signal 9" "history: the crash"
like "$new" "ACTIVE/BOOT [^$NL]*signal 9[^$NL]*restart" "history: the restart decision"
like "$new" "ACTIVE/RUNNING booted" "history: running again"
ok "history: never FAILED in between" test -z "$(grep ' FAILED ' <<<"$new")"
run "$QVM" poweroff phoenix --hard
is "$RC" 0 "poweroff --hard" || diag "$ERR"
is "$(state phoenix)" "POWEROFF" "... POWEROFF, not restarted"
ok "... no qemu of it is left" wait_gone "$puuid" 5

# ---- what a command prints is the state it left -------------------------------------
# poweroff --hard stops itself (QVM_STOP_AT) once it let go of the vm, before
# it prints; a start runs meanwhile. It still says POWEROFF, and that the vm
# moved on since.
run "$QVM" start phoenix
is "$RC" 0 "start phoenix again" || diag "$ERR"
wait_for_file_line "$plog" '^QVM-READY ' $BOOT_S "$(line_count "$plog")" || explain phoenix
QVM_STOP_AT=report-state "$QVM" poweroff phoenix --hard >"$QVM_TEST_ROOT/race.out" 2>&1 &
racer=$!
stopped=
for _ in $(seq 300); do
	[ "$(cut -d' ' -f3 "/proc/$racer/stat" 2>/dev/null)" = T ] && { stopped=1; break; }
	sleep 0.1
done
ok "poweroff --hard stops before it prints (QVM_STOP_AT=report-state)" test -n "$stopped"
after=$(line_count "$plog")
run "$QVM" start phoenix --no-wait
is "$RC" 0 "a start runs meanwhile" || diag "$ERR"
kill -CONT "$racer" 2>/dev/null
wait "$racer"
is "$?" 0 "the poweroff ends well"
like "$(cat "$QVM_TEST_ROOT/race.out")" "^phoenix: POWEROFF \(since then ACTIVE/[A-Z]+\)$" \
	"it prints POWEROFF, the state it left, and what the vm is since: $(cat "$QVM_TEST_ROOT/race.out")"
wait_for_file_line "$plog" '^QVM-READY ' $BOOT_S "$after" || explain phoenix
run "$QVM" poweroff phoenix --hard
is "$OUT" "phoenix: POWEROFF" "without a command after it, poweroff prints the state alone"
ok "... no qemu of it is left" wait_gone "$puuid" 5

# ---- nothing left ---------------------------------------------------------------------
ok "no qemu runs under the test root" test -z "$(pids_matching "$QVM_ROOT")"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
