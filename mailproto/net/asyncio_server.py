"""One asyncio protocol that drives any of our sans-I/O server cores over TCP.

Both cores (SMTP and POP3) speak the same small interface: ``initiate()``, ``receive(bytes)``,
``timeout()``, ``shutdown()``, ``connection_lost()``, and the flags ``closed``,
``tls_requested`` (then ``tls_started()``) and ``delay`` (wait before answering: failed logins).

A core may also stream a long response (POP3 RETR of a 100 MB message) in bounded pieces: while
its optional ``has_more_output`` is true, the driver stops reading, and asks ``more()`` for the
next piece whenever the transport's write buffer has room (``pause_writing``/``resume_writing``),
so memory stays bounded by the buffer limits, not by the message.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("mailproto.net")
#: Data without a line end that still counts as activity for the idle timer.
PROGRESS_BYTES = 4096
#: One receive buffer for every connection of the process (see ``CoreProtocol.get_buffer``).
READ_BUFFER = 1 << 18


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
        #: Shared by all sessions: asyncio fills it and calls ``buffer_updated`` at once, and
        #: the bytes are copied out before anything else can read.
        self.read_buffer = memoryview(bytearray(READ_BUFFER))

    def protocol(self) -> CoreProtocol:
        return CoreProtocol(self)

    def shutdown(self) -> None:
        for proto in list(self.sessions):
            proto.shutdown()


class CoreProtocol(asyncio.BufferedProtocol):
    """One connection.

    A ``BufferedProtocol``: asyncio receives into the listener's buffer (``recv_into``) instead
    of allocating a fresh 256 KB object per ``recv`` (three memory system calls a read on Linux).
    The idle timer is lazy: progress only moves a deadline, and the one timer handle, when it
    fires early, re-arms itself for the rest, instead of a cancel and a new timer per command.
    """

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: Any = None
        self.core: Core | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # loop time at which the session is idle for too long
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused = False
        self._handshaking = False
        self._pending: list[bytes] = []  # data that arrived while we waited (delay, TLS)
        self._unarmed_bytes = 0  # received since the idle timer was last re-armed
        self._writing_paused = False  # the transport's write buffer is full
        self._more_scheduled = False

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

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.listener.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self.listener.read_buffer[:nbytes]))

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
            self._timer = None
        if self.core is not None:
            self.core.connection_lost()

    # -- driving the core ----------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        core = self.core
        if core is None or core.closed:
            return
        # The idle timer waits for the next *command* (RFC 5321 §4.5.3.2, RFC 1939 §3), not the
        # next byte: only a line end, or a good amount of data (a long line of message text),
        # counts as progress.  Otherwise a client trickling a byte now and then (slowloris)
        # would hold its session, and its connection slot, forever.
        self._unarmed_bytes += len(data)
        if b"\n" in data or self._unarmed_bytes >= PROGRESS_BYTES:
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
        if getattr(core, "has_more_output", False):
            self._pause()  # no new command until this response is out
            self._schedule_more()
            return
        if core.closed:
            self.transport.close()
        elif core.tls_requested:
            self._pause()
            asyncio.ensure_future(self._start_tls())
        else:
            self._resume()

    # -- streaming a long response --------------------------------------------------------
    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.core is not None and getattr(self.core, "has_more_output", False):
            self._schedule_more()

    def _schedule_more(self) -> None:
        # Through the loop, not recursion: one piece per turn, and other sessions get theirs.
        if not self._more_scheduled and not self._writing_paused:
            self._more_scheduled = True
            asyncio.get_running_loop().call_soon(self._more)

    def _more(self) -> None:
        self._more_scheduled = False
        core = self.core
        if core is None or self.transport.is_closing() or self._writing_paused:
            return
        self._arm()  # a client that keeps reading is not idle
        try:
            out = core.more()  # type: ignore[attr-defined]
        except Exception:
            log.exception("%s: internal error", self.listener.name)
            self.transport.close()
            return
        if core.delay > 0:
            asyncio.get_running_loop().call_later(core.delay, self._deliver, out)
        else:
            self._deliver(out)

    async def _start_tls(self) -> None:
        core = self.core
        assert core is not None and self.listener.tls_context is not None
        self._pending.clear()  # CVE-2011-0411: nothing read before the handshake counts
        loop = asyncio.get_running_loop()
        raw = self.transport
        self._handshaking = True
        try:
            tls = await loop.start_tls(raw, self, self.listener.tls_context, server_side=True,
                                       ssl_handshake_timeout=30)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError):
            tls = None
        finally:
            self._handshaking = False
        if tls is None:  # failed, or closed during the handshake (start_tls then returns None)
            raw.abort()
            # The TLS layer owned the connection: asyncio will not call our connection_lost,
            # so free the slot here (else a few broken handshakes lock everyone out).
            self.connection_lost(None)
            return
        self.transport = tls
        core.tls_started()
        self._arm()  # a finished handshake is progress
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
        """Progress: the session may now stay idle for the whole timeout again."""
        self._unarmed_bytes = 0
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.listener.timeout
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._check_idle)

    def _check_idle(self) -> None:
        assert self._loop is not None
        left = self._deadline - self._loop.time()
        if left > 0:  # there was progress since the timer was set: wait for the rest
            self._timer = self._loop.call_at(self._deadline, self._check_idle)
            return
        self._timer = None
        self._timed_out()

    def _timed_out(self) -> None:
        if self._handshaking:  # no plaintext 421 into a TLS handshake: just cut it
            self.transport.abort()
            return
        if self.core is not None and not self.transport.is_closing():
            streaming = getattr(self.core, "has_more_output", False)
            self.transport.write(self.core.timeout())
            if streaming and self._writing_paused:
                self.transport.abort()  # the peer stopped reading: do not wait to flush
            else:
                self.transport.close()

    def shutdown(self) -> None:
        if self._handshaking:
            self.transport.abort()
            return
        if self.core is not None and not self.transport.is_closing():
            self.transport.write(self.core.shutdown())
            self.transport.close()
