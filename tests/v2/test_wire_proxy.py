"""The v2 wire layer against a real v2 implementation (comfy-api-proxy before a FakeComfyUI)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List

import pytest

from comfysync import events as ev
from comfysync._http.transport import HttpTransport
from comfysync._v2.assets import AssetUploader
from comfysync._v2.models import V2Job
from comfysync._v2.stream import V2EventSource
from comfysync._v2.wire import V2Wire
from comfysync.errors import ComfyHTTPError, PromptValidationError
from comfysync.testing import FakeComfyUI

from .conftest import Proxy

WORKFLOW: Dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "comfysync" / "data" / "default_workflow_api.json").read_text()
)


def _wire(proxy: Proxy) -> V2Wire:
    return V2Wire(HttpTransport(proxy.url, timeout=10))


def _until_terminal(wire: V2Wire, job_id: str, timeout: float = 10.0) -> V2Job:
    deadline = time.monotonic() + timeout
    while True:
        job = wire.get_job(job_id)
        assert job is not None
        if job.terminal and job.status != "expired":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.02)


def test_submit_poll_and_download(proxy: Proxy) -> None:
    wire = _wire(proxy)
    job = wire.submit(WORKFLOW, str(uuid.uuid4()))
    assert job.status == "queued" and job.id
    done = _until_terminal(wire, job.id)
    assert done.status == "succeeded"
    [out] = done.outputs
    assert out.node_id == "9" and out.kind == "image" and out.output_key == "images"
    response = wire.open_content(out.url)
    data = b"".join(response.iter_content(65536))
    assert data.startswith(b"\x89PNG")
    assert wire.get_job(str(uuid.uuid4())) is None  # unknown id: None, not an error


def test_idempotency_key_is_single_use(proxy: Proxy) -> None:
    wire = _wire(proxy)
    key = str(uuid.uuid4())
    wire.submit(WORKFLOW, key)
    with pytest.raises(ComfyHTTPError) as info:
        wire.submit(WORKFLOW, key)
    assert info.value.status == 422 and "idempotency_key_reuse" in str(info.value)


def test_refused_workflow_is_a_validation_error(proxy: Proxy) -> None:
    wire = _wire(proxy)
    broken = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    with pytest.raises(PromptValidationError) as info:
        wire.submit(broken, str(uuid.uuid4()))
    assert info.value.status == 422 and info.value.error_type == "invalid_workflow"


def test_event_stream_maps_to_typed_events(proxy: Proxy) -> None:
    wire = _wire(proxy)
    seen: List[ev.Event] = []
    hinted = threading.Event()
    source = V2EventSource(wire, seen.append, name="t", on_hint=lambda job_id: hinted.set())
    source.start(5)
    try:
        job = wire.submit(WORKFLOW, str(uuid.uuid4()))
        source.watch(job.id)
        stream = source._streams.get(job.id) or next(  # (retired if it already ended)
            s for s in source._retired if s.job_id == job.id)
        assert hinted.wait(10), "no terminal hint from the stream"
        stream.thread.join(10)  # the proxy ends the stream after the job's outputs
        assert not stream.thread.is_alive(), "the stream stayed open after the terminal hint"
        assert source.owns_current_thread() is False
    finally:
        source.stop()
    assert not source.alive
    kinds = {type(e) for e in seen}
    assert ev.ExecutionStart in kinds and ev.Progress in kinds
    assert all(e.prompt_id == job.id for e in seen)
    progress = [e for e in seen if isinstance(e, ev.Progress)]
    assert any(p.max == 20 for p in progress)  # the sampler's steps, as on a native server
    # The proxy reads ComfyUI's /history, then /queue: a job that leaves the queue between the
    # two reads is reported (once) as gone, without outputs, and its live outputs come from
    # that same read. So the output event is sent exactly when the last status was a success.
    executed = [e for e in seen if isinstance(e, ev.Executed)]
    if stream._mapper.terminal == "succeeded":
        assert executed, "a succeeded status without its output event"
    else:
        assert stream._mapper.terminal == "expired", stream._mapper.terminal
    for event in executed:
        assert event.node == "9"
        assert event.output is not None and event.output["images"][0]["url"]
    done = _until_terminal(wire, job.id)  # the job resource always has the outputs
    assert done.status == "succeeded" and [o.node_id for o in done.outputs] == ["9"]


def test_cancel_pending_and_running(proxy: Proxy, upstream: FakeComfyUI) -> None:
    wire = _wire(proxy)
    upstream.pause()
    first = wire.submit(WORKFLOW, str(uuid.uuid4()))
    second = wire.submit(dict(WORKFLOW, **{"3": dict(WORKFLOW["3"], inputs=dict(
        WORKFLOW["3"]["inputs"], seed=7))}), str(uuid.uuid4()))
    answer = wire.cancel(second.id)
    assert answer is not None
    job = wire.get_job(second.id)
    assert job is not None and job.status == "expired"  # dequeued: ComfyUI forgot it
    upstream.resume()
    _until_terminal(wire, first.id)


def test_uploads_send_bytes_once(proxy: Proxy) -> None:
    wire = _wire(proxy)
    sent: List[str] = []
    session = wire.transport._session  # observe what this client sends
    session.hooks["response"].append(
        lambda r, *a, **k: sent.append(f"{r.request.method} {r.request.path_url}"))
    payload = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes * 64
    first = AssetUploader(wire).upload(payload, filename="in.png")
    assert first.created_new is True
    second = AssetUploader(wire).upload(payload, filename="in.png")
    assert second.id == first.id and second.created_new is False
    uploads = [s for s in sent if s == "POST /api/v2/assets"]
    assert len(uploads) == 1, sent  # the second time: HEAD by-hash + from-hash, no bytes
    assert any(s.startswith("POST /api/v2/assets/from-hash") for s in sent)
