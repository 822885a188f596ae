/* Networks and NICs: net create|list|show|delete, nic-attach, nic-detach. */
#include <string.h>

#include "cli.h"

static int parse_uint_opt(const char *opt, const char *arg, uint64_t max, unsigned *ret,
                          util_err *err)
{
	uint64_t v;

	if (util_parse_uint(arg, 1, max, &v, NULL) < 0)
		return cli_usage(err, "%s '%s' must be a number from 1 to %llu", opt, arg,
		                 (unsigned long long)max);
	*ret = (unsigned)v;
	return 0;
}

static int net_create(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	enum { O_BRIDGE = 1, O_VLAN, O_UPLINK, O_MTU, O_RANGE, O_PREFIX, O_GATEWAY, O_DNS };
	static const struct option opts[] = {
		{ "bridge", required_argument, NULL, O_BRIDGE },
		{ "vlan", required_argument, NULL, O_VLAN },
		{ "uplink", required_argument, NULL, O_UPLINK },
		{ "mtu", required_argument, NULL, O_MTU },
		{ "range", required_argument, NULL, O_RANGE },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "gateway", required_argument, NULL, O_GATEWAY },
		{ "dns", required_argument, NULL, O_DNS },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_db_ lc_db *db = NULL;
	lc_net_opts o = { 0 };
	cli_parser p;
	const char *arg = NULL;
	char **ops;
	int c, n, r = 0;
	json_t *net;

	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) != 0) {
		if (c < 0) {
			r = c;
			break;
		}
		switch (c) {
		case O_BRIDGE:
			o.bridge = arg;
			break;
		case O_VLAN:
			r = parse_uint_opt("--vlan", arg, 4094, &o.vlan, err);
			break;
		case O_UPLINK:
			o.uplink = arg;
			break;
		case O_MTU:
			r = parse_uint_opt("--mtu", arg, 65535, &o.mtu, err);
			break;
		case O_RANGE:
			o.range = arg;
			break;
		case O_PREFIX:
			r = parse_uint_opt("--prefix", arg, 30, &o.prefix, err);
			break;
		case O_GATEWAY:
			o.gateway = arg;
			break;
		case O_DNS:
			o.dns = arg;
			break;
		}
	}
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &n, err);
	cli_parser_done(&p);
	if (r < 0)
		return r;
	o.name = ops[0];
	if (!o.bridge)
		return cli_usage(err, "net create needs --bridge BR");
	r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_net_create(db, &o, err);
	if (r == 0)
		r = lc_net_find(db, o.name, &net, err);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = lc_net_to_json(db, net);
	else if (ctx->verbosity >= 0)
		printf("network '%s' created on bridge %s (%s)\n", o.name, o.bridge,
		       json_is_true(json_object_get(net, "created_bridge"))
		               ? "made by qvm"
		               : "an existing bridge, adopted");
	return 0;
}

static const char *jstr(json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : dflt;
}

static int net_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *list = NULL;
	char **ops;
	int r;
	size_t i;
	json_t *net;

	r = cli_parse_operands(ctx, argc, argv, 0, 0, &ops, NULL, err);
	if (r == 0)
		r = cli_open_db(ctx, 0, &db, err);
	if (r < 0)
		return r;
	list = lc_net_list_json(db);
	if (ctx->json) {
		*ret_json = TAKE_PTR(list);
		return 0;
	}
	printf("%-16s %-15s %-5s %-31s %6s %s\n", "NAME", "BRIDGE", "VLAN", "RANGE", "LEASES",
	       "VMS");
	json_array_foreach (list, i, net) {
		char vlan[16] = "-";

		if (json_integer_value(json_object_get(net, "vlan")))
			snprintf(vlan, sizeof(vlan), "%lld",
			         (long long)json_integer_value(json_object_get(net, "vlan")));
		printf("%-16s %-15s %-5s %-31s %6zu %zu\n", jstr(net, "name", "?"),
		       jstr(net, "bridge", "-"), vlan, jstr(net, "range", "-"),
		       json_array_size(json_object_get(net, "leases")),
		       json_array_size(json_object_get(net, "vms")));
	}
	return 0;
}

static int net_show(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *j = NULL;
	char **ops;
	int r;
	size_t i;
	json_t *net = NULL, *l;

	r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, NULL, err);
	if (r == 0)
		r = cli_open_db(ctx, 0, &db, err);
	if (r == 0)
		r = lc_net_find(db, ops[0], &net, err);
	if (r < 0)
		return r;
	j = lc_net_to_json(db, net);
	if (ctx->json) {
		*ret_json = TAKE_PTR(j);
		return 0;
	}
	cli_print_field("NAME", "%s", jstr(j, "name", "?"));
	cli_print_field("BRIDGE", "%s (%s)", jstr(j, "bridge", "-"),
	                json_is_true(json_object_get(j, "created_bridge")) ? "made by qvm"
	                                                                   : "adopted");
	if (json_object_get(j, "vlan"))
		cli_print_field("VLAN", "%lld on %s as %s (%s)",
		                (long long)json_integer_value(json_object_get(j, "vlan")),
		                jstr(j, "uplink", "?"), jstr(j, "vlan_if", "?"),
		                json_is_true(json_object_get(j, "created_vlan")) ? "made by qvm"
		                                                                 : "adopted");
	if (json_object_get(j, "mtu"))
		cli_print_field("MTU", "%lld",
		                (long long)json_integer_value(json_object_get(j, "mtu")));
	if (json_object_get(j, "range"))
		cli_print_field("RANGE", "%s /%lld", jstr(j, "range", "?"),
		                (long long)json_integer_value(json_object_get(j, "prefix")));
	else if (json_object_get(j, "prefix"))
		cli_print_field("RANGE", "- /%lld (static addresses only)",
		                (long long)json_integer_value(json_object_get(j, "prefix")));
	if (json_object_get(j, "prefix")) {
		cli_print_field("GATEWAY", "%s", jstr(j, "gateway", "-"));
		cli_print_field("DNS", "%s", jstr(j, "dns", "-"));
	}
	printf("\nLEASES\n%-15s %-17s %-4s %s\n", "IP", "MAC", "NIC", "VM");
	json_array_foreach (json_object_get(j, "leases"), i, l)
		printf("%-15s %-17s %-4lld %s\n", jstr(l, "ip", "?"), jstr(l, "mac", "-"),
		       (long long)json_integer_value(json_object_get(l, "nic")),
		       jstr(l, "vm", "?"));
	return 0;
}

static int net_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	char **ops;
	int r;

	r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, NULL, err);
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_net_delete(db, ops[0], err);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = json_pack("{s:s, s:b}", "name", ops[0], "deleted", 1);
	else if (ctx->verbosity >= 0)
		printf("network '%s' deleted\n", ops[0]);
	return 0;
}

int cli_cmd_net(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		if (!sub)
			return cli_usage(err,
			                 "net needs a subcommand: create, list, show or delete");
		printf("usage: qvm net %s\n\n%s\n\n%s", ctx->cmd->usage, ctx->cmd->summary,
		       ctx->cmd->help ? ctx->cmd->help : "");
		exit(0);
	}
	if (!strcmp(sub, "create"))
		return net_create(ctx, argc - 1, argv + 1, ret_json, err);
	if (!strcmp(sub, "list"))
		return net_list(ctx, argc - 1, argv + 1, ret_json, err);
	if (!strcmp(sub, "show"))
		return net_show(ctx, argc - 1, argv + 1, ret_json, err);
	if (!strcmp(sub, "delete"))
		return net_delete(ctx, argc - 1, argv + 1, ret_json, err);
	return cli_usage(err, "unknown net subcommand '%s' (use create, list, show or delete)",
	                 sub);
}

/* ---- nic-attach, nic-detach ------------------------------------------------------ */

static int print_nics(cli_ctx *ctx, const char *name, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm;
	int r = cli_open_db(ctx, 0, &db, err);

	if (r == 0)
		r = lc_db_find(db, name, &vm, err);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = lc_vm_nics_json(db, vm);
	return 0;
}

int cli_cmd_nic_attach(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	enum { O_NETWORK = 1, O_MAC, O_IP, O_MODEL };
	static const struct option opts[] = {
		{ "network", required_argument, NULL, O_NETWORK },
		{ "mac", required_argument, NULL, O_MAC },
		{ "ip", required_argument, NULL, O_IP },
		{ "model", required_argument, NULL, O_MODEL },
		{ NULL, 0, NULL, 0 },
	};
	const char *network = NULL, *mac = NULL, *ip = NULL, *model = NULL, *arg = NULL;
	lc_run_opts o = { 0 };
	cli_parser p;
	unsigned id;
	char **ops;
	int c, n, r = 0;

	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while ((c = cli_parser_next(&p, &arg, err)) > 0) {
		switch (c) {
		case O_NETWORK:
			network = arg;
			break;
		case O_MAC:
			mac = arg;
			break;
		case O_IP:
			ip = arg;
			break;
		case O_MODEL:
			model = arg;
			break;
		}
	}
	r = c < 0 ? c : cli_parser_operands(&p, 1, 1, &ops, &n, err);
	cli_parser_done(&p);
	if (r < 0)
		return r;
	if (!network)
		return cli_usage(err, "nic-attach needs --network NET");
	r = cli_lock_timeout(&o.lock_timeout_ms, err);
	if (r < 0)
		return r;
	r = lc_vm_nic_attach(ctx->root, ops[0], network, mac, ip, model, &o, &id, err);
	if (r < 0)
		return r;
	if (!ctx->json && ctx->verbosity >= 0)
		printf("%s: nic %u attached on network '%s'\n", ops[0], id, network);
	return print_nics(ctx, ops[0], ret_json, err);
}

int cli_cmd_nic_detach(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	lc_run_opts o = { 0 };
	char **ops;
	uint64_t id;
	int r;

	r = cli_parse_operands(ctx, argc, argv, 2, 2, &ops, NULL, err);
	if (r < 0)
		return r;
	if (util_parse_uint(ops[1], 0, LC_NICS_MAX * 64, &id, NULL) < 0)
		return cli_usage(err, "'%s' is not a nic id (see qvm show %s)", ops[1], ops[0]);
	r = cli_lock_timeout(&o.lock_timeout_ms, err);
	if (r < 0)
		return r;
	r = lc_vm_nic_detach(ctx->root, ops[0], (unsigned)id, &o, err);
	if (r < 0)
		return r;
	if (!ctx->json && ctx->verbosity >= 0)
		printf("%s: nic %u detached\n", ops[0], (unsigned)id);
	return print_nics(ctx, ops[0], ret_json, err);
}
