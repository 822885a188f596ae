/* What every command on a VM stands on: where its files are, the short
 * transactions that record its transitions, how its QEMU and supervisor
 * are recognised among the host's processes, and the spawning of a
 * supervisor. Calls no operation. */
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
#include "run.h"
#include "storage/storage.h"

/* ---- paths, records, files -------------------------------------------------------- */

void lc_paths_init(lc_paths *p, const char *root, uint64_t id)
{
	p->vmdir = util_xasprintf("%s/vms/%" PRIu64, root, id);
	p->rundir = util_xasprintf("%s/run/%" PRIu64, root, id);
	p->qmp_event = util_xasprintf("%s/qmp-event.sock", p->rundir);
	p->qmp_command = util_xasprintf("%s/qmp.sock", p->rundir);
	p->console = util_xasprintf("%s/console.sock", p->rundir);
	p->vnc = util_xasprintf("%s/vnc.sock", p->rundir);
	p->agent = util_xasprintf("%s/agent.sock", p->rundir);
	p->serial_log = util_xasprintf("%s/console.log", p->vmdir);
	p->qemu_log = util_xasprintf("%s/qemu.log", p->vmdir);
	p->sup_log = util_xasprintf("%s/supervisor.log", p->vmdir);
}

void lc_paths_clear(lc_paths *p)
{
	free(p->vmdir);
	free(p->rundir);
	free(p->qmp_event);
	free(p->agent);
	free(p->qmp_command);
	free(p->console);
	free(p->vnc);
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
	lc_vm *vm = r == 0 ? lc_db_vm_by_id(db, id) : NULL;

	/* once only, and only while the shutdown is under way: the command
	 * and the supervisor (at QEMU's POWERDOWN) both mark it, and the
	 * later one would otherwise add a second record, or one after the
	 * supervisor recorded the end */
	if (r == 0 &&
	    (!vm || vm->state != LC_ACTIVE || vm->lcm != LC_LCM_SHUTDOWN || vm->request_sent))
		return 0;
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
void lc_kill_and_wait(pid_t pid, uint64_t starttime)
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

int lc_wait_pid_exit(pid_t pid, uint64_t starttime, int timeout_ms)
{
	struct pollfd pfd = { -1, POLLIN, 0 };
	int r;

	if (!util_proc_alive(pid, starttime) || util_pidfd_open(pid, &pfd.fd, NULL) < 0)
		return 0;
	r = util_proc_alive(pid, starttime) ? poll(&pfd, 1, timeout_ms) : 1;
	close(pfd.fd);
	return r > 0 ? 0 : -ETIMEDOUT;
}

/* /proc/PID/stat of pid, a zombie's too (its times are final then), with
 * its start time (field 22) in *ret_start. */
static int read_proc_stat(pid_t pid, lc_proc_stat *ret, uint64_t *ret_start, util_err *err)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0, start = 0, rss = 0;
	double uptime = 0, hz = (double)sysconf(_SC_CLK_TCK);
	_cleanup_free_ char *up = NULL;
	int fd, field;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
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
	ret->cpu_s = (double)(ut + st) / hz;
	ret->alive_s = uptime - (double)start / hz;
	ret->rss = rss * (uint64_t)sysconf(_SC_PAGESIZE);
	*ret_start = start;
	return 0;
}

int lc_qemu_stat(const lc_vm *vm, lc_proc_stat *ret, util_err *err)
{
	uint64_t start;

	if (!util_proc_alive(vm->qemu_pid, vm->qemu_starttime))
		return util_err_set(err, -ESRCH, "no qemu runs '%s'", vm->def.name);
	return read_proc_stat(vm->qemu_pid, ret, &start, err);
}

int lc_proc_stat_final(pid_t pid, uint64_t starttime, lc_proc_stat *ret)
{
	lc_proc_stat ps;
	uint64_t start;

	if (pid <= 0 || read_proc_stat(pid, &ps, &start, NULL) < 0 || start != starttime)
		return -ESRCH;
	*ret = ps;
	return 0;
}

int lc_vm_usage(const lc_vm *vm, double *ret_cpu, uint64_t *ret_rss, util_err *err)
{
	lc_proc_stat ps;
	int r = lc_qemu_stat(vm, &ps, err);

	if (r < 0)
		return r;
	*ret_cpu = ps.alive_s > 0 ? 100.0 * ps.cpu_s / ps.alive_s : 0;
	*ret_rss = ps.rss;
	return 0;
}

/* ---- the supervisor ------------------------------------------------------------------- */

/* The CLI's verb for the supervisor (lc_set_supervisor_verb). */
static const char *supervisor_verb;

void lc_set_supervisor_verb(const char *verb)
{
	supervisor_verb = verb;
}

/* In the child: detach and become the supervisor (never returns). The
 * status pipe's write end goes to fd 3, the VM lock (if any) to fd 4. */
static _Noreturn void exec_supervisor(const char *self, const char *root, const char *idtext,
                                      const char *logpath, int status_fd, int lock_fd, bool adopt)
{
	char *argv[12];
	int i = 0, logfd, nul, status_w, lock_w = -1;
	sigset_t none;

	/* Detach: a new session, and a second fork so that the supervisor
	 * is nobody's child here and outlives us. */
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
	status_w = fcntl(status_fd, F_DUPFD_CLOEXEC, 64);
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
	argv[i++] = (char *)idtext;
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

/* Read the supervisor's reports from fd (closed here) until the final
 * one, or with until_spawned the first. */
static int read_reports(int fd, const char *root, const char *idtext, bool until_spawned,
                        int timeout_ms, util_err *err)
{
	_cleanup_json_ json_t *reply = NULL;
	char buf[4096];
	size_t len = 0;
	int64_t deadline;
	ssize_t n;

	/* The supervisor's reports, one JSON object a line: {"stage":"spawned"}
	 * once QEMU runs (enough for --no-wait), then the final {"ok":...}; or
	 * EOF if it died. */
	deadline = util_now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int64_t left = deadline - util_now_ms();
		char *nl;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			close(fd);
			return util_err_set(
			        err, -ETIMEDOUT,
			        "the supervisor did not report within %d s; see 'qvm show'",
			        timeout_ms / 1000);
		}
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
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
				close(fd);
				return 0;
			}
			json_decref(TAKE_PTR(reply));
		}
		if (len >= sizeof(buf) - 1)
			len = 0; /* a line longer than any report: not one, drop it */
	}
final:
	close(fd);
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

int lc_spawn_supervisor(const char *root, uint64_t id, int lock_fd, bool adopt, bool until_spawned,
                        int timeout_ms, util_err *err)
{
	char self[PATH_MAX], idtext[24];
	int status_pipe[2], status;
	_cleanup_free_ char *logpath = NULL;
	pid_t child;
	ssize_t n;
	lc_paths p;

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
	if (child == 0)
		exec_supervisor(self, root, idtext, logpath, status_pipe[1], lock_fd, adopt);
	close(status_pipe[1]);
	waitpid(child, &status, 0);
	util_crash_point(adopt ? "adopt-after-spawn" : "start-after-spawn");
	return read_reports(status_pipe[0], root, idtext, until_spawned, timeout_ms, err);
}
