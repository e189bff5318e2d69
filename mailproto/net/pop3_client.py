"""A blocking POP3 client with poplib's method names (RFC 1939, 2449, 5034, 2595).

It is a thin shell around the sans-I/O :class:`mailproto.pop3.client.ClientSession`: one command
at a time, every byte both ways recorded in :attr:`POP3Client.transcript`.  Responses come back
as :class:`~mailproto.pop3.client.Response` values and are never printed.  :meth:`~POP3Client.docmd`
and :meth:`~POP3Client.send_line` return a ``-ERR`` like any other response; the poplib-named
methods (``user``, ``pass_``, ``stat``, ``retr`` ...) raise :class:`POP3ResponseError` (alias
``error_proto``, as in poplib), which carries the response.

All I/O goes through a :class:`~mailproto.net.channel.Channel`: a socket unless ``channel=``
gives another (the in-memory pair).

TLS: :meth:`~POP3Client.stls` verifies the server's certificate against the system's CAs.  For
the lab's own server, whose certificate is self-signed, trust that certificate:
``POP3Client(..., cafile="<data>/.tls/cert.pem")``; ``verify=False`` skips the check.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import NoReturn

from .. import auth as sasl
from ..errors import ConnectionClosed, MailprotoError, RemoteProtocolError
from ..pop3.client import ClientSession, Response, auth_steps
from ..transcript import Recorder, Transcript
from .channel import Channel, ChannelClient, SocketChannel


# -- exceptions (poplib's error_proto, carrying our Response) -------------------------------
class POP3Exception(MailprotoError):
    """Base class of the POP3 client's exceptions."""


class POP3NotSupportedError(POP3Exception):
    """The server does not offer what was asked for (APOP without a greeting timestamp)."""


class POP3ResponseError(POP3Exception):
    """The server answered ``-ERR``; ``response`` is what it said (``response.code`` holds an
    RFC 2449 §8 code such as ``IN-USE``)."""

    def __init__(self, response: Response, message: str = "") -> None:
        self.response = response
        super().__init__(message or response.status_line)


#: poplib's name for it.
error_proto = POP3ResponseError


class POP3AuthenticationError(POP3ResponseError):
    """USER/PASS, APOP or AUTH failed."""


class POP3ServerDisconnected(POP3Exception, ConnectionClosed):
    """The server closed the connection (after a ``-ERR``, or it just dropped); ``response``
    is that ``-ERR`` if one came, ``last`` the last line seen before."""

    def __init__(self, message: str, response: Response | None = None, last: str = "") -> None:
        self.response = response
        self.last = last
        super().__init__(message + (f" (last seen: {last})" if last else ""))


# -- the client ----------------------------------------------------------------------------
class POP3Client(ChannelClient):
    """One POP3 connection.  ``with POP3Client(host, port) as client:`` connects (reading the
    greeting) and quits at the end; without ``with``, call :meth:`connect` first."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1110, timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None, verify: bool = True,
                 cafile: str | None = None, channel: Channel | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.verify = verify
        self.cafile = cafile
        self.channel: Channel | None = None
        self._given_channel = channel
        self.core = ClientSession()
        self.clock = clock
        self._recorder = Recorder("pop3", clock, role="client")

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def transcript(self) -> Transcript:
        """Every line of this session both ways, with time and state (the lab's format)."""
        return self._recorder.transcript

    @property
    def state(self) -> str:
        return self.core.state.name

    @property
    def capabilities(self) -> dict[str, list[str]]:
        """What the last CAPA said; empty before CAPA and after STLS."""
        return self.core.capabilities

    @property
    def timestamp(self) -> str | None:
        """The greeting's APOP timestamp (RFC 1939 §7), if it had one."""
        return self.core.timestamp

    @property
    def last_response(self) -> Response | None:
        return self.core.last_response

    def getwelcome(self) -> Response | None:
        """The greeting (poplib's name)."""
        return self.core.greeting

    def connect(self, host: str | None = None, port: int | None = None) -> Response:
        """Open the connection and return the greeting (RFC 1939 §4)."""
        self.close()
        self.host, self.port = host or self.host, port or self.port
        self.core = ClientSession()
        self._recorder = Recorder("pop3", self.clock, role="client",
                                  server=f"{self.host}:{self.port}")
        self.core.on_step = self._recorder
        if self._given_channel is not None:
            self.channel, self._given_channel = self._given_channel, None
        else:
            self.channel = SocketChannel.connect(self.host, self.port, self.timeout)
        return self._read("the greeting")[0]

    def _send(self, data: bytes) -> None:
        if self.channel is None:
            raise POP3ServerDisconnected("not connected: call connect() first")
        try:
            self.channel.send(data)
        except OSError as exc:
            self._lost(f"connection lost while sending: {exc}")

    def _read(self, waiting_for: str, handshake: bool = True) -> list[Response]:
        """Read until the core has every response it waits for; a -ERR with which the server
        closes, or EOF → disconnected.  After +OK to STLS, do the handshake (unless the caller
        does it)."""
        responses: list[Response] = []
        while self.core.awaiting:
            assert self.channel is not None
            try:
                data = self.channel.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no response within {self.timeout} s while waiting for "
                                   f"{waiting_for}") from None
            except OSError as exc:  # reset, TLS alert ...
                self._lost(f"connection lost while waiting for {waiting_for}: {exc}")
            if not data:
                self._lost(f"the server closed the connection while we waited for {waiting_for}")
            responses += self._receive(data)
        self._check_closing()
        if handshake and self.core.tls_requested:
            self._handshake()
        return responses

    def _drain(self) -> None:
        """Read what the server said while nobody asked (a -ERR after an autologout, RFC 1939
        §3), so it shows in the transcript where it happened and is not taken for the answer
        to the next command."""
        pending = getattr(self.channel, "pending", None)
        if self.channel is None or pending is None or self.core.awaiting or not pending():
            return
        try:
            data = self.channel.recv(65536)
        except OSError as exc:
            self._lost(f"connection lost: {exc}")
        if not data:
            self._lost("the server closed the connection")
        self._receive(data)
        self._check_closing()

    def _receive(self, data: bytes) -> list[Response]:
        try:
            return self.core.receive(data)
        except RemoteProtocolError as exc:  # framing lost: nothing after this can be read
            self.core.connection_lost(f"not POP3: {exc}")
            self.close()
            raise

    def _check_closing(self) -> None:
        closing = self.core.closing
        if closing is not None and self.channel is not None:
            last = self._last_seen(skip=1)
            self.close()
            raise POP3ServerDisconnected(f"the server is closing the connection: "
                                         f"{closing.status_line}", closing, last)

    def _lost(self, message: str) -> NoReturn:
        last = self._last_seen()
        if self.channel is not None:
            self.core.connection_lost(message)
            self.channel.close()
            self.channel = None
        raise POP3ServerDisconnected(message, None, last)

    def _last_seen(self, skip: int = 0) -> str:
        """The first line of the server's last response (``skip`` ones back)."""
        lines = [s for s in self.transcript.steps if s.direction == "S"]
        if len(lines) <= skip:
            return ""
        step = lines[-1 - skip]
        return f"S: {step.text.splitlines()[0] if step.text else ''}"

    # -- raw lines and single commands ------------------------------------------------------
    def send_line(self, raw: str | bytes) -> list[Response]:
        """Send one line exactly as given, as typed at a telnet prompt (CRLF added if it has no
        line end), and return the responses it brought."""
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        self._drain()
        self._send(self.core.send_raw(data))
        return self._read("the response")

    def docmd(self, verb: str, arg: str = "") -> Response:
        """Send one command and return its response, ``-ERR`` included (CR, LF, NUL in ``arg``
        are refused)."""
        self._drain()
        self._send(self.core.send_command(verb, arg))
        return self._read(f"the response to {verb.upper()}")[-1]

    def _ok(self, verb: str, arg: str = "",
            error: type[POP3ResponseError] = POP3ResponseError) -> Response:
        response = self.docmd(verb, arg)
        if not response.positive:
            raise error(response)
        return response

    # -- AUTHORIZATION (RFC 1939 §4, §7; RFC 5034; RFC 2595) ---------------------------------
    def user(self, user: str) -> Response:
        return self._ok("USER", user)

    def pass_(self, password: str) -> Response:
        """PASS: the whole rest of the line is the password, spaces included (RFC 1939 §7)."""
        return self._ok("PASS", password, POP3AuthenticationError)

    def apop(self, user: str, secret: str) -> Response:
        """APOP user MD5(timestamp + secret) (RFC 1939 §7): the secret never crosses the wire."""
        if self.core.timestamp is None:
            raise POP3NotSupportedError("the greeting has no <timestamp>: the server does not "
                                        "offer APOP (RFC 1939 §7)")
        digest = sasl.apop_digest(self.core.timestamp, secret)
        return self._ok("APOP", f"{user} {digest}", POP3AuthenticationError)

    def auth(self, mechanism: str, user: str, password: str,
             initial_response: bool | None = None) -> Response:
        """One AUTH exchange (RFC 5034 §4) with PLAIN, LOGIN or CRAM-MD5."""
        steps = auth_steps(mechanism, user, password, initial_response)
        response = self.docmd("AUTH", next(steps))
        while response.challenge is not None:
            try:
                answer = steps.send(response.challenge)
            except StopIteration:
                answer = "*"  # the server asks more than the mechanism has: cancel
            self._send(self.core.send_auth_response(answer))
            response = self._read("the response to the SASL response")[-1]
        if not response.positive:
            raise POP3AuthenticationError(response)
        return response

    def capa(self) -> dict[str, list[str]]:
        """CAPA (RFC 2449 §5): capability → arguments, as poplib's ``capa()``."""
        self._ok("CAPA")
        return dict(self.core.capabilities)

    def stls(self, context: ssl.SSLContext | None = None) -> Response:
        """STLS (RFC 2595 §4), then the handshake; CAPA must be asked again."""
        self._drain()
        self._send(self.core.send_command("STLS"))
        response = self._read("the response to STLS", handshake=False)[-1]
        if not self.core.tls_requested:
            raise POP3ResponseError(response)
        self._handshake(context)
        return response

    # -- TRANSACTION (RFC 1939 §5, §7) -------------------------------------------------------
    def stat(self) -> tuple[int, int]:
        """(message count, size in octets) of the maildrop: ``+OK nn mm`` (RFC 1939 §5)."""
        response = self._ok("STAT")
        words = response.text.split()
        if len(words) < 2 or not (words[0].isdigit() and words[1].isdigit()):
            raise RemoteProtocolError(f"STAT answer is not '+OK nn mm': {response.status_line}")
        return int(words[0]), int(words[1])

    def list(self, n: int | None = None) -> dict[int, int]:
        """Message number → size in octets: one message, or all (RFC 1939 §5)."""
        return {k: int(v) for k, v in self._listing("LIST", n).items()}

    def uidl(self, n: int | None = None) -> dict[int, str]:
        """Message number → unique id: one message, or all (RFC 1939 §7)."""
        return self._listing("UIDL", n)

    def _listing(self, verb: str, n: int | None) -> dict[int, str]:
        response = self._ok(verb, "" if n is None else str(n))
        lines = [response.text] if n is not None else \
            [line.decode("utf-8", "replace") for line in response.lines]
        out: dict[int, str] = {}
        for line in lines:
            words = line.split()
            if len(words) < 2 or not words[0].isdigit() or (verb == "LIST" and
                                                            not words[1].isdigit()):
                raise RemoteProtocolError(f"{verb} line is not 'n value': {line!r}")
            out[int(words[0])] = words[1]
        return out

    def retr(self, n: int) -> Response:
        """The whole message (RFC 1939 §5): ``.body`` is its bytes, unstuffed, CRLF line ends."""
        return self._ok("RETR", str(n))

    def top(self, n: int, lines: int) -> Response:
        """The header, the blank line and the first ``lines`` body lines (RFC 1939 §7)."""
        return self._ok("TOP", f"{n} {lines}")

    def dele(self, n: int) -> Response:
        """Mark message ``n`` deleted; QUIT removes it (RFC 1939 §5, §6)."""
        return self._ok("DELE", str(n))

    def rset(self) -> Response:
        return self._ok("RSET")

    def noop(self) -> Response:
        return self._ok("NOOP")

    def quit(self) -> Response:
        """QUIT (RFC 1939 §6): in TRANSACTION the marked messages are removed; then close."""
        try:
            response = self.docmd("QUIT")
        finally:
            self.close()
        if not response.positive:
            raise POP3ResponseError(response)
        return response
