# -*- coding: utf-8 -*-
"""roles/firewall: the rules it computes (tasks/rules.yml, from the service
catalog) and the nftables file it writes, rendered by ansible-playbook on a
local connection for a fake fleet. No firewall is loaded; the rendered file
is checked with ``nft -c`` when nft is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

ADDRESSES = {"data": "10.7.0.1", "app": "10.7.0.2", "box": "10.7.0.3", "edge": "10.7.0.4"}
GROUPS = {
    "dify_postgres": ["data"], "dify_redis": ["data"], "dify_sentinel": ["data"],
    "dify_api": ["app"], "dify_worker": ["app"], "dify_beat": ["app"], "dify_web": ["app"],
    "dify_plugin_daemon": ["app"], "dify_sandbox": ["box"], "dify_ssrf_proxy": ["box"], "dify_edge": ["edge"],
}


def render(tmp_path, host, host_vars=None, all_vars=None):
    """The firewall file the role would write on ``host``."""
    children = {}
    for group, hosts in GROUPS.items():
        children[group] = {"hosts": dict((h, None) for h in hosts)}
    inv = {"all": {
        "hosts": dict((h, dict({"difyops_address": a}, **((host_vars or {}).get(h) or {})))
                      for h, a in ADDRESSES.items()),
        "children": children,
        "vars": dict({"ansible_connection": "local",
                      "ansible_python_interpreter": "{{ ansible_playbook_python }}"}, **(all_vars or {}))}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = %s/.collections\n"
                                          "stdout_callback = default\n" % _TOP)
    out = tmp_path / "firewall.nft"
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": host, "gather_facts": False,
        "tasks": [
            {"name": "Compute the rules", "ansible.builtin.include_role": {
                "name": "difyops.fleet.firewall", "tasks_from": "rules.yml", "public": True}},
            {"name": "Render the rules", "ansible.builtin.template": {
                "src": os.path.join(_TOP, "roles", "firewall", "templates", "firewall.nft.j2"),
                "dest": str(out), "mode": "0600"},
             "vars": {"__firewall_apt_uid": "42"}},  # getent's answer in tasks/firewall.yml
        ]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    res = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    return res, (out.read_text() if out.exists() else "")


def jumps(text):
    """proto/port -> chain, from the input chain."""
    return dict((m.group(1), m.group(2)) for m in re.finditer(r"^\t\t(\w+ dport \S+) jump allow_(\w+)$", text, re.M))


def nft_check(text, tmp_path):
    if not shutil.which("nft") or os.geteuid() != 0:
        return
    path = tmp_path / "check.nft"
    path.write_text(text)
    res = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    if "Operation not permitted" in res.stderr:
        return
    assert res.returncode == 0, res.stderr


def test_the_configured_postgresql_port_is_opened(tmp_path):
    res, text = render(tmp_path, "data", host_vars={"data": {"postgresql_port": 5433}})
    assert res.returncode == 0, res.stdout + res.stderr
    rules = jumps(text)
    assert rules["tcp dport 5433"] == "postgresql"
    assert "tcp dport 5432" not in rules
    assert rules["tcp dport 6379"] == "redis" and rules["tcp dport 26379"] == "sentinel"
    # PostgreSQL is open to the app host and its own group (replication), nobody else
    chain = text[text.index("chain allow_postgresql {"):]
    chain = chain[:chain.index("\n\t}")]
    assert "ip saddr { 10.7.0.2, 10.7.0.1 } accept" in chain
    assert "ct original proto-dst 5433 jump allow_postgresql" in text
    nft_check(text, tmp_path)


def test_default_ports_and_the_shared_proxy_host(tmp_path):
    res, text = render(tmp_path, "box")
    assert res.returncode == 0, res.stdout + res.stderr
    rules = jumps(text)
    # squid and its reverse proxy (8195: the sandbox owns 8194 on this host), the sandbox itself
    assert rules["tcp dport 3128"] == "squid" and rules["tcp dport 8195"] == "squid_reverse"
    assert rules["tcp dport 8194"] == "sandbox"
    # a dedicated sandbox + proxy host: egress only to the proxy's port
    assert "tcp dport 3128 accept" in text
    nft_check(text, tmp_path)


def test_a_moved_proxy_port_moves_the_sandbox_egress_too(tmp_path):
    res, text = render(tmp_path, "box", host_vars={"box": {"ssrf_proxy_port": 3129}})
    assert res.returncode == 0, res.stdout + res.stderr
    assert jumps(text)["tcp dport 3129"] == "squid"
    assert "tcp dport 3129 accept" in text and "tcp dport 3128 accept" not in text


def _chain(text, name):
    chain = text[text.index("chain %s {" % name):]
    return chain[:chain.index("\n\t}")]


def test_the_sandbox_network_gets_out_only_to_squid(tmp_path):
    """Issue 14: the sandbox container's bridge, on its host (here a proxy host too, squid moved to 3129)."""
    res, text = render(tmp_path, "box", host_vars={"box": {"ssrf_proxy_port": 3129}})
    assert res.returncode == 0, res.stdout + res.stderr
    # to this host: squid's port only (the sandbox's proxy is squid at its network's gateway)
    assert _chain(text, "sandbox_to_host").split("\n")[1:] == [
        "\t\ttcp dport 3129 accept", "\t\treject with icmpx admin-prohibited"]
    # through this host: squid's port on the proxy hosts only
    assert _chain(text, "sandbox_out").split("\n")[1:] == [
        "\t\tip daddr 10.7.0.3 tcp dport 3129 accept", "\t\treject with icmpx admin-prohibited"]
    # before the trusted container interfaces, and first after replies in forward
    inp, fwd = _chain(text, "input"), _chain(text, "forward")
    assert inp.index('iifname "dify-sandbox" jump sandbox_to_host') < inp.index('iifname "br-*" accept')
    assert fwd.split("\n")[2:4] == ["\t\tct state established,related accept",
                                    '\t\tiifname "dify-sandbox" jump sandbox_out']
    assert 'oifname "dify-sandbox" reject' in fwd and 'oifname "dify-sandbox" accept' in _chain(text, "output")
    nft_check(text, tmp_path)
    # a host without the sandbox has none of it
    res, text = render(tmp_path, "app")
    assert res.returncode == 0 and "dify-sandbox" not in text


def test_edge_ports_and_monitoring(tmp_path):
    res, text = render(tmp_path, "edge", host_vars={"edge": {"nginx_https_port": 8443}},
                       all_vars={"difyops_monitoring_sources": ["10.9.9.9"]})
    assert res.returncode == 0, res.stdout + res.stderr
    rules = jumps(text)
    assert rules["tcp dport 8443"] == "https" and rules["tcp dport 80"] == "http"
    assert rules["tcp dport 9100"] == "node_exporter" and rules["tcp dport 9113"] == "nginx_exporter"
    assert "ip saddr { 10.9.9.9 } accept" in text
    nft_check(text, tmp_path)


@pytest.mark.parametrize("host_vars, all_vars, needle", [
    ({"data": {"postgresql_port": "fivefour"}}, {}, "postgresql_port on data is 'fivefour'"),
    ({}, {"firewall_extra_sources": {"postgres": ["10.0.0.9"]}}, "firewall_extra_sources has unknown keys postgres"),
])
def test_refusals(tmp_path, host_vars, all_vars, needle):
    res, dummy = render(tmp_path, "data", host_vars=host_vars, all_vars=all_vars)
    assert res.returncode != 0 and needle in res.stdout + res.stderr, res.stdout + res.stderr
