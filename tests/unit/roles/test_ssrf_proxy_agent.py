# -*- coding: utf-8 -*-
"""roles/ssrf_proxy: the agent proxy's config (squid-agent.conf.j2), rendered as the role writes it.

The role's defaults and vars on a local connection (the collection's filters,
the release data), then ``squid -k parse`` of the file when squid is
installed (nothing is started). What squid does with it is tested on hosts by
molecule ssrf_proxy.
"""

from __future__ import annotations

import os
import re

import yaml
from role_render import render_template, squid_parse

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_ROLE = os.path.join(_TOP, "roles", "ssrf_proxy")

HOSTS = {"proxy": "10.8.0.1", "api": "10.8.0.2", "box": "10.8.0.3", "agent": "10.8.0.4", "lsb": "10.8.0.5"}
GROUPS = {"dify_ssrf_proxy": ["proxy"], "dify_agent_ssrf_proxy": ["proxy"], "dify_api": ["api"],
          "dify_worker": ["api"], "dify_sandbox": ["box"], "dify_agent_backend": ["agent"],
          "dify_local_sandbox": ["lsb"]}


def private_networks():
    with open(os.path.join(_ROLE, "vars", "main.yml")) as f:
        return yaml.safe_load(f)["__ssrf_proxy_private_networks"]


def render(tmp_path, extra_vars=None, groups=None, host_vars=None):
    """(ansible-playbook result, squid-agent.conf text) as the role writes it on host ``proxy``."""
    return render_template(tmp_path, "ssrf_proxy", "squid-agent.conf.j2", "proxy", HOSTS, groups or GROUPS,
                           extra_vars, host_vars)


def test_upstream_rules_in_order_with_fleet_addresses(tmp_path):
    res, text = render(tmp_path, {"dify_version": "1.16.1"})
    assert res.returncode == 0, res.stdout + res.stderr
    rules = re.findall(r"^http_access .*$", text, re.M)
    assert rules == [
        "http_access deny manager",
        "http_access deny !agent_clients",
        "http_access deny !Safe_ports",
        "http_access deny CONNECT !SSL_ports",
        "http_access allow dst_agent_backend dst_agent_backend_port path_agent_stub",
        "http_access allow dst_dify_api dst_dify_api_port path_files",
        "http_access deny to_private_networks",
        "http_access allow all",
        "http_access deny all",
    ]
    assert "acl agent_clients src 10.8.0.5\n" in text
    assert "acl dst_agent_backend dst 10.8.0.4\n" in text
    assert "acl dst_agent_backend_port port 5050\n" in text
    assert "acl dst_dify_api dst 10.8.0.2\n" in text
    assert "acl dst_dify_api_port port 5001\n" in text
    assert "acl path_agent_stub urlpath_regex -i ^/agent-stub/\n" in text
    assert "acl path_files urlpath_regex -i ^/files/\n" in text
    assert re.findall(r"^acl to_private_networks dst (\S+)$", text, re.M) == private_networks()
    assert re.findall(r"^http_port .*$", text, re.M) == ["http_port 10.8.0.1:3129 name=agent"]
    # its own files: nothing shared with the first squid
    for line in ("pid_filename /run/squid-agent/squid.pid", "cache_log /var/log/squid-agent/cache.log",
                 "access_log daemon:/var/log/squid-agent/access.log squid", "coredump_dir /var/spool/squid-agent"):
        assert line + "\n" in text
    assert "include" not in text
    out = squid_parse(text, tmp_path)
    if out is not None:
        assert "is ignored" not in out and "subnetwork" not in out, out
        assert out.count("Processing: acl to_private_networks dst ") == len(private_networks())


def test_port_variables_listen_addresses_and_extra_clients(tmp_path):
    res, text = render(tmp_path, {"dify_version": "1.16.1", "ssrf_proxy_agent_port": 3300,
                                  "ssrf_proxy_agent_listen_addresses": ["10.8.0.1", "172.30.5.1"],
                                  "ssrf_proxy_agent_clients_extra": ["172.30.5.0/24"]},
                       host_vars={"agent": {"dify_agent_backend_port": 5055}})
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.findall(r"^http_port .*$", text, re.M) == [
        "http_port 10.8.0.1:3300 name=agent", "http_port 172.30.5.1:3300 name=agent"]
    assert "acl agent_clients src 10.8.0.5 172.30.5.0/24\n" in text
    assert "acl dst_agent_backend_port port 5055\n" in text
    squid_parse(text, tmp_path)


def test_without_agent_backend_hosts_its_rule_is_left_out(tmp_path):
    groups = dict(GROUPS)
    del groups["dify_agent_backend"]
    res, text = render(tmp_path, {"dify_version": "1.16.1"}, groups=groups)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "dst_agent_backend" not in re.sub(r"^#.*$", "", text, flags=re.M)
    assert "http_access allow dst_dify_api dst_dify_api_port path_files\n" in text
    squid_parse(text, tmp_path)


def test_a_host_that_also_runs_the_local_sandbox(tmp_path):
    """Role dify runs the local sandbox in a network of its own, pointed at the agent port at its gateway:
    that subnet (not the sandbox's) is a client and the proxy listens on every address (the gateway appears
    later in the run)."""
    groups = dict(GROUPS, dify_local_sandbox=["lsb", "proxy"])
    res, text = render(tmp_path, {"dify_version": "1.16.1"}, groups=groups)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.findall(r"^http_port .*$", text, re.M) == ["http_port 3129 name=agent"]
    assert "acl agent_clients src 10.8.0.5 10.8.0.1 172.29.195.0/24\n" in text
    res, text = render(tmp_path, {"dify_version": "1.16.1", "dify_local_sandbox_network_subnet": "10.250.0.0/24",
                                  "dify_sandbox_network_subnet": "10.251.0.0/24"}, groups=groups)
    assert "acl agent_clients src 10.8.0.5 10.8.0.1 10.250.0.0/24\n" in text
    squid_parse(text, tmp_path)
