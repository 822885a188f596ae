#!/usr/bin/env bash
# qvm benchmarks: each figure against a baseline measured in the same run.
# Usage: QVM=build/qvm QVM_GUEST=build/guest bench/run.sh   (run by `make
# bench`, as root; about 3 minutes on 2 cores). RUNS (default 21) samples
# for CLI timings; BOOTS (default 5) lifecycle runs, each booting the guest
# 2x with qvm and 2x as bare QEMU plus QUICK (default 4) start-only cycles
# each way; PARTS="foundation", "images", "cloudinit", "net", "disks",
# "snapshot", "suspend" or "lifecycle" runs one part (net: bench/net.sh,
# NET_ROUNDS default 11; disks: DISK_RUNS, default 7, hot attach/detach
# rounds each way; snapshot: SNAP_BOOTS, SNAP_SAMPLES; suspend:
# SUSPEND_ROUNDS, default 3, boots each way; metrics: bench/metrics.sh,
# METRICS_RUNS, default 21, scrapes of 100 vms with 10 running). Prints figures
# only; nothing here asserts a goal. bench/RESULTS.md records a run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
QVM_BIN=${QVM:-$here/../build/qvm}
QVM_GUEST=${QVM_GUEST:-$here/../build/guest}
RUNS=${RUNS:-21}
BOOTS=${BOOTS:-5}
QUICK=${QUICK:-4} # per lifecycle run: starts stopped at once (start samples)
PARTS=${PARTS:-foundation images cloudinit net disks snapshot suspend lifecycle metrics} # or some of them
SNAP_BOOTS=${SNAP_BOOTS:-2}     # snapshot part: boots each way
SNAP_SAMPLES=${SNAP_SAMPLES:-3} # snapshot part: create+revert per boot
SUSPEND_ROUNDS=${SUSPEND_ROUNDS:-3} # suspend part: boots each way
for f in vmlinuz initrd.img append; do
	[ -e "$QVM_GUEST/$f" ] || { echo "bench: no $QVM_GUEST/$f: run 'make guest' (or set QVM_GUEST)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing: run 'make deps' (package time)" >&2; exit 1; }

work=$(mktemp -d /tmp/qvm-bench.XXXXXX)
export BENCH_TMP=$work
life_pid=

# sweep: SIGKILL every process whose command line names $work (the VMs'
# supervisors and QEMUs, the lifecycle helper, bare QEMU), QEMUs first so
# their supervisors reap them; a second pass catches any late child.
sweep() {
	local p i
	local -a cmd qemus others
	for i in 1 2; do
		qemus=() others=()
		for p in /proc/[0-9]*; do
			p=${p#/proc/}
			[ "$p" = $$ ] && continue
			mapfile -d '' cmd 2>/dev/null <"/proc/$p/cmdline" || continue
			[[ "${cmd[*]}" == *"$work"* ]] || continue
			if [[ "${cmd[0]}" == *qemu-system* ]]; then qemus+=("$p"); else others+=("$p"); fi
		done
		[ ${#qemus[@]} -eq 0 ] && [ ${#others[@]} -eq 0 ] && return 0
		[ ${#qemus[@]} -gt 0 ] && kill -KILL "${qemus[@]}" 2>/dev/null
		sleep 0.2
		[ ${#others[@]} -gt 0 ] && kill -KILL "${others[@]}" 2>/dev/null
		sleep 0.3
	done
}

cleanup() {
	set +eu
	trap - EXIT INT TERM HUP
	if [ -n "$life_pid" ]; then
		kill -TERM "$life_pid" 2>/dev/null
		wait "$life_pid" 2>/dev/null
	fi
	# the orderly way first: qvm stops what it runs
	if [ -d "$work/life" ]; then
		QVM_ROOT=$work/life timeout 20 "$QVM" poweroff b1 --hard >/dev/null 2>&1
	fi
	if [ -d "$work/snap" ]; then
		QVM_ROOT=$work/snap timeout 20 "$QVM" poweroff s1 --hard >/dev/null 2>&1
	fi
	if [ -d "$work/susp" ]; then
		QVM_ROOT=$work/susp timeout 20 "$QVM" poweroff s2 --hard >/dev/null 2>&1
	fi
	sweep
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A private copy of the binary: others may rebuild build/ during the run.
cp "$QVM_BIN" "$work/qvm"
QVM=$work/qvm
mkdir "$work/guest"
cp "$QVM_GUEST/vmlinuz" "$QVM_GUEST/initrd.img" "$work/guest/"
export QVM_DISK_ROOTS=$work
export QVM_ROOT=$work/unused # every command names its root; never /var/lib/qvm

rev=$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$here/.." diff --quiet HEAD -- 2>/dev/null || rev="$rev+dirty"
echo "qvm benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), qvm $rev"
echo "host: $(nproc) cpus, $(qemu-system-x86_64 --version | head -n 1), accel tcg, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "medians: $RUNS runs (CLI), $BOOTS lifecycle runs (4 boots + $((2 * QUICK)) starts each); ratio = figure / baseline"
echo

# baselines of the peak RSS figures
rss_list0=$(QVM_ROOT=$work/empty peak_rss_kib "$QVM" list)
rss_true=$(peak_rss_kib /bin/true)

if [[ " $PARTS " == *" foundation "* ]]; then
# --- foundation: list and show with 1, 100, 1000 vms -------------------------
# Three roots (copies of one root taken at 1 and 100 vms), sampled in turn:
# each figure and its baseline alternate, so a busy neighbour hits both.
echo "== foundation"
defined=0
define_upto() {
	local n=$1
	while ((defined < n)); do
		defined=$((defined + 1))
		QVM_ROOT=$work/r1000 "$QVM" create "vm$defined" --memory 256M >/dev/null
	done
}
for n in 1 100 1000; do
	define_upto "$n"
	[ "$n" = 1000 ] || cp -a "$work/r1000" "$work/r$n"
done
list_1=() list_100=() list_1000=() show_1=() show_100=() show_1000=() true_=()
for ((r = 0; r < RUNS; r++)); do
	for n in 1 100 1000; do
		QVM_ROOT=$work/r$n sample "list_$n" "$QVM" list
		QVM_ROOT=$work/r$n sample "show_$n" "$QVM" show "vm$n"
	done
	sample true_ /bin/true
done
for n in 1 100 1000; do
	vms=vms; [ "$n" = 1 ] && vms=vm
	report "qvm list, $n $vms" "$(median_of "list_$n")" ms "qvm list, 1 vm" "$(median_of list_1)" \
		"$([ "$n" = 1000 ] && echo '<20 ms and <=3x')"
done
for n in 1 100 1000; do
	vms=vms; [ "$n" = 1 ] && vms=vm
	report "qvm show, $n $vms" "$(median_of "show_$n")" ms "qvm show, 1 vm" "$(median_of show_1)" \
		"$([ "$n" = 1000 ] && echo '<=2x')"
done
true_ms=$(median_of true_)
report "qvm list, 1000 vms" "$(median_of list_1000)" ms "exec of /bin/true" "$true_ms"
report "qvm list, 1 vm" "$(median_of list_1)" ms "exec of /bin/true" "$true_ms"

rss_list=$(QVM_ROOT=$work/r1000 peak_rss_kib "$QVM" list)
report "peak RSS, qvm list, 1000 vms" "$rss_list" KiB "qvm list, empty root" "$rss_list0"
report "peak RSS, qvm list, 1000 vms" "$rss_list" KiB "/bin/true" "$rss_true"

# --- create with one overlay disk vs qemu-img create of the same overlay ------
base=$work/base.qcow2
qemu-img create -q -f qcow2 "$base" 1G
i=0
create_one() { i=$((i + 1)); QVM_ROOT=$work/create "$QVM" create "c$i" --disk "$base"; }
img_one() { qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$work/ov$i.qcow2"; }
create_=() img_=()
for ((r = 0; r < RUNS; r++)); do
	sample create_ create_one
	sample img_ img_one
done
report "qvm create, one overlay disk" "$(median_of create_)" ms "qemu-img create of the overlay" "$(median_of img_)"
echo
fi

# shellcheck source=bench/cloudinit.sh
[[ " $PARTS " == *" cloudinit "* ]] && . "$here/cloudinit.sh"
if [[ " $PARTS " == *" net "* ]]; then
	QVM=$QVM QVM_GUEST=$QVM_GUEST "$here/net.sh"
fi
if [[ " $PARTS " == *" metrics "* ]]; then
	QVM=$QVM QVM_GUEST=$QVM_GUEST "$here/metrics.sh"
fi
if [[ " $PARTS " == *" disks "* ]]; then
# --- disks: hot-attach until the guest sees it, qvm against bare QMP ----------
echo "== disks"
DISK_RUNS=${DISK_RUNS:-7}
QVM_ROOT=$work/disks "$QVM" create d1 --memory 256M --accel tcg --machine pc --kernel "$work/guest/vmlinuz" \
	--initrd "$work/guest/initrd.img" --append "$(cat "$QVM_GUEST/append")" --disk 64M >/dev/null
QVM_ROOT=$work/disks /usr/bin/python3 "$here/disks.py" "$QVM" d1 "$work" "$QVM_GUEST" "$DISK_RUNS" >"$work/disks.out"
declare -A D
while read -r k v; do D[$k]=$v; done <"$work/disks.out"
report "disk-attach -> guest sees vdb, n=${D[n]}" "${D[qvm_attach]}" ms "bare: qemu-img+blockdev-add+device_add" "${D[bare_attach]}"
report "disk-detach (released, node gone), n=${D[n]}" "${D[qvm_detach]}" ms "bare: device_del+event+blockdev-del" "${D[bare_detach]}"
echo
fi
if [[ " $PARTS " == *" images "* ]]; then
"$here/images.sh" "$QVM" "$work"
fi
if [[ " $PARTS " == *" snapshot "* ]]; then
# --- VM snapshots: qvm against the bare QMP jobs on bare QEMU -----------------
echo "== snapshot"
QVM_ROOT=$work/snap "$QVM" create s1 --memory 256M --accel tcg --disk 256M \
	--kernel "$work/guest/vmlinuz" --initrd "$work/guest/initrd.img" \
	--append "$(cat "$QVM_GUEST/append") qvm.counter=1" >/dev/null
rc=0
QVM_ROOT=$work/snap /usr/bin/python3 "$here/snapshot.py" "$QVM" s1 "$work" "$SNAP_BOOTS" \
	"$SNAP_SAMPLES" >"$work/snap.out" || rc=$?
if [ "$rc" != 0 ]; then
	echo "bench: snapshot.py failed ($rc); its processes' output:" >&2
	tail -n 20 "$work/lifecycle.log" >&2 || true
	exit 1
fi
if [[ " $PARTS " == *" suspend "* ]]; then
# --- suspend/resume: qvm against bare QEMU's migration to and from a file ------
echo "== suspend"
QVM_ROOT=$work/susp "$QVM" create s2 --memory 256M --accel tcg \
	--kernel "$work/guest/vmlinuz" --initrd "$work/guest/initrd.img" \
	--append "$(cat "$QVM_GUEST/append") qvm.counter=1" >/dev/null
rc=0
QVM_ROOT=$work/susp /usr/bin/python3 "$here/suspend.py" "$QVM" s2 "$work" "$SUSPEND_ROUNDS" \
	>"$work/susp.out" || rc=$?
if [ "$rc" != 0 ]; then
	echo "bench: suspend.py failed ($rc); its processes' output:" >&2
	tail -n 20 "$work/lifecycle.log" >&2 || true
	exit 1
fi
declare -A U
while read -r k v; do U[$k]=$v; done <"$work/susp.out"
report "qvm suspend (256 MiB guest), n=${U[qvm_suspend_n]}" "${U[qvm_suspend]}" ms "bare stop + migrate fd: + quit" "${U[bare_suspend]}"
report "qvm resume, n=${U[qvm_resume_n]}" "${U[qvm_resume]}" ms "bare -incoming defer + migrate-incoming + cont" "${U[bare_resume]}"
echo "checkpoint size: qvm ${U[qvm_size]} bytes, bare ${U[bare_size]} bytes"
echo
fi
declare -A S
while read -r k v; do S[$k]=$v; done <"$work/snap.out"
report "qvm snapshot-create (memory), n=${S[qvm_create_n]}" "${S[qvm_create]}" ms "bare snapshot-save job" "${S[bare_create]}"
report "qvm snapshot-revert (memory), n=${S[qvm_revert_n]}" "${S[qvm_revert]}" ms "bare snapshot-load job" "${S[bare_revert]}"
if command -v virsh >/dev/null 2>&1; then
	echo "(virsh is installed, but the libvirt comparison is not automated here)"
else
	echo "(virsh snapshot-create-as/snapshot-revert: libvirt is not installed here, no figure)"
fi
echo
fi

[[ " $PARTS " == *" lifecycle "* ]] || exit 0
# --- lifecycle: qvm against bare QEMU with the same argv ---------------------
echo "== lifecycle"
export QVM_ROOT=$work/life
"$QVM" create b1 --memory 256M --accel tcg --kernel "$work/guest/vmlinuz" \
	--initrd "$work/guest/initrd.img" --append "$(cat "$QVM_GUEST/append")" >/dev/null
/usr/bin/python3 "$here/lifecycle.py" "$QVM" b1 "$work" "$BOOTS" "$QUICK" >"$work/life.out" &
life_pid=$!
rc=0
wait "$life_pid" || rc=$?
life_pid=
if [ "$rc" != 0 ]; then
	echo "bench: lifecycle.py failed ($rc); its processes' output:" >&2
	tail -n 20 "$work/lifecycle.log" >&2 || true
	exit 1
fi
declare -A L
while read -r k v; do L[$k]=$v; done <"$work/life.out"
report "start -> QMP ready, n=${L[qvm_start_n]} (qvm start)" "${L[qvm_start]}" ms "bare: exec -> greeting+caps+cont" "${L[bare_start]}" "<=1.10x"
report "start -> guest READY, n=${L[qvm_ready_n]}" "${L[qvm_ready]}" ms "bare: exec -> READY" "${L[bare_ready]}"
report "ACPI shutdown -> POWEROFF, n=${L[qvm_acpi_n]}" "${L[qvm_acpi]}" ms "bare: system_powerdown -> exit" "${L[bare_acpi]}" "<=2x"
report "qvm poweroff --hard, n=${L[qvm_hard_n]}" "${L[qvm_hard]}" ms "bare: quit -> exit" "${L[bare_hard]}"
report "supervisor RSS per running vm" "${L[sup_rss]}" KiB "a sleep process" "${L[sleep_rss]}" "<2048 KiB"
report "supervisor RSS per running vm" "${L[sup_rss]}" KiB "its qemu (256M guest)" "${L[qemu_rss]}"
report "supervisor peak RSS (VmHWM)" "${L[sup_hwm]}" KiB "a sleep process" "${L[sleep_rss]}"
# VmRSS counts the shared libc and jansson pages; RssAnon is what each
# further vm really adds
report "supervisor private memory (RssAnon)" "${L[sup_anon]}" KiB "a sleep process" "${L[sleep_anon]}"
report "supervisor Pss (shared pages divided)" "${L[sup_pss]}" KiB "a sleep process" "${L[sleep_pss]}"
report "supervisor USS, the only vm" "${L[sup_uss]}" KiB "a sleep process" "${L[sleep_uss]}"

# peak RSS of the CLI starting and stopping a vm (GNU time's %M)
rss_start=$(peak_rss_kib "$QVM" start b1)
rss_hard=$(peak_rss_kib "$QVM" poweroff b1 --hard)
report "peak RSS, qvm start" "$rss_start" KiB "/bin/true" "$rss_true"
report "peak RSS, qvm start" "$rss_start" KiB "qvm list, empty root" "$rss_list0"
report "peak RSS, qvm poweroff --hard" "$rss_hard" KiB "/bin/true" "$rss_true"

# What each further running vm costs: a lone supervisor's USS counts qvm's
# own text and rodata (~460 KiB), which every other supervisor shares. With
# a second vm running, the USS of its supervisor is what it alone adds;
# its baseline is a second sleep while a first runs.
"$QVM" create b2 --memory 64M --accel tcg --kernel "$work/guest/vmlinuz" \
	--initrd "$work/guest/initrd.img" --append "$(cat "$QVM_GUEST/append")" >/dev/null
"$QVM" start b1 >/dev/null
"$QVM" start b2 >/dev/null
sleep 1
sup2=$(pgrep -f -- "--root $QVM_ROOT __supervise 2 " | head -n 1 || true)
sup2_uss=$(uss_kib "$sup2")
sleep 60 & s1=$!
sleep 60 & s2=$!
sleep 0.2
sleep2_uss=$(uss_kib "$s2")
kill "$s1" "$s2"
"$QVM" poweroff b1 --hard >/dev/null
"$QVM" poweroff b2 --hard >/dev/null
report "USS of a further vm's supervisor" "$sup2_uss" KiB "a further sleep process" "$sleep2_uss" "<=400 KiB"
