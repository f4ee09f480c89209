# -*- coding: utf-8 -*-
"""difyops.fleet.redis_auth: rolling a new password into Redis and Sentinel (pure plan + the module on a fake server)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.difyops.fleet.plugins.module_utils import redis_auth as ra
from ansible_collections.difyops.fleet.plugins.module_utils.redis_resp import _Reader, encode_command
from ansible_collections.difyops.fleet.plugins.modules import redis_auth as module

OLD = "old-password-0123456789"
NEW = "new-password-9876543210"


def h(pw):
    return hashlib.sha256(pw.encode()).hexdigest()


# --- pure logic -------------------------------------------------------------------------------------------------

def test_config_passwords_reads_the_server_files():
    redis_conf = 'port 6379\nrequirepass "a b\\"c"\n# requirepass commented\nmasterauth other\nmasterauth other\n'
    assert ra.config_passwords(redis_conf, "redis") == ['a b"c', "other"]
    sentinel_conf = 'requirepass "s1"\nsentinel sentinel-pass s2\nsentinel auth-pass dify-master r1\n'
    assert ra.config_passwords(sentinel_conf, "sentinel") == ["s1", "s2"]
    # A Redis file's masterauth is not a Sentinel's password, nor the reverse.
    assert ra.config_passwords("masterauth x\n", "sentinel") == []
    assert ra.config_passwords("sentinel sentinel-pass x\n", "redis") == []
    assert ra.config_passwords('requirepass "unbalanced\n', "redis") == []


def test_accepted_hashes():
    reply = ["flags", ["on", "sanitize-payload"], "passwords", [h(OLD).upper()], "commands", "+@all"]
    assert ra.accepted_hashes(reply) == ([h(OLD)], False)
    assert ra.accepted_hashes(["flags", ["on", "nopass"], "passwords", []]) == ([], True)
    with pytest.raises(ra.AuthError):
        ra.accepted_hashes("ERR")


@pytest.mark.parametrize("hashes, outgoing_ok, state, outgoing, steps", [
    # Nothing to do: the wanted password is the only one and is used.
    ([h(NEW)], True, "only", True, []),
    # A rotation, stage 1 on every server: accept, old kept.
    ([h(OLD)], False, "accepted", False, [("accept", None)]),
    # Stage 2: use it towards the peers.
    ([h(OLD), h(NEW)], False, "accepted", True, [("outgoing", "masterauth")]),
    # Stage 3: retire the old one.
    ([h(OLD), h(NEW)], True, "only", True, [("retire", [h(OLD)])]),
    # A server the rotation has not reached (its tier skipped): nothing is retired, which would cut off its
    # replicas and Sentinels; accepting the new one besides is harmless.
    ([h(OLD)], False, "only", False, [("accept", None)]),
    ([h(OLD), h(NEW)], False, "only", False, []),
])
def test_plan_stages(hashes, outgoing_ok, state, outgoing, steps):
    assert ra.plan("redis", NEW, hashes, outgoing_ok, state=state, outgoing=outgoing) == steps


def test_waiting_says_why_nothing_is_retired():
    assert ra.waiting(NEW, [h(OLD)], False, "only") == "it does not accept the wanted password yet"
    assert ra.waiting(NEW, [h(OLD), h(NEW)], False, "only") == \
        "it does not use the wanted password towards its peers yet"
    assert ra.waiting(NEW, [h(OLD), h(NEW)], True, "only") == ""
    assert ra.waiting(NEW, [h(OLD)], False, "accepted") == ""
    assert ra.waiting(NEW, [h(NEW)], False, "only") == ""


def test_commands_per_kind_never_named_in_words():
    steps = [("accept", None), ("outgoing", "x"), ("retire", [h(OLD)])]
    assert ra.commands("redis", NEW, steps) == [
        ("ACL", "SETUSER", "default", "on", ">" + NEW),
        ("CONFIG", "SET", "masterauth", NEW),
        ("CONFIG", "SET", "requirepass", NEW),
        ("CONFIG", "REWRITE"),
    ]
    assert ra.commands("sentinel", NEW, steps) == [
        ("ACL", "SETUSER", "default", "on", ">" + NEW),
        ("SENTINEL", "CONFIG", "SET", "sentinel-pass", NEW),
        ("ACL", "SETUSER", "default", "!" + h(OLD)),
        ("SENTINEL", "FLUSHCONFIG"),
    ]
    assert ra.commands("redis", NEW, []) == []
    words = ra.describe(steps, "redis")
    assert words == ["accept the wanted password", "use it as x", "retire 1 other password"]
    assert NEW not in json.dumps(words) and OLD not in json.dumps(ra.view(h(NEW), [h(OLD)], False, "redis"))


def test_bad_input():
    with pytest.raises(ra.AuthError):
        ra.plan("cluster", NEW, [], True)
    with pytest.raises(ra.AuthError):
        ra.plan("redis", NEW, [], True, state="absent")
    with pytest.raises(ra.AuthError):
        ra.plan("redis", "", [], True)


# --- the module against a fake server ---------------------------------------------------------------------------

class FakeServer(object):
    """Enough of Redis (kind redis) or Sentinel (kind sentinel) auth: ACL default user, masterauth, sentinel-pass."""

    def __init__(self, kind, passwords, outgoing):
        self.kind = kind
        self.hashes = [h(p) for p in passwords]
        self.outgoing = outgoing
        self.persisted = None
        self.commands = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        thread = threading.Thread(target=self._accept)
        thread.daemon = True
        thread.start()

    def _accept(self):
        while True:
            try:
                conn, dummy = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,))
            thread.daemon = True
            thread.start()

    def _serve(self, conn):
        reader = _Reader(conn.recv)
        authed = False
        with conn:
            while True:
                try:
                    cmd = reader.read()
                except Exception:  # pylint: disable=broad-except
                    return
                reply = self._handle(cmd, authed)
                if cmd[0] == "AUTH" and reply == b"+OK\r\n":
                    authed = True
                conn.sendall(reply)

    def _handle(self, cmd, authed):
        if cmd[0] == "AUTH":
            return b"+OK\r\n" if h(cmd[-1]) in self.hashes else b"-WRONGPASS invalid username-password pair\r\n"
        if not authed:
            return b"-NOAUTH Authentication required.\r\n"
        self.commands.append(tuple(cmd))
        if cmd[:3] == ["ACL", "GETUSER", "default"]:
            return _getuser(self.hashes)
        if cmd[:2] == ["ACL", "SETUSER"]:
            for rule in cmd[3:]:
                if rule.startswith(">") and h(rule[1:]) not in self.hashes:
                    self.hashes.append(h(rule[1:]))
                elif rule.startswith("!"):
                    self.hashes = [x for x in self.hashes if x != rule[1:]]
            return b"+OK\r\n"
        if cmd == ["CONFIG", "GET", "masterauth"] or cmd == ["SENTINEL", "CONFIG", "GET", "sentinel-pass"]:
            return encode_command(cmd[-1], self.outgoing)
        if cmd[:3] == ["CONFIG", "SET", "masterauth"] or cmd[:4] == ["SENTINEL", "CONFIG", "SET", "sentinel-pass"]:
            self.outgoing = cmd[-1]
            return b"+OK\r\n"
        if cmd[:3] == ["CONFIG", "SET", "requirepass"]:
            self.hashes = [h(cmd[3])]
            return b"+OK\r\n"
        if cmd in (["CONFIG", "REWRITE"], ["SENTINEL", "FLUSHCONFIG"]):
            self.persisted = (list(self.hashes), self.outgoing)
            return b"+OK\r\n"
        return b"-ERR unknown command\r\n"

    def close(self):
        self.sock.close()


def _getuser(hashes):
    out = [b"*4\r\n", encode_command("flags")[4:], b"*1\r\n", encode_command("on")[4:],
           encode_command("passwords")[4:], b"*%d\r\n" % len(hashes)]
    out += [encode_command(x)[4:] for x in hashes]
    return b"".join(out)


def run(capsys, server, **args):
    args = dict(args, port=server.port, kind=server.kind, _ansible_check_mode=args.pop("check", False), _ansible_diff=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    return json.loads(out), out


@pytest.fixture()
def redis_conf(tmp_path):
    path = tmp_path / "redis-dify.conf"
    path.write_text('port 6379\nrequirepass "%s"\nmasterauth "%s"\n' % (OLD, OLD))
    return str(path)


def test_a_rotation_in_three_stages_never_refuses_the_old_password_early(capsys, redis_conf):
    srv = FakeServer("redis", [OLD], OLD)
    try:
        # Check mode: reports, sends nothing that changes.
        res, out = run(capsys, srv, password=NEW, config_file=redis_conf, check=True)
        assert res["changed"] and res["changes"] == ["accept the wanted password"]
        assert srv.hashes == [h(OLD)] and srv.persisted is None
        assert res["diff"]["before"]["accepts_wanted_password"] is False
        assert res["diff"]["after"]["accepts_wanted_password"] is True
        assert NEW not in out and OLD not in out
        # 1. accepted (logged in with the file's password): both work, persisted.
        res, out = run(capsys, srv, password=NEW, config_file=redis_conf)
        assert res["changed"] and srv.hashes == [h(OLD), h(NEW)] and srv.outgoing == OLD
        assert srv.persisted == ([h(OLD), h(NEW)], OLD)
        assert res["other_passwords"] == 1 and NEW not in out and OLD not in out
        # 2. outgoing: masterauth switches, old still accepted.
        res, out = run(capsys, srv, password=NEW, config_file=redis_conf, outgoing=True)
        assert res["changes"] == ["use it as masterauth"] and srv.outgoing == NEW and len(srv.hashes) == 2
        # 3. only: the old one is retired.
        res, out = run(capsys, srv, password=NEW, config_file=redis_conf, outgoing=True, state="only")
        assert res["changes"] == ["retire 1 other password"] and srv.hashes == [h(NEW)]
        assert srv.persisted == ([h(NEW)], NEW) and res["other_passwords"] == 0
        # Again: nothing to do.
        res, out = run(capsys, srv, password=NEW, config_file=redis_conf, outgoing=True, state="only")
        assert not res["changed"] and res["changes"] == []
        assert not any(NEW in " ".join(c) or OLD in " ".join(c) for c in srv.commands[-2:])
    finally:
        srv.close()


def test_sentinel_retires_by_hash(capsys, tmp_path):
    conf = tmp_path / "sentinel-dify.conf"
    conf.write_text('requirepass "%s"\n' % OLD)
    srv = FakeServer("sentinel", [OLD], "")
    try:
        # Retiring on a Sentinel the rotation has not reached: refused, said why.
        res, dummy = run(capsys, srv, password=NEW, config_file=str(conf), state="only")
        assert res["changes"] == ["accept the wanted password"] and srv.outgoing == ""
        assert res["waiting"] == "it does not accept the wanted password yet"
        assert srv.hashes == [h(OLD), h(NEW)]
        # Each stage is a call of its own (on every server before the next): switching sentinel-pass does not
        # retire in the same call.
        res, dummy = run(capsys, srv, password=NEW, config_file=str(conf), outgoing=True, state="only")
        assert res["changes"] == ["use it as sentinel-pass"]
        assert res["waiting"] == "it does not use the wanted password towards its peers yet"
        res, dummy = run(capsys, srv, password=NEW, config_file=str(conf), outgoing=True, state="only")
        assert res["changes"] == ["retire 1 other password"] and res["waiting"] == ""
        assert srv.hashes == [h(NEW)] and srv.outgoing == NEW
        assert ("ACL", "SETUSER", "default", "!" + h(OLD)) in srv.commands
        assert srv.commands[-1] == ("SENTINEL", "FLUSHCONFIG")
    finally:
        srv.close()


def test_no_usable_password_is_refused_without_showing_one(capsys, redis_conf):
    srv = FakeServer("redis", ["a-third-password-xyz123"], "")
    try:
        with patch_module_args({"password": NEW, "config_file": redis_conf, "port": srv.port}):
            with pytest.raises(SystemExit):
                module.main()
        out = capsys.readouterr().out
        res = json.loads(out)
        assert res["failed"] and "accepts neither the wanted password nor any password" in res["msg"]
        assert NEW not in out and OLD not in out
    finally:
        srv.close()
