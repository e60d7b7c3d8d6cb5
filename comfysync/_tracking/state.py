"""The tracker's record of one prompt: :class:`JobState`.

It holds what the events told (status, progress, live outputs), when the tracker thread must
next ask the server about it, and the outcome. Its methods are the state transitions: the
:class:`~comfysync._tracking.tracker.Tracker` calls them with its lock held and does the I/O, so
every
rule about *when* a prompt is checked over HTTP reads in one place:

* an end signal (``executing`` with no node: at once; ``execution_success``: after a short
  grace, since the ``executing`` that follows usually comes first) → read ``/history/{id}``,
  retrying briefly while it is not written yet;
* no history entry after those retries → the live outputs when ``execution_success`` was
  seen, else a full check (``/queue`` then history): one message alone never ends a job;
* a requested check (reconnect, cancel, queue change, polling) → ``/queue`` then history;
* otherwise the no-news watchdog, or the polling interval in HTTP mode;
* an HTTP failure → retry after an exponential backoff (:class:`~comfysync._backoff.Backoff`).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from .. import events as ev
from .._backoff import Backoff
from .._dispatch import EventBus, ExceptionHandler
from .._rest.models import HistoryEntry
from .._results import FileClient, PromptResult, build_result
from .._types import JobStatus
from ..errors import ComfyError, PromptError, PromptInterruptedError, PromptLostError
from .outcome import prompt_error
from .progress import JobProgress
from .surface import Submitted

__all__ = ["JobState", "SUCCESS_GRACE", "RETRY_MIN", "RETRY_MAX"]

#: Grace before the first history read after ``execution_success`` (``executing(None)``,
#: which follows the history write, usually arrives first and triggers it at once).
SUCCESS_GRACE = 0.1
#: Backoff base and cap of the retries after an HTTP failure of the tracker (server down,
#: timeouts).
RETRY_MIN, RETRY_MAX = 0.25, 2.0


class JobState:
    """The mutable record of one prompt. Guarded by the tracker's lock (every method expects
    it held), except ``done`` / ``bus`` / ``future``, which are thread-safe themselves.
    ``future`` (running from the start: only the server can end the prompt) is resolved by
    :meth:`announce`."""

    def __init__(
        self,
        prompt_id: str,
        nodes_total: int,
        now: float,
        exception_handler: Optional[ExceptionHandler] = None,
        websocket_nodes: Sequence[str] = (),
    ) -> None:
        self.prompt_id = prompt_id
        self.nodes_total = nodes_total
        # nodes whose images come over the socket: kept as the result's files
        self.websocket_nodes = frozenset(websocket_nodes)
        self.received: Dict[str, List[Tuple[bytes, str]]] = {}
        self.status: JobStatus = "pending"
        self.submitted = False  # POST /prompt returned: only then may it be reconciled
        self.number: Any = None
        self.node_errors: Dict[str, Any] = {}
        # what the events told
        self.executed: Dict[str, Optional[Mapping[str, Any]]] = {}
        self.cached: List[str] = []
        self.started_ms: Optional[int] = None
        self.finished_ms: Optional[int] = None
        self.node: Optional[str] = None
        self.value = 0.0
        self.max = 0.0
        self.finished_nodes: Set[str] = set()
        self.node_states: Dict[str, ev.NodeProgress] = {}
        self.preview: Optional[ev.Preview] = None
        # scheduling of HTTP checks on the tracker thread
        self.last_news = now
        self.end_signal: Optional[str] = None  # "success" | "done" (executing None)
        self.success_seen = False  # execution_success arrived (outputs are live-known)
        self.history_tries = 0
        self.needs_check = False  # reconcile as soon as next_check passes
        self.check_requests = 0  # counts request_check(): a read serves those before it
        self.next_check = now
        self.poll_delay = 0.0
        self.retries = Backoff(RETRY_MIN, RETRY_MAX)
        self.cancel_requested = False
        self.heard = False  # an event of it arrived (proof that the server has it)
        self.polled = False  # followed by polling whatever the socket does (attached)
        # outcome
        self.finished = False
        self.result: Optional[PromptResult] = None
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.bus = EventBus(exception_handler)  # job.on(...) subscribers
        self.future: Future[PromptResult] = Future()
        self.future.set_running_or_notify_cancel()  # the server owns it: no Future.cancel

    # ------------------------------------------------------------------ events

    def apply(self, event: ev.Event, now: float) -> Optional[PromptError]:
        """Update from one of this prompt's events; returns the error a terminal event
        means (the job's end), else None."""
        self.last_news = now
        self.heard = True
        if isinstance(event, ev.ExecutionStart):
            self.status = "running"
            self.started_ms = event.timestamp
        elif isinstance(event, ev.ExecutionCached):
            self.status = "running"
            self.cached = list(event.nodes)
            self.finished_nodes.update(event.nodes)
        elif isinstance(event, ev.Executing):
            if event.node is None:
                if self.end_signal != "done":  # history is written by now: read it at once
                    self._ended("done", now)
            else:
                self.status = "running"
                if self.node is not None and self.node != event.node:
                    self.finished_nodes.add(self.node)
                self.node, self.value, self.max = event.node, 0.0, 0.0
        elif isinstance(event, ev.Progress):
            self.status = "running"
            self.node = event.node or self.node
            self.value, self.max = event.value, event.max
        elif isinstance(event, ev.ProgressState):
            self.node_states.update(event.nodes)
            self.finished_nodes.update(k for k, n in event.nodes.items() if n.state == "finished")
        elif isinstance(event, ev.Executed):
            if event.node is not None:
                self.executed[event.node] = event.output
                self.finished_nodes.add(event.node)
        elif isinstance(event, ev.ExecutionSuccess):
            self.finished_ms = event.timestamp
            self.success_seen = True
            if self.end_signal is None:
                self._ended("success", now + SUCCESS_GRACE)
        elif isinstance(event, ev.ExecutionError):
            if event.timestamp is None and event.exception_type == "ExecutionBlocked":
                return None  # an ExecutionBlocker message: execution goes on
            return prompt_error(self.prompt_id, event)
        elif isinstance(event, ev.ExecutionInterrupted):
            return prompt_error(self.prompt_id, event, cancelled=self.cancel_requested)
        elif isinstance(event, ev.Preview):
            self.preview = event
            if event.node_id in self.websocket_nodes:
                self.received.setdefault(event.node_id, []).append((event.image, event.mime_type))
        return None

    def _ended(self, signal: str, read_at: float) -> None:
        self.end_signal = signal
        self.history_tries = 0
        self.needs_check = False  # reading the history answers any pending check
        self.next_check = read_at

    def progress(self) -> JobProgress:
        done = len(self.finished_nodes)
        total = max(self.nodes_total, done)
        if self.status == "success":
            done = total
        return JobProgress(
            node=self.node,
            value=self.value,
            max=self.max,
            nodes_done=done,
            nodes_total=total,
            nodes=dict(self.node_states),
            preview=self.preview,
        )

    # ------------------------------------------------------------------ scheduling

    def posted(self, answer: Submitted, now: float, poll_min: Optional[float]) -> None:
        """POST /prompt answered: from now on the server may be asked about the prompt
        (``poll_min``: first polling delay in HTTP mode, None with a socket)."""
        self.number = answer.number
        self.node_errors = dict(answer.node_errors)
        self.submitted = True
        self.last_news = now
        if poll_min is not None:
            self.poll_delay = poll_min
            self.next_check = now + poll_min

    def request_check(self, when: float) -> None:
        """Ask ``/queue`` then history no later than ``when``. The request stays until a
        check that *started* after it is answered (see :meth:`still_queued`)."""
        if not self.finished:
            self.next_check = min(self.next_check, when) if self.needs_check else when
            self.needs_check = True
            self.check_requests += 1

    def check_if_waiting(self, when: float) -> bool:
        """After a queue change: a prompt that has not started may have been deleted (which
        sends nothing else), so check it at ``when``. True when scheduled."""
        if (
            self.submitted
            and self.status == "pending"
            and not self.needs_check
            and self.end_signal is None
        ):
            self.needs_check = True
            self.check_requests += 1
            self.next_check = when
            return True
        return False

    def on_watchdog(self, polling: bool) -> bool:
        """True when nothing but the no-news watchdog schedules the next check."""
        return self.end_signal is None and not self.needs_check and not polling

    def due_at(self, watchdog: float, polling: bool) -> float:
        if self.on_watchdog(polling):
            return self.last_news + watchdog
        return self.next_check

    @property
    def reads_history(self) -> bool:
        """The next step is reading ``/history/{id}`` (an end signal came, no check asked)."""
        return self.end_signal is not None and not self.needs_check

    def history_missing(self, now: float, delays: Sequence[float]) -> str:
        """``/history/{id}`` had no entry after an end signal: ``"retry"`` (scheduled),
        ``"live"`` (execution_success was seen: finish from the live outputs) or ``"check"``
        (ask the queue, then history again; scheduled)."""
        self.history_tries += 1
        if self.history_tries < len(delays):
            self.next_check = now + delays[self.history_tries]
            return "retry"
        if self.success_seen:
            return "live"
        self.end_signal = None
        self.needs_check = True
        self.next_check = now
        return "check"

    def still_queued(self, where: str, now: float, poll_min: float, poll_max: float,
                     served: Optional[int] = None) -> None:
        """A check found the prompt in the queue (``where``: running or pending).
        ``served``: :attr:`check_requests` when that check was sent (None: it serves every
        request). A check requested while it was in flight (e.g. the event stream said the
        job ended) was not answered by it, so it stays due as requested."""
        if where == "running":
            self.status = "running"
        self.retries.reset()
        self.last_news = now
        if served is not None and self.check_requests != served and self.needs_check:
            return  # asked again meanwhile: next_check is the requested time
        self.needs_check = False
        if self.end_signal is not None:  # it ended after GET /queue answered: read history now
            self.history_tries = 0
            self.next_check = now
            return
        self.poll_delay = min(poll_max, max(poll_min, self.poll_delay * 1.5))
        self.next_check = now + self.poll_delay

    # ------------------------------------------------------------------ outcome

    def conclude(self, result: Optional[PromptResult], error: Optional[BaseException]) -> bool:
        """Record the outcome; False when the job had already ended (the first one wins)."""
        if self.finished:
            return False
        self.finished = True
        if result is not None:
            self.status = "success"
        elif error is not None:
            self.status = _status_of(error) or self.status
        self.result, self.error = result, error
        return True

    def announce(self) -> None:
        """Wake the waiters and resolve the future. Without the lock: future callbacks are
        user code."""
        self.done.set()
        future = self.future
        if not future.done():
            if self.result is not None:
                future.set_result(self.result)
            else:
                future.set_exception(self.error or ComfyError("prompt ended without an outcome"))

    def result_from(self, entry: HistoryEntry, files: Optional[FileClient]) -> PromptResult:
        """The run's result: its history entry merged with the outputs seen live."""
        return build_result(
            self.prompt_id,
            history=entry,
            executed=dict(self.executed),
            cached_nodes=list(self.cached),
            started_ms=self.started_ms,
            finished_ms=self.finished_ms,
            node_errors=self.node_errors,
            client=files,
            received=self.received,
        )

    def missing_error(self) -> PromptError:
        """The server has the prompt in neither its queue nor its history."""
        if self.cancel_requested:  # deleted by our cancel(): it never ran
            return PromptInterruptedError.removed_from_queue(self.prompt_id)
        return PromptLostError(
            f"prompt {self.prompt_id} is in neither the queue nor the history: it was "
            "deleted from the queue, or the server restarted or cleared its history",
            prompt_id=self.prompt_id,
        )

    def retry_later(self, now: float) -> None:
        """An HTTP request about this prompt failed: check again after a backoff."""
        self.needs_check = True
        self.next_check = now + self.retries.next_delay()


def _status_of(error: BaseException) -> Optional[JobStatus]:
    if isinstance(error, PromptInterruptedError):
        return "interrupted"
    if isinstance(error, PromptLostError):
        return "lost"
    if isinstance(error, PromptError):
        return "error"
    return None  # closed client: the server-side status is unknown
