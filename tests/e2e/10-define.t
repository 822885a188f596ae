#!/usr/bin/env bash
# Definitions end to end: create with every flag, dump/--from, update,
# list/show/--json, hold/release, delete; refusals of hostile names, sizes,
# paths and images, each leaving nothing behind; the messages of refusals;
# --json output and errors; -v's trace of journal records.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_DISK_ROOTS=$QVM_TEST_ROOT/img
need_qvm
mkdir -p "$QVM_DISK_ROOTS"
img=$QVM_DISK_ROOTS
qemu-img create -q -f qcow2 "$img/base.qcow2" 64M
qemu-img create -q -f raw "$img/base.raw" 32M
: >"$img/vmlinuz"
: >"$img/initrd.img"
: >"$img/cd.iso"

# run CMD... (sets OUT, ERR and RC) and json EXPR: tests/lib/vm.sh
# count of vm folders: a refused create must not leave one
vm_dirs() { find "$QVM_ROOT/vms" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

run "$QVM" list
is "$RC" 0 "list on an empty root works"
like "$OUT" "ID +NAME +STAT +CPU +MEM +UPTIME" "list prints its header"

run "$QVM" create web --memory 1G --vcpus 2 --disk "$img/base.qcow2" --disk 2G,bus=scsi \
	--disk "$img/base.raw,format=raw,readonly=on" --cdrom "$img/cd.iso" \
	--kernel "$img/vmlinuz" --initrd "$img/initrd.img" --append "console=ttyS0 quiet" \
	--machine q35 --accel tcg --restart on-failure --autostart --label tier=web --label team=ops
is "$RC" 0 "create with every flag" || diag "$ERR"
is "$OUT" 1 "create prints the new id"
ok "its disks exist, mode 0600" test "$(stat -c %a "$QVM_ROOT/vms/1/disk0.qcow2")" = 600
like "$(qemu-img info --output=json "$QVM_ROOT/vms/1/disk0.qcow2")" '"backing-filename-format": "qcow2"' \
	"disk 0 is an overlay with an explicit backing format"
like "$(qemu-img info --output=json "$QVM_ROOT/vms/1/disk2.qcow2")" '"backing-filename-format": "raw"' \
	"disk 2 is an overlay on the raw image, declared raw"
like "$(qemu-img info --output=json -f qcow2 "$QVM_ROOT/vms/1/disk1.qcow2")" '"virtual-size": 2147483648' \
	"disk 1 is a blank 2G qcow2"

run "$QVM" list
like "$OUT" "1 +web +pend +- +1G" "list shows the vm PENDING with its memory"
run "$QVM" --json list
is "$(json 'd[0]["name"], d[0]["state"], d[0]["vcpus"], d[0]["memory"]' <<<"$OUT")" \
	"web PENDING 2 1073741824" "list --json"
run "$QVM" show web
like "$OUT" "STATE +PENDING" "show: state"
like "$OUT" "MACHINE +q35" "show: machine"
like "$OUT" "LABELS +team=ops tier=web|LABELS +tier=web team=ops" "show: labels"
like "$OUT" "1 +scsi +qcow2 +2G" "show: the scsi disk"
run "$QVM" show web --json
is "$(json 'd["definition"]["disks"][2]["readonly"], d["definition"]["restart"], d["history"][-2]["type"], d["history"][-1]["detail"]' <<<"$OUT")" \
	"True on-failure define create ok" "show --json: definition and history, the create's end too"
run "$QVM" argv web
like "$OUT" "-machine q35" "argv: machine"
like "$OUT" '"driver":"raw","read-only":true' "argv: the raw base opened read-only with its format"
like "$OUT" "-append 'console=ttyS0 quiet'" "argv: kernel command line"

# dump and create --from
run "$QVM" dump web
dump=$OUT
ok "dump prints JSON" python3 -c "import json,sys; json.loads(sys.argv[1])" "$dump"
printf '%s' "$dump" >"$QVM_TEST_ROOT/web.json"
run "$QVM" create web2 --from "$QVM_TEST_ROOT/web.json"
is "$RC" 0 "create --from a dump" || diag "$ERR"
run "$QVM" dump web2
is "$(json 'd["name"], d["memory"], len(d["disks"]), d["disks"][0]["backing"] == "'"$img/base.qcow2"'", d["labels"]["tier"]' <<<"$OUT")" \
	"web2 1073741824 3 True web" "the copy has the same definition under its own name"
isnt_same_disk=$(json 'd["disks"][0]["path"]' <<<"$OUT")
like "$isnt_same_disk" "/vms/2/disk0.qcow2" "... and disks of its own"
run "$QVM" create web3 --from - <<<'{"name":"x","memory":"256M","disks":["16M"],"labels":{"a":"b"}}'
is "$RC" 0 "create --from stdin with --disk specs in the file" || diag "$ERR"
run "$QVM" create web4 --from - <<<'{"name":"x","memroy":"256M"}'
is "$RC" 2 "a misspelt key in --from is refused"
like "$ERR" "unknown key 'memroy'" "... naming the key"
before=$(vm_dirs)
for flag in "--memory 1G" "--vcpus 2" "--disk 1G" "--label a=b" "--machine q35" "--autostart"; do
	# shellcheck disable=SC2086 # the flag and its value
	run "$QVM" create web4 --from "$QVM_TEST_ROOT/web.json" $flag
	[ "$RC" = 2 ] && [[ $ERR == *"${flag%% *} cannot be combined with --from"* ]] ||
		{ not_ok "--from with $flag is a usage error naming it (got $RC: $ERR)"; continue; }
	ok "--from with $flag is a usage error naming it"
done
is "$(vm_dirs)" "$before" "... and defines nothing"
run "$QVM" create web4 --from /nonexistent/web.json
is "$RC" 1 "--from a missing file fails"
is "$ERR" "qvm: cannot read '/nonexistent/web.json': No such file or directory" \
	"... saying so, without a line number"
run "$QVM" create web4 --from - <<<'{"vcpus": 0}'
like "$ERR" "'vcpus' must be a whole number from 1 to 255" "vcpus in a file: the real range"
run "$QVM" create web4 --from - <<<'{"memory": "256M", "labels": {"k": "a\u0001b"}}'
is "$RC" 2 "a file without a name takes the command line's; its bad label is refused"
like "$ERR" "the value of label 'k' contains a control character" \
	"a control character in a label value is reported as in the value"
run "$QVM" create web4 --label "k=$(printf 'a\001b')"
is "$RC" 2 "... also from --label"
like "$ERR" "the value of label 'k' contains a control character" "... with the same message"

# update, hold, release
run "$QVM" update web owner=alice label.tier=db label.team=
is "$RC" 0 "update user data and labels"
is "$OUT" "web: updated owner, label.tier, label.team" "update says what it changed"
run "$QVM" show web --json
is "$(json 'd["definition"]["user"]["owner"], d["definition"]["labels"]' <<<"$OUT")" "alice {'tier': 'db'}" \
	"update set, changed and removed keys"
run "$QVM" update web "bad key=1"
is "$RC" 2 "update with a bad key is a usage error"
run "$QVM" update web snapshots.max=abc
is "$RC" 2 "update snapshots.max=abc is refused (usage)"
like "$ERR" "snapshots.max must be a number" "... saying it must be a number"
run "$QVM" update web snapshots.max=0 other=x
is "$RC" 2 "update snapshots.max=0 is refused (usage)"
run "$QVM" show web --json
is "$(json '"snapshots.max" in d["definition"]["user"], "other" in d["definition"]["user"]' <<<"$OUT")" \
	"False False" "... and nothing of a refused update is kept"
run "$QVM" update web snapshots.max=3
is "$RC" 0 "update snapshots.max=3 is taken"
for kv in disks=x nics=x cdrom=x name=y uuid=x; do
	run "$QVM" update web "$kv"
	[ "$RC" = 2 ] && [[ $ERR == *"'${kv%%=*}' is part of the definition, not user data"* ]] ||
		{ not_ok "update $kv is refused as a definition key (got $RC: $ERR)"; continue; }
	ok "update $kv is refused as a definition key"
done
run "$QVM" update web disks=x
like "$ERR" "use disk-attach" "... pointing to the command that changes it"
run "$QVM" update web name=y
like "$ERR" "use qvm rename" "... or to rename"
run "$QVM" update web memory=2G vcpus=3 label.size=big
is "$RC" 0 "update memory and vcpus of a vm that is off" || diag "$ERR"
run "$QVM" show web --json
is "$(json 'd["definition"]["memory"], d["definition"]["vcpus"], d["definition"]["labels"]["size"], d["definition"]["user"]["owner"]' <<<"$OUT")" \
	"2147483648 3 big alice" "... changed them, with the labels, keeping the rest"
run "$QVM" update web memory=1024
run "$QVM" show web --json
is "$(json 'd["definition"]["memory"]' <<<"$OUT")" 1073741824 "update memory=1024 is MiB, as --memory"
run "$QVM" update web vcpus=0
is "$RC" 2 "update vcpus=0 is refused (usage)"
run "$QVM" update web memory=1X
is "$RC" 2 "update memory=1X is refused (usage)"
run "$QVM" show web --json
is "$(json 'd["definition"]["memory"], d["definition"]["vcpus"]' <<<"$OUT")" "1073741824 3" \
	"... leaving the definition as it was"
run "$QVM" hold web
run "$QVM" list
like "$OUT" "web +hold" "hold: HOLD"
run "$QVM" hold web
is "$RC" 1 "hold of a held vm fails"
like "$ERR" "cannot hold 'web': it is HOLD; hold needs PENDING" "... naming the state and the states needed"
run "$QVM" release web
like "$("$QVM" list)" "web +pend" "release: PENDING"

# create --hold, and --json of create, update, dump, hold, release, delete
run "$QVM" --json create held --memory 256M --hold --label role=db
is "$RC" 0 "create --hold --json" || diag "$ERR"
is "$(json 'd["name"], d["state"], d["short"], d["definition"]["memory"], d["definition"]["labels"]["role"], type(d["id"]).__name__' <<<"$OUT")" \
	"held HOLD hold 268435456 db int" "create --json: the new vm, in HOLD"
held_id=$(json 'd["id"]' <<<"$OUT")
like "$("$QVM" list)" "$held_id +held +hold" "list shows it HOLD"
# (start from HOLD, which needs a guest: 22-hung-qemu.t)
run "$QVM" --json release held
is "$(json 'd["name"], d["state"]' <<<"$OUT")" "held PENDING" "release --json: PENDING"
run "$QVM" hold held --json
is "$(json 'd["state"], d["short"]' <<<"$OUT")" "HOLD hold" "hold --json: HOLD"
run "$QVM" --json update held owner=bob label.x=1
is "$(json 'd["name"], d["definition"]["user"]["owner"], d["definition"]["labels"]["x"]' <<<"$OUT")" \
	"held bob 1" "update --json: the vm with its new user data and labels"
run "$QVM" --json dump held
is "$(json 'd["name"], d["memory"], d["vcpus"], d["machine"], d["user"]["owner"], "uuid" in d' <<<"$OUT")" \
	"held 268435456 1 pc bob True" "dump --json: the definition"
run "$QVM" --json delete held
is "$RC" 0 "delete --json" || diag "$ERR"
is "$(json 'd["name"], d["state"]' <<<"$OUT")" "held DONE" "delete --json: DONE"

# names, sizes and usage errors: exit 2, nothing made
before=$(vm_dirs)
for name in -web .web ../x a/b "a b" "x;y" 12 "$(printf 'a%.0s' {1..64})" "é"; do
	run "$QVM" create "$name" --memory 256M
	[ "$RC" = 2 ] || { not_ok "name '$name' refused with status 2 (got $RC: $ERR)"; continue; }
	ok "name '$name' refused: ${ERR%%$'\n'*}"
done
run "$QVM" create "$(printf 'x\ny')"
is "$RC" 2 "a name with a newline is refused"
for mem in 0 1X 12K -1 9999999999999G; do
	run "$QVM" create memtest --memory "$mem"
	is "$RC" 2 "--memory $mem refused"
done
run "$QVM" create d1 --disk 0G
is "$RC" 2 "--disk 0G refused"
run "$QVM" create d1 --disk 1G,cache=none
like "$ERR" "unknown disk option 'cache'" "an unknown disk option is named"
run "$QVM" create d1 --vcpus 0
is "$RC" 2 "--vcpus 0 refused"
run "$QVM" create d1 --machine virt
like "$ERR" "unknown machine type 'virt'" "unknown machine type"
run "$QVM" create d1 --disk 1.5G
is "$RC" 2 "--disk 1.5G refused as a usage error"
like "$ERR" "'1.5G' is neither a valid size .* nor an image name" "... saying it is neither a size nor an image"
for k in "--kernel nbd:x:1" "--cdrom http://example.org/x.iso" "--initrd json:{}" \
	"--cloud-init user-data=nbd:x:1"; do
	# shellcheck disable=SC2086 # the flag and its value
	run "$QVM" create d1 $k
	[ "$RC" = 2 ] && [[ $ERR == *"pseudo-path, not a local file"* ]] && [[ $ERR != *"$PWD"* ]] ||
		{ not_ok "$k refused as a pseudo-path (got $RC: $ERR)"; continue; }
	ok "$k refused as a pseudo-path"
done
run "$QVM" create d1 --bogus
is "$RC" 2 "an unknown option is a usage error"
like "$ERR" "usage: qvm create" "... with the usage line"
run "$QVM" frobnicate
is "$RC" 2 "an unknown command is a usage error"
is "$(vm_dirs)" "$before" "no refused create left a vm folder"

# paths and images: exit 1, nothing made
ln -s /etc "$img/etc-link"
qemu-img create -q -f qcow2 "$QVM_TEST_ROOT/outside.qcow2" 16M
qemu-img create -q -f qcow2 -F qcow2 -b "$img/base.qcow2" "$img/backed.qcow2"
qemu-img create -q -f qcow2 -o data_file="$img/data.raw" "$img/datafile.qcow2" 16M
cp "$img/base.qcow2" "$img/looks-raw.img"
for spec in "/etc/passwd" "$img/etc-link/passwd" "$QVM_TEST_ROOT/outside.qcow2" "$img/../outside.qcow2" \
	"$img/missing.qcow2" "$img/backed.qcow2" "$img/datafile.qcow2" "$img/looks-raw.img,format=raw" \
	"$img/base.raw" "json:{\"file.filename\":\"/etc/passwd\"}" "nbd://127.0.0.1/x"; do
	run "$QVM" create bad --disk "$spec"
	if [ "$RC" = 0 ]; then
		not_ok "disk '$spec' refused"
		"$QVM" delete bad >/dev/null 2>&1
		continue
	fi
	ok "disk '$spec' refused (status $RC): ${ERR%%$'\n'*}"
done
run "$QVM" create bad --kernel /etc/shadow
like "$ERR" "not under an allowed folder" "a kernel outside the allowed folders is refused"
is "$(vm_dirs)" "$before" "no refused disk left a vm folder"
is "$(find "$QVM_ROOT" -name '*.tmp.*' -o -name '.qvm-create-*' | wc -l)" 0 "no temporary file is left"
run "$QVM" list
unlike_bad=$(grep -c ' bad ' <<<"$OUT")
is "$unlike_bad" 0 "no refused vm is listed"

# a duplicate name
run "$QVM" create web
is "$RC" 1 "a second vm named web is refused"
like "$ERR" "a vm named 'web' exists already \\(id 1\\)" "... saying which"

# delete
disk=$QVM_ROOT/vms/1/disk0.qcow2
run "$QVM" delete web --wipe
is "$RC" 0 "delete --wipe"
is "$OUT" "web: DONE (deleted, disks wiped)" "delete says what it did"
ok "its disks and folder are gone" test ! -e "$disk" -a ! -e "$QVM_ROOT/vms/1"
ok "its lock file is gone" test ! -e "$QVM_ROOT/run/vm-1.lock"
run "$QVM" list
ok "a deleted vm is not listed" test "$(grep -c ' web ' <<<"$OUT")" = 0
run "$QVM" list --all
like "$OUT" "1 +web +done" "list --all shows it DONE"
run "$QVM" show 1
like "$OUT" "STATE +DONE" "show by id finds the DONE vm"
run "$QVM" history 1
like "$OUT" "DONE +deleted" "history records the deletion"
run "$QVM" show web
like "$OUT" "STATE +DONE" "show by name finds the DONE vm while no live one has the name"
run "$QVM" delete 1
is "$RC" 1 "delete of a DONE vm is refused"
is "$ERR" "qvm: cannot delete 'web': it is DONE; delete needs PENDING, HOLD, ACTIVE, POWEROFF, UNDEPLOYED, FAILED, STOPPED or SUSPENDED" \
	"... listing the states delete really takes (a running vm too), from the state table"
run "$QVM" create web --memory 256M
is "$RC" 0 "the name can be used again"
run "$QVM" show web
like "$OUT" "STATE +PENDING" "show by name finds the live vm before the DONE one"
run "$QVM" create bare --memory 64M
run "$QVM" show bare
like "$OUT" "DISKS +none" "show: a vm without disks says DISKS none, not a bare header"
like "$OUT" "NICS +none" "... and NICS none"
ok "... with no column header left" test "$(grep -c 'ID BUS\|ID NETWORK' <<<"$OUT")" = 0
run "$QVM" delete bare
run "$QVM" create tenx --disk 10X
is "$RC" 1 "--disk 10X is refused"
like "$ERR" "disk 0: '10X' is neither a size \(such as 512M or 10G\) nor an image in the store" "... as neither a size nor an image"
run "$QVM" delete nosuchvm
is "$RC" 1 "delete of a missing vm fails"
like "$ERR" "no vm named 'nosuchvm'" "... naming it"
run "$QVM" --json show nosuchvm
like "$ERR" '"error": ?"no vm named' "errors are JSON with --json"
is "$(json 'd["errno"], "usage" in d, "class" in d' <<<"$ERR")" "ENOENT False False" \
	"... with errno's symbolic name, and no usage or class for a failed operation"
run "$QVM" --json create d1 --bogus
is "$RC" 2 "a usage error with --json is still status 2"
is "$(json 'd["error"], d["usage"].startswith("qvm create NAME")' <<<"$ERR")" "unknown option '--bogus' True" \
	"... and JSON on stderr with the usage line"
run "$QVM" create d1 --bogus --json
like "$(json 'd["usage"]' <<<"$ERR")" "^qvm create" "... also with --json after the command"
run "$QVM" --json frobnicate
is "$RC:$(json 'd["error"]' <<<"$ERR")" "2:unknown command 'frobnicate'; see qvm --help" \
	"an unknown command with --json: JSON too"

# -v traces each journal record on stderr; without it nothing extra
run "$QVM" -v create traced --memory 256M
is "$RC" 0 "create -v" || diag "$ERR"
like "$ERR" "qvm: trace: journal: record [0-9]+ type=intent id=[0-9]+ op=create" "-v traces the intent"
like "$ERR" "qvm: trace: journal: record [0-9]+ type=define id=[0-9]+ state=PENDING" "... the definition with its state"
like "$ERR" "qvm: trace: journal: record [0-9]+ type=done id=[0-9]+ intent=[0-9]+ result=ok" "... and the completion, with the vm's id"
run "$QVM" hold traced -v
like "$ERR" "type=state id=[0-9]+ state=HOLD reason=hold" "-v after the command traces too"
run "$QVM" release traced
is "$RC:$ERR" "0:" "without -v nothing is printed on stderr"
run "$QVM" -q -v delete traced
like "$ERR" "state=DONE" "the last of -q and -v wins"

# derived socket paths must fit sun_path: refused at definition, not truncated
long=$QVM_TEST_ROOT/$(printf 'r%.0s' {1..80})
run "$QVM" --root "$long" create longroot --memory 256M
is "$RC" 1 "a root too long for the vm's sockets is refused"
like "$ERR" "more than a unix socket allows" "... saying why"
is "$(find "$long/vms" -mindepth 1 2>/dev/null | wc -l)" 0 "... before any file is made"

# help everywhere: every command in qvm --help has --help and an entry in
# the man page
cmds=$("$QVM" --help | awk '/^commands:/ {f = 1; next} /^$/ {f = 0} f {print $1}')
ok "qvm --help lists the commands" test "$(wc -w <<<"$cmds")" -gt 20
# the COMMANDS section as plain text, one line a paragraph (groff: make deps)
man=$(groff -man -Tascii -P-cbou -rLL=300n "${QVM_SOURCE:-$(dirname "$0")/../..}/doc/qvm.8" 2>/dev/null |
	sed -n '/^COMMANDS/,/^[A-Z]/p')
for c in $cmds; do
	run "$QVM" "$c" --help
	[ "$RC" = 0 ] && [[ $OUT == "usage: qvm $c"* ]] || { not_ok "$c --help"; continue; }
	grep -qE "^ {7}(\\S.*[[:space:],])?$c([[:space:],]|$)" <<<"$man" || { not_ok "$c is in the man page"; continue; }
	ok "$c --help, and the man page has it"
done
run "$QVM" reboot --help
like "$OUT" "--timeout S +how long" "reboot --help describes its options"
run "$QVM" --version
like "$RC $OUT" "^0 qvm [0-9]" "--version"
run "$QVM" host
like "$OUT" "ACCEL +(kvm|tcg) \\(" "host says which accelerator and why"
QVM_ACCEL=tcg run "$QVM" host --json
is "$(json 'd["accel"], d["accel_reason"]' <<<"$OUT")" "tcg set by QVM_ACCEL" "QVM_ACCEL overrides auto"

# --- a missing argument is named, from the command's usage line --------------
while read -r want cmd; do
	# shellcheck disable=SC2086
	run "$QVM" $cmd
	is "$RC" 2 "'qvm $cmd' is a usage error"
	like "$ERR" "missing argument $want"$'\n' "... naming $want"
done <<'EOF_CASES'
NAME show
NAME disk-attach
DISK_ID disk-resize x
SIZE disk-resize x 1
NIC_ID nic-detach x
KEY=VALUE... update x
NAME net create
N image show
EOF_CASES

# --- every command waits for the vm lock the same way (QVM_LOCK_TIMEOUT_MS) --
run "$QVM" create lockme --memory 64M
lid=$(vm_id lockme)
lockfile=$QVM_ROOT/run/vm-$lid.lock
for cmd in "update lockme label.a=1" "hold lockme" "delete lockme"; do
	flock "$lockfile" sleep 1.5 &
	holder=$!
	for _ in $(seq 50); do flock -n "$lockfile" true 2>/dev/null || break; sleep 0.02; done
	# shellcheck disable=SC2086
	run "$QVM" $cmd
	is "$RC" 0 "'$cmd' waits for another command's vm lock, then works" || diag "$ERR"
	wait "$holder"
done
run "$QVM" create lockme2 --memory 64M
lockfile=$QVM_ROOT/run/vm-$(vm_id lockme2).lock
for cmd in "update lockme2 label.a=1" "delete lockme2"; do
	flock "$lockfile" sleep 3 &
	holder=$!
	for _ in $(seq 50); do flock -n "$lockfile" true 2>/dev/null || break; sleep 0.02; done
	# shellcheck disable=SC2086
	QVM_LOCK_TIMEOUT_MS=300 run "$QVM" $cmd
	is "$RC" 1 "'$cmd' gives up after QVM_LOCK_TIMEOUT_MS"
	like "$ERR" "vm 'lockme2' is busy: another qvm command is working on it" "... with the busy message every command gives"
	kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
done
run "$QVM" delete lockme2
is "$RC" 0 "once free, delete works"

done_testing
