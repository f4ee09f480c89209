"""Observable behaviour of difyops.fleet.postgresql on a primary."""

import pytest

from pg_helpers import SECRETS, address, fleet_plan, lab_host, psql, run_playbook

testinfra_hosts = ["mol-postgresql-pg"]

PG = "mol-postgresql-pg"


@pytest.fixture(scope="module")
def pg():
    return lab_host(PG)


def _plan(pg):
    """The capacity plan's settings for this host (PGTune for its share, the fleet's max_connections)."""
    return fleet_plan()["hosts"][PG]["postgresql"]


def test_server_running_version(pg):
    assert pg.service("postgresql@17-main").is_running
    assert psql(pg, "SHOW server_version_num").startswith("17")


@pytest.mark.parametrize("name", ["shared_buffers", "effective_cache_size", "work_mem",
                                  "maintenance_work_mem", "max_connections"])
def test_settings_in_effect_equal_the_plan(pg, name):
    plan = _plan(pg)
    assert name in plan, f"the plan has no {name}: {plan}"
    want = str(plan[name])
    if name == "max_connections":
        assert psql(pg, "SHOW max_connections") == want
        return
    # Compare in bytes, as the running server applies them.
    got = psql(pg, "SELECT setting::bigint * pg_size_bytes(CASE WHEN unit ~ '^[0-9]' THEN unit ELSE '1' || unit END) "
               "FROM pg_settings WHERE name = '%s'" % name)
    assert int(got) == int(psql(pg, "SELECT pg_size_bytes('%s')" % want)), (name, want)


def test_session_timeouts_and_auth(pg):
    assert psql(pg, "SHOW password_encryption") == "scram-sha-256"
    assert psql(pg, "SHOW statement_timeout") == "0"
    assert psql(pg, "SHOW idle_in_transaction_session_timeout") == "0"
    assert psql(pg, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


def test_listens_on_private_address(pg):
    assert pg.socket("tcp://%s:5432" % address(pg)).is_listening
    assert not pg.socket("tcp://0.0.0.0:5432").is_listening


def test_databases_owned_by_dify(pg):
    rows = psql(pg, "SELECT datname || ':' || pg_get_userbyid(datdba) FROM pg_database "
                    "WHERE datname IN ('dify', 'dify_plugin') ORDER BY 1")
    assert rows.splitlines() == ["dify:dify", "dify_plugin:dify"]
    assert psql(pg, "SELECT rolsuper FROM pg_roles WHERE rolname = 'dify'") == "f"


def test_vector_extension_works(pg):
    assert psql(pg, "SELECT extversion FROM pg_extension WHERE extname = 'vector'", db="dify")
    assert psql(pg, "SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector", db="dify") == "1"


def _connect(client, server_addr, db="dify"):
    return client.run(
        "PGPASSWORD=%s PGCONNECT_TIMEOUT=10 psql -XAtq -h %s -U dify -d %s -c 'SELECT current_user'",
        SECRETS["db_password"], server_addr, db)


def test_app_host_connects_with_scram(pg):
    app = lab_host("mol-postgresql-app")
    for db in ("dify", "dify_plugin"):
        cmd = _connect(app, address(pg), db)
        assert cmd.rc == 0, cmd.stderr
        assert cmd.stdout.strip() == "dify"
    wrong = app.run("PGPASSWORD=wrong-password psql -XAtq -h %s -U dify -d dify -c 'SELECT 1'", address(pg))
    assert wrong.rc != 0
    assert "password authentication failed" in wrong.stderr


def test_app_host_cannot_reach_other_databases(pg):
    app = lab_host("mol-postgresql-app")
    cmd = _connect(app, address(pg), db="postgres")
    assert cmd.rc != 0
    assert "pg_hba.conf rejects connection" in cmd.stderr


def test_host_outside_the_groups_is_refused(pg):
    outsider = lab_host("mol-postgresql-outsider")
    cmd = _connect(outsider, address(pg))
    assert cmd.rc != 0
    assert "pg_hba.conf rejects connection" in cmd.stderr
    assert address(outsider) in cmd.stderr


def test_backup_timers_enabled(pg):
    for kind in ("full", "incr"):
        timer = pg.service("difyops-pgbackrest-%s.timer" % kind)
        assert timer.is_enabled and timer.is_running
    assert pg.file("/etc/pgbackrest/pgbackrest.conf").mode == 0o600


def test_zz_restore_drill(pg):
    """Write rows, back up, destroy the data directory, restore, rows equal."""
    psql(pg, "CREATE TABLE drill (id int PRIMARY KEY, note text)", db="dify")
    psql(pg, "INSERT INTO drill SELECT g, md5(g::text) FROM generate_series(1, 5000) g", db="dify")
    run_playbook("backup.yml", "-e", "postgresql_backup_type=full")
    # Rows written after the backup come back through the archived WAL.
    psql(pg, "INSERT INTO drill SELECT g, md5(g::text) FROM generate_series(5001, 6000) g", db="dify")
    before = psql(pg, "SELECT count(*) || ':' || md5(string_agg(note, ',' ORDER BY id)) FROM drill", db="dify")
    segment = psql(pg, "SELECT pg_walfile_name(pg_switch_wal())")
    archived = pg.run("for i in $(seq 60); do runuser -u postgres -- psql -XAtqc "
                      "\"SELECT last_archived_wal >= '%s' FROM pg_stat_archiver\" | grep -q t && exit 0; "
                      "sleep 1; done; exit 1", segment)
    assert archived.rc == 0, "WAL segment %s never archived" % segment
    # The disaster: the data directory is gone.
    pg.run_expect([0], "systemctl stop postgresql@17-main")
    pg.run_expect([0], "rm -rf /var/lib/postgresql/17/main")
    run_playbook("restore.yml")
    after = psql(pg, "SELECT count(*) || ':' || md5(string_agg(note, ',' ORDER BY id)) FROM drill", db="dify")
    assert after == before
    assert after.startswith("6000:")
    psql(pg, "DROP TABLE drill", db="dify")
