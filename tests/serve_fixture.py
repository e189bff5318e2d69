"""Run ``mailproto serve`` as a subprocess for tests that talk to it over real TCP.

    with running_server(tmp_path, users={"alice": "secret"}) as srv:
        smtplib.SMTP("127.0.0.1", srv.smtp_port) ...
        poplib.POP3("127.0.0.1", srv.pop3_port) ...
        srv.maildir("alice")          # Path of alice's Maildir under srv.data

The server listens on free ports (``--smtp-port 0 --pop3-port 0``) and says which on stdout
(``SMTP listening on 127.0.0.1:NNNN``); failed logins are not delayed (``--auth-failure-delay 0``)
unless ``extra_args`` says otherwise.  On exit it is stopped with SIGTERM and must exit 0: a
server that crashes or hangs on shutdown fails the test that used it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_LISTENING = re.compile(r"(SMTP|POP3) listening on ([\d.]+|\[[0-9a-fA-F:]+\]|[0-9a-fA-F:]+):(\d+)")
_READY = "Ready in"


@dataclass
class RunningServer:
    """What a test needs to talk to the server it started."""

    process: subprocess.Popen[str]
    data: Path
    users_file: Path | None
    host: str = "127.0.0.1"
    smtp_port: int = 0
    pop3_port: int = 0
    #: Every line the server printed on stdout so far (the demo accounts, for ``--demo``).
    output: list[str] = field(default_factory=list)
    #: And on stderr (tracebacks, log messages).
    errors: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def maildir(self, user: str) -> Path:
        return self.data / user

    def messages(self, user: str) -> list[Path]:
        """Files in the user's ``new/`` and ``cur/``, sorted by name (arrival order)."""
        box = self.maildir(user)
        return sorted((p for sub in ("new", "cur") if (box / sub).is_dir()
                       for p in (box / sub).iterdir()), key=lambda p: p.name)

    def stderr_text(self) -> str:
        return "".join(self.errors)


def write_users(path: Path, users: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{name}:{password}\n" for name, password in users.items()),
                    encoding="utf-8")
    return path


@contextlib.contextmanager
def running_server(tmp_path: Path, users: Mapping[str, str] | None = None,
                   extra_args: Sequence[str] = (), *, demo: bool = False,
                   start_timeout: float = 15.0, stop_timeout: float = 10.0,
                   ) -> Iterator[RunningServer]:
    """Start ``python -m mailproto serve`` on free loopback ports; yield a RunningServer.

    ``users`` (name → password) becomes the users file; with ``demo=True`` the server makes its
    own demo store (``--demo``) in ``tmp_path/data``.  ``extra_args`` go on the command line as
    they are (``--require-tls-for-auth``, ``--timeout 2`` ...).
    """
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "mailproto", "serve", "--smtp-port", "0", "--pop3-port", "0",
            "--data", str(data), "--auth-failure-delay", "0"]
    users_file = None
    if demo:
        argv.append("--demo")
    if users is not None or not demo:
        users_file = write_users(tmp_path / "users", users or {})
        argv += ["--users", str(users_file)]
    argv += list(extra_args)
    # Later options win in argparse: an explicit --auth-failure-delay in extra_args overrides ours.
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, stdin=subprocess.DEVNULL)
    server = RunningServer(proc, data, users_file)
    threading.Thread(target=lambda: server.errors.extend(proc.stderr or []), daemon=True).start()
    try:
        _wait_ready(server, start_timeout)
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: server.output.extend(proc.stdout or []),
                         daemon=True).start()
        yield server
    finally:
        code = _stop(proc, stop_timeout)
    assert code == 0, (f"mailproto serve exited with {code}\n--- stdout ---\n"
                       + "".join(server.output) + "--- stderr ---\n" + server.stderr_text())


def _wait_ready(server: RunningServer, timeout: float) -> None:
    proc = server.process
    assert proc.stdout is not None
    lines: list[str] = []
    result: dict[str, BaseException] = {}

    def read() -> None:
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if line.startswith(_READY):
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    server.output.extend(lines)
    if reader.is_alive() or not any(line.startswith(_READY) for line in lines):
        _stop(proc, 5)
        time.sleep(0.1)
        raise AssertionError("mailproto serve did not start\n--- stdout ---\n" + "".join(lines)
                             + "--- stderr ---\n" + server.stderr_text())
    for line in lines:
        match = _LISTENING.search(line)
        if match:
            server.host = match.group(2).strip("[]")
            port = int(match.group(3))
            if match.group(1) == "SMTP":
                server.smtp_port = port
            else:
                server.pop3_port = port


def _stop(proc: subprocess.Popen[str], timeout: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9
