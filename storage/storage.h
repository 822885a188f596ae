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

/* Check a user-given disk path (also a kernel, initrd, ISO or image
 * import source): absolute, no control characters, not a pseudo-protocol
 * ("json:", "nbd://"...), no symbolic link anywhere on it (-ELOOP: its
 * realpath must be the path with "." and ".." read as text), an existing regular file
 * (block devices are not supported yet), under one of allowed_roots
 * (NULL-terminated; each realpath'd, compared on path components so
 * /srv/img is not under /srv/i). Every root must be absolute; roots that
 * do not exist hold nothing. This is the one place that decides: create,
 * disk-attach, cdrom and image import call it on the path given, start
 * (and each restart), disk-attach and cdrom again on the path recorded,
 * right before QEMU opens it. On success *ret_realpath (may be NULL) gets
 * the resolved path, freed by the caller. */
int stor_check_path(const char *path, const char *const *allowed_roots, char **ret_realpath,
                    util_err *err);

/* A file qvm made in its own folder dir (a vm's disk): a regular file, not
 * a symbolic link, whose realpath is under dir's. Links in dir's own path
 * (a root given through one) are the administrator's and are followed. */
int stor_check_own(const char *path, const char *dir, util_err *err);

/* ---- image inspection ---------------------------------------------------- */

typedef struct stor_image_info {
	char format[16];         /* "qcow2" or "raw" (declared, or probed) */
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

/* Inspect the image at path (absolute, a regular file), one layer at a
 * time: the head of each file is read in-process first (stor_probe_buf:
 * what QEMU's probes would take it for), then `qemu-img info -f FORMAT
 * --output=json` runs with the declared (or recorded) format, under CPU
 * and address-space rlimits and a timeout — qemu-img never probes, so a
 * file never makes it open others. A backing file is checked against
 * allowed_backing_roots before anything opens it (qemu-img's own
 * --backing-chain would open nbd:// or http:// backing files).
 *
 * Refused, with a message naming the file and what to do:
 * - a format other than declared_format ("qcow2" or "raw"; NULL accepts
 *   whichever of the two the head shows — only for a file no guest has
 *   written to, such as a fresh download), or a backing file whose content
 *   differs from the format recorded for it (or has none recorded);
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

/* stor_inspect() for a file that QEMU or qemu-img opens right after, with
 * its format given (a VM's disks at start, a base image an overlay is
 * made on): the same refusals, but a file whose head says all that
 * `qemu-img info` would (a raw file; a qcow2 of version 2 or 3 with no
 * encryption, no incompatible feature bit and at most an absolute backing
 * file of recorded format) is described by qvm alone, without an exec.
 * What qemu-img info adds for such a file is the validation of its
 * tables, which the open that follows does anyway, failing with QEMU's own
 * message. Each backing file is still checked against the roots, one file
 * at a time. */
int stor_inspect_before_open(const char *path, const char *declared_format,
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

/* Record backing_path (absolute) of backing_format as the backing file of
 * the qcow2 file at path, its data untouched (a disk copied from another
 * host, whose base image lies elsewhere here). */
int stor_set_backing(const char *path, const char *backing_path, const char *backing_format,
                     util_err *err);

/* Create an empty image of format ("qcow2", or "raw": a sparse file) and
 * size_bytes (a non-zero multiple of 512) at path, with the same
 * guarantees as stor_create_overlay(). */
int stor_create_blank(const char *path, const char *format, uint64_t size_bytes, util_err *err);

/* Remove the disk file at path (absolute; a regular file, never followed
 * through a symlink). A missing file is success, so an interrupted removal
 * can be retried. wipe overwrites the file's data with zeros and syncs
 * before unlinking (best effort on copy-on-write filesystems and SSDs,
 * where old blocks may survive); a file with other hard links is not
 * wiped, since that would destroy their data too. */
int stor_remove_disk(const char *path, bool wipe, util_err *err);

/* ---- cloud-init seed ------------------------------------------------------ */

#define STOR_SEED_FILE_MAX  (1u << 20) /* bytes in one seed file */
#define STOR_SEED_FILES_MAX 8
#define STOR_SEED_NAME_MAX  32

/* One file of a seed: name (letters, digits, '-', '_', '.', not starting
 * with '.', at most STOR_SEED_NAME_MAX), and len bytes at data (borrowed). */
typedef struct stor_seed_file {
	const char *name;
	const void *data;
	size_t len;
} stor_seed_file;

/* Write a cloud-init NoCloud seed at path (absolute): an ISO 9660 image
 * labelled "cidata" holding the n files (1..STOR_SEED_FILES_MAX, each at
 * most STOR_SEED_FILE_MAX bytes, names unique) in its root folder, their
 * names readable through Rock Ridge and Joliet. Written in-process under a
 * temporary name, mode 0600, synced and renamed over any old seed: a crash
 * leaves the old file or the new one. */
int stor_seed_write(const char *path, const stor_seed_file *files, size_t n, util_err *err);

/* ---- changing a disk no QEMU has open (disk_ops.c) ----------------------- */

/* Resize the image at path to size_bytes: `qemu-img resize -f FORMAT
 * [--shrink] -- PATH SIZE`. Without shrink qemu-img refuses to shrink. */
int stor_resize(const char *path, const char *format, uint64_t size_bytes, bool shrink,
                util_err *err);

/* Internal qcow2 snapshots, `qemu-img snapshot -c|-a|-d TAG --image-opts --
 * driver=qcow2,...` (that command has no -f): create, revert to (apply),
 * delete. tag is a snapshot name or id. */
typedef enum stor_snap_op { STOR_SNAP_CREATE, STOR_SNAP_APPLY, STOR_SNAP_DELETE } stor_snap_op;
int stor_snapshot(const char *path, stor_snap_op op, const char *tag, util_err *err);

/* `qemu-img info -f FORMAT --output=json -- PATH` of a disk qvm made (no
 * backing file is opened): a new object with "virtual-size" and, for
 * qcow2, "snapshots" [{"id", "name", "vm-state-size", "date-sec", ...}]. */
int stor_disk_info(const char *path, const char *format, json_t **ret, util_err *err);
/* ---- the image store ------------------------------------------------------
 * Images live in ROOT/images (0700): the image file NAME.qcow2 or NAME.raw
 * (0600) and its metadata NAME.image.json, written atomically. The metadata
 * file is the commit point: an image exists when its metadata does, and
 * the image file is moved into place before it. A partial file never
 * becomes an image: every image is made under a temporary name inside
 * ROOT/images, inspected, checked, and renamed at the end. */

typedef struct stor_image {
	char *name;
	char *file;            /* absolute path of the image file */
	char format[16];       /* "qcow2" or "raw" */
	uint64_t virtual_size; /* bytes a guest sees */
	uint64_t actual_size;  /* bytes the file takes on the host */
	char sha256[65];       /* of the image file, lowercase hex */
	char *source;          /* URL, path, or "vm 'x' disk N" it came from */
	int64_t created_ms;    /* wall-clock ms of the import */
} stor_image;

void stor_image_clear(stor_image *img); /* frees members; NULL-safe */
#define _cleanup_stor_image_ _cleanup_(stor_image_clear)
void stor_image_list_free(stor_image *v, size_t n);

/* ROOT/images (new string). */
char *stor_images_dir(const char *root);

/* The metadata as stored and as `image show --json` prints it (new
 * reference; "file" is the image file's name inside the store folder);
 * and back, validated, with the file resolved under images_dir. */
json_t *stor_image_to_json(const stor_image *img);
int stor_image_from_json(json_t *j, const char *images_dir, stor_image *ret_img, util_err *err);

/* Resolve a store image by name: what lifecycle turns `--disk NAME` /
 * `--disk image=NAME` (and disk-attach --image) into. ret_img->file and
 * ret_img->format are the backing file and the explicit backing format of
 * an overlay. -ENOENT "no image named 'x' in the image store" when there
 * is none. Takes no lock: the metadata is written atomically. */
int stor_image_get(const char *root, const char *name, stor_image *ret_img, util_err *err);

/* Every image in the store, by name. */
int stor_image_list(const char *root, stor_image **ret_v, size_t *ret_n, util_err *err);

/* The store's lock (ROOT/images/.lock, exclusive, bounded wait). Lock
 * order: the journal's lock first, then this one. */
int stor_image_lock(const char *root, int *ret_fd, util_err *err);

/* Progress of a download or copy: bytes done of total (0 when unknown). */
typedef void (*stor_progress_fn)(void *ud, uint64_t done, uint64_t total);

typedef struct stor_import_opts {
	const char *name;          /* the new image's name */
	const char *source;        /* an http(s) URL or a local path */
	const char *sha256;        /* expected SHA-256 (hex), or NULL */
	const char *format;        /* declared "qcow2" or "raw", or NULL: probed */
	const char *ca_file;       /* CA certificates for https, or NULL: system */
	uint64_t max_size;         /* refuse larger files; 0: STOR_IMPORT_MAX_SIZE */
	int stall_timeout_s;       /* give up after this long without data; 0: 30 */
	stor_progress_fn progress; /* or NULL */
	void *progress_ud;
	/* a local source must pass stor_check_path() with these roots (as
	 * a disk path does): NULL-terminated, NULL refuses every local file */
	const char *const *allowed_roots;
} stor_import_opts;

#define STOR_IMPORT_MAX_SIZE (256ull << 30)

/* Import an image from a URL (http/https only, also after redirects; TLS
 * verified; an interrupted download resumes with a Range request and is
 * hashed again from its start) or a local file (copied; checked first by
 * stor_check_path() against o->allowed_roots, opened O_NOFOLLOW). The checksum is
 * checked and the file inspected (stor_inspect, no backing file allowed)
 * before it is renamed into the store. On failure nothing is left in the
 * store; only an interrupted download keeps its partial file (in
 * ROOT/images, hidden) so that the same import resumes it. */
int stor_image_import(const char *root, const stor_import_opts *o, stor_image *ret_img,
                      util_err *err);

/* Flatten the disk at disk_path (of disk_format, its backing files under
 * allowed_backing_roots) into a new qcow2 store image `name` with
 * `qemu-img convert`. The disk must not be in use. */
int stor_image_save_disk(const char *root, const char *name, const char *disk_path,
                         const char *disk_format, const char *const *allowed_backing_roots,
                         const char *source, stor_image *ret_img, util_err *err);

/* Remove an image from the store (metadata first, then the file), and
 * any partial download of its name. The caller has checked that no VM
 * uses it, holding the journal's lock. */
int stor_image_delete(const char *root, const char *name, util_err *err);

/* Remove the partial downloads of image `name` that no download is
 * writing (an import given up); *ret_n says how many went. */
int stor_image_discard_partials(const char *root, const char *name, unsigned *ret_n, util_err *err);
#endif
