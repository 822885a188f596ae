#!/bin/bash
# Runs last: the tests before it left nothing behind (no QEMU, supervisor,
# test root, mount, qvm/test network interface or network namespace). It only
# reports; the diag lines say what to remove by hand.
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/tests/lib/tap.sh"

guest=${QVM_GUEST:-$src/build/guest}

# `make e2e` sets QVM_TEST_SINCE (epoch seconds) when the suite starts: what
# is older was left by an earlier run (one killed with SIGKILL cannot clean
# up) and is reported, not held against this one. Unset, everything counts.
since=${QVM_TEST_SINCE:-0}
now=$(date +%s)
older_pid() { # true if process $1 started before this run
	local age
	age=$(ps -o etimes= -p "$1" 2>/dev/null) || return 1
	[ $((now - ${age// /})) -lt "$since" ]
}
older_root() { # true if test root $1 was made before this run
	local made
	made=$(stat -c %Y "$1/.owner" 2>/dev/null || stat -c %Y "$1" 2>/dev/null) || return 1
	[ "$made" -lt "$since" ]
}
earlier=()

# Test roots of tests still running (another terminal) are not leftovers.
busy=()
for r in /tmp/qvm-test.*; do
	[ -d "$r" ] && root_in_use "$r" && busy+=("$r")
done
[ ${#busy[@]} -eq 0 ] ||
	diag "in use by a running test, not checked: ${busy[*]} (interfaces and namespaces below may be theirs)"
is_busy() {
	local b
	for b in "${busy[@]}"; do
		[[ "$1 " == *"$b/"* || "$1 " == *"$b "* ]] && return 0
	done
	return 1
}

# QEMU started by a test: its command line names a test root or the guest.
left=()
for p in $(pids_matching qemu-system); do
	mapfile -d '' args 2>/dev/null <"/proc/$p/cmdline" || continue
	cmd="${args[*]}"
	is_busy "$cmd" && continue
	older_pid "$p" && { earlier+=("$p: $cmd"); continue; }
	case "$cmd" in
	*/tmp/qvm-test.* | *"$guest/"*) left+=("$p: $cmd") ;;
	esac
done
is "${#left[@]}" 0 "no QEMU left from a test"
for l in "${left[@]}"; do diag "  $l   (kill ${l%%:*})"; done

# A supervisor (`qvm --root ROOT __supervise ID`) whose root is a test's:
# it outlives its QEMU only by a bug, and its root may be gone already.
left=()
for p in $(pids_matching __supervise); do
	mapfile -d '' args 2>/dev/null <"/proc/$p/cmdline" || continue
	cmd="${args[*]}"
	[[ " $cmd " == *" __supervise "* ]] || continue
	is_busy "$cmd" && continue
	older_pid "$p" && { earlier+=("$p: $cmd"); continue; }
	case "$cmd" in
	*" --root /tmp/qvm-test."*) left+=("$p: $cmd") ;;
	esac
done
is "${#left[@]}" 0 "no qvm supervisor left from a test"
for l in "${left[@]}"; do diag "  $l   (kill ${l%%:*})"; done

roots=()
for r in /tmp/qvm-test.*; do
	[ -e "$r" ] && ! is_busy "$r" || continue
	if older_root "$r"; then earlier+=("$r"); else roots+=("$r"); fi
done
is "${roots[*]}" "" "no test root left in /tmp"
[ ${#roots[@]} -eq 0 ] || diag "  rm -rf ${roots[*]}"

mounts=()
while read -r _ m _; do
	case "$m" in /tmp/qvm-test.*) is_busy "$m" || mounts+=("$m") ;; esac
done </proc/mounts
is "${mounts[*]}" "" "no mount left under a test root"
[ ${#mounts[@]} -eq 0 ] || diag "  umount ${mounts[*]}"

# Names tests and qvm give to taps, bridges, veths, VLANs.
links=$(ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' |
	grep -E '^(qvm|qt|qbr)' | xargs)
is "$links" "" "no qvm*/qt*/qbr* network interface left"
for l in $links; do diag "  ip link del $l"; done

netns=$(ip netns list 2>/dev/null | awk '{print $1}' | xargs)
is "$netns" "" "no network namespace left"
for n in $netns; do diag "  ip netns del $n"; done

[ ${#earlier[@]} -eq 0 ] || diag "left by an earlier run, not counted:"
for l in "${earlier[@]}"; do diag "  $l"; done

done_testing
