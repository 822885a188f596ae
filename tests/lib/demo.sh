#!/usr/bin/env bash
# `make demo`: qvm on a throwaway root with the test guest: define it, boot
# it, read its console, list it, shut it down.
set -euo pipefail
QVM=${QVM:?} GUEST=${QVM_GUEST:?}
root=$(mktemp -d /tmp/qvm-demo.XXXXXX)
cleanup() {
	"$QVM" --root "$root" delete demo >/dev/null 2>&1 || true
	rm -rf "$root"
}
trap cleanup EXIT
export QVM_ROOT=$root QVM_DISK_ROOTS=$GUEST

say() {
	printf '\n\033[1m$ qvm %s\033[0m\n' "$*"
	"$QVM" "$@"
}

say host
say create demo --memory 256M --disk 64M --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initrd.img" \
	--append "$(cat "$GUEST/append")" --label purpose=demo
say start demo
printf '\n\033[1m# waiting for the guest to say it is ready on its serial console\033[0m\n'
ready=
for _ in $(seq 1 600); do
	grep -q -a '^QVM-READY' "$root/vms/1/console.log" 2>/dev/null && { ready=1; break; }
	sleep 0.1
done
grep -a 'QVM-' "$root/vms/1/console.log" | tr -d '\r'
if [ -z "$ready" ]; then
	echo "demo: the guest did not say it is ready within 60 s; what qvm knows:" >&2
	"$QVM" show demo >&2 || true
	exit 1
fi
say list
say show demo
say shutdown demo
say list --all
say history 1
