"""The layers of one message: as it travels, as it is stored, and (in :mod:`.inspect`) as read.

* **wire** — what DATA (RFC 5321 §4.1.1.4) and RETR (RFC 1939 §7) carry: every line ends in CRLF,
  a line that starts with "." gets one more "." (dot-stuffing, RFC 5321 §4.5.2, RFC 1939 §3), and
  a line holding only "." ends the message.
* **stored** — what a Maildir file holds: LF line endings, as on any Unix mail store, and on top
  the trace fields the receiving server added (``Return-Path:``, ``Received:``; RFC 5321 §4.4,
  RFC 5322 §3.6.7).

:func:`layer_diff` lines two layers up and says, per line, which of these changes happened, so a
view can highlight exactly what the server did.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

CRLF = b"\r\n"
TERMINATOR = b".\r\n"

#: Kinds of change :func:`layer_diff` reports, with the sentence a view shows for each.
LINE_ENDING = "line-ending"
NEWLINE_ADDED = "newline-added"
DOT_STUFFING = "dot-stuffing"
TRACE = "trace-header"
END_OF_DATA = "terminator"
ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"

CHANGES = {
    LINE_ENDING: "CRLF on the wire, LF in the store (RFC 5321 §2.3.8; Maildir files are Unix text)",
    NEWLINE_ADDED: "the last line had no line ending; the wire needs one before the final "
                   "'.' (RFC 5321 §4.1.1.4)",
    DOT_STUFFING: "a line starting with '.' travels with one more '.' (RFC 5321 §4.5.2, "
                  "RFC 1939 §3)",
    TRACE: "a trace field the receiving server put on top (RFC 5321 §4.4, RFC 5322 §3.6.7)",
    END_OF_DATA: "a line with only '.' ends the message on the wire; it is not stored "
                 "(RFC 5321 §4.1.1.4)",
    ADDED: "only in the stored copy",
    REMOVED: "only on the wire",
    CHANGED: "different content",
}

#: Trace fields (RFC 5322 §3.6.7) — what a server adds on delivery.
TRACE_FIELDS = (b"return-path", b"received")

_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their endings (LF or CRLF); a bare CR stays inside its line, as SMTP demands."""
    return _LINE.findall(data)


def _content(line: bytes) -> bytes:
    """A line without its ending."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


def _ending(line: bytes) -> bytes:
    return line[len(_content(line)):]


def to_wire(stored: bytes) -> bytes:
    """Stored form → wire form: CRLF endings, dot-stuffing, and the ``.`` line at the end.

    A message whose last line has no ending gets CRLF before the terminator (RFC 5321
    §4.1.1.4), so ``from_wire(to_wire(m))`` is ``m`` plus a final LF in that case only.
    """
    out = []
    for line in split_lines(stored):
        content = _content(line)
        if content.startswith(b"."):
            content = b"." + content
        out.append(content + CRLF)
    out.append(TERMINATOR)
    return b"".join(out)


def from_wire(wire: bytes) -> bytes:
    """Wire form → stored form: LF endings, stuffed dots removed, stop at the ``.`` line.

    RFC 5321 §4.5.2: the receiver deletes the first '.' of any line that starts with one.
    Lines after the terminator belong to the next exchange and are dropped.  LF-only input (a
    capture saved by a Unix tool) is accepted too.
    """
    out = []
    for line in split_lines(wire):
        content = _content(line)
        if content == b".":
            break
        if content.startswith(b"."):
            content = content[1:]
        out.append(content + (b"\n" if _ending(line) else b""))
    return b"".join(out)


def looks_like_wire(data: bytes) -> bool:
    """True for a DATA or RETR capture: CRLF line endings and a final line holding only '.'."""
    body = data[:-2] if data.endswith(CRLF) else data
    return body == b"." or body.endswith(b"\r\n.")


@dataclass(frozen=True)
class Unwrapped:
    """A message in stored form, and how it came: ``"stored"`` or ``"wire"``."""

    stored: bytes
    form: str
    notes: tuple[str, ...] = ()


def unwrap(data: bytes) -> Unwrapped:
    """Accept a Maildir file, a DATA capture or a RETR capture; give the stored form.

    A RETR capture may still start with the POP3 status line (``+OK 999 octets``, RFC 1939 §5);
    it is not part of the message and is dropped.
    """
    notes: list[str] = []
    if data.startswith(b"+OK") and b"\n" in data:
        status, rest = data.split(b"\n", 1)
        if looks_like_wire(rest):
            shown = status.rstrip(b"\r")[:80].decode("ascii", "replace")
            notes.append(f"POP3 status line {shown!r} removed: the server's reply, "
                         "not part of the message")
            data = rest
    if not looks_like_wire(data):
        return Unwrapped(data, "stored", tuple(notes))
    notes.append("wire form (CRLF, dot-stuffed, ended by '.') turned into the stored form")
    return Unwrapped(from_wire(data), "wire", tuple(notes))


def _trace_count(lines: list[bytes]) -> int:
    """How many lines at the top are trace fields, with their continuation lines."""
    count = 0
    in_trace = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and in_trace:
            count += 1
            continue
        name = line.split(b":", 1)[0].strip().lower()
        if b":" not in line or name not in TRACE_FIELDS:
            break
        in_trace = True
        count += 1
    return count


def strip_trace(stored: bytes) -> bytes:
    """The message as the client sent it: the stored form without the trace fields on top."""
    lines = split_lines(stored)
    return b"".join(lines[_trace_count(lines):])


@dataclass(frozen=True)
class LineDiff:
    """One row of a side-by-side view: a wire line, a stored line, and what changed."""

    wire: bytes | None  # the line with its ending, None when it is only in the store
    stored: bytes | None  # the line with its ending, None when it is only on the wire
    changes: tuple[str, ...] = ()  # keys of CHANGES


def _wire_key(line: bytes) -> bytes:
    content = _content(line)
    return content[1:] if content.startswith(b".") else content


def layer_diff(wire: bytes, stored: bytes, max_lines: int = 5000) -> list[LineDiff]:
    """Line up a wire form and a stored form and say, per line, what changed between them.

    Lines are matched on their content with the framing undone (no line ending, no stuffed
    dot), so framing never hides a real difference.  Only the first ``max_lines`` lines of each
    side are compared: the view is for reading, and difflib is quadratic at worst.
    """
    all_wire, all_stored = split_lines(wire), split_lines(stored)
    cut = len(all_wire) > max_lines or len(all_stored) > max_lines
    wire_lines, stored_lines = all_wire[:max_lines], all_stored[:max_lines]
    terminator = None
    if wire_lines and _content(wire_lines[-1]) == b".":
        terminator = wire_lines.pop()
    trace = _trace_count(stored_lines)
    rows = [LineDiff(None, line, (TRACE,)) for line in stored_lines[:trace]]
    stored_lines = stored_lines[trace:]
    matcher = difflib.SequenceMatcher(None, [_wire_key(x) for x in wire_lines],
                                      [_content(x) for x in stored_lines], autojunk=False)
    opcodes = matcher.get_opcodes()
    if cut and opcodes and opcodes[-1][0] != "equal":
        opcodes.pop()  # lines left over at the cut have their partners beyond it
    for op, w1, w2, s1, s2 in opcodes:
        if op == "equal":
            pairs = zip(wire_lines[w1:w2], stored_lines[s1:s2], strict=True)
            rows.extend(_framing(w, s) for w, s in pairs)
            continue
        paired = min(w2 - w1, s2 - s1)
        for i in range(paired):
            rows.append(LineDiff(wire_lines[w1 + i], stored_lines[s1 + i], (CHANGED,)))
        rows.extend(LineDiff(w, None, (REMOVED,)) for w in wire_lines[w1 + paired:w2])
        rows.extend(LineDiff(None, s, (ADDED,)) for s in stored_lines[s1 + paired:s2])
    if terminator is not None:
        rows.append(LineDiff(terminator, None, (END_OF_DATA,)))
    return rows


def _framing(wire: bytes, stored: bytes) -> LineDiff:
    """The changes between two lines whose content is the same once framing is undone."""
    changes = []
    if _content(wire) != _content(stored):  # same key: only a stuffed dot can differ
        changes.append(DOT_STUFFING)
    w_end, s_end = _ending(wire), _ending(stored)
    if w_end != s_end:
        changes.append(NEWLINE_ADDED if not s_end else LINE_ENDING)
    return LineDiff(wire, stored, tuple(changes))
