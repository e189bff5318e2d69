"""A protocol's state diagram, drawn from its :class:`~mailproto.statetable.StateTable`.

Nothing is drawn by hand: every state of the table is a box and every row
``(source, event, target)`` is an arrow whose label holds the event, one text artist per row with
the gid ``edge:SOURCE:EVENT:TARGET``, so a test can hold the picture against the table.  Rows
between the same two states share one arrow (gid ``arrow:SOURCE:TARGET``); rows that loop back
share one loop and one label per state.  The final state is a bar along the bottom that each
state drops into: QUIT and timeouts reach it from everywhere, and ten diagonals would hide the
rest.

Colours are Okabe-Ito and never the only cue: the current state has a thick border, the last
transition a thick arrow and a bold label, a refusal a ``✗`` at its state and the server's reason.

The picture is built once per table; a moment of a session only restyles artists
(:meth:`_Drawing.apply`), and :class:`mailproto.lab.svgparts.DiagramRenderer` goes further for
the stepper: it exports each artist's few looks once and assembles the SVG of a moment from
them.  SVG output is deterministic (:func:`figure_to_svg`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.text import Text
from matplotlib.textpath import TextPath

from ..statetable import StateTable, Transition
from ..transcript import Transcript
from . import palette
from .layouts import Layout, Pair, layout_for
from .statepath import Move, Rejection, StatePath, state_path, table_for

__all__ = ["StatePath", "diagram_for_transcript", "draw_state_diagram", "figure_to_png",
           "figure_to_svg", "path_moment", "state_path"]

#: rcParams that make SVG output byte-for-byte repeatable (JUPYTER-TESTING.md).  Text stays
#: text (``fonttype: none``): smaller, searchable, and the same glyphs need no shared <defs>.
SVG_RC: dict[str, Any] = {"svg.hashsalt": "mailproto", "svg.fonttype": "none",
                          "svg.id": "mailproto-diagram"}
_FONT_FALLBACKS = {
    "font-family: 'DejaVu Sans Mono'":
        "font-family: 'DejaVu Sans Mono', Menlo, Consolas, 'Liberation Mono', monospace",
    "font-family: 'DejaVu Sans'":
        "font-family: 'DejaVu Sans', Verdana, 'Liberation Sans', Arial, sans-serif",
}
_MONO = FontProperties(family="DejaVu Sans Mono", size=7.5)
_BOLD = FontProperties(family="DejaVu Sans", weight="bold", size=9)
#: DejaVu Sans Mono advances 1233/2048 em per character: labels are laid out event by event.
_CW = 1233 / 2048 * 7.5 / 72
_LH = 7.5 * 1.4 / 72
_NODE_H = 0.36
_LOOP_HALF = 0.16  # half the distance between a loop's two feet, inches
_LOOP_RAD = -1.9
_WORD_BOX = {"boxstyle": "square,pad=0.3", "fc": "white", "ec": "none", "alpha": 0.9}

Key = tuple[str, str, str]

# Looks an artist can take; the renderer exports each once.
NODE, VISITED, CURRENT = "node", "visited", "current"
PLAIN, FAINT, LAST = "plain", "faint", "last"


def _name(state: Enum | str | None) -> str | None:
    if state is None:
        return None
    return state.name if isinstance(state, Enum) else str(state)


def _is_verb(event: str) -> bool:
    return event.isalpha() and event.isupper()


def _wrap(events: list[str], width: int) -> list[list[str]]:
    """Group events into lines of at most ``width`` characters (an event is never split)."""
    lines: list[list[str]] = [[]]
    used = 0
    for ev in events:
        need = len(ev) + (1 if lines[-1] else 0)
        if lines[-1] and used + need > width:
            lines.append([])
            used, need = 0, len(ev)
        lines[-1].append(ev)
        used += need
    return lines


def _fill(text: str, width: int, max_lines: int = 3) -> str:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1] + "…"
    return "\n".join(lines)


def _name_bbox(text: Text, gid: str) -> None:
    """Give a text's background box a fixed SVG id (else it gets a counter that shifts)."""
    patch = text.get_bbox_patch()
    if patch is not None:
        patch.set_gid(gid)


def _clip_arc(p0: tuple[float, float], p2: tuple[float, float], rad: float,
              box_a: FancyBboxPatch, box_b: FancyBboxPatch, gap: float = 0.03
              ) -> tuple[tuple[float, float], tuple[float, float], float]:
    """The part of an arc3 curve between two boxes: new ends and the rad that keeps its shape.

    Done once, by bisection on the quadratic Bézier, instead of matplotlib clipping the arrow
    against the patches at every draw (which cost most of the drawing time).
    """
    (x0, y0), (x2, y2) = p0, p2
    cx, cy = (x0 + x2) / 2 + rad * (y2 - y0), (y0 + y2) / 2 - rad * (x2 - x0)

    def at(t: float) -> tuple[float, float]:
        u = 1 - t
        return (u * u * x0 + 2 * u * t * cx + t * t * x2, u * u * y0 + 2 * u * t * cy + t * t * y2)

    def inside(box: FancyBboxPatch, pt: tuple[float, float]) -> bool:
        return (box.get_x() - gap <= pt[0] <= box.get_x() + box.get_width() + gap
                and box.get_y() - gap <= pt[1] <= box.get_y() + box.get_height() + gap)

    def crossing(box: FancyBboxPatch, lo: float, hi: float, leaving: bool) -> float:
        for _ in range(40):
            mid = (lo + hi) / 2
            if inside(box, at(mid)) == leaving:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    t1 = crossing(box_a, 0.0, 1.0, leaving=True)
    t2 = crossing(box_b, t1, 1.0, leaving=False)
    # The control point of the sub-curve [t1, t2] is the Bézier's blossom at (t1, t2).
    u1, u2 = 1 - t1, 1 - t2
    bx = u1 * u2 * x0 + (u1 * t2 + t1 * u2) * cx + t1 * t2 * x2
    by = u1 * u2 * y0 + (u1 * t2 + t1 * u2) * cy + t1 * t2 * y2
    (ax_, ay_), (ex, ey) = at(t1), at(t2)
    dx, dy = ex - ax_, ey - ay_
    chord = dx * dx + dy * dy
    new_rad = ((bx - (ax_ + ex) / 2) * dy - (by - (ay_ + ey) / 2) * dx) / chord if chord else 0.0
    return (ax_, ay_), (ex, ey), new_rad


@dataclass
class _Drawing:
    """The static diagram of one table, and handles on its artists for restyling."""

    table: StateTable
    layout: Layout
    fig: Figure
    ax: Any
    nodes: dict[str, FancyBboxPatch] = field(default_factory=dict)
    arrows: dict[Pair, FancyArrowPatch] = field(default_factory=dict)
    words: dict[Key, Text] = field(default_factory=dict)
    faint: set[Key] = field(default_factory=set)
    why: Text | None = None
    mark: Text | None = None

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(cls, table: StateTable, layout: Layout | None = None, ax: Any = None
              ) -> _Drawing:
        layout = layout or layout_for(table)
        w, h = layout.size
        if ax is None:
            fig = Figure(figsize=(w, h))
            FigureCanvasAgg(fig)
            ax = fig.add_axes((0, 0, 1, 1))
        else:
            fig = ax.figure
        ax.set_xlim(0, w)
        ax.set_ylim(0, h)
        ax.set_aspect("equal")
        ax.set_axis_off()
        d = cls(table, layout, fig, ax)
        d._nodes()
        d._edges()
        d._chrome()
        for artist in (*ax.patches, *ax.texts, *ax.lines):
            artist.set_clip_on(False)  # no clip paths: nothing in <defs> to keep in step
        d.apply()
        return d

    def _sink(self, name: str) -> bool:
        return self.layout.sink_bar and name == self.table.final.name

    def _nodes(self) -> None:
        w, _ = self.layout.size
        for state in self.table.states:
            name = state.name
            x, y = self.layout.positions[name]
            if self._sink(name):
                bw, bh, x = w - 0.7, 0.3, w / 2
            else:
                bw = TextPath((0, 0), name, prop=_BOLD).get_extents().width / 72 + 0.3
                bh = _NODE_H
            box = FancyBboxPatch((x - bw / 2, y - bh / 2), bw, bh, zorder=3,
                                 boxstyle="round,pad=0,rounding_size=0.1", gid=f"state:{name}")
            self.ax.add_patch(box)
            self.nodes[name] = box
            if name == self.table.final.name:  # a double border marks the final state
                pad = 0.05
                self.ax.add_patch(FancyBboxPatch(
                    (x - bw / 2 - pad, y - bh / 2 - pad), bw + 2 * pad, bh + 2 * pad,
                    boxstyle="round,pad=0,rounding_size=0.13", fill=False, lw=1.0,
                    ec=palette.NODE_EDGE, zorder=3, gid=f"final:{name}"))
            label_x = x - bw / 2 + 0.6 if self._sink(name) else x
            self.ax.text(label_x, y, name, fontproperties=_BOLD, ha="center", va="center",
                         zorder=4, gid=f"state-label:{name}")
        # the initial state: a dot and an arrow into it, as in UML
        box = self.nodes[self.table.initial.name]
        x0, y0 = box.get_x(), box.get_y() + box.get_height() / 2
        self.ax.plot([x0 - 0.3], [y0], "o", ms=6, color=palette.BLACK, zorder=3, gid="start")
        self.ax.add_patch(FancyArrowPatch((x0 - 0.3, y0), (x0, y0), arrowstyle="-|>",
                                          mutation_scale=9, color=palette.BLACK, lw=1.0,
                                          shrinkA=3, shrinkB=0, zorder=3, gid="start-arrow"))

    def _edges(self) -> None:
        groups: dict[Pair, list[Transition]] = {}
        for t in self.table.transitions:
            groups.setdefault((t.source.name, t.target.name), []).append(t)
        final = self.table.final.name
        leaves = {t.source.name for t in self.table.transitions
                  if t.target.name not in (t.source.name, final)}
        for (a, b), rows in groups.items():
            events = [t.event for t in rows]
            # A pseudo-event into the final state (a timeout) is drawn lighter when the state
            # has another way on: it is not something the student does.  UPDATE's only way out
            # stays solid.
            self.faint.update((a, t.event, b) for t in rows if not _is_verb(t.event) and
                              b == final and a in leaves)
            if a == b:
                self._loop(a, events)
            elif self._sink(b):
                self._drop(a, b, events)
            else:
                self._arrow(a, b, events)

    def _add_arrow(self, pair: Pair, start: tuple[float, float], end: tuple[float, float],
                   rad: float) -> None:
        arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10,
                                connectionstyle=f"arc3,rad={rad:.4f}", shrinkA=0, shrinkB=0,
                                zorder=2, gid=f"arrow:{pair[0]}:{pair[1]}")
        self.ax.add_patch(arrow)
        self.arrows[pair] = arrow

    def _arrow(self, a: str, b: str, events: list[str]) -> None:
        (x1, y1), (x2, y2) = self.layout.positions[a], self.layout.positions[b]
        rad = self.layout.bends.get((a, b), 0.0)
        start, end, clipped_rad = _clip_arc((x1, y1), (x2, y2), rad, self.nodes[a],
                                            self.nodes[b])
        self._add_arrow((a, b), start, end, clipped_rad)
        # the middle of the arc3 curve: the chord's middle, pushed rad/2 along its normal
        mx = (x1 + x2) / 2 + 0.5 * rad * (y2 - y1)
        my = (y1 + y2) / 2 - 0.5 * rad * (x2 - x1)
        dx, dy = self.layout.label_shift.get((a, b), (0.0, 0.0))
        self._label(a, b, events, mx + dx, my + dy, "center", "center")

    def _drop(self, a: str, b: str, events: list[str]) -> None:
        box, bar = self.nodes[a], self.nodes[b]
        x = self.layout.positions[a][0] + self.layout.drop_dx.get(a, 0.0)
        top, y1 = bar.get_y() + bar.get_height(), box.get_y()
        self._add_arrow((a, b), (x, y1), (x, top + 0.03), 0.0)
        side = self.layout.drop_side.get(a, "right")
        lx = x + (0.08 if side == "right" else -0.08)
        at = self.layout.drop_label_at.get(a, 0.5)
        self._label(a, b, events, lx, y1 + (top - y1) * at,
                    "left" if side == "right" else "right", "center",
                    width=self.layout.drop_wrap.get(a, 12))

    def _loop(self, s: str, events: list[str]) -> None:
        side, shift = self.layout.loops.get(s, ("top", 0.0))
        box = self.nodes[s]
        cx, cy = box.get_x() + box.get_width() / 2, box.get_y() + box.get_height() / 2
        nx, ny = {"top": (0, 1), "bottom": (0, -1), "left": (-1, 0), "right": (1, 0)}[side]
        tx, ty = ny, -nx  # along the side: the outward normal turned clockwise
        if side in ("top", "bottom"):
            px, py = cx + shift, cy + ny * box.get_height() / 2
        else:
            px, py = cx + nx * box.get_width() / 2, cy + shift
        start = (px - tx * _LOOP_HALF, py - ty * _LOOP_HALF)
        end = (px + tx * _LOOP_HALF, py + ty * _LOOP_HALF)
        self._add_arrow((s, s), start, end, _LOOP_RAD)
        reach = 0.5 * abs(_LOOP_RAD) * 2 * _LOOP_HALF + 0.07
        ha = {"left": "right", "right": "left"}.get(side, "center")
        va = {"top": "bottom", "bottom": "top"}.get(side, "center")
        self._label(s, s, events, px + nx * reach, py + ny * reach, ha, va,
                    width=self.layout.loop_wrap.get(s))

    def _label(self, a: str, b: str, events: list[str], x: float, y: float, ha: str, va: str,
               width: int | None = None) -> None:
        lines = _wrap(events, width or self.layout.wrap)
        height = len(lines) * _LH
        top = {"center": y + height / 2, "bottom": y + height, "top": y}[va]
        for k, line in enumerate(lines):
            line_w = (sum(len(e) for e in line) + len(line) - 1) * _CW
            left = {"center": x - line_w / 2, "left": x, "right": x - line_w}[ha]
            ly = top - (k + 0.5) * _LH
            for ev in line:
                text = self.ax.text(left, ly, ev, fontproperties=_MONO, ha="left", va="center",
                                    zorder=5, gid=f"edge:{a}:{ev}:{b}", bbox=_WORD_BOX)
                _name_bbox(text, f"edge-bg:{a}:{ev}:{b}")
                self.words[(a, ev, b)] = text
                left += (len(ev) + 1) * _CW

    def _chrome(self) -> None:
        w, h = self.layout.size
        self.ax.text(0.12, h - 0.12, f"{self.table.name}: {len(self.table.states)} states, "
                     f"{len(self.table.transitions)} transitions, drawn from its state table",
                     fontsize=8, color=palette.MUTED, ha="left", va="top", gid="title")
        self.ax.text(w - 0.12, h - 0.12, "thick border: current state · shaded: visited\n"
                     "thick blue arrow, bold label: last step · ✗: refused", fontsize=7,
                     color=palette.MUTED, ha="right", va="top", gid="legend", linespacing=1.3)
        wx, wy = self.layout.why_at
        self.why = self.ax.text(wx, wy, "", fontsize=8, color=palette.REJECTED, zorder=7,
                                ha="left", va="center", gid="rejected-why", visible=False,
                                linespacing=1.3,
                                bbox={"boxstyle": "round,pad=0.35", "fc": "white",
                                      "ec": palette.REJECTED, "lw": 1.2})
        _name_bbox(self.why, "rejected-why-bg")
        self.mark = self.ax.text(0, 0, "✗", fontsize=12, fontweight="bold", zorder=7,
                                 color=palette.REJECTED, ha="center", va="center",
                                 gid="rejected-mark", visible=False,
                                 bbox={"boxstyle": "circle,pad=0.1", "fc": "white",
                                       "ec": palette.REJECTED, "lw": 1.2})
        _name_bbox(self.mark, "rejected-mark-bg")

    # -- looks --------------------------------------------------------------------------------
    def looks(self, current: str | None = None, visited: Iterable[str] = (),
              last: Key | None = None) -> dict[str, str]:
        """gid -> look, for every artist that changes with the moment (pure)."""
        seen = set(visited)
        out: dict[str, str] = {}
        for name in self.nodes:
            out[f"state:{name}"] = (CURRENT if name == current else
                                    VISITED if name in seen else NODE)
        last_pair = (last[0], last[2]) if last else None
        for pair in self.arrows:
            faint = all(k in self.faint for k in self.words if (k[0], k[2]) == pair)
            out[f"arrow:{pair[0]}:{pair[1]}"] = (LAST if pair == last_pair else
                                                 FAINT if faint else PLAIN)
        for key in self.words:
            out[f"edge:{key[0]}:{key[1]}:{key[2]}"] = (LAST if key == last else
                                                       FAINT if key in self.faint else PLAIN)
        return out

    def set_looks(self, looks: dict[str, str]) -> None:
        for name, box in self.nodes.items():
            look = looks.get(f"state:{name}", NODE)
            if look == CURRENT:
                box.set(fc=palette.CURRENT_FILL, ec=palette.BLACK, lw=3.0)
            else:
                box.set(fc=palette.VISITED_FILL if look == VISITED else palette.NODE_FILL,
                        ec=palette.NODE_EDGE, lw=1.2)
        for (a, b), arrow in self.arrows.items():
            look = looks.get(f"arrow:{a}:{b}", PLAIN)
            if look == LAST:
                arrow.set(color=palette.LAST_EDGE, lw=2.6, ls="-")
            elif look == FAINT:
                arrow.set(color=palette.FAINT_EDGE, lw=0.9, ls=(0, (4, 3)))
            else:
                arrow.set(color=palette.NODE_EDGE, lw=1.1, ls="-")
        for (a, ev, b), text in self.words.items():
            look = looks.get(f"edge:{a}:{ev}:{b}", PLAIN)
            text.set(color={LAST: palette.LAST_EDGE, FAINT: palette.FAINT_EDGE}.get(
                look, "#262626"), fontweight="bold" if look == LAST else "normal")

    def set_rejected(self, rejected: tuple[str, str] | None) -> None:
        assert self.why is not None and self.mark is not None
        if rejected and rejected[0] in self.nodes:
            state, why = rejected
            box = self.nodes[state]
            self.mark.set(x=box.get_x() + box.get_width(), y=box.get_y() + box.get_height(),
                          visible=True)
            self.why.set(text=_fill(f"✗ at {state}: {why}", 110, max_lines=1), visible=True)
        else:
            self.mark.set(visible=False)
            self.why.set(visible=False)

    def apply(self, current: str | None = None, visited: Iterable[str] = (),
              last: Key | None = None, rejected: tuple[str, str] | None = None) -> None:
        """Restyle for a moment of the session (no artist is added or removed)."""
        self.set_looks(self.looks(current, visited, last))
        self.set_rejected(rejected)


# -- arguments in any of their forms ---------------------------------------------------------------
LastArg = Move | Transition | tuple[Any, str, Any] | None
RejectedArg = Rejection | tuple[Any, ...] | None


def last_key(last: LastArg) -> Key | None:
    """``(source, event, target)`` names from a Move, a Transition or a tuple."""
    if last is None:
        return None
    if isinstance(last, Move):
        return last.key
    if isinstance(last, Transition):
        return (last.source.name, last.event, last.target.name)
    src, event, dst = last
    return (_name(src) or "", event, _name(dst) or "")


def rejected_pair(rejected: RejectedArg) -> tuple[str, str] | None:
    """``(state, why)`` from a Rejection or a ``(state, event, why...)`` tuple."""
    if rejected is None:
        return None
    if isinstance(rejected, Rejection):
        return (rejected.state, rejected.label)
    state, *rest = rejected
    return (_name(state) or "", " ".join(str(r) for r in rest if r))


def moment(current: Enum | str | None = None, visited: Iterable[Enum | str] = (),
           last: LastArg = None, rejected: RejectedArg = None
           ) -> tuple[str | None, frozenset[str], Key | None, tuple[str, str] | None]:
    """The arguments of a diagram, normalised to names (hashable: a cache key)."""
    names = frozenset(n for n in (_name(v) for v in visited) if n)
    return (_name(current), names, last_key(last), rejected_pair(rejected))


# -- public API ----------------------------------------------------------------------------------
def draw_state_diagram(table: StateTable, *, current: Enum | str | None = None,
                       visited: Iterable[Enum | str] = (), last: LastArg = None,
                       rejected: RejectedArg = None, ax: Any = None) -> Figure:
    """Draw ``table``'s diagram (a new 8 x 5 in figure, or into ``ax``) and return the figure.

    ``last`` is the transition just taken (``(source, event, target)``, a Transition or a Move);
    ``rejected`` is ``(state, event, why)`` or a :class:`Rejection`: shown at its state.
    """
    d = _Drawing.build(table, ax=ax)
    d.apply(*moment(current, visited, last, rejected))
    return d.fig


def figure_to_svg(fig: Figure) -> str:
    """SVG text, identical for identical figures: fixed hash salt and ids, no date."""
    buf = io.StringIO()
    # svg.id is newer than matplotlib 3.7: set only what this matplotlib knows.
    rc = {k: v for k, v in SVG_RC.items() if k in matplotlib.rcParams}
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    for family, with_fallbacks in _FONT_FALLBACKS.items():
        svg = svg.replace(family + ";", with_fallbacks + ";")
    return svg


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes with no software or date stamp."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def path_moment(path: StatePath) -> dict[str, Any]:
    """Keyword arguments of :func:`draw_state_diagram` for a moment of a session."""
    return {"current": path.current, "visited": path.visited, "last": path.last_move,
            "rejected": path.last_rejection()}


def diagram_for_transcript(transcript: Transcript, table: StateTable | None = None,
                           upto: int | None = None) -> Figure:
    """The diagram at step ``upto`` of a recorded session."""
    table = table or table_for(transcript.protocol)
    if table is None:
        raise ValueError(f"no state table for protocol {transcript.protocol!r}")
    path = state_path(transcript, table, upto)
    return draw_state_diagram(table, **path_moment(path))
