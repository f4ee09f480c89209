# -*- coding: utf-8 -*-
"""Dify's env contract for the vector store: pgvector by default, Weaviate/Qdrant
as external endpoints or the fleet's own container, keys from the fleet's secrets."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as dc
from ansible_collections.difyops.fleet.plugins.module_utils import secrets as fleet_secrets

SECRETS = {
    "secret_key": "k" * 42,
    "db_password": "db-pass-Secret1",
    "redis_password": "redis-password-1",
    "redis_sentinel_password": "sentinel-pass",
    "sandbox_api_key": "sandbox-key-1234",
    "plugin_daemon_key": "daemon-key-1234",
    "plugin_inner_api_key": "inner-key-1234",
    "weaviate_api_key": "weaviate-key-0123456789abcdef",
    "qdrant_api_key": "qdrant-key-0123456789abcdef",
}
CTX = {
    "db": {"host": "10.0.0.11"},
    "redis": {"sentinels": ["10.0.0.21:26379"], "master_name": "dify"},
    "event_bus": {"url": "redis://10.0.0.21:6379"},
    "public_url": "https://dify.example.com",
    "urls": {"api": "http://10.0.0.31:5001", "sandbox": "http://10.0.0.41:8194",
             "plugin_daemon": "http://10.0.0.42:5002"},
    "secrets": SECRETS,
}
WEAVIATE = {"endpoint": "http://10.0.0.61:8080", "grpc_endpoint": "grpc://10.0.0.61:50051"}
QDRANT = {"url": "http://10.0.0.62:6333", "grpc_enabled": False, "grpc_port": 6334, "client_timeout": 20,
          "replication_factor": 1}
VECTOR_SERVICES = ("api", "worker", "beat", "migration")


def ctx(**over):
    c = copy.deepcopy(CTX)
    c.update(over)
    return c


def validate(envs):
    return dc.validate_all(envs)


def errors_of(c, extra=None):
    return validate(dc.build_all(c, extra))


def test_pgvector_is_the_default_and_uses_dify_database():
    envs = dc.build_all(ctx())
    assert validate(envs) == []
    api = envs["api"]
    assert api["VECTOR_STORE"] == "pgvector"
    assert api["PGVECTOR_HOST"] == "10.0.0.11" and api["PGVECTOR_PASSWORD"] == SECRETS["db_password"]
    assert not [k for k in api if k.startswith(("WEAVIATE_", "QDRANT_"))]


def test_weaviate_external_endpoint():
    envs = dc.build_all(ctx(vector_store="weaviate", weaviate=dict(WEAVIATE, tokenization="word")))
    assert validate(envs) == []
    for service in VECTOR_SERVICES:
        env = envs[service]
        assert env["VECTOR_STORE"] == "weaviate"
        assert env["WEAVIATE_ENDPOINT"] == "http://10.0.0.61:8080"
        assert env["WEAVIATE_GRPC_ENDPOINT"] == "grpc://10.0.0.61:50051"
        assert env["WEAVIATE_API_KEY"] == SECRETS["weaviate_api_key"]
        assert env["WEAVIATE_TOKENIZATION"] == "word"
        assert not [k for k in env if k.startswith(("PGVECTOR_", "QDRANT_"))]
    # services that never touch vectors get none of it
    for service in ("web", "sandbox", "plugin_daemon"):
        assert not [k for k in envs[service] if k.startswith("WEAVIATE_")]


def test_qdrant_external_endpoint():
    envs = dc.build_all(ctx(vector_store="qdrant", qdrant=QDRANT))
    assert validate(envs) == []
    env = envs["worker"]
    assert env["VECTOR_STORE"] == "qdrant"
    assert env["QDRANT_URL"] == "http://10.0.0.62:6333"
    assert env["QDRANT_API_KEY"] == SECRETS["qdrant_api_key"]
    assert env["QDRANT_GRPC_ENABLED"] == "false" and env["QDRANT_GRPC_PORT"] == "6334"
    assert env["QDRANT_CLIENT_TIMEOUT"] == "20" and env["QDRANT_REPLICATION_FACTOR"] == "1"
    assert not [k for k in env if k.startswith(("PGVECTOR_", "WEAVIATE_"))]


def test_qdrant_grpc_on():
    env = dc.build_all(ctx(vector_store="qdrant", qdrant=dict(QDRANT, grpc_enabled=True)))["api"]
    assert env["QDRANT_GRPC_ENABLED"] == "true"


def test_empty_settings_are_left_out_not_written_empty():
    env = dc.build_all(ctx(vector_store="weaviate", weaviate={"endpoint": "http://10.0.0.61:8080",
                                                              "grpc_endpoint": "", "tokenization": None}))["api"]
    assert "WEAVIATE_GRPC_ENDPOINT" not in env and "WEAVIATE_TOKENIZATION" not in env


@pytest.mark.parametrize("store,setting,needle", [
    ("weaviate", {}, "WEAVIATE_ENDPOINT; set dify_weaviate_endpoint"),
    ("qdrant", {}, "QDRANT_URL; set dify_qdrant_url"),
])
def test_endpoint_missing_is_named(store, setting, needle):
    errors = errors_of(ctx(vector_store=store, **{store: setting}))
    assert any(needle in e and e.startswith("api:") for e in errors), errors
    assert any(needle in e and e.startswith("worker:") for e in errors), errors


@pytest.mark.parametrize("store,setting,key,name", [
    ("weaviate", WEAVIATE, "weaviate_api_key", "WEAVIATE_API_KEY"),
    ("qdrant", QDRANT, "qdrant_api_key", "QDRANT_API_KEY"),
])
def test_api_key_must_come_from_the_secrets(store, setting, key, name):
    s = dict(SECRETS)
    del s[key]
    errors = errors_of(ctx(vector_store=store, secrets=s, **{store: setting}))
    assert any(name in e and "difyops_secrets.%s" % key in e for e in errors), errors


@pytest.mark.parametrize("store,setting,key", [
    ("weaviate", WEAVIATE, "weaviate_api_key"),
    ("qdrant", QDRANT, "qdrant_api_key"),
])
@pytest.mark.parametrize("sample", ["WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih", "difyai123456", "DIFYAI123456"])
def test_dify_sample_keys_refused(store, setting, key, sample):
    errors = errors_of(ctx(vector_store=store, secrets=dict(SECRETS, **{key: sample}), **{store: setting}))
    assert any("sample value" in e for e in errors), errors
    # the fleet secrets check refuses them too, before any env is built
    assert fleet_secrets.check_secret(key, sample) and "sample" in fleet_secrets.check_secret(key, sample)


@pytest.mark.parametrize("name,value", [("WEAVIATE_API_KEY", "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih"),
                                        ("QDRANT_API_KEY", "difyai123456")])
def test_sample_keys_refused_through_vector_env_too(name, value):
    store = "weaviate" if name.startswith("W") else "qdrant"
    errors = errors_of(ctx(vector_store=store, weaviate=WEAVIATE, qdrant=QDRANT, vector_env={name: value}))
    assert any(name in e and "sample value" in e for e in errors), errors


@pytest.mark.parametrize("name,value", [("WEAVIATE_ENDPOINT", "http://weaviate:8080"),
                                        ("WEAVIATE_GRPC_ENDPOINT", "grpc://weaviate:50051"),
                                        ("QDRANT_URL", "http://qdrant:6333"),
                                        ("MILVUS_URI", "http://milvus-standalone:19530")])
def test_compose_names_refused_in_vector_addresses(name, value):
    store = {"W": "weaviate", "Q": "qdrant", "M": "milvus"}[name[0]]
    errors = errors_of(ctx(vector_store=store, weaviate=WEAVIATE, qdrant=QDRANT, vector_env={name: value}))
    assert any(name in e and "compose host name" in e for e in errors), errors


@pytest.mark.parametrize("store,setting,value,name", [
    ("weaviate", {"endpoint": "10.0.0.61:8080"}, None, "WEAVIATE_ENDPOINT"),
    ("weaviate", dict(WEAVIATE, grpc_endpoint="10.0.0.61:50051"), None, "WEAVIATE_GRPC_ENDPOINT"),
    ("qdrant", {"url": "10.0.0.62:6333"}, None, "QDRANT_URL"),
])
def test_scheme_required(store, setting, value, name):
    errors = errors_of(ctx(vector_store=store, **{store: setting}))
    assert any(name in e and "must start with" in e for e in errors), errors


def test_https_endpoint_accepted():
    c = ctx(vector_store="weaviate", weaviate={"endpoint": "https://cluster.weaviate.cloud"})
    assert errors_of(c) == []


@pytest.mark.parametrize("name", ["WEAVIATE_API_KEY", "QDRANT_API_KEY"])
def test_vector_key_must_be_equal_on_api_and_worker(name):
    store = "weaviate" if name.startswith("W") else "qdrant"
    c = ctx(vector_store=store, weaviate=WEAVIATE, qdrant=QDRANT)
    errors = errors_of(c, {"worker": {name: "another-key-0123456789abcdef"}})
    assert any("must be equal" in e and name in e for e in errors), errors


def test_vector_env_still_overrides_for_other_stores():
    c = ctx(vector_store="milvus", vector_env={"MILVUS_URI": "http://10.0.0.63:19530",
                                               "MILVUS_USER": "dify", "MILVUS_PASSWORD": "milvus-pass-0123456789"})
    envs = dc.build_all(c)
    assert validate(envs) == []
    assert envs["api"]["MILVUS_URI"] == "http://10.0.0.63:19530"


@pytest.mark.parametrize("store,needle", [("milvus", "MILVUS_URI"), ("chroma", "CHROMA_HOST"),
                                          ("opensearch", "OPENSEARCH_HOST"),
                                          ("elasticsearch", "ELASTICSEARCH_HOST or ELASTICSEARCH_CLOUD_URL")])
def test_other_stores_need_their_address(store, needle):
    errors = errors_of(ctx(vector_store=store))
    assert any(needle in e and "dify_vector_env" in e for e in errors), errors


def test_secrets_of_the_vector_store_are_masked():
    envs = dc.build_all(ctx(vector_store="weaviate", weaviate=WEAVIATE))
    shown = dc.render(dc.masked(envs["api"]))
    assert SECRETS["weaviate_api_key"] not in shown
    assert "WEAVIATE_API_KEY=********" in shown
    assert "WEAVIATE_ENDPOINT=http://10.0.0.61:8080" in shown
