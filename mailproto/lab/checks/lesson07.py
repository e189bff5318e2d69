"""Lesson 7, security: open relays, user enumeration, spoofing, SMTP smuggling (RFC 5321 §7).

Two exercises are predictions about a fixed scenario (:func:`relay_quiz`, :func:`enumeration_quiz`):
the scenario runs on a fresh in-memory server, so the replies a student sees are real, and the
check compares the prediction with what that server really answered.  The other two read what
the student did: a session and the lab it talked to (the mailbox shows what was stored).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from html import escape
from typing import Any

from ...transcript import CLIENT, Transcript
from ..exercises import Finding, exchanges, exercise, transcript_of

# -- the scenarios ----------------------------------------------------------------------------
#: RCPT TO addresses given by a session that has NOT logged in (the server's domain: local.test).
RELAY_RCPTS = {
    "A": "bob@local.test",
    "B": "boss@bank.example",
    "C": "Alice@LOCAL.TEST",
    "D": "bob@local.test.evil.example",
    "E": "postmaster@local.test",
    "F": "bob%bank.example@local.test",
}

#: (letter, protocol, server settings, the lines typed; the reply to the last one is shown).
#: bob exists, ghost does not.
_ENUMERATION = (
    ("A", "SMTP", "default", ("VRFY bob",)),
    ("B", "SMTP", "default", ("EXPN staff",)),
    ("C", "SMTP", "enable_vrfy=True", ("VRFY bob",)),
    ("D", "SMTP", "enable_vrfy=True", ("VRFY ghost",)),
    ("E", "SMTP", "default", ("MAIL FROM:<harvester@example.com>", "RCPT TO:<ghost@local.test>")),
    ("F", "POP3", "default", ("USER ghost",)),
    ("G", "POP3", "default", ("USER ghost", "PASS guess")),
    ("H", "POP3", "default", ("USER bob", "PASS guess")),
)
#: Which of them a harvester learns something from: the reply differs for a user that exists.
_REVEALS = frozenset("CDE")


@dataclass(frozen=True)
class Quiz:
    """Rows of (letter, what was typed, the server's real reply), shown as a small table."""

    title: str
    rows: tuple[tuple[str, str, str], ...]
    header: tuple[str, str, str] = ("", "typed", "reply")

    def __repr__(self) -> str:
        width = max(len(typed) for _, typed, _ in self.rows)
        lines = [self.title]
        lines += [f"  {letter}  {typed.ljust(width)}  {reply}".rstrip()
                  for letter, typed, reply in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cells = "".join(
            f'<tr><td style="text-align:left;font-weight:bold">{escape(letter)}</td>'
            f'<td style="text-align:left;font-family:monospace;color:#0072B2">{escape(typed)}</td>'
            f'<td style="text-align:left;font-family:monospace">{escape(reply)}</td></tr>'
            for letter, typed, reply in self.rows)
        head = "".join(f'<th style="text-align:left">{escape(h)}</th>' for h in self.header)
        return (f'<div style="font-family:sans-serif"><b>{escape(self.title)}</b>'
                f"<table><tr>{head}</tr>{cells}</table></div>")


def _start(**options: Any) -> Any:
    from ..session import start

    return start(demo=True, **options)


@functools.cache
def _relay_replies() -> dict[str, str]:
    """What our server really answers to each RCPT of :data:`RELAY_RCPTS` (not logged in)."""
    lab = _start()
    try:
        smtp = lab.smtp()
        smtp.send("EHLO quiz.example")
        smtp.send("MAIL FROM:<someone@example.com>")
        return {k: smtp.send(f"RCPT TO:<{v}>").reply for k, v in RELAY_RCPTS.items()}
    finally:
        lab.stop()


def relay_quiz() -> Quiz:
    """The RCPT lines of the open-relay exercise (without the replies: predict them)."""
    return Quiz("An SMTP session that has NOT logged in sends MAIL FROM:<someone@example.com>, "
                "then:", tuple((k, f"RCPT TO:<{v}>", "?") for k, v in RELAY_RCPTS.items()))


@functools.cache
def _enumeration_replies() -> tuple[tuple[str, str, str], ...]:
    rows = []
    for letter, protocol, settings, lines in _ENUMERATION:
        lab = _start(enable_vrfy=settings != "default")
        try:
            session = lab.smtp() if protocol == "SMTP" else lab.pop3()
            if protocol == "SMTP":
                session.send("EHLO harvester.example")
            for line in lines:
                reply = session.send(line).reply
            where = f"{protocol}" + ("" if settings == "default" else f", {settings}")
            rows.append((letter, f"[{where}] " + " / ".join(lines), reply))
        finally:
            lab.stop()
    return tuple(rows)


def enumeration_quiz() -> Quiz:
    """Real replies from our server (bob exists, ghost does not), for the enumeration exercise."""
    return Quiz("Real replies of our server (bob exists, ghost does not):",
                _enumeration_replies())


# -- helpers ----------------------------------------------------------------------------------
def _letters(answer: Any, known: dict[str, Any] | frozenset[str]) -> tuple[set[str], list[str]]:
    """The letters a student handed in (a set, list or string such as "A, C"); and junk."""
    if isinstance(answer, str):
        items = [x for x in re.split(r"[\s,;]+", answer) if x]
    else:
        try:
            items = [str(x) for x in answer]
        except TypeError:
            items = [str(answer)]
    chosen = {x.strip().upper() for x in items if x.strip()}
    unknown = sorted(x for x in chosen if x not in known)
    return chosen - set(unknown), unknown


def _session_and_lab(answer: Any) -> tuple[Transcript, Any]:
    """``(session, lab)`` in either order, or only a session (then the lab is None)."""
    from ..session import Lab

    parts = list(answer) if isinstance(answer, (tuple, list)) else [answer]
    labs = [p for p in parts if isinstance(p, Lab)]
    others = [p for p in parts if not isinstance(p, Lab)]
    if not others:
        raise TypeError("hand in your SMTP session and your lab: check(..., (smtp, lab))")
    return transcript_of(others[0]), (labs[0] if labs else None)


@dataclass
class _Transaction:
    """One mail transaction as the session went: envelope, the message lines, the end reply."""

    sender: str
    sender_reply: str
    rcpts: list[tuple[str, str]]
    lines: list[bytes]
    end_reply: str
    authenticated: bool


def _transactions(t: Transcript) -> list[_Transaction]:
    """Every DATA that was ended (the dot), with its envelope; oldest first."""
    runs: list[list[bytes]] = []
    current: list[bytes] = []
    for step in t:
        if step.direction == CLIENT and step.kind == "data":
            if "size" in step.parsed:
                if step.raw.count(b"\n") > 1:  # the whole message in one step (send_data)
                    body = step.raw[: -3]
                    current = [line + b"\n" for line in body.split(b"\n")[:-1]]
                runs.append(current)
                current = []
            else:
                current.append(step.raw)
    out: list[_Transaction] = []
    sender, sender_reply, rcpts, authed, ended = "", "", [], False, 0
    for verb, arg, reply in exchanges(t):
        if verb == "AUTH-RESPONSE" or verb == "AUTH":
            authed = authed or reply.startswith("235")
        elif verb in ("EHLO", "HELO", "RSET"):
            sender, sender_reply, rcpts = "", "", []
        elif verb == "MAIL":
            sender, sender_reply, rcpts = _path(arg), reply, []
        elif verb == "RCPT":
            rcpts.append((_path(arg), reply))
        elif verb == "." and ended < len(runs):
            out.append(_Transaction(sender, sender_reply, rcpts, runs[ended], reply, authed))
            ended += 1
            sender, sender_reply, rcpts = "", "", []
    return out


def _path(arg: str) -> str:
    m = re.search(r"<([^>]*)>", arg)
    return m.group(1) if m else arg.partition(":")[2].strip()


def _stored(lab: Any, rcpts: list[tuple[str, str]], reply: str) -> list[bytes]:
    """The messages the lab stored for this transaction's accepted local recipients."""
    m = re.search(r"queued as (\S+)", reply)
    if lab is None or m is None:
        return []
    found = []
    for address, rcpt_reply in rcpts:
        if not rcpt_reply.startswith("250"):
            continue
        user = address.partition("@")[0].lower()
        try:
            box = lab.mailbox(user)
        except OSError:
            continue
        found += [msg for msg in box if re.search(rb"\bid " + re.escape(m.group(1).encode())
                                                   + rb"\b", msg)]
    return found


def _text(line: bytes) -> bytes:
    return line.rstrip(b"\n").removesuffix(b"\r")


# -- exercises --------------------------------------------------------------------------------
@exercise("security-spot-open-relay",
          "Predict which RCPTs our server refuses to a session that has not logged in",
          hints=["Look at the domain after the last @. Our server is responsible for one domain, "
                 "local.test; it relays elsewhere only for a session that has logged in.",
                 "Domain names are not case-sensitive (RFC 5321 §2.4), and a longer name that "
                 "merely starts with local.test is a different domain.",
                 "Every mail domain must accept mail for postmaster (RFC 5321 §4.5.1). The old "
                 "relay trick user%other@host is only a local part here: is there such a user?"])
def spot_open_relay(answer: Any) -> list[Finding]:
    chosen, unknown = _letters(answer, RELAY_RCPTS)
    real = _relay_replies()
    relay = {k for k, r in real.items() if " 5.7.1 " in r}
    unknown_user = {k for k, r in real.items() if " 5.1.1 " in r}
    accepted = {k for k, r in real.items() if r.startswith("250")}
    if not chosen and not unknown:
        return [Finding(False, "no prediction yet: put the letters of the RCPTs you think are "
                        "refused in the set, e.g. {\"A\"}")]
    findings = []
    if unknown:
        findings.append(Finding(False, f"{', '.join(unknown)}: not one of the RCPTs "
                                f"({', '.join(RELAY_RCPTS)})"))
    missed_relay = len(relay - chosen)
    findings.append(Finding(
        not missed_relay,
        "you found every RCPT refused as relaying (550 5.7.1: another domain, and nobody "
        "logged in)" if not missed_relay else
        f"{missed_relay} RCPT(s) refused as relaying (550 5.7.1) are missing from your set",
        "RFC 5321 §3.6, §7.9"))
    missed_user = len(unknown_user - chosen)
    findings.append(Finding(
        not missed_user,
        "you found the RCPT refused because no such mailbox exists here (550 5.1.1)"
        if not missed_user else
        f"{missed_user} RCPT(s) refused with 550 5.1.1 (no such mailbox) are missing",
        "RFC 5321 §3.6.2, §4.2.2"))
    wrong = len(chosen & accepted)
    findings.append(Finding(
        not wrong,
        "none of your picks is accepted: mail for the server's own domain is delivery, not "
        "relaying" if not wrong else
        f"{wrong} of your picks is accepted (250): the server delivers mail for its own "
        "domain, whatever the case of the letters",
        "RFC 5321 §2.4, §4.5.1"))
    return findings


@exercise("security-enumeration",
          "Which replies tell a harvester whether a user exists?",
          hints=["A reply gives a user away only if it would be different for a user that does "
                 "not exist. Compare the rows in pairs.",
                 "252 means 'cannot verify, but I will try to deliver': the same for everybody "
                 "(RFC 5321 §3.5.3). POP3's USER says +OK whatever the name.",
                 "VRFY is not the only command that looks a name up: what does RCPT TO answer "
                 "for a name that does not exist?"])
def enumeration(answer: Any) -> list[Finding]:
    letters = frozenset(r[0] for r in _ENUMERATION)
    chosen, unknown = _letters(answer, letters)
    if not chosen and not unknown:
        return [Finding(False, "no answer yet: put the letters of the replies that give a user "
                        "away in the set, e.g. {\"A\"}")]
    findings = []
    if unknown:
        findings.append(Finding(False, f"{', '.join(unknown)}: not one of the rows "
                                f"({', '.join(sorted(letters))})"))
    missed = len(_REVEALS - chosen)
    findings.append(Finding(
        not missed,
        "you found every reply that differs between a user who exists and one who does not"
        if not missed else
        f"{missed} reply(ies) that give a user away are missing from your set",
        "RFC 5321 §7.3"))
    wrong = len(chosen - _REVEALS - set(unknown))
    findings.append(Finding(
        not wrong,
        "none of your picks is a reply that every name gets" if not wrong else
        f"{wrong} of your picks say(s) exactly the same for a name that does not exist: "
        "they reveal nothing",
        "RFC 5321 §3.5.3; RFC 3206 §5"))
    return findings


#: Whom the student pretends to be in the spoofing exercise (the lesson shows the principal).
SPOOF_AS = "helpdesk@local.test"


@exercise("security-spoof-from",
          f"Send bob a message that looks as if it came from {SPOOF_AS}, without logging in",
          hints=["Nobody checks MAIL FROM here: the envelope sender is whatever you type.",
                 "The From: line is part of the message text you type after DATA's 354, "
                 "before the empty line.",
                 "Hand in both: check('security-spoof-from', (smtp, lab)); the lab shows what "
                 "bob's mailbox received."])
def spoof_from(answer: Any) -> list[Finding]:
    t, lab = _session_and_lab(answer)
    spoofed = [x for x in _transactions(t) if x.sender.lower() == SPOOF_AS] \
        or _transactions(t)[-1:]
    if not spoofed:
        return [Finding(False, "no message was sent in this session yet: MAIL FROM, RCPT TO, "
                        "DATA, the text, then a line with a single dot", "RFC 5321 §3.3")]
    x = spoofed[-1]
    header = b"".join(x.lines).split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    from_lines = [line for line in header.splitlines() if line.lower().startswith(b"from:")]
    to_bob = any(a.lower().partition("@")[0] == "bob" and r.startswith("250")
                 for a, r in x.rcpts)
    stored = _stored(lab, x.rcpts, x.end_reply)
    return [
        Finding(x.sender.lower() == SPOOF_AS and x.sender_reply.startswith("250"),
                f"the envelope sender MAIL FROM:<{SPOOF_AS}> was accepted"
                if x.sender.lower() == SPOOF_AS else
                f"the envelope sender (MAIL FROM) is not {SPOOF_AS}", "RFC 5321 §7.1"),
        Finding(not x.authenticated, "you did not log in: nobody checked who you are"
                if not x.authenticated else "this session logged in (AUTH): the exercise is to "
                "show what a stranger can do without it", "RFC 5321 §7.1"),
        Finding(any(SPOOF_AS.encode() in line.lower() for line in from_lines),
                f"the message's From: header names {SPOOF_AS}" if from_lines else
                "the message has no From: header line before the empty line",
                "RFC 5322 §3.6.2"),
        Finding(to_bob and x.end_reply.startswith("250"),
                "bob was an accepted recipient and the message was accepted (250)",
                "RFC 5321 §4.1.1.4"),
        Finding(bool(stored) and any(f"return-path: <{SPOOF_AS}>".encode() in m.lower()
                                     for m in stored),
                f"bob's mailbox holds it, with Return-Path: <{SPOOF_AS}>" if lab else
                "hand in your lab too, to look in bob's mailbox: check(..., (smtp, lab))",
                "RFC 5321 §4.4"),
    ]


@exercise("security-smuggling",
          "Put \\n.\\n inside a message and show that the server does not end the message there",
          hints=["Send the message text with send(b\"...\") after DATA's 354: bytes, so that you "
                 "choose every line ending yourself.",
                 "Somewhere in the text put a bare LF, a dot, and a bare LF: b\"\\n.\\n\", then "
                 "more text, and end with the real ending: a line with a single dot after CRLF.",
                 "Hand in both the session and the lab: check('security-smuggling', (smtp, lab)); "
                 "the check looks in the recipient's mailbox."])
def smuggling(answer: Any) -> list[Finding]:
    t, lab = _session_and_lab(answer)
    found = None
    for x in reversed(_transactions(t)):
        for i, line in enumerate(x.lines):
            before = x.lines[i - 1] if i else b"\r\n"
            if _text(line) == b"." and (not before.endswith(b"\r\n") or not
                                        line.endswith(b"\r\n")):
                found = (x, i)
                break
        if found:
            break
    if found is None:
        last = _transactions(t)[-1:]
        return [Finding(False, "no fake end yet: the message text has no line with a single "
                        "'.' next to a bare LF (such as \\n.\\n)" if last else
                        "no message was ended in this session yet", "RFC 5321 §4.1.1.4")]
    x, i = found
    after = [_text(line) for line in x.lines[i + 1:] if _text(line).strip()]
    before_text = [_text(line) for line in x.lines[:i] if _text(line).strip()]
    stored = _stored(lab, x.rcpts, x.end_reply)
    whole = bool(stored) and all(
        any(s.lstrip(b".") in m for m in stored) for s in (before_text[-1:] + after[:1]))
    findings = [
        Finding(True, "your message has a fake end: a line with a single '.' next to a bare LF",
                "RFC 5321 §2.3.8"),
        Finding(bool(after), "more text followed the fake end, before the real <CRLF>.<CRLF>"
                if after else "nothing but empty lines followed the fake end: type a line "
                "after it (say, a command an attacker would smuggle)", "RFC 5321 §4.1.1.4"),
        Finding(x.end_reply.startswith("250"),
                "the server answered once, with 250, at the real end: one DATA, one message"
                if x.end_reply.startswith("250") else
                f"the end of the message got {x.end_reply!r}, not 250", "RFC 5321 §4.1.1.4"),
    ]
    if lab is None:
        findings.append(Finding(False, "hand in your lab too, to look in the mailbox: "
                                "check('security-smuggling', (smtp, lab))"))
    else:
        findings.append(Finding(
            whole, "the recipient's mailbox holds ONE message with the text from both sides "
            "of the fake end: it was not split" if whole else
            "no stored message holds the text from both sides of the fake end",
            "RFC 5321 §4.1.1.4"))
    return findings
