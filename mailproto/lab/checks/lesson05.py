"""Lesson 5, reading a message: encoded words, quoted-printable and charsets by hand
(RFC 2045 §6.7, RFC 2047).

Besides the checks, :func:`show_steps` displays the inspector's step-by-step explanations
(:func:`mailproto.message.explain_encoded_word`, :func:`~mailproto.message.explain_body`) in a
notebook, as HTML with a plain-text fallback.
"""

from __future__ import annotations

import codecs
import quopri
from collections.abc import Sequence
from typing import Any

from ...message.model import Step
from ..exercises import Finding, exercise
from ..inspector_html import _steps

#: decode-encoded-word: a UTF-8 word in the Q encoding (RFC 2047 §4.2), and what it says.
ENCODED_WORD = "=?UTF-8?Q?Lab_5=3A_=E8=A7=A3=E7=A0=81=E6=88=90=E5=8A=9F_=E2=9C=93?="
_WORD_TEXT = "Lab 5: 解码成功 ✓"

#: qp-by-hand: a quoted-printable fragment (RFC 2045 §6.7) with a soft line break.
QP_FRAGMENT = b"=BB=B6=D3=AD=CA=B9=D3=C3=\n POP3!"

#: find-the-charset: an 8-bit display name sent with no charset label, and the candidates.
MYSTERY_BYTES = "系統管理員".encode("big5")
CANDIDATES = ("utf-8", "latin-1", "gb2312", "big5", "shift_jis", "koi8-r")
_MYSTERY_CHARSET = "big5"


class StepsView:
    """Steps of an explanation, shown as a numbered list (HTML) or as text."""

    def __init__(self, steps: Sequence[Step], title: str = "Step by step") -> None:
        self.steps = list(steps)
        self.title = title

    def _repr_html_(self) -> str:
        return _steps(self.title, self.steps)

    def __repr__(self) -> str:
        lines = [self.title]
        for i, step in enumerate(self.steps, 1):
            lines.append(f"{i}. {step.title}: {step.given}")
            lines += [f"     → {line}" for line in step.result.splitlines()]
            if step.note:
                lines.append(f"     ({step.note})")
        return "\n".join(lines)


def show_steps(steps: Sequence[Step], title: str = "Step by step") -> StepsView:
    """Display the steps of an explanation (``explain_encoded_word``, ``explain_body``)."""
    return StepsView(steps, title)


def _q_octets(text: str) -> bytes:
    return quopri.decodestring(text.encode("ascii"), header=True)


# -- decode-encoded-word -----------------------------------------------------------------------
@exercise("decode-encoded-word", "Decode an RFC 2047 encoded word (Q encoding) to text",
          hints=["Split the word at the question marks: charset, encoding (Q), encoded text.",
                 "In the Q encoding, =XX is one octet in hex and _ stands for a space; every "
                 "other character is itself.",
                 "quopri.decodestring(text.encode(), header=True) does exactly that, and gives "
                 "octets.",
                 "Then turn the octets into text with the charset the word names: "
                 ".decode(charset)."])
def decode_encoded_word(answer: Any) -> list[Finding]:
    text = ENCODED_WORD.split("?")[3]
    octets = _q_octets(text)
    if isinstance(answer, bytes):
        if answer == octets:
            return [Finding(False, "those are the right octets; now read them in the word's "
                            "charset to get text", "RFC 2047 §3")]
        return [Finding(False, "hand in the text (a str), not bytes")]
    if not isinstance(answer, str):
        return [Finding(False, "hand in the decoded text, as a string")]
    if answer == _WORD_TEXT:
        return [Finding(True, "right: Q → octets (=XX, _ is a space) → characters in UTF-8",
                        "RFC 2047 §4.2")]
    if answer.strip() == ENCODED_WORD or answer.strip() == text:
        return [Finding(False, "that is still the encoded word: decode it", "RFC 2047 §2")]
    if answer == _WORD_TEXT.replace(" ", "_"):
        return [Finding(False, "almost: in the Q encoding an underscore stands for a space "
                        "(header=True in quopri)", "RFC 2047 §4.2 (2)")]
    if "=" in answer and "=" not in _WORD_TEXT:
        return [Finding(False, "some =XX escapes are still there: each is one octet in hex",
                        "RFC 2047 §4.2 (1)")]
    for wrong in ("latin-1", "cp1252", "gb2312", "big5"):
        for variant in (octets, octets.replace(b" ", b"_")):
            if answer == variant.decode(wrong, "replace"):
                return [Finding(False, f"you read the octets as {wrong}; the word names its "
                                "charset between the first two question marks",
                                "RFC 2047 §3")]
    if "\ufffd" in answer:
        return [Finding(False, "there are replacement characters (�) in your text: the octets "
                        "were read in the wrong charset, or some were lost", "RFC 2047 §3")]
    if answer.strip() == _WORD_TEXT and answer != _WORD_TEXT:
        return [Finding(False, "nearly: the white space around your text is not in the word",
                        "RFC 2047 §4.2")]
    return [Finding(False, "not what this word says: decode the Q text to octets, then read "
                    "them as the word's charset", "RFC 2047 §4.2")]


# -- qp-by-hand --------------------------------------------------------------------------------
@exercise("qp-by-hand", "Turn a quoted-printable fragment into its octets",
          hints=["=XX is one octet whose value is XX in hexadecimal; printable ASCII characters "
                 "stand for themselves.",
                 "A line that ends in '=' is a soft line break: the '=' and the line end both "
                 "disappear.",
                 "quopri.decodestring(fragment) gives the octets (a bytes object).",
                 "Hand in bytes, not the text they spell (that would be one step further)."])
def qp_by_hand(answer: Any) -> list[Finding]:
    octets = quopri.decodestring(QP_FRAGMENT)
    if isinstance(answer, (bytearray, memoryview)):
        answer = bytes(answer)
    if isinstance(answer, str):
        if answer == octets.decode("gb2312"):
            return [Finding(False, "that is the text the octets spell in GB2312, one step too "
                            "far: hand in the octets (bytes)", "RFC 2045 §6.7")]
        try:
            if bytes.fromhex(answer) == octets:
                return [Finding(False, "right octets, written as hex text: hand in a bytes "
                                "object (bytes.fromhex(...) makes one)")]
        except ValueError:
            pass
        return [Finding(False, "hand in the octets as a bytes object, e.g. b'\\xbb...'")]
    if not isinstance(answer, bytes):
        return [Finding(False, "hand in the octets as a bytes object, e.g. b'\\xbb...'")]
    if answer == octets:
        return [Finding(True, "right: each =XX became one octet and the soft line break "
                        "vanished", "RFC 2045 §6.7")]
    if answer.strip() == octets.strip() or answer.rstrip(b"\n") == octets:
        return [Finding(False, "nearly: the octets are right but there is white space or a "
                        "line end too many", "RFC 2045 §6.7 rule 3")]
    if answer == QP_FRAGMENT:
        return [Finding(False, "that is the fragment itself: each =XX stands for one octet",
                        "RFC 2045 §6.7 rule 1")]
    if b"=\n" in answer or b"=\r\n" in answer or answer.replace(b"\n", b"") == octets:
        return [Finding(False, "the soft line break is still there: a line ending in '=' "
                        "continues on the next line, and both the '=' and the line end go",
                        "RFC 2045 §6.7 rule 5")]
    if b"=BB" in answer.upper():
        return [Finding(False, "the =XX escapes are still there: each stands for one octet",
                        "RFC 2045 §6.7 rule 1")]
    return [Finding(False, "these are not the octets of this fragment", "RFC 2045 §6.7")]


# -- find-the-charset --------------------------------------------------------------------------
def _codec(name: str) -> str | None:
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        return None


@exercise("find-the-charset", "Find the charset that makes the mystery bytes readable",
          hints=["Try each candidate: MYSTERY_BYTES.decode(charset, errors='replace').",
                 "A wrong charset gives an error, replacement characters (�), or letters that "
                 "make no sense (mojibake).",
                 "The text means 'system administrator', like the seed's 系统管理员, but in "
                 "the traditional characters used in Taiwan and Hong Kong.",
                 "Hand in the charset's name as a string, e.g. 'koi8-r'."])
def find_the_charset(answer: Any) -> list[Finding]:
    if not isinstance(answer, str):
        return [Finding(False, "hand in the charset's name as a string, e.g. 'latin-1'")]
    codec = _codec(answer)
    if codec is None:
        return [Finding(False, f"Python knows no charset called '{answer[:40]}'")]
    right = _codec(_MYSTERY_CHARSET)
    if codec == right or codec in ("cp950", "big5hkscs"):
        text = MYSTERY_BYTES.decode(codec)
        return [Finding(True, f"right: in {answer} the octets read {text}, 'system "
                        "administrator'. Nothing in the bytes said so: only a label (a charset "
                        "parameter, an encoded word) can", "RFC 2047 §3, RFC 2045 §5")]
    try:
        seen = MYSTERY_BYTES.decode(codec)
    except UnicodeDecodeError as exc:
        return [Finding(False, f"in {answer} these octets are not even valid ({exc.reason} at "
                        f"octet {exc.start}): not this one", "RFC 2045 §5")]
    return [Finding(False, f"in {answer} the octets read '{seen}': no error, but mojibake. "
                    "A single-octet charset accepts any bytes, so 'no error' means nothing",
                    "RFC 2045 §5")]
