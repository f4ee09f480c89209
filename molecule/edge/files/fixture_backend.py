#!/usr/bin/python3
"""TEST FIXTURE ONLY: stands in for one Dify service behind the edge.

Usage: fixture_backend.py NAME PORT

Every response is JSON naming this fixture, the path it received and the
request headers, so a test can tell which upstream answered and what nginx
forwarded.  ``?stream=N&interval=S`` answers with N server-sent events, one
every S seconds, flushed one by one (chunked), to detect buffering proxies.
A websocket upgrade (``Upgrade: websocket``) is answered with 101, then one
text frame holding the same JSON, then the first frame the client sends is
echoed back (the websocket api's stand-in).
"""
import base64
import hashlib
import json
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME = sys.argv[1]
PORT = int(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "difyops-fixture"

    def log_message(self, fmt, *args):  # keep the journal quiet
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _frame(self, payload):
        """One unmasked text frame (server to client)."""
        size = len(payload)
        head = struct.pack("!BB", 0x81, size) if size < 126 else struct.pack("!BBH", 0x81, 126, size)
        return head + payload

    def _read_frame(self):
        """The payload of one masked client frame (at most 65535 bytes)."""
        dummy, size = struct.unpack("!BB", self.rfile.read(2))
        size &= 0x7F
        if size == 126:
            size = struct.unpack("!H", self.rfile.read(2))[0]
        mask = self.rfile.read(4)
        data = self.rfile.read(size)
        return bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def _websocket(self, url):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        hello = json.dumps({"service": NAME, "path": url.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.wfile.write(self._frame(hello))
        self.wfile.flush()
        self.wfile.write(self._frame(b"echo:" + self._read_frame()))
        self.wfile.flush()
        self.close_connection = True

    def _answer(self):
        url = urlsplit(self.path)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket(url)
            return
        body = self._body()
        query = parse_qs(url.query)
        if "stream" in query:
            self._stream(int(query["stream"][0]), float(query.get("interval", ["1"])[0]))
            return
        payload = json.dumps({
            "service": NAME,
            "method": self.command,
            "path": url.path,
            "body_bytes": len(body),
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, count, interval):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(count):
            chunk = ("data: %s %d %.3f\n\n" % (NAME, i, time.time())).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            if i + 1 < count:
                time.sleep(interval)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
