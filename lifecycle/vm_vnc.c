/* qvm vnc: a fresh one-time password for a running VM's VNC server, set
 * over QMP (set_password, then expire_password), and where the server
 * listens (query-vnc). The password is never recorded: it lives only in
 * QEMU and in what the command prints. */
#include <string.h>

#include "vm_command.h"

/* VNC's authentication (DES) uses at most 8 characters. */
#define VNC_PASSWORD_LEN 8

typedef struct vnc_arg {
	int ttl_s;
	json_t *out; /* what the command prints, once done */
} vnc_arg;

static int new_password(char buf[VNC_PASSWORD_LEN + 1], util_err *err)
{
	static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
	unsigned char raw[VNC_PASSWORD_LEN * 2];
	size_t n = 0;
	int r = util_random_bytes(raw, sizeof(raw), err);

	if (r < 0)
		return r;
	/* rejection sampling: no character likelier than another */
	for (size_t i = 0; i < sizeof(raw) && n < VNC_PASSWORD_LEN; i++)
		if (raw[i] < 256 - 256 % (sizeof(alphabet) - 1))
			buf[n++] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	if (n < VNC_PASSWORD_LEN)
		return new_password(buf, err);
	buf[n] = '\0';
	return 0;
}

/* Where QEMU's VNC server listens: query-vnc's host and service. */
static int vnc_where(lc_cmd *c, json_t **ret, util_err *err)
{
	_cleanup_json_ json_t *info = NULL;
	const char *host, *service;
	int r = qmp_execute(c->qmp, "query-vnc", NULL, 0, &info, err);

	if (r < 0)
		return r;
	host = json_string_value(json_object_get(info, "host"));
	service = json_string_value(json_object_get(info, "service"));
	if (!json_is_true(json_object_get(info, "enabled")) || !host || !service)
		return util_err_set(
		        err, -ENOTCONN,
		        "its qemu runs no vnc server (it was started before vnc was on?); "
		        "power it off and start it again");
	/* a unix socket: its path is the "service" */
	if (util_streq(json_string_value(json_object_get(info, "family")), "unix")) {
		*ret = json_pack("{s:n, s:n, s:n, s:s}", "host", "port", "display", "socket",
		                 service);
		return 0;
	}
	*ret = json_pack("{s:s, s:i, s:i, s:n}", "host", host, "port", atoi(service), "display",
	                 atoi(service) - 5900, "socket");
	return 0;
}

static int vnc_act(lc_cmd *c, void *arg, util_err *err)
{
	vnc_arg *a = arg;
	_cleanup_json_ json_t *where = NULL, *args = NULL;
	char pw[VNC_PASSWORD_LEN + 1], ttl[24];
	int64_t now = util_realtime_ms();
	int r;

	if (c->vm->state != LC_ACTIVE ||
	    (c->vm->lcm != LC_LCM_RUNNING && c->vm->lcm != LC_LCM_PAUSED)) {
		_cleanup_free_ char *state = lc_state_text(c->vm);

		return util_err_set(err, -EPERM,
		                    "it is %s; vnc needs ACTIVE/RUNNING or ACTIVE/PAUSED", state);
	}
	if (!c->vm->def.vnc_listen)
		return util_err_set(
		        err, -ENOTSUP,
		        "it has no vnc display: power it off, qvm update %s vnc=on, start it",
		        c->h.name);
	r = lc_cmd_qmp(c, err);
	if (r == 0)
		r = vnc_where(c, &where, err);
	if (r == 0)
		r = new_password(pw, err);
	if (r < 0)
		return r;
	args = json_pack("{s:s, s:s}", "protocol", "vnc", "password", pw);
	r = qmp_execute(c->qmp, "set_password", args, 0, NULL, err);
	if (r < 0)
		return r;
	snprintf(ttl, sizeof(ttl), "+%d", a->ttl_s);
	json_decref(args);
	args = json_pack("{s:s, s:s}", "protocol", "vnc", "time", ttl);
	r = util_fail_point("vnc-before-expire", err);
	if (r == 0)
		r = qmp_execute(c->qmp, "expire_password", args, 0, NULL, err);
	if (r < 0) {
		/* a password that never expires must not outlive the command:
		 * expire it now (on a dead connection QEMU is gone anyway) */
		_cleanup_json_ json_t *now_args =
		        json_pack("{s:s, s:s}", "protocol", "vnc", "time", "now");
		util_err ignored = { 0 };

		qmp_execute(c->qmp, "expire_password", now_args, 0, NULL, &ignored);
		return util_err_prefix(err, "cannot set when its password expires");
	}
	json_object_set_new(where, "vm", json_string(c->h.name));
	json_object_set_new(where, "password", json_string(pw));
	json_object_set_new(where, "expires_ms", json_integer(now + (int64_t)a->ttl_s * 1000));
	json_object_set_new(where, "ttl_s", json_integer(a->ttl_s));
	a->out = TAKE_PTR(where);
	return 0;
}

char *lc_vnc_socket_path(const char *root, uint64_t id)
{
	lc_paths p;
	char *path;

	lc_paths_init(&p, root, id);
	path = TAKE_PTR(p.vnc);
	lc_paths_clear(&p);
	return path;
}

static const lc_cmd_kind vnc_kind = { "open the vnc display of", LC_OP_COUNT, false, vnc_act };

int lc_vm_vnc(const char *root, const char *name, int ttl_s, const lc_run_opts *opts,
              json_t **ret_json, util_err *err)
{
	vnc_arg a = { ttl_s > 0 ? ttl_s : LC_VNC_TTL_S, NULL };
	int r = lc_cmd_run(&vnc_kind, root, name, opts, &a, err);

	if (r < 0) {
		json_decref(a.out);
		return r;
	}
	*ret_json = a.out;
	return 0;
}
