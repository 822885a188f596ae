/* Commands that reshape a vm in place: rename. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

int cli_cmd_rename(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_close_ int lock = -1;
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_free_ char *old = NULL;
	char **ops;
	int nops;
	lc_vm *vm;
	int r = cli_parse_operands(ctx, argc, argv, 2, 2, &ops, &nops, err);

	if (r == 0 && cli_lock_vm(ctx, ops[0], &lock, err) < 0)
		r = util_err_prefix(err, "cannot rename '%s'", ops[0]);
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_db_find(db, ops[0], &vm, err);
	if (r == 0) {
		old = util_xstrdup(vm->def.name);
		r = lc_vm_rename(db, vm, TAKE_FD(lock), ops[1], err);
	}
	if (r == 0 && ctx->json)
		*ret_json = lc_vm_to_json(vm);
	else if (r == 0 && ctx->verbosity >= 0)
		printf("%s: renamed from '%s'\n", vm->def.name, old);
	return r;
}

/* ---- edit ------------------------------------------------------------------------ */

/* $VISUAL, else $EDITOR, else vi, on file: the variable split at blanks
 * (there is no shell to read quotes), with the terminal and environment
 * of qvm, waited for as long as it takes. */
static int run_editor(const char *file, util_err *err)
{
	const char *ed = getenv("VISUAL");
	_cleanup_free_ char *copy = NULL, *prog = NULL;
	_cleanup_(util_strv_clear) util_strv av = { 0 };
	char *save = NULL;
	int status, r;
	pid_t pid;

	if (!ed || !*ed)
		ed = getenv("EDITOR");
	if (!ed || !*ed)
		ed = "vi";
	copy = util_xstrdup(ed);
	for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
		util_strv_push(&av, t);
	if (!av.n)
		return util_err_set(err, -EINVAL, "$VISUAL or $EDITOR is blank");
	util_strv_push(&av, file);
	r = util_find_program(av.v[0], &prog, err);
	if (r < 0)
		return util_err_prefix(err, "cannot run the editor");
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return util_err_errno(err, -errno, "cannot run the editor '%s'", ed);
	if (pid == 0) {
		execve(prog, av.v, environ);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return util_err_errno(err, -errno, "cannot wait for the editor '%s'", ed);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return util_err_set(
		        err, -ECANCELED, "the editor '%s' failed (status %d); nothing was changed",
		        ed, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}

/* The file the definition is edited in: private, in $TMPDIR or /tmp. */
static int write_temp(const char *name, json_t *def, char **ret_path, util_err *err)
{
	const char *tmp = getenv("TMPDIR");
	_cleanup_free_ char *path =
	        util_xasprintf("%s/qvm-edit-%s-XXXXXX.json", tmp && *tmp ? tmp : "/tmp", name);
	_cleanup_free_ char *text = json_dumps(def, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	_cleanup_close_ int fd = mkostemps(path, 5, O_CLOEXEC);

	if (fd < 0)
		return util_err_errno(err, -errno, "cannot make a file to edit in '%s'", path);
	int r = util_write_all(fd, text, strlen(text));

	if (r == 0)
		r = util_write_all(fd, "\n", 1);
	if (r < 0) {
		unlink(path);
		return util_err_errno(err, r, "cannot write '%s'", path);
	}
	*ret_path = TAKE_PTR(path);
	return 0;
}

/* The edited file as JSON, or why it is not. */
static int read_edited(const char *path, json_t **ret, util_err *err)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);

	if (!j)
		return util_err_set(err, -EINVAL, "%s (line %d)", jerr.text, jerr.line);
	*ret = j;
	return 0;
}

/* Redefine vm id as the edit (borrowed) makes it, if its definition is
 * still orig, the one the user was given to edit. */
static int apply_edit(cli_ctx *ctx, uint64_t id, json_t *orig, json_t *edited, json_t **ret_later,
                      lc_vm **ret_vm, lc_db **ret_db, util_err *err)
{
	_cleanup_close_ int lock = -1;
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_strv_ char **pairs = NULL, **roots = NULL;
	_cleanup_json_ json_t *now = NULL;
	char idtext[24];
	lc_vm *vm;
	int r;

	snprintf(idtext, sizeof(idtext), "%llu", (unsigned long long)id);
	r = cli_lock_vm(ctx, idtext, &lock, err);
	if (r == 0)
		r = cli_open_db(ctx, LC_DB_WRITE, &db, err);
	if (r == 0)
		r = lc_db_find(db, idtext, &vm, err);
	if (r < 0)
		return r;
	now = lc_vmdef_to_json(&vm->def);
	if (!json_equal(now, orig))
		return util_err_set(err, -ESTALE,
		                    "another command changed the definition while it was edited");
	r = lc_edit_pairs(&vm->def, edited, &pairs, err);
	if (r == 0 && !pairs[0])
		r = util_err_set(err, -ENODATA, "nothing changed");
	if (r == 0) {
		roots = cli_disk_roots(ctx);
		r = lc_vm_update(db, vm, TAKE_FD(lock), pairs, util_strv_len(pairs),
		                 &(lc_update_opts){ .disk_roots = (const char *const *)roots,
		                                    .ret_later = ret_later,
		                                    .verb = "edit" },
		                 err);
	}
	if (r < 0)
		return r;
	*ret_vm = vm;
	*ret_db = TAKE_PTR(db);
	return 0;
}

/* Ask on stderr, answered on stdin: go back into the editor? */
static bool edit_again(const char *msg)
{
	char answer[16];

	fprintf(stderr, "qvm edit: %s\nedit again? [y/N] ", msg);
	if (!fgets(answer, sizeof(answer), stdin))
		return false;
	return answer[0] == 'y' || answer[0] == 'Y';
}

int cli_cmd_edit(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *orig = NULL, *later = NULL;
	_cleanup_free_ char *path = NULL, *name = NULL;
	char **ops;
	int nops, r;
	uint64_t id;
	lc_vm *vm;

	r = cli_parse_operands(ctx, argc, argv, 1, 1, &ops, &nops, err);
	if (r == 0)
		r = cli_open_vm_to_read(ctx, ops[0], &db, &vm, err);
	if (r < 0)
		return r;
	/* the editor may take its time: nothing is held meanwhile */
	orig = lc_vmdef_to_json(&vm->def);
	name = util_xstrdup(vm->def.name);
	id = vm->id;
	lc_db_close(TAKE_PTR(db));
	r = write_temp(name, orig, &path, err);
	while (r == 0) {
		_cleanup_json_ json_t *edited = NULL;

		r = run_editor(path, err);
		if (r < 0)
			break;
		r = read_edited(path, &edited, err);
		if (r == 0 && json_equal(edited, orig))
			r = -ENODATA;
		if (r == 0)
			r = apply_edit(ctx, id, orig, edited, &later, &vm, &db, err);
		if (r >= 0 || r == -ENODATA || r == -ESTALE || !edit_again(err->msg))
			break;
		/* back into the editor, with the text as the user left it */
		util_err_clear(err);
		r = 0;
	}
	if (r == -ESTALE)
		return util_err_prefix(err, "cannot edit '%s': your edit is kept in '%s'", name,
		                       path);
	if (path)
		unlink(path);
	if (r == -ENODATA) {
		util_err_clear(err);
		if (!ctx->json && ctx->verbosity >= 0)
			printf("%s: nothing changed\n", name);
		return 0;
	}
	if (r < 0)
		return util_err_prefix(err, "cannot edit '%s'", name);
	if (ctx->json) {
		*ret_json = lc_vm_to_json(vm);
		json_object_set(*ret_json, "next_start", later);
	} else if (ctx->verbosity >= 0) {
		printf("%s: edited\n", name);
		cli_print_later(vm, later);
	}
	return 0;
}

/* ---- resize ---------------------------------------------------------------------- */

static void print_resized(json_t *j)
{
	char a[16], b[16];
	uint64_t om = (uint64_t)json_integer_value(json_object_get(j, "old_memory"));
	uint64_t m = (uint64_t)json_integer_value(json_object_get(j, "memory"));

	json_int_t ov = json_integer_value(json_object_get(j, "old_vcpus"));
	json_int_t v = json_integer_value(json_object_get(j, "vcpus"));

	printf("%s:", json_string_value(json_object_get(j, "vm")));
	if (ov != v)
		printf(" vcpus %lld→%lld%s", (long long)ov, (long long)v, om != m ? "," : "");
	if (om != m)
		printf(" memory %s→%s", util_format_size(om, a, sizeof(a)),
		       util_format_size(m, b, sizeof(b)));
	if (ov == v && om == m)
		printf(" unchanged");
	printf("%s\n", json_is_true(json_object_get(j, "live")) ? " (live)" : "");
	if (json_is_true(json_object_get(j, "balloon")))
		printf("%s: the guest gave back %s to the balloon: it sees a balloon, not a smaller dimm; its next boot has %s\n",
		       json_string_value(json_object_get(j, "vm")),
		       util_format_size(om - m, a, sizeof(a)), b);
}

int cli_cmd_resize(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "vcpus", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_json_ json_t *j = NULL;
	lc_run_opts ro = { .lock_timeout_ms = LC_LOCK_TIMEOUT_MS, .disk_roots = ctx->disk_roots };
	uint64_t memory = 0, n;
	unsigned vcpus = 0;
	const char *arg;
	cli_parser p;
	char **ops;
	int nops, c, r = 0;

	cli_parser_init(&p, ctx, argc, argv, opts, "c:m:");
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0) {
		if (c == 'c' && util_parse_uint(arg, 1, LC_VCPUS_MAX, &n, err) < 0)
			r = cli_usage(err, "invalid --vcpus: %s", err->msg);
		else if (c == 'c')
			vcpus = (unsigned)n;
		else
			r = cli_parse_memory(arg, &memory, err);
	}
	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, 1, 1, &ops, &nops, err);
	if (r == 0 && !vcpus && !memory)
		r = cli_usage(err, "give --vcpus N, --memory SIZE or both");
	if (r == 0)
		r = cli_lock_timeout(&ro.lock_timeout_ms, err);
	if (r == 0)
		r = lc_vm_resize(ctx->root, ops[0], vcpus, memory, &ro, &j, err);
	cli_parser_done(&p);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = TAKE_PTR(j);
	else if (ctx->verbosity >= 0)
		print_resized(j);
	return 0;
}

/* ---- exec ------------------------------------------------------------------------ */

int cli_cmd_exec(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_json_ json_t *j = NULL;
	uint64_t timeout = 60;
	const char *arg, *out, *errs;
	cli_parser p;
	char **ops;
	int nops, c, r = 0;
	json_int_t code;

	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0)
		if (util_parse_uint(arg, 1, 86400, &timeout, err) < 0)
			r = cli_usage(err, "invalid --timeout: %s", err->msg);
	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, 2, -1, &ops, &nops, err);
	if (r == 0)
		r = lc_vm_exec(ctx->root, ops[0], ops + 1, (int)timeout, &j, err);
	cli_parser_done(&p);
	if (r < 0)
		return r;
	code = json_integer_value(json_object_get(j, "exitcode"));
	if (ctx->json) {
		*ret_json = TAKE_PTR(j);
		return 0;
	}
	out = json_string_value(json_object_get(j, "stdout"));
	errs = json_string_value(json_object_get(j, "stderr"));
	fwrite(out, 1, json_string_length(json_object_get(j, "stdout")), stdout);
	fwrite(errs, 1, json_string_length(json_object_get(j, "stderr")), stderr);
	if (json_object_get(j, "signal") && !json_is_null(json_object_get(j, "signal")))
		return util_err_set(err, -ECHILD, "the command was killed by signal %lld",
		                    (long long)json_integer_value(json_object_get(j, "signal")));
	if (code)
		return util_err_set(err, -ECHILD, "the command exited with status %lld",
		                    (long long)code);
	return 0;
}

/* ---- set-password ---------------------------------------------------------------- */

/* The first line of f, without its end (a new string, wiped by the
 * caller). */
static int first_line(FILE *f, const char *what, char **ret, util_err *err)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);

	if (n < 0) {
		free(line);
		return util_err_set(err, -ENODATA, "no password in %s", what);
	}
	line[strcspn(line, "\r\n")] = '\0';
	*ret = line;
	return 0;
}

static int read_password(const char *file, const char *user, char **ret, util_err *err)
{
	_cleanup_fclose_ FILE *f = NULL;
	struct termios old, quiet;
	bool tty = !file && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	int r;

	if (file) {
		if (!(f = fopen(file, "re")))
			return util_err_errno(err, -errno, "cannot read '%s'", file);
		return first_line(f, file, ret, err);
	}
	if (!tty)
		return first_line(stdin, "stdin", ret, err);
	fprintf(stderr, "password for %s: ", user);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	r = first_line(stdin, "the terminal", ret, err);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fprintf(stderr, "\n");
	return r;
}

int cli_cmd_set_password(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = {
		{ "password-file", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_free_ char *file = NULL;
	char *password = NULL;
	const char *arg;
	cli_parser p;
	char **ops;
	int nops, c, r = 0;

	(void)ret_json;
	cli_parser_init(&p, ctx, argc, argv, opts, NULL);
	while (r == 0 && (c = cli_parser_next(&p, &arg, err)) > 0)
		r = cli_absolute_path(arg, "password file", &file, err);
	if (r == 0 && c < 0)
		r = c;
	if (r == 0)
		r = cli_parser_operands(&p, 2, 2, &ops, &nops, err);
	if (r == 0)
		r = read_password(file, ops[1], &password, err);
	if (r == 0)
		r = lc_vm_set_password(ctx->root, ops[0], ops[1], password, err);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (r == 0 && !ctx->json && ctx->verbosity >= 0)
		printf("%s: password of '%s' set\n", ops[0], ops[1]);
	cli_parser_done(&p);
	return r;
}
