"""A message's way, twice: as the servers are wired (a picture) and as the message recorded it.

:func:`draw_topology` draws who talks to whom, with which protocol.  One box per party (a mail
client or a server), left to right in the order the message travels, and one arrow per link,
drawn in the direction the *message* moves.  SMTP pushes: the sender
connects.  POP3 pulls: the reader's client connects to its server, yet the message still flows
towards the reader, so the POP3 arrow points at the client and its label says who connects.
Links that go backwards (a bounce) curve under the row.

Every box has the gid ``node:KEY`` and every arrow ``link:SRC:DST``, so a test can count them.
Pure matplotlib (no pyplot); SVG through :func:`~mailproto.lab.diagram.figure_to_svg` is
deterministic.

:class:`ReceivedChain` reads the same way from the other side: the ``Received:`` lines each
server put on top of the message (RFC 5321 §4.4), parsed into a table, and told in travel order.
Both are pure: they take data and give a figure or HTML, with no server involved.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from . import palette

#: Kinds of link and how they look: colour, line style.
SMTP, RELAY, POP3, BOUNCE = "smtp", "relay", "pop3", "bounce"
_LOOK = {SMTP: (palette.BLUE, "-"), RELAY: (palette.BLUE, "-"),
         POP3: (palette.BLUISH_GREEN, (0, (5, 3))), BOUNCE: (palette.VERMILLION, (0, (5, 3)))}
#: Outcomes of a link, drawn as a mark beside its label (never colour alone).
OK, RETRIED, FAILED = "ok", "retried", "failed"
_MARK = {OK: "", RETRIED: "⟳ ", FAILED: "✗ "}

SANS = "system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif"
MONO = "ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace"
#: Inline styles of the journey's HTML (GitHub and nbviewer drop <style> elements).
HEADING = (f"font-family:{SANS};font-size:15px;font-weight:bold;margin:14px 0 4px 0;"
           f"color:{palette.BLACK}")
PARA = f"font-family:{SANS};font-size:13px;line-height:1.45;margin:4px 0;max-width:60em"
CELL = "padding:2px 8px;border-bottom:1px solid #e0e0e0;vertical-align:top;text-align:left"
CODE = f"font-family:{MONO};font-size:12px"

#: What the ``with`` word of a Received: line says (RFC 3848, RFC 6531 §3.7.3).
WITH_MEANING = {
    "SMTP": "plain SMTP (HELO)",
    "ESMTP": "extended SMTP (EHLO), no TLS, no login",
    "ESMTPA": "extended SMTP, the sender logged in (AUTH)",
    "ESMTPS": "extended SMTP over TLS (STARTTLS)",
    "ESMTPSA": "extended SMTP over TLS, the sender logged in",
    "UTF8SMTP": "SMTPUTF8: international addresses",
    "UTF8SMTPA": "SMTPUTF8, the sender logged in",
    "UTF8SMTPS": "SMTPUTF8 over TLS",
    "UTF8SMTPSA": "SMTPUTF8 over TLS, the sender logged in",
    "LMTP": "LMTP, local delivery",
}

_BOX_W, _BOX_H, _GAP = 1.55, 0.8, 1.3  # inches
_BACK = 0.4  # the depth of each link that goes back under the row
_MARGIN = 0.25


@dataclass(frozen=True)
class Node:
    key: str
    title: str
    subtitle: str = ""
    kind: str = "server"  # "server" or "client"


@dataclass(frozen=True)
class Link:
    src: str
    dst: str
    label: str  # above the arrow: "SMTP relay"
    detail: str = ""  # under it: "127.0.0.1:2525 · AUTH"
    kind: str = SMTP
    outcome: str = OK


def draw_topology(nodes: Sequence[Node], links: Sequence[Link], *, title: str = "",
                  caption: str = "") -> Figure:
    """Boxes for ``nodes`` in a row, arrows for ``links``; links from right to left (a bounce)
    curve under the row.  Returns the figure."""
    n = len(nodes)
    backwards = [lk for lk in links if _index(nodes, lk.src) > _index(nodes, lk.dst)]
    width = 2 * _MARGIN + n * _BOX_W + (n - 1) * _GAP
    head = 0.5 if title else 0.15
    below = 0.4 + _BACK * len(backwards) + (0.35 if caption else 0.1)
    height = head + _BOX_H + below
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    if title:
        ax.text(_MARGIN, height - 0.22, title, fontsize=11, fontweight="bold", ha="left",
                va="center", gid="title")
    y = height - head - _BOX_H / 2  # the row's middle
    xs = {}
    for k, node in enumerate(nodes):
        x = _MARGIN + k * (_BOX_W + _GAP) + _BOX_W / 2
        xs[node.key] = x
        client = node.kind == "client"
        rounding = 0.2 if client else 0.06
        ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                                    boxstyle=f"round,pad=0,rounding_size={rounding}",
                                    fc="#F2F2F2" if client else palette.NODE_FILL,
                                    ec=palette.NODE_EDGE, lw=1.0 if client else 1.6, zorder=3,
                                    gid=f"node:{node.key}"))
        ax.text(x, y + (0.13 if node.subtitle else 0), node.title, fontsize=10,
                fontweight="bold", ha="center", va="center", zorder=4)
        if node.subtitle:
            ax.text(x, y - 0.16, node.subtitle, fontsize=8, color=palette.MUTED,
                    ha="center", va="center", zorder=4, linespacing=1.2)
    low = y - _BOX_H / 2
    for k, link in enumerate(backwards):
        depth = 0.45 + _BACK * k
        _back_link(ax, link, xs[link.src], xs[link.dst], low, depth)
    for link in links:
        if link not in backwards:
            _forward_link(ax, link, xs[link.src], xs[link.dst], y)
    if caption:
        ax.text(_MARGIN, 0.18, caption, fontsize=8.5, color=palette.MUTED, ha="left",
                va="center", gid="caption")
    for artist in (*ax.patches, *ax.texts):
        artist.set_clip_on(False)
    return fig


def _index(nodes: Sequence[Node], key: str) -> int:
    for k, node in enumerate(nodes):
        if node.key == key:
            return k
    raise KeyError(f"no node {key!r}")


def _colour(link: Link) -> tuple[str, object]:
    colour, style = _LOOK.get(link.kind, _LOOK[SMTP])
    if link.outcome == FAILED:
        colour = palette.VERMILLION
    return colour, style


def _forward_link(ax: Axes, link: Link, x1: float, x2: float, y: float) -> None:
    colour, style = _colour(link)
    left, right = x1 + _BOX_W / 2, x2 - _BOX_W / 2
    lw = 2.4 if link.outcome == OK else 1.6
    ax.add_patch(FancyArrowPatch((left + 0.04, y), (right - 0.04, y), arrowstyle="-|>",
                                 mutation_scale=14, color=colour, lw=lw, linestyle=style,
                                 shrinkA=0, shrinkB=0, zorder=2,
                                 gid=f"link:{link.src}:{link.dst}"))
    mid = (left + right) / 2
    ax.text(mid, y + 0.1, _MARK[link.outcome] + link.label, fontsize=9, fontweight="bold",
            color=colour, ha="center", va="bottom", zorder=4, linespacing=1.2)
    if link.detail:
        ax.text(mid, y - 0.1, link.detail, fontsize=8, color=palette.MUTED, ha="center",
                va="top", family="DejaVu Sans Mono", zorder=4, linespacing=1.25)


def _back_link(ax: Axes, link: Link, x1: float, x2: float, low: float, depth: float) -> None:
    """From the bottom of ``src`` down, left, and up into the bottom of ``dst``."""
    colour, style = _colour(link)
    xa, xb = x1 - 0.25, x2 + 0.25
    yb = low - depth
    ax.plot([xa, xa, xb], [low - 0.03, yb, yb], color=colour, lw=1.6, ls=style,
            zorder=2, gid=f"link-path:{link.src}:{link.dst}")
    ax.add_patch(FancyArrowPatch((xb, yb), (xb, low - 0.03), arrowstyle="-|>",
                                 mutation_scale=14, color=colour, lw=1.6, shrinkA=0, shrinkB=0,
                                 zorder=2, gid=f"link:{link.src}:{link.dst}"))
    text = _MARK[link.outcome] + link.label + (f"  ({link.detail})" if link.detail else "")
    ax.text((xa + xb) / 2, yb - 0.05, text, fontsize=8.5, color=colour, ha="center",
            va="top", zorder=4)


# -- the Received: chain ---------------------------------------------------------------------
_TOKEN = re.compile(r"\((?:[^()]|\([^()]*\))*\)|[^\s()]+")
_CLAUSES = ("from", "by", "via", "with", "id", "for")


@dataclass(frozen=True)
class ReceivedLine:
    """One ``Received:`` field (RFC 5321 §4.4), parsed into its clauses."""

    position: int  # 1 = the top of the header (the newest)
    hop: int  # 1 = the first server the message reached
    raw: str
    clauses: dict[str, str] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    date: str = ""

    @property
    def by(self) -> str:
        return self.clauses.get("by", "")

    @property
    def from_(self) -> str:
        return self.clauses.get("from", "")

    @property
    def with_(self) -> str:
        return self.clauses.get("with", "")

    @property
    def id(self) -> str:
        return self.clauses.get("id", "")

    @classmethod
    def parse(cls, value: str, position: int, hop: int) -> ReceivedLine:
        raw = re.sub(r"\r?\n[ \t]+", " ", value).strip()
        head, sep, date = raw.rpartition(";")
        if not sep:
            head, date = raw, ""
        clauses: dict[str, str] = {}
        comments: dict[str, str] = {}
        last = ""
        for token in _TOKEN.findall(head):
            if token.startswith("("):
                if last:
                    comments[last] = (comments.get(last, "") + " " + token[1:-1]).strip()
            elif last and last not in clauses:
                clauses[last] = token
            elif token.lower() in _CLAUSES:
                last = token.lower()
        return cls(position, hop, raw, clauses, comments, date.strip())


class ReceivedChain:
    """The ``Received:`` lines of a delivered message: a table in header order (newest first)
    and the same journey told in travel order (read from the bottom up)."""

    def __init__(self, lines: Sequence[ReceivedLine], return_path: str = "") -> None:
        self.lines = list(lines)
        self.return_path = return_path

    @classmethod
    def parse(cls, message: bytes) -> ReceivedChain:
        msg = email.message_from_bytes(message, policy=email.policy.compat32)
        # compat32 keeps 8-bit bytes as surrogates: turn them back into text (SMTPUTF8)
        values = [str(v).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                  for v in msg.get_all("Received", [])]
        n = len(values)
        lines = [ReceivedLine.parse(v, k + 1, n - k) for k, v in enumerate(values)]
        return cls(lines, str(msg.get("Return-Path", "")).strip())

    @property
    def rows(self) -> list[ReceivedLine]:
        """In header order: ``rows[0]`` is the top line, the last hop."""
        return self.lines

    def in_travel_order(self) -> list[ReceivedLine]:
        return sorted(self.lines, key=lambda r: r.hop)

    def __len__(self) -> int:
        return len(self.lines)

    def _repr_html_(self) -> str:
        head = "".join(f'<th style="{CELL};border-bottom:2px solid #999">{h}</th>' for h in (
            "line", "hop", "by (who wrote the line)", "from (who handed the message over)",
            "with", "id", "date"))
        body = []
        for row in self.lines:
            meaning = WITH_MEANING.get(row.with_.upper(), "")
            with_cell = (f'<span style="{CODE}">{escape(row.with_)}</span>'
                         + (f'<div style="font-size:11px;color:{palette.MUTED}">'
                            f"{escape(meaning)}</div>" if meaning else ""))
            seen = row.comments.get("from", "")
            from_cell = (f'<span style="{CODE}">{escape(row.from_)}</span>'
                         + (f' <span style="color:{palette.MUTED};{CODE}">({escape(seen)})'
                            f"</span>" if seen else ""))
            body.append(
                f'<tr data-hop="{row.hop}"><td style="{CELL}">{row.position}</td>'
                f'<td style="{CELL};font-weight:bold">{row.hop}</td>'
                f'<td style="{CELL};{CODE}">{escape(row.by)}</td><td style="{CELL}">{from_cell}'
                f'</td><td style="{CELL}">{with_cell}</td>'
                f'<td style="{CELL};{CODE}">{escape(row.id)}</td>'
                f'<td style="{CELL};{CODE};white-space:nowrap">{escape(row.date)}</td></tr>')
        table = (f'<table class="mailproto-received" style="border-collapse:collapse;'
                 f'font-family:{SANS};font-size:13px;margin:4px 0">'
                 f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        return (f'<div class="mailproto-received-chain">{table}{self._explain()}</div>')

    def _explain(self) -> str:
        if not self.lines:
            return f'<p style="{PARA}">No <code>Received:</code> line: nothing to follow.</p>'
        top, bottom = self.lines[0], self.lines[-1]
        steps = []
        previous: ReceivedLine | None = None
        for row in self.in_travel_order():
            how = WITH_MEANING.get(row.with_.upper(), row.with_ or "?")
            text = (f"<b>{escape(row.by)}</b> took the message from "
                    f"<code>{escape(row.from_)}</code> ({escape(how)})")
            if previous is not None:
                if row.from_.lower() == previous.by.lower():
                    text += (f' <span style="color:{palette.BLUISH_GREEN}">✓ the server of the '
                             f"line below</span>")
                else:
                    text += (f' <span style="color:{palette.VERMILLION}">✗ but the line below '
                             f"was written by {escape(previous.by)}: a gap, or a forged line"
                             f"</span>")
            steps.append(f"<li>{text}</li>")
            previous = row
        rp = (f" Only the last server adds <code>Return-Path: {escape(self.return_path)}</code>:"
              f" the envelope sender (<code>MAIL FROM</code>), where bounces go (RFC 5321 §4.4)."
              if self.return_path else "")
        return (
            f'<p style="{PARA}">Each server puts its own <code>Received:</code> line <i>on top</i>'
            f" of the header when it takes the message (RFC 5321 §4.4, RFC 5322 §3.6.7), so the"
            f" header reads newest first: line 1 was written by <b>{escape(top.by)}</b>, the last"
            f" hop, and line {bottom.position} by <b>{escape(bottom.by)}</b>, where the message"
            f" started. To follow the journey, read from the bottom up:</p>"
            f'<ol style="{PARA}">{"".join(steps)}</ol>'
            f'<p style="{PARA}"><code>from</code> is the name the sending side gave in'
            f" <code>EHLO</code>, which nobody checks; the address in brackets is what the"
            f" receiving server saw on the connection.{rp}</p>")
