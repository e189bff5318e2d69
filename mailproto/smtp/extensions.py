"""What the SMTP server offers: the EHLO keywords (RFC 5321 §4.1.1.1; RFC 1870 SIZE, 2920
PIPELINING, 3207 STARTTLS, 2034 ENHANCEDSTATUSCODES, 4954 AUTH, 6152 8BITMIME, 6531 SMTPUTF8),
the AUTH mechanisms it offers in the clear or under TLS, the MAIL parameters it knows, and the
HELP texts (RFC 5321 §4.1.1.8).

Plain data and functions of the configuration and the session's TLS/AUTH state: no I/O.
"""

from __future__ import annotations

from .. import auth
from .config import ServerConfig

#: The MAIL FROM parameters an EHLO client may use (RFC 1870, 6152, 6531, 4954 §5).
ESMTP_PARAMS = {"SIZE", "BODY", "SMTPUTF8", "AUTH"}

#: ``HELP <command>``: one line each, with its RFC section.
HELP = {
    "HELO": "HELO <hostname>: identify yourself (RFC 5321 4.1.1.1)",
    "EHLO": "EHLO <hostname>: identify yourself and ask for extensions (RFC 5321 4.1.1.1)",
    "MAIL": "MAIL FROM:<sender> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8] (RFC 5321 4.1.1.2)",
    "RCPT": "RCPT TO:<recipient>, once per recipient (RFC 5321 4.1.1.3)",
    "DATA": "DATA, then the message, ended by a line with a single dot (RFC 5321 4.1.1.4)",
    "RSET": "RSET: abort the current transaction (RFC 5321 4.1.1.5)",
    "VRFY": "VRFY <user>: verify a mailbox, usually disabled (RFC 5321 4.1.1.6, 7.3)",
    "EXPN": "EXPN <list>: expand a mailing list, usually disabled (RFC 5321 4.1.1.7, 7.3)",
    "HELP": "HELP [command]: this text (RFC 5321 4.1.1.8)",
    "NOOP": "NOOP: do nothing, answer 250 (RFC 5321 4.1.1.9)",
    "QUIT": "QUIT: close the session (RFC 5321 4.1.1.10)",
    "AUTH": "AUTH <mechanism> [initial-response]: authenticate (RFC 4954)",
    "STARTTLS": "STARTTLS: switch to TLS (RFC 3207)",
}


def auth_mechanisms(config: ServerConfig, tls: bool) -> list[str]:
    """What AUTH offers now (RFC 4954 §4, RFC 3207 §6 on plaintext before TLS)."""
    if config.require_tls_for_auth and not tls:
        return []
    if tls or config.allow_plaintext_auth:
        return list(auth.MECHANISMS)
    return [m for m in auth.MECHANISMS if m not in auth.PLAINTEXT_MECHANISMS]


def ehlo_lines(config: ServerConfig, helo: str, peer_ip: str, *, tls: bool,
               authenticated: bool) -> list[str]:
    """The lines of the 250 reply to EHLO: the greeting, then one extension keyword each."""
    lines = [f"{config.hostname} Hello {helo} [{peer_ip}]", "PIPELINING",
             f"SIZE {config.max_message_size}"]
    if config.enable_vrfy:
        lines.append("VRFY")
    lines += ["8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"]
    mechs = auth_mechanisms(config, tls)
    if mechs and not authenticated:
        lines.append("AUTH " + " ".join(mechs))
    if config.starttls and not tls:
        lines.append("STARTTLS")
    lines.append("HELP")
    return lines
