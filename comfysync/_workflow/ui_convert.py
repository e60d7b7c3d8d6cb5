"""UI-format → API-format conversion: what the editor's *Queue* button does, in Python.

The editor saves graphs as ``{"nodes": [...], "links": [...], "definitions": {"subgraphs"}}``
where a node's literal inputs are a positional ``widgets_values`` list. The server only takes
the API format (node id → ``class_type`` + named ``inputs``). Turning one into the other needs
the node definitions (``/object_info``, read by :mod:`comfysync._workflow.node_specs`) to know which
inputs are widgets and in what order. The graph itself is parsed by
:mod:`comfysync._workflow.ui_graph`;
this module holds the conversion rules.

Rules (each mirrors the ComfyUI frontend):

* widget values are assigned in ``input_order`` (``required`` then ``optional``) to the inputs
  that have a widget; the "control after generate" value after a seed-like INT is consumed
  and not sent; values that do not fit their input are refused (see
  :mod:`comfysync._workflow.ui_widgets`).
* a literal list value is wrapped as ``{"__value__": [...]}`` so it is not read as a link.
* a linked input (including a widget converted to a socket) takes ``[source_id, slot]``;
  ``Reroute`` nodes and KJNodes ``GetNode``/``SetNode`` pairs are followed; a ``PrimitiveNode``'s
  value is written into its targets.
* muted nodes (mode 2) are dropped and inputs linked to them removed; bypassed nodes (mode 4)
  are removed and each consumer is fed from the bypassed node's input of the same type
  (same slot first), as the editor does.
* notes and other editor-only nodes are dropped; every node gets ``_meta.title``.
* subgraphs (``definitions.subgraphs``) are expanded; inner nodes get ids
  ``"<instance id>:<inner id>"`` (nested: ``"a:b:c"``). A muted/bypassed subgraph node mutes or
  bypasses it as a whole. Values the subgraph node shows as its own widgets come from its
  ``widgets_values`` (one per subgraph input feeding a widget inside, in input order); widgets
  only mirrored from inside (``properties.proxyWidgets``) keep the inner node's value.
  Legacy group nodes are refused.
* unknown classes, nodes whose widget values do not fit their definition, and editor-only widget
  types (webcam, audio recorder, 3D viewport) are refused with :class:`WorkflowFormatError`.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from attrs import define

from .._suggest import did_you_mean
from ..errors import WorkflowFormatError
from .format import api_copy
from .node_specs import NodeDefIndex, widget_slots
from .ui_graph import (
    MODE_BYPASSED,
    MODE_MUTED,
    SUBGRAPH_INPUT_NODE,
    UiGraph,
    describe,
    node_mode,
    parse_ui,
    slots,
)
from .ui_widgets import literal, widget_inputs

__all__ = ["convert_ui_to_api"]

log = logging.getLogger("comfysync.ui_convert")

#: Node types that exist only in the editor (no server class); they are never sent.
VIRTUAL_TYPES = frozenset(
    {
        "Note",
        "MarkdownNote",
        "Reroute",
        "PrimitiveNode",
        "GetNode",
        "SetNode",
        "Label (rgthree)",
        "Bookmark (rgthree)",
        "Fast Groups Bypasser (rgthree)",
        "Fast Groups Muter (rgthree)",
        "Fast Bypasser (rgthree)",
        "Fast Muter (rgthree)",
    }
)

_MAX_DEPTH = 1000

#: (graph prefix, node id, output slot) already passed on the way to a link's real source.
_Seen = Set[Tuple[str, str, int]]


def _types_compatible(a: str, b: str) -> bool:
    """The editor's rule: ``*``/empty match anything; comma lists match on any overlap."""
    if a in ("*", "") or b in ("*", ""):
        return True
    left = {t.strip().upper() for t in a.split(",")}
    right = {t.strip().upper() for t in b.split(",")}
    return bool(left & right)


@define(frozen=True)
class _Resolved:
    """Where a link ends up: a real node output, a literal, nothing, or a dropped node."""

    kind: str  # "link" | "value" | "none" | "removed"
    node_id: str = ""
    slot: int = 0
    value: Any = None


_NOTHING = _Resolved("none")
_REMOVED = _Resolved("removed")


class _Converter:
    """One conversion: emits the API node of every real node at every graph level, resolving
    each input link to the real node output (or literal) it stands for."""

    def __init__(self, ui: Mapping[str, Any], defs: NodeDefIndex) -> None:
        self.defs = defs
        document = parse_ui(ui)
        self.subgraphs = document.subgraphs
        self.group_nodes = document.group_nodes
        self.root = document.root
        self.output: Dict[str, Dict[str, Any]] = {}
        self.unknown: List[str] = []
        self.unknown_classes: Set[str] = set()
        self._inner_cache: Dict[str, UiGraph] = {}

    # -- emission -------------------------------------------------------------------------

    def run(self) -> Dict[str, Dict[str, Any]]:
        self._emit_graph(self.root, depth=0)
        if self.unknown:
            error = WorkflowFormatError(
                "the server does not know these node classes: "
                + "; ".join(self.unknown)
                + " — install the custom nodes that provide them (or remove/bypass the nodes)"
            )
            error.unknown_classes = sorted(self.unknown_classes)  # type: ignore[attr-defined]
            raise error
        if not self.output:
            raise WorkflowFormatError(
                "the workflow has no node to run (every node is a note, muted or bypassed)"
            )
        return self.output

    def _emit_graph(self, graph: UiGraph, depth: int) -> None:
        if depth > 32:
            raise WorkflowFormatError("subgraphs are nested more than 32 levels deep (a cycle?)")
        for node_id, node in graph.nodes.items():
            kind = node["type"]
            mode = node_mode(node)
            if kind in self.subgraphs:
                if mode not in (MODE_MUTED, MODE_BYPASSED):
                    self._emit_graph(self._inner(graph, node_id, node), depth + 1)
                continue
            if self._is_group_node(kind):
                raise WorkflowFormatError(
                    f"{describe(node, graph.prefix + node_id)} is a legacy group node; "
                    "group nodes are not supported — convert it to a subgraph in the editor "
                    "(right-click → Convert to Subgraph) or export the workflow in API format"
                )
            if kind in VIRTUAL_TYPES or mode in (MODE_MUTED, MODE_BYPASSED):
                continue
            self._emit_node(graph, node_id, node)

    def _is_group_node(self, kind: str) -> bool:
        for sep in (">", "/"):
            if kind.startswith("workflow" + sep) and (
                kind[len("workflow") + 1 :] in self.group_nodes or kind not in self.defs
            ):
                return True
        return False

    def _emit_node(self, graph: UiGraph, node_id: str, node: Mapping[str, Any]) -> None:
        api_id = graph.prefix + node_id
        kind = node["type"]
        info = self.defs.get(kind)
        if info is None:
            self.unknown.append(describe(node, api_id) + did_you_mean(kind, self.defs.names()))
            self.unknown_classes.add(kind)
            return
        inputs = widget_inputs(api_id, node, info)
        for slot in slots(node, "inputs"):
            link_id = slot.get("link")
            if link_id is None:
                continue
            widget = slot.get("widget")
            name = widget.get("name") if isinstance(widget, Mapping) else None
            name = str(name or slot.get("name", ""))
            resolved = self._follow(graph, link_id, set())
            if resolved.kind == "link":
                inputs[name] = [resolved.node_id, resolved.slot]
            elif resolved.kind == "value":
                inputs[name] = literal(resolved.value)
            elif resolved.kind == "removed":
                inputs.pop(name, None)
        title = node.get("title")
        if not isinstance(title, str) or not title:
            title = info.display_name or kind
        self.output[api_id] = {"inputs": inputs, "class_type": kind, "_meta": {"title": title}}

    # -- link resolution ------------------------------------------------------------------

    def _follow(self, graph: UiGraph, link_id: Any, seen: _Seen) -> _Resolved:
        link = graph.link(link_id)
        if link is None:
            log.warning("graph %r: input refers to unknown link %r; ignored", graph.prefix, link_id)
            return _NOTHING
        return self._resolve_output(graph, link.origin_id, link.origin_slot, seen)

    def _follow_input(
        self, graph: UiGraph, node: Mapping[str, Any], index: int, seen: _Seen
    ) -> _Resolved:
        inputs = slots(node, "inputs")
        if index < 0 or index >= len(inputs) or inputs[index].get("link") is None:
            return _NOTHING
        return self._follow(graph, inputs[index]["link"], seen)

    def _resolve_output(self, graph: UiGraph, origin_id: str, slot: int, seen: _Seen) -> _Resolved:
        key = (graph.prefix, origin_id, slot)
        if key in seen or len(seen) > _MAX_DEPTH:
            raise WorkflowFormatError(
                f"links loop through reroute/bypassed nodes at node {graph.prefix}{origin_id}"
            )
        seen = seen | {key}
        if origin_id == SUBGRAPH_INPUT_NODE and graph.instance is not None:
            return self._resolve_subgraph_input(graph, slot, seen)
        node = graph.nodes.get(origin_id)
        if node is None:
            log.warning("link from missing node %s%s ignored", graph.prefix, origin_id)
            return _NOTHING
        kind = node["type"]
        mode = node_mode(node)
        if kind == "PrimitiveNode":
            saved = node.get("widgets_values")
            if isinstance(saved, list) and saved:
                return _Resolved("value", value=saved[0])
            return _NOTHING
        if kind == "Reroute":
            return self._follow_input(graph, node, 0, seen)
        if kind == "GetNode":
            return self._resolve_get_node(graph, origin_id, node, seen)
        if kind in VIRTUAL_TYPES:
            return _NOTHING
        if mode == MODE_MUTED:
            return _REMOVED
        if mode == MODE_BYPASSED:
            index = self._bypass_input(node, slot)
            if index < 0:
                return _REMOVED
            return self._follow_input(graph, node, index, seen)
        if kind in self.subgraphs:
            inner = self._inner(graph, origin_id, node)
            out = inner.to_subgraph_output(slot)
            if out is None:
                return _NOTHING
            return self._resolve_output(inner, out.origin_id, out.origin_slot, seen)
        return _Resolved("link", node_id=graph.prefix + origin_id, slot=slot)

    @staticmethod
    def _bypass_input(node: Mapping[str, Any], slot: int) -> int:
        """Which input a bypassed node passes through to output ``slot`` (editor rule:
        same index when the types fit, else the first input of the same type)."""
        inputs = slots(node, "inputs")
        outputs = slots(node, "outputs")
        out_type = str(outputs[slot].get("type", "*")) if slot < len(outputs) else "*"
        if not inputs:
            return -1
        if out_type in ("*", ""):
            return slot if slot < len(inputs) else 0
        if slot < len(inputs) and _types_compatible(str(inputs[slot].get("type", "")), out_type):
            return slot
        for i, inp in enumerate(inputs):
            if str(inp.get("type", "")) == out_type:
                return i
        for i, inp in enumerate(inputs):
            if _types_compatible(str(inp.get("type", "")), out_type):
                return i
        return -1

    def _resolve_get_node(
        self,
        graph: UiGraph,
        node_id: str,
        node: Mapping[str, Any],
        seen: _Seen,
    ) -> _Resolved:
        saved = node.get("widgets_values")
        name = saved[0] if isinstance(saved, list) and saved else None
        level: Optional[UiGraph] = graph
        while level is not None:
            setters = [
                n
                for n in level.nodes.values()
                if n["type"] == "SetNode"
                and isinstance(n.get("widgets_values"), list)
                and n["widgets_values"][:1] == [name]
            ]
            if len(setters) > 1:
                raise WorkflowFormatError(
                    f"{describe(node, graph.prefix + node_id)}: several SetNodes named {name!r}"
                )
            if setters:
                return self._follow_input(level, setters[0], 0, seen)
            level = level.parent
        raise WorkflowFormatError(
            f"{describe(node, graph.prefix + node_id)}: no SetNode named {name!r}"
        )

    # -- subgraphs --------------------------------------------------------------------------

    def _inner(self, graph: UiGraph, node_id: str, node: Mapping[str, Any]) -> UiGraph:
        definition = self.subgraphs[node["type"]]
        prefix = f"{graph.prefix}{node_id}:"
        cached = self._inner_cache.get(prefix)
        if cached is not None:
            return cached
        inner = graph.instance_graph(node_id, node, definition)
        inner.promoted = self._promoted_values(inner, graph.prefix + node_id, node, definition)
        self._inner_cache[prefix] = inner
        return inner

    def _promoted_values(
        self, inner: UiGraph, api_id: str, node: Mapping[str, Any], definition: Mapping[str, Any]
    ) -> Dict[str, Any]:
        """The subgraph node's own widgets: one per subgraph input that feeds a widget
        inside, in input order, holding the values the inner widgets receive."""
        names = []
        for index, sub_input in enumerate(slots(definition, "inputs")):
            if self._feeds_widget(inner, index):
                names.append(str(sub_input.get("name", "")))
        saved = node.get("widgets_values")
        values = list(saved) if isinstance(saved, list) else []
        if not values:
            return {}
        if len(values) != len(names):
            raise WorkflowFormatError(
                f"{describe(node, api_id)} (subgraph {definition.get('name')!r}): "
                f"{len(values)} saved widget values for {len(names)} promoted inputs "
                f"{names}; cannot tell which value goes where — open and re-save the "
                "workflow in the editor, or export it in API format"
            )
        return dict(zip(names, values))

    def _feeds_widget(self, inner: UiGraph, sub_index: int) -> bool:
        for link in inner.from_subgraph_input(sub_index):
            target = inner.nodes.get(link.target_id)
            if target is None:
                continue
            target_inputs = slots(target, "inputs")
            if link.target_slot < len(target_inputs):
                slot = target_inputs[link.target_slot]
                if isinstance(slot.get("widget"), Mapping):
                    return True
                info = self.defs.get(target["type"])
                name = str(slot.get("name", ""))
                if info is not None and any(w.name == name for w in widget_slots(info)):
                    return True
        return False

    def _resolve_subgraph_input(self, graph: UiGraph, index: int, seen: _Seen) -> _Resolved:
        assert graph.definition is not None and graph.instance is not None
        sub_inputs = slots(graph.definition, "inputs")
        if index >= len(sub_inputs):
            return _NOTHING
        name = str(sub_inputs[index].get("name", ""))
        for slot_index, slot in enumerate(slots(graph.instance, "inputs")):
            if slot.get("name") == name and slot.get("link") is not None:
                assert graph.parent is not None
                return self._follow_input(graph.parent, graph.instance, slot_index, seen)
        if name in graph.promoted:
            return _Resolved("value", value=graph.promoted[name])
        return _NOTHING


def convert_ui_to_api(ui_workflow: Mapping[str, Any], defs: NodeDefIndex) -> Dict[str, Any]:
    """Convert an editor save file (a mapping with a ``nodes`` list) to an API-format prompt
    dict, the one copy of what is posted (nothing shared with ``ui_workflow``).

    Raises :class:`WorkflowFormatError` naming the node and what is wrong whenever the
    result would not be what the editor itself sends.
    """
    if not len(defs):
        raise WorkflowFormatError("node_defs is empty: cannot convert a UI-format workflow")
    return api_copy(_Converter(ui_workflow, defs).run())
