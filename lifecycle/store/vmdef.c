/* VM definitions: the C form, its JSON form (what `dump` prints, `create
 * --from` reads and the journal keeps), validation, and --disk/--nic specs. */
#include <ctype.h>
#include <arpa/inet.h>
#include <string.h>

#include "store.h"

/* ---- enum names ------------------------------------------------------------ */

static const char *const machine_names[] = { "pc", "q35", "microvm" };
static const char *const accel_names[] = { "auto", "kvm", "tcg" };
static const char *const restart_names[] = { "no", "on-failure", "always" };
static const char *const bus_names[] = { "virtio", "scsi", "ide" };

static int parse_enum(const char *s, const char *const *names, size_t n, const char *what, int *ret,
                      util_err *err)
{
	char list[128] = "";
	size_t used = 0;

	for (size_t i = 0; i < n; i++)
		if (util_streq(s, names[i])) {
			*ret = (int)i;
			return 0;
		}
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
		                         names[i]);
	return util_err_set(err, -EINVAL, "unknown %s '%s' (use %s)", what, s ? s : "", list);
}

#define ENUM_FUNCS(type, lower, what)                                                              \
	const char *lc_##lower##_name(lc_##type v)                                                 \
	{                                                                                          \
		return (size_t)v < UTIL_ARRAY_SIZE(lower##_names) ? lower##_names[v] : "?";        \
	}                                                                                          \
	int lc_##lower##_parse(const char *s, lc_##type *ret, util_err *err)                       \
	{                                                                                          \
		int v, r = parse_enum(s, lower##_names, UTIL_ARRAY_SIZE(lower##_names), what, &v,  \
		                      err);                                                        \
		if (r == 0)                                                                        \
			*ret = (lc_##type)v;                                                       \
		return r;                                                                          \
	}

ENUM_FUNCS(machine, machine, "machine type")
ENUM_FUNCS(accel, accel, "accelerator")
ENUM_FUNCS(restart, restart, "restart policy")
ENUM_FUNCS(bus, bus, "disk bus")

/* ---- lifetime ---------------------------------------------------------------- */

void lc_vmdef_init(lc_vmdef *def)
{
	memset(def, 0, sizeof(*def));
	def->memory = LC_MEMORY_DEFAULT;
	def->vcpus = 1;
	def->labels = json_object();
	def->user = json_object();
}

void lc_disk_clear(lc_disk *d)
{
	free(d->path);
	free(d->format);
	free(d->backing);
	free(d->backing_format);
	free(d->source);
	free(d->pci.bus);
	memset(d, 0, sizeof(*d));
}

void lc_nic_clear(lc_nic *n)
{
	free(n->network);
	free(n->mac);
	free(n->ip);
	free(n->model);
	free(n->pci.bus);
	memset(n, 0, sizeof(*n));
}

void lc_vmdef_clear(lc_vmdef *def)
{
	free(def->name);
	free(def->uuid);
	for (size_t i = 0; i < def->n_disks; i++)
		lc_disk_clear(&def->disks[i]);
	free(def->disks);
	for (size_t i = 0; i < def->n_nics; i++)
		lc_nic_clear(&def->nics[i]);
	free(def->nics);
	free(def->cdrom);
	free(def->kernel);
	free(def->initrd);
	free(def->append);
	free(def->ci_user_data);
	free(def->ci_meta_data);
	free(def->ci_network_config);
	json_decref(def->labels);
	json_decref(def->user);
	free(def->vnc_listen);
	memset(def, 0, sizeof(*def));
}

/* ---- to JSON ------------------------------------------------------------------ */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Only a placed device has the keys: definitions without stay as they were. */
static json_t *with_pci(json_t *obj, const lc_pci *p)
{
	if (p->bus) {
		json_object_set_new(obj, "pci_bus", json_string(p->bus));
		json_object_set_new(obj, "pci_slot", json_integer(p->slot));
	}
	return obj;
}

static json_t *disk_to_json(const lc_disk *d)
{
	return with_pci(json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:s, s:b, s:b}", "id",
	                          (json_int_t)d->id, "path", str_or_null(d->path), "format",
	                          str_or_null(d->format), "backing", str_or_null(d->backing),
	                          "backing_format", str_or_null(d->backing_format), "source",
	                          str_or_null(d->source), "size", (json_int_t)d->size, "bus",
	                          lc_bus_name(d->bus), "readonly", d->readonly, "owned", d->owned),
	                &d->pci);
}

static json_t *nic_to_json(const lc_nic *n)
{
	return with_pci(json_pack("{s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)n->id, "network",
	                          str_or_null(n->network), "mac", str_or_null(n->mac), "ip",
	                          str_or_null(n->ip), "model", str_or_null(n->model)),
	                &n->pci);
}

static json_t *vmdef_base_json(const lc_vmdef *def);

json_t *lc_vmdef_to_json(const lc_vmdef *def)
{
	json_t *j = vmdef_base_json(def);

	/* only when set: definitions without it read as they always did */
	if (def->vnc_listen)
		json_object_set_new(j, "vnc", json_pack("{s:s}", "listen", def->vnc_listen));
	return j;
}

static json_t *vmdef_base_json(const lc_vmdef *def)
{
	json_t *disks = json_array(), *nics = json_array();

	for (size_t i = 0; i < def->n_disks; i++)
		json_array_append_new(disks, disk_to_json(&def->disks[i]));
	for (size_t i = 0; i < def->n_nics; i++)
		json_array_append_new(nics, nic_to_json(&def->nics[i]));
	return json_pack(
	        "{s:o, s:o, s:I, s:i, s:I, s:i, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o,"
	        " s:{s:o, s:o, s:o}, s:s, s:b, s:b, s:o, s:o}",
	        "name", str_or_null(def->name), "uuid", str_or_null(def->uuid), "memory",
	        (json_int_t)def->memory, "vcpus", (int)def->vcpus, "max_memory",
	        (json_int_t)def->max_memory, "max_vcpus", (int)def->max_vcpus, "machine",
	        lc_machine_name(def->machine), "accel", lc_accel_name(def->accel), "disks", disks,
	        "nics", nics, "cdrom", str_or_null(def->cdrom), "kernel", str_or_null(def->kernel),
	        "initrd", str_or_null(def->initrd), "append", str_or_null(def->append),
	        "cloud_init", "user_data", str_or_null(def->ci_user_data), "meta_data",
	        str_or_null(def->ci_meta_data), "network_config",
	        str_or_null(def->ci_network_config), "restart", lc_restart_name(def->restart),
	        "autostart", def->autostart, "guest_agent", def->guest_agent,
	        /* "o" steals: a reference of ours, or a new empty object */
	        "labels", def->labels ? json_incref(def->labels) : json_object(), "user",
	        def->user ? json_incref(def->user) : json_object());
}

/* ---- from JSON ------------------------------------------------------------------ */

/* Refuse keys outside `known` so that a typo never drops a setting. */
static int check_keys(json_t *obj, const char *const *known, const char *where, util_err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach (obj, key, v) {
		if (!util_strv_contains(known, key))
			return util_err_set(err, -EINVAL, "unknown key '%s' in %s", key, where);
	}
	return 0;
}

static int get_str(json_t *obj, const char *key, char **ret, util_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return util_err_set(err, -EINVAL, "'%s' must be a string", key);
	free(*ret);
	*ret = util_xstrdup(json_string_value(v));
	return 0;
}

static int get_bool(json_t *obj, const char *key, bool *ret, util_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return util_err_set(err, -EINVAL, "'%s' must be true or false", key);
	*ret = json_is_true(v);
	return 0;
}

/* A size as a number of bytes or a string with a suffix ("512M"). */
static int get_size(json_t *obj, const char *key, uint64_t *ret, util_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		int r = util_parse_size(json_string_value(v), ret, err);

		return r < 0 ? util_err_prefix(err, "'%s'", key) : 0;
	}
	return util_err_set(err, -EINVAL, "'%s' must be a size (bytes, or a string like \"512M\")",
	                    key);
}

static int get_uint(json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t *ret,
                    util_err *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min || (uint64_t)json_integer_value(v) > max)
		return util_err_set(err, -EINVAL, "'%s' must be a whole number from %llu to %llu",
		                    key, (unsigned long long)min, (unsigned long long)max);
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

#define TRY(x)                                                                                     \
	do {                                                                                       \
		int r_ = (x);                                                                      \
		if (r_ < 0)                                                                        \
			return r_;                                                                 \
	} while (0)

/* The bus is one qvm's command line makes (the root bus or a hotplug
 * port); a slot of 0 behind a port, where a root port has its only one. */
static int pci_from_json(json_t *j, lc_pci *p, util_err *err)
{
	uint64_t slot = 0;
	bool port;

	TRY(get_str(j, "pci_bus", &p->bus, err));
	TRY(get_uint(j, "pci_slot", 0, 31, &slot, err));
	p->slot = (unsigned)slot;
	if (!p->bus)
		return json_object_get(j, "pci_slot")
		               ? util_err_set(err, -EINVAL, "pci_slot without pci_bus")
		               : 0;
	port = strlen(p->bus) == 3 && util_startswith(p->bus, "hp") && p->bus[2] >= '0' &&
	       p->bus[2] < '0' + LC_HOTPLUG_PORTS;
	if (!port && !util_streq(p->bus, "pci.0") && !util_streq(p->bus, "pcie.0"))
		return util_err_set(err, -EINVAL,
		                    "pci_bus '%s' is none of pci.0, pcie.0, hp0..hp%d", p->bus,
		                    LC_HOTPLUG_PORTS - 1);
	if (port ? slot != 0 : slot == 0)
		return util_err_set(err, -EINVAL, "pci_slot %u cannot be used on pci_bus '%s'",
		                    p->slot, p->bus);
	return 0;
}

static int disk_from_json(json_t *j, unsigned index, lc_disk *d, util_err *err)
{
	static const char *const keys[] = {
		"id",  "path",     "format", "backing", "backing_format", "source", "size",
		"bus", "readonly", "owned",  "pci_bus", "pci_slot",       NULL
	};
	_cleanup_free_ char *bus = NULL;
	uint64_t id = index;

	if (json_is_string(j)) {
		int r = lc_disk_parse(json_string_value(j), d, err);

		if (r == 0)
			d->id = index;
		return r;
	}
	if (!json_is_object(j))
		return util_err_set(err, -EINVAL,
		                    "a disk must be an object or a --disk spec string");
	TRY(check_keys(j, keys, "a disk", err));
	memset(d, 0, sizeof(*d));
	TRY(get_uint(j, "id", 0, LC_DISKS_MAX * 64, &id, err));
	d->id = (unsigned)id;
	TRY(get_str(j, "path", &d->path, err));
	TRY(get_str(j, "format", &d->format, err));
	TRY(get_str(j, "backing", &d->backing, err));
	TRY(get_str(j, "backing_format", &d->backing_format, err));
	TRY(get_str(j, "source", &d->source, err));
	TRY(get_size(j, "size", &d->size, err));
	TRY(get_str(j, "bus", &bus, err));
	if (bus)
		TRY(lc_bus_parse(bus, &d->bus, err));
	TRY(get_bool(j, "readonly", &d->readonly, err));
	TRY(get_bool(j, "owned", &d->owned, err));
	return pci_from_json(j, &d->pci, err);
}

static int nic_from_json(json_t *j, unsigned index, lc_nic *n, util_err *err)
{
	static const char *const keys[] = { "id",    "network", "mac",      "ip",
		                            "model", "pci_bus", "pci_slot", NULL };
	uint64_t id = index;

	if (json_is_string(j)) {
		int r = lc_nic_parse(json_string_value(j), n, err);

		if (r == 0)
			n->id = index;
		return r;
	}
	if (!json_is_object(j))
		return util_err_set(err, -EINVAL, "a nic must be an object or a --nic spec string");
	TRY(check_keys(j, keys, "a nic", err));
	memset(n, 0, sizeof(*n));
	TRY(get_uint(j, "id", 0, LC_NICS_MAX * 64, &id, err));
	n->id = (unsigned)id;
	TRY(get_str(j, "network", &n->network, err));
	TRY(get_str(j, "mac", &n->mac, err));
	TRY(get_str(j, "ip", &n->ip, err));
	TRY(get_str(j, "model", &n->model, err));
	if (!n->model)
		n->model = util_xstrdup("virtio");
	return pci_from_json(j, &n->pci, err);
}

static int string_map_from_json(json_t *j, const char *key, json_t **ret, util_err *err)
{
	json_t *v = json_object_get(j, key);
	const char *k;
	json_t *x;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return util_err_set(err, -EINVAL, "'%s' must be an object of strings", key);
	json_object_foreach (v, k, x)
		if (!json_is_string(x))
			return util_err_set(err, -EINVAL, "'%s.%s' must be a string", key, k);
	json_decref(*ret);
	*ret = json_deep_copy(v);
	return 0;
}

/* "vnc": {"listen": ADDR} (ADDR defaults to loopback), or null / absent. */
static int vnc_from_json(json_t *obj, lc_vmdef *def, util_err *err)
{
	static const char *const vnc_keys[] = { "listen", NULL };
	json_t *v = json_object_get(obj, "vnc");

	if (!v || json_is_null(v)) {
		free(def->vnc_listen);
		def->vnc_listen = NULL;
		return 0;
	}
	if (!json_is_object(v))
		return util_err_set(err, -EINVAL,
		                    "'vnc' must be an object ({\"listen\": ADDR}) or null");
	TRY(check_keys(v, vnc_keys, "vnc", err));
	TRY(get_str(v, "listen", &def->vnc_listen, err));
	if (!def->vnc_listen)
		def->vnc_listen = util_xstrdup(LC_VNC_LISTEN_DEFAULT);
	return 0;
}

static int vmdef_fill(json_t *obj, lc_vmdef *def, util_err *err)
{
	static const char *const keys[] = { "name",        "uuid",      "memory",     "vcpus",
		                            "max_memory",  "max_vcpus", "machine",    "accel",
		                            "disks",       "nics",      "cdrom",      "kernel",
		                            "initrd",      "append",    "cloud_init", "restart",
		                            "autostart",   "labels",    "user",       "vnc",
		                            "guest_agent", NULL };
	static const char *const ci_keys[] = { "user_data", "meta_data", "network_config", NULL };
	_cleanup_free_ char *machine = NULL, *accel = NULL, *restart = NULL;
	json_t *disks, *nics, *ci;
	uint64_t vcpus = def->vcpus, max_vcpus = def->max_vcpus;
	size_t i;
	json_t *v;

	if (!json_is_object(obj))
		return util_err_set(err, -EINVAL, "a vm definition must be a JSON object");
	TRY(check_keys(obj, keys, "the vm definition", err));
	TRY(get_str(obj, "name", &def->name, err));
	TRY(get_str(obj, "uuid", &def->uuid, err));
	TRY(get_size(obj, "memory", &def->memory, err));
	TRY(get_uint(obj, "vcpus", 1, LC_VCPUS_MAX, &vcpus, err));
	def->vcpus = (unsigned)vcpus;
	TRY(get_size(obj, "max_memory", &def->max_memory, err));
	TRY(get_uint(obj, "max_vcpus", 0, LC_VCPUS_MAX, &max_vcpus, err));
	def->max_vcpus = (unsigned)max_vcpus;
	TRY(get_str(obj, "machine", &machine, err));
	if (machine)
		TRY(lc_machine_parse(machine, &def->machine, err));
	TRY(get_str(obj, "accel", &accel, err));
	if (accel)
		TRY(lc_accel_parse(accel, &def->accel, err));
	TRY(get_str(obj, "restart", &restart, err));
	if (restart)
		TRY(lc_restart_parse(restart, &def->restart, err));
	TRY(get_bool(obj, "autostart", &def->autostart, err));
	TRY(get_bool(obj, "guest_agent", &def->guest_agent, err));
	TRY(get_str(obj, "cdrom", &def->cdrom, err));
	TRY(get_str(obj, "kernel", &def->kernel, err));
	TRY(get_str(obj, "initrd", &def->initrd, err));
	TRY(get_str(obj, "append", &def->append, err));
	ci = json_object_get(obj, "cloud_init");
	if (ci && !json_is_null(ci)) {
		if (!json_is_object(ci))
			return util_err_set(err, -EINVAL, "'cloud_init' must be an object");
		TRY(check_keys(ci, ci_keys, "cloud_init", err));
		TRY(get_str(ci, "user_data", &def->ci_user_data, err));
		TRY(get_str(ci, "meta_data", &def->ci_meta_data, err));
		TRY(get_str(ci, "network_config", &def->ci_network_config, err));
	}
	TRY(string_map_from_json(obj, "labels", &def->labels, err));
	TRY(string_map_from_json(obj, "user", &def->user, err));
	TRY(vnc_from_json(obj, def, err));

	disks = json_object_get(obj, "disks");
	if (disks && !json_is_null(disks)) {
		if (!json_is_array(disks))
			return util_err_set(err, -EINVAL, "'disks' must be an array");
		if (json_array_size(disks) > LC_DISKS_MAX)
			return util_err_set(err, -EINVAL, "too many disks (%zu, at most %d)",
			                    json_array_size(disks), LC_DISKS_MAX);
		def->disks = util_xcalloc(json_array_size(disks), sizeof(lc_disk));
		json_array_foreach (disks, i, v) {
			/* counted first: a disk refused half-read is freed too */
			def->n_disks = i + 1;
			if (disk_from_json(v, (unsigned)i, &def->disks[i], err) < 0)
				return util_err_prefix(err, "disk %zu", i);
		}
	}
	nics = json_object_get(obj, "nics");
	if (nics && !json_is_null(nics)) {
		if (!json_is_array(nics))
			return util_err_set(err, -EINVAL, "'nics' must be an array");
		if (json_array_size(nics) > LC_NICS_MAX)
			return util_err_set(err, -EINVAL, "too many nics (%zu, at most %d)",
			                    json_array_size(nics), LC_NICS_MAX);
		def->nics = util_xcalloc(json_array_size(nics), sizeof(lc_nic));
		json_array_foreach (nics, i, v) {
			def->n_nics = i + 1;
			if (nic_from_json(v, (unsigned)i, &def->nics[i], err) < 0)
				return util_err_prefix(err, "nic %zu", i);
		}
	}
	return 0;
}

int lc_vmdef_from_json(json_t *obj, lc_vmdef *ret_def, util_err *err)
{
	lc_vmdef def;
	int r;

	lc_vmdef_init(&def);
	r = vmdef_fill(obj, &def, err);
	if (r == 0)
		r = lc_vmdef_validate(&def, err);
	if (r < 0) {
		lc_vmdef_clear(&def);
		return r;
	}
	*ret_def = def;
	return 0;
}

/* ---- validation ------------------------------------------------------------------ */

static int check_path(const char *path, const char *what, util_err *err)
{
	if (!path)
		return 0;
	if (path[0] != '/')
		return util_err_set(err, -EINVAL, "%s '%s' must be an absolute path", what, path);
	return util_validate_printable(path, what, err);
}

static bool is_mac(const char *s)
{
	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	/* a unicast address: the low bit of the first octet is clear */
	return (strtoul(s, NULL, 16) & 1) == 0;
}

static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* Bounds on labels and user data (documented in qvm(8)). */
#define VMDEF_MAP_MAX   64
#define VMDEF_VALUE_MAX 1024

/* what: "label" or "user data" */
static int validate_map(json_t *map, const char *what, util_err *err)
{
	char kind[64];
	const char *k;
	json_t *v;

	/* Each update journals the whole definition: keep it small. */
	if (json_object_size(map) > VMDEF_MAP_MAX)
		return util_err_set(err, -EINVAL, "too many %s entries: %zu (at most %d)", what,
		                    json_object_size(map), VMDEF_MAP_MAX);
	json_object_foreach (map, k, v) {
		if (json_is_string(v) && strlen(json_string_value(v)) > VMDEF_VALUE_MAX)
			return util_err_set(err, -EINVAL,
			                    "the value of %s '%s' is too long (at most %d bytes)",
			                    what, k, VMDEF_VALUE_MAX);
		snprintf(kind, sizeof(kind), "%s key", what);
		TRY(util_validate_name(k, kind, err));
		snprintf(kind, sizeof(kind), "the value of %s '%s'", what, k);
		TRY(util_validate_printable(json_string_value(v), kind, err));
	}
	return 0;
}

static int validate_disk(const lc_vmdef *def, const lc_disk *d, util_err *err)
{
	if (d->format && !util_streq(d->format, "qcow2") && !util_streq(d->format, "raw"))
		return util_err_set(err, -EINVAL,
		                    "disk %u: format '%s' is not supported (use qcow2 or raw)",
		                    d->id, d->format);
	if (d->backing_format && !util_streq(d->backing_format, "qcow2") &&
	    !util_streq(d->backing_format, "raw"))
		return util_err_set(
		        err, -EINVAL,
		        "disk %u: image format '%s' is not supported (use qcow2 or raw)", d->id,
		        d->backing_format);
	if (d->bus == LC_BUS_IDE && def->machine == LC_MACHINE_MICROVM)
		return util_err_set(err, -EINVAL,
		                    "disk %u: machine microvm has no ide bus (use virtio or scsi)",
		                    d->id);
	if (!d->source && !d->path)
		return util_err_set(err, -EINVAL, "disk %u has neither a source nor a path", d->id);
	TRY(check_path(d->path, "disk path", err));
	TRY(check_path(d->backing, "disk image", err));
	if (d->source)
		TRY(util_validate_printable(d->source, "disk source", err));
	for (const lc_disk *o = def->disks; o < d; o++)
		if (o->id == d->id)
			return util_err_set(err, -EINVAL, "disk id %u is used twice", d->id);
	return 0;
}

static int validate_nic(const lc_vmdef *def, const lc_nic *n, util_err *err)
{
	if (!n->network)
		return util_err_set(err, -EINVAL, "nic %u has no network", n->id);
	TRY(util_validate_name(n->network, "network name", err));
	if (n->mac && !is_mac(n->mac))
		return util_err_set(
		        err, -EINVAL,
		        "nic %u: '%s' is not a unicast MAC address like 52:54:00:12:34:56", n->id,
		        n->mac);
	if (n->ip)
		TRY(util_validate_printable(n->ip, "nic ip", err));
	if (n->model && !util_streq(n->model, "virtio") && !util_streq(n->model, "e1000"))
		return util_err_set(err, -EINVAL,
		                    "nic %u: model '%s' is not supported (use virtio or e1000)",
		                    n->id, n->model);
	for (const lc_nic *o = def->nics; o < n; o++) {
		if (o->id == n->id)
			return util_err_set(err, -EINVAL, "nic id %u is used twice", n->id);
		if (o->mac && n->mac && !strcasecmp(o->mac, n->mac))
			return util_err_set(err, -EINVAL, "mac %s is used by two nics", n->mac);
	}
	return 0;
}

/* Every redefine record carries the whole definition, and the journal
 * reads back what it wrote: a bound on the whole keeps every command's cost
 * and the journal's size in proportion, whatever field grew. */
static int check_def_size(const lc_vmdef *def, util_err *err)
{
	_cleanup_json_ json_t *obj = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (def->append && strlen(def->append) > LC_APPEND_MAX)
		return util_err_set(err, -EINVAL,
		                    "the kernel command line is %zu bytes, more than %d",
		                    strlen(def->append), LC_APPEND_MAX);
	obj = lc_vmdef_to_json(def);
	text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	if (!text)
		return util_err_set(err, -EINVAL, "the definition cannot be encoded as JSON");
	len = strlen(text);
	if (len > LC_VMDEF_JSON_MAX)
		return util_err_set(err, -EINVAL,
		                    "the definition is %zu bytes as JSON, more than %d; "
		                    "shorten its labels, user data or paths",
		                    len, LC_VMDEF_JSON_MAX);
	return 0;
}

int lc_vmdef_validate(const lc_vmdef *def, util_err *err)
{
	char a[16], b[16];

	if (!def->name)
		return util_err_set(err, -EINVAL, "the vm has no name");
	TRY(util_validate_name(def->name, "vm name", err));
	/* all digits would be ambiguous with an id on the command line */
	if (strspn(def->name, "0123456789") == strlen(def->name))
		return util_err_set(
		        err, -EINVAL,
		        "vm name '%s' is all digits and would be read as an id; add a letter",
		        def->name);
	if (def->uuid && !is_uuid(def->uuid))
		return util_err_set(err, -EINVAL, "'%s' is not a uuid", def->uuid);
	if (def->memory < LC_MEMORY_MIN || def->memory > LC_MEMORY_MAX)
		return util_err_set(err, -EINVAL, "memory %s is out of range (%s to %s)",
		                    util_format_size(def->memory, a, sizeof(a)),
		                    util_format_size(LC_MEMORY_MIN, b, sizeof(b)), "4T");
	if (def->memory % (1u << 20))
		return util_err_set(err, -EINVAL, "memory must be a whole number of MiB");
	if (def->vcpus < 1 || def->vcpus > LC_VCPUS_MAX)
		return util_err_set(err, -EINVAL, "vcpus %u is out of range (1 to %d)", def->vcpus,
		                    LC_VCPUS_MAX);
	if (def->max_vcpus && def->max_vcpus < def->vcpus)
		return util_err_set(err, -EINVAL,
		                    "max-vcpus %u is below vcpus %u (0: no cpu hotplug)",
		                    def->max_vcpus, def->vcpus);
	if (def->max_memory && def->max_memory < def->memory)
		return util_err_set(err, -EINVAL,
		                    "max-memory %s is below memory %s (0: no hotplug)",
		                    util_format_size(def->max_memory, a, sizeof(a)),
		                    util_format_size(def->memory, b, sizeof(b)));
	if (def->max_memory % (128u << 20) || def->max_memory > LC_MEMORY_MAX)
		return util_err_set(
		        err, -EINVAL,
		        "max-memory must be a whole number of 128 MiB (the section a guest onlines memory in), at most 4T");
	if ((def->max_memory || def->max_vcpus) && def->machine == LC_MACHINE_MICROVM)
		return util_err_set(err, -EINVAL,
		                    "machine microvm has no cpu or memory hotplug (use pc or q35)");
	if (def->n_disks > LC_DISKS_MAX || def->n_nics > LC_NICS_MAX)
		return util_err_set(err, -EINVAL, "too many disks or nics (at most %d each)",
		                    LC_DISKS_MAX);
	for (size_t i = 0; i < def->n_disks; i++)
		TRY(validate_disk(def, &def->disks[i], err));
	for (size_t i = 0; i < def->n_nics; i++)
		TRY(validate_nic(def, &def->nics[i], err));
	if (def->vnc_listen)
		TRY(lc_vnc_listen_check(def->vnc_listen, err));
	if (def->vnc_listen && def->machine == LC_MACHINE_MICROVM)
		return util_err_set(err, -EINVAL,
		                    "machine microvm has no display for vnc (use pc or q35)");
	TRY(check_path(def->cdrom, "cdrom", err));
	if (def->cdrom && def->machine == LC_MACHINE_MICROVM)
		return util_err_set(err, -EINVAL,
		                    "machine microvm has no cdrom drive (use pc or q35)");
	TRY(check_path(def->kernel, "kernel", err));
	TRY(check_path(def->initrd, "initrd", err));
	/* -initrd splits multiboot modules at commas: keep the path whole */
	if (def->initrd && strchr(def->initrd, ','))
		return util_err_set(
		        err, -EINVAL,
		        "initrd path '%s' contains a comma, which QEMU would split; rename the file",
		        def->initrd);
	if ((def->initrd || def->append) && !def->kernel)
		return util_err_set(err, -EINVAL, "--initrd and --append need --kernel");
	if (def->append)
		TRY(util_validate_printable(def->append, "kernel command line", err));
	TRY(check_path(def->ci_user_data, "cloud-init user-data", err));
	TRY(check_path(def->ci_meta_data, "cloud-init meta-data", err));
	TRY(check_path(def->ci_network_config, "cloud-init network-config", err));
	if ((def->ci_meta_data || def->ci_network_config) && !def->ci_user_data)
		return util_err_set(err, -EINVAL, "--cloud-init needs user-data=FILE");
	TRY(validate_map(def->labels, "label", err));
	TRY(validate_map(def->user, "user data", err));
	return check_def_size(def, err);
}

/* ---- --disk and --nic specs ------------------------------------------------------- */

/* Split "a,b=c,d=e" into the leading bare token and key=value options;
 * calls fn for each pair (key, value), with key NULL for a bare token. */
typedef int (*spec_fn)(const char *key, const char *value, void *ud, util_err *err);

static int spec_foreach(const char *spec, spec_fn fn, void *ud, util_err *err)
{
	_cleanup_free_ char *copy = util_xstrdup(spec);
	char *save = NULL;
	bool first = true;

	TRY(util_validate_printable(spec, "spec", err));
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			if (!first)
				return util_err_set(err, -EINVAL, "'%s' is not KEY=VALUE", tok);
			TRY(fn(NULL, tok, ud, err));
		} else {
			*eq = '\0';
			TRY(fn(tok, eq + 1, ud, err));
		}
		first = false;
	}
	if (first)
		return util_err_set(err, -EINVAL, "empty spec");
	return 0;
}

static int parse_onoff(const char *v, bool *ret, util_err *err)
{
	if (util_streq(v, "on") || util_streq(v, "true") || util_streq(v, "yes"))
		*ret = true;
	else if (util_streq(v, "off") || util_streq(v, "false") || util_streq(v, "no"))
		*ret = false;
	else
		return util_err_set(err, -EINVAL, "'%s' is not on or off", v);
	return 0;
}

/* "10G", "0", "512MiB": digits then at most a unit — a size even if it is
 * not a valid one, so that "0G" is refused as a size, not looked up as an
 * image name. */
static bool looks_like_size(const char *s)
{
	size_t digits = strspn(s, "0123456789");

	return digits > 0 && strlen(s + digits) <= 3 &&
	       strspn(s + digits, "KMGTPkmgtpiBb") == strlen(s + digits);
}

/* "1.5G", "0.5T": a size with a fraction and a unit, which sizes do not
 * take. As a bare token it would be looked up as an image name and
 * reported missing, hiding what was meant ("12.04", without a unit, stays
 * an image name). */
static bool looks_like_fractional_size(const char *s)
{
	size_t digits = strspn(s, "0123456789");

	if (digits == 0 || s[digits] != '.')
		return false;
	s += digits + 1;
	digits = strspn(s, "0123456789");
	return digits > 0 && s[digits] && looks_like_size(s);
}

/* A --disk spec being parsed: format= is kept aside until the end, since
 * what it describes (the new disk, or the image under it) depends on the
 * spec's other parts, in whatever order they come. */
typedef struct disk_spec {
	lc_disk *d;
	bool blank;   /* size= (or a bare size): a new, empty disk */
	char *format; /* format=, or NULL */
} disk_spec;

static int disk_spec_item(const char *key, const char *value, void *ud, util_err *err)
{
	disk_spec *ds = ud;
	lc_disk *d = ds->d;

	if (!key && looks_like_fractional_size(value))
		return util_err_set(
		        err, -EINVAL,
		        "'%s' is neither a valid size (a whole number with K, M, G or T, e.g. 1536M) nor an image name (for an image of that name, write image=%s)",
		        value, value);
	if (!key) /* a bare token: a size, an absolute path, or an image name */
		key = looks_like_size(value) ? "size" : "image";
	if (!strcmp(key, "size")) {
		TRY(util_parse_size(value, &d->size, err));
		free(d->source);
		d->source = util_xstrdup(value);
		ds->blank = true;
	} else if (!strcmp(key, "image")) {
		if (value[0] != '/')
			TRY(util_validate_name(value, "image name", err));
		free(d->source);
		d->source = util_xstrdup(value);
		ds->blank = false;
	} else if (!strcmp(key, "bus")) {
		TRY(lc_bus_parse(value, &d->bus, err));
	} else if (!strcmp(key, "readonly")) {
		TRY(parse_onoff(value, &d->readonly, err));
	} else if (!strcmp(key, "format")) {
		if (strcmp(value, "qcow2") && strcmp(value, "raw"))
			return util_err_set(err, -EINVAL,
			                    "format '%s' is not supported (use qcow2 or raw)",
			                    value);
		free(ds->format);
		ds->format = util_xstrdup(value);
	} else {
		return util_err_set(
		        err, -EINVAL,
		        "unknown disk option '%s' (use size, image, bus, readonly, format)", key);
	}
	return 0;
}

int lc_disk_parse(const char *spec, lc_disk *ret_disk, util_err *err)
{
	lc_disk d = { 0 };
	disk_spec ds = { .d = &d };
	int r = spec_foreach(spec, disk_spec_item, &ds, err);

	if (r == 0 && !d.source)
		r = util_err_set(err, -EINVAL, "a disk needs a size or an image");
	if (r < 0) {
		free(ds.format);
		lc_disk_clear(&d);
		return util_err_prefix(err, "invalid --disk '%s'", spec);
	}
	/* a blank disk's format is its own; an image's, the base's (the
	 * disk on it is always a qcow2 overlay) */
	if (ds.blank)
		d.format = ds.format;
	else
		d.backing_format = ds.format;
	*ret_disk = d;
	return 0;
}

static int nic_spec_item(const char *key, const char *value, void *ud, util_err *err)
{
	lc_nic *n = ud;
	char **slot;

	if (!key || !strcmp(key, "network")) {
		TRY(util_validate_name(value, "network name", err));
		slot = &n->network;
	} else if (!strcmp(key, "mac")) {
		slot = &n->mac;
	} else if (!strcmp(key, "ip")) {
		slot = &n->ip;
	} else if (!strcmp(key, "model")) {
		slot = &n->model;
	} else {
		return util_err_set(err, -EINVAL, "unknown nic option '%s' (use mac, ip, model)",
		                    key);
	}
	free(*slot);
	*slot = util_xstrdup(value);
	return 0;
}

int lc_nic_parse(const char *spec, lc_nic *ret_nic, util_err *err)
{
	lc_nic n = { 0 };
	int r = spec_foreach(spec, nic_spec_item, &n, err);

	if (r == 0 && !n.network)
		r = util_err_set(err, -EINVAL, "a nic needs a network");
	if (r == 0 && n.mac && !is_mac(n.mac))
		r = util_err_set(err, -EINVAL,
		                 "'%s' is not a unicast MAC address like 52:54:00:12:34:56", n.mac);
	if (r == 0 && n.model && strcmp(n.model, "virtio") && strcmp(n.model, "e1000"))
		r = util_err_set(err, -EINVAL, "model '%s' is not supported (use virtio or e1000)",
		                 n.model);
	if (r < 0) {
		lc_nic_clear(&n);
		return util_err_prefix(err, "invalid --nic '%s'", spec);
	}
	if (!n.model)
		n.model = util_xstrdup("virtio");
	*ret_nic = n;
	return 0;
}

int lc_vnc_listen_check(const char *addr, util_err *err)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (addr && (inet_pton(AF_INET, addr, buf) == 1 || inet_pton(AF_INET6, addr, buf) == 1 ||
	             util_streq(addr, LC_VNC_UNIX)))
		return 0;
	return util_err_set(
	        err, -EINVAL,
	        "vnc listen address '%s' is not an IPv4 or IPv6 address (e.g. 127.0.0.1) or unix",
	        addr ? addr : "");
}
