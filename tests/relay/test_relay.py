"""Relay between servers: three hops with three Received: lines, one bounce for a refused hop,
and a queued message that survives a restart and is delivered once."""

from __future__ import annotations

import email
import poplib
import socket
import time
from pathlib import Path

import pytest

from mailproto.net.runner import BackgroundServer
from mailproto.net.smtp_client import SMTPClient


def users_file(tmp: Path, name: str, text: str) -> Path:
    path = tmp / f"{name}.users"
    path.write_text(text)
    return path


def start(tmp: Path, name: str, domain: str, users: str, **opts: object) -> BackgroundServer:
    data = tmp / name
    data.mkdir()
    opts.setdefault("pop3_port", None)
    return BackgroundServer(data=data, users=users_file(tmp, name, users), domains=[domain],
                            hostname=f"mx.{domain}", auth_failure_delay=0, retry_base=0.2,
                            **opts).start()


def wait_for_files(folder: Path, count: int, timeout: float = 15) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(folder.glob("*")) if folder.exists() else []
        if len(files) >= count:
            return files
        time.sleep(0.05)
    raise AssertionError(f"{folder}: expected {count} file(s), found "
                         f"{len(list(folder.glob('*'))) if folder.exists() else 0}")


def wait_empty(folder: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while list(folder.glob("*")):
        assert time.monotonic() < deadline, f"{folder} is not empty"
        time.sleep(0.05)


MESSAGE = (b"From: Alice <alice@a.test>\r\nTo: Bob <bob@b.test>\r\nSubject: the journey\r\n"
           b"Message-ID: <journey@a.test>\r\n\r\nHello Bob,\r\n.a line with a dot\r\nbye\r\n")


def submit(server: BackgroundServer, to: str) -> None:
    with SMTPClient("127.0.0.1", server.smtp_port, local_hostname="alice-laptop") as client:
        client.login("alice", "alice-pw")
        client.sendmail("alice@a.test", [to], MESSAGE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_three_hops_then_pop3(tmp_path: Path) -> None:
    b = start(tmp_path, "b", "b.test", "bob:bob-pw\n", pop3_port=0)
    r = start(tmp_path, "r", "r.test", "relay:x\n", relay_domains=["b.test"],
              routes={"b.test": ("127.0.0.1", b.smtp_port)})
    a = start(tmp_path, "a", "a.test", "alice:alice-pw\n",
              routes={"b.test": ("127.0.0.1", r.smtp_port)})
    try:
        submit(a, "bob@b.test")
        (stored,) = wait_for_files(b.data / "bob" / "new", 1)
        data = stored.read_bytes()
        msg = email.message_from_bytes(data)
        received = msg.get_all("Received")
        assert len(received) == 3, received
        assert "by mx.b.test" in received[0] and "by mx.r.test" in received[1]
        assert "by mx.a.test" in received[2] and "with ESMTPA" in received[2]
        assert msg["Return-Path"] == "<alice@a.test>"
        assert data.count(b"Return-Path:") == 1  # relays strip it; only the last hop adds one
        body = data.split(b"\n\n", 1)[1]
        assert body == b"Hello Bob,\n.a line with a dot\nbye\n"
        # Nothing left queued anywhere (a relay removes its copy just after the next 250).
        wait_empty(a.data / ".outbox" / "new")
        wait_empty(r.data / ".outbox" / "new")
        # The last leg: POP3.
        pop = poplib.POP3("127.0.0.1", b.pop3_port)
        pop.user("bob")
        pop.pass_("bob-pw")
        _, lines, _ = pop.retr(1)
        pop.quit()
        assert b"\r\n".join(lines) + b"\r\n" == data.replace(b"\n", b"\r\n")
    finally:
        for server in (a, r, b):
            server.stop()


def test_refused_hop_gives_exactly_one_bounce(tmp_path: Path) -> None:
    b = start(tmp_path, "b", "b.test", "bob:bob-pw\n")
    a = start(tmp_path, "a", "a.test", "alice:alice-pw\n",
              routes={"b.test": ("127.0.0.1", b.smtp_port)})
    try:
        submit(a, "nobody@b.test")
        (bounce,) = wait_for_files(a.data / "alice" / "new", 1)
        time.sleep(1.0)  # a second bounce would have arrived by now
        assert len(list((a.data / "alice" / "new").glob("*"))) == 1
        dsn = email.message_from_bytes(bounce.read_bytes())
        assert dsn["Return-Path"] == "<>"
        assert dsn["From"] == "Mail Delivery System <MAILER-DAEMON@mx.a.test>"
        assert dsn.get_content_type() == "multipart/report"
        status = dsn.get_payload()[1]
        assert status.get_content_type() == "message/delivery-status"
        text = bounce.read_bytes().decode()
        assert "Final-Recipient: rfc822; nobody@b.test" in text
        assert "Status: 5.1.1" in text and "Action: failed" in text
        assert "Subject: the journey" in text  # the original headers come back
        assert not list((a.data / ".outbox" / "new").glob("*"))
        assert not list((b.data).glob("nobody"))
    finally:
        a.stop()
        b.stop()


def test_queued_message_survives_restart_and_is_delivered_once(tmp_path: Path) -> None:
    port_b = free_port()
    (tmp_path / "a").mkdir()
    users_a = users_file(tmp_path, "a", "alice:alice-pw\n")
    opts = dict(data=tmp_path / "a", users=users_a, domains=["a.test"], hostname="mx.a.test",
                pop3_port=None, auth_failure_delay=0, retry_base=0.2,
                routes={"b.test": ("127.0.0.1", port_b)})
    a = BackgroundServer(**opts).start()  # type: ignore[arg-type]
    try:
        submit(a, "bob@b.test")
        wait_for_files(a.data / ".outbox" / "new", 1)
        wait_for_files(a.data / ".outbox" / "state", 1)  # at least one refused attempt
    finally:
        a.stop()
    queued = list((a.data / ".outbox" / "new").glob("*"))
    assert len(queued) == 1, "the message must still be queued after the stop"
    state = list((a.data / ".outbox" / "state").glob("*.json"))
    assert state and '"attempts": ' in state[0].read_text()

    b = start(tmp_path, "b", "b.test", "bob:bob-pw\n", smtp_port=port_b)
    a = BackgroundServer(**opts).start()  # type: ignore[arg-type]
    try:
        (stored,) = wait_for_files(b.data / "bob" / "new", 1)
        time.sleep(1.0)
        assert len(list((b.data / "bob" / "new").glob("*"))) == 1, "delivered twice"
        assert not list((a.data / ".outbox" / "new").glob("*"))
        assert b"Subject: the journey" in stored.read_bytes()
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("sender", ["alice@a.test"])
def test_no_route_bounces(tmp_path: Path, sender: str) -> None:
    a = start(tmp_path, "a", "a.test", "alice:alice-pw\n")
    try:
        submit(a, "carol@nowhere.test")
        (bounce,) = wait_for_files(a.data / "alice" / "new", 1)
        assert b"Status: 5.4.4" in bounce.read_bytes()
    finally:
        a.stop()


def test_fault_rcpt_452_is_retried_then_delivered(tmp_path: Path) -> None:
    """The second recipient gets 452 at the first attempt; the retry carries it alone."""
    b = start(tmp_path, "b", "b.test", "bob:bob-pw\ncarol:carol-pw\n", fault="rcpt-452")
    a = start(tmp_path, "a", "a.test", "alice:alice-pw\n",
              routes={"b.test": ("127.0.0.1", b.smtp_port)})
    try:
        with SMTPClient("127.0.0.1", a.smtp_port) as client:
            client.login("alice", "alice-pw")
            client.sendmail("alice@a.test", ["bob@b.test", "carol@b.test"], MESSAGE)
        wait_for_files(b.data / "bob" / "new", 1)
        wait_for_files(b.data / "carol" / "new", 1)
        time.sleep(0.5)
        assert len(list((b.data / "bob" / "new").glob("*"))) == 1
        assert not (a.data / "alice").exists() or not list((a.data / "alice" / "new").glob("*"))
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("fault", ["data-421", "drop-mid-data"])
def test_fault_that_never_heals_bounces_once_at_expiry(tmp_path: Path, fault: str) -> None:
    b = start(tmp_path, "b", "b.test", "bob:bob-pw\n", fault=fault)
    a = start(tmp_path, "a", "a.test", "alice:alice-pw\n", queue_lifetime=1.0,
              routes={"b.test": ("127.0.0.1", b.smtp_port)})
    try:
        submit(a, "bob@b.test")
        (bounce,) = wait_for_files(a.data / "alice" / "new", 1)
        text = bounce.read_bytes().decode()
        assert "Status: 4.4.7" in text and "message expired" in text
        assert not list((b.data / "bob" / "new").glob("*")), "a faulty hop delivered"
        time.sleep(0.5)
        assert len(list((a.data / "alice" / "new").glob("*"))) == 1
    finally:
        a.stop()
        b.stop()
