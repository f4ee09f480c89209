# -*- coding: utf-8 -*-
"""dify_env run for real with an external Weaviate or Qdrant: the key from the
fleet's secrets lands in the env file, never in the module's output."""

from __future__ import annotations

import json

import pytest

# The module runner and the base context/secrets of the dify_env tests.
from test_dify_env import CONTEXT, SECRETS as BASE_SECRETS, run as run_dify_env

SECRETS = dict(BASE_SECRETS, weaviate_api_key="unit-weaviate-key-0123456789",
               qdrant_api_key="unit-qdrant-key-0123456789")


def run(tmp_path, context, secrets=None, **params):
    return run_dify_env(tmp_path, service="worker", context=context, secrets=secrets or SECRETS, **params)


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
