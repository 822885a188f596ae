/* qvm console NAME: the VM's serial port on this terminal (raw mode,
 * Ctrl-] leaves), or between a pipe and stdout for scripts. */
#include <poll.h>
#include <string.h>
#include <termios.h>

#include "cli.h"

#define ESCAPE_CHAR        0x1d /* Ctrl-] */
#define PIPE_LINGER_MS     1000 /* after the input pipe ends: quiet time that ends it */
#define PIPE_LINGER_MAX_MS 5000 /* ... and the most it waits, for a chatty guest */

static struct termios saved;
static bool raw_mode;

static void restore_terminal(void)
{
	if (raw_mode)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	raw_mode = false;
}

int cli_cmd_console(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_close_ int sock = -1, lock = -1;
	bool tty = isatty(STDIN_FILENO), in_open = true;
	int64_t linger_until = 0, linger_max = 0;
	char **ops;
	int r;
	lc_vm *vm;

	(void)ret_json;
	r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, NULL, err);
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_SUMMARY, &db, err);
	if (r == 0)
		r = lc_db_find(db, ops[0], &vm, err);
	if (r < 0)
		return r;
	r = lc_console_attach(ctx->root, vm, &sock, &lock, err);
	if (r < 0)
		return r;
	if (tty) {
		struct termios t;

		fprintf(stderr, "qvm: connected to the console of '%s'; Ctrl-] leaves\r\n",
		        vm->def.name);
		if (tcgetattr(STDIN_FILENO, &saved) == 0) {
			t = saved;
			cfmakeraw(&t);
			raw_mode = tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0;
			atexit(restore_terminal);
		}
	}
	for (;;) {
		struct pollfd pfd[2] = { { in_open ? STDIN_FILENO : -1, POLLIN, 0 },
			                 { sock, POLLIN, 0 } };
		int timeout = -1;
		char buf[4096];
		ssize_t n;

		if (!in_open) {
			int64_t left = linger_until - util_now_ms();

			if (left <= 0)
				break;
			timeout = (int)left;
		}
		if (poll(pfd, 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents) {
			n = read(sock, buf, sizeof(buf));
			if (n <= 0)
				break; /* the VM stopped */
			util_write_all(STDOUT_FILENO, buf, (size_t)n);
			if (!in_open) { /* a pipe ended: leave once the output calms down */
				linger_until = util_now_ms() + PIPE_LINGER_MS;
				if (linger_until > linger_max)
					linger_until = linger_max;
			}
		}
		if (pfd[0].revents) {
			char *esc;

			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0) {
				in_open = false;
				linger_until = util_now_ms() + PIPE_LINGER_MS;
				linger_max = util_now_ms() + PIPE_LINGER_MAX_MS;
				continue;
			}
			esc = tty ? memchr(buf, ESCAPE_CHAR, (size_t)n) : NULL;
			if (util_write_all(sock, buf, esc ? (size_t)(esc - buf) : (size_t)n) < 0 ||
			    esc)
				break;
		}
	}
	restore_terminal();
	if (tty)
		fprintf(stderr, "\nqvm: left the console of '%s'\n", vm->def.name);
	return 0;
}
