"""Who a local address reaches: users, mailing lists, postmaster (RFC 5321 §4.5.1), and the
answers to VRFY and EXPN (RFC 5321 §3.5, §4.1.1.6, §4.1.1.7, §7.3).

Plain functions of the server's configuration and the users file: RCPT asks
:func:`local_targets`; VRFY and EXPN get their whole reply from :func:`vrfy_reply` and
:func:`expn_reply`.  No I/O beyond what :class:`~mailproto.store.Users` already read.
"""

from __future__ import annotations

from ..store import Users
from . import replies as R
from .config import ServerConfig
from .wire import Reply, split_address


def local_targets(users: Users, config: ServerConfig, local: str) -> list[str] | None:
    """Mailboxes (user names) or remote addresses that mail to ``local`` reaches."""
    canon = users.canonical(local)
    if canon is not None:
        return [canon]
    if users.is_list(local):
        out = []
        for member in users.expand(local):
            m_local, m_domain = split_address(member)
            if config.is_local_domain(m_domain):
                canon = users.canonical(m_local)
                if canon is not None:
                    out.append(canon)
            else:
                out.append(member)
        return out
    if local.lower() == "postmaster":  # RFC 5321 §4.5.1: always accepted
        return ["postmaster"]
    return None


def home_domain(config: ServerConfig) -> str:
    """The domain VRFY and EXPN put after a local name."""
    return config.domains[0] if config.domains else config.hostname


def mailbox_arg(arg: str) -> tuple[str, str]:
    """``(local, domain)`` of a VRFY/EXPN argument, bare or in angle brackets."""
    text = arg.strip()
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1 : -1]
    return split_address(text)


def vrfy_reply(arg: str, config: ServerConfig, users: Users) -> Reply:
    """The reply to ``VRFY arg`` (252 when disabled, as Postfix: RFC 5321 §3.5.3, §7.3)."""
    if not arg:
        return Reply.of(501, "5.5.4 Syntax: VRFY address")
    if not config.enable_vrfy:
        return R.CANNOT_VRFY
    local, domain = mailbox_arg(arg)
    if domain and not config.is_local_domain(domain):
        return R.CANNOT_VRFY
    if users.canonical(local):
        return Reply.of(250, f"2.1.5 <{users.canonical(local)}@{home_domain(config)}>")
    if users.is_list(local):
        return Reply.of(550, "5.1.1 That is a mailing list, not a user (try EXPN)")
    if local.lower() == "postmaster":  # RFC 5321 §4.5.1: always accepted at RCPT
        return Reply.of(250, f"2.1.5 <postmaster@{home_domain(config)}>")
    return Reply.of(550, f"5.1.1 <{arg[:100]}>: User unknown")


def expn_reply(arg: str, config: ServerConfig, users: Users) -> Reply:
    """The reply to ``EXPN arg``: the list's members, one per line (RFC 5321 §3.5.2)."""
    if not config.enable_vrfy:  # RFC 5321 §3.5.2, §7.3: 502 when not offered
        return Reply.of(502, "5.5.1 EXPN command is disabled")
    if not arg:
        return Reply.of(501, "5.5.4 Syntax: EXPN list")
    local, _ = mailbox_arg(arg)
    if users.is_list(local):
        domain = home_domain(config)
        members = [m if "@" in m else f"{m}@{domain}" for m in users.expand(local)]
        lines = tuple(f"2.1.5 <{m}>" for m in members) or ("2.1.5 (the list is empty)",)
        return Reply(250, lines)
    if users.canonical(local):
        return Reply.of(550, "5.1.1 That is a user name, not a mailing list")
    return Reply.of(550, f"5.1.1 <{arg[:100]}>: No such list")
