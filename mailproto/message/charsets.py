"""Bytes to text in a MIME charset (RFC 2045 §5.1, RFC 2046 §4.1.2), never raising.

A charset label is a promise about bytes; mail often breaks it.  :func:`decode_text` keeps the
promise when it can, says how it was broken when it cannot, and always returns text.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from .model import ERROR, INFO, WARNING

#: Labels whose bytes real mail readers decode with a superset (WHATWG Encoding Standard §4.2):
#: a "gb2312" message that uses a GBK character is common, and is not garbage.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
}

#: Labels seen in mail that Python does not know by that name; ks_c_5601-1987 is really cp949.
_ALIASES = {"x-gbk": "gbk", "x-sjis": "shift_jis", "x-euc-jp": "euc_jp",
            "ks_c_5601-1987": "cp949"}

#: Python codecs that are not charsets a message may name (they escape, or are not text).
_NOT_CHARSETS = {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode"}


@dataclass(frozen=True)
class Decoded:
    """The text, the codec that made it, and what (if anything) went wrong."""

    text: str
    codec: str
    severity: str = ""  # "" when the bytes kept the label's promise
    note: str = ""
    rfc: str = ""


def clean_label(label: str | None) -> str:
    """A charset label as written → lower-case, unquoted, without an RFC 2231 §5 language."""
    label = (label or "").strip().strip("\"'").lower()
    return label.split("*", 1)[0]


def codec_for(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when Python knows no such charset."""
    label = clean_label(label) or "us-ascii"
    try:
        info = codecs.lookup(_ALIASES.get(label, label))
    except (LookupError, ValueError):
        return None
    if info.name in _NOT_CHARSETS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _decode(data: bytes, codec: str, partial: bool, errors: str = "strict") -> str:
    """Decode; with ``partial`` an incomplete character at the end (a cut) is no error."""
    return codecs.getincrementaldecoder(codec)(errors).decode(data, final=not partial)


def decode_text(data: bytes, label: str | None, partial: bool = False) -> Decoded:
    """Decode ``data`` as charset ``label`` (None: RFC 2045 §5.2's default, us-ascii).

    ``partial``: ``data`` is the start of a longer body, cut anywhere.
    """
    shown = clean_label(label) or "us-ascii"
    codec = codec_for(shown)
    if codec is None:
        text = data.decode("ascii", "replace")
        return Decoded(text, "ascii", ERROR,
                       f"unknown charset {shown!r}: only its ASCII bytes are shown",
                       "RFC 2046 §4.1.2")
    try:
        return Decoded(_decode(data, codec, partial), codec)
    except UnicodeDecodeError as exc:
        first = exc
    superset = _SUPERSETS.get(codec)
    if superset:
        try:
            text = _decode(data, superset, partial)
        except UnicodeDecodeError:
            pass
        else:
            return Decoded(text, superset, INFO,
                           f"bytes outside {shown}; decoded as {superset}, the superset mail "
                           f"readers use for this label", "RFC 2046 §4.1.2")
    text = _decode(data, codec, partial, "replace")
    bad = data[first.start:first.end].hex(" ")
    note = (f"bytes that do not decode as {shown} (first at offset {first.start}: {bad}); "
            f"shown as \N{REPLACEMENT CHARACTER}")
    if codec != "utf-8" and _is_utf8(data):
        note += "; the bytes are valid UTF-8, so the label is probably wrong"
    return Decoded(text, codec, WARNING if shown == "us-ascii" else ERROR, note,
                   "RFC 2045 §5.1" if label else "RFC 2045 §5.2")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def char_map(data: bytes, codec: str, limit: int = 12) -> list[tuple[bytes, str]]:
    """Which bytes made which character: ``[(b'\\xb9\\xa7', '恭'), ...]`` for the first ``limit``.

    Uses the codec's incremental decoder, fed one byte at a time, so multi-byte characters show
    up as the group of bytes that completed them.
    """
    decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    pairs: list[tuple[bytes, str]] = []
    pending = b""
    for i in range(len(data)):
        pending += data[i:i + 1]
        out = decoder.decode(data[i:i + 1])
        if out:
            pairs.append((pending, out))
            pending = b""
            if len(pairs) >= limit:
                return pairs
    tail = decoder.decode(b"", final=True)
    if tail or pending:
        pairs.append((pending, tail))
    return pairs[:limit]
