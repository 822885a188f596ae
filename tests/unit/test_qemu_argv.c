/* Golden command lines: every definition feature, hostile strings included.
 * A change to any argv shows up as a diff of tests/unit/golden/ in review.
 * Regenerate with QVM_UPDATE_GOLDEN=1 after an intended change. */
#include <string.h>

#include "lifecycle/lifecycle.h"
#include "tap.h"

static const int no_taps[1];

static void vm_init(lc_vm *vm, const char *name)
{
	memset(vm, 0, sizeof(*vm));
	vm->id = 7;
	lc_vmdef_init(&vm->def);
	vm->def.name = util_xstrdup(name);
	vm->def.uuid = util_xstrdup("0b7e4c1e-2f3a-4d5b-8c6d-7e8f9a0b1c2d");
}

static lc_disk *add_disk(lc_vmdef *def, const char *path, const char *fmt, const char *backing,
                         const char *backing_fmt, lc_bus bus, bool ro)
{
	lc_disk *d;

	def->disks = util_xrealloc(def->disks, (def->n_disks + 1) * sizeof(lc_disk));
	d = &def->disks[def->n_disks];
	memset(d, 0, sizeof(*d));
	d->id = (unsigned)def->n_disks++;
	d->path = util_xstrdup(path);
	d->format = util_xstrdup(fmt);
	d->backing = backing ? util_xstrdup(backing) : NULL;
	d->backing_format = backing_fmt ? util_xstrdup(backing_fmt) : NULL;
	d->source = util_xstrdup(backing ? backing : "1G");
	d->bus = bus;
	d->readonly = ro;
	d->owned = true;
	return d;
}

static void add_nic(lc_vmdef *def, const char *net, const char *mac, const char *model)
{
	lc_nic *n;

	def->nics = util_xrealloc(def->nics, (def->n_nics + 1) * sizeof(lc_nic));
	n = &def->nics[def->n_nics];
	memset(n, 0, sizeof(*n));
	n->id = (unsigned)def->n_nics++;
	n->network = util_xstrdup(net);
	n->mac = mac ? util_xstrdup(mac) : NULL;
	n->model = util_xstrdup(model);
}

static lc_qemu_runtime base_rt(void)
{
	return (lc_qemu_runtime){
		.qemu_binary = "/usr/bin/qemu-system-x86_64",
		.accel = LC_ACCEL_TCG,
		.qmp_event_fd = 3,
		.qmp_command_fd = 4,
		.serial_fd = 5,
		.serial_log = "/var/lib/qvm/vms/7/console.log",
		.tap_fds = no_taps,
	};
}

static char *join(char **argv)
{
	size_t len = 1;
	char *s, *p;

	for (char **a = argv; *a; a++)
		len += strlen(*a) + 1;
	s = p = util_xmalloc(len);
	for (char **a = argv; *a; a++)
		p += sprintf(p, "%s\n", *a);
	*p = '\0';
	return s;
}

static void check_golden(const char *name, const lc_vm *vm, const lc_qemu_runtime *rt)
{
	const char *src = getenv("QVM_SOURCE") ? getenv("QVM_SOURCE") : ".";
	_cleanup_free_ char *path = util_xasprintf("%s/tests/unit/golden/%s.argv", src, name);
	_cleanup_free_ char *got = NULL, *want = NULL;
	_cleanup_strv_ char **argv = NULL;
	util_err err = { 0 };
	int r = lc_qemu_argv(vm, rt, &argv, &err);

	if (!ok(r == 0, "%s: argv built", name)) {
		diag("%s", err.msg);
		return;
	}
	got = join(argv);
	if (getenv("QVM_UPDATE_GOLDEN")) {
		r = util_write_file_atomic(path, got, strlen(got), &err);
		ok(r == 0, "%s: golden file rewritten", name);
		return;
	}
	if (util_read_file(path, 1 << 20, &want, NULL, &err) < 0) {
		ok(0, "%s: golden file readable", name);
		diag("%s", err.msg);
		return;
	}
	if (!ok(!strcmp(got, want), "%s: argv matches %s", name, path))
		diag("got:\n%s", got);
}

int main(void)
{
	lc_qemu_runtime rt;
	lc_vm vm;
	util_err err = { 0 };
	char **argv = NULL;
	int taps[2] = { 20, 21 };

	/* the smallest VM */
	vm_init(&vm, "minimal");
	rt = base_rt();
	check_golden("minimal", &vm, &rt);
	lc_vmdef_clear(&vm.def);

	/* everything a definition can hold, on q35 with KVM and the sandbox */
	vm_init(&vm, "full");
	vm.def.machine = LC_MACHINE_Q35;
	vm.def.memory = 2048ull << 20;
	vm.def.vcpus = 4;
	add_disk(&vm.def, "/var/lib/qvm/vms/7/disk0.qcow2", "qcow2",
	         "/var/lib/qvm/images/debian.qcow2", "qcow2", LC_BUS_VIRTIO, false);
	add_disk(&vm.def, "/var/lib/qvm/vms/7/disk1.qcow2", "qcow2", NULL, NULL, LC_BUS_SCSI,
	         false);
	add_disk(&vm.def, "/var/lib/qvm/vms/7/disk2.qcow2", "qcow2", "/var/lib/qvm/images/base.raw",
	         "raw", LC_BUS_IDE, true);
	add_disk(&vm.def, "/srv/data.raw", "raw", NULL, NULL, LC_BUS_VIRTIO, false);
	vm.def.cdrom = util_xstrdup("/srv/iso/install.iso");
	vm.def.kernel = util_xstrdup("/boot/vmlinuz");
	vm.def.initrd = util_xstrdup("/boot/initrd.img");
	vm.def.append = util_xstrdup("console=ttyS0 root=/dev/vda1");
	add_nic(&vm.def, "lan", "52:54:00:12:34:56", "virtio");
	add_nic(&vm.def, "dmz", "52:54:00:ab:cd:ef", "e1000");
	rt = base_rt();
	rt.accel = LC_ACCEL_KVM;
	rt.sandbox = true;
	rt.seed_path = "/var/lib/qvm/vms/7/seed.iso";
	rt.tap_fds = taps;
	rt.n_tap_fds = 2;
	check_golden("full", &vm, &rt);
	lc_vmdef_clear(&vm.def);

	/* room for a live resize: maxcpus, DIMM slots and maxmem, a balloon */
	vm_init(&vm, "resizable");
	vm.def.vcpus = 2;
	vm.def.max_vcpus = 8;
	vm.def.memory = 1024ull << 20;
	vm.def.max_memory = 4096ull << 20;
	rt = base_rt();
	check_golden("resizable", &vm, &rt);
	lc_vmdef_clear(&vm.def);

	/* a VM with a blank raw disk of its own (--disk 1G,format=raw): the
	 * raw driver straight on the file, no backing key */
	vm_init(&vm, "rawdisk");
	add_disk(&vm.def, "/var/lib/qvm/vms/7/disk0.qcow2", "qcow2", NULL, NULL, LC_BUS_VIRTIO,
	         false);
	add_disk(&vm.def, "/var/lib/qvm/vms/7/disk1.raw", "raw", NULL, NULL, LC_BUS_VIRTIO, false);
	add_disk(&vm.def, "/var/lib/qvm/vms/7/disk2.raw", "raw", NULL, NULL, LC_BUS_SCSI, true);
	rt = base_rt();
	check_golden("rawdisk", &vm, &rt);
	lc_vmdef_clear(&vm.def);

	/* a pc VM with its cloud-init seed and nothing else: the seed is a
	 * raw, read-only virtio disk */
	vm_init(&vm, "seeded");
	rt = base_rt();
	rt.seed_path = "/var/lib/qvm/vms/7/seed.iso";
	check_golden("seed", &vm, &rt);
	lc_vmdef_clear(&vm.def);

	/* as the supervisor starts a VM with NICs: taps from fd 6 on */
	vm_init(&vm, "nics");
	add_disk(&vm.def, "/var/lib/qvm/vms/7/disk0.qcow2", "qcow2", NULL, NULL, LC_BUS_VIRTIO,
	         false);
	add_nic(&vm.def, "lan", "52:54:7d:bf:52:fb", "virtio");
	add_nic(&vm.def, "lan", "52:54:f2:5e:1a:f8", "virtio");
	add_nic(&vm.def, "dmz", "52:54:00:00:00:03", "e1000");
	add_nic(&vm.def, "dmz", "52:54:00:00:00:04", "virtio");
	rt = base_rt();
	rt.tap_fds = (const int[]){ 6, 7, 8, 9 };
	rt.n_tap_fds = 4;
	check_golden("nics", &vm, &rt);
	lc_vmdef_clear(&vm.def);

	/* hot-plugged devices at the slots hotplug gave them (lc_pci): on pc
	 * before the devices QEMU places in order, on q35 after the ports */
	for (int q35 = 0; q35 < 2; q35++) {
		lc_disk *d;

		vm_init(&vm, q35 ? "hotq35" : "hotpc");
		vm.def.machine = q35 ? LC_MACHINE_Q35 : LC_MACHINE_PC;
		add_disk(&vm.def, "/var/lib/qvm/vms/7/disk0.qcow2", "qcow2", NULL, NULL,
		         LC_BUS_VIRTIO, false);
		add_nic(&vm.def, "lan", "52:54:7d:bf:52:fb", "virtio");
		d = add_disk(&vm.def, "/var/lib/qvm/vms/7/disk1.qcow2", "qcow2", NULL, NULL,
		             LC_BUS_VIRTIO, false);
		d->pci.bus = util_xstrdup(q35 ? "hp1" : "pci.0");
		d->pci.slot = q35 ? 0 : 5;
		add_nic(&vm.def, "lan", "52:54:f2:5e:1a:f8", "e1000");
		vm.def.nics[1].pci.bus = util_xstrdup(q35 ? "hp0" : "pci.0");
		vm.def.nics[1].pci.slot = q35 ? 0 : 4;
		rt = base_rt();
		rt.tap_fds = (const int[]){ 6, 7 };
		rt.n_tap_fds = 2;
		check_golden(q35 ? "hotplugged-q35" : "hotplugged-pc", &vm, &rt);
		lc_vmdef_clear(&vm.def);
	}

	vm_init(&vm, "micro");
	vm.def.machine = LC_MACHINE_MICROVM;
	vm.def.memory = 256ull << 20;
	add_disk(&vm.def, "/var/lib/qvm/vms/7/disk0.qcow2", "qcow2", NULL, NULL, LC_BUS_VIRTIO,
	         false);
	rt = base_rt();
	check_golden("microvm", &vm, &rt);
	lc_vmdef_clear(&vm.def);

	/* a display and a password-protected VNC server, on IPv4 and IPv6 */
	vm_init(&vm, "vnc");
	vm.def.vnc_listen = util_xstrdup("127.0.0.1");
	rt = base_rt();
	check_golden("vnc", &vm, &rt);
	free(vm.def.vnc_listen);
	vm.def.vnc_listen = util_xstrdup("::1");
	ok(lc_qemu_argv(&vm, &rt, &argv, &err) == 0 && argv, "vnc on ::1: argv built");
	for (char **a = argv; a && *a; a++)
		if (util_streq(*a, "-vnc"))
			ok(util_streq(a[1], "[::1]:0,to=99,password=on"),
			   "vnc on ::1: in brackets");
	util_strv_free(argv);
	argv = NULL;
	/* on a unix socket: the path the runtime names, commas doubled */
	free(vm.def.vnc_listen);
	vm.def.vnc_listen = util_xstrdup(LC_VNC_UNIX);
	ok(lc_qemu_argv(&vm, &rt, &argv, &err) < 0 && !argv,
	   "vnc on a unix socket without a path: refused (%s)", err.msg);
	rt.vnc_socket = "/srv/a,b/run/7/vnc.sock";
	ok(lc_qemu_argv(&vm, &rt, &argv, &err) == 0 && argv, "vnc on a unix socket: argv built");
	for (char **a = argv; a && *a; a++)
		if (util_streq(*a, "-vnc"))
			is_str(a[1], "unix:/srv/a,,b/run/7/vnc.sock,password=on",
			       "vnc on a unix socket: the path, its comma doubled");
	util_strv_free(argv);
	argv = NULL;
	lc_vmdef_clear(&vm.def);

	/* Hostile strings: commas, quotes, braces and option-like text must
	 * stay inside their JSON string or be doubled, never add an option. */
	vm_init(&vm, "hostile");
	add_disk(&vm.def, "/srv/a,b\"c}{,file.driver=nbd.qcow2", "qcow2",
	         "/srv/base,backing.driver=nbd,host=evil.qcow2", "qcow2", LC_BUS_VIRTIO, false);
	vm.def.kernel = util_xstrdup("/srv/k,ernel");
	vm.def.append = util_xstrdup("console=ttyS0 -device isa-debugcon,iobase=0x402 \"x\"");
	vm.def.cdrom = util_xstrdup("/srv/iso/a,b,format=qcow2.iso");
	rt = base_rt();
	rt.serial_log = "/srv/log,server=off,path=/etc/x";
	check_golden("hostile", &vm, &rt);

	/* the same VM: pieces of the hostile text appear only where expected */
	rt = base_rt();
	rt.serial_log = "/srv/log,server=off";
	ok(lc_qemu_argv(&vm, &rt, &argv, &err) == 0, "hostile: argv built");
	for (char **a = argv; a && *a; a++)
		if (util_startswith(*a, "socket,id=serial0"))
			ok(strstr(*a, "logfile=/srv/log,,server=off,logappend=on") != NULL,
			   "serial log path: comma doubled");
	util_strv_free(argv);
	argv = NULL;

	rt.serial_log = "/srv/log\nx";
	ok(lc_qemu_argv(&vm, &rt, &argv, &err) == -EINVAL && argv == NULL,
	   "control character in an option value is refused");
	ok(strstr(err.msg, "control character") != NULL, "... and the message says why: %s",
	   err.msg);
	lc_vmdef_clear(&vm.def);

	/* refusals */
	vm_init(&vm, "taps");
	add_nic(&vm.def, "lan", NULL, "virtio");
	rt = base_rt();
	ok(lc_qemu_argv(&vm, &rt, &argv, &err) < 0 && argv == NULL,
	   "a nic without a tap is refused");
	rt.n_tap_fds = 1;
	rt.tap_fds = taps;
	rt.accel = LC_ACCEL_AUTO;
	ok(lc_qemu_argv(&vm, &rt, &argv, &err) < 0, "an unresolved accelerator is refused");
	lc_vmdef_clear(&vm.def);

	return done_testing();
}
