"""Observable behaviour of difyops.fleet.postgresql on Debian 12 (PostgreSQL 15 from Debian)."""

import os
import re
import subprocess
import time
import uuid

import pytest

from pg_helpers import SECRETS, TOP, address, fleet_plan, lab_host, psql

testinfra_hosts = ["mol-postgresql_bookworm-pg1"]

PRIMARY = "mol-postgresql_bookworm-pg1"
REPLICA = "mol-postgresql_bookworm-pg2"
APP = "mol-postgresql_bookworm-app"
DROPIN = "/etc/postgresql/15/main/conf.d/60-difyops.conf"


@pytest.fixture(scope="module")
def primary():
    return lab_host(PRIMARY)


@pytest.fixture(scope="module")
def replica():
    return lab_host(REPLICA)


@pytest.fixture(scope="module")
def app():
    return lab_host(APP)


def _plan(name, pg_version):
    """The capacity plan's settings for this host (tuned for the version Debian 12 ships)."""
    entry = fleet_plan()["hosts"][name]
    assert entry["postgresql_version"] == pg_version
    return entry["postgresql"]


def _wait_for(host, sql, want, db="dify", seconds=60):
    got = None
    for _second in range(seconds):
        got = host.run("runuser -u postgres -- psql -XAtq -d %s -c %s", db, sql).stdout.strip()
        if got == want:
            return got
        time.sleep(1)
    return got


@pytest.mark.parametrize("name", [PRIMARY, REPLICA])
def test_debian_12_runs_postgresql_15(name):
    host = lab_host(name)
    assert host.system_info.distribution == "debian"
    assert host.file("/etc/debian_version").content_string.startswith("12.")
    assert host.service("postgresql@15-main").is_running
    assert host.service("postgresql@15-main").is_enabled
    assert psql(host, "SHOW server_version_num").startswith("15")
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


@pytest.mark.parametrize("server", [PRIMARY, REPLICA])
@pytest.mark.parametrize("name", ["shared_buffers", "effective_cache_size", "work_mem",
                                  "maintenance_work_mem", "wal_buffers", "max_connections",
                                  "min_wal_size", "max_wal_size"])
def test_settings_in_effect_equal_the_plan(server, name):
    host = lab_host(server)
    version = int(psql(host, "SHOW server_version_num")) // 10000
    plan = _plan(server, version)
    assert name in plan, f"the plan has no {name}: {plan}"
    want = str(plan[name])
    if name == "max_connections":
        assert psql(host, "SHOW max_connections") == want
        return
    # Compare in bytes, as the running server applies them.
    got = psql(host, "SELECT setting::bigint * pg_size_bytes(CASE WHEN unit ~ '^[0-9]' THEN unit ELSE '1' || unit END) "
                     "FROM pg_settings WHERE name = '%s'" % name)
    assert int(got) == int(psql(host, "SELECT pg_size_bytes('%s')" % want)), (name, want)


def test_role_settings_in_effect(primary):
    assert psql(primary, "SHOW password_encryption") == "scram-sha-256"
    assert psql(primary, "SHOW wal_level") == "replica"
    assert psql(primary, "SHOW wal_compression") == "lz4"
    assert psql(primary, "SHOW archive_mode") == "on"
    assert psql(primary, "SHOW listen_addresses") == "localhost,%s" % address(primary)
    assert primary.socket("tcp://%s:5432" % address(primary)).is_listening
    assert not primary.socket("tcp://0.0.0.0:5432").is_listening


def test_databases_owned_by_dify(primary):
    rows = psql(primary, "SELECT datname || ':' || pg_get_userbyid(datdba) || ':' || pg_encoding_to_char(encoding) "
                         "FROM pg_database WHERE datname IN ('dify', 'dify_plugin') ORDER BY 1")
    assert rows.splitlines() == ["dify:dify:UTF8", "dify_plugin:dify:UTF8"]
    assert psql(primary, "SELECT rolsuper FROM pg_roles WHERE rolname = 'dify'") == "f"


def test_no_pgvector_on_debian_12(primary):
    """Debian 12 has no postgresql-15-pgvector: the scenario turns pgvector off and none is installed."""
    assert not primary.package("postgresql-15-pgvector").is_installed
    assert psql(primary, "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'") == "0"
    assert primary.run("apt-cache show postgresql-15-pgvector").rc != 0


def test_pgvector_is_refused_before_any_change(primary):
    """With postgresql_pgvector=true the tier stops in preflight, naming the package, and changes nothing."""
    before = primary.file(DROPIN).mtime
    res = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         os.path.join(TOP, "molecule", "postgresql_bookworm", "converge.yml"), "-e", "postgresql_pgvector=true"],
        cwd=TOP, capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(TOP, ".collections")},
        check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-4000:]
    assert "postgresql-15-pgvector" in out, out[-4000:]
    assert re.search(r"changed=0 ", out) and not re.search(r"changed=[1-9]", out), out[-4000:]
    assert primary.file(DROPIN).mtime == before
    assert not primary.package("postgresql-15-pgvector").is_installed


def test_replica_streams_through_its_slot(primary, replica):
    assert psql(primary, "SELECT pg_is_in_recovery()") == "f"
    assert psql(replica, "SELECT pg_is_in_recovery()") == "t"
    rows = psql(primary, "SELECT s.slot_name || ':' || s.active || ':' || r.state || ':' || host(r.client_addr) "
                         "FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid")
    assert rows == "mol_postgresql_bookworm_pg2:true:streaming:%s" % address(replica)


def test_row_written_on_primary_is_read_on_replica(primary, replica):
    token = uuid.uuid4().hex
    psql(primary, "CREATE TABLE IF NOT EXISTS repl_probe (token text PRIMARY KEY)", db="dify")
    psql(primary, "INSERT INTO repl_probe VALUES ('%s')" % token, db="dify")
    assert _wait_for(replica, "SELECT count(*) FROM repl_probe WHERE token = '%s'" % token, "1") == "1"


def test_replica_refuses_writes(replica):
    cmd = replica.run("runuser -u postgres -- psql -XAtq -d dify -c %s",
                      "INSERT INTO repl_probe VALUES ('refused')")
    assert cmd.rc != 0
    assert "read-only transaction" in cmd.stderr


def _connect(client, server_addr, password, db="dify", sql="SELECT current_user"):
    return client.run("PGPASSWORD=%s PGCONNECT_TIMEOUT=10 psql -XAtq -h %s -U dify -d %s -c %s",
                      password, server_addr, db, sql)


def test_app_host_logs_in_with_scram(primary, replica, app):
    # The server holds a SCRAM verifier and its rule for the app host says scram-sha-256.
    assert psql(primary, "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'dify'") == "SCRAM-SHA-256$"
    rule = psql(primary, "SELECT auth_method FROM pg_hba_file_rules "
                         "WHERE address = '%s' AND 'dify' = ANY(user_name)" % address(app))
    assert rule == "scram-sha-256"
    for db in ("dify", "dify_plugin"):
        cmd = _connect(app, address(primary), SECRETS["db_password"], db)
        assert cmd.rc == 0, cmd.stderr
        assert cmd.stdout.strip() == "dify"
    wrong = _connect(app, address(primary), "wrong-password-0123456789")
    assert wrong.rc != 0
    assert "password authentication failed" in wrong.stderr
    # The replica serves reads to the app host the same way.
    read = _connect(app, address(replica), SECRETS["db_password"], sql="SELECT pg_is_in_recovery()")
    assert read.rc == 0, read.stderr
    assert read.stdout.strip() == "t"


def test_app_host_cannot_reach_other_databases(primary, app):
    cmd = _connect(app, address(primary), SECRETS["db_password"], db="postgres")
    assert cmd.rc != 0
    assert "pg_hba.conf rejects connection" in cmd.stderr
