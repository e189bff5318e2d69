"""A decoded summary for a terminal: headers, the MIME tree with sizes, first lines, problems.

Everything printed is made safe first: a message is untrusted input, and control characters in a
subject could move a terminal's cursor or change its colours (ANSI escapes), and bidi controls
could make text read differently from what it is.
"""

from __future__ import annotations

import re

from .model import MessageReport, Part

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """Control and bidi characters as visible escapes (``\\x1b``, ``\\u202e``)."""
    def escape(m: re.Match[str]) -> str:
        c = ord(m.group(0))
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    return _UNSAFE.sub(escape, text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit:,} characters)"


def raw_text(raw: bytes) -> str:
    """Header bytes as ASCII, 8-bit octets as ``\\xNN``: what really travelled."""
    return raw.decode("ascii", "backslashreplace")


def summary_text(report: MessageReport, lines: int = 5, width: int = 100) -> str:
    """The report as plain text: decoded headers, the MIME tree, the first ``lines`` of text."""
    out = [f"Message: {report.size:,} octets, {report.form} form"]
    out.append("Headers")
    for h in report.headers:
        value = h.decoded.replace("\t", " ")  # a folded line's tab, shown as the space it is
        out.append(f"  {safe(h.name)}: {safe(_clip(value, width * 3))}")
        if h.changed:
            out.append(f"      raw: {safe(_clip(' '.join(raw_text(h.raw).split()), width * 3))}")
    out.append("MIME tree")
    _tree(report.root, 1, lines, width, out)
    if report.problems:
        out.append(f"Problems ({len(report.problems)})")
        out.extend(f"  {safe(str(p))}" for p in report.problems)
    else:
        out.append("Problems: none found")
    if report.notes:
        out.append("Notes")
        out.extend(f"  {safe(n)}" for n in report.notes)
    return "\n".join(out) + "\n"


def describe(part: Part) -> str:
    """One line about a part: type, charset, encoding, disposition, name, sizes."""
    bits = [part.content_type + (f"; charset={part.charset}" if part.charset else "")]
    if part.children:
        bits.append(f"{len(part.children)} part{'s' if len(part.children) != 1 else ''}")
    else:
        bits.append(part.transfer_encoding)
    if part.disposition:
        bits.append(part.disposition)
    if part.filename:
        bits.append(f'"{part.filename}"')
    if part.content_id:
        bits.append(f"cid:{part.content_id.strip('<>')}")
    if not part.children:
        bits.append(f"{part.size_encoded:,} → {part.size_decoded:,} octets")
    return safe("  ".join(bits))


def _tree(part: Part, depth: int, lines: int, width: int, out: list[str]) -> None:
    pad = "  " * depth
    out.append(f"{pad}{part.path or 'message'}  {describe(part)}")
    if part.text is not None:
        text_lines = part.text.splitlines()
        for line in text_lines[:lines]:
            out.append(f"{pad}  | {safe(_clip(line, width))}")
        more = len(text_lines) - lines
        if more > 0 or part.text_truncated:
            out.append(f"{pad}  | … {max(more, 0):,} more lines"
                       + (" (text cut at the report's limit)" if part.text_truncated else ""))
    for child in part.children:
        _tree(child, depth + 1, lines, width, out)
