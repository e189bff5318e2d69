"""A full disk during delivery: the client gets a 4xx, and nothing partial is left anywhere.

Two ways to fill the disk: ENOSPC injected into the store of an in-process server (always runs),
and a real 1 MiB tmpfs as the data directory (needs root and ``mount``; skipped otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailproto import store as store_module
from mailproto.net.runner import BackgroundServer

from ._support import (
    USERS,
    body_of,
    kill,
    messages,
    send_message,
    smtp_login,
    spool_files,
    start_server,
    wait_until,
)


@pytest.fixture
def inproc(tmp_path: Path) -> Iterator[BackgroundServer]:
    data = tmp_path / "data"
    data.mkdir()
    users = tmp_path / "users"
    users.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    with BackgroundServer(data=data, users=users, smtp_port=0, pop3_port=None,
                          auth_failure_delay=0.0) as srv:
        yield srv


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _nothing_left(data: Path) -> None:
    assert not spool_files(data), "a spool file was left behind"
    for user in USERS:
        assert messages(data / user) == [], f"something was delivered to {user}"
        tmp = data / user / "tmp"
        assert not tmp.is_dir() or not list(tmp.iterdir()), f"a file was left in {user}/tmp"


def test_enospc_while_writing_the_spool(inproc: BackgroundServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = store_module.SpoolFile.write

    def write(self: store_module.SpoolFile, data: bytes) -> None:
        if self.size + len(data) > 100_000:
            raise _enospc()
        real_write(self, data)

    monkeypatch.setattr(store_module.SpoolFile, "write", write)
    code, text = send_message(inproc.smtp_port, body_of(400_000))
    assert code == 452, text
    _nothing_left(inproc.data)
    # Space again: the next message goes through.
    monkeypatch.setattr(store_module.SpoolFile, "write", real_write)
    code, text = send_message(inproc.smtp_port, body_of(2000))
    assert code == 250, text
    assert len(messages(inproc.data / "alice")) == 1


def test_enospc_when_opening_the_spool(inproc: BackgroundServer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def open_spool(self: store_module.Store) -> store_module.SpoolFile:
        raise _enospc()

    monkeypatch.setattr(store_module.Store, "open_spool", open_spool)
    with smtp_login(inproc.smtp_port) as c:
        c.cmd(b"MAIL FROM:<fault@client.test>", 250)
        c.cmd(b"RCPT TO:<alice@local.test>", 250)
        code, text = c.cmd(b"DATA")
        assert 400 <= code < 500, text
        c.cmd(b"NOOP", 250)  # the session goes on
    _nothing_left(inproc.data)


def test_enospc_while_placing_the_second_copy(inproc: BackgroundServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two recipients: the first copy is placed, the second fails.  The first must be taken
    back, or the client's retry after 452 would give alice the message twice."""
    place = getattr(store_module.SpoolFile, "_place", None)
    if place is None:
        pytest.skip("SpoolFile._place is gone: the delivery code changed shape")
    calls = {"n": 0}

    def failing_place(self: store_module.SpoolFile, *args: object, **kwargs: object) -> Path:
        calls["n"] += 1
        if calls["n"] == 2:
            raise _enospc()
        return place(self, *args, **kwargs)

    monkeypatch.setattr(store_module.SpoolFile, "_place", failing_place)
    with smtp_login(inproc.smtp_port) as c:
        c.cmd(b"MAIL FROM:<fault@client.test>", 250)
        c.cmd(b"RCPT TO:<alice@local.test>", 250)
        c.cmd(b"RCPT TO:<bob@local.test>", 250)
        c.cmd(b"DATA", 354)
        c.send(body_of(5000) + b".\r\n")
        code, text = c.reply()
        assert code == 452, text
    assert calls["n"] == 2
    _nothing_left(inproc.data)


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    path.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                               str(path)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)


def test_real_full_disk(tmp_path: Path) -> None:
    """The data directory on a 1 MiB tmpfs; a 2 MB message fills it."""
    with tiny_tmpfs(tmp_path / "mnt") as mnt:
        srv = start_server(mnt / "data")
        try:
            code, text = send_message(srv.smtp_port, body_of(2_000_000))
            assert code == 452, text
            assert wait_until(lambda: not spool_files(srv.data))
            _nothing_left(srv.data)
            # The failed message took its space back: a small one fits.
            code, text = send_message(srv.smtp_port, body_of(20_000))
            assert code == 250, text
            assert len(messages(srv.data / "alice")) == 1
        finally:
            code = kill(srv.proc)
        assert code == 0, srv.stderr()[-3000:]
        assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]
