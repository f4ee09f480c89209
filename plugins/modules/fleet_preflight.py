#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
---
module: fleet_preflight
short_description: Check a whole Dify fleet's inventory before any host is changed
version_added: "0.1.0"
author: difyops.fleet contributors (@difyops)
description:
  - Checks the inventory of a Dify fleet against the rules the roles and the capacity plan cannot check
    on their own, and reports B(every) problem at once, each naming the host(s), the variable, the value
    and the fix.
  - Rules - every fleet group holds as many hosts as the service catalog says (a required group is not
    empty, exactly one C(dify_beat) host, at most one C(dify_plugin_daemon) and one C(dify_mysql) host, an odd
    number of at least 3 Sentinels when high availability is asked for - C(difyops_ha), default on when
    C(dify_redis) has 2 hosts or more); facts were gathered on every fleet host and it runs a supported Debian
    (12 bookworm or 13 trixie; the one OS check of the collection); each variable carrying a role's prefix is
    valid for that role's C(meta/argument_specs.yml) (type, choices, elements) and is not a likely misspelling of
    one or of a capacity plan knob; an edge host with C(nginx_tls_enabled) has C(nginx_server_name); no variable
    holding a credential (a name with pass, secret, key, token, cipher, credential or auth, and everything under
    C(difyops_secrets)) carries one of Dify's public sample secrets.
  - The capacity rules (connection budget within C(max_connections), memory of shared hosts, knob values) are
    checked by M(difyops.fleet.fleet_plan); pass its C(errors) in O(plan_errors) to report them in the same list.
  - "Read-only. Runs on the controller (C(delegate_to: localhost), C(run_once))."
  - The database rules - a fleet with C(dify_mysql) and no C(dify_postgres) runs Dify on MySQL
    (C(dify_db_type=mysql)) and then needs a vector store other than pgvector, or a PostgreSQL host for pgvector.
  - The storage rule - more than one api/worker host needs shared file storage (C(storage_backend) nfs,
    shared or s3).
options:
  groups:
    description:
      - Inventory groups, group name to list of host names.
      - Defaults to the play's C(groups).
    type: dict
  hostvars:
    description:
      - Host name to that host's variables and facts (C(hostvars) after facts were gathered).
      - When omitted, the action reads each fleet host's variables from the play's C(hostvars) one at a
        time; a variable whose template cannot be rendered on the controller (it needs facts of a host
        outside the play, say) keeps its template text and is treated as not a literal value, instead
        of failing the whole check. This is the recommended use.
      - It holds secrets - run the task with C(no_log) and report RV(errors) in a later task.
    type: dict
  argument_specs:
    description:
      - Role name to the content of that role's C(meta/argument_specs.yml).
    type: dict
    default: {}
  unreachable_hosts:
    description: Hosts that did not answer (a ping with C(ignore_unreachable)); each is reported.
    type: list
    elements: str
    default: []
  plan_errors:
    description: Errors of M(difyops.fleet.fleet_plan), added to the report.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - difyops.fleet.read_only
notes:
  - The module fails when any problem is found; RV(errors) lists them and the failure message numbers them.
seealso:
  - module: difyops.fleet.fleet_plan
"""

EXAMPLES = r"""
- name: Check the fleet (secrets are in hostvars, so the result is not shown)
  difyops.fleet.fleet_preflight:
    argument_specs:
      nginx: "{{ lookup('ansible.builtin.file', 'roles/nginx/meta/argument_specs.yml') | from_yaml }}"
    plan_errors: "{{ capacity.errors | default([]) }}"
  delegate_to: localhost
  run_once: true
  no_log: true
  failed_when: false
  register: preflight

- name: Report every problem at once
  ansible.builtin.fail:
    msg: "{{ preflight.msg }}"
  when: preflight.errors | length > 0
  run_once: true
"""

RETURN = r"""
errors:
  description: One sentence per problem (host, variable, value, fix); empty when the fleet passes.
  returned: always
  type: list
  elements: str
  sample: ["edge1: nginx_tls_enabled is true but nginx_server_name is ''; ..."]
checked_hosts:
  description: Number of fleet hosts checked.
  returned: always
  type: int
"""

from ansible_collections.difyops.fleet.plugins.module_utils.fleet import INVENTORY_ARGUMENT_SPEC, inventory_module
from ansible_collections.difyops.fleet.plugins.module_utils.preflight import (
    check_fleet,
    fleet_hosts,
    format_errors,
)


ARGUMENT_SPEC = dict(
    INVENTORY_ARGUMENT_SPEC,
    argument_specs=dict(type="dict", default={}),
    plan_errors=dict(type="list", elements="str", default=[]),
    unreachable_hosts=dict(type="list", elements="str", default=[]),
)


def main():
    # The action plugin (plugins/action/fleet_preflight.py) normally runs the
    # checks on the controller; this module is the same check for a direct run.
    module, p = inventory_module(ARGUMENT_SPEC, "fleet_preflight")
    errors = check_fleet(p["groups"], p["hostvars"], p["argument_specs"], p["plan_errors"],
                         p["unreachable_hosts"])
    checked = len(fleet_hosts(p["groups"]))
    if errors:
        module.fail_json(msg=format_errors(errors), errors=errors, checked_hosts=checked)
    module.exit_json(changed=False, errors=[], checked_hosts=checked,
                     msg="Preflight passed for %d host(s)." % checked)


if __name__ == "__main__":
    main()
