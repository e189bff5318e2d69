"""``mailproto spy``: a recording proxy between any real client and any server.

    mailproto spy --listen 127.0.0.1:2526 --to 127.0.0.1:2525 --save spy/

Bytes pass through unchanged, both ways.  On the side, a client protocol core of the right
protocol (SMTP if the greeting starts with ``220``, POP3 if with ``+OK``) reads the same bytes
— the client's lines as raw lines, as if typed, the server's as replies — and records the
transcript the lab's views open: every line, with its meaning and the protocol state.  After
STARTTLS or STLS the conversation is encrypted: the spy records only that encryption began (it
does not decrypt) and passes the bytes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from ..transcript import EVENT, Recorder, Transcript

log = logging.getLogger("mailproto.spy")


class Observer(Protocol):
    """What the spy needs from a client core (both protocols' ``ClientSession`` have it)."""

    tls_requested: bool
    closed: bool

    def send_raw(self, data: bytes) -> bytes: ...
    def receive(self, data: bytes) -> Any: ...
    def connection_lost(self, why: str = ...) -> None: ...


def observer_for(greeting: bytes, recorder: Recorder) -> Observer:
    if greeting.startswith(b"+OK") or greeting.startswith(b"-ERR"):
        from ..pop3.client import ClientSession as POP3Session

        recorder.transcript.protocol = "pop3"
        return POP3Session(on_step=recorder)
    from ..smtp.client import ClientSession as SMTPSession

    recorder.transcript.protocol = "smtp"
    return SMTPSession(on_step=recorder)


class SpySession:
    """One proxied connection and its transcript."""

    def __init__(self, upstream: tuple[str, int], peer: str) -> None:
        self.upstream = upstream
        self.recorder = Recorder("smtp", time.time, role="spy", client=peer,
                                 server=f"{upstream[0]}:{upstream[1]}")
        self.observer: Observer | None = None
        self.encrypted = False
        self._client_partial = b""

    @property
    def transcript(self) -> Transcript:
        return self.recorder.transcript

    def from_server(self, data: bytes) -> None:
        if self.encrypted:
            return
        if self.observer is None:
            self.observer = observer_for(data, self.recorder)
        try:
            self.observer.receive(data)
        except Exception as exc:  # a peer that breaks the protocol: note it, keep passing bytes
            self._note(f"could not read the server's bytes: {exc}")
        self._check_tls()

    def from_client(self, data: bytes) -> None:
        if self.encrypted or self.observer is None:
            if self.observer is None and not self.encrypted:
                self._note(f"the client spoke before the greeting: {data[:80]!r}")
            return
        data = self._client_partial + data
        cut = data.rfind(b"\n") + 1
        self._client_partial = data[cut:]
        if cut:
            try:
                self.observer.send_raw(data[:cut])
            except Exception as exc:
                self._note(f"could not read the client's bytes: {exc}")
        self._check_tls()

    def _check_tls(self) -> None:
        if self.observer is not None and self.observer.tls_requested and not self.encrypted:
            self.encrypted = True
            self._note("TLS negotiation begins: from here the conversation is encrypted and the "
                       "spy does not decrypt it (RFC 3207 / RFC 2595)", kind="tls")

    def closed(self, why: str) -> None:
        if self._client_partial and not self.encrypted:
            self._note(f"the client sent an unfinished line: {self._client_partial[:80]!r}")
        if self.observer is not None and not self.observer.closed:
            self.observer.connection_lost(why)
        else:
            self._note(why, kind="closed")

    def _note(self, text: str, kind: str = "note") -> None:
        self.recorder(EVENT, "event", text.encode(), {"event": kind}, "", "")


class Spy:
    """The listening side: one :class:`SpySession` per client, each saved when it ends."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int],
                 save: Path | None = None) -> None:
        self.listen = listen
        self.upstream = upstream
        self.save = save
        self.sessions: list[SpySession] = []
        self.saved: list[Path] = []
        self._counter = itertools.count(1)
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._handle, *self.listen)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
                      ) -> None:
        peer = c_writer.get_extra_info("peername")
        session = SpySession(self.upstream, f"{peer[0]}:{peer[1]}" if peer else "?")
        self.sessions.append(session)
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            session.closed(f"cannot reach {self.upstream[0]}:{self.upstream[1]}: {exc}")
            c_writer.close()
            self._save(session)
            return

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       record: Any) -> str:
            while True:
                data = await reader.read(65536)
                if not data:
                    return "closed"
                record(data)  # record before passing on: the order of the lines is kept
                writer.write(data)
                await writer.drain()

        up = asyncio.ensure_future(pump(c_reader, s_writer, session.from_client))
        down = asyncio.ensure_future(pump(s_reader, c_writer, session.from_server))
        done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        who = "the client" if up in done else "the server"
        # Let the other direction finish what is already on its way (a 221 after QUIT).
        with contextlib.suppress(asyncio.TimeoutError, OSError):
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 1.0)
        for task in pending:
            task.cancel()
        for writer in (c_writer, s_writer):
            with contextlib.suppress(OSError):
                writer.close()
        session.closed(f"{who} closed the connection")
        self._save(session)

    def _save(self, session: SpySession) -> None:
        if self.save is None:
            return
        self.save.mkdir(parents=True, exist_ok=True)
        path = self.save / f"spy-{next(self._counter):04d}-{session.transcript.protocol}.json"
        session.transcript.save(str(path))
        self.saved.append(path)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
