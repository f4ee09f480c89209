# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Controller side of difyops.fleet.fleet_preflight (documented in plugins/modules/fleet_preflight.py).

Runs the checks in the controller process. Without an explicit ``hostvars``
each fleet host's variables are read from the play's hostvars one variable
at a time: a variable whose template cannot be rendered here (one that
needs facts of a host outside the play, or a fact only a role sets) keeps
its raw template text, which the checks treat as "not a literal value",
instead of breaking the whole preflight.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from collections.abc import Mapping

from ansible.module_utils.six import string_types

from ansible_collections.difyops.fleet.plugins.module_utils.preflight import (
    check_fleet,
    fleet_hosts,
    format_errors,
    is_checked_var,
)
from ansible_collections.difyops.fleet.plugins.modules.fleet_preflight import ARGUMENT_SPEC
from ansible_collections.difyops.fleet.plugins.plugin_utils.fleet_action import FleetAction


def _plain(value):
    """A plain copy (dict/list/str/scalars); renders lazy containers now, inside the caller's try."""
    if isinstance(value, string_types):
        return str(value)
    if isinstance(value, Mapping):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def _raw(value):
    try:
        return _plain(value)
    except Exception:  # pylint: disable=broad-except
        return "{{ unreadable }}"


def read_hostvars(groups, hostvars):
    """host -> the variables preflight reads, each rendered on its own."""
    out = {}
    for host in fleet_hosts(groups):
        if host not in hostvars:
            continue
        rendered = hostvars[host]
        try:
            raw = hostvars.raw_get(host)
        except Exception:  # pylint: disable=broad-except
            raw = {}
        vars_ = {}
        for name in list(rendered):
            if not is_checked_var(name):
                continue
            try:
                vars_[name] = _plain(rendered[name])
            except Exception:  # pylint: disable=broad-except
                vars_[name] = _raw(raw.get(name) if isinstance(raw, Mapping) else None)
        out[host] = vars_
    return out


class ActionModule(FleetAction):

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def read_hostvars(self, groups, hostvars):
        return read_hostvars(groups, hostvars)

    def act(self, result, args, groups, hostvars):
        errors = check_fleet(groups, hostvars, args.get("argument_specs"), args.get("plan_errors"),
                             args.get("unreachable_hosts"))
        checked = len(fleet_hosts(groups))
        result.update(changed=False, errors=errors, checked_hosts=checked)
        if errors:
            result.update(failed=True, msg=format_errors(errors))
        else:
            result["msg"] = "Preflight passed for %d host(s)." % checked
        return result
