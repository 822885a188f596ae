/* storage: helpers shared by the storage folder's files (private). */
#ifndef QVM_STORAGE_INTERNAL_H
#define QVM_STORAGE_INTERNAL_H

#include "storage/storage.h"

/* The qemu-img binary: $QVM_QEMU_IMG when set (tests), else from PATH.
 * The caller frees *ret_path. */
int stor_qemu_img(char **ret_path, util_err *err);

/* A copy of s fit for an error message: control characters become '?' and
 * long strings are cut ("..."), so a hostile file name cannot forge lines
 * or terminal escapes. NULL gives "(null)". The caller frees it. */
char *stor_safe(const char *s);

/* A path qvm may hand to qemu or qemu-img as a plain local file: not
 * empty, no control characters, no "scheme:" pseudo-protocol, absolute.
 * `what` names it in the message ("disk path", "backing file"...); `fix`
 * (NULL: "give an absolute path") ends the pseudo-path and relative-path
 * messages. */
int stor_check_local(const char *path, const char *what, const char *fix, util_err *err);

/* The core of stor_check_path(): path passes stor_check_local(path, what,
 * local_fix), exists as a regular file, and its realpath lies under one of
 * roots; `hint` ends the "not under an allowed folder" message. */
int stor_check_under(const char *path, const char *const *roots, const char *what,
                     const char *local_fix, const char *hint, char **ret_realpath, util_err *err);

/* stor_check_path() with `hint` ending the "not under an allowed folder"
 * message (an import's is not "import it as an image"). */
int stor_check_policy(const char *path, const char *const *allowed_roots, const char *hint,
                      char **ret_realpath, util_err *err);

/* What the first bytes of an image file say it is, by the rules of QEMU
 * 7.2's format probes (the *_probe functions of block/), worked out
 * in-process so that qemu-img only ever opens a file with its format
 * given: a file QEMU would probe as VMDK names other files (extents)
 * that qemu-img would open, devices and FIFOs included. */
typedef struct stor_probe {
	char format[16];      /* "qcow2", "raw", "vmdk", "qcow", "qed", "vdi"... */
	bool vmdk_descriptor; /* vmdk: a text descriptor, its data in extents */
	unsigned extents;     /* ... the extent lines it has */
	char *first_extent;   /* ... and the file the first names, or NULL */
	bool data_file;       /* qcow2: the external data file bit is set */
	char *data_file_name; /* ... its name (header extension), or NULL */
	/* The head says all `qemu-img info` would (a plain qcow2, see
	 * probe.c; a raw file, whose size the reader of the file fills): */
	bool self_described;
	uint64_t virtual_size;   /* ... the size the guest sees */
	char *backing_name;      /* ... qcow2: its absolute backing file, or NULL */
	char backing_format[16]; /* ... and that file's recorded format */
} stor_probe;

/* The longest backing file name the head's own description takes. */
#define STOR_PROBE_NAME_MAX 1024

/* How many bytes of a file stor_probe_buf() looks at. */
#define STOR_PROBE_LEN 65536

/* Probe the first len bytes of a file (all of it when shorter than
 * STOR_PROBE_LEN); anything no probe claims is "raw". Never fails. */
void stor_probe_buf(const void *buf, size_t len, stor_probe *ret);
void stor_probe_clear(stor_probe *p); /* frees members; NULL-safe */

/* The formats qvm's VMs use. */
bool stor_format_supported(const char *format);

/* Set err from a failed qemu-img run: "<context>: <first line qemu-img
 * printed>" (without its "qemu-img: " prefix, made safe). Returns -EIO. */
int stor_qemu_img_failed(util_err *err, const char *stderr_text, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Next to a partial download, "<partial>" STOR_VALIDATOR_SUFFIX holds
 * the validator (strong ETag, else Last-Modified) of the response its
 * bytes came from; it goes with the partial file. */
#define STOR_VALIDATOR_SUFFIX ".validator"

/* Download url into the file at partial_path (created 0600, or resumed
 * from its current length with a Range request and If-Range on its
 * validator: a server whose file changed sends it whole, and the download
 * starts over; without a validator it starts over too), hashing the whole
 * file from its start into ret_hex. A failure keeps the partial file (so
 * that the next call resumes) unless resuming makes no sense: the size
 * cap, a refused redirect, nothing downloaded yet. Only http and https,
 * also after redirects. On success *ret_fd is the complete file, still
 * locked (flock) against another download of the same name and URL until
 * the caller closes it. */
int stor_download(const char *url, const char *partial_path, const stor_import_opts *o, int *ret_fd,
                  char ret_hex[65], uint64_t *ret_size, util_err *err);

/* Called as a file being written grows from `from` to `to` bytes: starts
 * the writeback of each 8 MiB chunk once it is complete (not waiting), so
 * that the fsync() before a rename finds little left. */
void stor_writeback(int fd, uint64_t from, uint64_t to);

/* Move tmp to path without replacing anything that appeared meanwhile
 * (-EEXIST then, tmp stays). Negative errno, no message. */
int stor_rename_noreplace(const char *tmp, const char *path);

#endif
