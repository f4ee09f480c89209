# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r"""
---
name: catalog
short_description: The fleet's service catalog - groups, host patterns, services, ports, knobs
version_added: "0.2.0"
author: difyops.fleet contributors (@difyops)
description:
  - Answers from the one catalog of the collection (C(plugins/module_utils/catalog.py)) - every service of a Dify
    fleet with its inventory group, the roles and playbook tier that configure it, its ports (variable, default,
    bind address, client groups), how many hosts its group may hold and its memory budget.
  - Playbooks use it for their host patterns and to build the dynamic group of every fleet host; roles use it for
    their client lists, so a new service is one catalog entry plus its role.
  - Use C(query) (or C(wantlist=true)) for answers that are lists; C(lookup) joins lists of strings with commas.
options:
  _terms:
    description:
      - What to return, one of C(groups) (the fleet's inventory groups, in order), C(pattern) (those groups as a
        host pattern C(a:b:c)), C(hosts) (the inventory's hosts in those groups, in group order, each once),
        C(services) (every service as a dict), C(service) (the one named O(name)), C(clients) (client groups of
        the port named O(port)), C(port) (the number the port named O(port) listens on on O(host), from that
        host's variable or the catalog default), C(platforms) (supported Debian releases and what each ships),
        C(knobs) (the capacity plan's sizing knobs with their defaults), C(sandbox_network) (the sandbox's Docker
        network - name, bridge, the variable that moves its subnet and the default subnet),
        C(local_sandbox_network) (the same for Dify 1.16's local sandbox, whose network is its own), C(catalog)
        (all of it).
      - C(groups), C(pattern) and C(hosts) take O(role) or O(tier) to keep only the groups that role configures or
        that tier runs on.
    required: true
    type: list
    elements: str
  name:
    description: Service name, for C(service).
    type: str
  role:
    description: Keep only the groups whose service this role configures (C(common), C(firewall) and
      C(exporters) run on every group).
    type: str
  tier:
    description: Keep only the groups this playbook tier runs on (C(postgresql), C(redis), C(dify), C(edge)...).
    type: str
  port:
    description: Port name, for C(clients) and C(port) (C(postgresql), C(redis), C(squid_reverse), C(https)...).
    type: str
  host:
    description: Inventory host, for C(port); defaults to the current host.
    type: str
notes:
  - The catalog is code, not inventory - answers do not depend on the inventory except C(hosts) and C(port).
seealso:
  - module: difyops.fleet.fleet_preflight
  - plugin: difyops.fleet.firewall_rules
    plugin_type: filter
"""

EXAMPLES = r"""
# In the first play of a playbook (hosts: localhost): every fleet host into the
# group dify_fleet, which the later plays target.
- name: Add every fleet host to dify_fleet
  ansible.builtin.add_host:
    name: "{{ item }}"
    groups: [dify_fleet]
  loop: "{{ query('difyops.fleet.catalog', 'hosts') }}"
  changed_when: false

# The hosts a role configures, as a pattern for a play's hosts: line.
- name: Show the storage role's hosts
  ansible.builtin.debug:
    msg: "{{ lookup('difyops.fleet.catalog', 'pattern', role='storage') }}"

# A client list from the catalog (pg_hba of the postgresql role).
- name: Show who may connect to PostgreSQL
  ansible.builtin.debug:
    msg: "{{ query('difyops.fleet.catalog', 'clients', port='postgresql') }}"

# Where PostgreSQL listens on the primary (postgresql_port there, else 5432).
- name: Show the primary's port
  ansible.builtin.debug:
    msg: "{{ lookup('difyops.fleet.catalog', 'port', port='postgresql', host=groups['dify_postgres'][0]) }}"
"""

RETURN = r"""
_raw:
  description:
    - C(groups), C(hosts), C(clients) - lists of names; C(pattern) - one string; C(port) - one integer;
      C(service) - one dict (name, group, purpose, roles, tier, ports, memory, required, alternative, max_hosts,
      exactly, odd_for_ha, first_host); C(services), C(knobs) - lists of dicts; C(platforms), C(sandbox_network),
      C(local_sandbox_network), C(catalog) - a dict.
  type: list
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.difyops.fleet.plugins.module_utils import catalog
from ansible_collections.difyops.fleet.plugins.module_utils import knobs
from ansible_collections.difyops.fleet.plugins.module_utils.fleet import FleetError

WHAT = ("groups", "pattern", "hosts", "services", "service", "clients", "port", "platforms", "knobs",
        "sandbox_network", "local_sandbox_network", "catalog")


def answer(what, variables, name=None, role=None, tier=None, port=None, host=None):
    """The lookup's answer for one term, as a list."""
    if what == "groups":
        return catalog.groups_for(role, tier)
    if what == "pattern":
        return [catalog.pattern(role, tier)]
    if what == "hosts":
        groups = variables.get("groups") or {}
        wanted = catalog.groups_for(role, tier)
        return [h for h in catalog.fleet_hosts(groups) if any(h in catalog.members(groups, g) for g in wanted)]
    if what == "services":
        return [s.as_dict() for s in catalog.SERVICES]
    if what == "service":
        return [catalog.service(name).as_dict()]
    if what == "clients":
        return catalog.clients(port)
    if what == "port":
        host = host or variables.get("inventory_hostname")
        return [catalog.port_value(port, host, variables.get("groups") or {}, variables.get("hostvars") or {})]
    if what == "platforms":
        return [catalog.as_data()["platforms"]]
    if what == "knobs":
        return [k.as_dict() for k in knobs.KNOBS]
    if what == "sandbox_network":
        return [dict(catalog.SANDBOX_NETWORK)]
    if what == "local_sandbox_network":
        return [dict(catalog.LOCAL_SANDBOX_NETWORK)]
    return [catalog.as_data()]


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        out = []
        for term in terms:
            if term not in WHAT:
                raise AnsibleLookupError("difyops.fleet.catalog: %r is not one of %s" % (term, ", ".join(WHAT)))
            needs = {"service": "name", "clients": "port", "port": "port"}.get(term)
            if needs and not self.get_option(needs):
                raise AnsibleLookupError("difyops.fleet.catalog: %s needs %s=" % (term, needs))
            try:
                out.extend(answer(term, variables, name=self.get_option("name"), role=self.get_option("role"),
                                  tier=self.get_option("tier"), port=self.get_option("port"),
                                  host=self.get_option("host")))
            except FleetError as exc:
                raise AnsibleLookupError("difyops.fleet.catalog: %s" % exc)
        return out
