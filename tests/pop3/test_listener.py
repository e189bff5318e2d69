"""The POP3 listener on the asyncio driver, in-process: policy from ``mailproto serve``'s options,
failed-login delays, and a long RETR streamed to a slow reader with bounded buffers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mailproto.net import asyncio_server
from mailproto.net.pop3_listener import DEFAULT_TIMEOUT, pop3_config, pop3_listener
from mailproto.net.server import MailServer, ServeOptions

from ._support import wire

BIG = b"Subject: big\n\n" + (b".line of forty-two octets, stuffed........\n" * 200_000)


def make_server(tmp_path: Path, **options: object) -> MailServer:
    users = tmp_path / "users"
    users.write_text("alice:secret\nbob:hunter2\n")
    opts = ServeOptions(smtp_port=None, pop3_port=0, data=tmp_path / "data", users=users,
                        starttls=False, auth_failure_delay=0.0)
    for key, value in options.items():
        setattr(opts, key, value)
    server = MailServer(opts)
    box = server.store.maildir("alice").path
    (box / "new" / "1.M1P1.test").write_bytes(BIG)
    return server


def test_config_follows_the_serve_options(tmp_path: Path) -> None:
    server = make_server(tmp_path, host="0.0.0.0", hostname="pop.example", timeout=None,
                         require_tls_for_auth=False, auth_failure_delay=0.5)
    config = pop3_config(server, tls_available=True)
    assert config.hostname == "pop.example" and config.stls
    assert not config.allow_plaintext_auth  # not loopback: no passwords in the clear
    assert config.auth_failure_delay == 0.5
    assert pop3_listener(server, None).timeout == DEFAULT_TIMEOUT == 600
    (tmp_path / "2").mkdir()
    loop_server = make_server(tmp_path / "2", timeout=5.0)
    assert pop3_config(loop_server, False).allow_plaintext_auth
    assert pop3_listener(loop_server, None).timeout == 5.0


async def _serve(server: MailServer) -> tuple[str, int]:
    await server.start()
    return server.addresses["POP3"]


async def _read_until(reader: asyncio.StreamReader, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = await reader.read(65536)
        assert chunk, data[-200:]
        data += chunk
    return data


def test_slow_reader_gets_the_whole_message(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pauses = []
    real_pause = asyncio_server.CoreProtocol.pause_writing

    def spy(self: asyncio_server.CoreProtocol) -> None:
        pauses.append(time.monotonic())
        real_pause(self)

    monkeypatch.setattr(asyncio_server.CoreProtocol, "pause_writing", spy)
    server = make_server(tmp_path)

    async def main() -> bytes:
        host, port = await _serve(server)
        reader, writer = await asyncio.open_connection(host, port)
        await reader.readline()
        writer.write(b"USER alice\r\nPASS secret\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
        writer.transport.pause_reading()  # the socket buffers fill up: the server must wait
        await asyncio.sleep(0.2)
        writer.transport.resume_reading()
        data = b""
        reads = 0
        while not data.endswith(b"signing off (1 message left)\r\n"):
            chunk = await reader.read(4096)
            assert chunk
            data += chunk
            reads += 1
            if reads % 64 == 0:  # a reader slower than the server: its writes back up
                await asyncio.sleep(0.001)
        writer.close()
        server.stop()
        return data

    data = asyncio.run(main())
    plain, body = wire(BIG)
    assert data.split(b"\r\n", 2)[2] == (f"+OK {len(plain)} octets\r\n".encode() + body
                                         + b"+OK\r\n+OK mail.test POP3 server signing off "
                                           b"(1 message left)\r\n")
    assert pauses, "the transport never pushed back: the test did not test flow control"


def test_failed_login_is_answered_late_and_in_order(tmp_path: Path) -> None:
    server = make_server(tmp_path, auth_failure_delay=0.3)

    async def main() -> tuple[bytes, float]:
        host, port = await _serve(server)
        reader, writer = await asyncio.open_connection(host, port)
        await reader.readline()
        started = time.monotonic()
        writer.write(b"USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\nSTAT\r\n")
        data = await _read_until(reader, b"+OK 1 " + str(len(wire(BIG)[0])).encode() + b"\r\n")
        elapsed = time.monotonic() - started
        writer.close()
        server.stop()
        return data, elapsed

    data, elapsed = asyncio.run(main())
    assert data.split(b"\r\n")[:3] == [b"+OK Password required for alice",
                                       b"-ERR [AUTH] Invalid user name or password",
                                       b"+OK Password required for alice"]
    assert elapsed >= 0.3


def test_reader_that_stops_is_logged_out_and_the_lock_freed(tmp_path: Path) -> None:
    server = make_server(tmp_path, timeout=0.5)

    async def main() -> bytes:
        host, port = await _serve(server)
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
        writer.transport.pause_reading()  # never read the message
        writer.write(b"USER alice\r\nPASS secret\r\nDELE 1\r\nRETR 1\r\n")
        await asyncio.sleep(0.1)
        writer.transport.resume_reading()
        await reader.readline()
        writer.transport.pause_reading()
        await asyncio.sleep(1.5)  # the autologout fires while the server is blocked writing
        r2, w2 = await asyncio.open_connection(host, port)
        await r2.readline()
        w2.write(b"USER alice\r\nPASS secret\r\nQUIT\r\n")
        data = await _read_until(r2, b"left)\r\n")
        writer.close()
        w2.close()
        server.stop()
        return data

    data = asyncio.run(main())
    assert b"+OK Maildrop has 1 message" in data  # not [IN-USE], and nothing was removed
