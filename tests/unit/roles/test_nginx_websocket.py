# -*- coding: utf-8 -*-
"""roles/nginx: /socket.io/ goes to the websocket api only when group dify_api_websocket has hosts.

The role's site template (dify.conf.j2) rendered with its defaults and vars
by ansible-playbook on a local connection; what nginx does with it is tested
on hosts by molecule edge.
"""

from __future__ import annotations

import re

from role_render import render_template

HOSTS = {"edge": "10.9.0.1", "app": "10.9.0.2", "ws": "10.9.0.3"}


def render(tmp_path, groups, extra_vars=None, host_vars=None):
    res, text = render_template(tmp_path, "nginx", "dify.conf.j2", "edge", HOSTS, groups,
                                dict({"nginx_server_name": "dify.example.com", "__nginx_http2_directive": True},
                                     **(extra_vars or {})), host_vars)
    assert res.returncode == 0, res.stdout + res.stderr
    return text


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
