# -*- coding: utf-8 -*-
# Copyright: difyops.fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A small RESP2 client (standard library only) for Redis, Valkey and Sentinel.

Modules of difyops.fleet run on the fleet's hosts, where no Python Redis
client may be installed. The commands they need (AUTH, PING, INFO, SENTINEL
...) fit in a few dozen lines of the Redis protocol, so they speak it over a
plain socket instead of depending on a package.
"""

from __future__ import annotations

import socket


class RespError(Exception):
    """An error reply from the server (``-ERR ...``, ``-NOAUTH ...``)."""


class RespConnectionError(Exception):
    """The server could not be reached or closed the connection."""


def encode_command(*args):
    """Encode a command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, bool):
            data = b"yes" if arg else b"no"
        else:
            data = str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _decode(value):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


class _Reader(object):
    """Parses RESP2 replies from a byte source with a ``recv(n)`` method."""

    def __init__(self, recv):
        self._recv = recv
        self._buf = b""

    def _fill(self):
        chunk = self._recv(65536)
        if not chunk:
            raise RespConnectionError("connection closed by the server")
        self._buf += chunk

    def _line(self):
        while b"\r\n" not in self._buf:
            self._fill()
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self._buf) < n + 2:
            self._fill()
        data, self._buf = self._buf[:n], self._buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        if not line:
            raise RespConnectionError("empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return _decode(rest)
        if kind == b"-":
            return RespError(_decode(rest))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            return _decode(self._exact(n))
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for dummy in range(n)]
        raise RespConnectionError("unexpected reply type %r" % kind)


def parse_replies(data):
    """Parse every complete reply in ``data`` (bytes); for tests and tooling."""
    chunks = [data]

    def recv(dummy_n):
        return chunks.pop() if chunks else b""

    reader = _Reader(recv)
    out = []
    while True:
        try:
            out.append(reader.read())
        except RespConnectionError:
            return out


class RespClient(object):
    """One connection to a Redis, Valkey or Sentinel server."""

    def __init__(self, host, port, password=None, username=None, timeout=2.0):
        self.host = host
        self.port = int(port)
        self.timeout = timeout
        try:
            self._sock = socket.create_connection((host, self.port), timeout=timeout)
        except (OSError, socket.timeout) as exc:
            raise RespConnectionError("cannot connect to %s:%s: %s" % (host, port, exc)) from None
        self._sock.settimeout(timeout)
        self._reader = _Reader(self._recv)
        if password:
            if username:
                self.command("AUTH", username, password)
            else:
                self.command("AUTH", password)

    def _recv(self, n):
        try:
            return self._sock.recv(n)
        except (OSError, socket.timeout) as exc:
            raise RespConnectionError("no reply from %s:%s: %s" % (self.host, self.port, exc)) from None

    def command(self, *args):
        """Send one command and return its reply; raise RespError on an error reply."""
        try:
            self._sock.sendall(encode_command(*args))
        except (OSError, socket.timeout) as exc:
            raise RespConnectionError("cannot send to %s:%s: %s" % (self.host, self.port, exc)) from None
        reply = self._reader.read()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def close(self):
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pairs_to_dict(flat):
    """``[k1, v1, k2, v2]`` (as SENTINEL MASTER returns it) to a dict."""
    if not isinstance(flat, list) or len(flat) % 2:
        raise ValueError("expected a flat list of field/value pairs, got %r" % (flat,))
    return dict(zip(flat[0::2], flat[1::2]))


def parse_info(text):
    """The text of INFO into a dict of section fields (strings)."""
    out = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        out[key] = value
    return out
