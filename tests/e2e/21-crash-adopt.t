#!/usr/bin/env bash
# Supervisors and commands killed while VMs run: kill -9 of a supervisor
# (adopted by the next qvm), of a supervisor and its QEMU (FAILED), qvm or the
# supervisor dying at every crash point of start, shutdown, poweroff and
# delete (afterwards adopted as running or fully rolled back, never half
# started, never running twice), a reused pid (never adopted nor signalled),
# 20 starts of one VM at once, and a caller blocked on the VM lock.
# Each boot costs ~3 s of TCG: VMs are reused where the steps allow.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS

# From tests/lib/vm.sh: run, json, define NAME (a vm booting the test
# guest), vm_id, uuid_of, state, wait_state, reasons, last_seq, qemus, sups,
# settled NAME|ID ID UUID STATE LABEL, section.
# retire NAME: stop and delete a vm a failed check left behind
retire() {
	"$QVM" show "$1" >/dev/null 2>&1 || return 0
	"$QVM" poweroff --hard "$1" >/dev/null 2>&1
	"$QVM" delete "$1" >/dev/null 2>&1
}
# recorded NAME|ID FIELD: a runtime field the journal holds for the vm
# (qemu_pid, supervisor_pid, ...; 0 for none), as show prints it; show, like
# every read, first settles a vm nothing drives
recorded() {
	"$QVM" show "$1" --json | json 'd["'"$2"'"] or 0'
}
alive() { [ -d "/proc/$1" ] && ! wait_pid_gone "$1" 0; }
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }
# wait_ready ID AFTER_LINE: the guest printed its ready marker (ACPI works then)
wait_ready() { wait_for_file_line "$QVM_ROOT/vms/$1/console.log" '^QVM-READY ' "$BOOT_S" "$2"; }

# running NAME LABEL: exactly one QEMU and one supervisor run the vm, the
# journal says RUNNING and names them
running() {
	local name=$1 label=$2 id uuid q s
	id=$(vm_id "$name")
	uuid=$(uuid_of "$name")
	wait_state "$name" ACTIVE/RUNNING 30
	is "$STATE" ACTIVE/RUNNING "$label: RUNNING" || diag "$(reasons "$name" | tail -5)"
	is "$(qemus "$uuid")" 1 "$label: exactly one qemu runs it"
	q=$(pids_matching "$uuid")
	is "$(recorded "$name" qemu_pid)" "${q:-none}" "$label: the journal names that qemu"
	s=$(recorded "$name" supervisor_pid)
	like "$(cmdline "$s")" "__supervise $id " "$label: its recorded supervisor runs (pid $s)"
	is "$(sups "$id")" 1 "$label: and it is the only supervisor of the vm"
	ok "$label: its runtime folder is there" test -d "$QVM_ROOT/run/$id"
}

# ============================================================================
# kill -9 of a supervisor: adopted; of a supervisor and its QEMU: FAILED
# ============================================================================
section "kill -9 of a supervisor"
define a1
id=$(vm_id a1)
uuid=$(uuid_of a1)
run "$QVM" start a1
is "$RC" 0 "start a1" || diag "$ERR"
wait_ready "$id" 0 || not_ok "a1 boots" || diag_file "$QVM_ROOT/vms/$id/console.log"
sup=$(recorded a1 supervisor_pid)
q=$(recorded a1 qemu_pid)
like "$(cmdline "$sup")" "__supervise $id " "a1 has a supervisor (pid $sup)"
seq=$(last_seq a1)
kill -9 "$sup"
ok "its supervisor is killed" wait_pid_gone "$sup" 5
ok "its qemu keeps running" alive "$q"
run "$QVM" list
is "$RC" 0 "list after the supervisor died" || diag "$ERR"
like "$OUT" " a1 +runn " "list shows a1 running"
sup2=$(recorded a1 supervisor_pid)
ok "a new supervisor is recorded ($sup -> $sup2)" test "$sup2" -gt 0 -a "$sup2" != "$sup"
like "$(cmdline "$sup2")" "__supervise $id .*--adopt" "... it runs and adopted the vm"
is "$(recorded a1 qemu_pid)" "$q" "the qemu pid is unchanged"
is "$(pids_matching "$uuid")" "$q" "that qemu is the only one of a1"
is "$(state a1)" ACTIVE/RUNNING "a1 is still RUNNING"
like "$(reasons a1 "$seq")" "adopted" "history says it was adopted"
run "$QVM" list
is "$(recorded a1 supervisor_pid)" "$sup2" "a second list adopts nothing more"
is "$(sups "$id")" 1 "one supervisor of a1 runs"
# a command on the vm adopts too, before it does its work
kill -9 "$sup2"
wait_pid_gone "$sup2" 5
run "$QVM" pause a1
is "$RC" 0 "pause after the new supervisor died too" || diag "$ERR"
is "$(state a1)" ACTIVE/PAUSED "... a1 is PAUSED"
sup3=$(recorded a1 supervisor_pid)
like "$(cmdline "$sup3")" "__supervise $id .*--adopt" "... under a third supervisor ($sup3)"
is "$(pids_matching "$uuid")" "$q" "... and the same single qemu"
run "$QVM" unpause a1
is "$RC" 0 "unpause" || diag "$ERR"
sup2=$sup3
run "$QVM" shutdown a1
is "$RC" 0 "shutdown of the adopted vm" || diag "$ERR"
is "$OUT" "a1: DONE" "... says DONE"
is "$(state "$id")" DONE "the journal says DONE"
run "$QVM" show a1
is "$RC" 0 "show finds a1 by name once it is DONE" || diag "$ERR"
like "$OUT" "DONE" "... and says DONE"
run "$QVM" history a1
is "$RC" 0 "history finds a1 by name too" || diag "$ERR"
run "$QVM" show no-such-vm
like "$ERR" "no vm named 'no-such-vm' \(see qvm list --all\)" "a name nobody has points at list --all"
like "$(reasons "$id" "$seq" | tail -1)" "^DONE shut down" "... recorded by the new supervisor"
ok "the adopted qemu is gone" wait_pid_gone "$q" 5
ok "the new supervisor is gone" wait_pid_gone "$sup2" 5
is "$(qemus "$uuid")" 0 "no qemu of a1 runs"
ok "a1 left no runtime folder" test ! -e "$QVM_ROOT/run/$id"
ok "a1 left no vm folder" test ! -e "$QVM_ROOT/vms/$id"

section "kill -9 of a supervisor and its qemu"
define a2
id=$(vm_id a2)
uuid=$(uuid_of a2)
run "$QVM" start a2
is "$RC" 0 "start a2" || diag "$ERR"
sup=$(recorded a2 supervisor_pid)
q=$(recorded a2 qemu_pid)
kill -9 "$sup" "$q"
ok "supervisor and qemu of a2 killed together" wait_pid_gone "$sup" 5
wait_pid_gone "$q" 5
# every read settles it first: none shows the dead vm as running
run "$QVM" show a2 --json
is "$(json 'd["state"]' <<<"$OUT")" FAILED "show --json after both died: FAILED, not a ghost"
is "$(json 'd["qemu_pid"]' <<<"$OUT")" None "... with no qemu pid"
like "$("$QVM" show a2)" "FAILED" "show (text) says FAILED"
run "$QVM" list
is "$RC" 0 "list after both died" || diag "$ERR"
like "$OUT" " a2 +fail " "list shows a2 failed"
settled a2 "$id" "$uuid" FAILED "a2 after kill -9 of both"
like "$("$QVM" show a2 --json | json 'd["reason"]')" "supervisor are gone" "the reason says both are gone"
run "$QVM" start a2
is "$RC" 0 "start a2 works again" || diag "$ERR"
running a2 "a2 restarted"

# ============================================================================
# a reused pid is never adopted nor signalled
# ============================================================================
section "reused pids"
# Kill both, then make unrelated processes take their very pids (the kernel
# hands out ns_last_pid + 1 next), with other start times.
sup=$(recorded a2 supervisor_pid)
q=$(recorded a2 qemu_pid)
kill -9 "$sup" "$q"
# both must be reaped, not zombies, for their pids to be free again
for p in "$sup" "$q"; do
	for _ in $(seq 100); do [ -e "/proc/$p" ] || break; sleep 0.05; done
done
# reuse PID: runs `sleep 300` as pid PID if it can; sets SLEEP
reuse() {
	local i
	for i in $(seq 50); do
		echo $(($1 - 1)) >/proc/sys/kernel/ns_last_pid 2>/dev/null || break
		sleep 300 &
		SLEEP=$!
		[ "$SLEEP" = "$1" ] && return 0
		kill "$SLEEP"
	done
	sleep 300 &
	SLEEP=$!
	return 1
}
reuse "$sup" || diag "could not reuse pid $sup; the sleep is $SLEEP"
sleep_sup=$SLEEP
reuse "$q" || diag "could not reuse pid $q; the sleep is $SLEEP"
sleep_q=$SLEEP
on_exit "kill $sleep_sup $sleep_q"
is "$sleep_sup $sleep_q" "$sup $q" "unrelated processes hold the recorded pids"
run "$QVM" list
is "$RC" 0 "list with the pids reused" || diag "$ERR"
like "$OUT" " a2 +fail " "a2 is FAILED, not adopted"
is "$(recorded a2 qemu_pid) $(recorded a2 supervisor_pid)" "0 0" "the journal forgot the pids"
ok "the process with the supervisor's pid was not signalled" alive "$sleep_sup"
ok "the process with qemu's pid was not signalled" alive "$sleep_q"
is "$(sups "$(vm_id a2)")" 0 "no supervisor was spawned for a2"
run "$QVM" start a2
is "$RC" 0 "start a2 with the pids still taken" || diag "$ERR"
ok "... and the process with the supervisor's old pid lives on" alive "$sleep_sup"
ok "... and the one with qemu's old pid too" alive "$sleep_q"
run "$QVM" poweroff --hard a2
is "$RC" 0 "poweroff --hard a2" || diag "$ERR"
ok "the unrelated processes still live after a2 stopped" alive "$sleep_sup"
ok "... both of them" alive "$sleep_q"
kill "$sleep_sup" "$sleep_q"

# ============================================================================
# crash points
# ============================================================================
# --- start: the start is rolled back, or the vm is adopted as running --------
section "crash points of start"
define s
for point in start-after-intent supervisor-before-qemu supervisor-before-failed \
	start-after-spawn supervisor-after-qemu supervisor-before-qmp supervisor-before-cont \
	supervisor-before-running; do
	id=$(vm_id s)
	uuid=$(uuid_of s)
	before=$(state s)
	lines=$(line_count "$QVM_ROOT/vms/$id/console.log")
	seq=$(last_seq s)
	if [ "$point" = supervisor-before-failed ]; then
		# the supervisor dies on its way out of a start that failed
		QVM_CRASH_AT=$point QVM_QEMU=/bin/false run "$QVM" start s
	else
		QVM_CRASH_AT=$point run "$QVM" start s
	fi
	case "$point" in
	start-*) is "$RC" 99 "start crashed at $point" ;;
	supervisor-before-qemu | supervisor-before-failed)
		is "$RC" 1 "start fails when its supervisor dies at $point"
		like "$ERR" "cannot start 's': the supervisor died" "... and says why" ;;
	*) is "$RC" 0 "start succeeds when its supervisor dies at $point (its qemu adopted)" ||
		diag "$ERR" ;;
	esac
	run "$QVM" list
	is "$RC" 0 "$point: the next list works" || diag "$ERR"
	case "$point" in
	start-after-intent | supervisor-before-qemu)
		settled s "$id" "$uuid" "$before" "$point: rolled back"
		like "$(reasons s "$seq" | tail -1)" "^$before .*rolled back" "$point: history says rolled back"
		;;
	supervisor-before-failed)
		# the start failed: FAILED, as the supervisor would have said, or
		# rolled back; either way nothing of it is left
		like "$(state s)" "^(FAILED|$before)$" "$point: FAILED or rolled back"
		settled s "$id" "$uuid" "$(state s)" "$point: settled"
		;;
	esac
	case "$point" in
	start-after-intent | supervisor-before-qemu | supervisor-before-failed)
		run "$QVM" start s
		is "$RC" 0 "$point: start works again" || diag "$ERR"
		running s "$point: restarted"
		# leave it FAILED or POWEROFF for the next point
		if [ "$point" = start-after-intent ]; then
			kill -9 "$(recorded s qemu_pid)"
			wait_state s FAILED 10
			is "$STATE" FAILED "$point: (qemu killed: FAILED for the next point)"
		else
			run "$QVM" poweroff --hard s
			is "$RC" 0 "$point: poweroff --hard" || diag "$ERR"
		fi
		;;
	*)
		running s "$point: adopted"
		[ "$point" = start-after-spawn ] ||
			like "$(reasons s "$seq")" "adopted" "$point: history says adopted"
		wait_ready "$id" "$lines" || not_ok "$point: the guest boots" ||
			diag_file "$QVM_ROOT/vms/$id/console.log"
		q=$(recorded s qemu_pid)
		run "$QVM" shutdown s
		is "$RC" 0 "$point: shutdown then works" || diag "$ERR"
		settled "$id" "$id" "$uuid" DONE "$point: shut down"
		ok "$point: its qemu is gone" wait_pid_gone "$q" 5
		retire s
		define s
		;;
	esac
done

# --- shutdown and poweroff: finished, or the vm runs on and can stop --------
# The supervisor points are armed by the start (the supervisor inherits
# QVM_CRASH_AT) and hit while the vm stops.
for cmd in shutdown poweroff; do
	section "crash points of $cmd"
	if [ $cmd = shutdown ]; then want=DONE; else want=POWEROFF; fi
	name=$cmd
	define $name
	for point in $cmd-after-intent $cmd-after-send supervisor-before-quit \
		supervisor-before-epilog supervisor-before-final; do
		label="$cmd at $point"
		id=$(vm_id $name)
		uuid=$(uuid_of $name)
		lines=$(line_count "$QVM_ROOT/vms/$id/console.log")
		if [ "$point" = $cmd-after-intent ] || [ "$point" = $cmd-after-send ]; then
			run "$QVM" start $name
		else
			QVM_CRASH_AT=$point run "$QVM" start $name
		fi
		is "$RC" 0 "$label: start" || diag "$ERR"
		wait_ready "$id" "$lines" || not_ok "$label: the guest boots" ||
			diag_file "$QVM_ROOT/vms/$id/console.log"
		q=$(recorded $name qemu_pid)
		if [ "$point" = $cmd-after-intent ]; then
			QVM_CRASH_AT=$point run "$QVM" $cmd $name
			is "$RC" 99 "$label: $cmd crashed"
			run "$QVM" list --all
			is "$RC" 0 "$label: the next list works" || diag "$ERR"
			# finished, or undone: running on, and then the stop works
			wait_state $id "$want|ACTIVE/RUNNING" 5
			if [ "$STATE" = ACTIVE/RUNNING ]; then
				running $name "$label: runs on"
				run "$QVM" $cmd $name
				is "$RC" 0 "$label: $cmd then works" || diag "$ERR"
			elif [ "$STATE" != $want ]; then
				not_ok "$label: the next command finishes or undoes the $cmd (it stays $STATE)"
				run "$QVM" poweroff --hard $name
				is "$RC" 0 "$label: (poweroff --hard gets it out)" || diag "$ERR"
				retire $name
				define $name
				continue
			fi
		elif [ "$point" = $cmd-after-send ]; then
			# the request reached qemu, its qvm died before it said so: the
			# guest goes off and the vm ends as asked, even when the next
			# command came before the supervisor saw the power button
			QVM_CRASH_AT=$point run "$QVM" $cmd $name
			is "$RC" 99 "$label: $cmd crashed after sending the request"
			run "$QVM" list --all
			is "$RC" 0 "$label: the next list works" || diag "$ERR"
			wait_state $id "$want" 30
			is "$STATE" "$want" "$label: the guest went off and the vm ended $want" ||
				diag "$(reasons $id | tail -5)"
		else
			# the supervisor dies while the vm stops: the command finishes
			run "$QVM" $cmd $name
			is "$RC" 0 "$label: $cmd finishes what its supervisor left" || diag "$ERR"
			is "$OUT" "$name: $want" "$label: ... and says $want"
		fi
		ok "$label: its qemu is gone" wait_pid_gone "$q" 10
		settled $id "$id" "$uuid" $want "$label: finished"
		like "$(reasons $id | tail -1)" "^$want " "$label: the last record is $want"
		if [ $want = DONE ]; then
			ok "$label: its vm folder is gone" test ! -e "$QVM_ROOT/vms/$id"
			retire $name
			define $name
		fi
	done
	if [ $cmd = poweroff ]; then
		run "$QVM" start $name
		is "$RC" 0 "poweroff: start works after the last crash point" || diag "$ERR"
		running $name "poweroff: restarted"
		run "$QVM" poweroff --hard $name
	fi
	retire $name
done

# --- delete of a running vm: finished by the next writer --------------------
section "crash points of delete"
for point in delete-after-intent delete-before-done; do
	name=d-$point
	define $name
	id=$(vm_id $name)
	uuid=$(uuid_of $name)
	run "$QVM" start $name
	is "$RC" 0 "$point: start" || diag "$ERR"
	q=$(recorded $name qemu_pid)
	QVM_CRASH_AT=$point run "$QVM" delete $name
	is "$RC" 99 "delete crashed at $point"
	ok "$point: its qemu was stopped first" wait_pid_gone "$q" 5
	run "$QVM" list --all
	is "$RC" 0 "$point: the next list works" || diag "$ERR"
	# any writer finishes the deletion
	run "$QVM" create "w-$point"
	is "$RC" 0 "$point: the next writer works" || diag "$ERR"
	settled $id "$id" "$uuid" DONE "$point: deleted"
	ok "$point: its vm folder is gone" test ! -e "$QVM_ROOT/vms/$id"
	like "$(reasons $id | tail -1)" "^DONE .*(deleted|finished)" "$point: history says deleted"
	"$QVM" delete "w-$point" >/dev/null
done

# ============================================================================
# 20 starts of one vm at once; two vms started at the same time
# ============================================================================
section "20 starts at once"
define c
id=$(vm_id c)
uuid=$(uuid_of c)
pids=()
for i in $(seq 1 20); do
	"$QVM" start c >"$QVM_TEST_ROOT/c$i.out" 2>&1 &
	pids+=($!)
done
wins=0 msgs_ok=0
for i in $(seq 1 20); do
	if wait "${pids[i - 1]}"; then
		wins=$((wins + 1))
	elif grep -qE "is ACTIVE/(BOOT|RUNNING)|busy" "$QVM_TEST_ROOT/c$i.out"; then
		msgs_ok=$((msgs_ok + 1))
	else
		diag "start $i: $(cat "$QVM_TEST_ROOT/c$i.out")"
	fi
done
is "$wins" 1 "20 starts of one vm at once: exactly one succeeds"
is "$msgs_ok" 19 "the 19 others fail naming the state or saying the vm is busy"
diag "e.g. $(grep -hv ': ACTIVE' "$QVM_TEST_ROOT"/c*.out | head -1)"
running c "after 20 starts at once"

define x
define y
"$QVM" start x >"$QVM_TEST_ROOT/x.out" 2>&1 &
px=$!
"$QVM" start y >"$QVM_TEST_ROOT/y.out" 2>&1 &
py=$!
ok "x and y started at the same time: x succeeds" wait "$px" || diag "$(cat "$QVM_TEST_ROOT/x.out")"
ok "... and y succeeds" wait "$py" || diag "$(cat "$QVM_TEST_ROOT/y.out")"
running x "x"
running y "y"
for v in x y; do "$QVM" poweroff --hard $v >/dev/null 2>&1; done

# ============================================================================
# the supervisor holds the vm lock while QEMU boots, also when its qvm died
# ============================================================================
# A QEMU that takes 2 s to exec makes BOOT last long enough to look at: if
# the lock did not pass to the supervisor, a reconciliation in that window
# would roll back a start that is in fact under way.
section "the lock during a boot"
define b
id=$(vm_id b)
uuid=$(uuid_of b)
lock=$QVM_ROOT/run/vm-$id.lock
slow=$QVM_TEST_ROOT/slow-qemu
printf '#!/bin/sh\nsleep 2\nexec qemu-system-x86_64 "$@"\n' >"$slow"
chmod 755 "$slow"
QVM_QEMU=$slow QVM_CRASH_AT=start-after-spawn run "$QVM" start b
is "$RC" 99 "start b crashed right after spawning its supervisor"
is "$(state b)" ACTIVE/BOOT "b is in BOOT"
ok "the lock of b is held while it boots" test "$(flock -n "$lock" echo free)" = ""
s=$(pids_matching "__supervise $id ")
like "$(ls -l /proc/"$s"/fd 2>/dev/null)" "vm-$id.lock" "... by its supervisor (pid ${s:-none})"
run "$QVM" list
is "$RC" 0 "list during the boot" || diag "$ERR"
like "$OUT" " b +boot " "list shows b booting, not rolled back"
running b "b after its slow boot"
is "$(flock -n "$lock" echo free)" free "the supervisor let go of the lock once qemu ran"
run "$QVM" poweroff --hard b
is "$RC" 0 "poweroff --hard b" || diag "$ERR"
settled b "$id" "$uuid" POWEROFF "b powered off"
retire b

# ============================================================================
# a caller blocked on the vm lock waits with a bound
# ============================================================================
section "a blocked caller"
id=$(vm_id c)
uuid=$(uuid_of c)
lock=$QVM_ROOT/run/vm-$id.lock
# a process that holds the lock itself: killing it lets go
(
	exec 9>>"$lock"
	flock 9
	exec sleep 30
) &
holder=$!
on_exit "kill $holder"
for _ in $(seq 100); do flock -n "$lock" true || break; sleep 0.05; done
ok "another process holds the lock of c" test "$(flock -n "$lock" echo free)" = ""
t0=${EPOCHREALTIME/./}
QVM_LOCK_TIMEOUT_MS=1500 run timeout 20 "$QVM" pause c
waited=$(((${EPOCHREALTIME/./} - t0) / 1000))
is "$RC" 1 "pause while another holds the vm lock fails (exit 1, not killed by timeout)"
like "$ERR" "'c' is busy" "... saying the vm is busy: $ERR"
# a lower bound only: it did wait for the lock rather than give up at once
ok "... after waiting for the lock ($waited ms, bound 1500 ms)" test "$waited" -ge 1000
is "$(state c)" ACTIVE/RUNNING "the vm was left alone"
QVM_LOCK_TIMEOUT_MS=garbage run "$QVM" pause c
like "$ERR" "QVM_LOCK_TIMEOUT_MS" "a bad QVM_LOCK_TIMEOUT_MS is refused"
kill "$holder"
wait "$holder" 2>/dev/null
QVM_LOCK_TIMEOUT_MS=1500 run "$QVM" pause c
is "$RC" 0 "once the lock is free, pause works" || diag "$ERR"
is "$(state c)" ACTIVE/PAUSED "... and the vm is PAUSED"
run "$QVM" poweroff --hard c
is "$RC" 0 "poweroff --hard c" || diag "$ERR"
is "$(qemus "$uuid")" 0 "no qemu of c left"

# ============================================================================
# nothing left
# ============================================================================
section "end"
is "$(pids_matching "$QVM_ROOT/vms/")" "" "no qemu runs under the test root"
is "$(pids_matching "$QVM_ROOT __supervise")" "" "no supervisor runs for the test root"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"

done_testing
