"""Verify the converged lab fleet across hosts (scripts/test-fleet.sh runs it
after converge, rerun and --check --diff).

What a user of the fleet relies on, observed on the hosts: every Dify service
(the contract probe in Dify's place) reports its real connections ok; both
api hosts serve behind the edge; uploads are shared between api and worker
hosts; the shared secrets agree; one beat; PostgreSQL streams to its replica;
Sentinel agrees on one master; the firewall lets only the fleet's paths
through.
"""
import hashlib
import os
import json
import time

import pytest

from conftest import ADDRESSES, GROUPS, TOP, lab_host

EDGE = GROUPS["dify_edge"][0]
SERVER_NAME = "dify.lab.test"

# Dify's containers and their groups; the last three run from Dify 1.16 (the
# lab has hosts in their groups only on such a release: lab/lab.py).
SERVICE_GROUPS = (("api", "dify_api"), ("worker", "dify_worker"), ("beat", "dify_beat"), ("web", "dify_web"),
                  ("plugin_daemon", "dify_plugin_daemon"), ("sandbox", "dify_sandbox"),
                  ("api_websocket", "dify_api_websocket"), ("agent_backend", "dify_agent_backend"),
                  ("local_sandbox", "dify_local_sandbox"))
APP_HOSTS = sorted(set(h for dummy, group in SERVICE_GROUPS for h in GROUPS.get(group, [])))
SERVICES = [(host, svc) for svc, group in SERVICE_GROUPS for host in GROUPS.get(group, [])]


def probe_report(host, svc, seconds=90):
    """The probe's latest report in the container of SVC on HOST (read inside it: Dify 1.16's agent services
    mount no log directory); waits for a round where every check passed."""
    data = None
    deadline = time.time() + seconds
    while time.time() < deadline:
        res = lab_host(host).run("docker exec dify-%s cat /app/logs/probe-%s.json" % (svc, svc))
        if res.rc == 0 and res.stdout.strip():
            data = json.loads(res.stdout)
            if data.get("ok"):
                return data
        time.sleep(3)
    return data


@pytest.mark.parametrize("host,svc", SERVICES, ids=["%s-%s" % s for s in SERVICES])
def test_every_service_reports_its_checks_ok(host, svc):
    data = probe_report(host, svc)
    assert data is not None, "no probe report for %s on %s" % (svc, host)
    failed = dict((k, v) for k, v in data["checks"].items() if not v["ok"])
    assert not failed, failed
    assert data["ok"] is True


def test_containers_run_only_where_their_group_says():
    """Each Dify container runs exactly on its group's hosts (none of a release's new services elsewhere or
    before), labelled with the fleet's release."""
    release = os.environ.get("FLEET_EXPECT_RELEASE")
    for host in APP_HOSTS:
        out = lab_host(host).check_output(
            "docker ps --format '{{.Names}} {{.Label \"org.difyops.dify-version\"}}'")
        running = dict(line.split() for line in out.splitlines() if line.strip())
        for svc, group in SERVICE_GROUPS:
            assert (("dify-" + svc) in running) == (host in GROUPS.get(group, [])), (host, svc, running)
        if release:
            assert set(v for k, v in running.items() if k.startswith("dify-")) == {release}, (host, running)


def edge_get(path, n=1):
    """N requests through the edge's nginx (TLS, pebble's certificate): [(status, answering probe)]."""
    cmd = ("for i in $(seq %d); do curl -sk -o /dev/null -D - --resolve %s:443:127.0.0.1 https://%s%s "
           "| tr -d '\\r' | awk 'NR==1{s=$2} tolower($1)==\"x-difyops-probe:\"{p=$2} END{print s, p}'; done"
           % (n, SERVER_NAME, SERVER_NAME, path))
    out = lab_host(EDGE).check_output(cmd)
    return [tuple(line.split()) for line in out.splitlines() if line.strip()]


def test_edge_balances_the_console_api_over_every_api_host():
    answers = edge_get("/console/api/setup", n=24)
    assert all(status == "200" for status, _who in answers), answers
    seen = set(who for _s, who in answers)
    assert seen == set("api@" + h for h in GROUPS["dify_api"]), seen


def test_edge_routes_the_front_end_to_web_and_plugins_to_the_daemon():
    assert set(edge_get("/", n=4)) == set([("200", "web@" + h) for h in GROUPS["dify_web"]])
    status_who = edge_get("/e/hook", n=1)[0]
    assert status_who[1] == "plugin_daemon@" + GROUPS["dify_plugin_daemon"][0], status_who


def test_uploads_written_through_one_api_host_are_read_on_every_other():
    token = "fleet-%d" % time.time()
    first = GROUPS["dify_api"][0]
    lab_host(first).check_output(
        "docker exec dify-api sh -c 'echo %s > /app/api/storage/difyops-fleet-test'" % token)
    for host in GROUPS["dify_api"][1:] + GROUPS["dify_worker"]:
        svc = "api" if host in GROUPS["dify_api"] else "worker"
        got = lab_host(host).check_output("docker exec dify-%s cat /app/api/storage/difyops-fleet-test" % svc)
        assert got.strip() == token, host


def env_file(host, svc):
    env = {}
    for line in lab_host(host).file("/etc/dify/%s.env" % svc).content_string.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def env_values(host, svc, names):
    env = env_file(host, svc)
    return dict((n, hashlib.sha256(env.get(n, "").encode()).hexdigest()) for n in names if n in env)


def test_shared_secrets_agree_across_hosts():
    names = ["SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD", "CODE_EXECUTION_API_KEY", "PLUGIN_DAEMON_KEY",
             "INNER_API_KEY_FOR_PLUGIN"]
    seen = {}
    for host, svc in SERVICES:
        if svc not in ("api", "worker"):
            continue
        for name, digest in env_values(host, svc, names).items():
            seen.setdefault(name, set()).add(digest)
    assert set(seen) >= {"SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD"}
    for name, digests in seen.items():
        assert len(digests) == 1, "%s differs between api/worker hosts" % name


def psql(host, sql, db="dify"):
    return lab_host(host).check_output("runuser -u postgres -- psql -XAtq -d %s -c %s" % (db, quote(sql))).strip()


def quote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"


def test_postgres_replica_streams_from_the_primary():
    primary, replica = GROUPS["dify_postgres"][0], GROUPS["dify_postgres"][1]
    assert psql(primary, "SELECT pg_is_in_recovery()") == "f"
    assert psql(replica, "SELECT pg_is_in_recovery()") == "t"
    assert ADDRESSES[replica] in psql(primary, "SELECT client_addr FROM pg_stat_replication WHERE state='streaming'")
    token = "fleet-%d" % time.time()
    psql(primary, "CREATE TABLE IF NOT EXISTS difyops_fleet_test (v text); INSERT INTO difyops_fleet_test VALUES ('%s')" % token)
    for dummy in range(30):
        if psql(replica, "SELECT count(*) FROM difyops_fleet_test WHERE v = '%s'" % token) == "1":
            break
        time.sleep(1)
    else:
        pytest.fail("row not replicated to %s" % replica)


def capacity_report():
    """host -> {value: setting} and the fleet rows, from the capacity report preflight wrote."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "inventories", "lab", "capacity-report.md")
    hosts, fleet, current = {}, {}, None
    with open(path) as fh:
        for line in fh:
            if line.startswith("### "):
                current = hosts.setdefault(line[4:].strip(), {})
            elif line.startswith("| ") and current is None:
                cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
                if len(cells) >= 2:
                    fleet[cells[0]] = cells[1]
            elif line.startswith("| ") and current is not None:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(cells) >= 2:
                    current[cells[0]] = cells[1]
    return hosts, fleet


def test_postgres_runs_with_the_planned_max_connections_on_primary_and_replica():
    dummy, fleet = capacity_report()
    planned = int(fleet["max_connections (computed)"])
    assert int(fleet["required"]) <= planned
    for host in GROUPS["dify_postgres"]:
        assert int(psql(host, "SHOW max_connections")) == planned, host


def test_app_hosts_run_with_their_planned_pool_sizes():
    hosts, dummy = capacity_report()
    for host in GROUPS["dify_api"]:
        env = env_file(host, "api")
        plan = hosts[host]
        assert env["SERVER_WORKER_AMOUNT"] == plan["gunicorn_workers"], host
        assert env["SQLALCHEMY_POOL_SIZE"] == plan["sqlalchemy_pool_size"], host
        assert env["SQLALCHEMY_MAX_OVERFLOW"] == plan["sqlalchemy_max_overflow"], host
    for host in GROUPS["dify_worker"]:
        assert env_file(host, "worker")["CELERY_WORKER_AMOUNT"] == hosts[host]["celery_concurrency"], host


def test_redis_runs_with_its_planned_maxmemory():
    hosts, dummy = capacity_report()
    for host in GROUPS["dify_redis"]:
        want = hosts[host]["redis_maxmemory"].split()[0]
        out = lab_host(host).check_output(
            "cli=$(command -v redis-cli || command -v valkey-cli); "
            "conf=$(ls /etc/redis/redis-dify.conf /etc/valkey/valkey-dify.conf 2>/dev/null | head -1); "
            "REDISCLI_AUTH=$(awk '/^requirepass/{print $2}' $conf | tr -d '\"') "
            "$cli -h %s --no-auth-warning CONFIG GET maxmemory | tail -1" % ADDRESSES[host])
        if not out.strip():
            pytest.fail("could not read maxmemory on %s" % host)
        assert out.strip() == want, host


def test_sentinels_agree_on_one_master():
    masters = set()
    for host in GROUPS["dify_sentinel"]:
        out = lab_host(host).check_output(
            "conf=$(ls /etc/redis/sentinel-dify.conf /etc/valkey/sentinel-dify.conf 2>/dev/null | head -1); "
            "cli=$(command -v redis-cli || command -v valkey-cli); "
            # The file keeps the Sentinels' password in clear only as sentinel-pass (no requirepass line).
            "REDISCLI_AUTH=$(awk '/^sentinel sentinel-pass /{print $3}' $conf | tr -d '\"') "
            "$cli -h %s -p 26379 --no-auth-warning SENTINEL get-master-addr-by-name dify-master" % ADDRESSES[host])
        masters.add(tuple(out.split()))
    assert len(masters) == 1, masters
    (addr, port), = masters
    assert addr in [ADDRESSES[h] for h in GROUPS["dify_redis"]] and port == "6379"


def can_connect(src, dst, port):
    cmd = "timeout 3 bash -c '</dev/tcp/%s/%d' >/dev/null 2>&1 && echo open || echo closed" % (ADDRESSES[dst], port)
    return lab_host(src).check_output(cmd).strip() == "open"


# (destination group, port, a source group that must get through, a source
# host outside every group allowed to) from the fleet's firewall rules.
PATHS = [
    ("dify_postgres", 5432, "dify_api", EDGE),
    ("dify_redis", 6379, "dify_worker", GROUPS["dify_postgres"][0]),
    ("dify_sentinel", 26379, "dify_api", EDGE),
    ("dify_sandbox", 8194, "dify_api", EDGE),
    ("dify_ssrf_proxy", 3128, "dify_api", GROUPS["dify_postgres"][0]),
    ("dify_api", 5001, "dify_edge", GROUPS["dify_postgres"][0]),
    ("dify_web", 3000, "dify_edge", GROUPS["dify_postgres"][0]),
    ("dify_plugin_daemon", 5002, "dify_api", GROUPS["dify_postgres"][0]),
]


@pytest.mark.parametrize("dst_group,port,allowed_group,outsider", PATHS, ids=["%s-%d" % p[:2] for p in PATHS])
def test_firewall_allows_the_fleet_path_and_refuses_others(dst_group, port, allowed_group, outsider):
    dst = GROUPS[dst_group][0]
    src = [h for h in GROUPS[allowed_group] if h != dst][0]
    assert can_connect(src, dst, port), "%s -> %s:%d must be open" % (src, dst, port)
    assert outsider != dst
    assert not can_connect(outsider, dst, port), "%s -> %s:%d must be refused" % (outsider, dst, port)


def test_https_is_open_to_anyone_and_http_redirects():
    other = GROUPS["dify_postgres"][0]
    out = lab_host(other).check_output(
        "curl -s -o /dev/null -w '%%{http_code} %%{redirect_url}' --resolve %s:80:%s http://%s/apps"
        % (SERVER_NAME, ADDRESSES[EDGE], SERVER_NAME))
    assert out.split()[0] == "301" and out.split()[1].startswith("https://%s/" % SERVER_NAME)


@pytest.mark.skipif(not os.environ.get("FLEET_EXPECT_IMAGE"), reason="only after the upgrade step")
def test_every_dify_container_runs_the_upgraded_image():
    want = os.environ["FLEET_EXPECT_IMAGE"]
    for host, svc in SERVICES:
        image = lab_host(host).check_output("docker inspect -f '{{.Config.Image}}' dify-%s" % svc).strip()
        assert image == want, (host, svc, image)


@pytest.mark.skipif(not os.environ.get("FLEET_EXPECT_IMAGE"), reason="only after the upgrade step")
def test_the_upgrade_backed_up_postgresql_before_recreating_any_container():
    # scripts/test-fleet.sh writes the upgrade's vars file just before it runs upgrade.yml.
    upgrade_started = os.path.getmtime(os.path.join(TOP, "build", "fleet", "upgrade-vars.yml"))
    primary = GROUPS["dify_postgres"][0]
    info = json.loads(lab_host(primary).check_output(
        "runuser -u postgres -- pgbackrest --stanza=dify --output=json info"))
    backups = [b for b in info[0]["backup"] if b["timestamp"]["start"] >= int(upgrade_started)]
    assert backups, "no pgBackRest backup started after the upgrade began (%d): %s" % (
        upgrade_started, [(b["label"], b["timestamp"]) for b in info[0]["backup"]])
    backed_up = min(b["timestamp"]["stop"] for b in backups)
    for host in GROUPS["dify_api"]:
        created = int(lab_host(host).check_output(
            "date -d \"$(docker inspect -f '{{.Created}}' dify-api)\" +%s").strip())
        assert created >= backed_up, (host, created, backed_up)


def test_every_api_host_is_in_every_edge_pool():
    """No api host is left drained (marked down) in any edge host's upstream, upgrade or not."""
    for edge in GROUPS["dify_edge"]:
        site = lab_host(edge).file("/etc/nginx/conf.d/difyops-dify.conf").content_string
        pool = site.split("upstream dify_api {", 1)[1].split("}", 1)[0]
        servers = [line.split()[1].rsplit(":", 1)[0].strip("[]")
                   for line in pool.splitlines() if line.strip().startswith("server ")]
        assert sorted(servers) == sorted(ADDRESSES[h] for h in GROUPS["dify_api"]), (edge, pool)
        assert " down;" not in pool and " down " not in pool, (edge, pool)


MONITOR = (GROUPS.get("lab_acme") or [None])[0]
EXPORTERS = [("dify_edge", 9100, "node_load1"), ("dify_postgres", 9187, "pg_up 1"),
             ("dify_redis", 9121, "redis_up 1"), ("dify_edge", 9113, "nginx_up 1")]


@pytest.mark.parametrize("group,port,metric", EXPORTERS, ids=["%s-%d" % e[:2] for e in EXPORTERS])
def test_exporters_answer_the_monitoring_host_only(group, port, metric):
    for host in GROUPS[group]:
        # A scrape as Prometheus repeats it: the first one after a PostgreSQL restart reports pg_up 0 while
        # postgres_exporter reconnects (its next one says 1), so up to three scrapes 2 s apart.
        for dummy in range(3):
            out = lab_host(MONITOR).check_output("curl -s --max-time 10 http://%s:%d/metrics"
                                                 % (ADDRESSES[host], port))
            if metric in out:
                break
            time.sleep(2)
        assert metric in out, (host, port, metric)
        outsider = [h for h in GROUPS["dify_api"] if h != host][0]
        assert not can_connect(outsider, host, port), "%s reached %s:%d" % (outsider, host, port)


@pytest.mark.parametrize("host,svc", SERVICES, ids=["%s-%s" % s for s in SERVICES])
def test_every_service_parsed_its_env_with_the_release_contract(host, svc):
    """The probe started only because its env parses as the release's own code parses it."""
    data = probe_report(host, svc)
    assert data["checks"]["contract"]["ok"], data["checks"].get("contract")
    assert data["checks"]["contract"]["detail"]["release"] == os.environ.get(
        "FLEET_EXPECT_RELEASE", data["checks"]["contract"]["detail"]["release"])


def edge_stream(n=3):
    """N streamed chat answers through the edge: [(answering api probe, [events])]."""
    cmd = ("curl -sk -N -D - --max-time 60 --resolve %s:443:127.0.0.1 -H 'Content-Type: application/json' "
           "-d '{\"query\": \"hello\", \"response_mode\": \"streaming\"}' https://%s/v1/chat-messages"
           % (SERVER_NAME, SERVER_NAME))
    out = []
    for dummy in range(n):
        text = lab_host(EDGE).check_output(cmd).replace("\r", "")
        who = [line.split(":", 1)[1].strip() for line in text.splitlines()
               if line.lower().startswith("x-difyops-probe:")]
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        out.append((who[0] if who else None, events))
    return out


def test_the_edge_sends_socket_io_to_the_websocket_api_exactly_when_the_fleet_runs_one():
    """From Dify 1.15 nginx upgrades /socket.io/ to the websocket api (101 from its probe); a fleet without
    one (1.13.3) has no such route: the request goes to web like any other path and is not upgraded."""
    cmd = ("curl -sk -o /dev/null -D - --max-time 10 --http1.1 --resolve %s:443:127.0.0.1 "
           "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' "
           "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' 'https://%s/socket.io/?EIO=4&transport=websocket' "
           "| tr -d '\\r'; true" % (SERVER_NAME, SERVER_NAME))
    head = lab_host(EDGE).check_output(cmd)
    status = head.split("\n", 1)[0].split()[1] if head.strip() else None
    who = [line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith("x-difyops-probe:")]
    websocket_hosts = GROUPS.get("dify_api_websocket", [])
    if websocket_hosts:
        assert status == "101" and who == ["api_websocket@%s" % websocket_hosts[0]], head
    else:
        assert status != "101" and not [w for w in who if w.startswith("api_websocket")], head


def test_a_streamed_answer_crosses_hosts_through_celery_and_the_event_bus():
    """api host -> Celery (Redis broker through Sentinel) -> worker host -> event bus -> api -> SSE."""
    for who, events in edge_stream(4):
        assert who and who.split("@")[1] in GROUPS["dify_api"], who
        kinds = [e["event"] for e in events]
        assert kinds == ["message"] * 4 + ["message_end"], (who, kinds)
        worker = events[-1]["worker"]
        assert worker in GROUPS["dify_worker"], (who, worker)
        if set(GROUPS["dify_worker"]).isdisjoint(GROUPS["dify_api"]):
            assert worker != who.split("@")[1]


def test_the_console_setup_answer_comes_from_the_database():
    """/console/api/setup reads table dify_setups (created by the migration job) on the primary."""
    primary = GROUPS["dify_postgres"][0]
    assert psql(primary, "SELECT count(*) FROM difyops_probe_migrations") != "0"
    before = psql(primary, "SELECT count(*) FROM dify_setups")
    cmd = ("curl -sk --resolve %s:443:127.0.0.1 https://%s/console/api/setup" % (SERVER_NAME, SERVER_NAME))
    answer = json.loads(lab_host(EDGE).check_output(cmd))
    assert answer["step"] == ("finished" if before != "0" else "not_started"), answer
    psql(primary, "INSERT INTO dify_setups (version) VALUES ('difyops-fleet-test') ON CONFLICT DO NOTHING")
    answers = [json.loads(lab_host(EDGE).check_output(cmd)) for dummy in range(4)]
    assert all(a["step"] == "finished" for a in answers), answers
