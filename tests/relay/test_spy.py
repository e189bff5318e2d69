"""The recorder: swaks on one side, our server on the other, the spy in between.  What the spy
saved must equal what each side saw: swaks's own transcript for the client, the Maildir for the
server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import require_program, run_swaks

from mailproto.net.runner import BackgroundServer
from mailproto.net.spy import Spy
from mailproto.transcript import Transcript


class SpyThread:
    def __init__(self, upstream: tuple[str, int], save: Path) -> None:
        self.spy = Spy(("127.0.0.1", 0), upstream, save)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.port = self.loop.run_until_complete(self.spy.start())[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.spy.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BackgroundServer]:
    users = tmp_path / "users"
    users.write_text("alice:alice-pw\n")
    (tmp_path / "data").mkdir()
    with BackgroundServer(data=tmp_path / "data", users=users, pop3_port=None,
                          auth_failure_delay=0) as srv:
        yield srv


def swaks_lines(output: str) -> tuple[list[str], list[str]]:
    """swaks prints ' -> ' for what it sent and '<-  ' for what it received."""
    sent = [line[4:] for line in output.splitlines() if line.startswith(" -> ")]
    got = [line[4:] for line in output.splitlines() if line.startswith("<-  ")]
    return sent, got


def wait_saved(spy: Spy, count: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while len(spy.saved) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(spy.saved) >= count, "the spy saved no transcript"


def test_spy_records_swaks_and_our_server(server: BackgroundServer, tmp_path: Path) -> None:
    require_program("swaks")
    spy = SpyThread(("127.0.0.1", server.smtp_port), tmp_path / "spy")
    try:
        proc = run_swaks(["--server", f"127.0.0.1:{spy.port}", "--from", "bob@elsewhere.test",
                          "--to", "alice@local.test", "--helo", "client.test",
                          "--auth", "PLAIN", "--auth-user", "alice", "--auth-password",
                          "alice-pw", "--body", "line one\n.dot line\nlast", "--pipeline"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        wait_saved(spy.spy, 1)
    finally:
        spy.stop()
    transcript = Transcript.load(str(spy.spy.saved[0]))
    assert transcript.protocol == "smtp"
    client = [s.text.rstrip("\r\n") for s in transcript if s.direction == "C"]
    server_lines = [line for s in transcript if s.direction == "S"
                    for line in s.text.rstrip("\r\n").split("\r\n")]
    sent, got = swaks_lines(proc.stdout)
    # swaks prints the DATA block as one ' -> ' line per message line.
    assert client == sent
    assert server_lines == got
    states = [s.state_after for s in transcript if s.direction == "S"]
    assert states[0] == "CONNECTED" and "RCPT" in states and states[-1] == "CLOSED"
    assert any(s.kind == "auth" or s.parsed.get("verb") == "AUTH" for s in transcript)
    # And the server got exactly the message the transcript shows.
    (stored,) = list((server.data / "alice" / "new").iterdir())
    data_lines = [s.raw for s in transcript if s.kind == "data"]
    wire = b"".join(data_lines)[: -len(b".\r\n")]
    body = stored.read_bytes().split(b"\n", 4)[4]  # after Return-Path and 3 Received lines
    assert body == wire.replace(b"\r\n..", b"\r\n.").replace(b"\r\n", b"\n")


def test_spy_stops_recording_at_starttls(server: BackgroundServer, tmp_path: Path) -> None:
    require_program("swaks")
    spy = SpyThread(("127.0.0.1", server.smtp_port), tmp_path / "spy")
    try:
        proc = run_swaks(["--server", f"127.0.0.1:{spy.port}", "--from", "a@b.test",
                          "--to", "alice@local.test", "--tls"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        wait_saved(spy.spy, 1)
    finally:
        spy.stop()
    transcript = Transcript.load(str(spy.spy.saved[0]))
    texts = [s.text for s in transcript]
    tls = [i for i, s in enumerate(transcript) if s.parsed.get("event") == "tls"]
    assert len(tls) == 1
    assert "encrypted" in texts[tls[0]]
    # Nothing after the handshake is readable protocol: only the closing note.
    after = transcript.steps[tls[0] + 1 :]
    assert all(s.direction == "*" for s in after)
    assert texts[tls[0] - 1].startswith("220 ")  # the reply to STARTTLS
