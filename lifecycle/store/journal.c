/* The journal: an append-only log of checksummed JSON records plus a
 * snapshot, durable and crash-safe at every step. The format and the rules
 * are in journal.h; db.c builds the VM model on it. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "journal.h"

/* The largest log, snapshot or archive we read into memory. */
#define FILE_MAX ((size_t)256 << 20)
/* The least a test may lower it to (QVM_JOURNAL_MAX_BYTES). */
#define FILE_MAX_FLOOR ((size_t)64 << 10)
/* The largest record we write: a line must stay far below FILE_MAX. */
#define RECORD_MAX              ((size_t)16 << 20)
#define HISTORY_LOCK_TIMEOUT_MS 10000
#define SNAPSHOT_NAME           "snapshot.json"
#define REPAIR_HINT             "; copy the journal folder aside and repair or restore it by hand"

size_t lc_journal_max_bytes(void)
{
	const char *v = getenv("QVM_JOURNAL_MAX_BYTES");
	unsigned long long n;
	char *end;

	if (!v || !*v)
		return FILE_MAX;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || n < FILE_MAX_FLOOR || n > FILE_MAX)
		return FILE_MAX;
	return (size_t)n;
}

typedef struct jrec {
	uint64_t seq;
	json_t *rec;
} jrec;

struct lc_journal {
	char *dir;
	char *log_path;
	bool write;
	bool broken; /* a write or sync failed: no more appends */
	int lock_fd;
	int log_fd;        /* O_APPEND, writers only */
	json_t *state;     /* the snapshot's (or its summary), or NULL */
	bool want_summary; /* opened with LC_JOURNAL_SUMMARY */
	bool is_summary;   /* state holds the snapshot's summary */
	uint64_t snap_seq; /* the seq the snapshot covers */
	uint64_t last_seq;
	jrec *recs; /* the records after the snapshot */
	size_t n, cap;
	uint64_t log_size; /* bytes of valid records in the log */
	uint64_t keep_off; /* where the records after the snapshot start */
	char *torn;        /* where this open saved a torn log */
	dev_t dev;         /* of dir, to find handles open in this process */
	ino_t ino;
	lc_journal *next;
};

/* Every handle open in this process: flock() conflicts between two opens of
 * the lock file even within one process, so a second open must not wait
 * for a lock its own process holds. */
static lc_journal *open_journals;

/* ---- CRC-32C (Castagnoli), as iSCSI, ext4 and btrfs use it ------------------ */

static uint32_t crc_table[256];

static uint32_t crc32c_table(uint32_t crc, const unsigned char *p, size_t len)
{
	if (!crc_table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int k = 0; k < 8; k++)
				c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
			crc_table[i] = c;
		}
	}
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
/* SSE4.2 computes CRC-32C eight bytes an instruction: loading a snapshot of
 * a thousand VMs checks ~700 KB, which the table costs ~5 M instructions. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const unsigned char *p,
                                                               size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	for (; len; p++, len--)
		crc = __builtin_ia32_crc32qi(crc, *p);
	return crc;
}
#endif

static uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	crc = ~crc;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc32c_sse42(crc, data, len);
#endif
	return ~crc32c_table(crc, data, len);
}

/* The checksum of a record or snapshot: over "<seq> <json>". */
static uint32_t frame_crc(const char *seq, size_t seq_len, const char *json, size_t json_len)
{
	uint32_t c = crc32c(0, seq, seq_len);

	c = crc32c(c, " ", 1);
	return crc32c(c, json, json_len);
}

/* ---- small helpers ------------------------------------------------------------- */

static json_t *json_xcopy(json_t *v)
{
	json_t *copy = json_deep_copy(v);

	if (!copy)
		abort(); /* out of memory, as util_xmalloc */
	return copy;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shorter than we know it is */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Read the file at path; a missing one gives *ret = NULL. */
static int read_optional(const char *path, char **ret, size_t *ret_len, util_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		if (errno != ENOENT)
			return util_err_errno(err, -errno, "cannot open '%s'", path);
		*ret = NULL;
		*ret_len = 0;
		return 0;
	}
	return util_read_fd(fd, path, lc_journal_max_bytes(), ret, ret_len, err);
}

static int fsync_parent(const char *path, util_err *err)
{
	_cleanup_free_ char *copy = util_xstrdup(path);

	return util_fsync_dir(dirname(copy), err);
}

/* Strict decimal: digits only, no leading zero, no overflow. Returns how
 * many characters it took, 0 when p does not start with a number. */
static size_t parse_u64(const char *p, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && p[i] >= '0' && p[i] <= '9') {
		unsigned d = (unsigned)(p[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
		i++;
	}
	if (i == 0 || (i > 1 && p[0] == '0'))
		return 0;
	*ret = v;
	return i;
}

/* Exactly 8 lowercase hex digits, as we write them. */
static bool parse_hex8(const char *p, uint32_t *ret)
{
	uint32_t v = 0;

	for (int i = 0; i < 8; i++) {
		char c = p[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint32_t)(c - 'a' + 10);
		else
			return false;
	}
	*ret = v;
	return true;
}

/* ---- reading records ------------------------------------------------------------ */

typedef enum line_status {
	LINE_OK,
	LINE_INCOMPLETE, /* no newline: the file ends inside it */
	LINE_BAD_FRAME,
	LINE_BAD_CRC,
	LINE_BAD_JSON, /* the checksum holds: written so, not torn */
} line_status;

static const char *line_status_text(line_status st)
{
	switch (st) {
	case LINE_INCOMPLETE:
		return "is incomplete";
	case LINE_BAD_FRAME:
		return "is not a journal record";
	case LINE_BAD_CRC:
		return "fails its checksum";
	case LINE_BAD_JSON:
		return "is not a JSON object";
	default:
		return "is valid";
	}
}

/* True if the n bytes at p hold needle not followed by a digit, so that
 * "\"id\":5" does not match "\"id\":51". */
static bool holds_needle(const char *p, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	const char *end = p + n, *hit;

	while ((hit = memmem(p, (size_t)(end - p), needle, k))) {
		if (hit + k == end || !isdigit((unsigned char)hit[k]))
			return true;
		p = hit + 1;
	}
	return false;
}

/* One line without its newline: "<seq> <crc> <json>". *ret_seq is set (for
 * messages) whenever the line starts with a number; *ret_rec only on OK,
 * and to NULL for a sound line whose JSON text lacks needle (when given):
 * a reader looking for a few records skips parsing the others. */
static line_status parse_line(const char *p, size_t n, const char *needle, bool *ret_have_seq,
                              uint64_t *ret_seq, json_t **ret_rec)
{
	uint64_t seq;
	size_t ds = parse_u64(p, n, &seq);
	uint32_t crc;
	json_t *rec;

	if (ds == 0 || seq == 0)
		return LINE_BAD_FRAME;
	*ret_have_seq = true;
	*ret_seq = seq;
	if (n < ds + 11 || p[ds] != ' ' || !parse_hex8(p + ds + 1, &crc) || p[ds + 9] != ' ')
		return LINE_BAD_FRAME;
	if (frame_crc(p, ds, p + ds + 10, n - ds - 10) != crc)
		return LINE_BAD_CRC;
	if (needle && !holds_needle(p + ds + 10, n - ds - 10, needle)) {
		*ret_rec = NULL;
		return LINE_OK;
	}
	rec = json_loadb(p + ds + 10, n - ds - 10, 0, NULL);
	if (!json_is_object(rec)) {
		json_decref(rec);
		return LINE_BAD_JSON;
	}
	*ret_rec = rec;
	return LINE_OK;
}

/* Called per record with a new reference it takes (NULL for a record
 * skipped for lacking the needle), and the record's offset. */
typedef int (*scan_fn)(void *ud, uint64_t seq, json_t *rec, size_t off, util_err *err);

static bool valid_line_after(const char *buf, size_t len, size_t off)
{
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		bool have_seq = false;
		uint64_t seq;
		json_t *rec = NULL;

		if (!nl)
			return false;
		if (parse_line(buf + off, (size_t)(nl - buf) - off, NULL, &have_seq, &seq, &rec) ==
		    LINE_OK) {
			json_decref(rec);
			return true;
		}
		off = (size_t)(nl - buf) + 1;
	}
	return false;
}

/* Walk the records of buf (the contents of path): every line well formed,
 * seqs going up by one. With allow_torn, a bad last line — what a crash
 * during an append leaves — ends the walk instead of failing it;
 * *ret_valid_len says where the valid records end. */
static int scan_records(const char *path, const char *buf, size_t len, bool allow_torn,
                        const char *needle, scan_fn fn, void *ud, size_t *ret_valid_len,
                        util_err *err)
{
	size_t off = 0;
	uint64_t prev = 0;

	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - buf) : len;
		bool have_seq = false;
		uint64_t seq = 0;
		json_t *rec = NULL;
		line_status st = parse_line(buf + off, end - off, needle, &have_seq, &seq, &rec);
		char what[96], after[48];
		int r;

		if (st == LINE_OK && !nl) {
			json_decref(rec);
			st = LINE_INCOMPLETE;
		}
		if (st != LINE_OK) {
			bool last = end + 1 >= len;
			bool follow;

			if (allow_torn && last && st != LINE_BAD_JSON) {
				*ret_valid_len = off;
				return 0;
			}
			follow = nl && valid_line_after(buf, len, end + 1);
			if (have_seq)
				snprintf(what, sizeof(what), "record %" PRIu64 " at offset %zu",
				         seq, off);
			else
				snprintf(what, sizeof(what), "the line at offset %zu", off);
			if (prev)
				snprintf(after, sizeof(after), " (after record %" PRIu64 ")", prev);
			else
				after[0] = '\0';
			return util_err_set(err, -EBADMSG,
			                    "journal '%s' is corrupt: %s%s %s%s" REPAIR_HINT, path,
			                    what, after, line_status_text(st),
			                    follow ? " and valid records follow it" : "");
		}
		if (prev && seq != prev + 1) {
			json_decref(rec);
			return util_err_set(
			        err, -EBADMSG,
			        "journal '%s' is corrupt: the record at offset %zu is %" PRIu64
			        " where %" PRIu64 " was expected%s" REPAIR_HINT,
			        path, off, seq, prev + 1,
			        seq > prev + 1 ? " (records are missing)" : "");
		}
		r = fn(ud, seq, rec, off, err);
		if (r < 0)
			return r;
		prev = seq;
		off = end + 1;
	}
	*ret_valid_len = len;
	return 0;
}

/* ---- the snapshot ---------------------------------------------------------------- */

static bool eat(const char **p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* {"seq":N,"crc32c":"xxxxxxxx","state":<json>}\n, exactly as written. */
static int load_snapshot(lc_journal *j, util_err *err)
{
	_cleanup_free_ char *path = util_xasprintf("%s/" SNAPSHOT_NAME, j->dir);
	_cleanup_free_ char *buf = NULL;
	const char *p, *end, *seq_text, *body;
	size_t len, ds;
	uint64_t seq;
	uint32_t crc;
	json_error_t jerr;
	const char *why;
	int r = read_optional(path, &buf, &len, err);

	if (r < 0 || !buf)
		return r;
	p = buf;
	end = buf + len;
	why = "it is not a journal snapshot";
	if (len < 2 || memcmp(end - 2, "}\n", 2) != 0) {
		why = "it is incomplete";
		goto bad;
	}
	end -= 2;
	if (!eat(&p, end, "{\"seq\":"))
		goto bad;
	seq_text = p;
	ds = parse_u64(p, (size_t)(end - p), &seq);
	if (ds == 0)
		goto bad;
	p += ds;
	if (!eat(&p, end, ",\"crc32c\":\"") || end - p < 8 || !parse_hex8(p, &crc))
		goto bad;
	p += 8;
	if (!eat(&p, end, "\","))
		goto bad;
	body = p;
	if (frame_crc(seq_text, ds, body, (size_t)(end - body)) != crc) {
		why = "it fails its checksum";
		goto bad;
	}
	if (eat(&p, end, "\"summary\":")) {
		/* The summary comes first so that a summary load parses only it. */
		json_t *summary = json_loadb(p, (size_t)(end - p), JSON_DISABLE_EOF_CHECK, &jerr);

		if (!summary) {
			why = "its summary is not JSON";
			goto bad;
		}
		p += jerr.position;
		if (j->want_summary) {
			j->state = summary;
			j->is_summary = true;
			goto done;
		}
		json_decref(summary);
		if (!eat(&p, end, ","))
			goto bad;
	}
	if (!eat(&p, end, "\"state\":") || p == end)
		goto bad;
	j->state = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY, &jerr);
	if (!j->state) {
		why = "its state is not JSON";
		goto bad;
	}
done:
	j->snap_seq = seq;
	j->last_seq = seq;
	return 0;
bad:
	return util_err_set(err, -EBADMSG, "journal snapshot '%s' is corrupt: %s" REPAIR_HINT, path,
	                    why);
}

/* ---- opening ----------------------------------------------------------------------- */

static void push_rec(lc_journal *j, uint64_t seq, json_t *rec)
{
	if (j->n == j->cap) {
		j->cap = j->cap ? j->cap * 2 : 64;
		j->recs = util_xrealloc(j->recs, j->cap * sizeof(*j->recs));
	}
	j->recs[j->n++] = (jrec){ seq, rec };
	j->last_seq = seq;
}

static void free_recs(lc_journal *j)
{
	for (size_t i = 0; i < j->n; i++)
		json_decref(j->recs[i].rec);
	free(j->recs);
	j->recs = NULL;
	j->n = j->cap = 0;
}

typedef struct load_ctx {
	lc_journal *j;
	bool seen; /* a record was seen */
	bool kept; /* a record after the snapshot was seen */
} load_ctx;

static int load_rec(void *ud, uint64_t seq, json_t *rec, size_t off, util_err *err)
{
	load_ctx *c = ud;
	lc_journal *j = c->j;

	if (!c->seen && seq > j->snap_seq + 1) {
		json_decref(rec);
		return util_err_set(err, -EBADMSG,
		                    "journal '%s' is corrupt: it starts at record %" PRIu64
		                    " but the snapshot ends at record %" PRIu64
		                    " (records are missing)" REPAIR_HINT,
		                    j->log_path, seq, j->snap_seq);
	}
	c->seen = true;
	/* Left over by a compaction a crash interrupted: in the snapshot. */
	if (seq <= j->snap_seq) {
		json_decref(rec);
		return 0;
	}
	if (!c->kept) {
		j->keep_off = off;
		c->kept = true;
	}
	push_rec(j, seq, rec);
	return 0;
}

/* Keep a copy of the whole torn log, then cut it back to its valid records. */
static int cut_torn(lc_journal *j, int fd, const char *buf, size_t len, size_t valid, util_err *err)
{
	long long now = (long long)time(NULL);
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int tfd = -1;
	int r;

	for (int i = 0; tfd < 0; i++) {
		free(path);
		path = i ? util_xasprintf("%s/log.torn.%lld.%d", j->dir, now, i)
		         : util_xasprintf("%s/log.torn.%lld", j->dir, now);
		tfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (tfd < 0 && (errno != EEXIST || i >= 1000))
			return util_err_errno(err, -errno, "cannot save torn journal '%s' to '%s'",
			                      j->log_path, path);
	}
	r = util_write_all(tfd, buf, len);
	if (r == 0 && fsync(tfd) < 0)
		r = -errno;
	if (r == 0 && close(TAKE_FD(tfd)) < 0)
		r = -errno;
	if (r < 0) {
		unlink(path);
		return util_err_errno(err, r, "cannot save torn journal '%s' to '%s'", j->log_path,
		                      path);
	}
	r = util_fsync_dir(j->dir, err);
	if (r < 0)
		return r;
	if (ftruncate(fd, (off_t)valid) < 0 || fsync(fd) < 0)
		return util_err_errno(err, -errno, "cannot cut the torn tail off journal '%s'",
		                      j->log_path);
	j->torn = TAKE_PTR(path);
	return 0;
}

static int load_log(lc_journal *j, util_err *err)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	load_ctx ctx = { .j = j };
	size_t len, valid;
	int r;

	if (j->write) {
		fd = open(j->log_path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT) {
			fd = open(j->log_path,
			          O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			          0600);
			if (fd >= 0 && (r = util_fsync_dir(j->dir, err)) < 0)
				return r;
		}
	} else {
		fd = open(j->log_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT)
			return 0;
	}
	if (fd < 0)
		return util_err_errno(err, -errno, "cannot open journal '%s'", j->log_path);
	r = util_read_fd(fd, j->log_path, lc_journal_max_bytes(), &buf, &len, err);
	if (r < 0)
		return r;
	r = scan_records(j->log_path, buf, len, true, NULL, load_rec, &ctx, &valid, err);
	if (r < 0)
		return r;
	j->log_size = valid;
	j->keep_off = ctx.kept ? j->keep_off : valid;
	if (!j->write)
		return 0; /* a reader ignores a torn tail and changes nothing */
	if (valid < len) {
		r = cut_torn(j, fd, buf, len, valid, err);
		if (r < 0)
			return r;
	}
	if (j->n == 0 && valid > 0) {
		/* Only records the snapshot holds: finish that compaction. */
		if (ftruncate(fd, 0) < 0 || fsync(fd) < 0)
			return util_err_errno(err, -errno, "cannot empty journal '%s'",
			                      j->log_path);
		j->log_size = j->keep_off = 0;
	}
	j->log_fd = TAKE_FD(fd);
	return 0;
}

/* A writer owns the folder: temporary files are a crashed writer's. */
static int remove_tmp_files(const char *dir, const char *prefix, util_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (fd < 0)
		return errno == ENOENT
		               ? 0
		               : util_err_errno(err, -errno, "cannot open folder '%s'", dir);
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return util_err_errno(err, r, "cannot open folder '%s'", dir);
	}
	while ((de = readdir(d))) {
		bool tmp = prefix ? util_startswith(de->d_name, prefix)
		                  : strstr(de->d_name, ".tmp.") != NULL;

		if (tmp && unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
			r = util_err_errno(err, -errno, "cannot remove '%s/%s'", dir, de->d_name);
			break;
		}
	}
	closedir(d);
	return r;
}

static lc_journal *find_open(dev_t dev, ino_t ino)
{
	for (lc_journal *o = open_journals; o; o = o->next)
		if (o->dev == dev && o->ino == ino)
			return o;
	return NULL;
}

static void journal_free(lc_journal *j)
{
	if (!j)
		return;
	if (j->log_fd >= 0)
		close(j->log_fd);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	free_recs(j);
	json_decref(j->state);
	free(j->torn);
	free(j->log_path);
	free(j->dir);
	free(j);
}

static inline void journal_freep(lc_journal **j)
{
	journal_free(*j);
}

int lc_journal_open(const char *dir, unsigned flags, int timeout_ms, lc_journal **ret,
                    util_err *err)
{
	bool write = flags & LC_JOURNAL_WRITE;
	_cleanup_(journal_freep) lc_journal *j = NULL;
	_cleanup_free_ char *lock = NULL, *hist = NULL;
	struct stat st;
	lc_journal *o;
	int r;

	if (stat(dir, &st) < 0) {
		if (errno != ENOENT)
			return util_err_errno(err, -errno, "cannot open journal '%s'", dir);
		if (!write)
			return util_err_set(err, -ENOENT, "journal '%s' does not exist", dir);
		r = util_mkdir_p(dir, 0700, err);
		if (r == 0)
			r = fsync_parent(dir, err);
		if (r < 0)
			return util_err_prefix(err, "cannot create journal '%s'", dir);
		if (stat(dir, &st) < 0)
			return util_err_errno(err, -errno, "cannot open journal '%s'", dir);
	}
	if (!S_ISDIR(st.st_mode))
		return util_err_set(err, -ENOTDIR, "journal '%s' is not a folder", dir);
	o = find_open(st.st_dev, st.st_ino);
	if (o && (write || o->write))
		return util_err_set(err, -EBUSY, "journal '%s' is already open%s in this process",
		                    dir, o->write ? " for writing" : "");

	j = util_xcalloc(1, sizeof(*j));
	j->dir = util_xstrdup(dir);
	j->log_path = util_xasprintf("%s/log", dir);
	j->write = write;
	j->want_summary = !write && (flags & LC_JOURNAL_SUMMARY);
	j->lock_fd = j->log_fd = -1;
	j->dev = st.st_dev;
	j->ino = st.st_ino;

	lock = util_xasprintf("%s/lock", dir);
	r = util_lock_path(lock, write, timeout_ms, &j->lock_fd, err);
	if (r < 0)
		return util_err_prefix(err, "cannot open journal '%s'", dir);
	if (write) {
		hist = util_xasprintf("%s/history", dir);
		r = remove_tmp_files(dir, SNAPSHOT_NAME ".tmp.", err);
		if (r == 0)
			r = remove_tmp_files(hist, NULL, err);
		if (r < 0)
			return r;
	}
	r = load_snapshot(j, err);
	if (r < 0)
		return r;
	r = load_log(j, err);
	if (r < 0)
		return r;
	j->next = open_journals;
	open_journals = j;
	*ret = TAKE_PTR(j);
	return 0;
}

void lc_journal_close(lc_journal *j)
{
	if (!j)
		return;
	for (lc_journal **p = &open_journals; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	journal_free(j);
}

json_t *lc_journal_state(lc_journal *j)
{
	return j->state;
}

bool lc_journal_state_is_summary(const lc_journal *j)
{
	return j->is_summary;
}

uint64_t lc_journal_snapshot_seq(const lc_journal *j)
{
	return j->snap_seq;
}

uint64_t lc_journal_last_seq(const lc_journal *j)
{
	return j->last_seq;
}

size_t lc_journal_count(const lc_journal *j)
{
	return j->n;
}

uint64_t lc_journal_log_size(const lc_journal *j)
{
	return j->log_size;
}

const char *lc_journal_torn(const lc_journal *j)
{
	return j->torn;
}

int lc_journal_foreach(lc_journal *j, lc_journal_cb cb, void *ud, util_err *err)
{
	/* By index: the callback may append. */
	for (size_t i = 0; i < j->n; i++) {
		int r = cb(j->recs[i].seq, j->recs[i].rec, ud, err);

		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- writing ------------------------------------------------------------------------- */

static int check_writable(lc_journal *j, const char *what, util_err *err)
{
	if (!j->write)
		return util_err_set(err, -EBADF, "cannot %s journal '%s': it is open read-only",
		                    what, j->dir);
	if (j->broken)
		return util_err_set(
		        err, -EIO,
		        "cannot %s journal '%s': an earlier write failed, so its state is "
		        "unknown until it is opened again",
		        what, j->dir);
	return 0;
}

/* -v: one line per record, with the fields that say what it is. */
static void trace_record(uint64_t seq, json_t *rec)
{
	static const char *const keys[] = {
		"id", "op", "state", "lcm", "intent", "result", "reason"
	};
	char fields[512] = "";
	size_t used = 0;

	if (!util_tracing())
		return;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(keys) && used < sizeof(fields); i++) {
		json_t *v = json_object_get(rec, keys[i]);

		if (json_is_string(v) && *json_string_value(v))
			used += (size_t)snprintf(fields + used, sizeof(fields) - used, " %s=%s",
			                         keys[i], json_string_value(v));
		else if (json_is_integer(v))
			used += (size_t)snprintf(fields + used, sizeof(fields) - used,
			                         " %s=%" PRId64, keys[i],
			                         (int64_t)json_integer_value(v));
	}
	util_trace("journal: record %" PRIu64 " type=%s%s", seq,
	           json_string_value(json_object_get(rec, "type")) ?: "?", fields);
}

int lc_journal_append(lc_journal *j, json_t *rec, uint64_t *ret_seq, util_err *err)
{
	_cleanup_free_ char *body = NULL, *line = NULL;
	char seq_text[24];
	uint64_t seq = j->last_seq + 1;
	struct stat st;
	size_t body_len;
	int seq_len, line_len, r;

	r = check_writable(j, "append to", err);
	if (r < 0)
		return r;
	if (!json_is_object(rec))
		return util_err_set(err, -EINVAL,
		                    "cannot append to journal '%s': a record must be a JSON object",
		                    j->dir);
	/* Compact output escapes every control character: one line. */
	body = json_dumps(rec, JSON_COMPACT);
	if (!body)
		return util_err_set(err, -EINVAL,
		                    "cannot append to journal '%s': the record cannot be encoded",
		                    j->dir);
	body_len = strlen(body);
	if (body_len > RECORD_MAX)
		return util_err_set(
		        err, -E2BIG,
		        "cannot append to journal '%s': the record is %zu bytes, more than %zu",
		        j->dir, body_len, RECORD_MAX);
	seq_len = snprintf(seq_text, sizeof(seq_text), "%" PRIu64, seq);
	line = util_xasprintf("%s %08" PRIx32 " %s\n", seq_text,
	                      frame_crc(seq_text, (size_t)seq_len, body, body_len), body);
	line_len = seq_len + 10 + (int)body_len + 1;
	/* A log the reader would refuse makes every command fail for every
	 * VM: never write one. The caller compacts well before this. */
	if (j->log_size + (uint64_t)line_len > lc_journal_max_bytes())
		return util_err_set(err, -E2BIG,
		                    "cannot append to journal '%s': the log would pass %zu bytes, "
		                    "the most qvm reads back; nothing was written",
		                    j->log_path, lc_journal_max_bytes());

	/* Under the exclusive lock nobody else writes: a log of another
	 * length was changed behind our back, and appending would bury it. */
	if (fstat(j->log_fd, &st) < 0 || (uint64_t)st.st_size != j->log_size) {
		j->broken = true;
		return util_err_set(err, -EIO,
		                    "cannot append to journal '%s': it was changed by something "
		                    "other than qvm; open it again",
		                    j->log_path);
	}
	r = util_write_all(j->log_fd, line, (size_t)line_len);
	if (r < 0) {
		/* Leave no partial record behind: the next append would be
		 * glued to it and both lost as one torn line. */
		if (ftruncate(j->log_fd, (off_t)j->log_size) < 0)
			j->broken = true;
		return util_err_errno(err, r, "cannot append to journal '%s'", j->log_path);
	}
	/* tests make the sync fail (EIO) at this point */
	r = util_fail_point("journal-append-fdatasync", NULL);
	if (r == 0 && fdatasync(j->log_fd) < 0)
		r = -errno;
	if (r < 0) {
		/* The kernel may have dropped the dirty pages: a retry could
		 * "succeed" without the data. Refuse further appends; take the
		 * record back as far as we still can. */
		j->broken = true;
		if (ftruncate(j->log_fd, (off_t)j->log_size) == 0)
			(void)fdatasync(j->log_fd);
		return util_err_errno(err, r, "cannot append to journal '%s': cannot sync it",
		                      j->log_path);
	}
	j->log_size += (uint64_t)line_len;
	push_rec(j, seq, json_xcopy(rec));
	trace_record(seq, rec);
	if (ret_seq)
		*ret_seq = seq;
	return 0;
}

/* Copy the records after the snapshot to history/log.<first>-<last>. */
static int archive_records(lc_journal *j, util_err *err)
{
	_cleanup_free_ char *hist = util_xasprintf("%s/history", j->dir);
	_cleanup_free_ char *path = NULL, *buf = NULL;
	size_t len = (size_t)(j->log_size - j->keep_off);
	int r;

	if (mkdir(hist, 0700) == 0) {
		r = util_fsync_dir(j->dir, err);
		if (r < 0)
			return r;
	} else if (errno != EEXIST) {
		return util_err_errno(err, -errno, "cannot create folder '%s'", hist);
	}
	buf = util_xmalloc(len ? len : 1);
	r = pread_all(j->log_fd, buf, len, j->keep_off);
	if (r < 0)
		return util_err_errno(err, r, "cannot read journal '%s'", j->log_path);
	path = util_xasprintf("%s/log.%" PRIu64 "-%" PRIu64, hist, j->recs[0].seq, j->last_seq);
	return util_write_file_atomic(path, buf, len, err);
}

int lc_journal_compact(lc_journal *j, json_t *state, json_t *summary, util_err *err)
{
	_cleanup_free_ char *path = NULL, *body = NULL, *text = NULL, *sum = NULL;
	char seq_text[24];
	int seq_len, r;

	r = check_writable(j, "compact", err);
	if (r < 0)
		return r;
	if (!state)
		return util_err_set(err, -EINVAL, "cannot compact journal '%s': no state", j->dir);
	if (summary && !json_is_object(summary) && !json_is_array(summary))
		return util_err_set(
		        err, -EINVAL,
		        "cannot compact journal '%s': the summary must be an object or array",
		        j->dir);
	if (summary)
		sum = json_dumps(summary, JSON_COMPACT);
	text = json_dumps(state, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text || (summary && !sum))
		return util_err_set(err, -EINVAL,
		                    "cannot compact journal '%s': the state cannot be encoded",
		                    j->dir);
	body = sum ? util_xasprintf("\"summary\":%s,\"state\":%s", sum, text)
	           : util_xasprintf("\"state\":%s", text);
	free(text);
	text = NULL;
	/* The snapshot is read back with the same limit as the log. */
	if (strlen(body) + 64 > lc_journal_max_bytes())
		return util_err_set(
		        err, -E2BIG,
		        "cannot compact journal '%s': the state is %zu bytes, more than "
		        "the %zu qvm reads back",
		        j->dir, strlen(body), lc_journal_max_bytes());

	/* 1. History first: whatever the snapshot folds in is archived. A
	 *    crash after this leaves an archive that the next one overlaps. */
	if (j->n > 0) {
		r = archive_records(j, err);
		if (r < 0)
			return util_err_prefix(err, "cannot compact journal '%s'", j->dir);
	}
	util_crash_point("journal-compact-archived");

	/* 2. The snapshot, atomically. From here on, records <= its seq still
	 *    in the log are skipped when loading. */
	seq_len = snprintf(seq_text, sizeof(seq_text), "%" PRIu64, j->last_seq);
	text = util_xasprintf("{\"seq\":%s,\"crc32c\":\"%08" PRIx32 "\",%s}\n", seq_text,
	                      frame_crc(seq_text, (size_t)seq_len, body, strlen(body)), body);
	path = util_xasprintf("%s/" SNAPSHOT_NAME, j->dir);
	r = util_write_file_atomic_fp(path, text, strlen(text), "journal-compact-snapshot-fsync",
	                              err);
	if (r < 0)
		return util_err_prefix(err, "cannot compact journal '%s'", j->dir);
	util_crash_point("journal-compact-snapshot");
	util_trace("journal: compacted up to record %" PRIu64, j->last_seq);

	json_decref(j->state);
	j->state = json_xcopy(state);
	j->snap_seq = j->last_seq;
	free_recs(j);
	j->keep_off = j->log_size;

	/* 3. Empty the log. Failing leaves only records the snapshot holds,
	 *    which the next writer drops; this handle stops writing. */
	if (ftruncate(j->log_fd, 0) < 0 || fsync(j->log_fd) < 0) {
		j->broken = true;
		return util_err_errno(err, -errno, "cannot compact journal '%s': cannot empty '%s'",
		                      j->dir, j->log_path);
	}
	j->log_size = j->keep_off = 0;
	return 0;
}

/* ---- history ----------------------------------------------------------------------------- */

typedef struct archive {
	uint64_t first, last;
	char *name;
} archive;

static int archive_cmp(const void *a, const void *b)
{
	const archive *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	if (x->last != y->last)
		return x->last < y->last ? -1 : 1;
	return 0;
}

typedef struct archive_list {
	archive *v;
	size_t n;
} archive_list;

static void archive_list_clear(archive_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
}

/* history/log.<first>-<last>, sorted; temporary files are skipped. */
static int list_archives(const char *hist, archive_list *ret, util_err *err)
{
	int fd = open(hist, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	archive_list l = { 0 };
	size_t cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (fd < 0) {
		if (errno != ENOENT)
			return util_err_errno(err, -errno, "cannot open folder '%s'", hist);
		*ret = l;
		return 0;
	}
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return util_err_errno(err, r, "cannot open folder '%s'", hist);
	}
	while ((de = readdir(d))) {
		const char *s = de->d_name, *end = s + strlen(s);
		uint64_t first, last;
		size_t k;

		if (!util_startswith(s, "log.") || strstr(s, ".tmp."))
			continue;
		s += 4;
		k = parse_u64(s, (size_t)(end - s), &first);
		if (k && s[k] == '-') {
			s += k + 1;
			k = parse_u64(s, (size_t)(end - s), &last);
		} else {
			k = 0;
		}
		if (!k || s + k != end || first == 0 || last < first) {
			r = util_err_set(err, -EBADMSG,
			                 "journal history '%s' holds '%s', which is not an "
			                 "archive of records" REPAIR_HINT,
			                 hist, de->d_name);
			break;
		}
		if (l.n == cap) {
			cap = cap ? cap * 2 : 16;
			l.v = util_xrealloc(l.v, cap * sizeof(*l.v));
		}
		l.v[l.n++] = (archive){ first, last, util_xstrdup(de->d_name) };
	}
	closedir(d);
	if (r < 0) {
		archive_list_clear(&l);
		return r;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), archive_cmp);
	*ret = l;
	return 0;
}

typedef struct hist_ctx {
	lc_journal_cb cb;
	void *ud;
	uint64_t emitted; /* the last seq handed to cb */
	const char *path; /* the archive being read */
	uint64_t first;   /* the seqs its name promises */
	uint64_t seen;    /* the last seq read from it */
} hist_ctx;

static int hist_rec(void *ud, uint64_t seq, json_t *rec, size_t off, util_err *err)
{
	_cleanup_json_ json_t *owned = rec;
	hist_ctx *h = ud;
	int r = 0;

	(void)off;
	if (h->seen == 0 && seq != h->first)
		return util_err_set(err, -EBADMSG,
		                    "journal archive '%s' is corrupt: it starts at record "
		                    "%" PRIu64 ", not %" PRIu64 REPAIR_HINT,
		                    h->path, seq, h->first);
	h->seen = seq;
	if (seq <= h->emitted) /* an overlap left by an interrupted compaction */
		return 0;
	if (rec)
		r = h->cb(seq, rec, h->ud, err);
	h->emitted = seq;
	return r;
}

static int missing_error(const char *dir, uint64_t from, uint64_t to, util_err *err)
{
	return util_err_set(err, -EBADMSG,
	                    "journal '%s' is missing records %" PRIu64 "-%" PRIu64
	                    ": no archive in '%s/history' holds them" REPAIR_HINT,
	                    dir, from, to, dir);
}

static int walk_history(lc_journal *j, const char *needle, lc_journal_cb cb, void *ud,
                        util_err *err)
{
	_cleanup_free_ char *hist = util_xasprintf("%s/history", j->dir);
	_cleanup_(archive_list_clear) archive_list l = { 0 };
	hist_ctx h = { .cb = cb, .ud = ud };
	int r = list_archives(hist, &l, err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < l.n; i++) {
		_cleanup_free_ char *path = util_xasprintf("%s/%s", hist, l.v[i].name);
		_cleanup_free_ char *buf = NULL;
		size_t len, valid;

		if (l.v[i].first > h.emitted + 1)
			return missing_error(j->dir, h.emitted + 1, l.v[i].first - 1, err);
		r = read_optional(path, &buf, &len, err);
		if (r < 0)
			return r;
		h.path = path;
		h.first = l.v[i].first;
		h.seen = 0;
		r = scan_records(path, buf ? buf : "", len, false, needle, hist_rec, &h, &valid,
		                 err);
		if (r < 0)
			return r;
		if (h.seen != l.v[i].last)
			return util_err_set(err, -EBADMSG,
			                    "journal archive '%s' is corrupt: it ends at "
			                    "record %" PRIu64 ", not %" PRIu64 REPAIR_HINT,
			                    path, h.seen, l.v[i].last);
	}
	if (j->snap_seq > h.emitted)
		return missing_error(j->dir, h.emitted + 1, j->snap_seq, err);
	for (size_t i = 0; i < j->n; i++) {
		if (j->recs[i].seq <= h.emitted)
			continue;
		r = cb(j->recs[i].seq, j->recs[i].rec, ud, err);
		if (r < 0)
			return r;
		h.emitted = j->recs[i].seq;
	}
	return 0;
}

int lc_journal_foreach_history(const char *dir, const char *needle, lc_journal_cb cb, void *ud,
                               util_err *err)
{
	_cleanup_journal_ lc_journal *owned = NULL;
	lc_journal *j = NULL;
	struct stat st;
	int r;

	/* A handle of ours already holds a lock that keeps the files still. */
	if (stat(dir, &st) == 0)
		j = find_open(st.st_dev, st.st_ino);
	if (!j) {
		/* the snapshot's state is not history: its summary is cheaper to load */
		r = lc_journal_open(dir, LC_JOURNAL_SUMMARY, HISTORY_LOCK_TIMEOUT_MS, &owned, err);
		if (r < 0)
			return r;
		j = owned;
	}
	return walk_history(j, needle, cb, ud, err);
}
