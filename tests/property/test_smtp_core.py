"""Properties of the sans-I/O SMTP core under random and mutated command streams.

For any stream a client could send, however TCP cuts it:

* no exception escapes ``receive``; the state is always one of the table's;
* the output is the same whether the stream comes whole, in random chunks or byte by byte;
* every complete command line (outside DATA) gets exactly one reply (two when the second is the
  421 that ends the session), and content lines in DATA get none until the end of data;
* the input buffer stays bounded;
* a message is committed exactly when a "250 ... queued" reply goes out, and what is stored is
  the content the client sent, dot-unstuffed, with LF line endings, after the trace headers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from mailproto.smtp.server import ServerConfig, ServerSession
from mailproto.smtp.states import TABLE, State
from mailproto.smtp.wire import MAX_AUTH_LINE
from mailproto.store import Users

from ._strategies import CUTS, SETTINGS, lines_of, mutated, split_at

USERS = "alice:secret\nbob:hunter2\nstaff: alice, bob\n"
QUEUED = b"250 2.0.0 Ok: queued"


# -- an in-memory store that records what it is asked to do -------------------------------------
@dataclass
class MemSpool:
    store: MemStore
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    state: str = "open"

    def write(self, data: bytes) -> None:
        assert self.state == "open", "write after commit/abort"
        self.parts.append(bytes(data))
        self.size += len(data)

    def commit(self, users: list[str], outbox_envelope: object = None) -> list[object]:
        assert self.state == "open", "commit twice or after abort"
        self.state = "committed"
        self.store.delivered.append((tuple(users), repr(outbox_envelope), b"".join(self.parts)))
        return []

    def abort(self) -> None:
        assert self.state != "committed", "abort after commit"
        self.state = "aborted"


class MemStore:
    def __init__(self) -> None:
        self.users = Users.parse(USERS)
        self.delivered: list[tuple[tuple[str, ...], str, bytes]] = []
        self.spools: list[MemSpool] = []

    def open_spool(self) -> MemSpool:
        spool = MemSpool(self)
        self.spools.append(spool)
        return spool


def new_session(config: ServerConfig) -> tuple[ServerSession, MemStore, bytes]:
    store = MemStore()
    session = ServerSession(config, store, peer_ip="192.0.2.1",  # type: ignore[arg-type]
                            clock=lambda: 1_000_000_000.0, token=lambda: "<1@mail.test>")
    return session, store, session.initiate()


def count_replies(out: bytes) -> list[bytes]:
    """The last line of each reply in ``out``; checks the framing of every line on the way."""
    if not out:
        return []
    assert out.endswith(b"\r\n"), out[-80:]
    finals = []
    for line in out[:-2].split(b"\r\n"):
        assert b"\n" not in line and b"\r" not in line, f"bare CR/LF in a reply: {line!r}"
        assert line[:3].isdigit() and len(line) >= 3, f"not a reply line: {line!r}"
        assert len(line) == 3 or line[3:4] in (b" ", b"-"), f"bad separator: {line!r}"
        if len(line) == 3 or line[3:4] == b" ":
            finals.append(line)
    return finals


def check(session: ServerSession, store: MemStore) -> None:
    assert session.state in set(State)
    assert session.state in set(TABLE.states)
    assert len(session._buf) <= MAX_AUTH_LINE + 2, len(session._buf)  # bounded input buffer
    if session.closed:
        assert not session._buf


def run(config: ServerConfig, pieces: list[bytes]) -> tuple[bytes, State, bool, list[object]]:
    session, store, out = new_session(config)
    outputs = [out]
    for piece in pieces:
        committed_before = len(store.delivered)
        out = session.receive(piece)
        outputs.append(out)
        check(session, store)
        assert len(store.delivered) - committed_before == out.count(QUEUED), \
            "a commit without its 250 (or a 250 without a commit)"
    session.connection_lost()
    assert all(s.state != "open" for s in store.spools), "a spool left open"
    return b"".join(outputs), session.state, session.closed, list(store.delivered)


# -- streams -------------------------------------------------------------------------------------
def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


COMMANDS = [
    b"EHLO client.test", b"HELO client.test", b"ehlo x", b"NOOP", b"NOOP anything", b"RSET",
    b"HELP", b"HELP mail", b"HELP nothing", b"VRFY alice", b"EXPN staff", b"STARTTLS", b"QUIT",
    b"MAIL FROM:<bob@client.test>", b"MAIL FROM:<>", b"mail from:<x@y.test> size=100",
    b"MAIL FROM:<a@b.test> BODY=8BITMIME SMTPUTF8", b"MAIL FROM:<a@b> SIZE=999999999999",
    b"MAIL FROM:bare@address.test", b"MAIL FROM:<@route.test:x@y.test>",
    b"RCPT TO:<alice@local.test>", b"RCPT TO:<bob@local.test>", b"RCPT TO:<staff@local.test>",
    b"RCPT TO:<nobody@local.test>", b"RCPT TO:<x@remote.test>", b"RCPT TO:<postmaster>",
    b"RCPT TO:<\"quoted local\"@local.test>", b"rcpt to:<ALICE@LOCAL.TEST>", b"DATA",
    b"DATA now", b"AUTH PLAIN " + b64("\0alice\0secret"), b"AUTH PLAIN " + b64("\0alice\0no"),
    b"AUTH LOGIN", b64("alice"), b64("secret"), b"AUTH CRAM-MD5", b"*", b"AUTH", b"AUTH XOAUTH2",
    b"", b"FOO bar", b".", b"..", b"VRFY", b"EXPN",
]


@st.composite
def content_line(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from([b"", b".", b"..", b".hidden", b"Subject: hi", b"a\rb", b"a\nb",
                                 b"\n.\n", b".\n", b"\r\n.\n", b"x\r", b"\x00\xff\x80", b"From x",
                                 b"\t folded"])
                | st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b))


def stuff(lines: list[bytes]) -> bytes:
    """What a correct client sends for these CRLF lines: dot-stuffed, CRLF, then '.'."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines) + b".\r\n"


def unstuff(wire: bytes) -> bytes:
    """The reference the core is held to: every line (ended by LF, as Postfix's 'normalize'
    reads bare LFs) that starts with a dot loses it; CRLF becomes LF."""
    assert wire.endswith(b".\r\n")
    body = wire[:-3]
    out = [piece[1:] if piece.startswith(b".") else piece for piece in lines_of(body)]
    return b"".join(out).replace(b"\r\n", b"\n")


@st.composite
def valid_session(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    """(lines, the wire content of each DATA) of a session in which every message is accepted."""
    lines = [draw(st.sampled_from([b"EHLO client.test\r\n", b"HELO client.test\r\n"]))]
    if draw(st.booleans()):
        lines.append(b"AUTH PLAIN " + b64("\0alice\0secret") + b"\r\n")
    contents = []
    for _ in range(draw(st.integers(0, 3))):
        for _ in range(draw(st.integers(0, 2))):
            lines.append(draw(st.sampled_from([b"NOOP\r\n", b"RSET\r\n", b"HELP\r\n"])))
        lines.append(draw(st.sampled_from([b"MAIL FROM:<bob@client.test>\r\n",
                                           b"MAIL FROM:<>\r\n"])))
        for _ in range(draw(st.integers(1, 3))):
            lines.append(draw(st.sampled_from([b"RCPT TO:<alice@local.test>\r\n",
                                               b"RCPT TO:<bob@local.test>\r\n",
                                               b"RCPT TO:<staff@local.test>\r\n"])))
        lines.append(b"DATA\r\n")
        wire = stuff(draw(st.lists(content_line(), max_size=15)))
        contents.append(wire)
        lines.extend(lines_of(wire))
    if draw(st.booleans()):
        lines.append(b"QUIT\r\n")
    return lines, contents


@st.composite
def random_session(draw: st.DrawFn) -> list[bytes]:
    lines = [draw(st.sampled_from(COMMANDS)) + b"\r\n" for _ in range(draw(st.integers(0, 25)))]
    if draw(st.booleans()):
        lines.insert(0, b"EHLO client.test\r\n")
    return lines


STREAMS = st.one_of(
    valid_session().flatmap(lambda s: mutated(s[0])),
    random_session().flatmap(mutated),
).map(b"".join)

CONFIGS = st.builds(ServerConfig, enable_vrfy=st.booleans(),
                    max_message_size=st.sampled_from([10_240_000, 300]),
                    hard_error_limit=st.sampled_from([20, 3]))


# -- the properties ------------------------------------------------------------------------------
@SETTINGS
@given(config=CONFIGS, stream=STREAMS, cuts=CUTS)
def test_split_anywhere_same_result(config: ServerConfig, stream: bytes, cuts: list[int]) -> None:
    whole = run(config, [stream])
    assert run(config, split_at(stream, cuts)) == whole
    if len(stream) <= 3000:
        assert run(config, [stream[i : i + 1] for i in range(len(stream))]) == whole


@SETTINGS
@given(config=CONFIGS, stream=STREAMS)
def test_one_reply_per_command_line(config: ServerConfig, stream: bytes) -> None:
    session, store, greeting = new_session(config)
    assert count_replies(greeting) == [b"220 mail.test ESMTP mailproto"]
    for piece in lines_of(stream):
        before, was_closed = session.state, session.closed
        finals = count_replies(session.receive(piece))
        check(session, store)
        if was_closed or not piece.endswith(b"\n"):
            assert finals == [], (before, piece[:60], finals)
        elif before is State.DATA and session.state is State.DATA:
            assert finals == [], (piece[:60], finals)  # content: no reply before the end
        else:
            # A command line, a SASL response or the end of data: one reply, and a second
            # only when it is the 421 that ends the session.
            assert len(finals) in (1, 2), (before, piece[:60], finals)
            if len(finals) == 2:
                assert finals[1].startswith(b"421") and session.closed, finals


@SETTINGS
@given(session_=valid_session(), cuts=CUTS)
def test_delivered_is_the_unstuffed_content(session_: tuple[list[bytes], list[bytes]],
                                            cuts: list[int]) -> None:
    lines, contents = session_
    stream = b"".join(lines)
    out, _, _, delivered = run(ServerConfig(), split_at(stream, cuts))
    assert out.count(QUEUED) == len(contents) == len(delivered)
    for (users, _, stored), wire in zip(delivered, contents, strict=True):
        expected = unstuff(wire)
        assert stored.endswith(expected), (stored[-200:], expected[-200:])
        trace = stored[: len(stored) - len(expected)]
        assert trace.startswith(b"Return-Path: <") and b"\nReceived: from " in trace
        assert trace.endswith(b"\n") and trace.count(b"\n\t") >= 1
        assert set(users) <= {"alice", "bob"} and users


@SETTINGS
@given(stream=STREAMS, cuts=CUTS, when=st.integers(0, 1 << 20),
       end=st.sampled_from(["lost", "timeout", "shutdown"]))
def test_interrupted_session_delivers_only_what_was_acknowledged(
        stream: bytes, cuts: list[int], when: int, end: str) -> None:
    session, store, _ = new_session(ServerConfig())
    pieces = split_at(stream, cuts)
    stop = when % (len(pieces) + 1)
    out = b"".join(session.receive(p) for p in pieces[:stop])
    acknowledged = out.count(QUEUED)
    if end == "lost":
        session.connection_lost()
    else:
        last = session.timeout() if end == "timeout" else session.shutdown()
        assert last == b"" or count_replies(last)[-1].startswith(b"421")
    assert session.closed
    assert session.receive(b"NOOP\r\n") == b""
    assert len(store.delivered) == acknowledged
    assert all(s.state != "open" for s in store.spools)
