# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Inventory helpers shared by filters and modules: groups and host addresses."""

from __future__ import annotations

# The inventory groups every role and plugin of difyops.fleet uses.
FLEET_GROUPS = (
    "dify_postgres",
    "dify_mysql",
    "dify_redis",
    "dify_sentinel",
    "dify_vector",
    "dify_api",
    "dify_worker",
    "dify_beat",
    "dify_web",
    "dify_sandbox",
    "dify_plugin_daemon",
    "dify_ssrf_proxy",
    "dify_edge",
)


class FleetError(Exception):
    """A bad inventory: the message names the variable and the fix."""


def _get(mapping, key, default=None):
    try:
        return mapping[key]
    except (KeyError, TypeError):
        return default


def host_address(hostname, hostvars):
    """The address other hosts reach ``hostname`` at.

    ``difyops_address`` when set, else the default IPv4 address from facts,
    else ``ansible_host``, else the inventory name itself.
    """
    if not isinstance(hostname, str) or not hostname:
        raise FleetError("host_address expects an inventory host name, got %r" % (hostname,))
    hv = _get(hostvars, hostname)
    if hv is None:
        raise FleetError(
            "host %r is not in the inventory; check the group it was taken from" % hostname
        )
    explicit = _get(hv, "difyops_address")
    if explicit:
        return str(explicit)
    facts = _get(hv, "ansible_facts") or {}
    ipv4 = _get(facts, "default_ipv4") or _get(hv, "ansible_default_ipv4") or {}
    addr = _get(ipv4, "address")
    if addr:
        return str(addr)
    ansible_host = _get(hv, "ansible_host")
    if ansible_host:
        return str(ansible_host)
    return hostname


def group_addresses(group, groups, hostvars):
    """Addresses of every host of ``group``, in inventory order (empty if no such group)."""
    if not isinstance(group, str) or not group:
        raise FleetError("group_addresses expects a group name, got %r" % (group,))
    members = _get(groups, group) or []
    return [host_address(h, hostvars) for h in members]
