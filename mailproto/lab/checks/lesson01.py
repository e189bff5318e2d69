"""Lesson 1, SMTP by hand: checks on what the student typed (RFC 5321)."""

from __future__ import annotations

from typing import Any

from ..exercises import Finding, exchanges, exercise, transcript_of


@exercise("smtp-first-message", "Send one message by hand: HELO/EHLO, MAIL, RCPT, DATA, the dot",
          hints=["Start by saying who you are: EHLO (or HELO) and a name.",
                 "The envelope comes before the message: MAIL FROM:<...> then RCPT TO:<...>.",
                 "After DATA's 354, type the message; a line with a single dot ends it.",
                 "The dot must be alone on its line, and the server answers 250 when the "
                 "message is accepted."])
def first_message(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    ex = exchanges(t)
    verbs = [v for v, _, _ in ex]
    ok = {v: any(r.startswith(("2", "3")) for vv, _, r in ex if vv == v) for v in set(verbs)}
    return [
        Finding(ok.get("EHLO", False) or ok.get("HELO", False),
                "you greeted the server (EHLO or HELO) and it answered 250", "RFC 5321 §4.1.1.1"),
        Finding(ok.get("MAIL", False), "MAIL FROM was accepted (250)", "RFC 5321 §4.1.1.2"),
        Finding(ok.get("RCPT", False), "at least one RCPT TO was accepted (250)",
                "RFC 5321 §4.1.1.3"),
        Finding(ok.get("DATA", False), "DATA got 354: the server waited for the message",
                "RFC 5321 §4.1.1.4"),
        Finding(any(v == "." and r.startswith("250") for v, _, r in ex),
                "the message ended with a lone dot and was accepted (250)", "RFC 5321 §4.1.1.4"),
    ]
