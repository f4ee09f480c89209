# -*- coding: utf-8 -*-
"""roles/dify takes every size from the fleet plan: the knobs set in the
inventory reach the env files (each service its own SQLAlchemy pool, the
pgvector and plugin daemon connections) and the containers' memory limits.
Run for real with ansible-playbook in check mode on a local connection; the
plan comes from the role's dependency difyops.fleet.plan."""

from __future__ import annotations

import json

import yaml

from test_vector_store_role import SECRETS, out, play, project

KNOBS = {
    "dify_celery_pool": "prefork",
    "dify_gunicorn_worker_connections": 12,
    "dify_pgvector_max_connection": 3,
    "dify_plugin_db_max_open_conns": 12,
    "dify_plugin_db_max_idle_conns": 4,
    "dify_api_worker_mb": 700,
}


def test_knobs_reach_the_env_files_and_limits(tmp_path):
    proj = project(tmp_path, all_vars=KNOBS, vector=())
    (tmp_path / "sizes.yml").write_text(yaml.safe_dump([{
        "hosts": "api1", "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_role": {"name": "difyops.fleet.dify", "public": True}},
            {"ansible.builtin.copy": {
                "content": "{{ {'env': dict(__dify_env_files.results | map(attribute='item')"
                           " | zip(__dify_env_files.results | map(attribute='env'))),"
                           " 'limits': dict(__dify_host_services | zip(__dify_host_services"
                           " | map('extract', __dify_default_limits))),"
                           " 'plan': difyops_plan.hosts[inventory_hostname]}"
                           " | to_json }}",
                "dest": str(tmp_path / "sizes.json"), "mode": "0600"},
             "check_mode": False},
        ]}]))
    res = play(proj, "sizes.yml", "--check")
    assert res.returncode == 0, out(res)
    got = json.loads((tmp_path / "sizes.json").read_text())
    env, plan = got["env"], got["plan"]
    pools = plan["sqlalchemy_pools"]
    # each service its own pool: the api one connection per worker connection, prefork two per process
    assert env["api"]["SQLALCHEMY_POOL_SIZE"] == str(pools["api"]["pool_size"]) == "12"
    assert env["worker"]["SQLALCHEMY_POOL_SIZE"] == str(pools["worker"]["pool_size"]) == "2"
    assert env["worker"]["SQLALCHEMY_MAX_OVERFLOW"] == str(pools["worker"]["max_overflow"])
    assert env["api"]["SERVER_WORKER_AMOUNT"] == str(plan["gunicorn_workers"]) == "2"
    assert env["worker"]["CELERY_WORKER_AMOUNT"] == str(plan["celery_concurrency"]) == "2"
    assert env["api"]["PGVECTOR_MAX_CONNECTION"] == env["worker"]["PGVECTOR_MAX_CONNECTION"] == "3"
    assert (env["plugin_daemon"]["DB_MAX_OPEN_CONNS"], env["plugin_daemon"]["DB_MAX_IDLE_CONNS"]) == ("12", "4")
    # the containers' memory limits are the plan's
    assert got["limits"]["api"]["memory"] == "%dm" % (2 * 700 + 256)
    assert got["limits"]["worker"]["memory"] == "%dm" % (2 * 512)
    assert got["limits"]["plugin_daemon"]["memory"] == "2048m"
    for secret in SECRETS.values():
        assert secret not in out(res)
