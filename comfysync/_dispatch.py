"""The event bus: who gets which event, in which order, and what happens when a callback fails.

One registry (event name → subscriptions) behind one lock. ``emit`` takes a snapshot of the
matching subscriptions under the lock and calls them *outside* it, so a callback may subscribe,
unsubscribe or emit without deadlocking, and a slow callback never blocks ``on()`` callers.

Order: every subscription gets a sequence number; an event's callbacks run in subscription
order across the keys that match it (its wire name, ``UnknownEvent``'s class key, ``"*"``),
so a user sees callbacks run in the order they subscribed. Nothing internal subscribes here:
prompt tracking gets every event before the bus does (the client's delivery step), so no
correctness depends on this order.

Snapshots are cached per event type and dropped on every subscription change, so the common
path of ``emit`` is one lock round trip, one dict lookup and the calls themselves.

Subscribing to an unknown name is allowed (custom nodes send their own message types), but a
name close to a known one (``"progres"``) is logged as a probable typo, once per name.

A callback that raises is passed to the optional ``exception_handler(exc, event, callback)``
(and logged at DEBUG), or without a handler logged on ``comfysync.dispatch`` — its traceback
at ERROR the first time per subscription, a one-line WARNING after that; the remaining
callbacks still run.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Set,
    Tuple,
    Type,
    TypeVar,
    overload,
)

from .errors import ComfyConnectionError, ComfyTimeoutError
from .events import ALL, Event, EventKey, closest_name, normalize_key

__all__ = ["EventBus", "Subscription", "Callback", "ExceptionHandler"]

logger = logging.getLogger("comfysync.dispatch")

E = TypeVar("E", bound=Event)

#: Misspelt names already warned about (once per process: a job's bus is made per prompt).
_warned_names: Set[str] = set()
_warned_lock = threading.Lock()

#: A subscriber. Its return value is ignored.
Callback = Callable[[Any], object]
#: ``exception_handler(exc, event, callback)``: told about every callback that raised.
ExceptionHandler = Callable[[BaseException, Event, Callable[..., Any]], object]


def _describe(callback: Callable[..., Any]) -> str:
    name = getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None)
    return str(name) if name else type(callback).__name__


def _warn_if_misspelt(name: str) -> None:
    """Unknown names are allowed (custom node messages), but one close to a known name is
    most likely a typo that would never fire: say so, once per name."""
    suggestion = closest_name(name)
    if suggestion is None:
        return
    with _warned_lock:
        if name in _warned_names:
            return
        _warned_names.add(name)
    logger.warning("no event is called %r — did you mean %r?", name, suggestion)


class Subscription:
    """One callback registered for one key. ``cancel()`` removes it (idempotent); used as a
    context manager it is cancelled on exit::

        with api.on("progress", show):
            api.run_workflow(wf)
    """

    __slots__ = ("key", "callback", "once", "_bus", "_seq", "_active", "_failures", "__weakref__")

    def __init__(self, bus: EventBus, key: str, callback: Callback, seq: int, once: bool) -> None:
        self.key = key
        self.callback = callback
        self.once = once
        self._bus = bus
        self._seq = seq
        self._active = True
        self._failures = 0  # how often the callback raised (for the log's rate limit)

    @property
    def active(self) -> bool:
        """False once cancelled (or, for ``once``, after the first matching event)."""
        return self._active

    def cancel(self) -> bool:
        """Remove the subscription. Returns True if this call removed it, False if it was
        already gone — so two threads racing to cancel agree on who won."""
        return self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def __repr__(self) -> str:
        state = "active" if self._active else "cancelled"
        kind = "once" if self.once else "on"
        return f"<Subscription {kind} {self.key!r} {_describe(self.callback)} {state}>"


class _Waiter:
    """State of one ``wait_for`` call: the event (or error) that ends it."""

    __slots__ = ("done", "event", "error", "rejected", "_lock")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.event: Optional[Event] = None
        self.error: Optional[BaseException] = None
        self.rejected = 0  # events of the key the predicate turned down (for the timeout)
        self._lock = threading.Lock()

    def reject(self) -> None:
        with self._lock:
            self.rejected += 1

    def finish(self, event: Optional[Event], error: Optional[BaseException]) -> None:
        """Record the outcome; the first call wins (several threads may emit at once)."""
        with self._lock:
            if self.done.is_set():
                return
            self.event = event
            self.error = error
            self.done.set()


def _timeout_message(key: str, timeout: Optional[float], rejected: int) -> str:
    """Why a ``wait_for`` ended empty-handed: nothing came, or the predicate turned down
    what came. Either way, events from before the call were never candidates."""
    within = f" within {timeout:g} s" if timeout is not None else ""
    hint = "(only events after the wait_for() call count)"
    if not rejected:
        return f"no {key!r} event arrived{within} {hint}"
    events, them = ("event", "it") if rejected == 1 else ("events", "them")
    return (
        f"no matching {key!r} event{within}: {rejected} {key!r} {events} arrived and the "
        f"predicate rejected {them} {hint}"
    )


class EventBus:
    """Registry of subscriptions plus ``emit``. Thread-safe; see the module docstring."""

    def __init__(self, exception_handler: Optional[ExceptionHandler] = None) -> None:
        #: Called as ``exception_handler(exc, event, callback)`` when a callback raises.
        self.exception_handler = exception_handler
        self._lock = threading.Lock()
        self._subs: Dict[str, List[Subscription]] = {}
        self._snapshots: Dict[Tuple[str, str], Tuple[Subscription, ...]] = {}
        self._seq = itertools.count()
        self._waiters: Set[_Waiter] = set()
        self._closed: Optional[ComfyConnectionError] = None  # what on()/wait_for() raise

    # ------------------------------------------------------------------ subscribing

    @overload
    def on(self, key: Type[E], callback: Callable[[E], object]) -> Subscription: ...

    @overload
    def on(self, key: str, callback: Callback) -> Subscription: ...

    def on(self, key: EventKey, callback: Callable[[Any], object]) -> Subscription:
        """Call ``callback(event)`` for every event matching ``key`` (a wire name, an event
        class, or ``"*"``/``"all"``), on the thread that emits it, until cancelled."""
        return self._add(key, callback, once=False)

    @overload
    def once(self, key: Type[E], callback: Callable[[E], object]) -> Subscription: ...

    @overload
    def once(self, key: str, callback: Callback) -> Subscription: ...

    def once(self, key: EventKey, callback: Callable[[Any], object]) -> Subscription:
        """Like :meth:`on`, but for the first matching event only (exactly once, even when
        several threads emit at the same time)."""
        return self._add(key, callback, once=True)

    def off(self, key: EventKey, callback: Callable[..., Any]) -> None:
        """Remove every subscription of ``callback`` to ``key``. Unknown pairs are ignored."""
        name = normalize_key(key)
        with self._lock:
            subs = self._subs.get(name)
            if not subs:
                return
            keep = []
            for sub in subs:
                if sub.callback == callback:
                    sub._active = False
                else:
                    keep.append(sub)
            self._store(name, keep)

    def _add(self, key: EventKey, callback: Callable[[Any], object], once: bool) -> Subscription:
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        name = normalize_key(key)
        if isinstance(key, str):
            _warn_if_misspelt(key)
        with self._lock:
            if self._closed is not None:
                raise self._closed_error()
            sub = Subscription(self, name, callback, next(self._seq), once)
            self._subs.setdefault(name, []).append(sub)
            self._snapshots.clear()
        return sub

    def _remove(self, sub: Subscription) -> bool:
        with self._lock:
            if not sub._active:
                return False
            sub._active = False
            subs = self._subs.get(sub.key)
            if subs is not None:
                self._store(sub.key, [s for s in subs if s is not sub])
            return True

    def _store(self, name: str, subs: List[Subscription]) -> None:
        # Caller holds the lock.
        if subs:
            self._subs[name] = subs
        else:
            self._subs.pop(name, None)
        self._snapshots.clear()

    def subscriber_count(self, key: Optional[EventKey] = None) -> int:
        """Active subscriptions for ``key`` (all of them when None); for tests and debugging."""
        with self._lock:
            if key is None:
                return sum(len(s) for s in self._subs.values())
            return len(self._subs.get(normalize_key(key), ()))

    # ------------------------------------------------------------------ emitting

    def emit(self, event: Event) -> None:
        """Run the callbacks subscribed to ``event`` on the calling thread, in subscription
        order. Never raises because of a callback."""
        cache_key = (event.TYPE, event.type)
        with self._lock:
            subs = self._snapshots.get(cache_key)
            if subs is None:
                subs = self._snapshot(cache_key)
        for sub in subs:
            if not sub._active:  # cancelled by an earlier callback of this same event
                continue
            if sub.once and not self._remove(sub):
                continue  # another thread delivered this once-subscription already
            try:
                sub.callback(event)
            except Exception as exc:
                self._callback_failed(exc, event, sub)

    def _snapshot(self, cache_key: Tuple[str, str]) -> Tuple[Subscription, ...]:
        # Caller holds the lock.
        class_key, name = cache_key
        keys = {name, ALL}
        keys.add(class_key)  # UnknownEvent: its class key differs from its wire name
        found: List[Subscription] = []
        for key in keys:
            found.extend(self._subs.get(key, ()))
        found.sort(key=lambda s: s._seq)
        snapshot = tuple(found)
        self._snapshots[cache_key] = snapshot
        return snapshot

    def _callback_failed(self, exc: Exception, event: Event, sub: Subscription) -> None:
        """Log a raising callback and pass it to the handler. With a handler the handler is
        the user's channel: DEBUG only. Without one, the traceback is logged at ERROR the
        first time per subscription and one WARNING line afterwards (a callback failing on
        every progress step would otherwise flood the log). The event itself is never
        logged: it may carry user data."""
        sub._failures += 1  # only the emitting thread counts; a lost increment is harmless
        callback, name = sub.callback, _describe(sub.callback)
        handler = self.exception_handler
        if handler is not None:
            logger.debug(
                "callback %s for %r event raised %s (passed to exception_handler)",
                name, event.type, type(exc).__name__, exc_info=exc,
            )
            try:
                handler(exc, event, callback)
            except Exception:
                logger.exception("exception_handler raised while handling a callback error")
        elif sub._failures == 1:
            logger.error(
                "callback %s for %r event raised %s (its traceback is logged only once; "
                "later failures are one line each)",
                name, event.type, type(exc).__name__, exc_info=exc,
            )
        else:
            logger.warning(
                "callback %s for %r event raised %s again (%d times): %s",
                name, event.type, type(exc).__name__, sub._failures, exc,
            )

    # ------------------------------------------------------------------ waiting

    @overload
    def wait_for(
        self,
        key: Type[E],
        predicate: Optional[Callable[[E], object]] = None,
        timeout: Optional[float] = None,
    ) -> E: ...

    @overload
    def wait_for(
        self,
        key: str,
        predicate: Optional[Callable[[Any], object]] = None,
        timeout: Optional[float] = None,
    ) -> Event: ...

    def wait_for(
        self,
        key: EventKey,
        predicate: Optional[Callable[[Any], object]] = None,
        timeout: Optional[float] = None,
    ) -> Event:
        """Block the calling thread until an event matching ``key`` (and ``predicate``, when
        given) is emitted, and return it. Only events emitted after the call count.

        Raises :class:`~comfysync.errors.ComfyTimeoutError` when ``timeout`` seconds pass
        first (``None`` waits without limit), the predicate's own exception if it raises, and
        :class:`~comfysync.errors.ComfyConnectionError` when the bus is (or gets) closed.
        Never call it from a callback: the event it waits for would be emitted on the very
        thread it blocks.
        """
        waiter = _Waiter()
        with self._lock:  # checked and registered under close()'s lock: it cannot miss us
            if self._closed is not None:
                raise self._closed_error()
            self._waiters.add(waiter)

        def deliver(event: Event) -> None:
            if waiter.done.is_set():
                return  # already answered; the subscription is about to be cancelled
            if predicate is not None:
                try:
                    if not predicate(event):
                        waiter.reject()
                        return
                except Exception as exc:
                    waiter.finish(None, exc)
                    return
            waiter.finish(event, None)

        try:
            sub = self._add(key, deliver, once=False)
        except BaseException:
            with self._lock:
                self._waiters.discard(waiter)
            raise
        try:
            if not waiter.done.wait(timeout):
                raise ComfyTimeoutError(_timeout_message(sub.key, timeout, waiter.rejected))
        finally:
            sub.cancel()
            with self._lock:
                self._waiters.discard(waiter)
        if waiter.error is not None:
            raise waiter.error
        assert waiter.event is not None
        return waiter.event

    def close(self, reason: str, *, url: Optional[str] = None) -> None:
        """Refuse new subscriptions and waits from now on, and wake every thread blocked in
        :meth:`wait_for`, each with a :class:`~comfysync.errors.ComfyConnectionError` saying
        ``reason`` (used by ``ComfyApi.close()``, so that no ``wait_for(timeout=None)``
        outlives its client). Existing subscriptions are kept: events still emitted (the
        listener's last ``Disconnected``) reach them. Idempotent."""
        with self._lock:
            if self._closed is None:
                self._closed = ComfyConnectionError(reason, url=url)
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.finish(None, self._closed_error("stopped waiting for an event: "))

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def _closed_error(self, prefix: str = "") -> ComfyConnectionError:
        """A fresh exception per raise (a shared one would accumulate tracebacks)."""
        closed = self._closed
        assert closed is not None
        return ComfyConnectionError(prefix + str(closed), url=closed.url)

    def __repr__(self) -> str:
        return f"<EventBus {self.subscriber_count()} subscriptions>"
