# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The difyops.fleet.catalog lookup: its answers, its refusals, its documentation,
and the dify_fleet group a playbook builds with it."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import ipaddress
import os
import subprocess
import sys

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleLookupError

from ansible_collections.difyops.fleet.plugins.lookup import catalog as catalog_lookup
from ansible_collections.difyops.fleet.plugins.module_utils import catalog

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
BIN = os.path.dirname(sys.executable)

GROUPS = {"all": ["pg", "my", "app", "edge", "other"], "ungrouped": ["other"],
          "dify_postgres": ["pg"], "dify_mysql": ["my"], "dify_api": ["app"], "dify_worker": ["app"],
          "dify_edge": ["edge"]}
HOSTVARS = {"pg": {"postgresql_port": 5433}, "my": {}, "app": {}, "edge": {}}


NAME = "difyops.fleet.catalog"


def run(*terms, **kw):
    """The lookup with its options from its documentation, as Ansible's plugin loader sets them up."""
    C.config.initialize_plugin_configuration_definitions(
        "lookup", NAME, yaml.safe_load(catalog_lookup.DOCUMENTATION)["options"])
    plugin = catalog_lookup.LookupModule()
    plugin._load_name = NAME
    variables = {"groups": GROUPS, "hostvars": HOSTVARS, "inventory_hostname": "pg"}
    return plugin.run(list(terms), variables=variables, **kw)


def test_groups_pattern_and_hosts():
    assert run("groups") == list(catalog.FLEET_GROUPS)
    assert run("pattern") == [":".join(catalog.FLEET_GROUPS)]
    assert run("pattern", tier="dify") == ["dify_api:dify_api_websocket:dify_worker:dify_beat:dify_web:dify_sandbox:dify_plugin_daemon:"
                                           "dify_agent_backend:dify_local_sandbox"]
    # every host of a fleet group (a host only in dify_mysql included), never one outside
    assert run("hosts") == ["pg", "my", "app", "edge"]
    assert run("hosts", role="storage") == ["app"]


def test_services_ports_and_knobs():
    (svc,) = run("service", name="beat")
    assert svc["group"] == "dify_beat" and svc["exactly"] == 1 and svc["memory"] == {"mb": 512}
    assert [s["name"] for s in run("services")] == [s.name for s in catalog.SERVICES]
    assert run("clients", port="postgresql") == ["dify_api", "dify_worker", "dify_beat", "dify_plugin_daemon"]
    assert run("port", port="postgresql") == [5433]                    # this host's variable
    assert run("port", port="redis", host="app") == [6379]             # the catalog default
    (platforms,) = run("platforms")
    assert platforms["bookworm"]["postgresql"] == 15
    knobs = dict((k["name"], k) for k in run("knobs"))
    assert knobs["dify_plugin_db_max_open_conns"]["default"] == 30
    (net,) = run("sandbox_network")
    assert net["var"] == "dify_sandbox_network_subnet" and net["subnet"].endswith("/24")
    assert len(net["bridge"]) <= 15                                    # an interface name
    (local,) = run("local_sandbox_network")
    assert local["var"] == "dify_local_sandbox_network_subnet" and len(local["bridge"]) <= 15
    assert {local["name"], local["bridge"]}.isdisjoint({net["name"], net["bridge"]})
    assert ipaddress.ip_network(local["subnet"]).version == 4
    assert not ipaddress.ip_network(local["subnet"]).overlaps(ipaddress.ip_network(net["subnet"]))
    (data,) = run("catalog")
    assert data["groups"] == list(catalog.FLEET_GROUPS)
    assert data["sandbox_network"] == net and data["local_sandbox_network"] == local


@pytest.mark.parametrize("terms, kw, needle", [
    (["nothing"], {}, "'nothing' is not one of"),
    (["service"], {}, "service needs name="),
    (["service"], {"name": "cron"}, "no service 'cron' in the catalog"),
    (["port"], {"port": "postgres"}, "no port 'postgres' in the catalog"),
])
def test_refusals(terms, kw, needle):
    with pytest.raises(AnsibleLookupError, match=needle):
        run(*terms, **kw)


def test_a_playbook_builds_the_fleet_group(tmp_path):
    inv = {"all": {"vars": {"ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                   "children": dict((g, {"hosts": dict((h, None) for h in hosts)})
                                    for g, hosts in GROUPS.items() if g.startswith("dify_")),
                   "hosts": {"other": None}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([
        {"name": "Build dify_fleet", "hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "Add every fleet host",
             "ansible.builtin.add_host": {"name": "{{ item }}", "groups": ["dify_fleet"]},
             "loop": "{{ query('difyops.fleet.catalog', 'hosts') }}", "changed_when": False}]},
        {"name": "Every fleet host", "hosts": "dify_fleet", "gather_facts": False, "tasks": [
            {"name": "Write the host name", "ansible.builtin.copy": {
                "content": "{{ lookup('difyops.fleet.catalog', 'pattern', role='dify') }}",
                "dest": str(tmp_path / "{{ inventory_hostname }}.txt"), "mode": "0644"},
             "delegate_to": "localhost"}]},
    ]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "play.yml")], env=env, capture_output=True, text=True, check=False,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = sorted(p.name for p in tmp_path.glob("*.txt"))
    assert written == ["app.txt", "edge.txt", "my.txt", "pg.txt"]
    assert (tmp_path / "pg.txt").read_text() == catalog.pattern(role="dify")


@pytest.mark.parametrize("plugin_type, name, words", [
    ("lookup", "catalog", ["pattern", "dify_fleet", "clients", "platforms"]),
    ("filter", "firewall_rules", ["postgresql_port", "extra_sources", "monitoring_sources"]),
])
def test_ansible_doc_renders(plugin_type, name, words):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, ".collections"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", plugin_type, "difyops.fleet." + name],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR" not in proc.stderr
    for w in words:
        assert w in proc.stdout
