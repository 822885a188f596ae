# shellcheck shell=bash
# Two qvm hosts on this machine for the migration tests (tests/e2e/54-57):
# source it after tests/lib/tap.sh and tests/lib/vm.sh, once need_guest and
# qvm_test_root ran. hosts_setup makes:
#
#   SRC_NS, DST_NS    two network namespaces joined by a veth pair,
#                     10.77.0.1/24 (source) and 10.77.0.2/24 (destination);
#                     each has its own stack, so two tests can use the same
#                     addresses at once
#   SRC_ROOT, DST_ROOT  a qvm root for each host under QVM_TEST_ROOT
#   SQ, DQ            qvm on each host, arrays: `"${SQ[@]}" list`
#                     (ip netns exec NS QVM --root ROOT)
#   network "mnet"    on each host: bridge mbr0, leases 10.78.0.10-50
#   sshd              Debian's, in DST_NS on 10.77.0.2:$DST_PORT, a host key
#                     and a client key made here; SSHD_PID
#   QVM_SSH           exported: ssh with that key, a known_hosts file that
#                     holds only that host key, no config file, batch mode
#   DEST              root@10.77.0.2:$DST_PORT, the destination for migrate
#   SRC_DEST, BACK    the same the other way: an sshd on 10.77.0.1 too
#                     (SRC_SSHD_PID), for a migration back with BACK's
#                     --remote-qvm and --remote-root
#   REMOTE            (--remote-qvm WRAPPER --remote-root DST_ROOT): the
#                     wrapper runs QVM with the destination's QVM_ACCEL and
#                     QVM_DISK_ROOTS, as an admin's install would have them
#
# Everything goes at exit, also on failure: sshd and its sessions, the
# namespaces with their veth, bridges and taps (on_exit), the roots with
# the test folder (qvm_test_root's cleanup, which also kills every process
# mentioning it: QEMUs, supervisors, qvm).
#
#   hosts_kill_sessions  kill -9 of sshd's sessions (the connections drop)
#   hosts_kill_sshd   kill -9 of sshd and its sessions
#   hosts_leftovers   what of the two hosts outlived their vms: taps on
#                     either bridge, runtime sockets, QEMUs; empty when none

DST_PORT=2222

hosts_setup() {
	command -v ip >/dev/null || bail_out "the test needs iproute2 (ip)"
	[ -x /usr/sbin/sshd ] || bail_out "the test needs sshd (openssh-server; make deps)"
	command -v ssh-keygen >/dev/null || bail_out "the test needs ssh-keygen (openssh-client)"
	local t=$QVM_TEST_ROOT s
	SRC_NS=qtmigs$$ DST_NS=qtmigd$$
	SRC_ROOT=$t/src DST_ROOT=$t/dst
	ip netns add "$SRC_NS" || bail_out "cannot make network namespace $SRC_NS"
	on_exit "ip netns del $SRC_NS 2>/dev/null"
	ip netns add "$DST_NS" || bail_out "cannot make network namespace $DST_NS"
	on_exit "ip netns del $DST_NS 2>/dev/null"
	ip -n "$SRC_NS" link add v0 type veth peer name v1 netns "$DST_NS" ||
		bail_out "cannot make the veth pair"
	ip -n "$SRC_NS" addr add 10.77.0.1/24 dev v0
	ip -n "$DST_NS" addr add 10.77.0.2/24 dev v1
	for s in "$SRC_NS:v0" "$DST_NS:v1"; do
		ip -n "${s%%:*}" link set lo up
		ip -n "${s%%:*}" link set "${s#*:}" up
	done
	SQ=(ip netns exec "$SRC_NS" "$QVM" --root "$SRC_ROOT")
	DQ=(ip netns exec "$DST_NS" "$QVM" --root "$DST_ROOT")
	for s in SQ DQ; do
		local -n q=$s
		"${q[@]}" net create mnet --bridge mbr0 --range 10.78.0.10-10.78.0.50 >/dev/null ||
			bail_out "cannot make network mnet ($s)"
	done
	hosts_sshd
}

hosts_sshd() {
	local d=$QVM_TEST_ROOT/ssh i
	mkdir -p "$d" /run/sshd
	chmod 700 "$d"
	ssh-keygen -q -t ed25519 -N '' -f "$d/host_key" -C qvm-test-host || bail_out "ssh-keygen"
	ssh-keygen -q -t ed25519 -N '' -f "$d/id" -C qvm-test-client || bail_out "ssh-keygen"
	cp "$d/id.pub" "$d/authorized_keys"
	echo "[10.77.0.2]:$DST_PORT $(cut -d' ' -f1,2 "$d/host_key.pub")" >"$d/known_hosts"
	cat >"$d/sshd_config" <<-EOF
		ListenAddress 10.77.0.2:$DST_PORT
		HostKey $d/host_key
		AuthorizedKeysFile $d/authorized_keys
		PidFile $d/sshd.pid
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		AllowTcpForwarding yes
		AllowStreamLocalForwarding yes
		StreamLocalBindUnlink yes
		LogLevel ERROR
	EOF
	ip netns exec "$DST_NS" /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>>"$d/sshd.log" &
	SSHD_PID=$!
	on_exit "hosts_kill_sshd"
	# the same on the source, for migrations back
	echo "[10.77.0.1]:$DST_PORT $(cut -d' ' -f1,2 "$d/host_key.pub")" >>"$d/known_hosts"
	sed -e "s/^ListenAddress .*/ListenAddress 10.77.0.1:$DST_PORT/" \
		-e "s|^PidFile .*|PidFile $d/sshd-src.pid|" "$d/sshd_config" >"$d/sshd_src_config"
	ip netns exec "$SRC_NS" /usr/sbin/sshd -D -e -f "$d/sshd_src_config" 2>>"$d/sshd.log" &
	SRC_SSHD_PID=$!
	on_exit 'kill -9 $(pgrep -P "$SRC_SSHD_PID") "$SRC_SSHD_PID" 2>/dev/null; wait "$SRC_SSHD_PID" 2>/dev/null'
	SRC_DEST=root@10.77.0.1:$DST_PORT
	BACK=(--remote-qvm "$QVM_TEST_ROOT/dst-qvm" --remote-root "$SRC_ROOT")
	export QVM_SSH="ssh -F /dev/null -i $d/id -o IdentitiesOnly=yes -o UserKnownHostsFile=$d/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10"
	DEST=root@10.77.0.2:$DST_PORT
	cat >"$QVM_TEST_ROOT/dst-qvm" <<-EOF
		#!/bin/sh
		export QVM_ACCEL=tcg QVM_DISK_ROOTS=$G:$QVM_TEST_ROOT
		exec $QVM "\$@"
	EOF
	chmod 755 "$QVM_TEST_ROOT/dst-qvm"
	REMOTE=(--remote-qvm "$QVM_TEST_ROOT/dst-qvm" --remote-root "$DST_ROOT")
	for i in $(seq 50); do
		# shellcheck disable=SC2086
		ip netns exec "$SRC_NS" $QVM_SSH -p "$DST_PORT" root@10.77.0.2 true 2>/dev/null && return 0
		sleep 0.1
	done
	diag_file "$d/sshd.log" 10
	bail_out "sshd in $DST_NS does not answer on 10.77.0.2:$DST_PORT"
}

# every session sshd runs (its children), not sshd: a new connection works
hosts_kill_sessions() {
	local p
	for p in $(pgrep -P "$SSHD_PID" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
}

# sshd and every session it runs (their processes are its children)
hosts_kill_sshd() {
	local p
	[ -n "${SSHD_PID:-}" ] || return 0
	for p in $(pgrep -P "$SSHD_PID" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	kill -9 "$SSHD_PID" 2>/dev/null
	wait "$SSHD_PID" 2>/dev/null
	SSHD_PID=
}

hosts_leftovers() {
	local ns
	for ns in "$SRC_NS" "$DST_NS"; do
		ip -n "$ns" -o link show master mbr0 2>/dev/null | awk -F': ' -v ns="$ns" '{print ns ": tap " $2}'
	done
	QVM_ROOT=$SRC_ROOT runtime_left
	QVM_ROOT=$DST_ROOT runtime_left
}

# qemus_on ROOT: how many QEMUs run VMs of that root
qemus_on() { pids_matching "$1/vms/" | wc -l; }
# counter_of LOG: the last QVM-COUNTER a guest printed to its console
counter_of() { tr -d '\r' <"$1" | grep -a '^QVM-COUNTER ' | tail -1 | cut -d' ' -f2; }
