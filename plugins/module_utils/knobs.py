# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The sizing knobs: every variable the capacity plan reads, with its one default.

A knob is set in the inventory (group_vars/host_vars) or passed to
``fleet_plan`` as an override; the plan turns the knobs and the host facts
into ``difyops_plan``, and the roles read ``difyops_plan`` only, never a
knob of their own. So each knob has one name and one default, here.

``default`` None means "computed by the plan" (from facts, the memory split
or the connection budget). ``output`` names where the plan puts the value a
role reads (``hosts.<host>.<key>`` or ``fleet.<key>``).
"""

from __future__ import annotations


class Knob(object):
    __slots__ = ("name", "default", "output", "role", "help")

    def __init__(self, name, default, output, role, help_text):
        self.name = name
        self.default = default
        self.output = output
        self.role = role
        self.help = help_text

    def as_dict(self):
        return {"name": self.name, "default": self.default, "output": self.output, "role": self.role,
                "description": self.help}


KNOBS = (
    # the host itself
    Knob("difyops_memory_mb", None, "hosts.<host>.memory_mb", None,
         "RAM in MiB to plan with instead of the ansible_memtotal_mb fact"),
    Knob("difyops_cpus", None, "hosts.<host>.cpus", None,
         "CPUs to plan with instead of the ansible_processor_vcpus fact"),
    Knob("difyops_memory_weights", None, "hosts.<host>.memory_split", None,
         "weights of the heavy services on a shared host, e.g. {redis: 4}"),
    # PostgreSQL
    Knob("postgresql_max_connections", None, "fleet.max_connections", "postgresql",
         "max_connections; computed from the fleet's connection budget"),
    Knob("postgresql_version", None, "hosts.<host>.postgresql_version", "postgresql",
         "PostgreSQL major version; the one Debian ships for the host's release"),
    Knob("postgresql_tune_profile", "web", "hosts.<host>.postgresql", "postgresql", "PGTune profile"),
    Knob("postgresql_tune_storage", "ssd", "hosts.<host>.postgresql", "postgresql", "PGTune storage type"),
    Knob("postgresql_memory_fraction", 1.0, "hosts.<host>.postgresql", "postgresql",
         "share of PostgreSQL's memory budget on the host it may use"),
    Knob("difyops_pg_admin_connections", 10, "fleet.connection_budget", "postgresql",
         "connections kept for migrations, backups, monitoring and psql"),
    Knob("difyops_pg_superuser_reserved_connections", 3, "hosts.<host>.postgresql", "postgresql",
         "superuser_reserved_connections"),
    # MySQL / MariaDB
    Knob("mysql_max_connections", None, "hosts.<host>.mysql", "mysql",
         "max_connections; the fleet's connection budget"),
    Knob("mysql_tune_storage", "ssd", "hosts.<host>.mysql", "mysql", "storage type for innodb_io_capacity"),
    Knob("mysql_memory_fraction", 1.0, "hosts.<host>.mysql", "mysql",
         "share of MariaDB's memory budget on the host it may use"),
    Knob("mysql_durable", True, "hosts.<host>.mysql", "mysql",
         "innodb_flush_log_at_trx_commit 1 (true) or 2"),
    # Redis and Sentinel
    Knob("redis_maxmemory", None, "hosts.<host>.redis_maxmemory", "redis",
         "maxmemory (bytes or 4gb); a fraction of Redis' memory budget"),
    Knob("redis_maxmemory_fraction", 0.5, "hosts.<host>.redis_maxmemory", "redis",
         "fraction of Redis' memory budget given to maxmemory (the rest is fork room)"),
    Knob("redis_sentinel_quorum", None, "fleet.sentinel_quorum", "redis_sentinel",
         "Sentinels that must agree; a strict majority of dify_sentinel"),
    # Dify
    Knob("dify_gunicorn_workers", None, "hosts.<host>.gunicorn_workers", "dify",
         "api workers (SERVER_WORKER_AMOUNT); min(2 x CPUs + 1, memory / dify_api_worker_mb)"),
    Knob("dify_gunicorn_worker_connections", 10, "hosts.<host>.gunicorn_worker_connections", "dify",
         "gevent connections per api worker (SERVER_WORKER_CONNECTIONS)"),
    Knob("dify_api_worker_mb", 640, "hosts.<host>.memory_limits_mb.api", "dify",
         "memory of one api worker"),
    Knob("dify_celery_concurrency", None, "hosts.<host>.celery_concurrency", "dify",
         "Celery concurrency (CELERY_WORKER_AMOUNT)"),
    Knob("dify_celery_pool", "gevent", "hosts.<host>.celery_pool", "dify",
         "Celery pool, gevent or prefork (CELERY_WORKER_CLASS)"),
    Knob("dify_celery_task_mb", 128, "hosts.<host>.memory_limits_mb.worker", "dify",
         "memory of one gevent task"),
    Knob("dify_celery_process_mb", 512, "hosts.<host>.memory_limits_mb.worker", "dify",
         "memory of one Celery process"),
    Knob("dify_sqlalchemy_pool_size", None, "hosts.<host>.sqlalchemy_pool_size", "dify",
         "SQLALCHEMY_POOL_SIZE; the concurrency of each process"),
    Knob("dify_sqlalchemy_max_overflow", None, "hosts.<host>.sqlalchemy_max_overflow", "dify",
         "SQLALCHEMY_MAX_OVERFLOW; half the pool"),
    Knob("dify_pgvector_max_connection", 5, "fleet.pgvector_max_connection", "dify",
         "PGVECTOR_MAX_CONNECTION of every api/worker process"),
    Knob("dify_plugin_db_max_open_conns", 30, "hosts.<host>.plugin_db_max_open_conns", "dify",
         "plugin daemon DB_MAX_OPEN_CONNS"),
    Knob("dify_plugin_db_max_idle_conns", 10, "hosts.<host>.plugin_db_max_idle_conns", "dify",
         "plugin daemon DB_MAX_IDLE_CONNS (at most DB_MAX_OPEN_CONNS)"),
    Knob("dify_vector_store", "pgvector", "fleet.vector_store", "dify",
         "Dify's VECTOR_STORE; pgvector connections count in PostgreSQL's budget"),
)

DEFAULTS = dict((k.name, k.default) for k in KNOBS)
NAMES = tuple(k.name for k in KNOBS)


def knob(name):
    for k in KNOBS:
        if k.name == name:
            return k
    raise KeyError(name)
