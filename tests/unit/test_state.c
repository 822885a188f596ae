/* The state machine: which operations each state allows, and the message. */
#include <string.h>

#include "lifecycle/lifecycle.h"
#include "tap.h"

/* Does the "needs A, B or C" list of msg name place (state, lcm)? "ACTIVE"
 * alone names every ACTIVE state. */
static bool needs_names(const char *msg, lc_state state, lc_lcm lcm)
{
	const char *needs = strstr(msg, " needs ");
	char one[64];

	if (!needs)
		return false;
	needs += 7;
	while (*needs) {
		size_t n = strcspn(needs, ",");
		const char * or = strstr(needs, " or ");

		if (or &&(size_t)(or -needs) < n)
			n = (size_t)(or -needs);
		snprintf(one, sizeof(one), "%.*s", (int)n, needs);
		if (state == LC_ACTIVE && util_streq(one, "ACTIVE"))
			return true;
		if (state == LC_ACTIVE && strncmp(one, "ACTIVE/", 7) == 0 &&
		    util_streq(one + 7, lc_lcm_name(lcm)))
			return true;
		if (state != LC_ACTIVE && util_streq(one, lc_state_name(state)))
			return true;
		needs += n;
		needs += strspn(needs, ", ");
		if (strncmp(needs, "or ", 3) == 0)
			needs += 3;
	}
	return false;
}

/* For every operation and every place, a refusal's message lists exactly
 * the places the check accepts: one table says both. */
static void test_messages_match_table(void)
{
	util_err err = { 0 };
	int wrong = 0;

	for (int op = 0; op < LC_OP_COUNT; op++)
		for (int st = 0; st < LC_STATE_COUNT; st++)
			for (int l = 0; l < (st == LC_ACTIVE ? LC_LCM_COUNT : 1); l++) {
				/* the refusal of one place the op does not take */
				char refused[2048] = "";

				for (int s2 = 0; s2 < LC_STATE_COUNT && !*refused; s2++)
					for (int l2 = 0; l2 < (s2 == LC_ACTIVE ? LC_LCM_COUNT : 1);
					     l2++)
						if (lc_state_check((lc_op)op, "v", (lc_state)s2,
						                   (lc_lcm)l2, &err) < 0) {
							snprintf(refused, sizeof(refused), "%s",
							         err.msg);
							break;
						}
				if (!*refused)
					continue;
				bool takes = lc_state_check((lc_op)op, "v", (lc_state)st, (lc_lcm)l,
				                            &err) == 0;
				if (takes != needs_names(refused, (lc_state)st, (lc_lcm)l)) {
					diag("%s: %s/%s taken %d, in '%s'", lc_op_name((lc_op)op),
					     lc_state_name((lc_state)st), lc_lcm_name((lc_lcm)l),
					     takes, refused);
					wrong++;
				}
			}
	is_int(wrong, 0, "every refusal lists exactly the states its operation takes");
	ok(lc_state_check(LC_OP_REMOVE, "web", LC_ACTIVE, LC_LCM_RUNNING, &err) == 0,
	   "the delete command takes a running vm (it stops it first)");
	ok(lc_state_check(LC_OP_REMOVE, "web", LC_DONE, LC_LCM_NONE, &err) == -EPERM &&
	           strstr(err.msg, "delete needs PENDING, HOLD, ACTIVE, POWEROFF"),
	   "... and its refusal of DONE says so: %s", err.msg);
}

int main(void)
{
	util_err err = { 0 };
	lc_state s;
	lc_lcm l;

	ok(lc_state_check(LC_OP_START, "web", LC_PENDING, LC_LCM_NONE, &err) == 0,
	   "start from PENDING");
	ok(lc_state_check(LC_OP_START, "web", LC_HOLD, LC_LCM_NONE, &err) == 0, "start from HOLD");
	ok(lc_state_check(LC_OP_START, "web", LC_POWEROFF, LC_LCM_NONE, &err) == 0,
	   "start from POWEROFF");
	ok(lc_state_check(LC_OP_START, "web", LC_FAILED, LC_LCM_NONE, &err) == 0,
	   "start from FAILED");
	ok(lc_state_check(LC_OP_START, "web", LC_ACTIVE, LC_LCM_RUNNING, &err) == -EPERM,
	   "start refused while RUNNING");
	is_str(err.msg,
	       "cannot start 'web': it is ACTIVE/RUNNING; start needs PENDING, HOLD, POWEROFF, UNDEPLOYED, FAILED, SUSPENDED or STOPPED",
	       "message names the state and the states needed");
	ok(lc_state_check(LC_OP_PAUSE, "web", LC_ACTIVE, LC_LCM_PAUSED, &err) == -EPERM,
	   "pause of PAUSED refused");
	ok(lc_state_check(LC_OP_UNPAUSE, "web", LC_ACTIVE, LC_LCM_PAUSED, &err) == 0,
	   "unpause of PAUSED");
	ok(lc_state_check(LC_OP_HOLD, "web", LC_PENDING, LC_LCM_NONE, &err) == 0, "hold PENDING");
	ok(lc_state_check(LC_OP_HOLD, "web", LC_POWEROFF, LC_LCM_NONE, &err) == -EPERM,
	   "hold POWEROFF refused");
	ok(lc_state_check(LC_OP_RELEASE, "web", LC_HOLD, LC_LCM_NONE, &err) == 0, "release HOLD");
	ok(lc_state_check(LC_OP_DELETE, "web", LC_ACTIVE, LC_LCM_RUNNING, &err) == -EPERM,
	   "delete of a running vm refused (for now): %s", err.msg);
	ok(lc_state_check(LC_OP_DELETE, "web", LC_DONE, LC_LCM_NONE, &err) == -EPERM,
	   "delete of DONE refused");
	ok(lc_state_check(LC_OP_UPDATE, "web", LC_ACTIVE, LC_LCM_SNAPSHOT, &err) == 0,
	   "update allowed in any ACTIVE state");
	ok(lc_state_check(LC_OP_RESUME, "web", LC_ACTIVE, LC_LCM_PAUSED, &err) == 0,
	   "resume PAUSED");
	ok(lc_state_check(LC_OP_RESUME, "web", LC_ACTIVE, LC_LCM_RUNNING, &err) == -EPERM,
	   "resume RUNNING refused");

	test_messages_match_table();
	is_str(lc_short_name(LC_ACTIVE, LC_LCM_RUNNING), "runn", "short runn");
	is_str(lc_short_name(LC_POWEROFF, LC_LCM_NONE), "poff", "short poff");
	is_str(lc_short_name(LC_ACTIVE, LC_LCM_HOTPLUG), "hotp", "short hotp");
	is_str(lc_short_name(LC_PENDING, LC_LCM_NONE), "pend", "short pend");
	for (int i = 0; i < LC_STATE_COUNT; i++)
		ok(lc_state_parse(lc_state_name((lc_state)i), &s, &err) == 0 && s == (lc_state)i,
		   "state %s round-trips", lc_state_name((lc_state)i));
	for (int i = 0; i < LC_LCM_COUNT; i++)
		ok(lc_lcm_parse(lc_lcm_name((lc_lcm)i), &l, &err) == 0 && l == (lc_lcm)i,
		   "lcm '%s' round-trips", lc_lcm_name((lc_lcm)i));
	ok(lc_state_parse("RUNNING", &s, &err) < 0, "RUNNING is not a STATE");
	return done_testing();
}
