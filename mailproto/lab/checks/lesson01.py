"""Lesson 1, SMTP by hand: checks on what the student typed (RFC 5321).

The session exercises read the transcript only (what crossed the wire and what came back), so a
student may type the lines one by one, pipeline them, or use the console.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

from ...transcript import Transcript
from ..exercises import Finding, exchanges, exercise, transcript_of


# -- helpers: mail transactions as the server saw them ---------------------------------------------
@dataclass
class Transaction:
    """One mail transaction (RFC 5321 §3.3): MAIL, the RCPTs, and the message sent after DATA."""

    sender: str
    recipients: list[str] = field(default_factory=list)  # accepted (2xx) only
    refused: list[str] = field(default_factory=list)
    sent_lines: list[bytes] = field(default_factory=list)  # as on the wire, dot-stuffing kept
    reply: str = ""  # the reply after the final dot ("" if the message was never ended)

    @property
    def delivered(self) -> bool:
        return self.reply.startswith("250")

    @property
    def stored_lines(self) -> list[bytes]:
        """The message as the server keeps it: one leading dot removed (RFC 5321 §4.5.2)."""
        return [line[1:] if line.startswith(b".") else line for line in self.sent_lines]

    def header(self) -> Any:
        """The header fields of the message, parsed (an ``email.message.Message``)."""
        head: list[bytes] = []
        for line in self.stored_lines:
            if not line:
                break
            head.append(line)
        return BytesHeaderParser(policy=compat32).parsebytes(b"\r\n".join(head) + b"\r\n\r\n")

    def header_addresses(self, *names: str) -> list[str]:
        """Lower-case addresses named in these header fields (e.g. ``"To", "Cc"``)."""
        head = self.header()
        values = [str(v) for n in names for v in (head.get_all(n) or [])]
        return [a.lower() for _, a in getaddresses(values) if a]


def address_of(arg: str) -> str:
    """``FROM:<a@b> SIZE=9`` / ``TO:<a@b>`` → ``a@b`` (lower case); ``<>`` → ``""``."""
    m = re.search(r"<([^<>]*)>", arg)
    if m:
        return m.group(1).strip().lower()
    _, _, rest = arg.partition(":")
    return rest.strip().split(" ")[0].lower()


def _split_lines(raw: bytes) -> list[bytes]:
    lines = re.split(rb"\r\n|\n", raw)
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def transactions(transcript: Transcript) -> list[Transaction]:
    """Every mail transaction the server opened (MAIL got 250), in order, with the recipients
    it accepted and the message text that followed DATA (replies paired in command order, also
    when pipelined: RFC 2920 §3)."""
    out: list[Transaction] = []
    current: Transaction | None = None
    waiting: list[tuple[str, str]] = []
    text: list[bytes] = []
    for step in transcript:
        if step.direction == "C":
            if step.kind == "command" and "verb" in step.parsed and "ignored" not in step.parsed:
                waiting.append((step.parsed["verb"], step.parsed.get("arg", "")))
            elif step.kind == "auth":
                waiting.append(("AUTH-RESPONSE", ""))
            elif step.kind == "data":
                text.append(step.raw)
                if "size" in step.parsed:
                    waiting.append((".", ""))
        elif step.direction == "S" and step.kind == "reply" and waiting:
            if step.parsed.get("unsolicited"):
                continue
            verb, arg = waiting.pop(0)
            reply = step.text.split("\r\n", 1)[0]
            ok = reply.startswith("2")
            if verb == "MAIL" and ok:
                current = Transaction(address_of(arg))
                out.append(current)
            elif verb == "RCPT" and current is not None:
                (current.recipients if ok else current.refused).append(address_of(arg))
            elif verb == "DATA":
                text = []
            elif verb == "." and current is not None:
                lines = _split_lines(b"".join(text))
                if lines and lines[-1] == b".":
                    lines.pop()
                current.sent_lines = lines
                current.reply = reply
                current, text = None, []
            elif verb in ("RSET", "HELO", "EHLO", "STARTTLS", "QUIT") and ok:
                current = None  # the transaction is aborted (RFC 5321 §4.1.1.5, §4.1.4)
    return out


def delivered(transcript: Transcript) -> list[Transaction]:
    """The transactions whose message the server accepted (250 after the dot)."""
    return [t for t in transactions(transcript) if t.delivered]


def _no_message_finding(t: Transcript) -> Finding:
    started = transactions(t)
    if not started:
        return Finding(False, "no mail transaction yet: the server has not accepted a "
                              "MAIL FROM", "RFC 5321 §3.3")
    if not any(tr.recipients for tr in started):
        return Finding(False, "MAIL was accepted, but no RCPT TO was: the message has nowhere "
                              "to go", "RFC 5321 §3.3")
    return Finding(False, "no message was accepted yet: after DATA's 354 send the message, "
                          "then a line with a single dot, and wait for 250", "RFC 5321 §4.1.1.4")


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


@exercise("smtp-envelope-vs-header",
          "Send a message whose From: header differs from its MAIL FROM",
          hints=["Two different places name a sender: the MAIL FROM command (the envelope) and "
                 "the From: line you type after DATA (the header).",
                 "Use MAIL FROM:<alice@local.test>, and after DATA's 354 begin the message with "
                 "a From: line naming someone else.",
                 "The header is the first lines of the message, before the first empty line: "
                 "'From: Someone <someone@example.com>', then 'Subject: ...', then ''.",
                 "Lines in order: EHLO, MAIL FROM:<alice@local.test>, RCPT TO:<bob@local.test>, "
                 "DATA, a From: line with another address, Subject:, an empty line, a body "
                 "line, and '.'."])
def envelope_vs_header(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    sent = delivered(t)
    if not sent:
        return [_no_message_finding(t)]
    best = next((tr for tr in sent if tr.header_addresses("From")), sent[-1])
    froms = best.header_addresses("From")
    differs = bool(froms) and best.sender not in froms
    return [
        Finding(True, "a message was accepted (250 after the dot)", "RFC 5321 §4.1.1.4"),
        Finding(bool(froms), "the message has a From: header line (in the header, before the "
                             "first empty line)" if froms else
                "the message has no From: header line: type one right after DATA's 354, "
                "before the empty line", "RFC 5322 §3.6.2"),
        Finding(differs, "the From: header names a different address than MAIL FROM: the "
                         "server accepted it, because the envelope and the header are "
                         "independent" if differs else
                "the From: header and MAIL FROM name the same address: make them differ to "
                "see that the server does not compare them", "RFC 5321 §3.3, RFC 5322 §3.6.2"),
    ]


@exercise("smtp-two-recipients-one-data",
          "One message, two recipients: two RCPT TO, one DATA",
          hints=["One transaction can name several recipients before its DATA.",
                 "RCPT TO may be repeated: one line per recipient, all before DATA.",
                 "MAIL FROM once, RCPT TO:<alice@local.test> and RCPT TO:<bob@local.test>, "
                 "then DATA once, the message, and the dot."])
def two_recipients(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    sent = delivered(t)
    if not sent:
        return [_no_message_finding(t)]
    best = max(sent, key=lambda tr: len(set(tr.recipients)))
    many = len(set(best.recipients))
    findings = [Finding(True, "a message was accepted (250 after the dot)", "RFC 5321 §4.1.1.4")]
    if many >= 2:
        findings.append(Finding(True, f"its one DATA went to {many} accepted recipients: the "
                                      "server makes one copy per recipient", "RFC 5321 §3.3"))
    elif len(sent) >= 2:
        findings.append(Finding(False, f"you sent {len(sent)} messages with one recipient each: "
                                       "that is two DATAs; name both recipients in the same "
                                       "transaction instead", "RFC 5321 §3.3"))
    else:
        refused = f" ({len(best.refused)} RCPT refused)" if best.refused else ""
        findings.append(Finding(False, "the message had only one accepted recipient" + refused
                                + ": repeat RCPT TO before DATA", "RFC 5321 §4.1.1.3"))
    return findings


@exercise("smtp-bcc-envelope-only",
          "A blind copy: a recipient in the envelope but in no header",
          hints=["Who gets a message is decided by RCPT TO, not by the To: line.",
                 "Name two recipients with RCPT TO, but write only one of them in the To: "
                 "header.",
                 "Do not type a Bcc: line in the message: every recipient would see it. The "
                 "blind recipient is only in the envelope.",
                 "RCPT TO:<bob@local.test>, RCPT TO:<alice@local.test>, DATA, then "
                 "'To: bob@local.test', 'Subject: ...', '', a body line, '.'."])
def bcc_envelope_only(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    sent = [tr for tr in delivered(t) if len(set(tr.recipients)) >= 2]
    if not sent:
        if delivered(t):
            return [Finding(False, "your message had one recipient: a blind copy needs a second "
                                   "RCPT TO in the same transaction", "RFC 5321 §3.3")]
        return [_no_message_finding(t)]

    def hidden(tr: Transaction) -> list[str]:
        shown = set(tr.header_addresses("To", "Cc", "Bcc"))
        return [r for r in dict.fromkeys(tr.recipients) if r not in shown]

    best = max(sent, key=lambda tr: (bool(tr.header_addresses("To")), len(hidden(tr))))
    to = best.header_addresses("To")
    bcc_line = best.header().get_all("Bcc") is not None
    named = any(r in to for r in best.recipients)
    blind = [r for r in hidden(best) if r not in to]
    return [
        Finding(True, "a message was accepted for two or more recipients with one DATA",
                "RFC 5321 §3.3"),
        Finding(named, "the To: header names one of the envelope recipients" if named else
                "the To: header should name one of the recipients (the visible one)",
                "RFC 5322 §3.6.3"),
        Finding(bool(blind), f"{len(blind)} recipient(s) are in the envelope only (RCPT TO) and "
                             "in no header: they get the message, and nobody sees them" if blind
                else "every recipient is also named in a header: leave one out of the header",
                "RFC 5321 §3.3"),
        Finding(not bcc_line, "no Bcc: line went over the wire" if not bcc_line else
                "a Bcc: line was sent in the message: every recipient receives it and can read "
                "who was blind-copied; the sending program removes it before DATA",
                "RFC 5322 §3.6.3"),
    ]


@exercise("smtp-dot-stuffing", "Send a body line that starts with a dot, and keep the dot",
          hints=["The server removes the first dot of every line that starts with one.",
                 "To keep a dot at the start of a line, the client doubles it: dot-stuffing.",
                 "To store '.net' at the start of a line, send '..net'. The final line is still "
                 "a lone '.'."])
def dot_stuffing(answer: Any) -> list[Finding]:
    t = transcript_of(answer)
    sent = delivered(t)
    if not sent:
        return [_no_message_finding(t)]

    def body(tr: Transaction) -> list[bytes]:
        lines = tr.sent_lines
        return lines[lines.index(b"") + 1:] if b"" in lines else lines

    stuffed = [tr for tr in sent if any(line.startswith(b"..") for line in body(tr))]
    best = stuffed[-1] if stuffed else sent[-1]
    lost = [line for line in body(best) if line.startswith(b".") and not line.startswith(b"..")]
    findings = [Finding(True, "a message was accepted (250 after the dot)", "RFC 5321 §4.1.1.4")]
    if stuffed:
        findings.append(Finding(True, "a body line was sent dot-stuffed ('..'): the server "
                                      "removed one dot and stored a line that starts with '.'",
                                "RFC 5321 §4.5.2"))
    else:
        findings.append(Finding(False, "no body line was sent starting with '..': nothing "
                                       "was dot-stuffed", "RFC 5321 §4.5.2"))
    if lost:
        findings.append(Finding(False, f"{len(lost)} body line(s) started with a single '.': "
                                       "the server removed that dot, so the text lost it",
                                "RFC 5321 §4.5.2"))
    return findings


# -- predict the reply ---------------------------------------------------------------------------
WRONG_ORDER = {
    "RCPT before MAIL": ("a recipient before any MAIL FROM", "RFC 5321 §4.1.1.3"),
    "DATA before RCPT": ("DATA after MAIL but before any accepted RCPT TO", "RFC 5321 §4.1.1.4"),
    "MAIL before EHLO": ("MAIL FROM as the first command of a session", "RFC 5321 §4.1.4"),
}
_WHY_NOT = {
    "2": "a 2xx reply would mean the command was accepted, but the server cannot do it in "
         "this state",
    "3": "3xx asks for more input (like 354 after DATA); this command is not going anywhere",
    "4": "4xx means 'try again later'; nothing will be different later, the order is wrong",
    "500": "500 means the server did not recognise the command, but it did: it is a valid "
           "command at the wrong moment",
    "501": "501 means the arguments are wrong; here they are fine, the moment is not",
    "502": "502 means the command is switched off on this server; this one is not",
    "550": "550 is about the mailbox or the policy; the server never gets as far as the "
           "address",
    "5": "a 5xx is right (permanent: repeating the same line will not help), but not this one",
}


def _code(value: Any) -> str | None:
    text = str(value).strip()
    return text[:3] if re.fullmatch(r"[2-5]\d\d( .*)?", text) else None


@exercise("smtp-predict-503", "Predict the reply to commands in the wrong order",
          hints=["All three are commands the server knows, with good arguments.",
                 "What is wrong is the moment: the state machine does not allow them yet.",
                 "RFC 5321 §4.2.2 has one code for 'bad sequence of commands'."])
def predict_503(answer: Any) -> list[Finding]:
    if isinstance(answer, Mapping):
        given = {k: answer.get(k) for k in WRONG_ORDER}
    elif isinstance(answer, Sequence) and not isinstance(answer, str | bytes) \
            and len(answer) == len(WRONG_ORDER):
        given = dict(zip(WRONG_ORDER, answer, strict=True))
    else:
        return [Finding(False, "hand in a dict with the three keys "
                               + ", ".join(repr(k) for k in WRONG_ORDER)
                               + ", each with a three-digit reply code")]
    findings = []
    for key, (what, rule) in WRONG_ORDER.items():
        code = _code(given[key])
        if code is None:
            findings.append(Finding(False, f"{key}: {given[key]!r} is not a reply code yet "
                                           "(three digits, the first from 2 to 5)", rule))
        elif code == "503":
            findings.append(Finding(True, f"{key}: {what} gets 503, bad sequence of commands; "
                                          "the state does not change", rule))
        elif code == "554" and key == "DATA before RCPT":
            findings.append(Finding(True, f"{key}: 554 (no valid recipients) is allowed too; "
                                          "this server, like Postfix when no RCPT was given, "
                                          "answers with the 'bad sequence' code", rule))
        else:
            why = _WHY_NOT.get(code) or _WHY_NOT.get(code[0], "")
            findings.append(Finding(False, f"{key}: not {code}: {why}", rule))
    return findings
