"""The journey's records: who takes part, each connection as a :class:`Hop`, a bounce as alice
fetched it (:class:`Bounce`, RFC 3464), and :func:`build_hops`, which puts the recorded
transcripts in the order they began and says in one line how each ended.

Plain data and functions over recorded transcripts (:mod:`mailproto.transcript`): no servers,
no I/O, no matplotlib.  :mod:`.journey` runs the servers; :mod:`.journey_views` draws.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..transcript import CLIENT, SERVER, Transcript

if TYPE_CHECKING:
    from ..net.relay import HopTranscript, Outcome

# -- the cast --------------------------------------------------------------------------------
SENDER_DOMAIN, RECIPIENT_DOMAIN = "a.test", "b.test"
ALICE, BOB, CAROL = "alice@a.test", "bob@b.test", "carol@b.test"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
ALICE_CLIENT, BOB_CLIENT = "alice's client", "bob's client"
ALICE_HELO = "alice-laptop"


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hop:
    """One connection of the journey and its transcript.  Unpacks as ``(name, transcript)``."""

    name: str
    transcript: Transcript
    client: str  # the party that connected (as in the diagrams)
    server: str
    kind: str  # "submission", "relay", "bounce" (SMTP) or "pop3"
    address: tuple[str, int]
    attempt: int = 1
    result: str = ""
    started: float = 0.0

    def __iter__(self) -> Iterator[Any]:
        return iter((self.name, self.transcript))

    @property
    def protocol(self) -> str:
        return self.transcript.protocol

    def commands(self) -> list[str]:
        """The verbs the client sent, in order (``["EHLO", "AUTH", "MAIL", ...]``)."""
        out = []
        for step in self.transcript:
            if step.direction == CLIENT and step.kind == "command":
                verb = step.parsed.get("verb") or step.text.split(" ", 1)[0]
                out.append(str(verb).strip().upper())
        return out


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification (RFC 3464) as alice fetched it."""

    data: bytes
    recipients: tuple[str, ...]
    statuses: tuple[str, ...]
    diagnostics: tuple[str, ...]
    reporting_mta: str

    @classmethod
    def parse(cls, data: bytes) -> Bounce:
        text = data.decode("utf-8", "replace")

        def all_of(pattern: str) -> tuple[str, ...]:
            return tuple(m.strip() for m in re.findall(pattern, text, re.M))

        mta = all_of(r"^Reporting-MTA:\s*dns;\s*(.+?)\r?$")
        return cls(data, all_of(r"^Final-Recipient:\s*rfc822;\s*(.+?)\r?$"),
                   all_of(r"^Status:\s*(.+?)\r?$"),
                   all_of(r"^Diagnostic-Code:\s*smtp;\s*(.+?)\r?$"), mta[0] if mta else "")


# -- what happened ---------------------------------------------------------------------------
def loopback_address(ports: dict[str, dict[str, int]], name: str,
                     listener: str = "SMTP") -> tuple[str, int]:
    """Where server ``name`` listens (``ports`` as in :attr:`.journey.Journey.ports`)."""
    return ("127.0.0.1", ports.get(name, {}).get(listener, 0))


def build_hops(names: Sequence[str], submission: Transcript | None,
               relayed: Sequence[tuple[str, HopTranscript]],
               pop3: Sequence[tuple[str, str, Transcript]],
               ports: dict[str, dict[str, int]]) -> list[Hop]:
    """Every connection in the order they began: alice's submission (``submission``), each
    server-to-server attempt (``relayed``: (relaying server, record); retries and the bounce
    included), then the POP3 sessions (``pop3``: (client, server name, transcript))."""
    out: list[Hop] = []
    if submission is not None:
        out.append(Hop(f"hop 1: {ALICE_CLIENT} → {names[0]} (submission)", submission,
                       ALICE_CLIENT, names[0], "submission", loopback_address(ports, names[0]), 1,
                       _data_reply(submission), _start_time(submission)))
    by_port = {port["SMTP"]: name for name, port in ports.items() if "SMTP" in port}
    tries: dict[tuple[str, str], int] = {}
    for relayer, rec in relayed:
        tries[(relayer, rec.queue)] = tries.get((relayer, rec.queue), 0) + 1
    smtp_hops = []
    for relayer, rec in relayed:
        target = by_port.get(rec.hop[1], f"{rec.hop[0]}:{rec.hop[1]}")
        bounce = _null_sender(rec.transcript)
        if bounce:
            name, kind = f"the bounce: {relayer} → {target} (MAIL FROM:<>)", "bounce"
        else:
            k = names.index(target) + 1 if target in names else 0
            name, kind = f"hop {k}: {relayer} → {target}", "relay"
        if tries[(relayer, rec.queue)] > 1:
            name += f", attempt {rec.attempt}"
        smtp_hops.append(Hop(name, rec.transcript, relayer, target, kind, rec.hop,
                             rec.attempt, _outcome_text(rec.outcome),
                             _start_time(rec.transcript)))
    out += sorted(smtp_hops, key=lambda h: h.started)
    for client, server, transcript in pop3:
        user = "bob" if client == BOB_CLIENT else "alice"
        what = "his mail" if user == "bob" else "her bounce"
        out.append(Hop(f"POP3: {client} fetches {what} from {server}", transcript, client,
                       server, "pop3", loopback_address(ports, server, "POP3"), 1,
                       _pop3_result(transcript), _start_time(transcript)))
    return out


# -- reading a transcript --------------------------------------------------------------------
def complete(hop: Hop) -> bool:
    """Did this attempt leave nothing to retry?"""
    return hop.result.startswith("accepted") and "will retry" not in hop.result \
        and "refused" not in hop.result


def _start_time(transcript: Transcript) -> float:
    return transcript.steps[0].time if transcript.steps else 0.0


def _null_sender(transcript: Transcript) -> bool:
    for step in transcript:
        if step.direction == CLIENT and step.text.upper().startswith("MAIL FROM:<>"):
            return True
    return False


def _data_reply(transcript: Transcript) -> str:
    """What the server said to the message: ``accepted: 250 ...`` or the refusal."""
    after_data = False
    for step in transcript:
        if step.kind == "data":
            after_data = True
        elif after_data and step.direction == SERVER:
            line = step.text.splitlines()[0] if step.text else ""
            return ("accepted: " if line.startswith("250") else "refused: ") + line
    return ""


def _outcome_text(outcome: Outcome) -> str:
    """One line for an attempt: the server's own words when it refused, else our client's."""
    transcript = outcome.transcript
    accepted = (_data_reply(transcript) if transcript else "") or "accepted"
    if not outcome.temporary and not outcome.permanent:
        return accepted
    said = ""
    if transcript is not None:
        replies = [s for s in transcript if s.direction == SERVER]
        if replies and replies[-1].text[:1] in "45":
            said = replies[-1].text.splitlines()[0]
    parts = [f"accepted for {', '.join(outcome.delivered)}"] if outcome.delivered else []
    if outcome.temporary:
        rcpts = f" {', '.join(outcome.temporary)}" if outcome.delivered else ""
        why = said or next(iter(outcome.temporary.values()))
        parts.append(f"will retry{rcpts}: {why.split(' (last seen:')[0]}")
    if outcome.permanent:
        parts.append("refused: " + (said or outcome.permanent[0].diagnostic))
    return "; ".join(parts)


def _pop3_result(transcript: Transcript) -> str:
    """The answer to STAT: how many messages the maildrop holds."""
    steps = transcript.steps
    for k, step in enumerate(steps[:-1]):
        if step.direction == CLIENT and step.text.upper().startswith("STAT"):
            return "STAT: " + steps[k + 1].text.strip()
    return ""

