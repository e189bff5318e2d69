"""Lesson 3, POP3 by hand: checks on the student's sessions and on the maildrop (RFC 1939).

The maildrop is the seed's demo store (:mod:`mailproto.demo`): user ``username``, seven messages.
"""

from __future__ import annotations

import functools
from typing import Any

from ...demo import demo_messages, maildir_names
from ...message import inspect_message
from ...transcript import Transcript
from ..exercises import Finding, exchanges, exercise, transcript_of

#: The verbs (and the SASL answer) whose +OK means "logged in" (RFC 1939 §7, RFC 5034 §4).
_LOGIN = ("PASS", "APOP", "AUTH", "AUTH-RESPONSE")

#: pop3-delete-for-real: the message to delete, by its Subject (its number is for the student
#: to find out, with TOP or LIST).
TARGET_SUBJECT = "Undelivered Mail Returned to Sender"

#: pop3-predict-numbers: message 5's unique id in the demo maildrop, and the story around it.
PREDICT_UIDL = maildir_names()[4]
PREDICT_DELETED = (1,)


def _ok(reply: str) -> bool:
    return reply.startswith("+OK")


def _login_index(ex: list[tuple[str, str, str]]) -> int | None:
    """Where in ``ex`` the session logged in, or None."""
    return next((i for i, (verb, _, reply) in enumerate(ex) if verb in _LOGIN and _ok(reply)),
                None)


def _login_finding(ex: list[tuple[str, str, str]]) -> Finding:
    """Did the session log in?  If not, why not (in the student's own terms)."""
    if _login_index(ex) is not None:
        return Finding(True, "you logged in: the server answered +OK and the session entered "
                       "TRANSACTION", "RFC 1939 §7")
    verbs = [verb for verb, _, _ in ex]
    if "PASS" in verbs:
        first_pass = verbs.index("PASS")
        if "USER" not in verbs[:first_pass]:
            return Finding(False, "PASS came without a USER before it: the server must know "
                           "whose password it is", "RFC 1939 §7")
        return Finding(False, "the server refused your login (-ERR to PASS): check the user "
                       "name and the password", "RFC 1939 §7")
    return Finding(False, "you have not logged in yet: a session starts in AUTHORIZATION, "
                   "where only the login commands work", "RFC 1939 §4")


# -- pop3-seed-session ------------------------------------------------------------------------
@exercise("pop3-seed-session", "Log in as the article did and ask for the maildrop's statistics",
          hints=["A POP3 session starts in AUTHORIZATION: first say who you are, then prove it.",
                 "The article's account: user name 'username', password 'password'; the "
                 "commands are USER and PASS, one line each.",
                 "After PASS has answered +OK you are in TRANSACTION: the statistics command "
                 "has four letters and no argument.",
                 "Three lines in all, in this order: USER …, PASS …, STAT."])
def seed_session(answer: Any) -> list[Finding]:
    ex = exchanges(transcript_of(answer))
    findings = [_login_finding(ex)]
    start = _login_index(ex)
    stats = [reply for verb, _, reply in ex[start + 1 if start is not None else 0:]
             if verb == "STAT"]
    early = [reply for verb, _, reply in ex[:start] if verb == "STAT"] if start is not None \
        else [reply for verb, _, reply in ex if verb == "STAT"]
    good = [r for r in stats if _ok(r) and len(r.split()) >= 3 and r.split()[1].isdigit()
            and r.split()[2].isdigit()]
    if good:
        count, size = good[0].split()[1:3]
        findings.append(Finding(True, f"STAT answered {good[0]}: {count} messages, {size} "
                                "octets as they would go over the wire", "RFC 1939 §5"))
    elif early:
        findings.append(Finding(False, "you sent STAT before logging in, and it got -ERR: STAT "
                                "is only allowed in the TRANSACTION state", "RFC 1939 §5"))
    else:
        findings.append(Finding(False, "no STAT after the login yet: it answers '+OK nn mm', "
                                "the number of messages and their size in octets",
                                "RFC 1939 §5"))
    return findings


# -- pop3-rset ---------------------------------------------------------------------------------
def _count(reply: str) -> int | None:
    """The message count in ``+OK nn mm`` (STAT) or ``+OK ... has nn messages`` (login, RSET)."""
    words = reply.replace("(", " ").split()
    if len(words) >= 3 and words[0] == "+OK" and words[1].isdigit() and words[2].isdigit():
        return int(words[1])
    for i, word in enumerate(words[:-1]):
        if word.isdigit() and words[i + 1].startswith("message"):
            return int(word)
    return None


@exercise("pop3-rset", "Mark messages deleted, look with STAT, take it back with RSET, QUIT",
          hints=["Log in first; DELE n marks message n, STAT shows the maildrop without the "
                 "marked ones.",
                 "RSET takes back every mark made in this session; STAT again shows it.",
                 "End with QUIT: it commits the marks that are left, and after RSET none are.",
                 "Order: DELE (one or more), STAT, RSET, STAT, QUIT, and no DELE after the "
                 "RSET."])
def rset(answer: Any) -> list[Finding]:
    ex = exchanges(transcript_of(answer))
    start = _login_index(ex)
    if start is None:
        return [_login_finding(ex)]
    session = ex[start + 1:]
    total = _count(ex[start][2])
    dele = [i for i, (verb, _, reply) in enumerate(session) if verb == "DELE" and _ok(reply)]
    resets = [i for i, (verb, _, reply) in enumerate(session) if verb == "RSET" and _ok(reply)
              and dele and i > dele[0]]
    findings = [Finding(bool(dele), "DELE marked at least one message deleted (+OK)"
                        if dele else "no DELE got +OK yet: mark a message with DELE n",
                        "RFC 1939 §5")]
    if not dele:
        return findings
    reset = resets[-1] if resets else None
    before = [_count(reply) for verb, _, reply in session[dele[0] + 1:reset]
              if verb == "STAT" and _ok(reply)]
    findings.append(Finding(
        bool(before) and before[-1] is not None and total is not None and before[-1] < total,
        f"STAT after DELE counted {before[-1]} of {total} messages: marked ones are left out"
        if before and before[-1] is not None and total is not None and before[-1] < total
        else "look with STAT after DELE (and before RSET): it leaves the marked messages out",
        "RFC 1939 §5"))
    findings.append(Finding(reset is not None, "RSET took the marks back (+OK)"
                            if reset is not None else "no RSET (with +OK) after your DELE",
                            "RFC 1939 §5"))
    if reset is None:
        return findings
    after = [_count(reply) for verb, _, reply in session[reset + 1:]
             if verb == "STAT" and _ok(reply)]
    findings.append(Finding(
        bool(after) and after[0] == total,
        f"STAT after RSET counted all {total} messages again" if after and after[0] == total
        else "look with STAT after RSET: it should count every message again",
        "RFC 1939 §5"))
    quits = [i for i, (verb, _, reply) in enumerate(session) if verb == "QUIT" and _ok(reply)
             and i > reset]
    marked_again = quits and any(verb == "DELE" and _ok(reply)
                                 for verb, _, reply in session[reset + 1:quits[0]])
    if not quits:
        findings.append(Finding(False, "end with QUIT: the session is still open (and keeps "
                                "the maildrop locked)", "RFC 1939 §6"))
    elif marked_again:
        findings.append(Finding(False, "you marked a message again after RSET, so QUIT "
                                "removed it: nothing should be lost this time", "RFC 1939 §6"))
    else:
        findings.append(Finding(True, "QUIT came with no message marked: the UPDATE state had "
                                "nothing to remove", "RFC 1939 §6"))
    return findings


# -- pop3-delete-for-real -----------------------------------------------------------------------
@functools.cache
def _subject(message: bytes) -> str:
    header = inspect_message(message).header("Subject")
    return header.decoded if header is not None else "(no subject)"


@exercise("pop3-delete-for-real", f"Delete the bounce ('{TARGET_SUBJECT}') for real, and "
          "nothing else",
          hints=["Find the bounce first: TOP n 0 shows a message's header (its Subject) "
                 "without the body.",
                 "DELE n only marks the message; look at the maildrop with STAT, it is still "
                 "in the Maildir.",
                 "The removal happens in the UPDATE state, and only one command gets there "
                 "from TRANSACTION.",
                 "Log in, DELE the bounce's number, QUIT — and check that QUIT answered +OK."])
def delete_for_real(answer: Any) -> list[Finding]:
    mailbox = getattr(answer, "mailbox", None)
    if not callable(mailbox):
        return [Finding(False, "hand in the lab you started for this exercise (the object "
                        "start() returned), so the check can look into its Maildir")]
    stored = set(mailbox("username"))
    demo = demo_messages()
    target = next(m for m in demo if _subject(m) == TARGET_SUBJECT)
    others = [m for m in demo if m != target]
    missing = [m for m in others if m not in stored]
    if target not in stored:
        findings = [Finding(True, "the bounce is gone from the Maildir: DELE marked it and "
                            "QUIT's UPDATE state removed it", "RFC 1939 §6")]
    elif missing:
        findings = [Finding(False, "the bounce is still in the Maildir, and you removed other "
                            "messages instead: look at each message's Subject with TOP n 0",
                            "RFC 1939 §7")]
    else:
        findings = [Finding(False, "the bounce is still in the Maildir: DELE only marks a "
                            "message; it is removed when the session enters UPDATE",
                            "RFC 1939 §6")]
    if missing:
        names = "; ".join(f"'{_subject(m)}'" for m in missing)
        findings.append(Finding(False, f"{len(missing)} other message(s) were removed too: "
                                f"{names}. Start a new lab and try again", "RFC 1939 §5"))
    else:
        findings.append(Finding(True, "the other six messages are all still there",
                                "RFC 1939 §5"))
    return findings


# -- pop3-predict-numbers ----------------------------------------------------------------------
def _number_after(uidl: str, deleted: tuple[int, ...]) -> int:
    """The number ``uidl`` gets in the demo maildrop's next session after ``deleted`` went."""
    left = [name for i, name in enumerate(maildir_names(), 1) if i not in deleted]
    return left.index(uidl) + 1


@exercise("pop3-predict-numbers", "Predict a message's number in the next session",
          hints=["Messages are numbered 1, 2, 3 … at login, over the messages there at that "
                 "moment.",
                 "First find the message's number in the first session: UIDL lists the "
                 "unique id of each.",
                 "One message before it has gone for good: count what is left before it.",
                 "Its unique id did not change; only the number did."])
def predict_numbers(answer: Any) -> list[Finding]:
    if isinstance(answer, Transcript) or hasattr(answer, "transcript"):
        return [Finding(False, "hand in a number (your prediction), e.g. answer = 2, not a "
                        "session")]
    if isinstance(answer, str) and answer.strip().isdigit():
        answer = int(answer)
    if isinstance(answer, bool) or not isinstance(answer, int):
        return [Finding(False, "hand in a number (your prediction), e.g. answer = 2")]
    old = maildir_names().index(PREDICT_UIDL) + 1
    new = _number_after(PREDICT_UIDL, PREDICT_DELETED)
    if answer == new:
        return [Finding(True, "right: numbers are given afresh at each login, and the "
                        "message moved up one; its UIDL stayed the same", "RFC 1939 §5, §7")]
    if answer == old:
        return [Finding(False, "that was its number in the first session; numbers are handed "
                        "out again at each login, 1 to n, over the messages there now",
                        "RFC 1939 §5")]
    if answer < 1 or answer > len(maildir_names()) - len(PREDICT_DELETED):
        return [Finding(False, f"there is no message {answer} in the next session: it has "
                        f"{len(maildir_names()) - len(PREDICT_DELETED)} messages",
                        "RFC 1939 §5")]
    return [Finding(False, "not that one: find the message's number in the first session "
                    "(UIDL), then count the messages still there before it", "RFC 1939 §7")]
