# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The common part of the fleet's controller-side actions (fleet_plan, fleet_preflight)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import time

from ansible.plugins.action import ActionBase


class FleetAction(ActionBase):
    """An action run in the controller process over the whole inventory.

    Subclasses set ``ARGUMENT_SPEC`` (their module's) and implement
    :meth:`read_hostvars` (what they need of the play's hostvars, when the
    task gives none) and :meth:`act`. ``self.read_seconds`` is the controller
    CPU time spent reading hostvars.
    """

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGUMENT_SPEC = {}

    def read_hostvars(self, groups, hostvars):
        raise NotImplementedError

    def act(self, result, args, groups, hostvars):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(FleetAction, self).run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)[1]
        groups = args.get("groups")
        if groups is None:
            groups = task_vars.get("groups") or {}
        hostvars = args.get("hostvars")
        started = time.process_time()
        if hostvars is None:
            hostvars = self.read_hostvars(groups, task_vars.get("hostvars") or {})
        self.read_seconds = round(time.process_time() - started, 4)
        return self.act(result, args, groups, hostvars)
