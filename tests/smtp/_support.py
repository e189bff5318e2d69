"""Drive the sans-I/O SMTP core with a client script, WHOLE and ONE BYTE AT A TIME.

A script is a list of steps: ``bytes`` are one client write; the markers below are transport
events.  :func:`converse` runs the script twice, in fresh data directories: once with every write
given to ``receive`` in one call, once byte by byte.  The replies and everything stored (each
Maildir's ``new/``, the outbox) must come out identical, so no test can pass by luck of where a
TCP segment happened to end.  It returns the whole-write run for the test to check the bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from mailproto.smtp.server import ServerConfig, ServerSession
from mailproto.smtp.states import State
from mailproto.store import Store, Users

USERS = """\
# test users
alice:secret
bob:hunter2
Carol:pa:ss
staff: alice, bob
all: staff, Carol, dave@remote.test
"""
NOW = 1_000_000_000.0
DATE = "Sun, 09 Sep 2001 01:46:40 +0000"
QID = "E8D4A5100000"  # f"{int(NOW * 1000):X}{n:02X}" for message n of a session
HOST = "mail.test"
GREETING = b"220 mail.test ESMTP mailproto\r\n"
CRAM_TOKEN = "<1000000000000@mail.test>"  # int(clock() * 1000) @ hostname


def clock() -> float:
    return NOW


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


TLS = _Marker("TLS")  # the transport finished the handshake (only if STARTTLS asked for it)
TIMEOUT = _Marker("TIMEOUT")  # the idle timer fired
SHUTDOWN = _Marker("SHUTDOWN")  # the server is stopping
DROP = _Marker("DROP")  # the client went away

Step = bytes | _Marker


@dataclass
class Run:
    out: bytes
    session: ServerSession
    store: Store
    root: Path

    def stored(self, box: str = "alice") -> list[bytes]:
        return mailbox_files(self.root, box)

    @property
    def replies(self) -> list[bytes]:
        return split_replies(self.out)


def split_replies(out: bytes) -> list[bytes]:
    """Cut the server output into replies (a multi-line reply is one item)."""
    replies: list[bytes] = []
    current = b""
    for line in out.splitlines(keepends=True):
        current += line
        if line[3:4] != b"-":
            replies.append(current)
            current = b""
    assert not current, f"unterminated reply {current!r}"
    return replies


def mailbox_files(root: Path, box: str) -> list[bytes]:
    """Contents of ``<root>/<box>/new/``, in arrival (file name) order."""
    new = root / box / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir(), key=lambda p: p.name)]


def snapshot(root: Path, receiving: bool = False) -> dict[str, list[bytes]]:
    """Everything delivered under ``root`` (sorted contents per ``new/``).

    Also checks the storage invariants: no file left in any ``tmp/``, none in the spool (unless
    a message is still ``receiving``).
    """
    out: dict[str, list[bytes]] = {}
    for new in sorted(root.glob("*/new")) + sorted(root.glob(".outbox/new")):
        files = sorted(p.read_bytes() for p in new.iterdir())
        if files:
            out[new.parent.name] = files
    leftovers = [p for p in root.glob("*/tmp/*")] + [p for p in root.glob(".outbox/tmp/*")]
    if not receiving and (root / ".spool").is_dir():
        leftovers += list((root / ".spool").iterdir())
    assert not leftovers, f"half-written files left: {leftovers}"
    return out


def run_script(root: Path, script: list[Step], *, bytewise: bool,
               config: ServerConfig | None = None, users: str = USERS, tls: bool = False,
               peer_ip: str = "127.0.0.1") -> Run:
    store = Store(root, Users.parse(users))
    session = ServerSession(config or ServerConfig(), store, peer_ip=peer_ip, clock=clock,
                            tls=tls)
    out = session.initiate()
    for step in script:
        if step is TLS:
            if session.tls_requested:
                session.tls_started()
        elif step is TIMEOUT:
            out += session.timeout()
        elif step is SHUTDOWN:
            out += session.shutdown()
        elif step is DROP:
            session.connection_lost()
        elif bytewise:
            assert isinstance(step, bytes)
            for i in range(len(step)):
                out += session.receive(step[i : i + 1])
        else:
            assert isinstance(step, bytes)
            out += session.receive(step)
    return Run(out, session, store, root)


def converse(tmp_path: Path, *script: Step, **kw: object) -> Run:
    """Run ``script`` whole and byte by byte; assert both give the same bytes and mailboxes."""
    whole = run_script(tmp_path / "whole", list(script), bytewise=False, **kw)  # type: ignore[arg-type]
    single = run_script(tmp_path / "bytes", list(script), bytewise=True, **kw)  # type: ignore[arg-type]
    assert whole.out == single.out, "replies differ between one write and byte-at-a-time"
    receiving = whole.session.state is State.DATA
    assert snapshot(whole.root, receiving) == snapshot(single.root, receiving), \
        "stored mail differs"
    assert whole.session.state == single.session.state
    assert whole.session.closed == single.session.closed
    return whole


def lines(*commands: str | bytes) -> bytes:
    """Command lines joined with CRLF (pipelined in one write)."""
    return b"".join((c.encode() if isinstance(c, str) else c) + b"\r\n" for c in commands)


def trace(sender: str = "sender@remote.test", rcpt: str | None = "alice@local.test",
          proto: str = "ESMTP", helo: str = "client.test", qid: str = QID,
          ip: str = "127.0.0.1") -> bytes:
    """The two trace header fields our server prepends (RFC 5321 §4.4), LF-ended."""
    for_part = f"\tfor <{rcpt}>; {DATE}\n" if rcpt is not None else f"\t; {DATE}\n"
    return (f"Return-Path: <{sender}>\n"
            f"Received: from {helo} ([{ip}])\n"
            f"\tby {HOST} (mailproto) with {proto} id {qid}\n" + for_part).encode()


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


EHLO_REPLY = (b"250-mail.test Hello client.test [127.0.0.1]\r\n"
              b"250-PIPELINING\r\n"
              b"250-SIZE 10240000\r\n"
              b"250-8BITMIME\r\n"
              b"250-ENHANCEDSTATUSCODES\r\n"
              b"250-SMTPUTF8\r\n"
              b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
              b"250 HELP\r\n")
MAIL_OK = b"250 2.1.0 Ok\r\n"
RCPT_OK = b"250 2.1.5 Ok\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
OK = b"250 2.0.0 Ok\r\n"
BYE = b"221 2.0.0 Bye\r\n"


def queued(n: int = 0) -> bytes:
    return f"250 2.0.0 Ok: queued as E8D4A51000{n:02X}\r\n".encode()


def envelope(sender: str = "sender@remote.test", *rcpts: str, ehlo: str = "EHLO client.test"
             ) -> bytes:
    """EHLO, MAIL, RCPT..., DATA as one pipelined write."""
    rcpts = rcpts or ("alice@local.test",)
    return lines(ehlo, f"MAIL FROM:<{sender}>", *(f"RCPT TO:<{r}>" for r in rcpts), "DATA")


def envelope_replies(n_rcpt: int = 1, ehlo: bytes = EHLO_REPLY) -> bytes:
    return GREETING + ehlo + MAIL_OK + RCPT_OK * n_rcpt + GO_AHEAD
