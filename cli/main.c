/* qvm's entry point: the table of commands, global options, printing of
 * results and the exit status (0 done, 1 failed, 2 usage). */
#include <locale.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_ROOT "/var/lib/qvm"
#define GLOBAL_USAGE "[--root DIR] [--json] [-q|-v] COMMAND [ARGS]"

static const cli_command commands[] = {
	{ "create", cli_cmd_create,
	  "NAME [--memory SIZE] [--vcpus N] [--disk SPEC]... [--nic SPEC]... [options] [--template T] [--count N] | NAME --from FILE.json",
	  "define a vm (PENDING, or HOLD with --hold)",
	  "  --memory SIZE          memory, e.g. 512M or 2G (a bare number is MiB; default 512M)\n"
	  "  --vcpus N              virtual CPUs (default 1)\n"
	  "  --max-vcpus N --max-memory SIZE   what resize may reach while it runs (0: no hotplug)\n"
	  "  --guest-agent          a virtio-serial channel for qemu-guest-agent (qvm exec)\n"
	  "  --disk SPEC            a disk, repeatable:\n"
	  "                           SIZE            a blank disk (10G): qcow2, or raw with ,format=raw\n"
	  "                           PATH            a qcow2 overlay on an image file\n"
	  "                           NAME            a qcow2 overlay on a store image (image=NAME)\n"
	  "                           options: ,bus=virtio|scsi|ide ,readonly=on\n"
	  "                           ,format=qcow2|raw (a blank disk's own format; for PATH or NAME the image's)\n"
	  "  --nic SPEC             NETWORK[,mac=MAC][,ip=IP][,model=virtio|e1000], repeatable\n"
	  "  --cdrom ISO            an ISO image on an ide cdrom (pc, q35)\n"
	  "  --kernel F --initrd F --append S   boot a kernel directly\n"
	  "  --machine pc|q35|microvm           machine type (default pc)\n"
	  "  --accel auto|kvm|tcg   accelerator (default auto: kvm where it works)\n"
	  "  --cloud-init user-data=F[,meta-data=F][,network-config=F]\n"
	  "  --restart no|on-failure|always     restart policy (default no)\n"
	  "  --autostart            started once after each host boot (qvm scheduler, qvm host boot)\n"
	  "  --label K=V            a label, repeatable\n"
	  "  --hold                 define in HOLD: the scheduler skips it until release (start still works)\n"
	  "  --vnc                  a display and a VNC server on 127.0.0.1 (a free display from :0),\n"
	  "                         always with a password: qvm vnc NAME sets a one-time one\n"
	  "  --vnc-listen ADDR      the same on ADDR, an IP address (off-host: only if you ask),\n"
	  "                         or unix: a socket in the vm's runtime folder (ROOT/run/ID/vnc.sock)\n"
	  "  --start                start it once defined, as qvm start does\n"
	  "  --from FILE.json       read the definition from a file ('-' for stdin), as dump prints it;\n"
	  "                         no other definition option may be given with it\n"
	  "  --template T           start from template T (qvm template list); the options given\n"
	  "                         override its values, and add disks, nics and labels to its\n"
	  "  --count N              make N vms: NAME-1 ... NAME-N, or NAME with %i numbered 1..N;\n"
	  "                         each its own uuid, MACs, leases and disks; all or none are made\n"
	  "Disk, kernel and ISO paths must lie under ROOT/images or a folder in QVM_DISK_ROOTS,\n"
	  "reached through no symbolic link; start checks them again.\n" },
	{ "dump", cli_cmd_dump, "NAME", "print a vm's definition as JSON (input for create --from)",
	  NULL },
	{ "update", cli_cmd_update, "NAME KEY=VALUE...",
	  "set keys of the definition, user data (KEY=VALUE) or labels (label.KEY=VALUE); an empty value removes the key",
	  "  KEY=VALUE          user data; snapshots.max=N (1-1000) is the vm's snapshot maximum\n"
	  "  label.KEY=VALUE    a label\n"
	  "  memory=SIZE        the memory of a vm that is off (a bare number is MiB)\n"
	  "  vcpus=N            its virtual CPUs (1-255), while it is off\n"
	  "  kernel=F initrd=F append=S   direct kernel boot (empty: none)\n"
	  "  machine=pc|q35|microvm  accel=auto|kvm|tcg\n"
	  "  cloud-init.user-data=F cloud-init.meta-data=F cloud-init.network-config=F\n"
	  "                     the cloud-init files (copied now, as create does; empty: none)\n"
	  "  restart=no|on-failure|always  autostart=yes|no\n"
	  "  vnc=on|off         a display and a password-protected VNC server (on 127.0.0.1), while off\n"
	  "  vnc_listen=ADDR    the VNC server's address (an IP, or unix; turns vnc on), while off\n"
	  "  max-vcpus=N max-memory=SIZE  what resize may reach live (0: no hotplug), while off\n"
	  "  guest-agent=yes|no  the qemu-guest-agent channel, from the next start\n"
	  "A running vm takes kernel, initrd, append, machine, accel and cloud-init at its next\n"
	  "start (update says so); a SUSPENDED or STOPPED one refuses them (its checkpoint holds\n"
	  "the machine it was saved with). Disks, nics, cdrom and name have their own commands.\n" },
	{ "exec", cli_cmd_exec, "NAME [--timeout S] -- CMD [ARG]...",
	  "run a command in the guest through its guest agent (create --guest-agent)",
	  "  --timeout S   how long the command has (default 60 s); it keeps running past it\n"
	  "Its stdout and stderr are printed as they are; a command that fails makes exec\n"
	  "fail with its status. --json: {exitcode, signal, stdout, stderr, truncated}.\n" },
	{ "set-password", cli_cmd_set_password, "NAME USER [--password-file FILE]",
	  "set a guest user's password through its guest agent (never from the command line)",
	  "  --password-file FILE   the password is the file's first line; without it, it is\n"
	  "                         asked for on the terminal (no echo), or read from stdin\n" },
	{ "resize", cli_cmd_resize, "NAME [--vcpus N] [--memory SIZE]",
	  "change a vm's vCPUs and memory: live while it runs (within its maxima), else its definition",
	  "  --vcpus N, -c N     vCPUs: hot-added while it runs (up to max-vcpus); fewer only while off\n"
	  "  --memory SIZE, -m   memory (a bare number is MiB): grown by a DIMM (up to max-memory,\n"
	  "                      by multiples of 128M), shrunk by the balloon while it runs\n"
	  "A live resize needs create --max-vcpus / --max-memory (0: no hotplug). The guest sees a\n"
	  "shrink as memory taken by the balloon, not as a smaller DIMM. The next boot has the new\n"
	  "size.\n" },
	{ "template", cli_cmd_template,
	  "create NAME --from VM|FILE.json | list | show NAME | delete NAME",
	  "keep definitions to make vms from (create --template)",
	  "  create NAME --from VM|FILE.json   a template from a vm's definition or a file (as dump\n"
	  "                         prints one; '-' for stdin): without uuid, disk paths, MACs and\n"
	  "                         addresses; its disks are their sources (store images, files,\n"
	  "                         blank sizes), so each instance gets overlays of its own on them\n"
	  "  list                   NAME VCPUS MEMORY DISKS NICS CREATED\n"
	  "  show NAME              the template's definition\n"
	  "  delete NAME            the vms made from it stay\n"
	  "An image or network a template names is checked when a vm is made from it.\n" },
	{ "edit", cli_cmd_edit, "NAME",
	  "edit a vm's definition as JSON in $VISUAL or $EDITOR (default vi); checked on save",
	  "The editor gets a copy of the definition as dump prints it; once it exits, the file is\n"
	  "checked whole and the keys changed are set as update sets them (the same states, paths\n"
	  "and next-start rules). Disks, snapshots and history are kept; name, uuid, disks, nics\n"
	  "and cdrom cannot change here. An invalid edit is shown with the error, and you are\n"
	  "asked on stdin to edit again or abandon it (nothing changed). The variable is split at\n"
	  "blanks, without a shell.\n" },
	{ "rename", cli_cmd_rename, "NAME NEW",
	  "rename a vm that is not running; its history keeps the old name", NULL },
	{ "list", cli_cmd_list, "[--all]", "list vms: ID NAME STAT CPU MEM UPTIME",
	  "  --all, -a   include DONE vms\n" },
	{ "show", cli_cmd_show, "NAME", "show a vm: definition, state, disks, nics, history",
	  NULL },
	{ "history", cli_cmd_history, "NAME",
	  "print every journal record of a vm: SEQ TIME TYPE STATE DETAIL", NULL },
	{ "hold", cli_cmd_hold, "NAME",
	  "PENDING -> HOLD (the scheduler's autostart and deploy-pending skip it; start still works)",
	  NULL },
	{ "release", cli_cmd_release, "NAME", "HOLD -> PENDING", NULL },
	{ "start", cli_cmd_start, "NAME [--wait | --no-wait]",
	  "deploy a vm (PENDING, HOLD, POWEROFF, UNDEPLOYED, FAILED) and wait until it runs",
	  "  --wait      wait until the guest runs, or say why it cannot (the default)\n"
	  "  --no-wait   return as soon as qemu has been spawned (see 'qvm show' for how it went)\n" },
	{ "shutdown", cli_cmd_shutdown, "NAME [--hard] [--timeout S] [--hard-after] [--no-wait]",
	  "press the ACPI power button; the vm ends DONE (its disks go) once the guest is off",
	  "  --hard         quit qemu at once instead\n"
	  "  --timeout S    how long the guest has (default 60 s); then it is RUNNING again\n"
	  "  --hard-after   kill it when the timeout runs out instead\n"
	  "  --no-wait      return once the button is pressed\n" },
	{ "poweroff", cli_cmd_poweroff,
	  "NAME [--hard] [--timeout S] [--hard-after] [--no-wait] [--discard-checkpoint]",
	  "like shutdown, but the vm ends POWEROFF with its disks kept",
	  "  --hard, --timeout S, --hard-after, --no-wait   as for shutdown\n"
	  "  --discard-checkpoint   a SUSPENDED or STOPPED vm: drop its checkpoint, POWEROFF\n" },
	{ "reboot", cli_cmd_reboot, "NAME [--hard] [--timeout S] [--no-wait]",
	  "reboot through the guest (ACPI shutdown, then reset), or reset at once with --hard",
	  "  --hard         reset at once (system_reset) instead\n"
	  "  --timeout S    how long the guest has to go down (default 60 s); then it keeps running\n"
	  "  --no-wait      return once the ACPI request is sent\n" },
	{ "pause", cli_cmd_pause, "NAME", "stop the vm's vCPUs; memory stays in qemu", NULL },
	{ "unpause", cli_cmd_unpause, "NAME", "let a paused vm run again", NULL },
	{ "suspend", cli_cmd_suspend, "NAME",
	  "save the vm's memory and devices to a checkpoint and end qemu: SUSPENDED (its host memory stays reserved)",
	  "The checkpoint is a file in the vm's folder; its size and SHA-256 are recorded.\n"
	  "resume (or start) continues the guest from the moment it was saved.\n" },
	{ "stop", cli_cmd_stop, "NAME",
	  "like suspend, but STOPPED: the host releases the vm (no memory counted, no taps)",
	  NULL },
	{ "resume", cli_cmd_resume, "NAME",
	  "continue a SUSPENDED or STOPPED vm from its checkpoint (checked first; removed once it runs); boot one that is POWEROFF or UNDEPLOYED",
	  "A checkpoint whose size or SHA-256 differs from the recorded one is refused\n"
	  "and kept; the vm stays as it is.\n" },
	{ "undeploy", cli_cmd_undeploy, "NAME [--hard] [--timeout S] [--hard-after]",
	  "shut a running (or POWEROFF) vm down to UNDEPLOYED: disks kept, host resources released",
	  "  --hard, --timeout S, --hard-after   as for shutdown\n" },
	{ "delete", cli_cmd_delete, "NAME [--wipe | --recreate]",
	  "delete a vm in any state (a running one is stopped hard): its disks and files go, it is kept as DONE for history",
	  "  --wipe       overwrite the vm's disks with zeros before removing them\n"
	  "  --recreate   keep the vm, back in PENDING with fresh disks\n" },
	{ "recover", cli_cmd_recover, "NAME --success|--failure|--retry|--delete [--force]",
	  "settle a vm stuck in UNKNOWN or an ACTIVE state nothing drives",
	  "  --success   its qemu is adopted if it runs, else POWEROFF\n"
	  "  --failure   any qemu is killed, FAILED\n"
	  "  --retry     look again: adopt a live qemu or clean up\n"
	  "  --delete    any qemu is killed and the vm deleted\n"
	  "  --force     with --failure or --delete: also when a supervisor drives the vm\n" },
	{ "boot", cli_cmd_boot, "NAME",
	  "force a start from UNKNOWN or ACTIVE/BOOT (any qemu of it is killed first)", NULL },
	{ "console", cli_cmd_console, "NAME",
	  "attach to the vm's serial console (one at a time); Ctrl-] leaves (with a pipe: until its end)",
	  NULL },
	{ "argv", cli_cmd_argv, "NAME",
	  "print the QEMU command line qvm would start the vm with (fds shown as placeholders)",
	  NULL },
	{ "disk-attach", cli_cmd_disk_attach,
	  "NAME --size SIZE | --image IMAGE|PATH [--format qcow2|raw] [--bus virtio|scsi|ide] [--readonly]",
	  "add a disk: hot-plugged into a running vm, or to the definition of one that is off",
	  "  --size SIZE            a blank disk (10G): qcow2, or raw with --format raw\n"
	  "  --image IMAGE|PATH     a qcow2 overlay on a store image, or on an image file\n"
	  "                         (--format: the image's, default qcow2)\n"
	  "  --bus virtio|scsi|ide  default virtio; ide only while the vm is off\n"
	  "  --readonly             the guest cannot write to it\n" },
	{ "disk-detach", cli_cmd_disk_detach, "NAME DISK_ID [--timeout S]",
	  "remove a disk (the guest must release it within --timeout, default 20 s); the file qvm made for it is deleted",
	  "  --timeout S   how long a running guest has to release the disk (default 20 s)\n" },
	{ "disk-resize", cli_cmd_disk_resize, "NAME DISK_ID SIZE [--shrink]",
	  "grow a disk (live: the guest sees the new size); --shrink allows a smaller size",
	  "  --shrink   allow a smaller size (data past the new end is lost)\n" },
	{ "cdrom-insert", cli_cmd_cdrom_insert, "NAME ISO",
	  "put an ISO in the cd-rom drive (live only if the vm started with a cd-rom)", NULL },
	{ "cdrom-eject", cli_cmd_cdrom_eject, "NAME", "empty the cd-rom drive", NULL },
	{ "disk-snapshot-create", cli_cmd_disk_snapshot_create, "NAME DISK_ID TAG",
	  "take an internal qcow2 snapshot of one disk (live or off)", NULL },
	{ "disk-snapshot-list", cli_cmd_disk_snapshot_list, "NAME DISK_ID",
	  "list a disk's snapshots: ID TAG DATE VM-STATE", NULL },
	{ "disk-snapshot-revert", cli_cmd_disk_snapshot_revert, "NAME DISK_ID TAG|ID",
	  "bring a disk back to a snapshot (the vm must be off)", NULL },
	{ "disk-snapshot-delete", cli_cmd_disk_snapshot_delete, "NAME DISK_ID TAG|ID",
	  "delete a disk snapshot (live or off)", NULL },
	{ "image", cli_cmd_image, "import PATH|URL --name N [options] | list | show N | delete N",
	  "the image store: import (http/https or a file), list, show, delete",
	  "  import PATH|URL --name N   copy a file or download an http(s) URL into the store;\n"
	  "                             an interrupted download resumes when run again; a file\n"
	  "                             must lie under ROOT/images or QVM_DISK_ROOTS, no link\n"
	  "    --sha256 HEX             the expected SHA-256, checked before the image is stored\n"
	  "    --format qcow2|raw       the declared format (default: the probed one)\n"
	  "    --ca FILE                CA certificates for an https server with a private CA\n"
	  "    --max-size SIZE          refuse larger downloads (default 256G)\n"
	  "    --stall-timeout S        give up after S seconds without data (default 30)\n"
	  "  list                       NAME FORMAT VSIZE SIZE CREATED SOURCE\n"
	  "  show N                     an image's metadata\n"
	  "  delete N                   refused while a vm's disk uses the image; also\n"
	  "                             discards a partial download of N given up\n"
	  "Images with a backing file, an external data file, several extents or another\n"
	  "format than declared are refused. Use one with --disk NAME or --disk image=NAME.\n" },
	{ "disk-saveas", cli_cmd_disk_saveas, "NAME DISK_ID IMAGE_NAME",
	  "flatten a disk of a vm that is not running into a new store image", NULL },
	{ "snapshot-create", cli_cmd_snapshot_create, "NAME [TAG] [--no-memory] [--quiesce]",
	  "snapshot a vm: memory and disks while it runs, its disks when it is off (oldest pruned past the maximum)",
	  "  TAG           the snapshot's name (letters, digits, '.', '_', '-'; default snap-ID)\n"
	  "  --no-memory   a running vm: its disks only (the guest is paused meanwhile)\n"
	  "  --quiesce     freeze the guest's filesystems around it (guest agent); thawed on every path\n"
	  "At most 10 snapshots per vm, or snapshots.max (qvm update NAME snapshots.max=N);\n"
	  "once a new one is taken past it, the oldest is deleted. Every disk must be qcow2;\n"
	  "a TAG a disk already holds (a disk snapshot) is refused.\n" },
	{ "snapshot-revert", cli_cmd_snapshot_revert, "NAME SNAP [--running]",
	  "go back to a snapshot (id or tag): a running vm continues from the saved moment",
	  "  --running     a vm that is off: start it, from the snapshot's memory state if it has one\n"
	  "A snapshot without memory is reverted with the vm off; a stopped vm gets its disks back\n"
	  "(not its memory, unless --running). The definition goes back too: memory, vcpus, disk\n"
	  "sizes and (off) the cdrom. Refused while a disk was attached or detached since the\n"
	  "snapshot: detach or attach it first.\n" },
	{ "snapshot-delete", cli_cmd_snapshot_delete, "NAME SNAP",
	  "delete a snapshot from the disks and the tree; its children move to its parent", NULL },
	{ "snapshot-list", cli_cmd_snapshot_list, "NAME",
	  "print a vm's snapshots as a tree (parent: the snapshot the vm was at), current marked",
	  NULL },
	{ "host", cli_cmd_host_any,
	  "[set KEY=VALUE... | boot | shutdown [--timeout S] [--mode shutdown|suspend]]",
	  "show the host (accelerator, CPUs, memory, vms, scheduler settings); set, boot, shutdown",
	  "  (no subcommand)    accelerator and why, CPUs, memory, vms, deploy-pending, boot id\n"
	  "  set KEY=VALUE...   deploy-pending=on|off (the scheduler deploys PENDING vms;\n"
	  "                     default off), memory-reserve=SIZE (left free; default 256M)\n"
	  "  boot               at host boot: make the networks' bridges qvm made again, bring\n"
	  "                     back the autostart vms a host shutdown stopped (suspended ones\n"
	  "                     are resumed), then the once-per-boot autostart\n"
	  "  shutdown           at host shutdown: record the running vms as stopped by the host,\n"
	  "                     ACPI-shut them down in parallel (or suspend them), power off hard\n"
	  "                     whatever still runs after the timeout\n"
	  "    --timeout S      how long the guests have (default 60 s)\n"
	  "    --mode shutdown|suspend   shut down (default) or suspend each vm\n" },
	{ "scheduler", cli_cmd_scheduler, "[--once] [--interval S]",
	  "run scheduled actions, restart policies, autostart and deploy-pending (a loop, or one pass)",
	  "  --once          one pass (for a systemd timer or cron), then exit\n"
	  "  --interval S    without --once: seconds between passes (default 60)\n"
	  "A pass: reconcile vms nothing drives; run the scheduled actions that are due (one\n"
	  "missed while the host was down runs once, marked late); restart vms with a restart\n"
	  "policy whose qemu and supervisor are both gone (the supervisor's backoff and cap);\n"
	  "autostart --autostart vms once per host boot (skipping HOLD); with host set\n"
	  "deploy-pending=on, deploy PENDING vms in id order while memory lasts. Passes are\n"
	  "serialised by a lock; each action is recorded in the vm's history.\n" },
	{ "schedule", cli_cmd_schedule,
	  "NAME ACTION [ARG...] --at TIME [--every INTERVAL [--until TIME | --count N]] [ACTION's options]",
	  "schedule an action on a vm, once or repeated (run by qvm scheduler)",
	  "  ACTION          start, shutdown, poweroff, reboot, pause, unpause, suspend, stop,\n"
	  "                  resume, undeploy, snapshot-create [TAG], disk-snapshot-create\n"
	  "                  DISK_ID TAG, delete (a repeated TAG gets -N, the run's number)\n"
	  "  --at TIME       +30m, +2h, +1d, +10s (from now), HH:MM (its next occurrence), or\n"
	  "                  ISO 8601 2026-12-24T18:00[:SS] (local time, or Z / +HH:MM)\n"
	  "  --every I       repeat every I (30s, 30m, 2h, 1d); missed runs are skipped\n"
	  "  --until TIME    no run after TIME\n"
	  "  --count N       N runs in all\n"
	  "  --hard, --hard-after, --timeout S, --no-memory, --wipe   as the action takes them\n"
	  "A failed action records its error and is not retried; a repeated one moves on.\n" },
	{ "schedule-list", cli_cmd_schedule_list, "[NAME]",
	  "list scheduled actions: VM ID ACTION NEXT EVERY LAST (times local; --json: ms UTC)",
	  NULL },
	{ "schedule-delete", cli_cmd_schedule_delete, "NAME ID", "delete a scheduled action",
	  NULL },
	{ "net", cli_cmd_net,
	  "create NAME --bridge BR [--vlan ID --uplink DEV] [--mtu N] [--range FIRST-LAST] [--prefix N] [--gateway IP] [--dns IP] | list | show NAME | delete NAME",
	  "define, list, show or delete a network (a bridge, optionally a VLAN, and IP leases)",
	  "  create NAME            a network on bridge BR; an existing bridge is adopted (never deleted)\n"
	  "    --bridge BR          the bridge (made by qvm if it does not exist)\n"
	  "    --vlan ID --uplink DEV   also a VLAN interface DEV.ID on DEV, enslaved to the bridge\n"
	  "    --mtu N              MTU of the bridge (and VLAN interface); taps take the bridge's\n"
	  "    --range FIRST-LAST   addresses leased to nics, e.g. 10.0.0.10-10.0.0.99\n"
	  "    --prefix N           the network's prefix length (default 24), for leases and static ips\n"
	  "    --gateway IP --dns IP   what the guests are told (with or without a range)\n"
	  "  list                   NAME BRIDGE VLAN RANGE LEASES VMS\n"
	  "  show NAME              the network and its leases\n"
	  "  delete NAME            refused while a vm's nic uses it; removes only what qvm made\n" },
	{ "nic-attach", cli_cmd_nic_attach,
	  "NAME --network NET [--mac MAC] [--ip IP] [--model virtio|e1000]",
	  "add a nic: hotplugged into a running vm, or to a stopped vm's definition",
	  "  --network NET   the network (qvm net list)\n"
	  "  --mac MAC       its MAC (default: generated, stable, unique on the host)\n"
	  "  --ip IP         its address (default: leased from the network's range; without a\n"
	  "                  range, none: a static one must be free on the network)\n"
	  "  --model M       virtio (default) or e1000\n"
	  "A failure at any step undoes every step before it (no tap, lease or half-added device).\n" },
	{ "nic-detach", cli_cmd_nic_detach, "NAME NIC_ID",
	  "remove a nic (unplugged from a running vm: its tap goes, its lease is released)", NULL },
	{ "metrics", cli_cmd_metrics, "[--listen ADDR:PORT]",
	  "print the host's and the vms' metrics in Prometheus's text format, or serve them over HTTP",
	  "  --listen ADDR:PORT   serve GET /metrics over HTTP on ADDR:PORT (numeric; [ADDR6]:PORT)\n"
	  "                       until SIGTERM or SIGINT; every other path is 404. At most 8\n"
	  "                       connections at once, each with 5 s to ask; no TLS, so keep it\n"
	  "                       on loopback or a trusted network. A systemd socket unit may\n"
	  "                       pass the socket instead (LISTEN_FDS=1)\n"
	  "Host gauges (CPUs, memory, committed memory, vms by state); per vm, labelled name and\n"
	  "id: state (0/1 per state), memory, vcpus, restarts; while it runs, CPU seconds, QEMU's\n"
	  "RSS, uptime, disk read/write bytes and operations (label disk; left out while another\n"
	  "qvm command holds the vm), nic rx/tx bytes and packets (labels nic, tap).\n" },
	{ "accounting", cli_cmd_accounting, "[NAME] [--since TIME] [--until TIME] [--csv]",
	  "each run of the vms (or of NAME) from the journal: start, end, how it ended, hours, CPU seconds, memory-hours",
	  "  --since TIME   only what ran from TIME on (runs cut by it count their share)\n"
	  "  --until TIME   only what ran until TIME (default: now)\n"
	  "  --csv          one line per run, times in UTC (ISO 8601), instead of the table\n"
	  "TIME is YYYY-MM-DD[ HH:MM[:SS]] in local time (a final Z: UTC), @SECONDS since\n"
	  "the epoch, -N[smhd] ago, or now. A run is one qemu, from its spawn to its exit: a\n"
	  "reboot or a live snapshot revert stays in it, a restart by the policy starts\n"
	  "another. CPU seconds are recorded as a run ends ('-': not recorded, as for a\n"
	  "qemu that died with its supervisor; a total with '+' is then a lower bound).\n"
	  "Memory-hours are GiB of the definition times hours. DONE vms count (by id). Like\n"
	  "list, it first settles vms whose supervisor died (their qemu adopted, or their end\n"
	  "recorded).\n" },
	{ "vnc", cli_cmd_vnc, "NAME [--ttl S]",
	  "set a fresh one-time password on a running vm's VNC server; print its address, display and password",
	  "  --ttl S   the password expires S seconds from now (default 60; 1-86400); it works\n"
	  "            for any number of connections until then, and none after\n"
	  "The vm needs a display: create --vnc (or --vnc-listen ADDR), or qvm update NAME vnc=on\n"
	  "while it is off. Without a password set by this command, no client gets in.\n" },
	{ "top", cli_cmd_top, "[-b] [-n N] [-d S] [--sort KEY]",
	  "the active vms, refreshed every second: state, vCPU %, memory and QEMU's RSS, disk and nic bytes/s, uptime",
	  "  -b, --batch        plain samples, one after another (also when stdout or stdin is\n"
	  "                     not a terminal); until interrupted unless -n\n"
	  "  -n, --iterations N N samples, then exit (--json: an array of N, default 1)\n"
	  "  -d, --delay S      seconds between samples (0.1-3600; default 1)\n"
	  "  --sort KEY         cpu (the default), rss, disk, net, id, name or uptime, biggest first\n"
	  "Live on a terminal: c, r, d, n, i, a, u sort by cpu, rss, disk, net, id, name,\n"
	  "uptime; q quits. CPU % is of one host CPU (over QEMU's life in a vm's first sample);\n"
	  "disk rates come from QMP query-blockstats ('-' while another qvm command holds the\n"
	  "vm), nic rates from the taps' counters over netlink, seen from the guest.\n" },
	{ "migrate", cli_cmd_migrate, "NAME DEST [--remote-qvm PATH] [--remote-root DIR]",
	  "move a vm to another qvm host over ssh (cold: a running vm is suspended, moved, resumed there)",
	  "  DEST                 [ssh://][USER@]HOST[:PORT]; ssh is 'ssh' from PATH, or the command\n"
	  "                       line in QVM_SSH (split at spaces), e.g. 'ssh -i KEY -o UserKnownHostsFile=F'\n"
	  "  --remote-qvm PATH    qvm on the destination (default: qvm from its PATH)\n"
	  "  --remote-root DIR    its root (default: the destination's default)\n"
	  "From RUNNING or PAUSED (suspended first), SUSPENDED, STOPPED, POWEROFF or UNDEPLOYED.\n"
	  "The destination checks first: room, the networks by name, the nics' addresses free,\n"
	  "the name and uuid free, the base images there with the same SHA-256. Then the disks\n"
	  "(holes skipped) and the checkpoint go over the ssh connection; the vm is defined there\n"
	  "with the same name, uuid, MACs and definition, in the same state (resumed if it ran).\n"
	  "Only then is it DONE here, 'migrated to HOST', and its files removed; a failure before\n"
	  "leaves it here as it was (resumed if it ran) and nothing there.\n"
	  "--live, --insecure, --downtime and --bandwidth (live migration) are not built yet.\n" },
};

/* Not listed: the supervisor `start` spawns. */
static const cli_command hidden_supervise = { "__supervise", cli_cmd_supervise,
	                                      "ID --status-fd=N [--lock-fd=N] [--adopt]",
	                                      "the per-vm supervisor", NULL };

/* Not listed: what migrate runs on the destination over ssh. */
static const cli_command hidden_receive = { "__receive", cli_cmd_receive, "[--from HOST]",
	                                    "receive a migrating vm (JSON lines on stdin/stdout)",
	                                    NULL };

static void print_usage(FILE *f)
{
	int width = 0;

	fprintf(f, "usage: qvm " GLOBAL_USAGE "\n\n"
	           "qvm runs QEMU virtual machines on this host, without libvirt.\n\n"
	           "commands:\n");
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(commands); i++)
		if ((int)strlen(commands[i].name) > width)
			width = (int)strlen(commands[i].name);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-*s %s\n", width, commands[i].name, commands[i].summary);
	fprintf(f,
	        "\nglobal options (before the command or among its options):\n"
	        "  --root DIR     the root (default %s, or QVM_ROOT): journal, vms' files, images\n"
	        "  --json         print results as JSON; errors too, on stderr\n"
	        "  -q, --quiet    print less\n"
	        "  -v, --verbose  also trace QMP commands, replies, events and journal records on stderr\n"
	        "  --version      print qvm's version\n"
	        "\nRun 'qvm COMMAND --help' for a command's options.\n",
	        DEFAULT_ROOT);
}

static const cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	if (!strcmp(name, hidden_supervise.name))
		return &hidden_supervise;
	if (!strcmp(name, hidden_receive.name))
		return &hidden_receive;
	return NULL;
}

static int print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

	if (!s)
		return -ENOMEM;
	puts(s);
	free(s);
	return 0;
}

/* An error on stderr: "qvm: MSG" (usage errors: "qvm CMD: MSG" and the
 * usage line), or with --json one object: {"error": MSG} with "usage" for
 * usage errors, "errno" (its symbolic name, "ENOENT") and, for an error QEMU
 * reported, its QMP "class". */
static void print_error(const cli_ctx *ctx, const cli_command *cmd, int r, const util_err *err)
{
	const char *msg = err->msg[0] ? err->msg : strerror(r == CLI_EUSAGE ? EINVAL : -r);
	_cleanup_free_ char *usage = cmd ? util_xasprintf("qvm %s %s", cmd->name, cmd->usage)
	                                 : util_xstrdup("qvm " GLOBAL_USAGE);

	if (ctx->json) {
		_cleanup_json_ json_t *e = json_pack("{s:s}", "error", msg);
		_cleanup_free_ char *s = NULL;

		if (r == CLI_EUSAGE) {
			json_object_set_new(e, "usage", json_string(usage));
		} else {
			char num[16];

			json_object_set_new(e, "errno",
			                    json_string(util_errno_name(r, num, sizeof(num))));
			if (err->qmp_class[0])
				json_object_set_new(e, "class", json_string(err->qmp_class));
		}
		s = json_dumps(e, JSON_COMPACT);
		fprintf(stderr, "%s\n", s ? s : msg);
	} else if (r == CLI_EUSAGE && cmd) {
		fprintf(stderr, "qvm %s: %s\nusage: %s\n", cmd->name, msg, usage);
	} else if (r == CLI_EUSAGE) {
		fprintf(stderr, "qvm: %s\n", msg);
		print_usage(stderr);
	} else {
		fprintf(stderr, "qvm: %s\n", msg);
	}
}

int cli_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	cli_ctx ctx = { .root = getenv("QVM_ROOT") };
	_cleanup_strv_ char **roots = NULL;
	const cli_command *cmd;
	util_err err = { 0 };
	json_t *result = NULL;
	int c, r;

	if (!ctx.root || !*ctx.root)
		ctx.root = DEFAULT_ROOT;
	/* lifecycle re-executes qvm with this verb to supervise a VM */
	lc_set_supervisor_verb(hidden_supervise.name);
	opterr = 0;
	/* '+': stop at the command name; its options are its own */
	while ((c = getopt_long(argc, argv, "+:qvh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			ctx.root = optarg;
			break;
		case 'j':
			ctx.json = true;
			break;
		case 'q':
			cli_set_verbosity(&ctx, -1);
			break;
		case 'v':
			cli_set_verbosity(&ctx, 1);
			break;
		case 'h':
			print_usage(stdout);
			return 0;
		case 'V':
			printf("qvm %s\n", QVM_VERSION);
			return 0;
		case ':':
			cli_usage(&err, "option '%s' needs a value", argv[optind - 1]);
			print_error(&ctx, NULL, CLI_EUSAGE, &err);
			return 2;
		default:
			cli_usage(&err, "unknown option '%s'", argv[optind - 1]);
			print_error(&ctx, NULL, CLI_EUSAGE, &err);
			return 2;
		}
	}
	if (optind >= argc) {
		cli_usage(&err, "no command given");
		print_error(&ctx, NULL, CLI_EUSAGE, &err);
		return 2;
	}
	cmd = find_command(argv[optind]);
	if (!cmd) {
		if (ctx.json) {
			cli_usage(&err, "unknown command '%s'; see qvm --help", argv[optind]);
			print_error(&ctx, NULL, CLI_EUSAGE, &err);
		} else {
			fprintf(stderr, "qvm: unknown command '%s'; see qvm --help\n",
			        argv[optind]);
		}
		return 2;
	}
	ctx.cmd = cmd;
	roots = cli_disk_roots(&ctx);
	ctx.disk_roots = (const char *const *)roots;
	/* The supervisor prints nothing for people: it skips the locale's
	 * tables (~150 KiB resident for each running VM). */
	if (cmd != &hidden_supervise)
		setlocale(LC_CTYPE, "");
	r = cmd->run(&ctx, argc - optind, argv + optind, &result, &err);
	/* a usage error may stop the parse before a --json later on the line */
	for (int i = optind; r == CLI_EUSAGE && !ctx.json && i < argc && strcmp(argv[i], "--"); i++)
		ctx.json = !strcmp(argv[i], "--json");
	if (r < 0) {
		print_error(&ctx, cmd, r, &err);
		json_decref(result);
		return r == CLI_EUSAGE ? 2 : 1;
	}
	if (ctx.json && result)
		print_json(result);
	json_decref(result);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "qvm: cannot write the output: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
