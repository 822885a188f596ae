#!/usr/bin/env bash
# qvm edit with a scripted $EDITOR: a valid edit (memory, append, labels)
# redefines the vm keeping its disks, snapshots and history; an invalid
# one (broken JSON, an unknown machine, a changed disk list) is shown with
# its error and edited again or abandoned with nothing changed; an editor
# that fails changes nothing; another command changing the vm meanwhile
# is refused with the edit kept; a running vm is told what waits for its
# next start. One boot.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G TMPDIR=$QVM_TEST_ROOT/tmp
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS VISUAL
mkdir -p "$TMPDIR"
ED=$QVM_TEST_ROOT/editor
# The editor runs the python steps in $QVM_TEST_ROOT/step.N on the file's
# JSON (d), N counting its calls: "raw TEXT" writes TEXT instead.
cat >"$ED" <<'EOF'
#!/bin/sh
n=$(cat "$QVM_TEST_ROOT/calls" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >"$QVM_TEST_ROOT/calls"
step=$QVM_TEST_ROOT/step.$n
[ -f "$step" ] || exit 0
exec python3 -c '
import json, sys
f, step = sys.argv[1], sys.argv[2]
code = open(step).read()
if code.startswith("raw "):
    open(f, "w").write(code[4:])
    sys.exit(0)
d = json.load(open(f))
exec(code)
json.dump(d, open(f, "w"), indent=2)
' "$1" "$step"
EOF
chmod +x "$ED"
export EDITOR=$ED
# steps STEP...: the editor's next calls do these
steps() {
	rm -f "$QVM_TEST_ROOT"/step.* "$QVM_TEST_ROOT/calls"
	local i=1
	for s in "$@"; do
		printf '%s' "$s" >"$QVM_TEST_ROOT/step.$i"
		i=$((i + 1))
	done
}
calls() { cat "$QVM_TEST_ROOT/calls" 2>/dev/null || echo 0; }
def() { "$QVM" dump "$1" | json "$2"; }
temps() { find "$TMPDIR" -name 'qvm-edit-*' | wc -l; }

section "a valid edit"
define shp-e "" --disk 64M
id=$(vm_id shp-e)
run "$QVM" snapshot-create shp-e before
is "$RC" 0 "a snapshot of the vm" || diag "$ERR"
disks=$(def shp-e 'd["disks"]')
seq=$(last_seq shp-e)
steps 'd["memory"] = 384 << 20; d["append"] += " qvm.counter=1"; d["labels"]["tier"] = "web"'
run "$QVM" edit shp-e </dev/null
is "$RC" 0 "edit memory, append and a label" || diag "$ERR"
is "$OUT" "shp-e: edited" "... says so"
is "$(def shp-e 'd["memory"], d["append"].endswith(" qvm.counter=1"), d["labels"]["tier"]')" \
	"402653184 True web" "the definition has the edit"
is "$(def shp-e 'd["disks"]')" "$disks" "the disks are kept as they were"
ok "... and their file" test -f "$QVM_ROOT/vms/$id/disk0.qcow2"
like "$("$QVM" snapshot-list shp-e)" "before" "the snapshot is kept"
run "$QVM" history shp-e
like "$OUT" "redefine .*edit: memory 256M→384M, append, labels" "history says what the edit changed"
is "$("$QVM" history shp-e --json | json 'd[0]["type"]')" intent "... and keeps the records before it"
is "$(temps)" 0 "the file edited is removed"

section "invalid edits: edit again, or abandon"
# the second time the editor has the text as the first left it
good=$("$QVM" dump shp-e | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d["vcpus"]=2; print(json.dumps(d))')
steps 'raw {"memory": ' "raw $good"
run "$QVM" edit shp-e <<<y
is "$RC" 0 "broken JSON, then a good edit" || diag "$ERR"
like "$ERR" "qvm edit: .*line" "the JSON error is shown"
like "$ERR" "edit again\? \[y/N\]" "... and the user is asked to edit again"
is "$(calls)" 2 "the editor ran a second time"
is "$(def shp-e 'd["vcpus"]')" 2 "the second edit is taken"
steps 'd["machine"] = "vax"'
run "$QVM" edit shp-e <<<n
is "$RC" 1 "an unknown machine, abandoned: fails"
like "$ERR" "unknown machine type 'vax'" "... showing the error"
like "$ERR" "qvm: cannot edit 'shp-e': unknown machine" "... and that the edit failed"
is "$(def shp-e 'd["machine"]')" pc "nothing changed"
steps 'd["disks"] = []'
run "$QVM" edit shp-e </dev/null
is "$RC" 1 "a changed disk list is refused (no answer: abandoned)"
like "$ERR" "'disks' cannot change in an edit; use disk-attach" "... pointing to disk-attach"
is "$(def shp-e 'd["disks"]')" "$disks" "the disks are as they were"
steps 'd["name"] = "other"'
run "$QVM" edit shp-e </dev/null
like "$ERR" "'name' cannot change in an edit; use qvm rename" "a changed name points to rename"
steps 'd["bogus"] = 1'
run "$QVM" edit shp-e </dev/null
like "$ERR" "unknown key 'bogus'" "an unknown key is refused"
steps 'd["kernel"] = "/etc/passwd"'
run "$QVM" edit shp-e </dev/null
like "$ERR" "kernel: path '/etc/passwd' is not under an allowed folder" "a kernel outside the folders is refused"
steps
run "$QVM" edit shp-e </dev/null
is "$RC" 0 "an edit that changes nothing" || diag "$ERR"
is "$OUT" "shp-e: nothing changed" "... says so"
EDITOR="$QVM_TEST_ROOT/no-such-editor" run "$QVM" edit shp-e </dev/null
is "$RC" 1 "a missing editor fails"
EDITOR=false run "$QVM" edit shp-e </dev/null
is "$RC" 1 "an editor that fails..."
like "$ERR" "the editor 'false' failed \(status 1\); nothing was changed" "... changes nothing"
is "$(temps)" 0 "no file edited is left"
VISUAL="$ED" EDITOR=false steps 'd["vcpus"] = 1'
VISUAL="$ED" EDITOR=false run "$QVM" edit shp-e </dev/null
is "$(def shp-e 'd["vcpus"]')" 1 "VISUAL wins over EDITOR"

section "another command changes the vm meanwhile"
steps 'd["vcpus"] = 3
import subprocess; subprocess.run([__import__("os").environ["QVM"], "update", "shp-e", "label.meanwhile=1"], check=True, stdout=subprocess.DEVNULL)'
QVM=$QVM run "$QVM" edit shp-e </dev/null
is "$RC" 1 "the edit is refused"
like "$ERR" "cannot edit 'shp-e': your edit is kept in '$TMPDIR/qvm-edit-shp-e-.*': another command changed the definition while it was edited" \
	"... saying so and where the edit is"
is "$(def shp-e 'd["vcpus"], d["labels"]["meanwhile"]')" "1 1" "the other command's change stays, the edit is not taken"
rm -f "$TMPDIR"/qvm-edit-*

section "a running vm"
run "$QVM" start shp-e
is "$RC" 0 "start" || { diag "$ERR"; explain shp-e; }
ok "the edited append is used (the guest counts)" \
	wait_for_file_line "$QVM_ROOT/vms/$id/console.log" '^QVM-COUNTER 1' "$BOOT_S"
steps 'd["memory"] = 512 << 20' 'd["memory"] = 384 << 20; d["append"] = d["append"].replace(" qvm.counter=1", "")'
run "$QVM" edit shp-e <<<y
is "$RC" 0 "memory refused while running, then append" || diag "$ERR"
like "$ERR" "memory, vcpus, their maxima and vnc change only while the vm is off" "... the refusal shown"
like "$OUT" "shp-e: append takes effect at the next start \(it is ACTIVE/RUNNING\)" \
	"... and what waits for the next start"
is "$(def shp-e 'd["memory"]')" 402653184 "the memory is as it was"
run "$QVM" delete shp-e
is "$RC" 0 "delete" || diag "$ERR"
is "$(pids_matching "$QVM_ROOT" | wc -l)" 0 "no qemu or supervisor is left"
done_testing
