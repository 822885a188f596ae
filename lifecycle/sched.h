/* Private to lifecycle/: what the scheduler (scheduler.c) and host boot
 * and shutdown (host.c) share. */
#ifndef QVM_LC_SCHED_H
#define QVM_LC_SCHED_H

#include "lifecycle.h"

/* Take the pass lock (ROOT/run/scheduler.lock): one scheduler pass, host
 * boot or host shutdown at a time. */
int lc_pass_lock(const char *root, int timeout_ms, int *ret_fd, util_err *err);

/* One step of a pass: reads and writes the journal, adds what it did to
 * report. */
typedef int (*lc_pass_step)(const char *root, const lc_pass_opts *o, json_t *report, util_err *err);

/* Under the pass lock, the steps in order, each while the last succeeded;
 * report (stolen) goes to *ret_report on success. A failure is prefixed
 * with what ran ("scheduler pass", "host boot"). */
int lc_pass_run(const char *root, const char *what, const lc_pass_step *steps, size_t n,
                const lc_pass_opts *o, json_t *report, json_t **ret_report, util_err *err);

/* The kernel's id of this boot (QVM_BOOT_ID_FILE names another file for
 * tests): a new string. */
int lc_boot_id(char **ret, util_err *err);

/* Append to the history of VM id what the host's scheduler did to it: a
 * "sched-act" record {"what", "result", "error", "reason"}, and add it to
 * report's "actions". A failure to record is returned. */
int lc_sched_note(const char *root, uint64_t id, const char *name, const char *what, int result,
                  const char *error, json_t *report, util_err *err);

/* Start (or resume, from SUSPENDED or STOPPED) VM id for what
 * ("autostart", "deploy", "restart", "host boot"), noted as lc_sched_note
 * does. Returns what recording returned; the start's own failure is in
 * the record and the report. */
int lc_sched_start(const char *root, const lc_vm *vm, const char *what, const lc_pass_opts *o,
                   json_t *report, util_err *err);

/* The once-per-boot autostart: when the boot id differs from the one the
 * host recorded, each autostart VM that is not ACTIVE, HOLD, UNKNOWN or
 * DONE is started (resumed from a checkpoint), and the boot id recorded. */
int lc_sched_autostart(const char *root, const lc_pass_opts *o, json_t *report, util_err *err);

/* vm's sched object, made empty when it has none ({"next", "entries",
 * "restarts"}, owned by vm): schedule.c replays the schedule onto it,
 * restart.c the restarts. */
json_t *lc_sched_of(lc_vm *vm);

/* Append a "host" record setting the keys of set (stolen; a null value
 * removes one). */
int lc_host_record(const char *root, json_t *set, util_err *err);

#endif
