"""``mailproto send``: send one message over SMTP and show (or save) every line of the session."""

from __future__ import annotations

import argparse
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING

from . import add_client_options, fail, host_port, report_session

if TYPE_CHECKING:
    from ..net.smtp_client import SMTPClient


def _credentials(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("expected user:password")
    return user, password


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("send", help="send a message over SMTP, showing every line",
                       description="Send one message over SMTP (RFC 5321), one command at a "
                       "time, recording every line both ways. The message is a file (- for "
                       "standard input) or made from --subject/--body.")
    p.add_argument("message", nargs="?", type=Path,
                   help="file with the whole message, headers and body (- for stdin)")
    p.add_argument("--subject", help="build the message: its Subject")
    p.add_argument("--body", help="build the message: its text")
    p.add_argument("--from", dest="sender", required=True, metavar="ADDRESS",
                   help="the envelope sender (MAIL FROM), also the From: of a built message")
    p.add_argument("--to", dest="recipients", action="append", required=True,
                   metavar="ADDRESS", help="a recipient (RCPT TO); repeatable")
    p.add_argument("--server", type=host_port, default=("127.0.0.1", 2525), metavar="HOST:PORT",
                   help="the SMTP server (default 127.0.0.1:2525, as `mailproto serve`)")
    p.add_argument("--helo", metavar="NAME", help="the name to give in EHLO "
                   "(default: our address, as [127.0.0.1])")
    p.add_argument("--auth", type=_credentials, metavar="USER:PASSWORD",
                   help="log in with AUTH (RFC 4954) before sending")
    p.add_argument("--auth-mechanism", metavar="MECH", type=str.upper,
                   help="PLAIN, LOGIN or CRAM-MD5 (default: the best the server offers)")
    p.add_argument("--starttls", action="store_true", help="switch to TLS first (RFC 3207)")
    add_client_options(p)
    p.set_defaults(func=run)


def build_message(args: argparse.Namespace) -> bytes:
    """The message file as it is, or one built from --subject/--body (RFC 5322)."""
    if args.message is not None:
        if args.subject is not None or args.body is not None:
            raise ValueError("give a message file or --subject/--body, not both")
        if str(args.message) == "-":
            return sys.stdin.buffer.read()
        return args.message.read_bytes()
    if args.subject is None and args.body is None:
        raise ValueError("give a message file or --subject/--body")
    msg = EmailMessage()
    msg["From"] = args.sender
    msg["To"] = ", ".join(args.recipients)
    msg["Subject"] = args.subject or ""
    msg["Date"] = formatdate(localtime=True)
    domain = args.sender.rpartition("@")[2] or "mailproto.invalid"
    msg["Message-ID"] = make_msgid(domain=domain)  # a domain: make_msgid would ask the DNS
    msg.set_content(args.body or "")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def run(args: argparse.Namespace) -> int:
    from ..net.smtp_client import SMTPClient

    try:
        message = build_message(args)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    host, port = args.server
    client = SMTPClient(host, port, timeout=args.timeout, local_hostname=args.helo,
                        verify=not args.insecure, cafile=args.cafile)
    try:
        status, outcome = _session(client, args, message)
    finally:
        client.close()
    return report_session("send", client, args, status, [outcome] if outcome else [])


def _session(client: SMTPClient, args: argparse.Namespace, message: bytes) -> tuple[int, str]:
    """Run the session; (exit status, the server's last word on the message)."""
    from ..errors import MailprotoError

    try:
        client.connect()
    except OSError as exc:
        return _fail(f"cannot connect to {client.host}:{client.port}: {exc.strerror or exc}"), ""
    except MailprotoError as exc:  # a 421 greeting
        return _fail(str(exc)), ""
    try:
        client.ehlo_or_helo_if_needed()
        if args.starttls:
            client.starttls()
        if args.auth:
            user, password = args.auth
            client.login(user, password, mechanism=args.auth_mechanism)
        refused = client.sendmail(args.sender, args.recipients, message)
        last = client.last_reply
        outcome = f"{last.code} {last.lines[-1]}" if last else ""
        client.quit()
    except ssl.SSLCertVerificationError as exc:
        return _fail(f"TLS: {exc.verify_message or exc}: for `mailproto serve` use --cafile "
                     "<data>/.tls/cert.pem (or --insecure)"), ""
    except (OSError, MailprotoError) as exc:
        return _fail(str(exc) or type(exc).__name__), ""
    if refused:
        return _fail("sent, but refused " + "; ".join(
            f"<{a}>: {r.code} {r.lines[-1]}" for a, r in refused.items())), outcome
    return 0, outcome


def _fail(reason: str) -> int:
    return fail("send", reason)
