#!/usr/bin/env bash
# The restart policy (backoff, the cap of 10 restarts a minute, a pending
# restart cancelled by poweroff or delete, no restart after a stop the user
# asked for), recover in each mode and UNKNOWN, boot, start --no-wait, one
# console at a time, what QEMU inherits (fds, environment, folder), and the
# console log's bound. Restarts are fast here: QVM_RESTART_BACKOFF_MS.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT/img
mkdir -p "$QVM_TEST_ROOT/img"
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS QVM_RESTART_BACKOFF_MS
NL=$'\n'
count_lines() { tr -d '\r' <"$1" 2>/dev/null | grep -a -c -E -- "$2"; }

console_log() { echo "$QVM_ROOT/vms/$(vm_id "$1")/console.log"; }
wait_ready() { wait_for_file_line "$(console_log "$1")" '^QVM-READY ' "$BOOT_S" "${2:-0}"; }
# qemu_of UUID: the pid of the one qemu running it (empty if none)
qemu_of() { pids_matching "$1"; }
# wait_qemu UUID NOT_PID TIMEOUT_S: a qemu of UUID other than NOT_PID runs
wait_qemu() {
	local deadline=$((SECONDS + $3)) q
	while [ $SECONDS -lt "$deadline" ]; do
		q=$(qemu_of "$1")
		[ -n "$q" ] && [ "$q" != "$2" ] && { QPID=$q; return 0; }
		sleep 0.05
	done
	return 1
}
sup_of() { pids_matching "$QVM_ROOT __supervise $1 "; }

# ============================================================================
section "restart policy always: the cap"
QVM_RESTART_BACKOFF_MS=100 define r "" --restart always
rid=$(vm_id r)
ruuid=$(uuid_of r)
QVM_RESTART_BACKOFF_MS=100 run "$QVM" start r
is "$RC" 0 "start r (--restart always)" || diag "$ERR"
pids=() last=""
for i in $(seq 11); do
	if ! wait_qemu "$ruuid" "$last" 30; then
		not_ok "restart $i: a new qemu runs r"
		explain r
		break
	fi
	last=$QPID
	pids+=("$QPID")
	wait_state r ACTIVE/RUNNING 30
	kill -9 "$QPID"
	wait_pid_gone "$QPID" 5
done
is "${#pids[@]}" 11 "r ran under 11 qemus: the first and 10 restarts"
is "$(printf '%s\n' "${pids[@]}" | sort -u | wc -l | tr -d ' ')" 11 "... each a new process"
wait_state r FAILED 30
is "$STATE" FAILED "after the 10th restart within a minute, the next crash leaves r FAILED"
run "$QVM" show r
like "$OUT" "REASON +.*restarted 10 times within 60 s" "show says why it is not restarted again"
is "$(reasons r | grep -c 'restarting in')" 10 "history: ten restart decisions"
ok "no qemu of r is left" wait_pid_gone "$last" 5
is "$(sup_of "$rid")" "" "no supervisor of r is left"

# A guest that powers itself off counts against the cap under "always"
# too, and ends the same way: FAILED, with the cap's reason. The window is
# widened so that slow boots all count.
section "restart policy always: the cap on a guest that powers itself off"
export QVM_RESTART_BACKOFF_MS=100 QVM_RESTART_WINDOW_MS=3600000
define po "qvm.poweroff=0" --restart always
run "$QVM" start po
is "$RC" 0 "start po (--restart always, powers itself off at once)" || diag "$ERR"
wait_state po "FAILED|POWEROFF" $((BOOT_S * 11))
is "$STATE" FAILED "after 10 restarts, its next poweroff leaves po FAILED, as for a crash"
run "$QVM" show po
like "$OUT" "REASON +the guest powered off; restarted 10 times within 3600 s: not again \(restart policy always\)" \
	"show says the guest powered off and why it is not restarted again"
is "$(reasons po | grep -c 'restarting in')" 10 "history: ten restart decisions"
is "$(count_lines "$(console_log po)" '^QVM-POWEROFF self$')" 11 "the guest powered off 11 times"
is "$(sup_of "$(vm_id po)")" "" "no supervisor of po is left"
unset QVM_RESTART_BACKOFF_MS QVM_RESTART_WINDOW_MS

# ============================================================================
section "a pending restart is cancelled by poweroff and by delete"
define p "" --restart always
pid_=$(vm_id p)
puuid=$(uuid_of p)
QVM_RESTART_BACKOFF_MS=4000 run "$QVM" start p
is "$RC" 0 "start p (--restart always, 4 s backoff)" || diag "$ERR"
q=$(qemu_of "$puuid")
kill -9 "$q"
wait_state p ACTIVE/BOOT 10
is "$STATE" ACTIVE/BOOT "p waits to be restarted: ACTIVE/BOOT"
run "$QVM" list
like "$OUT" "(^|$NL) +$pid_ +p +boot +- +256M +-($NL|$)" "list: boot, with no CPU and no uptime while nothing runs"
run "$QVM" poweroff p
is "$RC" 0 "poweroff during the backoff" || diag "$ERR"
is "$OUT" "p: POWEROFF" "... POWEROFF"
sleep 5
is "$(state p)" POWEROFF "p is still POWEROFF after the backoff would have run out"
is "$(qemu_of "$puuid")" "" "... and was not restarted"
is "$(sup_of "$pid_")" "" "... its supervisor is gone"
like "$(reasons p | tail -1)" "^POWEROFF .*restart was cancelled" "history: the restart was cancelled"
QVM_RESTART_BACKOFF_MS=4000 run "$QVM" start p
is "$RC" 0 "start p again" || diag "$ERR"
q=$(qemu_of "$puuid")
kill -9 "$q"
wait_state p ACTIVE/BOOT 10
run timeout 10 "$QVM" delete p
is "$RC" 0 "delete during the backoff (at once, not after a timeout)" || diag "$ERR"
sleep 5
run "$QVM" list --all
like "$OUT" "(^|$NL) +$pid_ +p +done " "p is DONE"
is "$(qemu_of "$puuid")" "" "... and was not restarted"
is "$(sup_of "$pid_")" "" "... its supervisor is gone"

# ============================================================================
section "no restart after a stop the user asked for"
define d "qvm.acpi=ignore" --restart on-failure
did=$(vm_id d)
duuid=$(uuid_of d)
run "$QVM" start d
is "$RC" 0 "start d (on-failure, ignores ACPI)" || diag "$ERR"
wait_ready d || explain d
run "$QVM" poweroff d --timeout 60 --no-wait
is "$RC" 0 "poweroff --no-wait: the button is pressed" || diag "$ERR"
is "$(state d)" ACTIVE/SHUTDOWN "d is shutting down"
q=$(qemu_of "$duuid")
kill -9 "$q"
wait_state d POWEROFF 10
is "$STATE" POWEROFF "its qemu dies during the shutdown: POWEROFF, as asked"
sleep 2
is "$(qemu_of "$duuid")" "" "... not restarted"
like "$(reasons d | tail -1)" "^POWEROFF powered off \(qemu was killed by signal 9 .*during the shutdown\)" \
	"history says so"

# a guest that reboots while a shutdown is under way: the shutdown's state
# (and its target) stays, the reboot is one history record
define rs "qvm.acpi=ignore qvm.reboot=5"
rslog=$(console_log rs)
run "$QVM" start rs
is "$RC" 0 "start rs (ignores ACPI, reboots after 5 s)" || diag "$ERR"
wait_ready rs || explain rs
run "$QVM" poweroff rs --timeout 60 --no-wait
is "$RC" 0 "poweroff --no-wait" || diag "$ERR"
n=$(grep -a -n '^QVM-READY' "$rslog" | head -1 | cut -d: -f1)
if wait_for_file_line "$rslog" '^QVM-REBOOT$' 20 && wait_ready rs "$TAP_LINENO"; then
	ok "the guest rebooted during the shutdown"
else
	not_ok "the guest rebooted during the shutdown"
	explain rs
fi
is "$(state rs)" ACTIVE/SHUTDOWN "... and the vm is still ACTIVE/SHUTDOWN, not RUNNING"
like "$(reasons rs | tail -1)" "^ACTIVE/SHUTDOWN the guest rebooted" "... with the reboot in its history"
run "$QVM" poweroff rs --hard
is "$RC" 0 "poweroff --hard rs" || diag "$ERR"
is "$(state rs)" POWEROFF "... POWEROFF"

# ============================================================================
section "start --no-wait, one console at a time, what qemu inherits, the console log's bound"
define x "qvm.counter=1"
xid=$(vm_id x)
xuuid=$(uuid_of x)
xlog=$(console_log x)
QVM_CONSOLE_LOG_CAP=400 QVM_LOG_CHECK_MS=300 run "$QVM" start x --no-wait
is "$RC" 0 "start --no-wait" || diag "$ERR"
like "$OUT" "^x: ACTIVE/(BOOT|RUNNING)$" "... returns with qemu started"
wait_state x ACTIVE/RUNNING 30
is "$STATE" ACTIVE/RUNNING "... and the vm runs soon after"
wait_ready x || explain x
q=$(qemu_of "$xuuid")
s=$(sup_of "$xid")
fds=$(ls /proc/"$q"/fd | sort -n | tr '\n' ' ')
like "$fds" "^0 1 2 3 4 5 ([0-9]+ )*$" "qemu has fds 0-5 (stdio, the QMP and console sockets), then its own"
for fd in 3 4 5; do
	like "$(readlink /proc/"$q"/fd/$fd)" "^socket:" "... fd $fd is a socket"
done
is "$(tr '\0' '\n' </proc/"$q"/environ | sort | tr '\n' ' ')" "LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin " \
	"qemu's environment is PATH and LC_ALL only"
is "$(readlink /proc/"$q"/cwd)" / "qemu runs in /"
is "$(readlink /proc/"$s"/cwd)" / "its supervisor runs in / (no hold on the caller's folder)"

# one console at a time
(sleep 6 | "$QVM" console x >/dev/null 2>&1) &
first=$!
on_exit "kill $first"
for _ in $(seq 50); do [ -n "$(pids_matching "console x")" ] && break; sleep 0.1; done
sleep 0.5
OUT=$(echo | timeout 10 "$QVM" console x 2>"$QVM_TEST_ROOT/stderr")
RC=$?
ERR=$(cat "$QVM_TEST_ROOT/stderr")
is "$RC" 1 "a second console is refused"
like "$ERR" "cannot attach to the console of 'x': another console is attached" "... saying why"
wait "$first" 2>/dev/null
# stdin stays open 5 s: the guest prints a counter line a second, slower on a
# loaded machine than the console's 1 s linger after its input ends
OUT=$(sleep 5 | timeout 15 "$QVM" console x 2>"$QVM_TEST_ROOT/stderr")
is "$?" 0 "once the first left, a console attaches again"
like "$OUT" "QVM-COUNTER" "... and shows the guest's output"

# the console log is bounded (cap 400 bytes here, checked every 0.3 s; the
# boot prints about 340, then a counter line a second)
for _ in $(seq 100); do [ -f "$xlog.1" ] && break; sleep 0.2; done
ok "console.log passed its cap and was moved to console.log.1" test -f "$xlog.1"
ok "console.log.1 holds the boot" grep -q -a '^QVM-READY' "$xlog.1"
n=$(line_count "$xlog")
ok "the guest's output goes on in console.log" wait_for_file_line "$xlog" '^QVM-COUNTER ' 10 "$n"
ok "console.log stays near its cap ($(stat -c %s "$xlog") bytes)" test "$(stat -c %s "$xlog")" -lt 1000
run "$QVM" poweroff x --hard
is "$RC" 0 "poweroff --hard x" || diag "$ERR"

# a qemu that cannot boot, with --no-wait: start returns, the vm ends FAILED
: >"$QVM_TEST_ROOT/img/empty-vmlinuz"
run "$QVM" create nk --memory 256M --kernel "$QVM_TEST_ROOT/img/empty-vmlinuz"
run "$QVM" start nk --no-wait
is "$RC" 0 "start --no-wait of a vm qemu cannot boot returns 0"
wait_state nk FAILED 20
is "$STATE" FAILED "... the vm ends FAILED"
like "$("$QVM" show nk)" "LAST ERROR +.*could not load kernel" "... with qemu's error in show"

# ============================================================================
section "UNKNOWN, recover, boot"
define u
uid=$(vm_id u)
uuuid=$(uuid_of u)
run "$QVM" start u
is "$RC" 0 "start u" || diag "$ERR"
wait_ready u || explain u
run "$QVM" recover u --success
is "$RC" 1 "recover --success of a healthy vm is refused"
like "$ERR" "cannot recover 'u': it is ACTIVE/RUNNING and its supervisor \(pid [0-9]+\) drives it" "... saying why"
is "$(sup_of "$uid" | wc -w | tr -d ' ')" 1 "... and no second supervisor runs"

# make_unknown: kill -9 the supervisor and freeze qemu: the next command
# cannot reach it (2 s bound here), so its fate is UNKNOWN
make_unknown() {
	local s q
	s=$(sup_of "$uid")
	q=$(qemu_of "$uuuid")
	kill -9 "$s"
	wait_pid_gone "$s" 5
	kill -STOP "$q"
	QVM_QMP_CONNECT_TIMEOUT_MS=2000 run "$QVM" list
	FROZEN=$q
}
make_unknown
like "$OUT" "(^|$NL) +$uid +u +unkn " "a frozen qemu whose supervisor died: list shows UNKNOWN"
run "$QVM" show u
like "$OUT" "REASON +its supervisor died and its qemu cannot be reached" "show says why"
run "$QVM" start u
is "$RC" 1 "start of an UNKNOWN vm is refused"
like "$ERR" "it is UNKNOWN" "... naming the state"
QVM_QMP_CONNECT_TIMEOUT_MS=2000 run "$QVM" recover u --success
is "$RC" 1 "recover --success while qemu is still frozen fails"
like "$ERR" "cannot recover 'u'" "... naming the operation and the vm"
kill -CONT "$FROZEN"
run "$QVM" recover u --success
is "$RC" 0 "recover --success once qemu answers again" || diag "$ERR"
is "$(state u)" ACTIVE/RUNNING "... u is RUNNING"
is "$(qemu_of "$uuuid")" "$FROZEN" "... under the same qemu"
is "$(sup_of "$uid" | wc -w | tr -d ' ')" 1 "... with one supervisor"

make_unknown
run "$QVM" recover u --failure
is "$RC" 0 "recover --failure of an UNKNOWN vm" || diag "$ERR"
is "$(state u)" FAILED "... FAILED"
ok "... its frozen qemu was killed" wait_pid_gone "$FROZEN" 5
is "$(sup_of "$uid")" "" "... no supervisor"

run "$QVM" start u
is "$RC" 0 "start u again" || diag "$ERR"
make_unknown
n=$(line_count "$(console_log u)")
run "$QVM" boot u
is "$RC" 0 "boot of an UNKNOWN vm" || diag "$ERR"
ok "... its old qemu was killed" wait_pid_gone "$FROZEN" 5
q=$(qemu_of "$uuuid")
ok "... a new qemu runs it ($q)" test -n "$q" -a "$q" != "$FROZEN"
wait_ready u "$n" || not_ok "... and the guest boots" || explain u
is "$(state u)" ACTIVE/RUNNING "... RUNNING"

run "$QVM" recover u --retry
is "$RC" 0 "recover --retry of a healthy vm changes nothing" || diag "$ERR"
is "$(qemu_of "$uuuid")" "$q" "... the same qemu runs it"
for how in --failure --delete; do
	run "$QVM" recover u $how
	is "$RC" 1 "recover $how of a vm its supervisor drives is refused"
	like "$ERR" "cannot recover 'u': it is ACTIVE/RUNNING and its supervisor \(pid [0-9]+\) drives it.*--force" \
		"... saying why and how to insist"
	is "$(state u)" ACTIVE/RUNNING "... u keeps RUNNING"
	is "$(qemu_of "$uuuid")" "$q" "... under the same qemu"
done
run "$QVM" recover u --delete --force
is "$RC" 0 "recover --delete --force" || diag "$ERR"
run "$QVM" list --all
like "$OUT" "(^|$NL) +$uid +u +done " "... u is DONE"
ok "... its qemu is gone" wait_pid_gone "$q" 5
is "$(sup_of "$uid")" "" "... no supervisor"

# ============================================================================
section "end"
is "$(pids_matching "$QVM_ROOT")" "" "no qemu or supervisor runs under the test root"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
