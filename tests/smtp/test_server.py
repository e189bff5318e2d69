"""The SMTP core, command by command, with exact reply bytes (RFC 5321 and its extensions).

Every conversation goes through :func:`converse`, which feeds it whole and byte by byte and
insists both give the same replies and the same stored mail.
"""

from __future__ import annotations

import random

import pytest

from mailproto.smtp.server import ServerConfig
from mailproto.smtp.states import State

from ._support import (
    BYE,
    DROP,
    EHLO_REPLY,
    GO_AHEAD,
    GREETING,
    MAIL_OK,
    OK,
    RCPT_OK,
    SHUTDOWN,
    TIMEOUT,
    TLS,
    b64,
    converse,
    envelope,
    envelope_replies,
    lines,
    queued,
    snapshot,
    split_replies,
    trace,
)

BODY = b"Subject: hi\r\n\r\nHello.\r\n"
STORED_BODY = b"Subject: hi\n\nHello.\n"


# -- greeting, HELO, EHLO (RFC 5321 §4.1.1.1, §4.3.1) --------------------------------------------
def test_greeting(tmp_path):
    run = converse(tmp_path)
    assert run.out == b"220 mail.test ESMTP mailproto\r\n"
    assert run.session.state is State.CONNECTED


def test_ehlo_lists_every_extension(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test"))
    assert run.out == GREETING + EHLO_REPLY
    assert run.session.state is State.GREETED


def test_helo_is_a_single_line_250(tmp_path):
    run = converse(tmp_path, lines("HELO client.test"))
    assert run.out == GREETING + b"250 mail.test\r\n"


@pytest.mark.parametrize("config, extra, missing", [
    (ServerConfig(enable_vrfy=True), [b"250-VRFY\r\n"], []),
    (ServerConfig(starttls=True), [b"250-STARTTLS\r\n"], []),
    (ServerConfig(allow_plaintext_auth=False), [b"250-AUTH CRAM-MD5\r\n"],
     [b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n"]),
    (ServerConfig(require_tls_for_auth=True, starttls=True), [b"250-STARTTLS\r\n"],
     [b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n"]),
    (ServerConfig(max_message_size=1234), [b"250-SIZE 1234\r\n"], [b"250-SIZE 10240000\r\n"]),
])
def test_ehlo_follows_the_configuration(tmp_path, config, extra, missing):
    run = converse(tmp_path, lines("EHLO client.test"), config=config)
    assert run.out.startswith(GREETING + b"250-mail.test Hello client.test [127.0.0.1]\r\n")
    assert run.out.endswith(b"250 HELP\r\n")
    for line in extra:
        assert line in run.out
    for line in missing:
        assert line not in run.out


def test_ehlo_exact_with_vrfy_and_starttls(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test"),
                   config=ServerConfig(enable_vrfy=True, starttls=True))
    assert run.out == GREETING + (
        b"250-mail.test Hello client.test [127.0.0.1]\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        b"250-VRFY\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
        b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-STARTTLS\r\n250 HELP\r\n")


def test_ehlo_under_tls_hides_starttls(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test"),
                   config=ServerConfig(starttls=True, require_tls_for_auth=True), tls=True)
    assert run.out == GREETING + EHLO_REPLY


def test_ehlo_shows_the_peer_address(tmp_path):
    run = converse(tmp_path, lines("EHLO [192.0.2.1]"), peer_ip="192.0.2.7")
    assert run.replies[1].startswith(b"250-mail.test Hello [192.0.2.1] [192.0.2.7]\r\n")


@pytest.mark.parametrize("line, reply", [
    ("EHLO", b"501 5.5.4 Syntax: EHLO hostname\r\n"),
    ("HELO", b"501 5.5.4 Syntax: HELO hostname\r\n"),
    ("EHLO two words", b"501 5.5.4 Syntax: EHLO hostname\r\n"),
    (b"EHLO bad\x00name", b"501 5.5.4 Syntax: EHLO hostname\r\n"),
    (b"EHLO \xff\xfe", b"501 5.5.4 Syntax: EHLO hostname\r\n"),  # not UTF-8
    (b"HELO a\x7fb", b"501 5.5.4 Syntax: HELO hostname\r\n"),
])
def test_bad_greeting_is_501_and_state_stays(tmp_path, line, reply):
    run = converse(tmp_path, lines(line, "MAIL FROM:<a@remote.test>"))
    assert run.out == GREETING + reply + b"503 5.5.1 Error: send HELO/EHLO first\r\n"
    assert run.session.state is State.CONNECTED


def test_verbs_and_keywords_are_case_insensitive(tmp_path):
    run = converse(tmp_path, lines("ehlo client.test", "mail from:<sender@remote.test> size=20",
                                   "rcpt to:<ALICE@LOCAL.TEST>", "dAtA"),
                   b"Subject: x\r\n\r\nhi\r\n.\r\n", lines("qUiT"))
    assert run.out == envelope_replies() + queued() + BYE
    assert run.stored() == [trace(rcpt="ALICE@LOCAL.TEST") + b"Subject: x\n\nhi\n"]


# -- a whole transaction --------------------------------------------------------------------------
def test_one_message_stored_byte_for_byte(tmp_path):
    run = converse(tmp_path, envelope(), BODY + b".\r\n", lines("QUIT"))
    assert run.out == envelope_replies() + queued() + BYE
    assert run.stored() == [trace() + STORED_BODY]
    assert run.session.closed and run.session.state is State.CLOSED


def test_everything_pipelined_in_one_write(tmp_path):
    """RFC 2920: one reply per command, in order, whatever the client put in one write."""
    script = (lines("EHLO client.test", "NOOP", "MAIL FROM:<sender@remote.test>",
                    "RCPT TO:<nobody@local.test>", "RCPT TO:<alice@local.test>",
                    "RCPT TO:<bob@local.test>", "DATA")
              + BODY + b".\r\n"
              + lines("MAIL FROM:<>", "RCPT TO:<bob@local.test>", "DATA")
              + b"second\r\n.\r\n" + lines("RSET", "VRFY bob", "QUIT", "NOOP"))
    run = converse(tmp_path, script)
    assert run.replies == [
        GREETING, EHLO_REPLY, OK, MAIL_OK,
        b"550 5.1.1 <nobody@local.test>: Recipient address rejected: User unknown in local "
        b"recipient table\r\n",
        RCPT_OK, RCPT_OK, GO_AHEAD, queued(0), MAIL_OK, RCPT_OK, GO_AHEAD, queued(1), OK,
        b"252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n", BYE,
    ]
    assert run.stored("alice") == [trace(rcpt=None) + STORED_BODY]
    assert sorted(run.stored("bob")) == sorted([
        trace(rcpt=None) + STORED_BODY,
        trace(sender="", qid="E8D4A5100001", rcpt="bob@local.test") + b"second\n"])


def test_helo_session_stores_protocol_smtp(tmp_path):
    run = converse(tmp_path, envelope(ehlo="HELO client.test"), b"x\r\n.\r\n")
    assert run.out == envelope_replies(ehlo=b"250 mail.test\r\n") + queued()
    assert run.stored() == [trace(proto="SMTP") + b"x\n"]


def test_smtputf8_session_stores_protocol_utf8smtp(tmp_path):
    run = converse(tmp_path,
                   lines("EHLO client.test", "MAIL FROM:<jöran@remote.test> SMTPUTF8 BODY=8BITMIME",
                         "RCPT TO:<alice@local.test>", "DATA"),
                   "Subject: grüße\r\n\r\nä\r\n.\r\n".encode())
    assert run.out == envelope_replies() + queued()
    assert run.stored() == [trace(sender="jöran@remote.test", proto="UTF8SMTP")
                            + "Subject: grüße\n\nä\n".encode()]


def test_tls_session_stores_protocol_esmtps(tmp_path):
    run = converse(tmp_path, envelope(), b"x\r\n.\r\n", tls=True,
                   config=ServerConfig(starttls=True))
    assert run.stored() == [trace(proto="ESMTPS") + b"x\n"]


def test_several_messages_in_one_session_get_their_own_ids(tmp_path):
    run = converse(tmp_path, envelope(), b"one\r\n.\r\n",
                   lines("MAIL FROM:<sender@remote.test>", "RCPT TO:<alice@local.test>", "DATA"),
                   b"two\r\n.\r\n")
    assert run.out == envelope_replies() + queued(0) + MAIL_OK + RCPT_OK + GO_AHEAD + queued(1)
    assert run.stored() == [trace() + b"one\n", trace(qid="E8D4A5100001") + b"two\n"]


def test_null_reverse_path(tmp_path):
    run = converse(tmp_path, envelope(""), b"bounce\r\n.\r\n")
    assert run.stored() == [trace(sender="") + b"bounce\n"]
    assert run.stored()[0].startswith(b"Return-Path: <>\nReceived: from client.test ")


# -- RCPT: local users, lists, postmaster, limits, relaying (RFC 5321 §3.3, §4.5.1, §4.5.3.1.8) ---
def test_unknown_local_user_is_550(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test>",
                                   "RCPT TO:<nobody@local.test>", "RCPT TO:<nobody>", "DATA"))
    assert run.replies[3:] == [
        b"550 5.1.1 <nobody@local.test>: Recipient address rejected: User unknown in local "
        b"recipient table\r\n",
        b"550 5.1.1 <nobody>: Recipient address rejected: User unknown in local recipient "
        b"table\r\n",
        b"554 5.5.1 Error: no valid recipients\r\n"]
    assert run.session.state is State.MAIL


@pytest.mark.parametrize("rcpt", ["postmaster", "Postmaster", "postmaster@local.test",
                                  "POSTMASTER@Local.Test", "postmaster@mail.test"])
def test_postmaster_is_always_accepted(tmp_path, rcpt):
    run = converse(tmp_path, envelope("s@remote.test", rcpt), b"hi\r\n.\r\n")
    assert run.out == envelope_replies() + queued()
    assert run.stored("postmaster") == [trace("s@remote.test", rcpt) + b"hi\n"]


def test_user_names_match_case_insensitively_and_land_in_the_canonical_maildir(tmp_path):
    run = converse(tmp_path, envelope("s@remote.test", "carol@local.test"), b"hi\r\n.\r\n")
    assert run.out == envelope_replies() + queued()
    assert run.stored("Carol") == [trace("s@remote.test", "carol@local.test") + b"hi\n"]
    assert not (run.root / "carol").exists()


def test_list_reaches_every_member_once(tmp_path):
    run = converse(tmp_path, envelope("s@remote.test", "staff@local.test", "alice@local.test"),
                   b"hi\r\n.\r\n")
    assert run.out == envelope_replies(2) + queued()
    expected = trace("s@remote.test", None) + b"hi\n"
    assert run.stored("alice") == [expected]
    assert run.stored("bob") == [expected]
    assert not (run.root / ".outbox").exists()


def test_list_with_a_remote_member_queues_it_in_the_outbox(tmp_path):
    run = converse(tmp_path, envelope("s@remote.test", "all@local.test"), b"hi\r\n.\r\n")
    assert run.out == envelope_replies() + queued()
    expected = trace("s@remote.test", "all@local.test") + b"hi\n"
    for box in ("alice", "bob", "Carol"):
        assert run.stored(box) == [expected]
    assert run.stored(".outbox") == [
        b"X-Mailproto-Envelope-From: <s@remote.test>\n"
        b"X-Mailproto-Envelope-To: <dave@remote.test>\n" + expected]


def test_one_hundred_recipients_accepted_then_452(tmp_path):
    """RFC 5321 §4.5.3.1.8: at least 100 RCPTs per message; beyond our limit, 452 (§4.5.3.1.10)."""
    rcpts = [f"RCPT TO:<{('alice', 'bob', 'staff', 'postmaster')[i % 4]}@local.test>"
             for i in range(100)]
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test>", *rcpts,
                                   "RCPT TO:<Carol@local.test>", "DATA"), b"hi\r\n.\r\n")
    assert run.replies[3:] == ([RCPT_OK] * 100
                               + [b"452 4.5.3 Error: too many recipients\r\n", GO_AHEAD, queued()])
    expected = [trace("s@remote.test", None) + b"hi\n"]  # one copy per mailbox
    assert snapshot(run.root) == {"alice": expected, "bob": expected, "postmaster": expected}


@pytest.mark.parametrize("rcpt", [
    "someone@remote.test",
    "alice@remote.test",
    "@local.test:someone@remote.test",  # source route: the final address counts (§4.1.2)
    "someone@[192.0.2.1]",
])
def test_no_open_relay(tmp_path, rcpt):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test>",
                                   f"RCPT TO:<{rcpt}>", "DATA"))
    final = rcpt.rpartition(":")[2] if rcpt.startswith("@") else rcpt
    assert run.replies[3:] == [f"550 5.7.1 <{final}>: Relay access denied\r\n".encode(),
                               b"554 5.5.1 Error: no valid recipients\r\n"]
    assert snapshot(run.root) == {}


@pytest.mark.parametrize("rcpt", ['"alice@remote.test"@local.test', "alice%remote.test@local.test",
                                  "remote.test!alice@local.test"])
def test_relay_tricks_through_a_local_domain_are_unknown_users(tmp_path, rcpt):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test>",
                                   f"RCPT TO:<{rcpt}>"))
    assert run.replies[3].startswith(f"550 5.1.1 <{rcpt}>".encode())


def test_authenticated_client_may_relay_via_the_outbox(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test",
                                   "AUTH PLAIN " + b64("\0alice\0secret"),
                                   "MAIL FROM:<alice@local.test>", "RCPT TO:<dave@remote.test>",
                                   "RCPT TO:<bob@local.test>", "DATA"), b"hi\r\n.\r\n")
    assert run.replies[2:] == [b"235 2.7.0 Authentication successful\r\n", MAIL_OK, RCPT_OK,
                               RCPT_OK, GO_AHEAD, queued()]
    stored = trace("alice@local.test", None, proto="ESMTPA") + b"hi\n"
    assert run.stored("bob") == [stored]
    assert run.stored(".outbox") == [b"X-Mailproto-Envelope-From: <alice@local.test>\n"
                                     b"X-Mailproto-Envelope-To: <dave@remote.test>\n" + stored]


# -- MAIL parameters (RFC 1870, 6152, 6531, 4954 §5) ---------------------------------------------
@pytest.mark.parametrize("mail, reply", [
    ("MAIL FROM:<s@remote.test> SIZE=10240000", MAIL_OK),
    ("MAIL FROM:<s@remote.test> SIZE=10240001",
     b"552 5.3.4 Message size exceeds fixed limit\r\n"),
    ("MAIL FROM:<s@remote.test> SIZE=99999999999999999999999",
     b"501 5.5.4 Bad SIZE parameter\r\n"),
    ("MAIL FROM:<s@remote.test> SIZE=-1", b"501 5.5.4 Bad SIZE parameter\r\n"),
    ("MAIL FROM:<s@remote.test> SIZE=12k", b"501 5.5.4 Bad SIZE parameter\r\n"),
    ("MAIL FROM:<s@remote.test> SIZE", b"501 5.5.4 Bad SIZE parameter\r\n"),
    ("MAIL FROM:<s@remote.test> BODY=8BITMIME", MAIL_OK),
    ("MAIL FROM:<s@remote.test> body=7bit", MAIL_OK),
    ("MAIL FROM:<s@remote.test> BODY=BINARYMIME",
     b"501 5.5.4 Bad BODY parameter (7BIT or 8BITMIME)\r\n"),
    ("MAIL FROM:<s@remote.test> BODY", b"501 5.5.4 Bad BODY parameter (7BIT or 8BITMIME)\r\n"),
    ("MAIL FROM:<s@remote.test> SMTPUTF8", MAIL_OK),
    ("MAIL FROM:<s@remote.test> SMTPUTF8=yes", b"501 5.5.4 SMTPUTF8 takes no value\r\n"),
    ("MAIL FROM:<s@remote.test> AUTH=<>", MAIL_OK),
    ("MAIL FROM:<s@remote.test> FOO=bar", b"555 5.5.4 Unsupported option: FOO\r\n"),
    ("MAIL FROM:<jörg@remote.test>",
     b"553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter\r\n"),
    ("MAIL FROM:<jörg@remote.test> SMTPUTF8", MAIL_OK),
    ("MAIL FROM:s@remote.test", MAIL_OK),  # Postfix-style leniency
    ("MAIL FROM: <s@remote.test>", MAIL_OK),
    ("MAIL FROM:<>", MAIL_OK),
    ("MAIL FROM:<\"odd > name\"@remote.test>", MAIL_OK),
    ("MAIL FROM:<@relay.test:s@remote.test>", MAIL_OK),
    ("MAIL FROM:", b"501 5.1.7 Bad sender address syntax\r\n"),
    ("MAIL FROM:<s@remote.test", b"501 5.1.7 Bad sender address syntax\r\n"),
    ("MAIL FROM:<a b@remote.test>", b"501 5.1.7 Bad sender address syntax\r\n"),
    ("MAIL FROM:<a@b@remote.test>", b"501 5.1.7 Bad sender address syntax\r\n"),
    ("MAIL TO:<s@remote.test>", b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
    ("MAIL", b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
    ("MAIL FROM:<s@remote.test> =x", b"501 5.5.4 Bad parameter syntax\r\n"),
])
def test_mail_from(tmp_path, mail, reply):
    run = converse(tmp_path, lines("EHLO client.test", mail))
    assert run.replies[2:] == [reply]
    assert run.session.state is (State.MAIL if reply == MAIL_OK else State.GREETED)


def test_mail_parameters_need_ehlo(tmp_path):
    run = converse(tmp_path, lines("HELO client.test", "MAIL FROM:<s@remote.test> SIZE=10",
                                   "MAIL FROM:<s@remote.test>"))
    assert run.replies[2:] == [b"555 5.5.4 Unsupported option: SIZE\r\n", MAIL_OK]


@pytest.mark.parametrize("rcpt, reply", [
    ("RCPT TO:<alice@local.test>", RCPT_OK),
    ("RCPT TO:alice@local.test", RCPT_OK),
    ("RCPT TO:<alice@LOCAL.TEST.>", RCPT_OK),
    ("RCPT TO:<alice@mail.test>", RCPT_OK),
    ("RCPT TO:<alice>", RCPT_OK),
    ("RCPT TO:<>", b"501 5.1.3 Bad recipient address syntax\r\n"),
    ("RCPT TO:<alice@local.test> NOTIFY=NEVER", b"555 5.5.4 Unsupported option: NOTIFY\r\n"),
    ("RCPT FROM:<alice@local.test>", b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
    ("RCPT TO:<al ice@local.test>", b"501 5.1.3 Bad recipient address syntax\r\n"),
    ("RCPT TO:<ålice@local.test>", b"553 5.6.7 Non-ASCII address needs SMTPUTF8 in MAIL\r\n"),
])
def test_rcpt_to(tmp_path, rcpt, reply):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test>", rcpt))
    assert run.replies[3:] == [reply]


# -- the other commands (RFC 5321 §4.1.1.5-§4.1.1.10) ---------------------------------------------
def test_rset_noop_quit(tmp_path):
    run = converse(tmp_path, lines("RSET", "NOOP", "NOOP with an argument", "EHLO client.test",
                                   "MAIL FROM:<s@remote.test>", "RSET", "RCPT TO:<alice>",
                                   "RSET now", "QUIT"), lines("NOOP"))
    assert run.out == (GREETING + OK + OK + OK + EHLO_REPLY + MAIL_OK + OK
                       + b"503 5.5.1 Error: need MAIL command\r\n"
                       + b"501 5.5.4 Syntax: RSET\r\n" + BYE)
    assert run.session.closed


def test_new_ehlo_aborts_the_transaction(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test>",
                                   "RCPT TO:<alice>", "EHLO again.test", "DATA"))
    assert run.replies[-1] == b"503 5.5.1 Error: need MAIL command\r\n"
    assert run.session.state is State.GREETED


def test_help(tmp_path):
    run = converse(tmp_path, lines("HELP", "help mail", "HELP bogus"))
    assert run.out == GREETING + (
        b"214-2.0.0 This is mailproto, a teaching mail server. Commands:\r\n"
        b"214-2.0.0 HELO EHLO MAIL RCPT DATA RSET VRFY EXPN HELP NOOP QUIT AUTH STARTTLS\r\n"
        b"214 2.0.0 HELP <command> explains one. End of HELP\r\n"
        b"214 2.0.0 MAIL FROM:<sender> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8] (RFC 5321 4.1.1.2)\r\n"
        b"504 5.5.1 HELP topic unknown: BOGUS\r\n")


def test_vrfy_and_expn_are_off_by_default(tmp_path):
    run = converse(tmp_path, lines("VRFY alice", "EXPN staff", "EXPN", "VRFY"))
    assert run.out == GREETING + (
        b"252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
        b"502 5.5.1 EXPN command is disabled\r\n"
        b"502 5.5.1 EXPN command is disabled\r\n"
        b"501 5.5.4 Syntax: VRFY address\r\n")


def test_vrfy_and_expn_when_enabled(tmp_path):
    run = converse(tmp_path, lines("VRFY alice", "VRFY <BOB@local.test>", "VRFY staff",
                                   "VRFY nobody", "VRFY postmaster", "VRFY x@remote.test",
                                   "EXPN staff", "EXPN <all@local.test>", "EXPN alice",
                                   "EXPN nope", "EXPN"),
                   config=ServerConfig(enable_vrfy=True))
    assert run.out == GREETING + (
        b"250 2.1.5 <alice@local.test>\r\n"
        b"250 2.1.5 <bob@local.test>\r\n"
        b"550 5.1.1 That is a mailing list, not a user (try EXPN)\r\n"
        b"550 5.1.1 <nobody>: User unknown\r\n"
        b"250 2.1.5 <postmaster@local.test>\r\n"
        b"252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
        b"250-2.1.5 <alice@local.test>\r\n250 2.1.5 <bob@local.test>\r\n"
        b"250-2.1.5 <alice@local.test>\r\n250-2.1.5 <bob@local.test>\r\n"
        b"250-2.1.5 <Carol@local.test>\r\n250 2.1.5 <dave@remote.test>\r\n"
        b"550 5.1.1 That is a user name, not a mailing list\r\n"
        b"550 5.1.1 <nope>: No such list\r\n"
        b"501 5.5.4 Syntax: EXPN list\r\n")


@pytest.mark.parametrize("line, reply", [
    ("FOO", b"500 5.5.2 Error: command not recognized\r\n"),
    ("", b"500 5.5.2 Error: bad syntax\r\n"),
    ("   ", b"500 5.5.2 Error: bad syntax\r\n"),
    ("MAIL1 FROM:<a>", b"500 5.5.2 Error: command not recognized\r\n"),
    ("_GREET x", b"500 5.5.2 Error: command not recognized\r\n"),
    ("TURN", b"500 5.5.2 Error: command not recognized\r\n"),
    ("DATA now", b"503 5.5.1 Error: need MAIL command\r\n"),
])
def test_unknown_or_malformed_commands(tmp_path, line, reply):
    run = converse(tmp_path, lines("EHLO client.test", line, "NOOP"))
    assert run.replies[2:] == [reply, OK]


def test_data_with_an_argument_is_501(tmp_path):
    run = converse(tmp_path, envelope()[: -len(b"DATA\r\n")] + lines("DATA x", "DATA"))
    assert run.replies[-2:] == [b"501 5.5.4 Syntax: DATA\r\n", GO_AHEAD]


@pytest.mark.parametrize("before, line, reply", [
    ([], "MAIL FROM:<a@remote.test>", b"503 5.5.1 Error: send HELO/EHLO first\r\n"),
    ([], "RCPT TO:<alice>", b"503 5.5.1 Error: send HELO/EHLO first\r\n"),
    ([], "DATA", b"503 5.5.1 Error: send HELO/EHLO first\r\n"),
    ([], "STARTTLS", b"503 5.5.1 Error: send HELO/EHLO first\r\n"),
    (["EHLO c.test"], "RCPT TO:<alice>", b"503 5.5.1 Error: need MAIL command\r\n"),
    (["EHLO c.test"], "DATA", b"503 5.5.1 Error: need MAIL command\r\n"),
    (["EHLO c.test", "MAIL FROM:<>"], "MAIL FROM:<>", b"503 5.5.1 Error: nested MAIL command\r\n"),
    (["EHLO c.test", "MAIL FROM:<>"], "DATA", b"503 5.5.1 Error: need RCPT command\r\n"),
    (["EHLO c.test", "MAIL FROM:<>", "RCPT TO:<alice>"], "MAIL FROM:<>",
     b"503 5.5.1 Error: nested MAIL command\r\n"),
])
def test_bad_sequence_is_503_and_state_stays(tmp_path, before, line, reply):
    run = converse(tmp_path, lines(*before, line))
    assert run.replies[-1] == reply
    state_before = converse(tmp_path / "ref", lines(*before)).session.state
    assert run.session.state is state_before


# -- line length limits (RFC 5321 §4.5.3.1.4) -----------------------------------------------------
def test_512_octet_command_line_is_accepted(tmp_path):
    line = "NOOP " + "x" * (512 - len("NOOP ") - 2)
    assert len(line) + 2 == 512
    rcpt = "RCPT TO:<alice@local.test> " + " " * (512 - 29)
    run = converse(tmp_path, lines(line, "EHLO " + "h" * 505, "MAIL FROM:<s@remote.test>", rcpt))
    assert run.replies[1] == OK
    first = run.replies[2].split(b"\r\n")[0]
    # the echo of a long name is cut: a reply line is at most 512 octets (§4.5.3.1.5)
    assert first == b"250-mail.test Hello " + b"h" * (510 - len(b"250-mail.test Hello "))
    assert run.replies[2].endswith(b"250 HELP\r\n")
    assert run.replies[3:] == [MAIL_OK, RCPT_OK]


@pytest.mark.parametrize("size", [4096, 70_000])
def test_overlong_command_line_gets_one_500_and_stays_in_sync(tmp_path, size):
    run = converse(tmp_path, lines("EHLO client.test", "NOOP " + "x" * size, "NOOP",
                                   "MAIL FROM:<s@remote.test>"))
    assert run.replies[2:] == [b"500 5.5.2 Error: line too long\r\n", OK, MAIL_OK]


def test_bare_lf_ends_a_command_line(tmp_path):
    run = converse(tmp_path, b"EHLO client.test\nNOOP\nQUIT\n")
    assert run.out == GREETING + EHLO_REPLY + OK + BYE


# -- hostile input never raises, never breaks the reply framing ----------------------------------
@pytest.mark.parametrize("line", [
    b"HELP \xff\xfe", b"HELP a\rb", b"HELP \x00", b"VRFY \xff", b"EXPN \xc3(",
    b"MAIL FROM:<a@b> X\xff=1", b"MAIL FROM:<a\xff@b>", b"RCPT TO:<\xffx@local.test>",
    b"MAIL FROM:<a@b> SIZE=\xff", b"AUTH \xff", b"AUTH PLAIN \xff", b"\xff\xff\xff",
    b"EHLO \xed\xa0\x80", b"MAIL FROM:<\"a\x00\"@b>", b"\x00\x00\r\x00",
    b"RCPT TO:<" + b"a" * 1500 + b"@local.test>", b"VRFY " + "\u00e9".encode() * 900,
    b"MAIL FROM:<a@b> " + b"X" * 1800 + b"=1",
])
@pytest.mark.parametrize("vrfy", [False, True])
def test_hostile_bytes_get_a_well_formed_reply(tmp_path, line, vrfy):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<s@remote.test>") + line
                   + b"\r\n" + lines("NOOP"), config=ServerConfig(enable_vrfy=vrfy))
    replies = run.replies
    assert len(replies) == 5, replies  # greeting, EHLO, MAIL, the hostile line, NOOP
    assert replies[-1] == OK or replies[-1].startswith(b"5")  # in AUTH, NOOP is a response
    for reply in replies:
        reply.decode("utf-8")  # well-formed UTF-8, no raw byte echoed
        for reply_line in reply.split(b"\r\n")[:-1]:
            assert b"\r" not in reply_line and b"\n" not in reply_line and b"\0" not in reply_line
            assert len(reply_line) + 2 <= 512


def test_random_garbage_never_raises(tmp_path):
    rng = random.Random(1234)
    alphabet = [b"\r", b"\n", b".", b" ", b"\0", b"\xff", b":", b"<", b">", b"@", b"=", b"A",
                b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<alice>\r\n", b"DATA\r\n",
                b"AUTH LOGIN\r\n", b"\r\n.\r\n", b"STARTTLS\r\n", b"RSET\r\n", b"HELP\r\n",
                b"AUTH PLAIN\r\n", b"AUTH CRAM-MD5\r\n", b"*\r\n", b"=\r\n", b"YWxpY2U=\r\n",
                b"VRFY ", b"EXPN ", b"HELP ", b"SIZE=", b" SMTPUTF8", b"\xc3\xa9", b"\xed\xa0\x80",
                b"MAIL FROM:<>", b"RCPT TO:<staff>", b"QUIT\r\n"]
    for i in range(60):
        script = b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        config = ServerConfig(starttls=True, enable_vrfy=bool(i % 2), max_message_size=300)
        run = converse(tmp_path / str(i), script, config=config)
        for reply in split_replies(run.out):
            assert reply[:3].isdigit() and reply.endswith(b"\r\n")
            reply.decode("utf-8")


def test_too_many_errors_421_and_close(tmp_path):
    run = converse(tmp_path, lines(*["FOO"] * 25))
    replies = run.replies
    assert replies[1:] == ([b"500 5.5.2 Error: command not recognized\r\n"] * 20
                           + [b"421 4.7.0 mail.test Error: too many errors\r\n"])
    assert run.session.closed and run.session.state is State.CLOSED
    assert run.session.receive(b"NOOP\r\n") == b""


# -- timeouts, shutdown, dropped connections ------------------------------------------------------
@pytest.mark.parametrize("prefix", [b"", lines("EHLO client.test"), envelope() + b"partial\r\n",
                                    lines("EHLO client.test", "AUTH LOGIN")])
def test_idle_timeout_421_and_close(tmp_path, prefix):
    run = converse(tmp_path, prefix, TIMEOUT, b"NOOP\r\n")
    assert run.out.endswith(b"421 4.4.2 mail.test Error: timeout exceeded\r\n")
    assert run.session.closed and run.session.state is State.CLOSED
    assert snapshot(run.root) == {}


def test_shutdown_421(tmp_path):
    run = converse(tmp_path, envelope(), b"half a message\r\n", SHUTDOWN)
    assert run.out == envelope_replies() + b"421 4.3.2 mail.test Service shutting down\r\n"
    assert run.session.closed
    assert snapshot(run.root) == {}


@pytest.mark.parametrize("tail", [b"", b"Subject: x\r\n\r\nbody\r\n", b"body\r\n.", b"body\r\n.\r"])
def test_client_dropping_mid_data_delivers_nothing(tmp_path, tail):
    run = converse(tmp_path, envelope(), tail, DROP)
    assert run.out == envelope_replies()
    assert run.session.closed and run.session.state is State.CLOSED
    assert snapshot(run.root) == {}
    assert list((run.root / ".spool").iterdir()) == []


def test_quit_ignores_what_follows(tmp_path):
    run = converse(tmp_path, lines("QUIT", "NOOP", "EHLO x"))
    assert run.out == GREETING + BYE


# -- STARTTLS in the core (RFC 3207) --------------------------------------------------------------
def test_starttls_discards_pipelined_bytes_and_forgets_everything(tmp_path):
    """CVE-2011-0411: commands sent in the clear after STARTTLS must not be executed."""
    run = converse(tmp_path,
                   lines("EHLO client.test", "STARTTLS", "MAIL FROM:<evil@remote.test>",
                         "RCPT TO:<alice>", "DATA") + b"injected\r\n.\r\n",
                   b"NOOP\r\n",  # before the handshake: still discarded
                   TLS, lines("MAIL FROM:<s@remote.test>", "EHLO client.test"),
                   config=ServerConfig(starttls=True))
    assert run.out == (GREETING + EHLO_REPLY.replace(b"250 HELP", b"250-STARTTLS\r\n250 HELP")
                       + b"220 2.0.0 Ready to start TLS\r\n"
                       + b"503 5.5.1 Error: send HELO/EHLO first\r\n" + EHLO_REPLY)
    assert run.session.tls and run.session.state is State.GREETED
    assert snapshot(run.root) == {}


@pytest.mark.parametrize("config, tls, line, reply", [
    (ServerConfig(), False, "STARTTLS", b"502 5.5.1 Error: command not implemented\r\n"),
    (ServerConfig(starttls=True), True, "STARTTLS", b"554 5.5.1 Error: TLS already active\r\n"),
    (ServerConfig(starttls=True), False, "STARTTLS now", b"501 5.5.4 Syntax: STARTTLS\r\n"),
])
def test_starttls_refusals(tmp_path, config, tls, line, reply):
    run = converse(tmp_path, lines("EHLO client.test", line, "NOOP"), config=config, tls=tls)
    assert run.replies[2:] == [reply, OK]
    assert not run.session.tls_requested


def test_starttls_during_a_transaction_is_503(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test", "MAIL FROM:<>", "STARTTLS"),
                   config=ServerConfig(starttls=True))
    assert run.replies[-1] == b"503 5.5.1 Error: STARTTLS not allowed during a mail transaction\r\n"


def test_auth_after_starttls_is_esmtpsa(tmp_path):
    run = converse(tmp_path, lines("EHLO client.test", "STARTTLS"), TLS,
                   lines("EHLO client.test", "AUTH PLAIN " + b64("\0alice\0secret"),
                         "MAIL FROM:<alice@local.test>", "RCPT TO:<bob@local.test>", "DATA"),
                   b"x\r\n.\r\n",
                   config=ServerConfig(starttls=True, require_tls_for_auth=True))
    assert b"250-AUTH" not in run.out.split(b"220 2.0.0 Ready to start TLS\r\n")[0]
    assert run.replies[-5:] == [b"235 2.7.0 Authentication successful\r\n", MAIL_OK, RCPT_OK,
                                GO_AHEAD, queued()]
    assert run.stored("bob") == [trace("alice@local.test", "bob@local.test", proto="ESMTPSA")
                                 + b"x\n"]


# -- the transcript hook --------------------------------------------------------------------------
def test_steps_record_every_line_with_states(tmp_path):
    from mailproto.smtp.server import ServerSession
    from mailproto.store import Store, Users

    steps = []
    session = ServerSession(ServerConfig(), Store(tmp_path, Users.parse("alice:x\n")),
                            clock=lambda: 0.0, on_step=lambda *a: steps.append(a))
    session.initiate()
    session.receive(lines("EHLO c.test", "MAIL FROM:<>", "RCPT TO:<alice>", "DATA")
                    + b"hi\r\n.\r\n" + lines("QUIT"))
    kinds = [(s[0], s[1], s[4], s[5]) for s in steps]
    assert kinds == [
        ("S", "greeting", "CONNECTED", "CONNECTED"),
        ("C", "command", "CONNECTED", "CONNECTED"), ("S", "reply", "CONNECTED", "GREETED"),
        ("C", "command", "GREETED", "GREETED"), ("S", "reply", "GREETED", "MAIL"),
        ("C", "command", "MAIL", "MAIL"), ("S", "reply", "MAIL", "RCPT"),
        ("C", "command", "RCPT", "RCPT"), ("S", "reply", "RCPT", "DATA"),
        ("C", "data", "DATA", "DATA"), ("S", "reply", "DATA", "GREETED"),
        ("C", "command", "GREETED", "GREETED"), ("S", "reply", "GREETED", "CLOSED"),
    ]
    assert steps[9][2] == b"hi\r\n.\r\n"
    assert [s[2] for s in steps if s[0] == "C" and s[1] == "command"][0] == b"EHLO c.test\r\n"
