"""Users and Maildir mailboxes: the storage contract other tools rely on.

* One Maildir per user at ``<data>/<user>/`` (``cur/ new/ tmp/``), as Dovecot and mutt read it.
* Delivery streams the message into a spool file on the same file system, then links it into
  each recipient's ``new/`` (the last one by a rename): a reader never sees a half-written
  message, and a crash leaves at most a file in the spool (cleaned at the next start).
* Files use LF line endings, as on any Unix mail store; POP3 converts to CRLF on the wire.
* A delivered file's name carries its sizes as Dovecot and Courier write them:
  ``<unique>,S=<octets>,W=<octets with CRLF line endings>``, so POP3 (ours or Dovecot's) can
  answer STAT and LIST without reading every message.
* Mail for other domains waits in ``<data>/.outbox/`` (a Maildir) with its envelope in
  ``X-Mailproto-Envelope-*`` header lines at the top, which the relay strips.
* Users file: one ``name:password`` per line, ``#`` comments; a line whose value starts with
  white space is a list (``staff: alice, bob``), which EXPN expands and mail to it reaches.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .crlf import CRLFSize
from .errors import ConfigError

#: User names become directory names: keep them to a safe alphabet (no ``/``, NUL, leading dot).
_USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,63}\Z")
OUTBOX = ".outbox"
SPOOL = ".spool"


def valid_username(name: str) -> bool:
    """True for names that are safe as a directory under the data dir (no ``..``, ``/``, NUL)."""
    return bool(_USERNAME.match(name)) and ".." not in name


@dataclass
class Users:
    """The users file: passwords (plain: APOP and CRAM-MD5 need them) and lists."""

    passwords: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    _canon: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, text: str, source: str = "users file") -> Users:
        users = cls()
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, value = line.partition(":")
            name = name.strip()
            if not sep or not valid_username(name):
                raise ConfigError(f"{source}:{number}: expected 'name:password', got {line!r}")
            if name.lower() in users._canon:
                # Names are looked up case-insensitively: a second entry would silently shadow
                # the first (and "Alice" and "alice" would be two Maildirs for one address).
                raise ConfigError(f"{source}:{number}: {name!r} is defined twice")
            if value[:1].isspace():
                members = [m.strip() for m in value.split(",") if m.strip()]
                users.lists[name.lower()] = members
            else:
                users.passwords[name] = value
            users._canon[name.lower()] = name
        return users

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Users:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read users file {path}: {exc.strerror}") from exc
        return cls.parse(text, str(path))

    def canonical(self, name: str) -> str | None:
        """The account name as written in the file, looked up case-insensitively."""
        canon = self._canon.get(name.lower())
        return canon if canon in self.passwords else None

    def secret(self, name: str) -> str | None:
        canon = self.canonical(name)
        return self.passwords[canon] if canon else None

    def is_list(self, name: str) -> bool:
        return name.lower() in self.lists

    def expand(self, name: str, _seen: frozenset[str] = frozenset()) -> list[str]:
        """Members of a list, each once; a bare name that is a list is expanded in place, once
        (a loop back to a list already being expanded adds nothing).  ``x@domain`` is an
        address, never a local list: only the server knows which domains are local."""
        seen = _seen | {name.lower()}
        out: list[str] = []
        for member in self.lists.get(name.lower(), []):
            if "@" not in member and self.is_list(member):
                found = [] if member.lower() in seen else self.expand(member, seen)
            else:
                found = [member]
            out.extend(m for m in found if m not in out)
        return out


class _Unique:
    """Maildir unique names (``<sec>.M<usec>P<pid>Q<n>.<host>``), sortable by arrival time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        # Maildir: "/" and ":" in the host name are written in octal; "," too (Dovecot), since
        # ",S=" and ",W=" follow the unique name.
        self._host = (socket.gethostname().replace("/", "\\057").replace(":", "\\072")
                      .replace(",", "\\054"))
        self._pid = os.getpid()  # a system call each time otherwise; a fork updates it
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._pid = os.getpid()

    def __call__(self) -> str:
        with self._lock:
            self._count += 1
            count = self._count
        now = time.time()
        sec = int(now)
        usec = int((now - sec) * 1_000_000)
        return f"{sec}.M{usec:06d}P{self._pid}Q{count}.{self._host}"


unique_name = _Unique()


class Maildir:
    """One Maildir folder (``cur/ new/ tmp/``)."""

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        self.path = Path(path)
        #: ``new/`` as a plain string: delivery joins names to it without pathlib's cost.
        self.new_dir = os.path.join(self.path, "new")
        if create:
            for sub in ("cur", "new", "tmp"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)

    def message_paths(self) -> list[Path]:
        """Files in ``new/`` and ``cur/``, in arrival order (by unique name)."""
        paths = []
        for sub in ("new", "cur"):
            try:
                with os.scandir(self.path / sub) as it:
                    paths.extend(Path(e.path) for e in it if not e.name.startswith("."))
            except FileNotFoundError:
                continue
        return sorted(paths, key=lambda p: arrival_key(p.name))

    def lock(self) -> MaildropLock | None:
        """Take the POP3 maildrop lock (RFC 1939 §8), or None if someone holds it."""
        return MaildropLock.acquire(self.path / ".mailproto.lock")


def arrival_key(name: str) -> tuple[int, int, str]:
    """Sort key for unique names: seconds, then microseconds, then the rest."""
    base = name.partition(":")[0]
    sec, _, rest = base.partition(".")
    match = re.match(r"M(\d+)", rest)
    try:
        return (int(sec), int(match.group(1)) if match else 0, rest)
    except ValueError:
        return (0, 0, name)


class MaildropLock:
    """An exclusive ``flock`` on a lock file: released on close, and by the kernel when the
    process dies, so a vanished client or a crash never leaves a maildrop locked."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> MaildropLock | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                return None
            raise
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


class Store:
    """The data directory: one Maildir per user, the outbox and the spool."""

    def __init__(self, root: str | os.PathLike[str], users: Users, fsync: bool = False,
                 unique: Callable[[], str] = unique_name) -> None:
        self.root = Path(root)
        self.users = users
        self.fsync = fsync
        #: Maildir unique names; the in-memory pair gives a deterministic one.
        self.unique = unique
        self.root.mkdir(parents=True, exist_ok=True)
        self.spool = self.root / SPOOL
        self.spool.mkdir(exist_ok=True)
        self._spool_dir = str(self.spool)
        self._clean_spool()
        #: Maildirs already made (their cur/ new/ tmp/ exist): no mkdir per delivery.
        self._boxes: dict[str, Maildir] = {}

    def _clean_spool(self) -> None:
        """A spool file left by a crash was never acknowledged (no 250): remove it."""
        for entry in self.spool.iterdir():
            if entry.is_file():
                entry.unlink(missing_ok=True)

    def maildir(self, user: str) -> Maildir:
        box = self._boxes.get(user)
        if box is None:
            if not valid_username(user):
                raise ValueError(f"unsafe user name {user!r}")
            box = self._boxes[user] = Maildir(self.root / user)
        return box

    def forget(self, user: str) -> None:
        """Make the Maildir again on next use (someone removed it under us)."""
        self._boxes.pop(user, None)

    def outbox(self) -> Maildir:
        return Maildir(self.root / OUTBOX)

    def open_spool(self) -> SpoolFile:
        return SpoolFile(self, Path(os.path.join(self._spool_dir, self.unique())))


class SpoolFile:
    """A message being received: bytes are streamed to disk, then committed to every mailbox
    at once (links, then renames) or aborted (nothing anywhere).

    The file is written through a plain descriptor with our own buffer: no buffered-file object,
    no ``fstat``/``lseek`` at open, one ``write`` per 64 KB.  Delivering a small message costs
    the file system an ``open``, a ``write``, a ``close`` and a ``rename``, which is the least a
    Maildir delivery can cost."""

    BUFFER = 1 << 16

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path
        self._fd: int | None = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._wire = CRLFSize()  # the octets written, and the ,W= of the delivered name

    def write(self, data: bytes) -> None:
        if not data:
            return
        if type(data) is not bytes:  # kept until written: a caller's buffer may change
            data = bytes(data)
        self._pending.append(data)
        self._pending_size += len(data)
        self._wire.feed(data)
        if self._pending_size >= self.BUFFER:
            self._write_pending()

    @property
    def size(self) -> int:
        """Octets written so far (the ``,S=`` of the delivered name)."""
        return self._wire.size

    @property
    def wire_size(self) -> int:
        """Octets as POP3 sends the message (RFC 1939 §5, LIST): every line ending CRLF, the
        last line ended too; before byte-stuffing and the terminator."""
        return self._wire.total

    def _write_pending(self) -> None:
        if self._fd is None:
            raise ValueError("write to a closed spool file")
        data = b"".join(self._pending) if len(self._pending) != 1 else self._pending[0]
        self._pending.clear()
        self._pending_size = 0
        view = memoryview(data)
        while view:  # a regular file writes it all, but a short write must not lose bytes
            view = view[os.write(self._fd, view):]

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:  # neither commit() nor abort(): no leaked fd
            self._close()

    def _finish(self) -> None:
        try:
            if self._pending:
                self._write_pending()
            if self.store.fsync and self._fd is not None:
                os.fsync(self._fd)
        finally:
            self._close()  # also when the write fails (ENOSPC): no leaked descriptor

    def commit(self, users: Iterable[str], outbox_envelope: tuple[str, list[str]] | None = None
               ) -> list[Path]:
        """Deliver into each user's ``new/`` (and the outbox); return the new paths.

        On an error (ENOSPC ...) every copy already placed is removed and the error is raised, so
        the client's 452 means "nothing was delivered" and a retry does not duplicate.
        """
        placed: list[Path] = []
        boxes = list(dict.fromkeys(users))  # one copy per mailbox
        renamed = False
        try:
            self._finish()
            if outbox_envelope is not None:  # a copy with the envelope: before the spool moves
                placed.append(self._place_outbox(*outbox_envelope))
            for i, user in enumerate(boxes):
                last = i == len(boxes) - 1
                placed.append(self._place(user, last=last))
                renamed = last
        except BaseException:
            for path in placed:
                path.unlink(missing_ok=True)
            raise
        finally:
            if not renamed:  # the last mailbox took the spool file itself by its rename
                self.path.unlink(missing_ok=True)
        return placed

    def _place(self, user: str, last: bool) -> Path:
        """Link (or, for the last mailbox, rename) the finished spool file into ``new/``.

        The spool file is complete and on the same file system, so linking or renaming it
        straight into ``new/`` is as atomic as Maildir's tmp/-then-rename: a reader sees the
        whole message or nothing.  Another file system falls back to tmp/ and a rename."""
        name = f"{self.store.unique()},S={self.size},W={self.wire_size}"
        for attempt in (1, 2):
            new = os.path.join(self.store.maildir(user).new_dir, name)
            try:
                (os.rename if last else os.link)(self.path, new)
                return Path(new)
            except FileNotFoundError:
                if attempt == 2 or not self.path.exists():
                    raise
                self.store.forget(user)  # the Maildir was removed: make it again
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                break
        box = self.store.maildir(user)
        tmp = box.path / "tmp" / name
        shutil.copyfile(self.path, tmp)  # another file system, or no hard links
        new = box.path / "new" / name
        os.rename(tmp, new)
        if last:  # the caller counts on the last placement taking the spool file away
            self.path.unlink(missing_ok=True)
        return new

    def _place_outbox(self, sender: str, recipients: list[str]) -> Path:
        box = self.store.outbox()
        name = self.store.unique()
        tmp = box.path / "tmp" / name
        with open(tmp, "wb") as out, open(self.path, "rb") as src:
            out.write(f"X-Mailproto-Envelope-From: <{sender}>\n".encode())
            for rcpt in recipients:
                out.write(f"X-Mailproto-Envelope-To: <{rcpt}>\n".encode())
            shutil.copyfileobj(src, out, 1 << 16)
            out.flush()
            if self.store.fsync:
                os.fsync(out.fileno())
        new = box.path / "new" / name
        os.rename(tmp, new)
        return new

    def abort(self) -> None:
        """Forget the message: nothing is delivered."""
        self._pending.clear()
        try:
            self._close()
        finally:
            self.path.unlink(missing_ok=True)
