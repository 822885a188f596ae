/* net: loading libnl on first use (see nl_dl.h for why). */
#define NET_NL_DL_IMPL
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "nl_dl.h"

/* The sonames the -dev packages' libraries carry (libnl-3-200,
 * libnl-route-3-200). */
#define LIB_NL    "libnl-3.so.200"
#define LIB_ROUTE "libnl-route-3.so.200"

net_nl_api net_nl;

enum { NL, ROUTE };

static const struct {
	int lib;
	const char *name;
	size_t offset;
} functions[] = {
#define NET_NL_ENTRY(lib, fn) { lib, #fn, offsetof(net_nl_api, fn) },
	NET_NL_FUNCTIONS(NET_NL_ENTRY)
#undef NET_NL_ENTRY
};

int net_nl_load(util_err *err)
{
	static const char *const sonames[] = { [NL] = LIB_NL, [ROUTE] = LIB_ROUTE };
	static const char *const packages[] = {
		[NL] = "libnl-3-200", [ROUTE] = "libnl-route-3-200"
	};
	static bool loaded;
	void *libs[2] = { NULL, NULL };
	net_nl_api api;

	if (loaded)
		return 0;
	/* RTLD_GLOBAL for libnl-3: libnl-route-3 needs its symbols. The
	 * handles stay open for the life of the process. */
	for (int i = NL; i <= ROUTE; i++) {
		libs[i] = dlopen(sonames[i], RTLD_NOW | (i == NL ? RTLD_GLOBAL : RTLD_LOCAL));
		if (!libs[i]) {
			util_err_set(err, -ENOENT,
			             "cannot load %s for networks: %s; install the package %s",
			             sonames[i], dlerror(), packages[i]);
			goto fail;
		}
	}
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(functions); i++) {
		void *fn = dlsym(libs[functions[i].lib], functions[i].name);

		if (!fn) {
			util_err_set(err, -ENOENT,
			             "cannot load %s: it has no %s; install %s 3.5 or later",
			             sonames[functions[i].lib], functions[i].name,
			             packages[functions[i].lib]);
			goto fail;
		}
		/* POSIX lets dlsym's result be used as a function pointer */
		memcpy((char *)&api + functions[i].offset, &fn, sizeof(fn));
	}
	net_nl = api;
	loaded = true;
	return 0;
fail:
	for (int i = ROUTE; i >= NL; i--)
		if (libs[i])
			dlclose(libs[i]);
	return -ENOENT;
}
