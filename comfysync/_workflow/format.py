"""Reading workflow files and telling the two workflow formats apart.

The low-level checks of :mod:`comfysync._workflow.prompt`, the one place that turns what a
user passes into the prompt that is posted: :func:`read_workflow_file` reads a JSON file or the
prompt a ComfyUI output PNG carries, :func:`is_ui_format` recognises an editor save file and
:func:`check_api_shape` refuses a mapping that is neither, naming the first bad node;
:func:`check_format` makes both checks in one call.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from typing import Any, Dict, Mapping, Union

from ..errors import WorkflowFormatError

__all__ = [
    "check_api_shape",
    "check_format",
    "is_ui_format",
    "read_json_file",
    "read_workflow_file",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def check_format(data: Mapping[str, Any], source: str = "") -> bool:
    """The one format decision: True for a UI-format graph; otherwise ``data`` must pass
    :func:`check_api_shape` (an API-format prompt), else :class:`WorkflowFormatError`."""
    if is_ui_format(data):
        return True
    check_api_shape(data, source)
    return False


def read_workflow_file(path: Union[str, os.PathLike[str]]) -> Any:
    """The workflow in a file: a JSON file (see :func:`read_json_file`), or a PNG written by
    ComfyUI, whose ``prompt`` text chunk holds the API-format prompt it was made with (its
    ``workflow`` chunk, the editor graph, is used when there is no ``prompt``)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            is_png = fh.read(len(_PNG_SIGNATURE)) == _PNG_SIGNATURE
    except OSError:
        is_png = False  # read_json_file words the failure
    if not is_png:
        return read_json_file(path)
    chunks = _png_text_chunks(name)
    text = chunks.get("prompt", chunks.get("workflow"))
    if text is None:
        raise WorkflowFormatError(
            f"{name} is a PNG without an embedded workflow (no 'prompt' text chunk): only "
            "images saved by ComfyUI's SaveImage carry one, and not when the server runs "
            "with --disable-metadata"
        )
    try:
        return json.loads(text)
    except ValueError as exc:
        raise WorkflowFormatError(f"{name}: the embedded prompt is not valid JSON: {exc}") from None


def _png_text_chunks(name: str) -> Dict[str, str]:
    """The ``tEXt``/``zTXt``/``iTXt`` chunks of a PNG file by keyword (standard library only,
    so Pillow is not needed to read a workflow)."""
    found: Dict[str, str] = {}
    try:
        with open(name, "rb") as fh:
            data = fh.read()
        pos = len(_PNG_SIGNATURE)
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            pos += 12 + length
            if kind == b"IEND":
                break
            if kind not in (b"tEXt", b"zTXt", b"iTXt"):
                continue
            keyword, _, rest = body.partition(b"\0")
            if kind == b"tEXt":
                text = rest.decode("latin-1")
            elif kind == b"zTXt":
                text = zlib.decompress(rest[1:]).decode("latin-1")
            else:  # iTXt: flag, method, language\0, translated keyword\0, text
                compressed = rest[:1] == b"\1"
                _, _, rest = rest[2:].partition(b"\0")
                _, _, rest = rest.partition(b"\0")
                text = (zlib.decompress(rest) if compressed else rest).decode("utf-8")
            found.setdefault(keyword.decode("latin-1"), text)
    except OSError as exc:
        raise WorkflowFormatError(f"cannot read workflow file {name}: {exc.strerror}") from None
    except (zlib.error, UnicodeDecodeError, struct.error) as exc:
        raise WorkflowFormatError(f"{name}: a damaged PNG text chunk ({exc})") from None
    return found


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
