"""One asyncio protocol that drives any of our sans-I/O server cores over TCP.

Both cores (SMTP and POP3) speak the same small interface: ``initiate()``, ``receive(bytes)``,
``timeout()``, ``shutdown()``, ``connection_lost()``, and the flags ``closed``,
``tls_requested`` (then ``tls_started()``) and ``delay`` (wait before answering: failed logins).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("mailproto.net")


class Core(Protocol):
    closed: bool
    tls_requested: bool
    delay: float

    def initiate(self) -> bytes: ...
    def receive(self, data: bytes) -> bytes: ...
    def timeout(self) -> bytes: ...
    def shutdown(self) -> bytes: ...
    def tls_started(self) -> None: ...
    def connection_lost(self) -> None: ...


class Listener:
    """The sessions of one listening socket: their count, the limit, and shutdown."""

    def __init__(self, name: str, factory: Callable[[str], Core], timeout: float,
                 tls_context: ssl.SSLContext | None, max_connections: int,
                 busy_reply: bytes) -> None:
        self.name = name
        self.factory = factory
        self.timeout = timeout
        self.tls_context = tls_context
        self.max_connections = max_connections
        self.busy_reply = busy_reply
        self.sessions: set[CoreProtocol] = set()

    def protocol(self) -> CoreProtocol:
        return CoreProtocol(self)

    def shutdown(self) -> None:
        for proto in list(self.sessions):
            proto.shutdown()


class CoreProtocol(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: Any = None
        self.core: Core | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._pending: list[bytes] = []  # data that arrived while we waited (delay, TLS)

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        listener = self.listener
        if len(listener.sessions) >= listener.max_connections:
            transport.write(listener.busy_reply)  # RFC 5321 §3.8: 421, then close
            transport.close()
            return
        peer = transport.get_extra_info("peername") or ("unknown", 0)
        try:
            self.core = listener.factory(str(peer[0]))
            transport.write(self.core.initiate())
        except Exception:
            log.exception("%s: cannot start a session", listener.name)
            transport.close()
            return
        listener.sessions.add(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._paused:
            self._pending.append(data)
            return
        self._feed(data)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.sessions.discard(self)
        if self._timer:
            self._timer.cancel()
        if self.core is not None:
            self.core.connection_lost()

    # -- driving the core ----------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        core = self.core
        if core is None or core.closed:
            return
        self._arm()
        try:
            out = core.receive(data)
        except Exception:  # a bug must never reach the client or stop the server
            log.exception("%s: internal error", self.listener.name)
            self.transport.close()
            return
        if core.delay > 0:
            self._pause()
            asyncio.get_running_loop().call_later(core.delay, self._deliver, out)
        else:
            self._deliver(out)

    def _deliver(self, out: bytes) -> None:
        core = self.core
        if self.transport.is_closing() or core is None:
            return
        if out:
            self.transport.write(out)
        if core.closed:
            self.transport.close()
        elif core.tls_requested:
            self._pause()
            asyncio.ensure_future(self._start_tls())
        else:
            self._resume()

    async def _start_tls(self) -> None:
        core = self.core
        assert core is not None and self.listener.tls_context is not None
        self._pending.clear()  # CVE-2011-0411: nothing read before the handshake counts
        loop = asyncio.get_running_loop()
        try:
            self.transport = await loop.start_tls(self.transport, self,
                                                  self.listener.tls_context, server_side=True,
                                                  ssl_handshake_timeout=30)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError):
            core.connection_lost()
            if self.transport is not None:
                self.transport.abort()
            return
        core.tls_started()
        self._resume()

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
            pending, self._pending = self._pending, []
            for data in pending:
                self._feed(data)

    def _arm(self) -> None:
        if self._timer:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.listener.timeout, self._timed_out)

    def _timed_out(self) -> None:
        if self.core is not None and not self.transport.is_closing():
            self.transport.write(self.core.timeout())
            self.transport.close()

    def shutdown(self) -> None:
        if self.core is not None and not self.transport.is_closing():
            self.transport.write(self.core.shutdown())
            self.transport.close()
