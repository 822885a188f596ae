/* Commands that look: list, show, history, argv, host. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The history rows show prints (the newest). */
#define SHOW_HISTORY_ROWS 10

static int open_named(cli_ctx *ctx, int argc, char **argv, lc_db **ret_db, lc_vm **ret_vm,
                      util_err *err)
{
	char **ops;
	int r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, NULL, err);

	return r < 0 ? r : cli_open_vm_to_read(ctx, ops[0], ret_db, ret_vm, err);
}

/* An ACTIVE VM nothing may be driving: its supervisor is dead, or it is in
 * a shutdown, hotplug or snapshot its qvm may have abandoned. */
static bool may_be_ghost(const lc_vm *vm)
{
	/* SAVE, or a checkpoint still recorded once it runs: a suspend or
	 * resume its qvm may have abandoned */
	return vm->state == LC_ACTIVE &&
	       (!lc_vm_supervised(vm) || vm->lcm == LC_LCM_SHUTDOWN || vm->lcm == LC_LCM_HOTPLUG ||
	        vm->lcm == LC_LCM_SNAPSHOT || vm->lcm == LC_LCM_SAVE ||
	        (vm->checkpoint && vm->lcm != LC_LCM_BOOT));
}

int cli_open_vm_to_read(cli_ctx *ctx, const char *name_or_id, lc_db **ret_db, lc_vm **ret_vm,
                        util_err *err)
{
	lc_db *db = NULL;
	lc_vm *vm = NULL;
	int r = lc_db_open_vm(ctx->root, name_or_id, &db, &vm, err);

	if (r == 0 && may_be_ghost(vm)) {
		/* settle it as list does, so that no read shows a ghost (with
		 * the read closed: the settling writes) */
		_cleanup_free_ char *name = util_xstrdup(vm->def.name);
		uint64_t id = vm->id;
		util_err rerr = { 0 };
		char idtext[24];

		snprintf(idtext, sizeof(idtext), "%" PRIu64, id);
		lc_db_close(db);
		db = NULL;
		if (lc_vm_reconcile(ctx->root, id, &rerr) < 0 && ctx->verbosity >= 0)
			fprintf(stderr, "qvm: cannot reconcile '%s': %s\n", name, rerr.msg);
		r = lc_db_open_vm(ctx->root, idtext, &db, &vm, err);
	}
	if (r < 0) {
		lc_db_close(db);
		return r;
	}
	*ret_db = db;
	*ret_vm = vm;
	return 0;
}

static int64_t uptime_ms(const lc_vm *vm)
{
	if (vm->state != LC_ACTIVE || vm->started_ms <= 0)
		return 0;
	return util_realtime_ms() - vm->started_ms;
}

/* ACTIVE VMs whose supervisor died (kill -9, a crashed host controller):
 * adopt their QEMU or settle them, so list never shows a ghost. */
bool cli_reconcile_dead(cli_ctx *ctx, lc_db *db)
{
	bool changed = false;

	for (size_t i = 0; i < lc_db_count(db); i++) {
		const lc_vm *vm = lc_db_vm_at(db, i);
		util_err err = { 0 };
		int r;

		/* a dead supervisor, or a shutdown, hotplug or snapshot its qvm
		 * may have abandoned */
		if (!may_be_ghost(vm))
			continue;
		r = lc_vm_reconcile(ctx->root, vm->id, &err);
		if (r < 0 && ctx->verbosity >= 0)
			fprintf(stderr, "qvm: cannot reconcile '%s': %s\n", vm->def.name, err.msg);
		changed = changed || r > 0;
	}
	return changed;
}

/* ---- list ------------------------------------------------------------------- */

int cli_cmd_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' },
		                              { NULL, 0, NULL, 0 } };
	_cleanup_db_ lc_db *db = NULL;
	json_t *out = NULL;
	bool all = false;
	cli_parser p;
	const char *arg;
	char **ops;
	int nops, r;

	cli_parser_init(&p, ctx, argc, argv, opts, "a");
	while ((r = cli_parser_next(&p, &arg, err)) > 0)
		all = true;
	if (r == 0)
		r = cli_parser_operands(&p, 0, 0, &ops, &nops, err);
	cli_parser_done(&p);
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_SUMMARY, &db, err);
	if (r < 0)
		return r;
	if (cli_reconcile_dead(ctx, db)) {
		/* something changed under a dead supervisor: show the new truth */
		lc_db_close(TAKE_PTR(db));
		r = cli_open_db(ctx, LC_DB_SUMMARY, &db, err);
		if (r < 0)
			return r;
	}
	if (ctx->json)
		out = json_array();
	else
		printf("%5s %-20s %-4s %5s %6s %8s\n", "ID", "NAME", "STAT", "CPU", "MEM",
		       "UPTIME");
	for (size_t i = 0; i < lc_db_count(db); i++) {
		const lc_vm *vm = lc_db_vm_at(db, i);
		char mem[16], up[16], cpu[16] = "-";
		double pct = 0;
		uint64_t rss = 0;
		bool running = vm->state == LC_ACTIVE && lc_vm_usage(vm, &pct, &rss, NULL) == 0;

		if (vm->state == LC_DONE && !all)
			continue;
		if (running)
			snprintf(cpu, sizeof(cpu), "%.0f%%", pct);
		if (out) {
			json_t *j =
			        json_pack("{s:I, s:s, s:s, s:o, s:s, s:I, s:i, s:I}", "id",
			                  (json_int_t)vm->id, "name", vm->def.name, "state",
			                  lc_state_name(vm->state), "lcm", lc_lcm_json(vm->lcm),
			                  "short", lc_short_name(vm->state, vm->lcm), "memory",
			                  (json_int_t)vm->def.memory, "vcpus", (int)vm->def.vcpus,
			                  "uptime_ms", (json_int_t)uptime_ms(vm));

			json_object_set_new(j, "cpu_percent",
			                    running ? json_real(pct) : json_null());
			json_object_set_new(j, "rss",
			                    running ? json_integer((json_int_t)rss) : json_null());
			json_array_append_new(out, j);
			continue;
		}
		printf("%5llu %-20s %-4s %5s %6s %8s\n", (unsigned long long)vm->id, vm->def.name,
		       lc_short_name(vm->state, vm->lcm), cpu,
		       util_format_size(vm->def.memory, mem, sizeof(mem)),
		       cli_format_duration(uptime_ms(vm), up, sizeof(up)));
	}
	*ret_json = out;
	return 0;
}

/* ---- show ------------------------------------------------------------------- */

static void print_map(const char *title, json_t *map)
{
	const char *k;
	json_t *v;

	_cleanup_free_ char *line = NULL;

	if (json_object_size(map) == 0)
		return;
	json_object_foreach (map, k, v)
		util_append(&line, "%s%s=%s", line ? " " : "", k, json_string_value(v));
	cli_print_field(title, "%s", line);
}

static void print_opt(const char *title, const char *value)
{
	if (value)
		cli_print_field(title, "%s", value);
}

/* The STATE column of a history record: STATE[/LCM], or "-" for a record
 * that changes no state. */
static void history_state(json_t *rec, char *buf, size_t len)
{
	const char *state = json_string_value(json_object_get(rec, "state"));
	const char *lcm = json_string_value(json_object_get(rec, "lcm"));

	snprintf(buf, len, "%s%s%s", state ? state : "-", lcm ? "/" : "", lcm ? lcm : "");
}

/* History records from index from on, in columns as wide as their
 * widest value: SEQ TIME TYPE STATE DETAIL (the detail, or the reason and
 * error of a state change). */
static void print_history(json_t *history, size_t from)
{
	int type_w = 4, state_w = 5;
	char state[64], when[32];
	size_t i;
	json_t *rec;

	json_array_foreach (history, i, rec) {
		int n = (int)strlen(json_string_value(json_object_get(rec, "type")) ?: "");

		if (i < from)
			continue;
		history_state(rec, state, sizeof(state));
		type_w = n > type_w ? n : type_w;
		state_w = (int)strlen(state) > state_w ? (int)strlen(state) : state_w;
	}
	printf("%6s %-19s %-*s %-*s %s\n", "SEQ", "TIME", type_w, "TYPE", state_w, "STATE",
	       "DETAIL");
	json_array_foreach (history, i, rec) {
		const char *detail = json_string_value(json_object_get(rec, "detail"));
		const char *reason = json_string_value(json_object_get(rec, "reason"));
		const char *error = json_string_value(json_object_get(rec, "error"));

		if (i < from)
			continue;
		history_state(rec, state, sizeof(state));
		printf("%6lld %-19s %-*s %-*s %s%s%s\n",
		       (long long)json_integer_value(json_object_get(rec, "seq")),
		       cli_format_time(json_integer_value(json_object_get(rec, "time_ms")), when,
		                       sizeof(when)),
		       type_w, json_string_value(json_object_get(rec, "type")), state_w, state,
		       detail   ? detail
		       : reason ? reason
		                : "",
		       error ? "; error: " : "", error ? error : "");
	}
}

/* show's DISKS section; a section with no rows says so rather than
 * showing bare headers (as NICS does). */
static void print_disks(const lc_vmdef *def)
{
	char b[32];

	if (def->n_disks == 0)
		printf("\nDISKS       none\n");
	else
		printf("\nDISKS\n%3s %-6s %-6s %8s %-9s %s\n", "ID", "BUS", "FORMAT", "SIZE",
		       "MODE", "PATH");
	for (size_t i = 0; i < def->n_disks; i++) {
		const lc_disk *d = &def->disks[i];

		printf("%3u %-6s %-6s %8s %-9s %s\n", d->id, lc_bus_name(d->bus), d->format,
		       d->size ? util_format_size(d->size, b, sizeof(b)) : "-",
		       d->readonly ? "ro" : "rw", d->path ? d->path : "-");
		if (d->backing)
			printf("%3s %-6s %-6s %8s %-9s backing: %s (%s)\n", "", "", "", "", "",
			       d->backing, d->backing_format);
	}
}

static void print_nics(lc_db *db, const lc_vm *vm)
{
	_cleanup_json_ json_t *nics = lc_vm_nics_json(db, vm);
	json_t *n;
	size_t i;

	if (json_array_size(nics) == 0)
		printf("\nNICS        none\n");
	else
		printf("\nNICS\n%3s %-16s %-15s %-15s %-17s %-15s %s\n", "ID", "NETWORK", "BRIDGE",
		       "TAP", "MAC", "IP", "MODEL");

	json_array_foreach (nics, i, n) {
		const char *v[6] = { "network", "bridge", "tap", "mac", "ip", "model" };

		for (size_t k = 0; k < 6; k++) {
			v[k] = json_string_value(json_object_get(n, v[k]));
			if (!v[k])
				v[k] = "-";
		}
		printf("%3lld %-16s %-15s %-15s %-17s %-15s %s\n",
		       (long long)json_integer_value(json_object_get(n, "id")), v[0], v[1], v[2],
		       v[3], v[4], v[5]);
	}
}

/* "lo 127.0.0.1 ::1, eth0 10.0.0.5": what the guest agent reported. */
static void print_guest_ips(json_t *guest)
{
	_cleanup_free_ char *text = NULL;
	json_t *i, *ip;
	size_t k, n;

	if (json_object_get(guest, "error")) {
		cli_print_field("GUEST-IPS", "- (no guest agent answered)");
		return;
	}
	json_array_foreach (json_object_get(guest, "interfaces"), k, i) {
		util_append(&text, "%s%s", text ? ", " : "",
		            json_string_value(json_object_get(i, "name")) ?: "?");
		json_array_foreach (json_object_get(i, "addresses"), n, ip)
			util_append(&text, " %s",
			            json_string_value(json_object_get(ip, "ip")) ?: "?");
	}
	cli_print_field("GUEST-IPS", "%s", text ? text : "-");
}

/* ---- a schedule, as show and schedule-list print it ------------------- */

/* "  12  poweroff --hard   next 2026-12-08 01:00:00 every 1d  last ok (late)" */
static void print_schedule_entry(json_t *e, bool with_vm)
{
	char a[32], b[32];
	json_t *last = json_object_get(e, "last"), *v;
	_cleanup_free_ char *what = util_xstrdup(json_string_value(json_object_get(e, "action")));
	const char *k;
	size_t i;

	json_array_foreach (json_object_get(e, "args"), i, v)
		util_append(&what, " %s", json_string_value(v));
	json_object_foreach (json_object_get(e, "opts"), k, v) {
		util_append(&what, " --%s", k);
		if (json_is_integer(v))
			util_append(&what, " %lld", (long long)json_integer_value(v));
	}
	for (char *p = what; *p; p++)
		*p = *p == '_' ? '-' : *p;
	if (with_vm)
		printf("%-12s ", json_string_value(json_object_get(e, "vm")));
	printf("%-4lld %-28s %-19s %-8s %s%s%s%s\n",
	       (long long)json_integer_value(json_object_get(e, "id")), what,
	       json_integer_value(json_object_get(e, "next_ms"))
	               ? cli_format_time(json_integer_value(json_object_get(e, "next_ms")), a,
	                                 sizeof(a))
	               : "done",
	       json_integer_value(json_object_get(e, "every_ms"))
	               ? cli_format_duration(json_integer_value(json_object_get(e, "every_ms")), b,
	                                     sizeof(b))
	               : "-",
	       json_is_object(last) ? json_string_value(json_object_get(last, "result")) : "-",
	       json_is_true(json_object_get(last, "late")) ? " (late)" : "",
	       json_string_value(json_object_get(last, "error")) ? ": " : "",
	       json_string_value(json_object_get(last, "error")) ?: "");
}

void cli_print_schedule_entries(json_t *entries, bool with_vm)
{
	json_t *e;
	size_t i;

	if (with_vm)
		printf("%-12s ", "VM");
	printf("%-4s %-28s %-19s %-8s %s\n", "ID", "ACTION", "NEXT", "EVERY", "LAST");
	json_array_foreach (entries, i, e)
		print_schedule_entry(e, with_vm);
}

static void print_schedule(const lc_vm *vm)
{
	_cleanup_json_ json_t *entries = lc_sched_json(vm);

	if (!json_array_size(entries))
		return;
	printf("\nSCHEDULE\n");
	cli_print_schedule_entries(entries, false);
}

int cli_cmd_show(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *history = NULL, *guest = NULL;
	util_err gerr = { 0 };
	const lc_vmdef *def;
	char a[32];
	lc_vm *vm;
	size_t from;
	int r = open_named(ctx, argc, argv, &db, &vm, err);

	/* --json carries the whole history, the text its last rows */
	if (r == 0 && ctx->json)
		r = lc_vm_history(db, vm, &history, err);
	else if (r == 0)
		r = lc_vm_history_tail(db, vm, SHOW_HISTORY_ROWS, &history, err);
	if (r < 0)
		return r;
	if (vm->def.guest_agent && vm->state == LC_ACTIVE && vm->lcm == LC_LCM_RUNNING &&
	    lc_vm_guest_info(ctx->root, vm, &guest, &gerr) < 0)
		guest = json_pack("{s:s}", "error", gerr.msg);
	if (ctx->json) {
		json_t *j = lc_vm_to_json(vm);

		json_object_set_new(j, "nics", lc_vm_nics_json(db, vm));
		if (guest)
			json_object_set(j, "guest", guest);
		json_object_set(j, "history", history);
		*ret_json = j;
		return 0;
	}
	def = &vm->def;
	cli_print_field("ID", "%llu", (unsigned long long)vm->id);
	cli_print_field("NAME", "%s", def->name);
	if (vm->state == LC_ACTIVE)
		cli_print_field("STATE", "ACTIVE/%s", lc_lcm_name(vm->lcm));
	else
		cli_print_field("STATE", "%s", lc_state_name(vm->state));
	cli_print_field("SINCE", "%s", cli_format_time(vm->state_ms, a, sizeof(a)));
	print_opt("REASON", vm->reason);
	print_opt("LAST ERROR", vm->last_error);
	cli_print_field("UUID", "%s", def->uuid ? def->uuid : "-");
	cli_print_field("CREATED", "%s", cli_format_time(vm->created_ms, a, sizeof(a)));
	cli_print_field("UPTIME", "%s", cli_format_duration(uptime_ms(vm), a, sizeof(a)));
	cli_print_field("MEMORY", "%s", util_format_size(def->memory, a, sizeof(a)));
	cli_print_field("VCPUS", "%u", def->vcpus);
	if (guest)
		print_guest_ips(guest);
	cli_print_field("MACHINE", "%s", lc_machine_name(def->machine));
	/* while it runs: what QEMU runs with, auto resolved */
	if (vm->state == LC_ACTIVE && vm->accel && def->accel == LC_ACCEL_AUTO)
		cli_print_field("ACCEL", "%s (auto)", vm->accel);
	else if (vm->state == LC_ACTIVE && vm->accel)
		cli_print_field("ACCEL", "%s", vm->accel);
	else
		cli_print_field("ACCEL", "%s", lc_accel_name(def->accel));
	cli_print_field("RESTART", "%s", lc_restart_name(def->restart));
	cli_print_field("AUTOSTART", "%s", def->autostart ? "yes" : "no");
	print_opt("KERNEL", def->kernel);
	print_opt("INITRD", def->initrd);
	print_opt("APPEND", def->append);
	print_opt("CDROM", def->cdrom);
	print_opt("CLOUD-INIT", def->ci_user_data);
	print_map("LABELS", def->labels);
	print_map("USER", def->user);

	print_disks(def);
	print_nics(db, vm);
	if (json_array_size(json_object_get(vm->snapshots, "items"))) {
		_cleanup_json_ json_t *snaps = lc_vm_snapshots_json(vm);

		printf("\nSNAPSHOTS (at most %u)\n", lc_vm_snapshots_max(vm));
		cli_print_snapshots(json_object_get(snaps, "snapshots"),
		                    json_integer_value(json_object_get(snaps, "current")));
	}
	print_schedule(vm);
	printf("\nHISTORY (latest %d)\n", SHOW_HISTORY_ROWS);
	from = json_array_size(history) > SHOW_HISTORY_ROWS
	               ? json_array_size(history) - SHOW_HISTORY_ROWS
	               : 0;
	print_history(history, from);
	return 0;
}

int cli_cmd_history(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	json_t *history = NULL;
	lc_vm *vm;
	int r = open_named(ctx, argc, argv, &db, &vm, err);

	if (r == 0)
		r = lc_vm_history(db, vm, &history, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		*ret_json = history;
		return 0;
	}
	print_history(history, 0);
	json_decref(history);
	return 0;
}

/* ---- argv ------------------------------------------------------------------- */

static int qemu_binary(char **ret, util_err *err)
{
	const char *env = getenv("QVM_QEMU");

	return util_find_program(env && *env ? env : "qemu-system-x86_64", ret, err);
}

/* Print an argument so a human can paste it into a shell. */
static void print_quoted(const char *s)
{
	if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	                    "-_=,./:") == strlen(s)) {
		fputs(s, stdout);
		return;
	}
	putchar('\'');
	for (; *s; s++)
		if (*s == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*s);
	putchar('\'');
}

int cli_cmd_argv(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *qemu = NULL, *log = NULL, *seed = NULL, *vnc = NULL;
	_cleanup_free_ int *taps = NULL;
	_cleanup_strv_ char **args = NULL;
	lc_qemu_runtime rt = { 0 };
	lc_vm *vm;
	int r = open_named(ctx, argc, argv, &db, &vm, err);

	if (r == 0)
		r = qemu_binary(&qemu, err);
	if (r < 0)
		return r;
	r = lc_accel_resolve(vm->def.accel, &rt.accel, NULL, err);
	if (r < 0)
		return util_err_prefix(err, "cannot choose the accelerator of '%s'", vm->def.name);
	taps = util_xcalloc(vm->def.n_nics + 1, sizeof(int));
	for (size_t i = 0; i < vm->def.n_nics; i++)
		taps[i] = 6 + (int)i;
	log = util_xasprintf("%s/vms/%llu/console.log", ctx->root, (unsigned long long)vm->id);
	/* the fds QEMU will inherit, as start numbers them */
	rt.qemu_binary = qemu;
	rt.qmp_event_fd = 3;
	rt.qmp_command_fd = 4;
	rt.serial_fd = 5;
	rt.agent_fd = 6 + (int)vm->def.n_nics;
	rt.serial_log = log;
	rt.vnc_socket = vnc = lc_vnc_socket_path(ctx->root, vm->id);
	rt.tap_fds = taps;
	rt.n_tap_fds = vm->def.n_nics;
	rt.sandbox = true;
	/* start builds the seed of a VM with cloud-init files */
	if (vm->def.ci_user_data)
		rt.seed_path = seed = lc_seed_path(ctx->root, vm->id);
	r = lc_qemu_argv(vm, &rt, &args, err);
	if (r < 0)
		return r;
	if (ctx->json) {
		json_t *arr = json_array();

		for (char **a = args; *a; a++)
			json_array_append_new(arr, json_string(*a));
		*ret_json = arr;
		return 0;
	}
	for (char **a = args; *a; a++) {
		if (a != args)
			fputs(a[-1][0] == '-' ? " " : " \\\n  ", stdout);
		print_quoted(*a);
	}
	putchar('\n');
	return 0;
}

/* ---- host ------------------------------------------------------------------- */

uint64_t cli_meminfo_kib(const char *key)
{
	_cleanup_free_ char *info = NULL;
	const char *p;

	if (util_read_file("/proc/meminfo", 1 << 20, &info, NULL, NULL) < 0)
		return 0;
	p = strstr(info, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

int cli_cmd_host(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *qemu = NULL;
	const char *reason = NULL;
	uint64_t total = cli_meminfo_kib("MemTotal:") << 10,
	         avail = cli_meminfo_kib("MemAvailable:") << 10;
	uint64_t committed = 0;
	size_t defined = 0, active = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	lc_accel accel;
	char **ops;
	char a[16], b[16], c[16];
	util_err qerr = { 0 };
	int r = cli_parse_operands(ctx, argc, argv, 0, 0, &ops, NULL, err);

	if (r == 0)
		r = cli_open_db(ctx, LC_DB_SUMMARY, &db, err);
	if (r == 0)
		r = lc_accel_resolve(LC_ACCEL_AUTO, &accel, &reason, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < lc_db_count(db); i++) {
		const lc_vm *vm = lc_db_vm_at(db, i);

		if (vm->state == LC_DONE)
			continue;
		defined++;
		if (vm->state == LC_ACTIVE)
			active++;
		if (lc_vm_holds_host(vm))
			committed += vm->def.memory;
	}
	qemu_binary(&qemu, &qerr);
	if (ctx->json) {
		*ret_json = json_pack("{s:s, s:s, s:o, s:i, s:I, s:I, s:I, s:I, s:I, s:s}", "accel",
		                      lc_accel_name(accel), "accel_reason", reason, "qemu",
		                      qemu ? json_string(qemu) : json_null(), "cpus", (int)cpus,
		                      "memory", (json_int_t)total, "memory_available",
		                      (json_int_t)avail, "memory_committed", (json_int_t)committed,
		                      "vms", (json_int_t)defined, "vms_active", (json_int_t)active,
		                      "root", ctx->root);
		return 0;
	}
	cli_print_field("ACCEL", "%s (%s)", lc_accel_name(accel), reason);
	cli_print_field("QEMU", "%s", qemu ? qemu : qerr.msg);
	cli_print_field("CPUS", "%ld", cpus);
	cli_print_field(
	        "MEMORY",
	        "%s total, %s available, %s committed to vms (active, suspended, powered off)",
	        util_format_size(total & ~((1ull << 20) - 1), a, sizeof(a)),
	        util_format_size(avail & ~((1ull << 20) - 1), b, sizeof(b)),
	        util_format_size(committed, c, sizeof(c)));
	cli_print_field("VMS", "%zu defined, %zu active", defined, active);
	cli_print_field("ROOT", "%s", ctx->root);
	return 0;
}
