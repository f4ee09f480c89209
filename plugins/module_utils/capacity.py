# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Sizing math for difyops.fleet: pure functions on plain numbers.

Shared by the filter plugins (``plugins/filter/capacity.py``) and the
``fleet_plan`` module/action.  Every function validates its input and raises
:class:`CapacityError` with a message that names the argument, the value and
the fix; callers turn that into ``AnsibleFilterError`` or ``fail_json``.

Units: memory in MiB (``ansible_memtotal_mb``), PostgreSQL sizes returned as
strings in PostgreSQL units ("4GB", "512MB", "10280kB"), Redis maxmemory in
bytes.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math
import re

KB_PER_MB = 1024
KB_PER_GB = 1024 * 1024

PG_PROFILES = ("web", "oltp", "dw", "desktop", "mixed")
PG_STORAGES = ("ssd", "hdd", "san", "nvme")
PG_DB_SIZES = ("less_ram", "mid_ram", "greater_ram")
PG_MIN_VERSION = 10

# PostgreSQL's own lower bounds (postgresql.conf documentation), in kB.
PG_MIN_KB = {
    "shared_buffers": 128,
    "effective_cache_size": 8,
    "maintenance_work_mem": 1024,
    "work_mem": 64,
    "wal_buffers": 32,
}
# Smallest memory we agree to tune PostgreSQL for (PGTune warns below 256 MB).
PG_MIN_MEMORY_MB = 128

# Private memory of one PostgreSQL backend besides work_mem (catalog caches,
# plan cache, stack): used by the connection-budget memory check.
PG_BACKEND_OVERHEAD_MB = 2

CELERY_POOLS = ("gevent", "prefork")


class CapacityError(ValueError):
    """Bad sizing input; the message names the variable, the value and the fix."""


# --------------------------------------------------------------------------
# input checking


def _number(name, value, minimum=None, maximum=None, integer=False, allow_zero=False):
    """Return ``value`` as int/float or raise CapacityError naming ``name``."""
    if isinstance(value, bool) or value is None:
        raise CapacityError("%s must be a number, got %r" % (name, value))
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise CapacityError("%s must be a number, got %r" % (name, value))
    if not isinstance(value, (int, float)):
        raise CapacityError("%s must be a number, got %r" % (name, value))
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise CapacityError("%s must be a finite number, got %r" % (name, value))
    if integer:
        if isinstance(value, float):
            if value != int(value):
                raise CapacityError("%s must be a whole number, got %r" % (name, value))
            value = int(value)
    if allow_zero:
        if value < 0:
            raise CapacityError("%s must be 0 or more, got %r" % (name, value))
    elif value <= 0:
        raise CapacityError("%s must be greater than 0, got %r" % (name, value))
    if minimum is not None and value < minimum:
        raise CapacityError("%s must be at least %s, got %r" % (name, minimum, value))
    if maximum is not None and value > maximum:
        raise CapacityError("%s must be at most %s, got %r" % (name, maximum, value))
    return value


def _choice(name, value, choices):
    if not isinstance(value, str) or value.lower() not in choices:
        raise CapacityError(
            "%s must be one of %s, got %r" % (name, ", ".join(choices), value)
        )
    return value.lower()


def format_kb(value_kb):
    """PostgreSQL unit string for a kB amount, in the largest exact unit.

    Same rule as PGTune: GB when divisible by 1 GiB, MB when divisible by
    1 MiB, else kB.
    """
    value_kb = int(value_kb)
    if value_kb % KB_PER_GB == 0:
        return "%dGB" % (value_kb // KB_PER_GB)
    if value_kb % KB_PER_MB == 0:
        return "%dMB" % (value_kb // KB_PER_MB)
    return "%dkB" % value_kb


_PG_UNITS_KB = {"kb": 1, "mb": KB_PER_MB, "gb": KB_PER_GB, "tb": KB_PER_GB * 1024}


def parse_pg_size_kb(text):
    """kB in a PostgreSQL memory setting ("4GB", "512MB", "10280kB", 8192 = kB)."""
    if isinstance(text, bool):
        raise CapacityError("not a PostgreSQL memory size: %r" % (text,))
    if isinstance(text, (int, float)):
        return int(text)
    m = re.match(r"^\s*(\d+)\s*([kKmMgGtT][bB])?\s*$", str(text))
    if not m:
        raise CapacityError(
            "not a PostgreSQL memory size: %r (write it like 4GB, 512MB or 8192kB)" % (text,)
        )
    return int(m.group(1)) * _PG_UNITS_KB[(m.group(2) or "kb").lower()]


# --------------------------------------------------------------------------
# PostgreSQL (PGTune method, Linux)

_PG_DEFAULT_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
_PG_MIN_WAL_MB = {"web": 1024, "oltp": 2048, "dw": 4096, "desktop": 100, "mixed": 1024}
_PG_MAX_WAL_MB = {"web": 4096, "oltp": 8192, "dw": 16384, "desktop": 2048, "mixed": 4096}
_PG_IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}
# PostgreSQL's default max_worker_processes, used for work_mem below 4 CPUs.
_PG_DEFAULT_WORKER_PROCESSES = 8


def pg_tune(memory_mb, cpus, profile="web", storage="ssd", max_connections=None,
            pg_version=17, memory_fraction=1.0, db_size="mid_ram"):
    """PostgreSQL settings for a host, following PGTune (le0pard/pgtune, Linux).

    ``memory_mb * memory_fraction`` is the memory PostgreSQL may use (the
    fraction sizes it on a host shared with other services).  Returns a dict
    keyed by PostgreSQL parameter name; memory values are strings in
    PostgreSQL units, counts are ints, costs are numbers, switches strings.

    Differences from PGTune, on purpose: ``io_method`` is not set on
    PostgreSQL 18 (PGTune's ``io_uring`` needs a liburing build; the default
    ``worker`` always starts), so ``io_workers`` is set as PGTune does for
    ``worker``; values never go below PostgreSQL's documented minimums.
    """
    memory_mb = _number("memory_mb", memory_mb)
    cpus = _number("cpus", cpus)
    profile = _choice("profile", profile, PG_PROFILES)
    storage = _choice("storage", storage, PG_STORAGES)
    db_size = _choice("db_size", db_size, PG_DB_SIZES)
    pg_version = _number("pg_version", pg_version, minimum=PG_MIN_VERSION)
    memory_fraction = _number("memory_fraction", memory_fraction, maximum=1.0)
    if max_connections is None:
        max_connections = _PG_DEFAULT_CONNECTIONS[profile]
    else:
        max_connections = _number("max_connections", max_connections, minimum=10, integer=True)
    pg_memory_mb = memory_mb * memory_fraction
    if pg_memory_mb < PG_MIN_MEMORY_MB:
        raise CapacityError(
            "PostgreSQL would get %d MiB (memory_mb=%s x memory_fraction=%s); it needs at "
            "least %d MiB: give the host more memory or PostgreSQL a larger share"
            % (pg_memory_mb, memory_mb, memory_fraction, PG_MIN_MEMORY_MB)
        )
    cpus = int(cpus) if cpus >= 1 else 1
    total_kb = int(pg_memory_mb * KB_PER_MB)
    shared_kb, cache_kb, maint_kb, wal_kb = _pg_memory_kb(total_kb, profile)
    parallel, workers_for_work_mem = _pg_parallel(cpus, profile, pg_version)
    work_kb = _pg_work_mem_kb(total_kb, shared_kb, max_connections, workers_for_work_mem, profile, db_size)
    if db_size == "less_ram":
        random_page_cost = 1.1
    elif storage == "hdd" or profile == "dw":
        random_page_cost = 4
    else:
        random_page_cost = 1.1

    out = {}
    out["max_connections"] = max_connections
    out["shared_buffers"] = format_kb(shared_kb)
    out["effective_cache_size"] = format_kb(cache_kb)
    out["maintenance_work_mem"] = format_kb(maint_kb)
    out["checkpoint_completion_target"] = 0.9
    out["wal_buffers"] = format_kb(wal_kb)
    out["default_statistics_target"] = 500 if profile == "dw" else 100
    out["random_page_cost"] = random_page_cost
    out["effective_io_concurrency"] = _PG_IO_CONCURRENCY[storage]
    out["work_mem"] = format_kb(work_kb)
    out["huge_pages"] = "try" if shared_kb >= 2 * KB_PER_GB else "off"
    out["min_wal_size"] = format_kb(_PG_MIN_WAL_MB[profile] * KB_PER_MB)
    out["max_wal_size"] = format_kb(_PG_MAX_WAL_MB[profile] * KB_PER_MB)
    for key, value in parallel:
        out[key] = value
    out.update(_pg_version_settings(cpus, profile, pg_version, maint_kb))
    return out


def _pg_memory_kb(total_kb, profile):
    """shared_buffers, effective_cache_size, maintenance_work_mem and wal_buffers in kB."""
    shared_kb = total_kb // 16 if profile == "desktop" else total_kb // 4
    shared_kb = max(shared_kb, PG_MIN_KB["shared_buffers"])
    cache_kb = total_kb // 4 if profile == "desktop" else (total_kb * 3) // 4
    cache_kb = max(cache_kb, PG_MIN_KB["effective_cache_size"])
    maint_kb = total_kb // 8 if profile == "dw" else total_kb // 16
    maint_kb = min(maint_kb, 8 * KB_PER_GB)
    maint_kb = max(maint_kb, PG_MIN_KB["maintenance_work_mem"])
    # wal_buffers: 3% of shared_buffers, at most 16MB, rounded up to 16MB
    # when above 14MB, at least 32kB.
    wal_kb = (3 * shared_kb) // 100
    wal_kb = min(wal_kb, 16 * KB_PER_MB)
    if 14 * KB_PER_MB < wal_kb < 16 * KB_PER_MB:
        wal_kb = 16 * KB_PER_MB
    wal_kb = max(wal_kb, PG_MIN_KB["wal_buffers"])
    return shared_kb, cache_kb, maint_kb, wal_kb


def _pg_parallel(cpus, profile, pg_version):
    """Parallel settings (only from 4 CPUs on), and the worker count work_mem divides by."""
    parallel = []
    if cpus >= 4:
        per_gather = int(math.ceil(cpus / 2.0))
        if profile != "dw":
            per_gather = min(per_gather, 4)
        parallel.append(("max_worker_processes", cpus))
        parallel.append(("max_parallel_workers_per_gather", per_gather))
        parallel.append(("max_parallel_workers", cpus))
        if pg_version >= 11:
            parallel.append(("max_parallel_maintenance_workers", min(int(math.ceil(cpus / 2.0)), 4)))
    return parallel, (cpus if cpus >= 4 else _PG_DEFAULT_WORKER_PROCESSES)


def _pg_work_mem_kb(total_kb, shared_kb, max_connections, workers, profile, db_size):
    """work_mem = (RAM - shared_buffers) / ((max_connections + workers) * 3),
    halved for dw/mixed, /6 for desktop, +30% when the DB fits in RAM,
    -10% when it is much larger, never below 4MB."""
    work_kb = (total_kb - shared_kb) / float((max_connections + workers) * 3)
    divisor = {"web": 1, "oltp": 1, "dw": 2, "mixed": 2, "desktop": 6}[profile]
    work_kb = int(math.floor(work_kb / divisor))
    if db_size == "less_ram":
        work_kb = int(math.floor(work_kb * 1.3))
    elif db_size == "greater_ram":
        work_kb = int(math.floor(work_kb * 0.9))
    return max(work_kb, 4 * KB_PER_MB)


def _pg_version_settings(cpus, profile, pg_version, maint_kb):
    """Settings that depend on the profile, the version or the size of the host."""
    out = {}
    if profile == "desktop":
        out["wal_level"] = "minimal"
        out["max_wal_senders"] = 0
    if pg_version >= 12 and profile in ("web", "oltp", "mixed"):
        out["jit"] = "off"
    out["wal_compression"] = "lz4" if pg_version >= 15 else "on"
    if cpus >= 32:
        out["autovacuum_max_workers"] = 5
    elif cpus >= 16:
        out["autovacuum_max_workers"] = 4
    if maint_kb >= 2 * KB_PER_GB:
        out["autovacuum_work_mem"] = format_kb(2 * KB_PER_GB)
    if pg_version >= 18:
        io_workers = min(32, max(3, cpus // 4))
        if io_workers > 3:
            out["io_workers"] = io_workers
    return out


def pg_memory_need_mb(settings, backend_overhead_mb=PG_BACKEND_OVERHEAD_MB):
    """MiB PostgreSQL needs with every connection busy: shared_buffers +
    max_connections x (work_mem + per-backend overhead)."""
    shared_mb = parse_pg_size_kb(settings["shared_buffers"]) / float(KB_PER_MB)
    work_mb = parse_pg_size_kb(settings["work_mem"]) / float(KB_PER_MB)
    return int(math.ceil(shared_mb + int(settings["max_connections"]) * (work_mb + backend_overhead_mb)))


# --------------------------------------------------------------------------
# MySQL / InnoDB (Dify's MySQL option)


def innodb_tune(memory_mb, cpus, max_connections=None, memory_fraction=1.0,
                storage="ssd", durable=True):
    """InnoDB settings for a MySQL 8 host.

    innodb_buffer_pool_size: 50% of RAM under 1 GiB, 70% up to 8 GiB, 75% up
    to 64 GiB, 80% above (rounded down to 128 MiB chunks x instances);
    one buffer pool instance per GiB of pool, at most 8 and at most the CPUs;
    redo log: a quarter of the pool, 48 MiB..2 GiB per file (2 files;
    innodb_redo_log_capacity is their sum for MySQL >= 8.0.30);
    flush_log_at_trx_commit 1 (durable) unless ``durable`` is false (2).
    """
    memory_mb = _number("memory_mb", memory_mb)
    cpus = _number("cpus", cpus)
    memory_fraction = _number("memory_fraction", memory_fraction, maximum=1.0)
    storage = _choice("storage", storage, PG_STORAGES)
    if max_connections is None:
        max_connections = 151
    max_connections = _number("max_connections", max_connections, minimum=10, integer=True)
    mem = memory_mb * memory_fraction
    if mem < 256:
        raise CapacityError(
            "MySQL would get %d MiB (memory_mb=%s x memory_fraction=%s); it needs at least "
            "256 MiB: give the host more memory or MySQL a larger share"
            % (mem, memory_mb, memory_fraction)
        )
    if mem < 1024:
        ratio = 0.5
    elif mem <= 8192:
        ratio = 0.7
    elif mem <= 65536:
        ratio = 0.75
    else:
        ratio = 0.8
    pool_mb = int(mem * ratio)
    instances = max(1, min(8, int(cpus), pool_mb // 1024))
    chunk = 128 * instances
    pool_mb = max(128, (pool_mb // chunk) * chunk)
    log_mb = min(2048, max(48, pool_mb // 4))
    return {
        "innodb_buffer_pool_size": "%dM" % pool_mb,
        "innodb_buffer_pool_instances": instances,
        "innodb_log_file_size": "%dM" % log_mb,
        "innodb_redo_log_capacity": "%dM" % (2 * log_mb),
        "innodb_flush_log_at_trx_commit": 1 if durable else 2,
        "innodb_flush_method": "O_DIRECT",
        "innodb_io_capacity": {"hdd": 200, "ssd": 2000, "san": 2000, "nvme": 10000}[storage],
        "max_connections": max_connections,
    }


# --------------------------------------------------------------------------
# Dify processes


def gunicorn_workers(cpus, memory_mb, per_worker_mb=640, reserve_mb=512):
    """Gunicorn workers for the Dify api: min(2 x cpus + 1, (memory - reserve) /
    per_worker), at least 1."""
    cpus = _number("cpus", cpus)
    memory_mb = _number("memory_mb", memory_mb)
    per_worker_mb = _number("per_worker_mb", per_worker_mb)
    reserve_mb = _number("reserve_mb", reserve_mb, allow_zero=True)
    by_cpu = int(2 * cpus + 1)
    by_memory = int((memory_mb - reserve_mb) // per_worker_mb)
    return max(1, min(by_cpu, by_memory))


def celery_concurrency(cpus, memory_mb, pool="gevent", per_task_mb=128,
                       per_process_mb=512, reserve_mb=512, tasks_per_cpu=4):
    """Celery concurrency for a Dify worker host.

    gevent (Dify's default pool): one process of ``per_process_mb`` running
    greenlets; concurrency = min(tasks_per_cpu x cpus, (memory - reserve -
    per_process) / per_task).  prefork: one process per task; concurrency =
    min(cpus, (memory - reserve) / per_process).  At least 1 either way.
    Autoscale: max = concurrency, min = a quarter of it (at least 1).
    """
    cpus = _number("cpus", cpus)
    memory_mb = _number("memory_mb", memory_mb)
    pool = _choice("pool", pool, CELERY_POOLS)
    per_task_mb = _number("per_task_mb", per_task_mb)
    per_process_mb = _number("per_process_mb", per_process_mb)
    reserve_mb = _number("reserve_mb", reserve_mb, allow_zero=True)
    tasks_per_cpu = _number("tasks_per_cpu", tasks_per_cpu)
    if pool == "gevent":
        by_cpu = int(tasks_per_cpu * cpus)
        by_memory = int((memory_mb - reserve_mb - per_process_mb) // per_task_mb)
    else:
        by_cpu = max(1, int(cpus))
        by_memory = int((memory_mb - reserve_mb) // per_process_mb)
    concurrency = max(1, min(by_cpu, by_memory))
    return {
        "concurrency": concurrency,
        "autoscale_min": max(1, int(math.ceil(concurrency / 4.0))),
        "autoscale_max": concurrency,
    }


def celery_memory_mb(concurrency, pool="gevent", per_task_mb=128, per_process_mb=512):
    """MiB a worker host's celery uses at ``concurrency`` (inverse of the above)."""
    if pool == "gevent":
        return per_process_mb + concurrency * per_task_mb
    return concurrency * per_process_mb


# --------------------------------------------------------------------------
# Redis


def redis_maxmemory(memory_mb, fraction=0.5):
    """Redis maxmemory for ``memory_mb`` of RAM.

    ``fraction`` (default 0.5) leaves the other half for the copy-on-write of
    the fork that writes RDB snapshots and rewrites the AOF.  Dify keeps its
    Celery broker queues in Redis, so nothing may be evicted: the policy is
    ``noeviction``.
    """
    memory_mb = _number("memory_mb", memory_mb)
    fraction = _number("fraction", fraction, maximum=0.9)
    mb = int(memory_mb * fraction)
    if mb < 32:
        raise CapacityError(
            "redis maxmemory would be %d MiB (memory_mb=%s x fraction=%s); Redis needs at "
            "least 32 MiB: give the host more memory or raise fraction" % (mb, memory_mb, fraction)
        )
    return {
        "maxmemory": mb * 1024 * 1024,
        "maxmemory_human": "%dmb" % mb,
        "policy": "noeviction",
    }


def parse_redis_bytes(value):
    """Bytes in a Redis memory value (int bytes, or "4gb", "512mb", "100kb")."""
    if isinstance(value, bool):
        raise CapacityError("not a Redis memory size: %r" % (value,))
    if isinstance(value, int):
        return value
    m = re.match(r"^\s*(\d+)\s*(b|k|kb|m|mb|g|gb)?\s*$", str(value), re.I)
    if not m:
        raise CapacityError(
            "not a Redis memory size: %r (write bytes, or like 4gb or 512mb)" % (value,)
        )
    unit = (m.group(2) or "b").lower()
    factor = {"b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2,
              "g": 1000 ** 3, "gb": 1024 ** 3}[unit]
    return int(m.group(1)) * factor


def sentinel_quorum(count, ha=True):
    """Quorum for ``count`` Sentinels: a strict majority, floor(n/2) + 1.

    With ``ha`` (the default) fewer than 3 or an even number is refused: an
    even count adds no failure tolerance and two cannot outvote a partition.
    """
    count = _number("count", count, integer=True)
    if ha and (count < 3 or count % 2 == 0):
        fix = "%d or %d" % (count - 1, count + 1) if count >= 4 else "3"
        raise CapacityError(
            "%d Sentinel(s) (hosts in dify_sentinel): high availability needs an odd number of "
            "at least 3 Sentinels; use %s" % (count, fix)
        )
    return count // 2 + 1


# --------------------------------------------------------------------------
# PostgreSQL connection budget


def _default_overflow(pool_size):
    return max(1, pool_size // 2)


def _app_host_connections(host, pool_size=None, max_overflow=None):
    processes = host["processes"]
    pool = host["pool_size"] if pool_size is None else pool_size
    if max_overflow is not None:
        ovf = max_overflow
    elif pool_size is not None and not host.get("max_overflow_fixed"):
        ovf = _default_overflow(pool)
    else:
        ovf = host["max_overflow"]
    return processes * (pool + ovf)


def _normalize_app_hosts(app_hosts):
    if isinstance(app_hosts, dict):
        items = []
        for name in app_hosts:
            entry = dict(app_hosts[name] or {})
            entry.setdefault("name", name)
            items.append(entry)
        app_hosts = items
    if not isinstance(app_hosts, (list, tuple)):
        raise CapacityError(
            "connection_budget expects a list of app hosts (dicts with name, processes, "
            "pool_size, max_overflow), got %r" % (type(app_hosts).__name__,)
        )
    out = []
    for i, h in enumerate(app_hosts):
        if not isinstance(h, dict):
            raise CapacityError("app host #%d must be a dict, got %r" % (i, h))
        name = str(h.get("name", "host%d" % i))
        processes = h.get("processes")
        if processes is None:
            processes = sum(int(_number("%s %s" % (name, k), h.get(k, 0), integer=True, allow_zero=True))
                            for k in ("api_processes", "worker_processes", "beat_processes"))
        processes = _number("processes of %s" % name, processes, integer=True, allow_zero=True)
        pool = _number("dify_sqlalchemy_pool_size of %s" % name, h.get("pool_size", 30), integer=True)
        fixed = h.get("max_overflow") is not None and h.get("max_overflow_fixed", True)
        ovf = _number("dify_sqlalchemy_max_overflow of %s" % name,
                      h.get("max_overflow", _default_overflow(pool)), integer=True, allow_zero=True)
        pgvector = _number("pgvector processes of %s" % name,
                           h.get("pgvector_processes", processes), integer=True, allow_zero=True)
        out.append({"name": name, "processes": processes, "pool_size": pool,
                    "max_overflow": ovf, "max_overflow_fixed": bool(fixed),
                    "pgvector_processes": pgvector})
    return out


def connection_budget(app_hosts, plugin_daemons=0, plugin_daemon_pool=30,
                      pgvector_pool=5, pgvector_on_db=True, replicas=0,
                      superuser_reserved=3, admin_reserved=10, max_connections=None,
                      db_memory_mb=None, db_cpus=None, db_memory_fraction=1.0,
                      profile="web", storage="ssd", pg_version=17, minimum=100):
    """Connections a Dify fleet can open on its PostgreSQL, and whether they fit.

    ``app_hosts``: list (or dict by name) of hosts running api/worker/beat,
    each ``{name, processes, pool_size, max_overflow}`` where ``processes``
    is the number of processes holding a SQLAlchemy pool (gunicorn workers +
    celery processes + beat), or ``api_processes``/``worker_processes``/
    ``beat_processes`` to be summed.  Optional ``pgvector_processes``
    (default: ``processes``) counts processes opening a pgvector pool.

    Demand = sum of processes x (pool_size + max_overflow)
           + plugin_daemons x plugin_daemon_pool (DB_MAX_OPEN_CONNS)
           + pgvector processes x pgvector_pool (PGVECTOR_MAX_CONNECTION) when
             the vector store lives in this PostgreSQL
           + replicas (one connection each for pg_rewind/monitoring; WAL
             senders are not counted in max_connections since PostgreSQL 12)
           + superuser_reserved_connections + admin_reserved (migrations,
             backups, monitoring, psql).

    ``max_connections`` None means "what the fleet needs": the demand rounded
    up to a multiple of 10, at least ``minimum``.  With ``db_memory_mb`` the
    PostgreSQL host's memory is checked: shared_buffers + max_connections x
    (work_mem + 2 MiB) must fit in ``db_memory_mb x db_memory_fraction``,
    with the pg_tune values for that max_connections.

    Returns ``{required, max_connections, fits, breakdown, memory,
    memory_fits, ok, max_pool_size}`` where ``max_pool_size`` is the largest
    uniform dify_sqlalchemy_pool_size that fits (None if none does).
    """
    hosts = _normalize_app_hosts(app_hosts)
    plugin_daemons = _number("plugin_daemons", plugin_daemons, integer=True, allow_zero=True)
    plugin_daemon_pool = _number("plugin_daemon_pool (dify_plugin_db_max_open_conns)",
                                 plugin_daemon_pool, integer=True)
    pgvector_pool = _number("pgvector_pool (dify_pgvector_max_connection)", pgvector_pool, integer=True)
    replicas = _number("replicas", replicas, integer=True, allow_zero=True)
    superuser_reserved = _number("superuser_reserved", superuser_reserved, integer=True, allow_zero=True)
    admin_reserved = _number("admin_reserved", admin_reserved, integer=True, allow_zero=True)
    minimum = _number("minimum", minimum, integer=True)

    per_host = dict((h["name"], _app_host_connections(h)) for h in hosts)
    app_total = sum(per_host.values())
    plugin_total = plugin_daemons * plugin_daemon_pool
    pgvector_total = sum(h["pgvector_processes"] for h in hosts) * pgvector_pool if pgvector_on_db else 0
    fixed = plugin_total + pgvector_total + replicas + superuser_reserved + admin_reserved
    required = app_total + fixed

    if max_connections is None:
        computed = True
        max_connections = max(minimum, int(math.ceil(required / 10.0)) * 10)
    else:
        computed = False
        max_connections = _number("max_connections (postgresql_max_connections)",
                                  max_connections, integer=True, minimum=10)
    result = {
        "required": required, "max_connections": max_connections, "max_connections_computed": computed,
        "fits": required <= max_connections,
        "breakdown": {"app_hosts": per_host, "app_total": app_total, "plugin_daemon": plugin_total,
                      "pgvector": pgvector_total, "replication": replicas, "superuser_reserved": superuser_reserved,
                      "admin_reserved": admin_reserved},
        "max_pool_size": _max_uniform_pool(hosts, fixed, max_connections),
        "memory": None, "memory_fits": True,
    }
    if db_memory_mb is not None:
        result["memory"] = _budget_memory(db_memory_mb, db_cpus, db_memory_fraction, max_connections,
                                          profile, storage, pg_version)
        result["memory_fits"] = result["memory"]["required_mb"] <= result["memory"]["available_mb"]
    result["ok"] = result["fits"] and result["memory_fits"]
    return result


def _max_uniform_pool(hosts, fixed, max_connections):
    """The largest dify_sqlalchemy_pool_size every app host could use and still fit (None if none does)."""
    if not hosts:
        return None
    current = max(h["pool_size"] for h in hosts)
    for p in range(max(current, 1), 0, -1):
        if sum(_app_host_connections(h, pool_size=p) for h in hosts) + fixed <= max_connections:
            return p
    return None


def _budget_memory(db_memory_mb, db_cpus, db_memory_fraction, max_connections, profile, storage, pg_version):
    """The database host's memory with every connection busy, against what it has."""
    settings = pg_tune(db_memory_mb, 1 if db_cpus is None else db_cpus, profile=profile, storage=storage,
                       max_connections=max_connections, pg_version=pg_version,
                       memory_fraction=db_memory_fraction)
    return {
        "available_mb": int(_number("db_memory_mb", db_memory_mb) * db_memory_fraction),
        "required_mb": pg_memory_need_mb(settings),
        "shared_buffers": settings["shared_buffers"],
        "work_mem": settings["work_mem"],
        "per_connection_mb": round(parse_pg_size_kb(settings["work_mem"]) / float(KB_PER_MB)
                                   + PG_BACKEND_OVERHEAD_MB, 2),
    }


def budget_fix_message(budget, pool_var="dify_sqlalchemy_pool_size",
                       max_conn_var="postgresql_max_connections"):
    """The sentence telling the user how to make a budget fit."""
    parts = []
    if budget["max_pool_size"] is not None:
        parts.append("lower %s to %d" % (pool_var, budget["max_pool_size"]))
    parts.append("raise %s to %d" % (max_conn_var, int(math.ceil(budget["required"] / 10.0)) * 10))
    parts.append("put PgBouncer in front of PostgreSQL")
    return ", ".join(parts[:-1]) + " or " + parts[-1]


# --------------------------------------------------------------------------
# OpenDAL storage


_SCHEME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def opendal_env(scheme, options=None):
    """Environment for Dify's OpenDAL storage: OPENDAL_SCHEME and one
    ``OPENDAL_<SCHEME>_<KEY>`` per option (Dify passes them to OpenDAL with
    the key lower-cased).  Booleans become "true"/"false"; None is dropped."""
    if not isinstance(scheme, str) or not _SCHEME_RE.match(scheme.strip().lower()):
        raise CapacityError(
            "opendal scheme must be an OpenDAL scheme name like fs, s3, gcs, azblob "
            "(letters, digits, _), got %r" % (scheme,)
        )
    scheme = scheme.strip().lower()
    if options is None:
        options = {}
    if not isinstance(options, dict):
        # Never the value: the options hold the storage's credentials.
        raise CapacityError("opendal options must be a dict of KEY: value, got a %s" % (type(options).__name__,))
    env = {"OPENDAL_SCHEME": scheme}
    prefix = "OPENDAL_%s_" % scheme.upper()
    for key in sorted(options):
        value = options[key]
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise CapacityError(
                "opendal option name %r is not valid: use letters, digits and _ (e.g. root, "
                "bucket, endpoint)" % (key,)
            )
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            value = str(value)
        else:
            raise CapacityError(
                "opendal option %s must be a string, number or boolean, got a %s" % (key, type(value).__name__)
            )
        env[prefix + key.upper()] = value
    return env
