/* Cold migration to another qvm host, the source's end: qvm runs its
 * receive verb on the destination over ssh (ssh from PATH, or the command
 * line in QVM_SSH, as rsync's RSYNC_RSH), offers the VM there (the
 * destination checks before anything moves), checkpoints a running guest,
 * sends its disks (holes skipped) and checkpoint over the same connection,
 * and commits. The destination owns the VM once it answered the commit:
 * only then does the VM end DONE here and its files go. Before that, any
 * failure leaves it here as it was (a guest that ran is resumed). */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "mig_wire.h"
#include "storage/storage.h"
#include "vm_command.h"

/* A destination taken apart: [ssh://][USER@]HOST[:PORT]. */
typedef struct dest {
	char *user, *host, *port; /* user and port NULL when not given */
} dest;

static void dest_clear(dest *d)
{
	free(d->user);
	free(d->host);
	free(d->port);
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static int dest_parse(const char *s, dest *ret, util_err *err)
{
	dest d = { 0 };
	const char *at, *colon, *h;
	uint64_t port;

	if (util_startswith(s, "ssh://"))
		s += 6;
	at = strchr(s, '@');
	h = at ? at + 1 : s;
	colon = strchr(h, ':');
	if (at && (at == s || strchr(h, '@')))
		return util_err_set(err, -EINVAL, "'%s' is not [ssh://][USER@]HOST[:PORT]", s);
	for (const char *p = s; at && p < at; p++)
		if (!host_char(*p))
			return util_err_set(err, -EINVAL, "the user in '%s' is not a user name", s);
	if (h == colon || !*h)
		return util_err_set(err, -EINVAL, "'%s' names no host", s);
	for (const char *p = h; *p && p != colon; p++)
		if (!host_char(*p))
			return util_err_set(err, -EINVAL,
			                    "the host in '%s' is not a host name or IPv4 address",
			                    s);
	if (colon && util_parse_uint(colon + 1, 1, 65535, &port, NULL) < 0)
		return util_err_set(err, -EINVAL, "the port in '%s' is not 1-65535", s);
	if (!ret)
		return 0;
	d.user = at ? util_xasprintf("%.*s", (int)(at - s), s) : NULL;
	d.host = colon ? util_xasprintf("%.*s", (int)(colon - h), h) : util_xstrdup(h);
	d.port = colon ? util_xstrdup(colon + 1) : NULL;
	*ret = d;
	return 0;
}

int lc_migrate_dest_check(const char *s, util_err *err)
{
	return dest_parse(s, NULL, err);
}

/* A word for the remote shell, in single quotes. */
static void push_quoted(char **cmd, const char *word)
{
	util_append(cmd, "%s'", *cmd && **cmd ? " " : "");
	for (const char *p = word; *p; p++)
		util_append(cmd, *p == '\'' ? "'\\''" : "%c", *p);
	util_append(cmd, "'");
}

/* ssh's argv: the user's command line split at spaces, the port, no
 * terminal and no escape character (the channel carries binary data),
 * the host, and qvm's receive verb on it. */
static char **ssh_argv(const lc_migrate_opts *o, const dest *d)
{
	_cleanup_free_ char *line = util_xstrdup(o->ssh && *o->ssh ? o->ssh : "ssh");
	_cleanup_free_ char *cmd = NULL;
	char host[256], *save = NULL;
	util_strv sv = { 0 };

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	for (char *w = strtok_r(line, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
		util_strv_push(&sv, w);
	if (d->port) {
		util_strv_push(&sv, "-p");
		util_strv_push(&sv, d->port);
	}
	util_strv_push(&sv, "-T");
	util_strv_push(&sv, "-e");
	util_strv_push(&sv, "none");
	if (d->user)
		util_strv_pushf(&sv, "%s@%s", d->user, d->host);
	else
		util_strv_push(&sv, d->host);
	push_quoted(&cmd, o->remote_qvm ? o->remote_qvm : "qvm");
	if (o->remote_root) {
		push_quoted(&cmd, "--root");
		push_quoted(&cmd, o->remote_root);
	}
	push_quoted(&cmd, "__receive");
	push_quoted(&cmd, "--from");
	push_quoted(&cmd, host);
	util_strv_push(&sv, cmd);
	return util_strv_steal(&sv);
}

/* ---- the offer ------------------------------------------------------------------------------- */

/* The SHA-256 of disk d's base image, for the destination to compare
 * with its own (NULL: a blank disk). New string. */
static int base_sha256(const char *root, const lc_disk *d, char **ret, util_err *err)
{
	_cleanup_stor_image_ stor_image img = { 0 };
	_cleanup_close_ int fd = -1;
	uint64_t size;
	char hex[65];
	int r;

	*ret = NULL;
	if (!d->backing)
		return 0;
	if (d->source && d->source[0] != '/') {
		r = stor_image_get(root, d->source, &img, err);
		if (r < 0)
			return util_err_prefix(err, "disk %u", d->id);
		*ret = util_xstrdup(img.sha256);
		return 0;
	}
	fd = open(d->backing, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || util_sha256_fd(fd, &size, hex) < 0)
		return util_err_errno(err, -errno, "cannot read the base image %s", d->backing);
	*ret = util_xstrdup(hex);
	return 0;
}

/* Bytes file path takes (what the destination must have room for). */
static uint64_t allocated(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* The offer: the definition (a blank disk's size as it is now, which a
 * resize may have changed), the bases' hashes, the room it needs. */
static int make_offer(const char *root, const lc_vm *vm, json_t **ret, util_err *err)
{
	json_t *def = lc_vmdef_to_json(&vm->def), *bases = json_object();
	uint64_t bytes =
	        vm->checkpoint
	                ? (uint64_t)json_integer_value(json_object_get(vm->checkpoint, "size"))
	                : (vm->state == LC_ACTIVE ? vm->def.memory : 0);

	for (size_t i = 0; i < vm->def.n_disks; i++) {
		const lc_disk *d = &vm->def.disks[i];
		_cleanup_free_ char *sha = NULL;
		uint64_t size;
		char key[16];
		int r = base_sha256(root, d, &sha, err);

		if (r < 0) {
			json_decref(def);
			json_decref(bases);
			return r;
		}
		snprintf(key, sizeof(key), "%u", d->id);
		if (sha)
			json_object_set_new(bases, key, json_string(sha));
		else if (!d->source || util_parse_size(d->source, &size, NULL) < 0 ||
		         size != d->size)
			json_object_set_new(json_array_get(json_object_get(def, "disks"), i),
			                    "source", json_sprintf("%" PRIu64 "B", d->size));
		bytes += allocated(d->path);
	}
	*ret = json_pack("{s:s, s:o, s:o, s:I}", "op", "offer", "definition", def, "bases", bases,
	                 "bytes", (json_int_t)bytes);
	return 0;
}

/* ---- the migration ----------------------------------------------------------------------------
 */

typedef struct mig {
	const char *root, *name;
	const lc_migrate_opts *o;
	dest d;
	util_child ssh;
	lc_wire w;
	bool runs, paused; /* the guest runs (paused) here: it is checkpointed to move */
	bool suspended;    /* ... and that was done */
	bool in_doubt;     /* the connection broke during the commit */
	uint64_t intent;   /* the open migrate intent's seq */
	int64_t t0, t_pause, t_resume;
	lc_state moved_as; /* the state it went in */
	char *uuid;
	uint64_t total; /* bytes of the files to send */
	int fds[LC_DISKS_MAX + 1];
	size_t n_fds;
} mig;

static void mig_progress(void *ud, uint64_t done)
{
	mig *m = ud;

	if (m->o->progress)
		m->o->progress(m->o->progress_ud, done, m->total);
}

/* What the connection's end said, for a message: ssh's last line. */
static int conn_failed(mig *m, int r, util_err *err)
{
	_cleanup_free_ char *said = NULL;

	if (m->ssh.pid <= 0 || (r != -EPIPE && r != -ECONNRESET))
		return r;
	/* ssh has ended or ends now: what it printed says why */
	close(TAKE_FD(m->w.out));
	m->ssh.to_fd = -1;
	util_child_end(&m->ssh, 0);
	said = util_child_stderr(&m->ssh);
	return util_err_prefix(err, "%s%s%s", *said ? "ssh: " : "", said,
	                       *said ? "" : "the destination's qvm ended");
}

static int connect_dest(mig *m, util_err *err)
{
	_cleanup_strv_ char **argv = ssh_argv(m->o, &m->d);
	int r = util_spawn_piped(argv, &m->ssh, err);

	if (r < 0)
		return r;
	lc_wire_init(&m->w, m->ssh.from_fd, m->ssh.to_fd);
	return 0;
}

/* Offer the VM as it is now; the destination checks and defines it. */
static int offer(mig *m, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	json_t *msg = NULL;
	lc_vm *vm;
	int r = lc_db_open_vm(m->root, m->name, &db, &vm, err);

	if (r < 0)
		return r;
	if (m->o->live)
		return util_err_set(
		        err, -EOPNOTSUPP,
		        "live migration (--live) is not built yet; without --live a running vm is suspended, moved and resumed");
	if (vm->state == LC_ACTIVE && (vm->lcm == LC_LCM_RUNNING || vm->lcm == LC_LCM_PAUSED)) {
		m->runs = true;
		m->paused = vm->lcm == LC_LCM_PAUSED;
	} else if (vm->state != LC_POWEROFF && vm->state != LC_UNDEPLOYED &&
	           vm->state != LC_SUSPENDED && vm->state != LC_STOPPED) {
		_cleanup_free_ char *st = lc_state_text(vm);

		return util_err_set(
		        err, -EBUSY,
		        "it is %s; migrate needs ACTIVE/RUNNING, ACTIVE/PAUSED, SUSPENDED, STOPPED, POWEROFF or UNDEPLOYED",
		        st);
	}
	r = make_offer(m->root, vm, &msg, err);
	m->uuid = util_xstrdup(vm->def.uuid);
	lc_db_close(TAKE_PTR(db));
	if (r == 0)
		r = connect_dest(m, err);
	if (r == 0)
		r = lc_wire_send(&m->w, msg, err);
	else
		json_decref(msg);
	if (r == 0)
		r = lc_wire_reply(&m->w, NULL, err);
	if (r == -EREMOTEIO)
		return util_err_prefix(err, "%s refused it", m->d.host);
	return r < 0 ? conn_failed(m, r, err) : 0;
}

/* Open the files to send: the owned disks and the checkpoint (checked
 * against its recorded hash first); the list the destination gets. */
static int open_files(mig *m, lc_cmd *c, json_t **ret, util_err *err)
{
	json_t *files = json_array();
	int r = 0;

	for (size_t i = 0; r == 0 && i < c->vm->def.n_disks; i++) {
		const lc_disk *d = &c->vm->def.disks[i];
		struct stat st;
		int fd;

		if (!d->owned)
			continue;
		fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st) < 0) {
			r = util_err_errno(err, -errno, "cannot open disk %u (%s)", d->id, d->path);
			if (fd >= 0)
				close(fd);
			break;
		}
		m->fds[m->n_fds++] = fd;
		m->total += (uint64_t)st.st_blocks * 512;
		json_array_append_new(files, json_pack("{s:i, s:I}", "disk", d->id, "size",
		                                       (json_int_t)st.st_size));
	}
	if (r == 0 && c->vm->checkpoint) {
		int fd;

		_cleanup_free_ char *dir = lc_vm_dir(c->db, c->h.id);
		_cleanup_free_ char *path = util_xasprintf("%s/checkpoint", dir);

		r = lc_checkpoint_open(c->root, c->vm, &fd, err);
		if (r == 0) {
			m->fds[m->n_fds++] = fd;
			m->total += allocated(path);
			json_array_append_new(
			        files, json_pack("{s:O}", "size",
			                         json_object_get(c->vm->checkpoint, "size")));
		}
	}
	if (r < 0) {
		json_decref(files);
		return r;
	}
	*ret = files;
	return 0;
}

static int send_files(mig *m, lc_cmd *c, util_err *err)
{
	json_t *files = NULL, *f;
	size_t i;
	int r = open_files(m, c, &files, err);

	if (r < 0)
		return r;
	r = lc_wire_send(&m->w, json_pack("{s:s, s:O}", "op", "files", "files", files), err);
	json_array_foreach (files, i, f) {
		if (r < 0)
			break;
		r = lc_wire_send_file(&m->w, m->fds[i],
		                      (uint64_t)json_integer_value(json_object_get(f, "size")),
		                      mig_progress, m, err);
		if (r == 0 && json_object_get(f, "disk"))
			util_stop_point("migrate-after-disk");
	}
	json_decref(files);
	return r < 0 ? conn_failed(m, r, err) : 0;
}

/* ---- the source's intent ---------------------------------------------------------------------
 * "migrate" on the VM, open while the VM lock is held from before the files
 * move to after its files are gone, naming where it goes and how it is
 * reached. Its "step" says what a qvm that died had done: "send" (the
 * destination has not committed: it stays here), "commit" (the commit was
 * sent: only the destination knows), "handed-over" (the destination
 * answered the commit: it is there, this host finishes DONE). Each step is
 * the old intent closed and the new one opened, in one sync. */

static json_t *intent_data(const mig *m, const char *step)
{
	return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s}", "to", m->d.host, "dest",
	                 m->o->dest, "uuid", m->uuid, "ssh", m->o->ssh, "remote_qvm",
	                 m->o->remote_qvm, "remote_root", m->o->remote_root, "step", step);
}

/* Open the intent at step (closing the one before it with result). */
static int intent_step(mig *m, uint64_t id, const char *step, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	int r = lc_db_open(m->root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	lc_db_group_begin(db);
	if (m->intent)
		r = lc_db_done(db, m->intent, step, err);
	if (r == 0)
		r = lc_db_intent(db, "migrate", id, intent_data(m, step), &m->intent, err);
	return r < 0 ? r : lc_db_group_commit(db, err);
}

/* Close the intent with result (the migration ended here). */
static int intent_close(mig *m, const char *result, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	int r = m->intent ? lc_db_open(m->root, LC_DB_WRITE, &db, err) : 0;

	if (r == 0 && m->intent)
		r = lc_db_done(db, m->intent, result, err);
	if (r == 0)
		m->intent = 0;
	return r;
}

/* The commit. 1: the destination has it; 0 with err: it refused (and
 * undid its half) or never got it; negative: the connection broke while
 * the answer was awaited, and which host has the VM is not known here. */
static int commit(mig *m, lc_cmd *c, util_err *err)
{
	_cleanup_json_ json_t *reply = NULL;
	json_t *ck = c->vm->checkpoint;
	int r = intent_step(m, c->h.id, "commit", err);

	if (r < 0)
		return 0; /* nothing sent: not a commit */
	r = lc_wire_send(&m->w,
	                 json_pack("{s:s, s:s, s:O?}", "op", "commit", "state",
	                           lc_state_name(c->vm->state), "checkpoint",
	                           ck ? json_pack("{s:O, s:O}", "size", json_object_get(ck, "size"),
	                                          "sha256", json_object_get(ck, "sha256"))
	                              : NULL),
	                 err);

	/* a commit line not written whole was not taken */
	if (r < 0) {
		conn_failed(m, r, err);
		return 0;
	}
	util_crash_point("migrate-after-commit");
	util_stop_point("migrate-after-commit");
	r = lc_wire_recv(&m->w, &reply, err);
	if (r < 0)
		return conn_failed(m, r, err);
	if (json_is_true(json_object_get(reply, "ok")))
		return 1;
	util_err_set(err, -EREMOTEIO, "%s could not take it: %s", m->d.host,
	             json_string_value(json_object_get(reply, "error")) ?: "the commit failed");
	return 0;
}

/* Its files here go and the intent closes: it is DONE here. */
static int finish_here(lc_db *db, lc_vm *vm, uint64_t seq, util_err *err)
{
	int r = lc_remove_vm_files(db, vm, false, err);

	return r < 0 ? r : lc_db_done(db, seq, "ok", err);
}

/* The destination has the VM: the hand-over recorded, here it ends DONE,
 * then its files go. */
static int hand_over(mig *m, lc_cmd *c, util_err *err)
{
	_cleanup_free_ char *reason = util_xasprintf("migrated to %s", m->d.host);
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	int r;

	lc_cmd_let_go(c);
	r = intent_step(m, c->h.id, "handed-over", err);
	util_crash_point("migrate-after-handover");
	if (r == 0)
		r = lc_record(m->root, c->h.id, LC_DONE, LC_LCM_NONE, reason, NULL,
		              json_pack("{s:n}", "checkpoint"), err);
	util_crash_point("migrate-after-done");
	if (r == 0)
		r = lc_db_open(m->root, LC_DB_WRITE, &db, err);
	if (r == 0 && !(vm = lc_db_vm_by_id(db, c->h.id)))
		r = util_err_set(err, -ENOENT, "vm %" PRIu64 " is gone", c->h.id);
	if (r == 0)
		r = finish_here(db, vm, m->intent, err);
	if (r == 0)
		m->intent = 0;
	return r < 0 ? util_err_prefix(err, "it runs on %s now, but here", m->d.host) : 0;
}

/* The commit's answer was lost: ask the destination again, over a new
 * connection, whether it has the VM (it waits for an open receive of it to
 * end). 1: it has it; 0: it has not; negative: still not known. */
static int ask_again(mig *m, const char *uuid)
{
	_cleanup_json_ json_t *reply = NULL;
	util_err e = { 0 };
	int r;

	if (m->ssh.pid > 0)
		util_child_end(&m->ssh, SIGKILL);
	util_child_clear(&m->ssh);
	lc_wire_clear(&m->w);
	r = connect_dest(m, &e);
	if (r == 0)
		r = lc_wire_send(&m->w, json_pack("{s:s, s:s}", "op", "ask", "uuid", uuid), &e);
	if (r == 0)
		r = lc_wire_reply(&m->w, &reply, &e);
	util_trace("migrate: asked %s again: %s", m->d.host,
	           r < 0                                         ? e.msg
	           : json_is_true(json_object_get(reply, "has")) ? "it has it"
	                                                         : "it has not");
	if (r < 0)
		return r;
	return json_is_true(json_object_get(reply, "has")) ? 1 : 0;
}

/* With the VM held and as it will be moved (not running): send and commit. */
static int move_held(mig *m, lc_cmd *c, bool *ret_moved, util_err *err)
{
	lc_state s = c->vm->state;
	int r;

	*ret_moved = false;
	if (s != LC_POWEROFF && s != LC_UNDEPLOYED && s != LC_SUSPENDED && s != LC_STOPPED) {
		_cleanup_free_ char *st = lc_state_text(c->vm);

		return util_err_set(err, -EBUSY, "it became %s meanwhile", st);
	}
	r = intent_step(m, c->h.id, "send", err);
	util_crash_point("migrate-after-intent");
	if (r == 0)
		r = send_files(m, c, err);
	util_crash_point("migrate-after-files");
	if (r < 0)
		return r; /* the destination has not committed: it undoes its half */
	r = commit(m, c, err);
	if (r < 0) {
		int q = ask_again(m, m->uuid);

		if (q >= 0)
			r = q;
		if (q == 1)
			util_err_clear(err);
	}
	if (r < 0) {
		/* the destination may have committed: this host must not run it */
		m->in_doubt = true;
		return util_err_prefix(
		        err,
		        "the connection to %s broke during the commit; it stays %s here, and the next command on it here asks %s again which host has it",
		        m->d.host, lc_state_name(s), m->d.host);
	}
	if (r == 0)
		return err->code ? err->code : -EREMOTEIO;
	*ret_moved = true;
	m->moved_as = s;
	return hand_over(m, c, err);
}

/* Add "; what" to the message err holds. */
static void err_suffix(util_err *err, const char *what)
{
	size_t len = strlen(err->msg);

	snprintf(err->msg + len, sizeof(err->msg) - len, "; %s", what);
}

static int ask_again(mig *m, const char *uuid);

static int send_resume(mig *m, util_err *err)
{
	int r = lc_wire_send(&m->w, json_pack("{s:s, s:b}", "op", "resume", "pause", m->paused),
	                     err);

	return r < 0 ? r : lc_wire_reply(&m->w, NULL, err);
}

/* Where it ran: resume it on the destination (paused again if it was),
 * over a new connection if the first one broke since the commit. */
static int resume_there(mig *m, util_err *err)
{
	int r = send_resume(m, err);

	if (r < 0 && r != -EREMOTEIO && ask_again(m, m->uuid) == 1) {
		util_err_clear(err);
		r = send_resume(m, err);
	}
	m->t_resume = util_now_ms();
	if (r < 0) {
		conn_failed(m, r, err);
		return util_err_prefix(
		        err,
		        "it is on %s, SUSPENDED, but could not be resumed there ('qvm resume %s' there)",
		        m->d.host, m->name);
	}
	return 0;
}

/* It ran and was suspended for the move, which failed: it runs here again. */
static void resume_here(mig *m, util_err *err)
{
	util_err e = { 0 };
	_cleanup_free_ char *what = NULL;
	int r = lc_vm_resume(m->root, m->name, &m->o->run, &e);

	if (r == 0 && m->paused)
		r = lc_vm_pause(m->root, m->name, true, &m->o->run, &e);
	what = r == 0 ? util_xstrdup("it runs here again")
	              : util_xasprintf("it could not be resumed here (%s): 'qvm resume %s'", e.msg,
	                               m->name);
	err_suffix(err, what);
}

static void mig_clear(mig *m)
{
	for (size_t i = 0; i < m->n_fds; i++)
		close(m->fds[i]);
	m->n_fds = 0;
	if (m->ssh.pid > 0) {
		/* closing the wire tells the destination to undo what it has */
		m->ssh.to_fd = m->w.out;
		util_child_end(&m->ssh, 0);
	}
	util_child_clear(&m->ssh);
	lc_wire_clear(&m->w);
	dest_clear(&m->d);
	free(m->uuid);
	m->uuid = NULL;
}

static json_t *result(mig *m, int64_t t_end)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I}", "vm", m->name, "to", m->d.host, "state",
	                      m->suspended ? (m->paused ? "ACTIVE/PAUSED" : "ACTIVE/RUNNING")
	                                   : lc_state_name(m->moved_as),
	                      "time_ms", (json_int_t)(t_end - m->t0), "bytes",
	                      (json_int_t)m->w.bytes_out);

	/* how long the guest was paused: only for one that ran */
	if (m->suspended)
		json_object_set_new(j, "downtime_ms", json_integer(m->t_resume - m->t_pause));
	return j;
}

/* The move after the offer was taken: checkpoint a running guest, hold
 * the VM, send, commit, hand over. */
static int move(mig *m, bool *ret_moved, util_err *err)
{
	lc_cmd c;
	int r = 0;

	if (m->runs) {
		m->t_pause = util_now_ms();
		r = lc_vm_suspend(m->root, m->name, false, &m->o->run, err);
		util_crash_point("migrate-after-suspend");
		if (r < 0)
			return r; /* its rollback let the guest go on */
		m->suspended = true;
	}
	r = lc_cmd_hold(&c, m->root, m->name, &m->o->run, err);
	if (r == 0) {
		r = move_held(m, &c, ret_moved, err);
		/* not moved and known not to be there: it stays here */
		if (r < 0 && !*ret_moved && !m->in_doubt)
			intent_close(m, "rolled-back", NULL);
		r = lc_cmd_end(&c, r);
	}
	return r;
}

int lc_vm_migrate(const char *root, const char *name, const lc_migrate_opts *o, json_t **ret,
                  util_err *err)
{
	mig m = { .root = root,
		  .name = name,
		  .o = o,
		  .t0 = util_now_ms(),
		  .ssh = { .to_fd = -1, .from_fd = -1, .err_fd = -1 } };
	bool moved = false;
	int r;

	/* a destination that goes away must be an error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	r = dest_parse(o->dest, &m.d, err);
	if (r == 0)
		r = offer(&m, err);
	util_crash_point("migrate-after-offer");
	if (r == 0)
		r = move(&m, &moved, err);
	if (moved && m.suspended) {
		int q = resume_there(&m, err);

		r = r < 0 ? r : q;
	}
	if (r == 0) {
		lc_wire_send(&m.w, json_pack("{s:s}", "op", "end"), NULL);
		if (ret)
			*ret = result(&m, util_now_ms());
	}
	mig_clear(&m);
	if (r < 0 && !moved && m.suspended && !m.in_doubt)
		resume_here(&m, err);
	return r < 0 ? util_err_prefix(err, "cannot migrate '%s' to %s", name, o->dest) : 0;
}

/* ---- settling the intent of a migrating qvm that died -------------------------------------- */

/* The open migrate intent of VM id (borrowed), and its seq; NULL if none. */
static json_t *migrate_intent(lc_db *db, uint64_t id, uint64_t *ret_seq)
{
	const char *key;
	json_t *in;

	json_object_foreach (lc_db_intents(db), key, in)
		if ((uint64_t)json_integer_value(json_object_get(in, "id")) == id &&
		    util_streq(json_string_value(json_object_get(in, "op")), "migrate")) {
			*ret_seq = strtoull(key, NULL, 10);
			return in;
		}
	return NULL;
}

/* The destination has it: DONE here, its files gone, the intent closed. */
static int settle_handed_over(lc_db *db, uint64_t seq, json_t *data, lc_vm *vm, util_err *err)
{
	_cleanup_free_ char *reason =
	        util_xasprintf("migrated to %s", json_string_value(json_object_get(data, "to")));
	int r = 0;

	if (vm->state != LC_DONE)
		r = lc_db_append_state(db, vm->id, LC_DONE,
		                       json_pack("{s:s, s:I, s:s, s:s, s:s, s:n}", "type", "state",
		                                 "id", (json_int_t)vm->id, "state", "DONE", "lcm",
		                                 "", "reason", reason, "checkpoint"),
		                       err);
	return r < 0 ? r : finish_here(db, vm, seq, err);
}

/* What the store's recovery can settle locally: before the commit it stays
 * here (the destination undid its half when the connection closed), after
 * the hand-over it is the destination's. A commit sent and not answered is
 * left to settle_migrate, which asks the destination. */
static int recover_migrate(lc_db *db, uint64_t seq, json_t *intent, util_err *err)
{
	json_t *data = json_object_get(intent, "data");
	const char *step = json_string_value(json_object_get(data, "step"));
	lc_vm *vm = lc_db_vm_by_id(db, (uint64_t)json_integer_value(json_object_get(intent, "id")));

	if (!vm)
		return lc_db_done(db, seq, "ok", err);
	if (util_streq(step, "handed-over"))
		return settle_handed_over(db, seq, data, vm, err);
	if (util_streq(step, "commit"))
		return 0;
	return lc_db_done(db, seq, "rolled-back", err);
}

/* Ask the destination named in data whether it has the VM: 1 yes, 0 no,
 * negative (err) when it cannot be asked. */
static int ask_dest(json_t *data, util_err *err)
{
	lc_migrate_opts o = {
		.dest = json_string_value(json_object_get(data, "dest")),
		.ssh = json_string_value(json_object_get(data, "ssh")),
		.remote_qvm = json_string_value(json_object_get(data, "remote_qvm")),
		.remote_root = json_string_value(json_object_get(data, "remote_root")),
	};
	mig m = { .o = &o, .ssh = { .to_fd = -1, .from_fd = -1, .err_fd = -1 } };
	_cleanup_json_ json_t *reply = NULL;
	int r = o.dest ? dest_parse(o.dest, &m.d, err) : util_err_set(err, -EBADMSG, "no dest");

	signal(SIGPIPE, SIG_IGN);
	if (r == 0)
		r = connect_dest(&m, err);
	if (r == 0)
		r = lc_wire_send(
		        &m.w,
		        json_pack("{s:s, s:O}", "op", "ask", "uuid", json_object_get(data, "uuid")),
		        err);
	if (r == 0)
		r = lc_wire_reply(&m.w, &reply, err);
	if (r < 0)
		r = conn_failed(&m, r, err);
	else
		r = json_is_true(json_object_get(reply, "has")) ? 1 : 0;
	mig_clear(&m);
	return r;
}

/* With the VM lock held: an open migrate intent is one whose qvm died. A
 * commit sent but not answered is settled by asking the destination (with
 * no database open meanwhile); while it cannot be asked, the VM stays as
 * it is here and no command may run it. */
static int settle_migrate(const char *root, uint64_t id, util_err *err)
{
	static const char *const ops[] = { "migrate", NULL };
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_json_ json_t *data = NULL;
	_cleanup_free_ char *name = NULL;
	uint64_t seq = 0;
	json_t *in;
	util_err e = { 0 };
	int r = lc_db_open(root, 0, &db, err), has;

	if (r < 0 || !(in = migrate_intent(db, id, &seq)))
		return r;
	data = json_deep_copy(json_object_get(in, "data"));
	name = util_xstrdup(lc_db_vm_by_id(db, id) ? lc_db_vm_by_id(db, id)->def.name : "?");
	lc_db_close(TAKE_PTR(db));
	if (!util_streq(json_string_value(json_object_get(data, "step")), "commit")) {
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
		if (r == 0)
			r = lc_db_recover_vm(db, id, ops, err);
		return r < 0 ? r : 1;
	}
	has = ask_dest(data, &e);
	util_trace("migrate: settling '%s': %s", name,
	           has < 0 ? e.msg
	           : has   ? "the destination has it"
	                   : "it has not");
	if (has < 0)
		return util_err_set(
		        err, -EHOSTUNREACH,
		        "vm '%s' is held: its migration to %s died after sending the commit and %s cannot be asked whether it took it (%s); it stays here, not runnable, until %s can be asked: see 'qvm show %s' there, then run any command on it here again",
		        name, json_string_value(json_object_get(data, "to")),
		        json_string_value(json_object_get(data, "to")), e.msg,
		        json_string_value(json_object_get(data, "to")), name);
	r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r == 0 && !(in = migrate_intent(db, id, &seq)))
		return 1;
	if (r == 0 && has)
		r = settle_handed_over(db, seq, data, lc_db_vm_by_id(db, id), err);
	else if (r == 0)
		r = lc_db_done(db, seq, "rolled-back", err);
	if (r == 0 && has)
		/* the command asked for a vm that is not here any more */
		return util_err_set(
		        err, -ENOENT,
		        "vm '%s' is on %s now: its migration's qvm died after the commit, which %s took; it is DONE here and its files are gone",
		        name, json_string_value(json_object_get(data, "to")),
		        json_string_value(json_object_get(data, "to")));
	return r < 0 ? r : 1;
}

__attribute__((constructor)) static void register_migrate(void)
{
	lc_store_on_intent("migrate", recover_migrate);
	lc_on_settle(LC_SETTLE_ON_HOLD | LC_SETTLE_ON_READ, 6, settle_migrate);
}
