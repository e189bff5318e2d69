"""Lesson 5's checks (reading a message): right answers pass, typical wrong ones fail with the
right finding, hints escalate; the steps view shows the inspector's explanations."""

from __future__ import annotations

import email.header
import quopri
from collections.abc import Iterator

import pytest

from mailproto.demo import demo_messages
from mailproto.lab import check
from mailproto.lab.checks.lesson05 import (
    CANDIDATES,
    ENCODED_WORD,
    MYSTERY_BYTES,
    QP_FRAGMENT,
    show_steps,
)
from mailproto.lab.exercises import exercises, reset
from mailproto.message import explain_encoded_word, inspect_message


@pytest.fixture(autouse=True)
def fresh_attempts() -> Iterator[None]:
    reset()
    yield
    reset()


def failing(feedback: object) -> list[str]:
    return [f.text for f in feedback.findings if not f.ok]  # type: ignore[attr-defined]


def test_registered() -> None:
    assert {"decode-encoded-word", "qp-by-hand", "find-the-charset"} <= set(exercises())


def test_the_seed_subject_decodes_as_the_lesson_says() -> None:
    report = inspect_message(demo_messages()[0])
    subject = report.header("Subject")
    assert subject is not None and subject.decoded == "恭喜您成为本邮件系统的新用户! "
    assert quopri.decodestring(b"=B9=A7=CF=B2!").decode("gb2312") == "恭喜!"


# -- decode-encoded-word -----------------------------------------------------------------------
def _word_octets() -> tuple[bytes, str]:
    (octets, charset), = email.header.decode_header(ENCODED_WORD)
    return octets, charset


def test_encoded_word_is_valid_q_and_short_enough() -> None:
    assert len(ENCODED_WORD) <= 75  # RFC 2047 §2
    assert ENCODED_WORD.split("?")[2] == "Q"
    octets, charset = _word_octets()
    assert charset == "utf-8"


def test_decode_encoded_word_right() -> None:
    octets, charset = _word_octets()
    assert check("decode-encoded-word", octets.decode(charset)).passed


@pytest.mark.parametrize("make, finding", [
    (lambda o: o.decode("utf-8").replace(" ", "_"), "underscore stands for a space"),
    (lambda o: o.decode("latin-1"), "you read the octets as latin-1"),
    (lambda o: o, "those are the right octets"),
    (lambda o: ENCODED_WORD, "still the encoded word"),
    (lambda o: o.decode("utf-8", "replace").replace("解", "\ufffd"), "replacement characters"),
    (lambda o: " " + o.decode("utf-8") + "\n", "white space"),
    (lambda o: "Lab_5=3A_", "=XX escapes are still there"),
    (lambda o: "...", "not what this word says"),
    (lambda o: 5, "as a string"),
])
def test_decode_encoded_word_wrong(make, finding: str) -> None:
    octets, _ = _word_octets()
    fails = failing(check("decode-encoded-word", make(octets)))
    assert len(fails) == 1 and finding in fails[0], fails


def test_decode_encoded_word_never_shows_the_text() -> None:
    octets, charset = _word_octets()
    text = octets.decode(charset)
    for answer in ("...", text.replace(" ", "_"), octets, octets.decode("latin-1")):
        feedback = check("decode-encoded-word", answer)
        said = " ".join([f.text for f in feedback.findings] + [feedback.hint])
        assert "解码" not in said


# -- qp-by-hand --------------------------------------------------------------------------------
def test_qp_right() -> None:
    octets = quopri.decodestring(QP_FRAGMENT)
    assert octets == "欢迎使用 POP3!".encode("gb2312")
    assert check("qp-by-hand", octets).passed
    assert check("qp-by-hand", bytearray(octets)).passed


@pytest.mark.parametrize("answer, finding", [
    ("欢迎使用 POP3!", "one step too far"),
    (quopri.decodestring(QP_FRAGMENT).hex(" "), "written as hex text"),
    (quopri.decodestring(QP_FRAGMENT).replace(b" POP3", b"\n POP3"), "soft line break"),
    (QP_FRAGMENT.replace(b"=BB=B6", b"\xbb\xb6"), "soft line break"),
    (b"=BB=B6=D3=AD=CA=B9=D3=C3 POP3!", "=XX escapes are still there"),
    (quopri.decodestring(QP_FRAGMENT) + b"\n", "line end too many"),
    (QP_FRAGMENT, "the fragment itself"),
    (b"...", "not the octets of this fragment"),
    ("...", "as a bytes object"),
    (None, "as a bytes object"),
])
def test_qp_wrong(answer: object, finding: str) -> None:
    fails = failing(check("qp-by-hand", answer))
    assert len(fails) == 1 and finding in fails[0], fails


def test_qp_hints_escalate() -> None:
    hints = [check("qp-by-hand", b"...").hint for _ in range(5)]
    assert len(set(hints[:4])) == 4 and hints[4] == hints[3]


# -- find-the-charset --------------------------------------------------------------------------
def test_only_one_candidate_reads_as_the_lesson_says() -> None:
    readable = [c for c in CANDIDATES
                if MYSTERY_BYTES.decode(c, errors="replace") == "系統管理員"]
    assert readable == ["big5"]


@pytest.mark.parametrize("answer", ["big5", "Big5", " BIG5 ", "cp950"])
def test_find_the_charset_right(answer: str) -> None:
    assert check("find-the-charset", answer).passed


@pytest.mark.parametrize("answer, finding", [
    ("latin-1", "mojibake"),
    ("koi8-r", "mojibake"),
    ("gb2312", "not even valid"),
    ("utf-8", "not even valid"),
    ("shift_jis", "not even valid"),
    ("klingon", "no charset called"),
    (b"big5", "as a string"),
])
def test_find_the_charset_wrong(answer: object, finding: str) -> None:
    fails = failing(check("find-the-charset", answer))
    assert len(fails) == 1 and finding in fails[0], fails


def test_find_the_charset_never_names_it() -> None:
    for answer in ("latin-1", "gb2312", "utf-8", "..."):
        feedback = check("find-the-charset", answer)
        said = " ".join([f.text for f in feedback.findings] + [feedback.hint]).lower()
        assert "big5" not in said and "big-5" not in said and "cp950" not in said


# -- show_steps --------------------------------------------------------------------------------
def test_show_steps_html_and_text() -> None:
    view = show_steps(explain_encoded_word(ENCODED_WORD), "The word")
    html = view._repr_html_()
    assert "The word" in html and "Q → octets" in html and "&lt;" not in view.title
    text = repr(view)
    assert text.splitlines()[0] == "The word"
    assert "1. Split at the question marks" in text
    assert "Lab 5: " in text
