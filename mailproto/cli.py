"""The ``mailproto`` command: one sub-command per module in ``mailproto.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

#: Sub-commands, in the order ``--help`` lists them.  A module that is not there is skipped.
COMMANDS = ("serve", "send", "fetch", "show", "spy", "lab")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailproto", description="A teaching lab for SMTP and "
                                     "POP3: real servers and clients that show every byte.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (only,) if only else COMMANDS:
        try:
            module = importlib.import_module(f"mailproto.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mailproto.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    # Import only the command asked for: each pulls in its own modules (message parsing, lab...).
    parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
