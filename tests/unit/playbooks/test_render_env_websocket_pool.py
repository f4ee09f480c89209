# -*- coding: utf-8 -*-
"""playbooks/render-env.yml on a Dify 1.16.1 fleet whose websocket api has a
host of its own: the websocket api's env carries the SQLAlchemy pool the
capacity plan budgeted for it (not the release default, not the api's), and
every new Dify container gets the plan's memory limit. Run for real with no
host touched."""

from __future__ import annotations

from ansible_collections.difyops.fleet.plugins.module_utils import catalog

from test_render_env import rendered, render
from test_render_env_agent import agent_fleet


def test_the_websocket_env_has_its_planned_pool_and_the_new_containers_their_limits(tmp_path):
    inventory = agent_fleet()
    children = inventory["all"]["children"]
    # the websocket api alone on ws1, pooled from its own dify_gunicorn_worker_connections
    children["dify_api_websocket"]["hosts"] = {"ws1": {}}
    inventory["all"]["hosts"]["ws1"] = {"ansible_host": "10.0.2.13", "dify_gunicorn_worker_connections": 24}
    out = render(tmp_path, inventory, "1.16.1")[0]
    envs, containers = rendered(out)
    ws = envs["ws1"]["api_websocket"]
    # pool 24 (one gevent worker pooled like an api worker), overflow half of it
    assert (ws["SQLALCHEMY_POOL_SIZE"], ws["SQLALCHEMY_MAX_OVERFLOW"]) == ("24", "12")
    assert ws["SERVER_WORKER_AMOUNT"] == "1"
    api = envs["app1"]["api"]
    assert (api["SQLALCHEMY_POOL_SIZE"], api["SQLALCHEMY_MAX_OVERFLOW"]) == ("10", "5")
    budget = dict((s.name, s.memory_mb) for s in catalog.SERVICES)
    new = ("api_websocket", "agent_backend", "local_sandbox")
    limits = dict((service, c["limits"]["memory"]) for host in containers
                  for service, c in containers[host].items() if service in new)
    assert limits == {"api_websocket": "%dm" % budget["api_websocket"],
                      "agent_backend": "%dm" % budget["agent_backend"],
                      "local_sandbox": "%dm" % budget["local_sandbox"]}
