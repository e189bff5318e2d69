"""POP3 (RFC 1939, with RFC 2449, RFC 3206, RFC 5034 and RFC 2595): the state table, the wire
format and the sans-I/O server core.

``states`` is the one table of states and transitions; ``wire`` formats replies and parses
commands; ``maildrop`` is a session's locked, numbered view of a Maildir; ``server`` is the core
that ``mailproto.net.pop3_listener`` serves over TCP.
"""

from __future__ import annotations

from .server import ServerConfig, ServerSession
from .states import COMMANDS, TABLE, State

__all__ = ["COMMANDS", "TABLE", "ServerConfig", "ServerSession", "State"]
