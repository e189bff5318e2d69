"""Fast SVG for the stepper: export each artist's looks once, then assemble moments by joining.

A matplotlib SVG export of the diagram takes about 0.1-0.2 s here, too slow for a step (the bench
wants < 50 ms).  But between two moments only looks change: a state is plain, visited or current;
an arrow or label is plain (or faint) or "last".  So :class:`SvgParts` exports the figure three
times (all plain, all visited, all current/last), cuts each export at the ``<g id="gid">`` group
of every artist, and renders a moment by picking, for each artist, the group from the export
that has its look.  The refusal call-out, whose text varies, is exported alone once per text.

The result is byte-for-byte what :func:`~mailproto.lab.diagram.figure_to_svg` gives for the
figure styled the same way (a test holds them together), so it stays deterministic.
"""

from __future__ import annotations

import re
from enum import Enum
from html import unescape
from typing import Any

from ..statetable import StateTable
from .diagram import (
    CURRENT,
    LAST,
    NODE,
    VISITED,
    Key,
    _Drawing,
    figure_to_png,
    figure_to_svg,
    moment,
    path_moment,
)
from .layouts import Layout
from .statepath import StatePath

_GROUP_OPEN = re.compile(r'<g id="([^"]*)">')
_GROUP_TOKEN = re.compile(r"<g[ >]|</g>")
_CALLOUT = ("rejected-why", "rejected-mark")


def group_spans(svg: str, wanted: set[str] | None = None) -> dict[str, tuple[int, int]]:
    """gid -> (start, end) of its ``<g id=...>...</g>`` element in ``svg``."""
    spans: dict[str, tuple[int, int]] = {}
    for m in _GROUP_OPEN.finditer(svg):
        gid = unescape(m.group(1))
        if wanted is not None and gid not in wanted:
            continue
        depth = 1
        for tok in _GROUP_TOKEN.finditer(svg, m.end()):
            depth += -1 if tok.group(0) == "</g>" else 1
            if depth == 0:
                spans[gid] = (m.start(), tok.end())
                break
    return spans


class SvgParts:
    """The exports of one drawing, cut into per-artist groups (see the module docstring)."""

    def __init__(self, drawing: _Drawing) -> None:
        self._d = drawing
        base = drawing.looks()
        nodes = [g for g in base if g.startswith("state:")]
        drawing.set_rejected(None)
        exports = {}
        for name, looks in (("plain", base),
                            ("visited", {**base, **{g: VISITED for g in nodes}}),
                            ("hot", {g: CURRENT if g in nodes else LAST for g in base})):
            drawing.set_looks(looks)
            exports[name] = figure_to_svg(drawing.fig)
        drawing.set_looks(base)
        wanted = set(base)
        cut = {name: group_spans(svg, wanted) for name, svg in exports.items()}
        self._groups: dict[str, dict[str, str]] = {}
        for gid in base:
            plain = exports["plain"][slice(*cut["plain"][gid])]
            hot = exports["hot"][slice(*cut["hot"][gid])]
            if gid in nodes:
                visited = exports["visited"][slice(*cut["visited"][gid])]
                self._groups[gid] = {NODE: plain, VISITED: visited, CURRENT: hot}
            else:
                self._groups[gid] = {"*": plain, LAST: hot}  # plain or faint: as exported
        self._plain_looks = base
        # The template: the plain export with a hole for each artist and one for the call-out,
        # which goes last in the axes group, where matplotlib draws it (highest zorder).
        svg = exports["plain"]
        axes = group_spans(svg, {"axes_1"})["axes_1"]
        close = svg.rindex("\n", axes[0], svg.rindex("</g>", axes[0], axes[1])) + 1
        holes = sorted((span, gid) for gid, span in cut["plain"].items())
        self._template: list[str] = []
        self._slots: list[str | None] = []  # gid per hole; None: the call-out
        pos = 0
        for (start, end), gid in holes:
            self._template.append(svg[pos:start])
            self._slots.append(gid)
            pos = end
        self._template.append(svg[pos:close])
        self._slots.append(None)
        self._template.append(svg[close:])
        self._callouts: dict[tuple[str, str], str] = {}

    def _callout(self, rejected: tuple[str, str]) -> str:
        """The call-out's groups for one refusal, exported alone (cached per text)."""
        cached = self._callouts.get(rejected)
        if cached is not None:
            return cached
        d = self._d
        others = [a for a in (*d.ax.patches, *d.ax.texts, *d.ax.lines)
                  if a.get_gid() not in _CALLOUT]
        shown = [a.get_visible() for a in others]
        for a in others:
            a.set_visible(False)
        d.set_rejected(rejected)
        try:
            svg = figure_to_svg(d.fig)
        finally:
            for a, vis in zip(others, shown, strict=True):
                a.set_visible(vis)
            d.set_rejected(None)
        spans = group_spans(svg, set(_CALLOUT))
        parts = []
        for gid in _CALLOUT:
            start, end = spans[gid]
            indent = svg[svg.rindex("\n", 0, start) + 1:start]
            parts.append(f"{indent}{svg[start:end]}\n")
        text = self._callouts[rejected] = "".join(parts)
        return text

    def render(self, current: str | None, visited: frozenset[str], last: Key | None,
               rejected: tuple[str, str] | None) -> str:
        looks = self._d.looks(current, visited, last)
        out: list[str] = []
        for text, gid in zip(self._template, self._slots, strict=False):
            out.append(text)
            if gid is None:
                if rejected and rejected[0] in self._d.nodes:
                    out.append(self._callout(rejected))
            else:
                group = self._groups[gid]
                out.append(group.get(looks[gid]) or group["*"])
        out.append(self._template[-1])
        return "".join(out)


class DiagramRenderer:
    """One table's diagram, built once and rendered for many moments (the stepper's engine).

    :meth:`svg` assembles a moment from pre-exported parts: a step costs string joins, not a
    matplotlib export.  :meth:`figure` and :meth:`png` restyle the real figure instead.
    """

    def __init__(self, table: StateTable, layout: Layout | None = None) -> None:
        self.table = table
        self.drawing = _Drawing.build(table, layout)
        self._parts: SvgParts | None = None

    def figure(self, current: Enum | str | None = None, visited: Any = (), last: Any = None,
               rejected: Any = None) -> Any:
        """The renderer's own figure, styled for a moment (shared: do not keep it)."""
        self.drawing.apply(*moment(current, visited, last, rejected))
        return self.drawing.fig

    def svg(self, current: Enum | str | None = None, visited: Any = (), last: Any = None,
            rejected: Any = None) -> str:
        if self._parts is None:
            self._parts = SvgParts(self.drawing)
        return self._parts.render(*moment(current, visited, last, rejected))

    def png(self, **kwargs: Any) -> bytes:
        return figure_to_png(self.figure(**kwargs))

    def svg_for_path(self, path: StatePath) -> str:
        return self.svg(**path_moment(path))
