"""Lesson 6's checks: right answers pass, typical wrong ones fail with the right finding, hints
escalate.  The Received: chains are real: a four-hop journey on loopback, and hand-made messages
for the odd cases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailproto.lab import check
from mailproto.lab.checks.lesson06 import message_text
from mailproto.lab.exercises import exercises, reset
from mailproto.lab.journey import Journey

TRAVEL = ["smtp.a.test", "relay1.r.test", "relay2.r.test", "mx.b.test"]


@pytest.fixture(autouse=True)
def fresh_attempts() -> Iterator[None]:
    reset()
    yield
    reset()


@pytest.fixture(scope="module")
def longer() -> Journey:
    return Journey.run(hops=4, deterministic=True)


def failing(feedback: object) -> list[str]:
    return [f.text for f in feedback.findings if not f.ok]  # type: ignore[attr-defined]


# -- journey-read-received ------------------------------------------------------------------
def test_read_received_right_order_passes(longer: Journey) -> None:
    assert check("journey-read-received", (longer, TRAVEL)).passed
    assert check("journey-read-received", (longer, [x.upper() for x in TRAVEL])).passed
    assert check("journey-read-received", (longer, " → ".join(TRAVEL))).passed
    assert check("journey-read-received", (longer.delivered, TRAVEL)).passed  # the bytes


def test_read_received_top_down_is_named_as_such(longer: Journey) -> None:
    feedback = check("journey-read-received", (longer, TRAVEL[::-1]))
    assert failing(feedback) == ["that is the order of the lines from the top down, which is "
                                 "the reverse of the journey: the top line was written last"]
    assert "TOP of the header" in feedback.hint


def test_read_received_sender_machine_is_not_a_server(longer: Journey) -> None:
    feedback = check("journey-read-received", (longer, ["alice-laptop", *TRAVEL]))
    wrong = failing(feedback)
    assert len(wrong) == 1 and wrong[0].startswith("alice-laptop wrote no Received: line")


@pytest.mark.parametrize("order, finding", [
    (TRAVEL[:3], "1 server(s) that wrote a line are missing"),
    ([*TRAVEL, "mx.b.test"], "a server is named more than once"),
    (["relay1.r.test", "smtp.a.test", "relay2.r.test", "mx.b.test"],
     "the order is not the order of travel"),
    ([], "no order yet"),
])
def test_read_received_wrong_orders(longer: Journey, order: list[str], finding: str) -> None:
    feedback = check("journey-read-received", (longer, order))
    assert not feedback.passed
    assert any(finding in text for text in failing(feedback)), failing(feedback)


def test_read_received_hints_escalate(longer: Journey) -> None:
    hints = [check("journey-read-received", (longer, [])).hint for _ in range(4)]
    assert len(set(hints[:3])) == 3 and hints[3] == hints[2]
    assert "bottom" in hints[1] and "'from'" in hints[2]


def test_read_received_truth_comes_from_the_message_handed_in() -> None:
    message = (b"Received: from b.example by c.example; Mon, 1 Jan 2024 00:00:02 +0000\r\n"
               b"Received: from a.example by b.example; Mon, 1 Jan 2024 00:00:01 +0000\r\n"
               b"Subject: x\r\n\r\nbody\r\n")
    assert check("journey-read-received", (message, ["b.example", "c.example"])).passed
    assert not check("journey-read-received", (message, ["c.example", "b.example"])).passed
    assert failing(check("journey-read-received", (b"Subject: x\r\n\r\n", ["a"]))) == [
        "this message has no Received: line to read"]


def test_read_received_wants_message_and_order() -> None:
    feedback = check("journey-read-received", TRAVEL)
    assert not feedback.passed and "check('journey-read-received', (journey, my_order))" in \
        failing(feedback)[0]


def test_message_text_masks_a_deterministic_journey(longer: Journey) -> None:
    header = repr(message_text(longer, header_only=True))
    assert header.count("Received:") == 4 and "Day, DD Mon YYYY" in header
    assert "QID1" in header and "\r" not in header and "Hello" not in header
    assert "MESSAGE-ID@a.test" in header


# -- journey-bounce-goes-where ----------------------------------------------------------------
def test_bounce_right_answer_passes_in_several_spellings() -> None:
    for answer in (("newsletter-bounces@musemail.com", "<>"),
                   ("<Newsletter-Bounces@musemail.com>", "MAIL FROM:<>")):
        assert check("journey-bounce-goes-where", answer).passed, answer


@pytest.mark.parametrize("answer, finding", [
    (("newsletter@musemail.com", "<>"), "that is the From: header"),
    (("username@musemail.com", "<>"), "that is the recipient"),
    (("postmaster@musemail.com", "<>"), "that address is not where"),
    (("?", "<>"), "no address yet"),
    (("newsletter-bounces@musemail.com", "MAILER-DAEMON@musemail.com"),
     "MAILER-DAEMON is what the bounce's From: header says"),
    (("newsletter-bounces@musemail.com", "newsletter-bounces@musemail.com"),
     "not the envelope sender a bounce carries"),
    (("newsletter-bounces@musemail.com", ""), "no envelope sender yet"),
    (("newsletter-bounces@musemail.com", "?"), "no envelope sender yet"),
])
def test_bounce_wrong_answers(answer: tuple[str, str], finding: str) -> None:
    feedback = check("journey-bounce-goes-where", answer)
    assert not feedback.passed
    assert any(finding in text for text in failing(feedback)), failing(feedback)


def test_bounce_feedback_never_names_the_answer() -> None:
    feedback = check("journey-bounce-goes-where", ("?", "?"))
    text = repr(feedback)
    assert "newsletter-bounces" not in text and "<>" not in text


def test_bounce_hints_escalate_and_needs_two_answers() -> None:
    hints = [check("journey-bounce-goes-where", ("?", "?")).hint for _ in range(3)]
    assert len(set(hints)) == 3 and "Return-Path" in hints[1] and "null" in hints[2]
    assert "two answers" in failing(check("journey-bounce-goes-where", "x@y"))[0]


def test_lesson06_exercises_are_registered() -> None:
    ids = sorted(i for i in exercises() if i.startswith("journey-"))
    assert ids == ["journey-bounce-goes-where", "journey-read-received"]
    assert all(len(exercises()[i].hints) >= 3 for i in ids)
