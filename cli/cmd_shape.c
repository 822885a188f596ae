/* Commands that reshape a vm in place: rename. */
#include <string.h>

#include "cli.h"

int cli_cmd_rename(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_close_ int lock = -1;
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *old = NULL;
	char **ops;
	int nops;
	lc_vm *vm;
	int r = cli_parse_operands(ctx, argc, argv, 2, 2, &ops, &nops, err);

	if (r == 0 && cli_lock_vm(ctx, ops[0], &lock, err) < 0)
		r = util_err_prefix(err, "cannot rename '%s'", ops[0]);
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_db_find(db, ops[0], &vm, err);
	if (r == 0) {
		old = util_xstrdup(vm->def.name);
		r = lc_vm_rename(db, vm, TAKE_FD(lock), ops[1], err);
	}
	if (r == 0 && ctx->json)
		*ret_json = lc_vm_to_json(vm);
	else if (r == 0 && ctx->verbosity >= 0)
		printf("%s: renamed from '%s'\n", vm->def.name, old);
	return r;
}
