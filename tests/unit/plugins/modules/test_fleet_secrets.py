"""Unit tests of the fleet_secrets module: the decision logic and a real run through ansible."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
import yaml

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))

from ansible_collections.difyops.fleet.plugins.module_utils import secrets as s
from ansible_collections.difyops.fleet.plugins.modules import fleet_secrets as m


class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, check_mode=False, diff=True, **params):
        self.params = dict(path=None, secrets={}, optional_keys=[], rotate=[])
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff

    def fail_json(self, msg, **kwargs):
        raise Failed(msg)


def _read(path):
    return s.parse_file(open(path).read(), path)


def test_first_run_generates_everything_0600(tmp_path):
    path = str(tmp_path / "secrets" / "lab.yml")
    res = m.run(FakeModule(path=path))
    assert res["changed"] and sorted(res["generated"]) == sorted(s.REQUIRED_KEYS)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _read(path) == res["secrets"]
    for value in res["secrets"].values():
        assert value not in res["diff"]["after"]


def test_rerun_changes_nothing_and_returns_same_values(tmp_path):
    path = str(tmp_path / "lab.yml")
    first = m.run(FakeModule(path=path))
    before = open(path).read()
    second = m.run(FakeModule(path=path))
    assert not second["changed"] and second["generated"] == []
    assert second["secrets"] == first["secrets"]
    assert open(path).read() == before


def test_only_missing_keys_are_added(tmp_path):
    path = str(tmp_path / "lab.yml")
    mine = {"db_password": "A" * 10 + "b1" * 10}
    s.write_private(path, s.render_file(mine))
    res = m.run(FakeModule(path=path, optional_keys=["init_password"]))
    assert res["secrets"]["db_password"] == mine["db_password"]
    assert "db_password" not in res["generated"] and "init_password" in res["generated"]
    assert _read(path)["db_password"] == mine["db_password"]


def test_check_mode_writes_nothing_but_returns_values(tmp_path):
    path = str(tmp_path / "lab.yml")
    res = m.run(FakeModule(path=path, check_mode=True))
    assert res["changed"] and set(res["secrets"]) == set(s.REQUIRED_KEYS)
    assert not os.path.exists(path)


def test_loose_mode_is_fixed(tmp_path):
    path = str(tmp_path / "lab.yml")
    m.run(FakeModule(path=path))
    os.chmod(path, 0o644)
    res = m.run(FakeModule(path=path))
    assert res["changed"] and res["generated"] == []
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_sample_value_in_file_is_refused_and_file_untouched(tmp_path):
    path = str(tmp_path / "lab.yml")
    s.write_private(path, s.render_file({"sandbox_api_key": "dify-sandbox"}))
    before = open(path).read()
    with pytest.raises(Failed, match="sandbox_api_key is one of Dify's public sample values"):
        m.run(FakeModule(path=path))
    assert open(path).read() == before


def test_conflict_between_inventory_and_file(tmp_path):
    path = str(tmp_path / "lab.yml")
    m.run(FakeModule(path=path))
    with pytest.raises(Failed, match="secrets.db_password differs"):
        m.run(FakeModule(path=path, secrets={"db_password": "x" * 40}))


def test_vault_file_is_never_rewritten(tmp_path):
    path = str(tmp_path / "lab.yml")
    vault = "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n"
    with open(path, "w") as fh:
        fh.write(vault)
    os.chmod(path, 0o600)
    partial = {k: s.generate(k) for k in s.REQUIRED_KEYS if k != "redis_password"}
    with pytest.raises(Failed) as exc:
        m.run(FakeModule(path=path, secrets=partial))
    assert "redis_password" in str(exc.value) and "ansible-vault edit" in str(exc.value)
    assert open(path).read() == vault
    full = dict(partial, redis_password=s.generate("redis_password"))
    res = m.run(FakeModule(path=path, secrets=full))
    assert not res["changed"] and res["encrypted"] and res["secrets"] == full
    assert open(path).read() == vault


def test_rotation_keeps_a_backup(tmp_path):
    path = str(tmp_path / "lab.yml")
    first = m.run(FakeModule(path=path))["secrets"]
    res = m.run(FakeModule(path=path, rotate=["plugin_daemon_key", "db_password"]))
    assert sorted(res["rotated"]) == ["db_password", "plugin_daemon_key"]
    assert res["rotation_tiers"] == ["dify", "postgresql"]
    # the Redis exporter logs in with redis_password: its tier follows a rotation
    assert m.run(FakeModule(path=path, rotate=["redis_password"]))["rotation_tiers"] == ["dify", "exporters", "redis"]
    assert stat.S_IMODE(os.stat(res["backup_file"]).st_mode) == 0o600
    assert _read(res["backup_file"]) == first
    now = _read(path)
    assert now["db_password"] != first["db_password"]
    assert now["secret_key"] == first["secret_key"]


def test_check_only_mode(tmp_path):
    full = {k: s.generate(k) for k in s.REQUIRED_KEYS}
    assert m.run(FakeModule(secrets=full))["secrets"] == full
    with pytest.raises(Failed, match="lacks secret_key"):
        m.run(FakeModule(secrets={k: v for k, v in full.items() if k != "secret_key"}))
    with pytest.raises(Failed, match="redis_password is one of Dify's public sample"):
        m.run(FakeModule(secrets=dict(full, redis_password="difyai123456")))


def test_relative_path_is_refused():
    with pytest.raises(Failed, match="must be absolute"):
        m.run(FakeModule(path="secrets/lab.yml"))


def test_real_run_through_ansible(tmp_path):
    """The module as ansible runs it: argument spec, check mode, JSON result."""
    path = str(tmp_path / "lab.yml")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(_TOP, ".collections"),
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_NOCOLOR="1")

    def adhoc(*extra):
        out = subprocess.run(
            ["ansible", "localhost", "-c", "local", "-m", "difyops.fleet.fleet_secrets",
             "-a", json.dumps({"path": path, "optional_keys": ["init_password"]})] + list(extra),
            env=env, capture_output=True, text=True, check=False, cwd=str(tmp_path),
        )
        data = json.loads(out.stdout)
        return data["plays"][0]["tasks"][0]["hosts"]["localhost"]

    checked = adhoc("--check", "--diff")
    assert checked["changed"] and not os.path.exists(path)
    first = adhoc()
    assert first["changed"] and "init_password" in first["generated"]
    second = adhoc()
    assert not second["changed"] and second["secrets"] == first["secrets"]
    assert yaml.safe_load(open(path))["difyops_secrets"] == first["secrets"]


def test_vault_file_is_never_rotated(tmp_path):
    path = str(tmp_path / "lab.yml")
    vault = "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n"
    with open(path, "w") as fh:
        fh.write(vault)
    with pytest.raises(Failed, match="ansible-vault decrypt"):
        m.run(FakeModule(path=path, rotate=["secret_key"]))
    assert open(path).read() == vault
