"""Telnet in a notebook: type raw protocol lines at a live server and watch the views update.

The console knows nothing about sockets: it is given ``send_line(line)`` (which sends one line
and waits for what the server answered) and ``transcript_getter()`` (the session's transcript so
far), so it works the same with the in-memory pair, a background-thread server, or any client
written later.  Everything shown is rendered from the transcript (DESIGN.md property 3).

Keys: ipywidgets cannot catch ↑/↓ in a text box, so history has its own ↑ and ↓ buttons; Enter
(or the Send button) sends the line.  The box syncs as you type (``continuous_update``), because
the browser sends its "Enter" message before a non-continuous box would sync its value.  Even so,
the front end holds back a value update while the kernel has not answered the previous one, but
sends "Enter" at once: a fast typist on a busy kernel would send a stale (often empty) line.  So
Enter is acted on a moment later (:data:`ENTER_DELAY`), after the held-back update has arrived.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as widgets

from ..errors import ConnectionClosed
from ..statetable import StateTable
from ..transcript import EVENT, Transcript
from . import palette
from .diagram import path_moment
from .statepath import state_path, table_for
from .stepper import renderer_for
from .transcript_html import render_transcript
from .views import inline_svg

#: Seconds between the front end's "Enter" and reading the box (see the module docstring).
ENTER_DELAY = 0.25


def _kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the IPython kernel handling this message, if we are in one.

    Only a kernel has front-end messages still on their way; elsewhere a loop that happens to be
    set (Playwright's, in a test) may never run our callback."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Console(widgets.VBox):
    """A line box with history, the annotated transcript and the state diagram of one session."""

    def __init__(self, send_line: Callable[[str], None],
                 transcript_getter: Callable[[], Transcript], table: StateTable | None = None,
                 *, placeholder: str = "type a command, e.g. EHLO me, then Enter",
                 history_size: int = 200) -> None:
        self.send_line = send_line
        self.transcript_getter = transcript_getter
        table = table or table_for(transcript_getter().protocol)
        if table is None:
            raise ValueError("no state table for this session's protocol")
        self.table = table
        self.history: list[str] = []
        self.history_size = history_size
        self._cursor = 0  # == len(history): a fresh line
        self.closed = False
        self.text = widgets.Text(placeholder=placeholder, continuous_update=True,
                                 layout=widgets.Layout(width="420px"))
        self.text.on_msg(self._on_text_msg)
        self.send_button = widgets.Button(description="Send ⏎", button_style="primary",
                                          layout=widgets.Layout(width="80px"))
        self.up_button = widgets.Button(description="↑", tooltip="previous line (history)",
                                        layout=widgets.Layout(width="36px"))
        self.down_button = widgets.Button(description="↓", tooltip="next line (history)",
                                          layout=widgets.Layout(width="36px"))
        self.send_button.on_click(lambda _b: self.submit())
        self.up_button.on_click(lambda _b: self.history_up())
        self.down_button.on_click(lambda _b: self.history_down())
        self.status = widgets.HTML()
        self.diagram_html = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.transcript_html = widgets.HTML(layout=widgets.Layout(width="100%"))
        help_text = widgets.HTML(
            '<span style="font-family:sans-serif;font-size:11px;color:#6B6B6B">Enter or Send '
            "sends the line (CRLF added). ↑ ↓ recall earlier lines: notebooks cannot catch "
            "the arrow keys in a text box.</span>")
        row = widgets.HBox([self.text, self.send_button, self.up_button, self.down_button])
        super().__init__([row, help_text, self.status, self.diagram_html,
                          self.transcript_html])
        self.add_class("mailproto-console")  # a stable hook for the browser test
        self.refresh()

    # -- input ------------------------------------------------------------------------------
    def _on_text_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") != "submit":  # the front end sends this on Enter
            return
        loop = _kernel_loop()
        if loop is None:
            self.submit()  # not in a kernel (a test, a script): no update can arrive later
        else:
            loop.call_later(ENTER_DELAY, self.submit)

    def submit(self, line: str | None = None) -> None:
        """Send ``line`` (default: what is in the box), then refresh the views."""
        if self.closed:
            return
        line = self.text.value if line is None else line
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[: -self.history_size]
        self._cursor = len(self.history)
        self.text.value = ""
        try:
            self.send_line(line)
        except ConnectionClosed as exc:
            self._close(f"The server closed the connection ({exc or 'no reason given'}).")
        self.refresh()

    def history_up(self) -> None:
        if self.history and self._cursor > 0:
            self._cursor -= 1
            self.text.value = self.history[self._cursor]

    def history_down(self) -> None:
        if self._cursor < len(self.history) - 1:
            self._cursor += 1
            self.text.value = self.history[self._cursor]
        else:
            self._cursor = len(self.history)
            self.text.value = ""

    # -- output -----------------------------------------------------------------------------
    def _close(self, message: str) -> None:
        self.closed = True
        self.text.disabled = self.send_button.disabled = True
        self.up_button.disabled = self.down_button.disabled = True
        self.status.value = (
            f'<div style="font-family:sans-serif;font-size:13px;color:{palette.VERMILLION};'
            f'border:1px solid {palette.VERMILLION};border-radius:4px;padding:4px 8px">✗ '
            f"{escape(message)} Start a new session to go on.</div>")

    def refresh(self) -> None:
        """Re-render from the transcript (call it after sending from elsewhere)."""
        transcript = self.transcript_getter()
        path = state_path(transcript, self.table)
        self.transcript_html.value = render_transcript(
            transcript, highlight=len(transcript) - 1 if len(transcript) else None)
        self.diagram_html.value = inline_svg(renderer_for(self.table).svg(**path_moment(path)))
        last = transcript.steps[-1] if transcript.steps else None
        ended = path.current == self.table.final.name or (
            last is not None and last.direction == EVENT and last.parsed.get("event") == "closed")
        if ended and not self.closed:
            self._close("The session is over: the server closed the connection.")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = dict(super()._repr_mimebundle_(**kwargs) or {})
        data["text/html"] = (f"{self.status.value}{self.diagram_html.value}"
                             f"{self.transcript_html.value}")
        return data
