"""The maildrop of one POP3 session: a locked snapshot of the user's Maildir (RFC 1939 §5-§8).

At login the server takes the maildrop lock, lists the Maildir in arrival order and fixes the
message numbers for the session (RFC 1939 §5: "message numbers ... do not change during a
session").  Each message's size is counted once, as it goes out on the wire; each gets a unique id
derived from its Maildir unique name, which survives sessions (RFC 1939 §7, UIDL).  DELE marks,
RSET unmarks, and only :meth:`Maildrop.update` (QUIT, the UPDATE state, §6) removes files.

Mail delivered while the session runs is not part of the snapshot: it waits for the next one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..store import Maildir, MaildropLock
from .wire import CHUNK, WireEncoder, wire_size

#: RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
MAX_UID = 70


def uid_for(name: str) -> str:
    """The UIDL of a Maildir file: its unique name (the part before ``:``), if RFC 1939 allows
    it as it is, otherwise a hash of it (same length every time, so still stable)."""
    base = name.partition(":")[0]
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
    def open_message(self, message: Message) -> BinaryIO:
        """Open the file for reading (before the ``+OK``, so a failure can still be ``-ERR``)."""
        return open(self._locate(message), "rb")  # noqa: SIM115 - closed by the body generator

    def body(self, file: BinaryIO, lines: int | None = None) -> MessageText:
        """The multi-line body of RETR (``lines`` None) or TOP (RFC 1939 §7)."""
        return MessageText(file, lines)

    # -- UPDATE ------------------------------------------------------------------------------
    def update(self) -> tuple[int, int]:
        """Remove the marked messages (RFC 1939 §6); return (removed, failed)."""
        removed = failed = 0
        for m in self.messages:
            if not m.deleted:
                continue
            try:
                os.unlink(self._locate(m))
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

    def _locate(self, message: Message) -> Path:
        """The message's file, also after another program moved it from new/ to cur/ (with
        flags after the ``:``, as Dovecot and mutt do)."""
        if message.path.exists():
            return message.path
        base = message.path.name.partition(":")[0]
        for sub in ("cur", "new"):
            try:
                with os.scandir(self.maildir.path / sub) as it:
                    for entry in it:
                        if entry.name.partition(":")[0] == base:
                            return Path(entry.path)
            except FileNotFoundError:
                continue
        return message.path


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


def _scan(maildir: Maildir) -> list[Message]:
    """Number the messages in arrival order and count their wire sizes, reading each once."""
    messages: list[Message] = []
    seen: set[str] = set()
    for path in maildir.message_paths():
        try:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            size = _SIZES.get(key)
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
        messages.append(Message(len(messages) + 1, path, uid, size))
    return messages


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
