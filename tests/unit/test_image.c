/* Unit tests for the image store: SHA-256 against the FIPS 180-4 vectors,
 * the metadata's JSON round trip and its validation (names, file names,
 * formats, checksums), and a local import and delete with the real
 * qemu-img in a temporary root. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/storage.h"
#include "tap.h"

static void sha(const void *data, size_t len, char hex[65])
{
	util_sha256 s;

	util_sha256_init(&s);
	util_sha256_update(&s, data, len);
	util_sha256_final(&s, hex);
}

static void test_sha256(const char *mode)
{
	static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const char four_blocks[] =
	        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	char hex[65], hex2[65];
	util_sha256 s;
	char *a = util_xmalloc(1000000);

	sha("", 0, hex);
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "%s: sha256 of the empty string", mode);
	sha("abc", 3, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "%s: sha256 of 'abc'", mode);
	sha(two_blocks, strlen(two_blocks), hex);
	is_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	       "%s: sha256 of the 448-bit message (padding into a second block)", mode);
	sha(four_blocks, strlen(four_blocks), hex);
	is_str(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
	       "%s: sha256 of the 896-bit message", mode);
	memset(a, 'a', 1000000);
	sha(a, 1000000, hex);
	is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
	       "%s: sha256 of a million 'a'", mode);
	/* the same bytes fed in odd pieces: the buffering is right */
	util_sha256_init(&s);
	for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 7 % 1013 + 1)
		util_sha256_update(&s, a + off, off + step > 1000000 ? 1000000 - off : step);
	util_sha256_final(&s, hex2);
	is_str(hex2, hex, "%s: sha256 over uneven pieces equals the one-shot hash", mode);
	for (size_t n = 55; n <= 65; n++) {
		char h1[65], h2[65];

		sha(a, n, h1);
		util_sha256_init(&s);
		util_sha256_update(&s, a, n / 2);
		util_sha256_update(&s, a + n / 2, n - n / 2);
		util_sha256_final(&s, h2);
		if (strcmp(h1, h2))
			break;
		if (n == 65)
			ok(1, "%s: sha256 of 55..65 bytes split in two equals the one-shot hash",
			   mode);
	}
	free(a);
	ok(util_sha256_valid_hex(
	           "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"),
	   "upper-case hex is a valid checksum");
	ok(!util_sha256_valid_hex("e3b0"), "a short checksum is not valid");
	ok(!util_sha256_valid_hex(
	           "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
	   "a non-hex digit is not valid");
	ok(!util_sha256_valid_hex(NULL), "NULL is not valid");
}

/* The SHA instructions and the portable code agree on every length up to
 * a few blocks and on a large odd-sized buffer. */
static void test_sha256_agree(void)
{
	size_t big = (1u << 20) + 37;
	uint8_t *buf = util_xmalloc(big);
	uint32_t x = 12345;
	int bad = 0;

	for (size_t i = 0; i < big; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (size_t n = 0; n <= 300 && !bad; n++) {
		char h1[65], h2[65];

		util_sha256_use_hw(true);
		sha(buf, n, h1);
		util_sha256_use_hw(false);
		sha(buf, n, h2);
		bad = strcmp(h1, h2) != 0;
	}
	ok(!bad, "sha-ni and portable sha256 agree on 0..300 bytes");
	{
		char h1[65], h2[65];

		util_sha256_use_hw(true);
		sha(buf, big, h1);
		util_sha256_use_hw(false);
		sha(buf, big, h2);
		is_str(h1, h2, "sha-ni and portable sha256 agree on 1 MiB + 37 bytes");
	}
	util_sha256_use_hw(true);
	free(buf);
}

static void test_metadata(void)
{
	stor_image img = { 0 }, back = { 0 };
	util_err err = { 0 };
	json_t *j, *bad;
	int r;

	img.name = util_xstrdup("debian-12");
	img.file = util_xstrdup("/var/lib/qvm/images/debian-12.qcow2");
	snprintf(img.format, sizeof(img.format), "qcow2");
	img.virtual_size = 2147483648ull;
	img.actual_size = 123456789;
	snprintf(img.sha256, sizeof(img.sha256), "%s",
	         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	img.source = util_xstrdup("https://example.org/debian-12.qcow2");
	img.created_ms = 1795334588277;
	j = stor_image_to_json(&img);
	is_str(json_string_value(json_object_get(j, "file")), "debian-12.qcow2",
	       "metadata stores the file name inside the store, not the path");
	r = stor_image_from_json(j, "/other/root/images", &back, &err);
	is_int(r, 0, "metadata round trip parses");
	is_str(back.name, "debian-12", "round trip: name");
	is_str(back.file, "/other/root/images/debian-12.qcow2",
	       "round trip: the file is resolved under the store folder given");
	is_str(back.format, "qcow2", "round trip: format");
	ok(back.virtual_size == img.virtual_size && back.actual_size == img.actual_size,
	   "round trip: sizes");
	is_str(back.sha256, img.sha256, "round trip: sha256");
	is_str(back.source, img.source, "round trip: source");
	is_int(back.created_ms, img.created_ms, "round trip: time");
	stor_image_clear(&back);

	bad = json_deep_copy(j);
	json_object_set_new(bad, "name", json_string("../etc"));
	ok(stor_image_from_json(bad, "/r", &back, &err) < 0 && strstr(err.msg, "image name"),
	   "metadata with a bad name is refused: %s", err.msg);
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(bad, "file", json_string("../../etc/shadow"));
	ok(stor_image_from_json(bad, "/r", &back, &err) < 0,
	   "metadata whose file leaves the store is refused");
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(bad, "file", json_string(".qvm-partial-x"));
	ok(stor_image_from_json(bad, "/r", &back, &err) < 0,
	   "metadata naming a hidden file is refused");
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(bad, "format", json_string("vmdk"));
	ok(stor_image_from_json(bad, "/r", &back, &err) < 0,
	   "metadata with format vmdk is refused");
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(bad, "sha256", json_string("abc"));
	ok(stor_image_from_json(bad, "/r", &back, &err) < 0,
	   "metadata with a bad sha256 is refused");
	json_decref(bad);
	bad = json_deep_copy(j);
	json_object_set_new(bad, "virtual_size", json_integer(-1));
	ok(stor_image_from_json(bad, "/r", &back, &err) < 0,
	   "metadata with a negative size is refused");
	json_decref(bad);
	json_decref(j);
	stor_image_clear(&img);
}

static void test_names_and_store(void)
{
	char root[] = "/tmp/qvm-test-image-XXXXXX";
	_cleanup_free_ char *src = NULL, *img_dir = NULL;
	stor_image img = { 0 };
	stor_image *v = NULL;
	size_t n = 0;
	util_err err = { 0 };
	stor_import_opts o = { 0 };
	const char *roots[] = { root, NULL };
	struct stat st;
	int r;

	if (!mkdtemp(root)) {
		ok(0, "mkdtemp");
		return;
	}
	static const char *const bad[] = {
		"",        "-x",
		".hidden", "a/b",
		"../x",    "a b",
		"x\ty",    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	};
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
		r = stor_image_get(root, bad[i], &img, &err);
		ok(r == -EINVAL, "image name '%s' is refused", bad[i]);
	}
	r = stor_image_get(root, "nosuch", &img, &err);
	ok(r == -ENOENT && strstr(err.msg, "no image named 'nosuch'"), "a missing image: %s",
	   err.msg);
	r = stor_image_list(root, &v, &n, &err);
	ok(r == 0 && n == 0, "an empty (absent) store lists nothing");

	src = util_xasprintf("%s/src.raw", root);
	{
		int fd = open(src, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		char buf[4096];

		memset(buf, 'q', sizeof(buf));
		ok(fd >= 0 && write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf),
		   "a 4 KiB raw file");
		if (fd >= 0)
			close(fd);
	}
	o.name = "four-k";
	o.source = src;
	o.format = "raw";
	/* a local source obeys the disk path policy, as --disk does */
	r = stor_image_import(root, &o, &img, &err);
	ok(r == -EACCES && strstr(err.msg, "is not under an allowed folder (none configured)"),
	   "a local file with no roots is refused: %s", err.msg);
	{
		_cleanup_free_ char *other = util_xasprintf("%s/other", root);
		_cleanup_free_ char *link = util_xasprintf("%s/link.raw", root);
		const char *other_roots[] = { other, NULL };

		o.allowed_roots = other_roots;
		r = stor_image_import(root, &o, &img, &err);
		ok(r == -EACCES && strstr(err.msg, "add its folder to QVM_DISK_ROOTS"),
		   "a local file outside the roots is refused: %s", err.msg);
		o.allowed_roots = roots;
		ok(symlink(src, link) == 0, "a link to the file, inside the roots");
		o.source = link;
		r = stor_image_import(root, &o, &img, &err);
		ok(r == -ELOOP && strstr(err.msg, "is a symbolic link"),
		   "a link is refused, even to a file inside the roots: %s", err.msg);
		o.source = src;
	}
	r = stor_image_import(root, &o, &img, &err);
	ok(r == 0, "import a local raw file: %s", r ? err.msg : "ok");
	{
		char hex[65], buf[4096];

		memset(buf, 'q', sizeof(buf));
		sha(buf, sizeof(buf), hex);
		is_str(img.sha256, hex, "the recorded sha256 is the file's");
	}
	is_int(img.virtual_size, 4096, "the recorded virtual size");
	img_dir = stor_images_dir(root);
	ok(stat(img_dir, &st) == 0 && (st.st_mode & 0777) == 0700, "the store folder is 0700");
	ok(stat(img.file, &st) == 0 && (st.st_mode & 0777) == 0600, "the image file is 0600");
	stor_image_clear(&img);
	r = stor_image_import(root, &o, &img, &err);
	ok(r == -EEXIST && strstr(err.msg, "already exists"),
	   "a second import of the name is refused: %s", err.msg);
	o.name = "wrong-sum";
	o.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
	r = stor_image_import(root, &o, &img, &err);
	ok(r < 0 && strstr(err.msg, "SHA-256"), "a checksum mismatch is refused: %s", err.msg);
	o.name = "as-qcow2";
	o.sha256 = NULL;
	o.format = "qcow2";
	r = stor_image_import(root, &o, &img, &err);
	ok(r < 0, "a raw file declared qcow2 is refused: %s", err.msg);
	r = stor_image_list(root, &v, &n, &err);
	ok(r == 0 && n == 1 && !strcmp(v[0].name, "four-k"), "only the good image is in the store");
	stor_image_list_free(v, n);
	r = stor_image_delete(root, "four-k", &err);
	ok(r == 0, "delete it");
	r = stor_image_list(root, &v, &n, &err);
	ok(r == 0 && n == 0, "the store is empty again");
	stor_image_list_free(v, n);
	{
		/* nothing but the lock may be left in the folder */
		char *const argv[] = { "find", img_dir, "-mindepth", "1",
			               "!",    "-name", ".lock",     NULL };
		_cleanup_free_ char *out = NULL;
		util_run_opts ro = { .ret_stdout = &out };

		r = util_run(argv, &ro, &err);
		ok(r == 0 && out && !*out, "no file is left in the store: '%s'", out ? out : "");
	}
	util_rm_rf(root, NULL);
}

int main(void)
{
	util_sha256_use_hw(true);
	if (util_sha256_hw())
		test_sha256("sha-ni");
	else
		diag("no SHA instructions on this CPU: portable code only");
	util_sha256_use_hw(false);
	test_sha256("portable");
	util_sha256_use_hw(true);
	if (util_sha256_hw())
		test_sha256_agree();
	test_metadata();
	test_names_and_store();
	return done_testing();
}
