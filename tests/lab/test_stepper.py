"""The stepper, driven without a browser: clicks, slider, Play link, live script, static HTML."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import ipywidgets as widgets

from mailproto.lab import palette
from mailproto.lab.stepper import Stepper, StepperModel
from mailproto.lab.svgparts import group_spans

from ._sessions import Live, pop3_transcript, smtp_transcript, store

CURRENT = f"fill: {palette.CURRENT_FILL.lower()}"


def node_is_current(svg: str, state: str) -> bool:
    start, end = group_spans(svg, {f"state:{state}"})[f"state:{state}"]
    return CURRENT in svg[start:end]


def test_model_walks_the_transcript(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    m = StepperModel(t)
    assert m.index == 0 and "press Next" in m.html()
    m.goto(7)  # ... EHLO's 250 is step 7 (index 6)
    assert m.html().count("data-step=") == 7
    assert 'data-step="6"' in m.html() and 'data-current="true"' in m.html()
    assert node_is_current(m.svg(), "GREETED")
    assert m.goto(999) == len(t) and m.back() == len(t) - 1


def test_buttons_and_slider_move_transcript_and_diagram(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    s = Stepper(t)
    assert isinstance(s, widgets.VBox)
    assert s.slider.value == 1 and s.back_button.disabled is False
    assert s.transcript_html.value.count("data-step=") == 1
    before = s.diagram_html.value
    for _ in range(6):
        s.next_button.click()
    assert s.slider.value == 7
    assert s.transcript_html.value.count("data-step=") == 7
    assert "EHLO client.test" in s.transcript_html.value
    assert s.diagram_html.value != before
    assert node_is_current(s.diagram_html.value, "GREETED")
    assert not node_is_current(s.diagram_html.value, "CONNECTED")
    s.back_button.click()
    assert s.slider.value == 6 and node_is_current(s.diagram_html.value, "CONNECTED")
    s.slider.value = 5  # the 503: a refusal shown at CONNECTED
    assert "✗ at CONNECTED: MAIL refused: 503" in s.diagram_html.value
    s.slider.value = len(t)
    assert s.next_button.disabled and node_is_current(s.diagram_html.value, "CLOSED")
    assert "step 31 of 31" in s.caption.value


def test_play_is_linked_to_the_slider(tmp_path: Path) -> None:
    s = Stepper(pop3_transcript(tmp_path))
    s.play.value = 13  # what the browser's Play does, tick by tick
    assert s.slider.value == 13
    assert node_is_current(s.diagram_html.value, "TRANSACTION")


def test_static_html_goes_with_the_widget(tmp_path: Path) -> None:
    s = Stepper(smtp_transcript(tmp_path), start=3)
    bundle = s._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    html = bundle["text/html"]
    assert "<svg" in html and "data-step=\"2\"" in html and "static copy" in html
    assert "<style" not in html


def test_from_script_drives_a_live_session(tmp_path: Path) -> None:
    def factory() -> Live:
        return Live("smtp", store(tmp_path))

    s = Stepper.from_script(["EHLO me", "MAIL FROM:<>", "QUIT"], factory)
    assert s.model.total == 1 and s.slider.value == 1  # the greeting
    s.next_button.click()  # sends EHLO: the client line is shown
    assert s.model.total == 3 and s.slider.value == 2
    s.next_button.click()  # its reply, already recorded
    assert node_is_current(s.diagram_html.value, "GREETED")
    for _ in range(4):
        s.next_button.click()
    assert node_is_current(s.diagram_html.value, "CLOSED") and s.next_button.disabled


def test_a_step_is_fast(tmp_path: Path) -> None:
    s = Stepper(smtp_transcript(tmp_path))
    times = []
    for i in range(2, len(s.model.transcript) + 1):
        t0 = time.perf_counter()
        s.slider.value = i
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 0.05
