# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The service catalog (module_utils/catalog.py): groups, patterns, the ports a
host opens (from the services' own port variables), host counts, and that
the roles agree with it."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

import pytest
import yaml

from ansible_collections.difyops.fleet.plugins.module_utils import capacity_plan as cp
from ansible_collections.difyops.fleet.plugins.module_utils import catalog
from ansible_collections.difyops.fleet.plugins.module_utils import knobs

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

GROUPS = {
    "all": ["data", "app", "box", "edge"],
    "dify_postgres": ["data"], "dify_redis": ["data"], "dify_sentinel": ["data"],
    "dify_api": ["app"], "dify_worker": ["app"], "dify_beat": ["app"], "dify_web": ["app"],
    "dify_plugin_daemon": ["app"], "dify_sandbox": ["box"], "dify_ssrf_proxy": ["box"],
    "dify_edge": ["edge"], "monitoring": ["edge"],
}
ADDRESS = {"data": "10.0.0.1", "app": "10.0.0.2", "box": "10.0.0.3", "edge": "10.0.0.4"}


def hostvars(**extra):
    hv = dict((h, {"difyops_address": a}) for h, a in ADDRESS.items())
    for host, vars_ in extra.items():
        hv[host].update(vars_)
    return hv


def rules(host, hv=None, **kw):
    return dict((r["name"], r) for r in catalog.open_ports(host, GROUPS, hv or hostvars(), **kw))


def role_defaults(role):
    with open(os.path.join(TOP, "roles", role, "defaults", "main.yml")) as f:
        return yaml.safe_load(f) or {}


# ----------------------------------------------------------- groups

def test_groups_in_order_and_every_service_once():
    assert catalog.FLEET_GROUPS == (
        "dify_postgres", "dify_mysql", "dify_redis", "dify_sentinel", "dify_etcd", "dify_vector", "dify_api",
        "dify_api_websocket",
        "dify_worker", "dify_beat", "dify_web", "dify_sandbox", "dify_plugin_daemon", "dify_agent_backend",
        "dify_local_sandbox", "dify_ssrf_proxy", "dify_agent_ssrf_proxy", "dify_edge")
    names = [s.name for s in catalog.SERVICES]
    assert len(set(names)) == len(names)
    ports = [p.name for _s, p in catalog.all_ports()]
    assert len(set(ports)) == len(ports)


def test_patterns_by_role_and_tier():
    assert catalog.pattern() == ":".join(catalog.FLEET_GROUPS)
    assert catalog.pattern(role="storage") == "dify_api:dify_api_websocket:dify_worker:dify_plugin_daemon"
    assert catalog.groups_for(tier="dify") == ["dify_api", "dify_api_websocket", "dify_worker", "dify_beat", "dify_web",
                                               "dify_sandbox", "dify_plugin_daemon", "dify_agent_backend",
                                               "dify_local_sandbox"]
    assert catalog.groups_for(tier="ssrf_proxy") == ["dify_ssrf_proxy", "dify_agent_ssrf_proxy"]
    assert catalog.groups_for(tier="redis") == ["dify_redis", "dify_sentinel"]
    assert catalog.groups_for(role="firewall") == list(catalog.FLEET_GROUPS)


def test_fleet_hosts_include_every_group():
    # a host only in dify_mysql (or dify_vector) is a fleet host like any other
    groups = dict(GROUPS, dify_mysql=["my"], dify_vector=["vec"])
    assert catalog.fleet_hosts(groups) == ["data", "my", "vec", "app", "box", "edge"]


def test_the_dify_role_runs_the_services_the_catalog_gives_it():
    with open(os.path.join(TOP, "roles", "dify", "vars", "main.yml")) as f:
        service_groups = yaml.safe_load(f)["__dify_service_groups"]
    assert sorted(service_groups.values()) == sorted(catalog.groups_for(role="dify"))
    for name, group in service_groups.items():
        assert catalog.service(name).group == group


def test_every_role_named_by_the_catalog_exists():
    for s in catalog.SERVICES:
        for role in s.roles:
            assert os.path.isdir(os.path.join(TOP, "roles", role)), (s.name, role)
    for role in catalog.EVERY_HOST_ROLES:
        assert os.path.isdir(os.path.join(TOP, "roles", role))


# ----------------------------------------------------------- ports

def test_port_variables_default_to_the_catalog_default():
    """A port variable's role default and the catalog's agree, or the role reads the catalog."""
    declared = {}
    for role in os.listdir(os.path.join(TOP, "roles")):
        if os.path.exists(os.path.join(TOP, "roles", role, "defaults", "main.yml")):
            for name, value in role_defaults(role).items():
                declared.setdefault(name, []).append((role, value))
    for _svc, port in catalog.all_ports():
        if not port.var:
            continue
        assert port.var in declared, port.var
        for role, value in declared[port.var]:
            if isinstance(value, int):
                assert value == port.default, (role, port.var, value)
            else:
                assert "difyops.fleet.catalog" in value, (role, port.var, value)


def test_a_moved_postgresql_port_is_the_one_opened():
    default = rules("data")
    assert default["postgresql"]["port"] == "5432"
    moved = rules("data", hostvars(data={"postgresql_port": 5433}))
    assert moved["postgresql"]["port"] == "5433"
    assert moved["postgresql"]["sources"] == ["10.0.0.2", "10.0.0.1"]   # api/worker/beat/plugin host + peers
    assert "5432" not in [r["port"] for r in moved.values()]
    # the other ports of the host keep theirs
    assert (moved["redis"]["port"], moved["sentinel"]["port"]) == ("6379", "26379")


@pytest.mark.parametrize("var, name, value", [
    ("redis_port", "redis", 6380), ("redis_sentinel_port", "sentinel", 26380),
    ("nginx_https_port", "https", 8443), ("ssrf_proxy_port", "squid", 3129),
    ("exporters_node_port", "node_exporter", 9200),
])
def test_every_port_follows_its_variable(var, name, value):
    host = {"redis": "data", "sentinel": "data", "https": "edge", "squid": "box", "node_exporter": "app"}[name]
    got = rules(host, hostvars(**{host: {var: value}}), monitoring_sources=["10.9.9.9"])
    assert got[name]["port"] == str(value)


def test_squid_reverse_moves_off_the_sandbox_port_on_a_shared_host():
    assert rules("box")["squid_reverse"]["port"] == "8195"
    groups = dict(GROUPS, dify_sandbox=["app"])
    assert dict((r["name"], r) for r in catalog.open_ports("box", groups, hostvars()))["squid_reverse"]["port"] \
        == "8194"
    assert rules("box", hostvars(box={"ssrf_proxy_reverse_port": 9000}))["squid_reverse"]["port"] == "9000"


def test_sources_exporters_and_extra_sources():
    got = rules("edge")
    assert got["https"]["anywhere"] and got["http"]["anywhere"]
    assert got["nginx_exporter"]["sources"] == [] and got["node_exporter"]["sources"] == []
    got = rules("edge", monitoring_sources=["monitoring", "10.5.0.0/16"], extra_sources={"https": ["10.1.1.1"]})
    assert got["node_exporter"]["sources"] == ["10.0.0.4", "10.5.0.0/16"]
    assert got["https"]["sources"] == ["10.1.1.1"]
    app = rules("app")
    assert app["api"]["sources"] == ["10.0.0.4", "10.0.0.2"]          # edge, plugin daemon + web (app)
    assert app["plugin_debugging"]["sources"] == []
    assert sorted(app) == ["api", "node_exporter", "plugin_daemon", "plugin_debugging", "web"]


def test_refusals_name_the_variable():
    with pytest.raises(catalog.CatalogError, match="firewall_extra_sources has unknown keys postgres;"):
        rules("data", extra_sources={"postgres": ["10.0.0.9"]})
    with pytest.raises(catalog.CatalogError, match="postgresql_port on data is 'fivefour'"):
        rules("data", hostvars(data={"postgresql_port": "fivefour"}))
    with pytest.raises(catalog.CatalogError, match=r"firewall_extra_rules\[0\]"):
        catalog.extra_rules([{"port": "ssh"}], GROUPS, hostvars())
    (extra,) = catalog.extra_rules([{"port": 9000, "sources": ["dify_edge"], "comment": "x"}], GROUPS, hostvars())
    assert extra == {"name": "extra_0", "port": "9000", "proto": "tcp", "anywhere": False,
                     "sources": ["10.0.0.4"], "comment": "x"}


def test_firewall_argument_spec_knows_every_port():
    with open(os.path.join(TOP, "roles", "firewall", "meta", "argument_specs.yml")) as f:
        spec = yaml.safe_load(f)["argument_specs"]["main"]["options"]
    assert sorted(spec["firewall_extra_sources"]["options"]) == sorted(p.name for _s, p in catalog.all_ports())


def test_patronis_rest_api_is_opened_only_under_patroni():
    assert "patroni" not in rules("data")
    got = rules("data", hostvars(data={"postgresql_ha_manager": "patroni"}))
    assert got["patroni"]["port"] == "8008"
    assert got["patroni"]["sources"] == ["10.0.0.2", "10.0.0.1"]   # the database clients' host + the members
    moved = rules("data", hostvars(data={"postgresql_ha_manager": "patroni", "patroni_restapi_port": 8009}))
    assert moved["patroni"]["port"] == "8009"
    assert "patroni" not in rules("data", hostvars(data={"postgresql_ha_manager": "none"}))


def test_etcd_client_port_for_the_database_hosts_peer_port_for_the_members():
    groups = dict(GROUPS, dify_etcd=["data", "app", "box"])
    got = dict((r["name"], r) for r in catalog.open_ports("box", groups, hostvars()))
    assert got["etcd_client"]["port"] == "2379"
    assert got["etcd_client"]["sources"] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]   # dify_postgres + the members
    assert got["etcd_peer"]["port"] == "2380"
    assert got["etcd_peer"]["sources"] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert "etcd_client" not in rules("edge")


# ----------------------------------------------------------- host counts


@pytest.mark.parametrize("count, fix", [(2, "3"), (4, "3 or 5")])
def test_an_even_etcd_cluster_is_refused_for_ha(count, fix):
    names = ["data", "app", "box", "edge", "x"][:count]
    (err,) = [e for e in catalog.count_problems(dict(GROUPS, dify_etcd=names), ha=True) if "dify_etcd" in e]
    assert err.startswith("%d etcd member(s) (hosts in dify_etcd)" % count) and "at least 3 etcd members" in err
    assert "use %s" % fix in err
    assert catalog.count_problems(dict(GROUPS, dify_etcd=names[:1])) == []
    assert [e for e in catalog.count_problems(dict(GROUPS, dify_etcd=["data", "app", "box"]), ha=True)
            if "dify_etcd" in e] == []


def test_counts_need_exactly_one_beat_and_allow_mysql_instead_of_postgres():
    assert catalog.count_problems(GROUPS) == []
    mysql_only = dict(GROUPS, dify_postgres=[], dify_mysql=["data"])
    assert catalog.count_problems(mysql_only) == []
    (err,) = catalog.count_problems(dict(GROUPS, dify_postgres=[]))
    assert err.startswith("group dify_postgres is empty") and "(or use [dify_mysql] instead)" in err


# ----------------------------------------------------------- the plan reads the catalog

def test_plan_memory_budgets_come_from_the_catalog():
    assert cp.HEAVY_WEIGHTS == {"postgresql": 4, "mysql": 4, "redis": 2, "vector": 2, "api": 3, "worker": 3}
    assert cp.LIGHT_MB["plugin_daemon"] == catalog.service("plugin_daemon").memory_mb
    assert [t for _g, t in cp.GROUP_TIERS] == [s.name for s in catalog.SERVICES]


def test_every_knob_has_one_default_and_no_role_declares_it():
    """The plan's knobs are not role defaults: roles read difyops_plan (one name, one default)."""
    assert len(set(knobs.NAMES)) == len(knobs.NAMES)
    owned_elsewhere = {"dify_vector_store"}  # a choice the dify role owns; the plan reads the same variable
    for role in os.listdir(os.path.join(TOP, "roles")):
        path = os.path.join(TOP, "roles", role, "defaults", "main.yml")
        if not os.path.exists(path):
            continue
        declared = role_defaults(role)
        for name in set(knobs.NAMES) - owned_elsewhere:
            if name in declared:
                # a role may only point its variable at the plan
                assert "difyops_plan" in str(declared[name]), (role, name, declared[name])
    assert role_defaults("dify")["dify_vector_store"] == knobs.DEFAULTS["dify_vector_store"]


def test_platforms_match_what_the_roles_install():
    assert catalog.SUPPORTED_RELEASES == ("bookworm", "trixie")
    assert catalog.PLATFORMS["trixie"]["postgresql"] == 17 and not catalog.PLATFORMS["bookworm"]["pgvector"]
