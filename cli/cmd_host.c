/* The host's commands: scheduler (one pass, or a loop), schedule,
 * schedule-list, schedule-delete, and host's boot, shutdown and set (plain
 * `host`, and the printing of a schedule that `show` shows too, are
 * cmd_look.c's). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define SCHEDULER_INTERVAL_S 60
#define PASS_LOCK_TIMEOUT_MS (10 * 60 * 1000)

enum {
	OPT_ONCE = 0x400,
	OPT_INTERVAL,
	OPT_AT,
	OPT_EVERY,
	OPT_UNTIL,
	OPT_COUNT,
	OPT_HARD,
	OPT_HARD_AFTER,
	OPT_TIMEOUT,
	OPT_NO_MEMORY,
	OPT_WIPE,
	OPT_MODE,
};

static int pass_opts(const cli_ctx *ctx, lc_pass_opts *ret, util_err *err)
{
	*ret = (lc_pass_opts){ .disk_roots = ctx->disk_roots,
		               .lock_timeout_ms = LC_LOCK_TIMEOUT_MS,
		               .pass_timeout_ms = PASS_LOCK_TIMEOUT_MS };
	return cli_lock_timeout(&ret->lock_timeout_ms, err);
}

/* The end of a parse with options: the parser's error (c < 0), the
 * operands (min..max), then the pass's options. */
static int parse_end(cli_parser *p, int r, int c, int min, int max, lc_pass_opts *ret_o,
                     util_err *err)
{
	char **ops;
	int n;

	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(p, min, max, &ops, &n, err);
	cli_parser_done(p);
	return r < 0 ? r : pass_opts(p->ctx, ret_o, err);
}

/* A command's answer: its JSON handed on, or printed (and freed). */
static int reply(const cli_ctx *ctx, int r, json_t *j, void (*print)(const cli_ctx *, json_t *),
                 json_t **ret_json)
{
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = j;
		return 0;
	}
	print(ctx, j);
	json_decref(j);
	return 0;
}

/* ---- schedule ---------------------------------------------------------------------------- */

static const struct option schedule_opts[] = {
	{ "at_ms", required_argument, NULL, OPT_AT },
	{ "every_ms", required_argument, NULL, OPT_EVERY },
	{ "until_ms", required_argument, NULL, OPT_UNTIL },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "hard", no_argument, NULL, OPT_HARD },
	{ "hard-after", no_argument, NULL, OPT_HARD_AFTER },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "no-memory", no_argument, NULL, OPT_NO_MEMORY },
	{ "wipe", no_argument, NULL, OPT_WIPE },
	{ NULL, 0, NULL, 0 },
};

static int schedule_opt(int c, const char *arg, int64_t now, lc_sched_spec *sp, bool *ret_at,
                        util_err *err)
{
	uint64_t n;

	switch (c) {
	case OPT_AT:
		*ret_at = true;
		if (lc_sched_parse_time(arg, now, &sp->at_ms, err) < 0)
			return cli_usage(err, "invalid --at: %s", err->msg);
		return 0;
	case OPT_EVERY:
		if (lc_sched_parse_interval(arg, &sp->every_ms, err) < 0)
			return cli_usage(err, "invalid --every: %s", err->msg);
		return 0;
	case OPT_UNTIL:
		if (lc_sched_parse_time(arg, now, &sp->until_ms, err) < 0)
			return cli_usage(err, "invalid --until: %s", err->msg);
		return 0;
	case OPT_COUNT:
		if (util_parse_uint(arg, 1, 1000000, &n, err) < 0)
			return cli_usage(err, "invalid --count: %s", err->msg);
		sp->count = (unsigned)n;
		return 0;
	case OPT_TIMEOUT:
		if (util_parse_uint(arg, 1, 86400, &n, err) < 0)
			return cli_usage(err, "invalid --timeout: %s", err->msg);
		sp->timeout_s = (int)n;
		sp->opts |= LC_SCHED_OPT_TIMEOUT;
		return 0;
	default:
		sp->opts |= c == OPT_HARD         ? LC_SCHED_OPT_HARD
		            : c == OPT_HARD_AFTER ? LC_SCHED_OPT_HARD_AFTER
		            : c == OPT_NO_MEMORY  ? LC_SCHED_OPT_NO_MEMORY
		                                  : LC_SCHED_OPT_WIPE;
		return 0;
	}
}

static int schedule_checks(const lc_sched_spec *sp, bool at, int64_t now, util_err *err)
{
	if (!at)
		return cli_usage(err, "give --at TIME");
	if (sp->at_ms < now - 1000)
		return cli_usage(err, "--at is in the past");
	if ((sp->until_ms || sp->count) && !sp->every_ms)
		return cli_usage(err, "--until and --count go with --every");
	if (sp->until_ms && sp->count)
		return cli_usage(err, "give --until or --count, not both");
	if (lc_sched_action_check(sp->action, sp->opts, sp->n_args, sp->args, err) < 0)
		return cli_usage(err, "%s", err->msg);
	return 0;
}

int cli_cmd_schedule(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *entry = NULL;
	lc_sched_spec sp = { 0 };
	int64_t now = util_realtime_ms();
	bool at = false;
	cli_parser p;
	const char *arg;
	char **ops;
	int n = 0, c, r = 0;

	cli_parser_init(&p, ctx, argc, argv, schedule_opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0)
		r = schedule_opt(c, arg, now, &sp, &at, err);
	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, 2, 4, &ops, &n, err);
	if (r == 0) {
		sp.action = ops[1];
		sp.args = ops + 2;
		sp.n_args = (size_t)n - 2;
		r = schedule_checks(&sp, at, now, err);
	}
	if (r == 0)
		r = lc_sched_add(ctx->root, ops[0], &sp, &entry, err);
	cli_parser_done(&p);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(entry);
	} else if (ctx->verbosity >= 0) {
		char a[32];

		printf("%s: action %lld, %s at %s\n",
		       json_string_value(json_object_get(entry, "vm")),
		       (long long)json_integer_value(json_object_get(entry, "id")), sp.action,
		       cli_format_time(sp.at_ms, a, sizeof(a)));
	}
	return 0;
}

static void print_list(const cli_ctx *ctx, json_t *list)
{
	(void)ctx;
	cli_print_schedule_entries(list, true);
}

int cli_cmd_schedule_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	json_t *list = NULL;
	char **ops;
	int n, r = cli_parse_operands(ctx, argc, argv, 0, 1, &ops, &n, err);

	if (r == 0)
		r = lc_sched_list(ctx->root, n ? ops[0] : NULL, &list, err);
	return reply(ctx, r, list, print_list, ret_json);
}

int cli_cmd_schedule_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	char **ops;
	uint64_t id;
	int r = cli_parse_operands(ctx, argc, argv, 2, 2, &ops, NULL, err);

	if (r == 0 && util_parse_uint(ops[1], 1, UINT32_MAX, &id, err) < 0)
		r = cli_usage(err, "'%s' is not an action id: give the number schedule-list shows",
		              ops[1]);
	if (r == 0)
		r = lc_sched_delete(ctx->root, ops[0], (unsigned)id, err);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = json_pack("{s:s, s:I, s:b}", "vm", ops[0], "id", (json_int_t)id,
		                      "deleted", 1);
	else if (ctx->verbosity >= 0)
		printf("%s: action %llu deleted\n", ops[0], (unsigned long long)id);
	return 0;
}

/* ---- scheduler --------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_loop;

static void on_stop(int sig)
{
	(void)sig;
	stop_loop = 1;
}

static void print_actions(const cli_ctx *ctx, json_t *report)
{
	json_t *a;
	size_t i;

	if (ctx->verbosity < 0)
		return;
	json_array_foreach (json_object_get(report, "networks"), i, a)
		printf("net %s: its interfaces made again\n", json_string_value(a));
	json_array_foreach (json_object_get(report, "actions"), i, a) {
		const char *error = json_string_value(json_object_get(a, "error"));

		printf("%s: %s%s %s%s%s\n", json_string_value(json_object_get(a, "vm")),
		       json_string_value(json_object_get(a, "what")),
		       json_is_true(json_object_get(a, "late")) ? " (late)" : "",
		       json_string_value(json_object_get(a, "result")), error ? ": " : "",
		       error ? error : "");
	}
	fflush(stdout);
}

static void print_json_line(json_t *j)
{
	_cleanup_free_ char *s = json_dumps(j, JSON_COMPACT);

	if (s)
		puts(s);
	fflush(stdout);
}

/* The loop: a pass, then a sleep to the next, until SIGTERM or SIGINT; a
 * failed pass is told on stderr and the loop goes on. */
static int scheduler_loop(cli_ctx *ctx, const lc_pass_opts *o, uint64_t interval_s)
{
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	while (!stop_loop) {
		_cleanup_json_ json_t *report = NULL;
		util_err e = { 0 };
		struct timespec ts = { (time_t)interval_s, 0 };

		if (lc_scheduler_pass(ctx->root, o, &report, &e) < 0)
			fprintf(stderr, "qvm: %s\n", e.msg);
		else if (ctx->json)
			print_json_line(report);
		else
			print_actions(ctx, report);
		/* what the pass read of the journal is not kept while it sleeps */
		lc_db_forget();
		while (!stop_loop && nanosleep(&ts, &ts) < 0)
			;
	}
	return 0;
}

int cli_cmd_scheduler(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t interval = SCHEDULER_INTERVAL_S;
	json_t *report = NULL;
	lc_pass_opts o;
	bool once = false;
	cli_parser p;
	const char *arg;
	int c, r = 0;

	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0) {
		if (c == OPT_ONCE)
			once = true;
		else if (util_parse_uint(arg, 1, 86400, &interval, err) < 0)
			r = cli_usage(err, "invalid --interval: %s", err->msg);
	}
	r = parse_end(&p, r, c, 0, 0, &o, err);
	if (r == 0 && !once)
		return scheduler_loop(ctx, &o, interval);
	if (r == 0)
		r = lc_scheduler_pass(ctx->root, &o, &report, err);
	return reply(ctx, r, report, print_actions, ret_json);
}

/* ---- host boot, shutdown, set ------------------------------------------------------------ */

static int host_shutdown(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ NULL, 0, NULL, 0 },
	};
	lc_host_stop_mode mode = LC_HOST_STOP_SHUTDOWN;
	uint64_t timeout = LC_SHUTDOWN_TIMEOUT_S;
	json_t *report = NULL;
	lc_pass_opts o;
	cli_parser p;
	const char *arg;
	int c, r = 0;

	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0) {
		if (c == OPT_TIMEOUT && util_parse_uint(arg, 1, 86400, &timeout, err) < 0)
			r = cli_usage(err, "invalid --timeout: %s", err->msg);
		else if (c == OPT_MODE && util_streq(arg, "suspend"))
			mode = LC_HOST_STOP_SUSPEND;
		else if (c == OPT_MODE && !util_streq(arg, "shutdown"))
			r = cli_usage(err, "--mode is shutdown or suspend, not '%s'", arg);
	}
	r = parse_end(&p, r, c, 1, 1, &o, err);
	if (r == 0)
		r = lc_host_shutdown(ctx->root, mode, (int)timeout, &o, &report, err);
	return reply(ctx, r, report, print_actions, ret_json);
}

static int host_boot(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	json_t *report = NULL;
	lc_pass_opts o;
	char **ops;
	int r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, NULL, err);

	if (r == 0)
		r = pass_opts(ctx, &o, err);
	if (r == 0)
		r = lc_host_boot(ctx->root, &o, &report, err);
	return reply(ctx, r, report, print_actions, ret_json);
}

static int host_set(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	char **ops;
	int n, r = cli_parse_operands(ctx, argc, argv, 1, 16, &ops, &n, err);

	if (r == 0 && n < 2)
		r = cli_usage(err, "host set needs KEY=VALUE: deploy-pending=on|off or "
		                   "memory-reserve=SIZE");
	if (r == 0)
		r = lc_host_set(ctx->root, ops + 1, (size_t)n - 1, err);
	if (r == -EINVAL) {
		/* a KEY=VALUE that is none: the command line's fault */
		_cleanup_free_ char *msg = util_xstrdup(err->msg);

		r = cli_usage(err, "%s", msg);
	}
	if (r == 0)
		r = lc_host_info(ctx->root, ret_json, err);
	if (r == 0 && !ctx->json) {
		json_decref(TAKE_PTR(*ret_json));
		if (ctx->verbosity >= 0)
			printf("host: %d setting%s recorded\n", n - 1, n == 2 ? "" : "s");
	}
	return r;
}

/* `host` as cmd_look.c shows it, and the scheduler's settings and facts. */
static int host_show(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *info = NULL;
	const char *k;
	json_t *v;
	int r = cli_cmd_host(ctx, argc, argv, ret_json, err);

	if (r == 0)
		r = lc_host_info(ctx->root, &info, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		json_object_update(*ret_json, info);
		return 0;
	}
	cli_print_field("SCHEDULER", "deploy-pending %s, memory-reserve %s",
	                json_is_true(json_object_get(info, "deploy_pending")) ? "on" : "off",
	                json_string_value(json_object_get(info, "memory_reserve")));
	cli_print_field("BOOT", "%s%s", json_string_value(json_object_get(info, "boot_id")) ?: "-",
	                util_streq(json_string_value(json_object_get(info, "boot_id")),
	                           json_string_value(json_object_get(info, "autostart_boot_id")))
	                        ? " (autostart done)"
	                        : " (autostart not run yet)");
	json_object_foreach (json_object_get(info, "stopped"), k, v)
		cli_print_field("STOPPED", "vm %s '%s' (%s by the last host shutdown)", k,
		                json_string_value(json_object_get(v, "name")),
		                json_string_value(json_object_get(v, "how")));
	return 0;
}

int cli_cmd_host_any(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	const char *sub = NULL;

	/* the first word that is not an option names the subcommand */
	for (int i = 1; i < argc && !sub; i++)
		if (argv[i][0] != '-')
			sub = argv[i];
		else if (util_streq(argv[i], "--root"))
			i++;
	if (util_streq(sub, "boot"))
		return host_boot(ctx, argc, argv, ret_json, err);
	if (util_streq(sub, "shutdown"))
		return host_shutdown(ctx, argc, argv, ret_json, err);
	if (util_streq(sub, "set"))
		return host_set(ctx, argc, argv, ret_json, err);
	return host_show(ctx, argc, argv, ret_json, err);
}
