/* The store: the floor under every operation. It keeps the VMs'
 * definitions and states in the journal (journal.c, private to this
 * folder), models them as a database (db.c), and holds the state table
 * (state.c) and the definitions' rules (vmdef.c). It calls nothing above
 * it: what an operation adds to it, the replay of the record types it
 * writes and the recovery of its intents a crash interrupted, it registers
 * here (lc_store_on_record, lc_store_on_intent), and the store dispatches.
 * lifecycle/lifecycle.h includes this header for cli/; the write side
 * (appends, intents, locks) is for lifecycle/'s operations only. */
#ifndef QVM_LC_STORE_H
#define QVM_LC_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "util/util.h"

/* ---- states (SPEC "VM states") ------------------------------------------ */

typedef enum lc_state {
	LC_PENDING,
	LC_HOLD,
	LC_ACTIVE,
	LC_POWEROFF,
	LC_SUSPENDED,
	LC_STOPPED,
	LC_UNDEPLOYED,
	LC_FAILED,
	LC_UNKNOWN,
	LC_DONE,
	LC_STATE_COUNT
} lc_state;

/* The LCM state, meaningful only while ACTIVE. */
typedef enum lc_lcm {
	LC_LCM_NONE,
	LC_LCM_PROLOG,
	LC_LCM_BOOT,
	LC_LCM_RUNNING,
	LC_LCM_PAUSED,
	LC_LCM_SHUTDOWN,
	LC_LCM_HOTPLUG,
	LC_LCM_SNAPSHOT,
	LC_LCM_SAVE,
	LC_LCM_MIGRATE,
	LC_LCM_EPILOG,
	LC_LCM_COUNT
} lc_lcm;

const char *lc_state_name(lc_state s); /* "PENDING" */
const char *lc_lcm_name(lc_lcm l);     /* "RUNNING", "" for NONE */
json_t *lc_lcm_json(lc_lcm l);         /* "RUNNING", null for NONE (new reference) */
/* The four-letter name `list` prints: "pend", "runn"... */
const char *lc_short_name(lc_state s, lc_lcm l);
int lc_state_parse(const char *name, lc_state *ret, util_err *err);
int lc_lcm_parse(const char *name, lc_lcm *ret, util_err *err);

/* The operations the state machine knows, named as the commands are. */
typedef enum lc_op {
	LC_OP_START,
	LC_OP_HOLD,
	LC_OP_RELEASE,
	LC_OP_SHUTDOWN,
	LC_OP_POWEROFF,
	LC_OP_REBOOT,
	LC_OP_PAUSE,
	LC_OP_UNPAUSE,
	LC_OP_SUSPEND,
	LC_OP_STOP,
	LC_OP_UNDEPLOY,
	LC_OP_RESUME,
	LC_OP_DELETE,
	LC_OP_RESIZE_COLD,
	LC_OP_UPDATE,
	/* the delete command: DELETE's states, and a running VM, which it
	 * stops first */
	LC_OP_REMOVE,
	/* boot: a start whose QEMU is replaced (UNKNOWN, or a BOOT in doubt) */
	LC_OP_BOOT,
	/* recover: a VM nothing may drive any more */
	LC_OP_RECOVER,
	LC_OP_RENAME,
	LC_OP_COUNT
} lc_op;

const char *lc_op_name(lc_op op);

/* Is `op` allowed in (state, lcm)? If not, err says "cannot <op> 'NAME':
 * it is STATE[/LCM]; <op> needs A, B or C". */
int lc_state_check(lc_op op, const char *vm_name, lc_state state, lc_lcm lcm, util_err *err);

/* ---- definitions ---------------------------------------------------------- */

typedef enum lc_machine { LC_MACHINE_PC, LC_MACHINE_Q35, LC_MACHINE_MICROVM } lc_machine;
typedef enum lc_accel { LC_ACCEL_AUTO, LC_ACCEL_KVM, LC_ACCEL_TCG } lc_accel;
typedef enum lc_restart { LC_RESTART_NO, LC_RESTART_ON_FAILURE, LC_RESTART_ALWAYS } lc_restart;
typedef enum lc_bus { LC_BUS_VIRTIO, LC_BUS_SCSI, LC_BUS_IDE } lc_bus;

const char *lc_machine_name(lc_machine m);
const char *lc_accel_name(lc_accel a);
const char *lc_restart_name(lc_restart r);
const char *lc_bus_name(lc_bus b);
int lc_machine_parse(const char *s, lc_machine *ret, util_err *err);
int lc_accel_parse(const char *s, lc_accel *ret, util_err *err);
int lc_restart_parse(const char *s, lc_restart *ret, util_err *err);
int lc_bus_parse(const char *s, lc_bus *ret, util_err *err);

/* Empty pcie-root-port devices hp0.. a q35 vm gets for hotplug. */
#define LC_HOTPLUG_PORTS 4

/* Where a hot-plugged device sits in QEMU's PCI tree, kept so that every
 * later QEMU of the vm (a restart, a checkpoint's resume) puts it there
 * again: a device placed by QEMU itself in command-line order would land
 * elsewhere, and a checkpoint's device state would not load. bus NULL:
 * placed by QEMU in order (devices of the definition at start). */
typedef struct lc_pci {
	char *bus;     /* "pci.0", "pcie.0" or a hotplug port "hpN" */
	unsigned slot; /* 0..31; 0 behind a port */
} lc_pci;

typedef struct lc_disk {
	unsigned id;
	char *path;           /* the file QEMU opens (absolute) */
	char *format;         /* "qcow2" or "raw": always explicit */
	char *backing;        /* overlay's base image (absolute), or NULL */
	char *backing_format; /* the base's declared format, or NULL */
	char *source;         /* what the user named: image name, path or size */
	uint64_t size;        /* virtual size in bytes (an overlay's is its base's) */
	lc_bus bus;
	bool readonly;
	bool owned; /* qvm created the file; it goes with the VM */
	lc_pci pci; /* set by a live attach */
} lc_disk;

typedef struct lc_nic {
	unsigned id;
	char *network;
	char *mac;   /* "52:54:00:xx:xx:xx", or NULL until assigned */
	char *ip;    /* requested/leased address, or NULL */
	char *model; /* "virtio" or "e1000" */
	lc_pci pci;  /* set by a live attach */
} lc_nic;

typedef struct lc_vmdef {
	char *name;
	char *uuid;      /* identity in QEMU's command line (-uuid) */
	uint64_t memory; /* bytes */
	unsigned vcpus;
	/* what a live resize may reach: 0 means no hotplug (then QEMU gets
	 * no room for more CPUs, DIMMs or a balloon) */
	unsigned max_vcpus;
	uint64_t max_memory;
	bool guest_agent; /* a virtio-serial channel for qemu-guest-agent */
	lc_machine machine;
	lc_accel accel;
	lc_disk *disks;
	size_t n_disks;
	lc_nic *nics;
	size_t n_nics;
	char *cdrom; /* ISO path, or NULL */
	char *kernel, *initrd, *append;
	char *ci_user_data, *ci_meta_data, *ci_network_config; /* cloud-init files */
	lc_restart restart;
	bool autostart;
	json_t *labels; /* owned object: string -> string */
	json_t *user;   /* owned object: user data, string -> string */
	/* A display and a VNC server on this address (an IP literal:
	 * "127.0.0.1" unless the user asked for another), always with a
	 * password; NULL: none. JSON "vnc": {"listen": ADDR}, only when set. */
	char *vnc_listen;
} lc_vmdef;

/* The address a VNC server of a VM listens on unless told otherwise. */
#define LC_VNC_LISTEN_DEFAULT "127.0.0.1"
/* The listen "address" of a VNC server on a unix socket in the VM's
 * runtime folder (ROOT/run/ID/vnc.sock) instead of TCP. */
#define LC_VNC_UNIX "unix"
/* Is addr an address a VNC server may listen on: an IPv4 or IPv6 literal
 * (no name, nothing QEMU's option syntax could read further)? */
int lc_vnc_listen_check(const char *addr, util_err *err);

#define LC_MEMORY_DEFAULT (512ull << 20)
#define LC_MEMORY_MIN     (16ull << 20)
#define LC_MEMORY_MAX     (4ull << 40)
#define LC_VCPUS_MAX      255
#define LC_DISKS_MAX      16
#define LC_NICS_MAX       16
/* The whole definition as JSON, and the kernel command line (Linux takes
 * 2 KiB on x86): every redefine record holds the whole definition. */
#define LC_VMDEF_JSON_MAX (128 << 10)
#define LC_APPEND_MAX     4096

void lc_vmdef_init(lc_vmdef *def);
void lc_vmdef_clear(lc_vmdef *def); /* frees members; def itself is the caller's */

/* Serialise a definition (the JSON `dump` prints and `create --from`
 * reads). Returns a new reference. */
json_t *lc_vmdef_to_json(const lc_vmdef *def);

/* Parse and validate a definition. Unknown keys are refused (a typo must
 * not silently drop a setting). ret_def is initialised on success. */
int lc_vmdef_from_json(json_t *obj, lc_vmdef *ret_def, util_err *err);

/* Validate what can be checked without touching the host: name, sizes,
 * counts, strings that reach QEMU, machine/bus combinations. */
int lc_vmdef_validate(const lc_vmdef *def, util_err *err);

/* Parse a --disk SPEC into a disk (not yet placed on the host):
 *   10G | size=10G                  a blank disk: qcow2, or raw with
 *                                   ,format=raw (then d->format is "raw")
 *   /abs/base.qcow2 | image=PATH    qcow2 overlay on an existing file
 *   NAME | image=NAME               overlay on a store image
 * with options ",bus=virtio|scsi|ide", ",readonly=on|off", and
 * ",format=qcow2|raw": for a blank disk its own format, for an image the
 * image's (d->backing_format; the disk on it is always a qcow2 overlay). */
int lc_disk_parse(const char *spec, lc_disk *ret_disk, util_err *err);
void lc_disk_clear(lc_disk *d);

/* Parse a --nic SPEC: NET[,mac=MAC][,ip=IP][,model=virtio|e1000]. */
int lc_nic_parse(const char *spec, lc_nic *ret_nic, util_err *err);
void lc_nic_clear(lc_nic *n);

/* ---- a VM in the database ------------------------------------------------- */

#define LC_VM_RECENT 10

typedef struct lc_vm {
	uint64_t id;
	lc_vmdef def;
	lc_state state;
	lc_lcm lcm;
	int64_t created_ms;      /* wall-clock ms of definition */
	int64_t state_ms;        /* wall-clock ms of the last transition */
	int64_t started_ms;      /* when it last became RUNNING, 0 if never */
	char *reason;            /* why the last transition happened, or NULL */
	char *last_error;        /* the last failure, for `show`, or NULL */
	pid_t qemu_pid;          /* 0 when none */
	uint64_t qemu_starttime; /* /proc/PID/stat field 22 of qemu_pid */
	pid_t supervisor_pid;
	uint64_t supervisor_starttime;
	/* restarts by its restart policy (records with "restart": true),
	 * over its life; not loaded by LC_DB_SUMMARY opens */
	uint64_t restarts;
	/* while ACTIVE: the accelerator its QEMU was started with ("kvm" or
	 * "tcg", auto resolved; the "qemu_accel" of its supervisor's records),
	 * or NULL when not known */
	char *accel;
	/* While ACTIVE/SHUTDOWN: where the shutdown leads ("DONE", "POWEROFF"
	 * or "REBOOT"), how long the guest has, and whether it is killed then.
	 * While ACTIVE/BOOT before a supervisor recorded itself: the state a
	 * failed start returns to. */
	char *target;
	int64_t timeout_ms;
	bool hard_after;
	char *prev_state;
	/* the shutdown's request reached QEMU (a "sent" record): without it,
	 * an ACTIVE/SHUTDOWN nobody works on was abandoned mid-way */
	bool request_sent;
	/* VM snapshots (snapshot.c), NULL before the first: {"next": id,
	 * "current": id or 0, "items": [{"id", "tag", "parent", "memory",
	 * "vmstate" (its disk), "vmstate_size", "disks", "created", "state"}...]},
	 * owned; lc_vm_snapshots_json() is what commands print */
	json_t *snapshots;
	/* The memory checkpoint suspend or stop wrote (vm_save.c), NULL when
	 * there is none: {"file" (in its folder), "size", "sha256", "time"},
	 * owned. Set and cleared by a state record's "checkpoint" field. */
	json_t *checkpoint;
	/* What the host's scheduler keeps of the VM (lifecycle/schedule.c),
	 * NULL before its first record: {"next": entry id, "entries": [...],
	 * "restarts": [ms...]}, owned; kept by the store as a whole. */
	json_t *sched;
	/* the seqs of its last records (those history shows), oldest
	 * first: where `show` starts reading the history */
	uint64_t recent[LC_VM_RECENT];
	size_t n_recent;
} lc_vm;

/* ---- the database: a model of all VMs kept in the journal ---------------- */

typedef struct lc_db lc_db;

/* How lc_db_open() opens the database. */
enum {
	/* Take the journal's exclusive lock and keep it until lc_db_close(),
	 * so that checks and the records they justify are one transaction; also
	 * finish or roll back intents left by a crashed qvm and create the
	 * root's folders (0700) on first use. Without it, the shared lock is
	 * held just long enough to load a consistent copy. */
	LC_DB_WRITE = 1 << 0,
	/* Load only what `list` needs of each definition (name, memory,
	 * vcpus): the rest of vm->def stays at its defaults. Keeps list fast
	 * with thousands of VMs. Not with LC_DB_WRITE. */
	LC_DB_SUMMARY = 1 << 1,
};

/* Open the database under root with LC_DB_* flags. */
int lc_db_open(const char *root, unsigned flags, lc_db **ret_db, util_err *err);
void lc_db_close(lc_db *db); /* accepts NULL; compacts if the log is long */

/* A process keeps what its opens read of the journal (see journal.c's
 * parked handles), so that its next open reads only what changed: a
 * long-lived one frees that while it waits (the supervisor, once its VM
 * has booted). */
void lc_db_forget(void);

static inline void lc_db_closep(lc_db **db)
{
	lc_db_close(*db);
}
#define _cleanup_db_ _cleanup_(lc_db_closep)

const char *lc_db_root(const lc_db *db);

/* Something a writer's open repaired that the user should hear of (a torn
 * journal tail cut off after a crash), or NULL. Borrowed. */
const char *lc_db_notice(const lc_db *db);

/* All VMs, DONE ones included, in id order. Borrowed. */
size_t lc_db_count(const lc_db *db);
lc_vm *lc_db_vm_at(lc_db *db, size_t i);

/* The VM with this id (DONE included), or NULL. Borrowed. */
lc_vm *lc_db_vm_by_id(lc_db *db, uint64_t id);

/* Find a VM by name or numeric id. DONE VMs are found only by id (their
 * names may be reused). -ENOENT with "no vm named 'x'" otherwise. */
int lc_db_find(lc_db *db, const char *name_or_id, lc_vm **ret_vm, util_err *err);
/* For commands that only look (show, history, dump, argv): as lc_db_find,
 * but a name no live VM has resolves to the newest DONE VM of that name. */
int lc_db_find_any(lc_db *db, const char *name_or_id, lc_vm **ret_vm, util_err *err);

/* A reader's copy for a command that looks at one VM (show): vm (found
 * as lc_db_find_any finds it) is loaded in full, the others hold only
 * their id, name and state. Far cheaper than lc_db_open() with many VMs.
 * It keeps the journal's shared lock until lc_db_close(), so that the VM's
 * history reads the same files: close it before a writer's open. */
int lc_db_open_vm(const char *root, const char *name_or_id, lc_db **ret_db, lc_vm **ret_vm,
                  util_err *err);

/* Per-VM folders under the root. Returned strings are new. */
char *lc_vm_dir(const lc_db *db, uint64_t id);
char *lc_vm_run_dir(const lc_db *db, uint64_t id);

/* Journal records about one VM, oldest first, each one of them: a new
 * array of {"seq", "time_ms", "type", "state", "lcm", "reason", "error",
 * "detail"} (null when a record has none; detail says in words what a
 * record without a state did: "system_powerdown (the ACPI power button)",
 * "labels tier=web, -old", "create ok"). */
int lc_vm_history(lc_db *db, const lc_vm *vm, json_t **ret_array, util_err *err);

/* The last n (at most LC_VM_RECENT) of lc_vm_history's records, reading
 * only the history from the first of them on. */
int lc_vm_history_tail(lc_db *db, const lc_vm *vm, size_t n, json_t **ret_array, util_err *err);

/* Every journal record (borrowed rec) about VM id, or about every VM with
 * id 0, oldest first, the archived history included: for accounting. A
 * record of no VM (a network's) or of another VM is skipped when id is
 * set; fn returning < 0 stops the walk with that. */
typedef int (*lc_record_fn)(uint64_t seq, json_t *rec, void *ud, util_err *err);
int lc_db_foreach_record(lc_db *db, uint64_t id, lc_record_fn fn, void *ud, util_err *err);

/* ---- what operations register ------------------------------------------------------ */

/* Apply a record of a type the store does not know itself to vm (borrowed
 * rec) while the database is loaded. */
typedef int (*lc_replay_fn)(lc_vm *vm, uint64_t seq, json_t *rec, util_err *err);

/* Finish or roll back the open intent seq (borrowed) of a qvm that died,
 * with the VM lock of its "id" held and db writable. */
typedef int (*lc_recover_fn)(lc_db *db, uint64_t seq, json_t *intent, util_err *err);

/* Register fn for the record types, or the intents' ops, named by match: a
 * name ending in '-' matches by prefix ("snapshot-"), any other exactly.
 * Called from an operation file's constructor, before main; at most
 * LC_STORE_HANDLERS of each kind. An intent with no handler is left open
 * for the version of qvm that wrote it; a record with none is -EBADMSG. */
#define LC_STORE_HANDLERS 16
void lc_store_on_record(const char *match, lc_replay_fn fn);
void lc_store_on_intent(const char *match, lc_recover_fn fn);

/* ---- the write side, for lifecycle/'s operations ---------------------------------- */
/* Append a record (new reference, consumed: "type", "id" and the fields of
 * its type; "time" is added unless the caller set it, a "done" gets its
 * intent's "id") under the writer's lock, fsync'd, then apply it
 * to the model. ret_seq (may be NULL) gets its sequence number. */
int lc_db_append(lc_db *db, json_t *rec, uint64_t *ret_seq, util_err *err);

/* Appends made durable together, with one sync: between begin and commit
 * each append is written (and applied to db) but not yet durable, so no
 * side effect that outlives a crash may come between them. Commit returns
 * once all are durable. A writer closed before its commit takes the
 * group's records back out of the journal (its copy in memory is not
 * used again). For a command's several records at one step: an intent
 * and its state, or a redefinition, a state and a done. */
void lc_db_group_begin(lc_db *db);
int lc_db_group_commit(lc_db *db, util_err *err);

/* Append a "state" transition of vm. reason and error may be NULL. */
int lc_db_record_state(lc_db *db, lc_vm *vm, lc_state state, lc_lcm lcm, const char *reason,
                       const char *error, util_err *err);

/* The ops of intents about a VM's definition itself. */
#define LC_DEF_OPS ((const char *const[]){ "create", "delete", "recreate", NULL })

/* Does VM id have an open intent whose op is one of ops (NULL-terminated;
 * NULL: any op)? */
bool lc_db_has_intent(lc_db *db, uint64_t id, const char *const *ops);

/* For a writer whose caller holds VM id's lock (which keeps the writer's
 * recovery at open off them): finish or roll back the VM's open intents
 * whose op is one of ops (NULL-terminated) now, through the registered
 * handlers; e.g. LC_DEF_OPS, since no command on the VM may run before a
 * deletion its crashed qvm left half done. */
int lc_db_recover_vm(lc_db *db, uint64_t id, const char *const *ops, util_err *err);

/* An "intent" record of op on VM id (0: none) with data (stolen; NULL:
 * none), and the "done" record that closes intent seq with its result
 * ("ok", "rolled-back"...) and error (may be NULL): new references, to
 * append. lc_db_intent and lc_db_done append them. */
json_t *lc_intent_rec(const char *op, uint64_t id, json_t *data);
json_t *lc_done_rec(uint64_t seq, const char *result, const char *error);
int lc_db_intent(lc_db *db, const char *op, uint64_t id, json_t *data, uint64_t *ret_seq,
                 util_err *err);
int lc_db_done(lc_db *db, uint64_t seq, const char *result, util_err *err);

/* The fields a "define" or "redefine" record carries for def: name,
 * memory, vcpus and "def", the definition as JSON text. New reference. */
json_t *lc_db_def_fields(const lc_vmdef *def);

bool lc_db_writable(const lc_db *db);
json_t *lc_db_intents(lc_db *db); /* borrowed: "seq" -> intent record */
/* Labels and user data change by a map of changes: each key set to its
 * value, or removed where the value is null. Both borrowed. */
void lc_json_apply_changes(json_t *into, json_t *changes);
/* Borrowed: "name" -> network object. A "net" record ({"net": OBJ})
 * defines or replaces one, a "net-delete" record ({"name"}) removes it.
 * Not loaded by LC_DB_SUMMARY opens of a compacted journal. */
json_t *lc_db_networks(lc_db *db);
uint64_t lc_db_next_id(const lc_db *db);
/* Borrowed: the host's own settings and facts (lifecycle/schedule.c: the
 * boot whose autostart ran, deploy-pending, the memory reserve, the VMs a
 * host shutdown stopped), string keys. A "host" record ({"set": {K: V or
 * null}}, about no VM) changes them as lc_json_apply_changes does. Not
 * loaded by LC_DB_SUMMARY opens of a compacted journal. */
json_t *lc_db_host(lc_db *db);

/* The per-VM operation lock (run/vm-<id>.lock): serialises commands on one
 * VM; dies with its holder. -EBUSY with a clear message after timeout_ms. */
int lc_vm_lock(const lc_db *db, uint64_t id, int timeout_ms, int *ret_fd, util_err *err);
char *lc_vm_lock_path(const char *root, uint64_t id);

/* Append rec (stolen), a state record of VM id entering state: once a VM
 * is DONE its lock file is removed too. */
int lc_db_append_state(lc_db *db, uint64_t id, lc_state state, json_t *rec, util_err *err);

#endif
