"""The state diagram: drawn from the table (exactly its states and rows), deterministic SVG."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import pytest

from mailproto.lab import palette
from mailproto.lab.diagram import (
    diagram_for_transcript,
    draw_state_diagram,
    figure_to_png,
    figure_to_svg,
)
from mailproto.lab.layouts import LAYOUTS, layout_for
from mailproto.lab.svgparts import DiagramRenderer, group_spans
from mailproto.pop3.states import TABLE as POP3
from mailproto.smtp.states import TABLE as SMTP
from mailproto.smtp.states import State as SmtpState
from mailproto.statetable import StateTable, Transition

from ._sessions import smtp_transcript


def drawn(fig) -> tuple[set[str], set[tuple[str, str, str]]]:  # type: ignore[no-untyped-def]
    """The states and transitions a figure shows, read from its artists' gids."""
    ax = fig.axes[0]
    gids = [a.get_gid() for a in (*ax.patches, *ax.texts) if a.get_gid()]
    states = {g.split(":", 1)[1] for g in gids if g.startswith("state:")}
    edges = set()
    for g in gids:
        if g.startswith("edge:"):
            _, src, rest = g.split(":", 2)
            event, dst = rest.rsplit(":", 1)
            edges.add((src, event, dst))
    return states, edges


def rows(table: StateTable) -> set[tuple[str, str, str]]:
    return {(t.source.name, t.event, t.target.name) for t in table.transitions}


@pytest.mark.parametrize("table", [SMTP, POP3], ids=["smtp", "pop3"])
def test_diagram_shows_exactly_the_table(table: StateTable) -> None:
    assert layout_for(table) is LAYOUTS[table.name]  # the fixed layout covers every state
    states, edges = drawn(draw_state_diagram(table))
    assert states == {s.name for s in table.states}
    assert edges == rows(table)


def test_a_new_row_appears_in_the_picture() -> None:
    extra = Transition(SmtpState.DATA, "BDAT", SmtpState.DATA, "chunk", "RFC 3030")
    table = StateTable("SMTP", SmtpState, SmtpState.CONNECTED, SmtpState.CLOSED,
                       [*SMTP.transitions, extra])
    _, edges = drawn(draw_state_diagram(table))
    assert ("DATA", "BDAT", "DATA") in edges
    assert edges == rows(table)


def test_unknown_table_gets_the_fallback_layout() -> None:
    class Toy(Enum):
        IDLE = 1
        BUSY = 2
        DONE = 3
        ORPHAN = 4

    table = StateTable("TOY", Toy, Toy.IDLE, Toy.DONE, [
        Transition(Toy.IDLE, "GO", Toy.BUSY), Transition(Toy.BUSY, "STOP", Toy.IDLE),
        Transition(Toy.BUSY, "PING", Toy.BUSY), Transition(Toy.BUSY, "QUIT", Toy.DONE),
        Transition(Toy.IDLE, "timeout", Toy.DONE)])
    fig = draw_state_diagram(table, current="BUSY", last=("IDLE", "GO", "BUSY"))
    states, edges = drawn(fig)
    assert states == {"IDLE", "BUSY", "DONE", "ORPHAN"} and edges == rows(table)
    assert figure_to_png(fig).startswith(b"\x89PNG")


def _group(svg: str, gid: str) -> str:
    start, end = group_spans(svg, {gid})[gid]
    return svg[start:end]


def test_current_state_last_move_and_refusal_are_marked() -> None:
    fig = draw_state_diagram(SMTP, current=SmtpState.MAIL, visited=["CONNECTED", "GREETED"],
                             last=("GREETED", "MAIL", "MAIL"),
                             rejected=("MAIL", "AUTH", "503 not during a transaction"))
    svg = figure_to_svg(fig)
    current = palette.CURRENT_FILL.lower()
    assert f"fill: {current}" in _group(svg, "state:MAIL")
    assert "stroke-width: 3" in _group(svg, "state:MAIL")  # a thick border, not colour alone
    assert f"fill: {palette.VISITED_FILL.lower()}" in _group(svg, "state:GREETED")
    assert f"fill: {current}" not in _group(svg, "state:GREETED")
    assert palette.LAST_EDGE.lower() in _group(svg, "arrow:GREETED:MAIL")
    assert "font-weight: 700" in _group(svg, "edge:GREETED:MAIL:MAIL")
    why = _group(svg, "rejected-why")
    assert "✗ at MAIL: AUTH 503 not during a transaction" in why
    assert "rejected-mark" in svg


def test_svg_is_deterministic() -> None:
    kw = {"current": "RCPT", "visited": ["GREETED", "MAIL"], "last": ("MAIL", "RCPT", "RCPT")}
    one = figure_to_svg(draw_state_diagram(SMTP, **kw))
    two = figure_to_svg(draw_state_diagram(SMTP, **kw))
    assert one == two
    assert "Date" not in one and "<dc:date>" not in one
    assert 'id="mailproto-diagram"' in one


def test_fast_renderer_matches_a_full_export() -> None:
    renderer = DiagramRenderer(SMTP)
    moments = [{}, {"current": "GREETED", "visited": ["CONNECTED"]},
               {"current": "MAIL", "last": ("GREETED", "MAIL", "MAIL"),
                "rejected": ("MAIL", "AUTH refused: 503 not now")},
               {"current": "CLOSED", "last": ("DATA", "timeout", "CLOSED")}]
    for kw in moments:
        fast = renderer.svg(**kw)
        full = figure_to_svg(renderer.figure(**kw))
        assert fast == full, kw
    assert renderer.svg(**moments[1]) != renderer.svg(**moments[2])


def test_diagram_for_a_transcript(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    svg = figure_to_svg(diagram_for_transcript(t, upto=5))
    assert "✗ at CONNECTED: MAIL refused: 503" in svg
    assert f"fill: {palette.CURRENT_FILL.lower()}" in _group(svg, "state:CONNECTED")
    assert re.search(r"<svg[^>]+>", svg)
