#!/usr/bin/env bash
# A hung QEMU blocks only its own VM: with one VM's QEMU stopped (SIGSTOP),
# list and show work, another VM can be stopped and started, and a command
# on the hung VM fails with a timeout message instead of hanging; once QEMU
# runs again (SIGCONT) so does the VM. On the way, with the same two guests:
# create --hold then start, create --start, update of a running VM's memory
# refused, -v's trace of QMP commands and replies, and QEMU's error class
# in a --json error. Two guests at most.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
src=${QVM_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
qmp=$src/tests/lib/qmp.py
NL=$'\n'

# From tests/lib/vm.sh: run, json, vm_create, define, vm_id, uuid_of,
# state, wait_state, settled, explain.
# No command here may hang: each runs under `timeout`, and a hang (124)
# fails its check like any other wrong status.
BOUND=120
brun() { run timeout "$BOUND" "$@"; }
ready() { # ready NAME: the guest printed its READY line
	local log
	log=$QVM_ROOT/vms/$(vm_id "$1")/console.log
	if wait_for_file_line "$log" '^QVM-READY uptime=' "$BOOT_S"; then
		ok "$1: the guest booted"
	else
		not_ok "$1: the guest booted"
		explain "$1"
		bail_out "the guest does not boot under qvm"
	fi
}

# ---- create --hold, start from HOLD -----------------------------------------
vm_create a "" --hold
is "$RC" 0 "create --hold" || diag "$ERR"
is "$(state a)" HOLD "a: HOLD"
brun "$QVM" start a
is "$RC" 0 "start works from HOLD" || { diag "$ERR"; explain a; }
like "$OUT" "^a: ACTIVE/(BOOT|RUNNING)$" "start prints the state reached"
ready a
aid=$(vm_id a)
auuid=$(uuid_of a)

# ---- create --start ----------------------------------------------------------
vm_create b "" --start
is "$RC" 0 "create --start" || { diag "$ERR"; explain b; }
like "$OUT" "^[0-9]+${NL}b: ACTIVE/(BOOT|RUNNING)$" "create --start prints the id, then what start prints"
is "$(state b)" "ACTIVE/RUNNING" "b: ACTIVE/RUNNING"
ready b
bid=$(vm_id b)
buuid=$(uuid_of b)
run "$QVM" create c --memory 256M --hold --start
is "$RC" 2 "create --hold --start is a usage error"
is "$(qemus "$buuid")" 1 "one qemu runs b"

# ---- update of a running vm -------------------------------------------------
run "$QVM" update a memory=1G
is "$RC" 1 "update memory of a running vm is refused"
like "$ERR" "only while the vm is off, and it is ACTIVE/RUNNING; power it off first" "... saying why"
run "$QVM" update a owner=eve
is "$RC" 0 "user data of a running vm can change"

# ---- -v traces QMP --------------------------------------------------------------
brun "$QVM" -v pause a
is "$RC" 0 "pause -v" || diag "$ERR"
like "$ERR" 'qvm: trace: qmp -> \{"execute": ?"stop"' "-v traces the command sent to qemu"
like "$ERR" "qvm: trace: qmp <- stop: return" "... the class of its reply"
like "$ERR" "qvm: trace: journal: record [0-9]+ type=state id=$aid state=ACTIVE lcm=PAUSED" \
	"... and the journal record"
brun "$QVM" unpause a
is "$RC:$ERR" "0:" "without -v, unpause prints nothing on stderr"

# ---- a QMP error's class in --json ------------------------------------------
# A device named as qvm names a new disk's, made behind qvm's back: QEMU
# refuses qvm's device_add (a real QMP error, GenericError). (A lone node of
# that name would not do: qvm takes it for one a refused detach left, and
# drops it.)
"$PY" "$qmp" "$QVM_ROOT/run/$aid/qmp.sock" blockdev-add \
	'{"driver": "null-co", "node-name": "intruder", "size": 1048576}' >/dev/null &&
	"$PY" "$qmp" "$QVM_ROOT/run/$aid/qmp.sock" device_add \
		'{"driver": "virtio-blk-pci", "drive": "intruder", "id": "disk0"}' >/dev/null
ok "a device disk0 was added behind qvm's back" test $? = 0
brun "$QVM" --json disk-attach a --size 16M
is "$RC" 1 "disk-attach fails on qemu's refusal"
is "$(json 'd["class"], "error" in d' <<<"$ERR" 2>/dev/null)" "GenericError True" \
	"the --json error carries qemu's error class" || diag "$ERR"
is "$(state a)" "ACTIVE/RUNNING" "a is running as before"

# ---- a's qemu hangs -------------------------------------------------------------
apid=$("$QVM" show a --json | json 'd["qemu_pid"]')
ok "a's qemu pid is known" test -n "$apid" -a -d "/proc/$apid"
on_exit "kill -CONT $apid"
kill -STOP "$apid"
section "a's qemu ($apid) stopped"
brun "$QVM" list
is "$RC" 0 "list works while a's qemu hangs" || diag "$ERR"
like "$OUT" " $aid +a +runn " "... and lists a"
like "$OUT" " $bid +b +runn " "... and b"
brun "$QVM" show a
is "$RC" 0 "show of the hung vm works"
like "$OUT" "STATE +ACTIVE/RUNNING" "... from the journal"
brun "$QVM" poweroff b --hard
is "$RC" 0 "another vm powers off" || diag "$ERR"
is "$(state b)" POWEROFF "b: POWEROFF"
brun "$QVM" start b
is "$RC" 0 "... and starts again" || { diag "$ERR"; explain b; }
is "$(state b)" "ACTIVE/RUNNING" "b: ACTIVE/RUNNING"
brun "$QVM" pause a
is "$RC" 1 "a command on the hung vm fails instead of hanging"
like "$ERR" "cannot reach the qemu of 'a': .*no qmp greeting from qemu within [0-9]+ ms \\(qemu is hung" \
	"... with a message saying qemu does not answer: ${ERR%%$'\n'*}"
is "$(state a)" "ACTIVE/RUNNING" "a's recorded state is untouched"
brun "$QVM" pause b
is "$RC" 0 "b still obeys while a hangs"
brun "$QVM" unpause b

# ---- a's qemu runs again --------------------------------------------------------
kill -CONT "$apid"
section "a's qemu continued"
brun "$QVM" pause a
is "$RC" 0 "once qemu runs again, so do commands on a" || diag "$ERR"
is "$(state a)" "ACTIVE/PAUSED" "a: ACTIVE/PAUSED"
brun "$QVM" unpause a
is "$(state a)" "ACTIVE/RUNNING" "a: ACTIVE/RUNNING"

# ---- clean up -------------------------------------------------------------------
brun "$QVM" delete a
is "$RC" 0 "delete a" || diag "$ERR"
brun "$QVM" delete b
is "$RC" 0 "delete b" || diag "$ERR"
settled "$aid" "$aid" "$auuid" DONE "a"
settled "$bid" "$bid" "$buuid" DONE "b"

is "$(pids_matching "$QVM_ROOT")" "" "no qemu or supervisor runs under the test root at the end"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
