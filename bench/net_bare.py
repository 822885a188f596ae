#!/usr/bin/env python3
"""The baseline of `qvm nic-attach`: the same steps, bare, on a bare QEMU.

Usage: net_bare.py QEMU WORKDIR BRIDGE KERNEL INITRD APPEND
Run inside the bench's network namespace. Starts QEMU (pc, tcg, the test
guest) with a QMP socket, waits for the guest's ready marker on its serial
port and prints "ready". Then, for each line "attach" on stdin, one round:
the tap made the way qvm makes it (open /dev/net/tun, TUNSETIFF with
IFF_TAP|IFF_NO_PI|IFF_VNET_HDR|IFF_TUN_EXCL, enslaved to the bridge with
its MTU and brought up: here with ioctls, qvm does it in one netlink
change), then getfd + netdev_add + device_add; timed from the open to
device_add's reply, printed as "attach <microseconds>". Untimed after it:
device_del, DEVICE_DELETED, netdev_del and the fd closed, so that every
round starts from the same place (the qvm side detaches between rounds
too). EOF on stdin ends it (QEMU is killed).
"""
import array
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_TUN_EXCL = 0x0002, 0x1000, 0x4000, 0x8000
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
SIOCGIFMTU, SIOCSIFMTU = 0x8921, 0x8922
SIOCGIFINDEX, SIOCBRADDIF = 0x8933, 0x89A2
IFF_UP = 0x1
IFREQ = 40  # sizeof(struct ifreq)


def ifreq(name, fmt="", *vals):
    return struct.pack("16s" + fmt, name.encode(), *vals).ljust(IFREQ, b"\0")


class Qmp:
    def __init__(self, path):
        for _ in range(400):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                time.sleep(0.05)
        else:
            raise RuntimeError(f"no QMP socket at {path}")
        self.f = self.s.makefile("r")
        self.events = []
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
            self.events.append(r)

    def wait_event(self, name, device, timeout=30):
        self.s.settimeout(timeout)
        try:
            while True:
                for e in self.events:
                    if e.get("event") == name and e.get("data", {}).get("device") == device:
                        self.events.remove(e)
                        return
                self.events.append(json.loads(self.f.readline()))
        finally:
            self.s.settimeout(None)


def make_tap(name, bridge, ctl):
    """What net_tap_create() does: the tap, enslaved, the bridge's MTU, up."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, ifreq(name, "H", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL))
    index = struct.unpack_from("i", fcntl.ioctl(ctl, SIOCGIFINDEX, ifreq(name)), 16)[0]
    fcntl.ioctl(ctl, SIOCBRADDIF, ifreq(bridge, "i", index))
    mtu = struct.unpack_from("i", fcntl.ioctl(ctl, SIOCGIFMTU, ifreq(bridge)), 16)[0]
    fcntl.ioctl(ctl, SIOCSIFMTU, ifreq(name, "i", mtu))
    flags = struct.unpack_from("H", fcntl.ioctl(ctl, SIOCGIFFLAGS, ifreq(name)), 16)[0]
    fcntl.ioctl(ctl, SIOCSIFFLAGS, ifreq(name, "H", flags | IFF_UP))
    return fd


def wait_ready(console, timeout=180):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(console, "rb") as f:
                if b"QVM-READY" in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the bare guest did not get ready")


def main():
    qemu, work, bridge, kernel, initrd, append = sys.argv[1:7]
    sock = os.path.join(work, "bare-net.qmp")
    console = os.path.join(work, "bare-net.console")
    log = open(os.path.join(work, "bare-net.log"), "w")
    p = subprocess.Popen([qemu, "-nodefaults", "-display", "none", "-machine", "pc", "-accel", "tcg",
                          "-m", "256M", "-kernel", kernel, "-initrd", initrd, "-append", append,
                          "-qmp", f"unix:{sock},server=on,wait=off", "-serial", f"file:{console}"],
                         stdout=log, stderr=log)
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        q = Qmp(sock)
        wait_ready(console)
        print("ready", flush=True)
        i = 0
        for line in sys.stdin:
            if line.strip() != "attach":
                continue
            name, fdname, netdev, dev = f"qtbare{i}", f"t{i}", f"net{i}", f"nic{i}"
            t0 = time.monotonic()
            fd = make_tap(name, bridge, ctl)
            q.cmd("getfd", {"fdname": fdname}, fd=fd)
            q.cmd("netdev_add", {"type": "tap", "id": netdev, "fd": fdname, "vhost": False})
            q.cmd("device_add", {"driver": "virtio-net-pci", "netdev": netdev, "id": dev,
                                 "mac": "52:54:00:be:%02x:%02x" % (i >> 8 & 255, i & 255)})
            us = (time.monotonic() - t0) * 1e6
            print("attach %d" % us, flush=True)
            q.cmd("device_del", {"id": dev})
            q.wait_event("DEVICE_DELETED", dev)
            q.cmd("netdev_del", {"id": netdev})
            os.close(fd)
            i += 1
    finally:
        p.kill()
        p.wait()


main()
