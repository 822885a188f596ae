/* resize: the vCPUs and memory of a vm. Off, the definition changes.
 * Running, under a "resize" intent in ACTIVE/HOTPLUG: vCPUs are hot-added
 * from what query-hotpluggable-cpus offers, memory grows by a DIMM (a
 * memory-backend-ram object and a pc-dimm device, the object deleted again
 * if the device is refused) and shrinks through the balloon, which the
 * guest sees as memory taken back, not as a smaller DIMM. The definition
 * then has the new size, which the next boot starts with. A qvm that dies
 * part way is settled from what QEMU has (settle_resize). */
#include <inttypes.h>
#include <string.h>

#include "qmp/qmp.h"
#include "vm_command.h"

#define RESIZE_OP "resize"
/* the guest onlines memory in sections of this size */
#define DIMM_ALIGN     (128ull << 20)
#define CPU_ID_PREFIX  "qvm-cpu"
#define MEM_ID_PREFIX  "qvm-mem"
#define DIMM_ID_PREFIX "qvm-dimm"

/* What QEMU has now. */
typedef struct qemu_sizes {
	unsigned vcpus;    /* CPUs present */
	uint64_t plugged;  /* base memory + DIMMs */
	uint64_t balloon;  /* what the balloon leaves the guest (plugged without one) */
	unsigned dimms;    /* DIMMs plugged */
	json_t *free_cpus; /* entries of query-hotpluggable-cpus without a CPU */
} qemu_sizes;

static void qemu_sizes_clear(qemu_sizes *s)
{
	json_decref(s->free_cpus);
	memset(s, 0, sizeof(*s));
}

static uint64_t jsize(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

static int query_sizes(qmp_client *q, bool balloon, qemu_sizes *ret, util_err *err)
{
	_cleanup_json_ json_t *cpus = NULL, *mem = NULL, *devs = NULL, *bal = NULL;
	qemu_sizes s = { .free_cpus = json_array() };
	json_t *v;
	size_t i;
	int r = qmp_execute(q, "query-hotpluggable-cpus", NULL, 0, &cpus, err);

	if (r == 0)
		r = qmp_execute(q, "query-memory-size-summary", NULL, 0, &mem, err);
	if (r == 0)
		r = qmp_execute(q, "query-memory-devices", NULL, 0, &devs, err);
	if (r == 0 && balloon)
		r = qmp_execute(q, "query-balloon", NULL, 0, &bal, err);
	if (r < 0) {
		qemu_sizes_clear(&s);
		return r;
	}
	json_array_foreach (cpus, i, v) {
		if (json_object_get(v, "qom-path"))
			s.vcpus++;
		else
			json_array_append(s.free_cpus, v);
	}
	s.plugged = jsize(mem, "base-memory") + jsize(mem, "plugged-memory");
	s.balloon = bal ? jsize(bal, "actual") : s.plugged;
	s.dimms = (unsigned)json_array_size(devs);
	*ret = s;
	return 0;
}

/* ---- the QEMU side ------------------------------------------------------------------- */

/* Hot-add CPUs up to want, each a device of the type and at the place
 * QEMU offers for it. */
static int add_cpus(qmp_client *q, const qemu_sizes *s, unsigned want, util_err *err)
{
	for (unsigned have = s->vcpus; have < want; have++) {
		json_t *slot = json_array_get(s->free_cpus, have - s->vcpus);
		json_t *args;
		int r;

		if (!slot)
			return util_err_set(err, -ENOSPC, "qemu offers no place for cpu %u", have);
		args = json_deep_copy(json_object_get(slot, "props"));
		json_object_set_new(args, "driver", json_incref(json_object_get(slot, "type")));
		json_object_set_new(args, "id", json_sprintf(CPU_ID_PREFIX "%u", have));
		r = qmp_execute(q, "device_add", args, 0, NULL, err);
		if (r < 0)
			return util_err_prefix(err, "cannot add cpu %u", have);
		util_crash_point("resize-after-cpu");
	}
	return 0;
}

/* A DIMM of size: the backend object, then the device; the object goes
 * again when the device is refused, so that nothing is left behind. */
static int add_dimm(qmp_client *q, unsigned n, uint64_t size, util_err *err)
{
	char mem[32], dimm[32];
	util_err ignored = { 0 };
	int r;

	snprintf(mem, sizeof(mem), MEM_ID_PREFIX "%u", n);
	snprintf(dimm, sizeof(dimm), DIMM_ID_PREFIX "%u", n);
	r = qmp_execute(q, "object-add",
	                json_pack("{s:s, s:s, s:I}", "qom-type", "memory-backend-ram", "id", mem,
	                          "size", (json_int_t)size),
	                0, NULL, err);
	if (r < 0)
		return util_err_prefix(err, "cannot add memory");
	util_crash_point("resize-after-object");
	r = util_fail_point("resize-before-dimm", err);
	if (r == 0)
		r = qmp_execute(q, "device_add",
		                json_pack("{s:s, s:s, s:s}", "driver", "pc-dimm", "id", dimm,
		                          "memdev", mem),
		                0, NULL, err);
	if (r < 0) {
		qmp_execute(q, "object-del", json_pack("{s:s}", "id", mem), 0, NULL, &ignored);
		return util_err_prefix(
		        err, "cannot add memory (the dimm was refused; its backend was removed)");
	}
	return 0;
}

/* Memory to target: a DIMM for what the plugged memory lacks, the balloon
 * for the rest (deflated to all of it after a grow). */
static int set_memory(qmp_client *q, const qemu_sizes *s, uint64_t target, util_err *err)
{
	int r = 0;

	if (target > s->plugged)
		r = add_dimm(q, s->dimms, target - s->plugged, err);
	if (r == 0 && (target < s->plugged || s->balloon < s->plugged))
		r = qmp_execute(q, "balloon", json_pack("{s:I}", "value", (json_int_t)target), 0,
		                NULL, err);
	return r;
}

/* ---- checks ------------------------------------------------------------------------ */

static int check_live(const lc_vm *vm, const qemu_sizes *s, unsigned vcpus, uint64_t memory,
                      util_err *err)
{
	const lc_vmdef *d = &vm->def;
	char a[16], b[16];

	if (vcpus && vcpus != s->vcpus && !d->max_vcpus)
		return util_err_set(
		        err, -EPERM,
		        "cpu hotplug is off (max-vcpus 0); resize it while it is off, or give it a max-vcpus then");
	if (vcpus > d->max_vcpus && d->max_vcpus)
		return util_err_set(err, -ERANGE, "%u vcpus is past its max-vcpus %u", vcpus,
		                    d->max_vcpus);
	if (vcpus && vcpus < s->vcpus)
		return util_err_set(
		        err, -EPERM,
		        "vcpus go down only while the vm is off (it has %u; removing a cpu needs the guest to give it up, which is not done)",
		        s->vcpus);
	if (memory && memory != s->balloon && !d->max_memory)
		return util_err_set(
		        err, -EPERM,
		        "memory hotplug is off (max-memory 0); resize it while it is off, or give it a max-memory then");
	if (memory > d->max_memory && d->max_memory)
		return util_err_set(err, -ERANGE, "memory %s is past its max-memory %s",
		                    util_format_size(memory, a, sizeof(a)),
		                    util_format_size(d->max_memory, b, sizeof(b)));
	if (memory > s->plugged && (memory - s->plugged) % DIMM_ALIGN)
		return util_err_set(
		        err, -EINVAL,
		        "memory can grow only by a multiple of 128M (the section a guest onlines memory in): %s more than its %s",
		        util_format_size(memory - s->plugged, a, sizeof(a)),
		        util_format_size(s->plugged, b, sizeof(b)));
	if (memory > s->plugged && s->dimms >= LC_DIMM_SLOTS)
		return util_err_set(
		        err, -ENOSPC,
		        "all %d dimm slots are taken; restart it to start over with one",
		        LC_DIMM_SLOTS);
	return 0;
}

/* ---- the operation ------------------------------------------------------------------ */

static bool is_off(lc_state st)
{
	return st == LC_PENDING || st == LC_HOLD || st == LC_POWEROFF || st == LC_UNDEPLOYED ||
	       st == LC_FAILED;
}

/* A copy of the definition base (JSON, borrowed) with vcpus and memory
 * (0: as they are). */
static json_t *resized_def(json_t *base, unsigned vcpus, uint64_t memory)
{
	json_t *j = json_deep_copy(base);

	if (vcpus)
		json_object_set_new(j, "vcpus", json_integer(vcpus));
	if (memory)
		json_object_set_new(j, "memory", json_integer((json_int_t)memory));
	return j;
}

/* One writer transaction: the redefinition to def (JSON, borrowed; NULL:
 * none), live the state back to RUNNING, and the done of intent seq (0:
 * none). */
static int finish(const char *root, uint64_t id, json_t *def, bool live, uint64_t seq,
                  const char *reason, const char *result, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vmdef nd;
	lc_vm *vm;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	if (!(vm = lc_db_vm_by_id(db, id)))
		return util_err_set(err, -ENOENT, "no vm with id %" PRIu64, id);
	lc_db_group_begin(db);
	if (def && (r = lc_vmdef_from_json(def, &nd, err)) == 0) {
		json_t *rec = json_pack("{s:s, s:I, s:s}", "type", "redefine", "id", (json_int_t)id,
		                        "reason", reason);

		json_object_update_new(rec, lc_db_def_fields(&nd));
		lc_vmdef_clear(&nd);
		r = lc_db_append(db, rec, NULL, err);
	}
	if (r == 0 && live && vm->state == LC_ACTIVE && vm->lcm == LC_LCM_HOTPLUG)
		r = lc_db_record_state(db, vm, LC_ACTIVE, LC_LCM_RUNNING, reason, NULL, err);
	if (r == 0 && seq)
		r = lc_db_done(db, seq, result, err);
	return r < 0 ? r : lc_db_group_commit(db, err);
}

typedef struct resize_arg {
	unsigned vcpus;
	uint64_t memory;
	json_t **ret_json;
} resize_arg;

static char *resize_reason(const lc_vm *vm, unsigned vcpus, uint64_t memory, bool live)
{
	char *why = util_xasprintf("resize%s:", live ? " (live)" : "");
	char a[16], b[16];

	if (vcpus && vcpus != vm->def.vcpus)
		util_append(&why, " vcpus %u→%u", vm->def.vcpus, vcpus);
	if (memory && memory != vm->def.memory)
		util_append(&why, "%s memory %s→%s", vcpus && vcpus != vm->def.vcpus ? "," : "",
		            util_format_size(vm->def.memory, a, sizeof(a)),
		            util_format_size(memory, b, sizeof(b)));
	return why;
}

/* Live: the intent and HOTPLUG, the QEMU side, then the definition. */
static int resize_live(lc_cmd *c, resize_arg *a, json_t *orig, json_t *nd, const char *why,
                       util_err *err)
{
	_cleanup_(qemu_sizes_clear) qemu_sizes s = { 0 };
	_cleanup_db_ lc_db *db = NULL;
	util_err ignored = { 0 };
	uint64_t seq;
	lc_vm *vm;
	int r = lc_cmd_qmp(c, err);

	if (r == 0)
		r = query_sizes(c->qmp, c->vm->def.max_memory != 0, &s, err);
	if (r == 0)
		r = check_live(c->vm, &s, a->vcpus, a->memory, err);
	lc_cmd_let_go(c);
	if (r == 0)
		r = lc_db_open(c->root, LC_DB_WRITE, &db, err);
	if (r < 0)
		return r;
	vm = lc_db_vm_by_id(db, c->h.id);
	lc_db_group_begin(db); /* one sync for both */
	r = lc_db_intent(
	        db, RESIZE_OP, c->h.id,
	        json_pack("{s:i, s:I}", "vcpus", (int)a->vcpus, "memory", (json_int_t)a->memory),
	        &seq, err);
	if (r == 0)
		r = lc_db_record_state(db, vm, LC_ACTIVE, LC_LCM_HOTPLUG, why, NULL, err);
	if (r == 0)
		r = lc_db_group_commit(db, err);
	lc_db_close(TAKE_PTR(db));
	if (r < 0)
		return r;
	util_crash_point("resize-after-intent");
	if (a->vcpus > s.vcpus)
		r = add_cpus(c->qmp, &s, a->vcpus, err);
	if (r == 0 && a->memory && a->memory != s.balloon)
		r = set_memory(c->qmp, &s, a->memory, err);
	if (r < 0) {
		/* the CPUs added stay (QEMU has them): the definition says so */
		_cleanup_(qemu_sizes_clear) qemu_sizes now = { 0 };
		_cleanup_json_ json_t *kept = NULL;

		if (query_sizes(c->qmp, false, &now, &ignored) == 0 && now.vcpus != s.vcpus)
			kept = resized_def(orig, now.vcpus, 0);
		finish(c->root, c->h.id, kept, true, seq, "resize failed", "rolled-back", &ignored);
		return r;
	}
	return finish(c->root, c->h.id, nd, true, seq, why, "ok", err);
}

static int resize_act(lc_cmd *c, void *arg, util_err *err)
{
	resize_arg *a = arg;
	_cleanup_json_ json_t *orig = lc_vmdef_to_json(&c->vm->def);
	_cleanup_json_ json_t *nd = resized_def(orig, a->vcpus, a->memory);
	_cleanup_free_ char *now = lc_state_text(c->vm);
	_cleanup_free_ char *why = NULL;
	bool live = c->vm->state == LC_ACTIVE && c->vm->lcm == LC_LCM_RUNNING;
	bool balloon = a->memory && a->memory < c->vm->def.memory;
	unsigned old_vcpus = c->vm->def.vcpus;
	uint64_t old_memory = c->vm->def.memory;
	lc_vmdef check;
	int r;

	if (!live && !is_off(c->vm->state))
		return util_err_set(
		        err, -EPERM,
		        "it is %s; resize needs ACTIVE/RUNNING or a vm that is off (POWEROFF, PENDING, HOLD, UNDEPLOYED, FAILED)",
		        now);
	if (live && !lc_vm_supervised(c->vm))
		return util_err_set(err, -EAGAIN,
		                    "its supervisor is gone; run 'qvm recover %s --retry'",
		                    c->h.name);
	/* past a maximum, live: said so before the definition's own check */
	if (live && c->vm->def.max_vcpus && a->vcpus > c->vm->def.max_vcpus)
		return util_err_set(err, -ERANGE, "%u vcpus is past its max-vcpus %u", a->vcpus,
		                    c->vm->def.max_vcpus);
	if (live && c->vm->def.max_memory && a->memory > c->vm->def.max_memory) {
		char x[16], y[16];

		return util_err_set(err, -ERANGE, "memory %s is past its max-memory %s",
		                    util_format_size(a->memory, x, sizeof(x)),
		                    util_format_size(c->vm->def.max_memory, y, sizeof(y)));
	}
	r = lc_vmdef_from_json(nd, &check, err);
	if (r < 0)
		return r;
	lc_vmdef_clear(&check);
	why = resize_reason(c->vm, a->vcpus, a->memory, live);
	if (live) {
		r = resize_live(c, a, orig, nd, why, err);
	} else {
		lc_cmd_let_go(c);
		r = finish(c->root, c->h.id, nd, false, 0, why, NULL, err);
	}
	if (r == 0 && a->ret_json)
		*a->ret_json = json_pack("{s:s, s:b, s:i, s:i, s:I, s:I, s:b}", "vm", c->h.name,
		                         "live", live, "old_vcpus", (int)old_vcpus, "vcpus",
		                         (int)(a->vcpus ? a->vcpus : old_vcpus), "old_memory",
		                         (json_int_t)old_memory, "memory",
		                         (json_int_t)(a->memory ? a->memory : old_memory),
		                         "balloon", live && balloon);
	return r;
}

int lc_vm_resize(const char *root, const char *name, unsigned vcpus, uint64_t memory,
                 const lc_run_opts *o, json_t **ret_json, util_err *err)
{
	static const lc_cmd_kind kind = { "resize", LC_OP_COUNT, false, resize_act };
	resize_arg a = { vcpus, memory, ret_json };

	if (!vcpus && !memory)
		return util_err_set(err, -EINVAL,
		                    "cannot resize '%s': give --vcpus N, --memory SIZE or both",
		                    name);
	return lc_cmd_run(&kind, root, name, o, &a, err);
}

/* ---- a qvm that died part way ------------------------------------------------------- */

/* The open resize intent of vm id, its seq in *ret_seq (0: none). */
static json_t *open_intent(lc_db *db, uint64_t id, uint64_t *ret_seq)
{
	const char *key;
	json_t *in;

	*ret_seq = 0;
	json_object_foreach (lc_db_intents(db), key, in)
		if ((uint64_t)json_integer_value(json_object_get(in, "id")) == id &&
		    util_streq(json_string_value(json_object_get(in, "op")), RESIZE_OP)) {
			*ret_seq = strtoull(key, NULL, 10);
			return in;
		}
	return NULL;
}

/* Settle from what QEMU has: its CPUs, its DIMMs (a backend left without
 * one is removed), and the balloon asked again for the memory the intent
 * wanted below the plugged memory. The definition takes those sizes. */
static int settle_resize(const char *root, uint64_t id, util_err *err)
{
	_cleanup_(qemu_sizes_clear) qemu_sizes s = { 0 };
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *q = NULL;
	_cleanup_json_ json_t *nd = NULL;
	util_err ignored = { 0 };
	uint64_t seq, want, memory;
	json_t *in;
	lc_vm *vm;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	in = open_intent(db, id, &seq);
	if (!in || !(vm = lc_db_vm_by_id(db, id)))
		return 0;
	if (vm->state != LC_ACTIVE) {
		/* QEMU is gone: the definition was not changed */
		lc_db_close(TAKE_PTR(db));
		r = finish(root, id, NULL, false, seq, "resize interrupted", "rolled-back", err);
		return r < 0 ? r : 1;
	}
	if (lc_command_qmp(root, id, vm->def.name, &q, &ignored) < 0)
		return 0; /* no QEMU to ask yet */
	r = query_sizes(q, vm->def.max_memory != 0, &s, err);
	if (r < 0)
		return r;
	for (unsigned n = s.dimms; n < LC_DIMM_SLOTS; n++) {
		char mem[32];

		snprintf(mem, sizeof(mem), MEM_ID_PREFIX "%u", n);
		qmp_execute(q, "object-del", json_pack("{s:s}", "id", mem), 0, NULL, &ignored);
	}
	want = (uint64_t)json_integer_value(json_object_get(in, "memory"));
	memory = want && want < s.plugged ? want : s.plugged;
	if (want && want < s.plugged)
		qmp_execute(q, "balloon", json_pack("{s:I}", "value", (json_int_t)want), 0, NULL,
		            &ignored);
	{
		_cleanup_json_ json_t *base = lc_vmdef_to_json(&vm->def);

		nd = resized_def(base, s.vcpus, memory);
	}
	lc_db_close(TAKE_PTR(db));
	r = finish(root, id, nd, true, seq, "resize settled from what qemu has", "settled", err);
	return r < 0 ? r : 1;
}

__attribute__((constructor)) static void register_resize(void)
{
	lc_on_settle(LC_SETTLE_ON_HOTPLUG, 5, settle_resize);
	lc_on_settle(LC_SETTLE_ON_HOLD, 5, settle_resize);
}
