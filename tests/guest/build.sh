#!/bin/bash
# Builds the test guest (shared TESTING.md, tests/guest/README.md) into OUTDIR:
# vmlinuz (Debian's cloud kernel), initrd.img (busybox-static, tests/guest/init
# and a few modules) and append (the kernel command line to boot it with).
# Both packages come from `apt-get download` + `dpkg-deb -x`: nothing is
# installed on the host. A stamp with the package versions and the hashes of
# this script and of init makes a second run a no-op.
#
# usage: tests/guest/build.sh [OUTDIR]      (default build/guest)
set -euo pipefail

out=${1:-build/guest}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Modules the guest loads, in the order given here; build.sh checks every
# module's dependencies (modinfo -F depends) and puts any missing one first.
# evdev+button: ACPI power button as an input event for acpid.
# virtio_*: disks, NICs, console, balloon on virtio-pci (legacy and modern).
# cdrom+isofs: the cidata seed (qvm attaches it as a read-only virtio disk).
# scsi/sd_mod/sr_mod/virtio_scsi/libata/ata_piix: scsi-hd and scsi-cd on
# virtio-scsi, ide-hd and ide-cd on the pc machine's PIIX (ata_piix costs
# ~0.2 s of boot on pc, nothing on q35). This kernel has no AHCI driver:
# ide-hd/ide-cd on q35 stay invisible to the guest.
MODULES=(evdev virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
	virtio_pci virtio_blk failover net_failover virtio_net button
	virtio_console virtio_balloon cdrom isofs
	scsi_common scsi_mod sd_mod sr_mod virtio_scsi libata ata_piix)

APPEND="console=ttyS0 panic=-1 quiet"

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "guest: $*" >&2; }

mkdir -p "$out/debs"
out=$(cd "$out" && pwd)
# One build at a time per OUTDIR.
exec 9>"$out/.lock"
flock 9

updated=
apt_update() {
	[ -z "$updated" ] || return 1
	[ "$(id -u)" = 0 ] || return 1
	log "apt-get update"
	apt-get update -qq >&2 || return 1
	updated=1
}

# Sets kpkg kver bver from the local package lists (no network).
resolve() {
	local dep
	dep=$(apt-cache show --no-all-versions linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-cloud-amd64\) (= \([^)]*\)).*/\1 \2/p' |
		head -n1) || true
	kpkg=${dep% *}
	kver=${dep#* }
	bver=$(apt-cache show --no-all-versions busybox-static 2>/dev/null |
		sed -n 's/^Version: //p' | head -n1) || true
	gver=$(apt-cache show --no-all-versions qemu-guest-agent 2>/dev/null |
		sed -n 's/^Version: //p' | head -n1) || true
	[ -n "$dep" ] && [ -n "$bver" ] && [ -n "$gver" ]
}

hashes="build.sh=$(sha256sum <"$here/build.sh" | cut -d' ' -f1)
init=$(sha256sum <"$here/init" | cut -d' ' -f1)"
built() {
	[ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ -f "$out/append" ]
}

# apt-cache takes most of a second: while the package lists are the ones
# seen at the last build, the versions in the stamp still hold.
lists=$(stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null | sha256sum | cut -d' ' -f1)
if built && [ -f "$out/stamp" ] && [ "$(cat "$out/lists" 2>/dev/null)" = "$lists" ] &&
	[ "$(sed -n '/^build.sh=/,$p' "$out/stamp")" = "$hashes" ]; then
	exit 0
fi

if ! resolve; then
	# shellcheck disable=SC2015 # die when either fails
	apt_update && resolve ||
		die "cannot find linux-image-cloud-amd64, busybox-static and qemu-guest-agent in the package lists; run as root: apt-get update"
fi
make_stamp() {
	stamp="kernel=$kpkg $kver
busybox=busybox-static $bver
agent=qemu-guest-agent $gver
$hashes"
}
make_stamp
if built && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "$lists" >"$out/lists"
	exit 0
fi

# The .deb in the cache for package $1 at version $2, if there is one;
# stale versions are removed.
cached_deb() {
	local f p v
	for f in "$out/debs/$1"_*.deb; do
		[ -f "$f" ] || continue
		p=$(dpkg-deb -f "$f" Package 2>/dev/null) || p=
		v=$(dpkg-deb -f "$f" Version 2>/dev/null) || v=
		if [ "$p" = "$1" ] && [ "$v" = "$2" ]; then
			echo "$f"
			return 0
		fi
		rm -f "$f"
	done
	return 1
}

fetch() {
	local want=()
	cached_deb "$kpkg" "$kver" >/dev/null || want+=("$kpkg=$kver")
	cached_deb busybox-static "$bver" >/dev/null || want+=("busybox-static=$bver")
	cached_deb qemu-guest-agent "$gver" >/dev/null || want+=("qemu-guest-agent=$gver")
	[ ${#want[@]} -eq 0 ] && return 0
	log "apt-get download ${want[*]}"
	local opts=(-q)
	# As root, apt drops to the _apt user, who cannot write here.
	[ "$(id -u)" = 0 ] && opts+=(-o APT::Sandbox::User=root)
	(cd "$out/debs" && apt-get "${opts[@]}" download "${want[@]}" >&2)
}

if ! fetch; then
	# Package lists older than the mirror: the version is gone from it.
	apt_update || die "cannot download $kpkg and busybox-static"
	resolve || die "cannot find linux-image-cloud-amd64 in the package lists"
	make_stamp
	fetch || die "cannot download $kpkg, busybox-static and qemu-guest-agent"
fi
gdeb=$(cached_deb qemu-guest-agent "$gver")
kdeb=$(cached_deb "$kpkg" "$kver")
bdeb=$(cached_deb busybox-static "$bver")

log "building from $kpkg $kver and busybox-static $bver"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$kdeb" "$tmp/kernel"
dpkg-deb -x "$bdeb" "$tmp/busybox"
dpkg-deb -x "$gdeb" "$tmp/agent"
bb=$tmp/busybox/bin/busybox
[ -x "$bb" ] || die "no bin/busybox in $bdeb"
"$bb" sh -n "$here/init" || die "syntax error in $here/init"

kimg=$(ls "$tmp"/kernel/boot/vmlinuz-* 2>/dev/null | head -n1)
[ -n "$kimg" ] || die "no /boot/vmlinuz-* in $kdeb"
kmods=$(ls -d "$tmp"/kernel/lib/modules/* 2>/dev/null | head -n1)
[ -d "$kmods" ] || die "no /lib/modules/* in $kdeb"

# --- initramfs tree ---------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,etc,lib/modules,mnt,tmp,var/log,var/run}
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$here/init" "$root/init"

# Module files by name (foo-bar and foo_bar are the same module).
declare -A modfile=()
while IFS= read -r f; do
	n=${f##*/}
	n=${n%%.ko*}
	modfile[${n//-/_}]=$f
done < <(find "$kmods" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.gz' -o -name '*.ko.zst')
declare -A builtin=()
while IFS= read -r f; do
	n=${f##*/}
	n=${n%.ko}
	builtin[${n//-/_}]=1
done <"$kmods/modules.builtin"

# Depth first: a module's dependencies are loaded before it.
declare -A placed=()
order=()
place() {
	local m=$1 d deps
	[ -n "${placed[$m]:-}" ] && return 0
	placed[$m]=1
	if [ -n "${builtin[$m]:-}" ]; then
		log "$m is built into the kernel"
		return 0
	fi
	[ -n "${modfile[$m]:-}" ] || die "module $m is not in $kpkg"
	deps=$(modinfo -F depends "${modfile[$m]}") || die "modinfo $m failed"
	for d in ${deps//,/ }; do
		d=${d//-/_}
		[ -n "${placed[$d]:-}" ] || log "$m needs $d: loaded first"
		place "$d"
	done
	order+=("$m")
}
for m in "${MODULES[@]}"; do
	place "$m"
done

: >"$root/etc/modules"
for m in "${order[@]}"; do
	f=${modfile[$m]}
	dst=$root/lib/modules/$m.ko
	# busybox insmod takes plain .ko files only.
	case "$f" in
	*.ko) cp "$f" "$dst" ;;
	*.ko.xz) "$bb" unxz -c "$f" >"$dst" ;;
	*.ko.gz) "$bb" gunzip -c "$f" >"$dst" ;;
	*.ko.zst) command -v zstd >/dev/null || die "zstd is needed to unpack $f"
		zstd -q -d -c "$f" >"$dst" ;;
	esac
	echo "$m" >>"$root/etc/modules"
done

# qemu-ga from Debian's package, with the libraries ldd finds for it on
# this host (the guest runs the same Debian release's userland)
ga=$tmp/agent/usr/sbin/qemu-ga
[ -x "$ga" ] || die "no usr/sbin/qemu-ga in $gdeb"
cp "$ga" "$root/sbin/qemu-ga"
libs=$(ldd "$ga") || die "ldd $ga failed"
grep -q 'not found' <<<"$libs" && die "qemu-ga needs libraries this host lacks: $(grep 'not found' <<<"$libs" | tr -s ' \t\n' ' ')"
for lib in $(sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' <<<"$libs"); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
# unstripped, they would double the initrd and the guest's boot under TCG
if command -v strip >/dev/null; then
	find "$root" -path "$root/lib/modules" -prune -o -type f \( -name '*.so*' -o -name qemu-ga \) -print |
		xargs -r strip --strip-unneeded
fi
# a user for guest-set-user-password to change (busybox chpasswd)
printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
chmod 600 "$root/etc/shadow"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -6 -n >"$tmp/initrd.img"
cp "$kimg" "$tmp/vmlinuz"
echo "$APPEND" >"$tmp/append"

mv -f "$tmp/vmlinuz" "$out/vmlinuz"
mv -f "$tmp/initrd.img" "$out/initrd.img"
mv -f "$tmp/append" "$out/append"
echo "$stamp" >"$out/stamp"
stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null | sha256sum | cut -d' ' -f1 >"$out/lists"
log "built $out ($(du -k "$out/initrd.img" | cut -f1) KiB initrd, modules: ${order[*]})"
