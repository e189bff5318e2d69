"""The POP3 server's protocol core, free of network I/O (RFC 1939, with RFC 2449 CAPA and
RESP-CODES, RFC 3206, RFC 5034 AUTH and RFC 2595 STLS).

:class:`ServerSession` takes the bytes a client sent and returns the bytes to send back.  It never
touches a socket, a thread or asyncio; the clock (through ``token``), the host name and the mail
store are given to it.  A transport (``mailproto.net``) or the in-memory pair drives it::

    session = ServerSession(config, store, peer_ip="127.0.0.1")
    send(session.initiate())                  # +OK greeting with the APOP timestamp
    send(session.receive(bytes_from_client))  # replies, in order, one per command
    while session.has_more_output:            # a long RETR: bounded pieces, as the peer reads
        send(session.more())
    if session.tls_requested: start TLS, then session.tls_started()
    if session.closed: close the connection

``receive`` and ``more`` return at most about :data:`OUTPUT_BUDGET` octets of message text at a
time: RETR and TOP read a big file in chunks, so a 100 MB message never sits in memory (a small
one is read and answered whole).  Commands
pipelined behind a RETR wait in the input buffer until it is out (RFC 2449 §6.6: responses in
order).  Every transition goes through :data:`mailproto.pop3.states.TABLE`; ordinary failures are
``-ERR`` replies, and no exception escapes ``receive``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .. import auth
from ..store import Maildir, Users, valid_username
from ..transcript import CLIENT, EVENT, SERVER, StepSink
from . import replies as R
from .maildrop import Maildrop, Message
from .states import AUTH_LIST, CLOSE, COMMANDS, TABLE, TIMEOUT, UPDATE_DONE, State
from .wire import (
    CRLF,
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    Command,
    Reply,
    err,
    ok,
    parse_command,
    printable,
)

log = logging.getLogger("mailproto.pop3")

#: Octets of output after which ``receive``/``more`` stop and let the transport send.
OUTPUT_BUDGET = 65536
#: Octets of a multi-line response kept in the transcript (the rest is counted, not kept).
TRACE_LIMIT = 65536
#: LIST and UIDL lines per output piece.
_LINES_PER_PIECE = 1024

_connections = itertools.count(1)


class Body(Protocol):
    """A multi-line response body being streamed: wire pieces, then ``close`` when abandoned."""

    def __next__(self) -> bytes: ...
    def close(self) -> None: ...


class MailStore(Protocol):
    users: Users

    def maildir(self, user: str) -> Maildir: ...


@dataclass
class ServerConfig:
    """Policy and limits.  Defaults follow Dovecot where the RFCs leave a choice."""

    hostname: str = "mail.test"
    stls: bool = False  # the transport can do TLS (RFC 2595)
    #: Offer USER/PASS and SASL PLAIN/LOGIN before TLS.  The transport sets it for loopback.
    allow_plaintext_auth: bool = True
    #: No login at all before STLS.
    require_tls_for_auth: bool = False
    max_auth_failures: int = 3
    auth_failure_delay: float = 1.0  # seconds; the transport waits this long before the -ERR
    hard_error_limit: int = 20  # unknown commands, bad arguments, wrong state
    software: str = "mailproto"


class ServerSession:
    """One POP3 session, sans-I/O.  See the module docstring for the driving loop."""

    def __init__(self, config: ServerConfig, store: MailStore, peer_ip: str = "127.0.0.1",
                 clock: Callable[[], float] = time.time, on_step: StepSink | None = None,
                 tls: bool = False, token: Callable[[], str] | None = None) -> None:
        self.config = config
        self.store = store
        self.peer_ip = peer_ip
        self.clock = clock
        self.on_step = on_step
        self.tls = tls
        #: Makes the greeting's APOP timestamp and CRAM-MD5 challenges: unique per call.
        self._token = token or self._default_token
        self.state = State.AUTHORIZATION
        self.timestamp = ""  # the greeting's <...>, which APOP digests (RFC 1939 §7)
        self.user: str | None = None  # logged in as
        self.maildrop: Maildrop | None = None
        self.closed = False
        self.tls_requested = False
        #: Seconds the transport should wait before sending what ``receive`` returned last.
        self.delay = 0.0
        self.errors = 0
        self.auth_failures = 0
        self._user_name: str | None = None  # from USER, for PASS
        self._sasl: auth.SASLExchange | None = None
        self._buf = bytearray()
        self._discarding = False  # inside an overlong line
        self._out: list[bytes] = []
        self._out_size = 0
        self._budget_hit = False
        # the multi-line response being streamed
        self._stream: Body | None = None
        self._stream_reply: Reply | None = None
        self._stream_before = self.state
        self._stream_trace: bytearray | None = None
        self._stream_octets = 0

    def _default_token(self) -> str:
        """``<pid.n.clock@host>``: RFC 1939 §7's example shape, with a counter so two
        connections in the same microsecond still differ."""
        micros = int(self.clock() * 1_000_000)
        return f"<{os.getpid()}.{next(_connections)}.{micros}@{self.config.hostname}>"

    # -- driving ---------------------------------------------------------------------------
    def initiate(self) -> bytes:
        """The greeting (RFC 1939 §4), the APOP timestamp last on the line (poplib and curl
        look for it there)."""
        self.timestamp = self._token()
        reply = ok(f"{self.config.hostname} POP3 server ready {self.timestamp}")
        self._send(reply, "greeting", self.state)
        return self._flush()

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the client; return what to send (possibly b"").

        Check :attr:`has_more_output` afterwards: a long response comes in pieces.
        """
        self.delay = 0.0
        if self.closed or self.tls_requested:
            return b""
        self._buf += data
        try:
            self._run()
        except Exception:  # a bug must cost this session, never the server or the maildrop
            log.exception("POP3 session: internal error")
            self._internal_error()
        return self._flush()

    def more(self) -> bytes:
        """The next piece of output while :attr:`has_more_output` is true."""
        return self.receive(b"")

    @property
    def has_more_output(self) -> bool:
        """True while a response is being streamed, or pipelined commands wait for their turn."""
        if self._stream is not None:
            return True
        if self.closed or self.tls_requested:
            return False
        return self._budget_hit and b"\n" in self._buf

    def tls_started(self) -> None:
        """The transport finished the TLS handshake: AUTHORIZATION again, no new greeting
        (RFC 2595 §4)."""
        self.tls_requested = False
        self.tls = True
        self._user_name = None
        self._sasl = None
        self._event("TLS started", "tls")

    def timeout(self) -> bytes:
        """The idle timer fired: autologout without UPDATE (RFC 1939 §3)."""
        return self._end(TIMEOUT, R.TIMEOUT)

    def shutdown(self) -> bytes:
        """The server is stopping: -ERR and close, nothing removed."""
        return self._end(CLOSE, R.SHUTDOWN)

    def connection_lost(self) -> None:
        """The client went away: no UPDATE, the lock is released (RFC 1939 §6)."""
        if not self.closed:
            self._drop_stream()
            self.state = TABLE.next(self.state, CLOSE) or State.CLOSED
            self._event("connection lost", "closed")
        self._release()
        self.closed = True

    def _end(self, event: str, reply: Reply) -> bytes:
        if self.closed:
            return b""
        before = self.state
        streaming = self._stream is not None
        self._drop_stream()
        self.state = TABLE.next(before, event) or State.CLOSED
        self.closed = True
        self._release()
        if not streaming:  # never an -ERR in the middle of a message
            self._send(reply, "reply", before)
        return self._flush()

    def _internal_error(self) -> None:
        streaming = self._stream is not None
        before = self.state
        try:
            self._drop_stream()
        except Exception:  # already failing: releasing the lock matters more
            pass
        self.state = TABLE.next(before, CLOSE) or State.CLOSED
        self.closed = True
        self._release()
        self._buf.clear()
        if not streaming:
            self._send(err("Internal server error, closing", "SYS/TEMP"), "reply", before)

    def _release(self) -> None:
        if self.maildrop is not None:
            self.maildrop.close()
            self.maildrop = None

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

    def _error(self, reply: Reply, before: State) -> None:
        """-ERR for a protocol error (unknown command, bad argument, wrong state); too many of
        them and the server hangs up, saying so in the same reply."""
        self.errors += 1
        if self.errors >= self.config.hard_error_limit:
            reply = replace(reply, text=reply.text + R.TOO_MANY_ERRORS)
            self._hang_up()
        self._send(reply, "reply", before)

    def _hang_up(self) -> None:
        self.state = TABLE.next(self.state, CLOSE) or State.CLOSED
        self.closed = True
        self._release()

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

    # -- command lines ---------------------------------------------------------------------
    def _run(self) -> None:
        """Answer buffered commands in order until the input or the output budget runs out."""
        self._budget_hit = False
        while True:
            if self._stream is not None:
                self._drain()
                if self._stream is not None:
                    return  # budget used up in the middle of a response
                continue
            if self.closed or self.tls_requested:
                # RFC 2595 §4 / CVE-2011-0411: bytes pipelined after STLS are discarded.
                self._buf.clear()
                return
            if self._out_size >= OUTPUT_BUDGET:
                self._budget_hit = True
                return
            if not self._buf or not self._read_line():
                return

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

    def _command(self, cmd: Command, raw: bytes) -> None:
        before = self.state
        self._trace_client(raw, {"verb": cmd.verb, "arg": cmd.arg}, before)
        if not cmd.verb:
            self._error(R.EMPTY_COMMAND, before)
            return
        handler = getattr(self, "_do_" + cmd.verb, None) if cmd.verb in COMMANDS else None
        if handler is None:  # LAST (RFC 1725, gone from RFC 1939) lands here too
            self._error(R.unknown_command(cmd.verb), before)
            return
        if not TABLE.allows(before, cmd.verb):
            self._error(R.not_in_state(cmd.verb, before), before)
            return
        handler(cmd, before)

    def _go(self, event: str) -> None:
        """Take the table's transition for ``event``, which the caller made succeed."""
        target = TABLE.next(self.state, event)
        assert target is not None, (self.state, event)
        self.state = target

    # -- AUTHORIZATION: policy -------------------------------------------------------------
    def _plaintext_allowed(self) -> bool:
        """USER/PASS, PLAIN and LOGIN send the password itself (RFC 2595 §2.3)."""
        if self.config.require_tls_for_auth and not self.tls:
            return False
        return self.tls or self.config.allow_plaintext_auth

    def _mechanisms(self) -> list[str]:
        """The SASL mechanisms AUTH accepts now (RFC 5034 §4)."""
        if self.config.require_tls_for_auth and not self.tls:
            return []
        if self._plaintext_allowed():
            return list(auth.MECHANISMS)
        return [m for m in auth.MECHANISMS if m not in auth.PLAINTEXT_MECHANISMS]

    def _capabilities(self) -> list[str]:
        """RFC 2449 §5: what is available in AUTHORIZATION is announced in both states."""
        caps = ["TOP"]
        if self._plaintext_allowed():
            caps.append("USER")
        mechs = self._mechanisms()
        if mechs:
            caps.append("SASL " + " ".join(mechs))
        caps += ["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UIDL", "EXPIRE NEVER",
                 f"IMPLEMENTATION {self.config.software}"]
        if self.config.stls and not self.tls:
            caps.append("STLS")
        return caps

    # -- AUTHORIZATION: the commands -------------------------------------------------------
    def _do_CAPA(self, cmd: Command, before: State) -> None:
        if cmd.args:
            self._error(R.syntax("CAPA"), before)
            return
        self._go("CAPA")
        self._reply(replace(R.CAPA_OK, lines=tuple(self._capabilities())), before)

    def _do_USER(self, cmd: Command, before: State) -> None:
        if len(cmd.args) != 1:
            self._error(R.syntax("USER name"), before)
            return
        if not self._plaintext_allowed():
            self._reply(R.PLAINTEXT_DISALLOWED, before)
            return
        self._user_name = cmd.args[0]
        self._go("USER")
        self._reply(R.user_ok(self._user_name), before)

    def _do_PASS(self, cmd: Command, before: State) -> None:
        name, self._user_name = self._user_name, None
        if name is None:
            self._error(R.NO_USER, before)
            return
        if not self._plaintext_allowed():
            self._reply(R.PLAINTEXT_DISALLOWED, before)
            return
        # RFC 1939 §7: the whole rest of the line is the password, spaces included.
        users = self.store.users
        right = valid_username(name) and auth.check_password(users.secret, name, cmd.arg)
        self._login(name if right else None, "PASS", before)

    def _do_APOP(self, cmd: Command, before: State) -> None:
        if len(cmd.args) != 2:
            self._error(R.syntax("APOP name digest"), before)
            return
        if self.config.require_tls_for_auth and not self.tls:
            self._reply(R.TLS_REQUIRED, before)
            return
        self._user_name = None
        name, digest = cmd.args
        right = (len(digest) == 32 and valid_username(name)
                 and all(c in "0123456789abcdefABCDEF" for c in digest)
                 and auth.check_apop(self.store.users.secret, name, self.timestamp, digest))
        self._login(name if right else None, "APOP", before)

    def _do_AUTH(self, cmd: Command, before: State) -> None:
        args = cmd.args
        self._user_name = None
        if not args:  # list the mechanisms, as RFC 1734 servers did (RFC 5034 allows it)
            self._go(AUTH_LIST)
            self._reply(ok("Supported SASL mechanisms follow", self._mechanisms()), before)
            return
        if len(args) > 2:
            self._error(R.syntax("AUTH mechanism [initial-response]"), before)
            return
        mech = args[0].upper()
        if mech not in auth.MECHANISMS:
            self._reply(R.UNKNOWN_MECHANISM, before)
            return
        if mech not in self._mechanisms():
            plain = mech in auth.PLAINTEXT_MECHANISMS and not self.config.require_tls_for_auth
            self._reply(R.PLAINTEXT_DISALLOWED if plain else R.TLS_REQUIRED, before)
            return
        self._sasl = auth.SASLExchange(mech, self.store.users.secret, self._token())
        self._auth_result(self._sasl.start(args[1] if len(args) == 2 else None), before)

    def _auth_response(self, line: bytes, raw: bytes) -> None:
        before = self.state
        self._trace_client(raw, {"sasl": line.decode("ascii", "replace")}, before)
        assert self._sasl is not None
        self._auth_result(self._sasl.respond(line.decode("ascii", "replace")), before)

    def _auth_result(self, result: auth.Result, before: State) -> None:
        if isinstance(result, auth.Challenge):
            # RFC 5034 §4: "+" SP base64 challenge; the state stays AUTHORIZATION.
            raw = b"+ " + auth.b64encode(result.data).encode("ascii") + CRLF
            self._emit(raw)
            if self.on_step:
                self.on_step(SERVER, "reply", raw, {"continuation": result.data.decode(
                    "utf-8", "replace")}, before.name, self.state.name)
            return
        self._sasl = None
        if isinstance(result, auth.Success):
            self._login(result.user, "AUTH", before)
        elif result.cancelled:
            self._reply(R.AUTH_CANCELLED, before)
        elif result.malformed:
            self._reply(err(result.reason), before)
        else:
            self._login(None, "AUTH", before)

    def _login(self, name: str | None, event: str, before: State) -> None:
        """Credentials checked: lock and open the maildrop (RFC 1939 §8), or count a failure."""
        canon = self.store.users.canonical(name) if name is not None else None
        if canon is None or not valid_username(canon):
            self.auth_failures += 1
            self.delay = self.config.auth_failure_delay
            if self.auth_failures >= self.config.max_auth_failures:
                self._hang_up()
                self._reply(R.AUTH_FAILED_CLOSING, before)
            else:
                self._reply(R.AUTH_FAILED, before)
            return
        try:
            drop = Maildrop.open(self.store.maildir(canon))
        except (OSError, ValueError) as exc:
            self._event(f"cannot open the maildrop of {canon}: {exc}", "error")
            self._reply(R.MAILDROP_ERROR, before)
            return
        if drop is None:
            self._reply(R.IN_USE, before)  # RFC 2449 §8.1.1; the client may try again later
            return
        self.user, self.maildrop = canon, drop
        self._go(event)
        self._reply(R.maildrop_has(*drop.stat()), before)

    def _do_STLS(self, cmd: Command, before: State) -> None:
        if cmd.args:
            self._error(R.syntax("STLS"), before)
        elif self.tls:
            self._reply(R.TLS_ACTIVE, before)
        elif not self.config.stls:
            self._reply(R.NO_TLS, before)
        else:
            self._user_name = None
            self._go("STLS")
            self.tls_requested = True
            self._reply(R.BEGIN_TLS, before)

    def _do_QUIT(self, cmd: Command, before: State) -> None:
        # Arguments are ignored: a client that wants to leave is never kept.
        if before is State.AUTHORIZATION:
            self._go("QUIT")
            self.closed = True
            self._reply(R.signing_off(self.config.hostname), before)
            return
        drop = self.maildrop
        assert drop is not None
        self._go("QUIT")  # UPDATE (RFC 1939 §6)
        marked = sum(1 for m in drop.messages if m.deleted)
        self._event(f"UPDATE: removing {marked} message{'' if marked == 1 else 's'} marked "
                    "deleted", "update")
        _removed, failed = drop.update()
        left = len(drop.live())
        self._release()
        self._go(UPDATE_DONE)
        self.closed = True
        if failed:
            self._reply(R.UPDATE_FAILED, before)
        else:
            self._reply(R.signing_off(self.config.hostname, left), before)

    # -- TRANSACTION -----------------------------------------------------------------------
    def _message(self, text: str, before: State) -> Message | None:
        """The message numbered ``text``, or None after answering -ERR."""
        assert self.maildrop is not None
        number = _number(text)
        if number is None:
            self._error(R.bad_number(text), before)
            return None
        message = self.maildrop.get(number)
        if message is None:
            self._reply(R.no_such_message(number, len(self.maildrop.messages)), before)
            return None
        if message.deleted:
            self._reply(R.already_deleted(number), before)
            return None
        return message

    def _do_STAT(self, cmd: Command, before: State) -> None:
        if cmd.args:
            self._error(R.syntax("STAT"), before)
            return
        assert self.maildrop is not None
        count, octets = self.maildrop.stat()
        self._go("STAT")
        self._reply(ok(f"{count} {octets}"), before)  # RFC 1939 §5: exactly "nn mm"

    def _do_LIST(self, cmd: Command, before: State) -> None:
        self._listing(cmd, before, "LIST [msg]", lambda m: str(m.size))

    def _do_UIDL(self, cmd: Command, before: State) -> None:
        self._listing(cmd, before, "UIDL [msg]", lambda m: m.uid)

    def _listing(self, cmd: Command, before: State, usage: str,
                 value: Callable[[Message], str]) -> None:
        """LIST and UIDL: one message on the status line, or all of them multi-line."""
        assert self.maildrop is not None
        if len(cmd.args) > 1:
            self._error(R.syntax(usage), before)
            return
        if cmd.args:
            message = self._message(cmd.args[0], before)
            if message is not None:
                self._go(cmd.verb)
                self._reply(ok(f"{message.number} {value(message)}"), before)
            return
        live = self.maildrop.live()
        self._go(cmd.verb)
        if cmd.verb == "LIST":
            count, octets = self.maildrop.stat()
            status = ok(f"{count} message{'' if count == 1 else 's'} ({octets} octets)")
        else:
            status = ok("unique-id listing follows")
        self._start_stream(status, _lines(f"{m.number} {value(m)}" for m in live), before)

    def _do_RETR(self, cmd: Command, before: State) -> None:
        args = cmd.args
        if len(args) != 1:
            self._error(R.syntax("RETR msg"), before)
            return
        message = self._message(args[0], before)
        if message is not None:
            self._send_message(message, None, ok(f"{message.size} octets"), before, "RETR")

    def _do_TOP(self, cmd: Command, before: State) -> None:
        args = cmd.args
        if len(args) != 2:
            self._error(R.syntax("TOP msg n"), before)
            return
        lines = _number(args[1], allow_zero=True)
        if lines is None:
            self._error(err(f"Invalid number of lines: {printable(args[1], 20) or '?'}"),
                        before)
            return
        message = self._message(args[0], before)
        if message is not None:
            self._send_message(message, lines, ok("top of message follows"), before, "TOP")

    def _send_message(self, message: Message, lines: int | None, status: Reply, before: State,
                      verb: str) -> None:
        """RETR or TOP: the file is opened (a small one read) before the ``+OK``, so a failure
        is still ``-ERR [SYS/TEMP]`` (RFC 3206 §4)."""
        assert self.maildrop is not None
        try:
            text = self.maildrop.text(message, lines)
        except OSError as exc:
            self._event(f"cannot open message {message.number}: {exc.strerror or exc}", "error")
            self._reply(err(f"Cannot read message {message.number}", "SYS/TEMP"), before)
            return
        self._go(verb)
        if isinstance(text, bytes):
            self._send_multiline(status, text, before)
        else:
            self._start_stream(status, text, before)

    def _do_DELE(self, cmd: Command, before: State) -> None:
        args = cmd.args
        if len(args) != 1:
            self._error(R.syntax("DELE msg"), before)
            return
        message = self._message(args[0], before)
        if message is not None:
            message.deleted = True  # only marked: UPDATE removes it (RFC 1939 §6)
            self._go("DELE")
            self._reply(ok(f"message {message.number} deleted"), before)

    def _do_RSET(self, cmd: Command, before: State) -> None:
        if cmd.args:
            self._error(R.syntax("RSET"), before)
            return
        assert self.maildrop is not None
        self.maildrop.reset()
        count, octets = self.maildrop.stat()
        self._go("RSET")
        self._reply(ok(f"maildrop has {count} message{'' if count == 1 else 's'} "
                       f"({octets} octets)"), before)

    def _do_NOOP(self, cmd: Command, before: State) -> None:
        if cmd.args:
            self._error(R.syntax("NOOP"), before)
            return
        self._go("NOOP")
        self._reply(R.OK, before)


def _number(text: str, allow_zero: bool = False) -> int | None:
    """A message number or line count: ASCII digits only (no sign, no space)."""
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    value = int(text)
    return value if value > 0 or allow_zero else None


def _lines(lines: Iterator[str]) -> Iterator[bytes]:
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
