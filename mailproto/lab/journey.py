"""The journey of a message: alice's server, relays, bob's server, bob's POP3 client, one cell.

    from mailproto.lab.journey import Journey

    journey = Journey.run(hops=3, subject="Hello", body="Hi Bob!")  # start, send, stop
    journey                      # the whole story: picture, Received: chain, sequence, sessions

or, to keep the servers up while you look around::

    with Journey.start(hops=3) as journey:
        journey.send(subject="Hello", body="Hi Bob!")
        journey.received_chain()

``hops`` counts SMTP hops, i.e. the servers the message passes, i.e. the ``Received:`` lines bob
will find: 2 is alice's submission server ``smtp.a.test`` and bob's ``mx.b.test``; 3 puts the
relay ``relay.r.test`` between them.  Each server is a real ``mailproto serve``
(:class:`~mailproto.net.runner.BackgroundServer`) on free loopback ports, with static routes from
one to the next.  Accounts: ``alice``/``alice-pw`` on ``a.test``, ``bob``/``bob-pw`` and
``carol``/``carol-pw`` on ``b.test``.

Everything shown comes from recorded transcripts: the first hop is our
:class:`~mailproto.net.smtp_client.SMTPClient` (alice submitting), the server-to-server hops are
the relays' own SMTP clients (:attr:`mailproto.net.relay.Relay.on_transcript`), the last is our
:class:`~mailproto.net.pop3_client.POP3Client` (bob fetching).  The views read those records
only, so they still work after the servers are stopped.

``fault=`` puts a fault scenario (:mod:`mailproto.smtp.faults`) on bob's server, with short
retry times: ``data-421`` and ``drop-mid-data`` are retried until the queue lifetime runs out,
then alice gets exactly one bounce (fetched from ``smtp.a.test`` with POP3); ``rcpt-452`` refuses
the *second* recipient once (so the journey sends to bob and carol) and the retry delivers it;
``slow`` makes every reply wait 2 s.

``deterministic=True`` makes every view the same from run to run, for notebooks saved with their
outputs: servers are named, never numbered by port; ports, dates, queue ids, the APOP timestamp
and the Message-ID become placeholders (``127.0.0.1:PORT``, ``QID1``, ``<MESSAGE-ID@a.test>``,
dates as ``Day, DD Mon YYYY hh:mm:ss +0000``); the sequence diagram draws the hops one after
another instead of by wall-clock time.  The recorded transcripts themselves are never changed.

This module starts the servers, sends the message and collects the records.  The records
(:class:`Hop`, :class:`Bounce`, the cast) are in :mod:`.journey_hops`, the placeholders in
:mod:`.masker`, the pictures and HTML in :mod:`.journey_views`; ``Hop``, ``Bounce``,
``JourneyFigure`` and ``Masker`` are still importable from here.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from ..net.pop3_client import POP3Client
from ..net.relay import HopTranscript
from ..net.runner import BackgroundServer
from ..net.smtp_client import SMTPClient
from ..smtp.faults import FAULTS
from ..store import Maildir
from ..transcript import Transcript
from .journey_hops import (
    ALICE,
    ALICE_CLIENT,
    ALICE_HELO,
    BOB,
    BOB_CLIENT,
    CAROL,
    PASSWORDS,
    RECIPIENT_DOMAIN,
    SENDER_DOMAIN,
    Bounce,
    Hop,
    build_hops,
)
from .journey_views import (
    JourneyFigure,
    hop_html,
    journey_html,
    sequence_figure,
    shown_hops,
    topology_figure,
    transcripts_html,
)
from .masker import DATE_PLACEHOLDER as DATE_PLACEHOLDER
from .masker import Masker
from .topology import ReceivedChain

__all__ = ["Bounce", "Hop", "Journey", "JourneyFigure", "Masker"]

#: How often each relay looks at its queue (the server's default is 0.5 s).
RELAY_INTERVAL = 0.1


# -- the servers -----------------------------------------------------------------------------
@dataclass
class _Server:
    name: str  # its hostname, and its name in every view
    domain: str
    role: str  # "submission", "relay", "final"
    background: BackgroundServer

    @property
    def smtp(self) -> tuple[str, int]:
        return (self.background.host, self.background.smtp_port)

    @property
    def pop3(self) -> tuple[str, int]:
        return (self.background.host, self.background.pop3_port)

    @property
    def data(self) -> Path:
        return self.background.data


# -- the journey -----------------------------------------------------------------------------
class _HTML:
    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html


class Journey:
    """A small mail topology on loopback, one message through it, and everything recorded.

    Use :meth:`start` (a context manager: leaving it stops every server) or :meth:`run`.
    """

    def __init__(self, hops: int = 3, fault: str | None = None, *, deterministic: bool = False,
                 retry_base: float = 0.5, queue_lifetime: float | None = None,
                 auth: str = "PLAIN", data: Path | str | None = None) -> None:
        if hops < 2:
            raise ValueError("hops counts SMTP hops, one per server: at least 2 (alice's "
                             "submission server and bob's server)")
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: choose from {', '.join(FAULTS)}")
        self.n_hops = hops
        self.fault = fault
        self.deterministic = deterministic
        self.retry_base = retry_base
        self.queue_lifetime = queue_lifetime if queue_lifetime is not None else (
            86400.0 if fault is None else 3.0)
        self.auth = auth
        self._data = Path(data) if data is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.servers: list[_Server] = []
        self._lock = threading.Lock()
        self._relayed: list[tuple[str, HopTranscript]] = []
        self._threads_before: set[threading.Thread] = set()
        self._submission: Transcript | None = None
        self._pop3: list[tuple[str, str, Transcript]] = []  # (client, server name, transcript)
        self.recipients: list[str] = []
        self.message_id = ""
        self.subject = ""
        #: What bob's POP3 client got (RETR, CRLF line ends), or None if nothing arrived.
        self.retrieved: bytes | None = None
        #: bob's message as mx.b.test stored it in his Maildir (LF line ends).
        self.delivered: bytes | None = None
        self.bounces: list[Bounce] = []
        self.elapsed: float | None = None  # seconds from submission to the end of the journey
        self._masker: Masker | None = None
        #: Server name -> {"SMTP": port, "POP3": port}: known once started, kept after the stop.
        self.ports: dict[str, dict[str, int]] = {}
        self.running = False

    # -- life cycle ----------------------------------------------------------------------------
    @classmethod
    def start(cls, hops: int = 3, fault: str | None = None, **options: Any) -> Journey:
        """Start the servers (on free loopback ports) and return the journey, ready to send."""
        journey = cls(hops, fault, **options)
        journey._start()
        return journey

    @classmethod
    def run(cls, hops: int = 3, fault: str | None = None, *, subject: str = "The journey",
            body: str = "Hello Bob,\n\nthis message went through several servers.\n\nAlice\n",
            timeout: float | None = None, **options: Any) -> Journey:
        """Start, send one message, stop; the journey keeps everything it recorded."""
        with cls.start(hops, fault, **options) as journey:
            journey.send(subject=subject, body=body, timeout=timeout)
        return journey

    def __enter__(self) -> Journey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _names(self) -> list[tuple[str, str, str]]:
        relays = self.n_hops - 2
        names = [("smtp.a.test", SENDER_DOMAIN, "submission")]
        for k in range(relays):
            host = "relay.r.test" if relays == 1 else f"relay{k + 1}.r.test"
            names.append((host, "r.test", "relay"))
        names.append(("mx.b.test", RECIPIENT_DOMAIN, "final"))
        return names

    def _start(self) -> None:
        self._threads_before = set(threading.enumerate())
        if self._data is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mailproto-journey-")
            root = Path(self._tmp.name)
        else:
            root = self._data
            root.mkdir(parents=True, exist_ok=True)
        users = {"submission": "alice:alice-pw\n", "relay": "# this server only relays\n",
                 "final": "bob:bob-pw\ncarol:carol-pw\n"}
        try:
            started: list[_Server] = []
            next_hop: tuple[str, int] | None = None
            for host, domain, role in reversed(self._names()):  # bob's server first
                folder = root / host
                folder.mkdir()
                (root / f"{host}.users").write_text(users[role])
                options: dict[str, Any] = dict(
                    data=folder, users=root / f"{host}.users", domains=[domain], hostname=host,
                    auth_failure_delay=0.0, retry_base=self.retry_base,
                    queue_lifetime=self.queue_lifetime,
                    pop3_port=None if role == "relay" else 0)
                if next_hop is not None:
                    options["routes"] = {RECIPIENT_DOMAIN: next_hop}
                if role == "relay":
                    options["relay_domains"] = [RECIPIENT_DOMAIN]
                if role == "final" and self.fault:
                    options["fault"] = self.fault
                server = _Server(host, domain, role, BackgroundServer(**options))
                started.append(server)
                self.servers = started[::-1]
                server.background.start()
                relay = server.background.server.relay if server.background.server else None
                if relay is not None:
                    relay.policy.interval = RELAY_INTERVAL
                    relay.on_transcript = functools.partial(self._on_relayed, host)
                next_hop = server.smtp
            # Bounces travel back to a.test: every other server routes it to alice's server.
            for server in self.servers[1:]:
                bg = server.background.server
                if bg is not None and bg.relay is not None:
                    bg.relay.policy.routes[SENDER_DOMAIN] = self.servers[0].smtp
            for server in self.servers:
                srv = server.background.server
                assert srv is not None
                self.ports[server.name] = {k: port for k, (_, port) in srv.addresses.items()}
            self.running = True
        except BaseException:
            self.stop()
            raise

    def _on_relayed(self, relayer: str, record: HopTranscript) -> None:
        with self._lock:  # called from the relays' threads
            self._relayed.append((relayer, record))

    def stop(self) -> None:
        """Stop every server, wait for their threads, delete the temporary data."""
        self.running = False
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.background.stop()
        # stop() joined each server's thread; the worker threads of their loops (asyncio's
        # default executor, where the relays run) end just after: wait for those we started.
        deadline = time.monotonic() + 2.0
        for thread in threading.enumerate():
            if thread not in self._threads_before and thread.name.startswith("asyncio_"):
                thread.join(max(deadline - time.monotonic(), 0.0))
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- the message -------------------------------------------------------------------------
    def send(self, subject: str = "The journey",
             body: str = "Hello Bob,\n\nthis message went through several servers.\n\nAlice\n",
             *, to: Sequence[str] | None = None, timeout: float | None = None) -> Journey:
        """alice submits one message; wait (at most ``timeout`` s) until no server holds it
        queued any more, then bob fetches his mail with POP3 (and alice her bounces, if any)."""
        if self._submission is not None:
            raise RuntimeError("one message per journey: start another journey to send again")
        if not self.running:
            raise RuntimeError("the servers are not running: use Journey.start(...)")
        recipients = list(to) if to else ([BOB, CAROL] if self.fault == "rcpt-452" else [BOB])
        if timeout is None:
            timeout = 30.0 + (4 * self.queue_lifetime if self.fault else 0.0) + \
                (15.0 * (self.n_hops - 1) if self.fault == "slow" else 0.0)
        msg = EmailMessage()
        msg["From"] = f"Alice <{ALICE}>"
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(timezone.utc))
        self.message_id = f"<{uuid.uuid4().hex}@{SENDER_DOMAIN}>"
        msg["Message-ID"] = self.message_id
        msg.set_content(body)
        self.subject, self.recipients = subject, recipients
        first = self.servers[0]
        started = time.monotonic()
        client = SMTPClient(*first.smtp, timeout=10.0, local_hostname=ALICE_HELO)
        try:
            with client:
                client.ehlo()
                client.login("alice", PASSWORDS["alice"], mechanism=self.auth)
                client.send_message(msg, ALICE, recipients)
        finally:
            self._submission = client.transcript
        self._wait(started + timeout)
        self.elapsed = time.monotonic() - started
        self._fetch()
        self._masker = None
        return self

    def _wait(self, deadline: float) -> None:
        """Until every outbox is empty: delivered, or bounced and the bounce delivered.  (A
        server puts a message in its outbox before it says 250, and the previous one removes
        it only after that 250, so an empty set of outboxes means the journey is over.)"""
        boxes = [(s.name, Maildir(s.data / ".outbox", create=False)) for s in self.servers]
        while True:
            holding = [name for name, box in boxes if box.message_paths()]
            if not holding:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"still queued at {', '.join(holding)}: the journey did not "
                                   f"end in time (see journey.hops for what happened)")
            time.sleep(0.05)

    def _fetch(self) -> None:
        last = self.servers[-1]
        count, body = self._pop3_session(BOB_CLIENT, last, "bob")
        self.retrieved = body
        bob_box = Maildir(last.data / "bob", create=False).message_paths()
        self.delivered = bob_box[-1].read_bytes() if bob_box else None
        first = self.servers[0]
        if Maildir(first.data / "alice", create=False).message_paths():
            self._pop3_session(ALICE_CLIENT, first, "alice", all_messages=True)

    def _pop3_session(self, client_name: str, server: _Server, user: str,
                      all_messages: bool = False) -> tuple[int, bytes | None]:
        pop = POP3Client(*server.pop3, timeout=10.0)
        body = None
        try:
            with pop:
                pop.user(user)
                pop.pass_(PASSWORDS[user])
                count, _ = pop.stat()
                pop.list()
                for n in range(1, count + 1) if all_messages else [count] if count else []:
                    body = pop.retr(n).body
                    if all_messages and body is not None:
                        self.bounces.append(Bounce.parse(body))
        finally:
            self._pop3.append((client_name, server.name, pop.transcript))
        return count, body

    # -- what happened -----------------------------------------------------------------------
    @property
    def hops(self) -> list[Hop]:
        """Every connection of the journey in the order they began: alice's submission, each
        server-to-server attempt (retries and the bounce included), then the POP3 sessions."""
        with self._lock:
            relayed = list(self._relayed)
        return build_hops([s.name for s in self.servers], self._submission, relayed, self._pop3,
                          self.ports)

    @property
    def attempts(self) -> list[Hop]:
        """The server-to-server delivery attempts (retries included, the bounce excluded)."""
        return [h for h in self.hops if h.kind == "relay"]

    @property
    def delivered_ok(self) -> bool:
        return self.retrieved is not None

    def masker(self) -> Masker:
        """The placeholders of ``deterministic=True`` for this journey."""
        if self._masker is None:
            texts = [h.transcript.to_text() for h in self.hops]
            texts += [b.data.decode("utf-8", "replace") for b in self.bounces]
            literals = {self.message_id: f"<MESSAGE-ID@{SENDER_DOMAIN}>"} if self.message_id \
                else {}
            self._masker = Masker(texts, literals)
        return self._masker

    # -- views -------------------------------------------------------------------------------
    def topology(self) -> JourneyFigure:
        """The picture: a box per client and server, an arrow per link, with protocol and port
        (server names only with ``deterministic=True``); retries, failures and the bounce show
        once the message went."""
        return JourneyFigure(functools.partial(topology_figure, self), "topology")

    def sequence(self) -> JourneyFigure:
        """All hops as one sequence diagram: a lifeline per client and server."""
        if not self.hops:
            raise RuntimeError("nothing to draw yet: send a message first")
        return JourneyFigure(functools.partial(sequence_figure, self), "sequence")

    def received_chain(self) -> ReceivedChain:
        """The ``Received:`` lines of the message bob fetched, parsed, with the reading order
        explained."""
        if self.retrieved is None:
            raise RuntimeError("bob received nothing: " + ("the message bounced (see "
                               "journey.bounces)" if self.bounces else "send a message first"))
        data = self.masker().bytes(self.retrieved) if self.deterministic else self.retrieved
        return ReceivedChain.parse(data)

    def transcripts(self) -> _HTML:
        """Every hop's annotated transcript, each folded under its name."""
        return _HTML(transcripts_html(self))

    def transcript_view(self, index: int) -> _HTML:
        """One hop's annotated transcript (``journey.hops[index]``)."""
        hop, shown = shown_hops(self)[index]
        return _HTML(hop_html(self, hop, shown, open_=True))

    def _repr_html_(self) -> str:
        return journey_html(self)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<Journey {self.n_hops} hops, {state}, {len(self.hops)} connections"
                + (f", fault {self.fault}" if self.fault else "") + ">")
