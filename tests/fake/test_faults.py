"""FakeComfyUI's lifecycle and fault injection: each method, bounded and deterministic."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict

import pytest
import requests
import websocket

from comfysync.testing import FakeComfyUI

from .driver import WsClient, barrier, post_prompt, run_prompt


def sleeper(seconds: float = 30.0, seed: int = 1) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": seed}},
        "3": {"class_type": "ProbeText", "inputs": {"text": "s", "image": ["2", 0]}},
    }


def port_is_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


# ------------------------------------------------------------------- lifecycle
def test_stop_leaves_no_thread_socket_or_folder() -> None:
    before = set(threading.enumerate())  # may hold threads of earlier tests, still ending
    server = FakeComfyUI()
    root = server.dirs.root
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        ws = WsClient(server.ws_url())
        prompt_id = post_prompt(server.url, sleeper(), ws.sid).json()["prompt_id"]
        server.wait_for_running(prompt_id)
        port = server.port
        # A file served from disk: aiohttp reads it on the loop's executor threads.
        (server.dirs.input / "in.txt").write_text("x")
        view = requests.get(f"{server.url}/view", params={"filename": "in.txt", "type": "input"},
                            timeout=10)
        assert view.content == b"x"
    ws.wait_closed()
    ws.close()
    assert set(threading.enumerate()) - before == set()  # every thread it started is joined
    assert port_is_closed(port)
    assert not root.exists()
    server.stop()  # idempotent


def test_given_workdir_is_kept(tmp_path: Path) -> None:
    with FakeComfyUI(workdir=tmp_path) as server:
        assert server.dirs.input == tmp_path.resolve() / "input"
    assert (tmp_path / "output").is_dir()
    assert "stopped" in repr(server)


def test_fixed_port_and_restartable_object() -> None:
    with FakeComfyUI() as first:
        port = first.port
    with FakeComfyUI(port=port) as second:
        assert second.port == port
        assert requests.get(f"{second.url}/prompt", timeout=5).status_code == 200


def test_wait_until_times_out(fake_server: FakeComfyUI) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        fake_server.wait_until(lambda: False, timeout=0.2)
    assert time.monotonic() - started < 2
    with pytest.raises(TimeoutError):
        fake_server.wait_for_client("nobody", timeout=0.1)


def test_client_ids_and_wait_for_client(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url(), client_id="me"):
        fake_server.wait_for_client("me", timeout=5)
        assert fake_server.client_ids() == ["me"]
    fake_server.wait_until(lambda: fake_server.client_ids() == [], timeout=5)


def test_pause_holds_prompts_pending(fake_server: FakeComfyUI) -> None:
    fake_server.pause()
    prompt_id = post_prompt(fake_server.url, sleeper(0.0)).json()["prompt_id"]
    running, pending = fake_server.queue_state()
    assert running == [] and [p[1] for p in pending] == [prompt_id]
    assert not fake_server.is_idle()
    fake_server.resume()
    fake_server.wait_for_idle()
    assert prompt_id in fake_server.history()


# ---------------------------------------------------------------------- faults
@pytest.mark.parametrize("abrupt", [False, True])
def test_drop_websockets(fake_server: FakeComfyUI, abrupt: bool) -> None:
    a, b = WsClient(fake_server.ws_url()), WsClient(fake_server.ws_url())
    fake_server.drop_websockets(abrupt=abrupt)
    a.wait_closed()
    b.wait_closed()
    assert fake_server.client_ids() == []
    with WsClient(fake_server.ws_url(), client_id=a.sid) as again:
        assert again.sid == a.sid
    a.close()
    b.close()


def test_refuse_websockets_count_then_all(fake_server: FakeComfyUI) -> None:
    fake_server.refuse_websockets(2)
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            WsClient(fake_server.ws_url())
        assert info.value.status_code == 403
    WsClient(fake_server.ws_url()).close()
    fake_server.refuse_websockets(None)
    for _ in range(3):
        with pytest.raises(websocket.WebSocketBadStatusException):
            WsClient(fake_server.ws_url())
    fake_server.accept_websockets()
    WsClient(fake_server.ws_url()).close()
    assert requests.get(f"{fake_server.url}/prompt", timeout=5).status_code == 200


def test_restart_loses_queue_and_running_prompt_keeps_history(fake_server: FakeComfyUI) -> None:
    ws = WsClient(fake_server.ws_url())
    kept = run_prompt(fake_server.url, ws, sleeper(0.0, seed=5))
    running = post_prompt(fake_server.url, sleeper(30.0), ws.sid).json()["prompt_id"]
    pending = post_prompt(fake_server.url, sleeper(0.0, seed=9), ws.sid).json()["prompt_id"]
    fake_server.wait_for_running(running)
    port = fake_server.port
    fake_server.restart()
    ws.wait_closed()
    ws.close()
    assert fake_server.port == port
    fake_server.wait_for_idle()
    history = requests.get(f"{fake_server.url}/history", timeout=5).json()
    assert list(history) == [kept]
    assert running not in history and pending not in history
    assert requests.get(f"{fake_server.url}/queue", timeout=5).json() == \
        {"queue_running": [], "queue_pending": []}
    with WsClient(fake_server.ws_url(), client_id=ws.sid) as again:
        assert again.messages("status")[0]["data"]["status"]["exec_info"]["queue_remaining"] == 0
        first = post_prompt(fake_server.url, sleeper(0.0, seed=5), again.sid).json()
        assert first["number"] == 0  # the priority counter starts over
        again.wait_done(first["prompt_id"])
        cached = again.messages("execution_cached")[0]["data"]["nodes"]
        assert cached == []  # caches are gone too
        assert "executing" in again.types()


def test_restart_with_downtime_refuses_connections(fake_server: FakeComfyUI) -> None:
    thread = threading.Thread(target=fake_server.restart, kwargs={"downtime": 1.0})
    thread.start()
    fake_server.wait_until(lambda: not fake_server.accepting, timeout=5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", fake_server.port), timeout=1)
    thread.join(10)
    assert fake_server.accepting
    assert requests.get(f"{fake_server.url}/prompt", timeout=5).status_code == 200


def test_set_delay(fake_server: FakeComfyUI) -> None:
    # A delay well above what a loopback request takes even on a loaded CI machine, so the
    # undelayed request after clear_faults() is told apart from a delayed one by its time.
    fake_server.set_delay(1.0)
    started = time.monotonic()
    assert requests.get(f"{fake_server.url}/prompt", timeout=5).status_code == 200
    assert time.monotonic() - started >= 1.0
    fake_server.clear_faults()
    started = time.monotonic()
    requests.get(f"{fake_server.url}/prompt", timeout=5)
    assert time.monotonic() - started < 1.0


def test_fail_route(fake_server: FakeComfyUI) -> None:
    url = fake_server.url
    fake_server.fail_route("/prompt", 503, {"error": "busy"}, times=2, method="POST")
    for _ in range(2):
        r = post_prompt(url, sleeper(0.0))
        assert r.status_code == 503 and r.json() == {"error": "busy"}
    assert post_prompt(url, sleeper(0.0)).status_code == 200
    fake_server.fail_route("/history", 500, "boom")
    for path in ("/history", "/api/history"):
        r = requests.get(url + path, timeout=5)
        assert r.status_code == 500 and r.text == "boom"
    fake_server.fail_route("/ws", 502)
    with pytest.raises(websocket.WebSocketBadStatusException):
        WsClient(fake_server.ws_url())
    fake_server.clear_faults()
    assert requests.get(f"{url}/history", timeout=5).status_code == 200
    WsClient(fake_server.ws_url()).close()
    fake_server.wait_for_idle()


def test_malformed_truncated_and_unknown_messages(fake_server: FakeComfyUI) -> None:
    with WsClient(fake_server.ws_url()) as a, WsClient(fake_server.ws_url()) as b:
        fake_server.send_malformed_json()
        fake_server.send_truncated_binary(client_id=a.sid)
        fake_server.send_unknown_message(data={"k": 1}, client_id=b.sid)
        fake_server.send_unknown_message("y.other")
        barrier(fake_server, a, b)
        assert [f[0] for f in a.snapshot()[1:]] == ["raw", "binary", "text"]
        assert a.snapshot()[2] == ("binary", b"\x00\x00")
        assert b.types()[1:] == ["raw", "x.custom", "y.other"]
        assert b.messages("x.custom")[0]["data"] == {"k": 1}


def test_request_log_records_headers(fake_server: FakeComfyUI) -> None:
    requests.get(f"{fake_server.url}/queue", headers={"Authorization": "Bearer t"}, timeout=5)
    record = fake_server.requests[-1]
    assert (record.method, record.path) == ("GET", "/queue")
    assert record.headers["Authorization"] == "Bearer t"


def test_plugin_fixture_is_fresh_per_test(comfy_server: FakeComfyUI,
                                          fake_server: FakeComfyUI) -> None:
    assert comfy_server is fake_server
    assert comfy_server.history() == {}
