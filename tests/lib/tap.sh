# shellcheck shell=bash
# TAP for the end-to-end tests (tests/e2e/*.t, bash): source this file.
# No plan up front: numbered ok/not ok lines, then done_testing prints 1..N
# and exits non-zero if anything failed. Safe under `set -u`; do not use
# `set -e` in tests (a failed check must not end the script). What the tests
# share about qvm and its VMs (run, json, the test guest, states) is in vm.sh.
#
#   ok NAME [CMD ARG...]      passes if CMD (when given) exits 0; CMD's
#                             stdout is dropped (it would break TAP)
#   not_ok NAME               a failure
#   skip NAME REASON          a TAP skip: the check cannot run here, and why
#   is GOT EXPECTED NAME      string equality
#   like GOT ERE NAME         bash regex match
#   diag TEXT...              "# TEXT" on stderr
#   diag_file FILE [N]        the last N (20) lines of FILE as diag
#   bail_out REASON           "Bail out!" and exit 1 (cleanup traps still run)
#   done_testing              1..N, exit 0 if all passed
#   wait_for_file_line FILE ERE TIMEOUT_S [AFTER]
#                             polls FILE until a line (after line number
#                             AFTER, default 0) matches ERE; sets TAP_LINE
#                             (without \r) and TAP_LINENO; returns 0, or 1 on
#                             timeout. TIMEOUT_S may have decimals.
#   line_count FILE           number of lines in FILE (0 if missing)
#   pids_matching STRING      pids of processes whose command line holds
#                             STRING (this shell and its parents excluded)
#   wait_pid_gone PID TIMEOUT_S   0 once PID is gone or a zombie, else 1
#   qvm_test_root             makes a temp folder /tmp/qvm-test.XXXXXX, sets
#                             and exports QVM_TEST_ROOT; at exit (also on
#                             failure, bail_out, SIGINT/TERM/HUP) kills
#                             every process whose command line mentions it
#                             (QEMU, qvm), unmounts and removes it
#                             (QVM_KEEP=1 keeps the folder to look at)
#   root_in_use DIR           true while the test that made the test root
#                             DIR still runs
#   on_exit CMD               runs CMD (eval) at exit, before the above;
#                             last registered runs first (taps, netns, ...)
#
# prove ignores stdout lines that are not TAP, but a stray line starting
# with "ok" would count: send chatter to stderr or diag. Test roots kept
# with QVM_KEEP=1 make 99-leftovers.t fail until removed.

TAP_N=0
TAP_FAILED=0
TAP_LINE=
TAP_LINENO=0

ok() {
	local name=$1
	shift
	if [ $# -gt 0 ] && ! "$@" >/dev/null; then
		not_ok "$name"
		return 1
	fi
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $name"
}

# skip NAME REASON: a TAP skip (the check cannot run here, and says why)
skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1 # SKIP $2"
}

not_ok() {
	TAP_N=$((TAP_N + 1))
	TAP_FAILED=$((TAP_FAILED + 1))
	echo "not ok $TAP_N - $1"
	# Point at the first caller outside this folder (vm.sh's checks too).
	local i=0 line file
	while read -r line _ file < <(caller $i); do
		[ "${file%/*}" = "${BASH_SOURCE[0]%/*}" ] || break
		i=$((i + 1))
	done
	diag "  at ${file:-?} line ${line:-?}"
	return 1
}

is() {
	if [ "$1" = "$2" ]; then
		ok "$3"
	else
		not_ok "$3"
		diag "       got: '$1'"
		diag "  expected: '$2'"
		return 1
	fi
}

like() {
	if [[ $1 =~ $2 ]]; then
		ok "$3"
	else
		not_ok "$3"
		diag "           got: '$1'"
		diag "  expected ERE: '$2'"
		return 1
	fi
}

diag() {
	local l
	while IFS= read -r l; do
		echo "# $l" >&2
	done <<<"$*"
}

diag_file() {
	[ -f "$1" ] || { diag "($1: no such file)"; return 0; }
	diag "--- last ${2:-20} lines of $1:"
	diag "$(tail -n "${2:-20}" "$1" | tr -d '\r')"
}

bail_out() {
	echo "Bail out! $*"
	exit 1
}

done_testing() {
	echo "1..$TAP_N"
	[ "$TAP_FAILED" -eq 0 ] || diag "failed $TAP_FAILED of $TAP_N"
	[ "$TAP_FAILED" -eq 0 ]
	exit $?
}

# Microseconds since the epoch.
_tap_now() { echo "${EPOCHREALTIME/./}"; }
# Seconds (decimals allowed) to microseconds.
_tap_us() {
	local s=${1%%.*} f=
	[[ $1 == *.* ]] && f=${1#*.}
	f=${f}000000
	echo $((10#${s:-0} * 1000000 + 10#${f:0:6}))
}

line_count() {
	if [ -f "$1" ]; then
		wc -l <"$1"
	else
		echo 0
	fi
}

wait_for_file_line() {
	local file=$1 re=$2 after=${4:-0} deadline m
	deadline=$(($(_tap_now) + $(_tap_us "$3")))
	while :; do
		if [ -f "$file" ]; then
			m=$(tail -n "+$((after + 1))" "$file" | tr -d '\r' | grep -a -n -m1 -E -- "$re")
			if [ -n "$m" ]; then
				# shellcheck disable=SC2034 # read by the tests
				TAP_LINENO=$((after + ${m%%:*}))
				# shellcheck disable=SC2034
				TAP_LINE=${m#*:}
				return 0
			fi
		fi
		[ "$(_tap_now)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

pids_matching() {
	local p st self=" $$ $BASHPID " q=$BASHPID args=()
	# Leave out this shell and every parent (a runner may name the root).
	while [ "$q" -gt 1 ] 2>/dev/null; do
		read -r st 2>/dev/null <"/proc/$q/stat" || break
		st=${st##*) }
		st=${st#* }
		q=${st%% *}
		self="$self$q "
	done
	# Builtins only: no fork per process.
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[[ $self == *" $p "* ]] && continue
		mapfile -d '' args 2>/dev/null <"/proc/$p/cmdline" || continue
		[[ "${args[*]}" == *"$1"* ]] && echo "$p"
	done
}

_tap_gone() {
	local st
	read -r st 2>/dev/null <"/proc/$1/stat" || return 0
	st=${st##*) }
	[ "${st%% *}" = Z ]
}

wait_pid_gone() {
	local deadline
	deadline=$(($(_tap_now) + $(_tap_us "$2")))
	until _tap_gone "$1"; do
		[ "$(_tap_now)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
	return 0
}

TAP_ON_EXIT=()
on_exit() { TAP_ON_EXIT+=("$1"); }

# Runs the on_exit commands, kills what runs under the test root, removes it.
_tap_cleanup() {
	local i p pids m
	for ((i = ${#TAP_ON_EXIT[@]} - 1; i >= 0; i--)); do
		eval "${TAP_ON_EXIT[i]}" >/dev/null 2>&1 || true
	done
	TAP_ON_EXIT=()
	[ -n "${QVM_TEST_ROOT:-}" ] && [ -d "$QVM_TEST_ROOT" ] || return 0
	pids=$(pids_matching "$QVM_TEST_ROOT")
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086 # a list of pids
		kill -TERM $pids 2>/dev/null
		for p in $pids; do
			wait_pid_gone "$p" 3 || kill -KILL "$p" 2>/dev/null
		done
		for p in $pids; do
			wait_pid_gone "$p" 3
		done
	fi
	# rm -rf must not walk into a mount (an ISO, a bind mount): unmount first.
	while read -r _ m _; do
		case "$m" in "$QVM_TEST_ROOT" | "$QVM_TEST_ROOT"/*) umount -l "$m" 2>/dev/null ;; esac
	done < <(sort -r -k2 /proc/mounts)
	if [ "${QVM_KEEP:-0}" = 1 ]; then
		diag "kept $QVM_TEST_ROOT"
	else
		rm -rf "$QVM_TEST_ROOT"
	fi
}

_tap_exit() {
	local rc=$?
	trap - EXIT
	_tap_cleanup
	exit "$rc"
}

qvm_test_root() {
	QVM_TEST_ROOT=$(mktemp -d /tmp/qvm-test.XXXXXX) || bail_out "mktemp failed"
	export QVM_TEST_ROOT
	# Who owns the root, so 99-leftovers.t can tell a root in use by a
	# test running elsewhere from a leftover: "PID STARTTIME".
	_tap_proc_id $$ >"$QVM_TEST_ROOT/.owner"
}

# "PID STARTTIME" of a live process (STARTTIME from /proc/PID/stat tells a
# reused pid apart); fails when PID is gone or a zombie.
_tap_proc_id() {
	local st f
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	read -ra f <<<"$st"
	[ "${f[0]}" != Z ] || return 1
	echo "$1 ${f[19]}"
}

# True when the test that made root $1 still runs.
root_in_use() {
	local owner
	read -r owner 2>/dev/null <"$1/.owner" || return 1
	[ "$(_tap_proc_id "${owner%% *}")" = "$owner" ]
}

# Set when sourced, so on_exit works without a test root. Tests register
# their cleanups with on_exit rather than with a trap of their own.
trap _tap_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
