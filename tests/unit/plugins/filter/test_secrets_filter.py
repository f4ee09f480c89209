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
