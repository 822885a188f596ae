/* net: libnl-3 and libnl-route-3, loaded with dlopen() on first use.
 *
 * Linked, the two libraries are mapped, relocated and run their
 * constructors (libnl-route registers every link, qdisc and classifier
 * type) in every qvm process: ~550 KiB more resident in each VM's
 * supervisor, and in `qvm list`, for code only the commands that make
 * bridges and taps need. So link.c calls libnl through this table, filled
 * by net_nl_load(); the headers still come from pkg-config. Private to
 * net/. */
#ifndef QVM_NET_NL_DL_H
#define QVM_NET_NL_DL_H

#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vlan.h>

#include "util/util.h"

/* Every libnl function link.c calls: X(library, function). */
#define NET_NL_FUNCTIONS(X)                                                                        \
	X(NL, nl_connect)                                                                          \
	X(NL, nl_geterror)                                                                         \
	X(NL, nl_socket_alloc)                                                                     \
	X(NL, nl_socket_free)                                                                      \
	X(NL, nl_socket_get_fd)                                                                    \
	X(ROUTE, rtnl_link_add)                                                                    \
	X(ROUTE, rtnl_link_alloc)                                                                  \
	X(ROUTE, rtnl_link_change)                                                                 \
	X(ROUTE, rtnl_link_delete)                                                                 \
	X(ROUTE, rtnl_link_get_flags)                                                              \
	X(ROUTE, rtnl_link_get_ifindex)                                                            \
	X(ROUTE, rtnl_link_get_kernel)                                                             \
	X(ROUTE, rtnl_link_get_link)                                                               \
	X(ROUTE, rtnl_link_get_master)                                                             \
	X(ROUTE, rtnl_link_get_mtu)                                                                \
	X(ROUTE, rtnl_link_get_name)                                                               \
	X(ROUTE, rtnl_link_get_stat)                                                               \
	X(ROUTE, rtnl_link_get_type)                                                               \
	X(ROUTE, rtnl_link_put)                                                                    \
	X(ROUTE, rtnl_link_set_flags)                                                              \
	X(ROUTE, rtnl_link_set_ifindex)                                                            \
	X(ROUTE, rtnl_link_set_link)                                                               \
	X(ROUTE, rtnl_link_set_master)                                                             \
	X(ROUTE, rtnl_link_set_mtu)                                                                \
	X(ROUTE, rtnl_link_set_name)                                                               \
	X(ROUTE, rtnl_link_set_type)                                                               \
	X(ROUTE, rtnl_link_vlan_alloc)                                                             \
	X(ROUTE, rtnl_link_vlan_get_id)                                                            \
	X(ROUTE, rtnl_link_vlan_set_id)

/* The table: each field has the type of the function it stands for, as
 * libnl's headers declare it. */
typedef struct net_nl_api {
#define NET_NL_FIELD(lib, fn) __typeof__(fn) *fn;
	NET_NL_FUNCTIONS(NET_NL_FIELD)
#undef NET_NL_FIELD
} net_nl_api;

extern net_nl_api net_nl;

/* Load both libraries (once per process; later calls are free). A missing
 * library or function is an error saying which package to install. */
int net_nl_load(util_err *err);

/* link.c keeps libnl's names; they go through the table. */
#ifndef NET_NL_DL_IMPL
#define nl_connect            (*net_nl.nl_connect)
#define nl_geterror           (*net_nl.nl_geterror)
#define nl_socket_alloc       (*net_nl.nl_socket_alloc)
#define nl_socket_free        (*net_nl.nl_socket_free)
#define nl_socket_get_fd      (*net_nl.nl_socket_get_fd)
#define rtnl_link_add         (*net_nl.rtnl_link_add)
#define rtnl_link_alloc       (*net_nl.rtnl_link_alloc)
#define rtnl_link_change      (*net_nl.rtnl_link_change)
#define rtnl_link_delete      (*net_nl.rtnl_link_delete)
#define rtnl_link_get_flags   (*net_nl.rtnl_link_get_flags)
#define rtnl_link_get_ifindex (*net_nl.rtnl_link_get_ifindex)
#define rtnl_link_get_kernel  (*net_nl.rtnl_link_get_kernel)
#define rtnl_link_get_link    (*net_nl.rtnl_link_get_link)
#define rtnl_link_get_master  (*net_nl.rtnl_link_get_master)
#define rtnl_link_get_mtu     (*net_nl.rtnl_link_get_mtu)
#define rtnl_link_get_name    (*net_nl.rtnl_link_get_name)
#define rtnl_link_get_stat    (*net_nl.rtnl_link_get_stat)
#define rtnl_link_get_type    (*net_nl.rtnl_link_get_type)
#define rtnl_link_put         (*net_nl.rtnl_link_put)
#define rtnl_link_set_flags   (*net_nl.rtnl_link_set_flags)
#define rtnl_link_set_ifindex (*net_nl.rtnl_link_set_ifindex)
#define rtnl_link_set_link    (*net_nl.rtnl_link_set_link)
#define rtnl_link_set_master  (*net_nl.rtnl_link_set_master)
#define rtnl_link_set_mtu     (*net_nl.rtnl_link_set_mtu)
#define rtnl_link_set_name    (*net_nl.rtnl_link_set_name)
#define rtnl_link_set_type    (*net_nl.rtnl_link_set_type)
#define rtnl_link_vlan_alloc  (*net_nl.rtnl_link_vlan_alloc)
#define rtnl_link_vlan_get_id (*net_nl.rtnl_link_vlan_get_id)
#define rtnl_link_vlan_set_id (*net_nl.rtnl_link_vlan_set_id)
#endif

#endif
