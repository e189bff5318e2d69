"""The journey's views: the topology picture, the sequence diagram, the annotated sessions, the
retries and the bounce (RFC 5321 §4.5.4.1, §4.5.5; RFC 3464), and the whole story as HTML.

Render functions of a :class:`~mailproto.lab.journey.Journey`: they read what it recorded
(:attr:`~mailproto.lab.journey.Journey.hops`, bounces, the message bob fetched) and never a live
server, so they work after the servers stopped.  With ``deterministic=True`` they show masked
copies (:mod:`.masker`).  Figures are drawn with matplotlib on demand, by :class:`JourneyFigure`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from ..transcript import Transcript
from . import palette
from .journey_hops import (
    ALICE,
    ALICE_CLIENT,
    BOB,
    BOB_CLIENT,
    Bounce,
    Hop,
    complete,
    loopback_address,
)
from .sequence import draw_sequence
from .topology import (
    BOUNCE,
    CELL,
    CODE,
    FAILED,
    HEADING,
    OK,
    PARA,
    POP3,
    RELAY,
    RETRIED,
    SANS,
    SMTP,
    Link,
    Node,
    draw_topology,
)
from .transcript_html import render_transcript
from .views import _FigureView, inline_svg

if TYPE_CHECKING:
    from .journey import Journey


class JourneyFigure(_FigureView):
    """A figure view (SVG, PNG and HTML for notebooks) drawn by a function on demand."""

    def __init__(self, draw: Callable[[], Figure], what: str) -> None:
        self._draw = draw
        self.what = what

    def figure(self) -> Figure:
        return self._draw()

    def _repr_html_(self) -> str:
        return inline_svg(self._repr_svg_())

    def __repr__(self) -> str:
        return f"<JourneyFigure {self.what}>"


def shown_hops(journey: Journey, hops: Sequence[Hop] | None = None
               ) -> list[tuple[Hop, Transcript]]:
    """Each hop with the transcript to show: masked copies when ``journey.deterministic``."""
    hops = journey.hops if hops is None else hops
    if not journey.deterministic:
        return [(h, h.transcript) for h in hops]
    m = journey.masker()
    return [(h, m.transcript(h.transcript, k)) for k, h in enumerate(hops)]


def masked(journey: Journey, text: str) -> str:
    """``text`` as shown: with placeholders when ``journey.deterministic``."""
    return journey.masker().text(text) if journey.deterministic else text


def topology_figure(journey: Journey) -> Figure:
    """The picture: a box per client and server, an arrow per link (see ``Journey.topology``)."""
    names = [s.name for s in journey.servers]
    subtitles = {"submission": "submission · a.test\nalice's mailbox",
                 "relay": "relay", "final": "b.test · MX\nbob's mailbox"}
    nodes = [Node("alice", ALICE_CLIENT, ALICE, "client")]
    nodes += [Node(s.name, s.name, subtitles[s.role]) for s in journey.servers]
    nodes.append(Node("bob", BOB_CLIENT, BOB, "client"))
    attempts = journey.attempts
    links = [Link("alice", names[0], "SMTP",
                  _port_line(journey, names[0], "SMTP", f"AUTH {journey.auth}"), SMTP)]
    for a, b in zip(names, names[1:], strict=False):
        tries = [h for h in attempts if h.client == a and h.server == b]
        ok = any(h.result.startswith("accepted") for h in tries)
        failed = any(not complete(h) for h in tries)
        outcome = FAILED if tries and not ok else RETRIED if failed else OK
        n = len({h.attempt for h in tries})
        extra = f"{n} attempt{'' if n == 1 else 's'}" if failed else ""
        links.append(Link(a, b, "SMTP relay", _port_line(journey, b, "SMTP", extra), RELAY,
                          outcome))
    got = journey.retrieved is not None or journey._submission is None
    links.append(Link(names[-1], "bob", "POP3", _port_line(
        journey, names[-1], "POP3", "bob connects" if got else "mailbox empty"), POP3,
        OK if got else FAILED))
    for h in journey.hops:
        if h.kind == "bounce":
            links.append(Link(h.client, h.server, "bounce: SMTP, MAIL FROM:<>", "", BOUNCE))
    if journey.bounces:
        links.append(Link(names[0], "alice", "POP3: alice fetches the bounce",
                          "" if journey.deterministic else _port_line(journey, names[0], "POP3"),
                          POP3))
    title = (f"The journey of a message: {ALICE} → {', '.join(journey.recipients or [BOB])}, "
             f"{journey.n_hops} SMTP hops" + (f", fault {journey.fault} at {names[-1]}"
                                              if journey.fault else ""))
    caption = ("Arrows follow the message. SMTP pushes: the sender connects. POP3 pulls: "
               "bob's client connects to its server and downloads.")
    return draw_topology(nodes, links, title=title, caption=caption)


def _port_line(journey: Journey, name: str, listener: str, extra: str = "") -> str:
    port = loopback_address(journey.ports, name, listener)[1]
    parts = [] if journey.deterministic else [f"127.0.0.1:{port}"]
    if extra:
        parts.append(extra)
    return "\n".join(parts)


def sequence_figure(journey: Journey) -> Figure:
    """All hops as one sequence diagram (see ``Journey.sequence``)."""
    shown = shown_hops(journey)
    parties = {p for h, _ in shown for p in (h.client, h.server)}
    return draw_sequence([(t, (h.client, h.server)) for h, t in shown],
                         width=max(8.0, 1.75 * len(parties) + 1.65))


def hop_html(journey: Journey, hop: Hop, shown: Transcript, open_: bool = False) -> str:
    """One hop's annotated transcript, folded under its name."""
    where = "" if journey.deterministic else f" · {hop.address[0]}:{hop.address[1]}"
    result = f" · {escape(masked(journey, hop.result))}" if hop.result else ""
    return (f'<details data-hop="{escape(hop.name)}"{" open" if open_ else ""} '
            f'style="margin:4px 0"><summary style="cursor:pointer;font-family:{SANS};'
            f'font-size:13px"><b>{escape(hop.name)}</b> '
            f'<span style="color:{palette.MUTED}">{escape(hop.protocol.upper())}'
            f"{escape(where)}{result}</span></summary>{render_transcript(shown)}</details>")


def transcripts_html(journey: Journey) -> str:
    """Every hop's annotated transcript, the first one unfolded."""
    shown = shown_hops(journey)
    return "".join(hop_html(journey, h, t, open_=k == 0) for k, (h, t) in enumerate(shown))


def attempts_html(journey: Journey) -> str:
    """The retries and the bounce, as a table and a text; "" when every attempt succeeded."""
    attempts = journey.attempts
    if not journey.bounces and all(complete(h) for h in attempts):
        return ""
    t0 = journey.hops[0].started if journey.hops else 0.0
    last = {(h.client, h.server): h.attempt for h in attempts}
    columns = ["hop", "attempt", "result", "then"]
    if not journey.deterministic:
        columns.insert(2, "after submission")
    rows = []
    for h in attempts:
        if complete(h):
            then = "done"
        elif journey.bounces and last[(h.client, h.server)] == h.attempt:
            then = "the queue lifetime is over: bounce"
        else:
            then = f"try again in {journey.retry_base * 2 ** (h.attempt - 1):g} s"
        cells = [f"{escape(h.client)} → {escape(h.server)}", str(h.attempt),
                 f'<span style="{CODE}">{escape(masked(journey, h.result))}</span>', then]
        if not journey.deterministic:
            cells.insert(2, f"+{h.started - t0:.1f} s")
        rows.append("<tr>" + "".join(f'<td style="{CELL}">{c}</td>' for c in cells)
                    + "</tr>")
    head = "".join(f'<th style="{CELL};border-bottom:2px solid #999">{x}</th>'
                   for x in columns)
    intro = (f"A temporary failure (4xx, or a dropped connection) is not the end: the relay "
             f"keeps the message in its queue and tries again, waiting {journey.retry_base:g} s,"
             f" then twice as long each time (RFC 5321 §4.5.4.1). After the queue lifetime "
             f"({journey.queue_lifetime:g} s here, days on a real server) it gives up and sends "
             f"exactly one bounce to the envelope sender, with the null sender "
             f"<code>MAIL FROM:&lt;&gt;</code> so that a bounce never bounces (§4.5.5).")
    bounces = "".join(bounce_html(journey, b) for b in journey.bounces)
    return (f'<p style="{PARA}">{intro}</p>'
            f'<table style="border-collapse:collapse;font-family:{SANS};font-size:13px">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"{bounces}")


def bounce_html(journey: Journey, bounce: Bounce) -> str:
    """What alice's bounce says (RFC 3464 fields), and the bounce itself, folded."""
    facts = "".join(f"<li><code>{escape(r)}</code>: status <code>{escape(s)}</code></li>"
                    for r, s in zip(bounce.recipients, bounce.statuses, strict=False))
    why = "".join(f"<li><code>{escape(masked(journey, d))}</code></li>"
                  for d in bounce.diagnostics)
    text = masked(journey, bounce.data.decode("utf-8", "replace"))
    return (f'<p style="{PARA}">alice got a bounce from <b>{escape(bounce.reporting_mta)}</b>'
            f"</p><ul style=\"{PARA}\">{facts}{why}</ul>"
            f'<details><summary style="cursor:pointer;font-family:{SANS};font-size:13px">'
            f"the bounce as alice fetched it ({len(bounce.data)} octets)</summary>"
            f'<pre style="{CODE};white-space:pre-wrap">{escape(text)}</pre></details>')


def journey_html(journey: Journey) -> str:
    """The whole story, for ``Journey._repr_html_``: picture, Received: chain, retries,
    sequence, sessions, and what bob got."""
    sections: list[tuple[str, str]] = [("The way", journey.topology()._repr_html_())]
    if journey.retrieved is not None:
        sections.append(("The trace it left: the Received: lines",
                         journey.received_chain()._repr_html_()))
    attempts = attempts_html(journey)
    if attempts:
        sections.append(("Retries and bounces", attempts))
    if journey.hops:
        sections.append(("Every line, every hop", journey.sequence()._repr_html_()))
        sections.append(("The sessions, annotated", transcripts_html(journey)))
    if journey.retrieved is not None:
        same = journey.delivered is not None and \
            journey.retrieved == journey.delivered.replace(b"\n", b"\r\n")
        sections.append(("What bob got", f'<p style="{PARA}">bob\'s POP3 client fetched '
                         f"{len(journey.retrieved)} octets" + (
                             f", exactly what {journey.servers[-1].name} stored in his Maildir"
                             " (CRLF on the wire, LF on disk)." if same else ".") + "</p>"))
    body = "".join(f'<div style="{HEADING}">{k}. {escape(title)}</div>{html}'
                   for k, (title, html) in enumerate(sections, 1))
    return (f'<div class="mailproto-journey" style="font-family:{SANS}">'
            f'<div style="{HEADING};font-size:17px">The journey of a message</div>'
            f'<p style="{PARA}">{escape(summary(journey))}</p>{body}</div>')


def summary(journey: Journey) -> str:
    """One sentence: what was sent to whom, and how it ended."""
    if journey._submission is None:
        return (f"{journey.n_hops} SMTP servers ready; nothing sent yet "
                f"(journey.send(subject=..., body=...)).")
    to = ", ".join(journey.recipients)
    if journey.retrieved is not None:
        how = "arrived"
    elif journey.bounces:
        how = "bounced"
    else:
        how = "did not arrive"
    took = "" if journey.deterministic or journey.elapsed is None else \
        f" in {journey.elapsed:.2f} s"
    return (f"alice@a.test sent “{journey.subject}” to {to}; it {how}{took} after "
            f"{len(journey.hops)} connections ({journey.n_hops} SMTP hops"
            + (f", fault {journey.fault} at {journey.servers[-1].name}" if journey.fault else "")
            + ").")
