"""``Workflow``: an API-format prompt you can load, edit by node id or title, check and save.

The API format is what ``POST /prompt`` takes: ``{"<node id>": {"class_type", "inputs",
"_meta": {"title"}}}``. A :class:`Workflow` owns a private copy of that dict; :class:`Node` is a
live view of one entry, so ``wf["3"].inputs["seed"] = 1`` edits the workflow in place.

Editing by *path* (``wf.set("KSampler.seed", 1)``) addresses a node by id or by title. Titles may
contain dots, so a path is split at the longest prefix that names a node. Lookups that fail
list the candidates instead of guessing.

UI-format workflows (what the editor saves: ``nodes``/``links``/``widgets_values``) are turned
into API format by :meth:`Workflow.from_ui` (see :mod:`comfysync._workflow.ui_convert`);
:func:`ensure_api_format` is the one entry point the client uses before posting anything.
Client-side checks live in :mod:`comfysync._workflow.validate`, node definitions are read by
:mod:`comfysync._workflow.node_specs` (whose :class:`NodeDefsCache` is re-exported here for the
client).
"""

from __future__ import annotations

import copy as _copy
import json
import logging
import os
import random
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from ..errors import WorkflowFormatError
from .format import check_api_shape, is_ui_format, read_json_file
from .node import Node
from .node_specs import (
    SEED_INPUTS,
    NodeDefsCache,
    NodeDefsLike,
    raw_node_defs,
    seed_range,
)
from .ui_convert import convert_ui_to_api
from .validate import validate_api

__all__ = [
    "Workflow",
    "Node",
    "NodeDefsCache",
    "coerce_cli_value",
    "ensure_api_format",
]

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


class Workflow:
    """An API-format workflow: node id → ``{"class_type", "inputs", "_meta"}``.

    ``Workflow(data)`` copies ``data`` (a dict or another Workflow); editing the workflow never
    changes the caller's dict. Anything that takes a workflow (``run_workflow``, ``submit``,
    ``queue_prompt``, ``ComfyPool``) accepts a Workflow.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Union[Mapping[str, Any], Workflow, None] = None) -> None:
        if data is None:
            data = {}
        if isinstance(data, Workflow):
            self._data: Dict[str, Any] = data.to_dict()
            return
        if not isinstance(data, Mapping):
            raise WorkflowFormatError(
                f"a workflow must be a JSON object of nodes, not {type(data).__name__}"
            )
        if is_ui_format(data):
            raise WorkflowFormatError(
                "this is a UI-format workflow (as saved by the ComfyUI editor: nodes/links); "
                "convert it with Workflow.from_ui(data, node_defs) — node_defs from "
                "api.get_node_defs() — or pass it to api.run_workflow(), which converts it"
            )
        self._data = {str(k): _copy.deepcopy(v) for k, v in data.items()}
        check_api_shape(self._data)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def load(cls, path: PathLike, node_defs: Optional[NodeDefsLike] = None) -> Workflow:
        """Read a workflow JSON file. An API-format file is used as is; a UI-format file is
        converted with ``node_defs`` (``api.get_node_defs()``), and refused without them."""
        data = _read_json(path)
        if is_ui_format(data):
            if node_defs is None:
                raise WorkflowFormatError(
                    f"{os.fspath(path)} is a UI-format workflow (as saved by the ComfyUI "
                    "editor); converting it needs the server's node definitions: "
                    "Workflow.load(path, node_defs=api.get_node_defs()), or export it with "
                    "'Export (API)' in the editor"
                )
            return cls.from_ui(data, node_defs)
        return cls(data)

    @classmethod
    def from_ui(cls, ui_workflow: Mapping[str, Any], node_defs: NodeDefsLike) -> Workflow:
        """Convert a UI-format workflow (editor save file) to API format, as the editor's
        *Queue* button does. ``node_defs``: ``api.get_node_defs()`` or the raw
        ``/object_info`` JSON. Raises :class:`WorkflowFormatError` for anything it cannot
        convert faithfully."""
        return cls._adopt(convert_ui_to_api(ui_workflow, node_defs))

    @classmethod
    def _adopt(cls, data: Dict[str, Any]) -> Workflow:
        """Wrap a dict this module just built (no copy)."""
        wf = cls.__new__(cls)
        wf._data = data
        return wf

    # ------------------------------------------------------------------ mapping-like access

    def __getitem__(self, node_id: Union[str, int]) -> Node:
        key = str(node_id)
        entry = self._data.get(key)
        if not isinstance(entry, dict):
            raise KeyError(key)
        return Node(key, entry)

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, (str, int)) and str(node_id) in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

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
        raise WorkflowFormatError(
            f"{path!r}: no node with id or title {parts[0]!r}"
            + (" (or any longer dotted title)" if len(parts) > 2 else "")
            + f"; nodes: {self._names(self.nodes())}"
        )

    def _resolve_input(self, path: str) -> Tuple[Node, str]:
        """:meth:`_resolve_path`, refusing an input the node does not have (a typo would
        otherwise be sent, and silently ignored by the server)."""
        node, name = self._resolve_path(path)
        if name not in node.inputs:
            known = ", ".join(sorted(node.inputs)) or "(none)"
            raise WorkflowFormatError(
                f"{path!r}: node {node.describe()} has no input {name!r}; its inputs: {known} "
                f"(to add an input, assign wf[{node.id!r}].inputs[{name!r}])"
            )
        return node, name

    def get(self, path: str) -> Any:
        """The value of ``"<id or title>.<input>"`` (a literal, or a ``[id, index]`` link)."""
        node, name = self._resolve_input(path)
        return node.inputs[name]

    def set(self, path: str, value: Any) -> Workflow:
        """Set ``"<id or title>.<input>"`` to ``value``; returns self for chaining.

        The input must already exist on the node (a typo would otherwise be silently sent
        and ignored by the server); add new inputs with ``wf[id].inputs[name] = value``.
        Setting a literal over a link replaces the link.
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
    ) -> Dict[str, int]:
        """Give every literal-int ``seed``/``noise_seed`` input a new random value (linked
        seeds are left alone). Returns ``{"<id>.<input>": new_value}``.

        Values lie in 0..2**64-1 (ComfyUI's seed range), or in the input's own ``min``/``max``
        when ``node_defs`` are given (some API nodes accept only 32-bit seeds).
        Pass ``rng=random.Random(n)`` for reproducible seeds.
        """
        rng = rng if rng is not None else random.Random()
        defs = raw_node_defs(node_defs) if node_defs is not None else None
        changed: Dict[str, int] = {}
        for node in self.nodes():
            for name in SEED_INPUTS:
                value = node.inputs.get(name)
                if not isinstance(value, int) or isinstance(value, bool):
                    continue
                info = defs.get(node.class_type) if defs is not None else None
                low, high = seed_range(info, name)
                new = rng.randint(low, high) if high >= low else low
                node.inputs[name] = new
                changed[f"{node.id}.{name}"] = new
        return changed

    def output_nodes(self, node_defs: NodeDefsLike) -> List[str]:
        """Ids of the nodes whose class is an output node (``output_node: true``)."""
        defs = raw_node_defs(node_defs)
        out = []
        for node in self.nodes():
            info = defs.get(node.class_type)
            if isinstance(info, Mapping) and info.get("output_node") is True:
                out.append(node.id)
        return out

    def validate(self, node_defs: NodeDefsLike, *, raise_errors: bool = False) -> List[str]:
        """Check the workflow against ``node_defs`` the way the server's validation would.

        Returns one line per problem (empty list = fine), worded like the server's errors:
        ``node 3 (KSampler): Required input is missing — seed``. Checks: missing/unknown
        ``class_type``, required inputs, link shape, links to missing nodes or output
        indexes, link types, and that there is an output node. Value ranges and combo
        choices are left to the server. With ``raise_errors=True`` a non-empty result raises
        :class:`WorkflowFormatError` listing every problem instead.
        """
        problems = validate_api(self._data, raw_node_defs(node_defs))
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
        return Workflow._adopt(self.to_dict())

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self._data, indent=indent, ensure_ascii=False)

    def save(self, path: PathLike, indent: Optional[int] = 2) -> None:
        """Write the API-format JSON to ``path`` (UTF-8)."""
        with open(os.fspath(path), "w", encoding="utf-8") as fh:
            fh.write(self.to_json(indent=indent))
            fh.write("\n")


def _read_json(path: PathLike) -> Any:
    data = read_json_file(path)
    if not isinstance(data, dict):
        name = os.fspath(path)
        raise WorkflowFormatError(
            f"{name} holds a JSON {type(data).__name__}, not a workflow object"
        )
    return data


def ensure_api_format(
    workflow: Any, node_defs_provider: Optional[Callable[[], NodeDefsLike]] = None
) -> Dict[str, Any]:
    """Whatever the caller passed → a fresh API-format dict ready for ``POST /prompt``.

    Accepts a :class:`Workflow`, anything with ``to_dict()``, an API- or UI-format mapping,
    or a path (``str``/``os.PathLike``) to a JSON file. A UI-format workflow is converted with
    the node definitions returned by ``node_defs_provider()`` (called only then; the client
    caches ``/object_info`` behind it, e.g. with :class:`NodeDefsCache`, which is asked to
    refresh once when the workflow uses classes it does not know). Without a provider a
    UI-format workflow is refused with :class:`WorkflowFormatError` — it is never posted raw.
    """
    if isinstance(workflow, Workflow):
        return workflow.to_dict()
    if isinstance(workflow, (str, os.PathLike)):
        data: Any = _read_json(workflow)
        source = os.fspath(workflow)
    elif isinstance(workflow, Mapping):
        data, source = workflow, "the workflow"
    elif callable(getattr(workflow, "to_dict", None)):
        data, source = workflow.to_dict(), "the workflow"
    else:
        raise WorkflowFormatError(
            "a workflow must be a Workflow, an API-format dict, or a path to a JSON file, "
            f"not {type(workflow).__name__}"
        )
    if is_ui_format(data):
        if node_defs_provider is None:
            raise WorkflowFormatError(
                f"{source} is in UI format (as saved by the ComfyUI editor) and no node "
                "definitions are available to convert it; use Workflow.from_ui(data, "
                "node_defs) or export it with 'Export (API)' in the editor"
            )
        log.debug("converting UI-format workflow from %s", source)
        try:
            return convert_ui_to_api(data, node_defs_provider())
        except WorkflowFormatError as exc:
            # Cached definitions may predate custom nodes installed since: look once more.
            unknown = getattr(exc, "unknown_classes", None)
            if not unknown or not isinstance(node_defs_provider, NodeDefsCache):
                raise
            log.info("unknown node classes %s: fetching node definitions again", unknown)
            return convert_ui_to_api(data, node_defs_provider.refresh())
    return Workflow(data)._data
