/* The syntax of every command's arguments, checked by the parser before a
 * command does any work: a malformed one is a usage error (exit 2). */
#include <string.h>

#include "cli.h"

static int check_vm(const char *kind, const char *v, util_err *err)
{
	(void)kind;
	return util_validate_name(v, "vm name", err); /* an id is digits: a name too */
}

static int check_image_name(const char *kind, const char *v, util_err *err)
{
	(void)kind;
	return util_validate_name(v, "image name", err);
}

/* a new tag: a name that does not read as an id */
static int check_new_tag(const char *kind, const char *v, util_err *err)
{
	int r = util_validate_name(v, "snapshot tag", err);

	(void)kind;
	if (r == 0 && util_all_digits(v))
		r = util_err_set(err, -EINVAL,
		                 "snapshot tag '%s' is all digits, which names snapshots by id; "
		                 "add a letter",
		                 v);
	return r;
}

static int check_snap_ref(const char *kind, const char *v, util_err *err)
{
	(void)kind;
	return util_validate_name(v, "snapshot tag or id", err);
}

static int check_size(const char *kind, const char *v, util_err *err)
{
	uint64_t n;

	(void)kind;
	return util_parse_size(v, &n, err);
}

static int check_id(const char *kind, const char *v, util_err *err)
{
	uint64_t n;

	if (util_parse_uint(v, 0, (util_streq(kind, "NIC_ID") ? LC_NICS_MAX : LC_DISKS_MAX) * 64,
	                    &n, err) < 0)
		return util_err_set(err, -EINVAL,
		                    "'%s' is not a %s id: give the number qvm show lists", v,
		                    util_streq(kind, "NIC_ID") ? "nic" : "disk");
	return 0;
}

static int check_seconds(const char *kind, const char *v, util_err *err)
{
	uint64_t n;

	(void)kind;
	return util_parse_uint(v, 1, 86400, &n, err);
}

static int check_path(const char *kind, const char *v, util_err *err)
{
	(void)kind;
	if (!*v)
		return util_err_set(err, -EINVAL, "the path is empty");
	return util_validate_printable(v, "the path", err);
}

/* --image: a file (an absolute path) or a store image's name */
static int check_image(const char *kind, const char *v, util_err *err)
{
	return v[0] == '/' ? check_path(kind, v, err) : check_image_name(kind, v, err);
}

static int check_format(const char *kind, const char *v, util_err *err)
{
	(void)kind;
	if (util_streq(v, "qcow2") || util_streq(v, "raw"))
		return 0;
	return util_err_set(err, -EINVAL, "image format '%s' is not supported (use qcow2 or raw)",
	                    v);
}

static int check_bus(const char *kind, const char *v, util_err *err)
{
	lc_bus bus;

	(void)kind;
	return lc_bus_parse(v, &bus, err);
}

static int check_sha256(const char *kind, const char *v, util_err *err)
{
	(void)kind;
	if (util_sha256_valid_hex(v))
		return 0;
	return util_err_set(err, -EINVAL, "'%s' is not 64 hex digits", v);
}

static int check_update_pair(const char *kind, const char *v, util_err *err)
{
	(void)kind;
	return lc_update_pair_check(v, err);
}

static int check_dest(const char *kind, const char *v, util_err *err)
{
	(void)kind;
	return lc_migrate_dest_check(v, err);
}

static int check_net(const char *kind, const char *v, util_err *err)
{
	return lc_net_arg_check(kind, v, err);
}

/* The arguments of the commands on vms and images (operands as the usage
 * lines name them, options by their long name). */
static const cli_arg common_args[] = {
	{ "NAME", check_vm },
	{ "NEW", check_vm },
	{ "DISK_ID", check_id },
	{ "NIC_ID", check_id },
	{ "TAG", check_new_tag },
	{ "TAG|ID", check_snap_ref },
	{ "SNAP", check_snap_ref },
	{ "SIZE", check_size },
	{ "IMAGE_NAME", check_image_name },
	{ "N", check_image_name },
	{ "KEY=VALUE...", check_update_pair },
	{ "ISO", check_path },
	{ "PATH|URL", check_path },
	{ "--size", check_size },
	{ "--image", check_image },
	{ "--bus", check_bus },
	{ "--format", check_format },
	{ "--timeout", check_seconds },
	{ "--name", check_image_name },
	{ "--sha256", check_sha256 },
	{ "--ca", check_path },
	{ "--max-size", check_size },
	{ "--stall-timeout", check_seconds },
	{ "--network", check_net },
	{ "--mac", check_net },
	{ "--ip", check_net },
	{ "--model", check_net },
	{ "DEST", check_dest },
	{ "--remote-root", check_path },
	{ "--remote-qvm", check_path },
	{ NULL, NULL },
};

/* qvm net: NAME is a network's */
static const cli_arg net_args[] = {
	{ "NAME", check_net },     { "--bridge", check_net },
	{ "--uplink", check_net }, { "--vlan", check_net },
	{ "--mtu", check_net },    { "--range", check_net },
	{ "--prefix", check_net }, { "--gateway", check_net },
	{ "--dns", check_net },    { NULL, NULL },
};

static const cli_arg *args_of(const cli_command *cmd)
{
	if (!cmd || !strncmp(cmd->name, "__", 2) || util_streq(cmd->name, "create"))
		return NULL; /* create checks its whole definition (lc_vmdef_validate) */
	return util_streq(cmd->name, "net") ? net_args : common_args;
}

int cli_check_arg(const cli_command *cmd, const char *arg, const char *value, util_err *err)
{
	const char *kind = arg[0] == '-' ? arg + 2 : arg;

	for (const cli_arg *a = args_of(cmd); a && a->arg; a++) {
		if (!util_streq(a->arg, arg))
			continue;
		if (util_streq(kind, "NAME") && a->check == check_net)
			kind = "network";
		if (a->check(kind, value, err) < 0)
			return util_err_prefix(err, "%.*s", (int)strcspn(arg, "."), arg);
		return 0;
	}
	return 0;
}
