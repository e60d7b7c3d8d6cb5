"""``ComfyApi`` on the Comfy API v2: the same calls as on a native server, through a real v2
implementation (comfy-api-proxy before a FakeComfyUI)."""

from __future__ import annotations

import io
import threading
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from PIL import Image

from comfysync import ComfyApi
from comfysync import events as ev
from comfysync._v2.sse import EventMapper
from comfysync._v2.stream import abort
from comfysync.errors import (
    PromptExecutionError,
    PromptInterruptedError,
    PromptLostError,
    UnsupportedError,
    WorkflowFormatError,
)
from comfysync.testing import FakeComfyUI

from .conftest import Proxy

WAIT = 30.0


def image_wf(seed: int = 0, *, seconds: float = 0.0, fail: bool = False,
             steps: int = 3, delay_ms: int = 0) -> Dict[str, Any]:
    """Empty image → progress (``steps``, previews) → optional sleep / failure → SaveImage."""
    wf: Dict[str, Any] = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0x336699}},
        "2": {"class_type": "ProbeProgress",
              "inputs": {"image": ["1", 0], "steps": steps, "delay_ms": delay_ms, "preview": "JPEG",
                         "seed": seed}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0],
                                                   "filename_prefix": f"v2/run{seed}"}},
    }
    if fail:
        wf["3"] = {"class_type": "ProbeFail", "inputs": {"image": ["2", 0], "message": "boom"}}
    else:
        wf["3"] = {"class_type": "ProbeSleep",
                   "inputs": {"image": ["2", 0], "seconds": seconds, "seed": seed}}
    return wf


@pytest.fixture
def api(proxy: Proxy) -> Iterator[ComfyApi]:
    with ComfyApi(proxy.url) as client:
        yield client


def test_auto_detects_v2_and_runs_with_progress(api: ComfyApi, tmp_path: Path) -> None:
    assert "surface=v2" in repr(api)
    progress: List[ev.Progress] = []
    result = api.run_workflow(image_wf(1, steps=4, delay_ms=250), timeout=WAIT,
                              on_progress=progress.append)
    assert result.status == "success" and result.prompt_id
    [image] = result.images
    assert image.node_id == "4" and image.filename.endswith(".png")
    assert image.read().startswith(b"\x89PNG")
    saved = image.save(tmp_path)
    assert saved.parent == tmp_path and saved.read_bytes().startswith(b"\x89PNG")
    assert progress and all(p.prompt_id == result.prompt_id for p in progress)


def test_a_cached_run_completes(api: ComfyApi) -> None:
    first = api.run_workflow(image_wf(2), timeout=WAIT)
    again = api.run_workflow(image_wf(2), timeout=WAIT)
    assert again.status == "success" and again.prompt_id != first.prompt_id
    assert [f.filename for f in again.files] == [f.filename for f in first.files]


def test_execution_error_names_the_node(api: ComfyApi) -> None:
    with pytest.raises(PromptExecutionError) as info:
        api.run_workflow(image_wf(3, fail=True), timeout=WAIT)
    assert info.value.node_id == "3" and info.value.node_type == "ProbeFail"
    assert "boom" in str(info.value)


def test_cancel_a_pending_job(api: ComfyApi, upstream: FakeComfyUI) -> None:
    upstream.pause()
    try:
        running = api.submit(image_wf(4))
        pending = api.submit(image_wf(5))
        assert pending.cancel() is True
        with pytest.raises(PromptInterruptedError) as info:
            pending.wait(WAIT)
        assert info.value.cancelled
    finally:
        upstream.resume()
    assert running.wait(WAIT).status == "success"


def test_cancel_a_running_job(api: ComfyApi, upstream: FakeComfyUI) -> None:
    started = threading.Event()
    job = api.submit(image_wf(6, seconds=20), on_progress=lambda e: started.set())
    upstream.wait_for_running(timeout=WAIT)
    assert job.cancel() is True
    with pytest.raises(PromptInterruptedError):
        job.wait(WAIT)
    assert job.status == "interrupted"


def test_job_events_and_job_on(api: ComfyApi) -> None:
    seen: List[ev.Event] = []
    job = api.submit(image_wf(7, steps=3, delay_ms=250), on_event=seen.append)
    job.wait(WAIT)
    kinds = {type(e) for e in seen}
    assert ev.ExecutionStart in kinds and ev.Progress in kinds
    assert all(e.prompt_id == job.prompt_id for e in seen)


def test_outputs_come_from_the_job_without_output_events(
        api: ComfyApi, monkeypatch: pytest.MonkeyPatch) -> None:
    # The proxy's output events are best effort (a job that leaves ComfyUI's queue between its
    # reads of /history and /queue is reported without them): the result must not need them.
    mapped = EventMapper.map

    def without_outputs(self: EventMapper, name: str, data: Dict[str, Any]) -> List[ev.Event]:
        if name == "output":
            return []
        return mapped(self, name, data)

    monkeypatch.setattr(EventMapper, "map", without_outputs)
    seen: List[ev.Event] = []
    job = api.submit(image_wf(15, steps=2, delay_ms=100), on_event=seen.append)
    result = job.wait(WAIT)
    assert result.status == "success" and not any(isinstance(e, ev.Executed) for e in seen)
    [image] = result.images
    assert image.node_id == "4" and image.read().startswith(b"\x89PNG")


def test_a_dropped_event_stream_reconnects(proxy: Proxy) -> None:
    opened: List[str] = []
    with ComfyApi(proxy.url) as api:
        api._transport._session.hooks["response"].append(
            lambda r, *a, **k: opened.append(r.request.path_url)
            if r.request.path_url.endswith("/events") else None)
        first = threading.Event()
        job = api.submit(image_wf(8, seconds=1.5), on_progress=lambda e: first.set())
        assert first.wait(WAIT)
        streams = list(api._v2_events._streams.values())
        assert streams, "no stream open for the running job"
        for stream in streams:  # the connection breaks (not a stop)
            response = stream._response
            if response is not None:
                abort(response)
        result = job.wait(WAIT)
    assert result.status == "success"
    assert len(opened) >= 2, opened  # the stream was opened again


def test_native_only_calls_say_what_to_use(api: ComfyApi) -> None:
    with pytest.raises(UnsupportedError) as info:
        api.get_queue()
    assert info.value.surface == "v2" and "job.status" in str(info.value)
    with pytest.raises(UnsupportedError) as info:
        api.get_node_defs()
    assert "node_defs=" in str(info.value)


def test_ui_format_is_refused_without_node_defs(api: ComfyApi) -> None:
    ui = {"nodes": [{"id": 1, "type": "EmptyImage", "inputs": [], "outputs": [],
                     "widgets_values": [8, 8, 1, 0]}], "links": [], "last_node_id": 1}
    with pytest.raises((UnsupportedError, WorkflowFormatError)) as info:
        api.submit(ui)
    assert "node_defs=" in str(info.value)


def test_uploads_are_deduplicated(api: ComfyApi) -> None:
    sent: List[str] = []
    api._transport._session.hooks["response"].append(
        lambda r, *a, **k: sent.append(f"{r.request.method} {r.request.path_url}"))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(uuid.uuid4().bytes[:3])).save(buffer, format="PNG")
    data = buffer.getvalue()
    first = api.upload_image(data, filename="cat.png")
    second = api.upload_image(data, filename="cat.png")
    assert first == second and first.filename == "cat.png"
    assert sent.count("POST /api/v2/assets") == 1, sent
    load = {
        "1": {"class_type": "LoadImage", "inputs": {"image": first.reference()}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                   "filename_prefix": "v2/loaded"}},
    }
    assert api.run_workflow(load, timeout=WAIT).images  # the reference resolves to the asset


def test_workflow_inputs_given_as_bytes_or_paths_are_uploaded_once(
        api: ComfyApi, proxy: Proxy, tmp_path: Path) -> None:
    sent: List[str] = []
    api._transport._session.hooks["response"].append(
        lambda r, *a, **k: sent.append(f"{r.request.method} {r.request.path_url}"))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(uuid.uuid4().bytes[:3])).save(buffer, format="PNG")
    data = buffer.getvalue()

    def load(image: Any, seed: int) -> Dict[str, Any]:
        return {
            "1": {"class_type": "LoadImage", "inputs": {"image": image}},
            "2": {"class_type": "ProbeSleep", "inputs": {"image": ["1", 0], "seconds": 0.0,
                                                         "seed": seed}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                       "filename_prefix": "v2/input"}},
        }

    assert api.run_workflow(load(data, 1), timeout=WAIT).images
    assert sent.count("POST /api/v2/assets") == 1, sent  # new bytes: probed, then uploaded
    assert api.run_workflow(load(data, 2), timeout=WAIT).images
    assert sent.count("POST /api/v2/assets") == 1, sent  # the same bytes again: none sent
    path = tmp_path / "cat.png"
    path.write_bytes(data)
    with ComfyApi(proxy.url) as other:  # a client that never saw them: probe by hash, mint
        other_sent: List[str] = []
        other._transport._session.hooks["response"].append(
            lambda r, *a, **k: other_sent.append(f"{r.request.method} {r.request.path_url}"))
        assert other.run_workflow(load(path, 3), timeout=WAIT).images
    assert "POST /api/v2/assets/from-hash" in other_sent, other_sent
    assert "POST /api/v2/assets" not in other_sent, other_sent


def test_attach_follows_a_job_of_another_client(api: ComfyApi, proxy: Proxy) -> None:
    job = api.submit(image_wf(9, seconds=0.5))
    with ComfyApi(proxy.url) as other:
        attached = other.attach(job.prompt_id)
        result = attached.wait(WAIT)
    assert result.prompt_id == job.prompt_id and result.images
    assert job.wait(WAIT).status == "success"


def test_ui_format_is_converted_with_node_defs(api: ComfyApi, upstream: FakeComfyUI) -> None:
    ui = Path(__file__).parents[2] / "samples" / "workflows" / "invert_ui.json"
    with ComfyApi(upstream.url) as native:  # any server of the same nodes has the definitions
        defs = native.get_node_defs()
    result = api.run_workflow(ui, timeout=WAIT, node_defs=defs)
    assert result.status == "success" and len(result.images) == 1


def test_close_joins_every_thread(proxy: Proxy) -> None:
    before = set(threading.enumerate())
    with ComfyApi(proxy.url) as api:
        api.run_workflow(image_wf(10, steps=2, delay_ms=100), timeout=WAIT)
        api.run_workflow(image_wf(11), timeout=WAIT)
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == []


def test_delete_from_queue_cancels_waiting_jobs(api: ComfyApi, upstream: FakeComfyUI) -> None:
    upstream.pause()
    try:
        waiting = api.submit(image_wf(13))
        api.delete_from_queue(waiting.prompt_id)
        with pytest.raises(PromptLostError):  # as on a native server: deleted, not cancelled
            waiting.wait(WAIT)
    finally:
        upstream.resume()
    assert api.run_workflow(image_wf(14), timeout=WAIT).status == "success"
