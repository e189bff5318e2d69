"""DATA: transparency, line endings, SMTP smuggling, size limits (RFC 5321 §4.1.1.4, §4.5.2,
§4.5.3.1.6, RFC 1870).

The end of the message is CRLF "." CRLF and nothing else.  Bare LF ends a *content* line (as
Postfix's ``smtpd_forbid_bare_newline = normalize``), never the message.
"""

from __future__ import annotations

import pytest

from mailproto.smtp.server import ServerConfig, ServerSession
from mailproto.smtp.states import State
from mailproto.store import Store, Users

from ._support import (
    BYE,
    DROP,
    GO_AHEAD,
    MAIL_OK,
    RCPT_OK,
    USERS,
    clock,
    converse,
    envelope,
    envelope_replies,
    lines,
    queued,
    snapshot,
    trace,
)

TOO_BIG = b"552 5.3.4 Error: message file too big\r\n"


def model(content: bytes) -> bytes:
    """What the store must hold for DATA ``content`` (without the final ".\\r\\n"), written
    independently of the server: split after every LF, drop one leading dot (§4.5.2), turn a
    CRLF line end into LF, keep everything else (bare CR, NUL, 8-bit bytes) as it is."""
    out = []
    for line in _lf_lines(content):
        if line.startswith(b"."):
            line = line[1:]
        if line.endswith(b"\r\n"):
            line = line[:-2] + b"\n"
        out.append(line)
    return b"".join(out)


def _lf_lines(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    result = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        result.append(parts[-1])
    return result


def deliver(tmp_path, content: bytes, **kw):
    """Send ``content`` + CRLF.CRLF to alice; return the run."""
    return converse(tmp_path, envelope(), content + b"\r\n.\r\n", lines("QUIT"), **kw)


# -- transparency (§4.5.2) ------------------------------------------------------------------------
@pytest.mark.parametrize("content, stored", [
    (b"Subject: dots\r\n\r\n..leading dot", b"Subject: dots\n\n.leading dot\n"),
    (b"..", b".\n"),  # the whole message is one line "."
    (b"...", b"..\n"),
    (b".x", b"x\n"),  # a single stuffed dot on the first line is removed too
    (b"a\r\n..\r\n..\r\nb", b"a\n.\n.\nb\n"),
    (b"a\r\n. \r\nb", b"a\n \nb\n"),
    (b"no dot. here.\r\n..", b"no dot. here.\n.\n"),  # a line "." is sent as ".."
])
def test_dot_unstuffing(tmp_path, content, stored):
    run = deliver(tmp_path, content)
    assert run.out == envelope_replies() + queued() + BYE
    assert run.stored() == [trace() + stored]
    assert stored == model(content + b"\r\n")


def test_empty_message(tmp_path):
    run = converse(tmp_path, envelope(), b".\r\n")
    assert run.out == envelope_replies() + queued()
    assert run.stored() == [trace()]


def test_crlf_becomes_lf_bare_cr_and_8bit_and_nul_survive(tmp_path):
    content = b"Subject: \xe9t\xe9\r\n\r\na\rb\r\n\x00\x01\xff\xfe\r\nlast\r"
    run = deliver(tmp_path, content)
    assert run.stored() == [trace() + b"Subject: \xe9t\xe9\n\na\rb\n\x00\x01\xff\xfe\nlast\r\n"]


def test_bare_lf_ends_a_content_line_and_is_stored_as_is(tmp_path):
    run = deliver(tmp_path, b"Subject: lf\n\nbody\n..dot after lf\nend")
    assert run.stored() == [trace() + b"Subject: lf\n\nbody\n.dot after lf\nend\n"]


def test_1000_octet_text_lines_and_much_longer_ones(tmp_path):
    line998 = bytes(range(33, 127)) * 10 + b"x" * 58
    assert len(line998) + 2 == 1000  # RFC 5321 §4.5.3.1.6
    huge = b"y" * 70_000  # longer than any 64 KiB buffer: must survive intact
    run = deliver(tmp_path, line998 + b"\r\n" + huge + b"\r\n." + huge)
    assert run.stored() == [trace() + line998 + b"\n" + huge + b"\n" + huge + b"\n"]


def test_terminator_pipelined_with_the_next_commands(tmp_path):
    run = converse(tmp_path, envelope() + b"one\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<bob>\r\nDATA\r\n"
                   b"two\r\n.\r\nQUIT\r\n")
    assert run.out == (envelope_replies() + queued(0) + MAIL_OK + RCPT_OK + GO_AHEAD
                       + queued(1) + BYE)
    assert run.stored("alice") == [trace() + b"one\n"]
    assert run.stored("bob") == [trace("", "bob", qid="E8D4A5100001") + b"two\n"]


# -- SMTP smuggling: only CRLF.CRLF ends DATA -----------------------------------------------------
SMUGGLED = (b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n"
            b"From: ceo@local.test\r\nSubject: smuggled\r\n\r\npay now\r\n")


@pytest.mark.parametrize("ending", [
    b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n", b"\n.\r",
    b"\r\n.\x00\r\n", b"\r\n\x00.\r\n", b"\n\x00.\r\n", b"\r\n.\r\r\n", b"\r\r.\r\r",
    b"\n.\n.\n", b"\r\n.\n\r\n", b"\r\n \r\n.\n",
], ids=repr)
def test_smuggling_endings_do_not_end_data(tmp_path, ending):
    content = b"Subject: innocent\r\n\r\nline" + ending + SMUGGLED
    run = deliver(tmp_path, content)
    # One message (one 250), everything after the fake ending is its content.
    assert run.out == envelope_replies() + queued() + BYE
    assert run.stored() == [trace() + model(content + b"\r\n")]
    assert b"Subject: smuggled" in run.stored()[0]
    assert run.stored("bob") == []


@pytest.mark.parametrize("ending, stored", [
    (b"\n.\n", b"line\n\n"),
    (b"\r\n.\n", b"line\n\n"),
    (b"\n.\r\n", b"line\n\n"),
    (b"\r.\r\n", b"line\r.\n"),
    (b"\r\n.\r", b"line\n\r"),
    (b"\r\n.\x00\r\n", b"line\n\x00\n"),
])
def test_smuggling_endings_stored_exactly(tmp_path, ending, stored):
    run = deliver(tmp_path, b"line" + ending + b"after")
    assert run.stored() == [trace() + stored + b"after\n"]


# -- size limits (RFC 1870, RFC 5321 §4.5.3.1.7) --------------------------------------------------
SMALL = ServerConfig(max_message_size=1000)


def test_message_exactly_at_the_limit_is_accepted(tmp_path):
    content = b"x" * 998  # + CRLF = 1000 octets of message
    run = deliver(tmp_path, content, config=SMALL)
    assert run.out == envelope_replies(ehlo=_ehlo(1000)) + queued() + BYE
    assert run.stored() == [trace() + content + b"\n"]


def test_content_over_the_limit_one_552_after_the_terminator(tmp_path):
    run = converse(tmp_path, envelope() + b"x" * 999, b"\r\nmore\r\n", b"\r\n.\r\n",
                   lines("MAIL FROM:<s@remote.test>", "RCPT TO:<alice>", "DATA"),
                   b"small\r\n.\r\n", config=SMALL)
    assert run.out == (envelope_replies(ehlo=_ehlo(1000)) + TOO_BIG + MAIL_OK + RCPT_OK
                       + GO_AHEAD + queued(0))
    assert run.stored() == [trace(sender="s@remote.test", rcpt="alice") + b"small\n"]


def test_declared_size_over_the_limit_is_552_at_mail(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test> SIZE=1001",
                                   "MAIL FROM:<s@remote.test> SIZE=1000"), config=SMALL)
    assert run.replies[2:] == [b"552 5.3.4 Message size exceeds fixed limit\r\n", MAIL_OK]


def test_declared_size_is_not_trusted(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test> SIZE=10",
                                   "RCPT TO:<alice>", "DATA"), b"y" * 2000 + b"\r\n.\r\n",
                   config=SMALL)
    assert run.replies[-1] == TOO_BIG
    assert snapshot(run.root) == {}


def test_oversized_message_memory_and_disk_stay_bounded(tmp_path):
    limit = 100_000
    store = Store(tmp_path, Users.parse(USERS))
    session = ServerSession(ServerConfig(max_message_size=limit), store, clock=clock)
    session.initiate()
    session.receive(envelope())
    chunk = (b"z" * 1000 + b"\r\n") * 64
    for _ in range(100):  # 6.4 MB
        assert session.receive(chunk) == b""
        assert len(session._buf) <= 70_000
    assert list((tmp_path / ".spool").iterdir()) == []  # dropped as soon as it was too big
    one_line = b"w" * 65_536
    for _ in range(20):  # a single 1.3 MB line: still bounded
        assert session.receive(one_line) == b""
        assert len(session._buf) <= 70_000
    for byte in b"\r\n" + b"v" * 5000 + b"\r\r\r.\r":  # byte by byte: nothing piles up
        assert session.receive(bytes([byte])) == b""
        assert len(session._buf) <= 2
    assert session.receive(b"\r\n.\r\n") == TOO_BIG
    assert session.state is State.GREETED
    assert snapshot(tmp_path) == {}


def test_large_message_streams_to_disk(tmp_path):
    store = Store(tmp_path, Users.parse(USERS))
    session = ServerSession(ServerConfig(), store, clock=clock)
    session.initiate()
    session.receive(envelope())
    line = b"0123456789" * 99 + b"\r\n"
    for _ in range(1000):
        session.receive(line)
        assert len(session._buf) <= 70_000
    spooled = list((tmp_path / ".spool").iterdir())
    assert len(spooled) == 1 and spooled[0].stat().st_size > 900_000
    assert session.receive(b".\r\n") == queued()
    assert snapshot(tmp_path)["alice"] == [trace() + line.replace(b"\r\n", b"\n") * 1000]


def test_drop_mid_data_of_a_big_message(tmp_path):
    run = converse(tmp_path, envelope(), b"a" * 5000 + b"\r\n", DROP)
    assert run.out == envelope_replies()
    assert snapshot(run.root) == {}


def _ehlo(size: int) -> bytes:
    from ._support import EHLO_REPLY

    return EHLO_REPLY.replace(b"SIZE 10240000", f"SIZE {size}".encode())
