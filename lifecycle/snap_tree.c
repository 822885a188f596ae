/* The VM snapshot tree as the database models it (vm->snapshots): its
 * records' replay, which this file registers with the store, and the
 * lookups the snapshot and disk operations share. Calls no operation. */
#include <inttypes.h>
#include <string.h>

#include "snap_tree.h"

json_t *lc_snap_items(const lc_vm *vm)
{
	return vm->snapshots ? json_object_get(vm->snapshots, "items") : NULL;
}

static int64_t jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

json_t *lc_snap_by_id(const lc_vm *vm, int64_t id, size_t *ret_index)
{
	json_t *s;
	size_t i;

	json_array_foreach (lc_snap_items(vm), i, s) {
		if (jint(s, "id") == id) {
			if (ret_index)
				*ret_index = i;
			return s;
		}
	}
	return NULL;
}

json_t *lc_snap_by_tag(const lc_vm *vm, const char *tag)
{
	json_t *s;
	size_t i;

	json_array_foreach (lc_snap_items(vm), i, s)
		if (util_streq(jstr(s, "tag"), tag))
			return s;
	return NULL;
}

int lc_snap_find(const lc_vm *vm, const char *snap, json_t **ret, util_err *err)
{
	json_t *s = NULL;
	uint64_t id;

	if (util_all_digits(snap) && util_parse_uint(snap, 1, INT32_MAX, &id, NULL) == 0)
		s = lc_snap_by_id(vm, (int64_t)id, NULL);
	if (!s)
		s = lc_snap_by_tag(vm, snap);
	if (!s)
		return util_err_set(err, -ENOENT,
		                    "vm '%s' has no snapshot '%s'; see qvm snapshot-list %s",
		                    vm->def.name, snap, vm->def.name);
	*ret = s;
	return 0;
}

int64_t lc_snap_current(const lc_vm *vm)
{
	return vm->snapshots ? jint(vm->snapshots, "current") : 0;
}

int lc_snap_apply(lc_vm *vm, uint64_t seq, json_t *rec, util_err *err)
{
	const char *type = jstr(rec, "type");
	json_t *items;

	if (!vm->snapshots)
		vm->snapshots = json_pack("{s:i, s:i, s:[]}", "next", 1, "current", 0, "items");
	items = json_object_get(vm->snapshots, "items");
	if (util_streq(type, "snapshot-add")) {
		json_t *s = json_object_get(rec, "snap");
		int64_t id = jint(s, "id");

		if (!json_is_object(s) || id <= 0)
			return util_err_set(err, -EBADMSG,
			                    "journal record %" PRIu64 ": bad snapshot", seq);
		json_array_append_new(items, json_deep_copy(s));
		json_object_set_new(vm->snapshots, "current", json_integer(id));
		if (id >= jint(vm->snapshots, "next"))
			json_object_set_new(vm->snapshots, "next", json_integer(id + 1));
		return 0;
	}
	if (util_streq(type, "snapshot-del")) {
		int64_t id = jint(rec, "snap"), parent;
		json_t *s, *o;
		size_t at, i;

		/* a summary load knows no tree: nothing to remove */
		if (!(s = lc_snap_by_id(vm, id, &at)))
			return 0;
		parent = jint(s, "parent");
		json_array_foreach (items, i, o)
			if (jint(o, "parent") == id)
				json_object_set_new(o, "parent", json_integer(parent));
		if (lc_snap_current(vm) == id)
			json_object_set_new(vm->snapshots, "current", json_integer(parent));
		json_array_remove(items, at);
		return 0;
	}
	if (util_streq(type, "snapshot-current")) {
		json_object_set_new(vm->snapshots, "current", json_integer(jint(rec, "snap")));
		return 0;
	}
	return util_err_set(err, -EBADMSG, "journal record %" PRIu64 " has unknown type '%s'", seq,
	                    type ? type : "");
}

int lc_snap_forget_all(lc_db *db, lc_vm *vm, util_err *err)
{
	_cleanup_json_ json_t *items = json_deep_copy(lc_snap_items(vm));
	json_t *s;
	size_t i;

	json_array_foreach (items, i, s) {
		int r = lc_db_append(db,
		                     json_pack("{s:s, s:I, s:I, s:s, s:s}", "type", "snapshot-del",
		                               "id", (json_int_t)vm->id, "snap",
		                               (json_int_t)jint(s, "id"), "tag", jstr(s, "tag"),
		                               "reason", "snapshot gone with the vm's disks"),
		                     NULL, err);

		if (r < 0)
			return r;
	}
	return 0;
}

unsigned lc_vm_snapshots_max(const lc_vm *vm)
{
	const char *v = json_string_value(json_object_get(vm->def.user, "snapshots.max"));
	uint64_t n;

	if (v && util_parse_uint(v, 1, 1000, &n, NULL) == 0)
		return (unsigned)n;
	return LC_SNAPSHOTS_MAX_DEFAULT;
}

json_t *lc_snap_of_disk(const lc_vm *vm, unsigned disk_id, const char *name)
{
	json_t *s, *v;
	size_t i, k;

	json_array_foreach (lc_snap_items(vm), i, s) {
		if (!util_streq(jstr(s, "tag"), name))
			continue;
		json_array_foreach (json_object_get(s, "disks"), k, v)
			if (json_integer_value(v) == (json_int_t)disk_id)
				return s;
	}
	return NULL;
}

json_t *lc_snap_public(json_t *s)
{
	json_t *p = json_deep_copy(s);
	bool memory = json_is_true(json_object_get(s, "memory"));
	json_t *size = json_object_get(s, "vmstate_size");

	json_object_del(p, "created");
	json_object_del(p, "vmstate");
	json_object_del(p, "vmstate_size");
	json_object_set_new(p, "created_ms",
	                    json_integer(json_integer_value(json_object_get(s, "created"))));
	json_object_set_new(p, "vmstate_disk",
	                    memory ? json_integer(json_integer_value(json_object_get(s, "vmstate")))
	                           : json_null());
	json_object_set_new(p, "vmstate_size", memory && size ? json_copy(size) : json_null());
	return p;
}

json_t *lc_vm_snapshots_json(const lc_vm *vm)
{
	json_t *items = json_array(), *s;
	size_t i;
	int64_t current = lc_snap_current(vm);

	json_array_foreach (lc_snap_items(vm), i, s)
		json_array_append_new(items, lc_snap_public(s));
	return json_pack("{s:o, s:i, s:o}", "current",
	                 current ? json_integer(current) : json_null(), "max",
	                 (int)lc_vm_snapshots_max(vm), "snapshots", items);
}

__attribute__((constructor)) static void register_snapshot_records(void)
{
	lc_store_on_record("snapshot-", lc_snap_apply);
}
