# -*- coding: utf-8 -*-
"""difyops.fleet.dify_agent_proxy_rules / dify_websocket_timeout: release facts, fleet-shaped."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.difyops.fleet.plugins.filter.release import FilterModule
from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract
from ansible_collections.difyops.fleet.plugins.module_utils.release_facts import compose_default

FILTERS = FilterModule().filters()
rules = FILTERS["dify_agent_proxy_rules"]
timeout = FILTERS["dify_websocket_timeout"]

GROUPS = {"dify_agent_backend": ["ab1", "ab2"], "dify_api": ["api1", "api2"], "dify_agent_ssrf_proxy": ["px"]}
HOSTVARS = {
    "ab1": {"difyops_address": "10.1.0.5"},
    "ab2": {"difyops_address": "10.1.0.9", "dify_agent_backend_port": 5051},
    "api1": {"difyops_address": "10.1.0.6"},
    "api2": {"difyops_address": "10.1.0.7"},
    "px": {"difyops_address": "10.1.0.8"},
}
PRIVATE = ["10.0.0.0/8", "169.254.0.0/16", "fc00::/7"]


def _acl(result, name):
    return [a for a in result["acls"] if a["name"] == name][0]


def test_upstream_order_with_fleet_addresses_and_ports():
    got = rules("1.16.1", GROUPS, HOSTVARS, {"to_private_networks": PRIVATE})
    assert got["release"] == "1.16.1"
    assert got["src"] == "docker/ssrf_proxy/squid-agent.conf.template"
    assert got["http_access"] == [
        ["deny", "!Safe_ports"],
        ["deny", "CONNECT", "!SSL_ports"],
        ["allow", "dst_agent_backend", "dst_agent_backend_port", "path_agent_stub"],
        ["allow", "dst_dify_api", "dst_dify_api_port", "path_files"],
        ["deny", "to_private_networks"],
        ["allow", "all"],
    ]
    assert _acl(got, "dst_agent_backend")["kind"] == "dst"
    assert _acl(got, "dst_agent_backend")["values"] == ["10.1.0.5", "10.1.0.9"]
    # each host's own port variable, else the catalog's default
    assert _acl(got, "dst_agent_backend_port") == {"name": "dst_agent_backend_port", "kind": "port",
                                                   "values": ["5050", "5051"], "src": "catalog"}
    assert _acl(got, "dst_dify_api")["values"] == ["10.1.0.6", "10.1.0.7"]
    assert _acl(got, "dst_dify_api_port")["values"] == ["5001"]
    assert _acl(got, "path_agent_stub") == {"name": "path_agent_stub", "kind": "urlpath_regex",
                                            "values": ["-i", "^/agent-stub/"],
                                            "src": "docker/ssrf_proxy/squid-agent.conf.template"}
    assert _acl(got, "to_private_networks")["values"] == PRIVATE
    assert got["left_out"] == []


def test_every_acl_a_line_uses_is_defined_once_before_use():
    got = rules("1.16.1", GROUPS, HOSTVARS, {"to_private_networks": PRIVATE})
    names = [a["name"] for a in got["acls"]]
    assert len(names) == len(set(names))
    builtin = {"all", "localhost", "manager"}
    for line in got["http_access"]:
        for word in line[1:]:
            assert word.lstrip("!") in names or word in builtin, word


def test_upstream_private_list_without_replacement():
    got = rules("1.16.1", GROUPS, HOSTVARS)
    release = dify_contract.VERSIONS["1.16.1"]["release"]
    upstream = release["agent_ssrf_proxy"]["squid"]["acls"]["to_private_networks"]["values"]
    assert _acl(got, "to_private_networks")["values"] == upstream


def test_a_service_without_hosts_drops_its_rule():
    got = rules("1.16.1", {"dify_api": ["api1"]}, HOSTVARS, {"to_private_networks": PRIVATE})
    assert got["left_out"] == ["dst_agent_backend"]
    assert ["allow", "dst_dify_api", "dst_dify_api_port", "path_files"] in got["http_access"]
    assert not any("dst_agent_backend" in w for line in got["http_access"] for w in line)
    assert not any(a["name"].startswith("dst_agent_backend") for a in got["acls"])
    assert "path_agent_stub" not in [a["name"] for a in got["acls"]]


def test_release_without_agent_proxy_gives_nothing():
    assert rules("1.13.3", GROUPS, HOSTVARS) == {}


def test_empty_version_is_the_default_release():
    default = dify_contract.DEFAULT_VERSION
    assert rules("", GROUPS, HOSTVARS) == rules(default, GROUPS, HOSTVARS)
    assert timeout("") == timeout(default)


def test_unknown_release_is_named():
    with pytest.raises(AnsibleFilterError, match="1.99.0.*known releases"):
        rules("1.99.0", GROUPS, HOSTVARS)
    with pytest.raises(AnsibleFilterError, match="1.99.0"):
        timeout("1.99.0")


def test_bad_port_variable_is_named():
    hostvars = dict(HOSTVARS, ab2={"difyops_address": "10.1.0.9", "dify_agent_backend_port": "http"})
    with pytest.raises(AnsibleFilterError, match="dify_agent_backend_port"):
        rules("1.16.1", GROUPS, hostvars)


def test_websocket_timeout_per_release():
    assert timeout("1.16.1") == 360
    assert timeout("1.13.3") == 0


@pytest.mark.parametrize("raw,default", [
    ("${API_WEBSOCKET_GUNICORN_TIMEOUT:-360}", "360"),
    ("${X-5}", "5"),
    ("360", "360"),
    ("${X:-}", ""),
])
def test_compose_default(raw, default):
    assert compose_default(raw) == default


def test_upgrade_dependencies_follow_the_release_compose():
    """1.16.1's api and worker depend on the agent backend, which depends on the local sandbox: both start
    first, dependencies first; the plugin daemon (not optional: it already runs) and Redis are left out."""
    deps = FILTERS["dify_upgrade_dependencies"]
    fleet = {"dify_api": ["a"], "dify_worker": ["w"], "dify_plugin_daemon": ["p"], "dify_agent_backend": ["ab"],
             "dify_local_sandbox": ["ls"], "dify_api_websocket": ["a"]}
    assert deps("1.16.1", fleet) == ["local_sandbox", "agent_backend"]
    assert deps("1.13.3", fleet) == []
    assert deps("1.16.1", dict(fleet, dify_local_sandbox=[])) == ["agent_backend"]
    with pytest.raises(AnsibleFilterError, match="no contract data"):
        deps("0.9.9", fleet)


def test_the_role_default_is_the_contract_default():
    """One default release: the dify role's dify_version and the contract's (preflight reads the latter)."""
    import os
    import yaml
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    with open(os.path.join(top, "roles", "dify", "defaults", "main.yml")) as fh:
        assert str(yaml.safe_load(fh)["dify_version"]) == dify_contract.DEFAULT_VERSION
