"""The moving parts behind :class:`~comfysync.ComfyPool`: one lock, the queue of waiting
jobs, the servers' workers, and the dispatcher thread.

The dispatcher (``comfysync-pool-dispatch``) takes waiting jobs in order and asks the policy
which free server runs each; it only moves jobs between in-memory queues, so a slow server
never holds it up. A job no free server may take now is skipped, not waited for, so one job
limited to a busy server (``include=``) does not block the others. The policy is asked
outside the lock; a job it declines ("``None``") is asked again after the next change, or
after :data:`HEARTBEAT` seconds without one (its answer may depend on things the pool does not
see).

A job whose server failed goes back to the *head* of the queue (:meth:`Engine.retry_locked`)
until it has used its ``retries``; then it fails with ``PromptLostError`` when some server had
accepted it, else ``ComfyConnectionError``. A job that waits ``wait_for_server`` seconds while
every server it may use is down fails the same way — at once when none of those servers has
answered since the pool started (refused connections, a wrong address): waiting is for servers
that restart, not for ones that were never there.

Callers waiting for the pool's state (room in the queue, a drain on close) wait on ``changed``
(:meth:`Engine.wait_locked`), which every change of that state notifies
(:meth:`Engine.bump_locked`). A caller must not block on the pool from one of its own threads
(futures' callbacks run there): the work it waits for would need that very thread, so
:meth:`Engine.check_may_block` refuses it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple

from .._results import PromptResult
from ..errors import (
    ComfyConnectionError,
    ComfyError,
    PoolClosedError,
    PromptInterruptedError,
    PromptLostError,
)
from .policies import Policy, ServerSpec, ServerView, normalize_url
from .server import Move, ServerRecord
from .state import (
    HEARTBEAT,
    ApiFactory,
    ApiLike,
    Attempt,
    Delivery,
    Item,
    PoolConfig,
    UserSub,
    deliver,
)
from .worker import ServerWorker

__all__ = ["Engine"]

log = logging.getLogger("comfysync.pool")

_Pick = Tuple[Item, List[ServerView]]


class Engine:
    """Shared state of a pool. Fields are guarded by ``lock``; methods named ``*_locked``
    expect it held. Each server's own state is its :class:`ServerRecord` (with a lock of its
    own, always taken after this one); its thread reaches the pool only through the
    :class:`~.worker.WorkerHost` methods below."""

    def __init__(
        self,
        specs: Sequence[ServerSpec],
        policy: Policy,
        config: PoolConfig,
        factory: ApiFactory,
        api_kwargs: Any,
    ) -> None:
        self.policy = policy
        self.config = config
        self.factory = factory
        self.api_kwargs = dict(api_kwargs)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified on every change
        self.servers = [ServerRecord(i, spec, config, self.wake) for i, spec in enumerate(specs)]
        self.workers = [ServerWorker(server, self) for server in self.servers]
        urls = [s.url for s in self.servers]
        if len(set(urls)) != len(urls):
            raise ValueError(f"the same server appears twice in {urls}")
        self.queue: Deque[Item] = deque()
        self.user_subs: List[UserSub] = []
        self.version = 0  # bumped on every change that may let a job move
        self.started = False
        self.closed = False
        self._dispatcher: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ bookkeeping

    def bump_locked(self) -> None:
        self.version += 1
        self.changed.notify_all()

    def wake(self) -> None:
        with self.lock:
            self.bump_locked()

    def wait_locked(self, predicate: Callable[[], bool], deadline: Optional[float]) -> bool:
        """Block (lock held) until ``predicate()`` holds, checked again after every change;
        False when ``deadline`` (``time.monotonic()`` value; ``None``: none) passes first."""
        while not predicate():
            left = HEARTBEAT if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.wait(min(left, HEARTBEAT))
        return True

    def check_may_block(self, what: str) -> None:
        """Refuse to block a pool thread (in a future's callback) on the pool's own work."""
        me = threading.current_thread()
        if me is self._dispatcher or any(me is w.thread for w in self.workers):
            raise RuntimeError(
                f"{what} from a ComfyPool thread (a future's callback?) would wait for work "
                "that needs this very thread; use submit() and add_done_callback() instead"
            )

    def start_locked(self) -> None:
        """Start the dispatcher and the workers (with the first job)."""
        if self.started:
            return
        self.started = True
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="comfysync-pool-dispatch", daemon=True
        )
        self._dispatcher.start()
        for worker in self.workers:
            worker.start()

    def enqueue_locked(self, item: Item) -> None:
        """Queue a job, starting the threads with the first one; refused once closed."""
        if self.closed:
            raise PoolClosedError("this ComfyPool is closed")
        self.start_locked()
        self.queue.append(item)
        self.bump_locked()

    def in_flight_locked(self) -> int:
        return sum(s.in_flight for s in self.servers)

    def stop(self, wait: bool, deadline: Optional[float]) -> None:
        """Close: optionally drain, end every unfinished job, join every thread, close
        every client."""
        if wait:
            self.check_may_block("close(wait=True)")
        deliveries: List[Delivery] = []
        with self.lock:
            self.closed = True
            self.bump_locked()  # wakes map() waiting for room: it raises now
            if wait:
                self.wait_locked(lambda: not self.queue and not self.in_flight_locked(), deadline)
            self.started = False
            queued = list(self.queue)
            self.queue.clear()
            for server in self.servers:
                for attempt in server.stop():
                    deliveries += attempt.item.settle(
                        error=PoolClosedError(
                            "the ComfyPool was closed before this job finished "
                            f"(its prompt may still run on {server.url})"
                        )
                    )
            self.bump_locked()
            threads = [w.thread for w in self.workers] + [self._dispatcher]
        for item in queued:
            if not item.future.cancel():  # a retry: its future already runs
                deliveries += item.settle(error=PoolClosedError("the ComfyPool was closed"))
        deliver(deliveries)
        me = threading.current_thread()
        for thread in threads:
            if thread is not None and thread is not me:
                thread.join(HEARTBEAT * 6)
                if thread.is_alive():
                    log.warning("pool thread %s still busy after close()", thread.name)
        for server in self.servers:
            api, subs = server.take_api()
            server.dispose(api, subs)

    # ------------------------------------------------------------------ user subscriptions

    def subscribe(self, sub: UserSub) -> None:
        with self.lock:
            self.user_subs.append(sub)
        for server in self.servers:
            server.add_user_sub(sub)

    def unsubscribe(self, sub: UserSub) -> None:
        with self.lock:
            if sub in self.user_subs:
                self.user_subs.remove(sub)
        for server in self.servers:
            server.remove_user_sub(sub)

    def adopt(self, item: Item, server: ServerRecord, job: Any) -> None:
        """Follow a prompt ``server`` already has (found by the job's id) instead of posting
        it: the job runs there as if the pool had sent it."""
        with self.lock:
            if self.closed:
                raise PoolClosedError("this ComfyPool is closed")
            self.start_locked()
            item.started = item.future.set_running_or_notify_cancel()
            item.accepted = True
            item.future.server = server.url
            item.future.prompt_id = job.prompt_id
            item.future.job = job
            item.future.attempts += 1
            attempt = Attempt(item, time.monotonic(), server.url)
            item.tried.append(server.url)
            attempt.prompt_id = job.prompt_id
            if not server.adopt(attempt, job):
                raise PoolClosedError("this ComfyPool is closed")
            self.bump_locked()
        log.info("%s already has prompt %s: following it", server.url, job.prompt_id)
        future = job.future

        def done(f: Any) -> None:  # the client's thread
            server.post_done(attempt, f)

        future.add_done_callback(done)

    def cancel_job(self, item: Item) -> List[Any]:
        """The caller of ``item`` stopped waiting (Ctrl-C): withdraw it when it still waits
        in the pool; otherwise return the client jobs to cancel on their servers (an
        attempt still posting is cancelled by its thread once posted)."""
        deliveries: List[Delivery] = []
        jobs: List[Any] = []
        with self.lock:
            # A prompt being posted is cancelled right here once its answer came (bounded).
            deadline = time.monotonic() + self.config.connect_timeout
            self.wait_locked(lambda: not any(s.posting(item) for s in self.servers), deadline)
            if item in self.queue:
                self._fail_queued_locked(
                    item,
                    PromptInterruptedError(
                        prompt_id="", cancelled=True, message="the caller stopped waiting"
                    ),
                    deliveries,
                )
            for server in self.servers:
                jobs += server.request_cancel(item)
        deliver(deliveries)
        return jobs

    # ------------------------------------------------------------------ for the servers' threads

    def new_client(self, url: str) -> ApiLike:
        return self.factory(url, **self.api_kwargs)

    def user_subscriptions(self) -> List[UserSub]:
        with self.lock:
            return list(self.user_subs)

    def settle(
        self, attempt: Attempt, result: Optional[PromptResult], error: Optional[BaseException]
    ) -> None:
        with self.lock:
            deliveries = attempt.item.settle(result, error)
            self.bump_locked()
        deliver(deliveries)

    def move(self, moves: Sequence[Move]) -> None:
        deliveries: List[Delivery] = []
        with self.lock:
            for attempt, error, counted in moves:
                deliveries += self.retry_locked(attempt.item, error, count=counted)
            self.bump_locked()
        deliver(deliveries)

    def accepted(self, attempt: Attempt, prompt_id: str) -> None:
        with self.lock:
            attempt.item.accepted = True
            attempt.item.future.prompt_id = prompt_id
            attempt.item.future.job = attempt.job
            self.bump_locked()

    # ------------------------------------------------------------------ retry and give up

    def give_up(self, item: Item, cause: BaseException) -> ComfyError:
        """The error of a job no server can run: lost if some server had taken it, else a
        connection error."""
        tried = ", ".join(dict.fromkeys(item.tried)) or "none"
        error: ComfyError
        if item.accepted:
            error = PromptLostError(
                f"the job was lost by its server(s) (tried: {tried}) and no server can run it "
                f"(retries={self.config.retries}); last error: {cause}",
                prompt_id=item.future.prompt_id or "",
            )
        else:
            error = ComfyConnectionError(f"no server could take the job (tried: {tried}); {cause}")
        error.__cause__ = cause
        return error

    def retry_locked(self, item: Item, cause: BaseException, count: bool = True) -> List[Delivery]:
        """Put a job whose server failed back at the head of the queue, or give up on it."""
        if item.finished:
            return []
        if count:
            item.failures += 1
        if not self.started:
            return item.settle(error=PoolClosedError("the ComfyPool was closed"))
        if item.failures > self.config.retries:
            log.warning("giving up on a job after %d failed attempt(s): %s", item.failures, cause)
            return item.settle(error=self.give_up(item, cause))
        log.info("resubmitting a job elsewhere (%s)", cause)
        item.no_server_since = None
        item.declined_at = -1
        self.queue.appendleft(item)
        self.bump_locked()
        return []

    def _fail_queued_locked(self, item: Item, error: BaseException, out: List[Delivery]) -> None:
        if item in self.queue:
            self.queue.remove(item)
        out += item.settle(error=error)
        self.bump_locked()

    # ------------------------------------------------------------------ dispatcher thread

    def _dispatch(self) -> None:
        while True:
            deliveries: List[Delivery] = []
            with self.lock:
                if not self.started:
                    return
                pick, wait = self._scan_locked(time.monotonic(), deliveries)
                version = self.version
                if pick is None and not deliveries:
                    if not self.changed.wait(wait):
                        self.version += 1  # a quiet spell: ask the policy again
                    continue
            deliver(deliveries)
            if pick is None:
                continue
            item, views = pick
            try:
                choice = self.policy(views, item.workflow)
                with self.lock:
                    self._assign_locked(item, choice, version, deliveries)
            except Exception as exc:  # the user's policy, or a bug: never a stranded job
                log.exception("choosing a server for a job failed; the job fails with its error")
                with self.lock:
                    self._fail_queued_locked(item, exc, deliveries)
            deliver(deliveries)

    def _scan_locked(self, now: float, out: List[Delivery]) -> Tuple[Optional[_Pick], float]:
        """The first waiting job some free server may take, with those servers' views. Fails
        the jobs that waited ``wait_for_server`` seconds with every allowed server down."""
        wait = HEARTBEAT
        for item in list(self.queue):
            if item.future.cancelled() or item.finished:
                self.queue.remove(item)
                self.changed.notify_all()
                continue
            allowed = [self.servers[i] for i in item.allowed]
            if not any(s.usable() for s in allowed):
                if item.no_server_since is None:
                    item.no_server_since = now
                states = "; ".join(f"{s.url}: {s.last_error() or s.state}" for s in allowed)
                error: BaseException
                if all(s.never_answered_down() for s in allowed):
                    # None of them ever answered (refused, wrong address): nothing to wait for.
                    error = ComfyConnectionError(
                        f"no server of the pool answers (none has since the pool started): "
                        f"{states}"
                    )
                else:
                    left = item.no_server_since + self.config.wait_for_server - now
                    if left > 0:
                        wait = min(wait, left)
                        continue
                    error = ComfyConnectionError(
                        f"no server available for {self.config.wait_for_server:g} s "
                        f"(wait_for_server): {states}"
                    )
                if item.accepted:
                    error = self.give_up(item, error)
                self._fail_queued_locked(item, error, out)
                continue
            item.no_server_since = None
            if item.declined_at == self.version:
                continue
            free = [s for s in allowed if s.has_slot()]
            if free:
                top = max(s.spec.priority for s in free)  # lower ranks are the overflow
                return (item, [s.view() for s in free if s.spec.priority == top]), wait
        return None, wait

    def _resolve(self, choice: Any) -> Optional[ServerRecord]:
        """The server a policy's answer names; raises for answers naming none."""
        if isinstance(choice, ServerView):
            if 0 <= choice.index < len(self.servers):
                return self.servers[choice.index]
            raise ValueError(f"the policy returned a view of no server of the pool: {choice!r}")
        if isinstance(choice, str):
            try:
                key = normalize_url(choice)
            except ValueError:
                key = choice
            for server in self.servers:
                if choice in (server.url, server.spec.url) or key == server.url:
                    return server
            raise ValueError(f"the policy chose {choice!r}, not a server of the pool")
        if choice is None:
            return None
        raise TypeError(f"the policy returned a {type(choice).__name__}, not a server")

    def _assign_locked(
        self, item: Item, choice: Any, version: int, out: List[Delivery]
    ) -> None:
        if item not in self.queue or item.finished:
            return
        try:
            server = self._resolve(choice)
        except (TypeError, ValueError) as exc:
            self._fail_queued_locked(item, exc, out)
            return
        if server is None or server.index not in item.allowed or not server.has_slot():
            # Not now: ask again after the next change (at once if one happened meanwhile).
            item.declined_at = version if version == self.version else -1
            return
        if not item.started:
            if not item.future.set_running_or_notify_cancel():  # cancelled meanwhile
                self.queue.remove(item)
                self.bump_locked()
                return
            item.started = True
        if not server.accept(Attempt(item, time.monotonic(), server.url)):  # went away
            item.declined_at = -1
            return
        self.queue.remove(item)
        item.future.server = server.url
        item.future.attempts += 1
        item.tried.append(server.url)
        self.bump_locked()
