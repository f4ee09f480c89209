# -*- coding: utf-8 -*-
"""roles/nginx: /socket.io/ goes to the websocket api only when group dify_api_websocket has hosts.

The role's site template (dify.conf.j2) rendered with its defaults and vars
by ansible-playbook on a local connection; what nginx does with it is tested
on hosts by molecule edge.
"""

from __future__ import annotations

import os
import re
import subprocess

import yaml

_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_ROLE = os.path.join(_TOP, "roles", "nginx")
HOSTS = {"edge": "10.9.0.1", "app": "10.9.0.2", "ws": "10.9.0.3"}


def render(tmp_path, groups, extra_vars=None, host_vars=None):
    hosts = {name: dict({"difyops_address": addr}, **(host_vars or {}).get(name, {})) for name, addr in HOSTS.items()}
    children = {g: {"hosts": {h: None for h in members}} for g, members in groups.items()}
    inv = {"all": {"hosts": hosts, "children": children,
                   "vars": {"ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = %s/.collections\n"
                                          "stdout_callback = default\n" % _TOP)
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(dict({"nginx_server_name": "dify.example.com",
                                                             "__nginx_http2_directive": True},
                                                            **(extra_vars or {}))))
    out = tmp_path / "dify.conf"
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "edge", "gather_facts": False,
        "vars_files": [os.path.join(_ROLE, "defaults", "main.yml"), os.path.join(_ROLE, "vars", "main.yml")],
        "tasks": [{"name": "Render the site", "ansible.builtin.template": {
            "src": os.path.join(_ROLE, "templates", "dify.conf.j2"), "dest": str(out), "mode": "0600"}}],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    res = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
                          "-e", "@" + str(tmp_path / "extra.yml")],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return out.read_text()


BASE = {"dify_edge": ["edge"], "dify_api": ["app"], "dify_web": ["app"]}


def socketio_block(text):
    found = re.search(r"location /socket\.io/ \{(.*?)\n    \}", text, re.S)
    return found.group(1) if found else None


def test_without_websocket_hosts_no_socketio_location(tmp_path):
    text = render(tmp_path, BASE, {"dify_version": "1.16.1"})
    assert "socket.io" not in text
    assert "dify_api_websocket" not in text
    assert "location /console/api {" in text


def test_websocket_hosts_get_socketio_with_the_release_timeout(tmp_path):
    text = render(tmp_path, dict(BASE, dify_api_websocket=["ws"]), {"dify_version": "1.16.1"},
                  host_vars={"ws": {"dify_api_websocket_port": 5015}})
    pool = re.search(r"upstream dify_api_websocket \{(.*?)\}", text, re.S).group(1)
    assert re.findall(r"server (\S+) ", pool) == ["10.9.0.3:5015"]
    block = socketio_block(text)
    assert block is not None, text
    for line in ("proxy_pass http://dify_api_websocket;", "proxy_http_version 1.1;",
                 "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $difyops_connection;",
                 "proxy_buffering off;", "proxy_request_buffering off;",
                 "proxy_read_timeout 360s;", "proxy_send_timeout 360s;"):
        assert line in block, (line, block)
    # in the HTTPS server, before "/" (web)
    assert text.index("location /socket.io/ {") < text.index("location / {\n        proxy_pass http://dify_web;")
    # the rest of the site is the same as without it
    without = render(tmp_path, BASE, {"dify_version": "1.16.1"})
    strip = re.sub(r"upstream dify_api_websocket \{.*?\}\n|    # Dify's websocket api.*?\n    \}\n", "", text,
                   flags=re.S)
    assert re.sub(r"\n+", "\n", strip) == re.sub(r"\n+", "\n", without)


def test_release_without_websocket_api_keeps_the_site_timeouts(tmp_path):
    text = render(tmp_path, dict(BASE, dify_api_websocket=["ws"]), {"dify_version": "1.13.3"})
    block = socketio_block(text)
    assert "proxy_read_timeout 3600s;" in block and "proxy_send_timeout 3600s;" in block
    assert re.search(r"server 10\.9\.0\.3:5005 ", text)
