"""Hypothesis strategies shared by the property tests: command streams, mutations, chunkings.

A *stream* is what a client could send: lines of a plausible session, then mutated (lines
dropped, duplicated, swapped, replaced by hostile bytes, very long, with odd line endings).  A
*chunking* is where TCP happened to cut it.  ``MAILPROTO_FUZZ_EXAMPLES`` sets the number of
examples per test (default small enough for CI; raise it for a long run).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("MAILPROTO_FUZZ_EXAMPLES", "60"))

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

#: Bytes a hostile client likes: NUL, CR, LF, DEL, 8-bit, and plain text.
HOSTILE = st.binary(max_size=40) | st.lists(
    st.sampled_from([b"\0", b"\r", b"\n", b"\r\n", b"\x7f", b"\x80", b"\xff", b"\xc3\xa9", b".",
                     b"..", b" ", b":", b"<", b">", b"@", b"=", b"A", b"mail", b"\t"]),
    max_size=12).map(b"".join)

ENDINGS = [b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length), in order."""
    if not data:
        return [b""]
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a] or [b""]


def lines_of(stream: bytes) -> list[bytes]:
    """The stream split after every LF (the last piece may lack one)."""
    out = []
    start = 0
    while True:
        i = stream.find(b"\n", start)
        if i < 0:
            break
        out.append(stream[start : i + 1])
        start = i + 1
    if start < len(stream):
        out.append(stream[start:])
    return out


@st.composite
def mutated(draw: st.DrawFn, lines: list[bytes]) -> list[bytes]:
    """Apply a few random mutations to a list of lines (each with its own line ending)."""
    lines = list(lines)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["drop", "dup", "swap", "insert", "replace", "long",
                                     "ending", "flip"]))
        if not lines:
            lines.append(draw(HOSTILE) + b"\r\n")
            continue
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "swap" and len(lines) > 1:
            j = min(i + 1, len(lines) - 1)
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            lines.insert(i, draw(HOSTILE) + draw(st.sampled_from(ENDINGS)))
        elif kind == "replace":
            lines[i] = draw(HOSTILE) + draw(st.sampled_from(ENDINGS))
        elif kind == "long":
            size = draw(st.sampled_from([511, 512, 1000, 2047, 2048, 2049, 5000, 12287, 12289,
                                         70000]))
            prefix = draw(st.sampled_from([b"", b"AUTH PLAIN ", b"MAIL FROM:<", b"NOOP ", b"."]))
            lines[i] = prefix + b"x" * size + draw(st.sampled_from(ENDINGS))
        elif kind == "ending":
            body = lines[i].rstrip(b"\r\n")
            lines[i] = body + draw(st.sampled_from(ENDINGS))
        elif kind == "flip" and lines[i]:
            pos = draw(st.integers(0, len(lines[i]) - 1))
            byte = draw(st.integers(0, 255))
            lines[i] = lines[i][:pos] + bytes([byte]) + lines[i][pos + 1 :]
    return lines


CUTS = st.lists(st.integers(0, 1 << 20), max_size=25)
