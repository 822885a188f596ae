/* qvm vnc NAME [--ttl S]: a one-time password for the VM's VNC server and
 * where to reach it, as virsh vncdisplay and a Proxmox vncproxy ticket. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_cmd_vnc(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = { { "ttl", required_argument, NULL, 't' },
		                              { NULL, 0, NULL, 0 } };
	_cleanup_json_ json_t *out = NULL;
	lc_run_opts ro = { .lock_timeout_ms = LC_LOCK_TIMEOUT_MS };
	uint64_t ttl = LC_VNC_TTL_S;
	const char *arg, *host;
	cli_parser p;
	char **ops;
	int nops, r;

	cli_parser_init(&p, ctx, argc, argv, opts, "");
	while ((r = cli_parser_next(&p, &arg, err)) > 0)
		if (util_parse_uint(arg, 1, 86400, &ttl, err) < 0) {
			r = cli_usage(err, "--ttl: %s", err->msg);
			break;
		}
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &nops, err);
	cli_parser_done(&p);
	if (r == 0)
		r = cli_lock_timeout(&ro.lock_timeout_ms, err);
	if (r == 0)
		r = lc_vm_vnc(ctx->root, ops[0], (int)ttl, &ro, &out, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = TAKE_PTR(out);
		return 0;
	}
	host = json_string_value(json_object_get(out, "host"));
	if (!host) {
		cli_print_field("SOCKET", "%s", json_string_value(json_object_get(out, "socket")));
		cli_print_field("PASSWORD", "%s",
		                json_string_value(json_object_get(out, "password")));
		cli_print_field("EXPIRES", "in %lld s (once used or not)",
		                (long long)json_integer_value(json_object_get(out, "ttl_s")));
		return 0;
	}
	cli_print_field("ADDRESS", "%s%s%s:%lld", strchr(host, ':') ? "[" : "", host,
	                strchr(host, ':') ? "]" : "",
	                (long long)json_integer_value(json_object_get(out, "port")));
	cli_print_field("DISPLAY", "%s%s%s:%lld", strchr(host, ':') ? "[" : "", host,
	                strchr(host, ':') ? "]" : "",
	                (long long)json_integer_value(json_object_get(out, "display")));
	cli_print_field("PASSWORD", "%s", json_string_value(json_object_get(out, "password")));
	cli_print_field("EXPIRES", "in %lld s (once used or not)",
	                (long long)json_integer_value(json_object_get(out, "ttl_s")));
	return 0;
}
