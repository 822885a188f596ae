#!/usr/bin/env python3
"""Suspend and resume of a running qvm VM against bare QEMU's migration to
and from a file.

usage: suspend.py QVM NAME WORKDIR ROUNDS

NAME is a defined, stopped qvm VM booting the test guest (QVM_ROOT set).
Each round boots it once with qvm and once as bare QEMU with the same argv
(as lifecycle.py builds it), alternating which goes first, and with the
guest up:
  - suspend: `qvm suspend NAME` wall time against, on bare QEMU, stop,
    migrate-set-parameters (no bandwidth cap), getfd of a file we opened,
    migrate "fd:", query-migrate until completed, fsync of the file and quit
    -> exit;
  - resume: `qvm resume NAME` against bare QEMU spawned with -incoming defer
    -> greeting + caps, getfd, migrate-incoming "fd:", query-migrate until
    completed, cont answered.
qvm's figures include what bare QEMU does not: the checkpoint's SHA-256
(computed when written, checked before QEMU reads it) and the journal.
Prints `key value` lines: medians in ms, sample counts, and the
checkpoint's size in bytes.
"""
import os
import signal
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lifecycle import die, ms, now, on_signal  # noqa: E402
from snapshot import SnapBench  # noqa: E402


class SuspendBench(SnapBench):
    def getfd(self, fd):
        msg = b'{"execute": "getfd", "arguments": {"fdname": "ck"}}\n'
        socket.send_fds(self.qsock, [msg], [fd])
        while True:
            r = self.qmp_read()
            if r is None:
                die("bare qemu closed QMP during getfd")
            if "error" in r:
                die("getfd: %s" % r["error"])
            if "return" in r:
                return

    def migrated(self):
        while True:
            st = self.qmp_args("query-migrate").get("status")
            if st == "completed":
                return
            if st in ("failed", "cancelled"):
                die("bare migration %s" % st)
            time.sleep(0.002)

    def bare_qemu(self, argv):
        for p in (self.qmp_path, self.serial_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        pid = self.spawn(argv)
        self.bare_pid = pid
        self.qsock = self.qmp_connect(pid)
        self.qsock.settimeout(600)
        self.qbuf = b""
        self.events = []
        greeting = self.qmp_read()
        if not greeting or "QMP" not in greeting:
            die("no QMP greeting from bare qemu")
        self.qmp_args("qmp_capabilities")
        return pid

    def bare_round(self, argv):
        path = os.path.join(self.work, "bare-checkpoint")
        t0 = now()
        pid = self.bare_qemu(argv)
        self.qmp_args("cont")
        self.wait_ready(self.serial_path, 0, t0, pid)
        time.sleep(1)
        t = now()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.qmp_args("stop")
        self.qmp_args("migrate-set-parameters", {"max-bandwidth": 1 << 40})
        self.getfd(fd)
        self.qmp_args("migrate", {"uri": "fd:ck"})
        self.migrated()
        os.fsync(fd)
        os.close(fd)
        self.qmp_args("quit")
        os.waitpid(pid, 0)
        self.add("bare_suspend", now() - t)
        self.bare_pid = None
        self.qsock.close()
        self.s.setdefault("bare_size", []).append(os.stat(path).st_size)
        t = now()
        pid = self.bare_qemu(argv + ["-incoming", "defer"])
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.getfd(fd)
        os.close(fd)
        self.qmp_args("migrate-incoming", {"uri": "fd:ck"})
        self.migrated()
        self.qmp_args("cont")
        self.add("bare_resume", now() - t)
        self.qmp_args("quit")
        os.waitpid(pid, 0)
        self.bare_pid = None
        self.qsock.close()
        os.unlink(path)

    def qvm_round(self):
        console = self.console
        off = self.size(console)
        t0 = now()
        self.qvm_running = True
        self.qvm_cmd("start", self.name)
        self.wait_ready(console, off, t0)
        time.sleep(1)
        self.add("qvm_suspend", self.qvm_cmd("suspend", self.name))
        ckpt = os.path.join(os.environ["QVM_ROOT"], "vms", self.vm_id(), "checkpoint")
        self.s.setdefault("qvm_size", []).append(os.stat(ckpt).st_size)
        self.add("qvm_resume", self.qvm_cmd("resume", self.name))
        self.qvm_cmd("poweroff", self.name, "--hard")
        self.qvm_running = False

    def vm_id(self):
        # the VM's folder: the only one under vms/ in this bench root
        return sorted(os.listdir(os.path.join(os.environ["QVM_ROOT"], "vms")))[0]

    def suspend_main(self, rounds):
        argv = self.bare_argv()
        for r in range(rounds):
            for who in (("qvm", "bare") if r % 2 == 0 else ("bare", "qvm")):
                if who == "qvm":
                    self.qvm_round()
                else:
                    self.bare_round(argv)
            print("suspend: round %d/%d done" % (r + 1, rounds), file=sys.stderr, flush=True)
        for k in sorted(self.s):
            if k.endswith("_size"):
                print("%s %d" % (k, statistics.median(self.s[k])))
            else:
                print("%s %.2f" % (k, ms(statistics.median(self.s[k]))))
                print("%s_n %d" % (k, len(self.s[k])))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        sys.exit(2)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    b = SuspendBench(sys.argv[1], sys.argv[2], sys.argv[3])
    try:
        b.suspend_main(int(sys.argv[4]))
    except RuntimeError as e:
        sys.stderr.write("suspend.py: %s\n" % e)
        sys.exit(1)
    finally:
        b.cleanup()
