# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Sizing math: worked examples (numbers explained) and hypothesis properties."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ansible_collections.difyops.fleet.plugins.module_utils import capacity as cap
from ansible_collections.difyops.fleet.plugins.module_utils.capacity import CapacityError

KB = cap.parse_pg_size_kb
MEMORY_KEYS = ("shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem", "wal_buffers")


# ---------------------------------------------------------------- pg_tune

def test_pg_tune_16g_4cpu_web_matches_pgtune():
    s = cap.pg_tune(16384, 4)
    # 16 GiB = 16777216 kB
    assert s["max_connections"] == 200          # PGTune's default for web
    assert s["shared_buffers"] == "4GB"          # 1/4
    assert s["effective_cache_size"] == "12GB"   # 3/4
    assert s["maintenance_work_mem"] == "1GB"    # 1/16
    assert s["wal_buffers"] == "16MB"            # 3% of 4GB = 122MB, capped at 16MB
    # (16777216 - 4194304) / ((200 connections + 4 worker processes) * 3) = 20560.3
    assert s["work_mem"] == "20560kB"
    assert s["huge_pages"] == "try"              # shared_buffers >= 2GB
    assert s["min_wal_size"] == "1GB" and s["max_wal_size"] == "4GB"
    assert s["checkpoint_completion_target"] == 0.9
    assert s["random_page_cost"] == 1.1 and s["effective_io_concurrency"] == 200
    assert s["default_statistics_target"] == 100
    assert (s["max_worker_processes"], s["max_parallel_workers_per_gather"],
            s["max_parallel_workers"], s["max_parallel_maintenance_workers"]) == (4, 2, 4, 2)
    assert s["jit"] == "off" and s["wal_compression"] == "lz4"
    assert "autovacuum_max_workers" not in s and "io_workers" not in s


def test_pg_tune_small_host_without_parallel_settings():
    s = cap.pg_tune(4096, 2)
    assert s["shared_buffers"] == "1GB"
    # below 4 CPUs PGTune sets no parallel settings and counts PostgreSQL's
    # default 8 worker processes: (4194304 - 1048576) / ((200 + 8) * 3) = 5041.8
    assert s["work_mem"] == "5041kB"
    assert "max_worker_processes" not in s
    # 3% of 1GB = 31457kB, above the 16MB cap
    assert s["wal_buffers"] == "16MB"
    assert s["huge_pages"] == "off"
    # 512 MiB: shared_buffers 128MB = 131072kB, 3% = 3932kB stays
    assert cap.pg_tune(512, 1)["wal_buffers"] == "3932kB"


def test_pg_tune_work_mem_floor_with_many_connections():
    # (4194304 - 1048576) / ((1000 + 8) * 3) = 1040kB -> raised to the 4MB floor
    assert cap.pg_tune(4096, 1, max_connections=1000)["work_mem"] == "4MB"


def test_pg_tune_dw_large_host():
    s = cap.pg_tune(65536, 16, profile="dw", storage="hdd")
    assert s["max_connections"] == 40
    assert s["shared_buffers"] == "16GB"
    assert s["maintenance_work_mem"] == "8GB"      # 1/8 = 8GB, the cap
    assert s["autovacuum_work_mem"] == "2GB"       # maintenance >= 2GB
    assert s["autovacuum_max_workers"] == 4        # 16..31 CPUs
    assert s["max_parallel_workers_per_gather"] == 8   # ceil(16/2), not capped for dw
    assert s["max_parallel_maintenance_workers"] == 4  # capped at 4
    assert s["default_statistics_target"] == 500
    assert s["random_page_cost"] == 4 and s["effective_io_concurrency"] == 2
    assert s["min_wal_size"] == "4GB" and s["max_wal_size"] == "16GB"
    # (67108864 - 16777216) / ((40 + 16) * 3) = 299593.1, halved for dw = 149796
    assert s["work_mem"] == "149796kB"
    assert "jit" not in s


def test_pg_tune_desktop():
    s = cap.pg_tune(8192, 2, profile="desktop")
    assert s["shared_buffers"] == "512MB"          # 1/16
    assert s["effective_cache_size"] == "2GB"      # 1/4
    assert s["wal_level"] == "minimal" and s["max_wal_senders"] == 0
    # (8388608 - 524288) / ((20 + 8) * 3) / 6 = 15603.4
    assert s["work_mem"] == "15603kB"


def test_pg_tune_versions():
    assert cap.pg_tune(4096, 4, pg_version=14)["wal_compression"] == "on"
    assert "jit" not in cap.pg_tune(4096, 4, pg_version=11)
    assert "max_parallel_maintenance_workers" not in cap.pg_tune(4096, 4, pg_version=10)
    s18 = cap.pg_tune(65536, 16, pg_version=18)
    assert s18["io_workers"] == 4                  # 16 CPUs / 4
    assert "io_method" not in s18                  # default 'worker' kept on purpose
    assert "io_workers" not in cap.pg_tune(65536, 8, pg_version=18)   # 8/4 = 2 -> default 3


def test_pg_tune_db_size_adjusts_work_mem():
    base = KB(cap.pg_tune(16384, 4)["work_mem"])
    assert KB(cap.pg_tune(16384, 4, db_size="less_ram")["work_mem"]) == int(base * 1.3)
    assert KB(cap.pg_tune(16384, 4, db_size="greater_ram")["work_mem"]) == int(base * 0.9)
    assert cap.pg_tune(16384, 4, storage="hdd", db_size="less_ram")["random_page_cost"] == 1.1


def test_pg_tune_memory_fraction_is_a_smaller_host():
    assert cap.pg_tune(16384, 4, memory_fraction=0.25) == cap.pg_tune(4096, 4)


def test_pg_tune_accepts_fact_strings():
    assert cap.pg_tune("16384", "4") == cap.pg_tune(16384, 4)


@pytest.mark.parametrize("kwargs, words", [
    (dict(memory_mb=0, cpus=2), ["memory_mb", "greater than 0"]),
    (dict(memory_mb=-1, cpus=2), ["memory_mb", "-1"]),
    (dict(memory_mb="lots", cpus=2), ["memory_mb", "lots"]),
    (dict(memory_mb=True, cpus=2), ["memory_mb"]),
    (dict(memory_mb=float("nan"), cpus=2), ["memory_mb", "finite"]),
    (dict(memory_mb=4096, cpus=0), ["cpus"]),
    (dict(memory_mb=4096, cpus=2, profile="web2"), ["profile", "web2", "oltp"]),
    (dict(memory_mb=4096, cpus=2, storage="tape"), ["storage", "tape", "nvme"]),
    (dict(memory_mb=4096, cpus=2, pg_version=9), ["pg_version", "10"]),
    (dict(memory_mb=4096, cpus=2, max_connections=5), ["max_connections", "10"]),
    (dict(memory_mb=4096, cpus=2, memory_fraction=1.5), ["memory_fraction", "1.0"]),
    (dict(memory_mb=100, cpus=2), ["128 MiB", "more memory"]),
])
def test_pg_tune_refuses_bad_input(kwargs, words):
    with pytest.raises(CapacityError) as exc:
        cap.pg_tune(**kwargs)
    for w in words:
        assert w in str(exc.value)


def test_format_and_parse_sizes():
    assert cap.format_kb(4194304) == "4GB"
    assert cap.format_kb(5120) == "5MB"
    assert cap.format_kb(20560) == "20560kB"
    assert KB("4GB") == 4194304 and KB("512MB") == 524288 and KB("10280kB") == 10280 and KB(64) == 64
    with pytest.raises(CapacityError):
        KB("4 gigs")


pg_inputs = dict(
    cpus=st.integers(1, 128),
    profile=st.sampled_from(cap.PG_PROFILES),
    storage=st.sampled_from(cap.PG_STORAGES),
    connections=st.one_of(st.none(), st.integers(10, 5000)),
    version=st.integers(10, 18),
)


@settings(max_examples=300, deadline=None)
@given(m1=st.integers(128, 4 * 1024 * 1024), m2=st.integers(128, 4 * 1024 * 1024), **pg_inputs)
def test_pg_tune_monotone_in_memory(m1, m2, cpus, profile, storage, connections, version):
    lo, hi = sorted((m1, m2))
    a = cap.pg_tune(lo, cpus, profile, storage, connections, version)
    b = cap.pg_tune(hi, cpus, profile, storage, connections, version)
    for key in MEMORY_KEYS:
        assert KB(a[key]) <= KB(b[key]), key


@settings(max_examples=300, deadline=None)
@given(memory=st.integers(128, 4 * 1024 * 1024), fraction=st.floats(0.05, 1.0), **pg_inputs)
def test_pg_tune_within_ram_and_above_postgresql_minimums(memory, fraction, cpus, profile, storage,
                                                          connections, version):
    assume(memory * fraction >= cap.PG_MIN_MEMORY_MB)
    s = cap.pg_tune(memory, cpus, profile, storage, connections, version, memory_fraction=fraction)
    ram_kb = memory * fraction * 1024
    for key in MEMORY_KEYS:
        assert KB(s[key]) <= ram_kb, key
        assert KB(s[key]) >= cap.PG_MIN_KB[key], key
    assert KB(s["shared_buffers"]) + KB(s["maintenance_work_mem"]) < ram_kb
    assert KB(s["work_mem"]) >= 4096                       # PGTune's floor
    assert KB(s["wal_buffers"]) <= 16384
    assert s["max_connections"] >= 10


# ------------------------------------------------------------------ InnoDB

def test_innodb_tune_examples():
    s = cap.innodb_tune(16384, 4)
    # 75% of 16 GiB = 12288M, 4 instances (4 CPUs), chunk 4 x 128M divides it
    assert s["innodb_buffer_pool_size"] == "12288M"
    assert s["innodb_buffer_pool_instances"] == 4
    assert s["innodb_log_file_size"] == "2048M"          # 12288/4 = 3072, capped at 2 GiB
    assert s["innodb_redo_log_capacity"] == "4096M"
    assert s["innodb_flush_log_at_trx_commit"] == 1
    small = cap.innodb_tune(2048, 2, durable=False, max_connections=500)
    # 70% of 2048 = 1433 -> 1 instance (pool < 2 GiB) -> 128M chunks -> 1408M
    assert small["innodb_buffer_pool_size"] == "1408M"
    assert small["innodb_log_file_size"] == "352M"       # 1408 / 4
    assert small["innodb_flush_log_at_trx_commit"] == 2
    assert small["max_connections"] == 500
    with pytest.raises(CapacityError):
        cap.innodb_tune(128, 1)


@settings(max_examples=200, deadline=None)
@given(m1=st.integers(256, 1024 * 1024), m2=st.integers(256, 1024 * 1024), cpus=st.integers(1, 64))
def test_innodb_pool_below_ram_and_monotone(m1, m2, cpus):
    lo, hi = sorted((m1, m2))
    a = int(cap.innodb_tune(lo, cpus)["innodb_buffer_pool_size"][:-1])
    b = int(cap.innodb_tune(hi, cpus)["innodb_buffer_pool_size"][:-1])
    assert a < lo and b < hi
    # a larger host may lose at most one chunk set to rounding against more instances
    assert a <= b + 128 * 8


# ------------------------------------------------------- gunicorn / celery

def test_gunicorn_workers_examples():
    assert cap.gunicorn_workers(4, 8192) == 9          # min(2*4+1, (8192-512)/640 = 12)
    assert cap.gunicorn_workers(8, 2048) == 2          # memory bound: (2048-512)/640 = 2
    assert cap.gunicorn_workers(1, 600) == 1           # never below 1
    assert cap.gunicorn_workers(16, 4096, per_worker_mb=1024, reserve_mb=0) == 4
    with pytest.raises(CapacityError):
        cap.gunicorn_workers(0, 4096)


def test_celery_concurrency_examples():
    # gevent: min(4 x 4 = 16, (8192 - 512 - 512) / 128 = 56) = 16; autoscale 16/4 = 4 .. 16
    assert cap.celery_concurrency(4, 8192) == {"concurrency": 16, "autoscale_min": 4, "autoscale_max": 16}
    # prefork: min(4 CPUs, (2048 - 512) / 512 = 3) = 3
    assert cap.celery_concurrency(4, 2048, pool="prefork")["concurrency"] == 3
    assert cap.celery_concurrency(1, 256)["concurrency"] == 1
    with pytest.raises(CapacityError) as exc:
        cap.celery_concurrency(4, 8192, pool="threads")
    assert "gevent" in str(exc.value)


@settings(max_examples=300, deadline=None)
@given(cpus=st.integers(1, 256), m1=st.integers(1, 1024 * 1024), m2=st.integers(1, 1024 * 1024),
       pool=st.sampled_from(cap.CELERY_POOLS))
def test_process_counts_monotone_and_bounded(cpus, m1, m2, pool):
    lo, hi = sorted((m1, m2))
    assert 1 <= cap.gunicorn_workers(cpus, lo) <= cap.gunicorn_workers(cpus, hi) <= 2 * cpus + 1
    a = cap.celery_concurrency(cpus, lo, pool=pool)
    b = cap.celery_concurrency(cpus, hi, pool=pool)
    assert 1 <= a["concurrency"] <= b["concurrency"]
    assert 1 <= a["autoscale_min"] <= a["autoscale_max"] == a["concurrency"]
    # memory used by the computed workers stays within RAM whenever one worker fits
    if lo >= 512 + 640:
        assert cap.gunicorn_workers(cpus, lo) * 640 + 512 <= lo


# ------------------------------------------------------------------ Redis

def test_redis_maxmemory_examples():
    assert cap.redis_maxmemory(8192) == {"maxmemory": 4294967296, "maxmemory_human": "4096mb",
                                         "policy": "noeviction"}
    assert cap.redis_maxmemory(1000, fraction=0.6)["maxmemory_human"] == "600mb"
    for bad in (dict(memory_mb=8192, fraction=1.0), dict(memory_mb=40), dict(memory_mb=0)):
        with pytest.raises(CapacityError):
            cap.redis_maxmemory(**bad)
    assert cap.parse_redis_bytes("4gb") == 4 * 1024 ** 3
    assert cap.parse_redis_bytes(1024) == 1024


@settings(max_examples=200, deadline=None)
@given(m1=st.integers(64, 4 * 1024 * 1024), m2=st.integers(64, 4 * 1024 * 1024),
       fraction=st.floats(0.5, 0.9))
def test_redis_maxmemory_below_ram_and_monotone(m1, m2, fraction):
    lo, hi = sorted((m1, m2))
    a = cap.redis_maxmemory(lo, fraction)["maxmemory"]
    b = cap.redis_maxmemory(hi, fraction)["maxmemory"]
    assert a <= b
    assert b < hi * 1024 * 1024


# --------------------------------------------------------------- Sentinel

def test_sentinel_quorum_examples():
    assert [cap.sentinel_quorum(n) for n in (3, 5, 7)] == [2, 3, 4]
    assert cap.sentinel_quorum(1, ha=False) == 1
    assert cap.sentinel_quorum(2, ha=False) == 2
    for n, fix in ((1, "use 3"), (2, "use 3"), (4, "use 3 or 5"), (6, "use 5 or 7")):
        with pytest.raises(CapacityError) as exc:
            cap.sentinel_quorum(n)
        assert fix in str(exc.value) and "odd" in str(exc.value)
    with pytest.raises(CapacityError):
        cap.sentinel_quorum(0, ha=False)


@given(n=st.integers(1, 1001), ha=st.booleans())
def test_quorum_is_a_majority(n, ha):
    if ha and (n < 3 or n % 2 == 0):
        with pytest.raises(CapacityError):
            cap.sentinel_quorum(n, ha=ha)
        return
    q = cap.sentinel_quorum(n, ha=ha)
    assert 2 * q > n          # a strict majority: two partitions cannot both reach it
    assert q <= n             # reachable with every Sentinel up
    assert 2 * (q - 1) <= n   # and the smallest such number


# ------------------------------------------------------ connection budget

APP = [
    {"name": "api1", "processes": 9, "pool_size": 10, "max_overflow": 5},
    {"name": "api2", "processes": 9, "pool_size": 10, "max_overflow": 5},
    {"name": "worker1", "processes": 1, "pool_size": 10, "max_overflow": 5},
]


def test_connection_budget_worked_example():
    b = cap.connection_budget(APP, plugin_daemons=1)
    # Dify processes: (9 + 9 + 1) x (10 + 5) = 285; plugin daemon 1 x 30;
    # pgvector 19 processes x 5 = 95; superuser 3 + admin 10 -> 423
    assert b["breakdown"]["app_total"] == 285
    assert b["breakdown"]["app_hosts"] == {"api1": 135, "api2": 135, "worker1": 15}
    assert b["breakdown"]["plugin_daemon"] == 30
    assert b["breakdown"]["pgvector"] == 95
    assert b["required"] == 423
    assert b["max_connections"] == 430 and b["max_connections_computed"] and b["fits"]


def test_connection_budget_over_max_connections_and_fix():
    b = cap.connection_budget(APP, plugin_daemons=1, max_connections=300)
    assert not b["fits"] and not b["ok"]
    # fixed part 30 + 95 + 3 + 10 = 138, leaving 162 for 19 processes; the
    # overflow was given (5) so it stays: 19 x (p + 5) <= 162 -> p = 3
    assert b["max_pool_size"] == 3
    msg = cap.budget_fix_message(b)
    assert "lower dify_sqlalchemy_pool_size to 3" in msg
    assert "raise postgresql_max_connections to 430" in msg
    assert "PgBouncer" in msg
    fixed = [dict(h, pool_size=3) for h in APP]
    assert cap.connection_budget(fixed, plugin_daemons=1, max_connections=300)["fits"]
    assert not cap.connection_budget([dict(h, pool_size=4) for h in APP], plugin_daemons=1,
                                     max_connections=300)["fits"]
    # without a given overflow it follows the pool (half): 19 x (p + p//2) <= 162 -> p = 5
    free = [{"name": h["name"], "processes": h["processes"], "pool_size": 10} for h in APP]
    assert cap.connection_budget(free, plugin_daemons=1, max_connections=300)["max_pool_size"] == 5


def test_connection_budget_memory_check():
    # 1 GiB database for 430 connections: shared_buffers 256MB + 430 x (4MB + 2MB) = 2836 MiB
    b = cap.connection_budget(APP, plugin_daemons=1, db_memory_mb=1024, db_cpus=2)
    assert b["fits"] and not b["memory_fits"] and not b["ok"]
    assert b["memory"]["required_mb"] == 256 + 430 * 6
    assert cap.connection_budget(APP, plugin_daemons=1, db_memory_mb=16384, db_cpus=4)["ok"]


def test_connection_budget_inputs():
    by_name = {"a": {"api_processes": 4, "worker_processes": 1, "beat_processes": 1, "pool_size": 4,
                     "max_overflow": 0}}
    b = cap.connection_budget(by_name, pgvector_on_db=False, superuser_reserved=0, admin_reserved=0,
                              minimum=10)
    assert b["required"] == 6 * 4 and b["max_connections"] == 30
    with pytest.raises(CapacityError):
        cap.connection_budget("api1")
    with pytest.raises(CapacityError) as exc:
        cap.connection_budget([{"name": "a", "processes": 2, "pool_size": 0}])
    assert "dify_sqlalchemy_pool_size of a" in str(exc.value)


@settings(max_examples=200, deadline=None)
@given(hosts=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 50), st.integers(0, 30)),
                      min_size=1, max_size=20),
       daemons=st.integers(0, 3), mc=st.one_of(st.none(), st.integers(10, 5000)))
def test_connection_budget_properties(hosts, daemons, mc):
    app = [{"name": "h%d" % i, "processes": p, "pool_size": pool, "max_overflow": ovf}
           for i, (p, pool, ovf) in enumerate(hosts)]
    b = cap.connection_budget(app, plugin_daemons=daemons, max_connections=mc)
    expected = (sum(p * (pool + ovf) for p, pool, ovf in hosts) + daemons * 30
                + sum(entry[0] for entry in hosts) * 5 + 3 + 10)
    assert b["required"] == expected
    assert b["fits"] == (expected <= b["max_connections"])
    if mc is None:
        assert b["fits"] and b["max_connections"] >= 100
    if b["max_pool_size"] is not None:
        resized = [dict(h, pool_size=b["max_pool_size"], max_overflow=None) for h in app]
        for h, orig in zip(resized, app):
            h["max_overflow"] = orig["max_overflow"]
        again = cap.connection_budget(resized, plugin_daemons=daemons, max_connections=b["max_connections"])
        assert again["fits"]


# ---------------------------------------------------------------- OpenDAL

def test_opendal_env():
    env = cap.opendal_env("s3", {"bucket": "dify", "endpoint": "https://s3.example.com",
                                 "enable_virtual_host_style": True, "region": None, "retries": 3})
    assert env == {"OPENDAL_SCHEME": "s3", "OPENDAL_S3_BUCKET": "dify",
                   "OPENDAL_S3_ENDPOINT": "https://s3.example.com",
                   "OPENDAL_S3_ENABLE_VIRTUAL_HOST_STYLE": "true", "OPENDAL_S3_RETRIES": "3"}
    assert cap.opendal_env("fs", {"root": "storage"}) == {"OPENDAL_SCHEME": "fs", "OPENDAL_FS_ROOT": "storage"}
    for scheme, options in (("s-3", {}), ("", {}), (3, {}), ("s3", ["bucket"]), ("s3", {"bad-key": 1}),
                            ("s3", {"bucket": {"nested": 1}})):
        with pytest.raises(CapacityError):
            cap.opendal_env(scheme, options)
