# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""fleet_plan: the plan on fake inventories, the fleet rules, the module and
the controller action run for real (module as a process, action through
ansible-playbook), and ansible-doc rendering of every capacity plugin."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.difyops.fleet.plugins.module_utils import capacity as cap
from ansible_collections.difyops.fleet.plugins.module_utils import capacity_plan as cp
from ansible_collections.difyops.fleet.plugins.module_utils import catalog

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
COLLECTIONS = os.path.join(ROOT, ".collections")
MODULE = os.path.join(ROOT, "plugins", "modules", "fleet_plan.py")
BIN = os.path.dirname(sys.executable)
# every group an all-in-one host sits in (the optional MySQL and vector-store
# groups are not part of a default fleet)
ALL_GROUPS = [g for g in catalog.FLEET_GROUPS if g not in ("dify_mysql", "dify_vector")]


def host(mem, cpus):
    return {"ansible_memtotal_mb": mem, "ansible_processor_vcpus": cpus}


def split_fleet():
    """2 PostgreSQL, 3 Redis+Sentinel, 2 api+web, 1 worker+beat+sandbox+daemon+proxy, 1 edge."""
    groups = {
        "dify_postgres": ["pg1", "pg2"],
        "dify_redis": ["r1", "r2", "r3"],
        "dify_sentinel": ["r1", "r2", "r3"],
        "dify_api": ["app1", "app2"],
        "dify_web": ["app1", "app2"],
        "dify_worker": ["w1"],
        "dify_beat": ["w1"],
        "dify_sandbox": ["w1"],
        "dify_plugin_daemon": ["w1"],
        "dify_ssrf_proxy": ["w1"],
        "dify_edge": ["edge1"],
    }
    hosts = {
        "pg1": host(16384, 4), "pg2": host(16384, 4),
        "r1": host(4096, 2), "r2": host(4096, 2), "r3": host(4096, 2),
        "app1": host(8192, 4), "app2": host(8192, 4),
        "w1": host(8192, 4), "edge1": host(2048, 2),
    }
    return groups, hosts


def errors_of(groups, hosts, overrides=None):
    with pytest.raises(cp.PlanError) as exc:
        cp.build_plan(groups, hosts, overrides)
    return "\n".join(exc.value.errors)


# ------------------------------------------------------------ worked plan

def test_split_fleet_worked_example():
    groups, hosts = split_fleet()
    plan = cp.build_plan(groups, hosts)
    h = plan["hosts"]
    # app1: api + web. OS 512 + web 1024 leave 6656 MiB for the api;
    # gunicorn = min(2 x 4 + 1 = 9, 6656 / 640 = 10) = 9
    assert h["app1"]["memory_split"] == {"os": 512, "web": 1024, "api": 6656}
    assert h["app1"]["gunicorn_workers"] == 9
    # api pool = SERVER_WORKER_CONNECTIONS 10, overflow 5 -> 9 x 15 = 135
    assert h["app1"]["sqlalchemy_pool_size"] == 10 and h["app1"]["sqlalchemy_max_overflow"] == 5
    assert h["app1"]["db_connections"] == 135
    # w1: worker + beat 512 + sandbox 1024 + daemon 2048 + proxy 128 + OS 512 -> 3968 for celery;
    # gevent concurrency = min(4 x 4 = 16, (3968 - 512) / 128 = 27) = 16, autoscale 4..16
    assert h["w1"]["memory_split"]["worker"] == 8192 - 512 - 512 - 1024 - 2048 - 128
    assert h["w1"]["celery_concurrency"] == 16 and h["w1"]["celery_autoscale"] == [4, 16]
    # worker pool 16 + 8 (one gevent process) and beat 2 + 1
    assert h["w1"]["sqlalchemy_pools"]["worker"]["connections"] == 24
    assert h["w1"]["sqlalchemy_pools"]["beat"]["connections"] == 3
    # budget: 135 + 135 + 24 + 3 = 297 app, plugin daemon 30, pgvector (9 + 9 + 1) x 5 = 95,
    # 1 replica, 3 superuser + 10 admin = 436 -> max_connections 440
    budget = plan["fleet"]["connection_budget"]
    assert budget["breakdown"]["app_total"] == 297
    assert budget["breakdown"]["pgvector"] == 95
    assert budget["required"] == 436
    assert plan["fleet"]["max_connections"] == 440
    # both PostgreSQL hosts tuned for 440 connections on their whole 16 GiB (only service)
    assert h["pg1"]["postgresql"] == dict(cap.pg_tune(16384, 4, max_connections=440),
                                          superuser_reserved_connections=3)
    assert h["pg1"]["postgresql_version"] == 17
    assert h["pg2"]["postgresql"]["max_connections"] == 440
    assert (h["pg1"]["postgresql_role"], h["pg2"]["postgresql_role"]) == ("primary", "replica")
    # Redis + Sentinel: OS 512 + sentinel 64 -> 3520 MiB for Redis, maxmemory half = 1760mb
    assert h["r1"]["redis_maxmemory"] == 1760 * 1024 * 1024
    assert h["r1"]["redis_maxmemory_policy"] == "noeviction"
    fleet = plan["fleet"]
    assert fleet["sentinel_quorum"] == 2 and fleet["beat_host"] == "w1"
    assert fleet["postgres_primary"] == "pg1" and fleet["redis_master"] == "r1"
    for name, entry in h.items():
        if "memory_mb" in entry:
            assert entry["memory_committed_mb"] <= entry["memory_mb"], name
    report = cp.render_report(plan)
    assert "| **required** | **436** |" in report
    assert "### app1" in report and "gunicorn_workers | 9 |" in report


def test_all_in_one_host_splits_memory():
    plan = cp.build_plan({g: ["aio"] for g in ALL_GROUPS}, {"aio": host(16384, 4)})
    e = plan["hosts"]["aio"]
    # sentinel, etcd, beat, web, sandbox, plugin daemon, ssrf proxy, edge; Dify 1.15+/1.16+:
    # websocket api, agent backend, local sandbox, agent proxy
    light = 64 + 128 + 512 + 1024 + 1024 + 2048 + 128 + 128 + 1024 + 1024 + 1024 + 128
    rest = 16384 - 512 - light
    # weights postgresql 4, redis 2, api 3, worker 3 (of 12); the PostgreSQL
    # share is rounded down to 64 MiB
    pg = rest * 4 // 12
    assert e["memory_split"]["postgresql"] == pg - pg % 64
    assert e["memory_split"]["redis"] == rest * 2 // 12
    assert sum(e["memory_split"].values()) <= 16384
    assert e["postgresql"] == dict(cap.pg_tune(16384, 4, max_connections=plan["fleet"]["max_connections"],
                                               memory_fraction=e["memory_split"]["postgresql"] / 16384.0),
                                   superuser_reserved_connections=3)
    assert e["redis_maxmemory"] <= e["memory_split"]["redis"] * 1024 * 1024 // 2
    assert e["gunicorn_workers"] == cap.gunicorn_workers(4, e["memory_split"]["api"], reserve_mb=0)
    assert e["memory_committed_mb"] <= 16384
    # one Sentinel: the quorum is a majority of one
    assert plan["fleet"]["sentinel_quorum"] == 1
    # every Dify container's memory limit: the api's from its workers, the light services' budgets
    assert e["memory_limits_mb"]["api"] == e["gunicorn_workers"] * 640 + 256
    assert e["memory_limits_mb"]["worker"] == 512 + e["celery_concurrency"] * 128
    assert (e["memory_limits_mb"]["web"], e["memory_limits_mb"]["plugin_daemon"]) == (1024, 2048)


def test_mysql_hosts_get_innodb_settings_for_the_fleet_budget():
    groups, hosts = split_fleet()
    groups = dict(groups, dify_mysql=["my1"], dify_vector=["vec1"])
    hosts = dict(hosts, my1=host(8192, 4), vec1=host(4096, 2))
    plan = cp.build_plan(groups, hosts)
    mc = plan["fleet"]["max_connections"]
    e = plan["hosts"]["my1"]
    assert e["tiers"] == ["mysql"] and e["memory_split"] == {"mysql": 8192}
    assert e["mysql"] == cap.innodb_tune(8192, 4, max_connections=mc, memory_fraction=1.0)
    assert "the fleet's budget" in e["why"]["mysql"]
    assert plan["hosts"]["vec1"]["memory_split"] == {"vector": 4096}
    # shared with the api: weights mysql 4, api 3
    groups2 = dict(groups, dify_mysql=["app1"])
    e2 = cp.build_plan(groups2, hosts)["hosts"]["app1"]
    assert e2["memory_split"]["mysql"] > e2["memory_split"]["api"]
    assert int(e2["mysql"]["innodb_buffer_pool_size"].rstrip("M")) < e2["memory_split"]["mysql"]


def test_refuses_mysql_max_connections_below_the_budget():
    groups, hosts = split_fleet()
    groups = dict(groups, dify_mysql=["my1"])
    hosts = dict(hosts, my1=dict(host(8192, 4), mysql_max_connections=20))
    err = errors_of(groups, hosts)
    assert "MySQL connection budget exceeded on my1" in err
    assert "mysql_max_connections is 20" in err and "set it to at least" in err


def test_memory_weights_override():
    groups = {"dify_postgres": ["db"], "dify_redis": ["db"]}
    plan = cp.build_plan(groups, {"db": dict(host(8192, 2), difyops_memory_weights={"redis": 4})})
    split = plan["hosts"]["db"]["memory_split"]
    assert split["redis"] == (8192 - 512) * 4 // 8


def test_overrides_win_and_are_reported():
    groups, hosts = split_fleet()
    hosts["app1"]["dify_gunicorn_workers"] = 4
    plan = cp.build_plan(groups, hosts, {"dify_sqlalchemy_pool_size": 6, "redis_maxmemory": "1gb"})
    assert plan["hosts"]["app1"]["gunicorn_workers"] == 4
    assert plan["hosts"]["app2"]["gunicorn_workers"] == 9
    assert plan["hosts"]["app1"]["sqlalchemy_pool_size"] == 6
    assert plan["hosts"]["app1"]["sqlalchemy_max_overflow"] == 3
    assert plan["hosts"]["r2"]["redis_maxmemory"] == 1024 ** 3
    assert plan["hosts"]["app1"]["why"]["gunicorn_workers"] == "set by dify_gunicorn_workers"


# ------------------------------------------------------------ fleet rules

@pytest.mark.parametrize("count", [2, 4])
def test_even_sentinels_get_a_majority_quorum(count):
    # the count rule (odd, >= 3 for HA) is preflight's (catalog.count_problems); the plan only sizes
    groups, hosts = split_fleet()
    names = ["s%d" % i for i in range(count)]
    groups["dify_sentinel"] = names
    hosts.update((n, host(1024, 1)) for n in names)
    assert cp.build_plan(groups, hosts)["fleet"]["sentinel_quorum"] == count // 2 + 1


def test_sentinel_quorum_knob():
    groups, hosts = split_fleet()
    assert cp.build_plan(groups, hosts, {"redis_sentinel_quorum": 3})["fleet"]["sentinel_quorum"] == 3
    assert "redis_sentinel_quorum is 4 but dify_sentinel has 3 host(s)" in errors_of(
        groups, hosts, {"redis_sentinel_quorum": 4})


def test_plan_outputs_every_size_the_roles_read():
    groups, hosts = split_fleet()
    for entry in hosts.values():
        entry.update(dify_celery_pool="prefork", dify_plugin_db_max_open_conns=12,
                     dify_plugin_db_max_idle_conns=40, dify_pgvector_max_connection=3,
                     dify_gunicorn_worker_connections=20, postgresql_version=15)
    plan = cp.build_plan(groups, hosts)
    w1, app1, pg2 = plan["hosts"]["w1"], plan["hosts"]["app1"], plan["hosts"]["pg2"]
    assert w1["celery_pool"] == "prefork"
    assert w1["memory_limits_mb"]["worker"] == w1["celery_concurrency"] * 512
    assert (w1["plugin_db_max_open_conns"], w1["plugin_db_max_idle_conns"]) == (12, 12)
    assert plan["fleet"]["plugin_db_max_open_conns"] == 12
    assert plan["fleet"]["pgvector_max_connection"] == 3
    assert app1["gunicorn_worker_connections"] == 20 and app1["sqlalchemy_pool_size"] == 20
    assert pg2["postgresql_version"] == 15 and pg2["postgresql"]["wal_compression"] == "lz4"
    assert plan["fleet"]["connection_budget"]["breakdown"]["plugin_daemon"] == 12


def test_postgresql_version_follows_the_hosts_debian_release():
    groups, hosts = split_fleet()
    hosts["pg2"]["ansible_distribution_release"] = "bookworm"
    plan = cp.build_plan(groups, hosts)
    assert plan["hosts"]["pg2"]["postgresql_version"] == 15
    assert plan["hosts"]["pg1"]["postgresql_version"] == 17


def test_memory_fraction_knobs_shrink_the_database():
    groups, hosts = split_fleet()
    groups = dict(groups, dify_mysql=["my1"])
    hosts = dict(hosts, my1=dict(host(8192, 4), mysql_memory_fraction=0.1, mysql_durable=False))
    hosts["pg1"]["postgresql_memory_fraction"] = 0.5
    plan = cp.build_plan(groups, hosts)
    mc = plan["fleet"]["max_connections"]
    assert plan["hosts"]["my1"]["mysql"] == cap.innodb_tune(8192, 4, max_connections=mc, memory_fraction=0.1,
                                                            durable=False)
    assert plan["hosts"]["pg1"]["postgresql"]["shared_buffers"] == "2GB"


def test_fleet_variables_from_the_inventory():
    groups, hosts = split_fleet()
    for entry in hosts.values():          # as group_vars/all would
        entry["dify_vector_store"] = "weaviate"
        entry["difyops_pg_admin_connections"] = 20
    budget = cp.build_plan(groups, hosts)["fleet"]["connection_budget"]
    # the worked example without the 95 pgvector connections and with 10 more admin ones
    assert budget["breakdown"]["pgvector"] == 0
    assert budget["required"] == 436 - 95 + 10


def test_refuses_budget_over_max_connections_with_the_fix():
    groups, hosts = split_fleet()
    msg = errors_of(groups, hosts, {"postgresql_max_connections": 300})
    # demand 436 as in the worked example. Fixed: plugin daemon 30 + pgvector 95
    # + 1 replica + 13 reserved = 139, leaving 161 for the 20 pooled processes
    # (9 + 9 gunicorn, 1 celery, 1 beat); with overflow = pool // 2:
    # pool 5 -> 20 x 7 = 140 fits, pool 6 -> 20 x 9 = 180 does not.
    assert "the fleet can open 436 connections" in msg
    assert "postgresql_max_connections is 300" in msg
    assert ("lower dify_sqlalchemy_pool_size to 5, raise postgresql_max_connections to 440 or put "
            "PgBouncer in front of PostgreSQL") in msg
    pool = 5
    # the suggested pool is accepted, one more is not
    cp.build_plan(groups, hosts, {"postgresql_max_connections": 300, "dify_sqlalchemy_pool_size": pool})
    errors_of(groups, hosts, {"postgresql_max_connections": 300, "dify_sqlalchemy_pool_size": pool + 1})


def test_refuses_database_memory_too_small_for_the_connections():
    groups, hosts = split_fleet()
    hosts["pg1"] = host(1024, 2)
    msg = errors_of(groups, hosts)
    # 440 connections x (4MB work_mem + 2 MiB) + 256MB shared_buffers = 2896 MiB > 1024
    assert "PostgreSQL on pg1 needs about 2896 MiB" in msg and "PgBouncer" in msg


def test_refuses_overcommitted_shared_host():
    groups, hosts = split_fleet()
    hosts["app1"]["dify_gunicorn_workers"] = 20
    msg = errors_of(groups, hosts)
    # 20 x 640 = 12800 MiB but the api has 6656 MiB: 6656 / 640 = 10 fit
    assert "memory over-committed on app1: dify_gunicorn_workers=20 x 640 MiB = 12800 MiB" in msg
    assert "lower dify_gunicorn_workers to 10" in msg
    hosts["app1"]["dify_gunicorn_workers"] = 10
    cp.build_plan(groups, hosts)


def test_refuses_too_small_all_in_one():
    msg = errors_of({g: ["aio"] for g in ALL_GROUPS}, {"aio": host(4096, 2)})
    assert "memory over-committed on aio" in msg and "give aio more memory" in msg


def test_refuses_a_dedicated_host_too_small_for_one_worker():
    groups, hosts = split_fleet()
    hosts["app2"] = host(1024, 2)
    groups["dify_web"] = ["app1"]            # app2 runs the api only
    msg = errors_of(groups, hosts)
    # one gunicorn worker (640 MiB) + the 512 MiB reserve do not fit in 1024 MiB
    assert "memory over-committed on app2: its services need 1152 MiB (api 1152) but it has 1024 MiB" in msg


def test_refuses_redis_maxmemory_without_fork_room():
    groups, hosts = split_fleet()
    hosts["r1"]["redis_maxmemory"] = "3gb"
    msg = errors_of(groups, hosts)
    assert "memory over-committed on r1: redis_maxmemory 3072 MiB" in msg and "1760mb" in msg


@pytest.mark.parametrize("var, value, words", [
    ("dify_gunicorn_workers", -2, ["dify_gunicorn_workers on app1", "-2"]),
    ("dify_gunicorn_workers", "many", ["dify_gunicorn_workers on app1", "many"]),
    ("dify_sqlalchemy_pool_size", 0, ["dify_sqlalchemy_pool_size on app1"]),
    ("dify_celery_pool", "threads", ["dify_celery_pool on app1", "threads"]),
    ("difyops_memory_mb", 0, ["difyops_memory_mb"]),
])
def test_refuses_bad_numbers(var, value, words):
    groups = {"dify_postgres": ["pg1"], "dify_api": ["app1"], "dify_worker": ["app1"], "dify_beat": ["app1"]}
    hosts = {"pg1": host(8192, 2), "app1": dict(host(8192, 4), **{var: value})}
    msg = errors_of(groups, hosts)
    for w in words:
        assert w in msg


def test_refuses_missing_facts_and_low_replica_max_connections():
    groups, hosts = split_fleet()
    del hosts["w1"]["ansible_memtotal_mb"]
    msg = errors_of(groups, hosts)
    assert "w1 has no memory" in msg and "difyops_memory_mb" in msg
    groups, hosts = split_fleet()
    hosts["pg2"]["postgresql_max_connections"] = 200
    msg = errors_of(groups, hosts)
    assert "postgresql_max_connections on pg2 is 200, below the fleet's 440" in msg


def test_refuses_unknown_override():
    groups, hosts = split_fleet()
    assert "dify_sqlalchemy_poolsize" in errors_of(groups, hosts, {"dify_sqlalchemy_poolsize": 3})


@settings(max_examples=60, deadline=None)
@given(mems=st.lists(st.integers(512, 262144), min_size=6, max_size=6),
       cpus=st.lists(st.integers(1, 64), min_size=6, max_size=6))
def test_plans_never_overcommit(mems, cpus):
    groups = {"dify_postgres": ["pg"], "dify_redis": ["pg"], "dify_api": ["a1", "a2"],
              "dify_worker": ["w"], "dify_beat": ["w"], "dify_web": ["a1", "a2"], "dify_edge": ["e"],
              "dify_sandbox": ["w"], "dify_plugin_daemon": ["x"], "dify_ssrf_proxy": ["x"]}
    names = ["pg", "a1", "a2", "w", "e", "x"]
    hosts = dict((n, host(m, c)) for n, m, c in zip(names, mems, cpus))
    try:
        plan = cp.build_plan(groups, hosts)
    except cp.PlanError as exc:
        # acceptable refusals for computed values: a host too small for its
        # services, or a database host that cannot carry the connections the
        # app hosts can open
        for e in exc.errors:
            if e.startswith("memory over-committed on "):
                name = e.split()[3].rstrip(":")
                assert hosts[name]["ansible_memtotal_mb"] < 4096, e
            else:
                assert e.startswith("PostgreSQL on pg needs"), e
        return
    budget = plan["fleet"]["connection_budget"]
    assert plan["fleet"]["max_connections"] >= budget["required"]
    for n in names:
        e = plan["hosts"][n]
        assert e["memory_committed_mb"] <= e["memory_mb"], (n, e)
    pg = plan["hosts"]["pg"]
    assert pg["postgresql_memory_need_mb"] <= pg["memory_split"]["postgresql"]


# --------------------------------------------------- the module, for real

def run_module(tmp_path, args):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    proc = subprocess.run([sys.executable, MODULE, str(path)], check=False, capture_output=True, text=True, env=env,
                          timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def module_args(groups, hosts, **kw):
    args = {"groups": groups, "hostvars": hosts}
    args.update(kw)
    return args


def test_module_writes_report_then_is_idempotent(tmp_path):
    groups, hosts = split_fleet()
    report = tmp_path / "capacity.md"
    res = run_module(tmp_path, module_args(groups, hosts, report_path=str(report), _ansible_diff=True))
    assert res["changed"] and report.exists()
    assert res["plan"]["fleet"]["max_connections"] == 440
    assert res["ansible_facts"]["difyops_plan"] == res["plan"]
    assert res["diff"]["before"] == "" and "| **required** | **436** |" in res["diff"]["after"]
    assert report.read_text() == res["diff"]["after"]
    again = run_module(tmp_path, module_args(groups, hosts, report_path=str(report)))
    assert not again["changed"]


def test_module_check_mode_does_not_write(tmp_path):
    groups, hosts = split_fleet()
    report = tmp_path / "capacity.md"
    res = run_module(tmp_path, module_args(groups, hosts, report_path=str(report), _ansible_check_mode=True,
                                           _ansible_diff=True))
    assert res["changed"] and "diff" in res and not report.exists()


def test_module_refuses_a_broken_fleet_without_traceback(tmp_path):
    groups, hosts = split_fleet()
    report = tmp_path / "capacity.md"
    res = run_module(tmp_path, module_args(groups, hosts, report_path=str(report),
                                           overrides={"postgresql_max_connections": 300}))
    assert res["failed"]
    assert "raise postgresql_max_connections to 440" in res["msg"]
    assert res["errors"] and not report.exists()


# ------------------------------------------- the action plugin, in Ansible

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{python}"
  children:
    dify_postgres:
      hosts:
        pg1: {{difyops_memory_mb: 16384, difyops_cpus: 4}}
    dify_redis:
      hosts:
        r1: {{difyops_memory_mb: 4096, difyops_cpus: 2}}
    dify_api:
      hosts:
        app1: {{difyops_memory_mb: 8192, difyops_cpus: 4}}
    dify_worker:
      hosts:
        app1: {{}}
    dify_beat:
      hosts:
        app1: {{}}
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Plan
      difyops.fleet.fleet_plan:
        report_path: "{report}"
      run_once: true
      delegate_to: localhost
    - name: Every host sees the plan
      ansible.builtin.copy:
        content: "{{{{ difyops_plan.hosts[inventory_hostname] | to_json }}}}"
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        mode: "0644"
      delegate_to: localhost
"""


def ansible_playbook(tmp_path, *extra):
    (tmp_path / "inv.yml").write_text(INVENTORY.format(python=sys.executable))
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(report=tmp_path / "report.md", out=tmp_path / "out"))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_HOME=str(tmp_path / "home"))
    return subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "inv.yml"),
                           str(tmp_path / "play.yml")] + list(extra),
                          check=False, capture_output=True, text=True, env=env, timeout=300)


def test_action_plugin_in_a_playbook(tmp_path):
    proc = ansible_playbook(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    app1 = json.loads((tmp_path / "out" / "app1.json").read_text())
    pg1 = json.loads((tmp_path / "out" / "pg1.json").read_text())
    # app1 runs api + worker + beat on 8 GiB: OS 512 + beat 512, the rest split 3:3
    assert app1["memory_split"]["api"] == (8192 - 1024) // 2
    assert app1["gunicorn_workers"] == 5                  # 3584 / 640
    assert pg1["postgresql"]["shared_buffers"] == "4GB"
    assert "| **required** |" in (tmp_path / "report.md").read_text()


def test_action_plugin_refuses_before_any_change(tmp_path):
    proc = ansible_playbook(tmp_path, "-e", "postgresql_max_connections=50")
    assert proc.returncode != 0
    assert "fleet_plan refused the fleet: PostgreSQL connection budget exceeded" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "report.md").exists()
    assert not list((tmp_path / "out").iterdir())


# ------------------------------------------------------------ ansible-doc

@pytest.mark.parametrize("plugin_type, name, words", [
    ("filter", "pg_tune", ["shared_buffers", "memory_fraction", "profile"]),
    ("filter", "innodb_tune", ["innodb_buffer_pool_size"]),
    ("filter", "gunicorn_workers", ["per_worker_mb"]),
    ("filter", "celery_concurrency", ["autoscale"]),
    ("filter", "redis_maxmemory", ["noeviction"]),
    ("filter", "sentinel_quorum", ["Sentinels"]),
    ("filter", "connection_budget", ["max_pool_size", "plugin_daemon_pool"]),
    ("filter", "opendal_env", ["OPENDAL_"]),
    ("module", "fleet_plan", ["report_path", "overrides", "difyops_plan"]),
])
def test_ansible_doc_renders(plugin_type, name, words):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", plugin_type, "difyops.fleet." + name],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR" not in proc.stderr
    for w in words:
        assert w in proc.stdout
