/* The QMP framing reader on its own: every split point, several messages per
 * feed, the size cap, garbage, and a fixed-seed fuzz loop that must never
 * crash (run it under ASan with SANITIZE=1). */
#include <string.h>

#include "qmp/qmp.h"
#include "qmp/reader.h"
#include "tap.h"

static const char stream3[] =
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
        "\"package\": \"Debian 1:7.2+dfsg\"}, \"capabilities\": [\"oob\"]}}\r\n"
        "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n"
        "{\"return\": {\"status\": \"prelaunch\", \"running\": false}, \"id\": 7}\r\n";

/* The messages a test pulled out: all counted, the first few kept. */
typedef struct got {
	json_t *m[8];
	size_t n;
} got;

static void got_add(got *g, json_t *msg)
{
	if (g->n < UTIL_ARRAY_SIZE(g->m))
		g->m[g->n] = msg;
	else
		json_decref(msg);
	g->n++;
}

static void got_free(got *g)
{
	for (size_t i = 0; i < g->n && i < UTIL_ARRAY_SIZE(g->m); i++)
		json_decref(g->m[i]);
	g->n = 0;
}

/* Feed all of data in pieces cut at cuts[] (ascending), pulling messages
 * into g after each piece. Returns 0 or the negative error. */
static int feed_cuts(qmp_reader *r, const char *data, size_t len, const size_t *cuts, size_t ncuts,
                     got *g)
{
	size_t pos = 0;
	util_err err;

	g->n = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		json_t *msg;
		int rc;

		rc = qmp_reader_feed(r, data + pos, end - pos, &err);
		if (rc < 0)
			return rc;
		pos = end;
		while ((rc = qmp_reader_next(r, &msg, &err)) == 1)
			got_add(g, msg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The three messages of stream3 come out whole and in order. */
static bool check_stream3(const got *g, int rc)
{
	json_t *const *m = g->m;

	if (rc != 0 || g->n != 3)
		return false;
	json_t *qemu =
	        json_object_get(json_object_get(json_object_get(m[0], "QMP"), "version"), "qemu");
	return json_integer_value(json_object_get(qemu, "minor")) == 2 &&
	       util_streq(json_string_value(json_object_get(m[1], "event")), "STOP") &&
	       json_integer_value(json_object_get(m[2], "id")) == 7 &&
	       util_streq(json_string_value(
	                          json_object_get(json_object_get(m[2], "return"), "status")),
	                  "prelaunch");
}

static void test_splits(void)
{
	size_t len = strlen(stream3);
	int bad_single = 0, bad_pair = 0, rc;
	qmp_reader r;
	got g = { 0 };

	/* One cut at every position. */
	for (size_t i = 0; i <= len; i++) {
		qmp_reader_init(&r, 0);
		rc = feed_cuts(&r, stream3, len, &i, 1, &g);
		if (!check_stream3(&g, rc) || qmp_reader_pending(&r) != 0)
			bad_single++;
		got_free(&g);
		qmp_reader_free(&r);
	}
	is_int(bad_single, 0, "all %zu single split points give the 3 messages", len + 1);

	/* Two cuts at every pair of positions. */
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			size_t cuts[2] = { i, j };

			qmp_reader_init(&r, 0);
			rc = feed_cuts(&r, stream3, len, cuts, 2, &g);
			if (!check_stream3(&g, rc))
				bad_pair++;
			got_free(&g);
			qmp_reader_free(&r);
		}
	}
	is_int(bad_pair, 0, "all pairs of split points give the 3 messages");

	/* Byte by byte. */
	{
		size_t cuts[sizeof(stream3)];

		for (size_t i = 0; i < len; i++)
			cuts[i] = i;
		qmp_reader_init(&r, 0);
		rc = feed_cuts(&r, stream3, len, cuts, len, &g);
		ok(check_stream3(&g, rc), "byte by byte gives the 3 messages");
		got_free(&g);
		qmp_reader_free(&r);
	}

	/* All in one feed; then nothing more. */
	qmp_reader_init(&r, 0);
	rc = feed_cuts(&r, stream3, len, NULL, 0, &g);
	ok(check_stream3(&g, rc), "three messages in one feed");
	got_free(&g);
	{
		json_t *x = NULL;
		is_int(qmp_reader_next(&r, &x, NULL), 0, "nothing more after the last message");
		ok(x == NULL, "out-parameter untouched when there is no message");
	}
	qmp_reader_free(&r);
}

static void test_line_ends(void)
{
	static const char mixed[] = "{\"a\":1}\n\r\n\n{\"b\":2}\r\n{\"c\":\"x\\ny\"}\n{\"d\":";
	qmp_reader r;
	got g = { 0 };
	int rc;

	qmp_reader_init(&r, 0);
	rc = feed_cuts(&r, mixed, strlen(mixed), NULL, 0, &g);
	ok(rc == 0 && g.n == 3, "bare LF and CRLF both end a message; empty lines are skipped");
	if (g.n == 3) {
		ok(json_integer_value(json_object_get(g.m[1], "b")) == 2, "second message intact");
		is_str(json_string_value(json_object_get(g.m[2], "c")), "x\ny",
		       "escaped newline inside a string is not a line end");
	}
	got_free(&g);
	is_int(qmp_reader_pending(&r), 5, "the unterminated tail stays pending");
	qmp_reader_free(&r);
}

static void expect_error(const char *data, size_t len, size_t max, int code, const char *name)
{
	qmp_reader r;
	got g = { 0 };
	util_err err = { 0 };
	int n;

	qmp_reader_init(&r, max);
	n = feed_cuts(&r, data, len, NULL, 0, &g);
	is_int(n, code, "%s", name);
	is_int(g.n, 0, "%s: no message before", name);
	got_free(&g);
	/* Sticky: both entry points keep failing the same way. */
	n = qmp_reader_feed(&r, "{}\n", 3, &err);
	is_int(n, code, "%s: feed after the error fails the same", name);
	is_int(err.code, code, "%s: error object carries the code", name);
	ok(err.msg[0] != '\0', "%s: with a message (%s)", name, err.msg);
	qmp_reader_free(&r);
}

static void test_garbage(void)
{
	static const char *const bad[] = {
		"hello\r\n",
		"[1,2,3]\r\n",
		"42\n",
		"\"string\"\n",
		"null\n",
		"{\"a\":1}{\"b\":2}\n",
		"{\"a\":\n1}\n",
		"   \n",
		"{\"a\":1\n",
		"\xff\xfe{}\n",
		"{\"s\":\"\xc3\x28\"}\n",
	};
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
		char name[64];

		snprintf(name, sizeof(name), "garbage #%zu is -EPROTO", i);
		expect_error(bad[i], strlen(bad[i]), 0, -EPROTO, name);
	}
	expect_error("{\"a\":\"x\0y\"}\n", 12, 0, -EPROTO, "embedded NUL is -EPROTO");

	/* A good message before the garbage is still handed out first. */
	{
		static const char s[] = "{\"ok\":true}\r\nnot json\r\n{\"never\":1}\r\n";
		qmp_reader r;
		json_t *msg = NULL;
		util_err err;

		qmp_reader_init(&r, 0);
		qmp_reader_feed(&r, s, strlen(s), &err);
		is_int(qmp_reader_next(&r, &msg, &err), 1, "message before garbage delivered");
		json_decref(msg);
		is_int(qmp_reader_next(&r, &msg, &err), -EPROTO, "then the garbage line fails");
		ok(strstr(err.msg, "not json") != NULL, "message says so: %s", err.msg);
		is_int(qmp_reader_next(&r, &msg, &err), -EPROTO, "and the stream stays failed");
		qmp_reader_free(&r);
	}
}

/* {"s":"aaa..."} of exactly total bytes. */
static char *big_message(size_t total)
{
	char *s = util_xmalloc(total + 3);

	memcpy(s, "{\"s\":\"", 6);
	memset(s + 6, 'a', total - 8);
	memcpy(s + total - 2, "\"}", 2);
	s[total] = '\0';
	return s;
}

static void test_cap(void)
{
	bool pass_all = false;
	const size_t max = QMP_MAX_MESSAGE;
	_cleanup_free_ char *big = big_message(max);
	_cleanup_free_ char *bigger = big_message(max + 1);
	qmp_reader r;
	json_t *msg = NULL;
	util_err err;
	int rc;

	ok(max == 10u * 1024 * 1024, "the cap is 10 MiB");

	/* Exactly the cap, with CRLF, in 64 KiB reads: accepted. */
	qmp_reader_init(&r, 0);
	rc = 0;
	for (size_t off = 0; off < max && rc == 0; off += 65536)
		rc = qmp_reader_feed(&r, big + off, max - off < 65536 ? max - off : 65536, &err);
	if (rc == 0)
		rc = qmp_reader_feed(&r, "\r\n", 2, &err);
	if (rc == 0)
		rc = qmp_reader_next(&r, &msg, &err);
	is_int(rc, 1, "a message of exactly 10 MiB (+CRLF) is accepted");
	is_int(json_string_length(json_object_get(msg, "s")), max - 8, "and intact");
	json_decref(msg);
	msg = NULL;
	qmp_reader_free(&r);

	/* Exactly the cap with a bare LF. */
	qmp_reader_init(&r, 0);
	rc = qmp_reader_feed(&r, big, max, &err);
	if (rc == 0)
		rc = qmp_reader_feed(&r, "\n", 1, &err);
	if (rc == 0)
		rc = qmp_reader_next(&r, &msg, &err);
	is_int(rc, 1, "a message of exactly 10 MiB (+LF) is accepted");
	json_decref(msg);
	msg = NULL;
	qmp_reader_free(&r);

	/* One byte over, terminated in the same feed: refused. */
	qmp_reader_init(&r, 0);
	bigger[max + 1] = '\n';
	rc = qmp_reader_feed(&r, bigger, max + 2, &err);
	if (rc == 0)
		rc = qmp_reader_next(&r, &msg, &err);
	is_int(rc, -EMSGSIZE, "10 MiB + 1 byte (+LF) is -EMSGSIZE");
	qmp_reader_free(&r);

	/* One byte over followed by CRLF. */
	qmp_reader_init(&r, 0);
	bigger[max + 1] = '\r';
	bigger[max + 2] = '\n';
	rc = qmp_reader_feed(&r, bigger, max + 3, &err);
	if (rc == 0)
		rc = qmp_reader_next(&r, &msg, &err);
	is_int(rc, -EMSGSIZE, "10 MiB + 1 byte (+CRLF) is -EMSGSIZE");
	qmp_reader_free(&r);

	/* A line that never ends fails as soon as it passes the cap, without
	 * waiting for its end. */
	qmp_reader_init(&r, 0);
	rc = 0;
	size_t fed = 0;
	while (rc == 0 && fed < 3 * max) {
		rc = qmp_reader_feed(&r, big, 65536, &err);
		fed += 65536;
	}
	is_int(rc, -EMSGSIZE, "an endless line is -EMSGSIZE");
	ok(fed <= max + 2 * 65536, "detected right after the cap (%zu bytes fed)", fed);
	ok(r.buf == NULL, "the buffer is released at once");
	ok(strstr(err.msg, "cap") != NULL, "message names the cap: %s", err.msg);
	is_int(qmp_reader_next(&r, &msg, &err), -EMSGSIZE, "next is sticky too");
	qmp_reader_free(&r);

	/* Small caps, checked exactly. */
	expect_error("{\"a\":\"123\"}\n", 12, 10, -EMSGSIZE, "cap 10, 11-byte message");
	{
		qmp_reader r2;

		qmp_reader_init(&r2, 11);
		qmp_reader_feed(&r2, "{\"a\":\"123\"}\r", 12, &err);
		rc = qmp_reader_feed(&r2, "\n", 1, &err);
		if (rc == 0)
			rc = qmp_reader_next(&r2, &msg, &err);
		is_int(rc, 1, "cap 11, 11-byte message with CR then LF in the next feed");
		json_decref(msg);
		msg = NULL;
		qmp_reader_free(&r2);

		qmp_reader_init(&r2, 11);
		rc = qmp_reader_feed(&r2, "{\"a\":\"1234\"", 12, &err);
		if (rc == 0)
			rc = qmp_reader_next(&r2, &msg, &err);
		is_int(rc, -EMSGSIZE, "cap 11, 12 bytes not ending in CR fail without a line end");
		qmp_reader_free(&r2);

		qmp_reader_init(&r2, 11);
		rc = qmp_reader_feed(&r2, "{\"a\":\"123\"}\rx", 13, &err);
		if (rc == 0)
			rc = qmp_reader_next(&r2, &msg, &err);
		is_int(rc, -EMSGSIZE, "cap 11, CR not followed by LF fails");
		qmp_reader_free(&r2);

		/* Messages before an oversized one, in the same feed and in an
		 * earlier one, come out first. */
		static const char s2[] =
		        "{\"a\":1}\r\n{\"b\":2}\n{\"toolong\":\"xxxxxxxxxxxxxxxx\"}\n{}\n";
		got g = { 0 };
		qmp_reader_init(&r2, 20);
		rc = feed_cuts(&r2, s2, strlen(s2), NULL, 0, &g);
		is_int(rc, -EMSGSIZE, "oversized third message is -EMSGSIZE");
		is_int(g.n, 2, "after the two messages before it");
		got_free(&g);
		qmp_reader_free(&r2);
		for (size_t cut = 0; cut <= strlen(s2); cut++) {
			qmp_reader_init(&r2, 20);
			rc = feed_cuts(&r2, s2, strlen(s2), &cut, 1, &g);
			if (rc != -EMSGSIZE || g.n != 2)
				break;
			got_free(&g);
			qmp_reader_free(&r2);
			if (cut == strlen(s2))
				pass_all = true;
		}
		got_free(&g);
		qmp_reader_free(&r2);
		ok(pass_all, "the same at every split point");
	}
}

/* ---- fuzz ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64*: fixed seed, the same sequence on every libc. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static json_t *random_value(int depth)
{
	static const char *const words[] = { "a",  "",      "déjà", "x\ny",     "\"q\"",
		                             "\\", "tab\t", "€",    "SHUTDOWN", "\x01" };

	switch (depth > 3 ? rnd_below(4) : rnd_below(7)) {
	case 0:
		return json_integer((json_int_t)(rnd() >> 1) * (rnd() & 1 ? 1 : -1));
	case 1:
		return json_string(words[rnd_below(UTIL_ARRAY_SIZE(words))]);
	case 2:
		return rnd_below(3) ? json_true() : json_null();
	case 3:
		return json_real((double)rnd_below(100000) / 7.0);
	case 4:
	case 5: {
		json_t *o = json_object();
		size_t n = rnd_below(5);

		for (size_t i = 0; i < n; i++) {
			char key[16];

			snprintf(key, sizeof(key), "k%zu", rnd_below(50));
			json_object_set_new(o, key, random_value(depth + 1));
		}
		return o;
	}
	default: {
		json_t *a = json_array();
		size_t n = rnd_below(5);

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, random_value(depth + 1));
		return a;
	}
	}
}

static json_t *random_message(void)
{
	json_t *o = json_object();
	size_t n = 1 + rnd_below(4);

	for (size_t i = 0; i < n; i++) {
		char key[16];

		snprintf(key, sizeof(key), "m%zu", i);
		json_object_set_new(o, key, random_value(0));
	}
	return o;
}

/* Feed data in random pieces, pulling messages into g. Returns 0 or the
 * error; never crashes. */
static int feed_random(qmp_reader *r, const char *data, size_t len, got *g)
{
	size_t pos = 0;

	g->n = 0;
	while (pos < len) {
		size_t piece = 1 + rnd_below(rnd_below(4) ? 16 : len - pos);
		json_t *msg;
		int rc;

		if (piece > len - pos)
			piece = len - pos;
		rc = qmp_reader_feed(r, data + pos, piece, NULL);
		if (rc < 0)
			return rc;
		pos += piece;
		while ((rc = qmp_reader_next(r, &msg, NULL)) == 1)
			got_add(g, msg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

#define FUZZ_ITERS 3000
#define FUZZ_MSGS  6

static void test_fuzz(void)
{
	int valid_bad = 0, capped_bad = 0, random_bytes = 0, mutated = 0;
	int mutated_ok = 0, mutated_err = 0;
	got g = { 0 };

	for (int iter = 0; iter < FUZZ_ITERS; iter++) {
		json_t *sent[FUZZ_MSGS];
		size_t lens[FUZZ_MSGS], nmsg = 1 + rnd_below(FUZZ_MSGS), total = 0;
		char *stream = NULL;
		qmp_reader r;
		int rc;

		/* A valid stream of random messages, random line ends. */
		for (size_t i = 0; i < nmsg; i++) {
			char *s;

			sent[i] = random_message();
			s = json_dumps(sent[i],
			               JSON_COMPACT | (rnd_below(2) ? JSON_ENSURE_ASCII : 0));
			lens[i] = strlen(s);
			stream = util_xrealloc(stream, total + lens[i] + 3);
			memcpy(stream + total, s, lens[i]);
			total += lens[i];
			if (rnd_below(2))
				stream[total++] = '\r';
			stream[total++] = '\n';
			free(s);
		}

		/* Round trip with the real cap. */
		qmp_reader_init(&r, 0);
		rc = feed_random(&r, stream, total, &g);
		if (rc != 0 || g.n != nmsg)
			valid_bad++;
		else
			for (size_t i = 0; i < nmsg; i++)
				if (!json_equal(sent[i], g.m[i]))
					valid_bad++;
		got_free(&g);
		qmp_reader_free(&r);

		/* With a small random cap: exactly the messages before the first
		 * one over the cap come out, then -EMSGSIZE. */
		{
			size_t cap = 2 + rnd_below(120), expect_n = 0;

			while (expect_n < nmsg && lens[expect_n] <= cap)
				expect_n++;
			qmp_reader_init(&r, cap);
			rc = feed_random(&r, stream, total, &g);
			if (g.n != expect_n || rc != (expect_n < nmsg ? -EMSGSIZE : 0))
				capped_bad++;
			got_free(&g);
			qmp_reader_free(&r);
		}

		/* The same stream with random bytes changed, and cut short. */
		{
			size_t flips = 1 + rnd_below(4);

			for (size_t f = 0; f < flips; f++)
				stream[rnd_below(total)] = (char)rnd();
			qmp_reader_init(&r, rnd_below(2) ? 0 : 1 + rnd_below(200));
			rc = feed_random(&r, stream, total - rnd_below(total / 2 + 1), &g);
			if (rc == 0)
				mutated_ok++;
			else if (rc == -EPROTO || rc == -EMSGSIZE)
				mutated_err++;
			for (size_t i = 0; i < g.n && i < UTIL_ARRAY_SIZE(g.m); i++)
				if (!json_is_object(g.m[i]))
					mutated_err = -100000;
			got_free(&g);
			mutated++;
			qmp_reader_free(&r);
		}

		/* Random bytes, biased towards JSON's alphabet and line ends. */
		{
			static const char alphabet[] = "{}[]\":,\\ntrufalse0123456789.-eE \r\n\t";
			size_t blen = rnd_below(400);
			char *bytes = util_xmalloc(blen + 1);

			for (size_t i = 0; i < blen; i++)
				bytes[i] = rnd_below(3) ? alphabet[rnd_below(sizeof(alphabet) - 1)]
				                        : (char)rnd();
			qmp_reader_init(&r, rnd_below(2) ? 0 : 1 + rnd_below(64));
			rc = feed_random(&r, bytes, blen, &g);
			if (rc == 0 || rc == -EPROTO || rc == -EMSGSIZE)
				random_bytes++;
			got_free(&g);
			qmp_reader_free(&r);
			free(bytes);
		}

		for (size_t i = 0; i < nmsg; i++)
			json_decref(sent[i]);
		free(stream);
	}
	is_int(valid_bad, 0, "fuzz: %d random valid streams, random splits, round trip",
	       FUZZ_ITERS);
	is_int(capped_bad, 0, "fuzz: small random caps cut exactly at the first big message");
	is_int(mutated_ok + mutated_err, mutated,
	       "fuzz: mutated streams give objects then nothing or -EPROTO/-EMSGSIZE (%d/%d)",
	       mutated_ok, mutated_err);
	is_int(random_bytes, FUZZ_ITERS,
	       "fuzz: random byte streams end in 0, -EPROTO or -EMSGSIZE");

	/* Deep nesting is refused by jansson's depth limit, not the stack. */
	{
		size_t depth = 100000, p = 0;
		char *s = util_xmalloc(2 * depth + 8);
		qmp_reader r;

		s[p++] = '{';
		memcpy(s + p, "\"a\":", 4);
		p += 4;
		memset(s + p, '[', depth);
		p += depth;
		memset(s + p, ']', depth);
		p += depth;
		s[p++] = '}';
		s[p++] = '\n';
		qmp_reader_init(&r, 0);
		is_int(feed_cuts(&r, s, p, NULL, 0, &g), -EPROTO,
		       "100000 nested arrays are -EPROTO, no stack overflow");
		got_free(&g);
		qmp_reader_free(&r);
		free(s);
	}
}

int main(void)
{
	test_splits();
	test_line_ends();
	test_garbage();
	test_cap();
	test_fuzz();
	return done_testing();
}
