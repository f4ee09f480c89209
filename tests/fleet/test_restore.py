"""playbooks/restore.yml against the running fleet (issue 14).

scripts/test-fleet.sh writes a marker row on the primary after the upgrade's
pgBackRest backup and waits until its WAL is archived, runs restore.yml, and
runs these checks with FLEET_RESTORE_TOKEN (the marker) and
FLEET_RESTORE_STARTED (epoch seconds just before restore.yml started): the
restored primary holds the marker (backup plus archived WAL replayed) and is
out of recovery; the data directory it ran on was moved aside, not deleted;
each of Dify's writers (api, worker, beat and plugin daemon containers) was
stopped after the restore began and before PostgreSQL started on the restored
data, started again after that, and runs now.
"""
import datetime
import json
import os

import pytest

from conftest import GROUPS, lab_host

TOKEN = os.environ.get("FLEET_RESTORE_TOKEN")
pytestmark = pytest.mark.skipif(not TOKEN, reason="only after the restore step")
PRIMARY = GROUPS["dify_postgres"][0]
WRITERS = ("api", "worker", "beat", "plugin_daemon")
WRITER_HOSTS = sorted(set(h for g in ("dify_api", "dify_worker", "dify_beat", "dify_plugin_daemon")
                          for h in GROUPS.get(g, [])))


def psql(sql, db="dify"):
    cmd = "runuser -u postgres -- psql -XAtq -d %s -c \"%s\"" % (db, sql)
    return lab_host(PRIMARY).check_output(cmd).strip()


def started():
    return int(os.environ["FLEET_RESTORE_STARTED"])


def test_the_restored_primary_holds_the_row_written_after_the_backup():
    assert psql("SELECT pg_is_in_recovery()") == "f"
    assert psql("SELECT count(*) FROM difyops_restore_marker WHERE v = '%s'" % TOKEN) == "1"
    # And what Dify wrote long before: the migration's table.
    assert psql("SELECT count(*) FROM difyops_probe_migrations") != "0"


def test_the_previous_data_directory_was_moved_aside():
    out = lab_host(PRIMARY).check_output(
        "for d in /var/lib/postgresql/*/main.before-restore-*; do [ -f \"$d/PG_VERSION\" ] && echo \"$d\"; done; true")
    epochs = [int(d.rsplit("-", 1)[1]) for d in out.split()]
    assert [e for e in epochs if e >= started() - 120], "no data directory moved aside by this restore: %s" % out


def postmaster_start():
    return int(float(psql("SELECT extract(epoch FROM pg_postmaster_start_time())")))


def epoch(docker_time):
    return int(datetime.datetime.strptime(docker_time[:19], "%Y-%m-%dT%H:%M:%S")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


@pytest.mark.parametrize("host", WRITER_HOSTS)
def test_every_writer_was_stopped_during_the_restore_and_runs_again(host):
    pg_started = postmaster_start()
    assert pg_started >= started(), "PostgreSQL on %s did not restart during the restore" % PRIMARY
    names = lab_host(host).check_output(
        "docker ps -a --filter label=org.difyops.service --format '{{.Names}} {{.Label \"org.difyops.service\"}}'")
    writers = [line.split()[0] for line in names.splitlines() if line.split()[1:] and line.split()[1] in WRITERS]
    assert writers, "no writer container on %s" % host
    for name in writers:
        state = json.loads(lab_host(host).check_output("docker inspect -f '{{json .State}}' %s" % name))
        stopped, restarted = epoch(state["FinishedAt"]), epoch(state["StartedAt"])
        assert state["Running"], (host, name, state["Status"])
        assert started() <= stopped <= pg_started, (host, name, "stopped", stopped, "restore began", started(),
                                                    "postgresql started", pg_started)
        assert restarted >= pg_started, (host, name, "started", restarted, "postgresql started", pg_started)
