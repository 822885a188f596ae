#!/bin/bash
# Installs with apt-get (Debian 12) what building and testing qvm need and is
# missing; `make deps` runs it. When everything is there it only asks dpkg
# (no network, well under a second).
set -euo pipefail

PKGS=(
	# build: compiler, make, libc headers; pkg-config and the libraries
	# the Makefile's PKGS name
	build-essential make pkg-config
	# `make check` also compiles everything with clang (SPEC: gcc and
	# clang clean), and checks the format with clang-format first
	clang clang-format
	libjansson-dev libnl-3-dev libnl-route-3-dev libcurl4-openssl-dev
	# the VMs: QEMU under TCG, qemu-img (its Depends bring the firmware:
	# seabios, ipxe-qemu's option ROMs for virtio-net-pci)
	qemu-system-x86 qemu-utils
	# the test guest (tests/guest/build.sh): apt-get downloads the kernel and
	# busybox-static itself; the host needs modinfo, cpio (gzip is essential)
	kmod cpio
	# ... and the libraries qemu-guest-agent's qemu-ga needs (ldd copies them
	# from the host into the guest), strip (binutils) for its libraries
	libglib2.0-0 libudev1 libnuma1 liburing2 libpcre2-8-0 binutils
	# e2e tests: ip (bridges, taps, netns), prove, python3 (tests/lib/qmp.py,
	# local HTTP server), /usr/bin/time for bench/; qemu-io (qemu-utils)
	# writes markers into disks, script (bsdutils) gives a pty, curl for
	# bench/, openssl makes a test CA
	iproute2 perl python3 time curl openssl
	# unit tests only: isoinfo, an independent reader of the cloud-init
	# seeds qvm writes itself (qvm never runs it)
	genisoimage
	# e2e: groff renders the man page to check it lists every command
	groff-base
	# e2e: jq checks every command's --json against qvm.8's schema (13-json.t)
	jq
	# e2e (72-install.t): systemd-analyze verifies the installed units;
	# bash-completion's functions drive qvm's completion (and its .pc
	# gives make install the completions folder)
	systemd bash-completion
	# e2e: promtool (package prometheus: the package ships it, there is no
	# smaller one) checks qvm metrics' text format (80-metrics.t); the
	# server it also ships is disabled below
	prometheus
	# e2e: a real VNC client (82-vnc.t): vncsnapshot takes a JPEG of a
	# display, vncpasswd (tigervnc-tools) writes its password file, djpeg
	# (libjpeg-turbo-progs) decodes the JPEG to check it is not blank
	vncsnapshot tigervnc-tools libjpeg-turbo-progs
	# e2e: the migration tests' destination host runs sshd (tests/lib/hosts.sh)
	openssh-server openssh-client
	# e2e: systemd-socket-activate passes qvm metrics its socket as a
	# socket unit would (80-metrics.t)
	systemd
)

installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PKGS[@]}" 2>/dev/null || true)
missing=()
for p in "${PKGS[@]}"; do
	grep -qx "$p installed" <<<"$installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]}" >&2
	echo "deps.sh: run as root: sudo make deps" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# the prometheus package enables its server on a systemd host: the tests
# need only its promtool
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
	systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
