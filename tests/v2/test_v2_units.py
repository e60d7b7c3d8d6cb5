"""Pure parts of the v2 layer: SSE decoding, frame → event mapping, job parsing, the surface
choice and the key's environment variable."""

from __future__ import annotations

import base64
from typing import Any, Dict, List

import pytest

from comfysync import events as ev
from comfysync._v2.choice import SurfaceChoice, api_key_from_env, is_hosted_v2
from comfysync._v2.models import V2Job
from comfysync._v2.sse import EventMapper, SseDecoder
from comfysync._v2.surface import job_entry
from comfysync.errors import UnsupportedError


def _feed(text: str) -> List[Any]:
    decoder = SseDecoder()
    frames: List[Any] = []
    for line in text.split("\n"):
        frames.extend(decoder.feed(line))
    return frames


def test_sse_decoder_frames_comments_and_multiline_data() -> None:
    frames = _feed(": keepalive\n\nevent: status\ndata: {\"status\":\n"
                   "data: \"running\"}\n\ndata: [1]\n\nevent: x\ndata: not json\n\n")
    assert frames == [("status", {"status": "running"}), ("message", {"value": [1]}),
                      ("x", {"raw": "not json"})]


def test_mapper_gives_the_native_sequence() -> None:
    mapper = EventMapper("job-1")
    events: List[ev.Event] = []
    image = base64.b64encode(b"jpegbytes").decode()
    for name, data in [
        ("status", {"status": "queued", "queue_position": 2}),
        ("status", {"status": "running"}),
        ("progress", {"value": 0.5, "nodes_done": 1, "nodes_total": 3, "current_node": "3",
                      "step": 5, "steps": 20}),
        ("preview", {"node_id": "3", "content_type": "image/jpeg", "data_base64": image}),
        ("preview", {"node_id": "3", "content_type": "image/jpeg", "data_base64": "!!"}),
        ("output", {"node_id": "9", "name": "a.png", "type": "image",
                    "url": "https://x/api/v2/assets/a/content", "id": "a"}),
        ("status", {"status": "succeeded"}),
    ]:
        events.extend(mapper.map(name, data))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ExecutionStart", "Executing", "Progress", "Preview", "Executed"]
    progress = events[2]
    assert isinstance(progress, ev.Progress) and (progress.value, progress.max) == (5, 20)
    preview = events[3]
    assert isinstance(preview, ev.Preview) and preview.image == b"jpegbytes"
    executed = events[4]
    assert isinstance(executed, ev.Executed) and executed.output is not None
    assert executed.output["images"][0]["filename"] == "a.png"
    assert all(e.prompt_id == "job-1" for e in events)
    assert mapper.terminal == "succeeded"


def test_failed_job_becomes_an_error_record() -> None:
    job = V2Job.from_wire({
        "id": "j", "status": "failed", "outputs": [],
        "error": {"code": "node_execution_error", "message": "boom", "node_id": 12,
                  "class_type": "KSampler", "traceback": None},
    })
    entry = job_entry(job)
    assert entry.status_str == "error"
    data = dict(entry.messages)["execution_error"]
    assert data["node_id"] == "12" and data["node_type"] == "KSampler"
    assert data["exception_message"] == "boom"


def test_job_parsing_refuses_wrong_shapes() -> None:
    with pytest.raises(TypeError):
        V2Job.from_wire({"id": "j"})
    with pytest.raises(TypeError):
        V2Job.from_wire({"id": "j", "status": "queued", "outputs": "nope"})


@pytest.mark.parametrize("host,hosted", [
    ("cloud.comfy.org", True), ("CLOUD.comfy.org.", True), ("abc.run.comfy.app", True),
    ("comfy.org", False), ("evilcloud.comfy.org.example", False), ("127.0.0.1", False),
])
def test_hosted_addresses(host: str, hosted: bool) -> None:
    assert is_hosted_v2(host) is hosted


def test_choice_asks_once_and_refuses_native_routes() -> None:
    asked: Dict[str, int] = {"v2": 0, "native": 0}

    def probe_v2() -> bool:
        asked["v2"] += 1
        return True

    def probe_native() -> bool:
        asked["native"] += 1
        return False

    choice = SurfaceChoice("auto", "127.0.0.1", probe_native=probe_native, probe_v2=probe_v2)
    choice.check_route("GET", "/queue")  # unknown: nothing asked before a 404
    assert choice.known is None and asked == {"v2": 0, "native": 0}
    with pytest.raises(UnsupportedError) as info:
        choice.route_missing("GET", "/queue")
    assert info.value.surface == "v2" and info.value.operation == "GET /queue"
    with pytest.raises(UnsupportedError):
        choice.check_route("POST", "/interrupt")
    choice.check_route("GET", "/api/v2/jobs/x")
    assert asked == {"v2": 1, "native": 1}
    with pytest.raises(ValueError):
        SurfaceChoice("cloud", "h", probe_native=probe_native, probe_v2=probe_v2)


def test_api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_API_KEY", "  ")
    assert api_key_from_env() is None
    monkeypatch.setenv("COMFY_API_KEY", " k ")
    assert api_key_from_env() == "k"
