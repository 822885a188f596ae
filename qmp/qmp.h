/* qmp: a synchronous client for QEMU's machine protocol — greeting and
 * capabilities, commands matched to replies by id, events to a callback or
 * a queue, fd passing, and every wait bounded by poll() with a deadline. */
#ifndef QVM_QMP_H
#define QVM_QMP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util/util.h"

/* Largest message accepted from QEMU (one JSON text, without its line end).
 * A larger one fails with -EMSGSIZE and leaves the connection unusable. */
#define QMP_MAX_MESSAGE (10u * 1024 * 1024)

/* Events kept for qmp_next_event() when no callback is set; beyond this
 * the oldest are dropped (counted by qmp_events_dropped()). */
#define QMP_EVENT_QUEUE_MAX 1024

/* Default timeouts by command class, see qmp_default_timeout_ms(). A
 * unit test (tests/unit/test_qmp_timeout.c) compiles the client with
 * shorter ones to see each applied; nothing else may define them. */
#ifndef QMP_TIMEOUT_CONNECT_MS
#define QMP_TIMEOUT_CONNECT_MS 5000 /* connect + greeting + capabilities */
#endif
#ifndef QMP_TIMEOUT_QUICK_MS
#define QMP_TIMEOUT_QUICK_MS 5000 /* queries, run state, getfd, quit */
#endif
#ifndef QMP_TIMEOUT_DEVICE_MS
#define QMP_TIMEOUT_DEVICE_MS 60000 /* hotplug, blockdev, unknown commands */
#endif
#ifndef QMP_TIMEOUT_JOB_MS
#define QMP_TIMEOUT_JOB_MS 600000 /* snapshots, migration, block jobs */
#endif

/* A connection to one QEMU monitor. Not thread-safe: use a client from one
 * thread at a time. Commands are synchronous, one at a time. */
typedef struct qmp_client qmp_client;

/* Called for each event, in arrival order, when set with
 * qmp_set_event_cb(). `event` is borrowed for the duration of the call (the
 * whole message: {"event": NAME, "data": {...}, "timestamp": {...}});
 * json_incref() it to keep it. The callback runs inside qmp_execute(),
 * qmp_wait_event(), qmp_dispatch() or qmp_set_event_cb(); it may call
 * qmp_next_event() and qmp_set_event_cb() but not qmp_execute*(),
 * qmp_wait_event() or qmp_dispatch() (those fail with -EBUSY) and never
 * qmp_close() on the same client. */
typedef void (*qmp_event_fn)(qmp_client *client, json_t *event, void *userdata);

/* ---- connecting ----------------------------------------------------------
 * Both functions connect, read the greeting {"QMP": {...}} and negotiate
 * capabilities (no optional capability is enabled), all within timeout_ms
 * (0: QMP_TIMEOUT_CONNECT_MS; negative: -EINVAL). Events that arrive before
 * the capabilities reply are queued and handed out later. On success
 * *ret_client is a new client to release with qmp_close().
 *
 * Errors: -ETIMEDOUT (no room in the listener's backlog, no greeting — for
 * instance because another client holds the monitor — or no capabilities
 * reply in time), -EPROTO (the first message is not a greeting, or not
 * JSON), -EPIPE (QEMU closed the socket), -EREMOTEIO
 * (qmp_capabilities refused; err->qmp_class set), or the errno of
 * socket()/connect() (-ENOENT, -ECONNREFUSED, -ENAMETOOLONG ...). */

/* Connect to the unix socket at path (non-blocking connect bounded by the
 * timeout). */
int qmp_connect_path(const char *path, int timeout_ms, qmp_client **ret_client, util_err *err);

/* Adopt fd, an already connected stream socket. Ownership of fd is taken
 * in every case: on failure it has been closed. The fd is made
 * close-on-exec and non-blocking. -EBADF for a negative fd, -ENOTSOCK if
 * it is not a stream socket. */
int qmp_connect_fd(int fd, int timeout_ms, qmp_client **ret_client, util_err *err);

/* Close the connection and free the client, its queued events and its
 * greeting. Accepts NULL. */
void qmp_close(qmp_client *client);

static inline void qmp_closep(qmp_client **client)
{
	qmp_close(*client);
}
#define _cleanup_qmp_ _cleanup_(qmp_closep)

/* The value of the greeting's "QMP" member as QEMU sent it:
 * {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ...},
 *  "capabilities": [...]}. Borrowed: valid until qmp_close(). */
json_t *qmp_greeting(const qmp_client *client);

/* ---- commands ------------------------------------------------------------ */

/* Run one command and wait for its reply.
 *   cmd        the command name ("query-status", "device_add" ...)
 *   args       its "arguments" object, or NULL; borrowed (not stolen)
 *   timeout_ms how long to wait for the reply; 0 means
 *              qmp_default_timeout_ms(cmd); negative is -EINVAL
 *   ret_return on success, a new reference to the reply's "return" value
 *              (often an empty object); may be NULL when not wanted
 * Returns 0 on success, or:
 *   -EREMOTEIO  QEMU answered with an error: err->qmp_class holds its
 *               "class" (branch on that, never on the text) and err->msg
 *               names the command and holds its "desc". The connection
 *               stays usable.
 *   -ETIMEDOUT  no reply within the timeout
 *   -EPIPE      QEMU closed the connection (it exited or crashed; a
 *               connection reset is reported as -EPIPE too)
 *   -EPROTO, -EMSGSIZE   QEMU sent garbage or an oversized message
 *   -EBUSY      called from an event callback
 *   -EINVAL     bad arguments
 * After -ETIMEDOUT, -EPIPE, -EPROTO, -EMSGSIZE or a send
 * failure the client is dead: every later command, wait or dispatch fails
 * at once with the same code and the first message. Queued events remain
 * readable with qmp_next_event().
 * Ids come from a counter; replies with other ids are dropped. Events that
 * arrive meanwhile go to the callback, or to the queue (check
 * qmp_next_event() afterwards). */
int qmp_execute(qmp_client *client, const char *cmd, json_t *args, int timeout_ms,
                json_t **ret_return, util_err *err);

/* Like qmp_execute(), also passing fd (borrowed; QEMU receives its own copy)
 * with SCM_RIGHTS in the same sendmsg() as the command's first byte. Meant
 * for "getfd" ({"fdname": ...}) and "add-fd" ({"fdset-id": ...}). */
int qmp_execute_with_fd(qmp_client *client, const char *cmd, json_t *args, int fd, int timeout_ms,
                        json_t **ret_return, util_err *err);

/* The reply timeout used when qmp_execute() is given 0:
 * QMP_TIMEOUT_QUICK_MS for query-*, qmp_capabilities, cont, stop,
 * system_powerdown, system_reset, system_wakeup, quit, getfd, closefd,
 * add-fd, remove-fd, qom-get/list/set, set_link, inject-nmi, send-key,
 * balloon; QMP_TIMEOUT_JOB_MS for snapshot-*, migrate*, blockdev-create,
 * block-job-*, job-*, block-commit, block-stream, drive-mirror,
 * drive-backup, blockdev-mirror, blockdev-backup, dump-guest-memory;
 * QMP_TIMEOUT_DEVICE_MS for everything else (device_add, device_del,
 * blockdev-add/del, netdev_add/del, block_resize, *-internal-sync and
 * unknown commands). cmd may be NULL (then the device class). */
int qmp_default_timeout_ms(const char *cmd);

/* ---- events -------------------------------------------------------------- */

/* Deliver events to cb from now on (NULL: back to the queue). Events
 * already queued are handed to the new callback at once, in order. */
void qmp_set_event_cb(qmp_client *client, qmp_event_fn cb, void *userdata);

/* The oldest queued event as a new reference (the caller json_decref()s
 * it), or NULL when the queue is empty. Never blocks; works on a dead
 * client too (the events QEMU sent before closing are kept). */
json_t *qmp_next_event(qmp_client *client);

/* Wait up to timeout_ms (0: only look at what has already arrived;
 * negative: -EINVAL) for the event called name. A matching event already
 * queued is taken first. On success *ret_event is a new reference to the
 * whole event message. Other events go to the callback or the queue; with
 * a callback set, the matching event is given to the callback too.
 * -ETIMEDOUT when it does not come (the client stays usable), -EPIPE when
 * QEMU closes the connection first. */
int qmp_wait_event(qmp_client *client, const char *name, int timeout_ms, json_t **ret_event,
                   util_err *err);

/* Number of events dropped because the queue was full. */
size_t qmp_events_dropped(const qmp_client *client);

/* ---- supervisor loop -----------------------------------------------------
 * poll() qmp_fd() for POLLIN and call qmp_dispatch() when it is readable. */

/* The connection's socket (borrowed: do not read, write or close it). */
int qmp_fd(const qmp_client *client);

/* Read what is available without blocking and deliver the complete events
 * it holds (to the callback or the queue); replies nobody waits for are
 * dropped. Returns the number of events delivered (>= 0), -EPIPE when
 * QEMU has closed the connection — after delivering the
 * events that came before the close — or another error as qmp_execute().
 * Reads a bounded amount per call, so a chatty QEMU cannot starve the
 * caller's loop; poll() reports the fd readable again if more is waiting. */
int qmp_dispatch(qmp_client *client, util_err *err);

/* False once the client is dead (see qmp_execute()). */
bool qmp_alive(const qmp_client *client);

#endif
