# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The capacity plan as a Markdown report, and the report file on the controller."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import io
import os
import tempfile

FLEET_KEYS = ("host_count", "max_connections", "sentinel_count", "sentinel_quorum", "beat_host",
              "postgres_primary", "redis_master", "sqlalchemy_pool_size", "sqlalchemy_max_overflow",
              "vector_store", "pgvector_max_connection", "plugin_db_max_open_conns")
HOST_KEYS = ("gunicorn_workers", "gunicorn_worker_connections", "celery_concurrency", "celery_autoscale",
             "celery_pool", "sqlalchemy_pool_size", "sqlalchemy_max_overflow", "db_connections",
             "plugin_db_max_open_conns", "plugin_db_max_idle_conns", "redis_maxmemory", "redis_maxmemory_policy")


def human_mb(mb):
    if mb >= 1024 and mb % 1024 == 0:
        return "%d GiB" % (mb // 1024)
    return "%d MiB" % mb


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return "..".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def _fleet_section(fleet):
    out = ["## Fleet", "", "| item | value |", "|---|---|"]
    for key in FLEET_KEYS:
        out.append("| %s | %s |" % (key, _cell(fleet.get(key))))
    budget = fleet.get("connection_budget")
    if not budget:
        return out
    b = budget["breakdown"]
    out += ["", "## PostgreSQL connection budget", "", "| source | connections |", "|---|---|",
            "| Dify processes (processes x (pool + overflow)) | %d |" % b["app_total"]]
    websocket = sum(v for k, v in b["app_hosts"].items() if k.endswith(":api_websocket"))
    if websocket:
        out.append("| of which the websocket api (api_websocket) | %d |" % websocket)
    out += ["| plugin daemon (DB_MAX_OPEN_CONNS) | %d |" % b["plugin_daemon"],
            "| pgvector (PGVECTOR_MAX_CONNECTION per process) | %d |" % b["pgvector"],
            "| replicas | %d |" % b["replication"],
            "| superuser_reserved_connections | %d |" % b["superuser_reserved"],
            "| admin (migrations, backups, monitoring) | %d |" % b["admin_reserved"],
            "| **required** | **%d** |" % budget["required"],
            "| max_connections (%s) | %d |" % (_budget_source(budget), budget["max_connections"])]
    return out


def _budget_source(budget):
    return "computed" if budget["max_connections_computed"] else "postgresql_max_connections"


def _host_sizes(e, why):
    out = []
    for key in HOST_KEYS:
        if key not in e:
            continue
        value = e[key]
        if key == "redis_maxmemory":
            value = "%d (%s)" % (value, e.get("redis_maxmemory_human"))
        if key == "db_connections":
            out.append("| db_connections | %d | %d processes holding a SQLAlchemy pool |" % (value, e["db_processes"]))
            continue
        out.append("| %s | %s | %s |" % (key, _cell(value), _cell(why.get(key))))
    for tier, pv in sorted((e.get("sqlalchemy_pools") or {}).items()):
        out.append("| sqlalchemy_pools.%s | %d x (pool %d + overflow %d) = %d | %s |"
                   % (tier, pv["processes"], pv["pool_size"], pv["max_overflow"], pv["connections"],
                      _cell(why.get("sqlalchemy_pools.%s" % tier))))
    for service, mb in sorted((e.get("memory_limits_mb") or {}).items()):
        out.append("| memory_limits_mb.%s | %d | the %s container's memory limit |" % (service, mb, service))
    return out


def _host_section(name, e):
    why = e.get("why") or {}
    out = ["", "### %s" % name, "", "| value | setting | why |", "|---|---|---|",
           "| tiers | %s | inventory groups |" % _cell(", ".join(e.get("tiers", []))),
           "| RAM | %s | facts or difyops_memory_mb |" % _cell(human_mb(e["memory_mb"]) if "memory_mb" in e else None),
           "| CPUs | %s | facts or difyops_cpus |" % _cell(e.get("cpus"))]
    if "memory_split" in e:
        out.append("| memory split | %s | %s |" % (
            _cell(", ".join("%s %d MiB" % (k, v) for k, v in e["memory_split"].items())),
            _cell(why.get("memory_split"))))
        out.append("| memory committed | %d MiB | sum of the services' needs |" % e["memory_committed_mb"])
    out += _host_sizes(e, why)
    if "postgresql" in e:
        out.append("| postgresql | %s | %s |" % (e.get("postgresql_role"), _cell(why.get("postgresql"))))
        for k, v in e["postgresql"].items():
            out.append("| postgresql.%s | %s | PGTune |" % (k, _cell(v)))
    if "mysql" in e:
        out.append("| mysql | %s | %s |" % ("InnoDB", _cell(why.get("mysql"))))
        for k, v in e["mysql"].items():
            out.append("| mysql.%s | %s | innodb_tune |" % (k, _cell(v)))
    return out


def render_report(plan, title="Dify fleet capacity plan"):
    """The plan as Markdown: fleet summary, connection budget, one table per host."""
    out = ["# %s" % title, "",
           "Generated by difyops.fleet.fleet_plan from host facts and inventory variables. "
           "Every value can be overridden by the variable named in the README of "
           "benchmarks/capacity; an override that breaks a fleet rule is refused.", ""]
    out += _fleet_section(plan["fleet"])
    out += ["", "## Hosts"]
    for name in sorted(plan["hosts"]):
        out += _host_section(name, plan["hosts"][name])
    out.append("")
    return "\n".join(out)


def read_text(path):
    """Text of ``path`` or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with io.open(path, "r", encoding="utf-8") as f:
        return f.read()


def write_text(path, text, mode=0o644):
    """Write ``text`` to ``path`` atomically (temp file + rename), creating the directory."""
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
