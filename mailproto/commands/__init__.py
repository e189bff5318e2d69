"""One module per ``mailproto`` sub-command, each with ``add_parser(subparsers)`` and ``run``."""

from __future__ import annotations

import argparse


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:25`` too) for the commands' options, or an argparse error."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)
