"""What the SMTP server core is given and what it keeps per transaction (RFC 5321 §3.3, §4.5.3).

:class:`ServerConfig` is the policy and the limits, :class:`Envelope` the current mail
transaction, and :class:`Spool` / :class:`MailStore` are what :class:`~mailproto.smtp.server.
ServerSession` needs from a mail store (``mailproto.store`` provides them; tests and benchmarks
bring their own).  Plain data: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..penalty import AuthPenalty
from ..store import Users


class Spool(Protocol):
    """Where a message goes while it arrives (see ``store.SpoolFile``)."""

    size: int

    def write(self, data: bytes) -> None: ...
    def commit(self, users: list[str], outbox_envelope: tuple[str, list[str]] | None = None
               ) -> Any: ...
    def abort(self) -> None: ...


class MailStore(Protocol):
    users: Users

    def open_spool(self) -> Spool: ...


@dataclass
class ServerConfig:
    """Policy and limits.  Defaults follow Postfix where the RFCs leave a choice."""

    hostname: str = "mail.test"
    domains: tuple[str, ...] = ("local.test",)
    max_message_size: int = 10_240_000  # Postfix message_size_limit
    max_recipients: int = 100  # RFC 5321 §4.5.3.1.8: at least 100
    #: Other domains we accept mail for from anyone, to relay on (Postfix ``relay_domains``).
    relay_domains: tuple[str, ...] = ()
    enable_vrfy: bool = False  # VRFY and EXPN (RFC 5321 §7.3)
    starttls: bool = False  # the transport can do TLS
    #: Offer PLAIN/LOGIN (and USER/PASS) before TLS.  The transport sets it for loopback.
    allow_plaintext_auth: bool = True
    #: No AUTH at all before TLS (538 Encryption required), RFC 4954 §4.
    require_tls_for_auth: bool = False
    hard_error_limit: int = 20  # Postfix smtpd_hard_error_limit
    max_auth_failures: int = 3
    auth_failure_delay: float = 1.0  # seconds; the transport waits this long before the 535
    #: Failures remembered across sessions (shared by a server's listeners), or None.
    penalty: AuthPenalty | None = None
    software: str = "mailproto"

    def is_local_domain(self, domain: str) -> bool:
        return domain == "" or domain in self.domains or domain == self.hostname.lower()


@dataclass
class Envelope:
    """The current mail transaction (RFC 5321 §3.3)."""

    sender: str | None = None
    smtputf8: bool = False
    local_users: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)  # as given, for Received: and traces
    rcpt_attempts: int = 0
