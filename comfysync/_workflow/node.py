"""``Node``: a live view of one entry of an API-format workflow, and what a link looks like.

An API-format node is ``{"class_type", "inputs", "_meta": {"title"}}``; an input holds a
literal or a link ``[source node id, output index]``. :class:`Node` wraps the workflow's own
entry dict rather than copying it and reads like it, so ``wf["3"]["inputs"]["seed"] = 1``,
``wf["3"].inputs["seed"] = 1`` and the shortcut ``wf["3"]["seed"] = 1`` all edit the workflow.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, ItemsView, Iterator, KeysView, Mapping, Optional, ValuesView

from .format import is_link

__all__ = ["ENTRY_KEYS", "Node"]

#: The keys of an API-format node entry; any other key of a :class:`Node` names an input.
ENTRY_KEYS = frozenset({"class_type", "inputs", "_meta"})


class Node:
    """Live view of one node of a :class:`Workflow` (edits go straight into the workflow).

    Reads like the entry dict it wraps (``node["class_type"]``, ``node["inputs"]``,
    ``"inputs" in node``, ``dict(node)``); any other key is an input name, so ``node["seed"]``
    is ``node["inputs"]["seed"]``.
    """

    __slots__ = ("_entry", "id")

    def __init__(self, node_id: str, entry: Dict[str, Any]) -> None:
        self.id = node_id
        self._entry = entry

    @property
    def class_type(self) -> str:
        return str(self._entry.get("class_type", ""))

    @property
    def inputs(self) -> Dict[str, Any]:
        """The node's inputs, mutable: literal values, or ``[source_id, output_index]`` links."""
        inputs = self._entry.get("inputs")
        if not isinstance(inputs, dict):
            inputs = {}
            self._entry["inputs"] = inputs
        return inputs

    @property
    def title(self) -> Optional[str]:
        """``_meta.title`` (the editor's node title), or None when the workflow has none."""
        meta = self._entry.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get("title"), str):
            return str(meta["title"])
        return None

    @title.setter
    def title(self, value: str) -> None:
        meta = self._entry.get("_meta")
        if not isinstance(meta, dict):
            meta = {}
            self._entry["_meta"] = meta
        meta["title"] = value

    def is_linked(self, name: str) -> bool:
        """True when input ``name`` is fed by another node's output."""
        return is_link(self.inputs.get(name))

    def __getitem__(self, key: str) -> Any:
        if key == "inputs":
            return self.inputs
        if key in ENTRY_KEYS:
            return self._entry[key]
        return self.inputs[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in ENTRY_KEYS:
            self._entry[key] = value
        else:
            self.inputs[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._entry or key in self.inputs

    def __iter__(self) -> Iterator[str]:
        """The entry's keys (``class_type``, ``inputs``, ``_meta``), like the dict."""
        return iter(list(self._entry))

    def __len__(self) -> int:
        return len(self._entry)

    def keys(self) -> KeysView[str]:
        return self._entry.keys()

    def items(self) -> ItemsView[str, Any]:
        return self._entry.items()

    def values(self) -> ValuesView[Any]:
        return self._entry.values()

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def to_dict(self) -> Dict[str, Any]:
        """A deep copy of the entry."""
        return copy.deepcopy(self._entry)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._entry == dict(other)
        if not isinstance(other, Node):
            return NotImplemented
        return self.id == other.id and self._entry is other._entry

    def __hash__(self) -> int:
        return hash((self.id, id(self._entry)))

    def __repr__(self) -> str:
        title = f" title={self.title!r}" if self.title is not None else ""
        return f"<Node {self.id} {self.class_type}{title}>"

    def describe(self) -> str:
        """``3 (KSampler "My sampler")`` — how error messages name a node."""
        title = f" {self.title!r}" if self.title and self.title != self.class_type else ""
        return f"{self.id} ({self.class_type}{title})"
