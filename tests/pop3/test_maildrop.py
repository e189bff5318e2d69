"""A session's maildrop: numbering, sizes, UIDs, TOP cuts, UPDATE (RFC 1939 §5-§8)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from mailproto.pop3 import maildrop as maildrop_mod
from mailproto.pop3.maildrop import Maildrop, _head, uid_for
from mailproto.store import Maildir

from ._support import wire as reference

UID_OK = re.compile(r"[\x21-\x7e]{1,70}\Z")


@pytest.mark.parametrize("name, expected", [
    ("1700000000.M123456P42Q1.host", "1700000000.M123456P42Q1.host"),
    ("1700000000.M123456P42Q1.host:2,S", "1700000000.M123456P42Q1.host"),
    ("1.M1P1.h\\057x:2,", "1.M1P1.h\\057x"),
    # Dovecot's and our size fields are not part of the id: a file keeps its UIDL if a tool
    # adds or drops them.
    ("1700000000.M123456P42Q1.host,S=1234,W=1260", "1700000000.M123456P42Q1.host"),
    ("1700000000.M123456P42Q1.host,S=1234,W=1260:2,S", "1700000000.M123456P42Q1.host"),
])
def test_uid_is_the_unique_name(name: str, expected: str) -> None:
    assert uid_for(name) == expected


@pytest.mark.parametrize("name", ["x" * 71, "1.M1P1.hôte", "1.M1P1.a b", "", ":2,S",
                                  "1.M1P1.\udcff"])
def test_uid_is_a_hash_when_the_name_does_not_fit(name: str) -> None:
    uid = uid_for(name)
    assert UID_OK.match(uid) and uid == uid_for(name) and uid == uid_for(name + ":2,S")


def test_uids_stay_distinct() -> None:
    assert uid_for("x" * 71) != uid_for("x" * 72)


def make(tmp_path: Path, files: dict[str, bytes]) -> Maildir:
    box = Maildir(tmp_path / "box")
    for name, data in files.items():
        (box.path / "new" / name).write_bytes(data)
    return box


def test_numbers_sizes_and_duplicates(tmp_path: Path) -> None:
    box = make(tmp_path, {"2.M1P1.h": b"b\n", "1.M1P1.h": b"a\nb\n"})
    (box.path / "cur" / "2.M1P1.h:2,S").write_bytes(b"c")  # same unique name in cur/
    drop = Maildrop.open(box)
    assert drop is not None
    assert [(m.number, m.path.name, m.size) for m in drop.messages] == [
        (1, "1.M1P1.h", 6), (2, "2.M1P1.h", 3), (3, "2.M1P1.h:2,S", 3)]
    uids = [m.uid for m in drop.messages]
    assert len(set(uids)) == 3 and all(UID_OK.match(u) for u in uids)
    assert drop.stat() == (3, 12)
    drop.close()


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    box = make(tmp_path, {})
    first = Maildrop.open(box)
    assert first is not None and first.locked
    assert Maildrop.open(box) is None
    first.close()
    second = Maildrop.open(box)
    assert second is not None
    second.close()


def test_lock_released_when_scanning_fails(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    box = make(tmp_path, {"1.M1P1.h": b"x"})

    def boom(_: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(maildrop_mod, "wire_size", boom)
    with pytest.raises(PermissionError):
        Maildrop.open(box)
    monkeypatch.undo()
    drop = Maildrop.open(box)
    assert drop is not None
    drop.close()


def test_update_removes_marked_only(tmp_path: Path) -> None:
    box = make(tmp_path, {"1.M1P1.h": b"a", "2.M1P1.h": b"b", "3.M1P1.h": b"c"})
    drop = Maildrop.open(box)
    assert drop is not None
    drop.messages[0].deleted = drop.messages[2].deleted = True
    (box.path / "new" / "3.M1P1.h").unlink()  # already gone: still counts as removed
    assert drop.update() == (2, 0)
    assert [p.name for p in box.message_paths()] == ["2.M1P1.h"]
    drop.close()


@pytest.mark.parametrize("data, lines, expected", [
    (b"H: 1\n\nb1\nb2\nb3\n", 0, b"H: 1\n\n"),
    (b"H: 1\n\nb1\nb2\nb3\n", 2, b"H: 1\n\nb1\nb2\n"),
    (b"H: 1\n\nb1\nb2\nb3", 99999999, b"H: 1\n\nb1\nb2\nb3"),
    (b"H: 1\r\n\r\nb1\r\nb2\r\n", 1, b"H: 1\r\n\r\nb1\r\n"),
    (b"H: 1\nH: 2", 3, b"H: 1\nH: 2"),
    (b"\nbody\n", 0, b"\n"),
    (b"", 5, b""),
])
def test_head(data: bytes, lines: int, expected: bytes) -> None:
    assert b"".join(_head(io.BytesIO(data), lines)) == expected


def test_head_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maildrop_mod, "CHUNK", 4)
    data = b"Header: value that is long\n\n" + b"".join(b"line %d\n" % i for i in range(50))
    assert b"".join(_head(io.BytesIO(data), 7)) == data[: data.index(b"line 7\n")]
    # a header line exactly as long as a chunk is not taken for the blank line
    data = b"abc\n\nx\n"
    assert b"".join(_head(io.BytesIO(data), 0)) == b"abc\n\n"


def test_message_text_closes_its_file_even_if_never_read(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(b"a\n.b\n")
    body = maildrop_mod.MessageText(open(path, "rb"))  # noqa: SIM115 - the body closes it
    body.close()
    assert body._file.closed
    with pytest.raises(StopIteration):
        next(body)
    read = maildrop_mod.MessageText(open(path, "rb"))  # noqa: SIM115
    assert b"".join(read) == b"a\r\n..b\r\n.\r\n" and read._file.closed


# -- message text: small ones read whole, big ones streamed -----------------------------------
def test_small_message_is_read_whole_big_one_streamed(tmp_path: Path) -> None:
    small = b"Subject: s\n\n.dot\nend"
    big = b"." + b"x" * 98 + b"\n"
    big *= maildrop_mod.CHUNK // len(big) + 1  # one line more than a chunk
    box = make(tmp_path, {"1.M1P1.h": small, "2.M1P1.h": big})
    drop = Maildrop.open(box)
    assert drop is not None
    one, two = drop.messages
    assert one.file_size == len(small) and two.file_size == len(big)
    assert drop.text(one) == b"Subject: s\r\n\r\n..dot\r\nend\r\n.\r\n"
    assert drop.text(one, 0) == b"Subject: s\r\n\r\n.\r\n"
    streamed = drop.text(two)
    assert isinstance(streamed, maildrop_mod.MessageText)
    plain, sent = reference(big)
    assert b"".join(streamed) == sent and len(plain) == two.size
    drop.close()


def test_message_without_a_known_file_size_is_streamed(tmp_path: Path) -> None:
    box = make(tmp_path, {"1.M1P1.h": b"a\n.b\n"})
    path = box.path / "new" / "1.M1P1.h"
    drop = Maildrop(box, None, [maildrop_mod.Message(1, path, "u", 8)])
    text = drop.text(drop.messages[0])
    assert isinstance(text, maildrop_mod.MessageText)
    assert b"".join(text) == b"a\r\n..b\r\n.\r\n"


@pytest.mark.parametrize("now", [b"a\nb\n.c\n", b"a\n", b"", b"x" * 70_000])
def test_file_changed_since_the_scan_is_sent_as_it_is_now(tmp_path: Path, now: bytes) -> None:
    # Maildir files do not change, but if one did, all of it goes out, read from the start.
    box = make(tmp_path, {"1.M1P1.h": b"a\nb\n"})
    drop = Maildrop.open(box)
    assert drop is not None
    (box.path / "new" / "1.M1P1.h").write_bytes(now)
    text = drop.text(drop.messages[0])
    sent = text if isinstance(text, bytes) else b"".join(text)
    assert sent == maildrop_mod.encode_text(now)
    drop.close()


def test_a_file_that_cannot_be_read_raises_before_anything_is_sent(tmp_path: Path) -> None:
    box = make(tmp_path, {"1.M1P1.h": b"a\n"})
    drop = Maildrop.open(box)
    assert drop is not None
    path = box.path / "new" / "1.M1P1.h"
    path.unlink()
    path.mkdir()  # opens, but read() fails: EISDIR
    with pytest.raises(IsADirectoryError):
        drop.text(drop.messages[0])
    path.rmdir()
    with pytest.raises(FileNotFoundError):
        drop.text(drop.messages[0])
    drop.close()


def test_a_moved_message_is_found_and_its_new_place_remembered(tmp_path: Path) -> None:
    box = make(tmp_path, {"1.M1P1.h": b"a\n", "2.M1P1.h": b"b\n"})
    drop = Maildrop.open(box)
    assert drop is not None
    moved = box.path / "cur" / "1.M1P1.h:2,S"
    (box.path / "new" / "1.M1P1.h").rename(moved)
    assert drop.text(drop.messages[0]) == b"a\r\n.\r\n"
    assert drop.messages[0].path == moved  # the next RETR opens it at once
    assert drop.text(drop.messages[0]) == b"a\r\n.\r\n"
    (box.path / "new" / "2.M1P1.h").rename(box.path / "cur" / "2.M1P1.h:2,S")
    for m in drop.messages:
        m.deleted = True
    assert drop.update() == (2, 0)  # found in cur/ for UPDATE too
    assert box.message_paths() == []
    drop.close()


# -- the listing is reused while new/ and cur/ are unchanged ---------------------------------
def count_listings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    listing = Maildir.message_paths

    def counted(self: Maildir) -> list[Path]:
        calls[0] += 1
        return listing(self)

    monkeypatch.setattr(Maildir, "message_paths", counted)
    return calls


def session_files(box: Maildir) -> list[tuple[str, int]]:
    drop = Maildrop.open(box)
    assert drop is not None
    try:
        return [(m.path.name, m.size) for m in drop.messages]
    finally:
        drop.close()


def test_listing_reused_until_a_directory_changes(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maildrop_mod, "SETTLE_NS", 0)  # trust directory times at once
    calls = count_listings(monkeypatch)
    box = make(tmp_path, {"1.M1P1.h": b"a\n", "2.M1P1.h": b"b\n"})
    first = session_files(box)
    assert session_files(box) == first == [("1.M1P1.h", 3), ("2.M1P1.h", 3)]
    assert calls[0] == 1
    (box.path / "new" / "1.M1P1.h").write_bytes(b"longer\n")  # a file's own change: seen
    assert session_files(box) == [("1.M1P1.h", 8), ("2.M1P1.h", 3)] and calls[0] == 1
    time.sleep(0.05)  # past the file system's timestamp tick (the wait SETTLE_NS stands for)
    (box.path / "new" / "3.M1P1.h").write_bytes(b"c\n")  # delivered
    assert [n for n, _ in session_files(box)] == ["1.M1P1.h", "2.M1P1.h", "3.M1P1.h"]
    time.sleep(0.05)
    (box.path / "new" / "1.M1P1.h").rename(box.path / "cur" / "1.M1P1.h:2,S")  # moved
    assert [n for n, _ in session_files(box)] == ["1.M1P1.h:2,S", "2.M1P1.h", "3.M1P1.h"]
    time.sleep(0.05)
    drop = Maildrop.open(box)
    assert drop is not None
    drop.messages[1].deleted = True
    drop.update()
    drop.close()
    assert [n for n, _ in session_files(box)] == ["1.M1P1.h:2,S", "3.M1P1.h"]
    assert calls[0] == 4  # first, after the delivery, the move and the UPDATE


def test_a_directory_changed_just_now_is_listed_every_time(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    calls = count_listings(monkeypatch)
    box = make(tmp_path, {"1.M1P1.h": b"a\n"})
    session_files(box)
    (box.path / "new" / "2.M1P1.h").write_bytes(b"b\n")  # within the same tick, maybe
    assert [n for n, _ in session_files(box)] == ["1.M1P1.h", "2.M1P1.h"]
    assert calls[0] == 2


def test_listings_kept_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maildrop_mod, "SETTLE_NS", 0)
    monkeypatch.setattr(maildrop_mod, "MAX_LISTED", 2)
    calls = count_listings(monkeypatch)
    big = make(tmp_path / "big", {"1.M1P1.h": b"a\n", "2.M1P1.h": b"b\n", "3.M1P1.h": b"c\n"})
    one = make(tmp_path / "one", {"1.M1P1.h": b"a\n"})
    two = make(tmp_path / "two", {"1.M1P1.h": b"a\n", "2.M1P1.h": b"b\n"})
    for box, listed in ((big, 2), (one, 3), (two, 4), (one, 5)):
        # big: too big to keep; one: kept; two: kept, after forgetting one
        assert session_files(box) == session_files(box)
        assert calls[0] == listed


def test_a_wire_size_in_the_name_is_used_without_reading(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"Subject: x\n\nhi\n"
    box = make(tmp_path, {
        "1.M1P1Q1.h,S=15,W=18": body,  # right: trusted, not read
        "2.M1P1Q2.h,S=99,W=5": body,  # S= is not the file's size: read instead
        "3.M1P1Q3.h": body,  # no sizes: read
    })
    opened: list[str] = []
    real_open = open

    def spy_open(path: object, *args: object, **kw: object) -> object:
        opened.append(Path(str(path)).name)
        return real_open(path, *args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(maildrop_mod, "_SIZES", {})
    monkeypatch.setattr("builtins.open", spy_open)
    drop = Maildrop.open(box)
    assert drop is not None
    assert [m.size for m in drop.messages] == [18, 18, 18]
    assert [m.uid for m in drop.messages] == ["1.M1P1Q1.h", "2.M1P1Q2.h", "3.M1P1Q3.h"]
    assert "1.M1P1Q1.h,S=15,W=18" not in opened
    assert {"2.M1P1Q2.h,S=99,W=5", "3.M1P1Q3.h"} <= set(opened)
    drop.close()
