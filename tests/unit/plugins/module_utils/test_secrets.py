"""Unit tests of plugins/module_utils/secrets.py: generation, refusal, the file format."""

from __future__ import annotations

import base64
import os
import stat
import string

import pytest
from hypothesis import given, settings, strategies as st


from ansible_collections.difyops.fleet.plugins.module_utils import secrets as s

SAMPLES = [
    "difyai123456",
    "Difyai123456",
    "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U",
    "dify-sandbox",
    "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi",
    "QaHbTe77CtuXmsfyhR7+vRjI/+XbV1AaFy691iy+kGDv2Jvy0/eAh8Y1",
    "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih",
    # Dify 1.16.1's docker/.env.example and compose defaults (6f8ed69e) for the agent backend
    "dify-agent-run-token-for-dev-only",
    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
    "plugin-api-key",
    "inner-api-key",
]


@pytest.mark.parametrize("value", SAMPLES)
def test_every_dify_sample_value_is_refused(value):
    problem = s.check_secret("db_password", value)
    assert problem is not None and "sample" in problem and "db_password" in problem
    assert s.find_sample_secrets({"SECRET_KEY": value, "OTHER": "x" * 40}) == ["SECRET_KEY"]


def test_sample_values_are_matched_case_insensitively_and_trimmed():
    assert s.is_sample_value(" DIFY-SANDBOX ")
    assert not s.is_sample_value("dify-sandbox-" + "a" * 20)
    assert not s.is_sample_value(None)


def test_find_sample_secrets_on_a_role_variable_dict():
    found = s.find_sample_secrets({"redis_password": "difyai123456", "sandbox_api_key": "dify-sandbox", "n": 3})
    assert found == ["redis_password", "sandbox_api_key"]
    assert s.find_sample_secrets("not a dict") == []


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("short", "too short"),
        ("", "empty"),
        (None, "empty"),
        (12345678901234567890, "must be a string"),
        ("abcdefgh ijklmnopqrst", "whitespace"),
    ],
)
def test_weak_values_are_refused_with_the_key_named(value, fragment):
    problem = s.check_secret("redis_password", value)
    assert fragment in problem and "redis_password" in problem


def test_init_password_rules():
    assert s.check_secret("init_password", "abcdefghijklm") is not None  # no digit
    assert s.check_secret("init_password", "a1" * 16) is not None  # 32 > 30
    assert s.check_secret("init_password", "abcdefghijk1") is None


@pytest.mark.parametrize("key", [k for k in s.KNOWN_KEYS if k not in s.BASE64URL_32_KEYS])
def test_generated_values_are_accepted_and_url_safe(key):
    value = s.generate(key)
    assert s.check_secret(key, value) is None
    assert value.isalnum()
    assert len(value) == s.GENERATED_LENGTH.get(key, s.DEFAULT_GENERATED_LENGTH)


def test_the_agent_server_secret_key_is_unpadded_base64url_of_32_random_bytes():
    values = {s.generate("agent_server_secret_key") for dummy in range(200)}
    assert len(values) == 200
    for value in values:
        assert s.check_secret("agent_server_secret_key", value) is None
        assert "=" not in value and len(value) == 43 and set(value) <= set(string.ascii_letters + string.digits + "-_")
        assert len(base64.urlsafe_b64decode(value + "=")) == 32


@pytest.mark.parametrize("value, fragment", [
    (base64.urlsafe_b64encode(bytes(range(32))).decode(), "unpadded base64url"),      # padded
    (base64.b64encode(bytes(range(200, 232))).rstrip(b"=").decode(), "base64url"),    # '+' '/'
    (base64.urlsafe_b64encode(bytes(range(24))).decode(), "exactly 32 bytes"),       # 24 bytes
    ("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY", "public sample"),                # upstream's sample
])
def test_agent_server_secret_keys_the_agent_backend_would_refuse(value, fragment):
    problem = s.check_secret("agent_server_secret_key", value)
    assert problem and fragment in problem and value not in problem


def test_agent_keys_are_optional_generated_once_and_rotated_through_the_dify_tier():
    existing = {k: s.generate(k) for k in s.REQUIRED_KEYS}
    new, generated, rotated = s.plan(existing, list(s.REQUIRED_KEYS) + list(s.AGENT_KEYS))
    assert sorted(generated) == sorted(s.AGENT_KEYS) and not rotated
    again, generated, dummy = s.plan(new, list(s.REQUIRED_KEYS) + list(s.AGENT_KEYS))
    assert again == new and generated == []
    for key in s.AGENT_KEYS:
        assert key in s.OPTIONAL_KEYS and key not in s.REQUIRED_KEYS and s.ROTATION_TIERS[key] == ("dify",)
    rotated_map, dummy, rotated = s.plan(new, [], rotate=["agent_server_secret_key"])
    assert rotated == ["agent_server_secret_key"] and rotated_map["agent_server_secret_key"] != new["agent_server_secret_key"]
    assert s.check_secret("agent_server_secret_key", rotated_map["agent_server_secret_key"]) is None


def test_generated_values_differ():
    assert len({s.generate("secret_key") for dummy in range(200)}) == 200


@settings(max_examples=50, deadline=None)
@given(
    present=st.sets(st.sampled_from(s.REQUIRED_KEYS)),
)
def test_plan_never_touches_existing_values(present):
    existing = {k: s.generate(k) for k in present}
    new, generated, rotated = s.plan(existing, list(s.REQUIRED_KEYS))
    for key in present:
        assert new[key] == existing[key]
    assert set(generated) == set(s.REQUIRED_KEYS) - present
    assert rotated == []
    assert set(new) == set(s.REQUIRED_KEYS)


def test_plan_rotates_only_named_keys():
    existing = {k: s.generate(k) for k in s.REQUIRED_KEYS}
    new, generated, rotated = s.plan(existing, list(s.REQUIRED_KEYS), ["sandbox_api_key"])
    assert generated == [] and rotated == ["sandbox_api_key"]
    assert new["sandbox_api_key"] != existing["sandbox_api_key"]
    assert {k: v for k, v in new.items() if k != "sandbox_api_key"} == {
        k: v for k, v in existing.items() if k != "sandbox_api_key"
    }


@pytest.mark.parametrize(
    "rotate, fragment",
    [(["pgbackrest_cipher_pass"], "cannot be rotated"), (["nope"], "not a fleet secret"), (["init_password"], "does not exist")],
)
def test_plan_refuses_bad_rotation(rotate, fragment):
    existing = {k: s.generate(k) for k in s.REQUIRED_KEYS}
    with pytest.raises(s.SecretsError, match=fragment):
        s.plan(existing, list(s.REQUIRED_KEYS), rotate)


def test_file_round_trip(tmp_path):
    mapping = {k: s.generate(k) for k in s.REQUIRED_KEYS}
    text = s.render_file(mapping)
    assert s.parse_file(text, "f") == mapping
    path = tmp_path / "sub" / "lab.yml"
    s.write_private(str(path), text)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert s.parse_file(path.read_text(), str(path)) == mapping


def test_parse_file_rejects_other_shapes():
    assert s.parse_file("", "f") == {}
    with pytest.raises(s.SecretsError, match="difyops_secrets"):
        s.parse_file("secret_key: abc\n", "f")
    with pytest.raises(s.SecretsError, match="not valid YAML"):
        s.parse_file("difyops_secrets: [\n", "f")


def test_vault_detection(tmp_path):
    v = tmp_path / "v.yml"
    v.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    p = tmp_path / "p.yml"
    p.write_text("difyops_secrets: {}\n")
    assert s.is_vault_file(str(v))
    assert not s.is_vault_file(str(p))
    assert not s.is_vault_file(str(tmp_path / "absent"))


def test_masked_view_hides_every_value():
    mapping = {k: s.generate(k) for k in s.REQUIRED_KEYS}
    text = s.masked_view(mapping, generated=["db_password"], rotated=["secret_key"])
    for value in mapping.values():
        assert value not in text
    assert "db_password: <generated>" in text and "secret_key: <rotated>" in text


def test_copy_private_never_overwrites(tmp_path):
    src = tmp_path / "a"
    src.write_text("x")
    dest = str(tmp_path / "b")
    s.copy_private(str(src), dest)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        s.copy_private(str(src), dest)
