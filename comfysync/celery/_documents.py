"""What a task hands back through the result backend: JSON documents, never objects.

Celery stores results and exceptions with its serializer (JSON by default), and the process
that reads them may be a web server without comfysync's clients. So a successful run becomes
a plain dict (:meth:`WorkflowRun.to_json`), and a failure that retrying would not change
becomes :class:`ComfyTaskError`, whose constructor arguments (``message``, ``fields``) are
plain JSON — Celery rebuilds it as the same class on the reading side, with its fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from attrs import define, field

from .._results import OutputFile, PromptResult
from ..errors import (
    ComfyConnectionError,
    ComfyError,
    ComfyHTTPError,
    ComfyTimeoutError,
    PoolClosedError,
    PoolFullError,
    PromptExecutionError,
    PromptInterruptedError,
    PromptLostError,
    PromptTimeoutError,
    PromptValidationError,
    UnsafePathError,
    WorkflowFormatError,
)

__all__ = ["ComfyTaskError", "WorkflowRun", "error_fields", "is_retriable"]


class ComfyTaskError(ComfyError):
    """A comfysync task failed for good: the workflow was refused or failed on the server,
    was cancelled or ran out of time, or its server stayed unreachable through every retry.

    ``fields`` is a JSON dict: ``kind`` (``"execution_error"``, ``"validation_error"``,
    ``"interrupted"``, ``"timeout"``, ``"workflow"``, ``"invalid_argument"``,
    ``"unreachable"``, ``"lost"``, ``"pool"``, ``"http_error"``, ``"unsafe_path"``,
    ``"saving"``),
    ``prompt_id`` and ``server`` when known, and the fields of the underlying error
    (``node_id``, ``node_type``, ``exception_type``, ``exception_message``, ``traceback`` for
    an execution error; ``error`` and ``node_errors`` for a validation error; ...).
    ``AsyncResult.get()`` raises it with the same message and fields in the process that
    reads the result.
    """

    def __init__(self, message: str, fields: Optional[Mapping[str, Any]] = None) -> None:
        self.fields: Dict[str, Any] = dict(fields or {})
        super().__init__(message, self.fields)
        prompt_id = self.fields.get("prompt_id")
        self.prompt_id = prompt_id if isinstance(prompt_id, str) else None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def kind(self) -> str:
        return str(self.fields.get("kind", ""))

    @property
    def server(self) -> Optional[str]:
        value = self.fields.get("server")
        return value if isinstance(value, str) else None


def is_retriable(exc: BaseException) -> bool:
    """True for failures of the server or the way to it, which another attempt (maybe on
    another server, or in another worker process) can overcome: unreachable, timed out on a
    request, restarted (the prompt lost), a 5xx answer, or this process's pool full or closed
    (shutting down). Everything about the workflow itself is final."""
    if isinstance(exc, PromptTimeoutError):
        return False  # the caller's own deadline, not the server's fault
    if isinstance(exc, (ComfyConnectionError, ComfyTimeoutError, PromptLostError,
                        PoolFullError, PoolClosedError)):
        return True
    if isinstance(exc, PromptValidationError):
        return False
    return isinstance(exc, ComfyHTTPError) and exc.status >= 500


def _kind(exc: BaseException) -> str:
    if isinstance(exc, PromptExecutionError):
        return "execution_error"
    if isinstance(exc, PromptValidationError):
        return "validation_error"
    if isinstance(exc, PromptInterruptedError):
        return "interrupted"
    if isinstance(exc, PromptTimeoutError):
        return "timeout"
    if isinstance(exc, PromptLostError):
        return "lost"
    if isinstance(exc, UnsafePathError):
        return "unsafe_path"
    if isinstance(exc, (ComfyConnectionError, ComfyTimeoutError)):
        return "unreachable"
    if isinstance(exc, (PoolFullError, PoolClosedError)):
        return "pool"
    if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, ComfyError):
        return "invalid_argument"
    if isinstance(exc, ComfyHTTPError):
        return "http_error"
    return "workflow"


def error_fields(
    exc: BaseException, *, prompt_id: Optional[str], server: Optional[str]
) -> Dict[str, Any]:
    """The JSON fields of ``exc`` for :class:`ComfyTaskError` (one place for every kind)."""
    fields: Dict[str, Any] = {
        "kind": _kind(exc),
        "prompt_id": getattr(exc, "prompt_id", None) or prompt_id,
        "server": server,
        "message": str(exc),
        "error_type": type(exc).__name__,
    }
    if isinstance(exc, PromptExecutionError):
        fields.update(
            node_id=exc.node_id,
            node_type=exc.node_type,
            exception_type=exc.exception_type,
            exception_message=exc.exception_message,
            traceback=exc.traceback_text,
            executed=list(exc.executed),
        )
    elif isinstance(exc, PromptValidationError):
        fields.update(status=exc.status, error=exc.error, node_errors=exc.node_errors)
    elif isinstance(exc, PromptInterruptedError):
        fields.update(node_id=exc.node_id, node_type=exc.node_type, cancelled=exc.cancelled)
    elif isinstance(exc, PromptTimeoutError):
        fields.update(timeout=exc.timeout)
    elif isinstance(exc, ComfyHTTPError):
        fields.update(status=exc.status, url=exc.url)
    elif isinstance(exc, UnsafePathError):
        fields.update(filename=exc.filename, directory=exc.directory)
    elif isinstance(exc, WorkflowFormatError):
        pass
    return fields


def _file_document(file: OutputFile, saved_to: Optional[Path]) -> Dict[str, Any]:
    doc: Dict[str, Any] = {
        "node_id": file.node_id,
        "filename": file.filename,
        "subfolder": file.subfolder,
        "type": file.type,
        "url": file.url,
    }
    if saved_to is not None:
        doc["saved_to"] = str(saved_to)
    return doc


@define(frozen=True)
class WorkflowRun:
    """A finished run as a task sees it: the :class:`~comfysync.PromptResult`, the server
    that ran it, and where its files were saved (``saved_to``, in the order of
    ``result.files``; empty when nothing was saved). :meth:`to_json` is what the
    ``comfysync.run_workflow`` task returns."""

    result: PromptResult
    server: Optional[str]
    saved_to: Tuple[Path, ...] = field(default=())

    @property
    def prompt_id(self) -> str:
        return self.result.prompt_id

    @property
    def files(self) -> Tuple[OutputFile, ...]:
        return self.result.files

    def to_json(self) -> Dict[str, Any]:
        """``{"prompt_id", "server", "status", "duration", "text", "files": [{"node_id",
        "filename", "subfolder", "type", "url", "saved_to"?}]}`` — plain JSON."""
        saved: List[Optional[Path]] = list(self.saved_to)
        saved += [None] * (len(self.result.files) - len(saved))
        return {
            "prompt_id": self.result.prompt_id,
            "server": self.server,
            "status": self.result.status,
            "duration": self.result.duration,
            "text": {node: list(lines) for node, lines in self.result.text.items()},
            "files": [_file_document(f, p) for f, p in zip(self.result.files, saved)],
        }
