/* storage: libcurl, loaded with dlopen() when a download starts.
 *
 * Linked, libcurl would bring ~30 libraries (TLS, HTTP/2, IDN, Kerberos,
 * LDAP, SSH...) into every qvm process: each command and every VM's
 * supervisor would pay for their loading and relocation at exec (measured
 * here: an empty program takes 2.6x as long to exec and 2.6x the RSS once
 * linked with -lcurl) for a library only `image import URL` uses. So
 * download.c calls it through this table, filled on first use; the
 * headers still come from pkg-config's libcurl, and the library is the
 * one its -dev package installs (libcurl.so.4). Private to storage/. */
#ifndef QVM_STOR_CURL_DL_H
#define QVM_STOR_CURL_DL_H

#include <curl/curl.h>

#include "util/util.h"

typedef struct stor_curl_api {
	CURLcode (*global_init)(long flags);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *c, CURLoption option, ...);
	CURLcode (*easy_perform)(CURL *c);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
	void (*easy_reset)(CURL *c);
	void (*easy_cleanup)(CURL *c);
	const char *(*easy_strerror)(CURLcode code);
	void (*free)(void *p);
	CURLU *(*url)(void);
	void (*url_cleanup)(CURLU *u);
	CURLUcode (*url_get)(const CURLU *u, CURLUPart what, char **part, unsigned int flags);
	CURLUcode (*url_set)(CURLU *u, CURLUPart what, const char *part, unsigned int flags);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
	void (*slist_free_all)(struct curl_slist *list);
} stor_curl_api;

/* The table, valid after stor_curl_load() succeeded. */
extern stor_curl_api stor_curl;

/* Load libcurl (once per process; later calls are free). A missing
 * library or symbol is an error saying which package to install. */
int stor_curl_load(util_err *err);

/* download.c keeps libcurl's names; they go through the table. The
 * type-checking macros of curl/typecheck-gcc.h are replaced too. */
#ifndef STOR_CURL_DL_IMPL
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init    (*stor_curl.global_init)
#define curl_global_cleanup (*stor_curl.global_cleanup)
#define curl_easy_init      (*stor_curl.easy_init)
#define curl_easy_setopt    (*stor_curl.easy_setopt)
#define curl_easy_perform   (*stor_curl.easy_perform)
#define curl_easy_getinfo   (*stor_curl.easy_getinfo)
#define curl_easy_reset     (*stor_curl.easy_reset)
#define curl_easy_cleanup   (*stor_curl.easy_cleanup)
#define curl_easy_strerror  (*stor_curl.easy_strerror)
#define curl_free           (*stor_curl.free)
#define curl_url            (*stor_curl.url)
#define curl_url_cleanup    (*stor_curl.url_cleanup)
#define curl_url_get        (*stor_curl.url_get)
#define curl_url_set        (*stor_curl.url_set)
#define curl_slist_append   (*stor_curl.slist_append)
#define curl_slist_free_all (*stor_curl.slist_free_all)
#endif

#endif
