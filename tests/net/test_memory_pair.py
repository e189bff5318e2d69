"""The in-memory pair: deterministic, and the same bytes as over TCP apart from times and ports."""

from __future__ import annotations

import re
from pathlib import Path

from mailproto.net.memory import MemoryLab
from mailproto.net.pop3_client import POP3Client
from mailproto.net.runner import BackgroundServer
from mailproto.net.smtp_client import SMTPClient
from mailproto.transcript import Transcript

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
MESSAGE = b"From: alice@local.test\r\nTo: bob@local.test\r\nSubject: hi\r\n\r\n.dot\r\nbye\r\n"


def smtp_script(client: SMTPClient) -> Transcript:
    client.ehlo("client.example")
    client.login("alice", "alice-secret", mechanism="PLAIN")
    client.mail("alice@local.test")
    client.rcpt("bob@local.test")
    client.rcpt("nobody@local.test")
    client.data(MESSAGE)
    client.send_line("NOOP extra")
    client.quit()
    return client.transcript


def pop3_script(client: POP3Client) -> Transcript:
    client.user("bob")
    client.pass_("bob-secret")
    client.stat()
    client.list()
    client.retr(1)
    client.top(1, 0)
    client.dele(1)
    client.rset()
    client.docmd("RETR", "9")
    client.quit()
    return client.transcript


def normalised(transcript: Transcript) -> list[tuple[str, str, bytes, str, str]]:
    """Steps without their times; the clock-derived ids (queue id, APOP stamp) blanked."""
    out = []
    for step in transcript:
        raw = re.sub(rb"queued as [0-9A-F]+", b"queued as ID", step.raw)
        raw = re.sub(rb"<[0-9.]+@mail\.test>", b"<STAMP@mail.test>", raw)
        raw = re.sub(rb" id [0-9A-F]+", b" id ID", raw)
        raw = re.sub(rb"\w{3}, \d\d \w{3} \d{4} [\d:]{8} [+-]\d{4}", b"DATE", raw)
        out.append((step.direction, step.kind, raw, step.state_before, step.state_after))
    return out


def test_memory_pair_matches_tcp(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    (tmp_path / "data").mkdir()
    with MemoryLab(USERS) as lab:
        mem_smtp = smtp_script(lab.smtp_client())
        mem_pop = pop3_script(lab.pop3_client())
    with BackgroundServer(data=tmp_path / "data", users=users, auth_failure_delay=0) as srv:
        tcp_smtp = smtp_script(SMTPClient("127.0.0.1", srv.smtp_port,
                                          local_hostname="client.example").__enter__())
        tcp_pop = pop3_script(POP3Client("127.0.0.1", srv.pop3_port).__enter__())
    assert normalised(mem_smtp) == normalised(tcp_smtp)
    assert normalised(mem_pop) == normalised(tcp_pop)
    assert any(s.raw.startswith(b"550 ") for s in mem_smtp)
    assert any(s.raw.startswith(b"-ERR") for s in mem_pop)


def test_memory_pair_is_deterministic() -> None:
    runs = []
    for _ in range(2):
        with MemoryLab(USERS) as lab:
            runs.append((smtp_script(lab.smtp_client()).to_json(),
                         pop3_script(lab.pop3_client()).to_json()))
    assert runs[0] == runs[1]
    assert '"time": 1139204467.0' in runs[0][0]


def test_memory_pair_demo_store_and_starttls() -> None:
    with MemoryLab(demo=True) as lab:
        pop = lab.pop3_client()
        pop.user("username")
        assert pop.pass_("password").text == "Maildrop has 7 messages (291593 bytes)"
        assert pop.stat() == (7, 291593)
        pop.quit()
        smtp = lab.smtp_client()
        smtp.ehlo("x")
        smtp.starttls()
        assert smtp.core.tls and "STARTTLS" not in smtp.extensions
        assert smtp.transcript.steps[-1].state_after == "GREETED"
        smtp.quit()
