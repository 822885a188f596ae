/* The syntax checks cli/ runs on arguments before any work: update's
 * KEY=VALUE pairs and net create's and nic-attach's values. */
#include <string.h>

#include "lifecycle/lifecycle.h"
#include "tap.h"

static void pair(const char *kv, const char *needle)
{
	util_err err = { 0 };
	int r = lc_update_pair_check(kv, &err);

	if (!needle)
		ok(r == 0, "update pair '%s' is well-formed%s%s", kv, r ? ": " : "", err.msg);
	else
		ok(r < 0 && strstr(err.msg, needle), "update pair '%s' is refused: %s", kv,
		   err.msg);
}

static void net_arg(const char *kind, const char *value, bool good)
{
	util_err err = { 0 };
	int r = lc_net_arg_check(kind, value, &err);

	ok(good ? r == 0 : r < 0, "%s '%s' is %s%s%s", kind, value,
	   good ? "well-formed" : "refused", err.msg[0] ? ": " : "", err.msg);
}

int main(void)
{
	pair("owner=alice", NULL);
	pair("owner=", NULL);
	pair("label.tier=web", NULL);
	pair("memory=512", NULL);
	pair("vcpus=4", NULL);
	pair("snapshots.max=3", NULL);
	pair("novalue", "is not KEY=VALUE");
	pair("=v", "has no key");
	pair("label.=v", "has no key");
	pair("bad,key=v", "invalid key 'bad,key'");
	pair("label.b d=1", "invalid label key 'b d'");
	pair("note=a\nb", "the value of 'note' contains a control character");
	pair("memory=lots", "invalid memory");
	pair("vcpus=0", "invalid vcpus");
	pair("snapshots.max=abc", "snapshots.max must be a number");
	pair("machine=q35", NULL);
	pair("machine=vax", "unknown machine");
	pair("accel=tcg", NULL);
	pair("restart=always", NULL);
	pair("restart=sometimes", "restart");
	pair("autostart=yes", NULL);
	pair("autostart=maybe", "use yes or no");
	pair("append=console=ttyS0 quiet", NULL);
	pair("kernel=./vmlinuz", NULL); /* cli/ makes it absolute */
	pair("kernel=", NULL);
	pair("kernel=nbd:host:1", "kernel");
	pair("cloud-init.user-data=/x/ud", NULL);
	pair("cloud-init.vendor-data=/x", NULL); /* user data, as any other key */
	pair("cloud_init=x", "give cloud-init.user-data=FILE");
	pair("name=x", "use qvm rename");
	pair("uuid=x", "never changes");
	pair("max-vcpus=4", NULL);
	pair("max-vcpus=0", NULL);
	pair("max-memory=2G", NULL);
	pair("max-memory=0", NULL);
	pair("max-memory=lots", "invalid max-memory");
	pair("disks=x", "use disk-attach");

	net_arg("network", "lan", true);
	net_arg("network", "bad/n", false);
	net_arg("bridge", "qbr0", true);
	net_arg("bridge", "bad br!", false);
	net_arg("bridge", "abcdefghijklmnopq", false);
	net_arg("uplink", "e th", false);
	net_arg("vlan", "4094", true);
	net_arg("vlan", "5000", false);
	net_arg("mtu", "1500", true);
	net_arg("mtu", "10", false);
	net_arg("mtu", "abc", false);
	net_arg("prefix", "24", true);
	net_arg("prefix", "4", false);
	net_arg("range", "10.0.0.10-10.0.0.99", true);
	net_arg("range", "abc", false);
	net_arg("gateway", "10.0.0.1", true);
	net_arg("dns", "1.2", false);
	net_arg("ip", "1.2.3", false);
	net_arg("mac", "52:54:00:12:34:56", true);
	net_arg("mac", "zz", false);
	net_arg("model", "e1000", true);
	net_arg("model", "rtl8139", false);
	return done_testing();
}
