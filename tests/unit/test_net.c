/* net/: MAC generation, IPv4 ranges and lease choice, tap names,
 * interface name validation (pure functions: no host access); and one
 * nic-attach on a journal in a temporary root (no interface is made). */
#include <stdlib.h>
#include <string.h>

#include "lifecycle/store/store.h"
#include "lifecycle/lifecycle.h"
#include "net/net.h"
#include "tap.h"

static void test_tap_names(void)
{
	util_err err = { 0 };
	char buf[16];

	ok(net_tap_name(7, 0, buf, sizeof(buf), &err) == 0, "tap name of vm 7 nic 0");
	is_str(buf, "qvm7n0", "tap name is qvm<vm>n<nic>");
	ok(net_tap_name(123456789, 15, buf, sizeof(buf), &err) == 0 && strlen(buf) <= 15,
	   "a nine-digit vm id still fits: %s", buf);
	ok(net_tap_name(12345678901ull, 15, buf, sizeof(buf), &err) == -ENAMETOOLONG &&
	           strstr(err.msg, "longer than 15"),
	   "a name over 15 bytes is refused: %s", err.msg);
}

static void test_macs(void)
{
	util_err err = { 0 };
	char a[18], b[18], c[18], d[18], n[18];
	unsigned first;

	net_mac_generate("0b6d5a1e-0000-4000-8000-000000000001", 0, 0, a);
	net_mac_generate("0b6d5a1e-0000-4000-8000-000000000001", 0, 0, b);
	net_mac_generate("0b6d5a1e-0000-4000-8000-000000000001", 1, 0, c);
	net_mac_generate("0b6d5a1e-0000-4000-8000-000000000002", 0, 0, d);
	is_str(a, b, "the same vm and nic give the same mac (stable)");
	ok(strcmp(a, c) != 0, "another nic gets another mac: %s %s", a, c);
	ok(strcmp(a, d) != 0, "another vm gets another mac: %s %s", a, d);
	net_mac_generate("0b6d5a1e-0000-4000-8000-000000000001", 0, 1, b);
	ok(strcmp(a, b) != 0, "the next attempt gives another mac: %s", b);
	sscanf(a, "%2x", &first);
	ok((first & 2) && !(first & 1), "locally administered and unicast: %s", a);
	ok(strlen(a) == 17 && net_mac_normalize(a, n, &err) == 0 && !strcmp(a, n),
	   "a generated mac is well formed");
	ok(net_mac_normalize("52:54:00:AB:cd:EF", n, &err) == 0 && !strcmp(n, "52:54:00:ab:cd:ef"),
	   "normalised to lowercase: %s", n);
	ok(net_mac_normalize("01:00:5e:00:00:01", n, &err) < 0 && strstr(err.msg, "multicast"),
	   "a multicast mac is refused: %s", err.msg);
	ok(net_mac_normalize("52:54:00:12:34", n, &err) < 0, "a short mac is refused");
	ok(net_mac_normalize("52:54:00:12:34:5g", n, &err) < 0, "a non-hex mac is refused");
	ok(net_mac_normalize("52-54-00-12-34-56", n, &err) < 0, "dashes are refused");
	ok(net_mac_normalize(" 2:54:00:12:34:56", n, &err) < 0, "a space is refused");
	ok(net_mac_normalize("00:00:00:00:00:00", n, &err) < 0, "the zero mac is refused");
}

static void test_ips(void)
{
	util_err err = { 0 };
	uint32_t ip, first, last;
	char buf[16];

	ok(net_ip4_parse("10.0.0.5", &ip, &err) == 0 && ip == 0x0a000005, "10.0.0.5 parses");
	net_ip4_format(0xc0a80101, buf);
	is_str(buf, "192.168.1.1", "formatting");
	ok(net_ip4_parse("10.0.0.256", &ip, &err) < 0, "an octet over 255 is refused");
	ok(net_ip4_parse("10.0.0", &ip, &err) < 0, "three octets are refused");
	ok(net_ip4_parse("10.0.0.1.2", &ip, &err) < 0, "five octets are refused");
	ok(net_ip4_parse("10.0.0.01", &ip, &err) < 0, "a leading zero is refused");
	ok(net_ip4_parse("10.0.0.1 ", &ip, &err) < 0, "trailing junk is refused");
	ok(net_ip4_parse("", &ip, &err) < 0, "empty is refused");

	ok(net_range_parse("10.0.0.10-10.0.0.20", &first, &last, &err) == 0 &&
	           first == 0x0a00000a && last == 0x0a000014,
	   "a range parses");
	ok(net_range_parse("10.0.0.20-10.0.0.10", &first, &last, &err) < 0 &&
	           strstr(err.msg, "above"),
	   "a reversed range is refused: %s", err.msg);
	ok(net_range_parse("10.0.0.10", &first, &last, &err) < 0 && strstr(err.msg, "FIRST-LAST"),
	   "a range without a dash is refused: %s", err.msg);
	ok(net_range_parse("10.0.0.10-x", &first, &last, &err) < 0,
	   "a bad last address is refused");

	ok(net_range_check(0x0a00000a, 0x0a000014, 24, 0x0a000001, &err) == 0,
	   "10.0.0.10-20/24 gw .1 is fine");
	ok(net_range_check(0x0a00000a, 0x0a00010a, 24, 0, &err) < 0 && strstr(err.msg, "one /24"),
	   "a range over two /24 is refused: %s", err.msg);
	ok(net_range_check(0x0a000000, 0x0a000014, 24, 0, &err) < 0 &&
	           strstr(err.msg, "network or broadcast"),
	   "the network address is refused: %s", err.msg);
	ok(net_range_check(0x0a00000a, 0x0a0000ff, 24, 0, &err) < 0,
	   "the broadcast address is refused");
	ok(net_range_check(0x0a00000a, 0x0a000014, 24, 0x0b000001, &err) < 0 &&
	           strstr(err.msg, "gateway"),
	   "a gateway outside the network is refused: %s", err.msg);
	ok(net_range_check(0x0a00000a, 0x0a000014, 31, 0, &err) < 0, "prefix 31 is refused");
	ok(net_range_check(0x0a00000a, 0x0a000014, 24, 0x0a000000, &err) < 0 &&
	           strstr(err.msg, "gateway is the network address"),
	   "a gateway that is the network address is refused: %s", err.msg);
	ok(net_range_check(0x0a00000a, 0x0a000014, 24, 0x0a0000ff, &err) < 0 &&
	           strstr(err.msg, "gateway is the broadcast address"),
	   "a gateway that is the broadcast address is refused: %s", err.msg);
	ok(net_range_check(0x0a00010a, 0x0a000114, 23, 0x0a0000ff, &err) == 0,
	   "x.x.0.255 is a host address of a /23: a fine gateway");

	ok(net_ip4_is_host(0x0a000005, 24), "10.0.0.5 is a host of its /24");
	ok(!net_ip4_is_host(0x0a000000, 24), "10.0.0.0 is not (network)");
	ok(!net_ip4_is_host(0x0a0000ff, 24), "10.0.0.255 is not (broadcast)");
	ok(net_ip4_is_host(0x0a0000ff, 16), "10.0.0.255 is a host of its /16");
	ok(net_ip4_same_net(0x0a000005, 0x0a0000fe, 24), "10.0.0.5 and .254 share a /24");
	ok(!net_ip4_same_net(0x0a000005, 0x0a000105, 24), "10.0.0.5 and 10.0.1.5 do not");
	ok(net_ip4_same_net(0x0a000005, 0x0a000105, 16), "... but share a /16");
}

static void test_pick(void)
{
	util_err err = { 0 };
	uint32_t used[3] = { 0x0a00000b, 0x0a00000a, 0x0a00000d };
	uint32_t ip = 0;

	ok(net_range_pick(0x0a00000a, 0x0a00000d, NULL, 0, &ip, &err) == 0 && ip == 0x0a00000a,
	   "an empty range gives its first address");
	ok(net_range_pick(0x0a00000a, 0x0a00000d, used, 3, &ip, &err) == 0 && ip == 0x0a00000c,
	   "the lowest free address is picked");
	used[2] = 0x0a00000c;
	ok(net_range_pick(0x0a00000a, 0x0a00000c, used, 3, &ip, &err) == -ENOSPC &&
	           strstr(err.msg, "leased"),
	   "an exhausted range is -ENOSPC: %s", err.msg);
	ok(net_range_pick(0xfffffffe, 0xffffffff, NULL, 0, &ip, &err) == 0 && ip == 0xfffffffe,
	   "the top of the address space does not wrap");
	ok(net_range_pick(0xffffffff, 0xffffffff, (uint32_t[]){ 0xffffffff }, 1, &ip, &err) ==
	           -ENOSPC,
	   "a full range at the top ends");
}

static void test_ifnames(void)
{
	util_err err = { 0 };

	ok(net_validate_ifname("qbr0", "bridge", &err) == 0, "qbr0 is a valid name");
	ok(net_validate_ifname("eth0.100", "vlan", &err) == 0, "eth0.100 is a valid name");
	ok(net_validate_ifname("a234567890123456", "bridge", &err) < 0 && strstr(err.msg, "15"),
	   "16 bytes are refused: %s", err.msg);
	ok(net_validate_ifname("br 0", "bridge", &err) < 0, "a space is refused");
	ok(net_validate_ifname("br/0", "bridge", &err) < 0, "a slash is refused");
	ok(net_validate_ifname("..", "bridge", &err) < 0, "'..' is refused");
	ok(net_validate_ifname("", "bridge", &err) < 0, "empty is refused");
}

static void test_network_config(void)
{
	_cleanup_json_ json_t *nics = json_loads(
	        "[{\"id\":0,\"network\":\"lan\",\"mac\":\"52:54:00:12:34:56\",\"ip\":\"10.0.0.10\","
	        "\"prefix\":24,\"gateway\":\"10.0.0.1\",\"dns\":\"10.0.0.2\"},"
	        "{\"id\":3,\"network\":\"dmz\",\"mac\":\"52:54:00:ab:cd:ef\"}]",
	        0, NULL);
	_cleanup_free_ char *text = lc_nics_network_config(nics);

	is_str(text,
	       "version: 2\n"
	       "ethernets:\n"
	       "  nic0:\n"
	       "    match:\n"
	       "      macaddress: \"52:54:00:12:34:56\"\n"
	       "    addresses:\n"
	       "      - 10.0.0.10/24\n"
	       "    routes:\n"
	       "      - to: default\n"
	       "        via: 10.0.0.1\n"
	       "    nameservers:\n"
	       "      addresses:\n"
	       "        - 10.0.0.2\n"
	       "  nic3:\n"
	       "    match:\n"
	       "      macaddress: \"52:54:00:ab:cd:ef\"\n"
	       "    dhcp4: false\n",
	       "network-config: the lease by MAC, gateway and DNS; a nic without a lease "
	       "unconfigured");
}

/* nic-attach to a stopped vm checks the tap name its next start needs,
 * as create does: a vm id of 11 digits leaves no room for "qvm<id>n0". */
static void test_stopped_attach_tap_name(void)
{
	char tmpl[] = "/tmp/qvm-unit-net.XXXXXX";
	const char *root = mkdtemp(tmpl);
	lc_db *db = NULL;
	lc_vm *vm = NULL;
	util_err err = { 0 };
	lc_create_opts co = { 0 };
	lc_run_opts ro = { 0 };
	lc_vmdef def;
	uint64_t seq = 0, id = 0;
	unsigned nic = 0;
	int r;

	if (!root || lc_db_open(root, LC_DB_WRITE, &db, &err) < 0) {
		ok(0, "a journal in a temporary root: %s", err.msg);
		return;
	}
	/* an intent reserves its id: the next vm gets the one after */
	r = lc_db_append(db,
	                 json_pack("{s:s, s:s, s:I, s:{}}", "type", "intent", "op", "unit-test",
	                           "id", (json_int_t)9999999999LL, "data"),
	                 &seq, &err);
	if (r == 0)
		r = lc_db_append(db,
		                 json_pack("{s:s, s:I, s:I, s:s}", "type", "done", "id",
		                           (json_int_t)9999999999LL, "intent", (json_int_t)seq,
		                           "result", "ok"),
		                 NULL, &err);
	if (r == 0)
		r = lc_db_append(db,
		                 json_pack("{s:s, s:I, s:{s:s, s:s, s:i}}", "type", "net", "id",
		                           (json_int_t)0, "net", "name", "lan", "bridge",
		                           "qbrunit0", "prefix", 24),
		                 NULL, &err);
	lc_vmdef_init(&def);
	def.name = util_xstrdup("big");
	if (r == 0)
		r = lc_vm_create(db, &def, &co, &id, &err);
	ok(r == 0 && id == 10000000000ull, "a vm with an 11-digit id (%llu): %s",
	   (unsigned long long)id, err.msg);
	lc_vmdef_clear(&def);
	lc_db_close(db);
	db = NULL;

	memset(&err, 0, sizeof(err));
	r = lc_vm_nic_attach(root, "big", "lan", NULL, NULL, NULL, &ro, &nic, &err);
	ok(r == -ENAMETOOLONG && strstr(err.msg, "cannot attach a nic to 'big'") &&
	           strstr(err.msg, "longer than 15 bytes"),
	   "nic-attach to it while it is stopped is refused: %s", err.msg);
	if (lc_db_open(root, 0, &db, &err) == 0 && lc_db_find(db, "big", &vm, &err) == 0)
		is_int((int)vm->def.n_nics, 0, "... and its definition has no nic");
	else
		ok(0, "... and its definition has no nic: %s", err.msg);
	lc_db_close(db);
	util_rm_rf(root, NULL);
}

int main(void)
{
	test_tap_names();
	test_macs();
	test_ips();
	test_pick();
	test_ifnames();
	test_network_config();
	test_stopped_attach_tap_name();
	return done_testing();
}
