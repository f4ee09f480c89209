"""playbooks/tiers/secrets.yml and playbooks/rotate-secrets.yml run for real on a local inventory."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess

import pytest
import yaml

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


@pytest.fixture()
def project(tmp_path):
    inv = tmp_path / "inventories" / "prod"
    inv.mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "dify_api": {"hosts": {"api1": None, "api2": None}},
        "dify_postgres": {"hosts": {"pg1": None}},
    }, "vars": {"ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                # All hosts share this machine: each keeps its fleet id apart.
                "difyops_fleet_id_path": str(tmp_path / "ids") + "/{{ inventory_hostname }}"}}}))
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = %s/.collections\n" % _TOP)
    (tmp_path / "show.yml").write_text(
        "- ansible.builtin.import_playbook: %s/playbooks/tiers/fleet.yml\n"
        "- ansible.builtin.import_playbook: %s/playbooks/tiers/secrets.yml\n"
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        "        dest: \"{{ out }}/{{ inventory_hostname }}.json\"\n"
        "        content: \"{{ difyops_secrets | to_json }}\"\n"
        "        mode: '0600'\n      delegate_to: localhost\n" % (_TOP, _TOP))
    return tmp_path


def play(project, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(project / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    return subprocess.run(["ansible-playbook", "-i", str(project / "inventories" / "prod")] + list(args),
                          cwd=str(project), env=env, capture_output=True, text=True, check=False)


def seen(project, out):
    return {h: json.loads((out / ("%s.json" % h)).read_text()) for h in ("api1", "api2", "pg1")}


def test_generate_once_share_everywhere_and_never_log(project):
    out = project / "out1"
    out.mkdir()
    first = play(project, str(project / "show.yml"), "-e", "out=%s" % out)
    assert first.returncode == 0, first.stdout + first.stderr
    secrets_file = project / "secrets" / "prod.yml"  # next to ansible.cfg, named after the inventory
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored = yaml.safe_load(secrets_file.read_text())["difyops_secrets"]
    values = seen(project, out)
    assert values["api1"] == values["api2"] == values["pg1"] == stored
    for value in stored.values():
        assert value not in first.stdout and value not in first.stderr
    out2 = project / "out2"
    out2.mkdir()
    second = play(project, str(project / "show.yml"), "-e", "out=%s" % out2)
    assert second.returncode == 0
    assert seen(project, out2)["api1"] == stored
    assert yaml.safe_load(secrets_file.read_text())["difyops_secrets"] == stored


def test_vault_file_is_read_and_left_encrypted(project):
    out = project / "out"
    out.mkdir()
    assert play(project, str(project / "show.yml"), "-e", "out=%s" % out).returncode == 0
    secrets_file = project / "secrets" / "prod.yml"
    stored = yaml.safe_load(secrets_file.read_text())["difyops_secrets"]
    (project / "vp").write_text("correct horse battery staple\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(project / "ansible.cfg"))
    subprocess.run(["ansible-vault", "encrypt", "--vault-password-file", str(project / "vp"), str(secrets_file)],
                   check=True, env=env, capture_output=True)
    encrypted = secrets_file.read_bytes()
    res = play(project, str(project / "show.yml"), "-e", "out=%s" % out, "--vault-password-file", str(project / "vp"))
    assert res.returncode == 0, res.stdout
    assert seen(project, out)["api2"] == stored
    assert secrets_file.read_bytes() == encrypted
    # A key missing from the encrypted file: refused, named, file untouched.
    subprocess.run(["ansible-vault", "decrypt", "--vault-password-file", str(project / "vp"), str(secrets_file)],
                   check=True, env=env, capture_output=True)
    del stored["plugin_inner_api_key"]
    secrets_file.write_text(yaml.safe_dump({"difyops_secrets": stored}))
    subprocess.run(["ansible-vault", "encrypt", "--vault-password-file", str(project / "vp"), str(secrets_file)],
                   check=True, env=env, capture_output=True)
    encrypted = secrets_file.read_bytes()
    res = play(project, str(project / "show.yml"), "-e", "out=%s" % out, "--vault-password-file", str(project / "vp"))
    assert res.returncode != 0
    assert "plugin_inner_api_key" in res.stdout + res.stderr
    assert secrets_file.read_bytes() == encrypted


def test_rotate_one_key_with_backup(project):
    out = project / "out"
    out.mkdir()
    assert play(project, str(project / "show.yml"), "-e", "out=%s" % out).returncode == 0
    secrets_file = project / "secrets" / "prod.yml"
    before = yaml.safe_load(secrets_file.read_text())["difyops_secrets"]
    res = play(project, os.path.join(_TOP, "playbooks", "rotate-secrets.yml"), "-e", '{"rotate": ["sandbox_api_key"]}')
    assert res.returncode == 0, res.stdout
    assert "--tags dify" in res.stdout
    after = yaml.safe_load(secrets_file.read_text())["difyops_secrets"]
    assert after["sandbox_api_key"] != before["sandbox_api_key"]
    assert {k: v for k, v in after.items() if k != "sandbox_api_key"} == \
        {k: v for k, v in before.items() if k != "sandbox_api_key"}
    backups = list((project / "secrets").glob("prod.yml.*.bak"))
    assert len(backups) == 1 and stat.S_IMODE(backups[0].stat().st_mode) == 0o600
    assert yaml.safe_load(backups[0].read_text())["difyops_secrets"] == before
    assert hashlib.sha256(after["sandbox_api_key"].encode()).hexdigest() not in res.stdout
    assert after["sandbox_api_key"] not in res.stdout
    refused = play(project, os.path.join(_TOP, "playbooks", "rotate-secrets.yml"),
                   "-e", '{"rotate": ["pgbackrest_cipher_pass"]}')
    assert refused.returncode != 0 and "cannot be rotated" in refused.stdout + refused.stderr


def fleet_id(secrets):
    """The fleet id the common tier writes: a hash of the never-rotated pgbackrest_cipher_pass."""
    return hashlib.sha256(("difyops.fleet:" + secrets["pgbackrest_cipher_pass"]).encode()).hexdigest()[:32]


def test_a_lost_or_foreign_secrets_file_is_refused_on_a_deployed_fleet(project):
    out = project / "out"
    out.mkdir()
    assert play(project, str(project / "show.yml"), "-e", "out=%s" % out).returncode == 0
    secrets_file = project / "secrets" / "prod.yml"
    stored = yaml.safe_load(secrets_file.read_text())["difyops_secrets"]
    # api1 was converged with these secrets (the common tier wrote its id).
    (project / "ids").mkdir()
    (project / "ids" / "api1").write_text(fleet_id(stored) + "\n")
    again = play(project, str(project / "show.yml"), "-e", "out=%s" % out)
    assert again.returncode == 0, again.stdout

    # Lost file (fresh clone): refused, nothing generated or written.
    secrets_file.rename(project / "kept.yml")
    lost = play(project, str(project / "show.yml"), "-e", "out=%s" % out)
    text = lost.stdout + lost.stderr
    assert lost.returncode != 0
    assert "does not exist, but api1 already run a Dify fleet" in text
    assert "difyops_secrets_file" in text and "delete their fleet id file first (difyops_fleet_id_path" in text
    assert not secrets_file.exists()

    # Another fleet's file: refused, left as it was, no secret in the output.
    other = dict(stored, pgbackrest_cipher_pass="Another0fleet0Cipher0Pass0xyz123")
    secrets_file.write_text(yaml.safe_dump({"difyops_secrets": other}))
    before = secrets_file.read_bytes()
    foreign = play(project, str(project / "show.yml"), "-e", "out=%s" % out)
    text = foreign.stdout + foreign.stderr
    assert foreign.returncode != 0
    assert "belongs to another fleet than api1" in text
    assert secrets_file.read_bytes() == before
    for value in other.values():
        assert value not in text

    # Starting over on purpose: the id removed, the new secrets are taken.
    (project / "ids" / "api1").unlink()
    assert play(project, str(project / "show.yml"), "-e", "out=%s" % out).returncode == 0


def play_with(project, sources, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(project / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    cmd = ["ansible-playbook"]
    for source in sources:
        cmd += ["-i", str(source)]
    return subprocess.run(cmd + list(args), cwd=str(project), env=env, capture_output=True, text=True, check=False)


def test_one_secrets_file_per_inventory_file(project):
    inv = project / "inventories" / "prod"
    # A second inventory file next to the first: another fleet, other secrets.
    (inv / "staging.yml").write_text((inv / "hosts.yml").read_text())
    outs = {}
    for name in ("hosts", "staging"):
        outs[name] = project / ("out-" + name)
        outs[name].mkdir()
        res = play_with(project, [inv / (name + ".yml")], str(project / "show.yml"), "-e", "out=%s" % outs[name])
        assert res.returncode == 0, res.stdout + res.stderr
    prod = yaml.safe_load((project / "secrets" / "prod-hosts.yml").read_text())["difyops_secrets"]
    staging = yaml.safe_load((project / "secrets" / "prod-staging.yml").read_text())["difyops_secrets"]
    assert seen(project, outs["hosts"])["api1"] == prod and seen(project, outs["staging"])["api1"] == staging
    assert prod["redis_password"] != staging["redis_password"]
    assert not (project / "secrets" / "prod.yml").exists()

    # Both at once: refused before anything is written, the fix named.
    before = sorted(p.name for p in (project / "secrets").iterdir())
    both = play_with(project, [inv / "hosts.yml", inv / "staging.yml"], str(project / "show.yml"),
                     "-e", "out=%s" % outs["hosts"])
    text = both.stdout + both.stderr
    assert both.returncode != 0
    assert "2 inventory sources were given" in text and "difyops_inventory_name" in text
    assert sorted(p.name for p in (project / "secrets").iterdir()) == before
    # ... and rotate-secrets.yml refuses them the same way.
    rot = play_with(project, [inv / "hosts.yml", inv / "staging.yml"],
                    os.path.join(_TOP, "playbooks", "rotate-secrets.yml"), "-e", '{"rotate": ["secret_key"]}')
    assert rot.returncode != 0 and "2 inventory sources were given" in rot.stdout + rot.stderr

    # rotate-secrets.yml rotates in the file of the inventory it is given.
    rot = play_with(project, [inv / "staging.yml"], os.path.join(_TOP, "playbooks", "rotate-secrets.yml"),
                    "-e", '{"rotate": ["redis_password"]}')
    assert rot.returncode == 0, rot.stdout
    assert "-i %s --tags dify,exporters,redis" % (inv / "staging.yml") in rot.stdout
    assert "accept the old and the new password" in rot.stdout
    rotated = yaml.safe_load((project / "secrets" / "prod-staging.yml").read_text())["difyops_secrets"]
    assert rotated["redis_password"] != staging["redis_password"]
    assert yaml.safe_load((project / "secrets" / "prod-hosts.yml").read_text())["difyops_secrets"] == prod


def test_a_deployed_file_inventory_is_told_where_its_old_secrets_file_is(project):
    out = project / "out"
    out.mkdir()
    inv = project / "inventories" / "prod"
    # Deployed before: the directory-named file, and api1 carries its fleet id.
    assert play(project, str(project / "show.yml"), "-e", "out=%s" % out).returncode == 0
    stored = yaml.safe_load((project / "secrets" / "prod.yml").read_text())["difyops_secrets"]
    (project / "ids").mkdir()
    (project / "ids" / "api1").write_text(fleet_id(stored) + "\n")
    res = play_with(project, [inv / "hosts.yml"], str(project / "show.yml"), "-e", "out=%s" % out)
    text = res.stdout + res.stderr
    assert res.returncode != 0
    assert "prod-hosts.yml does not exist" in text
    assert "rename that file to" in text and str(project / "secrets" / "prod.yml") in text
    assert not (project / "secrets" / "prod-hosts.yml").exists()
