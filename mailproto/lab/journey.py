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
"""

from __future__ import annotations

import contextlib
import functools
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..net.pop3_client import POP3Client
from ..net.relay import HopTranscript, Outcome
from ..net.runner import BackgroundServer
from ..net.smtp_client import SMTPClient
from ..smtp.faults import FAULTS
from ..store import Maildir
from ..transcript import CLIENT, SERVER, Step, Transcript
from . import palette
from .sequence import draw_sequence
from .topology import (
    BOUNCE,
    CELL,
    CODE,
    FAILED,
    HEADING,
    OK,
    PARA,
    POP3,
    RELAY,
    RETRIED,
    SANS,
    SMTP,
    Link,
    Node,
    ReceivedChain,
    draw_topology,
)
from .transcript_html import render_transcript
from .views import _FigureView, inline_svg

__all__ = ["Bounce", "Hop", "Journey", "JourneyFigure", "Masker"]

SENDER_DOMAIN, RECIPIENT_DOMAIN = "a.test", "b.test"
ALICE, BOB, CAROL = "alice@a.test", "bob@b.test", "carol@b.test"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
ALICE_CLIENT, BOB_CLIENT = "alice's client", "bob's client"
ALICE_HELO = "alice-laptop"
#: How often each relay looks at its queue (the server's default is 0.5 s).
RELAY_INTERVAL = 0.1


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hop:
    """One connection of the journey and its transcript.  Unpacks as ``(name, transcript)``."""

    name: str
    transcript: Transcript
    client: str  # the party that connected (as in the diagrams)
    server: str
    kind: str  # "submission", "relay", "bounce" (SMTP) or "pop3"
    address: tuple[str, int]
    attempt: int = 1
    result: str = ""
    started: float = 0.0

    def __iter__(self) -> Iterator[Any]:
        return iter((self.name, self.transcript))

    @property
    def protocol(self) -> str:
        return self.transcript.protocol

    def commands(self) -> list[str]:
        """The verbs the client sent, in order (``["EHLO", "AUTH", "MAIL", ...]``)."""
        out = []
        for step in self.transcript:
            if step.direction == CLIENT and step.kind == "command":
                verb = step.parsed.get("verb") or step.text.split(" ", 1)[0]
                out.append(str(verb).strip().upper())
        return out


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification (RFC 3464) as alice fetched it."""

    data: bytes
    recipients: tuple[str, ...]
    statuses: tuple[str, ...]
    diagnostics: tuple[str, ...]
    reporting_mta: str

    @classmethod
    def parse(cls, data: bytes) -> Bounce:
        text = data.decode("utf-8", "replace")

        def all_of(pattern: str) -> tuple[str, ...]:
            return tuple(m.strip() for m in re.findall(pattern, text, re.M))

        mta = all_of(r"^Reporting-MTA:\s*dns;\s*(.+?)\r?$")
        return cls(data, all_of(r"^Final-Recipient:\s*rfc822;\s*(.+?)\r?$"),
                   all_of(r"^Status:\s*(.+?)\r?$"),
                   all_of(r"^Diagnostic-Code:\s*smtp;\s*(.+?)\r?$"), mta[0] if mta else "")


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


# -- deterministic views ---------------------------------------------------------------------
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


# -- the journey -----------------------------------------------------------------------------
class JourneyFigure(_FigureView):
    """A figure view (SVG, PNG and HTML for notebooks) drawn by a function on demand."""

    def __init__(self, draw: Callable[[], Figure], what: str) -> None:
        self._draw = draw
        self.what = what

    def figure(self) -> Figure:
        return self._draw()

    def _repr_html_(self) -> str:
        return inline_svg(self._repr_svg_())

    def __repr__(self) -> str:
        return f"<JourneyFigure {self.what}>"


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
        names = [s.name for s in self.servers]
        out: list[Hop] = []
        if self._submission is not None:
            out.append(Hop(f"hop 1: {ALICE_CLIENT} → {names[0]} (submission)", self._submission,
                           ALICE_CLIENT, names[0], "submission", self._address(names[0]), 1,
                           _data_reply(self._submission), _start_time(self._submission)))
        with self._lock:
            relayed = list(self._relayed)
        by_port = {port["SMTP"]: name for name, port in self.ports.items() if "SMTP" in port}
        tries: dict[tuple[str, str], int] = {}
        for relayer, rec in relayed:
            tries[(relayer, rec.queue)] = tries.get((relayer, rec.queue), 0) + 1
        smtp_hops = []
        for relayer, rec in relayed:
            target = by_port.get(rec.hop[1], f"{rec.hop[0]}:{rec.hop[1]}")
            bounce = _null_sender(rec.transcript)
            if bounce:
                name, kind = f"the bounce: {relayer} → {target} (MAIL FROM:<>)", "bounce"
            else:
                k = names.index(target) + 1 if target in names else 0
                name, kind = f"hop {k}: {relayer} → {target}", "relay"
            if tries[(relayer, rec.queue)] > 1:
                name += f", attempt {rec.attempt}"
            smtp_hops.append(Hop(name, rec.transcript, relayer, target, kind, rec.hop,
                                 rec.attempt, _outcome_text(rec.outcome),
                                 _start_time(rec.transcript)))
        out += sorted(smtp_hops, key=lambda h: h.started)
        for client, server, transcript in self._pop3:
            user = "bob" if client == BOB_CLIENT else "alice"
            what = "his mail" if user == "bob" else "her bounce"
            out.append(Hop(f"POP3: {client} fetches {what} from {server}", transcript, client,
                           server, "pop3", self._address(server, "POP3"), 1,
                           _pop3_result(transcript), _start_time(transcript)))
        return out

    def _address(self, name: str, listener: str = "SMTP") -> tuple[str, int]:
        return ("127.0.0.1", self.ports.get(name, {}).get(listener, 0))

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

    def _shown(self, hops: Sequence[Hop] | None = None) -> list[tuple[Hop, Transcript]]:
        hops = self.hops if hops is None else hops
        if not self.deterministic:
            return [(h, h.transcript) for h in hops]
        m = self.masker()
        return [(h, m.transcript(h.transcript, k)) for k, h in enumerate(hops)]

    def _text(self, text: str) -> str:
        return self.masker().text(text) if self.deterministic else text

    # -- views -------------------------------------------------------------------------------
    def topology(self) -> JourneyFigure:
        """The picture: a box per client and server, an arrow per link, with protocol and port
        (server names only with ``deterministic=True``); retries, failures and the bounce show
        once the message went."""
        return JourneyFigure(self._topology_figure, "topology")

    def _topology_figure(self) -> Figure:
        names = [s.name for s in self.servers]
        subtitles = {"submission": "submission · a.test\nalice's mailbox",
                     "relay": "relay", "final": "b.test · MX\nbob's mailbox"}
        nodes = [Node("alice", ALICE_CLIENT, ALICE, "client")]
        nodes += [Node(s.name, s.name, subtitles[s.role]) for s in self.servers]
        nodes.append(Node("bob", BOB_CLIENT, BOB, "client"))
        attempts = self.attempts
        links = [Link("alice", names[0], "SMTP",
                      self._port_line(names[0], "SMTP", f"AUTH {self.auth}"), SMTP)]
        for a, b in zip(names, names[1:], strict=False):
            tries = [h for h in attempts if h.client == a and h.server == b]
            ok = any(h.result.startswith("accepted") for h in tries)
            failed = any(not _complete(h) for h in tries)
            outcome = FAILED if tries and not ok else RETRIED if failed else OK
            n = len({h.attempt for h in tries})
            extra = f"{n} attempt{'' if n == 1 else 's'}" if failed else ""
            links.append(Link(a, b, "SMTP relay", self._port_line(b, "SMTP", extra), RELAY,
                              outcome))
        got = self.retrieved is not None or self._submission is None
        links.append(Link(names[-1], "bob", "POP3", self._port_line(
            names[-1], "POP3", "bob connects" if got else "mailbox empty"), POP3,
            OK if got else FAILED))
        for h in self.hops:
            if h.kind == "bounce":
                links.append(Link(h.client, h.server, "bounce: SMTP, MAIL FROM:<>", "", BOUNCE))
        if self.bounces:
            links.append(Link(names[0], "alice", "POP3: alice fetches the bounce",
                              "" if self.deterministic else self._port_line(names[0], "POP3"),
                              POP3))
        title = (f"The journey of a message: {ALICE} → {', '.join(self.recipients or [BOB])}, "
                 f"{self.n_hops} SMTP hops" + (f", fault {self.fault} at {names[-1]}"
                                               if self.fault else ""))
        caption = ("Arrows follow the message. SMTP pushes: the sender connects. POP3 pulls: "
                   "bob's client connects to its server and downloads.")
        return draw_topology(nodes, links, title=title, caption=caption)

    def _port_line(self, name: str, listener: str, extra: str = "") -> str:
        parts = [] if self.deterministic else [f"127.0.0.1:{self._address(name, listener)[1]}"]
        if extra:
            parts.append(extra)
        return "\n".join(parts)

    def sequence(self) -> JourneyFigure:
        """All hops as one sequence diagram: a lifeline per client and server."""
        if not self.hops:
            raise RuntimeError("nothing to draw yet: send a message first")
        return JourneyFigure(self._sequence_figure, "sequence")

    def _sequence_figure(self) -> Figure:
        shown = self._shown()
        parties = {p for h, _ in shown for p in (h.client, h.server)}
        return draw_sequence([(t, (h.client, h.server)) for h, t in shown],
                             width=max(8.0, 1.75 * len(parties) + 1.65))

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
        return _HTML(self._transcripts_html())

    def transcript_view(self, index: int) -> _HTML:
        """One hop's annotated transcript (``journey.hops[index]``)."""
        hop, shown = self._shown()[index]
        return _HTML(self._hop_html(hop, shown, open_=True))

    def _hop_html(self, hop: Hop, shown: Transcript, open_: bool = False) -> str:
        where = "" if self.deterministic else f" · {hop.address[0]}:{hop.address[1]}"
        result = f" · {escape(self._text(hop.result))}" if hop.result else ""
        return (f'<details data-hop="{escape(hop.name)}"{" open" if open_ else ""} '
                f'style="margin:4px 0"><summary style="cursor:pointer;font-family:{SANS};'
                f'font-size:13px"><b>{escape(hop.name)}</b> '
                f'<span style="color:{palette.MUTED}">{escape(hop.protocol.upper())}'
                f"{escape(where)}{result}</span></summary>{render_transcript(shown)}</details>")

    def _transcripts_html(self) -> str:
        shown = self._shown()
        return "".join(self._hop_html(h, t, open_=k == 0) for k, (h, t) in enumerate(shown))

    def _attempts_html(self) -> str:
        attempts = self.attempts
        if not self.bounces and all(_complete(h) for h in attempts):
            return ""
        t0 = self.hops[0].started if self.hops else 0.0
        last = {(h.client, h.server): h.attempt for h in attempts}
        columns = ["hop", "attempt", "result", "then"]
        if not self.deterministic:
            columns.insert(2, "after submission")
        rows = []
        for h in attempts:
            if _complete(h):
                then = "done"
            elif self.bounces and last[(h.client, h.server)] == h.attempt:
                then = "the queue lifetime is over: bounce"
            else:
                then = f"try again in {self.retry_base * 2 ** (h.attempt - 1):g} s"
            cells = [f"{escape(h.client)} → {escape(h.server)}", str(h.attempt),
                     f'<span style="{CODE}">{escape(self._text(h.result))}</span>', then]
            if not self.deterministic:
                cells.insert(2, f"+{h.started - t0:.1f} s")
            rows.append("<tr>" + "".join(f'<td style="{CELL}">{c}</td>' for c in cells)
                        + "</tr>")
        head = "".join(f'<th style="{CELL};border-bottom:2px solid #999">{x}</th>'
                       for x in columns)
        intro = (f"A temporary failure (4xx, or a dropped connection) is not the end: the relay "
                 f"keeps the message in its queue and tries again, waiting {self.retry_base:g} s,"
                 f" then twice as long each time (RFC 5321 §4.5.4.1). After the queue lifetime "
                 f"({self.queue_lifetime:g} s here, days on a real server) it gives up and sends "
                 f"exactly one bounce to the envelope sender, with the null sender "
                 f"<code>MAIL FROM:&lt;&gt;</code> so that a bounce never bounces (§4.5.5).")
        bounces = "".join(self._bounce_html(b) for b in self.bounces)
        return (f'<p style="{PARA}">{intro}</p>'
                f'<table style="border-collapse:collapse;font-family:{SANS};font-size:13px">'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
                f"{bounces}")

    def _bounce_html(self, bounce: Bounce) -> str:
        facts = "".join(f"<li><code>{escape(r)}</code>: status <code>{escape(s)}</code></li>"
                        for r, s in zip(bounce.recipients, bounce.statuses, strict=False))
        why = "".join(f"<li><code>{escape(self._text(d))}</code></li>"
                      for d in bounce.diagnostics)
        text = self._text(bounce.data.decode("utf-8", "replace"))
        return (f'<p style="{PARA}">alice got a bounce from <b>{escape(bounce.reporting_mta)}</b>'
                f"</p><ul style=\"{PARA}\">{facts}{why}</ul>"
                f'<details><summary style="cursor:pointer;font-family:{SANS};font-size:13px">'
                f"the bounce as alice fetched it ({len(bounce.data)} octets)</summary>"
                f'<pre style="{CODE};white-space:pre-wrap">{escape(text)}</pre></details>')

    def _repr_html_(self) -> str:
        sections: list[tuple[str, str]] = [("The way", self.topology()._repr_html_())]
        if self.retrieved is not None:
            sections.append(("The trace it left: the Received: lines",
                             self.received_chain()._repr_html_()))
        attempts = self._attempts_html()
        if attempts:
            sections.append(("Retries and bounces", attempts))
        if self.hops:
            sections.append(("Every line, every hop", self.sequence()._repr_html_()))
            sections.append(("The sessions, annotated", self._transcripts_html()))
        if self.retrieved is not None:
            same = self.delivered is not None and \
                self.retrieved == self.delivered.replace(b"\n", b"\r\n")
            sections.append(("What bob got", f'<p style="{PARA}">bob\'s POP3 client fetched '
                             f"{len(self.retrieved)} octets" + (
                                 f", exactly what {self.servers[-1].name} stored in his Maildir"
                                 " (CRLF on the wire, LF on disk)." if same else ".") + "</p>"))
        body = "".join(f'<div style="{HEADING}">{k}. {escape(title)}</div>{html}'
                       for k, (title, html) in enumerate(sections, 1))
        return (f'<div class="mailproto-journey" style="font-family:{SANS}">'
                f'<div style="{HEADING};font-size:17px">The journey of a message</div>'
                f'<p style="{PARA}">{escape(self._summary())}</p>{body}</div>')

    def _summary(self) -> str:
        if self._submission is None:
            return (f"{self.n_hops} SMTP servers ready; nothing sent yet "
                    f"(journey.send(subject=..., body=...)).")
        to = ", ".join(self.recipients)
        if self.retrieved is not None:
            how = "arrived"
        elif self.bounces:
            how = "bounced"
        else:
            how = "did not arrive"
        took = "" if self.deterministic or self.elapsed is None else \
            f" in {self.elapsed:.2f} s"
        return (f"alice@a.test sent “{self.subject}” to {to}; it {how}{took} after "
                f"{len(self.hops)} connections ({self.n_hops} SMTP hops"
                + (f", fault {self.fault} at {self.servers[-1].name}" if self.fault else "")
                + ").")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<Journey {self.n_hops} hops, {state}, {len(self.hops)} connections"
                + (f", fault {self.fault}" if self.fault else "") + ">")


# -- helpers ---------------------------------------------------------------------------------
def _complete(hop: Hop) -> bool:
    """Did this attempt leave nothing to retry?"""
    return hop.result.startswith("accepted") and "will retry" not in hop.result \
        and "refused" not in hop.result


def _start_time(transcript: Transcript) -> float:
    return transcript.steps[0].time if transcript.steps else 0.0


def _null_sender(transcript: Transcript) -> bool:
    for step in transcript:
        if step.direction == CLIENT and step.text.upper().startswith("MAIL FROM:<>"):
            return True
    return False


def _data_reply(transcript: Transcript) -> str:
    """What the server said to the message: ``accepted: 250 ...`` or the refusal."""
    after_data = False
    for step in transcript:
        if step.kind == "data":
            after_data = True
        elif after_data and step.direction == SERVER:
            line = step.text.splitlines()[0] if step.text else ""
            return ("accepted: " if line.startswith("250") else "refused: ") + line
    return ""


def _outcome_text(outcome: Outcome) -> str:
    """One line for an attempt: the server's own words when it refused, else our client's."""
    transcript = outcome.transcript
    accepted = (_data_reply(transcript) if transcript else "") or "accepted"
    if not outcome.temporary and not outcome.permanent:
        return accepted
    said = ""
    if transcript is not None:
        replies = [s for s in transcript if s.direction == SERVER]
        if replies and replies[-1].text[:1] in "45":
            said = replies[-1].text.splitlines()[0]
    parts = [f"accepted for {', '.join(outcome.delivered)}"] if outcome.delivered else []
    if outcome.temporary:
        rcpts = f" {', '.join(outcome.temporary)}" if outcome.delivered else ""
        why = said or next(iter(outcome.temporary.values()))
        parts.append(f"will retry{rcpts}: {why.split(' (last seen:')[0]}")
    if outcome.permanent:
        parts.append("refused: " + (said or outcome.permanent[0].diagnostic))
    return "; ".join(parts)


def _pop3_result(transcript: Transcript) -> str:
    """The answer to STAT: how many messages the maildrop holds."""
    steps = transcript.steps
    for k, step in enumerate(steps[:-1]):
        if step.direction == CLIENT and step.text.upper().startswith("STAT"):
            return "STAT: " + steps[k + 1].text.strip()
    return ""

