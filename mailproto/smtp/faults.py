"""Deterministic fault scenarios for lessons on retries and bounces (not random: replayable).

``mailproto serve --fault NAME`` makes the SMTP server misbehave in one precise way, so a class
can watch a relay retry and bounce:

* ``rcpt-452``: the second RCPT of every transaction gets ``452 4.5.3`` (RFC 5321 §4.5.3.1.10:
  the client must retry that recipient later);
* ``data-421``: after the message, ``421`` and close instead of ``250`` (nothing delivered);
* ``drop-mid-data``: the connection drops after the first chunk of message text;
* ``slow``: every reply waits 2 s (the transport holds it; the session is otherwise normal).
"""

from __future__ import annotations

from typing import Any

from .server import ServerSession
from .states import CLOSE, TABLE
from .wire import Command, Reply

FAULTS = ("rcpt-452", "data-421", "drop-mid-data", "slow")
SLOW_DELAY = 2.0


class FaultySession(ServerSession):
    def __init__(self, *args: Any, fault: str, **kwargs: Any) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: choose from {', '.join(FAULTS)}")
        super().__init__(*args, **kwargs)
        self.fault = fault

    def receive(self, data: bytes) -> bytes:
        out = super().receive(data)
        if self.fault == "slow" and out:
            self.delay = max(self.delay, SLOW_DELAY)
        return out

    def _do_RCPT(self, cmd: Command, before: Any) -> None:
        if self.fault == "rcpt-452" and len(self.envelope.recipients) == 1:
            self.envelope.rcpt_attempts += 1
            self._reply(Reply.of(452, "4.5.3 Too many recipients, try again later (fault "
                                 "scenario rcpt-452)"), before)
            return
        super()._do_RCPT(cmd, before)

    def _content(self, chunk: bytes) -> None:
        if self.fault == "drop-mid-data" and chunk:
            self.connection_lost()  # nothing delivered; the transport closes the socket
            return
        super()._content(chunk)

    def _end_of_data(self) -> None:
        if self.closed:  # drop-mid-data already cut the connection
            return
        if self.fault == "data-421":
            before = self.state
            self._drop_spool()
            self._send(Reply.of(421, f"4.3.0 {self.config.hostname} Error: closing after the "
                                "message (fault scenario data-421)"), "reply", before)
            self.state = TABLE.next(self.state, CLOSE) or self.state.__class__.CLOSED
            self.closed = True
            return
        super()._end_of_data()
