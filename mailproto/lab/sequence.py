"""A session as a sequence diagram: arrows between parties over time, with protocol meaning.

Like Wireshark's flow graph, but each arrow carries the command or reply as the student typed or
read it, and the server's state is written beside it.  Several hops can share one picture
(client → submission server, POP3 client → server ...): pass ``[(transcript, (from, to)), ...]``;
steps are merged by their recorded time.  matplotlib, deterministic SVG (see
:func:`~mailproto.lab.diagram.figure_to_svg`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from ..transcript import CLIENT, EVENT, SERVER, Step, Transcript
from . import palette
from .annotate import visible
from .statepath import is_negative

Hop = tuple[Transcript, tuple[str, str]]
_ROW = 0.3  # inches per message
_TOP = 0.75  # room for the party boxes
_STATE_W = 1.25  # the state column on the right


@dataclass(frozen=True)
class _Row:
    hop: int
    index: int
    step: Step
    src: str
    dst: str


def _label(step: Step, width: int) -> str:
    """The first line as sent, made visible, with a hint of what is folded; at most ``width``
    characters."""
    lines = step.raw.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if step.kind == "data" and len(lines) > 1:  # a whole message; one typed line: as is
        return f"[message: {max(len(lines) - 1, 0)} lines, then '.']"
    text = visible(lines[0] if lines else b"")
    body = len(lines) - 1 - (1 if len(lines) > 1 and lines[-1] == b"." else 0)  # POP3's "."
    more = f" (+{body} lines)" if body > 0 else ""
    room = max(width - len(more), 8)
    if len(text) > room:
        text = text[: room - 1] + "…"
    return text + more


def _rows(hops: Sequence[Hop], upto: int | None) -> list[_Row]:
    rows = []
    for h, (transcript, (client, server)) in enumerate(hops):
        steps = transcript.steps if upto is None else transcript.steps[:upto]
        for i, step in enumerate(steps):
            src, dst = (client, server) if step.direction == CLIENT else (server, client)
            rows.append(_Row(h, i, step, src, dst))
    # Merge hops by time; within one hop keep the recorded order.
    rows.sort(key=lambda r: (r.step.time, r.hop, r.index))
    return rows


def draw_sequence(hops: Sequence[Hop] | Transcript, *, names: tuple[str, str] = ("client",
                  "server"), upto: int | None = None, width: float = 8.0,
                  label_chars: int = 72) -> Figure:
    """Draw the sequence diagram of one transcript or several hops and return the figure.

    Each message arrow has the gid ``msg:HOP:INDEX`` (its step), so a test can find it.
    """
    if isinstance(hops, Transcript):
        hops = [(hops, names)]
    parties: list[str] = []
    for _, pair in hops:
        for p in pair:
            if p not in parties:
                parties.append(p)
    rows = _rows(hops, upto)
    height = _TOP + _ROW * (len(rows) + 1) + 0.2
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    span = width - _STATE_W - 0.4
    xs = {p: 0.3 + span * (k + 0.5) / len(parties) for k, p in enumerate(parties)}
    bottom = 0.15
    for p, x in xs.items():
        ax.text(x, height - 0.3, p, ha="center", va="center", fontsize=9, fontweight="bold",
                gid=f"party:{p}", bbox={"boxstyle": "round,pad=0.35", "fc": "#F2F2F2",
                                        "ec": palette.NODE_EDGE})
        ax.plot([x, x], [height - 0.5, bottom], color="#B0B0B0", lw=1.0, ls=(0, (3, 3)),
                zorder=1)
    ax.text(width - _STATE_W + 0.05, height - 0.3, "server state", fontsize=8,
            color=palette.MUTED, ha="left", va="center")
    last_state: dict[int, str] = {}
    for k, row in enumerate(rows):
        y = height - _TOP - _ROW * (k + 0.5)
        step = row.step
        if step.direction == EVENT:
            left, right = sorted((xs[hops[row.hop][1][0]], xs[hops[row.hop][1][1]]))
            ax.plot([left - 0.2, right + 0.2], [y, y], color=palette.EVENT, lw=1.5,
                    ls=(0, (5, 3)), gid=f"msg:{row.hop}:{row.index}")
            ax.text((left + right) / 2, y + 0.02, visible(step.raw), ha="center", va="bottom",
                    fontsize=7.5, color=palette.EVENT, fontweight="bold")
            continue
        x1, x2 = xs[row.src], xs[row.dst]
        colour = palette.CLIENT if step.direction == CLIENT else palette.SERVER
        refused = step.direction == SERVER and is_negative(step)
        arrow = FancyArrowPatch((x1, y), (x2, y), arrowstyle="-|>", mutation_scale=9,
                                color=colour, lw=1.1, shrinkA=0, shrinkB=0,
                                gid=f"msg:{row.hop}:{row.index}")
        ax.add_patch(arrow)
        # as many characters as fit between the two lifelines (7 pt DejaVu Sans Mono)
        fits = int(abs(x2 - x1) / (1233 / 2048 * 7 / 72)) - 4
        mark = "✗ " if refused else ""
        text = mark + _label(step, min(label_chars, fits) - len(mark))
        ax.text((x1 + x2) / 2, y + 0.025, text, ha="center", va="bottom", fontsize=7,
                family="DejaVu Sans Mono", color=palette.VERMILLION if refused else colour)
        if step.direction == SERVER:
            changed = last_state.get(row.hop) != step.state_after
            last_state[row.hop] = step.state_after
            ax.text(width - _STATE_W + 0.05, y, step.state_after, fontsize=7.5, va="center",
                    ha="left", color=palette.BLACK if changed else palette.MUTED,
                    fontweight="bold" if changed else "normal",
                    gid=f"state:{row.hop}:{row.index}")
    for artist in (*ax.patches, *ax.texts, *ax.lines):
        artist.set_clip_on(False)
    return fig
