# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The fleet capacity plan: sizes for every host from facts and the inventory.

Used by the ``difyops.fleet.fleet_plan`` action plugin (controller side) and
module.  :func:`build_plan` takes the inventory groups and, per host, a dict of
facts and override variables; it returns the plan or raises
:class:`PlanError` listing every broken fleet rule (each message names the
variable, the numbers and the fix).

Memory split on hosts that run several services (documented in
benchmarks/capacity/README.md and the module documentation):

* a host with a single service gives it all its RAM (PGTune, the Redis
  fraction and the gunicorn/celery reserve already leave room for the OS);
* a host with several keeps ``OS_RESERVE_MB`` for the OS, a fixed budget for
  each light service (``LIGHT_MB``), and splits the rest among the heavy
  tiers present by weight (``HEAVY_WEIGHTS``: postgresql 4, mysql 4, redis 2,
  vector 2, api 3, worker 3), overridable per host with ``difyops_memory_weights``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math

from ansible_collections.difyops.fleet.plugins.module_utils import capacity as cap

# inventory group -> tier name used in the plan
GROUP_TIERS = (
    ("dify_postgres", "postgresql"),
    ("dify_mysql", "mysql"),
    ("dify_redis", "redis"),
    ("dify_sentinel", "sentinel"),
    ("dify_vector", "vector"),
    ("dify_api", "api"),
    ("dify_worker", "worker"),
    ("dify_beat", "beat"),
    ("dify_web", "web"),
    ("dify_sandbox", "sandbox"),
    ("dify_plugin_daemon", "plugin_daemon"),
    ("dify_ssrf_proxy", "ssrf_proxy"),
    ("dify_edge", "edge"),
)
HEAVY_WEIGHTS = {"postgresql": 4, "mysql": 4, "redis": 2, "vector": 2, "api": 3, "worker": 3}
LIGHT_MB = {
    "sentinel": 64,
    "beat": 512,
    "web": 512,
    "sandbox": 512,
    "plugin_daemon": 1024,
    "ssrf_proxy": 128,
    "edge": 128,
}
OS_RESERVE_MB = 512
MIN_HEAVY_SHARE_MB = 256

# Every variable the plan reads from a host (facts and user overrides).  The
# action plugin reads only these from hostvars.
FACT_KEYS = ("ansible_memtotal_mb", "ansible_processor_vcpus", "ansible_processor_nproc",
             "ansible_facts")
OVERRIDE_DEFAULTS = {
    # host facts stand-ins
    "difyops_memory_mb": None,
    "difyops_cpus": None,
    "difyops_memory_weights": None,
    "difyops_ha": None,
    # PostgreSQL
    "postgresql_max_connections": None,
    "postgresql_version": 17,
    "postgresql_tune_profile": "web",
    "postgresql_tune_storage": "ssd",
    # MySQL / MariaDB (DB_TYPE=mysql, group dify_mysql)
    "mysql_max_connections": None,
    "mysql_tune_storage": "ssd",
    # Redis
    "redis_maxmemory": None,
    "redis_maxmemory_fraction": 0.5,
    # Dify api / worker
    "dify_gunicorn_workers": None,
    "dify_gunicorn_worker_connections": 10,
    "dify_api_worker_mb": 640,
    "dify_celery_concurrency": None,
    "dify_celery_pool": "gevent",
    "dify_celery_task_mb": 128,
    "dify_celery_process_mb": 512,
    "dify_sqlalchemy_pool_size": None,
    "dify_sqlalchemy_max_overflow": None,
    # other PostgreSQL clients
    "dify_vector_store": "pgvector",
    "dify_pgvector_max_connection": 5,
    "dify_plugin_daemon_db_max_open_conns": 30,
    "difyops_pg_admin_connections": 10,
    "difyops_pg_superuser_reserved_connections": 3,
}
VARIABLE_KEYS = tuple(OVERRIDE_DEFAULTS)


class PlanError(Exception):
    """One or more fleet rules are broken; ``errors`` lists the messages."""

    def __init__(self, errors):
        self.errors = list(errors)
        Exception.__init__(self, "; ".join(self.errors))


def _is_set(value):
    return value is not None and value != ""


def _lookup(hostvars, overrides, name):
    value = hostvars.get(name) if isinstance(hostvars, dict) else None
    if _is_set(value):
        return value, True
    value = overrides.get(name)
    if _is_set(value):
        return value, True
    return OVERRIDE_DEFAULTS.get(name), False


def _fact(hv, key, fact_key):
    value = hv.get(key)
    if _is_set(value):
        return value
    facts = hv.get("ansible_facts")
    if isinstance(facts, dict):
        value = facts.get(fact_key)
        if _is_set(value):
            return value
    return None


def _human_mb(mb):
    if mb >= 1024 and mb % 1024 == 0:
        return "%d GiB" % (mb // 1024)
    return "%d MiB" % mb


class _Ctx(object):
    def __init__(self, groups, hosts, overrides):
        self.groups = groups
        self.hosts = hosts
        self.overrides = overrides
        self.errors = []

    def var(self, host, name):
        return _lookup(self.hosts.get(host) or {}, self.overrides, name)

    def number(self, host, name, **kw):
        """A numeric variable, validated; None when unset and no default."""
        value, explicit = self.var(host, name)
        if value is None:
            return None, explicit
        try:
            return cap._number(name, value, **kw), explicit
        except cap.CapacityError as exc:
            msg = str(exc)
            if host:
                msg = msg.replace(name, "%s on %s" % (name, host), 1)
            self.errors.append(msg)
            return None, explicit


def _members(groups, group):
    members = groups.get(group) or []
    if isinstance(members, str):
        members = [members]
    return list(members)


def build_plan(groups, hosts, overrides=None):
    """The capacity plan for the fleet.

    ``groups``: group name -> list of host names (``groups``).
    ``hosts``: host name -> dict of that host's facts and variables (a subset
    of ``hostvars`` is enough: FACT_KEYS and VARIABLE_KEYS).
    ``overrides``: fleet-wide values for VARIABLE_KEYS (host variables win).
    """
    if not isinstance(groups, dict):
        raise PlanError(["groups must be the inventory groups (a dict), got %r" % type(groups).__name__])
    if not isinstance(hosts, dict):
        raise PlanError(["hostvars must be a dict of host name to variables, got %r" % type(hosts).__name__])
    overrides = dict(overrides or {})
    unknown = sorted(k for k in overrides if k not in OVERRIDE_DEFAULTS)
    if unknown:
        raise PlanError(["overrides has unknown variable(s) %s; known: %s"
                         % (", ".join(unknown), ", ".join(sorted(OVERRIDE_DEFAULTS)))])
    ctx = _Ctx(groups, hosts, overrides)

    # host -> tiers, in inventory order of the groups
    host_tiers = {}
    order = []
    for group, tier in GROUP_TIERS:
        for h in _members(groups, group):
            if h not in host_tiers:
                host_tiers[h] = []
                order.append(h)
            if tier not in host_tiers[h]:
                host_tiers[h].append(tier)

    pg_hosts = _members(groups, "dify_postgres")
    redis_hosts = _members(groups, "dify_redis")
    sentinels = _members(groups, "dify_sentinel")
    beats = _members(groups, "dify_beat")
    app_hosts = [h for h in order if set(host_tiers[h]) & set(("api", "worker", "beat"))]
    plugin_hosts = _members(groups, "dify_plugin_daemon")

    plan_hosts = {}
    budget_hosts = []
    for h in order:
        tiers = host_tiers[h]
        hv = hosts.get(h) or {}
        entry = {"tiers": list(tiers)}
        why = {}
        mem_raw, explicit_mem = ctx.var(h, "difyops_memory_mb")
        if not _is_set(mem_raw):
            mem_raw = _fact(hv, "ansible_memtotal_mb", "memtotal_mb")
        cpus_raw = ctx.var(h, "difyops_cpus")[0]
        if not _is_set(cpus_raw):
            cpus_raw = _fact(hv, "ansible_processor_vcpus", "processor_vcpus")
        if not _is_set(cpus_raw):
            cpus_raw = _fact(hv, "ansible_processor_nproc", "processor_nproc")
        needs_size = any(t in HEAVY_WEIGHTS for t in tiers) or len(tiers) > 1
        if mem_raw is None or cpus_raw is None:
            if needs_size:
                ctx.errors.append(
                    "%s has no %s: gather facts on it before fleet_plan (ansible_memtotal_mb, "
                    "ansible_processor_vcpus) or set difyops_memory_mb and difyops_cpus for it"
                    % (h, "memory" if mem_raw is None else "CPU count"))
            plan_hosts[h] = entry
            continue
        try:
            memory_mb = int(cap._number("difyops_memory_mb" if explicit_mem else "ansible_memtotal_mb",
                                        mem_raw))
            cpus = int(cap._number("difyops_cpus", cpus_raw))
        except cap.CapacityError as exc:
            ctx.errors.append("%s: %s" % (h, exc))
            plan_hosts[h] = entry
            continue
        entry["memory_mb"] = memory_mb
        entry["cpus"] = max(1, cpus)
        cpus = entry["cpus"]

        errors_before = len(ctx.errors)
        # ---- memory split
        heavy = [t for t in tiers if t in HEAVY_WEIGHTS]
        light = [t for t in tiers if t in LIGHT_MB]
        dedicated = len(tiers) == 1
        split = {}
        if dedicated:
            split[tiers[0]] = memory_mb
            why["memory_split"] = "only service on the host: all %s" % _human_mb(memory_mb)
        else:
            weights = dict(HEAVY_WEIGHTS)
            custom, custom_set = ctx.var(h, "difyops_memory_weights")
            if custom_set:
                if not isinstance(custom, dict) or not all(
                        k in HEAVY_WEIGHTS and isinstance(v, (int, float)) and not isinstance(v, bool)
                        and v > 0 for k, v in custom.items()):
                    ctx.errors.append(
                        "difyops_memory_weights on %s must map %s to positive numbers, got %r"
                        % (h, "/".join(sorted(HEAVY_WEIGHTS)), custom))
                else:
                    weights.update(custom)
            split["os"] = OS_RESERVE_MB
            for t in light:
                split[t] = LIGHT_MB[t]
            rest = memory_mb - sum(split.values())
            if heavy and rest < MIN_HEAVY_SHARE_MB * len(heavy):
                ctx.errors.append(
                    "memory over-committed on %s: %s RAM minus %s (OS %d + %s) leaves %d MiB for %s, "
                    "which need at least %d MiB; give %s more memory or move services to other hosts"
                    % (h, _human_mb(memory_mb), _human_mb(sum(split.values())), OS_RESERVE_MB,
                       " + ".join("%s %d" % (t, LIGHT_MB[t]) for t in light) or "nothing else",
                       rest, ", ".join(heavy), MIN_HEAVY_SHARE_MB * len(heavy), h))
                plan_hosts[h] = entry
                continue
            if not heavy and rest < 0:
                ctx.errors.append(
                    "memory over-committed on %s: %s RAM but its services need %s (OS %d + %s); give "
                    "it more memory or move services to other hosts"
                    % (h, _human_mb(memory_mb), _human_mb(sum(split.values())), OS_RESERVE_MB,
                       " + ".join("%s %d" % (t, LIGHT_MB[t]) for t in light)))
                plan_hosts[h] = entry
                continue
            total_w = float(sum(weights[t] for t in heavy)) or 1.0
            for t in heavy:
                split[t] = int(rest * weights[t] / total_w)
                if t == "postgresql":
                    split[t] -= split[t] % 64
            why["memory_split"] = (
                "shared host: OS %d MiB, fixed budgets for %s, the remaining %d MiB split by weight %s"
                % (OS_RESERVE_MB, ", ".join(light) or "no light service", rest,
                   ", ".join("%s %s" % (t, weights[t]) for t in heavy) or "-"))
        entry["memory_split"] = split
        reserve = 512 if dedicated else 0
        committed = {}
        if not dedicated:
            committed["os"] = OS_RESERVE_MB
        for t in light:
            committed[t] = LIGHT_MB[t]

        # ---- Redis
        if "redis" in tiers:
            share = split["redis"]
            value, explicit = ctx.var(h, "redis_maxmemory")
            fraction = ctx.number(h, "redis_maxmemory_fraction", maximum=0.9)[0]
            if explicit:
                try:
                    maxmemory = cap.parse_redis_bytes(value)
                    if maxmemory < 32 * 1024 * 1024:
                        raise cap.CapacityError("at least 32mb")
                except cap.CapacityError:
                    ctx.errors.append("redis_maxmemory on %s must be bytes or a size like 4gb (at least "
                                      "32mb), got %r" % (h, value))
                    maxmemory = None
                why["redis_maxmemory"] = "set by redis_maxmemory"
            elif fraction is not None:
                try:
                    maxmemory = cap.redis_maxmemory(share, fraction=fraction)["maxmemory"]
                    why["redis_maxmemory"] = ("%s of its %d MiB share; the rest is room for the fork "
                                              "that writes RDB/AOF" % (fraction, share))
                except cap.CapacityError as exc:
                    ctx.errors.append("redis on %s: %s" % (h, exc))
                    maxmemory = None
            else:
                maxmemory = None
            if maxmemory is not None:
                mm_mb = int(math.ceil(maxmemory / 1048576.0))
                entry["redis_maxmemory"] = maxmemory
                entry["redis_maxmemory_human"] = "%dmb" % (maxmemory // 1048576) \
                    if maxmemory % 1048576 == 0 else str(maxmemory)
                entry["redis_maxmemory_policy"] = "noeviction"
                why["redis_maxmemory_policy"] = "Dify's Celery broker queues live in Redis: never evict"
                committed["redis"] = 2 * mm_mb
                if 2 * mm_mb > share and explicit:
                    ctx.errors.append(
                        "memory over-committed on %s: redis_maxmemory %d MiB needs twice that (%d MiB, "
                        "for the copy-on-write of BGSAVE/AOF rewrite) but Redis has %d MiB there; lower "
                        "redis_maxmemory to %dmb or give %s more memory"
                        % (h, mm_mb, 2 * mm_mb, share, share // 2, h))

        # ---- api
        if "api" in tiers:
            share = split["api"]
            per_worker = ctx.number(h, "dify_api_worker_mb")[0]
            workers, explicit = ctx.number(h, "dify_gunicorn_workers", integer=True)
            if per_worker is not None:
                if workers is None and not explicit:
                    workers = cap.gunicorn_workers(cpus, share, per_worker_mb=per_worker, reserve_mb=reserve)
                    why["gunicorn_workers"] = ("min(2 x %d CPUs + 1 = %d, (%d MiB - %d reserve) / %d MiB "
                                               "per worker = %d)"
                                               % (cpus, 2 * cpus + 1, share, reserve, per_worker,
                                                  (share - reserve) // per_worker))
                elif workers is not None:
                    why["gunicorn_workers"] = "set by dify_gunicorn_workers"
                if workers is not None:
                    entry["gunicorn_workers"] = workers
                    committed["api"] = workers * per_worker + reserve
                    fit = max(1, int((share - reserve) // per_worker))
                    if explicit and workers * per_worker + reserve > share:
                        ctx.errors.append(
                            "memory over-committed on %s: dify_gunicorn_workers=%d x %d MiB = %d MiB but "
                            "the api has %d MiB there; lower dify_gunicorn_workers to %d or give %s more "
                            "memory" % (h, workers, per_worker, workers * per_worker, share - reserve, fit, h))

        # ---- worker
        pool_kind = None
        if "worker" in tiers:
            share = split["worker"]
            pool_kind = ctx.var(h, "dify_celery_pool")[0]
            if pool_kind not in cap.CELERY_POOLS:
                ctx.errors.append("dify_celery_pool on %s must be gevent or prefork, got %r" % (h, pool_kind))
                pool_kind = "gevent"
            task_mb = ctx.number(h, "dify_celery_task_mb")[0]
            proc_mb = ctx.number(h, "dify_celery_process_mb")[0]
            conc, explicit = ctx.number(h, "dify_celery_concurrency", integer=True)
            if task_mb is not None and proc_mb is not None:
                if conc is None and not explicit:
                    res = cap.celery_concurrency(cpus, share, pool=pool_kind, per_task_mb=task_mb,
                                                 per_process_mb=proc_mb, reserve_mb=reserve)
                    conc = res["concurrency"]
                    autoscale = [res["autoscale_min"], res["autoscale_max"]]
                    if pool_kind == "gevent":
                        why["celery_concurrency"] = (
                            "gevent: min(4 x %d CPUs = %d, (%d MiB - %d reserve - %d process) / %d MiB per "
                            "task = %d)" % (cpus, 4 * cpus, share, reserve, proc_mb, task_mb,
                                            (share - reserve - proc_mb) // task_mb))
                    else:
                        why["celery_concurrency"] = (
                            "prefork: min(%d CPUs, (%d MiB - %d reserve) / %d MiB per process = %d)"
                            % (cpus, share, reserve, proc_mb, (share - reserve) // proc_mb))
                elif conc is not None:
                    autoscale = [max(1, int(math.ceil(conc / 4.0))), conc]
                    why["celery_concurrency"] = "set by dify_celery_concurrency"
                if conc is not None:
                    entry["celery_concurrency"] = conc
                    entry["celery_autoscale"] = autoscale
                    entry["celery_pool"] = pool_kind
                    need = cap.celery_memory_mb(conc, pool_kind, task_mb, proc_mb)
                    committed["worker"] = need + reserve
                    if explicit and need + reserve > share:
                        if pool_kind == "gevent":
                            fit = max(1, int((share - reserve - proc_mb) // task_mb))
                        else:
                            fit = max(1, int((share - reserve) // proc_mb))
                        ctx.errors.append(
                            "memory over-committed on %s: dify_celery_concurrency=%d needs %d MiB (%s pool) "
                            "but the worker has %d MiB there; lower dify_celery_concurrency to %d or give "
                            "%s more memory" % (h, conc, need, pool_kind, share - reserve, fit, h))

        # ---- SQLAlchemy pools of the app processes: one pool per process,
        # sized to the concurrency of that process (gevent greenlets).
        if set(tiers) & set(("api", "worker", "beat")):
            conns = ctx.number(h, "dify_gunicorn_worker_connections", integer=True)[0]
            pool_o, pool_explicit = ctx.number(h, "dify_sqlalchemy_pool_size", integer=True)
            ovf_o, ovf_explicit = ctx.number(h, "dify_sqlalchemy_max_overflow", integer=True,
                                             allow_zero=True)
            per_tier = []  # (tier, processes, needed pool, pgvector processes)
            if "api" in tiers and "gunicorn_workers" in entry and conns is not None:
                per_tier.append(("api", entry["gunicorn_workers"], conns, entry["gunicorn_workers"],
                                 "one connection per gevent worker connection (dify_gunicorn_worker_connections)"))
            if "worker" in tiers and "celery_concurrency" in entry:
                if pool_kind == "gevent":
                    per_tier.append(("worker", 1, entry["celery_concurrency"], 1,
                                     "one connection per concurrent task of the gevent worker process"))
                else:
                    per_tier.append(("worker", entry["celery_concurrency"], 2, entry["celery_concurrency"],
                                     "prefork: one task per process"))
            if "beat" in tiers:
                per_tier.append(("beat", 1, 2, 0, "beat only schedules tasks"))
            pools = {}
            processes_total = 0
            conns_total = 0
            for tier, processes, needed, pgv, reason in per_tier:
                if pool_explicit and pool_o is None or ovf_explicit and ovf_o is None:
                    break
                pool = pool_o if pool_explicit else needed
                ovf = ovf_o if ovf_explicit else max(1, pool // 2)
                pools[tier] = {"pool_size": pool, "max_overflow": ovf, "processes": processes,
                               "connections": processes * (pool + ovf)}
                processes_total += processes
                conns_total += processes * (pool + ovf)
                budget_hosts.append({"name": "%s:%s" % (h, tier), "processes": processes,
                                     "pool_size": pool, "max_overflow": ovf,
                                     "max_overflow_fixed": ovf_explicit, "pgvector_processes": pgv})
                why["sqlalchemy_pools.%s" % tier] = (
                    "set by dify_sqlalchemy_pool_size" if pool_explicit else reason) + (
                    "; overflow set by dify_sqlalchemy_max_overflow" if ovf_explicit else
                    "; overflow half the pool for bursts")
            if pools:
                main = pools.get("api") or pools.get("worker") or pools.get("beat")
                entry["sqlalchemy_pool_size"] = main["pool_size"]
                entry["sqlalchemy_max_overflow"] = main["max_overflow"]
                entry["sqlalchemy_pools"] = pools
                entry["db_processes"] = processes_total
                entry["db_connections"] = conns_total
                why["sqlalchemy_pool_size"] = "the pool of the %s processes (see sqlalchemy_pools)" % (
                    "api" if "api" in pools else "worker" if "worker" in pools else "beat")

        if "plugin_daemon" in tiers:
            dmo = ctx.number(h, "dify_plugin_daemon_db_max_open_conns", integer=True)[0]
            if dmo is not None:
                entry["plugin_daemon_db_max_open_conns"] = dmo

        for t in ("postgresql", "mysql", "vector"):
            if t in tiers:
                committed[t] = split[t]
        entry["memory_committed_mb"] = sum(committed.values())
        if entry["memory_committed_mb"] > memory_mb and len(ctx.errors) == errors_before:
            ctx.errors.append(
                "memory over-committed on %s: its services need %d MiB (%s) but it has %d MiB, even with "
                "the smallest sizes; give %s more memory or move services to other hosts"
                % (h, entry["memory_committed_mb"],
                   ", ".join("%s %d" % (k, v) for k, v in committed.items()), memory_mb, h))
        entry["why"] = why
        plan_hosts[h] = entry

    # ---- fleet rules
    fleet = {"host_count": len(order)}
    any_app = bool(_members(groups, "dify_api") or _members(groups, "dify_worker"))
    if len(beats) > 1:
        ctx.errors.append(
            "dify_beat must hold exactly one host, it has %d (%s): each beat would schedule every "
            "periodic task again; keep only %s in dify_beat" % (len(beats), ", ".join(beats), beats[0]))
    elif not beats and any_app:
        ctx.errors.append(
            "dify_beat is empty but the fleet runs Dify api/worker hosts: put exactly one host in "
            "dify_beat (for example %s) or periodic tasks never run"
            % (_members(groups, "dify_worker") or _members(groups, "dify_api"))[0])
    fleet["beat_host"] = beats[0] if len(beats) == 1 else None

    # fleet-wide variables are read from a representative host (group_vars
    # such as all.yml reach every host), then from the overrides option
    ha_value, ha_set = ctx.var(sentinels[0] if sentinels else None, "difyops_ha")
    if sentinels:
        # HA is asked for when there is something to fail over to (2+ Redis
        # hosts) unless difyops_ha says otherwise.
        if ha_set:
            ha = bool(ha_value) and str(ha_value).lower() not in ("false", "no", "0", "off")
        else:
            ha = len(redis_hosts) > 1
        try:
            fleet["sentinel_quorum"] = cap.sentinel_quorum(len(sentinels), ha=ha)
        except cap.CapacityError as exc:
            ctx.errors.append("%s (or set difyops_ha: false to accept no failover safety)" % exc)
            fleet["sentinel_quorum"] = None
    else:
        fleet["sentinel_quorum"] = None
    fleet["sentinel_count"] = len(sentinels)
    fleet["postgres_primary"] = pg_hosts[0] if pg_hosts else None
    fleet["redis_master"] = redis_hosts[0] if redis_hosts else None

    # ---- connection budget
    primary = pg_hosts[0] if pg_hosts else None
    ref = primary or (app_hosts[0] if app_hosts else (order[0] if order else None))
    vector_store = ctx.var(ref, "dify_vector_store")[0]
    pgv_pool = ctx.number(ref, "dify_pgvector_max_connection", integer=True)[0]
    admin = ctx.number(ref, "difyops_pg_admin_connections", integer=True, allow_zero=True)[0]
    su = ctx.number(ref, "difyops_pg_superuser_reserved_connections", integer=True, allow_zero=True)[0]
    mc, mc_explicit = ctx.number(ref, "postgresql_max_connections", integer=True, minimum=10)
    dmo_all = [plan_hosts[h].get("plugin_daemon_db_max_open_conns") for h in plugin_hosts]
    dmo_all = [d for d in dmo_all if d is not None]
    if None not in (pgv_pool, admin, su) and (mc is not None or not mc_explicit):
        budget = cap.connection_budget(
            budget_hosts, plugin_daemons=len(plugin_hosts),
            plugin_daemon_pool=max(dmo_all) if dmo_all else 30,
            pgvector_pool=pgv_pool, pgvector_on_db=(vector_store == "pgvector"),
            replicas=max(0, len(pg_hosts) - 1), superuser_reserved=su, admin_reserved=admin,
            max_connections=mc if mc_explicit else None)
        fleet["connection_budget"] = budget
        fleet["max_connections"] = budget["max_connections"]
        if not budget["fits"]:
            b = budget["breakdown"]
            ctx.errors.append(
                "PostgreSQL connection budget exceeded: the fleet can open %d connections (Dify "
                "processes %d, plugin daemon %d, pgvector %d, replicas %d, reserved %d) but "
                "postgresql_max_connections is %d; %s"
                % (budget["required"], b["app_total"], b["plugin_daemon"], b["pgvector"],
                   b["replication"], b["superuser_reserved"] + b["admin_reserved"],
                   budget["max_connections"], cap.budget_fix_message(budget)))
        # every PostgreSQL host (replicas need max_connections >= the primary's)
        profile = ctx.var(primary, "postgresql_tune_profile")[0]
        storage = ctx.var(primary, "postgresql_tune_storage")[0]
        for h in pg_hosts:
            entry = plan_hosts.get(h) or {}
            if "memory_split" not in entry:
                continue
            rmc, rmc_explicit = ctx.number(h, "postgresql_max_connections", integer=True, minimum=10)
            if rmc_explicit and rmc is not None and rmc < budget["max_connections"]:
                ctx.errors.append(
                    "postgresql_max_connections on %s is %d, below the fleet's %d (%s): a hot standby "
                    "refuses to start with fewer connections than its primary; remove the host "
                    "override or set it to %d" % (h, rmc, budget["max_connections"],
                                                  primary, budget["max_connections"]))
                continue
            version = ctx.number(h, "postgresql_version", integer=True, minimum=cap.PG_MIN_VERSION)[0]
            share = entry["memory_split"]["postgresql"]
            try:
                settings = cap.pg_tune(entry["memory_mb"], entry["cpus"], profile=profile,
                                       storage=storage, max_connections=budget["max_connections"],
                                       pg_version=version or 17,
                                       memory_fraction=min(1.0, share / float(entry["memory_mb"])))
            except cap.CapacityError as exc:
                ctx.errors.append("postgresql on %s: %s (postgresql_tune_profile, "
                                  "postgresql_tune_storage, postgresql_version)" % (h, exc))
                continue
            entry["postgresql"] = settings
            entry["postgresql_role"] = "primary" if h == primary else "replica"
            need = cap.pg_memory_need_mb(settings)
            entry["postgresql_memory_need_mb"] = need
            entry["why"]["postgresql"] = (
                "PGTune (%s, %s) for %d MiB and max_connections %d; busy-connection need %d MiB"
                % (profile, storage, share, budget["max_connections"], need))
            if need > share:
                ctx.errors.append(
                    "PostgreSQL on %s needs about %d MiB with every connection busy (shared_buffers %s + "
                    "%d connections x (work_mem %s + %d MiB per backend)) but has %d MiB there; give %s "
                    "more memory, lower the fleet's connection demand (dify_sqlalchemy_pool_size, "
                    "dify_gunicorn_workers) or put PgBouncer in front of PostgreSQL"
                    % (h, need, settings["shared_buffers"], settings["max_connections"],
                       settings["work_mem"], cap.PG_BACKEND_OVERHEAD_MB, share, h))
        _plan_mysql(ctx, plan_hosts, _members(groups, "dify_mysql"), budget)
    else:
        fleet["connection_budget"] = None
        fleet["max_connections"] = None

    if ctx.errors:
        raise PlanError(ctx.errors)

    pools = [plan_hosts[h]["sqlalchemy_pool_size"] for h in app_hosts if "sqlalchemy_pool_size" in plan_hosts[h]]
    ovfs = [plan_hosts[h]["sqlalchemy_max_overflow"] for h in app_hosts if "sqlalchemy_max_overflow" in plan_hosts[h]]
    fleet["sqlalchemy_pool_size"] = max(pools) if pools else None
    fleet["sqlalchemy_max_overflow"] = max(ovfs) if ovfs else None
    fleet["vector_store"] = vector_store
    fleet["pgvector_max_connection"] = pgv_pool
    fleet["plugin_daemon_db_max_open_conns"] = max(dmo_all) if dmo_all else None
    return {"fleet": fleet, "hosts": plan_hosts}


def _plan_mysql(ctx, plan_hosts, mysql_hosts, budget):
    """InnoDB settings for every dify_mysql host, sized for its memory share and
    the fleet's connection budget (the same Dify pools connect to it)."""
    for h in mysql_hosts:
        entry = plan_hosts.get(h) or {}
        if "memory_split" not in entry:
            continue
        mc, explicit = ctx.number(h, "mysql_max_connections", integer=True, minimum=10)
        if explicit and mc is not None and mc < budget["required"]:
            ctx.errors.append(
                "MySQL connection budget exceeded on %s: the fleet can open %d connections but "
                "mysql_max_connections is %d; remove the override (the plan then sets %d) or set it to at "
                "least %d" % (h, budget["required"], mc, budget["max_connections"], budget["required"]))
            continue
        max_connections = mc if explicit and mc is not None else budget["max_connections"]
        storage = ctx.var(h, "mysql_tune_storage")[0]
        share = entry["memory_split"]["mysql"]
        try:
            settings = cap.innodb_tune(entry["memory_mb"], entry["cpus"], max_connections=max_connections,
                                       memory_fraction=min(1.0, share / float(entry["memory_mb"])),
                                       storage=storage)
        except cap.CapacityError as exc:
            ctx.errors.append("mysql on %s: %s (mysql_tune_storage, difyops_memory_weights)" % (h, exc))
            continue
        entry["mysql"] = settings
        entry["why"]["mysql"] = ("InnoDB sizing (%s) for %d MiB and max_connections %d (%s)"
                                 % (storage, share, max_connections,
                                    "set by mysql_max_connections" if explicit else "the fleet's budget"))


# --------------------------------------------------------------------------
# report


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return "..".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def render_report(plan, title="Dify fleet capacity plan"):
    """The plan as Markdown: fleet summary, connection budget, one table per host."""
    fleet = plan["fleet"]
    out = ["# %s" % title, ""]
    out.append("Generated by difyops.fleet.fleet_plan from host facts and inventory variables. "
               "Every value can be overridden by the variable named in the README of "
               "benchmarks/capacity; an override that breaks a fleet rule is refused.")
    out.append("")
    out.append("## Fleet")
    out.append("")
    out.append("| item | value |")
    out.append("|---|---|")
    for key in ("host_count", "max_connections", "sentinel_count", "sentinel_quorum", "beat_host",
                "postgres_primary", "redis_master", "sqlalchemy_pool_size", "sqlalchemy_max_overflow",
                "vector_store", "pgvector_max_connection", "plugin_daemon_db_max_open_conns"):
        out.append("| %s | %s |" % (key, _cell(fleet.get(key))))
    budget = fleet.get("connection_budget")
    if budget:
        b = budget["breakdown"]
        out.append("")
        out.append("## PostgreSQL connection budget")
        out.append("")
        out.append("| source | connections |")
        out.append("|---|---|")
        out.append("| Dify processes (processes x (pool + overflow)) | %d |" % b["app_total"])
        out.append("| plugin daemon (DB_MAX_OPEN_CONNS) | %d |" % b["plugin_daemon"])
        out.append("| pgvector (PGVECTOR_MAX_CONNECTION per process) | %d |" % b["pgvector"])
        out.append("| replicas | %d |" % b["replication"])
        out.append("| superuser_reserved_connections | %d |" % b["superuser_reserved"])
        out.append("| admin (migrations, backups, monitoring) | %d |" % b["admin_reserved"])
        out.append("| **required** | **%d** |" % budget["required"])
        out.append("| max_connections (%s) | %d |"
                   % ("computed" if budget["max_connections_computed"] else "postgresql_max_connections",
                      budget["max_connections"]))
    out.append("")
    out.append("## Hosts")
    for name in sorted(plan["hosts"]):
        e = plan["hosts"][name]
        out.append("")
        out.append("### %s" % name)
        out.append("")
        out.append("| value | setting | why |")
        out.append("|---|---|---|")
        why = e.get("why") or {}
        out.append("| tiers | %s | inventory groups |" % _cell(", ".join(e.get("tiers", []))))
        out.append("| RAM | %s | facts or difyops_memory_mb |" % _cell(
            _human_mb(e["memory_mb"]) if "memory_mb" in e else None))
        out.append("| CPUs | %s | facts or difyops_cpus |" % _cell(e.get("cpus")))
        if "memory_split" in e:
            out.append("| memory split | %s | %s |" % (
                _cell(", ".join("%s %d MiB" % (k, v) for k, v in e["memory_split"].items())),
                _cell(why.get("memory_split"))))
            out.append("| memory committed | %d MiB | sum of the services' needs |" % e["memory_committed_mb"])
        for key in ("gunicorn_workers", "celery_concurrency", "celery_autoscale", "celery_pool",
                    "sqlalchemy_pool_size", "sqlalchemy_max_overflow", "db_connections",
                    "plugin_daemon_db_max_open_conns", "redis_maxmemory", "redis_maxmemory_policy"):
            if key in e:
                value = e[key]
                if key == "redis_maxmemory":
                    value = "%d (%s)" % (value, e.get("redis_maxmemory_human"))
                if key == "db_connections":
                    out.append("| db_connections | %d | %d processes holding a SQLAlchemy pool |"
                               % (value, e["db_processes"]))
                    continue
                out.append("| %s | %s | %s |" % (key, _cell(value), _cell(why.get(key))))
        for tier, pv in sorted((e.get("sqlalchemy_pools") or {}).items()):
            out.append("| sqlalchemy_pools.%s | %d x (pool %d + overflow %d) = %d | %s |"
                       % (tier, pv["processes"], pv["pool_size"], pv["max_overflow"], pv["connections"],
                          _cell(why.get("sqlalchemy_pools.%s" % tier))))
        if "postgresql" in e:
            out.append("| postgresql | %s | %s |" % (e.get("postgresql_role"), _cell(why.get("postgresql"))))
            for k, v in e["postgresql"].items():
                out.append("| postgresql.%s | %s | PGTune |" % (k, _cell(v)))
        if "mysql" in e:
            out.append("| mysql | %s | %s |" % ("InnoDB", _cell(why.get("mysql"))))
            for k, v in e["mysql"].items():
                out.append("| mysql.%s | %s | innodb_tune |" % (k, _cell(v)))
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------
# shared by the module and the action plugin


def collect_host_inputs(groups, hostvars):
    """Per-host dict of only what the plan reads (FACT_KEYS, VARIABLE_KEYS)
    for every host of the fleet groups; ``hostvars`` may be a lazy mapping
    (Ansible's HostVars): only these keys are read (and templated)."""
    wanted = FACT_KEYS + VARIABLE_KEYS
    out = {}
    for group, _tier in GROUP_TIERS:
        for h in _members(groups, group):
            if h in out:
                continue
            try:
                hv = hostvars[h]
            except KeyError:
                out[h] = {}
                continue
            entry = {}
            for key in wanted:
                if key == "ansible_facts" and _is_set(entry.get("ansible_memtotal_mb")) and (
                        _is_set(entry.get("ansible_processor_vcpus"))
                        or _is_set(entry.get("ansible_processor_nproc"))):
                    continue  # the whole facts dict is only read when needed
                if key in hv:
                    value = hv[key]
                    if key == "ansible_facts":
                        value = {"memtotal_mb": value.get("memtotal_mb"),
                                 "processor_vcpus": value.get("processor_vcpus"),
                                 "processor_nproc": value.get("processor_nproc")} \
                            if hasattr(value, "get") else None
                    entry[key] = value
            out[h] = entry
    return out


def read_text(path):
    """Text of ``path`` or None when it does not exist."""
    import io
    import os
    if not os.path.exists(path):
        return None
    with io.open(path, "r", encoding="utf-8") as f:
        return f.read()


def write_text(path, text, mode=0o644):
    """Write ``text`` to ``path`` atomically (temp file + rename), creating the directory."""
    import io
    import os
    import tempfile
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory)
    fd, tmp = tempfile.mkstemp(prefix=".fleet_plan.", dir=directory)
    try:
        with io.open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(groups, hosts, overrides=None, report_path=None, report_title=None,
        check_mode=False, diff_mode=False):
    """Build the plan and write the report; the module/action result dict.

    Raises PlanError on a broken fleet rule; OSError when the report cannot
    be written.
    """
    import time
    started = time.process_time()
    plan = build_plan(groups, hosts, overrides)
    planned = time.process_time()
    result = {"changed": False, "plan": plan, "ansible_facts": {"difyops_plan": plan},
              "cpu_seconds": {"plan": round(planned - started, 4)}}
    if report_path:
        report = render_report(plan, title=report_title or "Dify fleet capacity plan")
        result["cpu_seconds"]["report"] = round(time.process_time() - planned, 4)
        before = read_text(report_path)
        result["report_path"] = report_path
        if before != report:
            result["changed"] = True
            if diff_mode:
                result["diff"] = {"before": before or "", "after": report,
                                  "before_header": report_path, "after_header": report_path}
            if not check_mode:
                write_text(report_path, report)
    return result
