/* Private to lifecycle/: a VM's cloud-init seed (cloudinit.c). */
#ifndef QVM_LC_CLOUDINIT_H
#define QVM_LC_CLOUDINIT_H

#include "lifecycle.h"
#include "storage/storage.h"

/* The user's cloud-init files as read at create time. */
typedef struct lc_seed_inputs {
	char *data[3]; /* user-data, meta-data, network-config; NULL when not given */
	size_t len[3];
} lc_seed_inputs;

void lc_seed_inputs_clear(lc_seed_inputs *in);

/* Read the files def->ci_* name (their paths already passed the folder
 * policy), each at most STOR_SEED_FILE_MAX bytes: a missing, unreadable or
 * oversized file is refused with a message naming it. Nothing is written.
 * *ret is filled on success (release with lc_seed_inputs_clear). */
int lc_seed_read_inputs(const lc_vmdef *def, lc_seed_inputs *ret, util_err *err);

/* Keep copies of the inputs in the VM folder (vmdir/cloud-init/), so that
 * later changes to the user's files (or their removal) do not change what
 * the VM gets at each start. */
int lc_seed_save_inputs(const char *vmdir, const lc_seed_inputs *in, util_err *err);

/* Remove the copies of the inputs which[i] names (in lc_seed_inputs
 * order; a missing copy is fine), the folder synced: update does it
 * before it records new files (see seed_prepare in vm_update.c). */
int lc_seed_drop_inputs(const char *vmdir, const bool which[3], util_err *err);

/* The files of a seed, ready for stor_seed_write(). */
typedef struct lc_seed_set {
	stor_seed_file files[3];
	size_t n;
	char *owned[3]; /* buffers the files point into */
} lc_seed_set;

void lc_seed_set_clear(lc_seed_set *s);

/* Does VM def get a seed? Yes with cloud-init files, or when qvm generated
 * a network-config for it (generated_network_config not NULL). */
bool lc_seed_wanted(const lc_vmdef *def, const char *generated_network_config);

/* Assemble the seed's files for VM id from its definition:
 * - user-data: the copy taken at create (empty when the VM has none but
 *   gets a generated network-config);
 * - meta-data: the user's copy, or by default
 *     instance-id: <vm uuid>
 *     local-hostname: "<vm name>"
 * - network-config: the user's copy; without one, generated_network_config
 *   (may be NULL: then none). This is where a network-config made by qvm
 *   (e.g. a version 2 document from the VM's IP leases) goes in.
 * A copy missing from the VM folder (a VM defined before copies were
 * taken) is read from the path in the definition instead. */
int lc_seed_files(const char *root, uint64_t id, const lc_vmdef *def,
                  const char *generated_network_config, lc_seed_set *ret, util_err *err);

/* Build the seed of VM id (lc_seed_files() + stor_seed_write()) at
 * lc_seed_path(), replacing an older one; or, when the VM gets no seed,
 * remove any old one. Stale temporary files of an interrupted write go. */
int lc_seed_build(const char *root, uint64_t id, const lc_vmdef *def,
                  const char *generated_network_config, util_err *err);

/* Remove the seed and the copies of the user's files (missing is fine);
 * wipe overwrites them first, as delete --wipe does disks: user-data
 * often holds passwords or keys. */
int lc_seed_remove(const char *root, uint64_t id, bool wipe, util_err *err);

#endif
