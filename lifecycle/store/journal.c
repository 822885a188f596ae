/* The journal: an append-only log of checksummed JSON records plus a
 * snapshot, durable and crash-safe at every step. The format and the rules
 * are in journal.h; db.c builds the VM model on it. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <string.h>
#include <sys/file.h>
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
	bool broken;          /* a write or sync failed: no more appends */
	bool group;           /* appends wait for lc_journal_group_commit() to sync */
	uint64_t group_start; /* the log's size when the group began */
	int lock_fd;
	int log_fd;               /* O_APPEND, writers only */
	json_t *state;            /* the snapshot's (or its summary), or NULL */
	bool want_summary;        /* opened with LC_JOURNAL_SUMMARY */
	bool want_parts;          /* opened with LC_JOURNAL_PARTS */
	int snap_fd;              /* a parts open with an index: the snapshot, to read parts */
	uint64_t body_off;        /* where the index's offsets count from, in the file */
	uint64_t body_len;        /* how far they may reach: to the index */
	char *index;              /* a parts open: the snapshot's index, or NULL */
	lc_journal_key_fn key_fn; /* names the parts of the next snapshot */
	bool is_summary;          /* state holds the snapshot's summary */
	uint64_t snap_seq;        /* the seq the snapshot covers */
	uint64_t last_seq;
	jrec *recs; /* the records after the snapshot */
	size_t n, cap;
	uint64_t log_size; /* bytes of valid records in the log */
	uint64_t keep_off; /* where the records after the snapshot start */
	char *torn;        /* where this open saved a torn log */
	/* What a closed handle keeps for the next open (see park_journal):
	 * the snapshot as read and its identity, the log's last line */
	char *snap_text; /* NULL when there is no snapshot */
	size_t snap_len;
	struct stat snap_st;
	bool snap_known;   /* snap_text (or its absence) was read */
	bool log_rw;       /* log_fd may be written (a writer may reuse it) */
	pid_t pid;         /* the process that opened it: a child forked since opens afresh */
	uint64_t last_off; /* where the log's last record line starts */
	char *last_line;   /* that line, to recognise the log by */
	size_t last_len;
	dev_t dev; /* of dir, to find handles open in this process */
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
/* The index as the writer wrote it: a JSON string of printable ASCII
 * whose only escape is "\\n" (see put_part), which is read here without a
 * JSON parser; p is its opening '"', end just past its closing one. NULL
 * for anything else. */
static char *index_text(const char *p, const char *end)
{
	char *out, *o;

	if (p >= end || *p != '"' || end[-1] != '"')
		return NULL;
	out = o = util_xmalloc((size_t)(end - p));
	for (p++; p < end - 1; p++) {
		if (*p == '\\' && p + 1 < end - 1 && p[1] == 'n') {
			*o++ = '\n';
			p++;
		} else if (*p == '\\' || *p == '"' || (unsigned char)*p < 0x20) {
			free(out);
			return NULL;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* ---- a parts open: the head, the index, and the parts asked for ------------------------ */

/* The snapshot ends in ',"index":"<lines>","index_crc":"xxxxxxxx"}\n', the
 * CRC-32C over "<seq> " and the index's JSON text (quotes included). */
#define INDEX_CRC_TAIL ",\"index_crc\":\"xxxxxxxx\"}\n"
#define INDEX_LEAD     ",\"index\":"

/* The snapshot's head, '{"seq":N,"crc32c":"xxxxxxxx",': its seq (as
 * text) and where the body starts. */
static bool read_head(int fd, char seq_text[24], uint64_t *ret_body_off)
{
	char head[64];
	const char *p = head, *end;
	ssize_t n = pread(fd, head, sizeof(head), 0);
	uint64_t seq;
	size_t ds;

	if (n <= 0)
		return false;
	end = head + n;
	if (!eat(&p, end, "{\"seq\":") || !(ds = parse_u64(p, (size_t)(end - p), &seq)) || ds >= 24)
		return false;
	memcpy(seq_text, p, ds);
	seq_text[ds] = '\0';
	p += ds;
	if (!eat(&p, end, ",\"crc32c\":\"") || end - p < 10)
		return false;
	p += 8;
	if (!eat(&p, end, "\","))
		return false;
	*ret_body_off = (uint64_t)(p - head);
	return true;
}

/* Read the index from the snapshot's tail (more of it while the index's
 * start is not in what was read), checked by its own CRC. 1 when loaded,
 * 0 when the snapshot has no index of that form. */
static int read_index(lc_journal *j, int fd, uint64_t size, const char *seq_text)
{
	const size_t tail_len = sizeof(INDEX_CRC_TAIL) - 1;

	for (uint64_t want = 65536;; want *= 2) {
		uint64_t n = want < size ? want : size;
		_cleanup_free_ char *buf = util_xmalloc((size_t)n + 1);
		const char *crc_at, *at = NULL, *end;
		uint32_t crc;

		if (pread_all(fd, buf, (size_t)n, size - n) < 0 || n < tail_len)
			return 0;
		buf[n] = '\0';
		crc_at = buf + n - tail_len;
		end = crc_at;
		if (memcmp(crc_at, ",\"index_crc\":\"", 14) || !parse_hex8(crc_at + 14, &crc) ||
		    memcmp(crc_at + 22, "\"}\n", 3))
			return 0;
		for (const char *p = buf;
		     (p = memmem(p, (size_t)(end - p), INDEX_LEAD, sizeof(INDEX_LEAD) - 1)); p++)
			at = p;
		if (!at && n < size)
			continue; /* the index starts further back */
		if (!at)
			return 0;
		at += sizeof(INDEX_LEAD) - 1;
		if (frame_crc(seq_text, strlen(seq_text), at, (size_t)(end - at)) != crc)
			return 0;
		j->index = index_text(at, end);
		if (!j->index)
			return 0;
		j->body_len = size - n + (uint64_t)(at - buf) - (sizeof(INDEX_LEAD) - 1);
		return 1;
	}
}

/* A parts open reads the head and the index only: the parts it needs it
 * reads later, each checked by its CRC in the index. Without an index (a
 * snapshot written before them) 0: it is loaded whole instead. */
static int load_snapshot_parts(lc_journal *j, util_err *err)
{
	_cleanup_free_ char *path = util_xasprintf("%s/" SNAPSHOT_NAME, j->dir);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char seq_text[24];
	struct stat st;
	uint64_t seq;

	if (fd < 0)
		return errno == ENOENT ? 1 : util_err_errno(err, -errno, "cannot open '%s'", path);
	if (fstat(fd, &st) < 0 || !read_head(fd, seq_text, &j->body_off) ||
	    read_index(j, fd, (uint64_t)st.st_size, seq_text) <= 0 || j->body_len < j->body_off) {
		free(j->index);
		j->index = NULL;
		return 0;
	}
	j->body_len -= j->body_off;
	parse_u64(seq_text, strlen(seq_text), &seq);
	j->snap_seq = j->last_seq = seq;
	j->snap_fd = TAKE_FD(fd);
	return 1;
}

/* Parse the state (or, for a summary open, the summary) out of the
 * snapshot text this handle holds, already checked. */
static int parse_snapshot(lc_journal *j, util_err *err)
{
	_cleanup_free_ char *path = util_xasprintf("%s/" SNAPSHOT_NAME, j->dir);
	const char *p = j->snap_text, *end = j->snap_text + j->snap_len - 2;
	const char *why = "it is not a journal snapshot";
	json_error_t jerr;

	json_decref(j->state);
	j->state = NULL;
	j->is_summary = false;
	/* the head was checked when the text was read */
	p = memchr(p, ',', (size_t)(end - p));
	p = p ? memchr(p + 1, ',', (size_t)(end - p - 1)) : NULL;
	if (!p)
		goto bad;
	p++;
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
			return 0;
		}
		json_decref(summary);
		if (!eat(&p, end, ","))
			goto bad;
	}
	if (!eat(&p, end, "\"state\":") || p == end)
		goto bad;
	/* the index (when there is one) follows the state */
	j->state =
	        json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &jerr);
	if (!j->state) {
		why = "its state is not JSON";
		goto bad;
	}
	return 0;
bad:
	return util_err_set(err, -EBADMSG, "journal snapshot '%s' is corrupt: %s" REPAIR_HINT, path,
	                    why);
}

/* Read the snapshot file (none is an empty state), check its head and
 * checksum, and keep its text and identity: a later open by this process
 * that finds the file unchanged parses the text again without reading it. */
static int load_snapshot(lc_journal *j, util_err *err)
{
	_cleanup_free_ char *path = util_xasprintf("%s/" SNAPSHOT_NAME, j->dir);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	const char *p, *end, *seq_text, *body;
	size_t len, ds;
	uint64_t seq;
	uint32_t crc;
	const char *why;
	int r;

	free(j->snap_text);
	j->snap_text = NULL;
	memset(&j->snap_st, 0, sizeof(j->snap_st));
	j->snap_known = false;
	if (fd < 0) {
		if (errno != ENOENT)
			return util_err_errno(err, -errno, "cannot open '%s'", path);
		j->snap_known = true; /* none */
		return 0;
	}
	if (fstat(fd, &j->snap_st) < 0)
		return util_err_errno(err, -errno, "cannot open '%s'", path);
	r = util_read_fd(fd, path, lc_journal_max_bytes(), &buf, &len, err);
	if (r < 0)
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
	j->snap_text = TAKE_PTR(buf);
	j->snap_len = len;
	j->snap_known = true;
	j->snap_seq = seq;
	j->last_seq = seq;
	return parse_snapshot(j, err);
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
	bool seen;     /* a record was seen */
	bool kept;     /* a record after the snapshot was seen */
	uint64_t base; /* the log offset the buffer starts at */
	size_t last;   /* the buffer offset of the last record line */
} load_ctx;

static int load_rec(void *ud, uint64_t seq, json_t *rec, size_t off, util_err *err)
{
	load_ctx *c = ud;
	lc_journal *j = c->j;

	c->last = off;
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
		j->keep_off = c->base + off;
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

/* Remember the last record line of buf (valid bytes, from log offset
 * base; ctx->last where it starts), by which a reopen recognises the log. */
static void keep_last_line(lc_journal *j, const load_ctx *ctx, const char *buf, size_t valid)
{
	if (!ctx->seen)
		return;
	free(j->last_line);
	j->last_len = valid - ctx->last;
	j->last_line = util_xmalloc(j->last_len + 1);
	memcpy(j->last_line, buf + ctx->last, j->last_len);
	j->last_off = ctx->base + ctx->last;
}

static int load_log(lc_journal *j, util_err *err)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	load_ctx ctx = { .j = j };
	size_t len, valid;
	int r;

	/* read-write for readers too (not created): a later writer of this
	 * process reuses the descriptor */
	fd = open(j->log_path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	j->log_rw = fd >= 0;
	if (fd < 0 && errno == ENOENT && j->write) {
		fd = open(j->log_path,
		          O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		j->log_rw = fd >= 0;
		if (fd >= 0 && (r = util_fsync_dir(j->dir, err)) < 0)
			return r;
	} else if (fd < 0 && !j->write) {
		if (errno == ENOENT)
			return 0;
		fd = open(j->log_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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
	keep_last_line(j, &ctx, buf, valid);
	if (j->write && valid < len) {
		r = cut_torn(j, fd, buf, len, valid, err);
		if (r < 0)
			return r;
	}
	if (j->write && j->n == 0 && valid > 0) {
		/* Only records the snapshot holds: finish that compaction. */
		if (ftruncate(fd, 0) < 0 || fsync(fd) < 0)
			return util_err_errno(err, -errno, "cannot empty journal '%s'",
			                      j->log_path);
		j->log_size = j->keep_off = 0;
		free(j->last_line);
		j->last_line = NULL;
		j->last_len = 0;
	}
	/* a reader ignores a torn tail and changes nothing */
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
	if (j->snap_fd >= 0)
		close(j->snap_fd);
	free(j->index);
	free(j->snap_text);
	free(j->last_line);
	free(j->torn);
	free(j->log_path);
	free(j->dir);
	free(j);
}

static inline void journal_freep(lc_journal **j)
{
	journal_free(*j);
}

/* ---- what a process keeps between opens ---------------------------------------------- */

/* A closed handle is parked rather than freed: its files stay open (its
 * lock released) and what it loaded stays in memory, so that the next
 * open of the same journal by this process, one command's many, reads
 * only what changed since: usually nothing, or the log's new records. It
 * is recognised under the new open's lock: the same snapshot file (inode,
 * size, time) and a log that still holds its last record line where it
 * was. Anything else (a compaction, a torn tail cut) is a fresh open. */
static lc_journal *parked_journals;

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The parked handle of this journal, or NULL. A forked child shares its
 * descriptors' locks with its parent (flock locks belong to the open file
 * description): it drops the parent's handles and opens its own. */
static lc_journal *take_parked(dev_t dev, ino_t ino)
{
	for (lc_journal **p = &parked_journals; *p;) {
		lc_journal *j = *p;

		if (j->pid != getpid()) {
			*p = j->next;
			journal_free(j);
			continue;
		}
		if (j->dev == dev && j->ino == ino) {
			*p = j->next;
			j->next = NULL;
			return j;
		}
		p = &j->next;
	}
	return NULL;
}

void lc_journal_forget(void)
{
	while (parked_journals) {
		lc_journal *j = parked_journals;

		parked_journals = j->next;
		journal_free(j);
	}
}

static bool snapshot_unchanged(const lc_journal *j)
{
	_cleanup_free_ char *path = util_xasprintf("%s/" SNAPSHOT_NAME, j->dir);
	struct stat st;

	if (stat(path, &st) < 0)
		return errno == ENOENT && !j->snap_text;
	return j->snap_text && same_file(&st, &j->snap_st);
}

/* Read the records appended since (the log grew from log_size to size).
 * 0 when caught up; 1 when the handle cannot be brought up to date (a
 * torn tail a writer must cut, a log of another file): open afresh. */
static int read_new_records(lc_journal *j, uint64_t size, util_err *err)
{
	_cleanup_free_ char *buf = NULL;
	load_ctx ctx = { .j = j, .seen = j->log_size > 0 || j->n > 0, .kept = j->n > 0 };
	size_t len = (size_t)(size - j->log_size), valid;
	int r;

	if (size > lc_journal_max_bytes())
		return 1;
	buf = util_xmalloc(len + 1);
	ctx.base = j->log_size;
	if (pread_all(j->log_fd, buf, len, j->log_size) < 0)
		return 1;
	r = scan_records(j->log_path, buf, len, true, NULL, load_rec, &ctx, &valid, err);
	if (r < 0)
		return r;
	if (valid < len && j->write)
		return 1;
	if (valid > 0) {
		keep_last_line(j, &ctx, buf, valid);
		j->log_size += valid;
		if (j->n == 0)
			j->keep_off = j->log_size;
	}
	return 0;
}

/* Is the log the one this handle read, with at most records appended? */
static int log_caught_up(lc_journal *j, util_err *err)
{
	struct stat st, path_st;
	_cleanup_free_ char *line = NULL;

	if (j->log_fd < 0)
		return access(j->log_path, F_OK) == 0 ? 1 : 0;
	if (fstat(j->log_fd, &st) < 0 || stat(j->log_path, &path_st) < 0 ||
	    st.st_ino != path_st.st_ino || (uint64_t)st.st_size < j->log_size)
		return 1;
	if (j->last_len) {
		line = util_xmalloc(j->last_len);
		if (pread_all(j->log_fd, line, j->last_len, j->last_off) < 0 ||
		    memcmp(line, j->last_line, j->last_len))
			return 1;
	} else if (j->log_size > 0) {
		return 1;
	}
	if ((uint64_t)st.st_size > j->log_size)
		return read_new_records(j, (uint64_t)st.st_size, err);
	return 0;
}

/* Bring a parked handle back for an open with flags: lock it, check it is
 * current, parse what the mode wants. 0 when reused; 1 when it must be
 * opened afresh (the handle is then released); < 0 an error. */
static int reuse_parked(lc_journal *j, unsigned flags, int timeout_ms, util_err *err)
{
	_cleanup_free_ char *lock = util_xasprintf("%s/lock", j->dir);
	bool write = flags & LC_JOURNAL_WRITE;
	bool summary = !write && (flags & LC_JOURNAL_SUMMARY);
	int r;

	if (write && !j->log_rw && j->log_fd >= 0)
		return 1;
	r = util_lock_fd(j->lock_fd, lock, write, timeout_ms, err);
	if (r < 0)
		return util_err_prefix(err, "cannot open journal '%s'", j->dir);
	j->write = write;
	if (!snapshot_unchanged(j) || (r = log_caught_up(j, err)) != 0)
		goto fresh;
	/* a writer finishes what a crash left: do that in a fresh open */
	if (write && ((j->n == 0 && j->log_size > 0) || j->log_fd < 0)) {
		r = 1;
		goto fresh;
	}
	if (write && (r = remove_tmp_files(j->dir, SNAPSHOT_NAME ".tmp.", err)) == 0) {
		_cleanup_free_ char *hist = util_xasprintf("%s/history", j->dir);

		r = remove_tmp_files(hist, NULL, err);
	}
	if (r == 0 && (summary != j->want_summary || !j->state) && j->snap_text) {
		j->want_summary = summary;
		r = parse_snapshot(j, err);
	}
	j->want_summary = summary;
	if (r < 0)
		goto fresh;
	return 0;
fresh:
	flock(j->lock_fd, LOCK_UN);
	j->write = false;
	return r < 0 ? r : 1;
}

static void park_journal(lc_journal *j)
{
	lc_journal *old;

	if (j->broken || j->want_parts || !j->snap_known || j->lock_fd < 0) {
		journal_free(j);
		return;
	}
	flock(j->lock_fd, LOCK_UN);
	j->write = false;
	free(j->torn);
	j->torn = NULL;
	old = take_parked(j->dev, j->ino);
	journal_free(old);
	j->next = parked_journals;
	parked_journals = j;
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
	if (!(flags & LC_JOURNAL_PARTS) && (j = take_parked(st.st_dev, st.st_ino))) {
		r = reuse_parked(j, flags, timeout_ms, err);
		if (r < 0)
			return r;
		if (r == 0)
			goto opened;
		journal_free(TAKE_PTR(j));
	}

	j = util_xcalloc(1, sizeof(*j));
	j->dir = util_xstrdup(dir);
	j->log_path = util_xasprintf("%s/log", dir);
	j->write = write;
	j->want_summary = !write && (flags & LC_JOURNAL_SUMMARY);
	j->want_parts = !write && (flags & LC_JOURNAL_PARTS);
	j->lock_fd = j->log_fd = j->snap_fd = -1;
	j->pid = getpid();
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
	r = j->want_parts ? load_snapshot_parts(j, err) : 0;
	if (r == 0)
		r = load_snapshot(j, err);
	if (r < 0)
		return r;
	r = load_log(j, err);
	if (r < 0)
		return r;
opened:
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
	j->next = NULL;
	lc_journal_group_abort(j);
	park_journal(j);
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

/* Make the log durable up to its end. On failure the kernel may have
 * dropped the dirty pages: a retry could "succeed" without the data.
 * Refuse further appends; take the log back to `back` (the records not
 * yet durable) as far as we still can. */
static int sync_log(lc_journal *j, uint64_t back, util_err *err)
{
	/* tests make the sync fail (EIO) at this point */
	int r = util_fail_point("journal-append-fdatasync", NULL);

	if (r == 0 && fdatasync(j->log_fd) < 0)
		r = -errno;
	if (r == 0)
		return 0;
	j->broken = true;
	if (ftruncate(j->log_fd, (off_t)back) == 0)
		(void)fdatasync(j->log_fd);
	return util_err_errno(err, r, "cannot append to journal '%s': cannot sync it", j->log_path);
}

void lc_journal_group_begin(lc_journal *j)
{
	j->group = true;
	j->group_start = j->log_size;
}

int lc_journal_group_commit(lc_journal *j, util_err *err)
{
	if (!j->group)
		return 0;
	j->group = false;
	if (j->log_size == j->group_start)
		return 0;
	return sync_log(j, j->group_start, err);
}

/* The records of the group are taken back from the file; those kept in
 * memory can't be, so the handle takes no more appends (and is not
 * parked for reuse). */
void lc_journal_group_abort(lc_journal *j)
{
	if (!j->group)
		return;
	j->group = false;
	if (j->log_size == j->group_start)
		return;
	j->broken = true;
	if (ftruncate(j->log_fd, (off_t)j->group_start) == 0)
		(void)fdatasync(j->log_fd);
	j->log_size = j->group_start;
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
	r = j->group ? 0 : sync_log(j, j->log_size, err);
	if (r < 0)
		return r;
	free(j->last_line);
	j->last_line = TAKE_PTR(line);
	j->last_len = (size_t)line_len;
	j->last_off = j->log_size;
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

/* ---- the snapshot's state, in parts ---------------------------------------------------- */

void lc_journal_set_key_fn(lc_journal *j, lc_journal_key_fn fn)
{
	j->key_fn = fn;
}

/* What an index key may hold: printable ASCII but '"' and '\\', so that
 * the index's JSON text needs no escape but the newlines'. */
static bool key_is_plain(const char *key)
{
	for (const char *p = key; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || *p == '"' || *p == '\\')
			return false;
	return true;
}

/* Write value at the stream's end, and its index line (key may be NULL). */
static void put_part(FILE *f, FILE *index, long base, const char *member, long i, json_t *value,
                     const char *key)
{
	long off = ftell(f) + base;
	char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);

	if (!text)
		abort(); /* only on allocation failure: values come from the model */
	fputs(text, f);
	if (index)
		fprintf(index, "%s %ld %ld %zu %08" PRIx32 " %s\n", member, i, off, strlen(text),
		        crc32c(0, text, strlen(text)), key && key_is_plain(key) ? key : "");
	free(text);
}

/* A member name the index can carry: no space or newline in it. */
static bool indexable(const char *member)
{
	return *member && !strpbrk(member, " \n");
}

/* The state's text, as json_dumps() would write it, with an index of its
 * parts when it is an object: a line per member, and for a member that is
 * an array a line per element instead (i counts them, -1 for a whole
 * member), named by key_fn. Offsets count base bytes before the state. */
static char *encode_state(json_t *state, lc_journal_key_fn key_fn, long base, char **ret_index)
{
	char *text = NULL, *index = NULL;
	size_t tlen = 0, ilen = 0;
	FILE *f = open_memstream(&text, &tlen), *x = open_memstream(&index, &ilen);
	const char *member;
	json_t *value;
	bool first = true;

	if (!f || !x)
		abort();
	if (!json_is_object(state)) {
		put_part(f, NULL, base, "-", -1, state, NULL);
	} else {
		fputc('{', f);
		json_object_foreach (state, member, value) {
			_cleanup_json_ json_t *name = json_string(member);
			_cleanup_free_ char *quoted = json_dumps(name, JSON_ENCODE_ANY);
			FILE *xi = indexable(member) ? x : NULL;
			json_t *e;
			size_t i;

			fprintf(f, "%s%s:", first ? "" : ",", quoted);
			first = false;
			if (!json_is_array(value)) {
				put_part(f, xi, base, member, -1, value, NULL);
				continue;
			}
			fputc('[', f);
			json_array_foreach (value, i, e) {
				_cleanup_free_ char *key = key_fn && xi ? key_fn(member, e) : NULL;

				if (i)
					fputc(',', f);
				put_part(f, xi, base, member, (long)i, e, key);
			}
			fputc(']', f);
		}
		fputc('}', f);
	}
	fclose(f);
	fclose(x);
	*ret_index = index;
	return text;
}

/* What follows the seq and checksum: the summary (if any) first, so that
 * a summary load parses only it; the state; its index last, where a parts
 * load finds it from the end and a full load stops at the state's end. */
static char *snapshot_body(lc_journal *j, json_t *state, const char *sum, const char *seq_text)
{
	_cleanup_free_ char *head =
	        sum ? util_xasprintf("\"summary\":%s,\"state\":", sum) : util_xstrdup("\"state\":");
	_cleanup_free_ char *index = NULL, *quoted = NULL, *text = NULL;
	_cleanup_json_ json_t *index_json = NULL;

	text = encode_state(state, j->key_fn, (long)strlen(head), &index);
	index_json = json_string(index);
	quoted = json_dumps(index_json, JSON_ENCODE_ANY);
	if (!quoted)
		abort(); /* only on allocation failure */
	return util_xasprintf("%s%s" INDEX_LEAD "%s,\"index_crc\":\"%08" PRIx32 "\"", head, text,
	                      quoted,
	                      frame_crc(seq_text, strlen(seq_text), quoted, strlen(quoted)));
}

const char *lc_journal_index(const lc_journal *j)
{
	return j->index;
}

json_t *lc_journal_part(const lc_journal *j, uint64_t off, uint64_t len, uint32_t crc,
                        util_err *err)
{
	_cleanup_free_ char *buf = NULL;
	json_error_t jerr;
	json_t *v;

	if (j->snap_fd < 0 || off > j->body_len || len > j->body_len - off) {
		util_err_set(
		        err, -EBADMSG,
		        "journal snapshot in '%s' is corrupt: its index points outside it" REPAIR_HINT,
		        j->dir);
		return NULL;
	}
	buf = util_xmalloc((size_t)len + 1);
	if (pread_all(j->snap_fd, buf, (size_t)len, j->body_off + off) < 0 ||
	    crc32c(0, buf, (size_t)len) != crc) {
		util_err_set(err, -EBADMSG,
		             "journal snapshot in '%s' is corrupt: a part of its state at %" PRIu64
		             " fails its checksum" REPAIR_HINT,
		             j->dir, off);
		return NULL;
	}
	v = json_loadb(buf, (size_t)len, JSON_DECODE_ANY, &jerr);
	if (!v)
		util_err_set(
		        err, -EBADMSG,
		        "journal snapshot in '%s' is corrupt: a part of its state is not JSON (%s)" REPAIR_HINT,
		        j->dir, jerr.text);
	return v;
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
	if (summary && !sum)
		return util_err_set(err, -EINVAL,
		                    "cannot compact journal '%s': the state cannot be encoded",
		                    j->dir);
	seq_len = snprintf(seq_text, sizeof(seq_text), "%" PRIu64, j->last_seq);
	body = snapshot_body(j, state, sum, seq_text);
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
	j->want_summary = false;
	j->snap_seq = j->last_seq;
	free_recs(j);
	j->keep_off = j->log_size;
	/* what a later open of this process recognises the snapshot by */
	free(j->snap_text);
	j->snap_len = strlen(text);
	j->snap_text = TAKE_PTR(text);
	j->snap_known = stat(path, &j->snap_st) == 0;

	/* 3. Empty the log. Failing leaves only records the snapshot holds,
	 *    which the next writer drops; this handle stops writing. */
	if (ftruncate(j->log_fd, 0) < 0 || fsync(j->log_fd) < 0) {
		j->broken = true;
		return util_err_errno(err, -errno, "cannot compact journal '%s': cannot empty '%s'",
		                      j->dir, j->log_path);
	}
	j->log_size = j->keep_off = 0;
	free(j->last_line);
	j->last_line = NULL;
	j->last_len = 0;
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

/* Does archive a hold one of the n seqs (all of them when seqs is NULL)? */
static bool archive_wanted(const archive *a, const uint64_t *seqs, size_t n)
{
	if (!seqs)
		return true;
	for (size_t i = 0; i < n; i++)
		if (seqs[i] >= a->first && seqs[i] <= a->last)
			return true;
	return false;
}

static int walk_history(lc_journal *j, const char *needle, const uint64_t *seqs, size_t n_seqs,
                        lc_journal_cb cb, void *ud, util_err *err)
{
	_cleanup_free_ char *hist = util_xasprintf("%s/history", j->dir);
	_cleanup_(archive_list_clear) archive_list l = { 0 };
	hist_ctx h = { .cb = cb, .ud = ud };
	int r = list_archives(hist, &l, err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < l.n; i++) {
		if (!archive_wanted(&l.v[i], seqs, n_seqs)) {
			/* none of what was asked for: not read */
			if (l.v[i].last > h.emitted && l.v[i].first <= h.emitted + 1)
				h.emitted = l.v[i].last;
			continue;
		}
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
	return lc_journal_foreach_history_of(dir, needle, NULL, 0, cb, ud, err);
}

int lc_journal_foreach_history_of(const char *dir, const char *needle, const uint64_t *seqs,
                                  size_t n_seqs, lc_journal_cb cb, void *ud, util_err *err)
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
	return walk_history(j, needle, seqs, n_seqs, cb, ud, err);
}
