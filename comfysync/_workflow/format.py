"""Workflow files and the two workflow formats: reading, telling apart, checking, copying.

The server-free half of :mod:`comfysync._workflow.prompt` (the one place that turns what a user
passes into the prompt that is posted), in one call, :func:`normalise`: read a JSON file or the
prompt a ComfyUI output PNG carries (:func:`read_workflow_file`), use the ``prompt`` of a
``/prompt`` request body, recognise an editor save file (:func:`is_ui_format`), refuse a
mapping that is neither, naming the first bad node (:func:`check_api_shape`), and make the one
copy of an API prompt (:func:`api_copy`). What a link looks like (:func:`is_link`) is decided
here too.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ..errors import WorkflowFormatError
from .input_files import InputFile, input_file

__all__ = [
    "api_copy",
    "check_api_shape",
    "is_link",
    "is_ui_format",
    "normalise",
    "read_json_file",
    "read_workflow_file",
]

_THE_WORKFLOW = "the workflow"
#: The key :func:`api_copy` holds a local file's place under while copying through JSON.
_FILE_MARKER = f"__comfysync_input_file_{uuid.uuid4().hex}"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_link(value: Any) -> bool:
    """An API-format link is a 2-element list ``[source node id, output index]``."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


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


def api_copy(data: Mapping[str, Any], source: str = _THE_WORKFLOW) -> Dict[str, Any]:
    """The one copy of an API prompt: through JSON (so nothing unserialisable is posted, and
    integer node ids become strings), with integer link ids made strings too. A path or bytes
    given as an input's value is kept as an :class:`~comfysync._workflow.input_files.InputFile`
    (uploaded by the client before the prompt is posted); anywhere else it is refused."""
    files: List[InputFile] = []

    def keep_file(value: Any) -> Any:
        file = input_file(value)
        if file is None:
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        files.append(file)
        return {_FILE_MARKER: len(files) - 1}

    try:
        copied: Dict[str, Any] = json.loads(json.dumps(data, allow_nan=False, default=keep_file))
    except (TypeError, ValueError) as exc:
        raise WorkflowFormatError(f"{source} is not JSON-serialisable: {exc}") from None
    if len(copied) != len(data):
        raise WorkflowFormatError(
            f"{source} has the same node id twice (once as a number, once as a string): "
            f"{sorted(str(k) for k in data)}"
        )
    placed = 0
    for node_id, entry in copied.items():
        inputs = entry.get("inputs") if isinstance(entry, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if is_link(value) and not isinstance(value[0], str):
                value[0] = str(value[0])  # [1, 0]: the server looks node "1" up
            elif isinstance(value, dict) and len(value) == 1 and _FILE_MARKER in value:
                file = files[value[_FILE_MARKER]]
                if isinstance(file.source, Path) and not file.source.is_file():
                    raise WorkflowFormatError(
                        f"node {node_id} ({entry.get('class_type')}) input {name!r} in "
                        f"{source}: no such file to upload: {file.source}"
                    )
                inputs[name] = file
                placed += 1
    if placed != len(files):
        raise WorkflowFormatError(
            f"{source}: a local file (a Path or bytes) can be given only as a node input's "
            "value itself (e.g. LoadImage's image), where it is uploaded before the prompt "
            "is posted; not inside a list or an object"
        )
    return copied


def normalise(
    data: Any, path: str = ""
) -> Tuple[Optional[Dict[str, Any]], Optional[Mapping[str, Any]]]:
    """``(API prompt, None)`` — checked, a private copy — or ``(None, UI graph)`` for ``data``,
    or for the file at ``path`` when ``data`` is None. The ``prompt`` of a ``/prompt`` request
    body is used; anything that is no workflow is a :class:`WorkflowFormatError`."""
    if path and data is None:
        data = read_workflow_file(path)
    source = path or _THE_WORKFLOW
    if not isinstance(data, Mapping):
        raise WorkflowFormatError(
            f"{source} must be a JSON object of nodes, not {type(data).__name__}"
        )
    body_prompt = data.get("prompt")
    if isinstance(body_prompt, Mapping) and not isinstance(body_prompt.get("class_type"), str):
        data = body_prompt  # a /prompt request body, copied from the browser
    if is_ui_format(data):
        return None, data
    check_api_shape(data, source=path)
    return api_copy(data, source), None
