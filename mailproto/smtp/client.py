"""The SMTP client's protocol core, free of I/O (RFC 5321, with RFC 3207 and RFC 4954).

:class:`ClientSession` mirrors :class:`mailproto.smtp.server.ServerSession`: it formats the bytes
to send and reads the bytes that came back, and never touches a socket, a thread or a clock.
A transport (``mailproto.net.smtp_client``) or a test drives it::

    client = ClientSession(on_step=recorder)
    client.receive(greeting_bytes)                 # [Reply(220, ...)]
    send(client.send_command("EHLO", "me.test"))   # b"EHLO me.test\\r\\n"
    while client.awaiting: replies += client.receive(recv())
    if client.tls_requested: start TLS, then client.tls_started()

The state is tracked through :data:`mailproto.smtp.states.TABLE` from the reply codes, exactly as
the server moves: the steps the client records carry the same states as the server's.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from .. import auth
from ..errors import LocalProtocolError, RemoteProtocolError
from ..transcript import CLIENT, EVENT, SERVER, StepSink
from .states import AUTH_DONE, CLOSE, END_OF_DATA, TABLE, TIMEOUT, State
from .wire import CRLF, Reply, parse_command

#: A reply line longer than this is not SMTP (§4.5.3.1.5 says 512); it guards our memory only.
MAX_REPLY_LINE = 65536
GREETING = "<greeting>"
#: Lines whose reply decides how the next line is read (as a command, message text, a SASL
#: response, nothing before TLS, nothing at all): the client waits for that reply before it
#: sends more (RFC 2920 §3.1, RFC 3207 §4.2, RFC 4954 §4).
BARRIERS = frozenset({GREETING, "DATA", "AUTH", AUTH_DONE, "STARTTLS", "QUIT", END_OF_DATA})
_FORBIDDEN = ("\r", "\n", "\0")


# -- pure helpers -------------------------------------------------------------------------
def check_argument(text: str, what: str = "argument") -> None:
    """Refuse CR, LF and NUL: inside a command they would start a second command (injection)."""
    for ch in _FORBIDDEN:
        if ch in text:
            raise LocalProtocolError(f"{what} contains {ch!r}: CR, LF and NUL cannot appear "
                                     "inside an SMTP command (RFC 5321 §2.3.8, §4.1.1)")


def format_command(verb: str, arg: str = "") -> bytes:
    """``VERB arg CRLF`` (RFC 5321 §4.1.1), UTF-8 for SMTPUTF8 addresses (RFC 6531)."""
    if not verb or not verb.isascii() or not all(c.isalnum() or c == "-" for c in verb):
        raise LocalProtocolError(f"not a command verb: {verb!r}")
    check_argument(arg)
    line = f"{verb.upper()} {arg}" if arg else verb.upper()
    return line.encode("utf-8") + CRLF


_LINE_END = re.compile(rb"\r\n|\n|\r")
_DOT_AT_START = re.compile(rb"^\.", re.MULTILINE)


def format_data(message: bytes) -> bytes:
    """The message as sent after 354: CRLF line ends, dots stuffed, ``CRLF.CRLF`` at the end.

    RFC 5321 §2.3.8: CR and LF appear only together, so bare LF and bare CR become CRLF.
    §4.5.2: a line starting with "." gets a second one, so no line can end the data early.
    §4.1.1.4: a message without a final line end gets one before the ending ".".
    """
    data = _LINE_END.sub(CRLF, message)
    data = _DOT_AT_START.sub(b"..", data)
    if not data.endswith(CRLF):
        data += CRLF
    return data + b"." + CRLF


def parse_ehlo(reply: Reply) -> dict[str, str]:
    """EHLO extensions (RFC 5321 §4.1.1.1): keyword (upper-case) → parameters ("" if none).

    The first line is the server's name, not an extension.  ``AUTH=LOGIN PLAIN`` is the old
    pre-RFC 4954 form some servers still send: it is read as ``AUTH``.
    """
    extensions: dict[str, str] = {}
    for line in reply.lines[1:]:
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9\-]*)(?:[ =](.*))?\Z", line.strip())
        if not match:
            continue
        keyword, params = match.group(1).upper(), (match.group(2) or "").strip()
        if keyword in extensions and params:
            params = f"{extensions[keyword]} {params}".strip()
            params = " ".join(dict.fromkeys(params.split()))
        extensions[keyword] = params
    return extensions


#: The SASL client steps are the same for both protocols (mailproto.auth).
auth_steps = auth.client_steps


# -- reading replies ----------------------------------------------------------------------
class ReplyReader:
    """Assemble replies from bytes in any pieces, down to one byte at a time (RFC 5321 §4.2)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[str] = []
        self._raw = bytearray()
        self._code = 0

    def feed(self, data: bytes) -> list[tuple[Reply, bytes]]:
        """Every reply completed by ``data``, with its raw bytes."""
        self._buf += data
        out: list[tuple[Reply, bytes]] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_REPLY_LINE:
                    raise RemoteProtocolError(f"reply line longer than {MAX_REPLY_LINE} bytes")
                return out
            raw = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            reply = self._line(raw)
            if reply is not None:
                out.append((reply, bytes(self._raw)))
                self._raw.clear()

    def _line(self, raw: bytes) -> Reply | None:
        # A bare LF ends a line too: servers typed by hand, and old ones, send it.
        line = raw.rstrip(b"\n").removesuffix(b"\r")
        head, sep = line[:3], line[3:4]
        if not (head.isdigit() and head[:1] in b"12345" and sep in (b"", b" ", b"-")):
            raise RemoteProtocolError(f"not an SMTP reply line: {raw[:80]!r}")
        code = int(head)
        if self._lines and code != self._code:
            raise RemoteProtocolError(f"reply code changed inside a multi-line reply: "
                                      f"{self._code} then {code} (RFC 5321 §4.2.1)")
        self._code = code
        self._raw += raw
        self._lines.append(line[4:].decode("utf-8", "replace"))
        if sep == b"-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._lines = []
        return reply


def _next(state: State, event: str) -> State | None:
    """The table's target: the one place the client learns where a command leads."""
    target = TABLE.next(state, event)
    return State(target.value) if target is not None else None


@dataclass
class _Pending:
    """A line sent that waits for its reply: the event it stands for in the state table."""

    event: str  # a verb, GREETING, AUTH_DONE (a SASL response) or END_OF_DATA


class ClientSession:
    """One SMTP client session, sans-I/O.  See the module docstring for the driving loop."""

    def __init__(self, on_step: StepSink | None = None) -> None:
        self.on_step = on_step
        self.state = State.CONNECTED
        self.extensions: dict[str, str] = {}
        self.esmtp = False
        self.tls = False
        self.tls_requested = False
        self.closed = False
        self.greeting: Reply | None = None
        self.last_reply: Reply | None = None
        self._reader = ReplyReader()
        self._pending: deque[_Pending] = deque([_Pending(GREETING)])
        #: Raw lines sent after a barrier, read once its reply says how (see send_raw).
        self._held: list[bytes] = []
        self._data_size = 0
        self._data_after_crlf = True

    # -- what the session knows -------------------------------------------------------------
    @property
    def awaiting(self) -> int:
        """How many replies are still owed to us."""
        return len(self._pending)

    def has_extn(self, name: str) -> bool:
        return name.upper() in self.extensions

    @property
    def auth_mechanisms(self) -> list[str]:
        return self.extensions.get("AUTH", "").upper().split()

    # -- sending ----------------------------------------------------------------------------
    def send_command(self, verb: str, arg: str = "") -> bytes:
        """Format one command, record it, and expect its reply.  Refuses what the protocol
        forbids the client (LocalProtocolError): injection, a command where data or a SASL
        response belongs, anything after a command whose reply is still awaited and decides
        how the next line is read."""
        raw = format_command(verb, arg)
        self._check_can_send()
        if self.state is State.DATA:
            raise LocalProtocolError("in DATA the server reads message text: use send_data")
        if self.state is State.AUTH:
            raise LocalProtocolError("in AUTH the server reads a SASL response: "
                                     "use send_auth_response")
        self._command(raw)
        return raw

    def send_auth_response(self, text: str) -> bytes:
        """One base64 SASL response (or ``*`` to cancel) after a 334 (RFC 4954 §4)."""
        check_argument(text, "SASL response")
        if self.state is not State.AUTH:
            raise LocalProtocolError(f"no SASL exchange in progress (state {self.state.name})")
        if not text.isascii():
            raise LocalProtocolError("a SASL response is base64: ASCII only (RFC 4954 §4)")
        self._check_can_send()
        raw = text.encode("ascii") + CRLF
        self._auth_line(raw)
        return raw

    def send_data(self, message: bytes) -> bytes:
        """The message, formatted by :func:`format_data`; only after a 354 (RFC 5321 §4.1.1.4)."""
        if self.state is not State.DATA or self._pending:
            raise LocalProtocolError("message data may only be sent after a 354 reply to DATA")
        raw = format_data(message)
        self._data_size += len(raw) - 3  # as the server counts it: all but the final ".\r\n"
        self._step(CLIENT, "data", raw, {"size": self._data_size}, self.state, self.state)
        self._pending.append(_Pending(END_OF_DATA))
        return raw

    def send_raw(self, data: bytes) -> bytes:
        """Anything, as typed at a telnet prompt: no refusal, CRLF added if the last line has
        no line end.  Each line is read as the server will read it: a command, a SASL response
        or message text, by the state; lines after a barrier wait for its reply to be read."""
        if self.closed:
            raise LocalProtocolError("the session is closed")
        if not data.endswith(b"\n"):
            data += CRLF
        # Split at LF only, as the server does: a lone CR stays inside its line.
        self._held += [line + b"\n" for line in data.split(b"\n")[:-1]]
        self._release()
        return data

    def _check_can_send(self) -> None:
        if self.closed:
            raise LocalProtocolError("the session is closed")
        if self._pending and self._pending[0].event == GREETING:
            raise LocalProtocolError("wait for the server's greeting (RFC 5321 §3.1)")
        if self.tls_requested:
            raise LocalProtocolError("finish the TLS handshake first (RFC 3207 §4.2)")
        if self._held or any(p.event in BARRIERS for p in self._pending):
            raise LocalProtocolError("wait for the reply: the last command decides how the "
                                     "next line is read (RFC 2920 §3.1)")

    def _release(self) -> None:
        """Read the held raw lines until one is a barrier whose reply is not in yet."""
        while self._held and not any(p.event in BARRIERS for p in self._pending):
            line = self._held.pop(0)
            if self.state is State.DATA:
                self._data_line(line)
            elif self.state is State.AUTH:
                self._auth_line(line)
            else:
                self._command(line)

    def _command(self, raw: bytes) -> None:
        cmd = parse_command(raw.rstrip(b"\n").removesuffix(b"\r"))
        self._step(CLIENT, "command", raw, {"verb": cmd.verb, "arg": cmd.arg}, self.state,
                   self.state)
        self._pending.append(_Pending(cmd.verb))

    def _auth_line(self, raw: bytes) -> None:
        text = raw.rstrip(b"\n").removesuffix(b"\r").decode("ascii", "replace")
        self._step(CLIENT, "auth", raw, {"sasl": text}, self.state, self.state)
        self._pending.append(_Pending(AUTH_DONE))

    def _data_line(self, raw: bytes) -> None:
        # Only CRLF "." CRLF ends the data, as the server reads it (§4.1.1.4, SMTP smuggling).
        if raw == b".\r\n" and self._data_after_crlf:
            self._step(CLIENT, "data", raw, {"size": self._data_size}, self.state, self.state)
            self._pending.append(_Pending(END_OF_DATA))
            return
        self._data_size += len(raw)
        self._data_after_crlf = raw.endswith(b"\r\n")
        self._step(CLIENT, "data", raw, {}, self.state, self.state)

    # -- receiving --------------------------------------------------------------------------
    def receive(self, data: bytes) -> list[Reply]:
        """Feed bytes from the server; return the replies they completed, in order."""
        replies = []
        for reply, raw in self._reader.feed(data):
            self._on_reply(reply, raw)
            replies.append(reply)
            self._release()
        return replies

    def _on_reply(self, reply: Reply, raw: bytes) -> None:
        before = self.state
        pending = self._pending.popleft() if self._pending else None
        event = pending.event if pending else None
        self.last_reply = reply
        if event == GREETING:
            self.greeting = reply
        if reply.code == 421:
            # RFC 5321 §3.8: the service is closing, in answer to anything or to nothing.
            self.state = _next(before, TIMEOUT) or State.CLOSED
            self._close()
        elif event is not None and event != GREETING:
            self._transition(event, reply)
        kind = "greeting" if event == GREETING else "reply"
        parsed: dict[str, Any] = {"code": reply.code, "lines": list(reply.lines)}
        if pending is None:
            parsed["unsolicited"] = True
        self._step(SERVER, kind, raw, parsed, before, self.state)
        if self.closed or self.tls_requested:
            self._ignore_held()

    def _transition(self, event: str, reply: Reply) -> None:
        """Move as the server moved: the table's row for ``event`` when the reply says the
        command succeeded (2xx; 354 for DATA; 334 for AUTH; any reply ends DATA and AUTH)."""
        code, state = reply.code, self.state
        if event == END_OF_DATA or (event == AUTH_DONE and code != 334):
            target = _next(state, event)
        elif event == "DATA":
            target = _next(state, event) if code == 354 else None
        elif event == "AUTH":
            # 334 opens the exchange; a 2xx/5xx to an initial response opened and closed it.
            target = _next(state, event) if code == 334 else None
        elif 200 <= code < 300:
            target = _next(state, event)
        else:
            target = None
        if target is not None:
            self.state = target
        if event == END_OF_DATA:
            self._data_size, self._data_after_crlf = 0, True
        elif event in ("EHLO", "HELO") and 200 <= code < 300:
            self.esmtp = event == "EHLO"
            self.extensions = parse_ehlo(reply) if self.esmtp else {}
        elif event == "STARTTLS" and code == 220:
            # RFC 3207 §4.2: the server now waits for the handshake (even where the table has
            # no such row: a lenient server); forget everything learnt before TLS.
            self.extensions, self.esmtp = {}, False
            self.tls_requested = True
        elif event == "QUIT" and self.state is State.CLOSED:
            self._close()

    def _close(self) -> None:
        self.closed = True
        self._pending.clear()

    def _ignore_held(self) -> None:
        note = ("sent before the TLS handshake: the server discards it (RFC 3207 §4.2)"
                if self.tls_requested else "the session is closed")
        for line in self._held:
            self._step(CLIENT, "command", line, {"ignored": note}, self.state, self.state)
        self._held.clear()

    # -- transport events -------------------------------------------------------------------
    def tls_started(self) -> None:
        """The transport finished the TLS handshake: start over (RFC 3207 §4.2)."""
        self.tls_requested = False
        self.tls = True
        self._event("TLS started", "tls")

    def connection_lost(self, why: str = "connection lost") -> None:
        """The connection is gone: whatever was awaited will not come."""
        if not self.closed:
            self._event(why, "closed")
        self._close()
        self.state = _next(self.state, CLOSE) or State.CLOSED  # the table's "connection ends"

    # -- recording --------------------------------------------------------------------------
    def _step(self, direction: str, kind: str, raw: bytes, parsed: dict[str, Any],
              before: State, after: State) -> None:
        if self.on_step:
            self.on_step(direction, kind, raw, parsed, before.name, after.name)

    def _event(self, text: str, kind: str) -> None:
        self._step(EVENT, "event", text.encode(), {"event": kind}, self.state, self.state)
