"""Shared pieces of the benchmarks: the machine, processes' CPU and memory, servers in subprocesses.

Every server under test runs in its own process (or process group, for Dovecot), so its CPU time
is read cleanly from ``/proc/<pid>/stat`` (utime + stime, and the children it reaped) before and
after a load, and its memory from ``/proc/<pid>/status`` (VmRSS, VmHWM).  Traffic goes to
127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Where the mailproto under test is imported from (default: this checkout).  Point it at a
#: scratch copy to measure a change side by side: MAILPROTO_BENCH_SRC=/tmp/copy python -m bench
SRC = Path(os.environ.get("MAILPROTO_BENCH_SRC", str(ROOT)))
LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Users of the benchmark store; the load generator logs in as them.
USERS = {f"user{i:02d}": f"pw{i:02d}" for i in range(20)}
USERS["alice"] = "secret"


# -- the machine ---------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def dovecot_version() -> str | None:
    exe = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.split()[0] if out.stdout.strip() else None


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
        rev = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        return rev + ("+dirty" if dirty.strip() else "") if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def filesystem_of(path: Path) -> str:
    """The file system type holding ``path`` (from /proc/mounts: longest matching mount)."""
    best, kind = "", "unknown"
    real = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (real == parts[1] or real.startswith(parts[1].rstrip("/") + "/")
                                    ) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def machine() -> dict[str, str]:
    return {
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "Python": platform.python_version(),
        "kernel": platform.release(),
        "mailproto": f"{version_of('mailproto') or '?'} ({git_revision()})",
        "aiosmtpd": version_of("aiosmtpd") or "not installed",
        "Dovecot": dovecot_version() or "not installed",
        "file system": f"{filesystem_of(Path(tempfile.gettempdir()))} ({tempfile.gettempdir()})",
    }


def have_pop3() -> bool:
    """Our POP3 server is there (being written by others when this bench was)."""
    return importlib.util.find_spec("mailproto.net.pop3_listener") is not None


# -- processes -----------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, children: bool = True) -> float:
    """utime + stime of ``pid`` (and of the children it has reaped), in seconds."""
    f = _stat_fields(pid)
    # After the ")": state=0 ppid=1 pgrp=2 session=3 ... utime=11 stime=12 cutime=13 cstime=14
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(_stat_fields(int(entry.name))[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """CPU of a whole process group: every live member plus what they reaped.

    Dovecot forks a process per login and per session; the master reaps them, so their CPU ends
    up in its cutime/cstime.  Read this only when no session process is alive (or about to be
    reaped), or a process's time is counted both live and, later, reaped."""
    total = 0.0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds(pid)
    return total


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def raise_nofile(want: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit to ``want`` (up to the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _child_setup() -> None:  # preexec_fn: runs in the child before exec
    raise_nofile(8192)
    os.setpgid(0, 0)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def wait_connect(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None,
                 greeting: bool = True) -> float:
    """Poll until 127.0.0.1:port accepts (and greets); return the time it took."""
    start = time.perf_counter()
    deadline = start + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before accepting")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1) as sock:
                if greeting:
                    sock.settimeout(2)
                    data = sock.recv(512)
                    if not data:
                        raise OSError("closed without a greeting")
                return time.perf_counter() - start
        except OSError:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"port {port} not accepting after {timeout} s") from None
            time.sleep(0.005)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# -- the servers ---------------------------------------------------------------------------------
@dataclass
class ServerProc:
    """A server under test in its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    workdir: Path
    #: The server's stderr goes to a file: a pipe nobody reads could fill up and block it.
    log: Any = None

    def stderr_text(self) -> str:
        if self.log is None or self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss_kb(self) -> int:
        return status_kb(self.pid, "VmRSS")

    def hwm_kb(self) -> int:
        return status_kb(self.pid, "VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_users(path: Path, users: dict[str, str]) -> None:
    path.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))


def _read_ports(proc: subprocess.Popen[bytes], timeout: float, want: set[str],
                log: Any = None) -> dict[str, int]:
    """Parse ``NAME listening on HOST:PORT`` lines until ``Ready`` (or every wanted name)."""
    assert proc.stdout is not None
    ports: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = ""
            if log is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
            raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
        chunk = proc.stdout.read(4096)
        if chunk:
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                words = line.split()
                if len(words) >= 4 and words[1:3] == ["listening", "on"]:
                    ports[words[0]] = int(words[3].rpartition(":")[2])
            if b"Ready" in buf or want <= set(ports):
                if want <= set(ports):
                    return ports
        else:
            time.sleep(0.005)
    raise TimeoutError(f"server did not say where it listens: {buf[-500:]!r}")


def start_mailproto(data: Path, *, smtp: bool = True, pop3: bool = False,
                    extra: Sequence[str] = (), users: dict[str, str] | str | None = None,
                    timeout: float = 30, src: Path | None = None) -> ServerProc:
    """``python -m mailproto serve`` on free loopback ports, in its own process group.

    ``users``: name → password, or the users file's text as it is."""
    data.mkdir(parents=True, exist_ok=True)
    if isinstance(users, str):
        (data / "users").write_text(users)
    else:
        write_users(data / "users", users or USERS)
    cmd = [sys.executable, "-m", "mailproto", "serve", "--data", str(data),
           "--smtp-port", "0" if smtp else "-1", "--pop3-port", "0" if pop3 else "-1",
           "--hostname", "mail.test", *extra]
    log = tempfile.TemporaryFile()
    src = src or SRC
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                            cwd=src, env=env, preexec_fn=_child_setup)
    try:
        want = ({"SMTP"} if smtp else set()) | ({"POP3"} if pop3 else set())
        ports = _read_ports(proc, timeout, want, log)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return ServerProc("mailproto", proc, ports, data, log)


def start_aiosmtpd(maildir: Path, timeout: float = 30) -> ServerProc:
    """aiosmtpd with a Maildir handler and AUTH (bench/aiosmtpd_server.py) in a subprocess."""
    maildir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).with_name("aiosmtpd_server.py")),
           "--maildir", str(maildir)]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                            stdin=subprocess.DEVNULL, cwd=ROOT, preexec_fn=_child_setup)
    try:
        ports = _read_ports(proc, timeout, {"SMTP"}, log)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return ServerProc("aiosmtpd", proc, ports, maildir, log)


@contextlib.contextmanager
def scratch(prefix: str = "mailproto-bench-") -> Iterator[Path]:
    """A fresh directory in /tmp that other users can traverse (Dovecot's mail user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None))
    try:
        path.chmod(0o711)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def count_messages(maildir: Path) -> int:
    return sum(len(os.listdir(maildir / sub)) for sub in ("new", "cur")
               if (maildir / sub).is_dir())
