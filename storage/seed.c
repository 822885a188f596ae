/* storage: the cloud-init NoCloud seed, a small ISO 9660 image labelled
 * "cidata", written in-process (no genisoimage or xorriso on the host).
 *
 * Plain ISO 9660 level 1 names are 8.3 upper case, which cannot carry
 * "user-data": like `genisoimage -J -r`, the image has two directory trees
 * over the same file data — the primary one with Rock Ridge (SUSP) NM and
 * PX entries, which Linux reads, and a Joliet one (UCS-2 names), which
 * Windows and Linux with -o norock read.
 *
 * The layout is fixed; everything lives in one root folder:
 *   sectors 0-15  system area (zeros)
 *   16            primary volume descriptor
 *   17            Joliet supplementary volume descriptor
 *   18            volume descriptor set terminator
 *   19, 20        primary path table, little- then big-endian
 *   21, 22        Joliet path table, little- then big-endian
 *   23            primary root folder (Rock Ridge)
 *   24            Joliet root folder
 *   25...         file data, each file from a sector boundary
 * Numbers are written as ECMA-119 asks: "both-endian" fields hold the
 * little-endian then the big-endian copy. */
#include <string.h>
#include <time.h>

#include "storage/internal.h"

#define SECTOR      2048u
#define LBA_PVD     16u
#define LBA_SVD     17u
#define LBA_TERM    18u
#define LBA_PATH_L  19u
#define LBA_PATH_M  20u
#define LBA_JPATH_L 21u
#define LBA_JPATH_M 22u
#define LBA_ROOT    23u
#define LBA_JROOT   24u
#define LBA_DATA    25u

/* a path table holding the root alone: 8 bytes + a 1-byte name + 1 pad */
#define PATH_TABLE_SIZE 10u

/* ---- numbers ------------------------------------------------------------------ */

static void le16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void be16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * (3 - i)));
}

static void both16(uint8_t *p, uint32_t v)
{
	le16(p, v);
	be16(p + 2, v);
}

static void both32(uint8_t *p, uint32_t v)
{
	le32(p, v);
	be32(p + 4, v);
}

/* ---- strings ------------------------------------------------------------------- */

/* An a-/d-character field: the text, then spaces to its width. */
static void put_text(uint8_t *p, size_t width, const char *s)
{
	size_t n = strlen(s);

	memset(p, ' ', width);
	memcpy(p, s, n < width ? n : width);
}

/* The same field in a Joliet descriptor: UCS-2 big-endian, padded with
 * UCS-2 spaces (0x0020). ASCII only, which is all qvm writes. */
static void put_ucs2(uint8_t *p, size_t width, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i + 1 < width; i += 2) {
		p[i] = 0;
		p[i + 1] = i / 2 < n ? (uint8_t)s[i / 2] : ' ';
	}
}

/* ---- dates ---------------------------------------------------------------------- */

/* A directory record's 7-byte date: years since 1900, month, day, hour,
 * minute, second, offset from UTC in 15-minute steps (0: we write UTC). */
static void put_record_date(uint8_t *p, const struct tm *t)
{
	p[0] = (uint8_t)t->tm_year;
	p[1] = (uint8_t)(t->tm_mon + 1);
	p[2] = (uint8_t)t->tm_mday;
	p[3] = (uint8_t)t->tm_hour;
	p[4] = (uint8_t)t->tm_min;
	p[5] = (uint8_t)t->tm_sec;
	p[6] = 0;
}

/* A volume descriptor's 17-byte date: "YYYYMMDDHHMMSScc" in digits, then
 * the UTC offset byte. NULL is the "not specified" value: sixteen '0'
 * digits and a zero offset (used for the expiration date). */
static void put_volume_date(uint8_t *p, const struct tm *t)
{
	char buf[80];

	if (t)
		snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02d00", t->tm_year + 1900,
		         t->tm_mon + 1, t->tm_mday, t->tm_hour, t->tm_min, t->tm_sec);
	else
		memset(buf, '0', 16);
	memcpy(p, buf, 16);
	p[16] = 0;
}

/* ---- directory records ------------------------------------------------------------ */

typedef struct record {
	uint32_t extent, size;
	bool dir;
	const uint8_t *id; /* file identifier bytes */
	size_t id_len;
	const uint8_t *su; /* system use area (Rock Ridge), or NULL */
	size_t su_len;
} record;

/* The length a record takes: 33 fixed bytes, the identifier, a pad byte
 * when the identifier's length is even (so the system use area starts on
 * an even offset, as ECMA-119 9.1.12 asks), the system use area, and a
 * final pad to keep the record length even. */
static size_t record_len(const record *r)
{
	size_t n = 33 + r->id_len + (r->id_len % 2 == 0) + r->su_len;

	return n + (n % 2);
}

static size_t put_record(uint8_t *p, const record *r, const struct tm *t)
{
	size_t len = record_len(r);

	memset(p, 0, len);
	p[0] = (uint8_t)len;
	p[1] = 0; /* no extended attribute record */
	both32(p + 2, r->extent);
	both32(p + 10, r->size);
	put_record_date(p + 18, t);
	p[25] = r->dir ? 0x02 : 0x00; /* flags: folder, or a plain, visible file */
	p[26] = 0;                    /* not interleaved: no file unit size... */
	p[27] = 0;                    /* ...and no gap */
	both16(p + 28, 1);            /* volume sequence number: a set of one */
	p[32] = (uint8_t)r->id_len;
	memcpy(p + 33, r->id, r->id_len);
	if (r->su_len)
		memcpy(p + 33 + r->id_len + (r->id_len % 2 == 0), r->su, r->su_len);
	return len;
}

/* ---- Rock Ridge (SUSP entries in the primary tree) ------------------------------------ */

#define RR_ER_ID "RRIP_1991A" /* Rock Ridge 1.10, what genisoimage -r writes */
#define RR_ER_DES                                                                                  \
	"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
#define RR_ER_SRC "IEEE P1282"
#define PX_LEN    36u /* RRIP 1.10's PX: mode, links, uid, gid (no inode number) */

typedef struct su_buf {
	uint8_t b[255];
	size_t len;
} su_buf;

static uint8_t *su_entry(su_buf *s, const char sig[2], size_t len)
{
	uint8_t *p = s->b + s->len;

	p[0] = (uint8_t)sig[0];
	p[1] = (uint8_t)sig[1];
	p[2] = (uint8_t)len;
	p[3] = 1; /* entry version */
	s->len += len;
	return p;
}

/* RR (RRIP 1.09's list of the entries present; readers of 1.09 want it):
 * bit 0 PX, bit 3 NM. */
static void su_rr(su_buf *s, bool nm)
{
	su_entry(s, "RR", 5)[4] = (uint8_t)(0x01 | (nm ? 0x08 : 0));
}

/* PX: POSIX mode, link count, owner and group. The seed is read-only
 * (0444 files, 0555 folder) and owned by root, as genisoimage -r makes it. */
static void su_px(su_buf *s, bool dir)
{
	uint8_t *p = su_entry(s, "PX", PX_LEN);

	both32(p + 4, dir ? 0040555 : 0100444);
	both32(p + 12, dir ? 2 : 1);
	both32(p + 20, 0);
	both32(p + 28, 0);
}

/* NM: the real name ("user-data"), flags 0: the whole name, no continuation. */
static void su_nm(su_buf *s, const char *name)
{
	size_t n = strlen(name);
	uint8_t *p = su_entry(s, "NM", 5 + n);

	p[4] = 0;
	memcpy(p + 5, name, n);
}

/* The root's "." record opens the area with SP (SUSP is in use, no bytes
 * skipped) and announces Rock Ridge with ER: Linux prefers Rock Ridge to
 * Joliet only when it finds this ER. */
static void su_root_dot(su_buf *s)
{
	uint8_t *p = su_entry(s, "SP", 7);
	size_t li = strlen(RR_ER_ID), ld = strlen(RR_ER_DES), ls = strlen(RR_ER_SRC);

	p[4] = 0xbe;
	p[5] = 0xef;
	p[6] = 0; /* bytes to skip in each system use area */
	su_rr(s, false);
	su_px(s, true);
	p = su_entry(s, "ER", 8 + li + ld + ls);
	p[4] = (uint8_t)li;
	p[5] = (uint8_t)ld;
	p[6] = (uint8_t)ls;
	p[7] = 1; /* extension version */
	memcpy(p + 8, RR_ER_ID, li);
	memcpy(p + 8 + li, RR_ER_DES, ld);
	memcpy(p + 8 + li + ld, RR_ER_SRC, ls);
}

/* ---- names ---------------------------------------------------------------------- */

typedef struct entry {
	const stor_seed_file *file;
	uint32_t extent;
	char iso[16];                        /* level 1 identifier: "USER_DAT.;1" */
	uint8_t jol[2 * STOR_SEED_NAME_MAX]; /* Joliet: the name in UCS-2BE */
	size_t jol_len;
} entry;

static int check_name(const char *name, util_err *err)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > STOR_SEED_NAME_MAX)
		return util_err_set(err, -EINVAL,
		                    "seed file name '%.40s' must be 1 to %d characters",
		                    name ? name : "", STOR_SEED_NAME_MAX);
	if (name[0] == '.')
		return util_err_set(err, -EINVAL, "seed file name '%s' starts with '.'", name);
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return util_err_set(
			        err, -EINVAL,
			        "seed file name '%.40s' has a character other than letters, digits, '-', '_' and '.'",
			        name);
	return 0;
}

/* A level 1 name (eight d-characters, an empty extension, version 1):
 * upper case, anything but A-Z, 0-9 and '_' becomes '_'. Names that clash
 * get a number in their last two characters ("USER_D01"). */
static void iso_name(entry *e, const entry *done, size_t n_done)
{
	char base[9];
	size_t len = 0;

	for (const char *p = e->file->name; *p && len < 8; p++) {
		char c = *p;

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		base[len++] = ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c : '_';
	}
	base[len] = '\0';
	for (unsigned k = 1;; k++) {
		bool clash = false;

		snprintf(e->iso, sizeof(e->iso), "%s.;1", base);
		for (size_t i = 0; i < n_done; i++)
			clash = clash || !strcmp(done[i].iso, e->iso);
		if (!clash)
			return;
		/* at most STOR_SEED_FILES_MAX names: two digits always do */
		if (len < 8)
			memset(base + len, '_', 8 - len);
		snprintf(base + 6, 3, "%02u", k);
		len = 8;
	}
}

static void joliet_name(entry *e)
{
	const char *name = e->file->name;
	size_t n = 0;

	for (const char *p = name; *p; p++) {
		e->jol[n++] = 0;
		e->jol[n++] = (uint8_t)*p;
	}
	/* no ";1" version suffix, as genisoimage writes Joliet names */
	e->jol_len = n;
}

/* Records in a folder are sorted by identifier (ECMA-119 9.3). */
static int cmp_iso(const void *a, const void *b)
{
	return strcmp((*(entry *const *)a)->iso, (*(entry *const *)b)->iso);
}

static int cmp_joliet(const void *a, const void *b)
{
	const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
	size_t n = x->jol_len < y->jol_len ? x->jol_len : y->jol_len;
	int c = memcmp(x->jol, y->jol, n);

	return c ? c : (x->jol_len > y->jol_len) - (x->jol_len < y->jol_len);
}

/* ---- the image ---------------------------------------------------------------------- */

static void put_path_tables(uint8_t *img, uint32_t lba_l, uint32_t lba_m, uint32_t root)
{
	uint8_t *l = img + lba_l * SECTOR, *m = img + lba_m * SECTOR;

	/* one entry, the root: name length 1 (the name is a zero byte),
	 * its extent, parent 1 (itself) */
	l[0] = m[0] = 1;
	le32(l + 2, root);
	be32(m + 2, root);
	le16(l + 6, 1);
	be16(m + 6, 1);
}

/* A volume descriptor's identifiers: where, how long, what. */
typedef struct volume_id {
	unsigned off, len;
	const char *text;
} volume_id;

static const volume_id volume_ids[] = {
	{ 190, 128, "" },                    /* volume set */
	{ 318, 128, "" },                    /* publisher */
	{ 446, 128, "" },                    /* preparer */
	{ 574, 128, "QVM CLOUD-INIT SEED" }, /* application */
	{ 702, 37, "" },                     /* copyright file */
	{ 739, 37, "" },                     /* abstract file */
	{ 776, 37, "" },                     /* bibliographic file */
};

static void put_descriptor(uint8_t *p, bool joliet, uint32_t volume_sectors, const struct tm *t)
{
	static const uint8_t dot = 0;
	uint8_t *root = p + 156;

	p[0] = joliet ? 2 : 1; /* primary, or supplementary */
	memcpy(p + 1, "CD001", 5);
	p[6] = 1; /* descriptor version */
	/* The volume id is what blkid, and so cloud-init, calls the label:
	 * "cidata" in lower case, as cloud-init's documentation makes it
	 * (d-characters would be upper case; Linux takes it as it is). In the
	 * Joliet descriptor too, since blkid prefers that one when present. */
	if (joliet) {
		put_ucs2(p + 8, 32, "LINUX");
		put_ucs2(p + 40, 32, "cidata");
		/* escape sequence %/E: Joliet level 3, UCS-2 */
		p[88] = 0x25;
		p[89] = 0x2f;
		p[90] = 0x45;
	} else {
		put_text(p + 8, 32, "LINUX");
		put_text(p + 40, 32, "cidata");
	}
	both32(p + 80, volume_sectors);
	both16(p + 120, 1);      /* volume set size */
	both16(p + 124, 1);      /* volume sequence number */
	both16(p + 128, SECTOR); /* logical block size */
	both32(p + 132, PATH_TABLE_SIZE);
	le32(p + 140, joliet ? LBA_JPATH_L : LBA_PATH_L);
	be32(p + 148, joliet ? LBA_JPATH_M : LBA_PATH_M);
	put_record(root,
	           &(record){ .extent = joliet ? LBA_JROOT : LBA_ROOT,
	                      .size = SECTOR,
	                      .dir = true,
	                      .id = &dot,
	                      .id_len = 1 },
	           t);
	/* volume set, publisher, preparer, application; copyright, abstract
	 * and bibliographic file ids: empty (spaces) but the application */
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(volume_ids); i++) {
		const volume_id *v = &volume_ids[i];

		if (joliet) /* UCS-2: whole characters only */
			put_ucs2(p + v->off, v->len & ~1u, v->text);
		else
			put_text(p + v->off, v->len, v->text);
	}
	put_volume_date(p + 813, t);    /* created */
	put_volume_date(p + 830, t);    /* modified */
	put_volume_date(p + 847, NULL); /* never expires */
	put_volume_date(p + 864, t);    /* effective from now */
	p[881] = 1;                     /* file structure version */
}

/* A root folder: ".", "..", then the files sorted by this tree's names.
 * Fails if it does not fit its one sector (it always does within the
 * limits on names and files; checked anyway). */
static int put_root(uint8_t *sector, entry **sorted, size_t n, bool joliet, const struct tm *t,
                    util_err *err)
{
	static const uint8_t dot = 0, dotdot = 1;
	size_t off = 0;

	for (int d = 0; d < 2; d++) {
		su_buf su = { .len = 0 };
		record r = { .extent = joliet ? LBA_JROOT : LBA_ROOT,
			     .size = SECTOR,
			     .dir = true,
			     .id = d == 0 ? &dot : &dotdot,
			     .id_len = 1 };

		if (!joliet) {
			if (d == 0)
				su_root_dot(&su);
			else {
				su_rr(&su, false);
				su_px(&su, true);
			}
			r.su = su.b;
			r.su_len = su.len;
		}
		off += put_record(sector + off, &r, t);
	}
	for (size_t i = 0; i < n; i++) {
		const entry *e = sorted[i];
		su_buf su = { .len = 0 };
		record r = { .extent = e->extent, .size = (uint32_t)e->file->len };

		if (joliet) {
			r.id = e->jol;
			r.id_len = e->jol_len;
		} else {
			r.id = (const uint8_t *)e->iso;
			r.id_len = strlen(e->iso);
			su_rr(&su, true);
			su_nm(&su, e->file->name);
			su_px(&su, false);
			r.su = su.b;
			r.su_len = su.len;
		}
		/* a record may not cross a sector boundary */
		if (off + record_len(&r) > SECTOR)
			return util_err_set(err, -E2BIG,
			                    "the seed's file names do not fit its folder");
		off += put_record(sector + off, &r, t);
	}
	return 0;
}

/* Build the whole image in memory (at most ~8 MiB within the limits). */
static int build_image(const stor_seed_file *files, size_t n, uint8_t **ret_img, size_t *ret_len,
                       util_err *err)
{
	_cleanup_free_ entry *ents = NULL;
	_cleanup_free_ entry **by_iso = NULL, **by_jol = NULL;
	_cleanup_free_ uint8_t *img = NULL;
	uint32_t next = LBA_DATA;
	time_t now = time(NULL);
	struct tm t;
	int r;

	if (n == 0 || n > STOR_SEED_FILES_MAX)
		return util_err_set(err, -EINVAL, "a seed holds 1 to %d files, not %zu",
		                    STOR_SEED_FILES_MAX, n);
	ents = util_xcalloc(n, sizeof(*ents));
	by_iso = util_xcalloc(n, sizeof(*by_iso));
	by_jol = util_xcalloc(n, sizeof(*by_jol));
	for (size_t i = 0; i < n; i++) {
		r = check_name(files[i].name, err);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(files[j].name, files[i].name))
				return util_err_set(err, -EINVAL, "seed file '%s' is given twice",
				                    files[i].name);
		if (files[i].len > STOR_SEED_FILE_MAX)
			return util_err_set(
			        err, -EFBIG,
			        "seed file '%s' is %zu bytes, more than the %u a seed file may hold",
			        files[i].name, files[i].len, STOR_SEED_FILE_MAX);
		if (files[i].len && !files[i].data)
			return util_err_set(err, -EINVAL, "seed file '%s' has no data",
			                    files[i].name);
		ents[i].file = &files[i];
		/* an empty file has no sector; extent 0 is what libisofs writes */
		ents[i].extent = files[i].len ? next : 0;
		next += (uint32_t)((files[i].len + SECTOR - 1) / SECTOR);
		iso_name(&ents[i], ents, i);
		joliet_name(&ents[i]);
		by_iso[i] = by_jol[i] = &ents[i];
	}
	qsort(by_iso, n, sizeof(*by_iso), cmp_iso);
	qsort(by_jol, n, sizeof(*by_jol), cmp_joliet);

	gmtime_r(&now, &t);
	img = util_xcalloc(next, SECTOR);
	put_descriptor(img + LBA_PVD * SECTOR, false, next, &t);
	put_descriptor(img + LBA_SVD * SECTOR, true, next, &t);
	/* the set terminator: type 255 */
	img[LBA_TERM * SECTOR] = 255;
	memcpy(img + LBA_TERM * SECTOR + 1, "CD001", 5);
	img[LBA_TERM * SECTOR + 6] = 1;
	put_path_tables(img, LBA_PATH_L, LBA_PATH_M, LBA_ROOT);
	put_path_tables(img, LBA_JPATH_L, LBA_JPATH_M, LBA_JROOT);
	r = put_root(img + LBA_ROOT * SECTOR, by_iso, n, false, &t, err);
	if (r == 0)
		r = put_root(img + LBA_JROOT * SECTOR, by_jol, n, true, &t, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (files[i].len)
			memcpy(img + (size_t)ents[i].extent * SECTOR, files[i].data, files[i].len);
	*ret_len = (size_t)next * SECTOR;
	*ret_img = TAKE_PTR(img);
	return 0;
}

int stor_seed_write(const char *path, const stor_seed_file *files, size_t n, util_err *err)
{
	_cleanup_free_ uint8_t *img = NULL;
	_cleanup_free_ char *safe = NULL;
	size_t len = 0;
	int r;

	r = stor_check_local(path, "seed path", NULL, err);
	if (r == 0)
		r = build_image(files, n, &img, &len, err);
	if (r == 0)
		r = util_write_file_atomic(path, img, len, err);
	if (r < 0) {
		safe = stor_safe(path);
		return util_err_prefix(err, "cannot write the cloud-init seed '%s'", safe);
	}
	return 0;
}
