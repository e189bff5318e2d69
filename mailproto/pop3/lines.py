"""Command lines in, for the POP3 server core: framing and limits (RFC 1939 §3: a line ends with
CRLF, here a bare LF too, as in Dovecot; RFC 2449 §4: at most 255 octets, more generous here;
RFC 5034 §4: longer AUTH lines and SASL responses), overlong lines discarded whole with one
``-ERR``, and one transcript step per client line.

:class:`LineReader` is a mixin of :class:`~mailproto.pop3.server.ServerSession`: ``_read_line``
takes one line from the session's input buffer and hands it to the SASL exchange in progress
(``_auth_response``) or to the command dispatch (``_command``).  No I/O: the session's driver
feeds the buffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import auth
from ..transcript import CLIENT, StepSink
from . import replies as R
from .states import State
from .wire import CRLF, MAX_AUTH_LINE, MAX_COMMAND_LINE, Command, Reply, parse_command


class LineReader:
    """Command lines and SASL responses for :class:`ServerSession`."""

    # the session's state this mixin reads and writes (set in ServerSession.__init__)
    state: State
    on_step: StepSink | None
    _buf: bytearray
    _discarding: bool
    _sasl: auth.SASLExchange | None

    if TYPE_CHECKING:
        def _command(self, cmd: Command, raw: bytes) -> None: ...
        def _auth_response(self, line: bytes, raw: bytes) -> None: ...
        def _error(self, reply: Reply, before: State) -> None: ...

    def _read_line(self) -> bool:
        buf = self._buf
        nl = buf.find(b"\n")
        if self._discarding:
            if nl < 0:
                buf.clear()
                return False
            del buf[: nl + 1]
            self._discarding = False
            self._line_too_long()
            return True
        if nl < 0:
            if len(buf) > MAX_COMMAND_LINE and len(buf) > self._line_limit():
                buf.clear()
                self._discarding = True
            return False
        raw = bytes(buf[: nl + 1])
        del buf[: nl + 1]
        if nl + 1 > MAX_COMMAND_LINE and nl + 1 > self._line_limit(raw):
            self._line_too_long()
            return True
        # A bare LF ends a line too, as in Dovecot: students type with netcat.
        line = raw[:-2] if raw.endswith(CRLF) else raw[:-1]
        if self._sasl is not None:
            self._auth_response(line, raw)
        else:
            self._command(parse_command(line), raw)
        return True

    def _line_limit(self, line: bytes | bytearray | None = None) -> int:
        """The longest line allowed now: RFC 2449 §4's, more generous (as Dovecot), or RFC 5034
        §4's for AUTH and SASL responses.  ``line``: the line, if not the start of the buffer."""
        start = (self._buf if line is None else line)[:5]
        long_ok = self._sasl is not None or start.upper() == b"AUTH "
        return MAX_AUTH_LINE if long_ok else MAX_COMMAND_LINE

    def _line_too_long(self) -> None:
        before = self.state
        self._trace_client(b"<overlong line discarded>", {"error": "line too long"}, before)
        self._sasl = None  # an overlong SASL response ends the exchange (RFC 5034 §4: -ERR)
        self._error(R.LINE_TOO_LONG, before)

    def _trace_client(self, raw: bytes, parsed: dict[str, Any], before: State) -> None:
        if self.on_step:
            kind = "auth" if self._sasl is not None else "command"
            self.on_step(CLIENT, kind, raw, parsed, before.name, before.name)
