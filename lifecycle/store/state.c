/* The VM state machine: names of states and LCM states, and which
 * operations each state allows (SPEC "VM states"; OpenNebula's model). */
#include <string.h>

#include "store.h"

static const char *const state_names[LC_STATE_COUNT] = {
	[LC_PENDING] = "PENDING",       [LC_HOLD] = "HOLD",
	[LC_ACTIVE] = "ACTIVE",         [LC_POWEROFF] = "POWEROFF",
	[LC_SUSPENDED] = "SUSPENDED",   [LC_STOPPED] = "STOPPED",
	[LC_UNDEPLOYED] = "UNDEPLOYED", [LC_FAILED] = "FAILED",
	[LC_UNKNOWN] = "UNKNOWN",       [LC_DONE] = "DONE",
};

static const char *const state_short[LC_STATE_COUNT] = {
	[LC_PENDING] = "pend",    [LC_HOLD] = "hold",      [LC_ACTIVE] = "actv",
	[LC_POWEROFF] = "poff",   [LC_SUSPENDED] = "susp", [LC_STOPPED] = "stop",
	[LC_UNDEPLOYED] = "unde", [LC_FAILED] = "fail",    [LC_UNKNOWN] = "unkn",
	[LC_DONE] = "done",
};

static const char *const lcm_names[LC_LCM_COUNT] = {
	[LC_LCM_NONE] = "",           [LC_LCM_PROLOG] = "PROLOG",
	[LC_LCM_BOOT] = "BOOT",       [LC_LCM_RUNNING] = "RUNNING",
	[LC_LCM_PAUSED] = "PAUSED",   [LC_LCM_SHUTDOWN] = "SHUTDOWN",
	[LC_LCM_HOTPLUG] = "HOTPLUG", [LC_LCM_SNAPSHOT] = "SNAPSHOT",
	[LC_LCM_SAVE] = "SAVE",       [LC_LCM_MIGRATE] = "MIGRATE",
	[LC_LCM_EPILOG] = "EPILOG",
};

static const char *const lcm_short[LC_LCM_COUNT] = {
	[LC_LCM_NONE] = "actv",    [LC_LCM_PROLOG] = "prol",   [LC_LCM_BOOT] = "boot",
	[LC_LCM_RUNNING] = "runn", [LC_LCM_PAUSED] = "paus",   [LC_LCM_SHUTDOWN] = "shut",
	[LC_LCM_HOTPLUG] = "hotp", [LC_LCM_SNAPSHOT] = "snap", [LC_LCM_SAVE] = "save",
	[LC_LCM_MIGRATE] = "migr", [LC_LCM_EPILOG] = "epil",
};

const char *lc_state_name(lc_state s)
{
	return s < LC_STATE_COUNT ? state_names[s] : "?";
}

const char *lc_lcm_name(lc_lcm l)
{
	return l < LC_LCM_COUNT ? lcm_names[l] : "?";
}

json_t *lc_lcm_json(lc_lcm l)
{
	return l == LC_LCM_NONE ? json_null() : json_string(lc_lcm_name(l));
}

const char *lc_short_name(lc_state s, lc_lcm l)
{
	if (s == LC_ACTIVE)
		return l < LC_LCM_COUNT ? lcm_short[l] : "?";
	return s < LC_STATE_COUNT ? state_short[s] : "?";
}

int lc_state_parse(const char *name, lc_state *ret, util_err *err)
{
	for (int i = 0; i < LC_STATE_COUNT; i++)
		if (util_streq(name, state_names[i])) {
			*ret = (lc_state)i;
			return 0;
		}
	return util_err_set(err, -EINVAL, "unknown state '%s'", name ? name : "");
}

int lc_lcm_parse(const char *name, lc_lcm *ret, util_err *err)
{
	for (int i = 0; i < LC_LCM_COUNT; i++)
		if (util_streq(name ? name : "", lcm_names[i])) {
			*ret = (lc_lcm)i;
			return 0;
		}
	return util_err_set(err, -EINVAL, "unknown lcm state '%s'", name);
}

/* A place in the state space: a STATE, or ACTIVE with one LCM state. */
typedef struct place {
	lc_state state;
	lc_lcm lcm;
} place;

/* one line each (clang-format would spread them over four) */
/* clang-format off */
#define P(s) { LC_##s, LC_LCM_NONE }
#define A(l) { LC_ACTIVE, LC_LCM_##l }
/* clang-format on */
#define MAX_PLACES 8

static const struct op_rule {
	const char *name;
	place allowed[MAX_PLACES];
	size_t n;
} op_rules[LC_OP_COUNT] = {
	[LC_OP_START] = { "start",
	                  { P(PENDING), P(HOLD), P(POWEROFF), P(UNDEPLOYED), P(FAILED),
	                    P(SUSPENDED), P(STOPPED) },
	                  7 },
	[LC_OP_HOLD] = { "hold", { P(PENDING) }, 1 },
	[LC_OP_RELEASE] = { "release", { P(HOLD) }, 1 },
	/* BOOT: a restart the policy has pending, which they cancel */
	[LC_OP_SHUTDOWN] = { "shutdown", { A(RUNNING), A(PAUSED), A(BOOT) }, 3 },
	/* SUSPENDED, STOPPED: with --discard-checkpoint */
	[LC_OP_POWEROFF] = { "poweroff",
	                     { A(RUNNING), A(PAUSED), A(SHUTDOWN), A(BOOT), P(SUSPENDED),
	                       P(STOPPED) },
	                     6 },
	[LC_OP_REBOOT] = { "reboot", { A(RUNNING) }, 1 },
	[LC_OP_PAUSE] = { "pause", { A(RUNNING) }, 1 },
	[LC_OP_UNPAUSE] = { "unpause", { A(PAUSED) }, 1 },
	[LC_OP_SUSPEND] = { "suspend", { A(RUNNING), A(PAUSED) }, 2 },
	[LC_OP_STOP] = { "stop", { A(RUNNING), A(PAUSED) }, 2 },
	[LC_OP_UNDEPLOY] = { "undeploy", { A(RUNNING), P(POWEROFF) }, 2 },
	[LC_OP_RESUME] = { "resume",
	                   { P(SUSPENDED), P(STOPPED), P(POWEROFF), P(UNDEPLOYED), A(PAUSED) },
	                   5 },
	[LC_OP_DELETE] = { "delete",
	                   { P(PENDING), P(HOLD), P(POWEROFF), P(UNDEPLOYED), P(FAILED), P(STOPPED),
	                     P(SUSPENDED) },
	                   7 },
	[LC_OP_RESIZE_COLD] = { "resize",
	                        { P(PENDING), P(HOLD), P(POWEROFF), P(UNDEPLOYED), P(FAILED) },
	                        5 },
	[LC_OP_UPDATE] = { "update",
	                   { P(PENDING), P(HOLD), P(ACTIVE), P(POWEROFF), P(SUSPENDED), P(STOPPED),
	                     P(UNDEPLOYED), P(FAILED) },
	                   8 },
	[LC_OP_REMOVE] = { "delete",
	                   { P(PENDING), P(HOLD), P(ACTIVE), P(POWEROFF), P(UNDEPLOYED), P(FAILED),
	                     P(STOPPED), P(SUSPENDED) },
	                   8 },
	[LC_OP_BOOT] = { "boot", { P(UNKNOWN), A(BOOT) }, 2 },
	[LC_OP_RECOVER] = { "recover", { P(ACTIVE), P(UNKNOWN), P(FAILED) }, 3 },
	/* not ACTIVE: its QEMU and supervisor were started under the old name */
	[LC_OP_RENAME] = { "rename",
	                   { P(PENDING), P(HOLD), P(POWEROFF), P(UNDEPLOYED), P(FAILED),
	                     P(SUSPENDED), P(STOPPED) },
	                   7 },
};

const char *lc_op_name(lc_op op)
{
	return op < LC_OP_COUNT ? op_rules[op].name : "?";
}

static void place_name(const place *p, char *buf, size_t len)
{
	if (p->state == LC_ACTIVE && p->lcm != LC_LCM_NONE)
		snprintf(buf, len, "ACTIVE/%s", lc_lcm_name(p->lcm));
	else
		snprintf(buf, len, "%s", lc_state_name(p->state));
}

int lc_state_check(lc_op op, const char *vm_name, lc_state state, lc_lcm lcm, util_err *err)
{
	const struct op_rule *rule;
	char list[512] = "", here[64];
	size_t used = 0;
	place now = { state, state == LC_ACTIVE ? lcm : LC_LCM_NONE };

	if (op >= LC_OP_COUNT)
		return util_err_set(err, -EINVAL, "unknown operation");
	rule = &op_rules[op];
	for (size_t i = 0; i < rule->n; i++) {
		const place *p = &rule->allowed[i];

		/* ACTIVE with no LCM state means "any ACTIVE state" */
		if (p->state == state &&
		    (p->state != LC_ACTIVE || p->lcm == LC_LCM_NONE || p->lcm == lcm))
			return 0;
	}
	for (size_t i = 0; i < rule->n; i++) {
		char one[64];

		place_name(&rule->allowed[i], one, sizeof(one));
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
		                         i == 0             ? ""
		                         : i + 1 == rule->n ? " or "
		                                            : ", ",
		                         one);
		if (used >= sizeof(list))
			break;
	}
	place_name(&now, here, sizeof(here));
	return util_err_set(err, -EPERM, "cannot %s '%s': it is %s; %s needs %s", rule->name,
	                    vm_name, here, rule->name, list);
}
