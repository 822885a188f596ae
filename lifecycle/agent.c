/* The guest agent: qemu-guest-agent in the guest, on the virtio-serial
 * channel of a vm created with --guest-agent, reached through the socket
 * the supervisor made (ROOT/run/ID/agent.sock). Its protocol is QMP's
 * JSON without a greeting: each connection starts with guest-sync-
 * delimited, which flushes what an earlier client left; every call has a
 * timeout. */
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

#define AGENT_SYNC_MS  5000
#define AGENT_CALL_MS  10000
#define AGENT_LINE_MAX (8u << 20)
#define EXEC_POLL_MS   100
/* show asks in passing: it does not wait as long */
#define AGENT_SHOW_MS 2000
/* freezing waits for the guest's writes to reach its disks */
#define AGENT_FREEZE_MS 30000

typedef struct agent {
	int fd;
	const char *name; /* the vm's, for messages */
	char *buf;
	size_t len;
} agent;

static void agent_close(agent *a)
{
	if (a->fd >= 0)
		close(a->fd);
	free(a->buf);
	a->fd = -1;
	a->buf = NULL;
}

/* One line, without its end, waited for until deadline (a new string). */
static int read_line(agent *a, int64_t deadline, char **ret, util_err *err)
{
	for (;;) {
		char *nl = a->buf ? memchr(a->buf, '\n', a->len) : NULL;
		int64_t left = deadline - util_now_ms();
		struct pollfd p = { .fd = a->fd, .events = POLLIN };
		ssize_t n;

		if (nl) {
			*ret = util_xasprintf("%.*s", (int)(nl - a->buf), a->buf);
			a->len -= (size_t)(nl + 1 - a->buf);
			memmove(a->buf, nl + 1, a->len);
			return 0;
		}
		if (a->len >= AGENT_LINE_MAX)
			return util_err_set(
			        err, -EMSGSIZE,
			        "the guest agent of '%s' sent more than %u bytes in one reply",
			        a->name, AGENT_LINE_MAX);
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return util_err_set(
			        err, -ETIMEDOUT,
			        "no guest agent answered on '%s' in time: is qemu-guest-agent running in the guest?",
			        a->name);
		a->buf = util_xrealloc(a->buf, a->len + 65536 + 1);
		n = read(a->fd, a->buf + a->len, 65536);
		if (n == 0)
			return util_err_set(err, -EPIPE, "the guest agent channel of '%s' closed",
			                    a->name);
		if (n < 0 && errno != EINTR)
			return util_err_errno(err, -errno,
			                      "cannot read from the guest agent of '%s'", a->name);
		if (n > 0)
			a->len += (size_t)n;
	}
}

/* Send cmd (args stolen, may be NULL) and wait for its reply: *ret the
 * "return" value (new), or the agent's error. Lines that are not a reply
 * (the sync's 0xff, a stale answer) are skipped. */
static int agent_call(agent *a, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
                      util_err *err)
{
	_cleanup_json_ json_t *req = json_pack("{s:s}", "execute", cmd);
	_cleanup_free_ char *text = NULL;
	int64_t deadline = util_now_ms() + timeout_ms;
	int r;

	if (args)
		json_object_set_new(req, "arguments", args);
	text = json_dumps(req, JSON_COMPACT);
	/* never the arguments: a password may be among them */
	util_trace("agent '%s' <- %s", a->name, cmd);
	util_append(&text, "\n");
	r = util_write_all(a->fd, text, strlen(text));
	if (r < 0)
		return util_err_errno(err, r, "cannot write to the guest agent of '%s'", a->name);
	for (;;) {
		_cleanup_free_ char *line = NULL;
		_cleanup_json_ json_t *j = NULL;
		const char *p;
		json_t *e;

		r = read_line(a, deadline, &line, err);
		if (r < 0)
			return r;
		p = line + strspn(line, "\xff");
		if (!(j = json_loads(p, 0, NULL)) || !json_is_object(j))
			continue;
		if ((e = json_object_get(j, "error")))
			return util_err_set(err, -EREMOTEIO,
			                    "the guest agent of '%s' refused %s: %s", a->name, cmd,
			                    json_string_value(json_object_get(e, "desc")) ?: "?");
		if (json_object_get(j, "return")) {
			*ret = json_incref(json_object_get(j, "return"));
			return 0;
		}
	}
}

/* Connect and sync: a stale reply of an earlier client cannot be taken
 * for ours, as the id must come back. */
static int agent_open(const char *root, const lc_vm *vm, int sync_ms, agent *a, util_err *err)
{
	lc_paths p;
	uint32_t id = 0;
	json_t *back = NULL;
	int r;

	*a = (agent){ .fd = -1, .name = vm->def.name };
	if (!vm->def.guest_agent)
		return util_err_set(
		        err, -ENODEV,
		        "'%s' has no guest agent channel; give it one (qvm update %s guest-agent=yes) and start it again",
		        vm->def.name, vm->def.name);
	/* SNAPSHOT: the settling of a --quiesce snapshot thaws the guest */
	if (vm->state != LC_ACTIVE || (vm->lcm != LC_LCM_RUNNING && vm->lcm != LC_LCM_SNAPSHOT))
		return util_err_set(err, -EPERM,
		                    "'%s' is not ACTIVE/RUNNING: no guest agent to ask",
		                    vm->def.name);
	lc_paths_init(&p, root, vm->id);
	r = util_unix_connect(p.agent, &a->fd, err);
	lc_paths_clear(&p);
	if (r == 0)
		r = util_random_bytes(&id, sizeof(id), err);
	id &= 0x7fffffff;
	while (r == 0) {
		r = agent_call(a, "guest-sync-delimited", json_pack("{s:I}", "id", (json_int_t)id),
		               sync_ms, &back, err);
		if (r == 0 && json_integer_value(back) == (json_int_t)id)
			break;
		json_decref(TAKE_PTR(back));
	}
	json_decref(back);
	if (r < 0)
		agent_close(a);
	return r;
}

/* ---- exec ------------------------------------------------------------------------- */

static int b64(int c)
{
	const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(abc, c) : NULL;

	return p ? (int)(p - abc) : -1;
}

/* base64 text into a new string (invalid characters end it). */
static json_t *decoded(json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = s ? strlen(s) : 0, o = 0;
	char *out = util_xmalloc(n * 3 / 4 + 4);
	unsigned acc = 0;
	int bits = 0;
	json_t *j;

	for (size_t i = 0; i < n && b64(s[i]) >= 0; i++) {
		acc = (acc << 6) | (unsigned)b64(s[i]);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	j = json_stringn_nocheck(out, o);
	free(out);
	return j;
}

int lc_vm_exec(const char *root, const char *name, char *const *argv, int timeout_s,
               json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *args = json_array(), *started = NULL;
	agent a = { .fd = -1 };
	int64_t deadline = util_now_ms() + (int64_t)timeout_s * 1000;
	json_int_t pid;
	lc_vm *vm;
	int r = lc_db_open(root, 0, &db, err);

	if (r == 0)
		r = lc_db_find(db, name, &vm, err);
	if (r == 0)
		r = agent_open(root, vm, AGENT_SYNC_MS, &a, err);
	if (r < 0)
		return util_err_prefix(err, "cannot exec in '%s'", name);
	for (size_t i = 1; argv[i]; i++)
		json_array_append_new(args, json_string(argv[i]));
	r = agent_call(
	        &a, "guest-exec",
	        json_pack("{s:s, s:O, s:b}", "path", argv[0], "arg", args, "capture-output", true),
	        AGENT_CALL_MS, &started, err);
	pid = json_integer_value(json_object_get(started, "pid"));
	while (r == 0) {
		_cleanup_json_ json_t *st = NULL;

		r = agent_call(&a, "guest-exec-status", json_pack("{s:I}", "pid", pid),
		               AGENT_CALL_MS, &st, err);
		if (r == 0 && json_is_true(json_object_get(st, "exited"))) {
			*ret_json = json_pack(
			        "{s:O?, s:O?, s:o, s:o, s:b}", "exitcode",
			        json_object_get(st, "exitcode"), "signal",
			        json_object_get(st, "signal"), "stdout",
			        decoded(json_object_get(st, "out-data")), "stderr",
			        decoded(json_object_get(st, "err-data")), "truncated",
			        json_is_true(json_object_get(st, "out-truncated")) ||
			                json_is_true(json_object_get(st, "err-truncated")));
			break;
		}
		if (r == 0 && util_now_ms() >= deadline)
			r = util_err_set(
			        err, -ETIMEDOUT,
			        "'%s' did not end within %d s; it goes on in the guest (pid %lld)",
			        argv[0], timeout_s, (long long)pid);
		/* the agent has no event for an end: it is asked again */
		if (r == 0)
			usleep(EXEC_POLL_MS * 1000);
	}
	agent_close(&a);
	return r < 0 ? util_err_prefix(err, "cannot exec in '%s'", name) : 0;
}

/* ---- set-password ---------------------------------------------------------------- */

static char *base64(const char *s, size_t n)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = util_xmalloc(n / 3 * 4 + 5), *o = out;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)(unsigned char)s[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)(unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		*o++ = abc[(v >> 18) & 63];
		*o++ = abc[(v >> 12) & 63];
		*o++ = i + 1 < n ? abc[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? abc[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

int lc_vm_set_password(const char *root, const char *name, const char *user, const char *password,
                       util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *back = NULL;
	char *enc;
	agent a = { .fd = -1 };
	lc_vm *vm;
	int r = util_validate_printable(password, "the password", err);

	if (r == 0 && !*password)
		r = util_err_set(err, -EINVAL, "the password is empty");
	if (r == 0)
		r = util_validate_name(user, "user name", err);
	if (r == 0)
		r = lc_db_open(root, 0, &db, err);
	if (r == 0)
		r = lc_db_find(db, name, &vm, err);
	if (r == 0)
		r = agent_open(root, vm, AGENT_SYNC_MS, &a, err);
	if (r < 0)
		return util_err_prefix(err, "cannot set the password of '%s' in '%s'", user, name);
	enc = base64(password, strlen(password));
	r = agent_call(
	        &a, "guest-set-user-password",
	        json_pack("{s:s, s:s, s:b}", "username", user, "password", enc, "crypted", false),
	        AGENT_CALL_MS, &back, err);
	/* the password stays in no buffer of ours */
	explicit_bzero(enc, strlen(enc));
	free(enc);
	agent_close(&a);
	return r < 0 ? util_err_prefix(err, "cannot set the password of '%s' in '%s'", user, name)
	             : 0;
}

/* ---- interfaces ---------------------------------------------------------------- */

int lc_vm_guest_info(const char *root, const lc_vm *vm, json_t **ret_json, util_err *err)
{
	_cleanup_json_ json_t *ifs = NULL, *out = json_array();
	agent a;
	json_t *i, *ip;
	size_t k, n;
	int r = agent_open(root, vm, AGENT_SHOW_MS, &a, err);

	if (r == 0)
		r = agent_call(&a, "guest-network-get-interfaces", NULL, AGENT_SHOW_MS, &ifs, err);
	agent_close(&a);
	if (r < 0)
		return r;
	json_array_foreach (ifs, k, i) {
		json_t *addrs = json_array();

		json_array_foreach (json_object_get(i, "ip-addresses"), n, ip)
			json_array_append_new(addrs,
			                      json_pack("{s:O?, s:O?, s:O?}", "type",
			                                json_object_get(ip, "ip-address-type"),
			                                "ip", json_object_get(ip, "ip-address"),
			                                "prefix", json_object_get(ip, "prefix")));
		json_array_append_new(out, json_pack("{s:O?, s:O?, s:o}", "name",
		                                     json_object_get(i, "name"), "mac",
		                                     json_object_get(i, "hardware-address"),
		                                     "addresses", addrs));
	}
	*ret_json = json_pack("{s:I, s:O}", "read_ms", (json_int_t)util_realtime_ms(), "interfaces",
	                      out);
	return 0;
}

/* ---- quiesce ------------------------------------------------------------------- */

static int freeze_call(const char *root, const lc_vm *vm, const char *cmd, util_err *err)
{
	_cleanup_json_ json_t *back = NULL;
	agent a;
	int r = agent_open(root, vm, AGENT_SYNC_MS, &a, err);

	if (r == 0)
		r = agent_call(&a, cmd, NULL, AGENT_FREEZE_MS, &back, err);
	agent_close(&a);
	return r;
}

int lc_vm_freeze(const char *root, const lc_vm *vm, util_err *err)
{
	util_err ignored = { 0 };
	int r = freeze_call(root, vm, "guest-fsfreeze-freeze", err);

	/* a freeze that failed part way may have frozen some: thaw them */
	if (r < 0)
		freeze_call(root, vm, "guest-fsfreeze-thaw", &ignored);
	return r < 0 ? util_err_prefix(err, "cannot quiesce '%s'", vm->def.name) : 0;
}

int lc_vm_thaw(const char *root, const lc_vm *vm, util_err *err)
{
	int r = freeze_call(root, vm, "guest-fsfreeze-thaw", err);

	return r < 0 ? util_err_prefix(err, "cannot thaw the filesystems of '%s'", vm->def.name)
	             : 0;
}
