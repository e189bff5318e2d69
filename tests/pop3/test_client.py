"""The POP3 client core at byte level, and paired in memory with the server core."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailproto import auth
from mailproto.errors import LocalProtocolError, RemoteProtocolError
from mailproto.pop3.client import (
    ClientSession,
    Response,
    ResponseReader,
    auth_steps,
    find_timestamp,
    format_command,
    is_multiline,
)
from mailproto.pop3.server import ServerConfig, ServerSession
from mailproto.pop3.states import State
from mailproto.store import Store, Users
from mailproto.transcript import EVENT, Recorder

#: RFC 1939 §7's APOP example.
RFC1939_TIMESTAMP = "<1896.697170952@dbc.mtview.ca.us>"
RFC1939_DIGEST = "c4c9334bac560ecc979e58001b3e22fb"
GREETING = b"+OK POP3 server ready " + RFC1939_TIMESTAMP.encode() + b"\r\n"
CAPA = b"+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN LOGIN\r\nSTLS\r\n.\r\n"
#: A message as RETR sends it: the lines ".", ".." and ".x" stuffed (RFC 1939 §3).
MESSAGE = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend\r\n"
RETR = (b"+OK 38 octets\r\nSubject: dots\r\n\r\n..\r\n...\r\n..x\r\nend\r\n.\r\n")
#: Commands and the responses a server gives them, for the chunking tests.
SCRIPT = (b"CAPA\r\nAPOP mrose " + RFC1939_DIGEST.encode() + b"\r\nAPOP mrose "
          + RFC1939_DIGEST.encode() + b"\r\nLIST\r\nRETR 1\r\nTOP 1 0\r\nUIDL 1\r\nQUIT\r\n")
RESPONSES = (GREETING + CAPA + b"-ERR [IN-USE] Maildrop is locked\r\n"
             + b"+OK mrose's maildrop has 2 messages (320 octets)\r\n"
             + b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n" + RETR
             + b"+OK top follows\r\nSubject: dots\r\n\r\n.\r\n"
             + b"+OK 1 whqtswO00WBw418f9t5JxYwZ\r\n+OK dewey POP3 server signing off\r\n")


def scripted(data_chunks: list[bytes]) -> tuple[ClientSession, list[Response], list[tuple]]:
    steps: list[tuple] = []
    client = ClientSession(on_step=lambda *a: steps.append(a))
    client.send_raw(SCRIPT)  # held behind the greeting, read as the responses come
    got: list[Response] = []
    for chunk in data_chunks:
        got += client.receive(chunk)
    return client, got, steps


def logged_in(steps: list | None = None) -> ClientSession:
    client = ClientSession(on_step=(lambda *a: steps.append(a)) if steps is not None else None)
    client.receive(GREETING)
    client.send_command("USER", "alice")
    client.receive(b"+OK\r\n")
    client.send_command("PASS", "secret")
    client.receive(b"+OK maildrop has 2 messages\r\n")
    assert client.state is State.TRANSACTION
    return client


# -- reading responses -----------------------------------------------------------------------
def test_multiline_response_is_unstuffed() -> None:
    reader = ResponseReader()
    reader.feed(RETR + b"+OK next\r\n")
    response = reader.next(multiline=True)
    assert response is not None and response.positive and response.text == "38 octets"
    assert response.body == MESSAGE  # every stuffed dot removed, CRLF kept
    assert response.raw == RETR  # the block exactly as on the wire
    assert response.lines == [b"Subject: dots", b"", b".", b"..", b".x", b"end"]
    assert reader.next(multiline=False) == Response(True, "next")


def test_rfc1939_removes_the_first_dot_of_any_dotted_line() -> None:
    # RFC 1939 §3: "If so and if octets other than CRLF follow, the first octet of the line
    # (the termination octet) is stripped away" -- also from ".x", which poplib keeps.
    reader = ResponseReader()
    reader.feed(b"+OK\r\n.x\r\n.\r\n")
    assert reader.next(multiline=True).body == b"x\r\n"  # type: ignore[union-attr]


def test_empty_block_and_bare_lf_terminator() -> None:
    reader = ResponseReader()
    reader.feed(b"+OK 0 messages\r\n.\r\n+OK hand-typed\n1 2\n.\n")
    assert reader.next(multiline=True).body == b""  # type: ignore[union-attr]
    assert reader.next(multiline=True).body == b"1 2\n"  # type: ignore[union-attr]


def test_err_is_one_line_even_for_multiline_commands() -> None:
    reader = ResponseReader()
    reader.feed(b"-ERR no such message\r\n+OK 1 200\r\n")
    assert reader.next(multiline=True) == Response(False, "no such message")
    assert reader.next(multiline=False) == Response(True, "1 200")


def test_response_codes() -> None:
    reader = ResponseReader()
    reader.feed(b"-ERR [IN-USE] Maildrop is locked\r\n-ERR [SYS/TEMP] later\r\n"
                b"-ERR\r\n+OK [not a code] text\r\n")
    locked = reader.next(multiline=False)
    assert locked == Response(False, "Maildrop is locked", "IN-USE")
    assert locked is not None and locked.status_line == "-ERR [IN-USE] Maildrop is locked"
    assert reader.next(multiline=False) == Response(False, "later", "SYS/TEMP")
    assert reader.next(multiline=False) == Response(False, "")
    # RFC 2449 §8: response codes come with -ERR; after +OK brackets are text.
    assert reader.next(multiline=False) == Response(True, "[not a code] text")


@pytest.mark.parametrize("line", [b"OK ready\r\n", b"+OKAY\r\n", b"250 ok\r\n", b"+ abc\r\n"])
def test_broken_status_lines_are_remote_errors(line: bytes) -> None:
    reader = ResponseReader()
    reader.feed(line)
    with pytest.raises(RemoteProtocolError):
        reader.next(multiline=False)


def test_endless_status_line_is_refused() -> None:
    reader = ResponseReader()
    reader.feed(b"+OK " + b"x" * 70000)
    with pytest.raises(RemoteProtocolError):
        reader.next(multiline=False)


def test_a_script_split_at_every_byte_reads_the_same() -> None:
    _, whole, whole_steps = scripted([RESPONSES])
    assert len(whole) == 9 and whole[2].code == "IN-USE" and whole[5].body == MESSAGE
    for cut in range(1, len(RESPONSES)):
        client, got, steps = scripted([RESPONSES[:cut], RESPONSES[cut:]])
        assert got == whole and [r.raw for r in got] == [r.raw for r in whole], cut
        assert steps == whole_steps and client.closed


def test_a_script_fed_one_byte_at_a_time() -> None:
    _, whole, whole_steps = scripted([RESPONSES])
    client, got, steps = scripted([RESPONSES[i : i + 1] for i in range(len(RESPONSES))])
    assert got == whole and steps == whole_steps
    assert b"".join(s[2] for s in steps if s[0] == "S") == RESPONSES  # every byte recorded
    assert b"".join(s[2] for s in steps if s[0] == "C") == SCRIPT
    a, t = "AUTHORIZATION", "TRANSACTION"
    assert [(s[4], s[5]) for s in steps if s[0] == "S"] == \
        [(a, a)] * 3 + [(a, t)] + [(t, t)] * 4 + [(t, "CLOSED")]


def test_a_large_message_in_big_chunks() -> None:
    body = b"".join(b".line %d with a dot\r\n" % i for i in range(50_000))
    wire = b"+OK\r\n" + body.replace(b"\r\n.", b"\r\n..").replace(b".line 0", b"..line 0", 1) \
        + b".\r\n"
    client = logged_in()
    client.send_command("RETR", "1")
    got = []
    for i in range(0, len(wire), 65536):
        got += client.receive(wire[i : i + 65536])
    [response] = got
    assert response.body == body and response.raw == wire


# -- commands --------------------------------------------------------------------------------
def test_format_command() -> None:
    assert format_command("retr", "1") == b"RETR 1\r\n"
    assert format_command("STAT") == b"STAT\r\n"
    assert format_command("PASS", "two words") == b"PASS two words\r\n"  # RFC 1939 §7
    assert format_command("PASS", "pässword") == "PASS pässword\r\n".encode()


@pytest.mark.parametrize("arg", ["a\r\nDELE 1", "a\nDELE 1", "a\rb", "a\0b"])
def test_cr_lf_nul_in_arguments_are_refused(arg: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_command("USER", arg)
    client = logged_in()
    with pytest.raises(LocalProtocolError):
        client.send_command("PASS", arg)
    with pytest.raises(LocalProtocolError):
        next(auth_steps("PLAIN", "alice", arg))
    with pytest.raises(LocalProtocolError):
        next(auth_steps("LOGIN", arg, "secret"))


@pytest.mark.parametrize("verb", ["", "RE TR", "RETR\r\n", "ÜBER"])
def test_bad_keywords_are_refused(verb: str) -> None:
    with pytest.raises(LocalProtocolError):
        format_command(verb)


@pytest.mark.parametrize("verb, args, multi", [
    ("LIST", (), True), ("LIST", ("1",), False), ("UIDL", (), True), ("UIDL", ("2",), False),
    ("RETR", ("1",), True), ("TOP", ("1", "0"), True), ("CAPA", (), True),
    ("AUTH", (), True), ("AUTH", ("PLAIN",), False), ("STAT", (), False),
    ("DELE", ("1",), False), ("USER", ("a",), False), ("QUIT", (), False),
])
def test_which_commands_are_multiline(verb: str, args: tuple[str, ...], multi: bool) -> None:
    assert is_multiline(verb, args) is multi


def test_apop_timestamp_and_digest_rfc1939_example() -> None:
    assert find_timestamp(GREETING) == RFC1939_TIMESTAMP
    assert auth.apop_digest(RFC1939_TIMESTAMP, "tanstaaf") == RFC1939_DIGEST
    assert find_timestamp(b"+OK ready <not> at the end\r\n") is None
    assert find_timestamp(b"+OK Dovecot ready.\r\n") is None
    client = ClientSession()
    client.receive(GREETING)
    assert client.timestamp == RFC1939_TIMESTAMP


def test_sending_is_refused_before_the_greeting_after_barriers_and_after_close() -> None:
    client = ClientSession()
    with pytest.raises(LocalProtocolError, match="greeting"):
        client.send_command("CAPA")
    client.receive(GREETING)
    client.send_command("USER", "alice")
    client.send_command("PASS", "secret")  # pipelined behind USER: fine
    with pytest.raises(LocalProtocolError, match="wait"):
        client.send_command("STAT")  # behind PASS: which state would read it?
    client.receive(b"+OK\r\n-ERR [AUTH] no\r\n")
    client.send_command("QUIT")
    client.receive(b"+OK bye\r\n")
    assert client.closed and client.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="closed"):
        client.send_command("NOOP")


def test_unsolicited_err_closes() -> None:
    steps: list[tuple] = []
    client = logged_in(steps)
    [response] = client.receive(b"-ERR Disconnected for inactivity\r\n")
    assert client.closed and client.state is State.CLOSED and client.closing == response
    assert steps[-1][3] == {"ok": False, "text": "Disconnected for inactivity",
                            "unsolicited": True}
    assert steps[-1][4:] == ("TRANSACTION", "CLOSED")


def test_err_greeting_closes() -> None:
    client = ClientSession()
    [response] = client.receive(b"-ERR [SYS/TEMP] Too many connections\r\n")
    assert client.closed and client.closing == response and client.greeting is None


def test_auth_continuations_and_cram_md5() -> None:
    steps: list[tuple] = []
    client = ClientSession(on_step=lambda *a: steps.append(a))
    client.receive(GREETING)
    sasl = auth_steps("CRAM-MD5", "tim", "tanstaaftanstaaf")
    assert client.send_command("AUTH", next(sasl)) == b"AUTH CRAM-MD5\r\n"
    challenge = auth.b64encode(b"<1896.697170952@postoffice.reston.mci.net>")
    [plus] = client.receive(b"+ " + challenge.encode() + b"\r\n")
    assert plus.challenge == challenge and not plus.positive
    assert steps[-1][3] == {"continuation": "<1896.697170952@postoffice.reston.mci.net>"}
    with pytest.raises(LocalProtocolError, match="SASL"):
        client.send_command("NOOP")
    answer = sasl.send(plus.challenge)
    # RFC 2195 §2's example response.
    assert auth.b64decode_strict(answer) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    client.send_auth_response(answer)
    client.receive(b"+OK logged in\r\n")
    assert client.state is State.TRANSACTION
    assert [s[1] for s in steps] == ["greeting", "command", "reply", "auth", "reply"]
    with pytest.raises(LocalProtocolError):
        client.send_auth_response("x")


def test_capa_is_forgotten_after_stls_and_plaintext_after_ok_is_dropped() -> None:
    steps: list[tuple] = []
    client = ClientSession(on_step=lambda *a: steps.append(a))
    client.receive(GREETING)
    client.send_command("CAPA")
    client.receive(CAPA)
    assert client.capabilities == {"TOP": [], "USER": [], "SASL": ["PLAIN", "LOGIN"],
                                   "STLS": []}
    client.send_command("STLS")
    # A man in the middle appends a forged answer to the next command (response injection).
    client.receive(b"+OK Begin TLS\r\n+OK forged\r\n")
    assert client.tls_requested and client.capabilities == {}
    assert steps[-1][0] == EVENT and b"discarded" in steps[-1][2]
    with pytest.raises(LocalProtocolError, match="TLS"):
        client.send_command("CAPA")
    client.tls_started()
    assert client.tls and client.state is State.AUTHORIZATION
    client.send_command("CAPA")
    [response] = client.receive(CAPA)
    assert response.body is not None and client.capabilities["SASL"] == ["PLAIN", "LOGIN"]


def test_quit_in_transaction_enters_update_even_on_err() -> None:
    client = logged_in()
    client.send_command("QUIT")
    client.receive(b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n")
    assert client.closed and client.state is State.CLOSED


def test_connection_lost_closes_without_update() -> None:
    steps: list[tuple] = []
    client = logged_in(steps)
    client.send_command("STAT")
    client.connection_lost("the server vanished")
    assert client.closed and client.awaiting == 0 and client.state is State.CLOSED
    assert steps[-1][:3] == (EVENT, "event", b"the server vanished")


# -- paired with the server core, in memory -------------------------------------------------
class Pair:
    """Our client core wired to our server core; both record, and after every exchange the
    client's idea of the state must be the server's."""

    def __init__(self, tmp_path: Path, messages: tuple[bytes, ...] = (), **config: object):
        self.server_log = Recorder("pop3", lambda: 0.0)
        self.client_log = Recorder("pop3", lambda: 0.0)
        users = Users.parse("alice:secret\nmrose:tanstaaf\ntim:tanstaaftanstaaf\n")
        self.store = Store(tmp_path, users)
        box = self.store.maildir("mrose").path
        for i, message in enumerate(messages):
            (box / "new" / f"{1_000_000_000 + i}.M0P1Q{i}.test").write_bytes(message)
        self.server = ServerSession(ServerConfig(**config), self.store,
                                    on_step=self.server_log, clock=lambda: 1_000_000.0,
                                    token=lambda: RFC1939_TIMESTAMP)
        self.client = ClientSession(on_step=self.client_log)
        self.client.receive(self.server.initiate())

    def exchange(self, data: bytes) -> list[Response]:
        out = self.server.receive(data)
        while self.server.has_more_output:
            out += self.server.more()
        responses = self.client.receive(out)
        assert self.client.state is self.server.state
        return responses

    def cmd(self, verb: str, arg: str = "") -> Response:
        [response] = self.exchange(self.client.send_command(verb, arg))
        return response

    def auth(self, mech: str, user: str, password: str) -> Response:
        sasl = auth_steps(mech, user, password)
        response = self.cmd("AUTH", next(sasl))
        while response.challenge is not None:
            answer = sasl.send(response.challenge)
            [response] = self.exchange(self.client.send_auth_response(answer))
        return response

    @staticmethod
    def lines(log: Recorder, direction: str) -> list[tuple]:
        # The server's UPDATE event counts what it removes: the client cannot know that.
        return [(s.kind, s.raw, s.parsed, s.state_before, s.state_after) for s in log.transcript
                if s.direction == direction and s.parsed.get("event") != "update"]

    def assert_same_transcripts(self, interleaved: bool = True) -> None:
        """Every line the same bytes and states both sides; the parsed values the same, the
        client adding only block facts (octets, lines) the server leaves out for CAPA.  With
        ``interleaved``, also in the same order (not when the client pipelined)."""
        for d in ("C", "S", EVENT):
            client, server = self.lines(self.client_log, d), self.lines(self.server_log, d)
            assert [c[:2] + c[3:] for c in client] == [s[:2] + s[3:] for s in server]
            for c, s in zip(client, server, strict=True):
                assert s[2].items() <= c[2].items()
                if "multiline" not in c[2]:
                    assert c[2] == s[2]
        if not interleaved:
            return
        steps = [(s.direction, s.state_before, s.state_after) for s in self.client_log.transcript]
        assert steps == [(s.direction, s.state_before, s.state_after)
                         for s in self.server_log.transcript if s.parsed.get("event") != "update"]


STORED = (b"Subject: one\n\n.\n..two\n.three\nend\n", b"Subject: two\n\nsecond\n",
          b"Subject: three\n\nno final newline")


def test_user_pass_session_tracks_the_server_step_by_step(tmp_path: Path) -> None:
    pair = Pair(tmp_path, STORED)
    assert pair.cmd("STAT").code is None and pair.client.state is State.AUTHORIZATION
    assert not pair.cmd("PASS", "tanstaaf").positive  # no USER first
    assert pair.cmd("USER", "mrose").positive
    wrong = pair.cmd("PASS", "wrong")
    assert wrong.code == "AUTH" and pair.client.state is State.AUTHORIZATION
    pair.cmd("USER", "mrose")
    assert pair.cmd("PASS", "tanstaaf").positive and pair.client.state is State.TRANSACTION
    assert pair.cmd("STAT").text.split()[0] == "3"
    listing = pair.cmd("LIST")
    sizes = [int(line.split()[1]) for line in listing.lines]
    retr = pair.cmd("RETR", "1")
    assert retr.body == STORED[0].replace(b"\n", b"\r\n") and len(retr.body) == sizes[0]
    assert pair.cmd("RETR", "3").body == STORED[2].replace(b"\n", b"\r\n") + b"\r\n"
    assert pair.cmd("TOP", "2 0").body == b"Subject: two\r\n\r\n"
    assert len(pair.cmd("UIDL").lines) == 3 and pair.cmd("UIDL", "2").positive
    assert pair.cmd("CAPA").body is not None
    assert pair.cmd("DELE", "1").positive
    assert pair.cmd("RETR", "1").text == "message 1 already deleted"
    assert pair.cmd("RSET").positive and pair.cmd("NOOP").positive
    assert pair.cmd("DELE", "2").positive
    assert pair.cmd("APOP", "mrose x").code is None  # wrong state: -ERR, stays
    assert pair.cmd("QUIT").positive
    assert pair.client.closed and pair.server.closed
    pair.assert_same_transcripts()
    left = [p.read_bytes() for p in pair.store.maildir("mrose").message_paths()]
    assert left == [STORED[0], STORED[2]]


def test_apop_with_the_rfc1939_example_on_the_wire(tmp_path: Path) -> None:
    pair = Pair(tmp_path, STORED[:1])
    assert pair.client.timestamp == RFC1939_TIMESTAMP
    digest = auth.apop_digest(pair.client.timestamp, "tanstaaf")
    raw = pair.client.send_command("APOP", f"mrose {digest}")
    assert raw == b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
    [response] = pair.exchange(raw)
    assert response.positive and pair.client.state is State.TRANSACTION
    assert pair.cmd("QUIT").positive
    pair.assert_same_transcripts()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_stls_and_auth_track_the_server(tmp_path: Path, mech: str) -> None:
    pair = Pair(tmp_path, STORED, stls=True)
    pair.cmd("CAPA")
    assert "STLS" in pair.client.capabilities
    assert pair.cmd("STLS").positive and pair.client.tls_requested
    pair.server.tls_started()
    pair.client.tls_started()
    assert pair.client.capabilities == {}
    assert "STLS" not in {line.split()[0] for line in pair.cmd("CAPA").lines}
    mechs = pair.cmd("AUTH")
    assert {b"PLAIN", b"LOGIN", b"CRAM-MD5"} <= set(mechs.lines)
    assert pair.auth(mech, "tim", "wrong").code == "AUTH"
    assert pair.auth(mech, "tim", "tanstaaftanstaaf").positive
    assert pair.client.state is State.TRANSACTION
    assert pair.cmd("QUIT").positive
    pair.assert_same_transcripts()


def test_auth_cancel_tracks_the_server(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    assert pair.cmd("AUTH", "LOGIN").challenge is not None
    [response] = pair.exchange(pair.client.send_auth_response("*"))
    assert not response.positive and pair.client.state is State.AUTHORIZATION
    assert pair.cmd("NOOP").text.startswith("NOOP not allowed")
    pair.assert_same_transcripts()


def test_raw_lines_pipelined_track_the_server(tmp_path: Path) -> None:
    pair = Pair(tmp_path, STORED)
    typed = b"user mrose\r\npass tanstaaf\r\nstat\nlist\r\nretr 1\r\ndele 1\r\nquit"
    responses = pair.exchange(pair.client.send_raw(typed))
    assert [r.positive for r in responses] == [True] * 7
    assert responses[4].body == STORED[0].replace(b"\n", b"\r\n")
    assert pair.client.closed
    # The client sent STAT... before PASS was answered, but records each line in the state
    # the server read it in: the same lines, bytes and states as the server's transcript.
    pair.assert_same_transcripts(interleaved=False)
    assert len(pair.store.maildir("mrose").message_paths()) == 2


def test_lines_after_stls_are_not_sent_as_commands(tmp_path: Path) -> None:
    pair = Pair(tmp_path, stls=True)
    pair.exchange(pair.client.send_raw(b"STLS\r\nUSER mrose\r\n"))
    assert pair.client.tls_requested
    [ignored] = [s for s in pair.client_log.transcript if "ignored" in s.parsed]
    assert ignored.raw == b"USER mrose\r\n"
