#!/usr/bin/env python3
"""A small HTTP server for the image tests, on 127.0.0.1 and a free port.

    httpd.py --dir DIR --port-file FILE [--log FILE] [--tls CERT KEY]

Serves the files of DIR with Range support (bytes=N- and bytes=N-M), a
strong ETag (from the file's size and mtime) and Last-Modified, If-Range
(a Range whose If-Range no longer matches gets the whole file, 200), and
a few misbehaviours chosen by the path:

    /FILE                  the file
    /cut/N/FILE            the first request (of this path) gets the full
                           headers but only N bytes, then the connection is
                           closed; later ones are served normally
    /stall/N/FILE          N bytes, then nothing (the connection stays open)
    /stallonce/N/FILE      like stall for the first request, normal later
    /redirect/FILE         302 to http://127.0.0.1:PORT/FILE
    /redirect-file/PATH    302 to file:///PATH
    /wrong/FILE            as many bytes as FILE has, but other content
    /norange/FILE          the whole file whatever Range says
    /status/CODE/FILE      an error status CODE
    /chunked/FILE          the file with Transfer-Encoding: chunked (no
                           Content-Length: only the client's own count
                           can cap its size)
    /nolength/FILE         the file with neither Content-Length nor
                           chunking, its end the closed connection
    /novalidator/FILE      the file without ETag and Last-Modified
    /ifrangeblind/N/FILE   like stallonce, but later requests honour Range
                           whatever If-Range says (as a careless proxy
                           would): a changed file comes back spliced

Each request is logged to --log as one line:
"METHOD PATH range=VALUE if-range=VALUE" ("-" when absent).
The port goes to --port-file once the server listens (--port N: that
port, e.g. to come back on the port of a server that was stopped). With
--tls it speaks https with that certificate and key (PEM).
"""
import argparse
import email.utils
import http.server
import os
import re
import sys
import threading
import time

ARGS = None
CUT_DONE = set()
LOCK = threading.Lock()


def log_request_line(line):
    if not ARGS.log:
        return
    with LOCK, open(ARGS.log, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_file(self, path, data_fn=None, cut=None, stall=None, honour_range=True,
                  framing="length", validators=True, honour_if_range=True):
        full = os.path.join(ARGS.dir, path)
        if "/" in path or not os.path.isfile(full):
            return self.send_error_plain(404)
        st = os.stat(full)
        size = st.st_size
        etag = '"%x-%x"' % (size, st.st_mtime_ns)
        lastmod = email.utils.formatdate(st.st_mtime, usegmt=True)
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and if_range and honour_if_range and \
                (not validators or if_range.strip() not in (etag, lastmod)):
            rng = None  # RFC 9110: a stale If-Range gets the whole file
        partial = False
        if rng and honour_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m:
                return self.send_error_plain(416)
            start = int(m.group(1))
            if m.group(2):
                end = min(int(m.group(2)), size - 1)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            partial = True
        length = end - start + 1
        self.send_response(206 if partial else 200)
        if partial:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        if framing == "length":
            self.send_header("Content-Length", str(length))
        elif framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        if validators:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", lastmod)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        sent = 0
        limit = length
        if cut is not None:
            limit = min(cut, length)
        if stall is not None:
            limit = min(stall, length)
        with open(full, "rb") as f:
            f.seek(start)
            while sent < limit:
                chunk = f.read(min(1 << 20, limit - sent))
                if not chunk:
                    break
                if data_fn:
                    chunk = data_fn(chunk)
                try:
                    if framing == "chunked":
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    else:
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                sent += len(chunk)
        try:
            if framing == "chunked" and sent == length:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        if stall is not None:
            # hold the connection without sending; the client gives up
            for _ in range(600):
                time.sleep(1)
            self.close_connection = True
            return
        if cut is not None and sent < length:
            self.close_connection = True

    def send_error_plain(self, code):
        body = b"error\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        log_request_line("GET %s range=%s if-range=%s" % (
            self.path, self.headers.get("Range", "-"), self.headers.get("If-Range", "-")))
        parts = self.path.lstrip("/").split("/")
        kind = parts[0]
        if kind == "cut" and len(parts) == 3:
            with LOCK:
                first = self.path not in CUT_DONE
                CUT_DONE.add(self.path)
            return self.send_file(parts[2], cut=int(parts[1]) if first else None)
        if kind == "stallonce" and len(parts) == 3:
            with LOCK:
                first = self.path not in CUT_DONE
                CUT_DONE.add(self.path)
            return self.send_file(parts[2], stall=int(parts[1]) if first else None)
        if kind == "ifrangeblind" and len(parts) == 3:
            with LOCK:
                first = self.path not in CUT_DONE
                CUT_DONE.add(self.path)
            return self.send_file(parts[2], stall=int(parts[1]) if first else None,
                                  honour_if_range=False)
        if kind == "stall" and len(parts) == 3:
            return self.send_file(parts[2], stall=int(parts[1]))
        if kind == "redirect" and len(parts) == 2:
            return self.redirect("http://127.0.0.1:%d/%s" % (self.server.server_port, parts[1]))
        if kind == "redirect-file":
            return self.redirect("file:///" + "/".join(parts[1:]))
        if kind == "wrong" and len(parts) == 2:
            return self.send_file(parts[1], data_fn=lambda c: bytes(b ^ 0x5A for b in c))
        if kind == "norange" and len(parts) == 2:
            return self.send_file(parts[1], honour_range=False)
        if kind == "status" and len(parts) == 3:
            return self.send_error_plain(int(parts[1]))
        if kind == "chunked" and len(parts) == 2:
            return self.send_file(parts[1], framing="chunked")
        if kind == "nolength" and len(parts) == 2:
            return self.send_file(parts[1], framing="close")
        if kind == "novalidator" and len(parts) == 2:
            return self.send_file(parts[1], validators=False)
        if len(parts) == 1:
            return self.send_file(parts[0])
        return self.send_error_plain(404)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--port", type=int, default=0)
    ARGS = p.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    if ARGS.tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls[0], ARGS.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_port)
    os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
