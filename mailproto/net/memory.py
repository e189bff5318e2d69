"""The in-memory pair: our clients wired straight to our server cores, with no socket.

    with MemoryLab(demo=True) as lab:
        smtp = lab.smtp_client()          # an SMTPClient, connected (greeting read)
        smtp.ehlo("student.example")
        pop = lab.pop3_client()           # a POP3Client on the same mail store
        pop.user("username"); pop.pass_("password")

Everything is deterministic — a fixed clock that ticks a millisecond per reading, a fixed host
name, predictable Maildir names — so a notebook gives the same output on every run, and the
transcripts equal those of the same script over TCP apart from times and ports.  The bytes are
exactly what the server cores would put on the wire; only the socket is missing.  There is no
real TLS in memory: STARTTLS/STLS are answered and the handshake is simulated (the session
starts over, as RFC 3207 §4.2 says); use a real server (``BackgroundServer``) to see TLS.
"""

from __future__ import annotations

import itertools
import ssl
import tempfile
from pathlib import Path
from typing import Any

from ..pop3.server import ServerConfig as POP3Config
from ..pop3.server import ServerSession as POP3Session
from ..smtp.server import ServerConfig as SMTPConfig
from ..smtp.server import ServerSession as SMTPSession
from ..store import Store, Users
from .pop3_client import POP3Client
from .smtp_client import SMTPClient

#: Mon, 06 Feb 2006 13:41:07 +0800: the moment of the seed article's telnet session.
SEED_TIME = 1139204467.0


class FixedClock:
    """A clock for reproducible sessions: starts at ``start`` and ticks ``tick`` per reading."""

    def __init__(self, start: float = SEED_TIME, tick: float = 0.001) -> None:
        self._start = start
        self._tick = tick
        self._count = 0

    def __call__(self) -> float:
        # Computed, not summed, so the times stay round (no 0.0019999 in a saved transcript).
        now = round(self._start + self._count * self._tick, 6)
        self._count += 1
        return now


class MemoryChannel:
    """A :class:`~mailproto.net.channel.Channel` whose far end is a server core."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self._inbox = bytearray(core.initiate())
        self._closed = False

    def send(self, data: bytes) -> None:
        if self._closed or self.core.closed:
            raise BrokenPipeError("the server closed the connection")
        out = self.core.receive(data)
        while getattr(self.core, "has_more_output", False):
            out += self.core.more()
        self._inbox += out

    def recv(self, max_bytes: int) -> bytes:
        if self._inbox:
            data = bytes(self._inbox[:max_bytes])
            del self._inbox[:max_bytes]
            return data
        if self.core.closed or self._closed:
            return b""
        # A socket would wait forever: in memory, silence is known at once.
        raise TimeoutError("the server has nothing more to say")

    def pending(self) -> bool:
        return bool(self._inbox) or self.core.closed

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """No real TLS in memory: the server core is told the handshake happened."""
        self.core.tls_started()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if not self.core.closed:
                self.core.connection_lost()


class MemoryLab:
    """A mail store and our two server cores, reachable through in-memory clients."""

    def __init__(self, users: dict[str, str] | None = None, *, demo: bool = False,
                 data: str | Path | None = None, hostname: str = "mail.test",
                 domains: tuple[str, ...] = ("local.test",), enable_vrfy: bool = False,
                 clock: FixedClock | None = None, lists: dict[str, list[str]] | None = None
                 ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mailproto-memory-")
            data = self._tmp.name
        self.data = Path(data)
        self.clock = clock or FixedClock()
        self.hostname = hostname
        if demo:
            from ..demo import create_demo_store

            parsed = Users.load(create_demo_store(self.data))
        else:
            parsed = Users.parse("")
        for name, password in (users or {}).items():
            parsed.passwords[name] = password
            parsed._canon[name.lower()] = name
        for name, members in (lists or {}).items():
            parsed.lists[name.lower()] = list(members)
        counter = itertools.count(1)
        self.store = Store(self.data, parsed,
                           unique=lambda: f"{int(self.clock())}.M{next(counter):06d}P1.{hostname}")
        self.smtp_config = SMTPConfig(hostname=hostname, domains=domains, starttls=True,
                                      enable_vrfy=enable_vrfy, auth_failure_delay=0.0)
        self.pop3_config = POP3Config(hostname=hostname, stls=True, auth_failure_delay=0.0)
        self._tokens = itertools.count(1)

    def _token(self) -> str:
        return f"<{next(self._tokens)}.{int(self.clock())}@{self.hostname}>"

    # -- server cores and clients ----------------------------------------------------------
    def smtp_session(self) -> SMTPSession:
        return SMTPSession(self.smtp_config, self.store, clock=self.clock, token=self._token)

    def pop3_session(self) -> POP3Session:
        return POP3Session(self.pop3_config, self.store, clock=self.clock, token=self._token)

    def smtp_client(self, local_hostname: str = "client.example") -> SMTPClient:
        """An :class:`SMTPClient` connected to a fresh SMTP server session (greeting read)."""
        client = SMTPClient("memory", 25, local_hostname=local_hostname,
                            channel=MemoryChannel(self.smtp_session()), clock=self.clock)
        client.connect()
        return client

    def pop3_client(self) -> POP3Client:
        """A :class:`POP3Client` connected to a fresh POP3 server session (greeting read)."""
        client = POP3Client("memory", 110, channel=MemoryChannel(self.pop3_session()),
                            clock=self.clock)
        client.connect()
        return client

    def maildir(self, user: str) -> Path:
        return self.data / user

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> MemoryLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
