/* The image store's commands: image import|list|show|delete, and
 * disk-saveas (a stopped VM's disk flattened into a new store image). */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_NAME = 0x300,
	OPT_SHA256,
	OPT_FORMAT,
	OPT_CA,
	OPT_MAX_SIZE,
	OPT_STALL,
};

/* ---- the progress bar ------------------------------------------------------- */

typedef struct bar {
	int64_t t0, last;
	uint64_t first; /* bytes already there when this run began (a resume) */
	uint64_t last_done;
	bool started, shown;
} bar;

static const char *eta_text(double s, char *buf, size_t len)
{
	if (s < 0 || s > 99 * 3600)
		return "--:--";
	if (s >= 3600)
		snprintf(buf, len, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
	else
		snprintf(buf, len, "%02d:%02d", (int)s / 60, (int)s % 60);
	return buf;
}

/* "12.3M": one decimal, binary units. */
static const char *human(double v, char *buf, size_t len)
{
	static const char units[] = "BKMGTP";
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0fB", v);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
	return buf;
}

/* Percent, bar, bytes, rate and ETA on one line of stderr, redrawn at most
 * five times a second. Only called when stderr is a terminal. */
static void on_progress(void *ud, uint64_t done, uint64_t total)
{
	bar *b = ud;
	int64_t now = util_now_ms();
	char d[16], t[16], rate_s[16], eta[16];
	double secs, rate;
	int pct = -1, fill = 0;
	char hashes[31];

	if (!b->started) {
		b->started = true;
		b->t0 = now;
		b->first = done;
	}
	if (b->shown && ((now - b->last < 200 && done != total) || done == b->last_done))
		return;
	b->last = now;
	b->last_done = done;
	b->shown = true;
	secs = (double)(now - b->t0) / 1000.0;
	rate = secs > 0.05 ? (double)(done - b->first) / secs : 0;
	if (total) {
		pct = (int)(done * 100 / total);
		fill = (int)(done * 30 / total);
	}
	memset(hashes, ' ', 30);
	memset(hashes, '#', (size_t)(fill > 30 ? 30 : fill));
	hashes[30] = '\0';
	human((double)done, d, sizeof(d));
	if (rate > 0)
		human(rate, rate_s, sizeof(rate_s));
	else
		snprintf(rate_s, sizeof(rate_s), "-");
	if (pct >= 0)
		fprintf(stderr, "\r%3d%% [%s] %s/%s %s/s ETA %s ", pct, hashes, d,
		        human((double)total, t, sizeof(t)), rate_s,
		        eta_text(rate > 0 ? (double)(total - done) / rate : -1, eta, sizeof(eta)));
	else
		fprintf(stderr, "\r%s %s/s ", d, rate_s);
	fflush(stderr);
}

/* ---- image import ------------------------------------------------------------ */

static const char *jstr(json_t *img, const char *key)
{
	const char *v = json_string_value(json_object_get(img, key));

	return v ? v : "";
}

static uint64_t jsize(json_t *img, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(img, key));
}

/* As show and host print theirs (cli_print_field), with the column names of
 * image list. */
static void print_image(json_t *img)
{
	char vs[16], as[16], when[32];

	cli_print_field("NAME", "%s", jstr(img, "name"));
	cli_print_field("FILE", "%s", jstr(img, "path"));
	cli_print_field("FORMAT", "%s", jstr(img, "format"));
	cli_print_field("VSIZE", "%s (%" PRIu64 " bytes)",
	                util_format_size(jsize(img, "virtual_size"), vs, sizeof(vs)),
	                jsize(img, "virtual_size"));
	cli_print_field("SIZE", "%s (%" PRIu64 " bytes)",
	                util_format_size(jsize(img, "actual_size"), as, sizeof(as)),
	                jsize(img, "actual_size"));
	cli_print_field("SHA256", "%s", jstr(img, "sha256"));
	cli_print_field("SOURCE", "%s", jstr(img, "source"));
	cli_print_field("CREATED", "%s",
	                cli_format_time(json_integer_value(json_object_get(img, "created_ms")),
	                                when, sizeof(when)));
}

static int image_import(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, OPT_NAME },
		{ "sha256", required_argument, NULL, OPT_SHA256 },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "ca", required_argument, NULL, OPT_CA },
		{ "max-size", required_argument, NULL, OPT_MAX_SIZE },
		{ "stall-timeout", required_argument, NULL, OPT_STALL },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_json_ json_t *img = NULL;
	_cleanup_free_ char *abs_source = NULL, *abs_ca = NULL;
	_cleanup_strv_ char **roots = cli_disk_roots(ctx);
	lc_image_import_opts o = { .disk_roots = (const char *const *)roots };
	bar b = { 0 };
	cli_parser p;
	const char *arg;
	char **ops;
	uint64_t n;
	int nops, r;

	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while ((r = cli_parser_next(&p, &arg, err)) > 0) {
		switch (r) {
		case OPT_NAME:
			o.name = arg;
			break;
		case OPT_SHA256:
			o.sha256 = arg;
			break;
		case OPT_FORMAT:
			o.format = arg;
			break;
		case OPT_CA:
			o.ca_file = arg;
			break;
		case OPT_MAX_SIZE:
			if (util_parse_size(arg, &o.max_size, err) < 0)
				r = cli_usage(err, "--max-size: %s", err->msg);
			break;
		case OPT_STALL:
			if (util_parse_uint(arg, 1, 86400, &n, err) < 0)
				r = cli_usage(err, "--stall-timeout: %s", err->msg);
			o.stall_timeout_s = (int)n;
			break;
		}
		if (r < 0)
			break;
	}
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &nops, err);
	if (r == 0) {
		o.source = ops[0];
		if (!o.name)
			r = cli_usage(err, "image import needs --name NAME");
	}
	if (r == 0 && !strstr(o.source, "://") && o.source[0] != '/') {
		/* a relative path means the caller's folder */
		r = cli_absolute_path(o.source, "image source", &abs_source, err);
		o.source = abs_source;
	}
	if (r == 0 && o.ca_file && o.ca_file[0] != '/') {
		/* libcurl resolves relative to its cwd: make it explicit */
		abs_ca = realpath(o.ca_file, NULL);
		if (!abs_ca)
			r = util_err_errno(err, -errno, "cannot use --ca '%s'", o.ca_file);
		o.ca_file = abs_ca;
	}
	cli_parser_done(&p);
	if (r < 0)
		return r;
	if (ctx->verbosity >= 0 && isatty(STDERR_FILENO)) {
		o.progress = on_progress;
		o.progress_ud = &b;
	}
	r = lc_image_import(ctx->root, &o, &img, err);
	if (b.shown)
		fputc('\n', stderr);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(img);
	} else if (ctx->verbosity >= 0) {
		char vs[16];

		printf("imported image '%s': %s, %s virtual, sha256 %s\n", jstr(img, "name"),
		       jstr(img, "format"),
		       util_format_size(jsize(img, "virtual_size"), vs, sizeof(vs)),
		       jstr(img, "sha256"));
	}
	return 0;
}

/* ---- image list, show, delete ------------------------------------------------- */

static int one_name(cli_ctx *ctx, int argc, char **argv, const char **ret_name, util_err *err)
{
	char **ops;
	int r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, NULL, err);

	if (r == 0)
		*ret_name = ops[0];
	return r;
}

static int image_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *a = NULL;
	json_t *img;
	char **ops;
	size_t i;
	int r;

	r = cli_parse_operands(ctx, argc, argv, 0, 0, &ops, NULL, err);
	if (r == 0)
		r = lc_image_list(ctx->root, &a, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(a);
		return 0;
	}
	printf("%-24s %-6s %8s %8s %-19s %s\n", "NAME", "FORMAT", "VSIZE", "SIZE", "CREATED",
	       "SOURCE");
	json_array_foreach (a, i, img) {
		char vs[16], as[16], when[32];

		printf("%-24s %-6s %8s %8s %-19s %s\n", jstr(img, "name"), jstr(img, "format"),
		       util_format_size(jsize(img, "virtual_size"), vs, sizeof(vs)),
		       util_format_size(jsize(img, "actual_size"), as, sizeof(as)),
		       cli_format_time(json_integer_value(json_object_get(img, "created_ms")), when,
		                       sizeof(when)),
		       jstr(img, "source"));
	}
	return 0;
}

static int image_show(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *img = NULL;
	const char *name = NULL;
	int r = one_name(ctx, argc, argv, &name, err);

	if (r == 0)
		r = lc_image_get(ctx->root, name, &img, err);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = TAKE_PTR(img);
	else
		print_image(img);
	return 0;
}

static int image_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	const char *name = NULL;
	unsigned partials = 0;
	int r = one_name(ctx, argc, argv, &name, err);

	/* the journal's lock, held until the image is gone: no VM can be
	 * created on it between the check and the deletion */
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_image_delete(db, name, &partials, err);
	if (r < 0)
		return r;
	if (partials) {
		if (ctx->json)
			*ret_json = json_pack("{s:s, s:b, s:i}", "name", name, "deleted", 0,
			                      "partial_downloads", (int)partials);
		else if (ctx->verbosity >= 0)
			printf("discarded %u partial download%s of image '%s'\n", partials,
			       partials == 1 ? "" : "s", name);
		return 0;
	}
	if (ctx->json)
		*ret_json = json_pack("{s:s, s:b}", "name", name, "deleted", 1);
	else if (ctx->verbosity >= 0)
		printf("deleted image '%s'\n", name);
	return 0;
}

int cli_cmd_image(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const cli_sub subs[] = {
		{ "import", image_import },
		{ "list", image_list },
		{ "show", image_show },
		{ "delete", image_delete },
	};

	return cli_run_sub(ctx, argc, argv, subs, UTIL_ARRAY_SIZE(subs), ret_json, err);
}

/* ---- disk-saveas ------------------------------------------------------------------ */

int cli_cmd_disk_saveas(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *img = NULL;
	lc_run_opts ro = { .lock_timeout_ms = LC_LOCK_TIMEOUT_MS, .disk_roots = ctx->disk_roots };
	char **ops;
	uint64_t id = 0;
	int r;

	r = cli_parse_operands(ctx, argc, argv, 3, 3, &ops, NULL, err);
	if (r == 0 && util_parse_uint(ops[1], 0, LC_DISKS_MAX * 64, &id, err) < 0)
		r = cli_usage(err, "DISK_ID: %s", err->msg);
	if (r == 0)
		r = lc_vm_disk_saveas(ctx->root, ops[0], (unsigned)id, ops[2], &ro, &img, err);
	if (r == 0) {
		if (ctx->json)
			*ret_json = TAKE_PTR(img);
		else if (ctx->verbosity >= 0)
			printf("saved disk %u of vm '%s' as image '%s' (sha256 %s)\n", (unsigned)id,
			       ops[0], jstr(img, "name"), jstr(img, "sha256"));
	}
	return r;
}
