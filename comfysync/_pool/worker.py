"""One server of a :class:`~comfysync.ComfyPool`: its client, its health, its counters, and
the one thread that does its blocking work.

The thread (``comfysync-pool-<n>``) takes tasks from an inbox: send a prompt (connecting the
client first when needed), book the outcome of a prompt, drop a broken client, probe a down
server. Completion callbacks of the client's futures only post to that inbox, so the client's
own threads never wait for the pool.

Health: ``new`` (not contacted yet) → ``up`` on the first successful connect. A dropped
socket makes it ``reconnecting`` (no new work; its jobs stay, the client reconnects and
reconciles them); after ``failover_after`` seconds, a refused connection or a client that gave
up reconnecting it is ``down``: its jobs move elsewhere, its client is closed, and a fresh
client probes it with exponential backoff (:class:`~comfysync._backoff.Backoff`) until it
answers.

A client without a live socket (``tracker="http"``, or ``"auto"`` that fell back to polling)
never reports a drop: its tracker just keeps polling a dead server. While such a server holds
jobs of the pool, its thread pings it (``poll_status`` with a short timeout) every
``health_interval``; a ping that gets no answer makes it ``reconnecting`` exactly as a dropped
socket does, an answer makes it ``up`` again, and ``failover_after`` seconds without one make
it ``down`` through the same path.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from .._backoff import Backoff
from .._results import PromptResult
from ..errors import ComfyConnectionError, ComfyError, PromptLostError
from ..events import Event
from .policies import ServerSpec, ServerStats, ServerView, normalize_url
from .state import HEARTBEAT, ApiLike, Attempt, Delivery, classify, deliver

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["ServerWorker"]

log = logging.getLogger("comfysync.pool")

_WATCHED = ("status", "disconnected", "reconnected", "reconnection_failed")

_Task = Tuple[str, Attempt, Optional["concurrent.futures.Future[Any]"]]


class ServerWorker:
    """State and thread of one server. Every field is guarded by the engine's lock."""

    def __init__(self, engine: Engine, index: int, spec: ServerSpec) -> None:
        self.engine = engine
        self.index = index
        self.spec = spec
        self.url = normalize_url(spec.url)
        self.cond = threading.Condition(engine.lock)
        self.state = "new"
        self.api: Optional[ApiLike] = None
        self.generation = 0  # bumped with every client: events of an old one are ignored
        self.subs: List[Any] = []
        self.user_subs: Dict[int, Any] = {}
        self.attempts: Set[Attempt] = set()  # this pool's jobs here: one per live attempt
        self.inbox: Deque[_Task] = deque()
        self.teardown = False
        self.probes = Backoff(engine.config.backoff_base, engine.config.backoff_cap)
        self.next_probe = 0.0
        self.disconnected_at: Optional[float] = None  # "reconnecting" since
        self.gave_up = False  # the client stopped reconnecting: fail over at once
        self.ping_failed = False  # "reconnecting" because health pings go unanswered
        self.next_ping = 0.0
        self.queue_remaining: Optional[int] = None
        self.completed = 0
        self.failed = 0
        self.lost = 0
        self.run_time_total = 0.0
        self.last_error: Optional[str] = None
        self.abandoned_ids: List[str] = []
        self.thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ snapshots (locked)

    @property
    def in_flight(self) -> int:
        return len(self.attempts)

    def usable(self) -> bool:
        return self.state in ("new", "up")

    def has_slot(self) -> bool:
        return self.usable() and self.in_flight < self.engine.config.max_inflight

    def matches(self, selector: str) -> bool:
        return selector in self.spec.tags or selector in (self.spec.url, self.url)

    def stats_locked(self) -> ServerStats:
        return ServerStats(
            url=self.url,
            state=self.state,
            in_flight=self.in_flight,
            completed=self.completed,
            failed=self.failed,
            lost=self.lost,
            mean_run_time=(self.run_time_total / self.completed) if self.completed else None,
            queue_remaining=self.queue_remaining,
            last_error=self.last_error,
        )

    def view_locked(self) -> ServerView:
        return ServerView(
            url=self.url,
            tags=self.spec.tags,
            weight=self.spec.weight,
            in_flight=self.in_flight,
            queue_remaining=self.queue_remaining,
            up=self.usable(),
            stats=self.stats_locked(),
            index=self.index,
        )

    # ------------------------------------------------------------------ client

    def install_api(self, api: ApiLike) -> None:
        """Make ``api`` this server's client and subscribe the pool (and its users) to it."""
        engine = self.engine
        with engine.lock:
            self.generation += 1
            handler = self._event_handler(self.generation)
            self.api = api
            self.subs = [api.on(name, handler) for name in _WATCHED]
            self.user_subs = {
                id(sub): engine.attach_user_sub(self, sub) for sub in engine.user_subs
            }

    def take_api_locked(self) -> Tuple[Optional[ApiLike], List[Any]]:
        """Detach the client (to :func:`dispose` outside the lock)."""
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
        engine = self.engine

        def handle(event: Event) -> None:
            with engine.lock:
                if self.generation != generation:
                    return
                kind = event.type
                if kind == "status":
                    self.queue_remaining = getattr(event, "queue_remaining", None)
                elif kind == "disconnected" and self.state == "up":
                    self.state = "reconnecting"
                    self.disconnected_at = time.monotonic()
                    log.info("%s disconnected; no new work until it is back", self.url)
                    self.cond.notify_all()
                elif kind == "reconnected" and self.state == "reconnecting":
                    self._back_up_locked("reconnected")
                elif kind == "reconnection_failed" and self.state != "down":
                    self.gave_up = True  # the worker fails over (and delivers) on its thread
                    self.cond.notify_all()
                engine.bump_locked()

        return handle

    # ------------------------------------------------------------------ health (locked)

    def _back_up_locked(self, how: str) -> None:
        """From ``reconnecting`` back to ``up``: its jobs stayed, new work may come."""
        self.state = "up"
        self.disconnected_at = None
        self.ping_failed = False
        log.info("%s %s", self.url, how)

    def _unreachable_locked(self, error: Exception) -> None:
        """A health ping got no answer: no new work; down after ``failover_after``."""
        if self.state == "up":
            log.info("%s does not answer (%s); no new work until it does", self.url, error)
            self.state = "reconnecting"
            self.disconnected_at = time.monotonic()
            self.ping_failed = True
        self.last_error = str(error)

    def _ping_due_locked(self) -> bool:
        """Whether this thread must check the server's health itself: it holds jobs of the
        pool and no live socket would tell of its death (or its pings already fail)."""
        if self.api is None:
            return False
        if self.state == "reconnecting":
            return self.ping_failed
        return self.state == "up" and self.in_flight > 0 and not self.api.connected

    def _failover_locked(self, now: float) -> List[Delivery]:
        """Mark the server down when its client gave up or it was unreachable too long."""
        if self.gave_up and self.state != "down":
            self.gave_up = False
            return self.mark_down_locked("its client gave up reconnecting")
        self.gave_up = False
        limit = self.engine.config.failover_after
        if (
            self.state == "reconnecting"
            and self.disconnected_at is not None
            and now - self.disconnected_at >= limit
        ):
            what = "did not answer health pings" if self.ping_failed else "disconnected"
            return self.mark_down_locked(f"{what} for more than {limit:g} s")
        return []

    def _release_locked(self, attempt: Attempt) -> None:
        """Free the slot of an attempt that ended or is given up on; later news of it is
        ignored."""
        attempt.abandoned = True
        self.attempts.discard(attempt)

    def mark_down_locked(self, reason: str) -> List[Delivery]:
        """No more work here; move every job of this server elsewhere; probe it later."""
        engine = self.engine
        if self.state != "down":
            log.warning("%s is down: %s", self.url, reason)
        self.state = "down"
        self.last_error = reason
        self.disconnected_at = None
        self.ping_failed = False
        self.teardown = self.api is not None
        self.next_probe = time.monotonic() + self.probes.next_delay()
        deliveries: List[Delivery] = []
        for attempt in list(self.attempts):
            self._release_locked(attempt)
            if attempt.job is not None:
                self.abandoned_ids.append(attempt.job.prompt_id)
            sent = attempt.job is not None or attempt.sending
            if sent:
                self.lost += 1
            error = ComfyConnectionError(f"{self.url} is down: {reason}", url=self.url)
            deliveries += engine.retry_locked(attempt.item, error, count=sent)
        self.cond.notify_all()
        engine.bump_locked()
        return deliveries

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"comfysync-pool-{self.index}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        engine = self.engine
        while True:
            deliveries: List[Delivery] = []
            task: Optional[_Task] = None
            api: Optional[ApiLike] = None
            subs: List[Any] = []
            with engine.lock:
                if not engine.started:
                    return
                now = time.monotonic()
                deliveries = self._failover_locked(now)
                action = ""
                if self.teardown:
                    action = "teardown"
                    api, subs = self.take_api_locked()
                elif self.inbox:
                    action = "task"
                    task = self.inbox.popleft()
                elif self.state == "down" and now >= self.next_probe:
                    action = "probe"
                elif self._ping_due_locked() and now >= self.next_ping:
                    action = "ping"
                elif not deliveries:
                    self.cond.wait(self._wait_locked(now))
                    continue
            deliver(deliveries)
            try:
                self._act(action, task, api, subs)
            except Exception as exc:  # a bug must not strand the jobs this thread serves
                log.exception("%s: pool worker step %r failed", self.url, action)
                if task is not None:
                    self._outcome(task[1], None, exc)

    def _act(
        self, action: str, task: Optional[_Task], api: Optional[ApiLike], subs: List[Any]
    ) -> None:
        if action == "teardown":
            self.dispose(api, subs)
        elif action == "probe":
            self._probe()
        elif action == "ping":
            self._ping()
        elif task is not None:
            kind, attempt, job_future = task
            if kind == "send":
                self._send(attempt)
            elif job_future is not None:
                self._finish(attempt, job_future)

    def _wait_locked(self, now: float) -> float:
        """Seconds until this thread has something to do unless woken: the next probe, the
        failover deadline, the next health ping; at most :data:`HEARTBEAT`."""
        wake = [now + HEARTBEAT]
        if self.state == "down":
            wake.append(self.next_probe)
        if self.state == "reconnecting" and self.disconnected_at is not None:
            wake.append(self.disconnected_at + self.engine.config.failover_after)
        if self._ping_due_locked():
            wake.append(self.next_ping)
        return max(0.0, min(wake) - now)

    def _ping(self) -> None:
        """One health ping of a server without a live socket (see the module docstring)."""
        engine, config = self.engine, self.engine.config
        with engine.lock:
            api = self.api
        if api is None:
            return
        error: Optional[Exception] = None
        try:
            api.poll_status(timeout=config.health_timeout)  # its status event is booked too
        except Exception as exc:
            error = exc
        with engine.lock:
            if self.api is not api or not engine.started:
                return
            self.next_ping = time.monotonic() + config.health_interval
            if error is not None and classify(error) == "down":
                self._unreachable_locked(error)
            elif self.state == "reconnecting" and self.ping_failed:
                self._back_up_locked("answers again")  # any answer: the server is there
            engine.bump_locked()

    def _probe(self) -> None:
        """Try a down server again with a fresh client; up when it connects."""
        engine = self.engine
        api: Optional[ApiLike] = None
        error: Optional[Exception] = None
        try:
            api = engine.factory(self.spec.url, **engine.api_kwargs)
            self.install_api(api)
            api.connect(timeout=engine.config.connect_timeout)
        except Exception as exc:  # refused, timed out, or a factory that cannot build
            error = exc
        deliveries: List[Delivery] = []
        abandoned: List[str] = []
        with engine.lock:
            if not engine.started:
                return
            if error is not None:
                log.debug("%s still down: %s", self.url, error)
                deliveries = self.mark_down_locked(str(error))  # schedules the next probe
            else:
                self._back_up_locked("is up again")
                self.probes.reset()
                abandoned, self.abandoned_ids = self.abandoned_ids, []
                engine.bump_locked()
        deliver(deliveries)
        if abandoned and api is not None:  # jobs moved elsewhere must not also run here
            try:
                api.delete_from_queue(abandoned)
            except ComfyError as exc:
                log.debug("%s: could not drop abandoned prompts: %s", self.url, exc)

    def _send(self, attempt: Attempt) -> None:
        """POST the attempt's prompt (connecting the client first on the first job)."""
        engine, item = self.engine, attempt.item
        deliveries: List[Delivery] = []
        connect = False
        with engine.lock:
            api = self.api
            if attempt.abandoned:
                return
            if api is None or not self.usable():
                # The server went away after the dispatcher chose it: nothing was sent.
                self._release_locked(attempt)
                error = ComfyConnectionError(f"{self.url} is down", url=self.url)
                deliveries = engine.retry_locked(item, error, count=False)
            else:
                attempt.sending = True
                connect = self.state == "new"
        if api is None or attempt.abandoned:
            deliver(deliveries)
            return
        try:
            if connect:
                api.connect(timeout=engine.config.connect_timeout)
                with engine.lock:
                    if self.state == "new" and self.api is api:
                        self.state = "up"
                        engine.bump_locked()
            job = api.submit(item.workflow, **item.kwargs)
        except Exception as exc:
            self._outcome(attempt, None, exc)
            return
        with engine.lock:
            attempt.job = job
            item.accepted = True
            self.next_ping = time.monotonic() + engine.config.health_interval  # it answered
            abandoned = attempt.abandoned
            if abandoned:  # failed over while posting: drop it here when the server is back
                self.abandoned_ids.append(job.prompt_id)
            else:
                item.future.prompt_id = job.prompt_id
        future: Optional[concurrent.futures.Future[Any]] = job.future
        if abandoned:
            return
        if future is None:
            self._outcome(attempt, None, ComfyError("the client gave no future for the prompt"))
            return

        def done(f: concurrent.futures.Future[Any]) -> None:  # the client's thread
            with engine.lock:
                if engine.started and not attempt.abandoned:
                    self.inbox.append(("done", attempt, f))
                    self.cond.notify_all()

        future.add_done_callback(done)

    def _finish(self, attempt: Attempt, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            prompt_id = attempt.item.future.prompt_id or ""
            lost = PromptLostError("the client cancelled the prompt", prompt_id=prompt_id)
            self._outcome(attempt, None, lost)
            return
        error = future.exception()
        self._outcome(attempt, None if error is not None else future.result(), error)

    def _outcome(
        self, attempt: Attempt, result: Optional[PromptResult], error: Optional[BaseException]
    ) -> None:
        """Book the end of one attempt, then deliver it or move the job elsewhere."""
        engine, item, kind = self.engine, attempt.item, classify(error)
        deliveries: List[Delivery] = []
        with engine.lock:
            if attempt.abandoned or item.finished:
                return
            self._release_locked(attempt)
            if kind == "ok":
                self.completed += 1
                self.run_time_total += time.monotonic() - attempt.started
                deliveries += item.settle(result)
            elif kind == "user":
                self.failed += 1
                deliveries += item.settle(error=error)
            else:
                assert error is not None
                if attempt.job is not None:
                    self.lost += 1
                    if kind == "down":  # it may still sit in this server's queue
                        self.abandoned_ids.append(attempt.job.prompt_id)
                if kind == "down":
                    deliveries += self.mark_down_locked(str(error))
                deliveries += engine.retry_locked(item, error)
            engine.bump_locked()
        deliver(deliveries)
