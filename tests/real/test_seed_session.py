"""The seed article's telnet session, typed verbatim at ``mailproto serve --demo`` over a raw
socket: the same commands get the article's answers, octet counts included (see
/work/shared/seed/README.md, "The worked example")."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from serve_fixture import RunningServer, running_server

pytestmark = pytest.mark.real

SEED_SIZES = [999, 42837, 43789, 43789, 46187, 43386, 70606]


class Telnet:
    """A student at a telnet prompt: type a line, read the whole answer."""

    def __init__(self, srv: RunningServer) -> None:
        self.sock = socket.create_connection((srv.host, srv.pop3_port), timeout=15)
        self.buf = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed; had {self.buf[-200:]!r}"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def multiline(self) -> list[bytes]:
        lines = []
        while (line := self.line()) != b".":
            lines.append(line[1:] if line.startswith(b"..") else line)
        return lines

    def type(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def closed(self) -> bool:
        return self.buf == b"" and self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


def test_the_seed_session(tmp_path: Path) -> None:
    with running_server(tmp_path, demo=True) as srv:
        box = srv.maildir("username")
        names = [p.name for p in srv.messages("username")]
        assert len(names) == 7

        t = Telnet(srv)
        greeting = t.line()
        assert re.fullmatch(rb"\+OK mail\.test POP3 server ready <\d+\.\d+\.\d+@mail\.test>",
                            greeting)
        assert t.type("user username") == b"+OK Password required for username"
        assert t.type("pass password") == b"+OK Maildrop has 7 messages (291593 bytes)"
        assert t.type("stat") == b"+OK 7 291593"
        assert t.type("list") == b"+OK 7 messages (291593 octets)"
        assert t.multiline() == [f"{i} {n}".encode() for i, n in enumerate(SEED_SIZES, 1)]
        assert t.type("retr 1") == b"+OK 999 octets"
        message = t.multiline()
        assert sum(len(line) + 2 for line in message) == 999
        assert b"Subject: =?gb2312?B?uafPssT6s8nOqrG+08q8/s+1zbO1xNDC08O7pyEg?=" in message
        assert t.type("top 1 0") == b"+OK top of message follows"
        head = t.multiline()
        assert head == message[: message.index(b"") + 1]  # the header and the blank line
        assert t.type("dele 1") == b"+OK message 1 deleted"
        assert t.type("dele 2") == b"+OK message 2 deleted"
        assert t.type("quit") == b"+OK mail.test POP3 server signing off (5 messages left)"
        assert t.closed()
        t.close()

        left = sorted(p.name for p in srv.messages("username"))
        assert left == sorted(names[2:])
        assert not any((box / sub / name).exists() for sub in ("new", "cur")
                       for name in names[:2])

        # A second session sees the five that are left, renumbered from 1.
        t = Telnet(srv)
        t.line()
        t.type("user username")
        assert t.type("pass password") == (
            f"+OK Maildrop has 5 messages ({sum(SEED_SIZES[2:])} bytes)".encode())
        assert t.type("list") == f"+OK 5 messages ({sum(SEED_SIZES[2:])} octets)".encode()
        assert t.multiline() == [f"{i} {n}".encode() for i, n in enumerate(SEED_SIZES[2:], 1)]
        assert t.type("quit").startswith(b"+OK")
        t.close()


def test_the_seed_session_pipelined_in_one_write(tmp_path: Path) -> None:
    """The same commands sent in one go (RFC 2449 PIPELINING): the answers come in order."""
    with running_server(tmp_path, demo=True) as srv:
        t = Telnet(srv)
        t.line()
        t.sock.sendall(b"user username\r\npass password\r\nstat\r\nlist\r\nretr 1\r\n"
                       b"top 1 0\r\nquit\r\n")
        assert t.line() == b"+OK Password required for username"
        assert t.line() == b"+OK Maildrop has 7 messages (291593 bytes)"
        assert t.line() == b"+OK 7 291593"
        t.line()
        assert len(t.multiline()) == 7
        assert t.line() == b"+OK 999 octets"
        assert sum(len(line) + 2 for line in t.multiline()) == 999
        t.line()
        t.multiline()
        assert t.line().startswith(b"+OK mail.test POP3 server signing off (7 messages")
        t.close()
        assert len(srv.messages("username")) == 7
