"""run_workflow / submit / PromptJob against FakeComfyUI: normal, cached, failing, rejected,
interrupted and timed-out runs, many threads, close(), the seed-compatible entry points.
Parametrized over both trackers where the scenario applies to both."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from _core_workflows import sleep_wf, text_wf

from comfysync import (
    ComfyApi,
    PromptJob,
    PromptResult,
    create_client,
    events,
    utils,
)
from comfysync._ws import listener as listener_module
from comfysync.errors import (
    ComfyConnectionError,
    ComfyHTTPError,
    PromptExecutionError,
    PromptInterruptedError,
    PromptTimeoutError,
    PromptValidationError,
)
from comfysync.testing import FakeComfyUI

pytestmark = pytest.mark.timeout(60)

TRACKERS = ["websocket", "http"]


@pytest.mark.parametrize("flavour", ["metadata", "legacy"])
def test_run_with_progress_and_previews(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi],
    monkeypatch: pytest.MonkeyPatch, flavour: str,
) -> None:
    if flavour == "legacy":  # a client that does not negotiate type-4 previews
        monkeypatch.setattr(listener_module, "DEFAULT_FEATURE_FLAGS", {})
    api = make_api()
    progress: List[events.Progress] = []
    previews: List[events.Preview] = []
    seen: List[events.Event] = []
    everything: List[events.Event] = []
    api.on("*", everything.append)
    fake_server.pause()  # so job.on() below is in place before the prompt starts
    job = api.submit(text_wf(steps=3, delay_ms=5, preview="JPEG", save=True),
                     on_progress=progress.append, on_preview=previews.append)
    job.on("*", seen.append)
    assert job.status == "pending" and not job.done()
    fake_server.resume()
    result = job.wait(timeout=30)

    assert isinstance(result, PromptResult) and result.status == "success"
    assert result.prompt_id == job.prompt_id and job.status == "success" and job.done()
    assert [(p.value, p.max, p.node) for p in progress] == [(1, 3, "2"), (2, 3, "2"), (3, 3, "2")]
    assert len(previews) == 3
    assert all(p.prompt_id == job.prompt_id and p.mime_type == "image/jpeg" for p in previews)
    assert {p.event_type for p in previews} == ({4} if flavour == "metadata" else {1})
    assert all(p.image[:2] == b"\xff\xd8" for p in previews)
    assert all(e.prompt_id == job.prompt_id for e in seen)
    kinds = [e.type for e in seen]
    assert kinds[0] == "execution_start" and "executed" in kinds and "execution_success" in kinds
    assert [e for e in everything if isinstance(e, events.Progress)] == progress  # global view

    assert result.text == {"3": ["hello", "(1, 8, 8, 3)"]}
    assert [(f.node_id, f.subfolder, f.type) for f in result.images] == [("4", "core", "output")]
    assert result.files == result.images  # previews are never outputs
    assert result.images[0].read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.duration is not None and result.duration >= 0
    assert result.started_at is not None and result.cached_nodes == ()
    final = job.progress
    assert final.nodes_done == final.nodes_total == 4 and final.fraction == 1.0
    assert final.preview is previews[-1]


@pytest.mark.parametrize("tracker", TRACKERS)
def test_fully_cached_run(make_api: Callable[..., ComfyApi], tracker: str) -> None:
    api = make_api(tracker)
    wf = text_wf("cached", save=True)
    first = api.run_workflow(wf, timeout=30)
    second = api.run_workflow(wf, timeout=30)
    assert set(second.cached_nodes) == {"1", "2", "3", "4"}
    assert second.text == first.text == {"3": ["cached", "(1, 8, 8, 3)"]}
    assert [f.filename for f in second.images] == [f.filename for f in first.images]


@pytest.mark.parametrize("tracker", TRACKERS)
def test_execution_error(make_api: Callable[..., ComfyApi], tracker: str) -> None:
    api = make_api(tracker)
    wf = text_wf()
    wf["2"] = {"class_type": "ProbeFail", "inputs": {"image": ["1", 0], "message": "boom"}}
    job = api.submit(wf)
    with pytest.raises(PromptExecutionError) as info:
        job.wait(30)
    err = info.value
    assert (err.prompt_id, err.node_id, err.node_type) == (job.prompt_id, "2", "ProbeFail")
    assert err.exception_type == "RuntimeError" and err.exception_message == "boom"
    assert err.traceback and "boom" in str(err)
    assert job.status == "error"
    assert job.future is not None and job.future.exception(0) is err


@pytest.mark.parametrize("tracker", TRACKERS)
def test_validation_error_unregisters(make_api: Callable[..., ComfyApi], tracker: str) -> None:
    api = make_api(tracker)
    with pytest.raises(PromptValidationError) as info:
        api.submit(sleep_wf(-1.0))
    assert "2" in info.value.node_errors
    with pytest.raises(PromptValidationError):
        api.run_workflow({"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert not api._tracker.has_unfinished()


@pytest.mark.parametrize("tracker", TRACKERS)
def test_interrupt_running(fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi],
                           tracker: str) -> None:
    api = make_api(tracker)
    job = api.submit(sleep_wf(30))
    fake_server.wait_for_running(job.prompt_id)
    api.interrupt(job.prompt_id)
    with pytest.raises(PromptInterruptedError) as info:
        job.wait(20)
    assert info.value.node_id in ("1", "2") and job.status == "interrupted"
    assert info.value.cancelled is False  # not by job.cancel()
    assert "was interrupted in node" in str(info.value)


@pytest.mark.parametrize("tracker", TRACKERS)
def test_timeout_then_later_wait(fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi],
                                 tracker: str) -> None:
    api = make_api(tracker)
    fake_server.pause()
    with pytest.raises(PromptTimeoutError) as info:
        api.run_workflow(text_wf("late"), timeout=0.1)
    assert info.value.timeout == 0.1
    job = api.submit(text_wf("later"))
    with pytest.raises(PromptTimeoutError) as later:
        job.wait(0.05)
    assert later.value.job is job
    fake_server.resume()
    assert job.wait(30).text["3"][0] == "later"


@pytest.mark.parametrize("tracker", TRACKERS)
def test_a_timed_out_run_can_be_cancelled_through_its_error(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], tracker: str
) -> None:
    """PromptTimeoutError from run_workflow carries the job, so the caller can cancel the
    prompt it no longer waits for."""
    api = make_api(tracker)
    fake_server.pause()
    with pytest.raises(PromptTimeoutError) as info:
        api.run_workflow(text_wf("abandoned"), timeout=0.05)
    job = info.value.job
    assert isinstance(job, PromptJob) and job.prompt_id == info.value.prompt_id
    assert job.cancel() is True and job.status == "interrupted"
    assert fake_server.queue_state() == ([], [])
    fake_server.resume()


@pytest.mark.parametrize("tracker", TRACKERS)
def test_many_threads_no_cross_talk(make_api: Callable[..., ComfyApi], tracker: str) -> None:
    api = make_api(tracker)
    results: Dict[int, PromptResult] = {}
    stray: List[str] = []
    errors: List[BaseException] = []

    def worker(i: int) -> None:
        try:
            own: List[events.Event] = []
            job = api.submit(text_wf(f"t{i}", steps=1, seed=i), on_progress=own.append)
            results[i] = job.wait(60)
            stray.extend(e.prompt_id or "?" for e in own if e.prompt_id != job.prompt_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert errors == [] and stray == []
    assert sorted(results) == list(range(50))
    for i, result in results.items():
        assert result.text == {"3": [f"t{i}", "(1, 8, 8, 3)"]}
    assert len({r.prompt_id for r in results.values()}) == 50


@pytest.mark.parametrize("tracker", TRACKERS)
def test_close_leaves_no_thread(fake_server: FakeComfyUI, tracker: str) -> None:
    api = ComfyApi(fake_server.url, tracker=tracker)
    mine = api.client_id[:8]
    with api:
        api.run_workflow(text_wf("x"), timeout=30)
        fake_server.pause()
        job = api.submit(text_wf("never"))
        assert any(mine in t.name for t in threading.enumerate())
    assert [t.name for t in threading.enumerate() if mine in t.name] == []
    with pytest.raises(ComfyConnectionError):
        job.wait(5)
    api.close()  # idempotent
    fake_server.resume()


def test_poll_status_emits_status(fake_server: FakeComfyUI,
                                  make_api: Callable[..., ComfyApi]) -> None:
    api = make_api("http")
    got: List[events.Status] = []
    api.on(events.Status, got.append)
    status = api.poll_status(timeout=5)
    assert status.queue_remaining == 0 and got == [status]


def test_auth_events_on_connect(fake_server: FakeComfyUI) -> None:
    ok: List[events.Event] = []
    with ComfyApi(fake_server.url, token="secret-token") as api:
        pass
    api2 = ComfyApi(fake_server.url, token="secret-token")
    api2.on("auth_success", ok.append)
    api2.connect(timeout=10)
    api2.close()
    assert [e.type for e in ok] == ["auth_success"]
    refused: List[events.AuthError] = []
    fake_server.fail_route("/prompt", 401, {"error": "no"}, times=1, method="GET")
    api3 = ComfyApi(fake_server.url, auth=("user", "pw"))
    api3.on(events.AuthError, refused.append)
    with pytest.raises(ComfyHTTPError) as info:
        api3.connect(timeout=10)
    api3.close()
    assert info.value.status == 401 and [e.status for e in refused] == [401]
    assert "secret-token" not in repr(api) and "pw" not in repr(api3)


@pytest.mark.parametrize("tracker", ["websocket", "http", None])
def test_seed_compatible_entry_points(fake_server: FakeComfyUI, tmp_path: Path,
                                      tracker: Any) -> None:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(text_wf("seed", save=True)))
    with create_client(fake_server.url, start_state_tracker=tracker) as client:
        if tracker is None:
            deferred = client.submit_workflow(utils.read_json(path), return_future=False)
            assert deferred.future is None  # the seed API's contract
            assert repr(deferred).startswith(f"<PromptJob {deferred.prompt_id} ")
            result = client.fetch_results(deferred, timeout=30)
            assert deferred.status == "success"
        else:
            prompt = client.submit_workflow(utils.read_json(path))
            assert isinstance(prompt, PromptJob)
            result = prompt.future.result(timeout=30)
        image = result.output_images[0].image
        assert image.size == (8, 8)
        assert result.text["3"][0] == "seed"


def test_saving_outputs_into_a_new_directory(make_api: Callable[..., ComfyApi],
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """save("out") with no ./out yet creates the directory (it used to write a file named
    "out"); save_all keeps the server basenames."""
    api = make_api()
    result = api.run_workflow(text_wf("files", save=True), timeout=30)
    image = result.images[0]
    monkeypatch.chdir(tmp_path)
    saved = image.save("out")
    assert saved.resolve() == (tmp_path / "out" / Path(image.filename).name).resolve()
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    exact = image.save(tmp_path / "named" / "cover.png")
    assert exact.read_bytes() == saved.read_bytes()
    assert [p.name for p in result.save_all(tmp_path / "all")] == [Path(image.filename).name]


BAD_TIMEOUTS = [
    pytest.param("10", TypeError, id="str"),
    pytest.param(True, TypeError, id="bool"),
    pytest.param([1], TypeError, id="list"),
    pytest.param(-1, ValueError, id="negative"),
    pytest.param(float("nan"), ValueError, id="nan"),
]


@pytest.mark.parametrize("bad, error", BAD_TIMEOUTS)
@pytest.mark.parametrize("tracker", TRACKERS)
def test_a_bad_timeout_is_refused_before_anything_is_sent(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], tracker: str,
    bad: Any, error: type,
) -> None:
    """run_workflow(timeout="10") used to post the prompt and then fail in threading;
    timeout=-1 posted it and raised PromptTimeoutError."""
    api = make_api(tracker)
    with pytest.raises(error, match="timeout"):
        api.run_workflow(text_wf("never sent"), timeout=bad)
    assert [r.path for r in fake_server.requests if r.method == "POST"] == []
    assert not api._tracker.has_unfinished()
    with pytest.raises(error, match="timeout"):
        api.wait_for("status", timeout=bad)
    fake_server.pause()
    job = api.submit(text_wf("waited"))
    with pytest.raises(error, match="timeout"):
        job.wait(bad)
    fake_server.resume()
    assert job.wait(float("inf")).text["3"][0] == "waited"  # inf: no limit
    assert job.wait(0).text["3"][0] == "waited"  # 0: a look, done by now
