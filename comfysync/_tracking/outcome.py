"""What an ended prompt means: the one place that turns a terminal event, or a history entry,
into the prompt's error.

A terminal event may come over the socket (``execution_error``, ``execution_interrupted``) or
be read back from a history entry's status messages when the socket missed it; both go through
:func:`prompt_error`, so a prompt fails the same way whichever source told the tracker.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from .. import events as ev
from .._rest.models import HistoryEntry
from .._ws.wire import FrameError, decode_message
from ..errors import PromptError, PromptExecutionError, PromptInterruptedError

__all__ = ["history_outcome", "prompt_error"]


def prompt_error(
    prompt_id: str,
    event: Union[ev.ExecutionError, ev.ExecutionInterrupted],
    *,
    cancelled: bool = False,
) -> PromptError:
    """The error a terminal event stands for. ``PromptExecutionError.raw`` is the server's
    ``execution_error`` payload (``current_inputs`` and all). ``cancelled``: the client's
    ``job.cancel()`` asked for the interrupt."""
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
    prompt_id: str, entry: HistoryEntry, *, cancelled: bool = False
) -> Optional[PromptError]:
    """None when the history entry says success, else the error it describes
    (``cancelled``: as in :func:`prompt_error`).

    ComfyUI records interrupts as ``status_str: "error"`` too; the terminal message in the
    entry's status messages tells them apart.
    """
    for name in ("execution_interrupted", "execution_error"):
        data = entry.message(name)
        # an execution_error next to success is the non-fatal ExecutionBlocker message
        if data is not None and (name == "execution_interrupted" or entry.status_str != "success"):
            return _recorded_error(prompt_id, name, data, cancelled)
    if entry.status_str == "error":
        return PromptExecutionError(
            prompt_id=prompt_id,
            exception_message="the server's history marks the prompt failed without details",
            raw=entry.raw,
        )
    return None
