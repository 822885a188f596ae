#!/usr/bin/env bash
# Migrations that cannot be done, between the two hosts of tests/lib/hosts.sh:
# refused by the destination's checks before anything moves (its network
# missing, the name taken there, its root a full tmpfs), failing there
# after the files went (an injected failure before the commit: the
# destination undoes what it made), and the ssh connection killed
# mid-transfer. Each time the error names the host and what failed, the vm
# is here as it was (a running guest runs again, counting), and nothing of
# it is left on the destination: no vm, no file, no tap.
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

# dst_has NAME [ROOT]: the live vms of that name on the destination
dst_has() {
	ip netns exec "$DST_NS" "$QVM" --root "${2:-$DST_ROOT}" list --json |
		json 'len([v for v in d if v["name"] == "'"$1"'"])'
}
# nothing_there LABEL ROOT: no live vm and no vm folder on the destination
nothing_there() {
	is "$(ip netns exec "$DST_NS" "$QVM" --root "$2" list --json | json 'len(d)')" 0 "$1: no vm on the destination"
	is "$(find "$2/vms" -mindepth 1 2>/dev/null)" "" "$1: ... and no vm folder or file there"
}
# goes_on LABEL: the source's guest still counts
goes_on() {
	local n
	# a console just resumed may have printed nothing yet
	wait_for_file_line "$LOG" '^QVM-COUNTER [0-9]+$' 20 0
	n=$(counter_of "$LOG")
	if wait_for_file_line "$LOG" "^QVM-COUNTER $((n + 1))\$" 20 0; then
		ok "$1: the guest runs on here ($n, $((n + 1)))"
	else
		not_ok "$1: the guest runs on here"
		diag_file "$LOG" 5
	fi
}

# a running guest on a network only the source has
"${SQ[@]}" net create srconly --bridge mbr1 >/dev/null || bail_out "net create srconly"
define run1 qvm.counter=1 --nic srconly
rid=$(vm_id run1)
LOG=$SRC_ROOT/vms/$rid/console.log
run "${SQ[@]}" start run1
is "$RC" 0 "start run1 (a nic on srconly)" || diag "$ERR"
wait_for_file_line "$LOG" '^QVM-COUNTER 2$' "$BOOT_S" 0 || explain run1

# ============================================================================
section "the destination lacks the network"
run "${SQ[@]}" migrate run1 "$DEST" "${REMOTE[@]}"
is "$RC" 1 "refused (exit 1)"
like "$ERR" "^qvm: cannot migrate 'run1' to $DEST: 10\.77\.0\.2 refused it: nic 0: there is no network 'srconly' \(qvm net create it first\)$" "... naming the host and the network"
is "$(state run1)" "ACTIVE/RUNNING" "... run1 is RUNNING here"
ok "... with no checkpoint" test ! -e "$SRC_ROOT/vms/$rid/checkpoint"
goes_on "missing network"
nothing_there "missing network" "$DST_ROOT"

# ============================================================================
section "the name is taken there"
ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT" create run1 --memory 64M >/dev/null || bail_out "create run1 there"
other=$(ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT" show run1 --json | json 'd["definition"]["uuid"]')
run "${SQ[@]}" migrate run1 "$DEST" "${REMOTE[@]}"
is "$RC" 1 "refused (exit 1)"
like "$ERR" "10\.77\.0\.2 refused it: a vm named 'run1' exists already" "... saying the name is taken there"
is "$(state run1)" "ACTIVE/RUNNING" "... run1 is RUNNING here"
goes_on "name taken"
is "$(ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT" show run1 --json | json 'd["state"] + " " + d["definition"]["uuid"]')" "PENDING $other" "... the destination's run1 is untouched"
ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT" delete run1 >/dev/null

# ============================================================================
section "the destination's root is a full tmpfs"
# mounted in sshd's mount namespace, where the destination's qvm runs
# (the namespace, and the tmpfs with it, goes with sshd)
FULL=$QVM_TEST_ROOT/full
IN_SSHD=(nsenter -t "$SSHD_PID" -m -n)
mkdir -p "$FULL"
"${IN_SSHD[@]}" mount -t tmpfs -o size=24m qvm-test-full "$FULL" || bail_out "cannot mount a tmpfs on $FULL"
on_exit "${IN_SSHD[*]} umount -l $FULL"
"${IN_SSHD[@]}" "$QVM" --root "$FULL" net create mnet --bridge mbr0 >/dev/null || bail_out "net create on the tmpfs root"
"${IN_SSHD[@]}" dd if=/dev/zero of="$FULL/filler" bs=1M count=40 2>/dev/null
define cold "" --disk 64M
cid=$(vm_id cold)
"${SQ[@]}" start cold >/dev/null && "${SQ[@]}" poweroff --hard cold >/dev/null
qemu-io -f qcow2 -c "write -P 0x33 0 8M" "$SRC_ROOT/vms/$cid/disk0.qcow2" >/dev/null
run "${SQ[@]}" migrate cold "$DEST" --remote-qvm "$QVM_TEST_ROOT/dst-qvm" --remote-root "$FULL"
is "$RC" 1 "refused (exit 1)"
like "$ERR" "10\.77\.0\.2 refused it: $FULL has [0-9.]+[KMG]? free, the vm needs " "... saying how much room there is and is needed"
is "$(state cold)" "POWEROFF" "... cold is POWEROFF here"
ok "... with its disk" test -s "$SRC_ROOT/vms/$cid/disk0.qcow2"
is "$("${IN_SSHD[@]}" "$QVM" --root "$FULL" list --json | json 'len(d)')" 0 "full tmpfs: no vm there"
is "$("${IN_SSHD[@]}" find "$FULL/vms" -mindepth 1)" "" "full tmpfs: ... and no vm folder or file there"

# ============================================================================
section "a failure on the destination after the files went"
cat >"$QVM_TEST_ROOT/dst-qvm-fail" <<EOF
#!/bin/sh
export QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT QVM_FAIL_AT=receive-before-commit
exec $QVM "\$@"
EOF
chmod 755 "$QVM_TEST_ROOT/dst-qvm-fail"
FAIL=(--remote-qvm "$QVM_TEST_ROOT/dst-qvm-fail" --remote-root "$DST_ROOT")
run "${SQ[@]}" migrate cold "$DEST" "${FAIL[@]}"
is "$RC" 1 "a POWEROFF vm: it fails (exit 1)"
like "$ERR" "10\.77\.0\.2 could not take it: injected failure at 'receive-before-commit'" "... naming the host and the failure"
is "$(state cold)" "POWEROFF" "... cold is POWEROFF here"
ok "... its marker still on its disk" qemu-io -f qcow2 -c "read -P 0x33 0 8M" "$SRC_ROOT/vms/$cid/disk0.qcow2"
is "$(dst_has cold)" 0 "... no vm cold on the destination"
ok "... nor its files" test -z "$(find "$DST_ROOT/vms" -name 'disk*' 2>/dev/null)"

ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT" net create srconly --bridge mbr1 >/dev/null
run "${SQ[@]}" migrate run1 "$DEST" "${FAIL[@]}"
is "$RC" 1 "a running guest (network srconly made there first): fails"
like "$ERR" "could not take it: injected failure at 'receive-before-commit'.*; it runs here again" "... and says it runs here again"
wait_state run1 ACTIVE/RUNNING 30
is "$STATE" "ACTIVE/RUNNING" "... run1 is RUNNING here"
goes_on "failure after the files went"
ok "... its checkpoint was removed" test ! -e "$SRC_ROOT/vms/$rid/checkpoint"
is "$(dst_has run1)" 0 "... no vm run1 on the destination"
is "$(hosts_leftovers | grep -c "^$DST_NS")" 0 "... no tap of it there"

# ============================================================================
section "the connection drops after the commit"
# qvm stops itself once the commit is sent; the destination commits and
# answers, then the connection drops: the resume goes over a new one
# stopped_pid PID: wait (up to 180 s) until PID is stopped; 0 when it is
stopped_pid() {
	local deadline=$((SECONDS + 180))
	while [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != T ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.2
	done
}
QVM_STOP_AT=migrate-after-commit "${SQ[@]}" migrate run1 "$DEST" "${REMOTE[@]}" >"$QVM_TEST_ROOT/mig.out" 2>"$QVM_TEST_ROOT/mig.err" &
MPID=$!
ok "the migrating qvm stopped after the commit (QVM_STOP_AT)" stopped_pid "$MPID"
QVM_CMD=("${DQ[@]}")
wait_state run1 SUSPENDED 30
is "$STATE" SUSPENDED "... the destination committed: SUSPENDED there"
hosts_kill_sessions
kill -CONT "$MPID"
wait "$MPID"
is "$?" 0 "the migration finishes (exit 0)" || diag_file "$QVM_TEST_ROOT/mig.err" 3
wait_state run1 ACTIVE/RUNNING 30
is "$STATE" ACTIVE/RUNNING "... resumed on the destination over a new connection"
LOG=$DST_ROOT/vms/$(vm_id run1)/console.log
goes_on "after the connection dropped"
QVM_CMD=("${SQ[@]}")
is "$(state "$rid")" DONE "... the source: DONE"
run "${DQ[@]}" delete run1

section "the commit's answer lost"
# the destination stops itself once it committed, before it answers; the
# connection drops: the source asks again over a new one and finishes
printf '#!/bin/sh\nexport QVM_ACCEL=tcg QVM_DISK_ROOTS=%s QVM_STOP_AT=receive-after-commit\nexec %s "$@"\n' \
	"$G:$QVM_TEST_ROOT" "$QVM" >"$QVM_TEST_ROOT/dst-qvm-stop"
chmod 755 "$QVM_TEST_ROOT/dst-qvm-stop"
"${SQ[@]}" migrate cold "$DEST" --remote-qvm "$QVM_TEST_ROOT/dst-qvm-stop" --remote-root "$DST_ROOT" >"$QVM_TEST_ROOT/mig.out" 2>"$QVM_TEST_ROOT/mig.err" &
MPID=$!
deadline=$((SECONDS + 120))
RPID=
while [ -z "$RPID" ] && [ $SECONDS -lt $deadline ]; do
	for p in $(pids_matching "$DST_ROOT __receive"); do
		[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = T ] && RPID=$p
	done
	sleep 0.2
done
ok "the receiving qvm stopped after its commit (QVM_STOP_AT)" test -n "$RPID"
hosts_kill_sessions
kill -CONT "$RPID"
wait "$MPID"
is "$?" 0 "the migration finishes (exit 0)" || diag_file "$QVM_TEST_ROOT/mig.err" 3
is "$(state "$cid")" DONE "... the source: DONE"
QVM_CMD=("${DQ[@]}")
is "$(state cold)" POWEROFF "... POWEROFF on the destination"
QVM_CMD=("${SQ[@]}")
run "${DQ[@]}" delete cold

# ============================================================================
section "the destination's qvm killed before its commit"
define cold2 "" --disk 16M
c2=$(vm_id cold2)
"${SQ[@]}" start cold2 >/dev/null && "${SQ[@]}" poweroff --hard cold2 >/dev/null
printf '#!/bin/sh\nexport QVM_ACCEL=tcg QVM_DISK_ROOTS=%s QVM_CRASH_AT=receive-after-define\nexec %s "$@"\n' \
	"$G:$QVM_TEST_ROOT" "$QVM" >"$QVM_TEST_ROOT/dst-qvm-crash"
chmod 755 "$QVM_TEST_ROOT/dst-qvm-crash"
run "${SQ[@]}" migrate cold2 "$DEST" --remote-qvm "$QVM_TEST_ROOT/dst-qvm-crash" --remote-root "$DST_ROOT"
is "$RC" 1 "the migration fails (exit 1)"
like "$ERR" "cannot migrate 'cold2' to $DEST: .*the destination's qvm ended" "... saying the destination's qvm ended"
is "$(state cold2)" POWEROFF "... cold2 is POWEROFF here"
half=$(ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT" list --json | json '[v["id"] for v in d if v["name"] == "cold2"][0]')
run "${DQ[@]}" start cold2
is "$RC" 1 "a start of what it left there is refused"
is "$(ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT" show "$half" --json | json 'd["state"] + " " + d["reason"]')" \
	"DONE the receive from vm was interrupted before its commit; rolled back" "... the start rolled the half received vm back first"
ok "... its files are gone" test ! -e "$DST_ROOT/vms/$half"
run "${SQ[@]}" migrate cold2 "$DEST" "${REMOTE[@]}"
is "$RC" 0 "the migration again: done" || diag "$ERR"
QVM_CMD=("${DQ[@]}")
is "$(state cold2)" POWEROFF "... POWEROFF there"
QVM_CMD=("${SQ[@]}")
run "${DQ[@]}" delete cold2

# ============================================================================
section "sshd killed mid-transfer"
# a guest with a disk: qvm stops itself after the disk, before its
# checkpoint, until the connection is gone
define run2 qvm.counter=1 --disk 16M
LOG=$SRC_ROOT/vms/$(vm_id run2)/console.log
run "${SQ[@]}" start run2
is "$RC" 0 "start run2 (a disk)" || diag "$ERR"
wait_for_file_line "$LOG" '^QVM-COUNTER 2$' "$BOOT_S" 0 || explain run2
QVM_STOP_AT=migrate-after-disk "${SQ[@]}" migrate run2 "$DEST" "${REMOTE[@]}" >"$QVM_TEST_ROOT/mig.out" 2>"$QVM_TEST_ROOT/mig.err" &
MPID=$!
# (a suspend and a 256 MiB checkpoint under TCG on a busy machine: allow time)
deadline=$((SECONDS + 180))
while [ "$(awk '{print $3}' "/proc/$MPID/stat" 2>/dev/null)" != T ] && [ $SECONDS -lt $deadline ]; do
	sleep 0.2
done
[ "$(awk '{print $3}' "/proc/$MPID/stat" 2>/dev/null)" = T ] && STOPPED=$MPID
ok "the migrating qvm stopped after the disk (QVM_STOP_AT)" test -n "${STOPPED:-}"
hosts_kill_sshd
kill -CONT "$MPID" 2>/dev/null
wait "$MPID"
is "$?" 1 "the migration fails (exit 1)"
like "$(cat "$QVM_TEST_ROOT/mig.err")" "cannot migrate 'run2' to $DEST: .*it runs here again" "... and says the guest runs here again"
wait_state run2 ACTIVE/RUNNING 30
is "$STATE" "ACTIVE/RUNNING" "... run2 is RUNNING here"
goes_on "sshd killed"
for p in $(pids_matching "$DST_ROOT __receive"); do
	wait_pid_gone "$p" 20
done
is "$(dst_has run2)" 0 "... no vm run2 on the destination"
ok "... nor its files" test -z "$(find "$DST_ROOT/vms" -name '*.part' -o -name 'disk*' 2>/dev/null)"

# ============================================================================
section "nothing left"
"${SQ[@]}" delete run2 >/dev/null
is "$(hosts_leftovers | tr -d ' ')" "" "no tap, socket or held lock on either host"
is "$(qemus_on "$SRC_ROOT")$(qemus_on "$DST_ROOT")" "00" "no qemu on either host"
done_testing
