"""The SMTP server's protocol core, free of I/O (RFC 5321, with RFC 1870, 2920, 3207, 3463, 4954,
6152, 6531).

:class:`ServerSession` takes the bytes a client sent and returns the bytes to send back.  It never
touches a socket, a thread or asyncio; the clock, the host name and the mail store are given to it.
A transport (``mailproto.net``) or the in-memory pair drives it::

    session = ServerSession(config, store, peer_ip="127.0.0.1")
    send(session.initiate())                 # 220 greeting
    send(session.receive(bytes_from_client)) # replies, in order, one per command
    if session.tls_requested: start TLS, then session.tls_started()
    if session.closed: close the connection

Every transition goes through :data:`mailproto.smtp.states.TABLE`; ordinary failures are replies.

This module holds the session and its command dispatch.  The configuration and the envelope are
in :mod:`.config` (and still importable from here: ``ServerConfig``, ``Envelope``, ``Spool``,
``MailStore``), the DATA phase (content, dot-unstuffing, trace headers) in :mod:`.data`, AUTH
and its SASL exchange in :mod:`.login`, who an address reaches (RCPT, VRFY, EXPN) in
:mod:`.mailboxes`, and what EHLO and HELP offer in :mod:`.extensions`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import auth
from ..transcript import CLIENT, SERVER, StepSink
from . import replies as R
from .config import Envelope, MailStore, ServerConfig, Spool
from .data import DataPhase
from .extensions import ESMTP_PARAMS, HELP, ehlo_lines
from .login import Authentication
from .mailboxes import expn_reply, local_targets, vrfy_reply
from .states import AUTH_DONE, CLOSE, TABLE, TIMEOUT, State
from .wire import (
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    Command,
    PathError,
    Reply,
    parse_command,
    parse_path,
    split_address,
)


class ServerSession(Authentication, DataPhase):
    """One SMTP session, sans-I/O.  See the module docstring for the driving loop."""

    def __init__(self, config: ServerConfig, store: MailStore, peer_ip: str = "127.0.0.1",
                 clock: Callable[[], float] = time.time, on_step: StepSink | None = None,
                 tls: bool = False, token: Callable[[], str] | None = None) -> None:
        self.config = config
        self.store = store
        self.peer_ip = peer_ip
        self.clock = clock
        self.on_step = on_step
        self.tls = tls
        self._token = token or (lambda: f"<{int(self.clock() * 1000)}@{config.hostname}>")
        self.state = State.CONNECTED
        self.helo: str | None = None
        self.esmtp = False
        self.user: str | None = None  # authenticated as
        self.envelope = Envelope()
        self.closed = False
        self.tls_requested = False
        #: Seconds the transport should wait before sending what ``receive`` returned last.
        self.delay = 0.0
        self.errors = 0
        self.auth_failures = 0
        self.messages = 0
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._discarding = False  # inside an overlong line
        self._discarding_auth = False  # ... which was an AUTH command or a SASL response
        self._sasl: auth.SASLExchange | None = None
        self._auth_before = State.GREETED
        # DATA reading
        self._spool: Spool | None = None
        self._data_size = 0
        self._data_failed: Reply | None = None
        self._line_start = True
        self._after_crlf = True
        self._data_trace: bytearray | None = None
        self._queue_id = ""

    # -- driving ---------------------------------------------------------------------------
    def initiate(self) -> bytes:
        """The 220 greeting (RFC 5321 §4.3.1)."""
        reply = Reply.of(220, f"{self.config.hostname} ESMTP {self.config.software}")
        self._send(reply, "greeting", self.state)
        return self._flush()

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the client; return the replies to send (possibly b"")."""
        self.delay = 0.0
        if self.closed or self.tls_requested:
            return b""
        self._buf += data
        while self._buf and not self.closed and not self.tls_requested:
            if self.state is State.DATA:
                if not self._read_data():
                    break
            elif not self._read_line():
                break
        if self.closed or self.tls_requested:
            # RFC 3207 §4.2 / CVE-2011-0411: bytes pipelined after STARTTLS are discarded.
            self._buf.clear()
        return self._flush()

    def tls_started(self) -> None:
        """The transport finished the TLS handshake: start over (RFC 3207 §4.2)."""
        self.tls_requested = False
        self.tls = True
        # Already CONNECTED by the table's STARTTLS row; everything learnt before is forgotten.
        self.helo = None
        self.esmtp = False
        self.user = None
        self.envelope = Envelope()
        self._discarding = False
        self._event("TLS started", "tls")

    def timeout(self) -> bytes:
        """The idle timer fired: 421 and close (RFC 5321 §4.5.3.2)."""
        if self.closed:
            return b""
        before = self.state
        self._abort_data()
        self.state = TABLE.next(before, TIMEOUT) or State.CLOSED
        self._send(Reply.of(421, f"4.4.2 {self.config.hostname} Error: timeout exceeded"),
                   "reply", before)
        self.closed = True
        return self._flush()

    def shutdown(self) -> bytes:
        """The server is stopping: 421 (RFC 5321 §3.8)."""
        if self.closed:
            return b""
        before = self.state
        self._abort_data()
        self.state = TABLE.next(self.state, CLOSE) or State.CLOSED
        self._send(Reply.of(421, f"4.3.2 {self.config.hostname} Service shutting down"),
                   "reply", before)
        self.closed = True
        return self._flush()

    def connection_lost(self) -> None:
        """The client went away: nothing half-received is ever delivered."""
        self._abort_data()
        if not self.closed:
            self._event("connection lost", "closed")
        self.closed = True
        self.state = TABLE.next(self.state, CLOSE) or State.CLOSED

    # -- output ----------------------------------------------------------------------------
    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _send(self, reply: Reply, kind: str, before: State) -> None:
        raw = reply.to_bytes()
        self._out.append(raw)
        if reply.code >= 400:
            self.errors += 1
        if self.on_step:
            self.on_step(SERVER, kind, raw, {"code": reply.code, "lines": list(reply.lines)},
                         before.name, self.state.name)

    def _event(self, text: str, kind: str) -> None:
        if self.on_step:
            self.on_step("*", "event", text.encode(), {"event": kind}, self.state.name,
                         self.state.name)

    # -- command lines ---------------------------------------------------------------------
    def _read_line(self) -> bool:
        buf = self._buf
        nl = buf.find(b"\n")
        is_auth = self.state is State.AUTH or buf[:5].upper() == b"AUTH "
        limit = MAX_AUTH_LINE if is_auth else MAX_COMMAND_LINE
        if self._discarding:
            if nl < 0:
                buf.clear()
                return False
            del buf[: nl + 1]
            self._discarding = False
            self._line_too_long(self._discarding_auth)
            return True
        if nl < 0:
            if len(buf) > limit:
                buf.clear()
                self._discarding, self._discarding_auth = True, is_auth
            return False
        if nl + 1 > limit:
            del buf[: nl + 1]
            self._line_too_long(is_auth)
            return True
        raw = bytes(buf[: nl + 1])
        del buf[: nl + 1]
        # A bare LF ends a command line too, as in Postfix: students type with netcat.
        line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        if self.state is State.AUTH:
            self._auth_response(line, raw)
        else:
            self._command(parse_command(line), raw)
        return True

    def _line_too_long(self, auth_line: bool = False) -> None:
        before = self.state
        self._trace_client(b"<overlong line discarded>", {"error": "line too long"}, before)
        if not auth_line:
            self._reply(R.LINE_TOO_LONG, before)
            return
        # RFC 4954 §4, §6: 500 5.5.6; an exchange in progress is over (the table's AUTH_DONE).
        if before is State.AUTH:
            self._sasl = None
            self._go(AUTH_DONE)
        self._reply(R.AUTH_LINE_TOO_LONG, before)

    def _trace_client(self, raw: bytes, parsed: dict[str, Any], before: State) -> None:
        if self.on_step:
            kind = "auth" if before is State.AUTH else "command"
            self.on_step(CLIENT, kind, raw, parsed, before.name, before.name)

    def _reply(self, reply: Reply, before: State) -> None:
        self._send(reply, "reply", before)
        if self.errors >= self.config.hard_error_limit and not self.closed and reply.code >= 400:
            last = self.state
            self._abort_data()
            self.state = TABLE.next(self.state, CLOSE) or State.CLOSED
            self.closed = True
            self._send(Reply.of(421, f"4.7.0 {self.config.hostname} Error: too many errors"),
                       "reply", last)

    def _command(self, cmd: Command, raw: bytes) -> None:
        before = self.state
        self._trace_client(raw, {"verb": cmd.verb, "arg": cmd.arg}, before)
        handler = getattr(self, "_do_" + cmd.verb, None) if cmd.verb.isalpha() else None
        if handler is None:
            self._reply(R.UNRECOGNIZED if cmd.verb else R.EMPTY_LINE, before)
            return
        if not TABLE.allows(before, cmd.verb):
            if cmd.verb == "DATA" and before is State.MAIL and self.envelope.rcpt_attempts:
                self._reply(R.NO_VALID_RECIPIENTS, before)  # RFC 5321 §3.3, as Postfix says
            else:
                self._reply(R.bad_sequence(cmd.verb, before), before)
            return
        handler(cmd, before)

    def _go(self, event: str) -> None:
        """Take the table's transition for ``event``, which the caller made succeed."""
        self.state = TABLE.advance(self.state, event)

    # -- the commands ----------------------------------------------------------------------
    def _do_HELO(self, cmd: Command, before: State) -> None:
        self._greet(cmd, before, esmtp=False)

    def _do_EHLO(self, cmd: Command, before: State) -> None:
        self._greet(cmd, before, esmtp=True)

    def _greet(self, cmd: Command, before: State, esmtp: bool) -> None:
        if not cmd.arg or " " in cmd.arg or any(ord(c) < 33 or ord(c) == 127
                                                or 0xD800 <= ord(c) <= 0xDFFF for c in cmd.arg):
            self._reply(Reply.of(501, f"5.5.4 Syntax: {cmd.verb} hostname"), before)
            return
        self.helo, self.esmtp = cmd.arg, esmtp
        self.envelope = Envelope()
        self._go(cmd.verb)
        host = self.config.hostname
        if not esmtp:
            self._reply(Reply.of(250, host), before)
            return
        lines = ehlo_lines(self.config, cmd.arg, self.peer_ip, tls=self.tls,
                           authenticated=self.user is not None)
        self._reply(Reply(250, tuple(lines)), before)

    def _do_MAIL(self, cmd: Command, before: State) -> None:
        try:
            path = parse_path(cmd.arg, "FROM")
        except PathError as exc:
            self._reply(R.path_error(str(exc), "MAIL FROM", sender=True), before)
            return
        params = path.params
        bad = [k for k in params if k not in ESMTP_PARAMS] if self.esmtp else list(params)
        if bad:
            self._reply(Reply.of(555, f"5.5.4 Unsupported option: {bad[0]}"), before)
            return
        body = (params["BODY"] or "").upper() if "BODY" in params else "7BIT"
        if body not in ("7BIT", "8BITMIME"):  # RFC 6152 §2: BODY=7BIT or BODY=8BITMIME
            self._reply(Reply.of(501, "5.5.4 Bad BODY parameter (7BIT or 8BITMIME)"), before)
            return
        smtputf8 = "SMTPUTF8" in params
        if smtputf8 and params["SMTPUTF8"] is not None:  # RFC 6531 §3.4: no value
            self._reply(Reply.of(501, "5.5.4 SMTPUTF8 takes no value"), before)
            return
        if not path.address.isascii() and not smtputf8:
            self._reply(Reply.of(553, "5.6.7 Non-ASCII address needs the SMTPUTF8 parameter"),
                        before)
            return
        if "SIZE" in params:
            size = params["SIZE"] or ""
            if not size.isdigit() or len(size) > 20:
                self._reply(Reply.of(501, "5.5.4 Bad SIZE parameter"), before)
                return
            if int(size) > self.config.max_message_size:
                self._reply(R.MESSAGE_TOO_BIG_DECLARED, before)
                return
        self.envelope = Envelope(sender=path.address, smtputf8=smtputf8)
        self._go("MAIL")
        self._reply(R.MAIL_OK, before)

    def _do_RCPT(self, cmd: Command, before: State) -> None:
        env = self.envelope
        try:
            path = parse_path(cmd.arg, "TO")
        except PathError as exc:
            self._reply(R.path_error(str(exc), "RCPT TO", sender=False), before)
            return
        env.rcpt_attempts += 1
        if path.params:
            self._reply(Reply.of(555, f"5.5.4 Unsupported option: {next(iter(path.params))}"),
                        before)
            return
        address = path.address
        if not address:
            self._reply(Reply.of(501, "5.1.3 Bad recipient address syntax"), before)
            return
        if not address.isascii() and not env.smtputf8:
            self._reply(Reply.of(553, "5.6.7 Non-ASCII address needs SMTPUTF8 in MAIL"), before)
            return
        if len(env.recipients) >= self.config.max_recipients:
            self._reply(R.TOO_MANY_RECIPIENTS, before)
            return
        local, domain = split_address(address)
        if self.config.is_local_domain(domain) or (local.lower() == "postmaster" and not domain):
            targets = local_targets(self.store.users, self.config, local)
            if targets is None:
                self._reply(R.user_unknown(address), before)
                return
            for target in targets:
                (env.local_users if "@" not in target else env.remote).append(target)
        elif self.user is not None or domain in self.config.relay_domains:
            env.remote.append(address)  # authenticated, or a domain we relay for (Postfix
            # relay_domains): queued in the outbox for the relay
        else:
            self._reply(R.relay_denied(address), before)
            return
        env.recipients.append(address)
        self._go("RCPT")
        self._reply(R.RCPT_OK, before)

    def _do_DATA(self, cmd: Command, before: State) -> None:
        if cmd.arg:
            self._reply(Reply.of(501, "5.5.4 Syntax: DATA"), before)
            return
        try:
            self._spool = self.store.open_spool()
        except OSError:
            self._reply(Reply.of(451, "4.3.0 Error: queue file write error"), before)
            return
        self._queue_id = f"{int(self.clock() * 1000):X}{self.messages:02X}"
        self._data_size = 0
        self._data_failed = None
        self._line_start = self._after_crlf = True
        self._data_trace = bytearray() if self.on_step else None
        self._go("DATA")
        self._reply(R.START_DATA, before)
        self._write_data(self._trace_headers())

    def _do_RSET(self, cmd: Command, before: State) -> None:
        if cmd.arg:
            self._reply(Reply.of(501, "5.5.4 Syntax: RSET"), before)
            return
        self.envelope = Envelope()
        self._go("RSET")
        self._reply(R.OK, before)

    def _do_NOOP(self, cmd: Command, before: State) -> None:
        self._go("NOOP")  # RFC 5321 §4.1.1.9: a parameter is allowed and ignored
        self._reply(R.OK, before)

    def _do_QUIT(self, cmd: Command, before: State) -> None:
        self._go("QUIT")
        self.closed = True
        self._reply(R.BYE, before)

    def _do_HELP(self, cmd: Command, before: State) -> None:
        self._go("HELP")
        topic = cmd.arg.upper()
        if topic:
            text = HELP.get(topic)
            if text is None:
                self._reply(Reply.of(504, f"5.5.1 HELP topic unknown: {topic[:40]}"), before)
            else:
                self._reply(Reply.of(214, f"2.0.0 {text}"), before)
            return
        lines = ("2.0.0 This is mailproto, a teaching mail server. Commands:",
                 "2.0.0 " + " ".join(HELP), "2.0.0 HELP <command> explains one. End of HELP")
        self._reply(Reply(214, lines), before)

    def _do_VRFY(self, cmd: Command, before: State) -> None:
        self._go("VRFY")
        self._reply(vrfy_reply(cmd.arg, self.config, self.store.users), before)

    def _do_EXPN(self, cmd: Command, before: State) -> None:
        self._go("EXPN")
        self._reply(expn_reply(cmd.arg, self.config, self.store.users), before)

    # -- STARTTLS (RFC 3207) ---------------------------------------------------------------
    def _do_STARTTLS(self, cmd: Command, before: State) -> None:
        if cmd.arg:
            self._reply(Reply.of(501, "5.5.4 Syntax: STARTTLS"), before)
        elif self.tls:
            self._reply(Reply.of(554, "5.5.1 Error: TLS already active"), before)
        elif not self.config.starttls:
            self._reply(Reply.of(502, "5.5.1 Error: command not implemented"), before)
        else:
            self._go("STARTTLS")
            self.tls_requested = True
            self._reply(Reply.of(220, "2.0.0 Ready to start TLS"), before)

    # -- DATA content: see .data.DataPhase ------------------------------------------------
    def _abort_data(self) -> None:
        self._drop_spool()
        self._sasl = None
