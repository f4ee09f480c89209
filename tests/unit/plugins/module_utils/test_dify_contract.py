# -*- coding: utf-8 -*-
"""Dify's env contract: built environments, and what validation refuses."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.difyops.fleet.plugins.module_utils import dify_contract as dc

SECRETS = {
    "secret_key": "k" * 42,
    "db_password": "db-pass-Secret1",
    "redis_password": "redis:p@ss/word",
    "redis_sentinel_password": "sentinel-pass",
    "sandbox_api_key": "sandbox-key-1234",
    "plugin_daemon_key": "daemon-key-1234",
    "plugin_inner_api_key": "inner-key-1234",
}
CTX = {
    "db": {"host": "10.0.0.11", "port": 5432, "username": "dify", "database": "dify", "plugin_database": "dify_plugin"},
    "redis": {"sentinels": ["10.0.0.21:26379", "10.0.0.22:26379", "10.0.0.23:26379"], "master_name": "dify"},
    "event_bus": {"url": "redis://10.0.0.22:6379"},
    "public_url": "https://dify.example.com",
    "urls": {"api": "http://10.0.0.31:5001", "sandbox": "http://10.0.0.41:8194",
             "plugin_daemon": "http://10.0.0.42:5002", "ssrf_proxy": "http://10.0.0.51:3128"},
    "sizing": {"gunicorn_workers": 5, "celery_concurrency": 7, "sqlalchemy_pool_size": 12,
               "sqlalchemy_max_overflow": 4},
    "secrets": SECRETS,
}


def ctx(**over):
    c = copy.deepcopy(CTX)
    c.update(over)
    return c


def validate(envs, version=dc.DEFAULT_VERSION, allow_unknown=()):
    return dc.validate_all(envs, version, list(allow_unknown))


def test_default_context_is_valid_and_uses_fleet_addresses():
    envs = dc.build_all(ctx())
    assert validate(envs) == []
    api = envs["api"]
    assert api["DB_HOST"] == "10.0.0.11"
    assert api["CODE_EXECUTION_ENDPOINT"] == "http://10.0.0.41:8194"
    assert api["PLUGIN_DAEMON_URL"] == "http://10.0.0.42:5002"
    assert api["SSRF_PROXY_HTTP_URL"] == "http://10.0.0.51:3128"
    assert api["SERVER_WORKER_AMOUNT"] == "5"
    assert api["SQLALCHEMY_POOL_SIZE"] == "12" and api["SQLALCHEMY_MAX_OVERFLOW"] == "4"
    assert envs["worker"]["CELERY_WORKER_AMOUNT"] == "7"
    assert api["LOG_OUTPUT_FORMAT"] == "json"
    assert envs["plugin_daemon"]["DB_DATABASE"] == "dify_plugin"
    assert envs["plugin_daemon"]["DIFY_INNER_API_URL"] == "http://10.0.0.31:5001"
    assert envs["sandbox"]["HTTP_PROXY"] == "http://10.0.0.51:3128"


def test_migration_flag_per_service():
    envs = dc.build_all(ctx())
    for s in ("api", "worker", "beat"):
        assert envs[s]["MIGRATION_ENABLED"] == "false"
    assert envs["migration"]["MIGRATION_ENABLED"] == "true"
    assert envs["migration"]["MODE"] == "migration"


def test_sentinel_broker_url_quotes_master_password_and_uses_db_1():
    env = dc.build_all(ctx())["worker"]
    parts = env["CELERY_BROKER_URL"].split(";")
    assert len(parts) == 3
    assert parts[0] == "sentinel://:redis%3Ap%40ss%2Fword@10.0.0.21:26379/1"
    assert env["CELERY_SENTINEL_PASSWORD"] == "sentinel-pass"
    assert env["REDIS_SENTINELS"] == "10.0.0.21:26379,10.0.0.22:26379,10.0.0.23:26379"
    assert env["REDIS_SENTINEL_SERVICE_NAME"] == env["CELERY_SENTINEL_MASTER_NAME"] == "dify"


def test_plugin_daemon_gets_no_celery_variables():
    env = dc.build_all(ctx())["plugin_daemon"]
    assert not [k for k in env if k.startswith("CELERY_")]
    assert env["REDIS_USE_SENTINEL"] == "true"


def test_direct_redis_without_sentinels():
    env = dc.build_all(ctx(redis={"host": "10.0.0.21", "port": 6379}))["api"]
    assert env["REDIS_USE_SENTINEL"] == "false"
    assert env["CELERY_BROKER_URL"].startswith("redis://:") and env["CELERY_BROKER_URL"].endswith("@10.0.0.21:6379/1")


def test_redis_env_from_redis_contract_wins():
    env = dc.build_all(ctx(redis_env={"REDIS_SENTINEL_SERVICE_NAME": "other",
                                      "CELERY_SENTINEL_MASTER_NAME": "other", "REDIS_USE_SENTINEL": "true",
                                      "REDIS_SENTINELS": "10.0.0.21:26379", "REDIS_PASSWORD": "x" * 20}))
    assert env["api"]["REDIS_SENTINEL_SERVICE_NAME"] == "other"
    assert "CELERY_SENTINEL_MASTER_NAME" not in env["plugin_daemon"]


@pytest.mark.parametrize("name,value", [
    ("VECTOR_STORE", "faiss"), ("STORAGE_TYPE", "ftp"), ("DB_TYPE", "sqlite"), ("LOG_OUTPUT_FORMAT", "xml")])
def test_bad_choices_are_refused(name, value):
    envs = dc.build_all(ctx(), {"api": {name: value}})
    errors = validate(envs)
    assert any(name in e and value in e for e in errors)


def test_unknown_name_refused_unless_allowed():
    envs = dc.build_all(ctx(), {"all": {"NOT_A_DIFY_VAR": "1"}})
    assert any("NOT_A_DIFY_VAR" in e and "dify_env_allow_unknown" in e for e in validate(envs))
    assert validate(envs, allow_unknown=["NOT_A_DIFY_VAR"]) == []


def test_opendal_prefix_passes_through():
    envs = dc.build_all(ctx(storage_env={"STORAGE_TYPE": "opendal", "OPENDAL_SCHEME": "s3",
                                         "OPENDAL_S3_BUCKET": "dify", "OPENDAL_S3_REGION": "eu-west-1"}))
    assert validate(envs) == []


@pytest.mark.parametrize("name,value", [
    ("DB_HOST", "db_postgres"), ("REDIS_HOST", "redis"), ("CODE_EXECUTION_ENDPOINT", "http://sandbox:8194"),
    ("PLUGIN_DAEMON_URL", "http://plugin_daemon:5002"), ("SSRF_PROXY_HTTP_URL", "http://ssrf_proxy:3128"),
    ("WEAVIATE_ENDPOINT", "http://weaviate:8080"), ("PLUGIN_DIFY_INNER_API_URL", "http://api:5001")])
def test_compose_host_names_refused(name, value):
    envs = dc.build_all(ctx(), {"api": {name: value}})
    assert any(name in e and "compose host name" in e for e in validate(envs))


def test_public_hostnames_are_not_mistaken_for_compose_names():
    envs = dc.build_all(ctx(), {"api": {"MARKETPLACE_API_URL": "https://api.marketplace.example",
                                        "CONSOLE_API_URL": "https://dify.example/api"}})
    assert validate(envs) == []


@pytest.mark.parametrize("key", ["secret_key", "db_password", "sandbox_api_key", "plugin_daemon_key",
                                 "plugin_inner_api_key", "redis_password"])
@pytest.mark.parametrize("sample", list(dc.SAMPLE_SECRETS))
def test_sample_secrets_refused(key, sample):
    s = dict(SECRETS)
    s[key] = sample
    errors = validate(dc.build_all(ctx(secrets=s)))
    assert any("sample" in e for e in errors)


def test_empty_secret_refused():
    s = dict(SECRETS, secret_key="")
    assert any("SECRET_KEY is empty" in e for e in validate(dc.build_all(ctx(secrets=s))))


@pytest.mark.parametrize("service,name", [("sandbox", "API_KEY"), ("plugin_daemon", "SERVER_KEY"),
                                          ("worker", "SECRET_KEY"), ("plugin_daemon", "DIFY_INNER_API_KEY")])
def test_shared_secrets_must_match(service, name):
    envs = dc.build_all(ctx(), {service: {name: "something-else-entirely"}})
    assert any("must be equal" in e for e in validate(envs))


def test_migration_enabled_on_long_running_refused():
    envs = dc.build_all(ctx(), {"worker": {"MIGRATION_ENABLED": "true"}})
    assert any("MIGRATION_ENABLED must be false" in e for e in validate(envs))


def test_unknown_version_refused():
    with pytest.raises(dc.ContractError, match="no contract data"):
        dc.validate_all(dc.build_all(ctx()), version="0.0.1")


def test_missing_address_is_named():
    c = ctx()
    del c["urls"]["sandbox"]
    with pytest.raises(dc.ContractError, match="urls.sandbox"):
        dc.build_all(c)


def test_masking_hides_every_secret_value():
    envs = dc.build_all(ctx())
    for service, env in envs.items():
        shown = dc.render(dc.masked(env))
        for value in SECRETS.values():
            assert value not in shown, (service, value)
        assert "redis%3Ap%40ss%2Fword" not in shown


def test_masked_diff_marks_changed_secret():
    before = {"SECRET_KEY": "a" * 40, "DB_HOST": "1.1.1.1"}
    after = {"SECRET_KEY": "b" * 40, "DB_HOST": "1.1.1.2"}
    b, a = dc.masked_diff_text(before, after)
    assert "a" * 40 not in b and "b" * 40 not in a
    assert "SECRET_KEY=******** (changed)" in a


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"\A[A-Z][A-Z0-9_]{0,20}\Z"),
                       st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                               max_size=40), max_size=8))
def test_render_parse_round_trip(env):
    assert dc.parse(dc.render(env, "header\nline")) == env


def test_names_of_every_release_cover_what_is_built():
    for version in dc.VERSIONS:
        envs = dc.build_all(ctx(), version=version)
        assert validate(envs, version) == []


@pytest.mark.parametrize("version", sorted(dc.VERSIONS))
def test_env_from_the_redis_contract_filter_validates(version):
    """Before: the filter rendered REDIS_HOST= and REDIS_PORT= (empty) in Sentinel mode (Dify and the daemon
    stop at start), BROKER_USE_SSL (the api never reads it) and REDIS_USE_CLUSTERS (plugin daemon 0.5.3 neither)."""
    from ansible_collections.difyops.fleet.plugins.filter.redis import FilterModule
    render = FilterModule().filters()["dify_redis_env"]
    redis = render(["10.0.0.21", "10.0.0.22", "10.0.0.23"], password=SECRETS["redis_password"],
                   sentinel_password=SECRETS["redis_sentinel_password"])
    envs = dc.build_all(ctx(redis_env=redis), version=version)
    assert validate(envs, version) == []
    assert envs["worker"]["CELERY_BROKER_URL"] == redis["CELERY_BROKER_URL"]
    assert "CELERY_BROKER_URL" not in envs["plugin_daemon"]
    assert envs["plugin_daemon"]["REDIS_SENTINELS"] == "10.0.0.21:26379,10.0.0.22:26379,10.0.0.23:26379"


def test_mysql_database_type_reaches_every_service():
    c = ctx(db={"type": "mysql", "host": "10.0.0.12", "port": 3306, "username": "dify", "database": "dify",
                "plugin_database": "dify_plugin"},
            vector_store="qdrant", qdrant={"url": "http://10.0.0.61:6333"},
            secrets=dict(SECRETS, qdrant_api_key="qdrant-key-98765432"))
    envs = dc.build_all(c)
    assert validate(envs) == []
    for svc in ("api", "worker", "beat", "migration", "plugin_daemon"):
        assert envs[svc]["DB_TYPE"] == "mysql" and envs[svc]["DB_HOST"] == "10.0.0.12"
        assert envs[svc]["DB_PORT"] == "3306"
    assert envs["plugin_daemon"]["DB_DATABASE"] == "dify_plugin"
    assert not any(k.startswith("PGVECTOR_") for k in envs["api"])


def test_mysql_with_pgvector_needs_a_postgresql_host():
    db = {"type": "mysql", "host": "10.0.0.12", "port": 3306}
    with pytest.raises(dc.ContractError) as err:
        dc.build_all(ctx(db=db))
    assert "VECTOR_STORE=pgvector needs PostgreSQL but DB_TYPE is mysql" in str(err.value)
    envs = dc.build_all(ctx(db=db, pgvector={"host": "10.0.0.11", "port": 5432}))
    assert envs["api"]["PGVECTOR_HOST"] == "10.0.0.11" and envs["api"]["DB_HOST"] == "10.0.0.12"
    assert envs["api"]["PGVECTOR_PORT"] == "5432"


@pytest.mark.parametrize("version", sorted(dc.VERSIONS))
def test_builders_render_only_names_dify_reads(version):
    """Before: PLUGIN_DIFY_INNER_API_KEY/URL (compose names; the api reads INNER_API_KEY_FOR_PLUGIN),
    BROKER_USE_SSL (computed by DifyConfig), REDIS_USE_CLUSTERS (daemon 0.5.3) and EDITION (1.16.1 web)."""
    envs = dc.build_all(ctx(), version=version)
    assert dc.validate_all(envs, version) == []
    for service, env in envs.items():
        assert set(env) <= dc.dify_schema.known_names(dc.VERSIONS[version]["release"], dc.family(service)) | {
            n for n in env if n.startswith("OPENDAL_")}, service
