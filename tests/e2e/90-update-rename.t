#!/usr/bin/env bash
# update of the definition's keys and rename, end to end: every key that
# can change while the vm is off (append, kernel, initrd, machine, accel,
# restart, autostart, cloud-init files), a path outside the folders
# refused with nothing changed, qvm dying before and after the record of
# new cloud-init files (the guest then sees the old or the new file, never
# a mix), a running vm told which keys wait for its next start (and the
# next boot using them), memory refused while it runs; rename: unique
# names, refused while running, history keeping the old name. Two boots.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
CI=$QVM_TEST_ROOT/ci
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$CI
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS
mkdir -p "$CI"
printf '#cloud-config\n# shape-first user-data\n' >"$CI/ud1"
printf '#cloud-config\n# shape-second user-data\n' >"$CI/ud2"
printf 'instance-id: shape-iid\n' >"$CI/md"
def() { "$QVM" dump "$1" | json "$2"; }
# seed_lines LOG AFTER: the QVM-SEED lines of the first seed shown after line AFTER
seed_lines() {
	wait_for_file_line "$1" '^QVM-SEED-END' "$BOOT_S" "$2" || return 1
	tail -n "+$(($2 + 1))" "$1" | tr -d '\r' | sed -n '/^QVM-SEED-BEGIN/,/^QVM-SEED-END/p'
}

section "update of a vm that is off"
define shp-u
id=$(vm_id shp-u)
cd "$CI" || bail_out "no $CI"
run "$QVM" update shp-u machine=q35 accel=tcg restart=on-failure autostart=yes \
	"append=$APPEND qvm.counter=1" cloud-init.user-data=ud1 "cloud-init.meta-data=$CI/md"
is "$RC" 0 "update machine, accel, restart, autostart, append, cloud-init files" || diag "$ERR"
cd / || true
is "$(def shp-u 'd["machine"], d["accel"], d["restart"], d["autostart"], d["append"].endswith("qvm.counter=1")')" \
	"q35 tcg on-failure True True" "... the definition has them"
is "$(def shp-u 'd["cloud_init"]["user_data"], d["cloud_init"]["meta_data"]')" "$CI/ud1 $CI/md" \
	"... a relative cloud-init path made absolute, as --cloud-init does"
ok "... the vm keeps a copy of its user-data" cmp "$CI/ud1" "$QVM_ROOT/vms/$id/cloud-init/user-data"
ok "... and of its meta-data" cmp "$CI/md" "$QVM_ROOT/vms/$id/cloud-init/meta-data"
run "$QVM" history shp-u
like "$OUT" "redefine .*update: machine, accel, restart, autostart, append, cloud-init.user-data, cloud-init.meta-data" \
	"history says which keys changed"
run "$QVM" update shp-u kernel=/etc/passwd
is "$RC" 1 "a kernel outside the allowed folders is refused"
like "$ERR" "cannot update 'shp-u': kernel: path '/etc/passwd' is not under an allowed folder" "... saying why"
is "$(def shp-u 'd["kernel"]')" "$G/vmlinuz" "... the kernel is as it was"
run "$QVM" update shp-u machine=vax
is "$RC" 2 "an unknown machine is a usage error"
run "$QVM" update shp-u initrd= kernel=
is "$RC" 1 "append without a kernel is refused"
like "$ERR" "need --kernel" "... saying append needs a kernel"
run "$QVM" update shp-u "cloud-init.user-data=$CI/missing"
is "$RC" 1 "a missing cloud-init file is refused"
ok "... and the copy of the old one stays" cmp "$CI/ud1" "$QVM_ROOT/vms/$id/cloud-init/user-data"
run "$QVM" update shp-u machine=pc initrd= kernel=/etc/passwd
is "$RC" 1 "an update with one bad key is refused whole"
run "$QVM" dump shp-u
is "$(json 'd["machine"], d["initrd"] is not None' <<<"$OUT")" "q35 True" \
	"... a refused update keeps every key of it out"

section "crash around the record of new cloud-init files"
QVM_CRASH_AT=update-before-redefine run "$QVM" update shp-u "cloud-init.user-data=$CI/ud2"
is "$RC" 99 "qvm dies before the redefine record"
is "$(def shp-u 'd["cloud_init"]["user_data"]')" "$CI/ud1" "... the definition names the old file"
ok "... and no copy is left that could mix with it" test ! -e "$QVM_ROOT/vms/$id/cloud-init/user-data"
QVM_CRASH_AT=update-before-seed-copies run "$QVM" update shp-u "cloud-init.user-data=$CI/ud2"
is "$RC" 99 "qvm dies after the record, before the copy"
is "$(def shp-u 'd["cloud_init"]["user_data"]')" "$CI/ud2" "... the definition names the new file"
run "$QVM" update shp-u machine=pc
is "$RC" 0 "the next update works" || diag "$ERR"

section "the next start uses them"
run "$QVM" start shp-u
is "$RC" 0 "start" || { diag "$ERR"; explain shp-u; }
log=$QVM_ROOT/vms/$id/console.log
S=$(seed_lines "$log" 0) || explain shp-u
like "$S" "QVM-SEED user-data: # shape-second user-data" "the guest reads the new user-data"
like "$S" "QVM-SEED meta-data: instance-id: shape-iid" "... and the meta-data given by update"
ok "the append given by update is used (the guest counts)" wait_for_file_line "$log" '^QVM-COUNTER 1' 20
like "$("$QVM" argv shp-u)" "-machine pc" "the machine given by update is used"

section "update of a running vm"
run "$QVM" update shp-u "append=$APPEND" owner=me
is "$RC" 0 "update append of a running vm" || diag "$ERR"
like "$OUT" "shp-u: append takes effect at the next start \(it is ACTIVE/RUNNING\)" "... says it waits for the next start"
run "$QVM" --json update shp-u restart=no label.x=1
is "$(json 'd["next_start"], d["definition"]["restart"]' <<<"$OUT")" "[] no" \
	"--json: next_start lists no key for restart"
run "$QVM" update shp-u memory=512M
is "$RC" 1 "memory of a running vm is refused"
like "$ERR" "memory, vcpus, their maxima and vnc change only while the vm is off, and it is ACTIVE/RUNNING" "... saying why"
run "$QVM" rename shp-u shp-v
is "$RC" 1 "rename of a running vm is refused"
like "$ERR" "cannot rename 'shp-u': it is ACTIVE/RUNNING" "... naming the state"
run "$QVM" poweroff shp-u --hard
is "$RC" 0 "poweroff" || diag "$ERR"
n=$(line_count "$log")
run "$QVM" start shp-u
is "$RC" 0 "start again" || { diag "$ERR"; explain shp-u; }
ok "the guest is up" wait_for_file_line "$log" '^QVM-READY' "$BOOT_S" "$n"
sleep 2
is "$(tail -n "+$((n + 1))" "$log" | grep -c QVM-COUNTER)" 0 "... with the append of the update (no counter)"
run "$QVM" poweroff shp-u --hard
is "$RC" 0 "poweroff" || diag "$ERR"

section "rename"
define shp-w
run "$QVM" rename shp-u shp-w
is "$RC" 1 "rename to the name of another vm is refused"
like "$ERR" "a vm named 'shp-w' exists already" "... saying so"
run "$QVM" rename shp-u "bad name"
is "$RC" 2 "an invalid new name is a usage error"
run "$QVM" rename shp-u shp-v
is "$RC" 0 "rename" || diag "$ERR"
is "$OUT" "shp-v: renamed from 'shp-u'" "... says so"
run "$QVM" show shp-u
is "$RC" 1 "the old name is gone"
is "$(vm_id shp-v)" "$id" "the new name is the same vm"
run "$QVM" history shp-v
like "$OUT" "define .*'shp-u'" "history keeps the old name"
like "$OUT" "redefine .*rename: 'shp-u'→'shp-v'" "... and the rename"
ok "the vm's files stay" test -e "$QVM_ROOT/vms/$id/cloud-init/meta-data"
run "$QVM" delete shp-w
run "$QVM" rename shp-v shp-w
is "$RC" 0 "a DONE vm's name may be taken" || diag "$ERR"
run "$QVM" start shp-w
is "$RC" 0 "the renamed vm starts" || { diag "$ERR"; explain shp-w; }
run "$QVM" delete shp-w
is "$RC" 0 "delete" || diag "$ERR"
is "$(pids_matching "$QVM_ROOT" | wc -l)" 0 "no qemu or supervisor is left"
done_testing
