/* storage: where disks may live, what an image file really is, and making
 * and removing disk files — every image operation goes through qemu-img
 * run by util_run() with explicit formats, never a shell. */
#ifndef QVM_STORAGE_H
#define QVM_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

/* The deepest backing chain stor_inspect() accepts: the number of backing
 * files below the top image. */
#define STOR_MAX_BACKING_DEPTH 8

/* ---- disk path policy ---------------------------------------------------- */

/* Check a user-given disk path: absolute, no control characters, not a
 * pseudo-protocol ("json:", "nbd://"...), an existing regular file (block
 * devices are not supported yet), whose realpath lies under one of
 * allowed_roots (NULL-terminated; each realpath'd, compared on path
 * components so /srv/img is not under /srv/i). Every root must be absolute;
 * roots that do not exist hold nothing. On success *ret_realpath (may be
 * NULL) gets the resolved path, freed by the caller. */
int stor_check_path(const char *path, const char *const *allowed_roots, char **ret_realpath,
                    util_err *err);

/* ---- image inspection ---------------------------------------------------- */

typedef struct stor_image_info {
	char format[16];         /* probed format: "qcow2" or "raw" */
	uint64_t virtual_size;   /* bytes the guest sees */
	uint64_t actual_size;    /* bytes the top file takes on the host */
	char *backing_file;      /* as recorded in the top image, or NULL */
	char backing_format[16]; /* recorded backing format, "" without one */
	bool has_data_file;      /* always false after success: refused */
	unsigned chain_depth;    /* backing files below the top: 0..8 */
	char **chain;            /* realpaths, top first, chain_depth + 1
	                          * entries, NULL-terminated */
} stor_image_info;

/* Release what info holds (not info itself, usually on the stack) and zero
 * it; NULL-safe and idempotent, so it works as a cleanup attribute:
 * _cleanup_stor_image_info_ stor_image_info info = { 0 }; */
void stor_image_info_free(stor_image_info *info);
#define _cleanup_stor_image_info_ _cleanup_(stor_image_info_free)

/* Inspect the image at path (absolute, a regular file) with
 * `qemu-img info --output=json`, under CPU and address-space rlimits and a
 * timeout, one layer at a time: a backing file is checked against
 * allowed_backing_roots before qemu-img ever opens it (qemu-img's own
 * --backing-chain would open nbd:// or http:// backing files).
 *
 * Refused, with a message naming the file and what to do:
 * - a probed format other than declared_format ("qcow2" or "raw"; NULL
 *   accepts whichever of the two is probed — only for a file no guest has
 *   written to, such as a fresh download), or a backing file whose probed
 *   format differs from the one recorded for it (or has none recorded);
 * - any format but qcow2 and raw;
 * - an external data file; a VMDK with several extents or extents in
 *   other files;
 * - a backing file when allowed_backing_roots is NULL or empty, or one
 *   that is not a local file under those roots;
 * - a chain deeper than STOR_MAX_BACKING_DEPTH, or one that loops.
 * On success *ret_info is filled (release with stor_image_info_free). */
int stor_inspect(const char *path, const char *declared_format,
                 const char *const *allowed_backing_roots, stor_image_info *ret_info,
                 util_err *err);

/* ---- creation and removal ------------------------------------------------ */

/* Create a qcow2 overlay at path (absolute; must not exist) on top of
 * backing_path (absolute, an existing regular file) of backing_format
 * ("qcow2" or "raw"), recording both in the overlay. The caller has
 * inspected the backing file. The file is made under a temporary name in
 * the same folder, mode 0600, synced and renamed into place without
 * replacing anything: on failure nothing is left behind. */
int stor_create_overlay(const char *path, const char *backing_path, const char *backing_format,
                        util_err *err);

/* Create an empty qcow2 image of size_bytes (a non-zero multiple of 512) at
 * path, with the same guarantees as stor_create_overlay(). */
int stor_create_blank(const char *path, uint64_t size_bytes, util_err *err);

/* Remove the disk file at path (absolute; a regular file, never followed
 * through a symlink). A missing file is success, so an interrupted removal
 * can be retried. wipe overwrites the file's data with zeros and syncs
 * before unlinking (best effort on copy-on-write filesystems and SSDs,
 * where old blocks may survive); a file with other hard links is not
 * wiped, since that would destroy their data too. */
int stor_remove_disk(const char *path, bool wipe, util_err *err);

/* ---- internal snapshots of a disk no QEMU has open ----------------------- */

/* The tags of the internal snapshots of the qcow2 image at path (a new
 * NULL-terminated vector, empty when there are none). */
int stor_qcow2_snapshot_list(const char *path, char ***ret_tags, util_err *err);

/* `qemu-img snapshot` on the qcow2 image at path: op 'c' creates tag, 'a'
 * applies it (the disk goes back to it), 'd' deletes it. */
int stor_qcow2_snapshot(const char *path, char op, const char *tag, util_err *err);

#endif
