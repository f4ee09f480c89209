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

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.difyops.fleet.plugins.module_utils.capacity_plan import (
    PlanError,
    collect_host_inputs,
    run,
)
from ansible_collections.difyops.fleet.plugins.modules.fleet_plan import ARGUMENT_SPEC
from ansible_collections.difyops.fleet.plugins.plugin_utils.fleet_action import FleetAction


class ActionModule(FleetAction):

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def read_hostvars(self, groups, hostvars):
        return collect_host_inputs(groups, hostvars)

    def act(self, result, args, groups, hostvars):
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
        out["cpu_seconds"]["read_hostvars"] = self.read_seconds
        result.update(out)
        return result
