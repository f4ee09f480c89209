"""Keep one connection authenticated with the old password open through a
password rotation and PING on it, as a Dify process with a pooled
connection would.

Usage: held_client.py CONFIG.json RESULT.json
CONFIG: host, port, password, stop_file (the loop ends when it exists),
max_seconds. RESULT: {"pings": n, "pongs": n, "errors": [...]}.
"""
import json
import os
import socket
import sys
import time


def main():
    cfg = json.load(open(sys.argv[1]))
    out = {"pings": 0, "pongs": 0, "errors": []}
    sock = socket.create_connection((cfg["host"], int(cfg["port"])), timeout=5)
    pw = cfg["password"].encode()
    sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
    out["auth"] = sock.recv(100).decode(errors="replace").strip()
    end = time.time() + float(cfg["max_seconds"])
    while time.time() < end and not os.path.exists(cfg["stop_file"]):
        out["pings"] += 1
        try:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(100)
            if reply == b"+PONG\r\n":
                out["pongs"] += 1
            else:
                out["errors"].append(reply.decode(errors="replace").strip()[:80])
        except OSError as exc:
            out["errors"].append(str(exc)[:80])
            break
        time.sleep(0.5)
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
