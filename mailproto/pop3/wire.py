"""POP3 on the wire: status lines, multi-line responses, command lines (RFC 1939 §3, RFC 2449 §3,
§4, §8).

Everything here is pure: bytes or text in, values or bytes out.  Replies are values and are
formatted in exactly one place (:meth:`Reply.to_bytes`); message text goes through
:class:`WireEncoder`, which turns the LF-ended lines of a Maildir file into CRLF lines with the
termination octet stuffed, one chunk at a time, so a 100 MB message never sits in memory
(:func:`encode_text` does the same for a small message read whole).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from ..crlf import CRLFSize

CRLF = b"\r\n"
#: The end of a multi-line response (RFC 1939 §3).
TERMINATOR = b".\r\n"
#: RFC 2449 §4: a command line is at most 255 octets with CRLF.  Like Dovecot we are more
#: generous before answering ``-ERR line too long``.
MAX_COMMAND_LINE = 1024
#: RFC 5034 §4 lifts the limit for AUTH and SASL responses; SMTP's RFC 4954 says 12288.
MAX_AUTH_LINE = 12288
#: RFC 2449 §4: a status line is at most 512 octets with CRLF.
MAX_STATUS_LINE = 512
#: Chunks read from a message file.
CHUNK = 65536


@dataclass(frozen=True)
class Reply:
    """A status line: ``+OK`` or ``-ERR``, an optional RFC 2449 §8 response code and text.

    ``lines`` is the body of a small multi-line response (CAPA, AUTH with no argument), as text
    lines without their CRLF and not yet dot-stuffed; long bodies (RETR, TOP, LIST) are streamed
    after the status line instead (:class:`WireEncoder`).
    """

    positive: bool
    text: str = ""
    #: Response code without brackets: ``IN-USE``, ``AUTH``, ``SYS/TEMP`` ... (RFC 2449 §8,
    #: RFC 3206).
    code: str | None = None
    lines: tuple[str, ...] | None = None

    def status_line(self) -> bytes:
        """``+OK text`` or ``-ERR [CODE] text``, CRLF-ended, at most 512 octets (RFC 2449 §4)."""
        head = "+OK" if self.positive else "-ERR"
        text = f"[{self.code}] {self.text}" if self.code else self.text
        raw = (f"{head} {text}" if text else head).encode("utf-8", "surrogateescape")
        return raw[: MAX_STATUS_LINE - 2] + CRLF

    def to_bytes(self) -> bytes:
        if self.lines is None:
            return self.status_line()
        return self.status_line() + encode_lines(self.lines)

    @property
    def multiline(self) -> bool:
        return self.lines is not None


def ok(text: str = "", lines: Iterable[str] | None = None) -> Reply:
    return Reply(True, text, None, tuple(lines) if lines is not None else None)


def err(text: str, code: str | None = None) -> Reply:
    return Reply(False, text, code)


_STATUS = re.compile(rb"(\+OK|-ERR)(?: (?:\[([^\]\r\n]*)\] ?)?(.*))?\Z", re.S)


def parse_status(line: bytes) -> Reply:
    """Read a status line (without CRLF), as a client does.  Raises ValueError if it is neither
    ``+OK`` nor ``-ERR``.  Only a ``-ERR`` carries a response code (RFC 2449 §8)."""
    match = _STATUS.match(line)
    if not match:
        raise ValueError(f"not a POP3 status line: {line[:80]!r}")
    positive = match.group(1) == b"+OK"
    code = match.group(2)
    text = match.group(3) or b""
    if positive and code is not None:  # "+OK [x] ..." is text, not a code
        code, text = None, line[4:]
    return Reply(positive, text.decode("utf-8", "replace"),
                 code.decode("ascii", "replace") if code is not None else None)


# -- multi-line responses (RFC 1939 §3) -----------------------------------------------------
def stuff(line: bytes) -> bytes:
    """Byte-stuff one line: a line that starts with the termination octet gets another."""
    return b"." + line if line[:1] == b"." else line


def unstuff(line: bytes) -> bytes:
    """The client's side: remove one leading dot from a line of a multi-line response."""
    return line[1:] if line[:2] == b".." else line


def encode_lines(lines: Iterable[str]) -> bytes:
    """A small multi-line body: each line stuffed and CRLF-ended, then the terminator."""
    out = [stuff(line.encode("utf-8", "surrogateescape")) + CRLF for line in lines]
    return b"".join(out) + TERMINATOR


class WireEncoder:
    """Turns stored message bytes into a multi-line response body, chunk by chunk.

    * A lone LF becomes CRLF; a CRLF already in the file stays (files written by other tools).
    * A line that starts with ``.`` gets one more (byte-stuffing, RFC 1939 §3).
    * :meth:`finish` ends the last line with CRLF if the file did not, then adds ``.CRLF``.

    A CR at the end of a chunk is held back until the next one shows whether an LF follows, so
    the result never depends on where the chunks were cut.
    """

    def __init__(self) -> None:
        self._line_start = True
        self._held_cr = False
        self.empty = True

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        self.empty = False
        if self._held_cr:
            data = b"\r" + data
            self._held_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._held_cr = True
        data = _crlf_stuffed(data)
        if self._line_start and data[:1] == b".":
            data = b"." + data
        if data:
            self._line_start = data.endswith(b"\n")
        return data

    def finish(self) -> bytes:
        out = b""
        if self._held_cr:
            out = b"\r"  # a stray CR at the very end is kept as it is
            self._held_cr = False
            self._line_start = False
        if not self._line_start:
            out += CRLF
        self._line_start = True
        return out + TERMINATOR


def encode_text(data: bytes) -> bytes:
    """A whole stored message as a multi-line response body, in one piece (RFC 1939 §3).

    The same bytes as :class:`WireEncoder` fed ``data`` in any cuts, then finished: for a
    message small enough to be read at once, without the per-chunk bookkeeping.
    """
    data = _crlf_stuffed(data)
    if data[:1] == b".":
        data = b"." + data
    if data and not data.endswith(b"\n"):
        return data + CRLF + TERMINATOR  # the last line had no line ending
    return data + TERMINATOR


#: A line (other than the first) that starts with the termination octet.
_DOT_LINE = re.compile(rb"\n\.")


def _crlf_stuffed(data: bytes) -> bytes:
    """Every line ending CRLF, and every line after the first stuffed (RFC 1939 §3)."""
    if b"\r" in data:  # rare in a Maildir (LF on disk): skip a pass over the common case
        data = data.replace(b"\r\n", b"\n")
    # The regular expression finds "\n." about twice as fast as bytes.replace (CPython 3.11's
    # two-octet search is slow on text full of LFs), slower only when nearly every line starts
    # with a dot; the result is the same.
    return _DOT_LINE.sub(b"\n..", data.replace(b"\n", b"\r\n"))


def wire_size(file: BinaryIO) -> int:
    """Octets of a stored message as RETR sends it, without the stuffing and the terminator.

    RFC 1939 §5 (LIST) wants the exact size; on the wire every line ends in CRLF, so this is the
    file size plus one octet for each lone LF, plus CRLF if the last line has no line ending.
    """
    counter = CRLFSize()
    while chunk := file.read(CHUNK):
        counter.feed(chunk)
    return counter.total


# -- command lines (RFC 1939 §3) ------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """One command line: the keyword (upper-cased) and the rest, unchanged.

    ``arg`` is everything after the first space, spaces included: RFC 1939 §7 lets a server read
    the whole rest of the line as PASS's one argument, so a password may contain spaces.
    """

    verb: str
    arg: str
    raw: bytes

    @property
    def args(self) -> tuple[str, ...]:
        """The arguments, split at spaces (RFC 1939 §3; two spaces are tolerated)."""
        return tuple(a for a in self.arg.split(" ") if a)


def parse_command(line: bytes) -> Command:
    """Split a command line (without its line ending) into keyword and argument.

    Keywords are case-insensitive (RFC 1939 §3).  Bytes that are not UTF-8 survive as
    surrogates, so a hostile byte is reported, not crashed on.
    """
    text = line.decode("utf-8", "surrogateescape")
    verb, _, arg = text.partition(" ")
    return Command(verb.upper(), arg, line)


def printable(text: str, limit: int = 40) -> str | None:
    """``text`` if it is safe to echo in a reply (visible ASCII, short), else None."""
    if text and len(text) <= limit and all(0x21 <= ord(c) <= 0x7E for c in text):
        return text
    return None
