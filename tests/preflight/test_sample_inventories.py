"""The sample inventories shipped in inventories/ pass preflight as they are.

Each runs the preflight tier (tests/preflight/preflight_only.yml) against the
sample inventory itself, with a local connection and lab-like facts: this
machine's facts (Debian, its memory and CPUs, as every lab host sees them),
seeded in the fact cache for every host with its default address set to the
inventory's ansible_host, so nothing is gathered from hosts that do not exist.
"""
import json
import os
import subprocess

import pytest
import yaml

from test_bad_inventories import TOP, _env, _messages

SAMPLES = os.path.join(TOP, "inventories")


def sample_hosts(name):
    """host -> ansible_host of a sample inventory (hosts.yml)."""
    with open(os.path.join(SAMPLES, name, "hosts.yml")) as f:
        inv = yaml.safe_load(f)
    return dict((h, (v or {}).get("ansible_host", h)) for h, v in inv["all"]["hosts"].items())


def seed_facts(cache_dir, tmp_path, hosts):
    """This machine's facts for every host, each with its own default address."""
    seed = tmp_path / "seed.yml"
    seed.write_text(yaml.safe_dump({"all": {"hosts": {"seed": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))
    subprocess.run(["ansible", "-i", str(seed), "seed", "-m", "ansible.builtin.setup",
                    "-a", "gather_subset=min,hardware,network"],
                   cwd=TOP, env=dict(_env(tmp_path, cache_dir), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal"),
                   capture_output=True, text=True, timeout=300, check=True)
    (path,) = [p for p in cache_dir.iterdir() if p.name.endswith("seed")]
    prefix = path.name[:-len("seed")]
    stored = json.loads(path.read_text())
    facts = json.loads(stored["__payload__"]) if "__payload__" in stored else stored
    assert facts["ansible_distribution"] == "Debian", "the lab runs Debian; so must this machine"
    path.unlink()
    for host, address in hosts.items():
        mine = dict(facts, ansible_hostname=host, ansible_nodename=host, _ansible_facts_gathered=True)
        mine["ansible_default_ipv4"] = dict(facts.get("ansible_default_ipv4") or {}, address=address)
        body = {"__payload__": json.dumps(mine)} if "__payload__" in stored else mine
        for key in ("__ansible_type",):
            if key in stored:
                body[key] = stored[key]
        (cache_dir / (prefix + host)).write_text(json.dumps(body))


@pytest.mark.parametrize("name", sorted(os.listdir(SAMPLES)))
def test_sample_inventory_passes_preflight(name, tmp_path):
    hosts = sample_hosts(name)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    seed_facts(cache_dir, tmp_path, hosts)
    report = tmp_path / "capacity-report.md"
    proc = subprocess.run(
        ["ansible-playbook", "-i", os.path.join(SAMPLES, name),
         os.path.join(TOP, "tests", "preflight", "preflight_only.yml"),
         "-e", "ansible_connection=local", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
         "-e", "difyops_capacity_report=%s" % report],
        cwd=TOP, env=_env(tmp_path, cache_dir), capture_output=True, text=True, timeout=600, check=False)
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert proc.returncode == 0, _messages(out) + proc.stderr
    assert "Preflight passed for %d host(s)." % len(hosts) in _messages(out)
    text = report.read_text()
    for host in hosts:
        assert "### %s" % host in text
