"""What the app tier proves on the lab hosts, through the contract probe.

The probe runs in place of Dify's images with the env files the role wrote and
reports, from the app host, real connections: PostgreSQL with the pool size,
pgvector, Redis and the Celery broker through Sentinel, storage, the sandbox
and plugin daemon with the shared keys, and the SSRF proxy.
"""

import json
import time

import pytest
import testinfra

# Reached with podman exec: much faster than one Ansible run per command.
APP = testinfra.get_host("podman://mol-dify-app")
DATA = testinfra.get_host("podman://mol-dify-data")
testinfra_hosts = ["mol-dify-app"]
SERVICES = ["api", "worker", "beat", "web", "sandbox", "plugin_daemon"]
# "contract": the service's env parsed as the release's own code parses it
# (the probe exits at start otherwise); "event_bus": PUBSUB_REDIS_URL answers;
# "agent_backend" (Dify 1.16.1, this scenario's release): the agent backend's
# runs API takes api's and worker's AGENT_BACKEND_API_TOKEN.
EXPECTED_CHECKS = {
    "api": {"contract", "db_pool", "pgvector", "redis_sentinel", "celery_broker", "event_bus", "storage", "sandbox",
            "plugin_daemon", "ssrf_proxy", "migration_disabled", "agent_backend"},
    "worker": {"contract", "db_pool", "pgvector", "redis_sentinel", "celery_broker", "event_bus", "storage",
               "sandbox", "ssrf_proxy", "migration_disabled", "agent_backend"},
    "beat": {"contract", "db_pool", "redis_sentinel", "celery_broker", "migration_disabled"},
    "plugin_daemon": {"contract", "db_pool", "redis_sentinel", "storage", "inner_api"},
    "sandbox": {"contract", "ssrf_proxy"},
    "web": {"contract"},
}


def report(mode):
    """The probe's latest report; waits for a round where every check passed (up to 60 s)."""
    data = None
    for dummy in range(30):
        f = APP.file("/var/log/dify/probe-%s.json" % mode)
        if f.exists:
            data = json.loads(f.content_string)
            if data.get("ok"):
                return data
        time.sleep(2)
    return data


@pytest.mark.parametrize("mode", SERVICES)
def test_probe_checks_all_pass(mode):
    data = report(mode)
    assert data is not None, "no report from %s" % mode
    assert set(data["checks"]) == EXPECTED_CHECKS[mode]
    failed = {k: v for k, v in data["checks"].items() if not v["ok"]}
    assert not failed, failed
    assert data["ok"] is True


def test_db_pool_opened_rendered_pool_size():
    checks = report("api")["checks"]
    # Dify's SQLAlchemy engine held its whole pool at once: 4 backends of PostgreSQL.
    assert checks["db_pool"]["detail"]["pool_size"] == 4
    assert checks["db_pool"]["detail"]["backends"] == 4
    assert checks["db_pool"]["detail"]["user"] == "dify"
    assert checks["db_pool"]["detail"]["client"].startswith("sqlalchemy 2.")


def test_broker_went_through_sentinel():
    detail = report("worker")["checks"]["celery_broker"]["detail"]
    assert detail["via"].startswith("sentinel") and detail["db"] == 1
    assert report("api")["checks"]["redis_sentinel"]["detail"]["sentinel"] == "true"


def test_ssrf_proxy_refuses_private_and_answers_allowed():
    detail = report("api")["checks"]["ssrf_proxy"]["detail"]
    assert detail["private_status"] == 403
    assert detail["allowed_status"] == 200


@pytest.mark.parametrize("service", SERVICES)
def test_container_running_healthy_and_restarting(service):
    out = APP.check_output(
        "docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}} "
        "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}}' dify-%s" % service)
    status, health, policy, memory = out.split()
    assert status == "running"
    assert health == "healthy"
    assert policy == "unless-stopped"
    assert int(memory) > 0


@pytest.mark.parametrize("port", [5001, 3000, 8194, 5002])
def test_health_answers_from_another_host(port):
    addr = json.loads(APP.check_output("ip -4 -json route get 1.1.1.1"))[0]["prefsrc"]
    out = DATA.check_output("python3 -c \"import urllib.request;print(urllib.request.urlopen("
                            "'http://%s:%d/health', timeout=5).status)\"" % (addr, port))
    assert out.strip() == "200"


@pytest.mark.parametrize("service", SERVICES + ["migration"])
def test_env_file_mode_owner_and_contract(service):
    f = APP.file("/etc/dify/%s.env" % service)
    assert f.exists
    assert f.mode == 0o640
    assert f.user == "root"
    assert f.gid == 1001
    env = dict(line.split("=", 1) for line in f.content_string.splitlines() if line and not line.startswith("#"))
    for value in env.values():
        for compose in ("db_postgres", "//redis:", "//sandbox:", "//plugin_daemon:", "//api:", "ssrf_proxy:"):
            assert compose not in value
    if service in ("api", "worker", "beat"):
        assert env["MIGRATION_ENABLED"] == "false"
        assert env["LOG_OUTPUT_FORMAT"] == "json"
    if service == "migration":
        assert env["MIGRATION_ENABLED"] == "true" and env["MODE"] == "migration"


def test_migration_ran_exactly_once():
    count = DATA.check_output("runuser -u postgres -- psql -d dify -tAc 'SELECT count(*) FROM difyops_probe_migrations'")
    assert count.strip() == "1"
    # The tables the api's answers read exist (created through Dify's engine by MODE=migration).
    assert DATA.check_output("runuser -u postgres -- psql -d dify -tAc \"SELECT to_regclass('dify_setups')\"").strip() \
        == "dify_setups"
    # the release the scenario deploys (its env files' header names it)
    version = APP.file("/etc/dify/api.env").content_string.split("Dify ", 1)[1].split(",", 1)[0]
    assert version in ("1.13.3", "1.16.1")
    assert APP.file("/var/lib/dify/state/migrated-version").content_string.strip() == version


def test_storage_owned_by_dify_uid_and_written():
    d = APP.file("/var/lib/dify/storage")
    assert d.uid == 1001 and d.gid == 1001
    assert APP.file("/var/lib/dify/storage/difyops-probe").is_directory


def test_daemon_json_rotation_and_live_restore():
    conf = json.loads(APP.file("/etc/docker/daemon.json").content_string)
    assert conf["live-restore"] is True
    assert conf["log-opts"]["max-size"] == "50m"
    info = APP.check_output("docker info -f '{{.LoggingDriver}} {{.Driver}} {{.LiveRestoreEnabled}}'")
    assert info.split() == ["local", "vfs", "true"]


def test_images_came_from_the_archive():
    assert APP.file("/var/lib/dify/images/difyops-probe.tar").exists
    assert APP.check_output("docker image inspect -f '{{.Id}}' localhost/difyops-probe:lab").startswith("sha256:")


def _env(service):
    f = APP.file("/etc/dify/%s.env" % service)
    return dict(line.split("=", 1) for line in f.content_string.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize("service", ["api", "worker", "beat", "migration"])
def test_event_bus_points_at_the_current_master_and_no_empty_redis_address(service):
    """Issue 12: Sentinel mode rendered REDIS_HOST=/REDIS_PORT= and no PUBSUB_REDIS_URL (event bus on localhost)."""
    env = _env(service)
    assert "REDIS_HOST" not in env and "REDIS_PORT" not in env
    url = env["PUBSUB_REDIS_URL"]
    assert url.startswith("redis://:") and url.endswith("/0") and "localhost" not in url and "127.0.0.1" not in url
    # the data host runs the one Redis, the master the Sentinel names
    data_addr = json.loads(DATA.check_output("ip -4 -json route get 1.1.1.1"))[0]["prefsrc"]
    assert url.rsplit("@", 1)[1] == "%s:6379/0" % data_addr


def test_probe_settings_are_container_env_not_dify_env():
    """The probe's PROBE_* settings reach the containers without dify_env_allow_unknown."""
    for service in SERVICES:
        assert not [n for n in _env(service) if n.startswith("PROBE_")]
    env = APP.check_output("docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' dify-api")
    assert "PROBE_INTERVAL=3" in env.splitlines()


@pytest.mark.parametrize("service", ["api", "web"])
def test_public_urls_are_not_the_images_loopback_defaults(service):
    """Without an edge host the fleet's own addresses, never the images' http://127.0.0.1:5001/:3000."""
    env = _env(service)
    assert env["CONSOLE_API_URL"].startswith("http://") and "127.0.0.1" not in env["CONSOLE_API_URL"]
    if service == "api":
        for name in ("CONSOLE_WEB_URL", "SERVICE_API_URL", "APP_WEB_URL", "FILES_URL", "TRIGGER_URL",
                     "INTERNAL_FILES_URL"):
            assert "127.0.0.1" not in env[name] and "localhost" not in env[name]


def test_a_chat_answer_streams_through_celery_and_the_event_bus():
    """POST /v1/chat-messages on api: a Celery task (broker through Sentinel) on the worker
    publishes the answer on the event bus; api relays it as Server-Sent Events."""
    out = APP.check_output(
        "curl -sN --max-time 60 -H 'Content-Type: application/json' "
        "-d '{\"query\": \"hi\", \"response_mode\": \"streaming\"}' http://127.0.0.1:5001/v1/chat-messages")
    events = [json.loads(line[6:]) for line in out.splitlines() if line.startswith("data: ")]
    assert [e["event"] for e in events] == ["message"] * 4 + ["message_end"], events
    assert events[-1]["worker"] == "mol-dify-app"


def test_console_setup_reads_the_database():
    answer = json.loads(APP.check_output("curl -s http://127.0.0.1:5001/console/api/setup"))
    assert answer["step"] in ("not_started", "finished")
    DATA.check_output("runuser -u postgres -- psql -d dify -tAc \"INSERT INTO dify_setups (version) VALUES "
                      "('molecule') ON CONFLICT DO NOTHING\"")
    assert json.loads(APP.check_output("curl -s http://127.0.0.1:5001/console/api/setup"))["step"] == "finished"
