# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Dify's side of the Redis contract: the environment Dify's api, worker, beat
and plugin daemon need to reach the Redis this collection deploys.

One pure function, ``dify_redis_env``, used by the ``dify_redis_env`` filter
and by the app tier. With Sentinels it renders the sentinel form (Dify's
``REDIS_USE_SENTINEL`` + Celery's ``sentinel://`` broker URL); with one Redis
host and no Sentinels, the plain form. Only what applies is rendered, never
an empty value: ``REDIS_PORT=`` stops Dify (PositiveInt) and the plugin
daemon (envconfig) at start, so the sentinel form has no REDIS_HOST/PORT.
"""

from __future__ import annotations

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported
    raise

from ansible_collections.difyops.fleet.plugins.module_utils.redis_sentinel import (
    SentinelError,
    format_endpoint,
    parse_endpoint,
)
# Dify's public sample values: one list for the whole collection.
from ansible_collections.difyops.fleet.plugins.module_utils.secrets import is_sample_value

# Every key the function may return (each only where it applies, never empty).
# Not BROKER_USE_SSL (DifyConfig computes it from the broker URL's scheme) nor
# REDIS_USE_CLUSTERS (false by default; cluster mode is not deployed here).
ENV_KEYS = (
    "REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_DB", "REDIS_USE_SSL",
    "REDIS_USE_SENTINEL", "REDIS_SENTINELS", "REDIS_SENTINEL_SERVICE_NAME",
    "REDIS_SENTINEL_USERNAME", "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_SOCKET_TIMEOUT",
    "CELERY_BACKEND", "CELERY_BROKER_URL", "CELERY_USE_SENTINEL",
    "CELERY_SENTINEL_MASTER_NAME", "CELERY_SENTINEL_PASSWORD", "CELERY_SENTINEL_SOCKET_TIMEOUT",
)


def _set(env):
    """Only the values that are set: an empty one is never rendered."""
    return dict((k, v) for k, v in env.items() if v not in (None, ""))


class RedisContractError(ValueError):
    """Bad input; the message names the argument, the value and the fix."""


def _check_password(name, value, required=True):
    if value is None or value == "":
        if required:
            raise RedisContractError(
                "%s is empty: set difyops_secrets.%s (generated once per fleet)"
                % (name, "redis_password" if name == "password" else "redis_sentinel_password"))
        return ""
    if not isinstance(value, str):
        raise RedisContractError("%s must be a string, got %s" % (name, type(value).__name__))
    if is_sample_value(value):
        raise RedisContractError(
            "%s is one of Dify's public sample values: generate a new one (difyops_secrets)" % name)
    if any(c in value for c in "\r\n"):
        raise RedisContractError("%s contains a line break; env files cannot carry it: choose another" % name)
    return value


def _check_db(name, value):
    try:
        db = int(value)
    except (TypeError, ValueError):
        raise RedisContractError("%s=%r: use a database number 0-15" % (name, value)) from None
    if isinstance(value, bool) or not 0 <= db <= 15:
        raise RedisContractError("%s=%r: use a database number 0-15" % (name, value))
    return db


def _userinfo(username, password):
    return "%s:%s" % (quote(username or "", safe=""), quote(password, safe=""))


def _check_timeout(sentinel_socket_timeout):
    try:
        timeout = float(sentinel_socket_timeout)
    except (TypeError, ValueError):
        raise RedisContractError("sentinel_socket_timeout=%r: give seconds, e.g. 0.1" % (sentinel_socket_timeout,)) from None
    if timeout <= 0:
        raise RedisContractError("sentinel_socket_timeout=%r: must be above 0" % (sentinel_socket_timeout,))
    return timeout


def _sentinel_form(env, sentinels, master_name, sentinel_password, sentinel_port, sentinel_username, auth,
                   celery_db, timeout, use_ssl):
    """REDIS_*/CELERY_* for Dify behind Sentinels."""
    if not isinstance(sentinels, (list, tuple)):
        raise RedisContractError("sentinels must be a list of host or host:port, got %r" % (sentinels,))
    if use_ssl:
        raise RedisContractError(
            "use_ssl=true with Sentinels: Celery's sentinel:// transport has no TLS form in Dify's "
            "contract; turn use_ssl off or use the plain form")
    if not master_name or not isinstance(master_name, str) or any(c.isspace() for c in master_name):
        raise RedisContractError("master_name=%r: use the Sentinels' monitor name, e.g. dify-master" % (master_name,))
    sentinel_password = _check_password("sentinel_password", sentinel_password, required=False)
    try:
        endpoints = [parse_endpoint(s, default_port=int(sentinel_port)) for s in sentinels]
    except (SentinelError, TypeError, ValueError) as exc:
        raise RedisContractError("sentinels: %s" % exc) from None
    hostports = [format_endpoint(h, p) for h, p in endpoints]
    env.update(
        REDIS_USE_SENTINEL="true",
        REDIS_SENTINELS=",".join(hostports),
        REDIS_SENTINEL_SERVICE_NAME=master_name,
        REDIS_SENTINEL_USERNAME=sentinel_username or "",
        REDIS_SENTINEL_PASSWORD=sentinel_password,
        REDIS_SENTINEL_SOCKET_TIMEOUT=str(timeout),
        CELERY_USE_SENTINEL="true",
        CELERY_BROKER_URL=";".join("sentinel://%s@%s/%d" % (auth, hp, celery_db) for hp in hostports),
        CELERY_SENTINEL_MASTER_NAME=master_name,
        CELERY_SENTINEL_PASSWORD=sentinel_password,
        CELERY_SENTINEL_SOCKET_TIMEOUT=str(timeout),
    )
    return _set(env)


def _plain_form(env, host, port, auth, celery_db, timeout, use_ssl):
    """REDIS_*/CELERY_* for Dify on one Redis host, without Sentinels."""
    if not host or not isinstance(host, str):
        raise RedisContractError(
            "no sentinels and host=%r: give the Sentinel addresses (group dify_sentinel) or, for a "
            "single Redis host without Sentinels, its address as host" % (host,))
    try:
        h, p = parse_endpoint("%s:%s" % (host, port) if ":" not in host or host.startswith("[") else host,
                              default_port=int(port))
    except (SentinelError, TypeError, ValueError) as exc:
        raise RedisContractError("host/port: %s" % exc) from None
    scheme = "rediss" if use_ssl else "redis"
    env.update(
        REDIS_HOST=h,
        REDIS_PORT=str(p),
        REDIS_USE_SENTINEL="false",
        CELERY_USE_SENTINEL="false",
        CELERY_BROKER_URL="%s://%s@%s/%d" % (scheme, auth, format_endpoint(h, p), celery_db),
        REDIS_SENTINEL_SOCKET_TIMEOUT=str(timeout),
        CELERY_SENTINEL_SOCKET_TIMEOUT=str(timeout),
    )
    return _set(env)


def dify_redis_env(sentinels=None, password=None, master_name="dify-master", sentinel_password=None,
                   host=None, port=6379, db=0, celery_db=1, username=None, sentinel_username=None,
                   sentinel_port=26379, use_ssl=False, sentinel_socket_timeout=0.1):
    """The Redis and Celery part of Dify's environment, as a dict of strings.

    ``sentinels``: Sentinel addresses (``host`` or ``host:port``); when
    non-empty, the sentinel form is rendered, else the plain form for ``host``.
    ``password`` is the Redis servers' password (REDIS_PASSWORD and the
    broker URL), ``sentinel_password`` the Sentinels' own.
    """
    password = _check_password("password", password)
    db = _check_db("db", db)
    celery_db = _check_db("celery_db", celery_db)
    if db == celery_db:
        raise RedisContractError(
            "db=%d and celery_db=%d: Dify keeps cache/pub-sub and the Celery broker in separate "
            "databases (0 and 1 by default); choose two numbers" % (db, celery_db))
    if username is not None and not isinstance(username, str):
        raise RedisContractError("username must be a string or null, got %r" % (username,))
    timeout = _check_timeout(sentinel_socket_timeout)

    env = dict(
        REDIS_USERNAME=username or "",
        REDIS_PASSWORD=password,
        REDIS_DB=str(db),
        REDIS_USE_SSL="true" if use_ssl else "false",
        CELERY_BACKEND="redis",
    )
    auth = _userinfo(username, password)
    if isinstance(sentinels, str):
        sentinels = [s for s in sentinels.split(",") if s.strip()]
    if sentinels:
        return _sentinel_form(env, sentinels, master_name, sentinel_password, sentinel_port, sentinel_username,
                              auth, celery_db, timeout, use_ssl)
    return _plain_form(env, host, port, auth, celery_db, timeout, use_ssl)
