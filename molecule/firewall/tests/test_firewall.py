"""Real TCP connections between the lab hosts, checked against the fleet rules.

Every host runs a fixture listener on all the fleet's ports, so a failed
connection can only come from the firewall. Hosts:
  data    dify_postgres, dify_redis, dify_sentinel, dify_edge
  app     dify_api, dify_worker, dify_ssrf_proxy
  sandbox dify_sandbox (egress restricted to the SSRF proxy)
  outside no fleet group (extra rules open 9000 and 80 to anyone)
"""
import json

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
    ("sandbox", 3128): set(),
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
