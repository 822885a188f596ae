/* lifecycle: VM definitions, the state machine, the journal-backed VM
 * database, and the QEMU command line — the layer cli/ calls. */
#ifndef QVM_LIFECYCLE_H
#define QVM_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "lifecycle/store/store.h"
#include "util/util.h"

/* ---- operations (each one journal transaction) --------------------------- */

/* ROOT/vms/ID/seed.iso: the VM's cloud-init seed, built at each start of a
 * VM with --cloud-init and attached read-only while it exists (new string). */
char *lc_seed_path(const char *root, uint64_t id);

/* Refuse a QEMU pseudo-path ("nbd:...", "json:{...}", "http://..."; QEMU's
 * rule: a ':' before any '/') given for a local file (kernel, initrd, ISO,
 * cloud-init input), -EINVAL saying so; 0 for anything else, absolute or
 * relative. For cli/ to check a path before making it absolute. */
int lc_path_check_protocol(const char *path, const char *what, util_err *err);

typedef struct lc_create_opts {
	bool hold;                     /* define in HOLD instead of PENDING */
	const char *const *disk_roots; /* allowed folders for disk paths */
} lc_create_opts;

/* Define a VM: validate, reserve the id, prepare its disks (overlays,
 * blank images) and record it. Crash-safe: an intent is recorded before any
 * file is made, and a crash leaves nothing once the next writer recovers.
 * def is consumed (cleared) on success. */
int lc_vm_create(lc_db *db, lc_vmdef *def, const lc_create_opts *opts, uint64_t *ret_id,
                 util_err *err);

/* Merge K=V pairs into labels ("label.K=V") or user data ("K=V"); an empty
 * value deletes the key. Keys of the definition change it: "memory=SIZE"
 * and "vcpus=N" of a VM that is off (PENDING, HOLD, POWEROFF, UNDEPLOYED,
 * FAILED); "append", "kernel", "initrd", "machine", "accel" and the
 * cloud-init files ("cloud-init.user-data", ".meta-data",
 * ".network-config") also of a running VM, which uses them from its next
 * start (not while a checkpoint is kept: SUSPENDED, STOPPED); "restart"
 * and "autostart" in every state. An empty value clears append, kernel,
 * initrd and a cloud-init file. The other keys of a definition ("disks",
 * "name"...) are refused, saying which command changes them, and so is a
 * "snapshots.max" that is not a number from 1 to LC_SNAPSHOTS_MAX_LIMIT.
 * All pairs or none are recorded. */
typedef struct lc_update_opts {
	/* the folders kernel, initrd and cloud-init paths must be in (NULL:
	 * ROOT/images), as for create */
	const char *const *disk_roots;
	/* if not NULL: a new array of the keys changed that the running VM
	 * uses only from its next start (empty when none) */
	json_t **ret_later;
	/* the command, for the history's reason ("edit: memory 256M→512M");
	 * NULL: "update" */
	const char *verb;
} lc_update_opts;

/* held_lock, here and below: the VM lock the caller took with
 * lc_vm_lock_wait() before it opened db, handed over (closed here); or -1:
 * it is taken now without waiting, as db holds the journal. */
int lc_vm_update(lc_db *db, lc_vm *vm, int held_lock, char *const *pairs, size_t n,
                 const lc_update_opts *opts, util_err *err);
/* The syntax of one pair of lc_vm_update, without the VM: KEY=VALUE with a
 * valid key and printable value, not a key of the definition update does
 * not set, values of the definition's keys and snapshots.max that parse.
 * -EINVAL saying what is wrong; lc_vm_update checks each pair with it. */
int lc_update_pair_check(const char *pair, util_err *err);
/* Is key one whose value is a file (kernel, initrd, cloud-init.*)? cli/
 * makes such a value absolute before it calls lc_vm_update. */
bool lc_update_key_is_path(const char *key);

/* The update pairs (for lc_vm_update) that make cur into the definition
 * text (the JSON dump prints, as a user edited it; borrowed): the text
 * is parsed and validated whole first, and name, uuid, disks, nics and
 * cdrom must be as they are (the message names the command that changes
 * them). *ret_pairs is a new NULL-terminated vector, empty when nothing
 * changed. */
int lc_edit_pairs(const lc_vmdef *cur, json_t *text, char ***ret_pairs, util_err *err);

/* ---- templates (template.c): ROOT/templates/NAME.json ------------------- */

/* Keep src (a vm's definition, or one read from a file) as template name:
 * without its uuid, disk paths, MACs and addresses (each instance gets
 * its own); every disk must have a source (an image name, a path or a
 * size). Checked as a definition; -EEXIST if name is taken. db (open for
 * writing) serialises makers. */
int lc_template_create(lc_db *db, const char *name, const lc_vmdef *src, util_err *err);
/* The template as a definition (its name is the template's): for create
 * to override and instantiate. -ENOENT naming it when there is none. */
int lc_template_load(const char *root, const char *name, lc_vmdef *ret_def, util_err *err);
/* {name, created_ms, definition} of one template, or of all by name
 * (an unreadable one as {name, error}); new references. */
int lc_template_get(const char *root, const char *name, json_t **ret, util_err *err);
int lc_template_list(const char *root, json_t **ret, util_err *err);
/* Remove a template; its instances are vms of their own and stay. */
int lc_template_delete(lc_db *db, const char *name, util_err *err);

/* Rename a VM that is not running (not ACTIVE): new_name must be valid
 * and no other live VM's (DONE ones may share it). Recorded as a
 * redefine whose reason names both names, so history keeps the old one. */
int lc_vm_rename(lc_db *db, lc_vm *vm, int held_lock, const char *new_name, util_err *err);

/* Remove a VM that is not running: its disks and folders go, the VM moves
 * to DONE (kept for history). wipe overwrites owned disks first. */
int lc_vm_delete(lc_db *db, lc_vm *vm, int held_lock, bool wipe, util_err *err);

/* Back to PENDING with fresh disks (delete --recreate), not running. */
int lc_vm_recreate(lc_db *db, lc_vm *vm, int held_lock, util_err *err);

/* The one way a command waits for a VM's lock: up to timeout_ms, then
 * -EBUSY "vm 'NAME' is busy: ...". Take it before opening the journal for
 * writing (its holder may need the journal to finish). */
int lc_vm_lock_wait(const char *root, uint64_t id, const char *name, int timeout_ms, int *ret_fd,
                    util_err *err);

/* hold / release: PENDING <-> HOLD. */
int lc_vm_hold(lc_db *db, lc_vm *vm, bool hold, util_err *err);

/* The VM as `show --json` prints it (new reference). */
json_t *lc_vm_to_json(const lc_vm *vm);

/* ---- running VMs (vm_run.c, supervisor.c) -------------------------------- */

/* The state a command left a VM in: the VM's as the command let go of its
 * lock, before a command queued on the lock could change it. */
typedef struct lc_vm_left {
	bool set;     /* false: the command did not hold the VM */
	uint64_t id;  /* the VM's id (its name may be another VM's by now) */
	uint64_t seq; /* its last journal record then */
	lc_state state;
	lc_lcm lcm;
} lc_vm_left;

typedef struct lc_run_opts {
	bool hard;               /* shutdown/poweroff: quit at once; reboot: reset */
	bool hard_after;         /* shutdown/poweroff: kill when the timeout runs out */
	int timeout_s;           /* how long the guest has for an ACPI shutdown */
	bool no_wait;            /* return once the request is made */
	int lock_timeout_ms;     /* how long to wait for another qvm on this VM */
	bool force;              /* recover --failure/--delete of a VM a supervisor drives */
	bool discard_checkpoint; /* poweroff of a SUSPENDED/STOPPED VM: its checkpoint goes */
	bool quiesce;            /* snapshot-create: freeze the guest's filesystems around it */
	lc_vm_left *ret_left;    /* if not NULL: filled as the command lets go of the VM */
	/* start, boot, revert --running: the folders the VM's files must
	 * still be in (NULL: ROOT/images), checked again before QEMU opens
	 * them */
	const char *const *disk_roots;
} lc_run_opts;

#define LC_SHUTDOWN_TIMEOUT_S 60
#define LC_LOCK_TIMEOUT_MS    15000

/* Each resolves NAME (or id), waits up to opts->lock_timeout_ms for the VM
 * lock (then -EBUSY "vm 'x' is busy ..."), first reconciles the journal
 * with reality (a dead supervisor's QEMU is adopted, or its VM cleaned up),
 * checks the state, and does the work. On success *ret_state (may be NULL)
 * is the state reached, as "ACTIVE/RUNNING". */

/* Deploy: PENDING/HOLD/POWEROFF/UNDEPLOYED/FAILED -> ACTIVE/BOOT -> RUNNING.
 * Spawns the VM's supervisor and waits for QEMU to run the guest (or to
 * fail, with QEMU's own last line in err). */
int lc_vm_start(const char *root, const char *name, const lc_run_opts *opts, util_err *err);

/* ACPI power button (or quit with opts->hard) leading to DONE (shutdown:
 * the VM and its disks go) or POWEROFF (poweroff). A guest that ignores it
 * is back to RUNNING after the timeout, unless hard_after. */
int lc_vm_shutdown(const char *root, const char *name, bool to_done, const lc_run_opts *opts,
                   util_err *err);

/* Soft reboot (ACPI shutdown, then reset) or hard (system_reset). */
int lc_vm_reboot(const char *root, const char *name, const lc_run_opts *opts, util_err *err);

/* Pause (stop the vCPUs) or unpause. */
int lc_vm_pause(const char *root, const char *name, bool pause, const lc_run_opts *opts,
                util_err *err);

/* Resize a VM (vcpus, memory; 0 leaves one as it is). Off (PENDING, HOLD,
 * POWEROFF, UNDEPLOYED, FAILED): the definition changes. ACTIVE/RUNNING:
 * live, within max_vcpus and max_memory (0: refused), in ACTIVE/HOTPLUG
 * under an intent: CPUs hot-added, memory grown by a DIMM (its backend
 * removed again if QEMU refuses the device) or shrunk by the balloon;
 * then the definition has the new size, which the next boot uses. vCPUs
 * go down only while it is off. *ret_json (may be NULL): {vm, live,
 * old_vcpus, vcpus, old_memory, memory, balloon}. */
int lc_vm_resize(const char *root, const char *name, unsigned vcpus, uint64_t memory,
                 const lc_run_opts *o, json_t **ret_json, util_err *err);

/* Run argv (argv[0] a path in the guest) through the guest agent of
 * ACTIVE/RUNNING VM name (created with guest_agent) and wait up to
 * timeout_s for its end: *ret_json {exitcode, signal, stdout, stderr,
 * truncated} (new). No agent answering within 5 s, a command that does not
 * end in time (it keeps running in the guest) and the agent's refusals are
 * errors saying so. */
int lc_vm_exec(const char *root, const char *name, char *const *argv, int timeout_s,
               json_t **ret_json, util_err *err);

/* The guest's interfaces and addresses as its agent reports them
 * (guest-network-get-interfaces), within 2 s: *ret_json {read_ms,
 * interfaces: [{name, mac, addresses: [{type, ip, prefix}]}]} (new). */
int lc_vm_guest_info(const char *root, const lc_vm *vm, json_t **ret_json, util_err *err);

/* Freeze the guest's filesystems through its agent (guest-fsfreeze-
 * freeze; a freeze that fails is thawed again), and thaw them. */
int lc_vm_freeze(const char *root, const lc_vm *vm, util_err *err);
int lc_vm_thaw(const char *root, const lc_vm *vm, util_err *err);

/* Set the password of user in the guest of VM name through its agent
 * (guest-set-user-password, not crypted: the guest crypts it). */
int lc_vm_set_password(const char *root, const char *name, const char *user, const char *password,
                       util_err *err);

/* Delete in any state: a running VM is powered off hard first. recreate
 * keeps the VM, back in PENDING with fresh disks. */
int lc_vm_remove(const char *root, const char *name, bool wipe, bool recreate,
                 const lc_run_opts *opts, util_err *err);

typedef enum lc_recover_how {
	LC_RECOVER_SUCCESS, /* the interrupted operation succeeded: adopt or POWEROFF */
	LC_RECOVER_FAILURE, /* it failed: kill any QEMU, FAILED */
	LC_RECOVER_RETRY,   /* reconcile again */
	LC_RECOVER_DELETE,  /* kill any QEMU, delete */
} lc_recover_how;

/* Settle a VM stuck in UNKNOWN or an ACTIVE state nothing drives. */
int lc_vm_recover(const char *root, const char *name, lc_recover_how how, const lc_run_opts *opts,
                  util_err *err);

/* Force a start from UNKNOWN or ACTIVE/BOOT: any QEMU of the VM is killed
 * first, so it never runs twice. */
int lc_vm_boot(const char *root, const char *name, const lc_run_opts *opts, util_err *err);

/* Checkpoints on this host (vm_save.c; resume and undeploy in vm_run.c). suspend: ACTIVE/RUNNING or
 * PAUSED
 * -> ACTIVE/SAVE -> SUSPENDED (to_stopped: STOPPED): QEMU writes memory and
 * device state to the checkpoint in the VM's folder, its size and SHA-256
 * are recorded, QEMU quits. SUSPENDED keeps the host's reservation,
 * STOPPED releases it. */
int lc_vm_suspend(const char *root, const char *name, bool to_stopped, const lc_run_opts *opts,
                  util_err *err);
/* SUSPENDED/STOPPED -> ACTIVE/BOOT -> RUNNING from the checkpoint (checked
 * against its recorded size and SHA-256 first; a bad one is refused and
 * kept), which is removed once the guest runs; POWEROFF/UNDEPLOYED boot as
 * start does; ACTIVE/PAUSED is unpaused. */
int lc_vm_resume(const char *root, const char *name, const lc_run_opts *opts, util_err *err);
/* ACTIVE/RUNNING (ACPI shutdown, or opts->hard) or POWEROFF -> UNDEPLOYED:
 * disks kept, the host's resources released. */
int lc_vm_undeploy(const char *root, const char *name, const lc_run_opts *opts, util_err *err);
/* Does a VM in this state hold host resources (memory) for `qvm host`:
 * ACTIVE, SUSPENDED and POWEROFF do; STOPPED, UNDEPLOYED and the rest not. */
bool lc_vm_holds_host(const lc_vm *vm);

/* ---- migration to another qvm host (migrate.c, receive.c) ---------------- */

/* Progress of a migration: bytes of its files sent of total. */
typedef void (*lc_migrate_progress)(void *ud, uint64_t done, uint64_t total);

typedef struct lc_migrate_opts {
	const char *dest;        /* [ssh://][USER@]HOST[:PORT] */
	const char *ssh;         /* the ssh command line (QVM_SSH); NULL: "ssh" */
	const char *remote_qvm;  /* qvm on the destination; NULL: "qvm" from its PATH */
	const char *remote_root; /* its root; NULL: the destination's default */
	bool live;               /* --live: not built yet, refused */
	lc_run_opts run;         /* lock_timeout_ms, disk_roots (a resume here) */
	lc_migrate_progress progress;
	void *progress_ud;
} lc_migrate_opts;

/* The syntax of a destination, [ssh://][USER@]HOST[:PORT]: 0, or -EINVAL
 * saying what is wrong. */
int lc_migrate_dest_check(const char *dest, util_err *err);

/* Cold migration of VM name to another qvm host over ssh: POWEROFF,
 * UNDEPLOYED, SUSPENDED, STOPPED, or RUNNING/PAUSED (suspended first).
 * The destination checks first (room, networks, name and uuid, base
 * images), then its disks (sparse) and checkpoint go over the ssh
 * connection, and the destination records it in the same state (resumed if
 * it ran); only then does the VM end DONE here, "migrated to HOST", and its
 * files go. Any failure before leaves it here as it was (a suspended
 * running one resumed) and nothing on the destination. *ret (may be NULL)
 * is {vm, to, state (there), time_ms, bytes, and downtime_ms (how long the
 * guest was paused) for one that ran}. */
int lc_vm_migrate(const char *root, const char *name, const lc_migrate_opts *o, json_t **ret,
                  util_err *err);

/* The destination's end (qvm's hidden receive verb): the wire on in and
 * out, from the host the source says it is. disk_roots as for create. */
int lc_vm_receive(const char *root, int in, int out, const char *from,
                  const char *const *disk_roots, util_err *err);

/* If an ACTIVE VM's supervisor is dead, adopt its QEMU or clean up. Takes
 * the VM lock without waiting (a busy VM is being handled). Returns 1 when
 * it changed something. */
int lc_vm_reconcile(const char *root, uint64_t id, util_err *err);

/* Is the supervisor recorded for vm alive? (pid + start time) */
bool lc_vm_supervised(const lc_vm *vm);

/* The serial console socket of VM id (new string). */
char *lc_console_path(const char *root, uint64_t id);

/* Take the console of running VM vm (one at a time: QEMU's socket would
 * queue a second client silently) and connect to it. *ret_fd is the
 * connected socket; *ret_lock holds the console until it is closed. */
int lc_console_attach(const char *root, const lc_vm *vm, int *ret_fd, int *ret_lock, util_err *err);

/* CPU use (percent of one CPU, averaged over QEMU's life) and resident
 * memory of a running VM's QEMU; -ESRCH if none. */
int lc_vm_usage(const lc_vm *vm, double *ret_cpu, uint64_t *ret_rss, util_err *err);

/* ---- statistics of running VMs (vm_proc.c, vm_stats.c): metrics, top --- */

/* What /proc says of a running VM's QEMU. */
typedef struct lc_proc_stat {
	double cpu_s;   /* CPU time used, user and system, in seconds */
	double alive_s; /* how long the process has run */
	uint64_t rss;   /* resident memory, bytes */
} lc_proc_stat;

/* The QEMU of vm (pid and start time as recorded); -ESRCH if none. */
int lc_qemu_stat(const lc_vm *vm, lc_proc_stat *ret, util_err *err);

/* One disk's counters from QMP query-blockstats (since QEMU started). */
typedef struct lc_disk_stats {
	char device[40]; /* the node or device name: "disk0", "cdrom", "seed" */
	uint64_t rd_bytes, wr_bytes, rd_ops, wr_ops;
} lc_disk_stats;

/* One NIC's tap counters (since the tap was made; rx: from the guest). */
typedef struct lc_nic_stats {
	unsigned id;
	char tap[16];
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
} lc_nic_stats;

typedef struct lc_vm_stats {
	lc_proc_stat proc; /* its QEMU */
	/* the disks' counters were read: false while a qvm command holds
	 * the VM (its QMP socket takes one client), which is not waited for */
	bool block_known;
	size_t n_disks;
	lc_disk_stats disks[LC_DISKS_MAX + 2]; /* and the cd-rom, the seed */
	size_t n_nics;
	lc_nic_stats nics[LC_NICS_MAX];
} lc_vm_stats;

/* The counters of n running VMs (loaded in full, ACTIVE with a QEMU):
 * /proc for CPU and memory, query-blockstats on each one's command socket
 * when its VM lock is free at once (else block_known is false), its taps'
 * counters over netlink (a missing tap is left out). The QEMUs are asked
 * in parallel, so a slow one costs its own 1 s bound, not one for each.
 * ret[i] is for vms[i]; ret_ok[i] is false where no QEMU runs vms[i]. */
void lc_vms_stats_get(const char *root, const lc_vm *const *vms, size_t n, lc_vm_stats *ret,
                      bool *ret_ok);

/* ---- accounting (accounting.c) ------------------------------------------- */

/* The runs of VM id (0: of every VM, DONE ones included) from the journal,
 * clipped to since_ms..until_ms (until 0: now): a new object {since_ms,
 * until_ms, vms: [{id, name, runs: [{start_ms, end_ms (null: still
 * running), ended (the state it led to: POWEROFF, FAILED, SUSPENDED...;
 * null while running), reason, memory (bytes), hours, cpu_seconds (null
 * when not recorded), memory_gib_hours}], total}], total}, each total
 * {hours, cpu_seconds, memory_gib_hours, cpu_complete (false: some run's
 * CPU time is not known, the sum is a lower bound)}. A run is one QEMU,
 * from its spawn to its exit; a run cut by the window counts its share of
 * its CPU seconds. VMs without a run in the window are left out (unless
 * named by id). */
int lc_accounting(lc_db *db, uint64_t id, int64_t since_ms, int64_t until_ms, json_t **ret,
                  util_err *err);

/* ---- VNC (vm_vnc.c) -------------------------------------------------------- */

/* ROOT/run/ID/vnc.sock: the VNC socket of VM id with vnc "unix" (new
 * string), made by its QEMU and gone with its runtime folder. */
char *lc_vnc_socket_path(const char *root, uint64_t id);

/* How long a password of qvm vnc lasts unless told otherwise. */
#define LC_VNC_TTL_S 60

/* A fresh random password (8 characters, VNC's most) for the VNC server
 * of running VM name (defined with vnc on), set over QMP with set_password
 * and made to expire in ttl_s seconds (0: LC_VNC_TTL_S) with
 * expire_password; never recorded. On success *ret_json is new: {vm, host,
 * port, display (port - 5900), socket (its path on vnc "unix", where the
 * other three are null; else null), password, expires_ms, ttl_s}. If the expiry
 * cannot be set, the password is expired at once and the command fails. */
int lc_vm_vnc(const char *root, const char *name, int ttl_s, const lc_run_opts *opts,
              json_t **ret_json, util_err *err);

/* The command verb that runs lc_supervise() in a fresh qvm; the CLI owns
 * its name and sets it once at start-up, before any operation that starts
 * or adopts a VM. Those re-execute qvm as `qvm --root ROOT VERB ID
 * --status-fd=3 [--lock-fd=4] [--adopt]`; unset, they fail. verb is
 * borrowed and must stay valid. */
void lc_set_supervisor_verb(const char *verb);

/* The supervisor's main (the CLI's supervisor verb): returns when QEMU is gone (or on
 * SIGTERM, leaving QEMU to be adopted). status_fd gets the boot report;
 * lock_fd is the VM lock to release after boot (-1: none). disk_roots
 * (borrowed, NULL: ROOT/images) are the folders each restart checks the
 * VM's files against again before QEMU opens them. */
int lc_supervise(const char *root, uint64_t id, int status_fd, int lock_fd, bool adopt,
                 const char *const *disk_roots, util_err *err);

/* ---- networks (network.c) -------------------------------------------------- */

typedef struct lc_net_opts {
	const char *name;
	const char *bridge; /* adopted if it exists (never deleted), else created */
	const char *uplink; /* with vlan: the interface the VLAN rides on */
	unsigned vlan;      /* 0: none */
	unsigned mtu;       /* 0: the kernel's default */
	const char *range;  /* "FIRST-LAST" of leases, or NULL */
	unsigned prefix;    /* 0: 24 */
	const char *gateway, *dns;
} lc_net_opts;

/* The syntax of one argument of net create or nic-attach, checked before
 * any work: kind is the option's name ("network", "bridge", "uplink",
 * "vlan", "mtu", "range", "prefix", "gateway", "dns", "mac", "ip",
 * "model"); 0 for a value that parses (or a kind it does not know),
 * -EINVAL or -ERANGE saying what is wrong. */
int lc_net_arg_check(const char *kind, const char *value, util_err *err);

/* Define a network (db opened LC_DB_WRITE): the bridge and VLAN interface
 * are made over netlink unless they exist (then adopted), and the journal
 * records what qvm made. Rolled back on failure part way. */
int lc_net_create(lc_db *db, const lc_net_opts *o, util_err *err);

/* Delete a network and what qvm made for it; refused (-EBUSY, naming the
 * vms) while a vm's nic uses it. */
int lc_net_delete(lc_db *db, const char *name, util_err *err);

/* The network named name (borrowed), or -ENOENT. */
int lc_net_find(lc_db *db, const char *name, json_t **ret_net, util_err *err);

/* A network with its leases and vms (new reference); all of them. */
json_t *lc_net_to_json(lc_db *db, json_t *net);
json_t *lc_net_list_json(lc_db *db);

/* A vm's nics as show prints them: id, network, bridge, tap (while
 * ACTIVE), mac, ip, prefix, model. New reference. */
json_t *lc_vm_nics_json(lc_db *db, const lc_vm *vm);

/* For the cloud-init seed: a network-config (version 2) text from
 * lc_vm_nics_json()'s array: each nic matched by MAC, with its lease as a
 * static address, the network's gateway as default route and its DNS.
 * New string. */
char *lc_nics_network_config(json_t *nics);

/* Attach a nic on network (mac, ip, model may be NULL: generated, leased,
 * virtio). A running vm gets it hot (tap, getfd, netdev_add, device_add in
 * ACTIVE/HOTPLUG; any failure undoes every step); a stopped one in its
 * definition only. *ret_nic_id (may be NULL) is the new nic's id. */
int lc_vm_nic_attach(const char *root, const char *name, const char *network, const char *mac,
                     const char *ip, const char *model, const lc_run_opts *opts,
                     unsigned *ret_nic_id, util_err *err);

/* Detach nic nic_id (device_del, DEVICE_DELETED, netdev_del, tap gone,
 * lease released), or drop it from a stopped vm's definition. */
int lc_vm_nic_detach(const char *root, const char *name, unsigned nic_id, const lc_run_opts *opts,
                     util_err *err);

/* ---- accelerator ----------------------------------------------------------- */

/* Resolve auto: KVM when /dev/kvm opens read-write and /proc/cpuinfo has
 * vmx or svm; TCG otherwise. QVM_ACCEL overrides a VM's setting. ret_reason
 * (static string) says why. */
int lc_accel_resolve(lc_accel requested, lc_accel *ret_accel, const char **ret_reason,
                     util_err *err);

/* ---- the QEMU command line ---------------------------------------------- */

typedef struct lc_qemu_runtime {
	const char *qemu_binary; /* absolute path of qemu-system-x86_64 */
	lc_accel accel;          /* resolved: KVM or TCG */
	int qmp_event_fd;        /* listening socket for the supervisor's QMP */
	int qmp_command_fd;      /* listening socket for commands */
	int serial_fd;           /* listening socket for the console */
	int agent_fd;            /* listening socket for the guest agent (guest_agent) */
	const char *serial_log;  /* file the serial output is copied to */
	const int *tap_fds;      /* one per NIC, in order */
	size_t n_tap_fds;
	bool sandbox;          /* -sandbox on,... (QEMU built with seccomp) */
	const char *seed_path; /* cloud-init seed ISO, or NULL */
	bool incoming;         /* -incoming defer: a resume loads a checkpoint */
	/* where a VM with vnc "unix" gets its VNC socket (in its runtime
	 * folder, gone when QEMU is), or NULL */
	const char *vnc_socket;
} lc_qemu_runtime;

/* Build QEMU's argv for vm: -nodefaults -no-shutdown -S, -blockdev JSON with
 * explicit formats, sockets as inherited fds. The one place an argv is made.
 * Returns a new NULL-terminated vector (free with util_strv_free). */
int lc_qemu_argv(const lc_vm *vm, const lc_qemu_runtime *rt, char ***ret_argv, util_err *err);

/* ---- disks of a vm: attach, detach, resize, cd-rom, snapshots (vm_disk.c) */

/* On a running vm (ACTIVE/RUNNING; resize, cd-rom and disk snapshots also
 * ACTIVE/PAUSED) these change QEMU and the definition,
 * in ACTIVE/HOTPLUG (ACTIVE/SNAPSHOT for snapshots) meanwhile; on a vm that
 * is off (PENDING, HOLD, POWEROFF, UNDEPLOYED, FAILED) the definition and
 * files only. Each is journalled as an intent: a crash part way is completed
 * or rolled back by the next command on the vm. On success *ret_json (may
 * be NULL) is a new object describing what was done ("vm", "disk",
 * "live", "path", "removed", ...). */
typedef struct lc_disk_opts {
	lc_run_opts run;               /* lock_timeout_ms */
	const char *const *disk_roots; /* allowed folders for image paths */
	int timeout_s;                 /* detach: how long the guest has */
	bool shrink;                   /* resize: allow a smaller size */
} lc_disk_opts;

#define LC_DETACH_TIMEOUT_S 20

/* disk: a parsed --disk spec (lc_disk_parse); its id is chosen here. */
int lc_vm_disk_attach(const char *root, const char *name, lc_disk *disk, const lc_disk_opts *o,
                      json_t **ret_json, util_err *err);
int lc_vm_disk_detach(const char *root, const char *name, unsigned disk_id, const lc_disk_opts *o,
                      json_t **ret_json, util_err *err);
int lc_vm_disk_resize(const char *root, const char *name, unsigned disk_id, uint64_t size,
                      const lc_disk_opts *o, json_t **ret_json, util_err *err);
/* iso NULL: eject. */
int lc_vm_cdrom(const char *root, const char *name, const char *iso, const lc_disk_opts *o,
                json_t **ret_json, util_err *err);

typedef enum lc_dsnap_op {
	LC_DSNAP_CREATE,
	LC_DSNAP_LIST,
	LC_DSNAP_REVERT, /* needs the vm off */
	LC_DSNAP_DELETE,
} lc_dsnap_op;

/* Internal qcow2 snapshots of one disk. tag: a new name (create) or a
 * name or id (revert, delete); NULL for list, whose *ret_json is an array
 * of {"id", "name", "date_ms", "vm_state_size"}. */
int lc_vm_disk_snapshot(const char *root, const char *name, unsigned disk_id, lc_dsnap_op op,
                        const char *tag, const lc_disk_opts *o, json_t **ret_json, util_err *err);
/* ---- the image store (image_ops.c) -----------------------------------------
 * What cli/ needs of storage/'s image store. An image is handed out as the
 * object `image show --json` prints (a new reference): {"name", "file"
 * (its file's name in the store folder), "format", "virtual_size",
 * "actual_size", "sha256", "source" (null for none), "created_ms", "path"
 * (the file, absolute)}. */

/* Progress of an import: bytes done of total (0 when unknown). */
typedef void (*lc_progress_fn)(void *ud, uint64_t done, uint64_t total);

typedef struct lc_image_import_opts {
	const char *name;        /* the new image's name */
	const char *source;      /* an http(s) URL or an absolute local path */
	const char *sha256;      /* expected SHA-256 (hex), or NULL */
	const char *format;      /* declared "qcow2" or "raw", or NULL: probed */
	const char *ca_file;     /* CA certificates for https, or NULL: system */
	uint64_t max_size;       /* refuse larger files; 0: the default (256G) */
	int stall_timeout_s;     /* give up after this long without data; 0: 30 */
	lc_progress_fn progress; /* or NULL */
	void *progress_ud;
	/* folders a local source may come from (as --disk's); NULL: the
	 * image store's own */
	const char *const *disk_roots;
} lc_image_import_opts;

/* Import an image into the store under root (see stor_image_import: checked,
 * inspected, nothing left on failure but a resumable partial download). */
int lc_image_import(const char *root, const lc_image_import_opts *o, json_t **ret_image,
                    util_err *err);

/* The image called name; -ENOENT "no image named ..." when there is none. */
int lc_image_get(const char *root, const char *name, json_t **ret_image, util_err *err);

/* Every image in the store, by name: a new array. */
int lc_image_list(const char *root, json_t **ret_images, util_err *err);

/* Delete image name from the store of db (opened LC_DB_WRITE: no VM can be
 * created on it between the check and the deletion); refused (-EBUSY,
 * naming them) while VMs use it. Without such an image, the partial
 * downloads of an import of it given up are discarded instead, and
 * *ret_partials says how many (0 when the image itself was deleted);
 * -ENOENT when there was neither. */
int lc_image_delete(lc_db *db, const char *name, unsigned *ret_partials, util_err *err);

/* The VMs (not DONE) whose disks are made from, or are, image_file: 1 and
 * *ret_names = "'a', 'b'" (new string) when there are some, 0 and NULL
 * when none. Call it with the journal's lock held (LC_DB_WRITE) so that
 * no create slips in between the check and what it justifies. */
int lc_image_users(lc_db *db, const char *image_file, char **ret_names, util_err *err);

/* disk-saveas: flatten disk disk_id of a VM that is not ACTIVE into a new
 * store image (stor_image_save_disk), holding the VM lock so that it
 * cannot start meanwhile. An ACTIVE VM is refused (power it off first). */
int lc_vm_disk_saveas(const char *root, const char *name, unsigned disk_id, const char *image_name,
                      const lc_run_opts *opts, json_t **ret_image, util_err *err);
/* ---- VM snapshots (snapshot.c) --------------------------------------------- */

/* Default per-VM maximum of snapshots; the user data key "snapshots.max"
 * (qvm update NAME snapshots.max=N) sets another. */
#define LC_SNAPSHOTS_MAX_DEFAULT 10
/* The largest snapshots.max update accepts. */
#define LC_SNAPSHOTS_MAX_LIMIT 1000

/* Take a snapshot of every qcow2 disk: of a running or paused VM with its
 * memory (QEMU's snapshot-save job; disks only with no_memory), of a
 * stopped one with qemu-img. tag may be NULL ("snap-<id>", or the first
 * "snap-<id>-N" no disk holds); a tag the tree or a disk already holds is
 * refused (-EEXIST). Once the new snapshot is recorded, the oldest are
 * deleted while there are more than the maximum. *ret_snap (may be NULL)
 * gets the new snapshot (new reference). */
int lc_vm_snapshot_create(const char *root, const char *name, const char *tag, bool no_memory,
                          const lc_run_opts *opts, json_t **ret_snap, util_err *err);

/* Bring the VM back to snapshot snap (its id or tag) and to the memory,
 * vcpus, disk sizes and (off) cdrom it was taken with: a running VM
 * continues from the saved moment (snapshot-load); a stopped one gets its
 * disks back, and with start is started and (a memory snapshot) loaded.
 * Refused while the disk set differs from the snapshot's. *ret_result
 * (may be NULL): {vm, reverted (tag), id, snapshot_memory, memory (loaded),
 * disks, definition (restored), started}. */
int lc_vm_snapshot_revert(const char *root, const char *name, const char *snap, bool start,
                          const lc_run_opts *opts, json_t **ret_result, util_err *err);

/* Delete snapshot snap (id or tag) from the disks and the tree; its
 * children move to its parent. */
int lc_vm_snapshot_delete(const char *root, const char *name, const char *snap,
                          const lc_run_opts *opts, util_err *err);

/* The VM's snapshots, after finishing or rolling back any snapshot
 * operation a crash interrupted: {"vm", lc_vm_snapshots_json()'s fields}
 * (new reference). */
int lc_vm_snapshot_list(const char *root, const char *name, json_t **ret, util_err *err);

/* vm's snapshots as the commands print them (new reference): {"current":
 * id or null, "max", "snapshots": [{"id", "tag", "parent", "memory",
 * "disks", "state", "definition", "created_ms" (when it was complete),
 * "vmstate_disk", "vmstate_size" (bytes; both null without memory)}]}. */
json_t *lc_vm_snapshots_json(const lc_vm *vm);

/* The per-VM maximum of snapshots of vm. */
unsigned lc_vm_snapshots_max(const lc_vm *vm);

/* ---- scheduled actions, the scheduler, host boot and shutdown
 * (schedule.c, scheduler.c, host.c) ----------------------------------------- */

/* The options of a scheduled action, as its command takes them. */
enum {
	LC_SCHED_OPT_HARD = 1 << 0,
	LC_SCHED_OPT_HARD_AFTER = 1 << 1,
	LC_SCHED_OPT_TIMEOUT = 1 << 2,
	LC_SCHED_OPT_NO_MEMORY = 1 << 3,
	LC_SCHED_OPT_WIPE = 1 << 4,
};

typedef struct lc_sched_spec {
	const char *action; /* start, shutdown, poweroff, ... (lc_sched_action_check) */
	char *const *args;  /* snapshot-create [TAG], disk-snapshot-create DISK_ID TAG */
	size_t n_args;
	unsigned opts;              /* LC_SCHED_OPT_* */
	int timeout_s;              /* with LC_SCHED_OPT_TIMEOUT */
	int64_t at_ms;              /* wall-clock ms of the first run */
	int64_t every_ms, until_ms; /* 0: once; 0: no end */
	unsigned count;             /* runs of a repeated action; 0: no end */
} lc_sched_spec;

/* "+30m", "+2h", "+1d" (also "+10s") from now_ms; "HH:MM", its next
 * occurrence in local time; ISO 8601 "2026-12-24T18:00[:SS]" (or with a
 * space), local unless it ends in "Z" or "+HH:MM". Wall-clock ms. */
int lc_sched_parse_time(const char *s, int64_t now_ms, int64_t *ret_ms, util_err *err);
/* "30s", "30m", "2h", "1d", up to a year. */
int lc_sched_parse_interval(const char *s, int64_t *ret_ms, util_err *err);
/* Is action one a schedule runs, with these options and operands? */
int lc_sched_action_check(const char *action, unsigned opts, size_t n_args, char *const *args,
                          util_err *err);
/* Add a scheduled action to VM name (a "sched-add" record in its history);
 * *ret_entry (may be NULL) is the new entry as lc_sched_json prints it. */
int lc_sched_add(const char *root, const char *name, const lc_sched_spec *sp, json_t **ret_entry,
                 util_err *err);
int lc_sched_delete(const char *root, const char *name, unsigned entry_id, util_err *err);
/* The scheduled actions of VM name, or of every VM (name NULL): a new
 * array of lc_sched_json's entries. */
int lc_sched_list(const char *root, const char *name, json_t **ret, util_err *err);
/* vm's scheduled actions (new array): {"id", "vm", "vm_id", "action",
 * "args", "opts", "at", "next" (0: no more runs), "every", "until",
 * "count", "runs", "last": null or {"time", "due", "result", "late",
 * "error"}}, times in wall-clock ms. */
json_t *lc_sched_json(const lc_vm *vm);
/* One entry of vm->sched as lc_sched_json prints it (new reference). */
json_t *lc_sched_entry_json(const lc_vm *vm, json_t *entry);

/* The host's settings `qvm host set` changes: deploy-pending=on|off,
 * memory-reserve=SIZE (what deploy-pending leaves free). */
int lc_host_set(const char *root, char *const *pairs, size_t n, util_err *err);
/* The host's settings and facts as `qvm host` shows them (new object):
 * "deploy_pending", "memory_reserve", "boot_id" (the current one),
 * "autostart_boot_id" (the boot whose autostart ran), "stopped" (VMs the
 * last host shutdown stopped: id -> how). */
int lc_host_info(const char *root, json_t **ret, util_err *err);

typedef struct lc_pass_opts {
	const char *const *disk_roots; /* as lc_run_opts' */
	int lock_timeout_ms;           /* each VM's lock (a busy VM's action fails) */
	int pass_timeout_ms;           /* the pass lock (another pass, boot or shutdown) */
} lc_pass_opts;

/* One pass of the scheduler, serialised with any other by the pass lock
 * (ROOT/run/scheduler.lock): reconcile VMs nothing drives, run the
 * scheduled actions that are due, apply restart policies to VMs whose
 * supervisor and QEMU are gone, autostart once per host boot, and with
 * deploy-pending deploy PENDING VMs. Each action is a record in the VM's
 * history. *ret_report: {"boot_id", "actions": [{"vm", "vm_id", "what",
 * "entry", "late", "result" ("ok"/"failed"), "error"}]}. A failed action
 * does not fail the pass. */
int lc_scheduler_pass(const char *root, const lc_pass_opts *o, json_t **ret_report, util_err *err);

/* host boot: the networks' bridges qvm made are made again if they are
 * gone, the VMs a host shutdown stopped come back (started when they are
 * autostart; resumed when it suspended them, autostart or not), and the
 * once-per-boot autostart runs. *ret_report as lc_scheduler_pass's, with
 * "networks": the names of those whose interfaces were made again. */
int lc_host_boot(const char *root, const lc_pass_opts *o, json_t **ret_report, util_err *err);

typedef enum lc_host_stop_mode { LC_HOST_STOP_SHUTDOWN, LC_HOST_STOP_SUSPEND } lc_host_stop_mode;
/* host shutdown: every running VM is recorded as stopped by the host,
 * then ACPI-shut down to POWEROFF in parallel (or suspended, in parallel) and, past
 * timeout_s, powered off hard. */
int lc_host_shutdown(const char *root, lc_host_stop_mode mode, int timeout_s, const lc_pass_opts *o,
                     json_t **ret_report, util_err *err);

#endif
