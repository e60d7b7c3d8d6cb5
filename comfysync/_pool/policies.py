"""What a :class:`~comfysync.ComfyPool` knows about its servers, and how it picks one.

The pool keeps its mutable bookkeeping private; policies and users only ever see frozen
snapshots: :class:`ServerView` (what a policy chooses from) and :class:`ServerStats` (what
``pool.stats()`` reports). A policy is any callable ``policy(servers, workflow)`` that returns
one of the views it was given (or its URL), or ``None`` to leave the job waiting; the two
built-in ones are :func:`least_busy` and :class:`RoundRobin`.
"""

from __future__ import annotations

import threading
from typing import (
    Any,
    Callable,
    FrozenSet,
    Iterable,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from attrs import define, field

from .._http.transport import parse_base_url

__all__ = [
    "ServerSpec",
    "ServerStats",
    "ServerView",
    "Policy",
    "PolicyArg",
    "ServerArg",
    "least_busy",
    "RoundRobin",
    "resolve_policy",
    "parse_server",
]


def _tags(value: Iterable[str]) -> FrozenSet[str]:
    if isinstance(value, str):
        return frozenset([value])
    return frozenset(str(t) for t in value)


def _max_inflight(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"a server's max_inflight must be an integer >= 1, got {value!r}")
    return int(value)


def _priority(value: Any) -> int:
    if isinstance(value, bool) or int(value) != value:
        raise ValueError(f"a server's priority must be an integer, got {value!r}")
    return int(value)


def _weight(value: Any) -> float:
    weight = float(value)
    if not weight > 0:
        raise ValueError(f"server weight must be > 0, got {value!r}")
    return weight


@define(frozen=True)
class ServerSpec:
    """One server of a pool as the user declares it.

    ``url`` is anything :class:`~comfysync.ComfyApi` accepts; ``tags`` are free-form labels
    usable in ``include=``/``exclude=`` (``{"sdxl", "big-gpu"}``); ``weight`` (> 0) breaks
    ties in :func:`least_busy`: the heavier server wins.

    ``priority`` (an integer, default 0) ranks servers: a job goes to a server of a lower
    priority only while every server of a higher one it may use is busy (no free slot) or
    unreachable — local GPUs at ``priority=1`` and a cloud deployment at 0 make the cloud the
    overflow. ``max_inflight`` (>= 1) replaces the pool's ``max_inflight_per_server`` for
    this server (a cloud deployment may take many jobs at once).
    """

    url: str
    tags: FrozenSet[str] = field(default=frozenset(), converter=_tags)
    weight: float = field(default=1.0, converter=_weight)
    priority: int = field(default=0, converter=_priority)
    max_inflight: Optional[int] = field(default=None, converter=_max_inflight)


#: What ``ComfyPool(urls)`` accepts for one server: ``"host:port"``,
#: ``("host:port", {"tags": [...], "weight": 2, "priority": 1, "max_inflight": 4})``, a
#: mapping with a ``url`` key, or a :class:`ServerSpec`.
ServerArg = Union[str, ServerSpec, Tuple[str, Mapping[str, Any]], Mapping[str, Any]]

_OPTION_KEYS = ("tags", "weight", "priority", "max_inflight")
_SPEC_KEYS = frozenset(("url",) + _OPTION_KEYS)


def parse_server(arg: ServerArg) -> ServerSpec:
    """Turn one element of ``ComfyPool(urls)`` into a :class:`ServerSpec`."""
    if isinstance(arg, ServerSpec):
        return arg
    if isinstance(arg, str):
        return ServerSpec(arg)
    if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[1], Mapping):
        url, options = arg
        options = dict(options)
        unknown = set(options) - set(_OPTION_KEYS)
        if unknown:
            raise ValueError(
                f"unknown server option(s) {sorted(unknown)}{_suggest(unknown)}; use "
                + ", ".join(_OPTION_KEYS)
            )
        return ServerSpec(str(url), **options)
    if isinstance(arg, Mapping):
        unknown = set(arg) - _SPEC_KEYS
        if "url" not in arg or unknown:
            raise ValueError(
                f"a server mapping needs 'url' and may have {', '.join(_OPTION_KEYS)}"
                + (f"; unknown: {sorted(unknown)}{_suggest(unknown)}" if unknown else "")
            )
        return ServerSpec(**dict(arg))
    raise TypeError(
        f"cannot use {type(arg).__name__} as a server; pass 'host:port', "
        "('host:port', {'tags': [...], 'weight': n}) or a ServerSpec"
    )


def _suggest(unknown: Iterable[str]) -> str:
    """`` (did you mean 'priority'?)`` for a misspelt server option."""
    import difflib

    hints = []
    for name in sorted(str(u) for u in unknown):
        close = difflib.get_close_matches(name.lower(), _OPTION_KEYS, n=1, cutoff=0.6)
        if close:
            hints.append(f"{name!r} → {close[0]!r}")
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


def normalize_url(url: str) -> str:
    """The credential-free base URL a server is known by (``http://host:port[/prefix]``)."""
    return parse_base_url(url).base_url


@define(frozen=True)
class ServerStats:
    """Counters of one server, as ``pool.stats()`` reports them.

    ``completed`` counts prompts that succeeded there, ``failed`` prompts that ended in an
    error the user must fix (execution error, validation, interrupt), ``lost`` prompts the
    server dropped (refused, disconnected, forgot them) and that the pool moved elsewhere or
    gave up on. ``mean_run_time`` is the mean wall time in seconds from submission to result
    of the completed ones (``None`` before the first).

    ``state``: ``new`` (not contacted yet), ``up`` (connected), ``reconnecting`` (the socket
    dropped and the client is trying to get it back, or a client without a socket does not
    answer the pool's health pings: no new work meanwhile), ``down`` (unreachable: skipped,
    probed again with exponential backoff).
    """

    url: str
    state: str
    in_flight: int
    completed: int
    failed: int
    lost: int
    mean_run_time: Optional[float]
    queue_remaining: Optional[int]
    last_error: Optional[str] = None

    @property
    def up(self) -> bool:
        """True when the server is connected (``state == "up"``)."""
        return self.state == "up"


@define(frozen=True)
class ServerView:
    """What a policy sees of a server when it picks one.

    ``in_flight`` counts this pool's jobs on the server (submitted or being submitted);
    ``queue_remaining`` is the server's own queue length from its last ``status`` message
    (all clients' work, ``None`` before the first); ``up`` is False only for servers known to
    be unreachable (a not yet contacted server counts as up). ``index`` is the server's
    position in the pool's list; ``priority`` its :attr:`ServerSpec.priority` (a policy is
    only shown the free servers of the highest priority present).
    """

    url: str
    tags: FrozenSet[str]
    weight: float
    in_flight: int
    queue_remaining: Optional[int]
    up: bool
    stats: ServerStats
    index: int = 0
    priority: int = 0


#: A policy picks one of ``servers`` (never empty: only up servers with a free slot that
#: pass the job's ``include``/``exclude``) for ``workflow``. It returns the view, its URL, or
#: ``None`` to keep the job waiting until something changes. It runs on the pool's
#: dispatcher thread: keep it quick and do not block in it.
Policy = Callable[[Sequence[ServerView], Any], Union[ServerView, str, None]]
PolicyArg = Union[str, Policy]


def least_busy(servers: Sequence[ServerView], workflow: Any) -> ServerView:
    """Fewest of our jobs in flight, then the shortest server queue, then the heaviest
    weight, then the first in the pool's order."""
    del workflow

    def key(view: ServerView) -> Tuple[int, int, float, int]:
        queue = view.queue_remaining if view.queue_remaining is not None else 0
        # The server's queue includes our own jobs; count only the others' work.
        foreign = max(0, queue - view.in_flight)
        return (view.in_flight, foreign, -view.weight, view.index)

    return min(servers, key=key)


class RoundRobin:
    """Each job goes to the next server in the pool's order after the previous pick,
    skipping servers that are down, busy or excluded."""

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self, servers: Sequence[ServerView], workflow: Any) -> ServerView:
        del workflow
        with self._lock:
            start = self._next
            chosen = min(servers, key=lambda v: (v.index - start) % self._size)
            self._next = (chosen.index + 1) % self._size
        return chosen


_POLICY_NAMES = ("least_busy", "round_robin")


def resolve_policy(policy: PolicyArg, size: int) -> Policy:
    """A built-in policy by name, or the user's callable as it is."""
    if isinstance(policy, str):
        if policy == "least_busy":
            return least_busy
        if policy == "round_robin":
            return RoundRobin(size)
        raise ValueError(f"unknown policy {policy!r}; use one of {_POLICY_NAMES} or a callable")
    if callable(policy):
        return policy
    raise TypeError(f"policy must be a name or a callable, not {type(policy).__name__}")
