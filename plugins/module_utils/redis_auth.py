# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Changing the password of a running Redis, Valkey or Sentinel without cutting its clients off.

A rotation is rolled in two stages, so that no client is ever refused:

1. ``accepted``: the server accepts the wanted password *besides* the ones it
   accepted so far (``ACL SETUSER default >pw``: the default user may hold
   several passwords); with ``outgoing`` it also uses the wanted one towards
   its peers (a Redis replica's ``masterauth``, a Sentinel's ``sentinel-pass``
   for the other Sentinels). Every server accepts it before any peer sends it.
2. ``only``: once every client (Sentinels, Dify) uses it, the other passwords
   are retired - only on a server where stage 1 is done (Redis: ``CONFIG SET requirepass``, which keeps the wanted one
   only; Sentinel: ``ACL SETUSER default !<hash>``).

Each stage is persisted (``CONFIG REWRITE``, ``SENTINEL FLUSHCONFIG``), so a
restart keeps it. Passwords are compared by their SHA-256 as ``ACL GETUSER``
shows them: no password is ever read back or returned.
"""

from __future__ import annotations

import hashlib

from ansible_collections.difyops.fleet.plugins.module_utils.redis_sentinel import SentinelError, split_config_args

KINDS = ("redis", "sentinel")
STATES = ("accepted", "only")

# Where each kind keeps the password it uses towards its peers.
OUTGOING = {"redis": "masterauth", "sentinel": "sentinel-pass"}


class AuthError(Exception):
    """Bad input or a server answer that cannot be worked with; the message names no secret."""


def password_hash(password):
    """The SHA-256 hex digest Redis shows for a password (``ACL GETUSER``)."""
    return hashlib.sha256(str(password).encode("utf-8")).hexdigest()


def config_passwords(text, kind):
    """Passwords written in a server's configuration file, to log in with when the wanted one is not accepted yet.

    Redis: ``requirepass`` and ``masterauth``; Sentinel: ``requirepass`` and
    ``sentinel sentinel-pass``. In file order, without duplicates.
    """
    if kind not in KINDS:
        raise AuthError("kind=%r: use one of %s" % (kind, ", ".join(KINDS)))
    found = []
    for raw in (text or "").splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        try:
            args = split_config_args(raw)
        except SentinelError:
            # An unparsable line holds no usable password.
            continue
        value = None
        if len(args) == 2 and args[0].lower() == "requirepass":
            value = args[1]
        elif kind == "redis" and len(args) == 2 and args[0].lower() == "masterauth":
            value = args[1]
        elif kind == "sentinel" and len(args) == 3 and [a.lower() for a in args[:2]] == ["sentinel", "sentinel-pass"]:
            value = args[2]
        if value and value not in found:
            found.append(value)
    return found


def accepted_hashes(getuser_reply):
    """The password hashes of ``ACL GETUSER default`` (a flat RESP2 list of field/value pairs)."""
    if not isinstance(getuser_reply, list) or len(getuser_reply) % 2:
        raise AuthError("ACL GETUSER default gave an unexpected answer")
    fields = dict(zip(getuser_reply[0::2], getuser_reply[1::2]))
    passwords = fields.get("passwords") or []
    if not isinstance(passwords, list):
        raise AuthError("ACL GETUSER default gave no password list")
    flags = fields.get("flags") or []
    return [str(h).lower() for h in passwords], ("nopass" in flags)


def plan(kind, wanted, hashes, outgoing_matches, state="accepted", outgoing=False):
    """The steps that bring a server to the wanted password.

    ``hashes``: the hashes it accepts now; ``outgoing_matches``: whether the
    password it uses towards its peers is the wanted one already. Returns a
    list of ``(step, detail)``: ``("accept", None)``, ``("outgoing", option)``,
    ``("retire", [hashes])``; empty when nothing is to change.
    """
    if kind not in KINDS:
        raise AuthError("kind=%r: use one of %s" % (kind, ", ".join(KINDS)))
    if state not in STATES:
        raise AuthError("state=%r: use one of %s" % (state, ", ".join(STATES)))
    if not wanted:
        raise AuthError("the wanted password is empty")
    wanted_hash = password_hash(wanted)
    steps = []
    if wanted_hash not in hashes:
        steps.append(("accept", None))
    if outgoing and not outgoing_matches:
        steps.append(("outgoing", OUTGOING[kind]))
    others = [h for h in hashes if h != wanted_hash]
    # Retire only on a server that already accepts the wanted password and
    # uses it towards its peers: retiring on one the rotation has not reached
    # (its tier skipped) would cut off its replicas and Sentinels.
    if state == "only" and others and wanted_hash in hashes and outgoing_matches:
        steps.append(("retire", others))
    return steps


def waiting(wanted, hashes, outgoing_matches, state="accepted"):
    """Why ``state=only`` leaves other passwords accepted for now ('' when it does not)."""
    wanted_hash = password_hash(wanted)
    if state != "only" or not [h for h in hashes if h != wanted_hash]:
        return ""
    if wanted_hash not in hashes:
        return "it does not accept the wanted password yet"
    if not outgoing_matches:
        return "it does not use the wanted password towards its peers yet"
    return ""


def commands(kind, wanted, steps):
    """The commands that carry out ``steps`` (see plan), then the one that persists them."""
    out = []
    for step, detail in steps:
        if step == "accept":
            out.append(("ACL", "SETUSER", "default", "on", ">" + wanted))
        elif step == "outgoing":
            if kind == "redis":
                out.append(("CONFIG", "SET", "masterauth", wanted))
            else:
                out.append(("SENTINEL", "CONFIG", "SET", "sentinel-pass", wanted))
        elif step == "retire":
            if kind == "redis":
                # Also rewrites the requirepass line: no retired password stays in the file.
                out.append(("CONFIG", "SET", "requirepass", wanted))
            else:
                out.append(("ACL", "SETUSER", "default") + tuple("!" + h for h in detail))
        else:
            raise AuthError("unknown step %r" % (step,))
    if out:
        out.append(("CONFIG", "REWRITE") if kind == "redis" else ("SENTINEL", "FLUSHCONFIG"))
    return out


def describe(steps, kind):
    """Words for the steps, naming no password."""
    words = []
    for step, detail in steps:
        if step == "accept":
            words.append("accept the wanted password")
        elif step == "outgoing":
            words.append("use it as %s" % detail)
        elif step == "retire":
            words.append("retire %d other password%s" % (len(detail), "" if len(detail) == 1 else "s"))
    return words


def view(wanted_hash, hashes, outgoing_matches, kind):
    """A diff-able picture of the server's passwords, naming none."""
    return {
        "accepts_wanted_password": wanted_hash in hashes,
        "other_passwords_accepted": len([h for h in hashes if h != wanted_hash]),
        "%s_is_wanted_password" % OUTGOING[kind].replace("-", "_"): bool(outgoing_matches),
    }
