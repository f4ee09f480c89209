"""Dify 1.16.1's services on the app host, through the contract probe: the
websocket api, the agent backend (its Redis DB 2) and the local sandbox (its
only way out the agent SSRF proxy on the data host)."""

import importlib
import json
import os
import sys

import pytest
import testinfra

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".collections"))
dc = importlib.import_module("ansible_collections.difyops.fleet.plugins.module_utils.dify_contract")
ds = importlib.import_module("ansible_collections.difyops.fleet.plugins.module_utils.dify_schema")

APP = testinfra.get_host("podman://mol-dify-app")
DATA = testinfra.get_host("podman://mol-dify-data")
testinfra_hosts = ["mol-dify-app"]
NEW = ["api_websocket", "agent_backend", "local_sandbox"]
RELEASE = dc.VERSIONS["1.16.1"]["release"]


def _env(service):
    f = APP.file("/etc/dify/%s.env" % service)
    return dict(line.split("=", 1) for line in f.content_string.splitlines() if line and not line.startswith("#"))


def _probe(port):
    """The probe's report on GET /probe (the agent services mount no log directory)."""
    out = APP.check_output("curl -fsS --max-time 10 http://%s:%d/probe" % (_app_address(), port))
    return json.loads(out)


def _app_address():
    return json.loads(APP.check_output("ip -4 -json route get 1.1.1.1"))[0]["prefsrc"]


@pytest.mark.parametrize("service", NEW)
def test_container_running_healthy_labelled(service):
    out = APP.check_output(
        "docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}} "
        "{{index .Config.Labels \"org.difyops.service\"}} {{.HostConfig.NetworkMode}} {{.Config.StopTimeout}}' "
        "dify-%s" % service)
    status, health, label, network, stop = out.split()
    assert (status, health, label) == ("running", "healthy", service)
    # the local sandbox in its own fenced network (issue 15; test_sandbox_network.py), the others on the host's
    assert network == ("dify-local-sandbox" if service == "local_sandbox" else "host")
    assert int(stop) > 0


@pytest.mark.parametrize("service", NEW)
def test_env_names_are_the_release_data(service):
    env = _env(service)
    fam = dc.family(service)
    compose = dc.OPTIONAL_SERVICES[service]
    upstream = set((RELEASE[compose[0]]["compose"][compose[1] or service]).get("environment") or {})
    prefixes = tuple(RELEASE[fam].get("prefixes") or ())
    assert {n for n in env if not n.startswith(prefixes)} <= ds.known_names(RELEASE, fam) | upstream
    assert dc.validate_service(service, env, "1.16.1") == []


def test_api_and_worker_call_the_agent_backend_and_the_websocket_api_is_on():
    agent = "http://%s:5050" % _app_address()
    for service in ("api", "worker", "api_websocket"):
        env = _env(service)
        assert env["AGENT_BACKEND_BASE_URL"] == agent
        assert env["AGENT_BACKEND_API_TOKEN"] == _env("agent_backend")["DIFY_AGENT_API_TOKEN"]
        assert env["ENABLE_COLLABORATION_MODE"] == "true"


def test_agent_backend_reached_redis_db_2_on_the_first_redis_host():
    data = _probe(5050)
    redis = data["checks"]["agent_redis"]
    assert redis["ok"], redis
    assert redis["detail"]["db"] == 2 == redis["detail"]["url_db"]
    data_addr = DATA.check_output("ip -4 -json route get 1.1.1.1")
    assert redis["detail"]["host"].startswith(json.loads(data_addr)[0]["prefsrc"] + ":")
    assert data["checks"]["shellctl"]["ok"], data["checks"]["shellctl"]
    assert data["checks"]["contract"]["ok"]


def test_agent_backend_serves_openapi_on_its_port():
    assert APP.check_output("curl -fsS -o /dev/null -w '%%{http_code}' http://%s:5050/openapi.json"
                            % _app_address()) == "200"


def test_local_sandbox_reaches_nothing_but_its_proxy():
    data = _probe(5004)
    egress = data["checks"]["egress"]
    assert egress["ok"], egress
    assert egress["detail"]["proxy_reached"] == "connected"
    assert egress["detail"]["proxy"].endswith(":3129")
    assert len(egress["detail"]["direct"]) == 3 and "connected" not in egress["detail"]["direct"].values()


def test_local_sandbox_health_is_open_and_its_api_needs_the_token():
    base = "http://%s:5004" % _app_address()
    code = "curl -s -o /dev/null -w '%%{http_code}' %s" % base
    assert APP.check_output(code + "/healthz") == "200"
    assert APP.check_output(code + "/v1/sessions") == "401"


def test_websocket_api_answers_the_upgrade():
    # curl prints the status, then exits 52 as the probe closes the upgraded connection
    res = APP.run(
        "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 -H 'Connection: Upgrade' -H 'Upgrade: websocket' "
        "-H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "
        "'http://%s:5005/socket.io/?EIO=4&transport=websocket'" % _app_address())
    assert res.stdout == "101"
