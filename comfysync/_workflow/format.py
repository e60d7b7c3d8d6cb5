"""Reading workflow files and telling the two workflow formats apart.

Shared by the REST layer (which refuses the UI format before anything is sent) and the
workflow layer (which converts it), so both read files and recognise formats the same way.
:func:`check_api_shape` refuses a mapping that is neither, naming the first bad node.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Union

from ..errors import WorkflowFormatError

__all__ = ["check_api_shape", "is_ui_format", "read_json_file"]


def is_ui_format(data: Any) -> bool:
    """True for an editor save file (a ``nodes`` list, usually with ``links``); False for an
    API-format prompt, whose values are node dicts keyed by node id."""
    return isinstance(data, Mapping) and isinstance(data.get("nodes"), list)


def read_json_file(path: Union[str, os.PathLike[str]]) -> Any:
    """Parse a JSON file (UTF-8, a BOM tolerated). Every failure — missing file, unreadable,
    not UTF-8, not JSON — is a :class:`WorkflowFormatError` naming the file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        if name.lstrip().startswith(("{", "[")):
            raise WorkflowFormatError(
                "got JSON text where a workflow file path was expected: pass the parsed "
                "object instead (json.loads(text))"
            ) from None
        raise WorkflowFormatError(f"workflow file not found: {name}") from None
    except OSError as exc:
        raise WorkflowFormatError(f"cannot read workflow file {name}: {exc.strerror}") from None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise WorkflowFormatError(f"{name} is not UTF-8 text: {exc}") from None
    except ValueError as exc:
        raise WorkflowFormatError(f"{name} is not valid JSON: {exc}") from None


def check_api_shape(data: Mapping[str, Any], source: str = "") -> None:
    """Refuse what is plainly not an API-format prompt (the server would 400 or 500): every
    value must be a node object with a string ``class_type`` and, if present, an ``inputs``
    object. The one per-node check of both ``Workflow`` and ``to_api_prompt``; ``source``
    (e.g. the file's path) is named in the message when given."""
    where = f" in {source}" if source else ""
    for node_id, entry in data.items():
        if not isinstance(entry, Mapping):
            raise WorkflowFormatError(
                f"node {node_id}{where}: expected an object with class_type and inputs, "
                f"got {type(entry).__name__} — is this an API-format workflow?"
            )
        if "class_type" not in entry:
            raise WorkflowFormatError(
                f"node {node_id}{where} is missing the class_type property — is this an "
                "API-format workflow? (export it with 'Export (API)' in the editor)"
            )
        class_type = entry["class_type"]
        if not isinstance(class_type, str):
            raise WorkflowFormatError(
                f"node {node_id}{where}: class_type must be a string (the node class name), "
                f"got {type(class_type).__name__}"
            )
        inputs = entry.get("inputs", {})
        if not isinstance(inputs, Mapping):
            raise WorkflowFormatError(
                f"node {node_id} ({class_type}){where}: inputs must be an object, "
                f"got {type(inputs).__name__}"
            )
