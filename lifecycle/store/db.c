/* The VM database: a model of every VM, rebuilt from the journal's snapshot
 * plus the records after it, and changed only by appending records. The
 * model is what `list` and `show` read; a record is what every transition
 * writes, before (intent) and after (completion) its side effects. */
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "journal.h"

/* Compact when this many records follow the snapshot: keeps loads fast. */
#define COMPACT_AFTER 128
/* Compact by size too: a few large redefine records must not make every
 * command load megabytes (or, past the reader's limit, fail). */
#define COMPACT_BYTES_MAX ((uint64_t)1 << 20)
#define LOCK_TIMEOUT_MS   10000

struct lc_db {
	char *root;
	bool write;
	bool summary;        /* definitions hold only name, memory, vcpus */
	lc_journal *journal; /* writers keep it (and its exclusive lock) open */
	lc_journal *reader;  /* a one-VM read keeps its shared lock: its history walk */
	uint64_t next_id;
	lc_vm **vms; /* sorted by id */
	size_t n_vms, cap_vms;
	json_t *intents;  /* open intents: "seq" -> record */
	json_t *networks; /* "name" -> network object (lifecycle/network.c) */
	json_t *host;     /* the host's settings (lc_db_host) */
	char *notice;     /* what opening repaired, for the user */
	bool group;       /* a group of appends is open (lc_db_group_begin) */
};

/* ---- the model ------------------------------------------------------------- */

static void vm_free(lc_vm *vm)
{
	if (!vm)
		return;
	lc_vmdef_clear(&vm->def);
	free(vm->reason);
	free(vm->last_error);
	free(vm->target);
	free(vm->prev_state);
	free(vm->accel);
	json_decref(vm->snapshots);
	json_decref(vm->checkpoint);
	json_decref(vm->sched);
	free(vm);
}

static lc_vm *db_vm_by_id(lc_db *db, uint64_t id)
{
	size_t lo = 0, hi = db->n_vms;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (db->vms[mid]->id == id)
			return db->vms[mid];
		if (db->vms[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void db_insert(lc_db *db, lc_vm *vm)
{
	size_t i = db->n_vms;

	if (db->n_vms == db->cap_vms) {
		db->cap_vms = db->cap_vms ? db->cap_vms * 2 : 64;
		db->vms = util_xrealloc(db->vms, db->cap_vms * sizeof(lc_vm *));
	}
	while (i > 0 && db->vms[i - 1]->id > vm->id) {
		db->vms[i] = db->vms[i - 1];
		i--;
	}
	db->vms[i] = vm;
	db->n_vms++;
	if (vm->id >= db->next_id)
		db->next_id = vm->id + 1;
}

static void set_str(char **slot, json_t *v)
{
	free(*slot);
	*slot = json_is_string(v) ? util_xstrdup(json_string_value(v)) : NULL;
}

static int64_t int_of(json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

/* Fields of a "state" record or of a VM in the snapshot. */
static int apply_state_fields(lc_vm *vm, json_t *rec, util_err *err)
{
	json_t *v;
	int r;

	if ((v = json_object_get(rec, "state"))) {
		r = lc_state_parse(json_string_value(v), &vm->state, err);
		if (r < 0)
			return r;
		/* a transition's intent lasts until the next transition */
		set_str(&vm->target, json_object_get(rec, "target"));
		set_str(&vm->prev_state, json_object_get(rec, "prev"));
		vm->timeout_ms = int_of(rec, "timeout_ms");
		vm->hard_after = json_is_true(json_object_get(rec, "hard_after"));
		vm->request_sent = json_is_true(json_object_get(rec, "sent"));
	}
	if ((v = json_object_get(rec, "lcm"))) {
		r = lc_lcm_parse(json_string_value(v), &vm->lcm, err);
		if (r < 0)
			return r;
	}
	if (vm->state != LC_ACTIVE) {
		vm->lcm = LC_LCM_NONE;
		set_str(&vm->accel, NULL);
	} else if ((v = json_object_get(rec, "qemu_accel"))) {
		set_str(&vm->accel, v);
	}
	if ((v = json_object_get(rec, "reason")))
		set_str(&vm->reason, v);
	if ((v = json_object_get(rec, "error")))
		set_str(&vm->last_error, v);
	if ((v = json_object_get(rec, "qemu_pid")))
		vm->qemu_pid = (pid_t)json_integer_value(v);
	if ((v = json_object_get(rec, "qemu_starttime")))
		vm->qemu_starttime = (uint64_t)json_integer_value(v);
	if ((v = json_object_get(rec, "supervisor_pid")))
		vm->supervisor_pid = (pid_t)json_integer_value(v);
	if ((v = json_object_get(rec, "supervisor_starttime")))
		vm->supervisor_starttime = (uint64_t)json_integer_value(v);
	if ((v = json_object_get(rec, "started")))
		vm->started_ms = json_integer_value(v);
	/* a restart by the policy marks its record; the snapshot keeps the
	 * count as "restarts" */
	if (json_is_true(json_object_get(rec, "restart")))
		vm->restarts++;
	else if (json_is_integer((v = json_object_get(rec, "restarts"))))
		vm->restarts = (uint64_t)json_integer_value(v);
	if ((v = json_object_get(rec, "checkpoint"))) {
		json_decref(vm->checkpoint);
		vm->checkpoint = json_is_object(v) ? json_deep_copy(v) : NULL;
	}
	return 0;
}

/* A definition travels as its JSON text inside records and the snapshot,
 * with the fields `list` needs beside it: parsing text is far cheaper than
 * building objects, and a summary load never parses it at all. */
json_t *lc_db_def_fields(const lc_vmdef *def)
{
	_cleanup_json_ json_t *j = lc_vmdef_to_json(def);
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_t *fields;

	if (!text)
		abort(); /* only on allocation failure */
	fields = json_pack("{s:s, s:I, s:i, s:s}", "name", def->name, "memory",
	                   (json_int_t)def->memory, "vcpus", (int)def->vcpus, "def", text);
	free(text);
	return fields;
}

static int def_from_fields(json_t *j, bool summary, lc_vmdef *ret, util_err *err)
{
	const char *text = json_string_value(json_object_get(j, "def"));
	_cleanup_json_ json_t *obj = NULL;
	json_error_t jerr;

	if (!text)
		return util_err_set(err, -EBADMSG, "no definition");
	if (summary) {
		/* only what list shows: no labels or user data objects */
		memset(ret, 0, sizeof(*ret));
		ret->name = util_xstrdup(json_string_value(json_object_get(j, "name")));
		ret->memory = (uint64_t)int_of(j, "memory");
		ret->vcpus = (unsigned)int_of(j, "vcpus");
		return 0;
	}
	obj = json_loads(text, 0, &jerr);
	if (!obj)
		return util_err_set(err, -EBADMSG, "bad definition: %s", jerr.text);
	return lc_vmdef_from_json(obj, ret, err);
}

static void note_recent(lc_vm *vm, uint64_t seq);

static int vm_from_json(json_t *j, bool summary, lc_vm **ret, util_err *err)
{
	lc_vm *vm = util_xcalloc(1, sizeof(*vm));
	json_t *v;
	size_t i;
	int r;

	vm->id = (uint64_t)int_of(j, "id");
	r = def_from_fields(j, summary, &vm->def, err);
	if (r < 0) {
		free(vm);
		return util_err_prefix(err, "vm %" PRIu64, (uint64_t)int_of(j, "id"));
	}
	vm->created_ms = int_of(j, "created");
	vm->state_ms = int_of(j, "time");
	if (json_is_object(json_object_get(j, "snapshots")))
		vm->snapshots = json_deep_copy(json_object_get(j, "snapshots"));
	if (json_is_object(json_object_get(j, "sched")))
		vm->sched = json_deep_copy(json_object_get(j, "sched"));
	json_array_foreach (json_object_get(j, "recent"), i, v)
		note_recent(vm, (uint64_t)json_integer_value(v));
	r = apply_state_fields(vm, j, err);
	if (r < 0) {
		vm_free(vm);
		return r;
	}
	*ret = vm;
	return 0;
}

static json_t *vm_state_json(const lc_vm *vm)
{
	json_t *j = json_pack("{s:I, s:s, s:s, s:I, s:I, s:I}", "id", (json_int_t)vm->id, "state",
	                      lc_state_name(vm->state), "lcm", lc_lcm_name(vm->lcm), "created",
	                      (json_int_t)vm->created_ms, "time", (json_int_t)vm->state_ms,
	                      "started", (json_int_t)vm->started_ms);

	json_object_set_new(j, "reason", vm->reason ? json_string(vm->reason) : json_null());
	json_object_set_new(j, "error", vm->last_error ? json_string(vm->last_error) : json_null());
	json_object_set_new(j, "qemu_pid", json_integer(vm->qemu_pid));
	json_object_set_new(j, "qemu_starttime", json_integer((json_int_t)vm->qemu_starttime));
	json_object_set_new(j, "supervisor_pid", json_integer(vm->supervisor_pid));
	json_object_set_new(j, "supervisor_starttime",
	                    json_integer((json_int_t)vm->supervisor_starttime));
	if (vm->restarts)
		json_object_set_new(j, "restarts", json_integer((json_int_t)vm->restarts));
	if (vm->target)
		json_object_set_new(j, "target", json_string(vm->target));
	if (vm->prev_state)
		json_object_set_new(j, "prev", json_string(vm->prev_state));
	if (vm->accel)
		json_object_set_new(j, "qemu_accel", json_string(vm->accel));
	if (vm->timeout_ms)
		json_object_set_new(j, "timeout_ms", json_integer(vm->timeout_ms));
	if (vm->hard_after)
		json_object_set_new(j, "hard_after", json_true());
	if (vm->request_sent)
		json_object_set_new(j, "sent", json_true());
	if (vm->snapshots)
		json_object_set_new(j, "snapshots", json_deep_copy(vm->snapshots));
	if (vm->checkpoint)
		json_object_set_new(j, "checkpoint", json_deep_copy(vm->checkpoint));
	if (vm->sched)
		json_object_set_new(j, "sched", json_deep_copy(vm->sched));
	if (vm->n_recent) {
		json_t *recent = json_array();

		for (size_t i = 0; i < vm->n_recent; i++)
			json_array_append_new(recent, json_integer((json_int_t)vm->recent[i]));
		json_object_set_new(j, "recent", recent);
	}
	return j;
}

/* The index key of a VM's record in the snapshot: "<id> <STATE> <name>",
 * what resolving a name needs (lc_db_find_any). */
static char *vm_key(const char *member, json_t *elem)
{
	if (strcmp(member, "vms") != 0)
		return NULL;
	return util_xasprintf("%" PRIu64 " %s %s", (uint64_t)int_of(elem, "id"),
	                      json_string_value(json_object_get(elem, "state")),
	                      json_string_value(json_object_get(elem, "name")));
}

static json_t *db_state_json(const lc_db *db)
{
	json_t *vms = json_array();

	for (size_t i = 0; i < db->n_vms; i++) {
		json_t *j = vm_state_json(db->vms[i]);

		json_object_update_new(j, lc_db_def_fields(&db->vms[i]->def));
		json_array_append_new(vms, j);
	}
	return json_pack("{s:I, s:o, s:O, s:O, s:O}", "next_id", (json_int_t)db->next_id, "vms",
	                 vms, "intents", db->intents, "networks", db->networks, "host", db->host);
}

/* The snapshot's summary: what `list` shows of every VM, as arrays (no key
 * per field) so that loading a thousand VMs parses a few dozen KiB. */
enum {
	SUM_ID,
	SUM_NAME,
	SUM_STATE,
	SUM_LCM,
	SUM_MEMORY_MIB,
	SUM_VCPUS,
	SUM_STARTED,
	SUM_SHORT, /* entries of VMs that are not ACTIVE stop here */
	SUM_SUP_PID = SUM_SHORT,
	SUM_SUP_START,
	SUM_QEMU_PID,
	SUM_QEMU_START,
	SUM_FIELDS
};

static json_t *db_summary_json(const lc_db *db)
{
	json_t *vms = json_array();

	for (size_t i = 0; i < db->n_vms; i++) {
		const lc_vm *vm = db->vms[i];
		json_t *e = json_pack("[I, s, s, s, I, i, I]", (json_int_t)vm->id, vm->def.name,
		                      lc_state_name(vm->state), lc_lcm_name(vm->lcm),
		                      (json_int_t)(vm->def.memory >> 20), (int)vm->def.vcpus,
		                      (json_int_t)vm->started_ms);

		if (vm->state == LC_ACTIVE) {
			json_array_append_new(e, json_integer(vm->supervisor_pid));
			json_array_append_new(e,
			                      json_integer((json_int_t)vm->supervisor_starttime));
			json_array_append_new(e, json_integer(vm->qemu_pid));
			json_array_append_new(e, json_integer((json_int_t)vm->qemu_starttime));
		}
		json_array_append_new(vms, e);
	}
	return json_pack("{s:I, s:o}", "next_id", (json_int_t)db->next_id, "vms", vms);
}

static int64_t sum_int(json_t *entry, size_t field)
{
	return json_integer_value(json_array_get(entry, field));
}

static int db_load_summary(lc_db *db, json_t *summary, util_err *err)
{
	json_t *v;
	size_t i;

	db->next_id = (uint64_t)int_of(summary, "next_id");
	json_array_foreach (json_object_get(summary, "vms"), i, v) {
		lc_vm *vm;
		int r;

		if (json_array_size(v) != SUM_SHORT && json_array_size(v) != SUM_FIELDS)
			return util_err_set(err, -EBADMSG,
			                    "journal snapshot: bad summary entry %zu", i);
		/* only what list shows: no labels or user data objects */
		vm = util_xcalloc(1, sizeof(*vm));
		vm->id = (uint64_t)sum_int(v, SUM_ID);
		vm->def.name = util_xstrdup(json_string_value(json_array_get(v, SUM_NAME)));
		vm->def.memory = (uint64_t)sum_int(v, SUM_MEMORY_MIB) << 20;
		vm->def.vcpus = (unsigned)sum_int(v, SUM_VCPUS);
		vm->started_ms = sum_int(v, SUM_STARTED);
		if (json_array_size(v) == SUM_FIELDS) {
			vm->supervisor_pid = (pid_t)sum_int(v, SUM_SUP_PID);
			vm->supervisor_starttime = (uint64_t)sum_int(v, SUM_SUP_START);
			vm->qemu_pid = (pid_t)sum_int(v, SUM_QEMU_PID);
			vm->qemu_starttime = (uint64_t)sum_int(v, SUM_QEMU_START);
		}
		r = lc_state_parse(json_string_value(json_array_get(v, SUM_STATE)), &vm->state,
		                   err);
		if (r == 0)
			r = lc_lcm_parse(json_string_value(json_array_get(v, SUM_LCM)), &vm->lcm,
			                 err);
		if (r < 0) {
			vm_free(vm);
			return util_err_prefix(err, "journal snapshot summary");
		}
		db_insert(db, vm);
	}
	return 0;
}

static int db_load_state(lc_db *db, json_t *state, util_err *err)
{
	json_t *vms, *v;
	size_t i;

	if (!state)
		return 0;
	db->next_id = (uint64_t)int_of(state, "next_id");
	vms = json_object_get(state, "vms");
	json_array_foreach (vms, i, v) {
		lc_vm *vm;
		int r = vm_from_json(v, db->summary, &vm, err);

		if (r < 0)
			return util_err_prefix(err, "journal snapshot");
		db_insert(db, vm);
	}
	v = json_object_get(state, "intents");
	if (json_is_object(v))
		json_object_update(db->intents, v);
	v = json_object_get(state, "networks");
	if (json_is_object(v))
		json_object_update(db->networks, v);
	v = json_object_get(state, "host");
	if (json_is_object(v))
		json_object_update(db->host, v);
	return 0;
}

void lc_json_apply_changes(json_t *into, json_t *changes)
{
	const char *k;
	json_t *v;

	json_object_foreach (changes, k, v) {
		if (json_is_null(v))
			json_object_del(into, k);
		else
			json_object_set(into, k, v);
	}
}

static int apply_update(lc_vm *vm, json_t *rec)
{
	static const char *const maps[] = { "labels", "user" };

	for (size_t m = 0; m < UTIL_ARRAY_SIZE(maps); m++) {
		json_t *target = m == 0 ? vm->def.labels : vm->def.user;

		lc_json_apply_changes(target, json_object_get(rec, maps[m]));
	}
	return 0;
}

/* ---- handlers the operations register -------------------------------------------- */

static struct {
	const char *match;
	lc_replay_fn fn;
} replays[LC_STORE_HANDLERS];
static size_t n_replays;

static struct {
	const char *match;
	lc_recover_fn fn;
} recoveries[LC_STORE_HANDLERS];
static size_t n_recoveries;

static bool handler_matches(const char *match, const char *name)
{
	size_t n = strlen(match);

	if (!name)
		return false;
	if (n > 0 && match[n - 1] == '-')
		return strncmp(name, match, n) == 0;
	return strcmp(name, match) == 0;
}

/* Constructors run before main, so a full table is a programming error
 * that must show at once rather than drop a handler. */
void lc_store_on_record(const char *match, lc_replay_fn fn)
{
	if (n_replays == LC_STORE_HANDLERS)
		abort();
	replays[n_replays].match = match;
	replays[n_replays++].fn = fn;
}

void lc_store_on_intent(const char *match, lc_recover_fn fn)
{
	if (n_recoveries == LC_STORE_HANDLERS)
		abort();
	recoveries[n_recoveries].match = match;
	recoveries[n_recoveries++].fn = fn;
}

static lc_recover_fn recovery_of(const char *op)
{
	for (size_t i = 0; i < n_recoveries; i++)
		if (handler_matches(recoveries[i].match, op))
			return recoveries[i].fn;
	return NULL;
}

/* The open intents of processes that died: their VM locks died with them.
 * An intent whose lock is held belongs to a live command (or to the
 * caller, who settles it with lc_db_recover_vm); one no handler knows was
 * written by another version of qvm and is left to it. */
static int db_recover(lc_db *db, util_err *err)
{
	_cleanup_json_ json_t *open = json_deep_copy(lc_db_intents(db));
	const char *key;
	json_t *intent;

	json_object_foreach (open, key, intent) {
		lc_recover_fn fn = recovery_of(json_string_value(json_object_get(intent, "op")));
		uint64_t id = (uint64_t)json_integer_value(json_object_get(intent, "id"));
		_cleanup_close_ int lock = -1;
		int r;

		if (!fn || lc_vm_lock(db, id, 0, &lock, NULL) < 0)
			continue;
		r = fn(db, strtoull(key, NULL, 10), intent, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int lc_db_recover_vm(lc_db *db, uint64_t id, const char *const *ops, util_err *err)
{
	_cleanup_json_ json_t *open = json_deep_copy(lc_db_intents(db));
	const char *key;
	json_t *intent;

	json_object_foreach (open, key, intent) {
		const char *op = json_string_value(json_object_get(intent, "op"));
		lc_recover_fn fn = recovery_of(op);
		int r;

		if ((uint64_t)json_integer_value(json_object_get(intent, "id")) != id ||
		    !util_strv_contains(ops, op) || !fn)
			continue;
		r = fn(db, strtoull(key, NULL, 10), intent, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Apply one record to the model. Records were validated when written; a
 * record that does not fit the model means the journal is corrupt. */
static void note_recent(lc_vm *vm, uint64_t seq)
{
	if (vm->n_recent && vm->recent[vm->n_recent - 1] >= seq)
		return; /* seen (a replay), or out of order: keep it ascending */
	if (vm->n_recent == LC_VM_RECENT)
		memmove(vm->recent, vm->recent + 1, --vm->n_recent * sizeof(vm->recent[0]));
	vm->recent[vm->n_recent++] = seq;
}

/* A new VM's history starts at the intent that created it. */
static void note_create_intent(lc_db *db, lc_vm *vm)
{
	const char *key;
	json_t *in;

	json_object_foreach (db->intents, key, in)
		if ((uint64_t)int_of(in, "id") == vm->id &&
		    util_streq(json_string_value(json_object_get(in, "op")), "create"))
			note_recent(vm, strtoull(key, NULL, 10));
}

/* A "step" of an open intent, or a network's record: about the database,
 * no VM. */
static int apply_step_or_net(lc_db *db, uint64_t seq, json_t *rec, const char *type, util_err *err)
{
	char key[32];

	if (util_streq(type, "step")) {
		/* what an open intent has done so far (net create: each
		 * interface it made), merged into its data for recovery */
		json_t *in, *copy;

		snprintf(key, sizeof(key), "%" PRIu64, (uint64_t)int_of(rec, "intent"));
		in = json_object_get(db->intents, key);
		if (!in)
			return util_err_set(err, -EBADMSG,
			                    "journal record %" PRIu64
			                    " is a step of intent %s, which is not open",
			                    seq, key);
		copy = json_deep_copy(in);
		if (!json_is_object(json_object_get(copy, "data")))
			json_object_set_new(copy, "data", json_object());
		json_object_update(json_object_get(copy, "data"), json_object_get(rec, "data"));
		json_object_set_new(db->intents, key, copy);
		return 0;
	}
	if (util_streq(type, "net")) {
		/* a network defined or changed: the whole object */
		json_t *net = json_object_get(rec, "net");
		const char *name = json_string_value(json_object_get(net, "name"));

		if (!name)
			return util_err_set(
			        err, -EBADMSG,
			        "journal record %" PRIu64 " has a network without a name", seq);
		json_object_set(db->networks, name, net);
		return 0;
	}
	/* net-delete */
	json_object_del(db->networks, json_string_value(json_object_get(rec, "name")));
	return 0;
}

static int db_apply(lc_db *db, uint64_t seq, json_t *rec, util_err *err)
{
	const char *type = json_string_value(json_object_get(rec, "type"));
	uint64_t id = (uint64_t)int_of(rec, "id");
	lc_vm *vm = db_vm_by_id(db, id);
	char key[32];

	if (vm)
		note_recent(vm, seq);
	if (util_streq(type, "intent")) {
		snprintf(key, sizeof(key), "%" PRIu64, seq);
		json_object_set(db->intents, key, rec);
		if (id >= db->next_id)
			db->next_id = id + 1; /* the id is reserved by the intent */
		return 0;
	}
	if (util_streq(type, "done")) {
		snprintf(key, sizeof(key), "%" PRIu64, (uint64_t)int_of(rec, "intent"));
		json_object_del(db->intents, key);
		return 0;
	}
	if (util_streq(type, "step") || util_streq(type, "net") || util_streq(type, "net-delete"))
		return apply_step_or_net(db, seq, rec, type, err);
	if (util_streq(type, "host")) {
		/* the host's settings: about no VM */
		lc_json_apply_changes(db->host, json_object_get(rec, "set"));
		return 0;
	}
	if (util_streq(type, "define")) {
		lc_vm *nvm;
		int r;

		if (vm)
			return util_err_set(
			        err, -EBADMSG,
			        "journal record %" PRIu64 " defines vm %" PRIu64 " twice", seq, id);
		r = vm_from_json(rec, db->summary, &nvm, err);
		if (r < 0)
			return util_err_prefix(err, "journal record %" PRIu64, seq);
		nvm->created_ms = int_of(rec, "time");
		nvm->state_ms = nvm->created_ms;
		note_create_intent(db, nvm);
		note_recent(nvm, seq);
		db_insert(db, nvm);
		return 0;
	}
	if (!vm)
		return util_err_set(err, -EBADMSG,
		                    "journal record %" PRIu64 " names unknown vm %" PRIu64, seq,
		                    id);
	if (util_streq(type, "state")) {
		vm->state_ms = int_of(rec, "time");
		return apply_state_fields(vm, rec, err);
	}
	if (util_streq(type, "update"))
		return apply_update(vm, rec);
	if (util_streq(type, "sent")) {
		vm->request_sent = true;
		return 0;
	}
	if (util_streq(type, "redefine")) {
		lc_vmdef def;
		int r = def_from_fields(rec, db->summary, &def, err);

		if (r < 0)
			return util_err_prefix(err, "journal record %" PRIu64, seq);
		lc_vmdef_clear(&vm->def);
		vm->def = def;
		return 0;
	}
	for (size_t i = 0; i < n_replays; i++)
		if (handler_matches(replays[i].match, type))
			return replays[i].fn(vm, seq, rec, err);
	return util_err_set(err, -EBADMSG, "journal record %" PRIu64 " has unknown type '%s'", seq,
	                    type ? type : "");
}

static int apply_cb(uint64_t seq, json_t *rec, void *ud, util_err *err)
{
	return db_apply(ud, seq, rec, err);
}

/* Append a record (a new reference, consumed) and apply it to the model. */
static uint64_t compact_bytes(void)
{
	uint64_t eighth = lc_journal_max_bytes() / 8;

	return eighth < COMPACT_BYTES_MAX ? eighth : COMPACT_BYTES_MAX;
}

static bool db_log_is_long(const lc_db *db)
{
	return lc_journal_count(db->journal) >= COMPACT_AFTER ||
	       lc_journal_log_size(db->journal) >= compact_bytes();
}

/* Fold the log into the snapshot. Compaction only shortens loading:
 * failing it loses nothing, and an append that then cannot fit says so. */
static void db_compact(lc_db *db)
{
	_cleanup_json_ json_t *state = db_state_json(db);
	_cleanup_json_ json_t *summary = db_summary_json(db);
	util_err ignored = { 0 };

	lc_journal_compact(db->journal, state, summary, &ignored);
}

int lc_db_append(lc_db *db, json_t *rec, uint64_t *ret_seq, util_err *err)
{
	_cleanup_json_ json_t *owned = rec;
	uint64_t seq;
	int r;

	if (!db->write)
		return util_err_set(err, -EPERM, "the database was opened read-only");
	if (!json_object_get(rec, "time"))
		json_object_set_new(rec, "time", json_integer(util_realtime_ms()));
	if (util_streq(json_string_value(json_object_get(rec, "type")), "done") &&
	    !json_object_get(rec, "id")) {
		/* the vm's id, so that a reader of its history finds the end of
		 * its intent as it finds the intent */
		char key[32];
		json_t *intent;

		snprintf(key, sizeof(key), "%" PRId64, int_of(rec, "intent"));
		intent = json_object_get(db->intents, key);
		if (intent)
			json_object_set_new(rec, "id", json_integer(int_of(intent, "id")));
	}
	if (!db->group && lc_journal_log_size(db->journal) >= compact_bytes())
		db_compact(db);
	r = lc_journal_append(db->journal, rec, &seq, err);
	if (r < 0)
		return r;
	r = db_apply(db, seq, rec, err);
	if (r < 0)
		return r;
	if (ret_seq)
		*ret_seq = seq;
	return 0;
}

void lc_db_group_begin(lc_db *db)
{
	/* a compaction rewrites the log: not in the middle of a group */
	if (lc_journal_log_size(db->journal) >= compact_bytes())
		db_compact(db);
	db->group = true;
	lc_journal_group_begin(db->journal);
}

int lc_db_group_commit(lc_db *db, util_err *err)
{
	db->group = false;
	return lc_journal_group_commit(db->journal, err);
}

int lc_db_record_state(lc_db *db, lc_vm *vm, lc_state state, lc_lcm lcm, const char *reason,
                       const char *error, util_err *err)
{
	json_t *rec = json_pack("{s:s, s:I, s:s, s:s}", "type", "state", "id", (json_int_t)vm->id,
	                        "state", lc_state_name(state), "lcm", lc_lcm_name(lcm));

	json_object_set_new(rec, "reason", reason ? json_string(reason) : json_null());
	if (error)
		json_object_set_new(rec, "error", json_string(error));
	return lc_db_append_state(db, vm->id, state, rec, err);
}

int lc_db_append_state(lc_db *db, uint64_t id, lc_state state, json_t *rec, util_err *err)
{
	int r = lc_db_append(db, rec, NULL, err);

	/* A VM in DONE takes no more commands, and its id is never reused:
	 * its lock file would only pile up in run/. Removed after the
	 * record, so that no second holder can exist while it mattered. */
	if (r == 0 && state == LC_DONE) {
		_cleanup_free_ char *path = lc_vm_lock_path(db->root, id);

		unlink(path);
	}
	return r;
}

/* ---- opening, recovery, closing ------------------------------------------------ */

static char *journal_dir(const char *root)
{
	return util_xasprintf("%s/journal", root);
}

static int make_root(const char *root, util_err *err)
{
	static const char *const sub[] = { "journal", "vms", "images", "run" };
	int r = util_mkdir_p(root, 0700, err);

	for (size_t i = 0; r == 0 && i < UTIL_ARRAY_SIZE(sub); i++) {
		_cleanup_free_ char *p = util_xasprintf("%s/%s", root, sub[i]);

		r = util_mkdir_p(p, 0700, err);
	}
	return r;
}

/* lc_db_open's own flag: the reader's open after it settled. */
#define DB_SETTLED (1u << 30)

/* Is a net create or delete open: one under way, or one of a qvm that
 * died? */
static bool net_intent_open(lc_db *db)
{
	const char *key;
	json_t *in;

	json_object_foreach (db->intents, key, in)
		if (util_startswith(json_string_value(json_object_get(in, "op")), "net-"))
			return true;
	return false;
}

static int db_open(const char *root, unsigned flags, int timeout_ms, lc_db **ret_db, util_err *err);

int lc_db_open(const char *root, unsigned flags, lc_db **ret_db, util_err *err)
{
	lc_db *db = NULL;
	int r = db_open(root, flags, LOCK_TIMEOUT_MS, &db, err);

	if (r < 0 || db->write || (flags & DB_SETTLED) || !net_intent_open(db)) {
		if (r == 0)
			*ret_db = db;
		return r;
	}
	/* A net create or delete cut short leaves interfaces that no VM's
	 * command looks at: a reader (list, net list...) settles it too, if
	 * it can be the writer at once (else the writer is at it, alive).
	 * The writer's recovery does it; then read again. */
	lc_db_close(db);
	{
		util_err ignored = { 0 };
		lc_db *w = NULL;

		if (db_open(root, LC_DB_WRITE, 0, &w, &ignored) == 0)
			lc_db_close(w);
	}
	return lc_db_open(root, flags | DB_SETTLED, ret_db, err);
}

static int db_open(const char *root, unsigned flags, int timeout_ms, lc_db **ret_db, util_err *err)
{
	bool write = flags & LC_DB_WRITE;
	_cleanup_free_ char *jdir = journal_dir(root);
	lc_journal *j = NULL;
	lc_db *db;
	struct stat st;
	int r;

	if (root[0] != '/')
		return util_err_set(err, -EINVAL, "the root '%s' must be an absolute path", root);
	if (write) {
		r = make_root(root, err);
		if (r < 0)
			return r;
	} else if (stat(jdir, &st) < 0) {
		/* nothing was ever defined here: an empty database */
		db = util_xcalloc(1, sizeof(*db));
		db->root = util_xstrdup(root);
		db->next_id = 1;
		db->intents = json_object();
		db->networks = json_object();
		db->host = json_object();
		*ret_db = db;
		return 0;
	}
	r = lc_journal_open(jdir,
	                    write                     ? LC_JOURNAL_WRITE
	                    : (flags & LC_DB_SUMMARY) ? LC_JOURNAL_SUMMARY
	                                              : 0,
	                    timeout_ms, &j, err);
	if (r < 0)
		return r;
	db = util_xcalloc(1, sizeof(*db));
	db->root = util_xstrdup(root);
	db->write = write;
	db->summary = !write && (flags & LC_DB_SUMMARY);
	db->next_id = 1;
	db->intents = json_object();
	db->networks = json_object();
	db->host = json_object();
	if (lc_journal_state_is_summary(j))
		r = db_load_summary(db, lc_journal_state(j), err);
	else
		r = db_load_state(db, lc_journal_state(j), err);
	if (r == 0)
		r = lc_journal_foreach(j, apply_cb, db, err);
	if (db->next_id == 0)
		db->next_id = 1;
	if (r < 0) {
		lc_journal_close(j);
		lc_db_close(db);
		return r;
	}
	if (write) {
		db->journal = j;
		lc_journal_set_key_fn(j, vm_key);
		if (lc_journal_torn(j))
			db->notice = util_xasprintf(
			        "the journal's last record was torn by a crash and dropped; the damaged log was kept as '%s'",
			        lc_journal_torn(j));
		r = db_recover(db, err);
		if (r < 0) {
			lc_db_close(db);
			return r;
		}
	} else {
		/* readers keep no lock: the model is a consistent copy */
		lc_journal_close(j);
	}
	*ret_db = db;
	return 0;
}

/* ---- one VM's read ---------------------------------------------------------------- */

typedef struct part_at {
	uint64_t id, off, len;
	uint32_t crc;
} part_at;

/* One index line: the member, its element, where, and the key's fields. */
/* The next space-separated field of *p (cut at the space, which *p then
 * passes), or NULL at the end. The index is scanned by hand: sscanf was
 * a tenth of a show among a thousand VMs. */
static char *next_field(char **p)
{
	char *f = *p, *sp;

	if (!f || !*f)
		return NULL;
	sp = strchr(f, ' ');
	if (sp) {
		*sp = '\0';
		*p = sp + 1;
	} else {
		*p = f + strlen(f);
	}
	return f;
}

static bool field_u64(char **p, int base, uint64_t *ret)
{
	char *f = next_field(p), *end;

	if (!f || !*f)
		return false;
	errno = 0;
	*ret = strtoull(f, &end, base);
	return !errno && !*end;
}

/* One index line (changed in place): "<member> <i> <off> <len> <crc>
 * <key>", where a VM's key is "<id> <STATE> <name>". *ret_member and
 * *ret_name (NULL but for a VM's) point into line. */
static int parse_index_line(char *line, const char **ret_member, part_at *at, lc_state *ret_state,
                            const char **ret_name)
{
	char *p = line, *member = next_field(&p), *elem = next_field(&p), *state;
	uint64_t crc;

	if (!member || !elem || !field_u64(&p, 10, &at->off) || !field_u64(&p, 10, &at->len) ||
	    !field_u64(&p, 16, &crc) || crc > UINT32_MAX)
		return -EBADMSG;
	at->crc = (uint32_t)crc;
	at->id = 0;
	*ret_member = member;
	*ret_name = NULL;
	if (strcmp(member, "vms") == 0 && strcmp(elem, "-1") != 0) {
		if (!field_u64(&p, 10, &at->id) || !(state = next_field(&p)) || !*p ||
		    lc_state_parse(state, ret_state, NULL) < 0)
			return -EBADMSG;
		*ret_name = p;
	}
	return 0;
}

/* From the index alone: a stub of every VM of the snapshot (id, name,
 * state), where each one's record is, and the small members in full. */
static int load_index(lc_db *db, lc_journal *j, part_at **ret_parts, size_t *ret_n, util_err *err)
{
	_cleanup_free_ char *copy = util_xstrdup(lc_journal_index(j));
	part_at *parts = NULL;
	size_t n = 0, cap = 0;
	char *save = NULL;
	int r = 0;

	for (char *l = strtok_r(copy, "\n", &save); l && r == 0; l = strtok_r(NULL, "\n", &save)) {
		const char *member, *name;
		lc_state state;
		part_at at;
		json_t *v;

		if (parse_index_line(l, &member, &at, &state, &name) < 0) {
			r = util_err_set(err, -EBADMSG, "journal snapshot: bad index line '%.60s'",
			                 l);
			break;
		}
		if (name) {
			lc_vm *vm = util_xcalloc(1, sizeof(*vm));

			vm->id = at.id;
			vm->def.name = util_xstrdup(name);
			vm->state = state;
			db_insert(db, vm);
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				parts = util_xrealloc(parts, cap * sizeof(*parts));
			}
			parts[n++] = at;
			continue;
		}
		if (strcmp(member, "next_id") && strcmp(member, "intents") &&
		    strcmp(member, "networks") && strcmp(member, "host"))
			continue;
		v = lc_journal_part(j, at.off, at.len, at.crc, err);
		if (!v) {
			r = -EBADMSG;
			break;
		}
		if (strcmp(member, "next_id") == 0)
			db->next_id = (uint64_t)json_integer_value(v);
		else if (strcmp(member, "host") == 0)
			json_object_update(db->host, v);
		else
			json_object_update(strcmp(member, "intents") ? db->networks : db->intents,
			                   v);
		json_decref(v);
	}
	if (r < 0) {
		free(parts);
		return r;
	}
	*ret_parts = parts;
	*ret_n = n;
	return 0;
}

typedef struct replay_one {
	lc_db *db;
	uint64_t id;
	uint64_t create_intent; /* its create intent's seq, seen before it existed */
} replay_one;

/* The records of one VM, onto its full model: those about the database
 * (intents, networks) were applied with the stubs. */
static int replay_one_cb(uint64_t seq, json_t *rec, void *ud, util_err *err)
{
	static const char *const db_types[] = { "intent",     "done", "step", "net",
		                                "net-delete", "host", NULL };
	replay_one *o = ud;
	const char *type = json_string_value(json_object_get(rec, "type"));
	lc_vm *vm = db_vm_by_id(o->db, o->id);
	int r;

	if ((uint64_t)int_of(rec, "id") != o->id)
		return 0;
	if (util_strv_contains(db_types, type)) {
		/* applied with the stubs; only its place in the history is new */
		if (vm)
			note_recent(vm, seq);
		else if (!vm && util_streq(type, "intent"))
			o->create_intent = seq;
		return 0;
	}
	r = db_apply(o->db, seq, rec, err);
	vm = db_vm_by_id(o->db, o->id);
	if (r == 0 && vm && o->create_intent && util_streq(type, "define") &&
	    vm->recent[0] != o->create_intent && vm->n_recent < LC_VM_RECENT) {
		memmove(vm->recent + 1, vm->recent, vm->n_recent++ * sizeof(vm->recent[0]));
		vm->recent[0] = o->create_intent;
	}
	return r;
}

/* Make VM id of db (a stub, with its record at parts) whole: its snapshot
 * record in full, then its own records of the log. */
static int make_whole(lc_db *db, lc_journal *j, uint64_t id, const part_at *parts, size_t n,
                      util_err *err)
{
	replay_one o = { .db = db, .id = id };
	lc_vm *full = NULL;
	size_t at = 0;
	int r = 0;

	while (db->vms[at]->id != id)
		at++;
	for (size_t i = 0; i < n && !full && r == 0; i++) {
		_cleanup_json_ json_t *v = NULL;

		if (parts[i].id != id)
			continue;
		v = lc_journal_part(j, parts[i].off, parts[i].len, parts[i].crc, err);
		r = v ? vm_from_json(v, false, &full, err) : -EBADMSG;
	}
	if (r < 0)
		return util_err_prefix(err, "journal snapshot");
	vm_free(db->vms[at]);
	if (full) {
		db->vms[at] = full;
	} else {
		/* defined after the snapshot: its define record makes it */
		memmove(&db->vms[at], &db->vms[at + 1], (db->n_vms - at - 1) * sizeof(lc_vm *));
		db->n_vms--;
	}
	db->summary = false;
	r = lc_journal_foreach(j, replay_one_cb, &o, err);
	db->summary = true;
	return r;
}

/* lc_db_find_any, failing with lc_db_find's message (which points at the
 * live VMs). */
static int find_to_read(lc_db *db, const char *name_or_id, lc_vm **ret_vm, util_err *err)
{
	if (lc_db_find_any(db, name_or_id, ret_vm, NULL) == 0)
		return 0;
	return lc_db_find(db, name_or_id, ret_vm, err);
}

/* For show: the model of one VM in full and of the others only their
 * name and state, from the snapshot's index and the one record the VM has
 * there (parsing a thousand definitions to print one is what it saves). A
 * snapshot without an index, or an open net intent, reads everything. */
int lc_db_open_vm(const char *root, const char *name_or_id, lc_db **ret_db, lc_vm **ret_vm,
                  util_err *err)
{
	_cleanup_free_ char *jdir = journal_dir(root);
	_cleanup_journal_ lc_journal *j = NULL;
	_cleanup_free_ part_at *parts = NULL;
	_cleanup_db_ lc_db *db = NULL;
	size_t n = 0;
	uint64_t id = 0;
	lc_vm *vm;
	struct stat st;
	int r;

	if (root[0] != '/' || stat(jdir, &st) < 0 ||
	    lc_journal_open(jdir, LC_JOURNAL_PARTS, LOCK_TIMEOUT_MS, &j, NULL) < 0 ||
	    !lc_journal_index(j))
		goto whole;
	db = util_xcalloc(1, sizeof(*db));
	db->root = util_xstrdup(root);
	db->summary = true;
	db->next_id = 1;
	db->intents = json_object();
	db->networks = json_object();
	db->host = json_object();
	r = load_index(db, j, &parts, &n, err);
	if (r == 0)
		r = lc_journal_foreach(j, apply_cb, db, err);
	if (r < 0)
		return r;
	if (net_intent_open(db))
		goto whole;
	r = find_to_read(db, name_or_id, &vm, err);
	if (r == 0)
		id = vm->id; /* the stub goes */
	if (r == 0)
		r = make_whole(db, j, id, parts, n, err);
	if (r == 0 && !(vm = db_vm_by_id(db, id)))
		r = util_err_set(err, -EBADMSG, "journal: vm '%s' vanished in its replay",
		                 name_or_id);
	if (r < 0)
		return r;
	/* kept (with its shared lock) until lc_db_close: the history walk
	 * of the same VM reads the same files, without loading them again */
	db->reader = TAKE_PTR(j);
	*ret_vm = vm;
	*ret_db = TAKE_PTR(db);
	return 0;
whole:
	lc_db_close(TAKE_PTR(db));
	lc_journal_close(TAKE_PTR(j));
	r = lc_db_open(root, 0, &db, err);
	if (r == 0)
		r = find_to_read(db, name_or_id, &vm, err);
	if (r < 0)
		return r;
	*ret_vm = vm;
	*ret_db = TAKE_PTR(db);
	return 0;
}

json_t *lc_intent_rec(const char *op, uint64_t id, json_t *data)
{
	json_t *rec =
	        json_pack("{s:s, s:s, s:I}", "type", "intent", "op", op, "id", (json_int_t)id);

	if (data)
		json_object_set_new(rec, "data", data);
	return rec;
}

json_t *lc_done_rec(uint64_t seq, const char *result, const char *error)
{
	json_t *rec = json_pack("{s:s, s:I, s:s}", "type", "done", "intent", (json_int_t)seq,
	                        "result", result);

	if (error)
		json_object_set_new(rec, "error", json_string(error));
	return rec;
}

int lc_db_intent(lc_db *db, const char *op, uint64_t id, json_t *data, uint64_t *ret_seq,
                 util_err *err)
{
	return lc_db_append(db, lc_intent_rec(op, id, data), ret_seq, err);
}

int lc_db_done(lc_db *db, uint64_t seq, const char *result, util_err *err)
{
	return lc_db_append(db, lc_done_rec(seq, result, NULL), NULL, err);
}

void lc_db_forget(void)
{
	lc_journal_forget();
}

void lc_db_close(lc_db *db)
{
	if (!db)
		return;
	if (db->group) /* never committed: its records were not written */
		lc_journal_group_abort(db->journal);
	else if (db->journal && db_log_is_long(db))
		db_compact(db);
	lc_journal_close(db->journal);
	lc_journal_close(db->reader);
	for (size_t i = 0; i < db->n_vms; i++)
		vm_free(db->vms[i]);
	free(db->vms);
	json_decref(db->intents);
	json_decref(db->networks);
	json_decref(db->host);
	free(db->notice);
	free(db->root);
	free(db);
}

const char *lc_db_notice(const lc_db *db)
{
	return db->notice;
}

const char *lc_db_root(const lc_db *db)
{
	return db->root;
}

bool lc_db_writable(const lc_db *db)
{
	return db->write;
}

bool lc_db_has_intent(lc_db *db, uint64_t id, const char *const *ops)
{
	const char *key;
	json_t *intent;

	json_object_foreach (db->intents, key, intent) {
		const char *op = json_string_value(json_object_get(intent, "op"));

		if ((uint64_t)json_integer_value(json_object_get(intent, "id")) == id &&
		    (!ops || util_strv_contains(ops, op)))
			return true;
	}
	return false;
}

json_t *lc_db_intents(lc_db *db)
{
	return db->intents;
}

json_t *lc_db_networks(lc_db *db)
{
	return db->networks;
}

json_t *lc_db_host(lc_db *db)
{
	return db->host;
}

uint64_t lc_db_next_id(const lc_db *db)
{
	return db->next_id;
}

size_t lc_db_count(const lc_db *db)
{
	return db->n_vms;
}

lc_vm *lc_db_vm_at(lc_db *db, size_t i)
{
	return i < db->n_vms ? db->vms[i] : NULL;
}

lc_vm *lc_db_vm_by_id(lc_db *db, uint64_t id)
{
	return db_vm_by_id(db, id);
}

int lc_db_find(lc_db *db, const char *name_or_id, lc_vm **ret_vm, util_err *err)
{
	uint64_t id;

	if (name_or_id && *name_or_id && strspn(name_or_id, "0123456789") == strlen(name_or_id)) {
		lc_vm *vm;

		if (util_parse_uint(name_or_id, 1, UINT64_MAX, &id, NULL) == 0 &&
		    (vm = db_vm_by_id(db, id))) {
			*ret_vm = vm;
			return 0;
		}
		return util_err_set(err, -ENOENT, "no vm with id %s", name_or_id);
	}
	for (size_t i = 0; i < db->n_vms; i++) {
		lc_vm *vm = db->vms[i];

		if (vm->state != LC_DONE && util_streq(vm->def.name, name_or_id)) {
			*ret_vm = vm;
			return 0;
		}
	}
	return util_err_set(err, -ENOENT, "no vm named '%s' (see qvm list --all)",
	                    name_or_id ? name_or_id : "");
}

int lc_db_find_any(lc_db *db, const char *name_or_id, lc_vm **ret_vm, util_err *err)
{
	lc_vm *done = NULL;

	if (lc_db_find(db, name_or_id, ret_vm, err) == 0)
		return 0;
	/* a DONE name is free for reuse: the newest of them is the one meant */
	for (size_t i = 0; i < db->n_vms; i++) {
		lc_vm *vm = db->vms[i];

		if (vm->state == LC_DONE && util_streq(vm->def.name, name_or_id) &&
		    (!done || vm->id > done->id))
			done = vm;
	}
	if (!done)
		return -ENOENT;
	*ret_vm = done;
	return 0;
}

char *lc_vm_dir(const lc_db *db, uint64_t id)
{
	return util_xasprintf("%s/vms/%" PRIu64, db->root, id);
}

char *lc_vm_run_dir(const lc_db *db, uint64_t id)
{
	return util_xasprintf("%s/run/%" PRIu64, db->root, id);
}

char *lc_vm_lock_path(const char *root, uint64_t id)
{
	return util_xasprintf("%s/run/vm-%" PRIu64 ".lock", root, id);
}

int lc_vm_lock(const lc_db *db, uint64_t id, int timeout_ms, int *ret_fd, util_err *err)
{
	_cleanup_free_ char *path = lc_vm_lock_path(db->root, id);
	int r = util_lock_path(path, true, timeout_ms, ret_fd, err);

	if (r == -EBUSY)
		return util_err_set(err, -EBUSY,
		                    "vm %" PRIu64 " is busy with another qvm command; try again",
		                    id);
	return r;
}

/* ---- history ------------------------------------------------------------------ */

typedef struct history_ctx {
	uint64_t id;
	json_t *ops; /* the ops of this vm's intents, by their seq */
	json_t *def; /* the definition so far (define, redefine, update), or NULL */
	json_t *out;
} history_ctx;

static const char *str_of(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* "labels tier=web, -old" for the changes of one map in an update record */
static void append_changes(char **text, const char *title, json_t *changes)
{
	const char *k;
	json_t *v;
	const char *sep = *text ? "; " : "";

	if (json_object_size(changes) == 0)
		return;
	util_append(text, "%s%s", sep, title);
	sep = " ";
	json_object_foreach (changes, k, v) {
		if (json_is_null(v))
			util_append(text, "%s-%s", sep, k);
		else
			util_append(text, "%s%s=%s", sep, k, json_string_value(v));
		sep = ", ";
	}
}

/* "disk 1 added", "disk 1 removed", "disk 1 resized" to text: how the
 * disks or nics (kind) of two definitions differ, matched by id */
static void append_items(char **text, const char *kind, json_t *old, json_t *new)
{
	const char *sep = *text ? ", " : "";
	json_t *a, *b;
	size_t i, k;

	json_array_foreach (new, i, b) {
		json_t *match = NULL;

		json_array_foreach (old, k, a)
			if (json_equal(json_object_get(a, "id"), json_object_get(b, "id")))
				match = a;
		if (!match || !json_equal(match, b))
			util_append(text, "%s%s %" PRId64 " %s", sep, kind, int_of(b, "id"),
			            !match ? "added"
			            : json_equal(json_object_get(match, "size"),
			                         json_object_get(b, "size"))
			                    ? "changed"
			                    : "resized");
		sep = *text ? ", " : "";
	}
	json_array_foreach (old, k, a) {
		bool kept = false;

		json_array_foreach (new, i, b)
			kept = kept ||
			       json_equal(json_object_get(a, "id"), json_object_get(b, "id"));
		if (!kept)
			util_append(text, "%s%s %" PRId64 " removed", sep, kind, int_of(a, "id"));
		sep = *text ? ", " : "";
	}
}

/* What a redefine changed from old to new: "disk 1 added", "cdrom". A
 * new string, or NULL when it cannot tell. */
static char *def_changes(json_t *old, json_t *new)
{
	char *text = NULL;
	const char *k;
	json_t *v;

	if (!old || !new)
		return NULL;
	json_object_foreach (new, k, v) {
		if (json_equal(json_object_get(old, k), v))
			continue;
		if (util_streq(k, "disks") || util_streq(k, "nics"))
			append_items(&text, util_streq(k, "disks") ? "disk" : "nic",
			             json_object_get(old, k), v);
		else
			util_append(&text, "%s%s", text ? ", " : "", k);
	}
	return text ? text : util_xstrdup("nothing changed");
}

/* Follow the definition through define, redefine and update records;
 * returns what a redefine changed (a new string, or NULL). */
static char *follow_def(history_ctx *h, json_t *rec, const char *type)
{
	json_t *nd;
	char *changes;

	if (util_streq(type, "update") && h->def) {
		lc_json_apply_changes(json_object_get(h->def, "labels"),
		                      json_object_get(rec, "labels"));
		lc_json_apply_changes(json_object_get(h->def, "user"),
		                      json_object_get(rec, "user"));
		return NULL;
	}
	if (!str_of(rec, "def") || !(util_streq(type, "define") || util_streq(type, "redefine")))
		return NULL;
	nd = json_loads(str_of(rec, "def"), 0, NULL);
	changes = util_streq(type, "redefine") ? def_changes(h->def, nd) : NULL;
	json_decref(h->def);
	h->def = nd;
	return changes;
}

/* What a record did, in words, for the records whose state and reason do
 * not say it; NULL for a state record. A new string. */
static char *history_detail(history_ctx *h, json_t *rec)
{
	const char *type = str_of(rec, "type");
	char *text = follow_def(h, rec, type), size[16];

	if (util_streq(type, "redefine") && !str_of(rec, "reason"))
		return text ? text : util_xstrdup("definition changed");
	free(text);
	text = NULL;
	if (util_streq(type, "intent"))
		return util_xstrdup(str_of(rec, "op") ?: "?");
	if (util_streq(type, "done")) {
		char key[32];

		snprintf(key, sizeof(key), "%" PRId64, int_of(rec, "intent"));
		return util_xasprintf("%s %s", str_of(h->ops, key) ?: "?",
		                      str_of(rec, "result") ?: "?");
	}
	if (util_streq(type, "define"))
		return util_xasprintf(
		        "'%s', memory %s, vcpus %" PRId64, str_of(rec, "name") ?: "?",
		        util_format_size((uint64_t)int_of(rec, "memory"), size, sizeof(size)),
		        int_of(rec, "vcpus"));
	if (util_streq(type, "sent"))
		/* older records, from before the field, were all this one */
		return util_xasprintf("%s (the ACPI power button)",
		                      str_of(rec, "command") ?: "system_powerdown");
	if (util_streq(type, "update")) {
		append_changes(&text, "labels", json_object_get(rec, "labels"));
		append_changes(&text, "user", json_object_get(rec, "user"));
		return text ? text : util_xstrdup("nothing changed");
	}
	if (util_streq(type, "state"))
		return NULL;
	if (str_of(rec, "reason"))
		return util_xstrdup(str_of(rec, "reason"));
	if (str_of(rec, "tag"))
		return util_xasprintf("snapshot '%s'", str_of(rec, "tag"));
	return NULL;
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static int history_cb(uint64_t seq, json_t *rec, void *ud, util_err *err)
{
	history_ctx *h = ud;
	const char *type = str_of(rec, "type");
	char key[32];
	char *detail;
	json_t *pub;

	(void)err;
	snprintf(key, sizeof(key), "%" PRId64, int_of(rec, "intent"));
	/* a done record older than its "id" names only its intent */
	if ((uint64_t)int_of(rec, "id") != h->id &&
	    !(util_streq(type, "done") && json_object_get(h->ops, key)))
		return 0;
	if (util_streq(type, "intent")) {
		snprintf(key, sizeof(key), "%" PRIu64, seq);
		json_object_set_new(h->ops, key, str_or_null(str_of(rec, "op")));
	}
	detail = history_detail(h, rec);
	pub = json_pack("{s:I, s:I, s:s}", "seq", (json_int_t)seq, "time_ms",
	                (json_int_t)int_of(rec, "time"), "type", type ?: "?");
	json_object_set_new(pub, "state", str_or_null(str_of(rec, "state")));
	json_object_set_new(pub, "lcm", str_or_null(str_of(rec, "lcm")));
	json_object_set_new(pub, "reason", str_or_null(str_of(rec, "reason")));
	json_object_set_new(pub, "error", str_or_null(str_of(rec, "error")));
	json_object_set_new(pub, "detail", str_or_null(detail));
	free(detail);
	json_array_append_new(h->out, pub);
	return 0;
}

int lc_vm_history_tail(lc_db *db, const lc_vm *vm, size_t n, json_t **ret_array, util_err *err)
{
	_cleanup_free_ char *jdir = journal_dir(db->root);
	_cleanup_free_ char *needle = util_xasprintf("\"id\":%" PRIu64, vm->id);
	history_ctx h = { vm->id, json_object(), NULL, json_array() };
	/* a VM that knows none (from a journal older than them): all of it */
	int r = lc_journal_foreach_history_of(jdir, needle, vm->n_recent ? vm->recent : NULL,
	                                      vm->n_recent, history_cb, &h, err);

	json_decref(h.ops);
	json_decref(h.def);
	if (r < 0) {
		json_decref(h.out);
		return r;
	}
	while (json_array_size(h.out) > n)
		json_array_remove(h.out, 0);
	*ret_array = h.out;
	return 0;
}

int lc_vm_history(lc_db *db, const lc_vm *vm, json_t **ret_array, util_err *err)
{
	_cleanup_free_ char *jdir = journal_dir(db->root);
	_cleanup_free_ char *needle = util_xasprintf("\"id\":%" PRIu64, vm->id);
	history_ctx h = { vm->id, json_object(), NULL, json_array() };
	int r = lc_journal_foreach_history(jdir, needle, history_cb, &h, err);

	json_decref(h.ops);
	json_decref(h.def);

	if (r < 0) {
		json_decref(h.out);
		return r;
	}
	*ret_array = h.out;
	return 0;
}

/* ---- every record, for accounting ----------------------------------------- */

typedef struct each_ctx {
	uint64_t id; /* 0: every VM's */
	lc_record_fn fn;
	void *ud;
} each_ctx;

static int each_cb(uint64_t seq, json_t *rec, void *ud, util_err *err)
{
	each_ctx *c = ud;

	if (c->id && (uint64_t)int_of(rec, "id") != c->id)
		return 0;
	return c->fn(seq, rec, c->ud, err);
}

int lc_db_foreach_record(lc_db *db, uint64_t id, lc_record_fn fn, void *ud, util_err *err)
{
	_cleanup_free_ char *jdir = journal_dir(db->root);
	_cleanup_free_ char *needle = id ? util_xasprintf("\"id\":%" PRIu64, id) : NULL;
	each_ctx c = { id, fn, ud };

	return lc_journal_foreach_history(jdir, needle, each_cb, &c, err);
}
