/* What the fake-QEMU tests of the operations share (test_ops.c,
 * test_ops_run.c): QEMU's greeting, the faults, line I/O on a QMP socket,
 * and the journal records an operation wrote. */
#ifndef QVM_TEST_OPS_FAKE_H
#define QVM_TEST_OPS_FAKE_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "lifecycle/store/journal.h"
#include "util/util.h"

#define GREETING                                                                                   \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "          \
	"\"package\": \"fake\"}, \"capabilities\": []}}\r\n"

typedef enum fault { FAULT_NONE, FAULT_ERROR, FAULT_EOF, FAULT_SILENCE } fault;

static const char *const fault_names[] = { "none", "an error reply", "EOF", "silence" };

__attribute__((unused)) static void fake_write(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* An error reply of class cls to the command of id (its JSON text). */
__attribute__((unused)) static void fake_error(int fd, const char *cls, const char *name,
                                               const char *id_text)
{
	char reply[512];

	snprintf(reply, sizeof(reply),
	         "{\"error\": {\"class\": \"%s\", \"desc\": \"fake failure of %s\"}, "
	         "\"id\": %s}\r\n",
	         cls, name, id_text);
	fake_write(fd, reply);
}

/* v's strings as "a b c". */
__attribute__((unused)) static char *join(const util_strv *v)
{
	size_t len = 1;
	char *out;

	for (size_t i = 0; i < v->n; i++)
		len += strlen(v->v[i]) + 1;
	out = util_xmalloc(len);
	out[0] = '\0';
	for (size_t i = 0; i < v->n; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, v->v[i]);
	}
	return out;
}

__attribute__((unused)) static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- the journal's records ---------------------------------------------------------- */

typedef struct records_walk {
	uint64_t id, after, last;
	util_strv out;
	json_t *intents; /* the seqs of vm id's intents, as keys */
} records_walk;

/* A record as the tests compare it: "ACTIVE/SHUTDOWN" for a state (the
 * state alone when it has no LCM), "intent:nic-attach", "done:ok", else
 * its type. */
static int record_text(uint64_t seq, json_t *rec, void *ud, util_err *err)
{
	records_walk *w = ud;
	const char *type = json_string_value(json_object_get(rec, "type"));
	const char *lcm = json_string_value(json_object_get(rec, "lcm"));
	json_t *id = json_object_get(rec, "id");
	char key[24];
	bool mine = json_is_integer(id) && (uint64_t)json_integer_value(id) == w->id;

	(void)err;
	if (seq > w->last)
		w->last = seq;
	if (!type)
		return 0;
	/* an intent's end names the intent's seq, not the vm */
	if (!strcmp(type, "done")) {
		snprintf(key, sizeof(key), "%" PRId64,
		         (int64_t)json_integer_value(json_object_get(rec, "intent")));
		mine = json_object_get(w->intents, key) != NULL;
	} else if (mine && !strcmp(type, "intent")) {
		snprintf(key, sizeof(key), "%" PRIu64, seq);
		json_object_set_new(w->intents, key, json_true());
	}
	if (seq <= w->after || !mine)
		return 0;
	if (!strcmp(type, "state"))
		util_strv_pushf(&w->out, "%s%s%s", json_string_value(json_object_get(rec, "state")),
		                lcm && *lcm ? "/" : "", lcm ? lcm : "");
	else if (!strcmp(type, "intent"))
		util_strv_pushf(&w->out, "intent:%s",
		                json_string_value(json_object_get(rec, "op")));
	else if (!strcmp(type, "done"))
		util_strv_pushf(&w->out, "done:%s",
		                json_string_value(json_object_get(rec, "result")));
	else
		util_strv_push(&w->out, type);
	return 0;
}

/* The records of vm id after seq after, as "a b c"; *ret_last (may be
 * NULL) the journal's last seq. */
__attribute__((unused)) static char *records_since(const char *root, uint64_t id, uint64_t after,
                                                   uint64_t *ret_last)
{
	_cleanup_free_ char *dir = util_xasprintf("%s/journal", root);
	records_walk w = { .id = id, .after = after, .intents = json_object() };
	util_err err = { 0 };
	char *text;

	if (lc_journal_foreach_history(dir, NULL, record_text, &w, &err) < 0)
		util_strv_pushf(&w.out, "(cannot read the journal: %s)", err.msg);
	text = join(&w.out);
	util_strv_clear(&w.out);
	json_decref(w.intents);
	if (ret_last)
		*ret_last = w.last;
	return text;
}

/* The journal's last seq: where an operation's records begin. */
__attribute__((unused)) static uint64_t records_mark(const char *root)
{
	uint64_t last = 0;

	free(records_since(root, 0, UINT64_MAX, &last));
	return last;
}

#endif
