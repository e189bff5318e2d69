"""The SMTP state table, and the server obeying it (RFC 5321 §4.1.4, RFC 4954, RFC 3207)."""

from __future__ import annotations

import pytest

from mailproto.smtp.server import ServerConfig
from mailproto.smtp.states import (
    AUTH_DONE,
    CLOSE,
    COMMANDS,
    END_OF_DATA,
    TABLE,
    TIMEOUT,
    State,
)

from ._support import converse, lines, split_replies

C, G, A, M, R, D, X = (State.CONNECTED, State.GREETED, State.AUTH, State.MAIL, State.RCPT,
                       State.DATA, State.CLOSED)


# -- the table itself -----------------------------------------------------------------------------
def test_initial_and_final():
    assert TABLE.initial is C and TABLE.final is X
    assert TABLE.events_from(X) == []


def test_every_state_is_reachable_and_can_end():
    reach = {C}
    changed = True
    while changed:
        changed = False
        for t in TABLE.transitions:
            if t.source in reach and t.target not in reach:
                reach.add(t.target)
                changed = True
    assert reach == set(State)
    for state in State:
        seen, todo = {state}, [state]
        while todo:
            s = todo.pop()
            for t in TABLE.transitions:
                if t.source is s and t.target not in seen:
                    seen.add(t.target)
                    todo.append(t.target)
        assert X in seen, state


@pytest.mark.parametrize("source, event, target", [
    (C, "HELO", G), (C, "EHLO", G), (G, "MAIL", M), (M, "RCPT", R), (R, "RCPT", R),
    (R, "DATA", D), (D, END_OF_DATA, G), (G, "AUTH", A), (A, AUTH_DONE, G), (G, "STARTTLS", C),
    (M, "RSET", G), (R, "RSET", G), (C, "RSET", C), (G, "RSET", G), (M, "EHLO", G),
    (R, "HELO", G), (G, "QUIT", X), (C, "QUIT", X), (M, "QUIT", X), (R, "QUIT", X),
    (D, TIMEOUT, X), (A, TIMEOUT, X), (C, TIMEOUT, X), (D, CLOSE, X), (A, CLOSE, X),
    (G, CLOSE, X),
])
def test_transitions(source, event, target):
    assert TABLE.next(source, event) is target


@pytest.mark.parametrize("source, event", [
    (C, "MAIL"), (C, "RCPT"), (C, "DATA"), (C, "AUTH"), (C, "STARTTLS"), (G, "RCPT"),
    (G, "DATA"), (M, "MAIL"), (M, "DATA"), (M, "AUTH"), (M, "STARTTLS"), (R, "MAIL"),
    (R, "AUTH"), (R, "STARTTLS"), (D, "QUIT"), (A, "QUIT"), (D, "RSET"), (A, "MAIL"),
])
def test_forbidden(source, event):
    assert TABLE.next(source, event) is None


def test_every_command_is_in_the_table_and_every_event_is_a_command_or_pseudo():
    events = {t.event for t in TABLE.transitions}
    assert set(COMMANDS) <= events
    assert events - set(COMMANDS) == {END_OF_DATA, AUTH_DONE, TIMEOUT, CLOSE}
    for t in TABLE.transitions:
        assert t.rfc.startswith("RFC "), t


# -- the server follows the table, for every (state, command) pair -------------------------------
SETUP = {
    C: [],
    G: ["EHLO c.test"],
    M: ["EHLO c.test", "MAIL FROM:<s@remote.test>"],
    R: ["EHLO c.test", "MAIL FROM:<s@remote.test>", "RCPT TO:<alice>"],
}
GOOD = {
    "HELO": "HELO c.test", "EHLO": "EHLO c.test", "MAIL": "MAIL FROM:<s@remote.test>",
    "RCPT": "RCPT TO:<bob>", "DATA": "DATA", "VRFY": "VRFY alice", "EXPN": "EXPN staff",
    "HELP": "HELP", "NOOP": "NOOP", "RSET": "RSET", "QUIT": "QUIT", "AUTH": "AUTH LOGIN",
    "STARTTLS": "STARTTLS",
}


@pytest.mark.parametrize("state", [C, G, M, R])
@pytest.mark.parametrize("verb", COMMANDS)
def test_server_obeys_the_table(tmp_path, state, verb):
    config = ServerConfig(enable_vrfy=True, starttls=True)
    setup = converse(tmp_path / "setup", lines(*SETUP[state]), config=config)
    assert setup.session.state is state
    run = converse(tmp_path / "run", lines(*SETUP[state], GOOD[verb]), config=config)
    reply = split_replies(run.out)[-1]
    target = TABLE.next(state, verb)
    if target is None:
        assert reply.startswith(b"503 5.5.1 Error: "), reply
        assert run.session.state is state
    else:
        assert reply[:1] in (b"2", b"3"), reply
        assert run.session.state is target
