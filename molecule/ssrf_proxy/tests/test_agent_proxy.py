"""The agent SSRF proxy (Dify 1.16+): a second squid with upstream's agent rules, for the local sandbox.

Requests are made from the sandbox host, which is the lab's dify_local_sandbox
host (the agent proxy's client). The api host is the dify_agent_backend host:
stand-ins answer there on 5050 (/agent-stub/ping, /other/ping) and 5001
(/files/ping), so a refusal below is squid's rule, not a missing listener.
"""

import os
import subprocess

import pytest

from proxy_helpers import AGENT_PORT, PUBLIC_URL, assert_refused, fetch, served

testinfra_hosts = ["podman://mol-ssrf_proxy-sandbox"]


def agent_fetch(host, proxy, url):
    """fetch() through the agent squid."""
    return fetch(host, proxy, url, port=AGENT_PORT)


# /agent-stub/ on an agent backend (5050), /files/ on the Dify api (5001)
@pytest.mark.parametrize("port, path", [(5050, "/agent-stub/ping"), (5001, "/files/ping")], ids=["agent_stub", "files"])
def test_upstream_agent_destinations_are_served(host, lab, port, path):
    addr = lab[1]
    body = served(agent_fetch(host, addr["proxy"], "http://%s:%d%s" % (addr["api"], port, path)))
    assert body.strip() == "ping:mol-ssrf_proxy-api"


def test_other_paths_of_the_agent_backend_are_refused(host, lab):
    addr = lab[1]
    # The stand-in serves /other/ping to a direct request ...
    direct = host.check_output("curl -sS --max-time 10 http://%s:5050/other/ping" % addr["api"])
    assert direct.strip() == "ping:mol-ssrf_proxy-api"
    # ... the agent proxy refuses it, and /agent-stub/ on another port of that host
    assert_refused(agent_fetch(host, addr["proxy"], "http://%s:5050/other/ping" % addr["api"]))
    assert_refused(agent_fetch(host, addr["proxy"], "http://%s:8080/agent-stub/ping" % addr["api"]))


def test_metadata_and_private_addresses_are_refused(host, lab):
    addr = lab[1]
    assert_refused(agent_fetch(host, addr["proxy"], "http://169.254.169.254/latest/meta-data/"))
    assert_refused(agent_fetch(host, addr["proxy"], "http://%s:8080/" % addr["proxy"]))
    assert_refused(agent_fetch(host, addr["proxy"], "http://127.0.0.1:8080/"))
    # the first squid's allow-list (the sandbox host's address) is not the agent proxy's
    assert_refused(agent_fetch(host, addr["proxy"], "http://%s:8080/" % addr["sandbox"]))


def test_public_internet_is_served(host, lab):
    addr = lab[1]
    assert "Codename: trixie" in served(agent_fetch(host, addr["proxy"], PUBLIC_URL))


def test_hosts_that_are_not_local_sandboxes_are_refused(lab):
    hosts, addr = lab
    # the api host is a client of the first squid, not of the agent proxy
    assert_refused(agent_fetch(hosts["api"], addr["proxy"], "http://%s:5050/agent-stub/ping" % addr["api"]))
    assert_refused(agent_fetch(hosts["api"], addr["proxy"], PUBLIC_URL))


def test_two_instances_with_their_own_files(lab):
    hosts, addr = lab
    proxy = hosts["proxy"]
    for unit in ("squid", "squid-agent"):
        assert proxy.service(unit).is_running, unit
        assert proxy.service(unit).is_enabled, unit
    assert proxy.run("squid -k parse -f /etc/squid/squid-agent.conf").rc == 0
    sockets = proxy.check_output("ss -Htlnp")
    agent = [line for line in sockets.splitlines() if ":%d " % AGENT_PORT in line]
    # only on the fleet address, not on every address
    assert len(agent) == 1 and "%s:%d " % (addr["proxy"], AGENT_PORT) in agent[0], agent
    pids = {unit: proxy.check_output("systemctl show -P MainPID %s" % unit) for unit in ("squid", "squid-agent")}
    assert pids["squid"] != pids["squid-agent"] and "0" not in pids.values()
    assert proxy.file("/run/squid-agent/squid.pid").content_string.strip() == pids["squid-agent"]
    assert proxy.file("/var/log/squid-agent/access.log").contains("/agent-stub/ping")
    assert not proxy.file("/var/log/squid/access.log").contains("/agent-stub/ping")


def test_a_rule_change_reloads_only_the_agent_proxy(lab):
    """A changed agent config is validated, installed and applied with a reload of that instance: its
    main process stays, the first squid is not touched, and the new rule is in force."""
    hosts, addr = lab
    proxy = hosts["proxy"]

    def pids():
        return {unit: proxy.check_output("systemctl show -P MainPID %s" % unit) for unit in ("squid", "squid-agent")}

    before = pids()
    first_conf = proxy.file("/etc/squid/squid.conf").sha256sum
    assert_refused(agent_fetch(hosts["api"], addr["proxy"], "http://%s:5050/agent-stub/ping" % addr["api"]))
    # converge.yml again with the api host as an extra client of the agent proxy
    res = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "converge.yml"),
         "-e", '{"ssrf_proxy_agent_clients_extra": ["%s/32"]}' % addr["api"]],
        capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "RUNNING HANDLER [difyops.fleet.ssrf_proxy : Reload the agent squid]" in res.stdout, res.stdout[-3000:]
    assert "RUNNING HANDLER [difyops.fleet.ssrf_proxy : Restart the agent squid]" not in res.stdout
    assert "RUNNING HANDLER [difyops.fleet.ssrf_proxy : Reload squid]" not in res.stdout
    assert pids() == before
    assert proxy.file("/etc/squid/squid.conf").sha256sum == first_conf
    served(agent_fetch(hosts["api"], addr["proxy"], "http://%s:5050/agent-stub/ping" % addr["api"]))
