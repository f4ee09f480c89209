# -*- coding: utf-8 -*-
"""dify_env run for real with an external Weaviate or Qdrant: the key from the
fleet's secrets lands in the env file, never in the module's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
_COLL = os.path.join(_TOP, ".collections")

SECRETS = {
    "secret_key": "unit-secret-key-0123456789abcdef",
    "db_password": "unit-db-password-0123",
    "redis_password": "unit-redis-password-0123",
    "redis_sentinel_password": "unit-sentinel-password-0123",
    "sandbox_api_key": "unit-sandbox-key-0123",
    "plugin_daemon_key": "unit-daemon-key-0123",
    "plugin_inner_api_key": "unit-inner-key-0123",
    "weaviate_api_key": "unit-weaviate-key-0123456789",
    "qdrant_api_key": "unit-qdrant-key-0123456789",
}
CONTEXT = {
    "db": {"host": "10.1.0.2"},
    "redis": {"sentinels": ["10.1.0.3:26379"], "master_name": "dify-master"},
    "urls": {"api": "http://10.1.0.4:5001", "sandbox": "http://10.1.0.4:8194",
             "plugin_daemon": "http://10.1.0.4:5002"},
}


def run(tmp_path, context, secrets=None, **params):
    args = {"service": "worker", "context": context, "secrets": secrets or SECRETS, "group": str(os.getgid()),
            "owner": str(os.getuid()), "_ansible_check_mode": False, "_ansible_diff": True}
    args.update(params)
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=_COLL)
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.difyops.fleet.plugins.modules.dify_env",
                           str(path)], capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("store,setting,lines,key", [
    ("weaviate", {"endpoint": "http://10.1.0.9:8080", "grpc_endpoint": "grpc://10.1.0.9:50051"},
     ["VECTOR_STORE=weaviate", "WEAVIATE_ENDPOINT=http://10.1.0.9:8080", "WEAVIATE_GRPC_ENDPOINT=grpc://10.1.0.9:50051",
      "WEAVIATE_API_KEY=unit-weaviate-key-0123456789"], "weaviate_api_key"),
    ("qdrant", {"url": "http://10.1.0.9:6333", "grpc_enabled": True, "grpc_port": 6334},
     ["VECTOR_STORE=qdrant", "QDRANT_URL=http://10.1.0.9:6333", "QDRANT_GRPC_ENABLED=true", "QDRANT_GRPC_PORT=6334",
      "QDRANT_API_KEY=unit-qdrant-key-0123456789"], "qdrant_api_key"),
])
def test_external_store_written_and_key_masked(tmp_path, store, setting, lines, key):
    dest = tmp_path / "worker.env"
    res = run(tmp_path, dict(CONTEXT, vector_store=store, **{store: setting}), dest=str(dest))
    assert res["changed"], res
    text = dest.read_text().splitlines()
    for line in lines:
        assert line in text
    assert not [x for x in text if x.startswith("PGVECTOR_")]
    assert SECRETS[key] not in json.dumps(res)
    assert res["env"][lines[-1].split("=")[0]] == "********"


@pytest.mark.parametrize("store,setting,key,sample", [
    ("weaviate", {"endpoint": "http://10.1.0.9:8080"}, "weaviate_api_key", "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih"),
    ("qdrant", {"url": "http://10.1.0.9:6333"}, "qdrant_api_key", "difyai123456"),
])
def test_sample_key_refused_and_nothing_written(tmp_path, store, setting, key, sample):
    dest = tmp_path / "worker.env"
    res = run(tmp_path, dict(CONTEXT, vector_store=store, **{store: setting}),
              secrets=dict(SECRETS, **{key: sample}), dest=str(dest))
    assert res.get("failed") and "sample value" in res["msg"], res
    assert not dest.exists()


def test_missing_key_refused_with_its_secret_name(tmp_path):
    secrets = dict(SECRETS)
    del secrets["weaviate_api_key"]
    res = run(tmp_path, dict(CONTEXT, vector_store="weaviate", weaviate={"endpoint": "http://10.1.0.9:8080"}),
              secrets=secrets, validate_only=True)
    assert res.get("failed") and "difyops_secrets.weaviate_api_key" in res["msg"], res
