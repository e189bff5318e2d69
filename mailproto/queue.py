"""The outbound queue: mail for other domains waiting in ``<data>/.outbox/`` (a Maildir).

Each queued file starts with its envelope (``X-Mailproto-Envelope-From/To`` lines, written by
``store.SpoolFile``), then the message as stored, with our ``Return-Path:`` and ``Received:``.
Beside it, ``.outbox/state/<name>.json`` remembers the attempts, the next retry time and which
recipients are already done, so a restart neither loses nor repeats a delivery.  This module is
file bookkeeping only; ``mailproto.net.relay`` does the SMTP.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .store import Store

ENVELOPE_FROM = b"X-Mailproto-Envelope-From:"
ENVELOPE_TO = b"X-Mailproto-Envelope-To:"


@dataclass
class RetryState:
    first_try: float = 0.0
    attempts: int = 0
    next_try: float = 0.0
    #: Recipients already delivered or already bounced: never tried again.
    done: list[str] = field(default_factory=list)
    #: Last temporary error per recipient, for the bounce if the message expires.
    last_error: dict[str, str] = field(default_factory=dict)


@dataclass
class QueuedMessage:
    path: Path
    sender: str
    recipients: list[str]
    offset: int  # where the message itself starts in the file
    state: RetryState

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def pending(self) -> list[str]:
        return [r for r in self.recipients if r not in self.state.done]

    def content(self) -> bytes:
        """The message to relay: as stored, minus ``Return-Path:`` (RFC 5321 §4.4: only the
        final delivery adds it; our ``Received:`` stays, one per hop)."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        if data[:12].lower() == b"return-path:":
            data = data[data.find(b"\n") + 1 :]
        return data


def _angle(value: bytes) -> str:
    text = value.decode("utf-8", "surrogateescape").strip()
    return text[1:-1] if text.startswith("<") and text.endswith(">") else text


class OutboxQueue:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.box = store.outbox()
        self.state_dir = self.box.path / "state"
        self.state_dir.mkdir(exist_ok=True)

    def messages(self) -> list[QueuedMessage]:
        out = []
        for path in self.box.message_paths():
            msg = self.load(path)
            if msg is not None:
                out.append(msg)
        return out

    def load(self, path: Path) -> QueuedMessage | None:
        sender, recipients, offset = "", [], 0
        try:
            with open(path, "rb") as f:
                for line in f:
                    if line.startswith(ENVELOPE_FROM):
                        sender = _angle(line[len(ENVELOPE_FROM):])
                    elif line.startswith(ENVELOPE_TO):
                        recipients.append(_angle(line[len(ENVELOPE_TO):]))
                    else:
                        break
                    offset += len(line)
        except FileNotFoundError:
            return None
        return QueuedMessage(path, sender, recipients, offset, self._read_state(path.name))

    def _state_path(self, name: str) -> Path:
        return self.state_dir / (name.partition(":")[0] + ".json")

    def _read_state(self, name: str) -> RetryState:
        try:
            data = json.loads(self._state_path(name).read_text())
            return RetryState(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return RetryState()

    def save_state(self, msg: QueuedMessage) -> None:
        """Write the retry state atomically (rename), so a crash leaves the old or the new."""
        path = self._state_path(msg.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(msg.state)))
        os.replace(tmp, path)

    def remove(self, msg: QueuedMessage) -> None:
        msg.path.unlink(missing_ok=True)
        self._state_path(msg.name).unlink(missing_ok=True)
