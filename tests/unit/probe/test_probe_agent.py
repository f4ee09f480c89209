"""The probe as Dify 1.16's new services (tests/probe/probe.py): it tells them
apart by their env, parses the agent backend's env as ServerSettings would,
listens where their command lines say, answers the websocket upgrade, the local
sandbox's health and token, and reports egress other than the proxy."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import threading
from http.server import ThreadingHTTPServer

import pytest

# the probe loader fixture
from test_probe import probe  # noqa: F401 # pylint: disable=unused-import

AGENT_ENV = {
    "DIFY_AGENT_REDIS_URL": "redis://:pw@10.0.0.3:6379/2",
    "DIFY_AGENT_PLUGIN_DAEMON_URL": "http://10.0.0.4:5002",
    "DIFY_AGENT_INNER_API_URL": "http://10.0.0.2:5001",
    "DIFY_AGENT_SHELLCTL_ENTRYPOINT": "http://10.0.0.6:5004",
    "DIFY_AGENT_STUB_API_BASE_URL": "http://10.0.0.5:5050/agent-stub",
    "DIFY_AGENT_SERVER_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
    "DIFY_AGENT_API_TOKEN": "agent-token-12345678",
    "PROBE_DIFY_VERSION": "1.16.1",
}


def serve(mod):
    server = ThreadingHTTPServer(("127.0.0.1", 0), mod.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def get(server, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_the_new_services_are_told_apart_by_their_env(probe):
    assert probe(MODE="api", SERVER_WORKER_CLASS="geventwebsocket.gunicorn.workers.GeventWebSocketWorker").MODE \
        == "api_websocket"
    assert probe(MODE="api", SERVER_WORKER_CLASS="gevent").MODE == "api"
    assert probe(**AGENT_ENV).MODE == "agent_backend"
    assert probe(SHELLCTL_AUTH_TOKEN="t" * 20, HTTP_PROXY="http://10.0.0.1:3129").MODE == "local_sandbox"


def test_the_agent_backend_parses_its_env_as_server_settings(probe, capsys):
    mod = probe(**AGENT_ENV)
    mod.load_config()
    assert mod.REPORT["checks"]["contract"]["ok"] and mod.REPORT["checks"]["contract"]["detail"]["release"] == "1.16.1"
    bad = probe(**dict(AGENT_ENV, DIFY_AGENT_SERVER_SECRET_KEY=base64.urlsafe_b64encode(b"x" * 24).decode()))
    with pytest.raises(SystemExit) as exc:
        bad.load_config()
    assert exc.value.code == 1 and "exactly 32 bytes" in capsys.readouterr().err
    old = probe(**dict(AGENT_ENV, PROBE_DIFY_VERSION="1.13.3"))
    with pytest.raises(SystemExit):
        old.load_config()
    assert "Dify 1.13.3 has no agent_backend image" in capsys.readouterr().err


def test_ports_come_from_the_command_line_or_the_env(probe):
    mod = probe(**AGENT_ENV)
    assert mod.listen_port(["dify_agent.server.app:app", "--host", "0.0.0.0", "--port", "5151"]) == 5151
    assert mod.listen_port([]) == 5050
    sandbox = probe(SHELLCTL_AUTH_TOKEN="t" * 20)
    assert sandbox.listen_port(["shellctl", "serve", "--listen", "0.0.0.0:5004"]) == 5004
    ws = probe(MODE="api", SERVER_WORKER_CLASS="geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
               DIFY_PORT="5015")
    assert ws.listen_port() == 5015


def test_api_websocket_answers_the_upgrade_with_101(probe):
    mod = probe(MODE="api", SERVER_WORKER_CLASS="geventwebsocket.gunicorn.workers.GeventWebSocketWorker")
    server = serve(mod)
    try:
        resp = get(server, "/socket.io/?EIO=4&transport=websocket",
                   {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert resp.status == 101
        assert resp.getheader("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's example
        assert get(server, "/socket.io/?EIO=4&transport=websocket").status == 400
        assert get(server, "/health").status == 200
    finally:
        server.shutdown()


def test_local_sandbox_health_is_open_and_v1_needs_the_token(probe):
    mod = probe(SHELLCTL_AUTH_TOKEN="shellctl-token-1234")
    server = serve(mod)
    try:
        assert get(server, "/healthz").status == 200
        assert get(server, "/v1/sessions").status == 401
        assert get(server, "/v1/sessions", {"Authorization": "Bearer wrong-token"}).status == 401
        assert get(server, "/v1/sessions", {"Authorization": "Bearer shellctl-token-1234"}).status == 200
    finally:
        server.shutdown()
    agent = probe(**AGENT_ENV)
    server = serve(agent)
    try:
        assert get(server, "/openapi.json").status == 200
    finally:
        server.shutdown()


def _listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def _closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_egress_is_ok_only_through_the_proxy(probe):
    proxy, open_target = _listener(), _listener()
    try:
        closed = "127.0.0.1:%d" % _closed_port()
        mod = probe(SHELLCTL_AUTH_TOKEN="t" * 20, HTTP_PROXY="http://127.0.0.1:%d" % proxy.getsockname()[1],
                    PROBE_EGRESS_TARGETS=closed)
        mod.check_egress()
        result = mod.REPORT["checks"]["egress"]
        assert result["ok"] and result["detail"]["direct"] == {closed: "refused"}
        leak = "127.0.0.1:%d" % open_target.getsockname()[1]
        mod = probe(SHELLCTL_AUTH_TOKEN="t" * 20, HTTP_PROXY="http://127.0.0.1:%d" % proxy.getsockname()[1],
                    PROBE_EGRESS_TARGETS="%s,%s" % (closed, leak))
        mod.check_egress()
        result = mod.REPORT["checks"]["egress"]
        assert not result["ok"] and result["detail"]["direct"][leak] == "connected"
        # no target to try is no proof
        mod = probe(SHELLCTL_AUTH_TOKEN="t" * 20, HTTP_PROXY="http://127.0.0.1:%d" % proxy.getsockname()[1])
        mod.check_egress()
        assert not mod.REPORT["checks"]["egress"]["ok"]
        # no proxy reached is no way out
        mod = probe(SHELLCTL_AUTH_TOKEN="t" * 20, HTTP_PROXY="http://%s" % closed, PROBE_EGRESS_TARGETS=closed)
        mod.check_egress()
        assert not mod.REPORT["checks"]["egress"]["ok"]
    finally:
        proxy.close()
        open_target.close()


def test_api_and_worker_ask_the_agent_backend_with_their_token(probe):
    """The agent's runs API takes only its DIFY_AGENT_API_TOKEN; Dify 1.16's api and worker (AGENT_BACKEND_*)
    check it with theirs, and a release without an agent backend (no AGENT_BACKEND_BASE_URL) does not."""
    agent = probe(**AGENT_ENV)
    server = serve(agent)
    try:
        assert get(server, "/runs/x").status == 401
        assert get(server, "/runs/x", {"Authorization": "Bearer wrong-token"}).status == 401
        url = "http://127.0.0.1:%d" % server.server_address[1]
        # both probes share this process's environment: the agent's token stays set beside the api's
        token = {"DIFY_AGENT_API_TOKEN": AGENT_ENV["DIFY_AGENT_API_TOKEN"]}
        api = probe(MODE="api", AGENT_BACKEND_BASE_URL=url, AGENT_BACKEND_API_TOKEN=token["DIFY_AGENT_API_TOKEN"],
                    **token)
        assert api.check_agent_backend in api.checks_of("worker")
        api.check_agent_backend()
        assert api.REPORT["checks"]["agent_backend"]["ok"]
        wrong = probe(MODE="api", AGENT_BACKEND_BASE_URL=url, AGENT_BACKEND_API_TOKEN="another-token-123", **token)
        wrong.check_agent_backend()
        result = wrong.REPORT["checks"]["agent_backend"]
        assert not result["ok"] and result["detail"]["token_accepted"] == 401
    finally:
        server.shutdown()
    old = probe(MODE="api")
    assert old.check_agent_backend not in old.checks_of("api")
