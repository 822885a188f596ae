#!/usr/bin/env bash
# Cold migration between two qvm hosts made here (tests/lib/hosts.sh: two
# network namespaces, a veth pair, sshd with a key made for the test on the
# destination): a POWEROFF vm with a disk holding a marker and a nic (the
# same name, uuid, MAC and address there, the marker readable, its history
# "received from", the source DONE "migrated to" with its files gone, and
# it boots there), and a running guest printing QVM-COUNTER n every second
# (suspended, moved with its checkpoint, resumed there: it goes on counting
# on the destination's console without booting again), and back again.
# Then nothing is left on either host.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
unset QVM_CRASH_AT QVM_FAIL_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS
export QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT
. "$(dirname "$0")/../lib/hosts.sh"
hosts_setup
BOOT_S=90
VM_POLL_S=0.3

# the helpers of vm.sh on one host or the other
on_src() { QVM_CMD=("${SQ[@]}"); }
on_dst() { QVM_CMD=("${DQ[@]}"); }
field() { "${QVM_CMD[@]}" show "$1" --json | json "$2"; }
last_reason() { reasons "$1" | tail -1; }

# ============================================================================
section "a POWEROFF vm with a disk and a nic"
on_src
define cold "" --disk 64M --nic mnet
sid=$(vm_id cold)
uuid=$(uuid_of cold)
mac=$(field cold 'd["nics"][0]["mac"]')
ip=$(field cold 'd["nics"][0]["ip"]')
run "${SQ[@]}" start cold
is "$RC" 0 "start cold on the source" || diag "$ERR"
run "${SQ[@]}" poweroff --hard cold
is "$RC" 0 "poweroff cold" || diag "$ERR"
SDISK=$SRC_ROOT/vms/$sid/disk0.qcow2
ok "a marker written to its disk" qemu-io -f qcow2 -c "write -P 0x5a 4M 64k" "$SDISK"

run "${SQ[@]}" migrate cold "$DEST" "${REMOTE[@]}" --json
is "$RC" 0 "migrate cold to the destination" || diag "$ERR"
like "$(json 'd["state"]' <<<"$OUT")" "^POWEROFF$" "--json: it is POWEROFF there"
ok "--json: time_ms and bytes" test "$(json 'd["time_ms"] >= 0 and d["bytes"] > 0' <<<"$OUT")" = True
is "$(schema_violations <<<"$OUT")" "" "--json follows qvm.8's rules"

is "$(state "$sid")" "DONE" "the source: DONE"
like "$(last_reason "$sid")" "^DONE migrated to 10\.77\.0\.2$" "... 'migrated to 10.77.0.2'"
ok "... its folder is gone" test ! -e "$SRC_ROOT/vms/$sid"

on_dst
is "$(state cold)" "POWEROFF" "the destination: POWEROFF"
is "$(uuid_of cold)" "$uuid" "... the same uuid"
is "$(field cold 'd["nics"][0]["mac"]')" "$mac" "... the same MAC"
is "$(field cold 'd["nics"][0]["ip"]')" "$ip" "... the same address"
like "$(last_reason cold)" "^POWEROFF received from " "... its history: 'received from HOST'"
did=$(vm_id cold)
DDISK=$DST_ROOT/vms/$did/disk0.qcow2
ok "... the marker is on its disk there" qemu-io -f qcow2 -c "read -P 0x5a 4M 64k" "$DDISK"
ok "... qemu-img check of it" qemu-img check -q "$DDISK"
run "${DQ[@]}" start cold
is "$RC" 0 "it starts on the destination" || { diag "$ERR"; explain cold; }
is "$(qemus_on "$DST_ROOT")" 1 "... one qemu there"
run "${DQ[@]}" delete cold
is "$RC" 0 "delete it there" || diag "$ERR"

# ============================================================================
section "a running guest, counting"
on_src
define warm qvm.counter=1 --nic mnet
wid=$(vm_id warm)
wuuid=$(uuid_of warm)
run "${SQ[@]}" start warm
is "$RC" 0 "start warm on the source" || diag "$ERR"
SLOG=$SRC_ROOT/vms/$wid/console.log
wait_for_file_line "$SLOG" '^QVM-COUNTER 3$' "$BOOT_S" 0 || { not_ok "the guest counts"; explain warm; }

N=$(counter_of "$SLOG")
T0=$SECONDS
run "${SQ[@]}" migrate warm "$DEST" "${REMOTE[@]}" --json
is "$RC" 0 "migrate the running guest" || diag "$ERR"
is "$(json 'd["state"]' <<<"$OUT")" "ACTIVE/RUNNING" "--json: it runs there"
ok "--json: its downtime_ms" test "$(json 'd["downtime_ms"] > 0' <<<"$OUT")" = True
is "$(schema_violations <<<"$OUT")" "" "--json follows qvm.8's rules"
is "$(state "$wid")" "DONE" "the source: DONE"
like "$(last_reason "$wid")" "^DONE migrated to 10\.77\.0\.2$" "... 'migrated to 10.77.0.2'"
is "$(qemus_on "$SRC_ROOT")" 0 "... no qemu of it left there"

on_dst
is "$(state warm)" "ACTIVE/RUNNING" "the destination: ACTIVE/RUNNING"
is "$(uuid_of warm)" "$wuuid" "... the same uuid"
DLOG=$DST_ROOT/vms/$(vm_id warm)/console.log
if wait_for_file_line "$DLOG" '^QVM-COUNTER [0-9]+$' 30 0 &&
	F=${TAP_LINE#QVM-COUNTER } && wait_for_file_line "$DLOG" "^QVM-COUNTER $((F + 1))\$" 10 0; then
	ok "it goes on counting there ($F, $((F + 1)))"
else
	not_ok "it goes on counting there"
	diag_file "$DLOG" 5
fi
# saved at some n from N on (the source's last before the migrate), at most
# one a second since then
ok "... from where it was saved (the source had counted to $N, then $F there)" \
	test "${F:-0}" -gt "$N" -a "${F:-0}" -le "$((N + 2 + SECONDS - T0))"
ok "... without booting again" test -z "$(tr -d '\r' <"$DLOG" | grep -a '^QVM-READY')"
is "$(qemus_on "$DST_ROOT")" 1 "... one qemu there"

section "and back again"
N=$(counter_of "$DLOG")
run "${DQ[@]}" migrate warm "$SRC_DEST" "${BACK[@]}"
is "$RC" 0 "migrate it back to the source" || diag "$ERR"
like "$(last_reason warm)" "^DONE migrated to 10\.77\.0\.1$" "... the destination: DONE 'migrated to 10.77.0.1'"
is "$(qemus_on "$DST_ROOT")" 0 "... no qemu of it left there"
on_src
is "$(state warm)" "ACTIVE/RUNNING" "the source runs it again"
is "$(uuid_of warm)" "$wuuid" "... the same uuid"
BLOG=$SRC_ROOT/vms/$(vm_id warm)/console.log
if wait_for_file_line "$BLOG" '^QVM-COUNTER [0-9]+$' 30 0 && B=${TAP_LINE#QVM-COUNTER } &&
	wait_for_file_line "$BLOG" "^QVM-COUNTER $((B + 1))\$" 10 0; then
	ok "it goes on counting here ($B, $((B + 1)); there it had counted to $N)"
else
	not_ok "it goes on counting here"
	diag_file "$BLOG" 5
fi
ok "... from where it was saved there" test "${B:-0}" -gt "$N"
ok "... without booting again" test -z "$(tr -d '\r' <"$BLOG" | grep -a '^QVM-READY')"
run "${SQ[@]}" delete warm
is "$RC" 0 "delete it" || diag "$ERR"

# ============================================================================
section "nothing left"
is "$(hosts_leftovers | tr -d ' ')" "" "no tap, socket or held lock on either host"
is "$(qemus_on "$SRC_ROOT")$(qemus_on "$DST_ROOT")" "00" "no qemu on either host"
done_testing
