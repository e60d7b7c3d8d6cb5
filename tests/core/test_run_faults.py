"""Runs that meet trouble, against FakeComfyUI's fault injection: cancel, deletion by another
client, dropped sockets, a completion during an outage, a restarted server, a socket that
cannot be opened, hostile output file names. Every wait is bounded."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
import requests
from _core_workflows import sleep_wf

from comfysync import ComfyApi, events
from comfysync.errors import (
    ComfyConnectionError,
    PromptInterruptedError,
    PromptLostError,
    UnsafePathError,
)
from comfysync.testing import FakeComfyUI

pytestmark = pytest.mark.timeout(60)

TRACKERS = ["websocket", "http"]
JOBS_API = [
    pytest.param(False, id="queue+interrupt"),
    pytest.param(True, id="jobs-api", marks=pytest.mark.comfy_server_options(jobs_api=True)),
]


def assert_cancel_route(server: FakeComfyUI, jobs_api: bool) -> None:
    posted = [r.path.replace("/api/api/", "/api/") for r in server.requests
              if r.method == "POST"]
    if jobs_api:
        # the one-job route of the jobs API, /api/jobs/{id}/cancel
        assert any(p.startswith("/api/jobs/") and p.endswith("/cancel") and p != "/api/jobs/cancel"
                   for p in posted)
        assert "/interrupt" not in posted
    else:
        assert "/queue" in posted and "/interrupt" in posted


@pytest.mark.parametrize("jobs_api", JOBS_API)
@pytest.mark.parametrize("tracker", TRACKERS)
def test_cancel_pending(fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi],
                        tracker: str, jobs_api: bool) -> None:
    assert fake_server.jobs_api is jobs_api
    api = make_api(tracker)
    fake_server.pause()
    job = api.submit(sleep_wf(0.01))
    assert job.cancel() is True
    # confirmed with the server before cancel() returned: no "pending" left behind
    assert job.status == "interrupted" and job.done()
    with pytest.raises(PromptInterruptedError) as info:
        job.wait(0)
    assert info.value.cancelled is True and info.value.node_id is None
    assert str(info.value) == (
        f"prompt {job.prompt_id} was cancelled (removed from the queue before it ran)"
    )
    assert job.future.exception(0) is info.value
    running, pending = fake_server.queue_state()
    assert running == [] and pending == []
    assert job.cancel() is False
    assert_cancel_route(fake_server, jobs_api)
    fake_server.resume()


@pytest.mark.parametrize("jobs_api", JOBS_API)
@pytest.mark.parametrize("tracker", TRACKERS)
def test_cancel_running(fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi],
                        tracker: str, jobs_api: bool) -> None:
    api = make_api(tracker)
    job = api.submit(sleep_wf(30))
    fake_server.wait_for_running(job.prompt_id)
    assert job.cancel() is True
    with pytest.raises(PromptInterruptedError) as info:
        job.wait(10)
    assert info.value.node_id in ("1", "2") and job.status == "interrupted"
    assert info.value.cancelled is True
    assert str(info.value).startswith(f"prompt {job.prompt_id} was cancelled: interrupted in ")
    assert_cancel_route(fake_server, jobs_api)
    fake_server.wait_for_idle()


@pytest.mark.parametrize("tracker", TRACKERS)
def test_deleted_from_queue_by_another_client_is_lost(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], tracker: str
) -> None:
    api = make_api(tracker)
    fake_server.pause()
    job = api.submit(sleep_wf(0.01))
    other = requests.post(f"{fake_server.url}/queue", json={"delete": [job.prompt_id]},
                          timeout=10)
    assert other.status_code == 200
    with pytest.raises(PromptLostError) as info:
        job.wait(10)
    assert info.value.prompt_id == job.prompt_id and job.status == "lost"
    fake_server.resume()


def test_socket_dropped_mid_run_still_returns_the_result(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    api = make_api(watchdog=30.0)  # the reconnect alone must be enough
    back = threading.Event()
    api.on(events.Reconnected, lambda e: back.set())
    job = api.submit(sleep_wf(0.3))
    fake_server.wait_for_running(job.prompt_id)
    fake_server.drop_websockets()
    assert back.wait(10)
    result = job.wait(20)
    assert result.text == {"3": ["slept", "(1, 8, 8, 3)"]}


def test_completion_while_the_socket_is_down(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    api = make_api(watchdog=30.0)  # no watchdog help: reconciliation after reconnect
    job = api.submit(sleep_wf(0.2, text="during outage"))
    fake_server.wait_for_running(job.prompt_id)
    fake_server.refuse_websockets(None)
    fake_server.drop_websockets()
    fake_server.wait_until(lambda: job.prompt_id in fake_server.history(), 10)
    assert not job.done()  # the end happened while nobody listened
    fake_server.accept_websockets()
    result = job.wait(20)
    assert result.text == {"3": ["during outage", "(1, 8, 8, 3)"]}
    assert result.raw is not None and result.raw["status"]["status_str"] == "success"


@pytest.mark.parametrize("tracker", TRACKERS)
def test_server_restart_mid_run_is_lost(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], tracker: str
) -> None:
    api = make_api(tracker)
    job = api.submit(sleep_wf(30))
    fake_server.wait_for_running(job.prompt_id)
    fake_server.restart()
    with pytest.raises(PromptLostError):
        job.wait(15)
    assert job.status == "lost"
    # the client keeps working against the restarted server
    assert api.run_workflow(sleep_wf(0.0, seed=1), timeout=20).text["3"][0] == "slept"


def test_auto_falls_back_to_polling_when_the_socket_is_refused(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    fake_server.refuse_websockets(None)
    strict = make_api("websocket", connect=False)
    with pytest.raises(ComfyConnectionError):
        strict.connect(timeout=5)
    api = make_api("auto")
    assert "polling" in repr(api) and not api.connected
    assert api.run_workflow(sleep_wf(0.0, seed=2), timeout=20).text["3"][0] == "slept"


def test_listener_giving_up_switches_to_polling(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    api = make_api(max_reconnect_attempts=2, backoff_base=0.01, backoff_cap=0.02)
    gave_up = threading.Event()
    api.on("reconnection_failed", lambda e: gave_up.set())
    fake_server.refuse_websockets(None)
    fake_server.drop_websockets()
    assert gave_up.wait(10)
    assert "polling" in repr(api)
    assert api.run_workflow(sleep_wf(0.0, seed=3), timeout=20).text["3"][0] == "slept"


HOSTILE = ["../../evil.png", "/tmp/abs_evil.png", "..\\..\\win_evil.png", "a/../../up.png"]


class HostileSave:
    """An output node whose UI lists file names a hostile server could send."""

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "test"

    @classmethod
    def INPUT_TYPES(cls) -> Dict[str, Any]:
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 100})}}

    def run(self, seed: int) -> Dict[str, Any]:
        items = [{"filename": n, "subfolder": "../..", "type": "output"} for n in HOSTILE]
        items.append({"filename": "..", "subfolder": "", "type": "output"})
        return {"ui": {"images": items}}


@pytest.mark.parametrize("tracker", TRACKERS)
def test_hostile_output_names_never_escape(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], tmp_path: Path, tracker: str
) -> None:
    fake_server.register_node("HostileSave", HostileSave)
    api = make_api(tracker)
    result = api.run_workflow({"1": {"class_type": "HostileSave", "inputs": {"seed": 1}}},
                              timeout=20)
    assert [f.filename for f in result.files] == HOSTILE + [".."]
    fake_server.fail_route("/view", 200, b"payload")  # a server that serves anything
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    saved = [f.save(out) for f in result.files[:-1]]
    assert all(p.parent == out.resolve() for p in saved)
    assert sorted(p.name for p in out.iterdir()) == ["abs_evil.png", "evil.png", "up.png",
                                                      "win_evil.png"]
    with pytest.raises(UnsafePathError):
        result.files[-1].save(out)
    everything = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert everything == ["deep", "deep/out"] + [f"deep/out/{p.name}" for p in sorted(
        out.iterdir())]
    assert not Path("/tmp/abs_evil.png").exists()
