"""What the SSRF proxy does for real clients: requests through squid from lab hosts."""

from proxy_helpers import PUBLIC_URL, assert_refused, fetch, served

# Requests are made from the api host (a fleet client) unless said otherwise.
testinfra_hosts = ["podman://mol-ssrf_proxy-api"]


def test_public_destination_is_served(host, lab):
    addr = lab[1]
    assert "Codename: trixie" in served(fetch(host, addr["proxy"], PUBLIC_URL))


def test_private_listener_of_another_host_is_refused(host, lab):
    addr = lab[1]
    # The listener is up and reachable without the proxy ...
    direct = host.run("curl -sS --max-time 10 http://%s:8080/" % addr["proxy"])
    assert direct.stdout.strip() == "fixture:mol-ssrf_proxy-proxy"
    # ... but the proxy refuses to fetch it.
    assert_refused(fetch(host, addr["proxy"], "http://%s:8080/" % addr["proxy"]))


def test_loopback_and_metadata_are_refused(host, lab):
    addr = lab[1]
    assert_refused(fetch(host, addr["proxy"], "http://127.0.0.1:8080/"))
    assert_refused(fetch(host, addr["proxy"], "http://localhost:8080/"))
    assert_refused(fetch(host, addr["proxy"], "http://169.254.169.254/latest/meta-data/"))


def test_allow_listed_private_ip_is_served(host, lab):
    addr = lab[1]
    body = served(fetch(host, addr["proxy"], "http://%s:8080/" % addr["sandbox"]))
    assert body.strip() == "fixture:mol-ssrf_proxy-sandbox"


def test_allow_listed_private_domain_is_served_but_not_its_address(host, lab):
    addr = lab[1]
    body = served(fetch(host, addr["proxy"], "http://internal-api.lab:8080/"))
    assert body.strip() == "fixture:mol-ssrf_proxy-api"
    assert_refused(fetch(host, addr["proxy"], "http://%s:8080/" % addr["api"]))


def test_connect_only_to_443(host, lab):
    addr = lab[1]
    # A tunnel to a non-443 port of an allowed destination: refused by squid.
    refused = host.run(
        "curl -s -o /dev/null --max-time 20 -w '%%{http_connect}' -p -x http://%s:3128 http://%s:8080/"
        % (addr["proxy"], addr["sandbox"])
    )
    assert refused.stdout.strip() == "403"
    # The same destination on 443 passes the rules: squid tries to connect
    # (nothing listens there, so it reports a connect failure, not a denial).
    tried = host.run(
        "curl -s -o /dev/null --max-time 40 -w '%%{http_connect}' -p -x http://%s:3128 https://%s:443/"
        % (addr["proxy"], addr["sandbox"])
    )
    assert tried.stdout.strip() in ("503", "502"), tried.stdout


def test_reverse_proxy_reaches_the_sandbox(host, lab):
    addr = lab[1]
    out = host.check_output("curl -sS --max-time 20 http://%s:8194/health" % addr["proxy"])
    assert out.strip() == "sandbox-fixture:mol-ssrf_proxy-sandbox"
    # Whatever Host it is given, the reverse port only ever talks to the sandbox.
    out = host.check_output(
        "curl -sS --max-time 20 -H 'Host: 169.254.169.254' http://%s:8194/health" % addr["proxy"]
    )
    assert out.strip() == "sandbox-fixture:mol-ssrf_proxy-sandbox"


def test_host_outside_the_fleet_is_refused(lab):
    hosts, addr = lab
    outsider = hosts["proxy"]  # not in dify_api/worker/sandbox/plugin_daemon; not via loopback
    assert_refused(fetch(outsider, addr["proxy"], PUBLIC_URL))
    assert_refused(fetch(outsider, addr["proxy"], "http://%s:8080/" % addr["sandbox"]))
    status = outsider.check_output(
        "curl -s -o /dev/null --max-time 20 -w '%%{http_code}' http://%s:8194/health" % addr["proxy"]
    )
    assert status == "403"


def test_squid_runs_the_managed_config(lab):
    hosts = lab[0]
    proxy = hosts["proxy"]
    assert proxy.service("squid").is_running
    assert proxy.service("squid").is_enabled
    conf = proxy.file("/etc/squid/squid.conf")
    assert conf.contains("difyops.fleet.ssrf_proxy")
    assert proxy.run("squid -k parse -f /etc/squid/squid.conf").rc == 0
    sockets = proxy.check_output("ss -Htln")
    assert ":3128 " in sockets and ":8194 " in sockets


def test_special_purpose_ranges_are_refused_by_the_live_config(lab):
    """The deny list (roles/ssrf_proxy/vars/main.yml) reached squid whole: NAT64, 6to4 and the other
    IANA special-purpose ranges, and squid dropped none of them as overlapping another."""
    proxy = lab[0]["proxy"]
    conf = proxy.file("/etc/squid/squid.conf").content_string
    for network in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/23",
                    "fec0::/10", "ff00::/8", "192.0.0.0/24", "240.0.0.0/4", "169.254.0.0/16"):
        assert "acl to_private_networks dst %s\n" % network in conf, network
    # squid reads ::ffff:0:0/96 as all of IPv4; IPv4-mapped destinations meet the IPv4 entries
    assert "::ffff:0:0/96" not in conf
    parsed = proxy.run("squid -k parse -f /etc/squid/squid.conf")
    assert parsed.rc == 0, parsed.stderr
    assert "subnetwork" not in parsed.stdout + parsed.stderr, parsed.stdout + parsed.stderr


def test_config_squid_rejects_never_replaces_the_live_file(lab, tmp_path):
    """A value squid cannot parse fails the run; the running config stays and keeps serving."""
    import os
    import subprocess

    hosts, addr = lab
    proxy = hosts["proxy"]
    before = proxy.file("/etc/squid/squid.conf").sha256sum
    play = tmp_path / "bad.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: true\n  tasks: []\n"
        "- hosts: dify_ssrf_proxy\n  become: true\n  gather_facts: false\n"
        "  roles:\n    - role: difyops.fleet.ssrf_proxy\n"
        "      vars:\n        ssrf_proxy_cache_mem: plenty of memory\n"
    )
    res = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(play)],
        capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    assert res.returncode != 0
    assert "failed to validate" in res.stdout + res.stderr, res.stdout + res.stderr
    assert proxy.file("/etc/squid/squid.conf").sha256sum == before
    assert proxy.service("squid").is_running
    body = served(fetch(hosts["api"], addr["proxy"], "http://%s:8080/" % addr["sandbox"]))
    assert body.strip() == "fixture:mol-ssrf_proxy-sandbox"
