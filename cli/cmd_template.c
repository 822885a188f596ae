/* qvm template: create (from a vm or a definition file), list, show,
 * delete. create --template instantiates one (cmd_define.c). */
#include <string.h>

#include "cli.h"

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

/* A file when it looks like one ('-', a '/' or a .json name), else a vm. */
static bool is_file(const char *from)
{
	size_t n = strlen(from);

	return !strcmp(from, "-") || strchr(from, '/') || (n > 5 && !strcmp(from + n - 5, ".json"));
}

static int template_create(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_db_ lc_db *db = NULL;
	const char *from = NULL, *arg;
	lc_vmdef def;
	cli_parser p;
	char **ops;
	int nops, r;
	lc_vm *vm;

	lc_vmdef_init(&def);
	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while ((r = cli_parser_next(&p, &arg, err)) > 0)
		from = arg;
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &nops, err);
	if (r == 0 && !from)
		r = cli_usage(err, "template create needs --from VM|FILE.json");
	if (r == 0 && is_file(from))
		r = cli_read_definition(from, ops[0], &def, err);
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0 && !is_file(from) && (r = lc_db_find(db, from, &vm, err)) == 0)
		r = lc_template_create(db, ops[0], &vm->def, err);
	else if (r == 0)
		r = lc_template_create(db, ops[0], &def, err);
	if (r == 0 && ctx->json)
		r = lc_template_get(ctx->root, ops[0], ret_json, err);
	else if (r == 0 && ctx->verbosity >= 0)
		printf("template '%s' made from %s '%s'\n", ops[0], is_file(from) ? "file" : "vm",
		       from);
	cli_parser_done(&p);
	lc_vmdef_clear(&def);
	return r;
}

static int template_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *a = NULL;
	json_t *t;
	char **ops;
	size_t i;
	int r = cli_parse_operands(ctx, argc, argv, 0, 0, &ops, NULL, err);

	if (r == 0)
		r = lc_template_list(ctx->root, &a, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(a);
		return 0;
	}
	printf("%-24s %5s %8s %5s %4s %-19s\n", "NAME", "VCPUS", "MEMORY", "DISKS", "NICS",
	       "CREATED");
	json_array_foreach (a, i, t) {
		json_t *d = json_object_get(t, "definition");
		char mem[16], when[32];

		if (!d) {
			printf("%-24s (unreadable: %s)\n", jstr(t, "name"), jstr(t, "error"));
			continue;
		}
		printf("%-24s %5lld %8s %5zu %4zu %-19s\n", jstr(t, "name"),
		       (long long)json_integer_value(json_object_get(d, "vcpus")),
		       util_format_size((uint64_t)json_integer_value(json_object_get(d, "memory")),
		                        mem, sizeof(mem)),
		       json_array_size(json_object_get(d, "disks")),
		       json_array_size(json_object_get(d, "nics")),
		       cli_format_time(json_integer_value(json_object_get(t, "created_ms")), when,
		                       sizeof(when)));
	}
	return 0;
}

static int template_show(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *t = NULL;
	char **ops, *s;
	int r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, NULL, err);

	if (r == 0)
		r = lc_template_get(ctx->root, ops[0], &t, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(t);
		return 0;
	}
	/* the definition as dump prints a vm's: what create --template starts from */
	s = json_dumps(json_object_get(t, "definition"), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	puts(s);
	free(s);
	return 0;
}

static int template_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	char **ops;
	int r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, NULL, err);

	(void)ret_json;
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_template_delete(db, ops[0], err);
	return r;
}

int cli_cmd_template(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const cli_sub subs[] = {
		{ "create", template_create },
		{ "list", template_list },
		{ "show", template_show },
		{ "delete", template_delete },
	};

	return cli_run_sub(ctx, argc, argv, subs, UTIL_ARRAY_SIZE(subs), ret_json, err);
}
