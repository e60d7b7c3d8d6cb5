"""The REST half of :class:`~comfysync.ComfyApi`: :class:`RestMethods`, one method per route.

:class:`RestMethods` needs only ``self._transport`` (an
:class:`~comfysync._http.transport.HttpTransport`) and ``self.client_id``; it keeps no other state,
so the client class can mix it in next to the listener and the tracker. It defines the routes
of a prompt's life — submitting, the queue, interrupting, history — and takes the others from
one mixin per group: :mod:`comfysync._rest.server` (system, models, node definitions, logs),
:mod:`comfysync._rest.files` (uploads and ``/view``), :mod:`comfysync._rest.user` (users,
settings, user data, jobs API). Paths, bodies and query parameters follow ComfyUI v0.3.64
(the jobs API as newer servers offer it).

Submitting is split in two so the tracking layer can register a prompt *before* it is posted:
the caller turns whatever the user passed into the API prompt (the workflow layer's
``to_prompt``; this layer takes only the ready dict), then :meth:`RestMethods._post_prompt`
posts it under a prompt id chosen by the caller. :meth:`RestMethods.queue_prompt` posts a ready
prompt under a fresh id.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Dict, Iterable, Mapping, Optional, Union

from ..errors import ComfyHTTPError, PromptValidationError, _format_node_errors
from .base import id_list, segment
from .files import FileInput, FileRoutes
from .models import HistoryEntry, QueuedPrompt, QueueState
from .server import ServerRoutes
from .user import UserRoutes

__all__ = ["FileInput", "RestMethods", "new_prompt_id"]

log = logging.getLogger("comfysync.rest")


def new_prompt_id() -> str:
    """A prompt id in the only form newer servers accept: a canonical UUID4 string."""
    return str(uuid.uuid4())


class RestMethods(ServerRoutes, FileRoutes, UserRoutes):
    """Every HTTP route of the ComfyUI server as a blocking method.

    All methods raise :class:`~comfysync.ComfyConnectionError`,
    :class:`~comfysync.ComfyTimeoutError` or :class:`~comfysync.ComfyHTTPError` (status, URL,
    body) on failure, never a ``requests`` or JSON exception.
    """

    # -- prompts and the queue ---------------------------------------------------------------

    def queue_prompt(
        self,
        workflow: Any,
        *,
        prompt_id: Optional[str] = None,
        front: bool = False,
        number: Optional[float] = None,
        extra_data: Optional[Mapping[str, Any]] = None,
    ) -> QueuedPrompt:
        """``POST /prompt``: queue ``workflow``, an API prompt ready to post, and return the
        server's answer (:class:`~comfysync.ComfyApi` first turns any workflow-like input
        into one, checked before anything is sent).

        ``extra_data`` goes to the server as is (e.g. API keys for API nodes); ``client_id`` is
        always sent, so this client's WebSocket receives the prompt's events.
        ``prompt_id`` defaults to a fresh UUID4. ``number`` sets the priority explicitly
        (lower runs first); otherwise ``front`` (true) puts the prompt ahead of normal ones.
        A prompt the server rejects raises :class:`~comfysync.PromptValidationError`.
        This only queues: ``submit()``/``run_workflow()`` also track the prompt to the end.
        """
        return self._post_prompt(
            workflow, prompt_id if prompt_id is not None else new_prompt_id(),
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
        """Post an already normalised prompt under ``prompt_id``;
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
