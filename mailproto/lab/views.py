"""Static views: objects a notebook displays, which also read well when saved (GitHub, nbviewer).

Each has IPython's rich-display methods (``_repr_html_``, ``_repr_svg_``, ``_repr_png_``), so
``TranscriptView(t)`` as the last line of a cell shows the annotated session, and the output saved
in the notebook is plain HTML or SVG that renders without a kernel.  SVG is deterministic, so
nbval can compare it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from ..statetable import StateTable
from ..transcript import Transcript
from .diagram import LastArg, RejectedArg, draw_state_diagram, figure_to_png, figure_to_svg
from .sequence import Hop, draw_sequence
from .statepath import state_path, table_for
from .transcript_html import render_transcript


def inline_svg(svg: str) -> str:
    """An SVG document made fit to sit inside HTML: no XML prologue, no global ``<style>``
    (matplotlib's ``*{...}`` rule would restyle the whole page), and it shrinks to fit."""
    svg = svg[svg.index("<svg"):]
    start = svg.find("<style")
    if start >= 0:
        svg = svg[:start] + svg[svg.index("</style>", start) + len("</style>"):]
    head_end = svg.index(">")
    head = svg[:head_end]
    for attr in ("width", "height"):
        marker = f' {attr}="'
        i = head.find(marker)
        if i >= 0:
            j = head.index('"', i + len(marker))
            head = head[:i] + head[j + 1:]
    return head + ' style="max-width:100%;height:auto" width="100%"' + svg[head_end:]


class TranscriptView:
    """A transcript rendered like the seed's telnet session, annotated (see
    :func:`~mailproto.lab.transcript_html.render_transcript` for the options)."""

    def __init__(self, transcript: Transcript, **options: Any) -> None:
        self.transcript = transcript
        self.options = options

    def _repr_html_(self) -> str:
        return render_transcript(self.transcript, **self.options)

    def __repr__(self) -> str:
        return f"<TranscriptView {self.transcript.protocol} {len(self.transcript)} steps>"


class _FigureView:
    """Shared display methods of the figure views."""

    def figure(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _repr_svg_(self) -> str:
        return figure_to_svg(self.figure())

    def _repr_png_(self) -> bytes:
        return figure_to_png(self.figure())

    def svg(self) -> str:
        return self._repr_svg_()


class StateDiagram(_FigureView):
    """A state table's diagram at one moment (current state, visited, last move, refusal)."""

    def __init__(self, table: StateTable, *, current: Enum | str | None = None,
                 visited: Sequence[Enum | str] = (), last: LastArg = None,
                 rejected: RejectedArg = None) -> None:
        self.table = table
        self.moment: dict[str, Any] = {"current": current, "visited": tuple(visited),
                                       "last": last, "rejected": rejected}

    @classmethod
    def from_transcript(cls, transcript: Transcript, table: StateTable | None = None,
                        upto: int | None = None) -> StateDiagram:
        """The diagram after the first ``upto`` steps of a recorded session."""
        table = table or table_for(transcript.protocol)
        if table is None:
            raise ValueError(f"no state table for protocol {transcript.protocol!r}")
        path = state_path(transcript, table, upto)
        return cls(table, current=path.current, visited=sorted(path.visited),
                   last=path.last_move, rejected=path.last_rejection())

    def figure(self) -> Any:
        return draw_state_diagram(self.table, **self.moment)

    def __repr__(self) -> str:
        return f"<StateDiagram {self.table.name} current={self.moment['current']!r}>"


class SequenceView(_FigureView):
    """A transcript (or several hops) as arrows between parties over time."""

    def __init__(self, hops: Sequence[Hop] | Transcript, *,
                 names: tuple[str, str] = ("client", "server"), upto: int | None = None
                 ) -> None:
        self.hops = hops
        self.names = names
        self.upto = upto

    def figure(self) -> Any:
        return draw_sequence(self.hops, names=self.names, upto=self.upto)

    def __repr__(self) -> str:
        n = 1 if isinstance(self.hops, Transcript) else len(self.hops)
        return f"<SequenceView {n} hop(s)>"


class MessageView:
    """A message inspected: the three layers side by side, the MIME tree, the decoding steps
    (see :mod:`mailproto.message`).  Give it bytes from a RETR, a Maildir file or a DATA."""

    def __init__(self, data: bytes) -> None:
        from ..message import inspect_message

        self.report = inspect_message(data)

    def _repr_html_(self) -> str:
        from .inspector_html import render_report_html

        return render_report_html(self.report)

    def __repr__(self) -> str:
        from ..message.summary import summary_text

        return summary_text(self.report)
