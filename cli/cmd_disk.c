/* Commands on the disks of a vm: disk-attach, disk-detach, disk-resize,
 * cdrom-insert, cdrom-eject and the disk-snapshot-* family. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_SIZE = 0x300,
	OPT_IMAGE,
	OPT_BUS,
	OPT_READONLY,
	OPT_FORMAT,
	OPT_TIMEOUT,
	OPT_SHRINK,
};

static const struct option disk_opts[] = {
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "bus", required_argument, NULL, OPT_BUS },
	{ "readonly", no_argument, NULL, OPT_READONLY },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "shrink", no_argument, NULL, OPT_SHRINK },
	{ NULL, 0, NULL, 0 },
};

typedef struct disk_args {
	lc_disk_opts opts;
	const char *size, *image, *bus, *format;
	bool readonly;
	char **ops;
	int nops;
	char **roots;
} disk_args;

static void disk_args_clear(disk_args *a)
{
	util_strv_free(a->roots);
}

/* Parse the options in `allowed` (names) and min..max operands. */
static int parse_disk(cli_ctx *ctx, int argc, char **argv, const char *const *allowed, int min,
                      int max, disk_args *a, util_err *err)
{
	cli_parser p;
	const char *arg;
	int c = 0, r = 0;

	memset(a, 0, sizeof(*a));
	cli_parser_init(&p, ctx, argc, argv, disk_opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0) {
		uint64_t n;

		r = cli_option_allowed(ctx, disk_opts, c, allowed, err);
		if (r < 0)
			break;
		switch (c) {
		case OPT_SIZE:
			a->size = arg;
			break;
		case OPT_IMAGE:
			a->image = arg;
			break;
		case OPT_BUS:
			a->bus = arg;
			break;
		case OPT_READONLY:
			a->readonly = true;
			break;
		case OPT_FORMAT:
			a->format = arg;
			break;
		case OPT_TIMEOUT:
			if (util_parse_uint(arg, 1, 3600, &n, err) < 0)
				r = cli_usage(err, "invalid --timeout: %s", err->msg);
			a->opts.timeout_s = (int)n;
			break;
		case OPT_SHRINK:
			a->opts.shrink = true;
			break;
		}
	}
	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, min, max, &a->ops, &a->nops, err);
	cli_parser_done(&p);
	if (r == 0)
		r = cli_lock_timeout(&a->opts.run.lock_timeout_ms, err);
	a->roots = cli_disk_roots(ctx);
	a->opts.disk_roots = (const char *const *)a->roots;
	return r;
}

static int parse_disk_id(const char *s, unsigned *ret, util_err *err)
{
	uint64_t n;

	if (util_parse_uint(s, 0, LC_DISKS_MAX * 64, &n, err) < 0)
		return cli_usage(err, "invalid DISK_ID '%s': give the number 'qvm show' lists", s);
	*ret = (unsigned)n;
	return 0;
}

/* Print a one-line result, or hand the JSON back. */
static int done(cli_ctx *ctx, json_t *res, json_t **ret_json, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int done(cli_ctx *ctx, json_t *res, json_t **ret_json, const char *fmt, ...)
{
	va_list ap;

	if (ctx->json) {
		*ret_json = res;
		return 0;
	}
	if (ctx->verbosity >= 0) {
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	}
	json_decref(res);
	return 0;
}

static const char *how(json_t *res)
{
	return json_is_true(json_object_get(res, "live")) ? "live"
	                                                  : "in the definition; used at next start";
}

int cli_cmd_disk_attach(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const char *const allowed[] = { "size", "image", "bus", "readonly", "format", NULL };
	disk_args a;
	lc_disk d = { 0 };
	json_t *res = NULL;
	int r = parse_disk(ctx, argc, argv, allowed, 1, 1, &a, err);

	if (r == 0 && !!a.size == !!a.image)
		r = cli_usage(
		        err,
		        "give --size SIZE (a blank disk) or --image PATH|NAME (an overlay on an image)");
	/* the values parse: the parser checked them (cli/args.c) */
	if (r == 0 && a.size)
		r = util_parse_size(a.size, &d.size, err);
	if (r == 0 && a.bus)
		r = lc_bus_parse(a.bus, &d.bus, err);
	if (r == 0) {
		d.source = util_xstrdup(a.size ? a.size : a.image);
		d.readonly = a.readonly;
		/* --format: a blank disk's own format, or the image's */
		if (a.size)
			d.format = a.format ? util_xstrdup(a.format) : NULL;
		else
			d.backing_format = a.format ? util_xstrdup(a.format) : NULL;
		r = lc_vm_disk_attach(ctx->root, a.ops[0], &d, &a.opts, &res, err);
	}
	lc_disk_clear(&d);
	if (r == 0)
		r = done(ctx, res, ret_json, "%s: disk %d attached (%s): %s", a.ops[0],
		         (int)json_integer_value(json_object_get(res, "disk")), how(res),
		         json_string_value(json_object_get(res, "path")));
	disk_args_clear(&a);
	return r;
}

int cli_cmd_disk_detach(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const char *const allowed[] = { "timeout", NULL };
	disk_args a;
	unsigned id = 0;
	json_t *res = NULL;
	int r = parse_disk(ctx, argc, argv, allowed, 2, 2, &a, err);

	if (r == 0)
		r = parse_disk_id(a.ops[1], &id, err);
	if (r == 0)
		r = lc_vm_disk_detach(ctx->root, a.ops[0], id, &a.opts, &res, err);
	if (r == 0) {
		const char *removed = json_string_value(json_object_get(res, "removed"));

		r = done(ctx, res, ret_json, "%s: disk %u detached (%s)%s%s", a.ops[0], id,
		         how(res), removed ? "; its file was removed: " : "",
		         removed ? removed : "");
	}
	disk_args_clear(&a);
	return r;
}

int cli_cmd_disk_resize(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const char *const allowed[] = { "shrink", NULL };
	disk_args a;
	unsigned id = 0;
	uint64_t size = 0;
	json_t *res = NULL;
	char b[16];
	int r = parse_disk(ctx, argc, argv, allowed, 3, 3, &a, err);

	if (r == 0)
		r = parse_disk_id(a.ops[1], &id, err);
	if (r == 0 && util_parse_size(a.ops[2], &size, err) < 0)
		r = cli_usage(err, "invalid SIZE '%s': %s", a.ops[2], err->msg);
	if (r == 0)
		r = lc_vm_disk_resize(ctx->root, a.ops[0], id, size, &a.opts, &res, err);
	if (r == 0)
		r = done(ctx, res, ret_json, "%s: disk %u resized to %s (%s)", a.ops[0], id,
		         util_format_size(size, b, sizeof(b)), how(res));
	disk_args_clear(&a);
	return r;
}

static int cdrom_cmd(cli_ctx *ctx, bool insert, int argc, char **argv, json_t **ret_json,
                     util_err *err)
{
	disk_args a;
	json_t *res = NULL;
	int r = parse_disk(ctx, argc, argv, NULL, insert ? 2 : 1, insert ? 2 : 1, &a, err);

	if (r == 0)
		r = lc_vm_cdrom(ctx->root, a.ops[0], insert ? a.ops[1] : NULL, &a.opts, &res, err);
	if (r == 0)
		r = done(ctx, res, ret_json, "%s: cd-rom %s (%s)", a.ops[0],
		         insert ? "inserted" : "ejected", how(res));
	disk_args_clear(&a);
	return r;
}

int cli_cmd_cdrom_insert(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return cdrom_cmd(ctx, true, argc, argv, ret_json, err);
}

int cli_cmd_cdrom_eject(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return cdrom_cmd(ctx, false, argc, argv, ret_json, err);
}

static int snapshot_cmd(cli_ctx *ctx, lc_dsnap_op op, int argc, char **argv, json_t **ret_json,
                        util_err *err)
{
	static const char *const verbs[] = { "created", "", "reverted to", "deleted" };
	int n = op == LC_DSNAP_LIST ? 2 : 3;
	disk_args a;
	unsigned id = 0;
	json_t *res = NULL, *s;
	size_t i;
	int r = parse_disk(ctx, argc, argv, NULL, n, n, &a, err);

	if (r == 0)
		r = parse_disk_id(a.ops[1], &id, err);
	if (r == 0)
		r = lc_vm_disk_snapshot(ctx->root, a.ops[0], id, op, n == 3 ? a.ops[2] : NULL,
		                        &a.opts, &res, err);
	if (r < 0 || ctx->json || op != LC_DSNAP_LIST) {
		if (r == 0)
			r = done(ctx, res, ret_json, "%s: disk %u: snapshot '%s' %s (%s)", a.ops[0],
			         id, a.ops[2], verbs[op],
			         json_is_true(json_object_get(res, "live")) ? "live" : "vm off");
		disk_args_clear(&a);
		return r;
	}
	printf("%-4s %-24s %-19s %s\n", "ID", "TAG", "DATE", "VM-STATE");
	json_array_foreach (res, i, s) {
		char t[32], b[16];

		printf("%-4s %-24s %-19s %s\n", json_string_value(json_object_get(s, "id")),
		       json_string_value(json_object_get(s, "name")),
		       cli_format_time(json_integer_value(json_object_get(s, "date_ms")), t,
		                       sizeof(t)),
		       util_format_size(
		               (uint64_t)json_integer_value(json_object_get(s, "vm_state_size")), b,
		               sizeof(b)));
	}
	json_decref(res);
	disk_args_clear(&a);
	return 0;
}

int cli_cmd_disk_snapshot_create(cli_ctx *ctx, int argc, char **argv, json_t **ret_json,
                                 util_err *err)
{
	return snapshot_cmd(ctx, LC_DSNAP_CREATE, argc, argv, ret_json, err);
}

int cli_cmd_disk_snapshot_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json,
                               util_err *err)
{
	return snapshot_cmd(ctx, LC_DSNAP_LIST, argc, argv, ret_json, err);
}

int cli_cmd_disk_snapshot_revert(cli_ctx *ctx, int argc, char **argv, json_t **ret_json,
                                 util_err *err)
{
	return snapshot_cmd(ctx, LC_DSNAP_REVERT, argc, argv, ret_json, err);
}

int cli_cmd_disk_snapshot_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json,
                                 util_err *err)
{
	return snapshot_cmd(ctx, LC_DSNAP_DELETE, argc, argv, ret_json, err);
}
