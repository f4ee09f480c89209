# -*- coding: utf-8 -*-
"""playbooks/render-env.yml on a Dify 1.16.1 fleet with the agent services
(api_websocket, agent_backend, local_sandbox, agent SSRF proxy), run for real
with no host touched: what roles/dify gives each new service (env files
validated against the release data, containers.yml), and what api and worker
get to reach them."""

from __future__ import annotations

import base64
import os

from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as dc

from test_render_env import SECRETS, _inventory, render, rendered

AGENT_SECRETS = dict(SECRETS, agent_api_token="render-agent-token-0123456789",
                     agent_server_secret_key=base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
                     agent_shellctl_token="render-shellctl-token-0123456789")


def agent_fleet():
    app = ["dify_api", "dify_worker", "dify_beat", "dify_web", "dify_sandbox", "dify_plugin_daemon",
           "dify_api_websocket", "dify_local_sandbox"]
    return _inventory({
        "edge1": ("10.0.2.10", ["dify_edge"], {}),
        "app1": ("10.0.2.11", app, {"dify_api_websocket_port": 5015, "dify_local_sandbox_port": 5014}),
        "agent1": ("10.0.2.12", ["dify_agent_backend"], {"dify_agent_backend_port": 5051}),
        "pg1": ("10.0.2.21", ["dify_postgres"], {}),
        "r1": ("10.0.2.31", ["dify_redis", "dify_sentinel", "dify_ssrf_proxy", "dify_agent_ssrf_proxy"], {}),
        "r2": ("10.0.2.32", ["dify_redis", "dify_sentinel"], {}),
        "r3": ("10.0.2.33", ["dify_redis", "dify_sentinel"], {}),
    }, {"storage_backend": "shared", "difyops_secrets": AGENT_SECRETS, "dify_version": "1.16.1"})


def test_render_a_1_16_1_fleet_with_the_agent_services(tmp_path):
    out = render(tmp_path, agent_fleet(), "1.16.1", "-e", "render_show_secrets=true")[0]
    envs, containers = rendered(out)
    assert set(envs) == {"app1", "agent1"}
    assert {"api_websocket", "local_sandbox"} <= set(envs["app1"]) and "agent_backend" not in envs["app1"]
    assert set(envs["agent1"]) == {"agent_backend"}
    for host, services in envs.items():
        for service, env in services.items():
            assert dc.validate_service(service, env, "1.16.1") == [], (host, service)
            for name, value in env.items():
                if name != "NO_PROXY":     # upstream's, for the local sandbox's own loopback
                    assert "localhost" not in value and "127.0.0.1" not in value, (host, service, value)
    agent = envs["agent1"]["agent_backend"]
    # the fleet's initial Redis master, DB 2; every address a fleet address
    assert agent["DIFY_AGENT_REDIS_URL"] == "redis://:render-redis%3Apass%2Fword%400123@10.0.2.31:6379/2"
    assert agent["DIFY_AGENT_STUB_API_BASE_URL"] == "http://10.0.2.12:5051/agent-stub"
    assert agent["DIFY_AGENT_SHELLCTL_ENTRYPOINT"] == "http://10.0.2.11:5014"
    assert agent["DIFY_AGENT_INNER_API_URL"] == "http://10.0.2.11:5001"
    assert agent["DIFY_AGENT_PLUGIN_DAEMON_URL"] == "http://10.0.2.11:5002"
    assert agent["DIFY_AGENT_SHELLCTL_AUTH_TOKEN"] == AGENT_SECRETS["agent_shellctl_token"]
    assert agent["DIFY_AGENT_SERVER_SECRET_KEY"] == AGENT_SECRETS["agent_server_secret_key"]
    local = envs["app1"]["local_sandbox"]
    assert local["HTTP_PROXY"] == local["HTTPS_PROXY"] == "http://10.0.2.31:3129"
    assert local["SHELLCTL_AUTH_TOKEN"] == AGENT_SECRETS["agent_shellctl_token"]
    for service in ("api", "worker", "api_websocket"):
        env = envs["app1"][service]
        assert env["AGENT_BACKEND_BASE_URL"] == "http://10.0.2.12:5051"
        assert env["AGENT_BACKEND_API_TOKEN"] == AGENT_SECRETS["agent_api_token"]
        assert env["ENABLE_COLLABORATION_MODE"] == "true"
    ws = envs["app1"]["api_websocket"]
    assert ws["MODE"] == "api" and ws["DIFY_PORT"] == "5015" and "websocket" in ws["SERVER_WORKER_CLASS"].lower()
    c = containers
    assert c["agent1"]["agent_backend"]["command"][-2:] == ["--port", "5051"]
    assert c["agent1"]["agent_backend"]["network_mode"] == "host"
    assert "'127.0.0.1:5051'" in c["agent1"]["agent_backend"]["healthcheck"]["test"][-1]
    assert c["agent1"]["agent_backend"]["image"] == "langgenius/dify-agent-backend:1.16.1"
    # the local sandbox's own fenced network (issue 15), not the sandbox's
    assert c["app1"]["local_sandbox"]["network_mode"] == "dify-local-sandbox"
    assert c["app1"]["sandbox"]["network_mode"] == "dify-sandbox"
    assert c["app1"]["local_sandbox"]["published_ports"] == ["10.0.2.11:5014:5004"]
    assert c["app1"]["local_sandbox"]["healthcheck"]["test"][-1] == "http://localhost:5004/healthz"
    assert c["app1"]["local_sandbox"]["volumes"] == []
    assert c["app1"]["api_websocket"]["healthcheck"]["test"][-1] == "http://localhost:5015/health"
    assert "command" not in c["app1"]["api_websocket"]


def test_render_1_16_1_with_the_agent_proxy_on_the_local_sandbox_host(tmp_path):
    inventory = agent_fleet()
    children = inventory["all"]["children"]
    children["dify_agent_ssrf_proxy"]["hosts"] = {"app1": {}}
    out = render(tmp_path, inventory, "1.16.1")[0]
    local = rendered(out)[0]["app1"]["local_sandbox"]
    # squid's agent port at the local sandbox network's gateway, as the sandbox reaches its proxy
    assert local["HTTP_PROXY"] == "http://172.29.195.1:3129"
