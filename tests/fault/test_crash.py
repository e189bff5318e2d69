"""``mailproto serve`` killed with SIGKILL in the middle of deliveries.

What must hold: no half-written message ever appears in ``new/`` or ``cur/``; every message the
server acknowledged with 250 is there, whole (the page cache survives a process kill, so this
holds even without --fsync); and the next start cleans the spool and serves normally.
"""

from __future__ import annotations

import hashlib
import random
import re
import signal
import threading
import time
from pathlib import Path

from ._support import (
    Client,
    body_of,
    kill,
    messages,
    send_message,
    smtp_login,
    spool_files,
    start_server,
    wait_until,
)


def test_sigkill_during_a_large_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data, ["--max-message-size", str(64 << 20)])
    c = smtp_login(srv.smtp_port)
    c.cmd(b"MAIL FROM:<fault@client.test>", 250)
    c.cmd(b"RCPT TO:<alice@local.test>", 250)
    c.cmd(b"DATA", 354)
    chunk = body_of(1 << 20)
    try:
        for _ in range(8):
            c.send(chunk)

        def spooled() -> bool:
            files = spool_files(data)
            return bool(files) and files[0].stat().st_size > 2 << 20

        assert wait_until(spooled, timeout=10), "the message never reached the spool"
        kill(srv.proc, signal.SIGKILL)
    finally:
        c.close()
    assert srv.proc.returncode == -signal.SIGKILL
    assert messages(data / "alice") == [], "a half message is visible after the crash"
    assert spool_files(data), "expected the crash to leave the spool file (else the test is moot)"

    again = start_server(data, ["--max-message-size", str(64 << 20)])
    try:
        assert spool_files(data) == [], "the next start did not clean the spool"
        assert messages(data / "alice") == []
        code, text = send_message(again.smtp_port, body_of(3000))
        assert code == 250, text
        assert len(messages(data / "alice")) == 1
    finally:
        code = kill(again.proc)
    assert code == 0, again.stderr()[-3000:]


_ID = re.compile(rb"Message-ID: <(\d+)\.(\d+)@fault\.test>")


def _numbered(round_no: int, n: int, size: int) -> bytes:
    body = body_of(size)
    digest = hashlib.sha256(body).hexdigest().encode()
    return (f"Message-ID: <{round_no}.{n}@fault.test>\r\n".encode() + body
            + b"END " + digest + b"\r\n")


def _check_whole(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    match = _ID.search(raw)
    assert match, f"{path.name}: no Message-ID: a half message?"
    start = raw.index(b"\n", match.end()) + 1
    end = raw.rindex(b"END ")
    body = raw[start:end].replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
    digest = raw[end + 4 :].strip()
    assert hashlib.sha256(body).hexdigest().encode() == digest, f"{path.name} is not whole"
    return int(match.group(1)), int(match.group(2))


def test_sigkill_at_random_moments_during_a_stream_of_messages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(20240611)
    acknowledged: set[tuple[int, int]] = set()
    sent: set[tuple[int, int]] = set()
    for round_no in range(4):
        srv = start_server(data)
        assert spool_files(data) == [], "the spool was not cleaned at start"
        stop = threading.Event()

        def client(port: int = srv.smtp_port, round_no: int = round_no,
                   stop: threading.Event = stop) -> None:
            n = 0
            while not stop.is_set() and n < 10_000:
                try:
                    with smtp_login(port) as c:
                        while not stop.is_set() and n < 10_000:
                            n += 1
                            c.cmd(b"MAIL FROM:<fault@client.test>", 250)
                            c.cmd(b"RCPT TO:<alice@local.test>", 250)
                            c.cmd(b"RCPT TO:<bob@local.test>", 250)
                            c.cmd(b"DATA", 354)
                            sent.add((round_no, n))
                            c.send(_numbered(round_no, n, rng.choice([500, 5000, 300_000]))
                                   + b".\r\n")
                            if c.reply()[0] == 250:
                                acknowledged.add((round_no, n))
                except (OSError, AssertionError, ValueError):
                    return  # the server is gone

        threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 1.0))
        kill(srv.proc, signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(10)
        for user in ("alice", "bob"):
            present = {_check_whole(p) for p in messages(data / user)}
            assert acknowledged <= present, f"{user}: acknowledged but lost: " \
                                            f"{sorted(acknowledged - present)[:5]}"
            assert present <= sent
    assert acknowledged, "no message was acknowledged at all: the test proved nothing"
    final = start_server(data)
    try:
        assert spool_files(data) == []
        with Client(final.smtp_port) as c:
            assert c.reply()[0] == 220
            c.cmd(b"QUIT", 221)
    finally:
        assert kill(final.proc) == 0, final.stderr()[-3000:]
