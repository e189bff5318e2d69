"""Our SMTP client against aiosmtpd, a server nobody here wrote (see PEERS.md).

``mailproto send`` runs as a separate process, as a student would run it; what aiosmtpd received
is compared byte for byte with what was meant: the envelope and the dot-unstuffed content.
Without aiosmtpd the tests skip (``pip install aiosmtpd``), or fail with MAILPROTO_REQUIRE_PEERS=1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from peers import AiosmtpdServer, describe, peer_env, run_program

from mailproto.net.smtp_client import SMTPClient
from mailproto.transcript import Transcript

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
USERS = {"alice": "s3cret:with colon"}
#: Awkward on purpose: a lone ".", lines starting with "." and "..", a CRLF among LFs, a
#: 998-octet line (RFC 5321 §4.5.3.1.6), UTF-8, and no final newline.
MESSAGE = (b"From: Alice <alice@example.test>\nTo: bob@example.test, carol@example.test\n"
           b"Subject: dots and ends\n\n.\n..\n.leading dot\r\n...three\n"
           + b"x" * 998 + b"\n" + "Gr\u00fc\u00dfe\n".encode() + b"end without newline")


def expected_content(message: bytes) -> bytes:
    """What aiosmtpd must hold: CRLF line ends, dots unstuffed, a final CRLF added."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"


def mailproto_send(*args: str) -> tuple[int, str, str]:
    proc = run_program([sys.executable, "-m", "mailproto", "send", *args], cwd=ROOT,
                       env=peer_env(PYTHONPATH=str(ROOT)), timeout=60)
    return proc.returncode, proc.stdout, describe(proc)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_mailproto_send_arrives_intact(tmp_path: Path, mechanism: str) -> None:
    message_file = tmp_path / "message.eml"
    message_file.write_bytes(MESSAGE)
    saved = tmp_path / "session.json"
    with AiosmtpdServer(users=USERS, auth_required=True) as smtp:
        status, out, details = mailproto_send(
            "--server", f"{smtp.host}:{smtp.port}", "--from", "alice@example.test",
            "--to", "bob@example.test", "--to", "carol@example.test", "--helo", "client.test",
            "--auth", "alice:" + USERS["alice"], "--auth-mechanism", mechanism,
            "--transcript", "--save-transcript", str(saved), str(message_file))
        assert status == 0, details
        [got] = smtp.wait_for(1)
    assert got.mail_from == "alice@example.test"
    assert got.rcpt_tos == ["bob@example.test", "carol@example.test"]
    assert got.content == expected_content(MESSAGE)
    assert (got.helo, got.login, got.auth_mechanism) == ("client.test", "alice", mechanism)
    assert f"C: AUTH {mechanism}" in out and "S: 235 " in out
    transcript = Transcript.load(str(saved))
    assert transcript.to_text() == out.rstrip("\n")
    states = [(s.kind, s.state_before, s.state_after) for s in transcript]
    assert ("reply", "RCPT", "DATA") in states and ("reply", "DATA", "GREETED") in states
    assert transcript[-1].text.startswith("221") and transcript[-1].state_after == "CLOSED"


def test_mailproto_send_builds_a_message(tmp_path: Path) -> None:
    with AiosmtpdServer() as smtp:
        status, _, details = mailproto_send(
            "--server", f"{smtp.host}:{smtp.port}", "--from", "alice@example.test",
            "--to", "bob@example.test", "--subject", "Hello", "--body", "Hi Bob.\n.\nBye.\n")
        assert status == 0, details
        [got] = smtp.wait_for(1)
    assert got.login is None
    head, _, body = got.content.partition(b"\r\n\r\n")
    assert b"\r\nSubject: Hello\r\n" in b"\r\n" + head + b"\r\n"
    assert body == b"Hi Bob.\r\n.\r\nBye.\r\n"


def test_mailproto_send_reports_a_refused_login(tmp_path: Path) -> None:
    with AiosmtpdServer(users=USERS, auth_required=True) as smtp:
        status, _, details = mailproto_send(
            "--server", f"{smtp.host}:{smtp.port}", "--from", "alice@example.test",
            "--to", "bob@example.test", "--subject", "x", "--auth", "alice:wrong")
        assert smtp.messages == []
    assert status == 1
    [reason] = [line for line in details.splitlines() if line.startswith("mailproto send:")]
    assert "535" in reason


def test_library_client_against_aiosmtpd() -> None:
    with AiosmtpdServer(users=USERS) as smtp:
        with SMTPClient(smtp.host, smtp.port, timeout=10) as client:
            # aiosmtpd offers LOGIN and PLAIN; login() picks PLAIN (no CRAM-MD5 there).
            assert client.login("alice", USERS["alice"]).code == 235
            assert client.sendmail("alice@example.test", "bob@example.test", MESSAGE) == {}
            assert client.rcpt("bob@example.test").code == 503  # no MAIL: a value, no raise
        [got] = smtp.wait_for(1)
    assert got.content == expected_content(MESSAGE)
    assert got.auth_mechanism == "PLAIN"
