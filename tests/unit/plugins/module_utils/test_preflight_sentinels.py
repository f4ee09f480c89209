# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Preflight: IPv6 Sentinel addresses are refused for the Dify releases that split them on ':' (issue 12 #5)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.difyops.fleet.plugins.module_utils import preflight as pf

GROUPS = {
    "dify_redis": ["r1", "r2", "r3"], "dify_sentinel": ["r1", "r2", "r3"],
    "dify_api": ["app"], "dify_worker": ["app"], "dify_plugin_daemon": ["app"],
}


def hostvars(sentinel_address, **app):
    hv = dict((h, {"difyops_address": sentinel_address % i}) for i, h in enumerate(("r1", "r2", "r3"), 1))
    hv["app"] = dict(app)
    return hv


def test_ipv6_sentinel_addresses_are_refused_with_the_fix():
    errors = pf.check_sentinel_addresses(GROUPS, hostvars("fd00::2%d"))
    assert len(errors) == 1
    text = errors[0]
    assert text.startswith("app: the addresses of the dify_sentinel hosts include IPv6 addresses")
    assert "fd00::21 (r1)" in text and "Dify 1.16.1 splits every REDIS_SENTINELS entry on ':'" in text
    assert "dify_redis_sentinels" in text and "host name" in text


def test_ipv4_sentinels_and_host_names_pass():
    assert pf.check_sentinel_addresses(GROUPS, hostvars("10.0.0.2%d")) == []
    names = ["sentinel-%d.example.net:26379" % i for i in (1, 2, 3)]
    assert pf.check_sentinel_addresses(GROUPS, hostvars("fd00::2%d", dify_redis_sentinels=names)) == []


def test_ipv6_in_dify_redis_sentinels_is_refused_for_1_16_1_too():
    hv = hostvars("10.0.0.2%d", dify_version="1.16.1", dify_redis_sentinels=["[fd00::21]:26379", "s2:26379"])
    errors = pf.check_sentinel_addresses(GROUPS, hv)
    assert len(errors) == 1 and "[fd00::21]:26379" in errors[0] and "Dify 1.16.1" in errors[0]


def test_a_release_outside_the_list_and_templates_are_not_judged():
    assert pf.check_sentinel_addresses(GROUPS, hostvars("fd00::2%d", dify_version="9.9.9")) == []
    hv = hostvars("fd00::2%d", dify_redis_sentinels="{{ my_sentinels }}")
    assert pf.check_sentinel_addresses(GROUPS, hv) == []


def test_no_sentinels_no_rule():
    groups = dict(GROUPS, dify_sentinel=[])
    assert pf.check_sentinel_addresses(groups, hostvars("fd00::2%d")) == []


def test_check_fleet_includes_the_rule():
    errors = pf.check_fleet(GROUPS, hostvars("fd00::2%d"))
    assert any("splits every REDIS_SENTINELS entry" in e for e in errors)
