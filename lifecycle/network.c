/* Networks and NICs on the lifecycle side: `net create/delete` with the
 * journal records of what qvm made (so it deletes only that), MAC and IP
 * lease assignment for NICs, and the taps a VM's QEMU gets at start. The
 * interfaces themselves are made by net/ over netlink. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "net/net.h"
#include "network.h"

#define DEFAULT_PREFIX 24
#define MAC_ATTEMPTS   64

/* ---- journal helpers -------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool jtrue(json_t *o, const char *k)
{
	return json_is_true(json_object_get(o, k));
}

/* ---- lookups ------------------------------------------------------------------ */

int lc_net_find(lc_db *db, const char *name, json_t **ret_net, util_err *err)
{
	json_t *net = json_object_get(lc_db_networks(db), name ? name : "");

	if (!net)
		return util_err_set(err, -ENOENT, "no network named '%s' (see qvm net list)",
		                    name ? name : "");
	*ret_net = net;
	return 0;
}

static bool vm_counts(const lc_vm *vm)
{
	return vm->state != LC_DONE;
}

/* The nics of open nic-attach intents: they hold their MAC and lease
 * until the attach completes or is rolled back. */
static void foreach_pending_nic(lc_db *db,
                                void (*fn)(const char *network, const char *mac, const char *ip,
                                           void *ud),
                                void *ud)
{
	const char *key;
	json_t *intent;

	json_object_foreach (lc_db_intents(db), key, intent) {
		json_t *nic = json_object_get(json_object_get(intent, "data"), "nic");

		if (util_streq(jstr(intent, "op"), "nic-attach") && nic)
			fn(jstr(nic, "network"), jstr(nic, "mac"), jstr(nic, "ip"), ud);
	}
}

/* The addresses in use on one network, each with who holds it. */
typedef struct used_ips {
	const char *network;
	uint32_t *ips;
	char **owners; /* "vm 'web' nic 0", "the gateway"... */
	size_t n;
} used_ips;

static void used_add(used_ips *u, const char *network, const char *ip, char *owner /* stolen */)
{
	uint32_t v;

	if (!ip || !util_streq(network, u->network) || net_ip4_parse(ip, &v, NULL) < 0) {
		free(owner);
		return;
	}
	u->ips = util_xrealloc(u->ips, (u->n + 1) * sizeof(uint32_t));
	u->owners = util_xrealloc(u->owners, (u->n + 1) * sizeof(char *));
	u->ips[u->n] = v;
	u->owners[u->n++] = owner;
}

static void used_free(used_ips *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->owners[i]);
	free(u->owners);
	free(u->ips);
}

/* Who holds ip on u's network, or NULL (borrowed). */
static const char *used_by(const used_ips *u, uint32_t ip)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->ips[i] == ip)
			return u->owners[i];
	return NULL;
}

static void used_pending(const char *network, const char *mac, const char *ip, void *ud)
{
	(void)mac;
	used_add(ud, network, ip, util_xstrdup("a nic being attached"));
}

/* Every address of network held by a nic of a VM that is not DONE, of a
 * pending attach, or of a sibling nic of the definition being assigned:
 * host-wide, whether the network has a range or not. */
static void collect_used(lc_db *db, const char *network, const lc_nic *sib, size_t n_sib,
                         used_ips *u)
{
	u->network = network;
	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);

		if (!vm_counts(vm))
			continue;
		for (size_t k = 0; k < vm->def.n_nics; k++)
			used_add(
			        u, vm->def.nics[k].network, vm->def.nics[k].ip,
			        util_xasprintf("vm '%s' nic %u", vm->def.name, vm->def.nics[k].id));
	}
	for (size_t k = 0; k < n_sib; k++)
		used_add(u, sib[k].network, sib[k].ip,
		         util_xasprintf("nic %u of the same vm", sib[k].id));
	foreach_pending_nic(db, used_pending, u);
}

typedef struct pending_count {
	const char *network;
	size_t n;
} pending_count;

/* Counts every pending nic on network, with or without an address. */
static void count_pending(const char *network, const char *mac, const char *ip, void *ud)
{
	pending_count *c = ud;

	(void)mac;
	(void)ip;
	if (util_streq(network, c->network))
		c->n++;
}

typedef struct mac_find {
	const char *mac;
	bool found;
} mac_find;

static void mac_pending(const char *network, const char *mac, const char *ip, void *ud)
{
	mac_find *m = ud;

	(void)network;
	(void)ip;
	if (util_streq(mac, m->mac))
		m->found = true;
}

/* Who uses mac on this host: "vm 'x' nic N", "interface 'eth0' of this
 * host", or NULL (new string). A guest's MAC is never a host interface's
 * (a tap has a MAC of its own), so the host's are all others'. */
static char *mac_owner(lc_db *db, const char *mac, const lc_nic *sib, size_t n_sib)
{
	mac_find m = { mac, false };
	char ifname[16];

	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);

		if (!vm_counts(vm))
			continue;
		for (size_t k = 0; k < vm->def.n_nics; k++)
			if (vm->def.nics[k].mac && !strcasecmp(vm->def.nics[k].mac, mac))
				return util_xasprintf("vm '%s' nic %u", vm->def.name,
				                      vm->def.nics[k].id);
	}
	for (size_t k = 0; k < n_sib; k++)
		if (sib[k].mac && !strcasecmp(sib[k].mac, mac))
			return util_xasprintf("nic %u of the same vm", sib[k].id);
	foreach_pending_nic(db, mac_pending, &m);
	if (m.found)
		return util_xstrdup("a nic being attached");
	if (net_mac_host_owner(mac, ifname) == 1)
		return util_xasprintf("interface '%s' of this host", ifname);
	return NULL;
}

/* ---- MACs and leases ----------------------------------------------------------- */

/* ip (parsed from text) is free on nic's network: neither its gateway nor
 * held by anyone in used. */
static int ip_free(json_t *net, const lc_nic *nic, const used_ips *used, uint32_t ip,
                   const char *hint, util_err *err)
{
	uint32_t gw;
	const char *owner;

	if (jstr(net, "gateway") && net_ip4_parse(jstr(net, "gateway"), &gw, NULL) == 0 && ip == gw)
		return util_err_set(err, -EEXIST,
		                    "ip %s is the gateway of network '%s'; give another ip%s",
		                    nic->ip, nic->network, hint);
	owner = used_by(used, ip);
	if (owner)
		return util_err_set(err, -EEXIST,
		                    "ip %s of network '%s' is already %s %s; give another ip%s",
		                    nic->ip, nic->network,
		                    jstr(net, "range") ? "leased to" : "used by", owner, hint);
	return 0;
}

/* A network with a range: nic->ip, checked in range and free, or the
 * lowest free address, becomes its lease. */
static int lease(lc_db *db, json_t *net, lc_nic *nic, const lc_nic *siblings, size_t n_siblings,
                 util_err *err)
{
	uint32_t first, last, ip;
	used_ips used = { 0 };
	char text[16];
	int r = net_range_parse(jstr(net, "range"), &first, &last, err);

	if (r < 0)
		return r;
	collect_used(db, nic->network, siblings, n_siblings, &used);
	if (nic->ip) {
		r = net_ip4_parse(nic->ip, &ip, err);
		if (r == 0 && (ip < first || ip > last))
			r = util_err_set(err, -EINVAL,
			                 "ip %s is outside the range %s of network '%s'", nic->ip,
			                 jstr(net, "range"), nic->network);
		if (r == 0)
			r = ip_free(net, nic, &used, ip, " or leave it out", err);
	} else {
		used_add(&used, nic->network, jstr(net, "gateway"), util_xstrdup("the gateway"));
		r = net_range_pick(first, last, used.ips, used.n, &ip, err);
		if (r == -ENOSPC)
			r = util_err_set(
			        err, -ENOSPC,
			        "the range %s of network '%s' is exhausted: every address is "
			        "leased; delete a vm on it or widen the range",
			        jstr(net, "range"), nic->network);
	}
	used_free(&used);
	if (r < 0)
		return r;
	net_ip4_format(ip, text);
	free(nic->ip);
	nic->ip = util_xstrdup(text);
	return 0;
}

/* A network without a range: the address is the user's, no lease, but it
 * must fit the network (a host address of its prefix, in the gateway's
 * network) and be no other nic's on it. */
static int static_ip(lc_db *db, json_t *net, lc_nic *nic, const lc_nic *siblings, size_t n_siblings,
                     util_err *err)
{
	uint32_t ip, gw;
	unsigned prefix = (unsigned)json_integer_value(json_object_get(net, "prefix"));
	used_ips used = { 0 };
	int r = net_ip4_parse(nic->ip, &ip, err);

	if (r < 0)
		return r;
	if (!prefix)
		return util_err_set(err, -EINVAL,
		                    "network '%s' has no prefix, so ip %s would have no netmask; "
		                    "make the network again with --prefix",
		                    nic->network, nic->ip);
	if (jstr(net, "gateway") && net_ip4_parse(jstr(net, "gateway"), &gw, NULL) == 0 &&
	    !net_ip4_same_net(ip, gw, prefix))
		return util_err_set(err, -EINVAL, "ip %s is outside network '%s' (gateway %s, /%u)",
		                    nic->ip, nic->network, jstr(net, "gateway"), prefix);
	if (!net_ip4_is_host(ip, prefix))
		return util_err_set(err, -EINVAL,
		                    "ip %s is the network or broadcast address of its /%u network",
		                    nic->ip, prefix);
	collect_used(db, nic->network, siblings, n_siblings, &used);
	r = ip_free(net, nic, &used, ip, "", err);
	used_free(&used);
	return r;
}

int lc_nic_assign(lc_db *db, const char *uuid, lc_nic *nic, const lc_nic *siblings,
                  size_t n_siblings, util_err *err)
{
	json_t *net = NULL;
	char mac[18];
	int r = lc_net_find(db, nic->network, &net, err);

	if (r < 0)
		return util_err_prefix(err, "nic %u", nic->id);
	if (nic->mac) {
		_cleanup_free_ char *owner = NULL;

		r = net_mac_normalize(nic->mac, mac, err);
		if (r < 0)
			return util_err_prefix(err, "nic %u", nic->id);
		owner = mac_owner(db, mac, siblings, n_siblings);
		if (owner)
			return util_err_set(err, -EEXIST,
			                    "nic %u: mac %s is already used by %s; give another "
			                    "mac or leave it out to get a generated one",
			                    nic->id, mac, owner);
	} else {
		unsigned attempt = 0;

		for (;; attempt++) {
			_cleanup_free_ char *owner = NULL;

			if (attempt == MAC_ATTEMPTS)
				return util_err_set(err, -EEXIST,
				                    "nic %u: cannot find a free mac address",
				                    nic->id);
			net_mac_generate(uuid, nic->id, attempt, mac);
			owner = mac_owner(db, mac, siblings, n_siblings);
			if (!owner)
				break;
		}
	}

	if (jstr(net, "range"))
		r = lease(db, net, nic, siblings, n_siblings, err);
	else if (nic->ip)
		r = static_ip(db, net, nic, siblings, n_siblings, err);
	if (r < 0)
		return util_err_prefix(err, "nic %u", nic->id);
	free(nic->mac);
	nic->mac = util_xstrdup(mac);
	return 0;
}

int lc_nics_assign(lc_db *db, lc_vmdef *def, uint64_t vm_id, util_err *err)
{
	for (size_t i = 0; i < def->n_nics; i++) {
		char tap[16];
		int r = net_tap_name(vm_id, def->nics[i].id, tap, sizeof(tap), err);

		if (r == 0)
			r = lc_nic_assign(db, def->uuid, &def->nics[i], def->nics, i, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int lc_net_arg_check(const char *kind, const char *value, util_err *err)
{
	static const struct {
		const char *kind;
		uint64_t min, max;
	} numbers[] = { { "vlan", 1, NET_VLAN_MAX },
		        { "mtu", NET_MTU_MIN, NET_MTU_MAX },
		        { "prefix", 8, 30 } };
	uint32_t a, b;
	uint64_t n;
	char mac[18];

	if (util_streq(kind, "network"))
		return util_validate_name(value, "network name", err);
	if (util_streq(kind, "bridge") || util_streq(kind, "uplink"))
		return net_validate_ifname(value, kind, err);
	if (util_streq(kind, "range"))
		return net_range_parse(value, &a, &b, err);
	if (util_streq(kind, "gateway") || util_streq(kind, "dns") || util_streq(kind, "ip"))
		return net_ip4_parse(value, &a, err);
	if (util_streq(kind, "mac"))
		return net_mac_normalize(value, mac, err);
	if (util_streq(kind, "model") && !util_streq(value, "virtio") &&
	    !util_streq(value, "e1000"))
		return util_err_set(err, -EINVAL,
		                    "model '%s' is not supported (use virtio or e1000)", value);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(numbers); i++)
		if (util_streq(kind, numbers[i].kind))
			return util_parse_uint(value, numbers[i].min, numbers[i].max, &n, err);
	return 0;
}

/* ---- create, delete -------------------------------------------------------------- */

static int check_opts(lc_db *db, const lc_net_opts *o, json_t **ret_net, util_err *err)
{
	_cleanup_json_ json_t *net = NULL;
	const char *key;
	json_t *other;
	int r = util_validate_name(o->name, "network", err);

	if (r == 0)
		r = net_validate_ifname(o->bridge, "bridge", err);
	if (r < 0)
		return r;
	if (json_object_get(lc_db_networks(db), o->name))
		return util_err_set(err, -EEXIST,
		                    "a network named '%s' exists already (see qvm net show %s)",
		                    o->name, o->name);
	json_object_foreach (lc_db_networks(db), key, other)
		if (util_streq(jstr(other, "bridge"), o->bridge))
			return util_err_set(err, -EEXIST,
			                    "bridge '%s' already carries network '%s'", o->bridge,
			                    key);
	net = json_pack("{s:s, s:s}", "name", o->name, "bridge", o->bridge);
	if ((o->vlan != 0) != (o->uplink != NULL))
		return util_err_set(err, -EINVAL, "--vlan and --uplink go together");
	if (o->vlan) {
		char vif[32];

		if (o->vlan > NET_VLAN_MAX)
			return util_err_set(err, -EINVAL, "vlan id %u must be 1 to %d", o->vlan,
			                    NET_VLAN_MAX);
		r = net_validate_ifname(o->uplink, "uplink", err);
		if (r < 0)
			return r;
		snprintf(vif, sizeof(vif), "%s.%u", o->uplink, o->vlan);
		if (strlen(vif) > NET_IFNAME_MAX)
			return util_err_set(err, -ENAMETOOLONG,
			                    "the vlan interface name '%s' would be longer than %d "
			                    "bytes; use an uplink with a shorter name",
			                    vif, NET_IFNAME_MAX);
		json_object_set_new(net, "vlan", json_integer(o->vlan));
		json_object_set_new(net, "uplink", json_string(o->uplink));
		json_object_set_new(net, "vlan_if", json_string(vif));
	}
	if (o->mtu && (o->mtu < NET_MTU_MIN || o->mtu > NET_MTU_MAX))
		return util_err_set(err, -EINVAL, "mtu %u must be %d to %d", o->mtu, NET_MTU_MIN,
		                    NET_MTU_MAX);
	if (o->mtu)
		json_object_set_new(net, "mtu", json_integer(o->mtu));
	{
		uint32_t first, last, gw = 0, dns;
		unsigned prefix = o->prefix ? o->prefix : DEFAULT_PREFIX;

		/* the prefix is the network's size, with or without a range: a
		 * static ip= on a rangeless network gets it too */
		if (prefix < 8 || prefix > 30)
			r = util_err_set(err, -EINVAL, "prefix /%u must be 8 to 30", prefix);
		if (r == 0 && o->gateway)
			r = net_ip4_parse(o->gateway, &gw, err);
		if (r == 0 && o->dns)
			r = net_ip4_parse(o->dns, &dns, err);
		if (r == 0 && o->range)
			r = net_range_parse(o->range, &first, &last, err);
		if (r == 0 && o->range)
			r = net_range_check(first, last, prefix, gw, err);
		else if (r == 0 && o->gateway && !net_ip4_is_host(gw, prefix))
			r = util_err_set(
			        err, -EINVAL,
			        "the gateway is the network or broadcast address of its /%u "
			        "network",
			        prefix);
		if (r < 0)
			return util_err_prefix(err, "network '%s'", o->name);
		if (o->range)
			json_object_set_new(net, "range", json_string(o->range));
		json_object_set_new(net, "prefix", json_integer(prefix));
		if (o->gateway)
			json_object_set_new(net, "gateway", json_string(o->gateway));
		if (o->dns)
			json_object_set_new(net, "dns", json_string(o->dns));
	}
	*ret_net = TAKE_PTR(net);
	return 0;
}

/* Record that net create made interface `flag` (ifindex under `index_key`)
 * as a step of its intent, and in net. */
static int made(lc_db *db, uint64_t intent, json_t *net, const char *flag, const char *index_key,
                int ifindex, util_err *err)
{
	json_object_set_new(net, flag, json_true());
	json_object_set_new(net, index_key, json_integer(ifindex));
	return lc_db_append(db,
	                    json_pack("{s:s, s:I, s:I, s:{s:b, s:i}}", "type", "step", "id",
	                              (json_int_t)0, "intent", (json_int_t)intent, "data", flag, 1,
	                              index_key, ifindex),
	                    NULL, err);
}

/* What exists of the network's interfaces (br, and vl when it has a vlan
 * interface vif) and may be used as it is: the admin's are never changed. */
static int check_links(const lc_net_opts *o, const char *vif, net_link_info *br, net_link_info *vl,
                       util_err *err)
{
	int r = net_link_get(o->bridge, br, err);

	if (r == 0 && vif)
		r = net_link_get(vif, vl, err);
	if (r < 0)
		return util_err_prefix(err, "cannot create network '%s'", o->name);
	if (br->kind != NET_KIND_NONE && br->kind != NET_KIND_BRIDGE)
		return util_err_set(err, -EEXIST,
		                    "cannot create network '%s': interface '%s' exists and is a %s "
		                    "interface, not a bridge; choose another --bridge",
		                    o->name, o->bridge, br->type[0] ? br->type : "physical");
	if (vif && vl->kind != NET_KIND_NONE &&
	    (vl->kind != NET_KIND_VLAN || vl->vlan_id != o->vlan ||
	     !util_streq(vl->vlan_link, o->uplink)))
		return util_err_set(err, -EEXIST,
		                    "cannot create network '%s': interface '%s' exists and is not "
		                    "vlan %u on '%s'",
		                    o->name, vif, o->vlan, o->uplink);
	/* what is the admin's is used as it is, never changed */
	if (br->kind == NET_KIND_BRIDGE && o->mtu && br->mtu != o->mtu)
		return util_err_set(err, -EEXIST,
		                    "cannot create network '%s': bridge '%s' exists (not made by "
		                    "qvm) with MTU %u; leave out --mtu or change its MTU yourself",
		                    o->name, o->bridge, br->mtu);
	if (vif && vl->kind == NET_KIND_VLAN && !util_streq(vl->master, o->bridge))
		return util_err_set(
		        err, -EEXIST,
		        "cannot create network '%s': vlan interface '%s' exists (not made by qvm) "
		        "and is not enslaved to bridge '%s'; enslave it yourself or delete it",
		        o->name, vif, o->bridge);
	if (vif && vl->kind == NET_KIND_NONE) {
		net_link_info up;

		r = net_link_get(o->uplink, &up, err);
		if (r < 0)
			return r;
		if (up.kind == NET_KIND_NONE)
			return util_err_set(err, -ENODEV,
			                    "cannot create network '%s': no uplink interface '%s'",
			                    o->name, o->uplink);
	}
	return 0;
}

int lc_net_create(lc_db *db, const lc_net_opts *o, util_err *err)
{
	_cleanup_json_ json_t *net = NULL;
	net_link_info br, vl;
	const char *vif;
	uint64_t intent;
	int br_index = 0, vl_index = 0;
	int r = check_opts(db, o, &net, err);

	if (r < 0)
		return r;
	vif = jstr(net, "vlan_if");
	r = check_links(o, vif, &br, &vl, err);
	if (r < 0)
		return r;
	/* Only what qvm made is its own, and it is recorded only once it
	 * exists (a "step" of the intent with its ifindex): an interface
	 * someone else made meanwhile under that name (the add fails with
	 * EEXIST) is never taken for qvm's, by the rollback below or by a
	 * recovery. (A crash between the add and its step leaves qvm's
	 * interface unrecorded, so kept: the safe way round.) */
	json_object_set_new(net, "created_bridge", json_false());
	json_object_set_new(net, "created_vlan", json_false());
	r = lc_db_intent(db, "net-create", 0, json_deep_copy(net), &intent, err);
	if (r < 0)
		return r;
	util_crash_point("net-create-after-intent");
	if (br.kind == NET_KIND_NONE) {
		r = net_bridge_create(o->bridge, o->mtu, &br_index, err);
		if (r == -EEXIST)
			r = util_err_set(err, -EEXIST,
			                 "interface '%s' appeared meanwhile (not made by qvm: left "
			                 "alone); run net create again to use it",
			                 o->bridge);
		if (r == 0)
			r = made(db, intent, net, "created_bridge", "bridge_ifindex", br_index,
			         err);
		if (r < 0)
			goto rollback;
	}
	util_crash_point("net-create-after-bridge");
	if (vif && vl.kind == NET_KIND_NONE) {
		r = net_vlan_add(vif, o->uplink, o->vlan, o->mtu, &vl_index, err);
		if (r == -EEXIST)
			r = util_err_set(err, -EEXIST,
			                 "interface '%s' appeared meanwhile (not made by qvm: left "
			                 "alone); run net create again to use it",
			                 vif);
		if (r == 0)
			r = made(db, intent, net, "created_vlan", "vlan_ifindex", vl_index, err);
		if (r < 0)
			goto rollback;
		util_crash_point("net-create-after-vlan");
		r = net_link_attach(vif, o->bridge, 0, err);
		if (r < 0)
			goto rollback;
	}
	util_crash_point("net-create-before-record");
	r = lc_db_append(
	        db, json_pack("{s:s, s:I, s:O}", "type", "net", "id", (json_int_t)0, "net", net),
	        NULL, err);
	if (r < 0)
		goto rollback;
	return lc_db_done(db, intent, "ok", err);

rollback : {
	util_err ignored = { 0 };

	if (vl_index)
		net_link_delete_own(vif, vl_index, NET_KIND_VLAN, &ignored);
	if (br_index)
		net_link_delete_own(o->bridge, br_index, NET_KIND_BRIDGE, &ignored);
	lc_db_done(db, intent, "rolled-back", &ignored);
	return util_err_prefix(err, "cannot create network '%s'", o->name);
}
}

/* Delete interface name of kind if it is the one qvm made: the recorded
 * ifindex must still be it. A network recorded before qvm kept the index
 * is judged by name and kind alone. */
static int remove_own(json_t *net, const char *name, const char *index_key, net_kind kind,
                      util_err *err)
{
	json_t *index = json_object_get(net, index_key);
	net_link_info li;

	if (json_is_integer(index)) {
		int r = net_link_delete_own(name, (int)json_integer_value(index), kind, err);

		return r < 0 ? r : 0;
	}
	if (net_link_get(name, &li, err) < 0)
		return -EIO;
	return li.kind == kind ? net_link_delete(name, err) : 0;
}

/* Remove what qvm made for net: its vlan interface, then its bridge. An
 * adopted one, or one that is not the interface qvm made any more, is
 * left alone. */
static int remove_made(json_t *net, util_err *err)
{
	int r = 0;

	if (jtrue(net, "created_vlan") && jstr(net, "vlan_if"))
		r = remove_own(net, jstr(net, "vlan_if"), "vlan_ifindex", NET_KIND_VLAN, err);
	if (r == 0 && jtrue(net, "created_bridge") && jstr(net, "bridge"))
		r = remove_own(net, jstr(net, "bridge"), "bridge_ifindex", NET_KIND_BRIDGE, err);
	return r;
}

int lc_net_delete(lc_db *db, const char *name, util_err *err)
{
	_cleanup_free_ char *users = NULL;
	_cleanup_json_ json_t *net = NULL;
	json_t *found = NULL;
	uint64_t intent;
	size_t n_users = 0;
	int r = lc_net_find(db, name, &found, err);

	if (r < 0)
		return r;
	net = json_incref(found);
	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);
		bool uses = false;

		for (size_t k = 0; vm_counts(vm) && k < vm->def.n_nics; k++)
			uses = uses || util_streq(vm->def.nics[k].network, name);
		if (!uses)
			continue;
		{
			char *more = util_xasprintf("%s%s'%s'", users ? users : "",
			                            users ? ", " : "", vm->def.name);

			free(users);
			users = more;
			n_users++;
		}
	}
	if (users)
		return util_err_set(err, -EBUSY,
		                    "cannot delete network '%s': the nics of vm%s %s use it; "
		                    "detach them or delete the vm%s first",
		                    name, n_users > 1 ? "s" : "", users, n_users > 1 ? "s" : "");
	{
		pending_count any = { name, 0 };

		/* a nic being attached on it counts as a user too */
		foreach_pending_nic(db, count_pending, &any);
		if (any.n)
			return util_err_set(
			        err, -EBUSY,
			        "cannot delete network '%s': a nic is being attached on it; try again",
			        name);
	}
	r = lc_db_intent(db, "net-delete", 0, json_pack("{s:s}", "name", name), &intent, err);
	if (r < 0)
		return r;
	util_crash_point("net-delete-after-intent");
	r = remove_made(net, err);
	if (r < 0) {
		util_err ignored = { 0 };

		lc_db_done(db, intent, "failed", &ignored);
		return util_err_prefix(err, "cannot delete network '%s'", name);
	}
	r = lc_db_append(db,
	                 json_pack("{s:s, s:I, s:s}", "type", "net-delete", "id", (json_int_t)0,
	                           "name", name),
	                 NULL, err);
	if (r == 0)
		r = lc_db_done(db, intent, "ok", err);
	return r;
}

/* A crashed net create is rolled back (what its steps say it made goes),
 * a crashed net delete finished. */
int lc_net_recover(lc_db *db, uint64_t seq, json_t *intent, util_err *err)
{
	const char *op = jstr(intent, "op");
	json_t *data = json_object_get(intent, "data");
	util_err ignored = { 0 };

	if (util_streq(op, "net-create")) {
		if (json_object_get(lc_db_networks(db), jstr(data, "name")))
			return lc_db_done(db, seq, "ok", err);
		remove_made(data, &ignored);
		return lc_db_done(db, seq, "rolled-back", err);
	}
	if (util_streq(op, "net-delete")) {
		json_t *net = json_object_get(lc_db_networks(db), jstr(data, "name"));

		if (net) {
			int r = remove_made(net, err);

			if (r == 0)
				r = lc_db_append(db,
				                 json_pack("{s:s, s:I, s:s}", "type", "net-delete",
				                           "id", (json_int_t)0, "name",
				                           jstr(data, "name")),
				                 NULL, err);
			if (r < 0)
				return util_err_prefix(err, "cannot finish deleting network '%s'",
				                       jstr(data, "name"));
		}
		return lc_db_done(db, seq, "ok", err);
	}
	return 0;
}

/* ---- views ---------------------------------------------------------------------------- */

json_t *lc_net_to_json(lc_db *db, json_t *net)
{
	json_t *j = json_deep_copy(net);
	json_t *leases = json_array(), *users = json_array();
	const char *name = jstr(net, "name");

	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);
		bool uses = false;

		for (size_t k = 0; vm_counts(vm) && k < vm->def.n_nics; k++) {
			const lc_nic *n = &vm->def.nics[k];

			if (!util_streq(n->network, name))
				continue;
			uses = true;
			if (n->ip)
				json_array_append_new(
				        leases,
				        json_pack("{s:s, s:s, s:I, s:i, s:o}", "ip", n->ip, "vm",
				                  vm->def.name, "vm_id", (json_int_t)vm->id, "nic",
				                  (int)n->id, "mac",
				                  n->mac ? json_string(n->mac) : json_null()));
		}
		if (uses)
			json_array_append_new(users, json_string(vm->def.name));
	}
	json_object_set_new(j, "leases", leases);
	json_object_set_new(j, "vms", users);
	return j;
}

json_t *lc_net_list_json(lc_db *db)
{
	json_t *arr = json_array();
	const char *key;
	json_t *net = NULL;

	json_object_foreach (lc_db_networks(db), key, net)
		json_array_append_new(arr, lc_net_to_json(db, net));
	return arr;
}

json_t *lc_vm_nics_json(lc_db *db, const lc_vm *vm)
{
	json_t *arr = json_array();

	for (size_t k = 0; k < vm->def.n_nics; k++) {
		const lc_nic *n = &vm->def.nics[k];
		json_t *net = json_object_get(lc_db_networks(db), n->network);
		json_t *j = json_pack("{s:i, s:s}", "id", (int)n->id, "network", n->network);
		char tap[16];

		json_object_set_new(j, "bridge",
		                    jstr(net, "bridge") ? json_string(jstr(net, "bridge"))
		                                        : json_null());
		if (vm->state == LC_ACTIVE &&
		    net_tap_name(vm->id, n->id, tap, sizeof(tap), NULL) == 0)
			json_object_set_new(j, "tap", json_string(tap));
		else
			json_object_set_new(j, "tap", json_null());
		json_object_set_new(j, "mac", n->mac ? json_string(n->mac) : json_null());
		json_object_set_new(j, "ip", n->ip ? json_string(n->ip) : json_null());
		if (n->ip && json_object_get(net, "prefix"))
			json_object_set(j, "prefix", json_object_get(net, "prefix"));
		if (n->ip && jstr(net, "gateway"))
			json_object_set(j, "gateway", json_object_get(net, "gateway"));
		if (n->ip && jstr(net, "dns"))
			json_object_set(j, "dns", json_object_get(net, "dns"));
		json_object_set_new(j, "model", json_string(n->model ? n->model : "virtio"));
		json_array_append_new(arr, j);
	}
	return arr;
}

/* The network-config (version 2) a cloud-init seed carries: each nic with
 * an address is matched by its MAC and given its lease, gateway and DNS. */
char *lc_nics_network_config(json_t *nics)
{
	size_t i, len = 0;
	char *text = NULL;
	FILE *f = open_memstream(&text, &len);
	json_t *n;

	if (!f)
		abort(); /* only on allocation failure */
	fputs("version: 2\nethernets:\n", f);
	json_array_foreach (nics, i, n) {
		const char *ip = jstr(n, "ip"), *mac = jstr(n, "mac");

		fprintf(f, "  nic%lld:\n", (long long)json_integer_value(json_object_get(n, "id")));
		if (mac)
			fprintf(f, "    match:\n      macaddress: \"%s\"\n", mac);
		if (!ip) {
			fputs("    dhcp4: false\n", f);
			continue;
		}
		fprintf(f, "    addresses:\n      - %s/%lld\n", ip,
		        json_object_get(n, "prefix")
		                ? (long long)json_integer_value(json_object_get(n, "prefix"))
		                : 32LL);
		if (jstr(n, "gateway"))
			fprintf(f, "    routes:\n      - to: default\n        via: %s\n",
			        jstr(n, "gateway"));
		if (jstr(n, "dns"))
			fprintf(f, "    nameservers:\n      addresses:\n        - %s\n",
			        jstr(n, "dns"));
	}
	fclose(f);
	return text;
}

/* ---- taps ------------------------------------------------------------------------------ */

void lc_nics_remove_taps(const lc_vm *vm)
{
	for (size_t k = 0; k < vm->def.n_nics; k++) {
		char tap[16];
		net_link_info li;
		util_err ignored = { 0 };

		if (net_tap_name(vm->id, vm->def.nics[k].id, tap, sizeof(tap), NULL) < 0)
			continue;
		/* only a tap: never an interface of that name that is not ours */
		if (net_link_get(tap, &li, &ignored) == 0 && li.kind == NET_KIND_TAP)
			net_link_delete(tap, &ignored);
	}
}

int lc_nic_open_tap(lc_db *db, const lc_vm *vm, const lc_nic *n, int *ret_fd, util_err *err)
{
	json_t *net = NULL;
	char tap[16];
	net_link_info li;
	int r = lc_net_find(db, n->network, &net, err);

	if (r == 0)
		r = net_tap_name(vm->id, n->id, tap, sizeof(tap), err);
	if (r == 0)
		r = net_link_get(tap, &li, err);
	if (r < 0)
		return util_err_prefix(err, "nic %u", n->id);
	/* a tap of ours left over (nothing runs the VM now): it goes */
	if (li.kind == NET_KIND_TAP)
		net_link_delete(tap, NULL);
	else if (li.kind != NET_KIND_NONE)
		return util_err_set(err, -EEXIST,
		                    "nic %u: interface '%s' exists and is not a tap of qvm; rename "
		                    "or delete it",
		                    n->id, tap);
	r = net_tap_create(tap, jstr(net, "bridge"), ret_fd, err);
	if (r < 0)
		return util_err_prefix(err, "nic %u on network '%s'", n->id, n->network);
	return 0;
}

int lc_nics_open_taps(lc_db *db, const lc_vm *vm, int **ret_fds, util_err *err)
{
	int *fds = util_xcalloc(vm->def.n_nics + 1, sizeof(int));

	for (size_t k = 0; k < vm->def.n_nics; k++) {
		int r = lc_nic_open_tap(db, vm, &vm->def.nics[k], &fds[k], err);

		if (r < 0) {
			/* closing a tap's fd deletes it */
			for (size_t j = 0; j < k; j++)
				close(fds[j]);
			free(fds);
			return r;
		}
		util_crash_point("start-after-tap");
	}
	*ret_fds = fds;
	return 0;
}

__attribute__((constructor)) static void register_network_recovery(void)
{
	lc_store_on_intent("net-", lc_net_recover);
}
