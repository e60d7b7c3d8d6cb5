"""ComfyApi lifetime under stress, against FakeComfyUI: close() or a client-closing callback
during connect(), concurrent close(), a socket that will not come back (reconnect=False), a
server that dies for a while or for good, and a prompt the server queued with some outputs
refused. Every wait is bounded; the tests wait on events, never on sleeps."""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Dict, List, Tuple

import pytest
from _core_workflows import sleep_wf

from comfysync import ComfyApi, events
from comfysync.errors import (
    ComfyConnectionError,
    ComfyError,
    PromptLostError,
    PromptTimeoutError,
)
from comfysync.testing import FakeComfyUI

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


def client_threads(api: ComfyApi) -> List[threading.Thread]:
    mine = api.client_id[:8]
    return [t for t in threading.enumerate() if t.name.startswith("comfysync-") and mine in t.name]


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


# --------------------------------------------------------------------------- close() races


def test_close_from_an_auth_callback_during_connect(
    make_api: Callable[..., ComfyApi]
) -> None:
    """connect() used to emit auth_success while holding its lock: a callback closing the
    client deadlocked forever."""
    api = make_api(connect=False, token="secret")
    api.on("auth_success", lambda e: api.close())
    thread, out = run_in_thread(lambda: api.connect(timeout=WAIT))
    thread.join(WAIT)
    assert not thread.is_alive(), "connect() deadlocked"
    assert isinstance(out.get("error"), ComfyConnectionError)
    assert api.closed and client_threads(api) == []


def test_close_from_the_connected_callback(make_api: Callable[..., ComfyApi]) -> None:
    """The Connected callback runs on the listener thread while connect() waits for the
    greeting: closing there used to stall connect() until its timeout, after which it even
    reported the socket unusable and fell back to polling."""
    api = make_api(connect=False)
    api.on(events.Connected, lambda e: api.close())
    thread, out = run_in_thread(lambda: api.connect(timeout=30))
    thread.join(WAIT)  # well below connect's timeout
    assert not thread.is_alive(), "connect() waited for its timeout"
    error = out.get("error")
    assert isinstance(error, ComfyConnectionError) and "closed" in str(error)
    assert api.closed and client_threads(api) == []


def test_concurrent_close_returns_only_when_everything_stopped(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api()
    listener = api._events.listener
    assert listener is not None
    stopping = threading.Event()
    real_stop = listener.stop

    def stop(*args: Any, **kwargs: Any) -> None:
        stopping.set()
        real_stop(*args, **kwargs)

    monkeypatch.setattr(listener, "stop", stop)
    entered, release = threading.Event(), threading.Event()

    def slow(event: events.Event) -> None:  # keeps the listener thread busy
        entered.set()
        release.wait(WAIT)

    api.on("x.slow", slow)
    fake_server.send_unknown_message("x.slow", client_id=api.client_id)
    assert entered.wait(WAIT)
    listener_thread = next(t for t in client_threads(api) if "listener" in t.name)

    first, _ = run_in_thread(api.close)  # blocks joining the busy listener thread
    assert stopping.wait(WAIT)  # the first close() is under way
    alive_when_second_returned: List[bool] = []
    second, out = run_in_thread(
        lambda: (api.close(), alive_when_second_returned.append(listener_thread.is_alive()))
    )
    second.join(0.5)  # the second close() must still be waiting for the first one
    release.set()
    first.join(WAIT)
    second.join(WAIT)
    assert "error" not in out
    assert alive_when_second_returned == [False]
    assert client_threads(api) == []


# --------------------------------------------------------------------------- sockets that stay down


def test_no_reconnect_tracks_by_polling_after_a_drop(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    """With reconnect=False the socket never comes back: prompts must be followed over HTTP
    at once, not only by the (here 30 s) watchdog."""
    api = make_api(reconnect=False, watchdog=30.0)
    gone = threading.Event()
    api.on("reconnection_failed", lambda e: gone.set())
    job = api.submit(sleep_wf(0.2))
    fake_server.wait_for_running(job.prompt_id)
    fake_server.drop_websockets()
    assert gone.wait(WAIT)
    assert job.wait(WAIT).text == {"3": ["slept", "(1, 8, 8, 3)"]}
    assert "polling" in repr(api)
    assert api.run_workflow(sleep_wf(0.0, seed=1), timeout=WAIT).text["3"][0] == "slept"


@pytest.mark.parametrize("tracker", ["websocket", "http"])
def test_server_back_without_the_prompt_ends_an_unbounded_wait(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], tracker: str
) -> None:
    """wait() without a timeout while the server is down: reconciliation keeps retrying,
    and once the server answers again without the prompt, the wait ends with
    PromptLostError."""
    api = make_api(tracker, watchdog=30.0)
    job = api.submit(sleep_wf(30))
    fake_server.wait_for_running(job.prompt_id)
    restarter, out = run_in_thread(lambda: fake_server.restart(downtime=1.0))
    with pytest.raises(PromptLostError):
        job.wait()
    restarter.join(WAIT)
    assert "error" not in out and job.status == "lost"


def test_server_that_never_comes_back(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    """The documented behaviour: nothing can tell a dead server from a slow restart, so an
    unbounded wait() goes on (the listener and the tracker keep trying); wait(timeout)
    bounds it and keeps the job, and close() ends every wait."""
    api = make_api(watchdog=0.2)
    job = api.submit(sleep_wf(30))
    fake_server.wait_for_running(job.prompt_id)
    fake_server.stop()
    with pytest.raises(PromptTimeoutError):
        job.wait(0.5)
    assert not job.done() and job.status == "running"
    waiter, out = run_in_thread(job.wait)
    api.close()
    waiter.join(WAIT)
    assert isinstance(out.get("error"), ComfyConnectionError)
    assert client_threads(api) == []


# --------------------------------------------------------------------------- partial validation


@pytest.mark.parametrize("tracker", ["websocket", "http"])
def test_outputs_refused_at_queue_time_are_reported_on_the_result(
    make_api: Callable[..., ComfyApi], tracker: str
) -> None:
    """POST /prompt answers 200 with node_errors when only some outputs failed validation:
    the rest runs, and the result says which outputs were dropped."""
    api = make_api(tracker)
    wf = sleep_wf(0.0)
    wf["4"] = {"class_type": "ProbeText", "inputs": {"image": ["1", 0]}}  # no text: refused
    job = api.submit(wf)
    assert set(job.node_errors) == {"4"}
    result = job.wait(WAIT)
    assert set(result.outputs) == {"3"}
    assert set(result.node_errors) == {"4"}
    assert result.node_errors["4"]["class_type"] == "ProbeText"
    with pytest.raises(ComfyError):
        api.submit({"4": wf["4"], "1": wf["1"]})  # nothing valid left: refused outright


@pytest.mark.parametrize("tracker", ["websocket", "http"])
def test_close_from_a_future_callback(
    make_api: Callable[..., ComfyApi], tracker: str
) -> None:
    """Future callbacks run on the thread that ended the job (tracker or listener):
    close() there must neither deadlock nor leave a thread behind."""
    api = make_api(tracker)
    threads = client_threads(api)
    closed = threading.Event()

    def close_client(future: Any) -> None:
        api.close()
        closed.set()

    job = api.submit(sleep_wf(0.0))
    assert job.future is not None
    job.future.add_done_callback(close_client)
    assert closed.wait(WAIT)
    assert job.wait(WAIT).text["3"][0] == "slept"
    for thread in threads + client_threads(api):
        thread.join(WAIT)
    assert client_threads(api) == []


# --------------------------------------------------------------------------- unreachable server


@pytest.mark.parametrize("tracker", ["auto", "websocket"])
def test_an_unreachable_server_keeps_the_http_hint(tracker: str) -> None:
    """The socket fails first; connect() then asks over HTTP, whose message says what to
    check. It used to be dropped in favour of a bare "connection refused"."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ComfyConnectionError) as info:
        with ComfyApi(f"127.0.0.1:{port}", tracker=tracker):
            pass
    message = str(info.value)
    assert "is ComfyUI running" in message and "--listen/--port" in message
    assert f"ws://127.0.0.1:{port}/ws" in message  # the socket's failure is still named
    assert isinstance(info.value.__cause__, ComfyConnectionError)  # the HTTP error
    assert info.value.url is not None and str(port) in info.value.url


def test_a_refused_socket_with_working_http_names_the_socket(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    fake_server.refuse_websockets(None)
    api = make_api("websocket", connect=False)
    with pytest.raises(ComfyConnectionError) as info:
        api.connect(timeout=WAIT)
    assert "WebSocket" in str(info.value) and "is ComfyUI running" not in str(info.value)
    fake_server.accept_websockets()
