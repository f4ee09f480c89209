# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Sentinel logic shared by the redis_sentinel_* modules.

Pure functions (endpoint parsing, reading the sentinels' view of the master,
planning SENTINEL SET changes) plus thin helpers over RespClient.
"""

from __future__ import annotations

from collections import Counter

from ansible_collections.difyops.fleet.plugins.module_utils.redis_resp import (
    RespClient,
    RespConnectionError,
    RespError,
    pairs_to_dict,
)

DEFAULT_SENTINEL_PORT = 26379

# Options of SENTINEL SET this collection manages, with the field of
# SENTINEL MASTER that shows the live value.
MANAGED_OPTIONS = {
    "quorum": "quorum",
    "down-after-milliseconds": "down-after-milliseconds",
    "failover-timeout": "failover-timeout",
    "parallel-syncs": "parallel-syncs",
}


class SentinelError(Exception):
    """Bad input or an inconsistent sentinel answer; the message says what to fix."""


def parse_endpoint(value, default_port=DEFAULT_SENTINEL_PORT):
    """``host``, ``host:port``, ``[v6]:port`` or ``{host, port}`` to ``(host, port)``."""
    if isinstance(value, dict):
        host = value.get("host")
        port = value.get("port", default_port)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep:
                raise SentinelError("endpoint %r: unclosed '[' in an IPv6 address" % value)
            port = rest[1:] if rest.startswith(":") else default_port
        elif text.count(":") == 1:
            host, port = text.split(":")
        else:
            host, port = text, default_port
    else:
        raise SentinelError("endpoint %r: expected 'host:port' or a dict with host and port" % (value,))
    if not host:
        raise SentinelError("endpoint %r has no host" % (value,))
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise SentinelError("endpoint %r: port %r is not a number" % (value, port)) from None
    if not 0 < port < 65536:
        raise SentinelError("endpoint %r: port %d is out of range 1-65535" % (value, port))
    return str(host), port


def format_endpoint(host, port):
    """The ``host:port`` form Dify parses (IPv6 in brackets)."""
    if ":" in host and not host.startswith("["):
        return "[%s]:%d" % (host, int(port))
    return "%s:%d" % (host, int(port))


def majority_master(views):
    """The master most reachable sentinels name, or None.

    ``views`` is a list of ``{"sentinel": "h:p", "master": "h:p" or None,
    "error": str or None}``. Returns ``(master, agree)``: the most common
    answer among the sentinels that named one, and whether all of those agree.
    """
    named = [v["master"] for v in views if v.get("master")]
    if not named:
        return None, True
    counts = Counter(named)
    best = sorted(counts.items(), key=lambda kv: (-kv[1], named.index(kv[0])))[0][0]
    return best, len(counts) == 1


def plan_settings(current, desired):
    """Options to change: ``[(option, value)]`` where ``desired`` differs from ``current``.

    ``current`` is the dict of SENTINEL MASTER; ``desired`` maps option
    names of MANAGED_OPTIONS to values (None means leave alone).
    """
    changes = []
    for option, value in desired.items():
        if option not in MANAGED_OPTIONS:
            raise SentinelError("option %r is not managed; use one of %s" % (option, ", ".join(sorted(MANAGED_OPTIONS))))
        if value is None:
            continue
        live = current.get(MANAGED_OPTIONS[option])
        if live is None or str(live) != str(value):
            changes.append((option, str(value)))
    return changes


def split_config_args(line):
    """Split one config line like Redis does (sdssplitargs): quotes and escapes."""
    args = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return args
        current = []
        if line[i] == '"':
            i += 1
            while True:
                if i >= n:
                    raise SentinelError("unbalanced quotes in %r" % line)
                c = line[i]
                if c == "\\" and i + 1 < n:
                    nxt = line[i + 1]
                    if nxt == "x" and i + 3 < n:
                        current.append(chr(int(line[i + 2:i + 4], 16)))
                        i += 4
                        continue
                    current.append({"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}.get(nxt, nxt))
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                current.append(c)
                i += 1
        elif line[i] == "'":
            # single quotes: only \' is an escape (redis' sdssplitargs), unlike the double quotes above
            i += 1
            while True:
                if i >= n:
                    raise SentinelError("unbalanced quotes in %r" % line)
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    current.append("'")
                    i += 2
                    continue
                if c == "'":
                    i += 1
                    break
                current.append(c)
                i += 1
        else:
            while i < n and not line[i].isspace():
                current.append(line[i])
                i += 1
        args.append("".join(current))


def config_master_auth(text, master_name):
    """``(auth_user, auth_pass)`` for ``master_name`` from a sentinel config file's text."""
    user = password = None
    for raw in (text or "").splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        args = split_config_args(raw)
        if len(args) == 4 and args[0].lower() == "sentinel" and args[2] == master_name:
            if args[1].lower() == "auth-pass":
                password = args[3]
            elif args[1].lower() == "auth-user":
                user = args[3]
    return user, password


def sentinel_view(endpoint, master_name, password=None, username=None, timeout=1.0):
    """What one sentinel says about ``master_name``."""
    host, port = parse_endpoint(endpoint)
    view = {"sentinel": format_endpoint(host, port), "reachable": False, "master": None, "error": None,
            "flags": None, "num_other_sentinels": None, "num_slaves": None}
    try:
        with RespClient(host, port, password=password, username=username, timeout=timeout) as cli:
            view["reachable"] = True
            addr = cli.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", master_name)
            if addr:
                view["master"] = format_endpoint(addr[0], int(addr[1]))
                info = pairs_to_dict(cli.command("SENTINEL", "MASTER", master_name))
                view["flags"] = info.get("flags")
                view["num_other_sentinels"] = int(info.get("num-other-sentinels", 0))
                view["num_slaves"] = int(info.get("num-slaves", 0))
            else:
                view["error"] = "sentinel does not monitor %s" % master_name
    except (RespConnectionError, RespError, OSError, ValueError) as exc:
        view["error"] = str(exc)
    return view
