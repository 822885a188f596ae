#!/usr/bin/env bash
# The migrating qvm killed on the source (QVM_CRASH_AT, as a kill -9) at
# each step, settled by the next command: after it suspended the guest for
# the move, the vm is SUSPENDED here with a complete checkpoint, the
# destination undoes what it had begun (no vm, no file), the guest resumes
# here and goes on counting, and the migration done again succeeds. A
# POWEROFF vm killed after the offer and after its files stays here
# (nothing there), as when the destination's qvm dies between defining the
# vm and holding it; after the commit was sent the next command here asks the
# destination (it has it: DONE here, files gone; while it cannot be asked,
# start is refused here); after the hand-over record and after DONE it is
# the destination's (DONE here, files gone). Two hosts of tests/lib/hosts.sh.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
unset QVM_CRASH_AT QVM_FAIL_AT QVM_STOP_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS
export QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT
. "$(dirname "$0")/../lib/hosts.sh"
hosts_setup
BOOT_S=90
VM_POLL_S=0.3
QVM_CMD=("${SQ[@]}")

define k qvm.counter=1 --disk 16M --nic mnet
kid=$(vm_id k)
LOG=$SRC_ROOT/vms/$kid/console.log
run "${SQ[@]}" start k
is "$RC" 0 "start k" || diag "$ERR"
wait_for_file_line "$LOG" '^QVM-COUNTER 2$' "$BOOT_S" 0 || explain k

section "killed after the suspend"
QVM_CRASH_AT=migrate-after-suspend run "${SQ[@]}" migrate k "$DEST" "${REMOTE[@]}"
is "$RC" 99 "the migrating qvm dies at migrate-after-suspend"
is "$(state k)" SUSPENDED "k is SUSPENDED here"
ck=$SRC_ROOT/vms/$kid/checkpoint
is "$(sha256sum "$ck" 2>/dev/null | cut -d' ' -f1)" "$("${SQ[@]}" show k --json | json '(d["checkpoint"] or {}).get("sha256", "")')" "... with its checkpoint complete"
for p in $(pids_matching "$DST_ROOT __receive"); do
	wait_pid_gone "$p" 20
done
is "$(ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT" list --json | json 'len(d)')" 0 "no vm on the destination"
is "$(find "$DST_ROOT/vms" -mindepth 1 2>/dev/null)" "" "... and no file there"
N=$(counter_of "$LOG")
run "${SQ[@]}" resume k
is "$RC" 0 "resume k here" || diag "$ERR"
if wait_for_file_line "$LOG" "^QVM-COUNTER $((N + 1))\$" 30 0; then
	ok "it goes on counting here ($N, $((N + 1)))"
else
	not_ok "it goes on counting here"
	diag_file "$LOG" 5
fi

section "done again"
run "${SQ[@]}" migrate k "$DEST" "${REMOTE[@]}"
is "$RC" 0 "the migration done again succeeds" || diag "$ERR"
is "$(state "$kid")" DONE "... DONE here"
QVM_CMD=("${DQ[@]}")
wait_state k ACTIVE/RUNNING 30
is "$STATE" ACTIVE/RUNNING "... running there"
run "${DQ[@]}" delete k
QVM_CMD=("${SQ[@]}")

section "a POWEROFF vm killed at each step"
receives_gone() {
	local p
	for p in $(pids_matching "$DST_ROOT __receive"); do
		wait_pid_gone "$p" 20
	done
}
dq_count() { "${DQ[@]}" list --json | json 'len(d)'; }
# crash POINT: p killed there; ID of the vm here
crash() {
	QVM_CRASH_AT=$1 run "${SQ[@]}" migrate p "$DEST" "${REMOTE[@]}"
	is "$RC" 99 "the migrating qvm dies at $1"
	receives_gone
}
# stays_here POINT: it is POWEROFF here, startable, nothing there
stays_here() {
	is "$(state p)" POWEROFF "$1: p stays POWEROFF here"
	is "$(dq_count)" 0 "... no vm on the destination"
	is "$(find "$DST_ROOT/vms" -mindepth 1 2>/dev/null)" "" "... and no file there"
}
# went_there POINT ID: DONE here with its folder gone, POWEROFF there
went_there() {
	is "$(state "$2")" DONE "$1: DONE here once settled"
	like "$("${SQ[@]}" history "$2" 2>&1 | grep DONE)" "migrated to 10.77.0.2" "... 'migrated to 10.77.0.2'"
	ok "... its folder here is gone" test ! -e "$SRC_ROOT/vms/$2"
	QVM_CMD=("${DQ[@]}")
	is "$(state p)" POWEROFF "... POWEROFF there"
	run "${DQ[@]}" delete p
	is "$RC" 0 "... and deleted there" || diag "$ERR"
	QVM_CMD=("${SQ[@]}")
}
# a POWEROFF vm p (a created vm is PENDING: started and powered off)
mkp() {
	define p "" --disk 16M --nic mnet
	pid=$(vm_id p)
	"${SQ[@]}" start p >/dev/null && "${SQ[@]}" poweroff --hard p >/dev/null ||
		bail_out "cannot make p POWEROFF"
}
mkp
for point in migrate-after-offer migrate-after-files; do
	crash "$point"
	stays_here "$point"
done

# the destination's qvm killed between defining the vm and holding it
printf '#!/bin/sh\nexport QVM_ACCEL=tcg QVM_DISK_ROOTS=%s QVM_CRASH_AT=receive-after-create\nexec %s "$@"\n' \
	"$G:$QVM_TEST_ROOT" "$QVM" >"$QVM_TEST_ROOT/dst-qvm-crash"
chmod 755 "$QVM_TEST_ROOT/dst-qvm-crash"
run "${SQ[@]}" migrate p "$DEST" --remote-qvm "$QVM_TEST_ROOT/dst-qvm-crash" --remote-root "$DST_ROOT"
is "$RC" 1 "the destination's qvm dies at receive-after-create: the migration fails" || diag "$ERR"
receives_gone
# any writer's open there rolls the HOLD vm back (a create there)
QVM_CMD=("${DQ[@]}")
define q ""
run "${DQ[@]}" delete q
QVM_CMD=("${SQ[@]}")
stays_here receive-after-create

crash migrate-after-commit
kill -STOP "$SSHD_PID"
run "${SQ[@]}" start p
ok "with the destination not answering, start is refused here" test "$RC" != 0
like "$ERR" "cannot be asked whether it took it" "... saying the destination cannot be asked" || diag "$ERR"
kill -CONT "$SSHD_PID"
run "${SQ[@]}" start p
like "$ERR" "is on 10.77.0.2 now" "... saying where it is now" || diag "$ERR"
is "$(qemus_on "$SRC_ROOT")" 0 "once it answers, the next start settles it: not started here"
went_there migrate-after-commit "$pid"

for point in migrate-after-handover migrate-after-done; do
	mkp
	crash "$point"
	run "${SQ[@]}" start p
	diag "start p: $ERR"
	is "$(qemus_on "$SRC_ROOT")" 0 "$point: start here does not start it"
	# a DONE vm is not found by name: the next command that writes
	# on this host settles it (any writer's open)
	define q ""
	run "${SQ[@]}" delete q
	went_there "$point" "$pid"
done

section "a running guest killed after the commit"
define w qvm.counter=1 --nic mnet
wid=$(vm_id w)
WLOG=$SRC_ROOT/vms/$wid/console.log
run "${SQ[@]}" start w
is "$RC" 0 "start w" || diag "$ERR"
wait_for_file_line "$WLOG" '^QVM-COUNTER 2$' "$BOOT_S" 0 || explain w
QVM_CRASH_AT=migrate-after-commit run "${SQ[@]}" migrate w "$DEST" "${REMOTE[@]}"
is "$RC" 99 "the migrating qvm dies at migrate-after-commit"
receives_gone
N=$(counter_of "$WLOG")
run "${SQ[@]}" resume w
ok "resume here is refused: the destination has it" test "$RC" != 0
like "$ERR" "is on 10.77.0.2 now" "... saying where it is now" || diag "$ERR"
is "$(state "$wid")" DONE "... DONE here"
is "$(qemus_on "$SRC_ROOT")" 0 "... no qemu here"
ok "... its folder here is gone" test ! -e "$SRC_ROOT/vms/$wid"
QVM_CMD=("${DQ[@]}")
is "$(state w)" SUSPENDED "SUSPENDED there"
run "${DQ[@]}" resume w
is "$RC" 0 "resume w there" || diag "$ERR"
DLOG=$DST_ROOT/vms/$(vm_id w)/console.log
if wait_for_file_line "$DLOG" "^QVM-COUNTER $((N + 1))\$" 30 0; then
	ok "it counts on there from $N"
else
	not_ok "it counts on there from $N"
	diag_file "$DLOG" 5
fi
run "${DQ[@]}" delete w
QVM_CMD=("${SQ[@]}")

section "nothing left"
is "$(hosts_leftovers | tr -d ' ')" "" "no tap, socket or held lock on either host"
is "$(qemus_on "$SRC_ROOT")$(qemus_on "$DST_ROOT")" "00" "no qemu on either host"
done_testing
