"""Decoding of WebSocket frames into :mod:`comfysync.events` — pure functions, no I/O.

``decode_text`` takes a JSON text frame, ``decode_binary`` a binary frame (layouts below).
Both return an event or raise :class:`FrameError`, the one error the listener logs and skips.

How strict: the envelope and the fields a client routes or computes on (``type``, ``data``
being an object, ``prompt_id``, node ids, progress numbers, queue size, binary lengths) must
be well-formed, otherwise the frame is refused. Descriptive fields are taken leniently (ids
sent as integers become strings, list items are stringified), because refusing a slightly odd
``execution_error`` would lose the end of a prompt. Messages of a type comfysync does not know
are never an error: they become :class:`~comfysync.events.UnknownEvent`.

Error messages name the message type and field, never the payload (it may hold secrets).
"""

from __future__ import annotations

import json
import struct
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from ..events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    FeatureFlags,
    Logs,
    NodeProgress,
    Preview,
    Progress,
    ProgressState,
    ProgressText,
    Status,
    UnknownEvent,
)

__all__ = [
    "FrameError",
    "decode_text",
    "decode_message",
    "decode_binary",
    "BINARY_PREVIEW_IMAGE",
    "BINARY_TEXT",
    "BINARY_PREVIEW_IMAGE_WITH_METADATA",
]

#: Binary event types of ComfyUI's socket. Type 2 is server-internal and never sent.
BINARY_PREVIEW_IMAGE = 1
BINARY_TEXT = 3
BINARY_PREVIEW_IMAGE_WITH_METADATA = 4

_U32 = struct.Struct(">I")
_FORMAT_MIME = {1: "image/jpeg", 2: "image/png"}

_Data = Dict[str, Any]
_Raw = Dict[str, Any]


class FrameError(ValueError):
    """A frame that cannot be decoded: bad JSON, not an object, no ``type``, a field of the
    wrong type, or a binary frame shorter than its own headers."""


# --------------------------------------------------------------------------- field readers


def _id(data: Mapping[str, Any], key: str) -> Optional[str]:
    """An optional id (prompt or node): a string, or an integer turned into one."""
    value = data.get(key)
    if value is None or type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise FrameError(f"field {key!r} should be a string, got {type(value).__name__}")


def _text(data: Mapping[str, Any], key: str) -> Optional[str]:
    """An optional descriptive string; other scalars are stringified."""
    value = data.get(key)
    if value is None or type(value) is str:
        return value
    if isinstance(value, (int, float)):
        return str(value)
    raise FrameError(f"field {key!r} should be a string, got {type(value).__name__}")


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise FrameError(f"field {key!r} should be a number, got {type(value).__name__}")


def _timestamp(data: Mapping[str, Any]) -> Optional[int]:
    value = data.get("timestamp")
    if value is None or type(value) is int:
        return value
    if isinstance(value, float):
        return int(value)
    raise FrameError(f"field 'timestamp' should be an integer, got {type(value).__name__}")


def _str_tuple(data: Mapping[str, Any], key: str) -> Tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(item if type(item) is str else str(item) for item in value)
    raise FrameError(f"field {key!r} should be a list, got {type(value).__name__}")


def _object(value: Any, what: str) -> Dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise FrameError(f"{what} should be an object, got {type(value).__name__}")


# --------------------------------------------------------------------------- JSON messages


def _status(data: _Data, raw: _Raw) -> Event:
    status = _object(data.get("status"), "field 'status'")
    exec_info = _object(status.get("exec_info"), "field 'status.exec_info'")
    remaining = exec_info.get("queue_remaining")
    if type(remaining) is not int:
        raise FrameError(
            "field 'status.exec_info.queue_remaining' should be an integer, "
            f"got {type(remaining).__name__}"
        )
    return Status(remaining, _id(data, "sid"), raw=raw)


def _execution_start(data: _Data, raw: _Raw) -> Event:
    return ExecutionStart(_id(data, "prompt_id"), _timestamp(data), raw=raw)


def _execution_cached(data: _Data, raw: _Raw) -> Event:
    return ExecutionCached(
        _str_tuple(data, "nodes"), _id(data, "prompt_id"), _timestamp(data), raw=raw
    )


def _executing(data: _Data, raw: _Raw) -> Event:
    return Executing(_id(data, "node"), _id(data, "display_node"), _id(data, "prompt_id"), raw=raw)


def _progress(data: _Data, raw: _Raw) -> Event:
    return Progress(
        _number(data, "value"),
        _number(data, "max"),
        _id(data, "node"),
        _id(data, "prompt_id"),
        raw=raw,
    )


def _node_progress(key: str, value: Any) -> NodeProgress:
    entry = _object(value, f"progress_state node {key!r}")
    state = entry.get("state")
    return NodeProgress(
        _number(entry, "value"),
        _number(entry, "max"),
        state if type(state) is str else str(state),
        _id(entry, "node_id") or key,
        _id(entry, "display_node_id"),
        _id(entry, "parent_node_id"),
        _id(entry, "real_node_id"),
    )


def _progress_state(data: _Data, raw: _Raw) -> Event:
    nodes = _object(data.get("nodes", {}), "field 'nodes'")
    return ProgressState(
        {str(k): _node_progress(str(k), v) for k, v in nodes.items()},
        _id(data, "prompt_id"),
        raw=raw,
    )


def _executed(data: _Data, raw: _Raw) -> Event:
    output = data.get("output")
    if output is not None:
        output = _object(output, "field 'output'")
    return Executed(
        _id(data, "node"),
        _id(data, "display_node"),
        output,
        _id(data, "prompt_id"),
        raw=raw,
    )


def _execution_success(data: _Data, raw: _Raw) -> Event:
    return ExecutionSuccess(_id(data, "prompt_id"), _timestamp(data), raw=raw)


def _execution_error(data: _Data, raw: _Raw) -> Event:
    traceback = data.get("traceback")
    if isinstance(traceback, str):  # tolerate a pre-joined traceback
        frames: Tuple[str, ...] = (traceback,)
    else:
        frames = _str_tuple(data, "traceback")
    return ExecutionError(
        node_id=_id(data, "node_id"),
        node_type=_text(data, "node_type"),
        exception_type=_text(data, "exception_type"),
        exception_message=_text(data, "exception_message") or "",
        traceback=frames,
        executed=_str_tuple(data, "executed"),
        current_inputs=data.get("current_inputs"),
        current_outputs=data.get("current_outputs"),
        prompt_id=_id(data, "prompt_id"),
        timestamp=_timestamp(data),
        raw=raw,
    )


def _execution_interrupted(data: _Data, raw: _Raw) -> Event:
    return ExecutionInterrupted(
        _id(data, "node_id"),
        _text(data, "node_type"),
        _str_tuple(data, "executed"),
        _id(data, "prompt_id"),
        _timestamp(data),
        raw=raw,
    )


def _feature_flags(data: _Data, raw: _Raw) -> Event:
    return FeatureFlags(data, raw=raw)


def _logs(data: _Data, raw: _Raw) -> Event:
    entries = data.get("entries")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise FrameError(f"field 'entries' should be a list, got {type(entries).__name__}")
    return Logs(tuple(entries), data.get("size"), raw=raw)


_PARSERS: Dict[str, Callable[[_Data, _Raw], Event]] = {
    Status.TYPE: _status,
    ExecutionStart.TYPE: _execution_start,
    ExecutionCached.TYPE: _execution_cached,
    Executing.TYPE: _executing,
    Progress.TYPE: _progress,
    ProgressState.TYPE: _progress_state,
    Executed.TYPE: _executed,
    ExecutionSuccess.TYPE: _execution_success,
    ExecutionError.TYPE: _execution_error,
    ExecutionInterrupted.TYPE: _execution_interrupted,
    FeatureFlags.TYPE: _feature_flags,
    Logs.TYPE: _logs,
}


def decode_text(text: Union[str, bytes, bytearray]) -> Event:
    """Decode one JSON text frame ``{"type": ..., "data": {...}}`` into its event.

    Unknown types become :class:`UnknownEvent` (with whatever ``data`` they carry); a known
    type whose ``data`` is not an object, or has a wrongly typed field, raises
    :class:`FrameError`, as do invalid JSON, a non-object and a missing ``type``.
    """
    if not isinstance(text, str):
        # Strict UTF-8 first (RFC 6455 §5.6): json.loads(bytes) would guess UTF-16/32 from
        # NUL bytes and pass encoded surrogates through, handing out unencodable strings.
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("text frame is not valid UTF-8") from None
    try:
        message = json.loads(text)
    except RecursionError:
        raise FrameError("text frame is too deeply nested") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        # Only the position, never the text: the payload may hold secrets.
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise FrameError(f"text frame is not valid JSON{where}") from None
    if not isinstance(message, dict):
        raise FrameError(f"text frame is a JSON {type(message).__name__}, not an object")
    kind = message.get("type")
    if type(kind) is not str or not kind:
        raise FrameError('text frame has no "type" string')
    return decode_message(kind, message.get("data"), message)


def decode_message(kind: str, data: Any, raw: Optional[_Raw] = None) -> Event:
    """Decode a message already split into its ``type`` and ``data``: the body of a text
    frame, or one ``[type, data]`` pair of a history entry's ``status.messages`` (the server
    stores the same payloads it sends). ``raw`` defaults to ``{"type": kind, "data": data}``.
    Same rules and errors as :func:`decode_text`."""
    if raw is None:
        raw = {"type": kind, "data": data}
    parser = _PARSERS.get(kind)
    if parser is None:
        return UnknownEvent(kind, data, raw=raw)
    if not isinstance(data, dict):
        raise FrameError(f"{kind}: 'data' should be an object, got {type(data).__name__}")
    try:
        return parser(data, raw)
    except FrameError as exc:
        raise FrameError(f"{kind}: {exc}") from None


# --------------------------------------------------------------------------- binary frames


def _sniff_mime(image: bytes, declared: Optional[str]) -> str:
    """The image's real type from its magic bytes; the server labels everything that is not
    PNG as JPEG, so the label is only the fallback."""
    if image.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if image.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    if image.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return declared or "application/octet-stream"


def _u32(data: bytes, offset: int, what: str) -> int:
    if len(data) < offset + 4:
        raise FrameError(f"binary frame of {len(data)} bytes is too short for its {what}")
    value: int = _U32.unpack_from(data, offset)[0]
    return value


def _preview_image(data: bytes) -> Event:
    fmt = _u32(data, 4, "image format")
    image = data[8:]
    if not image:
        raise FrameError("preview frame (type 1) has no image bytes")
    return Preview(
        image, _sniff_mime(image, _FORMAT_MIME.get(fmt)), event_type=BINARY_PREVIEW_IMAGE
    )


def _text_frame(data: bytes) -> Event:
    length = _u32(data, 4, "node id length")
    end = 8 + length
    if len(data) < end:
        raise FrameError(
            f"text frame (type 3) of {len(data)} bytes is shorter than its node id ({length} bytes)"
        )
    try:
        node_id = data[8:end].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("text frame (type 3) has a node id that is not UTF-8") from None
    text = data[end:].decode("utf-8", errors="replace")
    return ProgressText(text, node_id or None)


def _preview_with_metadata(data: bytes) -> Event:
    length = _u32(data, 4, "metadata length")
    end = 8 + length
    if len(data) < end:
        raise FrameError(
            f"preview frame (type 4) of {len(data)} bytes is shorter than its metadata "
            f"({length} bytes)"
        )
    try:
        meta = json.loads(data[8:end])
    except RecursionError:
        raise FrameError("preview frame (type 4) metadata is too deeply nested") from None
    except (ValueError, UnicodeDecodeError):
        raise FrameError("preview frame (type 4) metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise FrameError("preview frame (type 4) metadata is not an object")
    image = data[end:]
    if not image:
        raise FrameError("preview frame (type 4) has no image bytes")
    try:
        declared = _text(meta, "image_type")
        return Preview(
            image,
            _sniff_mime(image, declared),
            _id(meta, "node_id"),
            _id(meta, "prompt_id"),
            _id(meta, "display_node_id"),
            _id(meta, "parent_node_id"),
            _id(meta, "real_node_id"),
            BINARY_PREVIEW_IMAGE_WITH_METADATA,
            raw=meta,
        )
    except FrameError as exc:
        raise FrameError(f"preview frame (type 4) metadata: {exc}") from None


_BINARY_PARSERS: Dict[int, Callable[[bytes], Event]] = {
    BINARY_PREVIEW_IMAGE: _preview_image,
    BINARY_TEXT: _text_frame,
    BINARY_PREVIEW_IMAGE_WITH_METADATA: _preview_with_metadata,
}


def decode_binary(data: Union[bytes, bytearray, memoryview]) -> Event:
    """Decode one binary frame: 4-byte big-endian event type, then

    * 1: 4-byte image format (1 JPEG, 2 PNG) + image → :class:`Preview` without ids;
    * 3: 4-byte node id length + node id + UTF-8 text → :class:`ProgressText`;
    * 4: 4-byte metadata length + JSON metadata + image → :class:`Preview` with ids.

    Other types become ``UnknownEvent(type="binary:<n>", data=<payload bytes>)``. A frame
    shorter than its own headers, or with bad metadata, raises :class:`FrameError`.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    kind = _u32(data, 0, "event type")
    parser = _BINARY_PARSERS.get(kind)
    if parser is None:
        return UnknownEvent(f"binary:{kind}", data[4:])
    return parser(data)
