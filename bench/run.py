"""Run every benchmark and print one markdown report (also written to bench/results.md).

    python -m bench            # the full run, about 3-5 minutes
    python -m bench --quick    # a smaller load, about a minute
    python bench/run.py --only smtp,startup

Benchmarks (each server in its own process, so its CPU is read cleanly from /proc):

* smtp      2,000 messages of 2 KB over 20 connections: mailproto vs aiosmtpd (Maildir handler,
            AUTH, both fsync), same load generator, same file system (tmpfs when there is one,
            see ``mail_dir``; one pair again on the root file system), interleaved rounds.
* core      the SMTP core alone (no socket, no file): our Python's share of a message.
* pop3      RETR of the same 2,000 messages (20 maildrops of 100): mailproto vs Dovecot.
* idle      1,000 SMTP sessions held open at once (EHLO, then idle): errors, memory per session.
* big       one 100 MB message in through SMTP and out through POP3: peak RSS (VmHWM) < 64 MB.
* startup   ``mailproto serve`` until it accepts a connection: median of 5.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common as C  # noqa: E402
from bench import loadgen as L  # noqa: E402
from bench.core import smtp_core_cpu  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.md"
MB = 1 << 20


@dataclass
class Report:
    quick: bool
    sections: list[str] = field(default_factory=list)
    #: Headline rows: (what, mailproto, reference, ratio, target, verdict)
    summary: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.sections.append(text)

    def headline(self, what: str, ours: str, ref: str, ratio: str, target: str,
                 ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("**met**" if ok else "**missed**")
        self.summary.append((what, ours, ref, ratio, target, verdict))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def fmt(x: float, digits: int = 2) -> str:
    return "–" if x != x else f"{x:,.{digits}f}"  # NaN → dash


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- the file system floor -------------------------------------------------------------------
def fs_floor(directory: Path, n: int = 2000, size: int = 2048) -> dict[str, float]:
    """CPU per message of just the storing, in this process: our ``Store`` (spool file, fsync,
    rename into ``new/``) and ``mailbox.Maildir.add`` (what the aiosmtpd handler calls: a file
    in ``tmp/``, fsync, link into ``new/``, unlink).

    The two take turns in slices of 100, so a busy moment of the machine hits both."""
    import mailbox

    from mailproto.store import Store, Users

    store = Store(directory / "ours", Users.parse("alice:x\n"), fsync=True)
    box = mailbox.Maildir(str(directory / "mailbox"), create=True)
    data = b"Subject: x\n\n" + b"x" * (size - 13)
    spent = {"ours": 0.0, "mailbox": 0.0}

    def ours() -> None:
        spool = store.open_spool()
        spool.write(data)
        spool.commit(["alice"])

    cpu = time.process_time  # user + system, finer than os.times()'s clock ticks
    for start in range(0, n, 100):
        for name, way in (("ours", ours), ("mailbox", lambda: box.add(data))):
            c0 = cpu()
            for _ in range(start, min(start + 100, n)):
                way()
            spent[name] += cpu() - c0
    return {k: v / n for k, v in spent.items()}


# -- SMTP throughput -------------------------------------------------------------------------
@dataclass
class SmtpRun:
    rate: float
    cpu_ms: float
    p50: float
    p99: float
    hwm_mb: float
    delivered: int
    errors: list[str]


#: name → (server, extra arguments, pipelining, on the root file system).  The headline rows
#: keep their Maildirs on tmpfs (see ``mail_dir``); the last two repeat the comparison on the
#: root file system, for information.
SMTP_VARIANTS = {
    "mailproto (pipelined)": ("mailproto", [], True, False),
    "mailproto (lock-step)": ("mailproto", [], False, False),
    "mailproto --no-fsync (pipelined)": ("mailproto", ["--no-fsync"], True, False),
    "aiosmtpd 1.4 (Maildir handler)": ("aiosmtpd", [], True, False),
    "mailproto (pipelined), root file system": ("mailproto", [], True, True),
    "aiosmtpd 1.4, root file system": ("aiosmtpd", [], True, True),
}


SHM = Path("/dev/shm")


def have_tmpfs() -> bool:
    return SHM.is_dir() and os.access(SHM, os.W_OK) and C.filesystem_of(SHM) == "tmpfs"


@contextlib.contextmanager
def mail_dir(work: Path) -> Iterator[tuple[Path, str]]:
    """Where the SMTP benchmark's Maildirs go: tmpfs (/dev/shm) when there is one.

    Both servers write to the same place, so the choice is fair; it matters because this
    machine's root file system is ext4 *without a journal*, where creating a file shortly after
    others were deleted (by a test run, or the previous round) makes the kernel skip every
    "recently deleted" inode one by one (ext4 ``find_inode_bit`` → ``recently_deleted``): up to
    1 ms of system time per message, charged to whichever server runs next, which turns the
    ratio into a measure of the machine's recent past.  The root file system rows show it."""
    if have_tmpfs():
        path = Path(tempfile.mkdtemp(prefix="mailproto-bench-", dir=SHM))
        try:
            yield path, "tmpfs (/dev/shm)"
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:
        yield work, f"{C.filesystem_of(work)} ({work.parent})"


def smtp_once(kind: str, extra: list[str], pipelining: bool, messages: int, conns: int,
              size: int, work: Path) -> SmtpRun:
    if kind == "aiosmtpd":
        server = C.start_aiosmtpd(work / "Maildir")
        box = work / "Maildir"
    else:
        server = C.start_mailproto(work, extra=extra)
        box = work / "alice"
    with server:
        time.sleep(0.2)  # let the start-up settle
        c0 = server.cpu()
        result = asyncio.run(L.smtp_load(server.ports["SMTP"], messages=messages,
                                         connections=conns, size=size,
                                         allow_pipelining=pipelining))
        time.sleep(0.1)
        c1 = server.cpu()
        hwm = server.hwm_kb() / 1024
    delivered = C.count_messages(box)
    errors = list(result.errors)
    if delivered != result.messages:
        errors.append(f"{result.messages} acknowledged but {delivered} in the Maildir")
    spool = work / ".spool"
    if spool.is_dir() and any(spool.iterdir()):
        errors.append("files left in .spool")
    return SmtpRun(result.rate, (c1 - c0) * 1000 / max(result.messages, 1), result.p(0.5),
                   result.p(0.99), hwm, delivered, errors)


def bench_smtp(report: Report, rounds: int, messages: int, conns: int, size: int,
               work: Path) -> None:
    runs: dict[str, list[SmtpRun]] = {name: [] for name in SMTP_VARIANTS}
    have_aiosmtpd = C.version_of("aiosmtpd") is not None
    with mail_dir(work) as (fast, fast_name):
        for rnd in range(rounds):
            for variant, (name, (kind, extra, pipelining, root_fs)) in enumerate(
                    SMTP_VARIANTS.items()):
                if kind == "aiosmtpd" and not have_aiosmtpd:
                    continue
                log(f"smtp round {rnd + 1}/{rounds}: {name}")
                target = (work if root_fs else fast) / f"smtp-{rnd}-{variant}-{kind}"
                runs[name].append(smtp_once(kind, extra, pipelining, messages, conns, size,
                                            target))
                # Kept until the whole step ends: deleting thousands of files here would make
                # the next server pay for it on a journal-less ext4 (see mail_dir).
    rows = []
    med: dict[str, dict[str, float]] = {}
    for name, rs in runs.items():
        if not rs:
            rows.append([name, "not installed (pip install aiosmtpd)"] + [""] * 6)
            continue
        m = {k: C.median([getattr(r, k) for r in rs]) for k in
             ("rate", "cpu_ms", "p50", "p99", "hwm_mb")}
        med[name] = m
        errors = sum(len(r.errors) for r in rs)
        rows.append([name, fmt(m["rate"], 0), fmt(m["cpu_ms"], 3),
                     fmt(1000 / m["cpu_ms"], 0) if m["cpu_ms"] else "–", fmt(m["p50"], 1),
                     fmt(m["p99"], 1), fmt(m["hwm_mb"], 1), str(errors)])
        for r in rs:
            for e in r.errors[:3]:
                report.notes.append(f"smtp {name}: {e}")
    text = [f"### SMTP delivery: {messages:,} messages of {size // 1024} KB over {conns} "
            f"connections (median of {rounds} interleaved rounds)",
            f"Maildirs on {fast_name}, except the two \"root file system\" rows "
            f"({C.filesystem_of(work)}); see `mail_dir` in bench/run.py for why.",
            table(["server", "msg/s", "server CPU ms/msg", "msg per CPU-second", "p50 ms",
                   "p99 ms", "peak RSS MB", "errors"], rows)]
    ours = med.get("mailproto (pipelined)")
    ref = med.get("aiosmtpd 1.4 (Maildir handler)")
    if ours and ref:
        ratio = ref["cpu_ms"] / ours["cpu_ms"]
        no_fsync = med.get("mailproto --no-fsync (pipelined)")
        lock = med.get("mailproto (lock-step)")
        text.append(
            f"Throughput per server CPU second, mailproto / aiosmtpd: **{ratio:.2f}x** "
            f"(pipelined; both fsync every message before the 250, as aiosmtpd's "
            f"mailbox.Maildir.add and our default do); lock-step "
            f"{ref['cpu_ms'] / lock['cpu_ms']:.2f}x; with --no-fsync "
            f"{ref['cpu_ms'] / no_fsync['cpu_ms']:.2f}x. Wall-clock throughput ratio: "
            f"{ours['rate'] / ref['rate']:.2f}x." if no_fsync and lock else
            f"Throughput per server CPU second: {ratio:.2f}x.")
        root_ours = med.get("mailproto (pipelined), root file system")
        root_ref = med.get("aiosmtpd 1.4, root file system")
        if root_ours and root_ref:
            root_ratio = root_ref["cpu_ms"] / root_ours["cpu_ms"]
            text[-1] += f" On the root file system: {root_ratio:.2f}x (information: see above)."
        report.headline("SMTP msg per server CPU-second (2 KB)",
                        f"{1000 / ours['cpu_ms']:,.0f} ({ours['cpu_ms']:.3f} ms/msg)",
                        f"aiosmtpd {1000 / ref['cpu_ms']:,.0f} ({ref['cpu_ms']:.3f} ms/msg)",
                        f"{ratio:.2f}x", "≥ 2x", ratio >= 2)
        report.headline("SMTP throughput, wall clock", f"{ours['rate']:,.0f} msg/s",
                        f"aiosmtpd {ref['rate']:,.0f} msg/s", f"{ours['rate'] / ref['rate']:.2f}x",
                        "(info)", None)
    report.add("\n\n".join(text))


def bench_core(report: Report, messages: int, fs: dict[str, dict[str, float]]) -> None:
    log("smtp core alone")
    per = smtp_core_cpu(messages)
    rows = [["SMTP core (ServerSession, null store), per 2 KB message", fmt(per * 1e3, 3)]]
    for where, costs in fs.items():
        rows.append([f"storing it, ours (Store: spool, fsync, rename), {where}",
                     fmt(costs["ours"] * 1e3, 3)])
        rows.append([f"storing it, mailbox.Maildir.add (aiosmtpd's handler), {where}",
                     fmt(costs["mailbox"] * 1e3, 3)])
    report.add("### Where a message's CPU goes (in-process, no network)\n\n"
               + table(["piece", "CPU ms/msg"], rows))


def bench_fs(work: Path) -> dict[str, dict[str, float]]:
    log("storing alone")
    out = {}
    if have_tmpfs():
        with mail_dir(work) as (fast, fast_name):
            out[fast_name] = fs_floor(fast / "fs")
    out[f"{C.filesystem_of(work)}, the root file system"] = fs_floor(work / "root")
    return out


# -- POP3 ------------------------------------------------------------------------------------
def make_pop3_tree(root: Path, users: dict[str, str], per_user: int, size: int) -> None:
    """``root/<user>/new/<unique>`` files: LF line endings, as the store keeps them."""
    for u_index, user in enumerate(users):
        for sub in ("cur", "new", "tmp"):
            (root / user / sub).mkdir(parents=True, exist_ok=True)
        for i in range(per_user):
            data = L.make_message(size, i)[:-3].replace(b"\r\n", b"\n")
            data = data.replace(b"\n..", b"\n.")  # stored unstuffed
            name = f"{1700000000 + i}.M{u_index:03d}{i:03d}P1Q{i}.bench"
            (root / user / "new" / name).write_bytes(data)


def _peers() -> object | None:
    tests = C.ROOT / "tests"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    try:
        import peers  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - pytest missing, or peers.py broken
        return None
    return peers


#: (label, whose maildrops): the 20 users in parallel, twice, then alice's big one, twice.
POP3_PASSES = [("20 sessions, cold", "all"), ("20 sessions, warm", "all"),
               ("one session, cold", "one"), ("one session, warm", "one")]


def bench_pop3(report: Report, per_user: int, size: int, work: Path) -> None:
    users = {u: p for u, p in C.USERS.items() if u.startswith("user")}
    total = per_user * len(users)
    rows: list[list[str]] = []
    results: dict[str, tuple[float, float]] = {}
    tree = work / "pop3-tree"
    make_pop3_tree(tree, users, per_user, size)
    single = {"alice": C.USERS["alice"]}  # one maildrop of them all: RETR cost without logins
    make_pop3_tree(tree, single, total, size)

    # Dovecot: tests/peers.py's DovecotPOP3 (own config, unprivileged, loopback).
    peers = _peers()
    dovecot_note = ""
    if peers is None:
        dovecot_note = "tests/peers.py could not be imported (pytest missing?)"
    else:
        import pytest

        root = work / "dovecot-mail"
        shutil.copytree(tree, root)
        try:
            with peers.DovecotPOP3({**users, **single},  # type: ignore[attr-defined]
                                   mail_root=root) as dv:
                pgid = dv._proc.pid  # the master leads its own process group
                passes = []
                for label, who in POP3_PASSES:
                    log(f"pop3: Dovecot ({label})")
                    time.sleep(0.3)
                    c0 = C.group_cpu_seconds(pgid)
                    res = asyncio.run(L.pop3_load(dv.port, single if who == "one" else users))
                    time.sleep(0.5)  # session processes exit and are reaped by the master
                    c1 = C.group_cpu_seconds(pgid)
                    passes.append((label, res, (c1 - c0) * 1000 / max(res.messages, 1)))
                for label, res, cpu in passes:
                    rows.append([f"Dovecot {C.dovecot_version()} ({label})",
                                 fmt(res.rate, 0), fmt(cpu, 3), fmt(res.p(0.5), 2),
                                 fmt(res.p(0.99), 2), str(res.messages), str(len(res.errors))])
                    for e in res.errors[:3]:
                        report.notes.append(f"pop3 Dovecot: {e}")
                results["dovecot"] = (passes[1][1].rate, passes[1][2])
                results["dovecot-one"] = (passes[-1][1].rate, passes[-1][2])
        except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:  # noqa: BLE001
            dovecot_note = f"Dovecot not run: {str(exc).strip().splitlines()[0][:200]}"
    if dovecot_note:
        rows.append(["Dovecot", dovecot_note, "", "", "", "", ""])

    if C.have_pop3():
        data = work / "pop3-ours"
        shutil.copytree(tree, data)
        try:
            with C.start_mailproto(data, smtp=False, pop3=True, users=C.USERS) as server:
                passes = []
                for label, who in POP3_PASSES:
                    log(f"pop3: mailproto ({label})")
                    time.sleep(0.2)
                    c0 = server.cpu()
                    res = asyncio.run(L.pop3_load(server.ports["POP3"],
                                                  single if who == "one" else users))
                    time.sleep(0.1)
                    c1 = server.cpu()
                    passes.append((label, res, (c1 - c0) * 1000 / max(res.messages, 1)))
                for label, res, cpu in passes:
                    rows.append([f"mailproto ({label})", fmt(res.rate, 0), fmt(cpu, 3),
                                 fmt(res.p(0.5), 2), fmt(res.p(0.99), 2), str(res.messages),
                                 str(len(res.errors))])
                    for e in res.errors[:3]:
                        report.notes.append(f"pop3 mailproto: {e}")
                results["ours"] = (passes[1][1].rate, passes[1][2])
                results["ours-one"] = (passes[-1][1].rate, passes[-1][2])
        except Exception as exc:  # noqa: BLE001
            rows.append(["mailproto", f"failed: {exc!r}"[:200], "", "", "", "", ""])
    else:
        rows.append(["mailproto", "POP3 not in place yet (mailproto.net.pop3_listener missing)",
                     "", "", "", "", ""])
    text = [f"### POP3 RETR: {total:,} messages of {size // 1024} KB ({len(users)} maildrops "
            f"of {per_user}, one session each, in parallel; then one maildrop of {total:,} in "
            "one session; RETR pipelined 8 deep when CAPA says PIPELINING)",
            table(["server", "msg/s", "server CPU ms/msg", "p50 ms", "p99 ms", "messages",
                   "errors"], rows),
            "Server CPU includes login, STAT and QUIT; for Dovecot it is the whole process "
            "group (master, login, auth and the pop3 processes it reaped)."]
    if "ours" in results and "dovecot" in results:
        ratio = results["ours"][1] / results["dovecot"][1]
        report.headline("POP3 RETR server CPU per message (20 sessions, warm)",
                        f"{results['ours'][1]:.3f} ms", f"Dovecot {results['dovecot'][1]:.3f} ms",
                        f"{ratio:.2f}x", "≤ 1.5x", ratio <= 1.5)
        ratio = results["ours-one"][1] / results["dovecot-one"][1]
        report.headline(f"POP3 RETR server CPU per message (one session of {total:,}, warm)",
                        f"{results['ours-one'][1]:.3f} ms",
                        f"Dovecot {results['dovecot-one'][1]:.3f} ms", f"{ratio:.2f}x", "≤ 1.5x",
                        ratio <= 1.5)
    else:
        report.headline("POP3 RETR server CPU per message",
                        "not available" if "ours" not in results else
                        f"{results['ours'][1]:.3f} ms",
                        f"Dovecot {results['dovecot'][1]:.3f} ms" if "dovecot" in results
                        else "not run", "–", "≤ 1.5x", None)
    report.add("\n\n".join(text))


# -- idle sessions ---------------------------------------------------------------------------
def bench_idle(report: Report, count: int, work: Path) -> None:
    C.raise_nofile(count * 2 + 256)
    rows = []
    per_session: dict[str, float] = {}
    have_aiosmtpd = C.version_of("aiosmtpd") is not None
    for kind in ("mailproto", "aiosmtpd"):
        if kind == "aiosmtpd" and not have_aiosmtpd:
            continue
        log(f"idle: {count} sessions on {kind}")
        target = work / f"idle-{kind}"
        server = (C.start_aiosmtpd(target / "Maildir") if kind == "aiosmtpd"
                  else C.start_mailproto(target, extra=["--max-connections", str(count + 100)]))
        with server:
            time.sleep(0.3)
            rss0 = server.rss_kb()

            async def scenario(server: C.ServerProc = server) -> tuple[L.IdleResult, int, int,
                                                                        float]:
                started = time.perf_counter()
                idle = await L.open_idle_sessions(server.ports["SMTP"], count)
                opened_in = time.perf_counter() - started
                await asyncio.sleep(0.5)
                rss1 = server.rss_kb()
                ok = await L.close_idle_sessions(idle)
                return idle, rss1, ok, opened_in

            idle, rss1, ok, opened_in = asyncio.run(scenario())
            alive = server.proc.poll() is None
        kb = (rss1 - rss0) / max(idle.opened, 1)
        per_session[kind] = kb
        rows.append([kind, f"{idle.opened}/{count}", f"{ok}/{count}", str(len(idle.errors)),
                     fmt(opened_in, 2), fmt(rss0 / 1024, 1), fmt(rss1 / 1024, 1), fmt(kb, 1),
                     "yes" if alive else "**no**"])
        for e in idle.errors[:3]:
            report.notes.append(f"idle {kind}: {e}")
        shutil.rmtree(target, ignore_errors=True)
    report.add(f"### {count:,} concurrent SMTP sessions (EHLO, then idle)\n\n" + table(
        ["server", "opened (220+250)", "still answering (NOOP+QUIT)", "errors",
         "open time s", "RSS before MB", "RSS with sessions MB", "KB per idle session",
         "server up"], rows))
    if "mailproto" in per_session:
        ok_all = rows[0][1] == rows[0][2] == f"{count}/{count}" and rows[0][3] == "0"
        ref = per_session.get("aiosmtpd")
        report.headline(f"{count:,} idle SMTP sessions", f"{'no error' if ok_all else 'ERRORS'}, "
                        f"{per_session['mailproto']:.1f} KB/session",
                        f"aiosmtpd {ref:.1f} KB/session" if ref is not None else "–",
                        f"{per_session['mailproto'] / ref:.2f}x memory" if ref else "–",
                        "no error", ok_all)


# -- one big message -------------------------------------------------------------------------
def bench_big(report: Report, size: int, work: Path, with_aiosmtpd: bool) -> None:
    rows = []
    target = work / "big"
    pop3 = C.have_pop3()
    limit = size + 16 * MB
    log(f"big: one {size // MB} MB message through mailproto")
    with C.start_mailproto(target, pop3=pop3, extra=["--max-message-size", str(limit)]) as srv:
        time.sleep(0.2)
        hwm0 = srv.hwm_kb()
        c0 = srv.cpu()
        sent, digest, secs = asyncio.run(L.smtp_send_big(srv.ports["SMTP"], size))
        c1 = srv.cpu()
        hwm_smtp = srv.hwm_kb()
        rows.append(["mailproto SMTP in", fmt(sent / MB, 1), fmt(secs, 2), fmt(sent / MB / secs, 1),
                     fmt(c1 - c0, 2), fmt(hwm0 / 1024, 1), fmt(hwm_smtp / 1024, 1), ""])
        files = sorted((target / "alice" / "new").iterdir())
        check = "stored message missing"
        if files:
            h = hashlib.sha256()
            with open(files[-1], "rb") as f:
                head = f.read(4096)
                cut = head.index(b"\n\n") + 2
                h.update(head[cut:])
                for block in iter(lambda: f.read(MB), b""):
                    h.update(block)
            lf_digest = hashlib.sha256()
            for _wire, plain in L.big_body_chunks(size):
                lf_digest.update(plain.replace(b"\r\n", b"\n"))
            check = "stored body = sent body" if h.hexdigest() == lf_digest.hexdigest() else \
                "**stored body differs**"
        rows[-1][-1] = check
        peak = hwm_smtp
        if pop3:
            log("big: POP3 RETR of it")
            c0 = srv.cpu()
            got, got_digest, secs = asyncio.run(L.pop3_retr_big(srv.ports["POP3"], "alice",
                                                                C.USERS["alice"]))
            c1 = srv.cpu()
            peak = srv.hwm_kb()
            rows.append(["mailproto POP3 RETR", fmt(got / MB, 1), fmt(secs, 2),
                         fmt(got / MB / secs, 1), fmt(c1 - c0, 2), fmt(hwm_smtp / 1024, 1),
                         fmt(peak / 1024, 1),
                         "RETR body = sent body" if got_digest == digest else
                         "**RETR body differs**"])
        else:
            rows.append(["mailproto POP3 RETR", "POP3 not in place yet", "", "", "", "", "", ""])
    shutil.rmtree(target, ignore_errors=True)
    if with_aiosmtpd and C.version_of("aiosmtpd"):
        log(f"big: one {size // MB} MB message through aiosmtpd (reference)")
        target = work / "big-aiosmtpd"
        with C.start_aiosmtpd(target / "Maildir") as srv:
            time.sleep(0.2)
            hwm0 = srv.hwm_kb()
            c0 = srv.cpu()
            try:
                sent, _, secs = asyncio.run(L.smtp_send_big(srv.ports["SMTP"], size,
                                                            time_limit=120))
                c1 = srv.cpu()
                rows.append(["aiosmtpd SMTP in (reference)", fmt(sent / MB, 1), fmt(secs, 2),
                             fmt(sent / MB / secs, 1), fmt(c1 - c0, 2), fmt(hwm0 / 1024, 1),
                             fmt(srv.hwm_kb() / 1024, 1), ""])
            except Exception as exc:  # noqa: BLE001
                rows.append(["aiosmtpd SMTP in (reference)", f"failed: {exc!r}"[:120], "", "",
                             "", "", fmt(srv.hwm_kb() / 1024, 1), ""])
        shutil.rmtree(target, ignore_errors=True)
    report.add(f"### One {size // MB} MB message through SMTP and back out through POP3\n\n"
               + table(["step", "MB", "seconds", "MB/s", "server CPU s", "peak RSS before MB",
                        "peak RSS after MB", "check"], rows))
    report.headline(f"{size // MB} MB message: server peak RSS (VmHWM)",
                    f"{peak / 1024:.1f} MB" + ("" if pop3 else " (SMTP only)"), "–", "–",
                    "< 64 MB", peak / 1024 < 64)


# -- start-up --------------------------------------------------------------------------------
def bench_startup(report: Report, runs: int, work: Path) -> None:
    pop3 = C.have_pop3()
    data = work / "startup"
    data.mkdir(parents=True)
    C.write_users(data / "users", C.USERS)
    times = []
    first = float("nan")
    for i in range(runs + 1):
        port = C.free_port()
        cmd = [sys.executable, "-m", "mailproto", "serve", "--data", str(data),
               "--smtp-port", str(port), "--pop3-port", str(C.free_port()) if pop3 else "-1"]
        log(f"startup {i + 1}/{runs + 1}")
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, cwd=C.SRC,
                                env=dict(os.environ, PYTHONPATH=str(C.SRC)))
        try:
            C.wait_connect(port, 30, proc)
            took = time.perf_counter() - started
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if i == 0:
            first = took  # a fresh data dir: makes the self-signed TLS certificate
        else:
            times.append(took)
    med = C.median(times)
    # Interpreter alone, for scale.
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mailproto.net.server"], check=True, cwd=C.SRC,
                   env=dict(os.environ, PYTHONPATH=str(C.SRC)))
    imports = time.perf_counter() - started
    rows = [[f"mailproto serve until the first 220 (median of {runs})", fmt(med, 3)],
            ["min / max", f"{fmt(min(times), 3)} / {fmt(max(times), 3)}"],
            ["first start on a fresh data dir (creates the TLS certificate)", fmt(first, 3)],
            ["python -c pass", fmt(bare, 3)],
            ["python -c 'import mailproto.net.server'", fmt(imports, 3)]]
    report.add("### Start-up\n\n" + table(["what", "seconds"], rows))
    report.headline(f"`mailproto serve` start-up (median of {runs})", f"{med:.3f} s", "–", "–",
                    "< 0.5 s", med < 0.5)


# -- the whole run ---------------------------------------------------------------------------
def render(report: Report, info: dict[str, str], started: float, args: argparse.Namespace
           ) -> str:
    lines = [f"## Benchmarks ({'quick' if report.quick else 'full'} run, "
             f"{time.strftime('%Y-%m-%d %H:%M')}, {time.perf_counter() - started:.0f} s)", ""]
    lines.append("Machine: " + "; ".join(f"{k} {v}" for k, v in info.items())
                 + f"; load average at start {args.load_at_start}, at end {loadavg()}.")
    lines.append("")
    lines.append("Command: `python -m bench" + (" --quick" if report.quick else "") + "`. "
                 "Every server runs in its own process; server CPU is utime+stime from "
                 "/proc/<pid>/stat; traffic on 127.0.0.1 only. The machine may be shared: "
                 "compare rows of one run, not runs.")
    lines.append("")
    if report.summary:
        lines.append(table(["benchmark", "mailproto", "reference", "ratio", "target", "verdict"],
                           [list(r) for r in report.summary]))
        lines.append("")
    for section in report.sections:
        lines.append(section)
        lines.append("")
    if report.notes:
        lines.append("Notes:")
        lines += [f"- {n}" for n in report.notes]
        lines.append("")
    return "\n".join(lines)


BENCHES = ("smtp", "core", "pop3", "idle", "big", "startup")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller load (about a minute)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {BENCHES}")
    parser.add_argument("--rounds", type=int, help="SMTP rounds (default 3, quick 1)")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help="where to write the markdown (default bench/results.md); '-' for none")
    args = parser.parse_args(argv)
    only = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHES)
    unknown = set(only) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    q = args.quick
    rounds = args.rounds or (1 if q else 3)
    messages = 500 if q else 2000
    idle = 200 if q else 1000
    big = (20 if q else 100) * MB
    per_user = 25 if q else 100
    args.load_at_start = loadavg()
    started = time.perf_counter()
    C.raise_nofile(4096)
    report = Report(quick=q)
    info = C.machine()
    steps: list[tuple[str, Callable[[Path], None]]] = []
    fs: dict[str, dict[str, float]] = {}
    steps.append(("smtp", lambda w: bench_smtp(report, rounds, messages, 20, 2048, w)))
    steps.append(("core", lambda w: (fs.update(bench_fs(w)),
                                     bench_core(report, 2000 if q else 5000, fs))[0]))
    steps.append(("pop3", lambda w: bench_pop3(report, per_user, 2048, w)))
    steps.append(("idle", lambda w: bench_idle(report, idle, w)))
    steps.append(("big", lambda w: bench_big(report, big, w, with_aiosmtpd=not q)))
    steps.append(("startup", lambda w: bench_startup(report, 5, w)))
    with C.scratch() as work:
        for name, step in steps:
            if name not in only:
                continue
            sub = work / name
            sub.mkdir()
            try:
                step(sub)
            except Exception as exc:  # noqa: BLE001 - report it and go on with the others
                log(f"{name} failed: {exc!r}")
                report.add(f"### {name}: FAILED\n\n```\n{traceback.format_exc()[-3000:]}```")
                report.headline(name, "FAILED", "–", "–", "–", False)
            finally:
                shutil.rmtree(sub, ignore_errors=True)
    text = render(report, info, started, args)
    print(text)
    if str(args.output) != "-":
        with contextlib.suppress(OSError):
            args.output.write_text(text + "\n")
            log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
