"""The DATA phase of the SMTP server core: message content in, one reply out (RFC 5321 §4.1.1.4,
§4.5.2 dot-stuffing, §4.4 trace headers, RFC 1870 §6.3 size limit).

:class:`DataPhase` is a mixin of :class:`~mailproto.smtp.server.ServerSession`: reading the
content shares the session's input buffer, envelope and reply path, and a subclass
(:class:`~mailproto.smtp.faults.FaultySession`) overrides ``_content`` and ``_end_of_data``.
:func:`trace_headers` is a plain function.  No I/O: the spool is given by the mail store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING

from ..transcript import CLIENT, StepSink
from . import replies as R
from .config import Envelope, ServerConfig, Spool
from .states import END_OF_DATA, State
from .wire import Reply


def trace_headers(env: Envelope, config: ServerConfig, *, helo: str | None, peer_ip: str,
                  esmtp: bool, tls: bool, authenticated: bool, queue_id: str,
                  when: float) -> bytes:
    """``Return-Path:`` and ``Received:`` (RFC 5321 §4.4), LF-ended as stored."""
    proto = ("UTF8SMTP" if env.smtputf8 else "ESMTP") if esmtp else "SMTP"
    if esmtp and tls:
        proto += "S"
    if esmtp and authenticated:
        proto += "A"
    date = format_datetime(datetime.fromtimestamp(when, timezone.utc))
    helo = helo or "unknown"
    received = (f"Received: from {helo} ([{peer_ip}])\n"
                f"\tby {config.hostname} ({config.software}) with {proto}"
                f" id {queue_id}\n")
    if len(env.recipients) == 1:
        received += f"\tfor <{env.recipients[0]}>; {date}\n"
    else:
        received += f"\t; {date}\n"
    return f"Return-Path: <{env.sender}>\n{received}".encode()


class DataPhase:
    """Message content after ``354`` until CRLF "." CRLF, for :class:`ServerSession`."""

    # the session's state this mixin reads and writes (set in ServerSession.__init__)
    config: ServerConfig
    envelope: Envelope
    state: State
    on_step: StepSink | None
    clock: Callable[[], float]
    helo: str | None
    peer_ip: str
    esmtp: bool
    tls: bool
    user: str | None
    messages: int
    _buf: bytearray
    _spool: Spool | None
    _data_size: int
    _data_failed: Reply | None
    _line_start: bool
    _after_crlf: bool
    _data_trace: bytearray | None
    _queue_id: str

    if TYPE_CHECKING:
        def _go(self, event: str) -> None: ...
        def _reply(self, reply: Reply, before: State) -> None: ...

    def _trace_headers(self) -> bytes:
        """``Return-Path:`` and ``Received:`` (RFC 5321 §4.4), LF-ended as stored."""
        return trace_headers(self.envelope, self.config, helo=self.helo, peer_ip=self.peer_ip,
                             esmtp=self.esmtp, tls=self.tls, authenticated=self.user is not None,
                             queue_id=self._queue_id, when=self.clock())

    def _read_data(self) -> bool:
        """Consume message content; True when the end of data was reached.

        Only CRLF "." CRLF ends the message: ``\\n.\\n``, ``\\r\\n.\\n`` and the other SMTP
        smuggling endings are content.  A bare LF still ends a *content* line (Postfix's
        ``smtpd_forbid_bare_newline = normalize``): it is stored as the LF it already is.
        """
        buf = self._buf
        if self._line_start and self._after_crlf and buf[:3] == b".\r\n":
            end = 0
        else:
            end = buf.find(b"\r\n.\r\n")
            if end >= 0:
                end += 2
        if end >= 0:
            self._content(bytes(buf[:end]))
            del buf[: end + 3]
            self._end_of_data()
            return True
        # No terminator yet: take everything but what could still become one.  Only a short
        # start of a line (".", ".\r") and a trailing CR are kept: each byte is looked at a
        # bounded number of times, however the client splits its writes (a partial line kept
        # here would be scanned again on every receive: quadratic for a byte-at-a-time sender).
        cut = buf.rfind(b"\n") + 1
        partial = len(buf) - cut
        if partial and (partial >= 3 or (cut == 0 and not self._line_start)):
            cut = len(buf) - 1 if buf[-1:] == b"\r" else len(buf)
        if cut:
            self._content(bytes(buf[:cut]))
            del buf[:cut]
        return False

    def _content(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._data_size += len(chunk)
        if self._data_trace is not None and len(self._data_trace) < 65536:
            self._data_trace += chunk[: 65536 - len(self._data_trace)]
        if self._line_start and chunk[:1] == b".":
            chunk = chunk[1:]  # §4.5.2: remove the stuffed dot
        ends_line = chunk.endswith(b"\n")
        self._after_crlf = chunk.endswith(b"\r\n") or (not chunk and self._after_crlf)
        self._line_start = ends_line or (not chunk and self._line_start)
        if self._data_size > self.config.max_message_size:
            if self._data_failed is None:
                self._data_failed = R.MESSAGE_TOO_BIG
                self._drop_spool()
            return
        if self._data_failed is None:
            self._write_data(chunk.replace(b"\n.", b"\n").replace(b"\r\n", b"\n"))

    def _write_data(self, data: bytes) -> None:
        if self._spool is None or self._data_failed is not None:
            return
        try:
            self._spool.write(data)
        except OSError:
            self._data_failed = R.INSUFFICIENT_STORAGE
            self._drop_spool()

    def _drop_spool(self) -> None:
        if self._spool is not None:
            try:
                self._spool.abort()
            except OSError:
                pass
            self._spool = None

    def _end_of_data(self) -> None:
        before = self.state
        if self.on_step:
            self.on_step(CLIENT, "data", bytes(self._data_trace or b"") + b".\r\n",
                         {"size": self._data_size}, before.name, before.name)
        self._data_trace = None
        env = self.envelope
        reply = self._data_failed
        if reply is None and self._spool is not None:
            try:
                outbox = (env.sender or "", env.remote) if env.remote else None
                self._spool.commit(env.local_users, outbox)
                reply = Reply.of(250, f"2.0.0 Ok: queued as {self._queue_id}")
                self.messages += 1
                self._spool = None
            except OSError:
                reply = R.INSUFFICIENT_STORAGE  # and the spool is aborted just below
        self._drop_spool()
        self.envelope = Envelope()
        self._go(END_OF_DATA)
        self._reply(reply or R.INSUFFICIENT_STORAGE, before)
