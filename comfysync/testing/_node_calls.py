"""How FakeComfyUI's executor asks node classes about themselves and calls them.

ComfyUI reads a node class's ``INPUT_TYPES`` (declared and hidden inputs), ``IS_CHANGED``
(part of the cache key), ``NOT_IDEMPOTENT`` / a ``UNIQUE_ID`` hidden input (the node id is part
of the key), ``OUTPUT_NODE`` and ``FUNCTION``, and keeps one instance per node id and class
between prompts. The same reading is done here, in one place, for the executor.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Tuple

from ._graph import hashable, is_link

log = logging.getLogger("comfysync.testing.executor")

#: hidden input kinds a node may declare, and where their value comes from
_HIDDEN_FROM_EXTRA = {
    "EXTRA_PNGINFO": "extra_pnginfo",
    "AUTH_TOKEN_COMFY_ORG": "auth_token_comfy_org",
    "API_KEY_COMFY_ORG": "api_key_comfy_org",
}


def full_type_name(cls: type) -> str:
    """``ValueError`` for builtins, ``module.QualName`` otherwise (as ComfyUI reports it)."""
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def format_value(value: Any) -> Any:
    """An input value as ``current_inputs`` of an ``execution_error`` shows it."""
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


def input_types(cls: type) -> Dict[str, Any]:
    try:
        spec = cls.INPUT_TYPES()  # type: ignore[attr-defined]
    except Exception:  # a broken node definition fails at call time instead
        log.exception("INPUT_TYPES of %s raised", cls.__name__)
        return {}
    return spec if isinstance(spec, dict) else {}


def hidden_kinds(cls: type) -> Dict[str, str]:
    hidden = input_types(cls).get("hidden", {}) or {}
    out: Dict[str, str] = {}
    for name, kind in hidden.items():
        if isinstance(kind, (list, tuple)):
            kind = kind[0] if kind else ""
        out[str(name)] = str(kind)
    return out


def hidden_value(kind: str, node_id: str, ctx: Mapping[str, Any]) -> Any:
    """The value of a hidden input; ``ctx`` holds the prompt and its ``extra_data``."""
    if kind in ("PROMPT", "DYNPROMPT"):
        return ctx["prompt"]
    if kind == "UNIQUE_ID":
        return node_id
    if kind in _HIDDEN_FROM_EXTRA:
        return ctx["extra_data"].get(_HIDDEN_FROM_EXTRA[kind])
    return None


class NodeClasses:
    """The server's node classes as the executor sees them, and the node instances it keeps
    between prompts (dropped with the cache)."""

    def __init__(self, node_class: Callable[[str], Optional[type]]) -> None:
        self.get = node_class
        self._lock = threading.Lock()
        self._objects: Dict[Tuple[str, str], Any] = {}

    def reset(self) -> None:
        with self._lock:
            self._objects.clear()

    def _class_of(self, prompt: Mapping[str, Any], node_id: str) -> Optional[type]:
        return self.get(str(prompt[node_id].get("class_type")))

    def is_changed(
        self, node_id: str, prompt: Mapping[str, Any], hidden: Mapping[str, Any]
    ) -> Hashable:
        """The node's ``IS_CHANGED`` answer (False without one; NaN, never cached, when it
        raises), as part of its cache key."""
        node = prompt[node_id]
        cls = self._class_of(prompt, node_id)
        is_changed = getattr(cls, "IS_CHANGED", None)
        if cls is None or is_changed is None:
            return False
        kwargs = {k: v for k, v in (node.get("inputs") or {}).items() if not is_link(v)}
        for name, kind in hidden_kinds(cls).items():
            kwargs[name] = hidden_value(kind, node_id, hidden)
        try:
            value = is_changed(**kwargs)
        except Exception as exc:  # ComfyUI: NaN, i.e. never cached
            log.warning("IS_CHANGED of node %s raised: %s", node_id, exc)
            return hashable(float("nan"))
        return hashable(value)

    def includes_node_id(self, prompt: Mapping[str, Any], node_id: str) -> bool:
        """Whether the node's id is part of its cache key."""
        cls = self._class_of(prompt, node_id)
        if cls is None:
            return False
        if getattr(cls, "NOT_IDEMPOTENT", False):
            return True
        return "UNIQUE_ID" in hidden_kinds(cls).values()

    def is_output(self, prompt: Mapping[str, Any], node_id: str) -> bool:
        cls = self._class_of(prompt, node_id)
        return cls is not None and getattr(cls, "OUTPUT_NODE", False) is True

    @staticmethod
    def gather_inputs(
        cls: type,
        node_id: str,
        node: Mapping[str, Any],
        values: Mapping[str, Tuple[Any, ...]],
        hidden_ctx: Mapping[str, Any],
    ) -> Dict[str, Any]:
        """The keyword arguments of the node function: declared inputs given in the prompt
        (links resolved to upstream outputs) and hidden inputs."""
        spec = input_types(cls)
        declared = list((spec.get("required") or {}).keys()) + list(
            (spec.get("optional") or {}).keys()
        )
        raw = node.get("inputs") or {}
        inputs: Dict[str, Any] = {}
        for name in declared:
            if name not in raw:
                continue
            value = raw[name]
            if is_link(value):
                value = values[value[0]][value[1]]
            inputs[name] = value
        for name, kind in hidden_kinds(cls).items():
            inputs[name] = hidden_value(kind, node_id, hidden_ctx)
        return inputs

    def function_of(self, cls: type, node_id: str, class_type: str) -> Callable[..., Any]:
        """The node function of this node's (kept) instance."""
        key = (node_id, class_type)
        with self._lock:
            obj = self._objects.get(key)
        if obj is None:
            obj = cls()
            with self._lock:
                self._objects[key] = obj
        function: Callable[..., Any] = getattr(obj, str(getattr(cls, "FUNCTION", "")))
        return function
