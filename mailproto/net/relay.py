"""The relay: deliver the outbound queue to other servers with our SMTP client.

The lab has no DNS, so routes are static: ``--route example.org=127.0.0.1:2526`` (repeatable) or
a ``--smarthost host:port`` for every other domain.  Per recipient (RFC 5321 §4.5.4, §6.1):
a 2xx is done; a 4xx or a connection failure is retried with exponential backoff; a 5xx, or a
temporary failure that outlives the queue lifetime, produces exactly one bounce to the sender
(from ``MAILER-DAEMON``, with the null sender ``<>``).  Nothing is lost when the server stops:
the queue and its retry state are files, read again at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from ..bounce import Failure, build_bounce
from ..errors import MailprotoError
from ..queue import OutboxQueue, QueuedMessage
from ..smtp.wire import split_address
from ..store import Store
from ..transcript import Transcript
from .smtp_client import SMTPClient

log = logging.getLogger("mailproto.relay")


@dataclass
class RelayPolicy:
    hostname: str = "mail.test"
    local_domains: tuple[str, ...] = ("local.test",)
    routes: dict[str, tuple[str, int]] = field(default_factory=dict)
    smarthost: tuple[str, int] | None = None
    retry_base: float = 5.0  # seconds before the first retry; doubles each time
    retry_max: float = 600.0
    lifetime: float = 86400.0  # then a temporary failure becomes a bounce
    timeout: float = 30.0
    interval: float = 0.5  # how often the queue is scanned

    def route(self, domain: str) -> tuple[str, int] | None:
        return self.routes.get(domain.lower()) or self.smarthost


@dataclass
class Outcome:
    delivered: list[str] = field(default_factory=list)
    temporary: dict[str, str] = field(default_factory=dict)
    permanent: list[Failure] = field(default_factory=list)
    #: What our SMTP client said and heard on this hop (empty if the connection failed).
    transcript: Transcript | None = None


class HopTranscript(NamedTuple):
    """One delivery attempt to one next hop, for :attr:`Relay.on_transcript`."""

    queue: str  # the queued message's name
    hop: tuple[str, int]
    attempt: int
    transcript: Transcript
    outcome: Outcome


def _status(text: str, code: int) -> str:
    first = text.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return first
    return "5.0.0" if code >= 500 else "4.0.0"


def deliver_hop(host: str, port: int, sender: str, recipients: list[str], content: bytes,
                helo: str, timeout: float) -> Outcome:
    """One SMTP transaction to one next hop, with a result per recipient (and what was said:
    ``Outcome.transcript``)."""
    out = Outcome()
    remote = f"{host}:{port}"
    mta = host  # RFC 3464 §2.3.5: Remote-MTA names a host; the port goes in the text
    client = SMTPClient(host, port, timeout=timeout, local_hostname=helo)
    try:
        with client:
            greeting = client.last_reply
            if greeting is None or greeting.code != 220:
                text = f"{greeting.code} {greeting.text}" if greeting else "no greeting"
                return _all(out, recipients, greeting.code if greeting else 421, text, mta)
            client.ehlo_or_helo_if_needed()
            options = [f"SIZE={len(content)}"] if client.has_extn("SIZE") else []
            if not content.isascii() and client.has_extn("8BITMIME"):
                options.append("BODY=8BITMIME")
            reply = client.mail(sender, options)
            if reply.code != 250:
                return _all(out, recipients, reply.code, f"{reply.code} {reply.text}", mta)
            accepted = []
            for rcpt in recipients:
                reply = client.rcpt(rcpt)
                if reply.code in (250, 251):
                    accepted.append(rcpt)
                elif reply.code >= 500:
                    out.permanent.append(Failure(rcpt, _status(reply.lines[0], reply.code),
                                                 f"{reply.code} {reply.text}", mta))
                else:
                    out.temporary[rcpt] = f"{reply.code} {reply.text}"
            if not accepted:
                client.rset()
                return out
            reply = client.data(content)
            text = f"{reply.code} {reply.text}"
            if reply.code == 250:
                out.delivered += accepted
            elif reply.code >= 500:
                out.permanent += [Failure(r, _status(reply.lines[0], reply.code), text, mta)
                                  for r in accepted]
            else:
                out.temporary.update({r: text for r in accepted})
    except (OSError, MailprotoError) as exc:  # TimeoutError is an OSError
        # Refused, dropped, timed out: the next hop is not there now, try again later.
        done = set(out.delivered) | {f.recipient for f in out.permanent}
        for rcpt in recipients:
            if rcpt not in done:
                out.temporary[rcpt] = f"connection to {remote} failed: {_why(exc)}"
    finally:
        out.transcript = client.transcript
    return out


def _why(exc: BaseException) -> str:
    """What went wrong, for a bounce: the server's 421 if it said one, else the error alone
    (without the client's "last seen" note, which is about our side, not the hop)."""
    reply = getattr(exc, "reply", None)
    if reply is not None:
        return f"{reply.code} {reply.text}"
    return str(exc).split(" (last seen:", 1)[0]


def _all(out: Outcome, recipients: list[str], code: int, text: str, remote: str) -> Outcome:
    for rcpt in recipients:
        if code >= 500:
            out.permanent.append(Failure(rcpt, _status(text.split(" ", 1)[-1], code), text,
                                         remote))
        else:
            out.temporary[rcpt] = text
    return out


class Relay:
    """Works through the queue; ``run_once`` is synchronous (tests call it directly)."""

    def __init__(self, store: Store, policy: RelayPolicy,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.policy = policy
        self.queue = OutboxQueue(store)
        self.clock = clock
        self.bounces = 0
        #: Called with a :class:`HopTranscript` after each attempt on a hop (the lab's journey
        #: shows them); off by default, so a busy server keeps no transcripts.
        self.on_transcript: Callable[[HopTranscript], None] | None = None

    def run_once(self) -> int:
        """Try every message that is due; return how many were finished."""
        finished = 0
        for msg in self.queue.messages():
            if msg.state.next_try <= self.clock() and self.attempt(msg):
                finished += 1
        return finished

    def attempt(self, msg: QueuedMessage) -> bool:
        now = self.clock()
        state = msg.state
        if not state.first_try:
            state.first_try = now
        state.attempts += 1
        content = msg.content()
        failures: list[Failure] = []
        by_hop: dict[tuple[str, int], list[str]] = {}
        for rcpt in msg.pending:
            hop = self.policy.route(split_address(rcpt)[1])
            if hop is None:
                failures.append(Failure(rcpt, "5.4.4", "550 5.4.4 no route to the domain "
                                        "(the lab has no DNS: use --route or --smarthost)"))
            else:
                by_hop.setdefault(hop, []).append(rcpt)
        for (host, port), rcpts in by_hop.items():
            out = deliver_hop(host, port, msg.sender, rcpts, content, self.policy.hostname,
                              self.policy.timeout)
            state.done += out.delivered
            failures += out.permanent
            state.last_error.update(out.temporary)
            self.queue.save_state(msg)  # delivered recipients are never sent twice
            if self.on_transcript is not None and out.transcript is not None:
                try:
                    self.on_transcript(HopTranscript(msg.name, (host, port), state.attempts,
                                                     out.transcript, out))
                except Exception:  # an observer must not break the queue
                    log.exception("relay: on_transcript failed")
        if now - state.first_try >= self.policy.lifetime:
            for rcpt in msg.pending:
                if rcpt not in {f.recipient for f in failures}:
                    why = state.last_error.get(rcpt, "no answer")
                    failures.append(Failure(rcpt, "4.4.7", f"message expired: {why}"))
        state.done += [f.recipient for f in failures]
        if failures:
            self._bounce(msg, failures, content)
        if not msg.pending:
            self.queue.remove(msg)
            return True
        delay = min(self.policy.retry_base * 2 ** (state.attempts - 1), self.policy.retry_max)
        state.next_try = now + delay
        self.queue.save_state(msg)
        return False

    def _bounce(self, msg: QueuedMessage, failures: list[Failure], content: bytes) -> None:
        """Exactly one DSN per failed attempt's failures; never for a bounce (sender ``<>``)."""
        if not msg.sender:
            log.warning("dropping undeliverable bounce %s", msg.name)
            return
        qid = msg.name.split(".")[0] + msg.name.split(".")[1][:7]
        dsn = build_bounce(hostname=self.policy.hostname, sender=msg.sender, failures=failures,
                           original=content, queue_id=qid, now=self.clock(),
                           arrival=msg.state.first_try)
        local, domain = split_address(msg.sender)
        spool = self.store.open_spool()
        try:
            spool.write(dsn)
            user = self.store.users.canonical(local)
            if domain in self.policy.local_domains and user:
                spool.commit([user])
            else:  # a remote sender: the bounce travels back through the queue, sender <>
                spool.commit([], ("", [msg.sender]))
        except BaseException:
            spool.abort()
            raise
        self.bounces += 1


async def relay_forever(relay: Relay, stopped: asyncio.Event) -> None:
    """Scan the queue every ``interval`` seconds until ``stopped``; SMTP runs in a thread."""
    loop = asyncio.get_running_loop()
    while not stopped.is_set():
        try:
            await loop.run_in_executor(None, relay.run_once)
        except Exception:  # a broken queue file must not stop the server
            log.exception("relay: queue run failed")
        try:
            await asyncio.wait_for(stopped.wait(), relay.policy.interval)
        except asyncio.TimeoutError:
            pass
