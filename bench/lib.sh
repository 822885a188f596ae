# bench/lib.sh — timing helpers for qvm's benchmarks (bash).
# Every figure is printed next to a baseline measured in the same run, with
# their ratio: absolute times on a shared 2-core machine mean little alone.

# now_ns: monotonic-enough wall clock in nanoseconds
now_ns() { date +%s%N; }

# median_ms RUNS CMD...: runs CMD RUNS times (output discarded), prints the
# median wall time in milliseconds with two decimals.
median_ms() {
	local runs=$1; shift
	local -a t=()
	local i s e
	for ((i = 0; i < runs; i++)); do
		s=$(now_ns)
		"$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; return 1; }
		e=$(now_ns)
		t+=($(( (e - s) / 1000 )))
	done
	printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f\n", m / 1000}'
}

# peak_rss_kib CMD...: the command's peak resident set size in KiB
peak_rss_kib() {
	local out
	out=$( { /usr/bin/time -f 'RSS %M' "$@" >/dev/null 2>/dev/null; } 2>&1 | awk '/^RSS/ {print $2}')
	echo "${out:-0}"
}

# report NAME VALUE UNIT BASELINE_NAME BASELINE_VALUE [GOAL]
report() {
	local ratio
	ratio=$(awk -v a="$2" -v b="$5" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
	printf '%-44s %10s %-4s | baseline %-30s %10s %-4s | ratio %6sx %s\n' \
		"$1" "$2" "$3" "$4" "$5" "$3" "$ratio" "${6:+(goal $6)}"
}
