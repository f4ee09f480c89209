# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The fleet_preflight module run for real (as Ansible runs it: a process with an args file)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
COLLECTIONS = os.path.join(TOP, ".collections")
MODULE = os.path.join(TOP, "plugins", "modules", "fleet_preflight.py")

DEBIAN = {"distribution": "Debian", "distribution_release": "bookworm", "distribution_major_version": "12"}
GROUPS = {
    "all": ["a"],
    "dify_postgres": ["a"], "dify_redis": ["a"], "dify_api": ["a"], "dify_worker": ["a"], "dify_beat": ["a"],
    "dify_web": ["a"], "dify_plugin_daemon": ["a"], "dify_sandbox": ["a"], "dify_ssrf_proxy": ["a"],
    "dify_edge": ["a"], "dify_agent_backend": ["a"], "dify_local_sandbox": ["a"], "dify_agent_ssrf_proxy": ["a"],
}


def run_module(tmp_path, args):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    proc = subprocess.run([sys.executable, MODULE, str(path)], check=False, capture_output=True, text=True,
                          env=env, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def test_module_passes_a_good_fleet(tmp_path):
    hv = {"a": {"ansible_facts": DEBIAN, "nginx_server_name": "dify.example.com"}}
    res = run_module(tmp_path, {"groups": GROUPS, "hostvars": hv, "_ansible_check_mode": True})
    assert not res.get("failed") and res["errors"] == [] and res["changed"] is False
    assert res["checked_hosts"] == 1


def test_module_fails_with_every_problem(tmp_path):
    hv = {"a": {"ansible_facts": DEBIAN, "redis_password": "difyai123456"}}
    res = run_module(tmp_path, {"groups": dict(GROUPS, dify_web=[]), "hostvars": hv,
                                "plan_errors": ["beat: two hosts"], "unreachable_hosts": []})
    assert res["failed"] is True
    assert len(res["errors"]) == 4  # empty web group, TLS without a name, sample secret, plan error
    assert res["msg"].startswith("Preflight refused the fleet; nothing was changed. 4 problems:")
    assert "4. capacity plan: beat: two hosts" in res["msg"]
