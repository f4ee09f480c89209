# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Dify contract probe (lab only).

Runs in place of Dify's api/worker/beat/web/sandbox/plugin daemon images with
the env file the role renders for that service, and proves from the host it
runs on that the fleet answers the way Dify expects:

* PostgreSQL login with the rendered SQLAlchemy pool settings (opens
  SQLALCHEMY_POOL_SIZE connections at once) and a pgvector query;
* Redis through Sentinel (REDIS_*) and the Celery broker through Sentinel
  (CELERY_BROKER_URL sentinel://...;... + CELERY_SENTINEL_*);
* a storage write/read (OpenDAL fs root);
* the sandbox and the plugin daemon reachable with the shared keys (the
  sandbox and daemon probes check the key they receive against their own);
* the SSRF proxy refusing a private target and answering an allowed one.

It serves /health on the port of the service it replaces (api 5001, web 3000,
sandbox 8194, plugin daemon 5002) and writes its report as JSON to
/app/logs/probe-<mode>.json and on GET /probe.
MODE=migration records the run in table difyops_probe_migrations and exits.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV = os.environ


def infer_mode():
    """Dify's api image reads MODE; the other images are told apart by their own variables."""
    if ENV.get("MODE"):
        return ENV["MODE"]
    if "SERVER_KEY" in ENV:
        return "plugin_daemon"
    if "API_KEY" in ENV and "SANDBOX_PORT" in ENV:
        return "sandbox"
    if "NEXT_TELEMETRY_DISABLED" in ENV:
        return "web"
    return "api"


MODE = infer_mode()
HOST = socket.gethostname()
REPORT = {"mode": MODE, "host": HOST, "checks": {}, "rounds": 0}
LOCK = threading.Lock()
LOG_DIR = "/app/logs"


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record(name, ok, detail):
    with LOCK:
        REPORT["checks"][name] = {"ok": bool(ok), "detail": detail, "at": now()}


def write_report():
    with LOCK:
        REPORT["updated"] = now()
        data = json.dumps(REPORT, indent=2, sort_keys=True)
    path = os.path.join(LOG_DIR, "probe-%s.json" % MODE)
    try:
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        sys.stderr.write("cannot write %s: %s\n" % (path, exc))


def check(name):
    def deco(fn):
        def run():
            try:
                ok, detail = fn()
            except Exception as exc:  # every failure is a result
                ok, detail = False, "%s: %s" % (type(exc).__name__, exc)
            record(name, ok, detail)
        run.check_name = name
        return run
    return deco


# ---------------------------------------------------------------- PostgreSQL
def pg_connect(database=None, user=None, password=None, host=None, port=None):
    import psycopg2
    return psycopg2.connect(
        host=host or ENV["DB_HOST"], port=int(port or ENV.get("DB_PORT", "5432")),
        user=user or ENV["DB_USERNAME"], password=password or ENV["DB_PASSWORD"],
        dbname=database or ENV["DB_DATABASE"],
        connect_timeout=int(float(ENV.get("SQLALCHEMY_POOL_TIMEOUT", "30"))),
        application_name="difyops-probe-%s-%s" % (HOST, MODE),
        options="-c timezone=UTC",
    )


@check("db_pool")
def check_db_pool():
    if MODE == "plugin_daemon":
        size = int(ENV.get("DB_MAX_IDLE_CONNS", "2"))
    else:
        size = int(ENV.get("SQLALCHEMY_POOL_SIZE", "1"))
    conns = []
    try:
        for dummy in range(size):
            conns.append(pg_connect())
        cur = conns[0].cursor()
        cur.execute("SELECT current_user, current_database(), "
                    "(SELECT count(*) FROM pg_stat_activity WHERE application_name = %s), "
                    "current_setting('max_connections')::int",
                    ("difyops-probe-%s-%s" % (HOST, MODE),))
        user, db, seen, maxconn = cur.fetchone()
    finally:
        for c in conns:
            c.close()
    ok = seen >= size
    return ok, {"user": user, "database": db, "pool_size": size,
                "connections_seen": seen, "max_connections": maxconn}


@check("pgvector")
def check_pgvector():
    conn = pg_connect(database=ENV.get("PGVECTOR_DATABASE"), user=ENV.get("PGVECTOR_USER"),
                      password=ENV.get("PGVECTOR_PASSWORD"), host=ENV.get("PGVECTOR_HOST"),
                      port=ENV.get("PGVECTOR_PORT"))
    try:
        cur = conn.cursor()
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cur.fetchone()
        if not row:
            return False, "extension vector is not installed in %s" % ENV.get("PGVECTOR_DATABASE")
        cur.execute("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector")
        dist = cur.fetchone()[0]
    finally:
        conn.close()
    return abs(dist - 2.0) < 1e-6, {"extversion": row[0], "l2_distance": dist}


# --------------------------------------------------------------------- Redis
def sentinel_hosts(spec):
    hosts = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            h, dummy, p = part.rpartition(":")
            hosts.append((h.strip("[]"), int(p)))
    return hosts


@check("redis_sentinel")
def check_redis():
    import redis
    from redis.sentinel import Sentinel
    key = "difyops:probe:%s:%s" % (HOST, MODE)
    if ENV.get("REDIS_USE_SENTINEL", "false").lower() == "true":
        sentinel = Sentinel(sentinel_hosts(ENV["REDIS_SENTINELS"]),
                            sentinel_kwargs={"password": ENV.get("REDIS_SENTINEL_PASSWORD") or None,
                                             "socket_timeout": 2},
                            socket_timeout=5)
        name = ENV["REDIS_SENTINEL_SERVICE_NAME"]
        master_addr = sentinel.discover_master(name)
        client = sentinel.master_for(name, password=ENV.get("REDIS_PASSWORD") or None,
                                     db=int(ENV.get("REDIS_DB", "0")), socket_timeout=5)
    else:
        master_addr = (ENV["REDIS_HOST"], int(ENV.get("REDIS_PORT", "6379")))
        client = redis.Redis(host=master_addr[0], port=master_addr[1],
                             password=ENV.get("REDIS_PASSWORD") or None,
                             db=int(ENV.get("REDIS_DB", "0")), socket_timeout=5)
    client.set(key, now(), ex=600)
    value = client.get(key)
    role = client.execute_command("ROLE")[0]
    role = role.decode() if isinstance(role, bytes) else role
    return value is not None and role == "master", {
        "sentinel": ENV.get("REDIS_USE_SENTINEL"), "master": "%s:%s" % tuple(master_addr), "role": role}


@check("celery_broker")
def check_celery():
    import redis
    from redis.sentinel import Sentinel
    url = ENV["CELERY_BROKER_URL"]
    queue = "difyops:probe:celery:%s:%s" % (HOST, MODE)
    if url.startswith("sentinel://"):
        hosts, password, db = [], None, 0
        for part in url.split(";"):
            u = urllib.parse.urlparse(part.strip())
            hosts.append((u.hostname, u.port or 26379))
            password = urllib.parse.unquote(u.password) if u.password else None
            db = int(u.path.strip("/") or 0)
        if ENV.get("CELERY_USE_SENTINEL", "false").lower() != "true":
            return False, "CELERY_BROKER_URL is sentinel:// but CELERY_USE_SENTINEL is not true"
        sentinel = Sentinel(hosts, sentinel_kwargs={"password": ENV.get("CELERY_SENTINEL_PASSWORD") or None,
                                                    "socket_timeout": 2}, socket_timeout=5)
        client = sentinel.master_for(ENV["CELERY_SENTINEL_MASTER_NAME"], password=password, db=db,
                                     socket_timeout=5)
        via = "sentinel (%d sentinels)" % len(hosts)
    else:
        client = redis.Redis.from_url(url, socket_timeout=5)
        db = client.connection_pool.connection_kwargs.get("db")
        via = "direct"
    client.lpush(queue, json.dumps({"task": "probe", "at": now()}))
    msg = client.rpop(queue)
    return msg is not None and db == 1, {"via": via, "db": db}


# ------------------------------------------------------------------- Storage
@check("storage")
def check_storage():
    if MODE == "plugin_daemon":
        root = ENV.get("PLUGIN_STORAGE_LOCAL_ROOT", "/app/storage")
    else:
        stype = ENV.get("STORAGE_TYPE", "opendal")
        if stype != "opendal" or ENV.get("OPENDAL_SCHEME", "fs") != "fs":
            return False, "probe only exercises STORAGE_TYPE=opendal with OPENDAL_SCHEME=fs, got %s" % stype
        root = ENV.get("OPENDAL_FS_ROOT", "storage")
        if not root.startswith("/"):
            root = os.path.join("/app/api", root)
    path = os.path.join(root, "difyops-probe", "%s-%s.txt" % (HOST, MODE))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    payload = "written by %s/%s at %s" % (HOST, MODE, now())
    with open(path, "w") as fh:
        fh.write(payload)
    with open(path) as fh:
        back = fh.read()
    return back == payload, {"path": path, "uid": os.getuid()}


# ------------------------------------------------------------ HTTP services
def http(url, headers=None, proxy=None, timeout=10):
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode("utf-8", "replace")


def status_of(url, headers=None, proxy=None, timeout=10):
    return http(url, headers=headers, proxy=proxy, timeout=timeout)[0]


@check("sandbox")
def check_sandbox():
    base = ENV["CODE_EXECUTION_ENDPOINT"].rstrip("/")
    status = status_of(base + "/health")
    kstatus, body = http(base + "/v1/sandbox/dependencies",
                         headers={"X-Api-Key": ENV.get("CODE_EXECUTION_API_KEY", "")})
    return status == 200 and kstatus == 200, {"endpoint": base, "health": status, "key_accepted": kstatus}


@check("plugin_daemon")
def check_plugin_daemon():
    base = ENV["PLUGIN_DAEMON_URL"].rstrip("/")
    status = status_of(base + "/health/check")
    kstatus = status_of(base + "/plugin/probe/management/list",
                        headers={"X-Api-Key": ENV.get("PLUGIN_DAEMON_KEY", "")})
    return status == 200 and kstatus == 200, {"endpoint": base, "health": status, "key_accepted": kstatus}


@check("inner_api")
def check_inner_api():
    base = ENV["DIFY_INNER_API_URL"].rstrip("/")
    kstatus = status_of(base + "/inner/api/ping", headers={"X-Inner-Api-Key": ENV.get("DIFY_INNER_API_KEY", "")})
    return kstatus == 200, {"endpoint": base, "key_accepted": kstatus}


@check("ssrf_proxy")
def check_ssrf():
    proxy = ENV.get("SSRF_PROXY_HTTP_URL") or ENV.get("HTTP_PROXY")
    if not proxy:
        return False, "no SSRF proxy configured (SSRF_PROXY_HTTP_URL/HTTP_PROXY empty)"
    private = ENV.get("PROBE_SSRF_PRIVATE_URL") or "http://%s:%s/" % (
        ENV.get("DB_HOST", "10.0.0.1"), ENV.get("DB_PORT", "5432"))
    denied = status_of(private, proxy=proxy)
    detail = {"proxy": proxy, "private_target": private, "private_status": denied}
    ok = denied == 403
    allowed = ENV.get("PROBE_SSRF_ALLOWED_URL")
    if allowed:
        astatus = status_of(allowed, proxy=proxy)
        detail.update({"allowed_target": allowed, "allowed_status": astatus})
        ok = ok and astatus == 200
    else:
        detail["allowed_target"] = "not given (PROBE_SSRF_ALLOWED_URL)"
        ok = False
    return ok, detail


@check("migration_disabled")
def check_migration_flag():
    value = ENV.get("MIGRATION_ENABLED", "true").lower()
    return value == "false", {"MIGRATION_ENABLED": value}


CHECKS = {
    "api": [check_db_pool, check_pgvector, check_redis, check_celery, check_storage, check_sandbox,
            check_plugin_daemon, check_ssrf, check_migration_flag],
    "worker": [check_db_pool, check_pgvector, check_redis, check_celery, check_storage, check_sandbox,
               check_ssrf, check_migration_flag],
    "beat": [check_db_pool, check_redis, check_celery, check_migration_flag],
    "plugin_daemon": [check_db_pool, check_redis, check_storage, check_inner_api],
    "sandbox": [check_ssrf],
    "web": [],
}
PORTS = {"api": "DIFY_PORT:5001", "web": "PORT:3000", "sandbox": "SANDBOX_PORT:8194",
         "plugin_daemon": "SERVER_PORT:5002"}


def expected_key(path):
    """The key a caller must present for PATH on this service, from this service's own env."""
    if MODE == "sandbox" and path.startswith("/v1/sandbox/"):
        return "X-Api-Key", ENV.get("API_KEY", "")
    if MODE == "plugin_daemon" and path.startswith("/plugin/"):
        return "X-Api-Key", ENV.get("SERVER_KEY", "")
    if MODE == "api" and path.startswith("/inner/api/"):
        return "X-Inner-Api-Key", ENV.get("INNER_API_KEY_FOR_PLUGIN", "")
    return None, None


class Handler(BaseHTTPRequestHandler):
    server_version = "difyops-probe"

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        # Which service on which host answered (the fleet test counts them
        # behind the edge's load balancing).
        self.send_header("X-Difyops-Probe", "%s@%s" % (MODE, HOST))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/health", "/health/check", "/"):
            return self._send(200, {"status": "ok", "mode": MODE, "host": HOST})
        if MODE == "api" and path == "/console/api/setup":
            # What Dify's api answers before the first admin exists; the
            # fleet's smoke check asks it through the edge.
            return self._send(200, {"step": "not_started"})
        if path == "/probe":
            with LOCK:
                return self._send(200, REPORT)
        header, key = expected_key(path)
        if header:
            if key and self.headers.get(header) == key:
                return self._send(200, {"status": "ok", "key": "accepted"})
            return self._send(401, {"status": "unauthorized"})
        return self._send(404, {"status": "not found"})

    def log_message(self, fmt, *args):
        sys.stdout.write(json.dumps({"ts": now(), "mode": MODE, "access": fmt % args}) + "\n")
        sys.stdout.flush()


def migrate():
    conn = pg_connect()
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS difyops_probe_migrations "
                "(id serial PRIMARY KEY, version text NOT NULL, host text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())")
    cur.execute("INSERT INTO difyops_probe_migrations (version, host) VALUES (%s, %s)",
                (ENV.get("DIFYOPS_DIFY_VERSION", "unknown"), HOST))
    conn.close()
    print(json.dumps({"ts": now(), "mode": MODE, "migrated": ENV.get("DIFYOPS_DIFY_VERSION")}))


def main():
    if MODE == "migration":
        if ENV.get("MIGRATION_ENABLED", "false").lower() != "true":
            sys.exit("MODE=migration needs MIGRATION_ENABLED=true")
        migrate()
        return
    if MODE not in CHECKS:
        sys.exit("unknown MODE %r" % MODE)
    # SIGTERM (docker stop) as Dify's processes take it: stop accepting,
    # finish the requests in flight, exit 0. As PID 1 a signal without a
    # handler would be ignored and docker would kill after stop_timeout.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = None
    if MODE in PORTS:
        var, default = PORTS[MODE].split(":")
        port = int(ENV.get(var) or default)
        server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        server.daemon_threads = False
        threading.Thread(target=server.serve_forever, daemon=True).start()
        REPORT["port"] = port
    interval = int(ENV.get("PROBE_INTERVAL", "5"))
    while not stop.is_set():
        for fn in CHECKS[MODE]:
            fn()
        with LOCK:
            REPORT["rounds"] += 1
            REPORT["ok"] = all(c["ok"] for c in REPORT["checks"].values())
        write_report()
        stop.wait(interval if not REPORT["ok"] else max(interval, 30))
    if server is not None:
        server.shutdown()
        server.server_close()  # joins the request threads still running
    print(json.dumps({"ts": now(), "mode": MODE, "stopped": "SIGTERM"}))


if __name__ == "__main__":
    main()
