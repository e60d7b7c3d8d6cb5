"""The listener's reconnect policy: whether to try again after a drop, and how long to wait.

Delays follow the one backoff schedule of comfysync (:class:`~comfysync._backoff.Backoff`,
full jitter): the n-th consecutive failed attempt is followed by a wait drawn from
``uniform(0, min(cap, base * 2**(n-1)))``. Attempts are unlimited while ``has_pending_work()``
says prompts are being followed (giving up would leave them to the HTTP watchdog alone), else
at most ``max_attempts`` per outage.

The failure count only resets once a connection has stayed up for ``stable_after`` seconds,
so a server that answers every handshake with 403, or accepts and hangs up at once, sees
attempts at the backoff rate and never a spin.
"""

from __future__ import annotations

import logging
import random
from typing import Callable, Optional

from .._backoff import Backoff

__all__ = ["ReconnectPolicy"]

logger = logging.getLogger("comfysync.listener")


class ReconnectPolicy:
    """The state of one listener's reconnects (used by its thread only)."""

    def __init__(
        self,
        *,
        backoff_base: float,
        backoff_cap: float,
        max_attempts: Optional[int],
        has_pending_work: Callable[[], bool],
        stable_after: float,
        rng: Optional[random.Random] = None,
    ) -> None:
        if max_attempts is not None and max_attempts < 0:
            raise ValueError("max_attempts must be None or >= 0")
        self.backoff = Backoff(backoff_base, backoff_cap, rng=rng)
        self.max_attempts = max_attempts
        self.stable_after = float(stable_after)
        self._has_pending_work = has_pending_work

    def dropped(self, up_for: float) -> None:
        """A connection ended after ``up_for`` seconds: one that lasted resets the backoff."""
        if up_for >= self.stable_after:
            self.backoff.reset()

    def next_delay(self, made: int) -> Optional[float]:
        """The wait before attempt ``made + 1`` of this outage, or None to give up."""
        limit = None if self.pending_work() else self.max_attempts
        if limit is not None and made >= limit:
            return None
        return self.backoff.next_delay()

    def pending_work(self) -> bool:
        try:
            return bool(self._has_pending_work())
        except Exception:
            logger.exception("has_pending_work callback raised; assuming work is pending")
            return True
