#!/usr/bin/env bash
# No sequence of accepted commands makes the store unreadable, and a
# command's cost does not grow with the history: definitions are bounded
# (refused at create and update), the log is compacted by size as well as by
# record count, and an append never writes a log the reader would refuse.
# The journal's read limit is lowered to 256 KiB (QVM_JOURNAL_MAX_BYTES) so
# that a few dozen commands would pass it if anything let them.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
qvm_test_root
LIMIT=262144
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_JOURNAL_MAX_BYTES=$LIMIT
need_qvm
J=$QVM_ROOT/journal
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
pad=$(head -c 1000 /dev/zero | tr '\0' x)

# --- bounds at definition time ------------------------------------------------
labels=$(for i in $(seq 1 60); do printf -- '--label l%02d=%s ' "$i" "$pad"; done)
# shellcheck disable=SC2086
run "$QVM" create big --disk 1M $labels
is "$RC" 0 "a definition with 60 labels of 1000 bytes is accepted" || diag "$ERR"

"$PY" -c 'import json,sys; print(json.dumps({"name":"huge","memory":"64M","labels":{"l%03d"%i:"x"*1020 for i in range(64)},"user":{"u%03d"%i:"y"*1020 for i in range(64)}}))' >"$QVM_TEST_ROOT/huge.json"
run "$QVM" create huge --from "$QVM_TEST_ROOT/huge.json"
is "$RC" 2 "create --from of a definition over the whole bound exits 2"
like "$ERR" "the definition is [0-9]+ bytes as JSON, more than 131072" "... naming the bound"
"$PY" -c 'import json; print(json.dumps({"name":"many","labels":{"l%03d"%i:"x" for i in range(65)}}))' >"$QVM_TEST_ROOT/many.json"
run "$QVM" create many --from "$QVM_TEST_ROOT/many.json"
is "$RC" 2 "65 labels exit 2"
like "$ERR" "too many label entries: 65 \(at most 64\)" "... naming the count"
run "$QVM" create long --append "$(head -c 5000 /dev/zero | tr '\0' a)" --kernel /nonexistent
ok "a kernel command line of 5000 bytes is refused" test "$RC" != 0
run "$QVM" update big "l01=$(head -c 1100 /dev/zero | tr '\0' y)"
ok "update: a label value over 1024 bytes is refused" test "$RC" != 0
like "$ERR" "too long \(at most 1024 bytes\)" "... saying so"
run "$QVM" list
is "$RC" 0 "nothing refused was recorded: list works"

# --- many accepted commands: the store stays readable and small ----------------
failed=0 maxlog=0 maxsnap=0
for i in $(seq 1 40); do
	if ! "$QVM" update big "label.l$(printf %02d $((i % 60 + 1)))=$i$pad" >/dev/null 2>"$QVM_TEST_ROOT/err"; then
		failed=$((failed + 1)); diag "update $i: $(cat "$QVM_TEST_ROOT/err")"
	fi
	if [ $((i % 10)) = 0 ]; then
		"$QVM" disk-attach big --size 1M >/dev/null 2>&1 || failed=$((failed + 1))
		"$QVM" disk-detach big 1 >/dev/null 2>&1 || failed=$((failed + 1))
	fi
	"$QVM" list >/dev/null 2>"$QVM_TEST_ROOT/err" || { failed=$((failed + 1)); diag "list after $i: $(cat "$QVM_TEST_ROOT/err")"; }
	l=$(size "$J/log") s=$(size "$J/snapshot.json")
	[ "$l" -gt "$maxlog" ] && maxlog=$l
	[ "$s" -gt "$maxsnap" ] && maxsnap=$s
done
is "$failed" 0 "40 label updates of a 60 KiB definition and 4 disk attach/detach all worked, list after each"
ok "the log never passed the read limit ($maxlog bytes, limit $LIMIT)" test "$maxlog" -le "$LIMIT"
# compacted by size: at most an eighth of the limit, plus the one record
# (one definition) written after the last compaction
ok "the log stayed short, compacted by size ($maxlog bytes <= $((LIMIT / 8 + 131072)))" \
	test "$maxlog" -le $((LIMIT / 8 + 131072))
ok "the snapshot stayed within the limit ($maxsnap bytes)" test "$maxsnap" -le "$LIMIT"
run "$QVM" show big --json
is "$RC" 0 "show works"
like "$(json 'd["definition"]["labels"]["l41"][:2]' <<<"$OUT" 2>&1)" "40" "... with the last update's label"
run "$QVM" history big
is "$RC" 0 "history works"

# --- filling the store: refused, never unreadable ----------------------------------
refused=0
for i in $(seq 1 8); do
	# shellcheck disable=SC2086
	run "$QVM" create "fill$i" $labels
	[ "$RC" = 0 ] || { refused=$((refused + 1)); last_err=$ERR; }
	"$QVM" list >/dev/null 2>&1 || { ok "list works after create fill$i" false; break; }
done
ok "creates past what the store can hold are refused ($refused of 8)" test "$refused" -gt 0
like "${last_err:-}" "journal" "... with a message about the journal"
run "$QVM" list
is "$RC" 0 "the store is still readable: list works"
run "$QVM" delete fill1
is "$RC" 0 "a delete still works and frees room"
ok "the log is within the read limit" test "$(size "$J/log")" -le "$LIMIT"

done_testing
