/* start, shutdown, poweroff and reboot without QEMU: the operations run as
 * qvm runs them, with a real supervisor (this binary, re-executed as
 * qvm's supervisor verb), which spawns this binary again in QEMU's place
 * (QVM_QEMU): a fake QEMU that serves both QMP sockets, answers the
 * commands as QEMU 7.2 does and sends the events a guest would cause
 * (POWERDOWN, SHUTDOWN, RESET, RESUME). Each operation runs once as it
 * should go, checking the commands QEMU got, the journal records written
 * and the state it ends in, then once with a fault at every step of that
 * run (QEMU's error reply, QEMU dying, or QEMU not answering; the client's
 * timeouts are short here). After any run the VM is where the operation
 * leads or where it was (a failed start: FAILED), no intent is open, and
 * its processes agree with its state: ACTIVE/RUNNING with its supervisor
 * and QEMU alive, or stopped with neither left. */
#define QMP_TIMEOUT_QUICK_MS  400
#define QMP_TIMEOUT_DEVICE_MS 400
#define QMP_TIMEOUT_JOB_MS    400
/* a QEMU that does not answer qmp_capabilities: given up on soon */
#define QMP_TIMEOUT_CONNECT_MS 1000
#include "qmp/client.c"

#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lifecycle/run.h"
#include "ops_fake.h"
#include "tap.h"

#define SUPERVISE_VERB "supervise-for-test"

static const char *root;
static uint64_t vm_id;
static int gen; /* the fake's configuration: a new one per run */

/* ---- the fake QEMU (this binary, exec'd by the supervisor) ------------------------------ */

/* Its configuration, which the test rewrites for each run (the supervisor
 * gives QEMU no environment of ours): a generation, the step (counted from
 * the generation's first command, qmp_capabilities included) that gets the
 * fault, the fault, and whether the guest ignores the ACPI power button. */
typedef struct fq_conf {
	int gen, fault_at, how, acpi_ignored;
} fq_conf;

typedef struct fq_conn {
	int fd;
	bool caps; /* negotiated: events go to it */
	size_t len;
	char buf[16384];
} fq_conn;

static struct {
	const char *root;
	fq_conn conns[8];
	const char *status;
	int step, gen;
} fq = { .status = "prelaunch", .gen = -1 };

static fq_conf fq_read_conf(void)
{
	_cleanup_free_ char *path = util_xasprintf("%s/fake.conf", fq.root), *text = NULL;
	fq_conf c = { 0 };

	if (util_read_file(path, 256, &text, NULL, NULL) == 0)
		sscanf(text, "%d %d %d %d", &c.gen, &c.fault_at, &c.how, &c.acpi_ignored);
	return c;
}

static void fq_log(int g, const char *name)
{
	_cleanup_free_ char *path = util_xasprintf("%s/fake.log", fq.root);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd >= 0) {
		dprintf(fd, "%d %s\n", g, name);
		close(fd);
	}
}

static void fq_event(const char *name, const char *data)
{
	char ev[512];

	snprintf(ev, sizeof(ev),
	         "{\"event\": \"%s\", \"data\": %s, \"timestamp\": {\"seconds\": 1, "
	         "\"microseconds\": 0}}\r\n",
	         name, data);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(fq.conns); i++)
		if (fq.conns[i].fd >= 0 && fq.conns[i].caps)
			fake_write(fq.conns[i].fd, ev);
}

static void fq_reply(int fd, const char *ret, const char *id_text)
{
	char reply[512];

	snprintf(reply, sizeof(reply), "{\"return\": %s, \"id\": %s}\r\n", ret, id_text);
	fake_write(fd, reply);
}

/* Answer one command as QEMU does, and do what it asks. */
static void fq_answer(fq_conn *c, const char *name, const char *id_text, const fq_conf *conf)
{
	char status[128];

	if (!strcmp(name, "qmp_capabilities")) {
		fq_reply(c->fd, "{}", id_text);
		c->caps = true;
	} else if (!strcmp(name, "query-status")) {
		snprintf(status, sizeof(status), "{\"status\": \"%s\", \"running\": %s}", fq.status,
		         strcmp(fq.status, "running") ? "false" : "true");
		fq_reply(c->fd, status, id_text);
	} else if (!strcmp(name, "cont")) {
		fq_reply(c->fd, "{}", id_text);
		fq.status = "running";
		fq_event("RESUME", "{}");
	} else if (!strcmp(name, "stop")) {
		fq_reply(c->fd, "{}", id_text);
		fq.status = "paused";
		fq_event("STOP", "{}");
	} else if (!strcmp(name, "system_powerdown")) {
		fq_reply(c->fd, "{}", id_text);
		fq_event("POWERDOWN", "{}");
		if (!conf->acpi_ignored) {
			/* the guest powers off; -no-shutdown keeps QEMU */
			fq.status = "shutdown";
			fq_event("SHUTDOWN", "{\"guest\": true, \"reason\": \"guest-shutdown\"}");
			fq_event("STOP", "{}");
		}
	} else if (!strcmp(name, "system_reset")) {
		fq_reply(c->fd, "{}", id_text);
		fq_event("RESET", "{\"guest\": false, \"reason\": \"host-qmp-system-reset\"}");
	} else if (!strcmp(name, "quit")) {
		fq_reply(c->fd, "{}", id_text);
		fq_event("SHUTDOWN", "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
		_exit(0);
	} else {
		fq_reply(c->fd, "{}", id_text);
	}
}

static void fq_command(fq_conn *c, const char *line)
{
	_cleanup_json_ json_t *cmd = json_loads(line, 0, NULL);
	const char *name = json_string_value(json_object_get(cmd, "execute"));
	json_t *id = json_object_get(cmd, "id");
	_cleanup_free_ char *id_text = id ? json_dumps(id, JSON_ENCODE_ANY) : util_xstrdup("null");
	fq_conf conf = fq_read_conf();

	if (!name)
		return;
	if (conf.gen != fq.gen) {
		fq.gen = conf.gen;
		fq.step = 0;
	}
	fq_log(conf.gen, name);
	if (++fq.step == conf.fault_at) {
		/* once: a QEMU restarted after it died on it goes on */
		_cleanup_free_ char *path = util_xasprintf("%s/fake.conf", fq.root);
		_cleanup_free_ char *text =
		        util_xasprintf("%d 0 0 %d\n", conf.gen, conf.acpi_ignored);

		util_write_file_atomic(path, text, strlen(text), NULL);
	}
	if (fq.step == conf.fault_at && conf.how == FAULT_ERROR) {
		fake_error(c->fd, "GenericError", name, id_text);
		return;
	}
	if (fq.step == conf.fault_at && conf.how == FAULT_EOF)
		_exit(1); /* QEMU dies on it */
	if (fq.step == conf.fault_at && conf.how == FAULT_SILENCE)
		return; /* QEMU hangs on it (and does nothing) */
	fq_answer(c, name, id_text, &conf);
}

static void fq_read(fq_conn *c)
{
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
	char *nl;

	if (n <= 0) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	while ((nl = strchr(c->buf, '\n'))) {
		*nl = '\0';
		fq_command(c, c->buf);
		c->len -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->len + 1);
	}
	if (c->len >= sizeof(c->buf) - 1)
		c->len = 0;
}

/* The root is where QEMU's argv puts the console log: ROOT/vms/ID/... */
static void fq_setup(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char *log = strstr(argv[i], "logfile="), *vms, *proc = strstr(argv[i], "process=");

		if (log && (vms = strstr(log, "/vms/"))) {
			*vms = '\0';
			fq.root = log + strlen("logfile=");
		}
		/* named as QEMU names its main thread, as lc_find_qemu looks */
		if (proc)
			prctl(PR_SET_NAME, proc + strlen("process="));
	}
}

/* fds 3 and 4: the supervisor's and the commands' QMP sockets, listening. */
static _Noreturn void fake_qemu_main(int argc, char **argv)
{
	fq_setup(argc, argv);
	if (!fq.root)
		_exit(2);
	alarm(60); /* a test that died leaves no fake behind for long */
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(fq.conns); i++)
		fq.conns[i].fd = -1;
	for (;;) {
		struct pollfd pfd[2 + UTIL_ARRAY_SIZE(fq.conns)] = { { 3, POLLIN, 0 },
			                                             { 4, POLLIN, 0 } };

		for (size_t i = 0; i < UTIL_ARRAY_SIZE(fq.conns); i++)
			pfd[2 + i] = (struct pollfd){ fq.conns[i].fd, POLLIN, 0 };
		if (poll(pfd, UTIL_ARRAY_SIZE(pfd), -1) < 0)
			continue;
		for (size_t l = 0; l < 2; l++) {
			int fd = pfd[l].revents ? accept4(pfd[l].fd, NULL, NULL, SOCK_CLOEXEC) : -1;

			for (size_t i = 0; fd >= 0 && i < UTIL_ARRAY_SIZE(fq.conns); i++)
				if (fq.conns[i].fd < 0) {
					fq.conns[i] = (fq_conn){ .fd = fd };
					fake_write(fd, GREETING);
					fd = -1;
				}
			if (fd >= 0)
				close(fd);
		}
		for (size_t i = 0; i < UTIL_ARRAY_SIZE(fq.conns); i++)
			if (pfd[2 + i].revents && fq.conns[i].fd >= 0)
				fq_read(&fq.conns[i]);
	}
}

/* ---- the test's side ------------------------------------------------------------------------ */

static void fake_configure(int fault_at, fault how, bool acpi_ignored)
{
	_cleanup_free_ char *path = util_xasprintf("%s/fake.conf", root);
	_cleanup_free_ char *text =
	        util_xasprintf("%d %d %d %d\n", ++gen, fault_at, (int)how, acpi_ignored);

	util_write_file_atomic(path, text, strlen(text), NULL);
}

/* The commands the fake got in this generation, as "a b c". */
static char *fake_sent(void)
{
	_cleanup_free_ char *path = util_xasprintf("%s/fake.log", root), *text = NULL;
	util_strv v = { 0 };
	char *save = NULL, *out;

	if (util_read_file(path, 1 << 20, &text, NULL, NULL) < 0)
		return util_xstrdup("");
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(l, ' ');

		if (sp && atoi(l) == gen)
			util_strv_push(&v, sp + 1);
	}
	out = join(&v);
	util_strv_clear(&v);
	return out;
}

static lc_vm *vm_now(lc_db **ret_db)
{
	util_err err = { 0 };
	lc_vm *vm = NULL;

	if (lc_load_vm(root, vm_id, ret_db, &vm, &err) < 0)
		diag("cannot load the vm: %s", err.msg);
	return vm;
}

static size_t open_intents(void)
{
	_cleanup_db_ lc_db *db = NULL;
	util_err err = { 0 };

	if (lc_db_open(root, 0, &db, &err) < 0)
		return 999;
	return json_object_size(lc_db_intents(db));
}

/* The supervisor of the test's vm, found by its command line (the journal
 * forgets it once it records its end, a little before it exits). */
static pid_t find_supervisor(void)
{
	char idtext[24];
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	snprintf(idtext, sizeof(idtext), "%" PRIu64, vm_id);
	while (d && !found && (de = readdir(d))) {
		char path[64], state = '?', *buf = NULL, *p;
		size_t len;
		pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
		bool verb = false, id = false, rt = false;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		if (pid <= 0 || util_read_file(path, 1 << 16, &buf, &len, NULL) < 0)
			continue;
		for (size_t off = 0; off < len; off += strlen(buf + off) + 1) {
			verb |= !strcmp(buf + off, SUPERVISE_VERB);
			id |= verb && !strcmp(buf + off, idtext);
			rt |= !strcmp(buf + off, root);
		}
		free(buf);
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		if ((f = fopen(path, "re"))) {
			char line[512];

			if (fgets(line, sizeof(line), f) && (p = strrchr(line, ')')))
				state = p[2];
			fclose(f);
		}
		if (verb && id && rt && state != 'Z')
			found = pid;
	}
	if (d)
		closedir(d);
	return found;
}

static pid_t find_fake(const lc_vm *vm)
{
	pid_t pid = 0;
	uint64_t start;

	lc_find_qemu(vm, &pid, &start);
	return pid;
}

/* Wait up to ms for the vm's supervisor and QEMU to be gone. */
static bool gone(const lc_vm *vm, int ms)
{
	for (int64_t end = util_now_ms() + ms;; usleep(20000)) {
		if (!find_supervisor() && !find_fake(vm))
			return true;
		if (util_now_ms() > end)
			return false;
	}
}

/* End whatever still runs the vm (a supervisor, a fake QEMU). */
static void kill_all(const lc_vm *vm)
{
	pid_t pid;

	while ((pid = find_supervisor()) > 0) {
		uint64_t start = 0;

		util_proc_starttime(pid, &start, NULL);
		lc_kill_and_wait(pid, start);
	}
	while ((pid = find_fake(vm)) > 0) {
		uint64_t start = 0;

		util_proc_starttime(pid, &start, NULL);
		lc_kill_and_wait(pid, start);
	}
}

/* Wait until nobody records for quiet_ms (the supervisor records what a
 * reset did after the command returned). */
static void settle(int quiet_ms)
{
	uint64_t last = records_mark(root);

	for (int64_t end = util_now_ms() + 3000; util_now_ms() < end;) {
		uint64_t now;

		usleep((useconds_t)quiet_ms * 1000);
		now = records_mark(root);
		if (now == last)
			return;
		last = now;
	}
}

/* One operation: how to run it, and what it leads to. */
typedef struct run_case {
	const char *name;
	int (*run)(util_err *err);
	bool on_running; /* it runs on a started vm (else on a new one) */
	bool acpi_ignored;
	int want_r;               /* what its run without a fault returns */
	lc_state done;            /* where it leads (ACTIVE: ACTIVE/RUNNING) */
	lc_state refused;         /* where a refusal leaves it */
	lc_state given_up;        /* or where its supervisor leads it (0: nowhere) */
	const char *want_sent;    /* the commands QEMU gets without a fault */
	const char *want_records; /* and the journal's records */
	int settle_ms;            /* records may follow its return */
} run_case;

static int run_start(util_err *err)
{
	return lc_vm_start(root, "fake", NULL, err);
}

static int run_shutdown(util_err *err)
{
	return lc_vm_shutdown(root, "fake", true, &(lc_run_opts){ .timeout_s = 1 }, err);
}

static int run_poweroff(util_err *err)
{
	return lc_vm_shutdown(root, "fake", false, &(lc_run_opts){ .timeout_s = 1 }, err);
}

static int run_poweroff_hard(util_err *err)
{
	return lc_vm_shutdown(root, "fake", false, &(lc_run_opts){ .hard = true }, err);
}

static int run_poweroff_hard_after(util_err *err)
{
	return lc_vm_shutdown(root, "fake", false,
	                      &(lc_run_opts){ .timeout_s = 1, .hard_after = true }, err);
}

static int run_reboot(util_err *err)
{
	return lc_vm_reboot(root, "fake", &(lc_run_opts){ .timeout_s = 1 }, err);
}

static int run_reboot_hard(util_err *err)
{
	return lc_vm_reboot(root, "fake", &(lc_run_opts){ .hard = true }, err);
}

/* A new vm named fake (the last one is gone or DONE), started if c wants. */
static bool new_vm(const run_case *c)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_create_opts co = { 0 };
	util_err err = { 0 };
	lc_vmdef def;
	int r;

	lc_vmdef_init(&def);
	def.name = util_xstrdup("fake");
	def.accel = LC_ACCEL_TCG;
	r = lc_db_open(root, LC_DB_WRITE, &db, &err);
	if (r == 0) {
		/* a vm left from the last run: out of the way */
		lc_vm *old = lc_db_vm_by_id(db, vm_id);

		if (old && old->state != LC_DONE)
			r = lc_db_record_state(db, old, LC_DONE, LC_LCM_NONE, "test over", NULL,
			                       &err);
	}
	if (r == 0)
		r = lc_vm_create(db, &def, &co, &vm_id, &err);
	lc_vmdef_clear(&def);
	lc_db_close(TAKE_PTR(db));
	if (r == 0 && c->on_running) {
		fake_configure(0, FAULT_NONE, false);
		r = lc_vm_start(root, "fake", NULL, &err);
	}
	if (r < 0)
		diag("%s: cannot make its vm: %s", c->name, err.msg);
	return r == 0;
}

/* Does the vm's state agree with what runs it? */
static bool consistent(const lc_vm *vm, char *why, size_t len)
{
	bool sup = find_supervisor() > 0, qemu = find_fake(vm) > 0;
	_cleanup_free_ char *state = lc_state_text(vm);

	if (vm->state == LC_ACTIVE && (vm->lcm != LC_LCM_RUNNING || !sup || !qemu))
		snprintf(why, len, "%s with supervisor %s and qemu %s", state,
		         sup ? "alive" : "gone", qemu ? "alive" : "gone");
	else if (vm->state != LC_ACTIVE && !gone(vm, 200))
		snprintf(why, len, "%s with its supervisor or qemu left", state);
	else
		return true;
	return false;
}

/* Is text one of alternatives ("a|b")? */
static bool one_of(const char *text, const char *alternatives)
{
	size_t n = strlen(text);

	for (const char *p = alternatives; p; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL)
		if (!strncmp(p, text, n) && (p[n] == '|' || p[n] == '\0'))
			return true;
	return false;
}

/* One run of c with how at step (FAULT_NONE: as it should go); the
 * commands sent in *ret_sent. */
static void run_once(const run_case *c, int step, fault how, char **ret_sent)
{
	_cleanup_free_ char *records = NULL, *state = NULL;
	_cleanup_db_ lc_db *db = NULL;
	util_err err = { 0 };
	char why[256] = "";
	bool agrees = false;
	uint64_t mark;
	lc_vm *vm = NULL;
	int r;

	*ret_sent = util_xstrdup("");
	if (!new_vm(c)) {
		ok(0, "%s: its vm", c->name);
		return;
	}
	fake_configure(step, how, c->acpi_ignored);
	mark = records_mark(root);
	r = c->run(&err);
	if (c->settle_ms)
		settle(c->settle_ms);
	free(*ret_sent);
	*ret_sent = fake_sent();
	/* what the supervisor does after the command returned (QEMU died
	 * under it, say) is part of the outcome */
	for (int64_t end = util_now_ms() + 4000;; usleep(50000)) {
		lc_db_close(TAKE_PTR(db));
		vm = vm_now(&db);
		why[0] = '\0';
		agrees = vm && consistent(vm, why, sizeof(why));
		if (!vm || agrees || util_now_ms() > end)
			break;
	}
	if (!vm) {
		ok(0, "%s: its vm", c->name);
		return;
	}
	records = records_since(root, vm_id, mark, NULL);
	state = lc_state_text(vm);
	if (how == FAULT_NONE) {
		ok(r == c->want_r && vm->state == c->done &&
		           (vm->state != LC_ACTIVE || vm->lcm == LC_LCM_RUNNING),
		   "%s: %s, it is %s (sent %s): %s", c->name, r ? "fails as it should" : "done",
		   state, *ret_sent, err.msg);
		is_str(*ret_sent, c->want_sent, "... qemu got what it should");
		ok(one_of(records, c->want_records), "... the journal has its records: %s",
		   records);
		if (!one_of(records, c->want_records))
			diag("expected %s", c->want_records);
	} else {
		ok((r == 0 && vm->state == c->done) ||
		           (r < 0 && strstr(err.msg, "'fake'") &&
		            (vm->state == c->refused || vm->state == c->done ||
		             (c->given_up && vm->state == c->given_up) ||
		             /* QEMU died: the supervisor says so */
		             (how == FAULT_EOF && vm->state == LC_FAILED))),
		   "%s, %s at step %d: %s, it is %s (sent %s): %s", c->name, fault_names[how], step,
		   r == 0 ? "done all the same" : "refused, naming the vm", state, *ret_sent,
		   err.msg);
	}
	ok(agrees, "... what runs it agrees with its state%s%s", why[0] ? ": " : "", why);
	is_int((int)open_intents(), 0, "... no intent left open");
	kill_all(vm);
}

static void test_case(const run_case *c)
{
	_cleanup_free_ char *happy = NULL;
	size_t steps = 1;

	run_once(c, 0, FAULT_NONE, &happy);
	for (const char *p = happy; *p; p++)
		steps += *p == ' ';
	for (size_t step = 1; step <= steps && *happy; step++)
		for (fault how = FAULT_ERROR; how <= FAULT_SILENCE; how++) {
			_cleanup_free_ char *sent = NULL;

			run_once(c, (int)step, how, &sent);
		}
}

/* The operations: each run without a fault sends these commands and
 * writes these records (alternatives split by '|': a command and the
 * supervisor race to mark that QEMU got a request, and only the first
 * does). */
static const run_case cases[] = {
	{ .name = "start",
	  .run = run_start,
	  .done = LC_ACTIVE,
	  .refused = LC_FAILED,
	  .want_sent = "qmp_capabilities cont",
	  .want_records = "ACTIVE/BOOT ACTIVE/BOOT ACTIVE/RUNNING" },
	{ .name = "shutdown",
	  .run = run_shutdown,
	  .on_running = true,
	  .done = LC_DONE,
	  .refused = LC_ACTIVE,
	  .want_sent = "qmp_capabilities system_powerdown quit",
	  .want_records = "ACTIVE/SHUTDOWN sent ACTIVE/EPILOG DONE" },
	{ .name = "poweroff",
	  .run = run_poweroff,
	  .on_running = true,
	  .done = LC_POWEROFF,
	  .refused = LC_ACTIVE,
	  .want_sent = "qmp_capabilities system_powerdown quit",
	  .want_records = "ACTIVE/SHUTDOWN sent ACTIVE/EPILOG POWEROFF" },
	{ .name = "poweroff --hard",
	  .run = run_poweroff_hard,
	  .on_running = true,
	  .done = LC_POWEROFF,
	  .refused = LC_ACTIVE,
	  .want_sent = "qmp_capabilities quit",
	  .want_records = "ACTIVE/SHUTDOWN sent ACTIVE/EPILOG POWEROFF|"
	                  "ACTIVE/SHUTDOWN ACTIVE/EPILOG POWEROFF" },
	/* (a QEMU that dies under a poweroff leaves the vm powered off) */
	{ .name = "poweroff of a guest that ignores acpi",
	  .run = run_poweroff,
	  .on_running = true,
	  .acpi_ignored = true,
	  .want_r = -ETIMEDOUT,
	  .done = LC_ACTIVE,
	  .refused = LC_ACTIVE,
	  .given_up = LC_POWEROFF,
	  .want_sent = "qmp_capabilities system_powerdown",
	  .want_records = "ACTIVE/SHUTDOWN sent ACTIVE/RUNNING" },
	{ .name = "poweroff --hard-after of a guest that ignores acpi",
	  .run = run_poweroff_hard_after,
	  .on_running = true,
	  .acpi_ignored = true,
	  .done = LC_POWEROFF,
	  .refused = LC_ACTIVE,
	  .want_sent = "qmp_capabilities system_powerdown quit",
	  .want_records = "ACTIVE/SHUTDOWN sent ACTIVE/EPILOG POWEROFF" },
	/* a soft reboot its supervisor cannot finish powers the (shut
	 * down) guest off */
	{ .name = "reboot",
	  .run = run_reboot,
	  .on_running = true,
	  .done = LC_ACTIVE,
	  .refused = LC_ACTIVE,
	  .given_up = LC_POWEROFF,
	  .want_sent = "qmp_capabilities system_powerdown system_reset cont",
	  .want_records = "ACTIVE/SHUTDOWN sent ACTIVE/RUNNING" },
	{ .name = "reboot --hard",
	  .run = run_reboot_hard,
	  .on_running = true,
	  .done = LC_ACTIVE,
	  .refused = LC_ACTIVE,
	  .want_sent = "qmp_capabilities system_reset",
	  .want_records = "ACTIVE/RUNNING",
	  .settle_ms = 150 },
};

/* Wait for case i's process and pass its TAP lines on, numbered on. */
static void collect(pid_t pid, size_t i)
{
	char out[64];
	_cleanup_free_ char *text = NULL;
	char *save = NULL;
	int status = 0;

	snprintf(out, sizeof(out), "/tmp/qvm-unit-ops-run.%d.%zu", (int)getpid(), i);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		ok(0, "%s: its process ended", cases[i].name);
	if (util_read_file(out, 1 << 24, &text, NULL, NULL) < 0)
		text = util_xstrdup("");
	unlink(out);
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		bool pass = !strncmp(l, "ok ", 3);
		char *rest = strstr(l, " - ");

		if ((pass || !strncmp(l, "not ok ", 7)) && rest)
			ok(pass, "%s", rest + 3);
		else
			printf("%s\n", l);
	}
}

/* Re-executed: as the supervisor (lc_spawn_supervisor's argv: qvm --root
 * ROOT VERB ID --status-fd=3 [--lock-fd=4] [--adopt]), or as QEMU. */
static int supervisor_main(int argc, char **argv)
{
	util_err err = { 0 };
	int lock_fd = -1;
	bool adopt = false;

	for (int i = 5; i < argc; i++) {
		lock_fd = !strcmp(argv[i], "--lock-fd=4") ? 4 : lock_fd;
		adopt |= !strcmp(argv[i], "--adopt");
	}
	if (lc_supervise(argv[2], strtoull(argv[4], NULL, 10), 3, lock_fd, adopt, NULL, &err) < 0) {
		fprintf(stderr, "supervisor: %s\n", err.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/qvm-unit-ops-run.XXXXXX", self[PATH_MAX];
	pid_t pids[UTIL_ARRAY_SIZE(cases)];
	ssize_t n;

	if (argc > 1 && !strcmp(argv[1], "-name"))
		fake_qemu_main(argc, argv);
	if (argc > 4 && !strcmp(argv[3], SUPERVISE_VERB))
		return supervisor_main(argc, argv);
	lc_set_supervisor_verb(SUPERVISE_VERB);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (!ok(n > 0, "this binary plays qemu"))
		return done_testing();
	self[n] = '\0';
	setenv("QVM_QEMU", self, 1);
	setenv("QVM_QMP_CONNECT_TIMEOUT_MS", "1000", 1);
	/* the cases at once, each in a process and root of its own (most of
	 * their time is spent waiting out QEMU's silence) */
	fflush(stdout);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
		char out[64];
		int fd;

		snprintf(out, sizeof(out), "/tmp/qvm-unit-ops-run.%d.%zu", (int)getpid(), i);
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if ((pids[i] = fd < 0 ? -1 : fork()) == 0) {
			dup2(fd, STDOUT_FILENO);
			root = mkdtemp(tmpl);
			if (ok(root != NULL, "%s: a root", cases[i].name))
				test_case(&cases[i]);
			if (root)
				util_rm_rf(root, NULL);
			fflush(stdout);
			_exit(0);
		}
		if (fd >= 0)
			close(fd);
	}
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++)
		collect(pids[i], i);
	return done_testing();
}
