#!/usr/bin/env bash
# qvm top: batch samples of a running vm (state, CPU %, memory and RSS,
# disk and nic rates, uptime) in which its disk counters rise while the
# guest reads a disk (the partition scan of one hot-plugged meanwhile);
# --json; the live view on a pty (a key sorts, q quits); bad arguments.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
NL=$'\n'

define top1 qvm.counter=1 --disk 32M
id=$(vm_id top1)
LOG=$QVM_ROOT/vms/$id/console.log
run "$QVM" start top1
is "$RC" 0 "start" || diag "$ERR"
wait_for_file_line "$LOG" '^QVM-READY ' "$BOOT_S" || { explain top1; bail_out "top1 does not boot"; }
define idle "" --memory 128M

# ---- one sample --------------------------------------------------------------
run "$QVM" top -b -n 1
is "$RC" 0 "top -b -n 1" || diag "$ERR"
like "$OUT" "^qvm top - [0-9:]+, 1 vm active, sorted by cpu$NL" "a header: the time, how many, the sort"
like "$OUT" "$NL +ID +NAME +STAT +CPU% +MEM +RSS +DISK-R/s +DISK-W/s +NET-RX/s +NET-TX/s +UPTIME$NL" \
	"the columns"
like "$OUT" "$NL +$id +top1 +runn +[0-9]+\.[0-9] +256M +[0-9.]+[KMG] +- +- +- +- +[0-9]+s($NL|$)" \
	"top1: runn, CPU % (over its life), 256M, its RSS, no rates yet, its uptime"
ok "a vm that is not active is not shown" bash -c "! grep -q ' idle ' <<<'$OUT'"

# ---- disk counters rise while the guest reads -----------------------------------
# one top at a time: each takes the vm's lock for its QMP query without
# waiting, and a sample that finds it held has no disk counters
"$QVM" top -b -n 7 -d 1 >"$QVM_TEST_ROOT/batch.txt" 2>"$QVM_TEST_ROOT/batch.err" &
tpid=$!
sleep 2
run "$QVM" disk-attach top1 --size 16M
is "$RC" 0 "disk-attach while top -b samples" || diag "$ERR"
wait "$tpid"
is "$?" 0 "top -b -n 7 -d 1 exits 0 after its samples" || diag_file "$QVM_TEST_ROOT/batch.err"
"$QVM" top -n 7 -d 1 --json >"$QVM_TEST_ROOT/batch.json" 2>"$QVM_TEST_ROOT/json.err" &
jpid=$!
sleep 2
run "$QVM" disk-attach top1 --size 16M
is "$RC" 0 "disk-attach while top --json samples" || diag "$ERR"
wait "$jpid"
is "$?" 0 "top -n 7 --json exits 0" || diag_file "$QVM_TEST_ROOT/json.err"
B=$QVM_TEST_ROOT/batch.txt
is "$(grep -c '^qvm top - ' "$B")" 7 "seven samples"
reads=$(awk -v id="$id" '$1 == id && $2 == "top1" {print $7}' "$B" | tr '\n' ' ')
diag "DISK-R/s per sample: $reads"
ok "a sample after the attach shows the guest's reads (DISK-R/s > 0)" \
	bash -c "tr ' ' '\n' <<<'$reads' | grep -Eq '^[1-9][0-9.]*[KMG]?$'"
is "$(awk -v id="$id" '$1 == id && $2 == "top1" && $5 == "256M"' "$B" | wc -l)" 7 "top1 in every sample"
J=$QVM_TEST_ROOT/batch.json
is "$(schema_violations <"$J")" "" "top --json follows the schema"
is "$(jq length "$J")" 7 "--json: an array of seven samples"
# the cumulative read bytes, where known: never down, up by the end
is "$(jq -r '[.[].vms[0].disk_read_bytes | select(. != null)] |
	(. as $a | [range(1; length) | $a[.] >= $a[. - 1]] | all) and (.[-1] > .[0])' "$J")" true \
	"--json: disk_read_bytes never goes down and rose while the guest read"
is "$(jq -r '[.[1:][].vms[0].disk_read_per_s | select(. != null and . > 0)] | length > 0' "$J")" true \
	"--json: a disk_read_per_s above 0"
is "$(jq -r '.[0].vms[0] | [.id, .short, .memory, (.cpu_seconds | type), (.uptime_ms | type)] | map(tostring) | join(" ")' "$J")" \
	"$id runn 268435456 number number" "--json: id, state, memory, CPU seconds, uptime in ms"

# ---- live, on a pty: a key sorts, q quits ------------------------------------------
start=$(date +%s)
printf 'aq' | timeout 20 script -qfc "$QVM top -d 5" /dev/null >"$QVM_TEST_ROOT/live.txt" 2>&1
rc=$?
is "$rc" 0 "live top on a pty: q quits it (exit 0)"
ok "... at once, not after its 5 s delay" test $(($(date +%s) - start)) -lt 5
like "$(tr -d '\r' <"$QVM_TEST_ROOT/live.txt")" "sorted by cpu \(c cpu.*q quits\)" "live: the keys in the header"
like "$(tr -d '\r' <"$QVM_TEST_ROOT/live.txt")" "sorted by name" "live: 'a' sorts by name"

# ---- bad arguments ---------------------------------------------------------------------
for a in "-n 0" "-d 0" "-d x" "--sort size" "extra"; do
	# shellcheck disable=SC2086 # the option and its value
	run "$QVM" top -b $a
	is "$RC" 2 "top $a: usage error"
done
run "$QVM" top -b -n 1 --sort name
is "$RC" 0 "top --sort name" || diag "$ERR"
like "$OUT" "sorted by name" "... says so"

run "$QVM" delete top1
is "$RC" 0 "delete top1" || diag "$ERR"
run "$QVM" delete idle
run "$QVM" top -b -n 1
like "$OUT" "0 vms active" "no vm active: an empty sample"
is "$(runtime_left)" "" "nothing of the runtime is left"
done_testing
