"""Named SMTP replies, with their RFC sections (RFC 5321 §4.2, enhanced codes RFC 3463).

The texts follow Postfix where it has one, so what a student sees here is what a real MTA says.
"""

from __future__ import annotations

from .states import State
from .wire import Reply

OK = Reply.of(250, "2.0.0 Ok")  # §4.1.1.5, §4.1.1.9
MAIL_OK = Reply.of(250, "2.1.0 Ok")  # §4.1.1.2
RCPT_OK = Reply.of(250, "2.1.5 Ok")  # §4.1.1.3
START_DATA = Reply.of(354, "End data with <CR><LF>.<CR><LF>")  # §4.1.1.4
BYE = Reply.of(221, "2.0.0 Bye")  # §4.1.1.10
CANNOT_VRFY = Reply.of(252, "2.0.0 Cannot VRFY user, but will accept message and attempt "
                            "delivery")  # §3.5.3, §7.3
UNRECOGNIZED = Reply.of(500, "5.5.2 Error: command not recognized")  # §4.2.4
EMPTY_LINE = Reply.of(500, "5.5.2 Error: bad syntax")
LINE_TOO_LONG = Reply.of(500, "5.5.2 Error: line too long")  # §4.5.3.1.4
AUTH_LINE_TOO_LONG = Reply.of(500, "5.5.6 Authentication Exchange line is too long")  # RFC 4954 §6
TOO_MANY_RECIPIENTS = Reply.of(452, "4.5.3 Error: too many recipients")  # §4.5.3.1.10
MESSAGE_TOO_BIG_DECLARED = Reply.of(552, "5.3.4 Message size exceeds fixed limit")  # RFC 1870 §6
MESSAGE_TOO_BIG = Reply.of(552, "5.3.4 Error: message file too big")  # RFC 1870 §6.3
NO_VALID_RECIPIENTS = Reply.of(554, "5.5.1 Error: no valid recipients")  # §3.3
INSUFFICIENT_STORAGE = Reply.of(452, "4.3.1 Insufficient system storage")  # §4.2.2


def bad_sequence(verb: str, state: State) -> Reply:
    """503 (§4.1.4), saying what should have come first."""
    if state is State.CONNECTED:
        why = "send HELO/EHLO first"
    elif verb == "MAIL":
        why = "nested MAIL command"
    elif verb == "RCPT":
        why = "need MAIL command"
    elif verb == "DATA" and state is State.MAIL:
        why = "need RCPT command"
    elif verb == "DATA":
        why = "need MAIL command"
    elif verb in ("AUTH", "STARTTLS"):
        why = f"{verb} not allowed during a mail transaction"
    else:
        why = "bad sequence of commands"
    return Reply.of(503, f"5.5.1 Error: {why}")


def path_error(kind: str, command: str, sender: bool) -> Reply:
    if kind == "syntax":
        return Reply.of(501, f"5.5.4 Syntax: {command}:<address>")
    if kind == "parameter":
        return Reply.of(501, "5.5.4 Bad parameter syntax")
    return Reply.of(501, f"5.1.{7 if sender else 3} Bad {'sender' if sender else 'recipient'} "
                         "address syntax")


def user_unknown(address: str) -> Reply:
    return Reply.of(550, f"5.1.1 <{address}>: Recipient address rejected: User unknown in "
                         "local recipient table")


def relay_denied(address: str) -> Reply:
    return Reply.of(550, f"5.7.1 <{address}>: Relay access denied")
