# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The fleet capacity plan: sizes for every host from facts and the inventory.

Used by the ``difyops.fleet.fleet_plan`` action plugin (controller side) and
module.  :func:`build_plan` takes the inventory groups and, per host, a dict of
facts and knob variables (knobs.py); it returns the plan or raises
:class:`PlanError` listing every capacity problem (each message names the
variable, the numbers and the fix).  The plan is the only interface between
the fleet model and the roles: they read ``difyops_plan``, never a size of
their own.  Host-count rules (one beat, odd Sentinels, ...) are preflight's
(catalog.count_problems), not the plan's.

The steps, in order:

1. :func:`_context` - which services each host runs (catalog order);
2. :func:`_plan_host` per host - its size (:func:`_host_size`), the memory
   split (:func:`_memory_split`), then each service it runs: Redis
   (:func:`_plan_redis`), api (:func:`_plan_api`), worker
   (:func:`_plan_worker`), the SQLAlchemy pools of the api, worker, beat and
   websocket api processes (:func:`_plan_pools`), the plugin daemon
   (:func:`_plan_plugin_daemon`), the memory limits of the Dify containers
   (the catalog's tier "dify": :func:`_memory_limits`) and what it all
   commits (:func:`_check_committed`);
3. :func:`_plan_fleet` - primary, master, beat host, Sentinel quorum;
4. :func:`_plan_budget` - the PostgreSQL connection budget, then every
   database host (:func:`_plan_postgresql`, :func:`_plan_mysql`).

Memory of a host that runs several services (documented in
benchmarks/capacity/README.md and the module documentation): a host with a
single service gives it all its RAM; a host with several keeps
``OS_RESERVE_MB`` for the OS, each light service its fixed budget (the
catalog's ``memory_mb``, also its container limit) and splits the rest among
the heavy services by weight (the catalog's ``weight``), overridable per host
with ``difyops_memory_weights``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math

from ansible_collections.difyops.fleet.plugins.module_utils import capacity as cap
from ansible_collections.difyops.fleet.plugins.module_utils import catalog
from ansible_collections.difyops.fleet.plugins.module_utils import knobs
from ansible_collections.difyops.fleet.plugins.module_utils.capacity_report import (  # noqa: F401 (re-exported)
    human_mb,
    read_text,
    render_report,
    write_text,
)

# inventory group -> service (tier) name used in the plan, in catalog order
GROUP_TIERS = tuple((s.group, s.name) for s in catalog.SERVICES)
HEAVY_WEIGHTS = dict((s.name, s.weight) for s in catalog.SERVICES if s.weight)
LIGHT_MB = dict((s.name, s.memory_mb) for s in catalog.SERVICES if s.memory_mb)
OS_RESERVE_MB = 512
MIN_HEAVY_SHARE_MB = 256
# What a dedicated api/worker host keeps aside for the OS (PGTune and the
# Redis fraction already leave room on their own hosts).
DEDICATED_RESERVE_MB = 512
# Memory of the gunicorn master process, added to the api container's limit.
API_MASTER_MB = 256
# Services that run as Dify containers (the catalog's tier "dify"): their
# memory limit comes from the plan.
DIFY_CONTAINERS = tuple(s.name for s in catalog.SERVICES if s.tier == "dify")
# Services whose processes hold a SQLAlchemy pool to Dify's database (each
# its own pool, counted in the PostgreSQL connection budget).
POOLED_SERVICES = ("api", "worker", "beat", "api_websocket")
# Gunicorn workers of the websocket api: upstream's compose entry of
# api_websocket (API_WEBSOCKET_WORKER_AMOUNT, default 1), which the dify role
# renders as its SERVER_WORKER_AMOUNT (checked against the release data by
# the unit tests).
API_WEBSOCKET_PROCESSES = 1

# Every variable the plan reads from a host (facts and knobs).  The action
# plugin reads only these from hostvars.
FACT_KEYS = ("ansible_memtotal_mb", "ansible_processor_vcpus", "ansible_processor_nproc",
             "ansible_distribution_release", "ansible_facts")
OVERRIDE_DEFAULTS = knobs.DEFAULTS
VARIABLE_KEYS = knobs.NAMES


class PlanError(Exception):
    """One or more capacity problems; ``errors`` lists the messages."""

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


class _Ctx(object):
    """The plan under construction: inputs, errors, and the hosts' entries."""

    def __init__(self, groups, hosts, overrides):
        self.groups = groups
        self.hosts = hosts
        self.overrides = overrides
        self.errors = []
        self.order = []         # every fleet host, in catalog order
        self.tiers = {}         # host -> services it runs
        self.plan_hosts = {}    # host -> plan entry
        self.budget_hosts = []  # connection_budget's app host list

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

    def members(self, group):
        return catalog.members(self.groups, group)


class _Host(object):
    """One host being planned: its entry in the plan and the working values."""

    def __init__(self, name, tiers):
        self.name = name
        self.tiers = tiers
        self.entry = {"tiers": list(tiers)}
        self.why = {}
        self.split = {}
        self.committed = {}
        self.memory_mb = None
        self.cpus = None
        self.reserve = 0
        self.pool_kind = None
        self.limits = {}        # Dify container -> memory limit (MiB)


def build_plan(groups, hosts, overrides=None):
    """The capacity plan for the fleet.

    ``groups``: group name -> list of host names (``groups``).
    ``hosts``: host name -> dict of that host's facts and variables (a subset
    of ``hostvars`` is enough: FACT_KEYS and VARIABLE_KEYS).
    ``overrides``: fleet-wide values for VARIABLE_KEYS (host variables win).
    """
    ctx = _context(groups, hosts, overrides)
    for h in ctx.order:
        ctx.plan_hosts[h] = _plan_host(ctx, h)
    fleet = _plan_fleet(ctx)
    _plan_budget(ctx, fleet)
    if ctx.errors:
        raise PlanError(ctx.errors)
    _summarise(ctx, fleet)
    return {"fleet": fleet, "hosts": ctx.plan_hosts}


def _context(groups, hosts, overrides):
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
    for h in catalog.fleet_hosts(groups):
        ctx.order.append(h)
        ctx.tiers[h] = catalog.host_services(groups, h)
    return ctx


# --------------------------------------------------------------------------
# one host


def _plan_host(ctx, h):
    host = _Host(h, ctx.tiers[h])
    if not _host_size(ctx, host):
        return host.entry
    errors_before = len(ctx.errors)
    if not _memory_split(ctx, host):
        return host.entry
    _plan_redis(ctx, host)
    _plan_api(ctx, host)
    _plan_worker(ctx, host)
    _plan_pools(ctx, host)
    _plan_plugin_daemon(ctx, host)
    _memory_limits(host)
    _check_committed(ctx, host, errors_before)
    host.entry["why"] = host.why
    return host.entry


def _host_size(ctx, host):
    """Memory and CPUs of the host (knobs, else facts); False when unknown or bad."""
    h = host.name
    hv = ctx.hosts.get(h) or {}
    mem_raw, explicit_mem = ctx.var(h, "difyops_memory_mb")
    if not _is_set(mem_raw):
        mem_raw = _fact(hv, "ansible_memtotal_mb", "memtotal_mb")
    cpus_raw = ctx.var(h, "difyops_cpus")[0]
    if not _is_set(cpus_raw):
        cpus_raw = _fact(hv, "ansible_processor_vcpus", "processor_vcpus")
    if not _is_set(cpus_raw):
        cpus_raw = _fact(hv, "ansible_processor_nproc", "processor_nproc")
    needs_size = any(t in HEAVY_WEIGHTS for t in host.tiers) or len(host.tiers) > 1
    if mem_raw is None or cpus_raw is None:
        if needs_size:
            ctx.errors.append(
                "%s has no %s: gather facts on it before fleet_plan (ansible_memtotal_mb, "
                "ansible_processor_vcpus) or set difyops_memory_mb and difyops_cpus for it"
                % (h, "memory" if mem_raw is None else "CPU count"))
        return False
    try:
        memory_mb = int(cap._number("difyops_memory_mb" if explicit_mem else "ansible_memtotal_mb", mem_raw))
        cpus = int(cap._number("difyops_cpus", cpus_raw))
    except cap.CapacityError as exc:
        ctx.errors.append("%s: %s" % (h, exc))
        return False
    host.memory_mb = host.entry["memory_mb"] = memory_mb
    host.cpus = host.entry["cpus"] = max(1, cpus)
    return True


def _weights(ctx, h):
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
    return weights


def _memory_split(ctx, host):
    """MiB per service (and the OS); False when the light services leave too little."""
    h, tiers, memory_mb = host.name, host.tiers, host.memory_mb
    heavy = [t for t in tiers if t in HEAVY_WEIGHTS]
    light = [t for t in tiers if t in LIGHT_MB]
    for t in light:
        host.committed[t] = LIGHT_MB[t]
    if len(tiers) == 1:
        host.split[tiers[0]] = memory_mb
        host.reserve = DEDICATED_RESERVE_MB
        host.why["memory_split"] = "only service on the host: all %s" % human_mb(memory_mb)
        host.entry["memory_split"] = host.split
        return True
    weights = _weights(ctx, h)
    host.committed["os"] = host.split["os"] = OS_RESERVE_MB
    for t in light:
        host.split[t] = LIGHT_MB[t]
    fixed = sum(host.split.values())
    rest = memory_mb - fixed
    light_text = " + ".join("%s %d" % (t, LIGHT_MB[t]) for t in light)
    if heavy and rest < MIN_HEAVY_SHARE_MB * len(heavy):
        ctx.errors.append(
            "memory over-committed on %s: %s RAM minus %s (OS %d + %s) leaves %d MiB for %s, "
            "which need at least %d MiB; give %s more memory or move services to other hosts"
            % (h, human_mb(memory_mb), human_mb(fixed), OS_RESERVE_MB, light_text or "nothing else",
               rest, ", ".join(heavy), MIN_HEAVY_SHARE_MB * len(heavy), h))
        return False
    if not heavy and rest < 0:
        ctx.errors.append(
            "memory over-committed on %s: %s RAM but its services need %s (OS %d + %s); give "
            "it more memory or move services to other hosts"
            % (h, human_mb(memory_mb), human_mb(fixed), OS_RESERVE_MB, light_text))
        return False
    total_w = float(sum(weights[t] for t in heavy)) or 1.0
    for t in heavy:
        host.split[t] = int(rest * weights[t] / total_w)
        if t == "postgresql":
            host.split[t] -= host.split[t] % 64
    host.why["memory_split"] = (
        "shared host: OS %d MiB, fixed budgets for %s, the remaining %d MiB split by weight %s"
        % (OS_RESERVE_MB, ", ".join(light) or "no light service", rest,
           ", ".join("%s %s" % (t, weights[t]) for t in heavy) or "-"))
    host.entry["memory_split"] = host.split
    return True


def _redis_explicit(ctx, h, value):
    try:
        maxmemory = cap.parse_redis_bytes(value)
        if maxmemory < 32 * 1024 * 1024:
            raise cap.CapacityError("at least 32mb")
        return maxmemory
    except cap.CapacityError:
        ctx.errors.append("redis_maxmemory on %s must be bytes or a size like 4gb (at least "
                          "32mb), got %r" % (h, value))
        return None


def _plan_redis(ctx, host):
    if "redis" not in host.tiers:
        return
    h, share, why = host.name, host.split["redis"], host.why
    value, explicit = ctx.var(h, "redis_maxmemory")
    fraction = ctx.number(h, "redis_maxmemory_fraction", maximum=0.9)[0]
    maxmemory = None
    if explicit:
        maxmemory = _redis_explicit(ctx, h, value)
        why["redis_maxmemory"] = "set by redis_maxmemory"
    elif fraction is not None:
        try:
            maxmemory = cap.redis_maxmemory(share, fraction=fraction)["maxmemory"]
            why["redis_maxmemory"] = ("%s of its %d MiB share; the rest is room for the fork "
                                      "that writes RDB/AOF" % (fraction, share))
        except cap.CapacityError as exc:
            ctx.errors.append("redis on %s: %s" % (h, exc))
    if maxmemory is None:
        return
    mm_mb = int(math.ceil(maxmemory / 1048576.0))
    host.entry["redis_maxmemory"] = maxmemory
    host.entry["redis_maxmemory_human"] = "%dmb" % (maxmemory // 1048576) \
        if maxmemory % 1048576 == 0 else str(maxmemory)
    host.entry["redis_maxmemory_policy"] = "noeviction"
    why["redis_maxmemory_policy"] = "Dify's Celery broker queues live in Redis: never evict"
    host.committed["redis"] = 2 * mm_mb
    if 2 * mm_mb > share and explicit:
        ctx.errors.append(
            "memory over-committed on %s: redis_maxmemory %d MiB needs twice that (%d MiB, "
            "for the copy-on-write of BGSAVE/AOF rewrite) but Redis has %d MiB there; lower "
            "redis_maxmemory to %dmb or give %s more memory" % (h, mm_mb, 2 * mm_mb, share, share // 2, h))


def _plan_api(ctx, host):
    if "api" not in host.tiers:
        return
    h, share, reserve, cpus = host.name, host.split["api"], host.reserve, host.cpus
    per_worker = ctx.number(h, "dify_api_worker_mb")[0]
    workers, explicit = ctx.number(h, "dify_gunicorn_workers", integer=True)
    conns = ctx.number(h, "dify_gunicorn_worker_connections", integer=True)[0]
    if conns is not None:
        host.entry["gunicorn_worker_connections"] = conns
    if per_worker is None:
        return
    if workers is None and not explicit:
        workers = cap.gunicorn_workers(cpus, share, per_worker_mb=per_worker, reserve_mb=reserve)
        host.why["gunicorn_workers"] = ("min(2 x %d CPUs + 1 = %d, (%d MiB - %d reserve) / %d MiB per worker = %d)"
                                        % (cpus, 2 * cpus + 1, share, reserve, per_worker,
                                           (share - reserve) // per_worker))
    elif workers is not None:
        host.why["gunicorn_workers"] = "set by dify_gunicorn_workers"
    if workers is None:
        return
    host.entry["gunicorn_workers"] = workers
    host.committed["api"] = workers * per_worker + reserve
    host.limits["api"] = int(workers * per_worker) + API_MASTER_MB
    fit = max(1, int((share - reserve) // per_worker))
    if explicit and workers * per_worker + reserve > share:
        ctx.errors.append(
            "memory over-committed on %s: dify_gunicorn_workers=%d x %d MiB = %d MiB but "
            "the api has %d MiB there; lower dify_gunicorn_workers to %d or give %s more "
            "memory" % (h, workers, per_worker, workers * per_worker, share - reserve, fit, h))


def _celery_fit(host, share, task_mb, proc_mb):
    reserve = host.reserve
    if host.pool_kind == "gevent":
        return max(1, int((share - reserve - proc_mb) // task_mb))
    return max(1, int((share - reserve) // proc_mb))


def _celery_computed(host, share, task_mb, proc_mb):
    cpus, reserve = host.cpus, host.reserve
    res = cap.celery_concurrency(cpus, share, pool=host.pool_kind, per_task_mb=task_mb,
                                 per_process_mb=proc_mb, reserve_mb=reserve)
    if host.pool_kind == "gevent":
        host.why["celery_concurrency"] = (
            "gevent: min(4 x %d CPUs = %d, (%d MiB - %d reserve - %d process) / %d MiB per task = %d)"
            % (cpus, 4 * cpus, share, reserve, proc_mb, task_mb, (share - reserve - proc_mb) // task_mb))
    else:
        host.why["celery_concurrency"] = ("prefork: min(%d CPUs, (%d MiB - %d reserve) / %d MiB per process = %d)"
                                          % (cpus, share, reserve, proc_mb, (share - reserve) // proc_mb))
    return res["concurrency"], [res["autoscale_min"], res["autoscale_max"]]


def _plan_worker(ctx, host):
    if "worker" not in host.tiers:
        return
    h, share = host.name, host.split["worker"]
    host.pool_kind = ctx.var(h, "dify_celery_pool")[0]
    if host.pool_kind not in cap.CELERY_POOLS:
        ctx.errors.append("dify_celery_pool on %s must be gevent or prefork, got %r" % (h, host.pool_kind))
        host.pool_kind = "gevent"
    task_mb = ctx.number(h, "dify_celery_task_mb")[0]
    proc_mb = ctx.number(h, "dify_celery_process_mb")[0]
    conc, explicit = ctx.number(h, "dify_celery_concurrency", integer=True)
    if task_mb is None or proc_mb is None:
        return
    if conc is None and not explicit:
        conc, autoscale = _celery_computed(host, share, task_mb, proc_mb)
    elif conc is not None:
        autoscale = [max(1, int(math.ceil(conc / 4.0))), conc]
        host.why["celery_concurrency"] = "set by dify_celery_concurrency"
    if conc is None:
        return
    host.entry.update(celery_concurrency=conc, celery_autoscale=autoscale, celery_pool=host.pool_kind)
    need = cap.celery_memory_mb(conc, host.pool_kind, task_mb, proc_mb)
    host.limits["worker"] = int(need)
    host.committed["worker"] = need + host.reserve
    if explicit and need + host.reserve > share:
        ctx.errors.append(
            "memory over-committed on %s: dify_celery_concurrency=%d needs %d MiB (%s pool) "
            "but the worker has %d MiB there; lower dify_celery_concurrency to %d or give "
            "%s more memory" % (h, conc, need, host.pool_kind, share - host.reserve,
                                _celery_fit(host, share, task_mb, proc_mb), h))


def _pool_processes(host, conns):
    """(tier, processes, pool it needs, pgvector processes, why) of each pooled service."""
    entry, out = host.entry, []
    if "api" in host.tiers and "gunicorn_workers" in entry and conns is not None:
        out.append(("api", entry["gunicorn_workers"], conns, entry["gunicorn_workers"],
                    "one connection per gevent worker connection (dify_gunicorn_worker_connections)"))
    if "worker" in host.tiers and "celery_concurrency" in entry:
        if host.pool_kind == "gevent":
            out.append(("worker", 1, entry["celery_concurrency"], 1,
                        "one connection per concurrent task of the gevent worker process"))
        else:
            out.append(("worker", entry["celery_concurrency"], 2, entry["celery_concurrency"],
                        "prefork: one task per process"))
    if "beat" in host.tiers:
        out.append(("beat", 1, 2, 0, "beat only schedules tasks"))
    if "api_websocket" in host.tiers and conns is not None:
        out.append(("api_websocket", API_WEBSOCKET_PROCESSES, conns, 0,
                    "the websocket api (Dify 1.15+): %d gevent worker, pooled like one api worker "
                    "(dify_gunicorn_worker_connections); no pgvector pool (it only serves /socket.io/)"
                    % API_WEBSOCKET_PROCESSES))
    return out


def _plan_pools(ctx, host):
    """SQLAlchemy pools of the app processes (POOLED_SERVICES): one pool per process, sized to its concurrency."""
    if not set(host.tiers) & set(POOLED_SERVICES):
        return
    h = host.name
    pool_o, pool_explicit = ctx.number(h, "dify_sqlalchemy_pool_size", integer=True)
    ovf_o, ovf_explicit = ctx.number(h, "dify_sqlalchemy_max_overflow", integer=True, allow_zero=True)
    if pool_explicit and pool_o is None or ovf_explicit and ovf_o is None:
        return
    conns = host.entry.get("gunicorn_worker_connections")
    if conns is None and "api_websocket" in host.tiers:
        conns = ctx.number(h, "dify_gunicorn_worker_connections", integer=True)[0]
    pools = {}
    for tier, processes, needed, pgv, reason in _pool_processes(host, conns):
        pool = pool_o if pool_explicit else needed
        ovf = ovf_o if ovf_explicit else max(1, pool // 2)
        pools[tier] = {"pool_size": pool, "max_overflow": ovf, "processes": processes,
                       "connections": processes * (pool + ovf)}
        ctx.budget_hosts.append({"name": "%s:%s" % (h, tier), "processes": processes, "pool_size": pool,
                                 "max_overflow": ovf, "max_overflow_fixed": ovf_explicit,
                                 "pgvector_processes": pgv})
        host.why["sqlalchemy_pools.%s" % tier] = (
            "set by dify_sqlalchemy_pool_size" if pool_explicit else reason) + (
            "; overflow set by dify_sqlalchemy_max_overflow" if ovf_explicit else "; overflow half the pool for bursts")
    if not pools:
        return
    first = [t for t in POOLED_SERVICES if t in pools][0]
    host.entry.update(sqlalchemy_pool_size=pools[first]["pool_size"],
                      sqlalchemy_max_overflow=pools[first]["max_overflow"], sqlalchemy_pools=pools,
                      db_processes=sum(p["processes"] for p in pools.values()),
                      db_connections=sum(p["connections"] for p in pools.values()))
    host.why["sqlalchemy_pool_size"] = "the pool of the %s processes (see sqlalchemy_pools)" % first


def _plan_plugin_daemon(ctx, host):
    if "plugin_daemon" not in host.tiers:
        return
    h = host.name
    opened = ctx.number(h, "dify_plugin_db_max_open_conns", integer=True)[0]
    idle = ctx.number(h, "dify_plugin_db_max_idle_conns", integer=True, allow_zero=True)[0]
    if opened is None or idle is None:
        return
    host.entry["plugin_db_max_open_conns"] = opened
    host.entry["plugin_db_max_idle_conns"] = min(idle, opened)


def _memory_limits(host):
    """MiB each Dify container on the host may use (its docker memory limit): the api
    and worker from their sizes, the light services their fixed budget."""
    for t in host.tiers:
        if t in DIFY_CONTAINERS and t in LIGHT_MB:
            host.limits[t] = LIGHT_MB[t]
    host.entry["memory_limits_mb"] = host.limits


def _check_committed(ctx, host, errors_before):
    for t in ("postgresql", "mysql", "vector"):
        if t in host.tiers:
            host.committed[t] = host.split[t]
    total = host.entry["memory_committed_mb"] = sum(host.committed.values())
    if total > host.memory_mb and len(ctx.errors) == errors_before:
        ctx.errors.append(
            "memory over-committed on %s: its services need %d MiB (%s) but it has %d MiB, even with "
            "the smallest sizes; give %s more memory or move services to other hosts"
            % (host.name, total, ", ".join("%s %d" % (k, v) for k, v in host.committed.items()),
               host.memory_mb, host.name))


# --------------------------------------------------------------------------
# the fleet


def _plan_fleet(ctx):
    """Who is first where, and the Sentinel quorum (a strict majority unless set)."""
    beats = ctx.members("dify_beat")
    sentinels = ctx.members("dify_sentinel")
    pg_hosts = ctx.members("dify_postgres")
    redis_hosts = ctx.members("dify_redis")
    fleet = {"host_count": len(ctx.order), "beat_host": beats[0] if len(beats) == 1 else None,
             "sentinel_count": len(sentinels), "sentinel_quorum": None,
             "postgres_primary": pg_hosts[0] if pg_hosts else None,
             "redis_master": redis_hosts[0] if redis_hosts else None}
    if sentinels:
        quorum, explicit = ctx.number(sentinels[0], "redis_sentinel_quorum", integer=True)
        if explicit and quorum is not None and quorum > len(sentinels):
            ctx.errors.append("redis_sentinel_quorum is %d but dify_sentinel has %d host(s); Sentinel would "
                              "never agree that the master is down. Remove it (a majority, %d, is computed) or "
                              "set it to at most %d" % (quorum, len(sentinels), len(sentinels) // 2 + 1,
                                                        len(sentinels)))
        elif not explicit:
            quorum = cap.sentinel_quorum(len(sentinels), ha=False)
        fleet["sentinel_quorum"] = quorum
    return fleet


def _reference_host(ctx):
    """The host whose variables stand for the fleet's (group_vars/all reach every host)."""
    pg_hosts = ctx.members("dify_postgres")
    if pg_hosts:
        return pg_hosts[0]
    app = [h for h in ctx.order if set(ctx.tiers[h]) & set(("api", "worker", "beat"))]
    return (app or ctx.order or [None])[0]


def _plan_budget(ctx, fleet):
    """The PostgreSQL connection budget, then every database host sized for it."""
    ref = _reference_host(ctx)
    vector_store = ctx.var(ref, "dify_vector_store")[0]
    pgv_pool = ctx.number(ref, "dify_pgvector_max_connection", integer=True)[0]
    admin = ctx.number(ref, "difyops_pg_admin_connections", integer=True, allow_zero=True)[0]
    su = ctx.number(ref, "difyops_pg_superuser_reserved_connections", integer=True, allow_zero=True)[0]
    mc, mc_explicit = ctx.number(ref, "postgresql_max_connections", integer=True, minimum=10)
    plugin_hosts = ctx.members("dify_plugin_daemon")
    opened = [ctx.plan_hosts[h].get("plugin_db_max_open_conns") for h in plugin_hosts]
    opened = [d for d in opened if d is not None]
    fleet.update(vector_store=vector_store, pgvector_max_connection=pgv_pool,
                 plugin_db_max_open_conns=max(opened) if opened else None,
                 connection_budget=None, max_connections=None)
    if None in (pgv_pool, admin, su) or (mc is None and mc_explicit):
        return
    budget = cap.connection_budget(
        ctx.budget_hosts, plugin_daemons=len(plugin_hosts), plugin_daemon_pool=max(opened) if opened else 30,
        pgvector_pool=pgv_pool, pgvector_on_db=(vector_store == "pgvector"),
        replicas=max(0, len(ctx.members("dify_postgres")) - 1), superuser_reserved=su, admin_reserved=admin,
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
    for h in ctx.members("dify_postgres"):
        _plan_postgresql(ctx, h, budget, su)
    for h in ctx.members("dify_mysql"):
        _plan_mysql(ctx, h, budget)


def _postgresql_version(ctx, h):
    version, explicit = ctx.number(h, "postgresql_version", integer=True, minimum=cap.PG_MIN_VERSION)
    if explicit:
        return version
    hv = ctx.hosts.get(h) or {}
    release = _fact(hv, "ansible_distribution_release", "distribution_release")
    return catalog.PLATFORMS.get(release, catalog.PLATFORMS["trixie"])["postgresql"]


def _plan_postgresql(ctx, h, budget, superuser_reserved):
    """PGTune settings for one PostgreSQL host (replicas need max_connections >= the primary's)."""
    entry = ctx.plan_hosts.get(h) or {}
    if "memory_split" not in entry:
        return
    primary = ctx.members("dify_postgres")[0]
    mc = budget["max_connections"]
    rmc, rmc_explicit = ctx.number(h, "postgresql_max_connections", integer=True, minimum=10)
    if rmc_explicit and rmc is not None and rmc < mc:
        ctx.errors.append(
            "postgresql_max_connections on %s is %d, below the fleet's %d (%s): a hot standby "
            "refuses to start with fewer connections than its primary; remove the host "
            "override or set it to %d" % (h, rmc, mc, primary, mc))
        return
    profile = ctx.var(primary, "postgresql_tune_profile")[0]
    storage = ctx.var(primary, "postgresql_tune_storage")[0]
    fraction = ctx.number(h, "postgresql_memory_fraction", maximum=1.0)[0] or 1.0
    version = _postgresql_version(ctx, h)
    share = int(entry["memory_split"]["postgresql"] * fraction)
    try:
        settings = cap.pg_tune(entry["memory_mb"], entry["cpus"], profile=profile, storage=storage,
                               max_connections=mc, pg_version=version or 17,
                               memory_fraction=min(1.0, share / float(entry["memory_mb"])))
    except cap.CapacityError as exc:
        ctx.errors.append("postgresql on %s: %s (postgresql_tune_profile, postgresql_tune_storage, "
                          "postgresql_version, postgresql_memory_fraction)" % (h, exc))
        return
    settings["superuser_reserved_connections"] = superuser_reserved
    need = cap.pg_memory_need_mb(settings)
    entry.update(postgresql=settings, postgresql_version=version or 17, postgresql_memory_need_mb=need,
                 postgresql_role="primary" if h == primary else "replica")
    entry["why"]["postgresql"] = ("PGTune (%s, %s) for %d MiB and max_connections %d; busy-connection need %d MiB"
                                  % (profile, storage, share, mc, need))
    if need > share:
        ctx.errors.append(
            "PostgreSQL on %s needs about %d MiB with every connection busy (shared_buffers %s + "
            "%d connections x (work_mem %s + %d MiB per backend)) but has %d MiB there; give %s "
            "more memory, lower the fleet's connection demand (dify_sqlalchemy_pool_size, "
            "dify_gunicorn_workers) or put PgBouncer in front of PostgreSQL"
            % (h, need, settings["shared_buffers"], settings["max_connections"],
               settings["work_mem"], cap.PG_BACKEND_OVERHEAD_MB, share, h))


def _plan_mysql(ctx, h, budget):
    """InnoDB settings for a dify_mysql host, sized for its memory share and the
    fleet's connection budget (the same Dify pools connect to it)."""
    entry = ctx.plan_hosts.get(h) or {}
    if "memory_split" not in entry:
        return
    mc, explicit = ctx.number(h, "mysql_max_connections", integer=True, minimum=10)
    if explicit and mc is not None and mc < budget["required"]:
        ctx.errors.append(
            "MySQL connection budget exceeded on %s: the fleet can open %d connections but "
            "mysql_max_connections is %d; remove the override (the plan then sets %d) or set it to at "
            "least %d" % (h, budget["required"], mc, budget["max_connections"], budget["required"]))
        return
    max_connections = mc if explicit and mc is not None else budget["max_connections"]
    storage = ctx.var(h, "mysql_tune_storage")[0]
    durable = ctx.var(h, "mysql_durable")[0]
    durable = str(durable).lower() not in ("false", "no", "0", "off")
    fraction = ctx.number(h, "mysql_memory_fraction", maximum=1.0)[0] or 1.0
    share = int(entry["memory_split"]["mysql"] * fraction)
    try:
        settings = cap.innodb_tune(entry["memory_mb"], entry["cpus"], max_connections=max_connections,
                                   memory_fraction=min(1.0, share / float(entry["memory_mb"])),
                                   storage=storage, durable=durable)
    except cap.CapacityError as exc:
        ctx.errors.append("mysql on %s: %s (mysql_tune_storage, mysql_memory_fraction, difyops_memory_weights)"
                          % (h, exc))
        return
    entry["mysql"] = settings
    entry["why"]["mysql"] = ("InnoDB sizing (%s) for %d MiB and max_connections %d (%s)"
                             % (storage, share, max_connections,
                                "set by mysql_max_connections" if explicit else "the fleet's budget"))


def _summarise(ctx, fleet):
    """Fleet-wide pool sizes (the largest per host), for the report."""
    app_hosts = [h for h in ctx.order if set(ctx.tiers[h]) & set(POOLED_SERVICES)]
    pools = [ctx.plan_hosts[h]["sqlalchemy_pool_size"] for h in app_hosts
             if "sqlalchemy_pool_size" in ctx.plan_hosts[h]]
    ovfs = [ctx.plan_hosts[h]["sqlalchemy_max_overflow"] for h in app_hosts
            if "sqlalchemy_max_overflow" in ctx.plan_hosts[h]]
    fleet["sqlalchemy_pool_size"] = max(pools) if pools else None
    fleet["sqlalchemy_max_overflow"] = max(ovfs) if ovfs else None


# --------------------------------------------------------------------------
# shared by the module and the action plugin


_FACTS_READ = ("memtotal_mb", "processor_vcpus", "processor_nproc", "distribution_release")


def _host_inputs(hv, wanted):
    entry = {}
    for key in wanted:
        if key == "ansible_facts" and _is_set(entry.get("ansible_memtotal_mb")) and _is_set(
                entry.get("ansible_distribution_release")) and (
                _is_set(entry.get("ansible_processor_vcpus")) or _is_set(entry.get("ansible_processor_nproc"))):
            continue  # the whole facts dict is only read when needed
        if key not in hv:
            continue
        value = hv[key]
        if key == "ansible_facts":
            value = dict((k, value.get(k)) for k in _FACTS_READ) if hasattr(value, "get") else None
        entry[key] = value
    return entry


def collect_host_inputs(groups, hostvars):
    """Per-host dict of only what the plan reads (FACT_KEYS, VARIABLE_KEYS)
    for every host of the fleet groups; ``hostvars`` may be a lazy mapping
    (Ansible's HostVars): only these keys are read (and templated)."""
    wanted = FACT_KEYS + VARIABLE_KEYS
    out = {}
    for h in catalog.fleet_hosts(groups):
        try:
            hv = hostvars[h]
        except KeyError:
            out[h] = {}
            continue
        out[h] = _host_inputs(hv, wanted)
    return out


def run(groups, hosts, overrides=None, report_path=None, report_title=None,
        check_mode=False, diff_mode=False):
    """Build the plan and write the report; the module/action result dict.

    Raises PlanError on a capacity problem; OSError when the report cannot
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
