/* The destination's end of a migration (`qvm __receive`, run by the source
 * over ssh, the wire on its stdin and stdout): the checks before anything
 * moves (room, networks, the name and uuid, the base images), the VM
 * defined with the source's name, uuid, MACs and definition, its disks and
 * checkpoint received, and the VM left as it was on the source (resumed if
 * it ran). Until the source's commit it is in HOLD under its lock; any
 * failure or a broken connection before then deletes it. */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "mig_wire.h"
#include "storage/storage.h"

/* Free room the destination keeps beyond what it receives. */
#define RECEIVE_MARGIN (64ull << 20)

typedef struct rcv {
	const char *root;
	const char *from;
	const char *const *disk_roots;
	lc_wire w;
	uint64_t id;     /* the VM defined here; 0 until then */
	uint64_t intent; /* its receive intent's seq */
	char *name;
	int lock; /* its lock while it is received */
	bool committed;
	json_t *files;                 /* the source's list of them */
	char *parts[LC_DISKS_MAX + 1]; /* files being received */
} rcv;

static int check_names(lc_db *db, const lc_vmdef *def, util_err *err)
{
	for (size_t i = 0; i < lc_db_count(db); i++) {
		lc_vm *o = lc_db_vm_at(db, i);

		if (o->state == LC_DONE)
			continue;
		if (util_streq(o->def.name, def->name))
			return util_err_set(err, -EEXIST,
			                    "a vm named '%s' exists already (id %" PRIu64 ")",
			                    def->name, o->id);
		if (util_streq(o->def.uuid, def->uuid))
			return util_err_set(err, -EEXIST,
			                    "vm '%s' (id %" PRIu64 ") has the uuid %s already",
			                    o->def.name, o->id, def->uuid);
	}
	for (size_t i = 0; i < def->n_nics; i++) {
		json_t *net;

		if (lc_net_find(db, def->nics[i].network, &net, NULL) < 0)
			return util_err_set(
			        err, -ENOENT,
			        "nic %u: there is no network '%s' (qvm net create it first)",
			        def->nics[i].id, def->nics[i].network);
	}
	return 0;
}

/* The base image of disk d: the store's image of the same name, or the
 * same file, with the SHA-256 the source has. */
static int check_base(const char *root, const lc_disk *d, const char *want, util_err *err)
{
	_cleanup_stor_image_ stor_image img = { 0 };
	_cleanup_close_ int fd = -1;
	uint64_t size;
	char hex[65];
	int r;

	if (!d->source || !want)
		return 0; /* a blank disk */
	if (d->source[0] != '/') {
		r = stor_image_get(root, d->source, &img, err);
		if (r < 0)
			return util_err_prefix(err, "disk %u needs image '%s'", d->id, d->source);
		if (strcmp(img.sha256, want))
			return util_err_set(
			        err, -EBADMSG,
			        "disk %u: image '%s' here is not the source's (SHA-256 %.12s..., there %.12s...)",
			        d->id, d->source, img.sha256, want);
		return 0;
	}
	fd = open(d->source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return util_err_errno(err, -errno, "disk %u needs its base image %s", d->id,
		                      d->source);
	r = util_sha256_fd(fd, &size, hex);
	if (r < 0)
		return util_err_errno(err, r, "cannot read %s", d->source);
	if (strcmp(hex, want))
		return util_err_set(
		        err, -EBADMSG,
		        "disk %u: its base image %s here is not the source's (SHA-256 differs)",
		        d->id, d->source);
	return 0;
}

static int check_room(const char *root, json_t *offer, util_err *err)
{
	uint64_t need = (uint64_t)json_integer_value(json_object_get(offer, "bytes"));
	struct statvfs sv;
	uint64_t free_b;
	char a[32], b[32];

	if (statvfs(root, &sv) < 0)
		return util_err_errno(err, -errno, "cannot see the free space under %s", root);
	free_b = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (free_b < need + RECEIVE_MARGIN)
		return util_err_set(err, -ENOSPC,
		                    "%s has %s free, the vm needs %s (and %llu MiB to spare)", root,
		                    util_format_size(free_b, a, sizeof(a)),
		                    util_format_size(need, b, sizeof(b)), RECEIVE_MARGIN >> 20);
	return 0;
}

/* Everything checked before anything moves. */
static int check_offer(rcv *x, json_t *offer, const lc_vmdef *def, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	json_t *bases = json_object_get(offer, "bases");
	/* a writer's open first: what an earlier receive's qvm left half
	 * done is rolled back (its name would be taken); then a reader's,
	 * which the hashing of the bases does not hold the journal for */
	int r = lc_db_open(x->root, LC_DB_WRITE, &db, err);

	lc_db_close(TAKE_PTR(db));
	if (r == 0)
		r = lc_db_open(x->root, 0, &db, err);

	if (r == 0)
		r = check_names(db, def, err);
	for (size_t i = 0; r == 0 && i < def->n_disks; i++) {
		char key[16];

		snprintf(key, sizeof(key), "%u", def->disks[i].id);
		r = check_base(x->root, &def->disks[i],
		               json_string_value(json_object_get(bases, key)), err);
	}
	if (r == 0)
		r = check_room(x->root, offer, err);
	return r;
}

/* Define it in HOLD, held: create's checks (files, leases and static IPs
 * free, MACs) and its files (blank disks, overlays on the bases here),
 * which the received ones replace. */
static int define(rcv *x, lc_vmdef *def, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_create_opts co = { .hold = true, .disk_roots = x->disk_roots };
	uint64_t id = 0, pre = 0;
	int r = lc_db_open(x->root, LC_DB_WRITE, &db, err);

	/* "receive-define" (on no vm: the id is not known yet) covers the
	 * moment from the definition to the VM lock and the receive intent:
	 * one writer's open, which keeps every other writer and reader off */
	if (r == 0)
		r = lc_db_intent(db, "receive-define", 0,
		                 json_pack("{s:s?, s:s}", "uuid", def->uuid, "from", x->from), &pre,
		                 err);
	if (r == 0)
		r = lc_vm_create(db, def, &co, &id, err);
	util_crash_point("receive-after-create");
	if (r == 0)
		r = lc_vm_lock(db, id, 0, &x->lock, err);
	if (r < 0) {
		util_err ignored = { 0 };

		if (pre)
			lc_db_done(db, pre, "rolled-back", &ignored);
		return r;
	}
	x->id = id;
	/* the intent the next command rolls back if this qvm dies before
	 * the commit (the VM lock keeps it off the intent meanwhile) */
	lc_db_group_begin(db);
	r = lc_db_intent(db, "receive", id, json_pack("{s:s}", "from", x->from), &x->intent, err);
	if (r == 0)
		r = lc_db_done(db, pre, "ok", err);
	return r < 0 ? r : lc_db_group_commit(db, err);
}

static int take_offer(rcv *x, json_t *offer, util_err *err)
{
	_cleanup_(lc_vmdef_clear) lc_vmdef def = { 0 };
	int r;

	if (!util_streq(json_string_value(json_object_get(offer, "op")), "offer"))
		return util_err_set(err, -EBADMSG, "the source did not begin with an offer");
	r = lc_vmdef_from_json(json_object_get(offer, "definition"), &def, err);
	if (r < 0)
		return util_err_prefix(err, "its definition");
	if (!def.uuid)
		return util_err_set(err, -EBADMSG, "its definition has no uuid");
	x->name = util_xstrdup(def.name);
	r = check_offer(x, offer, &def, err);
	if (r == 0)
		r = define(x, &def, err);
	return r;
}

/* ---- files ---------------------------------------------------------------------------------- */

/* Where file f of the offer goes: its disk's path, or the checkpoint. */
static int file_path(rcv *x, json_t *f, char **ret, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	json_t *disk = json_object_get(f, "disk");
	lc_vm *vm;
	int r = lc_load_vm(x->root, x->id, &db, &vm, err);

	if (r < 0)
		return r;
	if (!disk) {
		_cleanup_free_ char *dir = lc_vm_dir(db, x->id);

		*ret = util_xasprintf("%s/checkpoint", dir);
		return 0;
	}
	for (size_t i = 0; i < vm->def.n_disks; i++)
		if (vm->def.disks[i].id == (unsigned)json_integer_value(disk)) {
			*ret = util_xstrdup(vm->def.disks[i].path);
			return 0;
		}
	return util_err_set(err, -EBADMSG, "it has no disk %" JSON_INTEGER_FORMAT,
	                    json_integer_value(disk));
}

static int take_file(rcv *x, size_t slot, json_t *f, util_err *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	int r = file_path(x, f, &path, err);

	if (r < 0)
		return r;
	x->parts[slot] = util_xasprintf("%s.part", path);
	unlink(x->parts[slot]);
	fd = open(x->parts[slot], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return util_err_errno(err, -errno, "cannot create %s", x->parts[slot]);
	r = lc_wire_recv_file(&x->w, fd, (uint64_t)json_integer_value(json_object_get(f, "size")),
	                      err);
	return r < 0 ? util_err_prefix(err, "%s", path) : 0;
}

/* The received files in place of those create made; overlays pointed at
 * the bases here; the checkpoint checked against the source's hash. */
static int place_files(rcv *x, json_t *files, json_t *ckpt, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	int r = lc_load_vm(x->root, x->id, &db, &vm, err);
	size_t i;
	json_t *f;

	json_array_foreach (files, i, f) {
		_cleanup_free_ char *path =
		        util_xasprintf("%.*s", (int)(strlen(x->parts[i]) - 5), x->parts[i]);

		if (r == 0 && rename(x->parts[i], path) < 0)
			r = util_err_errno(err, -errno, "cannot rename %s", x->parts[i]);
		if (r == 0)
			free(TAKE_PTR(x->parts[i]));
		for (size_t d = 0; r == 0 && json_object_get(f, "disk") && d < vm->def.n_disks;
		     d++) {
			const lc_disk *k = &vm->def.disks[d];

			if (util_streq(k->path, path) && k->backing)
				r = stor_set_backing(path, k->backing, k->backing_format, err);
		}
		if (r == 0 && !json_object_get(f, "disk")) {
			_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
			uint64_t size;
			char hex[65];

			if (fd < 0 || util_sha256_fd(fd, &size, hex) < 0)
				r = util_err_errno(err, -EIO, "cannot read the checkpoint %s",
				                   path);
			else if (strcmp(hex,
			                json_string_value(json_object_get(ckpt, "sha256")) ?: ""))
				r = util_err_set(
				        err, -EBADMSG,
				        "the checkpoint received differs from the source's (SHA-256)");
		}
	}
	return r;
}

static int take_files(rcv *x, json_t *msg, util_err *err)
{
	json_t *files = json_object_get(msg, "files"), *f;
	size_t i;
	int r = 0;

	if (json_array_size(files) > LC_DISKS_MAX + 1)
		return util_err_set(err, -EBADMSG, "too many files");
	x->files = json_incref(files);
	json_array_foreach (files, i, f) {
		r = take_file(x, i, f, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The VM in state to, and the receive intent closed: one transaction.
 * extra (stolen, may be NULL) adds fields to the state record. */
static int record_commit(rcv *x, lc_state to, const char *reason, json_t *extra, util_err *err)
{
	_cleanup_json_ json_t *more = extra;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	json_t *rec;
	int r = lc_db_open(x->root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	rec = json_pack("{s:s, s:I, s:s, s:s, s:s}", "type", "state", "id", (json_int_t)x->id,
	                "state", lc_state_name(to), "lcm", "", "reason", reason);
	if (more)
		json_object_update(rec, more);
	lc_db_group_begin(db);
	r = lc_db_append_state(db, x->id, to, rec, err);
	if (r == 0)
		r = lc_db_done(db, x->intent, "ok", err);
	return r < 0 ? r : lc_db_group_commit(db, err);
}

/* The commit: the files in place and the VM recorded in the state it had
 * on the source, with its checkpoint. From here on it is this host's. */
static int commit(rcv *x, json_t *msg, util_err *err)
{
	json_t *ckpt = json_object_get(msg, "checkpoint");
	_cleanup_free_ char *reason = util_xasprintf("received from %s", x->from);
	lc_state to;
	json_t *extra = NULL;
	int r = lc_state_parse(json_string_value(json_object_get(msg, "state")), &to, err);

	if (r == 0 && to != LC_POWEROFF && to != LC_UNDEPLOYED && to != LC_SUSPENDED &&
	    to != LC_STOPPED)
		r = util_err_set(err, -EBADMSG, "a vm cannot be received %s", lc_state_name(to));
	if (r == 0 && (to == LC_SUSPENDED || to == LC_STOPPED) != json_is_object(ckpt))
		r = util_err_set(err, -EBADMSG, "a vm %s comes with a checkpoint, and only then",
		                 "SUSPENDED or STOPPED");
	if (r == 0)
		r = place_files(x, x->files, ckpt, err);
	if (r == 0)
		r = util_fail_point("receive-before-commit", err);
	util_crash_point("receive-before-commit");
	if (r < 0)
		return r;
	if (json_is_object(ckpt))
		extra = json_pack("{s:{s:s, s:O, s:O, s:I}}", "checkpoint", "file", "checkpoint",
		                  "size", json_object_get(ckpt, "size"), "sha256",
		                  json_object_get(ckpt, "sha256"), "time_ms",
		                  (json_int_t)util_realtime_ms());
	r = record_commit(x, to, reason, extra, err);
	if (r == 0)
		x->committed = true;
	return r;
}

/* A receive that did not commit leaves nothing: the files and the VM go. */
static void undo(rcv *x, const char *why)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	util_err ignored = { 0 };
	lc_vm *vm;

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(x->parts); i++)
		if (x->parts[i])
			unlink(x->parts[i]);
	if (x->committed || !x->id)
		return;
	util_trace("receive: undoing '%s': %s", x->name, why);
	if (lc_db_open(x->root, LC_DB_WRITE, &db, &ignored) == 0 &&
	    (vm = lc_db_vm_by_id(db, x->id)) != NULL) {
		lc_vm_delete(db, vm, TAKE_FD(x->lock), false, &ignored);
		if (x->intent)
			lc_db_done(db, x->intent, "rolled-back", &ignored);
	}
}

/* The VM of a receive whose qvm died (still HOLD; NULL: none) and its
 * files go, and intent seq closes. */
static int roll_back(lc_db *db, uint64_t seq, lc_vm *vm, json_t *intent, util_err *err)
{
	const char *from =
	        json_string_value(json_object_get(json_object_get(intent, "data"), "from"));
	_cleanup_free_ char *reason =
	        util_xasprintf("the receive from %s was interrupted before its commit; rolled back",
	                       from ? from : "another host");
	int r;

	if (!vm || vm->state != LC_HOLD)
		return lc_db_done(db, seq, "ok", err);
	r = lc_remove_vm_files(db, vm, false, err);
	if (r == 0)
		r = lc_db_record_state(db, vm, LC_DONE, LC_LCM_NONE, reason, NULL, err);
	if (r < 0)
		return util_err_prefix(err, "cannot roll back the receive of vm %" PRIu64, vm->id);
	return lc_db_done(db, seq, "rolled-back", err);
}

/* A receive whose qvm died before its commit: the VM it defined goes. */
static int recover_receive(lc_db *db, uint64_t seq, json_t *intent, util_err *err)
{
	uint64_t id = (uint64_t)json_integer_value(json_object_get(intent, "id"));

	return roll_back(db, seq, lc_db_vm_by_id(db, id), intent, err);
}

/* A receive whose qvm died between defining the VM and recording its
 * receive intent: the HOLD VM of that uuid, if it got that far, goes. */
static int recover_receive_define(lc_db *db, uint64_t seq, json_t *intent, util_err *err)
{
	const char *uuid =
	        json_string_value(json_object_get(json_object_get(intent, "data"), "uuid"));
	lc_vm *vm = NULL;

	for (size_t i = 0; uuid && i < lc_db_count(db); i++) {
		lc_vm *o = lc_db_vm_at(db, i);

		if (o->state == LC_HOLD && util_streq(o->def.uuid, uuid))
			vm = o;
	}
	return roll_back(db, seq, vm, intent, err);
}

/* With the VM lock held, an open receive intent is one whose qvm died:
 * no command may start a VM half received. */
static int settle_receive(const char *root, uint64_t id, util_err *err)
{
	static const char *const ops[] = { "receive", NULL };
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0 || !lc_db_has_intent(db, id, ops))
		return r;
	lc_db_close(TAKE_PTR(db));
	r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_db_recover_vm(db, id, ops, err);
	return r < 0 ? r : 1;
}

__attribute__((constructor)) static void register_receive(void)
{
	lc_store_on_intent("receive", recover_receive);
	lc_store_on_intent("receive-define", recover_receive_define);
	lc_on_settle(LC_SETTLE_ON_HOLD | LC_SETTLE_ON_READ, 5, settle_receive);
}

static void rcv_clear(rcv *x)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(x->parts); i++)
		free(x->parts[i]);
	if (x->lock >= 0)
		close(x->lock);
	free(x->name);
	json_decref(x->files);
	lc_wire_clear(&x->w);
}

/* After the commit: resume it (it ran on the source) or end. */
static int after_commit(rcv *x, util_err *err)
{
	_cleanup_json_ json_t *m = NULL;
	lc_run_opts ro = { .disk_roots = x->disk_roots, .lock_timeout_ms = LC_LOCK_TIMEOUT_MS };
	util_err e = { 0 };
	int r = lc_wire_recv(&x->w, &m, err);

	if (r < 0)
		return 0; /* the source went: the vm stays here as received */
	if (x->lock >= 0)
		close(TAKE_FD(x->lock));
	if (!util_streq(json_string_value(json_object_get(m, "op")), "resume"))
		return 0;
	r = lc_vm_resume(x->root, x->name, &ro, &e);
	if (r == 0 && json_is_true(json_object_get(m, "pause")))
		r = lc_vm_pause(x->root, x->name, true, &ro, &e);
	return lc_wire_answer(&x->w, r, &e, NULL, err);
}

/* A source whose connection broke while it waited for the commit's
 * answer asks again: is the VM of this uuid here, received (not HOLD)?
 * An open receive holds the VM's lock: its end is waited for. Then a
 * "resume" may follow, as after a commit. */
static int answer_ask(rcv *x, json_t *ask, util_err *err)
{
	const char *uuid = json_string_value(json_object_get(ask, "uuid"));
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	const char *state = NULL;
	util_err e = { 0 };
	uint64_t id = 0;
	int r = lc_db_open(x->root, 0, &db, &e);

	for (size_t i = 0; r == 0 && i < lc_db_count(db); i++) {
		lc_vm *vm = lc_db_vm_at(db, i);

		if (vm->state != LC_DONE && util_streq(vm->def.uuid, uuid)) {
			id = vm->id;
			x->name = util_xstrdup(vm->def.name);
		}
	}
	lc_db_close(TAKE_PTR(db));
	if (r == 0 && id)
		r = lc_vm_lock_wait(x->root, id, x->name, LC_LOCK_TIMEOUT_MS, &x->lock, &e);
	if (r == 0 && id)
		r = lc_db_open(x->root, 0, &db, &e);
	if (r == 0 && id && lc_db_vm_by_id(db, id)->state != LC_DONE &&
	    lc_db_vm_by_id(db, id)->state != LC_HOLD)
		state = lc_state_name(lc_db_vm_by_id(db, id)->state);
	r = lc_wire_answer(&x->w, r, &e,
	                   json_pack("{s:b, s:s?}", "has", state != NULL, "state", state), err);
	lc_db_close(TAKE_PTR(db));
	if (r == 0 && state)
		r = after_commit(x, err);
	return r;
}

int lc_vm_receive(const char *root, int in, int out, const char *from,
                  const char *const *disk_roots, util_err *err)
{
	rcv x = { .root = root, .from = from, .disk_roots = disk_roots, .lock = -1 };
	_cleanup_json_ json_t *m = NULL;
	util_err e = { 0 };
	int r;

	/* a source that goes away is an error to undo, not a signal to die of */
	signal(SIGPIPE, SIG_IGN);
	lc_wire_init(&x.w, in, out);
	r = lc_wire_recv(&x.w, &m, &e);
	if (r == 0 && util_streq(json_string_value(json_object_get(m, "op")), "ask")) {
		r = answer_ask(&x, m, err);
		rcv_clear(&x);
		return r;
	}
	if (r == 0)
		r = take_offer(&x, m, &e);
	json_decref(TAKE_PTR(m));
	if (lc_wire_answer(&x.w, r, &e, r == 0 ? json_pack("{s:I}", "id", (json_int_t)x.id) : NULL,
	                   err) < 0 ||
	    r < 0)
		goto out;
	util_crash_point("receive-after-define");
	r = lc_wire_recv(&x.w, &m, &e);
	if (r == 0 && !util_streq(json_string_value(json_object_get(m, "op")), "files"))
		r = util_err_set(&e, -EBADMSG, "the source did not send its files");
	if (r == 0)
		r = take_files(&x, m, &e);
	json_decref(TAKE_PTR(m));
	if (r == 0)
		r = lc_wire_recv(&x.w, &m, &e);
	if (r == 0 && !util_streq(json_string_value(json_object_get(m, "op")), "commit"))
		r = util_err_set(&e, -EBADMSG, "the source did not commit");
	if (r == 0)
		r = commit(&x, m, &e);
	util_stop_point("receive-after-commit");
	if (lc_wire_answer(&x.w, r, &e, NULL, err) < 0 || r < 0)
		goto out;
	r = after_commit(&x, err);
out:
	if (r < 0 && !err->msg[0])
		*err = e;
	undo(&x, err->msg);
	rcv_clear(&x);
	return r;
}
