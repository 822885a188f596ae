#!/usr/bin/env bash
# Crashes and concurrency around definitions: qvm killed at every step of
# create and delete leaves, after the next writer recovers, either the whole
# vm or nothing; many creates at once neither lose nor duplicate anything;
# a corrupt journal stops with a clear error instead of being skipped; a
# failed sync of the journal (EIO) fails the command and loses nothing.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_DISK_ROOTS=$QVM_TEST_ROOT/img
need_qvm
mkdir -p "$QVM_DISK_ROOTS"
qemu-img create -q -f qcow2 "$QVM_DISK_ROOTS/base.qcow2" 64M

# run CMD... (sets OUT, ERR and RC) and json EXPR: tests/lib/vm.sh
# the ids of vms that are not DONE
live_ids() { "$QVM" list --json | json '" ".join(str(v["id"]) for v in d)'; }
vm_dirs() { (cd "$QVM_ROOT/vms" 2>/dev/null && ls | sort -n | tr '\n' ' '); }

"$QVM" create keep --disk 16M >/dev/null

# --- create: rolled back before the definition is recorded, kept after ------
for point in create-after-intent create-disk create-before-define create-before-done; do
	name=c-${point}
	QVM_CRASH_AT=$point run "$QVM" create "$name" --disk "$QVM_DISK_ROOTS/base.qcow2" --disk 8M
	is "$RC" 99 "create crashed at $point"
	# the next writer recovers (any writing command will do)
	run "$QVM" update keep touched=$point
	is "$RC" 0 "the next writer recovers after $point" || diag "$ERR"
	run "$QVM" list
	if [ "$point" = create-before-done ]; then
		like "$OUT" " $name +pend" "$point: the vm was recorded, so it is kept"
		id=$("$QVM" list --json | json '[v["id"] for v in d if v["name"] == "'"$name"'"][0]')
		ok "$point: its disks are there" test -f "$QVM_ROOT/vms/$id/disk0.qcow2" -a -f "$QVM_ROOT/vms/$id/disk1.qcow2"
		run "$QVM" delete "$name"
		is "$RC" 0 "$point: and it can be deleted"
	else
		ok "$point: the vm is not listed" test "$(grep -c " $name " <<<"$OUT")" = 0
	fi
	is "$(vm_dirs)" "$(for i in $(live_ids); do printf '%s ' "$i"; done)" \
		"$point: only live vms have folders"
	run "$QVM" history "$("$QVM" list --all --json | json 'd[-1]["id"]')"
done
ok "no temporary files anywhere" test "$(find "$QVM_ROOT" -name '*.tmp.*' -o -name '.qvm-create-*' | wc -l)" = 0

# --- delete: finished by the next writer ------------------------------------
for point in delete-after-intent delete-before-done; do
	"$QVM" create "d-$point" --disk 8M >/dev/null
	id=$("$QVM" list --json | json '[v["id"] for v in d if v["name"] == "d-'"$point"'"][0]')
	QVM_CRASH_AT=$point run "$QVM" delete "d-$point"
	is "$RC" 99 "delete crashed at $point"
	run "$QVM" update keep touched=$point
	run "$QVM" list --all
	like "$OUT" "$id +d-$point +done" "$point: the next writer finished the deletion"
	ok "$point: its folder is gone" test ! -e "$QVM_ROOT/vms/$id"
	run "$QVM" history "$id"
	like "$OUT" "finished after a crash|deleted" "$point: history says so"
done

# --- a command on the vm itself comes first: the deletion is finished
# before it runs (not later, under whatever the command did with the vm) --
"$QVM" create d-self --disk 8M >/dev/null
id=$("$QVM" list --json | json '[v["id"] for v in d if v["name"] == "d-self"][0]')
QVM_CRASH_AT=delete-after-intent run "$QVM" delete d-self
is "$RC" 99 "delete crashed after its intent"
run "$QVM" disk-attach d-self --size 8M
is "$RC" 1 "a disk-attach on the vm next is refused ..."
like "$ERR" "no vm named 'd-self'|it is DONE" "... the vm is deleted first"
ok "... its folder is gone" test ! -e "$QVM_ROOT/vms/$id"
is "$(open_intents "$id")" "" "... and no intent is left open"

# --- delete --recreate: finished by the next command on the vm ------------
"$QVM" create r-crash --disk "$QVM_DISK_ROOTS/base.qcow2" --disk 8M >/dev/null
id=$("$QVM" list --json | json '[v["id"] for v in d if v["name"] == "r-crash"][0]')
qemu-io -f qcow2 -c 'write -P 0xcd 0 64k' "$QVM_ROOT/vms/$id/disk1.qcow2" >/dev/null
QVM_CRASH_AT=recreate-after-intent run "$QVM" delete r-crash --recreate
is "$RC" 99 "delete --recreate crashed after its intent"
run "$QVM" disk-attach r-crash --size 8M
is "$RC" 0 "the next command on the vm works" || diag "$ERR"
is "$("$QVM" show r-crash --json | json 'd["state"]')" PENDING "the recreate was finished first: PENDING"
is "$("$QVM" show r-crash --json | json 'len(d["definition"]["disks"])')" 3 "... then the disk was attached"
like "$("$QVM" history r-crash)" "recreated \(finished after a crash\)" "... history says so"
ok "its disks exist" test -f "$QVM_ROOT/vms/$id/disk0.qcow2" -a -f "$QVM_ROOT/vms/$id/disk1.qcow2"
ok "... and are fresh" test -z "$(qemu-img map --output=json -f qcow2 "$QVM_ROOT/vms/$id/disk1.qcow2" | grep '"data": true')"
is "$(open_intents "$id")" "" "... and its intent is closed"
run "$QVM" delete r-crash
is "$RC" 0 "and it can be deleted"

# --- compaction interrupted -------------------------------------------------
for point in journal-compact-archived journal-compact-snapshot; do
	before=$("$QVM" list --all --json | json 'len(d)')
	# enough writes to make the next close compact
	for i in $(seq 1 130); do "$QVM" update keep n=$i >/dev/null || break; done
	QVM_CRASH_AT=$point "$QVM" update keep last=1 >/dev/null 2>&1
	run "$QVM" update keep after=$point
	is "$RC" 0 "a writer after a crash at $point works" || diag "$ERR"
	run "$QVM" list --all --json
	is "$(json 'len(d)' <<<"$OUT")" "$before" "$point: no vm lost or doubled"
	run "$QVM" show keep --json
	is "$(json 'd["definition"]["user"]["after"]' <<<"$OUT")" "$point" "$point: the latest update is there"
done
run "$QVM" history keep
ok "history still reads every record across compactions" test "$(grep -c update <<<"$OUT")" -ge 260

# --- concurrency --------------------------------------------------------------
pids=()
for i in $(seq 1 20); do
	"$QVM" create "par$i" --disk 8M >"$QVM_TEST_ROOT/par$i.out" 2>&1 &
	pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
is "$fails" 0 "20 concurrent creates of different vms all succeed"
run "$QVM" list --json
is "$(json 'len([v for v in d if v["name"].startswith("par")])' <<<"$OUT")" 20 "all 20 are listed"
is "$(json 'len(set(v["id"] for v in d)) == len(d)' <<<"$OUT")" True "ids are unique"
pids=()
for i in $(seq 1 10); do
	"$QVM" create same --disk 8M >"$QVM_TEST_ROOT/same$i.out" 2>&1 &
	pids+=($!)
done
wins=0
for p in "${pids[@]}"; do wait "$p" && wins=$((wins + 1)); done
is "$wins" 1 "10 concurrent creates of one name: exactly one wins"
like "$(cat "$QVM_TEST_ROOT"/same*.out)" "a vm named 'same' exists already" "the others say why"
is "$(vm_dirs)" "$(for i in $(live_ids); do printf '%s ' "$i"; done)" "no folder of a losing create is left"

# --- a corrupt journal is an error, never skipped ------------------------------
# --- the journal's sync fails (EIO, as a dying disk): the command fails
# cleanly, nothing is made, nothing recorded before is lost ----------------
before_ids=$(live_ids)
before_dirs=$(vm_dirs)
QVM_FAIL_AT=journal-append-fdatasync run "$QVM" create eio --disk 8M
is "$RC" 1 "create fails when the journal cannot be synced"
like "$ERR" "cannot create vm 'eio': cannot append to journal .*cannot sync it: Input/output error" \
	"... saying so: ${ERR%%$'\n'*}"
is "$(vm_dirs)" "$before_dirs" "... leaving no vm folder"
run "$QVM" list
is "$RC" 0 "the journal still opens"
is "$(live_ids)" "$before_ids" "... with every vm recorded before, and not the failed one"
QVM_FAIL_AT=journal-append-fdatasync run "$QVM" update keep eio=1
is "$RC" 1 "update fails the same way"
run "$QVM" show keep --json
is "$(json '"eio" in d["definition"]["user"]' <<<"$OUT")" False "... and its change is not kept"
run "$QVM" create eio --disk 8M
is "$RC" 0 "once the disk is well, the same create works" || diag "$ERR"
run "$QVM" delete eio

# records in the log to corrupt, whenever the last compaction was
for i in 1 2 3 4 5; do "$QVM" update keep pre=$i >/dev/null; done
cp -a "$QVM_ROOT/journal" "$QVM_TEST_ROOT/journal.good"
log=$QVM_ROOT/journal/log
lines=$(wc -l <"$log")
ok "the log has records to corrupt" test "$lines" -ge 3
python3 - "$log" <<'EOF'
import sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
lines = data.split(b"\n")
mid = len(lines) // 2
start = sum(len(l) + 1 for l in lines[:mid])
data[start + len(lines[mid]) - 3] ^= 0x20   # flip a bit inside a middle record
open(p, "wb").write(data)
EOF
run "$QVM" list
is "$RC" 1 "list on a journal corrupt in the middle fails"
like "$ERR" "corrupt|checksum" "... saying the journal is corrupt: ${ERR%%$'\n'*}"
run "$QVM" create after-corruption
is "$RC" 1 "and nothing is written to it"
rm -rf "$QVM_ROOT/journal" && cp -a "$QVM_TEST_ROOT/journal.good" "$QVM_ROOT/journal"
# a torn tail (a crash mid-append) is dropped, kept aside, and said
printf '999999 deadbeef {"type":"sta' >>"$log"
run "$QVM" list
is "$RC" 0 "a reader ignores a torn tail"
run "$QVM" update keep torn=1
is "$RC" 0 "a writer cuts a torn tail off"
like "$ERR" "torn by a crash" "... and says so"
ok "the damaged log is kept aside" test -n "$(ls "$QVM_ROOT/journal"/log.torn.* 2>/dev/null)"

done_testing
