/* storage: image inspection — what an image file really is, and refusing
 * the ones a host must not open (format confusion, files reaching outside
 * the store, chains that never end). */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/internal.h"

/* qemu-img parsing a hostile header must not take the host with it: the
 * limits OpenStack uses for the same call, and a wall-clock bound. */
#define INFO_RLIMIT_AS  (1ull << 30)
#define INFO_RLIMIT_CPU 10
#define INFO_TIMEOUT_MS 30000

#define BACKING_FIX                                                                                \
	"qvm follows backing files only inside the image store: if you trust "                     \
	"the image, flatten it with qemu-img convert -O qcow2"

/* What one `qemu-img info` run says about one file. */
typedef struct layer {
	char format[16];
	uint64_t virtual_size, actual_size;
	char *backing_recorded; /* backing-filename as stored, or NULL */
	char *backing_full;     /* as qemu resolves it, or NULL */
	char backing_format[16];
} layer;

static void layer_done(layer *l)
{
	free(l->backing_recorded);
	free(l->backing_full);
	*l = (layer){ 0 };
}

void stor_image_info_free(stor_image_info *info)
{
	if (!info)
		return;
	free(info->backing_file);
	util_strv_free(info->chain);
	*info = (stor_image_info){ 0 };
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Run `qemu-img info -f format --output=json -- name` and return the
 * parsed object (a new reference). The format is always given: qemu-img
 * never probes a file, so nothing written into it (a VMDK descriptor's
 * extents, a header naming a device) changes what qemu-img opens. No
 * --backing-chain: that would open every backing file, nbd:// and http://
 * ones included, before qvm could look at their names — the chain is
 * walked one checked file at a time instead. */
static int run_info(const char *qemu_img, const char *name, const char *format, json_t **ret,
                    util_err *err)
{
	_cleanup_free_ char *out = NULL, *errtext = NULL, *safe = stor_safe(name);
	char *argv[] = { (char *)qemu_img, "info", "-f",         (char *)format,
		         "--output=json",  "--",   (char *)name, NULL };
	util_run_opts opts = {
		.ret_stdout = &out,
		.ret_stderr = &errtext,
		.timeout_ms = INFO_TIMEOUT_MS,
		.rlimit_as = INFO_RLIMIT_AS,
		.rlimit_cpu = INFO_RLIMIT_CPU,
	};
	json_error_t jerr;
	json_t *j;
	int r;

	r = util_run(argv, &opts, err);
	if (r < 0)
		return util_err_prefix(err, "cannot inspect '%s'", safe);
	if (r != 0) {
		if (strstr(errtext, "Failed to get shared \"write\" lock"))
			return util_err_set(err, -EBUSY,
			                    "cannot inspect '%s': another process (a running VM?) "
			                    "has it open for writing",
			                    safe);
		return stor_qemu_img_failed(err, errtext, "cannot inspect '%s'", safe);
	}
	j = json_loads(out, 0, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		return util_err_set(err, -EPROTO,
		                    "cannot inspect '%s': qemu-img printed no JSON object (%s)",
		                    safe, jerr.text);
	}
	*ret = j;
	return 0;
}

/* Read the head of the file `name` and probe it (stor_probe_buf); a raw
 * file's size is its length, and *ret_allocated what it takes on disk (as
 * qemu-img's actual-size). Opened without following a symlink and without
 * blocking, and only a regular file is read: a FIFO or device put in place
 * of a checked file is refused, never waited on. */
static int probe_file(const char *name, stor_probe *ret, uint64_t *ret_allocated, util_err *err)
{
	_cleanup_free_ char *safe = stor_safe(name);
	_cleanup_free_ unsigned char *buf = util_xmalloc(STOR_PROBE_LEN);
	_cleanup_close_ int fd =
	        open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	size_t len = 0;

	if (fd < 0)
		return util_err_errno(err, -errno, "cannot read '%s'", safe);
	if (fstat(fd, &st) < 0)
		return util_err_errno(err, -errno, "cannot read '%s'", safe);
	if (!S_ISREG(st.st_mode))
		return util_err_set(err, -EINVAL, "'%s' is not a regular file", safe);
	while (len < STOR_PROBE_LEN) {
		ssize_t n = pread(fd, buf + len, STOR_PROBE_LEN - len, (off_t)len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return util_err_errno(err, -errno, "cannot read '%s'", safe);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	stor_probe_buf(buf, len, ret);
	if (!strcmp(ret->format, "raw")) {
		ret->self_described = true;
		ret->virtual_size = (uint64_t)st.st_size;
	}
	*ret_allocated = (uint64_t)st.st_blocks * 512;
	return 0;
}

/* The refusals a file's head is enough for, made before qemu-img opens
 * it: what lives in other files first (a convert the user runs without
 * looking must not "fix" those), then formats qvm does not run, then a
 * format other than the expected one (NULL: none expected). `what` names
 * the file in messages ("'x'" or "backing file 'x' of 'y'"). */
static int check_probe(const stor_probe *p, const char *name, const char *what,
                       const char *expected, const char *recorded_by, util_err *err)
{
	_cleanup_free_ char *safe = stor_safe(name);

	if (p->vmdk_descriptor) {
		_cleanup_free_ char *first = stor_safe(p->first_extent ? p->first_extent : "?");

		if (p->extents > 1)
			return util_err_set(
			        err, -EPERM,
			        "%s is a VMDK made of %u extent files (the first is '%s'); qvm opens "
			        "only self-contained qcow2 and raw images: check where the extents "
			        "point, then convert it with qemu-img convert -O qcow2",
			        what, p->extents, first);
		return util_err_set(err, -EPERM,
		                    "%s is a VMDK whose data lives in another file ('%s'); qvm "
		                    "opens only self-contained qcow2 and raw images: check that "
		                    "file, then convert it with qemu-img convert -O qcow2",
		                    what, first);
	}
	if (p->data_file) {
		_cleanup_free_ char *df = stor_safe(p->data_file_name ? p->data_file_name : "?");

		return util_err_set(err, -EPERM,
		                    "%s has an external data file ('%s'); qvm opens only "
		                    "self-contained images: check that file, then convert it with "
		                    "qemu-img convert -O qcow2",
		                    what, df);
	}
	if (!stor_format_supported(p->format)) {
		if (expected)
			return util_err_set(
			        err, -ENOTSUP,
			        "%s is a %s image, not %s as %s; qvm's VMs use only "
			        "qcow2 and raw: convert it with qemu-img convert -O qcow2",
			        what, p->format, expected, recorded_by ? "recorded" : "declared");
		return util_err_set(err, -ENOTSUP,
		                    "%s is a %s image; qvm's VMs use only qcow2 and raw: convert "
		                    "it with qemu-img convert -O qcow2",
		                    what, p->format);
	}
	if (expected && strcmp(p->format, expected)) {
		if (!recorded_by)
			return util_err_set(
			        err, -EMEDIUMTYPE,
			        "'%s' contains a %s image but was declared %s; a disk's "
			        "format never follows its content: declare it as %s if "
			        "the file is what you expect",
			        safe, p->format, expected, p->format);
		return util_err_set(err, -EMEDIUMTYPE,
		                    "backing file '%s' of '%s' contains a %s image but is recorded "
		                    "as %s; rebase the image on a backing file of the recorded "
		                    "format",
		                    safe, recorded_by, p->format, expected);
	}
	return 0;
}

static int copy_name(char *dst, size_t len, const char *src, const char *what, const char *safe,
                     util_err *err)
{
	if (!src || !*src || strlen(src) >= len)
		return util_err_set(err, -EPROTO,
		                    "cannot inspect '%s': qemu-img reported no usable %s", safe,
		                    what);
	for (const char *p = src; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9') && *p != '_' &&
		    *p != '-')
			return util_err_set(err, -EPROTO,
			                    "cannot inspect '%s': qemu-img reported an odd %s",
			                    safe, what);
	strcpy(dst, src);
	return 0;
}

static int get_size(json_t *o, const char *key, bool required, uint64_t *ret, const char *safe,
                    util_err *err)
{
	json_t *v = json_object_get(o, key);

	if (!v && !required) {
		*ret = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return util_err_set(err, -EPROTO, "cannot inspect '%s': qemu-img reported no %s",
		                    safe, key);
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

/* The refusals that hold for every file of a chain, most dangerous first:
 * a file whose data lives elsewhere must not be "fixed" by a convert the
 * user runs without looking. `name` is the name qemu-img was given. */
static int check_layer(const char *name, json_t *j, layer *l, util_err *err)
{
	_cleanup_free_ char *safe = stor_safe(name);
	json_t *data = json_object_get(json_object_get(j, "format-specific"), "data");
	json_t *extents = json_object_get(data, "extents");
	const char *data_file = jstr(data, "data-file");
	int r;

	r = copy_name(l->format, sizeof(l->format), jstr(j, "format"), "format", safe, err);
	if (r < 0)
		return r;
	r = get_size(j, "virtual-size", true, &l->virtual_size, safe, err);
	if (r < 0)
		return r;
	r = get_size(j, "actual-size", false, &l->actual_size, safe, err);
	if (r < 0)
		return r;

	if (json_is_array(extents) && json_array_size(extents) > 1) {
		_cleanup_free_ char *first =
		        stor_safe(jstr(json_array_get(extents, 0), "filename"));

		return util_err_set(
		        err, -EPERM,
		        "'%s' is a VMDK made of %zu extent files (the first is '%s'); qvm "
		        "opens only self-contained images: check where the extents "
		        "point, then convert it with qemu-img convert -O qcow2",
		        safe, json_array_size(extents), first);
	}
	if (json_is_array(extents) && json_array_size(extents) == 1) {
		const char *ext = jstr(json_array_get(extents, 0), "filename");

		/* A monolithic sparse VMDK names itself as its one extent. */
		if (!util_streq(ext, name)) {
			_cleanup_free_ char *safe_ext = stor_safe(ext);

			return util_err_set(
			        err, -EPERM,
			        "'%s' is a VMDK whose data lives in another file ('%s'); "
			        "qvm opens only self-contained images: check that file, "
			        "then convert it with qemu-img convert -O qcow2",
			        safe, safe_ext);
		}
	}
	if (data_file) {
		_cleanup_free_ char *safe_df = stor_safe(data_file);

		return util_err_set(err, -EPERM,
		                    "'%s' has an external data file ('%s'); qvm opens only "
		                    "self-contained images: check that file, then convert it with "
		                    "qemu-img convert -O qcow2",
		                    safe, safe_df);
	}
	if (!stor_format_supported(l->format))
		return util_err_set(
		        err, -ENOTSUP,
		        "'%s' is a %s image; qvm's VMs use only qcow2 and raw: convert it "
		        "with qemu-img convert -O qcow2",
		        safe, l->format);

	if (jstr(j, "backing-filename")) {
		const char *bfmt = jstr(j, "backing-filename-format");

		l->backing_recorded = util_xstrdup(jstr(j, "backing-filename"));
		l->backing_full =
		        util_xstrdup(jstr(j, "full-backing-filename") ?: l->backing_recorded);
		if (bfmt && copy_name(l->backing_format, sizeof(l->backing_format), bfmt,
		                      "backing format", safe, err) < 0)
			return err ? err->code : -EPROTO;
	}
	return 0;
}

/* A layer as the file's head describes it (probe.c's self_described):
 * what qemu-img info would report for the same file. */
static void layer_from_head(const stor_probe *p, uint64_t allocated, layer *l)
{
	snprintf(l->format, sizeof(l->format), "%s", p->format);
	l->virtual_size = p->virtual_size;
	l->actual_size = allocated;
	if (p->backing_name) {
		l->backing_recorded = util_xstrdup(p->backing_name);
		l->backing_full = util_xstrdup(p->backing_name); /* absolute */
		snprintf(l->backing_format, sizeof(l->backing_format), "%s", p->backing_format);
	}
}

/* Look at one file of a chain as `expected` (NULL: as its own probe says)
 * into *l; `parent` is the file recording it as backing file (NULL for
 * the top one). With head_enough, a file whose head says all (a raw file,
 * a plain qcow2) is not handed to qemu-img info. */
static int inspect_layer(const char *qemu_img, const char *name, const char *expected,
                         const char *parent, bool head_enough, layer *l, util_err *err)
{
	_cleanup_json_ json_t *j = NULL;
	_cleanup_free_ char *safe = stor_safe(name);
	_cleanup_(stor_probe_clear) stor_probe p = { .extents = 0 };
	_cleanup_free_ char *what =
	        parent ? util_xasprintf("backing file '%s' of '%s'", safe, parent)
	               : util_xasprintf("'%s'", safe);
	uint64_t allocated = 0;
	int r = probe_file(name, &p, &allocated, err);

	if (r == 0)
		r = check_probe(&p, name, what, expected, parent, err);
	if (r < 0)
		return r;
	if (head_enough && p.self_described) {
		layer_from_head(&p, allocated, l);
		return 0;
	}
	/* what was declared (or recorded), or a fresh file's probe */
	r = run_info(qemu_img, name, expected ? expected : p.format, &j, err);
	if (r < 0)
		return r;
	r = check_layer(name, j, l, err);
	if (r < 0)
		return r;
	if (strcmp(l->format, p.format))
		return util_err_set(err, -EPROTO,
		                    "cannot inspect '%s': qemu-img reported it as %s when "
		                    "asked to open it as %s",
		                    safe, l->format, p.format);
	return 0;
}

/* May the chain go on from layer l (of file `safe`, at depth) to its
 * backing file? *ret_real is that file's realpath, not yet in chain. */
static int check_backing(const layer *l, unsigned depth, const char *safe, const char *safe_top,
                         const char *const *allowed_backing_roots, const util_strv *chain,
                         char **ret_real, util_err *err)
{
	_cleanup_free_ char *safe_b = stor_safe(l->backing_full), *real = NULL;
	int r;

	if (!allowed_backing_roots || !allowed_backing_roots[0])
		return util_err_set(err, -EPERM,
		                    "'%s' has a backing file ('%s'); images with backing files "
		                    "are not accepted here: if you trust it, flatten it with "
		                    "qemu-img convert -O qcow2",
		                    safe, safe_b);
	if (depth + 1 > STOR_MAX_BACKING_DEPTH)
		return util_err_set(err, -ELOOP,
		                    "backing chain of '%s' is deeper than %d files; flatten it "
		                    "with qemu-img convert -O qcow2",
		                    safe_top, STOR_MAX_BACKING_DEPTH);
	/* Without a recorded format qemu would probe the backing file:
	 * exactly the header trust the declared format is there to avoid. */
	if (!l->backing_format[0])
		return util_err_set(err, -EPERM,
		                    "backing file '%s' of '%s' has no recorded format; record it "
		                    "with qemu-img rebase -u -F <format> -b <backing file> <image>",
		                    safe_b, safe);
	if (!stor_format_supported(l->backing_format))
		return util_err_set(err, -ENOTSUP,
		                    "backing file '%s' of '%s' is recorded as %s; qvm's VMs use "
		                    "only qcow2 and raw",
		                    safe_b, safe, l->backing_format);
	r = stor_check_under(l->backing_full, allowed_backing_roots, "backing file", BACKING_FIX,
	                     BACKING_FIX, &real, err);
	if (r < 0) {
		util_err_prefix(err, "cannot accept '%s'", safe_top);
		return r;
	}
	if (util_strv_contains((const char *const *)chain->v, real))
		return util_err_set(err, -ELOOP,
		                    "backing chain of '%s' loops: '%s' comes back as the backing "
		                    "file of '%s'",
		                    safe_top, safe_b, safe);
	*ret_real = TAKE_PTR(real);
	return 0;
}

static int inspect_chain(const char *path, const char *declared_format,
                         const char *const *allowed_backing_roots, bool head_enough,
                         stor_image_info *ret_info, util_err *err)
{
	static const char *const anywhere[] = { "/", NULL };
	_cleanup_free_ char *qemu_img = NULL, *safe_top = stor_safe(path), *top_real = NULL;
	_cleanup_free_ char *name = NULL;   /* the file of the chain being looked at */
	_cleanup_free_ char *parent = NULL; /* the one recording it as backing file */
	_cleanup_stor_image_info_ stor_image_info info = { 0 };
	util_strv chain = { 0 };
	const char *expected = declared_format;
	char expected_buf[sizeof(info.backing_format)];
	int r;

	if (declared_format && !stor_format_supported(declared_format)) {
		_cleanup_free_ char *safe_fmt = stor_safe(declared_format);

		return util_err_set(err, -ENOTSUP,
		                    "cannot accept '%s' as %s: qvm's VMs use only qcow2 and raw; "
		                    "convert it with qemu-img convert -O qcow2",
		                    safe_top, safe_fmt);
	}
	/* The caller applies its own roots to the top file (stor_check_path);
	 * here it only has to be a plain local regular file. */
	r = stor_check_under(path, anywhere, "image", NULL, "", &top_real, err);
	if (r < 0)
		return r;
	r = stor_qemu_img(&qemu_img, err);
	if (r < 0)
		return r;

	name = util_xstrdup(path);
	util_strv_push_take(&chain, TAKE_PTR(top_real));
	for (unsigned depth = 0;; depth++) {
		_cleanup_free_ char *safe = stor_safe(name), *real = NULL;
		_cleanup_(layer_done) layer l = { 0 };

		r = inspect_layer(qemu_img, name, expected, depth ? parent : NULL, head_enough, &l,
		                  err);
		if (r < 0)
			goto fail;
		if (depth == 0) {
			strcpy(info.format, l.format);
			info.virtual_size = l.virtual_size;
			info.actual_size = l.actual_size;
			if (l.backing_recorded) {
				info.backing_file = util_xstrdup(l.backing_recorded);
				strcpy(info.backing_format, l.backing_format);
			}
		}
		if (!l.backing_recorded)
			break;
		r = check_backing(&l, depth, safe, safe_top, allowed_backing_roots, &chain, &real,
		                  err);
		if (r < 0)
			goto fail;
		util_strv_push_take(&chain, TAKE_PTR(real));
		/* The next file must be what this one records it to be. */
		strcpy(expected_buf, l.backing_format);
		expected = expected_buf;
		/* Go on with the name qemu itself resolves, so relative backing
		 * names further down resolve as they will when the VM runs. */
		free(parent);
		parent = TAKE_PTR(safe);
		free(name);
		name = TAKE_PTR(l.backing_full);
		info.chain_depth = depth + 1;
	}
	info.chain = util_strv_steal(&chain);
	*ret_info = info;
	info = (stor_image_info){ 0 };
	return 0;
fail:
	util_strv_clear(&chain);
	return r;
}

int stor_inspect(const char *path, const char *declared_format,
                 const char *const *allowed_backing_roots, stor_image_info *ret_info, util_err *err)
{
	return inspect_chain(path, declared_format, allowed_backing_roots, false, ret_info, err);
}

int stor_inspect_before_open(const char *path, const char *declared_format,
                             const char *const *allowed_backing_roots, stor_image_info *ret_info,
                             util_err *err)
{
	return inspect_chain(path, declared_format, allowed_backing_roots, true, ret_info, err);
}
