"""The lab: views, diagrams, a stepper and a console for notebooks (ipywidgets + matplotlib).

Names are loaded on first use, so ``import mailproto.lab`` stays cheap and the pure renderers
(:mod:`.annotate`, :mod:`.transcript_html`) work without matplotlib or ipywidgets installed.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "Note": "annotate",
    "render_transcript": "transcript_html",
    "state_path": "statepath",
    "StatePath": "statepath",
    "table_for": "statepath",
    "draw_state_diagram": "diagram",
    "figure_to_svg": "diagram",
    "figure_to_png": "diagram",
    "DiagramRenderer": "svgparts",
    "draw_sequence": "sequence",
    "TranscriptView": "views",
    "StateDiagram": "views",
    "SequenceView": "views",
    "MessageView": "views",
    "Journey": "journey",
    "Stepper": "stepper",
    "StepperModel": "stepper",
    "Console": "console",
    "start": "session",
    "Lab": "session",
    "LabSession": "session",
    "Exchange": "session",
    "check": "exercises",
    "hint": "exercises",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
