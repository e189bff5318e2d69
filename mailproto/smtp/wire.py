"""SMTP on the wire: replies, command lines and paths (RFC 5321 §4.1, §4.2, §4.5.3).

Everything here is pure: bytes or text in, values out.  Replies are values and are formatted in
exactly one place (:meth:`Reply.to_bytes`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

CRLF = b"\r\n"
#: RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with CRLF.  Extensions add to it
#: (SIZE, AUTH=): we accept up to Postfix's ``line_length_limit`` before answering 500.
MAX_COMMAND_LINE = 2048
#: RFC 4954 §4: AUTH command lines and SASL responses may be up to 12288 octets.
MAX_AUTH_LINE = 12288
#: RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets, code and CRLF included.
MAX_REPLY_LINE = 512
MAX_REPLY_TEXT = MAX_REPLY_LINE - len("250 ") - len("\r\n")


@dataclass(frozen=True)
class Reply:
    """A reply: a three-digit code and one or more text lines (RFC 5321 §4.2)."""

    code: int
    lines: tuple[str, ...] = ("",)

    @classmethod
    def of(cls, code: int, *lines: str) -> Reply:
        return cls(code, lines or ("",))

    def to_bytes(self) -> bytes:
        """``code-text`` for every line but the last, ``code text`` for the last (§4.2.1).

        A 334 challenge keeps its space even when empty: RFC 4954 §4 ``"334" SP [base64]``
        ("the complete response line is '334 '").  Text echoed from the client cannot break the
        framing: CR, LF and other controls, and bytes that were not UTF-8 (surrogates), become
        ``?`` (RFC 5321 §4.2: textstring is HT, SP and printable characters).  A reply line is
        at most 512 octets with its CRLF (§4.5.3.1.5): longer text (an echoed EHLO argument or
        address) is cut, on a character boundary.  SASL challenges are exempt (RFC 4954 §4).
        """
        return _encode_reply(self.code, self.lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code at the start of the first line, if any."""
        match = _ENHANCED.match(self.lines[0])
        return match.group(0) if match else None

    @property
    def positive(self) -> bool:
        return self.code < 400


@functools.lru_cache(maxsize=1024)
def _encode_reply(code_number: int, lines: tuple[str, ...]) -> bytes:
    """Reply bytes (the rules are in :meth:`Reply.to_bytes`), cached: most replies
    ("250 2.1.5 Ok" ...) are the same every time."""
    code = str(code_number)
    last = len(lines) - 1
    out = []
    for i, line in enumerate(lines):
        sep = " " if i == last else "-"
        line = _UNSAFE.sub("?", line)
        raw = line.encode("utf-8")
        if len(raw) > MAX_REPLY_TEXT and code_number != 334:
            raw = raw[:MAX_REPLY_TEXT].decode("utf-8", "ignore").encode("utf-8")
        out.append(code.encode() + sep.encode() + raw
                   if raw or sep == "-" or code_number == 334 else code.encode())
    return b"\r\n".join(out) + b"\r\n"


#: What may not appear in reply text: C0 controls but HT, DEL, and lone surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?= |$)")
#: NUL, CR, LF, and bytes that were not UTF-8 (surrogate escapes) have no place in a path.
_BAD_IN_PATH = re.compile("[\x00\r\n\udc80-\udcff]")


@dataclass(frozen=True)
class Command:
    """One command line: verb (upper-cased) and the rest, as text (RFC 5321 §4.1.1)."""

    verb: str
    arg: str
    raw: bytes


def parse_command(line: bytes) -> Command:
    """Split a command line (without its line ending) into verb and argument.

    Verbs are case-insensitive (§2.4).  The argument keeps its case: local parts are case-
    sensitive.  Bytes that are not UTF-8 survive as surrogates, so a hostile byte is reported,
    not crashed on.
    """
    text = line.decode("utf-8", "surrogateescape")
    verb, _, arg = text.partition(" ")
    return Command(verb.upper(), arg.strip(" "), line)


@dataclass(frozen=True)
class Path:
    """A reverse-path or forward-path (§4.1.2) and its ESMTP parameters."""

    address: str  # "" for the null reverse-path <>
    params: dict[str, str | None]


class PathError(ValueError):
    """The path cannot be read; the message says why, for the reply."""


# Local-part: dot-string or quoted-string; domain: dot-separated labels or an address literal.
# Non-ASCII (RFC 6531) is written as "not ASCII": a class spanning up to U+10FFFF costs ~0.1 s
# to compile, which every start of the server would pay.
_NA = r"[^\x00-\x7f]"
_ATOM = rf"(?:[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-]|{_NA})+"
_LOCAL = rf"(?:{_ATOM}(?:\.{_ATOM})*|\"(?:[^\"\\\r\n]|\\.)*\")"
_LETDIG = rf"(?:[A-Za-z0-9]|{_NA})"
_LABEL = rf"{_LETDIG}(?:(?:[A-Za-z0-9\-]|{_NA})*{_LETDIG})?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[^\[\]\\\s]+\])"
_MAILBOX = re.compile(rf"{_LOCAL}(?:@{_DOMAIN})?\Z")
_SOURCE_ROUTE = re.compile(rf"@{_DOMAIN}(?:,@{_DOMAIN})*:")
_PARAM = re.compile(rf"[A-Za-z0-9][A-Za-z0-9\-]*(?:=(?:[!-<>-~]|{_NA})+)?\Z")


def parse_path(text: str, keyword: str) -> Path:
    """Parse ``FROM:<addr> params`` or ``TO:<addr> params``.

    Accepts what Postfix accepts beyond the strict grammar: a space after the colon and a missing
    pair of angle brackets around a plain address.  Drops an RFC 5321 §4.1.2 source route.
    """
    head = text[: len(keyword) + 1]
    if head.upper() != keyword + ":":
        raise PathError("syntax")
    rest = text[len(keyword) + 1 :].lstrip(" ")
    if rest.startswith("<"):
        end = _find_close(rest)
        if end < 0:
            raise PathError("address")
        inner, params_text = rest[1:end], rest[end + 1 :]
    else:
        inner, _, params_text = rest.partition(" ")
        if not inner:
            raise PathError("address")
    route = _SOURCE_ROUTE.match(inner)
    if route:
        inner = inner[route.end() :]
    if inner and not _MAILBOX.match(inner):
        raise PathError("address")
    if _BAD_IN_PATH.search(inner):
        raise PathError("address")
    params: dict[str, str | None] = {}
    for word in params_text.split():
        if not _PARAM.match(word):
            raise PathError("parameter")
        key, eq, value = word.partition("=")
        params[key.upper()] = value if eq else None
    return Path(inner, params)


def _find_close(text: str) -> int:
    """Index of the ``>`` closing the path, skipping over a quoted local part."""
    quoted = False
    i = 1
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return i
        i += 1
    return -1


def split_address(address: str) -> tuple[str, str]:
    """``local@domain`` → (local, domain); the domain is lower-cased, '' if there is none."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    return local, domain.lower().rstrip(".")


def is_ascii(text: str) -> bool:
    return text.isascii()
