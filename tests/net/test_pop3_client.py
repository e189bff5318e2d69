"""The blocking POP3 client, and ``mailproto fetch``, against our own server in a thread."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailproto.errors import ConnectionClosed, LocalProtocolError, RemoteProtocolError
from mailproto.net.channel import SocketChannel
from mailproto.net.pop3_client import (
    POP3AuthenticationError,
    POP3Client,
    POP3ResponseError,
    POP3ServerDisconnected,
    error_proto,
)
from mailproto.net.runner import BackgroundServer
from mailproto.net.smtp_client import SMTPClient
from mailproto.transcript import Transcript

ROOT = Path(__file__).resolve().parents[2]
#: Dots at line starts (stuffed on both protocols' wires) and no final newline.
FIRST = b"Subject: first\n\n.\n..two dots\n.one dot\nno final newline"
SECOND = b"From: Bob <bob@local.test>\nSubject: second\n\nhello\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BackgroundServer]:
    users = tmp_path / "users"
    users.write_text("alice:secret\nbob:hunter2\n")
    with BackgroundServer(data=tmp_path / "data", users=users, auth_failure_delay=0) as srv:
        yield srv


def deliver(srv: BackgroundServer, user: str, *messages: bytes) -> list[bytes]:
    """Send over SMTP; return the stored files (LF), in arrival order."""
    with SMTPClient(srv.host, srv.smtp_port, timeout=10) as smtp:
        for message in messages:
            smtp.sendmail("sender@example.test", [f"{user}@local.test"], message)
    return stored(srv, user)


def stored(srv: BackgroundServer, user: str) -> list[bytes]:
    assert srv.server is not None
    return [p.read_bytes() for p in srv.server.store.maildir(user).message_paths()]


def client(srv: BackgroundServer, **kwargs: object) -> POP3Client:
    return POP3Client(srv.host, srv.pop3_port, timeout=10, **kwargs)  # type: ignore[arg-type]


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def test_user_pass_and_the_transaction_commands(server: BackgroundServer) -> None:
    files = deliver(server, "alice", FIRST, SECOND)
    assert files[0].endswith(b"\n" + FIRST + b"\n")  # the store adds trace headers on top
    with client(server) as pop:
        assert pop.getwelcome() is not None and pop.timestamp is not None
        assert pop.state == "AUTHORIZATION"
        assert pop.user("alice").positive
        total = sum(len(crlf(f)) for f in files)  # RFC 1939 §5: sizes as on the wire
        assert pop.pass_("secret").text == f"Maildrop has 2 messages ({total} bytes)"
        assert pop.state == "TRANSACTION"
        assert pop.stat() == (2, total)
        assert pop.list() == {1: len(crlf(files[0])), 2: len(crlf(files[1]))}
        assert pop.list(2) == {2: len(crlf(files[1]))}
        uids = pop.uidl()
        assert set(uids) == {1, 2} and pop.uidl(1) == {1: uids[1]}
        first = pop.retr(1)
        assert first.body == crlf(files[0])  # byte for byte, dots unstuffed
        top = pop.top(2, 0)
        assert top.body == crlf(files[1].split(b"\n\n")[0]) + b"\r\n\r\n"
        assert pop.noop().positive
        assert pop.dele(1).text == "message 1 deleted"
        with pytest.raises(POP3ResponseError) as gone:
            pop.retr(1)
        assert gone.value.response.text == "message 1 already deleted"
        assert isinstance(gone.value, error_proto)
        assert pop.quit().positive
        assert pop.state == "CLOSED"
    assert stored(server, "alice") == [files[1]]
    steps = [(s.direction, s.kind, s.state_before, s.state_after) for s in pop.transcript]
    assert steps[0] == ("S", "greeting", "AUTHORIZATION", "AUTHORIZATION")
    assert steps[4] == ("S", "reply", "AUTHORIZATION", "TRANSACTION")
    assert steps[-1] == ("S", "reply", "TRANSACTION", "CLOSED")
    [retr] = [s for s in pop.transcript if s.parsed.get("octets") and b"..two dots" in s.raw]
    assert retr.raw.endswith(b"\r\n..\r\n...two dots\r\n..one dot\r\nno final newline\r\n.\r\n")


def test_apop_and_auth(server: BackgroundServer) -> None:
    deliver(server, "bob", SECOND)
    with client(server) as pop:
        assert pop.apop("bob", "hunter2").positive and pop.stat()[0] == 1
    assert b"hunter2" not in b"".join(s.raw for s in pop.transcript)  # only the digest
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
        with client(server) as pop:
            with pytest.raises(POP3AuthenticationError) as refused:
                pop.auth(mech, "bob", "wrong")
            assert refused.value.response.code == "AUTH"  # RFC 3206
            assert pop.auth(mech, "bob", "hunter2").positive
            assert pop.state == "TRANSACTION"


def test_refusals_as_values_and_as_exceptions(server: BackgroundServer) -> None:
    with client(server) as pop:
        assert pop.docmd("STAT").text.startswith("STAT not allowed")  # a value, not raised
        with pytest.raises(POP3ResponseError):
            pop.stat()
        with pytest.raises(LocalProtocolError):
            pop.user("alice\r\nPASS secret")  # poplib would send two commands
        with pytest.raises(POP3AuthenticationError) as wrong:
            pop.pass_("secret")  # no USER before
        assert wrong.value.response.text == "Send USER first"
        assert pop.capa()["SASL"] == ["PLAIN", "LOGIN", "CRAM-MD5"]
        assert pop.capabilities["IMPLEMENTATION"] == ["mailproto"]


def test_maildrop_in_use(server: BackgroundServer) -> None:
    with client(server) as first, client(server) as second:
        first.user("alice")
        first.pass_("secret")
        second.user("alice")
        with pytest.raises(POP3ResponseError) as locked:
            second.pass_("secret")
        assert locked.value.response.code == "IN-USE"  # RFC 2449 §8.1.1
        assert str(locked.value).startswith("-ERR [IN-USE] ")


def test_send_line_types_anything(server: BackgroundServer) -> None:
    deliver(server, "alice", FIRST)
    with client(server) as pop:
        responses = pop.send_line("user alice\r\npass secret\r\nstat\r\nlist")
        assert [r.positive for r in responses] == [True] * 4
        assert responses[3].lines == [responses[2].text.encode()]
        [nonsense] = pop.send_line(b"XYZZY")
        assert nonsense.text == "Unknown command: XYZZY"
        assert pop.state == "TRANSACTION"


def test_stls_with_the_lab_certificate(server: BackgroundServer) -> None:
    cert = str(server.data / ".tls" / "cert.pem")
    with client(server, cafile=cert) as pop:
        assert "STLS" in pop.capa()
        assert pop.stls().positive
        assert pop.capabilities == {}  # forgotten (RFC 2595 §4)
        assert "STLS" not in pop.capa()
        pop.user("alice")
        pop.pass_("secret")
        assert pop.stat() == (0, 0)
    assert [s.parsed for s in pop.transcript if s.direction == "*"][0] == {"event": "tls"}
    with client(server) as pop:  # the system CAs do not know the lab's own certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            pop.stls()
        assert pop.channel is None and pop.state == "CLOSED"
    with client(server, verify=False) as pop:
        pop.stls()
        assert pop.core.tls


def test_transcript_saves_and_loads(server: BackgroundServer, tmp_path: Path) -> None:
    deliver(server, "alice", FIRST, b"Subject: binary\n\n\xff\xfe not UTF-8\n")
    with client(server) as pop:
        pop.user("alice")
        pop.pass_("secret")
        pop.retr(1)
        pop.retr(2)
    path = tmp_path / "session.json"
    pop.transcript.save(str(path))
    loaded = Transcript.load(str(path))
    assert loaded == pop.transcript
    assert loaded.protocol == "pop3" and loaded.meta["role"] == "client"
    assert loaded.to_text() == pop.transcript.to_text()
    assert "C: RETR 1" in loaded.to_text() and "S: ...two dots" in loaded.to_text()


def test_every_byte_goes_through_the_channel_and_into_the_transcript(
        server: BackgroundServer) -> None:
    class Tap(SocketChannel):
        sent = bytearray()
        received = bytearray()

        def send(self, data: bytes) -> None:
            self.sent += data
            super().send(data)

        def recv(self, max_bytes: int) -> bytes:
            data = super().recv(max_bytes)
            self.received += data
            return data

    deliver(server, "alice", FIRST, SECOND)
    tap = Tap.connect(server.host, server.pop3_port, 10)
    with POP3Client(server.host, server.pop3_port, channel=tap) as pop:
        pop.send_line("USER alice\r\nPASS secret\r\nUIDL\r\nRETR 2")
        pop.top(1, 1)
    steps = pop.transcript.steps
    assert bytes(tap.sent) == b"".join(s.raw for s in steps if s.direction == "C")
    assert bytes(tap.received) == b"".join(s.raw for s in steps if s.direction == "S")


def test_shutdown_err_then_close_is_a_clear_disconnect(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("alice:secret\n")
    srv = BackgroundServer(data=tmp_path / "data", users=users, auth_failure_delay=0).start()
    pop = client(srv).__enter__()
    pop.user("alice")
    pop.pass_("secret")
    srv.stop()  # -ERR [SYS/TEMP] Server shutting down, then close
    with pytest.raises(POP3ServerDisconnected) as gone:
        pop.stat()
    assert isinstance(gone.value, ConnectionClosed)
    assert gone.value.response is not None and gone.value.response.code == "SYS/TEMP"
    assert "last seen: S: +OK Maildrop has 0 messages" in str(gone.value)
    assert pop.state == "CLOSED" and pop.channel is None
    [last] = pop.transcript.steps[-1:]
    assert last.parsed.get("unsolicited") and last.state_after == "CLOSED"


def test_dropped_after_too_many_failures(server: BackgroundServer) -> None:
    with client(server) as pop:
        for _ in range(3):
            with pytest.raises(POP3AuthenticationError):
                pop.apop("alice", "wrong")
        with pytest.raises(POP3ServerDisconnected) as gone:
            pop.noop()
        assert "closing" in gone.value.last and pop.state == "CLOSED"


# -- mailproto fetch ----------------------------------------------------------------------
def fetch(srv: BackgroundServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailproto", "fetch", "--server",
                           f"{srv.host}:{srv.pop3_port}", "--timeout", "10", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_fetch_into_a_maildir_keep_then_delete(server: BackgroundServer, tmp_path: Path) -> None:
    files = deliver(server, "alice", FIRST, SECOND)
    kept = tmp_path / "kept"
    proc = fetch(server, "--user", "alice", "--password", "secret", "--keep", "--into", str(kept))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2 and "second" in proc.stdout
    assert sorted(p.read_bytes() for p in (kept / "new").iterdir()) == sorted(files)
    assert stored(server, "alice") == files  # --keep
    assert not list((kept / "tmp").iterdir())
    moved = tmp_path / "moved"
    proc = fetch(server, "--user", "alice", "--apop", "secret", "--into", str(moved),
                 "--save-transcript", str(tmp_path / "t.json"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.read_bytes() for p in (moved / "new").iterdir()) == sorted(files)
    assert stored(server, "alice") == []  # DELE, then QUIT: UPDATE removed them
    doc = json.loads((tmp_path / "t.json").read_text())
    assert [s["raw"] for s in doc["steps"] if s["direction"] == "C"][-3:] == \
        ["RETR 2\r\n", "DELE 2\r\n", "QUIT\r\n"]


def test_fetch_eml_files_transcript_stls_auth(server: BackgroundServer, tmp_path: Path) -> None:
    files = deliver(server, "bob", FIRST)
    out = tmp_path / "eml"
    proc = fetch(server, "--user", "bob", "--password", "hunter2", "--auth", "cram-md5",
                 "--stls", "--cafile", str(server.data / ".tls" / "cert.pem"), "--keep",
                 "--into", str(out), "--eml", "--transcript")
    assert proc.returncode == 0, proc.stderr
    assert (out / "1.eml").read_bytes() == crlf(files[0])  # as retrieved, CRLF
    assert "C: STLS" in proc.stdout and "C: AUTH CRAM-MD5" in proc.stdout
    assert "S: ...two dots" in proc.stdout and "*: TLS started" in proc.stdout
    proc = fetch(server, "--user", "bob", "--password", "hunter2", "--into", str(out), "--eml")
    assert proc.returncode == 1 and "cannot save message 1" in proc.stderr
    assert stored(server, "bob") == files  # not saved, so not deleted


def test_fetch_failures_are_one_line(server: BackgroundServer) -> None:
    [stored_file] = deliver(server, "alice", SECOND)
    proc = fetch(server, "--user", "alice", "--password", "wrong")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "mailproto fetch: login refused: -ERR [AUTH] Invalid user name or " \
        "password\n"
    proc = fetch(server, "--user", "alice", "--password", "secret", "--stls")
    assert proc.returncode == 1 and "--cafile" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = fetch(server, "--user", "alice", "--password", "secret")  # no --into: a summary
    assert proc.returncode == 0
    assert proc.stdout.split() == ["1", str(len(crlf(stored_file))), "octets", "Bob",
                                   "<bob@local.test>", "second"]
    assert stored(server, "alice") == []
    proc = subprocess.run([sys.executable, "-m", "mailproto", "fetch", "--server",
                           "127.0.0.1:1", "--user", "a", "--password", "b"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1 and proc.stderr.startswith("mailproto fetch: cannot connect")


# -- through a channel of our own -----------------------------------------------------------
class Scripted:
    """A channel that answers from a script: what a broken or hostile server might send."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.sent = bytearray()
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sent += data

    def recv(self, max_bytes: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        raise AssertionError("no TLS here")

    def close(self) -> None:
        self.closed = True


def test_an_err_greeting_is_a_disconnect() -> None:
    channel = Scripted(b"-ERR [SYS/TEMP] Too many connections, try again later\r\n")
    pop = POP3Client("192.0.2.1", 110, channel=channel)
    with pytest.raises(POP3ServerDisconnected) as refused:
        pop.connect()
    assert refused.value.response is not None and refused.value.response.code == "SYS/TEMP"
    assert channel.closed and pop.state == "CLOSED"


def test_garbage_is_a_remote_protocol_error_and_closes() -> None:
    channel = Scripted(b"+OK hi\r\n", b"220 smtp.example.test ESMTP\r\n")
    pop = POP3Client(channel=channel)
    pop.connect()
    with pytest.raises(RemoteProtocolError):
        pop.noop()
    assert channel.closed and pop.channel is None and pop.state == "CLOSED"
    assert pop.transcript[-1].parsed["event"] == "closed"


def test_a_dropped_connection_mid_message() -> None:
    channel = Scripted(b"+OK hi\r\n", b"+OK\r\n", b"+OK in\r\n",
                       b"+OK 100 octets\r\nSubject: x\r\n")  # then EOF
    pop = POP3Client(channel=channel)
    pop.connect()
    pop.user("a")
    pop.pass_("b")
    with pytest.raises(POP3ServerDisconnected) as gone:
        pop.retr(1)
    assert "while we waited for the response to RETR" in str(gone.value)
    assert gone.value.last == "S: +OK in" and pop.state == "CLOSED"
    assert bytes(channel.sent) == b"USER a\r\nPASS b\r\nRETR 1\r\n"
