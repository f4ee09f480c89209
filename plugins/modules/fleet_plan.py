#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
---
module: fleet_plan
short_description: Size every service of a Dify fleet from host facts and the inventory
version_added: "0.1.0"
author: difyops.fleet maintainers (@difyops)
description:
  - Computes the capacity plan of the fleet in one pass on the controller - per host the PostgreSQL
    settings (PGTune method) and version, InnoDB settings, Redis maxmemory and policy, gunicorn workers and
    worker connections, Celery concurrency, autoscale and pool, SQLAlchemy pool size and overflow per process
    kind, the plugin daemon's connections, each Dify container's memory limit (every service of the catalog's
    tier C(dify), Dify 1.16's agent backend and local sandbox included); fleet-wide the PostgreSQL
    C(max_connections) from the connection budget, the pgvector connections, the Sentinel quorum, the beat host.
  - The connection budget counts every process holding a SQLAlchemy pool - gunicorn workers, Celery processes,
    beat, and the websocket api (Dify 1.15+, C(dify_api_websocket) - one gevent worker pooled like one api worker,
    C(dify_gunicorn_worker_connections), no pgvector pool) - plus the plugin daemon, pgvector, replicas and the
    reserved connections.
  - The plan is the only interface between the fleet model and the roles - they read C(difyops_plan), never a
    size of their own; the role C(difyops.fleet.plan) runs this module for a role used without site.yml.
  - Refuses a fleet whose sizes cannot work, before any host is changed, with one message per problem naming
    the variable, the numbers and the fix - a connection budget above C(postgresql_max_connections); a
    PostgreSQL host that cannot hold C(max_connections) busy connections in its memory; memory over-committed
    on a host; a host without memory facts; a bad knob value. Host counts (exactly one beat host, odd
    Sentinels for HA, ...) are M(difyops.fleet.fleet_preflight)'s, from the service catalog.
  - Memory of a host that runs several services - the OS keeps 512 MiB, each light service the fixed budget
    the catalog gives it, which is also the memory limit of the Dify containers among them (sentinel 64, beat
    512, web 1024, sandbox 1024, plugin_daemon 2048, ssrf_proxy 128, edge 128 MiB; Dify 1.15+/1.16+ api_websocket
    1024, agent_backend 1024, local_sandbox 1024, agent_ssrf_proxy 128 MiB), and the rest is split among the heavy
    services present by weight (postgresql 4, mysql 4, redis 2, vector 2 (Weaviate/Qdrant on C(dify_vector)), api 3,
    worker 3; per host C(difyops_memory_weights)). A host with one service gives it all its RAM.
  - MySQL/MariaDB hosts (group C(dify_mysql)) get InnoDB settings (M(difyops.fleet.innodb_tune) logic) for
    their memory share, with C(max_connections) from the same connection budget; an explicit
    C(mysql_max_connections) below the budget is refused.
  - The knobs (C(plugins/module_utils/knobs.py), one name and one default each; C(query('difyops.fleet.catalog',
    'knobs'))) are read from host variables (group_vars/host_vars); O(overrides) gives fleet-wide values for
    hosts that do not set them - C(difyops_memory_mb), C(difyops_cpus), C(difyops_memory_weights),
    C(postgresql_max_connections), C(postgresql_version), C(postgresql_tune_profile), C(postgresql_tune_storage),
    C(postgresql_memory_fraction), C(difyops_pg_admin_connections), C(difyops_pg_superuser_reserved_connections),
    C(mysql_max_connections), C(mysql_tune_storage), C(mysql_memory_fraction), C(mysql_durable),
    C(redis_maxmemory), C(redis_maxmemory_fraction), C(redis_sentinel_quorum), C(dify_gunicorn_workers),
    C(dify_gunicorn_worker_connections), C(dify_api_worker_mb), C(dify_celery_concurrency), C(dify_celery_pool),
    C(dify_celery_task_mb), C(dify_celery_process_mb), C(dify_sqlalchemy_pool_size),
    C(dify_sqlalchemy_max_overflow), C(dify_pgvector_max_connection), C(dify_plugin_db_max_open_conns),
    C(dify_plugin_db_max_idle_conns), C(dify_vector_store).
  - Writes an optional Markdown capacity report on the controller (a table per host - RAM, CPUs, each
    computed value and why). Check mode reports whether the report would change; diff mode shows how.
  - The action plugin of the same name runs everything on the controller and, when O(hostvars) is
    omitted, reads only the facts and variables above from C(hostvars), so a 1000-host plan takes well
    under a second of controller CPU.
  - Returns the plan as C(plan) and sets it as the fact C(difyops_plan) (on every host of the play when
    the task is C(run_once)).
options:
  groups:
    description:
      - Inventory groups, group name to list of host names. Defaults to C(groups) in the action plugin.
    type: dict
  hostvars:
    description:
      - Host name to that host's facts and variables (C(ansible_memtotal_mb), C(ansible_processor_vcpus)
        or C(ansible_facts), plus any override variable). Defaults to the play's C(hostvars).
    type: dict
  overrides:
    description:
      - Fleet-wide values of the override variables, used for hosts that do not set them.
    type: dict
    default: {}
  report_path:
    description:
      - Path on the controller of the Markdown capacity report to write. No report when omitted.
    type: path
  report_title:
    description:
      - First heading of the report.
    type: str
    default: Dify fleet capacity plan
attributes:
  check_mode:
    description: Computes and checks the plan; reports whether the report would change without writing it.
    support: full
  diff_mode:
    description: Shows the report before and after.
    support: full
notes:
  - Gather facts on every host of the fleet groups first (or set C(difyops_memory_mb) and C(difyops_cpus)).
seealso:
  - plugin: difyops.fleet.pg_tune
    plugin_type: filter
  - plugin: difyops.fleet.connection_budget
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Plan the fleet's capacity and write the report
  difyops.fleet.fleet_plan:
    report_path: "{{ playbook_dir }}/../capacity-report.md"
  run_once: true
  delegate_to: localhost

- name: Plan for a fleet that has no facts yet, with explicit numbers
  difyops.fleet.fleet_plan:
    groups:
      dify_postgres: [pg1]
      dify_redis: [r1]
      dify_api: [app1]
      dify_worker: [app1]
      dify_beat: [app1]
    hostvars:
      pg1: {difyops_memory_mb: 16384, difyops_cpus: 4}
      r1: {difyops_memory_mb: 4096, difyops_cpus: 2}
      app1: {difyops_memory_mb: 16384, difyops_cpus: 8}
    overrides:
      dify_sqlalchemy_pool_size: 12
  run_once: true
  delegate_to: localhost
  register: capacity
"""

RETURN = r"""
plan:
  description:
    - The capacity plan, also set as the fact C(difyops_plan).
    - "C(fleet) - C(max_connections), C(connection_budget) (see the connection_budget filter), C(sentinel_quorum),
      C(sentinel_count), C(beat_host), C(postgres_primary), C(redis_master), C(sqlalchemy_pool_size),
      C(sqlalchemy_max_overflow) (largest per host), C(vector_store), C(pgvector_max_connection),
      C(plugin_db_max_open_conns), C(host_count)."
    - "C(hosts) - per inventory host C(tiers), C(memory_mb), C(cpus), C(memory_split) (MiB per service),
      C(memory_committed_mb), C(why) (one sentence per computed value), and for the tiers it runs
      C(postgresql) (settings dict), C(postgresql_version), C(postgresql_role), C(postgresql_memory_need_mb);
      C(mysql) (InnoDB settings dict); C(redis_maxmemory) (bytes), C(redis_maxmemory_human),
      C(redis_maxmemory_policy); C(gunicorn_workers), C(gunicorn_worker_connections); C(celery_concurrency),
      C(celery_autoscale) ([min, max]), C(celery_pool); C(sqlalchemy_pool_size), C(sqlalchemy_max_overflow) (the
      first of api, worker, beat, api_websocket), C(sqlalchemy_pools) (per process kind - api, worker, beat,
      api_websocket), C(db_processes), C(db_connections);
      C(plugin_db_max_open_conns), C(plugin_db_max_idle_conns); C(memory_limits_mb) (per Dify container)."
  returned: success
  type: dict
cpu_seconds:
  description:
    - Controller CPU time spent, in seconds - C(plan) (the computation), C(report) (rendering and writing,
      when O(report_path) is set), C(read_hostvars) (reading facts and variables from the play's hostvars,
      action plugin only).
  returned: success
  type: dict
  sample: {plan: 0.05, report: 0.04, read_hostvars: 0.3}
report_path:
  description: Path of the capacity report.
  returned: when O(report_path) is set
  type: str
"""

from ansible_collections.difyops.fleet.plugins.module_utils.capacity_plan import (
    PlanError,
    run,
)
from ansible_collections.difyops.fleet.plugins.module_utils.fleet import INVENTORY_ARGUMENT_SPEC, inventory_module

ARGUMENT_SPEC = dict(
    INVENTORY_ARGUMENT_SPEC,
    overrides=dict(type="dict", default={}),
    report_path=dict(type="path"),
    report_title=dict(type="str", default="Dify fleet capacity plan"),
)


def main():
    module, p = inventory_module(ARGUMENT_SPEC, "fleet_plan")
    try:
        result = run(p["groups"], p["hostvars"], p["overrides"], p["report_path"], p["report_title"],
                     check_mode=module.check_mode, diff_mode=module._diff)
    except PlanError as exc:
        module.fail_json(msg="fleet_plan refused the fleet: " + " | ".join(exc.errors), errors=exc.errors)
    except (IOError, OSError) as exc:
        module.fail_json(msg="fleet_plan could not write the report %s: %s; check report_path"
                             % (p["report_path"], exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
