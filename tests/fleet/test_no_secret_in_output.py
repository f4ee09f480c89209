"""No secret of the fleet in any output of the fleet test (issue 14).

scripts/test-fleet.sh keeps every ansible-playbook run's output in
build/fleet/*.log: the cold converge and the rerun at default verbosity, the
--check --diff pass, a --limit run at -vvv with --diff and one with the JSON
callback (the verbosities and callbacks that print whole module results), and
later the upgrade, the Redis password rotation and the restore. Every value of
the lab's secrets file, and every previous value its backups keep (a rotated
password's old value), is searched in all of them; a finding names the log
and the key, never the value.
"""
import glob
import os

import pytest
import yaml

from conftest import GROUPS, TOP, lab_host

LOG_DIR = os.environ.get("FLEET_LOG_DIR", os.path.join(TOP, "build", "fleet"))
SECRETS_FILE = os.path.join(TOP, "secrets", "lab.yml")
# The runs that print the most: without them this test would prove little.
REQUIRED_LOGS = ("converge.log", "check-diff-plain.log", "leak-vvv.log", "leak-json.log")


def fleet_secrets(path=SECRETS_FILE):
    with open(path) as fh:
        data = yaml.safe_load(fh)["difyops_secrets"]
    return dict((k, str(v)) for k, v in data.items() if isinstance(v, (str, int)) and len(str(v)) >= 8)


def searched_secrets():
    """The secrets file's values, and the previous values rotate-secrets.yml kept in its backups."""
    secrets = fleet_secrets()
    for path in sorted(glob.glob(SECRETS_FILE + ".*.bak")):
        for key, value in fleet_secrets(path).items():
            if value not in secrets.values():
                secrets["%s (previous, %s)" % (key, os.path.basename(path))] = value
    return secrets


def test_previous_passwords_are_searched_after_a_rotation():
    """After the fleet test's Redis rotation, its logs are searched for the old passwords too."""
    previous = os.environ.get("FLEET_ROTATED_FROM")
    if not previous:
        pytest.skip("only after the Redis password rotation step")
    old = fleet_secrets(previous)
    values = set(searched_secrets().values())
    searched = [k for k in ("redis_password", "redis_sentinel_password") if old[k] in values]
    assert searched == ["redis_password", "redis_sentinel_password"], searched
    assert os.path.exists(os.path.join(LOG_DIR, "rotate-converge.log"))


def test_the_secrets_searched_are_the_ones_deployed():
    secrets = fleet_secrets()
    assert len(secrets) >= 5, sorted(secrets)
    env = lab_host(GROUPS["dify_api"][0]).check_output("cat /etc/dify/api.env")
    deployed = [k for k, v in secrets.items() if v in env]
    assert "secret_key" in deployed, "api.env does not carry the secrets file's secret_key"


def test_no_secret_in_any_log_of_the_run():
    logs = sorted(glob.glob(os.path.join(LOG_DIR, "*.log")))
    names = set(os.path.basename(p) for p in logs)
    missing = [n for n in REQUIRED_LOGS if n not in names]
    assert not missing, "logs not found in %s: %s" % (LOG_DIR, ", ".join(missing))
    secrets = searched_secrets()
    found = []
    for path in logs:
        with open(path, errors="replace") as fh:
            text = fh.read()
        found.extend("%s: %s" % (os.path.basename(path), key) for key, value in sorted(secrets.items())
                     if value in text)
    assert not found, "secrets in the output (log: key): " + "; ".join(found)


def test_every_fleet_host_carries_the_fleet_id_of_its_secrets_file():
    """The common tier marks each host; playbooks/tiers/secrets.yml refuses a lost or foreign secrets file."""
    import hashlib
    with open(SECRETS_FILE) as fh:
        cipher = yaml.safe_load(fh)["difyops_secrets"]["pgbackrest_cipher_pass"]
    want = hashlib.sha256(("difyops.fleet:" + cipher).encode()).hexdigest()[:32]
    hosts = sorted(set(h for g, members in GROUPS.items() if g.startswith("dify_") for h in members))
    assert hosts
    for host in hosts:
        f = lab_host(host).file("/var/lib/difyops/fleet-id")
        assert f.exists and f.mode == 0o644, host
        assert f.content_string.strip() == want, host
