/* Private to lifecycle/: what vm_ops.c (create, delete, the definitions)
 * gives the other operation files: vm_update.c's update and rename. */
#ifndef QVM_LC_VM_OPS_H
#define QVM_LC_VM_OPS_H

#include "lifecycle.h"

/* 0 when no live (not DONE) vm is named name, else -EEXIST naming the
 * one that is (vm_ops.c: create and rename). */
int lc_vm_name_free(lc_db *db, const char *name, util_err *err);

#endif
