"""The exception family.

An ordinary protocol failure (503, 550, ``-ERR``) is a *reply*, never an exception: the student
sees it in the transcript. Exceptions are for broken framing, local misuse, and the high-level
clients, which raise smtplib-like errors that carry the reply.
"""

from __future__ import annotations


class MailprotoError(Exception):
    """Base class of every error this package raises."""


class ProtocolError(MailprotoError):
    """The peer broke the protocol's framing (the bytes cannot be read as the RFC says)."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids (e.g. CR or LF inside an argument)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""


class ConnectionClosed(MailprotoError):
    """The peer closed the connection (or it dropped) while we expected more."""


class ConfigError(MailprotoError):
    """A users file, a data directory or an option is not usable."""
