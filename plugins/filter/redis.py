# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for the Redis tier: Dify's Redis/Celery environment."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.difyops.fleet.plugins.module_utils.redis_contract import (
    RedisContractError,
    dify_redis_env as _dify_redis_env,
)


def dify_redis_env(sentinels, **kwargs):
    try:
        return _dify_redis_env(sentinels=list(sentinels) if sentinels and not isinstance(sentinels, str)
                               else sentinels, **kwargs)
    except RedisContractError as exc:
        raise AnsibleFilterError("dify_redis_env: %s" % exc) from None
    except TypeError as exc:
        raise AnsibleFilterError("dify_redis_env: %s (see ansible-doc -t filter difyops.fleet.dify_redis_env)" % exc) from None


class FilterModule(object):
    def filters(self):
        return {"dify_redis_env": dify_redis_env}
