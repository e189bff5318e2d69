"""Exercises with immediate feedback: check functions shipped with the package (the pattern of
otter-grader's ``grader.check``), so they run anywhere, Binder included.

    from mailproto.lab import check
    check("smtp-first-message", smtp)      # smtp: the student's LabSession (or a transcript)

A check says what is right, what is not, and which RFC rule decides it; on each failed try it
gives a hint that is more specific than the last, and it never prints the answer.  Exercises
live in :mod:`mailproto.lab.checks` (one module per lesson), registered with :func:`exercise`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from ..transcript import Transcript


@dataclass(frozen=True)
class Finding:
    """One thing the check looked at: right or not, said plainly, with the rule that decides."""

    ok: bool
    text: str
    rule: str = ""


@dataclass
class Exercise:
    id: str
    title: str
    run: Callable[[Any], list[Finding]]
    hints: list[str] = field(default_factory=list)


@dataclass
class Feedback:
    exercise: Exercise
    findings: list[Finding]
    attempt: int
    hint: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        head = "✔ well done" if self.passed else f"✘ not yet (try {self.attempt})"
        lines = [f"{self.exercise.id}: {self.exercise.title} — {head}"]
        for f in self.findings:
            rule = f"  [{f.rule}]" if f.rule else ""
            lines.append(f"  {'✔' if f.ok else '✘'} {f.text}{rule}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = "#009E73" if self.passed else "#D55E00"
        head = "✔ well done" if self.passed else f"✘ not yet (try {self.attempt})"
        items = "".join(
            f'<li style="list-style:none">{"✔" if f.ok else "✘"} {escape(f.text)}'
            + (f' <span style="color:#6B6B6B">[{escape(f.rule)}]</span>' if f.rule else "")
            + "</li>" for f in self.findings)
        hint = (f'<div style="background:#FFF7E0;padding:4px 8px;margin-top:4px">💡 '
                f"{escape(self.hint)}</div>" if self.hint else "")
        return (f'<div style="font-family:sans-serif;border-left:4px solid {colour};'
                f'padding:4px 10px"><b>{escape(self.exercise.id)}</b>: '
                f'{escape(self.exercise.title)} — <b style="color:{colour}">{head}</b>'
                f'<ul style="padding-left:4px;margin:4px 0">{items}</ul>{hint}</div>')


_REGISTRY: dict[str, Exercise] = {}
_ATTEMPTS: dict[str, int] = {}
_LOADED = False


def exercise(id: str, title: str, hints: list[str] | None = None
             ) -> Callable[[Callable[[Any], list[Finding]]], Callable[[Any], list[Finding]]]:
    """Register a check function under ``id`` (decorator)."""

    def register(fn: Callable[[Any], list[Finding]]) -> Callable[[Any], list[Finding]]:
        if id in _REGISTRY:
            raise ValueError(f"exercise {id!r} registered twice")
        _REGISTRY[id] = Exercise(id, title, fn, list(hints or []))
        return fn

    return register


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    from . import checks

    for info in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"{checks.__name__}.{info.name}")
    _LOADED = True


def exercises() -> dict[str, Exercise]:
    _load()
    return dict(_REGISTRY)


def transcript_of(answer: Any) -> Transcript:
    """A transcript from what a student hands in: a LabSession, a client, or a transcript."""
    if isinstance(answer, Transcript):
        return answer
    transcript = getattr(answer, "transcript", None)
    if isinstance(transcript, Transcript):
        return transcript
    raise TypeError("hand in your session (the object you typed into), a client or a "
                    "transcript")


def check(exercise_id: str, answer: Any) -> Feedback:
    """Run the check for ``exercise_id`` on the student's ``answer``; count the attempt."""
    _load()
    ex = _REGISTRY.get(exercise_id)
    if ex is None:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"no exercise {exercise_id!r}; known: {known}")
    attempt = _ATTEMPTS.get(exercise_id, 0) + 1
    _ATTEMPTS[exercise_id] = attempt
    try:
        findings = ex.run(answer)
    except TypeError as exc:
        findings = [Finding(False, str(exc))]
    feedback = Feedback(ex, findings, attempt)
    if not feedback.passed and ex.hints:
        feedback.hint = ex.hints[min(attempt, len(ex.hints)) - 1]
    return feedback


def hint(exercise_id: str) -> str:
    """The next hint, without checking (counts as a try)."""
    _load()
    ex = _REGISTRY[exercise_id]
    attempt = _ATTEMPTS.get(exercise_id, 0) + 1
    _ATTEMPTS[exercise_id] = attempt
    return ex.hints[min(attempt, len(ex.hints)) - 1] if ex.hints else "no hints for this one"


def reset(exercise_id: str | None = None) -> None:
    """Forget the attempts (all, or one exercise's): hints start from the first again."""
    if exercise_id is None:
        _ATTEMPTS.clear()
    else:
        _ATTEMPTS.pop(exercise_id, None)


# -- helpers for check modules ---------------------------------------------------------------
def commands(transcript: Transcript) -> list[tuple[str, str]]:
    """(verb, argument) of every command the client sent, in order."""
    return [(s.parsed.get("verb", ""), s.parsed.get("arg", "")) for s in transcript
            if s.direction == "C" and s.kind == "command" and "verb" in s.parsed]


def exchanges(transcript: Transcript) -> list[tuple[str, str, str]]:
    """Each client line that expects a reply, paired with that reply, in order (replies come in
    the order of the commands, also when pipelined: RFC 2920 §3, RFC 2449 §6.6).

    Returns (verb, argument, first line of the reply); the end of a message sent in DATA has
    the verb ``"."`` and a SASL response the verb ``"AUTH-RESPONSE"``."""
    waiting: list[tuple[str, str]] = []
    out: list[tuple[str, str, str]] = []
    for step in transcript:
        if step.direction == "C":
            if step.kind == "command" and "verb" in step.parsed and "ignored" not in step.parsed:
                waiting.append((step.parsed["verb"], step.parsed.get("arg", "")))
            elif step.kind == "auth":
                waiting.append(("AUTH-RESPONSE", ""))
            elif step.kind == "data" and "size" in step.parsed:
                waiting.append((".", ""))
        elif step.direction == "S" and step.kind == "reply" and waiting:
            if step.parsed.get("unsolicited"):
                continue
            verb, arg = waiting.pop(0)
            out.append((verb, arg, step.text.split("\r\n", 1)[0]))
    return out


def reply_to(transcript: Transcript, verb: str) -> list[str]:
    """The first line of each reply to commands with ``verb``, in order."""
    return [reply for v, _, reply in exchanges(transcript) if v == verb.upper()]
