/* Where hotplug puts a device, and keeping it there.
 * QEMU places a device given no address in the first free slot, in the
 * order the devices come: the command line's order at start, the order of
 * the hotplugs afterwards. The next QEMU of the vm (a restart, the resume
 * of a checkpoint) is made from the definition, so a hot-plugged device
 * left to QEMU would sit elsewhere there (q35: on pcie.0 instead of behind
 * its hotplug port; pc: at another slot) and a checkpoint's device state,
 * which QEMU names by PCI path, would not load. So qvm picks the slot of
 * every hot-plugged device itself, gives it to device_add, and the
 * definition keeps it (lc_pci) for every command line after. */
#include <string.h>

#include "run.h"

static int query_pci(qmp_client *q, json_t **ret, util_err *err)
{
	return qmp_execute(q, "query-pci", NULL, 0, ret, err);
}

static const char *root_bus(const lc_vmdef *def)
{
	return def->machine == LC_MACHINE_PC ? "pci.0" : "pcie.0";
}

/* The devices on the root bus (bus 0) of query-pci's answer. */
static json_t *root_devices(json_t *buses)
{
	json_t *bus;
	size_t i;

	json_array_foreach (buses, i, bus)
		if (json_integer_value(json_object_get(bus, "bus")) == 0)
			return json_object_get(bus, "devices");
	return NULL;
}

/* q35: an empty root port hpN (pcie.0 takes no hotplug); pc, microvm: the
 * lowest free slot of the root bus. */
static int pick_slot(json_t *buses, const lc_vmdef *def, lc_pci *ret, util_err *err)
{
	json_t *devs = root_devices(buses), *dev;
	uint32_t used = 1; /* slot 0: the host bridge */
	size_t i;

	json_array_foreach (devs, i, dev) {
		const char *qid = json_string_value(json_object_get(dev, "qdev_id"));
		json_t *bridge = json_object_get(dev, "pci_bridge");

		if (def->machine == LC_MACHINE_Q35 && qid && util_startswith(qid, "hp") && bridge &&
		    json_array_size(json_object_get(bridge, "devices")) == 0) {
			ret->bus = util_xstrdup(qid);
			ret->slot = 0;
			return 0;
		}
		used |= 1u << (json_integer_value(json_object_get(dev, "slot")) & 31);
	}
	for (unsigned s = 1; def->machine != LC_MACHINE_Q35 && s < 32; s++)
		if (!(used & (1u << s))) {
			ret->bus = util_xstrdup(root_bus(def));
			ret->slot = s;
			return 0;
		}
	if (def->machine == LC_MACHINE_Q35)
		return util_err_set(
		        err, -ENOSPC,
		        "vm '%s' has no free hotplug slot (a q35 vm has %d); detach a device or attach while it is off",
		        def->name, LC_HOTPLUG_PORTS);
	return util_err_set(
	        err, -ENOSPC,
	        "vm '%s' has no free pci slot; detach a device or attach while it is off",
	        def->name);
}

/* Where device id sits now: on the root bus, or behind a port. */
static bool find_device(json_t *buses, const lc_vmdef *def, const char *id, lc_pci *ret)
{
	json_t *dev, *sub;
	size_t i, k;

	json_array_foreach (root_devices(buses), i, dev) {
		const char *qid = json_string_value(json_object_get(dev, "qdev_id"));

		if (util_streq(qid, id)) {
			ret->bus = (char *)root_bus(def);
			ret->slot = (unsigned)json_integer_value(json_object_get(dev, "slot"));
			return true;
		}
		json_array_foreach (json_object_get(json_object_get(dev, "pci_bridge"), "devices"),
		                    k, sub)
			if (qid &&
			    util_streq(json_string_value(json_object_get(sub, "qdev_id")), id)) {
				ret->bus = (char *)qid;
				ret->slot =
				        (unsigned)json_integer_value(json_object_get(sub, "slot"));
				return true;
			}
	}
	return false;
}

void lc_pci_place_json(json_t *dev, const lc_pci *p)
{
	if (!p->bus)
		return;
	json_object_set_new(dev, "bus", json_string(p->bus));
	json_object_set_new(dev, "addr", json_sprintf("0x%x", p->slot));
}

int lc_hotplug_device_add(qmp_client *q, const lc_vmdef *def, json_t *dev, lc_pci *ret_pci,
                          util_err *err)
{
	_cleanup_json_ json_t *d = dev, *buses = NULL;
	lc_pci p = { 0 };
	int r;

	/* a device on a bus of its own (a scsi disk on scsi0) has no slot */
	if (json_object_get(d, "bus"))
		return qmp_execute(q, "device_add", d, 0, NULL, err);
	r = query_pci(q, &buses, err);
	if (r == 0)
		r = pick_slot(buses, def, &p, err);
	if (r == 0) {
		lc_pci_place_json(d, &p);
		r = qmp_execute(q, "device_add", d, 0, NULL, err);
	}
	if (r == 0 && ret_pci)
		*ret_pci = p;
	else
		free(p.bus);
	return r;
}

/* The placement the definition gives device id (diskN, nicN), or NULL. */
static const lc_pci *placed_in_def(const lc_vmdef *def, const char *id)
{
	char name[32];

	for (size_t i = 0; i < def->n_disks; i++) {
		snprintf(name, sizeof(name), "disk%u", def->disks[i].id);
		if (util_streq(name, id))
			return def->disks[i].pci.bus ? &def->disks[i].pci : NULL;
	}
	for (size_t i = 0; i < def->n_nics; i++) {
		snprintf(name, sizeof(name), "nic%u", def->nics[i].id);
		if (util_streq(name, id))
			return def->nics[i].pci.bus ? &def->nics[i].pci : NULL;
	}
	return NULL;
}

static int is_hotplugged(qmp_client *q, const char *id, bool *ret, util_err *err)
{
	_cleanup_json_ json_t *args =
	        json_pack("{s:o, s:s}", "path", json_sprintf("/machine/peripheral/%s", id),
	                  "property", "hotplugged");
	_cleanup_json_ json_t *v = NULL;
	int r = qmp_execute(q, "qom-get", args, 0, &v, err);

	*ret = r == 0 && json_is_true(v);
	return r;
}

/* One device of /machine/peripheral: fine unless hot-plugged and not
 * where the definition places it. */
static int check_one(json_t *buses, qmp_client *q, const lc_vmdef *def, const char *id,
                     util_err *err)
{
	const lc_pci *want;
	lc_pci now;
	bool hot;
	int r = is_hotplugged(q, id, &hot, err);

	if (r < 0 || !hot)
		return r;
	want = placed_in_def(def, id);
	if (!want)
		return util_err_set(
		        err, -ENOTSUP,
		        "its device '%s' was hot-plugged where the next qemu would not put it again (the definition keeps no pci slot for it, e.g. a scsi controller or disk, or an attach cut short), so the checkpoint could not be loaded; power the vm off and start it again (or detach the device) first",
		        id);
	if (!find_device(buses, def, id, &now) || !util_streq(now.bus, want->bus) ||
	    now.slot != want->slot)
		return util_err_set(
		        err, -ENOTSUP,
		        "its device '%s' does not sit where the definition places it (%s slot %u), so the checkpoint could not be loaded; power the vm off and start it again first",
		        id, want->bus, want->slot);
	return 0;
}

/* Where the next QEMU puts a device QEMU places itself: the lowest root
 * slot free of the built-in devices (those with no id: host bridge, ISA,
 * LPC), the placed ones and the devices before it. -1: not on the root
 * bus now, nothing to compare. */
static int next_slot(json_t *buses, const lc_vmdef *def, const char *id, uint32_t *used)
{
	lc_pci now;

	if (!find_device(buses, def, id, &now) || !util_streq(now.bus, root_bus(def)))
		return -1;
	for (int s = 0; s < 32; s++)
		if (!(*used & (1u << s))) {
			*used |= 1u << s;
			return s == (int)now.slot ? -1 : s;
		}
	return -1;
}

/* The devices QEMU placed itself at start (in command-line order: the
 * scsi controller, the disks, the seed, the nics, q35's ports) come again
 * in the lowest free slots: a device detached before them while the vm ran
 * left a gap they would move into, and the checkpoint would not load. */
static int check_order(json_t *buses, const lc_vmdef *def, util_err *err)
{
	util_strv ids = { 0 };
	uint32_t used = 0;
	json_t *dev;
	size_t i;
	int r = 0;

	json_array_foreach (root_devices(buses), i, dev) {
		const char *qid = json_string_value(json_object_get(dev, "qdev_id"));

		if (!qid || !*qid)
			used |= 1u << (json_integer_value(json_object_get(dev, "slot")) & 31);
	}
	for (size_t k = 0; k < def->n_disks; k++)
		if (def->disks[k].pci.bus)
			used |= util_streq(def->disks[k].pci.bus, root_bus(def))
			                ? 1u << def->disks[k].pci.slot
			                : 0;
	for (size_t k = 0; k < def->n_nics; k++)
		if (def->nics[k].pci.bus)
			used |= util_streq(def->nics[k].pci.bus, root_bus(def))
			                ? 1u << def->nics[k].pci.slot
			                : 0;
	util_strv_push(&ids, "scsi0");
	for (size_t k = 0; k < def->n_disks; k++)
		if (!def->disks[k].pci.bus && def->disks[k].bus == LC_BUS_VIRTIO)
			util_strv_pushf(&ids, "disk%u", def->disks[k].id);
	util_strv_push(&ids, "seed0");
	for (size_t k = 0; k < def->n_nics; k++)
		if (!def->nics[k].pci.bus)
			util_strv_pushf(&ids, "nic%u", def->nics[k].id);
	for (int k = 0; def->machine == LC_MACHINE_Q35 && k < LC_HOTPLUG_PORTS; k++)
		util_strv_pushf(&ids, "hp%d", k);
	for (size_t k = 0; k < ids.n && r == 0; k++) {
		int s = next_slot(buses, def, ids.v[k], &used);

		if (s >= 0)
			r = util_err_set(
			        err, -ENOTSUP,
			        "its device '%s' would sit at slot %d in the next qemu, not where it is now (a device before it was detached while the vm ran), so the checkpoint could not be loaded; power the vm off and start it again first",
			        ids.v[k], s);
	}
	util_strv_clear(&ids);
	return r;
}

int lc_check_hotplug_placed(qmp_client *q, const lc_vmdef *def, util_err *err)
{
	_cleanup_json_ json_t *args = json_pack("{s:s}", "path", "/machine/peripheral");
	_cleanup_json_ json_t *list = NULL, *buses = NULL;
	json_t *e;
	size_t i;
	int r = qmp_execute(q, "qom-list", args, 0, &list, err);

	if (r == 0)
		r = query_pci(q, &buses, err);
	json_array_foreach (list, i, e) {
		const char *type = json_string_value(json_object_get(e, "type"));

		if (r < 0)
			break;
		if (type && util_startswith(type, "child<"))
			r = check_one(buses, q, def, json_string_value(json_object_get(e, "name")),
			              err);
	}
	return r < 0 ? r : check_order(buses, def, err);
}
