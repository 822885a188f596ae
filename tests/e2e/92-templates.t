#!/usr/bin/env bash
# Templates: template create from a vm and from a file, list, show, delete;
# create --template three times with --count (distinct uuids, MACs, leases
# and overlay disks on the template's image, flags overriding the
# template's values); %i names; all or none made when one name is taken;
# a template naming a missing image or network refused at instantiation
# with the name. The network lives in a namespace of its own. One boot.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
command -v ip >/dev/null || bail_out "the test needs iproute2 (ip) to make its namespace"
qvm_test_root
unset QVM_CRASH_AT QVM_FAIL_AT QVM_QEMU
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT/img
NS=shp92$$
ip netns add "$NS" || bail_out "cannot make network namespace $NS"
on_exit "ip netns del $NS 2>/dev/null"
Q=(ip netns exec "$NS" "$QVM")
QVM_CMD=("${Q[@]}")
mkdir -p "$QVM_TEST_ROOT/img"
qemu-img create -q -f qcow2 "$QVM_TEST_ROOT/img/base.qcow2" 64M
d() { "${Q[@]}" show "$1" --json | json "d[\"definition\"]$2"; }
backing() { qemu-img info --output=json "$1" | json 'd.get("full-backing-filename") or d.get("backing-filename")'; }

section "a template from a vm"
run "${Q[@]}" image import "$QVM_TEST_ROOT/img/base.qcow2" --name shpbase
is "$RC" 0 "an image in the store" || diag "$ERR"
run "${Q[@]}" net create shpn --bridge shpbr0 --range 10.92.0.10-10.92.0.50
is "$RC" 0 "a network with a range" || diag "$ERR"
define shp-src "" --disk shpbase --disk 32M --nic shpn --label role=web
run "${Q[@]}" template create shp-t --from shp-src
is "$RC" 0 "template create --from a vm" || diag "$ERR"
run "${Q[@]}" template list
like "$OUT" "shp-t +1 +256M +2 +1 " "template list: vcpus, memory, disks, nics"
run "${Q[@]}" --json template show shp-t
is "$(json '"uuid" in d["definition"], "mac" in d["definition"]["nics"][0], "path" in d["definition"]["disks"][0], d["definition"]["disks"][0]["source"]' <<<"$OUT")" \
	"False False False shpbase" "the template keeps no uuid, MAC or disk path; the disk is its image"
run "${Q[@]}" template create shp-t --from shp-src
is "$RC" 1 "a second template of the same name is refused"
like "$ERR" "template 'shp-t' exists already" "... saying so"
run "${Q[@]}" template create shp-x --from no-such-vm
is "$RC" 1 "a template from a vm that does not exist is refused"

section "three instances"
run "${Q[@]}" create shp-web --template shp-t --count 3 --vcpus 2
is "$RC" 0 "create --template --count 3" || diag "$ERR"
is "$(wc -l <<<"$OUT")" 3 "... prints three ids"
uuids= macs= ips= disks= blanks=
for n in 1 2 3; do
	vm=shp-web-$n
	is "$(state "$vm")" PENDING "$vm is defined"
	uuids+="$(d "$vm" '["uuid"]') "
	macs+="$(d "$vm" '["nics"][0]["mac"]') "
	ips+="$(d "$vm" '["nics"][0]["ip"]') "
	disk=$(d "$vm" '["disks"][0]["path"]')
	disks+="$disk "
	blanks+="$(d "$vm" '["disks"][1]["path"]') "
	is "$(backing "$disk")" "$QVM_ROOT/images/shpbase.qcow2" "$vm: its disk is an overlay on the template's image"
	is "$(d "$vm" '["vcpus"], d["definition"]["memory"], d["definition"]["labels"]["role"]')" \
		"2 268435456 web" "$vm: --vcpus overrides the template, the rest is the template's"
done
distinct() { [ "$(tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -u | wc -l)" = 3 ]; }
ok "three distinct uuids: $uuids" distinct "$uuids"
ok "three distinct MACs: $macs" distinct "$macs"
ok "three distinct leases: $ips" distinct "$ips"
ok "three distinct overlays" distinct "$disks"
ok "three distinct blank disks" distinct "$blanks"
for f in $disks $blanks; do [ -f "$f" ] || not_ok "$f exists"; done
ok "every disk file exists"

section "names, all or none"
run "${Q[@]}" --json create 'shp-db%ia' --template shp-t --count 2
is "$RC" 0 "create with %i in the name" || diag "$ERR"
is "$(json '[v["name"] for v in d]' <<<"$OUT")" "['shp-db1a', 'shp-db2a']" "... numbered in place (--json: the vms)"
run "${Q[@]}" create shp-web --template shp-t --count 4
is "$RC" 1 "a count whose first name is taken is refused"
run "${Q[@]}" delete shp-web-1
run "${Q[@]}" delete shp-web-2
run "${Q[@]}" create 'shp-web-%i' --template shp-t --count 3 --nic shpn
is "$RC" 1 "a count whose third name is taken is refused"
like "$ERR" "none of the 3 vms is kept \(2 made were deleted\): a vm named 'shp-web-3' exists already" "... saying none is kept"
is "$(state shp-web-3)" PENDING "the vm of the taken name is untouched"
run "${Q[@]}" list
is "$(grep -c 'shp-web-' <<<"$OUT")" 1 "... and none of the new ones is left"
is "$(find "$QVM_ROOT/vms" -mindepth 1 -maxdepth 1 | wc -l)" 4 "... nor their folders"
run "${Q[@]}" create shp-f --from /dev/null --template shp-t
is "$RC" 2 "--from with --template is a usage error"

section "a template from a file, instantiated and started"
"${Q[@]}" dump shp-src | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d.update(memory=128<<20, nics=[]); print(json.dumps(d))' >"$QVM_TEST_ROOT/t.json"
run "${Q[@]}" template create shp-ft --from "$QVM_TEST_ROOT/t.json"
is "$RC" 0 "template create --from a file" || diag "$ERR"
run "${Q[@]}" create shp-boot --template shp-ft --start
is "$RC" 0 "an instance starts" || { diag "$ERR"; explain shp-boot; }
run "${Q[@]}" poweroff shp-boot --hard
is "$RC" 0 "... and is powered off" || diag "$ERR"

section "missing image or network: refused at instantiation, named"
run "${Q[@]}" delete shp-src
for v in shp-web-3 shp-db1a shp-db2a shp-boot; do "${Q[@]}" delete "$v" >/dev/null 2>&1; done
run "${Q[@]}" image delete shpbase
is "$RC" 0 "the template's image can be deleted (no vm uses it)" || diag "$ERR"
n=$(find "$QVM_ROOT/vms" -mindepth 1 -maxdepth 1 | wc -l)
run "${Q[@]}" create shp-miss --template shp-t
is "$RC" 1 "an instance of a template whose image is gone is refused"
like "$ERR" "from template 'shp-t': .*no image named 'shpbase'" "... naming the template and the image"
printf '{"name": "x", "memory": 134217728, "nics": [{"network": "shp-nonet"}]}' >"$QVM_TEST_ROOT/n.json"
run "${Q[@]}" template create shp-nt --from "$QVM_TEST_ROOT/n.json"
is "$RC" 0 "a template naming a network that does not exist is kept" || diag "$ERR"
run "${Q[@]}" create shp-miss --template shp-nt
is "$RC" 1 "... and refused when instantiated"
like "$ERR" "from template 'shp-nt': .*no network named 'shp-nonet'" "... naming the network"
is "$(find "$QVM_ROOT/vms" -mindepth 1 -maxdepth 1 | wc -l)" "$n" "no vm folder is left"
run "${Q[@]}" create shp-miss --template nope
like "$ERR" "no template 'nope'" "a template that does not exist is named"

section "delete"
for t in shp-t shp-ft shp-nt; do
	run "${Q[@]}" template delete "$t"
	is "$RC" 0 "template delete $t" || diag "$ERR"
done
run "${Q[@]}" template delete shp-t
is "$RC" 1 "a template deleted twice is refused"
run "${Q[@]}" template list
is "$(wc -l <<<"$OUT")" 1 "template list is empty"
run "${Q[@]}" net delete shpn
is "$RC" 0 "the network goes" || diag "$ERR"
is "$(pids_matching "$QVM_ROOT" | wc -l)" 0 "no qemu or supervisor is left"
done_testing
