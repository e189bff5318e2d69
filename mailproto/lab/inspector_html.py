"""Render a :class:`~mailproto.message.MessageReport` as one HTML string (pure: no widgets).

The page shows the problems, the three layers side by side (wire as sent in DATA, stored in the
Maildir, read), the MIME tree and the step-by-step explanations.

A message is hostile input.  Every piece of it goes through :func:`html.escape`; HTML parts are
shown as escaped source, never rendered; images are embedded only as ``data:`` URIs, only for
PNG, JPEG and GIF whose first bytes match, and only up to a size bound (SVG can carry script).
Styles are inline attributes: notebooks on GitHub and nbviewer keep no ``<style>`` blocks, and
every highlight also has a text marker so the page still reads where styles are stripped.
"""

from __future__ import annotations

import base64
from html import escape

from ..message.explain import explain_body, explain_encoded_word
from ..message.layers import (
    ADDED,
    CHANGED,
    CHANGES,
    DOT_STUFFING,
    END_OF_DATA,
    LINE_ENDING,
    NEWLINE_ADDED,
    REMOVED,
    TRACE,
    LineDiff,
    layer_diff,
    strip_trace,
    to_wire,
)
from ..message.model import ERROR, WARNING, MessageReport, Part, Step
from ..message.summary import describe, raw_text, safe

MAX_ROWS = 200  # lines shown in the layers table
MAX_LINE = 120  # octets of a line shown there; an 8-bit octet takes 4 characters (\xNN)
MAX_SHOWN_TEXT = 20_000  # characters of one part shown
MAX_INLINE_IMAGE = 256 * 1024  # octets of an image embedded as a data: URI
MAX_EXPLAINED = 8  # encoded words / bodies explained

_IMAGE_MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",),
                "image/gif": (b"GIF87a", b"GIF89a")}

_FONT = "font-family:monospace;font-size:12px"
_CELL = f"{_FONT};white-space:pre-wrap;word-break:break-all"
_BORDER = "border:1px solid #ccc"
_READ = f"{_BORDER};word-break:normal;overflow-wrap:anywhere"
_SEVERITY = {ERROR: "#fde2e2", WARNING: "#fff3cd"}
_CHANGE_STYLE = {TRACE: "background:#d4f7d4", DOT_STUFFING: "background:#ffe08a",
                 END_OF_DATA: "background:#cfe2ff", NEWLINE_ADDED: "background:#ffe08a",
                 ADDED: "background:#d4f7d4", REMOVED: "background:#fde2e2",
                 CHANGED: "background:#fde2e2"}
_CHANGE_LABEL = {LINE_ENDING: "CRLF→LF", NEWLINE_ADDED: "+line end", DOT_STUFFING: "'..'→'.'",
                 TRACE: "+trace", END_OF_DATA: "end of data", ADDED: "+stored",
                 REMOVED: "−stored", CHANGED: "≠"}


def render_report_html(report: MessageReport) -> str:
    """The whole report as an HTML fragment with inline styles only."""
    return "".join([
        '<div class="mailproto-inspector" style="font-family:sans-serif;font-size:13px">',
        _problems(report),
        _layers(report),
        '<h4 style="margin:12px 0 4px">MIME tree</h4>',
        _tree(report.root),
        _explanations(report),
        "</div>",
    ])


def _text(text: str) -> str:
    """Untrusted text → escaped HTML, with control and bidi characters made visible."""
    return escape(safe(text), quote=True)


def _problems(report: MessageReport) -> str:
    if not report.problems:
        out = ['<p style="margin:4px 0">✓ No problems found.</p>']
    else:
        out = [f'<h4 style="margin:4px 0">Problems ({len(report.problems)})</h4><ul>']
        for p in report.problems:
            colour = _SEVERITY.get(p.severity, "#e7f1ff")
            rule = f" <i>({escape(p.rfc)})</i>" if p.rfc else ""
            out.append(f'<li style="background:{colour};padding:1px 4px">'
                       f"<b>[{escape(p.severity)}]</b> {_text(p.where)}: {_text(p.text)}{rule}"
                       "</li>")
        out.append("</ul>")
    out.extend(f'<p style="margin:2px 0;color:#555">Note: {_text(n)}</p>' for n in report.notes)
    return "".join(out)


def _line(line: bytes | None, changes: tuple[str, ...], wire_side: bool) -> str:
    """One line of bytes: 8-bit octets as \\xNN, line endings as ␍␊ / ␊ glyphs."""
    if line is None:
        return ""
    ending = b"\r\n" if line.endswith(b"\r\n") else b"\n" if line.endswith(b"\n") else b""
    content = line[: len(line) - len(ending)]
    head = ""
    if wire_side and DOT_STUFFING in changes:  # the stuffed dot, highlighted on its own
        head = f'<b style="{_CHANGE_STYLE[DOT_STUFFING]}">.</b>'
        content = content[1:]
    more = ""
    if len(content) > MAX_LINE:
        more = f'<i style="color:#777">… +{len(content) - MAX_LINE:,} octets</i>'
        content = content[:MAX_LINE]
    glyph = {b"\r\n": "␍␊", b"\n": "␊", b"": ""}[ending]
    colour = "#b00" if ending == b"\r\n" else "#06c"
    return (head + escape(safe(raw_text(content)), quote=True) + more
            + f'<span style="color:{colour}">{glyph}</span>')


def _row(row: LineDiff) -> str:
    """One table row; font and wrapping come from the table, so a row carries only highlights."""
    style = next((_CHANGE_STYLE[c] for c in row.changes if c in _CHANGE_STYLE), "")
    cell = f'<td style="{style}">' if style else "<td>"
    labels = " ".join(_CHANGE_LABEL[c] for c in row.changes)
    meant = [CHANGES[c] for c in row.changes if c != LINE_ENDING]  # the common case: no title
    title = f' title="{escape("; ".join(meant), quote=True)}"' if meant else ""
    return (f'<tr valign="top">{cell}{_line(row.wire, row.changes, True)}</td>'
            f'<td style="color:#777;white-space:nowrap"{title}>{escape(labels)}</td>'
            f"{cell}{_line(row.stored, row.changes, False)}</td>")


def _layers(report: MessageReport) -> str:
    wire = to_wire(strip_trace(report.stored))
    rows = layer_diff(wire, report.stored, max_lines=MAX_ROWS)
    header_rows = next((i + 1 for i, r in enumerate(rows)
                        if (r.stored or r.wire or b"x").strip(b"\r\n") == b""), len(rows))
    read_head = _read_headers(report)
    read_body = _read_body(report.root)
    out = ['<h4 style="margin:12px 0 4px">Three layers</h4>',
           f'<table style="border-collapse:collapse;{_BORDER};{_CELL}"><tr>'
           f'<th style="{_BORDER};width:27%">wire — as sent in DATA</th>'
           f'<th style="{_BORDER}">change</th>'
           f'<th style="{_BORDER};width:27%">stored — in the Maildir</th>'
           f'<th style="{_BORDER};width:40%">read — decoded</th></tr>']
    for i, row in enumerate(rows):
        out.append(_row(row))
        if i == 0:
            out.append(f'<td rowspan="{header_rows}" style="{_READ}">{read_head}</td>')
        elif i == header_rows:
            out.append(f'<td rowspan="{len(rows) - header_rows}" style="{_READ}">'
                       f"{read_body}</td>")
        out.append("</tr>")
    out.append("</table>")
    total = report.stored.count(b"\n")
    cut = f" Only the first {MAX_ROWS} of {total:,} lines are shown." if total > MAX_ROWS else ""
    out.append('<p style="margin:2px 0;color:#555">RETR sends the stored form back with CRLF and '
               f"dot-stuffing again, trace fields included (RFC 1939 §3).{cut}</p>")
    return "".join(out)


def _read_headers(report: MessageReport) -> str:
    out = []
    for h in report.headers:
        if h.changed:
            out.append(f'<div style="background:#d4f7d4" title="{_text(raw_text(h.raw))}">'
                       f"<b>{_text(h.name)}:</b> {_text(h.decoded)} <i>(decoded)</i></div>")
        else:
            out.append(f"<div><b>{_text(h.name)}:</b> {_text(h.decoded)}</div>")
    return "".join(out)


def _read_body(part: Part) -> str:
    out = []
    for p in part.walk():
        if p.children:
            continue
        out.append(f'<div style="color:#555">[{_text(p.path or "message")}: '
                   f"{_text(describe(p))}]</div>")
        out.append(_content(p))
    return "".join(out)


def _content(part: Part) -> str:
    """A leaf's content: text escaped (HTML as its source), a safe image, or nothing."""
    if part.text is not None:
        text = part.text[:MAX_SHOWN_TEXT]
        cut = len(part.text) > MAX_SHOWN_TEXT or part.text_truncated
        note = ""
        if part.content_type == "text/html":
            note = ('<div style="color:#555">HTML shown as source, not rendered: it could run '
                    "scripts or fetch remote images.</div>")
        return (note + f'<div style="{_FONT};white-space:pre-wrap">{_text(text)}'
                + ("<i> … (cut)</i>" if cut else "") + "</div>")
    uri = _image_uri(part)
    if uri:
        return (f'<img src="{uri}" alt="{_text(part.filename or part.content_type)}" '
                'style="max-width:320px;max-height:240px">')
    return ""


def _image_uri(part: Part) -> str | None:
    """A data: URI for a PNG, JPEG or GIF that really starts like one; None otherwise."""
    data = part.image
    magic = _IMAGE_MAGIC.get(part.content_type)
    if not data or not magic or len(data) > MAX_INLINE_IMAGE or not data.startswith(magic):
        return None
    return f"data:{part.content_type};base64,{base64.b64encode(data).decode('ascii')}"


def _tree(part: Part) -> str:
    label = _text(part.path or "message")
    out = [f'<ul style="margin:2px 0"><li><code>{label}</code> {_text(describe(part))}']
    out.extend(_tree(child) for child in part.children)
    out.append("</li></ul>")
    return "".join(out)


def _steps(title: str, steps: list[Step]) -> str:
    out = [f'<details open><summary><b>{_text(title)}</b></summary><ol>']
    for s in steps:
        out.append(f'<li><b>{_text(s.title)}</b><br><code style="{_FONT}">{_text(s.given)}</code>'
                   f' →<pre style="{_FONT};white-space:pre-wrap;margin:2px 0">{_text(s.result)}'
                   f'</pre><span style="color:#555">{_text(s.note)}</span></li>')
    out.append("</ol></details>")
    return "".join(out)


def _explanations(report: MessageReport) -> str:
    out = ['<h4 style="margin:12px 0 4px">Step by step</h4>']
    words = list(dict.fromkeys(w for h in report.headers for w in h.words))
    for word in words[:MAX_EXPLAINED]:
        out.append(_steps(f"Encoded word {word}", explain_encoded_word(word)))
    bodies = [p for p in report.root.walk() if not p.children
              and p.transfer_encoding in ("quoted-printable", "base64")]
    for part in bodies[:MAX_EXPLAINED]:
        out.append(_steps(f"Body of {part.label} ({part.transfer_encoding})",
                          explain_body(part)))
    if len(out) == 1:
        out.append("<p>Nothing is encoded: what was sent is what you read.</p>")
    return "".join(out)
