# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""fleet_plan and Dify 1.15/1.16's services: the websocket api, the agent
backend and the local sandbox get their container's memory limit, and the
websocket api's SQLAlchemy pool is counted in the PostgreSQL connection
budget (and shown in the report)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.difyops.fleet.plugins.module_utils import capacity_plan as cp
from ansible_collections.difyops.fleet.plugins.module_utils import catalog
from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as dc

from test_fleet_plan import errors_of, host, split_fleet

NEW_CONTAINERS = ("api_websocket", "agent_backend", "local_sandbox")


def agent_fleet():
    """The split fleet plus a websocket host, an agent host (backend + local
    sandbox, which sits in dify_sandbox too) and the agent proxy on w1."""
    groups, hosts = split_fleet()
    groups.update(dify_api_websocket=["ws1"], dify_agent_backend=["ag1"], dify_local_sandbox=["ag1"],
                  dify_agent_ssrf_proxy=["w1"])
    groups["dify_sandbox"] = groups["dify_sandbox"] + ["ag1"]
    hosts.update(ws1=host(4096, 2), ag1=host(8192, 4))
    return groups, hosts


def test_the_dify_containers_are_the_catalogs_dify_tier():
    assert set(cp.DIFY_CONTAINERS) == set(s.name for s in catalog.SERVICES if s.tier == "dify")
    assert set(NEW_CONTAINERS) <= set(cp.DIFY_CONTAINERS)
    # squid (host package, not a Dify container) gets no container limit
    assert "agent_ssrf_proxy" not in cp.DIFY_CONTAINERS and "ssrf_proxy" not in cp.DIFY_CONTAINERS


def test_the_new_dify_containers_get_their_catalog_budget_as_memory_limit():
    groups, hosts = agent_fleet()
    plan = cp.build_plan(groups, hosts)
    h = plan["hosts"]
    budget = dict((s.name, s.memory_mb) for s in catalog.SERVICES)
    assert h["ws1"]["memory_limits_mb"] == {"api_websocket": budget["api_websocket"]} == {"api_websocket": 1024}
    assert h["ag1"]["memory_limits_mb"] == {"agent_backend": 1024, "local_sandbox": 1024, "sandbox": 1024}
    # the agent proxy is squid on w1: memory budgeted (128 MiB) but no container limit
    assert h["w1"]["memory_split"]["agent_ssrf_proxy"] == 128
    assert "agent_ssrf_proxy" not in h["w1"]["memory_limits_mb"]
    # the limits are what the host commits for them
    assert h["ag1"]["memory_committed_mb"] == 512 + 3 * 1024


def test_the_websocket_pool_is_in_the_connection_budget():
    groups, hosts = split_fleet()
    groups["dify_api_websocket"] = ["app1"]
    plan = cp.build_plan(groups, hosts)
    app1 = plan["hosts"]["app1"]
    # one gevent worker (upstream's API_WEBSOCKET_WORKER_AMOUNT), pooled like one api
    # worker: pool = dify_gunicorn_worker_connections 10, overflow 5
    assert app1["sqlalchemy_pools"]["api_websocket"] == {"pool_size": 10, "max_overflow": 5, "processes": 1,
                                                         "connections": 15}
    # app1's api keeps its own pool (the api's env still reads it first)
    assert app1["sqlalchemy_pool_size"] == 10 and app1["sqlalchemy_pools"]["api"]["processes"] == 8
    # app1: OS 512 + web 1024 + websocket 1024 leave 5632 MiB for the api -> 8 gunicorn workers (not 9)
    assert app1["memory_split"]["api"] == 8192 - 512 - 1024 - 1024
    assert app1["db_processes"] == 8 + 1 and app1["db_connections"] == 8 * 15 + 15
    budget = plan["fleet"]["connection_budget"]
    # the worked example (436) with app1's api at 8 x 15 instead of 9 x 15, its pgvector at
    # 8 x 5 instead of 9 x 5, and the websocket's 15 (no pgvector pool): 436 - 15 - 5 + 15 = 431
    assert budget["breakdown"]["app_hosts"]["app1:api_websocket"] == 15
    assert budget["required"] == 431 and plan["fleet"]["max_connections"] == 440
    assert plan["hosts"]["pg1"]["postgresql"]["max_connections"] == 440


def test_a_websocket_only_host_takes_the_pool_knobs():
    groups, hosts = agent_fleet()
    hosts["ws1"]["dify_gunicorn_worker_connections"] = 20
    e = cp.build_plan(groups, hosts)["hosts"]["ws1"]
    assert e["sqlalchemy_pools"] == {"api_websocket": {"pool_size": 20, "max_overflow": 10, "processes": 1,
                                                       "connections": 30}}
    # the host's pool (what the dify role falls back to) is the websocket's
    assert (e["sqlalchemy_pool_size"], e["sqlalchemy_max_overflow"]) == (20, 10)
    assert "dify_gunicorn_worker_connections" in e["why"]["sqlalchemy_pools.api_websocket"]
    hosts["ws1"].update(dify_sqlalchemy_pool_size=4, dify_sqlalchemy_max_overflow=0)
    e = cp.build_plan(groups, hosts)["hosts"]["ws1"]
    assert e["sqlalchemy_pools"]["api_websocket"]["connections"] == 4
    assert "set by dify_sqlalchemy_pool_size" in e["why"]["sqlalchemy_pools.api_websocket"]


def test_a_budget_too_small_for_the_websocket_is_refused():
    groups, hosts = agent_fleet()
    required = cp.build_plan(groups, hosts)["fleet"]["connection_budget"]["required"]
    assert "the fleet can open %d connections" % required in errors_of(
        groups, hosts, {"postgresql_max_connections": required - 1})
    cp.build_plan(groups, hosts, {"postgresql_max_connections": required})


def test_the_websocket_processes_are_upstreams_worker_amount():
    """The plan's one process is what the dify role renders for api_websocket in every release that has it."""
    releases = [v for v in dc.VERSIONS if dc.has_service(v, "api_websocket")]
    assert releases
    for version in releases:
        assert dc.compose_defaults(version, "api", "api_websocket")["SERVER_WORKER_AMOUNT"] == \
            str(cp.API_WEBSOCKET_PROCESSES), version


def test_the_report_shows_the_new_limits_and_the_websocket_pool():
    groups, hosts = agent_fleet()
    report = cp.render_report(cp.build_plan(groups, hosts))
    ws1 = report.split("### ws1")[1].split("### ")[0]
    assert "| memory_limits_mb.api_websocket | 1024 | the api_websocket container's memory limit |" in ws1
    assert "| sqlalchemy_pools.api_websocket | 1 x (pool 10 + overflow 5) = 15 | the websocket api" in ws1
    ag1 = report.split("### ag1")[1].split("### ")[0]
    for service in ("agent_backend", "local_sandbox"):
        assert "| memory_limits_mb.%s | 1024 |" % service in ag1
    assert "| of which the websocket api (api_websocket) | 15 |" in report
    groups.pop("dify_api_websocket")
    assert "websocket api (api_websocket)" not in cp.render_report(cp.build_plan(groups, hosts))


@settings(max_examples=60, deadline=None)
@given(mem=st.integers(1024, 65536), cpus=st.integers(1, 32), conns=st.integers(1, 200),
       pool=st.one_of(st.none(), st.integers(1, 60)), overflow=st.one_of(st.none(), st.integers(0, 30)),
       vector=st.sampled_from(["pgvector", "weaviate"]))
def test_the_budget_grows_by_exactly_the_websocket_connections(mem, cpus, conns, pool, overflow, vector):
    """A dedicated websocket host adds its pool's connections to the budget, nothing else, and
    max_connections covers it."""
    groups, hosts = split_fleet()
    knobs = {"dify_gunicorn_worker_connections": conns, "dify_vector_store": vector}
    if pool is not None:
        knobs["dify_sqlalchemy_pool_size"] = pool
    if overflow is not None:
        knobs["dify_sqlalchemy_max_overflow"] = overflow
    hosts["ws1"] = dict(host(mem, cpus), **knobs)
    without = cp.build_plan(groups, hosts)
    groups["dify_api_websocket"] = ["ws1"]
    plan = cp.build_plan(groups, hosts)
    ws = plan["hosts"]["ws1"]["sqlalchemy_pools"]["api_websocket"]
    want_pool = conns if pool is None else pool
    want_ovf = max(1, want_pool // 2) if overflow is None else overflow
    assert ws == {"pool_size": want_pool, "max_overflow": want_ovf, "processes": 1,
                  "connections": want_pool + want_ovf}
    before, after = without["fleet"]["connection_budget"], plan["fleet"]["connection_budget"]
    assert after["required"] - before["required"] == ws["connections"]
    assert after["breakdown"]["pgvector"] == before["breakdown"]["pgvector"]
    # max_connections (computed) covers it, and every PostgreSQL host is tuned for it
    assert plan["fleet"]["max_connections"] >= after["required"]
    for pg in ("pg1", "pg2"):
        assert plan["hosts"][pg]["postgresql"]["max_connections"] == plan["fleet"]["max_connections"]
