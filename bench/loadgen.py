"""The load generator: loopback asyncio SMTP and POP3 clients, the same for every server.

SMTP: each connection says EHLO, logs in with AUTH PLAIN, then sends its share of the messages.
When the server advertises PIPELINING (RFC 2920) MAIL, RCPT and DATA go out in one write and the
client then reads their three replies; otherwise it waits for each reply (lock-step).  The latency
of a message runs from the first byte of MAIL to the 250 after the final dot.

POP3: each connection logs in as its own user (a maildrop is locked by one session), then RETRs
every message; with PIPELINING in CAPA (RFC 2449) it keeps a window of RETRs in flight.

Every loop is bounded in count and by a deadline; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .common import LOOPBACK, USERS, percentile

CRLF = b"\r\n"


class ProtocolFailure(Exception):
    """The server said something we did not expect."""


class Conn:
    """A buffered line reader over an asyncio stream, with SMTP and POP3 reply readers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()

    @classmethod
    async def open(cls, port: int, timeout: float = 30) -> Conn:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(LOOPBACK, port, limit=1 << 20), timeout)
        return cls(reader, writer)

    async def _fill(self) -> None:
        chunk = await self.reader.read(1 << 18)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    async def line(self) -> bytes:
        while True:
            i = self.buf.find(CRLF)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return out
            if len(self.buf) > 1 << 20:
                raise ProtocolFailure("reply line longer than 1 MiB")
            await self._fill()

    async def smtp_reply(self) -> tuple[int, list[bytes]]:
        lines: list[bytes] = []
        for _ in range(1000):
            text = await self.line()
            lines.append(text)
            if text[3:4] != b"-":
                try:
                    return int(text[:3]), lines
                except ValueError:
                    raise ProtocolFailure(f"not an SMTP reply: {text[:80]!r}") from None
        raise ProtocolFailure("reply of more than 1000 lines")

    async def expect(self, code: int, what: str) -> list[bytes]:
        got, lines = await self.smtp_reply()
        if got != code:
            raise ProtocolFailure(f"{what}: expected {code}, got {lines[-1][:120]!r}")
        return lines

    async def pop3_status(self, what: str) -> bytes:
        text = await self.line()
        if not text.startswith(b"+OK"):
            raise ProtocolFailure(f"{what}: {text[:120]!r}")
        return text

    async def pop3_body(self) -> bytes:
        """The rest of a multi-line response after its status line, dot-stuffing kept."""
        while True:
            if self.buf[:3] == b".\r\n":
                del self.buf[:3]
                return b""
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                out = bytes(self.buf[: i + 2])
                del self.buf[: i + 5]
                return out
            await self._fill()

    async def pop3_body_stream(self, sink: Callable[[bytes], None]) -> int:
        """Like :meth:`pop3_body` for a huge body: feed it to ``sink`` in pieces of whole lines
        (still dot-stuffed), keeping little in memory.  Returns the number of body bytes."""
        total = 0
        while True:
            if self.buf[:3] == b".\r\n":  # the buffer always starts at a line start
                del self.buf[:3]
                return total
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                piece = bytes(self.buf[: i + 2])
                del self.buf[: i + 5]
                sink(piece)
                return total + len(piece)
            cut = self.buf.rfind(b"\r\n") + 2
            if cut >= 2:
                piece = bytes(self.buf[:cut])
                del self.buf[:cut]
                sink(piece)
                total += len(piece)
            elif len(self.buf) > 1 << 20:
                raise ProtocolFailure("a body line longer than 1 MiB")
            await self._fill()

    def close(self) -> None:
        self.writer.close()


# -- messages ------------------------------------------------------------------------------------
def make_message(size: int = 2048, seq: int = 0) -> bytes:
    """An RFC 5322 message of about ``size`` bytes, CRLF, already dot-stuffed, ending ".\\r\\n"."""
    head = (f"From: Bench <bench@client.test>\r\nTo: <alice@local.test>\r\n"
            f"Subject: benchmark message {seq}\r\nMessage-ID: <{seq}.bench@client.test>\r\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    body = bytearray()
    line_no = 0
    while len(head) + len(body) < size - 80:
        line_no += 1
        if line_no % 10 == 0:
            body += b".. a line that starts with a dot, stuffed on the wire\r\n"
        else:
            body += (f"Line {line_no:04d} of the benchmark body: the quick brown fox jumps over"
                     "\r\n").encode()
    return head + bytes(body) + b".\r\n"


def b64_plain(user: str, password: str) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


# -- SMTP ----------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    messages: int = 0
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    pipelined: bool = False

    @property
    def rate(self) -> float:
        return self.messages / self.wall if self.wall > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def _smtp_connection(port: int, user: str, password: str, count: int, size: int,
                           allow_pipelining: bool, rcpt: str, result: LoadResult,
                           deadline: float) -> None:
    conn = await Conn.open(port)
    try:
        await conn.expect(220, "greeting")
        conn.writer.write(b"EHLO client.test\r\n")
        caps = await conn.expect(250, "EHLO")
        pipelining = allow_pipelining and any(
            line[4:].upper().startswith(b"PIPELINING") for line in caps)
        result.pipelined = pipelining
        conn.writer.write(b"AUTH PLAIN " + b64_plain(user, password) + CRLF)
        await conn.expect(235, "AUTH PLAIN")
        mail = b"MAIL FROM:<bench@client.test>\r\n"
        rcpt_line = f"RCPT TO:<{rcpt}>\r\n".encode()
        for i in range(count):
            if time.monotonic() > deadline:
                result.errors.append("deadline reached")
                break
            payload = make_message(size, i)
            started = time.perf_counter()
            if pipelining:
                conn.writer.write(mail + rcpt_line + b"DATA\r\n")
                await conn.expect(250, "MAIL")
                await conn.expect(250, "RCPT")
                await conn.expect(354, "DATA")
            else:
                conn.writer.write(mail)
                await conn.expect(250, "MAIL")
                conn.writer.write(rcpt_line)
                await conn.expect(250, "RCPT")
                conn.writer.write(b"DATA\r\n")
                await conn.expect(354, "DATA")
            conn.writer.write(payload)
            await conn.expect(250, "end of data")
            result.latencies.append(time.perf_counter() - started)
            result.messages += 1
        conn.writer.write(b"QUIT\r\n")
        await conn.expect(221, "QUIT")
    finally:
        conn.close()


async def smtp_load(port: int, *, messages: int = 2000, connections: int = 20,
                    size: int = 2048, allow_pipelining: bool = True,
                    rcpt: str = "alice@local.test", time_limit: float = 120) -> LoadResult:
    """Send ``messages`` messages of ``size`` bytes over ``connections`` parallel sessions."""
    result = LoadResult()
    deadline = time.monotonic() + time_limit
    users = [u for u in USERS if u.startswith("user")]
    shares = [messages // connections + (1 if i < messages % connections else 0)
              for i in range(connections)]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(
        _smtp_connection(port, users[i % len(users)], USERS[users[i % len(users)]], shares[i],
                         size, allow_pipelining, rcpt, result, deadline)
        for i in range(connections)), return_exceptions=True)
    result.wall = time.perf_counter() - started
    result.errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return result


# -- idle sessions -------------------------------------------------------------------------------
@dataclass
class IdleResult:
    opened: int = 0
    errors: list[str] = field(default_factory=list)
    conns: list[Conn] = field(default_factory=list)


async def open_idle_sessions(port: int, count: int, parallel: int = 64,
                             time_limit: float = 60) -> IdleResult:
    """Open ``count`` SMTP sessions (greeting + EHLO) and leave them open."""
    result = IdleResult()
    sem = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with sem:
            conn = await Conn.open(port)
            result.conns.append(conn)
            await conn.expect(220, "greeting")
            conn.writer.write(b"EHLO idle.test\r\n")
            await conn.expect(250, "EHLO")
            result.opened += 1

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(one() for _ in range(count)), return_exceptions=True), time_limit)
    result.errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return result


async def close_idle_sessions(idle: IdleResult, time_limit: float = 60) -> int:
    """NOOP (must still answer 250) then QUIT every session; return how many answered both."""
    ok = 0

    async def one(conn: Conn) -> None:
        nonlocal ok
        try:
            conn.writer.write(b"NOOP\r\nQUIT\r\n")
            await conn.expect(250, "NOOP")
            await conn.expect(221, "QUIT")
            ok += 1
        finally:
            conn.close()

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(one(c) for c in idle.conns), return_exceptions=True), time_limit)
    idle.errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return ok


# -- POP3 ----------------------------------------------------------------------------------------
async def _pop3_connection(port: int, user: str, password: str, window: int,
                           result: LoadResult, deadline: float) -> None:
    conn = await Conn.open(port)
    try:
        await conn.pop3_status("greeting")
        conn.writer.write(b"CAPA\r\n")
        caps = b""
        if (await conn.line()).startswith(b"+OK"):
            caps = await conn.pop3_body()
        pipelining = b"PIPELINING" in caps.upper()
        result.pipelined = pipelining
        conn.writer.write(f"USER {user}\r\n".encode())
        await conn.pop3_status("USER")
        conn.writer.write(f"PASS {password}\r\n".encode())
        await conn.pop3_status("PASS")
        conn.writer.write(b"STAT\r\n")
        count = int((await conn.pop3_status("STAT")).split()[1])
        step = window if pipelining else 1
        for first in range(1, count + 1, step):
            if time.monotonic() > deadline:
                result.errors.append("deadline reached")
                break
            batch = range(first, min(first + step, count + 1))
            started = time.perf_counter()
            conn.writer.write(b"".join(b"RETR %d\r\n" % n for n in batch))
            for n in batch:
                await conn.pop3_status(f"RETR {n}")
                body = await conn.pop3_body()
                if len(body) < 100:
                    raise ProtocolFailure(f"RETR {n}: a body of {len(body)} bytes")
                result.latencies.append(time.perf_counter() - started)
                result.messages += 1
        conn.writer.write(b"QUIT\r\n")
        await conn.pop3_status("QUIT")
    finally:
        conn.close()


async def pop3_load(port: int, users: dict[str, str], window: int = 8,
                    time_limit: float = 120) -> LoadResult:
    """One session per user, in parallel, each RETRieving its whole maildrop."""
    result = LoadResult()
    deadline = time.monotonic() + time_limit
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(
        _pop3_connection(port, u, p, window, result, deadline) for u, p in users.items()),
        return_exceptions=True)
    result.wall = time.perf_counter() - started
    result.errors += [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return result


# -- one huge message ----------------------------------------------------------------------------
def big_body_chunks(total: int, chunk: int = 1 << 20) -> Iterator[tuple[bytes, bytes]]:
    """CRLF body lines (some starting with a dot) in chunks of about ``chunk`` bytes, until
    ``total`` bytes; yields (wire bytes, unstuffed bytes)."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-=+_0123456789\r\n"
    dotted = b"." + line[1:]
    block_plain = (line * 15 + dotted) * 8
    block_wire = (line * 15 + b"." + dotted) * 8
    sent = 0
    while sent < total:
        reps = max(1, chunk // len(block_plain))
        yield block_wire * reps, block_plain * reps
        sent += len(block_plain) * reps


async def smtp_send_big(port: int, total: int, user: str = "user00",
                        rcpt: str = "alice@local.test", time_limit: float = 180
                        ) -> tuple[int, str, float]:
    """Send one message with a body of about ``total`` bytes; return (body bytes, sha256 of the
    unstuffed CRLF body, seconds)."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    size = 0

    async def run() -> None:
        nonlocal size
        conn = await Conn.open(port)
        try:
            await conn.expect(220, "greeting")
            conn.writer.write(b"EHLO client.test\r\n")
            await conn.expect(250, "EHLO")
            conn.writer.write(b"AUTH PLAIN " + b64_plain(user, USERS[user]) + CRLF)
            await conn.expect(235, "AUTH")
            conn.writer.write(b"MAIL FROM:<bench@client.test>\r\n")
            await conn.expect(250, "MAIL")
            conn.writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
            await conn.expect(250, "RCPT")
            conn.writer.write(b"DATA\r\n")
            await conn.expect(354, "DATA")
            conn.writer.write(b"Subject: a big one\r\nFrom: <bench@client.test>\r\n\r\n")
            for wire, plain in big_body_chunks(total):
                conn.writer.write(wire)
                digest.update(plain)
                size += len(plain)
                await conn.writer.drain()
            conn.writer.write(b".\r\n")
            await conn.expect(250, "end of data")
            conn.writer.write(b"QUIT\r\n")
            await conn.expect(221, "QUIT")
        finally:
            conn.close()

    await asyncio.wait_for(run(), time_limit)
    return size, digest.hexdigest(), time.perf_counter() - started


async def pop3_retr_big(port: int, user: str, password: str, time_limit: float = 180
                        ) -> tuple[int, str, float]:
    """RETR the last message of ``user``'s maildrop; return (body bytes after the header,
    sha256 of the unstuffed body, seconds)."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    state: dict[str, Any] = {"head": bytearray(), "in_body": False, "size": 0}

    def sink(piece: bytes) -> None:
        # Pieces are whole lines; a line that starts with "." lost its first dot on the wire.
        data = piece.replace(b"\r\n.", b"\r\n")
        if data[:1] == b".":
            data = data[1:]
        if not state["in_body"]:
            state["head"] += data
            end = state["head"].find(b"\r\n\r\n")
            if end < 0:
                return
            data = bytes(state["head"][end + 4 :])
            state["in_body"] = True
        digest.update(data)
        state["size"] += len(data)

    async def run() -> None:
        conn = await Conn.open(port)
        try:
            await conn.pop3_status("greeting")
            conn.writer.write(f"USER {user}\r\n".encode())
            await conn.pop3_status("USER")
            conn.writer.write(f"PASS {password}\r\n".encode())
            await conn.pop3_status("PASS")
            conn.writer.write(b"STAT\r\n")
            count = int((await conn.pop3_status("STAT")).split()[1])
            conn.writer.write(f"RETR {count}\r\n".encode())
            await conn.pop3_status("RETR")
            await conn.pop3_body_stream(sink)
            conn.writer.write(b"QUIT\r\n")
            await conn.pop3_status("QUIT")
        finally:
            conn.close()

    await asyncio.wait_for(run(), time_limit)
    return int(state["size"]), digest.hexdigest(), time.perf_counter() - started
