/* The counters of a running VM for metrics and top: CPU and memory from
 * /proc, disk counters over QMP (query-blockstats), NIC counters from its
 * taps over netlink. Reads only: nothing is recorded, nothing waited for. */
#include <pthread.h>
#include <string.h>

#include "net/net.h"
#include "run.h"

/* A scrape must not hang on one QEMU that does not answer: a short bound
 * for the connection and the query, each. */
#define STATS_QMP_TIMEOUT_MS 1000

/* The name a blockstats entry goes by: its root node ("disk0", as the
 * command line names it), else the device's id from its qdev path. */
static void block_name(json_t *e, char *buf, size_t len)
{
	const char *node = json_string_value(json_object_get(e, "node-name"));
	const char *qdev = json_string_value(json_object_get(e, "qdev"));
	const char *dev = json_string_value(json_object_get(e, "device"));
	const char *p;

	if (node && *node) {
		snprintf(buf, len, "%s", node);
	} else if (qdev && (p = strstr(qdev, "/peripheral/"))) {
		p += strlen("/peripheral/");
		snprintf(buf, len, "%.*s", (int)strcspn(p, "/"), p);
	} else {
		snprintf(buf, len, "%s", dev && *dev ? dev : "?");
	}
}

static uint64_t u64_of(json_t *obj, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(obj, key));

	return v > 0 ? (uint64_t)v : 0;
}

/* query-blockstats on the VM's command socket, if no qvm command holds the
 * VM now (its lock, taken without waiting, keeps one from starting while
 * the socket is ours). */
static int block_stats(const char *root, const lc_vm *vm, lc_vm_stats *ret, util_err *err)
{
	_cleanup_free_ char *path = lc_vm_lock_path(root, vm->id);
	_cleanup_close_ int lock = -1;
	_cleanup_qmp_ qmp_client *q = NULL;
	_cleanup_json_ json_t *list = NULL;
	lc_paths p;
	json_t *e;
	size_t i;
	int r;

	if (util_lock_path(path, true, 0, &lock, NULL) < 0)
		return 0; /* busy: the disks' counters are left out this time */
	lc_paths_init(&p, root, vm->id);
	r = qmp_connect_path(p.qmp_command, STATS_QMP_TIMEOUT_MS, &q, err);
	lc_paths_clear(&p);
	if (r == 0)
		r = qmp_execute(q, "query-blockstats", NULL, STATS_QMP_TIMEOUT_MS, &list, err);
	if (r < 0)
		return util_err_prefix(err, "cannot read the disk counters of '%s'", vm->def.name);
	json_array_foreach (list, i, e) {
		json_t *st = json_object_get(e, "stats");
		lc_disk_stats *d;

		if (ret->n_disks == UTIL_ARRAY_SIZE(ret->disks) || !json_is_object(st))
			continue;
		d = &ret->disks[ret->n_disks++];
		block_name(e, d->device, sizeof(d->device));
		d->rd_bytes = u64_of(st, "rd_bytes");
		d->wr_bytes = u64_of(st, "wr_bytes");
		d->rd_ops = u64_of(st, "rd_operations");
		d->wr_ops = u64_of(st, "wr_operations");
	}
	ret->block_known = true;
	return 0;
}

static void nic_stats(const lc_vm *vm, lc_vm_stats *ret)
{
	for (size_t k = 0; k < vm->def.n_nics && ret->n_nics < LC_NICS_MAX; k++) {
		lc_nic_stats *n = &ret->nics[ret->n_nics];
		net_link_stats ls;

		if (net_tap_name(vm->id, vm->def.nics[k].id, n->tap, sizeof(n->tap), NULL) < 0 ||
		    net_link_stats_get(n->tap, &ls, NULL) < 0)
			continue; /* no tap (yet, or any more): nothing to count */
		n->id = vm->def.nics[k].id;
		n->rx_bytes = ls.rx_bytes;
		n->tx_bytes = ls.tx_bytes;
		n->rx_packets = ls.rx_packets;
		n->tx_packets = ls.tx_packets;
		ret->n_nics++;
	}
}

/* ---- many VMs at once --------------------------------------------------- */

/* QEMUs asked at once: each answers when the host's scheduler lets it, so
 * asking in turn would add their waits up. */
#define STATS_PARALLEL 32

typedef struct stats_job {
	const char *root;
	const lc_vm *vm;
	lc_vm_stats *out;
	bool ok;
} stats_job;

static void *stats_thread(void *arg)
{
	stats_job *j = arg;
	util_err ignored = { 0 };

	j->ok = lc_qemu_stat(j->vm, &j->out->proc, NULL) == 0;
	if (j->ok)
		block_stats(j->root, j->vm, j->out, &ignored);
	return NULL;
}

void lc_vms_stats_get(const char *root, const lc_vm *const *vms, size_t n, lc_vm_stats *ret,
                      bool *ret_ok)
{
	stats_job jobs[STATS_PARALLEL];
	pthread_t tids[STATS_PARALLEL];
	bool started[STATS_PARALLEL];

	for (size_t base = 0; base < n; base += STATS_PARALLEL) {
		size_t m = n - base < STATS_PARALLEL ? n - base : STATS_PARALLEL;

		for (size_t k = 0; k < m; k++) {
			memset(&ret[base + k], 0, sizeof(ret[base + k]));
			jobs[k] = (stats_job){ root, vms[base + k], &ret[base + k], false };
			/* no thread (out of them): ask in this one */
			started[k] = vms[base + k]->state == LC_ACTIVE &&
			             pthread_create(&tids[k], NULL, stats_thread, &jobs[k]) == 0;
			if (!started[k] && vms[base + k]->state == LC_ACTIVE)
				stats_thread(&jobs[k]);
		}
		for (size_t k = 0; k < m; k++) {
			if (started[k])
				pthread_join(tids[k], NULL);
			ret_ok[base + k] = jobs[k].ok;
			/* netlink here, in one thread: libnl is loaded on first use */
			if (jobs[k].ok)
				nic_stats(vms[base + k], &ret[base + k]);
		}
	}
}
