"""Real POP3 clients against ``mailproto serve``: mail goes in over SMTP (smtplib), comes out with
curl, fetchmail and Python's poplib, and every test compares the bytes fetched with the bytes sent
and with what is left in the Maildir."""

from __future__ import annotations

import poplib
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import describe, require_program, run_curl, run_fetchmail
from serve_fixture import RunningServer, running_server

from mailproto.pop3.maildrop import uid_for

pytestmark = pytest.mark.real

USERS = {"alice": "secret", "bob": "hunter2"}
#: Message texts as a mail program writes them: dots at line starts, a lone dot, 8-bit UTF-8.
MESSAGES = [
    b"From: bob@local.test\r\nTo: alice@local.test\r\nSubject: first\r\n\r\nHello Alice.\r\n",
    b"Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nend\r\n",
    "Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nun café, s'il vous plaît\r\n".encode(),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path, users=USERS) as srv:
        yield srv


def deliver(srv: RunningServer, messages: list[bytes] = MESSAGES, to: str = "alice") -> None:
    with smtplib.SMTP(srv.host, srv.smtp_port, timeout=10) as smtp:
        for msg in messages:
            smtp.sendmail("bob@local.test", [f"{to}@local.test"], msg)
    assert len(srv.messages(to)) >= len(messages)


def on_the_wire(path: Path) -> bytes:
    """A stored message as RETR must send it (unstuffed): LF becomes CRLF."""
    return path.read_bytes().replace(b"\n", b"\r\n")


def pop(srv: RunningServer, user: str = "alice") -> poplib.POP3:
    client = poplib.POP3(srv.host, srv.pop3_port, timeout=10)
    client.user(user)
    client.pass_(USERS[user])
    return client


# -- poplib --------------------------------------------------------------------------------
def test_poplib_every_command(server: RunningServer) -> None:
    deliver(server)
    stored = server.messages("alice")
    wire = [on_the_wire(p) for p in stored]
    for sent, fetched in zip(MESSAGES, wire, strict=True):
        assert fetched.endswith(sent) and fetched.startswith(b"Return-Path: <bob@local.test>")

    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    assert re.fullmatch(rb"\+OK mail\.test POP3 server ready <\d+\.\d+\.\d+@mail\.test>",
                        client.getwelcome())
    assert client.user("alice") == b"+OK Password required for alice"
    total = sum(len(w) for w in wire)
    assert client.pass_("secret") == f"+OK Maildrop has 3 messages ({total} bytes)".encode()
    assert client.stat() == (3, total)
    resp, listing, _ = client.list()
    assert listing == [f"{i} {len(w)}".encode() for i, w in enumerate(wire, 1)]
    assert client.list(2) == f"+OK 2 {len(wire[1])}".encode()
    resp, uids, _ = client.uidl()
    # The unique name, without the flags after ":" and the ",S=" / ",W=" size fields.
    names = [re.sub(r",[SW]=\d+", "", p.name.partition(":")[0]) for p in stored]
    assert all(re.fullmatch(r"\d+\.M\d+P\d+Q\d+\.[^,:]+", n) for n in names)
    assert uids == [f"{i} {n}".encode() for i, n in enumerate(names, 1)]
    for number, expected in enumerate(wire, 1):
        resp, lines, octets = client.retr(number)
        assert resp == f"+OK {len(expected)} octets".encode()
        assert b"".join(line + b"\r\n" for line in lines) == expected
    resp, lines, _ = client.top(2, 0)
    assert b"".join(line + b"\r\n" for line in lines) == wire[1].split(b"\r\n\r\n")[0] + \
        b"\r\n\r\n"
    resp, lines, _ = client.top(2, 1)
    assert lines[-1] == b"."  # the body's first line, unstuffed by poplib
    assert client.noop() == b"+OK"
    assert client.dele(1) == b"+OK message 1 deleted"
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.retr(1)
    assert client.stat() == (2, total - len(wire[0]))
    client.rset()
    client.dele(2)
    assert client.quit() == b"+OK mail.test POP3 server signing off (2 messages left)"
    assert server.messages("alice") == [stored[0], stored[2]]

    again = pop(server)
    assert again.stat() == (2, len(wire[0]) + len(wire[2]))
    assert again.uidl()[1] == [uids[0], b"2 " + uids[2].split()[1]]  # UIDs survive sessions
    again.quit()


def test_poplib_apop_and_errors(server: RunningServer) -> None:
    deliver(server, MESSAGES[:1])
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Invalid user name or password"):
        client.apop("alice", "wrong")
    assert client.apop("alice", "secret").startswith(b"+OK Maildrop has 1 message (")
    with pytest.raises(poplib.error_proto, match="no such message"):
        client.retr(2)
    with pytest.raises(poplib.error_proto, match="Unknown command"):
        client._shortcmd("LAST")
    client.quit()


def test_poplib_capa_and_stls(server: RunningServer) -> None:
    deliver(server, MESSAGES[:1])
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    caps = client.capa()
    assert {"TOP", "USER", "UIDL", "PIPELINING", "RESP-CODES", "STLS"} <= set(caps)
    assert caps["SASL"] == ["PLAIN", "LOGIN", "CRAM-MD5"]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    assert client.stls(context) == b"+OK Begin TLS negotiation"
    assert "STLS" not in client.capa()
    client.user("alice")
    client.pass_("secret")
    assert client.stat()[0] == 1
    client.quit()


def test_require_tls_for_auth(tmp_path: Path) -> None:
    with running_server(tmp_path, users=USERS, extra_args=["--require-tls-for-auth"]) as srv:
        client = poplib.POP3(srv.host, srv.pop3_port, timeout=10)
        assert "USER" not in client.capa() and "SASL" not in client.capa()
        with pytest.raises(poplib.error_proto, match="disallowed without TLS"):
            client.user("alice")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.stls(context)
        client.user("alice")
        assert client.pass_("secret").startswith(b"+OK Maildrop has 0 messages")
        client.quit()


# -- curl ----------------------------------------------------------------------------------
def curl(srv: RunningServer, path: str = "/", *args: str, login: str = "") -> bytes:
    url = f"pop3://alice{login}:secret@{srv.host}:{srv.pop3_port}{path}"
    proc = run_curl(["-sS", "--max-time", "20", *args, url], text=False)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


def test_curl_list_retr_uidl_dele(server: RunningServer) -> None:
    require_program("curl")
    deliver(server)
    stored = server.messages("alice")
    wire = [on_the_wire(p) for p in stored]
    assert curl(server) == b"".join(f"{i} {len(w)}\r\n".encode() for i, w in enumerate(wire, 1))
    for number, expected in enumerate(wire, 1):
        assert curl(server, f"/{number}") == expected  # curl unstuffs the dots
    uids = curl(server, "/", "-X", "UIDL")
    assert uids == b"".join(f"{i} {uid_for(p.name)}\r\n".encode()
                            for i, p in enumerate(stored, 1))
    assert all(b",S=" not in line for line in uids.splitlines())  # no size fields in a UIDL
    assert curl(server, "/", "-X", "TOP 3 0") == wire[2].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    curl(server, "/", "-I", "-X", "DELE 1")  # a single-line reply needs -I (PEERS.md)
    assert server.messages("alice") == stored[1:]
    assert curl(server) == b"".join(f"{i} {len(w)}\r\n".encode() for i, w in enumerate(wire[1:],
                                                                                       1))


@pytest.mark.parametrize("login", [";AUTH=+APOP", ";AUTH=PLAIN", ";AUTH=LOGIN",
                                   ";AUTH=CRAM-MD5"])
def test_curl_logins(server: RunningServer, login: str) -> None:
    require_program("curl")
    deliver(server, MESSAGES[1:2])
    (path,) = server.messages("alice")
    assert curl(server, "/1", login=login) == on_the_wire(path)


def test_curl_wrong_password(server: RunningServer) -> None:
    require_program("curl")
    proc = run_curl(["-sS", f"pop3://alice:nope@{server.host}:{server.pop3_port}/"], text=False)
    assert proc.returncode == 67, describe(proc)  # CURLE_LOGIN_DENIED


# -- fetchmail -----------------------------------------------------------------------------
_FETCHMAIL_RECEIVED = re.compile(rb"Received: from 127\.0\.0\.1 \[127\.0\.0\.1\]\n(?:\t.*\n)*")


def fetched(target: Path) -> list[bytes]:
    """What fetchmail delivered, without the Received: header it adds (it hands LF text)."""
    files = sorted((target / "new").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    return sorted(_FETCHMAIL_RECEIVED.sub(b"", p.read_bytes(), count=1) for p in files)


@pytest.mark.parametrize("protocol", ["pop3", "apop"])
def test_fetchmail_keep(server: RunningServer, tmp_path: Path, protocol: str) -> None:
    deliver(server)
    stored = server.messages("alice")
    idfile = tmp_path / "fetchids"
    proc = run_fetchmail(port=server.pop3_port, user="alice", password="secret",
                         deliver_to=tmp_path / "got", maildir=True, keep=True, idfile=idfile,
                         protocol=protocol)
    assert proc.returncode == 0, describe(proc)
    assert fetched(tmp_path / "got") == sorted(p.read_bytes() for p in stored)
    assert server.messages("alice") == stored
    # --keep remembers the UIDs: a second poll finds nothing new (exit 1 = no mail)
    proc = run_fetchmail(port=server.pop3_port, user="alice", password="secret",
                         deliver_to=tmp_path / "again", maildir=True, keep=True, idfile=idfile,
                         protocol=protocol)
    assert proc.returncode == 1, describe(proc)
    assert server.messages("alice") == stored


@pytest.mark.parametrize("protocol", ["pop3", "apop"])
def test_fetchmail_without_keep_empties_the_maildrop(server: RunningServer, tmp_path: Path,
                                                     protocol: str) -> None:
    deliver(server)
    expected = sorted(p.read_bytes() for p in server.messages("alice"))
    proc = run_fetchmail(port=server.pop3_port, user="alice", password="secret",
                         deliver_to=tmp_path / "got", maildir=True, keep=False,
                         protocol=protocol)
    assert proc.returncode == 0, describe(proc)
    assert "TOP 1 99999999" in proc.stdout or "RETR 1" in proc.stdout
    assert fetched(tmp_path / "got") == expected
    assert server.messages("alice") == []


def test_fetchmail_wrong_password(server: RunningServer, tmp_path: Path) -> None:
    proc = run_fetchmail(port=server.pop3_port, user="alice", password="nope",
                         deliver_to=tmp_path / "got", maildir=True)
    assert proc.returncode == 3, describe(proc)  # PS_AUTHFAIL
    assert "[AUTH] Invalid user name or password" in proc.stdout


# -- concurrency, drops, timeouts, a huge message ------------------------------------------
def test_second_session_gets_in_use(server: RunningServer) -> None:
    deliver(server, MESSAGES[:2])
    first = pop(server)
    second = poplib.POP3(server.host, server.pop3_port, timeout=10)
    second.user("alice")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_("secret")
    other_user = pop(server, "bob")  # other maildrops are not affected
    other_user.quit()
    first.quit()
    second.user("alice")
    assert second.pass_("secret").startswith(b"+OK Maildrop has 2 messages")
    second.quit()


def test_mail_arriving_during_a_session_waits_for_the_next(server: RunningServer) -> None:
    deliver(server, MESSAGES[:1])
    client = pop(server)
    count, octets = client.stat()
    deliver(server, MESSAGES[1:2])  # over SMTP, while the maildrop is locked
    assert client.stat() == (count, octets) and len(client.list()[1]) == 1
    client.dele(1)
    client.quit()
    again = pop(server)
    (path,) = server.messages("alice")
    assert again.stat() == (1, len(on_the_wire(path)))
    assert on_the_wire(path).endswith(MESSAGES[1])
    again.quit()


def login_when_free(srv: RunningServer, deadline: float = 5.0) -> poplib.POP3:
    """The server notices a dropped connection asynchronously: retry [IN-USE] briefly."""
    end = time.monotonic() + deadline
    while True:
        client = poplib.POP3(srv.host, srv.pop3_port, timeout=10)
        client.user("alice")
        try:
            client.pass_("secret")
            return client
        except poplib.error_proto as exc:
            client.close()
            if b"IN-USE" not in exc.args[0] or time.monotonic() > end:
                raise
            time.sleep(0.05)


def test_dropped_session_loses_nothing_and_frees_the_lock(server: RunningServer) -> None:
    deliver(server)
    stored = server.messages("alice")
    client = pop(server)
    client.dele(1)
    client.dele(2)
    client.sock.shutdown(socket.SHUT_RDWR)  # vanish without QUIT
    client.close()
    again = login_when_free(server)
    assert again.stat()[0] == 3
    assert server.messages("alice") == stored
    again.quit()


def test_autologout_removes_nothing(tmp_path: Path) -> None:
    with running_server(tmp_path, users=USERS, extra_args=["--timeout", "1"]) as srv:
        deliver(srv, MESSAGES[:1])
        stored = srv.messages("alice")
        with socket.create_connection((srv.host, srv.pop3_port), timeout=10) as sock:
            sock.sendall(b"USER alice\r\nPASS secret\r\nDELE 1\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        assert data.endswith(b"+OK message 1 deleted\r\n-ERR Disconnected for inactivity "
                             b"(autologout, RFC 1939 \xc2\xa73)\r\n")
        assert srv.messages("alice") == stored


def rss_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))


def test_huge_retr_is_streamed_with_bounded_memory(server: RunningServer) -> None:
    size = 64 * 1024 * 1024
    line = b"." + b"0123456789" * 9 + b"\n"  # every line is stuffed on the wire
    box = server.maildir("alice")
    (box / "new").mkdir(parents=True, exist_ok=True)
    path = box / "new" / "1000000000.M000001P1Q1.big"
    with open(path, "wb") as f:
        f.write(b"Subject: big\n\n")
        f.write(line * (size // len(line)))
    lines = size // len(line)
    expected = path.stat().st_size + lines + 2  # every LF gets a CR
    if Path(f"/proc/{server.pid}/status").exists():
        before = rss_kib(server.pid, "VmRSS")
    with socket.create_connection((server.host, server.pop3_port), timeout=30) as sock:
        sock.sendall(b"USER alice\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n")
        received = 0
        tail = b""
        started = time.monotonic()
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
            tail = (tail + chunk)[-200:]
        elapsed = time.monotonic() - started
    assert tail.endswith(b"\r\n..0123456789012345678901234567890123456789012345678901234567890"
                         b"12345678901234567890123456789\r\n.\r\n+OK mail.test POP3 server "
                         b"signing off (1 message left)\r\n")
    # status lines + the message + one stuffed dot per line + terminator
    assert received > expected + lines
    if Path(f"/proc/{server.pid}/status").exists():
        peak = rss_kib(server.pid, "VmHWM")
        print(f"server RSS before {before} KiB, peak {peak} KiB")
        assert peak - before < 32 * 1024, (before, peak)
    assert elapsed < 60
