# -*- coding: utf-8 -*-
"""Dify's Redis/Celery environment rendered by redis_contract.dify_redis_env."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

import pytest
from hypothesis import given, strategies as st

from ansible_collections.difyops.fleet.plugins.module_utils.secrets import is_sample_value
from ansible_collections.difyops.fleet.plugins.module_utils.redis_contract import (
    ENV_KEYS,
    RedisContractError,
    dify_redis_env,
)

PW = "master-pw-0123456789"
SPW = "sentinel-pw-0123456789"


def sentinel_env(**kw):
    args = dict(sentinels=["10.0.0.1", "10.0.0.2:26380", "[fd00::3]:26379"], password=PW,
                sentinel_password=SPW, master_name="dify-master")
    args.update(kw)
    return dify_redis_env(**args)


def test_sentinel_form_matches_difys_contract():
    env = sentinel_env()
    assert env["REDIS_USE_SENTINEL"] == "true"
    assert env["REDIS_SENTINELS"] == "10.0.0.1:26379,10.0.0.2:26380,[fd00::3]:26379"
    assert env["REDIS_SENTINEL_SERVICE_NAME"] == "dify-master"
    assert env["REDIS_SENTINEL_PASSWORD"] == SPW
    assert env["REDIS_PASSWORD"] == PW
    assert env["REDIS_DB"] == "0"
    assert env["CELERY_USE_SENTINEL"] == "true"
    assert env["CELERY_SENTINEL_MASTER_NAME"] == "dify-master"
    assert env["CELERY_SENTINEL_PASSWORD"] == SPW
    assert env["CELERY_BROKER_URL"] == ";".join([
        "sentinel://:%s@10.0.0.1:26379/1" % PW,
        "sentinel://:%s@10.0.0.2:26380/1" % PW,
        "sentinel://:%s@[fd00::3]:26379/1" % PW,
    ])
    # issue 12: REDIS_HOST=/REDIS_PORT= (empty) stopped Dify (PositiveInt) and the plugin daemon (envconfig)
    assert "REDIS_HOST" not in env and "REDIS_PORT" not in env
    assert "REDIS_USE_CLUSTERS" not in env and "BROKER_USE_SSL" not in env


def test_only_known_keys_never_an_empty_value_all_strings():
    plain = dify_redis_env(sentinels=[], password=PW, host="10.0.0.9")
    for env in (sentinel_env(), sentinel_env(sentinel_password=None), plain):
        assert set(env) <= set(ENV_KEYS)
        assert all(isinstance(v, str) and v != "" for v in env.values()), env
    assert "REDIS_SENTINEL_PASSWORD" not in sentinel_env(sentinel_password=None)
    assert "REDIS_USERNAME" not in plain and "REDIS_SENTINELS" not in plain


def test_plain_form_for_one_host():
    env = dify_redis_env(sentinels=None, password=PW, host="10.0.0.9", port=6380, db=2, celery_db=3)
    assert env["REDIS_USE_SENTINEL"] == "false"
    assert env["CELERY_USE_SENTINEL"] == "false"
    assert env["REDIS_HOST"] == "10.0.0.9"
    assert env["REDIS_PORT"] == "6380"
    assert env["REDIS_DB"] == "2"
    assert env["CELERY_BROKER_URL"] == "redis://:%s@10.0.0.9:6380/3" % PW
    assert "REDIS_SENTINELS" not in env


def test_plain_form_tls_uses_rediss():
    env = dify_redis_env(sentinels=[], password=PW, host="redis.example", use_ssl=True)
    assert env["CELERY_BROKER_URL"].startswith("rediss://")   # DifyConfig's BROKER_USE_SSL follows the scheme
    assert env["REDIS_USE_SSL"] == "true" and "BROKER_USE_SSL" not in env


def test_comma_string_of_sentinels_accepted():
    env = dify_redis_env(sentinels="a:1,b:2", password=PW, sentinel_password=SPW)
    assert env["REDIS_SENTINELS"] == "a:1,b:2"


@pytest.mark.parametrize("kwargs, words", [
    (dict(password="difyai123456"), ["sample"]),
    (dict(password=""), ["password", "difyops_secrets.redis_password"]),
    (dict(sentinel_password="difyai123456"), ["sentinel_password"]),
    (dict(db=1, celery_db=1), ["db=1", "celery_db=1"]),
    (dict(db=16), ["db=16"]),
    (dict(master_name="my master"), ["master_name"]),
    (dict(sentinels=["h:notaport"]), ["sentinels", "notaport"]),
    (dict(use_ssl=True), ["use_ssl"]),
    (dict(sentinel_socket_timeout=0), ["sentinel_socket_timeout"]),
])
def test_bad_input_names_the_argument(kwargs, words):
    with pytest.raises(RedisContractError) as err:
        sentinel_env(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_no_sentinels_and_no_host_is_refused():
    with pytest.raises(RedisContractError) as err:
        dify_redis_env(sentinels=[], password=PW)
    assert "host" in str(err.value)


# Passwords with URL metacharacters must survive the broker URL (kombu unquotes).
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
               min_size=1, max_size=40).filter(lambda s: not is_sample_value(s)))
def test_broker_url_round_trips_any_password(password):
    env = dify_redis_env(sentinels=["s1:26379", "s2:26379"], password=password, sentinel_password=SPW)
    for part in env["CELERY_BROKER_URL"].split(";"):
        url = urlparse(part)
        assert url.scheme == "sentinel"
        assert unquote(url.password) == password
        assert url.path == "/1"
    assert env["REDIS_PASSWORD"] == password
    plain = dify_redis_env(sentinels=[], password=password, host="h")
    assert unquote(urlparse(plain["CELERY_BROKER_URL"]).password) == password


@given(st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
                          st.integers(min_value=1, max_value=65535)), min_size=1, max_size=7))
def test_sentinel_list_round_trips_dify_parsing(pairs):
    env = dify_redis_env(sentinels=["%s:%d" % p for p in pairs], password=PW, sentinel_password=SPW)
    # Dify's older parser: split(',') then split(':').
    parsed = [(n.split(":")[0], int(n.split(":")[1])) for n in env["REDIS_SENTINELS"].split(",")]
    assert parsed == list(pairs)
    assert len(env["CELERY_BROKER_URL"].split(";")) == len(pairs)
