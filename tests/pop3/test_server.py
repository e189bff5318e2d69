"""The POP3 core byte for byte: every command, its errors, and the session's life (RFC 1939,
RFC 2449, RFC 3206, RFC 5034, RFC 2595).  Every script runs whole and one byte at a time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path

import pytest

from mailproto import auth
from mailproto.pop3 import server as server_mod
from mailproto.pop3.server import OUTPUT_BUDGET, ServerConfig, ServerSession
from mailproto.pop3.states import TABLE, State
from mailproto.store import Store, Users

from ._support import (
    CRAM_TOKEN,
    DROP,
    GREETING,
    M1,
    M2,
    M3,
    NAMES,
    SHUTDOWN,
    TIMEOUT,
    TLS,
    TOKEN,
    add_message,
    converse,
    make_store,
    session,
    snapshot,
    talk,
    wire,
)

LOGIN = b"USER alice\r\nPASS secret\r\n"
SIZES = [len(wire(m)[0]) for m in (M1, M2, M3)]
TOTAL = sum(SIZES)
LOGGED_IN = (b"+OK Password required for alice\r\n"
             + f"+OK Maildrop has 3 messages ({TOTAL} bytes)\r\n".encode())
AUTH_FAILED = b"-ERR [AUTH] Invalid user name or password\r\n"


def replies(run_out: bytes) -> bytes:
    """The bytes after the greeting."""
    assert run_out.startswith(GREETING)
    return run_out[len(GREETING):]


def apop(secret: str, token: str = TOKEN) -> str:
    return hashlib.md5((token + secret).encode()).hexdigest()


def alice_files(store: Store) -> list[str]:
    return sorted(p.name for p in store.maildir("alice").message_paths())


# -- greeting -----------------------------------------------------------------------------
def test_greeting_ends_with_the_apop_timestamp(tmp_path: Path) -> None:
    run = converse(tmp_path, [])
    assert run.out == GREETING
    # poplib's regex: the timestamp is everything from "<" to the last ">" of the line
    assert re.search(rb"\+OK.[^<]*(<.*>)\r\n$", run.out).group(1) == TOKEN.encode()


def test_default_token_is_fresh_per_connection(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    a = ServerSession(ServerConfig(), store, clock=lambda: 1.5).initiate()
    b = ServerSession(ServerConfig(), store, clock=lambda: 1.5).initiate()
    assert a != b
    stamp = re.search(rb"(<[^<>]*>)\r\n$", a).group(1).decode()
    assert re.fullmatch(rf"<{os.getpid()}\.\d+\.1500000@mail\.test>", stamp)


# -- USER / PASS (RFC 1939 §7) -------------------------------------------------------------
def test_user_pass_login(tmp_path: Path) -> None:
    run = converse(tmp_path, [LOGIN])
    assert replies(run.out) == LOGGED_IN
    assert run.session.state is State.TRANSACTION and run.session.user == "alice"


def test_user_names_are_case_insensitive_and_commands_too(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"user ALICE\r\npAsS secret\r\nstat\r\n"])
    assert replies(run.out).endswith(f"+OK 3 {TOTAL}\r\n".encode())
    assert run.session.user == "alice"


def test_password_with_spaces(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"USER carol\r\nPASS pa ss word\r\nSTAT\r\n"])
    assert replies(run.out) == (b"+OK Password required for carol\r\n"
                                b"+OK Maildrop has 0 messages (0 bytes)\r\n+OK 0 0\r\n")


def test_wrong_password_and_unknown_user_get_the_same_reply(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"USER alice\r\nPASS wrong\r\nUSER nobody\r\nPASS secret\r\n"])
    assert replies(run.out) == (b"+OK Password required for alice\r\n" + AUTH_FAILED
                                + b"+OK Password required for nobody\r\n" + AUTH_FAILED)
    assert run.session.state is State.AUTHORIZATION


def test_failed_login_asks_the_transport_to_wait(tmp_path: Path) -> None:
    s, _ = session(tmp_path, ServerConfig(auth_failure_delay=2.5))
    s.receive(b"USER alice\r\n")
    assert s.delay == 0
    s.receive(b"PASS nope\r\n")
    assert s.delay == 2.5
    s.receive(b"NOOP\r\n")
    assert s.delay == 0


def test_three_failures_close_the_session(tmp_path: Path) -> None:
    bad = b"USER alice\r\nPASS x\r\n"
    run = converse(tmp_path, [bad * 2 + bad + b"USER alice\r\nPASS secret\r\n"])
    assert replies(run.out).endswith(
        b"-ERR [AUTH] Invalid user name or password; too many failures, closing\r\n")
    assert replies(run.out).count(b"-ERR [AUTH]") == 3
    assert run.session.closed and run.session.state is State.CLOSED


@pytest.mark.parametrize("name", [b"../alice", b"/etc", b"alice/../bob", b"a\x00b", b".alice",
                                  b"..", b"alice\xff"])
def test_user_names_that_leave_the_data_dir_are_just_unknown(tmp_path: Path,
                                                              name: bytes) -> None:
    run = converse(tmp_path, [b"USER " + name + b"\r\nPASS secret\r\n"])
    first, second, _ = replies(run.out).split(b"\r\n")
    assert first.startswith(b"+OK Password required")
    assert second + b"\r\n" == AUTH_FAILED
    assert not (tmp_path / "etc").exists()


def test_user_echo_never_carries_control_characters(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"USER a\rb\r\n"])
    assert replies(run.out) == b"+OK Password required\r\n"


def test_pass_without_user(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"PASS secret\r\nUSER alice\r\nPASS x\r\nPASS secret\r\n"])
    assert replies(run.out) == (b"-ERR Send USER first\r\n+OK Password required for alice\r\n"
                                + AUTH_FAILED + b"-ERR Send USER first\r\n")


def test_user_syntax(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"USER\r\nUSER a b\r\n"])
    assert replies(run.out) == b"-ERR Syntax: USER name\r\n" * 2


# -- APOP (RFC 1939 §7) --------------------------------------------------------------------
def test_apop_login(tmp_path: Path) -> None:
    run = converse(tmp_path, [f"APOP alice {apop('secret')}\r\n".encode()])
    assert replies(run.out) == f"+OK Maildrop has 3 messages ({TOTAL} bytes)\r\n".encode()
    assert auth.apop_digest(TOKEN, "secret") == apop("secret")


def test_apop_digest_may_be_upper_case_hex(tmp_path: Path) -> None:
    run = converse(tmp_path, [f"APOP alice {apop('secret').upper()}\r\n".encode()])
    assert run.session.state is State.TRANSACTION


@pytest.mark.parametrize("line", [
    f"APOP alice {apop('wrong')}", f"APOP nobody {apop('secret')}", "APOP alice 1234",
    f"APOP alice {apop('secret', '<other@mail.test>')}", "APOP alice " + "z" * 32])
def test_apop_failures(tmp_path: Path, line: str) -> None:
    run = converse(tmp_path, [line.encode() + b"\r\n"])
    assert replies(run.out) == AUTH_FAILED


def test_apop_syntax(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"APOP alice\r\n"])
    assert replies(run.out) == b"-ERR Syntax: APOP name digest\r\n"


# -- AUTH (RFC 5034) -----------------------------------------------------------------------
def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_auth_without_argument_lists_mechanisms(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"AUTH\r\n"])
    assert replies(run.out) == (b"+OK Supported SASL mechanisms follow\r\n"
                                b"PLAIN\r\nLOGIN\r\nCRAM-MD5\r\n.\r\n")
    assert run.session.state is State.AUTHORIZATION


def test_auth_plain_initial_response(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"AUTH PLAIN " + b64(b"\0alice\0secret") + b"\r\n"])
    assert replies(run.out) == f"+OK Maildrop has 3 messages ({TOTAL} bytes)\r\n".encode()


def test_auth_plain_continuation(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"auth plain\r\n", b64(b"alice\0alice\0secret") + b"\r\n"])
    assert replies(run.out) == (b"+ \r\n"
                                + f"+OK Maildrop has 3 messages ({TOTAL} bytes)\r\n".encode())


def test_auth_login(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"AUTH LOGIN\r\n" + b64(b"alice") + b"\r\n" + b64(b"secret")
                              + b"\r\n"])
    assert replies(run.out) == (b"+ " + b64(b"Username:") + b"\r\n+ " + b64(b"Password:")
                                + b"\r\n" + f"+OK Maildrop has 3 messages ({TOTAL} bytes)\r\n"
                                .encode())


def test_auth_cram_md5(tmp_path: Path) -> None:
    digest = hmac.new(b"secret", CRAM_TOKEN.encode(), hashlib.md5).hexdigest()
    run = converse(tmp_path, [b"AUTH CRAM-MD5\r\n", b64(f"alice {digest}".encode()) + b"\r\n"])
    assert replies(run.out) == (b"+ " + b64(CRAM_TOKEN.encode()) + b"\r\n"
                                + f"+OK Maildrop has 3 messages ({TOTAL} bytes)\r\n".encode())


def test_auth_wrong_password(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"AUTH PLAIN " + b64(b"\0alice\0nope") + b"\r\n"])
    assert replies(run.out) == AUTH_FAILED
    assert run.session.auth_failures == 1


def test_auth_cancel_and_garbage(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"AUTH LOGIN\r\n*\r\nAUTH PLAIN\r\n!!!\r\nAUTH FOO\r\n"
                              b"AUTH PLAIN a b\r\nNOOP\r\n"])
    assert replies(run.out) == (
        b"+ " + b64(b"Username:") + b"\r\n-ERR Authentication cancelled\r\n"
        b"+ \r\n-ERR cannot decode the response (not base64)\r\n"
        b"-ERR Unsupported authentication mechanism\r\n"
        b"-ERR Syntax: AUTH mechanism [initial-response]\r\n"
        b"-ERR NOOP not allowed in AUTHORIZATION state (only in TRANSACTION)\r\n")
    assert run.session.auth_failures == 0


def test_auth_plain_empty_initial_response(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"AUTH PLAIN =\r\n"])
    assert replies(run.out).startswith(b"-ERR PLAIN response is not")


# -- plaintext policy and STLS (RFC 2595) --------------------------------------------------
NO_PLAIN = ServerConfig(allow_plaintext_auth=False, stls=True)


def capa(out: bytes) -> list[bytes]:
    body = out.split(b"+OK Capability list follows\r\n", 1)[1]
    return body.split(b"\r\n.\r\n", 1)[0].split(b"\r\n")


def test_capa(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"CAPA\r\n"], ServerConfig(stls=True))
    assert capa(run.out) == [b"TOP", b"USER", b"SASL PLAIN LOGIN CRAM-MD5", b"RESP-CODES",
                             b"AUTH-RESP-CODE", b"PIPELINING", b"UIDL", b"EXPIRE NEVER",
                             b"IMPLEMENTATION mailproto", b"STLS"]


def test_capa_is_the_same_in_both_states(tmp_path: Path) -> None:
    # RFC 2449 §5: capabilities of AUTHORIZATION are announced in both states.
    run = converse(tmp_path, [b"CAPA\r\n" + LOGIN + b"CAPA\r\n"], ServerConfig(stls=True))
    first, second = replies(run.out).split(LOGGED_IN)
    assert first == second


def test_plaintext_disallowed_without_tls(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"CAPA\r\nUSER alice\r\nPASS secret\r\nAUTH PLAIN "
                              + b64(b"\0alice\0secret") + b"\r\nAUTH\r\n"], NO_PLAIN)
    out = replies(run.out)
    assert capa(out) == [b"TOP", b"SASL CRAM-MD5", b"RESP-CODES", b"AUTH-RESP-CODE",
                         b"PIPELINING", b"UIDL", b"EXPIRE NEVER", b"IMPLEMENTATION mailproto",
                         b"STLS"]
    assert out.split(b".\r\n", 1)[1] == (
        b"-ERR [AUTH] Plaintext authentication disallowed without TLS\r\n"
        b"-ERR Send USER first\r\n"
        b"-ERR [AUTH] Plaintext authentication disallowed without TLS\r\n"
        b"+OK Supported SASL mechanisms follow\r\nCRAM-MD5\r\n.\r\n")
    assert run.session.auth_failures == 0


def test_apop_still_works_without_tls(tmp_path: Path) -> None:
    run = converse(tmp_path, [f"APOP alice {apop('secret')}\r\n".encode()], NO_PLAIN)
    assert run.session.state is State.TRANSACTION


def test_stls_then_plaintext_is_allowed(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"STLS\r\nUSER alice\r\n", TLS, b"CAPA\r\n" + LOGIN], NO_PLAIN)
    out = replies(run.out)
    # the USER pipelined behind STLS was discarded (RFC 2595 §4, CVE-2011-0411)
    assert out.startswith(b"+OK Begin TLS negotiation\r\n+OK Capability list follows\r\n")
    assert b"STLS" not in capa(out) and b"USER" in capa(out)
    assert b"SASL PLAIN LOGIN CRAM-MD5" in capa(out)
    assert out.endswith(LOGGED_IN)
    assert run.session.tls


def test_stls_refusals(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"STLS\r\n"], ServerConfig(stls=False))
    assert replies(run.out) == b"-ERR STLS is not available on this server\r\n"
    run = converse(tmp_path / "2", [b"STLS\r\n"], ServerConfig(stls=True), tls=True)
    assert replies(run.out) == b"-ERR TLS is already active\r\n"
    run = converse(tmp_path / "3", [b"STLS now\r\n"], ServerConfig(stls=True))
    assert replies(run.out) == b"-ERR Syntax: STLS\r\n"
    run = converse(tmp_path / "4", [LOGIN + b"STLS\r\n"], ServerConfig(stls=True))
    assert replies(run.out).endswith(
        b"-ERR STLS not allowed in TRANSACTION state (only in AUTHORIZATION)\r\n")


def test_require_tls_for_auth(tmp_path: Path) -> None:
    config = ServerConfig(stls=True, require_tls_for_auth=True)
    script = [b"CAPA\r\nUSER alice\r\n" + f"APOP alice {apop('secret')}\r\n".encode()
              + b"AUTH CRAM-MD5\r\nAUTH\r\nSTLS\r\n", TLS, b"APOP alice "
              + apop("secret").encode() + b"\r\n"]
    run = converse(tmp_path, script, config)
    out = replies(run.out)
    assert capa(out) == [b"TOP", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING", b"UIDL",
                         b"EXPIRE NEVER", b"IMPLEMENTATION mailproto", b"STLS"]
    assert out.split(b"STLS\r\n.\r\n", 1)[1] == (
        b"-ERR [AUTH] Plaintext authentication disallowed without TLS\r\n"
        b"-ERR [AUTH] Authentication disallowed without TLS: send STLS first\r\n"
        b"-ERR [AUTH] Authentication disallowed without TLS: send STLS first\r\n"
        b"+OK Supported SASL mechanisms follow\r\n.\r\n"
        b"+OK Begin TLS negotiation\r\n"
        + f"+OK Maildrop has 3 messages ({TOTAL} bytes)\r\n".encode())


# -- TRANSACTION: STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP (RFC 1939 §5, §7) -----------
def test_stat_list_uidl(tmp_path: Path) -> None:
    run = converse(tmp_path, [LOGIN + b"STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\n"])
    s1, s2, s3 = SIZES
    assert replies(run.out) == LOGGED_IN + (
        f"+OK 3 {TOTAL}\r\n"
        f"+OK 3 messages ({TOTAL} octets)\r\n1 {s1}\r\n2 {s2}\r\n3 {s3}\r\n.\r\n"
        f"+OK 2 {s2}\r\n"
        f"+OK unique-id listing follows\r\n1 {NAMES[0]}\r\n2 {NAMES[1]}\r\n3 {NAMES[2]}\r\n"
        f".\r\n+OK 3 {NAMES[2]}\r\n").encode()


def test_sizes_count_crlf_octets(tmp_path: Path) -> None:
    # LF stored, CRLF sent; a last line without LF still gets CRLF; a CRLF file stays as is.
    assert SIZES == [len(M1) + M1.count(b"\n"), len(M2) + M2.count(b"\n") + 2, len(M3)]


def test_retr_sends_the_message_stuffed(tmp_path: Path) -> None:
    run = converse(tmp_path, [LOGIN + b"RETR 1\r\nRETR 2\r\nRETR 3\r\n"])
    expected = b"".join(f"+OK {len(wire(m)[0])} octets\r\n".encode() + wire(m)[1]
                        for m in (M1, M2, M3))
    assert replies(run.out) == LOGGED_IN + expected
    assert b"\r\n..dot line\r\n...two dots\r\n..\r\n.\r\n" in run.out


def test_top(tmp_path: Path) -> None:
    run = converse(tmp_path, [LOGIN + b"TOP 1 0\r\nTOP 1 2\r\nTOP 1 99999999\r\nTOP 2 0\r\n"])
    head = b"From: bob@local.test\r\nSubject: one\r\n\r\n"
    assert replies(run.out) == LOGGED_IN + (
        b"+OK top of message follows\r\n" + head + b".\r\n"
        + b"+OK top of message follows\r\n" + head + b"Hello\r\n..dot line\r\n.\r\n"
        + b"+OK top of message follows\r\n" + wire(M1)[1]
        + b"+OK top of message follows\r\nSubject: two\r\n\r\n.\r\n")


def test_top_of_a_message_without_body_or_blank_line(tmp_path: Path) -> None:
    def setup(store: Store) -> None:
        add_message(store, "bob", b"Subject: only headers\nX: y", "1.M1P1.test")
        add_message(store, "bob", b"", "2.M2P1.test")

    run = converse(tmp_path, [b"USER bob\r\nPASS hunter2\r\nTOP 1 5\r\nTOP 2 0\r\nLIST\r\n"
                              b"RETR 2\r\n"], setup=setup)
    assert replies(run.out).split(b"(29 bytes)\r\n", 1)[1] == (
        b"+OK top of message follows\r\nSubject: only headers\r\nX: y\r\n.\r\n"
        b"+OK top of message follows\r\n.\r\n"
        b"+OK 2 messages (29 octets)\r\n1 29\r\n2 0\r\n.\r\n"
        b"+OK 0 octets\r\n.\r\n")


@pytest.mark.parametrize("command, reply", [
    (b"RETR", b"-ERR Syntax: RETR msg"), (b"RETR 1 2", b"-ERR Syntax: RETR msg"),
    (b"RETR x", b"-ERR Invalid message number: x"), (b"RETR 0", b"-ERR Invalid message number: 0"),
    (b"RETR -1", b"-ERR Invalid message number: -1"),
    (b"RETR 4", b"-ERR no such message, only 3 messages in maildrop"),
    (b"RETR 99999999999999999999", b"-ERR Invalid message number: 99999999999999999999"),
    (b"TOP 1", b"-ERR Syntax: TOP msg n"), (b"TOP 1 -1", b"-ERR Invalid number of lines: -1"),
    (b"TOP 9 1", b"-ERR no such message, only 3 messages in maildrop"),
    (b"LIST 1 2", b"-ERR Syntax: LIST [msg]"), (b"LIST 4", b"-ERR no such message, only 3 "
                                                          b"messages in maildrop"),
    (b"UIDL x", b"-ERR Invalid message number: x"), (b"DELE", b"-ERR Syntax: DELE msg"),
    (b"DELE \xc2\xb2", b"-ERR Invalid message number: ?"), (b"STAT 1", b"-ERR Syntax: STAT"),
    (b"RSET 1", b"-ERR Syntax: RSET"), (b"NOOP 1", b"-ERR Syntax: NOOP"),
    (b"CAPA x", b"-ERR Syntax: CAPA"),
    (b"USER bob", b"-ERR USER not allowed in TRANSACTION state (only in AUTHORIZATION)"),
    (b"LAST", b"-ERR Unknown command: LAST"), (b"XYZZY 1", b"-ERR Unknown command: XYZZY"),
    (b"", b"-ERR Empty command"),
])
def test_transaction_errors_keep_the_session(tmp_path: Path, command: bytes,
                                             reply: bytes) -> None:
    run = converse(tmp_path, [LOGIN + command + b"\r\nNOOP\r\n"])
    assert replies(run.out) == LOGGED_IN + reply + b"\r\n+OK\r\n"
    assert run.session.state is State.TRANSACTION


@pytest.mark.parametrize("command", [b"STAT", b"LIST", b"UIDL 1", b"RETR 1", b"TOP 1 0",
                                     b"DELE 1", b"RSET", b"NOOP"])
def test_transaction_commands_before_login(tmp_path: Path, command: bytes) -> None:
    run = converse(tmp_path, [command + b"\r\n"])
    verb = command.split()[0].decode()
    assert replies(run.out) == (f"-ERR {verb} not allowed in AUTHORIZATION state "
                                "(only in TRANSACTION)\r\n").encode()


def test_dele_marks_rset_unmarks(tmp_path: Path) -> None:
    s1, s2, s3 = SIZES
    run = converse(tmp_path, [LOGIN + b"DELE 1\r\nDELE 1\r\nRETR 1\r\nLIST 1\r\nUIDL 1\r\n"
                              b"TOP 1 0\r\nSTAT\r\nLIST\r\nRSET\r\nSTAT\r\nQUIT\r\n"])
    assert replies(run.out) == LOGGED_IN + (
        b"+OK message 1 deleted\r\n" + b"-ERR message 1 already deleted\r\n" * 5
        + f"+OK 2 {s2 + s3}\r\n+OK 2 messages ({s2 + s3} octets)\r\n2 {s2}\r\n3 {s3}\r\n.\r\n"
          f"+OK maildrop has 3 messages ({TOTAL} octets)\r\n+OK 3 {TOTAL}\r\n"
          "+OK mail.test POP3 server signing off (3 messages left)\r\n".encode())
    assert alice_files(run.store) == list(NAMES)


def test_quit_removes_exactly_the_marked_messages(tmp_path: Path) -> None:
    run = converse(tmp_path, [LOGIN + b"DELE 1\r\nDELE 3\r\nQUIT\r\nNOOP\r\n"])
    assert replies(run.out).endswith(
        b"+OK message 3 deleted\r\n+OK mail.test POP3 server signing off (1 message left)\r\n")
    assert alice_files(run.store) == [NAMES[1]]
    assert run.session.closed and run.session.state is State.CLOSED
    assert run.session.maildrop is None  # lock released


def test_quit_in_authorization_enters_no_update(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"USER alice\r\nQUIT\r\n"])
    assert replies(run.out).endswith(b"+OK mail.test POP3 server signing off\r\n")
    assert run.session.closed and alice_files(run.store) == list(NAMES)


@pytest.mark.parametrize("ending", [DROP, TIMEOUT, SHUTDOWN])
def test_a_session_ended_without_quit_removes_nothing(tmp_path: Path, ending: object) -> None:
    run = converse(tmp_path, [LOGIN + b"DELE 1\r\nDELE 2\r\n", ending])
    assert alice_files(run.store) == list(NAMES)
    assert run.session.closed and run.session.state is State.CLOSED
    assert run.session.maildrop is None
    tail = replies(run.out).split(b"+OK message 2 deleted\r\n")[1]
    assert tail == {DROP: b"",
                    TIMEOUT: b"-ERR Disconnected for inactivity (autologout, RFC 1939 \xc2\xa73)"
                             b"\r\n",
                    SHUTDOWN: b"-ERR [SYS/TEMP] Server shutting down\r\n"}[ending]


def test_update_failure_is_sys_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_unlink = os.unlink

    def unlink(path: object, *args: object, **kw: object) -> None:
        if str(path).endswith(NAMES[0]):
            raise PermissionError(13, "Permission denied")
        real_unlink(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", unlink)
    run = converse(tmp_path, [LOGIN + b"DELE 1\r\nDELE 2\r\nQUIT\r\n"])
    assert replies(run.out).endswith(b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n")
    assert alice_files(run.store) == [NAMES[0], NAMES[2]]
    assert run.session.closed


def test_noop(tmp_path: Path) -> None:
    run = converse(tmp_path, [LOGIN + b"NOOP\r\n"])
    assert replies(run.out) == LOGGED_IN + b"+OK\r\n"


# -- the maildrop: numbering, lock, UIDs ---------------------------------------------------
def test_numbers_are_fixed_for_the_session(tmp_path: Path) -> None:
    s, store = session(tmp_path)
    talk(s, LOGIN)
    add_message(store, "alice", b"Subject: late\n\nx\n", "1000000000.M000000P1Q0.test")
    assert talk(s, b"STAT\r\nUIDL 1\r\n") == f"+OK 3 {TOTAL}\r\n+OK 1 {NAMES[0]}\r\n".encode()
    talk(s, b"QUIT\r\n")
    s2, _ = session(tmp_path, store=store)
    assert talk(s2, LOGIN + b"UIDL 1\r\n").endswith(b"+OK 1 1000000000.M000000P1Q0.test\r\n")


def test_second_login_gets_in_use_until_the_first_ends(tmp_path: Path) -> None:
    first, store = session(tmp_path)
    assert talk(first, LOGIN).endswith(b"bytes)\r\n")
    second, _ = session(tmp_path, store=store)
    assert talk(second, LOGIN).endswith(
        b"-ERR [IN-USE] Maildrop is locked by another POP3 session\r\n")
    assert second.state is State.AUTHORIZATION and second.auth_failures == 0
    assert talk(second, f"APOP alice {apop('secret', second.timestamp)}\r\n".encode()) == \
        b"-ERR [IN-USE] Maildrop is locked by another POP3 session\r\n"
    first.connection_lost()
    assert talk(second, LOGIN).endswith(f"({TOTAL} bytes)\r\n".encode())


def test_uidl_survives_new_to_cur_and_sessions(tmp_path: Path) -> None:
    s, store = session(tmp_path)
    before = talk(s, LOGIN + b"UIDL\r\nQUIT\r\n").split(b"\r\n", 2)[2]
    box = store.maildir("alice").path
    os.rename(box / "new" / NAMES[1], box / "cur" / (NAMES[1] + ":2,S"))
    s2, _ = session(tmp_path, store=store)
    after = talk(s2, LOGIN + b"UIDL\r\nQUIT\r\n").split(b"\r\n", 2)[2]
    assert before == after


def test_message_moved_by_another_program_during_the_session(tmp_path: Path) -> None:
    s, store = session(tmp_path)
    talk(s, LOGIN)
    box = store.maildir("alice").path
    os.rename(box / "new" / NAMES[0], box / "cur" / (NAMES[0] + ":2,S"))
    assert talk(s, b"RETR 1\r\n").endswith(wire(M1)[1])
    talk(s, b"DELE 1\r\nQUIT\r\n")
    assert alice_files(store) == list(NAMES[1:])


def test_message_gone_before_retr(tmp_path: Path) -> None:
    s, store = session(tmp_path)
    talk(s, LOGIN)
    (store.maildir("alice").path / "new" / NAMES[0]).unlink()
    assert talk(s, b"RETR 1\r\nNOOP\r\n") == b"-ERR [SYS/TEMP] Cannot read message 1\r\n+OK\r\n"


def test_message_that_cannot_be_read_is_sys_temp_before_any_ok(tmp_path: Path) -> None:
    s, store = session(tmp_path)
    talk(s, LOGIN)
    path = store.maildir("alice").path / "new" / NAMES[0]
    path.unlink()
    path.mkdir()  # it opens, but a read fails
    assert talk(s, b"RETR 1\r\nTOP 1 0\r\nNOOP\r\n") == (
        b"-ERR [SYS/TEMP] Cannot read message 1\r\n" * 2 + b"+OK\r\n")
    assert s.state is State.TRANSACTION


def test_small_messages_go_out_whole_in_one_call(tmp_path: Path) -> None:
    s, _ = session(tmp_path)
    talk(s, LOGIN)
    out = s.receive(b"RETR 1\r\nRETR 2\r\nTOP 3 0\r\n")
    assert not s.has_more_output
    assert out == (f"+OK {SIZES[0]} octets\r\n".encode() + wire(M1)[1]
                   + f"+OK {SIZES[1]} octets\r\n".encode() + wire(M2)[1]
                   + b"+OK top of message follows\r\nSubject: three\r\n\r\n.\r\n")


def test_unreadable_maildrop_is_sys_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    def boom(*a: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(server_mod.Maildrop, "open", boom)
    run = converse(tmp_path, [LOGIN])
    assert replies(run.out).endswith(b"-ERR [SYS/TEMP] Cannot open the maildrop\r\n")
    assert run.session.state is State.AUTHORIZATION


# -- framing: long lines, pipelining, streaming, robustness --------------------------------
def test_overlong_line_gets_one_error_and_the_session_stays_in_sync(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"NOOP " + b"x" * 3000 + b"\r\n" + b"USER " + b"y" * 1100
                              + b"\r\nQUIT\r\n"])
    assert replies(run.out) == (b"-ERR line too long\r\n-ERR line too long\r\n"
                                b"+OK mail.test POP3 server signing off\r\n")


def test_sasl_responses_may_be_long(tmp_path: Path) -> None:
    response = b64(b"\0alice\0" + b"s" * 3000)
    run = converse(tmp_path, [b"AUTH PLAIN\r\n" + response + b"\r\n"])
    assert replies(run.out) == b"+ \r\n" + AUTH_FAILED


def test_bare_lf_ends_a_command(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"USER alice\nPASS secret\nSTAT\n"])
    assert replies(run.out).endswith(f"+OK 3 {TOTAL}\r\n".encode())


def test_pipelined_session_answers_in_order(tmp_path: Path) -> None:
    script = LOGIN + b"LIST\r\nRETR 1\r\nUIDL 2\r\nTOP 3 0\r\nDELE 2\r\nSTAT\r\nQUIT\r\n"
    run = converse(tmp_path, [script])
    s1, s2, s3 = SIZES
    assert replies(run.out) == LOGGED_IN + (
        f"+OK 3 messages ({TOTAL} octets)\r\n1 {s1}\r\n2 {s2}\r\n3 {s3}\r\n.\r\n"
        f"+OK {s1} octets\r\n").encode() + wire(M1)[1] + (
        f"+OK 2 {NAMES[1]}\r\n+OK top of message follows\r\nSubject: three\r\n\r\n.\r\n"
        f"+OK message 2 deleted\r\n+OK 2 {s1 + s3}\r\n"
        "+OK mail.test POP3 server signing off (2 messages left)\r\n").encode()


def test_huge_message_streams_in_bounded_pieces(tmp_path: Path) -> None:
    line = b"." + b"x" * 98 + b"\n"  # every line needs stuffing
    big = b"Subject: big\n\n" + line * 60_000  # 6 MB

    s, store = session(tmp_path)
    add_message(store, "bob", big, "1.M1P1.test")
    s.receive(b"USER bob\r\nPASS hunter2\r\n")
    first = s.receive(b"RETR 1\r\nTOP 1 99999999\r\nQUIT\r\n")
    size = len(big) + big.count(b"\n")
    assert first.startswith(f"+OK {size} octets\r\n".encode())
    pieces = [first]
    while s.has_more_output:
        pieces.append(s.more())
    assert max(len(p) for p in pieces) <= OUTPUT_BUDGET + 3 * 65536
    assert len(pieces) > 50
    out = b"".join(pieces)
    body = wire(big)[1]
    assert out == (f"+OK {len(wire(big)[0])} octets\r\n".encode() + body
                   + b"+OK top of message follows\r\n" + body
                   + b"+OK mail.test POP3 server signing off (1 message left)\r\n")


def test_many_pipelined_commands_come_out_in_bounded_pieces(tmp_path: Path) -> None:
    run = converse(tmp_path, [LOGIN + b"UIDL 1\r\n" * 6_000 + b"QUIT\r\n"])
    assert run.out.count(f"+OK 1 {NAMES[0]}\r\n".encode()) == 6_000
    assert run.largest_piece <= 2 * OUTPUT_BUDGET


def test_receive_never_raises(tmp_path: Path) -> None:
    import random

    rng = random.Random(1939)
    words = [b"USER alice", b"PASS secret", b"APOP alice x", b"AUTH PLAIN", b"AUTH LOGIN",
             b"STAT", b"LIST", b"LIST 2", b"RETR 1", b"TOP 1 3", b"DELE 1", b"RSET", b"UIDL",
             b"NOOP", b"CAPA", b"STLS", b"*", b"=", b"\xff\xfe", b"\x00", b"RETR 99999", b"..",
             b"QUIT"]
    for i in range(200):
        s, _ = session(tmp_path / str(i), ServerConfig(stls=True))
        data = b"".join(rng.choice(words) + rng.choice([b"\r\n", b"\n", b" ", b"\r"])
                        for _ in range(rng.randint(1, 30)))
        talk(s, data)
        if s.tls_requested:
            s.tls_started()
            talk(s, data)
        s.connection_lost()
        assert s.maildrop is None


def test_an_internal_error_costs_the_session_not_the_lock(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    s, store = session(tmp_path)
    talk(s, LOGIN)

    def broken(self: ServerSession, *a: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(ServerSession, "_do_STAT", broken)
    assert talk(s, b"STAT\r\nNOOP\r\n") == b"-ERR [SYS/TEMP] Internal server error, closing\r\n"
    assert s.closed and s.maildrop is None and alice_files(store) == list(NAMES)


def test_too_many_errors_close_the_session(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"BOGUS\r\n" * 25], ServerConfig(hard_error_limit=5))
    assert replies(run.out) == (b"-ERR Unknown command: BOGUS\r\n" * 4
                                + b"-ERR Unknown command: BOGUS (too many errors, closing)\r\n")
    assert run.session.closed


# -- the transcript ------------------------------------------------------------------------
def test_every_state_change_is_a_row_of_the_table(tmp_path: Path) -> None:
    run = converse(tmp_path, [b"CAPA\r\n" + LOGIN + b"LIST\r\nRETR 2\r\nDELE 1\r\nQUIT\r\n"])
    rows = {(t.source.name, t.target.name) for t in TABLE.transitions}
    changes = [(st.state_before, st.state_after) for st in run.transcript
               if st.state_before != st.state_after]
    assert changes == [("AUTHORIZATION", "TRANSACTION"), ("TRANSACTION", "CLOSED")]
    assert ("AUTHORIZATION", "TRANSACTION") in rows
    assert ("TRANSACTION", "UPDATE") in rows and ("UPDATE", "CLOSED") in rows
    kinds = [(st.direction, st.kind) for st in run.transcript]
    assert kinds[0] == ("S", "greeting")
    assert ("*", "event") in kinds  # the UPDATE
    retr = [st for st in run.transcript if st.raw.startswith(f"+OK {SIZES[1]} octets".encode())]
    assert retr and retr[0].parsed["complete"] and retr[0].raw.endswith(b".\r\n")


def test_transcript_of_a_huge_retr_is_capped(tmp_path: Path) -> None:
    big = b"Subject: big\n\n" + b"y" * 99 + b"\n" * 1  # small, then make it big below
    big = big * 2000

    run = converse(tmp_path, [b"USER bob\r\nPASS hunter2\r\nRETR 1\r\n"],
                   setup=lambda store: add_message(store, "bob", big, "1.M1P1.test"))
    step = [st for st in run.transcript if st.raw.startswith(b"+OK 2")][-1]
    assert step.parsed["truncated"] and len(step.raw) == 65536
    assert step.parsed["octets"] == len(f"+OK {len(wire(big)[0])} octets\r\n") + len(
        wire(big)[1])


def test_transcript_of_a_small_retr_is_capped_too(tmp_path: Path) -> None:
    text = b"\n" * 60_000  # small on disk (read at once), 120,000 octets on the wire

    run = converse(tmp_path, [b"USER bob\r\nPASS hunter2\r\nRETR 1\r\n"],
                   setup=lambda store: add_message(store, "bob", text, "1.M1P1.test"))
    step = [st for st in run.transcript if st.raw.startswith(b"+OK 120000 octets")][-1]
    assert step.parsed["truncated"] and step.parsed["complete"] and len(step.raw) == 65536
    assert step.parsed["octets"] == len(b"+OK 120000 octets\r\n") + 120_000 + 3


def test_store_snapshot_helper_ignores_locks(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.maildir("alice").lock()
    assert all(".mailproto.lock" not in k for k in snapshot(store))


def test_users_file_with_no_maildir_yet(tmp_path: Path) -> None:
    store = Store(tmp_path, Users.parse("dave:pw\n"))
    s = ServerSession(ServerConfig(), store, token=lambda: "<1@x>")
    s.initiate()
    assert talk(s, b"USER dave\r\nPASS pw\r\nLIST\r\n") == (
        b"+OK Password required for dave\r\n+OK Maildrop has 0 messages (0 bytes)\r\n"
        b"+OK 0 messages (0 octets)\r\n.\r\n")
