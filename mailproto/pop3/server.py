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

This module holds the session, its driving API, the command dispatch, and the TRANSACTION
commands and QUIT/UPDATE (RFC 1939 §5, §6).  The configuration is in :mod:`.config` (and still
importable from here: ``ServerConfig``, ``MailStore``), the output and the streaming of multi-line
responses in :mod:`.output` (``OUTPUT_BUDGET``, ``TRACE_LIMIT``, ``Body``), reading command lines
in :mod:`.lines`, and the AUTHORIZATION state's commands (USER, PASS, APOP, AUTH, STLS, CAPA) in
:mod:`.login`.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace

from .. import auth
from ..transcript import StepSink
from . import replies as R
from .config import MailStore, ServerConfig
from .lines import LineReader
from .login import Authorization
from .maildrop import Maildrop, Message
from .output import OUTPUT_BUDGET, TRACE_LIMIT, Body, Output, lines_body
from .states import CLOSE, COMMANDS, TABLE, TIMEOUT, UPDATE_DONE, State
from .wire import Command, Reply, err, ok, printable

__all__ = ["OUTPUT_BUDGET", "TRACE_LIMIT", "Body", "MailStore", "ServerConfig", "ServerSession"]

log = logging.getLogger("mailproto.pop3")

_connections = itertools.count(1)



class ServerSession(Authorization, LineReader, Output):
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
        self.state = TABLE.advance(self.state, event)

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
        self._start_stream(status, lines_body(f"{m.number} {value(m)}" for m in live), before)

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
