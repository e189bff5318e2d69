"""The POP3 AUTHORIZATION state: logging in and what the server offers before it (RFC 1939 §4,
§7 USER/PASS and APOP; RFC 5034 AUTH with SASL; RFC 2595 STLS and when passwords may be sent in
the clear, §2.3; RFC 2449 §5 CAPA; RFC 3206 and RFC 2449 §8.1 for why a login failed).

:class:`Authorization` is a mixin of :class:`~mailproto.pop3.server.ServerSession`: the
``_do_<VERB>`` handlers the session's dispatch finds for CAPA, USER, PASS, APOP, AUTH and STLS,
the SASL exchange that follows AUTH line by line, and ``_login``, which locks and opens the
maildrop (RFC 1939 §8) or counts a failure.  No I/O: the mail store is given to the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import auth
from ..store import valid_username
from ..transcript import SERVER, StepSink
from . import replies as R
from .config import MailStore, ServerConfig
from .maildrop import Maildrop
from .states import AUTH_LIST, State
from .wire import CRLF, Command, Reply, err, ok


class Authorization:
    """USER/PASS, APOP, AUTH, STLS and CAPA for :class:`ServerSession`."""

    # the session's state this mixin reads and writes (set in ServerSession.__init__)
    config: ServerConfig
    store: MailStore
    on_step: StepSink | None
    tls: bool
    tls_requested: bool
    state: State
    timestamp: str
    user: str | None
    maildrop: Maildrop | None
    delay: float
    auth_failures: int
    _token: Callable[[], str]
    _user_name: str | None
    _sasl: auth.SASLExchange | None

    if TYPE_CHECKING:
        def _go(self, event: str) -> None: ...
        def _emit(self, data: bytes) -> None: ...
        def _event(self, text: str, kind: str) -> None: ...
        def _reply(self, reply: Reply, before: State) -> None: ...
        def _error(self, reply: Reply, before: State) -> None: ...
        def _hang_up(self) -> None: ...
        def _trace_client(self, raw: bytes, parsed: dict[str, Any], before: State) -> None: ...

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
        self._login(name if right else None, "PASS", before, tried=name)

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
        self._login(name if right else None, "APOP", before, tried=name)

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
            self._login(result.user, "AUTH", before, tried=result.user)
        elif result.cancelled:
            self._reply(R.AUTH_CANCELLED, before)
        elif result.malformed:
            self._reply(err(result.reason), before)
        else:
            self._login(None, "AUTH", before, tried=result.user)

    def _login(self, name: str | None, event: str, before: State, tried: str | None) -> None:
        """Credentials checked (``name`` the user they prove, None if wrong; ``tried`` the name
        given): lock and open the maildrop (RFC 1939 §8), or count a failure.  Earlier failures
        for ``tried`` from this address hold the answer back, whatever it is (:mod:`..penalty`).
        """
        canon = self.store.users.canonical(name) if name is not None else None
        right = canon is not None and valid_username(canon)
        penalty = self.config.penalty
        held = penalty.attempt(self.peer_ip, tried, right) if penalty else 0.0
        if not right:
            self.auth_failures += 1
            self.delay = max(self.config.auth_failure_delay, held)
            if self.auth_failures >= self.config.max_auth_failures:
                self._hang_up()
                self._reply(R.AUTH_FAILED_CLOSING, before)
            else:
                self._reply(R.AUTH_FAILED, before)
            return
        self.delay = held
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
