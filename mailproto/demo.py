"""The seed article's maildrop, recreated octet for octet, for ``mailproto serve --demo``.

The seed article logs in to a POP3 server as ``username``/``password`` and finds 7 messages of
999, 42837, 43789, 43789, 46187, 43386 and 70606 octets (``+OK 7 291593``). This module rebuilds
that maildrop: the article's welcome message (done properly this time) and six plausible mails
from early 2006, each exactly as large on the wire as the article's LIST says.

Sizes are counted as POP3 counts them (RFC 1939 §5, LIST/STAT): octets as sent, where every line
ends in CRLF. Files on disk end lines in LF, so the wire size is file bytes + number of LFs.

Each message is built by hand (not by ``email.generator``) so the bytes never change with the
Python version: fixed MIME boundaries, fixed dates, generated content with no randomness, PNGs
with uncompressed deflate blocks (a zlib build can't change them). Each of messages 2-7 comes
from a function ``build(n, pad)``: ``n`` rows of generated content (a traffic table, a server
log ...) and a rule above the signature ``pad`` characters longer than the shortest; ``_fit``
picks the largest ``n`` that fits, and ``pad`` takes up the rest, octet by octet.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import os
import quopri
import shutil
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

from .store import Maildir

__all__ = ["DEMO_PASSWORD", "DEMO_USER", "SEED_SIZES", "USERS_FILE", "apop_digest",
           "create_demo_store", "demo_messages", "maildir_names", "wire_size"]

DEMO_USER = "username"
DEMO_PASSWORD = "password"
SEED_SIZES = (999, 42837, 43789, 43789, 46187, 43386, 70606)
#: Lab accounts next to the seed's user, and a list (EXPN staff, mail to staff@ reaches both).
LAB_USERS = (("alice", "alice-secret"), ("bob", "bob-secret"))
LAB_LIST = ("staff", ("alice", "bob"))
DOMAIN = "musemail.com"
MX = "mail.musemail.com"

CST = timezone(timedelta(hours=8))  # the article's server is in UTC+8
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # not %a: that follows the locale
_RULE_MIN = 4  # the shortest signature rule; ``pad`` octets are added to it
#: Generated rows stay at most this long (74 octets with CRLF), so the remainder ``_fit`` leaves
#: is under 74 octets and the rule stays within RFC 5322's 78 characters.
_MAX_ROW = 72


def wire_size(data: bytes) -> int:
    """Octets of a stored (LF) message as POP3 sends it: each LF goes out as CRLF (RFC 1939 §3)."""
    return len(data) + data.count(b"\n")


# --- MIME building blocks ---------------------------------------------------------------------


@dataclass
class _Part:
    """A MIME entity (RFC 2045/2046): header fields and either a body or parts."""

    headers: list[tuple[str, str]]
    body: bytes = b""
    parts: list[_Part] = field(default_factory=list)
    boundary: str = ""
    preamble: str = ""

    def render(self) -> bytes:
        # Header fields are 7-bit (RFC 5322 §2.2); long ones are folded by the caller ("\n\t").
        head = "".join(f"{name}: {value}\n" for name, value in self.headers).encode("ascii")
        if not self.parts:
            return head + b"\n" + self.body
        out = [head, b"\n", self.preamble.encode("ascii")]
        for part in self.parts:
            out += [f"--{self.boundary}\n".encode("ascii"), part.render()]
        out.append(f"--{self.boundary}--\n".encode("ascii"))
        return b"".join(out)


def _multipart(subtype: str, boundary: str, parts: list[_Part],
               headers: Iterable[tuple[str, str]] = (), preamble: str = "") -> _Part:
    ctype = f'multipart/{subtype};\n\tboundary="{boundary}"'
    return _Part([*headers, ("Content-Type", ctype)], parts=parts, boundary=boundary,
                 preamble=preamble)


def _text(lines: Iterable[str], charset: str = "us-ascii", *, subtype: str = "plain",
          headers: Iterable[tuple[str, str]] = ()) -> _Part:
    """A text part sent as is: 7bit for ASCII, 8bit otherwise (RFC 2045 §2.7-2.8)."""
    body = "".join(line + "\n" for line in lines).encode(charset)
    cte = "7bit" if body.isascii() else "8bit"
    return _Part([("Content-Type", f"text/{subtype}; charset={charset}"),
                  ("Content-Transfer-Encoding", cte), *headers], body)


def _base64_part(data: bytes, ctype: str, disposition: str) -> _Part:
    """Binary data in base64, 76-character lines (RFC 2045 §6.8)."""
    return _Part([("Content-Type", ctype), ("Content-Transfer-Encoding", "base64"),
                  ("Content-Disposition", disposition)], base64.encodebytes(data))


def _encoded_word(text: str, charset: str) -> str:
    """An RFC 2047 §4.1 'B' encoded word: how non-ASCII text goes into a header field."""
    word = f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode('ascii')}?="
    assert len(word) <= 75, "RFC 2047 §2: an encoded word is at most 75 characters"
    return word


def _rfc2231(param: str, value: str, charset: str = "UTF-8", width: int = 54) -> str:
    """A non-ASCII parameter value, RFC 2231 §3-4: ``param*0*=UTF-8''%E5...`` continuations,
    split between whole %XX escapes so each folded line stays short."""
    chunks: list[str] = []
    current = ""
    for ch in value:
        piece = quote(ch.encode(charset), safe="")
        if current and len(current) + len(piece) > width:
            chunks.append(current)
            current = ""
        current += piece
    chunks.append(current)
    if len(chunks) == 1:
        return f"{param}*={charset}''{chunks[0]}"
    first = f"{param}*0*={charset}''{chunks[0]}"
    rest = [f"{param}*{i}*={chunk}" for i, chunk in enumerate(chunks[1:], 1)]
    return ";\n\t".join([first, *rest])


def _received(source: str, ident: str, when: datetime, protocol: str = "ESMTP",
              by: str = f"{MX} (MuseMail 3.5)") -> str:
    """A Received: trace field (RFC 5321 §4.4), folded the way most MTAs fold it."""
    return (f"from {source}\n\tby {by} with {protocol} id {ident}\n"
            f"\tfor <{DEMO_USER}@{DOMAIN}>; {format_datetime(when)}")


def _rule(pad: int) -> str:
    """The signature rule, ``pad`` characters longer than the shortest: the last few octets."""
    assert 0 <= pad <= 78 - _RULE_MIN, f"rule too long ({pad}): rows must stay short"
    return "-" * (_RULE_MIN + pad)


def _short(rows: list[str]) -> list[str]:
    """Generated rows, checked against ``_MAX_ROW`` (the rule must be able to absorb one)."""
    too_long = [row for row in rows if len(row.encode("utf-8")) > _MAX_ROW]
    assert not too_long, too_long[:1]
    return rows


def _fit(build: Callable[[int, int], bytes], target: int, limit: int) -> bytes:
    """Exactly ``target`` wire octets: the most rows ``n <= limit`` that fit, then the rule's
    ``pad`` takes up the remainder (each rule character is one octet)."""
    lo, hi = 0, limit
    if wire_size(build(0, 0)) > target:
        raise ValueError(f"even an empty message is larger than {target} octets")
    while lo < hi:  # the size grows with n: binary search for the largest n that fits
        mid = (lo + hi + 1) // 2
        if wire_size(build(mid, 0)) <= target:
            lo = mid
        else:
            hi = mid - 1
    if lo == limit:
        raise ValueError(f"{limit} rows are not enough to reach {target} octets")
    data = build(lo, target - wire_size(build(lo, 0)))
    assert wire_size(data) == target, (wire_size(data), target)
    return data


# --- generated content ------------------------------------------------------------------------

LAUNCH = date(2004, 8, 19)  # the welcome message's date: the server's first day


def _traffic(day: date) -> tuple[int, int]:
    """Messages received and sent on a day of the (fictional) server's life."""
    age = (day - LAUNCH).days
    weekend = day.weekday() >= 5
    noise = (day.toordinal() * 2654435761) % 2**32 >> 22  # Knuth's multiplicative hash: 0..1023
    received = 900 + 14 * age + noise - (700 if weekend else 0)
    return received, received * (30 + day.toordinal() % 13) // 100


def _traffic_rows(last: date, n: int) -> list[str]:
    """``n`` rows of the daily table, newest first (at most 33 characters: see the newsletter)."""
    rows = []
    for back in range(n):
        day = last - timedelta(days=back)
        received, sent = _traffic(day)
        rows.append(f"{day.isoformat()} {_WEEKDAYS[day.weekday()]} {received:>9,} {sent:>8,}")
    return _short(rows)


def _png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """A truecolour PNG (PNG spec §11.2) whose zlib stream uses *stored* deflate blocks
    (RFC 1951 §3.2.4): no compression, so the bytes (and our sizes) are identical with every
    zlib build, and the file size is simply predictable."""
    raw = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y))
                   for y in range(height))  # filter type 0 on every scanline
    blocks = [b"\x78\x01"]  # RFC 1950 header: deflate, 32K window, no dictionary
    for start in range(0, len(raw), 0xFFFF):
        block = raw[start:start + 0xFFFF]
        final = start + 0xFFFF >= len(raw)
        blocks.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block)
    blocks.append(struct.pack(">I", zlib.adler32(raw)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(blocks))
            + chunk(b"IEND", b""))


def _traffic_chart(last: date, days: int, bar: int, height: int) -> bytes:
    """A bar chart of ``days`` days of traffic: received (blue) with the sent share (orange)."""
    values = [_traffic(last - timedelta(days=days - 1 - i)) for i in range(days)]
    top = max(received for received, _ in values)
    scale = (height - 4) / top

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        received, sent = values[x // bar]
        level = height - 1 - y
        if x % bar == bar - 1 and bar > 1:
            return (255, 255, 255)  # a gap between bars
        if level < sent * scale:
            return (230, 120, 40)
        if level < received * scale:
            return (60, 100, 170)
        return (225, 225, 225) if level % 20 == 0 else (255, 255, 255)  # grid lines

    return _png(days * bar, height, pixel)


def _smtpd_log(n: int) -> list[str]:
    """``n`` lines of a Postfix-style log of mail arriving on the lab server."""
    users = ("alice", "bob", DEMO_USER, "liming")
    lines = []
    for k in range(n // 6 + 1):
        t = datetime(2006, 1, 26, 8, 30) + timedelta(seconds=97 * k)
        stamp = f"{t:%H:%M:%S}"  # the date is in the file's first line
        pid, qid = 2400 + k % 50, f"{0x4F2A1 + 37 * k:X}"
        ip = f"192.168.1.{20 + k % 17}"
        who, to = users[k % 4], users[(k + 1) % 4]
        lines += [f"{stamp} smtpd[{pid}]: connect from unknown[{ip}]",
                  f"{stamp} smtpd[{pid}]: {qid}: client=unknown[{ip}]",
                  f"{stamp} qmgr[812]: {qid}: from=<{who}@{DOMAIN}>, size={900 + 331 * k % 9000}",
                  f"{stamp} local[{pid + 3}]: {qid}: to=<{to}@{DOMAIN}>, status=sent",
                  f"{stamp} qmgr[812]: {qid}: removed",
                  f"{stamp} smtpd[{pid}]: disconnect from unknown[{ip}]"]
    return _short(lines[:n])


def _pop3_transcript(n: int) -> list[str]:
    """``n`` lines of POP3 sessions against this maildrop as it was on 2 February 2006, with
    messages 1-4 (RFC 1939 §4-6)."""
    sizes = SEED_SIZES[:4]
    total = sum(sizes)
    lines: list[str] = []
    k = 0
    while len(lines) < n:
        t = datetime(2006, 2, 2, 14, 0) + timedelta(seconds=223 * k)
        msg = 1 + k % len(sizes)
        session = [f"=== session {k + 1}, {t:%Y-%m-%d %H:%M:%S} +0800 ===",
                   "S: +OK [MuseMail 3.5 POP3 Server] service ready",
                   f"C: USER {DEMO_USER}", f"S: +OK Password required for {DEMO_USER}",
                   "C: PASS ********", f"S: +OK Maildrop has {len(sizes)} messages ({total} bytes)",
                   "C: STAT", f"S: +OK {len(sizes)} {total}", "C: LIST", "S: +OK",
                   *(f"S: {i} {size}" for i, size in enumerate(sizes, 1)), "S: .",
                   f"C: TOP {msg} 0", f"S: +OK message is {sizes[msg - 1]} bytes",
                   "S: (the header lines and a blank line)", "S: .",
                   "C: QUIT", "S: +OK [MuseMail 3.5 POP3 Server] closing session"]
        lines += [session[0]] + [f"{t + timedelta(seconds=i):%H:%M:%S} {line}"
                                 for i, line in enumerate(session[1:])]
        k += 1
    return _short(lines[:n])


def apop_digest(stamp: str, secret: str) -> str:
    """The APOP digest, RFC 1939 §7: MD5 of the greeting's timestamp followed by the secret."""
    return hashlib.md5((stamp + secret).encode("utf-8")).hexdigest()


def _apop_vectors(n: int) -> list[str]:
    """``n`` APOP test vectors for the demo password: timestamps of 1 February 2006."""
    start = int(datetime(2006, 2, 1, 8, 0, tzinfo=CST).timestamp())
    stamps = (f"<{1000 + 37 * k % 9000}.{start + 17 * k}@{DOMAIN}>" for k in range(n))
    return _short([f"{stamp} {apop_digest(stamp, DEMO_PASSWORD)}" for stamp in stamps])


def _delivery_attempts(last: datetime, n: int) -> list[str]:
    """``n`` failed delivery attempts, newest first, one an hour (RFC 5321 §4.5.4.1 retries)."""
    lines = []
    for k in range(n):
        t = last - timedelta(seconds=3600 * k + 17 * (k % 5))
        lines.append(f"{format_datetime(t)[5:]}  connect to 192.0.2.25:25: timed out")
    return _short(lines)


# --- the seven messages -----------------------------------------------------------------------

#: The welcome message's body, as decoded in /work/shared/seed/README.md.
WELCOME_SUBJECT = "恭喜您成为本邮件系统的新用户! "
WELCOME_LINES = (
    "恭喜!",
    "您好，恭喜您成为musemail.com的邮箱用户。您的邮箱全名是：admin@musemail.com",
    "请牢记您的用户名和密码，如果有任何问题，您可以通过admin@system.default与系统管理员联系。",
    "-" * 54,
    "缪斯邮件服务器－拉近网络与您的距离！",
)


def _welcome() -> bytes:
    """Message 1: the article's welcome message, 999 octets, with its header fields fixed.

    The seed's copy has an 8-bit ``From: 系统管理员``; here the display name is an RFC 2047
    encoded word with an address. ``To: Mail Users:;`` is an empty RFC 5322 §3.4 group (the
    seed shows just a phrase). The body is quoted-printable at full 76-character lines, as
    short as it can be (586 octets on the wire); with the seed's header fields that leaves
    exactly the room for a 3-letter mailbox (``sys@``). So there is no Message-ID (a SHOULD,
    RFC 5322 §3.6.4) and no Received: field; the article's TOP output has neither.
    """
    body = quopri.encodestring("".join(f"{line}\n" for line in WELCOME_LINES).encode("gb2312"))
    return _Part([
        ("From", f"{_encoded_word('系统管理员', 'gb2312')} <sys@{DOMAIN}>"),
        ("To", "Mail Users:;"),
        ("Subject", _encoded_word(WELCOME_SUBJECT, "gb2312")),
        ("Date", "Thu, 19 Aug 2004 15:47:10 +0800"),
        ("MIME-Version", "1.0 (Produced by MuseMail R&D Center)"),
        ("X-mailer", "MuseMail MIME V1.0"),
        ("Content-type", "text/plain; charset=gb2312"),
        ("Content-Description", "Message text"),
        ("Content-Disposition", "inline"),
        ("Content-Transfer-Encoding", "Quoted-printable"),  # RFC 2045 §6.7
    ], body).render()


_NEWS = (
    ("POP3 for everyone, with UIDL and TOP",
     "Every mailbox can now be read with any POP3 client on port 110. The server supports "
     "UIDL, so your client can leave mail on the server and still download each message only "
     "once, and TOP, so it can show you the headers before fetching a large attachment."),
    ("Log in without sending your password: APOP",
     "Clients that support APOP (RFC 1939 section 7) prove that they know your password "
     "without sending it: they send an MD5 digest of the server's greeting and the password. "
     "In Outlook Express, tick 'Log on using Secure Password Authentication'."),
    ("Mailboxes grow to 100 MB",
     "From 1 February every mailbox holds 100 MB. Large attachments still travel as base64, "
     "which makes them a third larger on the wire than on your disk."),
    ("Spam filter",
     "About a third of the mail we receive is spam. The new filter marks it with "
     "'X-Spam-Flag: YES'; tell your mail program to move such messages to a folder."),
    ("Why LIST shows more than your disk",
     "Your mail program counts a message's size on your disk; our server counts octets as "
     "they travel, where every line ends in CR LF and attachments are base64. So the sizes "
     "our POP3 server lists are a few percent larger than the files you save."),
    ("Maintenance on 22 January",
     "On Sunday 22 January, 02:00 to 04:00, the server moves to MuseMail 3.5. Mail sent to "
     "you during that time waits at the sender's server and arrives afterwards: SMTP servers "
     "retry for days before they give up."),
    ("Forward your mail",
     "The webmail settings can now forward your musemail.com mail to another address. "
     "Forwarded mail keeps its original sender, and bounces come back to us, not to you."),
    ("Questions?",
     "Write to admin@system.default, or visit the help desk in the library building, "
     "weekdays 9:00 to 17:00. Please include the full error message your mail program "
     "shows: the three-digit SMTP reply code tells us most of the story."),
)


def _newsletter(n: int, pad: int) -> bytes:
    """Message 2: a newsletter in multipart/alternative (RFC 2046 §5.1.4), text then HTML:
    the last part is the richest, and a reader shows the best one it understands."""
    last = date(2006, 1, 15)
    rows = _traffic_rows(last, n)
    table_head = "date       day  received     sent"
    text = ["MuseMail Newsletter - January 2006", "=" * 34, "",
            "Happy new year from the MuseMail team! Seventeen months after our first",
            "user signed up, here is what changed and what comes next.", "", "In this issue:",
            *(f"  {number}. {title}" for number, (title, _) in enumerate(_NEWS, 1)),
            f"  {len(_NEWS) + 1}. Daily traffic since launch", ""]
    for number, (title, para) in enumerate(_NEWS, 1):
        text += [f"{number}. {title}", *_wrap(para, 68, "   "), ""]
    text += [f"{len(_NEWS) + 1}. Daily traffic since launch",
             "   Messages received and sent per day, newest first.", "",
             table_head, *rows, _rule(pad),
             f"You receive this newsletter because you have a mailbox at {DOMAIN}.",
             f"To stop it, send an empty message to newsletter-leave@{DOMAIN}.",
             "MuseMail Mail Server - bringing the network closer to you!"]
    page = ['<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">',
            "<html><head><title>MuseMail Newsletter - January 2006</title></head>",
            '<body bgcolor="#ffffff"><table width="600" align="center"><tr><td>',
            '<h1><font face="Arial" color="#3c64aa">MuseMail Newsletter</font></h1>',
            '<p><font face="Arial"><b>January 2006.</b> Happy new year from the MuseMail',
            "team! Seventeen months after our first user signed up, here is what changed",
            "and what comes next.</font></p>", '<p><font face="Arial">In this issue:</font></p>',
            '<ul type="square">',
            *(line for number, (title, _) in enumerate(_NEWS, 1)
              for line in (f'<li><font face="Arial"><a href="#n{number}">',
                           f"{html.escape(title)}</a></font></li>")),
            f'<li><font face="Arial"><a href="#n{len(_NEWS) + 1}">',
            "Daily traffic since launch</a></font></li>", "</ul>"]
    for number, (title, para) in enumerate(_NEWS, 1):
        page += [f'<h2><a name="n{number}"></a><font face="Arial" color="#3c64aa">',
                 f"{html.escape(title)}</font></h2>",
                 '<p><font face="Arial">', *_wrap(html.escape(para), 76), "</font></p>"]
    page += [f'<h2><a name="n{len(_NEWS) + 1}"></a><font face="Arial" color="#3c64aa">',
             "Daily traffic since launch</font></h2>",
             '<p><font face="Arial">Messages received and sent per day, newest first.',
             "</font></p>", f"<pre>{table_head}", *rows, "</pre>",
             '<hr><p><font face="Arial" size="1">You receive this newsletter because you',
             f"have a mailbox at {DOMAIN}. To stop it, send an empty message to",
             f'<a href="mailto:newsletter-leave@{DOMAIN}">',
             f"newsletter-leave@{DOMAIN}</a>.",
             "</font></p></td></tr></table></body></html>"]
    return _multipart("alternative", "=_MuseMail_NL_200601_0001", [
        _text(text), _text(page, subtype="html")], headers=[
        ("Return-Path", f"<newsletter-bounces@{DOMAIN}>"),
        ("Received", _received("localhost (localhost [127.0.0.1])", "NL0601.000417",
                               datetime(2006, 1, 16, 10, 0, 4, tzinfo=CST), "SMTP",
                               by=f"{MX} (MuseMail 3.4)")),  # the upgrade is on 22 January
        ("From", f"MuseMail Team <newsletter@{DOMAIN}>"),
        ("To", f"{DEMO_USER}@{DOMAIN}"),
        ("Subject", "MuseMail Newsletter - January 2006"),
        ("Date", "Mon, 16 Jan 2006 10:00:00 +0800"),
        ("Message-ID", f"<20060116100000.NL0601.417@{DOMAIN}>"),
        ("List-Unsubscribe", f"<mailto:newsletter-leave@{DOMAIN}>"),  # RFC 2369
        ("Precedence", "bulk"),
        ("MIME-Version", "1.0")], preamble="This is a multi-part message in MIME format.\n"
    ).render()


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Greedy word wrap (textwrap's rules could change between Python versions; these won't)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, indent + line]


def _chart_mail(n: int, pad: int) -> bytes:
    """Message 3: a PNG attachment in base64 (RFC 2045 §6.8, RFC 2046 §4.2) and its data."""
    last = date(2006, 1, 23)
    text = ["Hi,", "",
            *_wrap("here is the chart for section 4 of the lab report: messages received "
                   "per day (blue) and the share we sent (orange), for the 60 days up to "
                   "yesterday, drawn from the newsletter's traffic table. I saved the PNG "
                   "without compression (deflate 'stored' blocks), so the pixel rows are "
                   "easy to find in a hex dump, as we discussed on Friday.", 68),
            "", "The figures, newest first:", "",
            "date       day  received     sent", *_traffic_rows(last, n), "", _rule(pad),
            "Alice Chen, MuseMail lab"]
    png = _traffic_chart(last, days=60, bar=2, height=81)
    return _multipart("mixed", "------------030804070503020001090105", [
        _text(text, "ISO-8859-1"),
        _base64_part(png, 'image/png;\n\tname="traffic.png"',
                     'inline;\n\tfilename="traffic.png"')], headers=[
        ("Return-Path", f"<alice@{DOMAIN}>"),
        ("Received", _received("[192.168.1.23] (alicepc [192.168.1.23])", "8C2F1A",
                               datetime(2006, 1, 24, 16, 20, 7, tzinfo=CST), "ESMTPA")),
        ("Message-ID", f"<43D5E3A5.3000806@{DOMAIN}>"),
        ("Date", "Tue, 24 Jan 2006 16:20:05 +0800"),
        ("From", f"Alice Chen <alice@{DOMAIN}>"),
        ("User-Agent", "Thunderbird 1.5 (Windows/20051201)"),
        ("MIME-Version", "1.0"),
        ("To", f"{DEMO_USER}@{DOMAIN}"),
        ("Cc", f"Bob Li <bob@{DOMAIN}>"),
        ("Subject", "Traffic chart for the lab report")],
        preamble="This is a multi-part message in MIME format.\n").render()


def _reply_mail(n: int, pad: int) -> bytes:
    """Message 4: a reply thread in plain English (quoted with '>'), with a server log attached
    as a 7bit text part (RFC 2046 §4.1) that telnet shows as is."""
    welcome = _welcome()
    octets, lines = len(welcome), welcome.count(b"\n")
    text = ["On Fri, Jan 27, 2006 at 18:40:12 +0800, username wrote:",
            "> Thanks. So the server has to count the line ends itself? Reading",
            "> every file for each LIST sounds slow.",
            ">",
            "> Alice Chen wrote:",
            ">> On Thu, 26 Jan 2006, username wrote:",
            ">>> Our POP3 server says \"1 999\" for the welcome message, but ls -l",
            f">>> shows {octets} bytes. Is our LIST wrong?",
            ">>",
            ">> No: RFC 1939 counts octets as they go over the wire, and every",
            ">> line goes out with CR LF while the file ends lines with LF only.",
            "",
            *_wrap("Right, and it need not be slow: count once, at delivery, and keep the "
                   "number (Dovecot puts it in the Maildir file name, as ',S=999'). For "
                   f"the welcome message: {octets} bytes in the file and {lines} lines, so",
                   68),
            f"    {octets} + {lines} = {octets + lines} octets on the wire.",
            "STAT adds those numbers up; nobody reads the files.",
            "",
            *_wrap("Alice asked for the server log of Thursday morning's test run. It is "
                   "attached: every message arrives, none is lost, and the sizes in the "
                   "log are the sizes in the files, in LF octets.", 68),
            "", "-- ", "Bob", _rule(pad), "MuseMail lab, room 301, office hours Tue 14-16"]
    return _multipart("mixed", "J2SCkAp4GZ/dPZZf", [
        _text(text, headers=[("Content-Disposition", "inline")]),
        _text([f"# {MX}, Thursday 26 January 2006", *_smtpd_log(n)], headers=[
            ("Content-Disposition", 'attachment; filename="maillog-0126.txt"')])], headers=[
        ("Return-Path", f"<bob@{DOMAIN}>"),
        ("Received", _received("bobnb (unknown [192.168.1.31])", "E51B07",
                               datetime(2006, 1, 27, 21, 5, 35, tzinfo=CST), "ESMTPA")),
        ("Date", "Fri, 27 Jan 2006 21:05:33 +0800"),
        ("From", f"Bob Li <bob@{DOMAIN}>"),
        ("To", f"{DEMO_USER}@{DOMAIN}"),
        ("Cc", f"Alice Chen <alice@{DOMAIN}>"),
        ("Subject", "Re: Lab 3: LIST says 999 but the file is smaller?"),
        ("Message-ID", f"<20060127130533.GA4711@bobnb.{DOMAIN}>"),
        ("References", f"<20060126101502.GB2210@{DOMAIN}>\n\t<43D8E2A1.5060302@{DOMAIN}>\n"
                       f"\t<20060127104012.GA3300@{DOMAIN}>"),  # RFC 5322 §3.6.4: the thread
        ("In-Reply-To", f"<20060127104012.GA3300@{DOMAIN}>"),
        ("MIME-Version", "1.0"),
        ("User-Agent", "Mutt/1.5.11")]).render()


def _transcript_mail(n: int, pad: int) -> bytes:
    """Message 5: UTF-8 text (8bit, RFC 2045 §2.8) and an attachment whose Chinese file name
    is an RFC 2231 parameter, charset-tagged and split into continuations (§3-4)."""
    name = "实验三-POP3会话记录.txt"
    text = ["你好！", "",
            "附件是我昨天用 telnet 测试实验三 POP3 服务器的会话记录，连接的就是",
            "演示邮箱（用户名 username）。那时邮箱里还只有四封信，每次 STAT 都是",
            f"+OK 4 {sum(SEED_SIZES[:4])}，LIST 的四个大小和文章里的前四个一样。", "",
            "附件的文件名是中文的，Thunderbird 按 RFC 2231 编码",
            "（filename*0*=UTF-8''...）。如果你的邮件程序显示乱码，说明它不支持",
            "RFC 2231。", "", _rule(pad), "李明"]
    return _multipart("mixed", "------------090107020905000401030708", [
        _text(text, "UTF-8"),
        _Part([("Content-Type", f"text/plain; charset=us-ascii;\n\t{_rfc2231('name', name)}"),
               ("Content-Transfer-Encoding", "7bit"),
               ("Content-Disposition", f"attachment;\n\t{_rfc2231('filename', name)}")],
              "".join(f"{line}\n" for line in _pop3_transcript(n)).encode("ascii"))],
        headers=[
        ("Return-Path", f"<liming@{DOMAIN}>"),
        ("Received", _received("[10.3.7.42] (dorm7-42 [10.3.7.42])", "2D90C4",
                               datetime(2006, 2, 3, 22, 47, 21, tzinfo=CST), "ESMTPA")),
        ("Message-ID", f"<43E36D17.6010905@{DOMAIN}>"),
        ("Date", "Fri, 03 Feb 2006 22:47:19 +0800"),
        ("From", f"{_encoded_word('李明', 'UTF-8')} <liming@{DOMAIN}>"),
        ("User-Agent", "Thunderbird 1.5 (Windows/20051201)"),
        ("MIME-Version", "1.0"),
        ("To", f"{DEMO_USER}@{DOMAIN}"),
        ("Subject", _encoded_word("实验三：POP3 会话记录", "UTF-8"))],
        preamble="This is a multi-part message in MIME format.\n").render()


RFC1939_STAMP = "<1896.697170952@dbc.mtview.ca.us>"  # the example in RFC 1939 §7


def _apop_mail(n: int, pad: int) -> bytes:
    """Message 6: Big5 text (Traditional Chinese, 8bit) from Outlook Express, with APOP test
    vectors attached (RFC 1939 §7)."""
    text = ["您好：", "",
            "上週課堂上提到的 APOP 測試向量整理好了，附件每行一組：伺服器問候語",
            "裡角括號 <...> 那一段時間戳記，和 MD5(時間戳記 + 密碼) 的結果，密碼",
            "都是示範帳號的 password。第一組是 RFC 1939 第 7 節的範例，可以先拿",
            "它檢查自己的程式。", "",
            "注意：APOP 只是不讓密碼以明文傳送，MD5 也早已不夠安全；實驗以外",
            "請改用 TLS。", "", _rule(pad), "陳志明 助教"]
    vectors = ["# APOP test vectors, RFC 1939 section 7: digest = MD5(timestamp secret)",
               "# first the RFC's own example (secret: tanstaaf), then secret: password",
               f"{RFC1939_STAMP} {apop_digest(RFC1939_STAMP, 'tanstaaf')}",
               *_apop_vectors(n)]
    return _multipart("mixed", "----=_NextPart_000_0007_01C6297B.8B6E2A40", [
        _text(text, "big5"),
        _text(vectors, headers=[("Content-Disposition",
                                 'attachment;\n\tfilename="apop-vectors.txt"')])], headers=[
        ("Return-Path", "<chen@csie.example.org>"),
        ("Received", _received("mx.csie.example.org (mx.csie.example.org [192.0.2.25])",
                               "6A7E13", datetime(2006, 2, 4, 10, 31, 12, tzinfo=CST))),
        ("Message-ID", "<000a01c62938$8b6e2a40$1901a8c0@chenpc>"),
        ("From", f"{_encoded_word('陳志明', 'big5')} <chen@csie.example.org>"),
        ("To", f"<{DEMO_USER}@{DOMAIN}>"),
        ("Subject", f"APOP {_encoded_word('測試向量', 'big5')}"),
        ("Date", "Sat, 4 Feb 2006 10:31:08 +0800"),
        ("MIME-Version", "1.0"),
        ("X-Priority", "3"),
        ("X-Mailer", "Microsoft Outlook Express 6.00.2900.2180")],
        preamble="This is a multi-part message in MIME format.\n\n").render()


def _bounce_mail(n: int, pad: int) -> bytes:
    """Message 7: a bounce, multipart/report with a delivery-status part and the returned
    message (RFC 3462, RFC 3464); sent from the null reverse-path (RFC 5321 §4.5.5)."""
    bounced = datetime(2006, 2, 6, 9, 12, 44, tzinfo=CST)
    sent = bounced - timedelta(days=5, seconds=14)
    report = ["This is the MuseMail 3.5 mail system at host mail.musemail.com.", "",
              "I'm sorry to have to inform you that your message could not",
              "be delivered to one or more recipients. It's attached below.", "",
              "For further assistance, please send mail to <postmaster>. If you",
              "do so, please include this problem report.", "",
              "                   The mail system", "",
              "<chen@csie.example.org>: connect to mx.csie.example.org[192.0.2.25]:25:",
              "    Connection timed out", "",
              "The message waited in the queue for 5 days, the queue lifetime.",
              "The last delivery attempts, newest first:", "",
              *_delivery_attempts(bounced - timedelta(seconds=4), n), _rule(pad)]
    status = [f"Reporting-MTA: dns; {MX}", f"Arrival-Date: {format_datetime(sent)}", "",
              "Final-Recipient: rfc822; chen@csie.example.org", "Action: failed",
              "Status: 4.4.1",
              "Diagnostic-Code: X-MuseMail; connect to mx.csie.example.org[192.0.2.25]:25:",
              "    Connection timed out"]
    original = _multipart("mixed", "------------000502090803070004010507", [
        _text(["Dear Mr. Chen,", "",
               *_wrap("as promised in class, the traffic chart of our lab server for the 100 "
                      "days up to the end of January: messages received in blue, the share "
                      "we sent in orange.", 68),
               "", "Best regards,", DEMO_USER], "ISO-8859-1"),
        _base64_part(_traffic_chart(date(2006, 1, 31), days=100, bar=2, height=76),
                     'image/png;\n\tname="traffic-100d.png"',
                     'attachment;\n\tfilename="traffic-100d.png"')], headers=[
        ("Received", _received("[192.168.1.40] (unknown [192.168.1.40])", "9C1E84A2B1",
                               sent + timedelta(seconds=2), "ESMTPA").replace(
                                   f"for <{DEMO_USER}@{DOMAIN}>", "for <chen@csie.example.org>")),
        ("Message-ID", f"<43E00AEE.8040707@{DOMAIN}>"),
        ("Date", format_datetime(sent)),
        ("From", f"{DEMO_USER}@{DOMAIN}"),
        ("User-Agent", "Thunderbird 1.5 (Windows/20051201)"),
        ("MIME-Version", "1.0"),
        ("To", "chen@csie.example.org"),
        ("Subject", "Traffic chart")],
        preamble="This is a multi-part message in MIME format.\n")
    return _multipart("report; report-type=delivery-status", "9C1E84A2B1.1139188364/" + MX, [
        _text(report, headers=[("Content-Description", "Notification")]),
        _Part([("Content-Description", "Delivery report"),
               ("Content-Type", "message/delivery-status")],
              "".join(f"{line}\n" for line in status).encode("ascii")),
        _Part([("Content-Description", "Undelivered Message"),
               ("Content-Type", "message/rfc822")], original.render())], headers=[
        ("Return-Path", "<>"),
        ("Received", "by mail.musemail.com (MuseMail 3.5)\n"
                     f"\tid 5F31C2D77A; {format_datetime(bounced)}"),
        ("Date", format_datetime(bounced)),
        ("From", f"MAILER-DAEMON@{DOMAIN} (Mail Delivery System)"),
        ("Subject", "Undelivered Mail Returned to Sender"),
        ("To", f"{DEMO_USER}@{DOMAIN}"),
        ("Auto-Submitted", "auto-replied"),  # RFC 3834 §5: don't answer this automatically
        ("MIME-Version", "1.0"),
        ("Message-Id", f"<20060206011244.5F31C2D77A@{MX}>")],
        preamble="This is a MIME-encapsulated message.\n\n").render()


# --- the public API ---------------------------------------------------------------------------

#: Builders with the most rows each may take: days since launch, hourly retries in 5 days ...
_BUILDERS: tuple[tuple[Callable[[int, int], bytes], int], ...] = (
    (_newsletter, (date(2006, 1, 15) - LAUNCH).days + 1),
    (_chart_mail, (date(2006, 1, 23) - LAUNCH).days + 1),
    (_reply_mail, 6 * 200),
    (_transcript_mail, 20 * 200),
    (_apop_mail, 2000),
    (_bounce_mail, 5 * 24),
)

#: When each message reached the maildrop (its last Received: time): the Maildir file names.
_ARRIVALS = (
    datetime(2004, 8, 19, 15, 47, 10, tzinfo=CST),
    datetime(2006, 1, 16, 10, 0, 4, tzinfo=CST),
    datetime(2006, 1, 24, 16, 20, 7, tzinfo=CST),
    datetime(2006, 1, 27, 21, 5, 35, tzinfo=CST),
    datetime(2006, 2, 3, 22, 47, 21, tzinfo=CST),
    datetime(2006, 2, 4, 10, 31, 12, tzinfo=CST),
    datetime(2006, 2, 6, 9, 12, 44, tzinfo=CST),
)


@functools.cache
def _messages() -> tuple[bytes, ...]:
    fitted = [_fit(build, target, limit)
              for (build, limit), target in zip(_BUILDERS, SEED_SIZES[1:], strict=True)]
    return (_welcome(), *fitted)


def demo_messages() -> list[bytes]:
    """The seven messages of the seed's maildrop, in order: LF line ends, each ending in a
    newline, each exactly ``SEED_SIZES[i]`` octets on the wire (RFC 1939 §5 LIST)."""
    return list(_messages())


def maildir_names() -> list[str]:
    """Fixed Maildir names ``<seconds>.M<usec>P<pid>Q<n>.demo``: seconds of arrival, so
    ``store.arrival_key`` puts them in the seed's order."""
    return [f"{int(when.timestamp())}.M{i:06d}P1Q{i}.demo" for i, when in enumerate(_ARRIVALS, 1)]


USERS_FILE = "".join(f"{line}\n" for line in (
    "# Demo accounts for `mailproto serve --demo`: the seed article's POP3 user and two lab",
    "# accounts. Passwords are stored in the clear because APOP (RFC 1939 section 7) and",
    "# CRAM-MD5 need the shared secret itself.",
    f"{DEMO_USER}:{DEMO_PASSWORD}",
    *(f"{name}:{secret}" for name, secret in LAB_USERS),
    f"# A list (the value starts with white space): EXPN {LAB_LIST[0]} expands it.",
    f"{LAB_LIST[0]}: {', '.join(LAB_LIST[1])}",
))


def create_demo_store(root: str | os.PathLike[str]) -> Path:
    """Write the demo data dir under ``root`` and return the path of its users file.

    ``root/username/`` gets the seven messages in ``new/``; ``alice`` and ``bob`` get empty
    Maildirs. Those three Maildirs and ``root/users`` are replaced if they exist, so calling
    this again gives a student who DELEd everything a fresh copy; nothing else under ``root``
    is touched. File names and mtimes are fixed, so every copy is identical.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for user in (DEMO_USER, *(name for name, _ in LAB_USERS)):
        shutil.rmtree(root / user, ignore_errors=True)
        Maildir(root / user)
    box = root / DEMO_USER
    for name, data, when in zip(maildir_names(), _messages(), _ARRIVALS, strict=True):
        tmp = box / "tmp" / name
        tmp.write_bytes(data)
        stamp = when.timestamp()
        os.utime(tmp, (stamp, stamp))  # mtime = arrival, as after a real delivery
        os.replace(tmp, box / "new" / name)  # Maildir: write in tmp/, then rename into new/
    users = root / "users"
    users.write_text(USERS_FILE, encoding="utf-8")
    return users
