/* The host's side of qvm: its settings (`host set`), what runs at host
 * boot (the networks' bridges back, the VMs a host shutdown stopped back,
 * the once-per-boot autostart) and at host shutdown (every running VM shut
 * down or suspended, in parallel, then powered off hard past a timeout),
 * for the unit an init system runs. */
#include <inttypes.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "run.h"
#include "sched.h"

#define STOP_POLL_MS 50

/* ---- settings ----------------------------------------------------------------------------- */

static int check_pair(const char *pair, json_t *set, util_err *err)
{
	const char *eq = strchr(pair, '=');
	_cleanup_free_ char *key = eq ? util_xasprintf("%.*s", (int)(eq - pair), pair) : NULL;
	uint64_t bytes;

	if (!eq)
		return util_err_set(err, -EINVAL, "'%s' is not KEY=VALUE", pair);
	if (util_streq(key, "deploy-pending")) {
		if (!util_streq(eq + 1, "on") && !util_streq(eq + 1, "off"))
			return util_err_set(err, -EINVAL, "deploy-pending is on or off, not '%s'",
			                    eq + 1);
	} else if (util_streq(key, "memory-reserve")) {
		if (!util_streq(eq + 1, "0") && util_parse_size(eq + 1, &bytes, err) < 0)
			return util_err_prefix(err, "memory-reserve");
	} else {
		return util_err_set(err, -EINVAL,
		                    "'%s' is not a host setting: give deploy-pending=on|off or "
		                    "memory-reserve=SIZE",
		                    key);
	}
	json_object_set_new(set, key, json_string(eq + 1));
	return 0;
}

int lc_host_set(const char *root, char *const *pairs, size_t n, util_err *err)
{
	_cleanup_json_ json_t *set = json_object();

	for (size_t i = 0; i < n; i++) {
		int r = check_pair(pairs[i], set, err);

		if (r < 0)
			return r;
	}
	return lc_host_record(root, TAKE_PTR(set), err);
}

int lc_host_info(const char *root, json_t **ret, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *boot = NULL;
	json_t *h, *stopped;
	const char *s;
	util_err ignored = { 0 };
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	lc_boot_id(&boot, &ignored);
	h = lc_db_host(db);
	s = json_string_value(json_object_get(h, "memory-reserve"));
	stopped = json_object_get(h, "stopped");
	*ret = json_pack("{s:b, s:s, s:s?, s:O?, s:o}", "deploy_pending",
	                 util_streq(json_string_value(json_object_get(h, "deploy-pending")), "on"),
	                 "memory_reserve", s ? s : "256M", "boot_id", boot, "autostart_boot_id",
	                 json_object_get(h, "autostart-boot"), "stopped",
	                 stopped ? json_incref(stopped) : json_object());
	if (!json_object_get(*ret, "autostart_boot_id"))
		json_object_set_new(*ret, "autostart_boot_id", json_null());
	return 0;
}

/* ---- host boot ---------------------------------------------------------------------------- */

/* Make again the interfaces qvm made for network net (name) that are gone
 * (a host boot loses them), recording their new index as qvm's. */
static int net_restore(const char *root, const char *name, json_t *net, json_t *report,
                       util_err *err)
{
	_cleanup_json_ json_t *copy = json_deep_copy(net);
	const char *br = json_string_value(json_object_get(net, "bridge"));
	const char *vif = json_string_value(json_object_get(net, "vlan_if"));
	unsigned mtu = (unsigned)json_integer_value(json_object_get(net, "mtu"));
	net_link_info li;
	int ix = 0, r = 0;
	bool changed = false;

	if (json_is_true(json_object_get(net, "created_bridge")) &&
	    (r = net_link_get(br, &li, err)) == 0 && li.kind == NET_KIND_NONE) {
		r = net_bridge_create(br, mtu, &ix, err);
		json_object_set_new(copy, "bridge_ifindex", json_integer(ix));
		changed = r == 0;
	}
	if (r == 0 && vif && json_is_true(json_object_get(net, "created_vlan")) &&
	    (r = net_link_get(vif, &li, err)) == 0 && li.kind == NET_KIND_NONE) {
		r = net_vlan_add(vif, json_string_value(json_object_get(net, "uplink")),
		                 (unsigned)json_integer_value(json_object_get(net, "vlan")), mtu,
		                 &ix, err);
		if (r == 0)
			r = net_link_attach(vif, br, 0, err);
		json_object_set_new(copy, "vlan_ifindex", json_integer(ix));
		changed = changed || r == 0;
	}
	if (r == 0 && changed) {
		_cleanup_db_ lc_db *db = NULL;

		r = lc_db_open(root, LC_DB_WRITE, &db, err);
		if (r == 0)
			r = lc_db_append(db,
			                 json_pack("{s:s, s:I, s:O}", "type", "net", "id",
			                           (json_int_t)0, "net", copy),
			                 NULL, err);
		if (r == 0)
			json_array_append_new(json_object_get(report, "networks"),
			                      json_string(name));
	}
	if (r < 0)
		return util_err_prefix(err, "cannot make the interfaces of network '%s' again",
		                       name);
	return 0;
}

/* A copy of what pick finds in the journal (new), read in a short open. */
static int journal_copy(const char *root, json_t *(*pick)(lc_db *db), json_t **ret, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	*ret = json_deep_copy(pick(db));
	return 0;
}

static json_t *host_stopped(lc_db *db)
{
	return json_object_get(lc_db_host(db), "stopped");
}

static int nets_restore(const char *root, const lc_pass_opts *o, json_t *report, util_err *err)
{
	_cleanup_json_ json_t *nets = NULL;
	const char *name;
	json_t *net;
	int r = journal_copy(root, lc_db_networks, &nets, err);

	(void)o;
	if (r < 0)
		return r;
	json_object_foreach (nets, name, net) {
		r = net_restore(root, name, net, report, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The VMs the last host shutdown stopped that are autostart come back;
 * the record of them goes once each was tried. */
static int bring_back(const char *root, const lc_pass_opts *o, json_t *report, util_err *err)
{
	_cleanup_json_ json_t *stopped = NULL;
	const char *key;
	json_t *v;
	int r = journal_copy(root, host_stopped, &stopped, err);

	if (r < 0)
		return r;
	json_object_foreach (stopped, key, v) {
		_cleanup_db_ lc_db *db = NULL;
		lc_vm *vm;

		r = lc_load_vm(root, strtoull(key, NULL, 10), &db, &vm, err);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		/* a VM the host suspended comes back whatever its autostart:
		 * it was saved to be resumed */
		if (r == 0 && vm->state != LC_ACTIVE && vm->state != LC_DONE &&
		    (vm->def.autostart || vm->state == LC_SUSPENDED))
			r = lc_sched_start(root, vm, "host boot", o, report, err);
		lc_db_close(TAKE_PTR(db));
		if (r < 0)
			return r;
	}
	if (json_object_size(stopped) == 0)
		return 0;
	return lc_host_record(root, json_pack("{s:n}", "stopped"), err);
}

int lc_host_boot(const char *root, const lc_pass_opts *o, json_t **ret_report, util_err *err)
{
	static const lc_pass_step steps[] = { nets_restore, bring_back, lc_sched_autostart };

	return lc_pass_run(root, "host boot", steps, UTIL_ARRAY_SIZE(steps), o,
	                   json_pack("{s:n, s:[], s:[]}", "boot_id", "actions", "networks"),
	                   ret_report, err);
}

/* ---- host shutdown ------------------------------------------------------------------------ */

static bool running_vm(const lc_vm *vm)
{
	return vm->state == LC_ACTIVE;
}

/* The ACTIVE VMs (new object: id -> {"name", "how" they are stopped}, as
 * recorded). */
static int active_vms(const char *root, lc_host_stop_mode mode, json_t **ret, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	json_t *out;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	out = json_object();
	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);
		char key[24];

		if (!running_vm(vm))
			continue;
		snprintf(key, sizeof(key), "%" PRIu64, vm->id);
		json_object_set_new(
		        out, key,
		        json_pack("{s:s, s:s}", "name", vm->def.name, "how",
		                  mode == LC_HOST_STOP_SUSPEND ? "suspend" : "shutdown"));
	}
	*ret = out;
	return 0;
}

/* Ask one VM to stop: suspend (waits for the checkpoint), or the ACPI
 * power button without waiting (the supervisor kills it past the timeout:
 * hard_after). A VM that cannot be suspended is shut down instead. */
static void stop_one(const char *root, const char *id, const char *name, lc_host_stop_mode mode,
                     int timeout_s, const lc_pass_opts *o, json_t *report)
{
	lc_run_opts ro = { .lock_timeout_ms = o->lock_timeout_ms, .disk_roots = o->disk_roots };
	util_err e = { 0 }, ignored = { 0 };
	int r = -1;

	if (mode == LC_HOST_STOP_SUSPEND) {
		r = lc_vm_suspend(root, id, false, &ro, &e);
		lc_sched_note(root, strtoull(id, NULL, 10), name, "host shutdown (suspend)", r,
		              r < 0 ? e.msg : NULL, report, &ignored);
	}
	if (r == 0)
		return;
	ro.no_wait = true;
	ro.hard_after = true;
	ro.timeout_s = timeout_s;
	util_err_clear(&e);
	r = lc_vm_shutdown(root, id, false, &ro, &e);
	lc_sched_note(root, strtoull(id, NULL, 10), name, "host shutdown", r, r < 0 ? e.msg : NULL,
	              report, &ignored);
}

/* Suspends wait for QEMU to write each VM's memory: one child process a
 * VM, so that they are written in parallel; each child notes what it did
 * in its VM's history, and the report says where each VM ended. */
static void suspend_all(const char *root, json_t *ids, int timeout_s, const lc_pass_opts *o,
                        json_t *report)
{
	const char *key;
	json_t *v;

	fflush(NULL); /* nothing buffered is written twice */
	json_object_foreach (ids, key, v) {
		pid_t pid = fork();

		if (pid == 0) {
			stop_one(root, key, json_string_value(json_object_get(v, "name")),
			         LC_HOST_STOP_SUSPEND, timeout_s, o, NULL);
			_exit(0);
		}
		json_object_set_new(v, "pid", json_integer(pid));
	}
	json_object_foreach (ids, key, v) {
		_cleanup_db_ lc_db *db = NULL;
		pid_t pid = (pid_t)json_integer_value(json_object_get(v, "pid"));
		util_err e = { 0 };
		lc_vm *vm;
		int r = pid > 0 ? 0 : util_err_set(&e, -EAGAIN, "cannot fork: %s", strerror(errno));

		while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		json_object_del(v, "pid");
		if (r == 0)
			r = lc_load_vm(root, strtoull(key, NULL, 10), &db, &vm, &e);
		if (r == 0 && vm->state != LC_SUSPENDED)
			r = util_err_set(&e, -EAGAIN, "not suspended: %s%s%s (see its history)",
			                 lc_state_name(vm->state),
			                 vm->state == LC_ACTIVE ? "/" : "", lc_lcm_name(vm->lcm));
		json_array_append_new(json_object_get(report, "actions"),
		                      json_pack("{s:s, s:I, s:s, s:n, s:b, s:s, s:s?}", "vm",
		                                json_string_value(json_object_get(v, "name")),
		                                "vm_id", (json_int_t)strtoull(key, NULL, 10),
		                                "what", "host shutdown (suspend)", "entry", "late",
		                                0, "result", r < 0 ? "failed" : "ok", "error",
		                                r < 0 ? e.msg : NULL));
	}
}

/* Wait until none of ids is ACTIVE, up to deadline (monotonic ms). */
static bool wait_stopped(const char *root, json_t *ids, int64_t deadline)
{
	for (;;) {
		_cleanup_db_ lc_db *db = NULL;
		bool any = false;
		const char *key;
		json_t *v;
		util_err ignored = { 0 };

		if (lc_db_open(root, 0, &db, &ignored) < 0)
			return false;
		json_object_foreach (ids, key, v) {
			lc_vm *vm = lc_db_vm_by_id(db, strtoull(key, NULL, 10));

			any = any || (vm && vm->state == LC_ACTIVE);
		}
		if (!any)
			return true;
		if (util_now_ms() >= deadline)
			return false;
		lc_db_close(TAKE_PTR(db));
		nanosleep(&(struct timespec){ 0, STOP_POLL_MS * 1000000L }, NULL);
	}
}

static void kill_left(const char *root, json_t *ids, const lc_pass_opts *o, json_t *report)
{
	const char *key;
	json_t *v;

	json_object_foreach (ids, key, v) {
		lc_run_opts ro = { .lock_timeout_ms = o->lock_timeout_ms, .hard = true };
		_cleanup_db_ lc_db *db = NULL;
		util_err e = { 0 }, ignored = { 0 };
		lc_vm *vm;
		int r;

		if (lc_load_vm(root, strtoull(key, NULL, 10), &db, &vm, &ignored) < 0 ||
		    vm->state != LC_ACTIVE)
			continue;
		lc_db_close(TAKE_PTR(db));
		r = lc_vm_shutdown(root, key, false, &ro, &e);
		lc_sched_note(root, strtoull(key, NULL, 10),
		              json_string_value(json_object_get(v, "name")),
		              "host shutdown (hard poweroff)", r, r < 0 ? e.msg : NULL, report,
		              &ignored);
	}
}

int lc_host_shutdown(const char *root, lc_host_stop_mode mode, int timeout_s, const lc_pass_opts *o,
                     json_t **ret_report, util_err *err)
{
	_cleanup_json_ json_t *report = json_pack("{s:[]}", "actions");
	_cleanup_json_ json_t *ids = NULL;
	_cleanup_close_ int lock = -1;
	const char *key;
	json_t *v;
	int64_t deadline;
	int r = lc_pass_lock(root, o->pass_timeout_ms, &lock, err);

	if (r == 0)
		r = active_vms(root, mode, &ids, err);
	/* recorded first: a host that dies on the way still brings them back */
	if (r == 0 && json_object_size(ids))
		r = lc_host_record(root, json_pack("{s:O}", "stopped", ids), err);
	if (r < 0)
		return util_err_prefix(err, "host shutdown under '%s'", root);
	deadline = util_now_ms() + (int64_t)timeout_s * 1000;
	if (mode == LC_HOST_STOP_SUSPEND)
		suspend_all(root, ids, timeout_s, o, report);
	else
		json_object_foreach (ids, key, v)
			stop_one(root, key, json_string_value(json_object_get(v, "name")), mode,
			         timeout_s, o, report);
	if (!wait_stopped(root, ids, deadline + 5000))
		kill_left(root, ids, o, report);
	json_object_set_new(report, "stopped", json_deep_copy(ids));
	*ret_report = TAKE_PTR(report);
	return 0;
}
