"""STARTTLS interrupted: the client resets, or goes silent, in the middle of the TLS handshake.

Found by ``bench/fuzz.py``.  What must hold: the session's connection slot is freed (or a few
such clients lock everyone out with 421 "too many connections"), and SIGTERM still stops the
server with exit status 0.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from ._support import Client, Server, start_server, wait_until


def _starttls(port: int) -> Client:
    c = Client(port)
    assert c.reply()[0] == 220
    c.cmd(b"EHLO tls.test", 250)
    code, text = c.cmd(b"STARTTLS")
    if code == 502:
        c.close()
        pytest.skip("this server offers no STARTTLS")
    assert code == 220, text
    return c


def _greets(port: int) -> bool:
    with Client(port) as c:
        code, _ = c.reply()
        return code == 220


def _stops_cleanly(srv: Server, within: float = 5) -> int | None:
    srv.proc.send_signal(signal.SIGTERM)
    try:
        return srv.proc.wait(within)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait(10)
        return None
    finally:
        if srv.proc.stdout is not None:
            srv.proc.stdout.close()


def test_reset_during_the_handshake_frees_the_slot(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", ["--max-connections", "1"])
    try:
        c = _starttls(srv.smtp_port)
        c.reset()
        assert wait_until(lambda: _greets(srv.smtp_port), timeout=5), \
            "the slot of a client that reset during the TLS handshake was never freed"
    finally:
        code = _stops_cleanly(srv)
    assert code == 0, f"SIGTERM: exit {code}\n{srv.stderr()[-2000:]}"


def test_silence_during_the_handshake_times_out_and_frees_the_slot(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", ["--max-connections", "1", "--timeout", "1"])
    try:
        c = _starttls(srv.smtp_port)
        assert c.closed_by_peer(5), "the idle timeout did not end a stalled handshake"
        c.close()
        assert wait_until(lambda: _greets(srv.smtp_port), timeout=5), \
            "the slot of a client that stalled in the TLS handshake was never freed"
    finally:
        code = _stops_cleanly(srv)
    assert code == 0, f"SIGTERM did not stop the server (exit {code})\n{srv.stderr()[-2000:]}"
    assert "Traceback" not in srv.stderr(), srv.stderr()[-2000:]


def test_garbage_instead_of_a_handshake(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", ["--max-connections", "1"])
    try:
        c = _starttls(srv.smtp_port)
        c.send(b"MAIL FROM:<not-tls@client.test>\r\n" * 4)
        assert c.closed_by_peer(5)
        c.close()
        assert wait_until(lambda: _greets(srv.smtp_port), timeout=5)
        time.sleep(0.1)
    finally:
        code = _stops_cleanly(srv)
    assert code == 0, f"SIGTERM: exit {code}\n{srv.stderr()[-2000:]}"
