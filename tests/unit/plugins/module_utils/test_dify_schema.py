# -*- coding: utf-8 -*-
"""dify_schema: Dify's parsing semantics (pydantic lax mode, envconfig, the
sandbox's Go) and the contract data extracted from Dify's own source."""

from __future__ import annotations

import json

import pytest

from ansible_collections.difyops.fleet.plugins.module_utils import dify_release_1_13_3 as r1133
from ansible_collections.difyops.fleet.plugins.module_utils import dify_release_1_16_1 as r1161
from ansible_collections.difyops.fleet.plugins.module_utils import dify_schema as ds

R1133 = r1133.RELEASE
R1161 = r1161.RELEASE
RELEASES = [R1133, R1161]


def ok(node, value):
    return ds.check_pydantic(node, value) is None


# ---------------------------------------------------------------- the data

def test_data_names_its_sources_at_the_release_commits():
    assert R1133["sources"]["dify"] == {"repository": "langgenius/dify", "ref": "1.13.3",
                                        "commit": "59639ca9b2ba2ba4b32b5feff5149cfc1ad0ba74"}
    assert R1161["sources"]["dify"]["commit"] == "6f8ed69ee15f9a2e7189ca066275e973d091d1e9"
    assert R1133["sources"]["plugin_daemon"]["ref"] == "0.5.3"
    assert R1133["sources"]["plugin_daemon"]["commit"].startswith("23a4662e")
    assert R1133["sources"]["sandbox"]["commit"].startswith("fcb94aac")
    assert R1161["sources"]["plugin_daemon"]["ref"] == "0.6.3"
    assert R1161["sources"]["sandbox"]["ref"] == "0.2.15"
    for release in RELEASES:
        assert release["format"] == 1
        assert release["sources"]["envconfig"]["ref"] == "v1.4.0"


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r["release"])
def test_client_libraries_are_the_release_pins_the_probe_installs(release):
    """The probe (tests/probe/build.sh) installs exactly client_libraries: the clients Dify
    reaches its dependencies with, at the lock's versions, with their dependencies."""
    libs = release["client_libraries"]
    for name in ("sqlalchemy", "psycopg2-binary", "pymysql", "redis", "celery", "kombu", "opendal",
                 "pydantic", "pydantic-settings", "python-dotenv", "amqp", "billiard", "vine", "pydantic-core"):
        assert name in libs, name
    assert libs["pydantic"] == release["toolchain"]["pydantic"]
    assert libs["pydantic-core"] == release["toolchain"]["pydantic_core"]
    assert libs["pydantic-settings"] == release["toolchain"]["pydantic_settings"]


def test_client_libraries_differ_where_the_locks_differ():
    assert (R1133["client_libraries"]["celery"], R1161["client_libraries"]["celery"]) == ("5.6.2", "5.6.3")
    assert (R1133["client_libraries"]["redis"], R1161["client_libraries"]["redis"]) == ("7.3.0", "7.4.0")
    assert R1133["client_libraries"]["opendal"] == R1161["client_libraries"]["opendal"] == "0.46.0"


def test_field_counts_match_difyconfig():
    assert R1133["api"]["field_count"] == len(R1133["api"]["settings"]) == 677
    assert R1161["api"]["field_count"] == len(R1161["api"]["settings"]) == 750


def test_images_come_from_the_release_compose():
    assert R1133["images"]["api"] == "langgenius/dify-api:1.13.3"
    assert R1133["images"]["plugin_daemon"] == "langgenius/dify-plugin-daemon:0.5.3-local"
    assert R1133["images"]["sandbox"] == "langgenius/dify-sandbox:0.2.14"
    assert R1161["images"]["web"] == "langgenius/dify-web:1.16.1"
    assert R1161["images"]["plugin_daemon"] == "langgenius/dify-plugin-daemon:0.6.3-local"
    assert R1161["images"]["sandbox"] == "langgenius/dify-sandbox:0.2.15"


def test_celery_healthcheck_file_exists_only_from_1_14():
    """Issue 12 #3: the worker healthcheck module is missing from the 1.13.3 tree."""
    assert not ds.has_file(R1133, "api/celery_healthcheck.py")
    assert ds.has_file(R1161, "api/celery_healthcheck.py")
    for release in RELEASES:
        assert ds.has_file(release, "api/celery_entrypoint.py")
        assert ds.has_file(release, "api/gunicorn.conf.py")
        assert ds.has_file(release, "api/docker/entrypoint.sh")


def test_entrypoint_worker_queues_per_edition():
    queues = R1133["api"]["entrypoint"]["celery_queues"]
    assert queues["selector"] == "EDITION"
    assert "workflow" in queues["default"] and "workflow" not in queues["CLOUD"]
    assert {"workflow_professional", "workflow_team", "workflow_sandbox"} <= set(queues["CLOUD"])
    assert "app_rbac" not in queues["default"]
    assert "app_rbac" in R1161["api"]["entrypoint"]["celery_queues"]["default"]
    reads = R1133["api"]["entrypoint"]["reads"]
    assert reads["GUNICORN_TIMEOUT"] == {"default": "200", "type": "int"}
    assert reads["SERVER_WORKER_AMOUNT"]["type"] == "int" and reads["CELERY_WORKER_AMOUNT"]["type"] == "int"
    assert reads["CELERY_MAX_WORKERS"]["type"] == "int"
    assert set(R1133["api"]["entrypoint"]["modes"]) == {"beat", "job", "migration", "worker"}


def test_image_env_is_what_an_omitted_variable_holds():
    """Issue 12 #6: without CONSOLE_API_URL & co. the api image's ENV (127.0.0.1) is used."""
    env = R1133["api"]["image_env"]
    assert env["CONSOLE_API_URL"] == "http://127.0.0.1:5001"
    assert env["APP_WEB_URL"] == "http://127.0.0.1:3000"
    assert R1133["plugin_daemon"]["image_env"]["PLATFORM"] == "local"


def test_event_bus_in_1_13_3_has_no_sentinel_settings():
    """Issue 12 #2: the event bus reads a URL (or REDIS_HOST/PORT), never Sentinel settings."""
    settings = R1133["api"]["settings"]
    assert settings["PUBSUB_REDIS_URL"]["env"] == ["EVENT_BUS_REDIS_URL", "PUBSUB_REDIS_URL"]
    assert settings["PUBSUB_REDIS_CHANNEL_TYPE"]["type"]["values"] == ["pubsub", "sharded", "streams"]
    assert not [n for n in R1133["api"]["names"] if n.startswith(("PUBSUB_REDIS_SENTINEL", "EVENT_BUS_REDIS_MODE",
                                                                  "PUBSUB_REDIS_MODE"))]


def test_opendal_prefix_and_vector_store_choices_are_extracted():
    assert "OPENDAL_" in R1133["api"]["prefixes"]
    assert "pgvector" in R1133["api"]["runtime_choices"]["VECTOR_STORE"]["values"]
    assert "faiss" not in R1133["api"]["runtime_choices"]["VECTOR_STORE"]["values"]


def test_data_is_json_like():
    for release in RELEASES:
        assert json.loads(json.dumps(release)) == release


# ---------------------------------------------------------------- pydantic semantics

INT_GT0 = {"t": "int", "gt": 0}


@pytest.mark.parametrize("value,accepted", [
    ("", False), (" ", False), ("0", False), ("1", True), (" 5 ", True), ("5\n", True), ("+5", True), ("-5", False),
    ("1_000", True), ("1__0", False), ("_1", False), ("1.0", True), ("1.00", True), ("1.", False), ("1.5", False),
    ("1e3", False), ("0x10", False), ("007", True), ("\u0663", False), ("6379:1", False)])
def test_positive_int_from_env(value, accepted):
    assert ok(INT_GT0, value) is accepted


@pytest.mark.parametrize("value,accepted", [
    (v, True) for v in ("1", "0", "true", "True", "TRUE", "yes", "YES", "on", "off", "t", "f", "y", "n", "no", "false")
] + [(v, False) for v in ("", " ", " true", "true ", "2", "1.0", "tru", "enabled", "\ttrue")])
def test_bool_from_env(value, accepted):
    assert ok({"t": "bool"}, value) is accepted


@pytest.mark.parametrize("node,value,accepted", [
    ({"t": "float", "gt": 0}, "0.1", True), ({"t": "float", "gt": 0}, "0", False),
    ({"t": "float", "gt": 0}, "nan", False), ({"t": "float", "gt": 0}, "inf", True),
    ({"t": "float", "gt": 0, "allow_inf_nan": False}, "inf", False), ({"t": "float"}, "1_000.5", True),
    ({"t": "float"}, " 1e-3 ", True), ({"t": "float"}, ".5", True), ({"t": "float"}, "5.", True),
    ({"t": "float"}, "1,5", False), ({"t": "float"}, "", False), ({"t": "float"}, "Infinity", True),
    ({"t": "float", "ge": 0}, "1e-400", True), ({"t": "float", "gt": 0}, "1e-400", False),
])
def test_float_from_env(node, value, accepted):
    assert ok(node, value) is accepted


def test_optional_keeps_the_empty_string():
    """`X | None` does not turn '' into None: str keeps '', int and bool fail."""
    assert ok({"t": "optional", "of": {"t": "str"}}, "")
    assert not ok({"t": "optional", "of": {"t": "int"}}, "")
    assert not ok({"t": "optional", "of": {"t": "bool"}}, "")
    assert not ok({"t": "optional", "of": {"t": "float", "gt": 0}}, "None")


def test_literal_and_enum_match_exactly():
    node = {"t": "literal", "values": ["commit", "rollback", None]}
    assert ok(node, "commit") and not ok(node, "Commit") and not ok(node, "") and not ok(node, "None")
    assert ok({"t": "enum", "name": "E", "values": ["a"]}, "a")
    assert not ok({"t": "enum", "name": "E", "values": ["a"]}, " a")


def test_json_settings():
    node = {"t": "optional", "of": {"t": "dict"}}
    assert ok(node, "null") and ok(node, "{}") and ok(node, '{"a": 1}')
    assert not ok(node, "") and not ok(node, "[]") and not ok(node, "x")
    assert not ok({"t": "model", "name": "PyProjectConfig"}, "{}")


@pytest.mark.parametrize("value,accepted", [
    ("http://10.0.0.41:8194", True), ("https://dify.example/x?y#z", True), ("http:example.com", True),
    ("HTTP://A", True), (" http://a ", True), ("http://[fd00::41]:8194", True), ("http://a:", True),
    ("http://user:pw@h", True), ("http://0x7f.1/", True), ("http://1.2.3", True),
    ("http://fd00::41:8194", False), ("ftp://a", False), ("a", False), ("", False), ("http://", False),
    ("http://a:99999", False), ("http://a b", False), ("http://1.2.3.256", False), ("http://a%20b", False),
    ("http://[fd00::41", False), ("sandbox:8194", False)])
def test_http_url(value, accepted):
    assert ok({"t": "http_url"}, value) is accepted


@pytest.mark.parametrize("value,accepted", [
    ("2024-01-01", True), ("2024-01-01T00:00", True), ("2024-01-01 00:00:00Z", True), ("2024-01-01_00:00", True),
    ("2024-01-01T00:00:00+01:00", True), ("2024-01-01T00:00:00+0100", True), ("1700000000", True), ("1.", True),
    ("", False), ("2024-1-1", False), ("2024-02-30", False), ("2024-01-01T24:00", False), ("now", False),
    ("2024-01-01T00:00:00-00", False), ("\u0661\u0667", False), ("1" * 19, False)])
def test_datetime(value, accepted):
    assert ok({"t": "datetime"}, value) is accepted


def test_field_validators_are_modelled():
    spec = R1133["api"]["settings"]["REDIS_MAX_CONNECTIONS"]
    assert spec["blank"] == "none"
    assert ds.check_setting(spec, "") is None and ds.check_setting(spec, "  ") is None
    assert ds.check_setting(spec, "0") is not None
    port = R1161["api"]["settings"]["PLUGIN_REMOTE_INSTALL_PORT"]
    assert ds.check_setting(port, "127.0.0.1:5003") == "must not contain ':'"
    assert ds.check_setting(port, "5003") is None


# ---------------------------------------------------------------- Go semantics

@pytest.mark.parametrize("go,value,accepted", [
    ("uint16", "", False), ("uint16", "6379", True), ("uint16", "65536", False), ("uint16", "+1", False),
    ("uint16", "0x18eb", True), ("uint16", "010", True), ("uint16", "08", False), ("uint16", " 1", False),
    ("int", "", False), ("int", "-1", True), ("int", "1_000", True), ("int", "1__0", False), ("int", "1.0", False),
    ("int64", "9223372036854775807", True), ("int64", "9223372036854775808", False),
    ("bool", "", False), ("bool", "true", True), ("bool", "T", True), ("bool", "yes", False), ("bool", "on", False),
    ("bool", "tRue", False), ("float64", "", False), ("float64", "0.1", True), ("float64", "Inf", True),
    ("float64", "1e400", False), ("time.Duration", "", False), ("time.Duration", "30s", True),
    ("time.Duration", "30", False), ("time.Duration", "0", True), ("[]string", "", True), ("[]string", "a,b", True),
    ("string", "", True), ("*string", "", True)])
def test_envconfig_parsing(go, value, accepted):
    try:
        ds.envconfig_parse(go, value)
        got = True
    except ValueError:
        got = False
    assert got is accepted


def test_go_atoi_and_parse_bool():
    assert ds.go_atoi("8194") == 8194 and ds.go_atoi("-1") == -1
    for bad in ("", "1_000", "0x10", " 1", "1.0"):
        with pytest.raises(ValueError):
            ds.go_atoi(bad)
    assert ds.go_parse_bool("1") is True
    with pytest.raises(ValueError):
        ds.go_parse_bool("yes")


# ---------------------------------------------------------------- families

def test_unknown_names_refused_unless_allowed():
    assert ds.validate_env(R1133, "api", {"NOT_A_DIFY_VAR": "1"}) != []
    assert ds.validate_env(R1133, "api", {"NOT_A_DIFY_VAR": "1"}, allow_unknown=["NOT_A_DIFY_VAR"]) == []
    assert ds.validate_env(R1133, "api", {"lower_case": "1"}) == ["'lower_case' is not a valid environment variable name"]
    assert ds.validate_env(R1133, "api", {"OPENDAL_S3_BUCKET": "b"}) == []


def test_aliases_count_as_the_field():
    """EVENT_BUS_REDIS_URL is read for PUBSUB_REDIS_URL; the first alias set wins."""
    assert ds.validate_env(R1133, "api", {"EVENT_BUS_REDIS_USE_CLUSTERS": "maybe"}) != []
    assert ds.validate_env(R1133, "api", {"PUBSUB_REDIS_USE_CLUSTERS": "maybe"}) != []
    assert ds.validate_env(R1133, "api", {"EVENT_BUS_REDIS_USE_CLUSTERS": "true",
                                          "PUBSUB_REDIS_USE_CLUSTERS": "maybe"}) == []


def test_runtime_choices_and_direct_reads():
    assert ds.validate_env(R1133, "api", {"VECTOR_STORE": "pgvector"}) == []
    assert "VECTOR_STORE='faiss'" in ds.validate_env(R1133, "api", {"VECTOR_STORE": "faiss"})[0]
    # core/llm_generator/prompts.py: int(os.getenv("SUGGESTED_QUESTIONS_MAX_TOKENS", "256"))
    assert ds.validate_env(R1133, "api", {"SUGGESTED_QUESTIONS_MAX_TOKENS": "2k"}) != []
    assert ds.validate_env(R1133, "api", {"SERVER_WORKER_AMOUNT": "four"}) != []
    assert ds.validate_env(R1133, "api", {"SERVER_WORKER_AMOUNT": ""}) == []  # ${VAR:-1}: empty takes the default


def test_daemon_required_settings_after_setdefault():
    base = {"SERVER_KEY": "k", "DIFY_INNER_API_URL": "http://10.0.0.31:5001", "DIFY_INNER_API_KEY": "k",
            "DB_USERNAME": "dify", "DB_PASSWORD": "p", "DB_HOST": "10.0.0.11", "DB_PORT": "5432",
            "DB_DATABASE": "dify_plugin", "PLUGIN_WORKING_PATH": "/app/storage/cwd"}
    for release in RELEASES:
        assert ds.validate_env(release, "plugin_daemon", base) == []
        missing = dict(base)
        del missing["SERVER_KEY"]
        assert any("SERVER_KEY is required" in e for e in ds.validate_env(release, "plugin_daemon", missing))
        assert any("'verify-full' is not one of disable, require" in e for e in
                   ds.validate_env(release, "plugin_daemon", dict(base, DB_SSL_MODE="verify-full")))
        assert any("PLATFORM" in e for e in ds.validate_env(release, "plugin_daemon", dict(base, PLATFORM="k8s")))


def test_sandbox_go_parsing():
    assert ds.validate_env(R1133, "sandbox", {"SANDBOX_PORT": "8194", "ENABLE_NETWORK": "true",
                                              "WORKER_TIMEOUT": "15", "API_KEY": "k"}) == []
    assert "silently drops it" in ds.validate_env(R1133, "sandbox", {"SANDBOX_PORT": "8194/tcp"})[0]
    assert "silently drops it" in ds.validate_env(R1133, "sandbox", {"ENABLE_NETWORK": "yes"})[0]
    assert "does not start" in ds.validate_env(R1133, "sandbox", {"ALLOWED_SYSCALLS": "0,1,x"})[0]
    assert ds.validate_env(R1133, "sandbox", {"SANDBOX_PORT": ""}) == []  # only parsed when non-empty
    assert ds.validate_env(R1133, "sandbox", {"MODE": "x"}) != []  # never read by the sandbox


def test_web_reads_what_its_entrypoint_and_server_read():
    env = {"CONSOLE_API_URL": "https://dify.example", "APP_API_URL": "https://dify.example", "PORT": "3000",
           "HOSTNAME": "0.0.0.0", "NEXT_TELEMETRY_DISABLED": "1", "DEPLOY_ENV": "PRODUCTION"}
    for release in RELEASES:
        assert ds.validate_env(release, "web", env) == []
    assert ds.validate_env(R1133, "web", {"EDITION": "SELF_HOSTED"}) == []
    assert ds.validate_env(R1161, "web", {"EDITION": "SELF_HOSTED"}) != []  # 1.16.1's web no longer reads it


def test_unknown_family_refused():
    with pytest.raises(ValueError):
        ds.validate_env(R1133, "nginx", {})
    # a known family the release does not ship (test_dify_contract_agent.py)
    assert ds.validate_env(R1133, "agent_backend", {}) == ["Dify 1.13.3 has no agent_backend (not in this release)"]
