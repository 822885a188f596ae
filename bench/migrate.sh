#!/usr/bin/env bash
# Cold migration between two qvm hosts on this machine (tests/lib/hosts.sh:
# two network namespaces on a veth pair, sshd on the destination), against
# the bytes it moves sent bare over the same ssh connection, interleaved:
#   - a POWEROFF vm with a 256 MiB disk full of data: `qvm migrate` against
#     `ssh DEST 'cat > FILE' < disk` of the same file;
#   - a running 256 MiB guest: `qvm migrate` (suspend, send, resume there)
#     against `qvm suspend` + the same ssh cat of its checkpoint + a bare
#     `qvm resume` on one host (the same steps without the move).
# Live migration is not built, so there is no live figure yet.
#
# usage: bench/migrate.sh [ROUNDS]   (root; QVM, QVM_GUEST as for the tests)
set -u
here=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${1:-3}
. "$here/../tests/lib/tap.sh"
. "$here/../tests/lib/vm.sh"
. "$here/lib.sh"
need_guest
qvm_test_root
export QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT
. "$here/../tests/lib/hosts.sh"
hosts_setup >&2
QVM_CMD=("${SQ[@]}")
SSH=(ip netns exec "$SRC_NS" $QVM_SSH -p "$DST_PORT" root@10.77.0.2)
Q_COLD=() B_COLD=() Q_WARM=() B_WARM=() DOWN=()

cold_vm() {
	"${SQ[@]}" create "$1" --memory 256M --kernel "$G/vmlinuz" --initrd "$G/initrd.img" \
		--append "$APPEND" --disk 256M >/dev/null || bail_out "create $1"
	"${SQ[@]}" start "$1" >/dev/null && "${SQ[@]}" poweroff --hard "$1" >/dev/null
	qemu-io -f qcow2 -c "write -P 0x5a 0 255M" "$SRC_ROOT/vms/$(vm_id "$1")/disk0.qcow2" >/dev/null
}

for i in $(seq "$ROUNDS"); do
	# cold: a POWEROFF vm with 255 MiB of data
	cold_vm "c$i"
	disk=$SRC_ROOT/vms/$(vm_id "c$i")/disk0.qcow2
	sample B_COLD "${SSH[@]}" "cat > $QVM_TEST_ROOT/bare-$i" <"$disk"
	sample Q_COLD "${SQ[@]}" migrate "c$i" "$DEST" "${REMOTE[@]}"
	rm -f "$QVM_TEST_ROOT/bare-$i"
	"${DQ[@]}" delete "c$i" >/dev/null

	# a running guest
	vm_create "w$i" qvm.counter=1
	"${SQ[@]}" start "w$i" >/dev/null || bail_out "start w$i"
	wait_for_file_line "$SRC_ROOT/vms/$(vm_id "w$i")/console.log" '^QVM-COUNTER 2$' 90 0
	out=$("${SQ[@]}" migrate "w$i" "$DEST" "${REMOTE[@]}" --json) || bail_out "migrate w$i"
	Q_WARM+=("$(json 'd["time_ms"] * 1000' <<<"$out")")
	DOWN+=("$(json 'd["downtime_ms"] * 1000' <<<"$out")")
	"${DQ[@]}" delete "w$i" >/dev/null
	# the same steps on one host, the move by hand
	vm_create "b$i" qvm.counter=1
	"${SQ[@]}" start "b$i" >/dev/null || bail_out "start b$i"
	bid=$(vm_id "b$i")
	wait_for_file_line "$SRC_ROOT/vms/$bid/console.log" '^QVM-COUNTER 2$' 90 0
	s=$EPOCHREALTIME
	"${SQ[@]}" suspend "b$i" >/dev/null &&
		"${SSH[@]}" "cat > $QVM_TEST_ROOT/bare-ck" <"$SRC_ROOT/vms/$bid/checkpoint" &&
		"${SQ[@]}" resume "b$i" >/dev/null || bail_out "suspend, copy, resume b$i"
	e=$EPOCHREALTIME
	B_WARM+=($((${e/[.,]/} - ${s/[.,]/})))
	rm -f "$QVM_TEST_ROOT/bare-ck"
	"${SQ[@]}" delete "b$i" >/dev/null
done

report "qvm migrate, POWEROFF, 255 MiB disk" "$(median_of Q_COLD)" ms "ssh cat of the disk file" "$(median_of B_COLD)"
report "qvm migrate, running 256 MiB guest" "$(median_of Q_WARM)" ms "suspend + ssh cat + resume" "$(median_of B_WARM)"
echo "guest paused (downtime_ms), median: $(median_of DOWN) ms; rounds: $ROUNDS"
done_testing >/dev/null
