"""The POP3 client's protocol core, free of I/O (RFC 1939, with RFC 2449 CAPA and RESP-CODES,
RFC 5034 AUTH and RFC 2595 STLS).

:class:`ClientSession` mirrors :class:`mailproto.pop3.server.ServerSession`: it formats the bytes
to send and reads the bytes that came back, and never touches a socket, a thread or a clock.
A transport (``mailproto.net.pop3_client``) or a test drives it::

    client = ClientSession(on_step=recorder)
    client.receive(greeting_bytes)               # [Response(+OK ... <1896.697@dbc.test>)]
    send(client.send_command("RETR", "1"))       # b"RETR 1\\r\\n"
    while client.awaiting: responses += client.receive(recv())
    if client.tls_requested: start TLS, then client.tls_started()

Whether a ``+OK`` brings a multi-line block depends on the command (RFC 1939 §3), so the core
remembers what each response answers.  The state is tracked through
:data:`mailproto.pop3.states.TABLE` from the responses, exactly as the server moves: the steps
the client records carry the same states as the server's.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from .. import auth
from ..errors import LocalProtocolError, RemoteProtocolError
from ..transcript import CLIENT, EVENT, SERVER, StepSink
from .states import AUTH_LIST, CLOSE, TABLE, UPDATE_DONE, State
from .wire import CRLF, parse_command, parse_status

#: A status line longer than this is not POP3 (RFC 2449 §4 says 512); it guards our memory only.
MAX_STATUS_LINE = 65536
GREETING = "<greeting>"
#: A line of a SASL exchange (RFC 5034 §4): the answer to a ``+ challenge``.
SASL = "<SASL response>"
#: Lines whose response decides how the next line is read (a command or a SASL response, nothing
#: before TLS, nothing at all) or in which state (a login): the client waits for that response
#: before it sends more, so every line it records carries the state the server reads it in.
BARRIERS = frozenset({GREETING, "PASS", "APOP", "AUTH", SASL, "STLS", "QUIT"})
_FORBIDDEN = ("\r", "\n", "\0")


def _next(state: State, event: str) -> State | None:
    """The table's row (typed: the table itself knows only Enum)."""
    return cast("State | None", TABLE.next(state, event))


# -- pure helpers -------------------------------------------------------------------------
def check_argument(text: str, what: str = "argument") -> None:
    """Refuse CR, LF and NUL: inside a command they would start a second command (injection;
    poplib sends them as given)."""
    for ch in _FORBIDDEN:
        if ch in text:
            raise LocalProtocolError(f"{what} contains {ch!r}: CR, LF and NUL cannot appear "
                                     "inside a POP3 command (RFC 1939 §3)")


def format_command(verb: str, arg: str = "") -> bytes:
    """``KEYWORD [arguments] CRLF`` (RFC 1939 §3), UTF-8 for non-ASCII passwords (RFC 6856)."""
    if not verb or not verb.isascii() or not all(c.isalnum() or c == "-" for c in verb):
        raise LocalProtocolError(f"not a command keyword: {verb!r}")
    check_argument(arg)
    line = f"{verb.upper()} {arg}" if arg else verb.upper()
    return line.encode("utf-8") + CRLF


def is_multiline(verb: str, args: tuple[str, ...]) -> bool:
    """True if a ``+OK`` to this command is followed by a block ending in ``.`` (RFC 1939 §5,
    §7: LIST and UIDL without argument, RETR, TOP; RFC 2449 §5 CAPA; RFC 5034 §4 AUTH with no
    mechanism, which lists them as RFC 1734 servers did)."""
    verb = verb.upper()
    return verb in ("RETR", "TOP", "CAPA") or (verb in ("LIST", "UIDL", "AUTH") and not args)


_TIMESTAMP = re.compile(rb"(<[^<>]*>)[ \t]*\Z")


def find_timestamp(status_line: bytes) -> str | None:
    """The APOP timestamp: the ``<...>`` that ends the greeting line (RFC 1939 §7), or None."""
    match = _TIMESTAMP.search(status_line.rstrip(b"\r\n"))
    if match is None or not match.group(1).isascii():
        return None
    return match.group(1).decode("ascii")


def parse_capa(response: Response) -> dict[str, list[str]]:
    """CAPA's block (RFC 2449 §5): capability name (upper-case) → its arguments."""
    caps: dict[str, list[str]] = {}
    for line in response.lines:
        words = line.decode("utf-8", "replace").split()
        if words:
            caps[words[0].upper()] = words[1:]
    return caps


#: The SASL client steps are the same for both protocols (mailproto.auth).
auth_steps = auth.client_steps


# -- reading responses --------------------------------------------------------------------
@dataclass(frozen=True)
class Response:
    """One server response: a status line, the block after it, or a SASL challenge.

    ``body`` is the block of a multi-line response, unstuffed, line ends as sent (CRLF), without
    the terminating ``.`` line: for RETR the message itself.  ``challenge`` is the base64 text of
    a ``+`` continuation line during AUTH (RFC 5034 §4); ``positive`` is then False.
    """

    positive: bool
    text: str = ""
    #: RFC 2449 §8 response code without brackets: ``IN-USE``, ``AUTH``, ``SYS/TEMP`` ...
    code: str | None = None
    body: bytes | None = None
    challenge: str | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def status_line(self) -> str:
        return self.raw.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")

    @property
    def lines(self) -> list[bytes]:
        """The block's lines without their line ends (poplib's shape); [] if single-line."""
        if not self.body:
            return []
        return [line.removesuffix(b"\r") for line in self.body.split(b"\n")[:-1]]

    def parsed(self) -> dict[str, Any]:
        """What the transcript records, with the keys the server core records."""
        if self.challenge is not None:
            data = auth.b64decode_strict(self.challenge)
            return {"continuation": data.decode("utf-8", "replace") if data is not None
                    else self.challenge}
        parsed: dict[str, Any] = {"ok": self.positive, "text": self.text}
        if self.code is not None:
            parsed["code"] = self.code
        return parsed

    def __str__(self) -> str:
        return self.status_line


_BLOCK_END = re.compile(rb"(?:\A|(?<=\n))\.\r?\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


class ResponseReader:
    """Cut responses out of bytes in any pieces, down to one byte at a time (RFC 1939 §3).

    The caller says, for each response, whether a ``+OK`` starts a block and whether a ``+``
    continuation may come, because only the command it answers tells.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0  # no LF in _buf[:_scan]: byte-at-a-time input stays linear
        self._status: bytes | None = None  # the status line of the block being read
        self._block = bytearray()
        self._end = b""  # the terminator line as it came: ".\r\n" (or ".\n")

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def clear(self) -> None:
        self._buf.clear()
        self._scan = 0

    def next(self, multiline: bool, continuation: bool = False) -> Response | None:
        """The next complete response, or None until more bytes come."""
        if self._status is None:
            raw = self._line()
            if raw is None:
                return None
            # A bare LF ends a line too: servers typed by hand send it.
            line = raw.rstrip(b"\n").removesuffix(b"\r")
            if continuation and (line == b"+" or line.startswith(b"+ ")):
                return Response(False, challenge=line[2:].decode("ascii", "replace"), raw=raw)
            try:
                reply = parse_status(line)
            except ValueError as exc:
                raise RemoteProtocolError(str(exc)) from None
            if not (reply.positive and multiline):  # -ERR is always one line (RFC 1939 §3)
                return Response(reply.positive, reply.text, reply.code, raw=raw)
            self._status = raw
        if not self._read_block():
            return None
        status, block = self._status, bytes(self._block)
        self._status, self._block = None, bytearray()
        reply = parse_status(status.rstrip(b"\n").removesuffix(b"\r"))
        # RFC 1939 §3: a line that starts with "." and is not the end loses that first dot.
        body = _LEADING_DOT.sub(b"", block)
        return Response(True, reply.text, reply.code, body=body, raw=status + block + self._end)

    def _line(self) -> bytes | None:
        nl = self._buf.find(b"\n", self._scan)
        if nl < 0:
            self._scan = len(self._buf)
            if self._scan > MAX_STATUS_LINE:
                raise RemoteProtocolError(f"status line longer than {MAX_STATUS_LINE} bytes")
            return None
        raw = bytes(self._buf[: nl + 1])
        del self._buf[: nl + 1]
        self._scan = 0
        return raw

    def _read_block(self) -> bool:
        """Move the complete lines into the block; True once the ``.`` line was read."""
        last = self._buf.rfind(b"\n", self._scan)
        if last < 0:
            self._scan = len(self._buf)
            return False
        lines = bytes(self._buf[: last + 1])  # whole lines: it starts at a line start
        end = _BLOCK_END.search(lines)
        cut = end.end() if end else last + 1
        self._block += lines[: end.start()] if end else lines
        self._end = end.group() if end else b""
        del self._buf[:cut]
        self._scan = 0
        return end is not None


# -- the session --------------------------------------------------------------------------
@dataclass
class _Pending:
    """A line sent that waits for its response: the event it stands for in the state table."""

    event: str  # a keyword, AUTH_LIST, GREETING or SASL
    multiline: bool = False


class ClientSession:
    """One POP3 client session, sans-I/O.  See the module docstring for the driving loop."""

    def __init__(self, on_step: StepSink | None = None) -> None:
        self.on_step = on_step
        self.state = cast(State, TABLE.initial)
        #: CAPA's answer (RFC 2449 §5), forgotten after STLS (RFC 2595 §4).
        self.capabilities: dict[str, list[str]] = {}
        self.timestamp: str | None = None  # the greeting's <...>, for APOP (RFC 1939 §7)
        self.tls = False
        self.tls_requested = False
        self.closed = False
        self.greeting: Response | None = None
        self.last_response: Response | None = None
        #: The -ERR with which the server ended the session unasked (a refused greeting, an
        #: autologout, a shutdown), if it did.
        self.closing: Response | None = None
        self._reader = ResponseReader()
        self._pending: deque[_Pending] = deque([_Pending(GREETING)])
        self._held: list[bytes] = []  # raw lines sent after a barrier, read once it is answered
        self._sasl = False  # inside an AUTH exchange: lines are SASL responses

    @property
    def awaiting(self) -> int:
        """How many responses are still owed to us."""
        return len(self._pending)

    # -- sending ----------------------------------------------------------------------------
    def send_command(self, verb: str, arg: str = "") -> bytes:
        """Format one command, record it, and expect its response.  Refuses what the protocol
        forbids the client (LocalProtocolError): injection, a command where a SASL response
        belongs, anything while a response that decides how the next line is read is owed."""
        raw = format_command(verb, arg)
        self._check_can_send()
        if self._sasl:
            raise LocalProtocolError("the server reads a SASL response: use send_auth_response")
        self._command(raw)
        return raw

    def send_auth_response(self, text: str) -> bytes:
        """One base64 SASL response (or ``*`` to cancel) after a ``+`` line (RFC 5034 §4)."""
        check_argument(text, "SASL response")
        if not self._sasl:
            raise LocalProtocolError("no SASL exchange in progress")
        if not text.isascii():
            raise LocalProtocolError("a SASL response is base64: ASCII only (RFC 5034 §4)")
        self._check_can_send()
        raw = text.encode("ascii") + CRLF
        self._auth_line(raw)
        return raw

    def send_raw(self, data: bytes) -> bytes:
        """Anything, as typed at a telnet prompt: no refusal, CRLF added if the last line has
        no line end.  Each line is read as the server will read it (a command or a SASL
        response); lines after a barrier wait for its response to be read."""
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
            raise LocalProtocolError("wait for the server's greeting (RFC 1939 §4)")
        if self.tls_requested:
            raise LocalProtocolError("finish the TLS handshake first (RFC 2595 §4)")
        if self._held or any(p.event in BARRIERS for p in self._pending):
            raise LocalProtocolError("wait for the response: the last command decides how or "
                                     "in which state the next line is read (RFC 2449 §6.6)")

    def _release(self) -> None:
        """Read the held raw lines until one is a barrier whose response is not in yet."""
        while self._held and not any(p.event in BARRIERS for p in self._pending):
            line = self._held.pop(0)
            if self._sasl:
                self._auth_line(line)
            else:
                self._command(line)

    def _command(self, raw: bytes) -> None:
        cmd = parse_command(raw.rstrip(b"\n").removesuffix(b"\r"))
        self._step(CLIENT, "command", raw, {"verb": cmd.verb, "arg": cmd.arg}, self.state,
                   self.state)
        event = AUTH_LIST if cmd.verb == "AUTH" and not cmd.args else cmd.verb
        self._pending.append(_Pending(event, is_multiline(cmd.verb, cmd.args)))

    def _auth_line(self, raw: bytes) -> None:
        text = raw.rstrip(b"\n").removesuffix(b"\r").decode("ascii", "replace")
        self._step(CLIENT, "auth", raw, {"sasl": text}, self.state, self.state)
        self._pending.append(_Pending(SASL))

    # -- receiving --------------------------------------------------------------------------
    def receive(self, data: bytes) -> list[Response]:
        """Feed bytes from the server; return the responses they completed, in order."""
        self._reader.feed(data)
        responses = []
        while not self.closed and not self.tls_requested:
            pending = self._pending[0] if self._pending else None
            response = self._reader.next(
                pending.multiline if pending else False,
                continuation=pending is not None and pending.event in ("AUTH", SASL))
            if response is None:
                break
            if pending is not None:
                self._pending.popleft()
            self._on_response(response, pending)
            responses.append(response)
            self._release()
        if self.tls_requested and self._reader.buffered:
            # RFC 2595 §4: nothing may come between +OK and the handshake; bytes that did were
            # not protected by TLS and would pass for answers once it runs (response injection).
            self._event(f"{self._reader.buffered} bytes sent before the TLS handshake "
                        "discarded", "error")
            self._reader.clear()
        return responses

    def _on_response(self, response: Response, pending: _Pending | None) -> None:
        before = self.state
        event = pending.event if pending else None
        self.last_response = response
        parsed = response.parsed()
        if response.body is not None:  # the keys the server records for a block
            parsed.update(multiline=True, octets=len(response.raw), complete=True,
                          truncated=False)
            if event in ("CAPA", AUTH_LIST):
                parsed["lines"] = [line.decode("utf-8", "replace") for line in response.lines]
        if event is None or (event == GREETING and not response.positive):
            # A -ERR nobody asked for (autologout, RFC 1939 §3; shutdown) or instead of the
            # greeting: the server is closing the connection.
            if event is None:
                parsed["unsolicited"] = True
            if not response.positive:
                self.closing = response
                self.state = _next(before, CLOSE) or State.CLOSED
                self._close()
        elif event == GREETING:
            self.greeting = response
            self.timestamp = find_timestamp(response.raw)
        else:
            self._transition(event, response)
        kind = "greeting" if event == GREETING else "reply"
        self._step(SERVER, kind, response.raw, parsed, before, self.state)
        if self.closed or self.tls_requested:
            self._ignore_held()

    def _transition(self, event: str, response: Response) -> None:
        """Move as the server moved: the table's row for ``event`` when the response says the
        command succeeded; a ``+`` line keeps the state (RFC 5034 §4)."""
        state = self.state
        if response.challenge is not None:
            self._sasl = True
            return
        if event in ("AUTH", SASL):
            self._sasl = False
            target = _next(state, "AUTH") if response.positive else None
        elif event == "QUIT" and state is State.TRANSACTION:
            # RFC 1939 §6: QUIT in TRANSACTION enters UPDATE whatever comes back; a -ERR only
            # says some removals failed.  UPDATE then ends the session.
            update = _next(state, "QUIT")
            target = _next(update, UPDATE_DONE) if update else None
        else:
            target = _next(state, event) if response.positive else None
        if target is not None:
            self.state = target
        if event == "CAPA" and response.positive:
            self.capabilities = parse_capa(response)
        elif event == "STLS" and response.positive:
            # RFC 2595 §4: the server now waits for the handshake; what CAPA said before TLS
            # may have been forged by a man in the middle: forget it.
            self.capabilities = {}
            self.tls_requested = True
        if self.state is State.CLOSED:
            self._close()

    def _close(self) -> None:
        self.closed = True
        self._pending.clear()
        self._sasl = False

    def _ignore_held(self) -> None:
        note = ("sent before the TLS handshake: the server discards it (RFC 2595 §4)"
                if self.tls_requested else "the session is closed")
        for line in self._held:
            self._step(CLIENT, "command", line, {"ignored": note}, self.state, self.state)
        self._held.clear()

    # -- transport events -------------------------------------------------------------------
    def tls_started(self) -> None:
        """The transport finished the TLS handshake: AUTHORIZATION again, no new greeting
        (RFC 2595 §4)."""
        self.tls_requested = False
        self.tls = True
        self._event("TLS started", "tls")

    def connection_lost(self, why: str = "connection lost") -> None:
        """The connection is gone: whatever was awaited will not come, nothing is removed
        (RFC 1939 §6: no UPDATE without QUIT)."""
        if not self.closed:
            self.state = _next(self.state, CLOSE) or State.CLOSED
            self._event(why, "closed")
        self._close()
        self.state = State.CLOSED

    # -- recording --------------------------------------------------------------------------
    def _step(self, direction: str, kind: str, raw: bytes, parsed: dict[str, Any],
              before: State, after: State) -> None:
        if self.on_step:
            self.on_step(direction, kind, raw, parsed, before.name, after.name)

    def _event(self, text: str, kind: str) -> None:
        self._step(EVENT, "event", text.encode(), {"event": kind}, self.state, self.state)
