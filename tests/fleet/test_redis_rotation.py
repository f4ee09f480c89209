"""A Redis and Sentinel password rotation through a running Dify (issue 14).

scripts/test-fleet.sh rotates redis_password and redis_sentinel_password
(playbooks/rotate-secrets.yml), converges site.yml, and runs these checks with
FLEET_ROTATED_FROM set to the secrets file the rotation kept (the previous
values). Every Dify container that talks to Redis runs with the new passwords
and none of the old ones, the probe inside it reaches Redis through the
Sentinels, Celery's broker and the event bus with them, and every Redis server
and Sentinel refuses the old passwords while accepting the new ones.
No password is ever printed: values are compared, findings name host,
service and variable only.
"""
import datetime
import json
import os
import subprocess
import time

import pytest
import yaml

from conftest import GROUPS, TOP, lab_host

PREVIOUS_FILE = os.environ.get("FLEET_ROTATED_FROM")
pytestmark = pytest.mark.skipif(not PREVIOUS_FILE, reason="only after the Redis password rotation step")

SECRETS_FILE = os.path.join(TOP, "secrets", "lab.yml")
KEYS = ("redis_password", "redis_sentinel_password")
# Dify's services that use Redis, and the probe checks that go through it.
REDIS_SERVICES = (("api", "dify_api"), ("worker", "dify_worker"), ("beat", "dify_beat"),
                  ("plugin_daemon", "dify_plugin_daemon"))
CONTAINERS = [(host, svc) for svc, group in REDIS_SERVICES for host in GROUPS.get(group, [])]
REDIS_CHECKS = {"api": ("redis_sentinel", "celery_broker", "event_bus"),
                "worker": ("redis_sentinel", "celery_broker", "event_bus"),
                "beat": ("redis_sentinel", "celery_broker"),
                "plugin_daemon": ("redis_sentinel",)}


class Hidden(dict):
    """The passwords, never shown: pytest prints a failing test's arguments."""

    def __repr__(self):
        return "<%s: hidden>" % ", ".join(sorted(self))

    __str__ = __repr__


def _passwords(path):
    with open(path) as fh:
        data = yaml.safe_load(fh)["difyops_secrets"]
    return Hidden((k, str(data[k])) for k in KEYS)


@pytest.fixture(scope="module")
def new():
    return _passwords(SECRETS_FILE)


@pytest.fixture(scope="module")
def old():
    return _passwords(PREVIOUS_FILE)


def test_the_rotation_changed_both_passwords(new, old):
    changed = [k for k in KEYS if new[k] != old[k] and len(new[k]) >= 16]
    assert changed == list(KEYS), "not rotated: %s" % [k for k in KEYS if k not in changed]


def container_env(host, svc):
    out = lab_host(host).check_output("docker inspect -f '{{json .Config.Env}}' dify-%s" % svc)
    return dict(item.split("=", 1) for item in json.loads(out) if "=" in item)


@pytest.mark.parametrize("host,svc", CONTAINERS, ids=["%s-%s" % c for c in CONTAINERS])
def test_every_redis_client_container_runs_with_the_new_passwords(host, svc, new, old):
    env = container_env(host, svc)
    problems = []
    if env.get("REDIS_PASSWORD") != new["redis_password"]:
        problems.append("REDIS_PASSWORD is not the new redis_password")
    if "REDIS_SENTINEL_PASSWORD" in env and env["REDIS_SENTINEL_PASSWORD"] != new["redis_sentinel_password"]:
        problems.append("REDIS_SENTINEL_PASSWORD is not the new redis_sentinel_password")
    if svc != "plugin_daemon" and "REDIS_SENTINEL_PASSWORD" not in env:
        problems.append("no REDIS_SENTINEL_PASSWORD")
    for name, value in sorted(env.items()):
        for key in KEYS:
            if old[key] in value:
                problems.append("%s carries the previous %s" % (name, key))
    assert not problems, "%s on %s: %s" % (svc, host, "; ".join(problems))


def _started(host, svc):
    out = lab_host(host).check_output("docker inspect -f '{{.State.StartedAt}}' dify-%s" % svc).strip()
    return datetime.datetime.strptime(out[:19], "%Y-%m-%dT%H:%M:%S")


def _report(host, svc):
    f = lab_host(host).file("/var/log/dify/probe-%s.json" % svc)
    return json.loads(f.content_string) if f.exists else None


@pytest.mark.parametrize("host,svc", CONTAINERS, ids=["%s-%s" % c for c in CONTAINERS])
def test_the_probe_reaches_redis_sentinel_and_celery_with_the_new_passwords(host, svc):
    """A report written by the recreated container (after it started), its Redis checks all passing."""
    started = _started(host, svc)
    wanted = REDIS_CHECKS[svc]
    deadline = time.time() + 90
    report, fresh = None, False
    while time.time() < deadline:
        report = _report(host, svc)
        if report and report.get("updated"):
            fresh = datetime.datetime.strptime(report["updated"], "%Y-%m-%dT%H:%M:%SZ") >= started
            if fresh and all(report["checks"].get(c, {}).get("ok") for c in wanted):
                break
        time.sleep(3)
    assert report is not None, "no probe report for %s on %s" % (svc, host)
    assert fresh, "%s on %s: no report since the container was recreated at %s" % (svc, host, started)
    failed = dict((c, report["checks"].get(c)) for c in wanted if not report["checks"].get(c, {}).get("ok"))
    assert not failed, failed


def _redis_cli(host, port, password, command="PING"):
    """COMMAND on the server at 127.0.0.1:PORT of HOST, logged in with PASSWORD (given on stdin, never argv)."""
    script = ("cli=$(command -v redis-cli || command -v valkey-cli); "
              "REDISCLI_AUTH=\"$(cat)\" $cli -h 127.0.0.1 -p %d --no-auth-warning %s 2>&1" % (port, command))
    proc = subprocess.run(["podman", "exec", "-i", host, "sh", "-c", script], input=password.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=False)
    return proc.stdout.decode(errors="replace").strip()


SERVERS = ([(h, 6379, "redis_password") for h in GROUPS.get("dify_redis", [])]
           + [(h, 26379, "redis_sentinel_password") for h in GROUPS.get("dify_sentinel", [])])


@pytest.mark.parametrize("host,port,key", SERVERS, ids=["%s-%d" % s[:2] for s in SERVERS])
def test_every_redis_and_sentinel_refuses_the_old_password_and_takes_the_new(host, port, key, new, old):
    accepted = _redis_cli(host, port, new[key]) == "PONG"
    assert accepted, "%s:%d does not take the new %s" % (host, port, key)
    with_old = _redis_cli(host, port, old[key])
    refused = with_old != "PONG" and ("WRONGPASS" in with_old or "NOAUTH" in with_old)
    assert refused, "%s:%d still takes the previous %s" % (host, port, key)
