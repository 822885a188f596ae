/* cli: the command table, option parsing and output. The only folder that
 * prints to stdout or exits; every command is a thin layer over lifecycle/. */
#ifndef QVM_CLI_H
#define QVM_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include <jansson.h>

#include "lifecycle/lifecycle.h"
#include "util/util.h"

/* A usage error (exit status 2) rather than a failed operation (1). */
#define CLI_EUSAGE (-4095)

typedef struct cli_command cli_command;

typedef struct cli_ctx {
	const cli_command *cmd; /* the command being run, for its --help */
	const char *root;       /* --root, QVM_ROOT, or /var/lib/qvm */
	bool json;              /* --json: print the command's JSON result */
	int verbosity;          /* -1 with -q, 0, 1 with -v */
	/* cli_disk_roots(), for the commands that start QEMU */
	const char *const *disk_roots;
} cli_ctx;

/* A command's handler: parses its own options with cli_parser, does the
 * work, and either prints a table (without --json) or hands back a new JSON
 * value in *ret_json for cli_main() to print. Returns 0, a negative errno
 * (exit 1) or CLI_EUSAGE (exit 2) with err filled. */
typedef int (*cli_handler)(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);

struct cli_command {
	const char *name;
	cli_handler run;
	const char *usage;   /* arguments after the name: "NAME [--hard]" */
	const char *summary; /* one line for `qvm --help` */
	const char *help;    /* option lines for `qvm CMD --help`, or NULL */
};

/* ---- arguments, checked before any work (cli/args.c) --------------------- */

/* One argument and the check of its syntax: an operand as the usage line
 * names it ("NAME", "TAG|ID", "KEY=VALUE..."; a word ending in "..." is
 * every operand from there on), or an option by its long name ("--size").
 * check gets the operand's word or the option's name without "--", and
 * returns 0 or a negative errno with err saying what is wrong. */
typedef struct cli_arg {
	const char *arg;
	int (*check)(const char *kind, const char *value, util_err *err);
} cli_arg;

/* Check value of argument arg of cmd against cmd's table of arguments: 0
 * (also for an argument the table does not list), or a negative errno with
 * a message naming the argument (the parser makes it a usage error).
 * cli_parser_next and cli_parser_operands call
 * it for every option value and operand, so each command has its arguments
 * checked before it opens the journal or does anything else. */
int cli_check_arg(const cli_command *cmd, const char *arg, const char *value, util_err *err);

/* ---- option parsing shared by every command ----------------------------- */

typedef struct cli_parser {
	cli_ctx *ctx;
	int argc;
	char **argv;
	struct option *longopts; /* the command's, then the global ones */
	char *shortopts;
} cli_parser;

/* Parse argv (argv[0] is the command name) with the command's options
 * (NULL-name-terminated) and short options; the global options --root,
 * --json, -q, -v and --help are accepted anywhere. */
void cli_parser_init(cli_parser *p, cli_ctx *ctx, int argc, char **argv, const struct option *opts,
                     const char *shortopts);
/* The next command option's val with its argument in *ret_arg; 0 when the
 * options end (p->argv[optind...] are then the operands); CLI_EUSAGE on an
 * unknown option or missing argument. --help prints help and exits 0. */
int cli_parser_next(cli_parser *p, const char **ret_arg, util_err *err);
/* The operands after the options; exactly min..max of them or CLI_EUSAGE. */
int cli_parser_operands(cli_parser *p, int min, int max, char ***ret_operands, int *ret_count,
                        util_err *err);
void cli_parser_done(cli_parser *p);

/* --memory SIZE (cmd_define.c): a bare number is MiB, as for QEMU's -m;
 * a usage error otherwise. */
int cli_parse_memory(const char *arg, uint64_t *ret, util_err *err);

/* A command made of subcommands (image, template): `qvm CMD --help`
 * prints its help, and otherwise argv[1] names the subcommand of subs[n]
 * that runs with the rest; a missing or unknown one is a usage error that
 * lists them. */
typedef struct cli_sub {
	const char *name;
	cli_handler run;
} cli_sub;
int cli_run_sub(cli_ctx *ctx, int argc, char **argv, const cli_sub *subs, size_t n,
                json_t **ret_json, util_err *err);

/* The whole parse of a command without options of its own: min..max
 * operands (pointers into argv) and their count (ret_count may be NULL). */
int cli_parse_operands(cli_ctx *ctx, int argc, char **argv, int min, int max, char ***ret_operands,
                       int *ret_count, util_err *err);
/* The long name of option c (a val of opts), for messages; "?" if none. */
const char *cli_option_name(const struct option *opts, int c);
/* 0 when option c (a val of opts) is one of allowed (a NULL-terminated
 * list of option names), else a usage error naming it and the command: for
 * a parser shared by commands that take different options. */
int cli_option_allowed(const cli_ctx *ctx, const struct option *opts, int c,
                       const char *const *allowed, util_err *err);
/* QVM_LOCK_TIMEOUT_MS, how long a command waits for another qvm working on
 * the VM (tests shorten it): *ret_ms is left alone when it is not set. */
int cli_lock_timeout(int *ret_ms, util_err *err);

/* -q (-1), nothing (0) or -v (1); -v also prints what the layers below
 * trace (QMP commands, replies and events, journal records) on stderr. */
void cli_set_verbosity(cli_ctx *ctx, int verbosity);

/* After a command that moves a vm: print "NAME: STATE[/LCM]", the state
 * the command left (left, filled through lc_run_opts.ret_left; DONE when
 * the vm is gone from the live vms), and "(since then STATE[/LCM])" when
 * something else, as a command queued on the vm's lock, has changed it
 * since; or hand the vm back as JSON, as it is now, with "left": {state,
 * lcm}, the state the command left it in. */
int cli_report_state(cli_ctx *ctx, const char *name, const lc_vm_left *left, json_t **ret_json,
                     util_err *err);

/* Set a usage error: returns CLI_EUSAGE. */
int cli_usage(util_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- output helpers ------------------------------------------------------ */

/* One "KEY        value" line, the key in a column of its own: how show,
 * host, net show and image show print their fields. */
void cli_print_field(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "3m12s", "2d4h", "-" for 0. */
const char *cli_format_duration(int64_t ms, char *buf, size_t len);
/* "2026-11-22 05:09:14" in local time, "-" for 0. */
const char *cli_format_time(int64_t ms, char *buf, size_t len);

/* Allowed folders for disk, kernel and ISO paths: <root>/images plus
 * QVM_DISK_ROOTS (colon-separated). A new NULL-terminated vector. */
char **cli_disk_roots(const cli_ctx *ctx);

/* A user-typed path: made absolute against the current folder, so that
 * `--kernel ./vmlinuz` works; the policy check happens in lifecycle/. A
 * pseudo-path (nbd:..., json:...) is refused first: made absolute it would
 * be refused as a missing file, which hides the reason. *ret is new; a relative path is joined to
 * the current folder as text (no link on the way is resolved: the path policy refuses links). */
int cli_absolute_path(const char *path, const char *what, char **ret, util_err *err);

/* Wait for the VM lock of name_or_id as every command that changes a VM
 * does, before it opens the journal for writing (the lock's holder may
 * need the journal to finish); QVM_LOCK_TIMEOUT_MS or 15 s. */
int cli_lock_vm(cli_ctx *ctx, const char *name_or_id, int *ret_lock, util_err *err);

/* The definition in file ('-': stdin) under name, which wins over the
 * file's (a dump names the vm it came from), and with no uuid (the new vm
 * gets its own): def is cleared and filled; a definition the checks
 * refuse is a usage error. */
int cli_read_definition(const char *file, const char *name, lc_vmdef *def, util_err *err);

/* After an update or edit: "web: kernel, append take effect at the next
 * start (it is ACTIVE/RUNNING)" for the keys in later (borrowed), the
 * ones the running vm uses only from its next start; nothing if none. */
void cli_print_later(const lc_vm *vm, json_t *later);

/* Open the database (LC_DB_* flags) with the error prefixed. */
int cli_open_db(const cli_ctx *ctx, unsigned flags, lc_db **ret_db, util_err *err);
/* Open the database to read one VM (show, history, dump, argv): a name no
 * live VM has finds the newest DONE one of that name, and an ACTIVE VM that
 * nothing drives is settled first (as list does), so no read shows a ghost.
 * On success *ret_db is the caller's to close. */
int cli_open_vm_to_read(cli_ctx *ctx, const char *name_or_id, lc_db **ret_db, lc_vm **ret_vm,
                        util_err *err);

/* ---- the commands (cli/cmd_*.c) ------------------------------------------ */

int cli_cmd_create(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_dump(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_update(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_hold(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_release(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_show(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_history(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_argv(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_host(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_start(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_shutdown(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_poweroff(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_reboot(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_pause(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_suspend(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_stop(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_resume(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_undeploy(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_unpause(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_recover(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_boot(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_console(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_net(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_nic_attach(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_nic_detach(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_disk_attach(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_disk_detach(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_disk_resize(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_cdrom_insert(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_cdrom_eject(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_disk_snapshot_create(cli_ctx *ctx, int argc, char **argv, json_t **ret_json,
                                 util_err *err);
int cli_cmd_disk_snapshot_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json,
                               util_err *err);
int cli_cmd_disk_snapshot_revert(cli_ctx *ctx, int argc, char **argv, json_t **ret_json,
                                 util_err *err);
int cli_cmd_disk_snapshot_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json,
                                 util_err *err);
int cli_cmd_image(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_disk_saveas(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_snapshot_create(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_snapshot_revert(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_snapshot_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_snapshot_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
/* A VM's snapshot tree ("items" of lc_vm.snapshots), current marked. */
void cli_print_snapshots(json_t *items, json_int_t current);
/* The host's side (cmd_host.c): the scheduler, scheduled actions, host
 * boot, shutdown and set; `host` itself dispatches there. */
int cli_cmd_scheduler(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_schedule(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_schedule_list(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_schedule_delete(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_host_any(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_exec(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_set_password(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_resize(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_template(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_edit(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_rename(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
/* Schedule entries (lc_sched_json's, borrowed) as a table, with their VM
 * when with_vm: schedule-list's, and show's SCHEDULE section (cmd_look.c). */
void cli_print_schedule_entries(json_t *entries, bool with_vm);
int cli_cmd_supervise(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
/* migrate, and the hidden __receive it runs on the destination (cmd_migrate.c) */
int cli_cmd_migrate(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_receive(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);

/* ---- seeing the host and its VMs (cmd_metrics.c, metrics_http.c) ------- */

int cli_cmd_metrics(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_accounting(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_vnc(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
int cli_cmd_top(cli_ctx *ctx, int argc, char **argv, json_t **ret_json, util_err *err);
/* One scrape (a new string in *ret), made for each request. */
typedef int (*cli_scrape_fn)(const cli_ctx *ctx, char **ret, util_err *err);
/* Serve scrape()'s text (Prometheus's format, version 0.0.4) at
 * http://SPEC/metrics until SIGTERM or SIGINT (then 0); SPEC is ADDR:PORT
 * or [ADDR6]:PORT, numeric. The scrape is the caller's, so the server
 * knows nothing of what it serves. */
int cli_metrics_serve(const cli_ctx *ctx, const char *spec, cli_scrape_fn scrape, util_err *err);
/* Settle the ACTIVE VMs of db nothing may drive (a dead supervisor, an
 * abandoned shutdown, hotplug or snapshot), as list does (cmd_look.c):
 * true when something changed, so that the caller reads db again. */
bool cli_reconcile_dead(cli_ctx *ctx, lc_db *db);
/* A /proc/meminfo field in KiB ("MemTotal:"), 0 when unknown. */
uint64_t cli_meminfo_kib(const char *key);

/* The entry point: global options, dispatch, printing, exit status. */
int cli_main(int argc, char **argv);

#endif
