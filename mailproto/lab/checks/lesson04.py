"""Lesson 4, passwords on the wire: APOP digests by hand, and a dictionary attack on a captured
one (RFC 1939 §7, RFC 2195, RFC 4616).

Helpers for the notebook: :data:`WORDLIST` (20 of the most common passwords) and two captured
logins, :func:`captured_apop` and :func:`captured_cram`, recorded from the in-memory server (the
same bytes on every run), whose passwords are in that list.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

from ...auth import apop_digest
from ...demo import DEMO_PASSWORD, DEMO_USER, LAB_USERS, RFC1939_STAMP
from ...net.memory import SEED_TIME, FixedClock, MemoryLab
from ...transcript import Transcript
from ..exercises import Finding, exchanges, exercise, transcript_of

#: Twenty of the most common passwords, as found in every leaked-password list.
WORDLIST = ("123456", "password", "123456789", "qwerty", "abc123", "111111", "iloveyou",
            "letmein", "monkey", "dragon", "sunshine", "princess", "football", "baseball",
            "welcome", "shadow", "master", "superman", "trustno1", "hello123")

#: The accounts of the captured logins.  Their passwords are the exercise's answer (for
#: ``carol``) and the notebook's worked example (for ``dave``): both are in :data:`WORDLIST`.
_CAPTURED = {"carol": WORDLIST[9], "dave": WORDLIST[8]}

#: apop-digest: the greeting's timestamp and the secret the student digests.
TASK_STAMP = "<4711.1139205000@mail.musemail.com>"
TASK_SECRET = "bob-secret"

_KNOWN_SECRETS = {DEMO_USER: DEMO_PASSWORD, **dict(LAB_USERS)}
_HEX = re.compile(r"[0-9a-fA-F]{32}")
_STAMP = re.compile(r"<[^<>]*>")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


@functools.cache
def _capture(user: str, mechanism: str) -> Transcript:
    # Another server, a day after the seed's session: its own host name and timestamps.
    clock = FixedClock(SEED_TIME + 86400 + (3600 if user == "dave" else 0))
    with MemoryLab({user: _CAPTURED[user]}, hostname="pop.example.net", clock=clock) as lab:
        client = lab.pop3_client()
        if mechanism == "APOP":
            client.apop(user, _CAPTURED[user])
        else:
            client.auth(mechanism, user, _CAPTURED[user])
        client.quit()
        return client.transcript


def captured_apop() -> Transcript:
    """What a sniffer recorded when carol logged in with APOP: greeting, APOP line, +OK, QUIT."""
    return _capture("carol", "APOP")


def captured_cram() -> Transcript:
    """What a sniffer recorded when dave logged in with AUTH CRAM-MD5."""
    return _capture("dave", "CRAM-MD5")


def _greeting_stamp(transcript: Transcript) -> str | None:
    """The APOP timestamp of the session's greeting (RFC 1939 §7), if any."""
    for step in transcript:
        if step.kind == "greeting":
            found = _STAMP.findall(step.text)
            return found[-1] if found else None
    return None


def _digest_mistake(digest: str, stamp: str, secret: str) -> str | None:
    """Name the usual mistake that gives ``digest`` instead of MD5(stamp + secret), if any."""
    digest = digest.lower()
    mistakes = {
        _md5(secret + stamp): "that is MD5(secret + timestamp): the timestamp comes first, "
                              "then the secret",
        _md5(stamp.strip("<>") + secret): "the angle brackets < > are part of the timestamp: "
                                          "digest them too",
        _md5(stamp + " " + secret): "no space between the timestamp and the secret: they are "
                                    "simply joined",
        _md5(secret): "that is MD5 of the secret alone: without the timestamp, every login "
                      "would send the same digest, and a sniffer could replay it",
        _md5(stamp): "that is MD5 of the timestamp alone: the secret must go in too",
        apop_digest(RFC1939_STAMP, "tanstaaf"): "that is the RFC's own example: use this "
                                                "timestamp and this secret",
    }
    return mistakes.get(digest)


# -- apop-by-hand ------------------------------------------------------------------------------
@exercise("apop-by-hand", "Log in with APOP, with a digest you computed",
          hints=["The timestamp is the <...> at the end of this session's greeting: "
                 "me.client.timestamp.",
                 "hashlib.md5((timestamp + secret).encode()).hexdigest() gives 32 hex digits.",
                 "The command is: APOP, the user name, a space, the digest.",
                 "Digest this session's timestamp (each session has its own) with alice's "
                 "secret, alice-secret, and send APOP alice <digest>."])
def apop_by_hand(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    ex = exchanges(t)
    apops = [(arg, reply) for verb, arg, reply in ex if verb == "APOP"]
    if not apops:
        return [Finding(False, "no APOP command in this session yet", "RFC 1939 §7")]
    findings = []
    good = [(arg, reply) for arg, reply in apops if reply.startswith("+OK")]
    if good:
        findings.append(Finding(True, "the server accepted your digest (+OK): MD5 over its "
                                "own timestamp and the secret matched", "RFC 1939 §7"))
    else:
        arg, reply = apops[-1]
        words = arg.split()
        stamp = _greeting_stamp(t)
        if len(words) != 2:
            text = "APOP takes two arguments: the user name and the digest"
        elif not _HEX.fullmatch(words[1]):
            text = (f"the digest must be 32 hexadecimal digits; '{words[1][:40]}' is not "
                    "(use .hexdigest())")
        elif "IN-USE" in reply:
            text = "the digest was right, but another session holds this maildrop: QUIT it"
        else:
            secret = _KNOWN_SECRETS.get(words[0])
            mistake = _digest_mistake(words[1], stamp, secret) if stamp and secret else None
            text = ("the server refused the digest (-ERR): "
                    + (mistake or "digest this session's timestamp, then the user's secret"))
        findings.append(Finding(False, text, "RFC 1939 §7"))
    plain = [verb for verb, arg, _ in ex if verb == "PASS"
             or (verb == "AUTH" and arg.split()[:1] and arg.split()[0].upper() in
                 ("PLAIN", "LOGIN"))]
    findings.append(Finding(not plain, "the password itself never crossed the wire" if not plain
                            else f"this session also sent a password in clear ({plain[0]}): "
                            "APOP is there to avoid exactly that", "RFC 1939 §7"))
    return findings


# -- apop-digest -------------------------------------------------------------------------------
@exercise("apop-digest", "Compute an APOP digest for a given timestamp and secret",
          hints=["APOP's digest is MD5 of the timestamp followed by the secret, written as 32 "
                 "lower-case hex digits.",
                 "Take the timestamp exactly as in the greeting, angle brackets included.",
                 "hashlib.md5((TIMESTAMP + SECRET).encode()).hexdigest()",
                 "Check your code first on the RFC's example: '<1896.697170952@dbc.mtview.ca."
                 "us>' and 'tanstaaf' give c4c9334bac560ecc979e58001b3e22fb."])
def apop_digest_task(answer: Any) -> list[Finding]:
    if isinstance(answer, bytes) and len(answer) == 16:
        return [Finding(False, "that is the raw 16-octet digest (.digest()); APOP sends it as "
                        "32 hex digits (.hexdigest())", "RFC 1939 §7")]
    if not isinstance(answer, str):
        return [Finding(False, "hand in the digest as a string of 32 hex digits")]
    digest = answer.strip()
    if not _HEX.fullmatch(digest):
        return [Finding(False, f"a digest is 32 hexadecimal digits (MD5 is 128 bits); you "
                        f"handed in {len(digest)} characters", "RFC 1939 §7, RFC 1321")]
    if digest.lower() == apop_digest(TASK_STAMP, TASK_SECRET):
        return [Finding(True, "right: MD5(timestamp + secret), in hex, as the client sends "
                        "it", "RFC 1939 §7")]
    mistake = _digest_mistake(digest, TASK_STAMP, TASK_SECRET)
    return [Finding(False, mistake or "not the digest of this timestamp followed by this "
                    "secret", "RFC 1939 §7")]


# -- crack-the-digest --------------------------------------------------------------------------
@exercise("crack-the-digest", "Find carol's password from a captured APOP login and a wordlist",
          hints=["From the capture you need two things: the timestamp (in the greeting) and the "
                 "digest (in the APOP line).",
                 "For each word of WORDLIST, compute MD5(timestamp + word) and compare it with "
                 "the captured digest.",
                 "for word in WORDLIST: if hashlib.md5((stamp + word).encode()).hexdigest() "
                 "== digest: print(word)",
                 "Hand in the word (a string), not the digest."])
def crack(answer: Any) -> list[Finding]:
    t = captured_apop()
    stamp = _greeting_stamp(t)
    digest = next(arg.split()[1] for verb, arg, _ in exchanges(t) if verb == "APOP")
    assert stamp is not None
    if not isinstance(answer, str):
        return [Finding(False, "hand in the password you found, as a string")]
    word = answer.strip()
    if word.lower() == digest:
        return [Finding(False, "that is the captured digest; hand in the password that "
                        "produces it")]
    if word not in WORDLIST:
        return [Finding(False, f"'{word[:40]}' is not in the wordlist: the attack only tries "
                        "the list's words")]
    tried = apop_digest(stamp, word)
    if tried != digest:
        return [Finding(False, f"MD5(timestamp + '{word}') is {tried[:8]}…, but the captured "
                        f"digest is {digest[:8]}…: not this word", "RFC 1939 §7")]
    return [Finding(True, "right: MD5(timestamp + word) equals the captured digest. The server "
                    "never saw a single wrong guess: the attack ran offline", "RFC 1939 §13")]
