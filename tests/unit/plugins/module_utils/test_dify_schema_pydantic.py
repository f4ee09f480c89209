# -*- coding: utf-8 -*-
"""The stdlib validator and a pydantic-settings model rebuilt from the same
data agree on generated env strings, for every type class in the data.

Needs pydantic and pydantic-settings (requirements.txt); the extractor runs
the same comparison against the real DifyConfig of each release tree.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytest.importorskip("pydantic_settings")

from pydantic import ValidationError, create_model  # noqa: E402
from pydantic_settings import BaseSettings, SettingsConfigDict  # noqa: E402

from ansible_collections.difyops.fleet.plugins.module_utils import dify_release_1_13_3 as r1133  # noqa: E402
from ansible_collections.difyops.fleet.plugins.module_utils import dify_release_1_16_1 as r1161  # noqa: E402
from ansible_collections.difyops.fleet.plugins.module_utils import dify_schema as ds  # noqa: E402

RELEASES = {"1.13.3": r1133.RELEASE, "1.16.1": r1161.RELEASE}
_MODIFIERS = ("blank", "strip", "reject_substring", "check")


def _type_class(spec):
    return json.dumps([spec["type"]] + [spec.get(k) for k in _MODIFIERS], sort_keys=True)


def _representatives():
    """One field per distinct (type, modelled validators) class, per release."""
    out = []
    for version, release in sorted(RELEASES.items()):
        seen = {}
        for name, spec in sorted(release["api"]["settings"].items()):
            if spec["type"]["t"] == "model":
                continue
            seen.setdefault(_type_class(spec), name)
        out.extend((version, name) for name in sorted(seen.values()))
    return out


REPRESENTATIVES = _representatives()
_MODELS = {}
_BASE = type("AgreeBase", (BaseSettings,), {"model_config": SettingsConfigDict(
    extra="ignore", case_sensitive=False, validate_default=False, env_file=None)})


def _one_field_model(version, name):
    key = (version, name)
    if key not in _MODELS:
        full = ds.pydantic_model(RELEASES[version]) if version not in _MODELS else _MODELS[version]
        _MODELS[version] = full
        field = full.model_fields[name]
        _MODELS[key] = create_model("One_" + name, __base__=_BASE, **{name: (field.annotation, field)})
    return _MODELS[key]


_NUMBERISH = st.from_regex(r"\A[ \t]?[+-]?[0-9_]{0,5}(\.[0-9_]{0,3})?([eE][+-]?[0-9]{1,3})?[ \t\n]?\Z")
_WORDS = st.sampled_from(["", " ", "true", "True", "TRUE", "false", "yes", "no", "on", "off", "t", "f", "y", "n",
                          " true", "1", "0", "-1", "inf", "-inf", "nan", "Infinity", "null", "None", "{}", "[]",
                          '{"a": 1}', '["a"]', "{", "127.0.0.1:5003", "text", "json", "pubsub", "opendal", "s3",
                          "postgresql", "auto", "commit", "SELF_HOSTED", "CLOUD", "x" * 40])
_HOSTS = st.sampled_from(["a", "example.com", "10.0.0.1", "1.2.3.256", "0x7f.1", "1.2.3", "[::1]", "[fd00::41]",
                          "[fd00::41", "fd00::41", "a b", "a%20b", "a%41", "-a", "a_b", ".", "", "user:pw@h",
                          "999999999999", "xn--bcher-kva.example", "b\u00fccher.example"])
_URLS = st.builds(lambda scheme, sep, host, port, path: scheme + sep + host + port + path,
                  st.sampled_from(["http", "https", "HTTP", "ftp", "", "grpc"]),
                  st.sampled_from(["://", ":", ":/", ":///", ":\\\\"]), _HOSTS,
                  st.sampled_from(["", ":", ":0", ":80", ":65535", ":65536", ":99999", ":x", ":8_0"]),
                  st.sampled_from(["", "/", "/x?q=1#f", "\\x", " "]))
_DATES = st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt _][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,9})?)?"
                       r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?)?\Z")
_VALUES = st.one_of(st.text(max_size=12), _NUMBERISH, _WORDS, _URLS, _DATES,
                    st.from_regex(r"\A[+-]?[0-9]{1,13}(\.[0-9]{0,3})?\Z"))


def _pydantic_accepts(model, name, env_names, value):
    for key in env_names:
        os.environ.pop(key, None)
    os.environ[env_names[0]] = value
    try:
        model()
        return True
    except (ValidationError, ValueError):
        return False
    finally:
        os.environ.pop(env_names[0], None)


def test_every_type_class_is_covered():
    classes = {json.loads(_type_class(RELEASES[v]["api"]["settings"][n]))[0]["t"] for v, n in REPRESENTATIVES}
    assert {"str", "bool", "int", "float", "literal", "enum", "http_url", "optional", "union"} <= classes
    assert len(REPRESENTATIVES) > 40


@pytest.mark.parametrize("version,name", REPRESENTATIVES)
@settings(max_examples=int(os.environ.get("DIFY_SCHEMA_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_VALUES)
def test_stdlib_validator_agrees_with_pydantic(version, name, value):
    if "\x00" in value:
        return  # an env file cannot hold NUL, and os.environ refuses it
    spec = RELEASES[version]["api"]["settings"][name]
    model = _one_field_model(version, name)
    theirs = _pydantic_accepts(model, name, spec.get("env") or [name], value)
    mine = ds.check_setting(spec, value) is None
    assert mine == theirs, (version, name, spec["type"], value, ds.check_setting(spec, value))


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_rebuilt_model_loads_defaults_and_refuses_an_empty_port(version, monkeypatch):
    """The model the probe builds: Dify's defaults load; REDIS_PORT= fails as in DifyConfig."""
    for key in list(os.environ):
        if key.upper() in RELEASES[version]["api"]["names"]:
            monkeypatch.delenv(key)
    model = _MODELS.get(version) or ds.pydantic_model(RELEASES[version])
    _MODELS[version] = model
    config = model()
    assert config.REDIS_PORT == 6379 and config.DB_TYPE == "postgresql"
    monkeypatch.setenv("CONSOLE_API_URL", "https://dify.example")
    assert model().FILES_URL == "https://dify.example"  # AliasChoices("FILES_URL", "CONSOLE_API_URL")
    monkeypatch.setenv("REDIS_PORT", "")
    with pytest.raises(ValidationError):
        model()
