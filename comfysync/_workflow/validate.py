"""Client-side validation of an API-format workflow against the server's node definitions,
and the client's words for what the server refuses.

The checks the server makes before it queues a prompt and that need nothing but
``/object_info``: every node's class exists, required inputs are present, links have the right
shape, point at an existing node and output, and carry a type the input accepts, and the
prompt has an output node. Problems are worded like the server's own errors, so a user sees
the same message whether a workflow fails here or on the server. Value ranges and combo
choices are left to the server (they depend on its files and models).
"""

from __future__ import annotations

import logging
from typing import Any, List, Mapping, Optional, Sequence, Set, Tuple

from .._suggest import did_you_mean, suggestions
from ..errors import ComfyError, PromptValidationError, WorkflowFormatError
from .format import is_link
from .node_specs import NodeDefIndex, NodeDefsSource

__all__ = [
    "check_added_inputs",
    "explain_rejection",
    "missing_link_source",
    "unknown_class",
    "unknown_input",
    "validate_api",
]

log = logging.getLogger("comfysync.workflow")


def _types_match(received: str, expected: str) -> bool:
    """The server's link type rule: ``*`` matches anything, comma lists must be covered."""
    if received == "*" or expected == "*":
        return True
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return not (got - want)


def unknown_class(node_id: str, class_type: str, defs: NodeDefIndex) -> str:
    """The server's words for a class it does not have, with the likely intended class."""
    return (
        f"node {node_id}: Cannot execute because node {class_type} does not exist. "
        f"— Node ID '#{node_id}' (not installed on the server?)"
        + did_you_mean(class_type, defs.names())
    )


def unknown_input(here: str, name: str, known: List[str]) -> str:
    """An input key the node's class does not have (the server would silently ignore it)."""
    return (
        f"{here}: unknown input {name!r}"
        + (did_you_mean(name, known) or f" (its inputs: {', '.join(known) or 'none'})")
    )


def missing_link_source(here: str, name: str, source_id: str) -> str:
    """The client's words for a link to a node that is not in the workflow (the server says
    only ``Exception when validating node — '<id>'``)."""
    return (
        f"{here}: Exception when validating node — '{source_id}' (input {name!r} "
        f"links to node {source_id}, which is not in the workflow)"
    )


def validate_api(data: Mapping[str, Any], defs: NodeDefIndex) -> List[str]:
    """Client-side version of the server's prompt validation (see :meth:`Workflow.validate`)."""
    problems: List[str] = []
    has_output = False
    for node_id, entry in data.items():
        class_type = entry.get("class_type") if isinstance(entry, Mapping) else None
        if not isinstance(class_type, str):
            problems.append(
                f"node {node_id}: Cannot execute because a node is missing the class_type "
                f"property. — Node ID '#{node_id}'"
            )
            continue
        info = defs.get(class_type)
        if info is None:
            problems.append(unknown_class(str(node_id), class_type, defs))
            continue
        has_output = has_output or info.output_node
        inputs = entry.get("inputs") or {}
        here = f"node {node_id} ({class_type})"
        known = info.input_names(include_hidden=True)
        # an unknown key that looks like a missing required input is that input, mistyped
        meant: Set[str] = set()
        for name in inputs:
            if info.input(name) is None:
                close = suggestions(name, known)
                meant.update(close[:1])
                problems.append(unknown_input(here, name, info.input_names()))
        for declared in info.inputs():
            missing = declared.name not in inputs and declared.name not in meant
            if declared.category == "required" and missing:
                problems.append(f"{here}: Required input is missing — {declared.name}")
        for name, value in inputs.items():
            spec = info.input(name)
            if isinstance(value, list) and len(value) != 2:
                if spec is not None and spec.options.get("rawLink"):
                    continue
                problems.append(
                    f"{here}: Bad linked input, must be a length-2 list of [node_id, "
                    f"slot_index] — {name}"
                )
                continue
            if not is_link(value):
                continue
            source_id, index = str(value[0]), int(value[1])
            source = data.get(source_id)
            if not isinstance(source, Mapping):
                problems.append(missing_link_source(here, name, source_id))
                continue
            source_info = defs.get(str(source.get("class_type")))
            if source_info is None:
                continue  # reported on the source node itself
            outputs = source_info.output
            if index < 0 or index >= len(outputs):
                problems.append(
                    f"{here}: Exception when validating node — tuple index out of range "
                    f"(input {name!r} links to output {index} of node {source_id} "
                    f"({source.get('class_type')}), which has {len(outputs)} outputs)"
                )
                continue
            if spec is None or outputs[index] == "COMBO":
                continue
            expected = spec.type
            received = outputs[index]
            if expected != "COMBO" and not _types_match(received, expected):
                problems.append(
                    f"{here}: Return type mismatch between linked nodes — {name}, "
                    f"received_type({received}) mismatch input_type({expected})"
                )
    if data and not has_output and not problems:
        problems.append("Prompt has no outputs (no node of an output class such as SaveImage)")
    return problems


def check_added_inputs(
    prompt: Mapping[str, Any],
    added: Sequence[Tuple[str, str]],
    node_defs: Optional[NodeDefsSource],
    source: str,
) -> None:
    """Refuse inputs added to a ``Workflow`` that its node's class does not have (the server
    would silently ignore them): :class:`WorkflowFormatError` with the likely intended name.
    Without definitions (or when they cannot be read) nothing is checked."""
    if node_defs is None:
        log.debug("no node definitions to check the inputs added to %s", source)
        return
    try:
        defs = NodeDefIndex.of(node_defs)
    except ComfyError as exc:
        log.warning("cannot check the inputs added to %s: %s", source, exc)
        return
    problems = []
    for node_id, name in added:
        class_type = str(prompt[node_id].get("class_type"))
        info = defs.get(class_type)
        if info is not None and info.input(name) is None:
            here = f"node {node_id} ({class_type})"
            problems.append(unknown_input(here, name, info.input_names()))
    if problems:
        raise WorkflowFormatError(
            "; ".join(problems) + " — nothing was sent (the server ignores unknown inputs)"
        )


def explain_rejection(
    error: PromptValidationError,
    prompt: Mapping[str, Any],
    node_defs: Optional[Mapping[str, Any]] = None,
) -> PromptValidationError:
    """``error`` (the server refused ``prompt``) with the client's explanations added as
    hints: links to nodes that are not in the prompt (the server says only ``Exception when
    validating node — '9'``) and, when ``node_defs`` are at hand, unknown node classes and
    input names with what they were probably meant to be."""
    hints: List[str] = []
    defs = NodeDefIndex(node_defs) if node_defs is not None else None
    for node_id, entry in prompt.items():
        class_type = str(entry.get("class_type"))
        here = f"node {node_id} ({class_type})"
        inputs = entry.get("inputs") or {}
        for name, value in inputs.items():
            if is_link(value) and str(value[0]) not in prompt:
                hints.append(missing_link_source(here, name, str(value[0])))
        if defs is None:
            continue
        info = defs.get(class_type)
        if info is None:
            hints.append(unknown_class(str(node_id), class_type, defs))
            continue
        for name in inputs:
            if info.input(name) is None:
                hints.append(unknown_input(here, name, info.input_names()))
    if not hints:
        return error
    return PromptValidationError(
        error.error, error.node_errors, status=error.status, url=error.url, body=error.body,
        hints=hints,
    )
