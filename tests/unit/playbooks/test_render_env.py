# -*- coding: utf-8 -*-
"""playbooks/render-env.yml, run for real (ansible-playbook, no host touched) on the fleet shapes users run,
for every release with contract data; each rendered env file is validated against the data extracted from
that release's source (names, types, values as Dify parses them) and checked for what each mismatch class of
issue 12 needs.

The hosts' addresses are documentation/unroutable ones and render_gather_facts=false: a run that tried to
connect to any host would fail, so a green run also proves the render touches no host.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as dc
from ansible_collections.difyops.fleet.plugins.module_utils import dify_schema as ds

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VERSIONS = sorted(dc.VERSIONS)

SECRETS = {
    "secret_key": "render-secret-key-0123456789abcdef",
    "db_password": "render-db-password-0123",
    "db_replication_password": "render-repl-password-0123",
    "redis_password": "render-redis:pass/word@0123",
    "redis_sentinel_password": "render-sentinel-password-0123",
    "sandbox_api_key": "render-sandbox-key-0123",
    "plugin_daemon_key": "render-daemon-key-0123",
    "plugin_inner_api_key": "render-inner-key-0123",
    "pgbackrest_cipher_pass": "render-cipher-pass-0123456789",
    # Dify 1.16+ (fleets with the agent services)
    "agent_api_token": "render-agent-token-0123456789",
    "agent_server_secret_key": "cmVuZGVyLWFnZW50LXNlY3JldC1rZXktMzJieXRlcyE",
    "agent_shellctl_token": "render-shellctl-token-0123456789",
}
COMMON = {"difyops_memory_mb": 16384, "difyops_cpus": 4, "nginx_server_name": "dify.example.com",
          "difyops_secrets": SECRETS, "ansible_connection": "ssh"}
APP_GROUPS = ("dify_api", "dify_worker", "dify_beat", "dify_web", "dify_sandbox", "dify_plugin_daemon")
# The groups of services a release line adds (service, group): a fleet on a release without the service has
# no host in its group (preflight refuses one), so the shapes drop them for such a release.
RELEASE_GROUPS = (("api_websocket", "dify_api_websocket"), ("agent_backend", "dify_agent_backend"),
                  ("local_sandbox", "dify_local_sandbox"), ("agent_backend", "dify_agent_ssrf_proxy"))


def for_release(inventory, version):
    """The inventory as a fleet on ``version`` has it: without the groups of services the release lacks."""
    for service, group in RELEASE_GROUPS:
        if not dc.has_service(version, service):
            inventory["all"]["children"].pop(group, None)
    return inventory


def _load(path):
    with open(os.path.join(_TOP, path), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _inventory(hosts, extra_vars=None):
    """{host: (address, [groups], {host vars})} -> an inventory dict."""
    groups = {}
    inv_hosts = {}
    for host, (address, members, hvars) in hosts.items():
        key = "difyops_address" if ":" in address else "ansible_host"
        inv_hosts[host] = dict({key: address}, **(hvars or {}))
        for group in members:
            groups.setdefault(group, {"hosts": {}})["hosts"][host] = {}
    return {"all": {"hosts": inv_hosts, "children": groups, "vars": dict(COMMON, **(extra_vars or {}))}}


def _from_file(path, extra_vars=None):
    inv = _load(path)
    inv["all"]["vars"] = dict(COMMON, **(extra_vars or {}))
    return inv


def _lab_fleet():
    layout = _load("lab/layouts/fleet.yml")
    placed = dict((name, list(groups)) for name, groups in layout["hosts"].items())
    for release_hosts in (layout.get("release_hosts") or {}).values():
        for name, groups in release_hosts.items():
            placed[name] += groups
    hosts = dict((name, ("10.89.0.%d" % (10 + i), groups, {}))
                 for i, (name, groups) in enumerate(placed.items()))
    return _inventory(hosts, dict(layout.get("vars") or {}, nginx_server_name="dify.lab.test",
                                  difyops_exporters_enabled=False))


def _mysql_qdrant():
    app = ["dify_api", "dify_worker", "dify_beat", "dify_web", "dify_sandbox", "dify_plugin_daemon",
           "dify_ssrf_proxy", "dify_edge"]
    return _inventory({
        "app1": ("10.0.1.11", app, {}),
        "db1": ("10.0.1.21", ["dify_mysql"], {}),
        "r1": ("10.0.1.31", ["dify_redis", "dify_sentinel"], {}),
        "r2": ("10.0.1.32", ["dify_redis", "dify_sentinel"], {}),
        "r3": ("10.0.1.33", ["dify_redis", "dify_sentinel"], {}),
        "vec1": ("10.0.1.41", ["dify_vector"], {"vector_store_engine": "qdrant"}),
    }, {"dify_vector_store": "qdrant", "dify_db_ssl_mode": "require",
        "difyops_secrets": dict(SECRETS, qdrant_api_key="render-qdrant-key-0123456789")})


def _weaviate():
    inv = _from_file("inventories/example-prod/hosts.yml", {
        "storage_backend": "nfs", "storage_nfs_src": "nfs1.internal:/export/dify", "dify_vector_store": "weaviate",
        "dify_db_ssl_mode": "require", "nginx_https_port": 8443,
        "difyops_secrets": dict(SECRETS, weaviate_api_key="render-weaviate-key-0123456789")})
    inv["all"]["hosts"]["vec-1"] = {"ansible_host": "10.0.50.11"}
    inv["all"]["children"]["dify_vector"] = {"hosts": {"vec-1": {}}}
    return inv


def _ipv6(sentinels):
    app = ["dify_api", "dify_worker", "dify_beat", "dify_web", "dify_sandbox", "dify_plugin_daemon",
           "dify_ssrf_proxy"]
    hosts = {
        "edge1": ("fd00::10", ["dify_edge"], {}),
        "app1": ("fd00::11", app, {}),
        "app2": ("fd00::12", ["dify_api", "dify_worker"], {}),
        "pg1": ("fd00::21", ["dify_postgres"], {}),
        "r1": ("fd00::31", ["dify_redis"] + (["dify_sentinel"] if sentinels else []), {}),
        "r2": ("fd00::32", ["dify_redis"] + (["dify_sentinel"] if sentinels else []), {}),
        "r3": ("fd00::33", ["dify_redis"] + (["dify_sentinel"] if sentinels else []), {}),
    }
    extra = {"storage_backend": "shared", "nginx_server_name": "dify6.example.com"}
    if sentinels:
        # Dify 1.13.3/1.16.1 cannot parse IPv6 Sentinel addresses: the fleet names them (preflight refuses IPv6)
        extra["dify_redis_sentinels"] = ["redis-%d.example.net" % i for i in (1, 2, 3)]
    else:
        hosts["db1"] = ("fd00::41", ["dify_mysql"], {})
        extra["dify_db_type"] = "mysql"      # pgvector on the dify_postgres host (dify_pgvector_host)
    return _inventory(hosts, extra)


SHAPES = {
    "sentinel_fleet": lambda: _from_file("inventories/example-prod/hosts.yml", {
        "storage_backend": "nfs", "storage_nfs_src": "nfs1.internal:/export/dify", "storage_path": "/srv/dify"}),
    "lab_fleet": _lab_fleet,
    "single_node": lambda: _from_file("inventories/single-node/hosts.yml", {
        "nginx_tls_enabled": False, "nginx_server_name": ""}),
    "s3_opendal": lambda: _from_file("inventories/single-node/hosts.yml", {
        "storage_backend": "s3", "storage_s3_bucket": "dify-files", "storage_s3_endpoint": "https://minio.internal:9000",
        "storage_s3_path_style": True, "storage_s3_access_key": "render-access-key",
        "storage_s3_secret_key": "render-s3-secret-key-0123456789"}),
    "s3_interface": lambda: _from_file("inventories/example-prod/hosts.yml", {
        "storage_backend": "s3", "storage_s3_interface": "s3", "storage_s3_bucket": "dify-files",
        "storage_s3_region": "eu-central-1", "storage_s3_use_iam_role": True}),
    "mysql_qdrant": _mysql_qdrant,
    "weaviate": _weaviate,
    "ipv6_sentinels": lambda: _ipv6(True),
    "ipv6_plain": lambda: _ipv6(False),
}


def render(tmp_path, inventory, version, *args):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\ncollections_path = %s/.collections\nstdout_callback = default\nforks = 10\n"
        "host_key_checking = False\n" % _TOP)
    out = tmp_path / "out"
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    cmd = ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), os.path.join(_TOP, "playbooks", "render-env.yml"),
           "-e", "render_dir=%s" % out, "-e", "render_gather_facts=false", "-e", "dify_version=%s" % version]
    res = subprocess.run(cmd + list(args), cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    return out, res


def read_env(path):
    return dc.parse(path.read_text())


def rendered(out):
    """{host: {service: env}} and {host: containers}"""
    envs, containers = {}, {}
    for host in sorted(os.listdir(out)):
        for name in sorted(os.listdir(out / host)):
            if name.endswith(".env"):
                envs.setdefault(host, {})[name[:-4]] = read_env(out / host / name)
            elif name == "containers.yml":
                containers[host] = yaml.safe_load((out / host / name).read_text())
    return envs, containers


def groups_of(inventory):
    return dict((g, list(v["hosts"])) for g, v in inventory["all"]["children"].items())


def address(inventory, host):
    hv = inventory["all"]["hosts"][host] or {}
    return hv.get("difyops_address") or hv.get("ansible_host") or host


def bracket(addr):
    return "[%s]" % addr if ":" in addr else addr


# ---- the checks, one per mismatch class

def check_contract(version, envs):
    """Every file parses as the release parses it, with names it reads only (names class, empty values)."""
    release = dc.VERSIONS[version]["release"]
    for host, services in envs.items():
        for service, env in services.items():
            fam = dc.family(service)
            assert ds.validate_env(release, fam, env) == [], (host, service)
            assert dc.validate_service(service, env, version) == [], (host, service)
            unknown = [n for n in env if n not in ds.known_names(release, fam) and not n.startswith("OPENDAL_")]
            assert unknown == [], (host, service, unknown)
            assert [n for n, v in env.items() if v == ""] == [], (host, service)   # never an empty value
            for name, value in env.items():
                if name == "NO_PROXY":      # what must not go through the proxy: loopback among them
                    continue
                assert "localhost" not in value and "127.0.0.1" not in value, (host, service, name, value)


def check_names_per_release(version, envs):
    for services in envs.values():
        for service, env in services.items():
            assert not {"PLUGIN_DIFY_INNER_API_KEY", "PLUGIN_DIFY_INNER_API_URL", "BROKER_USE_SSL"} & set(env)
            if service == "plugin_daemon":
                assert "REDIS_USE_CLUSTERS" not in env and not [n for n in env if n.startswith("CELERY_")]
            if service == "web":
                assert ("EDITION" in env) == (version == "1.13.3")
                assert ("CONSOLE_WEB_URL" in env) == (version == "1.16.1")
            if dc.family(service) == "api":
                assert env["INNER_API_KEY_FOR_PLUGIN"] == SECRETS["plugin_inner_api_key"]
                assert ("ENABLE_COLLABORATION_MODE" in env) == (version == "1.16.1")


def check_redis(inventory, envs):
    groups = groups_of(inventory)
    sentinel = bool(groups.get("dify_sentinel"))
    master = bracket(address(inventory, groups["dify_redis"][0]))
    for services in envs.values():
        for service, env in services.items():
            if dc.family(service) not in ("api", "plugin_daemon"):
                continue
            if sentinel:
                assert "REDIS_HOST" not in env and "REDIS_PORT" not in env, service
            else:
                assert env["REDIS_PORT"] == "6379"
                raw = address(inventory, groups["dify_redis"][0])
                assert env["REDIS_HOST"] == (bracket(raw) if service == "plugin_daemon" else raw), service
            if dc.family(service) == "api":
                url = env["PUBSUB_REDIS_URL"]
                # no Sentinel answers from the test controller: the initial master stands in, never localhost
                assert url == "redis://:render-redis%3Apass%2Fword%400123@" + master + ":6379/0", url


def check_public_urls(inventory, envs):
    groups = groups_of(inventory)
    edge = inventory["all"]["hosts"][groups["dify_edge"][0]] or {}
    v = inventory["all"]["vars"]
    name = edge.get("nginx_server_name", v.get("nginx_server_name"))
    if v.get("nginx_tls_enabled", True):
        base = "https://" + name + (":%d" % v["nginx_https_port"] if v.get("nginx_https_port", 443) != 443 else "")
    else:   # the documented fallback: the edge's own address over plain HTTP
        base = "http://" + bracket(name or address(inventory, groups["dify_edge"][0]))
    api = "http://%s:5001" % bracket(address(inventory, groups["dify_api"][0]))
    for services in envs.values():
        for service, env in services.items():
            if dc.family(service) == "api":
                for n in ("CONSOLE_API_URL", "CONSOLE_WEB_URL", "SERVICE_API_URL", "APP_WEB_URL", "FILES_URL",
                          "TRIGGER_URL"):
                    assert env[n] == base, (service, n, env[n])
                assert env["ENDPOINT_URL_TEMPLATE"] == base + "/e/{hook_id}"
                assert env["INTERNAL_FILES_URL"] == api
                if service == "api":
                    assert env["PLUGIN_REMOTE_INSTALL_HOST"] == address(inventory, groups["dify_plugin_daemon"][0])
            if service == "web":
                assert env["CONSOLE_API_URL"] == env["APP_API_URL"] == base
            if service == "plugin_daemon":
                assert env["DIFY_INNER_API_URL"] == api


def check_storage(inventory, envs, containers):
    v = inventory["all"]["vars"]
    backend = v.get("storage_backend", "local")
    for host, services in envs.items():
        for service, env in services.items():
            if dc.family(service) == "api":
                if backend != "s3":
                    assert env["STORAGE_TYPE"] == "opendal" and env["OPENDAL_SCHEME"] == "fs"
                elif v.get("storage_s3_interface", "opendal") == "opendal":
                    assert env["STORAGE_TYPE"] == "opendal" and env["OPENDAL_SCHEME"] == "s3"
                    assert env["OPENDAL_S3_BUCKET"] == v["storage_s3_bucket"]
                    assert env["OPENDAL_S3_ENDPOINT"] == v["storage_s3_endpoint"]
                    assert env["OPENDAL_S3_ENABLE_VIRTUAL_HOST_STYLE"] == "false"
                    assert env["OPENDAL_S3_SECRET_ACCESS_KEY"] == v["storage_s3_secret_key"]
                else:
                    assert env["STORAGE_TYPE"] == "s3" and env["S3_BUCKET_NAME"] == v["storage_s3_bucket"]
                    assert env["S3_USE_AWS_MANAGED_IAM"] == "true" and env["S3_REGION"] == v["storage_s3_region"]
                    assert "S3_ENDPOINT" not in env and "S3_ACCESS_KEY" not in env
            if service == "plugin_daemon":
                assert not [n for n in env if n.startswith(("PLUGIN_S3_", "PLUGIN_AWS_"))]
                if backend == "s3":
                    assert env["PLUGIN_STORAGE_TYPE"] == "aws_s3"
                    assert env["PLUGIN_STORAGE_OSS_BUCKET"] == v["storage_s3_bucket"]
                    if v.get("storage_s3_endpoint"):
                        assert env["S3_USE_AWS"] == "false" and env["S3_ENDPOINT"] == v["storage_s3_endpoint"]
                        assert env["S3_USE_PATH_STYLE"] == "true"
                        assert env["AWS_ACCESS_KEY"] == v["storage_s3_access_key"]
                        assert env["AWS_SECRET_KEY"] == v["storage_s3_secret_key"]
                    else:
                        assert env["S3_USE_AWS"] == "true" and env["S3_USE_AWS_MANAGED_IAM"] == "true"
                        assert env["AWS_REGION"] == v["storage_s3_region"]
                else:
                    assert env["PLUGIN_STORAGE_TYPE"] == "local"
    mount = v.get("storage_path", "/var/lib/dify/storage")
    for host, c in containers.items():
        for service in ("api", "worker"):
            if service in c:
                assert "%s:/app/api/storage" % mount in c[service]["volumes"], (host, service)


def check_database(inventory, envs):
    v = inventory["all"]["vars"]
    groups = groups_of(inventory)
    mysql = v.get("dify_db_type") == "mysql" or not groups.get("dify_postgres")
    db_host = address(inventory, groups["dify_mysql" if mysql else "dify_postgres"][0])
    ssl = v.get("dify_db_ssl_mode", "disable")
    for services in envs.values():
        for service, env in services.items():
            if dc.family(service) == "api":
                assert env["DB_HOST"] == bracket(db_host)                 # ...@{DB_HOST}:{DB_PORT}/...
                if mysql:
                    assert env.get("DB_EXTRAS", "") == ("ssl_check_hostname=false" if ssl == "require" else "")
                else:
                    assert env["DB_EXTRAS"] == "sslmode=%s" % ssl
                if "PGVECTOR_HOST" in env:
                    assert ":" not in env["PGVECTOR_HOST"] or not env["PGVECTOR_HOST"].startswith("[")
                    assert env["PGVECTOR_HOST"] == address(inventory, groups["dify_postgres"][0])
            if service == "plugin_daemon":
                assert env["DB_SSL_MODE"] == ssl
                assert env["DB_HOST"] == (bracket(db_host) if mysql else db_host)   # tcp(%s:%d) / host=%s


def check_healthchecks(version, containers):
    for c in containers.values():
        if "worker" in c:
            test = c["worker"]["healthcheck"]["test"]
            has = ds.has_file(dc.VERSIONS[version]["release"], "api/celery_healthcheck.py")
            assert ("celery_healthcheck" in " ".join(test)) == has
        for service, spec in c.items():
            assert spec["image"].endswith(":" + dc.VERSIONS[version]["images"][dc.family(service)].split(":")[1])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_render_shape(tmp_path, shape, version):
    inventory = for_release(SHAPES[shape](), version)
    out = render(tmp_path, inventory, version, "-e", "render_show_secrets=true")[0]
    envs, containers = rendered(out)
    groups = groups_of(inventory)
    expect = set(h for g in APP_GROUPS + ("dify_api_websocket", "dify_agent_backend", "dify_local_sandbox")
                 for h in groups.get(g, []))
    assert set(envs) == expect
    assert "migration" in envs[groups["dify_api"][0]]
    for host, services in envs.items():
        for service in services:
            text = (out / host / (service + ".env")).read_text()
            assert "Dify %s, service %s" % (version, service) in text
    check_contract(version, envs)
    check_names_per_release(version, envs)
    check_redis(inventory, envs)
    check_public_urls(inventory, envs)
    check_storage(inventory, envs, containers)
    check_database(inventory, envs)
    check_healthchecks(version, containers)


def test_secrets_masked_by_default_and_secrets_file_never_written(tmp_path):
    inventory = SHAPES["single_node"]()
    del inventory["all"]["vars"]["difyops_secrets"]      # no secrets yet: generated for this run only
    out, res = render(tmp_path, inventory, dc.DEFAULT_VERSION)
    assert not (tmp_path / "secrets").exists(), "the render wrote a secrets file"
    assert "generated for this run only, not written" in res.stdout
    env = rendered(out)[0]["dify-1"]["api"]
    assert env["SECRET_KEY"] == env["DB_PASSWORD"] == env["PUBSUB_REDIS_URL"] == env["CELERY_BROKER_URL"] == "********"
    assert env["CONSOLE_API_URL"] == "http://192.0.2.10"
    for host in os.listdir(out):
        for name in os.listdir(out / host):
            assert oct(os.stat(out / host / name).st_mode & 0o777) == "0o600"


def test_render_refuses_a_relative_directory(tmp_path):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(SHAPES["single_node"]()))
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = %s/.collections\n" % _TOP)
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    res = subprocess.run(["ansible-playbook", "-i", "hosts.yml", os.path.join(_TOP, "playbooks", "render-env.yml"),
                          "-e", "render_dir=relative/dir", "-e", "render_gather_facts=false"],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    assert res.returncode != 0 and "absolute path" in res.stdout
