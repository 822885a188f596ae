/* Private to lifecycle/: what create, start, the supervisor, hotplug and
 * recovery use of network.c. */
#ifndef QVM_LC_NETWORK_H
#define QVM_LC_NETWORK_H

#include "run.h"

/* Give nic a MAC (its own, checked unique on the host, or generated from
 * uuid and its id) and, on a network with a range, an IP lease (its own,
 * checked free and in range, or the lowest free one). siblings are the
 * VM's other nics, already assigned. */
int lc_nic_assign(lc_db *db, const char *uuid, lc_nic *nic, const lc_nic *siblings,
                  size_t n_siblings, util_err *err);

/* lc_nic_assign for every nic of a new VM with this id (tap names checked). */
int lc_nics_assign(lc_db *db, lc_vmdef *def, uint64_t vm_id, util_err *err);

/* Finish or roll back a net-create/net-delete intent of a crashed qvm. */
int lc_net_recover(lc_db *db, uint64_t seq, json_t *intent, util_err *err);

/* Open the tap of one nic, enslaved to its network's bridge and up (a stale
 * tap of the same name goes first). Closing *ret_fd deletes the tap. */
int lc_nic_open_tap(lc_db *db, const lc_vm *vm, const lc_nic *n, int *ret_fd, util_err *err);

/* One tap per nic, in order (a new array); all or none. */
int lc_nics_open_taps(lc_db *db, const lc_vm *vm, int **ret_fds, util_err *err);

/* Settle a nic-attach/nic-detach intent of a crashed qvm (nic_ops.c). */
int lc_nic_recover(lc_db *db, uint64_t seq, json_t *intent, util_err *err);

/* Delete whatever taps of vm's nics still exist (only taps). */
void lc_nics_remove_taps(const lc_vm *vm);

#endif
