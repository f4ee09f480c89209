#!/usr/bin/python3
"""TEST FIXTURE ONLY: time the arrival of each server-sent event.

Usage: stream_timing.py HOST PATH CAFILE
Prints a JSON list of seconds (since the request was sent) at which each
"data:" event arrived, read straight from the TLS socket (HTTP/1.1).
"""
import json
import socket
import ssl
import sys
import time

host, path, cafile = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection((host, 443), timeout=30)
conn = ctx.wrap_socket(raw, server_hostname=host)
start = time.monotonic()
conn.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
              "Connection: close\r\n\r\n" % (path, host)).encode())
arrivals = []
seen = 0
buf = b""
while True:
    data = conn.recv(65536)
    if not data:
        break
    buf += data
    count = buf.count(b"data: ")
    now = time.monotonic() - start
    arrivals.extend([round(now, 3)] * (count - seen))
    seen = count
print(json.dumps(arrivals))
