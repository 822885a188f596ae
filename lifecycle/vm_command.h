/* Private to lifecycle/: one command on one VM (vm_command.c), the
 * skeleton every operation on a held VM is written on. */
#ifndef QVM_LC_VM_COMMAND_H
#define QVM_LC_VM_COMMAND_H

#include "run.h"

/* A command's hold on one VM, passed down to all it does: the lock, the
 * VM as last loaded (a reader's copy of the journal, read again after each
 * record), and its QEMU's command socket once connected. */
struct lc_cmd {
	const char *root;
	const lc_run_opts *o; /* never NULL */
	lc_held h;            /* id, name, the VM lock */
	lc_db *db;            /* NULL while let go */
	lc_vm *vm;            /* in db */
	qmp_client *qmp;      /* NULL until lc_cmd_qmp() */
};

/* Hold the VM (lc_hold_vm: lock, reconcile, settle) and load it. Nothing
 * is held on failure; otherwise lc_cmd_end() lets everything go. */
int lc_cmd_hold(lc_cmd *c, const char *root, const char *name, const lc_run_opts *o, util_err *err);
/* Read the VM again (after something else recorded: the supervisor). */
int lc_cmd_reload(lc_cmd *c, util_err *err);
/* Let the copy of the journal go (c->vm becomes NULL): before a long wait,
 * or before a writer's transaction of the command's own. */
void lc_cmd_let_go(lc_cmd *c);
/* The state table's verdict on op for the VM as loaded. */
int lc_cmd_check(lc_cmd *c, lc_op op, util_err *err);
/* Connect to its QEMU's command socket (once). */
int lc_cmd_qmp(lc_cmd *c, util_err *err);
void lc_cmd_qmp_close(lc_cmd *c);
/* lc_record() for the held VM, which is loaded again after it. */
int lc_cmd_record(lc_cmd *c, lc_state state, lc_lcm lcm, const char *reason, const char *error,
                  json_t *extra, util_err *err);
/* Let go of everything the command holds; returns r, so that a command
 * ends with `return lc_cmd_end(&c, r)`. */
int lc_cmd_end(lc_cmd *c, int r);
static inline void lc_cmd_endp(lc_cmd *c)
{
	lc_cmd_end(c, 0);
}

/* What a command is, for lc_cmd_run(): the rest is the skeleton's. */
typedef struct lc_cmd_kind {
	const char *verb; /* "pause": its errors read "cannot pause 'web': ..." */
	lc_op check;      /* the states it takes, from the state table; LC_OP_COUNT: act checks */
	bool needs_qmp;   /* connect to QEMU before act */
	/* The work, on the held, loaded and checked VM. arg is the caller's. */
	int (*act)(lc_cmd *c, void *arg, util_err *err);
} lc_cmd_kind;

/* Hold, load, check, connect, act, let go: one command of kind k on VM
 * name. A failure says "cannot VERB 'NAME': ..." unless act said "cannot"
 * itself. */
int lc_cmd_run(const lc_cmd_kind *k, const char *root, const char *name, const lc_run_opts *o,
               void *arg, util_err *err);

#endif
