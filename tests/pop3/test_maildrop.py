"""A session's maildrop: numbering, sizes, UIDs, TOP cuts, UPDATE (RFC 1939 §5-§8)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from mailproto.pop3 import maildrop as maildrop_mod
from mailproto.pop3.maildrop import Maildrop, _head, uid_for
from mailproto.store import Maildir

UID_OK = re.compile(r"[\x21-\x7e]{1,70}\Z")


@pytest.mark.parametrize("name, expected", [
    ("1700000000.M123456P42Q1.host", "1700000000.M123456P42Q1.host"),
    ("1700000000.M123456P42Q1.host:2,S", "1700000000.M123456P42Q1.host"),
    ("1.M1P1.h\\057x:2,", "1.M1P1.h\\057x"),
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
