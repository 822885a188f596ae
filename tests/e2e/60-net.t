#!/usr/bin/env bash
# Networks and NICs end to end, entirely inside a network namespace this test
# makes (qvm runs under `ip netns exec`, so its bridges, taps, supervisors and
# QEMUs live there and the host's interfaces are untouched): net create on a
# new and on an admin's bridge, a non-bridge refused, a VLAN rolled back when
# the kernel cannot make it, leases and MACs (duplicates and an exhausted
# range refused), two guests pinging each other across the bridge, net
# delete refused while used, a crash between tap creation and QEMU, kill -9
# of QEMU, and nic-attach / nic-detach on a running guest.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
command -v ip >/dev/null || bail_out "the test needs iproute2 (ip) to make its namespace"
qvm_test_root
unset QVM_CRASH_AT QVM_QEMU
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
# vm_id, state, wait_state, explain; they run qvm as QVM_CMD: in the namespace
QVM_CMD=("${Q[@]}")
VM_POLL_S=0.3
nsip() { "${IN[@]}" ip "$@"; }
has_link() { nsip link show "$1" >/dev/null 2>&1; }
host_has_link() { ip link show "$1" >/dev/null 2>&1; }

nic_field() { "${Q[@]}" show "$1" --json | json "d['nics'][$2]['$3']"; }
wait_no_link() {
	local deadline=$((SECONDS + $2))
	while has_link "$1"; do
		[ $SECONDS -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

# ---- networks ---------------------------------------------------------------
run "${Q[@]}" net create lan --bridge qbr0 --range 10.77.0.10-10.77.0.12 --gateway 10.77.0.1
is "$RC" 0 "net create makes a network" || diag "$ERR"
like "$(nsip -d link show qbr0 2>&1)" "bridge" "its bridge qbr0 exists in the namespace and is a bridge"
if host_has_link qbr0; then not_ok "the host has no qbr0"; else ok "the host has no qbr0"; fi
run "${Q[@]}" net list
like "$OUT" "(^|$NL)lan +qbr0 +- +10\.77\.0\.10-10\.77\.0\.12 +0 +0" "net list shows it with no leases"
run "${Q[@]}" net show lan --json
is "$(json 'd["created_bridge"]' <<<"$OUT")" True "the journal says qvm made the bridge"

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
if has_link qbradm; then ok "the admin's bridge survives net delete"; else not_ok "the admin's bridge survives net delete"; fi
nsip link del qbradm

run "${Q[@]}" net create vl --bridge qbrv --vlan 5 --uplink qttap0
if [ "$RC" = 0 ]; then
	like "$(nsip -d link show qttap0.5 2>&1)" "vlan .*id 5" "a VLAN interface qttap0.5 was made"
	like "$(nsip -o link show qttap0.5)" "master qbrv" "... enslaved to the bridge"
	run "${Q[@]}" net delete vl
	if has_link qttap0.5; then not_ok "net delete removes the VLAN interface qvm made"; else ok "net delete removes the VLAN interface qvm made"; fi
	if has_link qbrv; then not_ok "... and its bridge"; else ok "... and its bridge"; fi
else
	like "$ERR" "cannot create network 'vl': cannot create vlan 5" "a VLAN the kernel cannot make fails clearly"
	if has_link qbrv; then not_ok "... and the bridge made before it is rolled back"; else ok "... and the bridge made before it is rolled back"; fi
	run "${Q[@]}" net show vl
	is "$RC" 1 "... and no network was recorded"
fi
QVM_CRASH_AT=net-create-after-bridge run "${Q[@]}" net create x --bridge qbrx
is "$RC" 99 "net create dies after making its bridge"
run "${Q[@]}" net create jumbo --bridge qbrm --mtu 1400
is "$RC" 0 "net create with --mtu" || diag "$ERR"
if has_link qbrx; then not_ok "... and the next writer removed the bridge of the dead one"; else ok "... and the next writer removed the bridge of the dead one"; fi
run "${Q[@]}" net show x
is "$RC" 1 "... and no network x was recorded"
is "$(nsip -o link show qbrm | grep -o 'mtu [0-9]*')" "mtu 1400" "... the bridge qvm made has that MTU"
run "${Q[@]}" net delete jumbo
if has_link qbrm; then not_ok "... and goes with net delete"; else ok "... and goes with net delete"; fi
run "${Q[@]}" net create bad --bridge qbr9 --range 10.0.0.1-10.0.1.5
is "$RC" 1 "a range over two /24 is refused"
like "$ERR" "one /24 network" "... saying why"
if has_link qbr9; then not_ok "... before any bridge is made"; else ok "... before any bridge is made"; fi

# ---- nics: leases and MACs --------------------------------------------------
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
like "$ERR" "ip 10.77.0.11 of network 'lan' is already leased" "... saying so"
vm_create c "" --nic lan
is "$RC" 0 "a third vm takes the last address" || diag "$ERR"
vm_create d "" --nic lan
is "$RC" 1 "a fourth is refused: the range is exhausted"
like "$ERR" "cannot create vm 'd': nic 0: the range 10\.77\.0\.10-10\.77\.0\.12 of network 'lan' is exhausted" "... clearly"
vm_create e "" --nic nowhere
is "$RC" 1 "a nic on an unknown network is refused"
like "$ERR" "no network named 'nowhere'" "... naming it"
run "${Q[@]}" net show lan --json
is "$(json 'len(d["leases"])' <<<"$OUT")" 3 "net show lists three leases"
run "${Q[@]}" net delete lan
is "$RC" 1 "net delete of a network in use is refused"
like "$ERR" "vms 'a', 'b', 'c'" "... naming the vms"

# ---- a crash between tap creation and QEMU leaves no tap ---------------------
cid=$(vm_id c)
QVM_CRASH_AT=start-after-taps run "${Q[@]}" start c
if [ "$RC" != 0 ]; then ok "a start that dies after making the taps fails"; else not_ok "a start that dies after making the taps fails"; fi
"${Q[@]}" list >/dev/null 2>&1
if has_link "qvm${cid}n0"; then not_ok "... and leaves no tap"; else ok "... and leaves no tap"; fi
like "$(state c)" "^(FAILED|PENDING)$" "... and c is not left ACTIVE"
run "${Q[@]}" delete c
is "$RC" 0 "delete c" || diag "$ERR"
run "${Q[@]}" net show lan --json
is "$(json 'len(d["leases"])' <<<"$OUT")" 2 "its lease is released"

# ---- two guests ping each other across the bridge ---------------------------
aid=$(vm_id a)
bid=$(vm_id b)
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
run "${Q[@]}" show a
like "$OUT" "  0 lan +qbr0 +qvm${aid}n0 +$amac|  0 lan +qbr0 +qvm${aid}n0 +52:54" "show prints the nic's network, bridge, tap, mac"
like "$OUT" "10\.77\.0\.11 +virtio" "... and ip"
nsino=$(stat -L -c %i "/run/netns/$NS")
apid=$("${Q[@]}" show a --json | json 'd["qemu_pid"]')
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

# ---- kill -9 of QEMU: its taps are gone ----------------------------------------
bpid=$("${Q[@]}" show b --json | json 'd["qemu_pid"]')
kill -9 "$bpid"
if wait_state b FAILED 30; then ok "b is FAILED after kill -9 of its QEMU"; else not_ok "b is FAILED after kill -9 of its QEMU (it is $STATE)"; fi
if wait_no_link "qvm${bid}n0" 10; then ok "... and its tap is gone"; else not_ok "... and its tap is gone"; fi
run "${Q[@]}" show b --json
is "$(json 'd["nics"][0]["ip"]' <<<"$OUT")" 10.77.0.10 "... and its lease is kept"

# ---- nic-attach / nic-detach on a running guest ------------------------------
# b is FAILED: a stopped vm gets a nic in its definition only
run "${Q[@]}" nic-attach b --network lan --model e1000
is "$RC" 0 "nic-attach on a stopped vm changes its definition" || diag "$ERR"
is "$("${Q[@]}" show b --json | json 'len(d["nics"])')" 2 "... b has two nics now"
if has_link "qvm${bid}n1"; then not_ok "... and no tap is made"; else ok "... and no tap is made"; fi
is "$(nic_field b 1 ip)" 10.77.0.12 "... with the last lease"
run "${Q[@]}" nic-attach a --network lan
is "$RC" 1 "nic-attach when the range is exhausted is refused"
like "$ERR" "cannot attach a nic to 'a': nic 1: the range .* is exhausted" "... clearly"
run "${Q[@]}" nic-detach b 1
is "$RC" 0 "nic-detach on a stopped vm" || diag "$ERR"
is "$("${Q[@]}" show b --json | json 'len(d["nics"])')" 1 "... drops the nic from its definition"

wait_for_file_line "$alog" '^QVM-DEVICES net=eth0 ' 5 >/dev/null
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
run "${Q[@]}" history a
like "$OUT" "ACTIVE/HOTPLUG +nic-attach" "the history shows ACTIVE/HOTPLUG"

mark=$(line_count "$alog")
run "${Q[@]}" nic-detach a 1
is "$RC" 0 "nic-detach on a running vm" || { diag "$ERR"; explain a; }
if wait_for_file_line "$alog" '^QVM-DEVICES net=eth0 ' 30 "$mark"; then
	ok "eth1 is gone from the guest"
else
	not_ok "eth1 is gone from the guest"
fi
if wait_no_link "qvm${aid}n1" 10; then ok "... its tap is gone"; else not_ok "... its tap is gone"; fi
run "${Q[@]}" net show lan --json
is "$(json '" ".join(sorted(l["ip"] for l in d["leases"]))' <<<"$OUT")" "10.77.0.10 10.77.0.11" "... and its lease is freed"

# a qvm that dies between tap creation and device_add leaves nothing once
# reconciled: no tap, no lease, no device in the guest
for point in nic-attach-after-tap nic-attach-after-netdev; do
	mark=$(line_count "$alog")
	QVM_CRASH_AT=$point run "${Q[@]}" nic-attach a --network lan
	is "$RC" 99 "nic-attach dies at $point"
	"${Q[@]}" list >/dev/null 2>&1
	is "$(state a)" ACTIVE/RUNNING "... list rolls it back: a is RUNNING"
	if has_link "qvm${aid}n1"; then not_ok "... no tap is left"; else ok "... no tap is left"; fi
	is "$("${Q[@]}" show a --json | json 'len(d["nics"])')" 1 "... no nic in the definition"
	run "${Q[@]}" net show lan --json
	is "$(json 'len(d["leases"])' <<<"$OUT")" 2 "... no lease"
done
sleep 2
like "$(grep -a '^QVM-DEVICES' "$alog" | tail -1)" "net=eth0 " "the guest never saw a half-added nic"
amac=$(nic_field a 0 mac)
run "${Q[@]}" nic-attach a --network lan --mac "$amac"
is "$RC" 1 "nic-attach with a MAC in use is refused"
like "$ERR" "already used by vm 'a' nic 0" "... naming its owner"
if has_link "qvm${aid}n1"; then not_ok "... before any tap is made"; else ok "... before any tap is made"; fi


# a failure that qvm sees (the bridge was deleted behind its back) is rolled back
nsip link del qbr0
run "${Q[@]}" nic-attach a --network lan
is "$RC" 1 "nic-attach fails when the network's bridge is gone"
like "$ERR" "cannot attach a nic to 'a': nic 1 on network 'lan': bridge 'qbr0' does not exist" "... saying so"
is "$(state a)" ACTIVE/RUNNING "... a is RUNNING again"
is "$("${Q[@]}" show a --json | json 'len(d["nics"])')" 1 "... no nic was added"
run "${Q[@]}" net show lan --json
is "$(json 'len(d["leases"])' <<<"$OUT")" 2 "... and no lease taken"
if has_link "qvm${aid}n1"; then not_ok "... no tap is left"; else ok "... no tap is left"; fi

# ---- supervisor killed, then QEMU: reconciliation leaves no tap -------------------
aspid=$("${Q[@]}" show a --json | json 'd["supervisor_pid"]')
apid=$("${Q[@]}" show a --json | json 'd["qemu_pid"]')
kill -9 "$aspid"
wait_pid_gone "$aspid" 5
kill -9 "$apid"
wait_pid_gone "$apid" 10
"${Q[@]}" list >/dev/null 2>&1
is "$(state a)" FAILED "a is FAILED once its supervisor and QEMU are gone"
if has_link "qvm${aid}n0"; then not_ok "... and no tap of it is left"; else ok "... and no tap of it is left"; fi

# ---- clean up: what qvm made goes ------------------------------------------------
for v in a b; do "${Q[@]}" delete "$v" >/dev/null 2>&1; done
run "${Q[@]}" net delete lan
is "$RC" 0 "net delete once no vm uses it" || diag "$ERR"
if has_link qbr0; then not_ok "... and no bridge is left"; else ok "... and no bridge is left"; fi
run "${Q[@]}" net list --json
is "$OUT" "[]" "no network is left"
nsip link del qttap0 2>/dev/null
done_testing
