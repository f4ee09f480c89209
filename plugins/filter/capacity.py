# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Sizing filters: every service size computed from plain numbers.

The math lives in plugins/module_utils/capacity.py (shared with the
fleet_plan module); each filter is documented in plugins/filter/<name>.yml.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.difyops.fleet.plugins.module_utils import capacity as _cap


def _wrap(name, func):
    def filter_func(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _cap.CapacityError as exc:
            raise AnsibleFilterError("difyops.fleet.%s: %s" % (name, exc))
        except TypeError as exc:
            # wrong arguments (unknown keyword, missing value): say which filter
            raise AnsibleFilterError("difyops.fleet.%s: %s" % (name, exc))
    filter_func.__name__ = name
    filter_func.__doc__ = func.__doc__
    return filter_func


def _opendal_env(scheme, options=None):
    return _cap.opendal_env(scheme, options)


_FILTERS = {
    "pg_tune": _cap.pg_tune,
    "innodb_tune": _cap.innodb_tune,
    "gunicorn_workers": _cap.gunicorn_workers,
    "celery_concurrency": _cap.celery_concurrency,
    "redis_maxmemory": _cap.redis_maxmemory,
    "sentinel_quorum": _cap.sentinel_quorum,
    "connection_budget": _cap.connection_budget,
    "opendal_env": _opendal_env,
}


class FilterModule(object):
    """difyops.fleet capacity filters."""

    def filters(self):
        return dict((name, _wrap(name, func)) for name, func in _FILTERS.items())
