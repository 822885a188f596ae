#!/usr/bin/env python3
"""A TCP to unix socket relay for the VNC tests: vncsnapshot speaks TCP
only, a vm with vnc "unix" listens on a unix socket.

usage: vnc_relay.py UNIX_SOCKET PORT_FILE

Listens on 127.0.0.1 at a free port from 6000 to 6899 (a VNC display
number from 100 up), writes the port to PORT_FILE, and joins each
connection to a new one to UNIX_SOCKET until it is killed.
"""
import os
import random
import socket
import sys
import threading


def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    path, port_file = sys.argv[1], sys.argv[2]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for _ in range(100):
        try:
            ls.bind(("127.0.0.1", 6000 + random.randint(0, 899)))
            break
        except OSError:
            continue
    ls.listen(4)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    while True:
        c, _ = ls.accept()
        u = socket.socket(socket.AF_UNIX)
        try:
            u.connect(path)
        except OSError:
            c.close()
            continue
        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()


if __name__ == "__main__":
    main()
