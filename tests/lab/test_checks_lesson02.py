"""Lesson 2's checks and helpers (mailproto/lab/checks/lesson02.py): AUTH by hand, decoding an
overheard AUTH PLAIN, relay predictions, STARTTLS before AUTH; and the real-TLS lab the lesson
shows at its end."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator

import pytest

from mailproto.lab import check, start
from mailproto.lab.checks.lesson02 import auth_attempts, overheard, tls_auth_only
from mailproto.lab.exercises import Feedback, exchanges, exercises, reset
from mailproto.lab.session import Lab, LabSession

USERS = {"alice": "secret", "bob": "hunter2"}
ALICE = base64.b64encode(b"\0alice\0secret").decode()


@pytest.fixture(autouse=True)
def fresh_attempts() -> Iterator[None]:
    reset()
    yield
    reset()


@pytest.fixture()
def lab() -> Iterator[Lab]:
    with start(users=USERS) as lab:
        yield lab


@pytest.fixture()
def strict() -> Iterator[Lab]:
    with start(users=USERS) as lab:
        yield tls_auth_only(lab)


def run(lab: Lab, lines: list[str]) -> LabSession:
    session = lab.smtp()
    for line in lines:
        session.send(line)
    return session


def texts(feedback: Feedback) -> str:
    return "\n".join(f.text for f in feedback.findings)


def test_lesson02_exercises_are_registered() -> None:
    ids = {"esmtp-auth-plain-by-hand", "esmtp-decode-plain", "esmtp-relay",
           "esmtp-cram-md5-by-hand", "esmtp-starttls-before-auth"}
    assert ids <= set(exercises())
    assert all(len(exercises()[i].hints) >= 3 for i in ids)


def test_auth_attempts_pair_sasl_lines_with_their_auth(lab: Lab) -> None:
    s = run(lab, ["EHLO x", "AUTH LOGIN", base64.b64encode(b"alice").decode(),
                  base64.b64encode(b"wrong").decode(), "AUTH PLAIN " + ALICE])
    assert [(m, i, r[:3]) for m, i, r in auth_attempts(s.transcript)] == [
        ("LOGIN", False, "535"), ("PLAIN", True, "235")]


def test_auth_plain_by_hand(lab: Lab) -> None:
    token = base64.b64encode(b"\0bob\0hunter2").decode()
    fb = check("esmtp-auth-plain-by-hand", run(lab, ["EHLO x", "AUTH PLAIN " + token]))
    assert fb.passed


def test_auth_plain_in_two_steps(lab: Lab) -> None:
    s = run(lab, ["EHLO x", "AUTH PLAIN", ALICE])  # empty challenge, then the response
    assert check("esmtp-auth-plain-by-hand", s).passed


@pytest.mark.parametrize(("lines", "finding"), [
    (["EHLO x"], "no AUTH PLAIN yet"),
    (["EHLO x", "AUTH PLAIN " + base64.b64encode(b"bob\0hunter2").decode()], "got 501"),
    (["EHLO x", "AUTH PLAIN " + base64.b64encode(b"\0bob\0wrong").decode()], "got 535"),
    (["EHLO x", "AUTH PLAIN ..."], "could not read your response"),
    (["HELO x", "AUTH PLAIN " + ALICE], "no EHLO accepted yet"),
    (["EHLO x", "AUTH LOGIN", base64.b64encode(b"bob").decode(),
      base64.b64encode(b"hunter2").decode()], "you used LOGIN"),
])
def test_auth_plain_wrong(lab: Lab, lines: list[str], finding: str) -> None:
    fb = check("esmtp-auth-plain-by-hand", run(lab, lines))
    assert not fb.passed and finding in texts(fb)
    assert "hunter2" not in texts(fb)


def test_decode_plain() -> None:
    line = next(s.text for s in overheard() if s.text.startswith("AUTH PLAIN"))
    raw = base64.b64decode(line.split()[2])
    password = raw.split(b"\0")[2]
    assert check("esmtp-decode-plain", password.decode()).passed
    assert check("esmtp-decode-plain", password).passed  # bytes are fine too
    wrong = {
        "...": "not decoded yet",
        line.split()[2]: "still the base64",
        raw.decode(): "the whole decoded response",
        "carol": "the user name",
        "hunter2": "not the password",
    }
    for answer, finding in wrong.items():
        fb = check("esmtp-decode-plain", answer)
        assert not fb.passed and finding in texts(fb), answer
        assert password.decode() not in texts(fb) + fb.hint


def test_overheard_is_deterministic_and_real() -> None:
    a, b = overheard(), overheard()
    assert a.to_text() == b.to_text()
    assert any(s.text.startswith("235") for s in a)  # the login worked on our server


def test_relay_prediction() -> None:
    assert check("esmtp-relay", {"before AUTH": 550, "after AUTH": "250"}).passed
    assert check("esmtp-relay", (554, 251)).passed
    fb = check("esmtp-relay", {"before AUTH": 250, "after AUTH": 550})
    assert not fb.passed and "open relay" in texts(fb)
    fb = check("esmtp-relay", {"before AUTH": 530, "after AUTH": 0})
    assert "530" in texts(fb) and "not a reply code yet" in texts(fb)
    fb = check("esmtp-relay", {"before AUTH": 450, "after AUTH": 250})
    assert not fb.passed and "permanent" in texts(fb)
    assert "dict" in texts(check("esmtp-relay", "550"))


def test_relay_matches_the_server(lab: Lab) -> None:
    """The prediction the check wants is what the lab's server really answers."""
    s = run(lab, ["EHLO x", "MAIL FROM:<alice@local.test>", "RCPT TO:<carol@elsewhere.example>",
                  "RSET", "AUTH PLAIN " + ALICE, "MAIL FROM:<alice@local.test>",
                  "RCPT TO:<carol@elsewhere.example>"])
    replies = [r for v, _, r in exchanges(s.transcript) if v == "RCPT"]
    assert [r[:3] for r in replies] == ["550", "250"]


def test_cram_md5_by_hand(lab: Lab) -> None:
    s = lab.smtp()
    s.send("EHLO x")
    challenge = base64.b64decode(s.send("AUTH CRAM-MD5").reply[4:])
    fb = check("esmtp-cram-md5-by-hand", s)
    assert not fb.passed and "still waiting (334)" in texts(fb)
    digest = hmac.new(b"hunter2", challenge, hashlib.md5).hexdigest()
    s.send(base64.b64encode(b"bob " + digest.encode()).decode())
    assert check("esmtp-cram-md5-by-hand", s).passed


def test_cram_md5_wrong_digest_or_old_challenge(lab: Lab) -> None:
    s = lab.smtp()
    s.send("EHLO x")
    challenge = base64.b64decode(s.send("AUTH CRAM-MD5").reply[4:])
    digest = hmac.new(b"hunter2", challenge + b"x", hashlib.md5).hexdigest()
    s.send(base64.b64encode(b"bob " + digest.encode()).decode())
    fb = check("esmtp-cram-md5-by-hand", s)
    assert not fb.passed and "digest does not match" in texts(fb)
    assert "no AUTH CRAM-MD5 yet" in texts(check("esmtp-cram-md5-by-hand",
                                                 run(lab, ["EHLO x"])))


def test_tls_auth_only(strict: Lab) -> None:
    s = run(strict, ["EHLO x"])
    assert "AUTH" not in s.transcript[-1].text and "STARTTLS" in s.transcript[-1].text
    assert s.send("AUTH PLAIN " + ALICE).reply.startswith("538")
    s.send("STARTTLS")
    assert "AUTH PLAIN LOGIN CRAM-MD5" in s.send("EHLO x").steps[-1].text


def test_tls_auth_only_refuses_a_tcp_lab() -> None:
    class Fake:
        memory = None

    with pytest.raises(ValueError, match="in-memory"):
        tls_auth_only(Fake())


def test_starttls_before_auth(strict: Lab) -> None:
    good = run(strict, ["EHLO x", "STARTTLS", "EHLO x", "AUTH PLAIN " + ALICE])
    assert check("esmtp-starttls-before-auth", good).passed


@pytest.mark.parametrize(("lines", "finding"), [
    (["EHLO x"], "TLS never started"),
    (["EHLO x", "AUTH PLAIN " + ALICE, "STARTTLS", "EHLO x", "AUTH PLAIN " + ALICE],
     "crossed the network in the clear"),
    (["EHLO x", "STARTTLS", "AUTH PLAIN " + ALICE], "no EHLO after the handshake"),
    (["EHLO x", "STARTTLS", "EHLO x"], "no successful AUTH after TLS yet"),
])
def test_starttls_before_auth_wrong(strict: Lab, lines: list[str], finding: str) -> None:
    fb = check("esmtp-starttls-before-auth", run(strict, lines))
    assert not fb.passed and finding in texts(fb)


def test_hints_escalate(lab: Lab) -> None:
    s = run(lab, ["EHLO x"])
    expected = exercises()["esmtp-auth-plain-by-hand"].hints
    got = [check("esmtp-auth-plain-by-hand", s).hint for _ in range(len(expected) + 1)]
    assert got == [*expected, expected[-1]]


def test_real_tls_lab_with_own_users() -> None:
    """What the lesson's optional cell does: a real server, STARTTLS verified against the lab's
    own certificate, and a user given to start() replacing the demo account of that name."""
    lab = start(tcp=True, users={"alice": "secret"})
    try:
        s = lab.smtp()
        s.send("EHLO x")
        assert s.send("STARTTLS").reply.startswith("220")
        assert s.client.channel.sock.version().startswith("TLS")  # type: ignore[union-attr]
        s.send("EHLO x")
        assert s.send("AUTH PLAIN " + ALICE).reply.startswith("235")
        s.send("QUIT")
    finally:
        lab.stop()
