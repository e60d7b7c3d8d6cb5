"""What the ``comfysync`` command prints: the ``--json`` documents and the file naming.

Kept apart from the commands so the JSON shapes (a public, scriptable interface) are built in
one place and tested without a server.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any, Dict, Mapping, Optional, Sequence

import attrs

from .. import errors

__all__ = [
    "SavedFile",
    "result_document",
    "failure_document",
    "to_jsonable",
    "print_json",
]


@attrs.define(frozen=True)
class SavedFile:
    """One output file of a prompt and where the command saved it."""

    node_id: Optional[str]
    filename: str
    subfolder: str
    type: str
    path: Path

    def to_json(self) -> Dict[str, Any]:
        return {
            "node_id": self.node_id,
            "filename": self.filename,
            "subfolder": self.subfolder,
            "type": self.type,
            "path": str(self.path),
        }


def result_document(
    *,
    prompt_id: str,
    status: str,
    server: str,
    duration: Optional[float],
    saved: Sequence[SavedFile],
    text: Mapping[str, Sequence[str]],
    cached_nodes: Sequence[str],
    previews: int,
) -> Dict[str, Any]:
    """The ``run --json`` document of a prompt that succeeded.

    ``{"prompt_id", "status": "success", "server", "duration", "files": [{"node_id",
    "filename", "subfolder", "type", "path"}], "text": {node: [str]}, "cached_nodes",
    "previews"}``
    """
    return {
        "prompt_id": prompt_id,
        "status": status,
        "server": server,
        "duration": None if duration is None else round(float(duration), 3),
        "files": [f.to_json() for f in saved],
        "text": {str(k): [str(t) for t in v] for k, v in text.items()},
        "cached_nodes": [str(n) for n in cached_nodes],
        "previews": previews,
    }


_STATUS_OF = (
    (errors.PromptExecutionError, "error"),
    (errors.PromptInterruptedError, "interrupted"),
    (errors.PromptLostError, "lost"),
    (errors.PromptTimeoutError, "timeout"),
    (errors.PromptValidationError, "rejected"),
)


def failure_document(
    exc: BaseException, *, prompt_id: Optional[str], server: str, previews: int = 0
) -> Dict[str, Any]:
    """The ``run --json`` document of a prompt that did not succeed: ``status`` is one of
    ``error``, ``interrupted``, ``lost``, ``timeout``, ``rejected`` (validation), ``cancelled``
    (Ctrl-C) or ``failed``, and ``error`` describes why."""
    status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
    for cls, name in _STATUS_OF:
        if isinstance(exc, cls):
            status = name
            break
    error: Dict[str, Any] = {
        "type": type(exc).__name__,
        "message": (str(exc) or "interrupted (Ctrl-C)") if isinstance(exc, KeyboardInterrupt)
        else str(exc),
    }
    if isinstance(exc, errors.PromptExecutionError):
        error.update(node_id=exc.node_id, node_type=exc.node_type,
                     exception_type=exc.exception_type,
                     exception_message=exc.exception_message, traceback=exc.traceback)
    elif isinstance(exc, errors.PromptInterruptedError):
        error.update(node_id=exc.node_id, node_type=exc.node_type)
    elif isinstance(exc, errors.PromptValidationError):
        error.update(error=to_jsonable(exc.error), node_errors=to_jsonable(exc.node_errors))
    return {
        "prompt_id": prompt_id,
        "status": status,
        "server": server,
        "error": error,
        "previews": previews,
    }


def to_jsonable(obj: Any) -> Any:
    """A JSON-serialisable copy of ``obj``: attrs models become dicts (their ``raw`` wire
    dict is left out), paths and datetimes become strings, bytes become their length."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if attrs.has(type(obj)):
        return {
            f.name: to_jsonable(getattr(obj, f.name))
            for f in attrs.fields(type(obj))
            if f.name != "raw" and not f.name.startswith("_")
        }
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return {"bytes": len(obj)}
    if isinstance(obj, (PurePath, datetime)):
        return str(obj)
    return repr(obj)


def print_json(document: Any) -> None:
    """One JSON document on stdout (indented: humans read it too; ``jq`` does not care)."""
    sys.stdout.write(json.dumps(to_jsonable(document), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
