"""Typed, immutable models of ComfyUI's REST answers.

Each model is parsed from the wire dict in exactly one ``from_wire`` classmethod, so the
knowledge of the server's JSON shapes lives here and nowhere else. Models keep the server's
dict in ``raw`` where users may need fields we do not model (custom nodes and newer servers
add keys). ``raw`` and anything that may hold secrets (``extra_data`` can carry API keys) are
left out of ``repr``.

``from_wire`` raises ``TypeError``/``ValueError`` for a shape it cannot read; the REST layer
turns that into a :class:`~comfysync.errors.ComfyHTTPError` naming the URL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from attrs import define, field

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


def _mapping(value: Any, what: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return dict(value)


def _sequence(value: Any, what: str) -> List[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{what}: expected a JSON array, got {type(value).__name__}")
    return list(value)


def _ms_to_datetime(value: Any) -> Optional[datetime]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)


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
        """From an output item (``filename``) or an upload answer (``name``)."""
        data = _mapping(data, "file reference")
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
        data = _mapping(data, "POST /prompt answer")
        prompt_id = data.get("prompt_id")
        if prompt_id is None:
            raise ValueError("POST /prompt answer without prompt_id")
        number = data.get("number", 0)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"POST /prompt answer has a non-numeric number {number!r}")
        return cls(
            prompt_id=str(prompt_id),
            number=number,
            node_errors=_mapping(data.get("node_errors"), "node_errors"),
            raw=data,
        )

    @property
    def has_node_errors(self) -> bool:
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
        item = _sequence(data, "queue item")
        if len(item) < 2:
            raise ValueError(f"queue item has {len(item)} elements, expected 5")
        padded = item + [None] * (5 - len(item))
        number = padded[0]
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"queue item has a non-numeric number {number!r}")
        return cls(
            number=number,
            prompt_id=str(padded[1]),
            prompt=_mapping(padded[2], "queued prompt"),
            extra_data=_mapping(padded[3], "queued extra_data"),
            outputs_to_execute=[str(x) for x in _sequence(padded[4], "outputs_to_execute")],
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
        data = _mapping(data, "GET /queue answer")
        running = [QueueItem.from_wire(x) for x in _sequence(data.get("queue_running"), "running")]
        pending = [QueueItem.from_wire(x) for x in _sequence(data.get("queue_pending"), "pending")]
        return cls(running=running, pending=sorted(pending, key=_sort_key))

    @property
    def remaining(self) -> int:
        """Running plus pending, like ``queue_remaining`` in ``status`` events."""
        return len(self.running) + len(self.pending)

    def find(self, prompt_id: str) -> Optional[QueueItem]:
        for item in self.running + self.pending:
            if item.prompt_id == prompt_id:
                return item
        return None

    def is_running(self, prompt_id: str) -> bool:
        return any(item.prompt_id == prompt_id for item in self.running)

    def is_pending(self, prompt_id: str) -> bool:
        return any(item.prompt_id == prompt_id for item in self.pending)

    def position(self, prompt_id: str) -> Optional[int]:
        """0 for the running prompt, 1.. for pending ones in execution order, else None."""
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
        data = _mapping(data, f"history entry {prompt_id}")
        queued = _sequence(data.get("prompt"), "history prompt")
        queued += [None] * (5 - len(queued))
        number = queued[0] if isinstance(queued[0], (int, float)) else None
        status = _mapping(data.get("status"), "history status")
        messages: List[Tuple[str, Dict[str, Any]]] = []
        for pair in _sequence(status.get("messages"), "history messages"):
            # Skip what is not an [event, data] pair rather than lose the whole entry.
            if (isinstance(pair, list) and len(pair) >= 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], Mapping)):
                messages.append((pair[0], dict(pair[1])))
        outputs: Dict[str, Dict[str, Any]] = {}
        for node_id, ui in _mapping(data.get("outputs"), "history outputs").items():
            outputs[str(node_id)] = _mapping(ui, f"outputs of node {node_id}")
        status_str = status.get("status_str")
        return cls(
            prompt_id=str(prompt_id),
            prompt=_mapping(queued[2], "history prompt graph"),
            extra_data=_mapping(queued[3], "history extra_data"),
            outputs=outputs,
            status_str=str(status_str) if status_str is not None else None,
            completed=bool(status.get("completed", False)),
            messages=messages,
            meta=_mapping(data.get("meta"), "history meta"),
            number=number,
            outputs_to_execute=[str(x) for x in _sequence(queued[4], "outputs_to_execute")],
            raw=data,
        )

    @property
    def succeeded(self) -> bool:
        """True when the prompt ran to the end without error or interrupt."""
        return self.status_str == "success" and self.completed

    @property
    def interrupted(self) -> bool:
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
        return _ms_to_datetime((self.message("execution_start") or {}).get("timestamp"))

    @property
    def finished_at(self) -> Optional[datetime]:
        """When execution ended (UTC), from the final message's timestamp."""
        for name in ("execution_success", "execution_error", "execution_interrupted"):
            data = self.message(name)
            if data is not None:
                return _ms_to_datetime(data.get("timestamp"))
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
        data = _mapping(data, "device")
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
        data = _mapping(data, "GET /system_stats answer")
        system = _mapping(data.get("system"), "system")
        return cls(
            comfyui_version=system.get("comfyui_version"),
            python_version=system.get("python_version"),
            pytorch_version=system.get("pytorch_version"),
            os=system.get("os"),
            ram_total=system.get("ram_total"),
            ram_free=system.get("ram_free"),
            embedded_python=system.get("embedded_python"),
            required_frontend_version=system.get("required_frontend_version"),
            argv=[str(a) for a in _sequence(system.get("argv"), "argv")],
            devices=[Device.from_wire(d) for d in _sequence(data.get("devices"), "devices")],
            raw=data,
        )


# -- node definitions -------------------------------------------------------------------------


@define(frozen=True)
class InputSpec:
    """One input of a node definition.

    ``type`` is the input type (``"INT"``, ``"IMAGE"``, …; ``"COMBO"`` for option lists in
    either the classic ``[[...options]]`` or the newer ``["COMBO", {"options": [...]}]``
    form), ``options`` the spec's option dict (``default``, ``min``, ``max``, …),
    ``category`` ``"required"``, ``"optional"`` or ``"hidden"``.
    """

    name: str
    type: str
    category: str
    options: Dict[str, Any] = field(factory=dict)
    choices: Optional[List[Any]] = None
    raw: Any = field(default=None, repr=False, eq=False)

    @classmethod
    def from_wire(cls, name: str, spec: Any, category: str) -> InputSpec:
        choices: Optional[List[Any]] = None
        options: Dict[str, Any] = {}
        if isinstance(spec, str):
            return cls(name=name, type=spec, category=category, raw=spec)
        items = _sequence(spec, f"input spec {name}")
        head: Any = items[0] if items else "*"
        if len(items) > 1 and isinstance(items[1], Mapping):
            options = dict(items[1])
        if isinstance(head, list):
            kind = "COMBO"
            choices = list(head)
        else:
            kind = str(head)
            if kind == "COMBO" and isinstance(options.get("options"), list):
                choices = list(options["options"])
        return cls(name=name, type=kind, category=category, options=options, choices=choices,
                   raw=spec)

    @property
    def default(self) -> Any:
        return self.options.get("default")

    @property
    def is_combo(self) -> bool:
        return self.choices is not None


_INPUT_CATEGORIES = ("required", "optional", "hidden")


@define(frozen=True)
class NodeDef:
    """A node class from ``GET /object_info``.

    ``input_required`` / ``input_optional`` / ``input_hidden`` are the server's input dicts
    verbatim; :meth:`inputs` gives them as :class:`InputSpec` in the server's ``input_order``.
    """

    name: str
    display_name: str
    category: str = ""
    description: str = ""
    input_required: Dict[str, Any] = field(factory=dict, repr=False)
    input_optional: Dict[str, Any] = field(factory=dict, repr=False)
    input_hidden: Dict[str, Any] = field(factory=dict, repr=False)
    input_order: Dict[str, List[str]] = field(factory=dict, repr=False)
    output: List[str] = field(factory=list)
    output_is_list: List[bool] = field(factory=list, repr=False)
    output_name: List[str] = field(factory=list, repr=False)
    output_node: bool = False
    python_module: str = ""
    deprecated: bool = False
    experimental: bool = False
    raw: Dict[str, Any] = field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_wire(cls, name: str, data: Mapping[str, Any]) -> NodeDef:
        data = _mapping(data, f"node definition {name}")
        inputs = _mapping(data.get("input"), f"inputs of {name}")
        order = {
            str(k): [str(x) for x in _sequence(v, "input_order")]
            for k, v in _mapping(data.get("input_order"), f"input_order of {name}").items()
        }
        output = [str(x) for x in _sequence(data.get("output"), "output")]
        return cls(
            name=str(data.get("name") or name),
            display_name=str(data.get("display_name") or data.get("name") or name),
            category=str(data.get("category") or ""),
            description=str(data.get("description") or ""),
            input_required=_mapping(inputs.get("required"), "required inputs"),
            input_optional=_mapping(inputs.get("optional"), "optional inputs"),
            input_hidden=_mapping(inputs.get("hidden"), "hidden inputs"),
            input_order=order,
            output=output,
            output_is_list=[bool(x) for x in _sequence(data.get("output_is_list"), "is_list")]
            or [False] * len(output),
            output_name=[str(x) for x in _sequence(data.get("output_name"), "output_name")]
            or list(output),
            output_node=bool(data.get("output_node", False)),
            python_module=str(data.get("python_module") or ""),
            deprecated=bool(data.get("deprecated", False)),
            experimental=bool(data.get("experimental", False)),
            raw=data,
        )

    def _category_dict(self, category: str) -> Dict[str, Any]:
        return {
            "required": self.input_required,
            "optional": self.input_optional,
            "hidden": self.input_hidden,
        }[category]

    def inputs(self, *, include_hidden: bool = False) -> List[InputSpec]:
        """Required then optional (then hidden) inputs, each group in ``input_order``."""
        specs: List[InputSpec] = []
        for category in _INPUT_CATEGORIES:
            if category == "hidden" and not include_hidden:
                continue
            group = self._category_dict(category)
            names = [n for n in self.input_order.get(category, []) if n in group]
            names += [n for n in group if n not in names]
            specs.extend(InputSpec.from_wire(n, group[n], category) for n in names)
        return specs

    def input(self, name: str) -> Optional[InputSpec]:
        """The spec of input ``name`` (any category), or ``None``."""
        for category in _INPUT_CATEGORIES:
            group = self._category_dict(category)
            if name in group:
                return InputSpec.from_wire(name, group[name], category)
        return None

    def input_names(self, *, include_hidden: bool = False) -> List[str]:
        return [spec.name for spec in self.inputs(include_hidden=include_hidden)]

    def combo_options(self, input_name: str) -> Optional[List[Any]]:
        """The allowed values of a combo input (e.g. checkpoint names), else ``None``."""
        spec = self.input(input_name)
        return spec.choices if spec is not None else None


@define(frozen=True)
class SamplerInfo:
    """Sampler and scheduler names the server offers (from ``KSampler``'s inputs)."""

    samplers: List[str] = field(factory=list)
    schedulers: List[str] = field(factory=list)

    @classmethod
    def from_node_def(cls, node: NodeDef) -> SamplerInfo:
        return cls(
            samplers=[str(x) for x in node.combo_options("sampler_name") or []],
            schedulers=[str(x) for x in node.combo_options("scheduler") or []],
        )
