# -*- coding: utf-8 -*-
"""Issue 12's validation mismatch classes, each refused or accepted the way
Dify's own code at the pinned release does (dify_contract.validate_all on the
extracted data). Every test here failed with the hand-made name lists."""

from __future__ import annotations

import copy
import os

import pytest
import yaml

from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as dc
from ansible_collections.difyops.fleet.plugins.module_utils import dify_schema as ds

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SECRETS = {
    "secret_key": "k" * 42,
    "db_password": "db-pass-Secret1",
    "redis_password": "redis-password-1",
    "redis_sentinel_password": "sentinel-pass",
    "sandbox_api_key": "sandbox-key-1234",
    "plugin_daemon_key": "daemon-key-1234",
    "plugin_inner_api_key": "inner-key-1234",
}
CTX = {
    "db": {"host": "10.0.0.11"},
    "redis": {"sentinels": ["10.0.0.21:26379", "10.0.0.22:26379", "10.0.0.23:26379"], "master_name": "dify"},
    "event_bus": {"url": "redis://10.0.0.21:6379"},
    "public_url": "https://dify.example.com",
    "urls": {"api": "http://10.0.0.31:5001", "sandbox": "http://10.0.0.41:8194",
             "plugin_daemon": "http://10.0.0.42:5002"},
    "secrets": SECRETS,
}
VERSIONS = sorted(dc.VERSIONS)


def errors(extra, version=dc.DEFAULT_VERSION, ctx=None):
    envs = dc.build_all(copy.deepcopy(ctx or CTX), extra, version)
    return dc.validate_all(envs, version)


def about(errs, service, name):
    return [e for e in errs if e.startswith(service + ": ") and name in e]


# ---- 1. REDIS_HOST/REDIS_PORT empty in Sentinel mode (api family and plugin daemon)

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("service", dc.API_FAMILY)
def test_empty_redis_port_refused_api_family(version, service):
    errs = errors({"all": {"REDIS_HOST": "", "REDIS_PORT": ""}}, version)
    found = about(errs, service, "REDIS_PORT=''")
    assert found and "int > 0" in found[0] and "fails at start" in found[0]
    # str: an empty host parses, but falls back to localhost / stops the event bus (see #2): a fleet rule
    assert [e for e in about(errs, service, "REDIS_HOST is empty") if "falls back to localhost" in e]


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_redis_port_refused_plugin_daemon(version):
    errs = errors({"plugin_daemon": {"REDIS_PORT": ""}}, version)
    found = about(errs, "plugin_daemon", "REDIS_PORT=''")
    assert found and "uint16" in found[0] and "panics" in found[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_sentinel_env_without_host_and_port_is_valid(version):
    envs = dc.build_all(copy.deepcopy(CTX), version=version)
    for service in dc.API_FAMILY + ("plugin_daemon",):
        assert "REDIS_PORT" not in envs[service] and "REDIS_HOST" not in envs[service]
    assert dc.validate_all(envs, version) == []


# ---- 8. names Dify reads are accepted, names it never reads are refused

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,value", [
    ("S3_ADDRESS_STYLE", "path"), ("PUBSUB_REDIS_URL", "redis://:pw@10.0.0.21:6379/0"),
    ("EVENT_BUS_REDIS_URL", "redis://:pw@10.0.0.21:6379/0"), ("ALLOW_REGISTER", "false"),
    ("REDIS_SERIALIZATION_PROTOCOL", "3"), ("EVENT_BUS_REDIS_CHANNEL_TYPE", "streams"),
    ("PUBSUB_REDIS_USE_CLUSTERS", "false"), ("TRIGGER_URL", "https://dify.example/triggers"),
    ("DB_EXTRAS", "sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem"), ("SERVER_WORKER_AMOUNT", "5"),
    ("OPENDAL_S3_BUCKET", "dify"), ("CELERY_QUEUES", "dataset,workflow"), ("LOG_LEVEL", "WARNING"),
])
def test_names_dify_reads_accepted(version, name, value):
    assert about(errors({"api": {name: value}}, version), "api", name) == []


@pytest.mark.parametrize("version,service,name", [
    ("1.13.3", "api", "BROKER_USE_SSL"), ("1.16.1", "api", "BROKER_USE_SSL"),
    ("1.13.3", "api", "API_SENTRY_DSN"), ("1.13.3", "api", "DB_SESSION_TIMEZONE_OVERRIDE"),
    ("1.13.3", "api", "ENABLE_COLLABORATION_MODE"), ("1.13.3", "api", "PLUGIN_DEBUGGING_PORT"),
    ("1.13.3", "api", "SSRF_SANDBOX_HOST"), ("1.13.3", "plugin_daemon", "PLUGIN_S3_ENDPOINT"),
    ("1.13.3", "plugin_daemon", "PLUGIN_AWS_ACCESS_KEY"), ("1.13.3", "plugin_daemon", "REDIS_USE_CLUSTERS"),
    ("1.13.3", "plugin_daemon", "MODE"), ("1.13.3", "sandbox", "MODE"), ("1.16.1", "web", "EDITION_TYPO"),
])
def test_names_dify_does_not_read_refused(version, service, name):
    errs = dc.validate_all(dc.build_all(copy.deepcopy(CTX), {service: {name: "x"}}, version), version)
    assert [e for e in about(errs, service, name) if "is not a variable Dify %s's" % version in e]


@pytest.mark.parametrize("name", ["DB_SESSION_TIMEZONE_OVERRIDE", "ENABLE_COLLABORATION_MODE", "REDIS_KEY_PREFIX"])
def test_names_new_in_1_16_1_accepted_there_only(name):
    value = "true" if name == "ENABLE_COLLABORATION_MODE" else "UTC"
    assert about(errors({"api": {name: value}}, "1.16.1"), "api", name) == []
    assert about(errors({"api": {name: value}}, "1.13.3"), "api", name)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,value", [("S3_USE_AWS", "false"), ("S3_ENDPOINT", "https://s3.example"),
                                        ("AWS_ACCESS_KEY", "AKIAEXAMPLE"), ("AWS_REGION", "eu-west-1"),
                                        ("PLUGIN_STORAGE_OSS_BUCKET", "dify-plugins"), ("S3_USE_PATH_STYLE", "true")])
def test_daemon_s3_names_it_reads_accepted(version, name, value):
    assert about(errors({"plugin_daemon": {name: value}}, version), "plugin_daemon", name) == []


# ---- bool and int parsing: the api family (pydantic) and the daemon (Go) differ

@pytest.mark.parametrize("value,api_ok,daemon_ok", [
    ("true", True, True), ("1", True, True), ("True", True, True), ("yes", True, False), ("on", True, False),
    ("", False, False), (" true", False, False), ("enabled", False, False)])
def test_bool_parsing_per_image(value, api_ok, daemon_ok):
    errs = errors({"all": {"REDIS_USE_SENTINEL": value}})
    assert (not about(errs, "api", "REDIS_USE_SENTINEL=")) is api_ok
    assert (not about(errs, "plugin_daemon", "REDIS_USE_SENTINEL=")) is daemon_ok


@pytest.mark.parametrize("value,api_ok,daemon_ok", [
    ("5432", True, True), ("05439", True, False), ("5432.0", True, False), (" 5432", True, False),
    ("5_432", True, True), ("0x1538", False, True), ("65536", True, False), ("-1", False, False), ("", False, False)])
def test_int_parsing_per_image(value, api_ok, daemon_ok):
    # Go's base 0 reads a leading 0 as octal ("05432" is port 2842 for the daemon, "05439" fails)
    errs = errors({"all": {"DB_PORT": value}})
    assert (not about(errs, "api", "DB_PORT=")) is api_ok
    assert (not about(errs, "plugin_daemon", "DB_PORT=")) is daemon_ok


@pytest.mark.parametrize("name,value,ok", [
    ("SQLALCHEMY_POOL_SIZE", "-1", False), ("SQLALCHEMY_POOL_SIZE", "0", True), ("SQLALCHEMY_POOL_SIZE", "1.5", False),
    ("REDIS_SENTINEL_SOCKET_TIMEOUT", "0", False), ("REDIS_SENTINEL_SOCKET_TIMEOUT", "0.1", True),
    ("REDIS_SENTINEL_SOCKET_TIMEOUT", "nan", False), ("CODE_EXECUTION_ENDPOINT", "sandbox:8194", False),
    ("CODE_EXECUTION_ENDPOINT", "http://fd00::41:8194", False), ("CODE_EXECUTION_ENDPOINT", "http://[fd00::41]:8194", True),
    ("REDIS_SENTINEL_PASSWORD", "", True), ("REDIS_MAX_CONNECTIONS", "", True), ("REDIS_MAX_CONNECTIONS", "0", False),
    ("CELERY_TASK_ANNOTATIONS", "", False), ("CELERY_TASK_ANNOTATIONS", "null", True),
    ("STORAGE_TYPE", "ftp", False), ("S3_ADDRESS_STYLE", "Path", False), ("PUBSUB_REDIS_CHANNEL_TYPE", "kafka", False),
    ("EVENT_BUS_REDIS_USE_CLUSTERS", "maybe", False), ("GUNICORN_TIMEOUT", "360s", False),
    ("CELERY_WORKER_AMOUNT", "", True), ("VECTOR_STORE", "faiss", False), ("VECTOR_STORE", "qdrant", True),
])
def test_values_parse_as_dify_parses_them(name, value, ok):
    extra = {"api": {name: value}}
    if name == "VECTOR_STORE" and value == "qdrant":
        extra["api"].update(QDRANT_URL="http://10.0.0.62:6333", QDRANT_API_KEY="qdrant-key-0123456789")
    assert (not about(errors(extra), "api", name + "=")) is ok


# ---- the plugin daemon: set-but-empty values make envconfig fail

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["DB_MAX_OPEN_CONNS", "DB_PORT", "REDIS_DB", "REDIS_USE_SSL", "PYTHON_ENV_INIT_TIMEOUT",
                                  "PLUGIN_REMOTE_INSTALLING_PORT", "REDIS_SENTINEL_SOCKET_TIMEOUT", "FORCE_VERIFYING_SIGNATURE"])
def test_daemon_empty_values_refused(version, name):
    errs = errors({"plugin_daemon": {name: ""}}, version)
    assert [e for e in about(errs, "plugin_daemon", name + "=''") if "envconfig cannot parse" in e]


@pytest.mark.parametrize("version", VERSIONS)
def test_daemon_empty_strings_and_defaults(version):
    # strings parse when empty; DB_SSL_MODE then takes SetDefault()'s "disable"
    errs = errors({"plugin_daemon": {"DB_SSL_MODE": "", "REDIS_SENTINEL_PASSWORD": ""}}, version)
    assert not [e for e in errs if e.startswith("plugin_daemon")]
    errs = errors({"plugin_daemon": {"DB_SSL_MODE": "verify-full"}}, version)
    assert about(errs, "plugin_daemon", "'verify-full' is not one of disable, require")


# ---- 3. the worker healthcheck needs api/celery_healthcheck.py, which 1.13.3 lacks

def test_release_files_say_where_celery_healthcheck_exists():
    assert not ds.has_file(dc.VERSIONS["1.13.3"]["release"], "api/celery_healthcheck.py")
    assert ds.has_file(dc.VERSIONS["1.16.1"]["release"], "api/celery_healthcheck.py")


@pytest.mark.parametrize("version", VERSIONS)
def test_worker_healthcheck_uses_only_files_the_release_has(version):
    """Before: every release's worker ran celery_healthcheck, which 1.13.3 lacks (never healthy)."""
    release = dc.VERSIONS[version]["release"]
    checks = dc.healthchecks(version)
    for service in ("worker", "beat"):
        test = " ".join(str(x) for x in checks[service]["test"])
        if "celery_healthcheck" in test:
            assert ds.has_file(release, "api/celery_healthcheck.py")
    # what upstream's compose of that release gives the worker
    compose = release["api"]["compose"]["worker"].get("healthcheck")
    assert checks["worker"]["test"] == (list(compose) if compose else ["NONE"])


def test_worker_healthcheck_per_release():
    assert dc.healthchecks("1.13.3")["worker"] == {"test": ["NONE"]}
    assert dc.healthchecks("1.16.1")["worker"]["test"] == ["CMD-SHELL", "celery -A celery_healthcheck.celery inspect ping"]


def test_role_takes_healthchecks_from_the_release_data():
    with open(os.path.join(_TOP, "roles", "dify", "vars", "main.yml"), encoding="utf-8") as fh:
        checks = yaml.safe_load(fh)["__dify_healthchecks"]
    assert checks == "{{ __dify_contract.healthchecks }}"


# ---- 2. the event bus (rendering; the data says what Dify expects)

def test_event_bus_of_1_13_3_and_1_16_1_cannot_follow_sentinel():
    for version in VERSIONS:
        names = dc.VERSIONS[version]["release"]["api"]["names"]
        assert "PUBSUB_REDIS_URL" in names and "EVENT_BUS_REDIS_URL" in names
        assert not [n for n in names if "SENTINEL" in n and ("PUBSUB" in n or "EVENT_BUS" in n)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("service", ["api", "worker"])
def test_event_bus_has_a_real_endpoint_in_sentinel_mode(service, version):
    """Before: neither REDIS_HOST nor PUBSUB_REDIS_URL in a Sentinel fleet, so Dify's event bus built
    redis://localhost:6379 (RedisPubSubConfig._build_default_pubsub_url) and streamed answers never arrived."""
    env = dc.build_all(copy.deepcopy(CTX), version=version)[service]
    url = env.get("EVENT_BUS_REDIS_URL") or env.get("PUBSUB_REDIS_URL") or ""
    assert url.startswith(("redis://", "rediss://")) and "localhost" not in url and "127.0.0.1" not in url
    assert url == "redis://:redis-password-1@10.0.0.21:6379/0"
