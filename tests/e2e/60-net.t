#!/usr/bin/env bash
# Networks and NICs end to end, entirely inside a network namespace this test
# makes (qvm runs under `ip netns exec`, so its bridges, taps, supervisors and
# QEMUs live there and the host's interfaces are untouched): net create on a
# new and on an admin's bridge, a non-bridge refused, VLANs (made, enslaved
# and removed where the kernel can; a TAP skip saying why where it cannot),
# every crash point of net create and net delete settled by the next reader
# (`qvm list`), an admin's interface never taken for qvm's, gateways and
# static addresses on networks without a range, leases and MACs (duplicates,
# host interfaces' MACs and an exhausted range refused), a lease kept across
# poweroff and restart, two guests pinging each other across the bridge,
# crash points of a start with nics, kill -9 of QEMU, nic-attach and
# nic-detach on a running guest with every failure and crash point, and a
# nic-detach whose QEMU dies while it waits.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
command -v ip >/dev/null || bail_out "the test needs iproute2 (ip) to make its namespace"
qvm_test_root
unset QVM_CRASH_AT QVM_FAIL_AT QVM_QEMU
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg
export QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT
NL=$'\n'
BOOT_S=90

NS=qtnet$$
ip netns add "$NS" || bail_out "cannot make network namespace $NS"
# deleting the namespace also deletes every interface left in it
on_exit "ip netns del $NS 2>/dev/null"
IN=(ip netns exec "$NS")
Q=("${IN[@]}" "$QVM")
# From tests/lib/vm.sh: run, json, vm_create (the test checks RC itself),
# vm_id, uuid_of, state, wait_state, qemus, explain; they run qvm as
# QVM_CMD: in the namespace
QVM_CMD=("${Q[@]}")
VM_POLL_S=0.3
nsip() { "${IN[@]}" ip "$@"; }
has_link() { nsip link show "$1" >/dev/null 2>&1; }
host_has_link() { ip link show "$1" >/dev/null 2>&1; }
no_link() { if has_link "$1"; then not_ok "$2"; else ok "$2"; fi; }
a_link() { if has_link "$1"; then ok "$2"; else not_ok "$2"; fi; }

nic_field() { "${Q[@]}" show "$1" --json | json "d['nics'][$2]['$3']"; }
nic_count() { "${Q[@]}" show "$1" --json | json 'len(d["nics"])'; }
lease_count() { "${Q[@]}" net show "$1" --json | json 'len(d["leases"])'; }
qemu_pid() { "${Q[@]}" show "$1" --json | json 'd["qemu_pid"]'; }
wait_no_link() {
	local deadline=$((SECONDS + $2))
	while has_link "$1"; do
		[ $SECONDS -lt "$deadline" ] || return 1
		sleep 0.2
	done
}
# in_qemu ID: "netdevs=net0,... nics=nic0,...": QEMU's netdevs (info
# network) and nic devices (/machine/peripheral)
in_qemu() {
	local nd dv
	nd=$(vm_qmp "$1" human-monitor-command '{"command-line":"info network"}' |
		json '",".join(sorted(set(__import__("re").findall(r"\b(net\d+):", d))))')
	dv=$(vm_qmp "$1" qom-list '{"path":"/machine/peripheral"}' |
		json '",".join(sorted(x["name"] for x in d if x["name"].startswith("nic")))')
	echo "netdevs=$nd nics=$dv"
}
# tun_fds PID: how many fds of the process are taps (/dev/net/tun; a tap
# opened by a qvm in another mount namespace, as each `ip netns exec` makes,
# reads as /net/tun)
tun_fds() {
	local f n=0
	for f in /proc/"$1"/fd/*; do
		case "$(readlink "$f" 2>/dev/null)" in /dev/net/tun | /net/tun) n=$((n + 1)) ;; esac
	done
	echo "$n"
}
# predicted_mac UUID NIC ATTEMPT: the MAC qvm generates (net/addr.c's
# FNV-1a of the uuid, the nic id and the attempt)
predicted_mac() {
	"$PY" - "$@" <<'EOF'
import sys
h, M = 14695981039346656037, 2**64
def fnv(h, data):
    for b in data:
        h = ((h ^ b) * 1099511628211) % M
    return h
h = fnv(h, sys.argv[1].encode())
h = fnv(h, int(sys.argv[2]).to_bytes(4, "little"))
h = fnv(h, int(sys.argv[3]).to_bytes(4, "little"))
print("52:54:%02x:%02x:%02x:%02x" % tuple((h >> (8 * i)) & 255 for i in range(4)))
EOF
}

# ---- networks ---------------------------------------------------------------
section "networks"
run "${Q[@]}" net create lan --bridge qbr0 --range 10.77.0.10-10.77.0.12 --gateway 10.77.0.1
is "$RC" 0 "net create makes a network" || diag "$ERR"
like "$(nsip -d link show qbr0 2>&1)" "bridge" "its bridge qbr0 exists in the namespace and is a bridge"
if host_has_link qbr0; then not_ok "the host has no qbr0"; else ok "the host has no qbr0"; fi
run "${Q[@]}" net list
like "$OUT" "(^|$NL)lan +qbr0 +- +10\.77\.0\.10-10\.77\.0\.12 +0 +0" "net list shows it with no leases"
run "${Q[@]}" net show lan --json
is "$(json 'd["created_bridge"]' <<<"$OUT")" True "the journal says qvm made the bridge"
like "$(json 'd["bridge_ifindex"]' <<<"$OUT")" "^[0-9]+$" "... and records its ifindex"
is "$(json 'd["bridge_ifindex"]' <<<"$OUT")" "$(nsip -o link show qbr0 | cut -d: -f1)" "... which is qbr0's"

nsip tuntap add qttap0 mode tap
run "${Q[@]}" net create odd --bridge qttap0
is "$RC" 1 "a bridge name that belongs to a tap is refused"
like "$ERR" "interface 'qttap0' exists and is a tun interface, not a bridge" "... saying what it is"
run "${Q[@]}" net show odd
is "$RC" 1 "... and no network was recorded"

nsip link add qbradm type bridge
run "${Q[@]}" net create adm --bridge qbradm --mtu 1400
is "$RC" 1 "an admin's bridge is never changed: another --mtu is refused"
like "$ERR" "bridge 'qbradm' exists \(not made by qvm\) with MTU 1500" "... saying why"
is "$(nsip -o link show qbradm | grep -o 'mtu [0-9]*')" "mtu 1500" "... and its MTU is untouched"
run "${Q[@]}" net create adm --bridge qbradm
is "$RC" 0 "an admin's existing bridge is adopted" || diag "$ERR"
like "$OUT" "existing bridge, adopted" "... and create says so"
run "${Q[@]}" net delete adm
is "$RC" 0 "net delete of the adopted network" || diag "$ERR"
a_link qbradm "the admin's bridge survives net delete"
nsip link del qbradm

# ---- VLANs: made where the kernel can ------------------------------------------
# The uplink is a veth of the namespace. Whether this kernel makes VLAN
# interfaces at all (8021q) is probed with ip first, so that the outcome
# is asserted either way.
nsip link add qtup0 type veth peer name qtup1
if why=$(nsip link add link qtup0 name qtup0.9 type vlan id 9 2>&1); then
	VLAN_OK=1
	nsip link del qtup0.9
else
	VLAN_OK=
	VLAN_WHY="this kernel cannot make VLAN interfaces (ip link add ... type vlan: ${why//$NL/ }; no 8021q)"
fi
run "${Q[@]}" net create vl --bridge qbrv --vlan 5 --uplink qtup0
if [ -n "$VLAN_OK" ]; then
	is "$RC" 0 "net create with --vlan makes the VLAN interface" || diag "$ERR"
	like "$(nsip -d link show qtup0.5 2>&1)" "vlan .*id 5" "... qtup0.5, vlan id 5"
	like "$(nsip -o link show qtup0.5)" "master qbrv" "... enslaved to the bridge"
	is "$("${Q[@]}" net show vl --json | json 'd["created_vlan"]')" True "... recorded as made by qvm"
	run "${Q[@]}" net delete vl
	is "$RC" 0 "net delete of the VLAN network" || diag "$ERR"
	no_link qtup0.5 "... removes the VLAN interface qvm made"
	no_link qbrv "... and its bridge"
	a_link qtup0 "... and leaves the uplink"
else
	skip "net create --vlan makes, enslaves (and net delete removes) the VLAN interface" "$VLAN_WHY"
	is "$RC" 1 "here a VLAN network cannot be made: net create fails"
	like "$ERR" "cannot create network 'vl': cannot create vlan 5 interface 'qtup0.5' on 'qtup0'" \
		"... clearly" || diag "$ERR"
	no_link qbrv "... and the bridge made before it is rolled back"
	run "${Q[@]}" net show vl
	is "$RC" 1 "... and no network was recorded"
fi

# ---- crash points of net create and net delete: the next reader settles ------
section "net create / delete crash points"
points="net-create-after-intent net-create-after-bridge net-create-before-record"
[ -n "$VLAN_OK" ] && points="$points net-create-after-vlan"
[ -n "$VLAN_OK" ] || skip "net create dies after making its VLAN interface: qvm list removes it" "$VLAN_WHY"
for point in $points; do
	vlan=()
	[ "$point" = net-create-after-vlan ] && vlan=(--vlan 7 --uplink qtup0)
	QVM_CRASH_AT=$point run "${Q[@]}" net create x --bridge qbrx "${vlan[@]}"
	is "$RC" 99 "net create dies at $point"
	run "${Q[@]}" list
	is "$RC" 0 "... qvm list after it" || diag "$ERR"
	no_link qbrx "... leaves no bridge (list rolled it back)"
	[ ${#vlan[@]} -gt 0 ] && no_link qtup0.7 "... nor VLAN interface"
	run "${Q[@]}" net show x
	is "$RC" 1 "... and no network x"
	run "${Q[@]}" net create x --bridge qbrx
	is "$RC" 0 "... net create x works afterwards" || diag "$ERR"
	run "${Q[@]}" net delete x
	no_link qbrx "... and its net delete removes the bridge"
done

# a writer settles it too
QVM_CRASH_AT=net-create-after-bridge run "${Q[@]}" net create x --bridge qbrx
is "$RC" 99 "net create dies after making its bridge"
run "${Q[@]}" net create jumbo --bridge qbrm --mtu 1400
is "$RC" 0 "net create with --mtu" || diag "$ERR"
no_link qbrx "... and the next writer removed the bridge of the dead one"
run "${Q[@]}" net show x
is "$RC" 1 "... and no network x was recorded"
is "$(nsip -o link show qbrm | grep -o 'mtu [0-9]*')" "mtu 1400" "... the bridge qvm made has that MTU"

QVM_CRASH_AT=net-delete-after-intent run "${Q[@]}" net delete jumbo
is "$RC" 99 "net delete dies after its intent"
run "${Q[@]}" list
is "$RC" 0 "... qvm list after it" || diag "$ERR"
no_link qbrm "... finished the delete: the bridge is gone"
run "${Q[@]}" net show jumbo
is "$RC" 1 "... and so is the network"

# an admin's interface is never taken for qvm's
QVM_CRASH_AT=net-create-after-intent run "${Q[@]}" net create y --bridge qbry
is "$RC" 99 "net create meant to make bridge qbry, and died before it did"
nsip link add qbry type bridge
run "${Q[@]}" list
a_link qbry "an admin's qbry made meanwhile survives the recovery of that net create"
run "${Q[@]}" net show y
is "$RC" 1 "... which recorded no network"
nsip link del qbry
run "${Q[@]}" net create z --bridge qbrz
is "$RC" 0 "net create z makes bridge qbrz" || diag "$ERR"
nsip link del qbrz
nsip link add qbrz type bridge
run "${Q[@]}" net delete z
is "$RC" 0 "net delete z after the admin replaced qbrz by a bridge of their own" || diag "$ERR"
a_link qbrz "... leaves the admin's qbrz (another ifindex than the one qvm made)"
nsip link del qbrz

run "${Q[@]}" net create bad --bridge qbr9 --range 10.0.0.1-10.0.1.5
is "$RC" 1 "a range over two /24 is refused"
like "$ERR" "one /24 network" "... saying why"
no_link qbr9 "... before any bridge is made"

# ---- gateways and networks without a range -------------------------------------
section "gateways, static addresses"
run "${Q[@]}" net create g1 --bridge qbrg --range 10.5.0.10-10.5.0.20 --gateway 10.5.0.0
is "$RC" 1 "a gateway that is the network address is refused"
like "$ERR" "network 'g1': the gateway is the network address of the range's /24 network" "... saying so"
run "${Q[@]}" net create g1 --bridge qbrg --range 10.5.0.10-10.5.0.20 --gateway 10.5.0.255
is "$RC" 1 "a gateway that is the broadcast address is refused"
like "$ERR" "the gateway is the broadcast address" "... saying so"
run "${Q[@]}" net create g1 --bridge qbrg --prefix 24 --gateway 10.5.0.255
is "$RC" 1 "... also on a network without a range"
no_link qbrg "... and no bridge was made"

run "${Q[@]}" net create st --bridge qbrs --prefix 24 --gateway 10.99.0.1 --dns 10.99.0.2
is "$RC" 0 "a network without a range, with a prefix and a gateway" || diag "$ERR"
run "${Q[@]}" net show st
like "$OUT" "RANGE +- /24" "net show gives its prefix"
like "$OUT" "GATEWAY +10\.99\.0\.1" "... and gateway"
vm_create sa "" --nic st,ip=10.99.0.5
is "$RC" 0 "a static ip on it" || diag "$ERR"
is "$(nic_field sa 0 ip)/$(nic_field sa 0 prefix) via $(nic_field sa 0 gateway)" "10.99.0.5/24 via 10.99.0.1" \
	"the nic gets the network's prefix and gateway (what its network-config says)"
vm_create sb "" --nic st,ip=10.99.0.5
is "$RC" 1 "the same static ip on another vm is refused"
like "$ERR" "ip 10\.99\.0\.5 of network 'st' is already used by vm 'sa' nic 0" "... naming its owner"
vm_create sb "" --nic st,ip=10.99.0.1
is "$RC" 1 "the gateway's address is refused"
like "$ERR" "ip 10\.99\.0\.1 is the gateway of network 'st'" "... saying it is the gateway"
vm_create sb "" --nic st,ip=10.98.0.5
is "$RC" 1 "an address outside the network is refused"
like "$ERR" "ip 10\.98\.0\.5 is outside network 'st' \(gateway 10\.99\.0\.1, /24\)" "... saying so"
vm_create sb "" --nic st,ip=10.99.0.255
is "$RC" 1 "the broadcast address is refused"
like "$ERR" "network or broadcast address" "... saying so"
vm_create sb "" --nic st,ip=10.99.0.6 --nic st,ip=10.99.0.6
is "$RC" 1 "one address on two nics of one vm is refused"
like "$ERR" "already used by nic 0 of the same vm" "... saying so"
vm_create sb "" --nic st
is "$RC" 0 "a nic without an address on it" || diag "$ERR"
is "$(nic_field sb 0 ip)" None "... has none"
for v in sa sb; do "${Q[@]}" delete "$v" >/dev/null 2>&1; done
vm_create sb "" --nic st,ip=10.99.0.5
is "$RC" 0 "a deleted vm's static address is free again" || diag "$ERR"
"${Q[@]}" delete sb >/dev/null 2>&1

run "${Q[@]}" net create gw --bridge qbrgw --range 10.66.0.1-10.66.0.3 --gateway 10.66.0.1
is "$RC" 0 "a range that holds its gateway" || diag "$ERR"
vm_create ga "" --nic gw,ip=10.66.0.1
is "$RC" 1 "ip= of the gateway is refused"
like "$ERR" "ip 10\.66\.0\.1 is the gateway of network 'gw'; give another ip or leave it out" \
	"... saying it is the gateway (not that it is leased)"
vm_create ga "" --nic gw
is "$RC" 0 "a lease from it" || diag "$ERR"
is "$(nic_field ga 0 ip)" 10.66.0.2 "... skips the gateway"
"${Q[@]}" delete ga >/dev/null 2>&1
run "${Q[@]}" net delete gw
is "$RC" 0 "net delete gw" || diag "$ERR"

# ---- MACs that host interfaces have ---------------------------------------------
nsip link add qtveth0 address 52:54:00:aa:bb:cc type veth peer name qtveth1
vm_create mh "" --nic st,mac=52:54:00:aa:bb:cc
is "$RC" 1 "a MAC a host interface has is refused"
like "$ERR" "mac 52:54:00:aa:bb:cc is already used by interface 'qtveth0' of this host" "... naming it"
vm_create mh ""
is "$RC" 0 "a vm without nics" || diag "$ERR"
want=$(predicted_mac "$(uuid_of mh)" 0 0)
nsip link set qtveth0 address "$want"
run "${Q[@]}" nic-attach mh --network st
is "$RC" 0 "nic-attach while a host interface has the MAC it would generate ($want)" || diag "$ERR"
got=$(nic_field mh 0 mac)
if [ -n "$got" ] && [ "$got" != "$want" ]; then ok "... it generates another one ($got)"; else not_ok "... it generates another one ($got)"; fi
run "${Q[@]}" nic-detach mh 0
nsip link del qtveth0
run "${Q[@]}" nic-attach mh --network st
is "$(nic_field mh 0 mac)" "$want" "... which it takes once no interface has it (the prediction is right)"
"${Q[@]}" delete mh >/dev/null 2>&1

# ---- nics: leases and MACs --------------------------------------------------
section "leases and MACs"
vm_create a "" --nic lan,ip=10.77.0.11
is "$RC" 0 "a vm with a nic and a chosen ip" || diag "$ERR"
vm_create b "" --nic lan
is "$RC" 0 "a vm with a nic and no ip" || diag "$ERR"
is "$(nic_field b 0 ip)" 10.77.0.10 "it leases the lowest free address of the range"
amac=$(nic_field a 0 mac)
like "$amac" "^52:54:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$" "a generated MAC, locally administered: $amac"
like "$(nic_field b 0 mac)" "^52:54:" "b has one too"
if [ "$amac" != "$(nic_field b 0 mac)" ]; then ok "... another one"; else not_ok "... another one"; fi
vm_create dup "" --nic "lan,mac=$amac"
is "$RC" 1 "a duplicate MAC is refused"
like "$ERR" "mac $amac is already used by vm 'a' nic 0" "... naming the vm that has it"
vm_create dupip "" --nic lan,ip=10.77.0.11
is "$RC" 1 "a leased ip is refused"
like "$ERR" "ip 10.77.0.11 of network 'lan' is already leased to vm 'a' nic 0" "... saying so, and to whom"
vm_create c "" --nic lan
is "$RC" 0 "a third vm takes the last address" || diag "$ERR"
vm_create d "" --nic lan
is "$RC" 1 "a fourth is refused: the range is exhausted"
like "$ERR" "cannot create vm 'd': nic 0: the range 10\.77\.0\.10-10\.77\.0\.12 of network 'lan' is exhausted" "... clearly"
vm_create e "" --nic nowhere
is "$RC" 1 "a nic on an unknown network is refused"
like "$ERR" "no network named 'nowhere'" "... naming it"
is "$(lease_count lan)" 3 "net show lists three leases"
is "$({ "${Q[@]}" net show lan --json; "${Q[@]}" net list --json; "${Q[@]}" show b --json; } |
	schema_violations 2>&1)" "" "net show, net list and show of a vm with a nic: --json follows the schema"
run "${Q[@]}" net delete lan
is "$RC" 1 "net delete of a network in use is refused"
like "$ERR" "vms 'a', 'b', 'c'" "... naming the vms"
run "${Q[@]}" delete c
is "$RC" 0 "delete c" || diag "$ERR"
is "$(lease_count lan)" 2 "its lease is released"

# ---- a start that dies with its taps made leaves none --------------------------
section "start crash points"
vm_create s2 "" --nic st --nic st
is "$RC" 0 "a vm with two nics" || diag "$ERR"
sid=$(vm_id s2)
suuid=$(uuid_of s2)
for point in start-after-tap start-after-taps; do
	QVM_CRASH_AT=$point run "${Q[@]}" start s2
	if [ "$RC" != 0 ]; then ok "a start that dies at $point fails"; else not_ok "a start that dies at $point fails"; fi
	run "${Q[@]}" list
	is "$RC" 0 "... qvm list after it" || diag "$ERR"
	no_link "qvm${sid}n0" "... no tap of nic 0 is left"
	no_link "qvm${sid}n1" "... nor of nic 1"
	like "$(state s2)" "^(FAILED|PENDING)$" "... s2 is not left ACTIVE"
	is "$(qemus "$suuid")" 0 "... and no qemu runs it"
done
slog=$QVM_ROOT/vms/$sid/console.log
run "${Q[@]}" start s2
is "$RC" 0 "s2 starts afterwards" || { diag "$ERR"; explain s2; }
if wait_for_file_line "$slog" '^QVM-DEVICES net=eth0,eth1 ' $BOOT_S; then
	ok "... and its guest sees both nics"
else
	not_ok "... and its guest sees both nics"
	explain s2
fi
"${Q[@]}" poweroff s2 --hard >/dev/null 2>&1
"${Q[@]}" delete s2 >/dev/null 2>&1
no_link "qvm${sid}n0" "... whose taps go with it"

# ---- two guests ping each other across the bridge ---------------------------
section "two guests"
"${Q[@]}" delete a >/dev/null 2>&1
"${Q[@]}" delete b >/dev/null 2>&1
vm_create a "qvm.ip=10.77.0.11/24 qvm.ping=10.77.0.10" --nic lan,ip=10.77.0.11
# b learns its address from its cloud-init seed: qvm writes the lease into
# the seed's network-config, the guest configures eth0 from it
printf '#cloud-config\n' >"$QVM_TEST_ROOT/user-data"
vm_create b "qvm.ping=10.77.0.11" --nic lan,ip=10.77.0.10 --cloud-init "user-data=$QVM_TEST_ROOT/user-data"
aid=$(vm_id a)
bid=$(vm_id b)
alog=$QVM_ROOT/vms/$aid/console.log
blog=$QVM_ROOT/vms/$bid/console.log
run "${Q[@]}" start a
is "$RC" 0 "start a vm with a nic" || { diag "$ERR"; explain a; }
run "${Q[@]}" start b
is "$RC" 0 "start a second one" || { diag "$ERR"; explain b; }
like "$(nsip -o link show "qvm${aid}n0" 2>&1)" "master qbr0 .*state UP|UP.*master qbr0" "a's tap qvm${aid}n0 is up on the bridge"
like "$(nsip -o link show "qvm${bid}n0" 2>&1)" "master qbr0" "b's tap qvm${bid}n0 is on the bridge"
if host_has_link "qvm${aid}n0"; then not_ok "the host has no tap of a"; else ok "the host has no tap of a"; fi
amac=$(nic_field a 0 mac)
run "${Q[@]}" show a
like "$OUT" "  0 lan +qbr0 +qvm${aid}n0 +$amac" "show prints the nic's network, bridge, tap, mac"
like "$OUT" "10\.77\.0\.11 +virtio" "... and ip"
nsino=$(stat -L -c %i "/run/netns/$NS")
apid=$(qemu_pid a)
aspid=$("${Q[@]}" show a --json | json 'd["supervisor_pid"]')
like "$(readlink "/proc/$apid/ns/net")" "\[$nsino\]" "a's QEMU runs in the test's namespace"
like "$(readlink "/proc/$aspid/ns/net")" "\[$nsino\]" "a's supervisor too"
if wait_for_file_line "$alog" '^QVM-PING 10\.77\.0\.10 (ok|fail)' $BOOT_S; then
	is "$TAP_LINE" "QVM-PING 10.77.0.10 ok" "a pings b across the bridge"
else
	not_ok "a pings b across the bridge"
	explain a
fi
if wait_for_file_line "$blog" '^QVM-NET-CONFIG ' $BOOT_S; then
	like "$TAP_LINE" "^QVM-NET-CONFIG ip=10\.77\.0\.10/24 gw=10\.77\.0\.1\$" \
		"b's seed carries its lease and gateway as network-config; the guest configured eth0 from it"
else
	not_ok "b's seed carries its lease as network-config"
	explain b
fi
if wait_for_file_line "$blog" '^QVM-PING 10\.77\.0\.11 (ok|fail)' $BOOT_S; then
	is "$TAP_LINE" "QVM-PING 10.77.0.11 ok" "b pings a across the bridge"
else
	not_ok "b pings a across the bridge"
	explain b
fi

# ---- kill -9 of QEMU: its taps are gone, its lease is kept ----------------------
bpid=$(qemu_pid b)
kill -9 "$bpid"
if wait_state b FAILED 30; then ok "b is FAILED after kill -9 of its QEMU"; else not_ok "b is FAILED after kill -9 of its QEMU (it is $STATE)"; fi
if wait_no_link "qvm${bid}n0" 10; then ok "... and its tap is gone"; else not_ok "... and its tap is gone"; fi
is "$(nic_field b 0 ip)" 10.77.0.10 "... and its lease is kept"
# the same lease after a start from FAILED, and after poweroff and start
for from in FAILED POWEROFF; do
	mark=$(line_count "$blog")
	run "${Q[@]}" start b
	is "$RC" 0 "b starts again from $from" || { diag "$ERR"; explain b; }
	if wait_for_file_line "$blog" '^QVM-NET-CONFIG ' $BOOT_S "$mark"; then
		is "$TAP_LINE" "QVM-NET-CONFIG ip=10.77.0.10/24 gw=10.77.0.1" "... its guest has the same address"
	else
		not_ok "... its guest has the same address"
		explain b
	fi
	wait_for_file_line "$blog" '^QVM-READY ' $BOOT_S "$mark" >/dev/null
	run "${Q[@]}" poweroff b
	is "$RC" 0 "poweroff b" || diag "$ERR"
	is "$(state b)" POWEROFF "... b is POWEROFF"
	is "$(nic_field b 0 ip)" 10.77.0.10 "... with its lease kept"
done

# ---- nic-attach / nic-detach on a stopped and on a running guest -------------
section "nic-attach, nic-detach"
# b is off: a stopped vm gets a nic in its definition only
run "${Q[@]}" nic-attach b --network lan --model e1000
is "$RC" 0 "nic-attach on a stopped vm changes its definition" || diag "$ERR"
is "$(nic_count b)" 2 "... b has two nics now"
no_link "qvm${bid}n1" "... and no tap is made"
is "$(nic_field b 1 ip)" 10.77.0.12 "... with the last lease"
run "${Q[@]}" nic-attach a --network lan
is "$RC" 1 "nic-attach when the range is exhausted is refused"
like "$ERR" "cannot attach a nic to 'a': nic 1: the range .* is exhausted" "... clearly"
run "${Q[@]}" nic-detach b 1
is "$RC" 0 "nic-detach on a stopped vm" || diag "$ERR"
is "$(nic_count b)" 1 "... drops the nic from its definition"

wait_for_file_line "$alog" '^QVM-DEVICES net=eth0 ' 5 >/dev/null
apid=$(qemu_pid a)
is "$(tun_fds "$apid")" 1 "a's QEMU holds one tap"
mark=$(line_count "$alog")
run "${Q[@]}" nic-attach a --network lan
is "$RC" 0 "nic-attach on a running vm" || { diag "$ERR"; explain a; }
like "$OUT" "nic 1 attached" "... says which nic"
is "$(state a)" ACTIVE/RUNNING "... and a is RUNNING again"
if wait_for_file_line "$alog" '^QVM-DEVICES net=eth0,eth1 ' 30 "$mark"; then
	ok "eth1 appears in the guest"
else
	not_ok "eth1 appears in the guest"
	explain a
fi
like "$(nsip -o link show "qvm${aid}n1" 2>&1)" "master qbr0" "its tap qvm${aid}n1 is on the bridge"
is "$(nic_field a 1 ip)" 10.77.0.12 "it leased the free address"
is "$(tun_fds "$apid")" 2 "QEMU holds two taps"
is "$(in_qemu "$aid")" "netdevs=net0,net1 nics=nic0,nic1" "... and has both netdevs and devices"
run "${Q[@]}" history a
like "$OUT" "ACTIVE/HOTPLUG +nic-attach" "the history shows ACTIVE/HOTPLUG"

# detach_ok LABEL MARK: nic 1 of a is gone everywhere (guest, tap, lease, QEMU)
detach_ok() {
	if wait_for_file_line "$alog" '^QVM-DEVICES net=eth0 ' 30 "$2"; then
		ok "$1: eth1 is gone from the guest"
	else
		not_ok "$1: eth1 is gone from the guest"
		explain a
	fi
	if wait_no_link "qvm${aid}n1" 10; then ok "$1: its tap is gone"; else not_ok "$1: its tap is gone"; fi
	is "$(nic_count a)" 1 "$1: a has one nic"
	is "$(lease_count lan)" 2 "$1: its lease is freed"
	is "$(tun_fds "$apid")" 1 "$1: QEMU holds one tap"
	is "$(in_qemu "$aid")" "netdevs=net0 nics=nic0" "$1: QEMU has no netdev or device of it"
	is "$(state a)" ACTIVE/RUNNING "$1: a is RUNNING"
}
# attach_ok LABEL MARK: nic 1 of a is there everywhere
attach_ok() {
	if wait_for_file_line "$alog" '^QVM-DEVICES net=eth0,eth1 ' 30 "$2"; then
		ok "$1: the guest has eth1"
	else
		not_ok "$1: the guest has eth1"
		explain a
	fi
	a_link "qvm${aid}n1" "$1: its tap is there"
	is "$(nic_count a)" 2 "$1: a has two nics"
	is "$(lease_count lan)" 3 "$1: with a lease"
	is "$(tun_fds "$apid")" 2 "$1: QEMU holds two taps"
	is "$(in_qemu "$aid")" "netdevs=net0,net1 nics=nic0,nic1" "$1: QEMU has its netdev and device"
	is "$(state a)" ACTIVE/RUNNING "$1: a is RUNNING"
}
# rolled_back LABEL: nic 1 of a never was (no tap, lease, netdev, device, fd)
rolled_back() {
	is "$(state a)" ACTIVE/RUNNING "$1: a is RUNNING"
	no_link "qvm${aid}n1" "$1: no tap is left"
	is "$(nic_count a)" 1 "$1: no nic in the definition"
	is "$(lease_count lan)" 2 "$1: no lease"
	is "$(tun_fds "$apid")" 1 "$1: QEMU holds no fd of it"
	is "$(in_qemu "$aid")" "netdevs=net0 nics=nic0" "$1: QEMU has no netdev or device of it"
}

mark=$(line_count "$alog")
run "${Q[@]}" nic-detach a 1
is "$RC" 0 "nic-detach on a running vm" || { diag "$ERR"; explain a; }
detach_ok "nic-detach" "$mark"

# a step of the attach that fails in QEMU is undone, every step before it too
for point in nic-attach-after-tap nic-attach-after-getfd nic-attach-after-netdev; do
	QVM_FAIL_AT=$point run "${Q[@]}" nic-attach a --network lan
	is "$RC" 1 "nic-attach fails at $point"
	like "$ERR" "^qvm: cannot attach a nic to 'a': injected failure at '$point'" "... saying what failed" || diag "$ERR"
	rolled_back "$point"
done
mark=$(line_count "$alog")
run "${Q[@]}" nic-attach a --network lan
is "$RC" 0 "nic-attach after those failures" || diag "$ERR"
attach_ok "then an attach" "$mark"
like "$(grep -a "^QVM-DEVICES" "$alog" | tail -1)" "^QVM-DEVICES net=eth0,eth1 " "... and the guest has exactly one new eth"
mark=$(line_count "$alog")
"${Q[@]}" nic-detach a 1 >/dev/null 2>&1
detach_ok "its detach" "$mark"

# QEMU has the nic but recording it fails: the next command records it
mark=$(line_count "$alog")
QVM_FAIL_AT=nic-attach-before-record run "${Q[@]}" nic-attach a --network lan
is "$RC" 1 "nic-attach whose outcome cannot be recorded fails"
like "$ERR" "qemu has the change but it could not be recorded \(the next qvm command on 'a' records it\)" "... saying what it left"
run "${Q[@]}" list
attach_ok "then qvm list" "$mark"
mark=$(line_count "$alog")
"${Q[@]}" nic-detach a 1 >/dev/null 2>&1
detach_ok "its detach" "$mark"

# a qvm that dies at any step of an attach: qvm list completes it (QEMU has
# the device) or rolls it back (no tap, lease, netdev, fd or device)
section "nic-attach crash points"
mark=$(line_count "$alog")
for point in after-intent after-tap after-getfd after-netdev; do
	QVM_CRASH_AT=nic-attach-$point run "${Q[@]}" nic-attach a --network lan
	is "$RC" 99 "nic-attach dies at nic-attach-$point"
	run "${Q[@]}" list
	is "$RC" 0 "... qvm list after it" || diag "$ERR"
	rolled_back "nic-attach-$point, rolled back"
done
sleep 1
if grep -a '^QVM-DEVICES' "$alog" | tail -n "+$((mark + 1))" | grep -q eth1; then
	not_ok "the guest never saw a half-added nic"
else
	ok "the guest never saw a half-added nic"
fi
# the next command on the vm settles it just as well, then does its own work
QVM_CRASH_AT=nic-attach-after-getfd run "${Q[@]}" nic-attach a --network lan
is "$RC" 99 "nic-attach dies at nic-attach-after-getfd again"
mark=$(line_count "$alog")
run "${Q[@]}" nic-attach a --network lan
is "$RC" 0 "the next nic-attach rolls that one back, then attaches" || diag "$ERR"
attach_ok "the next nic-attach" "$mark"
mark=$(line_count "$alog")
"${Q[@]}" nic-detach a 1 >/dev/null 2>&1
detach_ok "its detach" "$mark"
for point in after-device before-record; do
	mark=$(line_count "$alog")
	QVM_CRASH_AT=nic-attach-$point run "${Q[@]}" nic-attach a --network lan
	is "$RC" 99 "nic-attach dies at nic-attach-$point"
	run "${Q[@]}" list
	is "$RC" 0 "... qvm list after it" || diag "$ERR"
	attach_ok "nic-attach-$point, completed" "$mark"
	mark=$(line_count "$alog")
	"${Q[@]}" nic-detach a 1 >/dev/null 2>&1
	detach_ok "its detach" "$mark"
done

# a qvm that dies at any step of a detach: qvm list carries it through
section "nic-detach crash points"
for point in after-intent after-device-del before-record; do
	mark=$(line_count "$alog")
	"${Q[@]}" nic-attach a --network lan >/dev/null 2>&1
	attach_ok "an attach before nic-detach-$point" "$mark"
	mark=$(line_count "$alog")
	QVM_CRASH_AT=nic-detach-$point run "${Q[@]}" nic-detach a 1
	is "$RC" 99 "nic-detach dies at nic-detach-$point"
	run "${Q[@]}" list
	is "$RC" 0 "... qvm list after it" || diag "$ERR"
	detach_ok "nic-detach-$point, completed" "$mark"
done

amac=$(nic_field a 0 mac)
run "${Q[@]}" nic-attach a --network lan --mac "$amac"
is "$RC" 1 "nic-attach with a MAC in use is refused"
like "$ERR" "already used by vm 'a' nic 0" "... naming its owner"
no_link "qvm${aid}n1" "... before any tap is made"

# a failure that qvm sees (the bridge was deleted behind its back) is rolled back
nsip link del qbr0
run "${Q[@]}" nic-attach a --network lan
is "$RC" 1 "nic-attach fails when the network's bridge is gone"
like "$ERR" "cannot attach a nic to 'a': nic 1 on network 'lan': bridge 'qbr0' does not exist" "... saying so"
rolled_back "a bridge gone"

# ---- supervisor killed, then QEMU: reconciliation leaves no tap -------------------
aspid=$("${Q[@]}" show a --json | json 'd["supervisor_pid"]')
kill -9 "$aspid"
wait_pid_gone "$aspid" 5
kill -9 "$apid"
wait_pid_gone "$apid" 10
"${Q[@]}" list >/dev/null 2>&1
is "$(state a)" FAILED "a is FAILED once its supervisor and QEMU are gone"
no_link "qvm${aid}n0" "... and no tap of it is left"

# ---- nic-detach while the guest does not let go, and its QEMU dies ----------------
# (acpiphp.disable=1: no ACPI PCI hotplug in the guest, so device_del is
# never honoured and nic-detach waits; its qvm is stopped while the
# supervisor records QEMU's death, then let go on)
section "nic-detach, QEMU killed meanwhile"
vm_create n "acpiphp.disable=1" --nic st
nid=$(vm_id n)
run "${Q[@]}" start n
is "$RC" 0 "start n (a guest without ACPI PCI hotplug)" || diag "$ERR"
if wait_for_file_line "$QVM_ROOT/vms/$nid/console.log" '^QVM-READY ' $BOOT_S; then
	run "${Q[@]}" nic-attach n --network st
	is "$RC" 0 "nic-attach to it (QEMU has the nic; the guest does not look)" || diag "$ERR"
	"${Q[@]}" nic-detach n 1 >"$QVM_TEST_ROOT/detach.out" 2>"$QVM_TEST_ROOT/detach.err" &
	dpid=$!
	on_exit "kill -CONT $dpid; kill $dpid"
	wait_state n ACTIVE/HOTPLUG 20
	is "$STATE" ACTIVE/HOTPLUG "nic-detach waits for the guest in ACTIVE/HOTPLUG"
	sleep 0.5
	kill -STOP "$dpid"
	kill -9 "$(qemu_pid n)"
	if wait_state n FAILED 30; then ok "... its QEMU is killed: the supervisor records FAILED"; else not_ok "... its QEMU is killed: the supervisor records FAILED (it is $STATE)"; fi
	kill -CONT "$dpid"
	wait "$dpid"
	is "$?" 1 "... and nic-detach fails"
	like "$(cat "$QVM_TEST_ROOT/detach.err")" "cannot detach nic 1 of 'n': .*; meanwhile its qemu exited: it is FAILED now" \
		"... saying the vm is FAILED now"
	is "$(state n)" FAILED "... n stays FAILED: nic-detach did not record RUNNING over it"
	no_link "qvm${nid}n0" "... no tap of nic 0 is left"
	no_link "qvm${nid}n1" "... nor of nic 1"
	is "$(nic_count n)" 2 "... the nic stays in the definition"
	run "${Q[@]}" nic-detach n 1
	is "$RC" 0 "nic-detach of the stopped vm then" || diag "$ERR"
	is "$(nic_count n)" 1 "... drops it"
else
	not_ok "the guest without ACPI PCI hotplug boots"
	explain n
fi
"${Q[@]}" delete n >/dev/null 2>&1

# ---- nic hotplug on q35: the nic goes into a free pcie-root-port -------------------
section "nic hotplug on q35"
vm_create qz "" --machine q35 --nic st
qzid=$(vm_id qz)
qzlog=$QVM_ROOT/vms/$qzid/console.log
run "${Q[@]}" start qz
is "$RC" 0 "start a q35 vm with one nic" || diag "$ERR"
if wait_for_file_line "$qzlog" '^QVM-READY ' $BOOT_S; then
	mark=$(line_count "$qzlog")
	run "${Q[@]}" nic-attach qz --network st
	is "$RC" 0 "nic-attach to the running q35 vm" || { diag "$ERR"; explain qz; }
	if wait_for_file_line "$qzlog" '^QVM-DEVICES net=eth0,eth1 ' 30 "$mark"; then
		ok "q35: eth1 appears in the guest"
	else
		not_ok "q35: eth1 appears in the guest"
		explain qz
	fi
	mark=$(line_count "$qzlog")
	run "${Q[@]}" nic-detach qz 1
	is "$RC" 0 "nic-detach from the q35 vm" || { diag "$ERR"; explain qz; }
	if wait_for_file_line "$qzlog" '^QVM-DEVICES net=eth0 ' 30 "$mark"; then
		ok "q35: eth1 is gone from the guest"
	else
		not_ok "q35: eth1 is gone from the guest"
		explain qz
	fi
	no_link "qvm${qzid}n1" "q35: its tap is gone"
else
	not_ok "the q35 guest boots"
	explain qz
fi
"${Q[@]}" delete qz >/dev/null 2>&1

# ---- clean up: what qvm made goes ------------------------------------------------
for v in a b; do "${Q[@]}" delete "$v" >/dev/null 2>&1; done
run "${Q[@]}" net delete lan
is "$RC" 0 "net delete once no vm uses it" || diag "$ERR"
no_link qbr0 "... and no bridge is left"
run "${Q[@]}" net delete st
is "$RC" 0 "net delete st" || diag "$ERR"
no_link qbrs "... its bridge goes too"
run "${Q[@]}" net list --json
is "$OUT" "[]" "no network is left"
nsip link del qttap0 2>/dev/null
nsip link del qtup0 2>/dev/null
is "$(pids_matching "$QVM_ROOT")" "" "no qemu or supervisor runs under the test root at the end"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
