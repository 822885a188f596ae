/* Private to lifecycle/: the restart policy's cap and backoff, which the
 * supervisor (supervisor.c) and the host's scheduler (scheduler.c) share.
 * The count is kept in the journal ("restart" records), so that whichever
 * of them restarts a VM, the other sees it: a VM whose supervisor died
 * after some restarts gets only what is left of the cap. */
#ifndef QVM_LC_RESTART_H
#define QVM_LC_RESTART_H

#include "lifecycle.h"

/* The restarts of vm, by either, within the window (60 s, or
 * QVM_RESTART_WINDOW_MS) before now_ms (wall clock, as the journal's). */
size_t lc_restart_recent(const lc_vm *vm, int64_t now_ms);

/* The wait before the next restart after recent ones: 1 s (or
 * QVM_RESTART_BACKOFF_MS, which may be 0), doubled per recent restart up
 * to 4x. */
int64_t lc_restart_backoff_ms(size_t recent);

/* Whether the cap allows one more restart after recent ones; when it
 * does not, why_not (len bytes) says so, the same words whoever asks. */
bool lc_restart_allowed(size_t recent, lc_restart policy, char *why_not, size_t len);

/* Count a restart of VM id that by ("the supervisor", "the scheduler")
 * is about to make: a "restart" record in its history. */
int lc_restart_note(const char *root, uint64_t id, const char *by, size_t recent, util_err *err);

#endif
