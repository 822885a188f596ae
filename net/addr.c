/* The pure side of networking: interface and tap names, MAC generation,
 * IPv4 ranges and the choice of a free lease. No host access: unit-tested
 * in tests/unit/test_net.c. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "net.h"

int net_validate_ifname(const char *name, const char *what, util_err *err)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > NET_IFNAME_MAX)
		return util_err_set(err, -EINVAL, "%s name '%s' must be 1 to %d characters", what,
		                    name ? name : "", NET_IFNAME_MAX);
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return util_err_set(err, -EINVAL, "'%s' is not a valid %s name", name, what);
	for (const char *p = name; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return util_err_set(
			        err, -EINVAL,
			        "%s name '%s' may hold only letters, digits, '_', '-' and '.'",
			        what, name);
	}
	return 0;
}

int net_tap_name(uint64_t vm_id, unsigned nic_id, char *buf, size_t len, util_err *err)
{
	char name[64];
	int n = snprintf(name, sizeof(name), "qvm%" PRIu64 "n%u", vm_id, nic_id);

	if (n < 0 || n > NET_IFNAME_MAX || (size_t)n >= len)
		return util_err_set(err, -ENAMETOOLONG,
		                    "the tap name of vm %" PRIu64
		                    " nic %u would be longer than %d bytes",
		                    vm_id, nic_id, NET_IFNAME_MAX);
	memcpy(buf, name, (size_t)n + 1);
	return 0;
}

/* FNV-1a, 64 bit: stable across builds and hosts. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

void net_mac_generate(const char *uuid, unsigned nic_id, unsigned attempt, char buf[18])
{
	uint64_t h = 14695981039346656037ull;
	unsigned char b[4];

	h = fnv1a(h, uuid ? uuid : "", uuid ? strlen(uuid) : 0);
	h = fnv1a(h, &nic_id, sizeof(nic_id));
	h = fnv1a(h, &attempt, sizeof(attempt));
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(h >> (8 * i));
	/* 0x52: locally administered (bit 1 set), unicast (bit 0 clear) */
	snprintf(buf, 18, "52:54:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]);
}

int net_mac_normalize(const char *mac, char buf[18], util_err *err)
{
	const char *orig = mac;
	unsigned o[6];

	for (size_t i = 0; mac && i < 17; i++) {
		bool colon = i % 3 == 2;

		if (colon ? mac[i] != ':' : !strchr("0123456789abcdefABCDEF", mac[i]) || !mac[i])
			mac = NULL;
	}
	if (!mac || mac[17] ||
	    sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5]) != 6)
		return util_err_set(err, -EINVAL,
		                    "'%s' is not a MAC address like 52:54:00:12:34:56",
		                    orig ? orig : "");
	if (o[0] & 1)
		return util_err_set(err, -EINVAL,
		                    "'%s' is a multicast MAC address; a nic needs a unicast one",
		                    mac);
	if (!(o[0] | o[1] | o[2] | o[3] | o[4] | o[5]))
		return util_err_set(err, -EINVAL, "'%s' is not a usable MAC address", mac);
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", o[0] & 255, o[1] & 255, o[2] & 255,
	         o[3] & 255, o[4] & 255, o[5] & 255);
	return 0;
}

int net_ip4_parse(const char *s, uint32_t *ret, util_err *err)
{
	uint32_t ip = 0;
	const char *p = s;

	if (!s)
		return util_err_set(err, -EINVAL, "no IPv4 address");
	for (int i = 0; i < 4; i++) {
		unsigned v = 0;
		int digits = 0;

		while (*p >= '0' && *p <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(*p++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && p[-digits] == '0'))
			return util_err_set(err, -EINVAL,
			                    "'%s' is not an IPv4 address like 10.0.0.5", s);
		ip = ip << 8 | v;
		if (i < 3 && *p++ != '.')
			return util_err_set(err, -EINVAL,
			                    "'%s' is not an IPv4 address like 10.0.0.5", s);
	}
	if (*p)
		return util_err_set(err, -EINVAL, "'%s' is not an IPv4 address like 10.0.0.5", s);
	*ret = ip;
	return 0;
}

void net_ip4_format(uint32_t ip, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

int net_range_parse(const char *s, uint32_t *ret_first, uint32_t *ret_last, util_err *err)
{
	_cleanup_free_ char *copy = util_xstrdup(s ? s : "");
	char *dash = strchr(copy, '-');
	uint32_t first, last;
	int r;

	if (!dash)
		return util_err_set(err, -EINVAL,
		                    "range '%s' must be FIRST-LAST, like 10.0.0.10-10.0.0.99",
		                    copy);
	*dash = '\0';
	r = net_ip4_parse(copy, &first, err);
	if (r == 0)
		r = net_ip4_parse(dash + 1, &last, err);
	if (r < 0)
		return util_err_prefix(err, "range '%s'", s);
	if (first > last)
		return util_err_set(err, -EINVAL, "range '%s': the first address is above the last",
		                    s);
	*ret_first = first;
	*ret_last = last;
	return 0;
}

int net_range_check(uint32_t first, uint32_t last, unsigned prefix, uint32_t gateway, util_err *err)
{
	uint32_t mask, base, bcast;

	if (prefix < 8 || prefix > 30)
		return util_err_set(err, -EINVAL, "prefix /%u must be 8 to 30", prefix);
	mask = ~0u << (32 - prefix);
	base = first & mask;
	bcast = base | ~mask;
	if ((last & mask) != base)
		return util_err_set(err, -EINVAL, "the range does not fit in one /%u network",
		                    prefix);
	if (first == base || last == bcast)
		return util_err_set(
		        err, -EINVAL,
		        "the range holds the network or broadcast address of its /%u network",
		        prefix);
	if (gateway && (gateway & mask) != base)
		return util_err_set(err, -EINVAL, "the gateway is outside the range's /%u network",
		                    prefix);
	if (gateway && !net_ip4_is_host(gateway, prefix))
		return util_err_set(err, -EINVAL,
		                    "the gateway is the %s address of the range's /%u network",
		                    gateway == base ? "network" : "broadcast", prefix);
	return 0;
}

bool net_ip4_is_host(uint32_t ip, unsigned prefix)
{
	uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;

	return (ip & ~mask) != 0 && (ip & ~mask) != ~mask;
}

bool net_ip4_same_net(uint32_t a, uint32_t b, unsigned prefix)
{
	uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;

	return (a & mask) == (b & mask);
}

int net_range_pick(uint32_t first, uint32_t last, const uint32_t *used, size_t n, uint32_t *ret,
                   util_err *err)
{
	/* ranges are small (a /16 at most in practice): a linear scan is fine */
	for (uint64_t ip = first; ip <= last; ip++) {
		bool taken = false;

		for (size_t i = 0; i < n && !taken; i++)
			taken = used[i] == (uint32_t)ip;
		if (!taken) {
			*ret = (uint32_t)ip;
			return 0;
		}
	}
	return util_err_set(err, -ENOSPC, "every address of the range is leased");
}
