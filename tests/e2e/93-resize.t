#!/usr/bin/env bash
# Live resize with the test guest (QVM-SIZES: the CPUs and memory it has
# online): 1 -> 2 vCPUs and 256M -> 512M hot-added, seen by the guest and
# kept by the next boot; a balloon shrink the guest sees; refusals past the
# maxima and of a vm without hotplug, with nothing left in QEMU; a DIMM
# QEMU refuses (fail point) leaving no backend object; qvm dying after the
# DIMM's backend is added, settled by the next command from what QEMU has;
# a cold resize. Two boots of the resizable vm, one of the other.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
unset QVM_CRASH_AT QVM_FAIL_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS
# sizes LOG AFTER ERE: wait for a QVM-SIZES line after line AFTER matching ERE
sizes() { wait_for_file_line "$1" "^QVM-SIZES $3" 60 "$2"; }
mem_of() { sed 's/.*mem=//' <<<"$TAP_LINE"; }
objects() { vm_qmp "$id" qom-list '{"path":"/objects"}' | json '" ".join(sorted(o["name"] for o in d if o["name"].startswith("qvm-")))'; }
dimms() { vm_qmp "$id" query-memory-devices | json 'len(d)'; }
cpus() { vm_qmp "$id" query-cpus-fast | json 'len(d)'; }

section "a resizable vm boots with room to grow"
define shp-r "" --vcpus 1 --max-vcpus 2 --memory 256M --max-memory 1G
id=$(vm_id shp-r)
log=$QVM_ROOT/vms/$id/console.log
run "$QVM" argv shp-r
like "$OUT" "-m 256M,slots=8,maxmem=1024M" "argv: -m with slots and maxmem"
like "$OUT" "-smp 1,maxcpus=2" "argv: -smp with maxcpus"
like "$OUT" '"driver":"virtio-balloon-pci","id":"balloon0"' "argv: a balloon"
run "$QVM" start shp-r
is "$RC" 0 "start" || { diag "$ERR"; explain shp-r; }
ok "the guest has 1 cpu" sizes "$log" 0 "cpus=1 "
mem0=$(mem_of)
n=$(line_count "$log")

section "hot add: 1 -> 2 vcpus, 256M -> 512M"
QVM_CRASH_AT=resize-after-cpu run "$QVM" resize shp-r --vcpus 2
is "$RC" 99 "qvm dies right after qemu added the cpu"
is "$(journal_state "$id")" ACTIVE/HOTPLUG "... leaving the vm in HOTPLUG"
is "$(state shp-r)" ACTIVE/RUNNING "the next command settles it"
is "$("$QVM" dump shp-r | json 'd["vcpus"]')" 2 "... with the cpu qemu has in the definition"
ok "the guest onlines its second cpu" sizes "$log" "$n" "cpus=2 "
run "$QVM" resize shp-r --vcpus 2
is "$OUT" "shp-r: unchanged (live)" "a resize to what it has changes nothing"
n=$(line_count "$log")
run "$QVM" resize shp-r --memory 512M
is "$RC" 0 "resize --memory 512M" || diag "$ERR"
ok "the guest onlines the new memory" sizes "$log" "$n" "cpus=2 mem=[0-9]+"
mem1=$(mem_of)
ok "... about 256M more: $mem0 -> $mem1 MiB" test $((mem1 - mem0)) -ge 240 -a $((mem1 - mem0)) -le 260
is "$(dimms)" 1 "qemu has one dimm"
is "$(state shp-r)" ACTIVE/RUNNING "the vm is RUNNING again"
is "$("$QVM" dump shp-r | json 'd["vcpus"], d["memory"]')" "2 536870912" "the definition has the new size"
like "$("$QVM" history shp-r)" "state +ACTIVE/HOTPLUG resize \(live\): vcpus 1→2" "history: the resize went through HOTPLUG"

section "refusals with nothing left behind"
run "$QVM" resize shp-r --vcpus 3
is "$RC" 1 "3 vcpus past max-vcpus 2 is refused"
like "$ERR" "cannot resize 'shp-r': 3 vcpus is past its max-vcpus 2" "... saying why"
run "$QVM" resize shp-r --memory 2G
is "$RC" 1 "2G past max-memory 1G is refused"
like "$ERR" "memory 2G is past its max-memory 1G" "... saying why"
run "$QVM" resize shp-r --memory 600M
is "$RC" 1 "a grow not a multiple of 128M is refused"
is "$(cpus) $(dimms) [$(objects)]" "2 1 [qvm-mem0]" "qemu has 2 cpus, 1 dimm and its backend, nothing more"
QVM_FAIL_AT=resize-before-dimm run "$QVM" resize shp-r --memory 768M
is "$RC" 1 "a dimm qemu refuses fails the resize"
like "$ERR" "the dimm was refused; its backend was removed" "... saying what was undone"
is "$(dimms) [$(objects)]" "1 [qvm-mem0]" "... and no object is left behind"
is "$(state shp-r)" ACTIVE/RUNNING "... the vm is RUNNING"
is "$("$QVM" dump shp-r | json 'd["memory"]')" 536870912 "... with the definition as it was"

section "qvm dies after adding the backend: the next command settles it"
QVM_CRASH_AT=resize-after-object run "$QVM" resize shp-r --memory 768M
is "$RC" 99 "qvm dies after object-add"
is "$(journal_state "$id")" ACTIVE/HOTPLUG "the journal has the vm left in HOTPLUG"
like "$(open_intents "$id")" "resize" "... with the resize intent open"
run "$QVM" show shp-r
is "$(state shp-r)" ACTIVE/RUNNING "the next command settles it to RUNNING"
is "$(open_intents "$id")" "" "... and closes the intent"
is "$(dimms) [$(objects)]" "1 [qvm-mem0]" "... the backend without a dimm is gone"
is "$("$QVM" dump shp-r | json 'd["memory"]')" 536870912 "... and the definition has what qemu has"

section "a balloon shrink"
n=$(line_count "$log")
run "$QVM" resize shp-r --memory 384M
is "$RC" 0 "resize --memory 384M" || diag "$ERR"
like "$OUT" "it sees a balloon, not a smaller dimm; its next boot has 384M" "says the guest sees a balloon"
target=$((mem1 - 120))
got=
for _ in $(seq 1 40); do
	sizes "$log" "$n" "cpus=2 mem=" || break
	n=$TAP_LINENO
	got=$(mem_of)
	[ "$got" -le "$target" ] && break
done
ok "the guest's memory goes down by about 128M ($mem1 -> $got MiB)" test "${got:-99999}" -le "$target"
is "$(vm_qmp "$id" query-balloon | json 'd["actual"]')" 402653184 "the balloon leaves it 384M"

section "the next boot has the new size"
run "$QVM" poweroff shp-r --hard
is "$RC" 0 "poweroff" || diag "$ERR"
like "$("$QVM" argv shp-r)" "-m 384M,slots=8,maxmem=1024M" "argv: the new memory"
like "$("$QVM" argv shp-r)" "-smp 2 " "argv: 2 vcpus (no room left to grow)"
n=$(line_count "$log")
run "$QVM" start shp-r
is "$RC" 0 "start again" || { diag "$ERR"; explain shp-r; }
ok "the guest boots with 2 cpus" sizes "$log" "$n" "cpus=2 "
mem2=$(mem_of)
ok "... and about 384M ($mem2 MiB; it had $mem0 of 256M)" test $((mem2 - mem0)) -ge 110 -a $((mem2 - mem0)) -le 140
QVM_CRASH_AT=resize-after-intent run "$QVM" resize shp-r --memory 512M
is "$RC" 99 "qvm dies after recording the intent"
run "$QVM" show shp-r
is "$(state shp-r) [$(open_intents "$id")]" "ACTIVE/RUNNING []" "the next command settles it, intent closed"
is "$("$QVM" dump shp-r | json 'd["memory"]')" 402653184 "... the definition as qemu has it"
run "$QVM" resize shp-r --memory 512M
is "$RC" 0 "it grows again from there" || diag "$ERR"
is "$(dimms)" 1 "... by a dimm"
run "$QVM" poweroff shp-r --hard

section "cold resize, and a vm without hotplug"
run "$QVM" resize shp-r --vcpus 1 --memory 256M
is "$RC" 0 "a cold resize" || diag "$ERR"
is "$OUT" "shp-r: vcpus 2→1, memory 512M→256M" "... says so"
is "$("$QVM" dump shp-r | json 'd["vcpus"], d["memory"]')" "1 268435456" "... the definition has it"
run "$QVM" resize shp-r --vcpus 3
is "$RC" 1 "a cold resize past max-vcpus is refused"
like "$ERR" "max-vcpus 2 is below vcpus 3" "... by the definition's check"
run "$QVM" update shp-r max-vcpus=4
is "$RC" 0 "update max-vcpus while off" || diag "$ERR"
define shp-f
run "$QVM" argv shp-f
like "$OUT" "-m 256M " "no hotplug: plain -m"
is "$(grep -c balloon <<<"$OUT")" 0 "... and no balloon"
run "$QVM" start shp-f
is "$RC" 0 "start a vm without hotplug" || diag "$ERR"
run "$QVM" resize shp-f --vcpus 2
is "$RC" 1 "its live resize is refused"
like "$ERR" "cpu hotplug is off \(max-vcpus 0\)" "... saying hotplug is off"
is "$(state shp-f)" ACTIVE/RUNNING "... and it keeps running"
for v in shp-r shp-f; do
	run "$QVM" delete "$v"
	is "$RC" 0 "delete $v" || diag "$ERR"
done
is "$(pids_matching "$QVM_ROOT" | wc -l)" 0 "no qemu or supervisor is left"
done_testing
