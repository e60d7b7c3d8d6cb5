"""ComfyPool: one blocking API over several ComfyUI servers, with failover.

Threads (all started with the first submitted job, all joined by :meth:`ComfyPool.close`):

* one **dispatcher** (``comfysync-pool-dispatch``) takes waiting jobs in order and asks the
  policy which free server runs each; it only moves jobs between in-memory queues;
* one **worker per server** (``comfysync-pool-<n>``) does that server's blocking work: connect,
  ``POST /prompt``, the outcome of each job, probing a down server with exponential backoff.

Each server's :class:`~comfysync.ComfyApi` (created at once, connected with its first job)
adds its own listener and tracker threads. A job's completion arrives on the tracker thread
as a ``Future`` callback that only posts to the worker's inbox, so user callbacks of pool
futures run on pool threads and a slow one never stalls a client.

Failover: a server whose socket dropped gets no new work; if it is not back within
``failover_after`` seconds (or it refused a connection, or its client gave up reconnecting)
it is marked down and every job it held is resubmitted elsewhere. A job lost by its server
(``PromptLostError``) is resubmitted too. User errors (execution, validation, interrupt)
are never retried.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
import time
from collections import deque
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore[assignment]

from ._pool_policies import (
    Policy,
    PolicyArg,
    ServerArg,
    ServerSpec,
    ServerStats,
    ServerView,
    normalize_url,
    parse_server,
    resolve_policy,
)
from ._results import PromptResult
from .errors import (
    ComfyConnectionError,
    ComfyError,
    ComfyHTTPError,
    ComfyTimeoutError,
    PoolClosedError,
    PoolFullError,
    PromptLostError,
    PromptTimeoutError,
    PromptValidationError,
)
from .events import Event, EventKey

__all__ = ["ComfyPool", "PoolFuture", "PoolSubscription"]

log = logging.getLogger("comfysync.pool")

#: Longest any pool thread sleeps without looking around (they are woken on every change;
#: this only bounds each wait).
HEARTBEAT = 5.0
#: HTTP answers from a proxy in front of a server that is not there.
_GATEWAY_STATUSES = frozenset({502, 503, 504})

EventCallback = Callable[[Event, str], Any]


class _Subscription(Protocol):
    def cancel(self) -> Any: ...


class _Job(Protocol):
    @property
    def prompt_id(self) -> str: ...

    @property
    def future(self) -> Optional["concurrent.futures.Future[PromptResult]"]: ...

    def cancel(self) -> bool: ...


class ApiLike(Protocol):
    """The slice of :class:`~comfysync.ComfyApi` the pool uses (tests pass fakes)."""

    def connect(self, timeout: float = ...) -> Any: ...

    def close(self) -> None: ...

    def on(self, key: EventKey, callback: Callable[[Event], None]) -> Any: ...

    def submit(self, workflow: Any, **kwargs: Any) -> Any: ...

    def get_models(self, folder: str) -> List[str]: ...

    def delete_from_queue(self, prompt_ids: Any) -> Any: ...


ApiFactory = Callable[..., ApiLike]


class PoolFuture(concurrent.futures.Future[PromptResult]):
    """A ``concurrent.futures.Future[PromptResult]`` that also says where the job ran.

    ``server`` is the URL of the server the job was (last) sent to — the one that ran it once
    the future is done; ``None`` while it waits in the pool. ``prompt_id`` is the id of the
    last submission, ``attempts`` how many servers it was sent to. ``cancel()`` succeeds only
    while the job still waits in the pool (as for any ``Future``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.server: Optional[str] = None
        self.prompt_id: Optional[str] = None
        self.attempts: int = 0
        self._on_cancel: Optional[Callable[[], None]] = None

    def cancel(self) -> bool:
        cancelled = bool(super().cancel())
        hook = self._on_cancel
        if cancelled and hook is not None:
            hook()
        return cancelled


class PoolSubscription:
    """Returned by :meth:`ComfyPool.on`; ``cancel()`` unsubscribes from every server."""

    def __init__(self, pool: "ComfyPool", key: EventKey, callback: EventCallback) -> None:
        self._pool = pool
        self.key = key
        self.callback = callback

    def cancel(self) -> None:
        self._pool._unsubscribe(self)

    def __repr__(self) -> str:
        return f"<PoolSubscription {self.key!r}>"


class _Item:
    """One job of the pool, from submit() to its future's result."""

    def __init__(
        self, workflow: Any, kwargs: Dict[str, Any], allowed: Tuple[int, ...], future: PoolFuture
    ) -> None:
        self.workflow = workflow
        self.kwargs = kwargs
        self.allowed = allowed
        self.future = future
        self.failures = 0  # attempts that failed because of their server
        self.accepted = False  # some server took the prompt at least once
        self.started = False  # future.set_running_or_notify_cancel() done
        self.finished = False  # an outcome was decided (delivered outside the lock)
        self.no_server_since: Optional[float] = None
        self.declined_at = -1  # pool version at which the policy said "not now"
        self.tried: List[str] = []


class _Attempt:
    """One submission of a job to one server."""

    def __init__(self, item: _Item, server: "_Server") -> None:
        self.item = item
        self.server = server
        self.job: Optional[Any] = None
        self.sending = False
        self.abandoned = False
        self.started = time.monotonic()


class _Server:
    """The pool's private, mutable view of one server (guarded by the pool's lock)."""

    def __init__(self, index: int, spec: ServerSpec, cond: threading.Condition) -> None:
        self.index = index
        self.spec = spec
        self.url = normalize_url(spec.url)
        self.cond = cond
        self.api: Optional[ApiLike] = None
        self.subs: List[Any] = []
        self.user_subs: Dict[int, Any] = {}
        self.generation = 0
        self.state = "new"
        self.in_flight = 0
        self.attempts: Set[_Attempt] = set()
        self.inbox: Deque[Tuple[str, _Attempt, Optional["concurrent.futures.Future[Any]"]]] = (
            deque()
        )
        self.teardown = False
        self.backoff_step = 0
        self.next_probe = 0.0
        self.disconnected_at: Optional[float] = None
        self.queue_remaining: Optional[int] = None
        self.completed = 0
        self.failed = 0
        self.lost = 0
        self.run_time_total = 0.0
        self.last_error: Optional[str] = None
        self.abandoned_ids: List[str] = []
        self.thread: Optional[threading.Thread] = None

    def usable(self) -> bool:
        return self.state in ("new", "up")

    def matches(self, selector: str) -> bool:
        return selector in self.spec.tags or selector in (self.spec.url, self.url)


_Delivery = Tuple[PoolFuture, Optional[PromptResult], Optional[BaseException]]


def _classify(exc: Optional[BaseException]) -> str:
    """``ok``, ``user`` (never retried), ``lost`` (retry elsewhere) or ``down`` (retry
    elsewhere and mark the server down)."""
    if exc is None:
        return "ok"
    if isinstance(exc, PromptLostError):
        return "lost"
    if isinstance(exc, (PromptTimeoutError, PromptValidationError)):
        return "user"
    if isinstance(exc, (ComfyConnectionError, ComfyTimeoutError)):
        return "down"
    if isinstance(exc, ComfyHTTPError) and exc.status in _GATEWAY_STATUSES:
        return "down"
    return "user"


def _as_list(value: Union[None, str, Iterable[str]]) -> Optional[List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class ComfyPool:
    """Several ComfyUI servers behind one blocking API.

    ``urls``: one entry per server — ``"host:port"``, ``("host:port", {"tags": [...],
    "weight": 2})``, a ``{"url":…, "tags":…, "weight":…}`` mapping or a :class:`ServerSpec`.
    ``policy``: ``"least_busy"`` (default), ``"round_robin"`` or a callable
    ``policy(servers, workflow) -> server`` (see :class:`ServerView`).
    ``max_inflight_per_server``: jobs of this pool a server holds at once (1 keeps the others
    free to take the next job; more hides the submit latency). ``retries``: how many times a
    job whose server failed is resubmitted. ``max_queued``: jobs waiting for a free server
    before :meth:`submit` raises :class:`~comfysync.errors.PoolFullError`.
    ``wait_for_server``: seconds a job waits while every server it may use is down before it
    fails with :class:`~comfysync.errors.ComfyConnectionError`. ``failover_after``: seconds a
    server may stay disconnected before its jobs move elsewhere. ``backoff_base`` /
    ``backoff_cap``: probing of a down server, ``base * 2**n`` seconds (with jitter) capped.
    Every other keyword goes to each :class:`~comfysync.ComfyApi` (``auth``, ``token``,
    ``timeout``, ...).
    """

    def __init__(
        self,
        urls: Sequence[ServerArg],
        policy: PolicyArg = "least_busy",
        *,
        max_inflight_per_server: int = 1,
        retries: int = 2,
        max_queued: int = 1000,
        wait_for_server: float = 30.0,
        failover_after: float = 10.0,
        connect_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        api_factory: Optional[ApiFactory] = None,
        **comfyapi_kwargs: Any,
    ) -> None:
        if isinstance(urls, (str, ServerSpec)):
            urls = [urls]
        specs = [parse_server(u) for u in urls]
        if not specs:
            raise ValueError("ComfyPool needs at least one server")
        if max_inflight_per_server < 1:
            raise ValueError("max_inflight_per_server must be >= 1")
        if retries < 0 or max_queued < 1:
            raise ValueError("retries must be >= 0 and max_queued >= 1")
        self._policy: Policy = resolve_policy(policy, len(specs))
        self._max_inflight = max_inflight_per_server
        self._retries = retries
        self._max_queued = max_queued
        self._wait_for_server = wait_for_server
        self._failover_after = failover_after
        self._connect_timeout = connect_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        if api_factory is None:
            from ._client import ComfyApi

            api_factory = ComfyApi
        self._factory: ApiFactory = api_factory
        self._api_kwargs = comfyapi_kwargs

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # dispatcher, room, close(wait=True)
        self._servers = [_Server(i, s, threading.Condition(self._lock)) for i, s in enumerate(specs)]
        urls_seen = [s.url for s in self._servers]
        if len(set(urls_seen)) != len(urls_seen):
            raise ValueError(f"the same server appears twice in {urls_seen}")
        self._queue: Deque[_Item] = deque()
        self._user_subs: List[PoolSubscription] = []
        self._version = 0
        self._started = False
        self._closed = False
        self._dispatcher: Optional[threading.Thread] = None
        for server in self._servers:
            self._install_api(server, self._factory(server.spec.url, **self._api_kwargs))

    # ------------------------------------------------------------------ public API

    def submit(
        self,
        workflow: Any,
        *,
        include: Union[None, str, Iterable[str]] = None,
        exclude: Union[None, str, Iterable[str]] = None,
        **kwargs: Any,
    ) -> PoolFuture:
        """Queue ``workflow`` for the next suitable server and return at once.

        ``include``/``exclude``: server URLs or tags the job may (not) run on. Other keywords
        go to :meth:`ComfyApi.submit`. Raises :class:`~comfysync.errors.PoolFullError` when
        ``max_queued`` jobs are already waiting.
        """
        item = self._make_item(workflow, include, exclude, kwargs)
        with self._lock:
            if self._closed:
                raise PoolClosedError("this ComfyPool is closed")
            if len(self._queue) >= self._max_queued:
                raise PoolFullError(
                    f"{len(self._queue)} jobs already wait for a server "
                    f"(max_queued={self._max_queued}); retry when some have finished",
                    max_queued=self._max_queued,
                )
            self._enqueue_locked(item)
        return item.future

    def run_workflow(
        self,
        workflow: Any,
        timeout: Optional[float] = None,
        *,
        include: Union[None, str, Iterable[str]] = None,
        exclude: Union[None, str, Iterable[str]] = None,
        **kwargs: Any,
    ) -> PromptResult:
        """Run ``workflow`` on some server and block until its result.

        ``timeout`` bounds the whole call (waiting for a server included) and raises
        :class:`~comfysync.errors.PromptTimeoutError`; a job that still waited in the pool
        is then withdrawn, one already on a server keeps running there.
        """
        future = self.submit(workflow, include=include, exclude=exclude, **kwargs)
        return self._result(future, timeout)

    def map(
        self,
        workflows: Iterable[Any],
        timeout: Optional[float] = None,
        *,
        include: Union[None, str, Iterable[str]] = None,
        exclude: Union[None, str, Iterable[str]] = None,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> List[Any]:
        """Run every workflow and return the results in the order given.

        Unlike :meth:`submit`, waits for room when the pool's queue is full. ``timeout`` bounds
        the whole call. The first failure (in order) is raised and the jobs still waiting in the
        pool are withdrawn, unless ``return_exceptions=True``: then exceptions take the place
        of their results.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        futures: List[PoolFuture] = []
        try:
            for workflow in workflows:
                item = self._make_item(workflow, include, exclude, kwargs)
                with self._lock:
                    while not self._closed and len(self._queue) >= self._max_queued:
                        left = HEARTBEAT if deadline is None else deadline - time.monotonic()
                        if left <= 0:
                            raise PromptTimeoutError(
                                f"map() timed out after {timeout} s with {len(futures)} "
                                "workflows submitted",
                                prompt_id="",
                                timeout=timeout,
                            )
                        self._changed.wait(min(left, HEARTBEAT))
                    if self._closed:
                        raise PoolClosedError("this ComfyPool is closed")
                    self._enqueue_locked(item)
                futures.append(item.future)
            results: List[Any] = []
            for future in futures:
                remaining: Optional[float] = None
                if deadline is not None:
                    remaining = max(0.0, deadline - time.monotonic())
                try:
                    results.append(self._result(future, remaining, withdraw=False))
                except (PromptTimeoutError, PoolClosedError):
                    raise
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    results.append(exc)
            return results
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def servers(self) -> List[ServerView]:
        """A snapshot of every server, in the pool's order."""
        with self._lock:
            return [self._view_locked(s) for s in self._servers]

    def stats(self) -> Dict[str, ServerStats]:
        """Per server URL (in the pool's order): state, in-flight, completed, failed, lost,
        mean run time."""
        with self._lock:
            return {s.url: self._stats_locked(s) for s in self._servers}

    def servers_with_model(self, folder: str, name: str) -> List[str]:
        """URLs of the servers not known to be down whose ``folder`` (``"checkpoints"``,
        ``"loras"``, …) holds ``name``; pass them as ``include=``. Asks each server now
        (``GET /models/{folder}``); a server that does not answer is left out."""
        with self._lock:
            targets = [
                (s.url, s.api) for s in self._servers if s.state != "down" and s.api is not None
            ]
        found: List[str] = []
        for url, api in targets:
            try:
                models = api.get_models(folder)
            except ComfyError as exc:
                log.info("%s: cannot list models/%s: %s", url, folder, exc)
                continue
            if name in models:
                found.append(url)
        return found

    def on(self, key: EventKey, callback: EventCallback) -> PoolSubscription:
        """Call ``callback(event, server_url)`` for every ``key`` event of every server (a name,
        an event class, or ``"*"``). It runs on that server's listener thread; keep it quick."""
        sub = PoolSubscription(self, key, callback)
        with self._lock:
            self._user_subs.append(sub)
            for server in self._servers:
                if server.api is not None:
                    server.user_subs[id(sub)] = self._attach_user_sub(server, server.api, sub)
        return sub

    def off(self, key: EventKey, callback: EventCallback) -> None:
        """Remove every subscription of ``callback`` to ``key``."""
        with self._lock:
            subs = [s for s in self._user_subs if s.key == key and s.callback == callback]
        for sub in subs:
            sub.cancel()

    def close(self, wait: bool = False, timeout: Optional[float] = None) -> None:
        """Stop the pool: no new jobs, every thread joined, every client closed. Idempotent.

        With ``wait=True`` it first lets queued and running jobs finish (up to ``timeout``
        seconds). Jobs still unfinished then end: waiting ones are cancelled, running ones fail
        with :class:`~comfysync.errors.PoolClosedError` (their prompts may still run on the
        servers).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        deliveries: List[_Delivery] = []
        with self._lock:
            if self._closed and not self._started:
                return
            self._closed = True
            while wait and (self._queue or any(s.in_flight for s in self._servers)):
                left = HEARTBEAT if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, HEARTBEAT))
            started, self._started = self._started, False
            queued = list(self._queue)
            self._queue.clear()
            for server in self._servers:
                for attempt in server.attempts:
                    attempt.abandoned = True
                    if not attempt.item.finished:
                        attempt.item.finished = True
                        deliveries.append(
                            (attempt.item.future, None, PoolClosedError(
                                "the ComfyPool was closed before this job finished "
                                f"(its prompt may still run on {server.url})"))
                        )
                server.attempts.clear()
                server.inbox.clear()
                server.in_flight = 0
                server.cond.notify_all()
            self._bump_locked()
            threads = [s.thread for s in self._servers] + [self._dispatcher]
        for item in queued:
            if not item.future.cancel() and not item.finished:
                item.finished = True
                deliveries.append(
                    (item.future, None, PoolClosedError("the ComfyPool was closed"))
                )
        self._deliver(deliveries)
        me = threading.current_thread()
        for thread in threads:
            if thread is not None and thread is not me and started:
                thread.join(HEARTBEAT * 6)
                if thread.is_alive():
                    log.warning("pool thread %s still busy after close()", thread.name)
        for server in self._servers:
            with self._lock:
                api, subs = self._take_api_locked(server)
            self._dispose(api, subs)

    def __enter__(self) -> "ComfyPool":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        with self._lock:
            states = ", ".join(f"{s.url} {s.state}" for s in self._servers)
            busy = sum(s.in_flight for s in self._servers)
            return (
                f"<ComfyPool [{states}] queued={len(self._queue)} in_flight={busy}"
                f"{' closed' if self._closed else ''}>"
            )

    # ------------------------------------------------------------------ submit helpers

    def _make_item(
        self,
        workflow: Any,
        include: Union[None, str, Iterable[str]],
        exclude: Union[None, str, Iterable[str]],
        kwargs: Dict[str, Any],
    ) -> _Item:
        inc, exc = _as_list(include), _as_list(exclude)
        allowed = tuple(
            s.index
            for s in self._servers
            if (inc is None or any(s.matches(x) for x in inc))
            and not (exc and any(s.matches(x) for x in exc))
        )
        if not allowed:
            raise ValueError(
                f"no server of the pool matches include={inc} exclude={exc}; servers: "
                + ", ".join(f"{s.url} {sorted(s.spec.tags)}" for s in self._servers)
            )
        future = PoolFuture()
        item = _Item(workflow, dict(kwargs), allowed, future)
        future._on_cancel = self._wake_dispatcher
        return item

    def _enqueue_locked(self, item: _Item) -> None:
        self._start_locked()
        self._queue.append(item)
        self._bump_locked()

    def _result(
        self, future: PoolFuture, timeout: Optional[float], withdraw: bool = True
    ) -> PromptResult:
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if withdraw:
                future.cancel()
            where = (
                f"prompt {future.prompt_id} on {future.server}"
                if future.prompt_id
                else "the job (still waiting for a free server)"
            )
            raise PromptTimeoutError(
                f"{where} did not finish within {timeout} s",
                prompt_id=future.prompt_id or "",
                timeout=timeout,
            ) from None
        except concurrent.futures.CancelledError:
            raise PoolClosedError(
                "the job was cancelled before it ran (pool closed, or future cancelled)"
            ) from None

    # ------------------------------------------------------------------ bookkeeping

    def _bump_locked(self) -> None:
        self._version += 1
        self._changed.notify_all()

    def _wake_dispatcher(self) -> None:
        with self._lock:
            self._bump_locked()

    def _stats_locked(self, s: _Server) -> ServerStats:
        return ServerStats(
            url=s.url,
            state=s.state,
            in_flight=s.in_flight,
            completed=s.completed,
            failed=s.failed,
            lost=s.lost,
            mean_run_time=(s.run_time_total / s.completed) if s.completed else None,
            queue_remaining=s.queue_remaining,
            last_error=s.last_error,
        )

    def _view_locked(self, s: _Server) -> ServerView:
        return ServerView(
            url=s.url,
            tags=s.spec.tags,
            weight=s.spec.weight,
            in_flight=s.in_flight,
            queue_remaining=s.queue_remaining,
            up=s.state != "down" and s.state != "reconnecting",
            stats=self._stats_locked(s),
            index=s.index,
        )

    def _start_locked(self) -> None:
        if self._started:
            return
        self._started = True
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="comfysync-pool-dispatch", daemon=True
        )
        self._dispatcher.start()
        for server in self._servers:
            server.thread = threading.Thread(
                target=self._worker_loop,
                args=(server,),
                name=f"comfysync-pool-{server.index}",
                daemon=True,
            )
            server.thread.start()

    def _deliver(self, deliveries: Sequence[_Delivery]) -> None:
        """Complete futures — outside the lock, since their callbacks are user code."""
        for future, result, error in deliveries:
            if future.done():
                continue
            try:
                if error is not None:
                    future.set_exception(error)
                elif result is not None:
                    future.set_result(result)
            except concurrent.futures.InvalidStateError:  # cancelled meanwhile
                pass

    def _give_up(self, item: _Item, exc: BaseException) -> ComfyError:
        tried = ", ".join(dict.fromkeys(item.tried)) or "no server"
        error: ComfyError
        if item.accepted:
            error = PromptLostError(
                f"the job was lost by its server(s) ({tried}) and no retry is left "
                f"(retries={self._retries}); last error: {exc}",
                prompt_id=item.future.prompt_id or "",
            )
        else:
            error = ComfyConnectionError(
                f"no server could take the job (tried {tried}); last error: {exc}"
            )
        error.__cause__ = exc
        return error

    def _retry_locked(self, item: _Item, exc: BaseException, count: bool = True) -> List[_Delivery]:
        """Put a job whose server failed back at the head of the queue, or give up."""
        if item.finished:
            return []
        if count:
            item.failures += 1
        if item.failures > self._retries or not self._started:
            item.finished = True
            error = self._give_up(item, exc) if self._started else PoolClosedError(
                "the ComfyPool was closed"
            )
            log.warning("giving up on a job after %d failed attempt(s): %s", item.failures, exc)
            return [(item.future, None, error)]
        log.info("resubmitting a job elsewhere (attempt %d failed: %s)", item.failures, exc)
        item.no_server_since = None
        item.declined_at = -1
        self._queue.appendleft(item)
        self._bump_locked()
        return []

    def _mark_down_locked(self, server: _Server, reason: str) -> List[_Delivery]:
        """No more work for ``server``; move its jobs elsewhere; probe it later."""
        deliveries: List[_Delivery] = []
        if server.state != "down":
            log.warning("%s is down: %s", server.url, reason)
        server.state = "down"
        server.last_error = reason
        server.disconnected_at = None
        server.teardown = server.api is not None
        delay = min(self._backoff_cap, self._backoff_base * (2 ** server.backoff_step))
        server.backoff_step = min(server.backoff_step + 1, 30)
        server.next_probe = time.monotonic() + delay * random.uniform(0.5, 1.0)
        for attempt in list(server.attempts):
            attempt.abandoned = True
            server.in_flight -= 1
            if attempt.job is not None:
                server.abandoned_ids.append(attempt.job.prompt_id)
            sent = attempt.job is not None or attempt.sending
            if sent:
                server.lost += 1
            deliveries += self._retry_locked(
                attempt.item, ComfyConnectionError(f"{server.url}: {reason}"), count=sent
            )
        server.attempts.clear()
        server.cond.notify_all()
        self._bump_locked()
        return deliveries

    # ------------------------------------------------------------------ clients and events

    def _install_api(self, server: _Server, api: ApiLike) -> None:
        with self._lock:
            server.generation += 1
            generation = server.generation
            server.api = api
            server.subs = [
                api.on(name, self._event_handler(server, generation))
                for name in ("status", "disconnected", "reconnected", "reconnection_failed")
            ]
            server.user_subs = {
                id(sub): self._attach_user_sub(server, api, sub) for sub in self._user_subs
            }

    def _attach_user_sub(self, server: _Server, api: ApiLike, sub: PoolSubscription) -> Any:
        url, callback = server.url, sub.callback

        def forward(event: Event) -> None:
            callback(event, url)

        return api.on(sub.key, forward)

    def _unsubscribe(self, sub: PoolSubscription) -> None:
        with self._lock:
            if sub in self._user_subs:
                self._user_subs.remove(sub)
            handles = [s.user_subs.pop(id(sub), None) for s in self._servers]
        for handle in handles:
            if handle is not None:
                handle.cancel()

    def _take_api_locked(self, server: _Server) -> Tuple[Optional[ApiLike], List[Any]]:
        server.generation += 1
        api, server.api = server.api, None
        subs = server.subs + list(server.user_subs.values())
        server.subs, server.user_subs = [], {}
        server.teardown = False
        return api, subs

    @staticmethod
    def _dispose(api: Optional[ApiLike], subs: Sequence[Any]) -> None:
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

    def _event_handler(self, server: _Server, generation: int) -> Callable[[Event], None]:
        def handle(event: Event) -> None:
            deliveries: List[_Delivery] = []
            with self._lock:
                if server.generation != generation:
                    return
                kind = event.type
                if kind == "status":
                    server.queue_remaining = getattr(event, "queue_remaining", None)
                    self._bump_locked()
                elif kind == "disconnected" and server.state == "up":
                    server.state = "reconnecting"
                    server.disconnected_at = time.monotonic()
                    log.info("%s disconnected; no new work until it is back", server.url)
                    server.cond.notify_all()
                    self._bump_locked()
                elif kind == "reconnected" and server.state == "reconnecting":
                    server.state = "up"
                    server.disconnected_at = None
                    log.info("%s reconnected", server.url)
                    self._bump_locked()
                elif kind == "reconnection_failed" and server.state != "down":
                    deliveries = self._mark_down_locked(server, "reconnection failed")
            self._deliver(deliveries)

        return handle

    # ------------------------------------------------------------------ dispatcher thread

    def _dispatch_loop(self) -> None:
        while True:
            deliveries: List[_Delivery] = []
            with self._lock:
                if not self._started:
                    return
                pick, wait = self._scan_locked(time.monotonic(), deliveries)
                version = self._version
                if pick is None and not deliveries:
                    self._changed.wait(wait)
                    continue
            self._deliver(deliveries)
            if pick is None:
                continue
            item, views = pick
            try:
                choice = self._policy(views, item.workflow)
            except Exception as exc:
                log.exception("the pool's policy raised; failing the job")
                with self._lock:
                    self._fail_queued_locked(item, exc, deliveries)
                self._deliver(deliveries)
                continue
            with self._lock:
                self._assign_locked(item, choice, version, deliveries)
            self._deliver(deliveries)

    def _scan_locked(
        self, now: float, deliveries: List[_Delivery]
    ) -> Tuple[Optional[Tuple[_Item, List[ServerView]]], float]:
        """The first waiting job that some free server can take, with those servers; fails
        jobs that waited ``wait_for_server`` seconds with every allowed server down."""
        wait = HEARTBEAT
        for item in list(self._queue):
            if item.future.cancelled() or item.finished:
                self._queue.remove(item)
                self._changed.notify_all()
                continue
            allowed = [self._servers[i] for i in item.allowed]
            usable = [s for s in allowed if s.usable()]
            if not usable:
                if item.no_server_since is None:
                    item.no_server_since = now
                left = item.no_server_since + self._wait_for_server - now
                if left <= 0:
                    down = "; ".join(f"{s.url}: {s.last_error or s.state}" for s in allowed)
                    error = ComfyConnectionError(
                        f"no server available for {self._wait_for_server:g} s "
                        f"(wait_for_server): {down}"
                    )
                    if item.accepted:
                        error = self._give_up(item, error)  # type: ignore[assignment]
                    self._fail_queued_locked(item, error, deliveries)
                else:
                    wait = min(wait, left)
                continue
            item.no_server_since = None
            if item.declined_at == self._version:
                continue
            free = [s for s in usable if s.in_flight < self._max_inflight]
            if free:
                return (item, [self._view_locked(s) for s in free]), wait
        return None, wait

    def _fail_queued_locked(
        self, item: _Item, error: BaseException, deliveries: List[_Delivery]
    ) -> None:
        if item in self._queue:
            self._queue.remove(item)
        if not item.finished:
            item.finished = True
            deliveries.append((item.future, None, error))
        self._bump_locked()

    def _assign_locked(
        self, item: _Item, choice: Any, version: int, deliveries: List[_Delivery]
    ) -> None:
        if item not in self._queue or item.finished:
            return
        server: Optional[_Server] = None
        if isinstance(choice, ServerView):
            server = self._servers[choice.index] if choice.index < len(self._servers) else None
        elif isinstance(choice, str):
            key = choice
            try:
                key = normalize_url(choice)
            except ValueError:
                pass
            server = next((s for s in self._servers if s.url == key or s.spec.url == choice), None)
            if server is None:
                self._fail_queued_locked(
                    item, ValueError(f"the policy chose {choice!r}, not a server of the pool"),
                    deliveries,
                )
                return
        elif choice is not None:
            self._fail_queued_locked(
                item, TypeError(f"the policy returned {type(choice).__name__}, not a server"),
                deliveries,
            )
            return
        ok = (
            server is not None
            and server.index in item.allowed
            and server.usable()
            and server.in_flight < self._max_inflight
        )
        if server is None or not ok:
            item.declined_at = version  # wait for the next change before asking again
            if version != self._version:
                item.declined_at = -1
            return
        if not item.started:
            if not item.future.set_running_or_notify_cancel():
                self._queue.remove(item)
                self._bump_locked()
                return
            item.started = True
        self._queue.remove(item)
        attempt = _Attempt(item, server)
        server.attempts.add(attempt)
        server.in_flight += 1
        item.future.server = server.url
        item.future.attempts += 1
        item.tried.append(server.url)
        server.inbox.append(("submit", attempt, None))
        server.cond.notify_all()
        self._bump_locked()

    # ------------------------------------------------------------------ server worker threads

    def _worker_loop(self, server: _Server) -> None:
        while True:
            deliveries: List[_Delivery] = []
            task: Optional[Tuple[str, _Attempt, Optional["concurrent.futures.Future[Any]"]]]
            task = None
            api: Optional[ApiLike] = None
            subs: List[Any] = []
            with self._lock:
                if not self._started:
                    return
                now = time.monotonic()
                if (
                    server.state == "reconnecting"
                    and server.disconnected_at is not None
                    and now - server.disconnected_at >= self._failover_after
                ):
                    deliveries = self._mark_down_locked(
                        server, f"disconnected for more than {self._failover_after:g} s"
                    )
                action = ""
                if server.teardown:
                    action = "teardown"
                    api, subs = self._take_api_locked(server)
                elif server.inbox:
                    action = "task"
                    task = server.inbox.popleft()
                elif server.state == "down" and now >= server.next_probe:
                    action = "probe"
                elif not deliveries:
                    server.cond.wait(self._worker_wait_locked(server, now))
                    continue
            self._deliver(deliveries)
            if action == "teardown":
                self._dispose(api, subs)
            elif action == "probe":
                self._probe(server)
            elif task is not None:
                kind, attempt, job_future = task
                if kind == "submit":
                    self._send(server, attempt)
                elif job_future is not None:
                    self._finish(server, attempt, job_future)

    def _worker_wait_locked(self, server: _Server, now: float) -> float:
        if server.state == "down":
            return max(0.0, min(HEARTBEAT, server.next_probe - now))
        if server.state == "reconnecting" and server.disconnected_at is not None:
            return max(0.0, min(HEARTBEAT, server.disconnected_at + self._failover_after - now))
        return HEARTBEAT

    def _probe(self, server: _Server) -> None:
        """Try a down server again: a fresh client, connected; up on success."""
        api: Optional[ApiLike] = None
        error: Optional[Exception] = None
        try:
            api = self._factory(server.spec.url, **self._api_kwargs)
            self._install_api(server, api)
            api.connect(timeout=self._connect_timeout)
        except Exception as exc:  # refused, timed out, or a factory that cannot build
            error = exc
        abandoned: List[str] = []
        with self._lock:
            if not self._started:
                return
            if error is not None:
                log.debug("%s still down: %s", server.url, error)
                self._mark_down_locked(server, str(error))
                return
            log.info("%s is up again", server.url)
            server.state = "up"
            server.backoff_step = 0
            server.disconnected_at = None
            abandoned, server.abandoned_ids = server.abandoned_ids, []
            self._bump_locked()
        if abandoned and api is not None:  # jobs we moved elsewhere must not run twice here
            try:
                api.delete_from_queue(abandoned)
            except ComfyError as exc:
                log.debug("%s: could not drop abandoned prompts: %s", server.url, exc)

    def _send(self, server: _Server, attempt: _Attempt) -> None:
        """POST the attempt's prompt to ``server`` (connecting first if needed)."""
        item = attempt.item
        deliveries: List[_Delivery] = []
        connect = False
        with self._lock:
            api = server.api
            if attempt.abandoned:
                return
            if api is None or not server.usable():
                # The server went away after the dispatcher chose it: nothing was sent.
                server.attempts.discard(attempt)
                server.in_flight -= 1
                attempt.abandoned = True
                deliveries = self._retry_locked(item, ComfyConnectionError("server down"), False)
                api = None
            else:
                attempt.sending = True
                connect = server.state == "new"
        if api is None:
            self._deliver(deliveries)
            return
        try:
            if connect:
                api.connect(timeout=self._connect_timeout)
                with self._lock:
                    if server.state == "new" and server.api is api:
                        server.state = "up"
                        server.backoff_step = 0
                        self._bump_locked()
            job = api.submit(item.workflow, **item.kwargs)
        except Exception as exc:
            self._outcome(server, attempt, None, exc)
            return
        with self._lock:
            attempt.job = job
            item.accepted = True
            item.future.prompt_id = job.prompt_id
            abandoned = attempt.abandoned
        if abandoned:
            return
        future = job.future
        if future is None:
            self._outcome(server, attempt, None, ComfyError("the client returned no future"))
            return

        def done(f: "concurrent.futures.Future[Any]") -> None:
            with self._lock:
                if not self._started or attempt.abandoned:
                    return
                server.inbox.append(("done", attempt, f))
                server.cond.notify_all()

        future.add_done_callback(done)

    def _finish(
        self, server: _Server, attempt: _Attempt, future: "concurrent.futures.Future[Any]"
    ) -> None:
        if future.cancelled():
            self._outcome(server, attempt, None, PromptLostError(
                "the client cancelled the prompt", prompt_id=attempt.item.future.prompt_id or ""
            ))
            return
        error = future.exception()
        self._outcome(server, attempt, None if error is not None else future.result(), error)

    def _outcome(
        self,
        server: _Server,
        attempt: _Attempt,
        result: Optional[PromptResult],
        error: Optional[BaseException],
    ) -> None:
        """Book the end of one attempt; deliver, or move the job elsewhere."""
        kind = _classify(error)
        item = attempt.item
        deliveries: List[_Delivery] = []
        with self._lock:
            if attempt.abandoned or item.finished:
                return
            attempt.abandoned = True
            server.attempts.discard(attempt)
            server.in_flight -= 1
            if kind == "ok":
                server.completed += 1
                server.run_time_total += time.monotonic() - attempt.started
                item.finished = True
                deliveries.append((item.future, result, None))
            elif kind == "user":
                server.failed += 1
                item.finished = True
                deliveries.append((item.future, None, error))
            else:
                assert error is not None
                if attempt.job is not None:
                    server.lost += 1
                    if kind == "down":  # it may still sit in that server's queue
                        server.abandoned_ids.append(attempt.job.prompt_id)
                if kind == "down":
                    deliveries += self._mark_down_locked(server, str(error))
                deliveries += self._retry_locked(item, error)
            self._bump_locked()
        self._deliver(deliveries)
