"""Asking the server over HTTP what became of prompts: the one procedure behind history
fetches, reconciliation after a reconnect, the watchdog, and the HTTP tracker.

The order matters (CORE.md, rule 3): ``GET /queue`` **first**, then ``GET /history/{id}`` for
each prompt that is not queued. The server moves a prompt from "running" to history
atomically, so in that order a prompt that finishes between the two requests is found in
history; the other order could see it in neither and call it lost. Only per-prompt history
is ever requested, never the whole ``/history``.

What an ended prompt means is decided here too, once for both sources: :func:`prompt_error`
turns a terminal event (from the socket, or decoded back from a history entry's
``status.messages`` by :func:`history_outcome`) into the prompt's error.

The HTTP calls here run on the tracker thread; nothing here touches tracker state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple, Union

from attrs import define

from .. import events as ev
from .._ws.wire import FrameError, decode_message
from ..errors import (
    ComfyError,
    ComfyHTTPError,
    PromptError,
    PromptExecutionError,
    PromptInterruptedError,
)

if TYPE_CHECKING:
    from .._rest.methods import RestMethods

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
    "prompt_error",
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


def prompt_error(
    prompt_id: str,
    event: Union[ev.ExecutionError, ev.ExecutionInterrupted],
    *,
    cancelled: bool = False,
) -> PromptError:
    """The error a terminal event stands for — the same whether the event came over the
    socket or was read back from a history entry. ``PromptExecutionError.raw`` is the
    server's ``execution_error`` payload (``current_inputs`` and all). ``cancelled``: the
    client's ``job.cancel()`` asked for the interrupt."""
    if isinstance(event, ev.ExecutionInterrupted):
        return PromptInterruptedError(
            prompt_id=prompt_id,
            node_id=event.node_id,
            node_type=event.node_type,
            executed=list(event.executed),
            cancelled=cancelled,
        )
    data = (event.raw or {}).get("data")
    return PromptExecutionError(
        prompt_id=prompt_id,
        node_id=event.node_id,
        node_type=event.node_type,
        exception_type=event.exception_type,
        exception_message=event.exception_message,
        traceback=list(event.traceback),
        executed=list(event.executed),
        raw=data if isinstance(data, Mapping) else None,
    )


def _recorded_error(
    prompt_id: str, name: str, data: Mapping[str, Any], cancelled: bool
) -> PromptError:
    """The error of a terminal message kept in history (decoded like a frame; a record too
    malformed to decode still tells how the prompt ended)."""
    try:
        event = decode_message(name, dict(data))
    except FrameError:
        event = decode_message(name, {})
    assert isinstance(event, (ev.ExecutionError, ev.ExecutionInterrupted))
    return prompt_error(prompt_id, event, cancelled=cancelled)


def history_outcome(
    prompt_id: str, entry: Mapping[str, Any], *, cancelled: bool = False
) -> Optional[PromptError]:
    """None when the history entry says success, else the error it describes
    (``cancelled``: as in :func:`prompt_error`).

    ComfyUI records interrupts as ``status_str: "error"`` too; the terminal message in
    ``status.messages`` tells them apart.
    """
    status = entry.get("status")
    status_str = status.get("status_str") if isinstance(status, Mapping) else None
    messages = history_messages(entry)
    for name in ("execution_interrupted", "execution_error"):
        # an execution_error next to success is the non-fatal ExecutionBlocker message
        if name in messages and (name == "execution_interrupted" or status_str != "success"):
            return _recorded_error(prompt_id, name, messages[name], cancelled)
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
