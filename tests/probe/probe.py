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
* a storage write/read through OpenDAL (Dify's storage layer) with the
  scheme and options Dify builds from OPENDAL_*;
* the sandbox and the plugin daemon reachable with the shared keys (the
  sandbox and daemon probes check the key they receive against their own);
* the SSRF proxy refusing a private target and answering an allowed one.

It starts the way Dify's images do: the api family (api, worker, beat,
migration) builds DifyConfig with pydantic-settings from the typed contract
extracted from the release's own source (plugins/module_utils/dify_release_*
through dify_schema.pydantic_model, copied into the image at build) and exits
1 on the first value Dify would refuse at import; the plugin daemon and the
sandbox parse their variables with the envconfig / Go semantics of
dify_schema.validate_env. Its clients are Dify's: SQLAlchemy with the URI and
engine options Dify builds, redis-py as ext_redis builds it (Sentinel or
not), Celery/kombu with ext_celery's broker URL and transport options, and the
event bus on PUBSUB_REDIS_URL.

HTTP goes through those dependencies: /console/api/setup reads the table the
migration job created (dify_setups); /v1/chat-messages streams an answer as
Server-Sent Events that a Celery task on a worker host produces and publishes
on the event bus, the way Dify's api streams what its workers generate.

It serves /health on the port of the service it replaces (api 5001, web 3000,
sandbox 8194, plugin daemon 5002) and writes its report as JSON to
/app/logs/probe-<mode>.json and on GET /probe.

Dify 1.16's services: as agent_backend it parses its DIFY_AGENT_* settings
with the agent's ServerSettings semantics (dify_schema, from the release
data), connects to Redis with DIFY_AGENT_REDIS_URL (redis-py's from_url, as
the agent's lifespan does) and reports the database it reached, asks the
local sandbox (its shellctl entrypoint, with the token) and serves
/openapi.json on the port its command line gives (uvicorn --port) and its
runs API (/runs) only with DIFY_AGENT_API_TOKEN as Bearer, which the api and
worker of such a release check with their AGENT_BACKEND_API_TOKEN; as
local_sandbox it answers /healthz (the rest of /v1 only with the
SHELLCTL_AUTH_TOKEN bearer) on its --listen port and reports whether it can
reach anything but its proxy (PROBE_EGRESS_TARGETS, host:port list); as
api_websocket (MODE=api with the websocket worker class) it answers a
websocket upgrade on /socket.io/ with 101.
MODE=migration creates the probe's tables, records the run in
difyops_probe_migrations and exits.
"""

import importlib
import importlib.metadata
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
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV = os.environ


def infer_mode():
    """Dify's api image reads MODE; the other images are told apart by their own variables."""
    if ENV.get("MODE"):
        # the websocket api is the api image with gevent-websocket's worker class
        if ENV["MODE"] == "api" and "websocket" in ENV.get("SERVER_WORKER_CLASS", "").lower():
            return "api_websocket"
        return ENV["MODE"]
    if any(k.startswith("DIFY_AGENT_") for k in ENV):
        return "agent_backend"
    if "SHELLCTL_AUTH_TOKEN" in ENV:
        return "local_sandbox"
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
CONTRACT_DIR = os.environ.get("PROBE_CONTRACT_DIR", "/app/contract")
FAMILY = {"api": "api", "worker": "api", "beat": "api", "migration": "api", "web": "web",
          "sandbox": "sandbox", "plugin_daemon": "plugin_daemon", "api_websocket": "api",
          "agent_backend": "agent_backend", "local_sandbox": "local_sandbox"}
# The Celery queue the streamed answer's task goes to (one of those Dify's
# worker consumes by default) and the task's name.
STREAM_QUEUE = "workflow"
STREAM_TASK = "difyops_probe.stream_answer"
CFG = None  # the api family's DifyConfig instance (see load_config)


def release_data():
    """(dify_schema module, RELEASE dict) of the Dify release this container stands in for."""
    sys.path.insert(0, CONTRACT_DIR)
    schema = importlib.import_module("dify_schema")
    version = ENV.get("PROBE_DIFY_VERSION") or open(os.path.join(CONTRACT_DIR, "DEFAULT")).read().strip()
    data = importlib.import_module("dify_release_" + version.replace(".", "_"))
    return schema, data.RELEASE


def load_config():
    """Parse the environment as the release's image does; exit 1 where it would not start."""
    global CFG
    schema, release = release_data()
    family = FAMILY[MODE]
    if family == "api":
        import pydantic
        model = schema.pydantic_model(release)
        try:
            CFG = model()
        except pydantic.ValidationError as exc:
            sys.stderr.write("DifyConfig (Dify %s) refused the environment, as Dify's api would at import:\n%s\n"
                             % (release["release"], exc))
            sys.exit(1)
        detail = {"release": release["release"], "settings": len(release["api"]["settings"])}
        if MODE in ("api", "worker"):
            try:
                detail["event_bus"] = urllib.parse.urlparse(event_bus_url()).hostname
            except ValueError as exc:  # Dify's api and worker stop at start on it
                sys.stderr.write("Dify %s's event bus: %s\n" % (release["release"], exc))
                sys.exit(1)
    elif family in ("plugin_daemon", "sandbox", "agent_backend"):
        known = schema.known_names(release, family)
        env = dict((k, v) for k, v in ENV.items() if k in known)
        if not schema.has_family(release, family):
            sys.stderr.write("Dify %s has no %s image\n" % (release["release"], family))
            sys.exit(1)
        errors = schema.validate_env(release, family, env)
        if errors:
            sys.stderr.write("the %s of Dify %s would not start on this environment:\n%s\n"
                             % (family, release["release"], "\n".join(errors)))
            sys.exit(1)
        detail = {"release": release["release"], "variables": len(env)}
    else:
        detail = {"release": release["release"]}
    record("contract", True, detail)


def cfg(name, default=None):
    """A DifyConfig field (typed, defaults applied), for the api family."""
    value = getattr(CFG, name, default) if CFG is not None else ENV.get(name, default)
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return default if value is None else value


def database_uri():
    """SQLALCHEMY_DATABASE_URI as DatabaseConfig builds it."""
    scheme = "mysql+pymysql" if cfg("DB_TYPE", "postgresql") in ("mysql", "oceanbase", "seekdb") else "postgresql"
    extras = cfg("DB_EXTRAS", "") or ""
    charset = cfg("DB_CHARSET", "") or ""
    extras = ("%s&client_encoding=%s" % (extras, charset) if charset else extras).strip("&")
    return "%s://%s:%s@%s:%s/%s%s" % (
        scheme, urllib.parse.quote_plus(str(cfg("DB_USERNAME", ""))), urllib.parse.quote_plus(str(cfg("DB_PASSWORD", ""))),
        cfg("DB_HOST"), cfg("DB_PORT"), cfg("DB_DATABASE"), ("?" + extras) if extras else "")


_ENGINE = []


def engine():
    """The SQLAlchemy engine with SQLALCHEMY_ENGINE_OPTIONS as Dify sets them."""
    if not _ENGINE:
        import sqlalchemy
        options = {"pool_size": int(cfg("SQLALCHEMY_POOL_SIZE", 30)),
                   "max_overflow": int(cfg("SQLALCHEMY_MAX_OVERFLOW", 10)),
                   "pool_recycle": int(cfg("SQLALCHEMY_POOL_RECYCLE", 3600)),
                   "pool_pre_ping": bool(cfg("SQLALCHEMY_POOL_PRE_PING", False)),
                   "pool_use_lifo": bool(cfg("SQLALCHEMY_POOL_USE_LIFO", False)),
                   "pool_reset_on_return": None,
                   "pool_timeout": int(cfg("SQLALCHEMY_POOL_TIMEOUT", 30))}
        if not database_uri().startswith("mysql"):
            options["connect_args"] = {"options": "-c timezone=UTC"}
        _ENGINE.append(sqlalchemy.create_engine(database_uri(), **options))
    return _ENGINE[0]


_REDIS = []


def redis_client():
    """Dify's redis_client as ext_redis builds it: Sentinel master, or host and port."""
    if not _REDIS:
        import redis
        params = {"username": cfg("REDIS_USERNAME") or None, "password": cfg("REDIS_PASSWORD") or None,
                  "db": int(cfg("REDIS_DB", 0)), "encoding": "utf-8", "encoding_errors": "strict",
                  "decode_responses": False, "socket_timeout": 5}
        if cfg("REDIS_USE_SENTINEL", False):
            from redis.sentinel import Sentinel
            # ext_redis splits every entry on ':' (why preflight refuses IPv6 Sentinel addresses).
            nodes = [(n.split(":")[0], int(n.split(":")[1])) for n in str(cfg("REDIS_SENTINELS", "")).split(",")]
            sentinel = Sentinel(nodes, sentinel_kwargs={
                "socket_timeout": float(cfg("REDIS_SENTINEL_SOCKET_TIMEOUT", 0.1)),
                "username": cfg("REDIS_SENTINEL_USERNAME") or None,
                "password": cfg("REDIS_SENTINEL_PASSWORD") or None})
            _REDIS.append(sentinel.master_for(cfg("REDIS_SENTINEL_SERVICE_NAME"), **params))
        else:
            pool = redis.ConnectionPool(host=cfg("REDIS_HOST", "localhost"), port=int(cfg("REDIS_PORT", 6379)),
                                        **params)
            _REDIS.append(redis.Redis(connection_pool=pool))
    return _REDIS[0]


def event_bus_url():
    """Where Dify's event bus publishes and subscribes: PUBSUB_REDIS_URL (trimmed), else a URL
    made of REDIS_HOST/PORT/DB with quote_plus'ed credentials; neither is a ValueError."""
    url = str(cfg("PUBSUB_REDIS_URL") or "").strip()
    if url:
        return url
    if not cfg("REDIS_HOST") or not cfg("REDIS_PORT"):
        raise ValueError("PUBSUB_REDIS_URL must be set when default Redis URL cannot be constructed")
    quote = urllib.parse.quote_plus
    user = quote(cfg("REDIS_USERNAME")) if cfg("REDIS_USERNAME") else ""
    auth = ("%s:%s" % (user, quote(cfg("REDIS_PASSWORD")))) if cfg("REDIS_PASSWORD") else user
    scheme = "rediss" if cfg("REDIS_USE_SSL", False) else "redis"
    return "%s://%s%s:%s/%s" % (scheme, (auth + "@") if auth else "", cfg("REDIS_HOST"), cfg("REDIS_PORT"),
                                cfg("REDIS_DB", 0))


_CELERY = []


def celery_app():
    """Celery as ext_celery configures it: the broker URL and, with Sentinel, its transport options."""
    if not _CELERY:
        from celery import Celery
        options = {}
        if cfg("CELERY_USE_SENTINEL", False):
            options = {"master_name": cfg("CELERY_SENTINEL_MASTER_NAME"),
                       "sentinel_kwargs": {"socket_timeout": float(cfg("CELERY_SENTINEL_SOCKET_TIMEOUT", 0.1)),
                                           "password": cfg("CELERY_SENTINEL_PASSWORD") or None}}
        app = Celery("app", broker=cfg("CELERY_BROKER_URL"))
        app.conf.update(broker_transport_options=options, broker_connection_retry_on_startup=True,
                        task_ignore_result=True, worker_hijack_root_logger=False,
                        timezone=cfg("LOG_TZ", "UTC") or "UTC")

        @app.task(name=STREAM_TASK, ignore_result=True)
        def stream_answer(channel, query, chunks=4):
            import redis
            bus = redis.Redis.from_url(event_bus_url(), socket_timeout=5)
            for i in range(int(chunks)):
                bus.publish(channel, json.dumps({"event": "message", "answer": "%s (%d)" % (query, i),
                                                 "worker": HOST}))
                time.sleep(0.1)
            bus.publish(channel, json.dumps({"event": "message_end", "worker": HOST}))
        _CELERY.append(app)
    return _CELERY[0]


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
        # The daemon is Go (gorm): its pool is DB_MAX_IDLE_CONNS connections at least.
        size = int(ENV.get("DB_MAX_IDLE_CONNS", "2"))
        conns = []
        try:
            for dummy in range(size):
                conns.append(pg_connect())
            cur = conns[0].cursor()
            cur.execute("SELECT current_user, current_database()")
            user, db = cur.fetchone()
        finally:
            for c in conns:
                c.close()
        return True, {"user": user, "database": db, "pool_size": size, "client": "psycopg2"}
    # Dify's engine: SQLALCHEMY_POOL_SIZE connections held at once, each a backend of its own.
    import sqlalchemy
    eng = engine()
    size = eng.pool.size()
    conns = []
    try:
        for dummy in range(size):
            conns.append(eng.connect())
        pid_sql = "SELECT pg_backend_pid()" if eng.dialect.name == "postgresql" else "SELECT CONNECTION_ID()"
        pids = set(c.execute(sqlalchemy.text(pid_sql)).scalar() for c in conns)
        user, db = conns[0].execute(sqlalchemy.text(
            "SELECT current_user, current_database()" if eng.dialect.name == "postgresql"
            else "SELECT CURRENT_USER(), DATABASE()")).one()
    finally:
        for c in conns:
            c.close()
    return len(pids) == size, {"user": user, "database": db, "pool_size": size, "backends": len(pids),
                               "client": "sqlalchemy %s" % sqlalchemy.__version__}


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
    key = "difyops:probe:%s:%s" % (HOST, MODE)
    if FAMILY[MODE] == "api":
        client = redis_client()
    else:
        import redis
        from redis.sentinel import Sentinel
        if ENV.get("REDIS_USE_SENTINEL", "false").lower() == "true":
            sentinel = Sentinel(sentinel_hosts(ENV["REDIS_SENTINELS"]),
                                sentinel_kwargs={"password": ENV.get("REDIS_SENTINEL_PASSWORD") or None,
                                                 "socket_timeout": 2},
                                socket_timeout=5)
            client = sentinel.master_for(ENV["REDIS_SENTINEL_SERVICE_NAME"],
                                         password=ENV.get("REDIS_PASSWORD") or None,
                                         db=int(ENV.get("REDIS_DB", "0")), socket_timeout=5)
        else:
            client = redis.Redis(host=ENV["REDIS_HOST"], port=int(ENV.get("REDIS_PORT", "6379")),
                                 password=ENV.get("REDIS_PASSWORD") or None,
                                 db=int(ENV.get("REDIS_DB", "0")), socket_timeout=5)
    client.set(key, now(), ex=600)
    value = client.get(key)
    role = client.execute_command("ROLE")[0]
    role = role.decode() if isinstance(role, bytes) else role
    addr = client.connection_pool.get_connection("PING")
    where = "%s:%s" % (addr.host, addr.port)
    client.connection_pool.release(addr)
    return value is not None and role == "master", {
        "sentinel": ENV.get("REDIS_USE_SENTINEL"), "master": where, "role": role}


@check("celery_broker")
def check_celery():
    """A message through the broker with kombu, the way Celery sends Dify's tasks."""
    app = celery_app()
    url = str(cfg("CELERY_BROKER_URL"))
    db = int(urllib.parse.urlparse(url.split(";", 1)[0]).path.strip("/") or 0)
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=2)
        queue = conn.SimpleQueue("difyops.probe.%s.%s" % (HOST, MODE))
        try:
            queue.put({"task": "probe", "at": now()})
            msg = queue.get(timeout=5)
            msg.ack()
        finally:
            queue.close()
    via = "sentinel" if url.startswith("sentinel://") else "direct"
    return db == 1, {"via": via, "db": db, "transport": str(getattr(conn, "transport_cls", ""))}


@check("event_bus")
def check_event_bus():
    """The event bus answers where this service would publish or subscribe (a PUBLISH reaches it)."""
    import redis
    bus = redis.Redis.from_url(event_bus_url(), socket_timeout=5)
    receivers = bus.publish("difyops:probe:ping", now())
    role = bus.execute_command("ROLE")[0]
    role = role.decode() if isinstance(role, bytes) else role
    return role == "master", {"url_host": urllib.parse.urlparse(event_bus_url()).hostname, "role": role,
                              "receivers": receivers}


# ------------------------------------------------------------------- Storage
def opendal_options(scheme, env_file=".env"):
    """The options Dify's OpenDAL storage gives its Operator for a scheme.

    Dify reads every OPENDAL_<SCHEME>_<OPTION> variable of its process
    environment (the option name lowercased), then fills the options still
    missing from non-empty values of the .env file in its working directory.
    """
    from dotenv import dotenv_values
    prefix = "OPENDAL_%s_" % scheme.upper()
    options = dict((k[len(prefix):].lower(), v) for k, v in ENV.items() if k.startswith(prefix))
    for key, value in (dotenv_values(env_file) or {}).items():
        if key.startswith(prefix) and value and key[len(prefix):].lower() not in options:
            options[key[len(prefix):].lower()] = value
    return options


@check("storage")
def check_storage():
    """A write and read back through the storage Dify's api and worker use.

    The api family goes through OpenDAL (the opendal package the release
    pins) with the scheme and options Dify builds; the plugin daemon (Go)
    writes under PLUGIN_STORAGE_LOCAL_ROOT.
    """
    name = "difyops-probe/%s-%s.txt" % (HOST, MODE)
    payload = ("written by %s/%s at %s" % (HOST, MODE, now())).encode()
    if MODE == "plugin_daemon":
        path = os.path.join(ENV.get("PLUGIN_STORAGE_LOCAL_ROOT", "/app/storage"), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(payload)
        with open(path, "rb") as fh:
            return fh.read() == payload, {"path": path, "uid": os.getuid()}
    stype = cfg("STORAGE_TYPE", "opendal")
    scheme = cfg("OPENDAL_SCHEME", "fs")
    if stype != "opendal" or scheme != "fs":
        return False, "the lab has no object store: the probe writes only with STORAGE_TYPE=opendal and " \
                      "OPENDAL_SCHEME=fs, got %s/%s" % (stype, scheme)
    import opendal
    options = opendal_options(scheme)
    root = options.setdefault("root", "storage")
    os.makedirs(root, exist_ok=True)
    op = opendal.Operator(scheme=scheme, **options).layer(opendal.layers.RetryLayer(max_times=3, factor=2.0, jitter=True))
    op.write(name, payload)
    back = bytes(op.read(name))
    return back == payload, {"path": os.path.join(os.path.abspath(root), name), "uid": os.getuid(),
                             "opendal": importlib.metadata.version("opendal")}


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


@check("agent_backend")
def check_agent_backend():
    """Dify 1.16's api and worker: the agent backend's runs API with their AGENT_BACKEND_API_TOKEN (Bearer)."""
    base = ENV["AGENT_BACKEND_BASE_URL"].rstrip("/")
    kstatus = status_of(base + "/runs/difyops-probe",
                        headers={"Authorization": "Bearer %s" % ENV.get("AGENT_BACKEND_API_TOKEN", "")})
    return kstatus == 200, {"endpoint": base, "token_accepted": kstatus}


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


@check("agent_redis")
def check_agent_redis():
    """The agent backend's Redis: redis-py's from_url on DIFY_AGENT_REDIS_URL (no Sentinel), the DB it names."""
    import redis
    client = redis.Redis.from_url(ENV["DIFY_AGENT_REDIS_URL"].strip(), socket_timeout=5)
    key = "%s:difyops-probe:%s" % (ENV.get("DIFY_AGENT_REDIS_PREFIX") or "dify-agent", HOST)
    client.set(key, now(), ex=600)
    info = client.execute_command("CLIENT", "INFO")
    info = info.decode() if isinstance(info, bytes) else info
    fields = dict(f.split("=", 1) for f in info.split() if "=" in f)
    db = int(fields.get("db", -1))
    wanted = int(client.connection_pool.connection_kwargs.get("db", 0))
    role = client.execute_command("ROLE")[0]
    role = role.decode() if isinstance(role, bytes) else role
    kwargs = client.connection_pool.connection_kwargs
    return client.get(key) is not None and db == wanted, {
        "db": db, "url_db": wanted, "host": "%s:%s" % (kwargs.get("host"), kwargs.get("port")), "role": role,
        "key": key}


@check("shellctl")
def check_shellctl():
    """The local sandbox the agent drives: /healthz open, /v1 only with the shellctl token."""
    base = ENV["DIFY_AGENT_SHELLCTL_ENTRYPOINT"].rstrip("/")
    health = status_of(base + "/healthz")
    token = ENV.get("DIFY_AGENT_SHELLCTL_AUTH_TOKEN", "")
    accepted = status_of(base + "/v1/sessions", headers={"Authorization": "Bearer %s" % token})
    refused = status_of(base + "/v1/sessions", headers={"Authorization": "Bearer not-the-token"})
    return health == 200 and accepted == 200 and refused == 401, {
        "endpoint": base, "health": health, "token_accepted": accepted, "wrong_token": refused}


def _connect(target, timeout=3):
    host, dummy, port = target.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return "refused" if isinstance(exc, ConnectionRefusedError) else "unreachable (%s)" % exc.strerror


@check("egress")
def check_egress():
    """The local sandbox reaches its proxy and nothing else (PROBE_EGRESS_TARGETS: host:port, comma separated)."""
    proxy = urllib.parse.urlsplit(ENV.get("HTTP_PROXY", ""))
    if not proxy.hostname:
        return False, "no HTTP_PROXY: the local sandbox has no way out"
    proxy_target = "%s:%s" % (proxy.hostname, proxy.port or 80)
    direct = {t.strip(): _connect(t.strip()) for t in ENV.get("PROBE_EGRESS_TARGETS", "").split(",") if t.strip()}
    through = _connect(proxy_target)
    return through == "connected" and direct and "connected" not in direct.values(), {
        "proxy": proxy_target, "proxy_reached": through, "direct": direct or "no PROBE_EGRESS_TARGETS given"}


@check("migration_disabled")
def check_migration_flag():
    value = ENV.get("MIGRATION_ENABLED", "true").lower()
    return value == "false", {"MIGRATION_ENABLED": value}


CHECKS = {
    "api": [check_db_pool, check_pgvector, check_redis, check_celery, check_event_bus, check_storage,
            check_sandbox, check_plugin_daemon, check_ssrf, check_migration_flag],
    "worker": [check_db_pool, check_pgvector, check_redis, check_celery, check_event_bus, check_storage,
               check_sandbox, check_ssrf, check_migration_flag],
    "beat": [check_db_pool, check_redis, check_celery, check_migration_flag],
    "plugin_daemon": [check_db_pool, check_redis, check_storage, check_inner_api],
    "sandbox": [check_ssrf],
    "web": [],
    "api_websocket": [check_redis, check_migration_flag],
    "agent_backend": [check_agent_redis, check_shellctl],
    "local_sandbox": [check_egress],
}
PORTS = {"api": "DIFY_PORT:5001", "web": "PORT:3000", "sandbox": "SANDBOX_PORT:8194",
         "plugin_daemon": "SERVER_PORT:5002", "api_websocket": "DIFY_PORT:5005",
         "agent_backend": "--port:5050", "local_sandbox": "--listen:5004"}


def listen_port(argv=None):
    """The port this service listens on: its env variable, or its image's command line (the role passes the
    agent backend's uvicorn --port and the local sandbox keeps shellctl's --listen host:port)."""
    var, default = PORTS[MODE].split(":")
    if not var.startswith("--"):
        return int(ENV.get(var) or default)
    argv = list(sys.argv[1:] if argv is None else argv)
    if var in argv and argv.index(var) + 1 < len(argv):
        return int(argv[argv.index(var) + 1].rpartition(":")[2])
    return int(default)


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def expected_key(path):
    """The key a caller must present for PATH on this service, from this service's own env."""
    if MODE == "sandbox" and path.startswith("/v1/sandbox/"):
        return "X-Api-Key", ENV.get("API_KEY", "")
    if MODE == "plugin_daemon" and path.startswith("/plugin/"):
        return "X-Api-Key", ENV.get("SERVER_KEY", "")
    if MODE == "api" and path.startswith("/inner/api/"):
        return "X-Inner-Api-Key", ENV.get("INNER_API_KEY_FOR_PLUGIN", "")
    if MODE == "local_sandbox" and path.startswith("/v1/"):
        return "Authorization", "Bearer %s" % ENV["SHELLCTL_AUTH_TOKEN"] if ENV.get("SHELLCTL_AUTH_TOKEN") else ""
    if MODE == "agent_backend" and path.startswith("/runs"):
        # the agent's runs router: a Bearer token equal to DIFY_AGENT_API_TOKEN when one is set
        return "Authorization", "Bearer %s" % ENV["DIFY_AGENT_API_TOKEN"] if ENV.get("DIFY_AGENT_API_TOKEN") else ""
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

    def websocket_upgrade(self):
        """socket.io's websocket transport: the 101 a gevent-websocket worker answers."""
        import base64
        import hashlib
        key = self.headers.get("Sec-WebSocket-Key", "")
        if (self.headers.get("Upgrade", "").lower() != "websocket" or not key
                or "upgrade" not in self.headers.get("Connection", "").lower()):
            return self._send(400, {"status": "not a websocket upgrade"})
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("X-Difyops-Probe", "%s@%s" % (MODE, HOST))
        self.end_headers()
        self.close_connection = True
        return None

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/health", "/health/check", "/") or (MODE == "local_sandbox" and path == "/healthz"):
            return self._send(200, {"status": "ok", "mode": MODE, "host": HOST})
        if MODE == "api_websocket" and path.startswith("/socket.io/"):
            return self.websocket_upgrade()
        if MODE == "agent_backend" and path == "/openapi.json":
            return self._send(200, {"openapi": "3.1.0", "info": {"title": "difyops-probe agent backend"}})
        if MODE == "api" and path == "/console/api/setup":
            # As Dify's api: the answer comes from the database (table
            # dify_setups, which the migration job created).
            return self.setup_status()
        if MODE == "api" and path == "/v1/chat-messages":
            return self.stream_answer()
        if path == "/probe":
            with LOCK:
                return self._send(200, REPORT)
        header, key = expected_key(path)
        if header:
            if key and self.headers.get(header) == key:
                return self._send(200, {"status": "ok", "key": "accepted"})
            return self._send(401, {"status": "unauthorized"})
        return self._send(404, {"status": "not found"})

    def do_POST(self):
        path = self.path.split("?")[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if MODE == "api" and path == "/v1/chat-messages":
            try:
                query = json.loads(body or b"{}").get("query") or "hello"
            except ValueError:
                return self._send(400, {"code": "invalid_param", "message": "body is not JSON"})
            return self.stream_answer(query)
        return self._send(404, {"status": "not found"})

    def setup_status(self):
        import sqlalchemy
        try:
            with engine().connect() as conn:
                row = conn.execute(sqlalchemy.text("SELECT version, setup_at FROM dify_setups LIMIT 1")).first()
        except Exception as exc:  # Dify answers 500 when its database fails
            return self._send(500, {"code": "internal_server_error", "message": type(exc).__name__})
        if row is None:
            return self._send(200, {"step": "not_started"})
        return self._send(200, {"step": "finished", "setup_at": str(row[1])})

    def stream_answer(self, query=None):
        """Server-Sent Events as Dify streams a chat answer: a Celery task on a worker
        generates it and publishes each event on the event bus; this api relays them."""
        import redis
        query = query or urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query).get("query", ["hello"])[0]
        channel = "difyops:probe:stream:%s" % uuid.uuid4().hex
        bus = redis.Redis.from_url(event_bus_url(), socket_timeout=5)
        sub = bus.pubsub(ignore_subscribe_messages=True)
        try:
            sub.subscribe(channel)
            celery_app().send_task(STREAM_TASK, args=[channel, query], queue=STREAM_QUEUE)
        except Exception as exc:
            sub.close()
            return self._send(500, {"code": "internal_server_error", "message": type(exc).__name__})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Difyops-Probe", "%s@%s" % (MODE, HOST))
        self.end_headers()
        deadline = time.time() + float(ENV.get("PROBE_STREAM_TIMEOUT", "60"))
        try:
            while time.time() < deadline:
                msg = sub.get_message(timeout=1.0)
                if not msg or msg.get("type") != "message":
                    continue
                data = msg["data"].decode() if isinstance(msg["data"], bytes) else msg["data"]
                self.wfile.write(("data: %s\n\n" % data).encode())
                self.wfile.flush()
                if json.loads(data).get("event") == "message_end":
                    return
            self.wfile.write(b'data: {"event": "error", "message": "no answer from any worker in time"}\n\n')
        finally:
            sub.close()

    def log_message(self, fmt, *args):
        sys.stdout.write(json.dumps({"ts": now(), "mode": MODE, "access": fmt % args}) + "\n")
        sys.stdout.flush()


def migrate():
    """What `flask upgrade-db` leaves for the probe's answers: its tables, through Dify's engine."""
    import sqlalchemy
    version = release_data()[1]["release"]
    with engine().begin() as conn:
        conn.execute(sqlalchemy.text(
            "CREATE TABLE IF NOT EXISTS difyops_probe_migrations (id serial PRIMARY KEY, version text NOT NULL, "
            "host text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"))
        conn.execute(sqlalchemy.text(
            "CREATE TABLE IF NOT EXISTS dify_setups (version varchar(255) PRIMARY KEY, "
            "setup_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP)"))
        conn.execute(sqlalchemy.text("INSERT INTO difyops_probe_migrations (version, host) VALUES (:v, :h)"),
                     {"v": version, "h": HOST})
    print(json.dumps({"ts": now(), "mode": MODE, "migrated": version}))


def checks_of(mode):
    """The checks of MODE; api and worker ask the agent backend where their release has one
    (Dify 1.16+, AGENT_BACKEND_BASE_URL set: compose's api and worker depend on it)."""
    found = list(CHECKS[mode])
    if mode in ("api", "worker") and ENV.get("AGENT_BACKEND_BASE_URL"):
        found.append(check_agent_backend)
    return found


def run_round():
    for fn in checks_of(MODE):
        fn()
    with LOCK:
        REPORT["rounds"] += 1
        REPORT["ok"] = all(c["ok"] for c in REPORT["checks"].values())
    write_report()


def run_worker(stop):
    """MODE=worker: Celery's worker on Dify's queues (CELERY_QUEUES, else the stream's queue)."""
    queues = ENV.get("CELERY_QUEUES") or "dataset,mail,ops_trace,app_deletion,plugin,workflow_storage,conversation," \
        + STREAM_QUEUE
    if STREAM_QUEUE not in queues.split(","):
        queues += "," + STREAM_QUEUE
    celery_app().worker_main(["worker", "--pool=threads", "--concurrency=%s" % (ENV.get("CELERY_WORKER_AMOUNT") or 4),
                              "-Q", queues, "--loglevel=INFO", "--without-mingle", "--without-gossip",
                              "--hostname=probe@%s" % HOST])
    stop.set()


def main():
    if MODE not in FAMILY:
        sys.exit("unknown MODE %r" % MODE)
    load_config()
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
        port = listen_port()
        server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        server.daemon_threads = False
        threading.Thread(target=server.serve_forever, daemon=True).start()
        REPORT["port"] = port
    interval = int(ENV.get("PROBE_INTERVAL", "5"))
    if MODE == "worker":
        # The checks in the background, Celery's worker in front (it takes SIGTERM as Dify's does).
        def checks():
            while not stop.is_set():
                run_round()
                stop.wait(interval if not REPORT["ok"] else max(interval, 30))
        threading.Thread(target=checks, daemon=True).start()
        run_worker(stop)
        print(json.dumps({"ts": now(), "mode": MODE, "stopped": "worker"}))
        return
    while not stop.is_set():
        run_round()
        stop.wait(interval if not REPORT["ok"] else max(interval, 30))
    if server is not None:
        server.shutdown()
        server.server_close()  # joins the request threads still running
    print(json.dumps({"ts": now(), "mode": MODE, "stopped": "SIGTERM"}))


if __name__ == "__main__":
    main()
