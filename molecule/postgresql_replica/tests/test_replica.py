"""Streaming replication and manual failover with difyops.fleet.postgresql."""

import os
import subprocess
import time
import uuid

import pytest
import yaml

from pg_helpers import TOP, address, lab_host, psql, run_playbook

testinfra_hosts = ["mol-postgresql_replica-primary"]

PRIMARY = "mol-postgresql_replica-primary"
REPLICA = "mol-postgresql_replica-replica"
# A third dify_postgres member that cannot be reached (nothing listens on port 1).
GONE = "mol-postgresql_replica-gone"
GONE_INVENTORY = """
dify_postgres:
  hosts:
    %s:
      ansible_connection: ssh
      ansible_host: 127.0.0.1
      ansible_port: 1
""" % GONE


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


def playbook_refused(name, *extra):
    """Run a playbook that must fail; its output."""
    res = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *extra, os.path.join(TOP, "playbooks", name)],
        cwd=TOP, capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(TOP, ".collections")})
    assert res.returncode != 0, res.stdout[-4000:]
    return " ".join((res.stdout + res.stderr).split())


@pytest.fixture(scope="module")
def gone_inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("inventory") / "gone.yml"
    path.write_text(GONE_INVENTORY)
    return str(path)


def unchanged(primary, replica):
    """Both servers still run in their roles, nothing fenced or moved aside."""
    assert primary.service("postgresql@17-main").is_running
    assert replica.service("postgresql@17-main").is_running
    assert psql(primary, "SELECT pg_is_in_recovery()") == "f"
    assert psql(replica, "SELECT pg_is_in_recovery()") == "t"
    for host in (primary, replica):
        assert host.run("systemctl is-enabled postgresql@17-main").stdout.strip() != "masked"
        assert host.run("ls -d /var/lib/postgresql/17/main.before-*").rc != 0


def test_restore_refuses_a_replica_before_anything_changes(primary, replica):
    out = playbook_refused("restore.yml", "-e", "postgresql_backup_host=%s" % REPLICA)
    assert "%s is not the current PostgreSQL primary: its server is in recovery" % REPLICA in out, out[-3000:]
    assert "Nothing was stopped or changed" in out
    assert "TASK [Stop PostgreSQL]" not in out
    unchanged(primary, replica)


def test_promote_refuses_a_primary_and_a_member_it_cannot_fence(primary, replica, gone_inventory):
    # Both refusals in one run: the named host is a primary, and a member cannot be reached.
    out = playbook_refused("postgres-promote.yml", "-i", gone_inventory,
                           "-e", "postgresql_promote_host=%s" % PRIMARY)
    assert "%s is not a running standby (already a primary)" % PRIMARY in out, out[-3000:]
    assert "%s cannot be reached" % GONE in out
    assert "split brain" in out
    assert "-e postgresql_promote_confirm_down=%s" % GONE in out
    unchanged(primary, replica)


def test_zz_promote_playbook(primary, replica, gone_inventory):
    # The unreachable member is confirmed down; the reachable old primary is fenced.
    run_playbook("postgres-promote.yml", "-i", gone_inventory,
                 "-e", "postgresql_promote_host=%s" % REPLICA, "-e", "postgresql_promote_confirm_down=%s" % GONE)
    assert psql(replica, "SELECT pg_is_in_recovery()") == "f"
    token = uuid.uuid4().hex
    psql(replica, "INSERT INTO repl_probe VALUES ('%s')" % token, db="dify")
    assert psql(replica, "SELECT count(*) FROM repl_probe WHERE token = '%s'" % token, db="dify") == "1"
    assert not replica.file("/etc/postgresql/17/main/conf.d/61-difyops-standby.conf").exists
    # The old primary is fenced: stopped, masked, and neither starting it nor
    # what starts PostgreSQL at boot (postgresql.service) brings it back.
    assert not primary.service("postgresql@17-main").is_running
    assert primary.run("systemctl is-enabled postgresql@17-main").stdout.strip() == "masked"
    assert primary.run("systemctl start postgresql@17-main").rc != 0
    primary.run("systemctl restart postgresql")
    time.sleep(2)
    assert primary.run("pg_lsclusters -h 17 main").stdout.split()[3] == "down"
    assert primary.run("runuser -u postgres -- psql -XAtq -c 'SELECT 1'").rc != 0
    assert REPLICA in primary.file("/etc/postgresql/17/main/difyops-fenced").content_string
    # The role's own start task (what a converge runs) does not unmask it.
    res = subprocess.run(
        ["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], PRIMARY, "-b", "-m", "ansible.builtin.systemd_service",
         "-a", "name=postgresql@17-main enabled=true state=started"],
        cwd=TOP, capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(TOP, ".collections")})
    assert res.returncode != 0 and "is masked" in res.stdout + res.stderr, res.stdout + res.stderr
    assert not primary.service("postgresql@17-main").is_running
    # A restore onto the inventory's first host, the fenced old primary, is
    # refused: the primary is asked on the hosts, not read from the order.
    out = playbook_refused("restore.yml")
    assert "%s is not the current PostgreSQL primary: it was fenced" % PRIMARY in out, out[-3000:]
    assert replica.service("postgresql@17-main").is_running
    assert psql(replica, "SELECT pg_is_in_recovery()") == "f"


def _swapped_inventory(directory):
    """The scenario's inventory with the promoted replica first in dify_postgres (as the operator
    leaves it after postgres-promote.yml), its group_vars and host_vars shared."""
    source = os.environ["MOLECULE_INVENTORY_FILE"]
    with open(source) as handle:
        inventory = yaml.safe_load(handle)
    members = inventory["dify_postgres"]["hosts"]
    inventory["dify_postgres"]["hosts"] = {REPLICA: members[REPLICA], PRIMARY: members[PRIMARY]}
    directory.mkdir(exist_ok=True)
    for shared in ("group_vars", "host_vars"):
        if os.path.isdir(os.path.join(os.path.dirname(source), shared)):
            os.symlink(os.path.join(os.path.dirname(source), shared), str(directory / shared))
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    return str(directory / "hosts.yml")


def _converge(inventory, *extra):
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, *extra,
         os.path.join(TOP, "molecule", "postgresql_replica", "converge.yml")],
        cwd=TOP, capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(TOP, ".collections")})


SERVER_LOG = "/var/log/postgresql/postgresql-17-main.log"


def test_zzz_fenced_old_primary_rejoins_as_a_standby_only(primary, replica, tmp_path_factory):
    # After test_zz_promote_playbook: the replica is the primary, the old
    # primary is fenced (masked, its note). The operator puts the promoted host
    # first and reruns the tier with postgresql_replica_rebuild, the unit left
    # masked. The old primary must never run as a primary on the way (it would
    # take writes next to the new one): every start of its server in its log
    # is a start in recovery, and it streams from the new primary afterwards.
    inventory = _swapped_inventory(tmp_path_factory.mktemp("rejoin") / "inventory")
    log_from = int(primary.run("stat -c %%s %s", SERVER_LOG).stdout.strip() or 0)

    # The operator leaves the unit masked: the role unmasks it when it starts it as a standby.
    assert primary.run("systemctl is-enabled postgresql@17-main").stdout.strip() == "masked"
    res = _converge(inventory, "-e", "postgresql_replica_rebuild=true")
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]

    log = primary.run("tail -c +%s %s", str(log_from + 1), SERVER_LOG).stdout
    assert "entering standby mode" in log, log[-3000:]
    assert "database system is ready to accept connections" not in log, log[-3000:]
    assert "database system is ready to accept read-only connections" in log, log[-3000:]
    assert psql(primary, "SELECT pg_is_in_recovery()") == "t"
    # Unmasked, enabled, the note gone, the old data kept aside.
    assert primary.run("systemctl is-enabled postgresql@17-main").stdout.strip() == "enabled"
    assert not primary.file("/etc/postgresql/17/main/difyops-fenced").exists
    assert primary.run("ls -d /var/lib/postgresql/17/main.before-replica-*").rc == 0
    # It streams from the new primary through its slot, and reads what is written there.
    want = "mol_postgresql_replica_primary:streaming:%s" % address(primary)
    assert _wait_for(replica, "SELECT s.slot_name || ':' || r.state || ':' || host(r.client_addr) "
                              "FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid",
                     want, db="postgres", seconds=30) == want
    token = uuid.uuid4().hex
    psql(replica, "INSERT INTO repl_probe VALUES ('%s')" % token, db="dify")
    assert _wait_for(primary, "SELECT count(*) FROM repl_probe WHERE token = '%s'" % token, "1") == "1"
    cmd = primary.run("runuser -u postgres -- psql -XAtq -d dify -c %s", "INSERT INTO repl_probe VALUES ('refused')")
    assert cmd.rc != 0 and "read-only transaction" in cmd.stderr
