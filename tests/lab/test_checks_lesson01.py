"""Lesson 1's checks (mailproto/lab/checks/lesson01.py): right answers pass, the usual wrong ones
fail with the finding that explains them, and hints get more specific on each try."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailproto.lab import check, start
from mailproto.lab.checks.lesson01 import address_of, transactions
from mailproto.lab.exercises import Feedback, exercises, reset
from mailproto.lab.session import Lab, LabSession

ENVELOPE = ["EHLO student.example", "MAIL FROM:<alice@local.test>"]


@pytest.fixture(autouse=True)
def fresh_attempts() -> Iterator[None]:
    reset()
    yield
    reset()


@pytest.fixture()
def lab() -> Iterator[Lab]:
    with start(users={"alice": "secret", "bob": "hunter2"}) as lab:
        yield lab


def run(lab: Lab, lines: list[str]) -> LabSession:
    session = lab.smtp()
    for line in lines:
        session.send(line)
    return session


def texts(feedback: Feedback) -> str:
    return "\n".join(f.text for f in feedback.findings)


def test_lesson01_exercises_are_registered() -> None:
    ids = set(exercises())
    assert {"smtp-first-message", "smtp-envelope-vs-header", "smtp-two-recipients-one-data",
            "smtp-bcc-envelope-only", "smtp-dot-stuffing", "smtp-predict-503"} <= ids
    for ex_id in ids & {"smtp-envelope-vs-header", "smtp-two-recipients-one-data",
                        "smtp-bcc-envelope-only", "smtp-dot-stuffing", "smtp-predict-503"}:
        assert len(exercises()[ex_id].hints) >= 3


def test_address_of() -> None:
    assert address_of("FROM:<Alice@Local.test> SIZE=10") == "alice@local.test"
    assert address_of("TO:<bob@local.test>") == "bob@local.test"
    assert address_of("FROM:<>") == ""
    assert address_of("TO: bob@local.test") == "bob@local.test"


def test_transactions_follow_the_server(lab: Lab) -> None:
    s = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "RCPT TO:<carol@local.test>", "DATA",
                  "Subject: x", "", "..dot", ".", "MAIL FROM:<bob@local.test>", "RSET"])
    t, aborted = transactions(s.transcript)
    assert aborted.sender == "bob@local.test" and not aborted.delivered  # RSET before DATA
    assert t.sender == "alice@local.test"
    assert t.recipients == ["bob@local.test"] and t.refused == ["carol@local.test"]
    assert t.sent_lines == [b"Subject: x", b"", b"..dot"]
    assert t.stored_lines[-1] == b".dot" and t.delivered


def test_transactions_when_pipelined(lab: Lab) -> None:
    s = lab.smtp()
    s.send_lines("EHLO x", "MAIL FROM:<alice@local.test>", "RCPT TO:<bob@local.test>",
                 "RCPT TO:<alice@local.test>", "DATA", "To: bob@local.test", "", "hi", ".")
    (t,) = transactions(s.transcript)
    assert t.recipients == ["bob@local.test", "alice@local.test"] and t.delivered


def test_first_message(lab: Lab) -> None:
    partial = run(lab, ["EHLO student.example"])
    fb = check("smtp-first-message", partial)
    assert not fb.passed and fb.attempt == 1 and "EHLO" in fb.hint
    ok = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "DATA", "Subject: hi", "", "x", "."])
    assert check("smtp-first-message", ok).passed


def test_two_recipients(lab: Lab) -> None:
    good = run(lab, [*ENVELOPE, "RCPT TO:<alice@local.test>", "RCPT TO:<bob@local.test>",
                     "DATA", "Subject: both", "", "x", "."])
    fb = check("smtp-two-recipients-one-data", good)
    assert fb.passed and "2 accepted recipients" in texts(fb)


def test_two_recipients_sent_twice_is_two_datas(lab: Lab) -> None:
    twice = run(lab, [*ENVELOPE, "RCPT TO:<alice@local.test>", "DATA", "", "1", ".",
                      "MAIL FROM:<alice@local.test>", "RCPT TO:<bob@local.test>", "DATA", "",
                      "2", "."])
    fb = check("smtp-two-recipients-one-data", twice)
    assert not fb.passed and "2 messages with one recipient each" in texts(fb)
    assert all(f.rule for f in fb.findings)


def test_two_recipients_one_refused(lab: Lab) -> None:
    s = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "RCPT TO:<carol@local.test>", "DATA",
                  "", "x", "."])
    fb = check("smtp-two-recipients-one-data", s)
    assert not fb.passed and "1 RCPT refused" in texts(fb)


def test_two_recipients_without_a_message(lab: Lab) -> None:
    s = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "RCPT TO:<alice@local.test>", "DATA"])
    fb = check("smtp-two-recipients-one-data", s)
    assert not fb.passed and "single dot" in texts(fb)
    s = run(lab, ["EHLO student.example"])
    assert "no mail transaction yet" in texts(check("smtp-two-recipients-one-data", s))


def test_bcc(lab: Lab) -> None:
    good = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "RCPT TO:<alice@local.test>",
                     "DATA", "To: Bob <bob@local.test>", "Subject: r", "", "x", "."])
    assert check("smtp-bcc-envelope-only", good).passed


def test_bcc_line_on_the_wire_fails(lab: Lab) -> None:
    leaky = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "RCPT TO:<alice@local.test>",
                      "DATA", "To: bob@local.test", "Bcc: alice@local.test", "", "x", "."])
    fb = check("smtp-bcc-envelope-only", leaky)
    assert not fb.passed
    assert "a Bcc: line was sent in the message" in texts(fb)
    assert "every recipient is also named in a header" in texts(fb)


def test_bcc_everyone_in_to_or_single_recipient(lab: Lab) -> None:
    open_ = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "RCPT TO:<alice@local.test>",
                      "DATA", "To: bob@local.test, alice@local.test", "", "x", "."])
    assert not check("smtp-bcc-envelope-only", open_).passed
    single = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "DATA", "To: bob@local.test",
                       "", "x", "."])
    fb = check("smtp-bcc-envelope-only", single)
    assert not fb.passed and "second RCPT TO" in texts(fb)


def test_dot_stuffing(lab: Lab) -> None:
    good = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "DATA", "Subject: d", "",
                     "..profile", "."])
    assert check("smtp-dot-stuffing", good).passed
    assert lab.mailbox("bob")[-1].endswith(b"\n.profile\n")


def test_dot_stuffing_forgotten(lab: Lab) -> None:
    bad = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "DATA", "Subject: d", "",
                    ".profile", "."])
    fb = check("smtp-dot-stuffing", bad)
    assert not fb.passed
    assert "started with a single '.'" in texts(fb) and "nothing was dot-stuffed" in texts(fb)
    assert any(f.rule == "RFC 5321 §4.5.2" for f in fb.findings)


def test_envelope_vs_header(lab: Lab) -> None:
    good = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "DATA",
                     "From: Bank <security@bank.example>", "", "x", "."])
    assert check("smtp-envelope-vs-header", good).passed
    same = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "DATA",
                     "From: Alice <alice@local.test>", "", "x", "."])
    fb = check("smtp-envelope-vs-header", same)
    assert not fb.passed and "name the same address" in texts(fb)
    none = run(lab, [*ENVELOPE, "RCPT TO:<bob@local.test>", "DATA", "Subject: s", "", "x", "."])
    assert "no From: header line" in texts(check("smtp-envelope-vs-header", none))


def test_predict_503() -> None:
    assert check("smtp-predict-503", {"RCPT before MAIL": 503, "DATA before RCPT": "503",
                                      "MAIL before EHLO": "503 5.5.1"}).passed
    assert check("smtp-predict-503", [503, 554, 503]).passed  # 554 is allowed for DATA


def test_predict_503_wrong_answers_explained() -> None:
    fb = check("smtp-predict-503", {"RCPT before MAIL": 550, "DATA before RCPT": 250,
                                    "MAIL before EHLO": 500})
    assert not fb.passed and not any(f.ok for f in fb.findings)
    text = texts(fb)
    assert "never gets as far as the address" in text
    assert "2xx" in text and "did not recognise" in text
    assert "503" not in text  # the answer is never printed


def test_predict_503_placeholder_and_bad_shape() -> None:
    fb = check("smtp-predict-503", {"RCPT before MAIL": 0, "DATA before RCPT": 0,
                                    "MAIL before EHLO": 0})
    assert not fb.passed and "is not a reply code yet" in texts(fb)
    fb = check("smtp-predict-503", 503)
    assert not fb.passed and "dict" in texts(fb)


def test_hints_escalate(lab: Lab) -> None:
    s = run(lab, ["EHLO student.example"])
    hints = [check("smtp-bcc-envelope-only", s).hint for _ in range(5)]
    expected = exercises()["smtp-bcc-envelope-only"].hints
    assert hints[: len(expected)] == expected
    assert hints[-1] == expected[-1]  # the last hint stays
    assert len(set(hints)) == len(expected)


def test_a_string_is_not_a_session() -> None:
    fb = check("smtp-dot-stuffing", "my session")
    assert not fb.passed and "hand in your session" in texts(fb)
