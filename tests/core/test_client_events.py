"""ComfyApi's event methods in the situations where they cannot work as asked: a closed
client, a callback on the listener thread, a client that was never connected, a misspelt
event name, a predicate that rejects every event. Against FakeComfyUI; every wait is bounded
and event-driven (a hook on the bus says when a wait is in place)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Tuple

import pytest
from _core_workflows import sleep_wf, text_wf

from comfysync import ComfyApi, events
from comfysync import _dispatch as dispatch_module
from comfysync.errors import ComfyConnectionError, ComfyTimeoutError
from comfysync.testing import FakeComfyUI

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


def run_in_thread(fn: Callable[[], Any]) -> Tuple[threading.Thread, Dict[str, Any]]:
    """Run ``fn`` on a daemon thread; the dict gets ``result`` or ``error``."""
    out: Dict[str, Any] = {}

    def go() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, out


def when_subscribed(api: ComfyApi, monkeypatch: pytest.MonkeyPatch, name: str) -> threading.Event:
    """An Event set once something subscribes to ``name`` on ``api``'s bus (a wait_for)."""
    bus = api._bus
    added = threading.Event()
    real_add = bus._add

    def add(key: Any, callback: Any, once: bool) -> Any:
        sub = real_add(key, callback, once)
        if sub.key == name:
            added.set()
        return sub

    monkeypatch.setattr(bus, "_add", add)
    return added


# --------------------------------------------------------------------------- closed client


def test_wait_for_on_a_closed_client_raises_at_once(make_api: Callable[..., ComfyApi]) -> None:
    """It used to wait forever with timeout=None: nothing would ever wake it."""
    api = make_api()
    api.close()
    thread, out = run_in_thread(lambda: api.wait_for("status", timeout=None))
    thread.join(WAIT)
    assert not thread.is_alive(), "wait_for() on a closed client hangs"
    error = out.get("error")
    assert isinstance(error, ComfyConnectionError) and "closed" in str(error)


def test_on_and_once_on_a_closed_client_raise(make_api: Callable[..., ComfyApi]) -> None:
    api = make_api()
    api.close()
    with pytest.raises(ComfyConnectionError, match="closed"):
        api.on("progress", print)
    with pytest.raises(ComfyConnectionError, match="closed"):
        api.once(events.Status, print)
    api.off("progress", print)  # removing is always allowed


def test_close_while_waiting_ends_the_wait(
    make_api: Callable[..., ComfyApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api()
    waiting = when_subscribed(api, monkeypatch, "x.never")
    thread, out = run_in_thread(lambda: api.wait_for("x.never", timeout=None))
    assert waiting.wait(WAIT)
    api.close()
    thread.join(WAIT)
    assert isinstance(out.get("error"), ComfyConnectionError)


# --------------------------------------------------------------------------- listener thread


def test_wait_for_inside_a_callback_raises_runtime_error(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    """The callback runs on the listener thread, the one that would deliver the awaited
    event: the wait can never end, so it is refused at once."""
    api = make_api()
    out: Dict[str, Any] = {}
    done = threading.Event()

    def callback(event: events.Event) -> None:
        try:
            out["result"] = api.wait_for("status", timeout=None)
        except BaseException as exc:  # reported by the test
            out["error"] = exc
        done.set()

    api.on("x.probe", callback)
    fake_server.send_unknown_message("x.probe", client_id=api.client_id)
    assert done.wait(WAIT), "wait_for() blocked the listener thread"
    error = out.get("error")
    assert isinstance(error, RuntimeError) and "listener thread" in str(error)
    # the listener goes on delivering events
    assert api.poll_status(timeout=5).queue_remaining == 0


# --------------------------------------------------------------------------- never connected


def test_wait_for_on_a_never_connected_client_says_so(make_api: Callable[..., ComfyApi]) -> None:
    api = make_api("auto", connect=False)
    with pytest.raises(ComfyConnectionError) as info:
        api.wait_for("status", timeout=30)  # used to time out after 30 s without a word
    assert str(info.value) == (
        "not connected: call api.connect() or use `with ComfyApi(...) as api`"
    )


def test_on_before_connect_is_allowed_and_sees_the_connection(
    make_api: Callable[..., ComfyApi]
) -> None:
    api = make_api("websocket", connect=False)
    connected = threading.Event()
    api.on(events.Connected, lambda e: connected.set())
    api.connect(timeout=WAIT)
    assert connected.wait(WAIT)


def test_wait_for_without_connect_is_allowed_with_the_http_tracker(
    make_api: Callable[..., ComfyApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tracker="http" there is no socket to open: poll_status() emits the events."""
    api = make_api("http", connect=False)
    waiting = when_subscribed(api, monkeypatch, "status")
    thread, out = run_in_thread(lambda: api.wait_for(events.Status, timeout=WAIT))
    assert waiting.wait(WAIT)
    status = api.poll_status(timeout=5)
    thread.join(WAIT)
    assert out.get("result") is status


# --------------------------------------------------------------------------- misspelt names


def test_api_on_warns_about_a_probable_typo(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatch_module, "_warned_names", set())
    api = make_api()
    custom = threading.Event()
    with caplog.at_level(logging.WARNING, logger="comfysync.dispatch"):
        api.on("progres", print)
        api.on("crystools.monitor", lambda e: custom.set())
    assert [r.getMessage() for r in caplog.records if r.name == "comfysync.dispatch"] == [
        "no event is called 'progres' — did you mean 'progress'?"
    ]
    fake_server.send_unknown_message("crystools.monitor", client_id=api.client_id)
    assert custom.wait(WAIT)  # unknown names keep working


# --------------------------------------------------------------------------- failing callbacks


@pytest.mark.parametrize("with_handler", [True, False])
def test_a_callback_failing_on_every_step_does_not_flood_the_log(
    make_api: Callable[..., ComfyApi], caplog: pytest.LogCaptureFixture, with_handler: bool
) -> None:
    handled: List[BaseException] = []
    handler = (lambda exc, event, cb: handled.append(exc)) if with_handler else None
    api = make_api(exception_handler=handler)

    def broken(event: events.Progress) -> None:
        raise ValueError("broken progress bar")

    with caplog.at_level(logging.DEBUG, logger="comfysync.dispatch"):
        result = api.run_workflow(text_wf(steps=5), timeout=WAIT, on_progress=broken)
    assert result.text["3"][0] == "hello"
    levels = [r.levelno for r in caplog.records if r.name == "comfysync.dispatch"]
    if with_handler:
        assert len(handled) == 5 and levels == [logging.DEBUG] * 5
    else:
        assert levels == [logging.ERROR] + [logging.WARNING] * 4


# --------------------------------------------------------------------------- the README example


def test_the_readme_wait_for_example(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submit, then wait for that prompt's execution_success. The server is held until the
    wait is in place, so the run cannot end before it (only later events count)."""
    api = make_api()
    fake_server.pause()
    job = api.submit(sleep_wf(0.0))
    waiting = when_subscribed(api, monkeypatch, "execution_success")

    def resume_once_waiting() -> None:
        if waiting.wait(WAIT):
            fake_server.resume()

    resumer = threading.Thread(target=resume_once_waiting)
    resumer.start()
    done = api.wait_for(events.ExecutionSuccess, lambda ev: ev.prompt_id == job.prompt_id,
                        timeout=WAIT)
    resumer.join(WAIT)
    assert done.prompt_id == job.prompt_id
    assert job.wait(WAIT).text["3"][0] == "slept"


def test_a_wait_whose_predicate_rejects_everything_says_so(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api()
    waiting = when_subscribed(api, monkeypatch, "status")
    thread, out = run_in_thread(
        lambda: api.wait_for("status", lambda ev: ev.queue_remaining == 99, timeout=2.0)
    )
    assert waiting.wait(WAIT)
    api.poll_status(timeout=5)  # emits a status event (queue_remaining 0) to every waiter
    thread.join(WAIT)
    error = out.get("error")
    assert isinstance(error, ComfyTimeoutError)
    assert str(error).startswith("no matching 'status' event within 2 s: ")
    assert "'status' event" in str(error) and "rejected" in str(error)


@pytest.mark.parametrize("where", ["event callback", "future callback"])
def test_job_wait_on_a_delivering_thread_is_refused(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], where: str
) -> None:
    """job.wait() on the listener thread (event callbacks) or the tracker thread (future
    callbacks) could never see the job end: it is refused at once, never a silent hang."""
    api = make_api()
    fake_server.pause()
    first = api.submit(text_wf("first"))
    other = api.submit(sleep_wf(0.5, text="other"))  # runs after first: not ended meanwhile
    out: Dict[str, Any] = {}
    done = threading.Event()

    def try_wait(_: object) -> None:
        try:
            out["result"] = other.wait(timeout=None)
        except BaseException as exc:  # reported by the test
            out["error"] = exc
        done.set()

    if where == "event callback":
        api.on("x.probe", try_wait)
        fake_server.send_unknown_message("x.probe", client_id=api.client_id)
    else:
        first.future.add_done_callback(try_wait)
        fake_server.resume()
    assert done.wait(WAIT), "job.wait() blocked a delivering thread"
    error = out.get("error")
    assert isinstance(error, RuntimeError) and "callback" in str(error)
    fake_server.resume()
    assert other.wait(WAIT).text["3"][0] == "other"


def test_run_workflow_from_a_callback_is_refused_before_posting(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    """run_workflow() inside an event callback could never get its result: refused before
    the prompt is posted, so nothing is left running on the server."""
    api = make_api()
    out: Dict[str, Any] = {}
    done = threading.Event()

    def callback(_: object) -> None:
        try:
            api.run_workflow(text_wf("never"), timeout=5)
        except BaseException as exc:  # reported by the test
            out["error"] = exc
        done.set()

    api.on("x.probe", callback)
    fake_server.send_unknown_message("x.probe", client_id=api.client_id)
    assert done.wait(WAIT)
    assert isinstance(out.get("error"), RuntimeError)
    posts = [r for r in fake_server.requests if r.method == "POST" and r.path.endswith("/prompt")]
    assert posts == []
