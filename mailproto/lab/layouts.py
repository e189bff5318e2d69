"""Where each state sits in the diagram: a fixed layout per known table, a fallback for others.

Positions are in inches on the 8 x 5 in canvas (the axes fill the figure, 1 unit = 1 inch), so
text sizes in points and distances agree.  A layout only places things; the states and arrows
themselves always come from the table (DESIGN.md, "one truth per protocol").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..statetable import StateTable

Point = tuple[float, float]
Pair = tuple[str, str]


@dataclass(frozen=True)
class Layout:
    positions: dict[str, Point]
    size: Point = (8.0, 5.0)
    #: state -> (side, shift along that side in inches) of its self-loop.
    loops: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: (source, target) -> arc3 "rad" of the arrow (sign: which side it bulges to).
    bends: dict[Pair, float] = field(default_factory=dict)
    #: (source, target) -> (dx, dy) added to the label's default place (the arc's middle).
    label_shift: dict[Pair, Point] = field(default_factory=dict)
    #: Draw the final state as a bar along the bottom that every state drops straight into.
    sink_bar: bool = True
    #: state -> horizontal shift of its drop line into the bar.
    drop_dx: dict[str, float] = field(default_factory=dict)
    #: state -> "left" or "right": where the drop line's label goes.
    drop_side: dict[str, str] = field(default_factory=dict)
    #: state -> where along its drop line the label sits (0: at the state, 1: at the bar).
    drop_label_at: dict[str, float] = field(default_factory=dict)
    #: state -> longest line of its drop label, in characters (default 12).
    drop_wrap: dict[str, int] = field(default_factory=dict)
    #: state -> longest line of its loop label, in characters (default: ``wrap``).
    loop_wrap: dict[str, int] = field(default_factory=dict)
    #: Left end of the status line that says why a command was refused (under the sink bar).
    why_at: Point = (0.15, 0.2)
    #: Longest label line, in characters, before wrapping.
    wrap: int = 16

    def covers(self, table: StateTable) -> bool:
        return all(s.name in self.positions for s in table.states)


SMTP = Layout(
    positions={
        "CONNECTED": (1.05, 3.85), "GREETED": (3.55, 3.85), "AUTH": (6.85, 3.85),
        "MAIL": (2.35, 2.1), "RCPT": (4.45, 2.1), "DATA": (6.55, 2.1), "CLOSED": (4.0, 0.62),
    },
    size=(8.0, 5.3),
    loops={"CONNECTED": ("top", 0.0), "GREETED": ("top", 0.0), "MAIL": ("bottom", -0.15),
           "RCPT": ("bottom", -0.1)},
    bends={("CONNECTED", "GREETED"): 0.25, ("GREETED", "CONNECTED"): 0.25,
           ("GREETED", "AUTH"): 0.15, ("AUTH", "GREETED"): 0.15,
           ("GREETED", "MAIL"): 0.3, ("MAIL", "GREETED"): 0.3,
           ("RCPT", "GREETED"): 0.2, ("DATA", "GREETED"): -0.12},
    drop_dx={"GREETED": -0.3, "AUTH": 0.12, "DATA": 0.15, "MAIL": 0.2, "RCPT": 0.2},
    drop_side={"MAIL": "left"},
    drop_label_at={"GREETED": 0.85, "MAIL": 0.75, "RCPT": 0.3},
    drop_wrap={"GREETED": 7, "MAIL": 7},
    loop_wrap={"MAIL": 9, "RCPT": 9},
    wrap=15,
)

POP3 = Layout(
    positions={"AUTHORIZATION": (1.45, 2.9), "TRANSACTION": (4.3, 2.9), "UPDATE": (6.85, 2.9),
               "CLOSED": (4.0, 0.62)},
    size=(8.0, 5.0),
    loops={"AUTHORIZATION": ("top", 0.0), "TRANSACTION": ("top", 0.0)},
    drop_side={"TRANSACTION": "left", "UPDATE": "left"},
    wrap=18,
)

LAYOUTS: dict[str, Layout] = {"SMTP": SMTP, "POP3": POP3}


def fallback_layout(table: StateTable, size: Point = (8.0, 5.0)) -> Layout:
    """States in order of distance from the initial state, in one row (two, staggered, past
    five states, so each drop line passes between the boxes below); the final state a bar."""
    final = table.final.name
    depth: dict[str, int] = {table.initial.name: 0}
    queue = deque([table.initial.name])
    while queue:
        s = queue.popleft()
        for t in table.transitions:
            if t.source.name == s and t.target.name not in depth and t.target.name != final:
                depth[t.target.name] = depth[s] + 1
                queue.append(t.target.name)
    order = sorted(depth, key=lambda n: depth[n])
    order += [s.name for s in table.states if s.name not in depth and s.name != final]
    width, height = size
    rows = [order] if len(order) <= 5 else [order[: (len(order) + 1) // 2],
                                            order[(len(order) + 1) // 2:]]
    positions: dict[str, Point] = {}
    ys = [2.9] if len(rows) == 1 else [3.7, 2.1]
    for r, (names, y) in enumerate(zip(rows, ys, strict=True)):
        step = (width - 0.8) / max(len(rows[0]), 1)
        for k, name in enumerate(names):
            positions[name] = (0.4 + step * (k + 0.5 + 0.5 * r), y)
    positions[final] = (width / 2, 0.62)
    index = {name: k for k, name in enumerate(order)}
    bends: dict[Pair, float] = {}
    for t in table.transitions:
        a, b = t.source.name, t.target.name
        if a == b or b == final:
            continue
        reverse = any(u.source.name == b and u.target.name == a for u in table.transitions)
        skip = abs(index[a] - index[b]) > 1 and positions[a][1] == positions[b][1]
        # arc3 bulges to the right of travel: forward arrows pass below, backward ones above
        bends[(a, b)] = 0.35 if skip else 0.2 if reverse else 0.0
    return Layout(positions, size, bends=bends, wrap=14)


def layout_for(table: StateTable) -> Layout:
    """The fixed layout of a known table, if it places every state; else the fallback."""
    layout = LAYOUTS.get(table.name)
    if layout is not None and layout.covers(table):
        return layout
    return fallback_layout(table)
