"""What the POP3 server core is given: its policy and limits (RFC 1939, RFC 2595 §2.3 for when
passwords may be sent in the clear, RFC 5034 for SASL) and its view of the mail store.

:class:`ServerConfig` is the policy, :class:`MailStore` what :class:`~mailproto.pop3.server.
ServerSession` needs from a mail store: the users file and each user's Maildir
(``mailproto.store`` provides them; tests and benchmarks bring their own).  Plain data: no I/O
here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..penalty import AuthPenalty
from ..store import Maildir, Users


class MailStore(Protocol):
    """The users file and one Maildir per user (see ``store.Store``)."""

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
    #: Failures remembered across sessions (shared by a server's listeners), or None.
    penalty: AuthPenalty | None = None
    hard_error_limit: int = 20  # unknown commands, bad arguments, wrong state
    software: str = "mailproto"
