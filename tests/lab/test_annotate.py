"""Notes for every line: reply codes, enhanced status codes, POP3 RESP-CODES, AUTH decoding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mailproto.pop3.server
import mailproto.smtp.server
from mailproto import auth
from mailproto.lab import codes
from mailproto.lab.annotate import (
    NUL_MARK,
    PERMANENT,
    POSITIVE,
    annotate,
    describe_enhanced,
    pop3_reply,
    smtp_reply,
    visible,
)
from mailproto.transcript import Step, Transcript

from ._sessions import Live, b64, pop3_transcript, smtp_transcript, store


def _server_source(package: object) -> str:
    """Every module of a protocol package but its client: what the server may send."""
    folder = Path(package.__file__).parent  # type: ignore[attr-defined]
    return "".join(path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.py"))
                   if path.name != "client.py")


def _smtp_codes_sent() -> set[int]:
    text = _server_source(mailproto.smtp.server)
    return {int(c) for c in re.findall(r"Reply(?:\.of)?\((\d{3})", text)}


def _enhanced_sent() -> set[str]:
    text = _server_source(mailproto.smtp.server)
    return set(re.findall(r'"([245]\.\d{1,3}\.\d{1,3}) ', text))


def _pop3_resp_codes_sent() -> set[str]:
    text = _server_source(mailproto.pop3.server)
    return set(re.findall(r'err\([^)]*?"([A-Z][A-Z0-9/-]+)"\)', text))


EXPECTED_SMTP = {214, 220, 221, 235, 250, 252, 334, 354, 421, 451, 452, 500, 501, 502, 503, 504,
                 535, 538, 550, 552, 553, 554, 555}


def test_the_grep_finds_what_the_brief_lists() -> None:
    assert _smtp_codes_sent() >= EXPECTED_SMTP - {250, 354}  # named constants hide two of them
    assert EXPECTED_SMTP <= set(codes.SMTP_REPLY_CODES)


@pytest.mark.parametrize("code", sorted(EXPECTED_SMTP | _smtp_codes_sent()))
def test_every_smtp_code_the_server_sends_is_explained(code: int) -> None:
    meaning, ref = codes.SMTP_REPLY_CODES[code]
    note = smtp_reply(code, ["2.0.0 text" if code < 400 else "5.5.1 text"])
    assert note.summary == f"{code} {meaning}"
    assert ref.startswith("RFC")
    assert f"first digit {str(code)[0]}" in note.text  # RFC 5321 §4.2.1
    assert f"second digit {str(code)[1]}" in note.text
    assert note.outcome == {2: POSITIVE, 3: "intermediate", 4: "transient", 5: PERMANENT}[
        code // 100]


@pytest.mark.parametrize("status", sorted(_enhanced_sent()))
def test_every_enhanced_status_code_the_server_sends_is_explained(status: str) -> None:
    text = describe_enhanced(status)
    assert text is not None and "not a registered detail" not in text
    assert "RFC" in text


def test_enhanced_code_parts() -> None:
    text = describe_enhanced("5.1.1")
    assert text == ("5.1.1: permanent failure · addressing · bad destination mailbox address: "
                    "no such user (RFC 3463 §3.2)")
    assert describe_enhanced("hello") is None


@pytest.mark.parametrize("resp", sorted(_pop3_resp_codes_sent() | {"IN-USE", "AUTH", "SYS/TEMP",
                                                                    "SYS/PERM", "LOGIN-DELAY"}))
def test_every_pop3_resp_code_is_explained(resp: str) -> None:
    note = pop3_reply(f"-ERR [{resp}] something\r\n".encode())
    assert note.outcome == PERMANENT
    meaning, ref = codes.POP3_RESP_CODES[resp]
    assert f"[{resp}]: {meaning} ({ref})" in note.details


def test_pop3_ok_err_and_multiline() -> None:
    assert pop3_reply(b"+OK 2 92\r\n").summary.startswith("+OK")
    assert pop3_reply(b"-ERR no\r\n").summary.startswith("-ERR")
    note = pop3_reply(b"+OK\r\n1 45\r\n2 47\r\n.\r\n", after="LIST")
    assert any("2 line(s)" in d for d in note.details)


def test_real_smtp_session_gets_one_note_per_step(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path)
    notes = annotate(t)
    assert len(notes) == len(t)
    by_raw = {s.raw.split(b"\r\n")[0]: n for s, n in zip(t, notes, strict=True)}
    assert by_raw[b"503 5.5.1 Error: send HELO/EHLO first"].summary.startswith("503 Bad sequence")
    assert "does not allow MAIL in state CONNECTED" in by_raw[
        b"503 5.5.1 Error: send HELO/EHLO first"].text
    assert "PIPELINING: " in by_raw[b"250-mail.test Hello client.test [127.0.0.1]"].text
    data = next(n for s, n in zip(t, notes, strict=True) if s.kind == "data")
    assert "forgot to dot-stuff" in data.text  # the script sent ".a dot-stuffed line" as is
    t2 = smtp_transcript(tmp_path / "2", ["EHLO me", "MAIL FROM:<>", "RCPT TO:<bob@local.test>",
                                          "DATA", "..stuffed\r\n."])
    assert "(dot-stuffing)" in annotate(t2)[-2].text


def test_auth_plain_initial_response_is_decoded_with_visible_nul(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path, ["EHLO me", "AUTH PLAIN " + b64("\0alice\0secret"), "QUIT"])
    note = annotate(t)[3]
    decoded = dict(note.decoded)
    assert decoded["decoded"] == f"{NUL_MARK}alice{NUL_MARK}secret"
    assert decoded["user"] == "alice" and decoded["password"] == "secret"
    assert "not encryption" in note.warning


def test_auth_login_challenges_and_responses_are_decoded(tmp_path: Path) -> None:
    t = smtp_transcript(tmp_path, ["EHLO me", "AUTH LOGIN", b64("alice"), b64("secret"),
                                   "QUIT"])
    notes = annotate(t)
    texts = [(s.raw.strip(), n) for s, n in zip(t, notes, strict=True)]
    challenge = next(n for raw, n in texts if raw.startswith(b"334 VXNlcm5hbWU6"))
    assert dict(challenge.decoded)["challenge, decoded"] == "Username:"
    user = next(n for raw, n in texts if raw == b64("alice").encode())
    assert dict(user.decoded) == {"user name": "alice"} and not user.warning
    password = next(n for raw, n in texts if raw == b64("secret").encode())
    assert dict(password.decoded) == {"password": "secret"} and "not encryption" in \
        password.warning


def test_cram_md5_is_explained(tmp_path: Path) -> None:
    live = Live("smtp", store(tmp_path))
    live.send("EHLO me")
    challenge = live.send("AUTH CRAM-MD5").split(b" ", 1)[1].strip().decode()
    live.send(auth.cram_md5_response("alice", "secret", challenge))
    notes = annotate(live.transcript)
    assert "HMAC-MD5" in notes[-3].text  # the 334 challenge
    assert dict(notes[-2].decoded)["user"] == "alice"
    assert notes[-1].summary.startswith("235")


def test_pop3_session_notes(tmp_path: Path) -> None:
    t = pop3_transcript(tmp_path)
    notes = annotate(t)
    assert "APOP timestamp" in dict(notes[0].decoded)
    text = "\n".join(n.text for n in notes)
    assert "[AUTH]: the credentials were wrong" in text
    assert "password, as sent: wrong" in text
    assert "QUIT commits" in text
    capa = notes[2]
    assert any(d.startswith("RESP-CODES:") for d in capa.details)


def test_pop3_apop_and_sasl(tmp_path: Path) -> None:
    live = Live("pop3", store(tmp_path))
    stamp = live.session.timestamp
    live.send(f"APOP alice {auth.apop_digest(stamp, 'secret')}")
    notes = annotate(live.transcript)
    assert dict(notes[1].decoded)["timestamp from the greeting"] == stamp
    assert "MD5" in notes[1].warning
    live2 = Live("pop3", store(tmp_path / "2"))
    live2.send("AUTH PLAIN")
    live2.send(b64("\0alice\0secret"))
    notes = annotate(live2.transcript)
    assert notes[2].summary.startswith("'+': SASL continuation")
    assert dict(notes[3].decoded)["password"] == "secret"


def test_visible_shows_hostile_bytes() -> None:
    assert visible(b"a\xffb\x1b[31m\x00") == "a\\xffb\\x1b[31m\\x00"
    assert visible(b"\x00u", nul=NUL_MARK) == f"{NUL_MARK}u"


def test_event_notes() -> None:
    t = Transcript("smtp", [Step("*", "event", b"TLS started", {"event": "tls"})])
    assert "encrypted" in annotate(t)[0].summary
