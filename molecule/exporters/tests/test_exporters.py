"""Prometheus exporters, scraped over the network from another lab host."""

import os
import re
import shlex
import subprocess

import pytest
import testinfra


def _spec(name):
    # podman exec into the lab host (fast); the ansible backend costs a whole
    # ansible run per command.
    return "podman://%s" % name


# Scrapes are made from the scraper host unless said otherwise.
testinfra_hosts = [_spec("mol-exporters-scraper")]

EXPORTERS = {
    "node": {"port": 9100, "unit": "prometheus-node-exporter"},
    "postgres": {"port": 9187, "unit": "prometheus-postgres-exporter"},
    "redis": {"port": 9121, "unit": "prometheus-redis-exporter"},
    "nginx": {"port": 9113, "unit": "prometheus-nginx-exporter"},
}


@pytest.fixture(scope="module")
def lab():
    hosts = {role: testinfra.get_host(_spec("mol-exporters-" + role)) for role in ("host", "scraper")}
    addr = {role: h.check_output("hostname -I").split()[0] for role, h in hosts.items()}
    return hosts, addr


def scrape(client, address, port, path="/metrics"):
    """(exit status, body) of http://address:port/path fetched from `client`."""
    url = "http://%s:%d%s" % (address, port, path)
    code = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=15).read().decode())"
    res = client.run("python3 -c %s %s" % (shlex.quote(code), shlex.quote(url)))
    return res.rc, res.stdout


def metric(body, name):
    """Values of the samples of `name` (any labels) in a Prometheus text page."""
    return [
        float(m.group(1))
        for m in re.finditer(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), body, re.M)
    ]


@pytest.mark.parametrize("name", sorted(EXPORTERS))
def test_exporter_serves_metrics_on_the_private_address(host, lab, name):
    addr = lab[1]
    rc, body = scrape(host, addr["host"], EXPORTERS[name]["port"])
    assert rc == 0, body
    assert "# TYPE" in body


def test_node_metrics(host, lab):
    addr = lab[1]
    rc, body = scrape(host, addr["host"], 9100)
    assert rc == 0
    assert metric(body, "node_uname_info") == [1.0]
    assert metric(body, "node_memory_MemTotal_bytes")[0] > 0
    assert len(metric(body, "node_cpu_seconds_total")) > 0


def test_node_exporter_on_the_scraper_too(host, lab):
    """Every host of the tier runs the node exporter, each on its own address."""
    addr = lab[1]
    rc, body = scrape(host, addr["scraper"], 9100)
    assert rc == 0
    assert metric(body, "node_uname_info") == [1.0]
    # and only that one: the scraper is in no Dify group
    for name in ("postgres", "redis", "nginx"):
        assert not host.package(EXPORTERS[name]["unit"]).is_installed


def test_pg_up(host, lab):
    addr = lab[1]
    rc, body = scrape(host, addr["host"], 9187)
    assert rc == 0
    assert metric(body, "pg_up") == [1.0], body[:2000]
    # pg_monitor lets it read the statistics views too
    sizes = re.findall(r'^pg_database_size_bytes\{[^}]*datname="postgres"[^}]*\} (\S+)$', body, re.M)
    assert sizes and float(sizes[0]) > 0


def test_postgres_login_is_a_plain_monitoring_role(lab):
    pg = lab[0]["host"]
    out = pg.check_output(
        "runuser -u postgres -- psql -XAtc \"SELECT rolcanlogin, rolsuper, rolpassword IS NULL, "
        "pg_has_role('prometheus', 'pg_monitor', 'member') FROM pg_authid WHERE rolname = 'prometheus'\""
    )
    assert out.strip() == "t|f|t|t"


def test_redis_up(host, lab):
    addr = lab[1]
    rc, body = scrape(host, addr["host"], 9121)
    assert rc == 0
    # requirepass is set: only an authenticated scrape reads INFO
    assert metric(body, "redis_up") == [1.0], body[:2000]
    assert metric(body, "redis_connected_clients")[0] >= 1


def test_redis_password_in_a_private_file_not_on_the_command_line(lab):
    host = lab[0]["host"]
    env = host.file("/etc/default/prometheus-redis-exporter")
    assert env.mode == 0o640
    assert env.user == "root" and env.group == "prometheus"
    assert env.contains("^REDIS_PASSWORD=")
    pid = host.check_output("systemctl show -P MainPID prometheus-redis-exporter")
    cmdline = host.check_output("tr '\\0' ' ' < /proc/%s/cmdline" % pid)
    assert "R3d" not in cmdline and "--redis.addr=redis://127.0.0.1:6379" in cmdline


def test_nginx_up(host, lab):
    addr = lab[1]
    rc, body = scrape(host, addr["host"], 9113)
    assert rc == 0
    assert metric(body, "nginx_up") == [1.0], body[:2000]
    assert metric(body, "nginx_connections_accepted")[0] >= 1


def _listeners(host):
    """{port: set of local addresses} of the listening TCP sockets."""
    found = {}
    for line in host.check_output("ss -Htln").splitlines():
        local = line.split()[3]
        address, dummy, port = local.rpartition(":")
        found.setdefault(int(port), set()).add(address.strip("[]").split("%")[0])
    return found


def test_exporters_listen_on_the_private_address_only(lab):
    hosts, addr = lab
    for role, names in (("host", sorted(EXPORTERS)), ("scraper", ["node"])):
        listening = _listeners(hosts[role])
        for name in names:
            assert listening.get(EXPORTERS[name]["port"]) == {addr[role]}, (role, name, listening)


def test_never_listened_anywhere_else(lab):
    """Since installation (policy-rc.d held Debian's defaults back), every
    listener an exporter logged was on the private address."""
    hosts, addr = lab
    host = hosts["host"]
    for name in EXPORTERS:
        port = ":%d" % EXPORTERS[name]["port"]
        log = host.check_output("journalctl -o cat --no-pager -u %s" % EXPORTERS[name]["unit"])
        announced = [line for line in log.splitlines()
                     if port in line and ("Listening on" in line or "Providing metrics at" in line)]
        assert announced, (name, log)
        assert all(addr["host"] + port in line for line in announced), (name, announced)


def test_loopback_is_not_served(lab):
    host = lab[0]["host"]
    for name in EXPORTERS:
        rc, dummy = scrape(host, "127.0.0.1", EXPORTERS[name]["port"])
        assert rc != 0, name


def test_units_enabled_and_running(lab):
    host = lab[0]["host"]
    for name in EXPORTERS:
        unit = host.service(EXPORTERS[name]["unit"])
        assert unit.is_enabled and unit.is_running, name


def _converge(tmp_path, role_vars):
    """Run the role on the exporters' host with more variables."""
    play = tmp_path / "play.yml"
    lines = ["- hosts: mol-exporters-host", "  gather_facts: true", "  roles:",
             "    - role: difyops.fleet.exporters", "      vars:"]
    lines += ["        %s: %s" % (k, v) for k, v in role_vars.items()]
    play.write_text("\n".join(lines) + "\n")
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(play)],
        capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )


def _main_pid(host, unit):
    return host.check_output("systemctl show -P MainPID %s" % unit).strip()


def test_a_flag_the_exporter_refuses_never_replaces_the_live_file(lab, tmp_path):
    hosts, addr = lab
    host = hosts["host"]
    path = "/etc/default/prometheus-nginx-exporter"
    before = host.file(path).sha256sum
    pid = _main_pid(host, "prometheus-nginx-exporter")
    res = _converge(tmp_path, {"exporters_nginx_args": "['--no-such-flag=1']"})
    assert res.returncode != 0
    assert "failed to validate" in res.stdout + res.stderr, res.stdout + res.stderr
    assert host.file(path).sha256sum == before
    assert _main_pid(host, "prometheus-nginx-exporter") == pid
    rc, body = scrape(hosts["scraper"], addr["host"], 9113)
    assert rc == 0 and metric(body, "nginx_up") == [1.0]


def test_changed_arguments_restart_the_exporter(lab, tmp_path):
    hosts, addr = lab
    host = hosts["host"]
    pid = _main_pid(host, "prometheus-nginx-exporter")
    res = _converge(tmp_path, {"exporters_nginx_args": "['--nginx.timeout=7s']"})
    assert res.returncode == 0, res.stdout + res.stderr
    new_pid = _main_pid(host, "prometheus-nginx-exporter")
    assert new_pid != pid
    cmdline = host.check_output("tr '\\0' ' ' < /proc/%s/cmdline" % new_pid)
    assert "--nginx.timeout=7s" in cmdline
    rc, body = scrape(hosts["scraper"], addr["host"], 9113)
    assert rc == 0 and metric(body, "nginx_up") == [1.0]
