"""Bad inventories are refused by preflight before any host is changed.

Each case runs tests/preflight/site.yml (the preflight tier, then a play
that writes a marker file on every host, standing in for every later tier)
with ansible-playbook against an inventory of hosts with
``ansible_connection: local`` (facts are this machine's), and asserts:
the run fails, the preflight message names the problem, no host reports a
change and no task after preflight ran (no marker file written).
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
INVENTORIES = os.path.join(HERE, "inventories")

# case -> substrings the preflight message must contain
BAD = {
    "no_beat": ["dify_beat"],
    "two_beats": ["dify_beat", "app", "edge"],
    "even_sentinels": ["entinel", "odd"],
    "one_sentinel": ["entinel", "3"],
    "budget_over_max_connections": ["postgresql_max_connections", "20"],
    "memory_shared_host": ["data", "memory"],
    "tls_without_domain": ["edge: nginx_tls_enabled is true but nginx_server_name is ''",
                           "nginx_server_name: dify.example.com"],
    "sample_db_password": ["postgresql_dify_password is 'difyai123456'", "public sample secret",
                           "openssl rand"],
    "sample_in_secrets_dict": ["difyops_secrets.secret_key is 'sk-9f73s3", "public sample secret"],
    "sample_plugin_key_host_var": ["app: dify_env_extra.api.PLUGIN_DAEMON_KEY is 'lYkiYYT6owG",
                                   "public sample secret"],
    "empty_edge_group": ["group dify_edge is empty", "Add at least one host to [dify_edge]"],
    "empty_sandbox_group": ["group dify_sandbox is empty", "[dify_sandbox]"],
    "bad_type": ["nginx_tls_enabled = 'perhaps' is refused by role nginx", "expected bool"],
    "bad_choice": ["redis_appendfsync = 'sometimes' is refused by role redis",
                   "always, everysec, no"],
    "misspelt_variable": ["nginx_server_nmae is not a variable of role nginx",
                          "did you mean nginx_server_name?"],
    "unreachable_host": ["edge: cannot be reached (ansible_host=127.0.0.1, ansible_connection=ssh)",
                         "ansible edge -m ansible.builtin.ping"],
    "many_problems": ["3 problems", "dify_beat", "nginx_server_name", "redis_password is 'difyai123456'"],
    "local_storage_two_app_hosts": ["app, app2: storage_backend is 'local' but the fleet has 2 api/worker hosts",
                                    "storage_backend: shared"],
    "mysql_with_pgvector_no_postgres": ["app: dify_db_type is 'mysql' and dify_vector_store is 'pgvector'",
                                        "dify_vector_store: weaviate or qdrant"],
    "copied_from_docs": ["edge: nginx_server_name: 'https://dify.example.com/' is a URL",
                         "ssrf_proxy_allow_private_ips entry '169.254.169.254/32' covers the link-local metadata",
                         "group dify-web (hosts edge) is not a fleet group", "did you mean dify_web?"],
    "duplicate_address": ["data, app: all have the fleet address 10.0.0.11 (difyops_address)"],
    "unsupported_os": ["edge: runs Ubuntu 22 (jammy)", "Debian 12 (bookworm) and 13 (trixie)"],
}


def _env(tmp_path, cache_dir):
    env = dict(os.environ)
    env.update(
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, ".collections"),
        ANSIBLE_GATHERING="smart",
        ANSIBLE_CACHE_PLUGIN="jsonfile",
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(cache_dir),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_TIMEOUT="10",
    )
    venv_bin = os.path.dirname(sys.executable)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    return env


def run_playbook(playbook, inventory, tmp_path, cache_dir):
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, os.path.join(HERE, playbook),
         "-e", "preflight_marker_dir=%s" % markers,
         "-e", "difyops_capacity_report=%s" % (tmp_path / "capacity-report.md")],
        cwd=TOP, env=_env(tmp_path, cache_dir), capture_output=True, text=True, timeout=600, check=False,
    )
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        pytest.fail("no JSON from ansible-playbook (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return proc, out, markers


def _messages(out):
    msgs = []
    for play in out.get("plays", []):
        for task in play.get("tasks", []):
            for res in task.get("hosts", {}).values():
                if res.get("msg"):
                    msgs.append(str(res["msg"]))
    return "\n".join(msgs)


def _tasks_after_preflight(out):
    return [task["task"]["name"] for play in out.get("plays", [])
            if not play["play"]["name"].startswith(("Fleet", "Preflight"))
            for task in play.get("tasks", [])]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fact-cache")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inventory_is_refused_before_any_change(case, tmp_path, cache_dir):
    inventory = os.path.join(INVENTORIES, case + ".yml")
    if case == "unsupported_os":
        # Its own cache, holding the edited facts of edge.
        cache_dir = tmp_path / "cache"
        cache_dir.mkdir()
        seed_ubuntu_facts(cache_dir, "edge", tmp_path)
    proc, out, markers = run_playbook("site.yml", inventory, tmp_path, cache_dir)
    assert proc.returncode != 0, "preflight let %s through" % case
    message = _messages(out)
    assert "Preflight refused the fleet; nothing was changed." in message
    for expected in BAD[case]:
        assert expected in message, "%r not in the preflight message:\n%s" % (expected, message)
    # Nothing after preflight ran, and no host changed.
    assert _tasks_after_preflight(out) == []
    assert list(markers.iterdir()) == []
    for host, stats in out["stats"].items():
        assert stats.get("changed", 0) == 0, (host, stats)


def test_good_inventory_passes_preflight(tmp_path, cache_dir):
    inventory = os.path.join(INVENTORIES, "good.yml")
    proc, out, dummy = run_playbook("preflight_only.yml", inventory, tmp_path, cache_dir)
    assert proc.returncode == 0, _messages(out) + proc.stderr
    assert "Preflight passed for 3 host(s)." in _messages(out)
    for host, stats in out["stats"].items():
        if host == "localhost":
            continue  # the controller wrote the capacity report (below)
        assert stats.get("changed", 0) == 0 and stats.get("failures", 0) == 0, (host, stats)
    # A fleet that passed gets its capacity report on the controller: a table
    # per host with the computed values.
    report = (tmp_path / "capacity-report.md").read_text()
    for host in ("app", "data", "edge"):
        assert host in report
    assert "shared_buffers" in report


def test_good_inventory_then_tiers_run(tmp_path, cache_dir):
    # The same harness lets later tiers run when preflight passes, so the
    # assertions above (no marker written) can fail.
    inventory = os.path.join(INVENTORIES, "good.yml")
    proc, out, markers = run_playbook("site.yml", inventory, tmp_path, cache_dir)
    assert proc.returncode == 0, _messages(out) + proc.stderr
    assert sorted(p.name for p in markers.iterdir()) == ["app", "data", "edge"]


def seed_ubuntu_facts(cache_dir, host, tmp_path):
    """This machine's facts for ``host``, edited to look like Ubuntu 22.04, in the fact cache."""
    subprocess.run(
        ["ansible", "-i", os.path.join(INVENTORIES, "good.yml"), host, "-m", "ansible.builtin.setup",
         "-a", "gather_subset=min,hardware,network"],
        cwd=TOP, env=dict(_env(tmp_path, cache_dir), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal"),
        capture_output=True, text=True, timeout=300, check=True,
    )
    (path,) = [p for p in cache_dir.iterdir() if p.name.endswith(host)]
    stored = json.loads(path.read_text())
    facts = json.loads(stored["__payload__"]) if "__payload__" in stored else stored
    assert facts["ansible_distribution"] == "Debian"
    facts.update(ansible_distribution="Ubuntu", ansible_distribution_release="jammy",
                 ansible_distribution_major_version="22", ansible_distribution_version="22.04", _ansible_facts_gathered=True)
    if "__payload__" in stored:
        stored["__payload__"] = json.dumps(facts)
    else:
        stored = facts
    path.write_text(json.dumps(stored))
