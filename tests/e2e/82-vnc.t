#!/usr/bin/env bash
# VNC with a one-time password, through a real client (Debian's
# vncsnapshot): a vm defined with --vnc gets a display and a VNC server on
# 127.0.0.1 that takes no client before `qvm vnc` sets a password; with the
# password it prints, vncsnapshot saves a screenshot of the guest's screen
# (the firmware's text, not blank); a wrong password, an old one and one
# past its TTL are refused. The definition key (create --vnc, --vnc-listen,
# update vnc=on|off while off) and the failures (no display, not running,
# bad arguments, the expiry refused by QEMU). And a VNC server on a unix
# socket in the vm's runtime folder (--vnc-listen unix), reached by
# vncsnapshot through a TCP relay (tests/lib/vnc_relay.py).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_guest
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg QVM_DISK_ROOTS=$G
unset QVM_FAIL_AT
for t in vncsnapshot vncpasswd djpeg; do
	command -v "$t" >/dev/null || bail_out "no $t: run make deps (vncsnapshot, tigervnc-tools, libjpeg-turbo-progs)"
done
W=$QVM_TEST_ROOT

# snap DISPLAY PASSWORD OUT: vncsnapshot of 127.0.0.1:DISPLAY with PASSWORD
# (through a vncpasswd file); sets RC, ERR
snap() {
	printf '%s\n' "$2" | vncpasswd -f >"$W/pw"
	run timeout 30 vncsnapshot -passwd "$W/pw" "127.0.0.1:$1" "$3"
}
# bright JPEG: how many pixels of the image are not dark
bright() {
	djpeg -pnm "$1" | "$PY" -c '
import sys
d = sys.stdin.buffer.read().split(b"\n", 3)
px = d[3]
print(sum(1 for i in range(0, len(px) - 2, 3) if px[i] + px[i + 1] + px[i + 2] > 150))'
}
field() { json "d[\"$1\"]" <<<"$V"; }

define vnc1 "" --vnc
run "$QVM" argv vnc1
like "$OUT" "-device VGA,id=video0" "argv: a display device"
like "$OUT" "-vnc 127.0.0.1:0,to=99,password=on" "argv: a VNC server on loopback, a free display, a password"
run "$QVM" dump vnc1
is "$(json 'd["vnc"]' <<<"$OUT")" "{'listen': '127.0.0.1'}" "dump: vnc.listen"
run "$QVM" start vnc1
is "$RC" 0 "start" || diag "$ERR"
wait_for_file_line "$QVM_ROOT/vms/$(vm_id vnc1)/console.log" '^QVM-READY ' "$BOOT_S" ||
	{ explain vnc1; bail_out "vnc1 does not boot"; }

# ---- before any password ---------------------------------------------------
port=$(vm_qmp "$(vm_id vnc1)" query-vnc | json 'd["service"]')
disp=$((port - 5900))
snap "$disp" guessed "$W/none.jpg"
is "$RC" 1 "before qvm vnc: no password gets in" || diag "$ERR"
like "$ERR" "VNC authentication failed" "... vncsnapshot says authentication failed"

# ---- qvm vnc ----------------------------------------------------------------
run "$QVM" vnc vnc1 --ttl 8 --json
is "$RC" 0 "qvm vnc --json" || diag "$ERR"
V=$OUT
t_set=$(date +%s)
is "$(schema_violations <<<"$V")" "" "vnc --json follows the schema"
is "$(field host) $(field port) $(field display)" "127.0.0.1 $port $disp" \
	"it names the address, port and display (query-vnc's)"
like "$(field password)" '^[A-Za-z0-9]{8}$' "a password of 8 letters and digits"
pw=$(field password)
snap "$disp" "$pw" "$W/shot.jpg"
is "$RC" 0 "vncsnapshot with the password: a screenshot" || diag "$ERR"
n=$(bright "$W/shot.jpg")
ok "the screenshot is not blank ($n bright pixels: the firmware's text)" test "${n:-0}" -gt 500
snap "$disp" "x$pw" "$W/bad.jpg"
is "$RC" 1 "a wrong password is refused"
run "$QVM" vnc vnc1
is "$RC" 0 "qvm vnc (text)" || diag "$ERR"
like "$OUT" "ADDRESS +127.0.0.1:$port" "text: the address"
like "$OUT" "DISPLAY +127.0.0.1:$disp" "text: the display"
like "$OUT" "PASSWORD +[A-Za-z0-9]{8}" "text: the password"
like "$OUT" "EXPIRES +in 60 s" "text: the default TTL, 60 s"
pw2=$(awk '$1 == "PASSWORD" {print $2}' <<<"$OUT")
ok "a fresh password each time" test "$pw2" != "$pw"
snap "$disp" "$pw" "$W/old.jpg"
is "$RC" 1 "the previous password no longer works"
snap "$disp" "$pw2" "$W/new.jpg"
is "$RC" 0 "the new one does" || diag "$ERR"

# ---- the TTL ----------------------------------------------------------------
run "$QVM" vnc vnc1 --ttl 2 --json
pw3=$(json 'd["password"]' <<<"$OUT")
snap "$disp" "$pw3" "$W/ttl1.jpg"
is "$RC" 0 "--ttl 2: works at once" || diag "$ERR"
sleep 3
snap "$disp" "$pw3" "$W/ttl2.jpg"
is "$RC" 1 "--ttl 2: refused 3 s later" || diag "$ERR"
like "$ERR" "VNC authentication failed" "... authentication failed"

# ---- failures -------------------------------------------------------------------
run env QVM_FAIL_AT=vnc-before-expire "$QVM" vnc vnc1
is "$RC" 1 "the expiry cannot be set: it fails" || diag "$OUT"
like "$ERR" "cannot open the vnc display of 'vnc1': cannot set when its password expires" \
	"... saying so (the password it set is expired at once)"
is "$OUT" "" "... and prints no password"
for a in "--ttl 0" "--ttl 86401" "--ttl x"; do
	# shellcheck disable=SC2086 # the option and its value
	run "$QVM" vnc vnc1 $a
	is "$RC" 2 "vnc $a: usage error"
done
define plain "" --memory 128M
run "$QVM" vnc plain
is "$RC" 1 "vnc of a vm that is off: fails"
like "$ERR" "cannot open the vnc display of 'plain': it is PENDING" "... naming its state"
run "$QVM" update vnc1 vnc=off
is "$RC" 1 "update vnc=off while it runs: refused"
like "$ERR" "memory, vcpus, their maxima and vnc change only while the vm is off" "... saying why"

# ---- the definition key ------------------------------------------------------------
run "$QVM" update plain vnc=on
is "$RC" 0 "update vnc=on while off" || diag "$ERR"
is "$("$QVM" dump plain | json 'd["vnc"]["listen"]')" 127.0.0.1 "... on loopback"
like "$("$QVM" history plain | tail -1)" "update: vnc off→127.0.0.1" "history says what changed"
run "$QVM" update plain vnc_listen=::1
is "$RC" 0 "update vnc_listen=::1" || diag "$ERR"
like "$("$QVM" argv plain)" "-vnc '\[::1\]:0,to=99,password=on'" "argv: IPv6 in brackets"
run "$QVM" update plain vnc=off
is "$("$QVM" dump plain | json 'd.get("vnc")')" None "update vnc=off: no display"
ok "argv: no -vnc" bash -c "! '$QVM' argv plain | grep -q -- -vnc"
run "$QVM" update plain vnc=maybe
is "$RC" 2 "update vnc=maybe: usage error"
run "$QVM" update plain vnc_listen=localhost
is "$RC" 2 "update vnc_listen=localhost (a name): usage error"
vm_create v6 "" --vnc-listen 0.0.0.0
is "$RC" 0 "create --vnc-listen 0.0.0.0 (off-host, as asked)" || diag "$ERR"
like "$("$QVM" argv v6)" "-vnc 0.0.0.0:0,to=99,password=on" "argv: that address, still a password"
vm_create v7 "" --vnc-listen 127.0.0.1,share=ignore
is "$RC" 2 "create --vnc-listen with an option after the address: usage error"
vm_create v8 "" --vnc --machine microvm
is "$RC" 2 "create --vnc --machine microvm: a usage error (no display)"
like "$ERR" "microvm has no display" "... saying so"

# ---- a unix socket in the vm's runtime folder --------------------------------
run "$QVM" delete vnc1
is "$RC" 0 "delete vnc1" || diag "$ERR"
define vncu "" --vnc-listen unix
uid=$(vm_id vncu)
SOCK=$QVM_ROOT/run/$uid/vnc.sock
like "$("$QVM" argv vncu)" "-vnc unix:$SOCK,password=on" "argv: -vnc on a unix socket in the runtime folder"
run "$QVM" start vncu
is "$RC" 0 "start vncu" || diag "$ERR"
wait_for_file_line "$QVM_ROOT/vms/$uid/console.log" '^QVM-READY ' "$BOOT_S" ||
	{ explain vncu; bail_out "vncu does not boot"; }
run "$QVM" vnc vncu --json
is "$RC" 0 "qvm vnc of a vm on a unix socket" || diag "$ERR"
U=$OUT
is "$(json 'd["socket"], d["host"], d["port"], d["display"]' <<<"$U")" "$SOCK None None None" \
	"--json: the socket's path, no host, port or display"
is "$(schema_violations <<<"$U")" "" "... following the schema"
ok "the socket is there, a socket" test -S "$SOCK"
is "$(stat -c %A "$SOCK" | cut -c5-)" "------" "... for its owner only"
run "$QVM" vnc vncu
like "$OUT" "SOCKET +$SOCK" "text: SOCKET"
upw=$(awk '$1 == "PASSWORD" {print $2}' <<<"$OUT")
"$PY" "$VM_SH_DIR/vnc_relay.py" "$SOCK" "$W/relay.port" &
rpid=$!
on_exit "kill $rpid"
for _ in $(seq 50); do [ -s "$W/relay.port" ] && break; sleep 0.1; done
rdisp=$(($(cat "$W/relay.port") - 5900))
snap "$rdisp" "$upw" "$W/unix.jpg"
is "$RC" 0 "vncsnapshot through the relay, with the password" || diag "$ERR"
n=$(bright "$W/unix.jpg")
ok "... a screenshot that is not blank ($n bright pixels)" test "${n:-0}" -gt 500
snap "$rdisp" "x$upw" "$W/unix-bad.jpg"
is "$RC" 1 "... and a wrong password is refused"
kill "$rpid"
run "$QVM" poweroff vncu --hard
ok "the socket goes with its qemu (the runtime folder)" test ! -e "$SOCK"

run "$QVM" vnc plain
like "$ERR" "cannot open the vnc display of 'plain'" "vnc of a vm without vnc, off: refused"
for v in plain v6 vncu; do run "$QVM" delete "$v"; done
is "$(runtime_left)" "" "nothing of the runtime is left"
done_testing
