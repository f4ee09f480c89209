"""Issue 14: the sandbox runs in its own network namespace whose only way out is the SSRF proxy.
Issue 15: Dify 1.16's local sandbox runs in another one, whose only way out is the agent SSRF proxy.

The app host runs the sandbox and the local sandbox next to every other Dify
service (a shared host); the SSRF proxy is squid on the data host (3128), the
agent proxy a second squid there (3129). Every connection below is made from
INSIDE the sandbox's or the local sandbox's container (docker exec) and compared
with the same target asked from the app host's own namespace, so a refusal can
only come from the container's network and the firewall (nft's reject answers
EHOSTUNREACH; nothing listening would answer ECONNREFUSED).
"""

import ipaddress
import json

import pytest
import testinfra

APP = testinfra.get_host("podman://mol-dify-app")
DATA = testinfra.get_host("podman://mol-dify-data")
testinfra_hosts = ["mol-dify-app"]
SANDBOX = "dify-sandbox"
LOCAL = "dify-local_sandbox"      # the container; its network and bridge: the catalog's local_sandbox_network
LOCAL_NETWORK = "dify-local-sandbox"
LOCAL_BRIDGE = "dify-local-sbx"
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


def inspect(fmt, container=SANDBOX):
    return APP.check_output("docker inspect -f %s %s" % (_quote(fmt), container))


def sandbox_proxy(name="HTTP_PROXY", container=SANDBOX):
    """One proxy variable of a sandbox (never its whole env: API_KEY or the shellctl token is in it)."""
    return APP.check_output("docker exec %s printenv %s" % (container, name)).strip()


def network(field, name="dify-sandbox"):
    return APP.check_output("docker network inspect -f '{{range .IPAM.Config}}{{.%s}}{{end}}' %s" % (field, name))


def gateway(name="dify-sandbox"):
    return network("Gateway", name)


def in_container(container, script, *args):
    return APP.check_output("docker exec %s python3 -c %s %s"
                            % (container, _quote(script), " ".join(_quote(a) for a in args)))


def in_sandbox(script, *args):
    return in_container(SANDBOX, script, *args)


def in_local_sandbox(script, *args):
    return in_container(LOCAL, script, *args)


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
                                 "%s:5001" % app, "%s:5002" % app,                    # services, gateway and address
                                 "%s:3129" % data))                                   # the agent proxy (issue 15)
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


def through_proxy(url, container=SANDBOX):
    """Status of URL fetched through the container's own HTTP_PROXY, from inside it."""
    return APP.check_output("docker exec %s sh -c %s" % (
        container, _quote('curl -s -o /dev/null -w "%{http_code}" --max-time 10 -x "$HTTP_PROXY" ' + url)))


def local_forbidden_targets():
    """{target the local sandbox must not reach: the same service asked from the app host (None: none in the lab)}."""
    app, data, gw = address(APP), address(DATA), gateway(LOCAL_NETWORK)
    same = dict((t, t) for t in ("%s:3128" % data,                                    # the ordinary SSRF proxy
                                 "%s:5432" % data, "%s:6379" % data, "%s:22" % data,  # database, Redis, ssh
                                 "%s:5001" % app, "%s:5050" % app, "%s:8194" % app,   # api, agent backend, sandbox
                                 "%s:5001" % gw, "%s:22" % gw))                       # the host at the gateway
    same.update({METADATA: None, "1.1.1.1:443": None,
                 "%s:3128" % gateway(): None})  # the sandbox's network's gateway (no squid on this host)
    return same


def assert_local_sandbox_confined():
    targets = local_forbidden_targets()
    got = connect(in_local_sandbox, sorted(targets))
    leaked = dict((t, r) for t, r in got.items() if r != "EHOSTUNREACH")
    assert not leaked, "the local sandbox reached (or was not refused by the firewall): %s" % leaked
    control = connect(from_app, sorted(set(c for c in targets.values() if c)))
    assert set(control.values()) == {"open"}, control
    proxy = sandbox_proxy(container=LOCAL).split("//", 1)[1]
    assert connect(in_local_sandbox, [proxy]) == {proxy: "open"}


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


def test_local_sandbox_has_a_network_of_its_own():
    assert inspect("{{.HostConfig.NetworkMode}}", LOCAL) == LOCAL_NETWORK
    subnet, sandbox_subnet = network("Subnet", LOCAL_NETWORK), network("Subnet")
    assert ipaddress.ip_network(subnet).overlaps(ipaddress.ip_network(sandbox_subnet)) is False
    ip = inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", LOCAL)
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
    # the bridge the firewall fences carries the gateway
    assert gateway(LOCAL_NETWORK) + "/" in APP.check_output("ip -4 -o addr show dev %s" % LOCAL_BRIDGE)
    # the sandbox is not on it, nor the local sandbox on the sandbox's
    assert inspect("{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}").split() == ["dify-sandbox"]
    assert inspect("{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", LOCAL).split() == [LOCAL_NETWORK]
    # its port is published on the host's fleet address only, for the agent backend
    assert json.loads(inspect("{{json .NetworkSettings.Ports}}", LOCAL))["5004/tcp"] == [
        {"HostIp": address(APP), "HostPort": "5004"}]
    # its proxy is the agent proxy on the data host (this host runs none)
    assert sandbox_proxy(container=LOCAL) == sandbox_proxy("HTTPS_PROXY", LOCAL) == "http://%s:3129" % address(DATA)


def test_local_sandbox_reaches_nothing_but_the_agent_proxy():
    assert_local_sandbox_confined()


def test_agent_proxy_serves_the_local_sandbox_its_allowed_urls_only():
    app = address(APP)
    # upstream's agent rule: the agent backend's /agent-stub/ paths; the probe standing in for the
    # agent backend answers (404: it serves no stub), so the request went through squid to it
    out = APP.check_output("docker exec %s sh -c %s" % (LOCAL, _quote(
        'curl -s -D - -o /dev/null --max-time 10 -x "$HTTP_PROXY" http://%s:5050/agent-stub/ping' % app)))
    head = out.replace("\r", "").splitlines()
    assert head[0].split()[1] == "404", head
    assert "x-difyops-probe: agent_backend@mol-dify-app" in [h.lower() for h in head]
    # other paths of the agent backend, private and metadata destinations: squid refuses them
    assert through_proxy("http://%s:5050/openapi.json" % app, LOCAL) == "403"
    assert through_proxy("http://%s:5432/" % address(DATA), LOCAL) == "403"
    assert through_proxy("http://169.254.169.254/latest/meta-data/", LOCAL) == "403"


def test_confinement_survives_a_firewall_reload_and_a_docker_restart():
    APP.check_output("systemctl reload difyops-firewall")
    APP.check_output("systemctl restart docker")
    assert_confined()
    assert_local_sandbox_confined()
    assert through_proxy("http://%s:3000/health" % address(APP)) == "200"
    assert DATA.check_output("curl -s -o /dev/null -w '%%{http_code}' http://%s:8194/health"
                             % address(APP)) == "200"
