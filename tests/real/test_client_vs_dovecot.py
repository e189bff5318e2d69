"""Our POP3 client and ``mailproto fetch`` against Dovecot, a server nobody here wrote.

One Dovecot for the module (it takes about a second to start), one user per test so the tests
do not see each other's mail.  Dovecot serves LF-ended Maildir files as CRLF and moves what it
has seen from ``new/`` to ``cur/`` (PEERS.md); a fetched Maildir file must equal the original.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import DovecotPOP3

from mailproto.errors import LocalProtocolError
from mailproto.net.pop3_client import POP3AuthenticationError, POP3Client, POP3ResponseError

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
USERS = {"alice": "secret", "bob": "hunter2", "carol": "tanstaaf", "dave": "pa ss",
         "erin": "sizes"}
MESSAGES = (
    b"From: a@example.test\nSubject: dots\n\n.\n..\n.x\n. \nend\n",
    b"Subject: 8bit\nContent-Type: text/plain; charset=utf-8\n\ncaf\xc3\xa9 \xe4\xf6\n",
    # Larger than any one read, with dots on both sides of every chunk boundary.
    b"Subject: big\n\n" + b"".join(b".%06d %s\n" % (i, b"x" * 70) for i in range(4000)),
)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotPOP3]:
    with DovecotPOP3(USERS) as dv:
        yield dv


def messages_in(dv: DovecotPOP3, user: str) -> list[Path]:
    box = dv.mail_root / user
    return [p for sub in ("new", "cur") for p in (box / sub).iterdir()
            if not p.name.startswith("dovecot")]


def fetch(dv: DovecotPOP3, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailproto", "fetch", "--server",
                           f"{dv.host}:{dv.port}", "--timeout", "10", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def fetched(maildir: Path) -> list[bytes]:
    assert not list((maildir / "tmp").iterdir())
    return sorted(p.read_bytes() for p in (maildir / "new").iterdir())


def test_fetch_user_pass_byte_for_byte_then_dele(dovecot: DovecotPOP3, tmp_path: Path) -> None:
    for message in MESSAGES:
        dovecot.add_message("alice", message)
    proc = fetch(dovecot, "--user", "alice", "--password", "secret", "--into",
                 str(tmp_path / "inbox"), "--save-transcript", str(tmp_path / "t.json"))
    assert proc.returncode == 0, proc.stderr + dovecot.log_text()
    assert fetched(tmp_path / "inbox") == sorted(MESSAGES)
    assert len(proc.stdout.splitlines()) == 3 and "Subject" not in proc.stdout
    # DELE only marks; Dovecot removed the files when QUIT took it to UPDATE.
    assert messages_in(dovecot, "alice") == []
    steps = json.loads((tmp_path / "t.json").read_text())["steps"]
    assert [s["raw"] for s in steps if s["direction"] == "C"][:2] == ["USER alice\r\n",
                                                                       "PASS secret\r\n"]
    assert steps[-1]["state_before"] == "TRANSACTION" and steps[-1]["state_after"] == "CLOSED"


def test_fetch_apop_keep_and_eml(dovecot: DovecotPOP3, tmp_path: Path) -> None:
    assert re.search(rb"<[^<>]+>\Z", dovecot.greeting)  # {PLAIN} passwords: APOP offered
    dovecot.add_message("bob", MESSAGES[0])
    proc = fetch(dovecot, "--user", "bob", "--apop", "hunter2", "--keep", "--into",
                 str(tmp_path / "kept"), "--transcript")
    assert proc.returncode == 0, proc.stderr + dovecot.log_text()
    assert fetched(tmp_path / "kept") == [MESSAGES[0]]
    assert re.search(r"^C: APOP bob [0-9a-f]{32}$", proc.stdout, re.M)
    assert "hunter2" not in proc.stdout
    assert len(messages_in(dovecot, "bob")) == 1  # --keep: still there
    proc = fetch(dovecot, "--user", "bob", "--apop", "hunter2", "--into", str(tmp_path / "eml"),
                 "--eml")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "eml" / "1.eml").read_bytes() == MESSAGES[0].replace(b"\n", b"\r\n")
    assert messages_in(dovecot, "bob") == []


def test_pop3client_methods(dovecot: DovecotPOP3) -> None:
    for message in MESSAGES:
        dovecot.add_message("carol", message)
    wire = [m.replace(b"\n", b"\r\n") for m in MESSAGES]
    with POP3Client(dovecot.host, dovecot.port, timeout=10) as pop:
        caps = pop.capa()
        assert caps["SASL"] == ["PLAIN", "LOGIN"] and "APOP" not in caps  # PEERS.md
        assert pop.apop("carol", "tanstaaf").positive and pop.state == "TRANSACTION"
        assert pop.stat() == (3, sum(len(w) for w in wire))
        sizes = pop.list()
        assert sorted(sizes.values()) == sorted(len(w) for w in wire)  # CRLF sizes
        assert pop.list(1) == {1: sizes[1]}
        uids = pop.uidl()
        assert len(set(uids.values())) == 3 and pop.uidl(2) == {2: uids[2]}
        bodies = {n: pop.retr(n).body for n in sizes}
        assert sorted(bodies.values()) == sorted(wire)
        [big] = [n for n, body in bodies.items() if body == wire[2]]
        assert pop.top(big, 1).body == b"Subject: big\r\n\r\n.000000 " + b"x" * 70 + b"\r\n"
        assert pop.dele(big).positive
        with pytest.raises(POP3ResponseError):
            pop.retr(big)  # Dovecot: -ERR Message is deleted.
        assert pop.rset().positive and pop.retr(big).body == wire[2]
        assert pop.noop().positive
        assert pop.dele(big).positive
        assert pop.quit().positive and pop.state == "CLOSED"
    left = sorted(p.read_bytes() for p in messages_in(dovecot, "carol"))
    assert left == sorted(MESSAGES[:2])
    states = [(s.direction, s.state_before, s.state_after) for s in pop.transcript]
    assert ("S", "AUTHORIZATION", "TRANSACTION") in states and states[-1][2] == "CLOSED"


def test_auth_pipelining_and_refusals(dovecot: DovecotPOP3) -> None:
    dovecot.add_message("dave", MESSAGES[1])
    for mech in ("PLAIN", "LOGIN"):
        with POP3Client(dovecot.host, dovecot.port, timeout=10) as pop:
            assert pop.auth(mech, "dave", "pa ss").positive
            responses = pop.send_line("STAT\r\nLIST\r\nUIDL\r\nTOP 1 0")  # PIPELINING
            assert [r.positive for r in responses] == [True] * 4
            assert responses[3].body == b"Subject: 8bit\r\nContent-Type: text/plain; " \
                b"charset=utf-8\r\n\r\n"
            with pytest.raises(LocalProtocolError):
                pop.dele("1\r\nDELE 2")  # type: ignore[arg-type]
    with POP3Client(dovecot.host, dovecot.port, timeout=10) as pop:
        pop.user("dave")
        assert pop.pass_("pa ss").positive  # RFC 1939 §7: spaces belong to the password
    # Last: a failed login costs time at Dovecot (PEERS.md).
    with POP3Client(dovecot.host, dovecot.port, timeout=10) as pop:
        with pytest.raises(POP3AuthenticationError) as refused:
            pop.auth("PLAIN", "dave", "wrong")
        assert refused.value.response.code == "AUTH" and pop.state == "AUTHORIZATION"
    assert len(messages_in(dovecot, "dave")) == 1


def test_dovecot_reads_the_sizes_our_store_writes(dovecot: DovecotPOP3, tmp_path: Path) -> None:
    """Our delivered file names carry ``,S=`` and ``,W=`` as Dovecot's do, and Dovecot trusts
    ``W=`` for LIST: its sizes must be the real CRLF sizes, as ours are."""
    import poplib

    from mailproto.pop3.wire import wire_size
    from mailproto.store import Store, Users

    store = Store(tmp_path / "ours", Users.parse("erin:x\n"))
    bodies = [b"Subject: lf\n\nbody\n", b"Subject: crlf\r\n\r\nbody\r\n",
              b"Subject: no end\n\nlast line", b"Subject: cr\n\na\rb\n", *MESSAGES]
    for body in bodies:
        spool = store.open_spool()
        spool.write(body)
        (path,) = spool.commit(["erin"])
        dovecot.add_message("erin", path.read_bytes(), name=path.name)
    expected = []
    for path in sorted((tmp_path / "ours" / "erin" / "new").iterdir()):
        with open(path, "rb") as f:
            expected.append(wire_size(f))
        assert path.name.endswith(f",W={expected[-1]}")
    client = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    try:
        client.user("erin")
        client.pass_("sizes")
        listed = sorted(int(line.split()[1]) for line in client.list()[1])
    finally:
        client.quit()
    assert listed == sorted(expected)
