/* Definitions: JSON round trip, refusals, --disk and --nic specs. */
#include <string.h>

#include "lifecycle/lifecycle.h"
#include "tap.h"

static int from_text(const char *text, lc_vmdef *def, util_err *err)
{
	json_error_t jerr;
	_cleanup_json_ json_t *j = json_loads(text, 0, &jerr);

	if (!j)
		return util_err_set(err, -EINVAL, "test json: %s", jerr.text);
	return lc_vmdef_from_json(j, def, err);
}

static void refused(const char *text, const char *needle)
{
	util_err err = { 0 };
	lc_vmdef def;
	int r = from_text(text, &def, &err);

	if (r == 0)
		lc_vmdef_clear(&def);
	ok(r < 0 && strstr(err.msg, needle), "refused %s: %s", text, err.msg);
}

int main(void)
{
	util_err err = { 0 };
	lc_vmdef def, back;
	lc_disk d;
	lc_nic n;
	char *s1, *s2;
	json_t *j;

	ok(from_text(
	           "{\"name\":\"web\",\"memory\":\"1G\",\"vcpus\":2,\"machine\":\"q35\","
	           "\"disks\":[\"10G\",\"/srv/base.qcow2,bus=scsi,readonly=on\"],"
	           "\"nics\":[\"lan,mac=52:54:00:00:00:01\"],\"labels\":{\"tier\":\"web\"},"
	           "\"kernel\":\"/boot/k\",\"append\":\"console=ttyS0\",\"restart\":\"on-failure\"}",
	           &def, &err) == 0,
	   "a definition with specs parses: %s", err.msg);
	ok(def.memory == 1ull << 30 && def.vcpus == 2 && def.machine == LC_MACHINE_Q35, "fields");
	ok(def.n_disks == 2 && def.disks[0].size == 10ull << 30 &&
	           def.disks[1].bus == LC_BUS_SCSI && def.disks[1].readonly && def.disks[1].id == 1,
	   "disks from specs");
	ok(def.n_nics == 1 && !strcmp(def.nics[0].mac, "52:54:00:00:00:01") &&
	           !strcmp(def.nics[0].model, "virtio"),
	   "nic from spec");
	j = lc_vmdef_to_json(&def);
	s1 = json_dumps(j, JSON_SORT_KEYS);
	ok(lc_vmdef_from_json(j, &back, &err) == 0, "its JSON parses back");
	json_decref(j);
	j = lc_vmdef_to_json(&back);
	s2 = json_dumps(j, JSON_SORT_KEYS);
	is_str(s2, s1, "and round-trips exactly");
	free(s1);
	free(s2);
	json_decref(j);
	lc_vmdef_clear(&def);
	lc_vmdef_clear(&back);

	/* a hot-plugged device's slot: kept through JSON, only where qvm puts one */
	ok(from_text("{\"name\":\"web\",\"machine\":\"q35\",\"disks\":[{\"id\":0,"
	             "\"path\":\"/d.qcow2\",\"format\":\"qcow2\",\"pci_bus\":\"hp2\","
	             "\"pci_slot\":0}],\"nics\":[{\"id\":0,\"network\":\"lan\","
	             "\"pci_bus\":\"pci.0\",\"pci_slot\":5},{\"id\":1,\"network\":\"lan\"}]}",
	             &def, &err) == 0,
	   "a definition with placed devices parses: %s", err.msg);
	ok(def.disks[0].pci.bus && !strcmp(def.disks[0].pci.bus, "hp2") &&
	           def.disks[0].pci.slot == 0 && !strcmp(def.nics[0].pci.bus, "pci.0") &&
	           def.nics[0].pci.slot == 5 && !def.nics[1].pci.bus,
	   "the slots are kept, none for an unplaced nic");
	j = lc_vmdef_to_json(&def);
	ok(json_integer_value(json_object_get(json_array_get(json_object_get(j, "nics"), 0),
	                                      "pci_slot")) == 5 &&
	           !json_object_get(json_array_get(json_object_get(j, "nics"), 1), "pci_bus"),
	   "and written back, only for the placed one");
	json_decref(j);
	lc_vmdef_clear(&def);
	refused("{\"name\":\"web\",\"nics\":[{\"network\":\"lan\",\"pci_bus\":\"pci.1\","
	        "\"pci_slot\":3}]}",
	        "pci_bus 'pci.1' is none of");
	refused("{\"name\":\"web\",\"nics\":[{\"network\":\"lan\",\"pci_bus\":\"hp4\"}]}",
	        "pci_bus 'hp4' is none of");
	refused("{\"name\":\"web\",\"nics\":[{\"network\":\"lan\",\"pci_bus\":\"hp1\","
	        "\"pci_slot\":3}]}",
	        "pci_slot 3 cannot be used on pci_bus 'hp1'");
	refused("{\"name\":\"web\",\"nics\":[{\"network\":\"lan\",\"pci_bus\":\"pci.0\"}]}",
	        "pci_slot 0 cannot be used on pci_bus 'pci.0'");
	refused("{\"name\":\"web\",\"nics\":[{\"network\":\"lan\",\"pci_slot\":3}]}",
	        "pci_slot without pci_bus");
	refused("{\"name\":\"web\",\"nics\":[{\"network\":\"lan\",\"pci_bus\":\"pci.0\","
	        "\"pci_slot\":32}]}",
	        "'pci_slot' must be a whole number from 0 to 31");

	refused("{\"name\":\"web\",\"memroy\":\"1G\"}", "unknown key 'memroy'");
	refused("{\"name\":\"-web\"}", "invalid vm name");
	refused("{\"name\":\"12\"}", "all digits");
	refused("{\"name\":\"web\",\"memory\":\"1K\"}", "memory");
	refused("{\"name\":\"web\",\"vcpus\":0}", "vcpus");
	refused("{\"name\":\"web\",\"vcpus\":256}", "vcpus");
	refused("{\"name\":\"web\",\"machine\":\"virt\"}", "unknown machine type 'virt'");
	refused("{\"name\":\"web\",\"kernel\":\"vmlinuz\"}", "absolute path");
	refused("{\"name\":\"web\",\"append\":\"x\"}", "need --kernel");
	refused("{\"name\":\"web\",\"vcpus\":2,\"max_vcpus\":1}", "max-vcpus 1 is below vcpus 2");
	refused("{\"name\":\"web\",\"memory\":\"512M\",\"max_memory\":\"256M\"}",
	        "max-memory 256M is below memory 512M");
	refused("{\"name\":\"web\",\"memory\":\"256M\",\"max_memory\":\"300M\"}",
	        "whole number of 128 MiB");
	refused("{\"name\":\"web\",\"machine\":\"microvm\",\"max_vcpus\":2}",
	        "microvm has no cpu or memory hotplug");
	refused("{\"name\":\"web\",\"kernel\":\"/k\",\"append\":\"a\\nb\"}", "control character");
	refused("{\"name\":\"web\",\"kernel\":\"/k\",\"initrd\":\"/i,x\"}", "comma");
	refused("{\"name\":\"web\",\"machine\":\"microvm\",\"cdrom\":\"/x.iso\"}", "no cdrom");
	refused("{\"name\":\"web\",\"machine\":\"microvm\",\"disks\":[\"1G,bus=ide\"]}",
	        "no ide bus");
	refused("{\"name\":\"web\",\"nics\":[\"lan,mac=01:00:5e:00:00:01\"]}", "unicast");
	refused("{\"name\":\"web\",\"nics\":[\"lan,mac=52:54:00:00:00:01\",\"dmz,mac=52:54:00:00:00:01\"]}",
	        "used by two nics");
	refused("{\"name\":\"web\",\"labels\":{\"a b\":\"x\"}}", "label key");
	refused("{\"name\":\"web\",\"labels\":{\"a\":1}}", "must be a string");
	refused("{\"name\":\"web\",\"disks\":[{\"source\":\"1G\",\"format\":\"vmdk\"}]}",
	        "not supported");
	refused("[]", "JSON object");
	{
		char big[2048], many[4096];
		size_t m = 0;

		memset(big, 0, sizeof(big));
		snprintf(big, sizeof(big), "{\"name\":\"web\",\"labels\":{\"a\":\"");
		memset(big + strlen(big), 'x', 1100);
		strcat(big, "\"}}");
		refused(big, "too long");
		m = (size_t)snprintf(many, sizeof(many), "{\"name\":\"web\",\"user\":{");
		for (int i = 0; i < 65; i++)
			m += (size_t)snprintf(many + m, sizeof(many) - m, "%s\"k%d\":\"v\"",
			                      i ? "," : "", i);
		snprintf(many + m, sizeof(many) - m, "}}");
		refused(many, "too many user data");
	}

	ok(lc_disk_parse("20G", &d, &err) == 0 && d.size == 20ull << 30 && !d.backing, "disk 20G");
	lc_disk_clear(&d);
	ok(lc_disk_parse("/srv/img.raw,format=raw,bus=ide", &d, &err) == 0 &&
	           !strcmp(d.source, "/srv/img.raw") && !strcmp(d.backing_format, "raw") &&
	           d.bus == LC_BUS_IDE,
	   "disk path with format and bus");
	lc_disk_clear(&d);
	ok(lc_disk_parse("debian12", &d, &err) == 0 && !strcmp(d.source, "debian12"),
	   "disk image name");
	lc_disk_clear(&d);
	ok(lc_disk_parse("size=1G,cache=none", &d, &err) < 0 &&
	           strstr(err.msg, "unknown disk option 'cache'"),
	   "unknown disk option refused: %s", err.msg);
	ok(lc_disk_parse("../etc/passwd", &d, &err) < 0, "relative path refused: %s", err.msg);
	ok(lc_disk_parse("1G,format=raw", &d, &err) == 0 && util_streq(d.format, "raw") &&
	           !d.backing_format && d.size == 1ull << 30,
	   "format=raw on a blank disk: the disk's own format");
	lc_disk_clear(&d);
	ok(lc_disk_parse("format=raw,size=1G", &d, &err) == 0 && util_streq(d.format, "raw"),
	   "... whatever the order of the options");
	lc_disk_clear(&d);
	ok(lc_disk_parse("2G", &d, &err) == 0 && !d.format,
	   "a blank disk without format= is left to placement (qcow2)");
	lc_disk_clear(&d);
	ok(lc_disk_parse("format=raw,/srv/a.raw", &d, &err) < 0,
	   "a bare token after an option is refused");
	ok(lc_disk_parse("image=/srv/a.raw,format=raw", &d, &err) == 0 && !d.format &&
	           util_streq(d.backing_format, "raw"),
	   "format= on an image names the image's format");
	lc_disk_clear(&d);
	ok(lc_disk_parse("1G,format=vmdk", &d, &err) < 0 &&
	           strstr(err.msg, "'vmdk' is not supported"),
	   "format=vmdk refused: %s", err.msg);
	ok(lc_disk_parse("", &d, &err) < 0, "empty disk spec refused");
	ok(lc_nic_parse("lan,model=rtl8139", &n, &err) < 0 && strstr(err.msg, "rtl8139"),
	   "nic model refused");
	ok(lc_nic_parse("lan,mac=zz:54:00:00:00:01", &n, &err) < 0, "bad mac refused");
	ok(lc_nic_parse("lan,ip=10.0.0.5", &n, &err) == 0 && !strcmp(n.ip, "10.0.0.5"),
	   "nic with ip");
	lc_nic_clear(&n);
	/* vnc: {"listen"} round trips, defaults to loopback, only IP literals */
	ok(from_text("{\"name\":\"v\",\"vnc\":{}}", &def, &err) == 0 &&
	           util_streq(def.vnc_listen, LC_VNC_LISTEN_DEFAULT),
	   "vnc {} listens on loopback: %s", err.msg);
	j = lc_vmdef_to_json(&def);
	ok(util_streq(json_string_value(json_object_get(json_object_get(j, "vnc"), "listen")),
	              "127.0.0.1"),
	   "vnc.listen in its JSON");
	json_decref(j);
	lc_vmdef_clear(&def);
	ok(from_text("{\"name\":\"v\"}", &def, &err) == 0 && !def.vnc_listen, "no vnc: none");
	j = lc_vmdef_to_json(&def);
	ok(!json_object_get(j, "vnc"),
	   "... and no vnc key in its JSON (old definitions unchanged)");
	json_decref(j);
	lc_vmdef_clear(&def);
	ok(from_text("{\"name\":\"v\",\"vnc\":{\"listen\":\"::1\"}}", &def, &err) == 0 &&
	           lc_vmdef_validate(&def, &err) == 0,
	   "vnc on ::1 is valid: %s", err.msg);
	lc_vmdef_clear(&def);
	refused("{\"name\":\"v\",\"vnc\":{\"listen\":\"1.2.3.4,share=x\"}}",
	        "not an IPv4 or IPv6 address");
	refused("{\"name\":\"v\",\"vnc\":{\"port\":5900}}", "unknown key");
	refused("{\"name\":\"v\",\"vnc\":true}", "'vnc' must be an object");

	return done_testing();
}
