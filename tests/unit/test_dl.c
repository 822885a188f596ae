/* Unit test of storage/curl_dl.c and net/nl_dl.c: libcurl and libnl are
 * not in a qvm process until a download or a network operation needs them,
 * then they are loaded once and their functions work through the tables. */
#include <stdio.h>
#include <string.h>

#include "net/nl_dl.h"
#include "storage/curl_dl.h"
#include "tap.h"

static bool mapped(const char *needle)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			found = true;
	if (f)
		fclose(f);
	return found;
}

int main(void)
{
	util_err err = { 0 };
	CURL *c;

	ok(!mapped("libcurl"), "libcurl is not loaded at start (not linked)");
	ok(stor_curl_load(&err) == 0, "stor_curl_load: %s", err.msg[0] ? err.msg : "loaded");
	ok(mapped("libcurl"), "then it is mapped");
	ok(stor_curl_load(&err) == 0, "a second load is a no-op");
	ok(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK, "curl_global_init through the table");
	c = curl_easy_init();
	ok(c != NULL, "curl_easy_init");
	ok(curl_easy_setopt(c, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK,
	   "curl_easy_setopt (variadic) through the table");
	ok(strstr(curl_easy_strerror(CURLE_COULDNT_CONNECT), "onnect") != NULL,
	   "curl_easy_strerror: '%s'", curl_easy_strerror(CURLE_COULDNT_CONNECT));
	curl_easy_cleanup(c);
	curl_global_cleanup();

	ok(!mapped("libnl-route-3") && !mapped("libnl-3"),
	   "libnl is not loaded at start (not linked)");
	ok(net_nl_load(&err) == 0, "net_nl_load: %s", err.msg[0] ? err.msg : "loaded");
	ok(mapped("libnl-route-3") && mapped("libnl-3"), "then both libraries are mapped");
	ok(net_nl_load(&err) == 0, "a second load is a no-op");
	{
		struct nl_sock *s = nl_socket_alloc();
		struct rtnl_link *lo = NULL;

		ok(s && nl_connect(s, NETLINK_ROUTE) == 0, "a route socket through the table");
		ok(s && rtnl_link_get_kernel(s, 0, "lo", &lo) == 0 && lo &&
		           rtnl_link_get_ifindex(lo) > 0,
		   "the loopback interface looked up through the table");
		if (lo)
			rtnl_link_put(lo);
		if (s)
			nl_socket_free(s);
	}
	return done_testing();
}
