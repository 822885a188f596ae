#!/usr/bin/env bash
# host boot makes again the interfaces qvm made for its networks when a
# host boot lost them (bridge, VLAN interface enslaved to it), records
# their new index as qvm's (net delete still removes them), and leaves an
# admin's bridge alone; inside a network namespace this test makes.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_qvm
command -v ip >/dev/null || bail_out "the test needs iproute2 (ip) to make its namespace"
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_BOOT_ID_FILE=$QVM_TEST_ROOT/boot_id
echo boot-73 >"$QVM_BOOT_ID_FILE"
NS=qthb$$
ip netns add "$NS" || bail_out "cannot make network namespace $NS"
on_exit "ip netns del $NS 2>/dev/null"
IN=(ip netns exec "$NS")
Q=("${IN[@]}" "$QVM")
nsip() { "${IN[@]}" ip "$@"; }
has_link() { nsip link show "$1" >/dev/null 2>&1; }
master_of() { nsip -o link show "$1" 2>/dev/null | grep -o 'master [^ ]*' | cut -d' ' -f2; }

nsip link add up0 type veth peer name up1 && nsip link set up0 up || bail_out "cannot make a veth uplink"
nsip link add bradm type bridge || bail_out "cannot make the admin's bridge"
run "${Q[@]}" net create lan --bridge brq73 --range 10.73.0.10-10.73.0.20
is "$RC" 0 "net create lan (qvm makes brq73)" || diag "$ERR"
vlan=0
if "${IN[@]}" ip link add probe.5 link up0 type vlan id 5 2>/dev/null; then
	nsip link del probe.5
	vlan=1
	run "${Q[@]}" net create tagged --bridge brq73v --vlan 7 --uplink up0
	is "$RC" 0 "net create tagged (a bridge and VLAN up0.7)" || diag "$ERR"
fi
run "${Q[@]}" net create adm --bridge bradm
is "$RC" 0 "net create adm on the admin's bridge" || diag "$ERR"

# a boot loses what qvm made
nsip link del brq73
[ $vlan = 1 ] && nsip link del up0.7 && nsip link del brq73v
nsip link del bradm
run "${Q[@]}" host boot
is "$RC" 0 "host boot" || diag "$ERR"
ok "... makes brq73 again" has_link brq73
like "$OUT" "net lan: its interfaces made again" "... saying so"
if [ $vlan = 1 ]; then
	ok "... and brq73v" has_link brq73v
	is "$(master_of up0.7)" "brq73v" "... and up0.7, enslaved to brq73v"
else
	skip "... and brq73v" "this kernel makes no VLAN interfaces"
	skip "... and up0.7, enslaved to brq73v" "this kernel makes no VLAN interfaces"
fi
ok "... not the admin's bridge" test "$(has_link bradm && echo y)" != y
run "${Q[@]}" host boot
is "$RC" 0 "host boot again: nothing to do" || diag "$ERR"
is "$(echo "$OUT" | wc -w)" 0 "... and it says nothing"
run "${Q[@]}" net delete lan
is "$RC" 0 "net delete lan" || diag "$ERR"
ok "... removes the brq73 host boot made (recorded as qvm's)" test "$(has_link brq73 && echo y)" != y
if [ $vlan = 1 ]; then
	"${Q[@]}" net delete tagged >/dev/null || not_ok "net delete tagged"
	ok "... and tagged's interfaces" test "$(has_link brq73v || has_link up0.7 && echo y)" != y
else
	skip "... and tagged's interfaces" "this kernel makes no VLAN interfaces"
fi
"${Q[@]}" net delete adm >/dev/null || not_ok "net delete adm"
done_testing
