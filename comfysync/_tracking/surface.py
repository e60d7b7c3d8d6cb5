"""The seam between prompt tracking and a server: :class:`ServerSurface`.

Prompt tracking (:class:`~comfysync._tracking.tracker.Tracker`) never speaks HTTP or reads a
socket itself. Everything it needs from a server goes through this one narrow interface, so
that a second way of reaching a server (the Comfy API v2, say) plugs in by implementing it,
without a change to tracking:

``submit(prompt, prompt_id, options, deadline=None)``
    Post an API-format prompt under a prompt id the client chose (a canonical UUID, registered
    by the tracker *before* this call). ``deadline`` (``time.monotonic()``) is the caller's:
    a surface that waits before or between tries (a ``429`` answer's ``Retry-After``) never
    waits past it, and raises the answer instead. Returns the server's :class:`Submitted`
    answer. Raises
    ``PromptValidationError`` when the server refuses the prompt, and a ``ComfyError`` when
    the request failed (the tracker then asks :meth:`~ServerSurface.status` about that id
    before it decides anything: a failed request may still have reached the server).

``status(prompt_ids)``
    Where the server has each prompt now, as a :class:`PromptStatus`: ``"queued"`` (waiting),
    ``"running"``, ``"done"`` (with its :class:`~comfysync._rest.models.HistoryEntry`),
    ``"absent"`` (the server surely does not have it: neither queued, running nor in history)
    or ``"unknown"`` (the surface cannot tell yet: ask again later). Raises a ``ComfyError``
    when the server could not be asked. It must never report a finished prompt as
    ``"absent"``: ask in an order that cannot miss a prompt that ends between two requests
    (ComfyUI moves a prompt from the queue into history atomically, so the native surface
    reads the queue first, then the history).

``result(prompt_id)``
    The finished prompt's entry, or None while the server has none (it is written just after
    the prompt ends; the tracker retries briefly).

``cancel(prompt_id)``
    Dequeue the prompt when it is waiting, interrupt it when it runs; nothing otherwise.

``events``
    The :class:`EventSource`: live events of this client's prompts. It is given its sink (one
    callable) when it is built; every event it decodes goes there, on its own thread and in
    arrival order. The client's sink hands each event to the tracker first (which attributes
    id-less frames to their prompt), then to the user's subscriptions.

Completion never rests on the event source alone. While ``events.connected and
events.authoritative`` the tracker ends a prompt on its terminal event, confirmed by
:meth:`~ServerSurface.result`, and checks :meth:`~ServerSurface.status` only after a reconnect
or a long silence. Otherwise (never connected, socket down, tracker mode ``"http"``, or a
source whose events are hints only) it asks :meth:`~ServerSurface.status` of every unfinished
prompt at the HTTP tracker's pace: a surface without any event stream is tracked correctly.
A source of hints that learns one prompt ended (a v2 job's stream) has the client call
:meth:`~comfysync._tracking.tracker.Tracker.check_prompt` with its id: that prompt's
``status`` is asked at once. A check requested while a ``status`` read is in flight stays due
until a read sent after it is answered.
"""

from __future__ import annotations

from typing import Any, Dict, Literal, Mapping, Optional, Protocol, Sequence

from attrs import define, field

from .._rest.models import HistoryEntry

__all__ = ["EventSource", "PromptStatus", "ServerSurface", "Submitted", "Where"]

#: Where a server has a prompt (see :class:`PromptStatus`).
Where = Literal["queued", "running", "done", "absent", "unknown"]


@define(frozen=True)
class PromptStatus:
    """Where the server has one prompt. ``entry`` is set exactly when ``where == "done"``."""

    where: Where
    entry: Optional[HistoryEntry] = field(default=None, repr=False)


@define(frozen=True)
class Submitted:
    """The server's answer to a submitted prompt: the id it queued it under (normally the
    client's), its queue ``number`` and the ``node_errors`` of outputs it dropped.
    ``assigns_ids``: the surface always names prompts itself (a v2 deployment's job ids), so
    following its id is the normal case, not worth a warning. ``status``: where the server had
    the prompt just after answering, when the surface asked at once (a v2 job read right
    after it was created: one that is over within milliseconds ends without any further
    request or thread hop); tracking settles the prompt from it instead of asking again."""

    prompt_id: str
    number: Any = None
    node_errors: Mapping[str, Any] = field(factory=dict)
    assigns_ids: bool = False
    status: Optional[PromptStatus] = None


class EventSource(Protocol):
    """Live events of one client's prompts, delivered to the sink it was built with."""

    def start(self, timeout: float) -> None:
        """Open the stream; return once it delivers. Raises ``ComfyConnectionError`` (or a
        ``ConnectTimeoutError``) when it cannot be opened, leaving nothing running. A no-op
        while it runs."""

    def stop(self) -> None:
        """Close the stream and join its thread, for good (a later :meth:`start` raises
        ``ComfyConnectionError``). Idempotent, callable from the sink's own thread."""

    @property
    def alive(self) -> bool:
        """True while its thread runs (delivering, or reconnecting)."""

    @property
    def connected(self) -> bool:
        """True while events flow (a lost connection makes the tracker poll)."""

    @property
    def authoritative(self) -> bool:
        """True when, while connected, every event of this client's prompts arrives, so a
        terminal event may end a prompt (confirmed by ``result``); False for a source whose
        events are hints only (the tracker then polls ``status``)."""

    def owns_current_thread(self) -> bool:
        """True on the thread that runs the sink (a wait there could never end)."""


class ServerSurface(Protocol):
    """What prompt tracking needs from a server. See the module docstring."""

    @property
    def events(self) -> EventSource: ...

    def submit(
        self, prompt: Mapping[str, Any], prompt_id: str, options: Mapping[str, Any],
        deadline: Optional[float] = None,
    ) -> Submitted:
        """Post ``prompt`` under ``prompt_id``; ``options``: ``front``, ``number``,
        ``extra_data``, ``partial_execution_targets``; no wait past ``deadline``."""

    def status(self, prompt_ids: Sequence[str]) -> Dict[str, PromptStatus]:
        """Where the server has each of ``prompt_ids`` (one entry per id)."""

    def result(self, prompt_id: str) -> Optional[HistoryEntry]:
        """The finished prompt's history entry, None while the server has none."""

    def cancel(self, prompt_id: str) -> None:
        """Dequeue the prompt if waiting, interrupt it if running."""
