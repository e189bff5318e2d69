"""Transcripts: every line of a session, both ways, as plain data (the lab's file format).

A :class:`Transcript` is a list of :class:`Step` records.  Each step is one line (or one block:
a multi-line reply, a message sent in DATA, a TLS handshake) with its raw bytes, its direction,
the time, what it means (the parsed command or reply) and the protocol state before and after.
The views and diagrams read transcripts only; they never reach into a live connection.

The JSON form (``Transcript.to_json``) is documented in README.md ("The transcript format").
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = "mailproto-transcript"
VERSION = 1

#: Directions: client to server, server to client, and events (TLS started, connection closed).
CLIENT, SERVER, EVENT = "C", "S", "*"


@dataclass
class Step:
    direction: str  # "C", "S" or "*"
    kind: str  # "command", "reply", "data", "auth", "greeting", "event"
    raw: bytes
    parsed: dict[str, Any] = field(default_factory=dict)
    state_before: str = ""
    state_after: str = ""
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        try:
            d["raw"] = self.raw.decode("utf-8")
            d["raw_encoding"] = "utf-8"
        except UnicodeDecodeError:
            d["raw"] = base64.b64encode(self.raw).decode("ascii")
            d["raw_encoding"] = "base64"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        d = dict(d)
        enc = d.pop("raw_encoding", "utf-8")
        raw = d.get("raw", "")
        d["raw"] = base64.b64decode(raw) if enc == "base64" else raw.encode("utf-8")
        return cls(**d)

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")


@dataclass
class Transcript:
    protocol: str  # "smtp" or "pop3"
    steps: list[Step] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    def to_text(self) -> str:
        """The session as plain text, one wire line per line: ``C: EHLO x``, ``S: 250-...``,
        events as ``*: TLS started``.  Line ends are dropped, every other byte is kept."""
        out = []
        for step in self.steps:
            text = step.text
            lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
            out += [f"{step.direction}: {line.removesuffix(chr(13))}" for line in lines]
        return "\n".join(out)

    def to_json(self, indent: int | None = 1) -> str:
        doc = {"format": FORMAT, "version": VERSION, "protocol": self.protocol,
               "meta": self.meta, "steps": [s.to_dict() for s in self.steps]}
        return json.dumps(doc, indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Transcript:
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise ValueError("not a mailproto transcript")
        if doc.get("version") != VERSION:
            raise ValueError(f"unsupported transcript version {doc.get('version')!r}")
        return cls(doc["protocol"], [Step.from_dict(s) for s in doc["steps"]], doc.get("meta", {}))

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path: str) -> Transcript:
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())


class Recorder:
    """Collects steps into a transcript, stamping each with the injected clock."""

    def __init__(self, protocol: str, clock: Callable[[], float], **meta: Any) -> None:
        self.transcript = Transcript(protocol, meta=dict(meta))
        self._clock = clock

    def __call__(self, direction: str, kind: str, raw: bytes, parsed: dict[str, Any],
                 before: str, after: str) -> None:
        self.transcript.steps.append(
            Step(direction, kind, raw, parsed, before, after, self._clock()))


#: The signature the protocol cores call: (direction, kind, raw, parsed, state before, after).
StepSink = Callable[[str, str, bytes, dict[str, Any], str, str], None]
