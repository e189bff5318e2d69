"""Drive the sans-I/O POP3 core with a client script, WHOLE and ONE BYTE AT A TIME.

A script is a list of steps: ``bytes`` are one client write; the markers below are transport
events.  :func:`converse` runs the script twice, in fresh data directories: once with every write
given to ``receive`` in one call, once byte by byte.  The server's bytes and every Maildir must
come out identical, so no test passes by luck of where a TCP segment ended.  Long responses are
collected the way a transport does: ``more()`` while ``has_more_output``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailproto.pop3.server import ServerConfig, ServerSession
from mailproto.store import Store, Users
from mailproto.transcript import Recorder, Transcript

USERS = """\
# test users
alice:secret
bob:hunter2
Carol:pa ss word
staff: alice, bob
"""
HOST = "mail.test"
TOKEN = "<4242.1.1000000000000000@mail.test>"
GREETING = b"+OK mail.test POP3 server ready " + TOKEN.encode() + b"\r\n"
#: The timestamp of the second call: the first CRAM-MD5 challenge of a session.
CRAM_TOKEN = "<4242.2.1000000000000000@mail.test>"

#: Three messages for alice, in arrival order: LF endings with dots at line starts, no final
#: newline, and a CRLF file written by some other program.
M1 = b"From: bob@local.test\nSubject: one\n\nHello\n.dot line\n..two dots\n.\n"
M2 = b"Subject: two\n\nno final newline"
M3 = b"Subject: three\r\n\r\nbody\r\n"
NAMES = ("1000000001.M000001P1Q1.test", "1000000002.M000002P1Q2.test",
         "1000000003.M000003P1Q3.test")


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


TLS = _Marker("TLS")  # the transport finished the handshake (only if STLS asked for it)
TIMEOUT = _Marker("TIMEOUT")  # the idle timer fired
SHUTDOWN = _Marker("SHUTDOWN")  # the server is stopping
DROP = _Marker("DROP")  # the client went away

Step = bytes | _Marker


def wire(data: bytes) -> tuple[bytes, bytes]:
    """(the message as the client gets it after unstuffing, the body as sent with stuffing and
    terminator): an independent, line-by-line statement of RFC 1939 §3."""
    text = data.replace(b"\r\n", b"\n")
    if text and not text.endswith(b"\n"):
        text += b"\n"
    lines = text.split(b"\n")[:-1] if text else []
    plain = b"".join(line + b"\r\n" for line in lines)
    sent = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return plain, sent + b".\r\n"


def tokens() -> Callable[[], str]:
    """A deterministic token factory: TOKEN for the greeting, then CRAM_TOKEN, ..."""
    counter = itertools.count(1)
    return lambda: f"<4242.{next(counter)}.1000000000000000@{HOST}>"


def make_store(root: Path, with_mail: bool = True) -> Store:
    store = Store(root, Users.parse(USERS))
    if with_mail:
        for name, data in zip(NAMES, (M1, M2, M3), strict=True):
            add_message(store, "alice", data, name)
    return store


def add_message(store: Store, user: str, data: bytes, name: str, sub: str = "new") -> Path:
    path = store.maildir(user).path / sub / name
    path.write_bytes(data)
    return path


def snapshot(store: Store) -> dict[str, bytes]:
    """Every message file under the data dir (not locks, spool or TLS material)."""
    out = {}
    for path in sorted(store.root.rglob("*")):
        rel = path.relative_to(store.root)
        if path.is_file() and rel.parts[1:2] in (("new",), ("cur",)):
            out[str(rel)] = path.read_bytes()
    return out


@dataclass
class Run:
    out: bytes
    session: ServerSession
    store: Store
    transcript: Transcript
    #: The largest piece one receive()/more() call returned.
    largest_piece: int

    @property
    def lines(self) -> list[bytes]:
        return self.out.split(b"\r\n")


def drive(session: ServerSession, script: list[Step], bytewise: bool) -> tuple[bytes, int]:
    out = [session.initiate()]
    largest = 0

    def take(piece: bytes) -> None:
        nonlocal largest
        largest = max(largest, len(piece))
        out.append(piece)

    for step in script:
        if step is TLS:
            assert session.tls_requested, "TLS marker without STLS"
            session.tls_started()
        elif step is TIMEOUT:
            take(session.timeout())
        elif step is SHUTDOWN:
            take(session.shutdown())
        elif step is DROP:
            session.connection_lost()
        else:
            assert isinstance(step, bytes)
            pieces = [step[i:i + 1] for i in range(len(step))] if bytewise else [step]
            for piece in pieces:
                take(session.receive(piece))
                while session.has_more_output:
                    take(session.more())
    return b"".join(out), largest


def converse(tmp_path: Path, script: list[Step], config: ServerConfig | None = None,
             setup: Callable[[Store], object] | None = None, tls: bool = False,
             with_mail: bool = True) -> Run:
    """Run ``script`` whole and byte by byte; both must agree; return the whole run."""
    runs = []
    for bytewise in (False, True):
        root = tmp_path / ("bytewise" if bytewise else "whole")
        store = make_store(root, with_mail)
        if setup is not None:
            setup(store)
        recorder = Recorder("pop3", lambda: 0.0)
        session = ServerSession(config or ServerConfig(), store, token=tokens(),
                                on_step=recorder, tls=tls)
        out, largest = drive(session, script, bytewise)
        runs.append(Run(out, session, store, recorder.transcript, largest))
    whole, single = runs
    assert whole.out == single.out, "whole and byte-by-byte runs differ"
    assert snapshot(whole.store) == snapshot(single.store)
    assert whole.session.state == single.session.state
    return whole


def session(tmp_path: Path, config: ServerConfig | None = None, with_mail: bool = True,
            store: Store | None = None) -> tuple[ServerSession, Store]:
    """One live session (greeting already taken) for tests that poke at it step by step."""
    store = store or make_store(tmp_path, with_mail)
    s = ServerSession(config or ServerConfig(), store, token=tokens())
    s.initiate()
    return s, store


def talk(s: ServerSession, data: bytes) -> bytes:
    out = s.receive(data)
    while s.has_more_output:
        out += s.more()
    return out
