"""The SMTP client core at byte level, and paired in memory with the server core."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mailproto.errors import LocalProtocolError, RemoteProtocolError
from mailproto.smtp.client import (
    ClientSession,
    ReplyReader,
    auth_steps,
    format_command,
    format_data,
    parse_ehlo,
)
from mailproto.smtp.server import ServerConfig, ServerSession
from mailproto.smtp.states import State
from mailproto.smtp.wire import Reply
from mailproto.store import Store, Users
from mailproto.transcript import Recorder

EHLO_REPLY = (b"250-mail.test Hello me\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
              b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-STARTTLS\r\n250 HELP\r\n")
#: RFC 2195 §2's example.
RFC2195_CHALLENGE = "<1896.697170952@postoffice.reston.mci.net>"
RFC2195_RESPONSE = "tim b913a602c7eda7a495b4e6e7334d3890"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def greeted(steps: list | None = None) -> ClientSession:
    """A client that has read the greeting and a 250 to EHLO."""
    client = ClientSession(on_step=(lambda *a: steps.append(a)) if steps is not None else None)
    client.receive(b"220 mail.test ESMTP\r\n")
    client.send_command("EHLO", "me.test")
    client.receive(EHLO_REPLY)
    return client


# -- replies ---------------------------------------------------------------------------------
def test_single_and_multi_line_replies() -> None:
    reader = ReplyReader()
    got = reader.feed(b"250 2.0.0 Ok\r\n" + EHLO_REPLY)
    assert [r for r, _ in got] == [
        Reply(250, ("2.0.0 Ok",)),
        Reply(250, ("mail.test Hello me", "PIPELINING", "SIZE 10240000",
                    "AUTH PLAIN LOGIN CRAM-MD5", "STARTTLS", "HELP")),
    ]
    assert got[1][1] == EHLO_REPLY  # the raw block, every byte


def test_reply_fed_one_byte_at_a_time() -> None:
    reader = ReplyReader()
    data = b"220 hi\r\n" + EHLO_REPLY + b"354 go ahead\r\n"
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i : i + 1])
        if i < 7:
            assert got == []
    assert [r.code for r, _ in got] == [220, 250, 354]
    assert b"".join(raw for _, raw in got) == data


def test_continuation_waits_for_the_last_line() -> None:
    reader = ReplyReader()
    assert reader.feed(b"250-first\r\n250-second\r\n") == []
    assert reader.feed(b"250 ") == []
    [(reply, _)] = reader.feed(b"last\r\n")
    assert reply.lines == ("first", "second", "last")


@pytest.mark.parametrize("data, lines", [
    (b"250\r\n", ("",)),  # no text at all (RFC 5321 §4.2: textstring is optional)
    (b"334 \r\n", ("",)),  # an empty SASL challenge
    (b"250 ok\n", ("ok",)),  # bare LF, as hand-typed servers send
    (b"250-\r\n250 x\r\n", ("", "x")),
])
def test_reply_edge_forms(data: bytes, lines: tuple[str, ...]) -> None:
    [(reply, raw)] = ReplyReader().feed(data)
    assert reply.lines == lines and raw == data


@pytest.mark.parametrize("data", [b"hello\r\n", b"25 x\r\n", b"250x\r\n", b"650 x\r\n",
                                  b"250-a\r\n251 b\r\n"])
def test_broken_replies_are_remote_errors(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        ReplyReader().feed(data)


def test_endless_reply_line_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        ReplyReader().feed(b"250 " + b"x" * 70000)


def test_reply_round_trips_through_the_servers_formatter() -> None:
    reply = Reply(250, ("mail.test", "SIZE 1000", "HELP"))
    [(got, raw)] = ReplyReader().feed(reply.to_bytes())
    assert got == reply and raw == reply.to_bytes()


# -- commands --------------------------------------------------------------------------------
def test_format_command() -> None:
    assert format_command("ehlo", "me.test") == b"EHLO me.test\r\n"
    assert format_command("DATA") == b"DATA\r\n"
    assert format_command("MAIL", "FROM:<j\u00f6rg@b.test> SMTPUTF8") == \
        "MAIL FROM:<j\u00f6rg@b.test> SMTPUTF8\r\n".encode()


@pytest.mark.parametrize("arg", ["TO:<a@b>\r\nRCPT TO:<c@d>", "x\ny", "x\ry", "x\0y"])
def test_cr_lf_nul_in_arguments_are_refused(arg: str) -> None:
    client = greeted()
    with pytest.raises(LocalProtocolError):
        client.send_command("RCPT", arg)
    with pytest.raises(LocalProtocolError):
        format_command("MAIL", arg)
    assert client.awaiting == 0  # nothing was recorded as sent


@pytest.mark.parametrize("verb", ["", "MAIL FROM:", "NO\r\nOP", "D\u00c4TA"])
def test_bad_verbs_are_refused(verb: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_command(verb)


# -- message data ----------------------------------------------------------------------------
@pytest.mark.parametrize("message, wire", [
    (b"a\nb\n", b"a\r\nb\r\n.\r\n"),  # LF → CRLF
    (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),  # CRLF stays
    (b"a\rb\r\n", b"a\r\nb\r\n.\r\n"),  # a bare CR too (RFC 5321 §2.3.8)
    (b"a\r\n\nb", b"a\r\n\r\nb\r\n.\r\n"),  # mixed, no final newline: one is added
    (b"no newline", b"no newline\r\n.\r\n"),
    (b"", b"\r\n.\r\n"),
    (b"x\n.\ny\n", b"x\r\n..\r\ny\r\n.\r\n"),  # a line that is just "."
    (b".\n", b"..\r\n.\r\n"),
    (b"..two\n...three\n", b"...two\r\n....three\r\n.\r\n"),  # lines starting with ".."
    (b".start", b"..start\r\n.\r\n"),
    (b"a.b\n .c\n", b"a.b\r\n .c\r\n.\r\n"),  # only a dot at the start of a line is stuffed
    (b"x\r\n.\r\n", b"x\r\n..\r\n.\r\n"),  # a smuggled end-of-data stays content
])
def test_format_data(message: bytes, wire: bytes) -> None:
    assert format_data(message) == wire


def test_no_data_before_354() -> None:
    client = greeted()
    with pytest.raises(LocalProtocolError):
        client.send_data(b"too early")
    client.send_command("DATA")
    with pytest.raises(LocalProtocolError):  # the reply is not in yet
        client.send_data(b"still too early")
    client.receive(b"503 5.5.1 Error: need MAIL command\r\n")
    assert client.state is State.GREETED
    with pytest.raises(LocalProtocolError):
        client.send_data(b"refused")


def test_data_after_354_then_back_to_greeted() -> None:
    client = greeted()
    client.state = State.RCPT  # as if MAIL and RCPT had succeeded
    client.send_command("DATA")
    client.receive(b"354 go ahead\r\n")
    assert client.state is State.DATA
    with pytest.raises(LocalProtocolError):
        client.send_command("NOOP")  # a command here would be message text
    assert client.send_data(b"hi") == b"hi\r\n.\r\n"
    client.receive(b"554 5.7.1 no thanks\r\n")  # any reply ends DATA (RFC 5321 §4.1.1.4)
    assert client.state is State.GREETED


# -- EHLO and state ----------------------------------------------------------------------------
def test_ehlo_extensions() -> None:
    client = greeted()
    assert client.state is State.GREETED and client.esmtp
    assert client.extensions == {"PIPELINING": "", "SIZE": "10240000",
                                 "AUTH": "PLAIN LOGIN CRAM-MD5", "STARTTLS": "", "HELP": ""}
    assert client.auth_mechanisms == ["PLAIN", "LOGIN", "CRAM-MD5"]
    assert client.has_extn("starttls")


def test_parse_ehlo_old_auth_form() -> None:
    reply = Reply(250, ("mx", "AUTH=LOGIN PLAIN", "AUTH LOGIN PLAIN CRAM-MD5", "8bitmime"))
    assert parse_ehlo(reply) == {"AUTH": "LOGIN PLAIN CRAM-MD5", "8BITMIME": ""}


def test_helo_knows_no_extensions() -> None:
    client = greeted()
    client.send_command("HELO", "me.test")
    client.receive(b"250 mail.test\r\n")
    assert client.extensions == {} and not client.esmtp and client.state is State.GREETED


def test_starttls_forgets_extensions() -> None:
    steps: list = []
    client = greeted(steps)
    client.send_command("STARTTLS")
    client.receive(b"220 2.0.0 Ready to start TLS\r\n")
    assert client.state is State.CONNECTED and client.tls_requested
    assert client.extensions == {} and not client.esmtp
    with pytest.raises(LocalProtocolError):
        client.send_command("EHLO", "me.test")  # not before the handshake
    client.tls_started()
    assert client.tls and not client.tls_requested
    assert steps[-1][:2] == ("*", "event")
    client.send_command("EHLO", "me.test")
    client.receive(b"250-mail.test\r\n250 AUTH PLAIN\r\n")
    assert client.extensions == {"AUTH": "PLAIN"}


def test_refused_starttls_changes_nothing() -> None:
    client = greeted()
    client.send_command("STARTTLS")
    client.receive(b"454 4.7.0 TLS not available\r\n")
    assert client.state is State.GREETED and not client.tls_requested
    assert "AUTH" in client.extensions


@pytest.mark.parametrize("verb, arg, code, state", [
    ("MAIL", "FROM:<a@b.test>", 250, State.MAIL),
    ("MAIL", "FROM:<a@b.test>", 550, State.GREETED),
    ("RCPT", "TO:<a@b.test>", 250, State.GREETED),  # 250 but the table has no such row
    ("NOOP", "", 250, State.GREETED),
    ("RSET", "", 250, State.GREETED),
    ("QUIT", "", 221, State.CLOSED),
    ("NOOP", "", 421, State.CLOSED),
    ("AUTH", "PLAIN", 334, State.AUTH),
    ("AUTH", "PLAIN AHRpbQB4", 235, State.GREETED),  # base64 of NUL tim NUL x
    ("AUTH", "PLAIN", 504, State.GREETED),
])
def test_state_from_reply_code(verb: str, arg: str, code: int, state: State) -> None:
    client = greeted()
    client.send_command(verb, arg)
    client.receive(f"{code} text\r\n".encode())
    assert client.state is state
    assert client.closed == (state is State.CLOSED)


def test_sending_is_refused_before_the_greeting_and_after_close() -> None:
    client = ClientSession()
    with pytest.raises(LocalProtocolError):
        client.send_command("EHLO", "me.test")
    client.receive(b"421 4.3.2 busy\r\n")
    assert client.closed and client.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        client.send_command("QUIT")


def test_unsolicited_421_closes() -> None:
    steps: list = []
    client = greeted(steps)
    client.send_command("NOOP")
    client.receive(b"250 ok\r\n421 4.4.2 timeout exceeded\r\n")
    assert client.closed and client.state is State.CLOSED
    assert steps[-1][3] == {"code": 421, "lines": ["4.4.2 timeout exceeded"],
                            "unsolicited": True}


# -- AUTH ------------------------------------------------------------------------------------
def test_auth_steps_plain() -> None:
    steps = auth_steps("plain", "tim", "tanstaaftanstaaf")
    assert next(steps) == "PLAIN " + b64("\0tim\0tanstaaftanstaaf")
    late = auth_steps("PLAIN", "tim", "tanstaaftanstaaf", initial_response=False)
    assert next(late) == "PLAIN"
    assert late.send("") == b64("\0tim\0tanstaaftanstaaf")


def test_auth_steps_login() -> None:
    steps = auth_steps("LOGIN", "tim", "tanstaaftanstaaf")
    assert next(steps) == "LOGIN"
    assert steps.send(b64("Username:")) == b64("tim")
    assert steps.send(b64("Password:")) == b64("tanstaaftanstaaf")
    with pytest.raises(StopIteration):
        steps.send(b64("More?"))


def test_auth_steps_cram_md5_rfc2195_example() -> None:
    steps = auth_steps("CRAM-MD5", "tim", "tanstaaftanstaaf")
    assert next(steps) == "CRAM-MD5"
    assert steps.send(b64(RFC2195_CHALLENGE)) == b64(RFC2195_RESPONSE)


def test_auth_steps_refuse_unknown_mechanisms_and_nul() -> None:
    with pytest.raises(LocalProtocolError):
        next(auth_steps("GSSAPI", "tim", "x"))
    with pytest.raises(LocalProtocolError):
        next(auth_steps("PLAIN", "tim\0admin", "x"))


def test_cram_md5_on_the_wire() -> None:
    steps: list = []
    client = greeted(steps)
    sasl = auth_steps("CRAM-MD5", "tim", "tanstaaftanstaaf")
    assert client.send_command("AUTH", next(sasl)) == b"AUTH CRAM-MD5\r\n"
    [challenge] = client.receive(f"334 {b64(RFC2195_CHALLENGE)}\r\n".encode())
    assert client.state is State.AUTH
    with pytest.raises(LocalProtocolError):
        client.send_command("NOOP")  # here a line is a SASL response
    raw = client.send_auth_response(sasl.send(challenge.lines[0]))
    assert raw == (b64(RFC2195_RESPONSE) + "\r\n").encode()
    client.receive(b"235 2.7.0 Authentication successful\r\n")
    assert client.state is State.GREETED
    assert [s[1] for s in steps[-4:]] == ["command", "reply", "auth", "reply"]
    assert [(s[4], s[5]) for s in steps[-4:]] == [
        ("GREETED", "GREETED"), ("GREETED", "AUTH"), ("AUTH", "AUTH"), ("AUTH", "GREETED")]


def test_sasl_response_refuses_injection() -> None:
    client = greeted()
    client.send_command("AUTH", "LOGIN")
    client.receive(b"334 VXNlcm5hbWU6\r\n")
    with pytest.raises(LocalProtocolError):
        client.send_auth_response("dGlt\r\nQUIT")


# -- raw lines -------------------------------------------------------------------------------
def test_raw_lines_are_never_refused() -> None:
    client = greeted()
    assert client.send_raw(b"rcpt to:<a@b>\r\nQUIT") == b"rcpt to:<a@b>\r\nQUIT\r\n"
    assert client.awaiting == 2
    assert client.send_raw(b"x\0y") == b"x\0y\r\n"
    assert client.send_raw(b"bare lf\n") == b"bare lf\n"  # a line end is kept as given


def test_raw_data_lines_end_only_at_crlf_dot_crlf() -> None:
    client = greeted()
    client.state = State.RCPT
    client.send_raw(b"DATA")
    client.receive(b"354 go\r\n")
    client.send_raw(b"x\n.\n")  # bare-LF "." is content (SMTP smuggling)
    assert client.awaiting == 0
    client.send_raw(b".")  # after a bare LF a "." line does not end it either
    assert client.awaiting == 0
    client.send_raw(b".")
    assert client.awaiting == 1
    client.receive(b"250 queued\r\n")
    assert client.state is State.GREETED


# -- paired with the server core, in memory -------------------------------------------------
class Pair:
    """Our client core wired to our server core; both record, and after every exchange the
    client's idea of the state must be the server's."""

    def __init__(self, tmp_path: Path, **config: object) -> None:
        self.server_log = Recorder("smtp", lambda: 0.0)
        self.client_log = Recorder("smtp", lambda: 0.0)
        users = Users.parse("alice:secret\ntim:tanstaaftanstaaf\n")
        self.store = Store(tmp_path, users)
        self.server = ServerSession(ServerConfig(**config), self.store,
                                    on_step=self.server_log, clock=lambda: 1_000_000.0,
                                    token=lambda: RFC2195_CHALLENGE)
        self.client = ClientSession(on_step=self.client_log)
        self.client.receive(self.server.initiate())

    def exchange(self, data: bytes) -> list[Reply]:
        replies = self.client.receive(self.server.receive(data))
        assert self.client.state is self.server.state
        return replies

    def cmd(self, verb: str, arg: str = "") -> Reply:
        [reply] = self.exchange(self.client.send_command(verb, arg))
        return reply

    def auth(self, mech: str, user: str, password: str) -> Reply:
        sasl = auth_steps(mech, user, password)
        reply = self.cmd("AUTH", next(sasl))
        while reply.code == 334:
            [reply] = self.exchange(self.client.send_auth_response(sasl.send(reply.lines[0])))
        return reply

    def steps(self, log: Recorder) -> list[tuple]:
        return [(s.direction, s.kind, s.raw, s.parsed, s.state_before, s.state_after)
                for s in log.transcript]

    def assert_same_transcripts(self) -> None:
        assert self.steps(self.client_log) == self.steps(self.server_log)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_whole_session_tracks_the_server_step_by_step(tmp_path: Path, mech: str) -> None:
    pair = Pair(tmp_path, starttls=True)
    assert pair.cmd("MAIL", "FROM:<a@b.test>").code == 503  # before EHLO
    assert pair.cmd("EHLO", "me.test").code == 250
    assert pair.cmd("STARTTLS").code == 220
    pair.server.tls_started()
    pair.client.tls_started()
    assert pair.cmd("EHLO", "me.test").code == 250
    assert "STARTTLS" not in pair.client.extensions
    assert pair.auth(mech, "tim", "wrong").code == 535
    assert pair.auth(mech, "tim", "tanstaaftanstaaf").code == 235
    assert pair.cmd("DATA").code == 503
    assert pair.cmd("MAIL", "FROM:<a@b.test>").code == 250
    assert pair.cmd("RCPT", "TO:<nobody@local.test>").code == 550
    assert pair.cmd("RCPT", "TO:<alice@local.test>").code == 250
    assert pair.cmd("NOOP").code == 250
    assert pair.cmd("DATA").code == 354
    message = b"Subject: dots\n\n.\n..\n.x\r\nlast line"
    [reply] = pair.exchange(pair.client.send_data(message))
    assert reply.code == 250
    assert pair.cmd("HELP").code == 214
    assert pair.cmd("MAIL", "FROM:<>").code == 250
    assert pair.cmd("RSET").code == 250
    assert pair.cmd("QUIT").code == 221
    assert pair.client.closed and pair.server.closed
    pair.assert_same_transcripts()
    [path] = pair.store.maildir("alice").message_paths()
    assert path.read_bytes().endswith(b"\nSubject: dots\n\n.\n..\n.x\nlast line\n")


def test_auth_cancel_and_helo_track_the_server(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    assert pair.cmd("HELO", "me.test").code == 250
    assert pair.cmd("AUTH", "PLAIN").code == 503  # no AUTH after HELO
    assert pair.cmd("EHLO", "me.test").code == 250
    assert pair.cmd("AUTH", "LOGIN").code == 334
    [reply] = pair.exchange(pair.client.send_auth_response("*"))
    assert reply.code == 501 and pair.client.state is State.GREETED
    assert pair.cmd("VRFY", "alice").code == 252
    pair.assert_same_transcripts()


def test_raw_lines_track_the_server(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    for line in (b"ehlo me.test", b"mail from:<a@b.test>", b"RCPT TO:<alice@local.test>",
                 b"DATA"):
        pair.exchange(pair.client.send_raw(line))
    assert pair.client.state is State.DATA
    for line in (b"Subject: raw", b"", b"..stuffed by hand", b"."):
        pair.exchange(pair.client.send_raw(line))
    assert pair.client.state is State.GREETED
    pair.exchange(pair.client.send_raw(b"QUIT"))
    assert pair.client.closed
    # The server records the message as one block, the client line by line: same bytes.
    client = [s for s in pair.client_log.transcript if s.kind != "data"]
    server = [s for s in pair.server_log.transcript if s.kind != "data"]
    assert [(s.raw, s.state_before, s.state_after) for s in client] == \
        [(s.raw, s.state_before, s.state_after) for s in server]
    data = b"".join(s.raw for s in pair.client_log.transcript if s.kind == "data")
    assert data == b"".join(s.raw for s in pair.server_log.transcript if s.kind == "data")


def test_raw_lines_after_a_barrier_are_read_after_its_reply(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    pair.cmd("EHLO", "me.test")
    pair.cmd("MAIL", "FROM:<a@b.test>")
    pair.cmd("RCPT", "TO:<alice@local.test>")
    # All at once: the text after DATA is message text only because the reply is 354.
    replies = pair.exchange(pair.client.send_raw(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nNOOP"))
    assert [r.code for r in replies] == [354, 250, 250]
    steps = [(s.kind, s.state_before, s.state_after) for s in pair.client_log.transcript][-9:]
    assert steps == [("command", "RCPT", "RCPT"), ("reply", "RCPT", "DATA")] + \
        [("data", "DATA", "DATA")] * 4 + [("reply", "DATA", "GREETED"),
                                          ("command", "GREETED", "GREETED"),
                                          ("reply", "GREETED", "GREETED")]


def test_lines_pipelined_after_starttls_are_marked_ignored(tmp_path: Path) -> None:
    pair = Pair(tmp_path, starttls=True)
    pair.cmd("EHLO", "me.test")
    replies = pair.exchange(pair.client.send_raw(b"STARTTLS\r\nMAIL FROM:<evil@b.test>"))
    assert [r.code for r in replies] == [220]
    last = pair.client_log.transcript[-1]
    assert last.raw == b"MAIL FROM:<evil@b.test>\r\n" and "RFC 3207" in last.parsed["ignored"]
    assert pair.client.awaiting == 0


def test_too_many_errors_421_closes_the_client(tmp_path: Path) -> None:
    pair = Pair(tmp_path, hard_error_limit=2)
    pair.cmd("BOGUS")
    replies = pair.exchange(pair.client.send_command("BOGUS"))
    assert [r.code for r in replies] == [500, 421]
    assert pair.client.closed and pair.client.state is State.CLOSED


def test_connection_lost_is_an_event() -> None:
    steps: list = []
    client = greeted(steps)
    client.send_command("NOOP")
    client.connection_lost()
    assert client.closed and client.awaiting == 0 and client.state is State.CLOSED
    assert steps[-1][:4] == ("*", "event", b"connection lost", {"event": "closed"})
