/* Unit tests for storage/: the disk path policy, image inspection against
 * hostile images made with the real qemu-img, and image creation/removal. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "lifecycle/run.h"
#include "storage/internal.h"
#include "storage/storage.h"
#include "tap.h"

static char root[] = "/tmp/qvm-test-storage-XXXXXX";
static char *img_dir, *out_dir;

/* Paths built by P() live until the end of the run. */
static util_strv pool;

__attribute__((format(printf, 1, 2))) static const char *P(const char *fmt, ...)
{
	va_list ap;
	char *rel, *full;

	va_start(ap, fmt);
	if (vasprintf(&rel, fmt, ap) < 0)
		abort();
	va_end(ap);
	full = util_xasprintf("%s/%s", root, rel);
	free(rel);
	util_strv_push_take(&pool, full);
	return full;
}

/* Run the real qemu-img with the given arguments (NULL-terminated);
 * returns its exit status, printing its stderr as a diagnosis on failure. */
static int qimg(const char *first, ...)
{
	util_strv sv = { 0 };
	_cleanup_strv_ char **argv = NULL;
	_cleanup_free_ char *errtext = NULL;
	util_run_opts o = { .ret_stderr = &errtext };
	util_err err = { 0 };
	va_list ap;
	int r;

	util_strv_push(&sv, "qemu-img");
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		util_strv_push(&sv, a);
	va_end(ap);
	argv = util_strv_steal(&sv);
	r = util_run(argv, &o, &err);
	if (r < 0)
		diag("qemu-img: %s", err.msg);
	else if (r)
		diag("qemu-img %s failed: %s", first, errtext);
	return r;
}

/* `qemu-img info -f <fmt> --output=json -- path` as a new JSON object. */
static json_t *qinfo(const char *path, const char *fmt)
{
	char *argv[] = { "qemu-img",      "info", "-f",         (char *)fmt,
		         "--output=json", "--",   (char *)path, NULL };
	_cleanup_free_ char *out = NULL;
	util_run_opts o = { .ret_stdout = &out };
	util_err err = { 0 };

	if (util_run(argv, &o, &err) != 0)
		return NULL;
	return json_loads(out, 0, NULL);
}

static void write_file(const char *path, const char *data)
{
	util_err err = { 0 };

	if (util_write_file_atomic(path, data, strlen(data), &err) < 0) {
		diag("%s", err.msg);
		abort();
	}
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (st.st_mode & 07777) : 0;
}

/* Does the message contain needle? Says what it was when not. */
static int has(const util_err *err, const char *needle, const char *name)
{
	if (getenv("SHOW_MSG"))
		diag("%s", err->msg);
	if (!ok(err->msg[0] && strstr(err->msg, needle) != NULL, "%s: message says '%s'", name,
	        needle)) {
		diag("message: %s", err->msg);
		return 0;
	}
	return 1;
}

/* The refusal of stor_check_path(path), checked by message. */
static void path_refused(const char *path, const char *const *roots, const char *needle,
                         const char *name)
{
	util_err err = { 0 };
	char *real = (char *)"untouched";
	int r = stor_check_path(path, roots, &real, &err);

	ok(r < 0, "%s: refused (%d)", name, r);
	is_str(real, "untouched", "%s: no realpath returned", name);
	has(&err, needle, name);
	ok(strchr(err.msg, '\n') == NULL, "%s: message is one line", name);
}

/* Leftovers of a create: temporary files in a folder. */
static int temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".qvm-create-"))
			n++;
	closedir(d);
	return n;
}

static void test_path_policy(void)
{
	const char *roots[] = { img_dir, NULL };
	const char *two_roots[] = { P("img"), P("other"), NULL };
	util_err err = { 0 };
	char *real = NULL, *expect = NULL;
	int r;

	write_file(P("img/good.raw"), "data");
	write_file(P("out/secret.raw"), "secret");
	write_file(P("imgs/disk.raw"), "sibling");
	if (symlink(P("out/secret.raw"), P("img/escape.raw")) < 0 ||
	    symlink("good.raw", P("img/link.raw")) < 0 || mkdir(P("img/sub"), 0700) < 0 ||
	    symlink(P("img"), P("img-link")) < 0)
		abort();

	r = stor_check_path(P("img/good.raw"), roots, &real, &err);
	is_int(r, 0, "good path accepted");
	expect = realpath(P("img/good.raw"), NULL);
	is_str(real, expect, "realpath returned");
	free(real);
	real = NULL;

	/* no link is followed, not even one that stays inside the root: the
	 * path qvm records is checked again at each start, and a link made
	 * there later must fail the same test */
	r = stor_check_path(P("img/link.raw"), roots, &real, &err);
	is_int(r, -ELOOP, "symlink staying inside the root refused");
	has(&err, "is a symbolic link (to '", "... saying it is a link");
	has(&err, "give the real file's path", "... and what to do");
	ok(real == NULL, "... and no path returned");
	util_err_clear(&err);
	if (symlink(P("img/nothing.raw"), P("img/dangling.raw")) < 0)
		abort();
	r = stor_check_path(P("img/dangling.raw"), roots, NULL, &err);
	is_int(r, -ELOOP, "a dangling link refused as a link");
	has(&err, "nothing.raw'); qvm opens no file through a link", "... naming its target");
	util_err_clear(&err);
	r = stor_check_path(P("img-link/good.raw"), roots, NULL, &err);
	is_int(r, -ELOOP, "a path through a linked folder refused");
	has(&err, "goes through a symbolic link (it is really '", "... naming the real path");
	util_err_clear(&err);

	r = stor_check_path(P("img/../img/good.raw"), roots, &real, &err);
	is_int(r, 0, "'..' that stays inside accepted (read as text, no link on the way)");
	is_str(real, expect, "... resolved");
	free(real);
	real = NULL;
	r = stor_check_path(P("img/sub/../good.raw"), roots, NULL, &err);
	is_int(r, 0, "'sub/..' accepted");
	r = stor_check_path(P("img/.//good.raw"), roots, NULL, &err);
	is_int(r, 0, "'.' and '//' accepted");

	{
		const char *link_roots[] = { P("img-link"), NULL };
		const char *slash_roots[] = { util_xasprintf("%s/", img_dir), NULL };

		is_int(stor_check_path(P("img/good.raw"), link_roots, NULL, &err), 0,
		       "a root given through a symlink is resolved");
		is_int(stor_check_path(P("img/good.raw"), slash_roots, NULL, &err), 0,
		       "a root with a trailing slash works");
		free((char *)slash_roots[0]);
	}
	{
		const char *slash[] = { "/", NULL };

		is_int(stor_check_path(P("out/secret.raw"), slash, NULL, &err), 0,
		       "root '/' holds everything");
	}
	free(expect);

	path_refused("img/good.raw", roots, "is not absolute", "relative path");
	path_refused("json:{\"file.filename\":\"/etc/shadow\"}", roots, "'json:' pseudo-path",
	             "json: pseudo-path");
	path_refused("nbd://x", roots, "'nbd:' pseudo-path", "nbd:// pseudo-path");
	path_refused("file:/etc/passwd", roots, "'file:' pseudo-path", "file: pseudo-path");
	path_refused("http://example.com/disk.img", roots, "'http:' pseudo-path",
	             "http:// pseudo-path");
	path_refused(P("img/a\nb.raw"), roots, "control character (0x0a)", "newline");
	path_refused(P("img/a\033[2Jb.raw"), roots, "control character (0x1b)", "escape");
	path_refused(P("img/escape.raw"), roots, "is a symbolic link", "symlink escaping the root");
	path_refused(P("img/escape.raw"), roots, "out/secret.raw",
	             "symlink escape names the target");
	path_refused(P("img/sub"), roots, "is a directory", "directory");
	path_refused(P("img/missing.raw"), roots, "does not exist", "missing file");
	path_refused(P("imgs/disk.raw"), roots, "is not under an allowed folder",
	             "sibling folder with a common prefix");
	path_refused("/dev/null", (const char *const[]){ "/dev", NULL },
	             "only regular files are supported for now", "character device");
	path_refused("", roots, "is empty", "empty path");
	path_refused(P("img/good.raw"), NULL, "none configured", "no roots at all");
	path_refused(P("img/good.raw"), (const char *const[]){ "relative/root", NULL },
	             "is not absolute; fix the configuration", "relative root");
	path_refused(P("img/good.raw"), (const char *const[]){ P("does-not-exist"), NULL },
	             "is not under an allowed folder", "only a missing root");

	util_err_clear(&err);
	r = stor_check_path(P("out/secret.raw"), two_roots, NULL, &err);
	ok(r == -EACCES, "outside two roots refused with -EACCES");
	{
		_cleanup_free_ char *want = util_xasprintf(
		        "path '%s' is not under an allowed folder (%s, %s); add the folder "
		        "to QVM_DISK_ROOTS or import the file as an image",
		        P("out/secret.raw"), two_roots[0], two_roots[1]);

		is_str(err.msg, want, "the full message");
	}
}

/* stor_inspect() refusal: code, message. */
static void inspect_refused(const char *path, const char *declared, const char *const *roots,
                            int code, const char *needle, const char *name)
{
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	util_err err = { 0 };
	int r = stor_inspect(path, declared, roots, &info, &err);

	is_int(r, code, "%s: refused", name);
	ok(info.chain == NULL && info.backing_file == NULL && !info.format[0], "%s: info untouched",
	   name);
	has(&err, needle, name);
	/* the check before an open refuses the same files the same way (a
	 * stand-in qemu-img's odd answers are stor_inspect's alone) */
	if (getenv("QVM_QEMU_IMG"))
		return;
	util_err_clear(&err);
	r = stor_inspect_before_open(path, declared, roots, &info, &err);
	is_int(r, code, "%s: refused before an open too", name);
	has(&err, needle, name);
}

/* Patch the first occurrence of 4 bytes in the first cluster of a file. */
static int patch4(const char *path, const unsigned char from[4], const unsigned char to[4])
{
	unsigned char buf[65536];
	int fd = open(path, O_RDWR | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof(buf), 0);
	int r = -1;

	for (ssize_t i = 0; n > 4 && i < n - 4; i++)
		if (!memcmp(buf + i, from, 4)) {
			r = pwrite(fd, to, 4, i) == 4 ? 0 : -1;
			break;
		}
	if (fd >= 0)
		close(fd);
	return r;
}

/* The in-process probe on buffers: what QEMU would take each head for. */
static void probe_is(const void *buf, size_t len, const char *want, const char *name)
{
	stor_probe p;

	stor_probe_buf(buf, len, &p);
	is_str(p.format, want, "probe: %s", name);
	stor_probe_clear(&p);
}

static void test_probe(void)
{
	unsigned char b[512] = { 0 };
	stor_probe p;
	const char *desc = "# Disk DescriptorFile\n   \nversion=1\nCID=1\n"
	                   "RW 8 SPARSE \"a-s001.vmdk\"\nRW 8 SPARSE \"a-s002.vmdk\"\n";

	probe_is(b, 0, "raw", "an empty file is raw");
	probe_is(b, sizeof(b), "raw", "zeros are raw");
	probe_is("QFI\xfb\0\0\0\3", 8, "qcow2", "qcow2 v3 magic");
	probe_is("QFI\xfb\0\0\0\1", 8, "qcow", "qcow v1");
	probe_is("QFI\xfb", 4, "qcow2", "a truncated qcow2 magic is not raw");
	probe_is("QED\0", 4, "qed", "qed");
	probe_is("KDMV", 4, "vmdk", "sparse vmdk");
	probe_is("COWD", 4, "vmdk", "vmdk3");
	probe_is("vhdxfile", 8, "vhdx", "vhdx");
	probe_is("conectix", 8, "vpc", "vpc");
	probe_is("LUKS\xba\xbe\0\1", 8, "luks", "luks");
	probe_is("WithoutFreeSpace", 16, "parallels", "parallels");
	memcpy(b + 0x40, "\x7f\x10\xda\xbe", 4);
	probe_is(b, sizeof(b), "vdi", "vdi signature at 0x40");
	probe_is("#!/bin/sh\n#V2.0 Format\nmodprobe", 32, "cloop", "cloop");
	probe_is("version=1\n", 10, "vmdk", "a bare descriptor");
	probe_is("\nversion=1\n", 11, "raw", "an empty line first: qemu's probe says raw");
	probe_is("hello\nversion=1\n", 16, "raw", "text first: raw");

	stor_probe_buf(desc, strlen(desc), &p);
	ok(p.vmdk_descriptor && p.extents == 2 && util_streq(p.first_extent, "a-s001.vmdk"),
	   "probe: a descriptor's extents are counted, the first named");
	stor_probe_clear(&p);
	stor_probe_clear(&p);
	ok(p.first_extent == NULL, "probe: clear is idempotent");
}

static void test_inspect(void)
{
	const char *roots[] = { img_dir, NULL };
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	util_err err = { 0 };
	int r;

	/* good images */
	qimg("create", "-q", "-f", "qcow2", "--", P("img/good.qcow2"), "64M", NULL);
	qimg("create", "-q", "-f", "raw", "--", P("img/base.raw"), "1M", NULL);
	r = stor_inspect(P("img/good.qcow2"), "qcow2", NULL, &info, &err);
	is_int(r, 0, "good qcow2 accepted");
	is_str(info.format, "qcow2", "qcow2: format");
	is_int(info.virtual_size, 64 << 20, "qcow2: virtual size");
	ok(info.actual_size > 0, "qcow2: actual size");
	ok(info.backing_file == NULL && !info.backing_format[0], "qcow2: no backing file");
	is_int(info.chain_depth, 0, "qcow2: chain depth 0");
	ok(info.chain && info.chain[0] && !info.chain[1], "qcow2: chain holds the image only");
	ok(!info.has_data_file, "qcow2: no data file");
	stor_image_info_free(&info);
	stor_image_info_free(&info);
	ok(info.chain == NULL, "info free is idempotent");

	r = stor_inspect(P("img/base.raw"), "raw", NULL, &info, &err);
	is_int(r, 0, "good raw accepted");
	is_str(info.format, "raw", "raw: format");
	is_int(info.virtual_size, 1 << 20, "raw: virtual size");
	stor_image_info_free(&info);

	r = stor_inspect(P("img/good.qcow2"), NULL, NULL, &info, &err);
	ok(r == 0 && !strcmp(info.format, "qcow2"), "no declared format: probed qcow2 accepted");
	stor_image_info_free(&info);

	/* format confusion */
	qimg("create", "-q", "-f", "qcow2", "--", P("img/fake.raw"), "1M", NULL);
	inspect_refused(P("img/fake.raw"), "raw", NULL, -EMEDIUMTYPE,
	                "contains a qcow2 image but was declared raw",
	                "raw declared, qcow2 content");
	inspect_refused(P("img/base.raw"), "qcow2", NULL, -EMEDIUMTYPE,
	                "contains a raw image but was declared qcow2",
	                "qcow2 declared, raw content");
	inspect_refused(P("img/good.qcow2"), "vmdk", NULL, -ENOTSUP, "use only qcow2 and raw",
	                "declared vmdk");

	/* backing files */
	qimg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", P("img/base.raw"), "--",
	     P("img/over.qcow2"), NULL);
	r = stor_inspect(P("img/over.qcow2"), "qcow2", roots, &info, &err);
	is_int(r, 0, "overlay with a backing file inside the roots accepted");
	is_str(info.backing_file, P("img/base.raw"), "overlay: backing file");
	is_str(info.backing_format, "raw", "overlay: backing format");
	is_int(info.chain_depth, 1, "overlay: chain depth 1");
	ok(info.chain && info.chain[1] && strstr(info.chain[1], "/img/base.raw") && !info.chain[2],
	   "overlay: chain lists the backing file");
	if (r < 0)
		diag("%s", err.msg);
	stor_image_info_free(&info);
	inspect_refused(P("img/over.qcow2"), "qcow2", NULL, -EPERM, "has a backing file",
	                "backing file refused by default");

	qimg("create", "-q", "-f", "raw", "--", P("out/base.raw"), "1M", NULL);
	qimg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", P("out/base.raw"), "--",
	     P("img/escape.qcow2"), NULL);
	inspect_refused(P("img/escape.qcow2"), "qcow2", roots, -EACCES,
	                "is not under an allowed folder", "backing file outside the roots");

	/* relative backing names resolve next to the image */
	qimg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", "base.raw", "--",
	     P("img/relative.qcow2"), NULL);
	r = stor_inspect(P("img/relative.qcow2"), "qcow2", roots, &info, &err);
	ok(r == 0 && util_streq(info.backing_file, "base.raw") && info.chain_depth == 1,
	   "relative backing name inside the roots accepted");
	stor_image_info_free(&info);

	{
		/* qemu-img --backing-chain would connect here: check that
		 * stor_inspect never does. */
		int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
			                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t alen = sizeof(a);
		_cleanup_free_ char *url = NULL;

		if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0 ||
		    getsockname(s, (struct sockaddr *)&a, &alen) < 0)
			abort();
		url = util_xasprintf("nbd://127.0.0.1:%d/x", ntohs(a.sin_port));
		qimg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", P("img/base.raw"), "--",
		     P("img/nbd.qcow2"), NULL);
		qimg("rebase", "-q", "-u", "-f", "qcow2", "-F", "raw", "-b", url, "--",
		     P("img/nbd.qcow2"), NULL);
		inspect_refused(P("img/nbd.qcow2"), "qcow2", roots, -EINVAL, "'nbd:' pseudo-path",
		                "nbd:// backing file");
		ok(accept(s, NULL, NULL) < 0 && errno == EAGAIN,
		   "nbd:// backing file: no connection was attempted");
		close(s);
	}

	qimg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", P("img/base.raw"), "--",
	     P("img/nofmt.qcow2"), NULL);
	ok(patch4(P("img/nofmt.qcow2"), (const unsigned char[]){ 0xe2, 0x79, 0x2a, 0xca },
	          (const unsigned char[]){ 0x12, 0x34, 0x56, 0x78 }) == 0,
	   "backing format extension removed by hand");
	inspect_refused(P("img/nofmt.qcow2"), "qcow2", roots, -EPERM, "has no recorded format",
	                "backing file without a recorded format");

	qimg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", P("img/base.raw"), "--",
	     P("img/wrongfmt.qcow2"), NULL);
	qimg("rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", P("img/base.raw"), "--",
	     P("img/wrongfmt.qcow2"), NULL);
	inspect_refused(P("img/wrongfmt.qcow2"), "qcow2", roots, -EMEDIUMTYPE,
	                "contains a raw image but is recorded as qcow2",
	                "backing file not of its recorded format");
	qimg("create", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", P("img/wrongfmt.qcow2"),
	     "--", P("img/wrongtop.qcow2"), "1M", NULL);
	{
		_cleanup_free_ char *want = util_xasprintf(
		        "backing file '%s' of '%s' contains a raw image but is recorded as qcow2",
		        P("img/base.raw"), P("img/wrongfmt.qcow2"));

		inspect_refused(P("img/wrongtop.qcow2"), "qcow2", roots, -EMEDIUMTYPE, want,
		                "format mismatch further down names the file recording it");
	}

	/* external data file (qemu-img create resolves data_file against its
	 * working directory, hence the absolute name) */
	{
		const char *df = P("img/data.raw");
		_cleanup_free_ char *opt = util_xasprintf("data_file=%s", df);
		_cleanup_free_ char *want = util_xasprintf("has an external data file ('%s')", df);

		qimg("create", "-q", "-f", "qcow2", "-o", opt, "--", P("img/datafile.qcow2"), "1M",
		     NULL);
		ok(exists(df), "data file made next to the image");
		inspect_refused(P("img/datafile.qcow2"), "qcow2", roots, -EPERM, want,
		                "external data file");
	}

	/* chain depth: base + 9 overlays is one too deep */
	qimg("create", "-q", "-f", "raw", "--", P("img/c0"), "1M", NULL);
	for (int i = 1; i <= STOR_MAX_BACKING_DEPTH + 1; i++)
		qimg("create", "-q", "-f", "qcow2", "-F", i == 1 ? "raw" : "qcow2", "-b",
		     P("img/c%d", i - 1), "--", P("img/c%d", i), NULL);
	r = stor_inspect(P("img/c%d", STOR_MAX_BACKING_DEPTH), "qcow2", roots, &info, &err);
	ok(r == 0 && info.chain_depth == STOR_MAX_BACKING_DEPTH &&
	           util_strv_len(info.chain) == STOR_MAX_BACKING_DEPTH + 1,
	   "chain of exactly %d backing files accepted", STOR_MAX_BACKING_DEPTH);
	if (r < 0)
		diag("%s", err.msg);
	stor_image_info_free(&info);
	inspect_refused(P("img/c%d", STOR_MAX_BACKING_DEPTH + 1), "qcow2", roots, -ELOOP,
	                "is deeper than 8 files", "chain one deeper than the limit");

	/* loops: a -> b -> a, and an image that is its own backing file */
	qimg("create", "-q", "-f", "qcow2", "--", P("img/b.qcow2"), "1M", NULL);
	qimg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", P("img/b.qcow2"), "--",
	     P("img/a.qcow2"), NULL);
	qimg("rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", P("img/a.qcow2"), "--",
	     P("img/b.qcow2"), NULL);
	inspect_refused(P("img/a.qcow2"), "qcow2", roots, -ELOOP, "loops", "backing loop a->b->a");
	qimg("create", "-q", "-f", "qcow2", "--", P("img/self.qcow2"), "1M", NULL);
	qimg("rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", "self.qcow2", "--",
	     P("img/self.qcow2"), NULL);
	inspect_refused(P("img/self.qcow2"), "qcow2", roots, -ELOOP, "loops",
	                "image backed by itself");

	/* VMDKs and other formats */
	qimg("create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "--",
	     P("img/multi.vmdk"), "5G", NULL);
	inspect_refused(P("img/multi.vmdk"), "qcow2", roots, -EPERM, "VMDK made of 3 extent files",
	                "multi-extent VMDK");
	qimg("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "--",
	     P("img/flat.vmdk"), "1M", NULL);
	inspect_refused(P("img/flat.vmdk"), "raw", roots, -EPERM,
	                "VMDK whose data lives in another file", "monolithicFlat VMDK");
	{
		/* the classic: a descriptor whose extent is a host file */
		write_file(P("img/shadow.vmdk"),
		           "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
		           "parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
		           "RW 8 FLAT \"/etc/passwd\" 0\n");
		inspect_refused(P("img/shadow.vmdk"), "raw", roots, -EPERM, "'/etc/passwd'",
		                "VMDK extent pointing at a host file");
	}
	{
		/* a descriptor declared raw whose extent is a FIFO: qemu-img
		 * probing it would open the FIFO and wait there; the head of
		 * the file is enough to refuse it, and nothing opens the FIFO */
		const char *fifo = P("img/extent.fifo");
		_cleanup_free_ char *desc = util_xasprintf(
		        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
		        "createType=\"monolithicFlat\"\nRW 8 FLAT \"%s\" 0\n",
		        fifo);
		_cleanup_free_ char *want =
		        util_xasprintf("VMDK whose data lives in another file ('%s')", fifo);
		int wfd;

		ok(mkfifo(fifo, 0600) == 0, "a FIFO for an extent");
		write_file(P("img/evil.img"), desc);
		inspect_refused(P("img/evil.img"), "raw", roots, -EPERM, want,
		                "VMDK descriptor declared raw, its extent a FIFO");
		inspect_refused(P("img/evil.img"), "qcow2", roots, -EPERM, want,
		                "the same declared qcow2");
		wfd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		ok(wfd < 0 && errno == ENXIO, "... and no process has the FIFO open");
		if (wfd >= 0)
			close(wfd);
		/* a qcow2 whose external data file became a FIFO */
		qimg("create", "-q", "-f", "raw", "--", P("img/df2.raw"), "1M", NULL);
		{
			_cleanup_free_ char *opt = util_xasprintf("data_file=%s", P("img/df2.raw"));
			_cleanup_free_ char *want2 = util_xasprintf(
			        "has an external data file ('%s')", P("img/df2.raw"));

			qimg("create", "-q", "-f", "qcow2", "-o", opt, "--", P("img/df2.qcow2"),
			     "1M", NULL);
			unlink(P("img/df2.raw"));
			ok(mkfifo(P("img/df2.raw"), 0600) == 0, "its data file replaced by a FIFO");
			inspect_refused(P("img/df2.qcow2"), "qcow2", roots, -EPERM, want2,
			                "external data file that is a FIFO");
			inspect_refused(P("img/df2.qcow2"), "raw", roots, -EPERM, want2,
			                "... declared raw too");
		}
		/* the top file swapped for a FIFO is never waited on */
		inspect_refused(fifo, "raw", roots, -EINVAL, "is not a regular file",
		                "a FIFO as the image");
	}
	qimg("create", "-q", "-f", "vmdk", "--", P("img/sparse.vmdk"), "1M", NULL);
	inspect_refused(P("img/sparse.vmdk"), NULL, roots, -ENOTSUP,
	                "is a vmdk image; qvm's VMs use only qcow2 and raw: convert it with "
	                "qemu-img convert -O qcow2",
	                "single-file VMDK unsupported");
	qimg("create", "-q", "-f", "vdi", "--", P("img/disk.vdi"), "1M", NULL);
	inspect_refused(P("img/disk.vdi"), "qcow2", roots, -ENOTSUP,
	                "is a vdi image, not qcow2 as declared; qvm's VMs use only qcow2 and raw",
	                "vdi unsupported");
	qimg("create", "-q", "-f", "vhdx", "--", P("img/disk.vhdx"), "1M", NULL);
	inspect_refused(P("img/disk.vhdx"), NULL, roots, -ENOTSUP,
	                "is a vhdx image; qvm's VMs use only qcow2 and raw", "vhdx unsupported");

	/* the top file itself */
	inspect_refused("img/good.qcow2", "qcow2", NULL, -EINVAL, "is not absolute",
	                "relative image path");
	inspect_refused("json:{\"driver\":\"qcow2\"}", "qcow2", NULL, -EINVAL, "pseudo-path",
	                "json: image path");
	inspect_refused(P("img/nothing.qcow2"), "qcow2", NULL, -ENOENT, "does not exist",
	                "missing image");
	inspect_refused(P("img/sub"), "qcow2", NULL, -EISDIR, "is a directory", "directory image");

	/* names qemu would otherwise parse */
	qimg("create", "-q", "-f", "qcow2", "--", P("img/a,b=c.qcow2"), "1M", NULL);
	r = stor_inspect(P("img/a,b=c.qcow2"), "qcow2", NULL, &info, &err);
	ok(r == 0 && info.virtual_size == 1 << 20, "image name with a comma inspected");
	stor_image_info_free(&info);
	write_file(P("img/garbage.qcow2"), "QFI\xfb garbage");
	inspect_refused(P("img/garbage.qcow2"), "qcow2", NULL, -EIO, "cannot inspect",
	                "truncated qcow2 header: qemu-img's error passed on");

	/* a stand-in qemu-img reporting the limits it runs under */
	write_file(P("limits-qemu-img"),
	           "#!/bin/sh\n"
	           "printf '{\"format\":\"raw\",\"virtual-size\":%s,\"actual-size\":%s}' "
	           "\"$(ulimit -v)\" \"$(ulimit -t)\"\n");
	chmod(P("limits-qemu-img"), 0700);
	setenv("QVM_QEMU_IMG", P("limits-qemu-img"), 1);
	r = stor_inspect(P("img/base.raw"), "raw", NULL, &info, &err);
	is_int(r, 0, "stand-in qemu-img ran");
	is_int(info.virtual_size, 1 << 20, "qemu-img info runs with a 1 GiB address-space limit");
	is_int(info.actual_size, 10, "qemu-img info runs with a 10 s CPU limit");
	stor_image_info_free(&info);
	{
		/* every qemu-img info names the format: a stand-in that writes
		 * its arguments down and answers as qemu-img would */
		_cleanup_free_ char *script = util_xasprintf("#!/bin/sh\necho \"$*\" >>%s\n"
		                                             "exec qemu-img \"$@\"\n",
		                                             P("args.log"));
		_cleanup_free_ char *log = NULL, *want = NULL;

		write_file(P("log-qemu-img"), script);
		chmod(P("log-qemu-img"), 0700);
		setenv("QVM_QEMU_IMG", P("log-qemu-img"), 1);
		r = stor_inspect(P("img/over.qcow2"), "qcow2", roots, &info, &err);
		is_int(r, 0, "inspection through a logging qemu-img");
		stor_image_info_free(&info);
		r = stor_inspect(P("img/good.qcow2"), NULL, NULL, &info, &err);
		is_int(r, 0, "... of a file of no declared format too");
		stor_image_info_free(&info);
		ok(util_read_file(P("args.log"), 1 << 16, &log, NULL, &err) == 0, "its log");
		want = util_xasprintf("info -f qcow2 --output=json -- %s\n"
		                      "info -f raw --output=json -- %s\n"
		                      "info -f qcow2 --output=json -- %s\n",
		                      P("img/over.qcow2"), P("img/base.raw"), P("img/good.qcow2"));
		is_str(log, want,
		       "qemu-img info ran with -f: the declared, the recorded, the probed format");
	}
	write_file(P("junk-qemu-img"), "#!/bin/sh\necho 'this is not json'\n");
	chmod(P("junk-qemu-img"), 0700);
	setenv("QVM_QEMU_IMG", P("junk-qemu-img"), 1);
	inspect_refused(P("img/base.raw"), "raw", NULL, -EPROTO, "printed no JSON object",
	                "qemu-img output that is not JSON");
	write_file(P("odd-qemu-img"),
	           "#!/bin/sh\necho '{\"format\":\"raw\\u001b[2J\",\"virtual-size\":1}'\n");
	chmod(P("odd-qemu-img"), 0700);
	setenv("QVM_QEMU_IMG", P("odd-qemu-img"), 1);
	inspect_refused(P("img/base.raw"), "raw", NULL, -EPROTO, "reported an odd format",
	                "format name with an escape sequence");

	setenv("QVM_QEMU_IMG", P("no-such-qemu-img"), 1);
	inspect_refused(P("img/good.qcow2"), "qcow2", NULL, -ENOENT, "no-such-qemu-img",
	                "QVM_QEMU_IMG names the program");
	unsetenv("QVM_QEMU_IMG");
}

/* stor_inspect_before_open() describes a file whose head says all by
 * itself: the same answer as qemu-img info, without running it. */
static void same_info(const char *path, const char *fmt, const char *const *roots, const char *name)
{
	_cleanup_stor_image_info_ stor_image_info a = { 0 }, b = { 0 };
	util_err err = { 0 };
	bool same;

	unsetenv("QVM_QEMU_IMG");
	if (stor_inspect(path, fmt, roots, &a, &err) < 0) {
		ok(0, "%s: qemu-img's view: %s", name, err.msg);
		return;
	}
	setenv("QVM_QEMU_IMG", P("refusing-qemu-img"), 1);
	is_int(stor_inspect_before_open(path, fmt, roots, &b, &err), 0, "%s: described", name);
	same = !strcmp(a.format, b.format) && a.virtual_size == b.virtual_size &&
	       a.actual_size == b.actual_size && a.chain_depth == b.chain_depth &&
	       util_streq(a.backing_file, b.backing_file) &&
	       !strcmp(a.backing_format, b.backing_format) && b.chain &&
	       util_streq(a.chain[0], b.chain[0]) && util_streq(a.chain[1], b.chain[1]);
	ok(same, "%s: as qemu-img info says (%s %" PRIu64 ")", name, b.format, b.virtual_size);
	unsetenv("QVM_QEMU_IMG");
}

static void test_inspect_before_open(void)
{
	const char *roots[] = { img_dir, NULL };
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	_cleanup_free_ char *log = NULL, *want = NULL;
	_cleanup_free_ char *script = util_xasprintf("#!/bin/sh\necho \"$*\" >>%s\n"
	                                             "exec qemu-img \"$@\"\n",
	                                             P("open-args.log"));
	util_err err = { 0 };
	int r;

	/* a qemu-img that must not run */
	write_file(P("refusing-qemu-img"), "#!/bin/sh\necho 'qemu-img: ran' >&2\nexit 1\n");
	chmod(P("refusing-qemu-img"), 0700);
	qimg("create", "-q", "-f", "qcow2", "-o", "compat=0.10", "--", P("img/v2.qcow2"), "3M",
	     NULL);
	qimg("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=2M", "--",
	     P("img/lazy.qcow2"), "5G", NULL);
	qimg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", P("img/v2.qcow2"), "--",
	     P("img/over-v2.qcow2"), NULL);
	same_info(P("img/good.qcow2"), "qcow2", NULL, "qcow2 v3");
	same_info(P("img/v2.qcow2"), "qcow2", NULL, "qcow2 v2");
	same_info(P("img/lazy.qcow2"), "qcow2", NULL,
	          "qcow2 with a compatible feature, 2M clusters");
	same_info(P("img/base.raw"), "raw", NULL, "raw");
	same_info(P("img/over.qcow2"), "qcow2", roots, "overlay on raw");
	same_info(P("img/over-v2.qcow2"), "qcow2", roots, "overlay on qcow2 v2");

	/* what the head cannot say goes to qemu-img: a relative backing name,
	 * a dirty image (an incompatible feature bit) */
	qimg("create", "-q", "-f", "qcow2", "--", P("img/dirty.qcow2"), "1M", NULL);
	{
		unsigned char bit = 1; /* incompatible_features' last byte: dirty */
		int fd = open(P("img/dirty.qcow2"), O_RDWR | O_CLOEXEC);

		ok(fd >= 0 && pwrite(fd, &bit, 1, 79) == 1, "dirty bit set by hand");
		if (fd >= 0)
			close(fd);
	}
	write_file(P("open-qemu-img"), script);
	chmod(P("open-qemu-img"), 0700);
	setenv("QVM_QEMU_IMG", P("open-qemu-img"), 1);
	r = stor_inspect_before_open(P("img/relative.qcow2"), "qcow2", roots, &info, &err);
	ok(r == 0 && util_streq(info.backing_file, "base.raw"), "relative backing name: accepted");
	stor_image_info_free(&info);
	r = stor_inspect_before_open(P("img/dirty.qcow2"), "qcow2", NULL, &info, &err);
	is_int(r, 0, "dirty qcow2: accepted");
	stor_image_info_free(&info);
	unsetenv("QVM_QEMU_IMG");
	ok(util_read_file(P("open-args.log"), 1 << 16, &log, NULL, &err) == 0, "its log");
	want = util_xasprintf("info -f qcow2 --output=json -- %s\n"
	                      "info -f qcow2 --output=json -- %s\n",
	                      P("img/relative.qcow2"), P("img/dirty.qcow2"));
	is_str(log, want,
	       "qemu-img info ran for those two files only (not for the raw base of the first)");
}

static void test_create(void)
{
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	util_err err = { 0 };
	json_t *j;
	int r;

	umask(0); /* the modes below must not depend on it */
	qimg("create", "-q", "-f", "qcow2", "--", P("img/tmpl.qcow2"), "32M", NULL);

	r = stor_create_overlay(P("img/vm1.qcow2"), P("img/tmpl.qcow2"), "qcow2", &err);
	is_int(r, 0, "overlay created");
	if (r < 0)
		diag("%s", err.msg);
	is_int(mode_of(P("img/vm1.qcow2")), 0600, "overlay: mode 0600 with umask 0");
	j = qinfo(P("img/vm1.qcow2"), "qcow2");
	is_str(json_string_value(json_object_get(j, "backing-filename")), P("img/tmpl.qcow2"),
	       "overlay: backing file recorded");
	is_str(json_string_value(json_object_get(j, "backing-filename-format")), "qcow2",
	       "overlay: backing format recorded");
	is_int(json_integer_value(json_object_get(j, "virtual-size")), 32 << 20,
	       "overlay: size of its backing file");
	json_decref(j);
	is_int(temp_files(img_dir), 0, "overlay: no temporary file left");

	r = stor_create_overlay(P("img/vm1.qcow2"), P("img/base.raw"), "raw", &err);
	is_int(r, -EEXIST, "overlay over an existing file refused");
	has(&err, "already exists", "existing overlay");
	j = qinfo(P("img/vm1.qcow2"), "qcow2");
	is_str(json_string_value(json_object_get(j, "backing-filename")), P("img/tmpl.qcow2"),
	       "existing overlay untouched");
	json_decref(j);

	/* a backing name full of option syntax is stored verbatim */
	qimg("create", "-q", "-f", "raw", "--", P("img/b,backing_fmt=qcow2,data_file=x.raw"), "1M",
	     NULL);
	r = stor_create_overlay(P("img/comma.qcow2"), P("img/b,backing_fmt=qcow2,data_file=x.raw"),
	                        "raw", &err);
	is_int(r, 0, "overlay on a backing file with commas created");
	r = stor_inspect(P("img/comma.qcow2"), "qcow2", (const char *const[]){ img_dir, NULL },
	                 &info, &err);
	is_int(r, 0, "comma overlay passes inspection (no data file, raw backing)");
	is_str(info.backing_file, P("img/b,backing_fmt=qcow2,data_file=x.raw"),
	       "comma overlay: backing name stored verbatim");
	is_str(info.backing_format, "raw", "comma overlay: backing format not injected");
	stor_image_info_free(&info);

	r = stor_create_overlay(P("img/vm2.qcow2"), P("img/missing.qcow2"), "qcow2", &err);
	ok(r < 0, "overlay on a missing backing file refused");
	has(&err, "does not exist", "missing backing");
	ok(!exists(P("img/vm2.qcow2")), "missing backing: no file left");
	is_int(temp_files(img_dir), 0, "missing backing: no temporary file left");

	r = stor_create_overlay(P("img/vm3.qcow2"), P("img/base.raw"), "qcow2", &err);
	is_int(r, -EIO, "overlay with the wrong backing format: qemu-img fails");
	has(&err, "img/vm3.qcow2", "qemu-img failure names the target");
	ok(!strstr(err.msg, ".qvm-create-"), "qemu-img failure does not name the temporary file");
	ok(!exists(P("img/vm3.qcow2")), "qemu-img failure: no file left");
	is_int(temp_files(img_dir), 0, "qemu-img failure: no temporary file left");

	r = stor_create_overlay(P("img/vm4.qcow2"), "base.raw", "raw", &err);
	ok(r == -EINVAL && strstr(err.msg, "is not absolute"), "relative backing path refused");
	r = stor_create_overlay(P("img/vm4.qcow2"), "json:{}", "raw", &err);
	ok(r == -EINVAL && strstr(err.msg, "pseudo-path"), "json: backing path refused");
	r = stor_create_overlay(P("img/vm4.qcow2"), P("img/disk.vdi"), "vdi", &err);
	ok(r == -ENOTSUP, "vdi backing format refused");
	r = stor_create_overlay("vm4.qcow2", P("img/base.raw"), "raw", &err);
	ok(r == -EINVAL && strstr(err.msg, "is not absolute"), "relative overlay path refused");
	r = stor_create_overlay(P("nofolder/vm4.qcow2"), P("img/base.raw"), "raw", &err);
	ok(r < 0 && strstr(err.msg, "cannot create"), "overlay in a missing folder refused");
	ok(!exists(P("img/vm4.qcow2")), "refused overlays: no file left");

	r = stor_create_blank(P("img/blank.qcow2"), "qcow2", 64 << 20, &err);
	is_int(r, 0, "blank disk created");
	is_int(mode_of(P("img/blank.qcow2")), 0600, "blank: mode 0600 with umask 0");
	j = qinfo(P("img/blank.qcow2"), "qcow2");
	is_int(json_integer_value(json_object_get(j, "virtual-size")), 64 << 20,
	       "blank: virtual size 64M");
	ok(json_object_get(j, "backing-filename") == NULL, "blank: no backing file");
	json_decref(j);
	r = stor_create_blank(P("img/blank.raw"), "raw", 32 << 20, &err);
	is_int(r, 0, "blank raw disk created");
	{
		struct stat st;

		ok(stat(P("img/blank.raw"), &st) == 0 && st.st_size == 32 << 20 &&
		           (uint64_t)st.st_blocks * 512 < (1u << 20),
		   "blank raw: a sparse file of the full size");
	}
	is_int(mode_of(P("img/blank.raw")), 0600, "blank raw: mode 0600");
	j = qinfo(P("img/blank.raw"), "raw");
	is_str(json_string_value(json_object_get(j, "format")), "raw",
	       "blank raw: qemu-img reads raw");
	json_decref(j);
	is_int(stor_create_blank(P("img/blank.vdi"), "vdi", 1 << 20, &err), -ENOTSUP,
	       "blank of another format refused");
	ok(!exists(P("img/blank.vdi")), "... nothing made");
	is_int(stor_create_blank(P("img/blank.qcow2"), "qcow2", 1 << 20, &err), -EEXIST,
	       "blank over an existing file refused");
	is_int(stor_create_blank(P("img/odd.qcow2"), "qcow2", 1000, &err), -EINVAL,
	       "size not a multiple of 512 refused");
	is_int(stor_create_blank(P("img/zero.qcow2"), "qcow2", 0, &err), -EINVAL, "size 0 refused");
	ok(stor_create_blank(P("img/huge.qcow2"), "qcow2", UINT64_MAX - 511, &err) < 0,
	   "absurd size refused by qemu-img");
	ok(!exists(P("img/huge.qcow2")) && temp_files(img_dir) == 0, "absurd size: nothing left");

	/* a qemu-img that writes its target and then fails */
	write_file(P("fake-qemu-img"), "#!/bin/sh\n"
	                               "while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n"
	                               "echo half-written > \"$2\"\n"
	                               "echo 'qemu-img: disk full' >&2\n"
	                               "exit 1\n");
	chmod(P("fake-qemu-img"), 0700);
	setenv("QVM_QEMU_IMG", P("fake-qemu-img"), 1);
	r = stor_create_blank(P("img/fail.qcow2"), "qcow2", 1 << 20, &err);
	ok(r == -EIO && strstr(err.msg, "disk full"), "failing qemu-img: its error is passed on");
	if (r != -EIO)
		diag("%d %s", r, err.msg);
	ok(!exists(P("img/fail.qcow2")), "failing qemu-img: no file left");
	is_int(temp_files(img_dir), 0, "failing qemu-img: half-written temporary file removed");
	setenv("QVM_QEMU_IMG", P("no-such-qemu-img"), 1);
	r = stor_create_blank(P("img/fail.qcow2"), "qcow2", 1 << 20, &err);
	ok(r < 0 && !exists(P("img/fail.qcow2")) && temp_files(img_dir) == 0,
	   "missing qemu-img: refused, nothing left");
	unsetenv("QVM_QEMU_IMG");
	umask(022);
}

static void test_remove(void)
{
	util_err err = { 0 };
	char buf[4096];
	bool all_zero = true, kept = false;
	int fd, r;

	is_int(stor_remove_disk(P("img/never-was.qcow2"), false, &err), 0,
	       "removing a missing disk is fine");

	/* a sparse file with data at both ends */
	fd = open(P("img/wipe.raw"), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	memset(buf, 'x', sizeof(buf));
	if (fd < 0 || pwrite(fd, buf, sizeof(buf), 0) != sizeof(buf) ||
	    pwrite(fd, buf, sizeof(buf), 16 << 20) != sizeof(buf))
		abort();
	close(fd);
	/* keep the inode reachable to look at it after the unlink */
	fd = open(P("img/wipe.raw"), O_RDONLY | O_CLOEXEC);
	r = stor_remove_disk(P("img/wipe.raw"), true, &err);
	is_int(r, 0, "wipe and remove");
	ok(!exists(P("img/wipe.raw")), "wiped file is gone");
	for (off_t off = 0; off < (16 << 20) + 4096; off += sizeof(buf)) {
		if (pread(fd, buf, sizeof(buf), off) != sizeof(buf))
			abort();
		for (size_t i = 0; i < sizeof(buf); i++)
			all_zero &= buf[i] == 0;
	}
	ok(all_zero, "wiped file's data was overwritten with zeros first");
	close(fd);

	write_file(P("img/plain.raw"), "keep me");
	fd = open(P("img/plain.raw"), O_RDONLY | O_CLOEXEC);
	is_int(stor_remove_disk(P("img/plain.raw"), false, &err), 0, "remove without wipe");
	kept = pread(fd, buf, 7, 0) == 7 && !memcmp(buf, "keep me", 7);
	ok(!exists(P("img/plain.raw")) && kept, "without wipe: unlinked, data not touched");
	close(fd);

	write_file(P("img/linked.raw"), "shared");
	if (link(P("img/linked.raw"), P("img/linked2.raw")) < 0)
		abort();
	r = stor_remove_disk(P("img/linked.raw"), true, &err);
	is_int(r, -EMLINK, "wipe of a file with other hard links refused");
	has(&err, "other hard links", "hard links");
	ok(exists(P("img/linked.raw")), "hard-linked file still there");

	r = stor_remove_disk(P("img/link.raw"), true, &err);
	is_int(r, -EINVAL, "symlink not removed");
	has(&err, "symbolic link", "symlink");
	ok(exists(P("img/good.raw")), "symlink target untouched");
	is_int(stor_remove_disk(P("img/sub"), false, &err), -EINVAL, "directory not removed");
	is_int(stor_remove_disk("img/good.raw", false, &err), -EINVAL, "relative path refused");
}

/* resize and internal snapshots of a disk no QEMU has open */
static void test_disk_ops(void)
{
	util_err err = { 0 };
	json_t *j = NULL;
	const char *d = P("img/ops,disk.qcow2"); /* a comma: --image-opts escaping */
	int r;

	r = stor_create_blank(d, "qcow2", 8 << 20, &err);
	is_int(r, 0, "ops: blank disk with a comma in its name");
	is_int(stor_resize(d, "qcow2", 16 << 20, false, &err), 0, "resize: grow to 16M");
	r = stor_disk_info(d, "qcow2", &j, &err);
	is_int(r, 0, "disk info");
	is_int(json_integer_value(json_object_get(j, "virtual-size")), 16 << 20, "resize: 16M now");
	json_decref(j);
	r = stor_resize(d, "qcow2", 4 << 20, false, &err);
	ok(r < 0 && strstr(err.msg, "cannot resize"),
	   "resize: shrink without --shrink refused by qemu-img");
	is_int(stor_resize(d, "qcow2", 4 << 20, true, &err), 0, "resize: shrink with --shrink");
	ok(stor_resize("rel.qcow2", "qcow2", 1 << 20, false, &err) == -EINVAL,
	   "resize: relative path refused");
	ok(stor_resize(d, "vdi", 1 << 20, false, &err) == -ENOTSUP,
	   "resize: unknown format refused");

	is_int(stor_snapshot(d, STOR_SNAP_CREATE, "s1", &err), 0, "snapshot: create s1");
	is_int(stor_snapshot(d, STOR_SNAP_CREATE, "s2", &err), 0, "snapshot: create s2");
	r = stor_disk_info(d, "qcow2", &j, &err);
	ok(r == 0 && json_array_size(json_object_get(j, "snapshots")) == 2, "snapshot: two listed");
	is_str(json_string_value(
	               json_object_get(json_array_get(json_object_get(j, "snapshots"), 0), "name")),
	       "s1", "snapshot: the first is s1");
	json_decref(j);
	is_int(stor_snapshot(d, STOR_SNAP_APPLY, "s1", &err), 0, "snapshot: revert to s1");
	is_int(stor_snapshot(d, STOR_SNAP_DELETE, "s2", &err), 0, "snapshot: delete s2");
	r = stor_snapshot(d, STOR_SNAP_DELETE, "s2", &err);
	ok(r < 0 && strstr(err.msg, "cannot delete a snapshot of"),
	   "snapshot: deleting it again fails: %s", err.msg);
	r = stor_disk_info(d, "qcow2", &j, &err);
	ok(r == 0 && json_array_size(json_object_get(j, "snapshots")) == 1, "snapshot: one left");
	json_decref(j);
	stor_remove_disk(d, false, &err);
}

/* lc_check_vm_files(): what start checks again, on files swapped after
 * create (the storage checks above, applied to a definition). */
static void check_refused(const lc_vmdef *def, const char *const *roots, const char *needle,
                          const char *name)
{
	util_err err = { 0 };
	int r = lc_check_vm_files(P("qvm"), 1, def, roots, &err);

	ok(r < 0, "%s: refused (%d)", name, r);
	has(&err, needle, name);
}

static void test_recheck(void)
{
	const char *roots[] = { img_dir, NULL };
	const char *base = P("img/rc-base.qcow2"), *top = P("qvm/vms/1/disk0.qcow2");
	lc_disk d = { .id = 0,
		      .path = (char *)top,
		      .format = "qcow2",
		      .backing = (char *)base,
		      .backing_format = "qcow2",
		      .owned = true };
	lc_vmdef def = { .name = "rc", .disks = &d, .n_disks = 1 };
	util_err err = { 0 };

	unsetenv("QVM_QEMU_IMG");
	if (util_mkdir_p(P("qvm/vms/1"), 0700, &err) < 0 ||
	    qimg("create", "-q", "-f", "qcow2", base, "16M", NULL) != 0)
		abort();
	is_int(lc_check_vm_files(P("qvm"), 1, &def, roots, &err), 0,
	       "an owned overlay still to be made: its base alone is checked");
	is_int(stor_create_overlay(top, base, "qcow2", &err), 0, "the overlay made");
	is_int(lc_check_vm_files(P("qvm"), 1, &def, roots, &err), 0, "what create made passes");
	is_int(lc_check_disk_files(P("qvm"), 1, &d, roots, &err), 0, "... disk by disk too");
	check_refused(&def, NULL, "disk 0: base image: path '", "no roots: only ROOT/images");

	/* the base swapped for a data-file qcow2, one with a backing file */
	{
		_cleanup_free_ char *o = util_xasprintf("data_file=%s", P("out/rc-data.raw"));

		qimg("create", "-q", "-f", "qcow2", "-o", o, P("img/rc-new"), "16M", NULL);
	}
	rename(P("img/rc-new"), base);
	check_refused(&def, roots, "disk 0: base image: '", "base with a data file");
	check_refused(&def, roots, "has an external data file", "... why");
	qimg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", P("out/secret.raw"), P("img/rc-new"),
	     "16M", NULL);
	rename(P("img/rc-new"), base);
	check_refused(&def, roots, "has a backing file", "base with a backing file");
	/* a raw base that now carries a qcow2 header */
	qimg("create", "-q", "-f", "qcow2", P("img/rc-new"), "16M", NULL);
	rename(P("img/rc-new"), base);
	d.backing_format = "raw";
	check_refused(&def, roots, "contains a qcow2 image but was declared raw",
	              "raw base with a qcow2 header");
	d.backing_format = "qcow2";
	is_int(lc_check_vm_files(P("qvm"), 1, &def, roots, &err), 0,
	       "a plain qcow2 base again passes");

	/* the overlay: recording another backing file, a link, a data file */
	qimg("create", "-q", "-f", "qcow2", P("img/rc-other.qcow2"), "16M", NULL);
	qimg("rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", P("img/rc-other.qcow2"), top,
	     NULL);
	check_refused(&def, roots, "no longer records '", "overlay naming another backing file");
	rename(top, P("qvm/vms/1/real.qcow2"));
	if (symlink(P("qvm/vms/1/real.qcow2"), top) < 0)
		abort();
	check_refused(&def, roots, "disk 0: '", "overlay replaced by a link");
	check_refused(&def, roots, "is a symbolic link, not the file qvm made", "... why");
	unlink(top);
	rename(P("qvm/vms/1/real.qcow2"), top);
	d.backing = (char *)base;
	d.backing_format = "qcow2";
	qimg("rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", base, top, NULL);
	if (symlink(P("qvm"), P("qvm-link")) < 0)
		abort();
	d.path = (char *)P("qvm-link/vms/1/disk0.qcow2");
	is_int(lc_check_vm_files(P("qvm-link"), 1, &def, roots, &err), 0,
	       "a qvm root given through a link is the administrator's: its disks pass");
	d.path = (char *)top;
	unlink(top);
	{
		_cleanup_free_ char *o = util_xasprintf("data_file=%s", P("out/rc-data2.raw"));

		qimg("create", "-q", "-f", "qcow2", "-o", o, top, "16M", NULL);
	}
	d.backing = NULL;
	d.backing_format = NULL;
	check_refused(&def, roots, "has an external data file", "overlay with a data file");
	/* a raw disk holds the guest's data, which may look like anything */
	unlink(top);
	qimg("create", "-q", "-f", "qcow2", top, "16M", NULL);
	d.format = "raw";
	is_int(lc_check_vm_files(P("qvm"), 1, &def, roots, &err), 0,
	       "a raw disk that looks like qcow2 passes (qemu opens it as raw)");

	/* kernel, initrd, cdrom */
	def.n_disks = 0;
	write_file(P("img/rc.iso"), "iso");
	def.cdrom = (char *)P("img/rc.iso");
	is_int(lc_check_vm_files(P("qvm"), 1, &def, roots, &err), 0, "an ISO in the roots");
	unlink(def.cdrom);
	if (symlink("/etc/shadow", def.cdrom) < 0)
		abort();
	check_refused(&def, roots, "cdrom: path '", "ISO replaced by a link");
	check_refused(&def, roots, "(to '/etc/shadow')", "... naming where it points");
	def.cdrom = NULL;
	def.kernel = (char *)P("out/secret.raw");
	check_refused(&def, roots, "kernel: path '", "kernel outside the roots");
	check_refused(&def, roots, "is not under an allowed folder", "... why");
}

int main(void)
{
	util_err err = { 0 };

	if (!mkdtemp(root))
		abort();
	img_dir = (char *)P("img");
	out_dir = (char *)P("out");
	if (mkdir(img_dir, 0700) < 0 || mkdir(out_dir, 0700) < 0 || mkdir(P("imgs"), 0700) < 0)
		abort();
	unsetenv("QVM_QEMU_IMG");

	test_path_policy();
	test_probe();
	test_inspect();
	test_inspect_before_open();
	test_create();
	test_remove();
	test_disk_ops();
	test_recheck();

	if (util_rm_rf(root, &err) < 0)
		diag("cleanup: %s", err.msg);
	util_strv_clear(&pool);
	return done_testing();
}
