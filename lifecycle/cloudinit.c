/* A VM's cloud-init NoCloud seed: the user's files are read and copied
 * into the VM folder when the VM is created, and the seed ISO
 * (ROOT/vms/ID/seed.iso) is built from the copies at each start, while the
 * VM is ACTIVE/PROLOG. The supervisor attaches it read-only. */
#include <dirent.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloudinit.h"

#define INPUT_DIR "cloud-init"

/* The three inputs, in lc_seed_inputs order: the seed's file name, and the
 * option key in messages. */
static const char *const input_names[3] = { "user-data", "meta-data", "network-config" };

static const char *const *input_paths(const lc_vmdef *def, const char *paths[3])
{
	paths[0] = def->ci_user_data;
	paths[1] = def->ci_meta_data;
	paths[2] = def->ci_network_config;
	return paths;
}

void lc_seed_inputs_clear(lc_seed_inputs *in)
{
	for (int i = 0; i < 3; i++)
		free(in->data[i]);
	memset(in, 0, sizeof(*in));
}

/* Read one input, bounded: the size is checked first so that a huge file
 * is refused without reading it. */
static int read_input(const char *path, const char *what, char **ret, size_t *ret_len,
                      util_err *err)
{
	struct stat st;
	int r;

	if (stat(path, &st) < 0)
		return util_err_errno(err, -errno, "cannot read cloud-init %s '%s'", what, path);
	if (!S_ISREG(st.st_mode))
		return util_err_set(err, -EINVAL, "cloud-init %s '%s' is not a regular file", what,
		                    path);
	if ((uint64_t)st.st_size > STOR_SEED_FILE_MAX)
		return util_err_set(err, -EFBIG,
		                    "cloud-init %s '%s' is %" PRIu64
		                    " bytes, more than the %u a seed file may hold",
		                    what, path, (uint64_t)st.st_size, STOR_SEED_FILE_MAX);
	r = util_read_file(path, STOR_SEED_FILE_MAX, ret, ret_len, err);
	if (r < 0)
		return util_err_prefix(err, "cloud-init %s", what);
	return 0;
}

int lc_seed_read_inputs(const lc_vmdef *def, lc_seed_inputs *ret, util_err *err)
{
	lc_seed_inputs in = { 0 };
	const char *paths[3];

	input_paths(def, paths);
	for (int i = 0; i < 3; i++) {
		int r;

		if (!paths[i])
			continue;
		r = read_input(paths[i], input_names[i], &in.data[i], &in.len[i], err);
		if (r < 0) {
			lc_seed_inputs_clear(&in);
			return r;
		}
	}
	*ret = in;
	return 0;
}

int lc_seed_save_inputs(const char *vmdir, const lc_seed_inputs *in, util_err *err)
{
	_cleanup_free_ char *dir = util_xasprintf("%s/" INPUT_DIR, vmdir);
	bool any = false;
	int r;

	for (int i = 0; i < 3; i++)
		any = any || in->data[i];
	if (!any)
		return 0;
	r = util_mkdir_p(dir, 0700, err);
	for (int i = 0; i < 3 && r == 0; i++) {
		_cleanup_free_ char *path = NULL;

		if (!in->data[i])
			continue;
		path = util_xasprintf("%s/%s", dir, input_names[i]);
		r = util_write_file_atomic(path, in->data[i], in->len[i], err);
	}
	return r < 0 ? util_err_prefix(err, "cannot keep a copy of the cloud-init files") : 0;
}

int lc_seed_drop_inputs(const char *vmdir, const bool which[3], util_err *err)
{
	_cleanup_free_ char *dir = util_xasprintf("%s/" INPUT_DIR, vmdir);

	for (int i = 0; i < 3; i++) {
		_cleanup_free_ char *path = util_xasprintf("%s/%s", dir, input_names[i]);

		if (which[i] && unlink(path) < 0 && errno != ENOENT)
			return util_err_errno(err, -errno, "cannot remove the copy '%s'", path);
	}
	if (access(dir, F_OK) < 0)
		return 0;
	return util_fsync_dir(dir, err);
}

void lc_seed_set_clear(lc_seed_set *s)
{
	for (int i = 0; i < 3; i++)
		free(s->owned[i]);
	memset(s, 0, sizeof(*s));
}

bool lc_seed_wanted(const lc_vmdef *def, const char *generated_network_config)
{
	return def->ci_user_data || generated_network_config;
}

char *lc_seed_path(const char *root, uint64_t id)
{
	return util_xasprintf("%s/vms/%" PRIu64 "/seed.iso", root, id);
}

/* The copy taken at create, or the user's file for a VM that has none. */
static int load_input(const char *root, uint64_t id, int i, const char *user_path, char **ret,
                      size_t *ret_len, util_err *err)
{
	_cleanup_free_ char *copy =
	        util_xasprintf("%s/vms/%" PRIu64 "/" INPUT_DIR "/%s", root, id, input_names[i]);
	int r = util_read_file(copy, STOR_SEED_FILE_MAX, ret, ret_len, err);

	if (r == -ENOENT) {
		util_err_clear(err);
		r = read_input(user_path, input_names[i], ret, ret_len, err);
	}
	return r;
}

static void add_file(lc_seed_set *s, const char *name, char *owned, const char *data, size_t len)
{
	s->owned[s->n] = owned;
	s->files[s->n] = (stor_seed_file){ .name = name, .data = data, .len = len };
	s->n++;
}

int lc_seed_files(const char *root, uint64_t id, const lc_vmdef *def,
                  const char *generated_network_config, lc_seed_set *ret, util_err *err)
{
	lc_seed_set s = { 0 };
	const char *paths[3];
	int r = 0;

	input_paths(def, paths);
	for (int i = 0; i < 3 && r == 0; i++) {
		char *data = NULL;
		size_t len = 0;

		if (paths[i]) {
			r = load_input(root, id, i, paths[i], &data, &len, err);
			if (r == 0)
				add_file(&s, input_names[i], data, data, len);
		} else if (i == 0) {
			/* NoCloud wants a user-data file, even an empty one */
			add_file(&s, input_names[i], NULL, "", 0);
		} else if (i == 1) {
			/* cloud-init runs once per instance-id: the uuid is
			 * stable for the VM's life and unique. The name is
			 * quoted so that YAML keeps "1.10" or "no" a string. */
			data = util_xasprintf("instance-id: %s\nlocal-hostname: \"%s\"\n",
			                      def->uuid ? def->uuid : def->name, def->name);
			add_file(&s, input_names[i], data, data, strlen(data));
		} else if (generated_network_config) {
			add_file(&s, input_names[i], NULL, generated_network_config,
			         strlen(generated_network_config));
		}
	}
	if (r < 0) {
		lc_seed_set_clear(&s);
		return r;
	}
	*ret = s;
	return 0;
}

/* Temporary files of a seed write that a crash interrupted. */
static void remove_stale_temporaries(const char *root, uint64_t id)
{
	_cleanup_free_ char *vmdir = util_xasprintf("%s/vms/%" PRIu64, root, id);
	DIR *d = opendir(vmdir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (util_startswith(de->d_name, "seed.iso.tmp."))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

int lc_seed_build(const char *root, uint64_t id, const lc_vmdef *def,
                  const char *generated_network_config, util_err *err)
{
	_cleanup_free_ char *path = lc_seed_path(root, id);
	_cleanup_free_ char *vmdir = util_xasprintf("%s/vms/%" PRIu64, root, id);
	lc_seed_set s = { 0 };
	int r;

	remove_stale_temporaries(root, id);
	if (!lc_seed_wanted(def, generated_network_config)) {
		if (unlink(path) < 0 && errno != ENOENT)
			return util_err_errno(err, -errno, "cannot remove the old seed '%s'", path);
		return 0;
	}
	r = util_mkdir_p(vmdir, 0700, err);
	if (r == 0)
		r = lc_seed_files(root, id, def, generated_network_config, &s, err);
	if (r == 0)
		r = stor_seed_write(path, s.files, s.n, err);
	lc_seed_set_clear(&s);
	return r < 0 ? util_err_prefix(err, "cannot prepare the cloud-init seed of '%s'", def->name)
	             : 0;
}

int lc_seed_remove(const char *root, uint64_t id, bool wipe, util_err *err)
{
	_cleanup_free_ char *seed = lc_seed_path(root, id);
	int r = stor_remove_disk(seed, wipe, err);

	for (int i = 0; i < 3 && r == 0; i++) {
		_cleanup_free_ char *copy = util_xasprintf("%s/vms/%" PRIu64 "/" INPUT_DIR "/%s",
		                                           root, id, input_names[i]);

		r = stor_remove_disk(copy, wipe, err);
	}
	return r < 0 ? util_err_prefix(err, "cloud-init") : 0;
}
