"""Real SMTP clients (swaks, curl, msmtp, Python's smtplib) against ``mailproto serve``.

Each test sends a message it knows byte for byte, then checks what landed in the Maildir: our two
trace header fields (``Return-Path:``, ``Received:``) on top, then exactly what the client sent,
with CRLF turned into LF (the storage contract) and dots unstuffed.  It also reads the message
back with Python's ``mailbox.Maildir``, as any Maildir reader would.  Client gotchas are in
/work/shared/docs/PEERS.md.
"""

from __future__ import annotations

import email
import email.policy
import io
import mailbox
import re
import smtplib
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path

import pytest
from peers import describe, run_curl, run_msmtp, run_swaks
from serve_fixture import RunningServer, running_server

pytestmark = pytest.mark.real

USERS = {"alice": "secret", "bob": "hunter2", "Carol": "pa:ss w0rd"}
SENDER = "sender@remote.test"
TRACE = re.compile(rb"Return-Path: <([^>]*)>\n"
                   rb"Received: from (\S+) \(\[127\.0\.0\.1\]\)\n"
                   rb"\tby mail\.test \(mailproto\) with (\w+) id [0-9A-F]+\n"
                   rb"\t(?:for <([^>]*)>)?; \w{3}, [ \d]\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> RunningServer:
    with running_server(tmp_path_factory.mktemp("smtp-real"), users=USERS) as srv:
        assert srv.smtp_port
        yield srv
    assert "Traceback" not in srv.stderr_text(), srv.stderr_text()


class Inbox:
    """What arrives in one user's Maildir during a test."""

    def __init__(self, server: RunningServer, user: str) -> None:
        self.server = server
        self.user = user
        self.before = set(server.messages(user))

    def new(self) -> list[Path]:
        return [p for p in self.server.messages(self.user) if p not in self.before]

    def one(self) -> Path:
        new = self.new()
        assert len(new) == 1, new
        return new[0]


def check_delivery(server: RunningServer, user: str, path: Path, sent: bytes, *, helo: str,
                   proto: str, rcpt: str | None, sender: str = SENDER) -> bytes:
    """``sent`` is the DATA content as the client put it on the wire, dot-stuffing undone and
    without the final "." line.  Returns the stored content after the trace fields."""
    stored = path.read_bytes()
    match = TRACE.match(stored)
    assert match, stored[:400]
    rcpt_group = match.group(4).decode() if match.group(4) is not None else None
    assert (match.group(1).decode(), match.group(2).decode(), match.group(3).decode(),
            rcpt_group) == (sender, helo, proto, rcpt)
    content = stored[match.end():]
    assert content == sent.replace(b"\r\n", b"\n")
    assert b"\r\n" not in content or b"\r\n" in sent.replace(b"\r\n", b"")

    # Any Maildir reader must see the same message.
    box = mailbox.Maildir(server.maildir(user), factory=None, create=False)
    key = path.name.split(":")[0]
    assert key in box.keys()
    assert box.get_bytes(key) == stored
    assert box.get_message(key).get_subdir() == "new"
    got = email.message_from_binary_file(box.get_file(key), policy=email.policy.default)
    want = email.message_from_bytes(sent.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert got["Return-Path"] == f"<{sender}>"
    assert len(got.get_all("Received")) == 1
    got_headers = [(k, str(v)) for k, v in got.items() if k not in ("Return-Path", "Received")]
    assert got_headers == [(k, str(v)) for k, v in want.items()]
    assert got.get_payload(decode=True) == want.get_payload(decode=True)
    if want.get_content_maintype() == "text":
        assert got.get_content() == want.get_content()
    return content


# A message with everything that trips up a mail path: dot lines, a line that is only "..",
# 8-bit text, a tab, a 998-octet line (RFC 5321 §4.5.3.1.6).
def sample(subject: str, body: bytes = b"") -> bytes:
    return (f"From: Sender <{SENDER}>\r\nTo: Alice <alice@local.test>\r\n"
            f"Subject: {subject}\r\nDate: Sun, 09 Sep 2001 01:46:40 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@remote.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + (body or (
        b"Hello Alice,\r\n.a line that starts with a dot\r\n..\r\n...three\r\n"
        + "Gr\u00fc\u00dfe, \u00e7a va? \u2603\r\n".encode()
        + b"tab\there\r\n" + b"x" * 998 + b"\r\n"
        + b"the end"))


# -- swaks ----------------------------------------------------------------------------------------
def swaks(server: RunningServer, message: bytes, tmp_path: Path, *args: str,
          to: str = "alice@local.test"):
    # swaks: --data @file sends the file (LF -> CRLF, dots stuffed) then CRLF "." CRLF;
    # the file must not end with a newline or swaks sends an extra empty line.  No %TOKENS%.
    assert not message.endswith(b"\n") and b"%" not in message
    data = tmp_path / "message.eml"
    data.write_bytes(message)
    return run_swaks(["--server", f"127.0.0.1:{server.smtp_port}", "--from", SENDER,
                      "--to", to, "--helo", "client.test", "--data", f"@{data}", *args],
                     timeout=60)


@pytest.mark.parametrize("args, proto", [
    ([], "ESMTP"),
    (["--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "secret"], "ESMTPA"),
    (["--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "secret"], "ESMTPA"),
    (["--auth", "CRAM-MD5", "--auth-user", "Carol", "--auth-password", "pa:ss w0rd"], "ESMTPA"),
    (["--pipeline"], "ESMTP"),
    (["--pipeline", "--auth", "PLAIN", "--auth-user", "bob", "--auth-password", "hunter2"],
     "ESMTPA"),
], ids=["plain", "auth-plain", "auth-login", "auth-cram-md5", "pipeline", "pipeline-auth"])
def test_swaks(server, tmp_path, args, proto):
    inbox = Inbox(server, "alice")
    message = sample("swaks " + " ".join(args[:2]))
    proc = swaks(server, message, tmp_path, *args)
    assert proc.returncode == 0, describe(proc)
    if "--pipeline" in args:
        assert re.search(r" -> MAIL FROM:<[^>]*>\n -> RCPT TO:<[^>]*>\n -> DATA\n", proc.stdout)
    if "--auth" in args:
        assert "<-  235 2.7.0 Authentication successful" in proc.stdout
    check_delivery(server, "alice", inbox.one(), message + b"\r\n", helo="client.test",
                   proto=proto, rcpt="alice@local.test")


def test_swaks_dot_lines_and_8bit_body(server, tmp_path):
    inbox = Inbox(server, "bob")
    body = (b".\r\n..\r\n. \r\n.leading\r\n\r\n.\r\n\xff\xfe\x80 raw 8-bit \xc3\r\n"
            b"\x00NUL inside\r\nlast .")
    message = sample("swaks dots", body)
    proc = swaks(server, message, tmp_path, "--to", "bob@local.test", to="bob@local.test")
    assert proc.returncode == 0, describe(proc)
    assert " -> .." in proc.stdout  # swaks stuffed the dot; we unstuffed it
    content = check_delivery(server, "bob", inbox.one(), message + b"\r\n", helo="client.test",
                             proto="ESMTP", rcpt="bob@local.test")
    assert content.endswith(b"\n\n.\n..\n. \n.leading\n\n.\n\xff\xfe\x80 raw 8-bit \xc3\n"
                            b"\x00NUL inside\nlast .\n")


def test_swaks_one_megabyte(server, tmp_path):
    inbox = Inbox(server, "alice")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 15 + b"\r\n"
    body = b"".join(line if i % 7 else b"." + line for i in range(1100)) + b"end"
    assert len(body) > 1_000_000
    message = sample("swaks one megabyte", body)
    proc = swaks(server, message, tmp_path, "--suppress-data", "--pipeline")
    assert proc.returncode == 0, describe(proc)
    check_delivery(server, "alice", inbox.one(), message + b"\r\n", helo="client.test",
                   proto="ESMTP", rcpt="alice@local.test")


def test_swaks_wrong_password_and_relay_refused(server, tmp_path):
    inbox = Inbox(server, "alice")
    proc = swaks(server, sample("swaks refused"), tmp_path, "--auth", "PLAIN", "--auth-user",
                 "alice", "--auth-password", "wrong")
    assert proc.returncode == 28, describe(proc)  # PEERS.md: 28 = AUTH failed
    assert "<** 535 5.7.8 Error: authentication failed" in proc.stdout
    proc = swaks(server, sample("swaks relay"), tmp_path, to="someone@elsewhere.test")
    assert proc.returncode == 24, describe(proc)  # RCPT refused
    assert "<** 550 5.7.1 <someone@elsewhere.test>: Relay access denied" in proc.stdout
    assert inbox.new() == []
    assert not (server.data / ".outbox" / "new").exists() or \
        list((server.data / ".outbox" / "new").iterdir()) == []


# -- curl -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("login_options", [None, "AUTH=PLAIN", "AUTH=LOGIN"])
def test_curl_with_user(server, tmp_path, login_options):
    inbox = Inbox(server, "alice")
    message = sample(f"curl {login_options}") + b"\r\n"  # curl sends the file as it is
    upload = tmp_path / "upload.eml"
    upload.write_bytes(message)
    args = [f"smtp://127.0.0.1:{server.smtp_port}/client.example", "--mail-from", SENDER,
            "--mail-rcpt", "alice@local.test", "--upload-file", str(upload),
            "--user", "alice:secret", "-sS", "-v"]
    if login_options:
        args += ["--login-options", login_options]
    proc = run_curl(args, timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "< 235 2.7.0 Authentication successful" in proc.stderr
    first_auth = {  # curl -v shows the raw lines, CRLF included
        None: "> AUTH CRAM-MD5\r\n< 334 ",  # curl picks the strongest mechanism offered
        "AUTH=PLAIN": "> AUTH PLAIN\r\n< 334 \r\n> ",  # RFC 4954 §4: "334 " keeps its space
        "AUTH=LOGIN": "> AUTH LOGIN\r\n< 334 VXNlcm5hbWU6\r\n> ",
    }[login_options]
    assert first_auth in proc.stderr, proc.stderr
    assert re.search(r"> MAIL FROM:<sender@remote.test> SIZE=\d+", proc.stderr)
    check_delivery(server, "alice", inbox.one(), message, helo="client.example",
                   proto="ESMTPA", rcpt="alice@local.test")


def test_curl_wrong_password(server, tmp_path):
    inbox = Inbox(server, "alice")
    upload = tmp_path / "upload.eml"
    upload.write_bytes(sample("curl refused") + b"\r\n")
    proc = run_curl([f"smtp://127.0.0.1:{server.smtp_port}/client.example", "--mail-from",
                     SENDER, "--mail-rcpt", "alice@local.test", "--upload-file", str(upload),
                     "--user", "alice:nope", "-sS"], timeout=60)
    assert proc.returncode == 67, describe(proc)  # CURLE_LOGIN_DENIED
    assert inbox.new() == []


# -- msmtp ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mechanism", ["plain", "login"])
def test_msmtp(server, mechanism):
    inbox = Inbox(server, "alice")
    carol = Inbox(server, "Carol")
    message = sample(f"msmtp {mechanism}").replace(b"\r\n", b"\n") + b"\n"
    proc = run_msmtp(["alice@local.test", "carol@local.test"], message.decode("utf-8"),
                     port=server.smtp_port, from_addr=SENDER, user="bob", password="hunter2",
                     auth=mechanism, domain="client.test", timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "235 2.7.0 Authentication successful" in proc.stdout
    for box, path in (("alice", inbox.one()), ("Carol", carol.one())):
        check_delivery(server, box, path, message, helo="client.test", proto="ESMTPA",
                       rcpt=None)


def test_msmtp_without_auth(server):
    inbox = Inbox(server, "alice")
    message = sample("msmtp no auth").replace(b"\r\n", b"\n") + b"\n"
    proc = run_msmtp(["alice@local.test"], message.decode("utf-8"), port=server.smtp_port,
                     from_addr=SENDER, domain="client.test", timeout=60)
    assert proc.returncode == 0, describe(proc)
    check_delivery(server, "alice", inbox.one(), message, helo="client.test", proto="ESMTP",
                   rcpt="alice@local.test")


# -- Python's smtplib -----------------------------------------------------------------------------
def flattened(msg: EmailMessage, utf8: bool = False) -> bytes:
    """What ``send_message`` puts in DATA (smtplib.py): BytesGenerator, CRLF."""
    out = io.BytesIO()
    policy = msg.policy.clone(utf8=True) if utf8 else None
    generator = BytesGenerator(out, policy=policy) if policy else BytesGenerator(out)
    generator.flatten(msg, linesep="\r\n")
    data = out.getvalue()
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def smtp(server: RunningServer) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test", timeout=30)


def test_smtplib_send_message_with_login(server):
    inbox = Inbox(server, "alice")
    msg = EmailMessage()
    msg["From"] = "Alice <alice@local.test>"
    msg["To"] = "Alice <alice@local.test>"
    msg["Subject"] = "smtplib"
    msg.set_content(".dotted first line\n..\nGr\u00fc\u00dfe\n", cte="8bit")
    with smtp(server) as client:
        assert client.login("alice", "secret") == (235, b"2.7.0 Authentication successful")
        assert client.send_message(msg) == {}
    check_delivery(server, "alice", inbox.one(), flattened(msg), helo="client.test",
                   proto="ESMTPA", rcpt="alice@local.test", sender="alice@local.test")


def test_smtplib_login_tries_cram_md5_first(server, capsys):
    with smtp(server) as client:
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN", "CRAM-MD5"]
        client.set_debuglevel(1)
        assert client.login("Carol", "pa:ss w0rd") == (235, b"2.7.0 Authentication successful")
    sent = [line for line in capsys.readouterr().err.splitlines() if "send:" in line]
    assert sent[0].endswith("send: 'AUTH CRAM-MD5\\r\\n'"), sent
    with smtp(server) as client:  # LOGIN in smtplib's one-line form: AUTH LOGIN <user>
        client.ehlo()
        client.user, client.password = "bob", "hunter2"
        client.set_debuglevel(1)
        assert client.auth("LOGIN", client.auth_login, initial_response_ok=True) == \
            (235, b"2.7.0 Authentication successful")
    sent = [line for line in capsys.readouterr().err.splitlines() if "send:" in line]
    assert sent[0].endswith("send: 'AUTH LOGIN Ym9i\\r\\n'"), sent


def test_smtplib_wrong_password(server):
    """login() tries CRAM-MD5, PLAIN, LOGIN: three failures, then our 421 (as Postfix's
    hard error limit: the 421 follows the last error reply, and the server closes)."""
    client = smtp(server)
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login("alice", "wrong")
        assert info.value.smtp_code == 535
        assert client.getreply() == (
            421, b"4.7.0 mail.test Error: too many failed authentication attempts")
    finally:
        client.close()


def test_smtplib_sendmail_raw_bytes_pipelined_and_multiple_rcpts(server):
    alice, bob = Inbox(server, "alice"), Inbox(server, "bob")
    raw = sample("smtplib raw") + b"\r\n"
    with smtp(server) as client:
        refused = client.sendmail(SENDER, ["alice@local.test", "nobody@local.test",
                                           "bob@local.test"], raw)
    assert refused == {"nobody@local.test": (
        550, b"5.1.1 <nobody@local.test>: Recipient address rejected: User unknown in local "
             b"recipient table")}
    for box, inbox in (("alice", alice), ("bob", bob)):
        check_delivery(server, box, inbox.one(), raw, helo="client.test", proto="ESMTP",
                       rcpt=None)


def test_smtplib_smtputf8(server):
    inbox = Inbox(server, "bob")
    msg = EmailMessage()
    msg["From"] = "J\u00f6rg <j\u00f6rg@b\u00fccher.test>"
    msg["To"] = "bob@local.test"
    msg["Subject"] = "gr\u00fc\u00dfe"
    msg.set_content("\u00e4\u00f6\u00fc\n")
    with smtp(server) as client:
        assert client.send_message(msg) == {}  # needs SMTPUTF8 for the sender
    check_delivery(server, "bob", inbox.one(), flattened(msg, utf8=True), helo="client.test",
                   proto="UTF8SMTP", rcpt="bob@local.test", sender="j\u00f6rg@b\u00fccher.test")


def test_smtplib_size_limit_is_announced(server):
    with smtp(server) as client:
        client.ehlo()
        assert client.has_extn("size") and int(client.esmtp_features["size"]) == 10_240_000
        code, text = client.mail(SENDER, ["SIZE=20000000"])
        assert (code, text) == (552, b"5.3.4 Message size exceeds fixed limit")
        assert client.rset()[0] == 250
        assert client.verify("alice")[0] == 252
        assert client.expn("staff")[0] == 502
        assert client.help().startswith(b"2.0.0 This is mailproto")
