"""The POP3 listener of ``mailproto serve``: the sans-I/O core behind the asyncio driver."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from ..pop3.server import ServerConfig, ServerSession
from .asyncio_server import Listener

if TYPE_CHECKING:
    from .server import MailServer

#: RFC 1939 §3: an autologout timer "MUST be of at least 10 minutes' duration".
DEFAULT_TIMEOUT = 600.0


def pop3_config(server: MailServer, tls_available: bool) -> ServerConfig:
    """The POP3 policy from ``mailproto serve``'s options (the same TLS policy as SMTP's)."""
    opts = server.options
    return ServerConfig(hostname=opts.hostname, stls=tls_available,
                        allow_plaintext_auth=server.plaintext_auth_allowed,
                        require_tls_for_auth=opts.require_tls_for_auth,
                        auth_failure_delay=opts.auth_failure_delay, penalty=server.penalty)


def pop3_listener(server: MailServer, tls: ssl.SSLContext | None) -> Listener:
    """A :class:`Listener` whose sessions are POP3 server sessions on ``server.store``."""
    opts = server.options
    config = pop3_config(server, tls is not None)
    store = server.store
    busy = b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    return Listener("POP3", lambda ip: ServerSession(config, store, peer_ip=ip),
                    opts.timeout or DEFAULT_TIMEOUT, tls, opts.max_connections, busy)
