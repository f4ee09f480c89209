# -*- coding: utf-8 -*-
"""Issue 12's rendering mismatch classes, one test (or a few) each, on the builders (dify_contract) for
every release with contract data. Each failed before the rendering fix; the docstring says how.
tests/unit/playbooks/test_render_env.py renders the same classes through the role for whole fleets."""

from __future__ import annotations

import copy
import os

import pytest
import yaml

from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as dc
from ansible_collections.difyops.fleet.plugins.module_utils import dify_schema as ds
from ansible_collections.difyops.fleet.plugins.module_utils import dify_storage as st
from ansible_collections.difyops.fleet.plugins.module_utils import fleet

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
VERSIONS = sorted(dc.VERSIONS)
SECRETS = {
    "secret_key": "k" * 42, "db_password": "db-pass-Secret1", "redis_password": "redis-password-1",
    "redis_sentinel_password": "sentinel-pass", "sandbox_api_key": "sandbox-key-1234",
    "plugin_daemon_key": "daemon-key-1234", "plugin_inner_api_key": "inner-key-1234",
}
SENTINEL = {
    "db": {"host": "10.0.0.11"},
    "redis": {"sentinels": ["10.0.0.21:26379", "10.0.0.22:26379", "10.0.0.23:26379"], "master_name": "dify"},
    "event_bus": {"url": "redis://10.0.0.22:6379"},
    "public_url": "https://dify.example.com",
    "urls": {"api": "http://10.0.0.31:5001", "web": "http://10.0.0.35:3000", "sandbox": "http://10.0.0.41:8194",
             "plugin_daemon": "http://10.0.0.42:5002"},
    "secrets": SECRETS,
}


def ctx(**over):
    c = copy.deepcopy(SENTINEL)
    c.update(over)
    return c


def build(version, **over):
    envs = dc.build_all(ctx(**over), version=version)
    assert dc.validate_all(envs, version) == []
    return envs


# ---- names Dify never reads

@pytest.mark.parametrize("version", VERSIONS)
def test_inner_api_key_under_the_name_the_api_reads(version):
    """Before: PLUGIN_DIFY_INNER_API_KEY/URL (compose interpolation names) besides INNER_API_KEY_FOR_PLUGIN."""
    envs = build(version)
    for service in dc.API_FAMILY:
        assert envs[service]["INNER_API_KEY_FOR_PLUGIN"] == SECRETS["plugin_inner_api_key"]
        assert not [n for n in envs[service] if n.startswith("PLUGIN_DIFY_INNER_API")]
    assert envs["plugin_daemon"]["DIFY_INNER_API_KEY"] == SECRETS["plugin_inner_api_key"]


@pytest.mark.parametrize("version", VERSIONS)
def test_web_names_follow_the_release(version):
    """Before: EDITION for the 1.16.1 web image (no longer read) and no CONSOLE_WEB_URL (NEXT_PUBLIC_WEB_PREFIX)."""
    web = build(version)["web"]
    names = ds.known_names(dc.VERSIONS[version]["release"], "web")
    assert ("EDITION" in web) == ("EDITION" in names)
    assert ("CONSOLE_WEB_URL" in web) == ("CONSOLE_WEB_URL" in names)
    assert ("CONSOLE_WEB_URL" in web) == (version == "1.16.1")


def test_collaboration_mode_off_where_the_release_reads_it():
    """1.16.1 turns it on by default; the console then opens socket.io to api_websocket, which no fleet runs."""
    assert build("1.16.1")["api"]["ENABLE_COLLABORATION_MODE"] == "false"
    assert "ENABLE_COLLABORATION_MODE" not in build("1.13.3")["api"]


# ---- empty host/port, no empty typed value

@pytest.mark.parametrize("version", VERSIONS)
def test_no_empty_value_anywhere(version):
    for service, env in build(version).items():
        assert [n for n, v in env.items() if v == ""] == [], service


@pytest.mark.parametrize("version", VERSIONS)
def test_redis_env_from_elsewhere_loses_its_empty_and_unread_names(version):
    """A ready REDIS_* dict with empty values (what the filter rendered before) is cleaned, not passed on."""
    legacy = {"REDIS_HOST": "", "REDIS_PORT": "", "REDIS_USE_SENTINEL": "true", "REDIS_USE_CLUSTERS": "false",
              "BROKER_USE_SSL": "false", "REDIS_SENTINELS": "10.0.0.21:26379", "REDIS_SENTINEL_SERVICE_NAME": "dify",
              "REDIS_PASSWORD": "redis-password-1", "CELERY_BROKER_URL": "sentinel://:x@10.0.0.21:26379/1",
              "CELERY_USE_SENTINEL": "true", "CELERY_SENTINEL_MASTER_NAME": "dify"}
    envs = build(version, redis_env=legacy)
    for service in dc.API_FAMILY + ("plugin_daemon",):
        env = envs[service]
        assert "REDIS_HOST" not in env and "REDIS_PORT" not in env and "BROKER_USE_SSL" not in env
    assert "REDIS_USE_CLUSTERS" not in envs["plugin_daemon"]


def test_an_empty_address_is_refused():
    errs = dc.validate_all(dc.build_all(ctx(), {"worker": {"REDIS_HOST": "", "SSRF_PROXY_HTTP_URL": ""}}))
    assert [e for e in errs if e.startswith("worker: REDIS_HOST is empty")]
    assert [e for e in errs if e.startswith("worker: SSRF_PROXY_HTTP_URL is empty")]


# ---- the event bus

@pytest.mark.parametrize("version", VERSIONS)
def test_event_bus_url_gets_credentials_and_the_cache_db(version):
    env = build(version, secrets=dict(SECRETS, redis_password="p@ss:w/rd"))["worker"]
    assert env["PUBSUB_REDIS_URL"] == "redis://:p%40ss%3Aw%2Frd@10.0.0.22:6379/0"


def test_event_bus_url_given_in_full_is_kept_and_a_loopback_proxy_is_one_setting():
    env = build("1.13.3", event_bus={"url": "redis://127.0.0.1:6379"})["api"]
    assert env["PUBSUB_REDIS_URL"] == "redis://:redis-password-1@127.0.0.1:6379/0"
    env = build("1.13.3", event_bus={"url": "rediss://user:pw@bus.example:6380/3"})["api"]
    assert env["PUBSUB_REDIS_URL"] == "rediss://user:pw@bus.example:6380/3"


def test_event_bus_without_an_endpoint_in_sentinel_mode_is_refused():
    with pytest.raises(dc.ContractError, match="event_bus.url is required with Sentinels"):
        dc.build_all(ctx(event_bus={}))
    errs = dc.validate_all(dc.build_all(ctx(), {"api": {"PUBSUB_REDIS_URL": "http://x"}}))
    assert [e for e in errs if "PUBSUB_REDIS_URL must be a redis://" in e]


def test_event_bus_without_sentinels_is_the_redis_host_and_ipv6_in_brackets():
    env = build("1.13.3", redis={"host": "fd00::21", "port": 6380}, event_bus={})["api"]
    assert env["PUBSUB_REDIS_URL"] == "redis://:redis-password-1@[fd00::21]:6380/0"
    assert env["REDIS_HOST"] == "fd00::21"   # redis-py's host= takes the bare address


def test_event_bus_value_is_masked():
    shown = dc.render(dc.masked(build("1.13.3")["api"]))
    assert "redis-password-1" not in shown and "PUBSUB_REDIS_URL=********" in shown


# ---- public URLs

@pytest.mark.parametrize("version", VERSIONS)
def test_public_urls_from_the_public_name(version):
    """Before: none rendered, so the api image's ENV applied (http://127.0.0.1:5001 and :3000), and TRIGGER_URL /
    ENDPOINT_URL_TEMPLATE / PLUGIN_REMOTE_INSTALL_HOST stayed at localhost."""
    envs = build(version)
    api = envs["api"]
    for name in ("CONSOLE_API_URL", "CONSOLE_WEB_URL", "SERVICE_API_URL", "APP_WEB_URL", "FILES_URL", "TRIGGER_URL"):
        assert api[name] == "https://dify.example.com", name
    assert api["ENDPOINT_URL_TEMPLATE"] == "https://dify.example.com/e/{hook_id}"
    assert api["INTERNAL_FILES_URL"] == "http://10.0.0.31:5001"
    assert api["PLUGIN_REMOTE_INSTALL_HOST"] == "10.0.0.42"
    assert "APP_API_URL" not in api                       # read by web only
    assert envs["web"]["CONSOLE_API_URL"] == envs["web"]["APP_API_URL"] == "https://dify.example.com"


def test_each_public_url_overridable():
    urls = dict(SENTINEL["urls"], service_api="https://api.dify.example.com/", files="https://files.example.com",
                endpoint_template="https://hooks.example.com/e/{hook_id}", internal_files="http://10.0.0.99:5001")
    api = build("1.13.3", urls=urls)["api"]
    assert api["SERVICE_API_URL"] == "https://api.dify.example.com" and api["FILES_URL"] == "https://files.example.com"
    assert api["ENDPOINT_URL_TEMPLATE"] == "https://hooks.example.com/e/{hook_id}"
    assert api["INTERNAL_FILES_URL"] == "http://10.0.0.99:5001" and api["CONSOLE_API_URL"] == "https://dify.example.com"


def test_without_an_edge_the_fleet_addresses_never_loopback():
    api = build("1.13.3", public_url="")["api"]
    assert api["CONSOLE_API_URL"] == "http://10.0.0.31:5001" and api["CONSOLE_WEB_URL"] == "http://10.0.0.35:3000"
    assert api["ENDPOINT_URL_TEMPLATE"] == "http://10.0.0.42:5002/e/{hook_id}"


def test_loopback_public_urls_are_refused():
    errs = dc.validate_all(dc.build_all(ctx(public_url="http://127.0.0.1:5001")))
    assert [e for e in errs if "CONSOLE_API_URL='http://127.0.0.1:5001' points at the loopback" in e]


@pytest.mark.parametrize("tls,name,port,expected", [
    (True, "dify.example.com", None, "https://dify.example.com"),
    (True, "dify.example.com", 8443, "https://dify.example.com:8443"),
    (False, "dify.example.com", None, "http://dify.example.com"),
    ("false", "", 8080, "http://[fd00::10]:8080"),
    (False, "", None, "http://10.0.0.10"),
])
def test_public_url_from_the_edge_host(tls, name, port, expected):
    hv = {"edge": {"nginx_tls_enabled": tls, "nginx_server_name": name,
                   "difyops_address": "fd00::10" if port == 8080 else "10.0.0.10"}}
    if port:
        hv["edge"]["nginx_https_port" if tls is True else "nginx_http_port"] = port
    assert fleet.public_url("edge", hv) == expected
    assert fleet.public_url("", hv) == ""
    with pytest.raises(fleet.FleetError, match="nginx_server_name is empty"):
        fleet.public_url("edge", {"edge": {"nginx_server_name": ""}})


# ---- storage

def test_storage_defaults_are_the_storage_roles():
    with open(os.path.join(_TOP, "roles", "storage", "defaults", "main.yml"), encoding="utf-8") as fh:
        defaults = yaml.safe_load(fh)
    for key, value in st.DEFAULTS.items():
        if value is not None:
            assert defaults["storage_" + key] == value, key


@pytest.mark.parametrize("version", VERSIONS)
def test_s3_through_opendal(version):
    """Before: storage_backend s3 never reached Dify (the storage role's facts were read by nothing), and the
    plugin daemon's S3 settings used compose's PLUGIN_S3_*/PLUGIN_AWS_* names, which it never reads."""
    storage = {"backend": "s3", "s3_bucket": "files", "s3_endpoint": "https://minio.internal:9000",
               "s3_path_style": True, "s3_access_key": "AKEXAMPLE", "s3_secret_key": "s3-secret-0123456789"}
    envs = build(version, storage=storage)
    api, daemon = envs["api"], envs["plugin_daemon"]
    assert api["STORAGE_TYPE"] == "opendal" and api["OPENDAL_SCHEME"] == "s3"
    assert api["OPENDAL_S3_BUCKET"] == "files" and api["OPENDAL_S3_ENDPOINT"] == "https://minio.internal:9000"
    assert api["OPENDAL_S3_ACCESS_KEY_ID"] == "AKEXAMPLE" and api["OPENDAL_S3_ENABLE_VIRTUAL_HOST_STYLE"] == "false"
    assert daemon["PLUGIN_STORAGE_TYPE"] == "aws_s3" and daemon["PLUGIN_STORAGE_OSS_BUCKET"] == "files"
    assert daemon["S3_USE_AWS"] == "false" and daemon["S3_ENDPOINT"] == "https://minio.internal:9000"
    assert daemon["S3_USE_PATH_STYLE"] == "true" and daemon["AWS_ACCESS_KEY"] == "AKEXAMPLE"
    assert daemon["AWS_SECRET_KEY"] == "s3-secret-0123456789"
    assert not [n for n in daemon if n.startswith(("PLUGIN_S3_", "PLUGIN_AWS_"))]


@pytest.mark.parametrize("version", VERSIONS)
def test_s3_through_the_s3_interface(version):
    storage = {"backend": "s3", "s3_interface": "s3", "s3_bucket": "files", "s3_region": "eu-west-1",
               "s3_access_key": "AKEXAMPLE", "s3_secret_key": "s3-secret-0123456789", "s3_path_style": True}
    api = build(version, storage=storage)["api"]
    assert api["STORAGE_TYPE"] == "s3" and api["S3_BUCKET_NAME"] == "files" and api["S3_REGION"] == "eu-west-1"
    assert api["S3_ADDRESS_STYLE"] == "path" and api["S3_USE_AWS_MANAGED_IAM"] == "false"
    assert api["S3_ACCESS_KEY"] == "AKEXAMPLE" and api["S3_SECRET_KEY"] == "s3-secret-0123456789"
    assert "S3_ENDPOINT" not in api          # boto3's endpoint_url="" would fail; unset means AWS
    iam = build(version, storage=dict(storage, s3_use_iam_role=True))
    assert iam["api"]["S3_USE_AWS_MANAGED_IAM"] == "true" and "S3_ACCESS_KEY" not in iam["api"]
    assert iam["plugin_daemon"]["S3_USE_AWS"] == "true" and "AWS_ACCESS_KEY" not in iam["plugin_daemon"]


def test_storage_settings_refused_with_the_variable():
    with pytest.raises(dc.ContractError, match="storage_s3_bucket is empty"):
        dc.build_all(ctx(storage={"backend": "s3", "s3_access_key": "a", "s3_secret_key": "b"}))
    with pytest.raises(dc.ContractError, match="storage_s3_use_iam_role needs storage_s3_interface: s3"):
        dc.build_all(ctx(storage={"backend": "s3", "s3_bucket": "b", "s3_use_iam_role": True}))
    with pytest.raises(dc.ContractError, match="storage_backend='ftp'"):
        dc.build_all(ctx(storage={"backend": "ftp"}))


def test_explicit_storage_env_replaces_the_computed_one():
    envs = build("1.13.3", storage_env={"STORAGE_TYPE": "aliyun-oss", "ALIYUN_OSS_BUCKET_NAME": "b"})
    assert envs["api"]["STORAGE_TYPE"] == "aliyun-oss" and "OPENDAL_SCHEME" not in envs["api"]


def test_host_paths_follow_the_storage_role():
    assert st.storage_env({"path": "/srv/dify"})["host_path"] == "/srv/dify"
    assert st.storage_env({"backend": "s3", "s3_bucket": "b", "s3_access_key": "a",
                           "s3_secret_key": "s"})["host_path"] == ""
    assert st.storage_env({"plugin_path": "/srv/plugins"})["plugin_host_path"] == "/srv/plugins"


# ---- IPv6

@pytest.mark.parametrize("version", VERSIONS)
def test_ipv6_addresses_per_consumer(version):
    """Before: DB_HOST=fd00::11 broke the api's URI (...@fd00::11:5432/...), and nothing bracketed the daemon's
    host:port addresses."""
    c = ctx(db={"host": "fd00::11"}, redis={"host": "fd00::21"}, event_bus={},
            urls={"api": "http://[fd00::31]:5001", "sandbox": "http://[fd00::41]:8194",
                  "plugin_daemon": "http://[fd00::42]:5002", "ssrf_proxy": "http://[fd00::51]:3128"})
    envs = dc.build_all(c, version=version)
    assert dc.validate_all(envs, version) == []
    api, daemon = envs["api"], envs["plugin_daemon"]
    assert api["DB_HOST"] == "[fd00::11]" and api["PGVECTOR_HOST"] == "fd00::11"
    assert daemon["DB_HOST"] == "fd00::11"                  # host=%s in the PostgreSQL DSN
    assert daemon["REDIS_HOST"] == "[fd00::21]"             # fmt.Sprintf("%s:%d")
    assert api["REDIS_HOST"] == "fd00::21"
    assert api["CELERY_BROKER_URL"].endswith("@[fd00::21]:6379/1")
    assert api["PUBSUB_REDIS_URL"].endswith("@[fd00::21]:6379/0")
    assert api["PLUGIN_REMOTE_INSTALL_HOST"] == "fd00::42"
    mysql = dc.build_all(dict(c, db={"host": "fd00::11", "type": "mysql", "port": 3306},
                              pgvector={"host": "fd00::12"}), version=version)
    assert mysql["plugin_daemon"]["DB_HOST"] == "[fd00::11]"  # tcp(%s:%d)
    assert mysql["api"]["PGVECTOR_HOST"] == "fd00::12"


@pytest.mark.parametrize("version", VERSIONS)
def test_ipv6_sentinels_refused_where_dify_splits_on_colon(version):
    c = ctx(redis={"sentinels": ["[fd00::21]:26379"], "master_name": "dify"})
    errs = dc.validate_all(dc.build_all(c, version=version), version)
    assert [e for e in errs if e.startswith("api: REDIS_SENTINELS entry '[fd00::21]:26379' is an IPv6 address")]


def test_ipv6_addresses_written_wrongly_are_refused():
    errs = dc.validate_all(dc.build_all(ctx(), {"api": {"DB_HOST": "fd00::11"}, "plugin_daemon": {
        "DB_HOST": "[fd00::11]"}}))
    assert [e for e in errs if e.startswith("api: DB_HOST=fd00::11") and "needs brackets" in e]
    assert [e for e in errs if e.startswith("plugin_daemon: DB_HOST=[fd00::11]") and "no brackets" in e]


def test_url_host():
    assert fleet.url_host("fd00::1") == "[fd00::1]" and fleet.url_host("[fd00::1]") == "[fd00::1]"
    assert fleet.url_host("10.0.0.1") == "10.0.0.1" and fleet.url_host("db.example") == "db.example"
    assert fleet.bare_host("[fd00::1]") == "fd00::1" and fleet.bare_host("10.0.0.1") == "10.0.0.1"


# ---- database TLS

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("mode", ["disable", "require"])
def test_db_tls_reaches_every_service(version, mode):
    """Before: dify_db_ssl_mode reached only the plugin daemon; api/worker/beat/migration kept libpq's default."""
    envs = build(version, db={"host": "10.0.0.11", "ssl_mode": mode, "extras": "keepalives=1"})
    for service in dc.API_FAMILY:
        assert envs[service]["DB_EXTRAS"] == "sslmode=%s&keepalives=1" % mode
    assert envs["plugin_daemon"]["DB_SSL_MODE"] == mode
    assert "DB_EXTRAS" not in envs["plugin_daemon"]          # the daemon's DB_EXTRAS means other things


def test_db_tls_for_mysql_and_modes_the_daemon_cannot_take():
    envs = build("1.13.3", db={"host": "10.0.0.12", "type": "mysql", "port": 3306, "ssl_mode": "require"},
                 pgvector={"host": "10.0.0.11"})
    assert envs["api"]["DB_EXTRAS"] == "ssl_check_hostname=false" and envs["plugin_daemon"]["DB_SSL_MODE"] == "require"
    with pytest.raises(dc.ContractError, match="use disable or require"):
        dc.build_all(ctx(db={"host": "10.0.0.11", "ssl_mode": "verify-full"}))


# ---- container env (the probe's settings) stays out of Dify's contract

def test_container_env_refuses_names_dify_reads():
    assert dc.container_env_problems({"all": {"PROBE_INTERVAL": "5"}}) == []
    errs = dc.container_env_problems({"api": {"REDIS_HOST": "x"}, "all": {"GIN_MODE": "debug"}, "bogus": {}})
    assert [e for e in errs if "api.REDIS_HOST is a variable Dify %s's api image reads" % dc.DEFAULT_VERSION in e]
    assert [e for e in errs if "all.GIN_MODE" in e and "plugin_daemon" in e]
    assert [e for e in errs if "'bogus'" in e]
