"""Run ``mailproto serve`` in a background thread, for notebooks and tests.

    with BackgroundServer(demo=True) as server:
        print(server.smtp_port, server.pop3_port, server.data)

The server gets its own asyncio loop in a daemon thread; ``stop()`` says 421 to open sessions,
closes the listeners and joins the thread.  Ports default to 0 (free loopback ports).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

from .server import MailServer, ServeOptions


class BackgroundServer:
    """A :class:`MailServer` on free loopback ports in a thread; also a context manager."""

    def __init__(self, options: ServeOptions | None = None, **overrides: Any) -> None:
        if options is None:
            names = {f.name for f in fields(ServeOptions)}
            unknown = set(overrides) - names
            if unknown:
                raise TypeError(f"unknown server option(s): {', '.join(sorted(unknown))}")
            overrides.setdefault("smtp_port", 0)
            overrides.setdefault("pop3_port", 0)
            options = ServeOptions(**overrides)
        self.options = options
        self.server: MailServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> BackgroundServer:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="mailproto-server", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            self._thread.join(5)
            raise self._error
        if self.server is None:
            raise RuntimeError("the server did not start within 30 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self.server = MailServer(self.options)
            loop.run_until_complete(self.server.start())
        except BaseException as exc:  # report to the caller's thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self.server.serve_forever())
            loop.run_until_complete(asyncio.sleep(0.05))  # let the 421s go out
        finally:
            self.server.close()
            # The relay's SMTP runs in the default executor: let its threads end with us.
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self.server is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self.server.stop)
                self._thread.join(10)
        self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a notebook wants to know -------------------------------------------------------
    def _address(self, name: str) -> tuple[str, int]:
        if self.server is None or name not in self.server.addresses:
            raise RuntimeError(f"no {name} listener")
        return self.server.addresses[name]

    @property
    def host(self) -> str:
        return self.options.host

    @property
    def smtp_port(self) -> int:
        return self._address("SMTP")[1]

    @property
    def pop3_port(self) -> int:
        return self._address("POP3")[1]

    @property
    def data(self) -> Path:
        assert self.options.data is not None
        return self.options.data

    @property
    def accounts(self) -> dict[str, str]:
        assert self.server is not None
        return dict(self.server.store.users.passwords)

    def __repr__(self) -> str:
        if self.server is None:
            return "<BackgroundServer (not running)>"
        parts = [f"{n} {h}:{p}" for n, (h, p) in self.server.addresses.items()]
        return f"<BackgroundServer {', '.join(parts)}>"
