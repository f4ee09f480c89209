"""Real TCP connections between the lab hosts, checked against the fleet rules.

Every host runs a fixture listener on all the fleet's ports, so a failed
connection can only come from the firewall. Hosts:
  data    dify_postgres, dify_redis, dify_sentinel, dify_edge
  app     dify_api, dify_worker, dify_ssrf_proxy
  sandbox dify_sandbox, dify_ssrf_proxy (egress restricted to the SSRF proxies;
          the namespace sbx behind the bridge dify-sandbox stands in for the
          sandbox container's own network)
  outside no fleet group (extra rules open 9000 and 80 to anyone)
"""
import json
import shlex

import pytest

PREFIX = "mol-firewall-"

# (destination, port) -> set of source hosts that must get through; any
# source not listed must be blocked.
ALLOWED = {
    ("data", 22): {"app", "outside"},          # sandbox: egress restricted
    ("data", 5432): {"app"},
    ("data", 6379): {"app"},
    ("data", 26379): {"app"},
    ("data", 80): {"app", "outside"},          # edge: anyone (sandbox egress aside)
    ("data", 443): {"app", "outside"},
    ("data", 5001): set(),
    ("data", 8194): set(),
    ("app", 22): {"data", "outside"},
    ("app", 5001): {"data"},                   # api from the edge
    ("app", 3128): {"sandbox"},                # squid from the sandbox (app itself is api)
    ("app", 8194): set(),                      # squid reverse: api/worker only (itself)
    ("app", 5432): set(),
    ("app", 6379): set(),
    ("app", 3000): set(),
    ("sandbox", 22): {"data", "app", "outside"},
    ("sandbox", 8194): {"app"},                # api/worker and the SSRF proxy
    ("sandbox", 5432): set(),
    ("sandbox", 3128): {"app"},                # its squid: api/worker (and its own sandbox network)
    ("outside", 22): {"data", "app"},          # sandbox: egress restricted
    ("outside", 9000): {"data", "app"},        # extra rule; sandbox egress blocks it
    ("outside", 80): {"data", "app"},
    ("outside", 5432): set(),
    ("outside", 5001): set(),
    ("outside", 6379): set(),
}
HOSTS = ("data", "app", "sandbox", "outside")


def short(host):
    return host.backend.get_hostname().replace(PREFIX, "")


def probe(host, targets, user=None):
    cmd = "/usr/local/bin/fixture-probe.py " + " ".join(targets)
    if user:
        cmd = "runuser -u %s -- %s" % (user, cmd)
    out = host.check_output(cmd)
    return json.loads(out)


def test_connections_match_the_fleet_rules(host):
    me = short(host)
    targets = {
        "%s%s:%d" % (PREFIX, dst, port): (me in allowed)
        for (dst, port), allowed in ALLOWED.items()
        if dst != me
    }
    got = probe(host, sorted(targets))
    wrong = {t: ("open" if got[t] else "blocked") for t in targets if got[t] != targets[t]}
    assert not wrong, "from %s, unexpected: %s" % (me, wrong)


def test_loopback_and_tables(host):
    me = short(host)
    # Loopback is always allowed: a host's own clients keep working.
    got = probe(host, ["127.0.0.1:5432", "127.0.0.1:6379", "127.0.0.1:5001"])
    assert all(got.values()), got
    # Default deny inbound, in our own table, loaded by an enabled unit.
    assert "policy drop" in host.check_output("nft list chain inet difyops input")
    assert host.service("difyops-firewall").is_enabled
    egress = "chain output" in host.check_output("nft list table inet difyops")
    assert egress == (me == "sandbox"), "egress is restricted on the sandbox host only"


def test_foreign_tables_survive_a_reload(host):
    # Docker's tables stand-in on app, created before the role ran.
    if short(host) != "app":
        pytest.skip("the stand-in table is on the app host")
    assert "table ip docker_standin" in host.check_output("nft list tables")
    host.check_output("systemctl reload difyops-firewall")
    tables = host.check_output("nft list tables")
    assert "table ip docker_standin" in tables and "table inet difyops" in tables


def test_table_is_restored_when_missing(host):
    # What a stray `nft flush ruleset` would do: the unit reload restores it.
    if short(host) != "outside":
        pytest.skip("destructive check done on one host")
    host.check_output("nft delete table inet difyops")
    assert "difyops" not in host.check_output("nft list tables")
    host.check_output("systemctl reload difyops-firewall")
    assert "table inet difyops" in host.check_output("nft list tables")


def test_sandbox_egress_exceptions(host):
    if short(host) != "sandbox":
        pytest.skip("egress restriction applies to the sandbox host only")
    # DNS is an exception: the podman resolver answers.
    assert host.run("getent hosts %sapp" % PREFIX).rc == 0
    out = host.check_output(
        "runuser -u _apt -- /usr/local/bin/fixture-probe.py %(p)soutside:80; "
        "/usr/local/bin/fixture-probe.py %(p)soutside:80; "
        "runuser -u nobody -- /usr/local/bin/fixture-probe.py %(p)soutside:9000" % {"p": PREFIX})
    as_apt, as_root, as_nobody = [json.loads(line) for line in out.splitlines()]
    # apt's downloader account may reach port 80 (the mirror); root may not,
    # nor any other account on a port open to everyone.
    assert as_apt == {PREFIX + "outside:80": True}
    assert as_root == {PREFIX + "outside:80": False}
    assert as_nobody == {PREFIX + "outside:9000": False}


# Connect from the sandbox's network namespace; print {target: "open" | errno name | "timeout"}.
CONNECT = (
    "import errno, json, socket, sys\n"
    "out = {}\n"
    "for t in sys.argv[1:]:\n"
    "    s = socket.socket(); s.settimeout(3)\n"
    "    try:\n"
    "        s.connect((t.rsplit(':', 1)[0], int(t.rsplit(':', 1)[1]))); out[t] = 'open'\n"
    "    except socket.timeout:\n"
    "        out[t] = 'timeout'\n"
    "    except OSError as exc:\n"
    "        out[t] = errno.errorcode.get(exc.errno, str(exc.errno))\n"
    "    s.close()\n"
    "print(json.dumps(out))\n")


def test_sandbox_network_gets_out_only_to_squid(host):
    """Issue 14: from the sandbox's own network only squid's port, at its gateway (squid on this host)
    and on the other SSRF proxy host; everything else is rejected by the firewall (EHOSTUNREACH), where
    the fixture listeners would answer (see ALLOWED)."""
    if short(host) != "sandbox":
        pytest.skip("the sandbox's network is on the sandbox host")
    addr = dict((h, host.check_output("getent ahostsv4 %s%s | head -1 | cut -d' ' -f1" % (PREFIX, h)))
                for h in HOSTS)
    allowed = ["172.29.194.1:3128", "%s:3128" % addr["app"]]
    refused = ["169.254.169.254:80", "172.29.194.1:22", "172.29.194.1:8194", "%s:22" % addr["sandbox"],
               "%s:5432" % addr["data"], "%s:6379" % addr["data"], "%s:5001" % addr["app"],
               "%s:9000" % addr["outside"], "%s:80" % addr["outside"]]
    got = json.loads(host.check_output("ip netns exec sbx python3 -c %s %s"
                                       % (shlex.quote(CONNECT), " ".join(allowed + refused))))
    assert dict((t, got[t]) for t in allowed) == dict((t, "open") for t in allowed)
    assert dict((t, got[t]) for t in refused) == dict((t, "EHOSTUNREACH") for t in refused)
