"""Reading ComfyUI node definitions (``/object_info``): input specs, widgets, seeds, caching.

A class's definition answers every question that UI conversion and client-side validation ask
about it: the type and options of an input, which inputs the editor shows as widgets and in
what order (the order of a save file's ``widgets_values``), which INT widgets are followed by
the editor-only "control after generate" value, what a widget holds when the file has no value,
and the range a seed may take. Both read definitions through this module, so they agree.

Definitions arrive in two forms, ``api.get_node_defs()`` (class → ``NodeDef`` with ``.raw``)
or the raw ``/object_info`` JSON; :func:`raw_node_defs` turns either into the wire dicts the rest
of this module reads.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from attrs import define

from ..errors import WorkflowFormatError

__all__ = [
    "EDITOR_ONLY_WIDGET_TYPES",
    "NodeDefsCache",
    "NodeDefsLike",
    "SEED_INPUTS",
    "SEED_MAX",
    "WidgetSlot",
    "input_spec",
    "raw_node_defs",
    "seed_range",
    "spec_options",
    "spec_type",
    "widget_slots",
]

#: ``api.get_node_defs()`` (class → ``NodeDef`` with ``.raw``) or the raw ``/object_info``
#: JSON.
NodeDefsLike = Mapping[str, Any]

#: Input names ComfyUI uses for seeds (randomized by ``Workflow.randomize_seeds``; an INT of
#: this name has a "control after generate" widget when its definition does not say).
SEED_INPUTS = ("seed", "noise_seed")

#: ComfyUI's seed range (``KSampler.seed`` max is 0xffffffffffffffff).
SEED_MAX = 0xFFFFFFFFFFFFFFFF

#: Widget types filled in by the editor at queue time (camera frame, recording, 3D render):
#: their value cannot be derived from the saved file.
EDITOR_ONLY_WIDGET_TYPES = frozenset({"WEBCAM", "AUDIO_RECORD", "LOAD_3D", "LOAD_3D_ANIMATION"})

_WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})


def raw_node_defs(node_defs: NodeDefsLike) -> Dict[str, Mapping[str, Any]]:
    """class_type → the wire dict of ``/object_info``, from either accepted form."""
    if not isinstance(node_defs, Mapping):
        raise WorkflowFormatError(
            "node_defs must map class_type to its definition (api.get_node_defs() or the "
            f"/object_info JSON), not {type(node_defs).__name__}"
        )
    out: Dict[str, Mapping[str, Any]] = {}
    for name, info in node_defs.items():
        raw = getattr(info, "raw", info)
        if isinstance(raw, Mapping):
            out[str(name)] = raw
    return out


def input_spec(info: Optional[Mapping[str, Any]], name: str) -> Optional[Sequence[Any]]:
    """``[TYPE, options]`` of a required or optional input, or None."""
    if not isinstance(info, Mapping):
        return None
    inputs = info.get("input")
    if not isinstance(inputs, Mapping):
        return None
    for category in ("required", "optional"):
        group = inputs.get(category)
        if isinstance(group, Mapping):
            spec = group.get(name)
            if isinstance(spec, (list, tuple)) and spec:
                return spec
    return None


def spec_options(spec: Optional[Sequence[Any]]) -> Mapping[str, Any]:
    """The options dict of an input spec (``min``, ``default``, ``forceInput``...), or ``{}``."""
    if spec is not None and len(spec) > 1 and isinstance(spec[1], Mapping):
        return spec[1]
    return {}


def spec_type(spec: Sequence[Any]) -> str:
    """The input's type name; a literal option list is a ``COMBO``."""
    kind = spec[0]
    if isinstance(kind, (list, tuple)):
        return "COMBO"
    return str(kind)


def seed_range(info: Optional[Mapping[str, Any]], name: str) -> Tuple[int, int]:
    """The values a seed input takes: ComfyUI's 0..2**64-1, narrowed by the input's own
    ``min``/``max`` when the definition gives them (some API nodes take only 32-bit seeds)."""
    low, high = 0, SEED_MAX
    opts = spec_options(input_spec(info, name))
    if isinstance(opts.get("min"), int):
        low = max(low, int(opts["min"]))
    if isinstance(opts.get("max"), int):
        high = min(high, int(opts["max"]))
    return low, high


def _input_names(info: Mapping[str, Any], category: str) -> List[str]:
    """Input names of one category in ``input_order`` (then any the order leaves out)."""
    inputs = info.get("input")
    group = inputs.get(category) if isinstance(inputs, Mapping) else None
    names = [str(n) for n in group] if isinstance(group, Mapping) else []
    order = info.get("input_order")
    if isinstance(order, Mapping) and isinstance(order.get(category), list):
        ordered = [str(n) for n in order[category] if str(n) in names]
        return ordered + [n for n in names if n not in ordered]
    return names


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


def widget_slots(info: Mapping[str, Any]) -> List[WidgetSlot]:
    """The widgets the editor builds for a node class, in ``widgets_values`` order: inputs of
    a widget type (or an editor-only type) without ``forceInput``, required then optional."""
    slots: List[WidgetSlot] = []
    for category in ("required", "optional"):
        for name in _input_names(info, category):
            spec = input_spec(info, name)
            if spec is None:
                continue
            kind = spec_type(spec)
            opts = spec_options(spec)
            if kind not in _WIDGET_TYPES and kind not in EDITOR_ONLY_WIDGET_TYPES:
                continue
            if opts.get("forceInput"):
                continue
            control = opts.get("control_after_generate")
            if control is None:
                has_control = kind == "INT" and name in SEED_INPUTS
            else:
                has_control = bool(control)
            choices: Optional[Sequence[Any]] = None
            if isinstance(spec[0], (list, tuple)):
                choices = list(spec[0])
            elif isinstance(opts.get("options"), list):
                choices = list(opts["options"])
            slots.append(WidgetSlot(name, kind, opts, choices, has_control))
    return slots


class NodeDefsCache:
    """Node definitions fetched on first need and then kept: the ``node_defs_provider`` a
    client hands to :func:`~comfysync._workflow.workflow.ensure_api_format` so ``/object_info``
    (hundreds of KB) is read once per client, not once per run. Thread-safe; :meth:`refresh`
    fetches again (after installing custom nodes, say)."""

    def __init__(self, fetch: Callable[[], NodeDefsLike]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._defs: Optional[NodeDefsLike] = None

    def __call__(self) -> NodeDefsLike:
        with self._lock:
            if self._defs is None:
                self._defs = self._fetch()
            return self._defs

    def refresh(self) -> NodeDefsLike:
        with self._lock:
            self._defs = self._fetch()
            return self._defs

    def clear(self) -> None:
        with self._lock:
            self._defs = None
