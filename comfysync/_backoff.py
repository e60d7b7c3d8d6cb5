"""Exponential backoff with full jitter: the one schedule for every retry in comfysync.

The listener's reconnects, the tracker's HTTP retries about a prompt and the pool's probes of
a down server all wait ``uniform(0, min(cap, base * 2**n))`` seconds before their ``n+1``-th
try (``n`` counting from 0), and start again from ``n = 0`` after a success. Full jitter
spreads the clients of a restarted server over the whole interval instead of letting them
return in step, and the cap keeps a long outage from turning into hours of silence.

A :class:`Backoff` holds the count of one retrying thing; it is not locked: its owner guards
it (the listener thread owns its own, the tracker and the pool call it under their locks).
"""

from __future__ import annotations

import random
from typing import Optional

__all__ = ["Backoff"]

#: Keeps ``base * 2**n`` finite; any cap applies long before.
_MAX_EXPONENT = 62

#: Jitter source shared by every ``Backoff`` without an ``rng`` of its own: seeding a new
#: generator per prompt would cost an ``os.urandom`` call each. ``Random`` methods are
#: atomic under the GIL.
_SHARED_RNG = random.Random()


class Backoff:
    """The delays of one retrying thing. ``next_delay()`` returns the wait before the next
    try and counts it; ``reset()`` after a success. ``rng`` (tests) picks the jitter."""

    __slots__ = ("base", "cap", "failures", "_rng")

    def __init__(self, base: float, cap: float, *, rng: Optional[random.Random] = None) -> None:
        if not base >= 0 or not cap >= 0:  # also refuses NaN
            raise ValueError(f"backoff base and cap must not be negative (got {base}, {cap})")
        self.base = float(base)
        self.cap = float(cap)
        #: Tries counted since the last reset (the ``n`` of the next delay).
        self.failures = 0
        self._rng = rng if rng is not None else _SHARED_RNG

    def ceiling(self) -> float:
        """The upper bound of the next delay: ``min(cap, base * 2**failures)``."""
        return min(self.cap, self.base * 2.0 ** min(self.failures, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """The wait before the next try, drawn uniformly in ``[0, ceiling()]``; counts it."""
        ceiling = self.ceiling()
        self.failures += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """A try succeeded: the next delay starts from ``base`` again."""
        self.failures = 0

    def __repr__(self) -> str:
        return f"Backoff(base={self.base:g}, cap={self.cap:g}, failures={self.failures})"
