#!/usr/bin/env bash
# `make demo` works: tests/lib/demo.sh defines the test guest, boots it
# under qvm, shows its ready line and `list`, shuts it down, and leaves
# nothing behind.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
before=$(ls -d /tmp/qvm-demo.* 2>/dev/null | sort)
OUT=$(QVM="$QVM" QVM_GUEST="$G" "${QVM_SOURCE:-$(dirname "$0")/../..}/tests/lib/demo.sh" 2>"$QVM_TEST_ROOT/stderr")
RC=$?
is "$RC" 0 "the demo runs to its end" || diag "$(cat "$QVM_TEST_ROOT/stderr")"
like "$OUT" "demo: ACTIVE/RUNNING" "it starts the vm"
like "$OUT" $'\nQVM-READY uptime=' "it prints the guest's ready line from its console"
like "$OUT" " demo +runn " "list shows it running"
like "$OUT" "demo: DONE" "it shuts the vm down"
like "$OUT" " demo +done " "list --all shows it DONE"
is "$(ls -d /tmp/qvm-demo.* 2>/dev/null | sort)" "$before" "its root is removed"
is "$(pids_matching qvm-demo.)" "" "no qemu or supervisor of it is left"
done_testing
