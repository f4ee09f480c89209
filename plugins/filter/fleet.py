# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0
"""Filters that turn inventory names into the addresses hosts reach each other at."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.difyops.fleet.plugins.module_utils.fleet import (
    FleetError,
    group_addresses as _group_addresses,
    host_address as _host_address,
)


def host_address(hostname, hostvars):
    try:
        return _host_address(hostname, hostvars)
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


def group_addresses(group, groups, hostvars):
    try:
        return _group_addresses(group, groups, hostvars)
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule(object):
    def filters(self):
        return {
            "host_address": host_address,
            "group_addresses": group_addresses,
        }
