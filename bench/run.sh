#!/usr/bin/env bash
# qvm benchmarks: each figure against a baseline measured in the same run.
# Usage: QVM=build/qvm bench/run.sh   (run by `make bench`, as root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
QVM=${QVM:-$here/../build/qvm}
RUNS=${RUNS:-21}
work=$(mktemp -d /tmp/qvm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export QVM_DISK_ROOTS=$work

echo "qvm benchmarks ($(nproc) cpus, $RUNS runs each, median wall time)"
echo

# --- definitions: list and show with 1, 100, 1000 vms -------------------------
root=$work/root
export QVM_ROOT=$root
define_upto() {
	local n=$1 i
	for ((i = $(($("$QVM" list --all --json | grep -c '"id"') + 1)); i <= n; i++)); do
		"$QVM" create "vm$i" --memory 256M >/dev/null
	done
}
declare -A list_ms show_ms
for n in 1 100 1000; do
	define_upto "$n"
	list_ms[$n]=$(median_ms "$RUNS" "$QVM" list)
	show_ms[$n]=$(median_ms "$RUNS" "$QVM" show "vm$n")
done
for n in 1 100 1000; do
	report "qvm list, $n vms" "${list_ms[$n]}" ms "qvm list, 1 vm" "${list_ms[1]}" \
		"$([ "$n" = 1000 ] && echo '<20 ms, <=3x')"
done
for n in 1 100 1000; do
	report "qvm show, $n vms" "${show_ms[$n]}" ms "qvm show, 1 vm" "${show_ms[1]}"
done
true_ms=$(median_ms "$RUNS" /bin/true)
report "qvm list, 1000 vms" "${list_ms[1000]}" ms "exec of /bin/true" "$true_ms"

rss_list=$(peak_rss_kib "$QVM" list)
rss_list1=$(QVM_ROOT=$work/one peak_rss_kib "$QVM" list)
rss_true=$(peak_rss_kib /bin/true)
report "peak RSS, qvm list, 1000 vms" "$rss_list" KiB "qvm list, empty root" "$rss_list1"
report "peak RSS, qvm list, 1000 vms" "$rss_list" KiB "/bin/true" "$rss_true"

# --- create with one overlay disk vs qemu-img create of the same overlay ------
base=$work/base.qcow2
qemu-img create -q -f qcow2 "$base" 1G
export QVM_ROOT=$work/create
i=0
create_one() { i=$((i + 1)); "$QVM" create "c$i" --disk "$base" >/dev/null; }
j=0
img_one() { j=$((j + 1)); qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$work/ov$j.qcow2" >/dev/null; }
create_ms=$(median_ms "$RUNS" create_one)
img_ms=$(median_ms "$RUNS" img_one)
report "qvm create, one overlay disk" "$create_ms" ms "qemu-img create of the overlay" "$img_ms"
