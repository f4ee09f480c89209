# -*- coding: utf-8 -*-
"""difyops.fleet.secret_problem: the fleet's secret rules, usable in a role's assert."""

from __future__ import annotations

import pytest

from ansible_collections.difyops.fleet.plugins.filter.secrets import FilterModule

secret_problem = FilterModule().filters()["secret_problem"]


def test_good_value_has_no_problem():
    assert secret_problem("Zq8vT3mK9pL2xR7wN4bY6cH1", "weaviate_api_key") == ""


@pytest.mark.parametrize("value,needle", [
    ("WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih", "public sample"),
    ("difyai123456", "public sample"),
    ("", "empty"),
    (None, "empty"),
    ("short1", "too short"),
    ("has a space in it 0123456789", "whitespace"),
    (12345678901234567890, "must be a string"),
])
def test_bad_values_are_named_without_the_value(value, needle):
    msg = secret_problem(value, "qdrant_api_key")
    assert needle in msg and msg.startswith("qdrant_api_key")
    if isinstance(value, str) and len(value) > 3:
        assert value not in msg


redact = FilterModule().filters()["redact"]


def test_redact_masks_every_secret_value_longest_first():
    secrets = {"secret_key": "sk-Zq8vT3mK9pL2xR7w", "db_password": "Zq8vT3mK9pL2", "short": "abc"}
    text = "env SECRET_KEY=sk-Zq8vT3mK9pL2xR7w DB_PASSWORD=Zq8vT3mK9pL2 x=abc"
    out = redact(text, secrets)
    assert "Zq8vT3mK9pL2" not in out
    assert out == "env SECRET_KEY=******** DB_PASSWORD=******** x=abc"


def test_redact_takes_a_list_and_any_input():
    assert redact({"a": "p4ssw0rd-long"}, ["p4ssw0rd-long"]) == "{'a': '********'}"
    assert redact(None, ["p4ssw0rd-long"]) == ""
    assert redact("nothing secret", {}) == "nothing secret"


failure_summary = FilterModule().filters()["failure_summary"]
SECRETS = {"secret_key": "sk-Zq8vT3mK9pL2xR7w", "redis_password": "Rp-4bY6cH1Zq8vT3"}


def test_failure_summary_of_a_loop_names_failed_items_and_masks_secrets():
    result = {"results": [
        {"item": "api", "failed": False, "changed": True},
        {"item": "worker", "failed": True,
         "msg": "Error starting container: redis://:Rp-4bY6cH1Zq8vT3@10.0.0.5:6379/0 refused",
         "container": {"State": {"Health": {"Status": "unhealthy", "Log": [
             {"Output": "old"}, {"Output": "SECRET_KEY=sk-Zq8vT3mK9pL2xR7w check failed\n"}]}}}},
    ]}
    lines = failure_summary(result, SECRETS)
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("worker: Error starting container")
    assert "health unhealthy: SECRET_KEY=******** check failed" in line
    assert "Rp-4bY6cH1Zq8vT3" not in line and "sk-Zq8vT3mK9pL2xR7w" not in line


def test_failure_summary_of_one_result_and_of_nothing_failed():
    assert failure_summary({"failed": True, "msg": "boom sk-Zq8vT3mK9pL2xR7w"}, SECRETS) == ["boom ********"]
    assert failure_summary({"changed": False}, SECRETS) == []
    assert failure_summary(None, SECRETS) == []


def test_failure_summary_shows_the_tail_of_a_job_output_masked():
    result = {"failed": True, "msg": "exited 1",
              "container": {"Output": "upgrading\nconnect to postgresql://dify:Rp-4bY6cH1Zq8vT3@db failed\n"}}
    (line,) = failure_summary(result, SECRETS)
    assert line == "exited 1; last output: upgrading\nconnect to postgresql://dify:********@db failed"
