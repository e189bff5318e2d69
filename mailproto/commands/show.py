"""``mailproto show FILE_OR_-``: print a message decoded — headers, MIME tree, problems.

The input may be a Maildir file (LF, stored form) or a raw DATA/RETR capture (CRLF, dot-stuffed,
ended by a '.' line, perhaps after POP3's ``+OK`` line): the wire framing is detected and undone
(RFC 5321 §4.5.2, RFC 1939 §3).
"""

from __future__ import annotations

import argparse
import sys

from ..message import inspect_message, summary_text


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("show", help="decode a message: headers, MIME tree, problems",
                       description="Show a message as a person reads it: RFC 2047 headers "
                       "decoded, the MIME tree with sizes, the first lines of each text part and "
                       "the problems found. FILE may be a Maildir file or a DATA/RETR capture.")
    p.add_argument("file", metavar="FILE_OR_-", help="the message file, or - for stdin")
    p.add_argument("--lines", type=int, default=5, metavar="N",
                   help="lines of each text part to print (default 5)")
    p.set_defaults(func=run)


#: Octets read at most: the inspector looks at 16 MiB anyway, and a wrong file may be huge.
MAX_READ = 64 * 1024 * 1024


def run(args: argparse.Namespace) -> int:
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read(MAX_READ + 1)
        else:
            with open(args.file, "rb") as f:
                data = f.read(MAX_READ + 1)
    except OSError as exc:
        print(f"mailproto show: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if len(data) > MAX_READ:
        print(f"mailproto show: only the first {MAX_READ:,} octets were read", file=sys.stderr)
        data = data[:MAX_READ]
    text = summary_text(inspect_message(data), lines=max(getattr(args, "lines", 5), 0))
    # A terminal that cannot show 恭 gets \u606d rather than a crash.
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding))
    return 0
