/* Commands that drive running VMs — start, shutdown, poweroff, reboot,
 * pause, delete of a running VM, recover, boot — and the reconciliation of
 * the journal with reality when a supervisor has died. Each command holds
 * the VM lock for its whole run; the journal lock only while it records. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cloudinit.h"
#include "network.h"
#include "run.h"
#include "snapshot.h"
#include "storage/storage.h"

#define SPAWN_TIMEOUT_MS 60000

/* ---- paths, records, files -------------------------------------------------------- */

void lc_paths_init(lc_paths *p, const char *root, uint64_t id)
{
	p->vmdir = util_xasprintf("%s/vms/%" PRIu64, root, id);
	p->rundir = util_xasprintf("%s/run/%" PRIu64, root, id);
	p->qmp_event = util_xasprintf("%s/qmp-event.sock", p->rundir);
	p->qmp_command = util_xasprintf("%s/qmp.sock", p->rundir);
	p->console = util_xasprintf("%s/console.sock", p->rundir);
	p->serial_log = util_xasprintf("%s/console.log", p->vmdir);
	p->qemu_log = util_xasprintf("%s/qemu.log", p->vmdir);
	p->sup_log = util_xasprintf("%s/supervisor.log", p->vmdir);
}

void lc_paths_clear(lc_paths *p)
{
	free(p->vmdir);
	free(p->rundir);
	free(p->qmp_event);
	free(p->qmp_command);
	free(p->console);
	free(p->serial_log);
	free(p->qemu_log);
	free(p->sup_log);
	memset(p, 0, sizeof(*p));
}

char *lc_console_path(const char *root, uint64_t id)
{
	return util_xasprintf("%s/run/%" PRIu64 "/console.sock", root, id);
}

int lc_console_attach(const char *root, const lc_vm *vm, int *ret_fd, int *ret_lock, util_err *err)
{
	_cleanup_free_ char *path = lc_console_path(root, vm->id);
	_cleanup_free_ char *lock = util_xasprintf("%s/run/%" PRIu64 "/console.lock", root, vm->id);
	_cleanup_close_ int fd = -1, held = -1;
	int r;

	if (vm->state != LC_ACTIVE)
		return util_err_set(err, -EPERM,
		                    "cannot attach to the console of '%s': it is %s, not running",
		                    vm->def.name, lc_state_name(vm->state));
	r = util_lock_path(lock, true, 0, &held, err);
	if (r == -EBUSY)
		return util_err_set(
		        err, -EBUSY,
		        "cannot attach to the console of '%s': another console is attached; leave that one first (Ctrl-])",
		        vm->def.name);
	if (r == 0)
		r = util_unix_connect(path, &fd, err);
	if (r < 0)
		return util_err_prefix(err, "cannot attach to the console of '%s'", vm->def.name);
	*ret_fd = TAKE_FD(fd);
	*ret_lock = TAKE_FD(held);
	return 0;
}

int lc_record(const char *root, uint64_t id, lc_state state, lc_lcm lcm, const char *reason,
              const char *error, json_t *extra, util_err *err)
{
	_cleanup_json_ json_t *more = extra;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	json_t *rec;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	if (!lc_db_vm_by_id(db, id))
		return util_err_set(err, -ENOENT, "no vm with id %" PRIu64, id);
	rec = json_pack("{s:s, s:I, s:s, s:s}", "type", "state", "id", (json_int_t)id, "state",
	                lc_state_name(state), "lcm", lc_lcm_name(lcm));
	json_object_set_new(rec, "reason", reason ? json_string(reason) : json_null());
	if (error)
		json_object_set_new(rec, "error", json_string(error));
	if (more)
		json_object_update(rec, more);
	return lc_db_append_state(db, id, state, rec, err);
}

json_t *lc_shutdown_intent_json(const lc_vm *vm)
{
	json_t *j = json_pack("{s:I, s:b, s:b}", "timeout_ms", (json_int_t)vm->timeout_ms,
	                      "hard_after", vm->hard_after, "sent", vm->request_sent);

	if (vm->target)
		json_object_set_new(j, "target", json_string(vm->target));
	if (vm->prev_state)
		json_object_set_new(j, "prev", json_string(vm->prev_state));
	return j;
}

int lc_record_sent(const char *root, uint64_t id, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r == 0)
		r = lc_db_append(db,
		                 json_pack("{s:s, s:I, s:s}", "type", "sent", "id", (json_int_t)id,
		                           "command", "system_powerdown"),
		                 NULL, err);
	return r;
}

int lc_load_vm(const char *root, uint64_t id, lc_db **ret_db, lc_vm **ret_vm, util_err *err)
{
	lc_db *db = NULL;
	lc_vm *vm;
	int r = lc_db_open(root, 0, &db, err);

	if (r < 0)
		return r;
	vm = lc_db_vm_by_id(db, id);
	if (!vm) {
		lc_db_close(db);
		return util_err_set(err, -ENOENT, "no vm with id %" PRIu64, id);
	}
	*ret_db = db;
	*ret_vm = vm;
	return 0;
}

void lc_remove_rundir(const lc_paths *p)
{
	util_rm_rf(p->rundir, NULL);
}

int lc_remove_vm_files(const lc_db *db, const lc_vm *vm, bool wipe, util_err *err)
{
	lc_paths p;
	int r = 0;

	for (size_t i = 0; i < vm->def.n_disks && r == 0; i++) {
		const lc_disk *d = &vm->def.disks[i];

		if (d->owned && (r = stor_remove_disk(d->path, wipe, err)) < 0)
			util_err_prefix(err, "disk %u", d->id);
	}
	if (r == 0)
		r = lc_seed_remove(lc_db_root(db), vm->id, wipe, err);
	lc_paths_init(&p, lc_db_root(db), vm->id);
	if (r == 0)
		r = util_rm_rf(p.vmdir, err);
	if (r == 0)
		r = util_rm_rf(p.rundir, err);
	lc_paths_clear(&p);
	return r;
}

/* ---- process identity ----------------------------------------------------------------- */

bool lc_vm_supervised(const lc_vm *vm)
{
	return util_proc_alive(vm->supervisor_pid, vm->supervisor_starttime);
}

/* Does /proc/PID/cmdline hold "-uuid\0UUID\0"? The argv builder puts it
 * there, so a QEMU is recognised even when its pid was never recorded. */
static bool cmdline_has_uuid(pid_t pid, const char *uuid)
{
	char path[64];
	_cleanup_free_ char *buf = NULL;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (util_read_file(path, 1 << 20, &buf, &len, NULL) < 0)
		return false;
	for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
		if (!strcmp(buf + off, "-uuid") && off + 6 < len && !strcmp(buf + off + 6, uuid))
			return true;
	return false;
}

/* A cheap first look before reading a command line (which costs much more
 * per process): QEMU names its main thread qvm-ID (-name process=), or is
 * still called qemu-system-* just after exec. */
static bool may_be_qemu(pid_t pid, uint64_t id)
{
	char path[64], comm[32], want[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n <= 0)
		return false;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	snprintf(want, sizeof(want), "qvm-%" PRIu64, id);
	return !strcmp(comm, want) || util_startswith(comm, "qemu-system");
}

int lc_find_qemu(const lc_vm *vm, pid_t *ret_pid, uint64_t *ret_starttime)
{
	DIR *d;
	struct dirent *de;

	*ret_pid = 0;
	*ret_starttime = 0;
	if (util_proc_alive(vm->qemu_pid, vm->qemu_starttime) &&
	    (!vm->def.uuid || cmdline_has_uuid(vm->qemu_pid, vm->def.uuid))) {
		*ret_pid = vm->qemu_pid;
		*ret_starttime = vm->qemu_starttime;
		return 0;
	}
	if (!vm->def.uuid || !(d = opendir("/proc")))
		return 0;
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
		uint64_t start;

		if (pid <= 0 || !may_be_qemu(pid, vm->id) || !cmdline_has_uuid(pid, vm->def.uuid) ||
		    util_proc_starttime(pid, &start, NULL) < 0)
			continue;
		*ret_pid = pid;
		*ret_starttime = start;
		break;
	}
	closedir(d);
	return 0;
}

/* Kill a QEMU (or supervisor) we proved is this VM's, and wait for it. */
static void kill_and_wait(pid_t pid, uint64_t starttime)
{
	int fd = -1;

	if (!util_proc_alive(pid, starttime) || util_pidfd_open(pid, &fd, NULL) < 0)
		return;
	/* re-check through the pidfd: the pid cannot be reused under it now */
	if (util_proc_alive(pid, starttime)) {
		struct pollfd pfd = { fd, POLLIN, 0 };

		syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
		poll(&pfd, 1, 10000);
	}
	close(fd);
}

static int wait_pid_exit(pid_t pid, uint64_t starttime, int timeout_ms)
{
	struct pollfd pfd = { -1, POLLIN, 0 };
	int r;

	if (!util_proc_alive(pid, starttime) || util_pidfd_open(pid, &pfd.fd, NULL) < 0)
		return 0;
	r = util_proc_alive(pid, starttime) ? poll(&pfd, 1, timeout_ms) : 1;
	close(pfd.fd);
	return r > 0 ? 0 : -ETIMEDOUT;
}

int lc_vm_usage(const lc_vm *vm, double *ret_cpu, uint64_t *ret_rss, util_err *err)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0, start = 0, rss = 0;
	double uptime = 0, hz = (double)sysconf(_SC_CLK_TCK), alive;
	_cleanup_free_ char *up = NULL;
	int fd, field;
	ssize_t n;

	if (!util_proc_alive(vm->qemu_pid, vm->qemu_starttime))
		return util_err_set(err, -ESRCH, "no qemu runs '%s'", vm->def.name);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)vm->qemu_pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return util_err_errno(err, -errno, "cannot read '%s'", path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || !(p = strrchr((buf[n] = '\0', buf), ')')))
		return util_err_set(err, -EIO, "cannot parse '%s'", path);
	p += 2;
	for (field = 3; p && field <= 24; field++, p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL) {
		if (field == 14)
			ut = strtoull(p, NULL, 10);
		else if (field == 15)
			st = strtoull(p, NULL, 10);
		else if (field == 22)
			start = strtoull(p, NULL, 10);
		else if (field == 24)
			rss = strtoull(p, NULL, 10);
	}
	if (util_read_file("/proc/uptime", 256, &up, NULL, NULL) == 0)
		uptime = strtod(up, NULL);
	alive = uptime - (double)start / hz;
	*ret_cpu = alive > 0 ? 100.0 * (double)(ut + st) / hz / alive : 0;
	*ret_rss = rss * (uint64_t)sysconf(_SC_PAGESIZE);
	return 0;
}

/* ---- the supervisor ------------------------------------------------------------------- */

/* The CLI's verb for the supervisor (lc_set_supervisor_verb). */
static const char *supervisor_verb;

void lc_set_supervisor_verb(const char *verb)
{
	supervisor_verb = verb;
}

int lc_spawn_supervisor(const char *root, uint64_t id, int lock_fd, bool adopt, bool until_spawned,
                        int timeout_ms, util_err *err)
{
	char self[PATH_MAX], idtext[24], buf[4096];
	int status_pipe[2], status;
	_cleanup_free_ char *logpath = NULL;
	size_t len = 0;
	pid_t child;
	ssize_t n;
	lc_paths p;
	int64_t deadline;
	_cleanup_json_ json_t *reply = NULL;

	if (!supervisor_verb)
		return util_err_set(err, -ENOSYS,
		                    "cannot start a supervisor for vm %" PRIu64
		                    ": no supervisor command is set (lc_set_supervisor_verb)",
		                    id);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return util_err_errno(err, -errno, "cannot find qvm's own binary");
	self[n] = '\0';
	snprintf(idtext, sizeof(idtext), "%" PRIu64, id);
	lc_paths_init(&p, root, id);
	logpath = util_xstrdup(p.sup_log);
	util_mkdir_p(p.vmdir, 0700, NULL);
	lc_paths_clear(&p);
	if (pipe2(status_pipe, O_CLOEXEC) < 0)
		return util_err_errno(err, -errno, "cannot make a pipe for the supervisor");
	child = fork();
	if (child < 0) {
		close(status_pipe[0]);
		close(status_pipe[1]);
		return util_err_errno(err, -errno, "cannot fork the supervisor");
	}
	if (child == 0) {
		/* Detach: a new session, and a second fork so that the
		 * supervisor is nobody's child here and outlives us. */
		char *argv[12];
		int i = 0, logfd, nul, status_w, lock_w = -1;
		sigset_t none;

		setsid();
		if (fork() != 0)
			_exit(0);
		/* no hold on the caller's folder (an unmount, a deleted cwd) */
		if (chdir("/") < 0)
			_exit(126);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Move the two fds out of the way before placing them at 3 and
		 * 4: either may already sit at 3 or 4, and a dup2 onto itself
		 * would keep close-on-exec, so the supervisor would start
		 * without the VM lock (and a reconciliation could take it). */
		status_w = fcntl(status_pipe[1], F_DUPFD_CLOEXEC, 64);
		if (lock_fd >= 0)
			lock_w = fcntl(lock_fd, F_DUPFD_CLOEXEC, 64);
		if (status_w < 0 || (lock_fd >= 0 && lock_w < 0))
			_exit(126);
		/* not close-on-exec: if one lands on 0-2 (a caller without
		 * stdin, say) the dup2 below keeps it; close_range drops the rest */
		nul = open("/dev/null", O_RDWR);
		logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
		    dup2(logfd >= 0 ? logfd : nul, 2) < 0 || dup2(status_w, 3) < 0)
			_exit(126);
		if (lock_w >= 0 && dup2(lock_w, 4) < 0)
			_exit(126);
		close_range(lock_fd >= 0 ? 5 : 4, ~0U, 0);
		argv[i++] = "qvm";
		argv[i++] = "--root";
		argv[i++] = (char *)root;
		argv[i++] = (char *)supervisor_verb;
		argv[i++] = idtext;
		argv[i++] = "--status-fd=3";
		if (lock_fd >= 0)
			argv[i++] = "--lock-fd=4";
		if (adopt)
			argv[i++] = "--adopt";
		argv[i] = NULL;
		/* the environment passes through: QVM_* settings, PATH */
		execv(self, argv);
		_exit(127);
	}
	close(status_pipe[1]);
	waitpid(child, &status, 0);
	util_crash_point(adopt ? "adopt-after-spawn" : "start-after-spawn");

	/* The supervisor's reports, one JSON object a line: {"stage":"spawned"}
	 * once QEMU runs (enough for --no-wait), then the final {"ok":...}; or
	 * EOF if it died. */
	deadline = util_now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd = { status_pipe[0], POLLIN, 0 };
		int64_t left = deadline - util_now_ms();
		char *nl;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			close(status_pipe[0]);
			return util_err_set(
			        err, -ETIMEDOUT,
			        "the supervisor did not report within %d s; see 'qvm show'",
			        timeout_ms / 1000);
		}
		n = read(status_pipe[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			size_t used = (size_t)(nl + 1 - buf);

			*nl = '\0';
			json_decref(reply);
			reply = json_loads(buf, 0, NULL);
			len -= used;
			memmove(buf, buf + used, len + 1); /* the rest, and its NUL */
			if (reply && !json_object_get(reply, "stage"))
				goto final;
			if (reply && until_spawned) {
				close(status_pipe[0]);
				return 0;
			}
			json_decref(TAKE_PTR(reply));
		}
		if (len >= sizeof(buf) - 1)
			len = 0; /* a line longer than any report: not one, drop it */
	}
final:
	close(status_pipe[0]);
	if (!reply)
		return util_err_set(
		        err, -EIO,
		        "the supervisor died before it reported; see %s/vms/%s/supervisor.log",
		        root, idtext);
	if (!json_is_true(json_object_get(reply, "ok"))) {
		int code = (int)json_integer_value(json_object_get(reply, "code"));

		return util_err_set(err, code < 0 ? code : -EIO, "%s",
		                    json_string_value(json_object_get(reply, "error")));
	}
	return 0;
}

/* ---- holding a VM ------------------------------------------------------------------------ */

void lc_held_clear(lc_held *h)
{
	free(h->name);
	if (h->lock >= 0)
		close(h->lock);
	h->lock = -1;
	h->name = NULL;
}

int lc_vm_lock_wait(const char *root, uint64_t id, const char *name, int timeout_ms, int *ret_fd,
                    util_err *err)
{
	_cleanup_free_ char *run = util_xasprintf("%s/run", root);
	_cleanup_free_ char *path = lc_vm_lock_path(root, id);
	int r = util_mkdir_p(run, 0700, err);

	if (r == 0)
		r = util_lock_path(path, true, timeout_ms, ret_fd, err);
	if (r == -EBUSY)
		return util_err_set(
		        err, -EBUSY,
		        "vm '%s' is busy: another qvm command is working on it (waited %d s); try again later",
		        name, timeout_ms / 1000);
	return r;
}

static int reconcile_locked(const char *root, uint64_t id, bool *ret_settle, util_err *err);

/* Resolve the name, take the VM lock (bounded), reconcile. The database is
 * not kept open: commands record through short transactions. */
int lc_hold_vm(const char *root, const char *name, const lc_run_opts *o, lc_held *h, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	bool settle = true;
	lc_vm *vm;
	int r = lc_db_open(root, LC_DB_SUMMARY, &db, err);

	h->lock = -1;
	h->name = NULL;
	if (r == 0)
		r = lc_db_find(db, name, &vm, err);
	if (r < 0)
		return r;
	h->id = vm->id;
	h->name = util_xstrdup(vm->def.name);
	r = lc_vm_lock_wait(root, h->id, h->name,
	                    o && o->lock_timeout_ms ? o->lock_timeout_ms : LC_LOCK_TIMEOUT_MS,
	                    &h->lock, err);
	if (r == 0)
		r = reconcile_locked(root, h->id, &settle, err);
	/* then what a crash cut short: a disk operation, a snapshot operation
	 * (each takes the journal's writer lock: not when nothing is open) */
	if (r >= 0 && settle)
		r = lc_disk_settle(root, h->id, err);
	if (r >= 0 && settle)
		r = lc_snap_settle(root, h->id, err);
	if (r < 0)
		lc_held_clear(h);
	return r < 0 ? r : 0;
}

/* ---- reconciliation ------------------------------------------------------------------------ */

/* With the VM lock held: if the journal says ACTIVE but no live supervisor
 * drives the VM, adopt its QEMU or settle what is left. Returns 1 when it
 * changed something. *ret_settle (may be NULL) is false only when nothing
 * changed and the VM has no open intent: no operation needs settling. */
static int reconcile_locked(const char *root, uint64_t id, bool *ret_settle, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *target = NULL, *prev = NULL, *name = NULL, *reason = NULL;
	lc_paths paths;
	lc_vm *vm;
	pid_t qpid;
	uint64_t qstart;
	lc_lcm lcm;
	lc_state final;
	int changed = 0;
	int r = lc_load_vm(root, id, &db, &vm, err);

	if (r < 0)
		return r;
	if (lc_db_has_intent(db, id, LC_DEF_OPS)) {
		/* a delete or recreate its qvm died in: finish it first */
		lc_db_close(TAKE_PTR(db));
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
		if (r == 0)
			r = lc_db_recover_vm(db, id, err);
		lc_db_close(TAKE_PTR(db));
		if (r < 0)
			return r;
		r = lc_load_vm(root, id, &db, &vm, err);
		if (r < 0)
			return r;
		changed = 1;
	}
	if (vm->state == LC_ACTIVE && vm->lcm == LC_LCM_SHUTDOWN && !vm->request_sent &&
	    vm->prev_state && lc_vm_supervised(vm) &&
	    lc_lcm_parse(vm->prev_state, &lcm, NULL) == 0) {
		/* its qvm died between recording the intent and asking QEMU:
		 * nothing was asked, so nothing happens — back to where it was */
		reason = util_xasprintf(
		        "the %s request was interrupted before it reached qemu; rolled back",
		        vm->target && !strcmp(vm->target, "REBOOT") ? "reboot" : "shutdown");
		lc_db_close(TAKE_PTR(db));
		r = lc_record(root, id, LC_ACTIVE, lcm, reason, NULL, NULL, err);
		return r < 0 ? r : 1;
	}
	if (vm->state == LC_ACTIVE && vm->lcm == LC_LCM_HOTPLUG) {
		/* a nic-attach/detach whose qvm died: complete or undo it */
		lc_db_close(TAKE_PTR(db));
		r = lc_nic_recover_vm(root, id, err);
		if (r < 0)
			return r;
		changed = r > 0;
		r = lc_load_vm(root, id, &db, &vm, err);
		if (r < 0)
			return r;
	}
	/* then, whatever the nic recovery did, a QEMU nobody supervises */
	if (vm->state != LC_ACTIVE || lc_vm_supervised(vm)) {
		if (ret_settle)
			*ret_settle = changed || lc_db_has_intent(db, id, NULL);
		return changed;
	}
	lc_find_qemu(vm, &qpid, &qstart);
	target = vm->target ? util_xstrdup(vm->target) : NULL;
	prev = vm->prev_state ? util_xstrdup(vm->prev_state) : NULL;
	name = util_xstrdup(vm->def.name);
	lcm = vm->lcm;
	if (qpid > 0) {
		util_err aerr = { 0 };

		lc_db_close(TAKE_PTR(db));
		r = lc_spawn_supervisor(root, id, -1, true, false, SPAWN_TIMEOUT_MS, &aerr);
		if (r == 0)
			return 1;
		/* alive but unreachable: its fate is not known */
		r = lc_record(root, id, LC_UNKNOWN, LC_LCM_NONE,
		              "its supervisor died and its qemu cannot be reached", aerr.msg,
		              json_pack("{s:i, s:I, s:i}", "qemu_pid", (int)qpid, "qemu_starttime",
		                        (json_int_t)qstart, "supervisor_pid", 0),
		              err);
		return r < 0 ? r : 1;
	}

	/* QEMU is gone too: finish what was under way */
	lc_paths_init(&paths, root, id);
	lc_remove_rundir(&paths);
	lc_paths_clear(&paths);
	lc_nics_remove_taps(vm);
	if ((lcm == LC_LCM_BOOT || lcm == LC_LCM_PROLOG) && prev &&
	    lc_state_parse(prev, &final, NULL) == 0) {
		reason = util_xstrdup("the start was interrupted before qemu ran; rolled back");
	} else if ((lcm == LC_LCM_SHUTDOWN || lcm == LC_LCM_EPILOG) && target &&
	           lc_state_parse(target, &final, NULL) == 0 && final != LC_ACTIVE) {
		reason = util_xasprintf("%s (finished after its supervisor died)",
		                        final == LC_DONE ? "shut down" : lc_state_name(final));
	} else {
		final = LC_FAILED;
		reason = util_xstrdup("its qemu and its supervisor are gone");
	}
	if (final == LC_DONE) {
		r = lc_remove_vm_files(db, vm, false, err);
		if (r < 0)
			return r;
	}
	lc_db_close(TAKE_PTR(db));
	r = lc_record(root, id, final, LC_LCM_NONE, reason, final == LC_FAILED ? reason : NULL,
	              json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
	                        "supervisor_pid", 0, "supervisor_starttime", 0),
	              err);
	return r < 0 ? r : 1;
}

int lc_vm_reconcile(const char *root, uint64_t id, util_err *err)
{
	_cleanup_close_ int lock = -1;
	_cleanup_free_ char *path = lc_vm_lock_path(root, id);

	int r, s;

	if (util_lock_path(path, true, 0, &lock, NULL) < 0)
		return 0; /* a command holds it and will reconcile */
	r = reconcile_locked(root, id, NULL, err);
	if (r < 0)
		return r;
	s = lc_disk_settle(root, id, err);
	return s < 0 ? s : (r | s);
}

/* ---- QMP commands from qvm --------------------------------------------------------------- */

int lc_command_qmp(const char *root, uint64_t id, const char *name, qmp_client **ret, util_err *err)
{
	lc_paths p;
	int r;

	lc_paths_init(&p, root, id);
	r = qmp_connect_path(p.qmp_command, 0, ret, err);
	lc_paths_clear(&p);
	if (r < 0)
		return util_err_prefix(err, "cannot reach the qemu of '%s'", name);
	return 0;
}

static int vm_now(const char *root, uint64_t id, lc_db **ret_db, lc_vm **ret_vm, util_err *err)
{
	return lc_load_vm(root, id, ret_db, ret_vm, err);
}

char *lc_state_text(const lc_vm *vm)
{
	if (vm->state == LC_ACTIVE)
		return util_xasprintf("ACTIVE/%s", lc_lcm_name(vm->lcm));
	return util_xstrdup(lc_state_name(vm->state));
}

/* ---- start ------------------------------------------------------------------------------ */

/* What a VM needs on the host before QEMU starts, prepared while it is
 * ACTIVE/PROLOG (recorded first, with the state to return to): the owned
 * disk files that are missing (after a recreate or a create that failed
 * part way, or lost), made again from the definition, and its cloud-init
 * seed, rebuilt at each start. A failure returns the VM to prev and
 * removes the disks it made; a crash leaves PROLOG with no supervisor,
 * which reconciliation rolls back to prev as it does an interrupted BOOT,
 * and the disks' intent is settled (their files removed) by
 * lc_disk_settle(). A VM with neither skips PROLOG (its stale seed, if
 * any, is removed). */
static int prolog(const char *root, lc_db *db, lc_held *h, const lc_vm *vm, const char *prev,
                  util_err *err)
{
	/* A VM that uses cloud-init and has nics gets their leases as a
	 * network-config (when the user gave none; see lc_seed_files()),
	 * made now since nic-attach changes them. A VM without cloud-init
	 * gets no seed it did not ask for: an extra disk would move the
	 * guest's device names. */
	_cleanup_free_ char *generated_network_config = NULL, *reason = NULL, *list = NULL;
	lc_prolog_disks made = { 0 };
	unsigned missing[LC_DISKS_MAX];
	size_t n_missing;
	bool seed;
	lc_state back;
	int r;

	if (vm->def.ci_user_data && vm->def.n_nics) {
		_cleanup_json_ json_t *nics = lc_vm_nics_json(db, vm);

		generated_network_config = lc_nics_network_config(nics);
	}
	seed = lc_seed_wanted(&vm->def, generated_network_config);
	n_missing = lc_prolog_missing(&vm->def, missing);
	if (!seed && !n_missing)
		return lc_seed_build(root, h->id, &vm->def, NULL, err);
	for (size_t i = 0; i < n_missing; i++) {
		char *more =
		        util_xasprintf("%s%s%u", list ? list : "", list ? ", " : "", missing[i]);

		free(list);
		list = more;
	}
	if (!n_missing)
		reason = util_xstrdup("start: preparing the cloud-init seed");
	else
		reason = util_xasprintf("start: making missing disk%s %s%s",
		                        n_missing > 1 ? "s" : "", list,
		                        seed ? " and the cloud-init seed" : "");
	r = lc_record(root, h->id, LC_ACTIVE, LC_LCM_PROLOG, reason, NULL,
	              json_pack("{s:s, s:i, s:i, s:i, s:i}", "prev", prev, "qemu_pid", 0,
	                        "qemu_starttime", 0, "supervisor_pid", 0, "supervisor_starttime",
	                        0),
	              err);
	if (r < 0)
		return r;
	r = lc_prolog_disks_make(root, h->id, &vm->def, &made, err);
	if (r == 0) {
		util_crash_point("start-prolog-before-seed");
		r = lc_seed_build(root, h->id, &vm->def, generated_network_config, err);
	}
	if (r == 0) {
		util_crash_point("start-prolog-after-seed");
		r = lc_prolog_disks_end(root, h->id, &vm->def, &made, true, err);
	}
	if (r < 0) {
		util_err ignored = { 0 };

		lc_prolog_disks_end(root, h->id, &vm->def, &made, false, &ignored);
		if (lc_state_parse(prev, &back, NULL) < 0)
			back = LC_FAILED;
		lc_record(root, h->id, back, LC_LCM_NONE,
		          n_missing ? "start failed in PROLOG: its disks or seed could not be made"
		                    : "start failed: no cloud-init seed",
		          err->msg, NULL, &ignored);
		return util_err_prefix(err, "cannot start '%s'", h->name);
	}
	return 0;
}

static int start_held(const char *root, lc_held *h, bool force, bool no_wait, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *prev = NULL;
	lc_vm *vm;
	json_t *extra;
	int r = vm_now(root, h->id, &db, &vm, err);

	if (r < 0)
		return r;
	if (!force) {
		pid_t stray;
		uint64_t stray_start;

		r = lc_state_check(LC_OP_START, h->name, vm->state, vm->lcm, err);
		if (r < 0)
			return r;
		/* never twice: a QEMU of this VM that the journal lost track of */
		lc_find_qemu(vm, &stray, &stray_start);
		if (stray > 0)
			return util_err_set(
			        err, -EEXIST,
			        "cannot start '%s': a qemu of it still runs (pid %d); use 'qvm boot' to replace it or 'qvm recover --success' to adopt it",
			        h->name, (int)stray);
	}
	prev = lc_state_text(vm);
	if (vm->state == LC_ACTIVE || vm->state == LC_UNKNOWN) {
		free(prev);
		prev = util_xstrdup("FAILED");
	}
	r = prolog(root, db, h, vm, prev, err);
	if (r < 0)
		return r;
	lc_db_close(TAKE_PTR(db));
	/* no uptime until it runs (not the last boot's) */
	extra = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "prev", prev, "qemu_pid", 0,
	                  "qemu_starttime", 0, "supervisor_pid", 0, "supervisor_starttime", 0,
	                  "started", 0);
	r = lc_record(root, h->id, LC_ACTIVE, LC_LCM_BOOT, "start", NULL, extra, err);
	if (r < 0)
		return r;
	util_crash_point("start-after-intent");
	/* The supervisor inherits the VM lock and lets go once QEMU runs, so
	 * no reconciliation can mistake a start in flight for a dead one. */
	r = lc_spawn_supervisor(root, h->id, h->lock, false, no_wait, SPAWN_TIMEOUT_MS, err);
	if (r < 0) {
		util_err ignored = { 0 };

		/* a supervisor that died without recording: settle it now,
		 * once it is gone for good (its pipe closes a little before it
		 * exits). If its QEMU was adopted and runs, the start did happen. */
		if (vm_now(root, h->id, &db, &vm, &ignored) == 0)
			wait_pid_exit(vm->supervisor_pid, vm->supervisor_starttime, 5000);
		lc_db_close(TAKE_PTR(db));
		if (reconcile_locked(root, h->id, NULL, &ignored) > 0 &&
		    vm_now(root, h->id, &db, &vm, &ignored) == 0 && vm->state == LC_ACTIVE &&
		    vm->lcm == LC_LCM_RUNNING && lc_vm_supervised(vm)) {
			util_err_clear(err);
			return 0;
		}
		return util_err_prefix(err, "cannot start '%s'", h->name);
	}
	return 0;
}

int lc_vm_start(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = start_held(root, &h, false, opts && opts->no_wait, err);
	lc_held_clear(&h);
	return r;
}

int lc_vm_boot(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	pid_t qpid;
	uint64_t qstart;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = vm_now(root, h.id, &db, &vm, err);
	if (r == 0 &&
	    !(vm->state == LC_UNKNOWN || (vm->state == LC_ACTIVE && vm->lcm == LC_LCM_BOOT)))
		r = util_err_set(
		        err, -EPERM,
		        "cannot boot '%s': it is %s; boot needs UNKNOWN or ACTIVE/BOOT (use start)",
		        h.name,
		        vm->state == LC_ACTIVE ? lc_lcm_name(vm->lcm) : lc_state_name(vm->state));
	if (r == 0) {
		/* never twice: whatever runs this VM goes first */
		kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
		lc_find_qemu(vm, &qpid, &qstart);
		kill_and_wait(qpid, qstart);
		lc_db_close(TAKE_PTR(db));
		r = start_held(root, &h, true, false, err);
	}
	lc_held_clear(&h);
	return r;
}

/* ---- shutdown, poweroff, reboot, pause ------------------------------------------------------ */

/* QEMU died and its supervisor waits on a timer to restart it: ACTIVE/BOOT
 * with no QEMU. The supervisor takes the VM lock before it restarts, so
 * while a command holds the lock, ending it is safe. */
static bool restart_pending(const lc_vm *vm)
{
	return vm->state == LC_ACTIVE && vm->lcm == LC_LCM_BOOT && lc_vm_supervised(vm) &&
	       !util_proc_alive(vm->qemu_pid, vm->qemu_starttime);
}

/* Cancel a pending restart (with the VM lock held): end the waiting
 * supervisor and record target, POWEROFF or DONE (whose files go). */
static int cancel_restart(const char *root, const lc_db *db, const lc_vm *vm, lc_state target,
                          util_err *err)
{
	lc_paths p;
	int r;

	kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
	lc_paths_init(&p, root, vm->id);
	lc_remove_rundir(&p);
	lc_paths_clear(&p);
	lc_nics_remove_taps(vm);
	if (target == LC_DONE) {
		r = lc_remove_vm_files(db, vm, false, err);
		if (r < 0)
			return r;
	}
	return lc_record(root, vm->id, target, LC_LCM_NONE,
	                 target == LC_DONE ? "shut down; its pending restart was cancelled"
	                                   : "powered off; its pending restart was cancelled",
	                 NULL,
	                 json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
	                           "supervisor_pid", 0, "supervisor_starttime", 0),
	                 err);
}

/* Wait for the supervisor to finish (QEMU gone, final state recorded). */
static int wait_supervisor(const lc_vm *vm, int timeout_ms)
{
	return wait_pid_exit(vm->supervisor_pid, vm->supervisor_starttime, timeout_ms);
}

int lc_vm_shutdown(const char *root, const char *name, bool to_done, const lc_run_opts *opts,
                   util_err *err)
{
	static const lc_run_opts none = { 0 };
	const lc_run_opts *o = opts ? opts : &none;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *qmp = NULL;
	_cleanup_free_ char *now = NULL;
	int timeout_s = o->timeout_s > 0 ? o->timeout_s : LC_SHUTDOWN_TIMEOUT_S;
	pid_t sup_pid;
	uint64_t sup_start;
	lc_vm *vm;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = vm_now(root, h.id, &db, &vm, err);
	if (r == 0)
		r = lc_state_check(to_done ? LC_OP_SHUTDOWN : LC_OP_POWEROFF, h.name, vm->state,
		                   vm->lcm, err);
	if (r < 0)
		goto out;
	if (restart_pending(vm)) {
		r = cancel_restart(root, db, vm, to_done ? LC_DONE : LC_POWEROFF, err);
		goto out;
	}
	sup_pid = vm->supervisor_pid;
	sup_start = vm->supervisor_starttime;
	r = lc_command_qmp(root, h.id, h.name, &qmp, err);
	if (r < 0)
		goto out;
	r = lc_record(root, h.id, LC_ACTIVE, LC_LCM_SHUTDOWN,
	              o->hard ? "hard stop requested" : "ACPI shutdown requested", NULL,
	              json_pack("{s:s, s:I, s:b, s:s}", "target", to_done ? "DONE" : "POWEROFF",
	                        "timeout_ms", (json_int_t)timeout_s * 1000, "hard_after",
	                        o->hard_after, "prev", lc_lcm_name(vm->lcm)),
	              err);
	if (r < 0)
		goto out;
	util_crash_point(to_done ? "shutdown-after-intent" : "poweroff-after-intent");
	if (vm->lcm == LC_LCM_PAUSED && !o->hard)
		qmp_execute(qmp, "cont", NULL, 0, NULL, NULL); /* a paused guest cannot hear ACPI */
	r = qmp_execute(qmp, o->hard ? "quit" : "system_powerdown", NULL, 0, NULL, err);
	if (r == -EPIPE && o->hard)
		r = 0; /* quit: QEMU may close before it answers */
	if (r < 0) {
		_cleanup_(lc_db_closep) lc_db *now_db = NULL;
		util_err ignored = { 0 };
		lc_vm *now_vm;

		/* back to where it was, unless its supervisor recorded meanwhile
		 * that QEMU went (the likely reason the request failed) */
		if (lc_load_vm(root, h.id, &now_db, &now_vm, &ignored) == 0 &&
		    now_vm->state == LC_ACTIVE && now_vm->lcm == LC_LCM_SHUTDOWN) {
			lc_db_close(TAKE_PTR(now_db));
			lc_record(root, h.id, LC_ACTIVE, vm->lcm, "the shutdown request failed",
			          err->msg, NULL, &ignored);
		}
		goto out;
	}
	qmp_close(TAKE_PTR(qmp));
	util_crash_point(to_done ? "shutdown-after-send" : "poweroff-after-send");
	lc_record_sent(root, h.id, NULL);
	if (o->no_wait)
		goto out;
	/* the supervisor exits once the final state is recorded; a guest that
	 * ignores ACPI makes it record RUNNING after the timeout instead */
	lc_db_close(TAKE_PTR(db));
	wait_supervisor(&(lc_vm){ .supervisor_pid = sup_pid, .supervisor_starttime = sup_start },
	                o->hard ? 15000 : timeout_s * 1000 + 1500);
	/* a supervisor that died on the way: finish the stop now (a new
	 * supervisor quits a QEMU that is left, then records the end) */
	{
		util_err ignored = { 0 };

		if (reconcile_locked(root, h.id, NULL, &ignored) > 0 &&
		    vm_now(root, h.id, &db, &vm, &ignored) == 0 && vm->state == LC_ACTIVE)
			wait_supervisor(vm, 15000);
		lc_db_close(TAKE_PTR(db));
	}
	r = vm_now(root, h.id, &db, &vm, err);
	if (r < 0)
		goto out;
	now = lc_state_text(vm);
	/* the supervisor's reason, unless it only says the same again */
	if (vm->state == LC_ACTIVE) {
		bool same = !vm->reason || strstr(vm->reason, "ignored the ACPI shutdown");

		r = util_err_set(
		        err, -ETIMEDOUT,
		        "cannot %s '%s': the guest did not shut down within %d s, so it is %s again%s%s%s; use --hard or --hard-after",
		        to_done ? "shutdown" : "poweroff", h.name, timeout_s, now, same ? "" : " (",
		        same ? "" : vm->reason, same ? "" : ")");
	}
out:
	lc_held_clear(&h);
	return r;
}

int lc_vm_reboot(const char *root, const char *name, const lc_run_opts *opts, util_err *err)
{
	static const lc_run_opts none = { 0 };
	const lc_run_opts *o = opts ? opts : &none;
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *qmp = NULL;
	_cleanup_json_ json_t *ev = NULL;
	int timeout_s = o->timeout_s > 0 ? o->timeout_s : LC_SHUTDOWN_TIMEOUT_S;
	lc_vm *vm;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = vm_now(root, h.id, &db, &vm, err);
	if (r == 0)
		r = lc_state_check(LC_OP_REBOOT, h.name, vm->state, vm->lcm, err);
	if (r == 0)
		r = lc_command_qmp(root, h.id, h.name, &qmp, err);
	if (r < 0)
		goto out;
	if (o->hard) {
		/* the supervisor records the reset from QEMU's RESET event */
		r = qmp_execute(qmp, "system_reset", NULL, 0, NULL, err);
		goto out;
	}
	r = lc_record(root, h.id, LC_ACTIVE, LC_LCM_SHUTDOWN, "ACPI reboot requested", NULL,
	              json_pack("{s:s, s:I, s:s}", "target", "REBOOT", "timeout_ms",
	                        (json_int_t)timeout_s * 1000, "prev", lc_lcm_name(vm->lcm)),
	              err);
	util_crash_point("reboot-after-intent");
	if (r == 0)
		r = qmp_execute(qmp, "system_powerdown", NULL, 0, NULL, err);
	if (r == 0)
		lc_record_sent(root, h.id, NULL);
	if (r < 0 || o->no_wait)
		goto out;
	/* the guest shuts down, the supervisor resets and continues it */
	r = qmp_wait_event(qmp, "RESUME", timeout_s * 1000 + 5000, &ev, err);
	if (r == -ETIMEDOUT)
		r = util_err_set(
		        err, -ETIMEDOUT,
		        "cannot reboot '%s': the guest did not reboot within %d s (it ignored the ACPI request); use --hard",
		        h.name, timeout_s);
out:
	lc_held_clear(&h);
	return r;
}

int lc_vm_pause(const char *root, const char *name, bool pause, const lc_run_opts *opts,
                util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *qmp = NULL;
	lc_vm *vm;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = vm_now(root, h.id, &db, &vm, err);
	if (r == 0)
		r = lc_state_check(pause ? LC_OP_PAUSE : LC_OP_UNPAUSE, h.name, vm->state, vm->lcm,
		                   err);
	if (r == 0)
		r = lc_command_qmp(root, h.id, h.name, &qmp, err);
	if (r == 0)
		r = qmp_execute(qmp, pause ? "stop" : "cont", NULL, 0, NULL, err);
	if (r == 0)
		r = lc_record(root, h.id, LC_ACTIVE, pause ? LC_LCM_PAUSED : LC_LCM_RUNNING,
		              pause ? "paused" : "unpaused", NULL, NULL, err);
	lc_held_clear(&h);
	return r;
}

/* ---- delete, recover ------------------------------------------------------------------------- */

/* Stop whatever runs the VM, hard, and wait until the supervisor recorded
 * the end. With the VM lock held. */
static int stop_hard(const char *root, lc_held *h, lc_state target, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_qmp_ qmp_client *qmp = NULL;
	lc_vm *vm;
	pid_t qpid;
	uint64_t qstart;
	int r = vm_now(root, h->id, &db, &vm, err);

	if (r < 0 || (vm->state != LC_ACTIVE && vm->state != LC_UNKNOWN))
		return r;
	if (restart_pending(vm))
		return cancel_restart(root, db, vm, target, err);
	r = lc_record(root, h->id, LC_ACTIVE, LC_LCM_SHUTDOWN, "hard stop requested", NULL,
	              json_pack("{s:s, s:I, s:s}", "target", lc_state_name(target), "timeout_ms",
	                        (json_int_t)1000, "prev", lc_lcm_name(vm->lcm)),
	              err);
	if (r < 0)
		return r;
	if (lc_command_qmp(root, h->id, h->name, &qmp, NULL) == 0 &&
	    qmp_execute(qmp, "quit", NULL, 0, NULL, NULL) != -EREMOTEIO)
		lc_record_sent(root, h->id, NULL);
	qmp_close(TAKE_PTR(qmp));
	if (wait_supervisor(vm, 15000) < 0 || vm->state == LC_UNKNOWN) {
		/* unreachable or stuck: kill both and settle it ourselves */
		kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
		lc_find_qemu(vm, &qpid, &qstart);
		kill_and_wait(qpid, qstart);
	}
	lc_db_close(TAKE_PTR(db));
	return reconcile_locked(root, h->id, NULL, err) < 0 ? err->code : 0;
}

int lc_vm_remove(const char *root, const char *name, bool wipe, bool recreate,
                 const lc_run_opts *opts, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	/* the states delete accepts, from the table, before anything is done */
	r = vm_now(root, h.id, &db, &vm, err);
	if (r == 0)
		r = lc_state_check(LC_OP_REMOVE, h.name, vm->state, vm->lcm, err);
	lc_db_close(TAKE_PTR(db));
	if (r == 0)
		r = stop_hard(root, &h, LC_POWEROFF, err);
	if (r == 0)
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r == 0 && !(vm = lc_db_vm_by_id(db, h.id)))
		r = util_err_set(err, -ENOENT, "vm '%s' vanished", h.name);
	/* the lock we hold is the one delete takes: hand it over (released
	 * in between, a queued command could take it and make us "busy") */
	if (r == 0) {
		int lock = TAKE_FD(h.lock);

		r = recreate ? lc_vm_recreate(db, vm, lock, err)
		             : lc_vm_delete(db, vm, lock, wipe, err);
	}
	lc_held_clear(&h);
	return r;
}

/* recover of a VM whose live supervisor drives it: -EALREADY, and why */
static int refuse_driven(const lc_vm *vm, const char *name, const char *why, util_err *err)
{
	_cleanup_free_ char *now = lc_state_text(vm);

	return util_err_set(
	        err, -EALREADY,
	        "cannot recover '%s': it is %s and its supervisor (pid %d) drives it; %s", name,
	        now, (int)vm->supervisor_pid, why);
}

int lc_vm_recover(const char *root, const char *name, lc_recover_how how, const lc_run_opts *opts,
                  util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	pid_t qpid;
	uint64_t qstart;
	lc_held h;
	int r = lc_hold_vm(root, name, opts, &h, err);

	if (r < 0)
		return r;
	r = vm_now(root, h.id, &db, &vm, err);
	if (r < 0)
		goto out;
	if (vm->state != LC_ACTIVE && vm->state != LC_UNKNOWN && vm->state != LC_FAILED) {
		r = util_err_set(
		        err, -EPERM,
		        "cannot recover '%s': it is %s; recover needs ACTIVE, UNKNOWN or FAILED",
		        h.name, lc_state_name(vm->state));
		goto out;
	}
	switch (how) {
	case LC_RECOVER_RETRY:
		lc_db_close(TAKE_PTR(db));
		r = reconcile_locked(root, h.id, NULL, err);
		r = r < 0 ? r : 0;
		break;
	case LC_RECOVER_SUCCESS:
		if (vm->state == LC_ACTIVE && lc_vm_supervised(vm)) {
			r = refuse_driven(vm, h.name, "there is nothing to recover", err);
			break;
		}
		lc_find_qemu(vm, &qpid, &qstart);
		lc_db_close(TAKE_PTR(db));
		if (qpid > 0) {
			r = lc_spawn_supervisor(root, h.id, -1, true, false, SPAWN_TIMEOUT_MS, err);
		} else {
			r = lc_record(root, h.id, LC_POWEROFF, LC_LCM_NONE,
			              "recovered: no qemu runs it", NULL,
			              json_pack("{s:i, s:i}", "qemu_pid", 0, "supervisor_pid", 0),
			              err);
		}
		break;
	case LC_RECOVER_FAILURE:
	case LC_RECOVER_DELETE:
		/* recover is for a VM nothing drives: killing a healthy one
		 * takes the user saying so */
		if (vm->state == LC_ACTIVE && lc_vm_supervised(vm) && !opts->force) {
			r = refuse_driven(
			        vm, h.name,
			        "recover is for a vm nothing drives (use poweroff --hard or "
			        "delete, or add --force to kill it anyway)",
			        err);
			break;
		}
		kill_and_wait(vm->supervisor_pid, vm->supervisor_starttime);
		lc_find_qemu(vm, &qpid, &qstart);
		kill_and_wait(qpid, qstart);
		lc_db_close(TAKE_PTR(db));
		{
			lc_paths p;

			lc_paths_init(&p, root, h.id);
			lc_remove_rundir(&p);
			lc_paths_clear(&p);
		}
		r = lc_record(root, h.id, LC_FAILED, LC_LCM_NONE, "recovered as failed", NULL,
		              json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
		                        "supervisor_pid", 0, "supervisor_starttime", 0),
		              err);
		if (r == 0 && how == LC_RECOVER_DELETE) {
			r = lc_db_open(root, LC_DB_WRITE, &db, err);
			if (r == 0)
				r = lc_vm_delete(db, lc_db_vm_by_id(db, h.id), TAKE_FD(h.lock),
				                 false, err);
		}
		break;
	}
out:
	/* what failed on the way (an adoption, a record) says which command */
	if (r < 0 && !util_startswith(err->msg, "cannot recover"))
		util_err_prefix(err, "cannot recover '%s'", h.name);
	lc_held_clear(&h);
	return r;
}
