#!/usr/bin/python3
"""Test fixture: accept TCP connections on every port given, answer "ok", close."""
import socket
import sys
import threading


def serve(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    while True:
        conn = srv.accept()[0]
        try:
            conn.sendall(b"ok\n")
        finally:
            conn.close()


threads = [threading.Thread(target=serve, args=(int(p),), daemon=True) for p in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
