"""Fuzz the transports: random and mutated byte streams over real sockets to ``mailproto serve``.

    python bench/fuzz.py --minutes 5 [--seed N] [--parallel 4]

One server runs (SMTP and POP3, in its own process, on loopback ports).  Each case opens a
connection and sends a stream: a plausible session, mutated (lines dropped, duplicated, swapped,
hostile bytes incl. NUL/CR/LF/8-bit, very long lines, odd line endings), cut into random chunks
with random pauses; it reads the replies, or does not read at all (a stalled reader); and it ends
with QUIT, a close, a reset (RST), a half-close, or by just going silent.  Cases run a few at a
time; after each batch a clean SMTP session (a message to a mailbox no case touches) and a clean
POP3 session (a maildrop no case touches) must work, and the server must still be alive.

At the end: cases run, failures (with the seed and case number to replay one with ``--case``),
the server's RSS and open descriptors at the start and the end (leaks), tracebacks in its log.
Exit status 1 if anything failed.  Traffic goes to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # python bench/fuzz.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common as C  # noqa: E402

FUZZ_USERS = {"alice": "secret", "bob": "hunter2", "carol": "canary", "dave": "canary2"}
CANARY = [b"Subject: canary one\n\n.keep me\n", b"Subject: canary two\n\nstill here\n"]


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


SMTP_VOCAB = [
    b"EHLO fuzz.test", b"HELO fuzz.test", b"ehlo x", b"NOOP", b"RSET", b"HELP", b"HELP DATA",
    b"VRFY alice", b"EXPN staff", b"STARTTLS", b"QUIT", b"MAIL FROM:<f@fuzz.test>",
    b"MAIL FROM:<>", b"mail from:<x@y.test> size=100", b"MAIL FROM:<a@b> SIZE=99999999999",
    b"MAIL FROM:<a@b.test> BODY=8BITMIME SMTPUTF8", b"RCPT TO:<alice@local.test>",
    b"RCPT TO:<bob@local.test>", b"RCPT TO:<nobody@local.test>", b"RCPT TO:<x@remote.test>",
    b"RCPT TO:<postmaster>", b"DATA", b"BDAT 10 LAST", b"AUTH PLAIN " + b64("\0alice\0secret"),
    b"AUTH PLAIN " + b64("\0alice\0wrong"), b"AUTH LOGIN", b64("alice"), b64("secret"),
    b"AUTH CRAM-MD5", b"*", b"AUTH", b"", b"FOO", b"Subject: x", b".", b"..", b"\x00",
]
POP3_VOCAB = [
    b"USER alice", b"PASS secret", b"USER bob", b"PASS hunter2", b"PASS wrong", b"APOP alice x",
    b"AUTH", b"AUTH PLAIN " + b64("\0alice\0secret"), b"AUTH LOGIN", b64("alice"),
    b64("secret"), b"*", b"CAPA", b"STAT", b"LIST", b"LIST 1", b"LIST 99", b"UIDL", b"UIDL 1",
    b"RETR 1", b"RETR 2", b"RETR 3", b"RETR 0", b"TOP 1 0", b"TOP 2 5", b"TOP 1 99999999",
    b"DELE 1", b"DELE 2", b"RSET", b"NOOP", b"QUIT", b"STLS", b"LAST", b"", b"retr 1", b"\xff",
]
HOSTILE = [b"\0", b"\r", b"\n", b"\r\n", b"\x7f", b"\x80", b"\xff", b"\xc3\xa9", b".", b" ",
           b":", b"<", b">", b"@", b"\t", b"A"]


def smtp_session(rng: random.Random) -> list[bytes]:
    lines = [rng.choice([b"EHLO fuzz.test", b"HELO fuzz.test"])]
    if rng.random() < 0.5:
        lines.append(b"AUTH PLAIN " + b64("\0alice\0secret"))
    for _ in range(rng.randint(0, 3)):
        lines.append(b"MAIL FROM:<f@fuzz.test>")
        for _ in range(rng.randint(1, 3)):
            lines.append(rng.choice([b"RCPT TO:<alice@local.test>", b"RCPT TO:<bob@local.test>",
                                     b"RCPT TO:<staff@local.test>"]))
        lines.append(b"DATA")
        for _ in range(rng.randint(0, 30)):
            lines.append(rng.choice([b"Subject: fuzz", b"", b"..stuffed", b"body line", b"\x80\xff",
                                     b"a\rb", b"x" * rng.randint(0, 3000)]))
        if rng.random() < 0.1:
            lines.append(b"y" * rng.choice([70_000, 300_000]))
        lines.append(b".")
    if rng.random() < 0.7:
        lines.append(b"QUIT")
    return lines


def pop3_session(rng: random.Random) -> list[bytes]:
    lines = [rng.choice([b"USER alice\r\nPASS secret", b"AUTH PLAIN " + b64("\0alice\0secret"),
                         b"USER bob\r\nPASS hunter2"])]
    lines += [rng.choice(POP3_VOCAB[12:31]) for _ in range(rng.randint(0, 20))]
    if rng.random() < 0.5:
        lines += [b"RETR 1"] * rng.randint(1, 200)  # pipelined RETRs: a lot of output
    if rng.random() < 0.7:
        lines.append(b"QUIT")
    return lines


def mutate(rng: random.Random, lines: list[bytes], vocab: list[bytes]) -> bytes:
    lines = [line + b"\r\n" for line in lines]
    for _ in range(rng.choice([0, 0, 1, 2, 4, 8])):
        kind = rng.choice(["drop", "dup", "swap", "insert", "hostile", "long", "ending", "flip",
                           "vocab"])
        if not lines:
            lines.append(rng.choice(vocab) + b"\r\n")
            continue
        i = rng.randrange(len(lines))
        if kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            lines.insert(i, rng.choice(vocab) + rng.choice([b"\r\n", b"\n"]))
        elif kind == "hostile":
            lines.insert(i, b"".join(rng.choice(HOSTILE) for _ in range(rng.randint(1, 30)))
                         + rng.choice([b"\r\n", b"\n", b"\r", b""]))
        elif kind == "long":
            lines[i] = rng.choice([b"", b"AUTH PLAIN ", b"MAIL FROM:<", b"USER ", b"."]) \
                + b"z" * rng.choice([1000, 2048, 2049, 12288, 12289, 70_000, 1_000_000]) + b"\r\n"
        elif kind == "ending":
            lines[i] = lines[i].rstrip(b"\r\n") + rng.choice([b"\n", b"\r", b"", b"\r\r\n"])
        elif kind == "flip" and lines[i]:
            pos = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:pos] + bytes([rng.randrange(256)]) + lines[i][pos + 1 :]
        elif kind == "vocab":
            lines[i] = rng.choice(vocab) + b"\r\n"
    if rng.random() < 0.05:
        return os.urandom(rng.randint(1, 5000)) if rng.random() < 0.5 else \
            bytes(rng.randrange(256) for _ in range(rng.randint(1, 500)))
    return b"".join(lines)


@dataclass
class Case:
    index: int
    protocol: str
    stream: bytes
    chunks: list[int]
    pause: float
    read: bool
    ending: str

    def describe(self) -> str:
        return (f"case {self.index}: {self.protocol}, {len(self.stream)} bytes in "
                f"{len(self.chunks) + 1} chunks, pause {self.pause * 1000:.1f} ms, "
                f"{'reading' if self.read else 'not reading'}, ends with {self.ending}; "
                f"starts {self.stream[:80]!r}")


def make_case(seed: int, index: int) -> Case:
    rng = random.Random(f"{seed}:{index}")
    protocol = rng.choice(["SMTP", "SMTP", "POP3"])
    if rng.random() < 0.05:  # a TLS upgrade interrupted mid-handshake
        start = b"EHLO fuzz.test\r\nSTARTTLS\r\n" if protocol == "SMTP" else b"CAPA\r\nSTLS\r\n"
        tail = rng.choice([b"", b"", b"\x16\x03\x01\x00", os.urandom(rng.randint(1, 300))])
        return Case(index, protocol, start + tail, [len(start)], 0.05, True,
                    rng.choice(["reset", "linger", "close"]))
    if protocol == "SMTP":
        lines = smtp_session(rng) if rng.random() < 0.7 else \
            [rng.choice(SMTP_VOCAB) for _ in range(rng.randint(0, 40))]
        stream = mutate(rng, lines, SMTP_VOCAB)
    else:
        lines = pop3_session(rng) if rng.random() < 0.7 else \
            [rng.choice(POP3_VOCAB) for _ in range(rng.randint(0, 40))]
        stream = mutate(rng, lines, POP3_VOCAB)
    n_cuts = rng.choice([0, 1, 3, 10, 50, min(len(stream), 400)])
    chunks = sorted(rng.randrange(len(stream) + 1) for _ in range(n_cuts)) if stream else []
    return Case(index, protocol, stream, chunks, rng.choice([0, 0, 0.0005, 0.003]),
                rng.random() < 0.85,
                rng.choice(["close", "close", "reset", "half-close", "silent", "quit-wait"]))


async def run_case(case: Case, ports: dict[str, int], time_limit: float = 8.0) -> int:
    """Play one case; return the bytes the server sent.  Connection errors are expected."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(C.LOOPBACK, ports[case.protocol]), 5)
    received = 0

    async def read_all() -> None:
        nonlocal received
        while True:
            data = await reader.read(65536)
            if not data:
                return
            received += len(data)

    reading = asyncio.ensure_future(read_all()) if case.read else None
    try:
        points = [0, *case.chunks, len(case.stream)]
        deadline = time.monotonic() + time_limit
        for a, b in zip(points, points[1:], strict=False):
            if b > a:
                writer.write(case.stream[a:b])
                await asyncio.wait_for(writer.drain(), max(0.1, deadline - time.monotonic()))
            if case.pause:
                await asyncio.sleep(case.pause)
        if case.ending == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif case.ending == "half-close" and writer.can_write_eof():
            writer.write_eof()
            if reading is not None:
                await asyncio.wait_for(asyncio.shield(reading), 3)
        elif case.ending == "silent":
            await asyncio.sleep(0.2)
        elif case.ending == "linger":  # past the server's --timeout 3
            await asyncio.sleep(3.5)
        elif case.ending == "quit-wait" and reading is not None:
            writer.write(b"\r\nQUIT\r\n")
            await asyncio.wait_for(asyncio.shield(reading), 3)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2)
    return received


# -- health checks -------------------------------------------------------------------------------
class Line:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def line(self) -> bytes:
        data = await asyncio.wait_for(self.reader.readline(), 5)
        if not data:
            raise ConnectionError("closed")
        return data.rstrip(b"\r\n")

    async def smtp(self, cmd: bytes | None, expect: int) -> None:
        if cmd is not None:
            self.writer.write(cmd + b"\r\n")
        while True:
            text = await self.line()
            if text[3:4] != b"-":
                break
        if int(text[:3]) != expect:
            raise AssertionError(f"{cmd!r} -> {text!r}")

    async def pop(self, cmd: bytes | None) -> bytes:
        if cmd is not None:
            self.writer.write(cmd + b"\r\n")
        text = await self.line()
        if not text.startswith(b"+OK"):
            raise AssertionError(f"{cmd!r} -> {text!r}")
        return text


async def health(ports: dict[str, int], data: Path, n: int) -> None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(C.LOOPBACK, ports["SMTP"]), 5)
    s = Line(reader, writer)
    try:
        await s.smtp(None, 220)
        await s.smtp(b"EHLO health.test", 250)
        await s.smtp(b"MAIL FROM:<health@fuzz.test>", 250)
        await s.smtp(b"RCPT TO:<dave@local.test>", 250)
        await s.smtp(b"DATA", 354)
        await s.smtp(f"Subject: health {n}\r\n\r\n..dot\r\n.".encode(), 250)
        await s.smtp(b"QUIT", 221)
    finally:
        writer.close()
    if "POP3" not in ports:
        return
    for attempt in range(50):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(C.LOOPBACK, ports["POP3"]), 5)
        p = Line(reader, writer)
        try:
            await p.pop(None)
            await p.pop(b"USER carol")
            await p.pop(b"PASS canary")
            stat = await p.pop(b"STAT")
            if int(stat.split()[1]) != len(CANARY):
                raise AssertionError(f"carol's maildrop changed: {stat!r}")
            await p.pop(b"RETR 1")
            body = []
            for _ in range(100):
                text = await p.line()
                if text == b".":
                    break
                body.append(text[1:] if text.startswith(b".") else text)
            if body != CANARY[0].split(b"\n")[:-1]:
                raise AssertionError(f"RETR 1 of carol's maildrop changed: {body!r}")
            await p.pop(b"QUIT")
            return
        except AssertionError as exc:
            if b"IN-USE" in str(exc).encode() and attempt < 49:
                await asyncio.sleep(0.05)
                continue
            raise
        finally:
            writer.close()


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def fill(data: Path) -> None:
    """Keep a few messages in alice's and bob's maildrops for the POP3 cases."""
    for user in ("alice", "bob"):
        new = data / user / "new"
        new.mkdir(parents=True, exist_ok=True)
        boxes = C.count_messages(data / user)
        if boxes < 3:
            for i in range(3):
                body = (b"Subject: fill\n\n" + b".line\n" * i + b"text\n" * (40 * i)
                        + (b"x" * 1_000_000 + b"\n" if i == 2 else b""))
                name = f"{int(time.time())}.M{i}P{os.getpid()}Q{random.randrange(1 << 30)}.fuzz"
                (new / name).write_bytes(body)
        elif boxes > 300:  # SMTP cases deliver here too: keep the scans short
            for p in sorted(new.iterdir())[:-50]:
                p.unlink(missing_ok=True)


@dataclass
class Summary:
    cases: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    health_ok: int = 0
    failures: list[str] = field(default_factory=list)


async def fuzz(args: argparse.Namespace, server: C.ServerProc, summary: Summary) -> None:
    deadline = time.monotonic() + args.minutes * 60
    index = args.start
    batch_no = 0
    while time.monotonic() < deadline and index < args.start + args.max_cases:
        if args.case is not None:
            cases = [make_case(args.seed, args.case)]
        else:
            cases = [make_case(args.seed, index + i) for i in range(args.parallel)]
        index += len(cases)
        fill(server.workdir)
        results = await asyncio.gather(*(run_case(c, server.ports) for c in cases),
                                       return_exceptions=True)
        for case, result in zip(cases, results, strict=True):
            summary.cases += 1
            summary.bytes_sent += len(case.stream)
            if isinstance(result, BaseException):
                if not isinstance(result, (OSError, asyncio.TimeoutError)):
                    summary.failures.append(f"{case.describe()}: client error {result!r}")
            else:
                summary.bytes_received += result
        batch_no += 1
        if server.proc.poll() is not None:
            summary.failures.append(f"the server died (exit {server.proc.returncode}) after "
                                    + "; ".join(c.describe() for c in cases))
            return
        try:
            await health(server.ports, server.workdir, batch_no)
            summary.health_ok += 1
        except Exception as exc:  # noqa: BLE001
            summary.failures.append(f"health check failed ({exc!r}) after "
                                    + "; ".join(c.describe() for c in cases))
            if len(summary.failures) > 20:
                return
        if args.case is not None:
            return
        if batch_no % 50 == 0:
            print(f"[fuzz] {summary.cases} cases, {len(summary.failures)} failures, RSS "
                  f"{server.rss_kb() / 1024:.1f} MB, fds {fd_count(server.pid)}",
                  file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/fuzz.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=4, help="cases at a time")
    parser.add_argument("--max-cases", type=int, default=1_000_000)
    parser.add_argument("--start", type=int, default=0, help="first case number")
    parser.add_argument("--case", type=int, default=None, help="replay this one case")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    C.raise_nofile(4096)
    pop3 = C.have_pop3()
    summary = Summary()
    started = time.perf_counter()
    with C.scratch("mailproto-fuzz-") as work:
        data = work / "data"
        for i, text in enumerate(CANARY):
            (data / "carol" / "new").mkdir(parents=True, exist_ok=True)
            (data / "carol" / "new" / f"100000000{i}.M{i}P1Q{i}.canary").write_bytes(text)
        users = "".join(f"{u}:{p}\n" for u, p in FUZZ_USERS.items()) + "staff: alice, bob\n"
        server = C.start_mailproto(data, pop3=pop3, users=users,
                                   extra=["--timeout", "3", "--auth-failure-delay", "0",
                                          "--max-message-size", "2000000",
                                          # small, so a leaked slot soon locks the health
                                          # checks out instead of hiding among 2,000
                                          "--max-connections", str(args.parallel * 8)])
        with server:
            time.sleep(0.3)
            rss0, fds0 = server.rss_kb(), fd_count(server.pid)
            print(f"[fuzz] seed {args.seed}; server pid {server.pid}; ports {server.ports}; "
                  f"{args.minutes} min", file=sys.stderr, flush=True)
            asyncio.run(fuzz(args, server, summary))
            time.sleep(4)  # let silent sessions time out (--timeout 3)
            alive = server.proc.poll() is None
            rss1 = server.rss_kb() if alive else 0
            fds1 = fd_count(server.pid) if alive else -1
            hwm = server.hwm_kb() if alive else 0
            spool_left = len(list((data / ".spool").iterdir())) if (data / ".spool").is_dir() \
                else 0
            stopped = None
            if alive:
                server.proc.send_signal(signal.SIGTERM)
                try:
                    stopped = server.proc.wait(10)
                except subprocess.TimeoutExpired:
                    stopped = None
            server.stop()
            err = server.stderr_text()
        canary_ok = sorted(p.read_bytes() for p in (data / "carol" / "new").iterdir()) == \
            sorted(CANARY) if (data / "carol" / "new").is_dir() else False
        healthy = C.count_messages(data / "dave")
        shutil.rmtree(data, ignore_errors=True)
    tracebacks = err.count("Traceback") + err.lower().count("internal error")
    if tracebacks:
        summary.failures.append(f"{tracebacks} traceback(s) in the server's log:\n{err[-3000:]}")
    if not alive:
        summary.failures.append("the server was not alive at the end")
    elif stopped != 0:
        summary.failures.append(f"SIGTERM did not stop the server cleanly (exit {stopped})")
    if spool_left:
        summary.failures.append(f"{spool_left} file(s) left in .spool after every session ended")
    if not canary_ok:
        summary.failures.append("carol's canary maildrop changed")
    if fds1 > fds0 + 2:
        summary.failures.append(f"descriptor leak? {fds0} open at the start, {fds1} at the end")
    digest = hashlib.sha256(f"{args.seed}".encode()).hexdigest()[:8]
    print(f"## Fuzzing the transports ({time.perf_counter() - started:.0f} s, seed {args.seed}, "
          f"run {digest})\n")
    print(f"- cases: {summary.cases:,} ({args.parallel} at a time), {summary.bytes_sent:,} bytes "
          f"sent, {summary.bytes_received:,} received; POP3 {'on' if pop3 else 'not in place'}")
    print(f"- health checks passed: {summary.health_ok:,} (messages delivered to the canary "
          f"mailbox: {healthy:,})")
    print(f"- server alive at the end: {alive}; RSS {rss0 / 1024:.1f} MB at the start, "
          f"{rss1 / 1024:.1f} MB at the end, peak {hwm / 1024:.1f} MB; open descriptors "
          f"{fds0} -> {fds1}; spool files left: {spool_left}; tracebacks in the log: "
          f"{tracebacks}; exit status after SIGTERM: {stopped}")
    print(f"- failures: {len(summary.failures)}")
    for failure in summary.failures[:20]:
        print(f"  - {failure}")
    if summary.failures:
        print(f"\nReplay one case: python bench/fuzz.py --seed {args.seed} --case N")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
