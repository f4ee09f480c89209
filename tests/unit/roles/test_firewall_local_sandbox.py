# -*- coding: utf-8 -*-
"""roles/firewall and Dify 1.16's local sandbox (in the sandbox's fenced network, role dify): its only
ways out are the SSRF proxies the sandbox has and the agent SSRF proxy's port, on the agent proxy hosts
and, on an agent proxy host, at the network's gateway."""

from __future__ import annotations

import test_firewall_rules as fw


def agent_groups(monkeypatch, agent_proxy):
    groups = dict(fw.GROUPS, dify_local_sandbox=["box"], dify_agent_backend=["app"], dify_agent_ssrf_proxy=[agent_proxy])
    monkeypatch.setattr(fw, "GROUPS", groups)


def test_the_local_sandbox_gets_out_to_the_agent_proxy_host(tmp_path, monkeypatch):
    agent_groups(monkeypatch, "data")
    res, text = fw.render(tmp_path, "box")
    assert res.returncode == 0, res.stdout + res.stderr
    assert fw._chain(text, "sandbox_out").split("\n")[1:] == [
        "\t\tip daddr 10.7.0.3 tcp dport 3128 accept", "\t\tip daddr 10.7.0.1 tcp dport 3129 accept",
        "\t\treject with icmpx admin-prohibited"]
    # the agent proxy is not on this host: nothing more at the gateway
    assert fw._chain(text, "sandbox_to_host").split("\n")[1:] == [
        "\t\ttcp dport 3128 accept", "\t\treject with icmpx admin-prohibited"]
    fw.nft_check(text, tmp_path)


def test_the_agent_proxy_on_the_local_sandbox_host_is_reached_at_the_gateway(tmp_path, monkeypatch):
    agent_groups(monkeypatch, "box")
    res, text = fw.render(tmp_path, "box")
    assert res.returncode == 0, res.stdout + res.stderr
    assert fw._chain(text, "sandbox_to_host").split("\n")[1:] == [
        "\t\ttcp dport 3128 accept", "\t\ttcp dport 3129 accept", "\t\treject with icmpx admin-prohibited"]
    fw.nft_check(text, tmp_path)


def test_without_a_local_sandbox_the_agent_proxy_is_not_a_way_out(tmp_path, monkeypatch):
    agent_groups(monkeypatch, "data")
    monkeypatch.setattr(fw, "GROUPS", dict(fw.GROUPS, dify_local_sandbox=["app"]))
    res, text = fw.render(tmp_path, "box")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3129" not in fw._chain(text, "sandbox_out")
