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

from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract_data as data
from ansible_collections.difyops.fleet.plugins.module_utils import secrets as _secrets

SERVICES = ("api", "worker", "beat", "migration", "web", "sandbox", "plugin_daemon")
API_FAMILY = ("api", "worker", "beat", "migration")

# Per release: images and the variable names each image family reads.
# Add a release here (and its name sets in dify_contract_data) to support it.
VERSIONS = {
    "1.13.3": {
        "images": {
            "api": "langgenius/dify-api:1.13.3",
            "web": "langgenius/dify-web:1.13.3",
            "sandbox": "langgenius/dify-sandbox:0.2.14",
            "plugin_daemon": "langgenius/dify-plugin-daemon:0.5.3-local",
        },
        "names": {
            "api": data.API_1_13,
            "web": data.WEB_1_13,
            "sandbox": data.SANDBOX_0_2,
            "plugin_daemon": data.PLUGIN_DAEMON_0_5,
        },
        # Variable-name prefixes passed through as a family (OpenDAL reads any
        # OPENDAL_<SCHEME>_<KEY>).
        "prefixes": {"api": ("OPENDAL_",), "web": (), "sandbox": (), "plugin_daemon": ()},
    },
}
DEFAULT_VERSION = "1.13.3"

CHOICES = {
    "DB_TYPE": ("postgresql", "mysql"),
    "STORAGE_TYPE": ("opendal", "s3", "aliyun-oss", "azure-blob", "baidu-obs", "clickzetta-volume",
                     "google-storage", "huawei-obs", "oci-storage", "tencent-cos", "volcengine-tos",
                     "supabase"),
    "VECTOR_STORE": ("weaviate", "oceanbase", "seekdb", "qdrant", "milvus", "myscale", "relyt", "pgvector",
                     "pgvecto-rs", "chroma", "opensearch", "oracle", "tencent", "elasticsearch",
                     "elasticsearch-ja", "analyticdb", "couchbase", "vikingdb", "opengauss", "tablestore",
                     "vastbase", "tidb", "tidb_on_qdrant", "baidu", "lindorm", "huawei_cloud", "upstash",
                     "matrixone", "clickzetta", "alibabacloud_mysql", "iris", "hologres"),
    "LOG_OUTPUT_FORMAT": ("text", "json"),
    "PLUGIN_STORAGE_TYPE": ("local", "aws_s3", "tencent_cos", "azure_blob", "aliyun_oss", "volcengine_tos"),
    "CELERY_BACKEND": ("redis", "database"),
    "MIGRATION_ENABLED": ("true", "false"),
}

# Groups of (service, variable) that must hold the same value.
SHARED_SECRETS = {
    "SECRET_KEY": [(s, "SECRET_KEY") for s in API_FAMILY],
    "sandbox key": [("api", "CODE_EXECUTION_API_KEY"), ("worker", "CODE_EXECUTION_API_KEY"), ("sandbox", "API_KEY")],
    "plugin daemon key": [("api", "PLUGIN_DAEMON_KEY"), ("worker", "PLUGIN_DAEMON_KEY"),
                          ("plugin_daemon", "SERVER_KEY")],
    "plugin inner API key": [("api", "INNER_API_KEY_FOR_PLUGIN"), ("api", "PLUGIN_DIFY_INNER_API_KEY"),
                             ("plugin_daemon", "DIFY_INNER_API_KEY")],
    "database password": [(s, "DB_PASSWORD") for s in API_FAMILY] + [("plugin_daemon", "DB_PASSWORD")],
    "redis password": [(s, "REDIS_PASSWORD") for s in API_FAMILY] + [("plugin_daemon", "REDIS_PASSWORD")],
    "weaviate API key": [(s, "WEAVIATE_API_KEY") for s in API_FAMILY],
    "qdrant API key": [(s, "QDRANT_API_KEY") for s in API_FAMILY],
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
}

SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|CREDENTIAL|CONNECTION_STRING|_DSN$|^SENTRY_DSN$|BROKER_URL|"
                         r"(^|_)KEY$|ACCESS_KEY|API_KEY)")
MASK = "********"

# Compose service names that mean nothing on a fleet.
COMPOSE_HOSTS = ("db_postgres", "db_mysql", "redis", "sandbox", "plugin_daemon", "api", "web", "ssrf_proxy",
                 "weaviate", "qdrant", "pgvector", "milvus-standalone", "agent_backend")
ADDRESS_NAME = re.compile(r"(_HOST|_URL|_URI|_ENDPOINT|_SENTINELS|_PROXY|_CLUSTERS)$|^HTTPS?_PROXY$")
COMPOSE_HOST_RE = re.compile(r"(^|://|@|[,;])(%s)(:\d+|/|$|,|;)" % "|".join(re.escape(h) for h in COMPOSE_HOSTS))


class ContractError(Exception):
    """A context or environment that breaks Dify's contract."""


def family(service):
    return "api" if service in API_FAMILY else service


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


def redis_env(ctx, for_daemon=False):
    """REDIS_* and CELERY_* for a sentinel or a single Redis.

    ``ctx['redis_env']`` (what the difyops.fleet.dify_redis_env filter renders)
    is used as is when given; otherwise it is built from ``ctx['redis']``.
    """
    if ctx.get("redis_env"):
        env = {k: _s(v) for k, v in ctx["redis_env"].items()}
    else:
        env = _build_redis_env(ctx)
    if for_daemon:
        env = {k: v for k, v in env.items() if not k.startswith("CELERY_") and k != "BROKER_USE_SSL"}
    return env


def _build_redis_env(ctx):
    from urllib.parse import quote
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
                    "CELERY_BROKER_URL": "redis://%s%s:%s/%s" % (auth, host, port, broker_db)})
    return env


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


def _api_family(service, ctx):
    secrets = ctx.get("secrets") or {}
    db = ctx.get("db") or {}
    urls = ctx.get("urls") or {}
    sizing = ctx.get("sizing") or {}
    env = {
        "MODE": service,
        "EDITION": "SELF_HOSTED",
        "DEPLOY_ENV": ctx.get("deploy_env", "PRODUCTION"),
        "LOG_LEVEL": ctx.get("log_level", "INFO"),
        "LOG_OUTPUT_FORMAT": ctx.get("log_format", "json"),
        "LOG_TZ": "UTC",
        "SECRET_KEY": secrets.get("secret_key", ""),
        "MIGRATION_ENABLED": "true" if service == "migration" else "false",
        "DB_TYPE": db.get("type", "postgresql"),
        "DB_HOST": _need(ctx, "db.host"),
        "DB_PORT": _s(db.get("port", 5432)),
        "DB_USERNAME": db.get("username", "dify"),
        "DB_PASSWORD": secrets.get("db_password", ""),
        "DB_DATABASE": db.get("database", "dify"),
        "SQLALCHEMY_POOL_SIZE": _s(sizing.get("sqlalchemy_pool_size", 30)),
        "SQLALCHEMY_MAX_OVERFLOW": _s(sizing.get("sqlalchemy_max_overflow", 10)),
        "SQLALCHEMY_POOL_RECYCLE": "3600",
        "SQLALCHEMY_POOL_PRE_PING": "true",
        "CODE_EXECUTION_ENDPOINT": _need(ctx, "urls.sandbox"),
        "CODE_EXECUTION_API_KEY": secrets.get("sandbox_api_key", ""),
        "PLUGIN_DAEMON_URL": _need(ctx, "urls.plugin_daemon"),
        "PLUGIN_DAEMON_KEY": secrets.get("plugin_daemon_key", ""),
        "PLUGIN_DIFY_INNER_API_KEY": secrets.get("plugin_inner_api_key", ""),
        "PLUGIN_DIFY_INNER_API_URL": _need(ctx, "urls.api"),
        "INNER_API_KEY_FOR_PLUGIN": secrets.get("plugin_inner_api_key", ""),
        "VECTOR_STORE": ctx.get("vector_store", "pgvector"),
    }
    for key, name in (("console_api", "CONSOLE_API_URL"), ("console_web", "CONSOLE_WEB_URL"),
                      ("service_api", "SERVICE_API_URL"), ("app_api", "APP_API_URL"), ("app_web", "APP_WEB_URL"),
                      ("files", "FILES_URL"), ("internal_files", "INTERNAL_FILES_URL")):
        if urls.get(key):
            env[name] = urls[key]
    if urls.get("ssrf_proxy"):
        env["SSRF_PROXY_HTTP_URL"] = urls["ssrf_proxy"]
        env["SSRF_PROXY_HTTPS_URL"] = urls["ssrf_proxy"]
    env.update(redis_env(ctx))
    if env["VECTOR_STORE"] == "pgvector" and env["DB_TYPE"] != "postgresql" and not (ctx.get("pgvector") or {}).get("host"):
        raise ContractError(
            "VECTOR_STORE=pgvector needs PostgreSQL but DB_TYPE is %s and no pgvector host is set: set "
            "dify_vector_store to weaviate or qdrant (with a dify_vector host or an external endpoint), or keep "
            "a dify_postgres host for pgvector (dify_pgvector_host)" % env["DB_TYPE"])
    if env["VECTOR_STORE"] == "pgvector":
        vdb = ctx.get("pgvector") or {}
        env.update({
            "PGVECTOR_HOST": vdb.get("host") or env["DB_HOST"],
            "PGVECTOR_PORT": _s(vdb.get("port") or env["DB_PORT"]),
            "PGVECTOR_USER": vdb.get("user") or env["DB_USERNAME"],
            "PGVECTOR_PASSWORD": secrets.get("pgvector_password") or env["DB_PASSWORD"],
            "PGVECTOR_DATABASE": vdb.get("database") or env["DB_DATABASE"],
            "PGVECTOR_MIN_CONNECTION": _s(vdb.get("min_connection", 1)),
            "PGVECTOR_MAX_CONNECTION": _s(vdb.get("max_connection", 5)),
        })
    env.update(vector_env(env["VECTOR_STORE"], ctx))
    env.update(ctx.get("vector_env") or {})
    storage = dict(ctx.get("storage_env") or {"STORAGE_TYPE": "opendal", "OPENDAL_SCHEME": "fs",
                                              "OPENDAL_FS_ROOT": "storage"})
    env.update(storage)
    sentry = ctx.get("sentry") or {}
    otel = ctx.get("otel_env") or {}
    if service == "api":
        env.update({
            "DIFY_BIND_ADDRESS": "0.0.0.0",
            "DIFY_PORT": _s(ctx.get("ports", {}).get("api", 5001)),
            "SERVER_WORKER_AMOUNT": _s(sizing.get("gunicorn_workers", 1)),
            "SERVER_WORKER_CLASS": "gevent",
            "GUNICORN_TIMEOUT": "360",
            "PLUGIN_REMOTE_INSTALL_HOST": ctx.get("plugin_remote_install_host", "localhost"),
            "PLUGIN_REMOTE_INSTALL_PORT": "5003",
            "PLUGIN_MAX_PACKAGE_SIZE": "52428800",
            "PLUGIN_DAEMON_TIMEOUT": "600.0",
        })
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
    if service in ("api", "worker", "beat") and sentry.get("api_dsn"):
        env.update({"SENTRY_DSN": sentry["api_dsn"],
                    "SENTRY_TRACES_SAMPLE_RATE": _s(sentry.get("traces_sample_rate", 1.0)),
                    "SENTRY_PROFILES_SAMPLE_RATE": _s(sentry.get("profiles_sample_rate", 1.0))})
    if service != "migration":
        env.update(otel)
    return env


def build_service(service, ctx):
    """The environment of one service, before extras and validation."""
    if service not in SERVICES:
        raise ContractError("service %r is not one of %s" % (service, ", ".join(SERVICES)))
    secrets = ctx.get("secrets") or {}
    urls = ctx.get("urls") or {}
    sizing = ctx.get("sizing") or {}
    sentry = ctx.get("sentry") or {}
    if service in API_FAMILY:
        return _api_family(service, ctx)
    if service == "web":
        env = {
            "CONSOLE_API_URL": urls.get("console_api", ""),
            "APP_API_URL": urls.get("app_api", ""),
            "NEXT_TELEMETRY_DISABLED": "1",
            "PORT": _s(ctx.get("ports", {}).get("web", 3000)),
            "HOSTNAME": "0.0.0.0",
            "DEPLOY_ENV": ctx.get("deploy_env", "PRODUCTION"),
            "EDITION": "SELF_HOSTED",
        }
        if sentry.get("web_dsn"):
            env["SENTRY_DSN"] = sentry["web_dsn"]
        return env
    if service == "sandbox":
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
    # plugin_daemon
    db = ctx.get("db") or {}
    env = {
        "DB_TYPE": db.get("type", "postgresql"),
        "DB_HOST": _need(ctx, "db.host"),
        "DB_PORT": _s(db.get("port", 5432)),
        "DB_USERNAME": db.get("username", "dify"),
        "DB_PASSWORD": secrets.get("db_password", ""),
        "DB_DATABASE": db.get("plugin_database", "dify_plugin"),
        "DB_SSL_MODE": db.get("ssl_mode", "disable"),
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
        "PLUGIN_STORAGE_TYPE": "local",
        "PLUGIN_STORAGE_LOCAL_ROOT": "/app/storage",
        "PLUGIN_INSTALLED_PATH": "plugin",
        "PLUGIN_PACKAGE_CACHE_PATH": "plugin_packages",
        "PLUGIN_MEDIA_CACHE_PATH": "assets",
        "GIN_MODE": "release",
    }
    env.update(redis_env(ctx, for_daemon=True))
    env.update(ctx.get("plugin_storage_env") or {})
    if sentry.get("plugin_dsn"):
        env.update({"SENTRY_ENABLED": "true", "SENTRY_DSN": sentry["plugin_dsn"]})
    return env


def build_all(ctx, extra_env=None):
    """Every service's environment: built, then extras (``all`` then per service) applied."""
    extra_env = extra_env or {}
    for key in extra_env:
        if key != "all" and key not in SERVICES:
            raise ContractError("extra_env key %r is not 'all' or one of %s" % (key, ", ".join(SERVICES)))
    envs = {}
    for service in SERVICES:
        env = build_service(service, ctx)
        for scope in ("all", service):
            for name, value in (extra_env.get(scope) or {}).items():
                env[str(name)] = _s(value)
        envs[service] = {k: _s(v) for k, v in env.items()}
    return envs


def validate_service(service, env, version=DEFAULT_VERSION, allow_unknown=()):
    """Problems with one service's environment (list of messages)."""
    errors = []
    spec = VERSIONS[version]
    fam = family(service)
    known = spec["names"][fam]
    prefixes = spec["prefixes"][fam]
    for name, value in sorted(env.items()):
        if not re.match(r"^[A-Z_][A-Z0-9_]*$", name):
            errors.append("%s: variable name %r is not a valid environment variable name" % (service, name))
            continue
        if name not in known and not name.startswith(prefixes) and name not in allow_unknown:
            errors.append("%s: %s is not a variable Dify %s's %s image reads; fix the name, or allow it with "
                          "dify_env_allow_unknown: [%s]" % (service, name, version, fam, name))
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
    return errors


def validate_all(envs, version=DEFAULT_VERSION, allow_unknown=()):
    if version not in VERSIONS:
        raise ContractError("dify_version %r has no contract data; known: %s" % (version, ", ".join(VERSIONS)))
    errors = []
    for service in SERVICES:
        errors.extend(validate_service(service, envs[service], version, allow_unknown))
    for label, members in SHARED_SECRETS.items():
        values = {envs[s].get(n) for s, n in members}
        if len(values) > 1:
            errors.append("%s differs between %s; they must be equal"
                          % (label, ", ".join("%s.%s" % m for m in members)))
    return errors


def masked(env):
    return {k: (MASK if is_secret(k) and v else v) for k, v in env.items()}


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
        if is_secret(k) and k in before and before[k] != v:
            a[k] = MASK + " (changed)"
    return render(b), render(a)
