"""The SMTP server over real TCP: ``MailServer`` on an asyncio loop in a thread, plain sockets.

What only a transport can get wrong: the idle timer, STARTTLS with a real TLS handshake (and the
CVE-2011-0411 rule that plaintext pipelined after STARTTLS is never executed), dropped
connections, the connection limit, shutdown, delayed replies after failed logins, and a bug in
the core never taking the server down.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailproto.net.server import MailServer, ServeOptions
from mailproto.smtp.server import ServerSession

USERS = "alice:secret\nbob:hunter2\n"
GREETING = b"220 mail.test ESMTP mailproto\r\n"
TIMEOUT_421 = b"421 4.4.2 mail.test Error: timeout exceeded\r\n"
SHUTDOWN_421 = b"421 4.3.2 mail.test Service shutting down\r\n"
BUSY_421 = b"421 4.7.0 mail.test Error: too many connections\r\n"
OK = b"250 2.0.0 Ok\r\n"


class Served:
    def __init__(self, server: MailServer, loop: asyncio.AbstractEventLoop, data: Path) -> None:
        self.server = server
        self.loop = loop
        self.data = data
        self.port = server.addresses["SMTP"][1]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stop)

    def files(self, user: str = "alice") -> list[bytes]:
        new = self.data / user / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []

    def spool_empty(self, wait: float = 3.0) -> bool:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not list((self.data / ".spool").iterdir()):
                return True
            time.sleep(0.01)
        return False


@contextlib.contextmanager
def serving(tmp_path: Path, **options: object) -> Iterator[Served]:
    users = tmp_path / "users"
    users.write_text(USERS, encoding="utf-8")
    data = tmp_path / "data"
    opts = ServeOptions(smtp_port=0, pop3_port=None, data=data, users=users, timeout=1,
                        auth_failure_delay=0)
    for key, value in options.items():
        setattr(opts, key, value)
    server = MailServer(opts)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_until_complete(server.serve_forever())
        loop.run_until_complete(asyncio.sleep(0.05))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "server did not start"
    if failure:
        raise failure[0]
    served = Served(server, loop, data)
    try:
        yield served
    finally:
        served.stop()
        thread.join(10)
        assert not thread.is_alive(), "server did not stop"
        loop.close()
        server.close()


class Client:
    """A line-oriented SMTP client on a blocking socket, TLS-capable."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; pending {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self) -> bytes:
        out = b""
        while True:
            line = self._line()
            out += line
            if line[3:4] != b"-":
                return out

    def command(self, line: str | bytes) -> bytes:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """True when the server closed the connection (EOF with nothing more to read)."""
        if self.buf:
            return False
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def starttls(self, cafile: Path) -> None:
        context = ssl.create_default_context(cafile=str(cafile))
        self.sock = context.wrap_socket(self.sock, server_hostname="mail.test")
        assert not self.buf, f"plaintext bytes left before TLS: {self.buf!r}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@contextlib.contextmanager
def connect(port: int) -> Iterator[Client]:
    client = Client(port)
    try:
        yield client
    finally:
        client.close()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


TRACE = re.compile(rb"Return-Path: <([^>]*)>\nReceived: from (\S+) \(\[127\.0\.0\.1\]\)\n"
                   rb"\tby mail\.test \(mailproto\) with (\w+) id [0-9A-F]+\n"
                   rb"\tfor <([^>]*)>; \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\n")


def split_trace(stored: bytes) -> tuple[tuple[bytes, ...], bytes]:
    match = TRACE.match(stored)
    assert match, stored[:300]
    return match.groups(), stored[match.end():]


# -- a whole session over TCP ---------------------------------------------------------------------
def test_pipelined_session_over_tcp(tmp_path):
    with serving(tmp_path) as srv, connect(srv.port) as c:
        assert c.reply() == GREETING
        c.send(b"EHLO client.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@local.test>\r\n"
               b"DATA\r\n")
        assert c.reply().startswith(b"250-mail.test Hello client.test [127.0.0.1]\r\n")
        assert [c.reply(), c.reply(), c.reply()] == [
            b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"]
        c.send(b"Subject: tcp\r\n\r\n..dot\r\n\xc3\xa9\r\n.\r\nQUIT\r\n")
        assert c.reply().startswith(b"250 2.0.0 Ok: queued as ")
        assert c.reply() == b"221 2.0.0 Bye\r\n"
        assert c.closed()
        [stored] = srv.files()
    trace, body = split_trace(stored)
    assert trace == (b"s@remote.test", b"client.test", b"ESMTP", b"alice@local.test")
    assert body == b"Subject: tcp\n\n.dot\n\xc3\xa9\n"


# -- idle timeout (RFC 5321 §4.5.3.2) -------------------------------------------------------------
@pytest.mark.parametrize("before", [b"", b"EHLO client.test\r\n"])
def test_idle_timeout_421_and_close(tmp_path, before):
    with serving(tmp_path) as srv, connect(srv.port) as c:
        assert c.reply() == GREETING
        if before:
            c.send(before)
            c.reply()
        started = time.monotonic()
        assert c.reply() == TIMEOUT_421
        assert 0.8 < time.monotonic() - started < 3
        assert c.closed()


def test_timeout_mid_data_delivers_nothing(tmp_path):
    with serving(tmp_path) as srv, connect(srv.port) as c:
        c.reply()
        c.send(b"EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n")
        for _ in range(4):
            c.reply()
        c.send(b"Subject: half\r\n\r\nnever finished\r\n")
        assert c.reply() == TIMEOUT_421
        assert c.closed()
        assert srv.spool_empty()
        assert srv.files() == []


def test_activity_keeps_the_session_alive(tmp_path):
    with serving(tmp_path) as srv, connect(srv.port) as c:
        c.reply()
        for _ in range(4):
            time.sleep(0.4)
            assert c.command("NOOP") == OK


@pytest.mark.parametrize("in_data", [False, True])
def test_trickling_client_is_timed_out(tmp_path, in_data):
    """Slowloris: a byte now and then is not a command; the idle timer must still fire."""
    with serving(tmp_path, max_connections=1) as srv:
        with connect(srv.port) as c:
            c.reply()
            if in_data:
                c.send(b"EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n")
                for _ in range(4):
                    c.reply()
            c.sock.settimeout(0.25)
            started = time.monotonic()
            got = b""
            while time.monotonic() - started < 4 and not got:
                with contextlib.suppress(OSError):
                    c.send(b"x")
                with contextlib.suppress(TimeoutError, OSError):
                    got = c.sock.recv(100)
            assert got == TIMEOUT_421
            assert time.monotonic() - started < 1.6
        assert srv.spool_empty()
        with connect(srv.port) as after:  # the slot is free again
            assert after.reply() == GREETING


def test_a_long_line_arriving_in_big_pieces_is_progress(tmp_path):
    with serving(tmp_path) as srv, connect(srv.port) as c:
        c.reply()
        c.send(b"EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n")
        for _ in range(4):
            c.reply()
        for _ in range(5):  # 2.5 s of one 25 KB line, with a 1 s idle timeout
            c.send(b"y" * 5000)
            time.sleep(0.5)
        assert c.command(b"\r\n.").startswith(b"250 2.0.0 Ok: queued as ")
        [stored] = srv.files()
        assert split_trace(stored)[1] == b"y" * 25000 + b"\n"


# -- STARTTLS (RFC 3207) --------------------------------------------------------------------------
def test_starttls_then_ehlo_shows_auth_and_no_starttls(tmp_path):
    with serving(tmp_path, require_tls_for_auth=True) as srv, connect(srv.port) as c:
        c.reply()
        ehlo = c.command("EHLO client.test")
        assert b"250-STARTTLS\r\n" in ehlo and b"AUTH" not in ehlo
        assert c.command("AUTH PLAIN " + b64("\0alice\0secret")) == (
            b"538 5.7.11 Encryption required for requested authentication mechanism\r\n")
        assert c.command("STARTTLS") == b"220 2.0.0 Ready to start TLS\r\n"
        c.starttls(srv.data / ".tls" / "cert.pem")
        assert c.command("MAIL FROM:<>") == b"503 5.5.1 Error: send HELO/EHLO first\r\n"
        ehlo = c.command("EHLO client.test")
        assert b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n" in ehlo
        assert b"STARTTLS" not in ehlo
        assert c.command("STARTTLS") == b"554 5.5.1 Error: TLS already active\r\n"
        assert c.command("AUTH PLAIN " + b64("\0alice\0secret")) == \
            b"235 2.7.0 Authentication successful\r\n"
        c.send(b"MAIL FROM:<alice@local.test>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n")
        assert [c.reply() for _ in range(3)] == [
            b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"]
        assert c.command(b"Subject: tls\r\n\r\nsecret\r\n.").startswith(b"250 2.0.0 Ok: queued")
        assert c.command("QUIT") == b"221 2.0.0 Bye\r\n"
        [stored] = srv.files("bob")
    trace, body = split_trace(stored)
    assert trace == (b"alice@local.test", b"client.test", b"ESMTPSA", b"bob@local.test")
    assert body == b"Subject: tls\n\nsecret\n"


def test_commands_pipelined_after_starttls_are_discarded(tmp_path):
    """CVE-2011-0411: plaintext sent with STARTTLS must not be executed after the handshake."""
    with serving(tmp_path) as srv, connect(srv.port) as c:
        c.reply()
        c.command("EHLO client.test")
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@local.test>\r\n"
               b"DATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n")
        assert c.reply() == b"220 2.0.0 Ready to start TLS\r\n"
        c.starttls(srv.data / ".tls" / "cert.pem")
        ehlo = c.command("EHLO client.test")  # the first reply under TLS is for this EHLO
        assert ehlo.startswith(b"250-mail.test Hello client.test [127.0.0.1]\r\n")
        assert c.command("RCPT TO:<alice@local.test>") == \
            b"503 5.5.1 Error: need MAIL command\r\n"
        assert c.command("QUIT") == b"221 2.0.0 Bye\r\n"
        assert srv.files() == []


def test_failed_tls_handshake_does_not_hurt_the_server(tmp_path):
    with serving(tmp_path) as srv:
        with connect(srv.port) as c:
            c.reply()
            c.command("EHLO client.test")
            assert c.command("STARTTLS") == b"220 2.0.0 Ready to start TLS\r\n"
            c.send(b"this is not a TLS ClientHello\r\n" * 10)
            with contextlib.suppress(OSError):
                c.sock.recv(100)
        with connect(srv.port) as c:
            assert c.reply() == GREETING
            assert c.command("NOOP") == OK


# -- dropped connections, limits, shutdown --------------------------------------------------------
def test_client_dropping_mid_data_delivers_nothing(tmp_path):
    with serving(tmp_path) as srv:
        with connect(srv.port) as c:
            c.reply()
            c.send(b"EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n")
            for _ in range(4):
                c.reply()
            c.send(b"Subject: cut\r\n\r\n" + b"x" * 100_000 + b"\r\n.")
        assert srv.spool_empty()
        time.sleep(0.1)
        assert srv.files() == []


def test_max_connections_421_and_the_others_unaffected(tmp_path):
    with serving(tmp_path, max_connections=2) as srv:
        with connect(srv.port) as a, connect(srv.port) as b:
            assert a.reply() == GREETING and b.reply() == GREETING
            with connect(srv.port) as extra:
                assert extra.reply() == BUSY_421
                assert extra.closed()
            assert a.command("NOOP") == OK
            assert b.command("EHLO c.test").startswith(b"250-mail.test")
        time.sleep(0.2)  # the two sessions are gone: room again
        with connect(srv.port) as c:
            assert c.reply() == GREETING


def test_shutdown_says_421_to_open_sessions(tmp_path):
    with serving(tmp_path) as srv, connect(srv.port) as idle, connect(srv.port) as sending:
        idle.reply()
        sending.reply()
        sending.send(b"EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n")
        for _ in range(4):
            sending.reply()
        sending.send(b"Subject: interrupted\r\n\r\n")
        idle.command("EHLO c.test")
        time.sleep(0.05)
        srv.stop()
        assert idle.reply() == SHUTDOWN_421
        assert sending.reply() == SHUTDOWN_421
        assert idle.closed() and sending.closed()
        assert srv.spool_empty()
        assert srv.files() == []


# -- failed logins are answered late, in order ----------------------------------------------------
def test_failed_auth_reply_is_delayed_and_order_kept(tmp_path):
    with serving(tmp_path, auth_failure_delay=0.3) as srv, connect(srv.port) as c:
        c.reply()
        c.command("EHLO c.test")
        started = time.monotonic()
        c.send(("AUTH PLAIN " + b64("\0alice\0wrong") + "\r\nNOOP\r\n").encode())
        assert c.reply() == b"535 5.7.8 Error: authentication failed\r\n"
        assert time.monotonic() - started >= 0.28
        assert c.reply() == OK
        for _ in range(2):
            c.command("AUTH PLAIN " + b64("\0alice\0wrong"))
        assert c.reply() == (b"421 4.7.0 mail.test Error: too many failed authentication "
                             b"attempts\r\n")
        assert c.closed()


# -- a bug in the core never reaches the client or stops the server -------------------------------
def test_internal_error_closes_only_that_session(tmp_path, monkeypatch):
    real = ServerSession.receive

    def receive(self, data):
        if b"BOOM" in data:
            raise RuntimeError("simulated bug")
        return real(self, data)

    monkeypatch.setattr(ServerSession, "receive", receive)
    with serving(tmp_path) as srv:
        with connect(srv.port) as other, connect(srv.port) as c:
            other.reply()
            c.reply()
            c.send(b"BOOM\r\n")
            assert c.closed()  # closed, no traceback text sent
            assert other.command("NOOP") == OK
        with connect(srv.port) as c:
            assert c.reply() == GREETING
