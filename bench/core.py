"""The SMTP core alone, in this process: no socket, no file, no event loop.

How much of a message's server CPU is our Python protocol code, and how much is the kernel (the
network stack and the Maildir's file creation)?  This feeds whole pipelined transactions to a
:class:`mailproto.smtp.server.ServerSession` whose store keeps nothing, and times it.
"""

from __future__ import annotations

import time
from typing import Any

from .loadgen import make_message


class NullSpool:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)

    def commit(self, users: list[str], outbox_envelope: Any = None) -> list[Any]:
        return []

    def abort(self) -> None:
        pass


class NullStore:
    def __init__(self) -> None:
        from mailproto.store import Users

        self.users = Users.parse("alice:secret\n")

    def open_spool(self) -> NullSpool:
        return NullSpool()


def smtp_core_cpu(messages: int = 5000, size: int = 2048, time_limit: float = 20) -> float:
    """CPU seconds per message of ``ServerSession`` for MAIL+RCPT+DATA+content, pipelined."""
    from mailproto.smtp.server import ServerConfig, ServerSession

    session = ServerSession(ServerConfig(), NullStore())  # type: ignore[arg-type]
    session.initiate()
    out = session.receive(b"EHLO client.test\r\n")
    assert out.startswith(b"250"), out
    envelope = b"MAIL FROM:<bench@client.test>\r\nRCPT TO:<alice@local.test>\r\nDATA\r\n"
    payloads = [make_message(size, i) for i in range(100)]
    deadline = time.monotonic() + time_limit
    started = time.process_time()
    done = 0
    for i in range(messages):
        if time.monotonic() > deadline:
            break
        session.receive(envelope)
        reply = session.receive(payloads[i % 100])
        if not reply.startswith(b"250"):
            raise RuntimeError(f"core refused message {i}: {reply!r}")
        done += 1
    return (time.process_time() - started) / max(done, 1)


if __name__ == "__main__":
    print(f"{smtp_core_cpu() * 1e6:.1f} µs CPU per message")
