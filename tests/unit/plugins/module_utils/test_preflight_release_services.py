# -*- coding: utf-8 -*-
"""Preflight: the groups a Dify release needs (1.16's agent backend, local
sandbox and agent SSRF proxy) and the groups of services it does not have."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.difyops.fleet.plugins.module_utils import preflight as pf

from test_preflight_mistakes import GROUPS, SPECS, fleet

AGENT = {"dify_agent_backend": ["app"], "dify_local_sandbox": ["edge"], "dify_agent_ssrf_proxy": ["data"]}


def groups_with(**extra):
    """The good fleet without the agent groups, plus EXTRA."""
    groups = dict((g, hosts) for g, hosts in copy.deepcopy(GROUPS).items() if g not in AGENT)
    groups.update(copy.deepcopy(extra))
    return groups


def versions(version):
    return {"app": {"dify_version": version}, "edge": {"dify_version": version}, "data": {"dify_version": version}}


def errors(groups, version):
    dummy, hv = fleet(**versions(version))
    return pf.check_fleet(groups, hv, SPECS)


def test_1_16_1_with_the_agent_groups_passes():
    assert errors(groups_with(**AGENT), "1.16.1") == []
    assert errors(groups_with(dify_api_websocket=["app"], **AGENT), "1.16.1") == []


@pytest.mark.parametrize("missing", sorted(AGENT))
def test_1_16_1_without_an_agent_group_is_refused_naming_it(missing):
    groups = groups_with(**{g: h for g, h in AGENT.items() if g != missing})
    found = errors(groups, "1.16.1")
    assert len(found) == 1, found
    assert "dify_version = '1.16.1'" in found[0] and "no host in %s" % missing in found[0]
    assert "Add hosts to %s" % missing in found[0]


def test_1_16_1_without_any_agent_group_names_all_three():
    found = errors(groups_with(), "1.16.1")
    assert len(found) == 1 and "dify_agent_backend, dify_local_sandbox, dify_agent_ssrf_proxy" in found[0]
    assert "or set a release without them: dify_version: '1.13.3'" in found[0]


def test_1_16_1_without_api_hosts_needs_no_agent():
    groups = groups_with()
    groups["dify_api"] = []
    assert pf.check_dify_release_services(groups, fleet(**versions("1.16.1"))[1]) == []


@pytest.mark.parametrize("group", sorted(AGENT) + ["dify_api_websocket"])
def test_1_13_3_refuses_hosts_in_the_groups_of_services_it_does_not_have(group):
    found = errors(groups_with(**{group: ["app"]}), "1.13.3")
    assert len(found) == 1, found
    assert found[0].startswith("app: group %s runs a service Dify 1.13.3 does not have" % group)
    assert "dify_version = '1.13.3'" in found[0] and "(1.16.1)" in found[0]


def test_1_13_3_refuses_the_agent_proxy_on_a_data_host_naming_the_group_version_and_fix():
    # the agent proxy is squid, not a Dify container: its host (data) need not run any Dify service
    found = errors(groups_with(dify_agent_ssrf_proxy=["data"]), "1.13.3")
    assert found == ["data: group dify_agent_ssrf_proxy runs a service Dify 1.13.3 does not have (dify_version = "
                     "'1.13.3'); remove the hosts from dify_agent_ssrf_proxy, or set a dify_version that has it "
                     "(1.16.1)."], found
    # and without the group the same fleet passes
    assert errors(groups_with(), "1.13.3") == []


def test_the_default_release_needs_the_agent_groups():
    """With no dify_version the fleet runs the default release, 1.16.1: the agent groups are required."""
    dummy, hv = fleet()
    found = pf.check_fleet(groups_with(), hv, SPECS)
    assert len(found) == 1 and "dify_version = '1.16.1'" in found[0] and "no host in dify_agent_backend" in found[0]
    assert pf.check_fleet(groups_with(**AGENT), hv, SPECS) == []


def test_a_host_only_in_an_agent_group_takes_part_in_the_one_release_rule():
    groups = groups_with(**AGENT)
    groups["dify_agent_backend"] = ["data"]
    hostvars = versions("1.16.1")
    hostvars["data"] = {"dify_version": "1.13.3"}
    dummy, hv = fleet(**hostvars)
    found = pf.check_fleet(groups, hv, SPECS)
    assert any("dify_version differs between the Dify hosts" in e for e in found), found


def test_a_local_sandbox_needs_no_sandbox_host():
    """The local sandbox has a fenced network of its own (firewall: on every dify_local_sandbox host), so it
    may run on a host without the ordinary sandbox."""
    groups = groups_with(**AGENT)
    groups["dify_local_sandbox"] = ["data"]
    assert errors(groups, "1.16.1") == []
