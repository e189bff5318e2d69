"""Replies, command lines and paths on the wire (RFC 5321 §4.1, §4.2; RFC 4954 §4)."""

from __future__ import annotations

import pytest

from mailproto.smtp import replies as R
from mailproto.smtp.states import State
from mailproto.smtp.wire import (
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    Path,
    PathError,
    Reply,
    parse_command,
    parse_path,
    split_address,
)


# -- replies (§4.2) -------------------------------------------------------------------------------
@pytest.mark.parametrize("reply, raw", [
    (Reply.of(250, "2.0.0 Ok"), b"250 2.0.0 Ok\r\n"),
    (Reply(250, ("a", "b", "c")), b"250-a\r\n250-b\r\n250 c\r\n"),
    (Reply.of(250), b"250\r\n"),
    (Reply(214, ("", "end")), b"214-\r\n214 end\r\n"),
    (Reply.of(334, ""), b"334 \r\n"),  # RFC 4954 §4: the SP stays
    (Reply.of(334, "VXNlcm5hbWU6"), b"334 VXNlcm5hbWU6\r\n"),
    (Reply.of(250, "caf\u00e9"), "250 caf\u00e9\r\n".encode()),
    (Reply.of(250, "tab\there"), b"250 tab\there\r\n"),
])
def test_reply_bytes(reply, raw):
    assert reply.to_bytes() == raw


@pytest.mark.parametrize("text", ["a\rb", "a\nb", "a\r\n250 fake", "nul\0", "\x7f", "\udcff",
                                  "\x1b[31m"])
def test_reply_text_cannot_break_the_framing(text):
    raw = Reply.of(504, f"5.5.1 {text}").to_bytes()
    assert raw.count(b"\r\n") == 1 and raw.endswith(b"\r\n")
    assert b"\n" not in raw[:-1] and b"\r" not in raw[:-2]
    raw.decode("utf-8")
    assert raw.startswith(b"504 5.5.1 ")


def test_reply_lines_are_at_most_512_octets():
    """RFC 5321 §4.5.3.1.5; cut on a character boundary, SASL challenges exempt."""
    raw = Reply(250, ("x" * 600, "\u00e9" * 600)).to_bytes()
    first, second, end = raw.split(b"\r\n")
    assert first == b"250-" + b"x" * 506 and end == b""
    assert second == b"250 " + "\u00e9".encode() * 253
    assert Reply.of(550, "y" * 506).to_bytes() == b"550 " + b"y" * 506 + b"\r\n"
    challenge = "A" * 2000
    assert Reply.of(334, challenge).to_bytes() == b"334 " + challenge.encode() + b"\r\n"


def test_reply_properties():
    reply = Reply(250, ("2.1.5 <alice@local.test>", "2.1.5 <bob@local.test>"))
    assert reply.enhanced == "2.1.5"
    assert reply.positive and not Reply.of(421, "x").positive
    assert reply.text == "2.1.5 <alice@local.test>\n2.1.5 <bob@local.test>"
    assert Reply.of(250, "mail.test").enhanced is None
    assert Reply.of(550, "5.1.1").enhanced == "5.1.1"


def test_named_replies_carry_enhanced_codes():
    """RFC 2034 §3: with ENHANCEDSTATUSCODES, every 2xx/4xx/5xx after the greeting has one."""
    for name in dir(R):
        value = getattr(R, name)
        if isinstance(value, Reply) and value.code // 100 in (2, 4, 5):
            assert value.enhanced is not None, name
            assert value.enhanced[0] == str(value.code)[0], name
    assert R.bad_sequence("MAIL", State.CONNECTED).to_bytes() == \
        b"503 5.5.1 Error: send HELO/EHLO first\r\n"
    assert R.path_error("syntax", "RCPT TO", sender=False).to_bytes() == \
        b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"


# -- command lines (§4.1.1) -----------------------------------------------------------------------
@pytest.mark.parametrize("line, verb, arg", [
    (b"EHLO client.test", "EHLO", "client.test"),
    (b"ehlo Client.Test", "EHLO", "Client.Test"),
    (b"mail FROM:<A@B>  ", "MAIL", "FROM:<A@B>"),
    (b"QUIT", "QUIT", ""),
    (b"", "", ""),
    (b"NOOP  x y ", "NOOP", "x y"),
    (b"HELP \xff", "HELP", "\udcff"),
])
def test_parse_command(line, verb, arg):
    cmd = parse_command(line)
    assert (cmd.verb, cmd.arg, cmd.raw) == (verb, arg, line)


def test_line_limits_are_at_least_the_rfc_minimums():
    assert MAX_COMMAND_LINE >= 512  # RFC 5321 §4.5.3.1.4
    assert MAX_AUTH_LINE >= 12288  # RFC 4954 §4


# -- paths (§4.1.2) -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, address, params", [
    ("FROM:<a@b.test>", "a@b.test", {}),
    ("from:<a@b.test>", "a@b.test", {}),
    ("FROM: <a@b.test>", "a@b.test", {}),
    ("FROM:a@b.test", "a@b.test", {}),
    ("FROM:a@b.test SIZE=5", "a@b.test", {"SIZE": "5"}),
    ("FROM:<>", "", {}),
    ("FROM:<> size=12 body=8BITMIME SMTPUTF8", "", {"SIZE": "12", "BODY": "8BITMIME",
                                                    "SMTPUTF8": None}),
    ("FROM:<@a.test,@b.test:c@d.test>", "c@d.test", {}),
    ('FROM:<"x > y"@d.test>', '"x > y"@d.test', {}),
    ('FROM:<"x\\"y"@d.test>', '"x\\"y"@d.test', {}),
    ("FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]", {}),
    ("FROM:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]", {}),
    ("FROM:<j\u00f6rg@b\u00fccher.test>", "j\u00f6rg@b\u00fccher.test", {}),
    ("FROM:<postmaster>", "postmaster", {}),
    ("FROM:<a@b.test.>", "a@b.test.", {}),
    ("FROM:<a@b.test> AUTH=<>", "a@b.test", {"AUTH": "<>"}),
])
def test_parse_path(text, address, params):
    assert parse_path(text, "FROM") == Path(address, params)


@pytest.mark.parametrize("text, kind", [
    ("TO:<a@b.test>", "syntax"),
    ("FROM<a@b.test>", "syntax"),
    ("FROM", "syntax"),
    ("FROM:", "address"),
    ("FROM:<a@b.test", "address"),
    ("FROM:<a b@c.test>", "address"),
    ("FROM:<a@b@c.test>", "address"),
    ("FROM:<a@-b.test>", "address"),
    ("FROM:<a..b@c.test>", "address"),
    ("FROM:<.a@c.test>", "address"),
    ("FROM:<a@>", "address"),
    ('FROM:<"a\0"@c.test>', "address"),
    ("FROM:<a\udcff@c.test>", "address"),
    ("FROM:<a@b.test> =x", "parameter"),
    ("FROM:<a@b.test> -x", "parameter"),
    ("FROM:<a@b.test> SIZE=", "parameter"),
    ("FROM:<a@b.test> X=a=b", "parameter"),
])
def test_parse_path_errors(text, kind):
    with pytest.raises(PathError) as info:
        parse_path(text, "FROM")
    assert str(info.value) == kind


@pytest.mark.parametrize("address, parts", [
    ("alice@Local.Test", ("alice", "local.test")),
    ("alice@local.test.", ("alice", "local.test")),
    ("Alice", ("Alice", "")),
    ('"a@b"@c.test', ('"a@b"', "c.test")),
])
def test_split_address(address, parts):
    assert split_address(address) == parts
