# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for Dify's environment: the storage variables, public and in-URL addresses.

The logic lives in plugins/module_utils (dify_storage.py, fleet.py), shared
with the dify_env module; each filter is documented in plugins/filter/<name>.yml.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.difyops.fleet.plugins.module_utils.dify_storage import StorageError, storage_env
from ansible_collections.difyops.fleet.plugins.module_utils.fleet import (
    FleetError,
    public_url as _public_url,
    url_host as _url_host,
)


def dify_storage_env(settings):
    try:
        return storage_env(settings)
    except StorageError as exc:
        raise AnsibleFilterError("dify_storage_env: %s" % exc) from None


def url_host(address):
    try:
        return _url_host(address)
    except FleetError as exc:
        raise AnsibleFilterError("url_host: %s" % exc) from None


def dify_public_url(edge_host, hostvars):
    try:
        return _public_url(edge_host, hostvars)
    except FleetError as exc:
        raise AnsibleFilterError("dify_public_url: %s" % exc) from None


class FilterModule(object):
    def filters(self):
        return {
            "dify_storage_env": dify_storage_env,
            "url_host": url_host,
            "dify_public_url": dify_public_url,
        }
