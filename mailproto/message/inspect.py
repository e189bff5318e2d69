"""Inspect a message: headers decoded, the MIME tree, and the problems found — never an exception.

Parsing is the stdlib's (``email.message_from_bytes``) with the ``compat32`` policy, because it
keeps what a teacher wants to show: raw header values (8-bit bytes as surrogate escapes) and a
lenient body decoder that records defects instead of raising.  The MIME rules the checks cite
are RFC 2045 (headers, transfer encodings), RFC 2046 (media types, multipart), RFC 2047 (encoded
words), RFC 2231 (parameter values) and RFC 5322 (the message format).
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

from .charsets import decode_text
from .headers import ENCODED_WORD, decode_words, header_field
from .layers import unwrap
from .model import (
    ERROR,
    INFO,
    MAX_DEPTH,
    MAX_HEADERS,
    MAX_IMAGE,
    MAX_MESSAGE,
    MAX_PARTS,
    MAX_PROBLEMS,
    MAX_SAMPLE,
    MAX_TEXT,
    WARNING,
    MessageReport,
    Part,
    Problem,
)

_KNOWN_ENCODINGS = {"7bit", "8bit", "binary", "quoted-printable", "base64"}
_QP_BAD_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2}|\r?\n|\Z)")
_COMMENT = re.compile(r"\([^()]*\)")

#: What the stdlib's defect classes mean, for a student (``errors.*Defect``).
_DEFECTS = {
    "CloseBoundaryNotFoundDefect": (ERROR, "the closing boundary line (--boundary--) is missing: "
                                    "the message may be cut off", "RFC 2046 §5.1.1"),
    "StartBoundaryNotFoundDefect": (ERROR, "the boundary named in Content-Type never appears in "
                                    "the body", "RFC 2046 §5.1.1"),
    "NoBoundaryInMultipartDefect": (ERROR, "a multipart without a boundary parameter: its body "
                                    "cannot be split into parts", "RFC 2046 §5.1.1"),
    "MultipartInvariantViolationDefect": (ERROR, "declared multipart but has no parts",
                                          "RFC 2046 §5.1.1"),
    "InvalidBase64CharactersDefect": (ERROR, "characters outside the base64 alphabet in the body "
                                      "were skipped", "RFC 2045 §6.8"),
    "InvalidBase64PaddingDefect": (ERROR, "base64 body with wrong '=' padding", "RFC 2045 §6.8"),
    "InvalidBase64LengthDefect": (ERROR, "base64 body whose length is not a multiple of 4: the "
                                  "last bytes are lost", "RFC 2045 §6.8"),
    "MissingHeaderBodySeparatorDefect": (WARNING, "a line that is not a header field where the "
                                         "headers should be; the body starts there",
                                         "RFC 5322 §2.1"),
    "FirstHeaderLineIsContinuationDefect": (WARNING, "the first header line starts with "
                                            "whitespace", "RFC 5322 §2.2.3"),
    "MisplacedEnvelopeHeaderDefect": (WARNING, "an mbox 'From ' line inside the headers",
                                      "RFC 5322 §2.2"),
}


class _Walk:
    """What the walk over the tree shares: the problem list and the part budget."""

    def __init__(self, problems: list[Problem], guesses: tuple[str, ...]) -> None:
        self.problems = problems
        self.guesses = guesses
        self.parts = 0

    def add(self, severity: str, where: str, text: str, rfc: str = "") -> None:
        self.problems.append(Problem(severity, where, text, rfc))


def inspect_message(data: bytes) -> MessageReport:
    """Inspect a message in stored form (a Maildir file) or wire form (a DATA/RETR capture)."""
    unwrapped = unwrap(data)
    stored = unwrapped.stored
    notes = list(unwrapped.notes)
    problems: list[Problem] = []
    if len(stored) > MAX_MESSAGE:
        notes.append(f"message is {len(stored):,} octets; only the first {MAX_MESSAGE:,} "
                     "were inspected")
        stored = stored[:MAX_MESSAGE]
    try:
        msg = message_from_bytes(stored, policy=compat32)
        guesses = _text_charsets(msg)
        walk = _Walk(problems, guesses)
        root = _part(msg, "", 0, walk)
        _message_checks(msg, root, walk)
    except Exception as exc:  # a report, never a crash, whatever the input
        problems.append(Problem(ERROR, "message", f"could not be parsed ({type(exc).__name__}: "
                                f"{exc}); shown raw", "RFC 5322 §2.1"))
        root = Part("", "text/plain", None, "7bit", size_encoded=len(stored),
                    size_decoded=len(stored),
                    text=stored[:MAX_TEXT].decode("ascii", "replace"))
    if len(problems) > MAX_PROBLEMS:
        notes.append(f"{len(problems):,} problems found; the first {MAX_PROBLEMS} are listed")
        del problems[MAX_PROBLEMS:]
    return MessageReport(len(unwrapped.stored), unwrapped.form, stored, root, problems, notes)


def _text_charsets(msg: Message) -> tuple[str, ...]:
    """The charsets the message's text parts declare: the best guess for raw 8-bit headers."""
    found: list[str] = []
    for i, part in enumerate(msg.walk()):
        if i >= MAX_PARTS:
            break
        charset = part.get_content_charset() if part.get_content_maintype() == "text" else None
        if charset and charset not in found and charset not in ("us-ascii", "utf-8"):
            found.append(charset)
    return tuple(found)


def _part(msg: Message, path: str, depth: int, walk: _Walk) -> Part:
    walk.parts += 1
    where = f"part {path}" if path else "message"
    headers = []
    for i, (name, value) in enumerate(msg.raw_items()):
        if i >= MAX_HEADERS:
            walk.add(INFO, where, f"more than {MAX_HEADERS} header fields; the rest are not shown")
            break
        label = f"{where} header {name}" if path else f"header {name}"
        headers.append(header_field(name, str(value), label, walk.problems, walk.guesses))
    ctype = msg.get_content_type()
    part = Part(path, ctype, None, _transfer_encoding(msg), headers=headers)
    try:  # one odd part must not hide the rest of the tree
        _fill(msg, part, depth, where, walk)
    except Exception as exc:  # a bug of ours or the stdlib: report it, go on
        walk.add(ERROR, where, f"could not be read ({type(exc).__name__}: {exc})")
    _defects(msg, where, walk)
    return part


def _fill(msg: Message, part: Part, depth: int, where: str, walk: _Walk) -> None:
    """Parameters, then the body: children for a container, content for a leaf."""
    ctype, cte = part.content_type, part.transfer_encoding
    _check_content_type(msg, ctype, where, walk)
    if ctype.startswith("text/"):
        part.charset = msg.get_content_charset()
    part.disposition = msg.get_content_disposition()
    part.filename = _filename(msg, where, walk)
    part.content_id = next((h.decoded for h in part.headers
                            if h.name.lower() == "content-id"), None)
    if ctype == "message/delivery-status" and isinstance(msg.get_payload(), list):
        _delivery_status(msg, part)
    elif msg.is_multipart():
        if cte not in ("7bit", "8bit", "binary"):
            walk.add(ERROR, where, f"a {ctype} must not have transfer encoding {cte}",
                     "RFC 2045 §6.4")
        _children(msg, part, depth, walk)
    else:
        _leaf(msg, part, where, walk)


def _children(msg: Message, part: Part, depth: int, walk: _Walk) -> None:
    children = msg.get_payload()
    if depth >= MAX_DEPTH:
        walk.add(INFO, part.label, f"nested deeper than {MAX_DEPTH} levels; not followed")
        return
    for i, child in enumerate(children, 1):
        if walk.parts >= MAX_PARTS:
            walk.add(INFO, part.label, f"more than {MAX_PARTS} parts; the rest are not shown")
            return
        part.children.append(_part(child, f"{part.path}.{i}" if part.path else str(i),
                                   depth + 1, walk))


def _delivery_status(msg: Message, part: Part) -> None:
    """RFC 3464 §2.1: groups of fields, which the stdlib parses as headers; shown as text."""
    blocks = [b for b in msg.get_payload() if isinstance(b, Message)]
    groups = ["".join(f"{k}: {v}\n" for k, v in block.raw_items()) for block in blocks]
    text = "\n".join(groups)
    part.text = text[:MAX_TEXT]
    part.text_truncated = len(text) > MAX_TEXT
    part.size_encoded = part.size_decoded = len(text.encode("ascii", "surrogateescape"))


def _leaf(msg: Message, part: Part, where: str, walk: _Walk) -> None:
    """Undo the transfer encoding of one body, keep what a view needs, check the rules."""
    # Not get_payload(): for 8-bit bodies it re-decodes with the charset label, and the octets
    # that label got wrong are exactly what we want to show.  The parser keeps them as escapes.
    payload = getattr(msg, "_payload", None)
    encoded = payload.encode("ascii", "surrogateescape") if isinstance(payload, str) else b""
    found = msg.get_payload(decode=True)
    decoded = found if isinstance(found, bytes) else b""
    if part.transfer_encoding not in _KNOWN_ENCODINGS:
        walk.add(ERROR, where, f"unknown transfer encoding {part.transfer_encoding!r}: the body "
                 "is shown as it is", "RFC 2045 §6.4")
        decoded = encoded
    part.size_encoded, part.size_decoded = len(encoded), len(decoded)
    part.encoded_sample = encoded[:MAX_SAMPLE]
    _check_encoded(encoded, part, where, walk)
    maintype = part.content_type.split("/", 1)[0]
    if maintype == "text":
        cut = len(decoded) > MAX_TEXT * 4  # no charset needs more than 4 octets a character
        result = decode_text(decoded[:MAX_TEXT * 4], part.charset, partial=cut)
        if result.severity:
            walk.add(result.severity, where, result.note, result.rfc)
        part.text = result.text[:MAX_TEXT]
        part.text_truncated = cut or len(result.text) > MAX_TEXT
    elif maintype == "image" and len(decoded) <= MAX_IMAGE:
        part.image = decoded


def _check_encoded(encoded: bytes, part: Part, where: str, walk: _Walk) -> None:
    cte = part.transfer_encoding
    if cte == "7bit" and not encoded.isascii():
        walk.add(WARNING, where, "8-bit bytes in a 7bit body (7bit is the default): it should "
                 "say 8bit, and travel only to servers that offer 8BITMIME",
                 "RFC 2045 §2.7, RFC 6152")
    elif cte in ("quoted-printable", "base64") and not encoded.isascii():
        walk.add(WARNING, where, f"8-bit bytes inside {cte}, an encoding made of ASCII only",
                 "RFC 2045 §6.7, §6.8")
    if cte == "quoted-printable":
        bad = _QP_BAD_ESCAPE.search(encoded)
        if bad:
            walk.add(WARNING, where, "'=' not followed by two hex digits or a line end: kept as "
                     f"it is (at offset {bad.start()})", "RFC 2045 §6.7")
        if any(len(line.rstrip(b"\r\n")) > 76 for line in encoded.split(b"\n")):
            walk.add(INFO, where, "quoted-printable lines longer than 76 characters",
                     "RFC 2045 §6.7 rule 5")


def _transfer_encoding(msg: Message) -> str:
    value = msg.get("content-transfer-encoding")
    if value is None:
        return "7bit"  # RFC 2045 §6.1
    return _COMMENT.sub("", str(value)).strip().lower() or "7bit"


def _check_content_type(msg: Message, ctype: str, where: str, walk: _Walk) -> None:
    declared = msg.get("content-type")
    if declared is None:
        return
    written = str(declared).split(";", 1)[0].strip().lower()
    if written != ctype:
        walk.add(WARNING, where, f"Content-Type {written!r} is not type/subtype; read as "
                 f"{ctype}", "RFC 2045 §5.2")


def _filename(msg: Message, where: str, walk: _Walk) -> str | None:
    """The file name: RFC 2231 ``filename*=utf-8''...`` is decoded by the stdlib.

    An RFC 2047 encoded word inside a quoted parameter is not allowed (RFC 2047 §5) but many
    mailers write one, so it is decoded too, and noted.
    """
    name = msg.get_filename()
    if not name:
        return None
    if ENCODED_WORD.search(name):
        walk.add(INFO, where, "encoded word in a file name parameter: common but not standard; "
                 "RFC 2231 is the rule", "RFC 2047 §5, RFC 2231 §4")
        name, _ = decode_words(name, where, walk.problems)
    return name


def _defects(msg: Message, where: str, walk: _Walk) -> None:
    seen = set()
    for defect in msg.defects:
        kind = type(defect).__name__
        if kind in seen:
            continue
        seen.add(kind)
        severity, text, rfc = _DEFECTS.get(kind, (WARNING, _first_line(defect), "RFC 5322"))
        walk.add(severity, where, text, rfc)


def _first_line(defect: object) -> str:
    text = str(defect) or (type(defect).__doc__ or type(defect).__name__)
    return text.strip().splitlines()[0]


#: At most one of each (RFC 5322 §3.6, the table).
_SINGLE = ("from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id")


def _message_checks(msg: Message, root: Part, walk: _Walk) -> None:
    names = [h.name.lower() for h in root.headers]
    for required in ("from", "date"):
        if required not in names:
            walk.add(WARNING, "message", f"no {required.capitalize()}: field; RFC 5322 requires "
                     "an origination date and an originator", "RFC 5322 §3.6")
    for name in _SINGLE:
        if names.count(name) > 1:
            walk.add(WARNING, "message", f"{names.count(name)} {name} fields; at most one is "
                     "allowed", "RFC 5322 §3.6")
    mime_used = any(n in ("content-type", "content-transfer-encoding") for n in names)
    version = msg.get("mime-version")
    if version is None:
        if mime_used:
            walk.add(WARNING, "message", "MIME headers without MIME-Version: 1.0; a reader may "
                     "ignore them", "RFC 2045 §4")
    elif _COMMENT.sub("", str(version)).strip() != "1.0":
        walk.add(WARNING, "message", f"MIME-Version is {str(version)!r}, not 1.0",
                 "RFC 2045 §4")
