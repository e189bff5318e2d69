"""SASL (RFC 4616 PLAIN, LOGIN, RFC 2195 CRAM-MD5) and the APOP digest (RFC 1939 §7)."""

from __future__ import annotations

import base64

import pytest

from mailproto import auth
from mailproto.auth import Challenge, Failure, SASLExchange, Success

SECRETS = {"alice": "secret", "tim": "tanstaaftanstaaf", "ünï": "pässwörd"}


def lookup(user: str) -> str | None:
    for name, secret in SECRETS.items():
        if name.lower() == user.lower():
            return secret
    return None


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


# -- the RFC examples -----------------------------------------------------------------------------
RFC2195_CHALLENGE = "<1896.697170952@postoffice.reston.mci.net>"


def test_rfc2195_cram_md5_example():
    """RFC 2195 §2: the example exchange, byte for byte."""
    assert auth.cram_md5_digest("tanstaaftanstaaf", RFC2195_CHALLENGE.encode()) == \
        "b913a602c7eda7a495b4e6e7334d3890"
    challenge_b64 = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
    assert b64(RFC2195_CHALLENGE) == challenge_b64
    response = auth.cram_md5_response("tim", "tanstaaftanstaaf", challenge_b64)
    assert response == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
    assert base64.b64decode(response) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    exchange = SASLExchange("CRAM-MD5", lookup, RFC2195_CHALLENGE)
    assert exchange.start(None) == Challenge(RFC2195_CHALLENGE.encode())
    assert exchange.respond(response) == Success("tim")
    assert exchange.done


def test_rfc1939_apop_example():
    """RFC 1939 §7: APOP mrose c4c9334bac560ecc979e58001b3e22fb."""
    timestamp = "<1896.697170952@dbc.mtview.ca.us>"
    assert auth.apop_digest(timestamp, "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb"
    secrets = {"mrose": "tanstaaf"}
    assert auth.check_apop(secrets.get, "mrose", timestamp, "c4c9334bac560ecc979e58001b3e22fb")
    assert auth.check_apop(secrets.get, "mrose", timestamp, "C4C9334BAC560ECC979E58001B3E22FB")
    assert not auth.check_apop(secrets.get, "mrose", timestamp, "0" * 32)
    assert not auth.check_apop(secrets.get, "nobody", timestamp,
                               auth.apop_digest(timestamp, "\0unknown-user\0"))


# -- PLAIN (RFC 4616) -----------------------------------------------------------------------------
@pytest.mark.parametrize("message, result", [
    ("\0alice\0secret", Success("alice")),
    ("alice\0alice\0secret", Success("alice")),
    ("\0ALICE\0secret", Success("ALICE")),
    ("\0ünï\0pässwörd", Success("ünï")),
    ("\0alice\0wrong", Failure("wrong user name or password", user="alice")),
    ("\0nobody\0secret", Failure("wrong user name or password", user="nobody")),
    ("tim\0alice\0secret",
     Failure("authorization identity differs from authentication identity", user="alice")),
    ("alice\0secret", Failure("PLAIN response is not authzid NUL authcid NUL password",
                              malformed=True)),
    (b"\0alice\0\xff", Failure("PLAIN response is not UTF-8", malformed=True)),
])
def test_plain(message, result):
    for initial in (True, False):
        exchange = SASLExchange("plain", lookup)
        if initial:
            assert exchange.start(b64(message)) == result
        else:
            assert exchange.start(None) == Challenge(b"")
            assert exchange.respond(b64(message)) == result
        assert exchange.done


def test_plain_response_builder():
    assert auth.plain_response("alice", "secret") == b64("\0alice\0secret")
    assert auth.plain_response("alice", "secret", authzid="alice") == b64("alice\0alice\0secret")


# -- LOGIN ----------------------------------------------------------------------------------------
def test_login():
    exchange = SASLExchange("LOGIN", lookup)
    assert exchange.start(None) == Challenge(b"Username:")
    assert exchange.respond(b64("alice")) == Challenge(b"Password:")
    assert not exchange.done
    assert exchange.respond(b64("secret")) == Success("alice")


def test_login_with_the_user_as_initial_response():
    exchange = SASLExchange("LOGIN", lookup)
    assert exchange.start(b64("alice")) == Challenge(b"Password:")
    assert exchange.respond(b64("nope")) == Failure("wrong user name or password", user="alice")


def test_login_empty_values_use_equals():
    exchange = SASLExchange("LOGIN", lookup)
    assert exchange.start("=") == Challenge(b"Password:")
    assert exchange.respond("=") == Failure("wrong user name or password", user="")


# -- CRAM-MD5 -------------------------------------------------------------------------------------
def test_cram_md5_failures():
    token = "<1.2@mail.test>"
    wrong = SASLExchange("CRAM-MD5", lookup, token)
    wrong.start(None)
    assert wrong.respond(auth.cram_md5_response("alice", "bad", b64(token))) == \
        Failure("wrong user name or password", user="alice")
    unknown = SASLExchange("CRAM-MD5", lookup, token)
    unknown.start(None)
    assert unknown.respond(auth.cram_md5_response("bob", "secret", b64(token))) == \
        Failure("wrong user name or password", user="bob")
    short = SASLExchange("CRAM-MD5", lookup, token)
    short.start(None)
    assert short.respond(b64("alice abc")).malformed
    initial = SASLExchange("CRAM-MD5", lookup, token)
    assert initial.start(b64("alice x")) == Failure(
        "CRAM-MD5 does not take an initial response", malformed=True)


# -- common rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_cancel_with_star(mechanism):
    exchange = SASLExchange(mechanism, lookup, "<t@h>")
    exchange.start(None)
    result = exchange.respond("*")
    assert result == Failure("authentication cancelled", malformed=True, cancelled=True)
    with pytest.raises(RuntimeError):
        exchange.respond("*")


@pytest.mark.parametrize("line", ["!!!", "YWxpY2U", "YW xp", "YWxpY2U=\x00", "é", "a===",
                                  "YWxp\nY2U="])
def test_bad_base64_is_malformed(line):
    exchange = SASLExchange("LOGIN", lookup)
    exchange.start(None)
    result = exchange.respond(line)
    assert isinstance(result, Failure) and result.malformed and not result.cancelled


@pytest.mark.parametrize("text, data", [
    ("YWxpY2U=", b"alice"), ("", b""), (b"AA==", b"\0"), ("YWxpY2U", None), ("=", None),
    ("YW*x", None), ("\u00e9", None),
])
def test_b64decode_strict(text, data):
    assert auth.b64decode_strict(text) == data


def test_unknown_mechanism():
    with pytest.raises(ValueError):
        SASLExchange("GSSAPI", lookup)
    assert auth.MECHANISMS == ("PLAIN", "LOGIN", "CRAM-MD5")
    assert auth.PLAINTEXT_MECHANISMS == {"PLAIN", "LOGIN"}
