/* VM snapshots without QEMU: the tree the journal's records build (parents,
 * re-parenting on delete, current) and the refusal of non-qcow2 disks. */
#include <string.h>

#include "lifecycle/snapshot.h"
#include "tap.h"

static json_t *add(int id, int parent, const char *tag)
{
	return json_pack("{s:s, s:i, s:{s:i, s:s, s:i, s:b, s:[i]}}", "type", "snapshot-add", "id",
	                 1, "snap", "id", id, "tag", tag, "parent", parent, "memory", 1, "disks",
	                 0);
}

static json_t *rec(const char *type, int snap)
{
	return json_pack("{s:s, s:i, s:i}", "type", type, "id", 1, "snap", snap);
}

static int apply(lc_vm *vm, json_t *r /* stolen */)
{
	util_err err = { 0 };
	int ret = lc_snap_apply(vm, 1, r, &err);

	json_decref(r);
	return ret;
}

/* "ID:PARENT ..." of the tree */
static const char *tree(const lc_vm *vm)
{
	static char buf[256];
	json_t *s;
	size_t i, n = 0;

	buf[0] = '\0';
	json_array_foreach (json_object_get(vm->snapshots, "items"), i, s)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%lld:%lld", i ? " " : "",
		                      (long long)json_integer_value(json_object_get(s, "id")),
		                      (long long)json_integer_value(json_object_get(s, "parent")));
	return buf;
}

static long long current(const lc_vm *vm)
{
	return (long long)json_integer_value(json_object_get(vm->snapshots, "current"));
}

int main(void)
{
	lc_vm vm;
	lc_disk disks[2];
	util_err err = { 0 };

	memset(&vm, 0, sizeof(vm));
	vm.def.name = (char *)"web";

	/* A, B; revert to A; C: B and C are children of A */
	ok(apply(&vm, add(1, 0, "A")) == 0, "add A");
	ok(apply(&vm, add(2, 1, "B")) == 0, "add B");
	is_int(current(&vm), 2, "current is the snapshot just taken");
	ok(apply(&vm, rec("snapshot-current", 1)) == 0, "revert to A");
	is_int(current(&vm), 1, "current is A");
	ok(apply(&vm, add(3, 1, "C")) == 0, "add C");
	is_str(tree(&vm), "1:0 2:1 3:1", "B and C hang under A");
	is_int(json_integer_value(json_object_get(vm.snapshots, "next")), 4, "next id 4");
	ok(apply(&vm, add(4, 3, "D")) == 0, "add D under C");
	ok(apply(&vm, rec("snapshot-del", 1)) == 0, "delete A");
	is_str(tree(&vm), "2:0 3:0 4:3", "A's children move to A's parent (the root)");
	ok(apply(&vm, rec("snapshot-del", 3)) == 0, "delete C, the current's parent");
	is_str(tree(&vm), "2:0 4:0", "D moves up");
	is_int(current(&vm), 4, "current stays D");
	ok(apply(&vm, rec("snapshot-del", 4)) == 0, "delete the current D");
	is_int(current(&vm), 0, "current becomes D's parent (none)");
	ok(apply(&vm, rec("snapshot-del", 42)) == 0, "deleting an unknown id changes nothing");
	is_str(tree(&vm), "2:0", "only B is left");
	ok(apply(&vm, json_pack("{s:s, s:i}", "type", "snapshot-bogus", "id", 1)) == -EBADMSG,
	   "an unknown snapshot record is a corrupt journal");
	json_decref(vm.snapshots);

	/* disks */
	memset(disks, 0, sizeof(disks));
	disks[0] =
	        (lc_disk){ .id = 0, .path = (char *)"/x/disk0.qcow2", .format = (char *)"qcow2" };
	disks[1] = (lc_disk){ .id = 1, .path = (char *)"/x/data.raw", .format = (char *)"raw" };
	vm.def.disks = disks;
	vm.def.n_disks = 1;
	ok(lc_snap_check_disks(&vm, &err) == 0, "one qcow2 disk: fine");
	vm.def.n_disks = 2;
	ok(lc_snap_check_disks(&vm, &err) == -EOPNOTSUPP, "a raw disk is refused");
	is_str(err.msg,
	       "disk 1 of 'web' is raw: vm snapshots need every disk in qcow2 (internal snapshots); detach it or convert it",
	       "... naming the disk, its format and what to do");
	disks[1].format = (char *)"qcow2";
	disks[0].readonly = disks[1].readonly = true;
	ok(lc_snap_check_disks(&vm, &err) == -EOPNOTSUPP, "only read-only disks: refused");
	is_str(err.msg, "'web' has no writable disk: a vm snapshot is kept in its qcow2 disks",
	       "... saying why");
	vm.def.n_disks = 0;
	ok(lc_snap_check_disks(&vm, &err) == -EOPNOTSUPP, "no disk: refused");

	/* the disk set of a revert */
	{
		json_t *old_rec = json_pack("{s:s, s:[i]}", "tag", "old", "disks", 0);
		json_t *new_rec = json_pack("{s:s, s:[i], s:{s:[{s:i, s:i}, {s:i, s:i}]}}", "tag",
		                            "new", "disks", 0, "definition", "disks", "id", 0,
		                            "size", 1, "id", 1, "size", 1);

		disks[0].readonly = false;
		disks[1].readonly = true; /* not in an old record's writable disks */
		vm.def.n_disks = 2;
		ok(lc_snap_check_disk_set(&vm, old_rec, &err) == 0,
		   "old record: the same writable disks, a read-only one beside: fine");
		disks[1].readonly = false;
		ok(lc_snap_check_disk_set(&vm, old_rec, &err) == -EBUSY,
		   "old record: a writable disk attached since is refused");
		is_str(err.msg,
		       "disk 1 was attached to 'web' after snapshot 'old' was taken and holds no part of it; detach it first (qvm disk-detach web 1), then revert",
		       "... naming it and what to do");
		ok(lc_snap_check_disk_set(&vm, new_rec, &err) == 0,
		   "stored definition: the same disks: fine");
		vm.def.n_disks = 1;
		ok(lc_snap_check_disk_set(&vm, new_rec, &err) == -ENOENT,
		   "stored definition: a disk detached since is refused");
		is_str(err.msg,
		       "disk 1 of snapshot 'new' is no longer attached to 'web', so the vm cannot go back to it",
		       "... naming it");
		disks[0].id = 2;
		ok(lc_snap_check_disk_set(&vm, new_rec, &err) == -EBUSY,
		   "stored definition: another disk in place of one is refused");
		json_decref(old_rec);
		json_decref(new_rec);
	}

	return done_testing();
}
