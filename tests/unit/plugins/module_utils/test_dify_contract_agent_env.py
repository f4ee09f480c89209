# -*- coding: utf-8 -*-
"""The environments of Dify 1.16's services (api_websocket, agent_backend,
local_sandbox) built from a fleet's context, validated against the release
data, and nothing of them on a release that does not have them."""

from __future__ import annotations

import base64
import copy
import os
from urllib.parse import urlsplit

import pytest

from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as dc
from ansible_collections.difyops.fleet.plugins.module_utils import dify_schema as ds
from ansible_collections.difyops.fleet.plugins.module_utils import secrets as fleet_secrets

NEW = ("api_websocket", "agent_backend", "local_sandbox")
SECRETS = {
    "secret_key": "k" * 42,
    "db_password": "db-pass-Secret1",
    "redis_password": "redis:p@ss/word",
    "redis_sentinel_password": "sentinel-pass",
    "sandbox_api_key": "sandbox-key-1234",
    "plugin_daemon_key": "daemon-key-1234",
    "plugin_inner_api_key": "inner-key-1234",
    "agent_api_token": "agent-token-1234567",
    "agent_server_secret_key": base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
    "agent_shellctl_token": "shellctl-token-12345",
}
CTX = {
    "db": {"host": "10.0.0.11", "port": 5432, "username": "dify", "database": "dify", "plugin_database": "dify_plugin"},
    "redis": {"sentinels": ["10.0.0.21:26379", "10.0.0.22:26379", "10.0.0.23:26379"], "master_name": "dify"},
    "event_bus": {"url": "redis://10.0.0.22:6379"},
    "public_url": "https://dify.example.com",
    "urls": {"api": "http://10.0.0.31:5001", "sandbox": "http://10.0.0.41:8194",
             "plugin_daemon": "http://10.0.0.42:5002", "ssrf_proxy": "http://10.0.0.51:3128",
             "agent_backend": "http://10.0.0.61:5050", "local_sandbox": "http://10.0.0.62:5004",
             "agent_ssrf_proxy": "http://10.0.0.51:3129"},
    "agent": {"redis": "10.0.0.21:6379", "self_url": "http://10.0.0.61:5050"},
    "ports": {"api_websocket": 5015, "agent_backend": 5051},
    "optional_services": list(NEW),
    "collaboration": True,
    "secrets": SECRETS,
}


def ctx(**over):
    c = copy.deepcopy(CTX)
    c.update(over)
    return c


def test_1_16_1_builds_the_three_services_and_validates_them():
    envs = dc.build_all(ctx(), version="1.16.1")
    assert set(NEW) <= set(envs)
    assert dc.validate_all(envs, "1.16.1") == []
    for service in NEW:
        assert dc.validate_service(service, envs[service], "1.16.1") == []


def test_a_release_without_the_services_builds_nothing_of_them():
    envs = dc.build_all(ctx(), version="1.13.3")
    assert not set(NEW) & set(envs)
    assert dc.validate_all(envs, "1.13.3") == []
    # and the api of 1.13.3 gets no agent settings (it does not read them)
    assert not any(n.startswith("AGENT_BACKEND_") for n in envs["api"])
    for service in NEW:
        assert not dc.has_service("1.13.3", service)
        with pytest.raises(dc.ContractError, match="not in this release"):
            dc.build_service(service, ctx(), "1.13.3")
        assert "not in this release" in dc.validate_service(service, {}, "1.13.3")[0]
    assert set(dc.healthchecks("1.13.3")) == {"api", "worker", "beat", "web", "sandbox", "plugin_daemon"}
    assert dc.commands("1.13.3") == {}
    assert set(dc.VERSIONS["1.13.3"]["images"]) == {"api", "web", "sandbox", "plugin_daemon"}


def test_optional_services_are_built_only_where_the_fleet_runs_them():
    envs = dc.build_all(ctx(optional_services=[], urls=dict(CTX["urls"], agent_backend="")), version="1.16.1")
    assert not set(NEW) & set(envs)
    assert "AGENT_BACKEND_BASE_URL" not in envs["api"]
    assert dc.validate_all(envs, "1.16.1") == []
    envs = dc.build_all(ctx(optional_services=["api_websocket"]), version="1.16.1")
    assert "api_websocket" in envs and "agent_backend" not in envs


def test_api_websocket_is_the_api_with_upstreams_websocket_worker_on_its_port():
    envs = dc.build_all(ctx(), version="1.16.1")
    ws, api = envs["api_websocket"], envs["api"]
    compose = dc.VERSIONS["1.16.1"]["release"]["api"]["compose"]["api_websocket"]["environment"]
    assert ws["MODE"] == "api" == compose["MODE"]
    assert ws["SERVER_WORKER_CLASS"] == "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
    assert ws["SERVER_WORKER_AMOUNT"] == "1" and ws["SERVER_WORKER_CONNECTIONS"] == "1000"
    assert ws["DIFY_PORT"] == "5015" and api["DIFY_PORT"] == "5001"
    assert ws["ENABLE_COLLABORATION_MODE"] == "true" == api["ENABLE_COLLABORATION_MODE"]
    same = set(api) - {"SERVER_WORKER_CLASS", "SERVER_WORKER_AMOUNT", "DIFY_PORT", "GUNICORN_TIMEOUT"}
    assert {n: ws[n] for n in same} == {n: api[n] for n in same}


def test_api_and_worker_call_the_agent_backend_with_its_token():
    envs = dc.build_all(ctx(), version="1.16.1")
    for service in ("api", "worker", "api_websocket"):
        assert envs[service]["AGENT_BACKEND_BASE_URL"] == "http://10.0.0.61:5050"
        assert envs[service]["AGENT_BACKEND_API_TOKEN"] == SECRETS["agent_api_token"]
    assert envs["agent_backend"]["DIFY_AGENT_API_TOKEN"] == SECRETS["agent_api_token"]
    assert "AGENT_BACKEND_BASE_URL" not in envs["beat"] or envs["beat"]["AGENT_BACKEND_BASE_URL"]


def test_agent_backend_env_from_the_fleet():
    env = dc.build_all(ctx(), version="1.16.1")["agent_backend"]
    assert env["DIFY_AGENT_REDIS_URL"] == "redis://:redis%3Ap%40ss%2Fword@10.0.0.21:6379/2"
    assert urlsplit(env["DIFY_AGENT_REDIS_URL"]).path == "/2"
    assert env["DIFY_AGENT_SERVER_SECRET_KEY"] == SECRETS["agent_server_secret_key"]
    assert env["DIFY_AGENT_SHELLCTL_AUTH_TOKEN"] == SECRETS["agent_shellctl_token"]
    assert env["DIFY_AGENT_SHELLCTL_ENTRYPOINT"] == "http://10.0.0.62:5004"
    assert env["DIFY_AGENT_PLUGIN_DAEMON_URL"] == "http://10.0.0.42:5002"
    assert env["DIFY_AGENT_PLUGIN_DAEMON_API_KEY"] == SECRETS["plugin_daemon_key"]
    assert env["DIFY_AGENT_INNER_API_URL"] == "http://10.0.0.31:5001"
    assert env["DIFY_AGENT_INNER_API_KEY"] == SECRETS["plugin_inner_api_key"]
    assert env["DIFY_AGENT_STUB_API_BASE_URL"] == "http://10.0.0.61:5050/agent-stub"
    # upstream's non-secret, non-address defaults are kept
    assert env["DIFY_AGENT_REDIS_PREFIX"] == "dify-agent" and env["DIFY_AGENT_RUN_RETENTION_SECONDS"] == "259200"
    # nothing of upstream's samples or compose host names
    for value in env.values():
        assert not fleet_secrets.is_sample_value(value)
        assert "local_sandbox" not in value and "agent_backend:" not in value and "@redis:" not in value
    assert set(env) <= ds.known_names(dc.VERSIONS["1.16.1"]["release"], "agent_backend")


def test_agent_redis_falls_back_to_the_single_redis_and_never_to_sentinel():
    single = ctx(redis={"host": "10.0.0.21", "port": 6380}, agent={"self_url": "http://10.0.0.61:5050"},
                 event_bus={})
    assert dc.build_all(single, version="1.16.1")["agent_backend"]["DIFY_AGENT_REDIS_URL"].endswith(
        "@10.0.0.21:6380/2")
    with pytest.raises(dc.ContractError, match="agent.redis"):
        dc.build_all(ctx(agent={"self_url": "http://10.0.0.61:5050"}), version="1.16.1")
    with pytest.raises(dc.ContractError, match="host:port"):
        dc.build_all(ctx(agent={"redis": "redis://10.0.0.21:6379", "self_url": "http://x:1"}), version="1.16.1")


@pytest.mark.parametrize("missing", ["agent_api_token", "agent_server_secret_key", "agent_shellctl_token"])
def test_every_agent_secret_is_required(missing):
    secrets = {k: v for k, v in SECRETS.items() if k != missing}
    errors = dc.validate_all(dc.build_all(ctx(secrets=secrets), version="1.16.1"), "1.16.1")
    assert any("is empty" in e for e in errors), errors


def test_a_malformed_server_secret_key_is_refused_without_showing_it():
    bad = base64.urlsafe_b64encode(b"x" * 24).decode()
    errors = dc.validate_all(dc.build_all(ctx(secrets=dict(SECRETS, agent_server_secret_key=bad)),
                                          version="1.16.1"), "1.16.1")
    assert any("DIFY_AGENT_SERVER_SECRET_KEY" in e and "32 bytes" in e for e in errors), errors
    assert not any(bad in e for e in errors)


def test_shared_agent_secrets_must_match():
    envs = dc.build_all(ctx(), version="1.16.1")
    envs["local_sandbox"]["SHELLCTL_AUTH_TOKEN"] = "another-token-12345"
    assert any(e.startswith("shellctl token differs") for e in dc.validate_all(envs, "1.16.1"))
    envs = dc.build_all(ctx(), version="1.16.1")
    envs["worker"]["AGENT_BACKEND_API_TOKEN"] = "another-token-12345"
    assert any(e.startswith("agent API token differs") for e in dc.validate_all(envs, "1.16.1"))


def test_local_sandbox_goes_out_only_through_the_agent_proxy():
    env = dc.build_all(ctx(), version="1.16.1")["local_sandbox"]
    compose = dc.VERSIONS["1.16.1"]["release"]["local_sandbox"]["compose"]["local_sandbox"]["environment"]
    assert env == {"SHELLCTL_AUTH_TOKEN": SECRETS["agent_shellctl_token"], "HTTP_PROXY": "http://10.0.0.51:3129",
                   "HTTPS_PROXY": "http://10.0.0.51:3129", "NO_PROXY": compose["NO_PROXY"]}
    with pytest.raises(dc.ContractError, match="urls.agent_ssrf_proxy"):
        dc.build_all(ctx(urls=dict(CTX["urls"], agent_ssrf_proxy="")), version="1.16.1")
    # a name neither the image nor upstream's compose sets is refused
    errors = dc.validate_service("local_sandbox", dict(env, FOO_BAR="1"), "1.16.1")
    assert any("FOO_BAR is not a variable" in e for e in errors)


def test_compose_host_names_are_refused_in_the_agent_env():
    envs = dc.build_all(ctx(), version="1.16.1")
    envs["agent_backend"]["DIFY_AGENT_SHELLCTL_ENTRYPOINT"] = "http://local_sandbox:5004"
    envs["local_sandbox"]["HTTP_PROXY"] = "http://ssrf_proxy:3128"
    errors = dc.validate_all(envs, "1.16.1")
    assert any("local_sandbox: HTTP_PROXY points at a docker-compose host name" in e for e in errors), errors


def test_extras_for_all_do_not_reach_the_agent_services():
    envs = dc.build_all(ctx(), {"all": {"LOG_LEVEL": "DEBUG"}, "agent_backend": {"DIFY_AGENT_REDIS_PREFIX": "x"}},
                        version="1.16.1")
    assert "LOG_LEVEL" not in envs["agent_backend"] and "LOG_LEVEL" not in envs["local_sandbox"]
    assert envs["api_websocket"]["LOG_LEVEL"] == "DEBUG"
    assert envs["agent_backend"]["DIFY_AGENT_REDIS_PREFIX"] == "x"


def test_healthchecks_and_commands_follow_the_ports():
    checks = dc.healthchecks("1.16.1", {"api_websocket": 5015, "agent_backend": 5051})
    assert checks["api_websocket"]["test"] == ["CMD", "curl", "-f", "http://localhost:5015/health"]
    assert checks["api"]["test"] == ["CMD", "curl", "-f", "http://localhost:5001/health"]
    assert "'127.0.0.1:5051'" in checks["agent_backend"]["test"][-1] and "/openapi.json" in checks["agent_backend"]["test"][-1]
    assert "'127.0.0.1:5050'" in dc.healthchecks("1.16.1")["agent_backend"]["test"][-1]
    assert checks["local_sandbox"]["test"] == ["CMD", "curl", "-f", "http://localhost:5004/healthz"]
    assert "5005/health" in dc.healthchecks("1.16.1")["api_websocket"]["test"][-1]
    cmd = dc.commands("1.16.1", {"agent_backend": 5051})["agent_backend"]
    assert cmd[cmd.index("--port") + 1] == "5051" and cmd[0] == "uvicorn"
    assert dc.commands("1.16.1")["agent_backend"] == dc.VERSIONS["1.16.1"]["release"]["agent_backend"]["dockerfile"]["cmd"]
    assert dc.VERSIONS["1.16.1"]["images"]["agent_backend"] == "langgenius/dify-agent-backend:1.16.1"
    assert dc.VERSIONS["1.16.1"]["images"]["local_sandbox"] == "langgenius/dify-agent-local-sandbox:1.16.1"
