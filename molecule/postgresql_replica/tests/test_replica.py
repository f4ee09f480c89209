"""Streaming replication and manual failover with difyops.fleet.postgresql."""

import time
import uuid

import pytest

from pg_helpers import address, lab_host, psql, run_playbook

testinfra_hosts = ["mol-postgresql_replica-primary"]

PRIMARY = "mol-postgresql_replica-primary"
REPLICA = "mol-postgresql_replica-replica"


@pytest.fixture(scope="module")
def primary():
    return lab_host(PRIMARY)


@pytest.fixture(scope="module")
def replica():
    return lab_host(REPLICA)


def _wait_for(host, sql, want, db="dify", seconds=60):
    got = None
    for _second in range(seconds):
        got = host.run("runuser -u postgres -- psql -XAtq -d %s -c %s", db, sql).stdout.strip()
        if got == want:
            return got
        time.sleep(1)
    return got


def test_roles_of_the_servers(primary, replica):
    assert psql(primary, "SELECT pg_is_in_recovery()") == "f"
    assert psql(replica, "SELECT pg_is_in_recovery()") == "t"


def test_replica_streams_through_its_slot(primary, replica):
    rows = psql(primary, "SELECT s.slot_name || ':' || s.active || ':' || r.state || ':' || host(r.client_addr) "
                         "FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid")
    assert rows == "mol_postgresql_replica_replica:true:streaming:%s" % address(replica)


def test_row_written_on_primary_is_read_on_replica(primary, replica):
    token = uuid.uuid4().hex
    psql(primary, "CREATE TABLE IF NOT EXISTS repl_probe (token text PRIMARY KEY)", db="dify")
    psql(primary, "INSERT INTO repl_probe VALUES ('%s')" % token, db="dify")
    assert _wait_for(replica, "SELECT count(*) FROM repl_probe WHERE token = '%s'" % token, "1") == "1"


def test_replica_has_the_vector_extension(replica):
    assert psql(replica, "SELECT '[1,1]'::vector <-> '[1,1]'::vector", db="dify") == "0"


def test_replica_refuses_writes(replica):
    cmd = replica.run("runuser -u postgres -- psql -XAtq -d dify -c %s",
                      "INSERT INTO repl_probe VALUES ('refused')")
    assert cmd.rc != 0
    assert "read-only transaction" in cmd.stderr


def test_replica_settings_follow_the_plan(primary, replica):
    for name in ("shared_buffers", "max_connections", "work_mem"):
        assert psql(replica, "SHOW %s" % name) == psql(primary, "SHOW %s" % name)
    assert psql(replica, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


def test_zz_promote_playbook(primary, replica):
    run_playbook("postgres-promote.yml", "-e", "postgresql_promote_host=%s" % REPLICA)
    assert psql(replica, "SELECT pg_is_in_recovery()") == "f"
    token = uuid.uuid4().hex
    psql(replica, "INSERT INTO repl_probe VALUES ('%s')" % token, db="dify")
    assert psql(replica, "SELECT count(*) FROM repl_probe WHERE token = '%s'" % token, db="dify") == "1"
    assert not replica.file("/etc/postgresql/17/main/conf.d/61-difyops-standby.conf").exists
    # Promoting a primary is refused.
    with pytest.raises(AssertionError):
        run_playbook("postgres-promote.yml", "-e", "postgresql_promote_host=%s" % REPLICA)
