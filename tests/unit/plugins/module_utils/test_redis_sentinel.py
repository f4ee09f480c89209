# -*- coding: utf-8 -*-
"""Pure Sentinel logic: endpoints, majority view, SENTINEL SET plans, config parsing."""

from __future__ import annotations

import pytest

from ansible_collections.difyops.fleet.plugins.module_utils.redis_sentinel import (
    SentinelError,
    config_master_auth,
    format_endpoint,
    majority_master,
    parse_endpoint,
    plan_settings,
    sentinel_view,
    split_config_args,
)


@pytest.mark.parametrize("value, expected", [
    ("10.0.0.1", ("10.0.0.1", 26379)),
    ("10.0.0.1:26380", ("10.0.0.1", 26380)),
    ("[fd00::1]:1234", ("fd00::1", 1234)),
    ("[fd00::1]", ("fd00::1", 26379)),
    ({"host": "h", "port": "7"}, ("h", 7)),
    ({"host": "h"}, ("h", 26379)),
])
def test_parse_endpoint(value, expected):
    assert parse_endpoint(value) == expected


@pytest.mark.parametrize("value", ["", "h:0", "h:70000", "h:x", "[fd00::1:5", 5, {"port": 1}])
def test_parse_endpoint_refuses(value):
    with pytest.raises(SentinelError):
        parse_endpoint(value)


def test_format_endpoint_brackets_ipv6():
    assert format_endpoint("fd00::1", 26379) == "[fd00::1]:26379"
    assert format_endpoint("10.0.0.1", 6379) == "10.0.0.1:6379"


def test_majority_master():
    views = [{"master": "a:1"}, {"master": "b:1"}, {"master": "b:1"}, {"master": None}]
    assert majority_master(views) == ("b:1", False)
    assert majority_master([{"master": "a:1"}, {"master": "a:1"}]) == ("a:1", True)
    assert majority_master([{"master": None}]) == (None, True)
    # A tie goes to the answer seen first.
    assert majority_master([{"master": "a:1"}, {"master": "b:1"}]) == ("a:1", False)


def test_plan_settings_only_differences():
    current = {"quorum": "2", "down-after-milliseconds": "5000", "failover-timeout": "60000",
               "parallel-syncs": "1"}
    assert plan_settings(current, {"quorum": 2, "down-after-milliseconds": 5000,
                                   "failover-timeout": 60000, "parallel-syncs": 1}) == []
    assert plan_settings(current, {"quorum": 3, "down-after-milliseconds": None,
                                   "failover-timeout": 30000}) == [("quorum", "3"), ("failover-timeout", "30000")]
    with pytest.raises(SentinelError):
        plan_settings(current, {"notify-script": "/bin/x"})


@pytest.mark.parametrize("line, args", [
    ('sentinel auth-pass m "a b\\"c"', ["sentinel", "auth-pass", "m", 'a b"c']),
    ("sentinel auth-pass m 'x y'", ["sentinel", "auth-pass", "m", "x y"]),
    ('requirepass "\\x41\\n"', ["requirepass", "A\n"]),
    ("  port   26379  ", ["port", "26379"]),
])
def test_split_config_args(line, args):
    assert split_config_args(line) == args


def test_config_master_auth_reads_the_rewritten_file():
    text = """# comment
sentinel monitor dify-master 10.0.0.1 6379 2
sentinel auth-pass dify-master "s3cr\\"et"
sentinel auth-user other-master bob
sentinel auth-pass other-master nope
"""
    assert config_master_auth(text, "dify-master") == (None, 's3cr"et')
    assert config_master_auth(text, "other-master") == ("bob", "nope")
    assert config_master_auth("", "x") == (None, None)


def test_sentinel_view_reports_unreachable_sentinel():
    # Port 1 on loopback: nothing listens there; the view says so, no exception.
    view = sentinel_view("127.0.0.1:1", "dify-master", timeout=0.5)
    assert view["reachable"] is False
    assert view["master"] is None
    assert view["error"]
