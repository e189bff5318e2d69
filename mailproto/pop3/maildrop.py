"""The maildrop of one POP3 session: a locked snapshot of the user's Maildir (RFC 1939 §5-§8).

At login the server takes the maildrop lock, lists the Maildir in arrival order and fixes the
message numbers for the session (RFC 1939 §5: "message numbers ... do not change during a
session").  Each message's size is counted once, as it goes out on the wire; each gets a unique id
derived from its Maildir unique name, which survives sessions (RFC 1939 §7, UIDL).  DELE marks,
RSET unmarks, and only :meth:`Maildrop.update` (QUIT, the UPDATE state, §6) removes files.

Mail delivered while the session runs is not part of the snapshot: it waits for the next one.

Logging in again to an unchanged maildrop is cheap: the listing is kept while new/ and cur/ keep
their times, a size while its file keeps its own (every file is still looked at, never trusted
by name).  A small message is read and encoded in one go; a big one streams in chunks.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..store import Maildir, MaildropLock
from .wire import CHUNK, WireEncoder, encode_text, wire_size

#: RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
MAX_UID = 70


#: ``,S=<size>`` and ``,W=<wire size>`` in a Maildir file name (Dovecot, Courier).
_SIZE_FIELD = re.compile(r",([SW])=(\d+)")


def uid_for(name: str) -> str:
    """The UIDL of a Maildir file: its unique name (the part before ``:``, without the
    ``,S=``/``,W=`` size fields), if RFC 1939 allows it as it is, otherwise a hash of it (same
    length every time, so still stable)."""
    base = name.partition(":")[0]
    if "," in base:
        base = _SIZE_FIELD.sub("", base)
    if 0 < len(base) <= MAX_UID and base.isascii() and base.isprintable() and " " not in base:
        return base
    return "H" + hashlib.sha256(base.encode("utf-8", "surrogateescape")).hexdigest()[:40]


@dataclass
class Message:
    """One message of the maildrop, as numbered for this session."""

    number: int
    path: Path
    uid: str
    #: Octets on the wire (CRLF line endings), as LIST and STAT count them (RFC 1939 §5).
    size: int
    deleted: bool = False
    #: Octets of the file when the maildrop was scanned (-1: not known).  A message no bigger
    #: than :data:`~mailproto.pop3.wire.CHUNK` is read in one go.
    file_size: int = -1


class Maildrop:
    """A locked maildrop: numbered messages, deletion marks, and the UPDATE that applies them."""

    def __init__(self, maildir: Maildir, lock: MaildropLock | None, messages: list[Message]
                 ) -> None:
        self.maildir = maildir
        self._lock = lock
        self.messages = messages

    @classmethod
    def open(cls, maildir: Maildir) -> Maildrop | None:
        """Lock and read the Maildir; None if another session holds the lock (RFC 1939 §8).

        Raises OSError if the Maildir cannot be read (the caller answers ``-ERR [SYS/TEMP]``).
        """
        lock = maildir.lock()
        if lock is None:
            return None
        try:
            return cls(maildir, lock, _scan(maildir))
        except BaseException:
            lock.release()
            raise

    # -- what the commands read --------------------------------------------------------------
    def get(self, number: int) -> Message | None:
        if 1 <= number <= len(self.messages):
            return self.messages[number - 1]
        return None

    def live(self) -> list[Message]:
        """Messages not marked deleted."""
        return [m for m in self.messages if not m.deleted]

    def stat(self) -> tuple[int, int]:
        """(count, octets) of the messages not marked deleted (RFC 1939 §5, STAT)."""
        live = self.live()
        return len(live), sum(m.size for m in live)

    def reset(self) -> None:
        for m in self.messages:
            m.deleted = False

    # -- message text ------------------------------------------------------------------------
    def text(self, message: Message, lines: int | None = None) -> bytes | MessageText:
        """The multi-line body of RETR (``lines`` None, RFC 1939 §5) or TOP (§7), terminator
        included.

        Called before the ``+OK``: if the file cannot be opened (or a small one read), this
        raises OSError and the answer can still be ``-ERR``.  A message of at most
        :data:`~mailproto.pop3.wire.CHUNK` octets is read whole and comes back as bytes, ready
        to send; a bigger one as a :class:`MessageText` that reads and encodes it chunk by
        chunk, so its size never sits in memory.
        """
        fd = self._open(message)
        try:
            expected = message.file_size
            if 0 <= expected <= CHUNK:
                # One octet more than the scan counted: getting exactly the count means the
                # file still ends where it did, so the size LIST gave holds.  A file that
                # changed (Maildir files do not) is read again from the start, in chunks.
                data = os.read(fd, expected + 1)
                if len(data) == expected:
                    os.close(fd)
                    if lines is not None:
                        data = b"".join(_head(io.BytesIO(data), lines))
                    return encode_text(data)
                os.lseek(fd, 0, os.SEEK_SET)
            file = open(fd, "rb")  # noqa: SIM115 - closed by MessageText
        except BaseException:
            os.close(fd)
            raise
        return MessageText(file, lines)

    # -- UPDATE ------------------------------------------------------------------------------
    def update(self) -> tuple[int, int]:
        """Remove the marked messages (RFC 1939 §6); return (removed, failed)."""
        removed = failed = 0
        for m in self.messages:
            if not m.deleted:
                continue
            try:
                try:
                    os.unlink(m.path)
                except FileNotFoundError:
                    moved = self._locate(m)
                    if moved is not None:
                        os.unlink(moved)
            except FileNotFoundError:
                pass  # already gone: what DELE asked for
            except OSError:
                failed += 1
                continue
            removed += 1
        return removed, failed

    def close(self) -> None:
        """Release the lock (the kernel also does, if the process dies)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def locked(self) -> bool:
        return self._lock is not None

    def _open(self, message: Message) -> int:
        """Open the message's file for reading: where the scan saw it, or where another program
        moved it since (new/ to cur/, with flags after the ``:``, as Dovecot and mutt do).

        The common case costs one ``open``: the directories are read only when that fails, and
        the new place is remembered for the next RETR, TOP or UPDATE.
        """
        try:
            return os.open(message.path, os.O_RDONLY)
        except FileNotFoundError:
            moved = self._locate(message)
            if moved is None:
                raise
            fd = os.open(moved, os.O_RDONLY)
            message.path = moved
            return fd

    def _locate(self, message: Message) -> Path | None:
        """The file now holding the message's unique name (the part before ``:``), if any."""
        base = message.path.name.partition(":")[0]
        for sub in ("cur", "new"):
            try:
                with os.scandir(self.maildir.path / sub) as it:
                    for entry in it:
                        if entry.name.partition(":")[0] == base:
                            return Path(entry.path)
            except FileNotFoundError:
                continue
        return None


class MessageText(Iterator[bytes]):
    """A message as a multi-line response body: wire chunks, the terminator last.

    The file is closed at the end, or by :meth:`close` (the connection dropped mid-message),
    even if no chunk was ever asked for.
    """

    def __init__(self, file: BinaryIO, lines: int | None = None) -> None:
        self._file = file
        self._pieces = _chunks(file) if lines is None else _head(file, lines)
        self._encoder: WireEncoder | None = WireEncoder()

    def __next__(self) -> bytes:
        encoder = self._encoder
        if encoder is None:
            raise StopIteration
        for piece in self._pieces:
            out = encoder.feed(piece)
            if out:
                return out
        self.close()
        return encoder.finish()

    def close(self) -> None:
        self._encoder = None
        self._file.close()


#: Wire sizes by (device, inode, size, mtime): a file that has not changed is not read again.
_SIZES: dict[tuple[int, int, int, int], int] = {}
#: Maildir listings by Maildir: the (device, inode, ctime, mtime) of new/ and cur/ when listed,
#: and the files in arrival order.
_LISTINGS: dict[str, tuple[tuple[tuple[int, int, int, int], ...], list[Path]]] = {}
#: A directory changed less than this long ago (ns) is listed again each time: a second change
#: within the same file-system timestamp tick would leave its times as they were.  Dovecot waits
#: the same second (MAILDIR_SYNC_SECS) before it trusts a Maildir's directory times.
SETTLE_NS = 1_000_000_000
#: Paths kept in all the listings together, at most (a forgotten listing is only read again).
MAX_LISTED = 200_000


def _listing(maildir: Maildir) -> list[Path]:
    """``maildir.message_paths()``, listed again only when new/ or cur/ changed.

    Adding, removing or renaming a file in a directory changes the directory's ctime and mtime,
    and nothing sets a ctime back, so unchanged times mean the same files (a file's own changes
    are caught by :func:`_scan`, which still stats every file).
    """
    try:
        stamps = tuple(_stamp(os.path.join(maildir.path, sub)) for sub in ("new", "cur"))
    except OSError:
        return maildir.message_paths()
    key = os.fspath(maildir.path)
    known = _LISTINGS.get(key)
    if known is not None and known[0] == stamps:
        return known[1]
    _LISTINGS.pop(key, None)
    paths = maildir.message_paths()
    if time.time_ns() - max(s[2] for s in stamps) >= SETTLE_NS:
        if sum(len(kept) for _, kept in _LISTINGS.values()) + len(paths) > MAX_LISTED:
            _LISTINGS.clear()
        if len(paths) <= MAX_LISTED:
            _LISTINGS[key] = (stamps, paths)
    return paths


def _stamp(directory: str) -> tuple[int, int, int, int]:
    """What tells a directory's listing apart from an earlier one."""
    st = os.stat(directory)
    return st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns


def _scan(maildir: Maildir) -> list[Message]:
    """Number the messages in arrival order and count their wire sizes, reading each once."""
    messages: list[Message] = []
    seen: set[str] = set()
    for path in _listing(maildir):
        try:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            size = _SIZES.get(key) or _named_wire_size(path.name, st.st_size)
            if size is None:
                if len(_SIZES) > 100_000:  # bounded: a forgotten size is only read again
                    _SIZES.clear()
                with open(path, "rb") as f:
                    size = _SIZES[key] = wire_size(f)
        except (FileNotFoundError, IsADirectoryError):
            continue  # removed or not a message: not part of the snapshot
        uid = uid_for(path.name)
        if uid in seen:  # the same unique name in new/ and cur/: keep the ids unique
            uid = uid_for(f"{path.parent.name}/{path.name}\0")
        seen.add(uid)
        messages.append(Message(len(messages) + 1, path, uid, size, file_size=st.st_size))
    return messages


def _named_wire_size(name: str, file_size: int) -> int | None:
    """The ``,W=`` size in the file name, if the name has one and its ``,S=`` matches the file
    (Dovecot trusts ``W=`` the same way; a name from elsewhere without it is read instead)."""
    base = name.partition(":")[0]
    if ",W=" not in base:
        return None
    fields = dict(_SIZE_FIELD.findall(base))
    if "W" not in fields or ("S" in fields and int(fields["S"]) != file_size):
        return None
    return int(fields["W"])


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(CHUNK):
        yield chunk


def _head(file: BinaryIO, lines: int) -> Iterator[bytes]:
    """The header, the blank line after it and the first ``lines`` lines of the body, as stored.

    A message without a blank line is all header.  The header is read line by line (it is short);
    the body in chunks, counting LFs, so ``TOP n 99999999`` (fetchmail) costs no more than RETR.
    """
    at_line_start = True
    while True:
        piece = file.readline(CHUNK)
        if not piece:
            return
        yield piece
        if at_line_start and piece in (b"\n", b"\r\n"):
            break
        at_line_start = piece.endswith(b"\n")
    left = lines
    while left > 0:
        chunk = file.read(CHUNK)
        if not chunk:
            return
        count = chunk.count(b"\n")
        if count < left:
            left -= count
            yield chunk
            continue
        end = -1
        for _ in range(left):
            end = chunk.index(b"\n", end + 1)
        yield chunk[: end + 1]
        return
