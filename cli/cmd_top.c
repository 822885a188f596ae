/* qvm top: the running VMs, refreshed every -d seconds (virt-top, onevm
 * top): state, vCPU %, memory (the guest's and QEMU's RSS), disk and NIC
 * bytes per second, uptime. Live on a terminal (keys sort, q quits), or -b
 * (also when stdout is not a terminal): -n samples as plain text or, with
 * --json, one array of them. */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* One VM in one sample: its counters and, against the sample before
 * (same QEMU), the rates. */
typedef struct top_row {
	uint64_t id;
	pid_t qemu_pid;
	char name[64];
	char stat[8];
	uint64_t memory, rss;
	int64_t uptime_ms;
	bool ok, block_known, has_nics;
	double cpu_s, alive_s;
	uint64_t rd, wr, rx, tx; /* bytes since QEMU started; rx: the guest got */
	/* per second; negative when not known (no sample before, no QMP) */
	double cpu_pct, rd_s, wr_s, rx_s, tx_s;
	/* the disks' counters as last read (this sample's, or carried from
	 * one before while a qvm command held the vm): a rate spans the gap */
	bool blk_seen;
	int64_t blk_t_ms;
	uint64_t blk_rd, blk_wr;
} top_row;

typedef enum top_key { KEY_CPU, KEY_RSS, KEY_DISK, KEY_NET, KEY_ID, KEY_NAME, KEY_UPTIME } top_key;

static const char *const key_names[] = { "cpu", "rss", "disk", "net", "id", "name", "uptime" };

typedef struct top_state {
	top_row *rows, *prev;
	size_t n, n_prev;
	int64_t t_ms, prev_t_ms; /* CLOCK_MONOTONIC of each sample */
	top_key key;
} top_state;

static void fill_row(top_row *r, const lc_vm *vm, const lc_vm_stats *st, bool ok)
{
	memset(r, 0, sizeof(*r));
	r->id = vm->id;
	r->qemu_pid = vm->qemu_pid;
	snprintf(r->name, sizeof(r->name), "%s", vm->def.name);
	snprintf(r->stat, sizeof(r->stat), "%s", lc_short_name(vm->state, vm->lcm));
	r->memory = vm->def.memory;
	r->uptime_ms = vm->started_ms > 0 ? util_realtime_ms() - vm->started_ms : 0;
	r->ok = ok;
	if (!ok)
		return;
	r->rss = st->proc.rss;
	r->cpu_s = st->proc.cpu_s;
	r->alive_s = st->proc.alive_s;
	r->block_known = st->block_known;
	for (size_t d = 0; d < st->n_disks; d++) {
		r->rd += st->disks[d].rd_bytes;
		r->wr += st->disks[d].wr_bytes;
	}
	/* the tap's rx is what the guest sent */
	r->has_nics = st->n_nics > 0;
	for (size_t k = 0; k < st->n_nics; k++) {
		r->tx += st->nics[k].rx_bytes;
		r->rx += st->nics[k].tx_bytes;
	}
}

static double per_s(uint64_t now, uint64_t before, double secs)
{
	return now >= before && secs > 0 ? (double)(now - before) / secs : -1;
}

/* Rates against the previous sample of the same QEMU; the first sample of
 * one: its CPU over its life, the rest unknown. */
static void rates(top_state *t)
{
	double secs = (double)(t->t_ms - t->prev_t_ms) / 1000.0;

	for (size_t i = 0; i < t->n; i++) {
		top_row *r = &t->rows[i];
		const top_row *p = NULL;

		r->cpu_pct = r->rd_s = r->wr_s = r->rx_s = r->tx_s = -1;
		if (!r->ok)
			continue;
		for (size_t k = 0; k < t->n_prev && !p; k++)
			if (t->prev[k].id == r->id && t->prev[k].qemu_pid == r->qemu_pid &&
			    t->prev[k].ok)
				p = &t->prev[k];
		if (!p) {
			r->cpu_pct = r->alive_s > 0 ? 100.0 * r->cpu_s / r->alive_s : -1;
			continue;
		}
		r->cpu_pct = secs > 0 ? 100.0 * (r->cpu_s - p->cpu_s) / secs : -1;
		if (r->block_known && p->blk_seen) {
			double span = (double)(t->t_ms - p->blk_t_ms) / 1000.0;

			r->rd_s = per_s(r->rd, p->blk_rd, span);
			r->wr_s = per_s(r->wr, p->blk_wr, span);
		} else if (!r->block_known && p->blk_seen) {
			r->blk_seen = true;
			r->blk_t_ms = p->blk_t_ms;
			r->blk_rd = p->blk_rd;
			r->blk_wr = p->blk_wr;
		}
		if (r->has_nics) {
			r->rx_s = per_s(r->rx, p->rx, secs);
			r->tx_s = per_s(r->tx, p->tx, secs);
		}
	}
}

/* One sample of every ACTIVE VM. */
static int sample(const cli_ctx *ctx, top_state *t, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ const lc_vm **vms = NULL;
	_cleanup_free_ lc_vm_stats *st = NULL;
	_cleanup_free_ bool *ok = NULL;
	size_t n = 0;
	int r = cli_open_db(ctx, 0, &db, err);

	if (r < 0)
		return r;
	vms = util_xcalloc(lc_db_count(db) + 1, sizeof(*vms));
	for (size_t i = 0; i < lc_db_count(db); i++)
		if (lc_db_vm_at(db, i)->state == LC_ACTIVE)
			vms[n++] = lc_db_vm_at(db, i);
	st = util_xcalloc(n + 1, sizeof(*st));
	ok = util_xcalloc(n + 1, sizeof(*ok));
	lc_vms_stats_get(ctx->root, vms, n, st, ok);
	free(t->prev);
	t->prev = t->rows;
	t->n_prev = t->n;
	t->prev_t_ms = t->t_ms;
	t->t_ms = util_now_ms();
	t->rows = util_xcalloc(n + 1, sizeof(*t->rows));
	t->n = n;
	for (size_t i = 0; i < n; i++) {
		top_row *row = &t->rows[i];

		fill_row(row, vms[i], &st[i], ok[i]);
		if (row->block_known) {
			row->blk_seen = true;
			row->blk_t_ms = t->t_ms;
			row->blk_rd = row->rd;
			row->blk_wr = row->wr;
		}
	}
	rates(t);
	return 0;
}

static top_key sort_key;

static double key_value(const top_row *r)
{
	switch (sort_key) {
	case KEY_CPU:
		return r->cpu_pct;
	case KEY_RSS:
		return (double)r->rss;
	case KEY_DISK:
		return (r->rd_s > 0 ? r->rd_s : 0) + (r->wr_s > 0 ? r->wr_s : 0);
	case KEY_NET:
		return (r->rx_s > 0 ? r->rx_s : 0) + (r->tx_s > 0 ? r->tx_s : 0);
	case KEY_UPTIME:
		return (double)r->uptime_ms;
	default:
		return 0;
	}
}

/* The biggest first; id and name ascending. */
static int compare_rows(const void *a, const void *b)
{
	const top_row *x = a, *y = b;
	double vx, vy;

	if (sort_key == KEY_NAME)
		return strcmp(x->name, y->name);
	vx = key_value(x);
	vy = key_value(y);
	if (sort_key == KEY_ID || vx == vy)
		return x->id < y->id ? -1 : x->id > y->id;
	return vx < vy ? 1 : -1;
}

/* "12.3M" per second, or "-" */
static const char *rate(double v, char *buf, size_t len)
{
	if (v < 0)
		return "-";
	return util_format_size((uint64_t)v, buf, len);
}

static void print_rows(top_state *t, bool live)
{
	char tm[32], b[6][16], up[16], cpu[16];
	time_t now = time(NULL);
	struct tm lt;

	sort_key = t->key;
	qsort(t->rows, t->n, sizeof(*t->rows), compare_rows);
	localtime_r(&now, &lt);
	strftime(tm, sizeof(tm), "%H:%M:%S", &lt);
	printf("qvm top - %s, %zu vm%s active, sorted by %s%s\n", tm, t->n, t->n == 1 ? "" : "s",
	       key_names[t->key],
	       live ? " (c cpu, r rss, d disk, n net, i id, a name, u uptime; q quits)" : "");
	printf("%5s %-20s %-4s %6s %7s %7s %8s %8s %8s %8s %8s\n", "ID", "NAME", "STAT", "CPU%",
	       "MEM", "RSS", "DISK-R/s", "DISK-W/s", "NET-RX/s", "NET-TX/s", "UPTIME");
	for (size_t i = 0; i < t->n; i++) {
		const top_row *r = &t->rows[i];

		snprintf(cpu, sizeof(cpu), r->cpu_pct >= 0 ? "%.1f" : "-", r->cpu_pct);
		printf("%5" PRIu64 " %-20s %-4s %6s %7s %7s %8s %8s %8s %8s %8s\n", r->id, r->name,
		       r->stat, cpu, util_format_size(r->memory, b[0], sizeof(b[0])),
		       r->ok ? util_format_size(r->rss, b[1], sizeof(b[1])) : "-",
		       rate(r->rd_s, b[2], sizeof(b[2])), rate(r->wr_s, b[3], sizeof(b[3])),
		       rate(r->rx_s, b[4], sizeof(b[4])), rate(r->tx_s, b[5], sizeof(b[5])),
		       cli_format_duration(r->uptime_ms, up, sizeof(up)));
	}
}

static json_t *num_or_null(double v)
{
	return v >= 0 ? json_real(v) : json_null();
}

static json_t *sample_json(const top_state *t)
{
	json_t *vms = json_array();

	for (size_t i = 0; i < t->n; i++) {
		const top_row *r = &t->rows[i];
		json_t *j = json_pack("{s:I, s:s, s:s, s:I, s:I}", "id", (json_int_t)r->id, "name",
		                      r->name, "short", r->stat, "memory", (json_int_t)r->memory,
		                      "uptime_ms", (json_int_t)r->uptime_ms);

		json_object_set_new(j, "rss",
		                    r->ok ? json_integer((json_int_t)r->rss) : json_null());
		json_object_set_new(j, "cpu_percent", num_or_null(r->cpu_pct));
		json_object_set_new(j, "cpu_seconds", r->ok ? json_real(r->cpu_s) : json_null());
		json_object_set_new(j, "disk_read_bytes",
		                    r->block_known ? json_integer((json_int_t)r->rd) : json_null());
		json_object_set_new(j, "disk_write_bytes",
		                    r->block_known ? json_integer((json_int_t)r->wr) : json_null());
		json_object_set_new(j, "net_rx_bytes",
		                    r->has_nics ? json_integer((json_int_t)r->rx) : json_null());
		json_object_set_new(j, "net_tx_bytes",
		                    r->has_nics ? json_integer((json_int_t)r->tx) : json_null());
		json_object_set_new(j, "disk_read_per_s", num_or_null(r->rd_s));
		json_object_set_new(j, "disk_write_per_s", num_or_null(r->wr_s));
		json_object_set_new(j, "net_rx_per_s", num_or_null(r->rx_s));
		json_object_set_new(j, "net_tx_per_s", num_or_null(r->tx_s));
		json_array_append_new(vms, j);
	}
	return json_pack("{s:I, s:o}", "time_ms", (json_int_t)util_realtime_ms(), "vms", vms);
}

static struct termios saved_tty;
static bool tty_raw;

static void restore_tty(void)
{
	if (tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	tty_raw = false;
}

/* Ctrl-C or a kill in the live view: the terminal back as it was (not
 * left without echo), then the signal's own end. tcsetattr is
 * async-signal-safe. */
static void on_fatal_signal(int sig)
{
	restore_tty();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Wait delay_ms for a key (live mode): 'q' (or the input's end) quits,
 * the others choose the sort. Returns false to quit. */
static bool wait_key(top_state *t, int delay_ms)
{
	static const char keys[] = "crdniau";
	int64_t until = util_now_ms() + delay_ms;

	for (;;) {
		struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
		int64_t left = until - util_now_ms();
		const char *k;
		char c;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return true;
		if (read(STDIN_FILENO, &c, 1) != 1 || c == 'q' || c == 'Q')
			return false;
		if ((k = strchr(keys, c)) && c) {
			t->key = (top_key)(k - keys == 5   ? KEY_NAME
			                   : k - keys == 6 ? KEY_UPTIME
			                                   : k - keys);
			return true;
		}
	}
}

typedef struct top_opts {
	bool batch;
	long count; /* 0: until q */
	int delay_ms;
	top_key key;
} top_opts;

static int parse_top(cli_ctx *ctx, int argc, char **argv, top_opts *o, util_err *err)
{
	static const struct option opts[] = { { "batch", no_argument, NULL, 'b' },
		                              { "iterations", required_argument, NULL, 'n' },
		                              { "delay", required_argument, NULL, 'd' },
		                              { "sort", required_argument, NULL, 's' },
		                              { NULL, 0, NULL, 0 } };
	const char *arg;
	cli_parser p;
	char **ops, *end;
	uint64_t n;
	double d;
	int nops, r;

	cli_parser_init(&p, ctx, argc, argv, opts, "bn:d:s:");
	while ((r = cli_parser_next(&p, &arg, err)) > 0) {
		if (r == 'b') {
			o->batch = true;
		} else if (r == 'n') {
			if (util_parse_uint(arg, 1, 1000000, &n, err) < 0)
				r = cli_usage(err, "-n: %s", err->msg);
			o->count = (long)n;
		} else if (r == 'd') {
			d = strtod(arg, &end);
			if (end == arg || *end || !(d >= 0.1 && d <= 3600))
				r = cli_usage(err,
				              "-d '%s' is not a delay from 0.1 to 3600 seconds",
				              arg);
			o->delay_ms = (int)(d * 1000);
		} else {
			r = cli_usage(
			        err,
			        "--sort '%s' is not one of cpu, rss, disk, net, id, name, uptime",
			        arg);
			for (size_t k = 0; k < UTIL_ARRAY_SIZE(key_names); k++)
				if (util_streq(arg, key_names[k]))
					o->key = (top_key)k, r = 's';
		}
		if (r < 0)
			break;
	}
	if (r == 0)
		r = cli_parser_operands(&p, 0, 0, &ops, &nops, err);
	cli_parser_done(&p);
	return r;
}

int cli_cmd_top(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	top_opts o = { .delay_ms = 1000, .key = KEY_CPU };
	top_state t = { 0 };
	json_t *all = NULL;
	bool live;
	int r = parse_top(ctx, argc, argv, &o, err);

	if (r < 0)
		return r;
	live = !o.batch && !ctx->json && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
	/* a JSON array must end: one sample unless -n says more */
	if (ctx->json && !o.count)
		o.count = 1;
	if (live && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
		struct termios raw = saved_tty;

		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		tty_raw = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
		atexit(restore_tty);
		signal(SIGINT, on_fatal_signal);
		signal(SIGTERM, on_fatal_signal);
		signal(SIGHUP, on_fatal_signal);
	}
	all = ctx->json ? json_array() : NULL;
	t.key = o.key;
	for (long i = 0; r == 0 && (!o.count || i < o.count); i++) {
		if (i > 0 && !live)
			usleep((useconds_t)o.delay_ms * 1000);
		r = sample(ctx, &t, err);
		if (r < 0)
			break;
		if (all)
			json_array_append_new(all, sample_json(&t));
		else if (live)
			fputs("\033[H\033[2J", stdout);
		if (!all)
			print_rows(&t, live);
		if (!all && !live && i + 1 < o.count)
			putchar('\n');
		fflush(stdout);
		if (live && !wait_key(&t, o.delay_ms))
			break;
	}
	restore_tty();
	free(t.rows);
	free(t.prev);
	if (r < 0) {
		json_decref(all);
		return r;
	}
	*ret_json = all;
	return 0;
}
