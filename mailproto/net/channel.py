"""The byte pipe under the blocking clients: a TCP socket by default, or anything with the same
four methods (the in-memory pair for notebooks and tests).

A channel is deliberately tiny, so another transport is a few lines::

    send(data)                          # all of it, or raise OSError
    recv(max_bytes) -> bytes            # b"" once the peer closed; TimeoutError if it is silent
    start_tls(context, server_hostname) # the TLS handshake, in place (RFC 3207, RFC 2595)
    close()

A channel may also offer ``pending() -> bool`` (data or EOF can be read without waiting): the
clients then read what a server said unasked (an autologout) before they send the next command,
so it shows in the transcript where it happened.  Without it they find out on the next read.
"""

from __future__ import annotations

import select
import socket
import ssl
from typing import Any, Protocol, TypeVar

from ..errors import MailprotoError

_C = TypeVar("_C", bound="ChannelClient")


class Channel(Protocol):
    def send(self, data: bytes) -> None: ...

    def recv(self, max_bytes: int) -> bytes: ...

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None: ...

    def close(self) -> None: ...


class SocketChannel:
    """A connected socket (plain, then maybe TLS) as a :class:`Channel`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._peeked: bytes | None = None  # read by pending(), handed out by recv()

    @classmethod
    def connect(cls, host: str, port: int, timeout: float | None) -> SocketChannel:
        return cls(socket.create_connection((host, port), timeout))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, max_bytes: int) -> bytes:
        if self._peeked is not None:
            data, self._peeked = self._peeked, None
            return data
        return self.sock.recv(max_bytes)

    def pending(self) -> bool:
        if self._peeked is not None:
            return True
        sock = self.sock
        if not isinstance(sock, ssl.SSLSocket):
            return bool(select.select([sock], [], [], 0)[0])
        if not sock.pending() and not select.select([sock], [], [], 0)[0]:
            return False
        # Readable TLS may hold no application data (TLS 1.3 session tickets arrive after the
        # handshake): read without waiting, and keep what came for recv().
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            self._peeked = sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return False
        except OSError:
            return True  # recv() will raise it again, where the caller expects errors
        finally:
            sock.settimeout(timeout)
        return True

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        except BaseException:
            self.sock.close()  # half a handshake leaves nothing usable
            raise

    def close(self) -> None:
        self.sock.close()


class ChannelClient:
    """What the two blocking clients share: the channel's life cycle and TLS.

    Subclasses set ``channel``, ``core`` (a client core with ``closed``, ``connection_lost`` and
    ``tls_started``), ``host``, ``ssl_context``, ``verify`` and ``cafile``, and define
    ``connect`` and ``quit``."""

    channel: Channel | None
    core: Any
    host: str
    ssl_context: ssl.SSLContext | None
    verify: bool
    cafile: str | None

    def connect(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def quit(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        if self.channel is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.channel is not None and not self.core.closed:
                self.quit()
        except (OSError, MailprotoError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection (without saying goodbye: use ``quit`` for that)."""
        channel, self.channel = self.channel, None
        if channel is not None:
            if not self.core.closed:
                self.core.connection_lost("connection closed by the client")
            channel.close()

    def _context(self) -> ssl.SSLContext:
        """The given context; or no verification when asked; or the system's CAs, or ``cafile``
        (the lab's self-signed certificate is ``<data>/.tls/cert.pem``)."""
        if self.ssl_context is not None:
            return self.ssl_context
        if not self.verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=self.cafile)

    def _handshake(self, context: ssl.SSLContext | None = None) -> None:
        """The TLS handshake after STARTTLS/STLS, then the core starts over."""
        assert self.channel is not None
        try:
            self.channel.start_tls(context or self._context(), self.host)
        except (OSError, ssl.SSLError) as exc:
            self.core.connection_lost(f"TLS handshake failed: {exc}")
            channel, self.channel = self.channel, None
            channel.close()  # half a handshake leaves nothing usable
            raise
        self.core.tls_started()
