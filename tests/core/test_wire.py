"""Pure frame decoding against real server traffic and against broken frames (the framing
itself is tested through the listener, in ``test_listener_frames.py``).

``tests/data/ws_messages.jsonl`` holds a sample of the recorded ComfyUI v0.3.64 WebSocket
traffic (one of each message shape; binary frames as the recorder summarised them), so these
tests need nothing outside the repository. When the full recordings are beside the repository
(``../shared/protocol/recordings``, or ``$COMFYSYNC_RECORDINGS``) every recorded message is
decoded as well.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from comfysync import events as ev
from comfysync._ws.wire import FrameError, decode_binary, decode_message, decode_text

DATA = Path(__file__).resolve().parents[1] / "data" / "ws_messages.jsonl"
RECORDINGS = Path(
    os.environ.get(
        "COMFYSYNC_RECORDINGS",
        str(Path(__file__).resolve().parents[2].parent / "shared" / "protocol" / "recordings"),
    )
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 16


def _load(path: Path) -> List[Dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _sample() -> List[Dict[str, Any]]:
    return [r for r in _load(DATA) if r["kind"] in ("text", "binary")]


def _all_recorded() -> List[Tuple[str, Dict[str, Any]]]:
    if not RECORDINGS.is_dir():
        return []
    found = []
    for path in sorted(RECORDINGS.glob("*.jsonl")):
        for record in _load(path):
            if record["dir"] == "ws" and record["kind"] in ("text", "binary"):
                found.append((path.stem, record))
    return found


def _frame_from_summary(summary: Dict[str, Any]) -> bytes:
    """Rebuild a binary frame from the recorder's summary: header fields from ``head_hex``
    and the metadata, the image's first bytes, padding up to the recorded size."""
    kind = summary["event_type"]
    image_head = bytes.fromhex(summary["image_head_hex"])
    if kind == 1:
        header = struct.pack(">II", 1, summary["format_field"])
    elif kind == 4:
        meta = json.dumps(summary["metadata"]).encode()
        header = struct.pack(">II", 4, len(meta)) + meta
    else:
        raise AssertionError(f"no recorded frames of type {kind}")
    frame = header + image_head
    frame += b"\x00" * max(0, summary["size"] - len(frame))
    if kind == 1:  # the first 16 bytes are exactly what the server sent
        assert frame[:16] == bytes.fromhex(summary["head_hex"])
    return frame


def _check_text(message: Dict[str, Any]) -> ev.Event:
    event = decode_text(json.dumps(message))
    assert type(event) is ev.WIRE_NAMES[message["type"]]
    assert event.type == message["type"]
    assert event.raw == message
    data = message["data"]
    assert event.prompt_id == data.get("prompt_id")
    return event


def _check_binary(summary: Dict[str, Any]) -> ev.Preview:
    event = decode_binary(_frame_from_summary(summary))
    assert isinstance(event, ev.Preview)
    assert event.event_type == summary["event_type"]
    assert len(event.image) == summary["size"] - (
        8 + len(json.dumps(summary["metadata"]).encode()) if summary["event_type"] == 4 else 8
    )
    assert event.image.startswith(bytes.fromhex(summary["image_head_hex"]))
    if summary["event_type"] == 4:
        meta = summary["metadata"]
        assert event.prompt_id == meta["prompt_id"]
        assert event.node_id == meta["node_id"]
        assert event.display_node_id == meta["display_node_id"]
        assert event.mime_type == meta["image_type"]
    else:
        assert event.prompt_id is None and event.node_id is None
        assert event.mime_type == {1: "image/jpeg", 2: "image/png"}[summary["format_field"]]
    return event


# --------------------------------------------------------------------------- recorded traffic


@pytest.mark.parametrize("record", _sample(), ids=lambda r: f"{r['source']}-{r['kind']}")
def test_sample_of_recorded_traffic_decodes(record: Dict[str, Any]) -> None:
    if record["kind"] == "text":
        _check_text(record["data"])
    else:
        _check_binary(record["data"])


def test_sample_covers_every_message_type_the_server_sent() -> None:
    types = {r["data"]["type"] for r in _sample() if r["kind"] == "text"}
    assert types >= {
        "status",
        "execution_start",
        "execution_cached",
        "executing",
        "progress",
        "progress_state",
        "executed",
        "execution_success",
        "execution_error",
        "execution_interrupted",
        "feature_flags",
    }
    assert {r["data"]["event_type"] for r in _sample() if r["kind"] == "binary"} == {1, 4}


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason="shared recordings not beside the repo")
def test_every_recorded_message_decodes() -> None:
    recorded = _all_recorded()
    assert len(recorded) >= 239  # 225 text + 14 binary frames in the v0.3.64 recordings
    for source, record in recorded:
        if record["kind"] == "text":
            event = _check_text(record["data"])
            assert not isinstance(event, ev.UnknownEvent), source
        else:
            _check_binary(record["data"])


# --------------------------------------------------------------------------- field details


def test_status_greeting_and_update() -> None:
    greeting = decode_text(
        '{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}, '
        '"sid": "abc"}}'
    )
    assert greeting == ev.Status(2, "abc")
    update = decode_text(
        '{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}}'
    )
    assert update == ev.Status(0, None)


def test_executing_null_means_finished() -> None:
    event = decode_text('{"type": "executing", "data": {"node": null, "prompt_id": "p"}}')
    assert event == ev.Executing(None, None, "p")


def test_executing_after_reconnect_has_no_prompt_id() -> None:
    event = decode_text('{"type": "executing", "data": {"node": "1"}}')
    assert event == ev.Executing("1", None, None)


def test_execution_error_fields() -> None:
    message = {
        "type": "execution_error",
        "data": {
            "prompt_id": "p",
            "node_id": "1",
            "node_type": "ProtoFail",
            "executed": [],
            "exception_message": "proto failure boom\n",
            "exception_type": "ValueError",
            "traceback": ["  File a\n", "  File b\n"],
            "current_inputs": {"value": ["boom"]},
            "current_outputs": ["1"],
            "timestamp": 1795377897378,
        },
    }
    event = decode_text(json.dumps(message))
    assert isinstance(event, ev.ExecutionError)
    assert event.exception_message == "proto failure boom\n"  # as sent, trailing newline kept
    assert event.traceback == ("  File a\n", "  File b\n")
    assert event.executed == ()
    assert event.current_inputs == {"value": ["boom"]}
    assert event.current_outputs == ["1"]
    assert event.timestamp == 1795377897378


def test_execution_blocked_variant_without_timestamp() -> None:
    event = decode_text(
        json.dumps(
            {
                "type": "execution_error",
                "data": {
                    "prompt_id": "p",
                    "node_id": "3",
                    "node_type": "X",
                    "exception_message": "Execution Blocked: no",
                    "exception_type": "ExecutionBlocked",
                    "traceback": [],
                    "current_inputs": [],
                    "current_outputs": [],
                },
            }
        )
    )
    assert isinstance(event, ev.ExecutionError)
    assert event.timestamp is None and event.exception_type == "ExecutionBlocked"


def test_progress_state_nodes() -> None:
    event = decode_text(
        json.dumps(
            {
                "type": "progress_state",
                "data": {
                    "prompt_id": "p",
                    "nodes": {
                        "1": {
                            "value": 1,
                            "max": 1,
                            "state": "finished",
                            "node_id": "1",
                            "prompt_id": "p",
                            "display_node_id": "1",
                            "parent_node_id": None,
                            "real_node_id": "1",
                        },
                        "2": {"value": 0.0, "max": 1.0, "state": "running"},
                    },
                },
            }
        )
    )
    assert isinstance(event, ev.ProgressState)
    assert event.nodes["1"] == ev.NodeProgress(1, 1, "finished", "1", "1", None, "1")
    assert event.nodes["2"] == ev.NodeProgress(0.0, 1.0, "running", "2")


def test_executed_from_cache_without_ui() -> None:
    event = decode_text(
        '{"type": "executed", "data": {"node": "2", "output": null, "prompt_id": "p"}}'
    )
    assert event == ev.Executed("2", None, None, "p")


def test_integer_ids_become_strings() -> None:
    event = decode_text(
        '{"type": "progress", "data": {"value": 1, "max": 2, "node": 7, "prompt_id": 9}}'
    )
    assert event == ev.Progress(1, 2, "7", "9")


def test_lists_become_tuples() -> None:
    event = decode_text(
        '{"type": "execution_cached", "data": {"nodes": ["1", 2], "prompt_id": "p"}}'
    )
    assert isinstance(event, ev.ExecutionCached)
    assert event.nodes == ("1", "2")


def test_feature_flags_and_logs() -> None:
    flags = decode_text('{"type": "feature_flags", "data": {"supports_preview_metadata": true}}')
    assert flags == ev.FeatureFlags({"supports_preview_metadata": True})
    logs = decode_text(
        '{"type": "logs", "data": {"entries": [{"t": "x", "m": "hi"}], "size": null}}'
    )
    assert isinstance(logs, ev.Logs)
    assert logs.entries == ({"t": "x", "m": "hi"},)


def test_unknown_types_are_events_not_errors() -> None:
    event = decode_text('{"type": "crystools.monitor", "data": {"cpu_utilization": 3}}')
    assert event == ev.UnknownEvent("crystools.monitor", {"cpu_utilization": 3})
    assert event.raw == {"type": "crystools.monitor", "data": {"cpu_utilization": 3}}
    assert decode_text('{"type": "x"}') == ev.UnknownEvent("x", None)


def test_bytes_input_is_accepted() -> None:
    assert decode_text(b'{"type": "executing", "data": {"node": null}}') == ev.Executing()


# --------------------------------------------------------------------------- malformed text


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"type": "status", "data": ', "not valid JSON"),
        ("", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid UTF-8"),
        ('["type", "status"]', "not an object"),
        ("42", "not an object"),
        ('{"data": {}}', 'no "type"'),
        ('{"type": 3, "data": {}}', 'no "type"'),
        ('{"type": "", "data": {}}', 'no "type"'),
        ('{"type": "progress", "data": [1, 2]}', "'data' should be an object"),
        ('{"type": "progress"}', "'data' should be an object"),
        ('{"type": "progress", "data": {"value": "1", "max": 2}}', "'value' should be a number"),
        ('{"type": "progress", "data": {"value": true, "max": 2}}', "'value' should be a number"),
        ('{"type": "progress", "data": {"value": 1}}', "'max' should be a number"),
        ('{"type": "status", "data": {}}', "'status' should be an object"),
        (
            '{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": "1"}}}}',
            "integer",
        ),
        ('{"type": "executing", "data": {"node": ["1"]}}', "'node' should be a string"),
        ('{"type": "execution_start", "data": {"prompt_id": {"a": 1}}}', "'prompt_id'"),
        ('{"type": "execution_start", "data": {"timestamp": "now"}}', "'timestamp'"),
        ('{"type": "progress_state", "data": {"nodes": []}}', "'nodes' should be an object"),
        ('{"type": "progress_state", "data": {"nodes": {"1": 5}}}', "node '1'"),
        ('{"type": "executed", "data": {"node": "1", "output": [1]}}', "'output'"),
        ('{"type": "execution_cached", "data": {"nodes": "1,2"}}', "'nodes' should be a list"),
        ('{"type": "logs", "data": {"entries": "x"}}', "'entries' should be a list"),
    ],
)
def test_malformed_text_frames_raise_frame_error(text: Any, reason: str) -> None:
    with pytest.raises(FrameError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        decode_text(text)


def test_frame_error_is_a_value_error() -> None:
    assert issubclass(FrameError, ValueError)


def test_frame_errors_never_quote_the_payload() -> None:
    secrets = [
        '{"type": "progress", "data": {"value": "hunter2-secret", "max": 1}}',
        '{"type": "status", "data": {"token": "hunter2-secret"',
        '{"type": "executing", "data": {"node": {"hunter2-secret": 1}}}',
    ]
    for text in secrets:
        with pytest.raises(FrameError) as info:
            decode_text(text)
        assert "hunter2" not in str(info.value)


# --------------------------------------------------------------------------- binary frames


def test_type1_preview_jpeg_and_png() -> None:
    jpeg = decode_binary(struct.pack(">II", 1, 1) + JPEG)
    assert jpeg == ev.Preview(JPEG, "image/jpeg", event_type=1)
    png = decode_binary(struct.pack(">II", 1, 2) + PNG)
    assert isinstance(png, ev.Preview) and png.mime_type == "image/png" and png.image == PNG


def test_mime_type_follows_the_bytes_not_the_label() -> None:
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8
    event = decode_binary(struct.pack(">II", 1, 1) + webp)  # the server labels it JPEG
    assert isinstance(event, ev.Preview) and event.mime_type == "image/webp"
    unknown = decode_binary(struct.pack(">II", 1, 7) + b"not an image")
    assert isinstance(unknown, ev.Preview) and unknown.mime_type == "application/octet-stream"
    labelled = decode_binary(struct.pack(">II", 1, 2) + b"opaque")
    assert isinstance(labelled, ev.Preview) and labelled.mime_type == "image/png"


def test_type3_text() -> None:
    frame = struct.pack(">II", 3, 2) + b"12" + "héllo".encode()
    assert decode_binary(frame) == ev.ProgressText("héllo", "12")
    empty = decode_binary(struct.pack(">II", 3, 1) + b"4")
    assert empty == ev.ProgressText("", "4")
    bad_text = decode_binary(struct.pack(">II", 3, 1) + b"4" + b"\xff ok")
    assert isinstance(bad_text, ev.ProgressText) and bad_text.text.endswith(" ok")


def test_type4_preview_with_metadata() -> None:
    meta = {
        "node_id": "2",
        "prompt_id": "p",
        "display_node_id": "2",
        "parent_node_id": None,
        "real_node_id": "2",
        "image_type": "image/png",
    }
    raw = json.dumps(meta).encode()
    event = decode_binary(struct.pack(">II", 4, len(raw)) + raw + PNG)
    assert event == ev.Preview(PNG, "image/png", "2", "p", "2", None, "2", 4)
    assert event.raw == meta


def test_memoryview_and_bytearray_inputs() -> None:
    frame = struct.pack(">II", 1, 1) + JPEG
    assert decode_binary(memoryview(frame)) == decode_binary(bytearray(frame))


def test_unknown_binary_types_become_unknown_events() -> None:
    assert decode_binary(struct.pack(">I", 2) + b"abc") == ev.UnknownEvent("binary:2", b"abc")
    assert decode_binary(struct.pack(">I", 99)) == ev.UnknownEvent("binary:99", b"")


@pytest.mark.parametrize(
    "frame, reason",
    [
        (b"", "too short for its event type"),
        (b"\x00\x00\x01", "too short for its event type"),
        (struct.pack(">I", 1), "too short for its image format"),
        (struct.pack(">I", 1) + b"\x00\x00", "too short for its image format"),
        (struct.pack(">II", 1, 1), "no image bytes"),
        (struct.pack(">I", 3) + b"\x00", "too short for its node id length"),
        (struct.pack(">II", 3, 10) + b"abc", "shorter than its node id"),
        (struct.pack(">II", 3, 2) + b"\xff\xfe", "not UTF-8"),
        (struct.pack(">I", 4), "too short for its metadata length"),
        (struct.pack(">II", 4, 500) + b"{}", "shorter than its metadata"),
        (struct.pack(">II", 4, 3) + b"{x}" + PNG, "metadata is not valid JSON"),
        (struct.pack(">II", 4, 2) + b"[]" + PNG, "metadata is not an object"),
        (struct.pack(">II", 4, 2) + b"{}", "no image bytes"),
        (struct.pack(">II", 4, 14) + b'{"node_id":[]}' + PNG, "'node_id'"),
    ],
)
def test_truncated_or_malformed_binary_frames(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        decode_binary(frame)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "x.custom", "data": "\xed\xa0\x80"}',  # an encoded lone surrogate
        b'{"type": "x.custom", "data": "\xff"}',
        '{"type": "x.custom", "data": 1}'.encode("utf-16-le"),  # valid UTF-8, wrong text
    ],
)
def test_text_frames_are_utf8_and_nothing_else(payload: bytes) -> None:
    """RFC 6455 §5.6: text frames are UTF-8. json.loads(bytes) would also guess UTF-16/32
    and let encoded surrogates through (surrogatepass); a str holding a lone surrogate
    breaks later in user code (writing it to a file), so the frame is refused here.
    (UTF-16 bytes happen to be valid UTF-8 — NULs included — and then are not JSON.)"""
    with pytest.raises(FrameError, match="not valid UTF-8|not valid JSON"):
        decode_text(payload)


def test_absurdly_nested_json_is_a_frame_error_not_a_crash() -> None:
    """json.loads raises RecursionError on deep nesting: it must not escape the decoder
    (it would end the listener thread)."""
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(FrameError, match="nested"):
        decode_text('{"type": "x.custom", "data": ' + deep + "}")
    meta = ('{"prompt_id": ' + deep + "}").encode()
    with pytest.raises(FrameError, match="nested"):
        decode_binary(struct.pack(">II", 4, len(meta)) + meta + PNG)


def test_decode_message_reads_history_pairs_like_frames() -> None:
    """History keeps ``[type, data]`` pairs with the payloads the socket carried."""
    data = {"prompt_id": "p", "node_id": "2", "node_type": "ProbeFail",
            "exception_type": "RuntimeError", "exception_message": "boom\n",
            "traceback": ["tb"], "executed": [], "timestamp": 5}
    from_history = decode_message("execution_error", data)
    from_socket = decode_text(json.dumps({"type": "execution_error", "data": data}))
    assert from_history == from_socket
    assert from_history.raw == {"type": "execution_error", "data": data}
    assert isinstance(decode_message("x.custom", [1]), ev.UnknownEvent)
    with pytest.raises(FrameError, match="execution_error: 'data' should be an object"):
        decode_message("execution_error", "oops")
