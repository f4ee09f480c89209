#!/usr/bin/python3
"""TEST FIXTURE ONLY: a websocket handshake through the edge, as a browser's socket.io client starts it.

Usage: ws_probe.py DOMAIN PATH CAFILE

Prints JSON: the status line and headers nginx answered with, the first text
frame the upstream sent (the fixture's JSON) and the answer to a frame sent
back (the fixture echoes it).
"""
import base64
import json
import os
import socket
import ssl
import struct
import sys

DOMAIN, PATH, CAFILE = sys.argv[1:4]


def read_frame(stream):
    dummy, size = struct.unpack("!BB", stream.read(2))
    if size == 126:
        size = struct.unpack("!H", stream.read(2))[0]
    return stream.read(size).decode()


context = ssl.create_default_context(cafile=CAFILE)
context.set_alpn_protocols(["http/1.1"])
with socket.create_connection((DOMAIN, 443), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
        key = base64.b64encode(os.urandom(16)).decode()
        tls.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (PATH, DOMAIN, key)).encode())
        stream = tls.makefile("rb")
        status = stream.readline().decode().strip()
        headers = {}
        for line in iter(stream.readline, b"\r\n"):
            name, dummy, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        result = {"status": status, "headers": headers}
        if " 101 " in status + " ":
            result["first_frame"] = json.loads(read_frame(stream))
            payload = b"ping-through-the-edge"
            mask = os.urandom(4)
            tls.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask
                        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            result["echo"] = read_frame(stream)
print(json.dumps(result))
