"""The shape shared by both protocols' state tables.

A table is a list of :class:`Transition` rows: *in state S, event E (a command that succeeded, or
a protocol event such as the end of DATA) leads to state T*.  The servers look the next state up
here, the clients track it from here, and the lab draws its diagrams from here, so a transition
written anywhere else would make the picture lie to a student.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Transition:
    source: Enum
    event: str
    target: Enum
    #: What the arrow means, for the diagram and the annotations.
    note: str = ""
    #: Where the rule is written.
    rfc: str = ""


class StateTable:
    """Index over a list of transitions: ``next(state, event)`` or None if not allowed."""

    def __init__(self, name: str, states: type[Enum], initial: Enum, final: Enum,
                 transitions: list[Transition]) -> None:
        self.name = name
        self.states = states
        self.initial = initial
        self.final = final
        self.transitions = tuple(transitions)
        self._index: dict[tuple[Enum, str], Enum] = {}
        for t in transitions:
            key = (t.source, t.event)
            if key in self._index:
                raise ValueError(f"duplicate transition {t.source.name} --{t.event}-->")
            self._index[key] = t.target

    def next(self, state: Enum, event: str) -> Enum | None:
        """The state after ``event`` succeeds in ``state``, or None if the table forbids it."""
        return self._index.get((state, event))

    def advance(self, state: Enum, event: str) -> Enum:
        """The state after ``event``, which the caller has checked the table allows: a missing
        row here is a bug in the caller, not a protocol error."""
        target = self._index.get((state, event))
        if target is None:
            raise AssertionError(f"{self.name}: no transition {state.name} --{event}-->")
        return target

    def allows(self, state: Enum, event: str) -> bool:
        return (state, event) in self._index

    def events_from(self, state: Enum) -> list[str]:
        return [t.event for t in self.transitions if t.source is state]
