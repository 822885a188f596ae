/* Commands that run VMs: start, shutdown, poweroff, reboot, pause, unpause,
 * suspend, stop, resume, undeploy, recover, boot, and the hidden
 * __supervise that `start` re-executes. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_HARD = 0x200,
	OPT_HARD_AFTER,
	OPT_TIMEOUT,
	OPT_WAIT,
	OPT_NO_WAIT,
	OPT_SUCCESS,
	OPT_FAILURE,
	OPT_RETRY,
	OPT_DELETE,
	OPT_STATUS_FD,
	OPT_LOCK_FD,
	OPT_ADOPT,
	OPT_WIPE,
	OPT_RECREATE,
	OPT_FORCE,
	OPT_DISCARD_CHECKPOINT,
};

static const struct option run_opts[] = {
	{ "hard", no_argument, NULL, OPT_HARD },
	{ "hard-after", no_argument, NULL, OPT_HARD_AFTER },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "wait", no_argument, NULL, OPT_WAIT },
	{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
	{ "success", no_argument, NULL, OPT_SUCCESS },
	{ "failure", no_argument, NULL, OPT_FAILURE },
	{ "retry", no_argument, NULL, OPT_RETRY },
	{ "delete", no_argument, NULL, OPT_DELETE },
	{ "wipe", no_argument, NULL, OPT_WIPE },
	{ "recreate", no_argument, NULL, OPT_RECREATE },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "discard-checkpoint", no_argument, NULL, OPT_DISCARD_CHECKPOINT },
	{ NULL, 0, NULL, 0 },
};

typedef struct run_args {
	lc_run_opts opts;
	lc_vm_left left; /* what the command left the vm in (opts.ret_left) */
	const char *name;
	int recover; /* an OPT_SUCCESS... value, 0 when none */
	bool wipe, recreate;
} run_args;

/* Parse NAME and the options a command allows (a string of OPT_* chars
 * would be clumsy: `allowed` is a NULL-terminated list of option names). */
static int parse_run(cli_ctx *ctx, int argc, char **argv, const char *const *allowed, run_args *a,
                     util_err *err)
{
	cli_parser p;
	const char *arg;
	char **ops;
	int nops, c = 0, r = 0;

	memset(a, 0, sizeof(*a));
	a->opts.disk_roots = ctx->disk_roots;
	cli_parser_init(&p, ctx, argc, argv, run_opts, NULL);
	a->opts.ret_left = &a->left;
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0) {
		uint64_t n;

		r = cli_option_allowed(ctx, run_opts, c, allowed, err);
		if (r < 0)
			break;
		switch (c) {
		case OPT_HARD:
			a->opts.hard = true;
			break;
		case OPT_HARD_AFTER:
			a->opts.hard_after = true;
			break;
		case OPT_TIMEOUT:
			if (util_parse_uint(arg, 1, 86400, &n, err) < 0)
				r = cli_usage(err, "invalid --timeout: %s", err->msg);
			a->opts.timeout_s = (int)n;
			break;
		case OPT_WAIT:
			a->opts.no_wait = false;
			break;
		case OPT_NO_WAIT:
			a->opts.no_wait = true;
			break;
		case OPT_WIPE:
			a->wipe = true;
			break;
		case OPT_RECREATE:
			a->recreate = true;
			break;
		case OPT_FORCE:
			a->opts.force = true;
			break;
		case OPT_DISCARD_CHECKPOINT:
			a->opts.discard_checkpoint = true;
			break;
		default:
			if (a->recover)
				r = cli_usage(
				        err, "give one of --success, --failure, --retry, --delete");
			a->recover = c;
		}
	}
	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &nops, err);
	if (r == 0)
		a->name = ops[0];
	cli_parser_done(&p);
	if (r == 0)
		r = cli_lock_timeout(&a->opts.lock_timeout_ms, err);
	return r;
}

static char *state_text(lc_state state, lc_lcm lcm)
{
	return util_xasprintf("%s%s%s", lc_state_name(state), state == LC_ACTIVE ? "/" : "",
	                      state == LC_ACTIVE ? lc_lcm_name(lcm) : "");
}

int cli_report_state(cli_ctx *ctx, const char *name, const lc_vm_left *left, json_t **ret_json,
                     util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *then = NULL, *now = NULL;
	lc_vm *vm = NULL;
	int r;

	/* where tests let a command queued on the vm's lock run first */
	util_stop_point("report-state");
	r = cli_open_db(ctx, 0, &db, err);
	if (r < 0)
		return r;
	/* by id: once it is DONE, its name may be another vm's */
	if (left && left->set)
		vm = lc_db_vm_by_id(db, left->id);
	else if (lc_db_find(db, name, &vm, err) < 0)
		util_err_clear(err);
	if (!vm || (vm->state == LC_DONE && (!left || !left->set || left->state == LC_DONE))) {
		/* shutdown to DONE: the name is gone from the live vms */
		if (ctx->json)
			*ret_json = json_pack("{s:s, s:s}", "name", name, "state", "DONE");
		else if (ctx->verbosity >= 0)
			printf("%s: DONE\n", name);
		return 0;
	}
	if (ctx->json) {
		*ret_json = lc_vm_to_json(vm);
		if (left && left->set)
			json_object_set_new(*ret_json, "left",
			                    json_pack("{s:s, s:o}", "state",
			                              lc_state_name(left->state), "lcm",
			                              lc_lcm_json(left->lcm)));
		return 0;
	}
	if (ctx->verbosity < 0)
		return 0;
	now = state_text(vm->state, vm->lcm);
	then = left && left->set ? state_text(left->state, left->lcm) : util_xstrdup(now);
	if (util_streq(then, now))
		printf("%s: %s\n", vm->def.name, now);
	else
		printf("%s: %s (since then %s)\n", vm->def.name, then, now);
	return 0;
}

int cli_cmd_start(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const char *const allowed[] = { "wait", "no-wait", NULL };
	run_args a;
	int r = parse_run(ctx, argc, argv, allowed, &a, err);

	if (r == 0)
		r = lc_vm_start(ctx->root, a.name, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

static int shutdown_cmd(cli_ctx *ctx, bool to_done, int argc, char **argv, json_t **ret_json,
                        util_err *err)
{
	static const char *const allowed[] = { "hard",    "hard-after", "timeout", "wait",
		                               "no-wait", NULL,         NULL };
	static const char *const poweroff_allowed[] = { "hard", "hard-after", "timeout",
		                                        "wait", "no-wait",    "discard-checkpoint",
		                                        NULL };
	run_args a;
	int r = parse_run(ctx, argc, argv, to_done ? allowed : poweroff_allowed, &a, err);

	if (r == 0)
		r = lc_vm_shutdown(ctx->root, a.name, to_done, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

int cli_cmd_shutdown(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return shutdown_cmd(ctx, true, argc, argv, ret_json, err);
}

int cli_cmd_poweroff(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return shutdown_cmd(ctx, false, argc, argv, ret_json, err);
}

int cli_cmd_reboot(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const char *const allowed[] = { "hard", "timeout", "wait", "no-wait", NULL };
	run_args a;
	int r = parse_run(ctx, argc, argv, allowed, &a, err);

	if (r == 0)
		r = lc_vm_reboot(ctx->root, a.name, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

static int pause_cmd(cli_ctx *ctx, bool pause, int argc, char **argv, json_t **ret_json,
                     util_err *err)
{
	run_args a;
	int r = parse_run(ctx, argc, argv, NULL, &a, err);

	if (r == 0)
		r = lc_vm_pause(ctx->root, a.name, pause, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

int cli_cmd_pause(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return pause_cmd(ctx, true, argc, argv, ret_json, err);
}

int cli_cmd_unpause(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return pause_cmd(ctx, false, argc, argv, ret_json, err);
}

static int suspend_cmd(cli_ctx *ctx, bool to_stopped, int argc, char **argv, json_t **ret_json,
                       util_err *err)
{
	run_args a;
	int r = parse_run(ctx, argc, argv, NULL, &a, err);

	if (r == 0)
		r = lc_vm_suspend(ctx->root, a.name, to_stopped, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

int cli_cmd_suspend(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return suspend_cmd(ctx, false, argc, argv, ret_json, err);
}

int cli_cmd_stop(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return suspend_cmd(ctx, true, argc, argv, ret_json, err);
}

int cli_cmd_resume(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	run_args a;
	int r = parse_run(ctx, argc, argv, NULL, &a, err);

	if (r == 0)
		r = lc_vm_resume(ctx->root, a.name, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

int cli_cmd_undeploy(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const char *const allowed[] = { "hard", "hard-after", "timeout", NULL };
	run_args a;
	int r = parse_run(ctx, argc, argv, allowed, &a, err);

	if (r == 0)
		r = lc_vm_undeploy(ctx->root, a.name, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

int cli_cmd_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const char *const allowed[] = { "wipe", "recreate", NULL };
	run_args a;
	int r = parse_run(ctx, argc, argv, allowed, &a, err);

	if (r == 0 && a.wipe && a.recreate)
		r = cli_usage(err, "--wipe and --recreate exclude each other");
	if (r == 0)
		r = lc_vm_remove(ctx->root, a.name, a.wipe, a.recreate, &a.opts, err);
	if (r == 0 && a.recreate)
		return cli_report_state(ctx, a.name, &a.left, ret_json, err);
	if (r == 0 && ctx->json)
		*ret_json = json_pack("{s:s, s:s}", "name", a.name, "state", "DONE");
	else if (r == 0 && ctx->verbosity >= 0)
		printf("%s: DONE (deleted%s)\n", a.name, a.wipe ? ", disks wiped" : "");
	return r;
}

int cli_cmd_recover(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const char *const allowed[] = { "success", "failure", "retry",
		                               "delete",  "force",   NULL };
	run_args a;
	lc_recover_how how = LC_RECOVER_RETRY;
	int r = parse_run(ctx, argc, argv, allowed, &a, err);

	if (r == 0 && !a.recover)
		r = cli_usage(err, "give one of --success, --failure, --retry, --delete");
	if (r < 0)
		return r;
	switch (a.recover) {
	case OPT_SUCCESS:
		how = LC_RECOVER_SUCCESS;
		break;
	case OPT_FAILURE:
		how = LC_RECOVER_FAILURE;
		break;
	case OPT_DELETE:
		how = LC_RECOVER_DELETE;
		break;
	default:
		how = LC_RECOVER_RETRY;
	}
	r = lc_vm_recover(ctx->root, a.name, how, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

int cli_cmd_boot(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	run_args a;
	int r = parse_run(ctx, argc, argv, NULL, &a, err);

	if (r == 0)
		r = lc_vm_boot(ctx->root, a.name, &a.opts, err);
	return r < 0 ? r : cli_report_state(ctx, a.name, &a.left, ret_json, err);
}

/* qvm __supervise ID --status-fd=N [--lock-fd=N] [--adopt]: what `start`
 * re-executes; not for people, so not in the command list. */
int cli_cmd_supervise(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "status-fd", required_argument, NULL, OPT_STATUS_FD },
		{ "lock-fd", required_argument, NULL, OPT_LOCK_FD },
		{ "adopt", no_argument, NULL, OPT_ADOPT },
		{ NULL, 0, NULL, 0 },
	};
	int status_fd = -1, lock_fd = -1, c = 0, nops, r = 0;
	bool adopt = false;
	uint64_t id = 0, n;
	const char *arg;
	cli_parser p;
	char **ops;

	(void)ret_json;
	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0) {
		if (c == OPT_ADOPT)
			adopt = true;
		else if (util_parse_uint(arg, 3, 1024, &n, err) < 0)
			r = cli_usage(err, "bad fd");
		else if (c == OPT_STATUS_FD)
			status_fd = (int)n;
		else
			lock_fd = (int)n;
	}
	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &nops, err);
	if (r == 0 && util_parse_uint(ops[0], 1, UINT64_MAX, &id, err) < 0)
		r = cli_usage(err, "bad vm id");
	cli_parser_done(&p);
	if (r < 0)
		return r;
	return lc_supervise(ctx->root, id, status_fd, lock_fd, adopt, ctx->disk_roots, err);
}
