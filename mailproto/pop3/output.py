"""Replies out of the POP3 server core: the output buffer, one transcript step per reply, and
multi-line responses (RFC 1939 §3: dot-stuffed lines ended by CRLF "." CRLF) streamed in bounded
pieces, in order behind each other (RFC 2449 §6.6).

:class:`Output` is a mixin of :class:`~mailproto.pop3.server.ServerSession`.  ``_send`` and
``_reply`` put a status line out; ``_send_multiline`` a response whose body is already in memory;
``_start_stream`` a :class:`Body` (a big RETR or TOP, a LIST or UIDL of many messages) that
``_drain`` then moves out until :data:`OUTPUT_BUDGET` octets are waiting.  The transcript keeps a
multi-line response as one step, its first :data:`TRACE_LIMIT` octets and the count of the rest.
No I/O: the session's driver sends what ``_flush`` returns.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..transcript import EVENT, SERVER, StepSink
from .states import State
from .wire import Reply

#: Octets of output after which ``receive``/``more`` stop and let the transport send.
OUTPUT_BUDGET = 65536
#: Octets of a multi-line response kept in the transcript (the rest is counted, not kept).
TRACE_LIMIT = 65536
#: LIST and UIDL lines per output piece.
_LINES_PER_PIECE = 1024


class Body(Protocol):
    """A multi-line response body being streamed: wire pieces, then ``close`` when abandoned."""

    def __next__(self) -> bytes: ...
    def close(self) -> None: ...


class Output:
    """Output and multi-line responses for :class:`ServerSession`."""

    # the session's state this mixin reads and writes (set in ServerSession.__init__)
    state: State
    on_step: StepSink | None
    _out: list[bytes]
    _out_size: int
    _stream: Body | None
    _stream_reply: Reply | None
    _stream_before: State
    _stream_trace: bytearray | None
    _stream_octets: int

    if TYPE_CHECKING:
        def _hang_up(self) -> None: ...

    # -- output ----------------------------------------------------------------------------
    def _emit(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        return out

    def _send(self, reply: Reply, kind: str, before: State) -> None:
        raw = reply.to_bytes()
        self._emit(raw)
        if self.on_step:
            self.on_step(SERVER, kind, raw, _parsed(reply), before.name, self.state.name)

    def _event(self, text: str, kind: str) -> None:
        if self.on_step:
            self.on_step(EVENT, "event", text.encode(), {"event": kind}, self.state.name,
                         self.state.name)

    def _reply(self, reply: Reply, before: State) -> None:
        self._send(reply, "reply", before)


    # -- multi-line responses ----------------------------------------------------------------
    def _send_multiline(self, reply: Reply, body: bytes, before: State) -> None:
        """A multi-line response whose body (stuffed, terminator included, RFC 1939 §3) is
        already in memory: out in one piece, traced like a streamed one."""
        status = reply.status_line()
        self._emit(status)
        self._emit(body)
        if self.on_step:
            raw = status + body
            self._trace_multiline(reply, raw[:TRACE_LIMIT], len(raw), True, before)

    def _start_stream(self, reply: Reply, body: Body, before: State) -> None:
        status = reply.status_line()
        self._emit(status)
        self._stream = body
        self._stream_reply = reply
        self._stream_before = before
        self._stream_octets = len(status)
        self._stream_trace = bytearray(status) if self.on_step else None

    def _drain(self) -> None:
        """Move pieces of the current response to the output until the budget is used up."""
        while self._stream is not None and self._out_size < OUTPUT_BUDGET:
            try:
                piece = next(self._stream)
            except StopIteration:
                self._stream = None
                self._trace_stream(complete=True)
                return
            except OSError as exc:  # the file went bad after +OK: nothing honest left to say
                self._stream = None
                self._trace_stream(complete=False)
                self._event(f"cannot read the message: {exc.strerror or exc}", "error")
                self._hang_up()
                return
            self._emit(piece)
            self._stream_octets += len(piece)
            trace = self._stream_trace
            if trace is not None and len(trace) < TRACE_LIMIT:
                trace += piece[: TRACE_LIMIT - len(trace)]

    def _drop_stream(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.close()  # closes the message file, even if it was never read
            self._trace_stream(complete=False)

    def _trace_stream(self, complete: bool) -> None:
        if self.on_step and self._stream_reply is not None:
            self._trace_multiline(self._stream_reply, bytes(self._stream_trace or b""),
                                  self._stream_octets, complete, self._stream_before)
        self._stream_reply = None
        self._stream_trace = None

    def _trace_multiline(self, reply: Reply, raw: bytes, octets: int, complete: bool,
                         before: State) -> None:
        """One transcript step for a whole multi-line response: its first
        :data:`TRACE_LIMIT` octets, and how many there were."""
        if self.on_step:
            parsed = _parsed(reply)
            parsed.update(multiline=True, octets=octets, complete=complete,
                          truncated=octets > TRACE_LIMIT)
            self.on_step(SERVER, "reply", raw, parsed, before.name, self.state.name)


def lines_body(lines: Iterator[str]) -> Iterator[bytes]:
    """A multi-line body of short text lines (LIST, UIDL), a batch of lines per piece."""
    while batch := list(itertools.islice(lines, _LINES_PER_PIECE)):
        yield "".join(f"{line}\r\n" for line in batch).encode("ascii", "replace")
    yield b".\r\n"


def _parsed(reply: Reply) -> dict[str, Any]:
    parsed: dict[str, Any] = {"ok": reply.positive, "text": reply.text}
    if reply.code:
        parsed["code"] = reply.code
    if reply.lines is not None:
        parsed["lines"] = list(reply.lines)
    return parsed
