"""How long one stepper step takes: advance, re-render the transcript HTML and the state diagram.

    python bench/bench_lab_step.py [--steps N]

The transcript is real: ``mailproto.smtp.server.ServerSession`` fed a scripted client session in
memory, recorded with a ``Recorder``, a Maildir store in a temporary directory.  The widget is
driven as a browser would (setting the slider's value), so the figure includes the traitlets
round and both ``.value`` updates.  Target: median < 50 ms per step.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mailproto.smtp.server import ServerConfig, ServerSession
from mailproto.store import Store, Users
from mailproto.transcript import Recorder, Transcript

TARGET = 0.050


def recorded_smtp_session(transactions: int = 4) -> Transcript:
    """A realistic session: greeting, EHLO, AUTH, mistakes, several messages, QUIT."""
    plain = base64.b64encode(b"\0alice\0secret").decode()
    script = ["NOOP", "MAIL FROM:<alice@local.test>", "EHLO client.test", "HELP", "VRFY bob",
              f"AUTH PLAIN {plain}"]
    for n in range(transactions):
        script += [f"MAIL FROM:<alice@local.test> SIZE={200 + n}",
                   "RCPT TO:<nobody@local.test>", "RCPT TO:<bob@local.test>",
                   "RCPT TO:<staff@local.test>", "DATA",
                   f"Subject: message {n}\r\n\r\nline one\r\n..dotted\r\n.", "NOOP"]
    script += ["RSET", "QUIT"]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "data", Users.parse("alice:secret\nbob:pw\nstaff: alice, bob\n"))
        ticks = itertools.count()
        recorder = Recorder("smtp", clock=lambda: 1e9 + next(ticks))
        session = ServerSession(ServerConfig(), store, clock=lambda: 1e9, on_step=recorder)
        session.initiate()
        for line in script:
            data = line.encode() + b"\r\n"
            session.receive(data)
    return recorder.transcript


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=4,
                        help="mail transactions in the recorded session (default 4)")
    args = parser.parse_args(argv)

    transcript = recorded_smtp_session(args.transactions)
    t0 = time.perf_counter()
    from mailproto.lab.stepper import Stepper  # timed: what a notebook pays

    stepper = Stepper(transcript, start=0)
    build = time.perf_counter() - t0
    times = []
    for index in range(1, len(transcript) + 1):
        t0 = time.perf_counter()
        stepper.slider.value = index  # advance + transcript HTML + diagram SVG
        times.append(time.perf_counter() - t0)
        assert stepper.transcript_html.value.count("data-step=") == index
    back = []
    for _ in range(len(transcript) - 1):
        t0 = time.perf_counter()
        stepper.back_button.click()
        back.append(time.perf_counter() - t0)

    def ms(x: float) -> str:
        return f"{x * 1000:.1f} ms"

    median = statistics.median(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    print(f"lab stepper bench: recorded SMTP session of {len(transcript)} steps")
    print(f"  first use (import, widget, diagram parts for the table): {ms(build)}")
    print(f"  step forward ({len(times)} steps): median {ms(median)}, p90 {ms(p90)}, "
          f"max {ms(max(times))}")
    print(f"  step back ({len(back)} steps): median {ms(statistics.median(back))}")
    verdict = "OK" if median < TARGET else "TOO SLOW"
    print(f"  target: median < {ms(TARGET)}: {verdict}")
    return 0 if median < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
