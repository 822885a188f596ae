/* storage: loading libcurl on first use (see curl_dl.h for why). */
#define STOR_CURL_DL_IMPL
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "curl_dl.h"

#define CURL_SONAME "libcurl.so.4"

stor_curl_api stor_curl;

static const struct {
	const char *name;
	size_t offset;
} symbols[] = {
#define SYM(field, name)                                                                           \
	{                                                                                          \
		name, offsetof(stor_curl_api, field)                                               \
	}
	SYM(global_init, "curl_global_init"),
	SYM(global_cleanup, "curl_global_cleanup"),
	SYM(easy_init, "curl_easy_init"),
	SYM(easy_setopt, "curl_easy_setopt"),
	SYM(easy_perform, "curl_easy_perform"),
	SYM(easy_getinfo, "curl_easy_getinfo"),
	SYM(easy_reset, "curl_easy_reset"),
	SYM(easy_cleanup, "curl_easy_cleanup"),
	SYM(easy_strerror, "curl_easy_strerror"),
	SYM(free, "curl_free"),
	SYM(url, "curl_url"),
	SYM(url_cleanup, "curl_url_cleanup"),
	SYM(url_get, "curl_url_get"),
	SYM(url_set, "curl_url_set"),
	SYM(slist_append, "curl_slist_append"),
	SYM(slist_free_all, "curl_slist_free_all"),
#undef SYM
};

int stor_curl_load(util_err *err)
{
	static void *lib;
	stor_curl_api api;
	void *h;

	if (lib)
		return 0;
	/* RTLD_LOCAL: its symbols serve this table only; the handle is kept
	 * for the life of the process (libcurl is not made to be unloaded) */
	h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (!h)
		return util_err_set(
		        err, -ENOENT,
		        "cannot load libcurl (%s) for downloads: %s; install the package libcurl4",
		        CURL_SONAME, dlerror());
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(symbols); i++) {
		void *fn = dlsym(h, symbols[i].name);

		if (!fn) {
			util_err_set(
			        err, -ENOENT,
			        "cannot load libcurl (%s): it has no %s; install libcurl4 7.62 or later",
			        CURL_SONAME, symbols[i].name);
			dlclose(h);
			return -ENOENT;
		}
		/* a data pointer to a function pointer: POSIX guarantees dlsym's
		 * result can be used so */
		memcpy((char *)&api + symbols[i].offset, &fn, sizeof(fn));
	}
	stor_curl = api;
	lib = h;
	return 0;
}
