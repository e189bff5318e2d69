"""Failed logins remembered across sessions (mailproto.penalty), in both cores and over TCP."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import pytest

from mailproto.penalty import AuthPenalty
from mailproto.pop3.server import ServerConfig as POP3Config
from mailproto.pop3.server import ServerSession as POP3Session
from mailproto.smtp.server import ServerConfig as SMTPConfig
from mailproto.smtp.server import ServerSession as SMTPSession
from mailproto.store import Store, Users


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def penalty(**kw: float) -> tuple[AuthPenalty, Clock]:
    clock = Clock()
    return AuthPenalty(clock=clock, **kw), clock  # type: ignore[arg-type]


# -- the table ------------------------------------------------------------------------------------
def test_each_failure_doubles_the_wait_up_to_the_maximum() -> None:
    p, _ = penalty(base=1.0, maximum=15.0)
    waits = []
    for _ in range(7):
        waits.append(p.wait("10.0.0.1", "alice"))
        p.failed("10.0.0.1", "alice")
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]


def test_pairs_are_independent_and_names_case_insensitive() -> None:
    p, _ = penalty(base=1.0)
    for _ in range(3):
        p.failed("10.0.0.1", "Alice")
    assert p.wait("10.0.0.1", "alice") == 4.0
    assert p.wait("10.0.0.1", "bob") == 0.0  # a classmate behind the same NAT address
    assert p.wait("10.0.0.2", "alice") == 0.0  # the owner, from elsewhere


def test_success_and_time_forget() -> None:
    p, clock = penalty(base=1.0, forget_after=900.0)
    p.failed("a", "alice")
    p.failed("a", "bob")
    p.succeeded("a", "alice")
    assert p.wait("a", "alice") == 0.0
    clock.now += 899
    assert p.wait("a", "bob") == 1.0
    clock.now += 2
    assert p.wait("a", "bob") == 0.0
    p.failed("a", "bob")  # counting starts again
    assert p.failures("a", "bob") == 1


def test_memory_is_bounded_oldest_first() -> None:
    p, clock = penalty(base=1.0, max_entries=3)
    for n in range(5):
        clock.now += 1
        p.failed("a", f"user{n}")
    assert [p.failures("a", f"user{n}") for n in range(5)] == [0, 0, 1, 1, 1]


def test_no_base_no_wait() -> None:
    p, _ = penalty(base=0.0)
    for _ in range(5):
        p.failed("a", "alice")
    assert p.wait("a", "alice") == 0.0


# -- in the cores ---------------------------------------------------------------------------------
USERS = "alice:secret\nbob:hunter2\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def smtp_session(store: Store, config: SMTPConfig, ip: str) -> SMTPSession:
    s = SMTPSession(config, store, peer_ip=ip)
    s.initiate()
    s.receive(b"EHLO guesser.test\r\n")
    return s


def test_smtp_a_new_session_does_not_start_afresh(tmp_path: Path) -> None:
    store = Store(tmp_path, Users.parse(USERS))
    p, _ = penalty(base=0.5)
    config = SMTPConfig(auth_failure_delay=0.5, penalty=p)
    first = smtp_session(store, config, "192.0.2.7")
    for _ in range(3):
        first.receive(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'guess')}\r\n".encode())
    assert first.closed
    second = smtp_session(store, config, "192.0.2.7")
    out = second.receive(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'guess')}\r\n".encode())
    assert out.startswith(b"535 ") and second.delay == 2.0  # 0.5 × 2^(3-1)
    # Even the right password waits now: a quick answer must not mean "right".
    out = second.receive(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'secret')}\r\n".encode())
    assert out.startswith(b"235 ") and second.delay == 4.0
    # ... and a success forgets.
    third = smtp_session(store, config, "192.0.2.7")
    out = third.receive(b"AUTH LOGIN\r\n" + f"{b64('alice')}\r\n{b64('nope')}\r\n".encode())
    assert out.endswith(b"535 5.7.8 Error: authentication failed\r\n") and third.delay == 0.5
    # Another user, from the same address: not slowed by alice's record.
    other = smtp_session(store, config, "192.0.2.7")
    out = other.receive(f"AUTH PLAIN {b64(chr(0) + 'bob' + chr(0) + 'hunter2')}\r\n".encode())
    assert out.startswith(b"235 ") and other.delay == 0.0


def pop3_session(store: Store, config: POP3Config, ip: str) -> POP3Session:
    s = POP3Session(config, store, peer_ip=ip)
    s.initiate()
    return s


@pytest.mark.parametrize("way", ["USER/PASS", "AUTH PLAIN", "AUTH LOGIN"])
def test_pop3_a_new_session_does_not_start_afresh(tmp_path: Path, way: str) -> None:
    def attempt(s: POP3Session, password: str) -> bytes:
        if way == "USER/PASS":
            return s.receive(f"USER alice\r\nPASS {password}\r\n".encode())
        if way == "AUTH PLAIN":
            return s.receive(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + password)}\r\n"
                             .encode())
        return s.receive(f"AUTH LOGIN\r\n{b64('alice')}\r\n{b64(password)}\r\n".encode())

    store = Store(tmp_path, Users.parse(USERS))
    p, _ = penalty(base=1.0)
    config = POP3Config(auth_failure_delay=1.0, penalty=p)
    first = pop3_session(store, config, "198.51.100.9")
    for _ in range(3):
        attempt(first, "guess")
    assert first.closed and p.failures("198.51.100.9", "alice") == 3
    second = pop3_session(store, config, "198.51.100.9")
    assert attempt(second, "guess").endswith(b"-ERR [AUTH] Invalid user name or password\r\n")
    assert second.delay == 4.0
    assert b"+OK Maildrop has" in attempt(second, "secret") and second.delay == 8.0
    assert p.failures("198.51.100.9", "alice") == 0
    second.receive(b"QUIT\r\n")


def test_pop3_apop_counts_too(tmp_path: Path) -> None:
    store = Store(tmp_path, Users.parse(USERS))
    p, _ = penalty(base=1.0)
    s = pop3_session(store, POP3Config(auth_failure_delay=1.0, penalty=p), "203.0.113.5")
    s.receive(b"APOP alice " + b"0" * 32 + b"\r\n")
    assert p.failures("203.0.113.5", "alice") == 1


# -- over TCP: one `mailproto serve`, SMTP and POP3 share the record ------------------------------
def test_serve_slows_a_reconnecting_guesser_across_protocols(tmp_path: Path) -> None:
    from mailproto.net.runner import BackgroundServer

    def smtp_try(port: int, password: str) -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            f = c.makefile("rb")
            f.readline()
            c.sendall(b"EHLO guesser.test\r\n")
            while f.readline()[3:4] == b"-":
                pass
            started = time.monotonic()
            c.sendall(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + password)}\r\n".encode())
            reply = f.readline()
            return reply, time.monotonic() - started

    def pop3_login(port: int, password: str) -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            f = c.makefile("rb")
            f.readline()
            c.sendall(b"USER alice\r\n")
            f.readline()
            started = time.monotonic()
            c.sendall(f"PASS {password}\r\n".encode())
            reply = f.readline()
            c.sendall(b"QUIT\r\n")
            return reply, time.monotonic() - started

    users = tmp_path / "users"
    users.write_text("alice:secret\n")
    with BackgroundServer(data=tmp_path / "data", users=users, auth_failure_delay=0.1) as srv:
        for _ in range(3):  # three sessions, one guess each
            reply, _took = smtp_try(srv.smtp_port, "guess")
            assert reply.startswith(b"535")
        # POP3 knows: 3 failures make 0.1 × 2^2 = 0.4 s, for the right password too.
        reply, took = pop3_login(srv.pop3_port, "secret")
        assert reply.startswith(b"+OK") and took >= 0.35
        reply, took = smtp_try(srv.smtp_port, "secret")  # the success forgot the record
        assert reply.startswith(b"235") and took < 0.35
