"""Helpers for tests that run real third-party mail programs against each other.

Everything here follows /work/shared/docs/PEERS.md ("PEERS.md" below); the comments name the
gotcha each piece of code works around.  Nothing here imports ``mailproto``: these helpers
are the fixed reference points the project's own servers and clients are compared against.

A missing program or module skips the test, unless ``MAILPROTO_REQUIRE_PEERS=1`` is set
(CI sets it after running ``.ci/install-peers``), in which case the test fails instead, so a
broken CI image cannot turn the interoperability suite into a sea of silent skips.
"""

from __future__ import annotations

import contextlib
import grp
import importlib
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REQUIRE_ENV = "MAILPROTO_REQUIRE_PEERS"

#: Debian package that provides each outside program (for the skip/fail reason).
DEBIAN_PACKAGES: dict[str, str] = {
    "swaks": "swaks",
    "curl": "curl",
    "fetchmail": "fetchmail",
    "msmtp": "msmtp",
    "mutt": "mutt",
    "s-nail": "s-nail",
    "dovecot": "dovecot-core dovecot-pop3d",
    "doveadm": "dovecot-core",
    "nc": "netcat-openbsd",
    "telnet": "telnet",
    "chromium": "chromium",
    "script": "bsdutils",
    "useradd": "passwd",
}

#: PyPI distribution that provides each Python module.
PYPI_PACKAGES: dict[str, str] = {"aiosmtpd": "aiosmtpd"}

#: Dovecot's POP3 binaries come from dovecot-pop3d, not dovecot-core.
DOVECOT_LIBEXEC = Path("/usr/lib/dovecot")

#: System user that owns the Maildirs Dovecot serves (PEERS.md: Dovecot refuses uid 0).
MAIL_USER = "mailproto-test"

LOOPBACK = "127.0.0.1"

# curl honours ALL_PROXY / all_proxy for every protocol, smtp:// and pop3:// included; a proxy
# inherited from a developer's shell or a CI runner must not sit between two loopback peers.
_PROXY_VARS = ("ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY",
               "https_proxy", "FTP_PROXY", "ftp_proxy", "SOCKS_PROXY", "socks_proxy")


# aiosmtpd log noise that says nothing about the test: aiosmtpd 1.4 itself sets the deprecated
# Session.login_data on every successful AUTH, logging a warning each time.
logging.getLogger("mail.log").addFilter(
    lambda record: "login_data is deprecated" not in record.getMessage()
)


# --------------------------------------------------------------------------------------------
# Requirements


def peers_required() -> bool:
    """True when a missing peer must fail the test rather than skip it (CI)."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def _missing(reason: str) -> None:
    if peers_required():
        pytest.fail(f"{reason} [{REQUIRE_ENV}=1]", pytrace=False)
    pytest.skip(reason)


def require_program(name: str) -> str:
    """Full path of outside program *name*; skip (or fail under CI) if it is not installed.

    Also looks in /usr/sbin and /sbin, which are not on a non-root PATH (dovecot lives there).
    """
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        package = DEBIAN_PACKAGES.get(name, name)
        _missing(f"{name} is not installed (apt-get install {package})")
    assert path is not None
    return path


def require_module(name: str) -> ModuleType:
    """Import and return Python module *name*; skip (or fail under CI) if it is missing."""
    if importlib.util.find_spec(name) is None:
        package = PYPI_PACKAGES.get(name.split(".")[0], name)
        _missing(f"{name} is not installed (pip install {package})")
    return importlib.import_module(name)


def require_root(what: str) -> None:
    """Skip (or fail under CI) unless running as root, which *what* needs."""
    if os.geteuid() != 0:
        _missing(f"{what} needs root (to create {MAIL_USER} and switch users)")


# --------------------------------------------------------------------------------------------
# Small utilities


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Poll until *host*:*port* accepts a TCP connection, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{host}:{port} did not accept connections in {timeout}s"
                ) from None
            time.sleep(0.02)


@contextlib.contextmanager
def traversable_tmpdir(prefix: str = "mailproto-") -> Iterator[Path]:
    """A fresh directory in /tmp that other users (Dovecot's mail user) can traverse.

    pytest's ``tmp_path`` lives under /tmp/pytest-of-root, mode 0700, which the unprivileged
    ``mailproto-test`` user cannot enter, so a Maildir there cannot be served by Dovecot.
    /tmp (not $TMPDIR) also keeps unix socket paths under Dovecot's base_dir short (108 bytes).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None))
    try:
        path.chmod(0o711)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def peer_env(**overrides: str) -> dict[str, str]:
    """Environment for an outside program: ours minus proxies, plus *overrides*."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env.update(overrides)
    return env


def _decode(data: bytes | None) -> str:
    # surrogateescape keeps undecodable bytes recoverable: s.encode("utf-8", "surrogateescape")
    return (data or b"").decode("utf-8", errors="surrogateescape")


def run_program(
    argv: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | str | None = None,
    timeout: float = 30,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run *argv* with stdout/stderr captured; never raises on a non-zero exit status.

    With ``text=True`` stdout/stderr are ``str`` decoded as UTF-8 *without* newline
    translation (``\\r\\n`` stays visible, unlike ``subprocess.run(text=True)``); with
    ``text=False`` they are the exact bytes.  A timeout raises AssertionError carrying
    whatever the program had said, so the failing test shows it.
    """
    args = [os.fspath(a) for a in argv]
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.run(
            args,
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=dict(env) if env is not None else peer_env(),
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{shlex.join(args)} timed out after {timeout}s\n"
            f"--- stdout ---\n{_decode(exc.stdout)}\n--- stderr ---\n{_decode(exc.stderr)}"
        ) from None
    if text:
        return subprocess.CompletedProcess(
            proc.args, proc.returncode, _decode(proc.stdout), _decode(proc.stderr)
        )
    return proc


def describe(proc: subprocess.CompletedProcess[Any]) -> str:
    """Multi-line summary of a finished program, for assertion messages."""
    out = proc.stdout if isinstance(proc.stdout, str) else _decode(proc.stdout)
    err = proc.stderr if isinstance(proc.stderr, str) else _decode(proc.stderr)
    argv = proc.args if isinstance(proc.args, str) else shlex.join(map(str, proc.args))
    return f"$ {argv}\nexit {proc.returncode}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"


# --------------------------------------------------------------------------------------------
# Thin wrappers around the client programs


def run_swaks(
    args: Sequence[str],
    *,
    input: bytes | str | None = None,
    timeout: float = 30,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run ``swaks ARGS`` (give ``--server 127.0.0.1:PORT`` yourself).

    PEERS.md: ``--body @file`` needs the ``@``; exit 28 = AUTH failed, 23 = MAIL refused.
    """
    return run_program([require_program("swaks"), *args], input=input, timeout=timeout,
                       text=text)


def run_curl(
    args: Sequence[str],
    *,
    input: bytes | str | None = None,
    timeout: float = 30,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run ``curl ARGS`` with proxies removed from the environment.

    PEERS.md: for POP3 a single-line custom command (``-X STAT``) needs ``-I`` or curl waits
    for a ``.`` until the server times out; for SMTP put the EHLO name in the URL path.
    """
    return run_program([require_program("curl"), *args], input=input, timeout=timeout,
                       text=text)


def run_msmtp(
    recipients: Sequence[str],
    message: bytes | str,
    *,
    host: str = LOOPBACK,
    port: int,
    from_addr: str,
    user: str | None = None,
    password: str | None = None,
    auth: str = "plain",
    domain: str = "client.test",
    extra_args: Sequence[str] = (),
    rc_extra: str = "",
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Send *message* to *recipients* with msmtp through host:port, plain TCP.

    With *user* set, AUTH uses mechanism *auth* ("plain" or "login"); without, no AUTH.
    ``--debug`` is on, so stdout carries the SMTP dialogue.  msmtp adds ``From:``, ``Date:``
    and ``Message-ID:`` headers to a message that lacks them, and sends no ``SIZE=``.
    """
    msmtp = require_program("msmtp")
    if user is not None and auth.lower() in ("on", ""):
        # PEERS.md: with `tls off`, `auth on` refuses to send a password; name the mechanism.
        raise ValueError("msmtp over plain TCP needs a named mechanism: auth='plain' or 'login'")
    lines = [
        "defaults",
        "tls off",
        "syslog off",
        "logfile",
        "account default",
        f"host {host}",
        f"port {port}",
        f"from {from_addr}",
        f"domain {domain}",
    ]
    if user is None:
        lines.append("auth off")
    else:
        lines += [f"auth {auth.lower()}", f"user {user}", f'password "{password or ""}"']
    with tempfile.TemporaryDirectory(prefix="mailproto-msmtp-") as tmp:
        rc = Path(tmp) / "msmtprc"
        rc.write_text("\n".join(lines) + "\n" + rc_extra + "\n")
        rc.chmod(0o600)  # PEERS.md: msmtp insists on mode 0600 for a file holding a password
        return run_program(
            [msmtp, "-C", str(rc), "-a", "default", "--debug", *extra_args, "--", *recipients],
            input=message,
            timeout=timeout,
        )


_MAILDIR_MDA = """#!/bin/sh
# Maildir delivery for fetchmail --mda: one file per message, written to tmp/ then renamed.
set -e
md=$1
f=$(mktemp "$md/tmp/fetchmail.XXXXXXXXXX")
cat > "$f"
mv "$f" "$md/new/${f##*/}"
"""


def run_fetchmail(
    *,
    host: str = LOOPBACK,
    port: int,
    user: str,
    password: str,
    deliver_to: str | os.PathLike[str],
    maildir: bool | None = None,
    protocol: str = "pop3",
    keep: bool = True,
    fetchall: bool = False,
    idfile: str | os.PathLike[str] | None = None,
    verbose: bool = True,
    extra_args: Sequence[str] = (),
    rc_extra: str = "",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Fetch *user*'s mailbox with fetchmail, delivering through ``--mda`` to *deliver_to*.

    *deliver_to* is a Maildir (one file per message under new/) when *maildir* is true, or when
    it is None and *deliver_to* is an existing directory; otherwise a plain file every message
    is appended to.  *protocol* is "pop3" or "apop".  Exit status 0 = mail fetched, 1 = none.
    fetchmail hands the MDA LF-ended text and adds a ``Received:`` header on top.
    """
    fetchmail = require_program("fetchmail")
    if protocol.lower() not in ("pop3", "apop"):
        raise ValueError(f"protocol must be 'pop3' or 'apop', not {protocol!r}")
    # PEERS.md: fetchmail needs a passwd entry for its uid (it looks up its own user name).
    try:
        pwd.getpwuid(os.getuid())
    except KeyError:
        _missing(f"fetchmail needs a passwd entry for uid {os.getuid()}")
    target = Path(deliver_to)
    if maildir is None:
        maildir = target.is_dir()
    if '"' in password or '"' in user:
        raise ValueError("double quotes in user/password are not supported by this helper")
    with tempfile.TemporaryDirectory(prefix="mailproto-fetchmail-") as tmp:
        home = Path(tmp)
        if maildir:
            for sub in ("cur", "new", "tmp"):
                (target / sub).mkdir(parents=True, exist_ok=True)
            script = home / "maildir-mda"
            script.write_text(_MAILDIR_MDA)
            script.chmod(0o700)
            mda = f"{shlex.quote(str(script))} {shlex.quote(str(target))}"
        else:
            mda = f"cat >> {shlex.quote(str(target))}"
        rc = home / "fetchmailrc"
        rc.write_text(
            "set no syslog\n"
            "set no bouncemail\n"
            f"poll {host} with proto {protocol.upper()} port {port}\n"
            f'  user "{user}" there with password "{password}"\n'
            # PEERS.md: fetchmail 6.4 sends STLS even when CAPA does not offer it and gives up
            # when it fails, unless sslproto is empty.
            '  sslproto ""\n'
            f"  {'keep' if keep else 'no keep'}\n"
            f"  {'fetchall' if fetchall else 'no fetchall'}\n"
            + rc_extra + "\n"
        )
        # PEERS.md: the rc must be mode <= 0700 and owned by the caller.
        rc.chmod(0o600)
        # PEERS.md: with --keep fetchmail remembers UIDs in the idfile; a fresh one per call
        # unless the caller passes one (to test what a second run skips).
        ids = Path(idfile) if idfile is not None else home / "fetchids"
        # An own lock file: as root fetchmail locks /var/run/fetchmail.pid (not $FETCHMAILHOME),
        # so concurrent runs (other tests, other engineers) fail with exit 8, "another
        # foreground fetchmail is running".
        argv = [fetchmail, "--nodetach", "-f", str(rc), "--idfile", str(ids),
                "--pidfile", str(home / "fetchmail.pid"), "--mda", mda]
        if verbose:
            argv.append("-v")
        argv += list(extra_args)
        # FETCHMAILHOME keeps the rest of fetchmail's state out of the caller's home.
        env = peer_env(FETCHMAILHOME=str(home))
        return run_program(argv, timeout=timeout, env=env)


def run_snail(
    args: Sequence[str],
    *,
    input: bytes | str | None = None,
    timeout: float = 30,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run ``s-nail -:/ ARGS``: ``-:/`` makes s-nail ignore every rc file (PEERS.md).

    Add ``-#`` (batch mode) and ``-R`` (read-only) as needed; the password variable includes
    the port: ``-Spassword-alice@127.0.0.1:1110=secret``.
    """
    return run_program([require_program("s-nail"), "-:/", *args], input=input,
                       timeout=timeout, text=text, env=peer_env(MAILRC="/dev/null"))


def run_mutt(
    args: Sequence[str],
    *,
    input: bytes | str | None = None,
    tty: bool = False,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run ``mutt -n -F /dev/null ARGS`` (no system or user muttrc).

    With ``tty=True`` mutt runs under ``script -qec`` because its interactive side needs a
    terminal (PEERS.md); stdout then carries terminal escape sequences.  Quote empty values in
    ``set`` commands (``record=""``): in ``set a= b=1`` mutt takes ``b=1`` as the value of a.
    mutt runs with HOME and the working directory in a throw-away directory, because it
    creates ~/Mail, caches and the like (relative to the cwd when a path setting goes wrong).
    """
    argv = [require_program("mutt"), "-n", "-F", "/dev/null", *args]
    if tty:
        argv = [require_program("script"), "-qec", shlex.join(argv), "/dev/null"]
    with tempfile.TemporaryDirectory(prefix="mailproto-mutt-") as home:
        return run_program(argv, input=input, timeout=timeout, cwd=home,
                           env=peer_env(TERM="dumb", HOME=home))


# --------------------------------------------------------------------------------------------
# Dovecot as a POP3 reference server


def ensure_mail_user(name: str = MAIL_USER) -> pwd.struct_passwd:
    """The system user that owns served Maildirs, created with ``useradd --system`` if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    require_root(f"creating the system user {name}")
    useradd = require_program("useradd")
    proc = run_program([useradd, "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name])
    try:
        # A concurrent test run may have created it between our lookup and useradd (exit 9).
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"could not create user {name}:\n{describe(proc)}") from None


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # members exist but run as another user: still alive
        return True
    return True


class DovecotPOP3:
    """Run Dovecot as a POP3 server on a free loopback port with its own config (PEERS.md).

    ``with DovecotPOP3({"alice": "secret"}) as dv:`` serves Maildirs ``<mail_root>/<user>``;
    *mail_root* defaults to a directory inside the instance's own temp dir.  A given
    *mail_root* must be reachable by the ``mailproto-test`` user (see traversable_tmpdir):
    Dovecot reads and writes the Maildirs as that user, never as root.  Put messages in with
    :meth:`add_message` (or write into ``dv.maildir(user) / "new"`` yourself).

    The master runs as root (it must, to switch to the mail user); the login, auth and pop3
    processes run unprivileged.  Needs Debian ``dovecot-core`` + ``dovecot-pop3d``.

    A failed login costs 2 s, and then every login from 127.0.0.1 is delayed 4-15 s by anvil's
    auth penalty (PEERS.md: "run bad-password tests last").  Unless *auth_penalty* is true,
    both are switched off here (auth_failure_delay = 0, no anvil-auth-penalty socket), which
    leaves about 0.5 s per failed login and none on the next good one.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        mail_root: str | os.PathLike[str] | None = None,
        *,
        mail_user: str = MAIL_USER,
        extra_config: str = "",
        auth_penalty: bool = False,
        start_timeout: float = 10.0,
    ) -> None:
        for name, password in users.items():
            if not re.fullmatch(r"[A-Za-z0-9._+-]+", name) or any(c in password for c in ":\n"):
                raise ValueError(f"unsupported user/password for a passwd-file: {name!r}")
        self.users = dict(users)
        self.host = LOOPBACK
        self.port = 0
        self.greeting = b""
        self._given_root = Path(mail_root) if mail_root is not None else None
        self._mail_user = mail_user
        self._extra_config = extra_config
        self._auth_penalty = auth_penalty
        self._start_timeout = start_timeout
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._final_log = ""
        self.uid = -1
        self.gid = -1

    # -- paths ------------------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """The instance's temp dir (config, passwd-file, base_dir, state_dir, log)."""
        if self._workdir is None:
            raise RuntimeError("DovecotPOP3 is not running")
        return self._workdir

    @property
    def mail_root(self) -> Path:
        return self._given_root if self._given_root is not None else self.workdir / "mail"

    @property
    def config_path(self) -> Path:
        return self.workdir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dovecot.log"

    def maildir(self, user: str) -> Path:
        """``<mail_root>/<user>``, created as a Maildir (cur/new/tmp) owned by the mail user."""
        path = self.mail_root / user
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if self.uid >= 0:
            _chown_tree(path, self.uid, self.gid)
        return path

    def add_message(self, user: str, data: bytes, name: str | None = None) -> Path:
        """Write *data* verbatim as a new message in *user*'s ``new/``; return its path."""
        new = self.maildir(user) / "new"
        if name is None:
            name = f"{time.time_ns()}.M{os.getpid()}P{threading.get_ident()}.mailproto"
        tmp = new.parent / "tmp" / name
        tmp.write_bytes(data)
        if self.uid >= 0:
            os.chown(tmp, self.uid, self.gid)
        final = new / name
        tmp.rename(final)
        return final

    def log_text(self) -> str:
        """Dovecot's log so far (kept after the instance stopped)."""
        if self._workdir is not None and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return self._final_log

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> DovecotPOP3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        dovecot = require_program("dovecot")
        for binary in ("pop3", "pop3-login"):
            if not (DOVECOT_LIBEXEC / binary).exists():
                _missing(f"{DOVECOT_LIBEXEC / binary} is missing (apt-get install dovecot-pop3d)")
        require_root("Dovecot")
        pw = ensure_mail_user(self._mail_user)
        # PEERS.md: the mail user's uid serves the Maildirs; note `useradd --system
        # --user-group` gives it a gid that usually differs from its uid (use pw_gid).
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        try:
            dovecot_gid = grp.getgrnam("dovecot").gr_gid
        except KeyError:
            _missing("the dovecot group is missing (apt-get install dovecot-core)")
            raise
        # /tmp keeps socket paths short; 0711 lets the dovecot (auth) user reach the passwd-file.
        self._workdir = Path(tempfile.mkdtemp(prefix="mailproto-dovecot-", dir="/tmp"))
        try:
            self._start(dovecot, dovecot_gid)
        except BaseException:
            self.stop()
            raise

    def _start(self, dovecot: str, dovecot_gid: int) -> None:
        work = self.workdir
        work.chmod(0o711)
        root = self.mail_root
        root.mkdir(parents=True, exist_ok=True)
        _chown_tree(root, self.uid, self.gid)
        for user in self.users:
            self.maildir(user)
        # Fail early and clearly if the mail user cannot get at the Maildirs (e.g. pytest's
        # tmp_path, under a 0700 directory): Dovecot would only say "Permission denied" at RETR.
        probe = subprocess.run(["test", "-w", str(root), "-a", "-x", str(root)],
                               user=self.uid, group=self.gid, check=False)
        if probe.returncode != 0:
            raise ValueError(
                f"{root} is not writable by {self._mail_user} (uid {self.uid}): some parent "
                "directory is not traversable; use traversable_tmpdir() or the default mail_root"
            )

        passwd = work / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        # PEERS.md: the passwd-file must be readable by the dovecot user or logins fail
        # with -ERR [SYS/TEMP]; {PLAIN} keeps the password recoverable, which APOP needs.
        os.chown(passwd, 0, dovecot_gid)
        passwd.chmod(0o640)
        (work / "state").mkdir()

        last_error = ""
        for _attempt in range(3):  # free_port() can race with another process: retry
            self.port = free_port()
            self.config_path.write_text(self._config(work, root, passwd))
            with open(work / "stderr", "wb") as stderr:
                # -F keeps the master in the foreground, so it is our child; a new session makes
                # its process group ours to signal as a whole when stopping.
                self._proc = subprocess.Popen(
                    [dovecot, "-F", "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                    start_new_session=True, env=peer_env(),
                )
            try:
                self._wait_ready()
                return
            except _StartError as exc:
                last_error = str(exc)
                self._kill()
                if "Address already in use" not in last_error:
                    break
        raise RuntimeError(f"Dovecot did not start:\n{last_error}")

    def _config(self, work: Path, root: Path, passwd: Path) -> str:
        # PEERS.md, "Dovecot as a POP3 reference server": own base_dir/state_dir/instance_name/
        # log_path so nothing collides with a system Dovecot or a concurrent instance.
        return f"""\
protocols = pop3
listen = {self.host}
base_dir = {work}/run
state_dir = {work}/state
instance_name = mailproto-{work.name}
log_path = {self.log_path}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login apop
auth_verbose = yes
# PEERS.md: Dovecot refuses to serve mail as uid 0; the mail user is a system uid (100-999).
first_valid_uid = {min(self.uid, 100)}
first_valid_gid = {min(self.gid, 100)}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={root}/%u
}}
mail_location = maildir:{root}/%u
{self._penalty_config()}
service pop3-login {{
  inet_listener pop3 {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
{self._extra_config}
"""

    def _penalty_config(self) -> str:
        if self._auth_penalty:
            return ""
        # Dovecot docs, "Authentication penalty": mode 0 on this socket disables tracking.
        return """auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}"""

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        while True:
            if self._proc.poll() is not None:
                raise _StartError(f"dovecot exited with {self._proc.returncode}\n"
                                  + self._diagnostics())
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as sock:
                    buf = b""
                    while not buf.endswith(b"\r\n"):
                        chunk = sock.recv(512)
                        if not chunk:
                            break
                        buf += chunk
                    if buf.startswith(b"+OK"):
                        self.greeting = buf.rstrip(b"\r\n")
                        sock.sendall(b"QUIT\r\n")
                        return
                    raise _StartError(f"unexpected greeting {buf!r}\n" + self._diagnostics())
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise _StartError(f"port {self.port} not ready after {self._start_timeout}s\n"
                                  + self._diagnostics())
            time.sleep(0.02)

    def _diagnostics(self) -> str:
        parts = []
        for path in (self.workdir / "stderr", self.log_path):
            if path.exists():
                parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def _kill(self) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after 5 s; reap the master."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid
        # Signal the whole group at once: SIGTERM to the master alone takes ~3 s until its
        # children are gone (it waits on them a second at a time); the group stops in ~0.1 s.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        while _process_group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _process_group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while _process_group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop Dovecot (no process left behind) and delete the instance's temp dir."""
        self._kill()
        if self._workdir is not None:
            with contextlib.suppress(OSError):
                self._final_log = self.log_path.read_text(errors="replace")
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


class _StartError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# aiosmtpd as an SMTP reference server


@dataclass
class ReceivedMessage:
    """One message as aiosmtpd received it."""

    mail_from: str
    rcpt_tos: list[str]
    #: DATA exactly as received after dot-unstuffing (``envelope.original_content``): CRLF kept.
    content: bytes
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    helo: str | None = None
    #: Authenticated user name, None without AUTH.
    login: str | None = None
    auth_mechanism: str | None = None
    peer: Any = None
    #: Path of the Maildir copy, when the server was given a Maildir.
    path: Path | None = None


@dataclass
class AuthAttempt:
    mechanism: str
    login: str
    success: bool


class AiosmtpdServer:
    """aiosmtpd's ``Controller`` on a free loopback port, in a background thread.

    ``with AiosmtpdServer(users={"alice": "secret"}) as smtp:`` offers AUTH PLAIN and LOGIN
    over plain TCP (PEERS.md: ``auth_require_tls=False``, else AUTH answers 538); without
    *users* AUTH is not offered at all.  Every message lands in ``.messages`` and, with
    *maildir*, also in that Maildir (LF line endings, as Maildir files conventionally have).
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        auth_required: bool = False,
        hostname: str = "mx.test",
        maildir: str | os.PathLike[str] | None = None,
        **smtp_kwargs: Any,
    ) -> None:
        self.users = dict(users) if users is not None else None
        self.auth_required = auth_required
        self.hostname = hostname
        self.maildir = Path(maildir) if maildir is not None else None
        self.smtp_kwargs = smtp_kwargs
        self.host = LOOPBACK
        self.port = 0
        self.messages: list[ReceivedMessage] = []
        self.auth_attempts: list[AuthAttempt] = []
        self._cond = threading.Condition()
        self._controller: Any = None

    def __enter__(self) -> AiosmtpdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        controller_mod = require_module("aiosmtpd.controller")
        smtp_mod = require_module("aiosmtpd.smtp")
        if self.maildir is not None:
            for sub in ("cur", "new", "tmp"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = dict(self.smtp_kwargs)
        if self.users is not None:
            kwargs.update(auth_require_tls=False, authenticator=self._make_authenticator(smtp_mod))
        if self.auth_required and self.users is None:
            raise ValueError("auth_required needs users")
        last: OSError | None = None
        controller_class = _controller_class(controller_mod, smtp_mod, self.auth_required)
        for _attempt in range(3):  # free_port() may race with another process
            self.port = free_port()
            controller = controller_class(
                _Handler(self),
                hostname=self.host,  # bind address
                port=self.port,
                # PEERS.md: set the SMTP hostname, or aiosmtpd calls socket.getfqdn() (DNS).
                server_hostname=self.hostname,
                ready_timeout=10.0,
                **kwargs,
            )
            try:
                controller.start()
            except OSError as exc:
                last = exc
                continue
            self._controller = controller
            return
        raise RuntimeError(f"aiosmtpd did not start: {last}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _make_authenticator(self, smtp_mod: ModuleType) -> Any:
        users = self.users or {}

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> Any:
            login = _text(getattr(auth_data, "login", b""))
            password = _text(getattr(auth_data, "password", b""))
            ok = login in users and users[login] == password
            with self._cond:
                self.auth_attempts.append(AuthAttempt(mechanism, login, ok))
            if ok:
                session.mailproto_auth = (login, mechanism)
            return smtp_mod.AuthResult(success=ok, handled=False)

        return authenticator

    def _store(self, session: Any, envelope: Any) -> None:
        raw: bytes = envelope.original_content
        login, mechanism = getattr(session, "mailproto_auth", (None, None))
        record = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            content=raw,
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
            helo=session.host_name,
            login=login,
            auth_mechanism=mechanism,
            peer=session.peer,
        )
        if self.maildir is not None:
            name = f"{time.time_ns()}.M{len(self.messages)}P{os.getpid()}.aiosmtpd"
            tmp = self.maildir / "tmp" / name
            tmp.write_bytes(raw.replace(b"\r\n", b"\n"))
            record.path = self.maildir / "new" / name
            tmp.rename(record.path)
        with self._cond:
            self.messages.append(record)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait until at least *n* messages arrived; return them (AssertionError on timeout)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n, timeout=timeout):
                raise AssertionError(
                    f"aiosmtpd got {len(self.messages)} message(s), expected {n} "
                    f"within {timeout}s; auth attempts: {self.auth_attempts}"
                )
            return list(self.messages)


def _controller_class(controller_mod: ModuleType, smtp_mod: ModuleType,
                      auth_required: bool) -> Any:
    """aiosmtpd Controller whose SMTP instances require AUTH without a per-connection warning.

    aiosmtpd 1.4 warns (UserWarning + log) in SMTP.__init__ -- that is, on every connection --
    when auth_required is set without TLS, which is deliberate on loopback; pytest would list
    it under every test.  So build the SMTP object without it and switch it on afterwards.
    """

    class _Controller(controller_mod.Controller):  # type: ignore[name-defined,misc]
        def factory(self) -> Any:
            server = smtp_mod.SMTP(self.handler, **self.SMTP_kwargs)
            if auth_required:
                if not hasattr(server, "_auth_required"):
                    raise RuntimeError("aiosmtpd changed: SMTP._auth_required is gone")
                server._auth_required = True
            return server

    return _Controller


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return value or ""


class _Handler:
    """aiosmtpd handler: accept every recipient, record every message."""

    def __init__(self, server: AiosmtpdServer) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._server._store(session, envelope)
        return "250 Message accepted for delivery"
