"""Step-by-step explanations: how ``=?gb2312?B?uafP...?=`` and ``=B9=A7`` become 恭.

Each step names what it starts from, what it gives and the rule (RFC 2047 for encoded words,
RFC 2045 §6.7 and §6.8 for quoted-printable and base64 bodies).  The decoding itself is the
stdlib's; this module only shows its working, the way a student would on paper.
"""

from __future__ import annotations

import base64
import quopri
import re

from .charsets import char_map, clean_label, codec_for, decode_text
from .headers import ENCODED_WORD
from .model import MAX_SAMPLE, Part, Step

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_QP_TOKEN = re.compile(rb"=[0-9A-Fa-f]{2}|=\r?\n|.", re.S)

#: Signatures a student can recognise at the start of common files.
_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"%PDF": "PDF",
          b"PK\x03\x04": "ZIP"}


def hexdump(data: bytes, limit: int = 32) -> str:
    """``b9 a7 cf b2 ...`` — the first ``limit`` octets in hex."""
    shown = data[:limit].hex(" ")
    return shown + (f" … ({len(data)} octets)" if len(data) > limit else "")


def explain_encoded_word(word: str) -> list[Step]:
    """Split one RFC 2047 encoded word and decode it, one step at a time."""
    match = ENCODED_WORD.fullmatch(word.strip())
    if not match:
        return [Step("Not an encoded word", word, "",
                     "An encoded word is =?charset?B?text?= or =?charset?Q?text?=, with no "
                     "spaces inside (RFC 2047 §2).")]
    label, encoding, text = match.groups()
    steps = [Step("Split at the question marks", word,
                  f"charset = {label}\nencoding = {encoding}\nencoded text = {text}",
                  "RFC 2047 §2: =?charset?encoding?encoded-text?=")]
    charset = clean_label(label)
    codec = codec_for(charset)
    steps.append(Step("The charset", label,
                      f"Python codec {codec!r}" if codec else "a charset Python does not know",
                      "RFC 2047 §3: it says how the bytes below become characters"
                      + ("; *lang after it is a language tag (RFC 2231 §5)" if "*" in label
                         else "")))
    if encoding in "bB":
        data, b_steps = _base64_steps(text, "RFC 2047 §4.1")
    else:
        data, b_steps = _q_steps(text)
    steps.extend(b_steps)
    steps.append(_charset_step(data, charset))
    return steps


def _base64_steps(text: str, rule: str) -> tuple[bytes, list[Step]]:
    """Base64: 4 characters carry 24 bits, that is 3 octets (RFC 4648 §4)."""
    compact = "".join(text.split())
    steps = []
    group = compact[:4]
    if len(group) == 4 and all(c in _B64 for c in group):
        values = [_B64.index(c) for c in group]
        bits = "".join(f"{v:06b}" for v in values)
        octets = bytes(int(bits[i:i + 8], 2) for i in range(0, 24, 8))
        steps.append(Step("Base64: 4 characters → 3 octets", group,
                          " ".join(f"{c}={v}" for c, v in zip(group, values, strict=True)) + "\n"
                          + " ".join(f"{v:06b}" for v in values) + "\n"
                          + " ".join(f"{o:08b}" for o in octets) + "\n" + octets.hex(" "),
                          f"{rule}: each character is 6 bits (A=0 … /=63); regroup into octets"))
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        note = f"{rule}; the same for every group of 4"
    except ValueError as exc:  # binascii.Error, or a non-ASCII character
        # Do what lenient readers do: skip strange characters and a dangling last one.
        clean = re.sub(r"[^A-Za-z0-9+/]", "", compact)
        clean = clean[: len(clean) // 4 * 4] if len(clean) % 4 == 1 else clean
        data = base64.b64decode(clean + "=" * (-len(clean) % 4))
        note = f"{rule}; broken base64 ({exc}): what could not be read was skipped"
    steps.append(Step("Base64 → octets", _short(compact), hexdump(data), note))
    return data, steps


def _q_steps(text: str) -> tuple[bytes, list[Step]]:
    """Q encoding: "_" is a space, =XX is an octet in hex, the rest is itself (RFC 2047 §4.2)."""
    out = bytearray()
    shown = []
    for token in _QP_TOKEN.findall(text.encode("ascii", "replace")):
        if token == b"_":
            out += b" "
            shown.append("_ → 20")
        elif token.startswith(b"=") and len(token) == 3:
            out.append(int(token[1:], 16))
            shown.append(f"{token.decode()} → {token[1:].decode().lower()}")
        else:
            out += token
    return bytes(out), [Step("Q → octets", text, hexdump(bytes(out)) + "\n" + ", ".join(shown[:8]),
                             "RFC 2047 §4.2: =XX is one octet in hex, _ is a space (20), "
                             "other characters stand for themselves")]


def _charset_step(data: bytes, charset: str | None, partial: bool = False) -> Step:
    result = decode_text(data, charset, partial)
    shown = clean_label(charset) or "us-ascii"
    mapping = "   ".join(f"{b.hex(' ')} → {c}" for b, c in char_map(data, result.codec)
                          if c.strip())
    note = f"read the octets as {shown}: multi-octet characters are grouped"
    if result.severity:
        note += f". {result.note}"
    return Step(f"Octets → characters in {shown}", hexdump(data),
                (mapping + "\n" if mapping else "") + result.text, note)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def explain_body(part: Part) -> list[Step]:
    """Explain how the start of a body becomes text (or a file), step by step."""
    cte = part.transfer_encoding
    sample = part.encoded_sample
    if part.is_multipart or part.children:
        return [Step("A container", part.content_type, f"{len(part.children)} parts",
                     "RFC 2046 §5.1: its body is split at the boundary lines; see each part")]
    if cte == "quoted-printable":
        data, steps = _qp_body_steps(sample)
    elif cte == "base64":
        # 400 characters (a multiple of 4) are plenty to show; a longer cut would pad wrongly.
        compact = "".join(sample.decode("ascii", "replace").split())[:400]
        data, steps = _base64_steps(compact, "RFC 2045 §6.8")
    elif cte in ("7bit", "8bit", "binary"):
        data = sample
        steps = [Step(f"No transfer encoding ({cte})", _short(sample.decode("ascii", "replace")),
                      "the octets are the content", "RFC 2045 §2.7–2.9, §6.2")]
    else:
        return [Step("Unknown transfer encoding", cte, "the body is left as it is",
                     "RFC 2045 §6.4: a reader must not guess")]
    if part.content_type.startswith("text/"):
        head = _whole_chars(data)
        steps.append(_charset_step(head, part.charset, partial=len(head) < len(data)))
    else:
        kind = next((name for magic, name in _MAGIC.items() if data.startswith(magic)), None)
        steps.append(Step("Octets → a file", hexdump(data, 16),
                          f"{part.content_type}, {part.size_decoded:,} octets"
                          + (f"; it starts like a {kind} file" if kind else ""),
                          "RFC 2046 §4: non-text parts are kept as octets"))
    return steps


def _whole_chars(data: bytes, limit: int = 200) -> bytes:
    """The first lines of a sample, up to ``limit`` octets, cut at a line end if possible."""
    head = data[:limit]
    return head[: head.rfind(b"\n") + 1] or head


def _qp_body_steps(sample: bytes) -> tuple[bytes, list[Step]]:
    """Quoted-printable (RFC 2045 §6.7): soft line breaks, then =XX escapes."""
    if len(sample) >= MAX_SAMPLE:  # a cut sample: keep whole lines, so no escape is split
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    lines = sample.split(b"\n")
    soft = [line for line in lines if line.rstrip(b"\r").endswith(b"=")]
    steps = []
    if soft:
        steps.append(Step("Soft line breaks", soft[0].decode("ascii", "replace"),
                          f"{len(soft)} line(s) in the sample end in '=': the '=' and the line "
                          "end are removed, joining the line with the next",
                          "RFC 2045 §6.7 rule 5: lines are at most 76 characters"))
    first = next((line for line in lines if b"=" in line), lines[0] if lines else b"")
    shown = []
    for token in _QP_TOKEN.findall(first.rstrip(b"\r")):
        if len(token) == 3 and token.startswith(b"="):
            shown.append(f"{token.decode()} → {token[1:].decode().lower()}")
        elif token != b"=":
            shown.append(f"{token.decode('ascii', 'replace')} → {token.hex()}")
        if len(shown) >= 8:
            break
    data = quopri.decodestring(sample)
    steps.append(Step("=XX escapes → octets", first.decode("ascii", "replace"),
                      ", ".join(shown) + "\n" + hexdump(data),
                      "RFC 2045 §6.7 rules 1–2: =XX is one octet in hex, printable ASCII "
                      "stands for itself"))
    return data, steps
