/* Commands that change definitions: create, dump, update, hold, release,
 * delete. */
#include <limits.h>
#include <string.h>

#include "cli.h"

static int set_path(char **slot, const char *arg, const char *what, util_err *err)
{
	free(*slot);
	*slot = NULL;
	return cli_absolute_path(arg, what, slot, err);
}

int cli_parse_memory(const char *arg, uint64_t *ret, util_err *err)
{
	_cleanup_free_ char *withunit = NULL;

	/* a bare number is MiB, as for QEMU's -m and Proxmox's qm */
	if (*arg && strspn(arg, "0123456789") == strlen(arg))
		arg = withunit = util_xasprintf("%sM", arg);
	if (util_parse_size(arg, ret, err) < 0)
		return cli_usage(err, "invalid --memory: %s", err->msg);
	return 0;
}

static int parse_cloud_init(lc_vmdef *def, const char *spec, util_err *err)
{
	_cleanup_free_ char *copy = util_xstrdup(spec);
	char *save = NULL;

	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		char **slot;

		if (!eq)
			return cli_usage(err, "--cloud-init: '%s' is not KEY=FILE", tok);
		*eq = '\0';
		if (!strcmp(tok, "user-data"))
			slot = &def->ci_user_data;
		else if (!strcmp(tok, "meta-data"))
			slot = &def->ci_meta_data;
		else if (!strcmp(tok, "network-config"))
			slot = &def->ci_network_config;
		else
			return cli_usage(
			        err,
			        "--cloud-init: unknown key '%s' (use user-data, meta-data, network-config)",
			        tok);
		if (set_path(slot, eq + 1, tok, err) < 0)
			return err->code;
	}
	return 0;
}

static int add_label(lc_vmdef *def, const char *kv, util_err *err)
{
	_cleanup_free_ char *key = util_xstrdup(kv);
	char *eq = strchr(key, '=');

	if (!eq)
		return cli_usage(err, "--label '%s' is not KEY=VALUE", kv);
	*eq = '\0';
	json_object_set_new(def->labels, key, json_string(eq + 1));
	return 0;
}

int cli_read_definition(const char *file, const char *name, lc_vmdef *def, util_err *err)
{
	_cleanup_json_ json_t *j = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	json_error_t jerr;

	/* opened here, so that a missing file says so (jansson's own open
	 * reports it as a parse error at line -1) */
	if (strcmp(file, "-") && !(f = fopen(file, "re")))
		return util_err_errno(err, -errno, "cannot read '%s'", file);
	j = json_loadf(f ? f : stdin, JSON_REJECT_DUPLICATES, &jerr);
	if (!j && jerr.line > 0)
		return util_err_set(err, -EINVAL, "cannot read '%s': %s (line %d)", file, jerr.text,
		                    jerr.line);
	if (!j)
		return util_err_set(err, -EINVAL, "cannot read '%s': %s", file, jerr.text);
	if (json_is_object(j)) {
		json_object_set_new(j, "name", json_string(name));
		json_object_del(j, "uuid");
	}
	lc_vmdef_clear(def);
	if (lc_vmdef_from_json(j, def, err) < 0) {
		lc_vmdef_init(def);
		/* a definition the checks refuse is a usage error, as the
		 * same values given as flags are */
		util_err_prefix(err, "invalid definition in '%s'", file);
		return cli_usage(err, "%s", err->msg);
	}
	return 0;
}

enum {
	OPT_MEMORY = 'm',
	OPT_VCPUS = 'c',
	OPT_DISK = 0x100,
	OPT_NIC,
	OPT_CDROM,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_APPEND,
	OPT_MACHINE,
	OPT_ACCEL,
	OPT_CLOUD_INIT,
	OPT_HOLD,
	OPT_RESTART,
	OPT_AUTOSTART,
	OPT_LABEL,
	OPT_FROM,
	OPT_VNC,
	OPT_VNC_LISTEN,
	OPT_START,
	OPT_TEMPLATE,
	OPT_COUNT,
	OPT_MAX_VCPUS,
	OPT_MAX_MEMORY,
	OPT_GUEST_AGENT,
};

/* create --count: at most this many vms in one go */
#define COUNT_MAX 256

/* The parts of a definition a flag set, for --template: the flags
 * override the template's (disks, nics and labels are added to its). */
enum {
	SET_MEMORY = 1u << 0,
	SET_VCPUS = 1u << 1,
	SET_CDROM = 1u << 2,
	SET_KERNEL = 1u << 3,
	SET_INITRD = 1u << 4,
	SET_APPEND = 1u << 5,
	SET_MACHINE = 1u << 6,
	SET_ACCEL = 1u << 7,
	SET_CLOUD_INIT = 1u << 8,
	SET_RESTART = 1u << 9,
	SET_AUTOSTART = 1u << 10,
	SET_MAX_VCPUS = 1u << 11,
	SET_MAX_MEMORY = 1u << 12,
	SET_GUEST_AGENT = 1u << 13,
	SET_VNC = 1u << 14,
};

typedef struct create_args {
	const char *from;     /* --from FILE */
	const char *template; /* --template T */
	const char *def_opt;  /* the first option that sets part of the definition */
	unsigned set;         /* SET_* */
	unsigned count;       /* --count N, 0 without */
	bool hold, start;
} create_args;

/* The SET_* bit of option c, 0 for the rest. */
static unsigned set_bit(int c)
{
	switch (c) {
	case OPT_MEMORY:
		return SET_MEMORY;
	case OPT_VCPUS:
		return SET_VCPUS;
	case OPT_CDROM:
		return SET_CDROM;
	case OPT_KERNEL:
		return SET_KERNEL;
	case OPT_INITRD:
		return SET_INITRD;
	case OPT_APPEND:
		return SET_APPEND;
	case OPT_MACHINE:
		return SET_MACHINE;
	case OPT_ACCEL:
		return SET_ACCEL;
	case OPT_CLOUD_INIT:
		return SET_CLOUD_INIT;
	case OPT_RESTART:
		return SET_RESTART;
	case OPT_AUTOSTART:
		return SET_AUTOSTART;
	case OPT_MAX_VCPUS:
		return SET_MAX_VCPUS;
	case OPT_MAX_MEMORY:
		return SET_MAX_MEMORY;
	case OPT_VNC:
	case OPT_VNC_LISTEN:
		return SET_VNC;
	case OPT_GUEST_AGENT:
		return SET_GUEST_AGENT;
	default:
		return 0;
	}
}

/* The options of templates, counts, hotplug maxima and the guest agent. */
static int parse_shape_opt(int c, const char *arg, lc_vmdef *def, create_args *a, util_err *err)
{
	uint64_t n;

	switch (c) {
	case OPT_TEMPLATE:
		a->template = arg;
		break;
	case OPT_GUEST_AGENT:
		def->guest_agent = true;
		break;
	case OPT_VNC:
	case OPT_VNC_LISTEN:
		free(def->vnc_listen);
		def->vnc_listen = util_xstrdup(c == OPT_VNC ? LC_VNC_LISTEN_DEFAULT : arg);
		if (lc_vnc_listen_check(def->vnc_listen, err) < 0)
			return cli_usage(err, "%s", err->msg);
		break;
	case OPT_MAX_VCPUS:
		if (util_parse_uint(arg, 0, LC_VCPUS_MAX, &n, err) < 0)
			return cli_usage(err, "invalid --max-vcpus: %s", err->msg);
		def->max_vcpus = (unsigned)n;
		break;
	case OPT_MAX_MEMORY:
		def->max_memory = 0;
		return strcmp(arg, "0") ? cli_parse_memory(arg, &def->max_memory, err) : 0;
	case OPT_COUNT:
		if (util_parse_uint(arg, 1, COUNT_MAX, &n, err) < 0)
			return cli_usage(err, "invalid --count: %s", err->msg);
		a->count = (unsigned)n;
		break;
	}
	return 0;
}

static int create_parse(cli_parser *p, lc_vmdef *def, create_args *a, util_err *err)
{
	const char *arg;
	int c, r = 0;

	while (r == 0 && (c = cli_parser_next(p, &arg, err)) > 0) {
		uint64_t n;

		if (c != OPT_HOLD && c != OPT_START && c != OPT_FROM && c != OPT_TEMPLATE &&
		    c != OPT_COUNT && !a->def_opt)
			a->def_opt = cli_option_name(p->longopts, c);
		a->set |= set_bit(c);
		switch (c) {
		case OPT_MEMORY:
			r = cli_parse_memory(arg, &def->memory, err);
			break;
		case OPT_VCPUS:
			if (util_parse_uint(arg, 1, LC_VCPUS_MAX, &n, err) < 0)
				return cli_usage(err, "invalid --vcpus: %s", err->msg);
			def->vcpus = (unsigned)n;
			break;
		case OPT_DISK:
			if (def->n_disks >= LC_DISKS_MAX)
				return cli_usage(err, "too many disks (at most %d)", LC_DISKS_MAX);
			def->disks =
			        util_xrealloc(def->disks, (def->n_disks + 1) * sizeof(lc_disk));
			r = lc_disk_parse(arg, &def->disks[def->n_disks], err);
			if (r < 0)
				return cli_usage(err, "%s", err->msg);
			def->disks[def->n_disks].id = (unsigned)def->n_disks;
			def->n_disks++;
			break;
		case OPT_NIC:
			if (def->n_nics >= LC_NICS_MAX)
				return cli_usage(err, "too many nics (at most %d)", LC_NICS_MAX);
			def->nics = util_xrealloc(def->nics, (def->n_nics + 1) * sizeof(lc_nic));
			r = lc_nic_parse(arg, &def->nics[def->n_nics], err);
			if (r < 0)
				return cli_usage(err, "%s", err->msg);
			def->nics[def->n_nics].id = (unsigned)def->n_nics;
			def->n_nics++;
			break;
		case OPT_CDROM:
			r = set_path(&def->cdrom, arg, "cdrom", err);
			break;
		case OPT_KERNEL:
			r = set_path(&def->kernel, arg, "kernel", err);
			break;
		case OPT_INITRD:
			r = set_path(&def->initrd, arg, "initrd", err);
			break;
		case OPT_APPEND:
			free(def->append);
			def->append = util_xstrdup(arg);
			break;
		case OPT_MACHINE:
			if (lc_machine_parse(arg, &def->machine, err) < 0)
				return cli_usage(err, "%s", err->msg);
			break;
		case OPT_ACCEL:
			if (lc_accel_parse(arg, &def->accel, err) < 0)
				return cli_usage(err, "%s", err->msg);
			break;
		case OPT_CLOUD_INIT:
			r = parse_cloud_init(def, arg, err);
			break;
		case OPT_HOLD:
			a->hold = true;
			break;
		case OPT_START:
			a->start = true;
			break;
		case OPT_RESTART:
			if (lc_restart_parse(arg, &def->restart, err) < 0)
				return cli_usage(err, "%s", err->msg);
			break;
		case OPT_AUTOSTART:
			def->autostart = true;
			break;
		case OPT_LABEL:
			r = add_label(def, arg, err);
			break;
		case OPT_FROM:
			a->from = arg;
			break;
		default:
			r = parse_shape_opt(c, arg, def, a, err);
			break;
		}
	}
	return r < 0 ? r : c;
}

static void take_str(char **dst, char **src)
{
	free(*dst);
	*dst = *src;
	*src = NULL;
}

/* The flags' definition f over template t: what a flag set replaces the
 * template's; f's disks, nics and labels are added (f is left empty of
 * them). */
static void merge_flags(lc_vmdef *t, lc_vmdef *f, unsigned set)
{
	unsigned next = 0;

	if (set & SET_MEMORY)
		t->memory = f->memory;
	if (set & SET_VCPUS)
		t->vcpus = f->vcpus;
	if (set & SET_MAX_VCPUS)
		t->max_vcpus = f->max_vcpus;
	if (set & SET_MAX_MEMORY)
		t->max_memory = f->max_memory;
	if (set & SET_GUEST_AGENT)
		t->guest_agent = f->guest_agent;
	if (set & SET_MACHINE)
		t->machine = f->machine;
	if (set & SET_ACCEL)
		t->accel = f->accel;
	if (set & SET_RESTART)
		t->restart = f->restart;
	if (set & SET_AUTOSTART)
		t->autostart = f->autostart;
	if (set & SET_CDROM)
		take_str(&t->cdrom, &f->cdrom);
	if (set & SET_KERNEL)
		take_str(&t->kernel, &f->kernel);
	if (set & SET_INITRD)
		take_str(&t->initrd, &f->initrd);
	if (set & SET_APPEND)
		take_str(&t->append, &f->append);
	if (set & SET_VNC)
		take_str(&t->vnc_listen, &f->vnc_listen);
	if (set & SET_CLOUD_INIT) {
		take_str(&t->ci_user_data, &f->ci_user_data);
		take_str(&t->ci_meta_data, &f->ci_meta_data);
		take_str(&t->ci_network_config, &f->ci_network_config);
	}
	for (size_t i = 0; i < t->n_disks; i++)
		next = t->disks[i].id >= next ? t->disks[i].id + 1 : next;
	t->disks = util_xrealloc(t->disks, (t->n_disks + f->n_disks + 1) * sizeof(lc_disk));
	for (size_t i = 0; i < f->n_disks; i++) {
		t->disks[t->n_disks] = f->disks[i];
		t->disks[t->n_disks++].id = next++;
	}
	f->n_disks = 0;
	next = 0;
	for (size_t i = 0; i < t->n_nics; i++)
		next = t->nics[i].id >= next ? t->nics[i].id + 1 : next;
	t->nics = util_xrealloc(t->nics, (t->n_nics + f->n_nics + 1) * sizeof(lc_nic));
	for (size_t i = 0; i < f->n_nics; i++) {
		t->nics[t->n_nics] = f->nics[i];
		t->nics[t->n_nics++].id = next++;
	}
	f->n_nics = 0;
	json_object_update(t->labels, f->labels);
}

/* The names of create NAME [--count N]: NAME; NAME with %i numbered 1..N;
 * or NAME-1..NAME-N. */
static void instance_names(const char *name, unsigned count, util_strv *ret)
{
	const char *mark = strstr(name, "%i");

	if (!count) {
		util_strv_push(ret, name);
		return;
	}
	for (unsigned i = 1; i <= count; i++) {
		if (mark)
			util_strv_pushf(ret, "%.*s%u%s", (int)(mark - name), name, i, mark + 2);
		else
			util_strv_pushf(ret, "%s-%u", name, i);
	}
}

/* Remove the vms ids (a JSON array) made by a create that failed later:
 * all of them or none. */
static void undo_created(lc_db *db, json_t *ids)
{
	json_t *v;
	size_t i;

	json_array_foreach (ids, i, v) {
		lc_vm *vm = lc_db_vm_by_id(db, (uint64_t)json_integer_value(v));
		util_err ignored = { 0 };

		if (vm)
			lc_vm_delete(db, vm, -1, false, &ignored);
	}
}

/* Make the instances of base (a definition as JSON, borrowed) named
 * names, each a vm of its own (uuid, MACs, leases, disks); their ids go
 * to made. On a failure the ones made are deleted again. */
static int create_instances(lc_db *db, json_t *base, util_strv *names, const char *const *roots,
                            bool hold, json_t *made, util_err *err)
{
	int r = 0;

	for (size_t i = 0; i < names->n && r == 0; i++) {
		lc_vmdef one;
		uint64_t id;

		json_object_set_new(base, "name", json_string(names->v[i]));
		r = lc_vmdef_from_json(base, &one, err);
		if (r < 0) {
			util_err_prefix(err, "cannot create vm '%s'", names->v[i]);
			break;
		}
		r = lc_vm_create(db, &one, &(lc_create_opts){ .hold = hold, .disk_roots = roots },
		                 &id, err);
		if (r < 0)
			lc_vmdef_clear(&one);
		else
			json_array_append_new(made, json_integer((json_int_t)id));
	}
	if (r < 0 && json_array_size(made)) {
		undo_created(db, made);
		util_err_prefix(err, "none of the %zu vms is kept (%zu made were deleted)",
		                names->n, json_array_size(made));
	}
	return r;
}

/* create --template T and/or --count N: the flags in flags (a->set says
 * which) override the template; every instance is checked and made in
 * one open of the journal, then started with --start. */
static int create_many(cli_ctx *ctx, lc_vmdef *flags, const create_args *a, const char *name,
                       lc_run_opts *run, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_strv_ char **roots = NULL;
	_cleanup_json_ json_t *base = NULL, *made = json_array(), *out = json_array();
	_cleanup_(util_strv_clear) util_strv names = { 0 };
	lc_vm_left left = { 0 };
	json_t *v;
	size_t i;
	int r;

	instance_names(name, a->count, &names);
	r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0 && a->template) {
		lc_vmdef t;

		r = lc_template_load(ctx->root, a->template, &t, err);
		if (r == 0) {
			merge_flags(&t, flags, a->set);
			base = lc_vmdef_to_json(&t);
			lc_vmdef_clear(&t);
		}
	} else if (r == 0) {
		base = lc_vmdef_to_json(flags);
	}
	roots = cli_disk_roots(ctx);
	if (r == 0)
		r = create_instances(db, base, &names, (const char *const *)roots, a->hold, made,
		                     err);
	if (r < 0)
		return a->template ? util_err_prefix(err, "from template '%s'", a->template) : r;
	json_array_foreach (made, i, v) {
		lc_vm *vm = lc_db_vm_by_id(db, (uint64_t)json_integer_value(v));

		if (ctx->json && !a->start)
			json_array_append_new(out, lc_vm_to_json(vm));
		else if (!ctx->json && ctx->verbosity >= 0)
			printf("%lld\n", (long long)json_integer_value(v));
	}
	lc_db_close(TAKE_PTR(db));
	fflush(stdout);
	run->ret_left = &left;
	for (i = 0; a->start && i < names.n && r == 0; i++) {
		_cleanup_json_ json_t *one = NULL;

		r = lc_vm_start(ctx->root, names.v[i], run, err);
		if (r == 0)
			r = cli_report_state(ctx, names.v[i], &left, ctx->json ? &one : NULL, err);
		if (one)
			json_array_append(out, one);
	}
	if (r == 0 && ctx->json)
		*ret_json = a->count ? json_incref(out) : json_incref(json_array_get(out, 0));
	return r;
}

/* Options that exclude each other. */
static int check_combinations(const create_args *a, util_err *err)
{
	/* The file is the whole definition: a flag beside it would be either
	 * dropped or a second source of truth, so it is refused. */
	if (a->from && a->def_opt)
		return cli_usage(
		        err,
		        "--%s cannot be combined with --from, which takes the whole definition; edit the file instead",
		        a->def_opt);
	if (a->hold && a->start)
		return cli_usage(err, "--hold and --start contradict each other; give one");
	if (a->from && (a->template || a->count))
		return cli_usage(
		        err,
		        "--from cannot be combined with --%s; make a template of the file instead (qvm template create T --from FILE)",
		        a->template ? "template" : "count");
	return 0;
}

int cli_cmd_create(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "vcpus", required_argument, NULL, OPT_VCPUS },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "nic", required_argument, NULL, OPT_NIC },
		{ "cdrom", required_argument, NULL, OPT_CDROM },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "machine", required_argument, NULL, OPT_MACHINE },
		{ "accel", required_argument, NULL, OPT_ACCEL },
		{ "cloud-init", required_argument, NULL, OPT_CLOUD_INIT },
		{ "hold", no_argument, NULL, OPT_HOLD },
		{ "start", no_argument, NULL, OPT_START },
		{ "restart", required_argument, NULL, OPT_RESTART },
		{ "autostart", no_argument, NULL, OPT_AUTOSTART },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "vnc", no_argument, NULL, OPT_VNC },
		{ "vnc-listen", required_argument, NULL, OPT_VNC_LISTEN },
		{ "template", required_argument, NULL, OPT_TEMPLATE },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "max-vcpus", required_argument, NULL, OPT_MAX_VCPUS },
		{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
		{ "guest-agent", no_argument, NULL, OPT_GUEST_AGENT },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_strv_ char **roots = NULL;
	_cleanup_free_ char *name = NULL;
	lc_run_opts run = { .disk_roots = ctx->disk_roots };
	lc_vm_left left = { 0 };
	create_args a = { 0 };
	lc_vmdef def;
	cli_parser p;
	char **ops;
	int nops, r;
	uint64_t id;
	lc_vm *vm;

	lc_vmdef_init(&def);
	cli_parser_init(&p, ctx, argc, argv, opts, "m:c:");
	r = create_parse(&p, &def, &a, err);
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &nops, err);
	if (r == 0)
		r = check_combinations(&a, err);
	if (r == 0 && a.from) {
		r = cli_read_definition(a.from, ops[0], &def, err);
	} else if (r == 0) {
		def.name = util_xstrdup(ops[0]);
	}
	cli_parser_done(&p);
	if (r == 0 && a.start)
		r = cli_lock_timeout(&run.lock_timeout_ms, err);
	if (r == 0 && (a.template || a.count)) {
		r = create_many(ctx, &def, &a, ops[0], &run, ret_json, err);
		goto out;
	}
	if (r < 0)
		goto out;
	r = lc_vmdef_validate(&def, err);
	if (r < 0) {
		r = cli_usage(err, "%s", err->msg);
		goto out;
	}
	r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r < 0)
		goto out;
	roots = cli_disk_roots(ctx);
	name = util_xstrdup(def.name);
	r = lc_vm_create(
	        db, &def,
	        &(lc_create_opts){ .hold = a.hold, .disk_roots = (const char *const *)roots }, &id,
	        err);
	if (r < 0)
		goto out;
	vm = lc_db_vm_by_id(db, id);
	if (ctx->json && !a.start)
		*ret_json = lc_vm_to_json(vm);
	else if (!ctx->json && ctx->verbosity >= 0)
		printf("%llu\n", (unsigned long long)id);
	if (a.start) {
		/* start takes the journal's lock itself */
		lc_db_close(TAKE_PTR(db));
		fflush(stdout);
		run.ret_left = &left;
		r = lc_vm_start(ctx->root, name, &run, err);
		if (r == 0)
			r = cli_report_state(ctx, name, &left, ret_json, err);
	}
out:
	lc_vmdef_clear(&def);
	return r;
}

/* Open the database and find the VM named by the command's one operand. */
static int open_one(cli_ctx *ctx, int argc, char **argv, const struct option *opts, bool write,
                    lc_db **ret_db, lc_vm **ret_vm, util_err *err)
{
	cli_parser p;
	const char *arg;
	char **ops;
	int nops, r;
	lc_db *db = NULL;

	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	r = cli_parser_next(&p, &arg, err);
	if (r > 0)
		r = cli_usage(err, "unexpected option");
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &nops, err);
	if (r == 0 && !write)
		r = cli_open_vm_to_read(ctx, ops[0], &db, ret_vm, err);
	else if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0 && write)
		r = lc_db_find(db, ops[0], ret_vm, err);
	cli_parser_done(&p);
	if (r < 0) {
		lc_db_close(db);
		return r;
	}
	*ret_db = db;
	return 0;
}

int cli_cmd_dump(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *j = NULL;
	lc_vm *vm;
	char *s;
	int r = open_one(ctx, argc, argv, NULL, false, &db, &vm, err);

	if (r < 0)
		return r;
	j = lc_vmdef_to_json(&vm->def);
	if (ctx->json) {
		*ret_json = TAKE_PTR(j);
		return 0;
	}
	/* dump prints JSON either way: it is the definition's only form */
	s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	puts(s);
	free(s);
	return 0;
}

/* Wait for the VM lock of name_or_id as every command does (before the
 * journal's writer lock, which its holder may need). */
int cli_lock_vm(cli_ctx *ctx, const char *name_or_id, int *ret_lock, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm;
	int timeout_ms;
	int r = cli_lock_timeout(&timeout_ms, err);

	if (r == 0)
		r = cli_open_db(ctx, LC_DB_SUMMARY, &db, err);
	if (r == 0)
		r = lc_db_find(db, name_or_id, &vm, err);
	if (r == 0)
		r = lc_vm_lock_wait(ctx->root, vm->id, vm->def.name,
		                    timeout_ms ? timeout_ms : LC_LOCK_TIMEOUT_MS, ret_lock, err);
	return r;
}

/* The pairs as update takes them: a file's value made absolute against
 * the current folder, as --kernel's is (a new vector). */
static int absolute_pairs(char **ops, int n, char ***ret, util_err *err)
{
	_cleanup_(util_strv_clear) util_strv sv = { 0 };

	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *key =
		        util_xasprintf("%.*s", (int)strcspn(ops[i], "="), ops[i]);
		_cleanup_free_ char *path = NULL;
		const char *value = ops[i] + strlen(key);

		if (*value != '=' || !value[1] || !lc_update_key_is_path(key)) {
			util_strv_push(&sv, ops[i]);
			continue;
		}
		if (cli_absolute_path(value + 1, key, &path, err) < 0)
			return cli_usage(err, "%s", err->msg);
		util_strv_pushf(&sv, "%s=%s", key, path);
	}
	*ret = util_strv_steal(&sv);
	return 0;
}

void cli_print_later(const lc_vm *vm, json_t *later)
{
	json_t *v;
	size_t i;

	if (!json_array_size(later))
		return;
	printf("%s: ", vm->def.name);
	json_array_foreach (later, i, v)
		printf("%s%s", i ? ", " : "", json_string_value(v));
	printf(" take%s effect at the next start (it is %s%s%s)\n",
	       json_array_size(later) == 1 ? "s" : "", lc_state_name(vm->state), vm->lcm ? "/" : "",
	       lc_lcm_name(vm->lcm));
}

int cli_cmd_update(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_close_ int lock = -1;
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_strv_ char **roots = NULL, **pairs = NULL;
	_cleanup_json_ json_t *later = NULL;
	lc_update_opts opts = { .ret_later = &later };
	char **ops;
	int nops, r;
	lc_vm *vm;

	r = cli_parse_operands(ctx, argc, argv, 2, -1, &ops, &nops, err);
	if (r == 0)
		r = absolute_pairs(ops + 1, nops - 1, &pairs, err);
	if (r == 0 && cli_lock_vm(ctx, ops[0], &lock, err) < 0)
		r = util_err_prefix(err, "cannot update '%s'", ops[0]);
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_db_find(db, ops[0], &vm, err);
	if (r == 0) {
		roots = cli_disk_roots(ctx);
		opts.disk_roots = (const char *const *)roots;
		r = lc_vm_update(db, vm, TAKE_FD(lock), pairs, (size_t)nops - 1, &opts, err);
	}
	if (r == 0 && ctx->json) {
		*ret_json = lc_vm_to_json(vm);
		json_object_set(*ret_json, "next_start", later);
	} else if (r == 0 && ctx->verbosity >= 0) {
		/* what was changed, by key, as the user wrote them */
		printf("%s: updated", vm->def.name);
		for (int i = 1; i < nops; i++)
			printf("%s%.*s", i == 1 ? " " : ", ", (int)strcspn(ops[i], "="), ops[i]);
		printf("\n");
		cli_print_later(vm, later);
	}
	return r;
}

static int hold_release(cli_ctx *ctx, bool hold, int argc, char **argv, json_t **ret_json,
                        util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm;
	int r = open_one(ctx, argc, argv, NULL, true, &db, &vm, err);

	if (r == 0)
		r = lc_vm_hold(db, vm, hold, err);
	if (r == 0 && ctx->json)
		*ret_json = lc_vm_to_json(vm);
	return r;
}

int cli_cmd_hold(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return hold_release(ctx, true, argc, argv, ret_json, err);
}

int cli_cmd_release(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	return hold_release(ctx, false, argc, argv, ret_json, err);
}
