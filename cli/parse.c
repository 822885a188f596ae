/* Option parsing shared by every command: each command lists its own
 * options; the global ones are accepted anywhere on the line. */
#include <limits.h>
#include <stdarg.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "cli.h"

enum { OPT_ROOT = 0x1000, OPT_JSON, OPT_HELP };

static const struct option global_opts[] = {
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void print_trace(const char *line)
{
	fprintf(stderr, "qvm: trace: %s\n", line);
}

void cli_set_verbosity(cli_ctx *ctx, int verbosity)
{
	ctx->verbosity = verbosity;
	util_trace_set(verbosity > 0 ? print_trace : NULL);
}

int cli_usage(util_err *err, const char *fmt, ...)
{
	char msg[sizeof(err->msg)];
	va_list ap;

	/* via a copy: callers often pass err->msg itself as an argument */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(err->msg, msg, sizeof(msg));
	err->code = CLI_EUSAGE;
	err->qmp_class[0] = '\0';
	return CLI_EUSAGE;
}

void cli_parser_init(cli_parser *p, cli_ctx *ctx, int argc, char **argv, const struct option *opts,
                     const char *shortopts)
{
	size_t n = 0, g = UTIL_ARRAY_SIZE(global_opts);

	while (opts && opts[n].name)
		n++;
	memset(p, 0, sizeof(*p));
	p->ctx = ctx;
	p->argc = argc;
	p->argv = argv;
	p->longopts = util_xcalloc(n + g, sizeof(struct option));
	if (n)
		memcpy(p->longopts, opts, n * sizeof(struct option));
	memcpy(p->longopts + n, global_opts, g * sizeof(struct option));
	/* leading ':' reports a missing argument apart from an unknown option */
	p->shortopts = util_xasprintf(":%sqvh", shortopts ? shortopts : "");
	optind = 0; /* glibc: a full reset for this new argument vector */
	opterr = 0;
}

void cli_parser_done(cli_parser *p)
{
	free(p->longopts);
	free(p->shortopts);
	p->longopts = NULL;
	p->shortopts = NULL;
}

static void print_help(const cli_command *cmd)
{
	printf("usage: qvm %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
	if (cmd->help)
		printf("\n%s", cmd->help);
	printf("\nglobal options: --root DIR, --json, -q, -v, --help\n");
}

int cli_parser_next(cli_parser *p, const char **ret_arg, util_err *err)
{
	for (;;) {
		int c = getopt_long(p->argc, p->argv, p->shortopts, p->longopts, NULL);

		switch (c) {
		case -1:
			return 0;
		case OPT_ROOT:
			p->ctx->root = optarg;
			continue;
		case OPT_JSON:
			p->ctx->json = true;
			continue;
		case 'q':
			cli_set_verbosity(p->ctx, -1);
			continue;
		case 'v':
			cli_set_verbosity(p->ctx, 1);
			continue;
		case 'h':
			print_help(p->ctx->cmd);
			cli_parser_done(p);
			exit(0);
		case ':':
			return cli_usage(err, "option '%s' needs a value", p->argv[optind - 1]);
		case '?':
			if (optopt)
				return cli_usage(err, "unknown option '-%c'", optopt);
			return cli_usage(err, "unknown option '%s'", p->argv[optind - 1]);
		default:
			if (optarg) {
				char name[64];

				snprintf(name, sizeof(name), "--%s",
				         cli_option_name(p->longopts, c));
				if (cli_check_arg(p->ctx->cmd, name, optarg, err) < 0)
					return cli_usage(err, "%s", err->msg);
			}
			*ret_arg = optarg;
			return c;
		}
	}
}

/* The name the usage line gives the operand at index (0-based), as
 * "NAME" in "NAME DISK_ID [--force]" or "TAG" in "NAME [TAG]": options and
 * the word after an option that takes a value are not operands, a word
 * ending in "..." names every operand from there on, and a '|' between
 * words ends the first alternative. Empty when it names none. */
static void operand_name(const char *usage, int index, char *buf, size_t len)
{
	int seen = 0, depth = 0;
	bool after_option = false;

	buf[0] = '\0';
	for (const char *w = usage ? usage : ""; *w;) {
		size_t n = strcspn(w, " ");
		const char *word = w + strspn(w, "[");
		size_t wn = n - (size_t)(word - w);
		bool option = word[0] == '-';

		while (wn && word[wn - 1] == ']')
			wn--;
		if (depth == 0 && n == 1 && w[0] == '|')
			return;
		if (!option && !after_option && wn && word[0] != '|') {
			bool rest = wn > 3 && !memcmp(word + wn - 3, "...", 3);

			if (seen++ == index || rest) {
				snprintf(buf, len, "%.*s", (int)wn, word);
				return;
			}
		}
		for (size_t i = 0; i < n; i++)
			depth += w[i] == '[' ? 1 : w[i] == ']' ? -1 : 0;
		after_option = option && !memchr(w, ']', n) && !memchr(w, '|', n);
		w += n;
		w += strspn(w, " ");
	}
}

/* The command's usage line, or for a subcommand ("net create", whose
 * argv[0] is "create") its own alternative, without its name. */
static const char *usage_of(const cli_parser *p, char *buf, size_t len)
{
	const char *u = p->ctx && p->ctx->cmd ? p->ctx->cmd->usage : NULL;
	size_t name_len = p->argc > 0 ? strlen(p->argv[0]) : 0;

	if (!u || !strstr(u, " | "))
		return u;
	for (const char *alt = u; alt; alt = strstr(alt, " | ") ? strstr(alt, " | ") + 3 : NULL) {
		const char *end = strstr(alt, " | ");
		size_t n = end ? (size_t)(end - alt) : strlen(alt);

		if (name_len && n > name_len && strncmp(alt, p->argv[0], name_len) == 0 &&
		    alt[name_len] == ' ') {
			snprintf(buf, len, "%.*s", (int)(n - name_len - 1), alt + name_len + 1);
			return buf;
		}
	}
	return u; /* alternatives of options, as "--size S | --image I" */
}

int cli_parser_operands(cli_parser *p, int min, int max, char ***ret_operands, int *ret_count,
                        util_err *err)
{
	int n = p->argc - optind;
	char usage[512];

	if (n < min) {
		char name[64];

		operand_name(usage_of(p, usage, sizeof(usage)), n, name, sizeof(name));
		return name[0] ? cli_usage(err, "missing argument %s", name)
		               : cli_usage(err, "missing argument");
	}
	if (max >= 0 && n > max)
		return cli_usage(err, "unexpected argument '%s'", p->argv[optind + max]);
	for (int i = 0; i < n; i++) {
		char name[64];

		operand_name(usage_of(p, usage, sizeof(usage)), i, name, sizeof(name));
		if (name[0] && cli_check_arg(p->ctx->cmd, name, p->argv[optind + i], err) < 0)
			return cli_usage(err, "%s", err->msg);
	}
	*ret_operands = p->argv + optind;
	*ret_count = n;
	return 0;
}

int cli_parse_operands(cli_ctx *ctx, int argc, char **argv, int min, int max, char ***ret_operands,
                       int *ret_count, util_err *err)
{
	cli_parser p;
	const char *arg;
	char **ops;
	int n, r;

	cli_parser_init(&p, ctx, argc, argv, NULL, NULL);
	r = cli_parser_next(&p, &arg, err);
	if (r == 0)
		r = cli_parser_operands(&p, min, max, &ops, &n, err);
	cli_parser_done(&p);
	if (r < 0)
		return r;
	*ret_operands = ops;
	if (ret_count)
		*ret_count = n;
	return 0;
}

int cli_run_sub(cli_ctx *ctx, int argc, char **argv, const cli_sub *subs, size_t n,
                json_t **ret_json, util_err *err)
{
	_cleanup_free_ char *names = NULL;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		cli_parser p;
		const char *arg;

		cli_parser_init(&p, ctx, argc, argv, NULL, NULL);
		cli_parser_next(&p, &arg, err); /* prints the help and exits */
		cli_parser_done(&p);
	}
	for (size_t i = 0; argc >= 2 && i < n; i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].run(ctx, argc - 1, argv + 1, ret_json, err);
	for (size_t i = 0; i < n; i++)
		util_append(&names, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", subs[i].name);
	if (argc < 2)
		return cli_usage(err, "%s needs a subcommand: %s", argv[0], names);
	return cli_usage(err, "unknown %s subcommand '%s' (use %s)", argv[0], argv[1], names);
}

const char *cli_option_name(const struct option *opts, int c)
{
	for (const struct option *o = opts; o && o->name; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

int cli_option_allowed(const cli_ctx *ctx, const struct option *opts, int c,
                       const char *const *allowed, util_err *err)
{
	const char *name = cli_option_name(opts, c);

	if (util_strv_contains(allowed, name))
		return 0;
	return cli_usage(err, "option '--%s' does not apply to %s", name, ctx->cmd->name);
}

int cli_lock_timeout(int *ret_ms, util_err *err)
{
	const char *env = getenv("QVM_LOCK_TIMEOUT_MS");
	uint64_t ms;

	if (!env || !*env)
		return 0;
	if (util_parse_uint(env, 1, 3600000, &ms, err) < 0)
		return cli_usage(err, "invalid QVM_LOCK_TIMEOUT_MS: %s", err->msg);
	*ret_ms = (int)ms;
	return 0;
}

void cli_print_field(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-11s ", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

const char *cli_format_duration(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms / 1000;

	if (ms <= 0)
		snprintf(buf, len, "-");
	else if (s < 60)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600),
		         (long long)(s % 3600 / 60));
	else
		snprintf(buf, len, "%lldd%02lldh", (long long)(s / 86400),
		         (long long)(s % 86400 / 3600));
	return buf;
}

const char *cli_format_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "-");
	return buf;
}

int cli_absolute_path(const char *path, const char *what, char **ret, util_err *err)
{
	char cwd[PATH_MAX];

	if (!*path)
		return cli_usage(err, "%s is empty", what);
	if (lc_path_check_protocol(path, what, err) < 0)
		return cli_usage(err, "%s", err->msg);
	if (path[0] == '/') {
		*ret = util_xstrdup(path);
		return 0;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return util_err_errno(err, -errno, "cannot resolve %s '%s'", what, path);
	*ret = util_xasprintf("%s/%s", cwd, path);
	return 0;
}

char **cli_disk_roots(const cli_ctx *ctx)
{
	const char *env = getenv("QVM_DISK_ROOTS");
	_cleanup_free_ char *copy = util_xstrdup(env ? env : "");
	util_strv sv = { 0 };
	char *save = NULL;

	util_strv_pushf(&sv, "%s/images", ctx->root);
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
		util_strv_push(&sv, dir);
	return util_strv_steal(&sv);
}

int cli_open_db(const cli_ctx *ctx, unsigned flags, lc_db **ret_db, util_err *err)
{
	int r = lc_db_open(ctx->root, flags, ret_db, err);

	if (r < 0)
		return util_err_prefix(err, "cannot open the vm database in '%s'", ctx->root);
	if (lc_db_notice(*ret_db) && ctx->verbosity >= 0)
		fprintf(stderr, "qvm: note: %s\n", lc_db_notice(*ret_db));
	return 0;
}
