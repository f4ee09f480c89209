"""The contract probe (tests/probe/probe.py) starts the way Dify does: it parses its
env with the release's typed contract and exits where Dify would, and it builds
its clients' addresses as Dify builds them. (The fleet test runs it for real.)"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODULE_UTILS = os.path.join(TOP, "plugins", "module_utils")


@pytest.fixture()
def probe(tmp_path, monkeypatch):
    """A loader: probe(MODE=..., VAR=...) imports a fresh probe with exactly that env."""
    contract = tmp_path / "contract"
    contract.mkdir()
    for name in os.listdir(MODULE_UTILS):
        if name == "dify_schema.py" or name.startswith("dify_release_"):
            shutil.copy(os.path.join(MODULE_UTILS, name), str(contract / name))
    (contract / "DEFAULT").write_text("1.13.3\n")

    def load(**env):
        for key in list(os.environ):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("PROBE_CONTRACT_DIR", str(contract))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        spec = importlib.util.spec_from_file_location("difyops_probe_%d" % id(env),
                                                      os.path.join(TOP, "tests", "probe", "probe.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return load


def test_an_empty_redis_port_stops_the_api_family_as_dify_would(probe, capsys):
    for mode in ("api", "worker", "beat", "migration"):
        mod = probe(MODE=mode, REDIS_HOST="", REDIS_PORT="")
        with pytest.raises(SystemExit) as exc:
            mod.load_config()
        assert exc.value.code == 1
        err = capsys.readouterr().err
        assert "REDIS_PORT" in err and "DifyConfig (Dify 1.13.3) refused the environment" in err


def test_a_good_env_parses_and_records_the_contract(probe):
    mod = probe(MODE="api", DB_HOST="10.0.0.11", DB_PORT="5432", DB_USERNAME="dify", DB_PASSWORD="p@ss:w/rd",
                DB_DATABASE="dify", REDIS_HOST="10.0.0.21", REDIS_PORT="6379")
    mod.load_config()
    assert mod.REPORT["checks"]["contract"]["ok"] is True
    assert mod.REPORT["checks"]["contract"]["detail"]["release"] == "1.13.3"
    # SQLALCHEMY_DATABASE_URI as DatabaseConfig builds it: credentials quote_plus'ed.
    assert mod.database_uri() == "postgresql://dify:p%40ss%3Aw%2Frd@10.0.0.11:5432/dify"
    assert mod.cfg("SQLALCHEMY_POOL_SIZE") == 30


def test_the_release_follows_probe_dify_version(probe, capsys):
    mod = probe(MODE="api", PROBE_DIFY_VERSION="1.16.1")
    mod.load_config()
    assert mod.REPORT["checks"]["contract"]["detail"]["release"] == "1.16.1"


def test_db_extras_and_charset_as_dify_joins_them(probe):
    mod = probe(MODE="api", DB_HOST="db", DB_PORT="5432", DB_USERNAME="u", DB_PASSWORD="p", DB_DATABASE="d",
                DB_EXTRAS="sslmode=require", DB_CHARSET="utf8")
    mod.load_config()
    assert mod.database_uri() == "postgresql://u:p@db:5432/d?sslmode=require&client_encoding=utf8"


def test_event_bus_url_prefers_pubsub_redis_url_else_redis_host(probe):
    mod = probe(MODE="api", PUBSUB_REDIS_URL="redis://:pw@10.0.0.21:6379/0")
    mod.load_config()
    assert mod.event_bus_url() == "redis://:pw@10.0.0.21:6379/0"
    mod = probe(MODE="api", REDIS_HOST="10.0.0.22", REDIS_PORT="6380", REDIS_PASSWORD="a/b", REDIS_DB="0")
    mod.load_config()
    assert mod.event_bus_url() == "redis://:a%2Fb@10.0.0.22:6380/0"
    # A PUBSUB_REDIS_URL of blanks is no URL; an empty REDIS_HOST then stops api and worker at start.
    mod = probe(MODE="worker", PUBSUB_REDIS_URL="  ", REDIS_HOST="", REDIS_PORT="6379")
    with pytest.raises(SystemExit):
        mod.load_config()


def test_the_plugin_daemon_refuses_what_envconfig_cannot_parse(probe, capsys):
    mod = probe(SERVER_KEY="k" * 20, SERVER_PORT="not-a-number")
    assert mod.MODE == "plugin_daemon"
    with pytest.raises(SystemExit) as exc:
        mod.load_config()
    assert exc.value.code == 1
    assert "SERVER_PORT" in capsys.readouterr().err


def test_storage_writes_through_opendal_where_dify_would(probe, tmp_path, monkeypatch):
    """OPENDAL_FS_ROOT from the environment wins over the .env file; the file lands under that root."""
    root = tmp_path / "from-env"
    (tmp_path / ".env").write_text("OPENDAL_FS_ROOT=%s\nOPENDAL_FS_ATOMIC_WRITE_DIR=\n" % (tmp_path / "from-file"))
    monkeypatch.chdir(tmp_path)
    mod = probe(MODE="api", STORAGE_TYPE="opendal", OPENDAL_SCHEME="fs", OPENDAL_FS_ROOT=str(root))
    mod.load_config()
    mod.check_storage()
    result = mod.REPORT["checks"]["storage"]
    assert result["ok"] is True, result
    written = root / "difyops-probe" / ("%s-api.txt" % mod.HOST)
    assert written.read_bytes().startswith(b"written by ")
    assert result["detail"]["path"] == str(written)
    assert result["detail"]["opendal"] == "0.46.0"
    assert not (tmp_path / "from-file").exists()


def test_storage_options_fall_back_to_the_env_file_and_the_relative_default(probe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OPENDAL_FS_ROOT=%s\n" % (tmp_path / "from-file"))
    mod = probe(MODE="worker")
    assert mod.opendal_options("fs") == {"root": str(tmp_path / "from-file")}
    (tmp_path / ".env").write_text("OPENDAL_FS_ROOT=\n")
    mod.load_config()
    mod.check_storage()
    assert mod.REPORT["checks"]["storage"]["ok"] is True
    # Dify's default root is "storage", relative to its working directory.
    assert (tmp_path / "storage" / "difyops-probe" / ("%s-worker.txt" % mod.HOST)).exists()


def test_storage_without_an_object_store_says_so(probe):
    mod = probe(MODE="api", STORAGE_TYPE="s3")
    mod.load_config()
    mod.check_storage()
    result = mod.REPORT["checks"]["storage"]
    assert result["ok"] is False and "no object store" in result["detail"]
