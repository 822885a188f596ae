# bench/lib.sh — timing helpers for qvm's benchmarks (bash).
# Every figure is printed next to a baseline measured in the same run, with
# their ratio: absolute times on a shared 2-core machine mean little alone.

# sample ARRAY CMD...: runs CMD once (output discarded) and appends its wall
# time in microseconds to the array ARRAY. Callers interleave the samples of
# a figure and of its baseline, so both see the same load on a shared host.
sample() {
	local -n sample_acc_=$1; shift
	local s e
	s=$EPOCHREALTIME
	"$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; return 1; }
	e=$EPOCHREALTIME
	sample_acc_+=($(( ${e/[.,]/} - ${s/[.,]/} )))
}

# median_of ARRAY: the median of ARRAY's samples (µs) in ms, two decimals
median_of() {
	local -n median_of_a_=$1
	printf '%s\n' "${median_of_a_[@]}" | median | awk '{printf "%.2f\n", $1 / 1000}'
}

# median: the median of the numbers on stdin, one a line
median() {
	sort -g | awk '{a[NR]=$1} END {if (NR == 0) {print 0; exit} m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print m}'
}

# peak_rss_kib CMD...: the command's peak resident set size in KiB, from GNU
# time's %M (wait4's ru_maxrss). time writes to a file (-o): the command's
# stderr is discarded, and a pipe could be held open by a daemon it forks.
peak_rss_kib() {
	local f rc=0
	f=$(mktemp "${BENCH_TMP:-${TMPDIR:-/tmp}}/rss.XXXXXX")
	/usr/bin/time -o "$f" -f '%M' "$@" >/dev/null 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		echo "bench: command failed ($rc): $*" >&2
		rm -f "$f"
		echo 0
		return 0
	fi
	tail -n 1 "$f"
	rm -f "$f"
}

# uss_kib PID: the process's private pages (Private_Clean + Private_Dirty
# of smaps_rollup) in KiB, 0 when it is gone
uss_kib() {
	awk '/^Private_(Clean|Dirty):/ { n += $2 } END { print n + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}

# report NAME VALUE UNIT BASELINE_NAME BASELINE_VALUE [GOAL]
report() {
	local ratio
	ratio=$(awk -v a="$2" -v b="$5" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
	printf '%-40s %9s %-3s | baseline %-36s %9s %-3s | %6sx %s\n' \
		"$1" "$2" "$3" "$4" "$5" "$3" "$ratio" "${6:+(goal $6)}"
}
