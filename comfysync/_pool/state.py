"""The records a :class:`~comfysync.ComfyPool` keeps about its jobs, and how an outcome is
judged.

A job (:class:`Item`) lives from ``submit()`` to its future's result; each time it is sent to
a server that is an :class:`Attempt`. Outcomes are sorted by :func:`classify` into success,
the user's problem (never retried), or the server's problem (retried elsewhere). Futures are
completed by :func:`deliver`, always outside the pool's lock, because their callbacks are
user code.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

from attrs import define

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore[assignment]

from .._results import PromptResult
from ..errors import (
    ComfyConnectionError,
    ComfyHTTPError,
    ComfyTimeoutError,
    PromptLostError,
    PromptTimeoutError,
    PromptValidationError,
)
from ..events import Event, EventKey

__all__ = [
    "HEARTBEAT",
    "HEALTH_INTERVAL",
    "ApiLike",
    "ApiFactory",
    "UserSub",
    "PoolConfig",
    "PoolFuture",
    "Item",
    "Attempt",
    "Delivery",
    "deliver",
    "classify",
    "selectors",
]

#: Longest any pool thread waits without looking around. Threads are woken on every change;
#: this only bounds each wait.
HEARTBEAT = 5.0

#: Longest gap between two health pings of a server whose client has no socket.
HEALTH_INTERVAL = 2.0

#: HTTP answers of a proxy in front of a server that is not there: the server's fault.
_GATEWAY_STATUSES = frozenset({502, 503, 504})


class ApiLike(Protocol):
    """The slice of :class:`~comfysync.ComfyApi` the pool uses (tests pass fakes)."""

    @property
    def connected(self) -> bool: ...  # a live WebSocket: its drop is an event

    def connect(self, timeout: float = ...) -> Any: ...

    def close(self) -> None: ...

    def poll_status(self, timeout: float = ...) -> Any: ...  # the health ping

    def on(self, key: EventKey, callback: Callable[[Event], None]) -> Any: ...

    def submit(self, workflow: Any) -> Any: ...  # called with prompt_id= and the job's keywords

    def get_models(self, folder: str) -> List[str]: ...

    def attach(self, prompt_id: str, *, settle: bool = True) -> Any: ...  # a known prompt


ApiFactory = Callable[..., ApiLike]


class UserSub(Protocol):
    """A user's subscription to the events of every server (``ComfyPool.on``)."""

    key: EventKey
    callback: Callable[[Event, str], Any]


@define(frozen=True)
class PoolConfig:
    """The pool's tunables (see :class:`~comfysync.ComfyPool` for their meaning)."""

    max_inflight: int = 1
    retries: int = 2
    max_queued: int = 1000
    wait_for_server: float = 30.0
    failover_after: float = 10.0
    connect_timeout: float = 10.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    @property
    def health_interval(self) -> float:
        """Seconds between health pings of a busy server tracked without a socket: a few per
        ``failover_after``, so an unreachable server is noticed well within it."""
        return max(0.05, min(HEALTH_INTERVAL, self.failover_after / 4))

    @property
    def health_timeout(self) -> float:
        """Bound of one health ping: a server that answers slower counts as unreachable."""
        return max(0.5, min(self.connect_timeout, self.failover_after / 2))


class PoolFuture(concurrent.futures.Future[PromptResult]):
    """A ``concurrent.futures.Future[PromptResult]`` that also says where its job ran.

    ``server`` is the URL of the server the job was (last) sent to — the one that ran it once
    the future is done; ``None`` while the job waits in the pool. ``prompt_id`` is the id of
    the last submission, ``attempts`` how many times the job was sent to a server.
    ``cancel()`` succeeds only while the job still waits in the pool, as for any ``Future``.
    ``job`` is the server client's ``PromptJob`` of the last submission (its progress and
    events), ``None`` while the job waits in the pool.
    """

    def __init__(self) -> None:
        super().__init__()
        self.server: Optional[str] = None
        self.prompt_id: Optional[str] = None
        self.job: Any = None
        self.attempts: int = 0
        self._on_cancel: Optional[Callable[[], None]] = None
        self._item: Optional[Item] = None  # the pool's record of this job

    def cancel(self) -> bool:
        cancelled = bool(super().cancel())
        hook = self._on_cancel
        if cancelled and hook is not None:
            hook()  # the pool drops the job from its queue at once
        return cancelled


class Item:
    """One job of the pool, from ``submit()`` to its future's result (guarded by the pool's
    lock)."""

    def __init__(
        self,
        workflow: Any,
        kwargs: Any,
        allowed: Tuple[int, ...],
        future: PoolFuture,
        prompt_id: str,
    ) -> None:
        self.workflow = workflow
        self.kwargs = dict(kwargs)
        self.prompt_id = prompt_id  # the id of its first submission
        self.allowed = allowed  # indices of the servers include/exclude allow
        self.future = future
        self.failures = 0  # attempts that failed because of their server
        self.accepted = False  # some server took the prompt at least once
        self.started = False  # future.set_running_or_notify_cancel() done
        self.finished = False  # an outcome was decided (delivered outside the lock)
        self.no_server_since: Optional[float] = None
        self.declined_at = -1  # pool version at which the policy said "not now"
        self.tried: List[str] = []

    def settle(
        self, result: Optional[PromptResult] = None, error: Optional[BaseException] = None
    ) -> List[Delivery]:
        """Decide the job's outcome, once: the delivery to make (outside the lock), or
        nothing when an outcome was already decided."""
        if self.finished:
            return []
        self.finished = True
        return [(self.future, result, error)]


class Attempt:
    """One submission of a job to one server. Its fields other than ``item`` are guarded by
    that server's record."""

    def __init__(self, item: Item, started: float, server_url: str) -> None:
        self.item = item
        # The job's own id on every server it goes to (so it can be found by that id
        # wherever it ran), but a fresh one on a server that already saw it: a server that
        # dropped or interrupted an earlier attempt must not mistake the new one for it.
        fresh = server_url in item.tried
        self.prompt_id = str(uuid.uuid4()) if fresh else item.prompt_id
        self.job: Optional[Any] = None  # the client's PromptJob once POST /prompt succeeded
        self.sending = False  # POST /prompt under way: the server may have the prompt
        self.abandoned = False  # ended, or given up on: later news about it is ignored
        self.cancel_requested = False  # the caller gave up: cancel the prompt once posted
        self.started = started


#: ``(future, result, error)``: how to complete one future.
Delivery = Tuple[PoolFuture, Optional[PromptResult], Optional[BaseException]]


def deliver(deliveries: Sequence[Delivery]) -> None:
    """Complete futures. Call it without holding the pool's lock: callbacks are user code."""
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


def classify(error: Optional[BaseException]) -> str:
    """``ok``; ``user`` (the workflow's fault: never retried); ``lost`` (the server forgot
    the prompt: retry elsewhere); ``down`` (the server is unreachable: retry elsewhere and
    mark it down)."""
    if error is None:
        return "ok"
    if isinstance(error, PromptLostError):
        return "lost"
    if isinstance(error, (PromptTimeoutError, PromptValidationError)):
        return "user"
    if isinstance(error, (ComfyConnectionError, ComfyTimeoutError)):
        return "down"
    if isinstance(error, ComfyHTTPError) and error.status in _GATEWAY_STATUSES:
        return "down"
    return "user"


def selectors(value: Union[None, str, Iterable[str]]) -> Optional[List[str]]:
    """``include=``/``exclude=`` as a list (a single string is one selector)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]
