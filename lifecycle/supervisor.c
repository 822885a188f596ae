/* The per-VM supervisor: a small detached process (qvm re-executed, like
 * conmon for containers) that spawns QEMU, holds the events-only QMP
 * connection, records every transition, enforces shutdown timeouts and the
 * restart policy, and cleans up when QEMU exits. One poll() loop over a
 * pidfd, the QMP socket, a signalfd, a timerfd and QEMU's log pipe. */
#include <fcntl.h>
#include <malloc.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "network.h"
#include "restart.h"
#include "run.h"

#define BOOT_QMP_TIMEOUT_MS 20000
#define LOG_CAP             (1u << 20) /* QEMU's log: enough for any error, bounded */
/* The restart policy's cap and backoff are restart.c's, shared with the
 * host's scheduler. */
#define RESTART_LOCK_RETRY_MS 200 /* a command holds the VM: try again soon */
#define RESET_DEBOUNCE_MS     3000
/* The logs a VM writes for as long as it runs are bounded: each is moved
 * to NAME.1 (the previous .1 goes) when it passes its cap. QEMU writes the
 * console log itself (logappend=on: O_APPEND), so that one is copied and
 * truncated in place, looked at every LOG_CHECK_MS. Tests shrink both
 * with QVM_CONSOLE_LOG_CAP and QVM_LOG_CHECK_MS. */
#define CONSOLE_LOG_CAP    (8u << 20)
#define SUPERVISOR_LOG_CAP (256u << 10)
#define LOG_CHECK_MS       10000

typedef enum timer_kind { TIMER_NONE, TIMER_SHUTDOWN, TIMER_RESTART } timer_kind;

typedef struct sup {
	const char *root;
	uint64_t id;
	char *name;
	const char *const *disk_roots; /* checked again before each restart */
	lc_paths paths;
	lc_restart restart;

	pid_t qemu_pid;
	uint64_t qemu_starttime;
	const char *accel; /* what QEMU was started with; NULL after adoption */
	int qemu_pidfd;
	bool qemu_is_child; /* false after adoption: no exit status then */
	qmp_client *qmp;

	int status_fd; /* the starter's pipe, until the boot is reported */
	int lock_fd;   /* the VM lock handed over by `start`, until booted */
	int log_pipe;  /* read end of QEMU's stdout/stderr */
	int log_file;
	size_t log_size;
	char last_log_line[512];
	char partial[512]; /* the line being read */
	size_t partial_len;

	int timer_fd;
	timer_kind timer;
	int house_fd; /* periodic: the console log's size */
	uint64_t console_cap;
	int sig_fd;

	bool shutdown_seen;      /* QEMU said SHUTDOWN: its exit is expected */
	bool guest_initiated;    /* ... and the guest asked for it */
	bool user_stop;          /* a qvm command asked for it: never restart */
	char pending_target[16]; /* the target of the shutdown QEMU was asked for */
	lc_state final_state;    /* where an expected exit leads */
	char final_reason[256];

	bool own_reset; /* the next host reset is our soft reboot's */
	int64_t last_reset_ms;

	lc_state fail_to; /* where a start that fails ends: FAILED, or a resume's SUSPENDED */

	/* CPU time the QEMU used, for accounting's record at its exit: the
	 * child's from wait4(); an adopted one's (not ours to reap) as last
	 * sampled, every housekeeping tick; -1 when not known */
	int64_t qemu_cpu_ms;
	bool done;
} sup;

/* ---- notes and reports ----------------------------------------------------- */

static void note(sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static uint64_t env_cap(const char *name, uint64_t dflt)
{
	const char *env = getenv(name);
	uint64_t v;

	return env && *env && util_parse_uint(env, 1, UINT64_MAX, &v, NULL) == 0 ? v : dflt;
}

/* How long QEMU has to greet us on QMP (tests shorten it). */
static int greeting_timeout_ms(void)
{
	return (int)env_cap("QVM_QMP_CONNECT_TIMEOUT_MS", BOOT_QMP_TIMEOUT_MS);
}

/* Our stderr is supervisor.log: a restart loop must not fill the disk. */
static void rotate_own_log(sup *s)
{
	struct stat st;
	_cleanup_free_ char *old = NULL;
	int fd;

	if (!s->paths.sup_log || fstat(STDERR_FILENO, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < SUPERVISOR_LOG_CAP)
		return;
	old = util_xasprintf("%s.1", s->paths.sup_log);
	fd = open(s->paths.sup_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	/* the file we write to is the one the path names (not already moved) */
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= SUPERVISOR_LOG_CAP &&
	    rename(s->paths.sup_log, old) == 0) {
		close(fd);
		fd = open(s->paths.sup_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
		          0600);
	}
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

/* QEMU appends to console.log: keep a copy of it as console.log.1 and
 * empty it in place once it passes the cap (what QEMU writes between the
 * copy and the truncation is lost; a line or two at most). */
static void rotate_console_log(sup *s)
{
	_cleanup_free_ char *old = NULL, *tmp = NULL;
	_cleanup_close_ int in = -1, out = -1;
	struct stat st;
	char buf[16384]; /* small: the supervisor's stack is part of its RSS */
	ssize_t n;

	if (stat(s->paths.serial_log, &st) < 0 || (uint64_t)st.st_size < s->console_cap)
		return;
	old = util_xasprintf("%s.1", s->paths.serial_log);
	tmp = util_xasprintf("%s.1.tmp", s->paths.serial_log);
	in = open(s->paths.serial_log, O_RDONLY | O_CLOEXEC);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in < 0 || out < 0)
		return;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (util_write_all(out, buf, (size_t)n) < 0)
			break;
	if (n != 0 || rename(tmp, old) < 0) {
		unlink(tmp);
		return;
	}
	if (truncate(s->paths.serial_log, 0) == 0)
		note(s, "console.log passed %" PRIu64 " bytes: moved to console.log.1",
		     s->console_cap);
}

static void note(sup *s, const char *fmt, ...)
{
	char when[32];
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s supervisor[%d]: ", when, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	rotate_own_log(s);
}

/* Tell the `qvm start` that spawned us how the boot went, once. */
static void report(sup *s, int code, const char *msg)
{
	_cleanup_json_ json_t *j = NULL;
	char *text;

	if (s->status_fd < 0)
		return;
	j = code < 0 ? json_pack("{s:b, s:i, s:s}", "ok", 0, "code", code, "error", msg)
	             : json_pack("{s:b}", "ok", 1);
	text = json_dumps(j, JSON_COMPACT);
	if (text) {
		dprintf(s->status_fd, "%s\n", text);
		free(text);
	}
	close(s->status_fd);
	s->status_fd = -1;
	/* from here it waits on its VM: what it read of the journal would
	 * only sit in its memory, for each VM the host runs */
	lc_db_forget();
}

static void release_lock(sup *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
}

static json_t *pids_json(sup *s)
{
	uint64_t mine = 0;

	util_proc_starttime(getpid(), &mine, NULL);
	json_t *j = json_pack("{s:i, s:I, s:i, s:I}", "qemu_pid", (int)s->qemu_pid,
	                      "qemu_starttime", (json_int_t)s->qemu_starttime, "supervisor_pid",
	                      (int)getpid(), "supervisor_starttime", (json_int_t)mine);

	if (s->accel)
		json_object_set_new(j, "qemu_accel", json_string(s->accel));
	return j;
}

static int record(sup *s, lc_state state, lc_lcm lcm, const char *reason, const char *error,
                  json_t *extra)
{
	util_err err = { 0 };
	int r = lc_record(s->root, s->id, state, lcm, reason, error, extra, &err);

	if (r < 0)
		note(s, "cannot record %s/%s: %s", lc_state_name(state), lc_lcm_name(lcm), err.msg);
	/* A record loads the whole database (every VM's summary) and frees it
	 * again: hand the heap back, or each supervisor on a host with many
	 * VMs would keep that peak for the VM's lifetime. */
	malloc_trim(0);
	return r;
}

/* The supervisor's last record: the VM ends in state, QEMU gone and the
 * supervisor about to go too. */
static void record_end(sup *s, lc_state state, const char *reason, const char *error)
{
	record(s, state, LC_LCM_NONE, reason, error,
	       json_pack("{s:i, s:i}", "supervisor_pid", 0, "supervisor_starttime", 0));
	s->done = true;
}

/* ---- QEMU's log ------------------------------------------------------------------ */

static void line_done(sup *s)
{
	if (s->partial_len == 0)
		return;
	memcpy(s->last_log_line, s->partial, s->partial_len);
	s->last_log_line[s->partial_len] = '\0';
	s->partial_len = 0;
}

static void log_drain(sup *s)
{
	char buf[4096];
	ssize_t n = -1;

	while (s->log_pipe >= 0 && (n = read(s->log_pipe, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				close(s->log_pipe);
				s->log_pipe = -1;
			}
			return;
		}
		if (s->log_file >= 0 && s->log_size < LOG_CAP) {
			size_t keep = (size_t)n < LOG_CAP - s->log_size ? (size_t)n
			                                                : LOG_CAP - s->log_size;

			if (write(s->log_file, buf, keep) == (ssize_t)keep)
				s->log_size += keep;
		}
		/* remember the last non-empty line, QEMU's error, also when a
		 * read splits it */
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (s->partial_len < sizeof(s->partial) - 1)
					s->partial[s->partial_len++] = buf[i];
				continue;
			}
			line_done(s);
		}
	}
	if (n == 0 && s->log_pipe >= 0) {
		line_done(s); /* a last line without its newline */
		close(s->log_pipe);
		s->log_pipe = -1;
	}
}

/* ---- spawning QEMU ------------------------------------------------------------------ */

static int qemu_binary(char **ret, util_err *err)
{
	const char *env = getenv("QVM_QEMU");

	return util_find_program(env && *env ? env : "qemu-system-x86_64", ret, err);
}

/* Exactly the fds QEMU needs, at the numbers its argv names: 3, 4, 5,
 * then the NICs' taps from 6 on.
 * hold (-1 for none) are the starter's status pipe and the VM lock: kept
 * until execve closes them, so that while this child does not yet show
 * the VM's uuid in its command line, nobody reconciles the VM (the
 * starter waits for EOF, others for the lock) and mistakes it for gone. */
static void qemu_child(char **argv, const int fds[4], int log_w, const int hold[2], const int *taps,
                       size_t n_taps)
{
	static char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
	int high[4] = { -1, -1, -1, -1 }, high_taps[LC_NICS_MAX], nul;
	/* the guest agent's socket, if any, goes after the taps */
	unsigned next = 6 + (unsigned)n_taps;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	for (int i = 0; i < 2; i++)
		if (hold[i] >= 0 && fcntl(hold[i], F_DUPFD_CLOEXEC, 64) < 0)
			_exit(126);
	/* files QEMU creates (the serial log) are 0600 like the rest of the root */
	umask(077);
	/* move out of the way first, so no dup2 overwrites a source */
	for (int i = 0; i < 4; i++)
		if ((i < 3 || fds[i] >= 0) && (high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64)) < 0)
			_exit(126);
	for (size_t i = 0; i < n_taps && i < LC_NICS_MAX; i++)
		if ((high_taps[i] = fcntl(taps[i], F_DUPFD_CLOEXEC, 64)) < 0)
			_exit(126);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nul < 0 || dup2(nul, 0) < 0 || dup2(log_w, 1) < 0 || dup2(log_w, 2) < 0)
		_exit(126);
	for (int i = 0; i < 3; i++)
		if (dup2(high[i], 3 + i) < 0) /* dup2 clears close-on-exec */
			_exit(126);
	for (size_t i = 0; i < n_taps && i < LC_NICS_MAX; i++)
		if (dup2(high_taps[i], 6 + (int)i) < 0)
			_exit(126);
	if (high[3] >= 0 && dup2(high[3], (int)next++) < 0)
		_exit(126);
	close_range(next, ~0U, CLOSE_RANGE_CLOEXEC);
	execve(argv[0], argv, envp);
	fprintf(stderr, "cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void qmp_drop(sup *s)
{
	qmp_close(s->qmp);
	s->qmp = NULL;
}

/* An adopted QEMU is not ours to reap: its CPU time is what /proc says of
 * it at adoption, at each tick, and at its exit while it is a zombie (a
 * child's comes from wait4() at its exit). */
static void sample_cpu(sup *s)
{
	lc_proc_stat ps;

	if (!s->qemu_is_child && lc_proc_stat_final(s->qemu_pid, s->qemu_starttime, &ps) == 0)
		s->qemu_cpu_ms = (int64_t)(ps.cpu_s * 1000);
}

/* Reap our QEMU (waitpid's flags), keeping the CPU time it used for the
 * exit record. */
static pid_t reap_child(sup *s, int *status, int flags)
{
	struct rusage ru;
	pid_t r = wait4(s->qemu_pid, status, flags, &ru);

	if (r > 0)
		s->qemu_cpu_ms = (int64_t)ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 +
		                 (int64_t)ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000;
	return r;
}

/* Wait (bounded) for a QEMU that is about to exit, and say how it ended. */
static void qemu_exit_reason(sup *s, bool wait, char *buf, size_t len)
{
	int status;
	pid_t r = 0;

	if (s->qemu_is_child && s->qemu_pid > 0) {
		if (wait) {
			struct pollfd pfd = { s->qemu_pidfd, POLLIN, 0 };

			poll(&pfd, 1, 3000);
		}
		r = reap_child(s, &status, WNOHANG);
	}
	log_drain(s);
	if (r > 0 && WIFEXITED(status))
		snprintf(buf, len, "qemu exited with status %d%s%s", WEXITSTATUS(status),
		         s->last_log_line[0] ? ": " : "", s->last_log_line);
	else if (r > 0 && WIFSIGNALED(status))
		snprintf(buf, len, "qemu was killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	else if (s->qemu_is_child)
		snprintf(buf, len, "qemu stopped answering%s%s", s->last_log_line[0] ? ": " : "",
		         s->last_log_line);
	else
		snprintf(buf, len, "qemu exited (its status is unknown: it was adopted)");
	if (r > 0)
		s->qemu_pid = 0;
}

static void kill_qemu(sup *s)
{
	if (s->qemu_pidfd >= 0) {
		struct pollfd pfd = { s->qemu_pidfd, POLLIN, 0 };

		/* pidfd_send_signal cannot hit a reused pid */
		syscall(SYS_pidfd_send_signal, s->qemu_pidfd, SIGKILL, NULL, 0);
		poll(&pfd, 1, 5000);
	}
	if (s->qemu_is_child && s->qemu_pid > 0)
		reap_child(s, NULL, 0);
}

/* QEMU is to go: the guest is off, or its time to shut down ran out.
 * A QEMU that cannot be told to quit (an error reply, no reply, a lost
 * connection) is killed: left, it would keep the VM in ACTIVE/SHUTDOWN
 * with nobody to end it. Its exit (the pidfd) ends the VM either way. */
static void quit_qemu(sup *s)
{
	util_err err = { 0 };

	if (qmp_execute(s->qmp, "quit", NULL, 0, NULL, &err) == 0)
		return;
	note(s, "cannot make qemu %d quit (%s): killing it", (int)s->qemu_pid, err.msg);
	if (s->qemu_pidfd >= 0)
		syscall(SYS_pidfd_send_signal, s->qemu_pidfd, SIGKILL, NULL, 0);
}

/* QEMU runs (paused): record it, connect QMP, load the checkpoint of a
 * resume (ckpt, -1 for a boot), cont, record RUNNING. */
static int boot_guest(sup *s, int ckpt, util_err *err)
{
	json_t *extra = pids_json(s);
	char why[600];
	int r;

	/* a resume keeps where it returns to until its guest runs */
	if (ckpt >= 0)
		json_object_set_new(extra, "prev", json_string(lc_state_name(s->fail_to)));
	record(s, LC_ACTIVE, LC_LCM_BOOT, "qemu started", NULL, extra);
	/* enough for `start --no-wait` */
	if (s->status_fd >= 0)
		dprintf(s->status_fd, "{\"stage\": \"spawned\"}\n");
	util_crash_point("supervisor-before-qmp");

	r = qmp_connect_path(s->paths.qmp_event, greeting_timeout_ms(), &s->qmp, err);
	if (r < 0) {
		qemu_exit_reason(s, true, why, sizeof(why));
		return util_err_set(err, r, "%s", why);
	}
	if (ckpt >= 0) {
		r = lc_checkpoint_load(s->qmp, ckpt, err);
		if (r < 0)
			return r;
	}
	util_crash_point("supervisor-before-cont");
	r = qmp_execute(s->qmp, "cont", NULL, 0, NULL, err);
	if (r < 0)
		return r;
	util_crash_point("supervisor-before-running");
	extra = pids_json(s);
	json_object_set_new(extra, "started", json_integer(util_realtime_ms()));
	record(s, LC_ACTIVE, LC_LCM_RUNNING, ckpt >= 0 ? "resumed from its checkpoint" : "booted",
	       NULL, extra);
	note(s, "qemu %d is running '%s'", (int)s->qemu_pid, s->name);
	return 0;
}

/* Start QEMU for the VM and boot it: sockets, log, argv, fork+execve,
 * record its pid, connect QMP, cont. On failure QEMU is gone, the runtime
 * folder removed, and err says why (with QEMU's own last line). */
/* One QEMU log per start, the previous one kept: bounded by LOG_CAP each. */
static void new_qemu_log(sup *s)
{
	_cleanup_free_ char *old_log = util_xasprintf("%s.1", s->paths.qemu_log);

	rename(s->paths.qemu_log, old_log);
	close_fd(&s->log_file);
	s->log_file =
	        open(s->paths.qemu_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	s->log_size = 0;
	s->last_log_line[0] = '\0';
	s->partial_len = 0;
}

/* What QEMU's command line names of this run: its fds as qemu_child()
 * places them (QMP 3 and 4, the console 5, taps from 6), and the seed,
 * which start built (PROLOG) when the VM has one and a restart reuses.
 * Returns the taps' fd numbers (rt points at them), for the caller to free. */
static int *fill_runtime(const sup *s, lc_qemu_runtime *rt, const char *qemu, const char *seed,
                         size_t n_taps)
{
	int *tap_nums = n_taps ? util_xcalloc(n_taps, sizeof(int)) : NULL;

	for (size_t i = 0; i < n_taps; i++)
		tap_nums[i] = 6 + (int)i;
	rt->tap_fds = tap_nums;
	rt->n_tap_fds = n_taps;
	rt->qemu_binary = qemu;
	rt->qmp_event_fd = 3;
	rt->qmp_command_fd = 4;
	rt->serial_fd = 5;
	rt->serial_log = s->paths.serial_log;
	rt->vnc_socket = s->paths.vnc;
	rt->sandbox = true;
	if (access(seed, F_OK) == 0)
		rt->seed_path = seed;
	return tap_nums;
}

/* The QEMU just forked is ours to watch: its log pipe, identity, pidfd.
 * Without a pidfd it is killed again (nothing could see it exit). */
static int track_child(sup *s, pid_t pid, int log_read, util_err *err)
{
	int r;

	s->log_pipe = log_read;
	fcntl(s->log_pipe, F_SETFL, O_NONBLOCK);
	s->qemu_pid = pid;
	s->qemu_is_child = true;
	util_proc_starttime(pid, &s->qemu_starttime, NULL);
	r = util_pidfd_open(pid, &s->qemu_pidfd, err);
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		s->qemu_pid = 0;
	}
	return r;
}

/* The sockets QEMU serves, made before it starts: its two QMP monitors
 * and the serial console. */
static int listen_sockets(sup *s, bool agent, int fds[4], util_err *err)
{
	int r = util_mkdir_p(s->paths.rundir, 0700, err);

	if (r == 0)
		r = util_unix_listen(s->paths.qmp_event, 4, &fds[0], err);
	if (r == 0)
		r = util_unix_listen(s->paths.qmp_command, 4, &fds[1], err);
	if (r == 0)
		r = util_unix_listen(s->paths.console, 4, &fds[2], err);
	if (r == 0 && agent)
		r = util_unix_listen(s->paths.agent, 4, &fds[3], err);
	return r;
}

/* A start that failed leaves nothing: sockets, taps, pipes, the run folder. */
static void spawn_undo(sup *s, const lc_vm *vm, int fds[4], int *taps, size_t n_taps, int logp[2])
{
	for (int i = 0; i < 4; i++)
		close_fd(&fds[i]);
	for (size_t i = 0; i < n_taps; i++)
		close_fd(&taps[i]);
	lc_nics_remove_taps(vm);
	close_fd(&logp[0]);
	close_fd(&logp[1]);
	close_fd(&s->log_pipe);
	lc_remove_rundir(&s->paths);
}

/* After the fork: QEMU alone holds the listening sockets now, so that
 * if it dies a client's connect fails at once instead of waiting on our
 * copy; and the taps, so that when it exits, however, they are gone; and
 * its end of the log pipe. */
static void let_qemu_hold(int fds[4], int *taps, size_t n_taps, int *log_write)
{
	for (int i = 0; i < 4; i++)
		close_fd(&fds[i]);
	for (size_t i = 0; i < n_taps; i++)
		close_fd(&taps[i]);
	close_fd(log_write);
}

static int spawn_qemu(sup *s, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *qemu = NULL, *seed = NULL;
	_cleanup_strv_ char **argv = NULL;
	_cleanup_free_ int *taps = NULL, *tap_nums = NULL;
	size_t n_taps = 0;
	int fds[4] = { -1, -1, -1, -1 }, logp[2] = { -1, -1 };
	_cleanup_close_ int ckpt = -1;
	lc_qemu_runtime rt = { 0 };
	lc_vm *vm;
	pid_t pid;
	int r;

	r = lc_load_vm(s->root, s->id, &db, &vm, err);
	if (r < 0)
		return r;
	s->restart = vm->def.restart;
	s->fail_to = LC_FAILED;
	/* a resume: QEMU waits for its checkpoint, checked again on the fd it reads */
	rt.incoming = lc_resume_wanted(vm, &s->fail_to);
	r = rt.incoming ? lc_checkpoint_open(s->root, vm, &ckpt, err) : 0;
	if (r == 0)
		r = lc_accel_resolve(vm->def.accel, &rt.accel, NULL, err);
	if (r == 0)
		s->accel = lc_accel_name(rt.accel);
	if (r == 0)
		r = qemu_binary(&qemu, err);
	if (r == 0)
		r = listen_sockets(s, vm->def.guest_agent, fds, err);
	if (r < 0)
		goto fail;
	new_qemu_log(s);
	if (pipe2(logp, O_CLOEXEC) < 0) {
		r = util_err_errno(err, -errno, "cannot make a pipe for qemu's log");
		goto fail;
	}
	/* one tap per NIC, opened here so that QEMU needs no network
	 * privilege; each goes with the last fd, QEMU's */
	if (vm->def.n_nics > 0) {
		r = lc_nics_open_taps(db, vm, &taps, err);
		if (r < 0)
			goto fail;
		n_taps = vm->def.n_nics;
	}
	util_crash_point("start-after-taps");
	seed = lc_seed_path(s->root, s->id);
	tap_nums = fill_runtime(s, &rt, qemu, seed, n_taps);
	rt.agent_fd = fds[3] >= 0 ? 6 + (int)n_taps : -1;
	r = lc_qemu_argv(vm, &rt, &argv, err);
	if (r < 0)
		goto fail;

	util_crash_point("supervisor-before-qemu");
	pid = fork();
	if (pid < 0) {
		r = util_err_errno(err, -errno, "cannot fork qemu");
		goto fail;
	}
	if (pid == 0)
		qemu_child(argv, fds, logp[1], (int[2]){ s->status_fd, s->lock_fd }, taps, n_taps);
	let_qemu_hold(fds, taps, n_taps, &logp[1]);
	r = track_child(s, pid, TAKE_FD(logp[0]), err);
	if (r < 0)
		goto fail;
	util_crash_point("supervisor-after-qemu");
	r = boot_guest(s, rt.incoming ? ckpt : -1, err);
	if (r == 0)
		return 0;
	qmp_drop(s);
	kill_qemu(s);
	log_drain(s);
	close_fd(&s->qemu_pidfd);
	s->qemu_pid = 0;
fail:
	spawn_undo(s, vm, fds, taps, n_taps, logp);
	return r;
}

/* spawn_qemu(), once the files QEMU opens have been checked again, as late
 * as can be (`start` checked them too, before it recorded anything): a
 * restart's files may have changed since the last start, and this
 * shortens the window a swap has to hit to QEMU's own start-up. */
static int spawn_checked(sup *s, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;
	int r = lc_load_vm(s->root, s->id, &db, &vm, err);

	if (r == 0)
		r = lc_check_vm_files(s->root, s->id, &vm->def, s->disk_roots, err);
	lc_db_close(TAKE_PTR(db));
	return r < 0 ? r : spawn_qemu(s, err);
}

/* ---- adoption ------------------------------------------------------------------------ */

/* Take over a QEMU whose supervisor died: it is not our child, so its exit
 * comes through a pidfd and its status is unknown. */
static int adopt_qemu(sup *s, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_json_ json_t *status = NULL;
	const char *run;
	lc_vm *vm;
	int r;

	r = lc_load_vm(s->root, s->id, &db, &vm, err);
	if (r < 0)
		return r;
	s->restart = vm->def.restart;
	s->qemu_pid = vm->qemu_pid;
	s->qemu_starttime = vm->qemu_starttime;
	if (!util_proc_alive(s->qemu_pid, s->qemu_starttime) &&
	    lc_find_qemu(vm, &s->qemu_pid, &s->qemu_starttime) < 0)
		return util_err_set(err, -ESRCH, "no qemu runs '%s' any more", s->name);
	if (s->qemu_pid <= 0)
		return util_err_set(err, -ESRCH, "no qemu runs '%s' any more", s->name);
	s->qemu_is_child = false;
	r = util_pidfd_open(s->qemu_pid, &s->qemu_pidfd, err);
	if (r < 0)
		return r;
	sample_cpu(s);
	r = qmp_connect_path(s->paths.qmp_event, greeting_timeout_ms(), &s->qmp, err);
	if (r < 0)
		return util_err_prefix(err, "cannot reach the qemu of '%s'", s->name);
	r = qmp_execute(s->qmp, "query-status", NULL, 0, &status, err);
	if (r < 0)
		return r;
	run = json_string_value(json_object_get(status, "status"));
	if (util_streq(run, "prelaunch")) {
		/* its starter died between spawning it and letting it run */
		r = qmp_execute(s->qmp, "cont", NULL, 0, NULL, err);
		if (r < 0)
			return r;
		json_t *extra = pids_json(s);

		json_object_set_new(extra, "started", json_integer(util_realtime_ms()));
		record(s, LC_ACTIVE, LC_LCM_RUNNING, "adopted and booted", NULL, extra);
	} else if (util_streq(run, "shutdown")) {
		/* the guest powered off while nobody watched: finish that */
		s->shutdown_seen = true;
		s->guest_initiated = !(vm->lcm == LC_LCM_SHUTDOWN && vm->target);
		s->final_state = LC_POWEROFF;
		if (vm->lcm == LC_LCM_SHUTDOWN && util_streq(vm->target, "DONE"))
			s->final_state = LC_DONE;
		snprintf(s->final_reason, sizeof(s->final_reason), "%s",
		         s->guest_initiated          ? "the guest powered off"
		         : s->final_state == LC_DONE ? "shut down"
		                                     : "powered off");
		/* the journal names us before QEMU goes: another reconciliation
		 * must not adopt it a second time meanwhile */
		{
			json_t *extra = pids_json(s);

			if (vm->target)
				json_object_set_new(extra, "target", json_string(vm->target));
			record(s, vm->state, vm->lcm, "adopted by a new supervisor", NULL, extra);
		}
		quit_qemu(s);
	} else {
		json_t *extra = pids_json(s);
		lc_state state = vm->state;
		lc_lcm lcm = vm->lcm;

		/* its starter died after cont but before it recorded RUNNING, or
		 * its fate was unknown: it runs, whatever the journal said */
		if (util_streq(run, "running") && (state != LC_ACTIVE || lcm == LC_LCM_BOOT)) {
			state = LC_ACTIVE;
			lcm = LC_LCM_RUNNING;
			json_object_set_new(extra, "started", json_integer(util_realtime_ms()));
		} else if (lcm == LC_LCM_SHUTDOWN || lcm == LC_LCM_SAVE || lcm == LC_LCM_BOOT) {
			/* a shutdown, suspend or resume under way stays one: keep
			 * its intent (target, prev) */
			json_object_update_new(extra, lc_shutdown_intent_json(vm));
		}
		record(s, state, lcm, "adopted by a new supervisor", NULL, extra);
	}
	note(s, "adopted qemu %d of '%s' (%s)", (int)s->qemu_pid, s->name, run ? run : "?");
	return 0;
}

/* ---- timers -------------------------------------------------------------------------- */

static void arm(sup *s, timer_kind kind, int64_t ms)
{
	struct itimerspec its = { 0 };

	s->timer = kind;
	if (ms > 0) {
		its.it_value.tv_sec = ms / 1000;
		its.it_value.tv_nsec = (ms % 1000) * 1000000L;
	}
	timerfd_settime(s->timer_fd, 0, &its, NULL);
}

static void disarm(sup *s)
{
	arm(s, TIMER_NONE, 0);
}

/* ---- events ---------------------------------------------------------------------------- */

/* What the journal says a qvm command asked for: a shutdown's target,
 * its timeout, and whether its request reached QEMU. */
typedef struct intent {
	char target[16]; /* "DONE", "POWEROFF", "REBOOT" or "" */
	int64_t timeout_ms;
	bool hard_after;
	bool sent;
	lc_lcm lcm;
} intent;

static void read_intent(sup *s, intent *in)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	lc_vm *vm;

	*in = (intent){ .lcm = LC_LCM_NONE };
	if (lc_load_vm(s->root, s->id, &db, &vm, NULL) < 0)
		return;
	in->lcm = vm->lcm;
	if (vm->lcm == LC_LCM_SHUTDOWN && vm->target) {
		snprintf(in->target, sizeof(in->target), "%s", vm->target);
		in->timeout_ms = vm->timeout_ms;
		in->hard_after = vm->hard_after;
		in->sent = vm->request_sent;
	}
}

/* Where a shutdown of target leads, and how its record says it. */
static lc_state target_state(const char *target)
{
	lc_state st;

	if (lc_state_parse(target, &st, NULL) < 0 || (st != LC_DONE && st != LC_UNDEPLOYED))
		st = LC_POWEROFF;
	return st;
}

static const char *final_words(lc_state st)
{
	return st == LC_DONE ? "shut down" : st == LC_UNDEPLOYED ? "undeployed" : "powered off";
}

static void on_shutdown(sup *s, json_t *data)
{
	bool guest = json_is_true(json_object_get(data, "guest"));
	const char *reason = json_string_value(json_object_get(data, "reason"));
	util_err err = { 0 };
	intent in;

	if (s->shutdown_seen)
		return; /* our own quit after the guest's shutdown says it again */
	read_intent(s, &in);
	/* A request whose qvm died before it recorded "sent" may have been
	 * rolled back by then; the POWERDOWN we saw says it reached QEMU. */
	if (!in.target[0] && s->pending_target[0] && guest)
		snprintf(in.target, sizeof(in.target), "%s", s->pending_target);
	s->pending_target[0] = '\0';
	note(s, "SHUTDOWN guest=%d reason=%s target=%s", guest, reason ? reason : "?", in.target);
	disarm(s);
	if (!strcmp(in.target, "REBOOT") && guest) {
		/* A soft reboot: the guest shut down, -no-shutdown kept QEMU.
		 * Recorded before cont, so the RESUME that `reboot` waits for
		 * means the record is there. */
		s->own_reset = true;
		if (qmp_execute(s->qmp, "system_reset", NULL, 0, NULL, &err) == 0 &&
		    record(s, LC_ACTIVE, LC_LCM_RUNNING,
		           "rebooted (the guest shut down and was reset)", NULL, NULL) >= 0 &&
		    qmp_execute(s->qmp, "cont", NULL, 0, NULL, &err) == 0)
			return;
		note(s, "soft reboot failed: %s", err.msg);
	}
	s->shutdown_seen = true;
	s->guest_initiated = guest && !in.target[0];
	s->user_stop = in.target[0] != '\0';
	s->final_state = target_state(in.target);
	snprintf(s->final_reason, sizeof(s->final_reason), "%s",
	         s->guest_initiated ? "the guest powered off" : final_words(s->final_state));
	util_crash_point("supervisor-before-quit");
	if (!util_streq(reason, "host-qmp-quit"))
		quit_qemu(s);
}

static void on_powerdown(sup *s)
{
	intent in;

	read_intent(s, &in);
	if (in.lcm != LC_LCM_SHUTDOWN || !in.target[0])
		return;
	/* the request reached QEMU: say so, in case its qvm dies before it
	 * does (a reconciliation would otherwise roll the shutdown back),
	 * and remember where it leads */
	snprintf(s->pending_target, sizeof(s->pending_target), "%s", in.target);
	if (!in.sent)
		lc_record_sent(s->root, s->id, NULL);
	if (in.timeout_ms > 0) {
		note(s, "ACPI power button pressed; the guest has %" PRId64 " ms", in.timeout_ms);
		arm(s, TIMER_SHUTDOWN, in.timeout_ms);
	}
}

static void on_reset(sup *s, json_t *data)
{
	const char *reason = json_string_value(json_object_get(data, "reason"));
	bool guest = json_is_true(json_object_get(data, "guest"));
	int64_t now = util_now_ms();

	note(s, "RESET guest=%d reason=%s", guest, reason ? reason : "?");
	/* our own system_reset of a soft reboot is recorded where it is sent */
	if (!guest && s->own_reset) {
		s->own_reset = false;
		s->last_reset_ms = now;
		return;
	}
	/* firmware resets the machine again while it comes up: one reboot,
	 * one history record */
	if (guest && now - s->last_reset_ms < RESET_DEBOUNCE_MS)
		return;
	s->last_reset_ms = now;
	{
		_cleanup_(lc_db_closep) lc_db *db = NULL;
		const char *why =
		        guest ? "the guest rebooted" : "reset by the host (reboot --hard)";
		lc_lcm lcm = LC_LCM_RUNNING;
		json_t *extra = NULL;
		lc_vm *vm;

		/* a reboot in the middle of a command's operation (a hotplug, a
		 * snapshot, a shutdown) leaves that operation's state to it */
		if (lc_load_vm(s->root, s->id, &db, &vm, NULL) == 0 && vm->state == LC_ACTIVE &&
		    (vm->lcm == LC_LCM_HOTPLUG || vm->lcm == LC_LCM_SNAPSHOT ||
		     vm->lcm == LC_LCM_PAUSED ||
		     (vm->lcm == LC_LCM_SHUTDOWN && !util_streq(vm->target, "REBOOT")))) {
			lcm = vm->lcm;
			if (lcm == LC_LCM_SHUTDOWN)
				extra = lc_shutdown_intent_json(vm);
		}
		lc_db_close(TAKE_PTR(db));
		record(s, LC_ACTIVE, lcm, why, NULL, extra);
	}
}

static void on_event(sup *s, json_t *ev)
{
	const char *name = json_string_value(json_object_get(ev, "event"));
	json_t *data = json_object_get(ev, "data");

	if (util_streq(name, "SHUTDOWN"))
		on_shutdown(s, data);
	else if (util_streq(name, "POWERDOWN"))
		on_powerdown(s);
	else if (util_streq(name, "RESET"))
		on_reset(s, data);
}

static void on_shutdown_timeout(sup *s)
{
	intent in;

	read_intent(s, &in);
	if (in.lcm != LC_LCM_SHUTDOWN || s->shutdown_seen)
		return;
	s->pending_target[0] = '\0';
	if (in.hard_after) {
		note(s, "the guest ignored the ACPI shutdown for %" PRId64 " ms: quitting",
		     in.timeout_ms);
		quit_qemu(s);
		return;
	}
	{
		char reason[128];

		snprintf(reason, sizeof(reason),
		         "the guest ignored the ACPI shutdown for %" PRId64 " s",
		         in.timeout_ms / 1000);
		record(s, LC_ACTIVE, LC_LCM_RUNNING, reason, NULL, NULL);
	}
}

/* ---- QEMU's exit ------------------------------------------------------------------------- */

/* Whether the policy restarts a QEMU that ended, after recent restarts
 * (the supervisor's and the scheduler's); when the cap says no, why_not
 * tells the user. */
static bool may_restart(sup *s, bool crashed, size_t recent, char *why_not, size_t len)
{
	why_not[0] = '\0';
	if (s->user_stop)
		return false;
	if (s->restart == LC_RESTART_NO || (s->restart == LC_RESTART_ON_FAILURE && !crashed))
		return false;
	return lc_restart_allowed(recent, s->restart, why_not, len);
}

static void on_qemu_exit(sup *s)
{
	char why[600], why_not[160];
	bool crashed = !s->shutdown_seen;
	size_t recent = 0;
	util_err err = { 0 };
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	json_t *epilog;
	lc_vm *vm;

	sample_cpu(s); /* an adopted one's last word, if its reaper has not come */
	qemu_exit_reason(s, false, why, sizeof(why));
	qmp_drop(s);
	close_fd(&s->qemu_pidfd);
	s->qemu_pid = 0;
	disarm(s);
	/* a suspend's quit after its checkpoint was recorded */
	if (lc_save_final(s->root, s->id, &s->final_state)) {
		crashed = false;
		s->user_stop = true;
		snprintf(s->final_reason, sizeof(s->final_reason), "%s",
		         s->final_state == LC_STOPPED ? "stopped: its checkpoint is kept"
		                                      : "suspended: its checkpoint is kept");
	} else if (crashed) {
		intent in;

		/* a QEMU that dies while a qvm command stops it ends as that
		 * command asked, and is not restarted: the user wanted it off */
		read_intent(s, &in);
		if (!in.target[0] && s->pending_target[0])
			snprintf(in.target, sizeof(in.target), "%s", s->pending_target);
		if (!strcmp(in.target, "DONE") || !strcmp(in.target, "POWEROFF") ||
		    !strcmp(in.target, "UNDEPLOYED")) {
			crashed = false;
			s->user_stop = true;
			s->final_state = target_state(in.target);
			snprintf(s->final_reason, sizeof(s->final_reason),
			         "%s (%.200s during the shutdown)", final_words(s->final_state),
			         why);
		}
	}
	note(s, "qemu exited: %s", crashed ? why : s->final_reason);
	util_crash_point("supervisor-before-epilog");
	/* "target" lets a recovery finish the epilog if we die in it */
	epilog = json_pack("{s:i, s:i, s:s}", "qemu_pid", 0, "qemu_starttime", 0, "target",
	                   crashed ? "FAILED" : lc_state_name(s->final_state));
	/* what accounting charges the run that ended */
	if (s->qemu_cpu_ms >= 0)
		json_object_set_new(epilog, "cpu_ms", json_integer(s->qemu_cpu_ms));
	s->qemu_cpu_ms = -1;
	record(s, LC_ACTIVE, LC_LCM_EPILOG, crashed ? why : s->final_reason, NULL, epilog);
	lc_remove_rundir(&s->paths);
	/* the kernel removed the taps with QEMU's fds; make sure */
	if (lc_load_vm(s->root, s->id, &db, &vm, &err) == 0) {
		lc_nics_remove_taps(vm);
		recent = lc_restart_recent(vm, util_realtime_ms());
	}
	lc_db_close(TAKE_PTR(db));

	if (may_restart(s, crashed, recent, why_not, sizeof(why_not))) {
		int64_t backoff = lc_restart_backoff_ms(recent);
		char reason[700];

		if (lc_restart_note(s->root, s->id, "the supervisor", recent, &err) < 0)
			note(s, "cannot count the restart of '%s': %s", s->name, err.msg);
		snprintf(reason, sizeof(reason),
		         "%s; restarting in %" PRId64 ".%01" PRId64 " s (restart policy %s)",
		         crashed ? why : s->final_reason, backoff / 1000, backoff % 1000 / 100,
		         lc_restart_name(s->restart));
		/* no pids and no uptime while it waits: nothing runs */
		record(s, LC_ACTIVE, LC_LCM_BOOT, reason, crashed ? why : NULL,
		       json_pack("{s:i, s:i, s:i, s:b}", "qemu_pid", 0, "qemu_starttime", 0,
		                 "started", 0, "restart", 1));
		s->shutdown_seen = s->guest_initiated = false;
		s->pending_target[0] = '\0';
		arm(s, TIMER_RESTART, backoff > 0 ? backoff : 1); /* 0 would disarm it */
		return;
	}
	util_crash_point("supervisor-before-final");
	if (!crashed && s->final_state == LC_DONE &&
	    lc_load_vm(s->root, s->id, &db, &vm, &err) == 0) {
		/* shut down for good: its disks go, as with delete */
		if (lc_remove_vm_files(db, vm, false, &err) < 0)
			note(s, "cannot remove the files of '%s': %s", s->name, err.msg);
	}
	/* the cap ends every exit it counted (a crash, or with "always" a
	 * guest that powered off) in FAILED, saying so: it is not the end
	 * the guest asked for */
	if (crashed || why_not[0]) {
		char reason[800];

		snprintf(reason, sizeof(reason), "%s%s%s", crashed ? why : s->final_reason,
		         why_not[0] ? "; " : "", why_not);
		record_end(s, LC_FAILED, reason, crashed ? why : why_not);
	} else {
		record_end(s, s->final_state, s->final_reason, NULL);
	}
}

/* The restart timer fired. A restart is an operation on the VM like any
 * command's: it takes the VM lock (a command working on the VM — a
 * poweroff cancelling this restart, say — goes first; we try again a
 * little later) and holds it until QEMU runs. */
static void restart(sup *s)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	_cleanup_free_ char *lock = lc_vm_lock_path(s->root, s->id);
	util_err err = { 0 };
	lc_vm *vm;

	if (util_lock_path(lock, true, 0, &s->lock_fd, NULL) < 0) {
		arm(s, TIMER_RESTART, RESTART_LOCK_RETRY_MS);
		return;
	}
	/* still ours to restart? (the lock's last holder may have ended it) */
	if (lc_load_vm(s->root, s->id, &db, &vm, &err) < 0 || vm->state != LC_ACTIVE ||
	    vm->lcm != LC_LCM_BOOT) {
		bool active = err.msg[0] == '\0' && vm->state == LC_ACTIVE;

		note(s, "restart of '%s' given up: %s", s->name,
		     err.msg[0] ? err.msg : "its state changed meanwhile");
		lc_db_close(TAKE_PTR(db));
		/* nothing runs it: an ACTIVE state would be a lie */
		if (active)
			record_end(s, LC_FAILED, "its qemu exited and its restart was given up",
			           NULL);
		s->done = true;
		release_lock(s);
		return;
	}
	lc_db_close(TAKE_PTR(db));
	if (spawn_checked(s, &err) < 0) {
		util_err_prefix(&err, "cannot restart '%s'", s->name);
		note(s, "restart failed: %s", err.msg);
		record_end(s, LC_FAILED, err.msg, err.msg);
	}
	release_lock(s);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void loop(sup *s)
{
	while (!s->done) {
		struct pollfd pfd[6] = {
			{ s->qemu_pidfd, POLLIN, 0 }, { s->qmp ? qmp_fd(s->qmp) : -1, POLLIN, 0 },
			{ s->sig_fd, POLLIN, 0 },     { s->timer_fd, POLLIN, 0 },
			{ s->log_pipe, POLLIN, 0 },   { s->house_fd, POLLIN, 0 },
		};
		util_err err = { 0 };
		json_t *ev;

		if (poll(pfd, 6, -1) < 0) {
			if (errno == EINTR)
				continue;
			note(s, "poll: %s", strerror(errno));
			return;
		}
		if (pfd[4].revents)
			log_drain(s);
		if (pfd[5].revents) {
			uint64_t ticks;

			if (read(s->house_fd, &ticks, sizeof(ticks)) > 0) {
				rotate_console_log(s);
				sample_cpu(s);
			}
		}
		if (pfd[1].revents && s->qmp) {
			int r = qmp_dispatch(s->qmp, &err);

			while (s->qmp && (ev = qmp_next_event(s->qmp))) {
				on_event(s, ev);
				json_decref(ev);
			}
			/* EOF: QEMU is exiting; the pidfd says when it is gone */
			if (r < 0 && s->qmp && !qmp_alive(s->qmp))
				qmp_drop(s);
		}
		if (pfd[2].revents) {
			struct signalfd_siginfo si;

			if (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
				/* like conmon: our end leaves QEMU running; the next
				 * qvm adopts it */
				note(s, "signal %u: leaving qemu %d to be adopted", si.ssi_signo,
				     (int)s->qemu_pid);
				return;
			}
		}
		if (pfd[3].revents) {
			uint64_t ticks;
			timer_kind kind = s->timer;

			if (read(s->timer_fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
				continue;
			s->timer = TIMER_NONE;
			if (kind == TIMER_SHUTDOWN && s->qmp) {
				on_shutdown_timeout(s);
			} else if (kind == TIMER_RESTART) {
				restart(s);
			}
		}
		if (pfd[0].revents && s->qemu_pidfd >= 0)
			on_qemu_exit(s);
	}
}

int lc_supervise(const char *root, uint64_t id, int status_fd, int lock_fd, bool adopt,
                 const char *const *disk_roots, util_err *err)
{
	_cleanup_(lc_db_closep) lc_db *db = NULL;
	sup s = { .root = root,
		  .id = id,
		  .disk_roots = disk_roots,
		  .status_fd = status_fd,
		  .lock_fd = lock_fd,
		  .qemu_pidfd = -1,
		  .log_pipe = -1,
		  .log_file = -1,
		  .timer_fd = -1,
		  .house_fd = -1,
		  .qemu_cpu_ms = -1,
		  .sig_fd = -1,
		  .fail_to = LC_FAILED };
	sigset_t mask;
	lc_vm *vm;
	int r;

	signal(SIGPIPE, SIG_IGN);
	lc_paths_init(&s.paths, root, id);
	r = lc_load_vm(root, id, &db, &vm, err);
	if (r < 0)
		goto out;
	s.name = util_xstrdup(vm->def.name);
	lc_db_close(TAKE_PTR(db));

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	s.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	s.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	s.house_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s.sig_fd < 0 || s.timer_fd < 0 || s.house_fd < 0) {
		r = util_err_errno(err, -errno, "cannot set up the supervisor of '%s'", s.name);
		goto out;
	}
	{
		uint64_t every = env_cap("QVM_LOG_CHECK_MS", LOG_CHECK_MS);
		struct itimerspec its = { .it_value = { (time_t)(every / 1000),
			                                (long)(every % 1000) * 1000000L } };

		its.it_interval = its.it_value;
		timerfd_settime(s.house_fd, 0, &its, NULL);
		s.console_cap = env_cap("QVM_CONSOLE_LOG_CAP", CONSOLE_LOG_CAP);
	}

	r = adopt ? adopt_qemu(&s, err) : spawn_checked(&s, err);
	if (r < 0) {
		if (!adopt) {
			util_crash_point("supervisor-before-failed");
			/* a resume that failed keeps its checkpoint: back to SUSPENDED */
			record(&s, s.fail_to, LC_LCM_NONE, err->msg, err->msg,
			       json_pack("{s:i, s:i, s:i, s:i}", "qemu_pid", 0, "qemu_starttime", 0,
			                 "supervisor_pid", 0, "supervisor_starttime", 0));
		}
		report(&s, r, err->msg);
		goto out;
	}
	report(&s, 0, NULL);
	release_lock(&s);
	loop(&s);
	r = 0;
out:
	report(&s, r < 0 ? r : -EIO, r < 0 ? err->msg : "the supervisor ended early");
	release_lock(&s);
	qmp_drop(&s);
	close_fd(&s.qemu_pidfd);
	close_fd(&s.log_pipe);
	close_fd(&s.log_file);
	close_fd(&s.timer_fd);
	close_fd(&s.house_fd);
	close_fd(&s.sig_fd);
	lc_paths_clear(&s.paths);
	free(s.name);
	return r;
}
