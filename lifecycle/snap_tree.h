/* Private to lifecycle/: the VM snapshot tree in the model (snap_tree.c):
 * the replay of its records and the lookups the operations and the
 * commands make. Files below the snapshot operations include this, not
 * snapshot.h. */
#ifndef QVM_LC_SNAP_TREE_H
#define QVM_LC_SNAP_TREE_H

#include "lifecycle.h"

/* Apply a "snapshot-add", "snapshot-del" or "snapshot-current" record to
 * vm's tree: the replay snap_tree.c registers with the store. */
int lc_snap_apply(lc_vm *vm, uint64_t seq, json_t *rec, util_err *err);

/* vm's snapshots, oldest first (borrowed; NULL before the first); the
 * one with this id (*ret_index, may be NULL, gets its index) or tag, or
 * NULL; the current one's id, 0 when none. */
json_t *lc_snap_items(const lc_vm *vm);
json_t *lc_snap_by_id(const lc_vm *vm, int64_t id, size_t *ret_index);
json_t *lc_snap_by_tag(const lc_vm *vm, const char *tag);
int64_t lc_snap_current(const lc_vm *vm);

/* A snapshot of the tree as the commands print it (a new reference):
 * times in *_ms, and for a memory snapshot the disk that holds its state
 * and that state's size (null when unknown), none of it for a disks-only
 * one. */
json_t *lc_snap_public(json_t *s);

/* SNAP as the user gives it: an id or a tag (borrowed); -ENOENT naming
 * the vm and pointing at snapshot-list. */
int lc_snap_find(const lc_vm *vm, const char *snap, json_t **ret, util_err *err);

/* Drop every snapshot of vm from the tree (its disks were made anew). */
int lc_snap_forget_all(lc_db *db, lc_vm *vm, util_err *err);

/* The VM snapshot of vm (borrowed from its tree) that disk disk_id is
 * part of and holds under the internal snapshot name, or NULL: disk
 * snapshot operations leave those alone. */
json_t *lc_snap_of_disk(const lc_vm *vm, unsigned disk_id, const char *name);

#endif
