"""The Comfy API v2 answers as typed values, parsed from the wire once, here.

A v2 deployment (Comfy Cloud, a serverless deployment, comfy-api-proxy in front of a ComfyUI)
describes one execution as a *job* (``GET /api/v2/jobs/{id}``): a status out of
``queued → running → succeeded | failed | expired``, with ``canceling → canceled`` for a
cancel, its outputs (each an asset with a content URL) and, when it failed, an error naming
the node. Uploaded inputs are *assets* identified by a UUID over content hashed with blake3.

Optional fields are read leniently (a proxy leaves some ``null`` that the contract lists as
required); a value of the wrong kind raises :class:`TypeError` naming what was read, which the
wire layer turns into a :class:`~comfysync.ComfyHTTPError` for the route.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping, Optional, Tuple

from attrs import define, field

from .._rest.shapes import wire_array, wire_object

__all__ = [
    "TERMINAL",
    "OUTPUT_KEYS",
    "V2Asset",
    "V2Job",
    "V2JobError",
    "V2Output",
    "V2Progress",
    "parse_time",
]

#: Job statuses after which nothing changes (``canceling`` is not one: the interrupt lands at
#: the next node boundary, or the job finishes first).
TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})

#: The v2 output kind → the output key a native ComfyUI server lists such files under, so a
#: result reads the same on both surfaces (``result.outputs["9"]["images"]``).
OUTPUT_KEYS: Mapping[str, str] = {
    "image": "images",
    "video": "gifs",
    "audio": "audio",
    "text": "text",
    "file": "files",
    "latent": "latents",
}


def _text(value: Any, what: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a string, got {type(value).__name__}")
    return value


def _required_text(data: Mapping[str, Any], key: str, what: str) -> str:
    value = _text(data.get(key), f"{what}.{key}")
    if not value:
        raise TypeError(f"{what}: missing {key!r}")
    return value


def _number(value: Any, what: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what}: expected a number, got {type(value).__name__}")
    return float(value)


def _int(value: Any, what: str) -> Optional[int]:
    number = _number(value, what)
    return None if number is None else int(number)


def parse_time(value: Any) -> Optional[_dt.datetime]:
    """An ISO 8601 timestamp (``Z`` or an offset) as an aware datetime; None when absent or
    unreadable (a timestamp is informative, never a reason to fail a run)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:  # Python 3.9/3.10 read at most 6 fraction digits
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_dt.timezone.utc)


@define(frozen=True)
class V2Progress:
    """A progress snapshot (the job's ``progress`` or an SSE ``progress`` event): ``value``
    the overall fraction, ``step``/``steps`` the running node's sampler steps."""

    value: float = 0.0
    nodes_done: int = 0
    nodes_total: int = 0
    current_node: Optional[str] = None
    step: Optional[int] = None
    steps: Optional[int] = None

    @classmethod
    def from_wire(cls, data: Any) -> V2Progress:
        d = wire_object(data, "progress")
        node = d.get("current_node")
        return cls(
            value=_number(d.get("value"), "progress.value") or 0.0,
            nodes_done=_int(d.get("nodes_done"), "progress.nodes_done") or 0,
            nodes_total=_int(d.get("nodes_total"), "progress.nodes_total") or 0,
            current_node=None if node is None or node == "" else str(node),
            step=_int(d.get("step"), "progress.step"),
            steps=_int(d.get("steps"), "progress.steps"),
        )


@define(frozen=True)
class V2Output:
    """One committed output file of a job: an asset with a (possibly signed, short-lived)
    content URL."""

    node_id: str
    name: str
    kind: str  #: ``image``, ``video``, ``audio``, ``text``, ``file`` or ``latent``
    url: str
    id: str = ""
    content_type: Optional[str] = None
    size_bytes: Optional[int] = None
    hash: Optional[str] = None
    raw: Mapping[str, Any] = field(factory=dict, repr=False, eq=False)

    @property
    def output_key(self) -> str:
        """The native output key for this kind (``images`` for ``image``…)."""
        return OUTPUT_KEYS.get(self.kind, self.kind)

    @classmethod
    def from_wire(cls, data: Any) -> V2Output:
        d = wire_object(data, "output")
        return cls(
            node_id=str(d.get("node_id") if d.get("node_id") is not None else ""),
            name=_required_text(d, "name", "output"),
            kind=_text(d.get("type"), "output.type") or "file",
            url=_required_text(d, "url", "output"),
            id=_text(d.get("id"), "output.id") or "",
            content_type=_text(d.get("content_type"), "output.content_type"),
            size_bytes=_int(d.get("size_bytes"), "output.size_bytes"),
            hash=_text(d.get("hash"), "output.hash"),
            raw=d,
        )


@define(frozen=True)
class V2JobError:
    """Why a job failed: a machine-readable ``code`` (``node_execution_error``…), the
    message, and the node at fault when the deployment says."""

    code: str
    message: str = ""
    node_id: Optional[str] = None
    class_type: Optional[str] = None
    traceback: Optional[str] = None

    @classmethod
    def from_wire(cls, data: Any) -> V2JobError:
        d = wire_object(data, "error")
        node = d.get("node_id")
        traceback = d.get("traceback")
        if isinstance(traceback, list):
            traceback = "".join(str(line) for line in traceback)
        return cls(
            code=_text(d.get("code"), "error.code") or "error",
            message=_text(d.get("message"), "error.message") or "",
            node_id=None if node is None else str(node),
            class_type=_text(d.get("class_type"), "error.class_type"),
            traceback=_text(traceback, "error.traceback"),
        )


@define(frozen=True)
class V2Job:
    """One job as ``GET /api/v2/jobs/{id}`` (or the submit / cancel answer) describes it."""

    id: str
    status: str
    queue_position: Optional[int] = None
    progress: Optional[V2Progress] = None
    outputs: Tuple[V2Output, ...] = ()
    error: Optional[V2JobError] = None
    outputs_reused: bool = False
    created_at: Optional[_dt.datetime] = None
    started_at: Optional[_dt.datetime] = None
    completed_at: Optional[_dt.datetime] = None
    raw: Mapping[str, Any] = field(factory=dict, repr=False, eq=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_wire(cls, data: Any) -> V2Job:
        d = wire_object(data, "job")
        progress = d.get("progress")
        error = d.get("error")
        return cls(
            id=_required_text(d, "id", "job"),
            status=_required_text(d, "status", "job"),
            queue_position=_int(d.get("queue_position"), "job.queue_position"),
            progress=None if progress is None else V2Progress.from_wire(progress),
            outputs=tuple(V2Output.from_wire(o) for o in wire_array(d.get("outputs"), "outputs")),
            error=None if error is None else V2JobError.from_wire(error),
            outputs_reused=bool(d.get("outputs_reused")),
            created_at=parse_time(d.get("created_at")),
            started_at=parse_time(d.get("started_at")),
            completed_at=parse_time(d.get("completed_at")),
            raw=d,
        )


@define(frozen=True)
class V2Asset:
    """An uploaded (or deduplicated) input: ``id`` is what a workflow references,
    ``created_new`` False when the deployment already had the bytes."""

    id: str
    hash: Optional[str] = None
    file_path: Optional[str] = None
    content_type: Optional[str] = None
    size_bytes: Optional[int] = None
    created_new: Optional[bool] = None
    url: Optional[str] = None
    raw: Mapping[str, Any] = field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_wire(cls, data: Any) -> V2Asset:
        d = wire_object(data, "asset")
        created = d.get("created_new")
        return cls(
            id=_required_text(d, "id", "asset"),
            hash=_text(d.get("hash"), "asset.hash"),
            file_path=_text(d.get("file_path"), "asset.file_path"),
            content_type=_text(d.get("content_type"), "asset.content_type"),
            size_bytes=_int(d.get("size_bytes"), "asset.size_bytes"),
            created_new=created if isinstance(created, bool) else None,
            url=_text(d.get("url"), "asset.url"),
            raw=d,
        )

    def reference(self) -> dict[str, Any]:
        """The ``core/ASSET`` object a workflow input holds in place of a file name."""
        info: dict[str, Any] = {"id": self.id}
        if self.hash:
            info["hash"] = self.hash
        if self.file_path:
            info["file_path"] = self.file_path
        return {"__type": "core/ASSET", "info": info}
