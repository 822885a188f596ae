#!/usr/bin/env bash
# make install and make uninstall: the installed tree (binary, man page,
# systemd units, bash completion), the units clean under systemd-analyze
# verify (also with --root on a DESTDIR staging tree), the completion driven through bash-completion's own functions
# (commands, options, and the names of vms, images and snapshots read from
# qvm --json), and uninstall removing exactly what install put there.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_qvm
qvm_test_root
SRC=${QVM_SOURCE:?set QVM_SOURCE to the source tree}
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_DISK_ROOTS=$QVM_TEST_ROOT/img
mkdir -p "$QVM_DISK_ROOTS"
D=$QVM_TEST_ROOT/prefix
DIRS=(SYSTEMDUNITDIR="$D/lib/systemd/system" BASHCOMPDIR="$D/share/bash-completion/completions")
UNITS=(qvm-guests.service qvm-scheduler.service qvm-scheduler.timer qvm-metrics.service
	qvm-metrics.socket)

# ============================================================================
section "make install"
run make -s -C "$SRC" install PREFIX="$D" "${DIRS[@]}" INSTALL_BIN="$QVM"
is "$RC" 0 "make install PREFIX=... (the binary under test)" || diag "$ERR"
for f in bin/qvm share/man/man8/qvm.8 lib/systemd/system/qvm-guests.service \
	lib/systemd/system/qvm-scheduler.service lib/systemd/system/qvm-scheduler.timer \
	lib/systemd/system/qvm-metrics.service lib/systemd/system/qvm-metrics.socket \
	share/bash-completion/completions/qvm; do
	ok "installed $f" test -s "$D/$f"
done
like "$("$D/bin/qvm" --version)" "^qvm " "the installed qvm runs"
is "$(grep -h '^Exec' "$D"/lib/systemd/system/*.service | sort | tr '\n' ' ')" \
	"ExecStart=$D/bin/qvm -q metrics --listen 127.0.0.1:9310 ExecStart=$D/bin/qvm host boot ExecStart=$D/bin/qvm scheduler --once ExecStop=$D/bin/qvm host shutdown --timeout 120 " \
	"the units run the installed qvm: metrics --listen, host boot, host shutdown, scheduler --once"
like "$(grep '^After=' "$D/lib/systemd/system/qvm-guests.service")" "network-online.target local-fs.target" \
	"qvm-guests.service is ordered after network-online and the local filesystems"

section "systemd-analyze verify"
verify() { (cd "$1" && MANPATH=$D/share/man systemd-analyze verify "${@:2}" 2>&1); }
run verify "$D/lib/systemd/system" "${UNITS[@]}"
is "$RC:$OUT" "0:" "the units verify clean (no warning)"
mkdir -p "$QVM_TEST_ROOT/bad"
sed 's/^Type=oneshot/Type=oneshot\nExecStartt=x/' "$D/lib/systemd/system/qvm-scheduler.service" \
	>"$QVM_TEST_ROOT/bad/qvm-scheduler.service"
run verify "$QVM_TEST_ROOT/bad" qvm-scheduler.service
like "$OUT" "ExecStartt" "... a unit with a typo does not (the check can fail)"

# ============================================================================
section "bash completion"
"$QVM" create web1 --disk 16M >/dev/null || bail_out "create web1"
"$QVM" create web2 >/dev/null || bail_out "create web2"
"$QVM" snapshot-create web1 before-upgrade >/dev/null || bail_out "snapshot-create web1"
"$QVM" schedule web2 start --at +1h >/dev/null || bail_out "schedule web2 start"
"$QVM" schedule web2 start --at +2h >/dev/null || bail_out "schedule web2 start"
truncate -s 1M "$QVM_DISK_ROOTS/base.raw"
"$QVM" image import "$QVM_DISK_ROOTS/base.raw" --name base --format raw >/dev/null || bail_out "image import"
# comp LINE: what completing LINE (the cursor at its end) offers, sorted, on one line
comp() {
	PATH=$D/bin:$PATH bash -c '
. /usr/share/bash-completion/bash_completion
. "$1"
COMP_LINE=$2 COMP_POINT=${#2}
read -ra COMP_WORDS <<<"$2"
[[ $2 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMPREPLY=()
_qvm
[ ${#COMPREPLY[@]} -gt 0 ] && printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' \
		_ "$D/share/bash-completion/completions/qvm" "$1"
}
is "$(comp "qvm sched")" "schedule schedule-delete schedule-list scheduler " "commands"
like "$(comp "qvm ")" "create .*start .*suspend " "... all of them from an empty line"
is "$(comp "qvm scheduler --")" "--help --interval --json --once " "a command's options"
like "$(comp "qvm host shutdown --")" "--mode .*--timeout" "... host shutdown's"
is "$(comp "qvm host shutdown --mode ")" "shutdown suspend " "an option's values"
is "$(comp "qvm start w")" "web1 web2 " "vm names (qvm --json list)"
is "$(comp "qvm --root $QVM_ROOT start ")" "web1 web2 " "... under the --root of the line"
is "$(comp "qvm --root /nonexistent start ")" "" "... none under another root"
is "$(comp "qvm snapshot-revert web1 ")" "before-upgrade " "snapshot tags of the vm (qvm --json snapshot-list)"
is "$(comp "qvm image show ")" "base " "image names (qvm --json image list)"
is "$(comp "qvm disk-attach web2 --image ")" "base " "... as --image's value"
is "$(comp "qvm net show ")" "" "network names: none defined"
is "$(comp "qvm schedule web1 snap")" "snapshot-create " "a schedule's actions"
is "$(comp "qvm schedule-delete web2 ")" "1 2 " "the ids of a vm's scheduled actions"
is "$(comp "qvm host ")" "boot set shutdown " "host's subcommands"
is "$(comp "qvm host set deploy")" "deploy-pending=off deploy-pending=on " "... and settings"

# ============================================================================
section "make uninstall"
run make -s -C "$SRC" uninstall PREFIX="$D" "${DIRS[@]}"
is "$RC" 0 "make uninstall" || diag "$ERR"
is "$(find "$D" -type f -o -type l)" "" "nothing installed is left"
S=$QVM_TEST_ROOT/stage
run make -s -C "$SRC" install DESTDIR="$S" PREFIX=/usr INSTALL_BIN="$QVM"
is "$RC" 0 "make install DESTDIR=... PREFIX=/usr (pkg-config's folders)" || diag "$ERR"
udir=$(pkg-config --variable=systemdsystemunitdir systemd)
cdir=$(pkg-config --variable=completionsdir bash-completion)
ok "... units in pkg-config's systemdsystemunitdir ($udir)" test -f "$S$udir/qvm-guests.service"
ok "... completion in pkg-config's completionsdir ($cdir)" test -f "$S$cdir/qvm"
ok "... qvm in /usr/bin" test -x "$S/usr/bin/qvm"
# systemd-analyze verify --root resolves units and ExecStart= inside the
# staged tree; it needs systemd's own targets, slices and sockets there:
# a copy of the stage with the host's, so the stage itself stays as made
V=$QVM_TEST_ROOT/verify
cp -a "$S" "$V" && cp -P "$udir"/*.target "$udir"/*.slice "$udir"/*.socket "$V$udir/" 2>/dev/null
verify_staged() { (cd "$V$udir" && MANPATH=$V/usr/share/man systemd-analyze verify --root="$V" "${UNITS[@]}" 2>&1); }
run verify_staged
is "$RC:$OUT" "0:" "systemd-analyze verify --root on the DESTDIR tree: clean"
mv "$V/usr/bin/qvm" "$V/usr/bin/qvm.off"
run verify_staged
like "$OUT" "Command /usr/bin/qvm is not executable" "... and it checks the staged /usr/bin/qvm (gone: it says so)"
rm -rf "$V"
echo keep >"$S$udir/other.service"
run make -s -C "$SRC" uninstall DESTDIR="$S" PREFIX=/usr
is "$RC" 0 "make uninstall DESTDIR=..." || diag "$ERR"
is "$(cd "$S" && find . -type f -o -type l)" "./${udir#/}/other.service" "... removes exactly what install put there"
"$QVM" delete web1 >/dev/null && "$QVM" delete web2 >/dev/null || not_ok "delete the vms"
done_testing
