#!/usr/bin/env bash
# The JSON schema of qvm.8's JSON OUTPUT, checked with jq on the --json
# output of every command that has one: times only in *_ms keys and
# numbers, null (never "") for what is not there, errors with a symbolic
# errno beside the message. Then history: what each record did (the update's
# keys, the QMP command a shutdown sent, the end of an intent), in aligned
# columns; and a memory snapshot's size and time. One guest boots (js-run),
# shared by the live checks; js-off stays off.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg
export QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT/img
mkdir -p "$QVM_TEST_ROOT/img"
NL=$'\n'

# schema LABEL JSON: one check that JSON is JSON and breaks none of the rules
schema() {
	local bad
	if ! bad=$(schema_violations <<<"$2" 2>&1); then
		not_ok "$1: --json prints JSON"
		diag "$2"
		return
	fi
	is "$bad" "" "$1: --json follows the schema"
}
# check LABEL CMD...: run CMD (with --json added), expect success, check it
check() {
	local label=$1
	shift
	run "$QVM" "$@" --json
	if [ "$RC" != 0 ]; then
		not_ok "$label: exits 0"
		diag "$ERR"
		return
	fi
	schema "$label" "$OUT"
}
# check_error LABEL ERRNO CMD...: CMD fails (status 1) with a JSON error
# on stderr: its message in "error", errno symbolic
check_error() {
	local label=$1 errno=$2
	shift 2
	run "$QVM" "$@" --json
	is "$RC" 1 "$label: fails"
	is "$(jq -r '[.errno, (.error | type)] | join(" ")' <<<"$ERR")" "$errno string" \
		"$label: errno $errno, the message in error" || diag "$ERR"
	schema "$label (the error)" "$ERR"
}

# ---- commands on a vm that is off, the host, the store ------------------------
check "host" host
check "list (empty)" list
check "net list" net list
run "$QVM" create js-off --memory 256M --disk 64M --json
is "$RC" 0 "create js-off" || diag "$ERR"
schema "create" "$OUT"
is "$(jq -r '[.lcm, .created_ms == .since_ms, (.created_ms | type)] | map(tostring) | join(" ")' <<<"$OUT")" \
	"null true number" "create: lcm null while not ACTIVE, created_ms and since_ms numbers"
check "list" list
is "$(jq -r '.[0] | [.lcm, .uptime_ms, .cpu_percent] | map(tostring) | join(" ")' <<<"$OUT")" \
	"null 0 null" "list: lcm null, uptime_ms 0, no cpu_percent for a vm that is off"
check "list --all" list --all
check "dump" dump js-off
check "argv" argv js-off
check "update (labels, user data)" update js-off label.tier=web label.gone=x owner=me
check "update (a label removed)" update js-off label.gone=
check "update (memory)" update js-off memory=512M
check "disk-attach" disk-attach js-off --size 32M
check "disk-resize" disk-resize js-off 1 48M
check "disk-snapshot-create" disk-snapshot-create js-off 0 js-ds
check "disk-snapshot-list" disk-snapshot-list js-off 0
is "$(jq -r '.[0] | [.name, (.date_ms | type)] | join(" ")' <<<"$OUT")" "js-ds number" \
	"disk-snapshot-list: date_ms in ms"
now_ms=$(($(date +%s%3N)))
ok "... the date is now (to the second qcow2 keeps)" \
	test $((now_ms - $(jq '.[0].date_ms' <<<"$OUT"))) -lt 60000
check "disk-snapshot-delete" disk-snapshot-delete js-off 0 js-ds
check "disk-detach" disk-detach js-off 1
check "hold" hold js-off
check "release" release js-off
check "snapshot-create (off)" snapshot-create js-off js-cold
is "$(jq -r '[.memory, .vmstate_disk, .vmstate_size] | map(tostring) | join(" ")' <<<"$OUT")" \
	"false null null" "snapshot-create of a vm that is off: no memory, no vmstate disk or size"
check "snapshot-list" snapshot-list js-off
check "snapshot-revert" snapshot-revert js-off js-cold
check "show" show js-off
is "$(jq -r '[.snapshots.current, (.snapshots.snapshots | length), .snapshots.snapshots[0].tag] | map(tostring) | join(" ")' <<<"$OUT")" \
	"1 1 js-cold" "show: the snapshots as snapshot-list prints them"
check "history" history js-off
is "$(jq -r '[.[] | keys | join(",")] | unique | join(" ")' <<<"$OUT")" \
	"detail,error,lcm,reason,seq,state,time_ms,type" "history: only the public fields"
check "snapshot-delete" snapshot-delete js-off js-cold
qemu-img create -q -f qcow2 "$QVM_TEST_ROOT/img/js-base.qcow2" 16M
check "image import" image import "$QVM_TEST_ROOT/img/js-base.qcow2" --name js-base
check "image list" image list
check "image show" image show js-base
is "$(jq -r '(.created_ms | type)' <<<"$OUT")" "number" "image show: created_ms"
check "image delete" image delete js-base

# ---- errors -------------------------------------------------------------------
check_error "show of a missing vm" ENOENT show nosuchvm
like "$ERR" '"error": ?"no vm named .nosuchvm' "... the message names it"
check_error "history of a missing vm" ENOENT history nosuchvm
check_error "image show of a missing image" ENOENT image show js-nosuch
run "$QVM" show --json
is "$RC" 2 "a usage error: status 2"
is "$(jq -r '[(.error | type), (.usage | type), has("errno")] | map(tostring) | join(" ")' <<<"$ERR")" \
	"string string false" "... error and usage, no errno" || diag "$ERR"

# ---- history of the vm that is off ----------------------------------------------
run "$QVM" history js-off
is "$RC" 0 "history js-off" || diag "$ERR"
like "$OUT" "(^|$NL) +[0-9]+ [-0-9]+ [:0-9]+ +update +- +labels tier=web, gone=x; user owner=me($NL|$)" \
	"history: an update says which keys it set"
like "$OUT" "(^|$NL) +[0-9]+ [-0-9]+ [:0-9]+ +update +- +labels -gone($NL|$)" \
	"... and which it removed"
like "$OUT" "(^|$NL) +[0-9]+ [-0-9]+ [:0-9]+ +redefine +- +update: memory 256M→512M($NL|$)" \
	"history: a memory update says from what to what"
is "$(grep -E -o ' redefine +- +disk 1 [a-z]+$' <<<"$OUT" | awk '{print $NF}' | tr '\n' ' ')" \
	"added resized removed " "history: a redefine without a reason says what changed (disk 1 added, resized, removed)"
like "$OUT" "(^|$NL) +[0-9]+ [-0-9]+ [:0-9]+ +done +- +create ok($NL|$)" \
	"history: the end of an intent, with its operation and result"
like "$OUT" "(^|$NL) +[0-9]+ [-0-9]+ [:0-9]+ +snapshot-current +- " \
	"history: every record, a snapshot-current too"
# aligned: each column starts where its header does, after a space
aligned() {
	awk 'NR == 1 { t = index($0, " TYPE") + 1; s = index($0, " STATE") + 1; d = index($0, " DETAIL") + 1; next }
	     substr($0, t - 1, 1) != " " || substr($0, t, 1) == " " ||
	     substr($0, s - 1, 1) != " " || substr($0, s, 1) == " " ||
	     substr($0, d - 1, 1) != " " || (length($0) >= d && substr($0, d, 1) == " ") { print "misaligned: " $0 }' <<<"$1"
}
is "$(aligned "$OUT")" "" "history: TYPE, STATE and DETAIL aligned, a long type (snapshot-current) too"
check "delete" delete js-off

# ---- a running vm ---------------------------------------------------------------
define js-run "" --disk 64M --vnc
rid=$(vm_id js-run)
rlog=$QVM_ROOT/vms/$rid/console.log
check "start" start js-run
if ! wait_for_file_line "$rlog" '^QVM-READY ' "$BOOT_S"; then
	explain js-run
	bail_out "js-run does not boot"
fi
check "list (running)" list
is "$(jq -r '.[] | select(.name == "js-run") | [.lcm, (.uptime_ms | type), (.cpu_percent | type), (.rss | type)] | join(" ")' <<<"$OUT")" \
	"RUNNING number number number" "list: a running vm's lcm, uptime_ms, cpu_percent, rss"
check "show (running)" show js-run
is "$(jq -r '[.lcm, (.qemu_pid | type), (.supervisor_pid | type)] | join(" ")' <<<"$OUT")" \
	"RUNNING number number" "show: lcm and pids of a running vm"
check "vnc" vnc js-run --ttl 5
is "$(jq -r '[.host, (.port | type), (.display | type), (.password | length), (.expires_ms | type)] | map(tostring) | join(" ")' <<<"$OUT")" \
	"127.0.0.1 number number 8 number" "vnc --json: host, port, display, an 8-character password, expires_ms"
check "top (running)" top -n 2 -d 0.2
is "$(jq -r '.[1].vms[0] | [.short, (.cpu_percent | type), (.uptime_ms | type)] | join(" ")' <<<"$OUT")" \
	"runn number number" "top --json: a running vm's state, CPU %, uptime_ms"
check "pause" pause js-run
check "unpause" unpause js-run
check "snapshot-create (memory)" snapshot-create js-run js-live
snap=$OUT
is "$(jq -r '[.memory, .vmstate_disk, (.vmstate_size | type)] | map(tostring) | join(" ")' <<<"$snap")" \
	"true 0 number" "snapshot-create with memory: its state on disk 0, with a size"
size=$(jq '.vmstate_size' <<<"$snap")
qsize=$(qemu-img info -U -f qcow2 --output=json "$QVM_ROOT/vms/$rid/disk0.qcow2" |
	jq '.snapshots[] | select(.name == "js-live") | ."vm-state-size"')
is "$size" "$qsize" "... the size qemu-img lists for it (VM SIZE)"
ok "... more than nothing" test "${size:-0}" -gt 0
check "snapshot-list (memory)" snapshot-list js-run
created=$(jq '.snapshots[] | select(.tag == "js-live") | .created_ms' <<<"$OUT")
recorded=$("$QVM" history js-run --json | jq '[.[] | select(.type == "snapshot-add")][-1].time_ms')
is "$created" "$recorded" "snapshot-list's created_ms is the time of its history record"
is "$(jq '.created_ms' <<<"$snap")" "$created" "... and what snapshot-create printed"
run "$QVM" shutdown js-run
is "$RC" 0 "shutdown js-run" || { diag "$ERR"; explain js-run; }
check "history (shut down)" history "$rid"
is "$(jq -r '[.[] | select(.type == "sent")][0].detail' <<<"$OUT")" \
	"system_powerdown (the ACPI power button)" "history --json: what the shutdown sent"
run "$QVM" history "$rid"
like "$OUT" "(^|$NL) +[0-9]+ [-0-9]+ [:0-9]+ +sent +- +system_powerdown \(the ACPI power button\)($NL|$)" \
	"history: the sent row names the QMP command"
like "$OUT" "(^|$NL) +[0-9]+ [-0-9]+ [:0-9]+ +state +DONE +shut down" "history: DONE with its reason"
is "$(aligned "$OUT")" "" "history of a shut down vm: aligned"
check "accounting (a vm shut down)" accounting "$rid"
is "$(jq -r '.vms[0].runs[0] | [(.start_ms | type), (.end_ms | type), .ended] | join(" ")' <<<"$OUT")" \
	"number number DONE" "accounting: js-run's run, its times in ms, ended DONE"
check "accounting (every vm)" accounting --since -1d
done_testing
