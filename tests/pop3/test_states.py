"""The POP3 state table (RFC 1939 §3-§6): the one truth the server, the client and the diagram
share."""

from __future__ import annotations

from mailproto.pop3 import states
from mailproto.pop3.server import ServerSession
from mailproto.pop3.states import AUTH_LIST, CLOSE, COMMANDS, TABLE, TIMEOUT, UPDATE_DONE, State

A, T, U, X = State.AUTHORIZATION, State.TRANSACTION, State.UPDATE, State.CLOSED


def test_the_four_states_of_rfc_1939() -> None:
    assert [s.name for s in State] == ["AUTHORIZATION", "TRANSACTION", "UPDATE", "CLOSED"]
    assert TABLE.initial is A and TABLE.final is X and TABLE.name == "POP3"


def test_the_main_path() -> None:
    assert TABLE.next(A, "PASS") is T
    assert TABLE.next(A, "APOP") is T
    assert TABLE.next(A, "AUTH") is T
    assert TABLE.next(T, "QUIT") is U
    assert TABLE.next(U, UPDATE_DONE) is X


def test_quit_in_authorization_skips_update() -> None:
    assert TABLE.next(A, "QUIT") is X


def test_self_loops_are_rows_so_the_diagram_shows_them() -> None:
    for verb in ("STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "CAPA"):
        assert TABLE.next(T, verb) is T, verb
    for verb in ("USER", "CAPA", "STLS", AUTH_LIST):
        assert TABLE.next(A, verb) is A, verb


def test_transaction_commands_only_in_transaction() -> None:
    for verb in ("STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP"):
        assert TABLE.allows(T, verb) and not TABLE.allows(A, verb), verb
    for verb in ("USER", "PASS", "APOP", "AUTH", "STLS"):
        assert TABLE.allows(A, verb) and not TABLE.allows(T, verb), verb


def test_endings_without_quit_never_reach_update() -> None:
    for event in (TIMEOUT, CLOSE):
        assert TABLE.next(A, event) is X and TABLE.next(T, event) is X
    assert [t.source for t in TABLE.transitions if t.target is U] == [T]


def test_nothing_leaves_closed_and_update_leaves_one_way() -> None:
    assert TABLE.events_from(X) == []
    assert TABLE.events_from(U) == [UPDATE_DONE]


def test_every_state_is_reachable() -> None:
    seen, todo = {A}, [A]
    while todo:
        state = todo.pop()
        for event in TABLE.events_from(state):
            target = TABLE.next(state, event)
            assert target is not None
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(State)


def test_every_row_says_what_it_means_and_where() -> None:
    for t in TABLE.transitions:
        assert t.note and t.rfc.startswith("RFC "), t


def test_every_command_is_a_row_and_has_a_handler() -> None:
    events = {t.event for t in TABLE.transitions}
    assert set(COMMANDS) <= events
    assert len(COMMANDS) == 15  # the twelve of the seed, CAPA, AUTH, STLS
    for verb in COMMANDS:
        assert callable(getattr(ServerSession, f"_do_{verb}")), verb


def test_theory_of_operation_is_documented() -> None:
    assert "Theory of operation" in (states.__doc__ or "")
