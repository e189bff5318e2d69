"""POP3's states and legal transitions: the one table (RFC 1939 §3, §4-§6; RFC 2449; RFC 5034;
RFC 2595).

Theory of operation
-------------------
Once the TCP connection is open and the server's ``+OK`` greeting is out, the session is in the
AUTHORIZATION state (RFC 1939 §4).  There the client says who it is: USER then PASS (§7), APOP
with an MD5 digest over the greeting's timestamp (§7), or AUTH with a SASL mechanism (RFC 5034
§4).  USER alone does not leave the state: it only names the user PASS will try.  A SASL exchange
(``+ <challenge>`` lines, then the client's answers) happens inside AUTHORIZATION too: the lines
are SASL responses, not commands, until the server answers ``+OK`` or ``-ERR``.  CAPA (RFC 2449
§5) and STLS (RFC 2595 §4: TLS handshake, then the client starts AUTHORIZATION over, without a
new greeting) loop back.

A successful login locks the maildrop (RFC 1939 §8) and enters TRANSACTION (§5), where the
messages are numbered 1..n, in arrival order, for the whole session.  STAT, LIST, UIDL, RETR,
TOP, DELE, RSET, NOOP and CAPA loop back: DELE only *marks* a message; nothing is removed yet.

QUIT in TRANSACTION enters UPDATE (§6): the server removes the marked messages, releases the lock
and closes, which is the UPDATE → CLOSED row.  QUIT in AUTHORIZATION closes without UPDATE, and a
session that ends any other way (timeout, dropped connection, server shutdown) never reaches
UPDATE: nothing is deleted (§6, "if a session terminates for some reason other than a client-
issued QUIT command, the POP3 session does not enter the UPDATE state").  Those endings are the
pseudo-events TIMEOUT and CLOSE, rows like the others so the diagram shows them.

Only *successful* commands are rows here.  A command the table does not allow in the current state
gets ``-ERR`` and the state stays, and so does one that fails for another reason (wrong password,
no such message ...).  The server never takes a transition that is not a row of this table.
"""

from __future__ import annotations

from enum import Enum

from ..statetable import StateTable, Transition


class State(Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


A, T, U, X = State.AUTHORIZATION, State.TRANSACTION, State.UPDATE, State.CLOSED

#: Pseudo-commands: protocol events that are not a command verb.
AUTH_LIST = "AUTH (no argument)"
UPDATE_DONE = "marked messages removed"
TIMEOUT = "timeout"
#: The connection ends without QUIT: the client vanished, too many errors, the server stops.
CLOSE = "connection ends"

_rows: list[Transition] = [
    Transition(A, "USER", A, "name the user PASS will try: always +OK", "RFC 1939 §7"),
    Transition(A, "PASS", T, "password right: lock the maildrop", "RFC 1939 §7"),
    Transition(A, "APOP", T, "MD5(timestamp + secret) right: lock the maildrop", "RFC 1939 §7"),
    Transition(A, "AUTH", T, "SASL exchange succeeded: lock the maildrop", "RFC 5034 §4"),
    Transition(A, AUTH_LIST, A, "list the SASL mechanisms", "RFC 5034 §4"),
    Transition(A, "STLS", A, "TLS handshake, then log in again", "RFC 2595 §4"),
    Transition(A, "CAPA", A, "list the capabilities", "RFC 2449 §5"),
    Transition(A, "QUIT", X, "sign off: no UPDATE", "RFC 1939 §4"),
    Transition(T, "STAT", T, "count and size of the maildrop", "RFC 1939 §5"),
    Transition(T, "LIST", T, "size of one message, or of all", "RFC 1939 §5"),
    Transition(T, "UIDL", T, "unique id of one message, or of all", "RFC 1939 §7"),
    Transition(T, "RETR", T, "send a whole message", "RFC 1939 §5"),
    Transition(T, "TOP", T, "send the header and the first lines of the body", "RFC 1939 §7"),
    Transition(T, "DELE", T, "mark a message deleted", "RFC 1939 §5"),
    Transition(T, "RSET", T, "unmark every deleted message", "RFC 1939 §5"),
    Transition(T, "NOOP", T, "do nothing: +OK", "RFC 1939 §5"),
    Transition(T, "CAPA", T, "list the capabilities", "RFC 2449 §5"),
    Transition(T, "QUIT", U, "enter UPDATE: remove the marked messages", "RFC 1939 §6"),
    Transition(U, UPDATE_DONE, X, "+OK signing off, or -ERR if a removal failed", "RFC 1939 §6"),
    Transition(A, TIMEOUT, X, "autologout: idle too long", "RFC 1939 §3"),
    Transition(T, TIMEOUT, X, "autologout: no UPDATE, nothing removed", "RFC 1939 §3"),
    Transition(A, CLOSE, X, "connection ends without QUIT", "RFC 1939 §6"),
    Transition(T, CLOSE, X, "connection ends without QUIT: no UPDATE, nothing removed",
               "RFC 1939 §6"),
]

TABLE = StateTable("POP3", State, State.AUTHORIZATION, State.CLOSED, _rows)
#: Every command verb the server knows: the twelve of the seed, CAPA, AUTH and STLS.
COMMANDS = ("USER", "PASS", "APOP", "STAT", "UIDL", "LIST", "RETR", "DELE", "RSET", "TOP", "NOOP",
            "QUIT", "CAPA", "AUTH", "STLS")
