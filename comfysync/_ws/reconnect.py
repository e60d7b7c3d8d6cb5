"""The listener's reconnect policy: whether to try again after a drop, and how long to wait.

Delays follow the one backoff schedule of comfysync (:class:`~comfysync._backoff.Backoff`,
full jitter): the n-th consecutive failed attempt is followed by a wait drawn from
``uniform(0, min(cap, base * 2**(n-1)))``. Attempts are unlimited while ``has_pending_work()``
says prompts are being followed (giving up would leave them to the HTTP watchdog alone), else
at most ``max_attempts`` per outage.

When the schedule starts over: a connection counts as *good* once the server's greeting has
arrived on it — the first ``status`` message, the one that carries ``sid`` (the handshake was
accepted and the server registered the client id; this is when ``Connected``/``Reconnected``
is sent). At that moment the backoff resets, so the first attempt after the next drop waits
``uniform(0, base)`` again however short the good connection was: under a flapping link each
reconnect is fast instead of climbing to the cap. Attempts that fail before a greeting
(refused, an HTTP error such as 403, a timeout, a socket closed before greeting it) keep
doubling the ceiling up to ``cap``, across outages too, so a server that refuses every
handshake sees attempts at the backoff rate and never a spin; one that greets and then hangs
up at once sees one attempt per ``uniform(0, base)`` wait, never a tight loop either.
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
        rng: Optional[random.Random] = None,
    ) -> None:
        if max_attempts is not None and max_attempts < 0:
            raise ValueError("max_attempts must be None or >= 0")
        self.backoff = Backoff(backoff_base, backoff_cap, rng=rng)
        self.max_attempts = max_attempts
        self._has_pending_work = has_pending_work

    def greeted(self) -> None:
        """The server greeted a new connection: a good one, so the schedule starts over."""
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
