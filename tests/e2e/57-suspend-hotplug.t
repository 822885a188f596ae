#!/usr/bin/env bash
# Checkpoints of a vm whose devices were hot-plugged: a disk and a nic
# attached while it runs must sit, in the next QEMU (resume, stop + start,
# a poweroff + start), where hotplug put them, or the checkpoint's device
# state does not load and a restarted guest sees its devices move. On a pc
# vm (hotplug fills free root slots) and a q35 vm (hotplug fills a root
# port): disk only, nic only, both; suspend + resume, stop + start, and
# poweroff + start keep every device's PCI slot and the guest goes on
# counting with the same devices. A checkpoint qvm cannot make load (a
# device placed at start left a gap by a live detach before it; a scsi disk
# hot-attached with its controller, whose slot the definition does not
# keep) is refused before anything is written. Everything runs in
# a network namespace of the test's own (see 60-net.t).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
command -v ip >/dev/null || bail_out "the test needs iproute2 (ip) to make its namespace"
qvm_test_root
unset QVM_CRASH_AT QVM_FAIL_AT QVM_QEMU
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
BOOT_S=90

NS=qtres$$
ip netns add "$NS" || bail_out "cannot make network namespace $NS"
on_exit "ip netns del $NS 2>/dev/null"
IN=(ip netns exec "$NS")
Q=("${IN[@]}" "$QVM")
QVM_CMD=("${Q[@]}")
VM_POLL_S=0.3

run "${Q[@]}" net create rlan --bridge qtrbr0 --range 10.78.0.10-10.78.0.30 --gateway 10.78.0.1
is "$RC" 0 "net create" || bail_out "cannot make the network: $ERR"

log_of() { echo "$QVM_ROOT/vms/$(vm_id "$1")/console.log"; }
last_counter() { tr -d '\r' <"$(log_of "$1")" | grep -a '^QVM-COUNTER ' | tail -1 | cut -d' ' -f2; }
last_devices() { tr -d '\r' <"$(log_of "$1")" | grep -a '^QVM-DEVICES ' | tail -1; }
readies() { tr -d '\r' <"$(log_of "$1")" | grep -a -c '^QVM-READY '; }
# slots VM: "id@bus:slot ..." of qvm's devices as the running QEMU has them
# (a device behind a port: the port's id)
slots() {
	vm_qmp "$(vm_id "$1")" query-pci | json '" ".join(sorted(
		[x["qdev_id"] + "@root:" + str(x["slot"]) for b in d for x in b["devices"]
		 if x.get("qdev_id", "").startswith(("disk", "nic", "scsi"))] +
		[y["qdev_id"] + "@" + x["qdev_id"] + ":" + str(y["slot"]) for b in d for x in b["devices"]
		 for y in (x.get("pci_bridge") or {}).get("devices", [])]))'
}
placed() { "${Q[@]}" show "$1" --json | json "str(d['definition']['$2'][$3].get('pci_bus'))"; }

# devices_now VM WANT LABEL: the guest's (last) QVM-DEVICES line is WANT
devices_now() {
	local log
	log=$(log_of "$1")
	if wait_for_file_line "$log" "^QVM-DEVICES $2\$" 30 "${3:-0}"; then
		ok "$4: the guest sees $2"
	else
		not_ok "$4: the guest sees $2"
		diag "$(last_devices "$1")"
	fi
}

# cycle VM HOW WANT LABEL: suspend + resume (HOW=suspend), stop + start
# (stop) or poweroff + start (poweroff); the devices keep their slots and
# the guest goes on (or, after a poweroff, boots with the same devices)
cycle() {
	local v=$1 how=$2 want=$3 label=$4 before n lines ready log next
	log=$(log_of "$v")
	before=$(slots "$v")
	ready=$(readies "$v")
	run "${Q[@]}" "$how" "$v"
	is "$RC" 0 "$label: $how" || { diag "$ERR"; explain "$v"; }
	n=$(last_counter "$v")
	lines=$(line_count "$log")
	sleep 1
	if [ "$how" = suspend ]; then run "${Q[@]}" resume "$v"; else run "${Q[@]}" start "$v"; fi
	is "$RC" 0 "$label: and back" || { diag "$ERR"; explain "$v"; }
	is "$(state "$v")" ACTIVE/RUNNING "$label: it runs"
	if [ "$how" = poweroff ]; then
		wait_for_file_line "$log" '^QVM-READY ' "$BOOT_S" "$lines" >/dev/null
		devices_now "$v" "$want" "$lines" "$label: after a fresh boot"
	else
		next=$((n + 1))
		if wait_for_file_line "$log" "^QVM-COUNTER $next\$" 30 "$lines"; then
			ok "$label: the guest goes on counting ($n, then $next)"
		else
			not_ok "$label: the guest goes on counting ($n, then $next)"
			diag_file "$log" 5
		fi
		is "$(readies "$v")" "$ready" "$label: ... without booting again"
		is "$(last_devices "$v")" "QVM-DEVICES $want" "$label: ... with the same devices"
	fi
	is "$(slots "$v")" "$before" "$label: every device sits in the slot it had"
}

# ============================================================================
for m in pc q35; do
	v=hp$m
	section "$m: a disk, then a nic, hot-plugged"
	define "$v" qvm.counter=1 --machine "$m" --disk 32M --nic rlan
	run "${Q[@]}" start "$v"
	is "$RC" 0 "$m: start" || diag "$ERR"
	log=$(log_of "$v")
	wait_for_file_line "$log" '^QVM-COUNTER 3$' "$BOOT_S" || bail_out "the guest of $v does not count"
	devices_now "$v" "net=eth0 block=vda" 0 "$m: at boot"
	if [ "$m" = pc ]; then first=(disk-attach "$v" --size 16M) second=(nic-attach "$v" --network rlan)
	else first=(nic-attach "$v" --network rlan) second=(disk-attach "$v" --size 16M); fi

	mark=$(line_count "$log")
	run "${Q[@]}" "${first[@]}"
	is "$RC" 0 "$m: ${first[0]} while it runs" || diag "$ERR"
	if [ "$m" = pc ]; then
		want1="net=eth0 block=vda,vdb"
		is "$(placed "$v" disks 1)" pci.0 "$m: the definition keeps the hot disk's slot"
	else
		want1="net=eth0,eth1 block=vda"
		is "$(placed "$v" nics 1)" hp0 "$m: the definition keeps the hot nic's port"
	fi
	is "$(placed "$v" disks 0)" None "$m: ... and none for the boot disk"
	devices_now "$v" "$want1" "$mark" "$m: after ${first[0]}"
	cycle "$v" suspend "$want1" "$m, ${first[0]} only"

	mark=$(line_count "$log")
	run "${Q[@]}" "${second[@]}"
	is "$RC" 0 "$m: ${second[0]} while it runs" || diag "$ERR"
	want2="net=eth0,eth1 block=vda,vdb"
	devices_now "$v" "$want2" "$mark" "$m: after ${second[0]}"
	cycle "$v" suspend "$want2" "$m, both"
	cycle "$v" stop "$want2" "$m, both, stop + start"
	cycle "$v" poweroff "$want2" "$m, both, poweroff + start"
done

# ============================================================================
section "a checkpoint that could not load is refused"
v=hppc
ckpt=$QVM_ROOT/vms/$(vm_id "$v")/checkpoint
# disk0 (slot 2) goes: nic0 (slot 3), which QEMU placed itself at start,
# would move into the gap in the next qemu
run "${Q[@]}" disk-detach "$v" 0
is "$RC" 0 "detach of the boot-time disk while it runs" || diag "$ERR"
run "${Q[@]}" suspend "$v"
is "$RC" 1 "suspend is refused"
like "$ERR" "cannot suspend 'hppc': its device 'nic0' would sit at slot 2 in the next qemu" "... saying which device would move"
is "$(state "$v")" ACTIVE/RUNNING "... the vm still runs"
ok "... and no checkpoint was written" test ! -e "$ckpt"
run "${Q[@]}" disk-attach "$v" --size 8M --bus scsi
is "$RC" 0 "a scsi disk-attach while it runs (its controller is hot-plugged too)" || diag "$ERR"
run "${Q[@]}" suspend "$v"
is "$RC" 1 "suspend is refused"
like "$ERR" "cannot suspend 'hppc': its device '(scsi0|disk2)' was hot-plugged where the next qemu would not put it again" "... saying which device and why"
is "$(state "$v")" ACTIVE/RUNNING "... the vm still runs"
ok "... and no checkpoint was written" test ! -e "$ckpt"
n=$(last_counter "$v")
wait_for_file_line "$(log_of "$v")" "^QVM-COUNTER $((n + 1))\$" 30 >/dev/null
ok "... the guest goes on counting" test "$(last_counter "$v")" -gt "$n"
run "${Q[@]}" stop "$v"
is "$RC" 1 "stop (a checkpoint too) is refused the same way"
run "${Q[@]}" poweroff "$v" --hard
is "$RC" 0 "poweroff" || diag "$ERR"
run "${Q[@]}" start "$v"
is "$RC" 0 "start again" || diag "$ERR"
run "${Q[@]}" suspend "$v"
is "$RC" 0 "after a fresh start the same devices suspend" || diag "$ERR"
run "${Q[@]}" resume "$v"
is "$RC" 0 "... and resume" || diag "$ERR"
devices_now "$v" "net=eth0,eth1 block=sda,vda" 0 "after it all"

for v in hppc hpq35; do
	run "${Q[@]}" delete "$v"
	is "$RC" 0 "delete $v" || diag "$ERR"
done
run "${Q[@]}" net delete rlan
is "$RC" 0 "net delete" || diag "$ERR"
done_testing
