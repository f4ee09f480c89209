# -*- coding: utf-8 -*-
"""The dify_redis_env filter: same contract as module_utils, Ansible errors."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.difyops.fleet.plugins.filter.redis import FilterModule


def f():
    return FilterModule().filters()["dify_redis_env"]


def test_filter_sentinel_form():
    env = f()(["10.0.0.1", "10.0.0.2", "10.0.0.3"], password="p" * 20, sentinel_password="s" * 20)
    assert env["REDIS_SENTINELS"] == "10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379"
    assert env["CELERY_BROKER_URL"].count("sentinel://:" + "p" * 20 + "@") == 3
    assert env["REDIS_SENTINEL_SERVICE_NAME"] == "dify-master"


def test_filter_plain_form():
    env = f()([], password="p" * 20, host="10.0.0.9")
    assert env["CELERY_BROKER_URL"] == "redis://:%s@10.0.0.9:6379/1" % ("p" * 20)


def test_filter_errors_are_ansible_errors():
    with pytest.raises(AnsibleFilterError) as err:
        f()(["h"], password="difyai123456")
    assert "sample" in str(err.value)
    with pytest.raises(AnsibleFilterError) as err:
        f()(["h"], password="p" * 20, bogus=1)
    assert "ansible-doc" in str(err.value)
