"""Users file and Maildir store: parsing, safe names, atomic delivery, failures (ENOSPC)."""

from __future__ import annotations

import errno
import mailbox
import os

import pytest
from smtp._support import USERS, clock, envelope, envelope_replies, lines, queued, snapshot, trace

from mailproto.errors import ConfigError
from mailproto.smtp.server import ServerConfig, ServerSession
from mailproto.store import (
    Maildir,
    SpoolFile,
    Store,
    Users,
    arrival_key,
    valid_username,
)

INSUFFICIENT = b"452 4.3.1 Insufficient system storage\r\n"


# -- the users file -------------------------------------------------------------------------------
def test_parse_users_and_lists():
    users = Users.parse("# comment\n\nalice:secret\r\nBob:with:colons and spaces \n"
                        "  # indented comment\nstaff: alice, Bob ,\n"
                        "all:\tstaff, carol@remote.test, staff\nempty: \nnopass:\n")
    assert users.passwords == {"alice": "secret", "Bob": "with:colons and spaces ",
                               "nopass": ""}
    assert users.lists == {"staff": ["alice", "Bob"], "all": ["staff", "carol@remote.test",
                                                              "staff"], "empty": []}
    assert users.canonical("ALICE") == "alice" and users.canonical("bob") == "Bob"
    assert users.canonical("staff") is None  # a list is not a mailbox
    assert users.canonical("nobody") is None
    assert users.secret("BOB") == "with:colons and spaces " and users.secret("x") is None
    assert users.is_list("STAFF") and not users.is_list("alice")
    assert users.expand("all") == ["alice", "Bob", "carol@remote.test"]
    assert users.expand("empty") == [] and users.expand("alice") == []


def test_nested_list_loops_are_cut():
    users = Users.parse("a:x\nl1: l2, a\nl2: l1, b@remote.test\n")
    assert users.expand("l1") == ["b@remote.test", "a"]
    assert users.expand("l2") == ["a", "b@remote.test"]


@pytest.mark.parametrize("text", [
    "no colon here\n",
    ":nameless\n",
    "../x:pw\n",
    "a/b:pw\n",
    "a\0b:pw\n",
    ".hidden:pw\n",
    "x..y:pw\n",
    "..:pw\n",
    "sp ace:pw\n",
    "-dash:pw\n",
    "a" * 65 + ":pw\n",
    "alice:1\nalice:2\n",
    "alice:1\nALICE:2\n",  # one address, two Maildirs: refused
    "staff:pw\nstaff: a, b\n",
])
def test_bad_users_files_are_refused_with_the_line_number(text):
    with pytest.raises(ConfigError, match=r"users file:\d+: "):
        Users.parse(text)


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read users file"):
        Users.load(tmp_path / "missing")
    (tmp_path / "users").write_text("alice:secret\n", encoding="utf-8")
    assert Users.load(tmp_path / "users").passwords == {"alice": "secret"}


@pytest.mark.parametrize("name, ok", [
    ("alice", True), ("a.b+c-d_e", True), ("_x", True), ("A" * 64, True), ("A" * 65, False),
    ("../x", False), ("a/b", False), ("a\0b", False), (".", False), ("..", False),
    (".outbox", False), ("a..b", False), ("", False), ("a\\b", False), ("a b", False),
    ("ünï", False), ("a\nb", False),
])
def test_valid_username(name, ok):
    assert valid_username(name) is ok


# -- the store ------------------------------------------------------------------------------------
def test_store_layout_and_spool_cleaned_at_start(tmp_path):
    spool = tmp_path / ".spool"
    spool.mkdir()
    (spool / "left-by-a-crash").write_bytes(b"half a message")
    store = Store(tmp_path, Users.parse("alice:x\n"))
    assert list(spool.iterdir()) == []
    box = store.maildir("alice")
    assert {p.name for p in box.path.iterdir()} == {"cur", "new", "tmp"}
    assert store.outbox().path == tmp_path / ".outbox"


@pytest.mark.parametrize("name", ["../x", "a/b", "a\0b", "..", ".spool", "", "/etc"])
def test_unsafe_mailbox_names_are_refused(tmp_path, name):
    store = Store(tmp_path, Users())
    with pytest.raises(ValueError, match="unsafe user name"):
        store.maildir(name)
    assert not (tmp_path.parent / "x").exists()


def test_commit_delivers_one_copy_per_mailbox(tmp_path):
    store = Store(tmp_path, Users.parse("alice:x\nbob:y\n"))
    spool = store.open_spool()
    spool.write(b"Subject: hi\n\n")
    spool.write(b"body\n")
    assert spool.size == len(b"Subject: hi\n\nbody\n")
    paths = spool.commit(["alice", "bob", "alice"], ("s@remote.test", ["x@remote.test"]))
    assert len(paths) == 3
    assert snapshot(tmp_path) == {
        "alice": [b"Subject: hi\n\nbody\n"], "bob": [b"Subject: hi\n\nbody\n"],
        ".outbox": [b"X-Mailproto-Envelope-From: <s@remote.test>\n"
                    b"X-Mailproto-Envelope-To: <x@remote.test>\nSubject: hi\n\nbody\n"]}
    for path in paths:
        assert path.parent.name == "new"


def test_abort_leaves_nothing(tmp_path):
    store = Store(tmp_path, Users.parse("alice:x\n"))
    spool = store.open_spool()
    spool.write(b"x" * 100_000)
    spool.abort()
    assert snapshot(tmp_path) == {}


def test_commit_failure_halfway_removes_what_was_placed(tmp_path, monkeypatch):
    store = Store(tmp_path, Users.parse("alice:x\nbob:y\n"))
    spool = store.open_spool()
    spool.write(b"hello\n")
    real = SpoolFile._place
    calls = []

    def place(self, user, last):
        calls.append(user)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, user, last)

    monkeypatch.setattr(SpoolFile, "_place", place)
    with pytest.raises(OSError):
        spool.commit(["alice", "bob"])
    assert calls == ["alice", "bob"]
    assert snapshot(tmp_path) == {}  # alice's copy was taken back; spool and tmp/ are empty


def test_maildir_is_readable_by_the_stdlib(tmp_path):
    store = Store(tmp_path, Users.parse("alice:x\n"))
    for n in range(3):
        spool = store.open_spool()
        spool.write(f"Subject: {n}\n\nbody {n}\n".encode())
        spool.commit(["alice"])
    box = mailbox.Maildir(tmp_path / "alice", factory=None, create=False)
    assert sorted(m["Subject"] for m in box) == ["0", "1", "2"]
    paths = Maildir(tmp_path / "alice", create=False).message_paths()
    assert [p.read_bytes().split(b"\n")[0] for p in paths] == \
        [b"Subject: 0", b"Subject: 1", b"Subject: 2"]


def test_arrival_key_orders_by_time():
    names = ["1000.M500P1Q1.h", "999.M999999P1Q2.h", "1000.M40P1Q3.h:2,S", "junk"]
    assert sorted(names, key=arrival_key) == ["junk", "999.M999999P1Q2.h", "1000.M40P1Q3.h:2,S",
                                              "1000.M500P1Q1.h"]


def test_maildrop_lock_is_exclusive(tmp_path):
    box = Maildir(tmp_path / "alice")
    first = box.lock()
    assert first is not None
    assert box.lock() is None
    first.release()
    second = box.lock()
    assert second is not None
    second.release()


# -- storage failures through the SMTP session (RFC 5321 §4.2.2: 452) -----------------------------
def _session(tmp_path):
    store = Store(tmp_path, Users.parse(USERS))
    session = ServerSession(ServerConfig(), store, clock=clock)
    return session, session.initiate()


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("method", ["write", "commit", "_finish"])
def test_enospc_is_452_and_nothing_is_delivered(tmp_path, monkeypatch, method):
    monkeypatch.setattr(SpoolFile, method, _enospc)
    session, out = _session(tmp_path)
    out += session.receive(envelope("s@remote.test", "alice", "staff"))
    out += session.receive(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    out += session.receive(lines("NOOP"))
    assert out == envelope_replies(2) + INSUFFICIENT + b"250 2.0.0 Ok\r\n"
    monkeypatch.undo()
    assert snapshot(tmp_path) == {}  # nothing in any new/ or tmp/, spool empty
    # the next message goes through once there is room again
    out = session.receive(lines("MAIL FROM:<s@remote.test>", "RCPT TO:<alice>", "DATA")
                          + b"ok\r\n.\r\n")
    assert out.endswith(queued(0))
    assert snapshot(tmp_path) == {"alice": [trace("s@remote.test", "alice") + b"ok\n"]}


def test_enospc_when_the_spool_cannot_be_opened(tmp_path, monkeypatch):
    monkeypatch.setattr(Store, "open_spool", _enospc)
    session, out = _session(tmp_path)
    out += session.receive(envelope())
    assert out == envelope_replies()[: -len(b"354 End data with <CR><LF>.<CR><LF>\r\n")] + \
        b"451 4.3.0 Error: queue file write error\r\n"


def test_enospc_on_the_second_mailbox_delivers_to_none(tmp_path, monkeypatch):
    real = SpoolFile._place
    calls = []

    def place(self, user, last):
        calls.append(user)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, user, last)

    monkeypatch.setattr(SpoolFile, "_place", place)
    session, out = _session(tmp_path)
    out += session.receive(envelope("s@remote.test", "alice", "bob") + b"x\r\n.\r\n")
    assert out == envelope_replies(2) + INSUFFICIENT
    assert snapshot(tmp_path) == {}


# -- durability (RFC 5321 §6.1) -------------------------------------------------------------------
def test_fsync_store_syncs_the_message_before_it_is_placed(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    store = Store(tmp_path, Users.parse("alice:x\n"), fsync=True)
    spool = store.open_spool()
    spool.write(b"Subject: kept\n\nbody\n")
    assert synced == []  # not before the whole message is there
    paths = spool.commit(["alice"])
    assert len(synced) == 1 and paths[0].read_bytes() == b"Subject: kept\n\nbody\n"


def test_serve_fsyncs_by_default_and_no_fsync_turns_it_off():
    from mailproto.cli import build_parser
    from mailproto.net.server import ServeOptions

    parser = build_parser("serve")
    assert parser.parse_args(["serve"]).fsync is True
    assert parser.parse_args(["serve", "--no-fsync"]).fsync is False
    assert ServeOptions().fsync is True


# -- sizes in the file name (Dovecot's ,S= and ,W=) -----------------------------------------------
@pytest.mark.parametrize("pieces", [
    [b"Subject: a\n\nbody\n"],
    [b"Subject: a\r\n\r\nbody\r\n"],  # CRLF already: no octet added
    [b"Subject: a\n\nno final newline"],
    [b"line\r", b"\nnext\n"],  # a CRLF cut between two writes
    [b"cr alone\r"],
    [b""],
])
def test_delivered_names_carry_size_and_wire_size(tmp_path, pieces):
    from mailproto.pop3.wire import wire_size

    store = Store(tmp_path, Users.parse("alice:x\n"))
    spool = store.open_spool()
    for piece in pieces:
        spool.write(piece)
    (path,) = spool.commit(["alice"])
    data = path.read_bytes()
    with open(path, "rb") as f:
        expected = wire_size(f)
    assert path.name.endswith(f",S={len(data)},W={expected}")
