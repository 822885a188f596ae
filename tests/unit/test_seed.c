/* Unit tests for the cloud-init seed writer (storage/seed.c): seeds are
 * written, then read back with the small ISO 9660 reader below (volume
 * descriptors, directory records, Rock Ridge and Joliet names, contents
 * byte for byte) and, when isoinfo (genisoimage) is installed, listed and
 * extracted with it as an independent reader. Refusals leave no file. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/storage.h"
#include "tap.h"

#define SECTOR 2048u

static char root[] = "/tmp/qvm-test-seed-XXXXXX";

/* ---- a small ISO 9660 reader ---------------------------------------------------- */

typedef struct iso_file {
	char name[80]; /* Rock Ridge NM or Joliet name; the raw id otherwise */
	char raw[80];  /* the record's identifier (primary tree: level 1) */
	uint32_t extent, size;
	bool dir;
	bool has_px;
	uint32_t mode; /* PX mode */
} iso_file;

typedef struct iso {
	uint8_t *img;
	size_t len;
} iso;

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t rd32be(const uint8_t *p)
{
	return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}

/* a both-endian 32-bit field whose halves agree, else 0xffffffff */
static uint32_t both32(const uint8_t *p)
{
	return rd32(p) == rd32be(p + 4) ? rd32(p) : 0xffffffffu;
}

static const uint8_t *sector(const iso *o, uint32_t lba)
{
	return (size_t)(lba + 1) * SECTOR <= o->len ? o->img + (size_t)lba * SECTOR : NULL;
}

/* The space-padded volume id of a descriptor, ASCII (Joliet: from UCS-2). */
static void volume_id(const uint8_t *d, bool joliet, char *out, size_t outlen)
{
	size_t n = 0;

	for (size_t i = 0; i < 32 && n + 1 < outlen; i += joliet ? 2 : 1)
		out[n++] = (char)(joliet ? (d[40 + i] ? '?' : d[41 + i]) : d[40 + i]);
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* Parse the SUSP entries of a primary-tree record: NM and PX. Sets *sp
 * and *er when found (they belong in the root's "."). */
static void parse_su(const uint8_t *su, size_t len, iso_file *f, bool *sp, char *er, size_t erlen)
{
	size_t off = 0;

	while (off + 4 <= len) {
		const uint8_t *e = su + off;
		size_t el = e[2];

		if (el < 4 || off + el > len)
			break;
		if (!memcmp(e, "NM", 2) && el >= 5) {
			size_t n = el - 5 < sizeof(f->name) - 1 ? el - 5 : sizeof(f->name) - 1;

			memcpy(f->name, e + 5, n);
			f->name[n] = '\0';
		} else if (!memcmp(e, "PX", 2) && el >= 36) {
			f->has_px = true;
			f->mode = both32(e + 4);
		} else if (!memcmp(e, "SP", 2) && el == 7 && e[4] == 0xbe && e[5] == 0xef) {
			if (sp)
				*sp = true;
		} else if (!memcmp(e, "ER", 2) && el >= 8 && er) {
			size_t n = e[4] < erlen - 1 ? e[4] : erlen - 1;

			memcpy(er, e + 8, n);
			er[n] = '\0';
		}
		off += el;
	}
}

/* Read the folder at lba: up to max entries besides "." and "..". Returns
 * the count, or -1 on a malformed record. */
static int read_dir(const iso *o, uint32_t lba, uint32_t size, bool joliet, iso_file *out, int max,
                    bool *sp, char *er, size_t erlen)
{
	int n = 0;

	for (uint32_t s = 0; s < (size + SECTOR - 1) / SECTOR; s++) {
		const uint8_t *sec = sector(o, lba + s);
		size_t off = 0;

		if (!sec)
			return -1;
		while (off < SECTOR && sec[off]) {
			const uint8_t *r = sec + off;
			size_t rl = r[0], il = r[32], su_off = 33 + il + (il % 2 == 0);
			iso_file f;

			if (rl < 34 || off + rl > SECTOR || 33 + il > rl || rl % 2)
				return -1;
			memset(&f, 0, sizeof(f));
			f.extent = both32(r + 2);
			f.size = both32(r + 10);
			f.dir = r[25] & 2;
			if (il == 1 && (r[33] == 0 || r[33] == 1)) {
				/* "." and "..": only the root's "." holds SP and ER */
				if (!joliet && r[33] == 0 && su_off < rl)
					parse_su(r + su_off, rl - su_off, &f, sp, er, erlen);
				off += rl;
				continue;
			}
			if (joliet) {
				size_t k = 0;

				for (size_t i = 0; i + 1 < il && k + 1 < sizeof(f.name); i += 2)
					f.name[k++] = (char)(r[33 + i] ? '?' : r[34 + i]);
				f.name[k] = '\0';
				if (k > 2 && !strcmp(f.name + k - 2, ";1"))
					f.name[k - 2] = '\0';
			} else {
				memcpy(f.raw, r + 33, il < sizeof(f.raw) ? il : sizeof(f.raw) - 1);
				if (su_off < rl)
					parse_su(r + su_off, rl - su_off, &f, NULL, NULL, 0);
				if (!f.name[0])
					strcpy(f.name, f.raw);
			}
			if (n < max)
				out[n] = f;
			n++;
			off += rl;
		}
	}
	return n;
}

static int load(const char *path, iso *o)
{
	util_err err = { 0 };
	char *data;
	size_t len;

	if (util_read_file(path, 64u << 20, &data, &len, &err) < 0) {
		diag("%s", err.msg);
		return -1;
	}
	o->img = (uint8_t *)data;
	o->len = len;
	return 0;
}

/* ---- checks ------------------------------------------------------------------ */

/* Does the file in the image hold exactly want? */
static bool content_is(const iso *o, const iso_file *f, const void *want, size_t len)
{
	if (f->size != len)
		return false;
	if (len == 0)
		return true;
	if ((size_t)f->extent * SECTOR + len > o->len)
		return false;
	return !memcmp(o->img + (size_t)f->extent * SECTOR, want, len);
}

static const iso_file *find(const iso_file *fs, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(fs[i].name, name))
			return &fs[i];
	return NULL;
}

static bool is_level1(const char *id)
{
	/* up to 8 d-characters, ".", empty extension, ";1" */
	size_t n = strcspn(id, ".");

	if (n == 0 || n > 8 || strcmp(id + n, ".;1"))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9') ||
		      id[i] == '_'))
			return false;
	return true;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Run isoinfo with args; its stdout in *out. Returns its status. */
static int isoinfo(const char *const *args, char **out)
{
	util_strv sv = { 0 };
	_cleanup_strv_ char **argv = NULL;
	util_run_opts o = { .ret_stdout = out, .stdout_max = 4u << 20 };
	util_err err = { 0 };
	int r;

	util_strv_push(&sv, "isoinfo");
	for (; *args; args++)
		util_strv_push(&sv, *args);
	argv = util_strv_steal(&sv);
	r = util_run(argv, &o, &err);
	if (r < 0)
		diag("isoinfo: %s", err.msg);
	return r;
}

static const char user_data[] = "#cloud-config\npassword: hunter2\nchpasswd: { expire: False }\n";
static const char meta_data[] = "instance-id: iid-0001\nlocal-hostname: seedy\n";
static const char net_config[] = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n";

static void test_three_files(void)
{
	const char *path = util_xasprintf("%s/seed.iso", root);
	stor_seed_file files[] = {
		{ "user-data", user_data, strlen(user_data) },
		{ "meta-data", meta_data, strlen(meta_data) },
		{ "network-config", net_config, strlen(net_config) },
	};
	util_err err = { 0 };
	iso o = { 0 };
	iso_file fs[8], js[8];
	const uint8_t *pvd, *svd, *term;
	char label[40], er[40] = "";
	bool sp = false;
	struct stat st;
	int n, nj;

	if (!ok(stor_seed_write(path, files, 3, &err) == 0, "a seed with three files is written"))
		diag("%s", err.msg);
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "... mode 0600");
	is_int(count_entries(root), 1, "... and no temporary file is left");
	if (load(path, &o) < 0) {
		ok(0, "seed readable");
		return;
	}
	ok(o.len % SECTOR == 0 && o.len >= 26 * SECTOR, "its size is whole sectors (%zu bytes)",
	   o.len);
	pvd = sector(&o, 16);
	svd = sector(&o, 17);
	term = sector(&o, 18);
	ok(pvd && pvd[0] == 1 && !memcmp(pvd + 1, "CD001", 5) && pvd[6] == 1,
	   "sector 16 is the primary volume descriptor");
	volume_id(pvd, false, label, sizeof(label));
	is_str(label, "cidata", "the volume label is cidata");
	is_int(both32(pvd + 80) * (uint64_t)SECTOR, o.len, "the volume size is the file's size");
	is_int(pvd[128] | pvd[129] << 8, SECTOR, "logical blocks of 2048 bytes");
	ok(svd && svd[0] == 2 && !memcmp(svd + 1, "CD001", 5) && !memcmp(svd + 88, "%/E", 3),
	   "sector 17 is a Joliet (UCS-2 level 3) descriptor");
	volume_id(svd, true, label, sizeof(label));
	is_str(label, "cidata", "... also labelled cidata");
	ok(term && term[0] == 255 && !memcmp(term + 1, "CD001", 5),
	   "sector 18 ends the descriptors");

	n = read_dir(&o, both32(pvd + 156 + 2), both32(pvd + 156 + 10), false, fs, 8, &sp, er,
	             sizeof(er));
	is_int(n, 3, "the primary root holds three files");
	ok(sp, "its '.' opens the SUSP area with SP");
	is_str(er, "RRIP_1991A", "... and announces Rock Ridge with ER");
	for (int i = 0; i < n && i < 8; i++) {
		ok(is_level1(fs[i].raw), "'%s' is a level 1 identifier", fs[i].raw);
		ok(fs[i].has_px && fs[i].mode == 0100444, "'%s' has PX mode 0444 (%o)", fs[i].name,
		   fs[i].mode);
		if (i > 0)
			ok(strcmp(fs[i - 1].raw, fs[i].raw) < 0, "records sorted: %s < %s",
			   fs[i - 1].raw, fs[i].raw);
	}
	for (size_t i = 0; i < 3; i++) {
		const iso_file *f = find(fs, n, files[i].name);

		ok(f != NULL, "Rock Ridge name '%s' present", files[i].name);
		ok(f && content_is(&o, f, files[i].data, files[i].len), "'%s' content byte-exact",
		   files[i].name);
	}
	nj = read_dir(&o, both32(svd + 156 + 2), both32(svd + 156 + 10), true, js, 8, NULL, NULL,
	              0);
	is_int(nj, 3, "the Joliet root holds three files");
	for (size_t i = 0; i < 3; i++) {
		const iso_file *f = find(js, nj, files[i].name);

		ok(f && content_is(&o, f, files[i].data, files[i].len),
		   "Joliet '%s' present, same content", files[i].name);
	}
	free(o.img);

	/* a second write replaces the first */
	files[1].data = "instance-id: iid-0002\n";
	files[1].len = strlen(files[1].data);
	ok(stor_seed_write(path, files, 2, &err) == 0, "a seed is rewritten in place");
	if (load(path, &o) == 0) {
		n = read_dir(&o, both32(o.img + 16 * SECTOR + 158), SECTOR, false, fs, 8, NULL,
		             NULL, 0);
		is_int(n, 2, "... it holds the new two files");
		ok(n == 2 && find(fs, n, "meta-data") &&
		           content_is(&o, find(fs, n, "meta-data"), files[1].data, files[1].len),
		   "... with the new meta-data");
		free(o.img);
	}
	is_int(count_entries(root), 1, "... and no temporary file is left");
	free((char *)path);
}

static void test_edges(void)
{
	const char *path = util_xasprintf("%s/edge.iso", root);
	size_t big = STOR_SEED_FILE_MAX;
	uint8_t *data = util_xmalloc(big + 1);
	util_err err = { 0 };
	iso o = { 0 };
	iso_file fs[8];
	int n;

	for (size_t i = 0; i < big + 1; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 9)); /* NULs and all byte values */
	{
		stor_seed_file files[] = {
			{ "user-data", data, big },
			{ "meta-data", "", 0 },
			{ "user-data-2", "x", 1 }, /* the same level 1 name as user-data */
		};

		if (!ok(stor_seed_write(path, files, 3, &err) == 0,
		        "a 1 MiB file, an empty file and clashing 8.3 names are accepted"))
			diag("%s", err.msg);
		if (load(path, &o) == 0) {
			n = read_dir(&o, both32(o.img + 16 * SECTOR + 158), SECTOR, false, fs, 8,
			             NULL, NULL, 0);
			is_int(n, 3, "three files");
			ok(find(fs, n, "user-data") &&
			           content_is(&o, find(fs, n, "user-data"), data, big),
			   "the 1 MiB binary file is byte-exact");
			ok(find(fs, n, "meta-data") && find(fs, n, "meta-data")->size == 0,
			   "the empty file is there, empty");
			ok(find(fs, n, "user-data-2") &&
			           content_is(&o, find(fs, n, "user-data-2"), "x", 1),
			   "the clashing name is there with its content");
			ok(n == 3 && strcmp(fs[0].raw, fs[1].raw) && strcmp(fs[1].raw, fs[2].raw) &&
			           strcmp(fs[0].raw, fs[2].raw),
			   "level 1 identifiers are unique (%s %s %s)", fs[0].raw, fs[1].raw,
			   fs[2].raw);
			free(o.img);
		}
		unlink(path);
	}
	{
		stor_seed_file files[] = { { "user-data", data, big + 1 } };

		is_int(stor_seed_write(path, files, 1, &err), -EFBIG,
		       "a file over 1 MiB is refused");
		ok(strstr(err.msg, "user-data") && strstr(err.msg, "more than"),
		   "... the message names it: %s", err.msg);
	}
	{
		static const char *const bad[] = { "",
			                           ".hidden",
			                           "a/b",
			                           "x y",
			                           "tab\tname",
			                           "über",
			                           "abcdefghijabcdefghijabcdefghijabc" /* 33 */ };

		for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
			stor_seed_file files[] = { { bad[i], "x", 1 } };

			is_int(stor_seed_write(path, files, 1, &err), -EINVAL,
			       "bad name '%s' refused", bad[i]);
		}
	}
	{
		stor_seed_file twice[] = { { "user-data", "a", 1 }, { "user-data", "b", 1 } };
		stor_seed_file many[STOR_SEED_FILES_MAX + 1];

		is_int(stor_seed_write(path, twice, 2, &err), -EINVAL,
		       "a name given twice is refused");
		is_int(stor_seed_write(path, twice, 0, &err), -EINVAL, "no files is refused");
		for (size_t i = 0; i < UTIL_ARRAY_SIZE(many); i++)
			many[i] = (stor_seed_file){ util_xasprintf("f%zu", i), "x", 1 };
		is_int(stor_seed_write(path, many, UTIL_ARRAY_SIZE(many), &err), -EINVAL,
		       "more than %d files is refused", STOR_SEED_FILES_MAX);
		if (!ok(stor_seed_write(path, many, STOR_SEED_FILES_MAX, &err) == 0,
		        "%d files are accepted", STOR_SEED_FILES_MAX))
			diag("%s", err.msg);
		unlink(path);
		for (size_t i = 0; i < UTIL_ARRAY_SIZE(many); i++)
			free((char *)many[i].name);
	}
	{
		stor_seed_file files[] = { { "user-data", "x", 1 } };

		ok(stor_seed_write("relative.iso", files, 1, &err) < 0,
		   "a relative path is refused");
	}
	is_int(count_entries(root), 0, "refusals leave nothing behind");
	free(data);
	free((char *)path);
}

/* isoinfo (genisoimage) as an independent reader, when installed. */
static void test_isoinfo(void)
{
	_cleanup_free_ char *found = NULL;
	const char *path = util_xasprintf("%s/x.iso", root);
	stor_seed_file files[] = {
		{ "user-data", user_data, strlen(user_data) },
		{ "meta-data", meta_data, strlen(meta_data) },
		{ "network-config", net_config, strlen(net_config) },
	};
	util_err err = { 0 };
	char *out = NULL;

	if (util_find_program("isoinfo", &found, NULL) < 0) {
		ok(1, "# skip isoinfo is not installed (make deps installs genisoimage)");
		free((char *)path);
		return;
	}
	ok(stor_seed_write(path, files, 3, &err) == 0, "seed for isoinfo written");
	is_int(isoinfo((const char *[]){ "-d", "-i", path, NULL }, &out), 0, "isoinfo -d reads it");
	ok(out && strstr(out, "Volume id: cidata\n"), "isoinfo: volume id cidata");
	ok(out && strstr(out, "Rock Ridge signatures version 1 found"),
	   "isoinfo: Rock Ridge found");
	ok(out && strstr(out, "Joliet with UCS level 3 found"), "isoinfo: Joliet found");
	if (!ok(out && strstr(out, "Logical block size is: 2048"), "isoinfo: 2048-byte blocks"))
		diag("%s", out ? out : "");
	free(out);
	out = NULL;
	is_int(isoinfo((const char *[]){ "-R", "-f", "-i", path, NULL }, &out), 0, "isoinfo -R -f");
	is_str(out, "/meta-data\n/network-config\n/user-data\n",
	       "isoinfo lists the Rock Ridge names");
	free(out);
	out = NULL;
	is_int(isoinfo((const char *[]){ "-J", "-f", "-i", path, NULL }, &out), 0, "isoinfo -J -f");
	is_str(out, "/meta-data\n/network-config\n/user-data\n", "isoinfo lists the Joliet names");
	free(out);
	out = NULL;
	for (size_t i = 0; i < 3; i++) {
		_cleanup_free_ char *name = util_xasprintf("/%s", files[i].name);

		isoinfo((const char *[]){ "-R", "-i", path, "-x", name, NULL }, &out);
		is_str(out, (const char *)files[i].data, "isoinfo extracts %s byte-exact", name);
		free(out);
		out = NULL;
	}
	unlink(path);
	free((char *)path);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	test_three_files();
	{
		_cleanup_free_ char *seed = util_xasprintf("%s/seed.iso", root);

		unlink(seed);
	}
	test_edges();
	test_isoinfo();
	util_rm_rf(root, NULL);
	return done_testing();
}
