#!/usr/bin/env python3
"""Lifecycle timings of one qvm VM against bare QEMU with the same argv.

usage: lifecycle.py QVM NAME WORKDIR RUNS [QUICK]

NAME is a defined, stopped qvm VM booting the test guest (QVM_ROOT set).
Each run boots it twice with qvm and twice as bare QEMU, then starts it
QUICK more times each way (stopped hard at once: more start samples for
little time), alternating which goes first:
  - start: `qvm start` returning (supervisor connected QMP, sent cont)
    against bare QEMU (argv from `qvm argv --json`, the fd= sockets replaced
    by `-qmp unix:PATH` and a serial file, no -no-shutdown) measured from
    exec to the QMP greeting + qmp_capabilities + cont answered;
  - ready: from the same start to the guest's QVM-READY serial line;
  - first boot ends with an ACPI shutdown: `qvm poweroff NAME` wall time
    against system_powerdown -> bare QEMU exit (reaped by us);
  - second boot ends hard: `qvm poweroff NAME --hard` against quit -> exit.
While qvm's guest is up it reads VmRSS/VmHWM/RssAnon of `qvm __supervise`
and VmRSS of its QEMU. Every process is spawned with posix_spawn and reaped with waitpid by
this process, so exit times are exact. Prints `key value` lines: medians
(ms, KiB) and sample counts. Kills what it started on any exit.
"""
import json
import os
import signal
import socket
import statistics
import sys
import time

READY = b"QVM-READY"
TIMEOUT = 90.0


def die(msg):
    raise RuntimeError(msg)


def now():
    return time.monotonic_ns()


def ms(ns):
    return ns / 1e6


class Bench:
    def __init__(self, qvm, name, work):
        self.qvm = qvm
        self.name = name
        self.work = work
        self.root = os.environ["QVM_ROOT"]
        self.log = os.path.join(work, "lifecycle.log")
        self.bare_pid = None
        self.qvm_running = False
        self.s = {}  # key -> list of samples

    def add(self, key, value):
        self.s.setdefault(key, []).append(value)

    # --- processes ---------------------------------------------------------
    def spawn(self, argv):
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fa = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                  (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]
            return os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
        finally:
            os.close(fd)

    def run(self, argv):
        """Runs argv to its end: wall ns. (No ru_maxrss here: a child
        spawned by a big process reports the parent's RSS as its peak, as
        Linux keeps the pre-exec high-water mark; bench/run.sh uses GNU time
        for peak RSS.)"""
        t0 = now()
        pid = self.spawn(argv)
        _, status = os.waitpid(pid, 0)
        t1 = now()
        if os.waitstatus_to_exitcode(status) != 0:
            die("%s failed (exit %d), see %s" % (" ".join(argv), os.waitstatus_to_exitcode(status), self.log))
        return t1 - t0

    def qvm_cmd(self, *args):
        return self.run([self.qvm, *args])

    # --- the guest's serial output -----------------------------------------
    @staticmethod
    def size(path):
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return 0

    def wait_ready(self, path, offset, t0, pid=None):
        """ns from t0 until READY appears in path after offset."""
        buf = b""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            if data:
                offset += len(data)
                buf = buf[-len(READY):] + data
                if READY in buf:
                    return now() - t0
            if pid is not None and os.waitpid(pid, os.WNOHANG)[0] == pid:
                self.bare_pid = None
                die("bare qemu exited before the guest was ready, see %s" % self.log)
            if time.monotonic() > deadline:
                die("no %s in %s after %d s" % (READY.decode(), path, TIMEOUT))
            time.sleep(0.002)

    # --- qvm ----------------------------------------------------------------
    def supervisor(self):
        """(supervisor pid, its qemu's pid) of our VM, from /proc."""
        sup = None
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if b"__supervise" in cmd and self.root.encode() in cmd:
                sup = int(p)
                break
        if sup is None:
            die("no 'qvm __supervise' process for root '%s'" % self.root)
        child = None
        try:
            with open("/proc/%d/task/%d/children" % (sup, sup)) as f:
                kids = f.read().split()
            child = int(kids[0]) if kids else None
        except OSError:
            pass
        return sup, child

    @staticmethod
    def status_kib(pid, field):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        die("no %s in /proc/%d/status" % (field, pid))

    @staticmethod
    def rollup_kib(pid):
        """(Pss, Private_Clean + Private_Dirty) of pid, from smaps_rollup:
        what the process really costs, its shared pages (libc, qvm's text)
        divided among the processes that map them."""
        f = {}
        with open("/proc/%d/smaps_rollup" % pid) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    f[parts[0][:-1]] = int(parts[1])
        return f.get("Pss", 0), f.get("Private_Clean", 0) + f.get("Private_Dirty", 0)

    def qvm_boot(self, end):
        """end: "acpi", "hard", or "quick" (hard poweroff at once: a start
        sample only, without waiting for the guest)."""
        console = self.console
        off = self.size(console)
        t0 = now()
        pid = self.spawn([self.qvm, "start", self.name])
        self.qvm_running = True
        _, status = os.waitpid(pid, 0)
        t_start = now() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            die("qvm start failed, see %s" % self.log)
        self.add("qvm_start", t_start)
        if end == "quick":
            self.qvm_cmd("poweroff", self.name, "--hard")
            self.qvm_running = False
            return
        self.add("qvm_ready", self.wait_ready(console, off, t0))
        sup, qemu = self.supervisor()
        self.add("sup_rss", self.status_kib(sup, "VmRSS"))
        self.add("sup_hwm", self.status_kib(sup, "VmHWM"))
        self.add("sup_anon", self.status_kib(sup, "RssAnon"))
        pss, uss = self.rollup_kib(sup)
        self.add("sup_pss", pss)
        self.add("sup_uss", uss)
        if qemu:
            self.add("qemu_rss", self.status_kib(qemu, "VmRSS"))
        if end == "hard":
            self.add("qvm_hard", self.qvm_cmd("poweroff", self.name, "--hard"))
        else:
            self.add("qvm_acpi", self.qvm_cmd("poweroff", self.name))
        self.qvm_running = False

    # --- bare QEMU ----------------------------------------------------------
    def bare_argv(self):
        out = os.path.join(self.work, "argv.json")
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            pid = os.posix_spawn(self.qvm, [self.qvm, "argv", self.name, "--json"], os.environ,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1)])
        finally:
            os.close(fd)
        if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
            die("qvm argv failed")
        with open(out) as f:
            argv = json.load(f)
        self.qmp_path = os.path.join(self.work, "bare-qmp.sock")
        self.serial_path = os.path.join(self.work, "bare-serial.log")
        res, i = [], 0
        while i < len(argv):
            a = argv[i]
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            if a == "-no-shutdown":  # bare QEMU exits when the guest is off
                i += 1
                continue
            if a == "-chardev" and nxt.startswith("socket,id=qmp-event,"):
                i += 2
                continue
            if a == "-mon" and nxt.startswith("chardev=qmp-event,"):
                i += 2
                continue
            if a == "-chardev" and nxt.startswith("socket,id=qmp-command,"):
                res += ["-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
                i += 2
                continue
            if a == "-mon" and nxt.startswith("chardev=qmp-command,"):
                i += 2
                continue
            if a == "-chardev" and nxt.startswith("socket,id=serial0,"):
                m = [o[len("logfile="):] for o in nxt.split(",") if o.startswith("logfile=")]
                if not m:
                    die("qvm's serial chardev has no logfile: %s" % nxt)
                self.console = m[0]
                res += ["-chardev", "file,id=serial0,path=%s" % self.serial_path]
                i += 2
                continue
            if "fd=" in a:
                die("unexpected fd in qvm argv: %s" % a)
            res.append(a)
            i += 1
        if "-qmp" not in res or not any(x.startswith("file,id=serial0") for x in res):
            die("qvm argv has not the expected shape: %s" % argv)
        return res

    def qmp_connect(self, pid):
        deadline = time.monotonic() + TIMEOUT
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                s.connect(self.qmp_path)
                return s
            except OSError:
                s.close()
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                self.bare_pid = None
                die("bare qemu exited at start, see %s" % self.log)
            if time.monotonic() > deadline:
                die("bare qemu's QMP socket never accepted")
            time.sleep(0.001)

    def qmp_read(self):
        while b"\n" not in self.qbuf:
            data = self.qsock.recv(65536)
            if not data:
                return None
            self.qbuf += data
        line, self.qbuf = self.qbuf.split(b"\n", 1)
        return json.loads(line)

    def qmp(self, cmd):
        self.qsock.sendall(json.dumps({"execute": cmd}).encode() + b"\n")
        while True:
            r = self.qmp_read()
            if r is None:
                return None  # closed (quit)
            if "event" in r:
                continue
            if "error" in r:
                die("%s: %s" % (cmd, r["error"]))
            return r["return"]

    def bare_boot(self, argv, end):
        for p in (self.qmp_path, self.serial_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        t0 = now()
        pid = self.spawn(argv)
        self.bare_pid = pid
        self.qsock = self.qmp_connect(pid)
        self.qsock.settimeout(TIMEOUT)
        self.qbuf = b""
        greeting = self.qmp_read()
        if not greeting or "QMP" not in greeting:
            die("no QMP greeting from bare qemu")
        self.qmp("qmp_capabilities")
        self.qmp("cont")
        self.add("bare_start", now() - t0)
        if end != "quick":
            self.add("bare_ready", self.wait_ready(self.serial_path, 0, t0, pid))
        t0 = now()
        self.qmp("system_powerdown" if end == "acpi" else "quit")
        os.waitpid(pid, 0)
        if end != "quick":
            self.add("bare_" + end, now() - t0)
        self.bare_pid = None
        self.qsock.close()

    # --- baseline process ---------------------------------------------------
    def sleep_rss(self):
        """VmRSS and RssAnon of an idle /bin/sleep: the floor of a process."""
        pid = self.spawn(["/bin/sleep", "60"])
        try:
            time.sleep(0.1)
            pss, uss = self.rollup_kib(pid)
            self.add("sleep_pss", pss)
            self.add("sleep_uss", uss)
            return self.status_kib(pid, "VmRSS"), self.status_kib(pid, "RssAnon")
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    def cleanup(self):
        if self.bare_pid:
            try:
                os.kill(self.bare_pid, signal.SIGKILL)
                os.waitpid(self.bare_pid, 0)
            except OSError:
                pass
            self.bare_pid = None
        if self.qvm_running:
            try:
                self.qvm_cmd("poweroff", self.name, "--hard")
            except Exception:
                pass
            self.qvm_running = False

    def main(self, runs, quick):
        argv = self.bare_argv()
        rss, anon = self.sleep_rss()
        self.add("sleep_rss", rss)
        self.add("sleep_anon", anon)
        for r in range(runs):
            for k, end in enumerate(["acpi", "hard"] + ["quick"] * quick):
                order = ("qvm", "bare") if (r + k) % 2 == 0 else ("bare", "qvm")
                for who in order:
                    if who == "qvm":
                        self.qvm_boot(end)
                    else:
                        self.bare_boot(argv, end)
            print("lifecycle: run %d/%d done" % (r + 1, runs), file=sys.stderr, flush=True)
        for k in sorted(self.s):
            v = statistics.median(self.s[k])
            if k.endswith(("_rss", "_hwm", "_anon", "_pss", "_uss")):
                print("%s %d" % (k, v))
            else:
                print("%s %.2f" % (k, ms(v)))
            print("%s_n %d" % (k, len(self.s[k])))
        if os.environ.get("BENCH_VERBOSE"):
            for k in sorted(self.s):
                div = 1 if k.endswith(("_rss", "_hwm", "_anon", "_pss", "_uss")) else 1e6
                print("lifecycle: %s: %s" % (k, " ".join("%.1f" % (v / div) for v in self.s[k])),
                      file=sys.stderr)


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.stderr.write(__doc__)
        sys.exit(2)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    b = Bench(sys.argv[1], sys.argv[2], sys.argv[3])
    try:
        b.main(int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    except RuntimeError as e:
        sys.stderr.write("lifecycle.py: %s\n" % e)
        sys.exit(1)
    finally:
        b.cleanup()
