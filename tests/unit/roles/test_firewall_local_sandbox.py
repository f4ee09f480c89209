# -*- coding: utf-8 -*-
"""roles/firewall and Dify 1.16's local sandbox (in a fenced network of its own, role dify, bridge from the
catalog): its only way out is the agent SSRF proxy's port, on the agent proxy hosts and, on an agent proxy
host, at the network's gateway; never squid's port. The sandbox's bridge keeps squid's port and never gets
the agent proxy's (issue 15)."""

from __future__ import annotations

import test_firewall_rules as fw
from ansible_collections.difyops.fleet.plugins.module_utils import catalog

BRIDGE = catalog.LOCAL_SANDBOX_NETWORK["bridge"]
REJECT = "\t\treject with icmpx admin-prohibited"


def agent_groups(monkeypatch, agent_proxy, local_sandbox="box"):
    groups = dict(fw.GROUPS, dify_local_sandbox=[local_sandbox], dify_agent_backend=["app"],
                  dify_agent_ssrf_proxy=[agent_proxy])
    monkeypatch.setattr(fw, "GROUPS", groups)


def rules(chain, text):
    return fw._chain(text, chain).split("\n")[1:]


def test_the_local_sandbox_gets_out_only_to_the_agent_proxy_host(tmp_path, monkeypatch):
    agent_groups(monkeypatch, "data")
    res, text = fw.render(tmp_path, "box")
    assert res.returncode == 0, res.stdout + res.stderr
    assert rules("local_sandbox_out", text) == ["\t\tip daddr 10.7.0.1 tcp dport 3129 accept", REJECT]
    # the agent proxy is not on this host: nothing at the gateway (squid is, but not for the local sandbox)
    assert rules("local_sandbox_to_host", text) == [REJECT]
    # the sandbox's bridge keeps squid only
    assert rules("sandbox_out", text) == ["\t\tip daddr 10.7.0.3 tcp dport 3128 accept", REJECT]
    assert rules("sandbox_to_host", text) == ["\t\ttcp dport 3128 accept", REJECT]
    # the bridge is fenced before the trusted container interfaces, and first after replies in forward
    inp, fwd = fw._chain(text, "input"), fw._chain(text, "forward")
    assert inp.index('iifname "%s" jump local_sandbox_to_host' % BRIDGE) < inp.index('iifname "br-*" accept')
    assert fwd.split("\n")[2:5] == ["\t\tct state established,related accept",
                                    '\t\tiifname "dify-sandbox" jump sandbox_out',
                                    '\t\tiifname "%s" jump local_sandbox_out' % BRIDGE]
    assert 'oifname "%s" reject' % BRIDGE in fwd
    fw.nft_check(text, tmp_path)


def test_the_agent_proxy_on_the_local_sandbox_host_is_reached_at_the_gateway(tmp_path, monkeypatch):
    agent_groups(monkeypatch, "box")
    res, text = fw.render(tmp_path, "box", host_vars={"box": {"ssrf_proxy_agent_port": 3300}})
    assert res.returncode == 0, res.stdout + res.stderr
    assert rules("local_sandbox_to_host", text) == ["\t\ttcp dport 3300 accept", REJECT]
    assert rules("local_sandbox_out", text) == ["\t\tip daddr 10.7.0.3 tcp dport 3300 accept", REJECT]
    # squid and the agent proxy share this host: the sandbox still reaches squid only
    assert rules("sandbox_to_host", text) == ["\t\ttcp dport 3128 accept", REJECT]
    assert "3300" not in fw._chain(text, "sandbox_out")
    fw.nft_check(text, tmp_path)


def test_without_a_local_sandbox_there_is_no_local_sandbox_network(tmp_path, monkeypatch):
    agent_groups(monkeypatch, "box", local_sandbox="app")
    res, text = fw.render(tmp_path, "box")
    assert res.returncode == 0, res.stdout + res.stderr
    assert BRIDGE not in text and "local_sandbox_out" not in text
    assert "3129" not in fw._chain(text, "sandbox_out") + fw._chain(text, "sandbox_to_host")
    # the local sandbox's host fences its bridge (it runs no sandbox here)
    res, text = fw.render(tmp_path, "app")
    assert res.returncode == 0, res.stdout + res.stderr
    assert rules("local_sandbox_out", text) == ["\t\tip daddr 10.7.0.3 tcp dport 3129 accept", REJECT]
    assert rules("local_sandbox_to_host", text) == [REJECT]
    assert "dify-sandbox" not in text
