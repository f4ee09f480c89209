#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Apply a Sentinel's monitoring settings at runtime (SENTINEL MONITOR / SENTINEL SET)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_sentinel_monitor
short_description: Make a running Redis Sentinel monitor a master with the given settings
version_added: "0.1.0"
author: difyops.fleet contributors (@difyops)
description:
  - Sentinel rewrites its own configuration file at runtime (known replicas,
    other Sentinels, epochs, the current master after a failover). Templating
    that file on every run destroys this state and can force an old master back.
    This module instead talks to the running Sentinel.
  - When the Sentinel does not monitor I(master_name) yet, it sends
    C(SENTINEL MONITOR) with I(master_host)/I(master_port), then C(SENTINEL SET)
    for the credentials and timings.
  - When it already monitors I(master_name), the master address is never
    changed (after a failover the Sentinel knows better than the inventory);
    only I(quorum), I(down_after_milliseconds), I(failover_timeout),
    I(parallel_syncs) and the master credentials are brought to the wanted
    values with C(SENTINEL SET). Sentinel persists every change in its file.
  - Speaks RESP over a plain socket; no Python Redis client needed on the host.
options:
  master_name:
    description: Name of the monitored master (Dify's REDIS_SENTINEL_SERVICE_NAME).
    type: str
    required: true
  master_host:
    description: Address of the master to monitor when the Sentinel does not monitor I(master_name) yet.
    type: str
    required: true
  master_port:
    description: Its port.
    type: int
    default: 6379
  quorum:
    description: Sentinels that must agree the master is down before a failover.
    type: int
    required: true
  down_after_milliseconds:
    description: Milliseconds without a valid reply before the master is considered down.
    type: int
  failover_timeout:
    description: Failover timeout in milliseconds.
    type: int
  parallel_syncs:
    description: Replicas reconfigured at the same time after a failover.
    type: int
  auth_pass:
    description: Password the Sentinel uses to talk to the master and replicas (their C(requirepass)).
    type: str
  auth_user:
    description: ACL user for that, when the servers use one.
    type: str
  config_file:
    description:
      - The Sentinel's configuration file. When readable, the C(sentinel auth-pass)
        line in it is compared with I(auth_pass) so a changed password is applied
        and an unchanged one reports no change. Without it, I(auth_pass) is only
        sent when the master is first monitored.
    type: path
  sentinel_host:
    description: Address of the Sentinel to configure.
    type: str
    default: 127.0.0.1
  sentinel_port:
    description: Its port.
    type: int
    default: 26379
  sentinel_password:
    description: The Sentinel's own password (its C(requirepass)).
    type: str
  sentinel_username:
    description: ACL user for the Sentinel, when it uses one.
    type: str
  timeout:
    description: Seconds to wait for the Sentinel.
    type: float
    default: 3.0
attributes:
  check_mode:
    support: full
    description: Reports what it would send to the Sentinel without sending it.
  diff_mode:
    support: full
    description: Shows the managed settings before and after (credentials only by name).
notes:
  - Credentials are never returned or shown in the diff.
"""

EXAMPLES = r"""
- name: Monitor the Dify master with this Sentinel
  difyops.fleet.redis_sentinel_monitor:
    master_name: dify-master
    master_host: 10.0.0.11
    quorum: 2
    down_after_milliseconds: 5000
    failover_timeout: 60000
    parallel_syncs: 1
    auth_pass: "{{ difyops_secrets.redis_password }}"
    sentinel_password: "{{ difyops_secrets.redis_sentinel_password }}"
    config_file: /etc/redis/sentinel-dify.conf
  no_log: true
"""

RETURN = r"""
created:
  description: Whether the master was newly monitored (C(SENTINEL MONITOR) sent).
  returned: always
  type: bool
changes:
  description: Options set with C(SENTINEL SET) (C(auth-pass) and C(auth-user) by name only).
  returned: always
  type: list
  elements: str
  sample: [down-after-milliseconds]
master:
  description: The master this Sentinel monitors now, C(host:port).
  returned: always
  type: str
settings:
  description: The managed settings as the Sentinel reports them after the run (before them in check mode).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.difyops.fleet.plugins.module_utils.redis_resp import (
    RespClient,
    RespConnectionError,
    RespError,
    pairs_to_dict,
)
from ansible_collections.difyops.fleet.plugins.module_utils.redis_sentinel import (
    MANAGED_OPTIONS,
    SentinelError,
    config_master_auth,
    format_endpoint,
    plan_settings,
)


def _settings(info):
    return {opt: info.get(field) for opt, field in MANAGED_OPTIONS.items()}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            master_name=dict(type="str", required=True),
            master_host=dict(type="str", required=True),
            master_port=dict(type="int", default=6379),
            quorum=dict(type="int", required=True),
            down_after_milliseconds=dict(type="int"),
            failover_timeout=dict(type="int"),
            parallel_syncs=dict(type="int"),
            auth_pass=dict(type="str", no_log=True),
            auth_user=dict(type="str"),
            config_file=dict(type="path"),
            sentinel_host=dict(type="str", default="127.0.0.1"),
            sentinel_port=dict(type="int", default=26379),
            sentinel_password=dict(type="str", no_log=True),
            sentinel_username=dict(type="str"),
            timeout=dict(type="float", default=3.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    name = p["master_name"]
    for key in ("quorum", "down_after_milliseconds", "failover_timeout", "parallel_syncs"):
        if p[key] is not None and p[key] < 1:
            module.fail_json(msg="%s=%r: must be a positive integer" % (key, p[key]))
    if not name or any(c.isspace() for c in name):
        module.fail_json(msg="master_name=%r: use a non-empty name without spaces (e.g. dify-master)" % name)

    desired = {
        "quorum": p["quorum"],
        "down-after-milliseconds": p["down_after_milliseconds"],
        "failover-timeout": p["failover_timeout"],
        "parallel-syncs": p["parallel_syncs"],
    }
    try:
        cli = RespClient(p["sentinel_host"], p["sentinel_port"], password=p["sentinel_password"],
                         username=p["sentinel_username"], timeout=p["timeout"])
    except (RespConnectionError, RespError) as exc:
        module.fail_json(msg="cannot talk to the Sentinel at %s: %s. Is the service running and is "
                             "sentinel_password its requirepass?"
                             % (format_endpoint(p["sentinel_host"], p["sentinel_port"]), exc))

    with cli:
        try:
            info = pairs_to_dict(cli.command("SENTINEL", "MASTER", name))
        except RespError as exc:
            if "no such master" not in str(exc).lower():
                module.fail_json(msg="SENTINEL MASTER %s failed: %s" % (name, exc))
            info = None

        created = info is None
        if created:
            before = {}
            changes = [(k, str(v)) for k, v in desired.items() if v is not None and k != "quorum"]
        else:
            before = _settings(info)
            try:
                changes = plan_settings(info, desired)
            except SentinelError as exc:
                module.fail_json(msg=str(exc))

        auth_changes = []
        if p["auth_user"] is not None or p["auth_pass"] is not None:
            if created:
                auth_changes = [k for k in ("auth-user", "auth-pass")
                                if p[k.replace("-", "_")] is not None]
            elif p["config_file"]:
                try:
                    with open(p["config_file"], "r") as fh:
                        live_user, live_pass = config_master_auth(fh.read(), name)
                except (IOError, OSError) as exc:
                    module.fail_json(msg="config_file=%s: cannot read it (%s); give the Sentinel's "
                                         "configuration file or leave config_file out" % (p["config_file"], exc))
                except SentinelError as exc:
                    module.fail_json(msg="config_file=%s: %s" % (p["config_file"], exc))
                if p["auth_user"] is not None and p["auth_user"] != (live_user or ""):
                    auth_changes.append("auth-user")
                if p["auth_pass"] is not None and p["auth_pass"] != (live_pass or ""):
                    auth_changes.append("auth-pass")

        changed = created or bool(changes) or bool(auth_changes)
        after = dict(before)
        for k, v in changes:
            after[k] = v
        if created:
            after["quorum"] = str(p["quorum"])
        master = (format_endpoint(info["ip"], int(info["port"])) if info
                  else format_endpoint(p["master_host"], p["master_port"]))

        if changed and not module.check_mode:
            try:
                if created:
                    cli.command("SENTINEL", "MONITOR", name, p["master_host"], p["master_port"], p["quorum"])
                for k in auth_changes:
                    cli.command("SENTINEL", "SET", name, k, p[k.replace("-", "_")])
                for k, v in changes:
                    cli.command("SENTINEL", "SET", name, k, v)
                info = pairs_to_dict(cli.command("SENTINEL", "MASTER", name))
                after = _settings(info)
                master = format_endpoint(info["ip"], int(info["port"]))
            except (RespError, RespConnectionError) as exc:
                module.fail_json(msg="applying settings for %s failed: %s" % (name, exc))

    module.exit_json(
        changed=changed,
        created=created,
        changes=[option for option, dummy in changes] + auth_changes,
        master=master,
        settings=after if not module.check_mode else before,
        diff=dict(before=dict(before, monitored=not created),
                  after=dict(after, monitored=True)),
    )


if __name__ == "__main__":
    main()
