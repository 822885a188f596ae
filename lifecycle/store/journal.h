/* Private to lifecycle/: the journal — a durable, append-only log of JSON
 * records with snapshots, under a kernel lock. db.c keeps its VM model in it.
 *
 * A journal is a folder (0700) holding:
 *   lock            flock(): shared for readers, exclusive for the writer
 *   snapshot.json   {"seq":N,"crc32c":"xxxxxxxx","summary":<json>,"state":<json>,
 *                    "index":"<lines>","index_crc":"xxxxxxxx"}\n
 *                   — the compacted state up to record N, and optionally
 *                   before it a summary (a small digest of the state that
 *                   some readers load instead of it); the CRC-32C covers
 *                   "<N> " followed by everything between '"crc32c":"...",'
 *                   and the final '}'. Replaced tmp+fsync+rename. The
 *                   index locates the state's parts, a line each:
 *                   "<member> <i> <offset> <length> <crc32c> <key>\n", i
 *                   the element of an array member (-1: the whole
 *                   member), the offset counted from the '"' that opens
 *                   "summary" (or "state"), key what the writer's
 *                   lc_journal_key_fn named it. It is followed by
 *                   "index_crc", the CRC-32C of "<N> " and the index's
 *                   JSON text. A parts reader reads the head, the index
 *                   from the end, and the parts it wants, each checked by
 *                   its own CRC: not the rest of the file.
 *   log             the records after the snapshot, one per line:
 *                   "<seq> <crc32c as 8 hex> <compact json object>\n", the
 *                   CRC-32C covering "<seq> <json>"; seqs go up by one over
 *                   the whole history, across snapshots
 *   history/log.<first>-<last>
 *                   the records each compaction removed from the log, byte
 *                   for byte (same framing), each file written atomically;
 *                   after a crash mid-compaction two files may overlap, and
 *                   readers skip the seqs they have already seen
 *   log.torn.<unix-time>[.<n>]
 *                   a copy of a log whose torn tail a writer cut off
 *
 * Appends are one write() + fdatasync() before they return. A crash leaves
 * at most a torn last line, which readers ignore and writers cut off (after
 * copying the log aside). Anything else that does not check out — a bad line
 * with more after it, a gap in the seqs, a bad snapshot — is -EBADMSG naming
 * the file and offset; nothing is ever skipped silently.
 *
 * Handles belong to one thread, and so do opening and closing them (the
 * process's list of open handles is not locked). Within one process a
 * journal may be open once for writing or any number of times for reading;
 * a conflicting open fails at once with -EBUSY instead of waiting for its
 * own lock. */
#ifndef QVM_LC_JOURNAL_H
#define QVM_LC_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "util/util.h"

typedef struct lc_journal lc_journal;

/* Called per record in seq order. rec is borrowed (the callback may take a
 * reference). A negative return stops the walk and is returned as is. */
typedef int (*lc_journal_cb)(uint64_t seq, json_t *rec, void *ud, util_err *err);

enum {
	LC_JOURNAL_WRITE = 1 << 0,   /* the writer (see lc_journal_open) */
	LC_JOURNAL_SUMMARY = 1 << 1, /* a reader that loads the snapshot's summary */
	/* a reader that loads the snapshot's index and no state: the parts it
	 * needs it parses with lc_journal_part (a snapshot without an index
	 * loads whole, as without this flag) */
	LC_JOURNAL_PARTS = 1 << 2,
};

/* Open the journal in dir and load its snapshot and records.
 * flags: LC_JOURNAL_WRITE to take the exclusive lock, create dir (0700) if missing, remove
 * leftover temporary files, cut off a torn tail (the log is first copied to
 * log.torn.*) and finish a compaction a crash interrupted. Otherwise take
 * the shared lock and change nothing; a missing dir is -ENOENT.
 * timeout_ms bounds the wait for the lock (0: try once, < 0: forever); then
 * -EBUSY. Corruption is -EBADMSG. *ret is a new handle for lc_journal_close. */
int lc_journal_open(const char *dir, unsigned flags, int timeout_ms, lc_journal **ret,
                    util_err *err);

/* Release the lock; accepts NULL. The process keeps the files open and
 * what was loaded, so that its next open of the journal reads only what
 * changed since (checked under that open's lock). */
void lc_journal_close(lc_journal *j);

/* Free what closed handles keep (a long-lived process that is done with
 * the journal for a while: the supervisor once its VM runs). */
void lc_journal_forget(void);

static inline void lc_journal_closep(lc_journal **j)
{
	lc_journal_close(*j);
}
#define _cleanup_journal_ _cleanup_(lc_journal_closep)

/* The snapshot's state (borrowed, valid until the next compact or close), or
 * NULL when the journal was never compacted. */
json_t *lc_journal_state(lc_journal *j);

/* Opened with LC_JOURNAL_SUMMARY and the snapshot has a summary: then
 * lc_journal_state() returns the summary instead of the state. */
bool lc_journal_state_is_summary(const lc_journal *j);

/* The seq the snapshot covers (0: none), and the last seq of all (0: empty). */
uint64_t lc_journal_snapshot_seq(const lc_journal *j);
uint64_t lc_journal_last_seq(const lc_journal *j);

/* How many records follow the snapshot: what a compaction would fold in. */
size_t lc_journal_count(const lc_journal *j);
/* Bytes of valid records in the log (what the next reader loads). */
uint64_t lc_journal_log_size(const lc_journal *j);

/* A group of appends made durable together: after begin, appends write
 * their lines but do not sync; commit syncs once (the records are
 * durable when it returns 0), abort takes them back out of the file. A
 * handle closed with a group open aborts it. */
void lc_journal_group_begin(lc_journal *j);
int lc_journal_group_commit(lc_journal *j, util_err *err);
void lc_journal_group_abort(lc_journal *j);
/* The largest log or snapshot a reader accepts, which an append or a
 * compaction never passes: 256 MiB, or QVM_JOURNAL_MAX_BYTES (tests; at
 * least 64 KiB). */
size_t lc_journal_max_bytes(void);

/* The file this open saved a torn log to, for a warning; NULL if none. */
const char *lc_journal_torn(const lc_journal *j);

/* The key of one element of the state's array member for the index of the
 * next snapshot: a new string without newlines, or NULL. */
typedef char *(*lc_journal_key_fn)(const char *member, json_t *elem);
void lc_journal_set_key_fn(lc_journal *j, lc_journal_key_fn fn);

/* A parts open: the snapshot's index (borrowed), or NULL when it has none
 * (then lc_journal_state() holds the whole state). */
const char *lc_journal_index(const lc_journal *j);

/* Read and parse one part of the snapshot's state, as its index line
 * gives it (where, how long, its CRC-32C): a new reference, or NULL with
 * err set. */
json_t *lc_journal_part(const lc_journal *j, uint64_t off, uint64_t len, uint32_t crc,
                        util_err *err);

/* Walk the records after the snapshot in seq order. */
int lc_journal_foreach(lc_journal *j, lc_journal_cb cb, void *ud, util_err *err);

/* Append rec (a JSON object; borrowed — the journal keeps its own copy) as
 * the next seq, durably: it is on disk when this returns 0. ret_seq (may be
 * NULL) gets the seq. On failure nothing of it remains in the log (ENOSPC,
 * EIO: "cannot append to journal '<dir>/log': No space left on device").
 * After a failed sync the handle refuses further appends (-EIO): the state of
 * the file is unknown until it is reopened. Writers only (-EBADF). */
int lc_journal_append(lc_journal *j, json_t *rec, uint64_t *ret_seq, util_err *err);

/* Make state (any JSON value; borrowed, the journal keeps a copy) the
 * snapshot at the last seq, with summary (an object or array, or NULL;
 * borrowed) beside it and empty the log, archiving its records to
 * history/ first. Crash-safe at every step: the old snapshot and log or the
 * new snapshot (records <= its seq left in the log are skipped on load).
 * On failure the journal still holds everything. Writers only (-EBADF).
 * Crash points (QVM_CRASH_AT): "journal-compact-archived" (history written,
 * snapshot not), "journal-compact-snapshot" (snapshot renamed, log not yet
 * emptied). */
int lc_journal_compact(lc_journal *j, json_t *state, json_t *summary, util_err *err);

/* Walk every record ever appended — the archives in history/, then the
 * log — in seq order, each once. Uses a handle this process already has
 * open on dir, else takes the shared lock for the walk (waiting up to 10 s).
 * A missing range is -EBADMSG. needle (may be NULL) is a reader's
 * shortcut: archived records whose JSON text lacks it (or has it followed by
 * a digit) are checksummed but neither parsed nor handed to cb; cb must
 * still check what it gets. */
int lc_journal_foreach_history(const char *dir, const char *needle, lc_journal_cb cb, void *ud,
                               util_err *err);
/* The same, reading only the archives that hold one of the n_seqs seqs
 * (NULL: all), and the log: the others are neither read nor checked. cb
 * may still get records other than those. */
int lc_journal_foreach_history_of(const char *dir, const char *needle, const uint64_t *seqs,
                                  size_t n_seqs, lc_journal_cb cb, void *ud, util_err *err);

#endif
