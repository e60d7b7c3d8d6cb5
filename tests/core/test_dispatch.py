"""EventBus semantics: keys, order, once, off, cancel, re-entrancy, failures, wait_for, threads."""

from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest

from comfysync import _dispatch as dispatch_module
from comfysync import events as ev
from comfysync._dispatch import EventBus
from comfysync.errors import ComfyConnectionError, ComfyTimeoutError

WAIT = 10.0


def progress(value: int = 1, prompt_id: str = "p") -> ev.Progress:
    return ev.Progress(value, 10, "1", prompt_id)


def test_keys_by_name_class_alias_and_wildcard() -> None:
    bus = EventBus()
    got: List[str] = []
    bus.on("progress", lambda e: got.append("name"))
    bus.on(ev.Progress, lambda e: got.append("class"))
    bus.on("*", lambda e: got.append("star"))
    bus.on("all", lambda e: got.append("all"))
    bus.on(ev.Event, lambda e: got.append("base"))
    bus.on("executing", lambda e: got.append("other"))
    bus.emit(progress())
    assert got == ["name", "class", "star", "all", "base"]


def test_execution_complete_alias() -> None:
    bus = EventBus()
    got: List[ev.Event] = []
    bus.on("execution_complete", got.append)
    success = ev.ExecutionSuccess("p", 1)
    bus.emit(success)
    assert got == [success]


def test_unknown_events_by_name_by_class_and_wildcard() -> None:
    bus = EventBus()
    by_name: List[ev.Event] = []
    by_class: List[ev.Event] = []
    bus.on("crystools.monitor", by_name.append)
    bus.on(ev.UnknownEvent, by_class.append)
    monitor = ev.UnknownEvent("crystools.monitor", {})
    other = ev.UnknownEvent("cm-queue", {})
    bus.emit(monitor)
    bus.emit(other)
    assert by_name == [monitor]
    assert by_class == [monitor, other]


def test_callbacks_run_in_subscription_order_across_keys() -> None:
    """The tracker subscribes to "*" first and must see every event before user callbacks."""
    bus = EventBus()
    order: List[str] = []
    bus.on("*", lambda e: order.append("tracker"))
    bus.on("progress", lambda e: order.append("user-progress"))
    bus.on("*", lambda e: order.append("user-star"))
    bus.on(ev.Progress, lambda e: order.append("user-class"))
    bus.emit(progress())
    assert order == ["tracker", "user-progress", "user-star", "user-class"]


def test_events_arrive_in_emit_order() -> None:
    bus = EventBus()
    got: List[float] = []
    bus.on("progress", lambda e: got.append(e.value))
    for i in range(100):
        bus.emit(progress(i))
    assert got == list(range(100))


def test_once_runs_once() -> None:
    bus = EventBus()
    got: List[ev.Event] = []
    sub = bus.once("progress", got.append)
    bus.emit(progress(1))
    bus.emit(progress(2))
    assert [e.value for e in got] == [1]  # type: ignore[attr-defined]
    assert not sub.active
    assert bus.subscriber_count() == 0


def test_once_is_exactly_once_across_emitting_threads() -> None:
    bus = EventBus()
    calls: List[int] = []
    lock = threading.Lock()

    def record(event: ev.Event) -> None:
        with lock:
            calls.append(1)

    for _ in range(50):
        calls.clear()
        bus.once("progress", record)
        barrier = threading.Barrier(4)

        def emit(barrier: threading.Barrier) -> None:
            barrier.wait(WAIT)
            bus.emit(progress())

        threads = [threading.Thread(target=emit, args=(barrier,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert len(calls) == 1


def test_off_removes_every_subscription_of_the_callback() -> None:
    bus = EventBus()
    got: List[ev.Event] = []
    keep: List[ev.Event] = []
    bus.on("progress", got.append)
    bus.on(ev.Progress, got.append)  # same key after normalisation
    bus.on("progress", keep.append)
    bus.off("progress", got.append)
    bus.off("executing", got.append)  # not subscribed: ignored
    bus.off("never-seen", got.append)
    bus.emit(progress())
    assert got == []
    assert len(keep) == 1


def test_cancel_is_idempotent_and_context_manager_cancels() -> None:
    bus = EventBus()
    got: List[ev.Event] = []
    sub = bus.on("progress", got.append)
    assert sub.cancel() is True
    assert sub.cancel() is False
    bus.emit(progress())
    assert got == []
    with bus.on("progress", got.append) as scoped:
        bus.emit(progress())
    bus.emit(progress())
    assert len(got) == 1
    assert not scoped.active
    assert "cancelled" in repr(scoped)


def test_unsubscribe_inside_callback_of_the_same_event() -> None:
    bus = EventBus()
    order: List[str] = []
    later: Any = None

    def first(event: ev.Event) -> None:
        order.append("first")
        later.cancel()
        me.cancel()

    me = bus.on("progress", first)
    later = bus.on("progress", lambda e: order.append("later"))
    bus.emit(progress())
    bus.emit(progress())
    assert order == ["first"]


def test_subscribe_inside_callback_takes_effect_from_the_next_event() -> None:
    bus = EventBus()
    got: List[str] = []

    def add_more(event: ev.Event) -> None:
        got.append("outer")
        bus.on("progress", lambda e: got.append("inner"))

    sub = bus.once("progress", add_more)
    bus.emit(progress())
    assert got == ["outer"]
    bus.emit(progress())
    assert got == ["outer", "inner"]
    assert not sub.active


def test_emit_inside_callback_does_not_deadlock() -> None:
    bus = EventBus()
    got: List[str] = []
    bus.on("progress", lambda e: bus.emit(ev.Status(1)))
    bus.on("status", lambda e: got.append("status"))
    bus.emit(progress())
    assert got == ["status"]


def test_raising_callback_goes_to_the_handler_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With an exception_handler the handler is the user's channel: the failure is logged
    at DEBUG only (it used to log a full traceback at ERROR for every failing event)."""
    reported: List[Any] = []
    bus = EventBus(exception_handler=lambda exc, event, cb: reported.append((exc, event, cb)))
    got: List[ev.Event] = []

    def boom(event: ev.Event) -> None:
        raise ValueError("bad callback")

    bus.on("progress", boom)
    bus.on("progress", got.append)
    event = progress()
    with caplog.at_level(logging.DEBUG, logger="comfysync.dispatch"):
        bus.emit(event)  # does not raise
        bus.emit(event)
    assert got == [event, event]
    assert [(type(e), seen, cb) for e, seen, cb in reported] == [(ValueError, event, boom)] * 2
    records = [r for r in caplog.records if r.name == "comfysync.dispatch"]
    assert [r.levelno for r in records] == [logging.DEBUG, logging.DEBUG]
    assert "boom" in records[0].getMessage() and "'progress'" in records[0].getMessage()
    assert records[0].exc_info is not None


def test_without_handler_the_traceback_is_logged_once_per_subscription(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A callback failing on every progress step (20 per run) logs its traceback once, then
    one WARNING line per failure; another callback gets its own traceback."""
    bus = EventBus()

    def boom(event: ev.Event) -> None:
        raise ValueError("bad callback")

    def other(event: ev.Event) -> None:
        raise KeyError("other")

    bus.on("progress", boom)
    with caplog.at_level(logging.DEBUG, logger="comfysync.dispatch"):
        for value in range(3):
            bus.emit(progress(value))
        bus.on("progress", other)
        bus.emit(progress())
    records = [(r.levelno, r.exc_info is not None, r.getMessage())
               for r in caplog.records if r.name == "comfysync.dispatch"]
    assert [(level, tb) for level, tb, _ in records] == [
        (logging.ERROR, True), (logging.WARNING, False), (logging.WARNING, False),
        (logging.WARNING, False), (logging.ERROR, True),
    ]
    assert "boom" in records[0][2] and "only once" in records[0][2]
    assert records[1][2].endswith(
        ".boom for 'progress' event raised ValueError again (2 times): bad callback"
    )
    assert "other" in records[4][2]


def test_raising_exception_handler_is_logged_too(caplog: pytest.LogCaptureFixture) -> None:
    def bad_handler(exc: BaseException, event: ev.Event, cb: Any) -> None:
        raise RuntimeError("handler bug")

    bus = EventBus(exception_handler=bad_handler)
    bus.on("progress", lambda e: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="comfysync.dispatch"):
        bus.emit(progress())
    messages = [r.getMessage() for r in caplog.records if r.name == "comfysync.dispatch"]
    assert len(messages) == 1
    assert "exception_handler raised" in messages[0]


def test_non_callable_is_refused() -> None:
    with pytest.raises(TypeError):
        EventBus().on("progress", "not callable")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- wait_for


class WatchedBus(EventBus):
    """An EventBus that lets a test wait until ``n`` subscriptions exist (event-driven)."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def _add(self, key: Any, callback: Any, once: bool) -> Any:
        sub = super()._add(key, callback, once)
        with self._changed:
            self._changed.notify_all()
        return sub

    def wait_subscribers(self, n: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.subscriber_count() >= n, WAIT)


def _emit_later(bus: WatchedBus, *events: ev.Event) -> threading.Thread:
    """Emit from another thread once the waiter has subscribed."""

    def run() -> None:
        bus.wait_subscribers(1)
        for event in events:
            bus.emit(event)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_wait_for_returns_the_matching_event() -> None:
    bus = WatchedBus()
    thread = _emit_later(bus, progress(1, "a"), progress(2, "b"), progress(3, "b"))
    event = bus.wait_for(ev.Progress, lambda e: e.prompt_id == "b", timeout=WAIT)
    thread.join(WAIT)
    assert event.value == 2
    assert bus.subscriber_count() == 0


def test_wait_for_by_name_and_alias() -> None:
    bus = WatchedBus()
    success = ev.ExecutionSuccess("p", 5)
    thread = _emit_later(bus, progress(), success)
    assert bus.wait_for("execution_complete", timeout=WAIT) is success
    thread.join(WAIT)


def test_wait_for_timeout_raises_and_unsubscribes() -> None:
    bus = WatchedBus()
    with pytest.raises(ComfyTimeoutError, match="'progress'"):
        bus.wait_for("progress", timeout=0.05)
    assert bus.subscriber_count() == 0


class EmittingBus(EventBus):
    """Emits ``events`` on the waiting thread right after the wait subscribed: they are
    certainly seen before the wait times out."""

    def __init__(self, *events: ev.Event) -> None:
        super().__init__()
        self._pending = list(events)

    def _add(self, key: Any, callback: Any, once: bool) -> Any:
        sub = super()._add(key, callback, once)
        pending, self._pending = self._pending, []
        for event in pending:
            self.emit(event)
        return sub


def test_wait_for_timeout_says_the_predicate_rejected_what_came() -> None:
    bus = EmittingBus(ev.Status(3), ev.Status(2), progress(), ev.Status(1))
    with pytest.raises(ComfyTimeoutError) as info:
        bus.wait_for("status", lambda e: e.queue_remaining == 0, timeout=0.05)
    assert str(info.value) == (
        "no matching 'status' event within 0.05 s: 3 'status' events arrived and the "
        "predicate rejected them (only events after the wait_for() call count)"
    )
    with pytest.raises(ComfyTimeoutError) as info:
        EmittingBus(progress()).wait_for("status", lambda e: True, timeout=0.05)
    assert str(info.value) == (
        "no 'status' event arrived within 0.05 s (only events after the wait_for() call count)"
    )
    one = EmittingBus(ev.Status(1))
    with pytest.raises(ComfyTimeoutError, match="1 'status' event arrived and the predicate "
                       "rejected it "):
        one.wait_for(ev.Status, lambda e: e.queue_remaining == 0, timeout=0.05)


def test_wait_for_predicate_error_is_raised_in_the_waiter() -> None:
    bus = WatchedBus()

    def predicate(event: ev.Event) -> bool:
        raise KeyError("predicate bug")

    thread = _emit_later(bus, progress())
    with pytest.raises(KeyError):
        bus.wait_for("progress", predicate, timeout=WAIT)
    thread.join(WAIT)
    assert bus.subscriber_count() == 0


def test_close_wakes_an_unbounded_wait_and_refuses_new_ones() -> None:
    bus = WatchedBus()
    errors: List[BaseException] = []
    got: List[ev.Event] = []
    bus.on("*", got.append)  # baseline subscription

    def wait() -> None:
        try:
            bus.wait_for("progress", timeout=None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    bus.wait_subscribers(2)
    bus.close("client closed", url="http://h:1")
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ComfyConnectionError)
    assert "client closed" in str(errors[0]) and errors[0].url == "http://h:1"
    assert bus.subscriber_count() == 1  # user subscriptions are kept, and still called
    late = progress()
    bus.emit(late)
    assert got == [late]
    with pytest.raises(ComfyConnectionError, match="client closed"):
        bus.wait_for("progress", timeout=None)  # at once: nothing could wake it
    with pytest.raises(ComfyConnectionError, match="client closed"):
        bus.on("progress", got.append)
    with pytest.raises(ComfyConnectionError, match="client closed"):
        bus.once("progress", got.append)
    bus.close("again")  # idempotent: the first reason stays
    with pytest.raises(ComfyConnectionError, match="client closed"):
        bus.on("progress", got.append)
    assert bus.closed


def test_many_waiters_each_get_their_own_event() -> None:
    bus = WatchedBus()
    results: dict = {}

    def wait(pid: str) -> None:
        results[pid] = bus.wait_for(ev.Progress, lambda e: e.prompt_id == pid, timeout=WAIT)

    threads = [threading.Thread(target=wait, args=(f"p{i}",)) for i in range(20)]
    for t in threads:
        t.start()
    bus.wait_subscribers(20)
    for i in reversed(range(20)):
        bus.emit(progress(i, f"p{i}"))
    for t in threads:
        t.join(WAIT)
    assert {pid: e.value for pid, e in results.items()} == {f"p{i}": i for i in range(20)}
    assert bus.subscriber_count() == 0


# --------------------------------------------------------------------------- threads


def test_subscribing_and_cancelling_while_emitting_from_several_threads() -> None:
    bus = EventBus()
    steady: List[ev.Event] = []
    bus.on("progress", steady.append)  # only the emitters' events reach it
    errors: List[BaseException] = []
    stop = threading.Event()
    per_emitter = 2000

    def churn() -> None:
        try:
            while not stop.is_set():
                sub = bus.on("progress", lambda e: None)
                once = bus.once("*", lambda e: None)
                sub.cancel()
                bus.off("*", once.callback)
        except BaseException as exc:
            errors.append(exc)

    def emit() -> None:
        try:
            for i in range(per_emitter):
                bus.emit(progress(i))
        except BaseException as exc:
            errors.append(exc)

    churners = [threading.Thread(target=churn) for _ in range(3)]
    emitters = [threading.Thread(target=emit) for _ in range(3)]
    for t in churners + emitters:
        t.start()
    for t in emitters:
        t.join(WAIT * 3)
    stop.set()
    for t in churners:
        t.join(WAIT)
    assert errors == []
    assert len(steady) == 3 * per_emitter
    assert bus.subscriber_count() == 1


# --------------------------------------------------------------------------- misspelt names


def test_a_misspelt_event_name_is_warned_about_once_per_name(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown names stay allowed (custom node messages), but one close to a known name is
    most likely a typo that would silently never fire."""
    monkeypatch.setattr(dispatch_module, "_warned_names", set())
    bus = EventBus()
    got: List[ev.Event] = []
    with caplog.at_level(logging.DEBUG, logger="comfysync.dispatch"):
        bus.on("progres", got.append)
        bus.on("progres", got.append)  # the same name again: no second warning
        bus.once("execution_sucess", got.append)
        bus.on("crystools.monitor", got.append)  # a custom node's message: nothing close
        for known in ("progress", "b_text", "execution_complete", "all", "*", "unknown",
                      "reconnecting", "auth_error", "progress_text"):
            bus.on(known, got.append)
        bus.on(ev.Progress, got.append)
    warnings = [(r.levelno, r.getMessage()) for r in caplog.records
                if r.name == "comfysync.dispatch"]
    assert warnings == [
        (logging.WARNING, "no event is called 'progres' — did you mean 'progress'?"),
        (logging.WARNING,
         "no event is called 'execution_sucess' — did you mean 'execution_success'?"),
    ]
    typo = ev.UnknownEvent("progres", {})
    bus.emit(typo)  # still subscribed: a server may really send such a message
    assert got.count(typo) == 2 + 3  # both "progres" subscriptions, "all", "*" and "unknown"
