"""Node definitions (``/object_info``) as the workflow layer reads them: widgets, seeds, caching.

A class's definition answers every question that UI conversion and client-side validation ask
about it: the type and options of an input, which inputs the editor shows as widgets and in
what order (the order of a save file's ``widgets_values``), which INT widgets are followed by
the editor-only "control after generate" value, what a widget holds when the file has no value,
and the range a seed may take. Both read definitions through this module, so they agree.

Definitions are the typed :class:`~comfysync.NodeDef` model, parsed once: ``api.get_node_defs()``
returns it, and the raw ``/object_info`` JSON a user may pass instead is parsed class by class
on first use by :class:`NodeDefIndex` — never turned back into JSON.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from attrs import define

from .._rest.node_defs import InputSpec, NodeDef
from ..errors import WorkflowFormatError

__all__ = [
    "EDITOR_ONLY_WIDGET_TYPES",
    "NodeDefIndex",
    "NodeDefsCache",
    "NodeDefsLike",
    "NodeDefsSource",
    "SEED_INPUTS",
    "SEED_MAX",
    "WidgetSlot",
    "seed_range",
    "widget_slots",
]

#: ``api.get_node_defs()`` (class → :class:`~comfysync.NodeDef`) or the raw ``/object_info``
#: JSON.
NodeDefsLike = Mapping[str, Any]

#: Node definitions, or a callable returning them when first needed (the client's
#: :class:`NodeDefsCache`): ``/object_info`` is fetched only for work that needs it.
NodeDefsSource = Union[NodeDefsLike, Callable[[], NodeDefsLike]]

#: Input names ComfyUI uses for seeds (randomized by ``Workflow.randomize_seeds``; an INT of
#: this name has a "control after generate" widget when its definition does not say).
SEED_INPUTS = ("seed", "noise_seed")

#: ComfyUI's seed range (``KSampler.seed`` max is 0xffffffffffffffff).
SEED_MAX = 0xFFFFFFFFFFFFFFFF

#: Widget types filled in by the editor at queue time (camera frame, recording, 3D render):
#: their value cannot be derived from the saved file.
EDITOR_ONLY_WIDGET_TYPES = frozenset({"WEBCAM", "AUDIO_RECORD", "LOAD_3D", "LOAD_3D_ANIMATION"})

_WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})


class NodeDefIndex:
    """Class name → :class:`~comfysync.NodeDef`, from either accepted form. A raw
    ``/object_info`` entry is parsed the first time its class is asked for (a workflow uses a
    few dozen of the server's hundreds of classes), then kept."""

    __slots__ = ("_parsed", "_source")

    def __init__(self, node_defs: NodeDefsLike) -> None:
        if isinstance(node_defs, NodeDefIndex):
            self._source: Mapping[str, Any] = node_defs._source
            self._parsed: Dict[str, Optional[NodeDef]] = node_defs._parsed
            return
        if not isinstance(node_defs, Mapping):
            raise WorkflowFormatError(
                "node_defs must map class_type to its definition (api.get_node_defs() or the "
                f"/object_info JSON), not {type(node_defs).__name__}"
            )
        self._source = node_defs
        self._parsed = {}

    @classmethod
    def of(cls, node_defs: NodeDefsSource) -> NodeDefIndex:
        """An index over ``node_defs``, calling it first when it is a callable source."""
        return cls(node_defs() if callable(node_defs) else node_defs)

    def get(self, class_type: str) -> Optional[NodeDef]:
        """The definition of ``class_type``, or None when it is unknown (or unreadable)."""
        if class_type in self._parsed:
            return self._parsed[class_type]
        info = self._source.get(class_type)
        node: Optional[NodeDef] = None
        if isinstance(info, NodeDef):
            node = info
        elif isinstance(info, Mapping):
            try:
                node = NodeDef.from_wire(class_type, info)
            except TypeError:  # a custom node's malformed definition: treated as unknown
                node = None
        self._parsed[class_type] = node
        return node

    def __contains__(self, class_type: object) -> bool:
        return isinstance(class_type, str) and self.get(class_type) is not None

    def names(self) -> List[str]:
        """Every class name (for suggestions)."""
        return [str(n) for n in self._source]

    def __len__(self) -> int:
        return len(self._source)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def seed_range(info: Optional[NodeDef], name: str) -> Tuple[int, int]:
    """The values a seed input takes: ComfyUI's 0..2**64-1, narrowed by the input's own
    ``min``/``max`` when the definition gives them (some API nodes take only 32-bit seeds)."""
    low, high = 0, SEED_MAX
    spec = info.input(name) if info is not None else None
    opts = spec.options if spec is not None else {}
    if isinstance(opts.get("min"), int):
        low = max(low, int(opts["min"]))
    if isinstance(opts.get("max"), int):
        high = min(high, int(opts["max"]))
    return low, high


@define(frozen=True)
class WidgetSlot:
    """One widget the editor creates for an input, in ``widgets_values`` order."""

    name: str
    kind: str  # INT FLOAT STRING BOOLEAN COMBO, or an editor-only type
    options: Mapping[str, Any]
    choices: Optional[Sequence[Any]]  # combo options when known
    has_control: bool  # followed by a "control after generate" value

    def default(self) -> Tuple[bool, Any]:
        """``(True, value)`` the editor starts the widget with, or ``(False, None)``."""
        if "default" in self.options:
            return True, self.options["default"]
        if self.kind == "COMBO" and self.choices:
            return True, self.choices[0]
        return False, None

    def fits(self, value: Any) -> bool:
        """Whether a saved widget value can belong to this input (catches shifted values)."""
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.kind in ("INT", "FLOAT"):
            return number
        if self.kind == "STRING":
            return isinstance(value, str)
        if self.kind == "BOOLEAN":
            return isinstance(value, bool)
        if self.kind == "COMBO":
            return isinstance(value, str) or number
        return True


def widget_slots(info: NodeDef) -> List[WidgetSlot]:
    """The widgets the editor builds for a node class, in ``widgets_values`` order: inputs of
    a widget type (or an editor-only type) without ``forceInput``, required then optional."""
    return [_widget_slot(spec) for spec in info.inputs() if _is_widget(spec)]


def _is_widget(spec: InputSpec) -> bool:
    if spec.type not in _WIDGET_TYPES and spec.type not in EDITOR_ONLY_WIDGET_TYPES:
        return False
    return not spec.options.get("forceInput")


def _widget_slot(spec: InputSpec) -> WidgetSlot:
    control = spec.options.get("control_after_generate")
    if control is None:
        has_control = spec.type == "INT" and spec.name in SEED_INPUTS
    else:
        has_control = bool(control)
    return WidgetSlot(spec.name, spec.type, spec.options, spec.choices, has_control)


class NodeDefsCache:
    """Node definitions fetched on first need and then kept: the :data:`NodeDefsSource` a
    client hands to :func:`~comfysync._workflow.prompt.to_prompt` so ``/object_info``
    (hundreds of KB) is read once per client, not once per run. Thread-safe; :meth:`refresh`
    fetches again (after installing custom nodes, say); :meth:`cached` answers without
    fetching."""

    def __init__(self, fetch: Callable[[], NodeDefsLike]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._defs: Optional[NodeDefsLike] = None

    def __call__(self) -> NodeDefsLike:
        with self._lock:
            if self._defs is None:
                self._defs = self._fetch()
            return self._defs

    def cached(self) -> Optional[NodeDefsLike]:
        """The definitions if they were fetched already, else None (never fetches)."""
        with self._lock:
            return self._defs

    def refresh(self) -> NodeDefsLike:
        with self._lock:
            self._defs = self._fetch()
            return self._defs

    def clear(self) -> None:
        with self._lock:
            self._defs = None
