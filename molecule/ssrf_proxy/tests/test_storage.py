"""Dify's file storage on the api/worker host: uid 1001 writes and reads, others cannot."""

import json
import os
import subprocess

testinfra_hosts = ["podman://mol-ssrf_proxy-api"]


def test_storage_directory_belongs_to_dify_uid(host):
    d = host.file("/var/lib/dify/storage")
    assert d.is_directory
    assert d.uid == 1001 and d.gid == 1001
    assert d.mode == 0o750
    p = host.file("/var/lib/dify/plugin_daemon")
    assert not p.exists  # this host is not a plugin daemon host


def test_uid_1001_writes_and_reads(host):
    write = host.run(
        "setpriv --reuid=1001 --regid=1001 --clear-groups sh -c "
        "'echo stored-$$ > /var/lib/dify/storage/probe.txt && cat /var/lib/dify/storage/probe.txt'"
    )
    assert write.rc == 0, write.stderr
    assert write.stdout.startswith("stored-")
    assert host.file("/var/lib/dify/storage/probe.txt").uid == 1001
    other = host.run(
        "setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo x > /var/lib/dify/storage/other.txt'"
    )
    assert other.rc != 0
    host.run("rm -f /var/lib/dify/storage/probe.txt")


def _local_play(tmp_path, play, *extra_vars):
    """Run `play` (tasks/roles/post_tasks of one play) on the controller with its own python and the given
    extra vars; the finished process. (A play in JSON is YAML.)"""
    play = dict({"hosts": "localhost", "connection": "local", "gather_facts": False}, **play)
    play["vars"] = dict(play.get("vars", {}), ansible_python_interpreter="{{ ansible_playbook_python }}")
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([play], indent=2))
    extra = [arg for value in extra_vars for arg in ("-e", value)]
    return subprocess.run(["ansible-playbook", "-i", "localhost,", str(path), *extra],
                          capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), check=False)


def _run_validate(tmp_path, extra_vars):
    tasks = [{"ansible.builtin.include_role": {"name": "difyops.fleet.storage", "tasks_from": "validate.yml"}}]
    return _local_play(tmp_path, {"tasks": tasks}, extra_vars)


# Local storage on several api/worker hosts is a fleet rule: preflight refuses
# it (tests/preflight, case local_storage_two_app_hosts); the role checks its
# own settings.
def test_incomplete_nfs_setting_is_refused(tmp_path):
    res = _run_validate(tmp_path, '{"storage_backend": "nfs", "storage_nfs_src": "nfs1"}')
    assert res.returncode != 0
    assert "storage_nfs_src as <server>:/<export path>" in res.stdout + res.stderr
    ok = _run_validate(tmp_path, '{"storage_backend": "nfs", "storage_nfs_src": "nfs1:/export/dify"}')
    assert ok.returncode == 0, ok.stdout


def test_s3_without_credentials_is_refused(tmp_path):
    res = _run_validate(tmp_path, '{"storage_backend": "s3", "storage_s3_bucket": "b"}')
    assert res.returncode != 0
    assert "storage_s3_access_key" in res.stdout + res.stderr
    iam = _run_validate(tmp_path, '{"storage_backend": "s3", "storage_s3_bucket": "b", '
                                  '"storage_s3_use_iam_role": true, "storage_s3_interface": "s3"}')
    assert iam.returncode == 0, iam.stdout


def _render_env(tmp_path, extra_vars):
    out = tmp_path / "env.json"
    res = _local_play(tmp_path, {
        "vars": {"storage_hosts": [], "storage_plugin_hosts": []},
        "roles": ["difyops.fleet.storage"],
        "post_tasks": [{"ansible.builtin.copy": {
            "dest": "{{ out }}", "mode": "0600",
            "content": "{{ {'dify': storage_dify_env, 'plugin': storage_plugin_env, "
                       "'path': storage_host_path} | to_json }}"}}],
    }, extra_vars, "out=%s" % out)
    assert res.returncode == 0, res.stdout
    return json.loads(out.read_text())


def test_env_for_local_and_s3(tmp_path):
    local = _render_env(tmp_path, "{}")
    assert local["dify"] == {"STORAGE_TYPE": "opendal", "OPENDAL_SCHEME": "fs", "OPENDAL_FS_ROOT": "storage"}
    assert local["plugin"] == {"PLUGIN_STORAGE_TYPE": "local", "PLUGIN_STORAGE_LOCAL_ROOT": "/app/storage"}
    assert local["path"] == "/var/lib/dify/storage"
    s3 = _render_env(tmp_path, '{"storage_backend": "s3", "storage_s3_bucket": "dify-files", '
                               '"storage_s3_endpoint": "https://minio.internal:9000", '
                               '"storage_s3_access_key": "AKIAEXAMPLE", "storage_s3_secret_key": "s3cr3tvalue1234567890", '
                               '"storage_s3_path_style": true}')
    assert s3["path"] == ""
    assert s3["dify"]["STORAGE_TYPE"] == "opendal" and s3["dify"]["OPENDAL_SCHEME"] == "s3"
    assert s3["dify"]["OPENDAL_S3_BUCKET"] == "dify-files"
    assert s3["dify"]["OPENDAL_S3_ENDPOINT"] == "https://minio.internal:9000"
    assert s3["dify"]["OPENDAL_S3_SECRET_ACCESS_KEY"] == "s3cr3tvalue1234567890"
    # The names the plugin daemon reads (not the compose file's PLUGIN_S3_*/PLUGIN_AWS_*):
    # an S3-compatible endpoint needs S3_USE_AWS=false, the path style and static keys.
    assert s3["plugin"]["PLUGIN_STORAGE_TYPE"] == "aws_s3"
    assert s3["plugin"]["S3_USE_AWS"] == "false"
    assert s3["plugin"]["S3_ENDPOINT"] == "https://minio.internal:9000"
    assert s3["plugin"]["S3_USE_PATH_STYLE"] == "true"
    assert s3["plugin"]["AWS_SECRET_KEY"] == "s3cr3tvalue1234567890"
    assert not [k for k in s3["plugin"] if k.startswith(("PLUGIN_S3_", "PLUGIN_AWS_"))]
    iam = _render_env(tmp_path, '{"storage_backend": "s3", "storage_s3_bucket": "dify-files", '
                                '"storage_s3_interface": "s3", "storage_s3_use_iam_role": true}')
    assert iam["dify"]["STORAGE_TYPE"] == "s3" and iam["dify"]["S3_USE_AWS_MANAGED_IAM"] == "true"
    assert "S3_SECRET_KEY" not in iam["dify"] and "AWS_SECRET_KEY" not in iam["plugin"]
