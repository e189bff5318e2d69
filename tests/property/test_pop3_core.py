"""Properties of the sans-I/O POP3 core under random and mutated command streams.

For any stream, however it is cut, and driven as a transport drives it (``more()`` while
``has_more_output``):

* no internal error (the core catches its own exceptions and says ``-ERR [SYS/TEMP] Internal
  server error``: that must never happen); the state is always one of the table's;
* the output and the maildir afterwards are the same whether the stream comes whole, in random
  chunks or byte by byte;
* every complete command line gets exactly one response (a status line, with a body ending in
  ``.CRLF`` when multi-line), SASL continuations included;
* the input buffer stays bounded once the output is drained;
* nothing is removed unless QUIT in TRANSACTION answered ``+OK``, and then exactly what it says;
* RETR sends each stored message CRLF-ended and dot-stuffed, and LIST counts exactly those octets.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("mailproto.pop3.server", reason="our POP3 core is not in place yet")

from mailproto.pop3.server import ServerConfig, ServerSession  # noqa: E402
from mailproto.pop3.states import TABLE, State  # noqa: E402
from mailproto.pop3.wire import MAX_AUTH_LINE  # noqa: E402
from mailproto.store import Store, Users  # noqa: E402

from ._strategies import CUTS, SETTINGS, lines_of, mutated, split_at  # noqa: E402

USERS = "alice:secret\nbob:hunter2\n"
TOKEN = "<1.1@mail.test>"
#: alice's maildrop, in arrival order: dot lines, no final newline, CRLF, empty, a bare CR.
FILES = [
    ("1000000001.M1P1Q1.prop", b"From: bob@local.test\nSubject: one\n\nHello\n.dot\n..two\n.\n"),
    ("1000000002.M2P1Q2.prop", b"Subject: two\n\nno final newline"),
    ("1000000003.M3P1Q3.prop:2,S", b"Subject: three\r\n\r\nbody\r\n.\r\n"),
    ("1000000004.M4P1Q4.prop", b""),
    ("1000000005.M5P1Q5.prop", b"Subject: five\n\na\rb\n" + b"x" * 70000 + b"\n.end\n"),
]
INTERNAL = b"Internal server error"


def wire_body(content: bytes) -> bytes:
    """RETR's body for a stored message (without the terminator), by the book."""
    text = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if text and not text.endswith(b"\n"):
        text += b"\r\n"
    return b"".join(b"." + line if line.startswith(b".") else line for line in lines_of(text))


class Box:
    """A fresh data directory with alice's maildrop (and an empty one for bob)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailproto-prop-"))
        self.store = Store(self.root, Users.parse(USERS))
        alice = self.store.maildir("alice").path
        self.store.maildir("bob")
        for name, data in FILES:
            sub = "cur" if ":" in name else "new"
            (alice / sub / name).write_bytes(data)

    def contents(self) -> list[tuple[str, bytes]]:
        out = []
        for user in ("alice", "bob"):
            for sub in ("new", "cur"):
                for p in sorted((self.root / user / sub).iterdir()):
                    out.append((f"{user}/{sub}/{p.name}", p.read_bytes()))
        return out

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def new_session(box: Box) -> tuple[ServerSession, bytes]:
    session = ServerSession(ServerConfig(), box.store, peer_ip="192.0.2.1",
                            clock=lambda: 1_000_000_000.0, token=lambda: TOKEN)
    return session, session.initiate()


def feed(session: ServerSession, piece: bytes) -> bytes:
    parts = [session.receive(piece)]
    for _ in range(100_000):
        if not session.has_more_output:
            break
        parts.append(session.more())
    else:
        raise AssertionError("has_more_output never ends")
    out = b"".join(parts)
    assert INTERNAL not in out, out[-300:]
    assert session.state in set(State) and session.state in set(TABLE.states)
    if not session.has_more_output:
        assert len(session._buf) <= MAX_AUTH_LINE + 2, len(session._buf)
    return out


def run(pieces: list[bytes]) -> tuple[bytes, State, bool, list[tuple[str, bytes]]]:
    box = Box()
    try:
        session, greeting = new_session(box)
        out = greeting + b"".join(feed(session, p) for p in pieces)
        state, closed = session.state, session.closed
        session.connection_lost()
        left = box.contents()
        check_update(out, left)
        return out, state, closed, left
    finally:
        box.close()


def check_update(out: bytes, left: list[tuple[str, bytes]]) -> None:
    """Files go only through an UPDATE that said so: '+OK ... signing off (N messages left)'."""
    alice = [c for c in left if c[0].startswith("alice/")]
    marker = out.rfind(b" signing off (")
    if marker < 0:
        assert len(alice) == len(FILES), "a message was removed without a successful QUIT"
    else:
        said = int(out[marker + len(b" signing off (") :].split(b" ", 1)[0])
        # bob's maildrop is empty: an UPDATE there leaves 0, and alice's untouched.
        assert len(alice) in (said, len(FILES))


def one_response(out: bytes) -> None:
    assert out.endswith(b"\r\n"), out[-100:]
    first, _, rest = out.partition(b"\r\n")
    assert first.startswith((b"+OK", b"-ERR", b"+ ")) or first == b"+", first[:100]
    assert len(first) <= 510, len(first)
    if rest:
        assert first.startswith(b"+OK"), "a body after -ERR or a SASL continuation"
        body = b"\r\n" + rest
        assert body.endswith(b"\r\n.\r\n") and body.count(b"\r\n.\r\n") == 1, out[-200:]


# -- streams -------------------------------------------------------------------------------------
def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


APOP = hashlib.md5((TOKEN + "secret").encode()).hexdigest().encode()
COMMANDS = [
    b"USER alice", b"PASS secret", b"USER bob", b"PASS hunter2", b"PASS wrong", b"USER",
    b"APOP alice " + APOP, b"APOP alice 0123456789abcdef0123456789abcdef", b"APOP alice",
    b"AUTH", b"AUTH PLAIN " + b64("\0alice\0secret"), b"AUTH PLAIN", b64("\0alice\0secret"),
    b"AUTH LOGIN", b64("alice"), b64("secret"), b"*", b"AUTH CRAM-MD5", b"AUTH XOAUTH2",
    b"CAPA", b"STAT", b"LIST", b"LIST 1", b"LIST 5", b"LIST 9", b"LIST 0", b"LIST x", b"UIDL",
    b"UIDL 2", b"RETR 1", b"RETR 2", b"RETR 3", b"RETR 4", b"RETR 5", b"RETR 0", b"RETR -1",
    b"RETR", b"TOP 1 0", b"TOP 5 1", b"TOP 2 99999999", b"TOP 1", b"TOP 1 -1", b"DELE 1",
    b"DELE 2", b"DELE 5", b"DELE 9", b"RSET", b"NOOP", b"NOOP x", b"QUIT", b"STLS", b"LAST",
    b"", b"retr 1", b"list  1", b"FOO", b"\x00", b"RETR 1 2",
]


@st.composite
def valid_session(draw: st.DrawFn) -> list[bytes]:
    login = draw(st.sampled_from([[b"USER alice", b"PASS secret"], [b"APOP alice " + APOP],
                                  [b"AUTH PLAIN " + b64("\0alice\0secret")],
                                  [b"AUTH LOGIN", b64("alice"), b64("secret")]]))
    body = draw(st.lists(st.sampled_from([b"STAT", b"LIST", b"UIDL", b"RETR 1", b"RETR 2",
                                          b"RETR 3", b"RETR 4", b"RETR 5", b"TOP 1 1",
                                          b"LIST 2", b"DELE 3", b"DELE 1", b"RSET", b"NOOP",
                                          b"CAPA"]), max_size=12))
    lines = [b"CAPA"] * draw(st.integers(0, 1)) + login + body
    if draw(st.booleans()):
        lines.append(b"QUIT")
    return [line + b"\r\n" for line in lines]


@st.composite
def random_session(draw: st.DrawFn) -> list[bytes]:
    return [draw(st.sampled_from(COMMANDS)) + b"\r\n" for _ in range(draw(st.integers(0, 25)))]


STREAMS = st.one_of(valid_session().flatmap(mutated),
                    random_session().flatmap(mutated)).map(b"".join)


# -- the properties ------------------------------------------------------------------------------
@SETTINGS
@given(stream=STREAMS, cuts=CUTS)
def test_split_anywhere_same_result(stream: bytes, cuts: list[int]) -> None:
    whole = run([stream])
    assert run(split_at(stream, cuts)) == whole
    if len(stream) <= 600:
        assert run([stream[i : i + 1] for i in range(len(stream))]) == whole


@SETTINGS
@given(stream=STREAMS)
def test_one_response_per_command_line(stream: bytes) -> None:
    box = Box()
    try:
        session, _ = new_session(box)
        for piece in lines_of(stream):
            was_closed = session.closed
            out = feed(session, piece)
            if was_closed or not piece.endswith(b"\n"):
                assert out == b"", (piece[:60], out[:200])
            else:
                one_response(out)
        session.connection_lost()
    finally:
        box.close()


@SETTINGS
@given(deleted=st.sets(st.integers(1, len(FILES))), cuts=CUTS,
       login=st.sampled_from([b"USER alice\r\nPASS secret\r\n",
                              b"APOP alice " + APOP + b"\r\n"]))
def test_retr_sends_the_stored_message_and_list_counts_it(deleted: set[int], cuts: list[int],
                                                          login: bytes) -> None:
    numbers = range(1, len(FILES) + 1)
    stream = login + b"".join(b"DELE %d\r\n" % n for n in sorted(deleted)) + b"LIST\r\n" \
        + b"".join(b"RETR %d\r\n" % n for n in numbers) + b"QUIT\r\n"
    out, state, closed, left = run(split_at(stream, cuts))
    assert closed and state is State.CLOSED
    skip = 1 + login.count(b"\n") + len(deleted)  # the greeting, the login and the DELEs
    rest = out.split(b"\r\n", skip)[-1]
    status, _, rest = rest.partition(b"\r\n")
    assert status.startswith(b"+OK"), status
    listing, _, rest = rest.partition(b".\r\n")
    sizes = {int(n): int(size) for n, size in (row.split() for row in listing.splitlines())}
    assert set(sizes) == set(numbers) - deleted
    for n, (_, content) in zip(numbers, FILES, strict=True):
        status, _, rest = rest.partition(b"\r\n")
        if n in deleted:
            assert status.startswith(b"-ERR"), status
            continue
        expected = wire_body(content)
        assert status.startswith(b"+OK") and rest.startswith(expected + b".\r\n"), \
            (n, rest[:200], expected[:200])
        rest = rest[len(expected) + 3 :]
        unstuffed = b"".join(line[1:] if line.startswith(b".") else line
                             for line in lines_of(expected))
        assert sizes[n] == len(unstuffed), (n, sizes, len(unstuffed))
    assert rest.startswith(b"+OK") and b"signing off" in rest, rest
    names = {name.rpartition("/")[2] for name, _ in left if name.startswith("alice/")}
    assert names == {FILES[n - 1][0] for n in numbers if n not in deleted}
