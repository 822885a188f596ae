#!/bin/bash
# The test guest itself, booted with bare QEMU (no qvm): it reports ready and
# its disk on the serial port, and QEMU quits over QMP leaving nothing behind.
# When this fails, every other end-to-end test would too.
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/tests/lib/tap.sh"

guest=${QVM_GUEST:-$src/build/guest}
qmp=$src/tests/lib/qmp.py
for f in vmlinuz initrd.img append; do
	[ -f "$guest/$f" ] || bail_out "no $guest/$f: run make guest"
done
command -v qemu-system-x86_64 >/dev/null || bail_out "no qemu-system-x86_64: run make deps"

qvm_test_root
root=$QVM_TEST_ROOT
qemu-img create -q -f qcow2 "$root/disk.qcow2" 64M || bail_out "qemu-img create failed"

qemu-system-x86_64 -name qvm-test-guest -accel tcg -machine pc -m 256 \
	-nodefaults -no-user-config -display none \
	-serial "file:$root/serial.log" \
	-qmp "unix:$root/qmp.sock,server=on,wait=off" \
	-kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
	-append "$(cat "$guest/append")" \
	-blockdev "driver=qcow2,node-name=disk0,file.driver=file,file.filename=$root/disk.qcow2" \
	-device virtio-blk-pci,drive=disk0,id=disk0 \
	2>"$root/qemu.err" &
qemu=$!

if wait_for_file_line "$root/serial.log" '^QVM-READY uptime=[0-9]+\.[0-9]+$' 60; then
	ok "guest reports ready"
	diag "$TAP_LINE"
else
	not_ok "guest reports ready"
	diag_file "$root/serial.log"
	diag_file "$root/qemu.err"
fi

wait_for_file_line "$root/serial.log" '^QVM-DEVICES ' 1
is "$TAP_LINE" "QVM-DEVICES net=- block=vda" "guest sees its virtio disk"

ok "quit over QMP" "$qmp" "$root/qmp.sock" quit
ok "QEMU exits" wait_pid_gone "$qemu" 10
wait "$qemu" 2>/dev/null
is "$(pids_matching "$root")" "" "no process left under the test root"

done_testing
