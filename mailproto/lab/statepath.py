"""The way a session went through its state table, read from a transcript (pure).

A transcript records, on every server line, the state before and after it.  :func:`state_path`
turns that into the states visited, the table rows taken (so the diagram can light up the arrow
of the last one), and the commands that were refused where they were refused, with the server's
reason.  It works for any :class:`~mailproto.statetable.StateTable`: SMTP (RFC 5321 §4.1.4) and
POP3 (RFC 1939 §3) alike.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..statetable import StateTable, Transition
from ..transcript import CLIENT, EVENT, SERVER, Step, Transcript
from .annotate import rejection_reason

#: Protocol name (as in ``Transcript.protocol``) -> module holding its ``TABLE``.
TABLE_MODULES = {"smtp": "mailproto.smtp.states", "pop3": "mailproto.pop3.states"}


def table_for(protocol: str) -> StateTable | None:
    """The state table of ``protocol``, or None if there is none (yet)."""
    module = TABLE_MODULES.get(protocol.lower())
    if module is None:
        return None
    try:
        return importlib.import_module(module).TABLE  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


@dataclass(frozen=True)
class Move:
    """A transition taken: ``source --event--> target``, shown by the server line ``step``."""

    source: str
    event: str
    target: str
    step: int
    #: False when the server changed state without a row of the table (a bug to report).
    in_table: bool = True

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.event, self.target)


@dataclass(frozen=True)
class Rejection:
    """A command the server refused in ``state``: 503 / ``-ERR`` and the reason it gave."""

    state: str
    event: str
    step: int
    code: str
    why: str
    #: True if the table does not allow ``event`` in ``state`` (503 bad sequence).
    by_table: bool = False

    @property
    def label(self) -> str:
        what = self.event or "line"
        return f"{what} refused: {self.code} {self.why}".strip()


@dataclass
class StatePath:
    states: list[str] = field(default_factory=list)  # in order of arrival, repeats kept
    moves: list[Move] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    current: str | None = None

    @property
    def visited(self) -> set[str]:
        return set(self.states)

    @property
    def last_move(self) -> Move | None:
        return self.moves[-1] if self.moves else None

    def last_rejection(self, after_step: int = -1) -> Rejection | None:
        """The latest refusal, if nothing moved since (what the diagram should still show)."""
        if not self.rejections:
            return None
        rej = self.rejections[-1]
        last = self.last_move
        if last is not None and last.step > rej.step:
            return None
        return rej if rej.step > after_step else None


def _is_verb(event: str) -> bool:
    """Commands are upper-case words; pseudo-events (timeouts, end of data) are not."""
    return event.isalpha() and event.isupper()


def reply_code(step: Step) -> str:
    """``"503"``, ``"+OK"``, ``"-ERR"``, ``"+"`` (a SASL continuation) or ``""``.

    Read from the raw line, which every transcript has, whatever its ``parsed`` holds.
    """
    first = step.raw.split(b"\r\n", 1)[0]
    if first[:3].isdigit():
        return first[:3].decode()
    for word in (b"+OK", b"-ERR", b"+"):
        if first.startswith(word):
            return word.decode()
    return ""


def is_continuation(step: Step) -> bool:
    """SMTP 334 or POP3 ``+``: the server waits for a SASL response (RFC 4954, RFC 5034)."""
    code = reply_code(step)
    return code == "+" or code == "334"


def is_negative(step: Step) -> bool:
    code = reply_code(step)
    return code == "-ERR" or (code.isdigit() and int(code) >= 400)


def _rows(table: StateTable, source: str, target: str | None = None) -> list[Transition]:
    return [t for t in table.transitions if t.source.name == source
            and (target is None or t.target.name == target)]


def _resolve(table: StateTable, before: str, after: str, verb: str | None
             ) -> list[Transition] | None:
    """The row(s) that lead from ``before`` to ``after`` when ``verb`` succeeded.

    One server line can hide two rows: ``AUTH PLAIN <initial response>`` enters and leaves
    AUTH before the reply (RFC 4954 §4), so a command followed by pseudo-events is tried too.
    """
    direct = _rows(table, before, after)
    for t in direct:
        if t.event == verb:
            return [t]
    if verb is not None:
        for first in _rows(table, before):
            if first.event != verb:
                continue
            for second in _rows(table, first.target.name, after):
                if not _is_verb(second.event):
                    return [first, second]
    pseudo = [t for t in direct if not _is_verb(t.event)]
    if pseudo and (verb is None or len(pseudo) == 1):
        return [pseudo[0]]
    if len(direct) == 1 and verb is None:
        return direct
    return None


def state_path(transcript: Transcript, table: StateTable | None = None,
               upto: int | None = None) -> StatePath:
    """States visited and transitions taken in the first ``upto`` steps of ``transcript``."""
    if table is None:
        table = table_for(transcript.protocol)
    path = StatePath()
    steps = transcript.steps if upto is None else transcript.steps[:upto]
    verb: str | None = None  # the client's command waiting for its reply

    for i, step in enumerate(steps):
        if path.current is None and step.state_before:
            path.states.append(step.state_before)
            path.current = step.state_before
        if step.direction == CLIENT:
            if step.kind == "data":
                verb = None  # answered by a pseudo-event row (end of data)
            elif step.kind != "auth":  # a SASL response keeps the AUTH it belongs to
                verb = str(step.parsed.get("verb") or
                           step.raw.split(b" ", 1)[0].strip().decode("utf-8", "replace")).upper()
            continue
        if step.direction == EVENT:
            if step.parsed.get("event") == "closed" and table is not None:
                _lost(path, table, step, i)
            continue
        if step.direction != SERVER:
            continue
        before, after = step.state_before, step.state_after
        if before == after and is_continuation(step):
            continue  # inside a SASL exchange: no row taken yet, AUTH still pending
        if step.kind == "greeting" and before == after:
            verb = None  # the server speaking first takes no row (POP3 has a pseudo-event
            continue  # loop in AUTHORIZATION, "AUTH (no argument)", it must not match)
        negative = is_negative(step)
        rows = _resolve(table, before, after, verb) if table is not None else None
        if rows and (before != after or not negative):
            for t in rows:  # one row, or a command and the pseudo-event that ended it
                path.moves.append(Move(t.source.name, t.event, t.target.name, i))
                path.states.append(t.target.name)
            path.current = after
        elif before != after:  # the server moved without a row: show it, flagged
            path.moves.append(Move(before, verb or reply_code(step), after, i, in_table=False))
            path.states.append(after)
            path.current = after
        elif negative and step.kind != "greeting":
            # Refused by the table (503 bad sequence) only if the table knows the command at all.
            by_table = (table is not None and verb is not None
                        and any(t.event == verb for t in table.transitions)
                        and not any(t.event == verb for t in _rows(table, before)))
            path.rejections.append(Rejection(before, verb or "", i, reply_code(step),
                                             rejection_reason(step), by_table))
        verb = None
    return path


def _lost(path: StatePath, table: StateTable, step: Step, index: int) -> None:
    """The connection dropped: take the table's row for it if there is one (POP3 has one)."""
    final = table.final.name
    if path.current is None or path.current == final:
        if path.current is None:
            path.states.append(final)
            path.current = final
        return
    words = set(step.raw.decode("utf-8", "replace").lower().split())
    # The row whose words match the event's ("connection lost" ~ "connection ends"); a
    # timeout row is not a dropped connection, so without a match the move is off-table.
    rows = [t for t in _rows(table, path.current, final)
            if not _is_verb(t.event) and words & set(t.event.lower().split())]
    rows.sort(key=lambda t: -len(words & set(t.event.lower().split())))
    if rows:
        path.moves.append(Move(path.current, rows[0].event, final, index))
    else:
        path.moves.append(Move(path.current, step.raw.decode("utf-8", "replace"), final, index,
                               in_table=False))
    path.states.append(final)
    path.current = final
