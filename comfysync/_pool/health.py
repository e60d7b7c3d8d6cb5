"""The health of one server of a :class:`~comfysync.ComfyPool`: one state machine, every
transition a method of :class:`Health`.

States: ``new`` (not contacted yet) → ``up`` on the first successful connect. A dropped
socket makes it ``reconnecting`` (no new work; its jobs stay, the client reconnects and
reconciles them); after ``failover_after`` seconds, a refused connection or a client that gave
up reconnecting it is ``down``: its jobs move elsewhere, its client is closed, and a fresh
client probes it with exponential backoff (:class:`~comfysync._backoff.Backoff`) until it
answers.

A client without a live socket (``tracker="http"``, or ``"auto"`` that fell back to polling)
never reports a drop: its tracker just keeps polling a dead server. While such a server holds
jobs of the pool, the pool pings it (``poll_status`` with a short timeout) every
``health_interval``; a ping that gets no answer makes it ``reconnecting`` exactly as a dropped
socket does, an answer makes it ``up`` again, and ``failover_after`` seconds without one make
it ``down`` through the same path.

The class holds no lock and does no I/O: its owner (the server's record, under its lock)
calls it and acts on the answers.
"""

from __future__ import annotations

import logging
from typing import List, Optional

from .._backoff import Backoff

__all__ = ["Health"]

log = logging.getLogger("comfysync.pool")


class Health:
    """Health state of one server (see the module docstring)."""

    def __init__(self, url: str, backoff_base: float, backoff_cap: float) -> None:
        self.url = url
        self.state = "new"
        self.ever_up = False  # answered at least once since the pool started
        self.last_error: Optional[str] = None
        self.disconnected_at: Optional[float] = None  # "reconnecting" since
        self.gave_up = False  # the client stopped reconnecting: fail over at once
        self.ping_failed = False  # "reconnecting" because health pings go unanswered
        self.next_ping = 0.0
        self.probes = Backoff(backoff_base, backoff_cap)
        self.next_probe = 0.0

    # ------------------------------------------------------------------ questions

    def usable(self) -> bool:
        """Whether new work may go there (a server not contacted yet counts as usable)."""
        return self.state in ("new", "up")

    def ping_due(self, has_client: bool, socket_alive: bool, in_flight: int) -> bool:
        """Whether the pool must check the server itself: it holds jobs of the pool and no
        live socket would tell of its death (or its pings already fail)."""
        if not has_client:
            return False
        if self.state == "reconnecting":
            return self.ping_failed
        return self.state == "up" and in_flight > 0 and not socket_alive

    def wake_at(self, now: float, failover_after: float, ping_due: bool) -> List[float]:
        """Moments at which something is due without any news: the next probe, the
        failover deadline, the next health ping."""
        wake: List[float] = []
        if self.state == "down":
            wake.append(self.next_probe)
        if self.state == "reconnecting" and self.disconnected_at is not None:
            wake.append(self.disconnected_at + failover_after)
        if ping_due:
            wake.append(self.next_ping)
        return wake

    def failover_reason(self, now: float, failover_after: float) -> Optional[str]:
        """Why the server must be marked down now (its client gave up, or it was
        unreachable longer than ``failover_after``), or None."""
        gave_up, self.gave_up = self.gave_up, False
        if gave_up and self.state != "down":
            return "its client gave up reconnecting"
        if (
            self.state == "reconnecting"
            and self.disconnected_at is not None
            and now - self.disconnected_at >= failover_after
        ):
            what = "did not answer health pings" if self.ping_failed else "disconnected"
            return f"{what} for more than {failover_after:g} s"
        return None

    # ------------------------------------------------------------------ transitions

    def connected(self) -> bool:
        """The first connect of a client succeeded: ``new`` → ``up``. True when it changed."""
        if self.state != "new":
            return False
        self.state = "up"
        self.ever_up = True
        return True

    def answered(self, now: float, ping_interval: float) -> None:
        """The server answered a request: no health ping is due for a while."""
        self.next_ping = now + ping_interval

    def disconnected(self, now: float) -> bool:
        """The client's socket dropped: ``up`` → ``reconnecting``."""
        if self.state != "up":
            return False
        self.state = "reconnecting"
        self.disconnected_at = now
        log.info("%s disconnected; no new work until it is back", self.url)
        return True

    def reconnected(self) -> None:
        if self.state == "reconnecting":
            self._back_up("reconnected")

    def client_gave_up(self) -> None:
        if self.state != "down":
            self.gave_up = True

    def ping_answered(self, now: float, ping_interval: float) -> None:
        self.next_ping = now + ping_interval
        if self.state == "reconnecting" and self.ping_failed:
            self._back_up("answers again")  # any answer: the server is there

    def ping_unanswered(self, error: Exception, now: float, ping_interval: float) -> None:
        """A health ping got no answer: no new work; down after ``failover_after``."""
        self.next_ping = now + ping_interval
        if self.state == "up":
            log.info("%s does not answer (%s); no new work until it does", self.url, error)
            self.state = "reconnecting"
            self.disconnected_at = now
            self.ping_failed = True
        self.last_error = str(error)

    def went_down(self, reason: str, now: float) -> None:
        """No more work there; the next probe is scheduled with backoff."""
        if self.state != "down":
            log.warning("%s is down: %s", self.url, reason)
        self.state = "down"
        self.last_error = reason
        self.disconnected_at = None
        self.ping_failed = False
        self.next_probe = now + self.probes.next_delay()

    def probe_answered(self) -> None:
        """A fresh client of a down server connected: ``down`` → ``up``."""
        self._back_up("is up again")
        self.probes.reset()

    def _back_up(self, how: str) -> None:
        self.state = "up"
        self.ever_up = True
        self.disconnected_at = None
        self.ping_failed = False
        log.info("%s %s", self.url, how)
