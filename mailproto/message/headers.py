"""Header fields: from the bytes in the message to the text a person reads.

RFC 5322 §2.2 allows only US-ASCII in a header; anything else travels as RFC 2047 encoded words
``=?charset?B|Q?text?=``.  Real mail also carries raw 8-bit bytes (the seed's ``From: 系统管理员``):
they are decoded with a guess and reported.
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import decode_header

from .charsets import clean_label, decode_text
from .model import ERROR, INFO, MAX_HEADER, WARNING, HeaderField, Problem

#: An encoded word (RFC 2047 §2): no spaces or '?' inside its charset or text.
ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")

_FOLD = re.compile(r"\r?\n(?=[ \t])")

MAX_WORD_PROBLEMS = 3  # problems reported per header field


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3: unfolding removes the CRLF before whitespace, nothing else."""
    return _FOLD.sub("", value).rstrip("\r\n")


def decode_word(word: str) -> tuple[bytes, str] | None:
    """The bytes and charset label of one encoded word, or None when its text is broken.

    Decoding is the stdlib's (``email.header.decode_header``), which pads short base64 as
    Postel would; it refuses base64 it cannot read at all.
    """
    try:
        chunks = decode_header(word)
    except (HeaderParseError, ValueError):
        return None
    data, charset = chunks[0]
    if len(chunks) != 1 or charset is None or not isinstance(data, bytes):
        return None
    return data, charset


def header_field(name: str, value: str, where: str, problems: list[Problem],
                 guesses: tuple[str, ...] = ()) -> HeaderField:
    """Build a :class:`HeaderField` from a parsed (name, value); report what is wrong.

    ``value`` is the raw value as the stdlib parser keeps it: folding kept, 8-bit bytes as
    surrogate escapes.  ``guesses`` are charsets to try on raw 8-bit bytes (the message's own).
    """
    raw = value.encode("ascii", "surrogateescape")
    if len(raw) > MAX_HEADER:
        problems.append(Problem(INFO, where, f"{len(raw):,} octets long; the report keeps the "
                                f"first {MAX_HEADER:,}", "RFC 5322 §2.1.1"))
        raw = raw[:MAX_HEADER]
        value = raw.decode("ascii", "surrogateescape")
    text = unfold(value)
    if not raw.isascii():
        text = _decode_8bit(text, where, problems, guesses)
    decoded, words = decode_words(text.strip(" \t"), where, problems)
    return HeaderField(name, raw, decoded, words)


def _decode_8bit(text: str, where: str, problems: list[Problem],
                 guesses: tuple[str, ...]) -> str:
    """Raw 8-bit bytes in a header: UTF-8 if they are (RFC 6532), else the first guess that fits."""
    data = text.encode("ascii", "surrogateescape")
    utf8 = decode_text(data, "utf-8")
    if not utf8.severity:
        problems.append(Problem(INFO, where, "raw UTF-8 bytes in a header: fine with SMTPUTF8 "
                                "(RFC 6531), an RFC 2047 encoded word otherwise", "RFC 6532 §3"))
        return utf8.text
    tries = [(label, decode_text(data, label)) for label in guesses]
    label, result = next(((lb, r) for lb, r in tries if not r.severity),
                         tries[0] if tries else ("utf-8", utf8))
    if result.severity:
        how = f"as {label} they do not decode either: {result.note}"
    else:
        how = f"shown as {label}, the charset of the message's text (a guess)"
    problems.append(Problem(WARNING, where, "8-bit bytes in a header, where only US-ASCII is "
                            f"allowed: they should be an encoded word; {how}",
                            "RFC 5322 §2.2, RFC 2047 §1"))
    return result.text


def decode_words(text: str, where: str, problems: list[Problem]) -> tuple[str, tuple[str, ...]]:
    """Decode the RFC 2047 encoded words in an unfolded value; return the text and the words.

    Whitespace between two adjacent encoded words is dropped (RFC 2047 §6.2): that is how a long
    subject is split over several words without gaining spaces.  A broken word stays as it was.
    """
    out: list[str] = []
    words: list[str] = []
    pos = 0
    last_was_word = False
    before = len(problems)
    for match in ENCODED_WORD.finditer(text):
        between = text[pos:match.start()]
        if not (last_was_word and between.strip(" \t") == ""):
            out.append(between)
        word = match.group(0)
        words.append(word)
        out.append(_decode_one(word, where, problems))
        last_was_word = True
        pos = match.end()
    out.append(text[pos:])
    if len(problems) - before > MAX_WORD_PROBLEMS:  # one bad word repeated 500 times: say so once
        extra = len(problems) - before - MAX_WORD_PROBLEMS
        del problems[before + MAX_WORD_PROBLEMS:]
        problems.append(Problem(INFO, where, f"and {extra} more encoded words with problems"))
    return "".join(out), tuple(words)


def _decode_one(word: str, where: str, problems: list[Problem]) -> str:
    found = decode_word(word)
    if found is None:
        problems.append(Problem(ERROR, where, f"encoded word {word[:60]!r} does not decode "
                                "(broken base64?); shown as it is", "RFC 2047 §4"))
        return word
    data, label = found
    result = decode_text(data, clean_label(label))
    if result.severity:
        problems.append(Problem(result.severity, where, f"encoded word: {result.note}",
                                result.rfc or "RFC 2047 §5"))
    return result.text
