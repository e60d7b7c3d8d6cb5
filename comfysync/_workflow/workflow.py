"""``Workflow``: an API-format prompt you can load, edit by node id or title, check and save.

The API format is what ``POST /prompt`` takes: ``{"<node id>": {"class_type", "inputs",
"_meta": {"title"}}}``. A :class:`Workflow` owns a private copy of that dict and reads and writes
like it: ``wf["3"]`` is a live :class:`Node` view of one entry, so ``wf["3"]["inputs"]["seed"]
= 1`` (ComfyUI's own example), ``wf["3"].inputs["seed"] = 1`` and ``wf["3"]["seed"] = 1`` all
edit the workflow in place.

Editing by *path* (``wf.set("KSampler.seed", 1)``) addresses a node by id or by title. Titles may
contain dots, so a path is split at the longest prefix that names a node. Lookups that fail
list the candidates (and the likely intended name) instead of guessing. An input added by
plain assignment is checked against the server's node definitions before the workflow is
posted (see :mod:`comfysync._workflow.prompt`, through which every constructor goes).
"""

from __future__ import annotations

import copy as _copy
import json
import logging
import os
import random
from typing import (
    Any,
    Dict,
    ItemsView,
    Iterator,
    KeysView,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    ValuesView,
)

from .._suggest import did_you_mean
from .._types import WorkflowLike
from ..errors import WorkflowFormatError
from .format import check_api_shape
from .node import Node
from .node_specs import SEED_INPUTS, NodeDefIndex, NodeDefsLike, NodeDefsSource, seed_range
from .prompt import PreparedWorkflow, WorkflowState, prepare, resolve
from .validate import validate_api

__all__ = ["Workflow", "Node", "coerce_cli_value"]

log = logging.getLogger("comfysync.workflow")

PathLike = Union[str, "os.PathLike[str]"]

_MAX_CANDIDATES = 20


def coerce_cli_value(text: str) -> Any:
    """Turn a command-line ``--set`` value into a Python value.

    A JSON literal is used as such (``42`` → int, ``1.5`` → float, ``true`` → bool,
    ``null`` → None, ``"quoted"`` → str, ``[1, 2]`` → list); anything that does not parse
    is kept as the plain string, so ``--set Positive.text=a cat`` needs no quoting.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


class InputPathError(WorkflowFormatError):
    """A ``"<node>.<input>"`` path names no input of the node. ``detail`` is the message
    without the Python advice, for callers (the CLI) that give their own."""

    def __init__(self, detail: str, advice: str = "") -> None:
        super().__init__(detail + (f" ({advice})" if advice else ""))
        self.detail = detail


class Workflow(WorkflowState):
    """An API-format workflow: node id → ``{"class_type", "inputs", "_meta"}``.

    ``Workflow(data)`` copies ``data`` — a dict, another Workflow, a path to a JSON file or a
    ComfyUI PNG, or a ``/prompt`` request body; editing the workflow never changes the
    caller's dict. A UI-format graph (the editor's save file) is converted when ``node_defs``
    (``api.get_node_defs()``) are given. Anything that takes a workflow (``run_workflow``,
    ``submit``, ``queue_prompt``, ``ComfyPool``) accepts a Workflow.
    """

    __slots__ = ()

    def __init__(
        self,
        data: Union[WorkflowLike, PreparedWorkflow, None] = None,
        node_defs: Optional[NodeDefsSource] = None,
    ) -> None:
        self._adopt_state(resolve(prepare({} if data is None else data), node_defs))
        if isinstance(data, WorkflowState) and node_defs is None:
            self._loaded = dict(data._loaded)  # inputs added there stay to be checked

    # ------------------------------------------------------------------ constructors

    @classmethod
    def load(cls, path: PathLike, node_defs: Optional[NodeDefsSource] = None) -> Workflow:
        """Read a workflow file: API-format JSON, a ``/prompt`` request body, a ComfyUI
        output PNG (its embedded prompt), or a UI-format file, which is converted with
        ``node_defs`` (``api.get_node_defs()``) and refused without them."""
        if not isinstance(path, (str, os.PathLike)):
            raise WorkflowFormatError(
                f"Workflow.load takes a file path, not {type(path).__name__}; use Workflow(data)"
            )
        return cls(path, node_defs)

    @classmethod
    def from_ui(cls, ui_workflow: WorkflowLike, node_defs: NodeDefsSource) -> Workflow:
        """Convert a UI-format workflow (editor save file) to API format, as the editor's
        *Queue* button does. ``node_defs``: ``api.get_node_defs()`` or the raw
        ``/object_info`` JSON. Raises :class:`WorkflowFormatError` for anything it cannot
        convert faithfully (an API-format workflow is taken as it is)."""
        return cls(ui_workflow, node_defs)

    @classmethod
    def _adopt(cls, data: Dict[str, Any]) -> Workflow:
        """Wrap a dict this module just built (no copy)."""
        wf = cls.__new__(cls)
        wf._adopt_state(data)
        return wf

    # ------------------------------------------------------------------ mapping-like access

    def __getitem__(self, node_id: Union[str, int]) -> Node:
        key = str(node_id)
        entry = self._data.get(key)
        if not isinstance(entry, dict):
            raise KeyError(key)
        return Node(key, entry)

    def __setitem__(self, node_id: Union[str, int], entry: Mapping[str, Any]) -> None:
        """Add or replace a node: ``wf["10"] = {"class_type": "SaveImage", "inputs": {...}}``
        (copied; its inputs are checked against the node definitions before posting)."""
        key = str(node_id)
        if isinstance(entry, Node):
            entry = entry.to_dict()
        check_api_shape({key: entry})
        self._data[key] = json.loads(json.dumps(dict(entry)))
        self._loaded.pop(key, None)

    def __delitem__(self, node_id: Union[str, int]) -> None:
        del self._data[str(node_id)]
        self._loaded.pop(str(node_id), None)

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, (str, int)) and str(node_id) in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> KeysView[str]:
        """The node ids, like ``dict.keys()``."""
        return {k: None for k in self._data}.keys()

    def values(self) -> ValuesView[Node]:
        """A :class:`Node` view of every node, like ``dict.values()``."""
        return dict(self.items()).values()

    def items(self) -> ItemsView[str, Node]:
        """``(node id, Node)`` pairs, like ``dict.items()``."""
        return {k: Node(k, v) for k, v in self._data.items()}.items()

    def ids(self) -> List[str]:
        return list(self._data)

    def nodes(self) -> List[Node]:
        return [Node(k, v) for k, v in self._data.items()]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Workflow):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        classes = ", ".join(f"{n.id}:{n.class_type}" for n in self.nodes()[:6])
        more = ", …" if len(self) > 6 else ""
        return f"<Workflow {len(self)} nodes: {classes}{more}>"

    # ------------------------------------------------------------------ lookup

    def find(self, class_type: Optional[str] = None, title: Optional[str] = None) -> List[Node]:
        """Every node matching all the given criteria (exact class / exact title), in order."""
        found = []
        for node in self.nodes():
            if class_type is not None and node.class_type != class_type:
                continue
            if title is not None and node.title != title:
                continue
            found.append(node)
        return found

    def by_title(self, title: str) -> Node:
        """The one node with this exact title; :class:`WorkflowFormatError` listing the
        candidates when none or several have it (use :meth:`find` to get all of them)."""
        return self._titled(
            title, " all have it; address the node by id instead", f"no node titled {title!r}"
        )

    def node(self, ref: Union[str, int]) -> Node:
        """A node by id, or else by exact title (ids win when a title looks like an id)."""
        key = str(ref)
        if key in self._data:
            return self[key]
        return self._titled(key, "; use the node id", f"no node with id or title {key!r}")

    def _titled(self, title: str, ambiguous_hint: str, missing: str) -> Node:
        """The one node titled ``title``, or an error listing the candidates."""
        matches = self.find(title=title)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise WorkflowFormatError(
                f"title {title!r} is ambiguous: nodes {self._names(matches)}{ambiguous_hint}"
            )
        raise WorkflowFormatError(f"{missing}; nodes: {self._names(self.nodes())}")

    @staticmethod
    def _names(nodes: Sequence[Node]) -> str:
        shown = ", ".join(n.describe() for n in nodes[:_MAX_CANDIDATES])
        if len(nodes) > _MAX_CANDIDATES:
            shown += f", … ({len(nodes)} in all)"
        return shown or "(none)"

    def _resolve_path(self, path: str) -> Tuple[Node, str]:
        """Split ``"<id or title>.<input>"`` at the longest prefix that names a node."""
        if not isinstance(path, str) or "." not in path:
            raise WorkflowFormatError(
                f"bad path {path!r}: expected '<node id or title>.<input name>', e.g. '3.seed'"
            )
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            ref, name = ".".join(parts[:cut]), ".".join(parts[cut:])
            if ref in self._data:
                return self[ref], name
            matches = self.find(title=ref)
            if len(matches) > 1:
                raise WorkflowFormatError(
                    f"{path!r}: title {ref!r} is ambiguous: nodes {self._names(matches)}; "
                    f"use the node id, e.g. '{matches[0].id}.{name}'"
                )
            if matches:
                return matches[0], name
        titles = [n.title for n in self.nodes() if n.title]
        raise WorkflowFormatError(
            f"{path!r}: no node with id or title {parts[0]!r}"
            + (" (or any longer dotted title)" if len(parts) > 2 else "")
            + did_you_mean(parts[0], [*self._data, *titles])
            + f"; nodes: {self._names(self.nodes())}"
        )

    def _resolve_input(self, path: str) -> Tuple[Node, str]:
        """:meth:`_resolve_path`, refusing an input the node does not have (a typo would
        otherwise be sent, and silently ignored by the server)."""
        node, name = self._resolve_path(path)
        if name not in node.inputs:
            known = sorted(node.inputs)
            hint = did_you_mean(name, known)
            detail = f"{path!r}: node {node.describe()} has no input {name!r}" + (
                hint or f"; its inputs: {', '.join(known) or '(none)'}"
            )
            raise InputPathError(
                detail,
                "" if hint else f"to add an input, assign wf[{node.id!r}].inputs[{name!r}]",
            )
        return node, name

    def get(self, path: str) -> Any:
        """The value of ``"<id or title>.<input>"`` (a literal, or a ``[id, index]`` link)."""
        node, name = self._resolve_input(path)
        return node.inputs[name]

    def set(self, path: str, value: Any) -> Workflow:
        """Set ``"<id or title>.<input>"`` to ``value``; returns self for chaining.

        The input must already exist on the node (a typo would otherwise be silently sent
        and ignored by the server); add new inputs with ``wf[id].inputs[name] = value``
        (checked against the node definitions before posting). Setting a literal over a link
        replaces the link.
        """
        node, name = self._resolve_input(path)
        node.inputs[name] = value
        return self

    def set_many(self, values: Mapping[str, Any]) -> Workflow:
        """:meth:`set` for every ``path: value`` item; nothing is changed unless every path
        resolves (the CLI's ``--set`` uses this)."""
        resolved = [(*self._resolve_input(path), value) for path, value in values.items()]
        for node, name, value in resolved:
            node.inputs[name] = value
        return self

    # ------------------------------------------------------------------ operations

    def randomize_seeds(
        self, rng: Optional[random.Random] = None, node_defs: Optional[NodeDefsLike] = None
    ) -> Workflow:
        """Give every literal-int ``seed``/``noise_seed`` input a new random value (linked
        seeds are left alone); returns the workflow, for chaining
        (``wf.copy().randomize_seeds()``). :meth:`seeds` reads the values chosen.

        Values lie in 0..2**64-1 (ComfyUI's seed range), or in the input's own ``min``/``max``
        when ``node_defs`` are given (some API nodes accept only 32-bit seeds).
        Pass ``rng=random.Random(n)`` for reproducible seeds.
        """
        rng = rng if rng is not None else random.Random()
        defs = NodeDefIndex(node_defs) if node_defs is not None else None
        for path, _ in self._seed_inputs():
            node_id, name = path.rsplit(".", 1)
            node = self[node_id]
            info = defs.get(node.class_type) if defs is not None else None
            low, high = seed_range(info, name)
            node.inputs[name] = rng.randint(low, high) if high >= low else low
        return self

    def seeds(self) -> Dict[str, int]:
        """``{"<id>.<input>": value}`` of every literal-int ``seed``/``noise_seed`` input —
        what :meth:`randomize_seeds` chose, to log or reproduce a run."""
        return dict(self._seed_inputs())

    def _seed_inputs(self) -> List[Tuple[str, int]]:
        found = []
        for node in self.nodes():
            for name in SEED_INPUTS:
                value = node.inputs.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    found.append((f"{node.id}.{name}", value))
        return found

    def output_nodes(self, node_defs: NodeDefsLike) -> List[str]:
        """Ids of the nodes whose class is an output node (``output_node: true``)."""
        defs = NodeDefIndex(node_defs)
        out = []
        for node in self.nodes():
            info = defs.get(node.class_type)
            if info is not None and info.output_node:
                out.append(node.id)
        return out

    def validate(self, node_defs: NodeDefsLike, *, raise_errors: bool = False) -> List[str]:
        """Check the workflow against ``node_defs`` the way the server's validation would.

        Returns one line per problem (empty list = fine), worded like the server's errors:
        ``node 3 (KSampler): Required input is missing — seed``. Checks: missing/unknown
        ``class_type`` (with the likely intended class), required inputs, unknown input names
        (with the likely intended input, instead of reporting it missing), link shape, links
        to missing nodes or output indexes, link types, and that there is an output node.
        Value ranges and combo choices are left to the server. With ``raise_errors=True`` a
        non-empty result raises :class:`WorkflowFormatError` listing every problem instead.
        """
        problems = validate_api(self._data, NodeDefIndex(node_defs))
        if problems and raise_errors:
            raise WorkflowFormatError(
                "workflow failed validation:\n" + "\n".join(f"  {p}" for p in problems)
            )
        return problems

    # ------------------------------------------------------------------ output

    def to_dict(self) -> Dict[str, Any]:
        """A deep copy of the API-format dict (what ``POST /prompt`` gets as ``prompt``)."""
        return _copy.deepcopy(self._data)

    def copy(self) -> Workflow:
        """An independent copy (inputs added to this workflow stay marked as added)."""
        clone = Workflow._adopt(self.to_dict())
        clone._loaded = dict(self._loaded)
        return clone

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self._data, indent=indent, ensure_ascii=False)

    def save(self, path: PathLike, indent: Optional[int] = 2) -> None:
        """Write the API-format JSON to ``path`` (UTF-8)."""
        with open(os.fspath(path), "w", encoding="utf-8") as fh:
            fh.write(self.to_json(indent=indent))
            fh.write("\n")
