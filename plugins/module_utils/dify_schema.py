# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Dify's environment parsing semantics, applied to extracted contract data.

Stdlib only (this runs on target hosts through AnsiballZ). The data is a
release's ``RELEASE`` dict from ``dify_release_<X_Y_Z>`` (format in
docs/CONTRACT.md). Each family is checked the way its image parses its
environment:

* api (api, worker, beat, migration, api_websocket): pydantic 2 lax mode
  through pydantic-settings (``DifyConfig``), plus the entrypoint's and the
  code's direct reads;
* plugin_daemon: kelseyhightower/envconfig, then the daemon's SetDefault()
  and its ``validate`` tags;
* sandbox: its Go ``os.Getenv`` parsing;
* web: names only (every value is a string);
* agent_backend (1.16 on): pydantic-settings (``ServerSettings``, prefix
  ``DIFY_AGENT_``), its field validators and its cross-field rules;
* local_sandbox, agent_ssrf_proxy (1.16 on): names only (every value is a
  string that is never refused).

A family a release does not have (the agent services before 1.16) is "not in
this release": ``has_family`` is false and ``validate_env`` says so.

``pydantic_model(release)`` rebuilds a pydantic-settings model from the
data; it imports pydantic lazily and is meant for tests and the probe, never
for a module on a target host.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re

FAMILIES = ("api", "web", "plugin_daemon", "sandbox", "agent_backend", "local_sandbox", "agent_ssrf_proxy")
NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# Unicode White_Space, which pydantic-core's (Rust) trim() removes. Python's
# str.strip() also strips \x1c-\x1f, which pydantic-core keeps.
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
      "\u2028\u2029\u202f\u205f\u3000"

_BOOL_TRUE = frozenset(("1", "on", "t", "true", "y", "yes"))
_BOOL_FALSE = frozenset(("0", "off", "f", "false", "n", "no"))
_DIGITS = r"[0-9](?:_?[0-9])*"
_INT_RE = re.compile(r"\A[+-]?(%s)(?:\.0+)?\Z" % _DIGITS)
_RUST_F64_RE = re.compile(r"\A[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)\Z", re.IGNORECASE)
_COMPLEX = ("dict", "list", "model")


def _trim(value):
    return value.strip(_WS)


def describe(node):
    """A short human text for a type node, e.g. 'int > 0' or 'one of a, b'."""
    t = node["t"]
    if t == "optional":
        return "%s or None" % describe(node["of"])
    if t == "union":
        return " | ".join(describe(n) for n in node["of"])
    if t in ("literal", "enum"):
        return "one of %s" % ", ".join(repr(v) for v in node["values"])
    bounds = []
    for key, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in node:
            bounds.append("%s %s" % (sign, node[key]))
    for key, text in (("min_length", "length >= %s"), ("max_length", "length <= %s")):
        if key in node:
            bounds.append(text % node[key])
    if node.get("allow_inf_nan") is False:
        bounds.append("finite")
    return t + (" " + ", ".join(bounds) if bounds else "")


# ---------------------------------------------------------------- pydantic

def _bounds(node, number):
    if math.isnan(number):  # NaN fails every bound
        if any(k in node for k in ("gt", "ge", "lt", "le")):
            return "NaN fails the bounds"
        return None
    for key, ok in (("gt", lambda a, b: a > b), ("ge", lambda a, b: a >= b),
                    ("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b)):
        if key in node and not ok(number, node[key]):
            return "must be %s %s" % ({"gt": ">", "ge": ">=", "lt": "<", "le": "<="}[key], node[key])
    if "multiple_of" in node and number % node["multiple_of"]:
        return "must be a multiple of %s" % node["multiple_of"]
    return None


def _check_int(node, value):
    m = _INT_RE.match(_trim(value))
    if not m:
        return "is not an integer"
    return _bounds(node, int(m.group(1).replace("_", "")) * (-1 if _trim(value).startswith("-") else 1))


def _parse_float(value):
    """pydantic-core's float from a string: Rust's f64 grammar on the trimmed text, else (when it holds '_')
    the untrimmed text without its underscores, unless it starts or ends with '_' or holds '__'."""
    text = _trim(value)
    if _RUST_F64_RE.match(text):
        return float(text)
    if "_" in value and not (value.startswith("_") or value.endswith("_") or "__" in value):
        text = value.replace("_", "")
        if _RUST_F64_RE.match(text):
            return float(text)
    return None


def _check_float(node, value):
    number = _parse_float(value)
    if number is None:
        return "is not a number"
    if node.get("allow_inf_nan") is False and not math.isfinite(number):
        return "must be a finite number"
    return _bounds(node, number)


def _check_length(node, value):
    if "min_length" in node and len(value) < node["min_length"]:
        return "must be at least %d characters" % node["min_length"]
    if "max_length" in node and len(value) > node["max_length"]:
        return "must be at most %d characters" % node["max_length"]
    return None


_FORBIDDEN_HOST = frozenset("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | frozenset(chr(c) for c in range(0x20))


def _pct_decode(text):
    out = bytearray()
    raw = text.encode("utf-8")
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw) and re.match(rb"[0-9A-Fa-f]{2}", raw[i + 1:i + 3]):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out).decode("utf-8", "replace")


def _ipv4_number(part):
    if part == "":
        return None
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    if part == "":
        return 0
    try:
        return int(part, base) if re.match(r"\A[0-9A-Fa-f]+\Z", part) else None
    except ValueError:
        return None


def _check_host(host):
    """WHATWG host parsing for a special scheme (the part pydantic-core uses)."""
    if host.startswith("["):
        if not host.endswith("]"):
            return "has an unclosed IPv6 address"
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "has an invalid IPv6 address"
        return None
    host = _pct_decode(host)
    try:
        ascii_host = host.encode("idna").decode("ascii").lower() if any(ord(c) > 127 for c in host) else host.lower()
    except UnicodeError:
        return "has an invalid international host name"
    if ascii_host == "":
        return "has no host"
    if any(c in _FORBIDDEN_HOST for c in ascii_host):
        return "has a character a host name cannot hold"
    parts = ascii_host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    last = parts[-1]
    if re.match(r"\A[0-9]+\Z", last) or re.match(r"\A0[xX][0-9A-Fa-f]*\Z", last):
        if len(parts) > 4:
            return "is not a valid IPv4 address"
        numbers = [_ipv4_number(p) for p in parts]
        if any(n is None for n in numbers):
            return "is not a valid IPv4 address"
        if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
            return "is not a valid IPv4 address"
    return None


def _check_http_url(value, max_length=2083):
    text = value.strip("".join(chr(c) for c in range(0x21)))
    text = re.sub(r"[\t\n\r]", "", text)
    m = re.match(r"\A([A-Za-z][A-Za-z0-9+.\-]*):(.*)\Z", text, re.S)
    if not m:
        return "is not a URL (no scheme)"
    if m.group(1).lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    rest = m.group(2).lstrip("/\\")
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        end = hostport.find("]")
        host, port = (hostport, "") if end < 0 else (hostport[:end + 1], hostport[end + 1:])
        if port and not port.startswith(":"):
            return "has an invalid port"
        port = port[1:]
    else:
        host, sep, port = hostport.partition(":")
    if port and not (re.match(r"\A[0-9]+\Z", port) and int(port) <= 65535):
        return "has an invalid port"
    problem = _check_host(host)
    if problem:
        return problem
    if max_length and len(text) > max_length:
        return "is longer than %d characters" % max_length
    return None


_DT_RE = re.compile(
    r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt _]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,][0-9]+)?)?"
    r"(?:[Zz]|[+-]([0-9]{2}):?([0-9]{2}))?)?\Z")
# a Unix timestamp (seconds, or milliseconds above 2e10), as speedate reads it
# (an integer, or a decimal with a '.' and an optional exponent; the integer part fits an i64)
_DT_NUMBER_RE = re.compile(r"\A[+-]?(?:[0-9]{1,19}|(?=\.?[0-9])[0-9]{0,19}\.[0-9]*(?:[eE][+-]?[0-9]+)?)\Z")


def _check_datetime(value):
    if _DT_NUMBER_RE.match(value):
        seconds = float(value)
        if not math.isfinite(seconds):
            return "is not a finite timestamp"
        if abs(seconds) > 2e10:
            seconds /= 1000
        return None if abs(seconds) <= 253402300799 else "is a timestamp after the year 9999"
    m = _DT_RE.match(value)
    if not m:
        return "is not a date-time (YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM] or a Unix timestamp)"
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    import datetime
    try:
        datetime.date(year, month, day)
    except ValueError:
        return "is not a valid date"
    hour, minute, second = (int(m.group(i)) if m.group(i) else 0 for i in (4, 5, 6))
    if hour > 23 or minute > 59 or second > 59:
        return "is not a valid time"
    if m.group(7) and (int(m.group(7)) > 23 or int(m.group(8) or 0) > 59):
        return "has an invalid time zone offset"
    return None


def _check_python(node, obj):
    """A JSON-decoded value (a Python object) against a type node, lax mode."""
    t = node["t"]
    if t == "optional":
        return None if obj is None else _check_python(node["of"], obj)
    if t == "dict":
        return None if isinstance(obj, dict) else "must be a JSON object"
    if t == "list":
        if not isinstance(obj, list):
            return "must be a JSON list"
        for item in obj:
            problem = _check_python(node["of"], item) if not isinstance(item, str) else check_pydantic(node["of"], item)
            if problem:
                return "item %r %s" % (item, problem)
        return None
    if t == "str":
        return None if isinstance(obj, str) else "must be a string"
    return "cannot be given as JSON here"


def check_pydantic(node, value):
    """None when pydantic would accept the env string ``value`` for the type ``node``, else why not."""
    t = node["t"]
    if t == "optional":
        inner = node["of"]
        if inner["t"] in _COMPLEX:
            return _check_json(node, value)
        return check_pydantic(inner, value)
    if t in _COMPLEX:
        return _check_json(node, value)
    if t == "union":
        problems = [check_pydantic(n, value) for n in node["of"]]
        return None if any(p is None for p in problems) else "is not %s" % describe(node)
    if t in ("str", "secret_str"):
        return _check_length(node, value)
    if t == "bool":
        return None if value.lower() in _BOOL_TRUE or value.lower() in _BOOL_FALSE else \
            "is not a boolean (true/false, 1/0, yes/no, on/off, t/f, y/n)"
    if t == "int":
        return _check_int(node, value)
    if t == "float":
        return _check_float(node, value)
    if t in ("literal", "enum"):
        return None if value in [v for v in node["values"] if isinstance(v, str)] else \
            "is not one of %s" % ", ".join(repr(v) for v in node["values"])
    if t == "http_url":
        return _check_http_url(value)
    if t == "datetime":
        return _check_datetime(value)
    raise ValueError("unknown type node %r" % (node,))


def _check_json(node, value):
    if node["t"] == "model" or (node["t"] == "optional" and node["of"]["t"] == "model"):
        return "is filled from pyproject.toml, not from the environment"
    try:
        obj = json.loads(value)
    except ValueError:
        return "is not valid JSON"
    return _check_python(node, obj)


def _is_optional(node):
    return node["t"] == "optional" or (node["t"] == "literal" and None in node["values"])


def _check_http_base_url(value):
    from urllib.parse import urlsplit
    try:
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return "must be an absolute HTTP(S) URL"
        parsed.port
    except ValueError:
        return "must include a valid port"
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        return "must not include credentials, query, or fragment"
    return None


_B64URL_RE = re.compile(r"\A[A-Za-z0-9_-]+\Z")


def _check_base64url_32(value):
    # dify_agent.agent_stub.server.tokens.agent_stub.decode_server_secret_key
    text = value.strip()
    if not text or not _B64URL_RE.match(text):
        return "must be valid unpadded base64url text"
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return "must be valid unpadded base64url text"
    if len(decoded) != 32:
        return "must decode to exactly 32 bytes (it decodes to %d)" % len(decoded)
    return None


def _check_agent_stub_endpoint(text):
    # dify_agent.agent_stub.protocol.agent_stub.parse_agent_stub_endpoint
    from urllib.parse import urlsplit
    text = text.strip()
    if not text:
        return "must not be empty"
    try:
        parsed = urlsplit(text)
        if parsed.scheme not in ("http", "https", "grpc"):
            return "must use http, https, or grpc"
        if not parsed.netloc:
            return "must include a host"
        if parsed.username is not None or parsed.password is not None:
            return "must not include user info"
        if parsed.query or parsed.fragment:
            return "must not include a query string or fragment"
        if parsed.hostname is None:
            return "must include a host"
        if parsed.scheme == "grpc":
            if parsed.path not in ("", "/"):
                return "must not include a path (gRPC)"
            if parsed.port is None:
                return "must include an explicit port (gRPC)"
            return None
    except ValueError as exc:
        return "is not a valid URL (%s)" % exc
    if parsed.path.rstrip("/") not in ("", "/", "/agent-stub"):
        return "path must be empty or /agent-stub"
    return None


def _check_agent_stub_url(value):
    # ServerSettings.normalize_agent_stub_api_base_url_value: http(s) values are AnyHttpUrl first
    text = value.strip()
    if text.startswith(("http://", "https://")):
        problem = _check_http_url(text, max_length=0)
        if problem:
            return problem
    return _check_agent_stub_endpoint(text)


def _check_grpc_bind_address(value):
    # dify_agent.agent_stub.server.grpc_bind.parse_agent_stub_grpc_bind_address
    from urllib.parse import urlsplit
    text = value.strip()
    if not text:
        return "must not be empty"
    try:
        parsed = urlsplit("grpc://" + text)
        if not parsed.netloc or parsed.hostname is None:
            return "must include a host"
        if parsed.username is not None or parsed.password is not None:
            return "must not include user info"
        if parsed.port is None:
            return "must include an explicit port"
    except ValueError as exc:
        return "is not a valid host:port (%s)" % exc
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        return "must be in host:port form"
    return None


def _check_inner_api_url(value):
    # ServerSettings.normalize_inner_api_url
    text = value.strip()
    if not text:
        return "must not be empty"
    problem = _check_http_url(text, max_length=0)
    if problem:
        return problem
    if "?" in text or "#" in text:
        return "must not include a query string or fragment"
    return None


def _check_absolute_path(value):
    # ServerSettings.normalize_shell_home_root: strip().rstrip("/"), so "/" is empty too
    text = value.strip().rstrip("/")
    if not text:
        return "must not be empty (\"/\" is, once its trailing slash is removed)"
    if not text.startswith("/"):
        return "must be an absolute path"
    return None


def _check_json_list(value):
    # ServerSettings.get_shell_redact_patterns, called when the app is built
    text = value.strip()
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return "is not valid JSON"
    if not isinstance(parsed, list):
        return "must be a JSON array of strings"
    return None


def _check_redis_url(value):
    # redis-py Redis.from_url (the agent backend's lifespan): redis://, rediss:// or unix://, a valid port
    from urllib.parse import urlparse
    try:
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss", "unix"):
            return "must be a redis://, rediss:// or unix:// URL (redis-py from_url; no Sentinel)"
        parsed.port
    except ValueError:
        return "has an invalid port"
    return None


_CHECKS = {"http_base_url": _check_http_base_url, "redis_url": _check_redis_url, "base64url_32": _check_base64url_32,
           "agent_stub_url": _check_agent_stub_url, "grpc_bind_address": _check_grpc_bind_address,
           "inner_api_url": _check_inner_api_url, "absolute_path": _check_absolute_path,
           "json_list": _check_json_list}


def check_setting(spec, value):
    """A pydantic-settings field spec (type plus its modelled validators) against an env string."""
    if spec.get("strip"):
        value = value.strip()
    if spec.get("reject_substring") and spec["reject_substring"] in value.strip():
        return "must not contain %r" % spec["reject_substring"]
    if spec.get("blank") == "none" and value.strip() == "":
        return None if _is_optional(spec["type"]) else "is blank, which Dify takes as None, and None is not allowed"
    problem = check_pydantic(spec["type"], value)
    if problem is None and spec.get("check"):
        problem = _CHECKS[spec["check"]](value)
    return problem


# ---------------------------------------------------------------- Go

_GO_INT_BITS = {"int": 64, "int8": 8, "int16": 16, "int32": 32, "int64": 64,
                "uint": 64, "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}
_GO_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def _go_underscore_ok(text):
    # strconv.underscoreOK: underscores only between digits or after a base prefix.
    saw = "^"
    i = 0
    if text[:1] in "+-":
        text = text[1:]
    hexa = False
    if len(text) >= 2 and text[0] == "0" and text[1] in "bBoOxX":
        i = 2
        saw = "0"
        hexa = text[1] in "xX"
    while i < len(text):
        c = text[i]
        if c.isdigit() and c.isascii() or (hexa and c in "abcdefABCDEF"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def go_parse_uint(text, bits=64):
    """strconv.ParseUint(text, 0, bits): the value, or raise ValueError."""
    if text == "":
        raise ValueError("invalid syntax")
    s = text
    base = 10
    if s[0] == "0":
        if len(s) >= 3 and s[1] in "bB":
            base, s = 2, s[2:]
        elif len(s) >= 3 and s[1] in "oO":
            base, s = 8, s[2:]
        elif len(s) >= 3 and s[1] in "xX":
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    underscores = "_" in s
    digits = s.replace("_", "")
    allowed = "0123456789abcdefABCDEF"[:base if base <= 10 else 10 + 2 * (base - 10)]
    if base == 16:
        allowed = "0123456789abcdefABCDEF"
    if digits == "" and not (text[0] == "0" and base == 8 and s == ""):
        raise ValueError("invalid syntax")
    if any(c not in allowed for c in digits):
        raise ValueError("invalid syntax")
    if underscores and not _go_underscore_ok(text):
        raise ValueError("invalid syntax")
    n = int(digits, base) if digits else 0
    if n >= 1 << bits:
        raise ValueError("value out of range")
    return n


def go_parse_int(text, bits=64):
    """strconv.ParseInt(text, 0, bits)."""
    if text == "":
        raise ValueError("invalid syntax")
    neg = text[0] == "-"
    body = text[1:] if text[0] in "+-" else text
    n = go_parse_uint(body, 64) if body else go_parse_uint("", 64)
    if "_" in body and not _go_underscore_ok(text):
        raise ValueError("invalid syntax")
    limit = 1 << (bits - 1)
    if (not neg and n >= limit) or (neg and n > limit):
        raise ValueError("value out of range")
    return -n if neg else n


_GO_FLOAT_DEC = re.compile(r"\A[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?\Z")
_GO_FLOAT_HEX = re.compile(r"\A[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+\Z")
_GO_FLOAT_SPECIAL = re.compile(r"\A(?:[+-]?(?:inf|infinity)|nan)\Z", re.IGNORECASE)


def go_parse_float(text, bits=64):
    """strconv.ParseFloat(text, bits) acceptance."""
    if _GO_FLOAT_SPECIAL.match(text):
        return float(text.lower().replace("infinity", "inf"))
    if _GO_FLOAT_HEX.match(text):
        if "_" in text and not _go_underscore_ok(text):
            raise ValueError("invalid syntax")
        mant, _sep, exp = text.replace("_", "").lower().partition("p")
        sign = -1.0 if mant.startswith("-") else 1.0
        mant = mant.lstrip("+-")[2:]
        whole, _dot, frac = mant.partition(".")
        value = float(int(whole or "0", 16)) + (int(frac, 16) / 16.0 ** len(frac) if frac else 0.0)
        try:
            number = sign * value * 2.0 ** int(exp)
        except OverflowError:
            raise ValueError("value out of range") from None
    elif _GO_FLOAT_DEC.match(text) and re.search(r"[0-9]", text.split("e")[0].split("E")[0]):
        if "_" in text and not _go_underscore_ok(text):
            raise ValueError("invalid syntax")
        mant_exp = re.split(r"[eE]", text)
        if len(mant_exp) == 2 and not re.search(r"[0-9]", mant_exp[1]):
            raise ValueError("invalid syntax")
        number = float(text.replace("_", ""))
    else:
        raise ValueError("invalid syntax")
    limit = 3.4028234663852886e38 if bits == 32 else 1.7976931348623157e308
    if abs(number) > limit:
        raise ValueError("value out of range")
    return number


_GO_DURATION = re.compile(r"\A[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+\Z")


def go_parse_duration(text):
    """time.ParseDuration acceptance (range not checked)."""
    if text in ("0", "+0", "-0"):
        return 0
    if not _GO_DURATION.match(text):
        raise ValueError("invalid duration")
    return 1


def go_parse_bool(text):
    if text not in _GO_BOOL:
        raise ValueError("invalid syntax")
    return _GO_BOOL[text]


def go_atoi(text):
    """strconv.Atoi: base 10, optional sign, no underscores."""
    if not re.match(r"\A[+-]?[0-9]+\Z", text):
        raise ValueError("invalid syntax")
    n = int(text)
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError("value out of range")
    return n


def envconfig_parse(go_type, value):
    """What envconfig.Process does with a set value for a field of ``go_type``: the Go value, or ValueError."""
    if go_type.startswith("*"):
        go_type = go_type[1:]
    if go_type == "string":
        return value
    if go_type == "bool":
        return go_parse_bool(value)
    if go_type == "time.Duration":
        return go_parse_duration(value)
    if go_type in _GO_INT_BITS:
        bits = _GO_INT_BITS[go_type]
        return go_parse_uint(value, bits) if go_type.startswith("uint") else go_parse_int(value, bits)
    if go_type in ("float32", "float64"):
        return go_parse_float(value, 32 if go_type == "float32" else 64)
    if go_type.startswith("[]"):
        if value.strip(" \t\n\r\x0b\x0c\x85\xa0") == "":
            return []
        return [envconfig_parse(go_type[2:], item) for item in value.split(",")]
    raise ValueError("no envconfig parsing known for Go type %s" % go_type)


def check_envconfig(spec, value):
    """None when envconfig parses ``value`` for the daemon field ``spec``, else why not."""
    go_type = spec.get("kind") or spec["go"]
    try:
        envconfig_parse(go_type, value)
    except ValueError as exc:
        return "envconfig cannot parse %r as %s (%s): the daemon panics at start" % (value, spec["go"], exc)
    return None


def _go_zero(go_type, value):
    if value is None:
        return True
    if go_type.startswith("*") or go_type.startswith("[]"):
        return False if go_type.startswith("*") else len(value) == 0
    return value in ("", 0, 0.0, False)


# ---------------------------------------------------------------- families

def has_family(release, family):
    """Whether the release ships the family (the agent services exist from 1.16 on)."""
    return family in release


def known_names(release, family):
    """Every name the family's image reads; empty when the release does not have the family.

    Besides the names its code reads, the names upstream's compose file gives the image: every process in
    it inherits them (the local sandbox's jobs - pip, curl, Python - go out through the HTTP_PROXY /
    HTTPS_PROXY / NO_PROXY its compose entry sets; for the other images these are names they read anyway)."""
    if family not in release:
        return frozenset()
    compose = set()
    for entry in (release[family].get("compose") or {}).values():
        compose.update((entry.get("environment") or {}).keys())
    return frozenset(release[family]["names"]) | frozenset(compose)


def has_file(release, path):
    return path in release["api"]["files"]


def _prefix_ok(release, family, name):
    return any(name.startswith(p) for p in release[family].get("prefixes", {}))


# Names whose values are never shown in a message (the same shapes as dify_contract.SECRET_NAME),
# and URLs carrying a password.
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|CREDENTIAL|CONNECTION_STRING|_DSN$|BROKER_URL|REDIS_URL$|"
                          r"(^|_)KEY$|ACCESS_KEY|API_KEY|JWE)")
_URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)


def _fmt(name, value):
    if _SECRET_NAME.search(name.upper()) or _URL_CREDENTIALS.search(value):
        return "%s=<%d characters, not shown>" % (name, len(value))
    shown = value if len(value) <= 60 else value[:57] + "..."
    return "%s=%r" % (name, shown)


def _validate_api(release, env):
    api = release["api"]
    errors = []
    upper = {k.upper(): k for k in env}
    for field, spec in sorted(api["settings"].items()):
        for name in spec.get("env") or [field]:
            if name.upper() in upper:
                value = env[upper[name.upper()]]
                problem = check_setting(spec, value)
                if problem:
                    errors.append("%s %s: Dify %s's %s is %s (%s), so the api image fails at start"
                                  % (_fmt(name, value), problem, release["release"], field,
                                     describe(spec["type"]), spec["src"]))
                break
    for name, choice in sorted(api.get("runtime_choices", {}).items()):
        if name in env and env[name] not in choice["values"]:
            errors.append("%s is not one Dify %s supports (%s: %s)"
                          % (_fmt(name, env[name]), release["release"], choice["src"],
                             ", ".join(choice["values"])))
    for name, read in sorted(api["entrypoint"]["reads"].items()):
        value = env.get(name)
        if read.get("type") == "int" and value:
            if not re.match(r"\A[0-9]+\Z", value):
                errors.append("%s is not a whole number; the entrypoint passes it to the command line (%s)"
                              % (_fmt(name, value), api["entrypoint"]["src"]))
    for name, reads in sorted(api["reads"].items()):
        if name not in env:
            continue
        for read in reads:
            parse = read.get("parse")
            try:
                if parse == "int":
                    int(env[name])
                elif parse == "float":
                    float(env[name])
            except ValueError:
                errors.append("%s: Dify's code reads it with %s() (%s) and fails"
                              % (_fmt(name, env[name]), parse, read["src"]))
                break
    return errors


def _validate_daemon(release, env):
    daemon = release["plugin_daemon"]
    errors = []
    effective = dict(daemon.get("image_env", {}))
    effective.update(env)
    for name, spec in sorted(daemon["fields"].items()):
        if name in env:
            problem = check_envconfig(spec, env[name])
            if problem:
                errors.append("%s: %s (%s %s)" % (_fmt(name, env[name]), problem, spec["field"], daemon["src"]))
    if errors:
        return errors
    for name, spec in sorted(daemon["fields"].items()):
        rules = spec.get("validate", "")
        if not rules:
            continue
        go_type = spec.get("kind") or spec["go"]
        if name in effective:
            value = envconfig_parse(go_type, effective[name])
        elif spec.get("default") not in (None, ""):
            value = envconfig_parse(go_type, spec["default"])
        else:
            value = None
        if _go_zero(go_type, value) and "set_default" in spec:
            value = spec["set_default"]
        if _go_zero(go_type, value) and spec.get("set_default_if"):
            continue  # SetDefault() fills it under conditions (e.g. per DB_TYPE): not judged here
        if spec.get("values") and value not in (None, "") and value not in spec["values"]:
            errors.append("%s=%r is not one of %s (the plugin daemon's %s, %s)"
                          % (name, value, ", ".join(spec["values"]), spec["go"], daemon["src"]))
        for rule in rules.split(","):
            rule = rule.strip()
            if rule == "required" and _go_zero(go_type, value):
                errors.append("%s is required by the plugin daemon (validate:\"required\" on %s, %s) and is unset or "
                              "empty" % (name, spec["field"], daemon["src"]))
            elif rule.startswith("oneof="):
                allowed = rule[len("oneof="):].split()
                if value is not None and str(value) not in allowed:
                    errors.append("%s=%r is not one of %s (the plugin daemon's %s)"
                                  % (name, value, ", ".join(allowed), spec["field"]))
    return errors


def _validate_sandbox(release, env):
    sandbox = release["sandbox"]
    errors = []
    what = {"ignored": "the sandbox silently drops it (the setting becomes 0/false)",
            "keep": "the sandbox ignores it and keeps the config file's value",
            "fatal": "the sandbox does not start"}
    for name, reads in sorted(sandbox["reads"].items()):
        if name not in env:
            continue
        value = env[name]
        for read in sorted(reads, key=lambda r: r.get("on_error") != "fatal"):
            parse = read.get("parse", "str")
            if parse == "str" or (value == "" and not read.get("always")):
                continue
            try:
                if parse == "atoi":
                    go_atoi(value)
                elif parse == "parse_bool":
                    go_parse_bool(value)
                elif parse == "atoi_list":
                    for item in value.split(","):
                        go_atoi(item)
            except ValueError:
                errors.append("%s cannot be parsed with Go's %s: %s (%s)"
                              % (_fmt(name, value), parse, what.get(read.get("on_error"), "it fails"), read["src"]))
                break
    return errors


def _agent_value(spec, name, env):
    """The value ServerSettings ends up with: the first env name set, else the default; after strip/blank."""
    for key in spec.get("env") or [name]:
        if key in env:
            value = env[key]
            if spec.get("strip"):
                value = value.strip()
            if spec.get("blank") == "none" and value.strip() == "":
                return None
            return value
    return spec.get("default")


def _validate_agent_backend(release, env):
    from urllib.parse import urlparse, urlsplit
    agent = release["agent_backend"]
    errors = []
    seen = set()
    for name, spec in sorted(agent["settings"].items()):
        for key in spec.get("env") or [name]:
            if key in env and name not in seen:
                seen.add(name)
                problem = check_setting(spec, env[key])
                if problem:
                    errors.append("%s %s: Dify %s's agent backend (%s.%s, %s) does not start"
                                  % (_fmt(key, env[key]), problem, release["release"], agent["settings_class"],
                                     spec["field"], spec["src"]))
    if errors:
        return errors
    settings = agent["settings"]
    values = {name: _agent_value(spec, name, env) for name, spec in settings.items()}
    for rule in agent.get("rules", []):
        if any(values.get(k) != v for k, v in rule.get("when", {}).items()):
            continue
        if rule.get("if_set") and values.get(rule["if_set"]) is not None:
            required = values.get(rule["requires"])
            if required is None:
                errors.append("%s is required when %s is set (%s)" % (rule["requires"], rule["if_set"], rule["src"]))
            elif rule.get("requires_scheme") and urlsplit(required).scheme != rule["requires_scheme"]:
                errors.append("%s needs a %s:// %s (%s)" % (rule["if_set"], rule["requires_scheme"], rule["requires"],
                                                            rule["src"]))
        if rule.get("if_nonempty") and values.get(rule["if_nonempty"]) not in (None, ""):
            value = values[rule["if_nonempty"]]
            parsed = urlparse(value.strip())
            if not value.strip() or parsed.scheme not in ("http", "https") or not parsed.netloc:
                errors.append("%s must be an http(s) URL with a host when %s (%s)"
                              % (_fmt(rule["if_nonempty"], value),
                                 " and ".join("%s=%s" % kv for kv in sorted(rule["when"].items())), rule["src"]))
    return errors


def validate_env(release, family, env, allow_unknown=()):
    """Everything in ``env`` (name -> string) that the family's image would not read or not parse."""
    if family not in FAMILIES:
        raise ValueError("family %r is not one of %s" % (family, ", ".join(FAMILIES)))
    if not has_family(release, family):
        return ["Dify %s has no %s (not in this release)" % (release["release"], family)]
    errors = []
    known = known_names(release, family)
    allowed = frozenset(allow_unknown)
    for name in sorted(env):
        if not NAME_RE.match(name):
            errors.append("%r is not a valid environment variable name" % name)
        elif name not in known and name not in allowed and not _prefix_ok(release, family, name):
            errors.append("%s is not a variable Dify %s's %s image reads" % (name, release["release"], family))
    if family == "api":
        errors.extend(_validate_api(release, env))
    elif family == "plugin_daemon":
        errors.extend(_validate_daemon(release, env))
    elif family == "sandbox":
        errors.extend(_validate_sandbox(release, env))
    elif family == "agent_backend":
        errors.extend(_validate_agent_backend(release, env))
    return errors


# ---------------------------------------------------------------- pydantic model (tests and probe only)

def pydantic_annotation(node):
    """The Python annotation a type node stands for (imports pydantic)."""
    import datetime
    import enum
    from typing import Annotated, Any, Literal, Optional, Union

    from pydantic import Field, HttpUrl, SecretStr

    t = node["t"]
    constraints = {k: node[k] for k in ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length",
                                        "allow_inf_nan") if k in node}
    if t == "optional":
        inner = pydantic_annotation(node["of"])
        return Optional[inner]
    if t == "union":
        members = tuple(pydantic_annotation(n) for n in node["of"])
        return Union[members]
    if t == "literal":
        return Literal[tuple(node["values"])]
    if t == "enum":
        return enum.Enum(node["name"], [("V%d" % i, v) for i, v in enumerate(node["values"])])
    if t == "list":
        item = pydantic_annotation(node["of"])
        base = list[item]
    else:
        base = {"str": str, "secret_str": SecretStr, "bool": bool, "int": int, "float": float, "http_url": HttpUrl,
                "datetime": datetime.datetime, "dict": dict[str, Any], "model": dict[str, Any]}[t]
    return Annotated[base, Field(**constraints)] if constraints else base


def pydantic_model(release, name="DifyConfig"):
    """A pydantic-settings BaseSettings class rebuilt from ``release['api']['settings']``."""
    from typing import Annotated

    from pydantic import AliasChoices, BeforeValidator, Field, create_model
    from pydantic_settings import BaseSettings, SettingsConfigDict

    def _blank_none(value):
        return None if isinstance(value, str) and value.strip() == "" else value

    def _strip(value):
        return value.strip() if isinstance(value, str) else value

    def _reject(sub):
        def check(value):
            if isinstance(value, str) and sub in value.strip():
                raise ValueError("must not contain %r" % sub)
            return value
        return check

    def _base_url(value):
        if value is not None:
            problem = _check_http_base_url(value)
            if problem:
                raise ValueError(problem)
        return value

    fields = {}
    for field, spec in release["api"]["settings"].items():
        annotation = pydantic_annotation(spec["type"])
        befores = []
        if spec.get("reject_substring"):
            befores.append(BeforeValidator(_reject(spec["reject_substring"])))
        if spec.get("blank") == "none":
            befores.append(BeforeValidator(_blank_none))
        if spec.get("strip"):
            befores.append(BeforeValidator(_strip))
        if spec.get("check") == "http_base_url":
            from pydantic import AfterValidator
            befores.insert(0, AfterValidator(_base_url))
        if befores:
            annotation = Annotated[(annotation,) + tuple(befores)]
        kwargs = {"validation_alias": AliasChoices(*(spec.get("env") or [field]))}
        if "default" in spec:
            kwargs["default"] = spec["default"]
        else:
            kwargs["default"] = None
            kwargs["validate_default"] = False
        if spec["type"]["t"] == "model":
            kwargs["validate_default"] = False
        fields[field] = (annotation, Field(**kwargs))
    base = type(name + "Base", (BaseSettings,), {"model_config": SettingsConfigDict(
        extra="ignore", case_sensitive=False, validate_default=True, env_file=None)})
    return create_model(name, __base__=base, **fields)
