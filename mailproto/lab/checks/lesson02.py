"""Lesson 2, ESMTP: extensions, AUTH and STARTTLS (RFC 5321, RFC 4954, RFC 4616, RFC 2195,
RFC 3207).

Besides the checks, two small helpers the lesson uses:

- :func:`tls_auth_only` gives a lab's in-memory server the policy of a server on the Internet
  (Postfix's ``smtpd_tls_auth_only = yes``): no AUTH before STARTTLS.  The lab's default,
  like a server on 127.0.0.1, offers AUTH in the clear too.
- :func:`overheard` records a real session (ours: client and server in memory) in which
  another user logs in with AUTH PLAIN: what an eavesdropper on the network would capture.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ...transcript import Transcript
from ..exercises import Finding, exchanges, exercise, transcript_of


# -- helpers for the notebook ---------------------------------------------------------------------
def tls_auth_only(lab: Any) -> Any:
    """Make ``lab`` (an in-memory :class:`~mailproto.lab.session.Lab`) refuse AUTH before
    STARTTLS, as a server reached over the Internet does (RFC 4954 §4: 538); sessions opened
    from now on follow it.  Returns the lab."""
    memory = getattr(lab, "memory", None)
    if memory is None:
        raise ValueError("tls_auth_only works on an in-memory lab (start() without tcp=True); "
                         "for a real server use `mailproto serve --require-tls-for-auth`")
    memory.smtp_config = dataclasses.replace(memory.smtp_config, require_tls_for_auth=True)
    return lab


#: The account whose login :func:`overheard` records (the decoding exercise's answer).
_OVERHEARD_USER = ("carol", "Tr0ub4dor&3")


def overheard() -> Transcript:
    """A session recorded on the wire: carol logs in with AUTH PLAIN and sends a message.

    It is a real exchange between our client and our server (in memory, deterministic); show it
    with ``TranscriptView(overheard(), annotate=False)`` so the notes do not decode it for you.
    """
    from ...net.memory import MemoryLab

    user, password = _OVERHEARD_USER
    with MemoryLab({user: password, "bob": "hunter2"}) as lab:
        client = lab.smtp_client("carol-pc.example")
        client.ehlo("carol-pc.example")
        client.login(user, password, mechanism="PLAIN")
        client.sendmail("carol@local.test", ["bob@local.test"],
                        b"From: carol@local.test\r\nTo: bob@local.test\r\nSubject: hi\r\n\r\n"
                        b"See you at 5.\r\n")
        client.quit()
        return client.transcript


def auth_attempts(transcript: Transcript) -> list[tuple[str, bool, str]]:
    """Each AUTH exchange: (mechanism, sent an initial response, final reply's first line).

    The replies to the SASL lines that follow a 334 belong to the AUTH that started them."""
    out: list[tuple[str, bool, str]] = []
    for verb, arg, reply in exchanges(transcript):
        if verb == "AUTH":
            mech, _, initial = arg.strip().partition(" ")
            out.append((mech.upper(), bool(initial.strip()), reply))
        elif verb == "AUTH-RESPONSE" and out:
            mech, initial, _ = out[-1]
            out[-1] = (mech, initial, reply)
    return out


def _tls_index(transcript: Transcript) -> int | None:
    for i, step in enumerate(transcript):
        if step.direction == "*" and step.parsed.get("event") == "tls":
            return i
    return None


def _auth_failure(mech: str, reply: str) -> Finding:
    code = reply[:3]
    if code == "535":
        text = (f"AUTH {mech} got 535: the server decoded your response, but the user name or "
                "password in it is wrong; decode what you sent and look at each field")
        return Finding(False, text, "RFC 4954 §6")
    if code == "501":
        return Finding(False, f"AUTH {mech} got 501: the server could not read your response "
                              "(not base64, or not the fields the mechanism needs)",
                       "RFC 4954 §4")
    if code == "503":
        return Finding(False, f"AUTH {mech} got 503: AUTH comes after EHLO, and only once per "
                              "session", "RFC 4954 §4")
    if code == "538":
        return Finding(False, f"AUTH {mech} got 538: this server wants TLS first (STARTTLS)",
                       "RFC 4954 §6")
    if code == "334":
        return Finding(False, f"AUTH {mech} is still waiting (334): send your response line",
                       "RFC 4954 §4")
    return Finding(False, f"AUTH {mech} got {reply or 'no reply'}", "RFC 4954 §4")


def _ehlo_first(transcript: Transcript) -> Finding:
    ok = any(v == "EHLO" and r.startswith("250") for v, _, r in exchanges(transcript))
    return Finding(ok, "EHLO was accepted: AUTH is an extension, offered in EHLO's reply"
                   if ok else "no EHLO accepted yet: AUTH exists only in an EHLO session "
                   "(after HELO the server answers 503)", "RFC 4954 §3")


# -- exercises -----------------------------------------------------------------------------------
@exercise("esmtp-auth-plain-by-hand", "Log in with AUTH PLAIN, typed by hand",
          hints=["First EHLO; then AUTH PLAIN followed by one base64 string.",
                 "The string is base64 of three fields joined by NUL bytes: authorization id "
                 "(empty), user, password.",
                 "Build it as in the lesson, with this user's name and password (for bob: NUL, "
                 "bob, NUL, hunter2), then send 'AUTH PLAIN ' followed by it."])
def auth_plain_by_hand(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    attempts = auth_attempts(t)
    findings = [_ehlo_first(t)]
    plain = [a for a in attempts if a[0] == "PLAIN"]
    if not plain:
        others = sorted({a[0] for a in attempts})
        findings.append(Finding(False, "no AUTH PLAIN yet" + (
            f" (you used {', '.join(others)}: this exercise is about PLAIN)" if others else ""),
            "RFC 4616 §2"))
        return findings
    good = [a for a in plain if a[2].startswith("235")]
    if good:
        findings.append(Finding(True, "AUTH PLAIN got 235: you are logged in, and the line you "
                                      "sent carries the password for anyone to decode",
                                "RFC 4954 §6, RFC 4616 §6"))
    else:
        findings.append(_auth_failure("PLAIN", plain[-1][2]))
    return findings


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


@exercise("esmtp-decode-plain", "Decode the password from an overheard AUTH PLAIN line",
          hints=["Copy the base64 string after 'AUTH PLAIN' and decode it with "
                 "base64.b64decode(...).",
                 "The result is bytes: three fields separated by b'\\0' (NUL).",
                 "Split at b'\\0': the fields are authorization id, user, password; hand in "
                 "the last one as a str (.decode())."])
def decode_plain(answer: Any) -> list[Finding]:
    user, password = _OVERHEARD_USER
    given = _text(answer)
    if given is None:
        return [Finding(False, "hand in the password as a str (bytes: use .decode())")]
    given = given.strip()
    wire = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    if given == password:
        return [Finding(True, "that is carol's password: base64 is an encoding anyone can undo, "
                              "not encryption; only TLS around the session hides it",
                        "RFC 4616 §6, RFC 4954 §4")]
    if given.rstrip("=") and wire.startswith(given.rstrip("=")):
        text = "that is still the base64 text: decode it first (base64.b64decode)"
    elif "\0" in given or (user in given and password in given):
        text = ("that is the whole decoded response: it holds three fields separated by NUL "
                "bytes; hand in only the password")
    elif given == user:
        text = "that is the user name (the second field); the password is the third"
    elif not given or given == "...":
        text = "not decoded yet"
    else:
        text = "that is not the password in that line: decode the base64 and split at NUL bytes"
    return [Finding(False, text, "RFC 4616 §2")]


RELAY_CASES = {
    "before AUTH": ("RCPT TO a domain this server is not responsible for, not logged in",
                    "RFC 5321 §3.6, RFC 2505 §2"),
    "after AUTH": ("the same RCPT TO after a successful AUTH", "RFC 4954 §1, RFC 6409"),
}


def _code(value: Any) -> str | None:
    text = str(value).strip()
    return text[:3] if re.fullmatch(r"[2-5]\d\d( .*)?", text) else None


@exercise("esmtp-relay", "Predict: relaying to another domain, before and after AUTH",
          hints=["Would you want a server that forwards anyone's mail to anywhere? Spammers "
                 "would love it.",
                 "Before AUTH the server refuses for good (a 5xx); after AUTH it knows who you "
                 "are.",
                 "Refused for good is 55x; accepted is 25x."])
def relay(answer: Any) -> list[Finding]:
    if isinstance(answer, Mapping):
        given = {k: answer.get(k) for k in RELAY_CASES}
    elif isinstance(answer, Sequence) and not isinstance(answer, str | bytes) \
            and len(answer) == len(RELAY_CASES):
        given = dict(zip(RELAY_CASES, answer, strict=True))
    else:
        return [Finding(False, "hand in a dict with the keys "
                               + ", ".join(repr(k) for k in RELAY_CASES)
                               + ", each with a three-digit reply code")]
    findings = []
    for key, (_what, rule) in RELAY_CASES.items():
        code = _code(given[key])
        if code is None:
            findings.append(Finding(False, f"{key}: {given[key]!r} is not a reply code yet "
                                           "(three digits, the first from 2 to 5)", rule))
            continue
        if key == "before AUTH":
            if code in ("550", "554"):
                findings.append(Finding(True, f"{key}: refused for good ({code} 5.7.1, relay "
                                              "access denied): a server that relayed for "
                                              "anyone would be an open relay", rule))
            elif code[0] == "2":
                findings.append(Finding(False, f"{key}: {code} would make this server an open "
                                               "relay: anyone on the Internet could send spam "
                                               "through it", rule))
            elif code == "530":
                findings.append(Finding(False, f"{key}: 530 (authentication required) is what "
                                               "some submission servers say to MAIL; here MAIL "
                                               "was accepted, and the refusal comes when the "
                                               "server sees the recipient", rule))
            elif code[0] == "4":
                findings.append(Finding(False, f"{key}: {code} says 'try later', but the answer "
                                               "will not change: the refusal is permanent",
                                        rule))
            else:
                findings.append(Finding(False, f"{key}: not {code}: the command is valid and in "
                                               "order; the server refuses it by policy", rule))
        else:
            if code in ("250", "251"):
                findings.append(Finding(True, f"{key}: accepted ({code}): an authenticated user "
                                              "may send anywhere; the server queues the message "
                                              "and relays it", rule))
            else:
                findings.append(Finding(False, f"{key}: not {code}: once the server knows who "
                                               "you are, relaying is allowed", rule))
    return findings


@exercise("esmtp-cram-md5-by-hand", "Log in with AUTH CRAM-MD5, computing the digest yourself",
          hints=["After AUTH CRAM-MD5 the server sends a challenge (334 and base64); decode it.",
                 "digest = HMAC-MD5 keyed with the password, over the decoded challenge, in "
                 "lower-case hex.",
                 "Send base64 of 'alice ' + digest (user, one space, digest), for the challenge "
                 "of this same session: each AUTH CRAM-MD5 gets a new one."])
def cram_md5_by_hand(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    attempts = auth_attempts(t)
    findings = [_ehlo_first(t)]
    cram = [a for a in attempts if a[0] == "CRAM-MD5"]
    if not cram:
        findings.append(Finding(False, "no AUTH CRAM-MD5 yet", "RFC 2195 §2"))
        return findings
    if any(a[2].startswith("235") for a in cram):
        findings.append(Finding(True, "AUTH CRAM-MD5 got 235: the server computed the same "
                                      "digest from the password it stores; the password itself "
                                      "never crossed the wire", "RFC 2195 §2"))
    else:
        last = cram[-1][2]
        if last.startswith("535"):
            findings.append(Finding(False, "AUTH CRAM-MD5 got 535: the digest does not match; "
                                           "key HMAC-MD5 with the password, over the challenge "
                                           "of this session exactly as decoded", "RFC 2195 §2"))
        else:
            findings.append(_auth_failure("CRAM-MD5", last))
    return findings


@exercise("esmtp-starttls-before-auth", "STARTTLS first, then EHLO again, then AUTH",
          hints=["On this server AUTH is refused (538) until TLS is on: start with STARTTLS.",
                 "After the 220 to STARTTLS the session starts over: the server forgets your "
                 "EHLO, so greet it again.",
                 "EHLO, STARTTLS, EHLO, then AUTH PLAIN with your base64 string."])
def starttls_before_auth(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    tls_at = _tls_index(t)
    if tls_at is None:
        return [Finding(False, "TLS never started: send STARTTLS (after EHLO) and wait for 220",
                        "RFC 3207 §4")]
    before = Transcript(t.protocol, t.steps[:tls_at], t.meta)
    after = Transcript(t.protocol, t.steps[tls_at + 1:], t.meta)
    secret_in_clear = any(v in ("AUTH", "AUTH-RESPONSE") for v, _, _ in exchanges(before))
    ehlo_again = any(v == "EHLO" and r.startswith("250") for v, _, r in exchanges(after))
    logged_in = any(a[2].startswith("235") for a in auth_attempts(after))
    return [
        Finding(True, "STARTTLS got 220 and TLS started", "RFC 3207 §4"),
        Finding(not secret_in_clear, "no AUTH line was sent before TLS" if not secret_in_clear
                else "an AUTH line was sent before STARTTLS: it crossed the network in the "
                "clear, and TLS afterwards cannot take it back", "RFC 4954 §4"),
        Finding(ehlo_again, "EHLO again after the handshake: the session started over"
                if ehlo_again else "no EHLO after the handshake: the server forgot the first "
                "one and waits for a new greeting", "RFC 3207 §4.2"),
        Finding(logged_in, "AUTH succeeded (235) inside TLS" if logged_in else
                "no successful AUTH after TLS yet", "RFC 4954 §4"),
    ]

