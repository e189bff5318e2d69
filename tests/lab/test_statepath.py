"""The states a session went through, read from its transcript, for any state table."""

from __future__ import annotations

from pathlib import Path

from mailproto.lab.statepath import state_path, table_for
from mailproto.pop3.states import TABLE as POP3
from mailproto.smtp.states import END_OF_DATA
from mailproto.smtp.states import TABLE as SMTP

from ._sessions import Live, b64, pop3_transcript, smtp_transcript, store


def test_tables_by_protocol() -> None:
    assert table_for("smtp") is SMTP and table_for("POP3") is POP3
    assert table_for("imap") is None


def test_smtp_path_moves_are_table_rows(tmp_path: Path) -> None:
    path = state_path(smtp_transcript(tmp_path))
    rows = {(t.source.name, t.event, t.target.name) for t in SMTP.transitions}
    assert all(m.in_table and m.key in rows for m in path.moves)
    assert [m.key for m in path.moves][:2] == [("CONNECTED", "NOOP", "CONNECTED"),
                                                ("CONNECTED", "EHLO", "GREETED")]
    # AUTH PLAIN with an initial response enters and leaves AUTH within one reply.
    assert ("GREETED", "AUTH", "AUTH") in [m.key for m in path.moves]
    assert ("DATA", END_OF_DATA, "GREETED") in [m.key for m in path.moves]
    assert path.current == "CLOSED" and path.last_move is not None
    assert path.visited == {"CONNECTED", "GREETED", "AUTH", "MAIL", "RCPT", "DATA", "CLOSED"}


def test_smtp_rejections(tmp_path: Path) -> None:
    path = state_path(smtp_transcript(tmp_path))
    first = path.rejections[0]
    assert (first.state, first.event, first.code, first.by_table) == ("CONNECTED", "MAIL",
                                                                      "503", True)
    assert first.why == "Error: send HELO/EHLO first"
    unknown = next(r for r in path.rejections if r.code == "550")
    assert unknown.state == "MAIL" and not unknown.by_table  # allowed, but no such user


def test_upto_and_last_rejection(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    path = state_path(t, upto=5)  # greeting, NOOP, 250, MAIL, 503
    assert path.current == "CONNECTED"
    rej = path.last_rejection()
    assert rej is not None and rej.event == "MAIL"
    assert state_path(t, upto=7).last_rejection() is None  # EHLO moved on since


def test_sasl_exchange_over_several_lines(tmp_path: Path) -> None:
    live = Live("smtp", store(tmp_path))
    for line in ["EHLO me", "AUTH LOGIN", b64("alice"), b64("wrong")]:
        live.send(line)
    path = state_path(live.transcript)
    keys = [m.key for m in path.moves]
    assert keys[-2:] == [("GREETED", "AUTH", "AUTH"), ("AUTH", "AUTH response", "GREETED")]


def test_pop3_path(tmp_path: Path) -> None:
    path = state_path(pop3_transcript(tmp_path))
    keys = [m.key for m in path.moves]
    assert ("AUTHORIZATION", "PASS", "TRANSACTION") in keys
    assert keys[-2:] == [("TRANSACTION", "QUIT", "UPDATE"),
                         ("UPDATE", "marked messages removed", "CLOSED")]
    assert [r.code for r in path.rejections] == ["-ERR"] * 4
    assert path.rejections[0].by_table and path.rejections[0].event == "STAT"


def test_pop3_connection_lost_takes_the_table_row(tmp_path: Path) -> None:
    live = Live("pop3", store(tmp_path))
    live.send("USER alice")
    live.send("PASS secret")
    live.session.connection_lost()
    path = state_path(live.transcript)
    assert path.moves[-1].key == ("TRANSACTION", "connection ends", "CLOSED")
    assert path.moves[-1].in_table


def test_smtp_connection_lost_is_the_tables_close_row(tmp_path: Path) -> None:
    live = Live("smtp", store(tmp_path))
    live.send("EHLO me")
    live.session.connection_lost()
    move = state_path(live.transcript).moves[-1]
    assert (move.source, move.target, move.in_table) == ("GREETED", "CLOSED", True)
    assert move.event == "connection ends"
