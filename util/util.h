/* util: the small shared helpers every qvm folder builds on — the error
 * object, cleanup attributes, name/size/path validation, option escaping,
 * durable file writes, kernel locks and child processes. */
#ifndef QVM_UTIL_H
#define QVM_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

/* ---- errors -------------------------------------------------------------
 * Every fallible function returns int: >= 0 on success, a negative errno on
 * failure, and fills the error object passed last. Callers add context on
 * the way up with util_err_prefix(); only cli/ prints the final message. */

typedef struct util_err {
	int code;           /* negative errno, 0 when unset */
	char qmp_class[64]; /* QMP error class ("GenericError"...), or "" */
	char msg[2048];     /* "what failed: why", lowercase, no full stop */
} util_err;

/* Set err (may be NULL) to code and a formatted message; returns code so a
 * failure is one line: return util_err_set(err, -EINVAL, "bad '%s'", s); */
int util_err_set(util_err *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Like util_err_set, appending ": strerror(-code)". */
int util_err_errno(util_err *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Prepend "context: " to the message; returns err->code (or -EIO if unset). */
int util_err_prefix(util_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void util_err_clear(util_err *err);

/* The symbolic name of an errno value, positive or negative ("ENOENT"), or
 * its number as text when it has none; buf (at least 16 bytes) holds that
 * text. */
const char *util_errno_name(int code, char *buf, size_t len);

/* ---- tracing (qvm -v) ----------------------------------------------------
 * Layers below cli/ say what they do (QMP commands and replies, events,
 * journal records) through util_trace(); cli/ sets the sink with -v and
 * prints the lines on stderr. Without a sink a trace costs one test. */

typedef void (*util_trace_fn)(const char *line);

/* fn receives one line (no newline, at most ~1 KiB, "..." when cut);
 * NULL turns tracing off. */
void util_trace_set(util_trace_fn fn);
bool util_tracing(void);
void util_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- cleanup attributes (as in systemd and crun) ------------------------ */

/* unused: a local that exists only to be freed at scope exit ("owned",
 * taking over a parameter) is its purpose, not a mistake; clang warns
 * about it where gcc does not. */
#define _cleanup_(f) __attribute__((cleanup(f), unused))

static inline void util_freep(void *p)
{
	free(*(void **)p);
}
static inline void util_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void util_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void util_json_decrefp(json_t **j)
{
	json_decref(*j);
}
void util_strv_free(char **v);
/* Is s (may be NULL: no) one of v's strings? v is NULL-terminated, or NULL. */
bool util_strv_contains(const char *const *v, const char *s);
static inline void util_strv_freep(char ***v)
{
	util_strv_free(*v);
}

#define _cleanup_free_   _cleanup_(util_freep)
#define _cleanup_close_  _cleanup_(util_closep)
#define _cleanup_fclose_ _cleanup_(util_fclosep)
#define _cleanup_json_   _cleanup_(util_json_decrefp)
#define _cleanup_strv_   _cleanup_(util_strv_freep)

/* Hand a resource on: returns it and resets the local so cleanup skips it. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tp = (p);                                                           \
		(p) = NULL;                                                                        \
		_tp;                                                                               \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_tf;                                                                               \
	})

#define UTIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- memory and strings ------------------------------------------------- */

/* Allocation failure is not a recoverable condition for a CLI: abort. */
void *util_xmalloc(size_t n);
void *util_xcalloc(size_t n, size_t size);
void *util_xrealloc(void *p, size_t n);
char *util_xstrdup(const char *s);
char *util_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Append formatted text to *s (a malloc'd string, or NULL for none yet). */
void util_append(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A growable NULL-terminated string vector (an argv). */
typedef struct util_strv {
	char **v;
	size_t n, cap;
} util_strv;
void util_strv_push(util_strv *sv, const char *s);
void util_strv_pushf(util_strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes ownership of s. */
void util_strv_push_take(util_strv *sv, char *s);
/* Returns the NULL-terminated vector and resets sv; caller frees with
 * util_strv_free(). */
char **util_strv_steal(util_strv *sv);
void util_strv_clear(util_strv *sv);
size_t util_strv_len(char *const *v);

bool util_streq(const char *a, const char *b); /* NULL-safe */
/* Is s not empty and made of ASCII digits only? */
bool util_all_digits(const char *s);
bool util_startswith(const char *s, const char *prefix);

/* ---- validation at the edge -------------------------------------------- */

/* VM, network, image, template and snapshot names:
 * [A-Za-z0-9][A-Za-z0-9._-]{0,62}. `what` names the kind in the message
 * ("vm name", "network name"...). */
int util_validate_name(const char *name, const char *what, util_err *err);

/* A string going into a QEMU argument or guest config: refuse control
 * characters (everything below 0x20 and 0x7f). */
int util_validate_printable(const char *s, const char *what, util_err *err);

/* "512M", "10G", "4096" (bytes), "1T", "2K"; binary multiples, optional
 * "iB"/"B" suffix. Refuses zero, negatives, overflow and junk. */
int util_parse_size(const char *s, uint64_t *ret_bytes, util_err *err);
/* Human form of a size: "512M", "1.5G" — buf at least 16 bytes. */
const char *util_format_size(uint64_t bytes, char *buf, size_t len);

/* Unsigned decimal in [min, max], the whole string. */
int util_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret, util_err *err);

/* Escape a value for QEMU's "key=value,..." option syntax: commas are
 * doubled; control characters are refused. Returns a new string. The one
 * place qvm escapes option values. */
int util_qemu_opt_escape(const char *value, char **ret, util_err *err);

/* ---- files --------------------------------------------------------------- */

/* mkdir -p with mode (0700 for qvm's folders); existing dirs are fine. */
int util_mkdir_p(const char *path, mode_t mode, util_err *err);

/* Write data durably: path.tmp.<pid> (0600) + fsync + rename + fsync of the
 * directory. Either the old or the new content survives a crash. */
int util_write_file_atomic(const char *path, const void *data, size_t len, util_err *err);
/* The same with a failure point (util_fail_point) standing for its fsync:
 * tests make that sync fail and see the temporary file go. */
int util_write_file_atomic_fp(const char *path, const void *data, size_t len,
                              const char *fail_point, util_err *err);

/* write() all of data, retrying on EINTR and short writes; negative errno. */
int util_write_all(int fd, const void *data, size_t len);

/* Read a whole file (NUL-terminated, up to max bytes; more is -EFBIG).
 * The caller frees *ret_data; ret_len may be NULL. */
int util_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len, util_err *err);
/* The same from an open fd, from its current offset to its end; path
 * names it in messages. */
int util_read_fd(int fd, const char *path, size_t max, char **ret_data, size_t *ret_len,
                 util_err *err);

int util_fsync_dir(const char *dir, util_err *err);

/* Remove a folder tree we own (no symlinks followed). Missing is fine. */
int util_rm_rf(const char *path, util_err *err);

/* ---- kernel locks ------------------------------------------------------- */

/* Take an flock() on path (created 0600) — exclusive or shared — waiting at
 * most timeout_ms (0: try once, <0: forever). The lock dies with the fd and
 * so with its holder. -EBUSY when the wait runs out. */
int util_lock_path(const char *path, bool exclusive, int timeout_ms, int *ret_fd, util_err *err);
/* The same on an open lock file fd (path names it in messages). */
int util_lock_fd(int fd, const char *path, bool exclusive, int timeout_ms, util_err *err);

/* ---- time ----------------------------------------------------------------- */

int64_t util_now_ms(void);      /* CLOCK_MONOTONIC */
int64_t util_realtime_ms(void); /* CLOCK_REALTIME, for records */

/* ---- child processes ---------------------------------------------------- */

typedef struct util_run_opts {
	const char *stdin_path; /* NULL: /dev/null */
	char **ret_stdout;      /* captured stdout (NUL-terminated), or NULL */
	size_t stdout_max;      /* cap for captured stdout (default 1 MiB) */
	char **ret_stderr;      /* captured stderr, or NULL (then /dev/null) */
	int timeout_ms;         /* 0: default 60 s; the child is killed after */
	uint64_t rlimit_as;     /* address-space limit in bytes, 0: none */
	uint64_t rlimit_cpu;    /* CPU seconds, 0: none */
} util_run_opts;

/* Run argv[0] (an absolute path or found in PATH) with execve — never a
 * shell — with a minimal environment, only fds 0-2, and wait for it.
 * Returns the exit status (>= 0) or a negative errno; a child killed by a
 * signal or the timeout is an error naming it. */
int util_run(char *const argv[], const util_run_opts *opts, util_err *err);

/* A child qvm talks to over pipes (a migration's ssh): to_fd is its
 * stdin, from_fd its stdout, err_fd a memory file that holds its stderr. */
typedef struct util_child {
	pid_t pid;
	int to_fd, from_fd, err_fd;
} util_child;

/* Start argv[0] (an absolute path or found in PATH) with execve, the
 * environment inherited, in a session of its own. */
int util_spawn_piped(char *const argv[], util_child *ret, util_err *err);
/* The last line it printed on stderr (new string; "" when none). */
char *util_child_stderr(const util_child *c);
/* Close its pipes, send kill_signal (0: none) and reap it: its exit
 * status, or 128 + the signal that ended it. util_child_stderr still
 * reads what it said. */
int util_child_end(util_child *c, int kill_signal);
/* End it (SIGKILL) if it still runs, and free what is left. */
void util_child_clear(util_child *c);

/* Resolve a program name against PATH (or a default system PATH). */
int util_find_program(const char *name, char **ret_path, util_err *err);

/* ---- sockets ------------------------------------------------------------------ */

/* A listening unix stream socket at path (an old socket file there is
 * replaced), close-on-exec, mode 0600. -ENAMETOOLONG if path does not fit
 * sun_path. */
int util_unix_listen(const char *path, int backlog, int *ret_fd, util_err *err);

/* Connect to the unix socket at path (blocking, close-on-exec). */
int util_unix_connect(const char *path, int *ret_fd, util_err *err);

/* ---- processes ---------------------------------------------------------------- */

/* A process's start time (field 22 of /proc/PID/stat, in clock ticks since
 * boot): with the pid, an identity that survives pid reuse. -ESRCH if the
 * process is gone or a zombie. */
int util_proc_starttime(pid_t pid, uint64_t *ret, util_err *err);

/* Is pid alive (not gone, not a zombie) and started at starttime? */
bool util_proc_alive(pid_t pid, uint64_t starttime);

/* pidfd_open(2): readable when the process exits. */
int util_pidfd_open(pid_t pid, int *ret_fd, util_err *err);

/* ---- crash points -------------------------------------------------------- */

/* Tests make qvm die at a named step: when QVM_CRASH_AT equals `point`, the
 * process _exit()s at once (status 99), as a kill -9 would leave it. */
void util_crash_point(const char *point);

/* Tests hold qvm at a named step, to run another command meanwhile: when
 * QVM_STOP_AT equals `point`, the process stops itself (SIGSTOP) there and
 * goes on once it gets SIGCONT. */
void util_stop_point(const char *point);

/* Tests make a step fail as if its system call or QMP command had: when
 * QVM_FAIL_AT equals `point`, returns -EIO with a message naming the point
 * (the caller goes down its real failure path); otherwise 0. */
int util_fail_point(const char *point, util_err *err);

/* Random bytes from the kernel (getrandom). */
int util_random_bytes(void *buf, size_t len, util_err *err);

/* ---- SHA-256 ---------------------------------------------------------------- */

typedef struct util_sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed */
	uint8_t buf[64];
	size_t fill;
} util_sha256;

void util_sha256_init(util_sha256 *s);
void util_sha256_update(util_sha256 *s, const void *data, size_t len);
/* The digest as 64 lowercase hex digits and a NUL; s is spent. */
void util_sha256_final(util_sha256 *s, char hex[65]);
/* SHA-256 and size of all fd holds, read from its start: 0, or -errno. */
int util_sha256_fd(int fd, uint64_t *ret_size, char hex[65]);
/* Exactly 64 hex digits (either case). */
bool util_sha256_valid_hex(const char *hex);
/* Whether the CPU's SHA instructions are used (probed once); tests turn
 * them off with util_sha256_use_hw(false) to check the portable code. */
bool util_sha256_hw(void);
void util_sha256_use_hw(bool on);

#endif
