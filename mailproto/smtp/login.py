"""AUTH in the SMTP server core (RFC 4954, with RFC 4616 PLAIN, RFC 2195 CRAM-MD5, and the
LOGIN mechanism smtplib and Outlook use): the command, the SASL exchange line by line, and what
a result does to the session (235, 535 and the wait it earns, 421 after too many failures).

:class:`Authentication` is a mixin of :class:`~mailproto.smtp.server.ServerSession`, as
:class:`~mailproto.smtp.data.DataPhase` is: the exchange shares the session's state, reply path
and configuration.  The SASL mechanics are in :mod:`mailproto.auth`, shared with POP3; the wait
across sessions in :mod:`mailproto.penalty`.  No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import auth
from .config import MailStore, ServerConfig
from .extensions import auth_mechanisms
from .states import AUTH_DONE, CLOSE, TABLE, State
from .wire import Command, Reply


class Authentication:
    """``AUTH`` and its exchange (RFC 4954 §4), for the session."""

    config: ServerConfig
    store: MailStore
    state: State
    peer_ip: str
    esmtp: bool
    tls: bool
    user: str | None
    closed: bool
    delay: float
    auth_failures: int
    _sasl: auth.SASLExchange | None
    _token: Callable[[], str]

    if TYPE_CHECKING:
        def _go(self, event: str) -> None: ...
        def _reply(self, reply: Reply, before: State) -> None: ...
        def _send(self, reply: Reply, kind: str, before: State) -> None: ...
        def _trace_client(self, raw: bytes, parsed: dict[str, Any], before: State) -> None: ...

    def _do_AUTH(self, cmd: Command, before: State) -> None:
        if not self.esmtp:
            self._reply(Reply.of(503, "5.5.1 Error: send EHLO first"), before)
            return
        if self.user is not None:
            self._reply(Reply.of(503, "5.5.1 Error: already authenticated"), before)
            return
        mech, _, initial = cmd.arg.partition(" ")
        mech = mech.upper()
        if not mech:
            self._reply(Reply.of(501, "5.5.4 Syntax: AUTH mechanism [initial-response]"), before)
            return
        if mech not in auth.MECHANISMS:
            self._reply(Reply.of(504, "5.5.4 Unrecognized authentication type"), before)
            return
        if mech not in auth_mechanisms(self.config, self.tls):
            self._reply(Reply.of(538, "5.7.11 Encryption required for requested authentication "
                                 "mechanism"), before)
            return
        self._sasl = auth.SASLExchange(mech, self.store.users.secret, self._token())
        self._go("AUTH")
        self._auth_result(self._sasl.start(initial.strip() or None), before)

    def _auth_response(self, line: bytes, raw: bytes) -> None:
        before = self.state
        self._trace_client(raw, {"sasl": line.decode("ascii", "replace")}, before)
        assert self._sasl is not None
        self._auth_result(self._sasl.respond(line.decode("ascii", "replace")), before)

    def _auth_result(self, result: auth.Result, before: State) -> None:
        if isinstance(result, auth.Challenge):
            self._reply(Reply.of(334, auth.b64encode(result.data)), before)
            return
        self._sasl = None
        self._go(AUTH_DONE)
        if isinstance(result, auth.Failure) and result.cancelled:
            self._reply(Reply.of(501, "5.7.0 Authentication aborted"), before)
            return
        if isinstance(result, auth.Failure) and result.malformed:
            self._reply(Reply.of(501, f"5.5.2 {result.reason}"), before)
            return
        right = isinstance(result, auth.Success)
        penalty = self.config.penalty
        held = penalty.attempt(self.peer_ip, result.user, right) if penalty else 0.0
        if isinstance(result, auth.Success):
            self.delay = held  # earlier failures make a success wait too (see ..penalty)
            self.user = result.user
            self._reply(Reply.of(235, "2.7.0 Authentication successful"), before)
            return
        self.auth_failures += 1
        self.delay = max(self.config.auth_failure_delay, held)
        self._reply(Reply.of(535, "5.7.8 Error: authentication failed"), before)
        if self.auth_failures >= self.config.max_auth_failures and not self.closed:
            last = self.state
            self.state = TABLE.next(self.state, CLOSE) or State.CLOSED
            self.closed = True
            self._send(Reply.of(421, f"4.7.0 {self.config.hostname} Error: too many failed "
                                "authentication attempts"), "reply", last)
