"""Execution order and cache signatures of an API-format prompt, as ComfyUI computes them.

Clients see the node order (``executing`` / ``progress_state`` sequences) and which nodes are
cached (``execution_cached``), so both follow the real algorithms:

* order: a topological sort grown depth-first from the output nodes, that at every step picks
  an available output node first, then a node that directly feeds an output, then one two
  links away, else the first available node (ComfyUI's "UX friendly" pick);
* cache key: class, ``IS_CHANGED`` result and the inputs, where a link contributes its source
  node's signature and socket — so an identical resubmission is fully cached.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Set, Tuple

Prompt = Mapping[str, Mapping[str, Any]]


def is_link(value: Any) -> bool:
    """A ``[node_id, output_index]`` input."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def hashable(value: Any) -> Hashable:
    """A hashable, order-stable image of a JSON value (NaN made unique: never equal)."""
    if isinstance(value, dict):
        return ("__dict__", tuple(sorted((str(k), hashable(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("__list__", tuple(hashable(v) for v in value))
    if isinstance(value, float) and math.isnan(value):
        return ("__nan__", object())
    try:
        hash(value)
    except TypeError:
        return ("__obj__", id(value))
    return value  # type: ignore[no-any-return]


def signatures(
    prompt: Prompt,
    is_changed: Callable[[str], Hashable],
    includes_node_id: Callable[[str], bool],
) -> Dict[str, Hashable]:
    """Cache signature of every node of the prompt."""
    memo: Dict[str, Hashable] = {}

    def sig(node_id: str, stack: Tuple[str, ...]) -> Hashable:
        if node_id in memo:
            return memo[node_id]
        node = prompt.get(node_id)
        if node is None or node_id in stack:
            return ("__missing__", node_id)
        parts: List[Hashable] = [str(node.get("class_type")), is_changed(node_id)]
        inputs = node.get("inputs", {}) or {}
        for name in sorted(inputs):
            value = inputs[name]
            if is_link(value):
                parts.append((name, "__link__", sig(value[0], stack + (node_id,)), value[1]))
            else:
                parts.append((name, hashable(value)))
        if includes_node_id(node_id):
            parts.append(("__node_id__", node_id))
        memo[node_id] = tuple(parts)
        return memo[node_id]

    for node_id in prompt:
        sig(node_id, ())
    return memo


class ExecutionList:
    """ComfyUI's ``ExecutionList``: pending nodes, who blocks whom, and the pick order."""

    def __init__(
        self,
        prompt: Prompt,
        is_cached: Callable[[str], bool],
        is_output: Callable[[str], bool],
    ) -> None:
        self._prompt = prompt
        self._is_cached = is_cached
        self._is_output = is_output
        self._pending: Dict[str, bool] = {}
        self._block_count: Dict[str, int] = {}
        self._blocking: Dict[str, Dict[str, Set[int]]] = {}

    def add_node(self, root: str) -> None:
        stack = [root]
        links: List[Tuple[str, int, str]] = []
        while stack:
            node_id = stack.pop()
            if node_id in self._pending:
                continue
            self._pending[node_id] = True
            self._block_count[node_id] = 0
            self._blocking[node_id] = {}
            inputs = self._prompt[node_id].get("inputs", {}) or {}
            for name in inputs:
                value = inputs[name]
                if is_link(value) and value[0] in self._prompt:
                    if not self._is_cached(value[0]):
                        stack.append(value[0])
                    links.append((value[0], value[1], node_id))
        for source, socket, target in links:
            if not self._is_cached(source):
                self.add_node(source)
                if target not in self._blocking[source]:
                    self._blocking[source][target] = set()
                    self._block_count[target] += 1
                self._blocking[source][target].add(socket)

    def is_empty(self) -> bool:
        return not self._pending

    def next_node(self) -> Optional[str]:
        """The node to run next, or None when nothing is runnable (a cycle)."""
        ready = [n for n in self._pending if self._block_count[n] == 0]
        if not ready:
            return None
        for node_id in ready:
            if self._is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self._is_output(b) for b in self._blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self._blocking[node_id]:
                if any(self._is_output(b) for b in self._blocking[blocked]):
                    return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self._pending[node_id]
        for blocked in self._blocking[node_id]:
            self._block_count[blocked] -= 1
        self._blocking[node_id] = {}

    def pending(self) -> List[str]:
        return list(self._pending)
