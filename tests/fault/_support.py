"""Helpers for the fault tests: raw loopback clients and ``mailproto serve`` as a subprocess.

The tests here break things on purpose (a client that vanishes, a server killed with SIGKILL, a
full disk, a trickling client, too many connections) and check what is left behind: never a half
message in ``new/`` or ``cur/``, never a message lost or deleted that should not be.  Every wait is
bounded; every socket has a timeout; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST = "127.0.0.1"
USERS = {"alice": "secret", "bob": "hunter2"}
ROOT = Path(__file__).resolve().parents[2]


def have_pop3() -> bool:
    return importlib.util.find_spec("mailproto.net.pop3_listener") is not None


needs_pop3 = pytest.mark.skipif(not have_pop3(), reason="our POP3 server "
                                "(mailproto.net.pop3_listener) is not in place yet")


class Client:
    """A blocking line client for SMTP and POP3, with a timeout on every read."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed by the server; unread: {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def reply(self) -> tuple[int, bytes]:
        """One SMTP reply: (code, last line)."""
        for _ in range(200):
            text = self.line()
            if text[3:4] != b"-":
                return int(text[:3]), text
        raise AssertionError("endless SMTP reply")

    def cmd(self, line: bytes, expect: int | None = None) -> tuple[int, bytes]:
        self.send(line + b"\r\n")
        code, text = self.reply()
        if expect is not None:
            assert code == expect, f"{line!r} -> {text!r}, expected {expect}"
        return code, text

    def pop(self, line: bytes, ok: bool | None = True) -> bytes:
        self.send(line + b"\r\n")
        text = self.line()
        if ok is not None:
            assert text.startswith(b"+OK") == ok, f"{line!r} -> {text!r}"
        return text

    def pop_body(self) -> bytes:
        out = []
        for _ in range(1_000_000):
            text = self.line()
            if text == b".":
                return b"\r\n".join(out)
            out.append(text[1:] if text.startswith(b".") else text)
        raise AssertionError("endless multi-line response")

    def closed_by_peer(self, within: float) -> bool:
        """True if the server closes the connection within ``within`` seconds (reading and
        dropping whatever it still sends)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def reset(self) -> None:
        """Vanish abruptly: RST instead of FIN (SO_LINGER 0)."""
        linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")  # struct linger {1, 0}
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        self.sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def smtp_login(port: int, user: str = "alice") -> Client:
    c = Client(port)
    assert c.reply()[0] == 220
    c.send(b"EHLO fault.test\r\n")
    assert c.reply()[0] == 250
    token = base64.b64encode(f"\0{user}\0{USERS[user]}".encode())
    c.cmd(b"AUTH PLAIN " + token, 235)
    return c


def send_message(port: int, body: bytes, rcpt: str = "alice@local.test") -> tuple[int, bytes]:
    """A whole session; returns the reply after the final dot.  ``body``: CRLF, dot-stuffed."""
    with smtp_login(port) as c:
        c.cmd(b"MAIL FROM:<fault@client.test>", 250)
        c.cmd(f"RCPT TO:<{rcpt}>".encode(), 250)
        c.cmd(b"DATA", 354)
        c.send(body + b".\r\n")
        result = c.reply()
        c.cmd(b"QUIT")
        return result


def messages(maildir: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") if (maildir / sub).is_dir()
                  for p in (maildir / sub).iterdir())


def spool_files(data: Path) -> list[Path]:
    spool = data / ".spool"
    return sorted(spool.iterdir()) if spool.is_dir() else []


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def body_of(size: int) -> bytes:
    """A message of about ``size`` bytes, CRLF, with stuffed dot lines."""
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    head = b"From: <fault@client.test>\r\nSubject: fault test\r\n\r\n"
    body = (line * 9 + b"..stuffed\r\n") * max(1, (size - len(head)) // (len(line) * 9 + 11))
    return head + body


# -- mailproto serve in a subprocess -----------------------------------------------------------
@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    data: Path
    smtp_port: int
    pop3_port: int
    log: Path

    def maildir(self, user: str) -> Path:
        return self.data / user

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_server(data: Path, extra: Sequence[str] = (), timeout: float = 20.0) -> Server:
    """``python -m mailproto serve`` on free loopback ports (SMTP, and POP3 when it exists)."""
    data.mkdir(parents=True, exist_ok=True)
    (data / "users").write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    pop3 = have_pop3()
    log = data.parent / f"{data.name}-server.log"
    argv = [sys.executable, "-m", "mailproto", "serve", "--data", str(data),
            "--smtp-port", "0", "--pop3-port", "0" if pop3 else "-1",
            "--auth-failure-delay", "0", *extra]
    with open(log, "ab") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout is not None
    ports: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: "
                                 f"{log.read_text(errors='replace')[-3000:]}")
        chunk = proc.stdout.read(4096)
        if not chunk:
            time.sleep(0.01)
            continue
        buf += chunk
        if b"Ready" in buf:
            break
    else:
        kill(proc)
        raise AssertionError(f"server did not start: {buf!r}")
    for line in buf.decode(errors="replace").splitlines():
        words = line.split()
        if len(words) >= 4 and words[1:3] == ["listening", "on"]:
            ports[words[0]] = int(words[3].rpartition(":")[2])
    return Server(proc, data, ports.get("SMTP", 0), ports.get("POP3", 0), log)


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode
