"""aiosmtpd as the SMTP reference server, in a process of its own (run by the benchmarks).

A Maildir handler as in aiosmtpd's documentation (``mailbox.Maildir(...).add(envelope.content)``)
and AUTH PLAIN/LOGIN over plain TCP (``auth_require_tls=False``; PEERS.md).  It prints
``SMTP listening on 127.0.0.1:PORT`` then ``Ready``, like ``mailproto serve``, and stops on SIGTERM.

    python bench/aiosmtpd_server.py --maildir DIR [--port N]
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import signal
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class MaildirHandler:
    def __init__(self, path: str) -> None:
        self.mailbox = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mailbox.add(envelope.content)
        return "250 Message accepted for delivery"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password.startswith(b"pw") \
        or getattr(auth_data, "password", b"") == b"secret"
    return AuthResult(success=bool(ok), handled=False)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    handler = MaildirHandler(args.maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="mx.test", auth_required=True, auth_require_tls=False,
                     authenticator=authenticator, data_size_limit=200 * 2**20),
        args.host, args.port, backlog=1024, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print(f"SMTP listening on {args.host}:{port}", flush=True)
    print("Ready", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
