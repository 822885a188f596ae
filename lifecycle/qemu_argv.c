/* The QEMU command line: the one function that turns a VM into argv.
 * Disks and devices go in as JSON (jansson escapes them, so no user string
 * can add an option); the few key=value options left pass through
 * util_qemu_opt_escape(). Golden tests in tests/unit pin every feature. */
#include <string.h>
#include <sys/un.h>

#include "run.h"

static void push_json(util_strv *sv, const char *opt, json_t *obj /* stolen */)
{
	char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(obj);
	if (!s)
		abort(); /* only on allocation failure */
	util_strv_push(sv, opt);
	util_strv_push_take(sv, s);
}

/* A file node under a format node. */
static json_t *file_node(const char *path, bool readonly)
{
	return json_pack("{s:s, s:s, s:b}", "driver", "file", "filename", path, "read-only",
	                 readonly);
}

static json_t *disk_blockdev(const lc_disk *d, const char *node)
{
	json_t *bd = json_pack("{s:s, s:s, s:b, s:o}", "node-name", node, "driver", d->format,
	                       "read-only", d->readonly, "file", file_node(d->path, d->readonly));

	/* Name the whole chain: QEMU never follows a backing file name from an
	 * image header, which the guest can write to.
	 * An external data file cannot be refused from here: QEMU 7.2's qcow2
	 * driver (qcow2_do_open in block/qcow2.c) opens the file the header
	 * names whenever the incompatible-feature bit QCOW2_INCOMPAT_DATA_FILE
	 * is set and no "data-file" is given, and BlockdevOptionsQcow2
	 * (qapi/block-core.json) has no option that forbids one: "data-file"
	 * takes a BlockdevRef, not null, and any value given makes QEMU refuse
	 * every image *without* that bit ("A 'data-file' can only be set for
	 * images with an external data file"). So qvm reads that bit itself,
	 * in-process from the header (stor_probe_buf, then qemu-img's
	 * data-file field), for every qcow2 file of the chain right before
	 * QEMU opens it (lc_check_vm_files at start and restart,
	 * lc_check_disk_files at disk-attach) and refuses the image; the window
	 * that leaves is in qvm(8), SECURITY. */
	if (util_streq(d->format, "qcow2")) {
		json_t *backing = json_null();

		if (d->backing) {
			backing = json_pack("{s:s, s:b, s:o}", "driver", d->backing_format,
			                    "read-only", 1, "file", file_node(d->backing, true));
			if (util_streq(d->backing_format, "qcow2"))
				json_object_set_new(backing, "backing", json_null());
		}
		json_object_set_new(bd, "backing", backing);
	}
	return bd;
}

static const char *disk_device_driver(lc_bus bus)
{
	switch (bus) {
	case LC_BUS_SCSI:
		return "scsi-hd";
	case LC_BUS_IDE:
		return "ide-hd";
	case LC_BUS_VIRTIO:
	default:
		return "virtio-blk-pci";
	}
}

/* The blockdev-add arguments and the device_add arguments of a disk, as
 * the command line has them (hotplug uses the same nodes and ids). */
void lc_disk_qemu_json(const lc_disk *d, json_t **ret_blockdev, json_t **ret_device)
{
	char node[32];
	json_t *dev;

	snprintf(node, sizeof(node), "disk%u", d->id);
	*ret_blockdev = disk_blockdev(d, node);
	dev = json_pack("{s:s, s:s, s:s}", "driver", disk_device_driver(d->bus), "drive", node,
	                "id", node);
	if (d->bus == LC_BUS_SCSI)
		json_object_set_new(dev, "bus", json_string("scsi0.0"));
	lc_pci_place_json(dev, &d->pci);
	*ret_device = dev;
}

static int push_chardev_socket(util_strv *sv, const char *id, int fd, const char *logfile,
                               util_err *err)
{
	_cleanup_free_ char *log = NULL;

	if (fd < 0)
		return util_err_set(err, -EINVAL, "no socket for chardev '%s'", id);
	if (logfile) {
		int r = util_qemu_opt_escape(logfile, &log, err);

		if (r < 0)
			return util_err_prefix(err, "serial log path");
	}
	util_strv_push(sv, "-chardev");
	if (log)
		util_strv_pushf(sv, "socket,id=%s,fd=%d,server=on,wait=off,logfile=%s,logappend=on",
		                id, fd, log);
	else
		util_strv_pushf(sv, "socket,id=%s,fd=%d,server=on,wait=off", id, fd);
	return 0;
}

static int push_disks(util_strv *sv, const lc_vm *vm, util_err *err)
{
	const lc_vmdef *def = &vm->def;
	bool scsi = false;

	for (size_t i = 0; i < def->n_disks; i++)
		scsi = scsi || def->disks[i].bus == LC_BUS_SCSI;
	if (scsi)
		push_json(sv, "-device",
		          json_pack("{s:s, s:s}", "driver", "virtio-scsi-pci", "id", "scsi0"));
	for (size_t i = 0; i < def->n_disks; i++) {
		const lc_disk *d = &def->disks[i];
		json_t *bd, *dev;

		if (!d->path || !d->format)
			return util_err_set(err, -EINVAL, "disk %u has no file yet", d->id);
		lc_disk_qemu_json(d, &bd, &dev);
		push_json(sv, "-blockdev", bd);
		if (d->pci.bus)
			json_decref(dev); /* push_placed() has it */
		else
			push_json(sv, "-device", dev);
	}
	return 0;
}

static void push_readonly_raw(util_strv *sv, const char *node, const char *path, const char *driver)
{
	push_json(sv, "-blockdev",
	          json_pack("{s:s, s:s, s:b, s:o}", "node-name", node, "driver", "raw", "read-only",
	                    1, "file", file_node(path, true)));
	push_json(sv, "-device",
	          json_pack("{s:s, s:s, s:s}", "driver", driver, "drive", node, "id", node));
}

/* A display and its VNC server: on the first free display from :0 up
 * (QEMU tries each, so no port is chosen here and then taken by another),
 * never without a password. None is set until `qvm vnc` sets one, so until
 * then no client gets in. The address is an IP literal (checked): nothing
 * in it reads as an option. */
static int push_vnc(util_strv *sv, const lc_vmdef *def, const lc_qemu_runtime *rt, util_err *err)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (!def->vnc_listen)
		return 0;
	util_strv_push(sv, "-device");
	util_strv_push(sv, "VGA,id=video0");
	util_strv_push(sv, "-vnc");
	if (!util_streq(def->vnc_listen, LC_VNC_UNIX)) {
		util_strv_pushf(sv,
		                strchr(def->vnc_listen, ':') ? "[%s]:0,to=99,password=on"
		                                             : "%s:0,to=99,password=on",
		                def->vnc_listen);
		return 0;
	}
	if (!rt->vnc_socket)
		return util_err_set(err, -EINVAL, "no path for the vnc socket");
	if (strlen(rt->vnc_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return util_err_set(err, -ENAMETOOLONG,
		                    "the vnc socket path '%s' is too long for a unix socket; use a "
		                    "shorter --root",
		                    rt->vnc_socket);
	r = util_qemu_opt_escape(rt->vnc_socket, &path, err);
	if (r < 0)
		return util_err_prefix(err, "vnc socket path");
	util_strv_pushf(sv, "unix:%s,password=on", path);
	return 0;
}

static json_t *nic_device(const lc_nic *n)
{
	json_t *dev = json_pack("{s:s}", "driver",
	                        util_streq(n->model, "e1000") ? "e1000" : "virtio-net-pci");

	json_object_set_new(dev, "netdev", json_sprintf("net%u", n->id));
	json_object_set_new(dev, "id", json_sprintf("nic%u", n->id));
	if (n->mac)
		json_object_set_new(dev, "mac", json_string(n->mac));
	lc_pci_place_json(dev, &n->pci);
	return dev;
}

static int push_nics(util_strv *sv, const lc_vm *vm, const lc_qemu_runtime *rt, util_err *err)
{
	const lc_vmdef *def = &vm->def;

	if (rt->n_tap_fds != def->n_nics)
		return util_err_set(err, -EINVAL, "%zu nics but %zu taps", def->n_nics,
		                    rt->n_tap_fds);
	for (size_t i = 0; i < def->n_nics; i++) {
		const lc_nic *n = &def->nics[i];

		util_strv_push(sv, "-netdev");
		util_strv_pushf(sv, "tap,id=net%u,fd=%d,vhost=off", n->id, rt->tap_fds[i]);
		if (!n->pci.bus)
			push_json(sv, "-device", nic_device(n));
	}
	return 0;
}

/* The devices a hotplug placed, at their slots: those on the root bus
 * before every device QEMU places itself (which then keep the slots they
 * had), those behind a hotplug port after the ports (ports first). The
 * -blockdev and -netdev they use QEMU makes before any device. */
static void push_placed(util_strv *sv, const lc_vmdef *def, bool behind_port)
{
	for (size_t i = 0; i < def->n_disks; i++) {
		const lc_disk *d = &def->disks[i];
		json_t *bd, *dev;

		if (!d->pci.bus || util_startswith(d->pci.bus, "hp") != behind_port)
			continue;
		lc_disk_qemu_json(d, &bd, &dev);
		json_decref(bd);
		push_json(sv, "-device", dev);
	}
	for (size_t i = 0; i < def->n_nics; i++) {
		const lc_nic *n = &def->nics[i];

		if (n->pci.bus && util_startswith(n->pci.bus, "hp") == behind_port)
			push_json(sv, "-device", nic_device(n));
	}
}

/* -kernel, -initrd and -append take their value whole (no option
 * parsing), so they need no escaping; validation refused control
 * characters and commas in the initrd path. */
static void push_direct_boot(util_strv *sv, const lc_vmdef *def)
{
	if (def->kernel) {
		util_strv_push(sv, "-kernel");
		util_strv_push(sv, def->kernel);
	}
	if (def->initrd) {
		util_strv_push(sv, "-initrd");
		util_strv_push(sv, def->initrd);
	}
	if (def->append) {
		util_strv_push(sv, "-append");
		util_strv_push(sv, def->append);
	}
}

/* q35's pcie.0 takes no hotplug: empty root ports are the slots that
 * disk-attach (and nic hotplug) fill while the vm runs */
static void push_hotplug_ports(util_strv *sv, const lc_vmdef *def)
{
	if (def->machine != LC_MACHINE_Q35)
		return;
	for (int i = 0; i < LC_HOTPLUG_PORTS; i++)
		push_json(sv, "-device",
		          json_pack("{s:s, s:o, s:s, s:i}", "driver", "pcie-root-port", "id",
		                    json_sprintf("hp%d", i), "bus", "pcie.0", "chassis", i + 1));
}

/* Memory and CPUs, with room for a live resize up to the maxima: DIMM
 * slots and maxmem, maxcpus; and a balloon to give memory back. */
static void push_sizes(util_strv *sv, const lc_vmdef *def)
{
	util_strv_push(sv, "-m");
	if (def->max_memory > def->memory)
		util_strv_pushf(sv, "%lluM,slots=%d,maxmem=%lluM",
		                (unsigned long long)(def->memory >> 20), LC_DIMM_SLOTS,
		                (unsigned long long)(def->max_memory >> 20));
	else
		util_strv_pushf(sv, "%lluM", (unsigned long long)(def->memory >> 20));
	util_strv_push(sv, "-smp");
	if (def->max_vcpus > def->vcpus)
		util_strv_pushf(sv, "%u,maxcpus=%u", def->vcpus, def->max_vcpus);
	else
		util_strv_pushf(sv, "%u", def->vcpus);
	if (def->max_memory)
		push_json(sv, "-device",
		          json_pack("{s:s, s:s}", "driver", "virtio-balloon-pci", "id",
		                    LC_BALLOON_ID));
}

int lc_qemu_argv(const lc_vm *vm, const lc_qemu_runtime *rt, char ***ret_argv, util_err *err)
{
	const lc_vmdef *def = &vm->def;
	_cleanup_free_ char *name = NULL;
	util_strv sv = { 0 };
	int r;

	if (rt->accel != LC_ACCEL_KVM && rt->accel != LC_ACCEL_TCG)
		return util_err_set(err, -EINVAL,
		                    "the accelerator must be resolved before building argv");
	r = util_qemu_opt_escape(def->name, &name, err);
	if (r < 0)
		return r;

	util_strv_push(&sv, rt->qemu_binary);
	util_strv_push(&sv, "-name");
	/* process= names QEMU's threads qvm-<id>, which ps shows */
	util_strv_pushf(&sv, "guest=%s,process=qvm-%llu", name, (unsigned long long)vm->id);
	if (def->uuid) {
		util_strv_push(&sv, "-uuid");
		util_strv_push(&sv, def->uuid);
	}
	util_strv_push(&sv, "-nodefaults");
	util_strv_push(&sv, "-no-user-config");
	util_strv_push(&sv, "-no-shutdown");
	util_strv_push(&sv, "-S");
	if (rt->incoming) {
		util_strv_push(&sv, "-incoming");
		util_strv_push(&sv, "defer");
	}
	util_strv_push(&sv, "-display");
	util_strv_push(&sv, "none");
	util_strv_push(&sv, "-machine");
	/* microvm gets PCIe so every machine type uses the same devices */
	util_strv_push(&sv, def->machine == LC_MACHINE_MICROVM ? "microvm,pcie=on"
	                                                       : lc_machine_name(def->machine));
	util_strv_push(&sv, "-accel");
	util_strv_push(&sv, lc_accel_name(rt->accel));
	if (rt->accel == LC_ACCEL_KVM) {
		util_strv_push(&sv, "-cpu");
		util_strv_push(&sv, "host");
	}
	push_sizes(&sv, def);
	if (rt->sandbox) {
		util_strv_push(&sv, "-sandbox");
		util_strv_push(
		        &sv,
		        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	}
	if ((r = push_chardev_socket(&sv, "qmp-event", rt->qmp_event_fd, NULL, err)) < 0)
		goto fail;
	util_strv_push(&sv, "-mon");
	util_strv_push(&sv, "chardev=qmp-event,mode=control");
	if ((r = push_chardev_socket(&sv, "qmp-command", rt->qmp_command_fd, NULL, err)) < 0)
		goto fail;
	util_strv_push(&sv, "-mon");
	util_strv_push(&sv, "chardev=qmp-command,mode=control");
	if ((r = push_chardev_socket(&sv, "serial0", rt->serial_fd, rt->serial_log, err)) < 0)
		goto fail;
	util_strv_push(&sv, "-serial");
	util_strv_push(&sv, "chardev:serial0");
	if (def->guest_agent) {
		/* qemu-ga finds its port by this name */
		util_strv_push(&sv, "-device");
		util_strv_push(&sv, "virtio-serial-pci,id=vser0");
		if ((r = push_chardev_socket(&sv, "qga0", rt->agent_fd, NULL, err)) < 0)
			goto fail;
		util_strv_push(&sv, "-device");
		util_strv_push(&sv, "virtserialport,bus=vser0.0,chardev=qga0,name=" LC_AGENT_PORT);
	}
	push_direct_boot(&sv, def);
	push_placed(&sv, def, false);
	if ((r = push_disks(&sv, vm, err)) < 0)
		goto fail;
	if (def->cdrom)
		push_readonly_raw(&sv, "cdrom0", def->cdrom, "ide-cd");
	/* The cloud-init seed as a read-only virtio disk: seen on pc, q35 and
	 * microvm alike with no extra controller (an ide-cd is invisible on
	 * q35 to a guest without AHCI; a scsi-cd would need virtio-scsi).
	 * cloud-init finds it by its label, whatever the device. */
	if (rt->seed_path)
		push_readonly_raw(&sv, "seed0", rt->seed_path, "virtio-blk-pci");
	if ((r = push_nics(&sv, vm, rt, err)) < 0)
		goto fail;
	push_hotplug_ports(&sv, def);
	if ((r = push_vnc(&sv, def, rt, err)) < 0)
		goto fail;
	push_placed(&sv, def, true);
	*ret_argv = util_strv_steal(&sv);
	return 0;
fail:
	util_strv_clear(&sv);
	return util_err_prefix(err, "cannot build the command line of '%s'", def->name);
}
