/* storage: the image store in ROOT/images — import (from a URL or a local
 * file), listing, resolving a name for a VM's disk, saving a disk as an
 * image, and deletion.
 *
 * Metadata is one small JSON file per image, NAME.image.json, written
 * atomically (tmp + fsync + rename), rather than records in the VM
 * journal: the store must not depend on lifecycle/ (storage sits below it),
 * an image's metadata is read by name without replaying anything, and a
 * damaged file costs one image, not the store. Writers serialise on
 * ROOT/images/.lock; readers need no lock, since every file they read is
 * replaced whole. The metadata file is the commit point: the image file is
 * renamed into place first, then its metadata is written. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "storage/internal.h"

#define META_SUFFIX           ".image.json"
#define META_MAX              (64u << 10)
#define COPY_CHUNK            (1u << 20)
#define STORE_LOCK_TIMEOUT_MS 15000
#define CONVERT_TIMEOUT_MS    (6 * 3600 * 1000)

void stor_image_clear(stor_image *img)
{
	if (!img)
		return;
	free(img->name);
	free(img->file);
	free(img->source);
	memset(img, 0, sizeof(*img));
}

void stor_image_list_free(stor_image *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		stor_image_clear(&v[i]);
	free(v);
}

char *stor_images_dir(const char *root)
{
	return util_xasprintf("%s/images", root);
}

/* The store lives under the root, which must be absolute: every path
 * the store hands out (to qemu-img, into an overlay) is. */
static int check_root(const char *root, util_err *err)
{
	if (!root || root[0] != '/')
		return util_err_set(err, -EINVAL, "the root '%s' must be an absolute path",
		                    root ? root : "");
	return 0;
}

static char *meta_path(const char *dir, const char *name)
{
	return util_xasprintf("%s/%s" META_SUFFIX, dir, name);
}

json_t *stor_image_to_json(const stor_image *img)
{
	const char *base = img->file ? strrchr(img->file, '/') : NULL;

	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:I}", "name", img->name, "file",
	                 base ? base + 1 : (img->file ? img->file : ""), "format", img->format,
	                 "virtual_size", (json_int_t)img->virtual_size, "actual_size",
	                 (json_int_t)img->actual_size, "sha256", img->sha256, "source",
	                 img->source ? img->source : "", "created", (json_int_t)img->created_ms);
}

int stor_image_from_json(json_t *j, const char *images_dir, stor_image *ret_img, util_err *err)
{
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *file = json_string_value(json_object_get(j, "file"));
	const char *format = json_string_value(json_object_get(j, "format"));
	const char *sha = json_string_value(json_object_get(j, "sha256"));
	const char *source = json_string_value(json_object_get(j, "source"));
	json_t *vs = json_object_get(j, "virtual_size"), *as = json_object_get(j, "actual_size");
	json_t *created = json_object_get(j, "created");
	stor_image img = { 0 };
	int r;

	if (!json_is_object(j))
		return util_err_set(err, -EINVAL, "image metadata is not a JSON object");
	r = util_validate_name(name, "image name", err);
	if (r < 0)
		return r;
	if (!file || !*file || strchr(file, '/') || file[0] == '.')
		return util_err_set(err, -EINVAL, "image '%s': bad file name in its metadata",
		                    name);
	if (!stor_format_supported(format))
		return util_err_set(err, -EINVAL, "image '%s': bad format in its metadata", name);
	if (!util_sha256_valid_hex(sha))
		return util_err_set(err, -EINVAL, "image '%s': bad sha256 in its metadata", name);
	if (!json_is_integer(vs) || !json_is_integer(as) || json_integer_value(vs) < 0 ||
	    json_integer_value(as) < 0)
		return util_err_set(err, -EINVAL, "image '%s': bad sizes in its metadata", name);
	img.name = util_xstrdup(name);
	img.file = util_xasprintf("%s/%s", images_dir, file);
	snprintf(img.format, sizeof(img.format), "%s", format);
	img.virtual_size = (uint64_t)json_integer_value(vs);
	img.actual_size = (uint64_t)json_integer_value(as);
	for (int i = 0; i < 64; i++)
		img.sha256[i] = (char)(sha[i] | 0x20); /* lowercase hex */
	img.source = util_xstrdup(source ? source : "");
	img.created_ms = json_is_integer(created) ? json_integer_value(created) : 0;
	*ret_img = img;
	return 0;
}

static int load_meta(const char *dir, const char *name, stor_image *ret, util_err *err)
{
	_cleanup_free_ char *path = meta_path(dir, name), *data = NULL;
	_cleanup_json_ json_t *j = NULL;
	json_error_t jerr;
	stor_image img = { 0 };
	int r;

	r = util_read_file(path, META_MAX, &data, NULL, NULL);
	if (r == -ENOENT)
		return util_err_set(err, -ENOENT,
		                    "no image named '%s' in the image store; see qvm image list",
		                    name);
	if (r < 0)
		return util_err_errno(err, r, "cannot read the metadata of image '%s'", name);
	j = json_loads(data, 0, &jerr);
	if (!j)
		return util_err_set(err, -EINVAL, "the metadata of image '%s' is damaged: %s", name,
		                    jerr.text);
	r = stor_image_from_json(j, dir, &img, err);
	if (r < 0)
		return r;
	if (strcmp(img.name, name)) {
		stor_image_clear(&img);
		return util_err_set(err, -EINVAL,
		                    "the metadata of image '%s' names another image; it is damaged",
		                    name);
	}
	*ret = img;
	return 0;
}

int stor_image_get(const char *root, const char *name, stor_image *ret_img, util_err *err)
{
	_cleanup_free_ char *dir = stor_images_dir(root);
	int r = check_root(root, err);

	if (r == 0)
		r = util_validate_name(name, "image name", err);
	return r < 0 ? r : load_meta(dir, name, ret_img, err);
}

static int cmp_image(const void *a, const void *b)
{
	return strcmp(((const stor_image *)a)->name, ((const stor_image *)b)->name);
}

int stor_image_list(const char *root, stor_image **ret_v, size_t *ret_n, util_err *err)
{
	_cleanup_free_ char *dir = stor_images_dir(root);
	DIR *d = opendir(dir);
	stor_image *v = NULL;
	size_t n = 0;
	struct dirent *e;

	if (check_root(root, err) < 0) {
		if (d)
			closedir(d);
		return -EINVAL;
	}
	if (!d) {
		if (errno != ENOENT)
			return util_err_errno(err, -errno, "cannot read the image store '%s'", dir);
		*ret_v = NULL;
		*ret_n = 0;
		return 0;
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name), sl = strlen(META_SUFFIX);
		_cleanup_free_ char *name = NULL;
		stor_image img;

		if (e->d_name[0] == '.' || len <= sl || strcmp(e->d_name + len - sl, META_SUFFIX))
			continue;
		name = strndup(e->d_name, len - sl);
		if (!name)
			abort();
		/* damaged metadata is skipped here; `image show NAME` says why */
		if (util_validate_name(name, "image name", NULL) < 0 ||
		    load_meta(dir, name, &img, NULL) < 0)
			continue;
		v = util_xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = img;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_image);
	*ret_v = v;
	*ret_n = n;
	return 0;
}

static int ensure_dir(const char *dir, util_err *err)
{
	int r = check_root(dir, err); /* dir is ROOT/images */

	if (r < 0)
		return r;
	r = util_mkdir_p(dir, 0700, err);

	if (r < 0)
		return util_err_prefix(err, "cannot create the image store");
	return 0;
}

/* A store change in progress: .qvm-change-NAME holds the file name of the
 * image being added or removed, written before the image file moves and
 * removed once the metadata is written or gone. A crash in between leaves
 * the marker, and the next writer settles it: metadata present, the
 * change is complete (an add) or never happened (a delete that had not
 * begun); metadata absent, the image file goes. */
static char *marker_path(const char *dir, const char *name)
{
	return util_xasprintf("%s/.qvm-change-%s", dir, name);
}

static int set_marker(const char *dir, const char *name, const char *file, util_err *err)
{
	_cleanup_free_ char *path = marker_path(dir, name);
	const char *base = strrchr(file, '/');

	base = base ? base + 1 : file;
	return util_write_file_atomic(path, base, strlen(base), err);
}

static void clear_marker(const char *dir, const char *name)
{
	_cleanup_free_ char *path = marker_path(dir, name);

	unlink(path);
}

/* A temporary file (.qvm-import-*, .qvm-saveas-*) whose maker died: not
 * locked, and older than a minute (a file is locked right after mkostemp,
 * so a young unlocked one may be just being made). */
static bool abandoned_temp(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (util_realtime_ms() / 1000 - st.st_mtime < 60)
		return false;
	return flock(fd, LOCK_EX | LOCK_NB) == 0;
}

/* Settle the changes a crashed writer left (with the store lock held). */
static void settle_changes(const char *dir)
{
	static const char prefix[] = ".qvm-change-";
	DIR *d = opendir(dir);
	struct dirent *e;
	bool changed = false;

	if (!d)
		return;
	while ((e = readdir(d))) {
		const char *name = e->d_name + sizeof(prefix) - 1;
		_cleanup_free_ char *marker = NULL, *meta = NULL, *file = NULL, *data = NULL;

		if (util_startswith(e->d_name, ".qvm-import-") ||
		    util_startswith(e->d_name, ".qvm-saveas-")) {
			file = util_xasprintf("%s/%s", dir, e->d_name);
			if (abandoned_temp(file) && unlink(file) == 0)
				changed = true;
			continue;
		}
		if (strncmp(e->d_name, prefix, sizeof(prefix) - 1) ||
		    util_validate_name(name, "image name", NULL) < 0)
			continue;
		marker = util_xasprintf("%s/%s", dir, e->d_name);
		meta = meta_path(dir, name);
		if (access(meta, F_OK) != 0 &&
		    util_read_file(marker, 256, &data, NULL, NULL) == 0 &&
		    util_startswith(data, name) &&
		    (!strcmp(data + strlen(name), ".qcow2") ||
		     !strcmp(data + strlen(name), ".raw"))) {
			file = util_xasprintf("%s/%s", dir, data);
			unlink(file);
		}
		unlink(marker);
		changed = true;
	}
	closedir(d);
	if (changed)
		util_fsync_dir(dir, NULL);
}

int stor_image_lock(const char *root, int *ret_fd, util_err *err)
{
	_cleanup_free_ char *dir = stor_images_dir(root);
	_cleanup_free_ char *path = util_xasprintf("%s/.lock", dir);
	int r = ensure_dir(dir, err);

	if (r < 0)
		return r;
	r = util_lock_path(path, true, STORE_LOCK_TIMEOUT_MS, ret_fd, err);
	if (r == -EBUSY)
		return util_err_set(
		        err, r, "the image store is busy (another qvm holds its lock); try again");
	if (r == 0)
		settle_changes(dir);
	return r;
}

static int check_new_name(const char *dir, const char *name, util_err *err)
{
	_cleanup_free_ char *meta = meta_path(dir, name);
	int r = util_validate_name(name, "image name", err);

	if (r < 0)
		return r;
	if (access(meta, F_OK) == 0)
		return util_err_set(
		        err, -EEXIST,
		        "an image named '%s' already exists; delete it first or choose another name",
		        name);
	return 0;
}

/* Put the checked file tmp into the store as image `name`: rename it to
 * NAME.FORMAT, then write its metadata (the commit point), under the
 * store lock. tmp is removed on failure. */
static int commit_image(const char *root, const char *name, const char *tmp,
                        const stor_image_info *info, const char *sha, const char *source,
                        stor_image *ret_img, util_err *err)
{
	_cleanup_free_ char *dir = stor_images_dir(root);
	_cleanup_free_ char *file = util_xasprintf("%s/%s.%s", dir, name, info->format);
	_cleanup_free_ char *meta = meta_path(dir, name);
	_cleanup_free_ char *text = NULL;
	_cleanup_close_ int lock = -1;
	_cleanup_json_ json_t *j = NULL;
	stor_image img = { 0 };
	int r;

	r = stor_image_lock(root, &lock, err);
	if (r < 0)
		goto fail;
	r = check_new_name(dir, name, err);
	if (r < 0)
		goto fail;
	r = set_marker(dir, name, file, err);
	if (r < 0)
		goto fail;
	r = stor_rename_noreplace(tmp, file);
	if (r < 0)
		clear_marker(dir, name);
	if (r == -EEXIST) {
		r = util_err_set(
		        err, r,
		        "'%s' exists in the image store folder but is no store image (left by an interrupted import, or put there by hand); remove it or choose another name",
		        file);
		goto fail;
	}
	if (r < 0) {
		util_err_errno(err, r, "cannot move the new image to '%s'", file);
		goto fail;
	}
	util_crash_point("image-commit");
	img.name = util_xstrdup(name);
	img.file = TAKE_PTR(file);
	snprintf(img.format, sizeof(img.format), "%s", info->format);
	img.virtual_size = info->virtual_size;
	img.actual_size = info->actual_size;
	snprintf(img.sha256, sizeof(img.sha256), "%s", sha);
	img.source = util_xstrdup(source);
	img.created_ms = util_realtime_ms();
	j = stor_image_to_json(&img);
	json_object_set_new(j, "version", json_integer(1));
	text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		abort();
	r = util_write_file_atomic(meta, text, strlen(text), err);
	if (r < 0) {
		unlink(img.file);
		clear_marker(dir, name);
		stor_image_clear(&img);
		return util_err_prefix(err, "cannot record image '%s'", name);
	}
	clear_marker(dir, name);
	*ret_img = img;
	return 0;
fail:
	unlink(tmp);
	return r;
}

/* Hash (and optionally copy to out_fd) everything from in_fd. */
static int hash_fd(int in_fd, int out_fd, const stor_import_opts *o, uint64_t max, char hex[65],
                   uint64_t *ret_size)
{
	_cleanup_free_ uint8_t *buf = util_xmalloc(COPY_CHUNK);
	util_sha256 sha;
	uint64_t total = 0, size = 0;
	struct stat st;

	if (fstat(in_fd, &st) == 0)
		size = (uint64_t)st.st_size;
	util_sha256_init(&sha);
	for (;;) {
		ssize_t n = read(in_fd, buf, COPY_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (max && total > max)
			return -EFBIG;
		util_sha256_update(&sha, buf, (size_t)n);
		if (out_fd >= 0) {
			int r = util_write_all(out_fd, buf, (size_t)n);

			if (r < 0)
				return r;
			stor_writeback(out_fd, total - (uint64_t)n, total);
		}
		if (o && o->progress)
			o->progress(o->progress_ud, total, size);
	}
	util_sha256_final(&sha, hex);
	*ret_size = total;
	return 0;
}

static int make_temp(const char *dir, const char *kind, char **ret_path, util_err *err)
{
	char *tmp = util_xasprintf("%s/.qvm-%s-XXXXXX", dir, kind);
	int fd = mkostemp(tmp, O_CLOEXEC);

	if (fd < 0) {
		int r = util_err_errno(err, -errno, "cannot create a file in '%s'", dir);

		free(tmp);
		return r;
	}
	/* held until the file is renamed or removed: a temporary file nobody
	 * holds was left by a crash (settle_changes() removes it) */
	flock(fd, LOCK_EX | LOCK_NB);
	*ret_path = tmp;
	return fd;
}

/* Copy a local file into a temporary file of the store, hashing it. */
static int copy_local(const char *dir, const stor_import_opts *o, uint64_t max, char **ret_tmp,
                      int *ret_fd, char hex[65], util_err *err)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int in = -1, out = -1;
	struct stat st;
	uint64_t size;
	int r;

	if (o->source[0] != '/')
		return util_err_set(err, -EINVAL, "'%s' is not an absolute path nor an http(s) URL",
		                    o->source);
	/* the disk path policy, as for --disk: folders and no links */
	r = stor_check_policy(o->source, o->allowed_roots, "add its folder to QVM_DISK_ROOTS", NULL,
	                      err);
	if (r < 0)
		return util_err_prefix(err, "cannot import '%s'", o->source);
	/* a link made since the check is refused too (ELOOP) */
	in = open(o->source, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
	if (in < 0)
		return util_err_errno(err, -errno, "cannot open '%s'", o->source);
	if (fstat(in, &st) < 0)
		return util_err_errno(err, -errno, "cannot read '%s'", o->source);
	if (!S_ISREG(st.st_mode))
		return util_err_set(err, -EINVAL, "'%s' is not a regular file", o->source);
	if ((uint64_t)st.st_size > max)
		return util_err_set(err, -EFBIG,
		                    "'%s' is %" PRIu64 " bytes, more than the size cap of %" PRIu64
		                    "; raise --max-size",
		                    o->source, (uint64_t)st.st_size, max);
	out = make_temp(dir, "import", &tmp, err);
	if (out < 0)
		return out;
	r = hash_fd(in, out, o, max, hex, &size);
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		if (r == -EFBIG)
			return util_err_set(err, r, "'%s' grew beyond the size cap of %" PRIu64,
			                    o->source, max);
		return util_err_errno(err, r, "cannot copy '%s' into the image store", o->source);
	}
	*ret_tmp = TAKE_PTR(tmp);
	*ret_fd = TAKE_FD(out);
	return 0;
}

static bool is_url(const char *s)
{
	return strstr(s, "://") != NULL;
}

/* The partial file of a download: named after the image and the URL, so
 * that the same import finds it again and another one never does. */
static char *partial_path(const char *dir, const char *name, const char *url)
{
	util_sha256 sha;
	char hex[65];

	util_sha256_init(&sha);
	util_sha256_update(&sha, url, strlen(url));
	util_sha256_final(&sha, hex);
	hex[16] = '\0';
	return util_xasprintf("%s/.qvm-partial-%s-%s", dir, name, hex);
}

/* Messages about the temporary copy name the source the user gave. */
static void name_source(util_err *err, const char *tmp, const char *source)
{
	_cleanup_free_ char *safe = stor_safe(source);
	char out[sizeof(err->msg)];
	size_t o = 0, nt = strlen(tmp), ns = strlen(safe);
	const char *p, *hit;

	if (!err)
		return;
	for (p = err->msg; (hit = strstr(p, tmp)) && o + (size_t)(hit - p) + ns < sizeof(out);
	     p = hit + nt) {
		memcpy(out + o, p, (size_t)(hit - p));
		o += (size_t)(hit - p);
		memcpy(out + o, safe, ns);
		o += ns;
	}
	snprintf(out + o, sizeof(out) - o, "%s", p);
	memcpy(err->msg, out, sizeof(out));
}

/* A VMDK names its extents relative to itself: once copied into the store
 * a multi-extent one points at files that are not there (or, worse, at
 * store files of the same name), and qemu-img's complaint would be about
 * a missing file. Say what it is before anything opens it. */
static int refuse_vmdk(const char *tmp, const char *source, util_err *err)
{
	_cleanup_close_ int fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char head[1024];
	ssize_t n;

	if (fd < 0)
		return util_err_errno(err, -errno, "cannot read the copy of '%s'", source);
	n = pread(fd, head, sizeof(head) - 1, 0);
	if (n < 0)
		return util_err_errno(err, -errno, "cannot read the copy of '%s'", source);
	head[n] = '\0';
	if ((n >= 4 && !memcmp(head, "KDMV", 4)) || strstr(head, "# Disk DescriptorFile") ||
	    strstr(head, "createType="))
		return util_err_set(
		        err, -EPERM,
		        "'%s' is a VMDK image (a descriptor or an extent of one): its data may live in several extent files; qvm imports only self-contained qcow2 and raw images: check where its extents point, then convert it with qemu-img convert -O qcow2",
		        source);
	return 0;
}

int stor_image_import(const char *root, const stor_import_opts *o, stor_image *ret_img,
                      util_err *err)
{
	_cleanup_free_ char *dir = stor_images_dir(root);
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int tmp_fd = -1; /* its lock: the file is ours */
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	uint64_t max = o->max_size ? o->max_size : STOR_IMPORT_MAX_SIZE, size;
	char hex[65];
	int r;

	r = check_root(root, err);
	if (r < 0)
		return r;
	r = check_new_name(dir, o->name, err);
	if (r < 0)
		return r;
	if (o->format && !stor_format_supported(o->format))
		return util_err_set(err, -EINVAL,
		                    "image format '%s' is not supported (use qcow2 or raw)",
		                    o->format);
	if (o->sha256 && !util_sha256_valid_hex(o->sha256))
		return util_err_set(err, -EINVAL, "'%s' is not a SHA-256 (64 hex digits)",
		                    o->sha256);
	r = ensure_dir(dir, err);
	if (r < 0)
		return r;
	if (is_url(o->source)) {
		stor_import_opts oo = *o;

		if (strncasecmp(o->source, "http://", 7) && strncasecmp(o->source, "https://", 8))
			return util_err_set(
			        err, -EPROTONOSUPPORT,
			        "cannot import '%s': only http and https URLs are supported (give a local file as a path)",
			        o->source);
		oo.max_size = max;
		tmp = partial_path(dir, o->name, o->source);
		r = stor_download(o->source, tmp, &oo, &tmp_fd, hex, &size, err);
		if (r < 0)
			return r;
	} else {
		r = copy_local(dir, o, max, &tmp, &tmp_fd, hex, err);
		if (r < 0)
			return r;
	}
	/* from here on the file is complete: any failure removes it */
	if (o->sha256 && strcasecmp(o->sha256, hex)) {
		unlink(tmp);
		return util_err_set(
		        err, -EBADMSG,
		        "cannot import '%s': its SHA-256 is %s, not %s as given; nothing was imported (check the URL and the checksum)",
		        o->source, hex, o->sha256);
	}
	r = refuse_vmdk(tmp, o->source, err);
	if (r == 0)
		r = stor_inspect(tmp, o->format, NULL, &info, err);
	if (r < 0) {
		unlink(tmp);
		name_source(err, tmp, o->source);
		return util_err_prefix(err, "cannot import as image '%s'", o->name);
	}
	r = commit_image(root, o->name, tmp, &info, hex, o->source, ret_img, err);
	if (r < 0)
		return util_err_prefix(err, "cannot import '%s' as image '%s'", o->source, o->name);
	return 0;
}

int stor_image_save_disk(const char *root, const char *name, const char *disk_path,
                         const char *disk_format, const char *const *allowed_backing_roots,
                         const char *source, stor_image *ret_img, util_err *err)
{
	_cleanup_free_ char *dir = stor_images_dir(root);
	_cleanup_free_ char *tmp = NULL, *qemu_img = NULL, *errtext = NULL;
	_cleanup_stor_image_info_ stor_image_info src = { 0 };
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	_cleanup_close_ int fd = -1;
	util_run_opts ro = { .ret_stderr = &errtext, .timeout_ms = CONVERT_TIMEOUT_MS };
	char hex[65];
	uint64_t size;
	int r;

	r = check_new_name(dir, name, err);
	if (r < 0)
		return r;
	r = ensure_dir(dir, err);
	if (r < 0)
		return r;
	r = stor_inspect(disk_path, disk_format, allowed_backing_roots, &src, err);
	if (r < 0)
		return r;
	r = stor_qemu_img(&qemu_img, err);
	if (r < 0)
		return r;
	fd = make_temp(dir, "saveas", &tmp, err);
	if (fd < 0)
		return fd;
	{
		char *const argv[] = { qemu_img, "convert", "-f", (char *)disk_format,
			               "-O",     "qcow2",   "--", (char *)disk_path,
			               tmp,      NULL };

		r = util_run(argv, &ro, err);
	}
	if (r > 0)
		r = stor_qemu_img_failed(err, errtext, "cannot flatten '%s'", disk_path);
	if (r < 0)
		goto fail;
	/* qemu-img convert truncated and rewrote the file (the same inode:
	 * fd still holds its lock): read it back from the start */
	if (fsync(fd) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		r = util_err_errno(err, -errno, "cannot read the new image");
		goto fail;
	}
	r = hash_fd(fd, -1, NULL, 0, hex, &size);
	if (r < 0) {
		util_err_errno(err, r, "cannot read the new image");
		goto fail;
	}
	util_crash_point("saveas-after-convert");
	r = stor_inspect(tmp, "qcow2", NULL, &info, err);
	if (r < 0)
		goto fail;
	/* commit_image() removes tmp on failure */
	return commit_image(root, name, tmp, &info, hex, source, ret_img, err);
fail:
	unlink(tmp);
	return r;
}

/* Remove the partial downloads of image `name` nobody is downloading
 * into (each is flock'ed while a download runs); with the store lock. */
static unsigned discard_partials(const char *dir, const char *name)
{
	_cleanup_free_ char *prefix = util_xasprintf(".qvm-partial-%s-", name);
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		const char *rest = e->d_name + strlen(prefix);
		_cleanup_free_ char *path = NULL, *validator = NULL;
		_cleanup_close_ int fd = -1;

		/* the prefix, then exactly the 16 hex digits of the URL's hash */
		if (!util_startswith(e->d_name, prefix) || strspn(rest, "0123456789abcdef") != 16)
			continue;
		path = util_xasprintf("%s/%s", dir, e->d_name);
		if (!strcmp(rest + 16, STOR_VALIDATOR_SUFFIX)) {
			/* a validator whose partial file is gone (a crash between
			 * the two unlinks) */
			path[strlen(path) - strlen(STOR_VALIDATOR_SUFFIX)] = '\0';
			if (access(path, F_OK) != 0 && errno == ENOENT) {
				validator = util_xasprintf("%s" STOR_VALIDATOR_SUFFIX, path);
				unlink(validator);
			}
			continue;
		}
		if (rest[16])
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && unlink(path) == 0) {
			validator = util_xasprintf("%s" STOR_VALIDATOR_SUFFIX, path);
			unlink(validator);
			n++;
		}
	}
	closedir(d);
	if (n)
		util_fsync_dir(dir, NULL);
	return n;
}

int stor_image_discard_partials(const char *root, const char *name, unsigned *ret_n, util_err *err)
{
	_cleanup_free_ char *dir = stor_images_dir(root);
	_cleanup_close_ int lock = -1;
	int r = util_validate_name(name, "image name", err);

	if (r == 0)
		r = stor_image_lock(root, &lock, err);
	if (r < 0)
		return r;
	*ret_n = discard_partials(dir, name);
	return 0;
}

int stor_image_delete(const char *root, const char *name, util_err *err)
{
	_cleanup_free_ char *dir = stor_images_dir(root);
	_cleanup_free_ char *meta = NULL;
	_cleanup_stor_image_ stor_image img = { 0 };
	_cleanup_close_ int lock = -1;
	int r;

	r = stor_image_lock(root, &lock, err);
	if (r < 0)
		return r;
	r = stor_image_get(root, name, &img, err);
	if (r < 0)
		return r;
	meta = meta_path(dir, name);
	/* metadata first: once it is gone, the image is; a crash before the
	 * file goes leaves the marker, and the next writer removes the file */
	r = set_marker(dir, name, img.file, err);
	if (r < 0)
		return util_err_prefix(err, "cannot delete image '%s'", name);
	if (unlink(meta) < 0) {
		r = util_err_errno(err, -errno, "cannot delete image '%s'", name);
		clear_marker(dir, name);
		return r;
	}
	util_crash_point("image-delete");
	if (unlink(img.file) < 0 && errno != ENOENT)
		return util_err_errno(err, -errno,
		                      "image '%s' is deleted, but its file '%s' is left", name,
		                      img.file);
	clear_marker(dir, name);
	discard_partials(dir, name);
	return util_fsync_dir(dir, err);
}
