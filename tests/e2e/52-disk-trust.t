#!/usr/bin/env bash
# What create checked is checked again each time QEMU is to open a file:
# for each case a file of a vm is swapped after create (a base image for
# one with an external data file, or with a backing file outside the
# roots, a raw base for a qcow2 header naming /etc/shadow, the vm's own
# overlay for one with a data file, an ISO for a link to /etc/shadow, the
# kernel and the initrd for links, a folder moved outside QVM_DISK_ROOTS,
# the roots no longer holding a file) and start is refused with a message
# naming the vm, the file and why, the vm stays as it was, and nothing is
# left (no qemu, supervisor, runtime folder, open intent, new file, held
# lock). One shared guest then takes disk-attach and cdrom-insert refusals
# while it runs, and a restart the policy would make is refused once its
# ISO became a link. Image import of a local file obeys the same roots and
# refuses links. One guest boot.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
command -v qemu-img >/dev/null || bail_out "no qemu-img"
qvm_test_root
IMG=$QVM_TEST_ROOT/img FAR=$QVM_TEST_ROOT/outside
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$IMG
mkdir -p "$IMG" "$FAR"
printf 'not for any guest\n' >"$FAR/secret.raw"

# vm_files ID: the files of a vm folder but its logs, one line
vm_files() { ls -A "$QVM_ROOT/vms/$1" 2>/dev/null | grep -v -E '^(console|qemu|supervisor)\.log(\.1)?$' | tr '\n' ' '; }
qcow2() { qemu-img create -q -f qcow2 "$@"; }

# refused_start NAME ERE LABEL: start NAME fails saying ERE, and leaves it
# as it was with nothing behind
refused_start() {
	local name=$1 ere=$2 label=$3 id uuid before files
	id=$(vm_id "$name")
	uuid=$(uuid_of "$name")
	before=$(state "$name")
	files=$(vm_files "$id")
	run "$QVM" start "$name"
	is "$RC" 1 "$label: start refused"
	like "$ERR" "^qvm: cannot start '$name' \(it stays $before\): " "$label: ... naming the vm and its state"
	like "$ERR" "$ere" "$label: ... saying which file and why"
	is "$(state "$name")" "$before" "$label: ... the vm stays $before"
	is "$(qemus "$uuid")$(sups "$id")" 00 "$label: ... no qemu or supervisor of it runs"
	ok "$label: ... no runtime folder" test ! -e "$QVM_ROOT/run/$id"
	is "$(open_intents "$id")" "" "$label: ... no open intent"
	is "$(vm_files "$id")" "$files" "$label: ... no file made in its folder"
	is "$(runtime_left)" "" "$label: ... no socket or held lock"
}

# a vm of the test guest with more create flags (not started)
offvm() {
	local name=$1
	shift
	define "$name" "" "$@"
	is "$(state "$name")" PENDING "$name defined"
}

# ---- a base image swapped for one with an external data file -------------
section "start: base images changed after create"
qcow2 "$IMG/df.qcow2" 16M
offvm df --disk "$IMG/df.qcow2"
qcow2 -o data_file="$FAR/data.raw" "$IMG/df.new" 16M
mv "$IMG/df.new" "$IMG/df.qcow2"
refused_start df "disk 0: base image: '$IMG/df.qcow2' has an external data file \('$FAR/data.raw'\); qvm opens only self-contained images" \
	"base swapped for a data-file qcow2"
# qemu-img opens the whole chain of a disk of a vm that is off (resize,
# snapshots, disk-saveas): refused the same way
dfid=$(vm_id df)
dffiles=$(vm_files "$dfid")
for cmd in "disk-resize df 0 32M" "disk-snapshot-create df 0 s1" "snapshot-create df s1" "disk-saveas df 0 saved"; do
	# shellcheck disable=SC2086 # the command and its arguments
	run "$QVM" $cmd
	is "$RC" 1 "qvm $cmd refused"
	like "$ERR" "^qvm: cannot [a-z]+ .*'df'.*: disk 0: base image: '$IMG/df.qcow2' has an external data file" \
		"... saying which file and why"
done
is "$(state df)" PENDING "... df stays PENDING"
is "$(vm_files "$dfid")" "$dffiles" "... its files unchanged"
is "$(qemu-img snapshot -l "$QVM_ROOT/vms/$dfid/disk0.qcow2" -U 2>&1)" "" "... no snapshot in its disk"
is "$(open_intents "$dfid")" "" "... no open intent"

# ---- a base image that now has a backing file outside the roots ----------
qcow2 "$IMG/bk.qcow2" 16M
offvm bk --disk "$IMG/bk.qcow2"
qcow2 -F raw -b "$FAR/secret.raw" "$IMG/bk.new" 16M
mv "$IMG/bk.new" "$IMG/bk.qcow2"
refused_start bk "disk 0: base image: '$IMG/bk.qcow2' has a backing file \('$FAR/secret.raw'\)" \
	"base given a backing file outside the roots"

# ---- a raw base that now carries a qcow2 header naming /etc/shadow -------
truncate -s 16M "$IMG/raw.img"
offvm rw --disk "$IMG/raw.img,format=raw"
qcow2 -u -F raw -b /etc/shadow "$IMG/raw.new" 16M
mv "$IMG/raw.new" "$IMG/raw.img"
refused_start rw "disk 0: base image: .*'$IMG/raw.img'.* (qcow2|raw)" "raw base swapped for a qcow2 header"

# ---- the vm's own overlay swapped for one with a data file ---------------
offvm own --disk 16M
oid=$(vm_id own)
qcow2 -o data_file="$FAR/own-data.raw" "$QVM_ROOT/vms/$oid/own.new" 16M
mv "$QVM_ROOT/vms/$oid/own.new" "$QVM_ROOT/vms/$oid/disk0.qcow2"
refused_start own "disk 0: '$QVM_ROOT/vms/$oid/disk0.qcow2' has an external data file" \
	"the vm's own disk swapped for a data-file qcow2"
offvm own2 --disk 16M
o2id=$(vm_id own2)
ln -sf /etc/shadow "$QVM_ROOT/vms/$o2id/disk0.qcow2"
refused_start own2 "disk 0: '$QVM_ROOT/vms/$o2id/disk0.qcow2' is a symbolic link, not the file qvm made" \
	"the vm's own disk replaced by a link to /etc/shadow"

# ---- an ISO replaced by a link to /etc/shadow ----------------------------
section "start: files that became links or left the roots"
printf 'an iso\n' >"$IMG/boot.iso"
offvm iso --cdrom "$IMG/boot.iso"
ln -sf /etc/shadow "$IMG/boot.iso"
refused_start iso "cdrom: path '$IMG/boot.iso' is a symbolic link \(to '/etc/shadow'\); qvm opens no file through a link" \
	"ISO replaced by a link to /etc/shadow"

# ---- a kernel and an initrd replaced by links (inside the roots) ---------
cp "$G/vmlinuz" "$IMG/vmlinuz"
cp "$G/initrd.img" "$IMG/initrd.img"
run "$QVM" create kern --memory 256M --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" --append "$APPEND"
is "$RC" 0 "kern defined" || diag "$ERR"
mv "$IMG/vmlinuz" "$IMG/vmlinuz.real"
ln -s "$IMG/vmlinuz.real" "$IMG/vmlinuz"
refused_start kern "kernel: path '$IMG/vmlinuz' is a symbolic link \(to '$IMG/vmlinuz.real'\)" \
	"kernel replaced by a link to a file inside the roots"
rm "$IMG/vmlinuz"
mv "$IMG/vmlinuz.real" "$IMG/vmlinuz"
mv "$IMG/initrd.img" "$IMG/initrd.real"
ln -s "$IMG/initrd.real" "$IMG/initrd.img"
refused_start kern "initrd: path '$IMG/initrd.img' is a symbolic link" "initrd replaced by a link"

# ---- a folder moved outside the roots, a link left in its place ----------
mkdir -p "$IMG/sub"
qcow2 "$IMG/sub/base.qcow2" 16M
offvm moved --disk "$IMG/sub/base.qcow2"
mv "$IMG/sub" "$FAR/sub"
ln -s "$FAR/sub" "$IMG/sub"
refused_start moved "disk 0: base image: path '$IMG/sub/base.qcow2' goes through a symbolic link \(it is really '$FAR/sub/base.qcow2'\)" \
	"base's folder moved outside the roots"

# ---- the roots no longer hold a file --------------------------------------
mkdir -p "$QVM_TEST_ROOT/old"
qcow2 "$QVM_TEST_ROOT/old/base.qcow2" 16M
QVM_DISK_ROOTS=$G:$IMG:$QVM_TEST_ROOT/old offvm gone --disk "$QVM_TEST_ROOT/old/base.qcow2"
refused_start gone "disk 0: base image: path '$QVM_TEST_ROOT/old/base.qcow2' is not under an allowed folder \(.*\); add the folder to QVM_DISK_ROOTS" \
	"a base outside QVM_DISK_ROOTS at start"

# ---- image import: the same roots, no links -------------------------------
section "image import"
printf 'a small raw image\n' >"$FAR/small.raw"
run "$QVM" image import "$FAR/small.raw" --name outside
is "$RC" 1 "import of a file outside the roots refused"
like "$ERR" "cannot import '$FAR/small.raw': path '$FAR/small.raw' is not under an allowed folder \(.*\); add its folder to QVM_DISK_ROOTS" \
	"... saying so"
cp "$FAR/small.raw" "$IMG/small.raw"
ln -s "$IMG/small.raw" "$IMG/small-link.raw"
run "$QVM" image import "$IMG/small-link.raw" --name linked
is "$RC" 1 "import of a link refused, even to a file inside the roots"
like "$ERR" "path '$IMG/small-link.raw' is a symbolic link \(to '$IMG/small.raw'\)" "... saying so"
ln -s /etc/shadow "$IMG/shadow-link"
run "$QVM" image import "$IMG/shadow-link" --name shadow
is "$RC" 1 "import of a link to /etc/shadow refused"
is "$(ls -A "$QVM_ROOT/images" 2>/dev/null | grep -v '^\.lock$')" "" "... nothing is left in the store"
run "$QVM" image import "$IMG/small.raw" --name inside
is "$RC" 0 "import of a file inside the roots accepted" || diag "$ERR"
run bash -c "cd '$IMG' && '$QVM' image import small.raw --name relative"
is "$RC" 0 "... and given relative to the current folder" || diag "$ERR"

# ---- the shared guest: refusals while it runs -----------------------------
section "a running vm: disk-attach, cdrom-insert, a restart"
qcow2 "$IMG/g.qcow2" 64M
printf 'the first iso\n' >"$IMG/g.iso"
QVM_RESTART_BACKOFF_MS=100 define g "" --disk "$IMG/g.qcow2" --cdrom "$IMG/g.iso" --restart always
gid=$(vm_id g)
guuid=$(uuid_of g)
run "$QVM" start g
is "$RC" 0 "start g (its files unchanged)" || diag "$ERR"
if ! wait_for_file_line "$QVM_ROOT/vms/$gid/console.log" '^QVM-READY ' $BOOT_S; then
	explain g
	bail_out "the guest does not boot"
fi
gfiles=$(vm_files "$gid")
gdef=$("$QVM" show g --json | json 'd["definition"]')

# attach_refused ERE LABEL ARGS...: disk-attach g ARGS fails saying ERE
attach_refused() {
	local ere=$1 label=$2
	shift 2
	run "$QVM" disk-attach g "$@"
	is "$RC" 1 "$label: disk-attach refused"
	like "$ERR" "^qvm: cannot attach a disk to 'g'|^qvm: cannot attach disk 1 to 'g'" "$label: ... naming the vm"
	like "$ERR" "$ere" "$label: ... saying which file and why"
	is "$(state g)" ACTIVE/RUNNING "$label: ... g still runs"
	is "$("$QVM" show g --json | json 'd["definition"]')" "$gdef" "$label: ... its definition unchanged"
	is "$(vm_files "$gid")" "$gfiles" "$label: ... no disk file left"
	is "$(open_intents "$gid")" "" "$label: ... no open intent"
	is "$(vm_qmp "$gid" query-named-block-nodes '{"flat":true}' | json '" ".join(sorted(n["node-name"] for n in d if n["node-name"].startswith("disk")))')" \
		"disk0" "$label: ... qemu has no new block node"
}
qcow2 "$IMG/att.qcow2" 16M
ln -s "$IMG/att.qcow2" "$IMG/att-link.qcow2"
attach_refused "path '$IMG/att-link.qcow2' is a symbolic link \(to '$IMG/att.qcow2'\)" \
	"a link to a qcow2 inside the roots" --image "$IMG/att-link.qcow2"
qcow2 -o data_file="$FAR/att-data.raw" "$IMG/att-df.qcow2" 16M
attach_refused "'$IMG/att-df.qcow2' has an external data file" "a qcow2 with a data file" \
	--image "$IMG/att-df.qcow2"

printf 'another iso\n' >"$IMG/other.iso"
ln -s "$IMG/other.iso" "$IMG/other-link.iso"
run "$QVM" cdrom-insert g "$IMG/other-link.iso"
is "$RC" 1 "cdrom-insert of a link refused"
like "$ERR" "path '$IMG/other-link.iso' is a symbolic link" "... saying so"
is "$(state g)" ACTIVE/RUNNING "... g still runs"
is "$("$QVM" show g --json | json 'd["definition"]["cdrom"]')" "$IMG/g.iso" "... with its first ISO defined"
like "$(vm_qmp "$gid" query-block | json '[b["inserted"]["file"] for b in d if b.get("inserted") and b["qdev"].endswith("cdrom0")]')" \
	"$IMG/g.iso" "... and in the drive"

# a restart (policy always) checks the files again: the ISO became a link
ln -sf /etc/shadow "$IMG/g.iso"
qpid=$(pids_matching "$guuid" | head -1)
kill -KILL "$qpid"
if wait_state g "FAILED" 30; then
	ok "the restart after qemu died is refused: g is FAILED"
else
	not_ok "the restart after qemu died is refused: g is FAILED (it is $STATE)"
	explain g
fi
like "$("$QVM" show g)" "cannot restart 'g': cdrom: path '$IMG/g.iso' is a symbolic link \(to '/etc/shadow'\)" \
	"... show says which file and why"
is "$(qemus "$guuid")" 0 "... no qemu of it runs"
settled g "$gid" "$guuid" FAILED "after the refused restart"
run "$QVM" delete g
is "$RC" 0 "delete g" || diag "$ERR"

is "$(pids_matching "$QVM_ROOT")" "" "no qemu or supervisor runs under the test root at the end"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
