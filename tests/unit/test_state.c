/* The state machine: which operations each state allows, and the message. */
#include <string.h>

#include "lifecycle/lifecycle.h"
#include "tap.h"

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
	       "cannot start 'web': it is ACTIVE/RUNNING; start needs PENDING, HOLD, POWEROFF, UNDEPLOYED or FAILED",
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
