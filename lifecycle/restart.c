/* The restart policy's cap and backoff, shared by the supervisor and the
 * host's scheduler, and the "restart" records that count the restarts of
 * a VM whoever made them (replayed onto lc_vm.sched's "restarts"). */
#include <stdlib.h>

#include "restart.h"
#include "sched.h"

/* At most RESTARTS_PER_WINDOW restarts within RESTART_WINDOW_MS, each
 * after a backoff of the base doubled per recent restart up to 4x: a QEMU
 * that dies at once is given up after about half a minute, one that runs
 * a while between crashes gets its short backoff back. */
#define RESTART_WINDOW_MS         60000
#define RESTARTS_PER_WINDOW       10
#define RESTART_BACKOFF_MS        1000
#define RESTART_BACKOFF_DOUBLINGS 2
#define RESTARTS_KEPT             16 /* more than the cap: the window's all */

static int64_t env_ms(const char *name, uint64_t min, int64_t dflt)
{
	const char *v = getenv(name);
	uint64_t n;

	return v && *v && util_parse_uint(v, min, INT32_MAX, &n, NULL) == 0 ? (int64_t)n : dflt;
}

static int64_t window_ms(void)
{
	return env_ms("QVM_RESTART_WINDOW_MS", 1, RESTART_WINDOW_MS);
}

size_t lc_restart_recent(const lc_vm *vm, int64_t now_ms)
{
	int64_t window = window_ms();
	size_t n = 0, i;
	json_t *t;

	json_array_foreach (json_object_get(vm->sched, "restarts"), i, t)
		n += now_ms - json_integer_value(t) < window;
	return n;
}

int64_t lc_restart_backoff_ms(size_t recent)
{
	int64_t base = env_ms("QVM_RESTART_BACKOFF_MS", 0, RESTART_BACKOFF_MS);

	return base << (recent < RESTART_BACKOFF_DOUBLINGS ? recent : RESTART_BACKOFF_DOUBLINGS);
}

bool lc_restart_allowed(size_t recent, lc_restart policy, char *why_not, size_t len)
{
	why_not[0] = '\0';
	if (recent < RESTARTS_PER_WINDOW)
		return true;
	snprintf(why_not, len, "restarted %d times within %d s: not again (restart policy %s)",
	         RESTARTS_PER_WINDOW, (int)(window_ms() / 1000), lc_restart_name(policy));
	return false;
}

int lc_restart_note(const char *root, uint64_t id, const char *by, size_t recent, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *reason =
	        util_xasprintf("restart %zu of at most %d within %d s, by %s", recent + 1,
	                       RESTARTS_PER_WINDOW, (int)(window_ms() / 1000), by);
	int r = lc_db_open(root, LC_DB_WRITE, &db, err);

	if (r < 0)
		return r;
	return lc_db_append(db,
	                    json_pack("{s:s, s:I, s:s, s:s}", "type", "restart", "id",
	                              (json_int_t)id, "by", by, "reason", reason),
	                    NULL, err);
}

static int restart_apply(lc_vm *vm, uint64_t seq, json_t *rec, util_err *err)
{
	json_t *r = json_object_get(lc_sched_of(vm), "restarts");

	(void)seq;
	(void)err;
	json_array_append(r, json_object_get(rec, "time"));
	while (json_array_size(r) > RESTARTS_KEPT)
		json_array_remove(r, 0);
	return 0;
}

__attribute__((constructor)) static void restart_register(void)
{
	lc_store_on_record("restart", restart_apply);
}
