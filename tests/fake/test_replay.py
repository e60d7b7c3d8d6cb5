"""Every recorded real-server scenario, replayed against FakeComfyUI with the raw driver:
same message sequence, field names, value types and routing; same HTTP statuses, content
types and body shapes (ids, timestamps and sizes ignored)."""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import requests
from PIL import Image

from comfysync.testing import FakeComfyUI

from .driver import WsClient, barrier
from .replay import (
    RECORDINGS,
    SHARED,
    Substitutions,
    check_response,
    describe,
    frames_match,
    http_exchange,
    live_frame,
    load,
    prime_cache,
    recorded_frame,
)

Tweak = Callable[[Dict[str, Any]], Dict[str, Any]]


def _replay_run(
    server: FakeComfyUI, name: str, tweak: Optional[Tweak] = None, prime: bool = True
) -> None:
    events = load(name)
    if prime:
        prime_cache(server, events)
    flags = None
    for event in events:
        if event["dir"] == "client" and event["kind"] == "ws-send":
            flags = event["data"]["data"]
        if event["dir"] != "client":
            break
    first_status = next(e for e in events if e["dir"] == "ws")["data"]["data"]
    ws = WsClient(server.ws_url(), feature_flags=flags)
    subs = Substitutions()
    subs.map[first_status["sid"]] = ws.sid
    recorded: List[Tuple[Any, ...]] = []
    segments: List[Tuple[List[Tuple[Any, ...]], WsClient]] = []
    reconnected = False
    for event in events:
        if event["dir"] == "ws":
            recorded.append(recorded_frame(event))
            continue
        if event["dir"] == "client":
            if event["kind"] == "ws-closed-by-client":
                ws.wait_count(len(recorded))
                ws.close()
                sid = ws.sid
                server.wait_until(lambda s=sid: s not in server.client_ids())
                segments.append((recorded, ws))
                recorded = []
            elif event["kind"] == "ws-reconnected":
                ws = WsClient(server.ws_url(), client_id=segments[-1][1].sid)
                reconnected = True
            continue
        if reconnected:
            server.wait_for_idle()
        else:
            ws.wait_count(len(recorded))
        request = event["data"]["request"]
        if tweak is not None:
            request = tweak(request)
        response = http_exchange(server, request, subs)
        check_response(event["data"], response)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            subs.learn(event["data"].get("body"), response.json())
    if not reconnected:
        ws.wait_count(len(recorded))
    barrier(server, ws)
    segments.append((recorded, ws))
    for index, (rec, client) in enumerate(segments):
        live = [live_frame(f) for f in client.snapshot()]
        client.close()
        if reconnected and index == len(segments) - 1:
            _check_reconnected_tail(rec, live)
        else:
            assert frames_match(rec, live), f"recorded:\n{describe(rec)}\nlive:\n{describe(live)}"


def _check_reconnected_tail(rec: List[Tuple[Any, ...]], live: List[Tuple[Any, ...]]) -> None:
    """After a same-id reconnect: ``status`` (with sid), then — because the prompt still
    runs — ``executing {node}``, then the rest of the run. The recording's tail is
    a suffix of what we saw; what precedes it consists of message shapes of the recording."""
    assert frames_match(rec[:1], live[:1]), describe(live)
    rest = live[1:]
    if rest and rest[0][:2] == ("text", "executing") and rest[0][2] == {"node": "str"}:
        rest = rest[1:]
    tail = rec[1:]
    assert len(rest) >= len(tail), describe(rest)
    ending = rest[len(rest) - len(tail):]
    assert frames_match(tail, ending), f"{describe(tail)}\n--\n{describe(rest)}"
    known = {json.dumps(f, sort_keys=True) for f in tail}
    for frame in rest[: len(rest) - len(tail)]:
        assert json.dumps(frame, sort_keys=True) in known, frame


def test_copies_match_the_shared_recordings() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared recordings not present at {SHARED}")
    for path in SHARED.glob("*.jsonl"):
        assert (RECORDINGS / path.name).read_bytes() == path.read_bytes(), path.name


def test_every_recording_has_a_replay() -> None:
    replayed = {
        "rest_misc", "run_execution_error", "run_fully_cached", "run_interrupted",
        "run_outputs_variety", "run_progress_preview_legacy", "run_progress_preview_metadata",
        "run_seen_by_other_client_A", "run_seen_by_other_client_B", "run_without_client_id",
        "run_ws_dropped_and_reconnected", "submit_validation_errors",
    }
    assert {p.stem for p in RECORDINGS.glob("*.jsonl")} == replayed


@pytest.mark.parametrize(
    "name",
    [
        "run_progress_preview_legacy",
        "run_progress_preview_metadata",
        "run_fully_cached",
        "run_execution_error",
        "run_interrupted",
        "run_without_client_id",
        "run_ws_dropped_and_reconnected",
        "submit_validation_errors",
    ],
)
def test_replay(fake_server: FakeComfyUI, name: str) -> None:
    _replay_run(fake_server, name)


def _small_noise(request: Dict[str, Any]) -> Dict[str, Any]:
    """The recording's 1536² noise images made 96² (sizes are not compared), and its output
    nodes listed in the order the real server happened to validate them (``["5", "2", "3",
    "4"]``: a Python set's order there), which decides the execution order."""
    text = json.dumps(request)
    text = text.replace('"width": 1536, "height": 1536', '"width": 96, "height": 96')
    request = dict(json.loads(text))
    prompt = request.get("json", {}).get("prompt")
    if prompt is not None:
        order = ["1", "5", "2", "3", "4"]
        request["json"]["prompt"] = {k: prompt[k] for k in order}
    return request


def test_replay_outputs_variety(fake_server: FakeComfyUI) -> None:
    _replay_run(fake_server, "run_outputs_variety", tweak=_small_noise)


def test_replay_seen_by_other_client(fake_server: FakeComfyUI) -> None:
    events_b = load("run_seen_by_other_client_B")
    prime_cache(fake_server, load("run_seen_by_other_client_A"))
    observer = WsClient(fake_server.ws_url())
    _replay_run(fake_server, "run_seen_by_other_client_A", prime=False)
    barrier(fake_server, observer)
    expected = [recorded_frame(e) for e in events_b if e["dir"] == "ws"]
    live = [live_frame(f) for f in observer.snapshot()]
    observer.close()
    assert frames_match(expected, live), describe(live)


def _png(color: Tuple[int, int, int, int], size: Tuple[int, int] = (4, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_replay_rest_misc(fake_server: FakeComfyUI) -> None:
    """The REST tour. Multipart and raw bodies were not recorded, so they are rebuilt from
    what the recording shows: one PNG uploaded twice (same content → same name), then with
    overwrite; a mask applied to it; ``{"a": 1}`` stored as user data."""
    events = load("rest_misc")
    ws = WsClient(fake_server.ws_url())
    subs = Substitutions()
    image = _png((255, 0, 0, 255))
    uploads = iter([
        {"files": {"image": ("rec_upload.png", image, "image/png")},
         "data": {"subfolder": "sdk"}},
        {"files": {"image": ("rec_upload.png", image, "image/png")},
         "data": {"subfolder": "sdk"}},
        {"files": {"image": ("rec_upload.png", image, "image/png")},
         "data": {"subfolder": "sdk", "overwrite": "true"}},
        {"files": {"image": ("rec_mask.png", _png((0, 0, 0, 128)), "image/png")},
         "data": {"subfolder": "sdk", "original_ref": json.dumps(
             {"filename": "rec_upload.png", "subfolder": "sdk", "type": "input"})}},
    ])
    for event in events:
        if event["dir"] != "http":
            continue
        request = event["data"]["request"]
        kwargs: Dict[str, Any] = {}
        if request["path"].startswith("/upload/"):
            kwargs = next(uploads)
        elif request["method"] == "POST" and request["path"] == "/userdata/sdk_test%2Fnote.json":
            kwargs = {"data": b'{"a": 1}'}
        response = http_exchange(fake_server, request, subs, **kwargs)
        check_response(event["data"], response)
    barrier(fake_server, ws)
    assert [f[1]["type"] for f in ws.snapshot()] == ["status"]
    ws.close()
    # the mask was composited onto the original: same RGB, the mask's alpha
    with Image.open(fake_server.dirs.input / "sdk" / "rec_mask.png") as masked:
        assert masked.mode == "RGBA"
        assert masked.getpixel((0, 0)) == (255, 0, 0, 128)
    assert requests.get(f"{fake_server.url}/userdata?dir=sdk_test", timeout=5).json() == []
