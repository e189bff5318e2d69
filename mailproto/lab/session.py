"""Sessions for notebooks: type protocol lines at a server, as at a telnet prompt, and see each
exchange annotated — the notebook face of the clients.

    from mailproto.lab import start
    lab = start(demo=True)              # in memory: same output every run
    smtp = lab.smtp()
    smtp.send("EHLO student.example")   # shows C:/S: lines, what they mean, the state change

Every line goes through our real client (``send_line``: nothing is refused, as at telnet) to our
real server core; each call returns an :class:`Exchange`, which displays as annotated HTML (and
as plain ``C:``/``S:`` text where HTML is not shown).  ``start(tcp=True)`` runs a real server on
loopback ports instead, so a terminal with telnet or netcat can join in.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from ..errors import ConnectionClosed
from ..net.memory import MemoryLab
from ..net.pop3_client import POP3Client
from ..net.smtp_client import SMTPClient
from ..transcript import Step, Transcript
from .annotate import annotate
from .transcript_html import box, legend, render_step


@dataclass
class Exchange:
    """What one :meth:`LabSession.send` put on the wire and got back."""

    transcript: Transcript
    start: int
    end: int
    error: str = ""

    @property
    def steps(self) -> list[Step]:
        return self.transcript.steps[self.start : self.end]

    @property
    def replies(self) -> list[Step]:
        return [s for s in self.steps if s.direction == "S"]

    @property
    def reply(self) -> str:
        """The last reply's text, e.g. ``"250 2.1.5 Ok"`` (first line of a multi-line one)."""
        for step in reversed(self.steps):
            if step.direction == "S":
                return step.text.split("\r\n", 1)[0]
        return ""

    @property
    def state_change(self) -> tuple[str, str]:
        steps = [s for s in self.steps if s.state_before or s.state_after]
        if not steps:
            return ("", "")
        return (steps[0].state_before, steps[-1].state_after)

    def _repr_html_(self) -> str:
        notes = annotate(self.transcript, self.end)
        rows = [legend(self.transcript.protocol)]
        rows += [render_step(s, self.start + i, notes[self.start + i])
                 for i, s in enumerate(self.steps)]
        before, after = self.state_change
        if before:
            moved = f"{before} → {after}" if before != after else f"still {after}"
            rows.append(f'<div style="font-family:sans-serif;font-size:12px;margin-top:4px">'
                        f"state: <b>{escape(moved)}</b></div>")
        if self.error:
            rows.append(f'<div style="font-family:sans-serif;color:#D55E00">'
                        f"{escape(self.error)}</div>")
        return box("".join(rows))

    def __repr__(self) -> str:
        lines = []
        for step in self.steps:
            text = step.text.rstrip("\r\n")
            if step.kind == "data" and text.count("\r\n") > 8:
                head = text.split("\r\n")
                text = "\r\n".join(head[:4] + [f"... ({len(head) - 6} more lines) ..."]
                                   + head[-2:])
            for line in text.split("\r\n"):
                lines.append(f"{step.direction}: {line}")
        before, after = self.state_change
        if before:
            lines.append(f"   state: {before} → {after}" if before != after
                         else f"   state: still {after}")
        if self.error:
            lines.append(f"   {self.error}")
        return "\n".join(lines)


class LabSession:
    """One client session a student drives line by line."""

    def __init__(self, client: SMTPClient | POP3Client) -> None:
        self.client = client
        self.protocol = "smtp" if isinstance(client, SMTPClient) else "pop3"

    @property
    def transcript(self) -> Transcript:
        return self.client.transcript

    @property
    def state(self) -> str:
        return self.client.state

    @property
    def closed(self) -> bool:
        return self.client.channel is None

    def send(self, line: str | bytes) -> Exchange:
        """Send one line exactly as typed (CRLF added) and show what came back."""
        start = len(self.transcript)
        error = ""
        if self.closed:
            error = "the connection is closed: start a new session"
        else:
            try:
                self.client.send_line(line)
            except ConnectionClosed as exc:
                error = f"connection closed: {exc}"
            except TimeoutError as exc:
                error = f"no reply: {exc}"
            except OSError as exc:  # ssl.SSLError too: a failed handshake ends the session
                error = f"connection failed: {exc}"
        return Exchange(self.transcript, start, len(self.transcript), error)

    def send_lines(self, *lines: str) -> Exchange:
        """Several lines in one write (pipelining, RFC 2920 / RFC 2449), one exchange."""
        start = len(self.transcript)
        text = "".join(line + "\r\n" for line in lines)
        exchange = self.send(text.encode("utf-8"))
        return Exchange(self.transcript, start, exchange.end, exchange.error)

    # -- views ---------------------------------------------------------------------------
    def view(self, **options: Any) -> Any:
        from .views import TranscriptView

        return TranscriptView(self.transcript, **options)

    def diagram(self) -> Any:
        from .views import StateDiagram

        return StateDiagram.from_transcript(self.transcript)

    def stepper(self) -> Any:
        from .stepper import Stepper

        return Stepper(self.transcript)

    def console(self) -> Any:
        from .console import Console

        def send_line(line: str) -> None:
            self.client.send_line(line)

        return Console(send_line, lambda: self.transcript)

    def __repr__(self) -> str:
        return f"<LabSession {self.protocol} state={self.state}>"


class Lab:
    """A mail server for a notebook (in memory by default) and sessions to talk to it."""

    def __init__(self, *, demo: bool = True, users: dict[str, str] | None = None,
                 tcp: bool = False, enable_vrfy: bool = False,
                 lists: dict[str, list[str]] | None = None) -> None:
        self.tcp = tcp
        self.server: Any = None
        if tcp:
            import tempfile
            from pathlib import Path

            from ..demo import create_demo_store
            from ..net.runner import BackgroundServer

            self._tmp = tempfile.TemporaryDirectory(prefix="mailproto-lab-")
            data = Path(self._tmp.name)
            users_path = create_demo_store(data)
            extra = "".join(f"{u}:{p}\n" for u, p in (users or {}).items())
            extra += "".join(f"{n}: {', '.join(m)}\n" for n, m in (lists or {}).items())
            if extra:
                # As in memory: a name given here replaces the demo account or list of that
                # name (the users file refuses a name defined twice).
                given = {n.lower() for n in (users or {})} | {n.lower() for n in (lists or {})}
                kept = [line for line in users_path.read_text(encoding="utf-8").splitlines()
                        if line.lstrip().startswith("#") or ":" not in line
                        or line.split(":", 1)[0].strip().lower() not in given]
                users_path.write_text("\n".join(kept) + "\n" + extra, encoding="utf-8")
            self.server = BackgroundServer(data=data, users=users_path, enable_vrfy=enable_vrfy,
                                           auth_failure_delay=0).start()
            self.memory = None
        else:
            self.memory = MemoryLab(users, demo=demo, enable_vrfy=enable_vrfy, lists=lists)

    @property
    def data(self) -> Any:
        return self.server.data if self.tcp else self.memory.data  # type: ignore[union-attr]

    def _cafile(self) -> str | None:
        """The lab server's own self-signed certificate, so STARTTLS/STLS verify against it."""
        cert = self.data / ".tls" / "cert.pem"
        return str(cert) if cert.exists() else None

    def smtp(self) -> LabSession:
        """A new SMTP session (the 220 greeting already read)."""
        if self.memory is not None:
            return LabSession(self.memory.smtp_client())
        client = SMTPClient("127.0.0.1", self.server.smtp_port, local_hostname="client.example",
                            cafile=self._cafile())
        client.connect()
        return LabSession(client)

    def pop3(self) -> LabSession:
        """A new POP3 session (the +OK greeting already read)."""
        if self.memory is not None:
            return LabSession(self.memory.pop3_client())
        client = POP3Client("127.0.0.1", self.server.pop3_port, cafile=self._cafile())
        client.connect()
        return LabSession(client)

    def mailbox(self, user: str) -> list[bytes]:
        """The messages in ``user``'s Maildir, in arrival order, as stored (LF line endings)."""
        from ..store import Maildir

        return [p.read_bytes() for p in Maildir(self.data / user, create=False).message_paths()]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self._tmp.cleanup()
            self.server = None
        if self.memory is not None:
            self.memory.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self.tcp and self.server is not None:
            return (f"<Lab: SMTP on 127.0.0.1:{self.server.smtp_port}, POP3 on "
                    f"127.0.0.1:{self.server.pop3_port}>")
        return "<Lab: in memory (the same output every run)>"


def start(*, demo: bool = True, users: dict[str, str] | None = None, tcp: bool = False,
          enable_vrfy: bool = False, lists: dict[str, list[str]] | None = None) -> Lab:
    """A lab server for this notebook: in memory and deterministic unless ``tcp=True``."""
    return Lab(demo=demo, users=users, tcp=tcp, enable_vrfy=enable_vrfy, lists=lists)
