"""What the inspector reports: plain dataclasses, and the bounds that keep a report small.

A report is data, not a view: the terminal summary (:mod:`.summary`) and the HTML renderer
(:mod:`mailproto.lab.inspector_html`) both read it and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

#: Bounds.  A hostile or huge message must still give a small report quickly.
MAX_MESSAGE = 16 * 1024 * 1024  # octets parsed; the rest is cut with a note
MAX_HEADER = 8 * 1024  # octets of one header field's value kept
MAX_HEADERS = 300  # header fields kept per part
MAX_TEXT = 64 * 1024  # characters of a text part kept
MAX_IMAGE = 512 * 1024  # octets of an image part kept (for a data: URI)
MAX_SAMPLE = 4 * 1024  # octets of an encoded body kept for explanations
MAX_PARTS = 200  # MIME parts described
MAX_DEPTH = 20  # MIME nesting followed
MAX_PROBLEMS = 100  # problems listed

#: Problem severities, worst first.
ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class Problem:
    """Something wrong (or worth knowing) in the message: a note, never an exception."""

    severity: str  # ERROR: content lost or garbled; WARNING: breaks a rule; INFO: tolerated
    where: str  # "message", "header Subject", "part 1.2"
    text: str  # what is wrong and what the inspector did about it
    rfc: str = ""  # the rule, e.g. "RFC 2047 §5"

    def __str__(self) -> str:
        rule = f" ({self.rfc})" if self.rfc else ""
        return f"[{self.severity}] {self.where}: {self.text}{rule}"


@dataclass(frozen=True)
class HeaderField:
    """One header field (RFC 5322 §2.2): its bytes as they came, and the text a person reads."""

    name: str
    raw: bytes  # the value as in the message, folding kept, bounded by MAX_HEADER
    decoded: str  # unfolded, RFC 2047 encoded words decoded
    words: tuple[str, ...] = ()  # the encoded words found, for explain_encoded_word()

    @property
    def changed(self) -> bool:
        """True when decoding changed what a person reads (encoded words, 8-bit bytes)."""
        return bool(self.words) or not self.raw.isascii()


@dataclass
class Part:
    """One node of the MIME tree (RFC 2045, RFC 2046 §5).

    ``path`` is the node's place in the tree: ``""`` for the whole message, ``"1"``, ``"1.2"``
    ... for the parts inside it.  Like IMAP section numbers (RFC 3501 §6.4.5), except that an
    attached message (message/rfc822) is a level of its own: its body is ``"3.1"``.
    """

    path: str
    content_type: str  # lower-case type/subtype; RFC 2045 §5.2 default text/plain
    charset: str | None
    transfer_encoding: str  # lower-case; RFC 2045 §6.1 default 7bit
    disposition: str | None = None  # inline / attachment (RFC 2183)
    filename: str | None = None  # decoded, RFC 2231 included
    content_id: str | None = None  # for cid: references (RFC 2392)
    headers: list[HeaderField] = field(default_factory=list)
    size_encoded: int = 0  # octets of the body as in the message
    size_decoded: int = 0  # octets after the transfer encoding is undone
    text: str | None = None  # text/* parts: the decoded text, bounded by MAX_TEXT
    text_truncated: bool = False
    image: bytes | None = None  # image/* parts up to MAX_IMAGE octets
    encoded_sample: bytes = b""  # the start of the encoded body, for explain_body()
    children: list[Part] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"part {self.path}" if self.path else "message"

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    def walk(self) -> Iterator[Part]:
        """This part, then every part inside it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class MessageReport:
    """Everything :func:`inspect_message` found."""

    size: int  # octets of the stored form
    form: str  # "stored" (LF, as in a Maildir) or "wire" (a DATA/RETR capture, undone)
    stored: bytes  # the stored form, bounded by MAX_MESSAGE
    root: Part
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about the report itself (truncation ...)

    @property
    def headers(self) -> list[HeaderField]:
        return self.root.headers

    def header(self, name: str) -> HeaderField | None:
        """The first field called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((h for h in self.headers if h.name.lower() == wanted), None)

    def parts(self) -> list[Part]:
        return list(self.root.walk())


@dataclass(frozen=True)
class Step:
    """One step of an explanation a student can follow with pencil and paper."""

    title: str
    given: str  # what this step starts from
    result: str  # what it becomes
    note: str = ""  # why, with the RFC section
