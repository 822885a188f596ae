/* One command on one VM, from hold to release: the skeleton every
 * operation shares (hold, load, check, act, record, let go). An operation
 * gives what differs — its verb, the states it takes, whether it needs
 * QEMU, its action — and works through the lc_cmd it is handed: the VM as
 * last loaded, its records, its QMP connection. */
#include <string.h>

#include "run.h"
#include "vm_command.h"

int lc_cmd_hold(lc_cmd *c, const char *root, const char *name, const lc_run_opts *o, util_err *err)
{
	static const lc_run_opts none = { 0 };
	int r;

	*c = (lc_cmd){ .root = root, .o = o ? o : &none, .h = { .lock = -1 } };
	r = lc_hold_vm(root, name, c->o, &c->h, err);
	if (r == 0)
		r = lc_cmd_reload(c, err);
	if (r < 0)
		lc_cmd_end(c, r);
	return r;
}

int lc_cmd_reload(lc_cmd *c, util_err *err)
{
	lc_cmd_let_go(c);
	return lc_load_vm(c->root, c->h.id, &c->db, &c->vm, err);
}

void lc_cmd_let_go(lc_cmd *c)
{
	lc_db_close(TAKE_PTR(c->db));
	c->vm = NULL;
}

int lc_cmd_check(lc_cmd *c, lc_op op, util_err *err)
{
	return lc_state_check(op, c->h.name, c->vm->state, c->vm->lcm, err);
}

int lc_cmd_qmp(lc_cmd *c, util_err *err)
{
	if (c->qmp)
		return 0;
	return lc_command_qmp(c->root, c->h.id, c->h.name, &c->qmp, err);
}

void lc_cmd_qmp_close(lc_cmd *c)
{
	qmp_close(TAKE_PTR(c->qmp));
}

/* The copy of the journal is let go first: the record is a writer's
 * transaction of its own, and the VM is read again after it. */
int lc_cmd_record(lc_cmd *c, lc_state state, lc_lcm lcm, const char *reason, const char *error,
                  json_t *extra, util_err *err)
{
	int r;

	lc_cmd_let_go(c);
	r = lc_record(c->root, c->h.id, state, lcm, reason, error, extra, err);
	if (r == 0)
		r = lc_cmd_reload(c, err);
	return r;
}

int lc_cmd_end(lc_cmd *c, int r)
{
	lc_cmd_qmp_close(c);
	lc_cmd_let_go(c);
	lc_held_clear(&c->h);
	return r;
}

int lc_cmd_run(const lc_cmd_kind *k, const char *root, const char *name, const lc_run_opts *o,
               void *arg, util_err *err)
{
	lc_cmd c;
	int r = lc_cmd_hold(&c, root, name, o, err);

	if (r < 0)
		return r;
	if (k->check != LC_OP_COUNT)
		r = lc_cmd_check(&c, k->check, err);
	if (r == 0 && k->needs_qmp)
		r = lc_cmd_qmp(&c, err);
	if (r == 0)
		r = k->act(&c, arg, err);
	/* what failed on the way (a record, QEMU) says which command */
	if (r < 0) {
		_cleanup_free_ char *said = util_xasprintf("cannot %s '", k->verb);

		if (!util_startswith(err->msg, said))
			util_err_prefix(err, "cannot %s '%s'", k->verb, c.h.name);
	}
	return lc_cmd_end(&c, r);
}
