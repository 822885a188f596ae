/* Interfaces over netlink (libnl-route-3): look up, create bridges and VLAN
 * interfaces, enslave, set MTU and bring up, delete; taps via TUNSETIFF.
 * Every function undoes its own partial work when a later step fails. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "net.h"
#include "nl_dl.h"

static int nl_errno(int nlerr)
{
	switch (-nlerr) {
	case NLE_EXIST:
		return -EEXIST;
	case NLE_OBJ_NOTFOUND:
	case NLE_NODEV:
		return -ENODEV;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_INVAL:
	case NLE_RANGE:
		return -EINVAL;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

static void sock_freep(struct nl_sock **s)
{
	if (*s)
		nl_socket_free(*s);
}

static void link_putp(struct rtnl_link **l)
{
	if (*l)
		rtnl_link_put(*l);
}

#define _cleanup_sock_ _cleanup_(sock_freep)
#define _cleanup_link_ _cleanup_(link_putp)

static int route_socket(struct nl_sock **ret, util_err *err)
{
	struct nl_sock *s;
	int r = net_nl_load(err);

	if (r < 0)
		return r;
	s = nl_socket_alloc();
	if (!s)
		return util_err_set(err, -ENOMEM, "cannot allocate a netlink socket");
	r = nl_connect(s, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(s);
		return util_err_set(err, nl_errno(r), "cannot open a netlink socket: %s",
		                    nl_geterror(r));
	}
	/* the socket must not leak into QEMU */
	fcntl(nl_socket_get_fd(s), F_SETFD, FD_CLOEXEC);
	*ret = s;
	return 0;
}

const char *net_kind_name(net_kind k)
{
	static const char *const names[] = { "none", "bridge", "vlan", "tap", "other" };

	return (unsigned)k < UTIL_ARRAY_SIZE(names) ? names[k] : "?";
}

static void ifname_of(struct nl_sock *s, int ifindex, char *buf, size_t len)
{
	struct rtnl_link *l = NULL;

	buf[0] = '\0';
	if (ifindex <= 0 || rtnl_link_get_kernel(s, ifindex, NULL, &l) < 0)
		return;
	snprintf(buf, len, "%s", rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "");
	rtnl_link_put(l);
}

/* What l is, in ret. */
static void link_info_of(struct nl_sock *s, struct rtnl_link *l, net_link_info *ret)
{
	const char *type = rtnl_link_get_type(l);

	memset(ret, 0, sizeof(*ret));
	snprintf(ret->type, sizeof(ret->type), "%s", type ? type : "");
	if (util_streq(type, "bridge"))
		ret->kind = NET_KIND_BRIDGE;
	else if (util_streq(type, "vlan"))
		ret->kind = NET_KIND_VLAN;
	else if (util_streq(type, "tun"))
		ret->kind = NET_KIND_TAP;
	else
		ret->kind = NET_KIND_OTHER;
	ret->ifindex = rtnl_link_get_ifindex(l);
	ret->mtu = rtnl_link_get_mtu(l);
	ret->up = rtnl_link_get_flags(l) & IFF_UP;
	ifname_of(s, rtnl_link_get_master(l), ret->master, sizeof(ret->master));
	if (ret->kind == NET_KIND_VLAN) {
		ret->vlan_id = (unsigned)rtnl_link_vlan_get_id(l);
		ifname_of(s, rtnl_link_get_link(l), ret->vlan_link, sizeof(ret->vlan_link));
	}
}

static int link_get(struct nl_sock *s, const char *name, net_link_info *ret, util_err *err)
{
	_cleanup_link_ struct rtnl_link *l = NULL;
	int r;

	r = rtnl_link_get_kernel(s, 0, name, &l);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV) {
		memset(ret, 0, sizeof(*ret));
		ret->kind = NET_KIND_NONE;
		return 0;
	}
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot look up interface '%s': %s", name,
		                    nl_geterror(r));
	link_info_of(s, l, ret);
	return 0;
}

int net_link_get(const char *name, net_link_info *ret, util_err *err)
{
	_cleanup_sock_ struct nl_sock *s = NULL;
	int r = net_validate_ifname(name, "interface", err);

	if (r == 0)
		r = route_socket(&s, err);
	return r < 0 ? r : link_get(s, name, ret, err);
}

static int link_delete(struct nl_sock *s, const char *name, util_err *err)
{
	_cleanup_link_ struct rtnl_link *l = rtnl_link_alloc();
	int r;

	if (!l)
		return util_err_set(err, -ENOMEM, "out of memory");
	rtnl_link_set_name(l, name);
	r = rtnl_link_delete(s, l);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
		return 0;
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot delete interface '%s': %s", name,
		                    nl_geterror(r));
	return 0;
}

int net_link_delete(const char *name, util_err *err)
{
	_cleanup_sock_ struct nl_sock *s = NULL;
	int r = net_validate_ifname(name, "interface", err);

	if (r == 0)
		r = route_socket(&s, err);
	return r < 0 ? r : link_delete(s, name, err);
}

int net_link_delete_own(const char *name, int ifindex, net_kind kind, util_err *err)
{
	_cleanup_sock_ struct nl_sock *s = NULL;
	_cleanup_link_ struct rtnl_link *l = NULL, *del = NULL;
	net_link_info li;
	int r = net_validate_ifname(name, "interface", err);

	if (r == 0 && ifindex <= 0)
		return 0;
	if (r == 0)
		r = route_socket(&s, err);
	if (r < 0)
		return r;
	r = rtnl_link_get_kernel(s, ifindex, NULL, &l);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
		return 0;
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot look up interface '%s': %s", name,
		                    nl_geterror(r));
	link_info_of(s, l, &li);
	/* renamed, or another kind: not the interface qvm made */
	if (!util_streq(rtnl_link_get_name(l), name) || li.kind != kind)
		return 0;
	/* by index, not by name: exactly the interface looked at */
	del = rtnl_link_alloc();
	if (!del)
		return util_err_set(err, -ENOMEM, "out of memory");
	rtnl_link_set_ifindex(del, ifindex);
	r = rtnl_link_delete(s, del);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
		return 0;
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot delete interface '%s': %s", name,
		                    nl_geterror(r));
	return 1;
}

int net_mac_host_owner(const char *mac, char ifname[16])
{
	DIR *d = opendir("/sys/class/net");
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		char path[300], addr[64] = "";
		FILE *f;

		if (e->d_name[0] == '.' || strlen(e->d_name) > NET_IFNAME_MAX)
			continue;
		snprintf(path, sizeof(path), "/sys/class/net/%s/address", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(addr, sizeof(addr), f)) {
			addr[strcspn(addr, "\n")] = '\0';
			if (!strcasecmp(addr, mac)) {
				snprintf(ifname, 16, "%s", e->d_name);
				found = 1;
			}
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

/* Enslave (bridge non-NULL), set mtu (non-zero) and bring up, in one
 * change request. */
static int link_attach(struct nl_sock *s, const char *name, const char *bridge, unsigned mtu,
                       util_err *err)
{
	_cleanup_link_ struct rtnl_link *cur = NULL, *br = NULL;
	_cleanup_link_ struct rtnl_link *chg = rtnl_link_alloc();
	int r;

	if (!chg)
		return util_err_set(err, -ENOMEM, "out of memory");
	r = rtnl_link_get_kernel(s, 0, name, &cur);
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot find interface '%s': %s", name,
		                    nl_geterror(r));
	if (bridge) {
		r = rtnl_link_get_kernel(s, 0, bridge, &br);
		if (r < 0)
			return util_err_set(err, nl_errno(r), "cannot find bridge '%s': %s", bridge,
			                    nl_geterror(r));
		rtnl_link_set_master(chg, rtnl_link_get_ifindex(br));
	}
	if (mtu)
		rtnl_link_set_mtu(chg, mtu);
	rtnl_link_set_flags(chg, IFF_UP);
	r = rtnl_link_change(s, cur, chg, 0);
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot %s interface '%s'%s%s: %s",
		                    bridge ? "enslave and bring up" : "bring up", name,
		                    bridge ? " to bridge " : "", bridge ? bridge : "",
		                    nl_geterror(r));
	return 0;
}

int net_link_attach(const char *name, const char *bridge, unsigned mtu, util_err *err)
{
	_cleanup_sock_ struct nl_sock *s = NULL;
	int r = route_socket(&s, err);

	return r < 0 ? r : link_attach(s, name, bridge, mtu, err);
}

int net_bridge_create(const char *name, unsigned mtu, int *ret_ifindex, util_err *err)
{
	_cleanup_sock_ struct nl_sock *s = NULL;
	_cleanup_link_ struct rtnl_link *l = NULL;
	net_link_info li;
	int r = net_validate_ifname(name, "bridge", err);

	if (r == 0)
		r = route_socket(&s, err);
	if (r < 0)
		return r;
	l = rtnl_link_alloc();
	if (!l)
		return util_err_set(err, -ENOMEM, "out of memory");
	rtnl_link_set_name(l, name);
	r = rtnl_link_set_type(l, "bridge");
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot make bridge '%s': %s", name,
		                    nl_geterror(r));
	if (mtu)
		rtnl_link_set_mtu(l, mtu);
	r = rtnl_link_add(s, l, NLM_F_CREATE | NLM_F_EXCL);
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot create bridge '%s': %s", name,
		                    nl_geterror(r));
	/* NLM_F_EXCL: the bridge of that name is the one just made */
	r = link_get(s, name, &li, err);
	if (r == 0 && li.kind != NET_KIND_BRIDGE)
		r = util_err_set(err, -EIO, "bridge '%s' vanished once made", name);
	if (r < 0)
		return r;
	r = link_attach(s, name, NULL, 0, err);
	if (r < 0) {
		util_err ignored = { 0 };

		net_link_delete_own(name, li.ifindex, NET_KIND_BRIDGE, &ignored);
		return r;
	}
	*ret_ifindex = li.ifindex;
	return 0;
}

int net_vlan_add(const char *name, const char *uplink, unsigned vid, unsigned mtu, int *ret_ifindex,
                 util_err *err)
{
	_cleanup_sock_ struct nl_sock *s = NULL;
	_cleanup_link_ struct rtnl_link *l = NULL, *up = NULL;
	net_link_info li;
	int r = net_validate_ifname(name, "vlan interface", err);

	if (r == 0)
		r = net_validate_ifname(uplink, "uplink", err);
	if (r == 0 && (vid < 1 || vid > NET_VLAN_MAX))
		r = util_err_set(err, -EINVAL, "vlan id %u must be 1 to %d", vid, NET_VLAN_MAX);
	if (r == 0)
		r = route_socket(&s, err);
	if (r < 0)
		return r;
	r = rtnl_link_get_kernel(s, 0, uplink, &up);
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot find uplink '%s': %s", uplink,
		                    nl_geterror(r));
	l = rtnl_link_vlan_alloc();
	if (!l)
		return util_err_set(err, -ENOMEM, "out of memory");
	rtnl_link_set_name(l, name);
	rtnl_link_set_link(l, rtnl_link_get_ifindex(up));
	rtnl_link_vlan_set_id(l, (uint16_t)vid);
	if (mtu)
		rtnl_link_set_mtu(l, mtu);
	r = rtnl_link_add(s, l, NLM_F_CREATE | NLM_F_EXCL);
	if (r == -NLE_OPNOTSUPP)
		return util_err_set(err, -EOPNOTSUPP,
		                    "cannot create vlan %u interface '%s' on '%s': this kernel has "
		                    "no 802.1Q VLAN support (load module 8021q)",
		                    vid, name, uplink);
	if (r < 0)
		return util_err_set(err, nl_errno(r),
		                    "cannot create vlan %u interface '%s' on '%s': %s", vid, name,
		                    uplink, nl_geterror(r));
	r = link_get(s, name, &li, err);
	if (r == 0 && li.kind != NET_KIND_VLAN)
		r = util_err_set(err, -EIO, "vlan interface '%s' vanished once made", name);
	if (r < 0)
		return r;
	*ret_ifindex = li.ifindex;
	return 0;
}

int net_tap_create(const char *name, const char *bridge, int *ret_fd, util_err *err)
{
	_cleanup_sock_ struct nl_sock *s = NULL;
	_cleanup_close_ int fd = -1;
	net_link_info br;
	struct ifreq ifr;
	int r = net_validate_ifname(name, "tap", err);

	if (r == 0)
		r = route_socket(&s, err);
	if (r == 0)
		r = link_get(s, bridge, &br, err);
	if (r < 0)
		return r;
	if (br.kind != NET_KIND_BRIDGE)
		return util_err_set(err, -ENODEV, "bridge '%s' %s", bridge,
		                    br.kind == NET_KIND_NONE ? "does not exist"
		                                             : "is not a bridge any more");
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return util_err_errno(err, -errno, "cannot open /dev/net/tun");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	/* IFF_TUN_EXCL: an existing tap of that name is an error, never
	 * silently shared */
	ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return util_err_errno(err, errno == EBUSY ? -EEXIST : -errno,
		                      "cannot create tap '%s'", name);
	/* not persistent: the tap is gone once the last fd is closed */
	r = link_attach(s, name, bridge, br.mtu, err);
	if (r < 0)
		return r; /* closing fd removes the tap */
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int net_link_stats_get(const char *name, net_link_stats *ret, util_err *err)
{
	_cleanup_sock_ struct nl_sock *s = NULL;
	_cleanup_link_ struct rtnl_link *l = NULL;
	int r = route_socket(&s, err);

	if (r < 0)
		return r;
	r = rtnl_link_get_kernel(s, 0, name, &l);
	if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
		return util_err_set(err, -ENODEV, "interface '%s' does not exist", name);
	if (r < 0)
		return util_err_set(err, nl_errno(r), "cannot look up interface '%s': %s", name,
		                    nl_geterror(r));
	ret->rx_bytes = rtnl_link_get_stat(l, RTNL_LINK_RX_BYTES);
	ret->tx_bytes = rtnl_link_get_stat(l, RTNL_LINK_TX_BYTES);
	ret->rx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS);
	ret->tx_packets = rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS);
	return 0;
}
