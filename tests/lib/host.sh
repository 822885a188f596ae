# shellcheck shell=bash
# What the tests of the host's side (the scheduler, host boot and host
# shutdown: tests/e2e/70-*.t .. 74-*.t) share: source it after tap.sh and
# vm.sh.
#
#   pass [ARG...]             one `qvm scheduler --once` pass
#   pass_ok NAME [ARG...]     run pass ARG...: checks that it exits 0 (its
#                             stderr as a diagnostic if not); OUT, ERR, RC
#   acts VM WHAT              how many times the host's scheduler did WHAT
#                             (autostart, restart...) to VM, by its history
#   crash VM                  kill -9 VM's supervisor, then its qemu, as a
#                             host crash would
#   mark VM, ready VM         mark before VM boots, ready after: waits until
#                             that boot is done (acpid runs: the guest hears
#                             the ACPI button), a failed check if it is not

pass() { "$QVM" scheduler --once "$@"; }
pass_ok() {
	local name=$1
	shift
	run pass "$@"
	is "$RC" 0 "$name" || diag "$ERR"
}
acts() {
	"$QVM" history "$1" --json | "$PY" -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)
          if r["type"] == "sched-act" and r["reason"] == sys.argv[1] + ": ok"))' "$2"
}
crash() {
	local sup qemu
	sup=$(pids_matching "$QVM_ROOT __supervise $(vm_id "$1") ")
	qemu=$(pids_matching "$(uuid_of "$1")")
	[ -n "$sup" ] && kill -9 $sup
	wait_pid_gone "$sup" 10
	[ -n "$qemu" ] && kill -9 $qemu
	wait_pid_gone "$qemu" 10
}

declare -A MARK
console_of() { echo "$QVM_ROOT/vms/$(vm_id "$1")/console.log"; }
mark() { MARK[$1]=$(line_count "$(console_of "$1")"); }
ready() {
	wait_for_file_line "$(console_of "$1")" '^QVM-READY ' "$BOOT_S" "${MARK[$1]:-0}" ||
		not_ok "the guest of $1 boots"
}
