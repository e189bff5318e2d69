"""``mailproto fetch``: fetch a maildrop over POP3 and show (or save) every line of the session."""

from __future__ import annotations

import argparse
import contextlib
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from . import add_client_options, fail, host_port, report_session

if TYPE_CHECKING:
    from ..net.pop3_client import POP3Client


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fetch", help="fetch mail over POP3, showing every line",
                       description="Fetch every message of a maildrop over POP3 (RFC 1939), one "
                       "command at a time, recording every line both ways. Fetched messages "
                       "are deleted on the server (DELE, then QUIT) unless --keep is given.")
    p.add_argument("--server", type=host_port, default=("127.0.0.1", 1110), metavar="HOST:PORT",
                   help="the POP3 server (default 127.0.0.1:1110, as `mailproto serve`)")
    p.add_argument("--user", required=True, help="the account name")
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password", help="log in with USER/PASS (or --auth) and this password")
    secret.add_argument("--apop", metavar="SECRET", help="log in with APOP (RFC 1939 §7): "
                        "only an MD5 digest of the greeting's timestamp and SECRET is sent")
    p.add_argument("--auth", metavar="MECH", type=str.upper,
                   choices=("PLAIN", "LOGIN", "CRAM-MD5"),
                   help="log in with AUTH (RFC 5034): PLAIN, LOGIN or CRAM-MD5")
    p.add_argument("--stls", action="store_true", help="switch to TLS first (RFC 2595)")
    p.add_argument("--keep", action="store_true", help="leave the messages on the server")
    p.add_argument("--into", type=Path, metavar="DIR", help="save the messages in this Maildir "
                   "(created if needed; LF line ends, as Maildir files have)")
    p.add_argument("--eml", action="store_true", help="with --into: one N.eml file per "
                   "message instead, the bytes exactly as retrieved (CRLF)")
    add_client_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..net.pop3_client import POP3Client

    if args.auth and args.apop is not None:
        return _fail("--auth and --apop are two different ways to log in: choose one")
    if args.eml and args.into is None:
        return _fail("--eml needs --into DIR")
    host, port = args.server
    client = POP3Client(host, port, timeout=args.timeout, verify=not args.insecure,
                        cafile=args.cafile)
    try:
        status, summary = _session(client, args)
    finally:
        client.close()
    return report_session("fetch", client, args, status, summary)


def _session(client: POP3Client, args: argparse.Namespace) -> tuple[int, list[str]]:
    """Run the session; (exit status, one line per message fetched)."""
    from ..errors import MailprotoError
    from ..net.pop3_client import POP3AuthenticationError

    summary: list[str] = []
    try:
        client.connect()
    except OSError as exc:
        return _fail(f"cannot connect to {client.host}:{client.port}: {exc.strerror or exc}"), []
    except MailprotoError as exc:  # a -ERR greeting
        return _fail(str(exc)), []
    try:
        if args.stls:
            client.stls()
        if args.apop is not None:
            client.apop(args.user, args.apop)
        elif args.auth:
            client.auth(args.auth, args.user, args.password)
        else:
            client.user(args.user)
            client.pass_(args.password)
        sizes = client.list()
        if args.into is not None:
            _prepare(args.into, maildir=not args.eml)
        for n in sorted(sizes):
            message = client.retr(n).body or b""
            try:
                where = _save(args.into, n, message, args.eml) if args.into else None
            except OSError as exc:
                reason = f"cannot save message {n}: {exc}"
                with contextlib.suppress(OSError, MailprotoError):
                    client.quit()  # removes only what was saved (and marked) before
                return _fail(reason), summary
            summary.append(describe(n, message, where))
            if not args.keep:
                client.dele(n)  # only marked: QUIT removes it (RFC 1939 §6)
        if not sizes:
            summary.append("No messages.")
        client.quit()
    except ssl.SSLCertVerificationError as exc:
        return _fail(f"TLS: {exc.verify_message or exc}: for `mailproto serve` use --cafile "
                     "<data>/.tls/cert.pem (or --insecure)"), summary
    except POP3AuthenticationError as exc:
        return _fail(f"login refused: {exc}"), summary
    except (OSError, MailprotoError) as exc:
        return _fail(str(exc) or type(exc).__name__), summary
    return 0, summary


def _prepare(root: Path, maildir: bool) -> None:
    if maildir:
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
    else:
        root.mkdir(parents=True, exist_ok=True)


def _save(root: Path, n: int, message: bytes, eml: bool) -> Path:
    """Write one message durably (fsync: the server deletes it at QUIT).  A Maildir gets it in
    ``tmp/`` first, then renamed into ``new/``: a reader never sees half a message."""
    from ..store import unique_name

    if eml:
        path = root / f"{n}.eml"
        _write(path, message)  # refuses to overwrite an earlier fetch
        return path
    name = unique_name()
    tmp = root / "tmp" / name
    _write(tmp, message.replace(b"\r\n", b"\n"))  # Maildir files are LF-ended
    final = root / "new" / name
    os.rename(tmp, final)
    return final


def _write(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def describe(n: int, message: bytes, where: Path | None = None) -> str:
    """One line: number, size as retrieved, From and Subject (RFC 2047 words decoded)."""
    from email.parser import BytesHeaderParser
    from email.policy import default

    try:
        headers = BytesHeaderParser(policy=default).parsebytes(message)
        sender, subject = str(headers["From"] or ""), str(headers["Subject"] or "")
    except Exception:  # noqa: BLE001 - a broken header must not stop the fetch
        sender, subject = "?", "?"
    line = f"{n:>4} {len(message):>9} octets  {_short(sender, 30):<30}  {_short(subject, 50)}"
    return f"{line}  -> {where}" if where else line.rstrip()


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _fail(reason: str) -> int:
    return fail("fetch", reason)
