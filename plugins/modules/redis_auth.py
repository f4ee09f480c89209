#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Change the password of a running Redis, Valkey or Sentinel without cutting its clients off."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_auth
short_description: Roll a new password into a running Redis, Valkey or Sentinel, then retire the old one
version_added: "0.2.0"
author: difyops.fleet contributors (@difyops)
description:
  - Redis and Sentinel rewrite their configuration files at runtime, so the roles write them once;
    this module changes the password of the running server instead, without a restart and
    without refusing a client during the roll.
  - With I(state=accepted) the server accepts I(password) besides the passwords it accepted so far
    (C(ACL SETUSER default >password); the default user holds several). With I(outgoing=true) it also
    uses I(password) towards its peers - C(masterauth) for a Redis replica, C(sentinel-pass) for a
    Sentinel talking to the other Sentinels. Run it on every server without I(outgoing) first, then
    with it, so no peer sends the new password before every server accepts it.
  - With I(state=only) every other password is retired, provided the server already accepts I(password)
    and uses it towards its peers (else nothing is retired and RV(waiting) says why) (Redis C(CONFIG SET requirepass), which also
    rewrites the C(requirepass) line; Sentinel C(ACL SETUSER default !<hash>)). Do this once every
    client uses I(password). Connections already authenticated stay open.
  - Each change is persisted at once (C(CONFIG REWRITE), C(SENTINEL FLUSHCONFIG)), so a restart keeps it.
  - The module logs in with I(password), else with the passwords written in I(config_file)
    (C(requirepass), C(masterauth), C(sentinel sentinel-pass)). Passwords are compared by the SHA-256
    hashes C(ACL GETUSER) shows; none is ever returned or shown in the diff.
  - Speaks RESP over a plain socket; no Python Redis client needed on the host.
options:
  kind:
    description: C(redis) for a Redis or Valkey server, C(sentinel) for a Sentinel.
    type: str
    choices: [redis, sentinel]
    default: redis
  password:
    description: The password the server must accept.
    type: str
    required: true
  state:
    description: C(accepted) adds I(password) to the accepted ones; C(only) also retires every other.
    type: str
    choices: [accepted, only]
    default: accepted
  outgoing:
    description: Also use I(password) towards the peers (Redis C(masterauth), Sentinel C(sentinel-pass)).
    type: bool
    default: false
  config_file:
    description: The server's configuration file, read for the current password when I(password) is not accepted yet.
    type: path
  host:
    description: Address of the server.
    type: str
    default: 127.0.0.1
  port:
    description: Its port.
    type: int
    default: 6379
  timeout:
    description: Seconds to wait for the server.
    type: float
    default: 3.0
attributes:
  check_mode:
    support: full
    description: Reports the steps it would take without sending them.
  diff_mode:
    support: full
    description: Shows whether the wanted password is accepted, how many others are, and whether it is used towards the peers.
notes:
  - Needs Redis or Valkey 6.2 or later (ACL in Sentinel, C(SENTINEL CONFIG SET sentinel-pass)).
"""

EXAMPLES = r"""
- name: Accept the fleet's Redis password on every server
  difyops.fleet.redis_auth:
    password: "{{ redis_password }}"
    config_file: /etc/redis/redis-dify.conf
  no_log: true

- name: Replicate with it
  difyops.fleet.redis_auth:
    password: "{{ redis_password }}"
    outgoing: true
    config_file: /etc/redis/redis-dify.conf
  no_log: true

- name: Once Sentinels and Dify use it, accept no other
  difyops.fleet.redis_auth:
    password: "{{ redis_password }}"
    state: only
    config_file: /etc/redis/redis-dify.conf
  no_log: true
"""

RETURN = r"""
changes:
  description: What was (or in check mode would be) done, in words naming no password.
  returned: always
  type: list
  elements: str
  sample: [accept the wanted password, use it as masterauth]
other_passwords:
  description: How many other passwords the server accepts after the run (before it in check mode).
  returned: always
  type: int
waiting:
  description:
    - With I(state=only), why other passwords stay accepted for now - the server does not accept
      I(password) yet or does not use it towards its peers (run I(state=accepted) first) - else empty.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.difyops.fleet.plugins.module_utils.redis_auth import (
    OUTGOING,
    AuthError,
    accepted_hashes,
    commands,
    config_passwords,
    describe,
    password_hash,
    plan,
    view,
    waiting,
)
from ansible_collections.difyops.fleet.plugins.module_utils.redis_resp import (
    RespClient,
    RespConnectionError,
    RespError,
)


def _is_auth_error(exc):
    text = str(exc).upper()
    return any(word in text for word in ("WRONGPASS", "INVALID PASSWORD", "NOAUTH", "INVALID USERNAME"))


def _login(module, candidates):
    p = module.params
    where = "%s at %s:%s" % (p["kind"].capitalize(), p["host"], p["port"])
    for password in candidates:
        try:
            return RespClient(p["host"], p["port"], password=password, timeout=p["timeout"])
        except RespError as exc:
            if not _is_auth_error(exc):
                module.fail_json(msg="%s refused AUTH: %s" % (where, exc))
        except RespConnectionError as exc:
            module.fail_json(msg="cannot talk to the %s: %s. Is the service running?" % (where, exc))
    module.fail_json(msg="the %s accepts neither the wanted password nor any password in its configuration "
                         "file (%s). Set the variable to the password the server runs with, or fix its "
                         "requirepass by hand." % (where, p["config_file"] or "config_file not given"))
    return None


def _outgoing_matches(cli, kind, wanted):
    if kind == "redis":
        reply = cli.command("CONFIG", "GET", "masterauth")
    else:
        reply = cli.command("SENTINEL", "CONFIG", "GET", "sentinel-pass")
    live = reply[1] if isinstance(reply, list) and len(reply) >= 2 else ""
    return (live or "") == wanted


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kind=dict(type="str", choices=["redis", "sentinel"], default="redis"),
            password=dict(type="str", required=True, no_log=True),
            state=dict(type="str", choices=["accepted", "only"], default="accepted"),
            outgoing=dict(type="bool", default=False),
            config_file=dict(type="path"),
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", default=6379),
            timeout=dict(type="float", default=3.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    kind, wanted = p["kind"], p["password"]
    if not wanted:
        module.fail_json(msg="password is empty: give the password the server must accept")

    candidates = [wanted]
    if p["config_file"]:
        try:
            with open(p["config_file"], "r") as fh:
                candidates += [c for c in config_passwords(fh.read(), kind) if c != wanted]
        except (IOError, OSError) as exc:
            module.fail_json(msg="config_file=%s: cannot read it (%s)" % (p["config_file"], exc.strerror))

    cli = _login(module, candidates)
    with cli:
        try:
            hashes, dummy_nopass = accepted_hashes(cli.command("ACL", "GETUSER", "default"))
            outgoing_ok = _outgoing_matches(cli, kind, wanted)
            steps = plan(kind, wanted, hashes, outgoing_ok, state=p["state"], outgoing=p["outgoing"])
        except (RespError, RespConnectionError, AuthError) as exc:
            module.fail_json(msg="reading the %s's passwords failed: %s" % (kind, exc))

        wanted_hash = password_hash(wanted)
        before = view(wanted_hash, hashes, outgoing_ok, kind)
        after_hashes = list(hashes)
        after_outgoing = outgoing_ok
        for step, detail in steps:
            if step == "accept":
                after_hashes.append(wanted_hash)
            elif step == "outgoing":
                after_outgoing = True
            elif step == "retire":
                after_hashes = [wanted_hash]
        after = view(wanted_hash, after_hashes, after_outgoing, kind)

        if steps and not module.check_mode:
            for cmd in commands(kind, wanted, steps):
                try:
                    reply = cli.command(*cmd)
                except (RespError, RespConnectionError) as exc:
                    # The command carries the password: name its first words only.
                    module.fail_json(msg="%s %s failed on the %s: %s" % (cmd[0], cmd[1], kind, exc),
                                     changes=describe(steps, kind))
                if reply != "OK":
                    module.fail_json(msg="%s %s on the %s answered %r, not OK" % (cmd[0], cmd[1], kind, reply),
                                     changes=describe(steps, kind))

    module.exit_json(
        changed=bool(steps),
        changes=describe(steps, kind),
        waiting=waiting(wanted, hashes, outgoing_ok, state=p["state"]),
        other_passwords=after["other_passwords_accepted"] if not module.check_mode else before["other_passwords_accepted"],
        outgoing_option=OUTGOING[kind],
        diff=dict(before=before, after=after),
    )


if __name__ == "__main__":
    main()
