# bench/cloudinit.sh — sourced by bench/run.sh (PARTS=cloudinit): what a
# cloud-init seed costs a start. Two vms alike but for --cloud-init are
# started (to RUNNING) and powered off in turn; the seed's start includes
# PROLOG (copies read, ISO written and synced). Also the seed's size against
# genisoimage -J -r of the same files, when genisoimage is installed.
echo "== cloudinit"
ci_root=$work/ci
ci_files=$work/ci-files
mkdir -p "$ci_files/iso"
printf '#cloud-config\npassword: bench\nchpasswd: { expire: False }\n' >"$ci_files/iso/user-data"
printf 'instance-id: iid-bench\nlocal-hostname: bench\n' >"$ci_files/iso/meta-data"
printf 'version: 2\nethernets:\n  eth0:\n    dhcp4: true\n' >"$ci_files/iso/network-config"
for v in plain seeded; do
	ci_flag=()
	[ "$v" = seeded ] && ci_flag=(--cloud-init "user-data=$ci_files/iso/user-data,meta-data=$ci_files/iso/meta-data,network-config=$ci_files/iso/network-config")
	QVM_ROOT=$ci_root QVM_DISK_ROOTS=$work "$QVM" create "$v" --memory 256M --kernel "$work/guest/vmlinuz" \
		--initrd "$work/guest/initrd.img" --append "$(cat "$QVM_GUEST/append")" "${ci_flag[@]}" >/dev/null
done
ci_with=() ci_without=()
for ((i = 0; i < ${SEEDRUNS:-7}; i++)); do
	for v in seeded plain; do
		if [ "$v" = seeded ]; then
			QVM_ROOT=$ci_root sample ci_with "$QVM" start "$v"
		else
			QVM_ROOT=$ci_root sample ci_without "$QVM" start "$v"
		fi
		QVM_ROOT=$ci_root "$QVM" poweroff --hard "$v" >/dev/null
	done
done
report "qvm start, vm with a seed, n=${#ci_with[@]}" "$(median_of ci_with)" ms "the same vm without" "$(median_of ci_without)"
seed_kib=$(($(stat -c %s "$ci_root/vms/2/seed.iso") / 1024))
if command -v genisoimage >/dev/null; then
	genisoimage -quiet -J -r -V cidata -o "$ci_files/ref.iso" "$ci_files/iso"
	report "seed size (3 small files)" "$seed_kib" KiB "genisoimage -J -r, same files" \
		"$(($(stat -c %s "$ci_files/ref.iso") / 1024))"
fi
QVM_ROOT=$ci_root "$QVM" delete seeded >/dev/null
QVM_ROOT=$ci_root "$QVM" delete plain >/dev/null
echo
