"""The editor's graph as saved in a UI-format workflow: nodes, links, subgraph definitions.

A save file is ``{"nodes": [...], "links": [...], "definitions": {"subgraphs": [...]},
"extra": {"groupNodes": {...}}}``. This module parses that shape once, refusing malformed parts
with :class:`WorkflowFormatError`, into a small model the converter walks:

* :class:`UiLink`, from either link form: the root's ``[id, origin, slot, target, slot, type]``
  arrays or the ``{"id", "origin_id", ...}`` dicts used inside subgraphs;
* :class:`UiGraph`, one graph level: the root, or the inside of one subgraph *instance*, whose
  node ids are prefixed ``"<instance id>:"`` as the frontend does when it queues;
* :class:`UiDocument`, the root graph plus the subgraph definitions and legacy group-node names.

Nodes stay the saved dicts (read with :func:`slots`, :func:`node_mode`, :func:`describe`): the
converter reads only a few keys of them, and custom nodes add keys of their own.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Optional, Set

from attrs import define, field

from ..errors import WorkflowFormatError

__all__ = [
    "MODE_BYPASSED",
    "MODE_MUTED",
    "SUBGRAPH_INPUT_NODE",
    "SUBGRAPH_OUTPUT_NODE",
    "UiDocument",
    "UiGraph",
    "UiLink",
    "describe",
    "node_mode",
    "parse_ui",
    "slots",
]

MODE_MUTED = 2
MODE_BYPASSED = 4

#: Ids of the virtual nodes that stand for a subgraph's inputs and outputs inside it.
SUBGRAPH_INPUT_NODE = "-10"
SUBGRAPH_OUTPUT_NODE = "-20"


@define(frozen=True)
class UiLink:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: str


def _parse_links(raw_links: Any, where: str) -> Dict[int, UiLink]:
    """Links come as ``[id, origin, slot, target, slot, type]`` or as dicts (subgraphs)."""
    links: Dict[int, UiLink] = {}
    if raw_links is None:
        return links
    if not isinstance(raw_links, list):
        raise WorkflowFormatError(f"{where}: 'links' must be a list")
    for raw in raw_links:
        try:
            if isinstance(raw, Mapping):
                lid = int(raw["id"])
                link = UiLink(
                    str(raw["origin_id"]),
                    int(raw["origin_slot"]),
                    str(raw["target_id"]),
                    int(raw["target_slot"]),
                    str(raw.get("type", "*")),
                )
            elif isinstance(raw, (list, tuple)) and len(raw) >= 5:
                lid = int(raw[0])
                kind = raw[5] if len(raw) > 5 else "*"
                link = UiLink(str(raw[1]), int(raw[2]), str(raw[3]), int(raw[4]), str(kind))
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


def slots(node: Mapping[str, Any], key: str) -> List[Mapping[str, Any]]:
    """A node's (or subgraph definition's) ``inputs`` or ``outputs`` slot dicts."""
    found = node.get(key)
    if not isinstance(found, list):
        return []
    return [s if isinstance(s, Mapping) else {} for s in found]


def node_mode(node: Mapping[str, Any]) -> int:
    """0 = always, 2 = muted ("never"), 4 = bypassed."""
    mode = node.get("mode", 0)
    return mode if isinstance(mode, int) else 0


def describe(node: Mapping[str, Any], node_id: str) -> str:
    """``node 3 'My sampler' (class 'KSampler')`` — how conversion errors name a node."""
    title = node.get("title")
    label = f" {title!r}" if isinstance(title, str) and title != node.get("type") else ""
    return f"node {node_id}{label} (class {node.get('type')!r})"


@define
class UiGraph:
    """One graph level: the root, or the inside of one subgraph node instance."""

    nodes: Dict[str, Mapping[str, Any]]
    links: Dict[int, UiLink]
    prefix: str  # prepended to node ids: "" at the root, "12:" inside instance 12
    definition: Optional[Mapping[str, Any]] = None
    instance: Optional[Mapping[str, Any]] = None
    parent: Optional[UiGraph] = None
    #: values of the subgraph node's own widgets, by subgraph input name (set by the converter)
    promoted: Dict[str, Any] = field(factory=dict)

    def link(self, link_id: Any) -> Optional[UiLink]:
        """The link with this id, or None (unknown, or not an id at all)."""
        try:
            return self.links.get(int(link_id))
        except (TypeError, ValueError):
            return None

    def from_subgraph_input(self, index: int) -> Iterator[UiLink]:
        """The links inside a subgraph that carry its input ``index``."""
        for link in self.links.values():
            if link.origin_id == SUBGRAPH_INPUT_NODE and link.origin_slot == index:
                yield link

    def to_subgraph_output(self, index: int) -> Optional[UiLink]:
        """The link inside a subgraph that feeds its output ``index``."""
        for link in self.links.values():
            if link.target_id == SUBGRAPH_OUTPUT_NODE and link.target_slot == index:
                return link
        return None

    def instance_graph(
        self, node_id: str, node: Mapping[str, Any], definition: Mapping[str, Any]
    ) -> UiGraph:
        """The inside of subgraph node ``node_id`` of this graph, with prefixed ids."""
        where = f"subgraph {definition.get('name', node['type'])!r}"
        return UiGraph(
            _parse_nodes(definition.get("nodes", []), where),
            _parse_links(definition.get("links", []), where),
            f"{self.prefix}{node_id}:",
            definition=definition,
            instance=node,
            parent=self,
        )


@define(frozen=True)
class UiDocument:
    """A parsed save file: the root graph, subgraph definitions by id, group-node names."""

    root: UiGraph
    subgraphs: Dict[str, Mapping[str, Any]]
    group_nodes: Set[str]


def parse_ui(ui: Mapping[str, Any]) -> UiDocument:
    """Parse the graph structure of a UI-format workflow (a mapping with a ``nodes`` list)."""
    subgraphs: Dict[str, Mapping[str, Any]] = {}
    definitions = ui.get("definitions")
    if isinstance(definitions, Mapping):
        found = definitions.get("subgraphs")
        found = [] if found is None else found
        if not isinstance(found, list):
            raise WorkflowFormatError("'definitions.subgraphs' must be a list")
        for sub in found:
            if not isinstance(sub, Mapping) or not isinstance(sub.get("id"), str):
                raise WorkflowFormatError("malformed subgraph definition (needs an 'id')")
            subgraphs[sub["id"]] = sub
    extra = ui.get("extra")
    groups = extra.get("groupNodes") if isinstance(extra, Mapping) else None
    root = UiGraph(
        _parse_nodes(ui.get("nodes"), "workflow"), _parse_links(ui.get("links"), "workflow"), ""
    )
    return UiDocument(root, subgraphs, set(groups) if isinstance(groups, Mapping) else set())
