#!/usr/bin/env bash
# qvm benchmarks, networks part (PARTS=net in bench/run.sh, as root): in a
# network namespace of its own, `qvm nic-attach` against the same steps
# done bare (net_bare.py: the tap made as qvm makes it, then getfd +
# netdev_add + device_add, on a bare QEMU), round by round in turn, each
# side detaching between rounds; and `qvm start` of the same vm with 1, 4
# and 8 nics against none. NET_ROUNDS (default 11) rounds of each. Prints
# figures with their same-run baselines; asserts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
QVM_BIN=${QVM:-$here/../build/qvm}
QVM_GUEST=${QVM_GUEST:-$here/../build/guest}
ROUNDS=${NET_ROUNDS:-11}
command -v ip >/dev/null || { echo "bench: net needs iproute2 (ip)" >&2; exit 1; }

work=$(mktemp -d /tmp/qvm-bench-net.XXXXXX)
export BENCH_TMP=$work
NS=qtbench$$
IN=(ip netns exec "$NS")

cleanup() {
	set +eu
	trap - EXIT INT TERM HUP
	local p
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = $$ ] && continue
		{ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q -- "$work" && kill -KILL "$p" 2>/dev/null
	done
	sleep 0.3
	ip netns del "$NS" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

cp "$QVM_BIN" "$work/qvm"
mkdir "$work/guest"
cp "$QVM_GUEST/vmlinuz" "$QVM_GUEST/initrd.img" "$work/guest/"
APPEND=$(cat "$QVM_GUEST/append")
export QVM_ROOT=$work/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$work
ip netns add "$NS"
Q=("${IN[@]}" "$work/qvm")

echo "== net ($ROUNDS rounds, in network namespace $NS)"
"${Q[@]}" net create lan --bridge qbrbench --range 10.88.0.10-10.88.0.250 >/dev/null
define() {
	local name=$1 n=$2 nics=() i
	for ((i = 0; i < n; i++)); do nics+=(--nic lan); done
	"${Q[@]}" create "$name" --memory 256M --kernel "$work/guest/vmlinuz" \
		--initrd "$work/guest/initrd.img" --append "$APPEND" "${nics[@]}" >/dev/null
}

# --- start with 0, 1, 4, 8 nics: each start sampled in turn -----------------------
for n in 0 1 4 8; do define "s$n" "$n"; done
start_0=() start_1=() start_4=() start_8=()
for ((r = 0; r < ROUNDS; r++)); do
	for n in 0 1 4 8; do
		sample "start_$n" "${Q[@]}" start "s$n"
		"${Q[@]}" poweroff "s$n" --hard >/dev/null
	done
done
for n in 1 4 8; do
	nics=nics; [ "$n" = 1 ] && nics=nic
	report "qvm start -> RUNNING, $n $nics" "$(median_of "start_$n")" ms "the same vm without nics" "$(median_of start_0)"
done

# --- nic-attach against the bare sequence, one round of each in turn ---------------
# Both sides start each round from the same place: a running guest with no
# hotplugged nic (qvm detaches its nic, the bare side its device, untimed).
define h 0
"${Q[@]}" start h >/dev/null
hid=$("${Q[@]}" show h --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for ((i = 0; i < 1800; i++)); do
	grep -q QVM-READY "$QVM_ROOT/vms/$hid/console.log" 2>/dev/null && break
	sleep 0.1
done
coproc BARE { "${IN[@]}" python3 "$here/net_bare.py" "$(command -v qemu-system-x86_64)" "$work" qbrbench \
	"$work/guest/vmlinuz" "$work/guest/initrd.img" "$APPEND"; }
read -r ready <&"${BARE[0]}"
[ "$ready" = ready ] || { echo "bench: the bare side did not start" >&2; exit 1; }
attach_=() bare_=()
for ((r = 0; r < ROUNDS; r++)); do
	sample attach_ "${Q[@]}" nic-attach h --network lan
	"${Q[@]}" nic-detach h 0 >/dev/null
	echo attach >&"${BARE[1]}"
	read -r _ us <&"${BARE[0]}"
	bare_+=("$us")
done
exec {BARE[1]}>&-
wait "$BARE_PID" || true
report "qvm nic-attach (tap, journal, QMP)" "$(median_of attach_)" ms "bare tap+getfd+netdev_add+device_add" "$(median_of bare_)"
"${Q[@]}" poweroff h --hard >/dev/null
echo
