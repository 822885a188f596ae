/* net: the host side of VM networking — bridges, VLAN interfaces and taps
 * over netlink (libnl-route-3) and TUNSETIFF, never `ip` or `brctl` — and
 * the pure parts: MAC generation, IPv4 ranges and leases, tap names. */
#ifndef QVM_NET_H
#define QVM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Interface names are at most IFNAMSIZ - 1 bytes. */
#define NET_IFNAME_MAX 15
#define NET_VLAN_MAX   4094
#define NET_MTU_MIN    68
#define NET_MTU_MAX    65535

/* ---- pure helpers (no host access) --------------------------------------- */

/* Is name a valid interface name (1..15 bytes of [A-Za-z0-9_.-], not "."
 * or "..")? err says why not, naming what (e.g. "bridge"). */
int net_validate_ifname(const char *name, const char *what, util_err *err);

/* The tap of NIC nic_id of VM vm_id: "qvm<vm>n<nic>", at most 15 bytes;
 * -ENAMETOOLONG otherwise. buf holds at least 16 bytes. */
int net_tap_name(uint64_t vm_id, unsigned nic_id, char *buf, size_t len, util_err *err);

/* A stable, locally administered unicast MAC for NIC nic_id of the VM with
 * this uuid: "52:54:xx:xx:xx:xx" from a hash of (uuid, nic_id, attempt).
 * A caller that finds it taken tries the next attempt. buf: 18 bytes. */
void net_mac_generate(const char *uuid, unsigned nic_id, unsigned attempt, char buf[18]);

/* Normalise a MAC ("52:54:00:AB:cd:ef" -> lowercase); refuses multicast
 * and malformed ones. buf: 18 bytes. */
int net_mac_normalize(const char *mac, char buf[18], util_err *err);

/* IPv4 in host byte order. */
int net_ip4_parse(const char *s, uint32_t *ret, util_err *err);
void net_ip4_format(uint32_t ip, char buf[16]);

/* "FIRST-LAST" with FIRST <= LAST, both inside one /prefix network (prefix
 * 8..30 checked by the caller with net_range_check). */
int net_range_parse(const char *s, uint32_t *ret_first, uint32_t *ret_last, util_err *err);

/* The range lies in one prefix-sized network, holds neither its network
 * nor broadcast address, and the gateway (0: none) is a host address of
 * that network (neither its network nor its broadcast address). */
int net_range_check(uint32_t first, uint32_t last, unsigned prefix, uint32_t gateway,
                    util_err *err);

/* Is ip a host address of its /prefix network: neither the network's own
 * address nor its broadcast address? (prefix 8..30) */
bool net_ip4_is_host(uint32_t ip, unsigned prefix);

/* Are a and b in the same /prefix network? */
bool net_ip4_same_net(uint32_t a, uint32_t b, unsigned prefix);

/* The lowest address of first..last not in used[0..n) (any order);
 * -ENOSPC when the range is exhausted. */
int net_range_pick(uint32_t first, uint32_t last, const uint32_t *used, size_t n, uint32_t *ret,
                   util_err *err);

/* ---- interfaces (netlink) ------------------------------------------------- */

typedef enum net_kind {
	NET_KIND_NONE, /* no such interface */
	NET_KIND_BRIDGE,
	NET_KIND_VLAN,
	NET_KIND_TAP,   /* tun/tap */
	NET_KIND_OTHER, /* a physical NIC, veth, dummy... */
} net_kind;

typedef struct net_link_info {
	net_kind kind;
	int ifindex;   /* the kernel's index, 0 when NONE */
	char type[32]; /* the kernel's kind ("bridge", "veth"), or "" */
	unsigned mtu;
	bool up;
	char master[16];    /* the bridge it is enslaved to, or "" */
	unsigned vlan_id;   /* for NET_KIND_VLAN */
	char vlan_link[16]; /* the VLAN's uplink, or "" */
} net_link_info;

const char *net_kind_name(net_kind k); /* "bridge", "vlan", "tap", "other", "none" */

/* Look an interface up. A missing one is kind NONE, not an error. */
int net_link_get(const char *name, net_link_info *ret, util_err *err);

/* Create a bridge (mtu 0: the kernel's default) and bring it up; deleted
 * again if bringing it up fails. *ret_ifindex is its index. -EEXIST when
 * an interface of that name exists (it is left alone). */
int net_bridge_create(const char *name, unsigned mtu, int *ret_ifindex, util_err *err);

/* Create VLAN interface name (id vid) on uplink, down and enslaved to
 * nothing (net_link_attach does that). *ret_ifindex is its index. -EEXIST
 * when an interface of that name exists (it is left alone). */
int net_vlan_add(const char *name, const char *uplink, unsigned vid, unsigned mtu, int *ret_ifindex,
                 util_err *err);

/* Enslave name to bridge (NULL: release it), set mtu (0: leave) and bring
 * it up. */
int net_link_attach(const char *name, const char *bridge, unsigned mtu, util_err *err);

/* Delete an interface; a missing one is fine (0). */
int net_link_delete(const char *name, util_err *err);

/* Delete the interface with this ifindex only if it still is name and of
 * this kind: what qvm made, never what replaced it under the same name.
 * 1 when it was deleted, 0 when it is gone or is not that interface any
 * more (left alone). */
int net_link_delete_own(const char *name, int ifindex, net_kind kind, util_err *err);

/* The host interface (from /sys/class/net/<if>/address) whose MAC is mac
 * (lowercase, as net_mac_normalize gives): 1 with its name in ifname
 * (16 bytes), 0 when none has it. */
int net_mac_host_owner(const char *mac, char ifname[16]);

/* Create tap name (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, not persistent: it goes
 * when the last fd closes, so a killed QEMU takes it along), enslave it to
 * bridge with the bridge's MTU and bring it up. *ret_fd is close-on-exec.
 * On failure nothing is left. -EEXIST if the name is taken. */
int net_tap_create(const char *name, const char *bridge, int *ret_fd, util_err *err);

/* The kernel's counters of an interface (a VM's tap: rx is what the guest
 * sent, tx what it was sent). */
typedef struct net_link_stats {
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
} net_link_stats;

/* The counters of interface name over netlink; -ENODEV when there is
 * none (a tap gone with its QEMU). */
int net_link_stats_get(const char *name, net_link_stats *ret, util_err *err);

#endif
