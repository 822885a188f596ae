/* Operations on a running VM without QEMU, in the style of libvirt's
 * qemuhotplugtest: a fake QEMU (a forked child serving the VM's command QMP
 * socket) answers what each operation sends, and the test checks the
 * commands it sent, the state and records it left, and its definition.
 * Each operation is run once as it should go, then once with a fault at
 * every step of that run: QEMU's error reply, EOF, or silence (the client's
 * timeouts are made short here). After a fault nothing is half done: the
 * VM is back in ACTIVE/RUNNING, no intent is open, the definition is the
 * old one, and what was added to QEMU was taken out again. */
#define QMP_TIMEOUT_QUICK_MS  400
#define QMP_TIMEOUT_DEVICE_MS 400
#define QMP_TIMEOUT_JOB_MS    400
#include "qmp/client.c"

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "lifecycle/run.h"
#include "lifecycle/snapshot.h"
#include "net/net.h"
#include "ops_fake.h"
#include "tap.h"

static const char *root;
static uint64_t vm_id;
/* What the fake QEMU holds, across the runs: node and device names; and
 * the internal snapshots its disks hold. */
static util_strv held, tags;

/* ---- the fake QEMU (child side) -------------------------------------------------------- */

/* What a real QEMU of a pc VM with no hot-plugged devices answers. */
static const char *default_reply(const char *cmd)
{
	if (!strcmp(cmd, "query-pci"))
		return "{\"return\": [{\"bus\": 0, \"devices\": []}]}";
	if (!strcmp(cmd, "query-status"))
		return "{\"return\": {\"status\": \"running\", \"running\": true}}";
	if (!strcmp(cmd, "query-vnc"))
		return "{\"return\": {\"enabled\": true, \"host\": \"127.0.0.1\", "
		       "\"service\": \"5901\", \"family\": \"ipv4\", \"auth\": \"vnc\", "
		       "\"clients\": []}}";
	if (!strncmp(cmd, "query-", 6) || !strcmp(cmd, "qom-list"))
		return "{\"return\": []}";
	return "{\"return\": {}}";
}

/* What the fake QEMU holds (in the child): block nodes and devices, as
 * the test set them up before it forked and as commands change them. */
static json_t *fake_nodes, *fake_devices, *fake_jobs, *fake_tags;
/* The fds getfd gave it (name: fd) and the netdevs that took them (id:
 * fd, -1 for those a run before this one left), and the fd that came with
 * the command at hand (SCM_RIGHTS), if any: QEMU holds a tap open. */
static json_t *fake_fds, *fake_netdevs;
static int fake_passed = -1;

static void close_held(json_t *held_fds, const char *key)
{
	int fd = (int)json_integer_value(json_object_get(held_fds, key));

	if (fd >= 0)
		close(fd);
	json_object_del(held_fds, key);
}

/* getfd, closefd, netdev_add, netdev_del (tell report as note_held does). */
static void note_held_net(int report, const char *cmd, json_t *args)
{
	const char *fdname = json_string_value(json_object_get(args, "fdname"));
	const char *id = json_string_value(json_object_get(args, "id"));

	if (!strcmp(cmd, "getfd") && fdname && fake_passed >= 0) {
		if (json_object_get(fake_fds, fdname))
			close_held(fake_fds, fdname);
		else
			dprintf(report, "+fd:%s\n", fdname);
		json_object_set_new(fake_fds, fdname, json_integer(fake_passed));
		fake_passed = -1;
	} else if (!strcmp(cmd, "closefd") && fdname && json_object_get(fake_fds, fdname)) {
		close_held(fake_fds, fdname);
		dprintf(report, "-fd:%s\n", fdname);
	} else if (!strcmp(cmd, "netdev_add") && id && !json_object_get(fake_netdevs, id)) {
		const char *from = json_string_value(json_object_get(args, "fd"));
		json_t *fd = from ? json_object_get(fake_fds, from) : NULL;

		/* the netdev takes the fd out of the named ones */
		json_object_set_new(fake_netdevs, id,
		                    json_integer(fd ? json_integer_value(fd) : -1));
		if (fd) {
			json_object_del(fake_fds, from);
			dprintf(report, "-fd:%s\n", from);
		}
		dprintf(report, "+netdev:%s\n", id);
	} else if (!strcmp(cmd, "netdev_del") && id && json_object_get(fake_netdevs, id)) {
		close_held(fake_netdevs, id);
		dprintf(report, "-netdev:%s\n", id);
	}
}

/* Apply a command to what QEMU holds, and tell report ("+name" or
 * "-name", a line each) so that the test keeps count across runs. */
static void note_held(int report, const char *cmd, json_t *args)
{
	const char *node = json_string_value(json_object_get(args, "node-name"));
	const char *dev = json_string_value(json_object_get(args, "id"));

	if (!cmd)
		return;
	if (!strcmp(cmd, "blockdev-add") && node && !json_object_get(fake_nodes, node)) {
		json_object_set_new(fake_nodes, node, json_true());
		dprintf(report, "+node:%s\n", node);
	} else if (!strcmp(cmd, "blockdev-del") && node && json_object_get(fake_nodes, node)) {
		json_object_del(fake_nodes, node);
		dprintf(report, "-node:%s\n", node);
	} else if (!strcmp(cmd, "device_add") && dev && !json_object_get(fake_devices, dev)) {
		json_object_set_new(fake_devices, dev, json_true());
		dprintf(report, "+dev:%s\n", dev);
	} else if (!strcmp(cmd, "device_del") && dev && json_object_get(fake_devices, dev)) {
		json_object_del(fake_devices, dev);
		dprintf(report, "-dev:%s\n", dev);
	} else if (!strncmp(cmd, "snapshot-", 9) && json_object_get(args, "job-id")) {
		/* a snapshot job that ends at once, and well: every disk gets
		 * (or loses) the internal snapshot */
		const char *tag = json_string_value(json_object_get(args, "tag"));

		json_object_set_new(fake_jobs, json_string_value(json_object_get(args, "job-id")),
		                    json_string(cmd));
		if (tag && !strcmp(cmd, "snapshot-save")) {
			json_object_set_new(fake_tags, tag, json_true());
			dprintf(report, "+tag:%s\n", tag);
		} else if (tag && !strcmp(cmd, "snapshot-delete")) {
			json_object_del(fake_tags, tag);
			dprintf(report, "-tag:%s\n", tag);
		}
	} else if (!strcmp(cmd, "job-dismiss") && dev) {
		json_object_del(fake_jobs, dev);
	} else {
		note_held_net(report, cmd, args);
	}
}

/* QEMU refuses a second node, device or netdev of a name, and a qom-get
 * of a device or a netdev_del of a netdev it does not have, as the real
 * one does. */
static bool refused(const char *cmd, json_t *args)
{
	const char *node = json_string_value(json_object_get(args, "node-name"));
	const char *dev = json_string_value(json_object_get(args, "id"));
	const char *path = json_string_value(json_object_get(args, "path"));

	if (!cmd)
		return false;
	if (!strcmp(cmd, "qom-get") && path && util_startswith(path, "/machine/peripheral/"))
		return !json_object_get(fake_devices, path + strlen("/machine/peripheral/"));
	if (!strcmp(cmd, "netdev_del") && dev)
		return !json_object_get(fake_netdevs, dev);
	return (!strcmp(cmd, "blockdev-add") && node && json_object_get(fake_nodes, node)) ||
	       (!strcmp(cmd, "device_add") && dev && json_object_get(fake_devices, dev)) ||
	       (!strcmp(cmd, "netdev_add") && dev && json_object_get(fake_netdevs, dev));
}

/* The answers that depend on what it holds; NULL for the others. */
static char *held_reply(const char *cmd)
{
	json_t *list = json_array(), *v;
	const char *k;
	char *text, *out;

	if (!strcmp(cmd, "qom-list"))
		json_object_foreach (fake_devices, k, v)
			json_array_append_new(list, json_pack("{s:s, s:s}", "name", k, "type",
			                                      util_startswith(k, "nic")
			                                              ? "child<virtio-net-pci>"
			                                              : "child<virtio-blk-pci>"));
	else if (!strcmp(cmd, "query-named-block-nodes"))
		json_object_foreach (fake_nodes, k, v) {
			json_t *snaps = json_array(), *tv;
			const char *tag;

			json_object_foreach (fake_tags, tag, tv)
				json_array_append_new(snaps, json_pack("{s:s, s:i}", "name", tag,
				                                       "vm-state-size", 4096));
			json_array_append_new(list, json_pack("{s:s, s:{s:o}}", "node-name", k,
			                                      "image", "snapshots", snaps));
		}
	else if (!strcmp(cmd, "query-jobs"))
		json_object_foreach (fake_jobs, k, v)
			json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "id", k, "type",
			                                      json_string_value(v), "status",
			                                      "concluded"));
	else {
		json_decref(list);
		return NULL;
	}
	text = json_dumps(list, JSON_COMPACT);
	out = util_xasprintf("{\"return\": %s}", text);
	free(text);
	json_decref(list);
	return out;
}

typedef struct fake_in {
	int fd;
	size_t len;
	char buf[65536];
} fake_in;

/* One command (one JSON object a line, as qvm sends them), or NULL at EOF;
 * an fd that came with it in fake_passed. */
static json_t *fake_read(fake_in *in)
{
	for (;;) {
		char *nl = memchr(in->buf, '\n', in->len), cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { in->buf + in->len, sizeof(in->buf) - in->len };
		struct msghdr mh = { .msg_iov = &iov,
			             .msg_iovlen = 1,
			             .msg_control = cbuf,
			             .msg_controllen = sizeof(cbuf) };
		ssize_t n;

		if (nl) {
			json_t *j;

			*nl = '\0';
			j = json_loads(in->buf, 0, NULL);
			in->len -= (size_t)(nl + 1 - in->buf);
			memmove(in->buf, nl + 1, in->len);
			return j ? j : json_object();
		}
		if (in->len >= sizeof(in->buf) || (n = recvmsg(in->fd, &mh, MSG_CMSG_CLOEXEC)) <= 0)
			return NULL;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				if (fake_passed >= 0)
					close(fake_passed);
				memcpy(&fake_passed, CMSG_DATA(cm), sizeof(int));
			}
		in->len += (size_t)n;
	}
}

/* Serve connections one after another: every command is written to report
 * (its name, a line each) and answered, but for step fault_at (1-based,
 * counted over all connections), which gets the fault. */
static _Noreturn void fake_qemu(int listen_fd, int report, int fault_at, fault how)
{
	int step = 0;

	static fake_in in;

	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		json_t *cmd;

		if (fd < 0)
			_exit(0);
		in.fd = fd;
		in.len = 0;
		fake_write(fd, GREETING);
		while ((cmd = fake_read(&in))) {
			const char *name = json_string_value(json_object_get(cmd, "execute"));
			json_t *id = json_object_get(cmd, "id");
			char *id_text = id ? json_dumps(id, JSON_ENCODE_ANY) : strdup("null");
			char reply[512];
			bool caps = name && !strcmp(name, "qmp_capabilities"), dup_name;

			if (!caps) {
				step++;
				dprintf(report, "%s\n", name ? name : "?");
			}
			dup_name = !caps && refused(name, json_object_get(cmd, "arguments"));
			/* what QEMU holds: a silent QEMU did it all the same */
			if (!caps && !dup_name && !(step == fault_at && how != FAULT_SILENCE))
				note_held(report, name, json_object_get(cmd, "arguments"));
			if (fake_passed >= 0) /* not taken: QEMU lets it go */
				close(TAKE_FD(fake_passed));
			if (!caps && step == fault_at && how == FAULT_EOF) {
				json_decref(cmd);
				free(id_text);
				break;
			}
			if (!caps && step == fault_at && how == FAULT_SILENCE) {
				json_decref(cmd);
				free(id_text);
				continue;
			}
			if (!caps && (dup_name || (step == fault_at && how == FAULT_ERROR))) {
				/* a device it does not have, as QEMU says it */
				fake_error(fd,
				           dup_name && (!strcmp(name, "qom-get") ||
				                        !strcmp(name, "netdev_del"))
				                   ? "DeviceNotFound"
				                   : "GenericError",
				           name, id_text);
				reply[0] = '\0';
			} else {
				char *dyn = held_reply(name ? name : "");
				const char *base = dyn ? dyn : default_reply(name ? name : "");

				snprintf(reply, sizeof(reply), "%.*s, \"id\": %s}\r\n",
				         (int)strlen(base) - 1, base, id_text);
				free(dyn);
			}
			if (reply[0])
				fake_write(fd, reply);
			if (name && !strcmp(name, "device_del") && step != fault_at) {
				/* the guest lets go at once */
				json_t *dev =
				        json_object_get(json_object_get(cmd, "arguments"), "id");

				snprintf(
				        reply, sizeof(reply),
				        "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"%s\", "
				        "\"path\": \"/machine/peripheral/%s\"}, \"timestamp\": "
				        "{\"seconds\": 1, \"microseconds\": 0}}\r\n",
				        json_string_value(dev), json_string_value(dev));
				fake_write(fd, reply);
			}
			json_decref(cmd);
			free(id_text);
		}
		close(fd);
	}
}

/* ---- the test's side ---------------------------------------------------------------------- */

typedef struct fake {
	pid_t pid;
	int report; /* read end */
} fake;

static int fake_start(fake *f, int fault_at, fault how)
{
	lc_paths p;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, pipefd[2];

	lc_paths_init(&p, root, vm_id);
	util_mkdir_p(p.rundir, 0700, NULL);
	unlink(p.qmp_command);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p.qmp_command);
	lc_paths_clear(&p);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0 ||
	    pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	fflush(stdout);
	f->pid = fork();
	if (f->pid == 0) {
		close(pipefd[0]);
		/* it holds what the earlier runs left it: a disk's node and
		 * device are both "disk<id>" */
		fake_nodes = json_object();
		fake_devices = json_object();
		fake_jobs = json_object();
		fake_tags = json_object();
		fake_fds = json_object();
		fake_netdevs = json_object();
		for (size_t i = 0; i < tags.n; i++)
			json_object_set_new(fake_tags, tags.v[i], json_true());
		for (size_t i = 0; i < held.n; i++) {
			const char *h = held.v[i];
			json_t *in = !strncmp(h, "node:", 5)     ? fake_nodes
			             : !strncmp(h, "netdev:", 7) ? fake_netdevs
			             : !strncmp(h, "fd:", 3)     ? fake_fds
			                                         : fake_devices;

			json_object_set_new(in, strchr(h, ':') + 1,
			                    in == fake_netdevs || in == fake_fds ? json_integer(-1)
			                                                         : json_true());
		}
		fake_qemu(fd, pipefd[1], fault_at, how);
	}
	close(fd);
	close(pipefd[1]);
	f->report = pipefd[0];
	return f->pid < 0 ? -errno : 0;
}

/* Stop the fake QEMU; the commands it got, as "a b c"; held updated. */
static char *fake_stop(fake *f)
{
	char buf[8192], *save = NULL;
	size_t n = 0;
	ssize_t r;
	util_strv cmds = { 0 };
	char *out;

	kill(f->pid, SIGKILL);
	waitpid(f->pid, NULL, 0);
	while (n < sizeof(buf) - 1 && (r = read(f->report, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(f->report);
	buf[n] = '\0';
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(l, "+tag:", 5)) {
			if (!util_strv_contains((const char *const *)tags.v, l + 5))
				util_strv_push(&tags, l + 5);
		} else if (!strncmp(l, "-tag:", 5)) {
			for (size_t i = 0; i < tags.n; i++)
				if (!strcmp(tags.v[i], l + 5)) {
					free(tags.v[i]);
					tags.v[i] = tags.v[--tags.n];
					tags.v[tags.n] = NULL;
					break;
				}
		} else if (l[0] == '+') {
			util_strv_push(&held, l + 1);
		} else if (l[0] == '-') {
			for (size_t i = 0; i < held.n; i++)
				if (!strcmp(held.v[i], l + 1)) {
					free(held.v[i]);
					held.v[i] = held.v[--held.n];
					held.v[held.n] = NULL;
					break;
				}
		} else {
			util_strv_push(&cmds, l);
		}
	}
	out = join(&cmds);
	util_strv_clear(&cmds);
	return out;
}

/* The internal snapshots the fake's disks hold, and those vm's tree says
 * they hold, as "a b". */
static char *tags_held(void)
{
	if (tags.n)
		qsort(tags.v, tags.n, sizeof(char *), cmp_str);
	return join(&tags);
}

static char *tags_by_tree(const lc_vm *vm)
{
	util_strv v = { 0 };
	json_t *s;
	size_t i;
	char *t;

	json_array_foreach (json_object_get(vm->snapshots, "items"), i, s)
		util_strv_push(&v, json_string_value(json_object_get(s, "tag")));
	if (v.n)
		qsort(v.v, v.n, sizeof(char *), cmp_str);
	t = join(&v);
	util_strv_clear(&v);
	return t;
}

/* What QEMU should hold for vm: each disk's node and device. */
static char *held_by_def(const lc_vm *vm)
{
	util_strv v = { 0 };
	char *t;

	for (size_t i = 0; i < vm->def.n_disks; i++) {
		util_strv_pushf(&v, "dev:disk%u", vm->def.disks[i].id);
		util_strv_pushf(&v, "node:disk%u", vm->def.disks[i].id);
	}
	for (size_t i = 0; i < vm->def.n_nics; i++) {
		util_strv_pushf(&v, "dev:nic%u", vm->def.nics[i].id);
		util_strv_pushf(&v, "netdev:net%u", vm->def.nics[i].id);
	}
	if (v.n)
		qsort(v.v, v.n, sizeof(char *), cmp_str);
	t = join(&v);
	util_strv_clear(&v);
	if (*t)
		return t;
	free(t);
	return util_xstrdup("nothing");
}

/* Does QEMU hold what vm's definition says, and beyond it only block
 * nodes and netdevs (no device)? */
static bool stale_nodes_only(const lc_vm *vm)
{
	_cleanup_free_ char *by_def = held_by_def(vm);
	util_strv w = { 0 };
	size_t found = 0;
	char *save = NULL;
	bool only = true;

	for (char *t = strtok_r(by_def, " ", &save); t; t = strtok_r(NULL, " ", &save))
		if (strcmp(t, "nothing"))
			util_strv_push(&w, t);
	for (size_t i = 0; i < held.n; i++) {
		bool wanted = util_strv_contains((const char *const *)w.v, held.v[i]);

		found += wanted;
		only &= wanted || !strncmp(held.v[i], "node:", 5) ||
		        !strncmp(held.v[i], "netdev:", 7);
	}
	only &= found == w.n;
	util_strv_clear(&w);
	return only;
}

/* The taps of the vm's nics that the host has and its definition does
 * not ("" when none): what a rolled-back attach or a detach leaves. */
static char *taps_left(const lc_vm *vm)
{
	util_strv v = { 0 };
	char *t;

	for (unsigned id = 0; id < LC_NICS_MAX; id++) {
		char tap[16];
		net_link_info li;
		bool in_def = false;

		for (size_t k = 0; k < vm->def.n_nics; k++)
			in_def |= vm->def.nics[k].id == id;
		if (!in_def && net_tap_name(vm->id, id, tap, sizeof(tap), NULL) == 0 &&
		    net_link_get(tap, &li, NULL) == 0 && li.kind == NET_KIND_TAP)
			util_strv_push(&v, tap);
	}
	t = join(&v);
	util_strv_clear(&v);
	return t;
}

static char *held_text(void)
{
	char *t;

	if (held.n)
		qsort(held.v, held.n, sizeof(char *), cmp_str);
	t = join(&held);

	if (*t)
		return t;
	free(t);
	return util_xstrdup("nothing");
}

/* The VM, as the journal has it now (a new db in *ret_db). */
static lc_vm *vm_now(lc_db **ret_db)
{
	util_err err = { 0 };
	lc_vm *vm = NULL;

	if (lc_load_vm(root, vm_id, ret_db, &vm, &err) < 0)
		diag("cannot load the vm: %s", err.msg);
	return vm;
}

/* The VM runs: its supervisor is this test (alive, as reconciliation
 * checks) and its QEMU the fake. */
static void set_running(void)
{
	util_err err = { 0 };
	uint64_t start = 0;

	util_proc_starttime(getpid(), &start, NULL);
	if (lc_record(root, vm_id, LC_ACTIVE, LC_LCM_RUNNING, "running on a fake qemu", NULL,
	              json_pack("{s:i, s:I, s:i, s:I}", "supervisor_pid", (int)getpid(),
	                        "supervisor_starttime", (json_int_t)start, "qemu_pid",
	                        (int)getpid(), "qemu_starttime", (json_int_t)start),
	              &err) < 0)
		diag("cannot mark the vm running: %s", err.msg);
}

static size_t open_intents(void)
{
	_cleanup_db_ lc_db *db = NULL;
	util_err err = { 0 };

	if (lc_db_open(root, 0, &db, &err) < 0)
		return 999;
	return json_object_size(lc_db_intents(db));
}

/* One operation under test: what it does, and how to see that it did. */
typedef struct op_case {
	const char *name;
	int (*run)(util_err *err);
	bool (*done)(const lc_vm *vm); /* the VM shows the operation's effect */
	lc_lcm lcm_after;              /* its LCM state when done */
	int (*prepare)(util_err *err); /* to the state each run starts from (or NULL) */
	const char *want_records;      /* the journal's records of a run without a fault */
} op_case;

static int run_pause(util_err *err)
{
	return lc_vm_pause(root, "fake", true, NULL, err);
}

static bool paused(const lc_vm *vm)
{
	return vm->lcm == LC_LCM_PAUSED;
}

/* vnc sets a password and its expiry: nothing is recorded, nothing
 * changes in the vm; a fault leaves it running with no password printed */
static int run_vnc(util_err *err)
{
	_cleanup_json_ json_t *out = NULL;
	int r = lc_vm_vnc(root, "fake", 30, NULL, &out, err);

	if (r == 0 && (json_integer_value(json_object_get(out, "display")) != 1 ||
	               strlen(json_string_value(json_object_get(out, "password")) ?: "") != 8))
		r = util_err_set(err, -EPROTO, "vnc printed the wrong display or password");
	return r;
}

static bool vnc_done(const lc_vm *vm)
{
	return vm->lcm == LC_LCM_RUNNING;
}

static int run_disk_attach(util_err *err)
{
	lc_disk d;
	lc_disk_opts o = { 0 };
	int r = lc_disk_parse("64M", &d, err);

	if (r == 0)
		r = lc_vm_disk_attach(root, "fake", &d, &o, NULL, err);
	lc_disk_clear(&d);
	return r;
}

static bool has_disk(const lc_vm *vm)
{
	return vm->def.n_disks == 1;
}

static int run_disk_detach(util_err *err)
{
	lc_disk_opts o = { .timeout_s = 1 };
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);

	if (!vm || vm->def.n_disks == 0)
		return util_err_set(err, -ENOENT, "the test's vm has no disk to detach");
	return lc_vm_disk_detach(root, "fake", vm->def.disks[0].id, &o, NULL, err);
}

static bool no_disk(const lc_vm *vm)
{
	return vm->def.n_disks == 0;
}

static int run_snapshot_create(util_err *err)
{
	return lc_vm_snapshot_create(root, "fake", "s1", false, NULL, NULL, err);
}

static size_t n_snapshots(const lc_vm *vm)
{
	return json_array_size(json_object_get(vm->snapshots, "items"));
}

static bool has_snapshot(const lc_vm *vm)
{
	return n_snapshots(vm) == 1;
}

static int run_snapshot_revert(util_err *err)
{
	return lc_vm_snapshot_revert(root, "fake", "s1", false, NULL, NULL, err);
}

static bool reverted(const lc_vm *vm)
{
	json_t *s = json_array_get(json_object_get(vm->snapshots, "items"), 0);

	return s && json_integer_value(json_object_get(vm->snapshots, "current")) ==
	                    json_integer_value(json_object_get(s, "id"));
}

static int run_nic_attach(util_err *err)
{
	return lc_vm_nic_attach(root, "fake", "testnet", NULL, NULL, NULL, NULL, NULL, err);
}

static bool has_nic(const lc_vm *vm)
{
	return vm->def.n_nics == 1;
}

static int run_nic_detach(util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);

	if (!vm || vm->def.n_nics == 0)
		return util_err_set(err, -ENOENT, "the test's vm has no nic to detach");
	return lc_vm_nic_detach(root, "fake", vm->def.nics[0].id, NULL, err);
}

static bool no_nic(const lc_vm *vm)
{
	return vm->def.n_nics == 0;
}

static int with_no_nic(util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);

	return vm && vm->def.n_nics ? run_nic_detach(err) : 0;
}

static int with_a_nic(util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);

	return vm && vm->def.n_nics ? 0 : run_nic_attach(err);
}

/* Each disk run starts with the disk it expects, or without. */
static int with_no_disk(util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);

	return vm && vm->def.n_disks ? run_disk_detach(err) : 0;
}

static int with_a_disk(util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);

	return vm && vm->def.n_disks ? 0 : run_disk_attach(err);
}

/* A disk and no snapshot: the tree emptied in the journal, and the disks
 * the fake QEMU gets emptied too. */
static int with_a_disk_no_snapshot(util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm;
	int r = with_a_disk(err);

	if (r == 0)
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r == 0 && !(vm = lc_db_vm_by_id(db, vm_id)))
		r = util_err_set(err, -ENOENT, "no vm");
	if (r == 0)
		r = lc_snap_forget_all(db, vm, err);
	util_strv_clear(&tags);
	return r;
}

/* A disk and snapshot s1, not the current one (a revert makes it so). */
static int with_a_snapshot(util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm;
	int r = with_a_disk(err);

	if (r == 0 && (vm = vm_now(&db)) && n_snapshots(vm) == 0)
		r = run_snapshot_create(err);
	lc_db_close(TAKE_PTR(db));
	if (r == 0)
		r = lc_db_open(root, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_db_append(db,
		                 json_pack("{s:s, s:I, s:i}", "type", "snapshot-current", "id",
		                           (json_int_t)vm_id, "snap", 0),
		                 NULL, err);
	return r;
}

/* The VM's definition and the files of its folder: what a refused
 * operation leaves as it found. */
static char *vm_picture(void)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *dir = NULL;
	_cleanup_json_ json_t *j = NULL;
	util_strv files = { 0 };
	lc_vm *vm = vm_now(&db);
	struct dirent *de;
	DIR *d;
	char *def, *names, *out;

	if (!vm)
		return util_xstrdup("?");
	j = lc_vmdef_to_json(&vm->def);
	def = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	dir = lc_vm_dir(db, vm->id);
	d = opendir(dir);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && strstr(de->d_name, ".log") == NULL)
			util_strv_push(&files, de->d_name);
	if (d)
		closedir(d);
	if (files.n)
		qsort(files.v, files.n, sizeof(char *), cmp_str);
	names = join(&files);
	util_strv_clear(&files);
	out = util_xasprintf("%s files: %s", def, names);
	free(def);
	free(names);
	return out;
}

/* The VM running, in the state c's runs start from (prepared against a
 * fake QEMU that does what it is asked). */
static void prepare(const op_case *c)
{
	util_err err = { 0 };
	fake f;

	set_running();
	if (!c->prepare || fake_start(&f, 0, FAULT_NONE) < 0)
		return;
	if (c->prepare(&err) < 0)
		diag("%s: cannot prepare its run: %s", c->name, err.msg);
	free(fake_stop(&f));
	set_running();
}

/* The taps left, looked at while the fake QEMU still holds what it took. */
static char *taps_now(void)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);

	return vm ? taps_left(vm) : util_xstrdup("?");
}

/* The vm's nics, as bits of their ids. */
static unsigned nic_ids(void)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);
	unsigned ids = 0;

	for (size_t i = 0; vm && i < vm->def.n_nics; i++)
		ids |= 1u << vm->def.nics[i].id;
	return ids;
}

/* The nics attached since the vm had those of old whose tap the host
 * lacks ("" when none): the tap lives as long as QEMU holds it. */
static char *taps_missing(unsigned old)
{
	_cleanup_db_ lc_db *db = NULL;
	lc_vm *vm = vm_now(&db);
	util_strv v = { 0 };
	char *t;

	for (size_t i = 0; vm && i < vm->def.n_nics; i++) {
		char tap[16];
		net_link_info li;
		unsigned id = vm->def.nics[i].id;

		if (!(old & (1u << id)) &&
		    (net_tap_name(vm->id, id, tap, sizeof(tap), NULL) < 0 ||
		     net_link_get(tap, &li, NULL) < 0 || li.kind != NET_KIND_TAP))
			util_strv_pushf(&v, "nic%u", id);
	}
	t = join(&v);
	util_strv_clear(&v);
	return t;
}

/* The operation as it should go: the commands it sent, the journal's
 * records, the vm; the commands in *ret_sent. */
static void happy_run(const op_case *c, char **ret_sent)
{
	_cleanup_free_ char *records = NULL, *taps = NULL, *missing = NULL;
	_cleanup_db_ lc_db *db = NULL;
	util_err err = { 0 };
	unsigned nics;
	uint64_t mark;
	lc_vm *vm;
	fake f;
	int r;

	*ret_sent = util_xstrdup("");
	prepare(c);
	nics = nic_ids();
	if (fake_start(&f, 0, FAULT_NONE) < 0) {
		ok(0, "%s: a fake qemu", c->name);
		return;
	}
	mark = records_mark(root);
	r = c->run(&err);
	taps = taps_now();
	missing = taps_missing(nics);
	free(*ret_sent);
	*ret_sent = fake_stop(&f);
	vm = vm_now(&db);
	ok(r == 0 && vm && c->done(vm) && vm->state == LC_ACTIVE && vm->lcm == c->lcm_after,
	   "%s: done, and the vm shows it (sent %s): %s", c->name, *ret_sent, err.msg);
	records = records_since(root, vm_id, mark, NULL);
	is_str(records, c->want_records, "%s: the journal has its records", c->name);
	is_str(taps, "", "%s: no tap of a nic it does not have", c->name);
	is_str(missing, "", "%s: a tap for each nic it attached, which qemu holds", c->name);
	is_int((int)open_intents(), 0, "%s: no intent left open", c->name);
}

/* The operation with how at step, from the state before it. */
static void fault_run(const op_case *c, size_t step, fault how)
{
	_cleanup_free_ char *sent = NULL, *before = NULL, *after = NULL, *taps = NULL;
	_cleanup_free_ char *held_now = NULL, *want_held = NULL;
	_cleanup_db_ lc_db *db = NULL;
	util_err err = { 0 };
	lc_vm *vm;
	fake f;
	int r;

	prepare(c);
	before = vm_picture();
	if (fake_start(&f, (int)step, how) < 0) {
		ok(0, "%s: a fake qemu", c->name);
		return;
	}
	r = c->run(&err);
	taps = taps_now();
	sent = fake_stop(&f);
	vm = vm_now(&db);
	after = vm_picture();
	held_now = held_text();
	/* refused with nothing done, or (when QEMU did it without saying so)
	 * done: never half of it */
	ok(vm && vm->state == LC_ACTIVE &&
	           (r < 0 ? strstr(err.msg, "'fake'") && vm->lcm == LC_LCM_RUNNING &&
	                            !strcmp(after, before)
	                  : c->done(vm) && vm->lcm == c->lcm_after),
	   "%s, %s at step %zu: %s (sent %s): %s", c->name, fault_names[how], step,
	   r < 0 ? "refused, naming the vm, nothing done" : "done all the same", sent, err.msg);
	if (r < 0)
		is_str(after, before, "... its definition and files as they were");
	want_held = vm ? held_by_def(vm) : util_xstrdup("?");
	if (r == 0 && strcmp(held_now, want_held) && stale_nodes_only(vm)) {
		/* a node or netdev QEMU would not delete once its device was
		 * gone stays until QEMU stops (the next attach of its name
		 * clears it) */
		diag("... a stale node or netdev stays: %s", held_now);
		free(held_now);
		held_now = util_xstrdup(want_held);
	}
	is_str(held_now, want_held, "... qemu holds what its definition says");
	{
		_cleanup_free_ char *th = tags_held(), *tt = vm ? tags_by_tree(vm) : NULL;

		is_str(th, tt ? tt : "?", "... its disks hold the snapshots its tree has");
	}
	is_str(taps, "", "... no tap of a nic it does not have");
	is_int((int)open_intents(), 0, "... no intent left open");
}

/* The operation as it should go, then with each fault at each step of
 * that run, each from the state before it. */
static void test_case(const op_case *c)
{
	_cleanup_free_ char *happy = NULL;
	size_t steps = 1;

	happy_run(c, &happy);
	for (const char *p = happy; *p; p++)
		steps += *p == ' ';
	for (size_t step = 1; step <= steps && *happy; step++)
		for (fault how = FAULT_ERROR; how <= FAULT_SILENCE; how++)
			fault_run(c, step, how);
}

#define HOTPLUG_RECORDS(op)       "intent:" op " ACTIVE/HOTPLUG redefine ACTIVE/RUNNING done:ok"
#define SNAPSHOT_RECORDS(op, rec) "intent:" op " ACTIVE/SNAPSHOT " rec " ACTIVE/RUNNING done:ok"

static const op_case cases[] = {
	{ "vnc", run_vnc, vnc_done, LC_LCM_RUNNING, NULL, "" },
	{ "pause", run_pause, paused, LC_LCM_PAUSED, NULL, "ACTIVE/PAUSED" },
	{ "disk-attach", run_disk_attach, has_disk, LC_LCM_RUNNING, with_no_disk,
	  HOTPLUG_RECORDS("disk-attach") },
	{ "disk-detach", run_disk_detach, no_disk, LC_LCM_RUNNING, with_a_disk,
	  HOTPLUG_RECORDS("disk-detach") },
	{ "snapshot-create", run_snapshot_create, has_snapshot, LC_LCM_RUNNING,
	  with_a_disk_no_snapshot, SNAPSHOT_RECORDS("snapshot-create", "snapshot-add") },
	{ "snapshot-revert", run_snapshot_revert, reverted, LC_LCM_RUNNING, with_a_snapshot,
	  SNAPSHOT_RECORDS("snapshot-revert", "snapshot-current") },
	{ "nic-attach", run_nic_attach, has_nic, LC_LCM_RUNNING, with_no_nic,
	  HOTPLUG_RECORDS("nic-attach") },
	{ "nic-detach", run_nic_detach, no_nic, LC_LCM_RUNNING, with_a_nic,
	  HOTPLUG_RECORDS("nic-detach") },
};

int main(void)
{
	char tmpl[] = "/tmp/qvm-unit-ops.XXXXXX";
	lc_create_opts co = { 0 };
	util_err err = { 0 };
	lc_db *db = NULL;
	lc_vmdef def;

	/* the nics' taps and bridge in a network of the test's own, gone
	 * with it */
	if (!ok(unshare(CLONE_NEWNET) == 0, "a network namespace: %s", strerror(errno)))
		return done_testing();
	root = mkdtemp(tmpl);
	lc_vmdef_init(&def);
	def.name = util_xstrdup("fake");
	def.vnc_listen = util_xstrdup(LC_VNC_LISTEN_DEFAULT); /* for the vnc case */
	if (!ok(root && lc_db_open(root, LC_DB_WRITE, &db, &err) == 0 &&
	                lc_net_create(db, &(lc_net_opts){ .name = "testnet", .bridge = "qvmtest0" },
	                              &err) == 0 &&
	                lc_vm_create(db, &def, &co, &vm_id, &err) == 0,
	        "a network and a vm: %s", err.msg))
		return done_testing();
	lc_db_close(db);
	lc_vmdef_clear(&def);

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++)
		test_case(&cases[i]);
	util_rm_rf(root, NULL);
	return done_testing();
}
