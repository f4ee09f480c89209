# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Dify's environment contract: per-version data, building and validation.

One place knows what each Dify service reads from its environment, which
values are allowed, which secrets must be equal across services, and which
values are Dify's public samples. ``build_all`` makes the environments of
every service from one context (fleet addresses, plan sizes, secrets), and
``validate_all`` refuses anything that would not work or would not be safe.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

from ansible_collections.difyops.fleet.plugins.module_utils import dify_release_1_13_3
from ansible_collections.difyops.fleet.plugins.module_utils import dify_release_1_16_1
from ansible_collections.difyops.fleet.plugins.module_utils import dify_schema
from ansible_collections.difyops.fleet.plugins.module_utils import dify_storage as _storage
from ansible_collections.difyops.fleet.plugins.module_utils import fleet as _fleet
from ansible_collections.difyops.fleet.plugins.module_utils import secrets as _secrets

SERVICES = ("api", "worker", "beat", "migration", "web", "sandbox", "plugin_daemon", "api_websocket",
            "agent_backend", "local_sandbox")
API_FAMILY = ("api", "worker", "beat", "migration")
# The api image's services (api_websocket: 1.15+, where the fleet runs one).
API_IMAGE = API_FAMILY + ("api_websocket",)
# Services only some releases have: each exists where the release's data has
# it (api_websocket: a compose entry of the api family; the agent services:
# their own image family). A release without one builds nothing for it.
OPTIONAL_SERVICES = {"api_websocket": ("api", "api_websocket"), "agent_backend": ("agent_backend", None),
                     "local_sandbox": ("local_sandbox", None)}


def _version(release):
    """A release's entry: the images its compose pins, and the contract data extracted from its tree."""
    images = release["images"]
    families = ("api", "web", "sandbox", "plugin_daemon") + tuple(
        f for f in ("agent_backend", "local_sandbox") if dify_schema.has_family(release, f))
    return {
        "images": {family: images[family] for family in families},
        "release": release,
    }


# Per release: the contract data extracted from Dify's own source
# (scripts/dify-contract/extract.py, docs/CONTRACT.md). Add a release by
# generating its dify_release_<X_Y_Z> module and listing it here.
VERSIONS = {
    "1.13.3": _version(dify_release_1_13_3.RELEASE),
    "1.16.1": _version(dify_release_1_16_1.RELEASE),
}
# The release deployed when dify_version is not set; roles/dify/defaults/main.yml
# says the same (tests/unit: test_the_role_default_is_the_contract_default).
DEFAULT_VERSION = "1.16.1"

# Project policy, stricter than what Dify parses (Dify's own types, enums and
# run-time choices come from the extracted data): the fleet deploys only these.
CHOICES = {
    "DB_TYPE": ("postgresql", "mysql"),
    "PLUGIN_STORAGE_TYPE": ("local", "aws_s3", "tencent_cos", "azure_blob", "aliyun_oss", "volcengine_tos"),
    "CELERY_BACKEND": ("redis", "database"),
    "MIGRATION_ENABLED": ("true", "false"),
}

# Groups of (service, variable) that must hold the same value.
SHARED_SECRETS = {
    "SECRET_KEY": [(s, "SECRET_KEY") for s in API_IMAGE],
    "sandbox key": [("api", "CODE_EXECUTION_API_KEY"), ("worker", "CODE_EXECUTION_API_KEY"),
                    ("api_websocket", "CODE_EXECUTION_API_KEY"), ("sandbox", "API_KEY")],
    "plugin daemon key": [(s, "PLUGIN_DAEMON_KEY") for s in ("api", "worker", "api_websocket")]
    + [("plugin_daemon", "SERVER_KEY"), ("agent_backend", "DIFY_AGENT_PLUGIN_DAEMON_API_KEY")],
    "plugin inner API key": [(s, "INNER_API_KEY_FOR_PLUGIN") for s in ("api", "worker", "api_websocket")]
    + [("plugin_daemon", "DIFY_INNER_API_KEY"), ("agent_backend", "DIFY_AGENT_INNER_API_KEY")],
    "agent API token": [(s, "AGENT_BACKEND_API_TOKEN") for s in ("api", "worker", "api_websocket")]
    + [("agent_backend", "DIFY_AGENT_API_TOKEN")],
    "shellctl token": [("agent_backend", "DIFY_AGENT_SHELLCTL_AUTH_TOKEN"), ("local_sandbox", "SHELLCTL_AUTH_TOKEN")],
    "database password": [(s, "DB_PASSWORD") for s in API_IMAGE] + [("plugin_daemon", "DB_PASSWORD")],
    "redis password": [(s, "REDIS_PASSWORD") for s in API_IMAGE] + [("plugin_daemon", "REDIS_PASSWORD")],
    "weaviate API key": [(s, "WEAVIATE_API_KEY") for s in API_IMAGE],
    "qdrant API key": [(s, "QDRANT_API_KEY") for s in API_IMAGE],
}

# What a vector store needs before Dify can reach it, per VECTOR_STORE: each
# entry is (names, hint); at least one of the names must be non-empty on the
# services that read or write vectors. pgvector is always complete (it
# defaults to Dify's own database).
VECTOR_STORE_SERVICES = ("api", "worker")
VECTOR_REQUIRED = {
    "weaviate": (
        (("WEAVIATE_ENDPOINT",), "set dify_weaviate_endpoint (an external Weaviate, http(s)://host:8080) or put "
                                 "a host in group dify_vector (the vector_store role runs Weaviate there)"),
        (("WEAVIATE_API_KEY",), "it comes from difyops_secrets.weaviate_api_key: put your Weaviate's API key "
                                "in the secrets file (generated there when group dify_vector runs Weaviate)"),
    ),
    "qdrant": (
        (("QDRANT_URL",), "set dify_qdrant_url (an external Qdrant, http(s)://host:6333) or put a host in "
                          "group dify_vector (the vector_store role runs Qdrant there)"),
        (("QDRANT_API_KEY",), "it comes from difyops_secrets.qdrant_api_key: put your Qdrant's API key in the "
                              "secrets file (generated there when group dify_vector runs Qdrant)"),
    ),
    "milvus": ((("MILVUS_URI",), "set it in dify_vector_env"),),
    "chroma": ((("CHROMA_HOST",), "set it in dify_vector_env"),),
    "opensearch": ((("OPENSEARCH_HOST",), "set it in dify_vector_env"),),
    "elasticsearch": ((("ELASTICSEARCH_HOST", "ELASTICSEARCH_CLOUD_URL"), "set one in dify_vector_env"),),
    "elasticsearch-ja": ((("ELASTICSEARCH_HOST", "ELASTICSEARCH_CLOUD_URL"), "set one in dify_vector_env"),),
}

# URL variables whose scheme Dify's clients parse.
URL_SCHEMES = {
    "WEAVIATE_ENDPOINT": ("http://", "https://"),
    "WEAVIATE_GRPC_ENDPOINT": ("grpc://", "grpcs://"),
    "QDRANT_URL": ("http://", "https://"),
}

# Dify's public sample values: one list for the whole collection (module_utils/secrets).
SAMPLE_SECRETS = tuple(sorted(_secrets.SAMPLE_SECRETS))
# Those long enough to recognise inside a value such as a broker URL's password.
_SAMPLES_IN_URLS = tuple(v for v in SAMPLE_SECRETS if len(v) >= 12)

# Secrets each service must have (non-empty).
REQUIRED_SECRETS = {
    "api": ("SECRET_KEY", "DB_PASSWORD", "CODE_EXECUTION_API_KEY", "PLUGIN_DAEMON_KEY", "INNER_API_KEY_FOR_PLUGIN"),
    "worker": ("SECRET_KEY", "DB_PASSWORD", "CODE_EXECUTION_API_KEY", "PLUGIN_DAEMON_KEY"),
    "beat": ("SECRET_KEY", "DB_PASSWORD"),
    "migration": ("SECRET_KEY", "DB_PASSWORD"),
    "web": (),
    "sandbox": ("API_KEY",),
    "plugin_daemon": ("SERVER_KEY", "DIFY_INNER_API_KEY", "DB_PASSWORD"),
    "api_websocket": ("SECRET_KEY", "DB_PASSWORD", "CODE_EXECUTION_API_KEY", "PLUGIN_DAEMON_KEY",
                      "INNER_API_KEY_FOR_PLUGIN"),
    "agent_backend": ("DIFY_AGENT_API_TOKEN", "DIFY_AGENT_SERVER_SECRET_KEY", "DIFY_AGENT_SHELLCTL_AUTH_TOKEN",
                      "DIFY_AGENT_PLUGIN_DAEMON_API_KEY", "DIFY_AGENT_INNER_API_KEY"),
    "local_sandbox": ("SHELLCTL_AUTH_TOKEN",),
}

SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|CREDENTIAL|CONNECTION_STRING|_DSN$|^SENTRY_DSN$|BROKER_URL|"
                         r"REDIS_URL$|(^|_)KEY$|ACCESS_KEY|API_KEY)")
# A URL carrying a password (scheme://user:password@host), whatever its name.
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)
MASK = "********"

# Compose service names that mean nothing on a fleet.
COMPOSE_HOSTS = ("db_postgres", "db_mysql", "redis", "sandbox", "plugin_daemon", "api", "web", "ssrf_proxy",
                 "weaviate", "qdrant", "pgvector", "milvus-standalone", "agent_backend")
ADDRESS_NAME = re.compile(r"(_HOST|_URL|_URI|_ENDPOINT|_SENTINELS|_PROXY|_CLUSTERS)$|^HTTPS?_PROXY$")
COMPOSE_HOST_RE = re.compile(r"(^|://|@|[,;])(%s)(:\d+|/|$|,|;)" % "|".join(re.escape(h) for h in COMPOSE_HOSTS))


class ContractError(Exception):
    """A context or environment that breaks Dify's contract."""


def family(service):
    return "api" if service in API_IMAGE else service


def has_service(version, service):
    """Whether release ``version`` runs ``service`` (the release's data says; see OPTIONAL_SERVICES)."""
    release = _release(version)
    if service not in OPTIONAL_SERVICES:
        return service in SERVICES
    fam, compose_name = OPTIONAL_SERVICES[service]
    if not dify_schema.has_family(release, fam):
        return False
    return compose_name is None or compose_name in (release[fam].get("compose") or {})


def services(version):
    """The services release ``version`` has, in SERVICES order."""
    return tuple(s for s in SERVICES if has_service(version, s))


_COMPOSE_DEFAULT = re.compile(r"\A\$\{[A-Z0-9_]+:-(?P<default>[^${}]*)\}\Z")


def compose_defaults(version, fam, compose_name):
    """Upstream's compose ``environment`` of one service with each ``${VAR:-default}`` resolved to its default.

    Literal values are kept; a value that nests another variable is left out.
    """
    environment = (_release(version)[fam].get("compose", {}).get(compose_name) or {}).get("environment") or {}
    out = {}
    for name, value in environment.items():
        value = _s(value)
        m = _COMPOSE_DEFAULT.match(value)
        if m:
            out[name] = m.group("default")
        elif "$" not in value:
            out[name] = value
    return out


def is_secret(name):
    return bool(SECRET_NAME.search(name))


def _s(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _need(ctx, path):
    cur = ctx
    for part in path.split("."):
        if not isinstance(cur, dict) or cur.get(part) in (None, ""):
            raise ContractError("context.%s is required (set it in the inventory or the role's variables)" % path)
        cur = cur[part]
    return cur


def _release(version):
    if version not in VERSIONS:
        raise ContractError("dify_version %r has no contract data; known: %s" % (version, ", ".join(VERSIONS)))
    return VERSIONS[version]["release"]


def reads(version, fam, name):
    """Whether the image family of this release reads ``name`` (from the extracted data)."""
    return name in dify_schema.known_names(_release(version), fam)


def _url_host(address):
    try:
        return _fleet.url_host(address)
    except _fleet.FleetError as exc:
        raise ContractError(str(exc)) from None


def _host_of(url):
    """The host of an http(s) URL (IPv6 without brackets), or ''."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def redis_env(ctx, for_daemon=False, version=DEFAULT_VERSION):
    """REDIS_* and CELERY_* for a sentinel or a single Redis, as the image family of ``version`` reads them.

    ``ctx['redis_env']`` (what the difyops.fleet.dify_redis_env filter renders)
    is used as is when given; otherwise it is built from ``ctx['redis']``.
    Empty values are left out (an empty REDIS_PORT stops Dify and the plugin
    daemon at start), and so is every name the image does not read
    (BROKER_USE_SSL is computed by DifyConfig; the plugin daemon reads no
    CELERY_* and no REDIS_USE_CLUSTERS).
    """
    if ctx.get("redis_env"):
        env = {k: _s(v) for k, v in ctx["redis_env"].items()}
    else:
        env = _build_redis_env(ctx)
    fam = "plugin_daemon" if for_daemon else "api"
    names = dify_schema.known_names(_release(version), fam)
    env = {k: v for k, v in env.items() if v != "" and k in names}
    if for_daemon:
        env = {k: v for k, v in env.items() if not k.startswith("CELERY_")}
        if env.get("REDIS_HOST"):
            # the daemon dials fmt.Sprintf("%s:%d", REDIS_HOST, REDIS_PORT)
            env["REDIS_HOST"] = _url_host(env["REDIS_HOST"])
    elif env.get("REDIS_HOST"):
        # redis-py's host= (ext_redis's standalone client) takes a bare address
        env["REDIS_HOST"] = _fleet.bare_host(env["REDIS_HOST"])
    return env


def _build_redis_env(ctx):
    r = ctx.get("redis") or {}
    secrets = ctx.get("secrets") or {}
    password = secrets.get("redis_password", "")
    sentinel_password = secrets.get("redis_sentinel_password", "")
    auth = ":%s@" % quote(password, safe="") if password else ""
    env = {"REDIS_PASSWORD": password, "REDIS_DB": _s(r.get("db", 0)), "CELERY_BACKEND": "redis"}
    sentinels = r.get("sentinels") or []
    broker_db = r.get("broker_db", 1)
    if sentinels:
        master = r.get("master_name") or "dify-master"
        timeout = _s(r.get("sentinel_socket_timeout", 0.1))
        env.update({
            "REDIS_USE_SENTINEL": "true",
            "REDIS_SENTINELS": ",".join(sentinels),
            "REDIS_SENTINEL_SERVICE_NAME": master,
            "REDIS_SENTINEL_PASSWORD": sentinel_password,
            "REDIS_SENTINEL_SOCKET_TIMEOUT": timeout,
            "CELERY_BROKER_URL": ";".join("sentinel://%s%s/%s" % (auth, s, broker_db) for s in sentinels),
            "CELERY_USE_SENTINEL": "true",
            "CELERY_SENTINEL_MASTER_NAME": master,
            "CELERY_SENTINEL_PASSWORD": sentinel_password,
            "CELERY_SENTINEL_SOCKET_TIMEOUT": timeout,
        })
    else:
        host = _need(ctx, "redis.host")
        port = r.get("port", 6379)
        env.update({"REDIS_USE_SENTINEL": "false", "REDIS_HOST": host, "REDIS_PORT": _s(port),
                    "CELERY_USE_SENTINEL": "false",
                    "CELERY_BROKER_URL": "redis://%s%s:%s/%s" % (auth, _url_host(host), port, broker_db)})
    return env


def event_bus_url(ctx, redis):
    """PUBSUB_REDIS_URL: where Dify's event bus (streamed events, worker -> api) publishes and subscribes.

    Dify 1.13.3 and 1.16.1 have no Sentinel setting for the event bus: without
    this URL it builds ``redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}``, which
    with Sentinels is localhost:6379 (REDIS_HOST unset: streamed answers never
    arrive) or a ValueError (REDIS_HOST empty). ``ctx['event_bus']['url']`` is
    an endpoint that reaches the current Redis master (``redis://host:port``;
    the role asks the Sentinels at converge time, or a local proxy that follows
    the master); without credentials it gets the fleet's Redis user and
    password, without a path the cache database (REDIS_DB). Without Sentinels
    the default is the one Redis host.
    """
    given = ((ctx.get("event_bus") or {}).get("url") or "").strip()
    if not given:
        if redis.get("REDIS_USE_SENTINEL") == "true":
            raise ContractError(
                "context.event_bus.url is required with Sentinels: Dify's event bus (PUBSUB_REDIS_URL) cannot "
                "follow Sentinel and would use localhost:6379; give an endpoint that reaches the current Redis "
                "master (the dify role asks the Sentinels; dify_event_bus_redis_url overrides it)")
        if not redis.get("REDIS_HOST"):
            raise ContractError("context.redis.host (or redis_env REDIS_HOST) is required for the event bus")
        given = "%s://%s:%s" % ("rediss" if redis.get("REDIS_USE_SSL") == "true" else "redis",
                                _url_host(redis["REDIS_HOST"]), redis.get("REDIS_PORT", "6379"))
    try:
        parts = urlsplit(given)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise ContractError("event bus URL %r: %s" % (given, exc)) from None
    if parts.scheme not in ("redis", "rediss") or not host:
        raise ContractError("event bus URL %r must be redis://host:port or rediss://host:port (an endpoint that "
                            "reaches the current Redis master)" % (given,))
    netloc = parts.netloc if port else parts.netloc + ":6379"
    if "@" not in netloc:
        user = redis.get("REDIS_USERNAME", "")
        password = redis.get("REDIS_PASSWORD", "")
        if user or password:
            netloc = "%s:%s@%s" % (quote(user, safe=""), quote(password, safe=""), netloc)
    path = parts.path if parts.path not in ("", "/") else "/" + redis.get("REDIS_DB", "0")
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def public_urls(ctx):
    """Every URL Dify hands to browsers, mail, OAuth providers, plugins and webhooks.

    From ``ctx['public_url']`` (scheme://name[:port] of the edge, where nginx
    routes /console/api, /api, /v1, /files, /triggers to api, /e/ to the plugin
    daemon and the rest to web); each can be overridden in ``ctx['urls']``.
    Without a public URL (no edge: a role used alone) the fleet's own
    addresses: api for the API and file URLs, ``urls.web`` (else api) for
    the web ones.
    The internal files URL (INTERNAL_FILES_URL: what api, worker and the plugin
    daemon fetch files from) is the api pool's ``urls.api``.
    """
    urls = ctx.get("urls") or {}
    base = (ctx.get("public_url") or "").strip().rstrip("/")
    api = (urls.get("api") or "").rstrip("/")
    if base:
        api_base = web_base = base
        endpoint = base + "/e/{hook_id}"
    else:
        if not api:
            raise ContractError(
                "context.public_url is required: the URL users reach Dify at (the dify role builds it from the "
                "first dify_edge host's nginx_server_name; set dify_public_url), or give urls.api")
        # no web host either (a role used alone): the api's address, never the images' 127.0.0.1
        api_base, web_base = api, (urls.get("web") or api).rstrip("/")
        endpoint = (urls.get("plugin_daemon") or "").rstrip("/") + "/e/{hook_id}"
    out = {
        "console_api": api_base, "service_api": api_base, "app_api": api_base, "files": api_base,
        "trigger": api_base, "console_web": web_base, "app_web": web_base, "endpoint_template": endpoint,
        "internal_files": api,
    }
    for key in out:
        if urls.get(key):
            out[key] = str(urls[key]) if key == "endpoint_template" else str(urls[key]).rstrip("/")
    return out


DB_SSL_MODES = ("disable", "require")


def db_env(ctx, for_daemon=False):
    """DB_* for the api family (pydantic, SQLAlchemy URI) or the plugin daemon (envconfig, gorm DSN).

    The api builds ``{scheme}://user:pw@{DB_HOST}:{DB_PORT}/{db}?{DB_EXTRAS}``,
    so an IPv6 DB_HOST needs brackets there; the daemon's PostgreSQL DSN is
    ``host=%s port=%d ...`` (a bare address) and its MySQL DSN
    ``tcp(%s:%d)`` (brackets). TLS (``ssl_mode`` disable or require) reaches
    the api as DB_EXTRAS (libpq's ``sslmode``; for MySQL pymysql's TLS without
    verification) and the daemon as DB_SSL_MODE, which accepts only disable
    and require.
    """
    db = ctx.get("db") or {}
    secrets = ctx.get("secrets") or {}
    db_type = db.get("type", "postgresql")
    host = _fleet.bare_host(_s(_need(ctx, "db.host")))
    ssl_mode = _s(db.get("ssl_mode") or "disable")
    if ssl_mode not in DB_SSL_MODES:
        raise ContractError("db.ssl_mode=%r (dify_db_ssl_mode): use disable or require (the plugin daemon's "
                            "DB_SSL_MODE accepts only these)" % ssl_mode)
    env = {
        "DB_TYPE": db_type,
        "DB_PORT": _s(db.get("port", 5432)),
        "DB_USERNAME": db.get("username", "dify"),
        "DB_PASSWORD": secrets.get("db_password", ""),
    }
    if for_daemon:
        env.update(DB_HOST=_url_host(host) if db_type == "mysql" else host,
                   DB_DATABASE=db.get("plugin_database", "dify_plugin"), DB_SSL_MODE=ssl_mode)
        return env
    extras = []
    if db_type == "postgresql":
        extras.append("sslmode=%s" % ssl_mode)
    elif ssl_mode == "require":
        extras.append("ssl_check_hostname=false")
    if db.get("extras"):
        extras.append(_s(db["extras"]).strip("?&"))
    env.update(DB_HOST=_url_host(host), DB_DATABASE=db.get("database", "dify"))
    if extras:
        env["DB_EXTRAS"] = "&".join(extras)
    return env


def storage_envs(ctx):
    """(api env, plugin daemon env) of the file storage: ``ctx['storage']`` (the storage role's
    settings, module_utils/dify_storage.py), each replaced whole by ``ctx['storage_env']`` /
    ``ctx['plugin_storage_env']`` when those are given."""
    try:
        computed = _storage.storage_env(ctx.get("storage") or {})
    except _storage.StorageError as exc:
        raise ContractError(str(exc)) from None
    api = dict(ctx.get("storage_env") or computed["api"])
    daemon = dict(ctx.get("plugin_storage_env") or computed["plugin_daemon"])
    return api, daemon


def vector_env(store, ctx):
    """WEAVIATE_* / QDRANT_* for an external endpoint or the fleet's own container.

    Addresses come from ``ctx['weaviate']`` (endpoint, grpc_endpoint,
    tokenization) or ``ctx['qdrant']`` (url, client_timeout, grpc_enabled,
    grpc_port, replication_factor); the API key always comes from the fleet's
    secrets (``weaviate_api_key`` / ``qdrant_api_key``). Empty settings are
    left out, so validation names what is missing. Other stores take their
    variables from ``ctx['vector_env']``.
    """
    secrets = ctx.get("secrets") or {}
    env = {}
    if store == "weaviate":
        w = ctx.get("weaviate") or {}
        for key, name in (("endpoint", "WEAVIATE_ENDPOINT"), ("grpc_endpoint", "WEAVIATE_GRPC_ENDPOINT"),
                          ("tokenization", "WEAVIATE_TOKENIZATION")):
            if w.get(key) not in (None, ""):
                env[name] = _s(w[key])
        if secrets.get("weaviate_api_key"):
            env["WEAVIATE_API_KEY"] = secrets["weaviate_api_key"]
    elif store == "qdrant":
        q = ctx.get("qdrant") or {}
        for key, name in (("url", "QDRANT_URL"), ("client_timeout", "QDRANT_CLIENT_TIMEOUT"),
                          ("grpc_enabled", "QDRANT_GRPC_ENABLED"), ("grpc_port", "QDRANT_GRPC_PORT"),
                          ("replication_factor", "QDRANT_REPLICATION_FACTOR")):
            if q.get(key) not in (None, ""):
                env[name] = _s(q[key])
        if secrets.get("qdrant_api_key"):
            env["QDRANT_API_KEY"] = secrets["qdrant_api_key"]
    return env


def _pgvector_env(ctx, db):
    vdb = ctx.get("pgvector") or {}
    secrets = ctx.get("secrets") or {}
    return {
        # psycopg2's host= takes a bare address (IPv6 without brackets)
        "PGVECTOR_HOST": _fleet.bare_host(_s(vdb.get("host") or db["DB_HOST"])),
        "PGVECTOR_PORT": _s(vdb.get("port") or db["DB_PORT"]),
        "PGVECTOR_USER": vdb.get("user") or db["DB_USERNAME"],
        "PGVECTOR_PASSWORD": secrets.get("pgvector_password") or db["DB_PASSWORD"],
        "PGVECTOR_DATABASE": vdb.get("database") or db["DB_DATABASE"],
        "PGVECTOR_MIN_CONNECTION": _s(vdb.get("min_connection", 1)),
        "PGVECTOR_MAX_CONNECTION": _s(vdb.get("max_connection", 5)),
    }


def _plugin_remote_install_host(ctx):
    """What the console shows plugin developers to connect their debugger to (port 5003 of the daemon host)."""
    host = ctx.get("plugin_remote_install_host") or _host_of((ctx.get("urls") or {}).get("plugin_daemon") or "")
    if not host:
        raise ContractError("context.plugin_remote_install_host (or urls.plugin_daemon) is required")
    return _s(host)


def _api_family(service, ctx, version):
    secrets = ctx.get("secrets") or {}
    sizing = ctx.get("sizing") or {}
    env = {
        "MODE": "api" if service == "api_websocket" else service,
        "EDITION": "SELF_HOSTED",
        "DEPLOY_ENV": ctx.get("deploy_env", "PRODUCTION"),
        "LOG_LEVEL": ctx.get("log_level", "INFO"),
        "LOG_OUTPUT_FORMAT": ctx.get("log_format", "json"),
        "LOG_TZ": "UTC",
        "SECRET_KEY": secrets.get("secret_key", ""),
        "MIGRATION_ENABLED": "true" if service == "migration" else "false",
        "SQLALCHEMY_POOL_SIZE": _s(sizing.get("sqlalchemy_pool_size", 30)),
        "SQLALCHEMY_MAX_OVERFLOW": _s(sizing.get("sqlalchemy_max_overflow", 10)),
        "SQLALCHEMY_POOL_RECYCLE": "3600",
        "SQLALCHEMY_POOL_PRE_PING": "true",
        "CODE_EXECUTION_ENDPOINT": _need(ctx, "urls.sandbox"),
        "CODE_EXECUTION_API_KEY": secrets.get("sandbox_api_key", ""),
        "PLUGIN_DAEMON_URL": _need(ctx, "urls.plugin_daemon"),
        "PLUGIN_DAEMON_KEY": secrets.get("plugin_daemon_key", ""),
        "INNER_API_KEY_FOR_PLUGIN": secrets.get("plugin_inner_api_key", ""),
        "VECTOR_STORE": ctx.get("vector_store", "pgvector"),
    }
    db = db_env(ctx)
    env.update(db)
    urls = public_urls(ctx)
    env.update({
        "CONSOLE_API_URL": urls["console_api"], "CONSOLE_WEB_URL": urls["console_web"],
        "SERVICE_API_URL": urls["service_api"], "APP_WEB_URL": urls["app_web"], "FILES_URL": urls["files"],
        "INTERNAL_FILES_URL": urls["internal_files"], "TRIGGER_URL": urls["trigger"],
        "ENDPOINT_URL_TEMPLATE": urls["endpoint_template"],
    })
    ssrf = (ctx.get("urls") or {}).get("ssrf_proxy")
    if ssrf:
        env["SSRF_PROXY_HTTP_URL"] = ssrf
        env["SSRF_PROXY_HTTPS_URL"] = ssrf
    redis = redis_env(ctx, version=version)
    env.update(redis)
    env["PUBSUB_REDIS_URL"] = event_bus_url(ctx, redis)
    if reads(version, "api", "ENABLE_COLLABORATION_MODE"):
        # On by default from 1.15: the console then opens a socket.io connection
        # that needs the api_websocket service (context.collaboration: the fleet runs one).
        env["ENABLE_COLLABORATION_MODE"] = "true" if ctx.get("collaboration") else "false"
    agent_url = (ctx.get("urls") or {}).get("agent_backend")
    if agent_url and reads(version, "api", "AGENT_BACKEND_BASE_URL"):
        # 1.16+: api and worker call the agent backend with its API token.
        env["AGENT_BACKEND_BASE_URL"] = _s(agent_url).rstrip("/")
        if reads(version, "api", "AGENT_BACKEND_API_TOKEN"):
            env["AGENT_BACKEND_API_TOKEN"] = secrets.get("agent_api_token", "")
    if env["VECTOR_STORE"] == "pgvector" and env["DB_TYPE"] != "postgresql" and not (ctx.get("pgvector") or {}).get("host"):
        raise ContractError(
            "VECTOR_STORE=pgvector needs PostgreSQL but DB_TYPE is %s and no pgvector host is set: set "
            "dify_vector_store to weaviate or qdrant (with a dify_vector host or an external endpoint), or keep "
            "a dify_postgres host for pgvector (dify_pgvector_host)" % env["DB_TYPE"])
    if env["VECTOR_STORE"] == "pgvector":
        env.update(_pgvector_env(ctx, db))
    env.update(vector_env(env["VECTOR_STORE"], ctx))
    env.update(ctx.get("vector_env") or {})
    env.update(storage_envs(ctx)[0])
    sentry = ctx.get("sentry") or {}
    if service in ("api", "api_websocket"):
        env.update({
            "DIFY_BIND_ADDRESS": "0.0.0.0",
            "DIFY_PORT": _s((ctx.get("ports") or {}).get(service, 5001 if service == "api" else 5005)),
            "SERVER_WORKER_AMOUNT": _s(sizing.get("gunicorn_workers", 1)),
            "SERVER_WORKER_CLASS": "gevent",
            "GUNICORN_TIMEOUT": "360",
            "PLUGIN_REMOTE_INSTALL_HOST": _plugin_remote_install_host(ctx),
            "PLUGIN_REMOTE_INSTALL_PORT": "5003",
            "PLUGIN_MAX_PACKAGE_SIZE": "52428800",
            "PLUGIN_DAEMON_TIMEOUT": "600.0",
        })
    if service == "api_websocket":
        # upstream's websocket worker settings (its compose entry), over the api's
        for name, value in compose_defaults(version, "api", "api_websocket").items():
            if name != "MODE":
                env[name] = value
    if service == "worker":
        autoscale = sizing.get("celery_autoscale") or []
        env["CELERY_WORKER_AMOUNT"] = _s(sizing.get("celery_concurrency", 1))
        if sizing.get("celery_use_autoscale") and len(autoscale) == 2:
            env.update({"CELERY_AUTO_SCALE": "true", "CELERY_MIN_WORKERS": _s(autoscale[0]),
                        "CELERY_MAX_WORKERS": _s(autoscale[1])})
        else:
            env["CELERY_AUTO_SCALE"] = "false"
        if ctx.get("celery_queues"):
            env["CELERY_QUEUES"] = ",".join(ctx["celery_queues"])
    if service in ("api", "worker", "beat", "api_websocket") and sentry.get("api_dsn"):
        env.update({"SENTRY_DSN": sentry["api_dsn"],
                    "SENTRY_TRACES_SAMPLE_RATE": _s(sentry.get("traces_sample_rate", 1.0)),
                    "SENTRY_PROFILES_SAMPLE_RATE": _s(sentry.get("profiles_sample_rate", 1.0))})
    if service != "migration":
        env.update(ctx.get("otel_env") or {})
    return env


def _web(ctx, version):
    urls = public_urls(ctx)
    env = {
        # the browser calls ${CONSOLE_API_URL}/console/api and ${APP_API_URL}/api (web/docker/entrypoint.sh)
        "CONSOLE_API_URL": urls["console_api"],
        "APP_API_URL": urls["app_api"],
        "NEXT_TELEMETRY_DISABLED": "1",
        "PORT": _s(ctx.get("ports", {}).get("web", 3000)),
        "HOSTNAME": "0.0.0.0",
        "DEPLOY_ENV": ctx.get("deploy_env", "PRODUCTION"),
    }
    if reads(version, "web", "CONSOLE_WEB_URL"):
        env["CONSOLE_WEB_URL"] = urls["console_web"]   # NEXT_PUBLIC_WEB_PREFIX (1.15+)
    if reads(version, "web", "EDITION"):
        env["EDITION"] = "SELF_HOSTED"                 # read by the web entrypoint up to 1.14
    sentry = ctx.get("sentry") or {}
    if sentry.get("web_dsn"):
        env["SENTRY_DSN"] = sentry["web_dsn"]
    return env


def _sandbox(ctx):
    secrets = ctx.get("secrets") or {}
    urls = ctx.get("urls") or {}
    env = {
        "API_KEY": secrets.get("sandbox_api_key", ""),
        "GIN_MODE": "release",
        "WORKER_TIMEOUT": "15",
        "ENABLE_NETWORK": "true",
        "SANDBOX_PORT": _s(ctx.get("ports", {}).get("sandbox", 8194)),
    }
    if urls.get("ssrf_proxy"):
        env.update({"HTTP_PROXY": urls["ssrf_proxy"], "HTTPS_PROXY": urls["ssrf_proxy"]})
    return env


def _plugin_daemon(ctx, version):
    secrets = ctx.get("secrets") or {}
    sizing = ctx.get("sizing") or {}
    sentry = ctx.get("sentry") or {}
    env = db_env(ctx, for_daemon=True)
    env.update({
        "DB_MAX_OPEN_CONNS": _s(sizing.get("plugin_db_max_open_conns", 30)),
        "DB_MAX_IDLE_CONNS": _s(sizing.get("plugin_db_max_idle_conns", 10)),
        "DB_CONN_MAX_LIFETIME": "3600",
        "SERVER_PORT": _s(ctx.get("ports", {}).get("plugin_daemon", 5002)),
        "SERVER_KEY": secrets.get("plugin_daemon_key", ""),
        "DIFY_INNER_API_URL": _need(ctx, "urls.api"),
        "DIFY_INNER_API_KEY": secrets.get("plugin_inner_api_key", ""),
        "PLUGIN_REMOTE_INSTALLING_HOST": "0.0.0.0",
        "PLUGIN_REMOTE_INSTALLING_PORT": "5003",
        "PLUGIN_WORKING_PATH": "/app/storage/cwd",
        "FORCE_VERIFYING_SIGNATURE": "true",
        "PYTHON_ENV_INIT_TIMEOUT": "120",
        "PLUGIN_MAX_EXECUTION_TIMEOUT": "600",
        "PLUGIN_INSTALLED_PATH": "plugin",
        "PLUGIN_PACKAGE_CACHE_PATH": "plugin_packages",
        "PLUGIN_MEDIA_CACHE_PATH": "assets",
        "GIN_MODE": "release",
    })
    env.update(redis_env(ctx, for_daemon=True, version=version))
    env.update(storage_envs(ctx)[1])
    if sentry.get("plugin_dsn"):
        env.update({"SENTRY_ENABLED": "true", "SENTRY_DSN": sentry["plugin_dsn"]})
    return env


def agent_redis_url(ctx, version=DEFAULT_VERSION):
    """DIFY_AGENT_REDIS_URL: redis-py's from_url (no Sentinel), upstream's database (its compose default's path).

    The host is ``ctx['agent']['redis']`` (``host:port``; the dify role gives
    the fleet's initial Redis master, the first dify_redis host), else the
    REDIS_HOST/REDIS_PORT of a fleet without Sentinels. The fleet's Redis user
    and password are added.
    """
    redis = redis_env(ctx, version=version)
    given = _s((ctx.get("agent") or {}).get("redis")).strip()
    if not given:
        if not redis.get("REDIS_HOST"):
            raise ContractError("context.agent.redis (host:port of a Redis master) is required for the agent "
                                "backend: its DIFY_AGENT_REDIS_URL cannot follow Sentinel")
        given = "%s:%s" % (_url_host(redis["REDIS_HOST"]), redis.get("REDIS_PORT", "6379"))
    if "://" in given or "/" in given or "@" in given:
        raise ContractError("context.agent.redis %r must be host:port (the agent backend's Redis)" % given)
    # upstream's default ("${DIFY_AGENT_REDIS_URL:-redis://:${REDIS_PASSWORD:-...}@redis:6379/2}") ends in its DB
    raw = _s(((_release(version)["agent_backend"].get("compose") or {}).get("agent_backend") or {})
             .get("environment", {}).get("DIFY_AGENT_REDIS_URL"))
    db = re.search(r"/(\d+)\}*\Z", raw)
    path = "/" + (db.group(1) if db else "0")
    user = redis.get("REDIS_USERNAME", "")
    password = (ctx.get("secrets") or {}).get("redis_password") or redis.get("REDIS_PASSWORD", "")
    auth = "%s:%s@" % (quote(user, safe=""), quote(password, safe="")) if (user or password) else ""
    scheme = "rediss" if redis.get("REDIS_USE_SSL") == "true" else "redis"
    return "%s://%s%s%s" % (scheme, auth, given, path)


def _agent_backend(ctx, version):
    """The agent backend (1.16+): its DIFY_AGENT_* settings from the fleet.

    Upstream's compose defaults that are neither secrets nor addresses are
    kept (Redis prefix, run retention, shutdown grace); the rest comes from
    the fleet: Redis (agent_redis_url), the plugin daemon and the inner api
    (their keys shared with api and the daemon), the shellctl entrypoint (the
    local sandbox, ``urls.local_sandbox``) and its token, and the stub base
    URL, this agent backend's own address (``agent.self_url``) with
    upstream's path.
    """
    secrets = ctx.get("secrets") or {}
    agent = ctx.get("agent") or {}
    defaults = compose_defaults(version, "agent_backend", "agent_backend")
    env = {k: v for k, v in defaults.items()
           if not is_secret(k) and not ADDRESS_NAME.search(k) and k != "DIFY_AGENT_SHELLCTL_ENTRYPOINT"}
    stub_path = urlsplit(defaults.get("DIFY_AGENT_STUB_API_BASE_URL", "")).path
    self_url = _s(agent.get("self_url")).rstrip("/")
    if not self_url:
        raise ContractError("context.agent.self_url (http://address:port of this agent backend) is required")
    env.update({
        "DIFY_AGENT_REDIS_URL": agent_redis_url(ctx, version),
        "DIFY_AGENT_API_TOKEN": secrets.get("agent_api_token", ""),
        "DIFY_AGENT_SERVER_SECRET_KEY": secrets.get("agent_server_secret_key", ""),
        "DIFY_AGENT_SHELLCTL_AUTH_TOKEN": secrets.get("agent_shellctl_token", ""),
        "DIFY_AGENT_SHELLCTL_ENTRYPOINT": _s(_need(ctx, "urls.local_sandbox")).rstrip("/"),
        "DIFY_AGENT_PLUGIN_DAEMON_URL": _s(_need(ctx, "urls.plugin_daemon")).rstrip("/"),
        "DIFY_AGENT_PLUGIN_DAEMON_API_KEY": secrets.get("plugin_daemon_key", ""),
        "DIFY_AGENT_INNER_API_URL": _s(_need(ctx, "urls.api")).rstrip("/"),
        "DIFY_AGENT_INNER_API_KEY": secrets.get("plugin_inner_api_key", ""),
        "DIFY_AGENT_STUB_API_BASE_URL": self_url + stub_path,
    })
    return env


def _local_sandbox(ctx, version):
    """The agent's local sandbox (1.16+): the shellctl token and its only way out, the agent SSRF proxy.

    ``urls.agent_ssrf_proxy`` is the proxy as the sandbox reaches it (the dify
    role: the proxy port at the sandbox network's gateway on a proxy host,
    else the first dify_agent_ssrf_proxy host); NO_PROXY is upstream's.
    """
    secrets = ctx.get("secrets") or {}
    proxy = _s(_need(ctx, "urls.agent_ssrf_proxy")).rstrip("/")
    defaults = compose_defaults(version, "local_sandbox", "local_sandbox")
    env = {"SHELLCTL_AUTH_TOKEN": secrets.get("agent_shellctl_token", ""), "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy}
    if "NO_PROXY" in defaults:
        env["NO_PROXY"] = defaults["NO_PROXY"]
    return env


def build_service(service, ctx, version=DEFAULT_VERSION):
    """The environment of one service as release ``version`` reads it, before extras and validation."""
    if service not in SERVICES:
        raise ContractError("service %r is not one of %s" % (service, ", ".join(SERVICES)))
    if not has_service(version, service):
        raise ContractError("Dify %s has no %s service (not in this release)" % (version, service))
    if service in API_IMAGE:
        return _api_family(service, ctx, version)
    if service == "web":
        return _web(ctx, version)
    if service == "sandbox":
        return _sandbox(ctx)
    if service == "agent_backend":
        return _agent_backend(ctx, version)
    if service == "local_sandbox":
        return _local_sandbox(ctx, version)
    return _plugin_daemon(ctx, version)


def fleet_services(ctx, version=DEFAULT_VERSION):
    """The services built for this fleet: those of the release, the optional ones only where
    ``ctx['optional_services']`` lists them (the fleet has hosts in their groups)."""
    wanted = set(ctx.get("optional_services") or ())
    return tuple(s for s in services(version) if s not in OPTIONAL_SERVICES or s in wanted)


def build_all(ctx, extra_env=None, version=DEFAULT_VERSION):
    """Every service's environment for release ``version``: built, then extras (``all`` then per service) applied.

    Services the release does not have (the agent services before 1.16) and
    optional ones the fleet does not run (``ctx['optional_services']``) are
    not built.
    """
    _release(version)
    extra_env = extra_env or {}
    for key in extra_env:
        if key != "all" and key not in SERVICES:
            raise ContractError("extra_env key %r is not 'all' or one of %s" % (key, ", ".join(SERVICES)))
    envs = {}
    for service in fleet_services(ctx, version):
        env = build_service(service, ctx, version)
        # 'all' is the Dify services' (not the agent ones', which share none of their names)
        for scope in (("all", service) if service not in ("agent_backend", "local_sandbox") else (service,)):
            for name, value in (extra_env.get(scope) or {}).items():
                env[str(name)] = _s(value)
        envs[service] = {k: _s(v) for k, v in env.items()}
    return envs


def container_env_problems(container_env, version=DEFAULT_VERSION):
    """Names in ``container_env`` (keys ``all`` or a service) that Dify's images read.

    The containers' own environment, outside the env file, is for what is not
    Dify's (a stand-in image's settings, a tool's); a name Dify reads belongs
    in the env file, where it is validated.
    """
    errors = []
    release = _release(version)
    for scope, names in sorted((container_env or {}).items()):
        if scope != "all" and scope not in SERVICES:
            errors.append("container_env key %r is not 'all' or one of %s" % (scope, ", ".join(SERVICES)))
            continue
        services = SERVICES if scope == "all" else (scope,)
        for name in sorted(names or {}):
            read_by = sorted({family(s) for s in services
                              if name in dify_schema.known_names(release, family(s))})
            if read_by:
                errors.append("container_env %s.%s is a variable Dify %s's %s image reads: set it in "
                              "dify_env_extra, where it is validated" % (scope, name, version, "/".join(read_by)))
    return errors


# Healthchecks: the release's own compose file says which check each service
# has (data: <family>.compose.<service>.healthcheck). Where it has none, a cheap
# request to the service's own port, with a tool its image has (curl in the
# api, sandbox and plugin daemon images, node in web); otherwise none.
HEALTHCHECK_TIMING = {
    "api": {"interval": "30s", "timeout": "5s", "retries": 3, "start_period": "30s"},
    "worker": {"interval": "30s", "timeout": "30s", "retries": 3, "start_period": "60s"},
    "beat": {"interval": "30s", "timeout": "30s", "retries": 3, "start_period": "60s"},
    "web": {"interval": "30s", "timeout": "5s", "retries": 3, "start_period": "30s"},
    "sandbox": {"interval": "30s", "timeout": "5s", "retries": 3, "start_period": "10s"},
    "plugin_daemon": {"interval": "30s", "timeout": "5s", "retries": 3, "start_period": "30s"},
    "api_websocket": {"interval": "30s", "timeout": "5s", "retries": 3, "start_period": "30s"},
    "agent_backend": {"interval": "30s", "timeout": "5s", "retries": 3, "start_period": "20s"},
    "local_sandbox": {"interval": "30s", "timeout": "5s", "retries": 3, "start_period": "10s"},
}
HEALTHCHECK_FALLBACK = {
    "api": ["CMD", "curl", "-fsS", "http://127.0.0.1:5001/health"],
    "web": ["CMD", "node", "-e",
            "fetch('http://127.0.0.1:3000/').then(r=>process.exit(r.status<500?0:1)).catch(()=>process.exit(1))"],
    "sandbox": ["CMD", "curl", "-fsS", "http://127.0.0.1:8194/health"],
    "plugin_daemon": ["CMD", "curl", "-fsS", "http://127.0.0.1:5002/health/check"],
    # no health route (FastAPI answers /openapi.json); python is the image's own (its venv)
    "agent_backend": ["CMD", "python", "-c",
                      "import http.client as h, sys; c = h.HTTPConnection('127.0.0.1:5050', timeout=4); "
                      "c.request('GET', '/openapi.json'); sys.exit(c.getresponse().status != 200)"],
}
COMPOSE_SERVICE = {"api": ("api", "api"), "worker": ("api", "worker"), "beat": ("api", "worker_beat"),
                   "web": ("web", "web"), "sandbox": ("sandbox", "sandbox"),
                   "plugin_daemon": ("plugin_daemon", "plugin_daemon"),
                   # the websocket api has no check of its own upstream: the api's, on its port
                   "api_websocket": ("api", "api"),
                   "agent_backend": ("agent_backend", "agent_backend"),
                   "local_sandbox": ("local_sandbox", "local_sandbox")}
# The port each check asks (upstream's, in the data) and the context's port that replaces it
# (the local sandbox keeps its image's port: it runs on its own network, published).
HEALTHCHECK_PORT = {"api_websocket": 5001, "agent_backend": 5050}


def _on_port(words, old, new):
    return [re.sub(r"(?<=:)%d(?=/|'|$)" % old, str(new), str(w)) for w in words]


def healthchecks(version=DEFAULT_VERSION, ports=None):
    """Per long-running service, the healthcheck in docker_container's form, from the release's data.

    A check that runs a module of the api tree (upstream's ``celery -A
    celery_healthcheck.celery inspect ping``) is used only where the release's
    tree has that file: ``api/celery_healthcheck.py`` exists from 1.14 on, so
    the 1.13.3 worker has none (as in 1.13.3's compose file). Services the
    release does not have get none. ``ports`` (service -> port) moves the check
    of a host-network service that does not listen on upstream's port
    (api_websocket, agent_backend).
    """
    release = _release(version)
    ports = ports or {}
    out = {}
    for service, (fam, compose_name) in COMPOSE_SERVICE.items():
        if not has_service(version, service):
            continue
        test = (release[fam].get("compose", {}).get(compose_name) or {}).get("healthcheck")
        test = list(test) if test else list(HEALTHCHECK_FALLBACK.get(service, ["NONE"]))
        if service in HEALTHCHECK_PORT:
            default = 5005 if service == "api_websocket" else HEALTHCHECK_PORT[service]
            test = _on_port(test, HEALTHCHECK_PORT[service], int(ports.get(service) or default))
        for module, path in (("celery_healthcheck", "api/celery_healthcheck.py"),):
            if any(module in str(word) for word in test) and not dify_schema.has_file(release, path):
                test = ["NONE"]
        out[service] = {"test": test} if test == ["NONE"] else dict(HEALTHCHECK_TIMING[service], test=test)
    return out


def commands(version=DEFAULT_VERSION, ports=None):
    """The image's own command (the release's Dockerfile CMD) for a host-network service on a moved port.

    Only the agent backend (uvicorn ``--port``; its CMD wins over UVICORN_PORT):
    the others keep their image's command.
    """
    release = _release(version)
    out = {}
    if has_service(version, "agent_backend"):
        cmd = [str(w) for w in release["agent_backend"]["dockerfile"]["cmd"]]
        port = (ports or {}).get("agent_backend")
        if port and "--port" in cmd:
            cmd[cmd.index("--port") + 1] = str(port)
        out["agent_backend"] = cmd
    return out


def validate_service(service, env, version=DEFAULT_VERSION, allow_unknown=()):
    """Problems with one service's environment (list of messages).

    Names and values are checked against the release's extracted contract
    with Dify's own parsing semantics (dify_schema); the rest are the
    fleet's rules (secrets, compose host names, migrations, ...).
    """
    errors = []
    fam = family(service)
    if not has_service(version, service):
        return ["%s: Dify %s has no %s service (not in this release)" % (service, version, service)]
    # names upstream's compose file sets for this service are read by it (the
    # local sandbox's HTTP(S)_PROXY, NO_PROXY reach its jobs)
    compose_fam, compose_name = COMPOSE_SERVICE.get(service, (fam, service))
    if service in OPTIONAL_SERVICES:
        compose_fam, compose_name = OPTIONAL_SERVICES[service][0], OPTIONAL_SERVICES[service][1] or service
    allow_unknown = tuple(allow_unknown) + tuple(
        (VERSIONS[version]["release"][compose_fam].get("compose", {}).get(compose_name) or {}).get("environment")
        or ())
    for problem in dify_schema.validate_env(VERSIONS[version]["release"], fam, env, allow_unknown):
        if "is not a variable Dify" in problem:
            name = problem.split(" ", 1)[0]
            problem += "; fix the name, or allow it with dify_env_allow_unknown: [%s]" % name
        errors.append("%s: %s" % (service, problem))
    for name, value in sorted(env.items()):
        if "\n" in value or "\r" in value or "\x00" in value:
            errors.append("%s: %s contains a line break, which an env file cannot hold" % (service, name))
        if name in CHOICES and value not in CHOICES[name]:
            errors.append("%s: %s=%r is not one of %s" % (service, name, value, ", ".join(CHOICES[name])))
        if ADDRESS_NAME.search(name) and COMPOSE_HOST_RE.search(value):
            errors.append("%s: %s points at a docker-compose host name (%s); use a fleet address"
                          % (service, name, COMPOSE_HOST_RE.search(value).group(2)))
        if is_secret(name) and value:
            if _secrets.is_sample_value(value) or (
                    "URL" in name and any(v in value.lower() for v in _SAMPLES_IN_URLS)):
                errors.append("%s: %s holds Dify's public sample value; generate a secret "
                              "(difyops_secrets) instead" % (service, name))
    for name in REQUIRED_SECRETS[service]:
        if not env.get(name):
            errors.append("%s: %s is empty; it comes from difyops_secrets" % (service, name))
    for name, schemes in sorted(URL_SCHEMES.items()):
        if env.get(name) and not env[name].lower().startswith(schemes):
            errors.append("%s: %s=%r must start with %s" % (service, name, env[name], " or ".join(schemes)))
    if service in VECTOR_STORE_SERVICES:
        store = env.get("VECTOR_STORE", "")
        for names, hint in VECTOR_REQUIRED.get(store, ()):
            if not any(env.get(n) for n in names):
                errors.append("%s: VECTOR_STORE=%s needs %s; %s" % (service, store, " or ".join(names), hint))
    if service in ("api", "worker", "beat") and env.get("MIGRATION_ENABLED") != "false":
        errors.append("%s: MIGRATION_ENABLED must be false on long-running services (the migration job runs "
                      "once)" % service)
    if env.get("REDIS_USE_SENTINEL") == "true" and env.get("REDIS_USE_CLUSTERS") == "true":
        errors.append("%s: REDIS_USE_SENTINEL and REDIS_USE_CLUSTERS cannot both be true" % service)
    if env.get("REDIS_USE_SENTINEL") == "true" and not (env.get("REDIS_SENTINELS")
                                                        and env.get("REDIS_SENTINEL_SERVICE_NAME")):
        errors.append("%s: REDIS_USE_SENTINEL=true needs REDIS_SENTINELS and REDIS_SENTINEL_SERVICE_NAME" % service)
    errors.extend("%s: %s" % (service, e) for e in _fleet_rules(service, env, version))
    return errors


# URLs Dify gives to browsers, mail, OAuth providers, plugins and webhook
# callers (and INTERNAL_FILES_URL, fetched by api, worker and the plugin
# daemon): absolute, and never a loopback address other hosts cannot reach.
PUBLIC_URL_NAMES = ("CONSOLE_API_URL", "CONSOLE_WEB_URL", "SERVICE_API_URL", "APP_API_URL", "APP_WEB_URL",
                    "FILES_URL", "INTERNAL_FILES_URL", "TRIGGER_URL", "ENDPOINT_URL_TEMPLATE")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
# Releases whose ext_redis splits every REDIS_SENTINELS entry on ':'
# (host = node.split(":")[0]): an IPv6 Sentinel address cannot work there.
SENTINELS_SPLIT_ON_COLON = ("1.13.3", "1.16.1")


def _is_ipv6(host):
    return host.count(":") > 1


def _fleet_rules(service, env, version):
    """The fleet's rules on values Dify parses but would not work with (addresses, URLs)."""
    errors = []
    fam = family(service)
    for name, value in sorted(env.items()):
        if value == "" and ADDRESS_NAME.search(name):
            errors.append("%s is empty: an empty address falls back to localhost or stops the service at start; "
                          "omit it or give the address" % name)
        if name in PUBLIC_URL_NAMES and value:
            host = _host_of(value.replace("{hook_id}", "hook"))
            if not value.lower().startswith(("http://", "https://")) or not host:
                errors.append("%s=%r must be an absolute http(s) URL" % (name, value))
            elif host in LOOPBACK_HOSTS:
                errors.append("%s=%r points at the loopback address, which browsers and the other hosts do not "
                              "reach; set the public name (nginx_server_name, dify_public_url or dify_urls)"
                              % (name, value))
    if fam == "api":
        if env.get("REDIS_USE_SENTINEL") == "true" and not (env.get("PUBSUB_REDIS_URL")
                                                            or env.get("EVENT_BUS_REDIS_URL")):
            errors.append("REDIS_USE_SENTINEL=true without PUBSUB_REDIS_URL: Dify's event bus cannot follow Sentinel "
                          "and would publish streamed events to localhost:6379; give it the Redis master's address")
        for name in ("PUBSUB_REDIS_URL", "EVENT_BUS_REDIS_URL"):
            if env.get(name) and not env[name].startswith(("redis://", "rediss://")):
                errors.append("%s must be a redis:// or rediss:// URL" % name)
        if version in SENTINELS_SPLIT_ON_COLON and env.get("REDIS_USE_SENTINEL") == "true":
            for entry in (env.get("REDIS_SENTINELS") or "").split(","):
                if entry.count(":") > 1:
                    errors.append(
                        "REDIS_SENTINELS entry %r is an IPv6 address: Dify %s splits each entry on ':' "
                        "(api/extensions/ext_redis.py), so it cannot reach it; give the Sentinels host names "
                        "(dify_redis_sentinels) or IPv4 addresses" % (entry, version))
        host = env.get("DB_HOST", "")
        if _is_ipv6(host) and not host.startswith("["):
            errors.append("DB_HOST=%s: Dify builds its database URI as user:pw@{DB_HOST}:{DB_PORT}, so an IPv6 "
                          "address needs brackets ([%s])" % (host, host))
        if env.get("PGVECTOR_HOST", "").startswith("["):
            errors.append("PGVECTOR_HOST=%s: psycopg2's host= takes the address without brackets"
                          % env["PGVECTOR_HOST"])
    if fam == "plugin_daemon":
        host = env.get("DB_HOST", "")
        if env.get("DB_TYPE", "postgresql") == "mysql" and _is_ipv6(host) and not host.startswith("["):
            errors.append("DB_HOST=%s: the plugin daemon dials tcp(DB_HOST:DB_PORT) for MySQL, so an IPv6 address "
                          "needs brackets" % host)
        if env.get("DB_TYPE", "postgresql") != "mysql" and host.startswith("["):
            errors.append("DB_HOST=%s: the plugin daemon's PostgreSQL DSN is host=%%s (no brackets)" % host)
        rhost = env.get("REDIS_HOST", "")
        if env.get("REDIS_USE_SENTINEL") != "true" and _is_ipv6(rhost) and not rhost.startswith("["):
            errors.append("REDIS_HOST=%s: the plugin daemon dials REDIS_HOST:REDIS_PORT, so an IPv6 address needs "
                          "brackets" % rhost)
    return errors


def validate_all(envs, version=DEFAULT_VERSION, allow_unknown=()):
    if version not in VERSIONS:
        raise ContractError("dify_version %r has no contract data; known: %s" % (version, ", ".join(VERSIONS)))
    errors = []
    for service in SERVICES:
        if service in envs:
            errors.extend(validate_service(service, envs[service], version, allow_unknown))
    for label, members in SHARED_SECRETS.items():
        # (api and worker hold the agent token only where the fleet runs an agent backend)
        values = {envs[s].get(n) for s, n in members
                  if s in envs and (n in envs[s] or label != "agent API token")}
        if len(values) > 1:
            errors.append("%s differs between %s; they must be equal"
                          % (label, ", ".join("%s.%s" % m for m in members)))
    return errors


def hides(name, value):
    """Whether a variable's value is a secret: by its name, or a URL holding a password."""
    return bool(value) and (is_secret(name) or bool(URL_CREDENTIALS.search(value)))


def masked(env):
    return {k: (MASK if hides(k, v) else v) for k, v in env.items()}


def render(env, header=""):
    lines = []
    if header:
        lines.extend("# " + line for line in header.splitlines())
    lines.extend("%s=%s" % (k, env[k]) for k in sorted(env))
    return "\n".join(lines) + "\n"


def parse(text):
    env = {}
    for line in text.split("\n"):
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        name, dummy, value = line.partition("=")
        env[name.strip()] = value
    return env


def masked_diff_text(before, after):
    """Both sides masked; a secret that changed reads '******** (changed)'."""
    b = masked(before)
    a = masked(after)
    for k, v in after.items():
        if hides(k, v) and k in before and before[k] != v:
            a[k] = MASK + " (changed)"
    return render(b), render(a)
