#!/usr/bin/env bash
# qvm metrics: Prometheus's text format, checked by promtool; the host's
# gauges and a running vm's samples (labelled name and id); its counters
# never go down across scrapes while the guest works (CPU seconds rise, a
# hot-plugged disk's reads show up); --listen serves GET /metrics to curl,
# refuses other paths and methods, and ends cleanly on SIGTERM.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
command -v promtool >/dev/null || bail_out "no promtool: run make deps (package prometheus)"
command -v systemd-socket-activate >/dev/null || bail_out "no systemd-socket-activate: run make deps (package systemd)"

# sample FILE METRIC LABELS: the value of METRIC{LABELS} in FILE, or empty
sample() {
	local k=$2
	[ -n "$3" ] && k="$2{$3}"
	awk -v k="$k" '$1 == k {print $2}' "$1"
}
# counters FILE: "METRIC{LABELS} VALUE" of every counter sample of vm met1
counters() {
	awk '/^# TYPE / && $4 == "counter" {c[$3] = 1} !/^#/ {
		n = $1; sub(/\{.*/, "", n); if (c[n] && $1 ~ /name="met1"/) print $1, $2 }' "$1"
}

define met1 qvm.counter=1 --disk 32M
define met2 "" --memory 128M
id1=$(vm_id met1)
id2=$(vm_id met2)
LOG=$QVM_ROOT/vms/$id1/console.log
run "$QVM" start met1
is "$RC" 0 "start met1" || diag "$ERR"
wait_for_file_line "$LOG" '^QVM-READY ' "$BOOT_S" || { explain met1; bail_out "met1 does not boot"; }

# ---- 1. one scrape -----------------------------------------------------------
run "$QVM" metrics
is "$RC" 0 "metrics" || diag "$ERR"
echo "$OUT" >"$QVM_TEST_ROOT/m1"
run promtool check metrics <"$QVM_TEST_ROOT/m1"
is "$RC" 0 "promtool check metrics accepts it" || diag "$ERR $OUT"
M=$QVM_TEST_ROOT/m1
is "$(sample "$M" qvm_host_cpus "")" "$(nproc)" "host: CPUs"
like "$(sample "$M" qvm_host_memory_bytes "")" '^[1-9][0-9]+$' "host: memory"
is "$(sample "$M" qvm_host_memory_committed_bytes "")" $((256 << 20)) \
	"host: committed memory is met1's (met2 is PENDING: nothing held)"
is "$(sample "$M" qvm_host_vms 'state="ACTIVE"') $(sample "$M" qvm_host_vms 'state="PENDING"')" \
	"1 1" "host: vms by state"
L1="name=\"met1\",id=\"$id1\""
L2="name=\"met2\",id=\"$id2\""
is "$(sample "$M" qvm_vm_state "$L1,state=\"ACTIVE\"") $(sample "$M" qvm_vm_state "$L1,state=\"POWEROFF\"")" \
	"1 0" "met1: state ACTIVE 1, POWEROFF 0"
is "$(sample "$M" qvm_vm_state "$L2,state=\"PENDING\"")" 1 "met2: state PENDING 1"
is "$(grep -c "^qvm_vm_state{$L1," "$M")" 9 "met1: one state sample per state but DONE"
is "$(sample "$M" qvm_vm_memory_bytes "$L1") $(sample "$M" qvm_vm_vcpus "$L1")" \
	"$((256 << 20)) 1" "met1: memory and vcpus"
is "$(sample "$M" qvm_vm_restarts_total "$L1")" 0 "met1: no restarts"
like "$(sample "$M" qvm_vm_cpu_seconds_total "$L1")" '^[0-9]+\.[0-9]+$' "met1: CPU seconds"
like "$(sample "$M" qvm_vm_rss_bytes "$L1")" '^[1-9][0-9]+$' "met1: QEMU's RSS"
like "$(sample "$M" qvm_vm_uptime_seconds "$L1")" '^[0-9]+\.[0-9]+$' "met1: uptime"
like "$(sample "$M" qvm_vm_block_read_ops_total "$L1,disk=\"disk0\"")" '^[1-9][0-9]*$' \
	"met1: disk0's reads (the guest read its partition table)"
is "$(sample "$M" qvm_vm_cpu_seconds_total "$L2")" "" "met2 (not running): no CPU sample"
is "$(grep -c '^# HELP ' "$M")" "$(grep -c '^# TYPE ' "$M")" "a HELP line for every TYPE line"

# ---- 2. counters never go down while the guest works ------------------------
# the guest counts every second (CPU), and reads a disk plugged in now
sleep 2
run "$QVM" disk-attach met1 --size 16M
is "$RC" 0 "disk-attach while it runs" || diag "$ERR"
wait_for_file_line "$LOG" '^QVM-DEVICES .*block=vda,vdb' 30 || diag_file "$LOG" 5
sleep 1
run "$QVM" metrics
echo "$OUT" >"$QVM_TEST_ROOT/m2"
run promtool check metrics <"$QVM_TEST_ROOT/m2"
is "$RC" 0 "the second scrape passes promtool" || diag "$ERR $OUT"
counters "$QVM_TEST_ROOT/m1" >"$QVM_TEST_ROOT/c1"
counters "$QVM_TEST_ROOT/m2" >"$QVM_TEST_ROOT/c2"
down=$(join "$QVM_TEST_ROOT/c1" "$QVM_TEST_ROOT/c2" 2>/dev/null | awk '$3 < $2')
missing=$(join -v1 <(sort "$QVM_TEST_ROOT/c1") <(sort "$QVM_TEST_ROOT/c2"))
like "$(wc -l <"$QVM_TEST_ROOT/c1")" '^[1-9]' "the first scrape has counters of met1"
is "$down" "" "no counter of met1 went down between the scrapes"
is "$missing" "" "every counter of the first scrape is in the second"
c1=$(sample "$QVM_TEST_ROOT/m1" qvm_vm_cpu_seconds_total "$L1")
c2=$(sample "$QVM_TEST_ROOT/m2" qvm_vm_cpu_seconds_total "$L1")
ok "CPU seconds rose while the guest worked ($c1 -> $c2)" awk "BEGIN {exit !($c2 > $c1)}"
like "$(sample "$QVM_TEST_ROOT/m2" qvm_vm_block_read_ops_total "$L1,disk=\"disk1\"")" '^[1-9][0-9]*$' \
	"the new disk1 has reads: the guest scanned it"

# ---- 3. --listen: HTTP at /metrics only, SIGTERM ends it ---------------------
port=$((20000 + RANDOM % 20000))
"$QVM" metrics --listen "127.0.0.1:$port" 2>"$QVM_TEST_ROOT/http.err" &
hpid=$!
on_exit "kill $hpid"
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$port/metrics" && break
	sleep 0.1
done
run curl -s -w '\n%{http_code} %{content_type}' "http://127.0.0.1:$port/metrics"
is "$(tail -1 <<<"$OUT")" "200 text/plain; version=0.0.4; charset=utf-8" \
	"curl GET /metrics: 200, Prometheus's content type" || diag_file "$QVM_TEST_ROOT/http.err"
sed '$d' <<<"$OUT" >"$QVM_TEST_ROOT/m3"
run promtool check metrics <"$QVM_TEST_ROOT/m3"
is "$RC" 0 "what it served passes promtool" || diag "$ERR $OUT"
like "$(sample "$QVM_TEST_ROOT/m3" qvm_vm_cpu_seconds_total "$L1")" '^[0-9]' "it served met1's samples"
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/"
is "$OUT" 404 "another path (/) is refused: 404"
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics/../etc"
is "$OUT" 404 "a path under /metrics is refused: 404"
run curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/metrics"
is "$OUT" 405 "POST is refused: 405"
# more idle connections than it serves at once: it still answers once they go
for i in $(seq 10); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$port" && eval "idle$i=$fd"
done
run curl -s -m 15 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics"
is "$OUT" 200 "with 10 idle connections open, a scrape is answered (they time out)"
for i in $(seq 10); do eval "exec {idle$i}>&-"; done
kill -TERM "$hpid"
wait "$hpid"
is "$?" 0 "SIGTERM: it exits 0"
run curl -s -o /dev/null "http://127.0.0.1:$port/metrics"
isnt_listening=$RC
ok "nothing listens on the port any more" test "$isnt_listening" != 0
# a socket unit's way: the listening socket passed as fd 3 (LISTEN_FDS)
port2=$((port + 1))
systemd-socket-activate -l "127.0.0.1:$port2" "$QVM" metrics --listen "127.0.0.1:$port2" \
	2>"$QVM_TEST_ROOT/sa.err" &
spid=$!
on_exit "kill $spid"
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$port2/metrics" && break
	sleep 0.1
done
run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port2/metrics"
is "$OUT" 200 "socket activation (systemd-socket-activate): it serves the socket passed" ||
	diag_file "$QVM_TEST_ROOT/sa.err"
like "$(cat "$QVM_TEST_ROOT/sa.err")" "on the socket passed \(LISTEN_FDS\)" "... and says so"
kill -TERM "$spid"
wait "$spid"
is "$?" 0 "... SIGTERM ends it with 0"
run "$QVM" metrics --listen "localhost:$port"
is "$RC" 2 "--listen with a name, not a numeric address: usage error"
run "$QVM" metrics --json
is "$RC" 2 "metrics --json: usage error (the format is Prometheus's)"

run "$QVM" delete met1
is "$RC" 0 "delete met1" || diag "$ERR"
run "$QVM" delete met2
is "$(runtime_left)" "" "nothing of the runtime is left"
done_testing
