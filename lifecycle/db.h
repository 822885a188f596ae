/* Private to lifecycle/: the database's write side, used by the operations
 * (vm_ops.c, and later the supervisor). cli/ uses lifecycle.h only. */
#ifndef QVM_LC_DB_H
#define QVM_LC_DB_H

#include "lifecycle.h"

/* Append a record (new reference, consumed: "type", "id" and the fields of
 * its type; "time" is added unless the caller set it, a "done" gets its
 * intent's "id") under the writer's lock, fsync'd, then apply it
 * to the model. ret_seq (may be NULL) gets its sequence number. */
int lc_db_append(lc_db *db, json_t *rec, uint64_t *ret_seq, util_err *err);

/* Append a "state" transition of vm. reason and error may be NULL. */
int lc_db_record_state(lc_db *db, lc_vm *vm, lc_state state, lc_lcm lcm, const char *reason,
                       const char *error, util_err *err);

/* Finish or roll back the intents of crashed qvm processes. Called by
 * lc_db_open() for writers. */
int lc_db_recover(lc_db *db, util_err *err);

/* The ops of intents about a VM's definition itself. */
#define LC_DEF_OPS ((const char *const[]){ "create", "delete", "recreate", NULL })

/* Does VM id have an open intent whose op is one of ops (NULL-terminated;
 * NULL: any op)? */
bool lc_db_has_intent(lc_db *db, uint64_t id, const char *const *ops);

/* For a writer whose caller holds VM id's lock (which keeps lc_db_recover
 * off them): finish or roll back the VM's LC_DEF_OPS intents now, since no
 * command on the VM may run before a deletion its crashed qvm left half
 * done. */
int lc_db_recover_vm(lc_db *db, uint64_t id, util_err *err);

/* The fields a "define" or "redefine" record carries for def: name,
 * memory, vcpus and "def", the definition as JSON text. New reference. */
json_t *lc_db_def_fields(const lc_vmdef *def);

bool lc_db_writable(const lc_db *db);
json_t *lc_db_intents(lc_db *db); /* borrowed: "seq" -> intent record */
/* Labels and user data change by a map of changes: each key set to its
 * value, or removed where the value is null. Both borrowed. */
void lc_json_apply_changes(json_t *into, json_t *changes);
/* Borrowed: "name" -> network object. A "net" record ({"net": OBJ})
 * defines or replaces one, a "net-delete" record ({"name"}) removes it.
 * Not loaded by LC_DB_SUMMARY opens of a compacted journal. */
json_t *lc_db_networks(lc_db *db);
uint64_t lc_db_next_id(const lc_db *db);

/* The per-VM operation lock (run/vm-<id>.lock): serialises commands on one
 * VM; dies with its holder. -EBUSY with a clear message after timeout_ms. */
int lc_vm_lock(const lc_db *db, uint64_t id, int timeout_ms, int *ret_fd, util_err *err);
char *lc_vm_lock_path(const char *root, uint64_t id);

/* Append rec (stolen), a state record of VM id entering state: once a VM
 * is DONE its lock file is removed too. */
int lc_db_append_state(lc_db *db, uint64_t id, lc_state state, json_t *rec, util_err *err);

#endif
