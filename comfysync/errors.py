"""The comfysync exception tree.

Shallow on purpose (like *requests*): catch :class:`ComfyError` for "anything comfysync
raised", or one of the few concrete classes when you want to react to a specific failure.

::

    ComfyError
    ├── ComfyConnectionError      server unreachable (refused, DNS, TLS, socket never opened)
    ├── ComfyTimeoutError         an HTTP call or a connect() took too long
    │   └── ConnectTimeoutError   the WebSocket did not open in time (also a ComfyConnectionError)
    ├── ComfyHTTPError            any non-2xx answer (status, url, body)
    │   └── PromptValidationError POST /prompt answered 400 (error, node_errors)
    ├── PromptError               a submitted prompt did not succeed (prompt_id)
    │   ├── PromptExecutionError  a node raised on the server
    │   ├── PromptInterruptedError interrupted, or cancelled (``cancelled``)
    │   ├── PromptLostError       deleted from the queue, or the server forgot it
    │   └── PromptTimeoutError    wait(timeout) expired (the prompt may still run)
    ├── WorkflowFormatError       the workflow cannot be sent as it is
    ├── UnsupportedError          the server's surface (native or Comfy API v2) lacks the call
    ├── UnsafePathError           a server-given file name would escape the target directory
    ├── PoolFullError             ComfyPool: the queue of waiting jobs is full
    └── PoolClosedError           ComfyPool: closed before the job could finish

Messages never contain credentials: the URL in an error is always the redacted one.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Union

__all__ = [
    "ComfyError",
    "ComfyConnectionError",
    "ComfyTimeoutError",
    "ConnectTimeoutError",
    "ComfyHTTPError",
    "PromptValidationError",
    "PromptError",
    "PromptExecutionError",
    "PromptInterruptedError",
    "PromptLostError",
    "PromptTimeoutError",
    "WorkflowFormatError",
    "UnsupportedError",
    "UnsafePathError",
    "PoolFullError",
    "PoolClosedError",
]

_BODY_PREVIEW_LINES = 5
_BODY_PREVIEW_CHARS = 500


def _body_preview(body: Any) -> str:
    """First lines of a response body, short enough for an exception message."""
    if body is None or body == "" or body == b"":
        return ""
    if isinstance(body, bytes):
        text = body.decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
    else:
        text = repr(body)
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    preview = "\n".join(lines[:_BODY_PREVIEW_LINES])
    if len(preview) > _BODY_PREVIEW_CHARS:
        preview = preview[:_BODY_PREVIEW_CHARS] + "…"
    elif len(lines) > _BODY_PREVIEW_LINES:
        preview += "\n…"
    return preview


class ComfyError(Exception):
    """Base class of every error comfysync raises on purpose.

    ``prompt_id`` names the prompt the error is about when there is one: every
    :class:`PromptError`, and a failed ``submit()`` whose prompt may have reached the server
    (the connection broke after sending, the answer timed out, a proxy answered 502/503/504,
    and the server could not be asked in time) — look again later with
    ``api.attach(e.prompt_id)``, or resubmit with ``submit(wf, prompt_id=e.prompt_id)``,
    which never runs it twice."""

    prompt_id: Optional[str] = None


class ComfyConnectionError(ComfyError):
    """The server could not be reached (connection refused, DNS failure, TLS failure,
    WebSocket handshake refused). ``url`` is the (credential-free) address we tried.
    ``request_sent`` is False when the request surely never reached the server (refused,
    name not resolved, TLS handshake failed), None when it may have."""

    def __init__(
        self, message: str, *, url: Optional[str] = None, request_sent: Optional[bool] = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.request_sent = request_sent


class ComfyTimeoutError(ComfyError):
    """An HTTP request, or ``connect()``, did not complete within its timeout.
    ``request_sent``: as for :class:`ComfyConnectionError` (False when connecting timed
    out)."""

    def __init__(
        self, message: str, *, url: Optional[str] = None, request_sent: Optional[bool] = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.request_sent = request_sent


class ConnectTimeoutError(ComfyConnectionError, ComfyTimeoutError):
    """The WebSocket did not open and greet within ``connect(timeout)``: both a connection
    failure and a timeout, so either ``except`` clause catches it."""


class ComfyHTTPError(ComfyError):
    """The server answered with a non-2xx status.

    ``status`` is the HTTP status, ``url`` the request URL (without credentials), ``body`` the
    decoded JSON body when the server sent JSON, otherwise the text (ComfyUI answers unhandled
    exceptions with a plain-text 500, and a reverse proxy may send HTML). ``retry_after``: the
    seconds the server asked to wait (its ``Retry-After`` header, e.g. with a 429), or None.
    """

    def __init__(
        self,
        status: int,
        url: str,
        body: Any = None,
        *,
        method: str = "GET",
        message: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        self.status = status
        self.url = url
        self.body = body
        self.method = method
        self.retry_after = retry_after
        if message is None:
            message = f"{method} {url} failed with HTTP {status}"
            preview = _body_preview(body)
            if preview:
                message += f": {preview}"
        super().__init__(message)


def _format_node_errors(node_errors: Mapping[str, Any]) -> List[str]:
    lines: List[str] = []
    for node_id, info in node_errors.items():
        if not isinstance(info, Mapping):
            lines.append(f"node {node_id}: {info}")
            continue
        class_type = info.get("class_type", "?")
        errors = info.get("errors") or []
        if not errors:
            lines.append(f"node {node_id} ({class_type}): invalid")
        for err in errors:
            if isinstance(err, Mapping):
                msg = str(err.get("message", "")).strip() or str(err.get("type", "error"))
                details = str(err.get("details", "")).strip()
            else:
                msg, details = str(err), ""
            line = f"node {node_id} ({class_type}): {msg}"
            if details:
                line += f" — {details}"
            lines.append(line)
    return lines


class PromptValidationError(ComfyHTTPError):
    """POST /prompt was rejected (HTTP 400): the prompt failed the server's validation.

    ``error`` is the top-level ``{"type", "message", "details", "extra_info"}`` dict,
    ``node_errors`` maps node id → ``{"errors": [...], "dependent_outputs", "class_type"}``.
    The message lists every node error as ``node <id> (<class_type>): <message> — <details>``,
    then the client's ``hints`` (what a cryptic error means, likely typos), when it has any.
    """

    def __init__(
        self,
        error: Mapping[str, Any],
        node_errors: Mapping[str, Any],
        *,
        status: int = 400,
        url: str = "",
        body: Any = None,
        hints: Sequence[str] = (),
    ) -> None:
        self.error: Dict[str, Any] = dict(error)
        self.node_errors: Dict[str, Any] = dict(node_errors)
        self.hints: List[str] = list(hints)
        head = str(self.error.get("message") or self.error.get("type") or "Prompt rejected")
        lines = _format_node_errors(self.node_errors)
        details = str(self.error.get("details") or "").strip()
        if not lines and details:
            head += f" — {details}"
        message = head if not lines else head + ":\n" + "\n".join(f"  {ln}" for ln in lines)
        if self.hints:
            message += "\nWhat the client sees in the workflow:\n" + "\n".join(
                f"  {hint}" for hint in self.hints
            )
        super().__init__(status, url, body, method="POST", message=message)

    @property
    def error_type(self) -> str:
        """The server's top-level error type, e.g. ``prompt_outputs_failed_validation``."""
        return str(self.error.get("type", ""))


class PromptError(ComfyError):
    """A submitted prompt did not end in success. ``prompt_id`` names it."""

    def __init__(self, message: str, *, prompt_id: str) -> None:
        super().__init__(message)
        self.prompt_id = prompt_id


class PromptExecutionError(PromptError):
    """A node raised while the server executed the prompt (``execution_error``).

    ``traceback`` is the server-side traceback of the failing node as one string, ready to
    print (``""`` when the server sent none); ``traceback_lines`` keeps it as the server sent
    it, one string per frame. ``str(error)`` stays one line: the node, the exception type and
    its message.
    """

    def __init__(
        self,
        *,
        prompt_id: str,
        node_id: Optional[str] = None,
        node_type: Optional[str] = None,
        exception_type: Optional[str] = None,
        exception_message: Optional[str] = None,
        traceback: Union[str, Sequence[str], None] = None,
        executed: Optional[List[str]] = None,
        raw: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = (exception_message or "").rstrip("\n")
        if isinstance(traceback, str):  # a server (or Comfy API v2) that sends it joined
            lines = traceback.splitlines(keepends=True)
        else:
            lines = [str(line) for line in traceback or ()]
        #: The server-side traceback as the server sent it: one string per frame (each
        #: ending in a newline), ``traceback.format_tb`` style. Empty when none was sent.
        self.traceback_lines: List[str] = lines
        #: The server-side traceback of the failing node as one printable string.
        self.traceback: str = "".join(lines)
        self.executed = list(executed or [])
        self.raw = dict(raw) if raw is not None else None
        where = f"node {node_id} ({node_type})" if node_id is not None else "a node"
        what = exception_type or "error"
        text = self.exception_message
        message = f"prompt {prompt_id} failed in {where}: {what}" + (f": {text}" if text else "")
        super().__init__(message, prompt_id=prompt_id)

    @property
    def traceback_text(self) -> str:
        """The server-side traceback as one string (the same as :attr:`traceback`)."""
        return self.traceback


class PromptInterruptedError(PromptError):
    """The prompt was interrupted on the server (``execution_interrupted``), or removed from
    the queue by ``job.cancel()`` before it ran.

    ``cancelled`` is True when this client's ``job.cancel()`` asked for it (an interrupt from
    elsewhere — the UI, ``api.interrupt()`` — leaves it False); ``node_id`` / ``node_type``
    name the node that was running, None when the prompt never started.
    """

    def __init__(
        self,
        *,
        prompt_id: str,
        node_id: Optional[str] = None,
        node_type: Optional[str] = None,
        executed: Optional[List[str]] = None,
        cancelled: bool = False,
        message: Optional[str] = None,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.executed = list(executed or [])
        self.cancelled = cancelled
        if message is None:
            where = f" in node {node_id} ({node_type})" if node_id is not None else ""
            how = "was cancelled: interrupted" if cancelled else "was interrupted"
            message = f"prompt {prompt_id} {how}{where}"
        super().__init__(message, prompt_id=prompt_id)

    @classmethod
    def removed_from_queue(cls, prompt_id: str) -> PromptInterruptedError:
        """``job.cancel()`` took the prompt out of the queue: it never ran."""
        return cls(
            prompt_id=prompt_id,
            cancelled=True,
            message=f"prompt {prompt_id} was cancelled (removed from the queue before it ran)",
        )


class PromptLostError(PromptError):
    """The server no longer knows the prompt: it is in neither ``/queue`` nor ``/history``
    (deleted from the queue, history cleared, or the server restarted)."""

    def __init__(self, message: str, *, prompt_id: str) -> None:
        super().__init__(message, prompt_id=prompt_id)


class WaitedJob(Protocol):
    """What :attr:`PromptTimeoutError.job` offers: the waited-for
    :class:`~comfysync.PromptJob` (errors.py sits below every other module, so it names the
    job by what it can do)."""

    @property
    def prompt_id(self) -> str: ...

    def done(self) -> bool: ...

    def cancel(self) -> bool: ...

    def wait(self, timeout: Optional[float] = None) -> Any: ...


class PromptTimeoutError(PromptError, ComfyTimeoutError):
    """``wait(timeout)`` expired. The prompt keeps running on the server unless cancelled;
    a later ``wait()`` on the same job can still succeed.

    ``job`` is the :class:`~comfysync.PromptJob` that was waited for (set by ``job.wait``
    and ``run_workflow``; None where there is no job, e.g. a pool still waiting for a
    server), so that ``except PromptTimeoutError as e: e.job.cancel()`` stops the prompt.
    """

    def __init__(
        self,
        message: str,
        *,
        prompt_id: str,
        timeout: Optional[float] = None,
        job: Optional[WaitedJob] = None,
    ) -> None:
        PromptError.__init__(self, message, prompt_id=prompt_id)
        self.url = None
        self.timeout = timeout
        self.job = job


class WorkflowFormatError(ComfyError, ValueError):
    """The workflow is not something comfysync can send (UI format without node definitions,
    unknown node class, malformed JSON, unsupported construct). The message says what to do."""


class UnsupportedError(ComfyError):
    """The call exists on one server surface but not on the one this client talks to: e.g.
    ``get_node_defs()`` or ``get_queue()`` on a Comfy API v2 deployment (Comfy Cloud, a
    serverless deployment, comfy-api-proxy), which offers only jobs and assets. ``surface``
    is ``"v2"`` or ``"native"``, ``operation`` the refused call; the message says what to use
    instead."""

    def __init__(self, message: str, *, surface: str, operation: str) -> None:
        super().__init__(message)
        self.surface = surface
        self.operation = operation


class UnsafePathError(ComfyError, ValueError):
    """A file name chosen by the server cannot be saved inside the target directory (empty,
    ``.``/``..``, NUL byte, or a symlink leading out). Nothing was written. ``filename`` is the
    server's name, ``directory`` the target directory."""

    def __init__(self, message: str, *, filename: str, directory: str) -> None:
        super().__init__(message)
        self.filename = filename
        self.directory = directory


class PoolFullError(ComfyError):
    """:class:`~comfysync.ComfyPool` already holds ``max_queued`` jobs waiting for a server.
    Wait for some to finish (or use ``pool.map``, which waits for room) and submit again."""

    def __init__(self, message: str, *, max_queued: int) -> None:
        super().__init__(message)
        self.max_queued = max_queued


class PoolClosedError(ComfyError):
    """The :class:`~comfysync.ComfyPool` was closed: it takes no new work, and a job still
    waiting or running when it closed ends with this error (the prompt may still run on its
    server)."""
