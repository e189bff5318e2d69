"""The peer helpers in peers.py work against the real programs (no mailproto code involved).

Dovecot is checked with Python's poplib, aiosmtpd with smtplib; then the client programs
(swaks, curl, msmtp, fetchmail, s-nail, mutt) are checked against those two reference servers.
"""

from __future__ import annotations

import poplib
import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import (
    AiosmtpdServer,
    DovecotPOP3,
    describe,
    free_port,
    require_module,
    require_program,
    run_curl,
    run_fetchmail,
    run_msmtp,
    run_mutt,
    run_program,
    run_snail,
    run_swaks,
    traversable_tmpdir,
)

USERS = {"alice": "secret", "bob": "hunter2"}

# Two LF-ended messages as a local delivery agent would leave them in a Maildir; the second
# has a line starting with "." so the POP3 dot-stuffing round trip is exercised too.
MSG1 = b"From: carol@example.org\nTo: alice@example.org\nSubject: one\n\nfirst message\n"
MSG2 = (
    b"From: dave@example.org\nTo: alice@example.org\nSubject: two\n\n"
    b"second message\n.a line with a leading dot\nlast line\n"
)


def crlf_size(message: bytes) -> int:
    """Size of an LF-ended message as POP3 counts it: every LF becomes CRLF on the wire."""
    return len(message) + message.count(b"\n")


def maildir_files(maildir: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") for p in (maildir / sub).iterdir())


@pytest.fixture
def dovecot() -> Iterator[DovecotPOP3]:
    """Dovecot serving alice's Maildir with MSG1 and MSG2 written by hand into new/."""
    with DovecotPOP3(USERS) as dv:
        new = dv.maildir("alice") / "new"
        # Plain root-owned files written after start, the way a test author would: Dovecot
        # (running as mailproto-test) can still read them and rename them into cur/.
        (new / "1000000001.M1P1.test").write_bytes(MSG1)
        (new / "1000000002.M2P1.test").write_bytes(MSG2)
        yield dv


@pytest.fixture
def smtpd() -> Iterator[AiosmtpdServer]:
    with AiosmtpdServer(users=USERS) as server:
        yield server


# --------------------------------------------------------------------------------------------
# require_program / require_module / free_port / run_program


def test_missing_program_skips_with_package_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILPROTO_REQUIRE_PEERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install"):
        require_program("mailproto-no-such-program")


def test_missing_program_fails_when_peers_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROTO_REQUIRE_PEERS", "1")
    with pytest.raises(pytest.fail.Exception, match=r"is not installed \(apt-get install"):
        require_program("mailproto-no-such-program")


def test_missing_module_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILPROTO_REQUIRE_PEERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"pip install"):
        require_module("mailproto_no_such_module")
    monkeypatch.setenv("MAILPROTO_REQUIRE_PEERS", "1")
    with pytest.raises(pytest.fail.Exception, match=r"pip install"):
        require_module("mailproto_no_such_module")


@pytest.mark.real
def test_require_program_finds_sbin_without_it_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    require_program("dovecot")  # skip (or fail in CI) if missing
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert require_program("dovecot") in ("/usr/sbin/dovecot", "/sbin/dovecot")
    assert require_module("aiosmtpd").__name__ == "aiosmtpd"


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_run_program_timeout_shows_partial_output() -> None:
    with pytest.raises(AssertionError, match=r"(?s)timed out.*partial output"):
        run_program(["sh", "-c", "echo partial output; exec sleep 10"], timeout=0.5)


def test_run_program_keeps_crlf() -> None:
    proc = run_program(["printf", "a\\r\\nb"])
    assert proc.stdout == "a\r\nb"
    assert run_program(["printf", "\\377"], text=False).stdout == b"\xff"


# --------------------------------------------------------------------------------------------
# DovecotPOP3 with poplib


@pytest.mark.real
def test_dovecot_user_pass_stat_list_retr(dovecot: DovecotPOP3) -> None:
    pop = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    try:
        # PEERS.md: APOP's timestamp must end the greeting line for poplib to find it.
        assert pop.getwelcome().startswith(b"+OK") and pop.getwelcome().endswith(b">")
        pop.user("alice")
        pop.pass_("secret")
        assert pop.stat() == (2, crlf_size(MSG1) + crlf_size(MSG2))
        _, listing, _ = pop.list()
        assert listing == [f"1 {crlf_size(MSG1)}".encode(), f"2 {crlf_size(MSG2)}".encode()]
        for number, original in ((1, MSG1), (2, MSG2)):
            _, lines, octets = pop.retr(number)
            assert lines == original.rstrip(b"\n").split(b"\n")  # poplib undoes dot-stuffing
            assert octets == crlf_size(original)  # poplib counts CRLFs, not stuffed dots
        _, uidls, _ = pop.uidl()
        assert len(uidls) == 2
    finally:
        pop.quit()


@pytest.mark.real
def test_dovecot_apop_login(dovecot: DovecotPOP3) -> None:
    pop = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    try:
        assert pop.apop("alice", "secret").startswith(b"+OK")
        assert pop.stat()[0] == 2
    finally:
        pop.quit()
    assert "method=APOP" in dovecot.log_text()


@pytest.mark.real
def test_dovecot_dele_quit_removes_the_file(dovecot: DovecotPOP3) -> None:
    maildir = dovecot.maildir("alice")
    assert len(maildir_files(maildir)) == 2
    pop = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    pop.user("alice")
    pop.pass_("secret")
    pop.dele(1)
    assert len(maildir_files(maildir)) == 2  # nothing happens before QUIT (UPDATE state)
    pop.quit()
    remaining = maildir_files(maildir)
    assert [p.read_bytes() for p in remaining] == [MSG2]
    # PEERS.md: Dovecot adds its index and uidlist files next to cur/new/tmp.
    assert (maildir / "dovecot-uidlist").exists()


@pytest.mark.real
def test_dovecot_serves_a_given_root_and_leaves_nothing_running() -> None:
    with traversable_tmpdir() as root:
        # A Maildir built entirely by hand (by root) before the server starts.
        for sub in ("cur", "new", "tmp"):
            (root / "bob" / sub).mkdir(parents=True)
        (root / "bob" / "new" / "1.M1P1.test").write_bytes(MSG1)
        with DovecotPOP3(USERS, root) as dv:
            assert dv.maildir("bob") == root / "bob"
            instance = dv.workdir.name
            pop = poplib.POP3(dv.host, dv.port, timeout=10)
            pop.user("bob")
            pop.pass_("hunter2")
            assert pop.list()[1] == [f"1 {crlf_size(MSG1)}".encode()]
            pop.quit()
            workdir = dv.workdir
        assert not workdir.exists()
        assert "Login: user=<bob>, method=PLAIN" in dv.log_text()  # kept after stop
        assert [p.read_bytes() for p in maildir_files(root / "bob")] == [MSG1]
        assert not _processes_mentioning(instance), "a Dovecot process outlived the instance"


@pytest.mark.real
def test_dovecot_refuses_a_root_the_mail_user_cannot_reach(tmp_path: Path) -> None:
    # pytest's tmp_path sits under /tmp/pytest-of-root (0700): Dovecot's mail user is locked out.
    with pytest.raises(ValueError, match="traversable"):
        with DovecotPOP3(USERS, tmp_path / "mail"):
            pass


def _processes_mentioning(needle: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


# --------------------------------------------------------------------------------------------
# fetchmail against Dovecot


@pytest.mark.real
@pytest.mark.parametrize("protocol", ["pop3", "apop"])
def test_fetchmail_keep_into_file(dovecot: DovecotPOP3, protocol: str) -> None:
    with traversable_tmpdir() as out:
        mbox = out / "fetched"
        proc = run_fetchmail(port=dovecot.port, user="alice", password="secret",
                             protocol=protocol, keep=True, deliver_to=mbox)
        assert proc.returncode == 0, describe(proc)
        fetched = mbox.read_bytes()
    assert b"first message\n" in fetched and b"\n.a line with a leading dot\n" in fetched
    assert fetched.count(b"Received: from 127.0.0.1") == 2  # fetchmail's own header
    # fetchmail's "pop3" logs in with USER/PASS, which Dovecot logs as method=PLAIN.
    assert {"pop3": "method=PLAIN", "apop": "method=APOP"}[protocol] in dovecot.log_text()
    assert len(maildir_files(dovecot.maildir("alice"))) == 2  # --keep left them on the server


@pytest.mark.real
def test_fetchmail_into_maildir_without_keep_deletes(dovecot: DovecotPOP3) -> None:
    with traversable_tmpdir() as out:
        target = out / "Maildir"
        proc = run_fetchmail(port=dovecot.port, user="alice", password="secret",
                             keep=False, deliver_to=target, maildir=True)
        assert proc.returncode == 0, describe(proc)
        bodies = sorted(p.read_bytes().split(b"\n\n", 1)[1] for p in (target / "new").iterdir())
    assert bodies == sorted(m.split(b"\n\n", 1)[1] for m in (MSG1, MSG2))
    assert maildir_files(dovecot.maildir("alice")) == []
    assert "DELE" in proc.stdout


@pytest.mark.real
def test_fetchmail_idfile_remembers_kept_messages(dovecot: DovecotPOP3) -> None:
    with traversable_tmpdir() as out:

        def fetch() -> subprocess.CompletedProcess[str]:
            return run_fetchmail(port=dovecot.port, user="alice", password="secret", keep=True,
                                 deliver_to=out / "fetched", idfile=out / "ids")

        first, second = fetch(), fetch()
    assert first.returncode == 0, describe(first)
    assert second.returncode == 1, describe(second)  # 1 = no new mail


# --------------------------------------------------------------------------------------------
# s-nail and mutt against Dovecot


@pytest.mark.real
def test_snail_reads_pop3_with_apop(dovecot: DovecotPOP3) -> None:
    port = dovecot.port
    proc = run_snail(
        ["-#", "-R", "-Sv15-compat", f"-Spassword-alice@127.0.0.1:{port}=secret",
         "-f", f"pop3://alice@127.0.0.1:{port}"],
        input="print 2\nquit\n",
    )
    assert proc.returncode == 0, describe(proc)
    assert ".a line with a leading dot\n" in proc.stdout
    assert "method=APOP" in dovecot.log_text()  # PEERS.md: s-nail prefers APOP when offered


@pytest.mark.real
def test_mutt_reads_pop3_on_a_tty(dovecot: DovecotPOP3) -> None:
    with traversable_tmpdir() as home:
        settings = (
            f'set folder={home} spoolfile="" record="" header_cache="" '
            "ssl_starttls=no ssl_force_tls=no move=no pop_delete=no pop_pass=secret"
        )
        proc = run_mutt(["-R", "-e", settings, "-f", f"pop://alice@127.0.0.1:{dovecot.port}/",
                         "-e", "push <quit>"], tty=True)
    assert proc.returncode == 0, describe(proc)
    assert "Login: user=<alice>" in dovecot.log_text()
    assert len(maildir_files(dovecot.maildir("alice"))) == 2


# --------------------------------------------------------------------------------------------
# AiosmtpdServer with smtplib, then swaks, curl, msmtp, mutt


@pytest.mark.real
def test_aiosmtpd_smtplib_login_keeps_exact_bytes(smtpd: AiosmtpdServer) -> None:
    raw = b"Subject: exact\r\n\r\n.leading dot\r\nbody\r\n"
    with smtplib.SMTP(smtpd.host, smtpd.port, local_hostname="client.test", timeout=10) as c:
        assert "AUTH" in c.ehlo()[1].decode() or c.has_extn("auth")
        c.login("alice", "secret")
        c.sendmail("carol@example.org", ["alice@example.org", "bob@example.org"], raw)
    (msg,) = smtpd.wait_for(1)
    assert msg.content == raw  # dot-unstuffed, CRLF kept
    assert msg.mail_from == "carol@example.org"
    assert msg.rcpt_tos == ["alice@example.org", "bob@example.org"]
    assert (msg.login, msg.auth_mechanism, msg.helo) == ("alice", "PLAIN", "client.test")


@pytest.mark.real
def test_aiosmtpd_auth_required_and_maildir() -> None:
    with traversable_tmpdir() as tmp, AiosmtpdServer(
        users=USERS, auth_required=True, maildir=tmp / "Maildir"
    ) as server:
        with smtplib.SMTP(server.host, server.port, local_hostname="client.test") as c:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                c.sendmail("a@example.org", ["b@example.org"], b"Subject: no\r\n\r\nx\r\n")
            assert refused.value.smtp_code == 530
            c.login("bob", "hunter2")
            c.sendmail("a@example.org", ["b@example.org"], b"Subject: yes\r\n\r\nx\r\n")
        (msg,) = server.wait_for(1)
        assert msg.path is not None and msg.path.parent == tmp / "Maildir" / "new"
        assert msg.path.read_bytes() == b"Subject: yes\n\nx\n"  # Maildir files are LF-ended


@pytest.mark.real
def test_swaks_plain_and_auth_plain(smtpd: AiosmtpdServer, tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_bytes(b"Subject: from swaks\r\n\r\nhello from swaks\r\n")
    common = ["--server", f"127.0.0.1:{smtpd.port}", "--helo", "swaks.test",
              "--from", "swaks@example.org", "--to", "alice@example.org",
              "--data", f"@{body}"]
    plain = run_swaks(common)
    assert plain.returncode == 0, describe(plain)
    authed = run_swaks([*common, "--auth", "PLAIN", "--auth-user", "alice",
                        "--auth-password", "secret"])
    assert authed.returncode == 0, describe(authed)
    bad = run_swaks([*common, "--auth", "PLAIN", "--auth-user", "alice",
                     "--auth-password", "wrong"])
    assert bad.returncode == 28, describe(bad)  # PEERS.md: 28 = AUTH failed
    first, second = smtpd.wait_for(2)
    assert first.login is None and first.helo == "swaks.test"
    assert (second.login, second.auth_mechanism) == ("alice", "PLAIN")
    # swaks ends DATA with its own CRLF before the ".", even after a body ending in CRLF.
    assert second.content == body.read_bytes() + b"\r\n"
    assert len(smtpd.messages) == 2


@pytest.mark.real
def test_curl_smtp_with_user(smtpd: AiosmtpdServer, tmp_path: Path) -> None:
    raw = b"Subject: from curl\r\n\r\nhello from curl\r\n"
    upload = tmp_path / "message.eml"
    upload.write_bytes(raw)
    proc = run_curl(
        # PEERS.md: the EHLO name goes in the URL path, or curl uses the upload file's name.
        ["--silent", "--show-error", f"smtp://127.0.0.1:{smtpd.port}/curl.test",
         "--user", "bob:hunter2", "--mail-from", "curl@example.org",
         # A file, not stdin: only when it knows the size does curl add SIZE= to MAIL.
         "--mail-rcpt", "alice@example.org", "--upload-file", str(upload)],
    )
    assert proc.returncode == 0, describe(proc)
    (msg,) = smtpd.wait_for(1)
    assert (msg.login, msg.helo, msg.content) == ("bob", "curl.test", raw)
    assert msg.mail_options == [f"SIZE={len(raw)}"]  # PEERS.md: curl adds SIZE when offered


@pytest.mark.real
@pytest.mark.parametrize("mechanism", ["plain", "login"])
def test_msmtp_with_auth(smtpd: AiosmtpdServer, mechanism: str) -> None:
    # Complete headers: msmtp adds From:, Date: and Message-ID: to a message lacking them.
    raw = (b"From: msmtp@example.org\nDate: Mon, 30 Nov 2026 06:00:00 +0000\n"
           b"Message-ID: <1@example.org>\nSubject: from msmtp\n\nhello from msmtp\n")
    proc = run_msmtp(["alice@example.org"], raw, port=smtpd.port, from_addr="msmtp@example.org",
                     user="alice", password="secret", auth=mechanism)
    assert proc.returncode == 0, describe(proc)
    (msg,) = smtpd.wait_for(1)
    assert (msg.login, msg.auth_mechanism) == ("alice", mechanism.upper())
    assert msg.content == raw.replace(b"\n", b"\r\n")  # msmtp sends CRLF on the wire
    assert msg.helo == "client.test"


@pytest.mark.real
def test_mutt_sends_over_smtp(smtpd: AiosmtpdServer) -> None:
    with traversable_tmpdir() as home:
        # Quote empty values: in `set a= b=1` mutt would take "b=1" as the value of a.
        settings = (
            f'set folder={home} record="" smtp_url="smtp://bob@127.0.0.1:{smtpd.port}/" '
            "smtp_pass=hunter2 ssl_starttls=no ssl_force_tls=no from=bob@example.org"
        )
        proc = run_mutt(["-e", settings, "-s", "from mutt", "alice@example.org"],
                        input="hello from mutt\n")
    assert proc.returncode == 0, describe(proc)
    (msg,) = smtpd.wait_for(1)
    assert msg.login == "bob" and b"Subject: from mutt\r\n" in msg.content


# --------------------------------------------------------------------------------------------
# Last: a failed login (PEERS.md: failures slow down later logins; the helper disables that)


@pytest.mark.real
def test_dovecot_bad_password_is_refused_quickly(dovecot: DovecotPOP3) -> None:
    started = time.monotonic()
    pop = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    pop.user("alice")
    with pytest.raises(poplib.error_proto, match="AUTH"):
        pop.pass_("wrong")
    pop.quit()
    pop = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    pop.user("alice")
    pop.pass_("secret")
    pop.quit()
    assert time.monotonic() - started < 2.0  # default penalties: 2 s, then 4 s more
    assert "Password mismatch" in dovecot.log_text()  # auth_verbose = yes
