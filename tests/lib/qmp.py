#!/usr/bin/env python3
"""Tiny QMP client for end-to-end tests: one command over a QEMU QMP socket.

usage: qmp.py [-t SECONDS] [-e EVENT[:VALUE]] SOCKET COMMAND [JSON-ARGS]

Waits up to SECONDS (default 10) for the socket to accept, negotiates
capabilities, runs COMMAND with the JSON object JSON-ARGS as its arguments
and prints the "return" value as one line of JSON. With -e it then also
waits (same timeout) for the event EVENT, if VALUE is given one whose data
has a top-level member equal to VALUE (DEVICE_DELETED:nic1 is the event
with "device": "nic1", not the one for its virtio backend), and prints it
as a second line. Events that arrive while COMMAND runs count too.
Exit status: 0 success, 1 QMP error (its description on stderr), 2 usage,
3 no connection, timeout or closed socket (e.g. after `quit`, a closed
socket with no reply counts as success).
"""
import json
import socket
import sys
import time


def die(code, msg):
    sys.stderr.write("qmp.py: %s\n" % msg)
    sys.exit(code)


class Conn:
    def __init__(self, path, deadline):
        self.deadline = deadline
        self.buf = b""
        self.events = []
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() >= deadline:
                    die(3, "cannot connect to '%s': %s" % (path, e.strerror))
                time.sleep(0.02)

    def read(self):
        """Next JSON message, or None when QEMU closed the socket."""
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                die(3, "timed out")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                die(3, "timed out")
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, args=None):
        msg = {"execute": cmd}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read()
            if r is None:
                return None
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                die(1, "%s: %s" % (cmd, r["error"].get("desc", r["error"])))
            return r.get("return")

    def wait_event(self, spec):
        name, _, value = spec.partition(":")
        while True:
            for ev in self.events:
                data = ev.get("data") or {}
                if ev["event"] == name and (
                    not value or value in [str(v) for v in data.values()]
                ):
                    return ev
            self.events = []
            r = self.read()
            if r is None:
                die(3, "socket closed before event %s" % name)
            if "event" in r:
                self.events.append(r)


def main(argv):
    timeout, event = 10.0, None
    while argv and argv[0].startswith("-"):
        opt = argv.pop(0)
        if opt in ("-t", "-e") and argv:
            val = argv.pop(0)
            if opt == "-t":
                timeout = float(val)
            else:
                event = val
        else:
            die(2, "unknown option '%s'" % opt)
    if len(argv) not in (2, 3):
        die(2, "usage: qmp.py [-t SECONDS] [-e EVENT[:VALUE]] SOCKET COMMAND [JSON-ARGS]")
    try:
        args = json.loads(argv[2]) if len(argv) == 3 else None
    except ValueError as e:
        die(2, "JSON-ARGS is not JSON: %s" % e)
    c = Conn(argv[0], time.monotonic() + timeout)
    greeting = c.read()
    if greeting is None or "QMP" not in greeting:
        die(3, "no QMP greeting")
    c.execute("qmp_capabilities")
    ret = c.execute(argv[1], args)
    if ret is None and argv[1] != "quit":
        die(3, "socket closed before the reply to %s" % argv[1])
    print(json.dumps(ret if ret is not None else {}))
    if event:
        print(json.dumps(c.wait_event(event)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
