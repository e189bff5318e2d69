"""Lesson 3's checks (POP3 by hand): right answers pass, typical wrong ones fail with the right
finding, hints escalate; and the state path of a POP3 session that only got its greeting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailproto.demo import maildir_names
from mailproto.lab import check, start
from mailproto.lab.checks.lesson03 import PREDICT_UIDL
from mailproto.lab.exercises import exercises, reset
from mailproto.lab.statepath import state_path


@pytest.fixture(autouse=True)
def fresh_attempts() -> Iterator[None]:
    reset()
    yield
    reset()


def failing(feedback: object) -> list[str]:
    return [f.text for f in feedback.findings if not f.ok]  # type: ignore[attr-defined]


def login(lab):
    session = lab.pop3()
    session.send("USER username")
    session.send("PASS password")
    return session


def test_registered() -> None:
    assert {"pop3-seed-session", "pop3-rset", "pop3-delete-for-real",
            "pop3-predict-numbers"} <= set(exercises())


# -- pop3-seed-session -------------------------------------------------------------------------
def test_seed_session_passes_typed_as_in_the_article() -> None:
    pop = start(demo=True).pop3()
    for line in ("user username", "pass password", "stat"):
        pop.send(line)
    feedback = check("pop3-seed-session", pop)
    assert feedback.passed
    assert "+OK 7 291593" in repr(feedback)


def test_seed_session_nothing_typed() -> None:
    feedback = check("pop3-seed-session", start(demo=True).pop3())
    assert not feedback.passed
    assert any("not logged in" in t for t in failing(feedback))


def test_seed_session_stat_before_login() -> None:
    pop = start(demo=True).pop3()
    pop.send("STAT")
    pop.send("USER username")
    pop.send("PASS password")
    feedback = check("pop3-seed-session", pop)
    fails = failing(feedback)
    assert len(fails) == 1 and fails[0].startswith("you sent STAT before logging in")


def test_seed_session_only_stat_says_wrong_state() -> None:
    pop = start(demo=True).pop3()
    pop.send("STAT")
    feedback = check("pop3-seed-session", pop)
    assert any("only allowed in the TRANSACTION state" in t for t in failing(feedback))


@pytest.mark.parametrize("lines, finding", [
    (["PASS password"], "PASS came without a USER"),
    (["USER username", "PASS wrong"], "refused your login"),
])
def test_seed_session_login_mistakes(lines: list[str], finding: str) -> None:
    pop = start(demo=True).pop3()
    for line in lines:
        pop.send(line)
    pop.send("STAT")
    assert any(finding in t for t in failing(check("pop3-seed-session", pop)))


def test_seed_session_accepts_a_transcript_and_refuses_other_things() -> None:
    pop = login(start(demo=True))
    pop.send("STAT")
    assert check("pop3-seed-session", pop.transcript).passed
    assert not check("pop3-seed-session", "USER username").passed


def test_hints_escalate_and_never_repeat_until_the_last() -> None:
    pop = start(demo=True).pop3()
    hints = [check("pop3-seed-session", pop).hint for _ in range(5)]
    assert len(set(hints[:4])) == 4
    assert hints[4] == hints[3]


# -- pop3-rset ---------------------------------------------------------------------------------
def test_rset_right() -> None:
    lab = start(demo=True)
    s = login(lab)
    s.send_lines("DELE 2", "DELE 3", "STAT")
    s.send_lines("RSET", "STAT", "QUIT")
    assert check("pop3-rset", s).passed
    assert len(lab.mailbox("username")) == 7


def test_rset_placeholder_fails_kindly() -> None:
    s = login(start(demo=True))
    s.send("...")
    assert failing(check("pop3-rset", s)) == ["no DELE got +OK yet: mark a message with DELE n"]


def test_rset_missing_quit_and_missing_stat() -> None:
    s = login(start(demo=True))
    s.send_lines("DELE 1", "RSET")
    fails = failing(check("pop3-rset", s))
    assert any("look with STAT after DELE" in t for t in fails)
    assert any("look with STAT after RSET" in t for t in fails)
    assert any("end with QUIT" in t for t in fails)


def test_rset_marking_again_after_rset_fails() -> None:
    lab = start(demo=True)
    s = login(lab)
    s.send_lines("DELE 1", "STAT", "RSET", "STAT", "DELE 4", "QUIT")
    assert any("marked a message again after RSET" in t for t in failing(check("pop3-rset", s)))
    assert len(lab.mailbox("username")) == 6


def test_rset_without_rset() -> None:
    s = login(start(demo=True))
    s.send_lines("DELE 1", "STAT", "QUIT")
    assert any("no RSET" in t for t in failing(check("pop3-rset", s)))


def test_rset_not_logged_in() -> None:
    s = start(demo=True).pop3()
    s.send("DELE 1")
    assert any("not logged in" in t for t in failing(check("pop3-rset", s)))


# -- pop3-delete-for-real ----------------------------------------------------------------------
def test_delete_for_real_right() -> None:
    lab = start(demo=True)
    s = login(lab)
    s.send("TOP 7 0")
    s.send_lines("DELE 7", "QUIT")
    assert check("pop3-delete-for-real", lab).passed


def test_delete_without_quit_deletes_nothing() -> None:
    lab = start(demo=True)
    s = login(lab)
    s.send("DELE 7")
    s.client.close()
    fails = failing(check("pop3-delete-for-real", lab))
    assert fails == ["the bounce is still in the Maildir: DELE only marks a message; it is "
                     "removed when the session enters UPDATE"]


def test_delete_the_wrong_message() -> None:
    lab = start(demo=True)
    s = login(lab)
    s.send_lines("DELE 3", "QUIT")
    fails = failing(check("pop3-delete-for-real", lab))
    assert any("removed other messages instead" in t for t in fails)
    assert any("'Traffic chart for the lab report'" in t for t in fails)


def test_delete_too_much() -> None:
    lab = start(demo=True)
    s = login(lab)
    s.send_lines("DELE 1", "DELE 7", "QUIT")
    feedback = check("pop3-delete-for-real", lab)
    assert not feedback.passed
    assert feedback.findings[0].ok  # the bounce is gone ...
    assert "1 other message(s) were removed too" in failing(feedback)[0]  # ... and one more


def test_delete_hand_in_a_session_instead_of_the_lab() -> None:
    s = login(start(demo=True))
    assert any("hand in the lab" in t for t in failing(check("pop3-delete-for-real", s)))


# -- pop3-predict-numbers ----------------------------------------------------------------------
def test_predict_numbers_matches_the_server() -> None:
    """The expected answer is what the server really does: delete 1, QUIT, UIDL again."""
    lab = start(demo=True)
    s = login(lab)
    s.send_lines("DELE 1", "QUIT")
    s = login(lab)
    uidl = s.client.uidl()
    number = next(n for n, uid in uidl.items() if uid == PREDICT_UIDL)
    assert check("pop3-predict-numbers", number).passed
    assert check("pop3-predict-numbers", str(number)).passed
    assert PREDICT_UIDL == maildir_names()[4] == "1138978041.M000005P1Q5.demo"


@pytest.mark.parametrize("answer, finding", [
    (None, "hand in a number"),
    ("four", "hand in a number"),
    (True, "hand in a number"),
    (5, "that was its number in the first session"),
    (9, "there is no message 9"),
    (2, "not that one"),
])
def test_predict_numbers_wrong(answer: object, finding: str) -> None:
    fails = failing(check("pop3-predict-numbers", answer))
    assert fails and finding in fails[0]


def test_predict_numbers_refuses_a_session() -> None:
    s = login(start(demo=True))
    assert "not a session" in failing(check("pop3-predict-numbers", s))[0]


def test_no_feedback_gives_the_number_away() -> None:
    for answer in (None, 5, 2, 9):
        feedback = check("pop3-predict-numbers", answer)
        said = " ".join([f.text for f in feedback.findings] + [feedback.hint])
        assert "4" not in said.replace("§4", "")


# -- the greeting is no move (mailproto.lab.statepath) -----------------------------------------
def test_pop3_greeting_takes_no_row() -> None:
    pop = start(demo=True).pop3()
    pop.send("STAT")
    path = state_path(pop.transcript)
    assert path.moves == []
    assert path.last_rejection() is not None and path.last_rejection().event == "STAT"
    pop.send("AUTH")
    assert [m.event for m in state_path(pop.transcript).moves] == ["AUTH (no argument)"]
