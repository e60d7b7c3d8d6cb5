"""UI-format → API-format conversion: what the editor's *Queue* button does, in Python.

The editor saves graphs as ``{"nodes": [...], "links": [...], "definitions": {"subgraphs"}}``
where a node's literal inputs are a positional ``widgets_values`` list. The server only takes
the API format (node id → ``class_type`` + named ``inputs``). Turning one into the other needs
the node definitions (``/object_info``) to know which inputs are widgets and in what order.

Rules (each mirrors the ComfyUI frontend):

* widget values are assigned in ``input_order`` (``required`` then ``optional``) to the inputs
  that have a widget: INT, FLOAT, STRING, BOOLEAN and COMBO inputs without ``forceInput``. An
  INT with ``control_after_generate`` (or named ``seed``/``noise_seed`` when the option is
  absent) is followed by the editor-only "control after generate" value, which is consumed and
  not sent. Extra trailing values (upload buttons, audio players, previews) are ignored; missing
  trailing values take the input's default. Every value is type-checked against its input, so a
  node saved by a different version of its class is refused rather than shifted.
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

import copy
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from attrs import define, field

from ._format import is_ui_format
from ._node_specs import (
    EDITOR_ONLY_WIDGET_TYPES,
    NodeDefsLike,
    WidgetSlot,
    input_spec,
    raw_node_defs,
    spec_options,
    spec_type,
    widget_slots,
)
from .errors import WorkflowFormatError

__all__ = [
    "NodeDefsLike",
    "convert_ui_to_api",
    "input_spec",
    "is_ui_format",
    "raw_node_defs",
    "spec_options",
    "spec_type",
    "widget_slots",
]

log = logging.getLogger("comfysync.ui_convert")

MODE_MUTED = 2
MODE_BYPASSED = 4

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

_CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
_SUBGRAPH_INPUT_NODE = -10
_SUBGRAPH_OUTPUT_NODE = -20
_MAX_DEPTH = 1000


def _is_control_value(value: Any) -> bool:
    """``"randomize"`` etc.; very old saves stored a bool ("random seed after every gen")."""
    return isinstance(value, bool) or (isinstance(value, str) and value in _CONTROL_VALUES)


def _literal(value: Any) -> Any:
    """A literal list would read as a link; the server unwraps ``{"__value__": [...]}``."""
    return {"__value__": value} if isinstance(value, list) else value


# ---------------------------------------------------------------------- UI graph model


@define(frozen=True)
class _Link:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: str


def _parse_links(raw_links: Any, where: str) -> Dict[int, _Link]:
    """Links come as ``[id, origin, slot, target, slot, type]`` or as dicts (subgraphs)."""
    links: Dict[int, _Link] = {}
    if raw_links is None:
        return links
    if not isinstance(raw_links, list):
        raise WorkflowFormatError(f"{where}: 'links' must be a list")
    for raw in raw_links:
        try:
            if isinstance(raw, Mapping):
                lid = int(raw["id"])
                link = _Link(
                    str(raw["origin_id"]),
                    int(raw["origin_slot"]),
                    str(raw["target_id"]),
                    int(raw["target_slot"]),
                    str(raw.get("type", "*")),
                )
            elif isinstance(raw, (list, tuple)) and len(raw) >= 5:
                lid = int(raw[0])
                kind = raw[5] if len(raw) > 5 else "*"
                link = _Link(str(raw[1]), int(raw[2]), str(raw[3]), int(raw[4]), str(kind))
            elif raw is None:
                continue
            else:
                raise ValueError(raw)
        except (KeyError, TypeError, ValueError):
            raise WorkflowFormatError(f"{where}: malformed link {raw!r}") from None
        links[lid] = link
    return links


def _parse_nodes(raw_nodes: Any, where: str) -> Dict[str, Mapping[str, Any]]:
    if not isinstance(raw_nodes, list):
        raise WorkflowFormatError(f"{where}: 'nodes' must be a list")
    nodes: Dict[str, Mapping[str, Any]] = {}
    for raw in raw_nodes:
        if not isinstance(raw, Mapping) or "id" not in raw or not isinstance(raw.get("type"), str):
            raise WorkflowFormatError(
                f"{where}: malformed node (needs 'id' and 'type'): {raw!r:.200}"
            )
        nodes[str(raw["id"])] = raw
    return nodes


def _slots(node: Mapping[str, Any], key: str) -> List[Mapping[str, Any]]:
    slots = node.get(key)
    if not isinstance(slots, list):
        return []
    return [s if isinstance(s, Mapping) else {} for s in slots]


def _mode(node: Mapping[str, Any]) -> int:
    mode = node.get("mode", 0)
    return mode if isinstance(mode, int) else 0


def _describe(node: Mapping[str, Any], node_id: str) -> str:
    title = node.get("title")
    label = f" {title!r}" if isinstance(title, str) and title != node.get("type") else ""
    return f"node {node_id}{label} (class {node.get('type')!r})"


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


@define
class _Graph:
    """One graph level: the root, or the inside of one subgraph node instance."""

    nodes: Dict[str, Mapping[str, Any]]
    links: Dict[int, _Link]
    prefix: str  # prepended to node ids: "" at the root, "12:" inside instance 12
    definition: Optional[Mapping[str, Any]] = None
    instance: Optional[Mapping[str, Any]] = None
    parent: Optional[_Graph] = None
    promoted: Dict[str, Any] = field(factory=dict)


# ---------------------------------------------------------------------- converter


class _Converter:
    def __init__(self, ui: Mapping[str, Any], defs: Dict[str, Mapping[str, Any]]) -> None:
        self.defs = defs
        self.subgraphs: Dict[str, Mapping[str, Any]] = {}
        definitions = ui.get("definitions")
        if isinstance(definitions, Mapping):
            subgraphs = definitions.get("subgraphs")
            subgraphs = [] if subgraphs is None else subgraphs
            if not isinstance(subgraphs, list):
                raise WorkflowFormatError("'definitions.subgraphs' must be a list")
            for sub in subgraphs:
                if not isinstance(sub, Mapping) or not isinstance(sub.get("id"), str):
                    raise WorkflowFormatError("malformed subgraph definition (needs an 'id')")
                self.subgraphs[sub["id"]] = sub
        extra = ui.get("extra")
        groups = extra.get("groupNodes") if isinstance(extra, Mapping) else None
        self.group_nodes = set(groups) if isinstance(groups, Mapping) else set()
        self.root = _Graph(
            _parse_nodes(ui.get("nodes"), "workflow"), _parse_links(ui.get("links"), "workflow"), ""
        )
        self.output: Dict[str, Dict[str, Any]] = {}
        self.unknown: List[str] = []
        self.unknown_classes: Set[str] = set()
        self._inner_cache: Dict[str, _Graph] = {}

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

    def _emit_graph(self, graph: _Graph, depth: int) -> None:
        if depth > 32:
            raise WorkflowFormatError("subgraphs are nested more than 32 levels deep (a cycle?)")
        for node_id, node in graph.nodes.items():
            kind = node["type"]
            mode = _mode(node)
            if kind in self.subgraphs:
                if mode not in (MODE_MUTED, MODE_BYPASSED):
                    self._emit_graph(self._inner(graph, node_id, node), depth + 1)
                continue
            if self._is_group_node(kind):
                raise WorkflowFormatError(
                    f"{_describe(node, graph.prefix + node_id)} is a legacy group node; "
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

    def _emit_node(self, graph: _Graph, node_id: str, node: Mapping[str, Any]) -> None:
        api_id = graph.prefix + node_id
        kind = node["type"]
        info = self.defs.get(kind)
        if info is None:
            self.unknown.append(_describe(node, api_id))
            self.unknown_classes.add(kind)
            return
        inputs = self._widget_inputs(api_id, node, info)
        for slot in _slots(node, "inputs"):
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
                inputs[name] = _literal(resolved.value)
            elif resolved.kind == "removed":
                inputs.pop(name, None)
        title = node.get("title")
        if not isinstance(title, str) or not title:
            title = info.get("display_name") or kind
        self.output[api_id] = {"inputs": inputs, "class_type": kind, "_meta": {"title": title}}

    def _widget_inputs(
        self, api_id: str, node: Mapping[str, Any], info: Mapping[str, Any]
    ) -> Dict[str, Any]:
        slots = widget_slots(info)
        for slot in slots:
            if slot.kind in EDITOR_ONLY_WIDGET_TYPES:
                raise WorkflowFormatError(
                    f"{_describe(node, api_id)}: input {slot.name!r} ({slot.kind}) is filled "
                    "in by the editor when you queue (camera, recording or 3D view); it cannot "
                    "be converted — export the workflow in API format from the editor"
                )
        saved = node.get("widgets_values")
        inputs: Dict[str, Any] = {}
        if isinstance(saved, Mapping):  # some custom nodes save widgets by name
            for slot in slots:
                if slot.name in saved:
                    inputs[slot.name] = _literal(saved[slot.name])
                else:
                    self._fill_default(inputs, slot)
            return inputs
        values = list(saved) if isinstance(saved, list) else []
        pos = 0
        for slot in slots:
            if pos >= len(values):
                self._fill_default(inputs, slot)
                continue
            value = values[pos]
            if not slot.fits(value):
                raise self._mismatch(api_id, node, slot, value, values)
            inputs[slot.name] = _literal(value)
            pos += 1
            if slot.has_control and pos < len(values):
                if not _is_control_value(values[pos]):
                    raise self._mismatch(api_id, node, slot, values[pos], values, control=True)
                pos += 1
        if pos < len(values):
            log.debug("%s: ignoring %d editor-only widget value(s)", api_id, len(values) - pos)
        return inputs

    @staticmethod
    def _fill_default(inputs: Dict[str, Any], slot: WidgetSlot) -> None:
        known, value = slot.default()
        if known:
            inputs[slot.name] = value

    @staticmethod
    def _mismatch(
        api_id: str,
        node: Mapping[str, Any],
        slot: WidgetSlot,
        value: Any,
        values: Sequence[Any],
        control: bool = False,
    ) -> WorkflowFormatError:
        what = (
            f"expected a control_after_generate choice after {slot.name!r}"
            if control
            else f"{value!r:.60} does not fit input {slot.name!r} ({slot.kind})"
        )
        return WorkflowFormatError(
            f"{_describe(node, api_id)}: its saved widget values do not match this server's "
            f"definition of {node['type']} ({what}; saved values: {list(values)!r:.200}). The "
            "node was probably saved by another version of it: open and re-save the workflow "
            "in this server's editor, or export it in API format"
        )

    # -- link resolution ------------------------------------------------------------------

    def _follow(self, graph: _Graph, link_id: Any, seen: Set[Tuple[str, str, int]]) -> _Resolved:
        try:
            link = graph.links.get(int(link_id))
        except (TypeError, ValueError):
            link = None
        if link is None:
            log.warning("graph %r: input refers to unknown link %r; ignored", graph.prefix, link_id)
            return _NOTHING
        return self._resolve_output(graph, link.origin_id, link.origin_slot, seen)

    def _follow_input(
        self, graph: _Graph, node: Mapping[str, Any], index: int, seen: Set[Tuple[str, str, int]]
    ) -> _Resolved:
        inputs = _slots(node, "inputs")
        if index < 0 or index >= len(inputs) or inputs[index].get("link") is None:
            return _NOTHING
        return self._follow(graph, inputs[index]["link"], seen)

    def _resolve_output(
        self, graph: _Graph, origin_id: str, slot: int, seen: Set[Tuple[str, str, int]]
    ) -> _Resolved:
        key = (graph.prefix, origin_id, slot)
        if key in seen or len(seen) > _MAX_DEPTH:
            raise WorkflowFormatError(
                f"links loop through reroute/bypassed nodes at node {graph.prefix}{origin_id}"
            )
        seen = seen | {key}
        if origin_id == str(_SUBGRAPH_INPUT_NODE) and graph.instance is not None:
            return self._resolve_subgraph_input(graph, slot, seen)
        node = graph.nodes.get(origin_id)
        if node is None:
            log.warning("link from missing node %s%s ignored", graph.prefix, origin_id)
            return _NOTHING
        kind = node["type"]
        mode = _mode(node)
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
            for link in inner.links.values():
                if link.target_id == str(_SUBGRAPH_OUTPUT_NODE) and link.target_slot == slot:
                    return self._resolve_output(inner, link.origin_id, link.origin_slot, seen)
            return _NOTHING
        return _Resolved("link", node_id=graph.prefix + origin_id, slot=slot)

    @staticmethod
    def _bypass_input(node: Mapping[str, Any], slot: int) -> int:
        """Which input a bypassed node passes through to output ``slot`` (editor rule:
        same index when the types fit, else the first input of the same type)."""
        inputs = _slots(node, "inputs")
        outputs = _slots(node, "outputs")
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
        graph: _Graph,
        node_id: str,
        node: Mapping[str, Any],
        seen: Set[Tuple[str, str, int]],
    ) -> _Resolved:
        saved = node.get("widgets_values")
        name = saved[0] if isinstance(saved, list) and saved else None
        level: Optional[_Graph] = graph
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
                    f"{_describe(node, graph.prefix + node_id)}: several SetNodes named {name!r}"
                )
            if setters:
                return self._follow_input(level, setters[0], 0, seen)
            level = level.parent
        raise WorkflowFormatError(
            f"{_describe(node, graph.prefix + node_id)}: no SetNode named {name!r}"
        )

    # -- subgraphs --------------------------------------------------------------------------

    def _inner(self, graph: _Graph, node_id: str, node: Mapping[str, Any]) -> _Graph:
        definition = self.subgraphs[node["type"]]
        prefix = f"{graph.prefix}{node_id}:"
        cached = self._inner_cache.get(prefix)
        if cached is not None:
            return cached
        where = f"subgraph {definition.get('name', node['type'])!r}"
        inner = _Graph(
            _parse_nodes(definition.get("nodes", []), where),
            _parse_links(definition.get("links", []), where),
            prefix,
            definition=definition,
            instance=node,
            parent=graph,
        )
        inner.promoted = self._promoted_values(inner, graph.prefix + node_id, node, definition)
        self._inner_cache[prefix] = inner
        return inner

    def _promoted_values(
        self, inner: _Graph, api_id: str, node: Mapping[str, Any], definition: Mapping[str, Any]
    ) -> Dict[str, Any]:
        """The subgraph node's own widgets: one per subgraph input that feeds a widget
        inside, in input order, holding the values the inner widgets receive."""
        names = []
        for index, sub_input in enumerate(_slots(definition, "inputs")):
            if self._feeds_widget(inner, index):
                names.append(str(sub_input.get("name", "")))
        saved = node.get("widgets_values")
        values = list(saved) if isinstance(saved, list) else []
        if not values:
            return {}
        if len(values) != len(names):
            raise WorkflowFormatError(
                f"{_describe(node, api_id)} (subgraph {definition.get('name')!r}): "
                f"{len(values)} saved widget values for {len(names)} promoted inputs "
                f"{names}; cannot tell which value goes where — open and re-save the "
                "workflow in the editor, or export it in API format"
            )
        return dict(zip(names, values))

    def _feeds_widget(self, inner: _Graph, sub_index: int) -> bool:
        for link in inner.links.values():
            if link.origin_id != str(_SUBGRAPH_INPUT_NODE) or link.origin_slot != sub_index:
                continue
            target = inner.nodes.get(link.target_id)
            if target is None:
                continue
            slots = _slots(target, "inputs")
            if link.target_slot < len(slots):
                slot = slots[link.target_slot]
                if isinstance(slot.get("widget"), Mapping):
                    return True
                info = self.defs.get(target["type"])
                name = str(slot.get("name", ""))
                if info is not None and any(w.name == name for w in widget_slots(info)):
                    return True
        return False

    def _resolve_subgraph_input(
        self, graph: _Graph, index: int, seen: Set[Tuple[str, str, int]]
    ) -> _Resolved:
        assert graph.definition is not None and graph.instance is not None
        sub_inputs = _slots(graph.definition, "inputs")
        if index >= len(sub_inputs):
            return _NOTHING
        name = str(sub_inputs[index].get("name", ""))
        for slot_index, slot in enumerate(_slots(graph.instance, "inputs")):
            if slot.get("name") == name and slot.get("link") is not None:
                assert graph.parent is not None
                return self._follow_input(graph.parent, graph.instance, slot_index, seen)
        if name in graph.promoted:
            return _Resolved("value", value=graph.promoted[name])
        return _NOTHING


def convert_ui_to_api(ui_workflow: Mapping[str, Any], node_defs: NodeDefsLike) -> Dict[str, Any]:
    """Convert an editor save file to an API-format prompt dict (a new dict).

    Raises :class:`WorkflowFormatError` naming the node and what is wrong whenever the
    result would not be what the editor itself sends.
    """
    if not is_ui_format(ui_workflow):
        raise WorkflowFormatError(
            "not a UI-format workflow: expected an object with a 'nodes' list "
            "(as saved by the ComfyUI editor)"
        )
    defs = raw_node_defs(node_defs)
    if not defs:
        raise WorkflowFormatError("node_defs is empty: cannot convert a UI-format workflow")
    return copy.deepcopy(_Converter(ui_workflow, defs).run())
