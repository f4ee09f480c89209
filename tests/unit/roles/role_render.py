# -*- coding: utf-8 -*-
"""Render one role template as the role writes it, for the role unit tests.

ansible-playbook on a local connection with the role's defaults and vars
(the collection's filters and lookups through .collections), an inventory of
the given hosts (each with its ``difyops_address``) and groups; nothing is
started. What a daemon does with the file is tested on hosts by molecule.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import yaml

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def render_template(tmp_path, role, template, host, hosts, groups, extra_vars=None, host_vars=None):
    """(ansible-playbook result, the rendered text or "") of ``roles/<role>/templates/<template>`` on ``host``.

    ``hosts``: name -> fleet address; ``groups``: group -> host names;
    ``host_vars``: name -> extra variables of that host.
    """
    role_dir = os.path.join(TOP, "roles", role)
    inv_hosts = {name: dict({"difyops_address": addr}, **(host_vars or {}).get(name, {}))
                 for name, addr in hosts.items()}
    children = {g: {"hosts": {h: None for h in members}} for g, members in groups.items()}
    inv = {"all": {"hosts": inv_hosts, "children": children,
                   "vars": {"ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = %s/.collections\n"
                                          "stdout_callback = default\n" % TOP)
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(extra_vars or {}))
    out = tmp_path / "rendered"
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": host, "gather_facts": False,
        "vars_files": [os.path.join(role_dir, "defaults", "main.yml"), os.path.join(role_dir, "vars", "main.yml")],
        "tasks": [{"name": "Render %s" % template, "ansible.builtin.template": {
            "src": os.path.join(role_dir, "templates", template), "dest": str(out), "mode": "0600"}}],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    res = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
                          "-e", "@" + str(tmp_path / "extra.yml")],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    return res, (out.read_text() if out.exists() else "")


def squid_parse(text, tmp_path):
    """squid -k parse of ``text`` (its output), or None where squid is not installed."""
    if not shutil.which("squid"):
        return None
    path = tmp_path / "check.conf"
    path.write_text(text)
    res = subprocess.run(["squid", "-k", "parse", "-f", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout + res.stderr
