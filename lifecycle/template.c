/* Templates: definitions without an identity, kept as ROOT/templates/
 * NAME.json, that create instantiates. A template names images (by store
 * name or path), blank disk sizes and networks; each instance gets its
 * own uuid, MACs, leases and overlay disks, made by create as for any vm. */
#include <dirent.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lifecycle.h"

static char *templates_dir(const char *root)
{
	return util_xasprintf("%s/templates", root);
}

static char *template_path(const char *root, const char *name)
{
	return util_xasprintf("%s/templates/%s.json", root, name);
}

/* What of a vm's definition is its own, not the template's: its uuid,
 * where its disks are (place_disks decides that from each source again),
 * its MACs and addresses. */
static void strip_identity(json_t *j)
{
	static const char *const disk_keys[] = { "path", "backing", "size", "owned" };
	json_t *v;
	size_t i;

	json_object_del(j, "uuid");
	json_array_foreach (json_object_get(j, "disks"), i, v)
		for (size_t k = 0; k < UTIL_ARRAY_SIZE(disk_keys); k++)
			json_object_del(v, disk_keys[k]);
	json_array_foreach (json_object_get(j, "nics"), i, v) {
		json_object_del(v, "mac");
		json_object_del(v, "ip");
	}
}

int lc_template_create(lc_db *db, const char *name, const lc_vmdef *src, util_err *err)
{
	_cleanup_free_ char *dir = templates_dir(lc_db_root(db));
	_cleanup_free_ char *path = template_path(lc_db_root(db), name);
	_cleanup_json_ json_t *j = lc_vmdef_to_json(src);
	_cleanup_free_ char *text = NULL;
	lc_vmdef check;
	int r = util_validate_name(name, "template name", err);

	if (r < 0)
		return r;
	json_object_set_new(j, "name", json_string(name));
	strip_identity(j);
	for (size_t i = 0; i < json_array_size(json_object_get(j, "disks")); i++)
		if (!json_is_string(json_object_get(json_array_get(json_object_get(j, "disks"), i),
		                                    "source")))
			return util_err_set(
			        err, -EINVAL,
			        "cannot make template '%s': disk %zu has no source (an image, path or size) an instance could be made from",
			        name, i);
	/* what an instance will be checked against */
	r = lc_vmdef_from_json(j, &check, err);
	if (r < 0)
		return util_err_prefix(err, "cannot make template '%s'", name);
	lc_vmdef_clear(&check);
	/* db holds the journal's lock: no other writer makes the same one */
	if (access(path, F_OK) == 0)
		return util_err_set(
		        err, -EEXIST,
		        "template '%s' exists already; delete it first (qvm template delete %s)",
		        name, name);
	r = util_mkdir_p(dir, 0700, err);
	text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (r == 0)
		r = util_write_file_atomic(path, text, strlen(text), err);
	return r < 0 ? util_err_prefix(err, "cannot make template '%s'", name) : 0;
}

static int read_template(const char *root, const char *name, json_t **ret, util_err *err)
{
	_cleanup_free_ char *path = template_path(root, name);
	json_error_t jerr;
	json_t *j;
	int r = util_validate_name(name, "template name", err);

	if (r < 0)
		return r;
	if (access(path, F_OK) < 0)
		return util_err_set(err, -ENOENT, "no template '%s' (see qvm template list)", name);
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return util_err_set(err, -EBADMSG, "template '%s' cannot be read: %s", name,
		                    jerr.text);
	*ret = j;
	return 0;
}

int lc_template_load(const char *root, const char *name, lc_vmdef *ret_def, util_err *err)
{
	_cleanup_json_ json_t *j = NULL;
	int r = read_template(root, name, &j, err);

	if (r == 0 && (r = lc_vmdef_from_json(j, ret_def, err)) < 0)
		util_err_prefix(err, "template '%s'", name);
	return r;
}

static json_t *template_entry(const char *root, const char *name, util_err *err)
{
	_cleanup_free_ char *path = template_path(root, name);
	json_t *def = NULL;
	struct stat st;

	if (read_template(root, name, &def, err) < 0)
		return NULL;
	if (stat(path, &st) < 0)
		st.st_mtim.tv_sec = 0;
	return json_pack("{s:s, s:I, s:o}", "name", name, "created_ms",
	                 (json_int_t)st.st_mtim.tv_sec * 1000, "definition", def);
}

int lc_template_get(const char *root, const char *name, json_t **ret, util_err *err)
{
	json_t *j = template_entry(root, name, err);

	if (!j)
		return err->code;
	*ret = j;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int lc_template_list(const char *root, json_t **ret, util_err *err)
{
	_cleanup_free_ char *dir = templates_dir(root);
	_cleanup_(util_strv_clear) util_strv names = { 0 };
	_cleanup_json_ json_t *list = json_array();
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d && errno != ENOENT)
		return util_err_errno(err, -errno, "cannot read '%s'", dir);
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n > 5 && !strcmp(e->d_name + n - 5, ".json") && e->d_name[0] != '.')
			util_strv_pushf(&names, "%.*s", (int)(n - 5), e->d_name);
	}
	if (d)
		closedir(d);
	if (names.n)
		qsort(names.v, names.n, sizeof(char *), by_name);
	for (size_t i = 0; i < names.n; i++) {
		util_err ignored = { 0 };
		json_t *t = template_entry(root, names.v[i], &ignored);

		/* one unreadable file does not hide the others */
		if (!t)
			t = json_pack("{s:s, s:s}", "name", names.v[i], "error", ignored.msg);
		json_array_append_new(list, t);
	}
	*ret = TAKE_PTR(list);
	return 0;
}

int lc_template_delete(lc_db *db, const char *name, util_err *err)
{
	_cleanup_free_ char *path = template_path(lc_db_root(db), name);
	_cleanup_free_ char *dir = templates_dir(lc_db_root(db));
	int r = util_validate_name(name, "template name", err);

	if (r < 0)
		return r;
	/* instances are vms of their own: they keep nothing of the file */
	if (unlink(path) < 0 && errno == ENOENT)
		return util_err_set(err, -ENOENT, "no template '%s' (see qvm template list)", name);
	if (access(path, F_OK) == 0)
		return util_err_errno(err, -errno, "cannot delete template '%s'", name);
	return util_fsync_dir(dir, err);
}
