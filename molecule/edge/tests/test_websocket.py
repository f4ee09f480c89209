"""/socket.io/ through the edge to the websocket api (Dify 1.15+, group dify_api_websocket).

The backend host is the lab's dify_api_websocket host: its stand-in on 5005
answers an upgrade with 101, sends one frame and echoes the next, so a
websocket that works end to end proves nginx passed the upgrade through.
"""
import json
import re

import pytest
import testinfra

DOMAIN = "dify.lab.test"
LISTENER_CA = "/etc/ssl/difyops-lab/pebble-listener.pem"
PEBBLE_ROOT = "/tmp/pebble-ws-root.pem"
BACKEND = "mol-edge-backend"
EDGES = ("mol-edge-edge", "mol-edge-edge2")

testinfra_hosts = ["podman://" + BACKEND]


@pytest.fixture(scope="module")
def client(host):
    # Pebble's root changes at every start: fetch the current one.
    host.run_test("curl -sf --cacert %s -o %s https://mol-edge-acme:15000/roots/0", LISTENER_CA, PEBBLE_ROOT)
    return host


def test_websocket_upgrade_reaches_the_websocket_api(client):
    out = client.run_test("/usr/local/bin/difyops-ws-probe %s %s %s", DOMAIN,
                          "/socket.io/?EIO=4&transport=websocket", PEBBLE_ROOT).stdout
    answer = json.loads(out)
    assert answer["status"].startswith("HTTP/1.1 101 "), answer
    assert answer["headers"]["upgrade"].lower() == "websocket", answer
    assert answer["headers"]["connection"].lower() == "upgrade", answer
    first = answer["first_frame"]
    assert first["service"] == "api_websocket@%s" % BACKEND
    assert first["path"] == "/socket.io/"
    # nginx sent the upgrade on with the site's forwarding headers
    assert first["headers"]["upgrade"].lower() == "websocket"
    assert first["headers"]["connection"].lower() == "upgrade"
    assert first["headers"]["host"] == DOMAIN
    assert first["headers"]["x-forwarded-proto"] == "https"
    # frames pass both ways
    assert answer["echo"] == "echo:ping-through-the-edge"


def test_socketio_polling_reaches_the_websocket_api_and_the_rest_is_unchanged(client):
    def get(path):
        return json.loads(client.run_test("curl -sf --cacert %s https://%s%s", PEBBLE_ROOT, DOMAIN, path).stdout)

    polling = get("/socket.io/?EIO=4&transport=polling")
    assert polling["service"] == "api_websocket@%s" % BACKEND
    # keepalive to the upstream for requests that are no upgrade
    assert "close" not in polling["headers"].get("connection", "")
    assert get("/socket.io.js")["service"] == "web@%s" % BACKEND  # only the /socket.io/ prefix
    assert get("/console/api/apps")["service"] == "api@%s" % BACKEND
    assert get("/apps")["service"] == "web@%s" % BACKEND


@pytest.mark.parametrize("name", EDGES)
def test_socketio_location_timeouts_and_buffering(name):
    edge = testinfra.get_host("podman://" + name)
    conf = edge.run_test("nginx -T").stdout
    block = re.search(r"location /socket\.io/ \{(.*?)\n    \}", conf, re.S)
    assert block, conf
    body = block.group(1)
    assert "proxy_pass http://dify_api_websocket;" in body
    assert "proxy_http_version 1.1;" in body
    assert "proxy_buffering off;" in body and "proxy_request_buffering off;" in body
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        value = re.search(r"%s (\d+)s;" % directive, body)
        assert value and int(value.group(1)) >= 360, (directive, body)
    pool = re.search(r"upstream dify_api_websocket \{(.*?)\}", conf, re.S).group(1)
    assert re.search(r"server [0-9.]+:5005 ", pool), pool
