"""POP3 wire format: status lines, stuffing, LF→CRLF streaming and sizes, command lines."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailproto.pop3 import wire
from mailproto.pop3.wire import (
    Reply,
    WireEncoder,
    encode_lines,
    encode_text,
    err,
    ok,
    parse_command,
    parse_status,
    printable,
    stuff,
    unstuff,
    wire_size,
)

from ._support import wire as reference


# -- status lines --------------------------------------------------------------------------
def test_ok_and_err() -> None:
    assert ok().to_bytes() == b"+OK\r\n"
    assert ok("2 320").to_bytes() == b"+OK 2 320\r\n"
    assert err("no such message").to_bytes() == b"-ERR no such message\r\n"
    assert err("locked", "IN-USE").to_bytes() == b"-ERR [IN-USE] locked\r\n"
    assert err("x", "SYS/TEMP").status_line() == b"-ERR [SYS/TEMP] x\r\n"


def test_status_line_is_at_most_512_octets() -> None:
    assert len(err("x" * 2000).to_bytes()) == 512


def test_small_multiline() -> None:
    reply = ok("follows", ["TOP", ".hidden", "UIDL"])
    assert reply.multiline and not ok().multiline
    assert reply.to_bytes() == b"+OK follows\r\nTOP\r\n..hidden\r\nUIDL\r\n.\r\n"
    assert ok("", []).to_bytes() == b"+OK\r\n.\r\n"


@pytest.mark.parametrize("line, expected", [
    (b"+OK", Reply(True, "")),
    (b"+OK 2 320", Reply(True, "2 320")),
    (b"-ERR", Reply(False, "")),
    (b"-ERR [IN-USE] Maildrop locked", Reply(False, "Maildrop locked", "IN-USE")),
    (b"-ERR [SYS/TEMP]", Reply(False, "", "SYS/TEMP")),
    (b"+OK [not a code] text", Reply(True, "[not a code] text")),
])
def test_parse_status(line: bytes, expected: Reply) -> None:
    assert parse_status(line) == expected


@pytest.mark.parametrize("reply", [ok("x y"), err("nope", "AUTH"), err("plain"), ok()])
def test_parse_status_round_trip(reply: Reply) -> None:
    assert parse_status(reply.status_line()[:-2]) == reply


@pytest.mark.parametrize("line", [b"OK", b"+ok", b"220 hello", b"", b"+OKAY"])
def test_parse_status_rejects(line: bytes) -> None:
    with pytest.raises(ValueError):
        parse_status(line)


# -- byte-stuffing (RFC 1939 §3) -----------------------------------------------------------
def test_stuff_and_unstuff() -> None:
    assert stuff(b".") == b".." and stuff(b"..x") == b"...x" and stuff(b"a.") == b"a."
    for line in (b".", b"..", b"x", b"", b".x."):
        assert unstuff(stuff(line)) == line
    assert encode_lines(["."]) == b"..\r\n.\r\n"


# -- streaming encoder and sizes ------------------------------------------------------------
SAMPLES = [
    b"", b"\n", b"x", b".", b".\n", b"a\nb", b"a\r\nb\r\n", b"a\rb\n", b"\r", b"a\r",
    b"\r\n.\r\n", b"..\n...\n.x", b"Subject: s\n\n.\n..\nend\n", b"\n\n\n.", b"a\r\r\nb",
    b"\xff\x00.\n.\xff",
]


def encode(data: bytes, cuts: tuple[int, ...] = ()) -> bytes:
    encoder = WireEncoder()
    out, start = [], 0
    for cut in (*cuts, len(data)):
        out.append(encoder.feed(data[start:cut]))
        start = cut
    return b"".join(out) + encoder.finish()


def test_encoder_examples() -> None:
    assert encode(b"") == b".\r\n"
    assert encode(b"a\nb") == b"a\r\nb\r\n.\r\n"
    assert encode(b"a\r\nb\r\n") == b"a\r\nb\r\n.\r\n"
    assert encode(b".\n..\n") == b"..\r\n...\r\n.\r\n"
    assert encode(b"a\rb\n") == b"a\rb\r\n.\r\n"


@pytest.mark.parametrize("data", [s for s in SAMPLES if b"\r" not in s.replace(b"\r\n", b"")])
def test_encoder_matches_the_line_by_line_reference(data: bytes) -> None:
    assert encode(data) == reference(data)[1]


@pytest.mark.parametrize("data", SAMPLES)
def test_encoder_does_not_depend_on_chunk_boundaries(data: bytes) -> None:
    whole = encode(data)
    for n in range(min(3, len(data)) + 1):
        for cuts in itertools.combinations(range(1, len(data)), n):
            assert encode(data, cuts) == whole, cuts


@pytest.mark.parametrize("data", SAMPLES)
def test_size_is_what_is_sent_without_stuffing(data: bytes,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    sent = encode(data)
    lines = sent[:-3].split(b"\r\n")
    unstuffed = b"\r\n".join(unstuff(line) for line in lines)
    assert wire_size(io.BytesIO(data)) == len(unstuffed)
    for chunk in (1, 2, 3):  # a CRLF split across reads
        monkeypatch.setattr(wire, "CHUNK", chunk)
        assert wire_size(io.BytesIO(data)) == len(unstuffed), chunk


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=4))
def test_encoder_properties(data: bytes, raw_cuts: list[int]) -> None:
    cuts = tuple(sorted({c for c in raw_cuts if 0 < c < len(data)}))
    sent = encode(data, cuts)
    assert sent == encode(data)
    assert sent.endswith(b".\r\n")
    body = sent[:-3]
    assert body == b"" or body.endswith(b"\r\n")
    assert b"\r\n.\r\n" not in b"\r\n" + body  # the terminator never appears early
    unstuffed = b"\r\n".join(unstuff(line) for line in body.split(b"\r\n"))
    assert wire_size(io.BytesIO(data)) == len(unstuffed)


@pytest.mark.parametrize("data", SAMPLES)
def test_whole_message_encodes_as_the_streaming_encoder(data: bytes) -> None:
    assert encode_text(data) == encode(data)


@given(st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n").replace(b"b", b".")))
def test_whole_message_encoder_properties(data: bytes) -> None:
    # LFs and dots made common, so stuffing, CRLF and the last line are all exercised
    assert encode_text(data) == encode(data)
    if b"\r" not in data.replace(b"\r\n", b""):
        assert encode_text(data) == reference(data)[1]


# -- command lines -------------------------------------------------------------------------
def test_parse_command() -> None:
    cmd = parse_command(b"retr 1")
    assert (cmd.verb, cmd.arg, cmd.args) == ("RETR", "1", ("1",))
    assert parse_command(b"TOP  1  10").args == ("1", "10")
    assert parse_command(b"STAT").args == ()
    assert parse_command(b"").verb == ""


def test_pass_keeps_spaces() -> None:
    cmd = parse_command(b"PASS  two  spaces ")
    assert cmd.verb == "PASS" and cmd.arg == " two  spaces "


def test_parse_command_survives_any_bytes() -> None:
    cmd = parse_command(b"USER \xff\xfe\x00")
    assert cmd.verb == "USER" and len(cmd.args) == 1
    assert cmd.arg.encode("utf-8", "surrogateescape") == b"\xff\xfe\x00"


def test_printable() -> None:
    assert printable("alice") == "alice"
    assert printable("a b") is None and printable("a\rb") is None and printable("") is None
    assert printable("x" * 41) is None and printable("é") is None
