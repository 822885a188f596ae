/* qvm accounting [NAME] [--since T] [--until T] [--json | --csv]: the runs
 * of the VMs from the journal, as a table, CSV or JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* TIME: "now", "@SECONDS" (since the epoch), "-N[smhd]" (ago), or a local
 * date "YYYY-MM-DD[ HH:MM[:SS]]" ('T' for the blank too; a final 'Z':
 * UTC). */
static int parse_time(const char *s, int64_t *ret, util_err *err)
{
	static const char *const forms[] = { "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
		                             "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d" };
	int64_t now = util_realtime_ms();
	char *end = NULL;
	struct tm tm;

	if (util_streq(s, "now")) {
		*ret = now;
		return 0;
	}
	if (s[0] == '@' || s[0] == '-') {
		long long n = strtoll(s + 1, &end, 10);
		int64_t unit = 1000;

		if (end != s + 1 && s[0] == '-' && *end && !end[1] && strchr("smhd", *end)) {
			unit = *end == 's'   ? 1000
			       : *end == 'm' ? 60000
			       : *end == 'h' ? 3600000
			                     : 86400000;
			end++;
		}
		if (end != s + 1 && !*end && n >= 0) {
			*ret = s[0] == '@' ? (int64_t)n * 1000 : now - (int64_t)n * unit;
			return 0;
		}
	}
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(forms); i++) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, forms[i], &tm);
		if (end && (!*end || util_streq(end, "Z"))) {
			tm.tm_isdst = -1;
			*ret = (int64_t)(*end ? timegm(&tm) : mktime(&tm)) * 1000;
			return 0;
		}
	}
	return util_err_set(err, -EINVAL,
	                    "'%s' is not a time: give YYYY-MM-DD[ HH:MM[:SS]] (local; a final Z: "
	                    "UTC), @SECONDS, -N[smhd] (ago) or now",
	                    s);
}

static double num(json_t *o, const char *key)
{
	return json_real_value(json_object_get(o, key));
}

/* "2026-12-07T23:47:35Z", or "" for null. */
static const char *iso_utc(json_t *ms, char *buf, size_t len)
{
	time_t t = (time_t)(json_integer_value(ms) / 1000);
	struct tm tm;

	buf[0] = '\0';
	if (json_is_integer(ms) && gmtime_r(&t, &tm))
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static void print_csv(json_t *acc)
{
	json_t *vm, *run;
	size_t i, k;
	char a[32], b[32];

	printf("id,name,start,end,ended,hours,cpu_seconds,memory,memory_gib_hours\n");
	json_array_foreach (json_object_get(acc, "vms"), i, vm)
		json_array_foreach (json_object_get(vm, "runs"), k, run) {
			json_t *cpu = json_object_get(run, "cpu_seconds");

			printf("%" JSON_INTEGER_FORMAT ",%s,%s,%s,%s,%.6f,",
			       json_integer_value(json_object_get(vm, "id")),
			       json_string_value(json_object_get(vm, "name")),
			       iso_utc(json_object_get(run, "start_ms"), a, sizeof(a)),
			       iso_utc(json_object_get(run, "end_ms"), b, sizeof(b)),
			       json_string_value(json_object_get(run, "ended")) ?: "",
			       num(run, "hours"));
			if (json_is_real(cpu))
				printf("%.2f", json_real_value(cpu));
			printf(",%" JSON_INTEGER_FORMAT ",%.6f\n",
			       json_integer_value(json_object_get(run, "memory")),
			       num(run, "memory_gib_hours"));
		}
}

static void print_total(const char *label, json_t *t)
{
	char cpu[32];

	snprintf(cpu, sizeof(cpu), "%.2f%s", num(t, "cpu_seconds"),
	         json_is_false(json_object_get(t, "cpu_complete")) ? "+" : "");
	printf("%-26s %-19s %-19s %-10s %8.3f %9s %6s %9.4f\n", label, "", "", "", num(t, "hours"),
	       cpu, "", num(t, "memory_gib_hours"));
}

static void print_table(json_t *acc)
{
	json_t *vm, *run;
	size_t i, k;
	char a[32], b[32], cpu[32], mem[16], label[40];

	printf("%5s %-20s %-19s %-19s %-10s %8s %9s %6s %9s\n", "ID", "NAME", "START", "END",
	       "ENDED", "HOURS", "CPU-S", "MEM", "MEM-GiB-H");
	json_array_foreach (json_object_get(acc, "vms"), i, vm) {
		json_array_foreach (json_object_get(vm, "runs"), k, run) {
			json_t *cpu_s = json_object_get(run, "cpu_seconds");

			snprintf(cpu, sizeof(cpu), json_is_real(cpu_s) ? "%.2f" : "-",
			         json_real_value(cpu_s));
			printf("%5" JSON_INTEGER_FORMAT
			       " %-20s %-19s %-19s %-10s %8.3f %9s %6s %9.4f\n",
			       json_integer_value(json_object_get(vm, "id")),
			       json_string_value(json_object_get(vm, "name")),
			       cli_format_time(json_integer_value(json_object_get(run, "start_ms")),
			                       a, sizeof(a)),
			       json_is_integer(json_object_get(run, "end_ms"))
			               ? cli_format_time(
			                         json_integer_value(json_object_get(run, "end_ms")),
			                         b, sizeof(b))
			               : "(running)",
			       json_string_value(json_object_get(run, "ended")) ?: "-",
			       num(run, "hours"), cpu,
			       util_format_size(
			               (uint64_t)json_integer_value(json_object_get(run, "memory")),
			               mem, sizeof(mem)),
			       num(run, "memory_gib_hours"));
		}
		snprintf(label, sizeof(label), "%5" JSON_INTEGER_FORMAT " %s total",
		         json_integer_value(json_object_get(vm, "id")),
		         json_string_value(json_object_get(vm, "name")));
		if (json_array_size(json_object_get(vm, "runs")) > 1)
			print_total(label, json_object_get(vm, "total"));
	}
	print_total("TOTAL", json_object_get(acc, "total"));
}

int cli_cmd_accounting(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err)
{
	static const struct option opts[] = { { "since", required_argument, NULL, 's' },
		                              { "until", required_argument, NULL, 'u' },
		                              { "csv", no_argument, NULL, 'c' },
		                              { NULL, 0, NULL, 0 } };
	_cleanup_db_ lc_db *db = NULL;
	_cleanup_json_ json_t *acc = NULL;
	int64_t since = 0, until = 0;
	util_err terr = { 0 };
	bool csv = false;
	const char *arg;
	lc_vm *vm = NULL;
	cli_parser p;
	char **ops;
	int nops, r;

	cli_parser_init(&p, ctx, argc, argv, opts, "");
	while ((r = cli_parser_next(&p, &arg, err)) > 0) {
		if (r == 'c')
			csv = true;
		else if (parse_time(arg, r == 's' ? &since : &until, &terr) < 0)
			r = cli_usage(err, "%s: %s", r == 's' ? "--since" : "--until", terr.msg);
		if (r < 0)
			break;
	}
	if (r == 0)
		r = cli_parser_operands(&p, 0, 1, &ops, &nops, err);
	cli_parser_done(&p);
	if (r == 0 && csv && ctx->json)
		r = cli_usage(err, "--csv and --json exclude each other");
	if (r == 0 && until && since > until)
		r = cli_usage(err, "--since is after --until");
	if (r == 0)
		r = cli_open_db(ctx, 0, &db, err);
	/* a vm whose supervisor died with its QEMU gets its end recorded
	 * first, as list would record it */
	if (r == 0 && cli_reconcile_dead(ctx, db)) {
		lc_db_close(TAKE_PTR(db));
		r = cli_open_db(ctx, 0, &db, err);
	}
	if (r == 0 && nops == 1)
		r = lc_db_find_any(db, ops[0], &vm, err);
	if (r == 0)
		r = lc_accounting(db, vm ? vm->id : 0, since, until, &acc, err);
	if (r < 0)
		return r;
	if (ctx->json)
		*ret_json = TAKE_PTR(acc);
	else if (csv)
		print_csv(acc);
	else
		print_table(acc);
	return 0;
}
