"""SMTP under faults: vanishing clients, trickling clients, too many connections.

Each test checks what a client is promised: a message is delivered exactly when the server said
250 after the final dot, and one misbehaving client never costs the others.
"""

from __future__ import annotations

import time

import pytest

from ._support import (
    Client,
    Server,
    body_of,
    messages,
    send_message,
    smtp_login,
    spool_files,
    wait_until,
)


def _start_data(c: Client) -> None:
    c.cmd(b"MAIL FROM:<fault@client.test>", 250)
    c.cmd(b"RCPT TO:<alice@local.test>", 250)
    c.cmd(b"DATA", 354)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_vanishes_mid_data(server: Server, how: str) -> None:
    c = smtp_login(server.smtp_port)
    _start_data(c)
    # Half a message, including what looks like an ending but is not one (no CRLF before it).
    c.send(body_of(300_000)[:200_000] + b"\n.\n")
    assert wait_until(lambda: len(spool_files(server.data)) == 1), "no spool file while in DATA"
    c.reset() if how == "reset" else c.close()
    assert wait_until(lambda: not spool_files(server.data)), "the spool file was left behind"
    assert messages(server.maildir("alice")) == []
    # And the server goes on: the next client is served normally.
    code, text = send_message(server.smtp_port, body_of(2000))
    assert code == 250, text
    assert len(messages(server.maildir("alice"))) == 1


def test_client_vanishes_right_after_final_dot(server: Server) -> None:
    """The final dot was sent: the server delivers (it cannot know the client left) and the
    message is whole, never half."""
    c = smtp_login(server.smtp_port)
    _start_data(c)
    body = body_of(50_000)
    c.send(body + b".\r\n")
    c.reset()
    assert wait_until(lambda: len(messages(server.maildir("alice"))) == 1)
    stored = messages(server.maildir("alice"))[0].read_bytes()
    expected = body.replace(b"\r\n..", b"\r\n.").replace(b"\r\n", b"\n")
    assert stored.endswith(expected)
    assert not spool_files(server.data)


@pytest.mark.server_args("--timeout", "1")
def test_idle_client_is_timed_out(server: Server) -> None:
    with Client(server.smtp_port) as c:
        assert c.reply()[0] == 220
        c.cmd(b"EHLO idle.test", 250)
        started = time.monotonic()
        code, text = c.reply()  # nothing sent: the 421 comes by itself
        assert code == 421 and b"timeout" in text.lower()
        assert time.monotonic() - started < 5
        assert c.closed_by_peer(3)


@pytest.mark.server_args("--timeout", "1", "--max-connections", "1")
def test_trickling_client_does_not_hold_its_slot(server: Server) -> None:
    """A client that sends a byte every 0.3 s, never finishing a command line (slowloris), is
    idle as far as the protocol goes: the 1 s timeout must end it and free its slot."""
    trickler = Client(server.smtp_port)
    assert trickler.reply()[0] == 220
    # The slot is taken: another client is turned away.
    with Client(server.smtp_port) as other:
        assert other.reply()[0] == 421
    closed = False
    deadline = time.monotonic() + 6
    for byte in b"MAIL FROM:<" + b"a" * 200:
        if time.monotonic() > deadline:
            break
        try:
            trickler.send(bytes([byte]))
        except OSError:
            closed = True
            break
        if trickler.closed_by_peer(0.3):
            closed = True
            break
    trickler.close()
    assert closed, "a client trickling one byte every 0.3 s kept its session for 6 s " \
                   "with --timeout 1"
    with Client(server.smtp_port) as after:
        assert after.reply()[0] == 220


@pytest.mark.server_args("--timeout", "1")
def test_trickling_inside_data_is_timed_out(server: Server) -> None:
    """The same in DATA: bytes of one endless line, slower than the timeout allows."""
    c = smtp_login(server.smtp_port)
    _start_data(c)
    closed = False
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        try:
            c.send(b"x")
        except OSError:
            closed = True
            break
        if c.closed_by_peer(0.3):
            closed = True
            break
    c.close()
    assert closed, "a client trickling DATA one byte every 0.3 s kept its session for 6 s"
    assert wait_until(lambda: not spool_files(server.data))
    assert messages(server.maildir("alice")) == []


@pytest.mark.server_args("--max-connections", "5")
def test_more_connections_than_the_limit(server: Server) -> None:
    held = [smtp_login(server.smtp_port) for _ in range(5)]
    try:
        for _ in range(3):
            with Client(server.smtp_port) as extra:
                code, text = extra.reply()
                assert code == 421, text
                assert b"too many connections" in text.lower()
                assert extra.closed_by_peer(3)
        # The five already in are unaffected: each delivers a message.
        for i, c in enumerate(held):
            _start_data(c)
            c.send(body_of(1000 + i) + b".\r\n")
            assert c.reply()[0] == 250
        # One leaves; its slot is free again.
        held.pop().cmd(b"QUIT", 221)
        assert wait_until(lambda: _greets(server.smtp_port), timeout=5)
    finally:
        for c in held:
            c.close()
    assert len(messages(server.maildir("alice"))) == 5


def _greets(port: int) -> bool:
    with Client(port) as c:
        code, _ = c.reply()
        if code == 220:
            c.cmd(b"QUIT")
            return True
        return False
