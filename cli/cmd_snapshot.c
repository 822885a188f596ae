/* VM snapshot commands: snapshot-create, snapshot-revert, snapshot-delete,
 * snapshot-list (a tree). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_NO_MEMORY = 0x300, OPT_RUNNING, OPT_QUIESCE };

/* NAME [ARG] with the options of opts (at most one, a flag: *ret_flag);
 * QVM_LOCK_TIMEOUT_MS as the run commands read it. */
static int parse(cli_ctx *ctx, int argc, char **argv, const struct option *opts, int min, int max,
                 bool *ret_flag, char ***ret_ops, int *ret_n, lc_run_opts *ro, util_err *err)
{
	cli_parser p;
	const char *arg;
	int c, r = 0;

	memset(ro, 0, sizeof(*ro));
	ro->disk_roots = ctx->disk_roots;
	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while ((c = cli_parser_next(&p, &arg, err)) > 0)
		if ((c == OPT_NO_MEMORY || c == OPT_RUNNING) && ret_flag)
			*ret_flag = true;
		else if (c == OPT_QUIESCE)
			ro->quiesce = true;
	if (c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, min, max, ret_ops, ret_n, err);
	cli_parser_done(&p);
	if (r == 0)
		r = cli_lock_timeout(&ro->lock_timeout_ms, err);
	return r;
}

int cli_cmd_snapshot_create(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = { { "no-memory", no_argument, NULL, OPT_NO_MEMORY },
		                              { "quiesce", no_argument, NULL, OPT_QUIESCE },
		                              { NULL, 0, NULL, 0 } };
	_cleanup_json_ json_t *snap = NULL;
	bool no_memory = false;
	lc_run_opts ro;
	char **ops;
	int n, r = parse(ctx, argc, argv, opts, 1, 2, &no_memory, &ops, &n, &ro, err);

	if (r == 0)
		r = lc_vm_snapshot_create(ctx->root, ops[0], n > 1 ? ops[1] : NULL, no_memory, &ro,
		                          &snap, err);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = TAKE_PTR(snap);
	else if (ctx->verbosity >= 0)
		printf("%s: snapshot %lld '%s' taken (%s)\n", ops[0],
		       (long long)json_integer_value(json_object_get(snap, "id")),
		       json_string_value(json_object_get(snap, "tag")),
		       json_is_true(json_object_get(snap, "memory")) ? "memory and disks"
		                                                     : "disks only");
	return 0;
}

int cli_cmd_snapshot_revert(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = { { "running", no_argument, NULL, OPT_RUNNING },
		                              { NULL, 0, NULL, 0 } };
	_cleanup_json_ json_t *res = NULL;
	bool start = false;
	lc_run_opts ro;
	char **ops;
	int n, r = parse(ctx, argc, argv, opts, 2, 2, &start, &ops, &n, &ro, err);

	if (r == 0)
		r = lc_vm_snapshot_revert(ctx->root, ops[0], ops[1], start, &ro, &res, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(res);
		return 0;
	}
	if (ctx->verbosity < 0)
		return 0;
	/* say what came back: an off vm gets the disks, not the memory */
	if (json_is_true(json_object_get(res, "memory")))
		printf("%s: reverted to snapshot '%s' (memory and disks)%s\n", ops[0], ops[1],
		       json_is_true(json_object_get(res, "started")) ? "; started from it" : "");
	else if (json_is_true(json_object_get(res, "snapshot_memory")))
		printf("%s: reverted to snapshot '%s' (disks only: the vm is off, so its memory state was not loaded; qvm snapshot-revert %s %s --running starts it from there)\n",
		       ops[0], ops[1], ops[0], ops[1]);
	else
		printf("%s: reverted to snapshot '%s' (disks)%s\n", ops[0], ops[1],
		       json_is_true(json_object_get(res, "started")) ? "; started" : "");
	return 0;
}

int cli_cmd_snapshot_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	lc_run_opts ro;
	char **ops;
	int n, r = parse(ctx, argc, argv, NULL, 2, 2, NULL, &ops, &n, &ro, err);

	if (r == 0)
		r = lc_vm_snapshot_delete(ctx->root, ops[0], ops[1], &ro, err);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = json_pack("{s:s, s:s}", "vm", ops[0], "deleted", ops[1]);
	else if (ctx->verbosity >= 0)
		printf("%s: snapshot '%s' deleted\n", ops[0], ops[1]);
	return 0;
}

/* Children of parent, oldest first, drawn below it. */
static void print_children(json_t *items, json_int_t parent, json_int_t current, const char *indent,
                           int depth)
{
	json_t *s;
	size_t i, n = 0, seen = 0;

	if (depth > 64)
		return; /* a loop would be a corrupt journal: never spin */
	json_array_foreach (items, i, s)
		n += json_integer_value(json_object_get(s, "parent")) == parent;
	json_array_foreach (items, i, s) {
		json_int_t id = json_integer_value(json_object_get(s, "id"));
		char when[32], *next;
		bool last;

		if (json_integer_value(json_object_get(s, "parent")) != parent)
			continue;
		last = ++seen == n;
		printf("%s%s%lld %s  [%s, %s, %s]%s\n", indent,
		       depth ? (last ? "`-- " : "|-- ") : "", (long long)id,
		       json_string_value(json_object_get(s, "tag")),
		       json_is_true(json_object_get(s, "memory")) ? "memory" : "disks only",
		       json_string_value(json_object_get(s, "state")),
		       cli_format_time(json_integer_value(json_object_get(s, "created_ms")), when,
		                       sizeof(when)),
		       id == current ? "  <- current" : "");
		next = util_xasprintf("%s%s", indent, depth ? (last ? "    " : "|   ") : "");
		print_children(items, id, current, next, depth + 1);
		free(next);
	}
}

/* The tree for show and snapshot-list. */
void cli_print_snapshots(json_t *items, json_int_t current)
{
	json_t *s;
	size_t i;

	/* a parent that is gone (never, after re-parenting) would hide its
	 * children: draw those as roots too */
	print_children(items, 0, current, "", 0);
	json_array_foreach (items, i, s) {
		json_int_t p = json_integer_value(json_object_get(s, "parent"));
		bool known = p == 0;
		json_t *o;
		size_t k;

		json_array_foreach (items, k, o)
			known = known || json_integer_value(json_object_get(o, "id")) == p;
		if (!known)
			print_children(items, p, current, "", 0);
	}
}

int cli_cmd_snapshot_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *list = NULL;
	json_t *items;
	lc_run_opts ro;
	char **ops;
	int n, r = parse(ctx, argc, argv, NULL, 1, 1, NULL, &ops, &n, &ro, err);

	if (r == 0)
		r = lc_vm_snapshot_list(ctx->root, ops[0], &list, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(list);
		return 0;
	}
	items = json_object_get(list, "snapshots");
	if (json_array_size(items) == 0) {
		printf("%s has no snapshots (at most %lld)\n", ops[0],
		       (long long)json_integer_value(json_object_get(list, "max")));
		return 0;
	}
	printf("%s: %zu snapshot%s (at most %lld)\n", ops[0], json_array_size(items),
	       json_array_size(items) == 1 ? "" : "s",
	       (long long)json_integer_value(json_object_get(list, "max")));
	cli_print_snapshots(items, json_integer_value(json_object_get(list, "current")));
	return 0;
}
