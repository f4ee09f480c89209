# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Controller side of difyops.fleet.fleet_plan (documented in plugins/modules/fleet_plan.py).

Runs the plan in the controller process: no module is shipped, and without
an explicit ``hostvars`` only the facts and override variables the plan needs
are read from the play's hostvars.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.difyops.fleet.plugins.module_utils.capacity_plan import (
    PlanError,
    collect_host_inputs,
    run,
)
from ansible_collections.difyops.fleet.plugins.modules.fleet_plan import ARGUMENT_SPEC


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        groups = args.get("groups")
        if groups is None:
            groups = task_vars.get("groups") or {}
        hostvars = args.get("hostvars")
        started = time.process_time()
        if hostvars is None:
            hostvars = collect_host_inputs(groups, task_vars.get("hostvars") or {})
        collected = time.process_time() - started
        try:
            out = run(groups, hostvars, args.get("overrides") or {}, args.get("report_path"),
                      args.get("report_title"), check_mode=self._task.check_mode,
                      diff_mode=self._task.diff)
        except PlanError as exc:
            result.update(failed=True, errors=exc.errors,
                          msg="fleet_plan refused the fleet: " + " | ".join(exc.errors))
            return result
        except (IOError, OSError) as exc:
            raise AnsibleActionFail("fleet_plan could not write the report %s: %s; check report_path"
                                    % (args.get("report_path"), to_text(exc)))
        out["cpu_seconds"]["read_hostvars"] = round(collected, 4)
        result.update(out)
        return result
