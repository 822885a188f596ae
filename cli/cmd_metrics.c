/* qvm metrics: the host and its VMs in Prometheus's text exposition format
 * (version 0.0.4), printed once or served at /metrics over HTTP. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* What one scrape knows of a VM that runs. */
typedef struct vm_sample {
	const lc_vm *vm;
	bool ok; /* its QEMU answered for /proc (and maybe QMP) */
	lc_vm_stats st;
} vm_sample;

typedef struct scrape {
	lc_db *db;
	vm_sample *s; /* one per VM that is not DONE */
	size_t n;
} scrape;

/* A label value: '\', '"' and newlines escaped as the format asks. */
static void put_label(FILE *f, const char *v)
{
	for (; *v; v++)
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The start of a VM's sample line: NAME{name="..",id="..". */
static void vm_sample_start(FILE *f, const char *metric, const lc_vm *vm)
{
	fprintf(f, "%s{name=\"", metric);
	put_label(f, vm->def.name);
	fprintf(f, "\",id=\"%" PRIu64 "\"", vm->id);
}

static void host_metrics(FILE *f, const scrape *sc)
{
	size_t by_state[LC_STATE_COUNT] = { 0 };
	uint64_t committed = 0;

	for (size_t i = 0; i < lc_db_count(sc->db); i++) {
		const lc_vm *vm = lc_db_vm_at(sc->db, i);

		by_state[vm->state]++;
		if (vm->state != LC_DONE && lc_vm_holds_host(vm))
			committed += vm->def.memory;
	}
	family(f, "qvm_host_cpus", "gauge", "CPUs online on the host.");
	fprintf(f, "qvm_host_cpus %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	family(f, "qvm_host_memory_bytes", "gauge", "Memory of the host.");
	fprintf(f, "qvm_host_memory_bytes %" PRIu64 "\n", cli_meminfo_kib("MemTotal:") << 10);
	family(f, "qvm_host_memory_available_bytes", "gauge",
	       "Memory available for new processes (MemAvailable).");
	fprintf(f, "qvm_host_memory_available_bytes %" PRIu64 "\n",
	        cli_meminfo_kib("MemAvailable:") << 10);
	family(f, "qvm_host_memory_committed_bytes", "gauge",
	       "Memory of the VMs that hold host resources (active, suspended, powered off).");
	fprintf(f, "qvm_host_memory_committed_bytes %" PRIu64 "\n", committed);
	family(f, "qvm_host_vms", "gauge", "VMs by state (DONE: kept for history).");
	for (int s = 0; s < LC_STATE_COUNT; s++)
		fprintf(f, "qvm_host_vms{state=\"%s\"} %zu\n", lc_state_name((lc_state)s),
		        by_state[s]);
}

/* Gauges every defined VM has: its state (one 0/1 sample per state), its
 * definition's memory and vCPUs, its restarts. */
static void vm_definition_metrics(FILE *f, const scrape *sc)
{
	family(f, "qvm_vm_state", "gauge", "1 for the state the VM is in, 0 for the others.");
	for (size_t i = 0; i < sc->n; i++)
		for (int s = 0; s < LC_STATE_COUNT; s++) {
			if (s == LC_DONE)
				continue;
			vm_sample_start(f, "qvm_vm_state", sc->s[i].vm);
			fprintf(f, ",state=\"%s\"} %d\n", lc_state_name((lc_state)s),
			        sc->s[i].vm->state == (lc_state)s);
		}
	family(f, "qvm_vm_memory_bytes", "gauge", "Memory of the VM's definition.");
	for (size_t i = 0; i < sc->n; i++) {
		vm_sample_start(f, "qvm_vm_memory_bytes", sc->s[i].vm);
		fprintf(f, "} %" PRIu64 "\n", sc->s[i].vm->def.memory);
	}
	family(f, "qvm_vm_vcpus", "gauge", "Virtual CPUs of the VM's definition.");
	for (size_t i = 0; i < sc->n; i++) {
		vm_sample_start(f, "qvm_vm_vcpus", sc->s[i].vm);
		fprintf(f, "} %u\n", sc->s[i].vm->def.vcpus);
	}
	family(f, "qvm_vm_restarts_total", "counter",
	       "Restarts of the VM by its restart policy, over its life.");
	for (size_t i = 0; i < sc->n; i++) {
		vm_sample_start(f, "qvm_vm_restarts_total", sc->s[i].vm);
		fprintf(f, "} %" PRIu64 "\n", sc->s[i].vm->restarts);
	}
}

/* Samples of the running VMs: CPU, memory, uptime. */
static void vm_process_metrics(FILE *f, const scrape *sc)
{
	int64_t now = util_realtime_ms();

	family(f, "qvm_vm_cpu_seconds_total", "counter",
	       "CPU time used by the VM's QEMU (user and system) since it started.");
	for (size_t i = 0; i < sc->n; i++)
		if (sc->s[i].ok) {
			vm_sample_start(f, "qvm_vm_cpu_seconds_total", sc->s[i].vm);
			fprintf(f, "} %.2f\n", sc->s[i].st.proc.cpu_s);
		}
	family(f, "qvm_vm_rss_bytes", "gauge", "Resident memory of the VM's QEMU.");
	for (size_t i = 0; i < sc->n; i++)
		if (sc->s[i].ok) {
			vm_sample_start(f, "qvm_vm_rss_bytes", sc->s[i].vm);
			fprintf(f, "} %" PRIu64 "\n", sc->s[i].st.proc.rss);
		}
	family(f, "qvm_vm_uptime_seconds", "gauge", "Time since the VM's guest last booted.");
	for (size_t i = 0; i < sc->n; i++) {
		const lc_vm *vm = sc->s[i].vm;

		if (!sc->s[i].ok || vm->started_ms <= 0)
			continue;
		vm_sample_start(f, "qvm_vm_uptime_seconds", vm);
		fprintf(f, "} %.3f\n", (double)(now - vm->started_ms) / 1000.0);
	}
}

enum { BLK_RD_BYTES, BLK_WR_BYTES, BLK_RD_OPS, BLK_WR_OPS };

static uint64_t disk_value(const lc_disk_stats *d, int which)
{
	return which == BLK_RD_BYTES   ? d->rd_bytes
	       : which == BLK_WR_BYTES ? d->wr_bytes
	       : which == BLK_RD_OPS   ? d->rd_ops
	                               : d->wr_ops;
}

static void vm_block_metrics(FILE *f, const scrape *sc)
{
	static const char *const names[][2] = {
		{ "qvm_vm_block_read_bytes_total", "Bytes read from the disk by the guest." },
		{ "qvm_vm_block_write_bytes_total", "Bytes written to the disk by the guest." },
		{ "qvm_vm_block_read_ops_total", "Read operations on the disk." },
		{ "qvm_vm_block_write_ops_total", "Write operations on the disk." },
	};

	for (int k = 0; k < 4; k++) {
		family(f, names[k][0], "counter", names[k][1]);
		for (size_t i = 0; i < sc->n; i++)
			for (size_t d = 0; sc->s[i].ok && d < sc->s[i].st.n_disks; d++) {
				vm_sample_start(f, names[k][0], sc->s[i].vm);
				fputs(",disk=\"", f);
				put_label(f, sc->s[i].st.disks[d].device);
				fprintf(f, "\"} %" PRIu64 "\n",
				        disk_value(&sc->s[i].st.disks[d], k));
			}
	}
}

static uint64_t nic_value(const lc_nic_stats *n, int which)
{
	return which == 0   ? n->rx_bytes
	       : which == 1 ? n->tx_bytes
	       : which == 2 ? n->rx_packets
	                    : n->tx_packets;
}

static void vm_nic_metrics(FILE *f, const scrape *sc)
{
	/* the tap's rx is what the guest sent: named from the guest's side */
	static const char *const names[][2] = {
		{ "qvm_vm_nic_tx_bytes_total", "Bytes the guest sent on the NIC (its tap's rx)." },
		{ "qvm_vm_nic_rx_bytes_total",
		  "Bytes the guest was sent on the NIC (its tap's tx)." },
		{ "qvm_vm_nic_tx_packets_total", "Packets the guest sent on the NIC." },
		{ "qvm_vm_nic_rx_packets_total", "Packets the guest was sent on the NIC." },
	};

	for (int k = 0; k < 4; k++) {
		family(f, names[k][0], "counter", names[k][1]);
		for (size_t i = 0; i < sc->n; i++)
			for (size_t d = 0; sc->s[i].ok && d < sc->s[i].st.n_nics; d++) {
				const lc_nic_stats *n = &sc->s[i].st.nics[d];

				vm_sample_start(f, names[k][0], sc->s[i].vm);
				fprintf(f, ",nic=\"%u\",tap=\"%s\"} %" PRIu64 "\n", n->id, n->tap,
				        nic_value(n, k));
			}
	}
}

/* The running VMs' counters, asked of their QEMUs at once. */
static void sample_all(const cli_ctx *ctx, scrape *sc)
{
	_cleanup_free_ const lc_vm **active = util_xcalloc(sc->n + 1, sizeof(*active));
	_cleanup_free_ size_t *at = util_xcalloc(sc->n + 1, sizeof(*at));
	_cleanup_free_ lc_vm_stats *st = NULL;
	_cleanup_free_ bool *ok = NULL;
	size_t m = 0;

	for (size_t i = 0; i < sc->n; i++)
		if (sc->s[i].vm->state == LC_ACTIVE) {
			at[m] = i;
			active[m++] = sc->s[i].vm;
		}
	st = util_xcalloc(m + 1, sizeof(*st));
	ok = util_xcalloc(m + 1, sizeof(*ok));
	lc_vms_stats_get(ctx->root, active, m, st, ok);
	for (size_t k = 0; k < m; k++) {
		sc->s[at[k]].ok = ok[k];
		sc->s[at[k]].st = st[k];
	}
}

/* One scrape in Prometheus's text format (version 0.0.4): the journal read
 * once, each running VM asked once. The text is a new string in *ret. */
static int metrics_text(const cli_ctx *ctx, char **ret, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ vm_sample *samples = NULL;
	char *text = NULL;
	size_t len = 0;
	scrape sc = { 0 };
	FILE *f;
	int r = cli_open_db(ctx, 0, &db, err);

	if (r < 0)
		return r;
	samples = util_xcalloc(lc_db_count(db) + 1, sizeof(*samples));
	sc.db = db;
	sc.s = samples;
	for (size_t i = 0; i < lc_db_count(db); i++) {
		const lc_vm *vm = lc_db_vm_at(db, i);

		if (vm->state != LC_DONE)
			samples[sc.n++].vm = vm;
	}
	sample_all(ctx, &sc);
	f = open_memstream(&text, &len);
	if (!f)
		return util_err_errno(err, -errno, "cannot make the metrics");
	host_metrics(f, &sc);
	vm_definition_metrics(f, &sc);
	vm_process_metrics(f, &sc);
	vm_block_metrics(f, &sc);
	vm_nic_metrics(f, &sc);
	if (fclose(f) != 0) {
		free(text);
		return util_err_errno(err, -ENOMEM, "cannot make the metrics");
	}
	*ret = text;
	return 0;
}

int cli_cmd_metrics(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = { { "listen", required_argument, NULL, 'l' },
		                              { NULL, 0, NULL, 0 } };
	_cleanup_free_ char *text = NULL;
	const char *listen = NULL, *arg;
	cli_parser p;
	char **ops;
	int nops, r;

	(void)ret_json;
	cli_parser_init(&p, ctx, argc, argv, opts, "");
	while ((r = cli_parser_next(&p, &arg, err)) > 0)
		listen = arg;
	if (r == 0)
		r = cli_parser_operands(&p, 0, 0, &ops, &nops, err);
	cli_parser_done(&p);
	if (r == 0 && ctx->json)
		r = cli_usage(err, "metrics prints Prometheus's text format, not JSON");
	if (r < 0)
		return r;
	if (listen)
		return cli_metrics_serve(ctx, listen, metrics_text, err);
	r = metrics_text(ctx, &text, err);
	if (r < 0)
		return r;
	fputs(text, stdout);
	return 0;
}
