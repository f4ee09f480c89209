# -*- coding: utf-8 -*-
"""scripts/dify-contract/extract.py: the client library pins read from a uv.lock."""

from __future__ import annotations

import importlib.util
import os

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SPEC = importlib.util.spec_from_file_location("dify_contract_extract",
                                              os.path.join(TOP, "scripts", "dify-contract", "extract.py"))
EXTRACT = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(EXTRACT)

LOCK = '''version = 1

[[package]]
name = "celery"
version = "5.6.2"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "billiard" },
    { name = "kombu" },
]

[[package]]
name = "kombu"
version = "5.6.2"
dependencies = [
    { name = "amqp" },
    { name = "tzdata", marker = "sys_platform == 'win32'" },
]

[[package]]
name = "amqp"
version = "5.3.1"

[[package]]
name = "billiard"
version = "4.2.3"

[[package]]
name = "tzdata"
version = "2025.2"

[[package]]
name = "unrelated"
version = "1.0"

[[package]]
name = "celery"
version = "9.9.9"
'''


def test_pins_follow_dependencies_and_take_the_first_entry():
    assert EXTRACT.lock_pins(LOCK, ("celery",)) == {
        "amqp": "5.3.1", "billiard": "4.2.3", "celery": "5.6.2", "kombu": "5.6.2", "tzdata": "2025.2"}


def test_a_library_the_lock_does_not_pin_stops_the_extraction():
    with pytest.raises(SystemExit):
        EXTRACT.lock_pins(LOCK, ("celery", "opendal"))
