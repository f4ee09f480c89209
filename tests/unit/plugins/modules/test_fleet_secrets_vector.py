"""playbooks/tiers/secrets.yml with a dify_vector group: the API key of the
fleet's own Weaviate/Qdrant is generated once, existing files only gain it."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def make_project(tmp_path, vector_hosts, extra_vars=None):
    inv = tmp_path / "inventories" / "prod"
    inv.mkdir(parents=True)
    children = {"dify_api": {"hosts": {"api1": None}}, "dify_postgres": {"hosts": {"pg1": None}}}
    if vector_hosts:
        children["dify_vector"] = {"hosts": dict((h, None) for h in vector_hosts)}
    variables = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    variables.update(extra_vars or {})
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": children, "vars": variables}}))
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = %s/.collections\n" % _TOP)
    (tmp_path / "show.yml").write_text(
        "- ansible.builtin.import_playbook: %s/playbooks/tiers/fleet.yml\n"
        "- ansible.builtin.import_playbook: %s/playbooks/tiers/secrets.yml\n"
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        "        dest: \"{{ out }}/{{ inventory_hostname }}.json\"\n"
        "        content: \"{{ difyops_secrets | to_json }}\"\n"
        "        mode: '0600'\n      delegate_to: localhost\n" % (_TOP, _TOP))
    (tmp_path / "out").mkdir()
    return tmp_path


def play(project):
    env = dict(os.environ, ANSIBLE_CONFIG=str(project / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    res = subprocess.run(["ansible-playbook", "-i", str(project / "inventories" / "prod"), str(project / "show.yml"),
                          "-e", "out=%s" % (project / "out")],
                         cwd=str(project), env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def stored(project):
    return yaml.safe_load((project / "secrets" / "prod.yml").read_text())["difyops_secrets"]


@pytest.mark.parametrize("engine_vars,key,other", [
    ({}, "weaviate_api_key", "qdrant_api_key"),                                  # role default: weaviate
    ({"dify_vector_store": "qdrant"}, "qdrant_api_key", "weaviate_api_key"),     # follows Dify's VECTOR_STORE
    ({"dify_vector_store": "weaviate", "vector_store_engine": "qdrant"}, "qdrant_api_key", "weaviate_api_key"),
])
def test_key_of_the_fleets_own_store_is_generated(tmp_path, engine_vars, key, other):
    project = make_project(tmp_path, ["vec1"], engine_vars)
    play(project)
    values = stored(project)
    assert key in values and other not in values
    # the vector host received the secrets like every other host
    seen = json.loads((project / "out" / "vec1.json").read_text())
    assert seen[key] == values[key]


def test_no_vector_group_no_vector_key(tmp_path):
    project = make_project(tmp_path, [], {"dify_vector_store": "weaviate"})
    play(project)
    assert "weaviate_api_key" not in stored(project) and "qdrant_api_key" not in stored(project)


def test_existing_file_only_gains_the_missing_key_and_it_is_never_regenerated(tmp_path):
    project = make_project(tmp_path, [], {"dify_vector_store": "weaviate"})
    play(project)
    before = stored(project)
    # the fleet now runs its own Weaviate
    hosts = project / "inventories" / "prod" / "hosts.yml"
    inv = yaml.safe_load(hosts.read_text())
    inv["all"]["children"]["dify_vector"] = {"hosts": {"vec1": None}}
    hosts.write_text(yaml.safe_dump(inv))
    res = play(project)
    after = stored(project)
    assert set(after) == set(before) | {"weaviate_api_key"}
    assert {k: after[k] for k in before} == before
    assert after["weaviate_api_key"] not in res.stdout + res.stderr
    play(project)
    assert stored(project) == after


def test_sample_key_in_the_file_is_refused(tmp_path):
    project = make_project(tmp_path, ["vec1"])
    play(project)
    values = stored(project)
    values["weaviate_api_key"] = "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih"
    (project / "secrets" / "prod.yml").write_text(yaml.safe_dump({"difyops_secrets": values}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(project / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    res = subprocess.run(["ansible-playbook", "-i", str(project / "inventories" / "prod"), str(project / "show.yml"),
                          "-e", "out=%s" % (project / "out")],
                         cwd=str(project), env=env, capture_output=True, text=True, check=False)
    assert res.returncode != 0
    assert "weaviate_api_key is one of Dify's public sample values" in res.stdout + res.stderr
