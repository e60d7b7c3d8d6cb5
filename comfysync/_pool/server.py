"""What a :class:`~comfysync.ComfyPool` keeps about one server: its client, its health, the
attempts it holds, the tasks waiting for its thread, and its counters.

A :class:`ServerRecord` has a lock of its own; every field is guarded by it and changed only by
its methods. The engine takes it (never the other way round: the record calls nothing of the
engine while holding it), so the pool's lock and a server's lock are always taken in that
order. ``on_change`` (the engine's wake-up) is called after every change that may let a job
move, outside the lock.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from ..errors import ComfyConnectionError
from ..events import Event
from .health import Health
from .policies import ServerSpec, ServerStats, ServerView, normalize_url
from .state import HEARTBEAT, ApiLike, Attempt, PoolConfig, UserSub

__all__ = ["ServerRecord", "Task", "Move"]

log = logging.getLogger("comfysync.pool")

_WATCHED = ("status", "disconnected", "reconnected", "reconnection_failed")

#: ``("send" | "done", attempt, the client's future when done)``
Task = Tuple[str, Attempt, Optional["concurrent.futures.Future[Any]"]]

#: A job to move elsewhere: ``(attempt, error, counts as a failed try)``
Move = Tuple[Attempt, BaseException, bool]


class ServerRecord:
    """State of one server of a pool (see the module docstring)."""

    def __init__(
        self, index: int, spec: ServerSpec, config: PoolConfig, on_change: Callable[[], None]
    ) -> None:
        self.index = index
        self.spec = spec
        self.url = normalize_url(spec.url)
        self.config = config
        self.max_inflight = spec.max_inflight or config.max_inflight
        self._on_change = on_change
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)  # the server's thread waits on it
        self.health = Health(self.url, config.backoff_base, config.backoff_cap)
        self.api: Optional[ApiLike] = None
        self.generation = 0  # bumped with every client: events of an old one are ignored
        self.subs: List[Any] = []
        self.user_subs: Dict[int, Any] = {}
        self.attempts: Set[Attempt] = set()  # this pool's jobs here: one per live attempt
        self.inbox: Deque[Task] = deque()
        self.teardown = False  # the client must be closed (by the server's thread)
        self.stopped = False
        self.queue_remaining: Optional[int] = None
        self.completed = 0
        self.failed = 0
        self.lost = 0
        self.run_time_total = 0.0
        self.abandoned_ids: List[str] = []  # prompts to remove here when it answers again
        self.thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ snapshots

    @property
    def in_flight(self) -> int:
        with self.lock:
            return len(self.attempts)

    @property
    def state(self) -> str:
        with self.lock:
            return self.health.state

    def usable(self) -> bool:
        with self.lock:
            return self.health.usable()

    def has_slot(self) -> bool:
        with self.lock:
            return self.health.usable() and len(self.attempts) < self.max_inflight

    def never_answered_down(self) -> bool:
        """Down without ever having answered since the pool started (refusing connections,
        a wrong address): nothing suggests waiting for it."""
        with self.lock:
            return self.health.state == "down" and not self.health.ever_up

    def last_error(self) -> Optional[str]:
        with self.lock:
            return self.health.last_error

    def matches(self, selector: str) -> bool:
        return selector in self.spec.tags or selector in (self.spec.url, self.url)

    def has_client(self) -> bool:
        with self.lock:
            return self.api is not None

    def client_if_usable(self) -> Optional[ApiLike]:
        """The client, unless the server is known to be down."""
        with self.lock:
            return self.api if self.health.state != "down" else None

    def stats(self) -> ServerStats:
        with self.lock:
            return self._stats_locked()

    def _stats_locked(self) -> ServerStats:
        return ServerStats(
            url=self.url,
            state=self.health.state,
            in_flight=len(self.attempts),
            completed=self.completed,
            failed=self.failed,
            lost=self.lost,
            mean_run_time=(self.run_time_total / self.completed) if self.completed else None,
            queue_remaining=self.queue_remaining,
            last_error=self.health.last_error,
        )

    def view(self) -> ServerView:
        with self.lock:
            return ServerView(
                url=self.url,
                tags=self.spec.tags,
                weight=self.spec.weight,
                in_flight=len(self.attempts),
                queue_remaining=self.queue_remaining,
                up=self.health.usable(),
                stats=self._stats_locked(),
                index=self.index,
                priority=self.spec.priority,
            )

    # ------------------------------------------------------------------ client

    def install_api(self, api: ApiLike, user_subs: Sequence[UserSub]) -> None:
        """Make ``api`` this server's client; subscribe the pool's health handler and the
        users' subscriptions (objects with ``key`` and ``callback(event, url)``)."""
        with self.lock:
            self.generation += 1
            generation = self.generation
            self.api = api
        handler = self._event_handler(generation)
        subs = [api.on(name, handler) for name in _WATCHED]
        with self.lock:
            if self.generation == generation:
                self.subs = subs
                subs = []
        self.dispose(None, subs)  # replaced meanwhile: these belong to no live client
        for sub in user_subs:
            self.add_user_sub(sub)

    def add_user_sub(self, sub: UserSub) -> None:
        """Subscribe one user subscription to the current client (once)."""
        with self.lock:
            api, generation = self.api, self.generation
            if api is None or id(sub) in self.user_subs:
                return
        url, callback = self.url, sub.callback

        def forward(event: Event) -> None:
            callback(event, url)

        handle = api.on(sub.key, forward)
        with self.lock:
            if self.generation == generation and id(sub) not in self.user_subs:
                self.user_subs[id(sub)] = handle
                handle = None
        if handle is not None:
            self.dispose(None, [handle])

    def remove_user_sub(self, sub: UserSub) -> None:
        with self.lock:
            handle = self.user_subs.pop(id(sub), None)
        if handle is not None:
            handle.cancel()

    def take_api(self) -> Tuple[Optional[ApiLike], List[Any]]:
        """Detach the client (to :meth:`dispose` without the lock)."""
        with self.lock:
            self.generation += 1
            api, self.api = self.api, None
            subs = self.subs + list(self.user_subs.values())
            self.subs, self.user_subs = [], {}
            self.teardown = False
            return api, subs

    @staticmethod
    def dispose(api: Optional[ApiLike], subs: List[Any]) -> None:
        for sub in subs:
            try:
                sub.cancel()
            except Exception:  # a closed bus may refuse; the client goes away anyway
                log.debug("cancelling a subscription failed", exc_info=True)
        if api is not None:
            try:
                api.close()
            except Exception:
                log.warning("closing a client failed", exc_info=True)

    def _event_handler(self, generation: int) -> Callable[[Event], None]:
        """Health from the client's events (runs on its listener thread: memory only)."""

        def handle(event: Event) -> None:
            with self.lock:
                if self.generation != generation:
                    return
                kind, health = event.type, self.health
                if kind == "status":
                    self.queue_remaining = getattr(event, "queue_remaining", None)
                elif kind == "disconnected":
                    health.disconnected(time.monotonic())
                elif kind == "reconnected":
                    health.reconnected()
                elif kind == "reconnection_failed":
                    health.client_gave_up()  # the thread fails over (and delivers)
                self.cond.notify_all()
            self._on_change()

        return handle

    # ------------------------------------------------------------------ attempts

    def accept(self, attempt: Attempt) -> bool:
        """Take a job chosen for this server (False when it has no free slot any more)."""
        with self.lock:
            if self.stopped or not self.health.usable():
                return False
            if len(self.attempts) >= self.max_inflight:
                return False
            self.attempts.add(attempt)
            self.inbox.append(("send", attempt, None))
            self.cond.notify_all()
            return True

    def post_done(self, attempt: Attempt, future: concurrent.futures.Future[Any]) -> None:
        """A prompt of this server ended (the client's thread): book it on our thread."""
        with self.lock:
            if not self.stopped and not attempt.abandoned:
                self.inbox.append(("done", attempt, future))
                self.cond.notify_all()

    def release(self, attempt: Attempt) -> bool:
        """Free the slot of an attempt that ended or is given up on; later news of it is
        ignored. False when it was released already."""
        with self.lock:
            if attempt.abandoned:
                return False
            attempt.abandoned = True
            self.attempts.discard(attempt)
            return True

    def mark_down(self, reason: str) -> List[Move]:
        """No more work here; every job of this server must move elsewhere; probe it later."""
        with self.lock:
            return self._mark_down_locked(reason)

    def _mark_down_locked(self, reason: str) -> List[Move]:
        self.health.went_down(reason, time.monotonic())
        self.teardown = self.api is not None
        moves: List[Move] = []
        for attempt in list(self.attempts):
            attempt.abandoned = True
            self.attempts.discard(attempt)
            if attempt.job is not None:
                self.abandoned_ids.append(attempt.job.prompt_id)
            elif attempt.sending:
                self.abandoned_ids.append(attempt.prompt_id)  # it may have arrived
            sent = attempt.job is not None or attempt.sending
            if sent:
                self.lost += 1
            error = ComfyConnectionError(f"{self.url} is down: {reason}", url=self.url)
            moves.append((attempt, error, sent))
        self.cond.notify_all()
        return moves

    def failover_due(self) -> List[Move]:
        """Mark the server down when its client gave up or it was unreachable too long."""
        with self.lock:
            reason = self.health.failover_reason(time.monotonic(), self.config.failover_after)
            return self._mark_down_locked(reason) if reason is not None else []

    def stop(self) -> List[Attempt]:
        """The pool closes: every attempt is given up (returned), the thread is woken."""
        with self.lock:
            self.stopped = True
            attempts = list(self.attempts)
            for attempt in attempts:
                attempt.abandoned = True
            self.attempts.clear()
            self.inbox.clear()
            self.cond.notify_all()
            return attempts

    def changed(self) -> None:
        self._on_change()

    # ------------------------------------------------------------------ the thread's steps

    def next_step(self) -> Tuple[str, Optional[Task], Optional[ApiLike], List[Any], List[Move]]:
        """What the server's thread does next: ``(action, task, client, subscriptions, moves)``
        with action ``stop``, ``teardown`` (dispose client and subscriptions), ``task``,
        ``probe``, ``ping``, ``moves`` (jobs to move: the server failed over) or ``wait``
        (nothing due: the record's condition was waited on)."""
        with self.lock:
            if self.stopped:
                return "stop", None, None, [], []
            now = time.monotonic()
            health = self.health
            reason = health.failover_reason(now, self.config.failover_after)
            if reason is not None:
                return "moves", None, self.api, [], self._mark_down_locked(reason)
            if self.teardown:
                self.generation += 1
                api, self.api = self.api, None
                subs = self.subs + list(self.user_subs.values())
                self.subs, self.user_subs = [], {}
                self.teardown = False
                return "teardown", None, api, subs, []
            if self.inbox:
                return "task", self.inbox.popleft(), None, [], []
            if health.state == "down" and now >= health.next_probe:
                return "probe", None, None, [], []
            ping_due = self._ping_due_locked()
            if ping_due and now >= health.next_ping:
                return "ping", None, self.api, [], []
            wake = health.wake_at(now, self.config.failover_after, ping_due)
            self.cond.wait(max(0.0, min([now + HEARTBEAT] + wake) - now))
            return "wait", None, None, [], []

    def _ping_due_locked(self) -> bool:
        api = self.api
        return self.health.ping_due(
            api is not None, api is not None and api.connected, len(self.attempts)
        )

    def begin_send(self, attempt: Attempt) -> Tuple[Optional[ApiLike], bool, List[Move]]:
        """Before POSTing an attempt: ``(client, connect first, moves)``. No client when the
        attempt was given up, or the server went away after the dispatcher chose it (then
        nothing was sent and the job moves, not counted as a try)."""
        with self.lock:
            if attempt.abandoned:
                return None, False, []
            api = self.api
            if api is None or not self.health.usable():
                attempt.abandoned = True
                self.attempts.discard(attempt)
                error = ComfyConnectionError(f"{self.url} is down", url=self.url)
                return None, False, [(attempt, error, False)]
            attempt.sending = True
            return api, self.health.state == "new", []

    def connected(self, api: ApiLike) -> None:
        """The first connect of this client succeeded."""
        with self.lock:
            changed = self.api is api and self.health.connected()
        if changed:
            self._on_change()

    def sent(self, attempt: Attempt, job: Any) -> Tuple[bool, bool]:
        """POST /prompt succeeded: ``(follow it, cancel it)``. Not followed when the attempt
        was given up meanwhile (failed over while posting): its prompt is then removed here
        when the server answers. Cancelled when the caller stopped waiting meanwhile."""
        with self.lock:
            attempt.job = job
            self.health.answered(time.monotonic(), self.config.health_interval)
            if attempt.abandoned:
                self.abandoned_ids.append(job.prompt_id)
                return False, False
            return True, attempt.cancel_requested

    def posting(self, item: Any) -> bool:
        """Whether an attempt of ``item`` here is being posted (its client job not known)."""
        with self.lock:
            return any(
                a.item is item and a.sending and a.job is None for a in self.attempts
            )

    def request_cancel(self, item: Any) -> List[Any]:
        """The caller of ``item`` stopped waiting: the client jobs of its attempts here to
        cancel now; an attempt still posting is cancelled once posted."""
        with self.lock:
            jobs = []
            for attempt in self.attempts:
                if attempt.item is item:
                    attempt.cancel_requested = True
                    if attempt.job is not None:
                        jobs.append(attempt.job)
            return jobs

    def book(
        self, attempt: Attempt, kind: str, error: Optional[BaseException]
    ) -> Optional[List[Move]]:
        """Book the end of an attempt (``kind`` from :func:`~.state.classify`): the moves it
        causes (the server failed: its other jobs move too), or None when the attempt was
        given up already and the news is ignored."""
        with self.lock:
            if attempt.abandoned:
                return None
            attempt.abandoned = True
            self.attempts.discard(attempt)
            if kind == "ok":
                self.completed += 1
                self.run_time_total += time.monotonic() - attempt.started
                return []
            if kind == "user":
                self.failed += 1
                return []
            if attempt.job is not None:
                self.lost += 1
                if kind == "down":  # it may still sit in this server's queue
                    self.abandoned_ids.append(attempt.job.prompt_id)
            elif kind == "down" and getattr(error, "request_sent", None) is not False:
                # The POST may have reached the server, and the client could not find out
                # (it asked the server about the id until its deadline): remove it there
                # when the server answers again.
                self.abandoned_ids.append(attempt.prompt_id)
            if kind == "down":
                return self._mark_down_locked(str(error))
            return []

    def adopt(self, attempt: Attempt, job: Any) -> bool:
        """Follow a prompt this server already has (found by id): the attempt holds a slot
        like a posted one. False when the pool is stopping."""
        with self.lock:
            if self.stopped:
                return False
            attempt.job = job
            self.attempts.add(attempt)
            return True

    def removed(self, prompt_ids: List[str]) -> None:
        """These prompts were removed from this server (dequeued or interrupted)."""
        with self.lock:
            self.abandoned_ids = [p for p in self.abandoned_ids if p not in prompt_ids]

    def probe_done(self, error: Optional[Exception]) -> Tuple[List[Move], List[str]]:
        """Book a probe: ``(moves, prompt ids to remove here)``."""
        with self.lock:
            if self.stopped:
                return [], []
            if error is not None:
                log.debug("%s still down: %s", self.url, error)
                return self._mark_down_locked(str(error)), []  # schedules the next probe
            self.health.probe_answered()
            abandoned, self.abandoned_ids = self.abandoned_ids, []
            return [], abandoned

    def ping_done(self, api: ApiLike, error: Optional[Exception], unreachable: bool) -> None:
        """Book a health ping of ``api`` (``unreachable``: its error means no answer)."""
        with self.lock:
            if self.api is not api or self.stopped:
                return
            now = time.monotonic()
            if error is not None and unreachable:
                self.health.ping_unanswered(error, now, self.config.health_interval)
            else:
                self.health.ping_answered(now, self.config.health_interval)
        self._on_change()
