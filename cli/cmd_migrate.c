/* qvm migrate (to another qvm host, over ssh) and the hidden __receive
 * that the source runs on the destination through that ssh connection. */
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum {
	OPT_LIVE = 0x300,
	OPT_INSECURE,
	OPT_DOWNTIME,
	OPT_BANDWIDTH,
	OPT_REMOTE_ROOT,
	OPT_REMOTE_QVM,
	OPT_FROM,
};

static const struct option migrate_opts[] = {
	{ "live", no_argument, NULL, OPT_LIVE },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "downtime", required_argument, NULL, OPT_DOWNTIME },
	{ "bandwidth", required_argument, NULL, OPT_BANDWIDTH },
	{ "remote-root", required_argument, NULL, OPT_REMOTE_ROOT },
	{ "remote-qvm", required_argument, NULL, OPT_REMOTE_QVM },
	{ NULL, 0, NULL, 0 },
};

typedef struct progress {
	int64_t t0;
	bool shown;
} progress;

/* On a terminal: "sent 120 of 300 MiB (40%), 55 MiB/s, 3 s left". */
static void show_progress(void *ud, uint64_t done, uint64_t total)
{
	progress *p = ud;
	int64_t ms = util_now_ms() - p->t0;
	double rate = ms > 0 ? (double)done / (double)ms * 1000.0 : 0;

	if (!total)
		return;
	fprintf(stderr, "\rsent %llu of %llu MiB (%llu%%), %.0f MiB/s, %.0f s left   ",
	        (unsigned long long)(done >> 20), (unsigned long long)(total >> 20),
	        (unsigned long long)(done * 100 / total), rate / (1 << 20),
	        rate > 0 && total > done ? (double)(total - done) / rate : 0.0);
	p->shown = true;
}

static int parse_migrate(cli_ctx *ctx, int argc, char **argv, lc_migrate_opts *o,
                         const char **ret_name, util_err *err)
{
	cli_parser p;
	const char *arg;
	char **ops;
	int nops, c, r = 0;
	uint64_t n;

	cli_parser_init(&p, ctx, argc, argv, migrate_opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0) {
		switch (c) {
		case OPT_LIVE:
		case OPT_INSECURE:
		case OPT_DOWNTIME:
		case OPT_BANDWIDTH:
			if (c != OPT_INSECURE && c != OPT_LIVE &&
			    util_parse_uint(arg, 1, c == OPT_DOWNTIME ? 60000 : 1 << 20, &n, err) <
			            0)
				r = cli_usage(err, "invalid --%s: %s",
				              cli_option_name(migrate_opts, c), err->msg);
			else
				r = cli_usage(
				        err, "--%s is for a live migration, which is not built yet",
				        cli_option_name(migrate_opts, c));
			break;
		case OPT_REMOTE_ROOT:
			o->remote_root = arg;
			break;
		case OPT_REMOTE_QVM:
			o->remote_qvm = arg;
			break;
		}
	}
	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, 2, 2, &ops, &nops, err);
	if (r == 0) {
		*ret_name = ops[0];
		o->dest = ops[1];
	}
	cli_parser_done(&p);
	if (r == 0)
		r = cli_lock_timeout(&o->run.lock_timeout_ms, err);
	return r;
}

int cli_cmd_migrate(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	lc_migrate_opts o = { .ssh = getenv("QVM_SSH") };
	progress pr = { .t0 = util_now_ms() };
	_cleanup_json_ json_t *res = NULL;
	const char *name = NULL;
	int r = parse_migrate(ctx, argc, argv, &o, &name, err);

	if (r < 0)
		return r;
	o.run.disk_roots = ctx->disk_roots;
	if (isatty(STDERR_FILENO) && ctx->verbosity >= 0 && !ctx->json) {
		o.progress = show_progress;
		o.progress_ud = &pr;
	}
	r = lc_vm_migrate(ctx->root, name, &o, &res, err);
	if (pr.shown)
		fputc('\n', stderr);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(res);
	} else if (ctx->verbosity >= 0) {
		printf("%s: migrated to %s (%s there), %.1f MiB in %.1f s\n", name,
		       json_string_value(json_object_get(res, "to")),
		       json_string_value(json_object_get(res, "state")),
		       (double)json_integer_value(json_object_get(res, "bytes")) / (1 << 20),
		       (double)json_integer_value(json_object_get(res, "time_ms")) / 1000.0);
	}
	return 0;
}

int cli_cmd_receive(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, OPT_FROM },
		{ NULL, 0, NULL, 0 },
	};
	const char *from = "another host", *arg;
	cli_parser p;
	char **ops;
	int c, n, r = 0;

	(void)ret_json;
	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while ((c = cli_parser_next(&p, &arg, err)) > 0)
		from = arg;
	if (c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, 0, 0, &ops, &n, err);
	cli_parser_done(&p);
	if (r == 0)
		r = util_validate_printable(from, "--from", err);
	if (r < 0)
		return r;
	return lc_vm_receive(ctx->root, STDIN_FILENO, STDOUT_FILENO, from, ctx->disk_roots, err);
}
