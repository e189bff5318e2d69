"""Lesson 6, the journey of a message: reading the Received: chain (RFC 5321 §4.4) and where a
bounce goes (RFC 5321 §6.1, §4.5.5).

``journey-read-received`` takes the message (or the :class:`~mailproto.lab.journey.Journey` that
carried it) with the student's order, and reads the truth from that message's own header.
``journey-bounce-goes-where`` is about message 2 of the seed's maildrop (the newsletter, see
:mod:`mailproto.demo`), whose envelope sender and ``From:`` differ.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from typing import Any

from ..exercises import Finding, exercise

#: The message of the bounce exercise: message 2 of the demo maildrop (the newsletter).
BOUNCE_QUIZ_MESSAGE = 2


@dataclass(frozen=True)
class Text:
    """Plain text that a notebook shows as it is (no quotes, real line breaks)."""

    text: str

    def __repr__(self) -> str:
        return self.text


def message_text(journey: Any, data: bytes | None = None, *, header_only: bool = False) -> Text:
    """A message of ``journey`` (default: what bob's server stored) as text with LF line ends,
    with the journey's placeholders for dates, queue ids and ports when it is deterministic."""
    data = journey.delivered if data is None else data
    if data is None:
        return Text("(no message)")
    text = data.replace(b"\r\n", b"\n").decode("utf-8", "replace")
    if getattr(journey, "deterministic", False):
        text = journey.masker().text(text)
    if header_only:
        text = text.split("\n\n", 1)[0] + "\n"
    return Text(text.rstrip("\n"))


def _message_bytes(value: Any) -> bytes:
    """A message from a Journey (what bob fetched), bytes or str."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    for attr in ("delivered", "retrieved"):
        data = getattr(value, attr, None)
        if isinstance(data, bytes):
            return data
    raise TypeError("hand in the message (or the journey) and your order: "
                    "check('journey-read-received', (journey, my_order))")


def _hosts_in_travel_order(message: bytes) -> list[str]:
    """The ``by`` host of each Received: line, bottom line first (the order of travel)."""
    msg = email.message_from_bytes(message, policy=email.policy.compat32)
    hosts = []
    for value in msg.get_all("Received", []):
        m = re.search(r"\bby\s+([^\s;()]+)", re.sub(r"\s+", " ", str(value)))
        if m:
            hosts.append(m.group(1).lower())
    return hosts[::-1]


def _names(order: Any) -> list[str]:
    if isinstance(order, str):
        items = re.split(r"[\s,;>→]+", order)
    else:
        try:
            items = [str(x) for x in order]
        except TypeError as exc:
            raise TypeError("your order is a list of host names, e.g. ['a.example', "
                            "'b.example']") from exc
    return [x.strip().strip("'\"").lower() for x in items if x.strip().strip("'\"")]


@exercise("journey-read-received",
          "Put the servers a message passed through in the order it travelled, from its "
          "Received: lines",
          hints=["Each server adds its Received: line on TOP of the header, above the lines "
                 "that are already there (RFC 5321 §4.4).",
                 "So the bottom line was written first: by the server that took the message "
                 "from the sender's own machine. Read from the bottom up.",
                 "Check your chain: the 'from' of each line names the 'by' of the line just "
                 "below it."])
def read_received(answer: Any) -> list[Finding]:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise TypeError("hand in the message (or the journey) and your order: "
                        "check('journey-read-received', (journey, my_order))")
    message, order = answer
    truth = _hosts_in_travel_order(_message_bytes(message))
    if not truth:
        return [Finding(False, "this message has no Received: line to read")]
    mine = _names(order)
    if not mine:
        return [Finding(False, "no order yet: list the host names, first hop first, e.g. "
                        "['x.example', 'y.example']")]
    extra = [x for x in mine if x not in truth]
    mine = [x for x in mine if x in truth]  # judge the order of the real servers only
    same_set = sorted(mine) == sorted(truth)
    missing = len(set(truth) - set(mine))
    if same_set and not extra:
        names = Finding(True, f"you named each of the {len(truth)} servers that wrote a "
                        "Received: line, once", "RFC 5321 §4.4")
    else:
        parts = []
        if missing:
            parts.append(f"{missing} server(s) that wrote a line are missing")
        if extra:
            parts.append(f"{', '.join(extra)} wrote no Received: line here (only the 'by' "
                         "host of a line is a server the message passed)")
        if not parts:
            parts.append("a server is named more than once")
        names = Finding(False, "; ".join(parts), "RFC 5321 §4.4")
    if mine == truth:
        order_ok = Finding(True, "in the order of travel: the bottom line first, the top line "
                           "(the server that delivered it) last", "RFC 5321 §4.4")
    elif same_set and mine == truth[::-1]:
        order_ok = Finding(False, "that is the order of the lines from the top down, which is "
                           "the reverse of the journey: the top line was written last",
                           "RFC 5321 §4.4")
    else:
        order_ok = Finding(False, "the order is not the order of travel (bottom line first)",
                           "RFC 5321 §4.4")
    return [names, order_ok]


def _address(text: Any) -> str:
    s = str(text).strip()
    s = re.sub(r"(?i)^mail\s+from:\s*", "", s)
    m = re.search(r"<([^>]*)>", s)
    return (m.group(1) if m else s).strip().lower()


def _quiz_message() -> Any:
    from ...demo import demo_messages

    raw = demo_messages()[BOUNCE_QUIZ_MESSAGE - 1]
    data = raw if isinstance(raw, bytes) else raw.data
    return email.message_from_bytes(data, policy=email.policy.compat32)


@exercise("journey-bounce-goes-where",
          "The newsletter (message 2) cannot be delivered: where does the bounce go, and with "
          "which MAIL FROM does the bounce travel?",
          hints=["A bounce is addressed by the servers, and servers read the envelope, not the "
                 "message's header lines.",
                 "The envelope sender (MAIL FROM) is kept in the message as the Return-Path: "
                 "line written at delivery (RFC 5321 §4.4).",
                 "The bounce's own envelope sender is the null path, so that a bounce can never "
                 "cause another bounce (RFC 5321 §6.1, §4.5.5)."])
def bounce_goes_where(answer: Any) -> list[Finding]:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise TypeError("hand in two answers: check('journey-bounce-goes-where', "
                        "(bounce_goes_to, bounce_mail_from))")
    goes_to, mail_from = (_address(a) for a in answer)
    msg = _quiz_message()
    envelope = _address(msg.get("Return-Path", ""))
    header_from = _address(msg.get("From", ""))
    recipients = {_address(a) for a in re.split(r",", str(msg.get("To", "")))}
    if goes_to == envelope:
        where = Finding(True, "the bounce goes to the envelope sender, the address in "
                        "Return-Path: (MAIL FROM at the last hop)", "RFC 5321 §6.1")
    elif goes_to == header_from:
        where = Finding(False, "that is the From: header, a line of the message text: no "
                        "server reads it to send a bounce", "RFC 5321 §6.1")
    elif goes_to in recipients:
        where = Finding(False, "that is the recipient: the message could not reach it, the "
                        "bounce goes back the other way", "RFC 5321 §6.1")
    elif not goes_to or goes_to in ("...", "?"):
        where = Finding(False, "no address yet for where the bounce goes", "RFC 5321 §6.1")
    else:
        where = Finding(False, "that address is not where the servers send this bounce",
                        "RFC 5321 §6.1")
    typed = str(answer[1]).strip()
    if mail_from == "" and "<" in typed:
        null = Finding(True, "the bounce itself travels with the null sender MAIL FROM:<>, "
                       "so it can never bounce back", "RFC 5321 §4.5.5")
    elif typed in ("", "?", "..."):
        null = Finding(False, "no envelope sender yet for the bounce (an empty one is written "
                       "with its angle brackets)", "RFC 5321 §4.5.5")
    elif mail_from.startswith("mailer-daemon"):
        null = Finding(False, "MAILER-DAEMON is what the bounce's From: header says; its "
                       "envelope sender is something else", "RFC 5321 §4.5.5")
    else:
        null = Finding(False, "not the envelope sender a bounce carries: think about what "
                       "would happen if the bounce itself could not be delivered",
                       "RFC 5321 §4.5.5")
    return [where, null]
