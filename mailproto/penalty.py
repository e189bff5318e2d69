"""Failed logins remembered across sessions: each new attempt for the same user from the same
address waits longer (as Dovecot's ``auth_penalty``).

RFC 4954 §4 and RFC 1939 §7 let a server slow down or refuse logins after failures but say no
more.  Per session, both cores already wait ``auth_failure_delay`` before a failure reply and
hang up after ``max_auth_failures``; that alone would let a guesser reconnect and start afresh.
So the listeners of one ``mailproto serve`` share an :class:`AuthPenalty`:

* It is kept per (client address, user name tried): a password guesser is slowed on the account
  it attacks, while a class of students behind one NAT address, each with their own account,
  does not slow each other down.
* After ``n`` failures the next answer to a login for that pair, *success included*, waits
  ``base × 2^(n-1)`` seconds, at most ``maximum`` (Dovecot: 2 s doubling up to 15 s).  Holding
  successes back too matters: if only failures were slow, a guesser would open many sessions
  and read a quick answer as "right".
* A success forgets the pair; a pair with no failure for ``forget_after`` seconds is forgotten;
  at most ``max_entries`` pairs are kept (the oldest go first), so memory stays bounded.

Sans-I/O: the clock is given; the transport does the waiting (the cores' ``delay``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

Key = tuple[str, str]


class AuthPenalty:
    """Failure counts per (address, user), and the wait they earn."""

    def __init__(self, base: float = 1.0, maximum: float = 15.0, forget_after: float = 900.0,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.maximum = maximum
        self.forget_after = forget_after
        self.max_entries = max_entries
        self.clock = clock
        #: key → (failures, time of the last one); insertion order is age order.
        self._failures: dict[Key, tuple[int, float]] = {}

    @staticmethod
    def _key(address: str, user: str | None) -> Key:
        return address, (user or "").lower()  # user names are case-insensitive here

    def failures(self, address: str, user: str | None) -> int:
        """Failures remembered for this pair (0 once forgotten)."""
        entry = self._failures.get(self._key(address, user))
        if entry is None or self.clock() - entry[1] > self.forget_after:
            return 0
        return entry[0]

    def wait(self, address: str, user: str | None) -> float:
        """Seconds the answer to a login attempt for this pair should wait, before counting it."""
        count = self.failures(address, user)
        if count == 0 or self.base <= 0:
            return 0.0
        return min(self.maximum, self.base * 2 ** (count - 1))

    def attempt(self, address: str, user: str | None, succeeded: bool) -> float:
        """A login for this pair was just checked: the wait its answer owes to earlier failures
        (:meth:`wait`), and the attempt recorded (:meth:`succeeded` or :meth:`failed`)."""
        held = self.wait(address, user)
        (self.succeeded if succeeded else self.failed)(address, user)
        return held

    def failed(self, address: str, user: str | None) -> None:
        key = self._key(address, user)
        count = self.failures(address, user)
        self._failures.pop(key, None)  # re-inserted last: the youngest
        self._failures[key] = (count + 1, self.clock())
        while len(self._failures) > self.max_entries:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str, user: str | None) -> None:
        self._failures.pop(self._key(address, user), None)
