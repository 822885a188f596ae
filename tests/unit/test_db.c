/* Unit tests for the store's one-VM read (lc_db_open_vm): with hundreds of
 * VMs, some defined after the last snapshot and a name that a DONE VM and
 * a live one share, it finds the VM lc_db_find_any finds and loads it as
 * the full read does, and its short history is the full one's last rows.
 * And its groups of appends: committed, all are there; closed before the
 * commit, none is. */
#include <string.h>
#include <sys/stat.h>

#include "lifecycle/lifecycle.h"
#include "lifecycle/store/journal.h"
#include "tap.h"

#define N_VMS 200

static int create(lc_db *db, const char *name, util_err *err)
{
	lc_create_opts co = { 0 };
	lc_vmdef def;
	uint64_t id;
	int r;

	lc_vmdef_init(&def);
	def.name = util_xstrdup(name);
	json_object_set_new(def.labels, "name", json_string(name));
	r = lc_vm_create(db, &def, &co, &id, err);
	lc_vmdef_clear(&def);
	return r;
}

static int populate(const char *root, util_err *err)
{
	lc_db *db = NULL;
	char name[32];
	lc_vm *vm;
	int r = 0;

	for (int i = 1; r == 0 && i <= N_VMS; i++) {
		snprintf(name, sizeof(name), "vm%d", i);
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
		if (r == 0)
			r = create(db, name, err);
		lc_db_close(db);
	}
	/* vm7 is deleted and its name taken again; vm9 held and released */
	if (r == 0)
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r == 0 && (r = lc_db_find(db, "vm7", &vm, err)) == 0)
		r = lc_vm_delete(db, vm, -1, false, err);
	if (r == 0)
		r = create(db, "vm7", err);
	if (r == 0 && (r = lc_db_find(db, "vm9", &vm, err)) == 0)
		r = lc_vm_hold(db, vm, true, err);
	if (r == 0 && (r = lc_db_find(db, "vm9", &vm, err)) == 0)
		r = lc_vm_hold(db, vm, false, err);
	if (r == 0)
		r = create(db, "late", err);
	lc_db_close(db);
	return r;
}

static char *def_text(const lc_vm *vm)
{
	_cleanup_json_ json_t *j = lc_vmdef_to_json(&vm->def);

	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

static void same_as_full(const char *root, const char *name)
{
	_cleanup_db_ lc_db *full = NULL, *one = NULL;
	_cleanup_json_ json_t *hist = NULL, *tail = NULL, *want = NULL;
	_cleanup_free_ char *a = NULL, *b = NULL;
	lc_vm *fv = NULL, *ov = NULL;
	util_err err = { 0 };
	size_t n;

	if (!ok(lc_db_open(root, 0, &full, &err) == 0 && lc_db_find_any(full, name, &fv, &err) == 0,
	        "'%s': the full read finds it: %s", name, err.msg))
		return;
	if (!ok(lc_db_open_vm(root, name, &one, &ov, &err) == 0,
	        "'%s': the one-vm read finds it: %s", name, err.msg))
		return;
	a = def_text(fv);
	b = def_text(ov);
	ok(ov->id == fv->id && ov->state == fv->state && ov->lcm == fv->lcm &&
	           ov->created_ms == fv->created_ms && ov->state_ms == fv->state_ms &&
	           util_streq(a, b),
	   "'%s': the same vm %llu, state and definition", name, (unsigned long long)ov->id);
	ok(ov->n_recent == fv->n_recent &&
	           !memcmp(ov->recent, fv->recent, ov->n_recent * sizeof(ov->recent[0])),
	   "'%s': the same recent records (%zu)", name, ov->n_recent);
	if (lc_vm_history(full, fv, &hist, &err) < 0 ||
	    lc_vm_history_tail(one, ov, 3, &tail, &err) < 0) {
		ok(0, "'%s': histories: %s", name, err.msg);
		return;
	}
	n = json_array_size(hist);
	want = json_array();
	for (size_t i = n > 3 ? n - 3 : 0; i < n; i++)
		json_array_append(want, json_array_get(hist, i));
	ok(n > 0 && json_equal(tail, want),
	   "'%s': its last history rows are the full history's (%zu of %zu)", name,
	   json_array_size(tail), n);
}

static size_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Two records of one group: a hold and a release of vm */
static int hold_and_release(const char *root, const char *name, bool commit, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	lc_db_group_begin(db);
	r = lc_db_find(db, name, &vm, err);
	if (r == 0)
		r = lc_db_record_state(db, vm, LC_HOLD, LC_LCM_NONE, "held", NULL, err);
	if (r == 0)
		r = lc_db_record_state(db, vm, LC_PENDING, LC_LCM_NONE, "released", NULL, err);
	if (r == 0 && commit)
		r = lc_db_group_commit(db, err);
	return r;
}

static void groups(const char *root)
{
	_cleanup_free_ char *log = util_xasprintf("%s/journal/log", root);
	_cleanup_db_ lc_db *db = NULL;
	util_err err = { 0 };
	size_t before = file_size(log), n_before = 0, n_after = 0;
	json_t *hist = NULL;
	lc_vm *vm;

	ok(lc_db_open_vm(root, "vm3", &db, &vm, &err) == 0 &&
	           lc_vm_history(db, vm, &hist, &err) == 0,
	   "vm3's history: %s", err.msg);
	n_before = json_array_size(hist);
	json_decref(TAKE_PTR(hist));
	lc_db_close(TAKE_PTR(db));
	ok(hold_and_release(root, "vm3", false, &err) == 0, "a group left uncommitted: %s",
	   err.msg);
	ok(file_size(log) == before, "... its records are taken back out of the log (%zu, %zu)",
	   file_size(log), before);
	ok(hold_and_release(root, "vm3", true, &err) == 0, "a group committed: %s", err.msg);
	ok(file_size(log) > before, "... is in the log");
	ok(lc_db_open_vm(root, "vm3", &db, &vm, &err) == 0 &&
	           lc_vm_history(db, vm, &hist, &err) == 0,
	   "vm3's history again: %s", err.msg);
	n_after = json_array_size(hist);
	ok(n_after == n_before + 2 && vm->state == LC_PENDING,
	   "... has the committed group's two records, not the other's (%zu -> %zu)", n_before,
	   n_after);
	json_decref(hist);
}

int main(void)
{
	char tmpl[] = "/tmp/qvm-unit-db.XXXXXX";
	const char *root = mkdtemp(tmpl);
	util_err err = { 0 };
	lc_db *db = NULL;
	lc_vm *vm = NULL;

	if (!ok(root && populate(root, &err) == 0, "%d vms in a root: %s", N_VMS, err.msg))
		return done_testing();
	{
		/* the path under test: a snapshot with an index, records after it */
		_cleanup_free_ char *jdir = util_xasprintf("%s/journal", root);
		lc_journal *j = NULL;

		ok(lc_journal_open(jdir, LC_JOURNAL_PARTS, 1000, &j, &err) == 0 &&
		           lc_journal_index(j) && strstr(lc_journal_index(j), " PENDING vm100\n") &&
		           !strstr(lc_journal_index(j), " late\n") && lc_journal_count(j) > 0,
		   "the snapshot has an index of the vms; 'late' came after it: %s", err.msg);
		lc_journal_close(j);
	}
	same_as_full(root, "vm1");
	same_as_full(root, "vm100");
	same_as_full(root, "vm200");
	same_as_full(root, "vm7"); /* the live one, not the DONE one */
	same_as_full(root, "vm9");
	same_as_full(root, "late");
	same_as_full(root, "7"); /* by id: the DONE vm7 */
	groups(root);
	ok(lc_db_open_vm(root, "nosuch", &db, &vm, &err) == -ENOENT &&
	           strstr(err.msg, "no vm named 'nosuch'"),
	   "a name no vm has: %s", err.msg);
	if (!getenv("KEEP"))
		util_rm_rf(root, NULL);
	return done_testing();
}
