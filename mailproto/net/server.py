"""``mailproto serve``: the SMTP and POP3 listeners on one asyncio loop, sharing one store."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..penalty import AuthPenalty
from ..smtp.faults import FaultySession
from ..smtp.server import ServerConfig as SMTPConfig
from ..smtp.server import ServerSession as SMTPSession
from ..store import Store, Users
from .asyncio_server import Listener

if TYPE_CHECKING:
    from .relay import Relay
from .tls import self_signed, server_context


@dataclass
class ServeOptions:
    """Everything ``mailproto serve`` can be told (see ``mailproto serve --help``)."""

    host: str = "127.0.0.1"
    smtp_port: int | None = 2525  # None: no SMTP listener
    pop3_port: int | None = 1110  # None: no POP3 listener
    data: Path | None = None
    users: Path | None = None
    domains: list[str] = field(default_factory=lambda: ["local.test"])
    hostname: str = "mail.test"
    max_message_size: int = 10_240_000
    timeout: float | None = None  # None: 300 s for SMTP (RFC 5321), 600 s for POP3 (RFC 1939)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    starttls: bool = True
    allow_insecure_auth: bool = False
    require_tls_for_auth: bool = False
    enable_vrfy: bool = False
    demo: bool = False
    max_connections: int = 2000
    auth_failure_delay: float = 1.0
    fsync: bool = True  # RFC 5321 §6.1: on disk before the 250, as Postfix does
    #: Relay (see mailproto.net.relay): static routes, a smarthost, domains relayed for anyone.
    routes: dict[str, tuple[str, int]] = field(default_factory=dict)
    smarthost: tuple[str, int] | None = None
    relay_domains: list[str] = field(default_factory=list)
    retry_base: float = 5.0
    queue_lifetime: float = 86400.0
    #: A deterministic SMTP fault scenario for lessons (mailproto.smtp.faults), or None.
    fault: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MailServer:
    """The listeners of one ``mailproto serve``; start, then run until stopped."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.demo_accounts: dict[str, str] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.store = self._open_store()
        #: Failed logins, shared by the SMTP and POP3 listeners (see mailproto.penalty).
        self.penalty = AuthPenalty(base=options.auth_failure_delay)
        self.listeners: list[Listener] = []
        self.servers: list[asyncio.base_events.Server] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        self._stopped: asyncio.Event | None = None
        self.relay: Relay | None = None
        self._relay_task: asyncio.Task[None] | None = None

    # -- set-up ----------------------------------------------------------------------------
    def _open_store(self) -> Store:
        opts = self.options
        if opts.demo or (opts.data is None and opts.users is None):
            from ..demo import create_demo_store

            if opts.data is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="mailproto-demo-")
                opts.data = Path(self._tmp.name)
            users_path = Path(create_demo_store(opts.data))
            opts.users = opts.users or users_path
            users = Users.load(opts.users)
            self.demo_accounts = dict(users.passwords)
        else:
            if opts.data is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="mailproto-data-")
                opts.data = Path(self._tmp.name)
            if opts.users is None:
                opts.users = opts.data / "users"
                if not opts.users.exists():
                    raise ConfigError(f"no users file: give --users or create {opts.users}")
            users = Users.load(opts.users)
        return Store(opts.data, users, fsync=opts.fsync)

    def _tls_context(self) -> ssl.SSLContext | None:
        opts = self.options
        if not opts.starttls:
            return None
        if opts.tls_cert and opts.tls_key:
            return server_context(opts.tls_cert, opts.tls_key)
        if opts.tls_cert or opts.tls_key:
            raise ConfigError("--tls-cert and --tls-key go together")
        assert opts.data is not None
        return server_context(*self_signed(opts.data / ".tls", opts.hostname))

    @property
    def plaintext_auth_allowed(self) -> bool:
        """RFC 3207 §6 / RFC 2595 §2.3: no plaintext passwords in the clear, except on loopback
        where the lab wants students to see them (or when the administrator insists)."""
        opts = self.options
        if opts.require_tls_for_auth:
            return False
        return opts.allow_insecure_auth or is_loopback(opts.host)

    def smtp_config(self, tls_available: bool) -> SMTPConfig:
        opts = self.options
        return SMTPConfig(hostname=opts.hostname, domains=tuple(d.lower() for d in opts.domains),
                          max_message_size=opts.max_message_size, enable_vrfy=opts.enable_vrfy,
                          starttls=tls_available, allow_plaintext_auth=self.plaintext_auth_allowed,
                          require_tls_for_auth=opts.require_tls_for_auth,
                          relay_domains=tuple(d.lower() for d in opts.relay_domains),
                          auth_failure_delay=opts.auth_failure_delay, penalty=self.penalty)

    async def start(self) -> None:
        opts = self.options
        loop = asyncio.get_running_loop()
        tls = self._tls_context()
        self._stopped = asyncio.Event()
        if opts.smtp_port is not None:
            config = self.smtp_config(tls is not None)
            store = self.store
            busy = f"421 4.7.0 {opts.hostname} Error: too many connections\r\n".encode()

            def session(ip: str) -> SMTPSession:
                if opts.fault:
                    return FaultySession(config, store, peer_ip=ip, fault=opts.fault)
                return SMTPSession(config, store, peer_ip=ip)

            listener = Listener("SMTP", session,
                                opts.timeout or 300.0, tls, opts.max_connections, busy)
            await self._listen(loop, listener, opts.smtp_port)
        if opts.pop3_port is not None:
            from .pop3_listener import pop3_listener

            listener = pop3_listener(self, tls)
            await self._listen(loop, listener, opts.pop3_port)
        if opts.smtp_port is not None:
            from .relay import Relay, RelayPolicy, relay_forever

            policy = RelayPolicy(hostname=opts.hostname,
                                 local_domains=tuple(d.lower() for d in opts.domains),
                                 routes={k.lower(): v for k, v in opts.routes.items()},
                                 smarthost=opts.smarthost, retry_base=opts.retry_base,
                                 lifetime=opts.queue_lifetime)
            self.relay = Relay(self.store, policy)
            self._relay_task = loop.create_task(relay_forever(self.relay, self._stopped))

    async def _listen(self, loop: asyncio.AbstractEventLoop, listener: Listener,
                      port: int) -> None:
        server = await loop.create_server(listener.protocol, self.options.host, port,
                                          reuse_address=True, backlog=1024)
        sock = server.sockets[0].getsockname()
        self.listeners.append(listener)
        self.servers.append(server)
        self.addresses[listener.name] = (sock[0], sock[1])

    async def serve_forever(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()
        if self._relay_task is not None:
            await self._relay_task

    def stop(self) -> None:
        """Stop accepting, say 421 to every open session, and let ``serve_forever`` return."""
        for server in self.servers:
            server.close()
        for listener in self.listeners:
            listener.shutdown()
        if self._stopped is not None:
            self._stopped.set()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


async def _serve(options: ServeOptions) -> int:
    started = time.perf_counter()
    server = MailServer(options)
    try:
        await server.start()
    except OSError as exc:
        print(f"mailproto serve: cannot listen: {exc}", file=sys.stderr)
        server.close()
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    for name, (host, port) in server.addresses.items():
        print(f"{name} listening on {host}:{port}", flush=True)
    if server.demo_accounts:
        print(f"Demo store in {options.data} (deleted when the server stops). Accounts:")
        for user, password in server.demo_accounts.items():
            print(f"  {user} / {password}")
    print(f"Ready in {time.perf_counter() - started:.2f} s. Stop with Ctrl-C.", flush=True)
    try:
        await server.serve_forever()
        await asyncio.sleep(0.05)  # let the 421s go out
    finally:
        server.close()
    return 0


def run(options: ServeOptions) -> int:
    try:
        return asyncio.run(_serve(options))
    except ConfigError as exc:
        print(f"mailproto serve: {exc}", file=sys.stderr)
        return 2
