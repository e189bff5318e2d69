"""The blocking SMTP client against our own server, run on its own asyncio loop in a thread."""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailproto.cli import main
from mailproto.errors import ConnectionClosed, LocalProtocolError
from mailproto.net.server import MailServer, ServeOptions
from mailproto.net.smtp_client import (
    SMTPAuthenticationError,
    SMTPClient,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from mailproto.transcript import Transcript

MESSAGE = b"Subject: test\n\nfirst\n.\n..two dots\n.one dot\nno final newline"


@dataclass
class Running:
    server: MailServer
    loop: asyncio.AbstractEventLoop
    host: str
    port: int
    data: Path

    @property
    def cert(self) -> str:
        return str(self.data / ".tls" / "cert.pem")  # the self-signed cert serve makes

    def client(self, **kwargs: object) -> SMTPClient:
        return SMTPClient(self.host, self.port, timeout=10, **kwargs)  # type: ignore[arg-type]

    def inbox(self, user: str) -> list[bytes]:
        return [p.read_bytes() for p in self.server.store.maildir(user).message_paths()]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stop)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    users = tmp_path / "users"
    users.write_text("alice:secret\nbob:hunter2\n")
    data = tmp_path / "data"
    data.mkdir()
    mail = MailServer(ServeOptions(smtp_port=0, pop3_port=None, data=data, users=users,
                                   auth_failure_delay=0))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(mail.start())
        except BaseException as exc:  # report it to the test instead of hanging
            failed.append(exc)
            return
        finally:
            ready.set()
        loop.run_until_complete(mail.serve_forever())
        loop.run_until_complete(asyncio.sleep(0.05))  # let the 421s go out

    thread = threading.Thread(target=run, name="mailproto-server", daemon=True)
    thread.start()
    assert ready.wait(10), "the server did not start"
    if failed:
        raise failed[0]
    host, port = mail.addresses["SMTP"]
    try:
        yield Running(mail, loop, host, port, data)
    finally:
        loop.call_soon_threadsafe(mail.stop)
        thread.join(10)
        loop.close()
        mail.close()


def test_greeting_ehlo_quit(server: Running) -> None:
    client = server.client(local_hostname="student.test")
    greeting = client.connect()
    assert greeting.code == 220 and client.state == "CONNECTED"
    reply = client.ehlo()
    assert reply.code == 250 and client.state == "GREETED"
    assert {"PIPELINING", "STARTTLS", "AUTH"} <= set(client.extensions)
    assert client.quit().code == 221
    assert client.channel is None and client.state == "CLOSED"
    steps = [(s.direction, s.kind, s.text, s.state_before, s.state_after)
             for s in client.transcript]
    assert steps[1] == ("C", "command", "EHLO student.test\r\n", "CONNECTED", "CONNECTED")
    assert steps[2][1:2] == ("reply",) and steps[2][3:] == ("CONNECTED", "GREETED")
    assert steps[-1][2:] == ("221 2.0.0 Bye\r\n", "GREETED", "CLOSED")
    assert all(s.time > 0 for s in client.transcript)


def test_sendmail_delivers_exact_content(server: Running) -> None:
    with server.client() as client:
        refused = client.sendmail("sender@example.test", ["alice@local.test"], MESSAGE)
        assert refused == {}
        assert client.last_reply is not None and client.last_reply.code == 250
    [stored] = server.inbox("alice")
    # The store keeps LF line ends and adds the trace headers (RFC 5321 §4.4) on top.
    assert stored.startswith(b"Return-Path: <sender@example.test>\n")
    assert stored.endswith(b"\n" + MESSAGE + b"\n")
    [data] = [s for s in client.transcript if s.kind == "data"]
    assert b"\r\n..\r\n...two dots\r\n..one dot\r\n" in data.raw  # stuffed on the wire


def test_refusals_are_values_for_low_level_calls(server: Running) -> None:
    with server.client() as client:
        assert client.data(b"never sent").code == 503  # no EHLO yet: and no data sent
        client.ehlo()
        assert not [s for s in client.transcript if s.kind == "data"]
        assert client.mail("a@example.test").code == 250
        assert client.rcpt("nobody@local.test").code == 550
        assert client.rcpt("bob@local.test").code == 250
        assert client.noop().code == 250
        assert client.vrfy("bob").code == 252
        assert client.help("DATA").code == 214
        assert client.rset().code == 250 and client.state == "GREETED"
        with pytest.raises(LocalProtocolError):
            client.mail("a@example.test>\r\nRCPT TO:<alice@local.test")


def test_sendmail_raises_with_the_reply(server: Running) -> None:
    with server.client() as client:
        with pytest.raises(SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.test", ["nobody@local.test"], MESSAGE)
        assert refused.value.recipients["nobody@local.test"].code == 550
        with pytest.raises(SMTPSenderRefused) as sender:
            client.sendmail("not an address@", ["alice@local.test"], MESSAGE)
        assert sender.value.reply.code == 501 and sender.value.smtp_code == 501
        some = client.sendmail("a@example.test", ["nobody@local.test", "bob@local.test"], b"x")
        assert list(some) == ["nobody@local.test"]
    assert len(server.inbox("bob")) == 1


def test_send_message_uses_headers_and_drops_bcc(server: Running) -> None:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.test>"
    msg["To"] = "Alice <alice@local.test>"
    msg["Bcc"] = "bob@local.test"
    msg["Subject"] = "hello"
    msg.set_content("Grüße\n.\n")
    with server.client() as client:
        assert client.send_message(msg) == {}
    [to_alice], [to_bob] = server.inbox("alice"), server.inbox("bob")
    assert to_alice.split(b"\n", 2)[2] == to_bob.split(b"\n", 2)[2]  # same message
    assert b"Bcc" not in to_alice and b"Subject: hello\n" in to_alice


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", None])
def test_login(server: Running, mechanism: str | None) -> None:
    with server.client() as client:
        assert client.login("alice", "secret", mechanism).code == 235
        client.sendmail("alice@local.test", ["bob@local.test"], MESSAGE)
    auth = [s for s in client.transcript if s.kind == "command" and s.parsed["verb"] == "AUTH"]
    assert auth[0].parsed["arg"].split()[0] == (mechanism or "CRAM-MD5")
    [stored] = server.inbox("bob")
    assert b"with ESMTPA" in stored


def test_failed_login_raises_but_auth_returns_the_reply(server: Running) -> None:
    with server.client() as client:
        with pytest.raises(SMTPAuthenticationError) as failed:
            client.login("alice", "wrong", "PLAIN")
        assert failed.value.reply.code == 535
        assert client.auth("LOGIN", "alice", "wrong").code == 535
        assert client.state == "GREETED"


def test_starttls_with_the_lab_certificate(server: Running) -> None:
    with server.client(cafile=server.cert) as client:
        client.ehlo()
        assert client.has_extn("STARTTLS")
        assert client.starttls().code == 220
        assert client.core.tls and isinstance(client.channel.sock, ssl.SSLSocket)
        assert client.state == "GREETED" and not client.has_extn("STARTTLS")  # EHLO again
        client.login("alice", "secret", "PLAIN")
        client.sendmail("alice@local.test", ["bob@local.test"], MESSAGE)
    kinds = [(s.kind, s.text.split("\r\n")[0]) for s in client.transcript]
    tls = kinds.index(("event", "TLS started"))
    assert kinds[tls - 1] == ("reply", "220 2.0.0 Ready to start TLS")
    assert kinds[tls + 1] == ("command", "EHLO [127.0.0.1]")
    assert b"with ESMTPSA" in server.inbox("bob")[0]


def test_starttls_verifies_the_certificate(server: Running) -> None:
    with server.client() as client:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls()
    with server.client(verify=False) as client:
        client.starttls()
        assert client.core.tls


def test_send_line_types_anything(server: Running) -> None:
    with server.client(cafile=server.cert) as client:
        [reply] = client.send_line("mail from:<a@example.test>")
        assert reply.code == 503  # no EHLO yet: the server says so, no exception
        assert [r.code for r in client.send_line(b"EHLO me.test\r\nNOOP\r\n")] == [250, 250]
        assert [r.code for r in client.send_line("STARTTLS")] == [220]
        assert client.core.tls  # the handshake followed by itself
        assert [r.code for r in client.send_line("ehlo me.test")] == [250]
        assert client.send_line("x\0y")[0].code == 500


def test_421_and_dropped_connections_are_clear(server: Running) -> None:
    client = server.client()
    client.connect()
    client.ehlo()
    server.stop()  # says 421 to every open session, unasked
    assert select.select([client.channel.sock], [], [], 5)[0]
    with pytest.raises(SMTPServerDisconnected) as closed:
        client.noop()
    assert isinstance(closed.value, ConnectionClosed)
    assert not [s for s in client.transcript if s.text == "NOOP\r\n"]  # never sent
    assert client.transcript[-1].parsed["unsolicited"]
    assert closed.value.reply is not None and closed.value.reply.code == 421
    assert "421" in str(closed.value) and client.state == "CLOSED"


def test_dropped_connection_says_what_was_last_seen() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"220 flaky.test ESMTP\r\n")
        conn.recv(100)
        conn.close()  # drop without a word

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = SMTPClient("127.0.0.1", listener.getsockname()[1], timeout=5)
    client.connect()
    with pytest.raises(ConnectionClosed) as dropped:
        client.ehlo()
    assert "EHLO" in str(dropped.value) and "C: EHLO" in dropped.value.last  # type: ignore
    assert client.transcript[-1].kind == "event"
    thread.join(5)
    listener.close()


def test_transcript_save_load_round_trip(server: Running, tmp_path: Path) -> None:
    with server.client() as client:
        client.login("alice", "secret", "LOGIN")
        client.sendmail("alice@local.test", ["bob@local.test"], MESSAGE + b"\n\xff raw byte")
    path = tmp_path / "session.json"
    client.transcript.save(str(path))
    loaded = Transcript.load(str(path))
    assert loaded == client.transcript
    assert loaded.to_text() == client.transcript.to_text()
    assert loaded.meta["role"] == "client"


def test_cli_send_prints_and_saves_the_transcript(server: Running, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "t.json"
    status = main(["send", "--server", f"{server.host}:{server.port}", "--from",
                   "alice@local.test", "--to", "bob@local.test", "--subject", "hi", "--body",
                   "hello\n.\n", "--auth", "alice:secret", "--starttls", "--cafile",
                   server.cert, "--helo", "cli.test", "--transcript", "--save-transcript",
                   str(saved)])
    out = capsys.readouterr().out
    assert status == 0
    assert "C: EHLO cli.test" in out and "S: 250-STARTTLS" in out and "C: .." in out
    assert Transcript.load(str(saved)).to_text() == out.rstrip("\n")
    assert b"Subject: hi\n" in server.inbox("bob")[0]


def test_cli_send_fails_with_one_line(server: Running,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = ["send", "--server", f"{server.host}:{server.port}", "--from", "a@example.test",
            "--subject", "x"]
    assert main([*base, "--to", "nobody@local.test"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "550" in err
    assert main([*base, "--to", "bob@local.test", "--starttls"]) == 1
    assert "--cafile" in capsys.readouterr().err
    assert main([*base, "--to", "bob@local.test", "--auth", "alice:bad"]) == 1
    assert "535" in capsys.readouterr().err


def test_silent_server_times_out_and_closes() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        conn.sendall(b"220 mute.test ESMTP\r\n")  # then never a word

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = SMTPClient("127.0.0.1", listener.getsockname()[1], timeout=0.3)
    client.connect()
    with pytest.raises(TimeoutError, match="no reply within 0.3 s while waiting for the reply "
                                           "to NOOP"):
        client.noop()
    assert client.channel is None and client.state == "CLOSED"  # out of step: no going on
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()
