"""Deterministic views of a journey: what changes from run to run becomes a stable placeholder.

A notebook saved with its outputs must show the same thing on every run (nbval compares them):
ports (``127.0.0.1:PORT``), dates (RFC 5322 §3.3, as :data:`DATE_PLACEHOLDER`), APOP timestamps
(RFC 1939 §7), queue ids (``QID1``, ``QID2`` ... in the order met) and any given literal such as
the Message-ID.  The recorded transcripts themselves are never changed: :class:`Masker` makes
masked copies.  Pure: regular expressions over text, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..transcript import Step, Transcript

#: What a date becomes in deterministic views: its format, so the line still reads as a date.
DATE_PLACEHOLDER = "Day, DD Mon YYYY hh:mm:ss +0000"
_DATE = re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), {1,2}\d{1,2} [A-Z][a-z]{2} \d{4} "
                   r"\d{2}:\d{2}:\d{2} [+-]\d{4}(?: \([A-Z]+\))?")
_PORT = re.compile(r"127\.0\.0\.1:\d+")
_APOP = re.compile(r"<\d+\.\d+(?:\.\d+)?@")
_QUEUE_ID = re.compile(r"(?:queued as |\bid |X-Mailproto-Queue-ID: )([0-9A-Za-z.]{6,})")


class Masker:
    """Replaces what changes from run to run by stable placeholders (for saved notebooks).

    Queue ids are numbered in the order they are first met in ``texts`` (``QID1``, ``QID2``
    ...), so the same journey always gets the same numbers; ``literals`` are replaced as given.
    """

    def __init__(self, texts: Sequence[str] = (), literals: dict[str, str] | None = None) -> None:
        self.literals = dict(literals or {})
        ids: dict[str, str] = {}
        for text in texts:
            for qid in _QUEUE_ID.findall(text):
                ids.setdefault(qid, f"QID{len(ids) + 1}")
        self.literals.update(ids)
        # longest first, so an id never replaces part of a longer one
        keys = sorted(self.literals, key=len, reverse=True)
        self._literal = re.compile("|".join(re.escape(k) for k in keys)) if keys else None

    def text(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(lambda m: self.literals[m.group(0)], text)
        text = _DATE.sub(DATE_PLACEHOLDER, text)
        text = _PORT.sub("127.0.0.1:PORT", text)
        return _APOP.sub("<TIMESTAMP@", text)

    def bytes(self, data: bytes) -> bytes:
        return self.text(data.decode("utf-8", "surrogateescape")).encode("utf-8",
                                                                        "surrogateescape")

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.bytes(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def transcript(self, transcript: Transcript, order: int = 0) -> Transcript:
        """A masked copy; step times become ``order * 1000 + index`` (hops one after another)."""
        steps = [Step(s.direction, s.kind, self.bytes(s.raw), self.value(s.parsed),
                      s.state_before, s.state_after, order * 1000.0 + i)
                 for i, s in enumerate(transcript.steps)]
        return Transcript(transcript.protocol, steps, self.value(transcript.meta))
