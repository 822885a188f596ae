#!/usr/bin/env python3
"""VM snapshot timings of a running qvm VM against the bare QMP jobs.

usage: snapshot.py QVM NAME WORKDIR BOOTS SAMPLES

NAME is a defined, stopped qvm VM with one qcow2 disk booting the test
guest (QVM_ROOT set). Each of BOOTS rounds boots it once with qvm and once
as bare QEMU with the same argv (as lifecycle.py builds it; the disk is
free since only one of them runs), alternating which goes first, and with
the guest up takes SAMPLES snapshots with memory and reverts to each:
  - create: `qvm snapshot-create NAME TAG` wall time against, on bare QEMU,
    snapshot-save (job-id, tag, vmstate and devices = the disk's node) sent
    -> JOB_STATUS_CHANGE concluded -> query-jobs -> job-dismiss answered;
  - revert: `qvm snapshot-revert NAME TAG` against snapshot-load the same way.
Snapshots are deleted between samples (not timed) so the disk stays small.
Prints `key value` lines: medians in ms and sample counts.
"""
import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lifecycle import Bench, die, ms, now, on_signal  # noqa: E402
import signal  # noqa: E402


class SnapBench(Bench):
    def qmp_args(self, cmd, args=None):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.qsock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.qmp_read()
            if r is None:
                die("bare qemu closed QMP during %s" % cmd)
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                die("%s: %s" % (cmd, r["error"]))
            return r["return"]

    def job(self, cmd, args):
        """What qvm does for a job: start, wait for concluded, check, dismiss."""
        self.events = []
        self.qmp_args(cmd, args)
        jid = args["job-id"]
        while True:
            done = any(e.get("event") == "JOB_STATUS_CHANGE" and e["data"].get("id") == jid and
                       e["data"].get("status") == "concluded" for e in self.events)
            if done:
                break
            r = self.qmp_read()
            if r is None:
                die("bare qemu closed QMP during %s" % cmd)
            if "event" in r:
                self.events.append(r)
        for j in self.qmp_args("query-jobs"):
            if j["id"] == jid and j.get("error"):
                die("%s: %s" % (cmd, j["error"]))
        self.qmp_args("job-dismiss", {"id": jid})

    def bare_round(self, argv, samples, tag0):
        for p in (self.qmp_path, self.serial_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        t0 = now()
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
        self.qmp_args("cont")
        self.wait_ready(self.serial_path, 0, t0, pid)
        node = "disk0"
        for k in range(samples):
            tag = "%s-%d" % (tag0, k)
            t = now()
            self.job("snapshot-save", {"job-id": "b-save", "tag": tag, "vmstate": node,
                                       "devices": [node]})
            self.add("bare_create", now() - t)
            time.sleep(0.3)
            t = now()
            self.job("snapshot-load", {"job-id": "b-load", "tag": tag, "vmstate": node,
                                       "devices": [node]})
            self.add("bare_revert", now() - t)
            self.job("snapshot-delete", {"job-id": "b-del", "tag": tag, "devices": [node]})
        self.qmp_args("quit")
        os.waitpid(pid, 0)
        self.bare_pid = None
        self.qsock.close()

    def qvm_round(self, samples, tag0):
        console = self.console
        off = self.size(console)
        t0 = now()
        self.qvm_running = True
        self.qvm_cmd("start", self.name)
        self.wait_ready(console, off, t0)
        for k in range(samples):
            tag = "%s-%d" % (tag0, k)
            self.add("qvm_create", self.qvm_cmd("snapshot-create", self.name, tag))
            time.sleep(0.3)
            self.add("qvm_revert", self.qvm_cmd("snapshot-revert", self.name, tag))
            self.qvm_cmd("snapshot-delete", self.name, tag)
        self.qvm_cmd("poweroff", self.name, "--hard")
        self.qvm_running = False

    def snap_main(self, boots, samples):
        argv = self.bare_argv()
        for r in range(boots):
            order = ("qvm", "bare") if r % 2 == 0 else ("bare", "qvm")
            for who in order:
                if who == "qvm":
                    self.qvm_round(samples, "q%d" % r)
                else:
                    self.bare_round(argv, samples, "b%d" % r)
            print("snapshot: round %d/%d done" % (r + 1, boots), file=sys.stderr, flush=True)
        for k in sorted(self.s):
            print("%s %.2f" % (k, ms(statistics.median(self.s[k]))))
            print("%s_n %d" % (k, len(self.s[k])))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.stderr.write(__doc__)
        sys.exit(2)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    b = SnapBench(sys.argv[1], sys.argv[2], sys.argv[3])
    try:
        b.snap_main(int(sys.argv[4]), int(sys.argv[5]))
    except RuntimeError as e:
        sys.stderr.write("snapshot.py: %s\n" % e)
        sys.exit(1)
    finally:
        b.cleanup()
