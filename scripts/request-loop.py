"""Send requests through the edge for as long as a file exists; count answers.

Used by scripts/test-fleet.sh around playbooks/upgrade.yml: proves that
rolling the api hosts drops no request (no 5xx, no connection error).
Beside the request loop, a second loop streams a chat answer every
--stream-interval seconds (POST --stream-path, Server-Sent Events): the api
host sends a Celery task to a worker host, which publishes the answer on the
event bus; a stream counts as ok when it ends with a message_end event.

    scripts/request-loop.py --address EDGE_IP --name dify.lab.test \
        --path /console/api/setup --stream-path /v1/chat-messages \
        --while RUNFILE --out result.json

The certificate is not verified (the edge test checks it); each request is a
new TLS connection, so every one goes through nginx's balancing afresh.
"""
import argparse
import collections
import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", required=True, help="edge host address (nginx)")
    ap.add_argument("--name", required=True, help="server name (Host and SNI)")
    ap.add_argument("--path", default="/console/api/setup")
    ap.add_argument("--while", dest="runfile", required=True, help="keep going while this file exists")
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--stream-path", default="", help="POST path of a streamed answer (empty: no streams)")
    ap.add_argument("--stream-interval", type=float, default=1.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    counts = collections.Counter()
    backends = collections.Counter()
    errors = collections.Counter()
    first_bad = []
    started = time.time()
    streams = {"streams": 0, "streams_ok": 0, "stream_workers": collections.Counter(), "stream_failures": []}
    streamer = None
    if args.stream_path:
        streamer = threading.Thread(target=stream_loop, args=(args, ctx, started, streams), daemon=True)
        streamer.start()
    while os.path.exists(args.runfile):
        try:
            conn = SNIConnection(args.address, args.name, ctx)
            conn.request("GET", args.path, headers={"Host": args.name})
            resp = conn.getresponse()
            resp.read()
            counts[resp.status] += 1
            backends[resp.getheader("X-Difyops-Probe", "-")] += 1
            if resp.status >= 500 and len(first_bad) < 10:
                first_bad.append({"at": round(time.time() - started, 2), "status": resp.status})
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            errors[type(exc).__name__] += 1
            if len(first_bad) < 10:
                first_bad.append({"at": round(time.time() - started, 2), "error": str(exc)})
        time.sleep(args.interval)
    if streamer is not None:
        streamer.join(120)
    total = sum(counts.values()) + sum(errors.values())
    result = {
        "streams": streams["streams"],
        "streams_ok": streams["streams_ok"],
        "stream_workers": dict(streams["stream_workers"]),
        "stream_failures": streams["stream_failures"][:10],
        "seconds": round(time.time() - started, 1),
        "requests": total,
        "status": dict((str(k), v) for k, v in sorted(counts.items())),
        "status_5xx": sum(v for k, v in counts.items() if k >= 500),
        "connection_errors": sum(errors.values()),
        "errors": dict(errors),
        "backends": dict(backends),
        "first_failures": first_bad,
    }
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True)
    print(json.dumps(result, sort_keys=True))
    return 0


def stream_one(args, ctx):
    """One streamed answer: (ok, worker that produced it, what went wrong)."""
    conn = SNIConnection(args.address, args.name, ctx, timeout=90)
    try:
        body = json.dumps({"query": "hello", "response_mode": "streaming", "inputs": {}, "user": "request-loop"})
        conn.request("POST", args.stream_path, body=body,
                     headers={"Host": args.name, "Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return False, None, "status %d" % resp.status
        events = []
        for line in resp.read().decode("utf-8", "replace").splitlines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
        kinds = [e.get("event") for e in events]
        if kinds and kinds[-1] == "message_end" and "message" in kinds:
            return True, events[-1].get("worker"), None
        return False, None, "events %s" % kinds
    finally:
        conn.close()


def stream_loop(args, ctx, started, streams):
    while os.path.exists(args.runfile):
        streams["streams"] += 1
        try:
            ok, worker, why = stream_one(args, ctx)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            ok, worker, why = False, None, "%s: %s" % (type(exc).__name__, exc)
        if ok:
            streams["streams_ok"] += 1
            streams["stream_workers"][worker or "-"] += 1
        else:
            streams["stream_failures"].append({"at": round(time.time() - started, 2), "error": why})
        time.sleep(args.stream_interval)


class SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with the server name in SNI (no DNS needed)."""

    def __init__(self, address, server_name, ctx, timeout=10):
        http.client.HTTPSConnection.__init__(self, address, 443, timeout=timeout, context=ctx)
        self.server_name = server_name
        self.ctx = ctx

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.ctx.wrap_socket(sock, server_hostname=self.server_name)


if __name__ == "__main__":
    sys.exit(main())
