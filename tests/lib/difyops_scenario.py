"""Helpers the molecule scenarios' testinfra tests share (tests/lib is on their
PYTHONPATH, scripts/molecule.sh): reach a scenario host, read its address,
and compute the capacity plan the roles sized it from."""

import json
import os
import subprocess
import sys

import testinfra

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, ".collections"))

_PLAN = {}


def lab_host(name):
    """A scenario host, reached with podman exec (much faster than one ansible run per command)."""
    return testinfra.get_host(f"podman://{name}")


def ansible_host(name):
    """The same host through Ansible, for modules such as setup and for inventory variables."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


def address(host):
    """The host's default IPv4 address, as the role's host_address filter sees it."""
    out = host.run("ip -4 -json route get 1.1.1.1").stdout
    return json.loads(out)[0]["prefsrc"]


def scenario_plan():
    """The capacity plan the roles size from: capacity_plan.build_plan over the scenario's
    inventory and its hosts' facts (what the plan role computes when a role runs alone)."""
    if "plan" not in _PLAN:
        from ansible_collections.difyops.fleet.plugins.module_utils import capacity_plan, catalog

        listed = json.loads(subprocess.run(
            ["ansible-inventory", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--list"],
            capture_output=True, text=True, check=True,
            env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": os.path.join(TOP, ".collections")}).stdout)
        groups = dict((g, v.get("hosts", [])) for g, v in listed.items() if isinstance(v, dict) and g != "_meta")
        hosts = {}
        for name in catalog.fleet_hosts(groups):
            facts = ansible_host(name).ansible("setup", "gather_subset=min,hardware")["ansible_facts"]
            hosts[name] = dict(listed["_meta"]["hostvars"].get(name, {}), **facts)
        _PLAN["plan"] = capacity_plan.build_plan(groups, hosts)
    return _PLAN["plan"]
