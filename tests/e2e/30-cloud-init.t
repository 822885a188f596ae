#!/usr/bin/env bash
# cloud-init NoCloud seeds end to end, with real QEMU and the test guest: a
# VM created with --cloud-init user-data, meta-data and network-config (pc)
# and one with user-data alone (q35, the default meta-data); the guest
# mounts the seed (ISO 9660, label cidata, Rock Ridge names) and prints its
# files. The VM keeps copies of the files taken at create; the seed is
# rebuilt at each start. Refusals at create (missing, oversized file), a
# seed that cannot be built at start, qvm dying at each crash point of the
# PROLOG step, a vm whose disk files are missing (PROLOG makes them; a
# failure or a crash part way removes what it made), and nothing left
# behind after delete. Three guest boots in all, and one start of a vm
# whose guest is not waited for.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
CI=$QVM_TEST_ROOT/ci
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$CI
unset QVM_CRASH_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS
mkdir -p "$CI"

# From tests/lib/vm.sh: run, json, vm_create, vm_id, uuid_of, state, reasons
# (of every state record), settled NAME ID UUID STATE LABEL (no qemu, no
# supervisor, no runtime folder), explain (with more of the console), section.
EXPLAIN_CONSOLE_LINES=30
# seed_lines LOG AFTER: the QVM-SEED lines of the first seed shown after
# line AFTER (waits for its end)
seed_lines() {
	wait_for_file_line "$1" '^QVM-SEED-END' "$BOOT_S" "$2" || return 1
	tail -n "+$(($2 + 1))" "$1" | tr -d '\r' | sed -n '/^QVM-SEED-BEGIN/,/^QVM-SEED-END/p'
}
vms_count() { find "$QVM_ROOT/vms" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

printf '#cloud-config\n# qvm-e2e-marker user-data\nruncmd: [ [ echo, hi ] ]\n' >"$CI/user-data"
printf 'instance-id: iid-e2e-0001\nlocal-hostname: seeded-host\n' >"$CI/meta-data"
printf 'version: 2\nethernets:\n  eth0:\n    dhcp4: true\n' >"$CI/network-config"
cp "$CI/user-data" "$CI/user-data.orig"

# ============================================================================
section "create refusals: nothing is defined"
run "$QVM" create bad1 --kernel "$G/vmlinuz" --cloud-init "user-data=$CI/nope"
is "$RC" 1 "a missing user-data file is refused"
like "$ERR" "user-data.*'$CI/nope' does not exist" "... the message names the file: $ERR"
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' x >"$CI/big"
run "$QVM" create bad2 --kernel "$G/vmlinuz" --cloud-init "user-data=$CI/big"
is "$RC" 1 "a user-data file over 1 MiB is refused"
like "$ERR" "cannot create vm 'bad2': cloud-init user-data '$CI/big' is 1048577 bytes, more than the 1048576" \
	"... the message names the vm, the file and the limit"
run "$QVM" create bad3 --kernel "$G/vmlinuz" --cloud-init "user-data=$CI/user-data,meta-data=$CI/big"
is "$RC" 1 "an oversized meta-data file is refused"
like "$ERR" "cloud-init meta-data '$CI/big'" "... naming it"
run "$QVM" create bad4 --kernel "$G/vmlinuz" --cloud-init "meta-data=$CI/meta-data"
ok "meta-data without user-data is refused (status $RC)" test "$RC" -ne 0
like "$ERR" "needs user-data" "... saying what is missing: $ERR"
for n in bad1 bad2 bad3 bad4; do
	run "$QVM" show "$n"
	is "$RC" 1 "'$n' is not defined"
done
is "$(vms_count)" 0 "no vm folder was made"
run "$QVM" list --all
is "$(grep -c bad <<<"$OUT")" 0 "list --all shows none of them"

# ============================================================================
section "create two vms with seeds"
vm_create c1 "" \
	--cloud-init "user-data=$CI/user-data,meta-data=$CI/meta-data,network-config=$CI/network-config"
is "$RC" 0 "create c1 with user-data, meta-data and network-config" || bail_out "$ERR"
vm_create c2 "" --machine q35 --cloud-init "user-data=$CI/user-data"
is "$RC" 0 "create c2 (q35) with user-data only" || bail_out "$ERR"
id1=$(vm_id c1) uuid1=$(uuid_of c1)
id2=$(vm_id c2) uuid2=$(uuid_of c2)
for f in user-data meta-data network-config; do
	ok "c1 keeps a copy of its $f" cmp "$CI/$f" "$QVM_ROOT/vms/$id1/cloud-init/$f"
done
is "$(stat -c %a "$QVM_ROOT/vms/$id1/cloud-init/user-data")" 600 "... private (0600)"
ok "c2 keeps its user-data" cmp "$CI/user-data" "$QVM_ROOT/vms/$id2/cloud-init/user-data"
ok "c2 has no meta-data copy (the default is made at start)" test ! -e "$QVM_ROOT/vms/$id2/cloud-init/meta-data"
# the user's file changes after create: the vm keeps what it was given
echo "# changed after create" >>"$CI/user-data"

# ============================================================================
section "start: the guests see their seeds"
run "$QVM" start c1
is "$RC" 0 "start c1" || { diag "$ERR"; explain c1; }
run "$QVM" start c2
is "$RC" 0 "start c2" || { diag "$ERR"; explain c2; }
log1=$QVM_ROOT/vms/$id1/console.log
log2=$QVM_ROOT/vms/$id2/console.log
if S1=$(seed_lines "$log1" 0); then
	ok "c1's guest found and mounted a cidata seed"
else
	not_ok "c1's guest found and mounted a cidata seed"
	explain c1
fi
like "$S1" "QVM-SEED meta-data: instance-id: iid-e2e-0001" "c1: the guest reads the given instance-id"
like "$S1" "QVM-SEED meta-data: local-hostname: seeded-host" "c1: ... and local-hostname"
like "$S1" "QVM-SEED network-config: version: 2" "c1: the guest reads network-config"
like "$S1" "QVM-SEED user-data: # qvm-e2e-marker user-data" "c1: the guest reads user-data"
is "$(grep -c 'changed after create' <<<"$S1")" 0 "c1: user-data as it was at create"
is "$(grep -c '^QVM-SEED ' <<<"$S1")" 9 "c1: exactly the 9 lines of the three files"
ok "c1's guest reports no error" test "$(tr -d '\r' <"$log1" | grep -c QVM-ERROR)" = 0
if S2=$(seed_lines "$log2" 0); then
	ok "c2's guest (q35) found and mounted a cidata seed"
else
	not_ok "c2's guest (q35) found and mounted a cidata seed"
	explain c2
fi
like "$S2" "QVM-SEED meta-data: instance-id: $uuid2" "c2: default meta-data: instance-id is the vm uuid"
like "$S2" "QVM-SEED meta-data: local-hostname: \"c2\"" "c2: default meta-data: local-hostname is the vm name"
like "$S2" "QVM-SEED user-data: # qvm-e2e-marker user-data" "c2: the guest reads user-data"
is "$(grep -c 'QVM-SEED network-config' <<<"$S2")" 0 "c2: no network-config"
seed1=$QVM_ROOT/vms/$id1/seed.iso
is "$(stat -c %a "$seed1" 2>/dev/null)" 600 "the seed is vms/ID/seed.iso, private (0600)"
q1=$(pids_matching "$uuid1")
like "$(tr '\0' ' ' <"/proc/$q1/cmdline" 2>/dev/null)" \
	'"node-name":"seed0","driver":"raw","read-only":true,"file":\{"driver":"file","filename":"'"$seed1"'","read-only":true\}' \
	"qemu opens the seed raw and read-only"
like "$("$QVM" argv c2)" "\"filename\":\"$QVM_ROOT/vms/$id2/seed.iso\",\"read-only\":true" \
	"qvm argv shows the seed too"
like "$(reasons c1 | tr '\n' '|')" "ACTIVE/PROLOG start: preparing the cloud-init seed\|ACTIVE/BOOT start\|" \
	"history: PROLOG, then BOOT"

# ============================================================================
section "a seed that cannot be built: the start is refused, nothing changes"
run "$QVM" poweroff --hard c1
is "$RC" 0 "poweroff c1" || diag "$ERR"
mv "$QVM_ROOT/vms/$id1/cloud-init/meta-data" "$QVM_TEST_ROOT/md.saved"
mkdir "$QVM_ROOT/vms/$id1/cloud-init/meta-data"
run "$QVM" start c1
is "$RC" 1 "start with an unreadable meta-data copy fails"
like "$ERR" "cannot start 'c1': cannot prepare the cloud-init seed of 'c1'" "... saying why: $ERR"
settled c1 "$id1" "$uuid1" POWEROFF "after the failed start"
rmdir "$QVM_ROOT/vms/$id1/cloud-init/meta-data"
mv "$QVM_TEST_ROOT/md.saved" "$QVM_ROOT/vms/$id1/cloud-init/meta-data"

# ============================================================================
section "qvm dies in PROLOG: the next command rolls the start back"
for point in start-prolog-before-seed start-prolog-after-seed; do
	run env QVM_CRASH_AT=$point "$QVM" start c1
	is "$RC" 99 "$point: qvm died there"
	is "$(journal_state "$id1")" ACTIVE/PROLOG "$point: the journal says ACTIVE/PROLOG"
	run "$QVM" list
	is "$RC" 0 "$point: list afterwards" || diag "$ERR"
	settled c1 "$id1" "$uuid1" POWEROFF "$point: rolled back"
	like "$(reasons c1 | tail -1)" "^POWEROFF the start was interrupted before qemu ran; rolled back" \
		"$point: history says why"
	is "$(find "$QVM_ROOT/vms/$id1" -name 'seed.iso.tmp.*' | wc -l)" 0 "$point: no temporary seed file"
done

# the seed is rebuilt at each start: a damaged one is replaced
echo "not an iso" >"$seed1"
after=$(line_count "$log1")
run "$QVM" start c1
is "$RC" 0 "start c1 again after the crashes" || { diag "$ERR"; explain c1; }
if S1=$(seed_lines "$log1" "$after"); then
	ok "the guest finds the seed again (rebuilt at start)"
else
	not_ok "the guest finds the seed again (rebuilt at start)"
	explain c1
fi
like "$S1" "QVM-SEED meta-data: instance-id: iid-e2e-0001" "... with its meta-data"

# ============================================================================
section "PROLOG makes the disks a vm owns that are missing, or rolls back"
vm_create p "" --disk 16M --disk 8M,format=raw
is "$RC" 0 "create p with a qcow2 and a raw disk" || diag "$ERR"
idp=$(vm_id p) uuidp=$(uuid_of p)
pdir=$QVM_ROOT/vms/$idp
disk_files() { find "$pdir" -maxdepth 1 \( -name 'disk*' -o -name '.qvm-create-*' \) -printf '%f\n' | sort | tr '\n' ' '; }
rm "$pdir/disk0.qcow2" "$pdir/disk1.raw"
# a qemu-img whose second create fails: the first disk is made, then removed
printf '#!/bin/sh\nif [ "$1" = create ]; then\n\tif [ -e %s ]; then echo "qemu-img: disk full (test)" >&2; exit 1; fi\n\t: >%s\nfi\nexec qemu-img "$@"\n' \
	"$QVM_TEST_ROOT/img-made-one" "$QVM_TEST_ROOT/img-made-one" >"$QVM_TEST_ROOT/qemu-img-second-fails"
chmod +x "$QVM_TEST_ROOT/qemu-img-second-fails"
run env QVM_QEMU_IMG="$QVM_TEST_ROOT/qemu-img-second-fails" "$QVM" start p
is "$RC" 1 "a start whose second missing disk cannot be made fails"
like "$ERR" "cannot start 'p': cannot make the missing disks: disk 1: cannot create '$pdir/disk1.raw': disk full \(test\)" \
	"... naming the disk and the cause"
settled p "$idp" "$uuidp" PENDING "after the failed start"
is "$(disk_files)" "" "... the disk it had made is removed, no temporary file is left"
like "$(reasons p | tail -1)" "^PENDING start failed in PROLOG" "... history says why"
is "$(open_intents "$idp")" "" "... and no intent is left open"
for point in create-disk start-prolog-before-seed start-prolog-after-seed; do
	run env QVM_CRASH_AT=$point "$QVM" start p
	is "$RC" 99 "$point (missing disks): qvm died there"
	is "$(journal_state "$idp")" ACTIVE/PROLOG "$point: the journal says ACTIVE/PROLOG"
	run "$QVM" list
	is "$RC" 0 "$point: list afterwards" || diag "$ERR"
	settled p "$idp" "$uuidp" PENDING "$point: rolled back"
	is "$(disk_files)" "" "$point: ... the disks it made are gone again, no temporary file"
	is "$(open_intents "$idp")" "" "$point: ... no intent left open"
done
run "$QVM" start p
is "$RC" 0 "start p makes its missing disks" || { diag "$ERR"; explain p; }
like "$(reasons p | tr '\n' '|')" "ACTIVE/PROLOG start: making missing disks 0, 1\|ACTIVE/BOOT start\|" \
	"history: PROLOG while the disks are made, then BOOT"
is "$(qemu-img info -U -f qcow2 --output=json "$pdir/disk0.qcow2" | json 'd["virtual-size"]')|$(stat -c %s "$pdir/disk1.raw")" \
	"$((16 << 20))|$((8 << 20))" "... a blank qcow2 of 16M and a raw file of 8M, as defined"
like "$("$QVM" show p)" "ACTIVE/RUNNING|runn" "... and the vm runs"
run "$QVM" delete p
is "$RC" 0 "delete p" || diag "$ERR"

# ============================================================================
section "delete: nothing left"
run "$QVM" delete --wipe c1
is "$RC" 0 "delete --wipe running c1 (its cloud-init copies are wiped too)" || diag "$ERR"
run "$QVM" delete c2
is "$RC" 0 "delete running c2" || diag "$ERR"
ok "c1's folder (seed, copies) is gone" test ! -e "$QVM_ROOT/vms/$id1"
ok "c2's folder is gone" test ! -e "$QVM_ROOT/vms/$id2"
is "$(pids_matching "$uuid1" | wc -l)$(pids_matching "$uuid2" | wc -l)" 00 "no qemu of c1 or c2 runs"
is "$(pids_matching "$QVM_ROOT __supervise" | wc -l)" 0 "no supervisor runs"
run "$QVM" list
is "$OUT" "$("$QVM" list --all | head -1)" "list shows no vm"
ok "the user's files are untouched" cmp "$CI/meta-data" <(printf 'instance-id: iid-e2e-0001\nlocal-hostname: seeded-host\n')

is "$(pids_matching "$QVM_ROOT")" "" "no qemu or supervisor runs under the test root at the end"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
