"""Named POP3 replies, with their RFC sections (RFC 1939, RFC 2449 §8 and RFC 3206 codes).

The texts follow RFC 1939's examples, and Dovecot's where the RFC has none, so what a student
sees here is what a real server says.  The seed article's wording is kept for the login reply.
"""

from __future__ import annotations

from .states import TABLE, State
from .wire import Reply, err, ok, printable

OK = ok()  # NOOP, RFC 1939 §5
#: RFC 3206 §4: [AUTH] means the credentials were wrong, not a temporary failure.  One reply
#: for an unknown user and a wrong password alike.
AUTH_FAILED = err("Invalid user name or password", "AUTH")
AUTH_FAILED_CLOSING = err("Invalid user name or password; too many failures, closing", "AUTH")
#: RFC 2595 §2.3 and Dovecot's ``disable_plaintext_auth``.
PLAINTEXT_DISALLOWED = err("Plaintext authentication disallowed without TLS", "AUTH")
TLS_REQUIRED = err("Authentication disallowed without TLS: send STLS first", "AUTH")
IN_USE = err("Maildrop is locked by another POP3 session", "IN-USE")  # RFC 2449 §8.1.1
MAILDROP_ERROR = err("Cannot open the maildrop", "SYS/TEMP")  # RFC 3206 §4
NO_USER = err("Send USER first")  # RFC 1939 §7: PASS only right after USER
AUTH_CANCELLED = err("Authentication cancelled")  # RFC 5034 §4
UNKNOWN_MECHANISM = err("Unsupported authentication mechanism")  # RFC 5034 §4
BEGIN_TLS = ok("Begin TLS negotiation")  # RFC 2595 §4
TLS_ACTIVE = err("TLS is already active")
NO_TLS = err("STLS is not available on this server")
LINE_TOO_LONG = err("line too long")  # RFC 2449 §4
EMPTY_COMMAND = err("Empty command")
TOO_MANY_ERRORS = " (too many errors, closing)"
UPDATE_FAILED = err("Some deleted messages not removed", "SYS/TEMP")  # RFC 1939 §6
CAPA_OK = ok("Capability list follows")  # RFC 2449 §5
TIMEOUT = err("Disconnected for inactivity (autologout, RFC 1939 §3)")
SHUTDOWN = err("Server shutting down", "SYS/TEMP")


def maildrop_has(count: int, octets: int) -> Reply:
    """The login reply, in the seed article's words: ``Maildrop has 7 messages (291593 bytes)``."""
    return ok(f"Maildrop has {count} message{'' if count == 1 else 's'} ({octets} bytes)")


def user_ok(name: str) -> Reply:
    """USER's reply, the same whether the user exists or not: USER reveals nothing (RFC 1939
    §13).  The seed's server said ``Password required for username@musemail.com``."""
    shown = printable(name, 64)
    return ok(f"Password required for {shown}" if shown else "Password required")


def unknown_command(verb: str) -> Reply:
    shown = printable(verb, 10)
    return err(f"Unknown command: {shown}" if shown else "Unknown command")


def not_in_state(verb: str, state: State) -> Reply:
    """-ERR for a command the table does not allow here, saying where it is allowed."""
    where = sorted({t.source.name for t in TABLE.transitions if t.event == verb})
    hint = f" (only in {' or '.join(where)})" if where else ""
    return err(f"{verb} not allowed in {state.name} state{hint}")


def no_such_message(number: int | str, count: int) -> Reply:
    """RFC 1939 §5's example wording."""
    return err(f"no such message, only {count} message{'' if count == 1 else 's'} in maildrop")


def already_deleted(number: int) -> Reply:
    return err(f"message {number} already deleted")


def bad_number(text: str) -> Reply:
    return err(f"Invalid message number: {printable(text, 20) or '?'}")


def syntax(usage: str) -> Reply:
    return err(f"Syntax: {usage}")


def signing_off(hostname: str, left: int | None = None) -> Reply:
    """QUIT's reply (RFC 1939 §6 example): with the count left after UPDATE, if there was one."""
    if left is None:
        return ok(f"{hostname} POP3 server signing off")
    return ok(f"{hostname} POP3 server signing off ({left} message{'' if left == 1 else 's'} "
              "left)")
