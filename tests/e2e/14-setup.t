#!/usr/bin/env bash
# The README's setup commands are what .ci/run runs, and `make check` installs
# nothing (its recipe has no apt-get and does not depend on `deps`).
. "$QVM_SOURCE/tests/lib/tap.sh"
cd "$QVM_SOURCE" || exit 1
# the first indented block of the README: its line that runs the tests
readme=$(awk '/^    /{f=1; print; next} f{exit}' README.md | grep check | sed 's/ *#.*//; s/^ *//')
ci=$(grep -vE '^(#|set |cd |$)' .ci/run | tail -1)
is "$ci" "$readme" "README's test command is what .ci/run runs"
recipe=$(make -n -p check 2>/dev/null | sed -n '/^check:/,/^$/p')
ok "make check's recipe has no apt-get" bash -c '! grep -q apt-get <<<"$1"' _ "$recipe"
ok "make check does not depend on deps" bash -c '! grep -qE "^check:(.* )?deps( |\$)" <<<"$1"' _ "$recipe"
done_testing
