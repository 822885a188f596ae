/* Private to lifecycle/: the snapshot operations' checks and the recovery
 * of those a crash interrupted (snapshot.c). The tree they work on is
 * snap_tree.h's. */
#ifndef QVM_LC_SNAPSHOT_H
#define QVM_LC_SNAPSHOT_H

#include "snap_tree.h"

/* Finish or roll back the snapshot intent seq (op "snapshot-create",
 * "snapshot-revert" or "snapshot-delete") of a qvm that died; the caller
 * holds the VM lock and db is writable. A create without its snapshot-add
 * record is rolled back (the partial internal snapshots deleted); a delete
 * and a revert are finished. An ACTIVE VM whose QEMU cannot be reached is
 * left for later. */
int lc_snap_recover(lc_db *db, uint64_t seq, json_t *intent, util_err *err);

/* Can vm's disks hold a VM snapshot? Every disk must be qcow2 and one at
 * least writable; the refusal names the disk and what to do. */
int lc_snap_check_disks(const lc_vm *vm, util_err *err);

/* May vm be reverted to snapshot s (one of its tree)? Only with the disk
 * set s was taken with: that of its stored definition, or for a record
 * that stored none, the writable disks it holds. A disk attached or
 * detached since is refused, naming it and what to do. */
int lc_snap_check_disk_set(const lc_vm *vm, json_t *s, util_err *err);

#endif
