"""One module per ``mailproto`` sub-command, each with ``add_parser(subparsers)`` and ``run``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:25`` too) for the commands' options, or an argparse error."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


# -- what `mailproto send` and `mailproto fetch` share ---------------------------------------------
def add_client_options(p: argparse.ArgumentParser) -> None:
    """TLS trust, the timeout and the transcript options of a client command."""
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--cafile", metavar="F", help="trust this certificate; for `mailproto "
                     "serve` use <data>/.tls/cert.pem (its self-signed certificate)")
    tls.add_argument("--insecure", action="store_true",
                     help="do not verify the server's certificate")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    p.add_argument("--transcript", action="store_true",
                   help="print the session: C: lines we sent, S: lines the server sent")
    p.add_argument("--save-transcript", type=Path, metavar="FILE.json",
                   help="save the session as a transcript (JSON) for the lab's viewers")


def report_session(command: str, client: Any, args: argparse.Namespace, status: int,
                   summary: list[str]) -> int:
    """Print the transcript (``--transcript``) or the summary, save the transcript if asked;
    return the exit status (1 if the transcript could not be saved)."""
    if args.transcript:
        print(client.transcript.to_text())
    elif summary:
        print("\n".join(summary))
    if args.save_transcript:
        try:
            client.transcript.save(str(args.save_transcript))
        except OSError as exc:
            status = fail(command, f"cannot save the transcript: {exc}")
    return status


def fail(command: str, reason: str) -> int:
    """Say why on stderr (first line only), as ``mailproto COMMAND: reason``; exit status 1."""
    print(f"mailproto {command}: {reason.splitlines()[0] if reason else 'failed'}",
          file=sys.stderr)
    return 1
