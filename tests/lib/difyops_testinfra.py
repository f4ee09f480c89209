"""pytest plugin for the molecule scenarios: run test commands with podman exec.

testinfra's ``ansible://`` hosts run each command through the host's own
connection when testinfra knows it (ssh, docker, lxc, local), but a host with
``ansible_connection: podman`` (every molecule lab host) falls back to one
``ansible`` process per command: seconds each. This plugin gives such hosts
testinfra's podman backend (``podman exec``, a fraction of a second); modules
called with ``host.ansible(...)`` still go through Ansible.

scripts/molecule.sh loads it (PYTEST_PLUGINS) for every scenario.
"""

import testinfra
from testinfra.utils import ansible_runner

_ansible_host = ansible_runner.get_ansible_host


def _podman_or_ansible_host(config, inventory, host, *args, **kwargs):
    hostvars = inventory.get("_meta", {}).get("hostvars", {}).get(host, {})
    if hostvars.get("ansible_connection") in ("podman", "containers.podman.podman"):
        return testinfra.get_host("podman://%s" % hostvars.get("ansible_host", host))
    return _ansible_host(config, inventory, host, *args, **kwargs)


ansible_runner.get_ansible_host = _podman_or_ansible_host
