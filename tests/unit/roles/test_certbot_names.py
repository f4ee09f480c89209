# -*- coding: utf-8 -*-
"""roles/certbot uses the certificate's names as certbot and the CA write
them: lower case, no trailing dot (``__certbot_all_domains`` and
``__certbot_cert_name`` in roles/certbot/vars/main.yml).

The role's own defaults and vars are evaluated by ansible-playbook on a local
connection, and so is the condition of its "Order the certificate" task, read
from tasks/main.yml: a certificate whose names are the normalised ones is
not ordered again (no --force-renewal on every run, no CA rate limit).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_ROLE = os.path.join(_TOP, "roles", "certbot")
ACME = "https://acme-v02.api.letsencrypt.org/directory"


def order_condition():
    """The `when:` of the task that runs certbot certonly."""
    with open(os.path.join(_ROLE, "tasks", "main.yml")) as f:
        tasks = yaml.safe_load(f)
    for task in tasks:
        for sub in task.get("block", []):
            if sub.get("name", "").startswith("Order the certificate"):
                return sub["when"]
    raise AssertionError("no 'Order the certificate' task in roles/certbot/tasks/main.yml")


def evaluate(tmp_path, extra_vars):
    """The role's name variables (and its order decision) for ``extra_vars``."""
    inv = {"all": {"hosts": {"edge1": None}, "children": {"dify_edge": {"hosts": {"edge1": None}}},
                   "vars": {"ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = %s/.collections\n"
                                          "stdout_callback = default\n" % _TOP)
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(extra_vars))
    out = tmp_path / "names.json"
    names = ["__certbot_all_domains", "__certbot_cert_name", "__certbot_live", "__certbot_renewal_conf",
             "__certbot_bad_domains", "__certbot_current_domains"]
    content = "{{ {%s, 'order': (%s) | bool} | to_json }}" % (
        ", ".join("'%s': %s" % (n, n) for n in names), order_condition())
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "edge1", "gather_facts": False,
        "vars_files": [os.path.join(_ROLE, "defaults", "main.yml"), os.path.join(_ROLE, "vars", "main.yml")],
        "tasks": [{"name": "Evaluate the names", "ansible.builtin.copy": {
            "content": content, "dest": str(out), "mode": "0600"}}],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    res = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
                          "-e", "@" + str(tmp_path / "extra.yml")],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(out.read_text())


def existing(san):
    """Registered results of the role for a lineage whose certificate names ``san``."""
    return {"__certbot_renewal": {"stat": {"exists": True}},
            "__certbot_san": {"stdout": "X509v3 Subject Alternative Name: \n    " + san},
            "__certbot_current_server": ACME}


def test_server_name_is_lower_case_without_the_trailing_dot(tmp_path):
    got = evaluate(tmp_path, {"nginx_server_name": "Dify.Example.COM.", "__certbot_renewal": {"stat": {"exists": False}}})
    assert got["__certbot_all_domains"] == ["dify.example.com"]
    assert got["__certbot_cert_name"] == "dify.example.com"
    assert got["__certbot_live"] == "/etc/letsencrypt/live/dify.example.com"
    assert got["__certbot_renewal_conf"] == "/etc/letsencrypt/renewal/dify.example.com.conf"
    assert got["__certbot_bad_domains"] == []
    assert got["order"] is True  # no certificate yet


def test_certificate_with_the_normalised_names_is_not_ordered_again(tmp_path):
    extra = {"nginx_server_name": "Dify.Example.COM.", "nginx_server_aliases": ["WWW.example.com"],
             "certbot_extra_domains": ["dify.example.com", "API.Example.Com."]}
    extra.update(existing("DNS:api.example.com, DNS:dify.example.com, DNS:www.example.com"))
    got = evaluate(tmp_path, extra)
    assert got["__certbot_all_domains"] == ["dify.example.com", "www.example.com", "api.example.com"]
    assert got["__certbot_current_domains"] == sorted(got["__certbot_all_domains"])
    assert got["order"] is False


def test_a_name_missing_from_the_certificate_still_orders(tmp_path):
    extra = {"nginx_server_name": "Dify.Example.COM", "certbot_extra_domains": ["New.Example.com."]}
    extra.update(existing("DNS:dify.example.com"))
    got = evaluate(tmp_path, extra)
    assert got["__certbot_all_domains"] == ["dify.example.com", "new.example.com"]
    assert got["order"] is True


@pytest.mark.parametrize("cert_name, lineage", [("Dify-Prod.", "dify-prod"), ("dify.example.com", "dify.example.com")])
def test_explicit_lineage_name(tmp_path, cert_name, lineage):
    got = evaluate(tmp_path, {"certbot_domains": ["dify.example.com"], "certbot_cert_name": cert_name,
                              "__certbot_renewal": {"stat": {"exists": False}}})
    assert got["__certbot_cert_name"] == lineage
    assert got["__certbot_live"] == "/etc/letsencrypt/live/" + lineage


def test_names_that_are_not_dns_names_are_still_refused(tmp_path):
    got = evaluate(tmp_path, {"certbot_domains": ["https://Dify.Example.COM/", "a..", "ok.example.com."],
                              "__certbot_renewal": {"stat": {"exists": False}}})
    assert got["__certbot_bad_domains"] == ["https://dify.example.com/", "a."]


def test_names_with_every_letter_are_read_whole_from_the_certificate(tmp_path):
    # The lab's name: a regex that lost its \s would stop at the first "s" (dify.lab.te) and order
    # the certificate again on every run.
    extra = {"nginx_server_name": "dify.lab.test", "certbot_extra_domains": ["status.sites.dify.lab.test"]}
    extra.update(existing("DNS:dify.lab.test, DNS:status.sites.dify.lab.test"))
    got = evaluate(tmp_path, extra)
    assert got["__certbot_current_domains"] == ["dify.lab.test", "status.sites.dify.lab.test"]
    assert got["order"] is False
