"""The native ComfyUI server as a :class:`~comfysync._tracking.surface.ServerSurface`: its REST
routes plus the WebSocket listener.

``status`` asks ``GET /queue`` **first**, then ``GET /history/{id}`` for each prompt that is not
queued. The server moves a prompt from "running" into history atomically, so in that order a
prompt that finishes between the two requests is found in history; the other order could see
it in neither and call it absent. Only per-prompt history is requested, never the whole
``/history``.

Cancelling prefers the atomic ``POST /api/jobs/{id}/cancel`` of newer servers; whether the server
has it is learnt from the first answer and remembered. Without it: delete from the queue,
*then* interrupt by prompt id — in that order a prompt that starts between the two calls is
still stopped, and ``/interrupt`` with a prompt id only acts on that prompt.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from .. import events as ev
from .._rest.methods import RestMethods
from .._rest.models import HistoryEntry
from .._ws.listener import Listener, WebSocketSource
from ..errors import ComfyConnectionError, ComfyError, ComfyHTTPError
from .surface import PromptStatus, Submitted

__all__ = ["ListenerEvents", "NativeSurface"]

log = logging.getLogger("comfysync.tracking")


def is_missing_route(exc: ComfyError) -> bool:
    """True for the answer of a server that does not have a route (404/405)."""
    return isinstance(exc, ComfyHTTPError) and exc.status in (404, 405)


class ListenerEvents:
    """The :class:`~comfysync._tracking.surface.EventSource` of a native server: one
    :class:`~comfysync._ws.listener.Listener` at a time (a new one per :meth:`start` after the
    previous one gave up), every event going to ``sink``."""

    authoritative = True

    def __init__(
        self,
        transport: WebSocketSource,
        client_id: str,
        sink: Callable[[ev.Event], object],
        *,
        has_pending_work: Callable[[], bool],
        options: Mapping[str, Any],
    ) -> None:
        self._transport = transport
        self._client_id = client_id
        self._sink = sink
        self._has_pending_work = has_pending_work
        self._options = dict(options)
        self._lock = threading.Lock()
        self._listener: Optional[Listener] = None
        self._stopped = False

    @property
    def listener(self) -> Optional[Listener]:
        """The current listener (None before the first :meth:`start`)."""
        return self._listener

    @property
    def alive(self) -> bool:
        listener = self._listener
        return listener is not None and listener.alive

    @property
    def connected(self) -> bool:
        listener = self._listener
        return listener is not None and listener.connected

    def owns_current_thread(self) -> bool:
        listener = self._listener
        return listener is not None and listener.owns_current_thread()

    def start(self, timeout: float) -> None:
        # Published before start(): stop() — maybe from the sink, while start() waits for the
        # greeting — stops it without waiting for this one.
        with self._lock:
            if self._stopped:
                raise ComfyConnectionError("this client is closed")
            if self.alive:
                return
            listener = Listener(
                self._transport,
                self._client_id,
                self._sink,
                has_pending_work=self._has_pending_work,
                **self._options,
            )
            self._listener = listener
        listener.start(timeout)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            listener = self._listener
        if listener is not None:
            listener.stop()


class NativeSurface:
    """:class:`~comfysync._tracking.surface.ServerSurface` over a client's REST methods and a
    :class:`ListenerEvents`."""

    def __init__(self, rest: RestMethods, events: ListenerEvents) -> None:
        self._rest = rest
        self._events = events
        self._jobs_api: Optional[bool] = None  # unknown until the first cancel

    @property
    def events(self) -> ListenerEvents:
        return self._events

    def submit(
        self, prompt: Mapping[str, Any], prompt_id: str, options: Mapping[str, Any],
        deadline: Optional[float] = None,
    ) -> Submitted:
        # one POST, no waits between tries: nothing to bound by ``deadline``
        answer = self._rest._post_prompt(prompt, prompt_id, **options)
        return Submitted(answer.prompt_id, answer.number, dict(answer.node_errors))

    def status(self, prompt_ids: Sequence[str]) -> Dict[str, PromptStatus]:
        ids = list(prompt_ids)
        if not ids:
            return {}
        queue = self._rest.get_queue()
        running = {item.prompt_id for item in queue.running}
        pending = {item.prompt_id for item in queue.pending}
        found: Dict[str, PromptStatus] = {}
        for prompt_id in ids:
            if prompt_id in running:
                found[prompt_id] = PromptStatus("running")
            elif prompt_id in pending:
                found[prompt_id] = PromptStatus("queued")
            else:
                entry = self._rest.get_history(prompt_id)
                found[prompt_id] = (
                    PromptStatus("absent") if entry is None else PromptStatus("done", entry)
                )
        return found

    def result(self, prompt_id: str) -> Optional[HistoryEntry]:
        return self._rest.get_history(prompt_id)

    def cancel(self, prompt_id: str) -> None:
        if self._jobs_api is not False:
            try:
                self._rest.cancel_job(prompt_id)
                self._jobs_api = True
                return
            except ComfyError as exc:
                if self._jobs_api or not is_missing_route(exc):
                    raise
                log.debug("no jobs API on this server; cancelling with /queue + /interrupt")
                self._jobs_api = False
        self._rest.delete_from_queue([prompt_id])
        self._rest.interrupt(prompt_id)
