#!/usr/bin/env bash
# The disks of a vm end to end, with real QEMU under TCG and the test guest
# (qvm.sizes=1: its QVM-DEVICES lines list block devices with sizes):
# live attach/resize/snapshot/detach as the guest sees them, the refusals,
# crash points in attach and detach settled by the next command (QEMU's
# block nodes, the definition and the files agree, nothing leaked), disks
# and cd-rom changed while the vm is off and used at the next start, disk
# snapshots reverted with qemu-io checking the data, delete --wipe (the
# data read back through an open fd is zeros), a live cd-rom change that
# fails or is interrupted (the old medium back in), raw disks (create,
# attach, resize, refused snapshots), every crash point of a live disk
# operation in one loop, and a q35 vm taking a hot-plugged raw disk in a
# pcie-root-port, a guest that does not release a disk. Four short guest
# boots.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
for p in qemu-img qemu-io python3; do
	command -v $p >/dev/null || bail_out "no $p"
done
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg
export QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT/img
mkdir -p "$QVM_TEST_ROOT/img"

# From tests/lib/vm.sh: run, json, define, vm_create, vm_id, state, explain.
# disk ids in the definition: "0 1"
disk_ids() { "$QVM" show "$1" --json | json '" ".join(str(x["id"]) for x in d["definition"]["disks"])'; }
disk_size() { "$QVM" show "$1" --json | json "[x['size'] for x in d['definition']['disks'] if x['id'] == $2][0]"; }
# block node names QEMU has (query-named-block-nodes), one line
nodes() { vm_qmp "$1" query-named-block-nodes '{"flat":true}' | json '" ".join(sorted(n["node-name"] for n in d if n["node-name"].startswith("disk")))'; }
# the last QVM-DEVICES line of a console log after line $2
devices_line() { wait_for_file_line "$1" "^QVM-DEVICES .*$2" "$3" "${4:-0}"; }

# vm_files DIR: the files of a vm folder but its logs, one line
vm_files() { ls -A "$1" | grep -v -E '^(console|qemu|supervisor)\.log$' | tr '\n' ' '; }

# ---- boot 1: a pc vm with one disk -------------------------------------------
define g "qvm.sizes=1" --disk 64M
gid=$(vm_id g)
gdir=$QVM_ROOT/vms/$gid
glog=$gdir/console.log
run "$QVM" start g
is "$RC" 0 "start g" || diag "$ERR"
if ! wait_for_file_line "$glog" '^QVM-READY ' $BOOT_S; then
	explain g
	bail_out "the guest does not boot"
fi
like "$(tr -d '\r' <"$glog" | grep '^QVM-DEVICES' | tail -1)" "block=vda:64M$" "the guest sees its one disk"

# ---- live attach --------------------------------------------------------------
after=$(line_count "$glog")
run "$QVM" disk-attach g --size 32M
is "$RC" 0 "disk-attach --size 32M on a running vm" || diag "$ERR"
like "$OUT" "^g: disk 1 attached \(live\): $gdir/disk1.qcow2$" "... says disk 1 was attached live, and its file"
if devices_line "$glog" "block=vda:64M,vdb:32M$" 30 "$after"; then
	ok "the guest sees vdb of 32M"
else
	not_ok "the guest sees vdb of 32M"
	explain g
fi
is "$(disk_ids g)" "0 1" "show: disk 1 is in the definition"
is "$(state g)" "ACTIVE/RUNNING" "back to ACTIVE/RUNNING"
like "$("$QVM" history g)" "ACTIVE/HOTPLUG +attaching a disk" "history: ACTIVE/HOTPLUG while it ran"
is "$(nodes "$gid")" "disk0 disk1" "qemu has the block node disk1"
is "$(qemu-img info --output=json -U "$gdir/disk1.qcow2" | json 'd["format"]')" qcow2 "disk1 is a qcow2 file"

run "$QVM" disk-attach g --size 8M --bus ide
is "$RC" 1 "an ide disk cannot be hot-plugged"
like "$ERR" "cannot attach an ide disk to 'g' while it runs \(ide has no hotplug\)" "... with a clear message"
is "$(disk_ids g)" "0 1" "... and the definition is unchanged"
ok "... and no file is left" test ! -e "$gdir/disk2.qcow2"

# ---- live resize ----------------------------------------------------------------
run "$QVM" disk-resize g 1 16M
is "$RC" 1 "resize to a smaller size without --shrink is refused"
like "$ERR" "cannot shrink disk 1 of 'g' from 32M to 16M without --shrink" "... saying so"
is "$(disk_size g 1)" $((32 << 20)) "... and the size is unchanged"
after=$(line_count "$glog")
run "$QVM" disk-resize g 1 48M
is "$RC" 0 "live resize to 48M" || diag "$ERR"
if devices_line "$glog" "vdb:48M$" 30 "$after"; then
	ok "the guest sees vdb grow to 48M"
else
	not_ok "the guest sees vdb grow to 48M"
	explain g
fi
is "$(disk_size g 1)" $((48 << 20)) "the definition has the new size"

# a paused vm: resize (and cd-rom, disk snapshots) work and it stays paused;
# attach and detach need it running
run "$QVM" pause g
is "$RC" 0 "pause g" || diag "$ERR"
run "$QVM" disk-resize g 1 56M
is "$RC:$(disk_size g 1):$(state g)" "0:$((56 << 20)):ACTIVE/PAUSED" "disk-resize of a paused vm works; it stays ACTIVE/PAUSED"
run "$QVM" disk-attach g --size 8M
is "$RC" 1 "disk-attach of a paused vm is refused"
like "$ERR" "it is ACTIVE/PAUSED; this needs ACTIVE/RUNNING or a vm that is off" "... naming the states it needs"
run "$QVM" unpause g
is "$RC:$(state g)" "0:ACTIVE/RUNNING" "unpause g"

# ---- live disk snapshot -----------------------------------------------------------
run "$QVM" disk-snapshot-create g 1 live1
is "$RC" 0 "disk-snapshot-create on a running vm" || diag "$ERR"
like "$("$QVM" history g)" "ACTIVE/SNAPSHOT +disk snapshot" "history: ACTIVE/SNAPSHOT meanwhile"
run "$QVM" disk-snapshot-list g 1
like "$OUT" $'\n1 +live1 ' "disk-snapshot-list shows it (id 1, tag live1)"
run "$QVM" disk-snapshot-create g 1 live1
is "$RC" 1 "a second snapshot with the same tag is refused"
like "$ERR" "has a snapshot named 'live1' already" "... saying so"
run "$QVM" disk-snapshot-revert g 1 live1
is "$RC" 1 "revert while running is refused"
like "$ERR" "cannot revert disk 1 of 'g' while it runs \(ACTIVE/RUNNING\).*poweroff it first" "... saying the vm must be off"
run "$QVM" disk-snapshot-delete g 1 live1
is "$RC" 0 "live disk-snapshot-delete" || diag "$ERR"
run "$QVM" disk-snapshot-list g 1
unlike_live=$(grep -c live1 <<<"$OUT")
is "$unlike_live" 0 "... and it is gone from the list"

# ---- live detach ------------------------------------------------------------------
run "$QVM" disk-detach g 7
is "$RC" 1 "detach of an unknown disk id is refused"
like "$ERR" "vm 'g' has no disk 7; its disks are: 0, 1" "... naming the disks there are"
after=$(line_count "$glog")
run "$QVM" disk-detach g 1
is "$RC" 0 "live disk-detach" || diag "$ERR"
like "$OUT" "disk 1 detached \(live\); its file was removed: $gdir/disk1.qcow2" "... says the file qvm made was removed"
if devices_line "$glog" "block=vda:64M$" 30 "$after"; then
	ok "vdb is gone in the guest"
else
	not_ok "vdb is gone in the guest"
	explain g
fi
is "$(disk_ids g)" "0" "show: disk 1 is gone"
is "$(nodes "$gid")" "disk0" "qemu has no node disk1 any more"
ok "the file is gone" test ! -e "$gdir/disk1.qcow2"

# ---- crash points ------------------------------------------------------------------
# after device_add: the guest has the disk, qvm died before recording it
after=$(line_count "$glog")
QVM_CRASH_AT=disk-attach-after-device "$QVM" disk-attach g --size 24M 2>/dev/null
is "$?" 99 "crash in disk-attach after device_add"
is "$(journal_state "$gid")" "ACTIVE/HOTPLUG" "... left ACTIVE/HOTPLUG"
"$QVM" list >/dev/null 2>&1
is "$(state g)" "ACTIVE/RUNNING" "the next command (list) settles it: ACTIVE/RUNNING"
is "$(disk_ids g)" "0 1" "... completed: disk 1 is in the definition"
is "$(nodes "$gid")" "disk0 disk1" "... as in qemu"
ok "... with its file" test -f "$gdir/disk1.qcow2"
ok "... and the guest has it" devices_line "$glog" "vdb:24M$" 30 "$after"

# after blockdev-add: qemu has a node but no device yet
QVM_CRASH_AT=disk-attach-after-blockdev "$QVM" disk-attach g --size 24M 2>/dev/null
is "$?" 99 "crash in disk-attach after blockdev-add"
is "$(nodes "$gid")" "disk0 disk1 disk2" "... qemu has the node disk2"
run "$QVM" disk-snapshot-list g 0
is "$RC" 0 "the next command on the vm runs" || diag "$ERR"
is "$(state g)" "ACTIVE/RUNNING" "... after rolling back: ACTIVE/RUNNING"
is "$(disk_ids g)" "0 1" "... disk 2 is not in the definition"
is "$(nodes "$gid")" "disk0 disk1" "... qemu's node disk2 is gone"
ok "... and its file is gone" test ! -e "$gdir/disk2.qcow2"

# after device_del: the guest lets go, qvm died before recording it
after=$(line_count "$glog")
QVM_CRASH_AT=disk-detach-after-device-del "$QVM" disk-detach g 1 2>/dev/null
is "$?" 99 "crash in disk-detach after device_del"
devices_line "$glog" "block=vda:64M$" 30 "$after" || true
"$QVM" list >/dev/null 2>&1
is "$(state g)" "ACTIVE/RUNNING" "the next command settles it: ACTIVE/RUNNING"
is "$(disk_ids g)" "0" "... completed: disk 1 is out of the definition"
is "$(nodes "$gid")" "disk0" "... and out of qemu"
ok "... and its file is gone" test ! -e "$gdir/disk1.qcow2"
is "$(ls "$gdir" | grep -c -v -E '^(disk0\.qcow2|console\.log|qemu\.log|supervisor\.log)$')" 0 \
	"no other file in the vm's folder"

# every other crash point of a live attach, detach, resize and disk
# snapshot, one booted guest for all: the next command (list) completes or
# rolls back, and the definition, qemu's nodes, the files and the guest agree
for point in disk-attach-after-intent disk-before-done disk-detach-after-intent disk-detach-after-device \
	disk-detach-before-define disk-resize-after-intent disk-snapshot-after-intent; do
	case $point in
	disk-attach-*)
		want_ids="0" want_nodes="disk0" want_files="disk0.qcow2 " want_dev="block=vda:64M$"
		;;
	disk-before-done)
		want_ids="0 1" want_nodes="disk0 disk1" want_files="disk0.qcow2 disk1.qcow2 " want_dev="vdb:12M$"
		;;
	disk-detach-*)
		want_ids="0" want_nodes="disk0" want_files="disk0.qcow2 " want_dev="block=vda:64M$"
		;;
	*)
		want_ids="0 1" want_nodes="disk0 disk1" want_files="disk0.qcow2 disk1.qcow2 " want_dev="vdb:20M$"
		;;
	esac
	# the detach, resize and snapshot points need disk 1 there first
	if [[ $point != disk-attach-* && $point != disk-before-done ]]; then
		after=$(line_count "$glog")
		run "$QVM" disk-attach g --size 12M
		is "$RC" 0 "$point: disk 1 attached first" || diag "$ERR"
		devices_line "$glog" "vdb:12M$" 30 "$after" || true
	fi
	after=$(line_count "$glog")
	case $point in
	disk-attach-* | disk-before-done) QVM_CRASH_AT=$point "$QVM" disk-attach g --size 12M 2>/dev/null ;;
	disk-detach-*) QVM_CRASH_AT=$point "$QVM" disk-detach g 1 2>/dev/null ;;
	disk-resize-*) QVM_CRASH_AT=$point "$QVM" disk-resize g 1 20M 2>/dev/null ;;
	disk-snapshot-*) QVM_CRASH_AT=$point "$QVM" disk-snapshot-create g 1 s1 2>/dev/null ;;
	esac
	is "$?" 99 "$point: qvm died there"
	"$QVM" list >/dev/null 2>&1
	is "$(state g)" "ACTIVE/RUNNING" "$point: the next command settles it: ACTIVE/RUNNING"
	is "$(open_intents "$gid")" "" "$point: ... no intent left open"
	is "$(disk_ids g)" "$want_ids" "$point: ... the definition has disks $want_ids"
	is "$(nodes "$gid")" "$want_nodes" "$point: ... as qemu: $want_nodes"
	is "$(vm_files "$gdir")" "$want_files" "$point: ... as the folder: $want_files"
	if devices_line "$glog" "$want_dev" 30 "$after" || devices_line "$glog" "$want_dev" 1; then
		ok "$point: ... as the guest ($want_dev)"
	else
		not_ok "$point: ... as the guest ($want_dev)"
		explain g
	fi
	if [ "$point" = disk-resize-after-intent ]; then
		is "$(disk_size g 1)" $((20 << 20)) "$point: ... the resize was finished: 20M recorded"
	fi
	if [ "$point" = disk-snapshot-after-intent ]; then
		run "$QVM" disk-snapshot-create g 1 s1
		is "$RC" 0 "$point: ... and the snapshot can be taken now" || diag "$ERR"
	fi
	# back to disk 0 alone for the next point
	if [ "$(disk_ids g)" = "0 1" ]; then
		after=$(line_count "$glog")
		run "$QVM" disk-detach g 1
		is "$RC" 0 "$point: disk 1 detached again" || diag "$ERR"
		devices_line "$glog" "block=vda:64M$" 30 "$after" || true
	fi
done

# ---- the vm off: definition and files only ----------------------------------------
run "$QVM" poweroff g --hard
is "$RC" 0 "poweroff" || diag "$ERR"
run "$QVM" disk-attach g --size 8M --bus ide
is "$RC" 0 "disk-attach of an ide disk while off" || diag "$ERR"
like "$OUT" "disk 1 attached \(in the definition; used at next start\)" "... definition only"
ok "... its file is made" test -f "$gdir/disk1.qcow2"
dd if=/dev/zero of="$QVM_TEST_ROOT/img/a.iso" bs=1M count=1 status=none
dd if=/dev/zero of="$QVM_TEST_ROOT/img/b.iso" bs=1M count=2 status=none
run "$QVM" cdrom-insert g "$QVM_TEST_ROOT/img/a.iso"
is "$RC" 0 "cdrom-insert while off" || diag "$ERR"
like "$("$QVM" show g)" "CDROM +$QVM_TEST_ROOT/img/a.iso" "show: the cd-rom"
run "$QVM" cdrom-insert g /etc/hostname
is "$RC" 1 "an ISO outside the allowed folders is refused"
like "$ERR" "not under an allowed folder" "... saying so"

# offline disk snapshot, checked with qemu-io on the data
d0=$gdir/disk0.qcow2
ok "write 0x5a into disk 0" qemu-io -f qcow2 -c 'write -P 0x5a 0 64k' "$d0"
run "$QVM" disk-snapshot-create g 0 before
is "$RC" 0 "disk-snapshot-create while off" || diag "$ERR"
ok "write 0x33 over it" qemu-io -f qcow2 -c 'write -P 0x33 0 64k' "$d0"
run "$QVM" disk-snapshot-list g 0
like "$OUT" "before" "disk-snapshot-list while off"
run "$QVM" disk-snapshot-revert g 0 before
is "$RC" 0 "disk-snapshot-revert while off" || diag "$ERR"
out=$(qemu-io -f qcow2 -c 'read -P 0x5a 0 64k' "$d0" 2>&1)
unlike=$(grep -c -i 'fail' <<<"$out")
is "$unlike" 0 "the old content (0x5a) is back" || diag "$out"
run "$QVM" disk-snapshot-revert g 0 nope
is "$RC" 1 "revert to an unknown snapshot is refused"
like "$ERR" "disk 0 of 'g' has no snapshot 'nope'" "... naming it"
run "$QVM" disk-snapshot-create g 0 123
is "$RC" 2 "an all-digit tag is a usage error"
run "$QVM" disk-snapshot-delete g 0 1
is "$RC" 0 "disk-snapshot-delete by id while off" || diag "$ERR"
is "$(qemu-img info --output=json "$d0" | json 'len(d.get("snapshots", []))')" 0 "... the qcow2 has no snapshot left"

# offline resize
run "$QVM" disk-resize g 0 128M
is "$RC" 0 "disk-resize while off" || diag "$ERR"
is "$(qemu-img info --output=json "$d0" | json 'd["virtual-size"]')" $((128 << 20)) "qemu-img sees 128M"

# a crash in an offline resize: the file resized, the definition not yet
QVM_CRASH_AT=disk-resize-after-resize "$QVM" disk-resize g 0 192M 2>/dev/null
is "$?" 99 "crash in an offline disk-resize after qemu-img resize"
is "$(disk_size g 0)" $((128 << 20)) "... the definition still has the old size"
run "$QVM" disk-snapshot-list g 0
is "$(disk_size g 0)" $((192 << 20)) "the next command completes it: the definition has 192M"
is "$(qemu-img info --output=json "$d0" | json 'd["virtual-size"]')" $((192 << 20)) "... as the file"

# a crash in an offline attach: the file made, the definition not
QVM_CRASH_AT=disk-attach-after-file "$QVM" disk-attach g --size 4M 2>/dev/null
is "$?" 99 "crash in an offline disk-attach after the file was made"
ok "... the file is there" test -f "$gdir/disk2.qcow2"
run "$QVM" disk-snapshot-list g 0
is "$(disk_ids g)" "0 1" "the next command rolls it back: not in the definition"
ok "... and the file is gone" test ! -e "$gdir/disk2.qcow2"

# ---- boot 2: what was changed while off is used -------------------------------------
after=$(line_count "$glog")
run "$QVM" start g
is "$RC" 0 "start again" || diag "$ERR"
if devices_line "$glog" "block=sda:8M,sr0:1M,vda:192M$" $BOOT_S "$after"; then
	ok "the guest sees the ide disk, the cd-rom and the grown disk"
else
	not_ok "the guest sees the ide disk, the cd-rom and the grown disk"
	explain g
fi
cd_file() { vm_qmp "$gid" query-block | json '[b.get("inserted", {}).get("file", "") for b in d if b.get("qdev", "").endswith("cdrom0")][0]'; }
run "$QVM" cdrom-eject g
is "$RC" 0 "live cdrom-eject" || diag "$ERR"
is "$(cd_file)" "" "qemu's cd-rom drive is empty"
run "$QVM" cdrom-insert g "$QVM_TEST_ROOT/img/b.iso"
is "$RC" 0 "live cdrom-insert" || diag "$ERR"
is "$(cd_file)" "$QVM_TEST_ROOT/img/b.iso" "qemu's cd-rom drive holds b.iso"
like "$("$QVM" show g)" "CDROM +$QVM_TEST_ROOT/img/b.iso" "show: b.iso"
# a cd-rom change that fails, or that qvm dies in, leaves the old medium in
cd_nodes() { vm_qmp "$gid" query-named-block-nodes '{"flat":true}' | json 'len([n for n in d if n["node-name"].startswith("cdrom0")])'; }
is "$(cd_nodes)" 1 "one cd-rom medium node in qemu"
run env QVM_FAIL_AT=cdrom-before-insert "$QVM" cdrom-insert g "$QVM_TEST_ROOT/img/a.iso"
is "$RC" 1 "a live cdrom-insert that fails once the old medium is out (QVM_FAIL_AT)"
like "$ERR" "cannot change the cd-rom of 'g': injected failure" "... says so"
is "$(cd_file)|$(cd_nodes)" "$QVM_TEST_ROOT/img/b.iso|1" "... the drive holds b.iso again, the new node is gone"
like "$("$QVM" show g)" "CDROM +$QVM_TEST_ROOT/img/b.iso" "... as the definition says"
is "$(state g)|$(open_intents "$gid")" "ACTIVE/RUNNING|" "... ACTIVE/RUNNING, nothing left open"
QVM_CRASH_AT=cdrom-after-remove "$QVM" cdrom-insert g "$QVM_TEST_ROOT/img/a.iso" 2>/dev/null
is "$?" 99 "qvm dies in a live cdrom-insert with the old medium out, the new not in"
is "$(cd_file)" "" "... the drive is empty"
"$QVM" list >/dev/null 2>&1
is "$(cd_file)|$(cd_nodes)" "$QVM_TEST_ROOT/img/b.iso|1" "the next command puts b.iso back, no stray node"
like "$("$QVM" show g)" "CDROM +$QVM_TEST_ROOT/img/b.iso" "... as the definition says"
is "$(state g)|$(open_intents "$gid")" "ACTIVE/RUNNING|" "... ACTIVE/RUNNING, nothing left open"
QVM_CRASH_AT=cdrom-before-define "$QVM" cdrom-insert g "$QVM_TEST_ROOT/img/a.iso" 2>/dev/null
is "$?" 99 "qvm dies in a live cdrom-insert once the drive holds a.iso"
"$QVM" list >/dev/null 2>&1
is "$(cd_file)|$(cd_nodes)" "$QVM_TEST_ROOT/img/a.iso|1" "the next command keeps a.iso in, no stray node"
like "$("$QVM" show g)" "CDROM +$QVM_TEST_ROOT/img/a.iso" "... and records it"
is "$(state g)|$(open_intents "$gid")" "ACTIVE/RUNNING|" "... ACTIVE/RUNNING, nothing left open"
run "$QVM" disk-detach g 1
is "$RC" 1 "an ide disk cannot be detached live" || diag "$OUT"
is "$(disk_ids g)" "0 1" "... it stays in the definition"
is "$(nodes "$gid")" "disk0 disk1" "... and in qemu"

# delete --wipe: the data is overwritten, not just unlinked. An fd kept
# open on each disk reads the file after its name is gone (a hard link
# would make qvm refuse to wipe, rightly: it would destroy the link's data)
exec 7<"$gdir/disk0.qcow2" 8<"$gdir/disk1.qcow2"
size0=$(stat -c %s "$gdir/disk0.qcow2")
size1=$(stat -c %s "$gdir/disk1.qcow2")
ok "disk 0 holds data before the delete" test "$(head -c "$size0" /dev/fd/7 | tr -d '\0' | wc -c)" -gt 0
run "$QVM" delete g --wipe
is "$RC" 0 "delete --wipe of the running vm" || diag "$ERR"
ok "its disks (the attached one too) are gone" test ! -e "$gdir"
is "$(head -c "$size0" /dev/fd/7 | tr -d '\0' | wc -c)" 0 "disk 0's data was overwritten with zeros"
is "$(head -c "$size1" /dev/fd/8 | tr -d '\0' | wc -c)" 0 "... and the attached disk 1's"
exec 7<&- 8<&-

# ---- raw disks, off: --disk SIZE,format=raw and disk-attach --format raw ---------
vm_create r "" --disk 32M --disk 8M,format=raw
is "$RC" 0 "create with a blank raw disk (--disk 8M,format=raw)" || diag "$ERR"
rid=$(vm_id r)
rdir=$QVM_ROOT/vms/$rid
is "$(vm_files "$rdir")" "disk0.qcow2 disk1.raw " "disk 1 is the raw file disk1.raw"
is "$(qemu-img info -f raw --output=json "$rdir/disk1.raw" | json 'd["virtual-size"]')|$(stat -c %s "$rdir/disk1.raw")" \
	"$((8 << 20))|$((8 << 20))" "... a plain file of 8M"
is "$("$QVM" show r --json | json '[x["format"] for x in d["definition"]["disks"]]')" "['qcow2', 'raw']" \
	"the definition says raw"
like "$("$QVM" argv r)" '"node-name":"disk1","driver":"raw","read-only":false,"file":\{"driver":"file","filename":"'"$rdir/disk1.raw"'"' \
	"qemu would open it with the raw driver"
run "$QVM" disk-attach r --size 4M --format raw
is "$RC" 0 "disk-attach --size 4M --format raw" || diag "$ERR"
like "$OUT" "disk 2 attached \(in the definition; used at next start\): $rdir/disk2.raw$" "... a raw file disk2.raw"
is "$(stat -c %s "$rdir/disk2.raw")" $((4 << 20)) "... of 4M"
run "$QVM" disk-attach r --size 4M --format vmdk
is "$RC" 2 "--format vmdk is a usage error"
run "$QVM" disk-resize r 1 16M
is "$RC:$(stat -c %s "$rdir/disk1.raw"):$(disk_size r 1)" "0:$((16 << 20)):$((16 << 20))" "a raw disk grows to 16M (file and definition)"
run "$QVM" disk-resize r 1 8M --shrink
is "$RC:$(stat -c %s "$rdir/disk1.raw")" "0:$((8 << 20))" "... and shrinks back with --shrink"
run "$QVM" snapshot-create r
is "$RC" 1 "snapshot-create of a vm with a raw disk is refused"
like "$ERR" "^qvm: cannot snapshot 'r': disk 1 of 'r' is raw: vm snapshots need every disk in qcow2" "... naming the disk"
run "$QVM" disk-snapshot-create r 2 s
is "$RC" 1 "disk-snapshot-create of a raw disk is refused"
like "$ERR" "cannot create a snapshot of disk 2 of 'r': it is a raw disk, and internal snapshots need qcow2" "... saying why"
is "$("$QVM" snapshot-list r --json | json 'len(d["snapshots"])')|$(disk_ids r)" "0|0 1 2" "... nothing changed"
qemu-io -f raw -c 'write -q -P 0x5a 0 64k' "$rdir/disk1.raw" >/dev/null
exec 7<"$rdir/disk1.raw"
ok "disk 1 holds data" test "$(head -c $((8 << 20)) /dev/fd/7 | tr -d '\0' | wc -c)" -gt 0
run "$QVM" delete r --wipe
is "$RC" 0 "delete --wipe of the vm with raw disks" || diag "$ERR"
is "$(head -c $((8 << 20)) /dev/fd/7 | tr -d '\0' | wc -c)" 0 "the raw disk's data was overwritten with zeros"
exec 7<&-
ok "its folder is gone" test ! -e "$rdir"

# ---- boot 3: a guest that does not release a disk (no ACPI PCI hotplug) ----------
vm_create n "qvm.sizes=1 acpiphp.disable=1" --disk 64M
nid=$(vm_id n)
run "$QVM" start n
is "$RC" 0 "start n (a guest without ACPI PCI hotplug)" || diag "$ERR"
if wait_for_file_line "$QVM_ROOT/vms/$nid/console.log" '^QVM-READY ' $BOOT_S; then
	run "$QVM" disk-attach n --size 16M
	is "$RC" 0 "attach to it (qemu has the disk; the guest does not look)" || diag "$ERR"
	# an update meanwhile waits for the vm lock, as every command does, and
	# is not lost under the detach's own rewrite of the definition
	"$QVM" disk-detach n 1 --timeout 3 >"$QVM_TEST_ROOT/detach.out" 2>"$QVM_TEST_ROOT/detach.err" &
	dpid=$!
	wait_state n ACTIVE/HOTPLUG 10
	QVM_LOCK_TIMEOUT_MS=500 run "$QVM" update n label.during=detach
	is "$RC" 1 "an update with a short lock timeout while the detach waits gives up"
	like "$ERR" "^qvm: cannot update 'n': vm 'n' is busy: another qvm command is working on it" "... saying the vm is busy, once"
	run "$QVM" update n label.during=detach
	is "$RC" 0 "an update with the default timeout waits for the detach, then works" || diag "$ERR"
	wait "$dpid"
	RC=$?
	ERR=$(cat "$QVM_TEST_ROOT/detach.err")
	is "$RC" 1 "detach: the guest does not release it: an error"
	like "$ERR" "cannot detach disk 1 from 'n': the guest did not release disk 1 within 3 s, so it stays attached and in the definition" \
		"... saying it stays attached and in the definition"
	is "$(disk_ids n)" "0 1" "... it is still in the definition"
	is "$(nodes "$nid")" "disk0 disk1" "... and in qemu"
	ok "... with its file" test -f "$QVM_ROOT/vms/$nid/disk1.qcow2"
	is "$(state n)" "ACTIVE/RUNNING" "... and the vm is ACTIVE/RUNNING"
	run "$QVM" update n label.after=detach
	is "$RC" 0 "an update once the detach ended works" || diag "$ERR"
	is "$("$QVM" show n --json | json 'd["definition"]["labels"].get("after")')" detach "... and is kept"
	is "$("$QVM" show n --json | json 'd["definition"]["labels"].get("during")')" detach "... as is the one that waited for the detach"
	run "$QVM" poweroff n --hard
	run "$QVM" disk-detach n 1
	is "$RC" 0 "once off, the detach is a definition change" || diag "$ERR"
	is "$(disk_ids n)" "0" "... disk 1 is gone"
	ok "... with its file" test ! -e "$QVM_ROOT/vms/$nid/disk1.qcow2"
else
	not_ok "the guest without ACPI PCI hotplug boots"
	explain n
fi
run "$QVM" delete n
is "$RC" 0 "delete n" || diag "$ERR"

# ---- boot 4: q35 hotplug into a pcie-root-port -------------------------------------
vm_create q "qvm.sizes=1" --machine q35 --disk 64M
qid=$(vm_id q)
qlog=$QVM_ROOT/vms/$qid/console.log
like "$("$QVM" argv q)" "pcie-root-port" "a q35 vm has pcie-root-ports"
run "$QVM" start q
is "$RC" 0 "start q (q35)" || diag "$ERR"
if wait_for_file_line "$qlog" '^QVM-READY ' $BOOT_S; then
	after=$(line_count "$qlog")
	run "$QVM" disk-attach q --size 32M --format raw
	is "$RC" 0 "q35: live disk-attach of a raw disk" || diag "$ERR"
	like "$OUT" "disk 1 attached \(live\): $QVM_ROOT/vms/$qid/disk1.raw$" "q35: ... the raw file disk1.raw"
	if devices_line "$qlog" "block=vda:64M,vdb:32M$" 30 "$after"; then
		ok "q35: the guest sees vdb"
	else
		not_ok "q35: the guest sees vdb"
		explain q
	fi
	after=$(line_count "$qlog")
	run "$QVM" disk-detach q 1
	is "$RC" 0 "q35: live disk-detach" || diag "$ERR"
	ok "q35: vdb is gone in the guest" devices_line "$qlog" "block=vda:64M$" 30 "$after"
	is "$(nodes "$qid")" "disk0" "q35: qemu's node disk1 is gone"
	ok "q35: ... and its raw file" test ! -e "$QVM_ROOT/vms/$qid/disk1.raw"
else
	not_ok "q35 guest boots"
	explain q
fi
run "$QVM" delete q
is "$RC" 0 "delete q" || diag "$ERR"

is "$(pids_matching "$QVM_ROOT")" "" "no qemu or supervisor runs under the test root at the end"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
