/* The wire of a migration (lifecycle/mig_wire.c): lines and sparse files
 * over a socket pair, a peer that closes, an answer that refuses; and the
 * syntax of a destination (lc_migrate_dest_check). */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lifecycle/lifecycle.h"
#include "lifecycle/mig_wire.h"
#include "tap.h"

#define MIB (1u << 20)

static char dir[] = "/tmp/qvm-test-wire.XXXXXX";

static int make_sparse(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	memset(buf, 0x5a, sizeof(buf));
	if (fd < 0 || ftruncate(fd, 8 * MIB) < 0 || pwrite(fd, buf, sizeof(buf), MIB) < 0 ||
	    pwrite(fd, buf, sizeof(buf), 5 * MIB + 100) < 0)
		return -1;
	return fd;
}

/* A child sends the file, a line and closes; the parent receives. */
static void test_file(void)
{
	_cleanup_free_ char *src = util_xasprintf("%s/src", dir);
	_cleanup_free_ char *dst = util_xasprintf("%s/dst", dir);
	int sv[2], fd = make_sparse(src), out, status;
	util_err err = { 0 };
	json_t *m = NULL;
	lc_wire w;
	struct stat st;
	pid_t pid;
	int r;

	ok(fd >= 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	   "a sparse file, a socket pair");
	pid = fork();
	if (pid == 0) {
		lc_wire_init(&w, sv[1], sv[1]);
		r = lc_wire_send_file(&w, fd, 8 * MIB, NULL, NULL, &err);
		if (r == 0)
			r = lc_wire_send(&w, json_pack("{s:s}", "op", "after"), &err);
		_exit(r == 0 && w.bytes_out < 2 * MIB ? 0 : 1);
	}
	close(sv[1]);
	out = open(dst, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	lc_wire_init(&w, sv[0], sv[0]);
	r = lc_wire_recv_file(&w, out, 8 * MIB, &err);
	is_int(r, 0, "received %s", err.msg);
	ok(fstat(out, &st) == 0 && st.st_size == 8 * MIB, "... 8 MiB long");
	ok((uint64_t)st.st_blocks * 512 < 2 * MIB, "... holes kept as holes (%llu bytes allocated)",
	   (unsigned long long)st.st_blocks * 512);
	{
		char a[4096], b[4096];
		int same = 1;

		for (off_t off = 0; off < 8 * MIB; off += sizeof(a))
			if (pread(fd, a, sizeof(a), off) != sizeof(a) ||
			    pread(out, b, sizeof(b), off) != sizeof(b) || memcmp(a, b, sizeof(a)))
				same = 0;
		ok(same, "... the same bytes");
	}
	r = lc_wire_recv(&w, &m, &err);
	is_str(r == 0 ? json_string_value(json_object_get(m, "op")) : err.msg, "after",
	       "a line after the file's data");
	json_decref(m);
	m = NULL;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "the sender sent under 2 MiB (holes skipped)");
	r = lc_wire_recv(&w, &m, &err);
	is_int(r, -EPIPE, "the peer closed: -EPIPE (%s)", err.msg);
	lc_wire_clear(&w);
	close(sv[0]);
	close(fd);
	close(out);
	unlink(src);
	unlink(dst);
}

/* An answer that refuses is -EREMOTEIO with its message; data past a
 * file's end is refused. */
static void test_replies(void)
{
	int sv[2];
	util_err err = { 0 }, e = { 0 };
	lc_wire a, b;
	int r;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	lc_wire_init(&a, sv[0], sv[0]);
	lc_wire_init(&b, sv[1], sv[1]);
	util_err_set(&e, -ENOSPC, "no room here");
	lc_wire_answer(&a, -ENOSPC, &e, NULL, &err);
	r = lc_wire_reply(&b, NULL, &err);
	is_int(r, -EREMOTEIO, "a refusal: -EREMOTEIO");
	is_str(err.msg, "no room here", "... with its message");
	lc_wire_answer(&a, 0, NULL, json_pack("{s:i}", "id", 7), &err);
	{
		json_t *m = NULL;

		r = lc_wire_reply(&b, &m, &err);
		is_int(r == 0 ? (int)json_integer_value(json_object_get(m, "id")) : r, 7,
		       "an answer with more fields");
		json_decref(m);
	}
	lc_wire_send(&a, json_pack("{s:s, s:i, s:i}", "op", "data", "offset", 10, "len", 100),
	             &err);
	{
		_cleanup_free_ char *p = util_xasprintf("%s/x", dir);
		int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		r = lc_wire_recv_file(&b, fd, 50, &err);
		is_int(r, -EBADMSG, "data past a file's end is refused (%s)", err.msg);
		close(fd);
		unlink(p);
	}
	lc_wire_clear(&a);
	lc_wire_clear(&b);
	close(sv[0]);
	close(sv[1]);
}

static void test_dest(void)
{
	static const char *const good[] = { "host2", "root@host2", "ssh://root@10.0.0.2:2222",
		                            "h.example.org:22", NULL };
	static const char *const bad[] = { "",    "@host",   "root@", "host:0", "host:x",
		                           "a b", "ro ot@h", "h;rm",  "u@h@h",  NULL };
	util_err err = { 0 };

	for (size_t i = 0; good[i]; i++)
		is_int(lc_migrate_dest_check(good[i], &err), 0, "destination '%s'", good[i]);
	for (size_t i = 0; bad[i]; i++)
		is_int(lc_migrate_dest_check(bad[i], &err), -EINVAL, "'%s' refused: %s", bad[i],
		       err.msg);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 1;
	test_file();
	test_replies();
	test_dest();
	rmdir(dir);
	return done_testing();
}
