"""Typed, immutable models of ComfyUI's REST answers about prompts, files and the system.

Each model is parsed from the wire dict in exactly one ``from_wire`` classmethod, so the
knowledge of the server's JSON shapes lives here (and, for node definitions, in
:mod:`comfysync._rest.node_defs`, whose models this module re-exports). Models keep the server's
dict in ``raw`` where users may need fields we do not model (custom nodes and newer servers
add keys). ``raw`` and anything that may hold secrets (``extra_data`` can carry API keys) are
left out of ``repr``.

``from_wire`` raises ``TypeError``/``ValueError`` for a shape it cannot read; the REST layer
turns that into a :class:`~comfysync.errors.ComfyHTTPError` naming the URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from attrs import define, field

from .node_defs import InputSpec, NodeDef, SamplerInfo
from .shapes import ms_to_datetime, wire_array, wire_object

__all__ = [
    "Device",
    "FileRef",
    "HistoryEntry",
    "InputSpec",
    "NodeDef",
    "QueueItem",
    "QueueState",
    "QueuedPrompt",
    "SamplerInfo",
    "SystemStats",
]


# -- files ------------------------------------------------------------------------------------


@define(frozen=True)
class FileRef:
    """A file on the server: ``filename`` inside ``subfolder`` of the ``type`` directory
    (``input``, ``output`` or ``temp``). What ``/view`` wants and what uploads return."""

    filename: str
    subfolder: str = ""
    type: str = "output"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> FileRef:
        """From ``data``, an output item (``filename``) or an upload answer (``name``);
        a missing ``type`` means ``output``."""
        data = wire_object(data, "file reference")
        name = data.get("filename", data.get("name"))
        if not isinstance(name, str) or not name:
            raise ValueError("file reference without a filename")
        return cls(
            filename=name,
            subfolder=str(data.get("subfolder") or ""),
            type=str(data.get("type") or "output"),
        )

    def to_wire(self) -> Dict[str, str]:
        """``{"filename", "subfolder", "type"}`` — the ``/view`` query and ``original_ref``."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


# -- submitting and the queue -----------------------------------------------------------------


@define(frozen=True)
class QueuedPrompt:
    """The answer to ``POST /prompt``.

    ``number`` is the queue priority (lower runs first), not a position. ``node_errors`` is
    non-empty when the server accepted the prompt but dropped some outputs that failed
    validation.
    """

    prompt_id: str
    number: float
    node_errors: Dict[str, Any] = field(factory=dict)
    raw: Dict[str, Any] = field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> QueuedPrompt:
        """From the ``POST /prompt`` answer ``data`` (``prompt_id``, ``number``,
        ``node_errors``); :class:`ValueError` without an id or with a non-numeric number."""
        data = wire_object(data, "POST /prompt answer")
        prompt_id = data.get("prompt_id")
        if prompt_id is None:
            raise ValueError("POST /prompt answer without prompt_id")
        number = data.get("number", 0)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"POST /prompt answer has a non-numeric number {number!r}")
        return cls(
            prompt_id=str(prompt_id),
            number=number,
            node_errors=wire_object(data.get("node_errors"), "node_errors"),
            raw=data,
        )

    @property
    def has_node_errors(self) -> bool:
        """True when some outputs were dropped for failing validation (see ``node_errors``)."""
        return bool(self.node_errors)


@define(frozen=True)
class QueueItem:
    """One queued or running prompt: the server's 5-element
    ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""

    number: float
    prompt_id: str
    prompt: Dict[str, Any] = field(factory=dict, repr=False)
    extra_data: Dict[str, Any] = field(factory=dict, repr=False)
    outputs_to_execute: List[str] = field(factory=list)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> QueueItem:
        """From one entry ``data`` of ``queue_running``/``queue_pending``; missing trailing
        elements read as empty, fewer than two (number and id) raise :class:`ValueError`."""
        item = wire_array(data, "queue item")
        if len(item) < 2:
            raise ValueError(f"queue item has {len(item)} elements, expected 5")
        padded = item + [None] * (5 - len(item))
        number = padded[0]
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"queue item has a non-numeric number {number!r}")
        return cls(
            number=number,
            prompt_id=str(padded[1]),
            prompt=wire_object(padded[2], "queued prompt"),
            extra_data=wire_object(padded[3], "queued extra_data"),
            outputs_to_execute=[str(x) for x in wire_array(padded[4], "outputs_to_execute")],
        )

    @property
    def client_id(self) -> Optional[str]:
        """The submitting client's id, when it sent one."""
        value = self.extra_data.get("client_id")
        return str(value) if value is not None else None


def _sort_key(item: QueueItem) -> Tuple[float, str]:
    return (item.number, item.prompt_id)


@define(frozen=True)
class QueueState:
    """``GET /queue``: the running prompt (0 or 1) and the pending ones in execution order.

    The server sends ``queue_pending`` in heap order; ``pending`` is sorted by
    ``(number, prompt_id)``, the order in which they will run.
    """

    running: List[QueueItem] = field(factory=list)
    pending: List[QueueItem] = field(factory=list)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> QueueState:
        """From the ``GET /queue`` answer ``data`` (``queue_running``, ``queue_pending``)."""
        data = wire_object(data, "GET /queue answer")
        running = [QueueItem.from_wire(x) for x in wire_array(data.get("queue_running"), "running")]
        pending = [QueueItem.from_wire(x) for x in wire_array(data.get("queue_pending"), "pending")]
        return cls(running=running, pending=sorted(pending, key=_sort_key))

    @property
    def remaining(self) -> int:
        """Running plus pending, like ``queue_remaining`` in ``status`` events."""
        return len(self.running) + len(self.pending)

    def find(self, prompt_id: str) -> Optional[QueueItem]:
        """The running or pending item of ``prompt_id``, or ``None`` when it is not queued."""
        for item in self.running + self.pending:
            if item.prompt_id == prompt_id:
                return item
        return None

    def is_running(self, prompt_id: str) -> bool:
        """True when ``prompt_id`` is the prompt the server is executing."""
        return any(item.prompt_id == prompt_id for item in self.running)

    def is_pending(self, prompt_id: str) -> bool:
        """True when ``prompt_id`` waits in the queue (queued, not yet running)."""
        return any(item.prompt_id == prompt_id for item in self.pending)

    def position(self, prompt_id: str) -> Optional[int]:
        """Where ``prompt_id`` stands in running-then-pending execution order: 0 for the
        running prompt (or for the first pending one when nothing runs), ``None`` when it
        is not queued."""
        for index, item in enumerate(self.running + self.pending):
            if item.prompt_id == prompt_id:
                return index
        return None

    def __contains__(self, prompt_id: object) -> bool:
        return isinstance(prompt_id, str) and self.find(prompt_id) is not None


# -- history ----------------------------------------------------------------------------------


@define(frozen=True)
class HistoryEntry:
    """One finished prompt from ``GET /history``: what ran, its UI outputs and how it ended.

    ``outputs`` maps node id → the node's UI dict as the server sent it (``{"images": [...]}``,
    ``{"text": [...]}``, …). ``messages`` are the ``(event name, data)`` pairs the server
    recorded (``execution_start``, ``execution_cached``, then ``execution_success`` /
    ``execution_error`` / ``execution_interrupted``).
    """

    prompt_id: str
    prompt: Dict[str, Any] = field(factory=dict, repr=False)
    extra_data: Dict[str, Any] = field(factory=dict, repr=False)
    outputs: Dict[str, Dict[str, Any]] = field(factory=dict, repr=False)
    status_str: Optional[str] = None
    completed: bool = False
    messages: List[Tuple[str, Dict[str, Any]]] = field(factory=list, repr=False)
    meta: Dict[str, Any] = field(factory=dict, repr=False)
    number: Optional[float] = None
    outputs_to_execute: List[str] = field(factory=list, repr=False)
    raw: Dict[str, Any] = field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_wire(cls, prompt_id: str, data: Mapping[str, Any]) -> HistoryEntry:
        """From ``data``, the value under ``prompt_id`` in a ``GET /history`` answer
        (``prompt``, ``outputs``, ``status``, ``meta``). Status messages that are not
        ``[name, data]`` pairs are skipped rather than failing the whole entry."""
        data = wire_object(data, f"history entry {prompt_id}")
        queued = wire_array(data.get("prompt"), "history prompt")
        queued += [None] * (5 - len(queued))
        number = queued[0] if isinstance(queued[0], (int, float)) else None
        status = wire_object(data.get("status"), "history status")
        messages: List[Tuple[str, Dict[str, Any]]] = []
        for pair in wire_array(status.get("messages"), "history messages"):
            # Skip what is not an [event, data] pair rather than lose the whole entry.
            if (isinstance(pair, list) and len(pair) >= 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], Mapping)):
                messages.append((pair[0], dict(pair[1])))
        outputs: Dict[str, Dict[str, Any]] = {}
        for node_id, ui in wire_object(data.get("outputs"), "history outputs").items():
            outputs[str(node_id)] = wire_object(ui, f"outputs of node {node_id}")
        status_str = status.get("status_str")
        return cls(
            prompt_id=str(prompt_id),
            prompt=wire_object(queued[2], "history prompt graph"),
            extra_data=wire_object(queued[3], "history extra_data"),
            outputs=outputs,
            status_str=str(status_str) if status_str is not None else None,
            completed=bool(status.get("completed", False)),
            messages=messages,
            meta=wire_object(data.get("meta"), "history meta"),
            number=number,
            outputs_to_execute=[str(x) for x in wire_array(queued[4], "outputs_to_execute")],
            raw=data,
        )

    @property
    def succeeded(self) -> bool:
        """True when the prompt ran to the end without error or interrupt."""
        return self.status_str == "success" and self.completed

    @property
    def interrupted(self) -> bool:
        """True when the prompt was interrupted (an ``execution_interrupted`` message)."""
        return self.message("execution_interrupted") is not None

    @property
    def failed(self) -> bool:
        """True for an error *or* an interrupt (the server reports both as ``"error"``)."""
        return self.status_str is not None and not self.succeeded

    def message(self, name: str) -> Optional[Dict[str, Any]]:
        """The data of the last status message called ``name``
        (e.g. ``"execution_error"``), or ``None`` when the server recorded none."""
        for message_name, data in reversed(self.messages):
            if message_name == name:
                found: Dict[str, Any] = data
                return found
        return None

    @property
    def cached_nodes(self) -> List[str]:
        """Node ids the server served from its cache in this run."""
        data = self.message("execution_cached") or {}
        return [str(n) for n in data.get("nodes") or []]

    @property
    def started_at(self) -> Optional[datetime]:
        """When execution started (UTC), from the ``execution_start`` timestamp."""
        return ms_to_datetime((self.message("execution_start") or {}).get("timestamp"))

    @property
    def finished_at(self) -> Optional[datetime]:
        """When execution ended (UTC), from the final message's timestamp."""
        for name in ("execution_success", "execution_error", "execution_interrupted"):
            data = self.message(name)
            if data is not None:
                return ms_to_datetime(data.get("timestamp"))
        return None

    @property
    def duration(self) -> Optional[float]:
        """Seconds between start and end, when both are known."""
        start, end = self.started_at, self.finished_at
        if start is None or end is None:
            return None
        return (end - start).total_seconds()

    def output_files(self) -> List[Tuple[str, FileRef]]:
        """``(node id, FileRef)`` for every file-like item in ``outputs``, in order."""
        found: List[Tuple[str, FileRef]] = []
        for node_id, ui in self.outputs.items():
            for value in ui.values():
                if not isinstance(value, list):
                    continue
                for item in value:
                    if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
                        found.append((node_id, FileRef.from_wire(item)))
        return found


# -- system -----------------------------------------------------------------------------------


@define(frozen=True)
class Device:
    """One torch device from ``/system_stats`` (memory values in bytes)."""

    name: str
    type: str
    index: Optional[int] = None
    vram_total: Optional[int] = None
    vram_free: Optional[int] = None
    torch_vram_total: Optional[int] = None
    torch_vram_free: Optional[int] = None
    raw: Dict[str, Any] = field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Device:
        """From one element ``data`` of the ``devices`` list of ``/system_stats``."""
        data = wire_object(data, "device")
        return cls(
            name=str(data.get("name", "")),
            type=str(data.get("type", "")),
            index=data.get("index"),
            vram_total=data.get("vram_total"),
            vram_free=data.get("vram_free"),
            torch_vram_total=data.get("torch_vram_total"),
            torch_vram_free=data.get("torch_vram_free"),
            raw=data,
        )


@define(frozen=True)
class SystemStats:
    """``GET /system_stats``: versions, host memory and the torch device(s)."""

    comfyui_version: Optional[str] = None
    python_version: Optional[str] = None
    pytorch_version: Optional[str] = None
    os: Optional[str] = None
    ram_total: Optional[int] = None
    ram_free: Optional[int] = None
    embedded_python: Optional[bool] = None
    required_frontend_version: Optional[str] = None
    argv: List[str] = field(factory=list, repr=False)
    devices: List[Device] = field(factory=list)
    raw: Dict[str, Any] = field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SystemStats:
        """From the ``GET /system_stats`` answer ``data`` (``system`` and ``devices``)."""
        data = wire_object(data, "GET /system_stats answer")
        system = wire_object(data.get("system"), "system")
        return cls(
            comfyui_version=system.get("comfyui_version"),
            python_version=system.get("python_version"),
            pytorch_version=system.get("pytorch_version"),
            os=system.get("os"),
            ram_total=system.get("ram_total"),
            ram_free=system.get("ram_free"),
            embedded_python=system.get("embedded_python"),
            required_frontend_version=system.get("required_frontend_version"),
            argv=[str(a) for a in wire_array(system.get("argv"), "argv")],
            devices=[Device.from_wire(d) for d in wire_array(data.get("devices"), "devices")],
            raw=data,
        )
