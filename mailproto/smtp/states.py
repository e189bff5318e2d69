"""SMTP's states and legal transitions: the one table (RFC 5321 §3, §4.1.4; RFC 4954; RFC 3207).

Theory of operation
-------------------
A session starts in CONNECTED once the server's 220 greeting is out.  HELO or EHLO (§4.1.1.1) moves
it to GREETED, where no mail transaction is open.  A transaction is MAIL (§4.1.1.2) → one or more
RCPT (§4.1.1.3) → DATA (§4.1.1.4): a 354 reply enters DATA, where the client sends the message,
and only ``CRLF.CRLF`` (§4.1.1.4) leaves it, back to GREETED, with a 250 (delivered) or an error
(nothing delivered).  RSET (§4.1.1.5) and a new EHLO abort the transaction.

AUTH (RFC 4954 §4) is a sub-dialogue: a 334 challenge enters AUTH, the client's last response
leaves it.  STARTTLS (RFC 3207 §4.2) sends 220 and the session starts over in CONNECTED, under TLS,
forgetting everything it knew.  QUIT (§4.1.1.10) ends in CLOSED from every state but DATA and AUTH
(where a line is data, not a command).

Only *successful* commands are rows here.  A command the table does not allow in the current state
is refused with 503 "bad sequence of commands" (§4.1.4) and the state stays; so is a command that
fails for another reason (550 no such user ...).  NOOP, HELP, VRFY, EXPN and RSET-outside-a-
transaction are rows that loop back, so the diagram shows where they are allowed.
"""

from __future__ import annotations

from enum import Enum

from ..statetable import StateTable, Transition


class State(Enum):
    CONNECTED = "CONNECTED"
    GREETED = "GREETED"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    CLOSED = "CLOSED"


C, G, A, M, R, D, X = (State.CONNECTED, State.GREETED, State.AUTH, State.MAIL, State.RCPT,
                       State.DATA, State.CLOSED)

#: Pseudo-commands: protocol events that are not a command verb.
END_OF_DATA = "<CRLF>.<CRLF>"
AUTH_DONE = "AUTH response"
TIMEOUT = "timeout"
#: The session ends without QUIT: 421 (too many errors or failed logins, the server stops) or
#: the connection drops.  Whatever DATA had received is thrown away, never half delivered.
CLOSE = "connection ends"

_rows: list[Transition] = [
    Transition(C, "HELO", G, "identify (SMTP)", "RFC 5321 §4.1.1.1"),
    Transition(C, "EHLO", G, "identify, list extensions", "RFC 5321 §4.1.1.1"),
    Transition(G, "MAIL", M, "start a transaction: the envelope sender", "RFC 5321 §4.1.1.2"),
    Transition(M, "RCPT", R, "first recipient", "RFC 5321 §4.1.1.3"),
    Transition(R, "RCPT", R, "another recipient", "RFC 5321 §4.1.1.3"),
    Transition(R, "DATA", D, "354: send the message", "RFC 5321 §4.1.1.4"),
    Transition(D, END_OF_DATA, G, "message ends: 250 delivered, or an error", "RFC 5321 §4.1.1.4"),
    Transition(G, "AUTH", A, "334: SASL exchange begins", "RFC 4954 §4"),
    Transition(A, AUTH_DONE, G, "235 authenticated, or 535/501", "RFC 4954 §4"),
    Transition(G, "STARTTLS", C, "220: TLS handshake, start over", "RFC 3207 §4.2"),
]
for _s in (G, M, R):
    _rows += [
        Transition(_s, "HELO", G, "identify again (aborts a transaction)", "RFC 5321 §4.1.4"),
        Transition(_s, "EHLO", G, "identify again (aborts a transaction)", "RFC 5321 §4.1.4"),
    ]
for _s in (M, R):
    _rows.append(Transition(_s, "RSET", G, "abort the transaction", "RFC 5321 §4.1.1.5"))
for _s in (C, G):
    _rows.append(Transition(_s, "RSET", _s, "nothing to reset", "RFC 5321 §4.1.1.5"))
for _s in (C, G, M, R):
    _rows += [
        Transition(_s, "NOOP", _s, "do nothing: 250", "RFC 5321 §4.1.1.9"),
        Transition(_s, "HELP", _s, "214 help text", "RFC 5321 §4.1.1.8"),
        Transition(_s, "VRFY", _s, "verify a user (usually disabled)", "RFC 5321 §4.1.1.6"),
        Transition(_s, "EXPN", _s, "expand a list (usually disabled)", "RFC 5321 §4.1.1.7"),
        Transition(_s, "QUIT", X, "221: close", "RFC 5321 §4.1.1.10"),
    ]
for _s in (C, G, A, M, R, D):
    _rows.append(Transition(_s, TIMEOUT, X, "421: idle too long", "RFC 5321 §4.5.3.2"))
    _rows.append(Transition(_s, CLOSE, X, "421 or dropped: nothing half-received is kept",
                            "RFC 5321 §3.8"))

TABLE = StateTable("SMTP", State, State.CONNECTED, State.CLOSED, _rows)
#: Every command verb the server knows (the eleven of the seed, AUTH and STARTTLS).
COMMANDS = ("HELO", "EHLO", "MAIL", "RCPT", "DATA", "VRFY", "EXPN", "HELP", "NOOP", "RSET", "QUIT",
            "AUTH", "STARTTLS")
