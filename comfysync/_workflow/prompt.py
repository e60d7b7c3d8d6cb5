"""The one way in: whatever a user passes as a workflow → the API prompt that is posted.

Every entry point (``Workflow(...)``, ``Workflow.load``, ``api.queue_prompt``, ``api.submit``,
``api.run_workflow``, ``ComfyPool`` and ``comfysync run``) goes through :func:`to_prompt`, so
each check is made once, in one place, with one wording:

1. :func:`prepare` reads what was passed — a :class:`~comfysync.Workflow`, an API-format
   mapping, a path to a JSON file or to a ComfyUI output PNG (its embedded prompt), a
   ``/prompt`` request body copied from the browser (its ``prompt``), or anything with
   ``to_dict()`` — recognises the format once, checks the API shape once, and makes the one
   copy of an API-format prompt (integer node ids and link ids become the strings the server
   expects). It needs no server, so the pool runs it when a job is submitted.
2. :func:`to_prompt` finishes with the server's node definitions, fetched only when needed:
   a UI-format graph is converted, and inputs added to a ``Workflow`` since it was loaded are
   checked (a typo such as ``wf["3"]["sed"] = 5`` would otherwise be sent and silently
   ignored by the server).

:func:`explain_rejection` (from :mod:`comfysync._workflow.validate`) adds the client's words
to the server's validation errors.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Tuple, Union

from attrs import define

from .._types import WorkflowLike
from ..errors import WorkflowFormatError
from .format import normalise
from .node_specs import NodeDefIndex, NodeDefsCache, NodeDefsSource
from .ui_convert import convert_ui_to_api
from .validate import check_added_inputs, explain_rejection

__all__ = [
    "PreparedWorkflow",
    "WorkflowState",
    "explain_rejection",
    "prepare",
    "resolve",
    "to_prompt",
]

log = logging.getLogger("comfysync.workflow")


class WorkflowState:
    """What a :class:`~comfysync.Workflow` holds: its API-format dict and the input names each
    node had when the dict was adopted. Inputs added since are checked against the node
    definitions before posting (see :func:`to_prompt`)."""

    __slots__ = ("_data", "_loaded")

    _data: Dict[str, Any]
    _loaded: Dict[str, FrozenSet[str]]

    def _adopt_state(self, data: Dict[str, Any]) -> None:
        self._data = data
        self._loaded = {
            node_id: frozenset(_inputs_of(entry)) for node_id, entry in data.items()
        }

    def _added_inputs(self) -> Tuple[Tuple[str, str], ...]:
        """``(node id, input name)`` of every input that was not there when adopted."""
        added: List[Tuple[str, str]] = []
        for node_id, entry in self._data.items():
            loaded = self._loaded.get(node_id, frozenset())
            added.extend((node_id, name) for name in _inputs_of(entry) if name not in loaded)
        return tuple(added)


def _inputs_of(entry: Any) -> List[str]:
    inputs = entry.get("inputs") if isinstance(entry, Mapping) else None
    return [str(name) for name in inputs] if isinstance(inputs, Mapping) else []


@define(frozen=True)
class PreparedWorkflow:
    """A workflow read and checked by :func:`prepare`: either ``prompt``, a normalised API
    prompt (a private copy), or ``ui``, an editor graph still to be converted with a server's
    node definitions. ``added``: inputs set on a ``Workflow`` since it was loaded, checked
    against the node definitions by :func:`to_prompt`. ``source`` names it in errors."""

    source: str
    prompt: Optional[Dict[str, Any]] = None
    ui: Optional[Mapping[str, Any]] = None
    added: Tuple[Tuple[str, str], ...] = ()


def prepare(workflow: Union[WorkflowLike, PreparedWorkflow]) -> PreparedWorkflow:
    """Read and check ``workflow`` without a server (see the module docstring); raises
    :class:`WorkflowFormatError` for anything that is not a workflow."""
    if isinstance(workflow, PreparedWorkflow):
        return workflow
    path = ""
    data: Any = None
    added: Tuple[Tuple[str, str], ...] = ()
    if isinstance(workflow, WorkflowState):
        data = workflow._data
        added = workflow._added_inputs()
    elif isinstance(workflow, (str, os.PathLike)):
        path = os.fspath(workflow)
    elif isinstance(workflow, Mapping):
        data = workflow
    elif callable(getattr(workflow, "to_dict", None)):
        data = workflow.to_dict()
    else:
        raise WorkflowFormatError(
            "a workflow must be a Workflow, an API-format dict, or a path to a JSON file or a "
            f"ComfyUI PNG, not {type(workflow).__name__}"
        )
    prompt, ui = normalise(data, path)
    return PreparedWorkflow(path or "the workflow", prompt=prompt, ui=ui, added=added)


def _ui_needs_node_defs(source: str) -> WorkflowFormatError:
    return WorkflowFormatError(
        f"{source} is a UI-format workflow (as saved by the ComfyUI editor: nodes and links); "
        "the server runs only the API format. api.run_workflow() and api.submit() convert "
        "it; to convert it yourself use Workflow.from_ui(data, api.get_node_defs()) or "
        "Workflow.load(path, node_defs=api.get_node_defs()); or export it with "
        "'Export (API)' in the editor"
    )


def resolve(prepared: PreparedWorkflow, node_defs: Optional[NodeDefsSource]) -> Dict[str, Any]:
    """Finish ``prepared`` with the node definitions (fetched from a callable ``node_defs``
    only when needed): convert a UI graph, check added inputs. May return an empty prompt
    (a ``Workflow`` being built); :func:`to_prompt` refuses that."""
    if prepared.ui is not None:
        if node_defs is None:
            raise _ui_needs_node_defs(prepared.source)
        log.debug("converting UI-format workflow from %s", prepared.source)
        try:
            return convert_ui_to_api(prepared.ui, NodeDefIndex.of(node_defs))
        except WorkflowFormatError as exc:
            # Cached definitions may predate custom nodes installed since: look once more.
            unknown = getattr(exc, "unknown_classes", None)
            if not unknown or not isinstance(node_defs, NodeDefsCache):
                raise
            log.info("unknown node classes %s: fetching node definitions again", unknown)
            return convert_ui_to_api(prepared.ui, NodeDefIndex(node_defs.refresh()))
    assert prepared.prompt is not None
    if prepared.added:
        check_added_inputs(prepared.prompt, prepared.added, node_defs, prepared.source)
    return prepared.prompt


def to_prompt(
    workflow: Union[WorkflowLike, PreparedWorkflow], node_defs: Optional[NodeDefsSource] = None
) -> Dict[str, Any]:
    """The API prompt to post for ``workflow`` (anything :func:`prepare` takes, or its
    result). ``node_defs``: the server's node definitions, or a callable returning them
    (called only for a UI-format graph or inputs added to a ``Workflow``); without them a
    UI-format workflow is refused — it is never posted raw. Raises
    :class:`WorkflowFormatError` before anything is sent."""
    prepared = prepare(workflow)
    prompt = resolve(prepared, node_defs)
    if not prompt:
        raise WorkflowFormatError(f"{prepared.source} has no nodes")
    return prompt
