"""``mailproto serve``: run the SMTP and POP3 servers."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..smtp.faults import FAULTS
from . import host_port


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the SMTP and POP3 servers",
                       description="Run the SMTP (RFC 5321) and POP3 (RFC 1939) servers. With no "
                       "--data/--users, serve a temporary demo store and print its accounts.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--smtp-port", type=int, default=2525, help="0 picks a free port; -1: no SMTP")
    p.add_argument("--pop3-port", type=int, default=1110, help="0 picks a free port; -1: no POP3")
    p.add_argument("--data", type=Path, help="data directory: one Maildir per user")
    p.add_argument("--users", type=Path, help="users file (name:password lines); "
                   "default <data>/users")
    p.add_argument("--domain", dest="domains", action="append",
                   help="a local mail domain (repeatable; default local.test)")
    p.add_argument("--hostname", default="mail.test", help="our name in greetings and Received:")
    p.add_argument("--max-message-size", type=int, default=10_240_000, metavar="BYTES")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="idle timeout (default 300 for SMTP, 600 for POP3)")
    p.add_argument("--tls-cert", type=Path, metavar="F")
    p.add_argument("--tls-key", type=Path, metavar="F")
    p.add_argument("--no-starttls", action="store_true", help="offer neither STARTTLS nor STLS")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--allow-insecure-auth", action="store_true",
                      help="offer plaintext passwords before TLS on any address")
    auth.add_argument("--require-tls-for-auth", action="store_true",
                      help="no AUTH, USER/PASS or APOP before TLS, even on loopback")
    p.add_argument("--enable-vrfy", action="store_true", help="answer VRFY and EXPN for real")
    p.add_argument("--demo", action="store_true",
                   help="serve a fresh copy of the seed article's maildrop (user username)")
    p.add_argument("--max-connections", type=int, default=2000)
    p.add_argument("--auth-failure-delay", type=float, default=1.0, metavar="SECONDS",
                   help="wait this long before answering a failed login")
    p.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=True,
                   help="fsync each message before the 250 (default; RFC 5321 §6.1, as Postfix);"
                   " --no-fsync is faster but a crash of the machine may lose the last mail")
    relay = p.add_argument_group("relay", "where mail for other domains goes (no DNS here)")
    relay.add_argument("--route", type=route, action="append", default=[],
                       metavar="DOMAIN=HOST:PORT",
                       help="deliver mail for DOMAIN to HOST:PORT (repeatable)")
    relay.add_argument("--smarthost", type=host_port, metavar="HOST:PORT",
                       help="deliver all other mail there")
    relay.add_argument("--relay-domain", action="append", default=[], metavar="DOMAIN",
                       help="accept mail for DOMAIN from anyone and relay it (repeatable)")
    relay.add_argument("--retry-base", type=float, default=5.0, metavar="SECONDS",
                       help="first retry after a temporary failure; doubles each time")
    relay.add_argument("--queue-lifetime", type=float, default=86400.0, metavar="SECONDS",
                       help="then a message still undeliverable is bounced")
    p.add_argument("--fault", choices=FAULTS,
                   help="misbehave on purpose, deterministically (lessons on retries)")
    p.set_defaults(func=run)



def route(text: str) -> tuple[str, tuple[str, int]]:
    """``--route DOMAIN=HOST:PORT``, checked when the command line is read."""
    domain, eq, target = text.partition("=")
    if not eq or not domain:
        raise argparse.ArgumentTypeError(f"expected DOMAIN=HOST:PORT, got {text!r}")
    return domain.lower(), host_port(target)


def run(args: argparse.Namespace) -> int:
    from ..net.server import ServeOptions
    from ..net.server import run as serve

    options = ServeOptions(
        host=args.host,
        smtp_port=None if args.smtp_port < 0 else args.smtp_port,
        pop3_port=None if args.pop3_port < 0 else args.pop3_port,
        data=args.data, users=args.users, domains=args.domains or ["local.test"],
        hostname=args.hostname, max_message_size=args.max_message_size, timeout=args.timeout,
        tls_cert=args.tls_cert, tls_key=args.tls_key, starttls=not args.no_starttls,
        allow_insecure_auth=args.allow_insecure_auth,
        require_tls_for_auth=args.require_tls_for_auth, enable_vrfy=args.enable_vrfy,
        demo=args.demo, max_connections=args.max_connections,
        auth_failure_delay=args.auth_failure_delay, fsync=args.fsync,
        routes=dict(args.route), smarthost=args.smarthost,
        relay_domains=args.relay_domain, retry_base=args.retry_base,
        queue_lifetime=args.queue_lifetime, fault=args.fault)
    return serve(options)
