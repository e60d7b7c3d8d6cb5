"""Replaying the real-server recordings against FakeComfyUI, and the normaliser that makes
two transcripts comparable: ids, timestamps, sizes and other values are dropped, what stays is
the sequence of message kinds and types with their field names and JSON value types.

The recordings are copied into ``tests/fake/recordings`` (a test checks the copies against the
shared originals when those exist), so the suite runs from a bare clone.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import requests

from comfysync.testing import FakeComfyUI

from .driver import Frame, WsClient

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE / "recordings"
SHARED = Path(
    os.environ.get(
        "COMFYSYNC_RECORDINGS",
        str(HERE.parents[2] / "shared" / "protocol" / "recordings"),
    )
)
_ID = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$")


def load(name: str) -> List[Dict[str, Any]]:
    with open(RECORDINGS / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --------------------------------------------------------------------- normaliser
def shape(value: Any) -> Any:
    """The type skeleton of a JSON value: dict → {key: shape} (id-like keys → "<id>"),
    list → ["list", sorted distinct element shapes], scalars → their JSON type name."""
    if isinstance(value, dict):
        return {("<id>" if _ID.match(str(k)) else str(k)): shape(v) for k, v in value.items()}
    if isinstance(value, list):
        distinct: Dict[str, Any] = {}
        for item in value:
            s = shape(item)
            distinct[json.dumps(s, sort_keys=True)] = s
        return ["list", [distinct[k] for k in sorted(distinct)]]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "null"
    return type(value).__name__


def compatible(expected: Any, actual: Any) -> bool:
    """Equal shapes, except that an empty list matches any list (an empty listing on the
    recording machine says nothing about element types)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            compatible(expected[k], actual[k]) for k in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        if not expected[1] or not actual[1]:
            return True
        if len(expected[1]) != len(actual[1]):
            return False
        return all(compatible(e, a) for e, a in zip(expected[1], actual[1]))
    return bool(expected == actual)


def recorded_frame(event: Dict[str, Any]) -> Tuple[Any, ...]:
    """A recorded ``ws`` line → normalised frame."""
    data = event["data"]
    if event["kind"] == "text":
        return ("text", data.get("type"), shape(data.get("data")))
    return _binary_key(data["event_type"], data.get("format_field"), data.get("metadata"))


def live_frame(frame: Frame) -> Tuple[Any, ...]:
    """A frame received by :class:`WsClient` → normalised frame."""
    kind, data = frame
    if kind == "text":
        return ("text", data.get("type"), shape(data.get("data")))
    if kind == "binary":
        event_type = struct.unpack(">I", data[:4])[0]
        fmt = struct.unpack(">I", data[4:8])[0] if event_type == 1 else None
        meta = None
        if event_type == 4:
            size = struct.unpack(">I", data[4:8])[0]
            meta = json.loads(data[8:8 + size])
        return _binary_key(event_type, fmt, meta)
    return (kind, None, None)


def _binary_key(event_type: int, fmt: Optional[int], meta: Any) -> Tuple[Any, ...]:
    if event_type == 1:
        return ("binary", 1, fmt)
    if event_type == 4:
        return ("binary", 4, shape(meta), meta.get("image_type"))
    return ("binary", event_type, None)


def frames_match(expected: List[Tuple[Any, ...]], actual: List[Tuple[Any, ...]]) -> bool:
    return len(expected) == len(actual) and all(
        e[:2] == a[:2] and all(compatible(x, y) for x, y in zip(e[2:], a[2:]))
        for e, a in zip(expected, actual)
    )


def describe(frames: List[Tuple[Any, ...]]) -> str:
    lines = (f"{i:3d} {f[0]} {f[1]} {json.dumps(f[2:])[:150]}" for i, f in enumerate(frames))
    return "\n".join(lines)


# ------------------------------------------------------------------------ replay
class Substitutions:
    """Recorded ids (client ids, prompt ids) → the ones of this replay."""

    def __init__(self) -> None:
        self.map: Dict[str, str] = {}

    def apply(self, value: Any) -> Any:
        text = json.dumps(value)
        for old, new in self.map.items():
            text = text.replace(old, new)
        return json.loads(text)

    def learn(self, recorded: Any, live: Any) -> None:
        """Pair ids and file names found at the same place of a recorded and a live body."""
        if isinstance(recorded, dict) and isinstance(live, dict):
            for key, value in recorded.items():
                live_key = self.map.get(key, key)
                if live_key not in live:
                    continue
                if key in ("prompt_id", "sid", "filename") and isinstance(value, str) \
                        and isinstance(live[live_key], str):
                    self.map[value] = live[live_key]
                else:
                    self.learn(value, live[live_key])
        elif isinstance(recorded, list) and isinstance(live, list) and len(recorded) == len(live):
            for rec_item, live_item in zip(recorded, live):
                self.learn(rec_item, live_item)


def http_exchange(server: FakeComfyUI, request: Dict[str, Any], subs: Substitutions,
                  **kwargs: Any) -> requests.Response:
    """Perform a recorded request (ids substituted) against the fake server."""
    request = subs.apply(request)
    url = server.url + request["path"]
    method = request["method"]
    if "json" in request:
        kwargs["json"] = request["json"]
    return requests.request(method, url, params=request.get("params"), timeout=15, **kwargs)


def check_response(recorded: Dict[str, Any], response: requests.Response) -> None:
    """Same status, same Content-Type (when the recording has one), compatible body shape."""
    where = f"{recorded['request']['method']} {recorded['request']['path']}"
    assert response.status_code == recorded["status"], (where, response.status_code, response.text)
    rec_type = recorded.get("headers", {}).get("Content-Type")
    assert response.headers.get("Content-Type") == rec_type, (where, response.headers)
    body = recorded.get("body")
    if isinstance(body, dict) and set(body) == {"bytes", "head_hex"}:
        assert (len(response.content) == 0) == (body["bytes"] == 0), where
        if body["head_hex"]:
            head = bytes.fromhex(body["head_hex"][:8])  # the magic; sizes differ
            assert response.content[: len(head)] == head, where
        return
    if rec_type and rec_type.startswith("application/json"):
        assert compatible(shape(body), shape(response.json())), (
            where, json.dumps(shape(body))[:800], json.dumps(shape(response.json()))[:800])
    elif rec_type and rec_type.startswith("text/plain"):
        assert response.text == body, (where, response.text)


def prime_cache(server: FakeComfyUI, events: List[Dict[str, Any]]) -> None:
    """Run the nodes the recording found already cached (left over from the recording
    session's previous scenario), so the replay starts from the same cache state."""
    prompt: Optional[Dict[str, Any]] = None
    cached: List[str] = []
    for event in events:
        if event["dir"] == "http" and event["data"]["request"]["path"] == "/prompt":
            prompt = prompt or event["data"]["request"].get("json", {}).get("prompt")
        if event["dir"] == "ws" and event["kind"] == "text" and \
                event["data"]["type"] == "execution_cached":
            cached = event["data"]["data"]["nodes"]
            break
    if not cached or prompt is None:
        return
    priming = {n: prompt[n] for n in cached}
    for n in cached:
        priming[f"prime{n}"] = {"class_type": "ProbeText",
                                "inputs": {"text": "prime", "image": [n, 0]}}
    with WsClient(server.ws_url()) as ws:
        response = requests.post(f"{server.url}/prompt",
                                 json={"prompt": priming, "client_id": ws.sid}, timeout=10)
        assert response.status_code == 200, response.text
        ws.wait_done(response.json()["prompt_id"])
    server.wait_for_idle()
