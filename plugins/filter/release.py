# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Filters giving roles outside roles/dify the facts of a Dify release they render (per release)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.difyops.fleet.plugins.module_utils.catalog import CatalogError
from ansible_collections.difyops.fleet.plugins.module_utils.fleet import FleetError
from ansible_collections.difyops.fleet.plugins.module_utils.release_facts import (
    ReleaseFactError,
    agent_proxy_rules as _agent_proxy_rules,
    upgrade_dependencies as _upgrade_dependencies,
    websocket_timeout as _websocket_timeout,
)


def dify_agent_proxy_rules(version, groups, hostvars, replace=None):
    """Upstream's agent SSRF proxy rules of the release ``version``, fleet-shaped (``{}``: none)."""
    try:
        return _agent_proxy_rules(version, groups, hostvars, replace=replace)
    except (ReleaseFactError, CatalogError, FleetError) as exc:
        raise AnsibleFilterError(str(exc)) from None


def dify_websocket_timeout(version):
    """Upstream's GUNICORN_TIMEOUT (seconds) of the websocket api of ``version`` (0: none)."""
    try:
        return _websocket_timeout(version)
    except ReleaseFactError as exc:
        raise AnsibleFilterError(str(exc)) from None


def dify_upgrade_dependencies(version, groups):
    """The services of ``version`` an upgrade starts before api and worker (dependencies first)."""
    try:
        return _upgrade_dependencies(version, groups)
    except (ReleaseFactError, CatalogError) as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule(object):
    def filters(self):
        return {"dify_agent_proxy_rules": dify_agent_proxy_rules,
                "dify_upgrade_dependencies": dify_upgrade_dependencies,
                "dify_websocket_timeout": dify_websocket_timeout}
