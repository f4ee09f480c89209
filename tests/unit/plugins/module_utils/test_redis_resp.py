# -*- coding: utf-8 -*-
"""RESP2 encoding and parsing, and the client's handshake over a real socket."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.difyops.fleet.plugins.module_utils.redis_resp import (
    RespClient,
    RespConnectionError,
    RespError,
    encode_command,
    pairs_to_dict,
    parse_info,
    parse_replies,
)


def test_encode_command():
    assert encode_command("SENTINEL", "SET", "m", "quorum", 2) == (
        b"*5\r\n$8\r\nSENTINEL\r\n$3\r\nSET\r\n$1\r\nm\r\n$6\r\nquorum\r\n$1\r\n2\r\n")
    assert encode_command("AUTH", "p\u00e4ss") == b"*2\r\n$4\r\nAUTH\r\n$5\r\np\xc3\xa4ss\r\n"


def test_parse_replies_all_types():
    data = (b"+OK\r\n-NOAUTH Authentication required.\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n"
            b"*2\r\n$2\r\nip\r\n*1\r\n:1\r\n*-1\r\n")
    out = parse_replies(data)
    assert out[0] == "OK"
    assert isinstance(out[1], RespError) and "NOAUTH" in str(out[1])
    assert out[2:5] == [42, "he\r\no", None]
    assert out[5] == ["ip", [1]]
    assert out[6] is None


def test_pairs_and_info():
    assert pairs_to_dict(["a", "1", "b", "2"]) == {"a": "1", "b": "2"}
    with pytest.raises(ValueError):
        pairs_to_dict(["a"])
    info = parse_info("# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=1,port=2\r\n")
    assert info == {"role": "master", "connected_slaves": "2", "slave0": "ip=1,port=2"}


class _OneShotServer(object):
    """A listening socket answering each received command with canned replies."""

    def __init__(self, replies):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.replies = list(replies)
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def _serve(self):
        conn, dummy_addr = self.sock.accept()
        with conn:
            while self.replies:
                data = conn.recv(65536)
                if not data:
                    return
                self.received += data
                conn.sendall(self.replies.pop(0))


def test_client_authenticates_then_reads_reply():
    srv = _OneShotServer([b"+OK\r\n", b"*2\r\n$8\r\n10.0.0.2\r\n$4\r\n6379\r\n"])
    with RespClient("127.0.0.1", srv.port, password="pw", timeout=2) as cli:
        assert cli.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m") == ["10.0.0.2", "6379"]
    srv.thread.join(2)
    assert srv.received.startswith(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n")


def test_client_raises_error_reply():
    srv = _OneShotServer([b"-WRONGPASS invalid username-password pair\r\n"])
    with pytest.raises(RespError):
        RespClient("127.0.0.1", srv.port, password="bad", timeout=2)


def test_client_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(RespConnectionError):
        RespClient("127.0.0.1", port, timeout=0.5)
