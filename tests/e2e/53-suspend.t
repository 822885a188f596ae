#!/usr/bin/env bash
# Checkpoints on one host: suspend and resume (the guest goes on counting
# from where it was saved: no reboot, no reset), stop and start, a host
# reboot after suspend (every process and the runtime folder gone), undeploy
# then start (a fresh boot), a corrupt or truncated checkpoint (refused
# before qemu reads it, kept, the vm stays SUSPENDED), poweroff
# --discard-checkpoint, what `qvm host` counts, and qvm or the supervisor
# dying at every step of suspend and resume (afterwards the guest runs, or
# the vm is SUSPENDED with a complete checkpoint: never both, never
# neither). One guest, printing QVM-COUNTER n every second.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS

define s qvm.counter=1
id=$(vm_id s)
uuid=$(uuid_of s)
LOG=$QVM_ROOT/vms/$id/console.log
CKPT=$QVM_ROOT/vms/$id/checkpoint

# last_counter: the last n the guest printed
last_counter() { tr -d '\r' <"$LOG" | grep -a '^QVM-COUNTER ' | tail -1 | cut -d' ' -f2; }
readies() { tr -d '\r' <"$LOG" | grep -a -c '^QVM-READY '; }
# recorded_ckpt FIELD: the checkpoint's size or sha256 as the journal holds it
recorded_ckpt() { "$QVM" show s --json | json '(d["checkpoint"] or {}).get("'"$1"'", "")'; }
pass() { ok "$1" true; }
isnt_rc() { [ "$RC" != 0 ]; }
committed() { "$QVM" host --json | json 'd["memory_committed"]'; }
# goes_on LABEL: after a resume the guest prints the next n of its counter
# (it was saved at $N), and it did not boot again
goes_on() {
	local next=$((N + 1))
	if wait_for_file_line "$LOG" "^QVM-COUNTER $next\$" 30 "$LINES"; then
		pass "$1: the guest goes on counting ($N, then $next)"
	else
		not_ok "$1: the guest goes on counting ($N, then $next)"
		diag_file "$LOG" 5
	fi
	is "$(readies)" "$READY" "$1: ... without booting again"
	ok "$1: ... and without starting over" \
		test -z "$(tail -n "+$((LINES + 1))" "$LOG" | tr -d '\r' | grep -a -E '^QVM-COUNTER (1|2)$')"
}
# saved: note where the guest was when it was saved
saved() {
	N=$(last_counter)
	LINES=$(line_count "$LOG")
}
# complete: the checkpoint on disk is the one the journal recorded
complete() {
	is "$(stat -c %s "$CKPT" 2>/dev/null)" "$(recorded_ckpt size)" "$1: the checkpoint's size is the one recorded"
	is "$(sha256sum "$CKPT" 2>/dev/null | cut -d' ' -f1)" "$(recorded_ckpt sha256)" "$1: ... and its SHA-256"
}

# ============================================================================
section "suspend and resume"
run "$QVM" start s
is "$RC" 0 "start s" || diag "$ERR"
wait_for_file_line "$LOG" '^QVM-COUNTER 3$' "$BOOT_S" || bail_out "the guest does not count"
READY=$(readies)
run "$QVM" suspend s
is "$RC" 0 "suspend s" || diag "$ERR"
is "$OUT" "s: SUSPENDED" "suspend says SUSPENDED"
saved
is "$(qemus "$uuid")" 0 "no qemu runs s"
is "$(sups "$id")" 0 "no supervisor of s runs"
ok "the checkpoint is in the vm's folder" test -s "$CKPT"
complete "suspended"
like "$(reasons s | tail -3)" "checkpoint written \([0-9]+ bytes\)" "history says the checkpoint was written"
is "$(committed)" $((256 << 20)) "qvm host still counts the suspended vm's memory"
run "$QVM" pause s
ok "pause of a SUSPENDED vm is refused" isnt_rc
sleep 2
run "$QVM" resume s
is "$RC" 0 "resume s" || diag "$ERR"
is "$OUT" "s: ACTIVE/RUNNING" "resume says RUNNING"
goes_on "resume"
ok "the checkpoint is removed once the guest runs" test ! -e "$CKPT"
is "$(recorded_ckpt size)" "" "... and the journal no longer names one"
like "$(reasons s | tail -3)" "resumed from its checkpoint" "history: resumed from its checkpoint"

# ============================================================================
section "stop and start"
run "$QVM" stop s
is "$RC" 0 "stop s" || diag "$ERR"
is "$(state s)" STOPPED "s is STOPPED"
saved
complete "stopped"
is "$(committed)" 0 "qvm host no longer counts the stopped vm"
run "$QVM" start s
is "$RC" 0 "start of a STOPPED vm resumes it" || diag "$ERR"
goes_on "start after stop"

# ============================================================================
section "a host reboot after suspend"
run "$QVM" suspend s
is "$RC" 0 "suspend s" || diag "$ERR"
saved
# what a reboot takes: every process of the root (none should be left) and
# the runtime folder (a tmpfs on a real host)
for p in $(pids_matching "$QVM_ROOT") $(pids_matching "$uuid"); do kill -9 "$p"; done
rm -rf "$QVM_ROOT/run"
run "$QVM" resume s
is "$RC" 0 "resume after the reboot" || diag "$ERR"
goes_on "resume after a reboot"

# ============================================================================
section "a corrupt, truncated or swapped checkpoint"
run "$QVM" suspend s
is "$RC" 0 "suspend s" || diag "$ERR"
saved
cp "$CKPT" "$QVM_TEST_ROOT/good"
size=$(stat -c %s "$CKPT")
printf 'X' | dd of="$CKPT" bs=1 seek=$((size / 2)) conv=notrunc status=none
run "$QVM" resume s
is "$RC" 1 "resume with a corrupt checkpoint fails"
like "$ERR" "cannot resume 's': its checkpoint .* does not match the SHA-256 recorded" \
	"... saying it does not match its SHA-256"
is "$(state s)" SUSPENDED "... s stays SUSPENDED"
is "$(qemus "$uuid")" 0 "... no qemu was started"
is "$(stat -c %s "$CKPT")" "$size" "... and the file is kept"
truncate -s $((size - 4096)) "$CKPT"
run "$QVM" start s
is "$RC" 1 "start with a truncated checkpoint fails"
like "$ERR" "cannot start 's': its checkpoint .* is $((size - 4096)) bytes, but $size were recorded" \
	"... saying how much is missing"
is "$(state s)" SUSPENDED "... s stays SUSPENDED"
ok "... the file is kept" test -e "$CKPT"
head -c "$size" /dev/zero >"$CKPT"
run "$QVM" resume s
is "$RC" 1 "resume with another file of the same size in its place fails"
is "$(state s)" SUSPENDED "... s stays SUSPENDED"
run "$QVM" poweroff s
is "$RC" 1 "poweroff of a SUSPENDED vm without --discard-checkpoint is refused"
like "$ERR" "add --discard-checkpoint" "... saying how to drop it"
cp "$QVM_TEST_ROOT/good" "$CKPT"
run "$QVM" resume s
is "$RC" 0 "with the good checkpoint back, resume works" || diag "$ERR"
goes_on "resume of the restored checkpoint"

# ============================================================================
section "poweroff --discard-checkpoint, undeploy, start afresh"
run "$QVM" suspend s
run "$QVM" poweroff s --discard-checkpoint
is "$RC" 0 "poweroff --discard-checkpoint of a SUSPENDED vm" || diag "$ERR"
is "$(state s)" POWEROFF "s is POWEROFF"
ok "its checkpoint is gone" test ! -e "$CKPT"
is "$(committed)" $((256 << 20)) "qvm host counts a POWEROFF vm (its resources stay reserved)"
run "$QVM" undeploy s
is "$RC" 0 "undeploy of a POWEROFF vm" || diag "$ERR"
is "$(state s)" UNDEPLOYED "s is UNDEPLOYED"
is "$(committed)" 0 "qvm host does not count an UNDEPLOYED vm"
n=$(line_count "$LOG")
run "$QVM" start s
is "$RC" 0 "start of an UNDEPLOYED vm" || diag "$ERR"
ok "... boots afresh" wait_for_file_line "$LOG" '^QVM-READY ' "$BOOT_S" "$n"
ok "... and counts from 1" wait_for_file_line "$LOG" '^QVM-COUNTER 1$' 10 "$n"
run "$QVM" undeploy s --timeout 60
is "$RC" 0 "undeploy of a running vm (ACPI shutdown)" || diag "$ERR"
is "$(state s)" UNDEPLOYED "s is UNDEPLOYED"
is "$(qemus "$uuid")" 0 "no qemu runs s"
ok "no checkpoint was written" test ! -e "$CKPT"
n=$(line_count "$LOG")
run "$QVM" resume s
is "$RC" 0 "resume of an UNDEPLOYED vm boots it" || diag "$ERR"
ok "... afresh" wait_for_file_line "$LOG" '^QVM-COUNTER 2$' "$BOOT_S" "$n"
READY=$(readies)

# ============================================================================
section "crash points of suspend"
# after each: exactly one of (the guest runs, no checkpoint) and (SUSPENDED,
# no qemu, the checkpoint complete); the next command settles which
settled_one() {
	local label=$1 want=$2
	run "$QVM" list
	wait_state s "$want" 20
	is "$STATE" "$want" "$label: s is $want" || diag "$(reasons s | tail -6)"
	if [ "$want" = SUSPENDED ]; then
		is "$(qemus "$uuid")" 0 "$label: no qemu runs it"
		complete "$label"
	else
		is "$(qemus "$uuid")" 1 "$label: one qemu runs it"
		ok "$label: no checkpoint is left" test ! -e "$CKPT" -a ! -e "$CKPT.part"
		is "$(recorded_ckpt size)" "" "$label: none is recorded"
	fi
}
for p in suspend-after-intent suspend-after-stop suspend-after-getfd suspend-after-migrate-start \
	suspend-after-migrate suspend-after-write suspend-after-record suspend-after-quit; do
	saved
	QVM_CRASH_AT=$p run "$QVM" suspend s
	is "$RC" 99 "$p: qvm died there"
	case $p in
	suspend-after-record | suspend-after-quit)
		settled_one "$p" SUSPENDED
		run "$QVM" resume s
		is "$RC" 0 "$p: resume" || diag "$ERR"
		;;
	*)
		settled_one "$p" ACTIVE/RUNNING
		;;
	esac
	goes_on "$p"
	is "$(open_intents "$id")" "" "$p: no intent is left open"
done

# ============================================================================
section "crash points of resume"
for p in resume-after-intent supervisor-after-qemu resume-after-getfd resume-after-incoming \
	resume-after-running resume-after-unlink; do
	run "$QVM" suspend s
	is "$RC" 0 "$p: suspend s" || diag "$ERR"
	saved
	QVM_CRASH_AT=$p run "$QVM" resume s
	ok "$p: the resume did not end well" isnt_rc
	case $p in
	resume-after-running | resume-after-unlink)
		settled_one "$p" ACTIVE/RUNNING
		;;
	*)
		settled_one "$p" SUSPENDED
		run "$QVM" resume s
		is "$RC" 0 "$p: resume" || diag "$ERR"
		;;
	esac
	goes_on "$p"
	is "$(open_intents "$id")" "" "$p: no intent is left open"
done

run "$QVM" suspend s
run "$QVM" delete s
is "$RC" 0 "delete of a SUSPENDED vm" || diag "$ERR"
ok "its checkpoint goes with it" test ! -e "$CKPT"
is "$(runtime_left)" "" "nothing of the runtime is left"
done_testing
