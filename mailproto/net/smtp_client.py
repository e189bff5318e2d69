"""A blocking SMTP client, with smtplib's method names (RFC 5321, 3207, 4954).

It is a thin shell around the sans-I/O :class:`mailproto.smtp.client.ClientSession`: one command
at a time, every byte both ways recorded in :attr:`SMTPClient.transcript`.  Replies come back as
:class:`~mailproto.smtp.wire.Reply` values and are never printed.  As in the lab's design, a
negative reply is a value (``client.rcpt(...)`` may return a 550); only the high-level methods
(:meth:`~SMTPClient.sendmail`, :meth:`~SMTPClient.send_message`, :meth:`~SMTPClient.login`,
:meth:`~SMTPClient.starttls`) raise smtplib-like exceptions, which carry the reply.

TLS: :meth:`~SMTPClient.starttls` verifies the server's certificate against the system's CAs.
For the lab's own server, whose certificate is self-signed, the clear option is to trust that
certificate: ``SMTPClient(..., cafile="<data>/.tls/cert.pem")``; ``verify=False`` skips the check.
"""

from __future__ import annotations

import copy
import io
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from email.generator import BytesGenerator
from email.message import Message
from email.utils import getaddresses
from typing import Any, NoReturn

from ..errors import ConnectionClosed, MailprotoError
from ..smtp.client import ClientSession, auth_steps, format_data
from ..smtp.wire import Reply
from ..transcript import Recorder, Transcript
from .channel import Channel, ChannelClient, SocketChannel

#: What login() tries, strongest first, as smtplib does (CRAM-MD5 keeps the password off the wire).
PREFERRED_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")


# -- exceptions (smtplib's names, carrying our Reply) ---------------------------------------
class SMTPException(MailprotoError):
    """Base class of the SMTP client's exceptions."""


class SMTPNotSupportedError(SMTPException):
    """The server does not offer the extension asked for (not in its EHLO reply)."""


class SMTPResponseError(SMTPException):
    """The server answered with an error; ``reply`` is what it said."""

    def __init__(self, reply: Reply, message: str = "") -> None:
        self.reply = reply
        super().__init__(message or f"{reply.code} {reply.text}")

    @property
    def smtp_code(self) -> int:  # smtplib's attribute names
        return self.reply.code

    @property
    def smtp_error(self) -> bytes:
        return self.reply.text.encode("utf-8")


class SMTPHeloError(SMTPResponseError):
    """Neither EHLO nor HELO was accepted."""


class SMTPAuthenticationError(SMTPResponseError):
    """AUTH failed (535, 501 ...)."""


class SMTPSenderRefused(SMTPResponseError):
    """MAIL FROM was refused."""

    def __init__(self, reply: Reply, sender: str) -> None:
        self.sender = sender
        super().__init__(reply, f"sender <{sender}> refused: {reply.code} {reply.text}")


class SMTPRecipientsRefused(SMTPException):
    """Every RCPT TO was refused; ``recipients`` maps each address to its reply."""

    def __init__(self, recipients: dict[str, Reply]) -> None:
        self.recipients = recipients
        detail = "; ".join(f"<{a}>: {r.code} {r.text}" for a, r in recipients.items())
        super().__init__(f"all recipients refused: {detail}")


class SMTPDataError(SMTPResponseError):
    """DATA or the message was refused."""


class SMTPServerDisconnected(SMTPException, ConnectionClosed):
    """The server closed the connection (a 421, or it just dropped); ``reply`` is the 421 if
    one came, ``last`` the last line seen before."""

    def __init__(self, message: str, reply: Reply | None = None, last: str = "") -> None:
        self.reply = reply
        self.last = last
        super().__init__(message + (f" (last seen: {last})" if last else ""))


# -- the client ----------------------------------------------------------------------------
class SMTPClient(ChannelClient):
    """One SMTP connection.  ``with SMTPClient(host, port) as client:`` connects (reading the
    greeting) and quits at the end; without ``with``, call :meth:`connect` first."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2525, timeout: float = 30.0,
                 local_hostname: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 verify: bool = True, cafile: str | None = None, channel: Channel | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.ssl_context = ssl_context
        self.verify = verify
        self.cafile = cafile
        #: All I/O goes through this (a socket, or the in-memory pair's channel).
        self.channel: Channel | None = None
        self._given_channel = channel
        self.clock = clock
        self.core = ClientSession()
        self._recorder = Recorder("smtp", clock, role="client")

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def transcript(self) -> Transcript:
        """Every line of this session both ways, with time and state (the lab's format)."""
        return self._recorder.transcript

    @property
    def state(self) -> str:
        return self.core.state.name

    @property
    def extensions(self) -> dict[str, str]:
        """EHLO keywords → parameters (smtplib's ``esmtp_features``), empty after STARTTLS."""
        return self.core.extensions

    @property
    def last_reply(self) -> Reply | None:
        return self.core.last_reply

    def has_extn(self, name: str) -> bool:
        return self.core.has_extn(name)

    def connect(self, host: str | None = None, port: int | None = None) -> Reply:
        """Open the connection and return the greeting (RFC 5321 §3.1)."""
        self.close()
        self.host, self.port = host or self.host, port or self.port
        self.core = ClientSession()
        self._recorder = Recorder("smtp", self.clock, role="client", server=f"{self.host}:"
                                  f"{self.port}")
        self.core.on_step = self._recorder
        if self._given_channel is not None:
            self.channel, self._given_channel = self._given_channel, None
        else:
            self.channel = SocketChannel.connect(self.host, self.port, self.timeout)
        if self.local_hostname is None:
            # An address literal (RFC 5321 §4.1.3): correct, and unlike getfqdn() no DNS wait.
            sock = getattr(self.channel, "sock", None)
            self.local_hostname = f"[{sock.getsockname()[0] if sock else '127.0.0.1'}]"
        return self._read("the greeting")[0]

    def _send(self, make: Callable[..., bytes], *args: Any) -> None:
        """Have the core format a line (``make(*args)``) and send it."""
        if self.channel is None:
            raise SMTPServerDisconnected("not connected: call connect() first")
        self._drain()  # before the core records the line: the transcript keeps the order
        data = make(*args)
        try:
            self.channel.send(data)
        except OSError as exc:
            self._lost(f"connection lost while sending: {exc}")

    def _read(self, waiting_for: str, handshake: bool = True) -> list[Reply]:
        """Read until the core has every reply it waits for; 421 or EOF → disconnected.
        After a 220 to STARTTLS, do the handshake (unless the caller does it)."""
        replies: list[Reply] = []
        while self.core.awaiting:
            assert self.channel is not None
            try:
                data = self.channel.recv(65536)
            except TimeoutError:
                # Out of step with the server from here on: the session cannot go on.
                self._lost(f"no reply within {self.timeout} s while waiting for {waiting_for}",
                           TimeoutError)
            except (ConnectionError, ssl.SSLError) as exc:
                self._lost(f"connection lost while waiting for {waiting_for}: {exc}")
            if not data:
                self._lost(f"the server closed the connection while we waited for {waiting_for}")
            replies += self._receive(data)
        if handshake and self.core.tls_requested:
            self._handshake()
        return replies

    def _drain(self) -> None:
        """Read what the server said while nobody asked (a 421 after an idle timeout), so it
        shows in the transcript where it happened and is not taken for the next reply."""
        pending = getattr(self.channel, "pending", None)
        if self.channel is None or pending is None or self.core.awaiting or not pending():
            return
        try:
            data = self.channel.recv(65536)
        except (ConnectionError, ssl.SSLError) as exc:
            self._lost(f"connection lost: {exc}")
        if data == b"":
            self._lost("the server closed the connection")
        if data:
            self._receive(data)

    def _receive(self, data: bytes) -> list[Reply]:
        replies = self.core.receive(data)
        for reply in replies:
            if reply.code == 421:  # RFC 5321 §3.8: the server closes the channel
                last = self._last_seen(skip=1)
                self.close()
                raise SMTPServerDisconnected(f"the server closed the connection: {reply.code} "
                                             f"{reply.text}", reply, last)
        return replies

    def _lost(self, message: str, error: type[Exception] | None = None) -> NoReturn:
        last = self._last_seen()
        if self.channel is not None:
            self.core.connection_lost(message)
            self.channel.close()
            self.channel = None
        if error is not None:
            raise error(f"{message} (last seen: {last})")
        raise SMTPServerDisconnected(message, None, last)

    def _last_seen(self, skip: int = 0) -> str:
        lines = [s for s in self.transcript.steps if s.direction in "CS"]
        if len(lines) <= skip:
            return ""
        step = lines[-1 - skip]
        return f"{step.direction}: {step.text.splitlines()[0] if step.text else ''}"

    # -- raw lines and single commands --------------------------------------------------------
    def send_line(self, raw: str | bytes) -> list[Reply]:
        """Send one line exactly as given, as typed at a telnet prompt (CRLF added if it has no
        line end), and return the replies it brought (none for a line of message text)."""
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        self._send(self.core.send_raw, data)
        return self._read("the reply")

    def docmd(self, verb: str, arg: str = "") -> Reply:
        """Send one command and return its reply (CR, LF, NUL in ``arg`` are refused)."""
        self._send(self.core.send_command, verb, arg)
        return self._read(f"the reply to {verb.upper()}")[-1]

    def ehlo(self, name: str = "") -> Reply:
        """EHLO (RFC 5321 §4.1.1.1); the extensions land in :attr:`extensions`."""
        return self.docmd("EHLO", name or self.local_hostname or "localhost")

    def helo(self, name: str = "") -> Reply:
        return self.docmd("HELO", name or self.local_hostname or "localhost")

    def ehlo_or_helo_if_needed(self) -> None:
        if self.core.state.name != "CONNECTED":
            return
        if not self.ehlo().positive and not self.helo().positive:
            raise SMTPHeloError(self.core.last_reply or Reply.of(500))

    def mail(self, sender: str, options: Sequence[str] = ()) -> Reply:
        """MAIL FROM:<sender> [options] (RFC 5321 §4.1.1.2)."""
        return self.docmd("MAIL", " ".join([f"FROM:<{sender}>", *options]))

    def rcpt(self, recipient: str, options: Sequence[str] = ()) -> Reply:
        """RCPT TO:<recipient> [options] (RFC 5321 §4.1.1.3)."""
        return self.docmd("RCPT", " ".join([f"TO:<{recipient}>", *options]))

    def data(self, message: bytes | str) -> Reply:
        """DATA, then the message only if the reply is 354 (RFC 5321 §4.1.1.4).  Returns the
        reply to the message, or the refusal of DATA itself (unlike smtplib: no exception)."""
        reply = self.docmd("DATA")
        if reply.code != 354:
            return reply
        body = message.encode("utf-8") if isinstance(message, str) else message
        self._send(self.core.send_data, body)
        return self._read("the reply to the message")[-1]

    def rset(self) -> Reply:
        return self.docmd("RSET")

    def noop(self) -> Reply:
        return self.docmd("NOOP")

    def vrfy(self, address: str) -> Reply:
        return self.docmd("VRFY", address)

    def expn(self, address: str) -> Reply:
        return self.docmd("EXPN", address)

    def help(self, topic: str = "") -> Reply:
        return self.docmd("HELP", topic)

    def quit(self) -> Reply:
        """QUIT (RFC 5321 §4.1.1.10), then close."""
        try:
            return self.docmd("QUIT")
        finally:
            self.close()

    # -- TLS and AUTH -----------------------------------------------------------------------
    def starttls(self, context: ssl.SSLContext | None = None) -> Reply:
        """STARTTLS (RFC 3207), the handshake, then EHLO again (§4.2: start over)."""
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("STARTTLS"):
            raise SMTPNotSupportedError("the server does not offer STARTTLS")
        self._send(self.core.send_command, "STARTTLS")
        reply = self._read("the reply to STARTTLS", handshake=False)[-1]
        if not self.core.tls_requested:
            raise SMTPResponseError(reply)
        self._handshake(context)
        self.ehlo()
        return reply

    def auth(self, mechanism: str, user: str, password: str,
             initial_response: bool | None = None) -> Reply:
        """Run one AUTH exchange (RFC 4954 §4) and return the final reply, success or not."""
        steps = auth_steps(mechanism, user, password, initial_response)
        reply = self.docmd("AUTH", next(steps))
        while reply.code == 334:
            try:
                answer = steps.send(reply.lines[0])
            except StopIteration:
                answer = "*"  # the server asks more than the mechanism has: cancel
            self._send(self.core.send_auth_response, answer)
            reply = self._read("the reply to the SASL response")[-1]
        return reply

    def login(self, user: str, password: str, mechanism: str | None = None) -> Reply:
        """Authenticate with ``mechanism`` or the best one offered; raise if it fails."""
        self.ehlo_or_helo_if_needed()
        offered = self.core.auth_mechanisms
        if not offered:
            raise SMTPNotSupportedError("the server does not offer AUTH (did STARTTLS come "
                                        "first? RFC 4954 §4)")
        if mechanism is None:
            choices = [m for m in PREFERRED_MECHANISMS if m in offered]
            if not choices:
                raise SMTPNotSupportedError(f"no common AUTH mechanism (offered: "
                                            f"{' '.join(offered)})")
            mechanism = choices[0]
        reply = self.auth(mechanism, user, password)
        if reply.code != 235:
            raise SMTPAuthenticationError(reply)
        return reply

    # -- sending mail -----------------------------------------------------------------------
    def sendmail(self, from_addr: str, to_addrs: str | Iterable[str], msg: bytes | str,
                 mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()
                 ) -> dict[str, Reply]:
        """One whole transaction, as smtplib's: returns the refused recipients (if some were
        accepted), raises if the sender, every recipient, or the message is refused."""
        self.ehlo_or_helo_if_needed()
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        body = msg.encode("utf-8") if isinstance(msg, str) else msg
        options = list(mail_options)
        if self.has_extn("SIZE") and not any(o.upper().startswith("SIZE=") for o in options):
            options.append(f"SIZE={len(format_data(body)) - 3}")  # RFC 1870 §6: as sent
        if not body.isascii() and self.has_extn("8BITMIME") and "BODY=8BITMIME" not in options:
            options.append("BODY=8BITMIME")  # RFC 6152
        reply = self.mail(from_addr, options)
        if reply.code != 250:
            self.rset()
            raise SMTPSenderRefused(reply, from_addr)
        refused: dict[str, Reply] = {}
        for rcpt in recipients:
            reply = self.rcpt(rcpt, rcpt_options)
            if reply.code not in (250, 251):
                refused[rcpt] = reply
        if len(refused) == len(recipients):
            self.rset()
            raise SMTPRecipientsRefused(refused)
        reply = self.data(body)
        if reply.code != 250:
            if self.core.state.name != "GREETED":
                self.rset()
            raise SMTPDataError(reply)
        return refused

    def send_message(self, msg: Message, from_addr: str | None = None,
                     to_addrs: str | Iterable[str] | None = None,
                     mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()
                     ) -> dict[str, Reply]:
        """Send an ``email.message.Message``: the sender from Sender/From, the recipients from
        To/Cc/Bcc unless given; Bcc is removed before sending (as smtplib does)."""
        if from_addr is None:
            header = msg["Sender"] or msg["From"]
            if header is None:
                raise ValueError("no sender: give from_addr or a From header")
            from_addr = getaddresses([str(header)])[0][1]
        if to_addrs is None:
            fields = [str(v) for h in ("To", "Cc", "Bcc") for v in msg.get_all(h, [])]
            to_addrs = [addr for _, addr in getaddresses(fields) if addr]
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        copy_ = copy.copy(msg)
        del copy_["Bcc"]
        del copy_["Resent-Bcc"]
        options = list(mail_options)
        international = not all(a.isascii() for a in [from_addr, *recipients])
        policy: Any = msg.policy
        if international:  # RFC 6531: UTF-8 addresses and headers
            self.ehlo_or_helo_if_needed()
            if not self.has_extn("SMTPUTF8"):
                raise SMTPNotSupportedError("non-ASCII addresses need SMTPUTF8, not offered")
            options += ["SMTPUTF8", "BODY=8BITMIME"]
            policy = policy.clone(utf8=True)
        buffer = io.BytesIO()
        BytesGenerator(buffer, policy=policy).flatten(copy_, linesep="\r\n")
        return self.sendmail(from_addr, recipients, buffer.getvalue(), options, rcpt_options)
