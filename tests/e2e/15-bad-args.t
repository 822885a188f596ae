#!/usr/bin/env bash
# Malformed arguments of every kind (names, tags, sizes, numbers, ids,
# KEY=VALUE pairs, paths, addresses, interface names) to every command that
# takes one: each is a usage error (exit 2) whose message names the
# argument, refused before the command does any work: the journal, the
# vms' folders, the image store and the networks stay as they were.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_DISK_ROOTS=$QVM_TEST_ROOT/img
need_qvm
mkdir -p "$QVM_DISK_ROOTS"
qemu-img create -q -f qcow2 "$QVM_DISK_ROOTS/base.qcow2" 16M
: >"$QVM_DISK_ROOTS/cd.iso"

run "$QVM" create a --disk 8M --accel tcg
[ "$RC" = 0 ] || bail_out "cannot create 'a': $ERR"

# everything under the root that a command could change: names and sizes
# of every file, and the content of the journal's
root_state() {
	find "$QVM_ROOT" -printf '%P %s\n' | sort
	sha256sum "$QVM_ROOT"/journal/* 2>/dev/null
}
before=$(root_state)
history_before=$("$QVM" history a)

# bad ARG CMD...: CMD exits 2, says "qvm VERB: ARG: ..." and changes nothing
bad() {
	local arg=$1 verb
	shift
	verb=$1
	run "$QVM" "$@"
	local what="$* (${arg})"
	what=${what//$'\n'/\\n}
	if [ "$RC" != 2 ]; then
		not_ok "$what: exit 2, got $RC: ${ERR%%$'\n'*}"
	elif [[ $ERR != "qvm $verb: $arg: "* ]]; then
		not_ok "$what: the message names $arg: ${ERR%%$'\n'*}"
	elif [ "$(root_state)" != "$before" ]; then
		not_ok "$what: nothing changed under the root"
	else
		ok "$what: exit 2 naming it, nothing changed"
	fi
}

# update: each kind of malformed pair, and a good pair beside a bad one
bad KEY=VALUE update a 'bad,key=v'
bad KEY=VALUE update a $'note=a\nb'
bad KEY=VALUE update a =v
bad KEY=VALUE update a label.=x
bad KEY=VALUE update a 'label.b d=1'
bad KEY=VALUE update a ok=1 'bad key=1'
bad KEY=VALUE update a novalue
bad KEY=VALUE update a memory=lots
bad KEY=VALUE update a vcpus=0
bad KEY=VALUE update a vcpus=x
bad KEY=VALUE update a snapshots.max=abc
bad KEY=VALUE update a snapshots.max=0
bad KEY=VALUE update a machine=vax
bad KEY=VALUE update a disks=x

# vm names (or ids) on the commands that take one
for verb in show history dump start poweroff shutdown reboot pause unpause hold release \
	delete snapshot-list argv boot console cdrom-eject; do
	bad NAME "$verb" 'a/b'
done
bad NAME update 'a b' x=1
bad NAME recover 'a/b' --retry
bad NAME rename 'a/b' b
bad NEW rename a 'b/c'
bad NAME resize 'a/b' --vcpus 2
bad NAME exec 'a/b' -- /bin/true
bad NAME set-password 'a/b' root
bad NAME edit 'a/b'

# migrate: the destination, the remote paths
bad DEST migrate a 'h;x'
bad DEST migrate a 'root@'
bad DEST migrate a 'host:70000'
bad --remote-root migrate a host --remote-root ''
bad --remote-qvm migrate a host --remote-qvm $'q\nx'

# snapshot tags and references
bad TAG snapshot-create a x/y
bad TAG snapshot-create a 123
bad SNAP snapshot-revert a 'x/y'
bad SNAP snapshot-delete a 'a,b'
bad TAG disk-snapshot-create a 0 a,b
bad TAG disk-snapshot-create a 0 42
bad TAG\|ID disk-snapshot-revert a 0 'a b'
bad TAG\|ID disk-snapshot-delete a 0 'a/b'

# disk and nic ids, sizes, numbers, images, paths
bad DISK_ID disk-snapshot-create a x t
bad DISK_ID disk-snapshot-list a 0x1
bad DISK_ID disk-detach a disk0
bad DISK_ID disk-resize a x 1G
bad DISK_ID disk-saveas a x img
bad SIZE disk-resize a 0 lots
bad SIZE disk-resize a 0 0
bad IMAGE_NAME disk-saveas a 0 bad/name
bad --size disk-attach a --size lots
bad --size disk-attach a --size -1G
bad --image disk-attach a --image bad/x
bad --image disk-attach a --image $'/x\ny'
bad --bus disk-attach a --size 1G --bus floppy
bad --format disk-attach a --size 1G --format vmdk
bad --timeout disk-detach a 0 --timeout abc
bad --timeout shutdown a --timeout 0
bad --timeout poweroff a --timeout 1s
bad ISO cdrom-insert a $'cd\n.iso'
bad NIC_ID nic-detach a x

# nics and networks: names, addresses, interface names, numbers
bad --network nic-attach a --network 'bad/n'
bad --mac nic-attach a --network n --mac zz
bad --ip nic-attach a --network n --ip 1.2.3
bad --model nic-attach a --network n --model rtl8139
bad NAME net create 'b/n' --bridge br0
bad --bridge net create n --bridge 'bad br!'
bad --bridge net create n --bridge abcdefghijklmnopq
bad --uplink net create n --bridge br0 --vlan 5 --uplink 'e th'
bad --vlan net create n --bridge br0 --vlan 5000 --uplink eth0
bad --mtu net create n --bridge br0 --mtu abc
bad --mtu net create n --bridge br0 --mtu 10
bad --range net create n --bridge br0 --range abc
bad --prefix net create n --bridge br0 --prefix 4
bad --gateway net create n --bridge br0 --gateway 1.2
bad --dns net create n --bridge br0 --dns x
bad NAME net show 'b/n'
bad NAME net delete 'b n'

# the image store
bad --name image import "$QVM_DISK_ROOTS/base.qcow2" --name bad/n
bad --sha256 image import "$QVM_DISK_ROOTS/base.qcow2" --name ok --sha256 zz
bad --format image import "$QVM_DISK_ROOTS/base.qcow2" --name ok --format vmdk
bad --max-size image import "$QVM_DISK_ROOTS/base.qcow2" --name ok --max-size lots
bad --stall-timeout image import "$QVM_DISK_ROOTS/base.qcow2" --name ok --stall-timeout x
bad PATH\|URL image import $'/x\ny' --name ok
bad N image show bad/n
bad N image delete 'bad n'

is "$("$QVM" history a)" "$history_before" "the vm's history is as it was"
run "$QVM" list --all
is "$(grep -c . <<<"$OUT")" 2 "no vm was made: list shows the header and 'a'"
run "$QVM" net list --json
is "$OUT" "[]" "no network was made"
run "$QVM" image list --json
is "$OUT" "[]" "no image was made"

# a refusal that depends on the state stays 1: the vm is not running
run "$QVM" pause a
is "$RC" 1 "pause of a vm that is off is an operation that failed (1)"
run "$QVM" update a memory=2G
is "$RC" 0 "a well-formed update still works" || diag "$ERR"

done_testing
