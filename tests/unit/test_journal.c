/* lifecycle/journal: records and snapshots across reopens, torn tails at
 * every byte, corruption, crashes mid-compaction, ENOSPC on a tiny tmpfs,
 * a failed sync (EIO) of an append and of a snapshot, locks, leftover
 * temporary files. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lifecycle/store/journal.h"
#include "tap.h"

/* ok()/check() that show the error object (named err) when they fail. */
#define ok_e(cond, ...)                                                                            \
	({                                                                                         \
		int c_ = ok(cond, __VA_ARGS__);                                                    \
		if (!c_)                                                                           \
			diag("error: %s", err.msg);                                                \
		c_;                                                                                \
	})
#define check_e(cond, ...)                                                                         \
	({                                                                                         \
		int c_ = check(cond, __VA_ARGS__);                                                 \
		if (!c_)                                                                           \
			check(0, "... error: %s", err.msg);                                        \
		c_;                                                                                \
	})

/* ---- helpers ---------------------------------------------------------------- */

/* Checks made in a forked child travel to the parent through a pipe, so the
 * TAP numbering stays the parent's. */
static int child_fd = -1;

__attribute__((format(printf, 2, 3))) static int check(int cond, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (child_fd < 0)
		return ok(cond, "%s", msg);
	dprintf(child_fd, "%d %s\n", cond ? 1 : 0, msg);
	return cond;
}

/* Run fn in a child; its checks become ours, and it must exit 0. */
static void in_child(const char *what, void (*fn)(const char *), const char *arg)
{
	int p[2], status = 0;
	FILE *f;
	char line[1200];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		ok(0, "%s: pipe: %s", what, strerror(errno));
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		child_fd = p[1];
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		ok(line[0] == '1', "%s", line + 2);
	}
	if (f)
		fclose(f);
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child exited cleanly (status %#x)",
	   what, status);
}

static json_t *mkrec(int i)
{
	return json_pack("{s:s, s:i, s:s, s:{s:[i,b,n], s:f}}", "type", "test", "i", i, "text",
	                 "a line\nwith \"quotes\", tabs\t, \xc3\xbcnicode and \\ backslashes",
	                 "nested", "list", i * 7, i % 2, "real", i / 4.0);
}

static char *memdup(const char *p, size_t n)
{
	char *copy = util_xmalloc(n + 1);

	memcpy(copy, p, n);
	copy[n] = '\0';
	return copy;
}

static char *path_in(const char *dir, const char *name)
{
	return util_xasprintf("%s/%s", dir, name);
}

static char *slurp(const char *path, size_t *ret_len)
{
	char *data = NULL;
	size_t len = 0;

	if (util_read_file(path, 1 << 26, &data, &len, NULL) < 0)
		return NULL;
	if (ret_len)
		*ret_len = len;
	return data;
}

static int spit(const char *path, const char *data, size_t len)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		return -1;
	return 0;
}

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

static int file_mode(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : (int)(st.st_mode & 07777);
}

/* How many entries of dir start with prefix; with del, remove them. */
static int count_prefix(const char *dir, const char *prefix, bool del)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!util_startswith(de->d_name, prefix))
			continue;
		n++;
		if (del)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	return n;
}

typedef struct collected {
	json_t *recs;
	uint64_t first, last;
	size_t n;
	bool in_order;
	int stop_after; /* > 0: return -42 after this many */
} collected;

static int collect_cb(uint64_t seq, json_t *rec, void *ud, util_err *err)
{
	collected *c = ud;

	(void)err;
	if (c->n == 0)
		c->first = seq;
	else if (seq != c->last + 1)
		c->in_order = false;
	c->last = seq;
	c->n++;
	json_array_append(c->recs, rec);
	if (c->stop_after && c->n >= (size_t)c->stop_after)
		return -42;
	return 0;
}

/* expect[i] is the record of seq i + 1: are exactly seqs first..last there? */
static bool same_records(const collected *c, json_t *expect, uint64_t first, uint64_t last)
{
	if (c->n != last - first + 1 || !c->in_order || (c->n && c->first != first))
		return false;
	for (size_t i = 0; i < c->n; i++)
		if (!json_equal(json_array_get(c->recs, i), json_array_get(expect, first - 1 + i)))
			return false;
	return true;
}

static bool journal_has(lc_journal *j, json_t *expect, uint64_t first, uint64_t last)
{
	collected c = { .recs = json_array(), .in_order = true };
	util_err err = { 0 };
	bool good = lc_journal_foreach(j, collect_cb, &c, &err) == 0 &&
	            same_records(&c, expect, first, last);

	json_decref(c.recs);
	return good;
}

static bool history_has(const char *dir, json_t *expect, uint64_t last, util_err *err)
{
	collected c = { .recs = json_array(), .in_order = true };
	bool good = lc_journal_foreach_history(dir, NULL, collect_cb, &c, err) == 0 &&
	            same_records(&c, expect, 1, last);

	if (!good)
		diag("history: %zu records %" PRIu64 "-%" PRIu64 " in order %d: %s", c.n, c.first,
		     c.last, c.in_order, err->msg);
	json_decref(c.recs);
	return good;
}

/* Append records first..last of expect (creating them as needed). */
static int append_n(lc_journal *j, json_t *expect, int first, int last)
{
	util_err err = { 0 };

	for (int i = first; i <= last; i++) {
		json_t *rec = mkrec(i);
		uint64_t seq = 0;

		json_array_append_new(expect, rec);
		if (lc_journal_append(j, rec, &seq, &err) < 0 || seq != (uint64_t)i) {
			diag("append %d: seq %" PRIu64 ": %s", i, seq, err.msg);
			return -1;
		}
	}
	return 0;
}

/* The offset of line n (1-based) in buf, or -1. */
static long line_off(const char *buf, int n)
{
	const char *p = buf;

	for (int i = 1; i < n; i++) {
		p = strchr(p, '\n');
		if (!p)
			return -1;
		p++;
	}
	return p - buf;
}

/* ---- 1. records, reopen, compaction, history ----------------------------------- */

static void test_basic(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "basic/journal");
	_cleanup_free_ char *log = path_in(dir, "log"), *lock = path_in(dir, "lock");
	_cleanup_free_ char *snap = path_in(dir, "snapshot.json"), *hist = path_in(dir, "history");
	_cleanup_free_ char *arch = path_in(dir, "history/log.1-20");
	_cleanup_json_ json_t *expect = json_array();
	_cleanup_json_ json_t *state1 = json_pack("{s:i, s:[s,s]}", "upto", 20, "vms", "a", "b");
	_cleanup_json_ json_t *state2 = json_pack("{s:i}", "upto", 30);
	_cleanup_json_ json_t *arr = json_array();
	collected c = { .recs = json_array(), .in_order = true, .stop_after = 3 };
	util_err err = { 0 };
	lc_journal *j = NULL, *r2 = NULL;
	int r;

	r = lc_journal_open(dir, false, 1000, &j, &err);
	is_int(r, -ENOENT, "a reader of a missing journal gets -ENOENT: %s", err.msg);

	r = lc_journal_open(dir, true, 1000, &j, &err);
	if (!ok_e(r == 0, "a writer creates the journal"))
		return;
	is_int(file_mode(dir), 0700, "the journal folder is 0700");
	ok(lc_journal_state(j) == NULL && lc_journal_last_seq(j) == 0 && lc_journal_count(j) == 0,
	   "a new journal is empty");
	ok(append_n(j, expect, 1, 20) == 0, "20 appends get seqs 1-20");
	is_int(lc_journal_count(j), 20, "count is 20");
	ok(journal_has(j, expect, 1, 20), "the handle iterates what was appended");
	r = lc_journal_append(j, arr, NULL, &err);
	ok(r == -EINVAL && strstr(err.msg, "JSON object"), "a non-object record is refused: %s",
	   err.msg);
	r = lc_journal_foreach(j, collect_cb, &c, &err);
	ok(r == -42 && c.n == 3, "a callback's negative return stops the walk and is returned");
	json_decref(c.recs);
	lc_journal_close(j);
	lc_journal_close(NULL);
	is_int(file_mode(log), 0600, "the log is 0600");
	is_int(file_mode(lock), 0600, "the lock is 0600");

	for (int w = 0; w <= 1; w++) {
		r = lc_journal_open(dir, w, 1000, &j, &err);
		ok(r == 0 && lc_journal_last_seq(j) == 20 && lc_journal_count(j) == 20 &&
		           journal_has(j, expect, 1, 20) && lc_journal_torn(j) == NULL,
		   "reopened as %s: the same 20 records with the same seqs",
		   w ? "writer" : "reader");
		if (!w) {
			r = lc_journal_append(j, expect, NULL, &err);
			ok(r == -EBADF && strstr(err.msg, "read-only"),
			   "a reader cannot append: %s", err.msg);
			r = lc_journal_compact(j, state1, NULL, &err);
			ok(r == -EBADF, "a reader cannot compact: %s", err.msg);
			lc_journal_close(j);
		}
	}
	r = lc_journal_compact(j, state1, NULL, &err);
	ok_e(r == 0, "compact");
	ok(json_equal(lc_journal_state(j), state1) && lc_journal_count(j) == 0 &&
	           lc_journal_last_seq(j) == 20 && lc_journal_snapshot_seq(j) == 20,
	   "after compacting: the state, no records, last seq 20");
	is_int(file_size(log), 0, "the log is empty");
	ok(append_n(j, expect, 21, 30) == 0, "the next appends get seqs 21-30");
	lc_journal_close(j);
	is_int(file_mode(snap), 0600, "the snapshot is 0600");
	is_int(file_mode(hist), 0700, "the history folder is 0700");
	is_int(file_mode(arch), 0600, "history/log.1-20 is there, 0600");

	for (int w = 0; w <= 1; w++) {
		r = lc_journal_open(dir, w, 1000, &j, &err);
		ok_e(r == 0 && json_equal(lc_journal_state(j), state1) &&
		             lc_journal_snapshot_seq(j) == 20 && lc_journal_last_seq(j) == 30 &&
		             journal_has(j, expect, 21, 30),
		     "reopened as %s after compaction: the state and records 21-30",
		     w ? "writer" : "reader");
		if (!w)
			lc_journal_close(j);
	}
	ok_e(lc_journal_compact(j, state2, NULL, &err) == 0, "compact again");
	ok(append_n(j, expect, 31, 35) == 0, "append 31-35");
	ok(history_has(dir, expect, 35, &err),
	   "history with the writer open in this process: 1-35 in order");
	lc_journal_close(j);
	ok(history_has(dir, expect, 35, &err), "history from the files: 1-35 in order");
	{
		/* 1-30 are archived, 31-35 in the log: the needle spares parsing
		 * archived records without it (3, not 30), the log is handed on */
		collected h = { .recs = json_array(), .in_order = true };
		bool good = lc_journal_foreach_history(dir, "\"i\":3", collect_cb, &h, &err) == 0 &&
		            h.n == 6 && h.first == 3 && h.last == 35;

		for (size_t i = 0; good && i < h.n; i++)
			good = json_integer_value(
			               json_object_get(json_array_get(h.recs, i), "i")) ==
			       (i == 0 ? 3 : 30 + (json_int_t)i);
		ok(good, "history with a needle: archived record 3 (not 30), then the log's 31-35");
		json_decref(h.recs);
	}

	r = lc_journal_open(dir, false, 1000, &j, &err);
	ok(r == 0 && json_equal(lc_journal_state(j), state2) && journal_has(j, expect, 31, 35),
	   "a reader sees the second snapshot and records 31-35");
	ok(history_has(dir, expect, 35, &err), "history with a reader open in this process");
	r = lc_journal_open(dir, false, 1000, &r2, &err);
	ok(r == 0, "two readers in one process");
	lc_journal_close(r2);
	lc_journal_close(j);

	/* Compacting an empty log is fine and changes nothing but the state. */
	r = lc_journal_open(dir, true, 1000, &j, &err);
	ok(r == 0 && lc_journal_compact(j, state1, NULL, &err) == 0 &&
	           lc_journal_compact(j, state2, NULL, &err) == 0,
	   "compacting twice in a row");
	lc_journal_close(j);
	r = lc_journal_open(dir, false, 1000, &j, &err);
	ok(r == 0 && json_equal(lc_journal_state(j), state2) && lc_journal_last_seq(j) == 35 &&
	           lc_journal_count(j) == 0,
	   "... leaves the last state at seq 35");
	lc_journal_close(j);
	ok(history_has(dir, expect, 35, &err), "... and the history whole");
}

/* ---- 2. a torn tail at every byte of the last record ------------------------------- */

static void test_torn(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "torn");
	_cleanup_free_ char *log = path_in(dir, "log");
	_cleanup_free_ char *orig = NULL;
	_cleanup_json_ json_t *expect = json_array();
	util_err err = { 0 };
	lc_journal *j = NULL;
	size_t len, last, tail;
	int w_bad = 0, r_bad = 0, r;
	char first_fail[2200] = "";

	if (lc_journal_open(dir, true, 1000, &j, &err) < 0 || append_n(j, expect, 1, 5) < 0) {
		ok(0, "set up: %s", err.msg);
		return;
	}
	lc_journal_close(j);
	orig = slurp(log, &len);
	last = (size_t)line_off(orig, 5);
	tail = len - last;
	diag("the last record is %zu bytes at offset %zu", tail, last);

	for (size_t k = 0; k < tail; k++) {
		size_t cut = last + k;
		_cleanup_free_ char *torn = NULL, *now = NULL;
		size_t torn_len = 0, now_len = 0;
		uint64_t seq = 0;
		bool good;

		/* as the writer: cut off, kept aside, the next seq right */
		spit(log, orig, cut);
		r = lc_journal_open(dir, true, 1000, &j, &err);
		good = r == 0 && lc_journal_count(j) == 4 && lc_journal_last_seq(j) == 4 &&
		       journal_has(j, expect, 1, 4);
		if (good && k > 0) {
			torn = lc_journal_torn(j) ? slurp(lc_journal_torn(j), &torn_len) : NULL;
			good = torn && torn_len == cut && !memcmp(torn, orig, cut) &&
			       util_startswith(lc_journal_torn(j), dir) &&
			       strstr(lc_journal_torn(j), "/log.torn.") &&
			       file_size(log) == (long long)last;
		} else if (good) {
			good = lc_journal_torn(j) == NULL &&
			       count_prefix(dir, "log.torn.", false) == 0;
		}
		if (good)
			good = lc_journal_append(j, json_array_get(expect, 4), &seq, &err) == 0 &&
			       seq == 5;
		lc_journal_close(j);
		j = NULL;
		now = slurp(log, &now_len);
		good = good && now_len == len && !memcmp(now, orig, len);
		if (!good && !w_bad++)
			snprintf(first_fail, sizeof(first_fail), "writer, cut at +%zu: r=%d %s", k,
			         r, err.msg);
		count_prefix(dir, "log.torn.", true);

		/* as a reader: the same records, the file untouched */
		spit(log, orig, cut);
		free(now);
		r = lc_journal_open(dir, false, 1000, &j, &err);
		good = r == 0 && lc_journal_count(j) == 4 && lc_journal_last_seq(j) == 4 &&
		       journal_has(j, expect, 1, 4) && lc_journal_torn(j) == NULL;
		lc_journal_close(j);
		j = NULL;
		now = slurp(log, &now_len);
		good = good && now_len == cut && !memcmp(now, orig, cut) &&
		       count_prefix(dir, "log.torn.", false) == 0;
		if (!good && !r_bad++)
			snprintf(first_fail, sizeof(first_fail), "reader, cut at +%zu: r=%d %s", k,
			         r, err.msg);
	}
	ok(w_bad == 0,
	   "writer, log cut at each of the %zu offsets of the last record: records 1-4 "
	   "kept, the torn log saved aside, the next append is seq 5",
	   tail);
	ok(r_bad == 0, "reader, log cut at each offset: records 1-4, the file untouched");
	if (first_fail[0])
		diag("first failure: %s", first_fail);

	/* A complete last line that fails its checksum is a torn write too. */
	{
		_cleanup_free_ char *bad = memdup(orig, len);

		bad[len - 3] ^= 0x01;
		spit(log, bad, len);
		r = lc_journal_open(dir, false, 1000, &j, &err);
		ok(r == 0 && lc_journal_count(j) == 4,
		   "reader: a last line failing its checksum is ignored");
		lc_journal_close(j);
		r = lc_journal_open(dir, true, 1000, &j, &err);
		ok(r == 0 && lc_journal_count(j) == 4 && lc_journal_torn(j) &&
		           file_size(log) == (long long)last,
		   "writer: ... and cut off");
		lc_journal_close(j);
		count_prefix(dir, "log.torn.", true);
	}
	/* Zeros past the end, as some filesystems show after a crash. */
	{
		_cleanup_free_ char *z = util_xmalloc(len + 100);

		memcpy(z, orig, len);
		memset(z + len, 0, 100);
		spit(log, z, len + 100);
		r = lc_journal_open(dir, true, 1000, &j, &err);
		ok(r == 0 && lc_journal_count(j) == 5 && lc_journal_torn(j) &&
		           file_size(log) == (long long)len,
		   "writer: zeros after the last record are cut off");
		lc_journal_close(j);
		count_prefix(dir, "log.torn.", true);
	}
}

/* ---- 3. corruption in the middle ------------------------------------------------------- */

static void expect_corrupt(const char *dir, const char *file, const char *content, size_t len,
                           const char *what, const char *needle1, const char *needle2)
{
	_cleanup_free_ char *path = path_in(dir, file);
	_cleanup_free_ char *after = NULL;
	size_t after_len = 0;
	util_err err = { 0 };
	lc_journal *j = NULL;
	int r;

	spit(path, content, len);
	/* a process trusts what it read and checks only that the files are
	 * the ones it read: changed behind qvm's back, they are read afresh
	 * by the next process */
	lc_journal_forget();
	for (int w = 0; w <= 1; w++) {
		r = lc_journal_open(dir, w, 1000, &j, &err);
		ok(r == -EBADMSG && strstr(err.msg, needle1) &&
		           (!needle2 || strstr(err.msg, needle2)) && strstr(err.msg, file),
		   "%s (%s): -EBADMSG: %s", what, w ? "writer" : "reader", err.msg);
		if (r == 0)
			lc_journal_close(j);
	}
	after = slurp(path, &after_len);
	ok(after_len == len && !memcmp(after, content, len) &&
	           count_prefix(dir, "log.torn.", false) == 0,
	   "%s: the file is left as it was", what);
}

static void test_corrupt(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "corrupt"), *dir7 = path_in(base, "corrupt7");
	_cleanup_free_ char *log = path_in(dir, "log"), *snap = path_in(dir, "snapshot.json");
	_cleanup_free_ char *log7 = path_in(dir7, "log");
	_cleanup_free_ char *orig = NULL, *orig7 = NULL, *osnap = NULL;
	_cleanup_json_ json_t *expect = json_array(), *expect7 = json_array();
	_cleanup_json_ json_t *state = json_pack("{s:s}", "k", "some state");
	util_err err = { 0 };
	lc_journal *j = NULL;
	size_t len, len7, slen;
	long o2, o3, o4, o5, o7;
	char needle[64];
	int r;

	if (lc_journal_open(dir, true, 1000, &j, &err) < 0 || append_n(j, expect, 1, 5) < 0) {
		ok(0, "set up: %s", err.msg);
		return;
	}
	lc_journal_close(j);
	orig = slurp(log, &len);
	o2 = line_off(orig, 2);
	o3 = line_off(orig, 3);
	o4 = line_off(orig, 4);
	o5 = line_off(orig, 5);

	{
		_cleanup_free_ char *bad = memdup(orig, len);

		bad[o3 + 20] ^= 0x04; /* inside the JSON */
		snprintf(needle, sizeof(needle), "record 3 at offset %ld", o3);
		expect_corrupt(dir, "log", bad, len, "a flipped byte in record 3", needle,
		               "valid records follow");
	}
	{
		_cleanup_free_ char *bad = memdup(orig, len);

		bad[o3] = '7'; /* the seq: the checksum covers it */
		snprintf(needle, sizeof(needle), "at offset %ld", o3);
		expect_corrupt(dir, "log", bad, len, "a flipped seq in record 3", needle,
		               "checksum");
	}
	{
		_cleanup_free_ char *bad = memdup(orig, len);

		bad[o3 + 3] = 'X'; /* the checksum field */
		snprintf(needle, sizeof(needle), "offset %ld", o3);
		expect_corrupt(dir, "log", bad, len, "a damaged frame in record 3", needle,
		               "not a journal record");
	}
	{
		_cleanup_free_ char *bad = memdup(orig, len);

		/* Two bad lines at the end are not what a crash leaves. */
		bad[o4 + 20] ^= 0x04;
		bad[o5 + 20] ^= 0x04;
		snprintf(needle, sizeof(needle), "record 4 at offset %ld", o4);
		expect_corrupt(dir, "log", bad, len, "records 4 and 5 damaged", needle, NULL);
	}
	{
		_cleanup_free_ char *gap = util_xmalloc(len);
		size_t n = (size_t)o3;

		memcpy(gap, orig, n); /* 1, 2, 4, 5 */
		memcpy(gap + n, orig + o4, len - (size_t)o4);
		n += len - (size_t)o4;
		snprintf(needle, sizeof(needle), "offset %ld is 4 where 3 was expected", o3);
		expect_corrupt(dir, "log", gap, n, "a sequence gap", needle, "missing");
	}
	{
		_cleanup_free_ char *dup = util_xmalloc(len + (size_t)(o3 - o2));
		size_t n = (size_t)o3;

		memcpy(dup, orig, n); /* 1, 2, 2, 3, 4, 5 */
		memcpy(dup + n, orig + o2, (size_t)(o3 - o2));
		n += (size_t)(o3 - o2);
		memcpy(dup + n, orig + o3, len - (size_t)o3);
		n += len - (size_t)o3;
		expect_corrupt(dir, "log", dup, n, "a repeated record", "is 2 where 3 was expected",
		               NULL);
	}
	spit(log, orig, len);

	/* the snapshot */
	r = lc_journal_open(dir, true, 1000, &j, &err);
	ok_e(r == 0 && lc_journal_compact(j, state, NULL, &err) == 0, "compact");
	lc_journal_close(j);
	osnap = slurp(snap, &slen);
	{
		_cleanup_free_ char *bad = memdup(osnap, slen);

		bad[slen - 5] ^= 0x02; /* inside the state */
		expect_corrupt(dir, "snapshot.json", bad, slen,
		               "a flipped byte in the snapshot's state", "checksum", NULL);
		memcpy(bad, osnap, slen);
		bad[7] = bad[7] == '9' ? '8' : '9'; /* the seq */
		expect_corrupt(dir, "snapshot.json", bad, slen, "a changed seq in the snapshot",
		               "checksum", NULL);
		expect_corrupt(dir, "snapshot.json", osnap, slen - 3, "a truncated snapshot",
		               "incomplete", NULL);
		expect_corrupt(dir, "snapshot.json", "{}\n", 3, "a snapshot that is not one",
		               "not a journal snapshot", NULL);
	}
	spit(snap, osnap, slen);

	/* A log that starts past the snapshot: records 6 are missing. */
	if (lc_journal_open(dir7, true, 1000, &j, &err) < 0 || append_n(j, expect7, 1, 7) < 0) {
		ok(0, "set up: %s", err.msg);
		return;
	}
	lc_journal_close(j);
	orig7 = slurp(log7, &len7);
	o7 = line_off(orig7, 7);
	expect_corrupt(dir, "log", orig7 + o7, len7 - (size_t)o7,
	               "a log starting at 7 after a snapshot at 5",
	               "starts at record 7 but the snapshot ends at record 5", NULL);
	spit(log, "", 0);
	r = lc_journal_open(dir, false, 1000, &j, &err);
	ok_e(r == 0 && lc_journal_last_seq(j) == 5 && json_equal(lc_journal_state(j), state),
	     "repaired: loads again");
	lc_journal_close(j);

	/* An archive with a hole: history says which records are missing. */
	{
		_cleanup_free_ char *arch = path_in(dir, "history/log.1-5");
		_cleanup_free_ char *arch35 = path_in(dir, "history/log.3-5");
		_cleanup_free_ char *a = NULL;
		size_t alen;

		a = slurp(arch, &alen);
		spit(arch, a + o3, alen - (size_t)o3);
		r = lc_journal_foreach_history(dir, NULL, collect_cb, &(collected){ .recs = NULL },
		                               &err);
		ok(r == -EBADMSG && strstr(err.msg, "log.1-5") &&
		           strstr(err.msg, "starts at record 3"),
		   "history: an archive missing its start is an error: %s", err.msg);
		rename(arch, arch35);
		r = lc_journal_foreach_history(dir, NULL, collect_cb, &(collected){ .recs = NULL },
		                               &err);
		ok(r == -EBADMSG && strstr(err.msg, "missing records 1-2"),
		   "history: a missing archive is an error: %s", err.msg);
	}
}

/* ---- 4. a crash in the middle of a compaction ----------------------------------------- */

static const char *crash_dir;
static json_t *crash_state;

static void crash_compact(const char *point)
{
	util_err err = { 0 };
	lc_journal *j = NULL;

	setenv("QVM_CRASH_AT", point, 1);
	if (lc_journal_open(crash_dir, true, 1000, &j, &err) < 0)
		_exit(2);
	lc_journal_compact(j, crash_state, NULL, &err);
	_exit(3); /* the crash point was not reached */
}

static int crash_at(const char *point)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		crash_compact(point);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_crash(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "crash");
	_cleanup_free_ char *log = path_in(dir, "log");
	_cleanup_free_ char *arch = path_in(dir, "history/log.9-12");
	_cleanup_free_ char *before = NULL, *after = NULL;
	_cleanup_json_ json_t *expect = json_array();
	_cleanup_json_ json_t *state = json_pack("{s:i}", "n", 8);
	_cleanup_json_ json_t *state13 = json_pack("{s:i}", "n", 13);
	util_err err = { 0 };
	lc_journal *j = NULL;
	size_t blen, alen;
	uint64_t seq = 0;
	int r;

	if (lc_journal_open(dir, true, 1000, &j, &err) < 0 || append_n(j, expect, 1, 8) < 0) {
		ok(0, "set up: %s", err.msg);
		return;
	}
	lc_journal_close(j);
	before = slurp(log, &blen);
	crash_dir = dir;
	crash_state = state;
	is_int(crash_at("journal-compact-snapshot"), 99,
	       "a writer dies between the snapshot's rename and emptying the log");
	ok(file_size(log) == (long long)blen, "the old log is still there");

	r = lc_journal_open(dir, false, 1000, &j, &err);
	ok_e(r == 0 && json_equal(lc_journal_state(j), state) && lc_journal_snapshot_seq(j) == 8 &&
	             lc_journal_last_seq(j) == 8 && lc_journal_count(j) == 0,
	     "reader: the new state, no records repeated");
	lc_journal_close(j);
	after = slurp(log, &alen);
	ok(alen == blen && !memcmp(before, after, blen), "the reader left the log alone");

	r = lc_journal_open(dir, true, 1000, &j, &err);
	ok_e(r == 0 && json_equal(lc_journal_state(j), state) && lc_journal_count(j) == 0 &&
	             lc_journal_last_seq(j) == 8,
	     "writer: the new state, no records repeated");
	is_int(file_size(log), 0, "the writer finished the compaction: the log is empty");
	json_array_append_new(expect, mkrec(9));
	ok(lc_journal_append(j, json_array_get(expect, 8), &seq, &err) == 0 && seq == 9,
	   "the next append is seq 9");
	lc_journal_close(j);
	ok(history_has(dir, expect, 9, &err), "history: 1-9, each once");

	/* Dying after the archive but before the snapshot: nothing changed,
	 * and the next compaction's archive overlaps this one. */
	r = lc_journal_open(dir, true, 1000, &j, &err);
	ok(r == 0 && append_n(j, expect, 10, 12) == 0, "append 10-12");
	lc_journal_close(j);
	is_int(crash_at("journal-compact-archived"), 99, "a writer dies after archiving 9-12");
	ok(file_size(arch) > 0, "history/log.9-12 was written");
	r = lc_journal_open(dir, true, 1000, &j, &err);
	ok_e(r == 0 && json_equal(lc_journal_state(j), state) && journal_has(j, expect, 9, 12),
	     "reopened: the old state and records 9-12");
	ok_e(append_n(j, expect, 13, 13) == 0 && lc_journal_compact(j, state13, NULL, &err) == 0,
	     "append 13 and compact (archive 9-13)");
	lc_journal_close(j);
	ok(history_has(dir, expect, 13, &err),
	   "history over overlapping archives: 1-13, each once");
}

/* ---- 5. ENOSPC on a tiny tmpfs ------------------------------------------------------------ */

static void enospc_child(const char *dir)
{
	_cleanup_free_ char *jdir = path_in(dir, "journal");
	_cleanup_free_ char *log = path_in(jdir, "log"), *hist = path_in(jdir, "history");
	_cleanup_free_ char *content = NULL;
	_cleanup_json_ json_t *expect = json_array();
	_cleanup_json_ json_t *state = json_pack("{s:s}", "k", "v");
	char pad[301];
	util_err err = { 0 };
	lc_journal *j = NULL;
	size_t len = 0, lines = 0;
	long long size_before;
	int n = 0, r = 0;

	if (!check(geteuid() == 0, "ENOSPC test: running as root (needed to mount a tmpfs)"))
		return;
	if (!check(unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS): %s", strerror(errno)) ||
	    !check(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "make / rprivate: %s",
	           strerror(errno)) ||
	    !check(mount("qvm-test", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") == 0,
	           "mount a 64k tmpfs: %s", strerror(errno)))
		return;
	if (!check_e(lc_journal_open(jdir, true, 1000, &j, &err) == 0, "open on the tmpfs"))
		return;
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (n = 1; n < 100000; n++) {
		json_t *rec = json_pack("{s:i, s:s}", "i", n, "pad", pad);
		uint64_t seq = 0;

		size_before = file_size(log);
		r = lc_journal_append(j, rec, &seq, &err);
		if (r < 0) {
			json_decref(rec);
			break;
		}
		json_array_append_new(expect, rec);
		if (seq != (uint64_t)n)
			break;
	}
	n--; /* the ones that made it */
	check(r == -ENOSPC, "appending until the disk is full: -ENOSPC after %d records", n);
	check(strstr(err.msg, "cannot append to journal '") &&
	              strstr(err.msg, "/log': No space left on device"),
	      "the message says what failed: %s", err.msg);
	check(file_size(log) == size_before, "the log is as long as before the failed append");
	content = slurp(log, &len);
	for (size_t i = 0; i < len; i++)
		lines += content[i] == '\n';
	check(len > 0 && content[len - 1] == '\n' && lines == (size_t)n,
	      "no partial record in the log: %zu lines for %d records", lines, n);
	r = lc_journal_append(j, json_array_get(expect, 0), NULL, &err);
	check(r == -ENOSPC && file_size(log) == size_before, "another append fails the same way");
	r = lc_journal_compact(j, state, NULL, &err);
	check(r == -ENOSPC && lc_journal_count(j) == (size_t)n, "compaction fails too: %s",
	      err.msg);
	check(count_prefix(hist, "", false) <= 2 && count_prefix(jdir, "snapshot.json", false) == 0,
	      "... and leaves no file behind");
	lc_journal_close(j);

	for (int w = 0; w <= 1; w++) {
		r = lc_journal_open(jdir, w, 1000, &j, &err);
		check_e(r == 0 && lc_journal_count(j) == (size_t)n &&
		                journal_has(j, expect, 1, (uint64_t)n) &&
		                lc_journal_torn(j) == NULL,
		        "reopened as %s: all %d records appended before are there",
		        w ? "writer" : "reader", n);
		if (r == 0)
			lc_journal_close(j);
	}
	/* The mount goes with this namespace when the child exits. */
}

static void test_enospc(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "enospc");
	_cleanup_free_ char *stray = path_in(dir, "journal");
	struct stat st;

	mkdir(dir, 0700);
	in_child("ENOSPC", enospc_child, dir);
	ok(stat(stray, &st) < 0 && errno == ENOENT, "the tmpfs is gone with the child's namespace");
}

/* ---- 5b. a failed sync (EIO) --------------------------------------------------------------
 * QVM_FAIL_AT makes the fdatasync of an append, or the fsync of the
 * snapshot's temporary file, fail with EIO as a dying disk would. */

static void test_failed_sync(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "eio");
	_cleanup_free_ char *log = path_in(dir, "log"), *snap = path_in(dir, "snapshot.json");
	_cleanup_json_ json_t *expect = json_array();
	_cleanup_json_ json_t *state = json_pack("{s:s}", "k", "v");
	_cleanup_json_ json_t *lost = mkrec(99);
	util_err err = { 0 };
	lc_journal *j = NULL;
	long long size_before;
	uint64_t seq = 0;
	int r;

	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	if (!ok_e(r == 0 && append_n(j, expect, 1, 3) == 0, "eio: three records appended"))
		return;

	/* the append's fdatasync fails */
	size_before = file_size(log);
	setenv("QVM_FAIL_AT", "journal-append-fdatasync", 1);
	r = lc_journal_append(j, lost, &seq, &err);
	unsetenv("QVM_FAIL_AT");
	is_int(r, -EIO, "a failed sync of an append fails it with -EIO");
	ok(strstr(err.msg, "cannot append to journal") && strstr(err.msg, "cannot sync it"),
	   "the message says what failed: %s", err.msg);
	ok(file_size(log) == size_before, "the record is taken back out of the log");
	ok(lc_journal_last_seq(j) == 3 && journal_has(j, expect, 1, 3),
	   "the handle still holds the three records, not the failed one");
	r = lc_journal_append(j, lost, NULL, &err);
	ok(r == -EIO && strstr(err.msg, "earlier write failed"),
	   "the handle refuses further appends until reopened: %s", err.msg);
	r = lc_journal_compact(j, state, NULL, &err);
	is_int(r, -EIO, "... and compactions");
	lc_journal_close(j);
	j = NULL;
	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	ok_e(r == 0 && lc_journal_last_seq(j) == 3 && journal_has(j, expect, 1, 3) &&
	             lc_journal_torn(j) == NULL,
	     "reopened: the three records are there, nothing torn");
	if (r < 0)
		return;
	ok_e(append_n(j, expect, 4, 5) == 0, "and appends work again (seq 4, 5)");

	/* the snapshot's fsync fails */
	setenv("QVM_FAIL_AT", "journal-compact-snapshot-fsync", 1);
	r = lc_journal_compact(j, state, NULL, &err);
	unsetenv("QVM_FAIL_AT");
	is_int(r, -EIO, "a failed fsync of the snapshot fails the compaction with -EIO");
	ok(strstr(err.msg, "cannot compact journal") && strstr(err.msg, "snapshot.json"),
	   "the message says what failed: %s", err.msg);
	ok(file_size(snap) < 0 && count_prefix(dir, "snapshot.json", false) == 0,
	   "no snapshot and no temporary file of one is left");
	ok(lc_journal_snapshot_seq(j) == 0 && lc_journal_count(j) == 5 &&
	           journal_has(j, expect, 1, 5),
	   "the journal still holds all five records in its log");
	ok_e(append_n(j, expect, 6, 6) == 0, "the handle still appends (seq 6)");
	lc_journal_close(j);
	j = NULL;
	r = lc_journal_open(dir, 0, 1000, &j, &err);
	ok_e(r == 0 && lc_journal_count(j) == 6 && journal_has(j, expect, 1, 6),
	     "reopened as a reader: all six records");
	lc_journal_close(j);
	j = NULL;
	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	if (!ok_e(r == 0, "reopened as the writer"))
		return;
	r = lc_journal_compact(j, state, NULL, &err);
	ok_e(r == 0 && lc_journal_snapshot_seq(j) == 6, "the next compaction succeeds");
	lc_journal_close(j);
	ok(history_has(dir, expect, 6, &err),
	   "the history has every record once (the failed compaction's archive overlaps)");
}

/* ---- 6. locks ----------------------------------------------------------------------------- */

static int lock_pipe[2], go_pipe[2];

/* Hold the journal (exclusive if arg is "w"), say so, release once told. */
static void lock_holder(const char *arg)
{
	util_err err = { 0 };
	lc_journal *j = NULL;
	char c;

	if (lc_journal_open(crash_dir, !strcmp(arg, "w"), 1000, &j, &err) < 0)
		_exit(2);
	if (write(lock_pipe[1], "L", 1) != 1)
		_exit(3);
	if (!strcmp(arg, "kill"))
		for (;;)
			pause();
	if (read(go_pipe[0], &c, 1) != 1)
		_exit(4);
	usleep(300 * 1000); /* the parent is waiting for the lock by now */
	lc_journal_close(j);
	_exit(0);
}

static pid_t start_holder(const char *mode)
{
	char c = 0;
	pid_t pid;

	if (pipe2(lock_pipe, O_CLOEXEC) < 0 || pipe2(go_pipe, O_CLOEXEC) < 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		lock_holder(mode);
	close(lock_pipe[1]);
	close(go_pipe[0]);
	if (read(lock_pipe[0], &c, 1) != 1 || c != 'L') {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	close(lock_pipe[0]);
	return pid;
}

static void test_locks(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "locks");
	_cleanup_json_ json_t *expect = json_array();
	util_err err = { 0 };
	lc_journal *j = NULL, *j2 = NULL;
	int status = 0, r;
	pid_t pid;

	r = lc_journal_open(dir, true, 1000, &j, &err);
	ok(r == 0 && append_n(j, expect, 1, 3) == 0, "set up");
	lc_journal_close(j);
	crash_dir = dir;

	pid = start_holder("w");
	if (!ok(pid > 0, "another process holds the journal for writing"))
		return;
	r = lc_journal_open(dir, true, 100, &j, &err);
	ok(r == -EBUSY && strstr(err.msg, "locked") && strstr(err.msg, "100 ms"),
	   "a writer gives up after 100 ms with -EBUSY: %s", err.msg);
	r = lc_journal_open(dir, false, 100, &j, &err);
	ok(r == -EBUSY, "so does a reader with 100 ms: %s", err.msg);
	r = lc_journal_open(dir, false, 0, &j, &err);
	ok(r == -EBUSY, "and one that only tries once: %s", err.msg);
	if (write(go_pipe[1], "g", 1) != 1)
		diag("cannot tell the holder to let go");
	r = lc_journal_open(dir, false, 10000, &j, &err);
	ok_e(r == 0 && lc_journal_count(j) == 3, "a reader waits until the writer lets go");
	lc_journal_close(j);
	waitpid(pid, &status, 0);
	close(go_pipe[1]);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the holder exited cleanly");

	pid = start_holder("r");
	if (!ok(pid > 0, "another process holds the journal for reading"))
		return;
	r = lc_journal_open(dir, false, 0, &j, &err);
	ok_e(r == 0, "readers share the lock");
	lc_journal_close(j);
	r = lc_journal_open(dir, true, 100, &j, &err);
	ok(r == -EBUSY, "a writer waits for readers, up to its bound: %s", err.msg);
	if (write(go_pipe[1], "g", 1) != 1)
		diag("cannot tell the holder to let go");
	r = lc_journal_open(dir, true, 10000, &j, &err);
	ok_e(r == 0, "a writer waits until the reader lets go");
	lc_journal_close(j);
	waitpid(pid, &status, 0);
	close(go_pipe[1]);

	pid = start_holder("kill");
	if (!ok(pid > 0, "another process holds the journal for writing"))
		return;
	r = lc_journal_open(dir, true, 0, &j, &err);
	ok(r == -EBUSY, "locked while it lives");
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(go_pipe[1]);
	r = lc_journal_open(dir, true, 0, &j, &err);
	ok_e(r == 0 && lc_journal_count(j) == 3,
	     "after SIGKILL the lock is free at once (one try, no wait)");

	/* In one process: no waiting for a lock we hold ourselves. */
	r = lc_journal_open(dir, true, 10000, &j2, &err);
	ok(r == -EBUSY && strstr(err.msg, "already open for writing in this process"),
	   "a second writer in the same process fails at once: %s", err.msg);
	r = lc_journal_open(dir, false, 10000, &j2, &err);
	ok(r == -EBUSY, "so does a reader while this process writes: %s", err.msg);
	lc_journal_close(j);
	r = lc_journal_open(dir, false, 0, &j, &err);
	ok(r == 0 && lc_journal_open(dir, true, 10000, &j2, &err) == -EBUSY,
	   "a writer while this process reads fails at once: %s", err.msg);
	lc_journal_close(j);
}

/* ---- 7. leftover temporary files --------------------------------------------------------- */

static void test_leftovers(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "leftover");
	_cleanup_free_ char *tmp1 = path_in(dir, "snapshot.json.tmp.99999");
	_cleanup_free_ char *tmp2 = path_in(dir, "history/log.1-3.tmp.99999");
	_cleanup_free_ char *tmp3 = path_in(dir, "history/log.4-9.tmp.12");
	_cleanup_json_ json_t *expect = json_array();
	_cleanup_json_ json_t *state = json_pack("{s:b}", "ok", 1);
	util_err err = { 0 };
	lc_journal *j = NULL;
	int r;

	r = lc_journal_open(dir, true, 1000, &j, &err);
	ok_e(r == 0 && append_n(j, expect, 1, 3) == 0 &&
	             lc_journal_compact(j, state, NULL, &err) == 0 &&
	             append_n(j, expect, 4, 5) == 0,
	     "set up: 3 records, compact, 2 more");
	lc_journal_close(j);
	spit(tmp1, "{\"seq\":9,\"sta", 13);
	spit(tmp2, "garbage", 7);
	spit(tmp3, "1 00000000 {}\n", 14);

	r = lc_journal_open(dir, false, 1000, &j, &err);
	ok_e(r == 0 && json_equal(lc_journal_state(j), state) && journal_has(j, expect, 4, 5),
	     "a reader ignores leftover temporary files");
	lc_journal_close(j);
	ok(file_size(tmp1) == 13 && file_size(tmp2) == 7 && file_size(tmp3) == 14,
	   "... and leaves them alone");
	ok(history_has(dir, expect, 5, &err), "history ignores them too");
	r = lc_journal_open(dir, true, 1000, &j, &err);
	ok_e(r == 0 && json_equal(lc_journal_state(j), state) && journal_has(j, expect, 4, 5),
	     "a writer opens");
	lc_journal_close(j);
	ok(file_size(tmp1) < 0 && file_size(tmp2) < 0 && file_size(tmp3) < 0,
	   "... and removes them");
	ok(history_has(dir, expect, 5, &err), "the history is whole");
}

/* A summary beside the state: summary readers load only it, everyone else
 * the state; a flipped byte in either fails the checksum. */
static void test_summary(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "summary/journal");
	_cleanup_free_ char *snap = path_in(dir, "snapshot.json");
	_cleanup_json_ json_t *state = json_pack("{s:s}", "big", "the whole state");
	_cleanup_json_ json_t *summary = json_pack("[i, i]", 1, 2);
	_cleanup_json_ json_t *expect = json_array();
	_cleanup_free_ char *text = NULL;
	util_err err = { 0 };
	lc_journal *j = NULL;
	size_t len;
	char *at;
	int r;

	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	ok_e(r == 0 && append_n(j, expect, 1, 3) == 0 &&
	             lc_journal_compact(j, state, summary, &err) == 0 &&
	             append_n(j, expect, 4, 5) == 0,
	     "compact with a summary, then append");
	lc_journal_close(j);
	r = lc_journal_open(dir, LC_JOURNAL_SUMMARY, 1000, &j, &err);
	ok(r == 0 && lc_journal_state_is_summary(j) && json_equal(lc_journal_state(j), summary) &&
	           lc_journal_count(j) == 2 && lc_journal_last_seq(j) == 5,
	   "a summary reader gets the summary and the records after the snapshot");
	lc_journal_close(j);
	r = lc_journal_open(dir, 0, 1000, &j, &err);
	ok(r == 0 && !lc_journal_state_is_summary(j) && json_equal(lc_journal_state(j), state),
	   "a plain reader gets the state");
	lc_journal_close(j);
	text = slurp(snap, &len);
	at = text ? strstr(text, "[1,2]") : NULL;
	if (ok(at != NULL, "the summary is in the snapshot")) {
		at[1] = '7';
		expect_corrupt(dir, "snapshot.json", text, len, "a flipped byte in the summary",
		               "checksum", NULL);
	}
}

/* An append never writes a log the reader would refuse, a compaction never
 * writes a snapshot it would refuse, and the journal stays readable. */
static void test_size_bounds(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "bounds/journal");
	_cleanup_free_ char *pad = malloc(10000);
	util_err err = { 0 };
	lc_journal *j = NULL;
	size_t appended = 0;
	int r = 0;

	memset(pad, 'x', 9999);
	pad[9999] = '\0';
	setenv("QVM_JOURNAL_MAX_BYTES", "65536", 1);
	is_int((int)lc_journal_max_bytes(), 65536, "QVM_JOURNAL_MAX_BYTES lowers the read limit");
	if (!ok_e(lc_journal_open(dir, true, 1000, &j, &err) == 0, "a writer opens"))
		goto out;
	while (appended < 100) {
		_cleanup_json_ json_t *rec = json_pack("{s:s, s:s}", "type", "pad", "pad", pad);

		r = lc_journal_append(j, rec, NULL, &err);
		if (r < 0)
			break;
		appended++;
	}
	ok(r == -E2BIG && appended == 6, "the 7th record of 10 KB is refused: %s", err.msg);
	ok(strstr(err.msg, "would pass 65536 bytes") != NULL, "... saying why");
	ok(lc_journal_log_size(j) <= 65536, "the log stayed within the limit");
	{
		_cleanup_json_ json_t *big =
		        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "a", pad, "b", pad, "c",
		                  pad, "d", pad, "e", pad, "f", pad, "g", pad);

		r = lc_journal_compact(j, big, NULL, &err);
		ok(r == -E2BIG && strstr(err.msg, "more than the 65536"),
		   "a snapshot over the limit is not written: %s", err.msg);
	}
	lc_journal_close(j);
	j = NULL;
	r = lc_journal_open(dir, false, 1000, &j, &err);
	ok(r == 0 && lc_journal_count(j) == appended, "a reader reads all %zu records back: %s",
	   appended, r < 0 ? err.msg : "");
	lc_journal_close(j);
out:
	unsetenv("QVM_JOURNAL_MAX_BYTES");
	is_int((int)lc_journal_max_bytes(), 256 << 20, "unset, the limit is 256 MiB");
}

static char *unit_key(const char *member, json_t *elem)
{
	return util_xasprintf("%s:%s", member, json_string_value(json_object_get(elem, "k")));
}

/* A flipped byte in a part fails that part's checksum for a parts reader
 * (the others still read) and the file's for everyone else; one in the
 * index makes a parts reader load the file whole, which fails. */
static void test_parts_corrupt(const char *dir)
{
	_cleanup_free_ char *snap = path_in(dir, "snapshot.json");
	_cleanup_free_ char *text = NULL;
	util_err err = { 0 };
	lc_journal *j = NULL;
	size_t len;
	char *at;
	int r;

	text = slurp(snap, &len);
	at = text ? strstr(text, "{\"k\":\"v\"}") : NULL;
	if (!ok(at != NULL, "the meta part is in the snapshot"))
		return;
	at[6] = 'w';
	spit(snap, text, len);
	r = lc_journal_open(dir, LC_JOURNAL_PARTS, 1000, &j, &err);
	ok(r == 0 && lc_journal_index(j), "a flipped byte in a part: the parts reader opens: %s",
	   err.msg);
	if (r == 0) {
		_cleanup_free_ char *copy = util_xstrdup(lc_journal_index(j));
		unsigned long long off = 0, plen = 0;
		unsigned crc = 0;
		char *meta = strstr(copy, "meta ");

		ok(meta && sscanf(meta, "meta -1 %llu %llu %x", &off, &plen, &crc) == 3 &&
		           lc_journal_part(j, off, plen, crc, &err) == NULL &&
		           strstr(err.msg, "fails its checksum"),
		   "... and refuses that part: %s", err.msg);
		lc_journal_close(j);
	}
	r = lc_journal_open(dir, 0, 1000, &j, &err);
	ok(r == -EBADMSG && strstr(err.msg, "checksum"), "... a full reader refuses the file: %s",
	   err.msg);
	at[6] = 'v';
	at = strstr(text, "\"index\":\"n -1");
	if (!ok(at != NULL, "the index is in the snapshot"))
		return;
	at[9] = 'm';
	spit(snap, text, len);
	r = lc_journal_open(dir, LC_JOURNAL_PARTS, 1000, &j, &err);
	ok(r == -EBADMSG && strstr(err.msg, "checksum"),
	   "a flipped byte in the index: the parts reader refuses the file: %s", err.msg);
}

/* A parts reader gets the index and parses one part alone: each element
 * of an array member and each other member are where the index says,
 * named by the writer's key function. A journal never compacted has no
 * index; a full reader still gets the whole state. */
static void test_parts(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "parts/journal");
	_cleanup_json_ json_t *state =
	        json_pack("{s:i, s:[{s:s}, {s:s, s:[i]}], s:{s:s}}", "n", 7, "items", "k", "a", "k",
	                  "b\"q", "x", 1, "meta", "k", "v");
	_cleanup_json_ json_t *summary = json_pack("[i]", 1);
	_cleanup_json_ json_t *expect = json_array();
	util_err err = { 0 };
	lc_journal *j = NULL;
	int r, found = 0;

	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	ok_e(r == 0 && append_n(j, expect, 1, 2) == 0, "a journal with records");
	lc_journal_close(j);
	r = lc_journal_open(dir, LC_JOURNAL_PARTS, 1000, &j, &err);
	ok(r == 0 && !lc_journal_index(j) && lc_journal_count(j) == 2,
	   "never compacted: no index, the records");
	lc_journal_close(j);

	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	if (r == 0)
		lc_journal_set_key_fn(j, unit_key);
	ok_e(r == 0 && lc_journal_compact(j, state, summary, &err) == 0,
	     "compact with a key function");
	lc_journal_close(j);
	r = lc_journal_open(dir, LC_JOURNAL_PARTS, 1000, &j, &err);
	ok(r == 0 && lc_journal_index(j) && !lc_journal_state(j),
	   "a parts reader gets the index, not the state");
	if (r == 0 && lc_journal_index(j)) {
		_cleanup_free_ char *copy = util_xstrdup(lc_journal_index(j));
		char *save = NULL;

		for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			char member[32], key[64] = "";
			long i;
			unsigned long long off, len;
			unsigned crc;
			json_t *part, *want;

			if (sscanf(l, "%31s %ld %llu %llu %x %63s", member, &i, &off, &len, &crc,
			           key) < 5) {
				ok(0, "index line '%s' reads", l);
				continue;
			}
			part = lc_journal_part(j, off, len, crc, &err);
			want = json_object_get(state, member);
			if (i >= 0)
				want = json_array_get(want, (size_t)i);
			ok(part && json_equal(part, want), "the part at '%s' is %s", l, member);
			/* a key the index cannot carry plain ('"') is left out */
			if (i >= 0)
				is_str(key, i == 0 ? "items:a" : "",
				       "... named by the key function");
			json_decref(part);
			found++;
		}
	}
	is_int(found, 4, "the index has the 2 elements and the 2 other members");
	ok(lc_journal_part(j, 1u << 30, 2, 0, &err) == NULL && strstr(err.msg, "outside"),
	   "a part outside the snapshot is refused: %s", err.msg);
	lc_journal_close(j);
	r = lc_journal_open(dir, 0, 1000, &j, &err);
	ok(r == 0 && json_equal(lc_journal_state(j), state),
	   "a full reader still gets the whole state");
	lc_journal_close(j);
	test_parts_corrupt(dir);
}

/* Another process's turn at the journal, between this one's opens. */
static int parked_child(const char *dir, int step)
{
	_cleanup_json_ json_t *expect = json_array();
	_cleanup_json_ json_t *state = json_pack("{s:i}", "s", 1);
	_cleanup_free_ char *log = path_in(dir, "log");
	util_err err = { 0 };
	lc_journal *j = NULL;
	json_t *rec;
	int r = 0;

	if (step == 3 && truncate(log, 0) < 0) /* record 6 gone, as a torn cut */
		return 1;
	if (lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err) < 0)
		return 1;
	if (step == 1)
		r = append_n(j, expect, 4, 5);
	if (step == 2 && (r = lc_journal_compact(j, state, NULL, &err)) == 0)
		r = append_n(j, expect, 6, 6);
	if (step == 3) {
		/* another record 6, as long as the one it replaces */
		rec = mkrec(6);
		json_object_set_new(
		        rec, "text",
		        json_string(
		                "b line\nwith \"quotes\", tabs\t, \xc3\xbcnicode and \\ backslashes"));
		r = lc_journal_append(j, rec, NULL, &err);
		json_decref(rec);
	}
	lc_journal_close(j);
	return r < 0;
}

static bool run_child(const char *dir, int step)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(parked_child(dir, step));
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

/* A closed handle stays with the process (its lock released), and the
 * next open reuses it only while the files are what it read: another
 * process's appends are read, its compaction and a record it replaced
 * (a torn tail cut, then a new record as long) make a fresh open. */
static void test_parked(const char *base)
{
	_cleanup_free_ char *dir = path_in(base, "parked/journal");
	_cleanup_json_ json_t *expect = json_array();
	_cleanup_json_ json_t *state = json_pack("{s:i}", "s", 1);
	util_err err = { 0 };
	lc_journal *j = NULL;
	collected c = { .recs = json_array(), .in_order = true };
	int r;

	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	ok_e(r == 0 && append_n(j, expect, 1, 3) == 0, "records 1-3");
	lc_journal_close(j);
	r = lc_journal_open(dir, 0, 1000, &j, &err);
	ok(r == 0 && journal_has(j, expect, 1, 3), "reopened (kept by the process): records 1-3");
	lc_journal_close(j);

	ok(run_child(dir, 1), "another process appends 4-5");
	for (int i = 4; i <= 5; i++)
		json_array_append_new(expect, mkrec(i));
	r = lc_journal_open(dir, 0, 1000, &j, &err);
	ok(r == 0 && journal_has(j, expect, 1, 5), "reopened: its records are read too");
	lc_journal_close(j);

	ok(run_child(dir, 2), "another process compacts and appends 6");
	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	ok(r == 0 && json_equal(lc_journal_state(j), state) && lc_journal_count(j) == 1 &&
	           lc_journal_last_seq(j) == 6,
	   "reopened for writing: its snapshot and record 6: %s", err.msg);
	lc_journal_close(j);

	ok(run_child(dir, 3), "another process replaces record 6 by one as long");
	r = lc_journal_open(dir, 0, 1000, &j, &err);
	if (r == 0)
		r = lc_journal_foreach(j, collect_cb, &c, &err);
	ok(r == 0 && c.n == 1 &&
	           util_streq(json_string_value(json_object_get(json_array_get(c.recs, 0), "text")),
	                      "b line\nwith \"quotes\", tabs\t, \xc3\xbcnicode and \\ backslashes"),
	   "reopened: the new record 6, not the one it kept: %s", err.msg);
	lc_journal_close(j);
	json_decref(c.recs);
	r = lc_journal_open(dir, LC_JOURNAL_WRITE, 1000, &j, &err);
	{
		_cleanup_json_ json_t *rec7 = mkrec(7);

		ok(r == 0 && lc_journal_append(j, rec7, NULL, &err) == 0 &&
		           lc_journal_last_seq(j) == 7,
		   "and written on after it: %s", err.msg);
	}
	lc_journal_close(j);
}

int main(void)
{
	char base[] = "/tmp/qvm-test-journal.XXXXXX";
	util_err err = { 0 };

	if (!mkdtemp(base)) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return done_testing();
	}
	test_basic(base);
	test_torn(base);
	test_corrupt(base);
	test_crash(base);
	test_enospc(base);
	test_failed_sync(base);
	test_locks(base);
	test_leftovers(base);
	test_summary(base);
	test_parts(base);
	test_parked(base);
	test_size_bounds(base);
	if (util_rm_rf(base, &err) < 0)
		diag("%s", err.msg);
	return done_testing();
}
