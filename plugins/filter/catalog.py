# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Filters over the fleet's service catalog (plugins/module_utils/catalog.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.difyops.fleet.plugins.module_utils import catalog
from ansible_collections.difyops.fleet.plugins.module_utils.fleet import FleetError


def firewall_rules(hostname, groups, hostvars, extra_sources=None, monitoring_sources=None, extra_rules=None):
    """Every port ``hostname`` opens (catalog ports, then ``extra_rules``), with resolved sources."""
    try:
        return (catalog.open_ports(hostname, groups, hostvars, extra_sources or {}, monitoring_sources or [])
                + catalog.extra_rules(extra_rules or [], groups, hostvars))
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule(object):
    def filters(self):
        return {"firewall_rules": firewall_rules}
