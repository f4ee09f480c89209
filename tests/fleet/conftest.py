"""The lab fleet under test: groups and addresses from inventories/lab/hosts.yml.

Hosts are reached with podman exec (testinfra's podman backend): the fleet was
converged over SSH like production; the checks only need a shell on each host.
"""
import os

import pytest
import testinfra
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(TOP, "inventories", "lab", "hosts.yml")


def load_inventory():
    if not os.path.exists(INVENTORY):
        pytest.exit("no lab inventory (%s): run scripts/test-fleet.sh, which brings the lab up" % INVENTORY,
                    returncode=2)
    with open(INVENTORY) as fh:
        inv = yaml.safe_load(fh)["all"]
    addresses = dict((h, v["ansible_host"]) for h, v in inv["hosts"].items())
    groups = dict((g, list((v or {}).get("hosts") or {})) for g, v in inv["children"].items())
    return groups, addresses


GROUPS, ADDRESSES = load_inventory()
_HOSTS = {}


def lab_host(name):
    if name not in _HOSTS:
        _HOSTS[name] = testinfra.get_host("podman://" + name)
    return _HOSTS[name]


@pytest.fixture(scope="session")
def groups():
    return GROUPS


@pytest.fixture(scope="session")
def addresses():
    return ADDRESSES
