"""Helpers shared by the PostgreSQL scenarios: reach their hosts, run SQL and playbooks."""

import os

import pytest

from difyops_scenario import TOP, address, lab_host, scenario_plan

# What the PostgreSQL scenarios' tests import from here (some of it from tests/lib).
__all__ = ["SECRETS", "TOP", "address", "fleet_plan", "lab_host", "psql", "run_playbook", "secrets"]

SECRETS = {
    "db_password": "molecule-db-password-0123456789",
    "db_replication_password": "molecule-repl-password-0123456789",
}


def fleet_plan():
    """The capacity plan the roles size from (tests/lib/difyops_scenario.py)."""
    return scenario_plan()


def psql(host, sql, db="postgres", user="postgres"):
    cmd = host.run("runuser -u %s -- psql -XAtq -d %s -c %s", user, db, sql)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


@pytest.fixture(scope="module")
def secrets():
    return SECRETS


def run_playbook(name, *extra):
    """Run one of the collection's playbooks against the scenario's inventory."""
    import subprocess

    res = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         os.path.join(TOP, "playbooks", name), *extra],
        cwd=TOP, capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(TOP, ".collections")},
        check=False)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    return res.stdout
