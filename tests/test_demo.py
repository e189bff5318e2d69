"""The demo maildrop: the seed article's seven messages, octet for octet (RFC 1939 LIST/STAT)."""

from __future__ import annotations

import email
import email.policy
import struct
import zlib
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from mailproto import demo
from mailproto.store import Maildir, Users, arrival_key

WELCOME_BODY = (
    "恭喜!\n"
    "您好，恭喜您成为musemail.com的邮箱用户。您的邮箱全名是：admin@musemail.com\n"
    "请牢记您的用户名和密码，如果有任何问题，您可以通过admin@system.default与系统管理员联系。\n"
    "------------------------------------------------------\n"
    "缪斯邮件服务器－拉近网络与您的距离！\n"
)


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    return demo.demo_messages()


def wire(data: bytes) -> int:
    """Octets as POP3 sends them: every line ends in CRLF."""
    return len(data.replace(b"\n", b"\r\n"))


def test_sizes_on_the_wire_are_the_seeds(messages: list[bytes]) -> None:
    assert [wire(m) for m in messages] == list(demo.SEED_SIZES)
    assert [demo.wire_size(m) for m in messages] == list(demo.SEED_SIZES)
    assert sum(map(wire, messages)) == 291593  # "+OK 7 291593"


def test_stored_form_is_lf_and_ends_with_a_newline(messages: list[bytes]) -> None:
    for data in messages:
        assert b"\r" not in data
        assert data.endswith(b"\n")


def test_welcome_subject_and_body_decode_to_the_seed_text(messages: list[bytes]) -> None:
    msg = email.message_from_bytes(messages[0])
    assert msg["Subject"] == "=?gb2312?B?uafPssT6s8nOqrG+08q8/s+1zbO1xNDC08O7pyEg?="
    assert str(make_header(decode_header(msg["Subject"]))) == "恭喜您成为本邮件系统的新用户! "
    assert msg.get_content_charset() == "gb2312"
    assert msg["Content-Transfer-Encoding"].lower() == "quoted-printable"
    assert msg.get_payload(decode=True).decode("gb2312") == WELCOME_BODY
    assert "\n".join(demo.WELCOME_LINES) + "\n" == WELCOME_BODY


def test_welcome_headers(messages: list[bytes]) -> None:
    msg = email.message_from_bytes(messages[0], policy=email.policy.default)
    assert msg["From"].addresses[0].display_name == "系统管理员"
    assert msg["From"].addresses[0].domain == "musemail.com"
    assert msg["To"].groups[0].display_name == "Mail Users"
    assert msg["Date"] == "Thu, 19 Aug 2004 15:47:10 +0800"
    assert msg["MIME-Version"] == "1.0 (Produced by MuseMail R&D Center)"
    assert msg["X-mailer"] == "MuseMail MIME V1.0"
    assert msg["Content-Description"] == "Message text"
    assert msg["Content-Disposition"] == "inline"
    assert messages[0].split(b"\n\n")[0].isascii()  # the 8-bit From is gone


@pytest.mark.parametrize("index", range(7))
def test_every_message_parses_without_defects(messages: list[bytes], index: int) -> None:
    data = messages[index]
    for policy in (email.policy.compat32, email.policy.default):
        msg = email.message_from_bytes(data, policy=policy)
        for part in msg.walk():
            assert part.defects == [], (part.get_content_type(), part.defects)
            if policy is email.policy.default:
                for name, value in part.items():
                    assert not value.defects, (name, value.defects)
                if not part.is_multipart() and part.get_content_maintype() == "text":
                    part.get_content()  # decodes in its declared charset


@pytest.mark.parametrize("index", range(7))
def test_lines_are_well_formed(messages: list[bytes], index: int) -> None:
    data = messages[index]
    head, _, _ = data.partition(b"\n\n")
    assert head.isascii()  # RFC 5322 §2.2: non-ASCII goes in encoded words
    lines = data.split(b"\n")[:-1]
    assert all(len(line) <= 998 for line in lines)  # RFC 5322 §2.1.1
    assert not any(line.startswith(b".") for line in lines)
    assert not any(line.rstrip(b" ") != line and line != b"-- " for line in lines)
    msg = email.message_from_bytes(data)
    for part in msg.walk():
        cte = (part["Content-Transfer-Encoding"] or "7bit").lower()
        payload = part.get_payload()
        if cte == "base64":
            assert all(len(line) <= 76 for line in payload.splitlines())  # RFC 2045 §6.8
        if cte == "7bit" and isinstance(payload, str):
            assert payload.isascii()


def test_attachments(messages: list[bytes]) -> None:
    by_name = {}
    for data in messages:
        for part in email.message_from_bytes(data, policy=email.policy.default).walk():
            if part.get_filename():
                by_name[part.get_filename()] = part
    assert set(by_name) == {"traffic.png", "maillog-0126.txt", "实验三-POP3会话记录.txt",
                            "apop-vectors.txt", "traffic-100d.png"}
    assert "filename*0*=UTF-8''" in messages[4].decode("utf-8")  # RFC 2231 continuations
    for name in ("traffic.png", "traffic-100d.png"):
        png = by_name[name].get_content()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])
        (length,) = struct.unpack(">I", png[33:37])
        idat = png[37:41 + length]
        assert idat[:4] == b"IDAT"
        assert zlib.crc32(idat) == struct.unpack(">I", png[41 + length:45 + length])[0]
        assert len(zlib.decompress(idat[4:])) == height * (1 + 3 * width)
    vectors = by_name["apop-vectors.txt"].get_content().splitlines()
    assert "<1896.697170952@dbc.mtview.ca.us> c4c9334bac560ecc979e58001b3e22fb" in vectors


def test_multipart_alternative_newsletter(messages: list[bytes]) -> None:
    msg = email.message_from_bytes(messages[1], policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_bounce_is_a_delivery_report(messages: list[bytes]) -> None:
    msg = email.message_from_bytes(messages[6], policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg["Return-Path"] == "<>"
    kinds = [p.get_content_type() for p in msg.iter_parts()]
    assert kinds == ["text/plain", "message/delivery-status", "message/rfc822"]


def test_file_names_follow_the_trace_fields(messages: list[bytes]) -> None:
    """The Maildir name's seconds are the last hop's Received: time (message 1: its Date)."""
    seconds = [int(name.partition(".")[0]) for name in demo.maildir_names()]
    assert seconds == sorted(seconds) and len(set(seconds)) == 7
    for data, second in zip(messages, seconds, strict=True):
        msg = email.message_from_bytes(data)
        stamp = msg["Received"].rpartition(";")[2] if msg["Received"] else msg["Date"]
        assert int(parsedate_to_datetime(stamp.strip()).timestamp()) == second


def test_deterministic() -> None:
    first = demo.demo_messages()
    demo._messages.cache_clear()
    assert demo.demo_messages() == first


def tree(root: Path) -> dict[str, tuple[bytes, int] | None]:
    """Relative path -> (content, mtime) for files, None for directories."""
    return {str(p.relative_to(root)): (p.read_bytes(), int(p.stat().st_mtime))
            if p.is_file() else None for p in sorted(root.rglob("*"))}


def test_store_twice_gives_identical_trees(tmp_path: Path) -> None:
    users = demo.create_demo_store(tmp_path / "a")
    demo.create_demo_store(tmp_path / "b")
    assert users == tmp_path / "a" / "users"
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    a.pop("users"), b.pop("users")  # written now: only its content must match
    assert a == b
    assert (tmp_path / "a" / "users").read_bytes() == (tmp_path / "b" / "users").read_bytes()


def test_store_files_are_in_seed_order(tmp_path: Path, messages: list[bytes]) -> None:
    demo.create_demo_store(tmp_path)
    new = tmp_path / demo.DEMO_USER / "new"
    names = sorted((p.name for p in new.iterdir()), key=arrival_key)
    assert names == demo.maildir_names()
    assert [(new / name).read_bytes() for name in names] == messages
    box = Maildir(tmp_path / demo.DEMO_USER, create=False)
    assert [p.read_bytes() for p in box.message_paths()] == messages
    for user in ("alice", "bob"):
        assert Maildir(tmp_path / user, create=False).message_paths() == []


def test_store_starts_over(tmp_path: Path) -> None:
    demo.create_demo_store(tmp_path)
    box = Maildir(tmp_path / demo.DEMO_USER, create=False)
    for path in box.message_paths()[:2]:  # DELE 1, DELE 2, QUIT
        path.unlink()
    (tmp_path / "other").mkdir()
    demo.create_demo_store(tmp_path)
    assert len(box.message_paths()) == 7
    assert (tmp_path / "other").is_dir()  # nothing else is touched


def test_users_file(tmp_path: Path) -> None:
    users = Users.load(demo.create_demo_store(tmp_path))
    assert users.secret("username") == "password"
    assert users.secret("alice") == "alice-secret"
    assert users.secret("bob") == "bob-secret"
    assert users.is_list("staff")
    assert users.expand("staff") == ["alice", "bob"]
