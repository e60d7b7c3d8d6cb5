"""Cloud-only behaviours of the v2 wire layer, from the documented shapes (``responses``):
the key only on the deployment's origin, signed-URL redirects, 401/403/429 answers."""

from __future__ import annotations

import time
import uuid

import pytest
import responses

from comfysync._http.transport import HttpTransport
from comfysync._v2.wire import V2Wire
from comfysync.errors import ComfyHTTPError

CLOUD = "https://cloud.comfy.org"
KEY = "comfyui-" + "k" * 40
JOB = {
    "id": "0fb33f36-7ef1-4821-9c23-1fa3e9c9bca4", "status": "queued", "outputs": [],
    "urls": {"self": "", "events": "", "cancel": ""},
}


def _wire() -> V2Wire:
    return V2Wire(HttpTransport(CLOUD, token=KEY, timeout=5))


@responses.activate
def test_key_goes_to_the_deployment_only_and_signed_urls_get_none() -> None:
    signed = "https://storage.example.net/bucket/out.png?X-Sig=abc"
    responses.get(f"{CLOUD}/api/v2/assets/a1/content", status=302, headers={"Location": signed})
    responses.get(signed, body=b"\x89PNGdata")
    body = _wire().open_content(f"{CLOUD}/api/v2/assets/a1/content").content
    assert body == b"\x89PNGdata"
    first, second = (call.request for call in responses.calls)
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert "Authorization" not in second.headers
    assert KEY not in str(second.headers)


@responses.activate
def test_an_output_url_on_another_origin_gets_no_key() -> None:
    responses.get("https://cdn.example.net/x", status=307,
                  headers={"Location": "https://cdn2.example.net/y"})
    responses.get("https://cdn2.example.net/y", body=b"ok")
    assert _wire().open_content("https://cdn.example.net/x").content == b"ok"
    assert all("Authorization" not in call.request.headers for call in responses.calls)


@pytest.mark.parametrize("status,words", [(401, "COMFY_API_KEY"), (403, "not allowed")])
@responses.activate
def test_refused_key_says_what_to_check_and_never_shows_it(status: int, words: str) -> None:
    responses.post(f"{CLOUD}/api/v2/jobs", status=status,
                   json={"error": {"code": "unauthorized", "message": "Invalid token."}})
    with pytest.raises(ComfyHTTPError) as info:
        _wire().submit({"1": {"class_type": "X", "inputs": {}}}, str(uuid.uuid4()))
    assert info.value.status == status and words in str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(info.value.body)


@responses.activate
def test_429_is_waited_out_within_the_deadline() -> None:
    url = f"{CLOUD}/api/v2/jobs"
    busy = {"error": {"code": "queue_full", "message": "try later"}}
    responses.post(url, status=429, json=busy, headers={"Retry-After": "0"})
    responses.post(url, status=201, json=JOB)
    key = str(uuid.uuid4())
    job = _wire().submit({"1": {}}, key, deadline=time.monotonic() + 5)
    assert job.id == JOB["id"]
    assert [c.request.headers["Idempotency-Key"] for c in responses.calls] == [key, key]


@responses.activate
def test_429_beyond_the_deadline_raises_with_retry_after() -> None:
    busy = {"error": {"code": "queue_full", "message": "try later"}}
    responses.post(f"{CLOUD}/api/v2/jobs", status=429, json=busy, headers={"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(ComfyHTTPError) as info:
        _wire().submit({"1": {}}, str(uuid.uuid4()), deadline=time.monotonic() + 1)
    assert time.monotonic() - started < 1
    assert info.value.status == 429 and info.value.retry_after == 30
