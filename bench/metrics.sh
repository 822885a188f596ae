#!/usr/bin/env bash
# qvm benchmarks, metrics part (PARTS=metrics in bench/run.sh, as root): one
# `qvm metrics` scrape of a root with 100 vms defined and 10 of them
# running the test guest (each with a disk and one nic on a bridge of its
# own, so every kind of counter is read), against `qvm list` of the same
# root (the journal read, /proc of each running QEMU) and `qvm host`,
# sampled in turn. METRICS_RUNS (default 21) samples each. Prints figures
# with their same-run baselines; asserts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
QVM_BIN=${QVM:-$here/../build/qvm}
QVM_GUEST=${QVM_GUEST:-$here/../build/guest}
RUNS=${METRICS_RUNS:-21}
RUNNING=${METRICS_RUNNING:-10}
DEFINED=${METRICS_DEFINED:-100}

work=$(mktemp -d /tmp/qvm-bench-metrics.XXXXXX)
export BENCH_TMP=$work
BR=qbm$$

cleanup() {
	set +eu
	trap - EXIT INT TERM HUP
	local p
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = $$ ] && continue
		{ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q -- "$work" && kill -KILL "$p" 2>/dev/null
	done
	sleep 0.5
	ip link del "$BR" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

cp "$QVM_BIN" "$work/qvm"
QVM=$work/qvm
export QVM_ROOT=$work/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$QVM_GUEST
echo "== metrics ($DEFINED vms defined, $RUNNING running)"
"$QVM" net create bmnet --bridge "$BR" >/dev/null
for ((i = 1; i <= DEFINED; i++)); do
	if ((i <= RUNNING)); then
		"$QVM" create "m$i" --memory 128M --kernel "$QVM_GUEST/vmlinuz" \
			--initrd "$QVM_GUEST/initrd.img" --append "$(cat "$QVM_GUEST/append")" \
			--disk 16M --nic bmnet >/dev/null
	else
		"$QVM" create "m$i" --memory 128M >/dev/null
	fi
done
for ((i = 1; i <= RUNNING; i++)); do
	"$QVM" start "m$i" >/dev/null
done
# let the guests boot and settle, so the samples see idle guests
for ((i = 1; i <= RUNNING; i++)); do
	log=$QVM_ROOT/vms/$i/console.log
	for _ in $(seq 600); do
		grep -aq '^QVM-READY' "$log" 2>/dev/null && break
		sleep 0.1
	done
done
running=$("$QVM" metrics | grep -c '^qvm_vm_cpu_seconds_total{')
disks=$("$QVM" metrics | grep -c '^qvm_vm_block_read_ops_total{')
nics=$("$QVM" metrics | grep -c '^qvm_vm_nic_rx_bytes_total{')
echo "scrape covers: $running running vms, $disks disks, $nics nics; $("$QVM" metrics | wc -c) bytes"
# cpu_ms FILE: CPU time (user + system) of this shell's children, from
# bash's `times` written to FILE in this shell (a command substitution
# would ask a subshell, which has no children): what a scrape costs the
# host, apart from its waits
cpu_ms() {
	tail -1 "$1" | awk '{
		t = 0
		for (i = 1; i <= NF; i++) { split($i, p, "m"); sub(/s/, "", p[2]); t += p[1] * 60 + p[2] }
		printf "%d\n", t * 1000 }'
}
metrics_=() list_=() host_=()
for ((r = 0; r < RUNS; r++)); do
	sample metrics_ "$QVM" metrics
	sample list_ "$QVM" list
	sample host_ "$QVM" host
done
times >"$work/t0"
for ((r = 0; r < RUNS; r++)); do "$QVM" metrics >/dev/null; done
times >"$work/t1"
for ((r = 0; r < RUNS; r++)); do "$QVM" list >/dev/null; done
times >"$work/t2"
c0=$(cpu_ms "$work/t0") c1=$(cpu_ms "$work/t1") c2=$(cpu_ms "$work/t2")
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
report "qvm metrics, CPU time per scrape" "$(awk -v a="$c0" -v b="$c1" -v n="$RUNS" 'BEGIN {printf "%.2f", (b - a) / n}')" ms \
	"qvm list, CPU time" "$(awk -v a="$c1" -v b="$c2" -v n="$RUNS" 'BEGIN {printf "%.2f", (b - a) / n}')"
report "qvm metrics (one scrape)" "$(median_of metrics_)" ms "qvm list, same root" \
	"$(median_of list_)" "<=50 ms"
report "qvm metrics (one scrape)" "$(median_of metrics_)" ms "qvm host, same root" \
	"$(median_of host_)"
