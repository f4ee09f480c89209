#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ask Redis Sentinels which server is the current master."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_sentinel_info
short_description: Report the current Redis master as the Sentinels see it
version_added: "0.1.0"
author: difyops.fleet contributors (@difyops)
description:
  - Connects to every given Sentinel (RESP over a plain socket, no Python Redis
    client needed on the host) and asks C(SENTINEL GET-MASTER-ADDR-BY-NAME).
  - Returns the master most reachable Sentinels name, whether they all agree,
    and each Sentinel's own answer or error.
  - Read-only; safe in check mode. Unreachable Sentinels are reported, not fatal,
    unless I(require_master=true) and none of them names a master.
options:
  sentinels:
    description:
      - Sentinel endpoints, C(host:port), C(host) (port 26379), C([v6addr]:port)
        or dicts with C(host) and C(port).
    type: list
    elements: raw
    required: true
  master_name:
    description: The name the Sentinels monitor the master under (Dify's REDIS_SENTINEL_SERVICE_NAME).
    type: str
    required: true
  password:
    description: The Sentinels' own password (their C(requirepass)).
    type: str
  username:
    description: ACL user for the Sentinels, when they use one.
    type: str
  timeout:
    description: Seconds to wait for each Sentinel.
    type: float
    default: 1.0
  require_master:
    description: Fail when no reachable Sentinel names a master.
    type: bool
    default: false
extends_documentation_fragment:
  - difyops.fleet.read_only
"""

EXAMPLES = r"""
- name: Find the current master
  difyops.fleet.redis_sentinel_info:
    sentinels: "{{ 'dify_sentinel' | difyops.fleet.group_addresses(groups, hostvars) | product([26379]) | map('join', ':') | list }}"
    master_name: dify-master
    password: "{{ difyops_secrets.redis_sentinel_password }}"
    require_master: true
  register: redis_master
  no_log: true

- name: Show it
  ansible.builtin.debug:
    msg: "{{ redis_master.master_host }}:{{ redis_master.master_port }}"
"""

RETURN = r"""
master:
  description: The current master as C(host:port), or null when no Sentinel names one.
  returned: always
  type: str
  sample: 10.0.0.12:6379
master_host:
  description: Host part of I(master), or null.
  returned: always
  type: str
master_port:
  description: Port part of I(master), or null.
  returned: always
  type: int
agree:
  description: Whether every Sentinel that names a master names the same one.
  returned: always
  type: bool
reachable:
  description: How many Sentinels answered.
  returned: always
  type: int
views:
  description: Each Sentinel's answer.
  returned: always
  type: list
  elements: dict
  contains:
    sentinel:
      description: The Sentinel asked.
      type: str
    master:
      description: The master it names, or null.
      type: str
    reachable:
      description: Whether it answered (connected and authenticated).
      type: bool
    error:
      description: Why it gave no answer, or null.
      type: str
    flags:
      description: The master's flags as this Sentinel sees them (e.g. C(master), C(s_down,master)).
      type: str
    num_other_sentinels:
      description: Other Sentinels this one knows for the master.
      type: int
    num_slaves:
      description: Replicas this one knows for the master.
      type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.difyops.fleet.plugins.module_utils.redis_sentinel import (
    SentinelError,
    majority_master,
    parse_endpoint,
    sentinel_view,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sentinels=dict(type="list", elements="raw", required=True),
            master_name=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
            username=dict(type="str"),
            timeout=dict(type="float", default=1.0),
            require_master=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not p["sentinels"]:
        module.fail_json(msg="sentinels is empty: list at least one Sentinel as host:port (the dify_sentinel group)")
    try:
        for s in p["sentinels"]:
            parse_endpoint(s)
    except SentinelError as exc:
        module.fail_json(msg="sentinels: %s" % exc)

    views = [sentinel_view(s, p["master_name"], password=p["password"], username=p["username"],
                           timeout=p["timeout"]) for s in p["sentinels"]]
    master, agree = majority_master(views)
    result = dict(
        changed=False,
        master=master,
        master_host=None,
        master_port=None,
        agree=agree,
        reachable=sum(1 for v in views if v["reachable"]),
        views=views,
    )
    if master:
        host, port = parse_endpoint(master)
        result["master_host"], result["master_port"] = host, port
    elif p["require_master"]:
        module.fail_json(
            msg="no Sentinel names a master for %r: %s. Check that the Sentinels run, that "
                "master_name matches their 'sentinel monitor' name and that the password is theirs."
                % (p["master_name"], "; ".join("%s: %s" % (v["sentinel"], v["error"]) for v in views)),
            **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
