"""A transcript as HTML, the way the seed article printed its telnet session (pure).

Client lines are blue and server lines dark grey, each with a ``C:``/``S:`` prefix so colour is
never the only cue; every line carries its note (what the command does, what the code means,
RFC section) in a ``<details>`` that folds without JavaScript.  Multi-line replies and the
message sent in DATA fold too.  The TLS boundary is a rule saying "encrypted from here".

Everything from the wire is escaped: a server that sends ``<script>`` shows the text
``<script>``, never runs it.  Invalid UTF-8 and control bytes are shown as ``\\xNN``.  Only inline
``style`` attributes are used, because GitHub and nbviewer drop ``<style>`` elements.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ..transcript import CLIENT, EVENT, Step, Transcript
from . import palette
from .annotate import INTERMEDIATE, PERMANENT, POSITIVE, TRANSIENT, Note, visible
from .annotate import annotate as annotate_transcript

_MONO = ("ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',"
         "'Liberation Mono',monospace")
_SANS = "system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif"
_BOX = (f"font-family:{_MONO};font-size:13px;line-height:1.45;color:#1a1a1a;"
        "background:#ffffff;border:1px solid #d0d0d0;border-radius:4px;padding:6px 8px;"
        "overflow-x:auto;max-width:100%")
_NOTE = (f"font-family:{_SANS};font-size:12px;line-height:1.35;color:{palette.MUTED};"
         "margin:0 0 2px 3.6em")
_MUTED = f"color:{palette.MUTED};font-size:11px"
_ENDINGS = {b"\r\n": "␍␊", b"\n": "␊", b"\r": "␍", b"": ""}
#: Marks beside a note, so the outcome is read without colour.
_OUTCOME_MARK = {POSITIVE: ("✓", palette.BLUISH_GREEN), INTERMEDIATE: ("…", palette.BLUE),
                 TRANSIENT: ("⚠", palette.ORANGE), PERMANENT: ("✗", palette.VERMILLION)}


def _lines(raw: bytes) -> list[tuple[bytes, bytes]]:
    """Split into (text, line ending) pairs; the ending is CRLF, bare LF, bare CR or none."""
    out = []
    for line in raw.splitlines(keepends=True):
        if line.endswith(b"\r\n"):
            out.append((line[:-2], b"\r\n"))
        elif line.endswith((b"\n", b"\r")):
            out.append((line[:-1], line[-1:]))
        else:
            out.append((line, b""))
    return out or [(b"", b"")]


def _line_html(text: bytes, ending: bytes, show_crlf: bool) -> str:
    shown = escape(visible(text))
    if show_crlf and ending:
        shown += f'<span style="color:{palette.MUTED}">{_ENDINGS[ending]}</span>'
    return shown


def _prefix(direction: str, marker: bool) -> str:
    colour = palette.CLIENT if direction == CLIENT else palette.SERVER
    mark = "▶" if marker else "&#160;"
    return (f'<span style="color:{palette.ORANGE if marker else "#ffffff"};'
            f'display:inline-block;width:1.2em" aria-hidden="{str(not marker).lower()}">'
            f'{mark}</span><span style="color:{colour};font-weight:bold">'
            f'{"C" if direction == CLIENT else "S"}:</span> ')


def _note_html(note: Note) -> str:
    mark, colour = _OUTCOME_MARK.get(note.outcome, ("", ""))
    head = (f'<span style="color:{colour};font-weight:bold">{mark}</span> ' if mark else "") + \
        escape(note.summary)
    body: list[str] = [f"<div>{escape(d)}</div>" for d in note.details]
    if note.decoded:
        rows = "".join(
            f'<tr><td style="padding:0 8px 0 0;vertical-align:top;font-size:12px">{escape(k)}'
            f'</td><td style="font-family:{_MONO};font-size:12px;color:#1a1a1a;'
            f'white-space:pre-wrap;word-break:break-all">{escape(v)}</td></tr>'
            for k, v in note.decoded)
        body.append(f'<table style="border-collapse:collapse;margin:2px 0">{rows}</table>')
    if note.warning:
        body.append(f'<div style="color:{palette.VERMILLION}"><b>Note:</b> '
                    f'{escape(note.warning)}</div>')
    if note.refs:
        body.append(f"<div><i>{escape('; '.join(dict.fromkeys(note.refs)))}</i></div>")
    # Decoded secrets are shown at once: that base64 hides nothing is the lesson.
    opened = " open" if note.decoded else ""
    return (f'<details style="{_NOTE}"{opened}><summary style="cursor:pointer">{head}</summary>'
            f'<div style="background:{palette.NOTE_BG};padding:3px 6px;margin:2px 0 4px 0;'
            f'border-radius:3px">{"".join(body)}</div></details>')


def _tls_rule(step: Step) -> str:
    label = ("TLS started: encrypted from here" if step.parsed.get("event") == "tls"
             else visible(step.raw))
    return (f'<div role="separator" style="border-top:2px dashed {palette.EVENT};margin:8px 0 '
            f'2px 0;padding-top:2px;text-align:center;color:{palette.EVENT};'
            f'font-family:{_SANS};font-size:12px;font-weight:bold">{escape(label)}</div>')


def render_step(step: Step, index: int, note: Note | None = None, *, show_crlf: bool = False,
                show_octets: bool = False, highlight: bool = False,
                show_states: bool = True) -> str:
    """One step as an HTML fragment (a ``<div data-step=index>``)."""
    style = "padding:1px 0 1px 0;border-left:3px solid transparent"
    if highlight:
        style = (f"padding:1px 0 1px 0;background:{palette.HIGHLIGHT_BG};"
                 f"border-left:3px solid {palette.ORANGE}")
    attrs = f'data-step="{index}" data-dir="{escape(step.direction)}"'
    if highlight:
        attrs += ' data-current="true"'
    if step.direction == EVENT:
        body = _tls_rule(step)
    else:
        extras = []
        if show_octets:
            extras.append(f"{len(step.raw)} octets")
        if show_states and step.state_before != step.state_after:
            extras.append(f"{step.state_before} → {step.state_after}")
        if step.parsed.get("ignored"):
            extras.append("discarded by the server")
        tag = (f' <span style="{_MUTED}">[{" · ".join(escape(x) for x in extras)}]</span>'
               if extras else "")
        body = _wire_html(step, show_crlf, highlight, tag)
    if note is not None:
        body += _note_html(note)
    return f'<div {attrs} style="{style}">{body}</div>'


def _wire_html(step: Step, show_crlf: bool, marker: bool, tag: str) -> str:
    colour = palette.CLIENT if step.direction == CLIENT else palette.SERVER
    lines = _lines(step.raw)
    prefix = _prefix(step.direction, marker)
    span = f'<span style="color:{colour};white-space:pre-wrap;word-break:break-all">'
    if step.kind == "data" and len(lines) > 1:  # a whole message (one line typed: as is)
        n = max(len(lines) - 1, 0)
        rows = "".join(f"<div>{span}{_line_html(t, e, show_crlf)}</span></div>" for t, e in lines)
        return (f'<details><summary style="cursor:pointer;list-style:none">{prefix}{span}'
                f'[the message: {n} line(s) and the final "."]</span>{tag} '
                f'<span style="{_MUTED}">▸ click to unfold</span></summary>'
                f'<div style="margin-left:3.6em;border-left:2px solid {colour};padding-left:6px">'
                f"{rows}</div></details>")
    first = f"<div>{prefix}{span}{_line_html(*lines[0], show_crlf)}</span>{tag}</div>"
    if len(lines) == 1:
        return first
    rest = "".join(f'<div style="margin-left:3.6em">{span}{_line_html(t, e, show_crlf)}</span>'
                   f"</div>" for t, e in lines[1:])
    return (f'{first}<details style="margin-left:3.6em" open><summary style="cursor:pointer;'
            f'{_MUTED}">{len(lines) - 1} more line(s) of this reply</summary>'
            f'<div style="margin-left:-3.6em">{rest}</div></details>')


def legend(protocol: str) -> str:
    return (f'<div style="font-family:{_SANS};font-size:11px;color:{palette.MUTED};'
            f'margin-bottom:4px">{escape(protocol.upper())} session · '
            f'<b style="color:{palette.CLIENT}">C:</b> client · '
            f'<b style="color:{palette.SERVER}">S:</b> server · click a note to unfold it</div>')


def render_transcript(transcript: Transcript, *, annotate: bool = True, show_crlf: bool = False,
                      show_octets: bool = False, upto: int | None = None,
                      highlight: int | None = None, notes: Sequence[Note] | None = None) -> str:
    """The first ``upto`` steps of ``transcript`` as one self-contained HTML ``<div>``.

    ``highlight`` is the index of the step to mark (the stepper's current line).  ``notes`` may
    be given precomputed (one per step) to save annotating again.
    """
    steps = transcript.steps if upto is None else transcript.steps[:upto]
    if annotate and notes is None:
        notes = annotate_transcript(transcript, upto)
    parts = [legend(transcript.protocol)]
    for i, step in enumerate(steps):
        note = notes[i] if annotate and notes is not None else None
        parts.append(render_step(step, i, note, show_crlf=show_crlf, show_octets=show_octets,
                                 highlight=i == highlight))
    if not steps:
        parts.append(f'<div style="{_MUTED}">(nothing yet)</div>')
    return box("".join(parts))


def box(inner: str) -> str:
    """The bordered monospace box a transcript sits in."""
    return f'<div class="mailproto-transcript" style="{_BOX}">{inner}</div>'
