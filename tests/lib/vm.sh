# shellcheck shell=bash
# What the end-to-end tests (tests/e2e/*.t) share about qvm and its VMs:
# source it after tests/lib/tap.sh (it uses ok, is, diag, bail_out,
# pids_matching). Nothing runs when sourced but the choice of PY.
#
#   need_qvm                  QVM from the environment (the test stops if
#                             it is unset); QVM_CMD=("$QVM")
#   need_guest                need_qvm, and G from QVM_GUEST: bails out
#                             unless G has vmlinuz, initrd.img and append;
#                             sets APPEND (G/append, the guest's kernel
#                             command line) and BOOT_S=60 (bounded waits for
#                             a boot under TCG on a busy machine)
#   QVM_CMD                   how the helpers below run qvm, an array; a
#                             test sets it after need_qvm to run qvm some
#                             other way (60-net.t: inside a network namespace)
#   PY                        Debian's python3 when there (make deps): a
#                             pyenv shim first in PATH costs ~1 s a call
#   run CMD...                runs CMD; sets OUT (stdout), ERR (stderr)
#                             and RC (exit status)
#   json EXPR                 prints the Python expression EXPR of the JSON
#                             on stdin, loaded as d
#   vm_create NAME [EXTRA_APPEND [FLAG...]]
#                             run of `qvm create NAME` for a vm booting the
#                             test guest (256M, G's kernel and initrd,
#                             --append "APPEND EXTRA_APPEND", or APPEND alone
#                             when EXTRA_APPEND is empty) with more create
#                             flags; sets OUT, ERR, RC
#   define NAME [EXTRA_APPEND [FLAG...]]
#                             vm_create, and bail_out if it fails
#   vm_id NAME|ID             the vm's id
#   uuid_of NAME|ID           its uuid (QEMU runs with -uuid: pids_matching
#                             finds it)
#   state NAME|ID             its state: "ACTIVE/RUNNING", "POWEROFF", ...
#   wait_state NAME|ID ERE TIMEOUT_S
#                             polls (every VM_POLL_S, 0.2 s) until the
#                             state matches ^(ERE)$; sets STATE; returns 0,
#                             or 1 on timeout
#   reasons NAME|ID [AFTER_SEQ]
#                             "STATE[/LCM] reason" of each state record of
#                             its history after seq AFTER_SEQ (default 0:
#                             all), one a line
#   last_seq NAME|ID          seq of its latest history record
#   qemus UUID                how many processes run QEMU for the vm
#   sups ID                   how many supervisors of vm ID run
#   settled NAME|ID ID UUID STATE LABEL
#                             four checks: the vm is in STATE, and no QEMU,
#                             no supervisor, no runtime folder of it is left
#   explain NAME              diag of the vm's state and the last lines of
#                             its supervisor.log, qemu.log (10) and
#                             console.log (EXPLAIN_CONSOLE_LINES, 10), to
#                             say what went on when a step fails
#   section TEXT              diag "[SECONDS s] TEXT": where a long test is
#   vm_qmp ID CMD [ARGS_JSON] the "return" of a QMP command on vm ID's command
#                             socket (free while no qvm command runs on it),
#                             as one line of JSON (tests/lib/qmp.py)
#   journal_state ID          its state as the journal's files hold it, read
#                             without qvm (whose reads settle a crashed vm)
#   open_intents ID           the ops of vm ID's journal intents that no done
#                             record closed (read from the journal's files:
#                             snapshot.json's state, then the log)
#   schema_violations         what breaks qvm.8's JSON OUTPUT rules in the
#                             JSON on stdin (jq), one line each: a time key
#                             without _ms, a *_ms that is not a number, an
#                             empty string (labels and user data left out);
#                             nothing when it follows them, failure when it
#                             is not JSON
#   key_column_off            the lines of show-style output on stdin (up to
#                             the first empty line) that are not KEY VALUE
#                             with KEY (capitals) in a column of 11 and the
#                             value from column 13, as cli_print_field
#                             prints them; nothing when all are
#   runtime_left              what of QVM_ROOT's runtime state outlived its
#                             vms: sockets under ROOT/run and lock files that
#                             some process still holds; empty when nothing
#
# vm_id, uuid_of, state, reasons and last_seq read the journal through show
# and history, which do not reconcile: they see what was recorded last.

PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
VM_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

need_qvm() {
	QVM=${QVM:?set QVM to the qvm binary}
	QVM_CMD=("$QVM")
}

need_guest() {
	need_qvm
	G=${QVM_GUEST:?set QVM_GUEST to the test guest folder (make guest)}
	local f
	for f in vmlinuz initrd.img append; do
		[ -f "$G/$f" ] || bail_out "no $G/$f: run make guest"
	done
	APPEND=$(cat "$G/append")
	BOOT_S=60
}

run() {
	OUT=$("$@" 2>"$QVM_TEST_ROOT/stderr")
	RC=$?
	ERR=$(cat "$QVM_TEST_ROOT/stderr")
}

json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

vm_create() {
	local name=$1 extra=${2:-}
	shift
	[ $# -gt 0 ] && shift
	run "${QVM_CMD[@]}" create "$name" --memory 256M --kernel "$G/vmlinuz" --initrd "$G/initrd.img" \
		--append "$APPEND${extra:+ $extra}" "$@"
}

define() {
	vm_create "$@"
	[ "$RC" = 0 ] || bail_out "cannot create '$1': $ERR"
}

vm_id() { "${QVM_CMD[@]}" show "$1" --json | json 'd["id"]'; }
uuid_of() { "${QVM_CMD[@]}" show "$1" --json | json 'd["definition"]["uuid"]'; }

state() {
	"${QVM_CMD[@]}" show "$1" --json 2>/dev/null |
		json 'd["state"] + ("/" + d["lcm"] if d["state"] == "ACTIVE" else "")'
}

wait_state() {
	local deadline=$((SECONDS + $3))
	while :; do
		STATE=$(state "$1")
		[[ $STATE =~ ^($2)$ ]] && return 0
		[ $SECONDS -lt "$deadline" ] || return 1
		sleep "${VM_POLL_S:-0.2}"
	done
}

reasons() {
	"${QVM_CMD[@]}" history "$1" --json | "$PY" -c '
import json, sys
for r in json.load(sys.stdin):
    if r.get("type") == "state" and r["seq"] > int(sys.argv[1]):
        print(r["state"] + ("/" + r["lcm"] if r.get("lcm") else ""), r.get("reason") or "")
' "${2:-0}"
}

last_seq() { "${QVM_CMD[@]}" history "$1" --json | json 'd[-1]["seq"]'; }

qemus() { pids_matching "$1" | wc -l; }
sups() { pids_matching "$QVM_ROOT __supervise $1 " | wc -l; }

settled() {
	local name=$1 id=$2 uuid=$3 want=$4 label=$5
	is "$(state "$name")" "$want" "$label: $want"
	is "$(qemus "$uuid")" 0 "$label: no qemu of it runs"
	is "$(sups "$id")" 0 "$label: no supervisor of it runs"
	ok "$label: no runtime folder" test ! -e "$QVM_ROOT/run/$id"
}

explain() {
	local id
	id=$(vm_id "$1" 2>/dev/null) || return 0
	diag "state of '$1': $(state "$1")"
	diag_file "$QVM_ROOT/vms/$id/supervisor.log" 10
	diag_file "$QVM_ROOT/vms/$id/qemu.log" 10
	diag_file "$QVM_ROOT/vms/$id/console.log" "${EXPLAIN_CONSOLE_LINES:-10}"
}

section() { diag "[${SECONDS}s] $*"; }

runtime_left() {
	local f out=""
	while read -r f; do
		[ -n "$f" ] && out+="socket $f "
	done < <(find "$QVM_ROOT/run" -type s 2>/dev/null)
	for f in "$QVM_ROOT"/run/*.lock "$QVM_ROOT"/run/*/*.lock "$QVM_ROOT/journal/lock"; do
		[ -e "$f" ] || continue
		flock -n "$f" true || out+="held lock $f "
	done
	echo "$out"
}

# journal_state ID: the vm's state as its journal's files hold it
# ("ACTIVE/PROLOG", ...), read without qvm: every qvm read first settles a
# vm that nothing drives, which a test of what a crash left must not do
schema_violations() {
	jq -r '
	  paths as $p
	  | select(($p | map(tostring) | index("labels") or index("user")) | not)
	  | getpath($p) as $v
	  | ($p | map(tostring) | join(".")) as $at
	  | ($p[-1] | tostring) as $k
	  | if ($p[-1] | type) == "string" and ($v | type) == "number" and
	       ($k | test("(^|_)(time|created|since|date|started|expires|when|at|uptime)$"))
	    then "\($at): a time key without _ms"
	    elif ($p[-1] | type) == "string" and ($k | endswith("_ms")) and ($v | type) != "number"
	    then "\($at): \($v | tojson) is not a number of ms"
	    elif $v == "" then "\($at): an empty string instead of null"
	    else empty end'
}

journal_state() {
	"$PY" - "$QVM_ROOT/journal" "$1" <<'EOF'
import json, os, sys
d, vid = sys.argv[1], int(sys.argv[2])
st = None
snap = os.path.join(d, "snapshot.json")
if os.path.exists(snap):
    for v in json.load(open(snap)).get("state", {}).get("vms", []):
        if v.get("id") == vid:
            st = (v.get("state"), v.get("lcm"))
for line in open(os.path.join(d, "log")):
    parts = line.split(" ", 2)
    try:
        rec = json.loads(parts[2])
    except (ValueError, IndexError):
        continue
    if rec.get("id") == vid and "state" in rec and rec.get("type") in ("state", "define"):
        st = (rec["state"], rec.get("lcm"))
if st:
    print(st[0] + ("/" + st[1] if st[0] == "ACTIVE" and st[1] else ""))
EOF
}

open_intents() {
	"$PY" - "$QVM_ROOT/journal" "$1" <<'EOF'
import json, os, sys
d, vid = sys.argv[1], int(sys.argv[2])
pending = {}
snap = os.path.join(d, "snapshot.json")
if os.path.exists(snap):
    for k, v in json.load(open(snap)).get("state", {}).get("intents", {}).items():
        pending[int(k)] = v
for line in open(os.path.join(d, "log")):
    parts = line.split(" ", 2)
    try:
        seq, rec = int(parts[0]), json.loads(parts[2])
    except (ValueError, IndexError):
        continue
    if rec.get("type") == "intent":
        pending[seq] = rec
    elif rec.get("type") == "done":
        pending.pop(rec.get("intent"), None)
print(" ".join(sorted(v.get("op", "?") for v in pending.values() if v.get("id") == vid)))
EOF
}

vm_qmp() { "$PY" "$VM_SH_DIR/qmp.py" "$QVM_ROOT/run/$1/qmp.sock" "$2" ${3:+"$3"}; }

key_column_off() {
	awk 'NF == 0 { exit }
	{
		k = substr($0, 1, 11)
		if (k !~ /^[A-Z][A-Z0-9 -]*$/ || substr($0, 12, 1) != " " || length($0) < 13 ||
		    substr($0, 13, 1) == " ")
			print
	}'
}
