"""Issue 14: the sandbox runs in its own network namespace whose only way out is the SSRF proxy.

The app host runs the sandbox next to every other Dify service (a shared host);
the SSRF proxy is squid on the data host. Every connection below is made from
INSIDE the sandbox container (docker exec) and compared with the same target
asked from the app host's own namespace, so a refusal can only come from the
sandbox's network and the firewall (nft's reject answers EHOSTUNREACH; nothing
listening would answer ECONNREFUSED).
"""

import json

import pytest
import testinfra

APP = testinfra.get_host("podman://mol-dify-app")
DATA = testinfra.get_host("podman://mol-dify-data")
testinfra_hosts = ["mol-dify-app"]
SANDBOX = "dify-sandbox"
METADATA = "169.254.169.254:80"

# Connect to each HOST:PORT argument; print {target: "open" | errno name | "timeout"}.
CONNECT = r"""
import errno, json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, int(port)))
        out[target] = "open"
    except socket.timeout:
        out[target] = "timeout"
    except OSError as exc:
        out[target] = errno.errorcode.get(exc.errno, str(exc.errno))
    finally:
        s.close()
print(json.dumps(out))
"""

# One raw request through the proxy; print the status line's code.
RAW = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
s.sendall(sys.argv[3].encode() + b"\r\n\r\n")
print(s.recv(200).split(b" ")[1].decode())
"""


def address(host):
    return json.loads(host.check_output("ip -4 -json route get 1.1.1.1"))[0]["prefsrc"]


def inspect(fmt):
    return APP.check_output("docker inspect -f %s %s" % (json.dumps(fmt), SANDBOX))


def sandbox_proxy(name="HTTP_PROXY"):
    """One proxy variable of the sandbox (never its whole env: API_KEY is in it)."""
    return APP.check_output("docker exec %s printenv %s" % (SANDBOX, name)).strip()


def gateway():
    return APP.check_output("docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' dify-sandbox")


def in_sandbox(script, *args):
    return APP.check_output("docker exec %s python3 -c %s %s"
                            % (SANDBOX, _quote(script), " ".join(_quote(a) for a in args)))


def from_app(script, *args):
    return APP.check_output("python3 -c %s %s" % (_quote(script), " ".join(_quote(a) for a in args)))


def _quote(text):
    return "'" + str(text).replace("'", "'\"'\"'") + "'"


def connect(where, targets):
    return json.loads(where(CONNECT, *targets))


def loopback_port():
    """A port some service of the app host listens on at 127.0.0.1 only (containerd's)."""
    for line in APP.check_output("ss -ltnH").splitlines():
        local = line.split()[3]
        if local.startswith("127.0.0.1:"):
            return local.split(":")[1]
    pytest.fail("no loopback-bound listener on the app host")


def forbidden_targets():
    """{target the sandbox must not reach: the same service asked from the app host (None: none in the lab)}."""
    app, data, gw, lo = address(APP), address(DATA), gateway(), loopback_port()
    same = dict((t, t) for t in ("%s:5432" % data, "%s:6379" % data, "%s:22" % data,   # private addresses: the
                                 "%s:5001" % gw, "%s:3000" % gw, "%s:22" % gw,         # data host; the host's own
                                 "%s:5001" % app, "%s:5002" % app))                   # services, gateway and address
    same.update({METADATA: None,                          # cloud metadata
                 "1.1.1.1:443": None,                     # the internet, directly
                 "%s:%s" % (gw, lo): "127.0.0.1:%s" % lo})  # a loopback-bound service, through the gateway
    return same


def assert_confined():
    targets = forbidden_targets()
    got = connect(in_sandbox, sorted(targets))
    leaked = dict((t, r) for t, r in got.items() if r != "EHOSTUNREACH")
    assert not leaked, "the sandbox reached (or was not refused by the firewall): %s" % leaked
    # The same services answer the app host itself: the refusals are the sandbox's.
    control = connect(from_app, sorted(set(c for c in targets.values() if c)))
    assert set(control.values()) == {"open"}, control
    proxy = sandbox_proxy().split("//", 1)[1]
    assert connect(in_sandbox, [proxy]) == {proxy: "open"}


def through_proxy(url):
    """Status of URL fetched through the sandbox's own HTTP_PROXY, from inside the sandbox."""
    return APP.check_output("docker exec %s sh -c %s" % (
        SANDBOX, _quote('curl -s -o /dev/null -w "%{http_code}" --max-time 10 -x "$HTTP_PROXY" ' + url)))


def test_sandbox_has_its_own_network_namespace():
    assert inspect("{{.HostConfig.NetworkMode}}") == "dify-sandbox"
    ip = inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    subnet = APP.check_output("docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' dify-sandbox")
    assert ip.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0]
    assert ip not in APP.check_output("hostname -I").split()
    # Its port is published on the host's fleet address only, not on every address.
    assert json.loads(inspect("{{json .NetworkSettings.Ports}}"))["8194/tcp"] == [
        {"HostIp": address(APP), "HostPort": "8194"}]
    # Its proxy is the SSRF proxy host's squid (this host runs none).
    assert sandbox_proxy() == sandbox_proxy("HTTPS_PROXY") == "http://%s:3128" % address(DATA)


def test_sandbox_reaches_nothing_but_the_proxy():
    assert_confined()


def test_proxy_serves_the_sandbox_but_not_its_manager_nor_private_targets():
    data = address(DATA)
    # the allow-listed target (web's /health on the app host) through squid
    assert through_proxy("http://%s:3000/health" % address(APP)) == "200"
    # private and metadata destinations: squid refuses them
    assert through_proxy("http://%s:5432/" % data) == "403"
    assert through_proxy("http://169.254.169.254/latest/meta-data/") == "403"
    # the cache manager: refused to the sandbox, both spellings ...
    assert through_proxy("http://%s:3128/squid-internal-mgr/info" % data) == "403"
    assert in_sandbox(RAW, data, 3128, "GET cache_object://%s/info HTTP/1.0" % data).strip() == "403"
    # ... while squid's own host gets it (the refusal is about the client)
    assert DATA.check_output("curl -s -o /dev/null -w '%{http_code}' -x http://127.0.0.1:3128 "
                             "http://127.0.0.1:3128/squid-internal-mgr/info") == "200"


def test_code_execution_path_through_squids_reverse_port_reaches_the_sandbox():
    """api -> squid's reverse port (8194 on the data host) -> the sandbox's published port."""
    # The key is read inside the api container (never on a command line or in output).
    out = APP.check_output(
        "docker exec dify-api sh -c %s"
        % _quote('curl -s -D - -o /dev/null -H "X-Api-Key: $CODE_EXECUTION_API_KEY" '
                 'http://%s:8194/v1/sandbox/dependencies' % address(DATA)))
    head = out.replace("\r", "").splitlines()
    assert head[0].split()[1] == "200"
    assert "x-difyops-probe: sandbox@mol-dify-app" in [h.lower() for h in head]


def test_confinement_survives_a_firewall_reload_and_a_docker_restart():
    APP.check_output("systemctl reload difyops-firewall")
    APP.check_output("systemctl restart docker")
    assert_confined()
    assert through_proxy("http://%s:3000/health" % address(APP)) == "200"
    assert DATA.check_output("curl -s -o /dev/null -w '%%{http_code}' http://%s:8194/health"
                             % address(APP)) == "200"
