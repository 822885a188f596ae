/* Private to lifecycle/: what the supervisor (supervisor.c) and the
 * commands that drive a running VM (vm_run.c) share. */
#ifndef QVM_LC_RUN_H
#define QVM_LC_RUN_H

#include "lifecycle.h"
#include "qmp/qmp.h"

/* Where a VM's runtime files live. */
typedef struct lc_paths {
	char *vmdir;       /* ROOT/vms/ID: disks, logs */
	char *rundir;      /* ROOT/run/ID: sockets */
	char *qmp_event;   /* the supervisor's QMP socket */
	char *qmp_command; /* the QMP socket for qvm commands */
	char *console;     /* the serial console socket */
	char *vnc;         /* the VNC socket of a VM with vnc "unix" */
	char *agent;       /* the guest agent's channel (a vm with guest_agent) */
	char *serial_log;  /* everything the guest wrote on its serial port */
	char *qemu_log;    /* QEMU's stdout and stderr */
	char *sup_log;     /* the supervisor's own notes */
} lc_paths;

/* The reason a VM is FAILED with when reconciliation finds both its QEMU
 * and its supervisor gone: the host's scheduler applies the VM's restart
 * policy to it (scheduler.c). */
#define LC_REASON_ORPHANED "its qemu and its supervisor are gone"

void lc_paths_init(lc_paths *p, const char *root, uint64_t id);
void lc_paths_clear(lc_paths *p);

/* Record a transition of VM id in a short writer transaction (the
 * supervisor's way: it never holds the journal lock for long). extra (may
 * be NULL, stolen) adds fields to the record: qemu_pid, target... */
int lc_record(const char *root, uint64_t id, lc_state state, lc_lcm lcm, const char *reason,
              const char *error, json_t *extra, util_err *err);

/* Mark that a shutdown's request reached QEMU (see lc_vm.request_sent):
 * by the command that sent it, or by the supervisor that saw its
 * POWERDOWN, whichever comes first. */
int lc_record_sent(const char *root, uint64_t id, util_err *err);

/* The fields of an ACTIVE/SHUTDOWN intent (target, timeout_ms, hard_after,
 * prev, sent) as recorded for vm, to carry them into a new record. */
json_t *lc_shutdown_intent_json(const lc_vm *vm);

/* Load one VM (full definition) from a reader's copy of the database. The
 * caller frees *ret_db with lc_db_close(); *ret_vm points into it. */
int lc_load_vm(const char *root, uint64_t id, lc_db **ret_db, lc_vm **ret_vm, util_err *err);

/* Remove the VM's runtime folder (sockets). Missing is fine. */
void lc_remove_rundir(const lc_paths *p);

/* Remove everything a VM owns on disk (disks, seed, logs, sockets): what
 * delete and shutdown-to-DONE do. wipe zeroes owned disks first. */
int lc_remove_vm_files(const lc_db *db, const lc_vm *vm, bool wipe, util_err *err);

/* Check again, right before QEMU opens them, the files of a VM that QEMU
 * opens (vm_files.c): the kernel, initrd and cd-rom by stor_check_path()
 * with roots (NULL: ROOT/images); each disk's base image by the same
 * check and stor_inspect() as create (format, no data file, no backing
 * file); each disk's own file (an owned overlay: in the vm's folder, no
 * link) recording exactly the defined backing file. A file changed since
 * create into something create refuses fails with the message create
 * would give, prefixed with what it is ("disk 0: base image: ..."). */
int lc_check_vm_files(const char *root, uint64_t id, const lc_vmdef *def, const char *const *roots,
                      util_err *err);
/* The same for one disk (disk-attach, before QEMU opens it). */
int lc_check_disk_files(const char *root, uint64_t id, const lc_disk *d, const char *const *roots,
                        util_err *err);

/* Spawn a detached supervisor for VM id: qvm with the verb of
 * lc_set_supervisor_verb(), re-executed from
 * /proc/self/exe in its own session, outliving the caller. lock_fd (may be
 * -1) is the VM lock it inherits and releases once the VM has booted; adopt
 * makes it take over a QEMU that is already running. Waits (up to
 * timeout_ms) for its report: 0 when the VM runs (with until_spawned: as
 * soon as QEMU has been spawned), or the failure it reported. */
int lc_spawn_supervisor(const char *root, uint64_t id, int lock_fd, bool adopt, bool until_spawned,
                        int timeout_ms, util_err *err);

/* Find a QEMU that runs this VM although the journal does not know its
 * pid (a crash between fork and record): its command line carries the
 * VM's uuid. 0 and *ret_pid = 0 when there is none. */
int lc_find_qemu(const lc_vm *vm, pid_t *ret_pid, uint64_t *ret_starttime);

/* A VM held by a command: its id and name, and the VM lock. */
typedef struct lc_held {
	uint64_t id;
	char *name;
	int lock;         /* the VM lock's fd, -1 when not held */
	const char *root; /* borrowed, for left */
	lc_vm_left *left; /* lc_run_opts.ret_left, filled by lc_held_clear */
} lc_held;

/* Resolve name, take the VM lock (bounded by o->lock_timeout_ms or
 * LC_LOCK_TIMEOUT_MS; then "busy") and reconcile the journal with reality
 * (adopt a QEMU whose supervisor died, settle abandoned intents). Every
 * command that changes a VM starts here; lc_held_clear() releases (and
 * first fills o->ret_left with the state the VM is in then). */
int lc_hold_vm(const char *root, const char *name, const lc_run_opts *o, lc_held *h, util_err *err);
void lc_held_clear(lc_held *h);

/* With VM id's lock held: if the journal says ACTIVE but no live
 * supervisor drives the VM, adopt its QEMU or settle what is left (see
 * vm_hold.c). Returns 1 when it changed something. *ret_settle (may be
 * NULL) is false only when nothing changed and the VM has no open intent. */
int lc_reconcile_locked(const char *root, uint64_t id, bool *ret_settle, util_err *err);

/* What an operation registers so that the next command holding a VM
 * settles what a crashed command of its kind left on it: fn runs with the
 * VM lock held and returns 1 when it changed something. when is a set of
 * LC_SETTLE_ON_*; handlers of one moment run in ascending order. Called
 * from the operation file's constructor; at most LC_SETTLE_HANDLERS. */
typedef int (*lc_settle_fn)(const char *root, uint64_t id, util_err *err);
enum {
	/* while the VM is ACTIVE/HOTPLUG, before a QEMU nobody supervises is
	 * adopted: the device must be settled with QEMU first */
	LC_SETTLE_ON_HOTPLUG = 1 << 0,
	/* after reconciliation, by every command that holds the VM */
	LC_SETTLE_ON_HOLD = 1 << 1,
	/* by lc_vm_reconcile, which the reads (list, show) run */
	LC_SETTLE_ON_READ = 1 << 2,
};
#define LC_SETTLE_HANDLERS 8
void lc_on_settle(unsigned when, int order, lc_settle_fn fn);

/* How long a command waits for a supervisor it spawned to report. */
#define LC_SPAWN_TIMEOUT_MS 60000

/* Kill pid (if it still is the process that started at starttime) and
 * reap or wait for it; wait up to timeout_ms for pid to exit (-ETIMEDOUT). */
void lc_kill_and_wait(pid_t pid, uint64_t starttime);
int lc_wait_pid_exit(pid_t pid, uint64_t starttime, int timeout_ms);

/* Connect to the command QMP socket of running VM id (held). */
int lc_command_qmp(const char *root, uint64_t id, const char *name, qmp_client **ret,
                   util_err *err);

/* The times of process pid if it still is the one that started at
 * starttime, also as a zombie (an adopted QEMU that exited, which is not
 * ours to reap, until its reaper takes it): -ESRCH otherwise. */
int lc_proc_stat_final(pid_t pid, uint64_t starttime, lc_proc_stat *ret);

/* "ACTIVE/RUNNING", "POWEROFF": for messages. Freed by the caller. */
char *lc_state_text(const lc_vm *vm);

/* ---- disks (vm_disk.c, qemu_argv.c, vm_ops.c) ---------------------------- */

/* A vm with a max_memory: the DIMM slots QEMU gets (each hot grow takes
 * one), and the qdev id of its balloon (vm_resize.c) */
#define LC_DIMM_SLOTS 8
#define LC_BALLOON_ID "balloon0"
/* the virtio-serial port qemu-guest-agent listens on */
#define LC_AGENT_PORT "org.qemu.guest_agent.0"

/* device_add of a hot-plugged device (a disk, a nic, a controller): on a
 * q35 vm into a free pcie-root-port hpN (-ENOSPC naming the vm when all
 * are taken), on pc on the root bus. dev is stolen. */
int lc_hotplug_device_add(qmp_client *q, const lc_vmdef *def, json_t *dev, lc_pci *ret_pci,
                          util_err *err);

/* Sets "bus" and "addr" of a device's JSON when the definition placed it
 * (lc_pci); the command line and hotplug both go through it. */
void lc_pci_place_json(json_t *dev, const lc_pci *p);

/* Before a checkpoint: refuse it unless every device hotplug added to
 * the running QEMU is, in the definition, placed where it sits (the
 * next QEMU is made from the definition and must load its state). */
int lc_check_hotplug_placed(qmp_client *q, const lc_vmdef *def, util_err *err);

/* A disk's blockdev-add and device_add arguments (new references), node
 * and device both named "disk<id>", as on the command line. */
void lc_disk_qemu_json(const lc_disk *d, json_t **ret_blockdev, json_t **ret_device);

/* Decide where a new disk of VM id lives and what it is made from (the
 * placement create uses): path, format, backing, size. Nothing is made. */
int lc_place_disk(lc_db *db, uint64_t id, lc_disk *d, const char *const *roots, util_err *err);

/* Make a placed disk's file (blank or overlay). */
int lc_make_disk(const lc_disk *d, util_err *err);

/* PROLOG's disks: the owned disk files of def that are missing (after a
 * recreate or a create that failed part way, a definition whose files were
 * lost) are made again at start. */
typedef struct lc_prolog_disks {
	uint64_t seq; /* the intent, 0 when nothing was missing */
	size_t n;
	unsigned ids[LC_DISKS_MAX]; /* the disks made */
} lc_prolog_disks;

/* How many owned disks of def have no file; their ids go to ids. */
size_t lc_prolog_missing(const lc_vmdef *def, unsigned ids[LC_DISKS_MAX]);

/* Make the missing disks of VM id (definition def) under a "disk-prolog"
 * intent, which the disks' settling rolls back after a crash (the files made
 * are removed: they were not there before the start). On failure what was
 * made is removed and the intent closed. *ret is what to pass to
 * lc_prolog_disks_end(). */
int lc_prolog_disks_make(const char *root, uint64_t id, const lc_vmdef *def, lc_prolog_disks *ret,
                         util_err *err);

/* Close the intent: ok (the start goes on) or not (the disks made are
 * removed, as after a crash). A NULL or empty p is a no-op. */
int lc_prolog_disks_end(const char *root, uint64_t id, const lc_vmdef *def,
                        const lc_prolog_disks *p, bool ok, util_err *err);

/* A command's hold on one VM: vm_command.h. */
typedef struct lc_cmd lc_cmd;

/* ---- checkpoints (vm_save.c) ---------------------------------------------- */

/* start and resume (verb, for messages) of a held SUSPENDED or STOPPED VM:
 * from its checkpoint */
int lc_resume_checked(lc_cmd *c, const char *verb, util_err *err);
/* poweroff --discard-checkpoint of a held SUSPENDED or STOPPED VM: the
 * checkpoint goes, the VM is to (POWEROFF); without the option, refused */
int lc_checkpoint_discard(lc_cmd *c, lc_state to, util_err *err);
/* For the supervisor: is vm (ACTIVE/BOOT) a resume from its checkpoint;
 * *ret_back is where a resume that fails returns (SUSPENDED, STOPPED). */
bool lc_resume_wanted(const lc_vm *vm, lc_state *ret_back);
/* Open vm's recorded checkpoint, checked against its recorded size and
 * SHA-256 (-EBADMSG, saying which, when it does not match); *ret_fd is at
 * its start, for QEMU. */
int lc_checkpoint_open(const char *root, const lc_vm *vm, int *ret_fd, util_err *err);
/* Feed fd (borrowed) to a QEMU started with -incoming defer (getfd,
 * migrate-incoming "fd:"), and wait until it has loaded it. */
int lc_checkpoint_load(qmp_client *q, int fd, util_err *err);
/* For the supervisor at QEMU's exit: a suspend whose checkpoint is
 * recorded ends in its target (*ret_state): no crash, no restart. */
bool lc_save_final(const char *root, uint64_t id, lc_state *ret_state);

#endif
