"""Real transcripts for the lab's tests: the sans-I/O servers fed scripted client lines.

No client is involved (they are written elsewhere): each helper drives
``mailproto.smtp.server.ServerSession`` or ``mailproto.pop3.server.ServerSession`` directly, with a
:class:`~mailproto.transcript.Recorder` as ``on_step`` and a real Maildir store in ``tmp_path``.
"""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

from mailproto.errors import ConnectionClosed
from mailproto.pop3 import server as pop3_server
from mailproto.smtp import server as smtp_server
from mailproto.store import Store, Users
from mailproto.transcript import Recorder, Transcript

USERS = "alice:secret\nbob:hunter2\nstaff: alice, bob\n"
NOW = 1_000_000_000.0


def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data", Users.parse(USERS))


def deliver(st: Store, user: str, message: bytes) -> None:
    spool = st.open_spool()
    spool.write(message.replace(b"\r\n", b"\n"))
    spool.commit([user])


class Live:
    """A server session recording into a transcript; ``send(line)`` as a telnet user would."""

    def __init__(self, protocol: str, st: Store, **config: object) -> None:
        ticks = itertools.count()
        self.recorder = Recorder(protocol, clock=lambda: NOW + next(ticks))
        if protocol == "smtp":
            self.session = smtp_server.ServerSession(
                smtp_server.ServerConfig(**config), st, clock=lambda: NOW,
                on_step=self.recorder)
        else:
            tokens = itertools.count(1)
            self.session = pop3_server.ServerSession(
                pop3_server.ServerConfig(**config), st, clock=lambda: NOW,
                on_step=self.recorder, token=lambda: f"<{next(tokens)}.{int(NOW)}@mail.test>")
        self.out = self.session.initiate()

    @property
    def transcript(self) -> Transcript:
        return self.recorder.transcript

    def send(self, line: str | bytes) -> bytes:
        if self.session.closed:
            raise ConnectionClosed("the server closed the connection")
        data = line if isinstance(line, bytes) else line.encode("utf-8") + b"\r\n"
        out = self.session.receive(data)
        while getattr(self.session, "has_more_output", False):
            out += self.session.more()
        if self.session.tls_requested:
            self.session.tls_started()
        self.out += out
        return out

    # the shape Stepper.from_script expects
    def step_fn(self, line: str) -> None:
        self.send(line)


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


SMTP_SCRIPT = [
    "NOOP",
    "MAIL FROM:<alice@local.test>",  # 503: send HELO/EHLO first
    "EHLO client.test",
    "HELP",
    "VRFY bob",
    "EXPN staff",
    "AUTH PLAIN " + b64("\0alice\0secret"),
    "MAIL FROM:<alice@local.test> SIZE=120",
    "RCPT TO:<nobody@local.test>",  # 550
    "RCPT TO:<bob@local.test>",
    "RCPT TO:<staff@local.test>",
    "DATA",
    "Subject: hello\r\n\r\n.a dot-stuffed line\r\nbye\r\n.",
    "RSET",
    "QUIT",
]


def smtp_transcript(tmp_path: Path, script: list[str] | None = None, **config: object
                    ) -> Transcript:
    live = Live("smtp", store(tmp_path), **config)
    for line in script if script is not None else SMTP_SCRIPT:
        live.send(line)
    return live.transcript


def pop3_transcript(tmp_path: Path, script: list[str] | None = None, **config: object
                    ) -> Transcript:
    st = store(tmp_path)
    deliver(st, "alice", b"From: bob@local.test\r\nSubject: one\r\n\r\nfirst\r\n")
    deliver(st, "alice", b"From: bob@local.test\r\nSubject: two\r\n\r\n.second\r\n")
    live = Live("pop3", st, **config)
    for line in script if script is not None else [
        "CAPA", "STAT", "USER alice", "PASS wrong", "USER alice", "PASS secret", "STAT",
        "LIST", "UIDL 1", "RETR 2", "TOP 1 0", "DELE 1", "DELE 1", "DELE 9", "RSET", "DELE 2",
        "NOOP", "QUIT",
    ]:
        live.send(line)
    return live.transcript
