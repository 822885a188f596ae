#!/usr/bin/env python3
"""The baseline of `qvm nic-attach`: the bare QMP sequence on a bare QEMU.

Usage: net_bare.py QEMU WORKDIR BRIDGE ROUNDS KERNEL INITRD APPEND
Run inside the bench's network namespace. Starts QEMU (pc, tcg, the test
guest) with a QMP socket, then per round makes a tap (untimed: TUNSETIFF,
enslaved and up with `ip`), and times getfd + netdev_add + device_add.
Prints "bare_attach <median ms>". Devices stay (as with the qvm side);
taps go with QEMU.
"""
import array
import fcntl
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


class Qmp:
    def __init__(self, path):
        for _ in range(200):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        self.f = self.s.makefile("r")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, args=None, fd=None):
        msg = json.dumps({"execute": name, "arguments": args or {}}).encode()
        if fd is None:
            self.s.sendall(msg)
        else:
            self.s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        while True:
            r = json.loads(self.f.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error']}")


def tap(name, bridge):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    subprocess.run(["ip", "link", "set", name, "master", bridge, "up"], check=True)
    return fd


def main():
    qemu, work, bridge, rounds, kernel, initrd, append = sys.argv[1:8]
    rounds = int(rounds)
    sock = os.path.join(work, "bare-net.qmp")
    log = open(os.path.join(work, "bare-net.log"), "w")
    p = subprocess.Popen([qemu, "-nodefaults", "-display", "none", "-machine", "pc", "-accel", "tcg",
                          "-m", "256M", "-kernel", kernel, "-initrd", initrd, "-append", append,
                          "-qmp", f"unix:{sock},server=on,wait=off", "-serial", "null"],
                         stdout=log, stderr=log)
    try:
        q = Qmp(sock)
        times = []
        for i in range(rounds):
            fd = tap(f"qtbare{i}", bridge)
            t0 = time.monotonic()
            q.cmd("getfd", {"fdname": f"t{i}"}, fd=fd)
            q.cmd("netdev_add", {"type": "tap", "id": f"net{i}", "fd": f"t{i}", "vhost": False})
            q.cmd("device_add", {"driver": "virtio-net-pci", "netdev": f"net{i}", "id": f"nic{i}",
                                 "mac": "52:54:00:be:00:%02x" % i})
            times.append((time.monotonic() - t0) * 1000)
            os.close(fd)
        print("bare_attach %.2f" % statistics.median(times))
    finally:
        p.kill()
        p.wait()


main()
