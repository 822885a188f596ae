#!/usr/bin/env bash
# bench part "images": `qvm image import` of a 256 MiB file from a local
# HTTP server (tests/lib/httpd.py on 127.0.0.1) against curl(1) fetching
# the same file from the same server in the same run, samples interleaved.
# qvm also hashes (SHA-256), fsyncs and inspects the file; a second
# baseline, curl then sha256sum, does comparable hashing work, and a
# third, curl then sync(1) of the file, the same durability.
# Usage: bench/images.sh QVM WORKDIR  (called by bench/run.sh; RUNS_IMG
# samples each, default 5).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
QVM=$1
work=$2/images
RUNS_IMG=${RUNS_IMG:-5}
mkdir -p "$work/www"
dd if=/dev/urandom of="$work/www/img.raw" bs=1M count=256 status=none
python3 "$here/../tests/lib/httpd.py" --dir "$work/www" --port-file "$work/port" &
httpd=$!
# set -e would make the killed server's status (143) this script's
trap 'kill $httpd 2>/dev/null; wait $httpd 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
url=http://127.0.0.1:$(cat "$work/port")/img.raw
export QVM_ROOT=$work/root
# only the transfers are timed; removing the copies is not
qvm_one() { "$QVM" -q image import "$url" --name img; }
curl_one() { curl -sf -o "$work/c.raw" "$url"; }
curl_sha_one() { curl -sf -o "$work/c.raw" "$url" && sha256sum "$work/c.raw" >/dev/null; }
# qvm fsyncs the image before it enters the store; curl does not
curl_sync_one() { curl -sf -o "$work/c.raw" "$url" && sync "$work/c.raw"; }
q=() c=() cs=() cy=()
for ((r = 0; r < RUNS_IMG; r++)); do
	sample q qvm_one
	"$QVM" -q image delete img
	sample c curl_one
	rm -f "$work/c.raw"
	sample cs curl_sha_one
	rm -f "$work/c.raw"
	sample cy curl_sync_one
	rm -f "$work/c.raw"
done
# throughput in MiB/s from the median time (ms)
mibs() { awk -v ms="$1" 'BEGIN { printf "%.1f", 256 * 1000 / ms }'; }
qm=$(median_of q) cm=$(median_of c) csm=$(median_of cs) cym=$(median_of cy)
echo "== images (256 MiB from 127.0.0.1, $RUNS_IMG runs each, medians)"
report "qvm image import (time)" "$qm" ms "curl -o FILE (time)" "$cm"
report "qvm image import (MiB/s)" "$(mibs "$qm")" MiB "curl -o FILE (MiB/s)" "$(mibs "$cm")"
report "qvm image import (MiB/s)" "$(mibs "$qm")" MiB "curl + sha256sum (MiB/s)" "$(mibs "$csm")"
report "qvm image import (MiB/s)" "$(mibs "$qm")" MiB "curl + sync FILE (MiB/s)" "$(mibs "$cym")"
echo
