"""``ComfyApi`` against Comfy Cloud's documented v2 shapes (``responses``): the key from
``$COMFY_API_KEY`` only on the deployment's origin, signed-URL redirects without it, a refused
event stream (429) leaving the job to polling, and failed / canceled / expired jobs."""

from __future__ import annotations

import json
import uuid
from typing import Any, Dict, Iterator, List

import pytest
import responses

from comfysync import ComfyApi
from comfysync.errors import (
    ComfyHTTPError,
    PromptExecutionError,
    PromptInterruptedError,
    PromptLostError,
    UnsupportedError,
)

CLOUD = "https://cloud.comfy.org"
KEY = "comfyui-" + "s3cr3t" * 8
STORAGE = "https://storage.example.net/out/ComfyUI_00001_.png?X-Goog-Signature=abc"
WF = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                   "color": 0}},
      "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}


def _job(job_id: str, status: str, **extra: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "id": job_id, "status": status, "created_at": "2026-12-07T03:00:00Z",
        "started_at": None, "completed_at": None, "expires_at": "2026-12-08T03:00:00Z",
        "queue_position": None, "progress": None, "outputs": [], "error": None,
        "urls": {"self": f"{CLOUD}/api/v2/jobs/{job_id}",
                 "events": f"{CLOUD}/api/v2/jobs/{job_id}/events",
                 "cancel": f"{CLOUD}/api/v2/jobs/{job_id}/cancel"},
    }
    body.update(extra)
    return body


def _output(job_id: str) -> Dict[str, Any]:
    return {"node_id": "2", "name": "ComfyUI_00001_.png", "type": "image",
            "content_type": "image/png", "size_bytes": 9, "id": "a1", "hash": None,
            "url": f"{CLOUD}/api/v2/assets/a1/content",
            "url_expires_at": "2026-12-08T03:00:00Z", "job_id": job_id}


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[responses.RequestsMock]:
    monkeypatch.setenv("COMFY_API_KEY", KEY)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{CLOUD}/api/v2/jobs", json={"jobs": []})  # connect() checks the key
        yield mock


def _serve(mock: responses.RequestsMock, job_id: str, final: Dict[str, Any]) -> None:
    mock.post(f"{CLOUD}/api/v2/jobs", status=201, json=_job(job_id, "queued"))
    mock.get(f"{CLOUD}/api/v2/jobs/{job_id}/events", status=429, headers={"Retry-After": "5"},
             json={"error": {"code": "too_many_streams", "message": "poll instead"}})
    mock.get(f"{CLOUD}/api/v2/jobs/{job_id}", json=_job(job_id, "running"))
    mock.get(f"{CLOUD}/api/v2/jobs/{job_id}", json=final)


def _auth_headers(mock: responses.RequestsMock) -> List[Any]:
    return [(c.request.url, c.request.headers.get("Authorization")) for c in mock.calls]


def test_cloud_run_key_only_to_the_deployment(cloud: responses.RequestsMock) -> None:
    job_id = str(uuid.uuid4())
    _serve(cloud, job_id, _job(job_id, "succeeded", outputs=[_output(job_id)]))
    cloud.get(f"{CLOUD}/api/v2/assets/a1/content", status=302, headers={"Location": STORAGE})
    cloud.get(STORAGE, body=b"\x89PNGdata")
    with ComfyApi(CLOUD) as api:
        assert "surface=v2" in repr(api) and "auth=bearer" in repr(api)
        assert KEY not in repr(api)
        result = api.run_workflow(WF, timeout=10)
        assert result.prompt_id == job_id
        [image] = result.images
        assert image.url == f"{CLOUD}/api/v2/assets/a1/content"
        assert image.read() == b"\x89PNGdata"
    sent = _auth_headers(cloud)
    assert all(auth == f"Bearer {KEY}" for url, auth in sent if url.startswith(CLOUD)), sent
    assert [auth for url, auth in sent if url.startswith("https://storage.")] == [None]
    post = next(c.request for c in cloud.calls if c.request.method == "POST")
    assert json.loads(post.body)["workflow"] == WF
    assert post.headers["Idempotency-Key"]


def test_failed_job_names_the_node(cloud: responses.RequestsMock) -> None:
    job_id = str(uuid.uuid4())
    error = {"code": "node_execution_error", "message": "CUDA out of memory",
             "node_id": "2", "class_type": "SaveImage", "traceback": "Traceback ...\n"}
    _serve(cloud, job_id, _job(job_id, "failed", error=error))
    with ComfyApi(CLOUD) as api, pytest.raises(PromptExecutionError) as info:
        api.run_workflow(WF, timeout=10)
    assert info.value.node_id == "2" and info.value.node_type == "SaveImage"
    assert "CUDA out of memory" in str(info.value)


def test_canceled_job_is_interrupted(cloud: responses.RequestsMock) -> None:
    job_id = str(uuid.uuid4())
    _serve(cloud, job_id, _job(job_id, "canceled"))
    with ComfyApi(CLOUD) as api, pytest.raises(PromptInterruptedError):
        api.run_workflow(WF, timeout=10)


def test_expired_is_read_again_before_it_counts(cloud: responses.RequestsMock) -> None:
    job_id = str(uuid.uuid4())
    _serve(cloud, job_id, _job(job_id, "expired"))
    cloud.get(f"{CLOUD}/api/v2/jobs/{job_id}", json=_job(job_id, "succeeded"))
    with ComfyApi(CLOUD) as api:
        assert api.run_workflow(WF, timeout=10).status == "success"


def test_expired_for_good_is_lost(cloud: responses.RequestsMock) -> None:
    job_id = str(uuid.uuid4())
    _serve(cloud, job_id, _job(job_id, "expired"))
    with ComfyApi(CLOUD) as api, pytest.raises(PromptLostError):
        api.run_workflow(WF, timeout=10)
    reads = [c for c in cloud.calls if c.request.url == f"{CLOUD}/api/v2/jobs/{job_id}"]
    assert len(reads) >= 4  # re-read over about a second first


def test_refused_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_API_KEY", KEY)
    refused: List[Any] = []
    with responses.RequestsMock() as mock:
        mock.get(f"{CLOUD}/api/v2/jobs", status=401,
                 json={"error": {"code": "unauthorized", "message": "Invalid API key."}})
        api = ComfyApi(CLOUD)
        api.on("auth_error", refused.append)
        with pytest.raises(ComfyHTTPError) as info:
            api.connect()
        api.close()
    assert info.value.status == 401 and "COMFY_API_KEY" in str(info.value)
    assert KEY not in str(info.value) and [e.status for e in refused] == [401]


def test_native_only_calls_refused_without_a_request(cloud: responses.RequestsMock) -> None:
    with ComfyApi(CLOUD) as api:
        calls = len(cloud.calls)
        with pytest.raises(UnsupportedError) as info:
            api.get_history("x")
        assert "job.wait()" in str(info.value)
        assert len(cloud.calls) == calls  # refused before anything was sent


def test_explicit_key_and_no_env_key_for_a_native_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_API_KEY", KEY)
    api = ComfyApi("127.0.0.1:1", auth=("user", "pw"))  # basic auth wins; no Bearer
    assert api._transport.auth_kind == "basic"
    api.close()
    with pytest.raises(ValueError):
        ComfyApi(CLOUD, api_key="a", token="b")


def test_submit_429_is_waited_out_within_the_callers_timeout(
        cloud: responses.RequestsMock) -> None:
    job_id = str(uuid.uuid4())
    busy = {"error": {"code": "rate_limited", "message": "slow down"}}
    cloud.post(f"{CLOUD}/api/v2/jobs", status=429, json=busy, headers={"Retry-After": "0"})
    _serve(cloud, job_id, _job(job_id, "succeeded"))
    with ComfyApi(CLOUD) as api:
        assert api.run_workflow(WF, timeout=10).prompt_id == job_id
    posts = [c for c in cloud.calls if c.request.method == "POST"]
    assert [p.response.status_code for p in posts] == [429, 201]
    assert posts[0].request.headers["Idempotency-Key"] == posts[1].request.headers[
        "Idempotency-Key"]


def test_submit_429_longer_than_the_callers_timeout_raises_at_once(
        cloud: responses.RequestsMock) -> None:
    busy = {"error": {"code": "rate_limited", "message": "slow down"}}
    cloud.post(f"{CLOUD}/api/v2/jobs", status=429, json=busy, headers={"Retry-After": "20"})
    with ComfyApi(CLOUD) as api:
        api.connect()
        with pytest.raises(ComfyHTTPError) as info:
            api.run_workflow(WF, timeout=5)  # a fixed budget would sleep 20 s, then post again
    assert info.value.status == 429 and info.value.retry_after == 20
    assert [c.request.method for c in cloud.calls].count("POST") == 1


def test_a_job_over_at_its_first_read_ends_without_its_stream(
        cloud: responses.RequestsMock) -> None:
    job_id = str(uuid.uuid4())
    cloud.post(f"{CLOUD}/api/v2/jobs", status=201, json=_job(job_id, "queued"))
    cloud.get(f"{CLOUD}/api/v2/jobs/{job_id}",
              json=_job(job_id, "succeeded", outputs=[_output(job_id)]))
    with ComfyApi(CLOUD) as api:
        api.connect()
        before = len(cloud.calls)
        result = api.run_workflow(WF, timeout=10)
        sent = [(c.request.method, c.request.url) for c in cloud.calls[before:]]
    assert result.images[0].url == f"{CLOUD}/api/v2/assets/a1/content"
    # submit, one read of the job (its outputs are the result): no stream, no result fetch
    assert sent == [("POST", f"{CLOUD}/api/v2/jobs"), ("GET", f"{CLOUD}/api/v2/jobs/{job_id}")]
