#!/usr/bin/env bash
# VM snapshots end to end, with real QEMU (TCG), real qcow2 and the test
# guest: a stopped VM's snapshots through qemu-img (create, revert of disk
# content, delete, checked with qemu-img and qemu-io), crash points in
# create, delete and revert (the next command finishes or rolls back: the
# tree and the disks agree), then one boot: a snapshot with memory, revert, and the
# guest's counter continues from the saved moment; the tree (A, B, revert
# to A, C: C's parent is A); refusals; pruning at a maximum of 2; a crash
# in a running VM's snapshot. A second, never started vm: tags held by
# disk snapshots refused (and the disk-snapshot commands keep off a vm
# snapshot's part), names held twice never guessed at, a failed create
# costing no older snapshot (pruning after), every crash point after the
# intent and before the record; the same refusal and crash points live.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg
export QVM_DISK_ROOTS=$G
BOOT_S=90

# From tests/lib/vm.sh: run, json, define, vm_id, state, explain.
# tags NAME: the tree's snapshots as "ID:TAG:PARENT" sorted by id, one line
tags() {
	"$QVM" snapshot-list "$1" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join("%d:%s:%d" % (s["id"], s["tag"], s["parent"]) for s in sorted(d["snapshots"], key=lambda s: s["id"])))'
}
current() { "$QVM" snapshot-list "$1" --json | json 'd["current"]'; }
# disk_tags FILE: the internal snapshots qemu-img lists in FILE (-U: a
# running qemu may hold it), sorted, one line
disk_tags() {
	qemu-img info -U -f qcow2 --output=json -- "$1" |
		python3 -c 'import json,sys; print(" ".join(sorted(s["name"] for s in json.load(sys.stdin).get("snapshots", []))))'
}
# counter_after LINENO: the first QVM-COUNTER value after that line (waits)
counter_after() {
	wait_for_file_line "$LOG" '^QVM-COUNTER [0-9]+$' 30 "$1" || return 1
	echo "${TAP_LINE#QVM-COUNTER }"
}
last_counter() { tr -d '\r' <"$LOG" | grep -a -E '^QVM-COUNTER [0-9]+$' | tail -1 | cut -d' ' -f2; }


define sn "qvm.counter=1" --machine pc --disk 64M --disk 32M
ID=$(vm_id sn)
D=$QVM_ROOT/vms/$ID
D0=$D/disk0.qcow2
D1=$D/disk1.qcow2
LOG=$D/console.log

# ---- a stopped vm: qemu-img --------------------------------------------------------------
run "$QVM" snapshot-list sn
like "$OUT" "sn has no snapshots \(at most 10\)" "snapshot-list: none yet, default maximum 10"
run "$QVM" snapshot-create sn base
is "$RC" 0 "snapshot-create of a PENDING vm" || diag "$ERR"
like "$OUT" "^sn: snapshot 1 'base' taken \(disks only\)$" "... disks only, id 1"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "base|base" "qemu-img lists 'base' in both disks"
qemu-io -f qcow2 -c "write -q -P 0xab 0 64k" "$D1" >/dev/null
ok "data written to disk 1 after the snapshot" qemu-io -f qcow2 -c "read -q -P 0xab 0 64k" "$D1"
run "$QVM" snapshot-revert sn base
is "$RC" 0 "snapshot-revert of a stopped vm" || diag "$ERR"
ok "... disk 1 holds what it held at the snapshot (zeros)" qemu-io -f qcow2 -c "read -q -P 0 0 64k" "$D1"
run "$QVM" snapshot-create sn
is "$RC" 0 "snapshot-create without a tag" || diag "$ERR"
like "$OUT" "snapshot 2 'snap-2' taken" "... tagged snap-2"
is "$(tags sn)" "1:base:0 2:snap-2:1" "tree: snap-2 is a child of base"
run "$QVM" snapshot-delete sn snap-2
is "$RC" 0 "snapshot-delete of a stopped vm" || diag "$ERR"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "base|base" "... gone from both disks"
is "$(current sn)" 1 "... current is its parent again"

# crash in create, after the first disk took it: rolled back by the next command
run env QVM_CRASH_AT=snapshot-create-disk "$QVM" snapshot-create sn torn
is "$RC" 99 "crash point snapshot-create-disk"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "base torn|base" "... disk 0 holds 'torn', disk 1 not"
is "$(tags sn)" "1:base:0" "the next command: no 'torn' in the tree"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "base|base" "... and in no disk (rolled back)"
run "$QVM" snapshot-create sn torn
is "$RC" 0 "the tag can be taken again" || diag "$ERR"

# crash in delete, after the first disk lost it: finished by the next command
run env QVM_CRASH_AT=snapshot-delete-disk "$QVM" snapshot-delete sn torn
is "$RC" 99 "crash point snapshot-delete-disk"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "base|base torn" "... disk 0 lost 'torn', disk 1 not yet"
run "$QVM" show sn
like "$OUT" "snapshot-delete" "show: the interrupted delete in the history"
is "$(tags sn)" "1:base:0" "the next command: 'torn' is gone from the tree"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "base|base" "... and from every disk (finished)"

# crash in revert, after the first disk went back: finished by the next command
qemu-io -f qcow2 -c "write -q -P 0xcd 0 64k" "$D0" >/dev/null
qemu-io -f qcow2 -c "write -q -P 0xcd 0 64k" "$D1" >/dev/null
run env QVM_CRASH_AT=snapshot-revert-disk "$QVM" snapshot-revert sn base
is "$RC" 99 "crash point snapshot-revert-disk"
ok "... disk 0 went back" qemu-io -f qcow2 -c "read -q -P 0 0 64k" "$D0"
ok "... disk 1 not yet" qemu-io -f qcow2 -c "read -q -P 0xcd 0 64k" "$D1"
is "$(current sn)" 1 "the next command: current is base"
ok "... and disk 1 went back too (finished)" qemu-io -f qcow2 -c "read -q -P 0 0 64k" "$D1"

# the tree survives the journal's compaction (after 128 records)
before=$(tags sn)
compacted=0
for i in $(seq 1 140); do
	size=$(stat -c %s "$QVM_ROOT/journal/log")
	"$QVM" update sn "k=$i" || break
	[ "$(stat -c %s "$QVM_ROOT/journal/log")" -lt "$size" ] && compacted=1 && break
done
is "$compacted" 1 "the journal was compacted"
is "$(tags sn)" "$before" "... the tree is the same after it"

# refusals
run "$QVM" snapshot-revert sn nope
is "$RC" 1 "revert to an unknown snapshot is refused"
like "$ERR" "vm 'sn' has no snapshot 'nope'; see qvm snapshot-list sn" "... naming the vm and the snapshot"
run "$QVM" snapshot-delete sn 42
like "$ERR" "vm 'sn' has no snapshot '42'" "delete of an unknown id is refused"
run "$QVM" snapshot-create sn base
like "$ERR" "vm 'sn' has a snapshot tagged 'base' already" "a tag in use is refused"
run "$QVM" snapshot-create sn 'bad/tag'
like "$ERR" "invalid snapshot tag 'bad/tag'" "an invalid tag is refused"
run "$QVM" snapshot-create sn 7
like "$ERR" "snapshot tag '7' is all digits" "an all-digit tag is refused (ids are numbers)"

# ---- a second stopped vm: vm snapshots and disk snapshots, failures, crash points ----------
define t "" --machine pc --disk 16M --disk 8M
TID=$(vm_id t)
T0=$QVM_ROOT/vms/$TID/disk0.qcow2
T1=$QVM_ROOT/vms/$TID/disk1.qcow2
dtags() { echo "$(disk_tags "$T0")|$(disk_tags "$T1")"; }
reads() { qemu-io -f qcow2 -r -c "read -q -P $2 0 64k" "$1" >/dev/null 2>&1; }

# a disk snapshot's name is refused for a vm snapshot: revert and delete
# would otherwise take the user's disk snapshot for the vm snapshot's
run "$QVM" disk-snapshot-create t 0 A
is "$RC" 0 "disk-snapshot-create t 0 A" || diag "$ERR"
qemu-io -f qcow2 -c "write -q -P 0x11 0 64k" "$T0" >/dev/null
run "$QVM" snapshot-create t A
is "$RC" 1 "snapshot-create with the tag of a disk snapshot is refused"
like "$ERR" "^qvm: cannot snapshot 't': disk 0 of 't' holds an internal snapshot named 'A' already \(a disk snapshot: see qvm disk-snapshot-list t 0\)" \
	"... naming the disk and the disk snapshot"
is "$(tags t)|$(dtags)" "|A|" "... no vm snapshot, the disk snapshot alone on disk 0"
ok "... and disk 0 was not touched (still 0x11)" reads "$T0" 0x11
run "$QVM" disk-snapshot-create t 1 snap-1
run "$QVM" snapshot-create t
is "$RC" 0 "snapshot-create without a tag" || diag "$ERR"
like "$OUT" "snapshot 1 'snap-1-2' taken" "... skips snap-1, which a disk holds"
run "$QVM" snapshot-delete t snap-1-2
is "$RC:$(dtags)" "0:A|snap-1" "deleting it leaves the disk snapshots alone"
# a vm snapshot's part of a disk is left alone by the disk-snapshot commands
run "$QVM" snapshot-create t V
is "$RC" 0 "snapshot V" || diag "$ERR"
run "$QVM" disk-snapshot-delete t 0 V
is "$RC" 1 "disk-snapshot-delete of a vm snapshot's part is refused"
like "$ERR" "it is disk 0's part of vm snapshot 2 'V'; delete that with qvm snapshot-delete t V" "... saying what to do"
run "$QVM" disk-snapshot-delete t 1 snap-1
is "$RC:$(dtags)" "0:A V|V" "a disk snapshot of the user's is deleted as asked"
run "$QVM" disk-snapshot-create t 1 W
run "$QVM" disk-snapshot-delete t 1 W
# a name held twice on a disk (one made by hand) is never guessed at
qemu-img snapshot -c V "$T1"
run "$QVM" snapshot-revert t V
is "$RC" 1 "revert to a vm snapshot whose name a disk holds twice is refused"
like "$ERR" "disk 1 of 't' holds 2 internal snapshots named 'V', so qvm cannot tell which one belongs to the vm snapshot" \
	"... saying so"
run "$QVM" snapshot-delete t V
like "$RC:$ERR" "^1:.*holds 2 internal snapshots named 'V'" "delete is refused too"
is "$(dtags)|$(tags t)" "A V|V V|2:V:0" "... nothing was deleted, from the disks or the tree"
qemu-img snapshot -d V "$T1"
run "$QVM" snapshot-delete t V
is "$RC:$(dtags)|$(tags t)" "0:A||" "with one 'V' left per disk the delete goes through"
run "$QVM" disk-snapshot-revert t 0 A
ok "the user's disk snapshot A still holds what it held (zeros)" reads "$T0" 0
run "$QVM" disk-snapshot-delete t 0 A

# a snapshot that fails costs no older one: pruning comes after
run "$QVM" snapshot-create t P1
run "$QVM" snapshot-create t P2
run "$QVM" update t snapshots.max=2
run env QVM_FAIL_AT=snapshot-create-after-disk "$QVM" snapshot-create t P3
is "$RC" 1 "a snapshot-create failing once disk 0 took it (QVM_FAIL_AT)"
like "$ERR" "cannot snapshot 't': injected failure" "... says it failed"
is "$(tags t)" "3:P1:0 4:P2:3" "... both older snapshots are kept at the maximum"
is "$(dtags)" "P1 P2|P1 P2" "... and P3 is in no disk (rolled back)"
run "$QVM" snapshot-create t P3
is "$RC" 0 "P3 taken" || diag "$ERR"
is "$(tags t)|$(dtags)" "4:P2:0 5:P3:4|P2 P3|P2 P3" "... then the oldest is pruned"
like "$("$QVM" history t | tr '\n' '|')" "snapshot 5 'P3' taken.*snapshot 3 'P1' deleted \(pruned: at most 2 snapshots\)" \
	"history: the new one recorded first, the pruning after"
run "$QVM" update t snapshots.max=

# crash points: the next command finishes or rolls back, the tree and the disks agree
for point in snapshot-create-after-intent snapshot-delete-after-intent snapshot-delete-before-record \
	snapshot-revert-after-intent snapshot-revert-before-record; do
	case $point in
	snapshot-create-*)
		before="$(tags t)|$(dtags)"
		run env QVM_CRASH_AT=$point "$QVM" snapshot-create t C
		is "$RC" 99 "$point: qvm died there"
		is "$(tags t)|$(dtags)" "$before" "$point: the next command rolls it back: no C anywhere"
		run "$QVM" snapshot-create t C
		is "$RC" 0 "$point: the tag is free again" || diag "$ERR"
		run "$QVM" snapshot-delete t C
		;;
	snapshot-delete-*)
		run "$QVM" snapshot-create t D
		before="$(tags t)|$(dtags)"
		run env QVM_CRASH_AT=$point "$QVM" snapshot-delete t D
		is "$RC" 99 "$point: qvm died there"
		like "$(tags t)|$(dtags)" "^[^D]*$" "$point: the next command finishes it: D is in neither the tree nor a disk"
		;;
	snapshot-revert-*)
		run "$QVM" snapshot-create t R
		rid=$(current t)
		qemu-io -f qcow2 -c "write -q -P 0x44 0 64k" "$T0" >/dev/null
		qemu-io -f qcow2 -c "write -q -P 0x44 0 64k" "$T1" >/dev/null
		run env QVM_CRASH_AT=$point "$QVM" snapshot-revert t R
		is "$RC" 99 "$point: qvm died there"
		is "$(current t)" "$rid" "$point: the next command finishes it: R is current"
		ok "$point: ... and both disks are back (not 0x44)" eval '! reads "$T0" 0x44 && ! reads "$T1" 0x44'
		run "$QVM" snapshot-delete t R
		;;
	esac
	is "$(state t)" PENDING "$point: t is PENDING"
	is "$(open_intents "$TID")" "" "$point: no intent is left open in the journal"
done
run "$QVM" delete t
is "$RC" 0 "delete t" || diag "$ERR"

# ---- a running vm: QEMU's snapshot jobs ----------------------------------------------------
run "$QVM" start sn
is "$RC" 0 "start" || diag "$ERR"
if ! wait_for_file_line "$LOG" '^QVM-COUNTER 3$' $BOOT_S; then
	explain sn
	bail_out "the guest does not boot or count"
fi
ok "the guest counts"
# the counter at the saved moment lies between the last line before the
# command and the last after it (a line may still be on its way)
NB=$(last_counter)
run "$QVM" snapshot-create sn A
is "$RC" 0 "snapshot-create of a running vm (memory)" || diag "$ERR"
like "$OUT" "snapshot 4 'A' taken \(memory and disks\)" "... with its memory"
N=$(last_counter)
diag "counter when A was taken: $NB..$N"
is "$(state sn)" "ACTIVE/RUNNING" "ACTIVE/RUNNING again after the snapshot"
run "$QVM" history sn
like "$OUT" "ACTIVE/SNAPSHOT +taking a snapshot" "history: ACTIVE/SNAPSHOT while it was taken"
# the memory state's size, as the disk's snapshot table has it (VM SIZE),
# and one time for A: when it was complete, in the tree and in history
a_json=$("$QVM" snapshot-list sn --json | json 'json.dumps([s for s in d["snapshots"] if s["tag"] == "A"][0])')
vm_size=$(qemu-img info -U -f qcow2 --output=json -- "$D0" |
	json '[s["vm-state-size"] for s in d.get("snapshots", []) if s["name"] == "A"][0]')
is "$(json 'd["memory"], d["vmstate_disk"], d["vmstate_size"]' <<<"$a_json")" "True 0 $vm_size" \
	"A: memory, its state on disk 0 with the size qemu-img lists (no vmstate 0 beside memory true)"
ok "... a size above nothing ($vm_size)" test "${vm_size:-0}" -gt 0
is "$(json 'd["created_ms"]' <<<"$a_json")" \
	"$("$QVM" history sn --json | json '[r["time_ms"] for r in d if r["type"] == "snapshot-add"][-1]')" \
	"A's time in snapshot-list is its history record's (the end of the snapshot)"
ok "the guest counts on: $((N + 5)) printed" wait_for_file_line "$LOG" "^QVM-COUNTER $((N + 5))$" 60
run "$QVM" snapshot-revert sn A
is "$RC" 0 "snapshot-revert of a running vm" || diag "$ERR"
at=$(line_count "$LOG")
V=$(counter_after "$at")
diag "first counter after the revert: $V"
ok "the guest continues from the saved moment: next counter $V is about $N, not $((N + 6))" \
	test -n "$V" -a "${V:-0}" -ge "$NB" -a "${V:-99}" -le $((N + 2))
is "$(state sn)" "ACTIVE/RUNNING" "ACTIVE/RUNNING after the revert"

# the tree: A, B, revert to A, C -> C's parent is A
run "$QVM" snapshot-create sn B
is "$RC" 0 "snapshot B" || diag "$ERR"
run "$QVM" snapshot-revert sn A
is "$RC" 0 "revert to A" || diag "$ERR"
run "$QVM" snapshot-create sn C
is "$RC" 0 "snapshot C" || diag "$ERR"
is "$(tags sn)" "1:base:0 4:A:1 5:B:4 6:C:4" "tree: B and C are both children of A"
is "$(current sn)" 6 "current: C"
run "$QVM" snapshot-list sn
like "$OUT" "\`-- 4 A  \[memory, RUNNING, [^]]*\]
    \|-- 5 B  \[memory, RUNNING, [^]]*\]
    \`-- 6 C  \[memory, RUNNING, [^]]*\]  <- current" "snapshot-list draws the tree"

# a snapshot without memory cannot be loaded into a running vm
run "$QVM" snapshot-create sn disksonly --no-memory
is "$RC" 0 "--no-memory on a running vm" || diag "$ERR"
like "$OUT" "'disksonly' taken \(disks only\)" "... disks only"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "A B C base disksonly|A B C base disksonly" \
	"qemu-img: every snapshot in both disks"
run "$QVM" snapshot-revert sn disksonly
is "$RC" 1 "revert of a memory-less snapshot while running is refused"
like "$ERR" "cannot revert 'sn' to snapshot 'disksonly' while it runs: the snapshot holds no memory.*power it off \(qvm poweroff sn\)" \
	"... saying why and what to do"
is "$(state sn)" "ACTIVE/RUNNING" "... and the vm runs on"

# crash in a running vm's snapshot: rolled back, the guest runs on
run env QVM_CRASH_AT=snapshot-create-before-record "$QVM" snapshot-create sn lost
is "$RC" 99 "crash point snapshot-create-before-record (running vm)"
is "$(state sn)" "ACTIVE/SNAPSHOT" "... left ACTIVE/SNAPSHOT"
run "$QVM" snapshot-list sn
unlike=$(grep -c "lost" <<<"$OUT")
is "$unlike" 0 "the next command: no 'lost' in the tree"
is "$(state sn)" "ACTIVE/RUNNING" "... ACTIVE/RUNNING again"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "A B C base disksonly|A B C base disksonly" \
	"... and 'lost' is in no disk"
at=$(line_count "$LOG")
ok "... the guest counts on" counter_after "$at"

# pruning: at most 2
run "$QVM" update sn snapshots.max=2
is "$RC" 0 "update snapshots.max=2" || diag "$ERR"
run "$QVM" snapshot-create sn E
is "$RC" 0 "snapshot E past the maximum" || diag "$ERR"
is "$(tags sn)" "7:disksonly:0 8:E:7" "the oldest were pruned: 2 left"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "E disksonly|E disksonly" "... from the disks too"
run "$QVM" history sn
like "$OUT" "snapshot 1 'base' deleted \(pruned: at most 2 snapshots\)" "history: the pruning"
run "$QVM" snapshot-delete sn E
is "$RC" 0 "snapshot-delete of a running vm" || diag "$ERR"
is "$(tags sn)" "7:disksonly:0" "... gone from the tree"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "disksonly|disksonly" "... and from the disks"

# a running vm: a disk snapshot's name is refused for a vm snapshot (the
# snapshot-save job would refuse it, and the rollback took the user's one)
run "$QVM" disk-snapshot-create sn 0 R
is "$RC" 0 "live disk-snapshot-create sn 0 R" || diag "$ERR"
run "$QVM" snapshot-create sn R
is "$RC" 1 "snapshot-create R on the running vm is refused"
like "$ERR" "disk 0 of 'sn' holds an internal snapshot named 'R' already" "... naming the disk snapshot"
is "$(disk_tags "$D0")|$(disk_tags "$D1")|$(tags sn)" "R disksonly|disksonly|7:disksonly:0" \
	"... which is still on disk 0; the tree is unchanged"
is "$(state sn)" "ACTIVE/RUNNING" "... and the vm runs on"
run "$QVM" disk-snapshot-delete sn 0 R

# crash points of a running vm's create, delete and revert after the intent
for point in snapshot-create-after-intent snapshot-delete-after-intent snapshot-revert-after-intent; do
	case $point in
	snapshot-create-*)
		run env QVM_CRASH_AT=$point "$QVM" snapshot-create sn X
		is "$RC" 99 "$point (running): qvm died there"
		is "$(tags sn)|$(disk_tags "$D0")|$(disk_tags "$D1")" "7:disksonly:0|disksonly|disksonly" \
			"$point (running): the next command rolls it back"
		;;
	snapshot-delete-*)
		run "$QVM" snapshot-create sn K
		run env QVM_CRASH_AT=$point "$QVM" snapshot-delete sn K
		is "$RC" 99 "$point (running): qvm died there"
		is "$(tags sn)|$(disk_tags "$D0")|$(disk_tags "$D1")" "7:disksonly:0|disksonly|disksonly" \
			"$point (running): the next command finishes it: K is gone"
		;;
	snapshot-revert-*)
		run "$QVM" snapshot-create sn M
		mid=$(current sn)
		run env QVM_CRASH_AT=$point "$QVM" snapshot-revert sn M
		is "$RC" 99 "$point (running): qvm died there"
		is "$(current sn)" "$mid" "$point (running): the next command finishes it: M is current"
		run "$QVM" snapshot-delete sn M
		;;
	esac
	is "$(state sn)" "ACTIVE/RUNNING" "$point (running): ACTIVE/RUNNING again"
	is "$(open_intents "$ID")" "" "$point (running): no intent left open"
	at=$(line_count "$LOG")
	ok "$point (running): the guest counts on" counter_after "$at"
done

# a disk attached after a snapshot holds no part of it: a revert is refused
# until it is detached (the guest would lose it, the definition keep it)
run "$QVM" snapshot-create sn Mem
is "$RC" 0 "snapshot Mem of the running vm" || diag "$ERR"
NM=$(last_counter)
run "$QVM" disk-attach sn --size 8M
is "$RC" 0 "disk-attach after Mem (hot-plugged)" || diag "$ERR"
run "$QVM" snapshot-revert sn Mem
is "$RC" 1 "revert to Mem with a disk attached since is refused"
like "$ERR" "disk 2 was attached to 'sn' after snapshot 'Mem' was taken and holds no part of it; detach it first \(qvm disk-detach sn 2\)" \
	"... naming the disk and what to do"
is "$(state sn)" "ACTIVE/RUNNING" "... and the vm runs on"
run "$QVM" disk-detach sn 2
is "$RC" 0 "disk-detach it" || diag "$ERR"

# a memory snapshot reverted while off: the disks only, and it says so;
# --running starts the vm from the saved moment
run "$QVM" poweroff sn --hard
is "$RC" 0 "poweroff" || diag "$ERR"
run "$QVM" snapshot-revert sn Mem
is "$RC" 0 "revert to Mem while off" || diag "$ERR"
like "$OUT" "^sn: reverted to snapshot 'Mem' \(disks only: the vm is off, so its memory state was not loaded; qvm snapshot-revert sn Mem --running starts it from there\)$" \
	"... says the memory state was not loaded"
run "$QVM" --json snapshot-revert sn Mem
is "$(json 'str(d["memory"]) + str(d["snapshot_memory"]) + str(d["started"])' <<<"$OUT")" "FalseTrueFalse" \
	"--json: memory not loaded (the snapshot has it), not started"
is "$(state sn)" POWEROFF "... and the vm stays off"
at=$(line_count "$LOG")
run "$QVM" snapshot-revert sn Mem --running
is "$RC" 0 "revert --running to Mem while off" || diag "$ERR"
like "$OUT" "^sn: reverted to snapshot 'Mem' \(memory and disks\); started from it$" "... memory and disks, started"
is "$(state sn)" "ACTIVE/RUNNING" "... ACTIVE/RUNNING"
V=$(counter_after "$at")
diag "counter at Mem: $NM; first after revert --running: $V"
ok "the guest continues from Mem's moment (counter $V, about $NM), not from a boot" \
	test -n "$V" -a "${V:-0}" -ge "$NM" -a "${V:-99}" -le $((NM + 2))
run "$QVM" snapshot-delete sn Mem

# fresh disks hold no snapshots
run "$QVM" delete sn --recreate
is "$RC" 0 "delete --recreate of the running vm" || diag "$ERR"
run "$QVM" snapshot-list sn
like "$OUT" "sn has no snapshots" "... its tree is empty"
is "$(disk_tags "$D0")|$(disk_tags "$D1")" "|" "... as its new disks"

# ---- a revert brings the definition back: memory, vcpus, disk sizes, cdrom -----------
define dv "" --machine pc --disk 16M --disk 8M
dd if=/dev/zero of="$QVM_TEST_ROOT/a.iso" bs=1M count=1 status=none
dd if=/dev/zero of="$QVM_TEST_ROOT/b.iso" bs=1M count=1 status=none
export QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT
run "$QVM" cdrom-insert dv "$QVM_TEST_ROOT/a.iso"
is "$RC" 0 "cdrom-insert a.iso" || diag "$ERR"
def_of() { "$QVM" show dv --json | json 'd["definition"]'"$1"; }
hw() { echo "$(def_of '["memory"]') $(def_of '["vcpus"]') $(def_of '["cdrom"]') $(def_of '["disks"][1]["size"]')"; }
before=$(hw)
run "$QVM" snapshot-create dv H
is "$RC" 0 "snapshot H of dv (off)" || diag "$ERR"
run "$QVM" update dv memory=384M vcpus=2
is "$RC" 0 "memory and vcpus changed after H" || diag "$ERR"
run "$QVM" disk-resize dv 1 24M
is "$RC" 0 "disk 1 grown after H" || diag "$ERR"
run "$QVM" cdrom-insert dv "$QVM_TEST_ROOT/b.iso"
is "$RC" 0 "another cdrom after H" || diag "$ERR"
ok "the definition differs from H's" test "$(hw)" != "$before"
run "$QVM" disk-attach dv --size 8M
is "$RC" 0 "a disk attached after H" || diag "$ERR"
run "$QVM" snapshot-revert dv H
is "$RC" 1 "revert to H with a disk attached since is refused"
like "$ERR" "disk 2 was attached to 'dv' after snapshot 'H' was taken" "... naming the disk"
is "$(def_of '["disks"].__len__()')" 3 "... and nothing changed"
run "$QVM" disk-detach dv 2
is "$RC" 0 "disk-detach it" || diag "$ERR"
run "$QVM" snapshot-revert dv H
is "$RC" 0 "revert to H" || diag "$ERR"
is "$(hw)" "$before" "the definition is H's again: memory, vcpus, cdrom, disk 1's size"
is "$(qemu-img info -f qcow2 --output=json "$QVM_ROOT/vms/$(vm_id dv)/disk1.qcow2" | json 'd["virtual-size"]')" \
	"$(def_of '["disks"][1]["size"]')" "... and disk 1's file agrees with it"
run "$QVM" history dv
like "$OUT" "reverted to snapshot [0-9]+ 'H'" "history: the revert"
# a revert a crash cut short is finished with the definition too
run "$QVM" update dv memory=384M vcpus=2
run "$QVM" disk-resize dv 1 24M
run env QVM_CRASH_AT=snapshot-revert-disk "$QVM" snapshot-revert dv H
is "$RC" 99 "crash point snapshot-revert-disk (dv)"
run "$QVM" snapshot-list dv
is "$RC" 0 "the next command finishes the revert" || diag "$ERR"
is "$(hw)" "$before" "... the definition is H's again"
run "$QVM" delete dv
is "$RC" 0 "delete dv" || diag "$ERR"

run "$QVM" delete sn
is "$RC" 0 "delete the vm" || diag "$ERR"
ok "no qemu runs under the test root" test -z "$(pids_matching "$QVM_ROOT")"
is "$(pids_matching "$QVM_ROOT")" "" "no qemu or supervisor runs under the test root at the end"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
