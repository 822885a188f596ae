#!/usr/bin/env bash
# The image store end to end, against a real HTTP server on 127.0.0.1
# (tests/lib/httpd.py): import from a file and from a URL, list/show,
# the progress bar on a terminal and none on a pipe, a download resumed
# after the server cuts the connection (in the same run, and after a
# stall in the next run), checksum mismatch, redirects (http allowed,
# file:// refused), a resume whose file changed on the server (If-Range:
# it starts over), the partial file kept through a later HTTP error or
# connection failure, the size cap (also without Content-Length: chunked,
# or ended by the connection), HTTP errors, every hostile image of
# RELIABILITY.md (imported, and as a vm's disk through create --disk PATH
# and disk-attach --image PATH), VMs on store images (overlay with an explicit backing
# format; image delete refused while used), disk-saveas, and crash points
# in the middle of an import and a delete. Each refusal must leave nothing
# in the store folder.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/vm.sh"
need_qvm
SRC=${QVM_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
qvm_test_root
export QVM_ROOT=$QVM_TEST_ROOT/root QVM_ACCEL=tcg
STORE=$QVM_ROOT/images
W=$QVM_TEST_ROOT/www
mkdir -p "$W"
# a local import obeys the disk roots, as --disk does: the files served
# are imported from there too
export QVM_DISK_ROOTS=$W

# run CMD... (sets OUT, ERR and RC) and json EXPR: tests/lib/vm.sh
sha() { sha256sum "$1" | cut -d' ' -f1; }
# the store folder's files (hidden ones included, the lock left out)
store_files() { find "$STORE" -mindepth 1 ! -name .lock -printf '%f\n' 2>/dev/null | sort | tr '\n' ' '; }
# marker OFFSET BYTE FILE FORMAT: does FILE read BYTE over 64 KiB at OFFSET?
marker() {
	qemu-io -f "$4" -r -c "read -P $2 $1 64k" "$3" 2>&1 | grep -q "^read 65536/65536 bytes" &&
		! qemu-io -f "$4" -r -c "read -P $2 $1 64k" "$3" 2>&1 | grep -q "failed"
}

# ---- the images the server offers ------------------------------------------
qemu-img create -q -f qcow2 "$W/base.qcow2" 64M
qemu-io -f qcow2 -c "write -P 0xab 0 64k" "$W/base.qcow2" >/dev/null
dd if=/dev/urandom of="$W/big.raw" bs=1M count=24 status=none
printf 'just a few bytes of a raw disk\n' >"$W/small.raw"
# hostile ones, made with qemu-img
qemu-img create -q -f qcow2 -b "$W/base.qcow2" -F qcow2 "$W/h-backing.qcow2"
qemu-img create -q -f qcow2 -o data_file="$W/h-data.bin" "$W/h-datafile.qcow2" 64M
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$W/h-extents.vmdk" 5G
qemu-img create -q -f vmdk -o subformat=monolithicFlat "$W/h-flat.vmdk" 16M
prev="$W/base.qcow2"
for i in 1 2 3 4 5 6 7 8 9 10; do
	qemu-img create -q -f qcow2 -b "$prev" -F qcow2 "$W/h-chain$i.qcow2"
	prev="$W/h-chain$i.qcow2"
done
qemu-img create -q -f qcow2 -b "$W/base.qcow2" -F qcow2 "$W/h-loop.qcow2"
qemu-img rebase -q -u -f qcow2 -b "$W/h-loop.qcow2" -F qcow2 "$W/h-loop.qcow2"

# ---- the server ------------------------------------------------------------------
python3 "$SRC/tests/lib/httpd.py" --dir "$W" --port-file "$QVM_TEST_ROOT/port" \
	--log "$QVM_TEST_ROOT/http.log" 2>"$QVM_TEST_ROOT/httpd.err" &
HTTPD=$!
on_exit "kill $HTTPD; wait $HTTPD"
wait_for_file_line "$QVM_TEST_ROOT/port" '^[0-9]+$' 30 || bail_out "the test http server did not start"
U=http://127.0.0.1:$TAP_LINE

# ---- 1. import from a file; list; show -------------------------------------------------
run "$QVM" image list
is "$RC" 0 "image list on an empty store works"
like "$OUT" "^NAME +FORMAT +VSIZE +SIZE +CREATED +SOURCE" "image list prints its header"
run "$QVM" image import "$W/base.qcow2" --name base
is "$RC" 0 "import a local qcow2" || diag "$ERR"
like "$OUT" "imported image 'base': qcow2, 64M virtual, sha256 $(sha "$W/base.qcow2")" \
	"import says what it stored, with the file's sha256"
is "$(stat -c %a "$STORE")" 700 "the store folder is 0700"
is "$(stat -c %a "$STORE/base.qcow2") $(stat -c %a "$STORE/base.image.json")" "600 600" \
	"the image and its metadata are 0600"
run "$QVM" image show base
like "$OUT" "FORMAT +qcow2" "image show: format"
like "$OUT" "SHA256 +$(sha "$W/base.qcow2")" "image show: sha256"
like "$OUT" "SOURCE +$W/base.qcow2" "image show: source"
like "$OUT" "VSIZE +64M \(67108864 bytes\)" "image show: virtual size"
is "$(key_column_off <<<"$OUT")" "" "image show: KEY VALUE lines in the column show and host use"
run "$QVM" host
is "$(key_column_off <<<"$OUT")" "" "... as host prints them"
run "$QVM" --json image show base
is "$(json 'd["name"], d["format"], d["virtual_size"], d["path"]' <<<"$OUT")" \
	"base qcow2 67108864 $STORE/base.qcow2" "image show --json"
run "$QVM" image import "$W/base.qcow2" --name base
is "$RC" 1 "a second image of the same name is refused"
like "$ERR" "an image named 'base' already exists" "... saying so"
run "$QVM" image import "$W/base.qcow2" --name ../evil
is "$RC" 2 "an invalid image name is a usage error"
like "$ERR" "image name" "... naming the problem"
run "$QVM" image show nosuch
like "$RC:$ERR" "^1:.*no image named 'nosuch' in the image store" "show of a missing image"

# ---- 2. import from a URL, with progress or without -----------------------------------
run "$QVM" image import "$U/small.raw" --name small --sha256 "$(sha "$W/small.raw")"
is "$RC" 0 "import over http with the right sha256" || diag "$ERR"
is "$ERR" "" "no progress output when stderr is not a terminal"
run "$QVM" --json image list
is "$(json '" ".join(i["name"] + ":" + i["format"] for i in d)' <<<"$OUT")" "base:qcow2 small:raw" \
	"image list --json: both images, formats probed"
is "$(json '[i["source"] for i in d if i["name"] == "small"][0]' <<<"$OUT")" "$U/small.raw" \
	"the URL is recorded as the source"
script -qefc "$QVM image import $U/big.raw --name big-tty" /dev/null >"$QVM_TEST_ROOT/tty.out" 2>&1
is "$?" 0 "import under a pseudo-terminal" || diag_file "$QVM_TEST_ROOT/tty.out"
like "$(tr '\r' '\n' <"$QVM_TEST_ROOT/tty.out")" "100% \[#+\] 24\.0M/24\.0M [^ ]+/s ETA" \
	"a progress bar with percent, rate and ETA on a terminal"
run "$QVM" image import "$U/big.raw" --name big-pipe
is "$RC:$ERR" "0:" "the same import on a pipe prints no progress"
run "$QVM" image import "$U/redirect/small.raw" --name small-redir
is "$RC" 0 "a redirect to another http URL is followed" || diag "$ERR"

# ---- 2b. https: verified, with --ca for a private CA --------------------------------------
T=$QVM_TEST_ROOT/tls
mkdir -p "$T"
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 \
	-subj /CN=qvm-test-ca 2>/dev/null &&
	openssl req -newkey rsa:2048 -nodes -keyout "$T/srv.key" -out "$T/srv.csr" \
		-subj /CN=127.0.0.1 2>/dev/null &&
	printf 'subjectAltName=IP:127.0.0.1\n' >"$T/ext" &&
	openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
		-out "$T/srv.pem" -days 2 -extfile "$T/ext" 2>/dev/null; then
	python3 "$SRC/tests/lib/httpd.py" --dir "$W" --port-file "$T/port" --tls "$T/srv.pem" "$T/srv.key" \
		2>"$QVM_TEST_ROOT/httpsd.err" &
	HTTPSD=$!
	on_exit "kill $HTTPSD; wait $HTTPSD"
	wait_for_file_line "$T/port" '^[0-9]+$' 30 || bail_out "the test https server did not start"
	S=https://127.0.0.1:$TAP_LINE
	run "$QVM" image import "$S/small.raw" --name tls
	is "$RC" 1 "https from a server whose CA is not trusted is refused"
	like "$ERR" "TLS verification of '127.0.0.1' failed: .*; give the server's CA certificate with --ca FILE" \
		"... saying to give its CA with --ca"
	run "$QVM" image import "$S/small.raw" --name tls --ca "$T/ca.pem" --sha256 "$(sha "$W/small.raw")"
	is "$RC" 0 "with --ca the same download is verified and imported" || diag "$ERR"
	run "$QVM" image delete tls
else
	not_ok "make a test CA and server certificate with openssl"
fi

# ---- 3. resume ---------------------------------------------------------------------------------
run "$QVM" image import "$U/cut/5000000/big.raw" --name big --sha256 "$(sha "$W/big.raw")"
is "$RC" 0 "import while the server cuts the connection after 5 MB" || diag "$ERR"
ok "the download went on with a Range request, If-Range on the first response's ETag" \
	grep -qE '^GET /cut/5000000/big.raw range=bytes=5000000- if-range="[0-9a-f]+-[0-9a-f]+"$' "$QVM_TEST_ROOT/http.log"
is "$(sha "$STORE/big.raw")" "$(sha "$W/big.raw")" "the stored file is the whole file"
is "$("$QVM" --json image show big | json 'd["sha256"]')" "$(sha "$W/big.raw")" \
	"its recorded sha256 is right"
run "$QVM" image import "$U/stallonce/3000000/big.raw" --name big2 --stall-timeout 2
is "$RC" 1 "a stalled download is given up"
like "$ERR" "stalled \(no data for 2 s\) after 3000000 bytes; run the same import again to resume" \
	"... saying how far it got and how to resume"
is "$("$QVM" --json image list | json '"big2" in [i["name"] for i in d]')" False \
	"a stalled download is no image"
run "$QVM" image import "$U/stallonce/3000000/big.raw" --name big2 --stall-timeout 2 \
	--sha256 "$(sha "$W/big.raw")"
is "$RC" 0 "the same import again completes it" || diag "$ERR"
ok "... resuming with a Range request from where it stopped (If-Range: the ETag kept with the partial file)" \
	grep -qE '^GET /stallonce/3000000/big.raw range=bytes=3000000- if-range="[0-9a-f]+-[0-9a-f]+"$' "$QVM_TEST_ROOT/http.log"
is "$(sha "$STORE/big2.raw")" "$(sha "$W/big.raw")" "... and the file is whole and right"

# the file changed on the server between two runs: If-Range no longer
# matches, the server sends it whole, and the download starts over (a
# plain Range would have spliced the new file's end onto the old start)
cp "$W/big.raw" "$W/changing.raw"
run "$QVM" image import "$U/stallonce/3000000/changing.raw" --name changing --stall-timeout 2
like "$RC:$ERR" "^1:.*stalled" "a download stalls with 3000000 bytes of a file"
ok "... its partial file keeps the first response's validator" compgen -G "$STORE/.qvm-partial-changing-*.validator"
dd if=/dev/urandom of="$W/changing.raw" bs=1M count=24 conv=notrunc status=none
run "$QVM" image import "$U/stallonce/3000000/changing.raw" --name changing --stall-timeout 2 \
	--sha256 "$(sha "$W/changing.raw")"
is "$RC" 0 "the file changes on the server; the same import completes with the new file's checksum" || diag "$ERR"
ok "... it asked with If-Range" \
	grep -qE '^GET /stallonce/3000000/changing.raw range=bytes=3000000- if-range="' "$QVM_TEST_ROOT/http.log"
is "$(sha "$STORE/changing.raw")" "$(sha "$W/changing.raw")" "... and stored the new file whole, not spliced"
ok "... leaving no validator behind" eval '! compgen -G "$STORE/.qvm-partial-changing-*"'
run "$QVM" image delete changing
rm -f "$W/changing.raw"

# the same, through a server that honours Range but not If-Range: the
# answer's own validator differs from the one kept, so qvm starts over
cp "$W/big.raw" "$W/blind.raw"
run "$QVM" image import "$U/ifrangeblind/3000000/blind.raw" --name blind --stall-timeout 2
like "$RC:$ERR" "^1:.*stalled" "a download stalls with 3000000 bytes of a file"
sleep 1 # a new mtime, so a new ETag and Last-Modified
dd if=/dev/urandom of="$W/blind.raw" bs=1M count=24 conv=notrunc status=none
run "$QVM" image import "$U/ifrangeblind/3000000/blind.raw" --name blind --stall-timeout 2
is "$RC" 0 "the file changes; a server that ignores If-Range sends a 206 of the new file: the import completes" ||
	diag "$ERR"
is "$(sha "$STORE/blind.raw")" "$(sha "$W/blind.raw")" "... with the new file whole, not the old start spliced to its end"
is "$(grep '^GET /ifrangeblind/3000000/blind.raw ' "$QVM_TEST_ROOT/http.log" | cut -d' ' -f3 | tr '\n' ' ')" \
	"range=- range=bytes=3000000- range=- " \
	"... it resumed with a Range, saw the answer's changed validator and asked again from zero"
run "$QVM" image delete blind
rm -f "$W/blind.raw"

# a later attempt that gets an HTTP error keeps the partial file for a resume
cp -p "$W/big.raw" "$W/flaky.raw"
run "$QVM" image import "$U/stallonce/2000000/flaky.raw" --name flaky --stall-timeout 2
like "$RC:$ERR" "^1:.*stalled.*after 2000000 bytes" "a download stalls after 2000000 bytes"
mv "$W/flaky.raw" "$W/flaky.away"
run "$QVM" image import "$U/stallonce/2000000/flaky.raw" --name flaky --stall-timeout 2
is "$RC" 1 "the next attempt gets HTTP 404"
like "$ERR" "answered HTTP 404; check the URL; the 2000000 bytes downloaded are kept: run the same import again to resume it, or qvm image delete flaky to discard them" \
	"... and says the bytes so far are kept"
ok "... they are" compgen -G "$STORE/.qvm-partial-flaky-*"
mv "$W/flaky.away" "$W/flaky.raw"
run "$QVM" image import "$U/stallonce/2000000/flaky.raw" --name flaky --sha256 "$(sha "$W/big.raw")"
is "$RC" 0 "once the file is back, the same import completes" || diag "$ERR"
is "$(grep -c '^GET /stallonce/2000000/flaky.raw range=bytes=2000000- if-range="' "$QVM_TEST_ROOT/http.log")" 2 \
	"... both later attempts resumed from 2000000 bytes"
run "$QVM" image delete flaky
rm -f "$W/flaky.raw"

# ... and so does one that cannot connect: a second server, stopped, then back on its port
python3 "$SRC/tests/lib/httpd.py" --dir "$W" --port-file "$QVM_TEST_ROOT/port2" \
	--log "$QVM_TEST_ROOT/http2.log" 2>>"$QVM_TEST_ROOT/httpd.err" &
HTTPD2=$!
on_exit "kill $HTTPD2"
wait_for_file_line "$QVM_TEST_ROOT/port2" '^[0-9]+$' 30 || bail_out "the second test http server did not start"
P2=$TAP_LINE
run "$QVM" image import "http://127.0.0.1:$P2/stallonce/2000000/big.raw" --name down --stall-timeout 2
like "$RC:$ERR" "^1:.*stalled.*after 2000000 bytes" "a download from a second server stalls after 2000000 bytes"
kill "$HTTPD2"
wait "$HTTPD2" 2>/dev/null
run "$QVM" image import "http://127.0.0.1:$P2/stallonce/2000000/big.raw" --name down --stall-timeout 2
is "$RC" 1 "the server is gone: the next attempt cannot connect"
like "$ERR" "cannot connect to '127.0.0.1'.*; the 2000000 bytes downloaded are kept" "... and keeps the bytes so far"
ok "... they are" compgen -G "$STORE/.qvm-partial-down-*"
rm -f "$QVM_TEST_ROOT/port2"
python3 "$SRC/tests/lib/httpd.py" --dir "$W" --port-file "$QVM_TEST_ROOT/port2" --port "$P2" \
	--log "$QVM_TEST_ROOT/http2.log" 2>>"$QVM_TEST_ROOT/httpd.err" &
HTTPD2=$!
on_exit "kill $HTTPD2"
wait_for_file_line "$QVM_TEST_ROOT/port2" '^[0-9]+$' 30 || bail_out "the second test http server did not come back"
# the new server stalls its first request again: 2000000 more bytes
run "$QVM" image import "http://127.0.0.1:$P2/stallonce/2000000/big.raw" --name down --stall-timeout 2
like "$RC:$ERR" "^1:.*stalled.*after 4000000 bytes" "the server is back: the download resumes from 2000000 bytes"
run "$QVM" image import "http://127.0.0.1:$P2/stallonce/2000000/big.raw" --name down --sha256 "$(sha "$W/big.raw")"
is "$RC" 0 "... and the next run completes it" || diag "$ERR"
kill "$HTTPD2"
wait "$HTTPD2" 2>/dev/null
run "$QVM" image delete down

run "$QVM" image import "$U/stall/2000000/big.raw" --name given-up --stall-timeout 2
like "$RC:$ERR" "^1:.*stalled" "another stalled download"
ok "... keeps its partial file" compgen -G "$STORE/.qvm-partial-given-up-*"
run "$QVM" image delete given-up
is "$RC:$OUT" "0:discarded 1 partial download of image 'given-up'" \
	"image delete of a download given up discards its partial file"

expected=$(store_files)
like "$expected" "^base.image.json base.qcow2 big" "the store holds only images (no partial files)"

# ---- 4. refusals that leave nothing ---------------------------------------------------------
run "$QVM" image import "$U/wrong/small.raw" --name w --sha256 "$(sha "$W/small.raw")"
is "$RC" 1 "a checksum mismatch is refused"
like "$ERR" "SHA-256 is [0-9a-f]{64}, not $(sha "$W/small.raw") as given; nothing was imported" \
	"... with both checksums"
is "$(store_files)" "$expected" "... leaving nothing in the store, no partial file"
run "$QVM" image import "$U/redirect-file/etc/passwd" --name f
is "$RC" 1 "a redirect to file:// is refused"
like "$ERR" "leads to 'file:///etc/passwd', which is not http or https" "... naming the target"
is "$(store_files)" "$expected" "... leaving nothing"
run "$QVM" image import "file://$W/small.raw" --name f
like "$RC:$ERR" "^1:.*only http and https URLs" "a file:// URL is refused"
run "$QVM" image import "$U/big.raw" --name capped --max-size 1M
is "$RC" 1 "a download over the size cap is refused"
like "$ERR" "larger than the size cap of 1048576 bytes; raise --max-size" "... saying what to do"
is "$(store_files)" "$expected" "... leaving nothing"
run "$QVM" image import "$U/chunked/big.raw" --name capped --max-size 1M
is "$RC" 1 "a chunked download (no Content-Length) over the size cap is refused"
like "$ERR" "larger than the size cap of 1048576 bytes" "... by the count of the bytes as they arrive"
is "$(store_files)" "$expected" "... leaving nothing"
run "$QVM" image import "$U/nolength/big.raw" --name capped --max-size 1M
is "$RC" 1 "a download without Content-Length, ended by the connection, over the size cap is refused"
like "$ERR" "larger than the size cap of 1048576 bytes" "... saying so"
is "$(store_files)" "$expected" "... leaving nothing"
run "$QVM" image import "$U/chunked/small.raw" --name chunked --sha256 "$(sha "$W/small.raw")"
is "$RC" 0 "a chunked download under the cap works" || diag "$ERR"
run "$QVM" image delete chunked
run "$QVM" image import "$U/redirect/big.raw" --name capped --max-size 1M
like "$RC:$ERR" "^1:.*size cap" "the size cap holds after a redirect too"
run "$QVM" image import "$U/status/404/small.raw" --name nf
like "$RC:$ERR" "^1:.*server at '127.0.0.1' answered HTTP 404; check the URL" "an HTTP 404 names the status and host"
run "$QVM" image import "$U/small.raw" --name x --format vmdk
is "$RC" 2 "--format other than qcow2/raw is a usage error"
is "$(store_files)" "$expected" "nothing left by the failed downloads"

# ---- 5. hostile images ----------------------------------------------------------------------------
hostile() { # NAME SOURCE ERE [import flags]
	local name=$1 src=$2 re=$3
	shift 3
	run "$QVM" image import "$src" --name "$name" "$@"
	is "$RC" 1 "$name is refused"
	like "$ERR" "$re" "... $name: the reason"
	is "$(store_files)" "$expected" "... $name: nothing left"
}
hostile backing "$W/h-backing.qcow2" "'$W/h-backing.qcow2' has a backing file \('$W/base.qcow2'\)"
hostile backing-url "$U/h-backing.qcow2" "'$U/h-backing.qcow2' has a backing file"
hostile datafile "$W/h-datafile.qcow2" "has an external data file \('$W/h-data.bin'\)"
hostile extents "$W/h-extents.vmdk" "is a VMDK image .*several extent files"
hostile extents-url "$U/h-extents.vmdk" "is a VMDK image .*several extent files"
hostile flat "$W/h-flat.vmdk" "is a VMDK image"
hostile qcow2-as-raw "$W/base.qcow2" "contains a qcow2 image but was declared raw" --format raw
hostile raw-as-qcow2 "$W/small.raw" "contains a raw image but was declared qcow2" --format qcow2
hostile chain "$W/h-chain10.qcow2" "has a backing file \('$W/h-chain9.qcow2'\)"
hostile loop "$W/h-loop.qcow2" "has a backing file \('$W/h-loop.qcow2'\)"

# ---- 5a. the same hostile images as a vm's disk: create --disk PATH, disk-attach --image PATH
# (plus the classic: a VMDK descriptor declared raw whose extent is a FIFO,
# which a probing qemu-img would open and wait on)
mkfifo "$W/h-extent.fifo"
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 8 FLAT "%s" 0\n' \
	"$W/h-extent.fifo" >"$W/h-fifo.img"
run "$QVM" create host --memory 128M --disk 16M
is "$RC" 0 "a vm to attach hostile images to" || diag "$ERR"
hid=$(vm_id host)
vm_folders=$(ls "$QVM_ROOT/vms" | tr '\n' ' ')
host_files=$(ls -A "$QVM_ROOT/vms/$hid" | tr '\n' ' ')
host_disks() { "$QVM" --json show host | json '" ".join(str(x["id"]) for x in d["definition"]["disks"])'; }
hostile_disk() { # NAME FILE FORMAT(or "") ERE
	local name=$1 file=$2 fmt=$3 re=$4
	run env QVM_DISK_ROOTS="$W" "$QVM" create "d-$name" --memory 128M --disk "$file${fmt:+,format=$fmt}"
	is "$RC" 1 "create --disk $name is refused"
	like "$ERR" "^qvm: cannot create vm 'd-$name': disk 0: .*$re" "... create --disk $name: the reason"
	like "$("$QVM" show "d-$name" 2>&1)" "no vm named 'd-$name'" "... create --disk $name: no vm"
	is "$(ls "$QVM_ROOT/vms" | tr '\n' ' ')" "$vm_folders" "... create --disk $name: no vm folder"
	run env QVM_DISK_ROOTS="$W" "$QVM" disk-attach host --image "$file" ${fmt:+--format "$fmt"}
	is "$RC" 1 "disk-attach --image $name is refused"
	like "$ERR" "$re" "... disk-attach --image $name: the reason"
	is "$(host_disks)" "0" "... disk-attach --image $name: the definition is unchanged"
	is "$(ls -A "$QVM_ROOT/vms/$hid" | tr '\n' ' ')" "$host_files" "... disk-attach --image $name: no file left"
	is "$(store_files)" "$expected" "... $name: the store is unchanged"
}
hostile_disk backing "$W/h-backing.qcow2" "" "'$W/h-backing.qcow2' has a backing file \('$W/base.qcow2'\)"
hostile_disk datafile "$W/h-datafile.qcow2" "" "has an external data file \('$W/h-data.bin'\)"
hostile_disk extents "$W/h-extents.vmdk" "" "is a VMDK made of 3 extent files \(the first is 'h-extents-s001.vmdk'\)"
hostile_disk extents-raw "$W/h-extents.vmdk" raw "is a VMDK made of 3 extent files"
hostile_disk flat "$W/h-flat.vmdk" raw "is a VMDK whose data lives in another file \('h-flat-flat.vmdk'\)"
hostile_disk fifo "$W/h-fifo.img" raw "is a VMDK whose data lives in another file \('$W/h-extent.fifo'\)"
hostile_disk qcow2-as-raw "$W/base.qcow2" raw "contains a qcow2 image but was declared raw"
hostile_disk raw-as-qcow2 "$W/small.raw" qcow2 "contains a raw image but was declared qcow2"
hostile_disk chain "$W/h-chain10.qcow2" "" "has a backing file \('$W/h-chain9.qcow2'\)"
hostile_disk loop "$W/h-loop.qcow2" "" "has a backing file \('$W/h-loop.qcow2'\)"
run "$QVM" delete host
is "$RC" 0 "delete the vm the images were attached to" || diag "$ERR"
rm -f "$W/h-extent.fifo"

# ---- 5b. crash points: an import or delete killed half-way -------------------------------------
run env QVM_CRASH_AT=image-commit "$QVM" image import "$W/small.raw" --name crashed
is "$RC" 99 "an import killed between moving the file and writing its metadata"
is "$("$QVM" --json image list | json '"crashed" in [i["name"] for i in d]')" False \
	"... is no image"
run "$QVM" image import "$W/small.raw" --name crashed
is "$RC" 0 "the same import afterwards works (the leftover is settled)" || diag "$ERR"
run env QVM_CRASH_AT=image-delete "$QVM" image delete crashed
is "$RC" 99 "a delete killed between removing the metadata and the file"
like "$("$QVM" image show crashed 2>&1)" "no image named 'crashed'" "... has deleted the image"
# a temporary copy whose maker died (old, unlocked) and one still held
printf x >"$STORE/.qvm-import-dead01"
printf x >"$STORE/.qvm-import-held01"
touch -d '5 minutes ago' "$STORE/.qvm-import-dead01" "$STORE/.qvm-import-held01"
flock -x "$STORE/.qvm-import-held01" sleep 60 &
HOLDER=$!
on_exit "kill $HOLDER"
sleep 0.3
run "$QVM" image import "$W/small.raw" --name other
is "$RC" 0 "the next import works" || diag "$ERR"
ok "... and removes an abandoned temporary copy" test ! -e "$STORE/.qvm-import-dead01"
ok "... but not one another qvm still holds" test -e "$STORE/.qvm-import-held01"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null
rm -f "$STORE/.qvm-import-held01"
run "$QVM" image delete other
is "$(store_files)" "$expected" "the next store change removes its file; nothing else is left"

# ---- 6. VMs on store images -------------------------------------------------------------------------
run "$QVM" create vm1 --memory 128M --disk image=base --disk small,bus=scsi
is "$RC" 0 "create a vm on store images (image=NAME and a bare NAME)" || diag "$ERR"
vm1dir=$QVM_ROOT/vms/$(vm_id vm1)
d0=$vm1dir/disk0.qcow2
d1=$vm1dir/disk1.qcow2
info0=$(qemu-img info --output=json -f qcow2 "$d0")
is "$(json 'd["backing-filename"], d["backing-filename-format"]' <<<"$info0")" \
	"$STORE/base.qcow2 qcow2" "disk 0 is an overlay on the store file, backing format qcow2"
is "$(qemu-img info --output=json -f qcow2 "$d1" | json 'd["backing-filename-format"]')" raw \
	"disk 1 is an overlay declaring its base raw"
run "$QVM" create vm-bad --disk image=nosuch
like "$RC:$ERR" "^1:.*no image named 'nosuch' in the image store" "create on a missing image is refused"
run "$QVM" create vm-bad --disk base,format=raw
like "$RC:$ERR" "^1:.*image 'base' is qcow2, not raw" "a format= contradicting the store is refused"
run "$QVM" image delete base
is "$RC" 1 "image delete is refused while a vm uses the image"
like "$ERR" "cannot delete image 'base': vm 'vm1' uses it" "... naming the vm"
ok "... and the image is still there" test -f "$STORE/base.qcow2"

# ---- 7. disk-saveas -----------------------------------------------------------------------------------
qemu-io -f qcow2 -c "write -P 0xcd 1M 64k" "$d0" >/dev/null
run "$QVM" disk-saveas vm1 0 saved
is "$RC" 0 "disk-saveas of a vm that never ran" || diag "$ERR"
sinfo=$(qemu-img info --output=json -f qcow2 "$STORE/saved.qcow2")
is "$(json 'd["format"], "backing-filename" in d' <<<"$sinfo")" "qcow2 False" \
	"the saved image is a flat qcow2 (no backing file)"
ok "it holds the base image's data" marker 0 0xab "$STORE/saved.qcow2" qcow2
ok "and what was written to the vm's disk" marker 1M 0xcd "$STORE/saved.qcow2" qcow2
is "$("$QVM" --json image show saved | json 'd["source"], d["sha256"] == "'"$(sha "$STORE/saved.qcow2")"'"')" \
	"vm 'vm1' disk 0 True" "its metadata names its origin and its sha256"
run "$QVM" disk-saveas vm1 0 saved
like "$RC:$ERR" "^1:.*an image named 'saved' already exists" "disk-saveas onto an existing name is refused"
# disk-saveas killed half-way: after the flattening, and between moving the
# image into place and writing its metadata
run env QVM_CRASH_AT=saveas-after-convert "$QVM" disk-saveas vm1 0 again
is "$RC" 99 "disk-saveas killed after qemu-img convert"
like "$("$QVM" image show again 2>&1)" "no image named 'again'" "... made no image"
ok "... its flattened copy is left, hidden" compgen -G "$STORE/.qvm-saveas-*"
touch -d '5 minutes ago' "$STORE"/.qvm-saveas-*
run env QVM_CRASH_AT=image-commit "$QVM" disk-saveas vm1 0 again
is "$RC" 99 "disk-saveas killed between moving the image in and recording it"
like "$("$QVM" image show again 2>&1)" "no image named 'again'" "... made no image"
ok "... the earlier abandoned copy is gone" eval '! compgen -G "$STORE/.qvm-saveas-*"'
run "$QVM" disk-saveas vm1 0 again
is "$RC" 0 "the same disk-saveas afterwards works (the leftovers are settled)" || diag "$ERR"
ok "... the saved image reads what the disk holds" marker 1M 0xcd "$STORE/again.qcow2" qcow2
is "$(find "$STORE" -name '.qvm-*' | wc -l)" 0 "... and no temporary file or change marker is left in the store"
run "$QVM" image delete again

run "$QVM" disk-saveas vm1 7 other
like "$RC:$ERR" "^1:.*vm 'vm1' has no disk 7" "disk-saveas of a missing disk is refused"
run "$QVM" create vm2 --memory 128M --disk saved
is "$RC" 0 "a new vm on the saved image" || diag "$ERR"
ok "its disk reads the marker through the overlay" marker 1M 0xcd "$QVM_ROOT/vms/$(vm_id vm2)/disk0.qcow2" qcow2

# disk-saveas of a running vm is refused: a vm whose qemu runs (no guest needed)
run "$QVM" create vm3 --memory 128M --disk saved
run "$QVM" start vm3 --no-wait
if [ "$RC" = 0 ]; then
	run "$QVM" disk-saveas vm3 0 live
	is "$RC" 1 "disk-saveas of an ACTIVE vm is refused"
	like "$ERR" "while it is ACTIVE/[A-Z]+: its disk is in use; power it off first \(qvm poweroff vm3\)" \
		"... saying to power it off"
	ok "... and makes no image" test ! -e "$STORE/live.image.json"
	run "$QVM" delete vm3
	is "$RC" 0 "delete the running vm" || diag "$ERR"
else
	not_ok "start vm3 to test disk-saveas on a running vm"
	diag "$ERR"
fi

# ---- 8. delete once unused ------------------------------------------------------------------------
run "$QVM" delete vm1
is "$RC" 0 "delete vm1" || diag "$ERR"
run "$QVM" image delete base
is "$RC" 0 "image delete works once no vm uses the image" || diag "$ERR"
ok "the image file and metadata are gone" test ! -e "$STORE/base.qcow2" -a ! -e "$STORE/base.image.json"
run "$QVM" image delete saved
like "$RC:$ERR" "^1:.*vm 'vm2' uses it" "the saved image is in use by vm2"
run "$QVM" delete vm2
run "$QVM" image delete saved
is "$RC" 0 "then it can go too"
for n in small small-redir big big2 big-tty big-pipe; do
	"$QVM" -q image delete "$n" || not_ok "delete $n"
done
is "$(store_files)" "" "the store is empty at the end"

is "$(pids_matching "$QVM_ROOT")" "" "no qemu or supervisor runs under the test root at the end"
is "$(runtime_left)" "" "no socket and no held lock is left under the root"
done_testing
