"""The dify_env module run for real (subprocess, as Ansible runs it): files, check mode, diff, masking."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
_COLL = os.path.join(_TOP, ".collections")

SECRETS = {
    "secret_key": "unit-secret-key-0123456789abcdef",
    "db_password": "unit-db-password-0123",
    "redis_password": "unit-redis-password-0123",
    "redis_sentinel_password": "unit-sentinel-password-0123",
    "sandbox_api_key": "unit-sandbox-key-0123",
    "plugin_daemon_key": "unit-daemon-key-0123",
    "plugin_inner_api_key": "unit-inner-key-0123",
}
CONTEXT = {
    "db": {"host": "10.1.0.2"},
    "redis": {"sentinels": ["10.1.0.3:26379"], "master_name": "dify-master"},
    "event_bus": {"url": "redis://10.1.0.3:6379"},
    "public_url": "https://dify.example.com",
    "urls": {"api": "http://10.1.0.4:5001", "sandbox": "http://10.1.0.4:8194",
             "plugin_daemon": "http://10.1.0.4:5002"},
}


def run(tmp_path, check=False, diff=True, **params):
    args = {"service": "api", "context": CONTEXT, "secrets": SECRETS, "group": str(os.getgid()),
            "owner": str(os.getuid()), "_ansible_check_mode": check, "_ansible_diff": diff}
    args.update(params)
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=_COLL)
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.difyops.fleet.plugins.modules.dify_env",
                           str(path)], capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    return json.loads(proc.stdout)


def test_writes_0640_then_is_idempotent(tmp_path):
    dest = tmp_path / "api.env"
    res = run(tmp_path, dest=str(dest))
    assert res["changed"], res
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o640
    text = dest.read_text()
    assert "SECRET_KEY=unit-secret-key-0123456789abcdef" in text
    assert "DB_HOST=10.1.0.2" in text and "MIGRATION_ENABLED=false" in text
    assert run(tmp_path, dest=str(dest))["changed"] is False


def test_output_and_diff_never_show_a_secret(tmp_path):
    dest = tmp_path / "api.env"
    res = run(tmp_path, dest=str(dest))
    shown = json.dumps(res)
    for value in SECRETS.values():
        assert value not in shown
    assert res["env"]["SECRET_KEY"] == "********"
    assert "SECRET_KEY=********" in res["diff"]["after"]
    changed = run(tmp_path, dest=str(dest), secrets=dict(SECRETS, secret_key="another-secret-key-0123456789"))
    assert "SECRET_KEY=******** (changed)" in changed["diff"]["after"]
    assert "another-secret-key" not in json.dumps(changed)


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / "api.env"
    res = run(tmp_path, check=True, dest=str(dest))
    assert res["changed"] and not dest.exists()


@pytest.mark.parametrize("extra,needle", [
    ({"api": {"VECTOR_STORE": "faiss"}}, "VECTOR_STORE"),
    ({"all": {"TYPO_VARIABLE": "1"}}, "TYPO_VARIABLE"),
    ({"sandbox": {"API_KEY": "not-the-same-key-0123"}}, "must be equal"),
])
def test_refusals_write_nothing(tmp_path, extra, needle):
    dest = tmp_path / "api.env"
    res = run(tmp_path, dest=str(dest), extra_env=extra)
    assert res.get("failed") and needle in res["msg"]
    assert not dest.exists()


def test_sample_secret_refused(tmp_path):
    res = run(tmp_path, validate_only=True, secrets=dict(SECRETS, sandbox_api_key="dify-sandbox"))
    assert res.get("failed") and "sample" in res["msg"]


def test_validate_only_returns_pinned_images(tmp_path):
    res = run(tmp_path, validate_only=True)
    assert res["images"]["api"] == "langgenius/dify-api:1.13.3"
    assert res["images"]["plugin_daemon"] == "langgenius/dify-plugin-daemon:0.5.3-local"


def test_release_files_and_source_commit_returned(tmp_path):
    res = run(tmp_path, validate_only=True)
    assert res["source_commit"] == "59639ca9b2ba2ba4b32b5feff5149cfc1ad0ba74"
    assert "api/celery_entrypoint.py" in res["api_files"]
    assert "api/celery_healthcheck.py" not in res["api_files"]
    res = run(tmp_path, validate_only=True, version="1.16.1")
    assert res["images"]["api"] == "langgenius/dify-api:1.16.1"
    assert res["images"]["plugin_daemon"] == "langgenius/dify-plugin-daemon:0.6.3-local"
    assert "api/celery_healthcheck.py" in res["api_files"]


@pytest.mark.parametrize("service", ["api", "plugin_daemon"])
def test_empty_redis_port_refused_before_anything_is_written(tmp_path, service):
    dest = tmp_path / ("%s.env" % service)
    res = run(tmp_path, service=service, dest=str(dest), extra_env={service: {"REDIS_PORT": ""}})
    assert res.get("failed") and "%s: REDIS_PORT=''" % service in res["msg"], res
    assert not dest.exists()


def test_a_service_the_release_or_the_fleet_does_not_have_is_refused(tmp_path):
    dest = tmp_path / "agent_backend.env"
    res = run(tmp_path, service="agent_backend", dest=str(dest))
    assert res["failed"] and "the release has none" in res["msg"] and not dest.exists()
    res = run(tmp_path, service="agent_backend", dest=str(dest), version="1.16.1")
    assert res["failed"] and "context.optional_services does not list it" in res["msg"] and not dest.exists()
    assert run(tmp_path, validate_only=True)["commands"] == {}
