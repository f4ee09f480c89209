# -*- coding: utf-8 -*-
"""playbooks/tiers/smoke.yml compares the certificate every edge host serves
for the public name. The comparison task, read from the playbook, runs for
real (ansible-playbook, local connection, no host touched) on edges whose
served fingerprints are set as the read task would register them: equal
fingerprints pass, a differing edge (or one serving nothing) fails the run
and is named, the issuing edge being the reference.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FP_A = "AA:" * 31 + "AA"
FP_B = "BB:" * 31 + "BB"


def compare_task():
    with open(os.path.join(_TOP, "playbooks", "tiers", "smoke.yml"), encoding="utf-8") as fh:
        plays = yaml.safe_load(fh)
    for play in plays:
        for task in play.get("tasks", []):
            if task.get("name") == "Compare the certificates the edges serve":
                return play["vars"], task
    raise AssertionError("no comparison task in playbooks/tiers/smoke.yml")


def run(tmp_path, served, issuer=None):
    """served: {edge: openssl's output line ('' when the handshake failed)}."""
    play_vars, task = compare_task()
    hosts = {h: {"served_line": line} for h, line in served.items()}
    inv = {"all": {"children": {"dify_edge": {"hosts": hosts}},
                   "vars": {"ansible_connection": "local", "nginx_server_name": "dify.example.com",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}
    if issuer:
        inv["all"]["vars"]["certbot_issuer"] = issuer
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "ansible.cfg").write_text("[defaults]\nstdout_callback = default\n")
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "dify_edge", "gather_facts": False, "vars": play_vars,
        "tasks": [{"name": "Served", "ansible.builtin.set_fact": {
            "__smoke_served": {"stdout": "{{ served_line }}", "rc": 0}}}, task]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    res = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    return res.returncode, res.stdout + res.stderr


def line(fp):
    return "sha256 Fingerprint=" + fp


def test_same_certificate_everywhere_passes(tmp_path):
    rc, out = run(tmp_path, {"edge1": line(FP_A), "edge2": line(FP_A), "edge3": line(FP_A)})
    assert rc == 0, out
    assert "Every edge serves %s for dify.example.com" % FP_A in out


@pytest.mark.parametrize("issuer", [None, "edge3"])
def test_differing_edges_are_named(tmp_path, issuer):
    served = {"edge1": line(FP_A), "edge2": line(FP_B), "edge3": line(FP_A), "edge4": ""}
    rc, out = run(tmp_path, served, issuer)
    assert rc != 0, out
    ref = issuer or "edge1"
    assert "edge2, edge4 serve another certificate for dify.example.com than %s (%s)" % (ref, FP_A) in out, out
    assert "edge2 %s; edge4 none" % FP_B in out, out
    assert "edge1 " + FP_A not in out and "edge3 " + FP_A not in out, out


def test_issuer_is_the_reference(tmp_path):
    rc, out = run(tmp_path, {"edge1": line(FP_A), "edge2": line(FP_B), "edge3": line(FP_A)}, issuer="edge2")
    assert rc != 0, out
    assert "edge1, edge3 serve another certificate for dify.example.com than edge2 (%s)" % FP_B in out, out
