"""Asking the server over HTTP what became of prompts: the one procedure behind history
fetches, reconciliation after a reconnect, the watchdog, and the HTTP tracker.

The order matters (CORE.md, rule 3): ``GET /queue`` **first**, then ``GET /history/{id}`` for
each prompt that is not queued. The server moves a prompt from "running" to history
atomically, so in that order a prompt that finishes between the two requests is found in
history; the other order could see it in neither and call it lost. Only per-prompt history
is ever requested, never the whole ``/history``.

Everything here runs on the tracker thread; nothing touches tracker state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from attrs import define

from .errors import (
    ComfyError,
    ComfyHTTPError,
    PromptError,
    PromptExecutionError,
    PromptInterruptedError,
)

if TYPE_CHECKING:
    from ._rest import RestMethods

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore[assignment]

__all__ = [
    "ServerOps",
    "Finding",
    "check_prompts",
    "history_outcome",
    "history_messages",
    "RestOps",
]

log = logging.getLogger("comfysync.polling")


class ServerOps(Protocol):
    """The HTTP calls the tracker makes, as a narrow seam (the client implements it with its
    REST methods; unit tests with a plain object)."""

    def post_prompt(
        self, workflow: Mapping[str, Any], prompt_id: str, options: Mapping[str, Any]
    ) -> Any:
        """POST /prompt with this id; raises (e.g. ``PromptValidationError``) on refusal."""

    def queue_ids(self) -> Tuple[FrozenSet[str], FrozenSet[str]]:
        """``(running ids, pending ids)`` from GET /queue."""

    def history_entry(self, prompt_id: str) -> Optional[Mapping[str, Any]]:
        """The raw GET /history/{id} entry, None when the server has none."""

    def cancel_prompt(self, prompt_id: str) -> None:
        """Dequeue the prompt if pending, interrupt it if running (no-op otherwise)."""


@define(frozen=True)
class Finding:
    """Where the server has a prompt: ``"running"``, ``"pending"``, ``"history"`` (with the
    entry) or ``"missing"`` (in neither)."""

    where: str
    entry: Optional[Mapping[str, Any]] = None


def check_prompts(ops: ServerOps, prompt_ids: Iterable[str]) -> Dict[str, Finding]:
    """One ``GET /queue``, then ``GET /history/{id}`` for every id not queued.

    HTTP failures propagate (the caller retries later); a prompt is only reported
    ``"missing"`` when both answers were obtained.
    """
    ids = list(prompt_ids)
    if not ids:
        return {}
    running, pending = ops.queue_ids()
    found: Dict[str, Finding] = {}
    for prompt_id in ids:
        if prompt_id in running:
            found[prompt_id] = Finding("running")
        elif prompt_id in pending:
            found[prompt_id] = Finding("pending")
        else:
            entry = ops.history_entry(prompt_id)
            found[prompt_id] = Finding("missing") if entry is None else Finding("history", entry)
    return found


def history_messages(entry: Optional[Mapping[str, Any]]) -> Dict[str, Mapping[str, Any]]:
    """``status.messages`` of a history entry as event name → data (last one wins)."""
    found: Dict[str, Mapping[str, Any]] = {}
    status = entry.get("status") if entry else None
    messages = status.get("messages") if isinstance(status, Mapping) else None
    for message in messages if isinstance(messages, list) else []:
        if (
            isinstance(message, (list, tuple))
            and len(message) == 2
            and isinstance(message[0], str)
            and isinstance(message[1], Mapping)
        ):
            found[message[0]] = message[1]
    return found


def _str_list(value: Any) -> Optional[List[str]]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return None


def _opt_str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def execution_error(prompt_id: str, data: Mapping[str, Any]) -> PromptExecutionError:
    """A :class:`PromptExecutionError` from an ``execution_error`` payload (wire or history)."""
    return PromptExecutionError(
        prompt_id=prompt_id,
        node_id=_opt_str(data.get("node_id")),
        node_type=_opt_str(data.get("node_type")),
        exception_type=_opt_str(data.get("exception_type")),
        exception_message=str(data.get("exception_message") or ""),
        traceback=_str_list(data.get("traceback")),
        executed=_str_list(data.get("executed")),
        raw=data,
    )


def interrupted_error(prompt_id: str, data: Mapping[str, Any]) -> PromptInterruptedError:
    """A :class:`PromptInterruptedError` from an ``execution_interrupted`` payload."""
    return PromptInterruptedError(
        prompt_id=prompt_id,
        node_id=_opt_str(data.get("node_id")),
        node_type=_opt_str(data.get("node_type")),
        executed=_str_list(data.get("executed")),
    )


def history_outcome(prompt_id: str, entry: Mapping[str, Any]) -> Optional[PromptError]:
    """None when the history entry says success, else the error it describes.

    ComfyUI records interrupts as ``status_str: "error"`` too; the terminal message in
    ``status.messages`` tells them apart.
    """
    status = entry.get("status")
    status_str = status.get("status_str") if isinstance(status, Mapping) else None
    messages = history_messages(entry)
    if "execution_interrupted" in messages:
        return interrupted_error(prompt_id, messages["execution_interrupted"])
    if "execution_error" in messages and status_str != "success":
        return execution_error(prompt_id, messages["execution_error"])
    if status_str == "error":
        return PromptExecutionError(
            prompt_id=prompt_id,
            exception_message="the server's history marks the prompt failed without details",
            raw=entry,
        )
    return None


def is_missing_route(exc: ComfyError) -> bool:
    """True for the answer of a server that does not have a route (404/405)."""
    return isinstance(exc, ComfyHTTPError) and exc.status in (404, 405)


class RestOps:
    """:class:`ServerOps` over a client's REST methods.

    Cancelling prefers the atomic ``POST /api/jobs/cancel`` of newer servers; whether the
    server has it is learnt from the first answer and remembered. Without it: delete from
    the queue, *then* interrupt by prompt id — in that order a prompt that starts between the
    two calls is still stopped, and ``/interrupt`` with a prompt id only acts on that prompt.
    """

    def __init__(self, rest: RestMethods) -> None:
        self._rest = rest
        self._jobs_api: Optional[bool] = None  # unknown until the first cancel

    def post_prompt(
        self, workflow: Mapping[str, Any], prompt_id: str, options: Mapping[str, Any]
    ) -> Any:
        return self._rest._post_prompt(workflow, prompt_id, **options)

    def queue_ids(self) -> Tuple[FrozenSet[str], FrozenSet[str]]:
        queue = self._rest.get_queue()
        return (
            frozenset(item.prompt_id for item in queue.running),
            frozenset(item.prompt_id for item in queue.pending),
        )

    def history_entry(self, prompt_id: str) -> Optional[Mapping[str, Any]]:
        entry = self._rest.get_history(prompt_id)
        if entry is None:
            return None
        raw: Mapping[str, Any] = entry.raw
        return raw

    def cancel_prompt(self, prompt_id: str) -> None:
        if self._jobs_api is not False:
            try:
                self._rest.cancel_jobs([prompt_id])
                self._jobs_api = True
                return
            except ComfyError as exc:
                if self._jobs_api or not is_missing_route(exc):
                    raise
                log.debug("no jobs API on this server; cancelling with /queue + /interrupt")
                self._jobs_api = False
        self._rest.delete_from_queue([prompt_id])
        self._rest.interrupt(prompt_id)
