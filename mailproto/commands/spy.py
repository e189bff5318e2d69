"""``mailproto spy``: record a real client talking to a real server, as transcript files."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from . import host_port


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("spy", help="a recording proxy between a real client and a server",
                       description="Pass an SMTP or POP3 conversation between any client and "
                       "any server, recording it as transcript files the lab opens. After "
                       "STARTTLS/STLS only the start of encryption is recorded.")
    p.add_argument("--listen", type=host_port, default=("127.0.0.1", 2526), metavar="HOST:PORT")
    p.add_argument("--to", type=host_port, required=True, metavar="HOST:PORT")
    p.add_argument("--save", type=Path, default=Path("spy"), metavar="DIR",
                   help="folder for the transcripts (one JSON file per connection)")
    p.add_argument("--transcript", action="store_true", help="also print each conversation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..net.spy import Spy

    async def main() -> None:
        spy = Spy(args.listen, args.to, args.save)
        host, port = await spy.start()
        print(f"spy listening on {host}:{port}, passing to {args.to[0]}:{args.to[1]}, "
              f"saving to {args.save}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        seen = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
            for path in spy.saved[seen:]:
                print(f"saved {path}", flush=True)
                if args.transcript:
                    from ..transcript import Transcript

                    for step in Transcript.load(str(path)):
                        print(f"{step.direction}: {step.text.rstrip()}")
            seen = len(spy.saved)
        spy.close()

    asyncio.run(main())
    return 0
