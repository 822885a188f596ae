#!/usr/bin/env python3
"""Disk hotplug timings of a qvm VM against bare QEMU running the same guest.

usage: disks.py QVM NAME WORKDIR GUESTDIR RUNS

NAME is a defined, stopped qvm VM booting the test guest (QVM_ROOT set).
NAME has one disk (vda). It is started, and a bare QEMU (pc, TCG, the same
kernel/initrd/append, a 64M qcow2 vda, -qmp on a unix socket, serial to a
file) is booted beside it. Then RUNS
times, alternating which goes first:
  - attach: `qvm disk-attach NAME --size 16M` until the guest prints a
    QVM-DEVICES line with vdb, against qemu-img create of a 16M qcow2 +
    blockdev-add + device_add on the bare QEMU until its guest prints vdb;
  - detach: `qvm disk-detach NAME 1` returning (DEVICE_DELETED waited for,
    blockdev-del done, file removed) against device_del -> DEVICE_DELETED
    -> blockdev-del (+ rm of the file) on the bare QEMU.
Prints `key value` lines: medians in ms and the sample count. Kills what it
started on any exit.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

TIMEOUT = 90.0


def now():
    return time.monotonic_ns()


class Serial:
    """Follows a serial log file for marker lines."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.buf = b""

    def skip(self):
        try:
            self.pos = os.path.getsize(self.path)
        except FileNotFoundError:
            self.pos = 0
        self.buf = b""

    def wait(self, pred, what):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.pos)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            self.pos += len(data)
            self.buf += data
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if pred(line.strip(b"\r").decode(errors="replace")):
                    return
            time.sleep(0.002)
        raise RuntimeError("timed out waiting for " + what + " in " + self.path)


class Qmp:
    def __init__(self, path):
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.f = self.s.makefile("rw")
        self.events = []
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            m = json.loads(self.f.readline())
            if "event" in m:
                self.events.append(m)
            elif "error" in m:
                raise RuntimeError(name + ": " + m["error"]["desc"])
            elif "return" in m:
                return m["return"]

    def wait_event(self, name, device):
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name and e.get("data", {}).get("device") == device:
                    del self.events[i]
                    return
            m = json.loads(self.f.readline())
            if "event" in m:
                self.events.append(m)


def has_vdb(line):
    return line.startswith("QVM-DEVICES ") and "vdb" in line


def no_vdb(line):
    return line.startswith("QVM-DEVICES ") and "vdb" not in line


def main():
    qvm, name, work, guest, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    env = dict(os.environ)
    procs = []

    def cleanup(*_):
        subprocess.run([qvm, "poweroff", name, "--hard"], env=env, capture_output=True)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if _:
            sys.exit(1)

    signal.signal(signal.SIGTERM, cleanup)
    try:
        show = json.loads(subprocess.run([qvm, "show", name, "--json"], env=env, check=True,
                                         capture_output=True).stdout)
        qlog = Serial(os.path.join(env["QVM_ROOT"], "vms", str(show["id"]), "console.log"))
        blog = Serial(os.path.join(work, "bare-disks.log"))
        sock = os.path.join(work, "bare-disks.qmp")
        append = open(os.path.join(guest, "append")).read().strip()
        subprocess.run([qvm, "start", name], env=env, check=True, capture_output=True)
        vda = os.path.join(work, "bare-vda.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "--", vda, "64M"], check=True)
        bare = subprocess.Popen(
            ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
             "-machine", "pc", "-accel", "tcg", "-m", "256M", "-kernel",
             os.path.join(guest, "vmlinuz"), "-initrd", os.path.join(guest, "initrd.img"),
             "-append", append, "-serial", "file:" + blog.path, "-qmp",
             "unix:%s,server=on,wait=off" % sock, "-blockdev",
             json.dumps({"node-name": "disk0", "driver": "qcow2",
                         "file": {"driver": "file", "filename": vda}}),
             "-device", "virtio-blk-pci,drive=disk0,id=disk0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(bare)
        qlog.wait(lambda l: l.startswith("QVM-READY"), "qvm guest READY")
        blog.wait(lambda l: l.startswith("QVM-READY"), "bare guest READY")
        qmp = Qmp(sock)

        q_att, b_att, q_det, b_det = [], [], [], []

        def qvm_round():
            qlog.skip()
            t0 = now()
            subprocess.run([qvm, "disk-attach", name, "--size", "16M"], env=env, check=True,
                           capture_output=True)
            qlog.wait(has_vdb, "vdb in the qvm guest")
            q_att.append(now() - t0)
            t0 = now()
            subprocess.run([qvm, "disk-detach", name, "1"], env=env, check=True,
                           capture_output=True)
            q_det.append(now() - t0)
            qlog.wait(no_vdb, "vdb gone in the qvm guest")

        def bare_round(i):
            path = os.path.join(work, "bare-disk%d.qcow2" % i)
            blog.skip()
            t0 = now()
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "--", path, "16M"],
                           check=True)
            qmp.cmd("blockdev-add", **{"node-name": "disk1", "driver": "qcow2",
                                       "file": {"driver": "file", "filename": path}})
            qmp.cmd("device_add", driver="virtio-blk-pci", drive="disk1", id="disk1")
            blog.wait(has_vdb, "vdb in the bare guest")
            b_att.append(now() - t0)
            t0 = now()
            qmp.cmd("device_del", id="disk1")
            qmp.wait_event("DEVICE_DELETED", "disk1")
            qmp.cmd("blockdev-del", **{"node-name": "disk1"})
            os.unlink(path)
            b_det.append(now() - t0)
            blog.wait(no_vdb, "vdb gone in the bare guest")

        for i in range(runs):
            if i % 2:
                bare_round(i)
                qvm_round()
            else:
                qvm_round()
                bare_round(i)
        med = lambda a: "%.1f" % (statistics.median(a) / 1e6)
        print("qvm_attach", med(q_att))
        print("bare_attach", med(b_att))
        print("qvm_detach", med(q_det))
        print("bare_detach", med(b_det))
        print("n", runs)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
