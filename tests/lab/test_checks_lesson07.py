"""Lesson 7's checks: right answers pass, typical wrong ones fail with the right finding, hints
escalate; and the annotation of what the lesson shows (smuggling, STARTTLS injection)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailproto.lab import check, start
from mailproto.lab.annotate import annotate
from mailproto.lab.checks.lesson07 import (
    RELAY_RCPTS,
    SPOOF_AS,
    enumeration_quiz,
    relay_quiz,
)
from mailproto.lab.exercises import exercises, reset
from mailproto.lab.transcript_html import render_transcript


@pytest.fixture(autouse=True)
def fresh_attempts() -> Iterator[None]:
    reset()
    yield
    reset()


def texts(feedback: object) -> list[tuple[bool, str]]:
    return [(f.ok, f.text) for f in feedback.findings]  # type: ignore[attr-defined]


def failing(feedback: object) -> list[str]:
    return [text for ok, text in texts(feedback) if not ok]


def send_message(smtp, sender: str, data: bytes | str, rcpt: str = "bob@local.test") -> None:
    smtp.send("EHLO student.example")
    smtp.send(f"MAIL FROM:<{sender}>")
    smtp.send(f"RCPT TO:<{rcpt}>")
    smtp.send("DATA")
    smtp.send(data)


# -- security-spot-open-relay ---------------------------------------------------------------------
def test_relay_quiz_shows_the_rcpts_not_the_replies() -> None:
    text = repr(relay_quiz())
    assert all(f"RCPT TO:<{a}>" in text for a in RELAY_RCPTS.values())
    assert "550" not in text and "250" not in text
    assert "<table>" in relay_quiz()._repr_html_()


def test_relay_right_answer_passes_in_any_form() -> None:
    for answer in ({"B", "D", "F"}, ["f", "d", "b"], "B, D, F", "b d f"):
        assert check("security-spot-open-relay", answer).passed, answer


@pytest.mark.parametrize("answer, finding", [
    ({"B"}, "refused as relaying (550 5.7.1) are missing"),
    ({"B", "D"}, "refused with 550 5.1.1 (no such mailbox) are missing"),
    ({"B", "C", "D", "F"}, "1 of your picks is accepted (250)"),
    ({"B", "D", "E", "F"}, "1 of your picks is accepted (250)"),
    ({"B", "D", "F", "Z"}, "Z: not one of the RCPTs"),
    (set(), "no prediction yet"),
])
def test_relay_wrong_answers_say_what_is_wrong(answer: set[str], finding: str) -> None:
    feedback = check("security-spot-open-relay", answer)
    assert not feedback.passed
    assert any(finding in text for text in failing(feedback)), texts(feedback)
    # never the answer: no letter of the truth is named in a failing finding
    assert not any(f"{x}:" in t or f" {x} " in t for t in failing(feedback) for x in "BDF")


def test_relay_hints_escalate_and_stop_at_the_last() -> None:
    hints = [check("security-spot-open-relay", {"A"}).hint for _ in range(4)]
    assert len(set(hints[:3])) == 3
    assert hints[3] == hints[2]
    assert "local.test" in hints[0] and "case" in hints[1] and "postmaster" in hints[2]


# -- security-enumeration -------------------------------------------------------------------------
def test_enumeration_quiz_shows_real_replies() -> None:
    text = repr(enumeration_quiz())
    assert "252 2.0.0" in text and "502 5.5.1" in text
    assert "250 2.1.5 <bob@local.test>" in text and "User unknown" in text
    assert text.count("-ERR [AUTH] Invalid user name or password") == 2
    assert "+OK Password required for ghost" in text


def test_enumeration_right_answer_passes() -> None:
    assert check("security-enumeration", {"C", "D", "E"}).passed


@pytest.mark.parametrize("answer, finding", [
    ({"C", "D"}, "1 reply(ies) that give a user away are missing"),
    ({"A", "C", "D", "E"}, "1 of your picks say(s) exactly the same"),
    ({"C", "D", "E", "F", "H"}, "2 of your picks say(s) exactly the same"),
    ({"Q"}, "Q: not one of the rows"),
    (set(), "no answer yet"),
])
def test_enumeration_wrong_answers(answer: set[str], finding: str) -> None:
    feedback = check("security-enumeration", answer)
    assert not feedback.passed
    assert any(finding in text for text in failing(feedback)), texts(feedback)


def test_enumeration_hints_escalate() -> None:
    first = check("security-enumeration", {"A"}).hint
    second = check("security-enumeration", {"A"}).hint
    third = check("security-enumeration", {"A"}).hint
    assert first != second != third
    assert "252" in second and "RCPT" in third


# -- security-spoof-from --------------------------------------------------------------------------
SPOOFED = (f"From: Help Desk <{SPOOF_AS}>\r\nSubject: Your password expires\r\n\r\n"
           "Please reply with your password.\r\n.")


def test_spoof_right_answer_passes_either_order() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    send_message(smtp, SPOOF_AS, SPOOFED)
    assert check("security-spoof-from", (smtp, lab)).passed
    assert check("security-spoof-from", (lab, smtp)).passed
    lab.stop()


def test_spoof_with_own_address_fails_on_envelope_and_header() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    send_message(smtp, "student@local.test",
                 "From: Student <student@local.test>\r\nSubject: hello\r\n\r\nHi Bob!\r\n.")
    feedback = check("security-spoof-from", (smtp, lab))
    wrong = failing(feedback)
    assert any("envelope sender (MAIL FROM) is not" in t for t in wrong)
    assert any("From: header names" in t for t in wrong)
    assert any("Return-Path" in t for t in wrong)
    assert "MAIL FROM" in feedback.hint
    lab.stop()


def test_spoof_only_envelope_fails_on_header() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    send_message(smtp, SPOOF_AS, "Subject: hello\r\n\r\nHi Bob!\r\n.")
    assert failing(check("security-spoof-from", (smtp, lab))) == [
        "the message has no From: header line before the empty line"]
    lab.stop()


def test_spoof_after_login_is_not_the_exercise() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    smtp.send("EHLO student.example")
    smtp.send("AUTH PLAIN AGFsaWNlAGFsaWNlLXNlY3JldA==")  # alice / alice-secret
    smtp.send(f"MAIL FROM:<{SPOOF_AS}>")
    smtp.send("RCPT TO:<bob@local.test>")
    smtp.send("DATA")
    smtp.send(SPOOFED)
    assert any("logged in" in t for t in failing(check("security-spoof-from", (smtp, lab))))
    lab.stop()


def test_spoof_without_lab_or_message() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    smtp.send("EHLO student.example")
    assert "no message was sent" in failing(check("security-spoof-from", (smtp, lab)))[0]
    send_message(smtp, SPOOF_AS, SPOOFED)
    assert any("hand in your lab too" in t for t in failing(check("security-spoof-from", smtp)))
    assert "hand in" in failing(check("security-spoof-from", lab))[0]
    lab.stop()


# -- security-smuggling ---------------------------------------------------------------------------
def test_smuggling_right_answer_passes_and_one_message_is_stored() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    before = len(lab.mailbox("bob"))
    send_message(smtp, "alice@local.test",
                 b"Subject: t\r\n\r\nbefore\n.\nMAIL FROM:<principal@local.test>\r\n.")
    assert check("security-smuggling", (smtp, lab)).passed
    assert len(lab.mailbox("bob")) == before + 1
    stored = lab.mailbox("bob")[-1]
    assert b"before\n\nMAIL FROM:<principal@local.test>\n" in stored
    lab.stop()


def test_smuggling_crlf_dot_lf_variant_counts_as_a_fake_end() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    send_message(smtp, "alice@local.test", b"Subject: t\r\n\r\nbefore\r\n.\nafter\r\n.")
    assert check("security-smuggling", (smtp, lab)).passed
    lab.stop()


def test_smuggling_placeholder_and_typical_mistakes() -> None:
    lab = start(demo=True)
    plain = lab.smtp()
    send_message(plain, "alice@local.test", b"Subject: t\r\n\r\nReplace this line.\r\n.")
    first = check("security-smuggling", (plain, lab))
    assert "no fake end yet" in failing(first)[0] and "send(b" in first.hint

    nothing_after = lab.smtp()
    send_message(nothing_after, "alice@local.test", b"Subject: t\r\n\r\nbefore\n.\n\r\n.")
    assert any("nothing but empty lines" in t
               for t in failing(check("security-smuggling", (nothing_after, lab))))

    good = lab.smtp()
    send_message(good, "alice@local.test", b"Subject: t\r\n\r\nbefore\n.\nafter\r\n.")
    assert failing(check("security-smuggling", good)) == [
        "hand in your lab too, to look in the mailbox: check('security-smuggling', (smtp, lab))"]
    nobody = start(demo=True)  # another lab: the message is not in its mailbox
    assert any("no stored message" in t
               for t in failing(check("security-smuggling", (good, nobody))))
    nobody.stop()
    lab.stop()


def test_every_lesson07_check_can_fail_and_has_hints() -> None:
    ids = [i for i in exercises() if i.startswith("security-")]
    assert sorted(ids) == ["security-enumeration", "security-smuggling", "security-spoof-from",
                           "security-spot-open-relay"]
    for exercise_id in ids:
        assert len(exercises()[exercise_id].hints) >= 3
        assert not check(exercise_id, set() if "spot" in exercise_id or "enum" in exercise_id
                         else start(demo=True).smtp()).passed


# -- what the lesson shows ------------------------------------------------------------------------
def test_annotation_marks_lines_after_starttls_as_discarded() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    smtp.send("EHLO student.example")
    smtp.send_lines("STARTTLS", "RSET")
    rset = next(i for i, s in enumerate(smtp.transcript) if s.raw == b"RSET\r\n")
    note = annotate(smtp.transcript)[rset]
    assert note.summary.startswith("Not read by the server") and "CVE-2011-0411" in note.text
    assert "discarded by the server" in render_transcript(smtp.transcript)
    lab.stop()


def test_annotation_of_typed_data_lines() -> None:
    lab = start(demo=True)
    smtp = lab.smtp()
    send_message(smtp, "alice@local.test", b"Subject: t\r\n\r\nbefore\n.\nafter\r\n.")
    steps = smtp.transcript.steps
    notes = annotate(smtp.transcript)
    by_raw = {s.raw: n for s, n in zip(steps, notes, strict=True) if s.kind == "data"}
    assert "bare LF" in by_raw[b"before\n"].text
    assert "is text, not the end" in by_raw[b".\n"].text
    assert by_raw[b".\r\n"].summary.startswith("End of the message")
    html = render_transcript(smtp.transcript)
    assert "[the message:" not in html  # one typed line is shown as the line it is
    lab.stop()
