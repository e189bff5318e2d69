"""Lesson 4's checks (passwords on the wire): right answers pass, typical wrong ones fail with
the right finding, hints escalate; the captured logins are real and stable."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from mailproto.auth import apop_digest
from mailproto.lab import check, start
from mailproto.lab.checks.lesson04 import (
    TASK_SECRET,
    TASK_STAMP,
    WORDLIST,
    captured_apop,
    captured_cram,
)
from mailproto.lab.exercises import exchanges, exercises, reset


@pytest.fixture(autouse=True)
def fresh_attempts() -> Iterator[None]:
    reset()
    yield
    reset()


def failing(feedback: object) -> list[str]:
    return [f.text for f in feedback.findings if not f.ok]  # type: ignore[attr-defined]


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_registered() -> None:
    assert {"apop-by-hand", "apop-digest", "crack-the-digest"} <= set(exercises())


def test_wordlist_has_twenty_distinct_words() -> None:
    assert len(WORDLIST) == len(set(WORDLIST)) == 20


# -- the captures --------------------------------------------------------------------------------
def test_captures_are_real_logins_and_stable() -> None:
    for capture in (captured_apop(), captured_cram()):
        replies = [reply for verb, _, reply in exchanges(capture)]
        assert replies[-2].startswith("+OK Maildrop has")  # the login worked
        assert replies[-1].startswith("+OK")  # QUIT
    assert captured_apop().to_json() == captured_apop().to_json()
    greeting = captured_apop().steps[0].text
    assert "<1.1139290867@pop.example.net>" in greeting  # not the lab's own timestamps


def test_captures_do_not_show_the_password() -> None:
    for capture in (captured_apop(), captured_cram()):
        wire = b"".join(step.raw for step in capture)
        assert not any(word.encode() in wire for word in WORDLIST if len(word) > 3)


def test_the_notebooks_cram_example_cracks() -> None:
    import base64
    import hmac

    lines = [step.text.strip() for step in captured_cram() if step.direction in "CS"]
    challenge = base64.b64decode(lines[2][2:])
    user, captured = base64.b64decode(lines[3]).decode().split()
    found = [w for w in WORDLIST
             if hmac.new(w.encode(), challenge, hashlib.md5).hexdigest() == captured]
    assert user == "dave" and len(found) == 1


# -- apop-by-hand ------------------------------------------------------------------------------
def test_apop_by_hand_right() -> None:
    me = start(demo=True).pop3()
    me.send("APOP alice " + md5(me.client.timestamp + "alice-secret"))
    feedback = check("apop-by-hand", me)
    assert feedback.passed, feedback


def test_apop_with_the_client_method_also_passes() -> None:
    me = start(demo=True).pop3()
    me.client.apop("username", "password")
    assert check("apop-by-hand", me).passed


@pytest.mark.parametrize("make, finding", [
    (lambda ts: md5("alice-secret" + ts), "the timestamp comes first"),
    (lambda ts: md5(ts.strip("<>") + "alice-secret"), "angle brackets"),
    (lambda ts: md5(ts + " alice-secret"), "no space between"),
    (lambda ts: md5("alice-secret"), "secret alone"),
    (lambda ts: md5("<1.1@elsewhere>alice-secret"), "digest this session's timestamp"),
    (lambda ts: "...", "32 hexadecimal digits"),
])
def test_apop_by_hand_mistakes(make, finding: str) -> None:
    me = start(demo=True).pop3()
    me.send("APOP alice " + make(me.client.timestamp))
    fails = failing(check("apop-by-hand", me))
    assert len(fails) == 1 and finding in fails[0], fails


def test_apop_by_hand_no_apop_and_plain_password() -> None:
    me = start(demo=True).pop3()
    me.send_lines("USER username", "PASS password")
    fails = failing(check("apop-by-hand", me))
    assert fails == ["no APOP command in this session yet"]
    me3 = start(demo=True).pop3()
    me3.send("PASS x")
    me3.send("APOP alice " + md5(me3.client.timestamp + "alice-secret"))
    assert any("sent a password in clear (PASS)" in t for t in failing(check("apop-by-hand",
                                                                            me3)))


def test_apop_by_hand_wrong_arguments() -> None:
    me = start(demo=True).pop3()
    me.send("APOP alice")
    assert "two arguments" in failing(check("apop-by-hand", me))[0]


# -- apop-digest -------------------------------------------------------------------------------
def test_apop_digest_right_in_either_case() -> None:
    right = md5(TASK_STAMP + TASK_SECRET)
    assert right == apop_digest(TASK_STAMP, TASK_SECRET)
    assert check("apop-digest", right).passed
    assert check("apop-digest", f" {right.upper()}\n").passed


@pytest.mark.parametrize("answer, finding", [
    (md5(TASK_SECRET + TASK_STAMP), "the timestamp comes first"),
    (md5(TASK_STAMP.strip("<>") + TASK_SECRET), "angle brackets"),
    (md5(TASK_STAMP), "timestamp alone"),
    ("c4c9334bac560ecc979e58001b3e22fb", "the RFC's own example"),
    (hashlib.md5((TASK_STAMP + TASK_SECRET).encode()).digest(), ".hexdigest()"),
    ("...", "you handed in 3 characters"),
    (None, "as a string"),
    (md5("something else"), "not the digest of this timestamp"),
])
def test_apop_digest_mistakes(answer: object, finding: str) -> None:
    fails = failing(check("apop-digest", answer))
    assert len(fails) == 1 and finding in fails[0], fails


def test_apop_digest_hints_escalate() -> None:
    hints = [check("apop-digest", "...").hint for _ in range(4)]
    assert len(set(hints)) == 4


# -- crack-the-digest --------------------------------------------------------------------------
def test_crack_right() -> None:
    greeting = captured_apop().steps[0].text.split()[-1]
    digest = next(arg.split()[1] for verb, arg, _ in exchanges(captured_apop())
                  if verb == "APOP")
    found = [w for w in WORDLIST if md5(greeting + w) == digest]
    assert len(found) == 1
    assert check("crack-the-digest", found[0]).passed


@pytest.mark.parametrize("answer, finding", [
    ("monkey", "not this word"),
    ("hunter2", "not in the wordlist"),
    (42, "as a string"),
])
def test_crack_wrong(answer: object, finding: str) -> None:
    fails = failing(check("crack-the-digest", answer))
    assert len(fails) == 1 and finding in fails[0], fails


def test_crack_handing_in_the_digest() -> None:
    digest = next(arg.split()[1] for verb, arg, _ in exchanges(captured_apop())
                  if verb == "APOP")
    assert "that is the captured digest" in failing(check("crack-the-digest", digest))[0]


def test_crack_feedback_never_names_the_password() -> None:
    for answer in ("...", "monkey", "123456", 7):
        feedback = check("crack-the-digest", answer)
        said = " ".join([f.text for f in feedback.findings] + [feedback.hint])
        assert "dragon" not in said
