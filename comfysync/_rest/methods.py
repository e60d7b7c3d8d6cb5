"""The REST half of :class:`~comfysync.ComfyApi`: :class:`RestMethods`, one method per route.

:class:`RestMethods` needs only ``self._transport`` (an
:class:`~comfysync._http.transport.HttpTransport`) and ``self.client_id``; it keeps no other state,
so the client class can mix it in next to the listener and the tracker. It defines the routes
of a prompt's life — submitting, the queue, interrupting, history — and takes the others from
one mixin per group: :mod:`comfysync._rest.server` (system, models, node definitions, logs),
:mod:`comfysync._rest.files` (uploads and ``/view``), :mod:`comfysync._rest.user` (users,
settings, user data, jobs API). Paths, bodies and query parameters follow ComfyUI v0.3.64
(protocol reference §3–§10, §17 for the jobs API).

Submitting is split in two so the tracking layer can register a prompt *before* it is posted:
:func:`to_api_prompt` turns whatever the user passed into an API-format dict (refusing UI
format before any request), then :meth:`RestMethods._post_prompt` posts it under a prompt id
chosen by the caller. :meth:`RestMethods.queue_prompt` is both steps in one.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any, Dict, Iterable, Mapping, Optional, Union

from .._workflow.format import check_api_shape, is_ui_format, read_json_file
from ..errors import (
    ComfyHTTPError,
    PromptValidationError,
    WorkflowFormatError,
    _format_node_errors,
)
from .base import id_list, segment
from .files import FileInput, FileRoutes
from .models import HistoryEntry, QueuedPrompt, QueueState
from .server import ServerRoutes
from .user import UserRoutes

__all__ = ["FileInput", "RestMethods", "WorkflowInput", "new_prompt_id", "to_api_prompt"]

log = logging.getLogger("comfysync.rest")

WorkflowInput = Any
"""A workflow: an API-format mapping, a path to an API-format JSON file, or any object with a
``to_dict()`` method returning one (e.g. :class:`~comfysync.Workflow`)."""

_UI_FORMAT_HELP = (
    "it is a UI-format workflow (top-level 'nodes' and 'links', as saved by ComfyUI's "
    "'Save'). The server only runs API format: in ComfyUI use 'Export (API)' (enable dev "
    "mode options in older versions), or convert it with "
    "Workflow.from_ui(ui_json, api.get_node_defs())"
)


def new_prompt_id() -> str:
    """A prompt id in the only form newer servers accept: a canonical UUID4 string."""
    return str(uuid.uuid4())


def to_api_prompt(workflow: WorkflowInput) -> Dict[str, Any]:
    """The API-format prompt dict for ``workflow``, checked enough to fail early.

    Accepts a mapping, a path (``str``/``PathLike``) to a JSON file, or an object with
    ``to_dict()``. Raises :class:`WorkflowFormatError` — before anything is sent — for a
    UI-format workflow, a file that is missing or not JSON, nodes without ``class_type``, or
    values that cannot be serialised as JSON. Returns a deep copy: later changes to the
    caller's object do not affect what was submitted.
    """
    path = ""
    if isinstance(workflow, (str, os.PathLike)):
        path = os.fspath(workflow)
        data: Any = read_json_file(workflow)
    elif isinstance(workflow, Mapping):
        data = workflow
    elif callable(getattr(workflow, "to_dict", None)):
        data = workflow.to_dict()
    else:
        raise WorkflowFormatError(
            "a workflow must be an API-format dict, a path to an API-format JSON file, or an "
            f"object with to_dict(); got {type(workflow).__name__}"
        )
    source = f" in {path}" if path else ""
    if not isinstance(data, Mapping):
        raise WorkflowFormatError(
            f"the workflow{source} must be a JSON object of nodes, not {type(data).__name__}"
        )
    if is_ui_format(data):
        raise WorkflowFormatError(f"cannot submit the workflow{source} as it is: " +
                                  _UI_FORMAT_HELP)
    if not data:
        raise WorkflowFormatError(f"the workflow{source} has no nodes")
    check_api_shape(data, source=path)
    try:
        encoded = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WorkflowFormatError(f"the workflow{source} is not JSON-serialisable: {exc}") from None
    result: Dict[str, Any] = json.loads(encoded)
    return result


class RestMethods(ServerRoutes, FileRoutes, UserRoutes):
    """Every HTTP route of the ComfyUI server as a blocking method.

    All methods raise :class:`~comfysync.ComfyConnectionError`,
    :class:`~comfysync.ComfyTimeoutError` or :class:`~comfysync.ComfyHTTPError` (status, URL,
    body) on failure, never a ``requests`` or JSON exception.
    """

    # -- prompts and the queue ---------------------------------------------------------------

    def queue_prompt(
        self,
        workflow: WorkflowInput,
        *,
        prompt_id: Optional[str] = None,
        front: bool = False,
        number: Optional[float] = None,
        extra_data: Optional[Mapping[str, Any]] = None,
    ) -> QueuedPrompt:
        """``POST /prompt``: queue ``workflow`` (see :data:`WorkflowInput`; checked by
        :func:`to_api_prompt` before anything is sent) and return the server's answer.

        ``extra_data`` goes to the server as is (e.g. API keys for API nodes); ``client_id`` is
        always sent, so this client's WebSocket receives the prompt's events.
        ``prompt_id`` defaults to a fresh UUID4. ``number`` sets the priority explicitly
        (lower runs first); otherwise ``front`` (true) puts the prompt ahead of normal ones.
        A prompt the server rejects raises :class:`~comfysync.PromptValidationError`.
        This only queues: ``submit()``/``run_workflow()`` also track the prompt to the end.
        """
        prompt = to_api_prompt(workflow)
        return self._post_prompt(
            prompt, prompt_id if prompt_id is not None else new_prompt_id(),
            front=front, number=number, extra_data=extra_data,
        )

    def _post_prompt(
        self,
        prompt: Mapping[str, Any],
        prompt_id: str,
        *,
        front: bool = False,
        number: Optional[float] = None,
        extra_data: Optional[Mapping[str, Any]] = None,
        partial_execution_targets: Optional[Iterable[str]] = None,
    ) -> QueuedPrompt:
        """Post an already normalised prompt (see :func:`to_api_prompt`) under ``prompt_id``;
        options as for :meth:`queue_prompt`, plus ``partial_execution_targets`` (run only
        these output nodes). For the tracking layer, which registers the id first."""
        body: Dict[str, Any] = {
            "prompt": prompt,
            "client_id": self.client_id,
            "prompt_id": str(prompt_id),
        }
        if number is not None:
            body["number"] = number
        elif front:
            body["front"] = True
        if extra_data:
            body["extra_data"] = dict(extra_data)
        if partial_execution_targets is not None:
            body["partial_execution_targets"] = [str(t) for t in partial_execution_targets]
        try:
            data = self._json("POST", "/prompt", json=body)
        except ComfyHTTPError as exc:
            raise self._validation_error(exc) from None
        queued = self._parse(QueuedPrompt.from_wire, data, "POST", "/prompt")
        if queued.node_errors:
            log.warning(
                "prompt %s was queued, but some outputs failed validation and will not run:\n%s",
                queued.prompt_id,
                "\n".join(f"  {line}" for line in _format_node_errors(queued.node_errors)),
            )
        return queued

    @staticmethod
    def _validation_error(exc: ComfyHTTPError) -> ComfyHTTPError:
        """A 400 with ComfyUI's validation body as :class:`PromptValidationError`; any other
        error unchanged."""
        body = exc.body
        if exc.status == 400 and isinstance(body, Mapping) and (
            isinstance(body.get("error"), Mapping) or isinstance(body.get("node_errors"), Mapping)
        ):
            error = body.get("error")
            node_errors = body.get("node_errors")
            return PromptValidationError(
                error if isinstance(error, Mapping) else {"message": str(error or "")},
                node_errors if isinstance(node_errors, Mapping) else {},
                status=exc.status,
                url=exc.url,
                body=body,
            )
        return exc

    def get_queue(self) -> QueueState:
        """``GET /queue``: the running prompt and the pending ones in execution order."""
        return self._call("GET", "/queue", QueueState.from_wire)

    def get_queue_remaining(self) -> int:
        """``GET /prompt``: how many prompts are pending or running."""

        def parse(d: Any) -> int:
            return int(d["exec_info"]["queue_remaining"])

        return self._call("GET", "/prompt", parse)

    def delete_from_queue(self, prompt_ids: Union[str, Iterable[str]]) -> None:
        """``POST /queue {"delete": [...]}``: drop the pending prompts among ``prompt_ids``
        (one id or several; running/unknown ids are ignored by the server; use
        :meth:`interrupt` for the running one)."""
        self._transport.request("POST", "/queue", json={"delete": id_list(prompt_ids)})

    def clear_queue(self) -> None:
        """``POST /queue {"clear": true}``: drop every pending prompt (not the running one)."""
        self._transport.request("POST", "/queue", json={"clear": True})

    def interrupt(self, prompt_id: Optional[str] = None) -> None:
        """``POST /interrupt``: stop the running prompt. With ``prompt_id``, only if that prompt
        is the one running (otherwise nothing happens); without, whatever runs."""
        body = {"prompt_id": str(prompt_id)} if prompt_id is not None else {}
        self._transport.request("POST", "/interrupt", json=body)

    # -- history -----------------------------------------------------------------------------

    def get_history(self, prompt_id: str) -> Optional[HistoryEntry]:
        """``GET /history/{id}``: the finished prompt ``prompt_id``, or ``None`` when the
        server has no history of it (unknown, still queued or running, or deleted)."""

        def parse(d: Any) -> Optional[HistoryEntry]:
            if not d:
                return None
            entry = d.get(str(prompt_id))
            return HistoryEntry.from_wire(str(prompt_id), entry) if entry is not None else None

        return self._call("GET", f"/history/{segment(prompt_id)}", parse)

    def get_histories(
        self, max_items: Optional[int] = None, offset: Optional[int] = None
    ) -> Dict[str, HistoryEntry]:
        """``GET /history``: prompt id → entry, oldest first. ``max_items`` alone gives the
        newest N; ``offset`` skips the oldest K."""

        def parse(d: Any) -> Dict[str, HistoryEntry]:
            return {str(k): HistoryEntry.from_wire(str(k), v) for k, v in (d or {}).items()}

        return self._call("GET", "/history", parse,
                          params={"max_items": max_items, "offset": offset})

    def delete_history(self, prompt_ids: Union[str, Iterable[str]]) -> None:
        """``POST /history {"delete": [...]}``: forget the finished prompts among
        ``prompt_ids`` (one id or several; unknown ids are ignored)."""
        self._transport.request("POST", "/history", json={"delete": id_list(prompt_ids)})

    def clear_history(self) -> None:
        """``POST /history {"clear": true}``: forget every finished prompt."""
        self._transport.request("POST", "/history", json={"clear": True})
