"""Walk a session one line at a time, the transcript and the state diagram moving together.

:class:`StepperModel` is plain Python: an index into a transcript and pure renderers (HTML for
the transcript, SVG for the diagram).  :class:`Stepper` is the widget: buttons, a Play and a
slider that only set the model's index and the ``.value`` of two HTML widgets, never print into
an Output (nbval could not compare that, JUPYTER-TESTING.md).  Its display data also carries a
static ``text/html`` rendering, which GitHub and nbconvert show where widgets do not run.

A live session can be driven too (:meth:`Stepper.from_script`): Next sends the next scripted line
once the recorded ones are shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ipywidgets as widgets

from ..statetable import StateTable
from ..transcript import Transcript
from .annotate import Note, annotate
from .diagram import path_moment
from .statepath import StatePath, state_path, table_for
from .svgparts import DiagramRenderer
from .transcript_html import box, legend, render_step
from .views import inline_svg

_RENDERERS: dict[int, DiagramRenderer] = {}


def renderer_for(table: StateTable) -> DiagramRenderer:
    """One renderer per table per process: building the parts is the slow part."""
    key = id(table)
    renderer = _RENDERERS.get(key)
    if renderer is None or renderer.table is not table:
        renderer = _RENDERERS[key] = DiagramRenderer(table)
    return renderer


class LiveSession(Protocol):
    """What a live session offers the stepper: send one line, and the transcript so far."""

    transcript: Transcript

    def step_fn(self, line: str) -> None: ...


class StepperModel:
    """An index into a transcript (0 .. len) and the views of that moment."""

    def __init__(self, transcript: Transcript, table: StateTable | None = None, *,
                 show_crlf: bool = False, show_octets: bool = False) -> None:
        table = table or table_for(transcript.protocol)
        if table is None:
            raise ValueError(f"no state table for protocol {transcript.protocol!r}")
        self.transcript = transcript
        self.table = table
        self.show_crlf = show_crlf
        self.show_octets = show_octets
        self.index = 0
        self._renderer = renderer_for(table)
        self._notes: list[Note] = []
        self._fragments: dict[tuple[int, bool], str] = {}

    @property
    def total(self) -> int:
        return len(self.transcript)

    def goto(self, index: int) -> int:
        self.index = max(0, min(index, self.total))
        return self.index

    def next(self) -> int:
        return self.goto(self.index + 1)

    def back(self) -> int:
        return self.goto(self.index - 1)

    # -- views of the moment ----------------------------------------------------------------
    def notes(self) -> list[Note]:
        if len(self._notes) != self.total:  # the transcript grew (a live session)
            self._notes = annotate(self.transcript)
            self._fragments.clear()
        return self._notes

    def path(self) -> StatePath:
        return state_path(self.transcript, self.table, self.index)

    def html(self) -> str:
        """The transcript up to the current step, that step highlighted."""
        notes = self.notes()
        parts = [legend(self.transcript.protocol)]
        for i in range(self.index):
            current = i == self.index - 1
            frag = self._fragments.get((i, current))
            if frag is None:
                frag = self._fragments[(i, current)] = render_step(
                    self.transcript.steps[i], i, notes[i], show_crlf=self.show_crlf,
                    show_octets=self.show_octets, highlight=current)
            parts.append(frag)
        if self.index == 0:
            parts.append('<div style="color:#6B6B6B;font-size:11px">(press Next to start)</div>')
        return box("".join(parts))

    def svg(self) -> str:
        """The state diagram at the current step (deterministic SVG)."""
        return self._renderer.svg(**path_moment(self.path()))

    def caption(self) -> str:
        if self.index == 0:
            return f"step 0 of {self.total}"
        step = self.transcript.steps[self.index - 1]
        who = {"C": "client", "S": "server"}.get(step.direction, "event")
        return (f"step {self.index} of {self.total} · {who} · state "
                f"{step.state_after or '?'}")

    def static_html(self) -> str:
        """Diagram and transcript as one HTML block, for where widgets do not run."""
        return (f'<div class="mailproto-stepper"><div style="font-family:sans-serif;'
                f'font-size:12px;color:#6B6B6B">{self.caption()} (a static copy: run the '
                f'notebook to step through)</div>{inline_svg(self.svg())}{self.html()}</div>')


class Stepper(widgets.VBox):
    """◀ Back, Next ▶, Play and a slider over a transcript; diagram and transcript move together.

    ``Stepper(transcript)`` walks a recorded session; ``Stepper.from_script(lines, factory)``
    drives a live one.  Everything shown is in ``transcript_html.value`` and
    ``diagram_html.value`` (plain strings: tests read them without a browser).
    """

    def __init__(self, transcript: Transcript | LiveSession, table: StateTable | None = None, *,
                 start: int | None = None, interval: int = 900, show_crlf: bool = False,
                 show_octets: bool = False, script: Sequence[str] = ()) -> None:
        live = None if isinstance(transcript, Transcript) else transcript
        recorded = transcript if isinstance(transcript, Transcript) else transcript.transcript
        self.model = StepperModel(recorded, table, show_crlf=show_crlf,
                                  show_octets=show_octets)
        self.live = live
        self.script = list(script)
        self.back_button = widgets.Button(description="◀ Back", tooltip="previous line",
                                          layout=widgets.Layout(width="90px"))
        self.next_button = widgets.Button(description="Next ▶", tooltip="next line",
                                          button_style="primary",
                                          layout=widgets.Layout(width="90px"))
        self.play = widgets.Play(min=0, max=self.model.total, interval=interval,
                                 description="play", show_repeat=False)
        self.slider = widgets.IntSlider(min=0, max=self.model.total, description="step",
                                        continuous_update=True,
                                        layout=widgets.Layout(width="340px"))
        self.caption = widgets.HTML()
        self.diagram_html = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.transcript_html = widgets.HTML(layout=widgets.Layout(width="100%"))
        widgets.link((self.play, "value"), (self.slider, "value"))  # Python-side, unlike jslink
        self.back_button.on_click(lambda _b: self.back())
        self.next_button.on_click(lambda _b: self.next())
        self.slider.observe(self._on_slider, names="value")
        controls = widgets.HBox([self.back_button, self.next_button, self.play, self.slider,
                                 self.caption])
        super().__init__([controls, self.diagram_html, self.transcript_html])
        self.add_class("mailproto-stepper")  # a stable hook for the browser test
        first = (1 if self.model.total else 0) if start is None else start
        self.slider.value = self.model.goto(first)
        self._render()

    @classmethod
    def from_script(cls, lines: Sequence[str], session_factory: Callable[[], LiveSession],
                    table: StateTable | None = None, **options: Any) -> Stepper:
        """Drive a live session: ``session_factory()`` gives an object with ``step_fn(line)``
        and a ``transcript`` attribute; each Next past the recorded lines sends one line."""
        return cls(session_factory(), table, script=lines, **options)

    # -- actions ----------------------------------------------------------------------------
    def next(self) -> None:
        if self.model.index >= self.model.total and self.live is not None and self.script:
            self.live.step_fn(self.script.pop(0))
            self._sync_length()
        if self.model.index < self.model.total:
            self.slider.value = self.model.index + 1

    def back(self) -> None:
        if self.model.index > 0:
            self.slider.value = self.model.index - 1

    def goto(self, index: int) -> None:
        self.slider.value = max(0, min(index, self.model.total))

    def _sync_length(self) -> None:
        if self.live is not None:  # the session may hand out a new transcript object
            self.model.transcript = self.live.transcript
        total = self.model.total
        self.slider.max = total
        self.play.max = total

    def _on_slider(self, change: dict[str, Any]) -> None:
        self.model.goto(int(change["new"]))
        self._render()

    def _render(self) -> None:
        m = self.model
        self.transcript_html.value = m.html()
        self.diagram_html.value = inline_svg(m.svg())
        self.caption.value = (f'<span style="font-family:sans-serif;font-size:12px">'
                              f"{m.caption()}</span>")
        more = m.index < m.total or (self.live is not None and bool(self.script))
        self.next_button.disabled = not more
        self.back_button.disabled = m.index == 0

    # -- display ----------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        data = dict(data)
        data["text/html"] = self.model.static_html()
        return data
