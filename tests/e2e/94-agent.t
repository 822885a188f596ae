#!/usr/bin/env bash
# The guest agent with the test guest (qemu-ga on org.qemu.guest_agent.0):
# create --guest-agent gives the channel; exec returns the guest's output
# and exit code, and one that does not end in time says so; set-password
# (from a file or stdin, never argv) changes the guest's /etc/shadow; an
# unknown user is refused; show lists the guest's interfaces and
# addresses; snapshot-create --quiesce freezes and thaws, also when the
# snapshot fails, and is refused when no agent answers; a vm without the
# channel and an agent that does not answer are refused plainly. One boot, and one of a vm without the channel.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
unset QVM_CRASH_AT QVM_FAIL_AT QVM_QEMU QVM_LOCK_TIMEOUT_MS
shadow() { "$QVM" exec shp-a -- /bin/cat /etc/shadow | grep '^root:'; }

section "a vm with the channel"
define shp-a "" --guest-agent --disk 64M
id=$(vm_id shp-a)
run "$QVM" argv shp-a
like "$OUT" "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0" "argv: the agent's port"
like "$OUT" "socket,id=qga0,fd=6,server=on,wait=off" "... on a socket qvm hands over"
run "$QVM" start shp-a
is "$RC" 0 "start" || { diag "$ERR"; explain shp-a; }
ok "qemu-ga runs in the guest" wait_for_file_line "$QVM_ROOT/vms/$id/console.log" '^QVM-AGENT ' "$BOOT_S"
ok "qvm made the agent's socket" test -S "$QVM_ROOT/run/$id/agent.sock"

section "exec"
run "$QVM" exec shp-a -- /bin/sh -c 'echo out-line; echo err-line >&2; exit 3'
is "$RC" 1 "a command that exits 3 makes exec fail"
is "$OUT" "out-line" "its stdout is printed"
like "$ERR" "err-line" "... its stderr too"
like "$ERR" "the command exited with status 3" "... and its status"
run "$QVM" --json exec shp-a -- /bin/sh -c 'echo hello; exit 0'
is "$RC" 0 "exec --json" || diag "$ERR"
is "$(json 'd["exitcode"], repr(d["stdout"]), d["truncated"]' <<<"$OUT")" "0 'hello\n' False" "--json: exit code and output"
run "$QVM" exec shp-a --timeout 1 -- /bin/sleep 30
is "$RC" 1 "a command past its timeout fails"
like "$ERR" "'/bin/sleep' did not end within 1 s; it goes on in the guest" "... saying it goes on"
run "$QVM" exec shp-a -- /no/such/program
is "$RC" 1 "a program the guest lacks fails"

section "set-password"
before=$(shadow)
like "$before" '^root:\*:' "root has no password at first"
printf 's3cret-one\n' >"$QVM_TEST_ROOT/pw"
run "$QVM" set-password shp-a root --password-file "$QVM_TEST_ROOT/pw"
is "$RC" 0 "set-password --password-file" || diag "$ERR"
is "$OUT" "shp-a: password of 'root' set" "... says so"
one=$(shadow)
like "$one" '^root:\$6\$' "the guest's /etc/shadow has a sha512 crypt for root"
run "$QVM" set-password shp-a root <<<"s3cret-two"
is "$RC" 0 "set-password from stdin" || diag "$ERR"
two=$(shadow)
ok "... the entry changed again" test "$one" != "$two"
run "$QVM" set-password shp-a nobody <<<"x"
is "$RC" 1 "an unknown user is refused"
like "$ERR" "cannot set the password of 'nobody' in 'shp-a'" "... saying so"
run "$QVM" set-password shp-a root s3cret
is "$RC" 2 "a password on the command line is a usage error"
is "$(grep -c 's3cret' "$QVM_ROOT/journal/log" 2>/dev/null)" 0 "no password reaches the journal"

section "show: the guest's interfaces"
run "$QVM" --json show shp-a
is "$(json '[a["ip"] for i in d["guest"]["interfaces"] if i["name"] == "lo" for a in i["addresses"] if a["type"] == "ipv4"]' <<<"$OUT")" \
	"['127.0.0.1']" "show --json lists lo with 127.0.0.1"
ok "... with the time it was read" test "$(json 'd["guest"]["read_ms"] > 0' <<<"$OUT")" = True
run "$QVM" show shp-a
like "$OUT" "GUEST-IPS +lo 127.0.0.1" "show prints them"

section "a quiesced snapshot"
run "$QVM" -v snapshot-create shp-a q1 --quiesce --no-memory
is "$RC" 0 "snapshot-create --quiesce" || diag "$ERR"
like "$ERR" "agent 'shp-a' <- guest-fsfreeze-freeze" "the guest's filesystems are frozen first"
like "$ERR" "agent 'shp-a' <- guest-fsfreeze-thaw" "... and thawed after"
QVM_FAIL_AT=snapshot-create-after-disk run "$QVM" -v snapshot-create shp-a q2 --quiesce --no-memory
is "$RC" 1 "a quiesced snapshot that fails..."
like "$ERR" "agent 'shp-a' <- guest-fsfreeze-thaw" "... thaws too"
QVM_CRASH_AT=snapshot-create-after-freeze run "$QVM" snapshot-create shp-a q4 --quiesce --no-memory
is "$RC" 99 "qvm dies with the guest's filesystems frozen"
run "$QVM" -v snapshot-create shp-a q5 --quiesce --no-memory
is "$RC" 0 "the next snapshot works" || diag "$ERR"
like "$(grep -n "guest-fsfreeze" <<<"$ERR" | head -1)" "guest-fsfreeze-thaw" "... after the settling of the one that died thawed the guest"
run "$QVM" exec shp-a -- /bin/true
is "$RC" 0 "the agent still answers after them" || diag "$ERR"
like "$("$QVM" snapshot-list shp-a)" "q1" "the snapshot is in the tree"
is "$(grep -cE 'q2|q4' <<<"$("$QVM" snapshot-list shp-a)")" 0 "... the failed and the interrupted ones are not"

section "no agent"
pid=$("$QVM" exec shp-a -- /bin/cat /var/run/qemu-ga.pid)
"$QVM" exec shp-a --timeout 5 -- /bin/kill "$pid" >/dev/null 2>&1
run "$QVM" exec shp-a -- /bin/true
is "$RC" 1 "with qemu-ga gone, exec fails"
like "$ERR" "no guest agent answered on 'shp-a' in time: is qemu-guest-agent running in the guest\?" "... saying so"
run "$QVM" show shp-a
is "$RC" 0 "show still works"
like "$OUT" "GUEST-IPS +- \(no guest agent answered\)" "... saying the agent did not answer"
run "$QVM" snapshot-create shp-a q3 --quiesce
is "$RC" 1 "a quiesced snapshot without an agent is refused"
like "$ERR" "cannot snapshot 'shp-a': cannot quiesce 'shp-a': no guest agent answered" "... saying why"
is "$(state shp-a)" ACTIVE/RUNNING "... the vm runs on"
is "$(grep -c q3 <<<"$("$QVM" snapshot-list shp-a)")" 0 "... and no snapshot is taken"
run "$QVM" delete shp-a
define shp-n
run "$QVM" start shp-n
is "$RC" 0 "a vm without the channel starts" || diag "$ERR"
run "$QVM" exec shp-n -- /bin/true
is "$RC" 1 "exec in it is refused"
like "$ERR" "'shp-n' has no guest agent channel; give it one \(qvm update shp-n guest-agent=yes\)" "... saying how to give it one"
run "$QVM" delete shp-n
is "$RC" 0 "delete" || diag "$ERR"
is "$(pids_matching "$QVM_ROOT" | wc -l)" 0 "no qemu or supervisor is left"
done_testing
