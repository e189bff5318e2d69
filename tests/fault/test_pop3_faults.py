"""POP3 under faults: a session that ends without QUIT removes nothing (RFC 1939 §6), and a
maildrop is locked by one session at a time (RFC 1939 §8, RFC 2449 [IN-USE])."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ._support import Client, Server, kill, messages, needs_pop3, start_server, wait_until

pytestmark = needs_pop3

MESSAGES = [b"Subject: one\n\nfirst\n", b"Subject: two\n\n.dot line\nsecond\n",
            b"Subject: three\n\nthird\n"]


def _fill(maildir: Path) -> list[Path]:
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(MESSAGES):
        path = maildir / "new" / f"{1700000000 + i}.M{i:06d}P1Q{i}.fault"
        path.write_bytes(text)
        paths.append(path)
    return paths


def _login(port: int, user: bytes = b"alice", password: bytes = b"secret") -> Client:
    c = Client(port)
    assert c.line().startswith(b"+OK")
    c.pop(b"USER " + user)
    c.pop(b"PASS " + password)
    return c


def _stat(port: int) -> int:
    with _login(port) as c:
        count = int(c.pop(b"STAT").split()[1])
        c.pop(b"QUIT")
    return count


@pytest.mark.parametrize("how", ["close", "reset", "timeout"])
def test_session_dropped_after_dele_removes_nothing(tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    paths = _fill(data / "alice")
    srv = start_server(data, ["--timeout", "1"] if how == "timeout" else [])
    try:
        c = _login(srv.pop3_port)
        c.pop(b"DELE 1")
        c.pop(b"DELE 3")
        assert c.pop(b"STAT").split()[1] == b"1"
        if how == "close":
            c.close()
        elif how == "reset":
            c.reset()
        else:
            assert c.closed_by_peer(5), "the idle session was not ended"
            assert b"-ERR" in c.buf, c.buf
            c.close()
        # The lock is released and nothing was removed.
        assert wait_until(lambda: _stat(srv.pop3_port) == 3, timeout=5)
        assert all(p.exists() for p in paths)
        # QUIT is what removes: the control case.
        with _login(srv.pop3_port) as c2:
            c2.pop(b"DELE 1")
            c2.pop(b"QUIT")
        assert wait_until(lambda: len(messages(data / "alice")) == 2)
    finally:
        assert kill(srv.proc) == 0, srv.stderr()[-3000:]


def test_two_logins_at_once(server: Server) -> None:
    _fill(server.maildir("alice"))
    first = _login(server.pop3_port)
    with Client(server.pop3_port) as second:
        assert second.line().startswith(b"+OK")
        second.pop(b"USER alice")
        answer = second.pop(b"PASS secret", ok=False)
        assert answer.startswith(b"-ERR [IN-USE]"), answer
        # The refused session goes on in AUTHORIZATION; another user's maildrop is free.
        second.pop(b"USER bob")
        second.pop(b"PASS hunter2")
        second.pop(b"QUIT")
    # The first session is unaffected, and the lock goes with it.
    assert first.pop(b"STAT").split()[1] == b"3"
    first.pop(b"QUIT")
    first.close()
    assert wait_until(lambda: _stat(server.pop3_port) == 3)


def test_lock_is_released_when_the_holder_vanishes(server: Server) -> None:
    _fill(server.maildir("alice"))
    holder = _login(server.pop3_port)
    holder.reset()

    def can_login() -> bool:
        with Client(server.pop3_port) as c:
            c.line()
            c.pop(b"USER alice")
            ok = c.pop(b"PASS secret", ok=None).startswith(b"+OK")
            c.pop(b"QUIT", ok=None)
            return ok

    assert wait_until(can_login, timeout=5)


def test_server_killed_during_a_session(tmp_path: Path) -> None:
    """SIGKILL with DELE marks and the maildrop locked: the marks are forgotten, the kernel
    drops the lock, and the restarted server serves the same three messages."""
    data = tmp_path / "data"
    paths = _fill(data / "alice")
    srv = start_server(data)
    c = _login(srv.pop3_port)
    c.pop(b"DELE 2")
    kill(srv.proc, signal.SIGKILL)
    c.close()
    assert all(p.exists() for p in paths)
    again = start_server(data)
    try:
        with _login(again.pop3_port) as c2:
            assert c2.pop(b"STAT").split()[1] == b"3"
            c2.pop(b"RETR 2")
            assert c2.pop_body() == b"Subject: two\r\n\r\n.dot line\r\nsecond"
            c2.pop(b"QUIT")
    finally:
        assert kill(again.proc) == 0, again.stderr()[-3000:]


@pytest.mark.server_args("--max-connections", "3")
def test_pop3_connection_limit(server: Server) -> None:
    _fill(server.maildir("alice"))
    held = [Client(server.pop3_port) for _ in range(3)]
    try:
        for c in held:
            assert c.line().startswith(b"+OK")
        with Client(server.pop3_port) as extra:
            text = extra.line()
            assert text.startswith(b"-ERR"), text
            assert extra.closed_by_peer(3)
        held[0].pop(b"USER alice")
        held[0].pop(b"PASS secret")
        assert held[0].pop(b"STAT").split()[1] == b"3"
    finally:
        for c in held:
            c.close()
