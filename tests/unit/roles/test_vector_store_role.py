# -*- coding: utf-8 -*-
"""roles/vector_store and its wiring into roles/dify, run for real with
ansible-playbook on a local connection.

No image can be pulled here and no Docker Engine runs, so this covers what
happens before Docker: argument specs, the refusals, the env file the
container gets (auth on, anonymous off, the fleet's key), check mode, and the
env Dify builds (WEAVIATE_ENDPOINT/QDRANT_URL at the first dify_vector host).
The container itself is not run (see roles/vector_store/README.md).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
import yaml

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

SECRETS = {
    "secret_key": "unit-secret-key-0123456789abcdef",
    "db_password": "unit-db-password-0123",
    "db_replication_password": "unit-repl-password-0123",
    "redis_password": "unit-redis-password-0123",
    "redis_sentinel_password": "unit-sentinel-password-0123",
    "sandbox_api_key": "unit-sandbox-key-0123",
    "plugin_daemon_key": "unit-daemon-key-0123",
    "plugin_inner_api_key": "unit-inner-key-0123",
    "pgbackrest_cipher_pass": "unit-cipher-pass-0123456789",
    "weaviate_api_key": "unitWeaviateKey0123456789",
    "qdrant_api_key": "unitQdrantKey0123456789ab",
}


def project(tmp_path, host_vars=None, all_vars=None, vector=("vec1",)):
    inv = {"all": {"children": {
        "dify_api": {"hosts": {"api1": None}},
        "dify_worker": {"hosts": {"api1": None}},
        "dify_sandbox": {"hosts": {"api1": None}},
        "dify_plugin_daemon": {"hosts": {"api1": None}},
        "dify_postgres": {"hosts": {"pg1": {"difyops_address": "10.9.0.2"}}},
        "dify_redis": {"hosts": {"r1": {"difyops_address": "10.9.0.3"}}},
        "dify_vector": {"hosts": dict((h, {"difyops_address": "10.9.0.%d" % (7 + i)})
                                      for i, h in enumerate(vector))},
    }, "vars": dict({
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "difyops_secrets": SECRETS,
        # the plan (role difyops.fleet.plan, a dependency of dify) sizes hosts without facts from these
        "difyops_memory_mb": 16384, "difyops_cpus": 4,
        "dify_gunicorn_workers": 2, "dify_celery_concurrency": 2,
        "dify_config_dir": str(tmp_path / "etc-dify"), "dify_storage_dir": str(tmp_path / "storage"),
        "dify_plugin_storage_dir": str(tmp_path / "plugin"), "dify_sandbox_dir": str(tmp_path / "sandbox"),
        "dify_logs_dir": str(tmp_path / "logs"), "dify_state_dir": str(tmp_path / "state"),
        "vector_store_config_dir": str(tmp_path / "etc-vector"),
        "vector_store_data_dir": str(tmp_path / "data"),
        "vector_store_images_archive_dir": str(tmp_path / "images"),
    }, **(all_vars or {}))}}
    for host, hv in (host_vars or {}).items():
        for group in inv["all"]["children"].values():
            if host in group["hosts"]:
                group["hosts"][host] = dict(group["hosts"][host] or {}, **hv)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = %s/.collections\n"
                                          "stdout_callback = default\nresult_format = json\n" % _TOP)
    (tmp_path / "vector.yml").write_text(yaml.safe_dump([{
        "hosts": "vec1", "gather_facts": False,
        "roles": [{"role": "difyops.fleet.vector_store"}]}]))
    (tmp_path / "dify.yml").write_text(yaml.safe_dump([{
        "hosts": "api1", "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_role": {"name": "difyops.fleet.dify"}},
            {"ansible.builtin.copy": {"content": "{{ __dify_contract.env | to_json }}",
                                      "dest": str(tmp_path / "api-env.json"), "mode": "0600"},
             "check_mode": False},
        ]}]))
    return tmp_path


def play(proj, playbook, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(proj / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    return subprocess.run(["ansible-playbook", "-i", str(proj / "hosts.yml"), str(proj / playbook)] + list(args),
                          cwd=str(proj), env=env, capture_output=True, text=True, check=False)


def out(res):
    return res.stdout + res.stderr


@pytest.mark.parametrize("engine", ["weaviate", "qdrant"])
def test_check_mode_on_a_fresh_host_passes_and_writes_nothing(tmp_path, engine):
    proj = project(tmp_path, all_vars={"dify_vector_store": engine})
    res = play(proj, "vector.yml", "--check", "--diff")
    assert res.returncode == 0, out(res)
    assert not (tmp_path / "etc-vector").exists() and not (tmp_path / "data").exists()
    assert SECRETS["%s_api_key" % engine] not in out(res)


@pytest.mark.parametrize("engine,lines", [
    ("weaviate", ["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=false", "AUTHENTICATION_APIKEY_ENABLED=true",
                  "AUTHENTICATION_APIKEY_ALLOWED_KEYS=unitWeaviateKey0123456789",
                  "AUTHENTICATION_APIKEY_USERS=dify", "AUTHORIZATION_ADMINLIST_USERS=dify",
                  "PERSISTENCE_DATA_PATH=/var/lib/weaviate", "DISABLE_TELEMETRY=true",
                  "DEFAULT_VECTORIZER_MODULE=none"]),
    ("qdrant", ["QDRANT__SERVICE__API_KEY=unitQdrantKey0123456789ab", "QDRANT__TELEMETRY_DISABLED=true",
                "QDRANT__STORAGE__STORAGE_PATH=/qdrant/storage"]),
])
def test_env_file_then_stops_at_docker(tmp_path, engine, lines):
    """A real run writes the env file and directories, then needs Docker (absent here) for the image."""
    proj = project(tmp_path, all_vars={"dify_vector_store": engine})
    res = play(proj, "vector.yml")
    assert res.returncode != 0
    assert "TASK [difyops.fleet.vector_store : Pull the image]" in res.stdout, out(res)
    env_file = tmp_path / "etc-vector" / ("%s.env" % engine)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    text = env_file.read_text().splitlines()
    for line in lines:
        assert line in text
    assert SECRETS["%s_api_key" % engine] not in out(res)
    if engine == "qdrant":
        assert (tmp_path / "data" / "storage").is_dir() and (tmp_path / "data" / "snapshots").is_dir()


@pytest.mark.parametrize("over,needle", [
    ({"difyops_secrets": dict(SECRETS, weaviate_api_key="WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih")},
     "weaviate_api_key is one of Dify's public sample values"),
    ({"difyops_secrets": dict(SECRETS, weaviate_api_key="difyai123456")},
     "weaviate_api_key is one of Dify's public sample values"),
    ({"difyops_secrets": {k: v for k, v in SECRETS.items() if k != "weaviate_api_key"}},
     "weaviate_api_key is empty"),
    ({"vector_store_bind_address": "0.0.0.0"}, "never a wildcard"),
    ({"dify_vector_store": "pgvector"}, "value of vector_store_engine must be one of"),
    ({"vector_store_dify_version": "1.99.0"}, "known lines: 1.13"),
    ({"vector_store_env": {"AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true"}}, "vector_store_env may not set"),
])
def test_refusals_before_anything_changes(tmp_path, over, needle):
    proj = project(tmp_path, all_vars=over)
    res = play(proj, "vector.yml", "--check")
    assert res.returncode != 0 and needle in out(res), out(res)
    # the refused key itself is never shown
    assert "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih" not in out(res)


@pytest.mark.parametrize("engine,name,value,key", [
    ("weaviate", "WEAVIATE_ENDPOINT", "http://10.9.0.7:8080", "WEAVIATE_API_KEY"),
    ("qdrant", "QDRANT_URL", "http://10.9.0.7:6333", "QDRANT_API_KEY"),
])
def test_dify_env_points_at_first_vector_host(tmp_path, engine, name, value, key):
    proj = project(tmp_path, all_vars={"dify_vector_store": engine}, vector=("vec1", "vec2"))
    res = play(proj, "dify.yml", "--check")
    assert res.returncode == 0, out(res)
    env = json.loads((tmp_path / "api-env.json").read_text())
    assert env["VECTOR_STORE"] == engine and env[name] == value and env[key] == "********"
    if engine == "weaviate":
        assert env["WEAVIATE_GRPC_ENDPOINT"] == "grpc://10.9.0.7:50051"
    assert not [k for k in env if k.startswith("PGVECTOR_")]
    assert SECRETS["%s_api_key" % engine] not in out(res)


def test_dify_follows_ports_set_for_the_vector_host(tmp_path):
    proj = project(tmp_path, all_vars={"dify_vector_store": "weaviate"},
                   host_vars={"vec1": {"vector_store_weaviate_http_port": 18080}})
    res = play(proj, "dify.yml", "--check")
    assert res.returncode == 0, out(res)
    assert json.loads((tmp_path / "api-env.json").read_text())["WEAVIATE_ENDPOINT"] == "http://10.9.0.7:18080"


def test_dify_external_endpoint_without_vector_hosts(tmp_path):
    proj = project(tmp_path, all_vars={"dify_vector_store": "qdrant", "dify_qdrant_url": "https://q.example.net:6333"},
                   vector=())
    res = play(proj, "dify.yml", "--check")
    assert res.returncode == 0, out(res)
    assert json.loads((tmp_path / "api-env.json").read_text())["QDRANT_URL"] == "https://q.example.net:6333"


def test_dify_external_endpoint_missing_is_named(tmp_path):
    proj = project(tmp_path, all_vars={"dify_vector_store": "weaviate"}, vector=())
    res = play(proj, "dify.yml", "--check")
    assert res.returncode != 0 and "set dify_weaviate_endpoint" in out(res), out(res)


def test_dify_default_pgvector_untouched_by_the_vector_group(tmp_path):
    proj = project(tmp_path, vector=())
    res = play(proj, "dify.yml", "--check")
    assert res.returncode == 0, out(res)
    env = json.loads((tmp_path / "api-env.json").read_text())
    assert env["VECTOR_STORE"] == "pgvector" and env["PGVECTOR_HOST"] == "10.9.0.2"


# The store Dify uses must be the one the fleet's own vector host runs: a rule
# across hosts, checked by preflight (tests/unit/plugins/module_utils/test_preflight.py).
