/* storage: downloading an image with libcurl into a partial file of the
 * image store. http and https only (also after redirects), TLS verified,
 * a size cap enforced as the bytes arrive, a stall timeout, and a resume
 * with a Range request when a transfer breaks off — made conditional with
 * If-Range on the first response's validator (kept next to the partial
 * file), so that a file changed on the server starts over instead of
 * being spliced; the file is hashed from its start, so a resumed download
 * is checked whole. */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "curl_dl.h"

#include "storage/internal.h"

#define DEFAULT_STALL_S 30
#define MAX_ATTEMPTS    5
#define HASH_CHUNK      (1u << 20)
#define VALIDATOR_MAX   256

typedef struct dl {
	const stor_import_opts *o;
	CURL *curl;
	int fd;
	util_sha256 sha;
	uint64_t offset; /* bytes in the file, all hashed */
	uint64_t start;  /* where this attempt's body starts */
	uint64_t max;
	bool first;     /* no body byte of this attempt yet */
	bool capped;    /* the size cap was hit */
	bool range_bad; /* a 206 for another range than asked */
	bool restarted; /* the server ignored the Range: from zero */
	int werr;       /* errno of a failed write */
	bool have_cr;   /* Content-Range of the current response */
	uint64_t cr_start;
	char etag[VALIDATOR_MAX];      /* ETag of the current response, or "" */
	char lastmod[VALIDATOR_MAX];   /* Last-Modified of the current response, or "" */
	char validator[VALIDATOR_MAX]; /* what the file so far was sent under: the
	                                * If-Range of a resume; "" when unknown */
	const char *partial;           /* the partial file's path */
} dl;

/* The partial file's validator lives in "<partial>.validator" (see
 * STOR_VALIDATOR_SUFFIX): one line, a strong ETag or a Last-Modified date.
 * Without it a resume cannot tell whether the server's file is still the
 * one it began, so it starts over. */
static void save_validator(dl *d)
{
	_cleanup_free_ char *path = util_xasprintf("%s" STOR_VALIDATOR_SUFFIX, d->partial);

	/* a strong ETag is exact; a weak one (W/"...") cannot be used with
	 * If-Range, a date can */
	if (d->etag[0] && strncmp(d->etag, "W/", 2))
		snprintf(d->validator, sizeof(d->validator), "%s", d->etag);
	else
		snprintf(d->validator, sizeof(d->validator), "%s", d->lastmod);
	if (!d->validator[0] ||
	    util_write_file_atomic(path, d->validator, strlen(d->validator), NULL) < 0) {
		/* none to keep (or it cannot be kept): a resume starts over */
		d->validator[0] = '\0';
		unlink(path);
	}
}

static void load_validator(dl *d)
{
	_cleanup_free_ char *path = util_xasprintf("%s" STOR_VALIDATOR_SUFFIX, d->partial);
	_cleanup_free_ char *data = NULL;
	size_t len = 0;

	d->validator[0] = '\0';
	if (util_read_file(path, VALIDATOR_MAX - 1, &data, &len, NULL) < 0)
		return;
	if (len == 0 || util_validate_printable(data, "validator", NULL) < 0)
		return;
	snprintf(d->validator, sizeof(d->validator), "%s", data);
}

static void drop_validator(const char *partial)
{
	_cleanup_free_ char *path = util_xasprintf("%s" STOR_VALIDATOR_SUFFIX, partial);

	unlink(path);
}

/* A header's value, trimmed, into buf ("" when it does not fit or holds
 * a control character: it goes back to the server in If-Range). */
static void header_value(const char *v, size_t len, char *buf, size_t size)
{
	while (len && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len && strchr(" \t\r\n", v[len - 1]))
		len--;
	buf[0] = '\0';
	if (len >= size)
		return;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return;
	memcpy(buf, v, len);
	buf[len] = '\0';
}

/* A 206 sent under another validator than the part we have: a server (or
 * proxy) that ignored If-Range would splice a changed file onto the old
 * start. Only what the answer says can be compared. */
static bool validator_changed(const dl *d)
{
	const char *now = d->validator[0] == '"' ? d->etag : d->lastmod;

	return d->validator[0] && now[0] && strcmp(now, d->validator) != 0;
}

/* Start the file (and its hash) over from zero. */
static int restart(dl *d)
{
	if (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0)
		return -errno;
	util_sha256_init(&d->sha);
	d->offset = d->start = 0;
	return 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
	dl *d = ud;
	size_t len = size * n;
	unsigned long long a;

	if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
		/* a new response (after a redirect) */
		d->have_cr = false;
		d->etag[0] = d->lastmod[0] = '\0';
	} else if (len > 5 && !strncasecmp(buf, "etag:", 5)) {
		header_value(buf + 5, len - 5, d->etag, sizeof(d->etag));
	} else if (len > 14 && !strncasecmp(buf, "last-modified:", 14)) {
		header_value(buf + 14, len - 14, d->lastmod, sizeof(d->lastmod));
	} else if (len > 14 && !strncasecmp(buf, "content-range:", 14)) {
		_cleanup_free_ char *v = strndup(buf + 14, len - 14);

		if (v && sscanf(v, " bytes %llu-", &a) == 1) {
			d->have_cr = true;
			d->cr_start = a;
		}
	}
	return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
	dl *d = ud;
	size_t len = size * n;
	int r;

	if (d->first) {
		long code = 0;
		curl_off_t cl = -1;

		d->first = false;
		curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code);
		if (code == 206 &&
		    (!d->have_cr || d->cr_start != d->offset || validator_changed(d))) {
			d->range_bad = true;
			return 0;
		}
		if (code != 206 && d->offset > 0) {
			/* the server sends the whole file (If-Range did not
			 * match: it changed, or it ignores Range): start over */
			r = restart(d);
			if (r < 0) {
				d->werr = -r;
				return 0;
			}
			d->restarted = true;
		}
		if (code != 206)
			save_validator(d); /* the file from here on is this one */
		curl_easy_getinfo(d->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		if (cl > 0 && d->offset + (uint64_t)cl > d->max) {
			d->capped = true;
			return 0;
		}
	}
	if (d->offset + len > d->max) {
		d->capped = true;
		return 0;
	}
	r = util_write_all(d->fd, buf, len);
	if (r < 0) {
		d->werr = -r;
		return 0;
	}
	util_sha256_update(&d->sha, buf, len);
	stor_writeback(d->fd, d->offset, d->offset + len);
	d->offset += len;
	return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	dl *d = ud;

	(void)ultotal;
	(void)ulnow;
	if (d->o->progress && !d->first)
		d->o->progress(d->o->progress_ud, d->start + (uint64_t)dlnow,
		               dltotal > 0 ? d->start + (uint64_t)dltotal : 0);
	return 0;
}

/* The host part of url, for messages (new string). */
static char *host_of(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *out;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		out = stor_safe(host);
	else
		out = util_xstrdup("?");
	curl_free(host);
	curl_url_cleanup(u);
	return out;
}

static int set_protocols(CURL *c)
{
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string forms */
	if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK)
		return -ENOTSUP;
#else
	if (curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
	            CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS,
	                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK)
		return -ENOTSUP;
#endif
	return 0;
}

/* Hash what an earlier attempt left in the file: a resumed download is
 * checked from its first byte. */
static int hash_existing(dl *d, util_err *err, const char *safe_path)
{
	_cleanup_free_ uint8_t *buf = util_xmalloc(HASH_CHUNK);
	uint64_t done = 0;

	if (lseek(d->fd, 0, SEEK_SET) < 0)
		return util_err_errno(err, -errno, "cannot read '%s'", safe_path);
	util_sha256_init(&d->sha);
	while (done < d->offset) {
		ssize_t n = read(d->fd, buf, HASH_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return util_err_errno(err, n < 0 ? -errno : -EIO, "cannot read '%s'",
			                      safe_path);
		util_sha256_update(&d->sha, buf, (size_t)n);
		done += (uint64_t)n;
	}
	return 0;
}

static bool interrupted(CURLcode res)
{
	return res == CURLE_PARTIAL_FILE || res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR ||
	       res == CURLE_GOT_NOTHING || res == CURLE_HTTP2 || res == CURLE_HTTP2_STREAM ||
	       res == CURLE_OPERATION_TIMEDOUT;
}

static bool tls_error(CURLcode res)
{
	return res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE ||
	       res == CURLE_SSL_CONNECT_ERROR || res == CURLE_SSL_CERTPROBLEM ||
	       res == CURLE_SSL_ISSUER_ERROR || res == CURLE_SSL_INVALIDCERTSTATUS;
}

/* One transfer from d->offset on. Returns the curl result; *ret_code is
 * the last HTTP status. */
static CURLcode transfer(dl *d, const char *url, char *errbuf, long *ret_code)
{
	const stor_import_opts *o = d->o;
	int stall = o->stall_timeout_s > 0 ? o->stall_timeout_s : DEFAULT_STALL_S;
	char range[32];
	CURLcode res;
	CURL *c = d->curl;
	struct curl_slist *headers = NULL;

	curl_easy_reset(c);
	errbuf[0] = '\0';
	if (set_protocols(c) < 0)
		return CURLE_UNSUPPORTED_PROTOCOL;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "qvm/" QVM_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)stall);
	/* a stall: less than 1 byte/s for `stall` seconds */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)stall);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	if (d->offset > 0) {
		/* only the rest of the same file: a changed one comes whole */
		_cleanup_free_ char *if_range = util_xasprintf("If-Range: %s", d->validator);

		snprintf(range, sizeof(range), "%" PRIu64 "-", d->offset);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
		headers = curl_slist_append(NULL, if_range);
		if (!headers)
			return CURLE_OUT_OF_MEMORY;
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	}
	d->start = d->offset;
	d->first = true;
	d->range_bad = d->capped = d->restarted = false;
	d->have_cr = false;
	d->werr = 0;
	res = curl_easy_perform(c);
	*ret_code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_code);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	return res;
}

/* One attempt's outcome, for the functions that turn a failed one into a
 * message (or into another attempt). */
typedef struct attempt {
	dl *d;
	CURLcode res;
	long code;
	uint64_t before; /* d->offset when the attempt began */
	int attempt;     /* 1 for the first */
	const char *safe_url, *safe_path, *host;
	const char *eff;      /* the URL it ended at, or NULL */
	const char *safe_why; /* libcurl's reason, made safe */
	const char *kept;     /* "; the N bytes downloaded are kept..." or "" */
	bool keep;            /* out: the partial file stays for a resume */
} attempt;

#define ATTEMPT_AGAIN 1

/* Open (creating) and lock the partial file into d->fd. On failure d->fd
 * stays -1 and nothing is removed: the file may be another download's. */
static int open_partial(dl *d, const char *safe_url, const char *safe_path, util_err *err)
{
	int fd = open(d->partial, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return util_err_errno(err, -errno, "cannot create '%s'", safe_path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return util_err_set(
		        err, -EBUSY,
		        "another qvm is downloading '%s' as image '%s'; wait for it to finish",
		        safe_url, d->o->name);
	}
	d->fd = fd;
	return 0;
}

/* Where the locked partial file lets this download begin: at its end,
 * its bytes hashed, when a validator vouches for them; else from zero. */
static int resume_point(dl *d, const char *safe_path, util_err *err)
{
	struct stat st;
	int r;

	if (fstat(d->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return util_err_set(err, -EINVAL, "'%s' is not a regular file", safe_path);
	d->offset = (uint64_t)st.st_size;
	if (d->offset > d->max)
		d->offset = 0;
	if (d->offset > 0)
		load_validator(d);
	/* what was sent under no known validator cannot be resumed safely */
	if (!d->validator[0])
		d->offset = 0;
	if (d->offset > 0)
		return hash_existing(d, err, safe_path);
	r = restart(d);
	if (r < 0)
		return util_err_errno(err, r, "cannot truncate '%s'", safe_path);
	return 0;
}

/* An HTTP-level failure: an answer that is no file, or a target refused.
 * 0 when a->res is none of these. */
static int http_failure(attempt *a, util_err *err)
{
	if (a->res == CURLE_OK) {
		a->keep = a->d->offset > 0;
		return util_err_set(
		        err, -EPROTO,
		        "cannot download '%s': the server at '%s' answered HTTP %ld, not 200%s",
		        a->safe_url, a->host, a->code, a->kept);
	}
	if (a->res == CURLE_HTTP_RETURNED_ERROR) {
		a->keep = a->d->offset > 0;
		return util_err_set(
		        err, -EIO,
		        "cannot download '%s': the server at '%s' answered HTTP %ld; check the URL%s",
		        a->safe_url, a->host, a->code, a->kept);
	}
	if (a->res == CURLE_UNSUPPORTED_PROTOCOL) {
		_cleanup_free_ char *safe_eff = stor_safe(a->eff ? a->eff : "?");

		return util_err_set(
		        err, -EPROTONOSUPPORT,
		        "cannot download '%s': it leads to '%s', which is not http or https (%s); refused",
		        a->safe_url, safe_eff, a->safe_why);
	}
	if (a->res == CURLE_TOO_MANY_REDIRECTS)
		return util_err_set(err, -ELOOP,
		                    "cannot download '%s': too many redirects (at '%s')",
		                    a->safe_url, a->host);
	return 0;
}

/* A transfer cut short: resumed at once (ATTEMPT_AGAIN) while it gets
 * somewhere, else the reason it stopped. */
static int interrupted_failure(attempt *a, util_err *err)
{
	const stor_import_opts *o = a->d->o;

	if (a->res != CURLE_OPERATION_TIMEDOUT && a->d->offset > a->before &&
	    a->attempt < MAX_ATTEMPTS)
		return ATTEMPT_AGAIN;
	if (a->res == CURLE_OPERATION_TIMEDOUT)
		return util_err_set(
		        err, -ETIMEDOUT,
		        "cannot download '%s': the transfer from '%s' stalled (no data for %d s) after %" PRIu64
		        " bytes%s",
		        a->safe_url, a->host,
		        o->stall_timeout_s > 0 ? o->stall_timeout_s : DEFAULT_STALL_S, a->d->offset,
		        a->keep ? "; run the same import again to resume it" : "");
	return util_err_set(err, -EIO,
	                    "cannot download '%s': the connection to '%s' broke off after %" PRIu64
	                    " bytes (%s)%s",
	                    a->safe_url, a->host, a->d->offset, a->safe_why,
	                    a->keep ? "; run the same import again to resume it" : "");
}

/* A failure on the way to the server or of the connection: the bytes
 * that came stay for a resume. */
static int network_failure(attempt *a, util_err *err)
{
	a->keep = a->d->offset > 0;
	if (tls_error(a->res))
		return util_err_set(
		        err, -EACCES,
		        "cannot download '%s': TLS verification of '%s' failed: %s; give the server's CA certificate with --ca FILE%s",
		        a->safe_url, a->host, a->safe_why, a->kept);
	if (a->res == CURLE_COULDNT_CONNECT || a->res == CURLE_COULDNT_RESOLVE_HOST ||
	    (a->res == CURLE_OPERATION_TIMEDOUT && a->d->first && a->code == 0))
		return util_err_set(
		        err, -EHOSTUNREACH,
		        "cannot download '%s': cannot connect to '%s': %s; check the URL and that the server is up%s",
		        a->safe_url, a->host, a->safe_why, a->kept);
	if (interrupted(a->res))
		return interrupted_failure(a, err);
	return util_err_set(err, -EIO, "cannot download '%s' from '%s': %s%s", a->safe_url, a->host,
	                    a->safe_why, a->kept);
}

/* What a failed attempt means: ATTEMPT_AGAIN, or a negative errno with
 * err set and a->keep telling whether the partial file stays. */
static int attempt_failed(attempt *a, util_err *err)
{
	dl *d = a->d;
	int r;

	if (d->capped)
		return util_err_set(
		        err, -EFBIG,
		        "cannot download '%s': it is larger than the size cap of %" PRIu64
		        " bytes; raise --max-size if the image is really that large",
		        a->safe_url, d->max);
	if (d->werr) {
		a->keep = d->offset > 0;
		return util_err_errno(err, -d->werr, "cannot download '%s': cannot write '%s'%s",
		                      a->safe_url, a->safe_path, a->kept);
	}
	if ((d->range_bad ||
	     (a->res == CURLE_HTTP_RETURNED_ERROR && a->code == 416 && a->before > 0)) &&
	    a->attempt < MAX_ATTEMPTS) {
		/* the server's idea of the file changed: from zero */
		r = restart(d);
		if (r < 0)
			return util_err_errno(err, r, "cannot truncate '%s'", a->safe_path);
		return ATTEMPT_AGAIN;
	}
	r = http_failure(a, err);
	if (r < 0)
		return r;
	return network_failure(a, err);
}

/* One transfer: 0 when the file is complete, ATTEMPT_AGAIN, or a negative
 * errno with err set and *ret_keep telling whether the partial stays.
 * *host follows redirects. */
static int one_attempt(dl *d, const char *url, int n, const char *safe_url, const char *safe_path,
                       char **host, bool *ret_keep, util_err *err)
{
	char errbuf[CURL_ERROR_SIZE];
	attempt a = { .d = d, .attempt = n, .safe_url = safe_url, .safe_path = safe_path };
	_cleanup_free_ char *safe_why = NULL, *kept = NULL;
	char *eff = NULL;
	int r;

	if (d->offset > 0 && !d->validator[0] && (r = restart(d)) < 0)
		return util_err_errno(err, r, "cannot truncate '%s'", safe_path);
	a.before = d->offset;
	a.res = transfer(d, url, errbuf, &a.code);
	safe_why = stor_safe(errbuf[0] ? errbuf : curl_easy_strerror(a.res));
	curl_easy_getinfo(d->curl, CURLINFO_EFFECTIVE_URL, &eff);
	if (eff && strcmp(eff, url)) {
		free(*host);
		*host = host_of(eff);
	}
	if (a.res == CURLE_OK && (a.code == 200 || a.code == 206)) {
		if (a.code == 200 && d->first && d->offset > 0) {
			/* a whole, empty file in answer to a Range */
			r = restart(d);
			if (r < 0)
				return util_err_errno(err, r, "cannot truncate '%s'", safe_path);
		}
		return 0;
	}
	/* a failure keeps what came (until the image or its partial is
	 * deleted) for the same import to resume; only the size cap and
	 * a refused target make the bytes worthless */
	kept = d->offset > 0
	               ? util_xasprintf(
	                         "; the %" PRIu64
	                         " bytes downloaded are kept: run the same import again to resume it, or qvm image delete %s to discard them",
	                         d->offset, d->o->name)
	               : util_xstrdup("");
	a.host = *host;
	a.eff = eff;
	a.safe_why = safe_why;
	a.kept = kept;
	r = attempt_failed(&a, err);
	if (r < 0)
		*ret_keep = a.keep;
	return r;
}

/* Attempts until the file is complete or an attempt fails for good. */
static int fetch_all(dl *d, const char *url, const char *safe_url, const char *safe_path,
                     bool *ret_keep, util_err *err)
{
	_cleanup_free_ char *host = host_of(url);
	int r;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return util_err_set(err, -ENOMEM, "cannot initialise libcurl");
	d->curl = curl_easy_init();
	if (!d->curl) {
		r = util_err_set(err, -ENOMEM, "cannot initialise libcurl");
		goto out;
	}
	for (int n = 1;; n++) {
		r = one_attempt(d, url, n, safe_url, safe_path, &host, ret_keep, err);
		if (r != ATTEMPT_AGAIN)
			break;
	}
	if (r == 0 && fsync(d->fd) < 0)
		r = util_err_errno(err, -errno, "cannot sync '%s'", safe_path);
out:
	curl_easy_cleanup(d->curl);
	curl_global_cleanup();
	return r;
}

int stor_download(const char *url, const char *partial, const stor_import_opts *o, int *ret_fd,
                  char ret_hex[65], uint64_t *ret_size, util_err *err)
{
	_cleanup_free_ char *safe_url = stor_safe(url), *safe_path = stor_safe(partial);
	dl d = { .o = o, .fd = -1, .max = o->max_size, .partial = partial };
	bool keep = false;
	int r = stor_curl_load(err);

	if (r < 0)
		return r;
	r = open_partial(&d, safe_url, safe_path, err);
	if (r < 0)
		return r;
	r = resume_point(&d, safe_path, err);
	if (r >= 0)
		r = fetch_all(&d, url, safe_url, safe_path, &keep, err);
	if (r >= 0) {
		util_sha256_final(&d.sha, ret_hex);
		*ret_size = d.offset;
		*ret_fd = TAKE_FD(d.fd);
		r = 0;
		keep = true;
		/* complete: nothing is left to resume */
		drop_validator(partial);
	}
	if (!keep) {
		unlink(partial);
		drop_validator(partial);
	}
	if (d.fd >= 0)
		close(d.fd);
	return r;
}
