"""AUTH in the SMTP core: PLAIN, LOGIN, CRAM-MD5 (RFC 4954, RFC 4616, RFC 2195), exact bytes."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mailproto.smtp.server import ServerConfig
from mailproto.smtp.states import State

from ._support import (
    CRAM_TOKEN,
    EHLO_REPLY,
    GREETING,
    MAIL_OK,
    OK,
    b64,
    converse,
    lines,
    snapshot,
)

EHLO = lines("EHLO client.test")
START = GREETING + EHLO_REPLY
OK235 = b"235 2.7.0 Authentication successful\r\n"
FAILED = b"535 5.7.8 Error: authentication failed\r\n"
ABORTED = b"501 5.7.0 Authentication aborted\r\n"
NOT_BASE64 = b"501 5.5.2 cannot decode the response (not base64)\r\n"
USERNAME = b"334 VXNlcm5hbWU6\r\n"  # "Username:"
PASSWORD = b"334 UGFzc3dvcmQ6\r\n"  # "Password:"
RELAY_DENIED = b"550 5.7.1 <x@remote.test>: Relay access denied\r\n"


def cram(user: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), CRAM_TOKEN.encode(), hashlib.md5).hexdigest()
    return b64(f"{user} {digest}")


def authenticated(run) -> bool:
    return run.session.user is not None


# -- PLAIN (RFC 4616) -----------------------------------------------------------------------------
def test_plain_with_initial_response(tmp_path):
    run = converse(tmp_path, EHLO, lines("AUTH PLAIN " + b64("\0alice\0secret"), "EHLO again"))
    assert run.out == START + OK235 + EHLO_REPLY.replace(
        b"client.test", b"again").replace(b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n", b"")
    assert run.session.user == "alice"


def test_plain_without_initial_response_gets_an_empty_334_with_its_space(tmp_path):
    """RFC 4954 §4: an empty challenge is '334 ' — the space is there."""
    run = converse(tmp_path, EHLO, lines("AUTH PLAIN"), lines(b64("\0alice\0secret")))
    assert run.out == START + b"334 \r\n" + OK235


@pytest.mark.parametrize("response, reply", [
    (b64("alice\0alice\0secret"), OK235),  # authzid = authcid
    (b64("\0ALICE\0secret"), OK235),  # user names are case-insensitive
    (b64("\0Carol\0pa:ss"), OK235),
    (b64("bob\0alice\0secret"), FAILED),  # may not act as someone else
    (b64("\0alice\0wrong"), FAILED),
    (b64("\0alice\0SECRET"), FAILED),  # passwords are case-sensitive
    (b64("\0nobody\0secret"), FAILED),
    (b64("\0alice\0"), FAILED),
    (b64("alice\0secret"), b"501 5.5.2 PLAIN response is not authzid NUL authcid NUL password\r\n"),
    (b64("\0alice\0secret\0"), b"501 5.5.2 PLAIN response is not authzid NUL authcid NUL "
                               b"password\r\n"),
    (b64(b"\0alice\0\xff"), b"501 5.5.2 PLAIN response is not UTF-8\r\n"),
    ("=", b"501 5.5.2 PLAIN response is not authzid NUL authcid NUL password\r\n"),
    ("*", ABORTED),
    ("AGFsaWNlAHNlY3JldA", NOT_BASE64),  # padding missing
    ("AGFsaWNl AHNlY3JldA==", NOT_BASE64),
    ("!!!!", NOT_BASE64),
    ("QUIT", b"501 5.5.2 PLAIN response is not authzid NUL authcid NUL password\r\n"),
])
def test_plain_responses(tmp_path, response, reply):
    for i, script in enumerate([lines("AUTH PLAIN " + response),
                                lines("AUTH PLAIN", response)]):
        if response == "*" and i == 0:
            continue  # "*" cancels a challenge; as an initial response it is just bad base64
        run = converse(tmp_path / str(i), EHLO, script)
        challenge = b"334 \r\n" if i else b""
        assert run.out == START + challenge + reply
        assert authenticated(run) is (reply == OK235)
        assert run.session.state is State.GREETED


# -- LOGIN ----------------------------------------------------------------------------------------
def test_login_two_challenges(tmp_path):
    run = converse(tmp_path, EHLO, lines("AUTH LOGIN"), lines(b64("alice")), lines(b64("secret")))
    assert run.out == START + USERNAME + PASSWORD + OK235


def test_login_one_line_form_as_smtplib_sends_it(tmp_path):
    run = converse(tmp_path, EHLO, lines("auth login " + b64("alice"), b64("secret")))
    assert run.out == START + PASSWORD + OK235


@pytest.mark.parametrize("user, password, reply", [
    (b64("alice"), b64("wrong"), FAILED),
    (b64("alice"), "=", FAILED),  # empty password
    (b64("alice"), "*", ABORTED),
    (b64("alice"), "%%%", NOT_BASE64),
    (b64(b"\xff"), b64("x"), None),
])
def test_login_failures(tmp_path, user, password, reply):
    run = converse(tmp_path, EHLO, lines("AUTH LOGIN", user, password))
    if reply is None:
        assert run.out == START + USERNAME + b"501 5.5.2 LOGIN response is not UTF-8\r\n" + \
            b"500 5.5.2 Error: command not recognized\r\n"  # the next line is a command again
    else:
        assert run.out == START + USERNAME + PASSWORD + reply
    assert not authenticated(run)


# -- CRAM-MD5 (RFC 2195) --------------------------------------------------------------------------
def test_cram_md5(tmp_path):
    run = converse(tmp_path, EHLO, lines("AUTH CRAM-MD5"), lines(cram("alice", "secret")))
    assert run.out == START + f"334 {b64(CRAM_TOKEN)}\r\n".encode() + OK235
    assert run.session.user == "alice"


@pytest.mark.parametrize("response, reply", [
    (cram("alice", "wrong"), FAILED),
    (cram("nobody", "secret"), FAILED),
    (b64("alice"), b"501 5.5.2 CRAM-MD5 response is not 'user digest'\r\n"),
    (b64("alice 0123"), b"501 5.5.2 CRAM-MD5 response is not 'user digest'\r\n"),
    ("*", ABORTED),
])
def test_cram_md5_failures(tmp_path, response, reply):
    run = converse(tmp_path, EHLO, lines("AUTH CRAM-MD5", response))
    assert run.out == START + f"334 {b64(CRAM_TOKEN)}\r\n".encode() + reply


def test_cram_md5_refuses_an_initial_response(tmp_path):
    """RFC 4954 §4: an initial response to a server-first mechanism is 501."""
    run = converse(tmp_path, EHLO, lines("AUTH CRAM-MD5 " + cram("alice", "secret")))
    assert run.out == START + b"501 5.5.2 CRAM-MD5 does not take an initial response\r\n"
    assert not authenticated(run)


def test_cram_md5_digest_case_does_not_matter(tmp_path):
    digest = hmac.new(b"secret", CRAM_TOKEN.encode(), hashlib.md5).hexdigest().upper()
    run = converse(tmp_path, EHLO, lines("AUTH CRAM-MD5", b64(f"alice {digest}")))
    assert run.out.endswith(OK235)


# -- sequencing and policy ------------------------------------------------------------------------
def test_auth_before_ehlo_is_503(tmp_path):
    run = converse(tmp_path, lines("AUTH PLAIN " + b64("\0alice\0secret")))
    assert run.out == GREETING + b"503 5.5.1 Error: send HELO/EHLO first\r\n"


def test_auth_after_helo_is_503(tmp_path):
    run = converse(tmp_path, lines("HELO client.test", "AUTH PLAIN " + b64("\0alice\0secret")))
    assert run.out == GREETING + b"250 mail.test\r\n503 5.5.1 Error: send EHLO first\r\n"


def test_auth_during_a_transaction_is_503(tmp_path):
    run = converse(tmp_path, EHLO, lines("MAIL FROM:<>", "AUTH PLAIN " + b64("\0alice\0secret")))
    assert run.out == START + MAIL_OK + \
        b"503 5.5.1 Error: AUTH not allowed during a mail transaction\r\n"


def test_second_auth_is_503(tmp_path):
    """RFC 4954 §4: after a successful AUTH, further AUTH commands get 503."""
    run = converse(tmp_path, EHLO, lines("AUTH PLAIN " + b64("\0alice\0secret"), "RSET",
                                         "AUTH PLAIN " + b64("\0bob\0hunter2"), "AUTH LOGIN"))
    assert run.out == START + OK235 + OK + b"503 5.5.1 Error: already authenticated\r\n" * 2
    assert run.session.user == "alice"


@pytest.mark.parametrize("line, reply", [
    ("AUTH", b"501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"),
    ("AUTH DIGEST-MD5", b"504 5.5.4 Unrecognized authentication type\r\n"),
    ("AUTH XOAUTH2 abc", b"504 5.5.4 Unrecognized authentication type\r\n"),
    ("AUTH plain " + b64("\0alice\0secret"), OK235),  # mechanism names are case-insensitive
    ("AUTH Cram-Md5", f"334 {b64(CRAM_TOKEN)}\r\n".encode()),
])
def test_auth_mechanism_names(tmp_path, line, reply):
    run = converse(tmp_path, EHLO, lines(line))
    assert run.out == START + reply


ENCRYPTION_REQUIRED = b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"


@pytest.mark.parametrize("mech", ["PLAIN " + b64("\0alice\0secret"), "LOGIN", "CRAM-MD5"])
def test_require_tls_for_auth_538_and_not_advertised(tmp_path, mech):
    config = ServerConfig(require_tls_for_auth=True, starttls=True)
    run = converse(tmp_path, EHLO, lines("AUTH " + mech), config=config)
    assert b"AUTH" not in run.replies[1]
    assert run.replies[2:] == [ENCRYPTION_REQUIRED]
    assert not authenticated(run)


def test_no_plaintext_auth_in_the_clear_when_not_allowed(tmp_path):
    config = ServerConfig(allow_plaintext_auth=False)
    run = converse(tmp_path, EHLO, lines("AUTH PLAIN " + b64("\0alice\0secret"), "AUTH LOGIN",
                                         "AUTH CRAM-MD5", cram("alice", "secret")), config=config)
    assert b"250-AUTH CRAM-MD5\r\n" in run.replies[1]
    assert run.replies[2:] == [ENCRYPTION_REQUIRED, ENCRYPTION_REQUIRED,
                               f"334 {b64(CRAM_TOKEN)}\r\n".encode(), OK235]


def test_plaintext_auth_allowed_under_tls(tmp_path):
    config = ServerConfig(allow_plaintext_auth=False, require_tls_for_auth=True, starttls=True)
    run = converse(tmp_path, EHLO, lines("AUTH PLAIN " + b64("\0alice\0secret")), config=config,
                   tls=True)
    assert b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n" in run.replies[1]
    assert run.replies[2:] == [OK235]


def test_three_failures_421_and_close(tmp_path):
    bad = "AUTH PLAIN " + b64("\0alice\0wrong")
    run = converse(tmp_path, EHLO, lines(bad, bad, bad, "NOOP"),
                   config=ServerConfig(auth_failure_delay=0.5))
    assert run.out == START + FAILED * 3 + \
        b"421 4.7.0 mail.test Error: too many failed authentication attempts\r\n"
    assert run.session.closed and run.session.state is State.CLOSED
    assert run.session.delay == 0.5  # the transport holds the replies back this long


def test_failed_auth_asks_the_transport_to_wait(tmp_path):
    run = converse(tmp_path, EHLO, lines("AUTH LOGIN", b64("alice"), b64("x")),
                   config=ServerConfig(auth_failure_delay=1.5))
    assert run.session.delay == 1.5
    run.session.receive(lines("NOOP"))
    assert run.session.delay == 0.0


def test_cancels_and_syntax_errors_are_not_failed_logins(tmp_path):
    run = converse(tmp_path, EHLO, lines(*["AUTH LOGIN", "*"] * 4, "AUTH PLAIN !", "NOOP"))
    assert run.replies[2:] == [USERNAME, ABORTED] * 4 + [NOT_BASE64, OK]
    assert not run.session.closed


def test_failed_auth_does_not_open_the_relay(tmp_path):
    run = converse(tmp_path, EHLO, lines("AUTH PLAIN " + b64("\0alice\0nope"), "MAIL FROM:<>",
                                         "RCPT TO:<x@remote.test>"))
    assert run.replies[2:] == [FAILED, MAIL_OK, RELAY_DENIED]
    assert snapshot(run.root) == {}


def test_auth_lines_up_to_12288_octets(tmp_path):
    """RFC 4954 §4: 12288 octets is enough for an AUTH line; beyond, 500 5.5.6."""
    long_password = "p" * 9000
    line = "AUTH PLAIN " + b64("\0alice\0" + long_password)
    assert 12000 < len(line) + 2 <= 12288
    run = converse(tmp_path, EHLO, lines(line, "NOOP"))
    assert run.replies[2:] == [FAILED, OK]


def test_overlong_auth_command_is_500_5_5_6(tmp_path):
    line = "AUTH PLAIN " + "QUFB" * 4000
    run = converse(tmp_path, EHLO, lines(line, "NOOP"))
    assert run.replies[2:] == [b"500 5.5.6 Authentication Exchange line is too long\r\n", OK]


def test_overlong_sasl_response_ends_the_exchange(tmp_path):
    run = converse(tmp_path, EHLO, lines("AUTH LOGIN", "QUFB" * 4000, "NOOP"))
    assert run.replies[2:] == [USERNAME,
                               b"500 5.5.6 Authentication Exchange line is too long\r\n", OK]
    assert run.session.state is State.GREETED


def test_timeout_during_auth(tmp_path):
    from ._support import TIMEOUT

    run = converse(tmp_path, EHLO, lines("AUTH LOGIN"), TIMEOUT)
    assert run.out == START + USERNAME + b"421 4.4.2 mail.test Error: timeout exceeded\r\n"
