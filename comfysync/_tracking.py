"""Following submitted prompts to their end: :class:`Tracker`, :class:`PromptJob`.

Guarantees (API.md "Running work", CORE.md "Tracking"):

* The prompt id is chosen (``str(uuid4())``) and the job registered **before** ``POST
  /prompt``, so no event of the prompt can arrive before we know it; a refused POST
  unregisters the job and re-raises.
* Events update only their own prompt's state. ``job.on(...)`` sees only that prompt.
* A job ends on ``execution_error`` / ``execution_interrupted`` (from the event alone), or
  after ``execution_success`` / ``executing(node=None)`` once ``/history/{id}`` was read (it
  is written just after ``execution_success``, so a few short retries) and merged with the
  live ``executed`` outputs.
* Never one message alone: after a reconnect, when a job had no news for ``watchdog``
  seconds, after ``cancel()``, and on every poll of the HTTP tracker, unfinished jobs are
  reconciled against ``/queue`` then ``/history/{id}`` (see :mod:`comfysync._polling`): a
  prompt in neither is lost (deleted from the queue, or the server restarted).

Threads: events arrive on the listener thread and only touch memory. Every HTTP call the
tracker makes runs on its one daemon thread (``comfysync-tracker-<id>``), started with the
first submitted prompt and joined by :meth:`Tracker.close`. Waiters block on a
``threading.Event`` with a timeout, never while holding the lock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from attrs import define, field

from . import events as ev
from ._dispatch import Callback, EventBus, ExceptionHandler, Subscription
from ._polling import ServerOps, check_prompts, history_outcome
from ._results import FileClient, PromptResult, build_result
from .errors import (
    ComfyConnectionError,
    ComfyError,
    PromptError,
    PromptExecutionError,
    PromptInterruptedError,
    PromptLostError,
    PromptTimeoutError,
)

__all__ = ["JobProgress", "PromptJob", "Tracker", "JobState"]

log = logging.getLogger("comfysync.tracking")

#: Delays between GET /history/{id} attempts after a prompt ended (the entry is written
#: right after ``execution_success``; ``executing(None)`` comes after it is written).
HISTORY_DELAYS: Tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)
#: Grace before the first history read after ``execution_success`` (``executing(None)``,
#: which follows the history write, usually arrives first and triggers it at once).
SUCCESS_GRACE = 0.1
#: Retry delays after an HTTP failure of the tracker (server down, timeouts).
RETRY_MIN, RETRY_MAX = 0.25, 2.0
#: Debounce of the check of not-yet-started prompts after a ``status`` (queue changed).
QUEUE_CHANGE_DELAY = 0.25
#: How long the idle tracker thread sleeps between looks (it is woken on every change).
_IDLE_WAIT = 5.0


@define(frozen=True)
class JobProgress:
    """A snapshot of a job's progress.

    ``node``/``value``/``max``: the node running now and its progress bar; ``nodes_done`` of
    ``nodes_total`` nodes are finished or served from cache; ``nodes`` the server's
    per-node ``progress_state``; ``preview`` the last preview of this prompt.
    """

    node: Optional[str] = None
    value: float = 0.0
    max: float = 0.0
    nodes_done: int = 0
    nodes_total: int = 0
    nodes: Mapping[str, ev.NodeProgress] = field(factory=dict)
    preview: Optional[ev.Preview] = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1]: finished nodes plus the running node's share."""
        if self.nodes_total <= 0:
            return 0.0
        part = self.value / self.max if self.node is not None and self.max > 0 else 0.0
        return max(0.0, min(1.0, (self.nodes_done + min(part, 1.0)) / self.nodes_total))


class JobState:
    """The tracker's mutable record of one prompt. Guarded by the tracker's lock, except
    ``done`` / ``bus`` / ``future`` which are thread-safe themselves."""

    def __init__(
        self,
        prompt_id: str,
        nodes_total: int,
        now: float,
        exception_handler: Optional[ExceptionHandler] = None,
    ) -> None:
        self.prompt_id = prompt_id
        self.nodes_total = nodes_total
        self.status = "pending"
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
        self.next_check = now
        self.poll_delay = 0.0
        self.retry_delay = RETRY_MIN
        self.cancel_requested = False
        # outcome
        self.finished = False
        self.result: Optional[PromptResult] = None
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.bus = EventBus(exception_handler)  # job.on(...) subscribers
        self.future: Optional[Future[PromptResult]] = None


class PromptJob:
    """A submitted prompt (``api.submit(workflow)``): its status, progress, events, result.

    ``wait()`` blocks until it ends and returns the :class:`PromptResult` or raises
    ``PromptExecutionError`` / ``PromptInterruptedError`` / ``PromptLostError``;
    ``wait(timeout)`` raises ``PromptTimeoutError`` on expiry and may be called again.
    ``future`` is the same outcome as a ``concurrent.futures.Future`` (None when the job was
    submitted with ``return_future=False``).
    """

    def __init__(self, state: JobState, tracker: Tracker) -> None:
        self._state = state
        self._tracker = tracker

    @property
    def prompt_id(self) -> str:
        return self._state.prompt_id

    @property
    def number(self) -> Any:
        """The queue priority the server assigned (from the POST /prompt answer)."""
        return self._state.number

    @property
    def node_errors(self) -> Dict[str, Any]:
        """Outputs the server dropped at validation while queueing the rest (usually empty)."""
        return dict(self._state.node_errors)

    @property
    def status(self) -> str:
        """``"pending"``, ``"running"``, ``"success"``, ``"error"``, ``"interrupted"`` or
        ``"lost"``."""
        return self._state.status

    @property
    def progress(self) -> JobProgress:
        return self._tracker.progress_of(self._state)

    @property
    def future(self) -> Optional[Future[PromptResult]]:
        return self._state.future

    def done(self) -> bool:
        """True once the job ended (whatever the outcome)."""
        return self._state.done.is_set()

    def wait(self, timeout: Optional[float] = None) -> PromptResult:
        """The result, once the prompt ended; raises its error, or ``PromptTimeoutError``
        after ``timeout`` seconds (the prompt keeps running unless cancelled; the job stays
        registered, so a later ``wait()`` can still return the result).

        Without a timeout it waits as long as the server may still answer: while the server
        is unreachable the listener keeps reconnecting and the tracker keeps asking
        ``/queue`` and ``/history/{id}``; once the server answers without the prompt (a
        restart), the wait ends with ``PromptLostError``. A server that never comes back
        cannot be told from a slow restart, so bound the wait with ``timeout`` or end it
        with ``api.close()`` (``ComfyConnectionError``). Do not wait inside an event
        callback: it blocks the listener thread that delivers this prompt's events."""
        state = self._state
        if not state.done.wait(timeout):
            raise PromptTimeoutError(
                f"prompt {state.prompt_id} did not finish within {timeout} s "
                f"(status {state.status}; it keeps running unless cancelled)",
                prompt_id=state.prompt_id,
                timeout=timeout,
            )
        if state.error is not None:
            raise state.error
        assert state.result is not None
        return state.result

    def cancel(self) -> bool:
        """Dequeue the prompt if pending, interrupt it if running (by prompt id). Returns
        False when it had already ended. The job then ends as ``"interrupted"``
        (``PromptInterruptedError``) unless it finished first."""
        return self._tracker.cancel(self._state)

    def on(self, key: ev.EventKey, callback: Callback) -> Subscription:
        """Subscribe to this prompt's events only (previews attributed to it included).
        Callbacks run on the listener thread; events that arrived before are not replayed
        (``progress`` keeps the latest state)."""
        return self._state.bus.on(key, callback)

    def once(self, key: ev.EventKey, callback: Callback) -> Subscription:
        return self._state.bus.once(key, callback)

    def off(self, key: ev.EventKey, callback: Callback) -> None:
        self._state.bus.off(key, callback)

    def __repr__(self) -> str:
        return f"<PromptJob {self.prompt_id} {self.status}>"


def _error_from_event(event: ev.ExecutionError) -> PromptExecutionError:
    return PromptExecutionError(
        prompt_id=event.prompt_id or "",
        node_id=event.node_id,
        node_type=event.node_type,
        exception_type=event.exception_type,
        exception_message=event.exception_message,
        traceback=list(event.traceback),
        executed=list(event.executed),
        raw=event.raw,
    )


def _status_of(error: BaseException) -> Optional[str]:
    if isinstance(error, PromptInterruptedError):
        return "interrupted"
    if isinstance(error, PromptLostError):
        return "lost"
    if isinstance(error, PromptError):
        return "error"
    return None  # closed client: the server-side status is unknown


class Tracker:
    """Registry of unfinished prompts of one client plus the thread doing their HTTP work.

    ``handle_event`` must be subscribed to the client's bus with ``"*"`` before any user
    callback; ``on_socket_ready`` is the listener's hook; ``set_polling(True)`` switches
    every job to HTTP polling (``tracker="http"``, socket unavailable, listener gave up).
    """

    def __init__(
        self,
        ops: ServerOps,
        *,
        name: str,
        files: Optional[FileClient] = None,
        polling: bool = False,
        watchdog: float = 10.0,
        poll_interval: Tuple[float, float] = (0.05, 1.0),
        history_delays: Sequence[float] = HISTORY_DELAYS,
        exception_handler: Optional[ExceptionHandler] = None,
    ) -> None:
        self._ops = ops
        self._name = name
        self._files = files
        self._polling = polling
        self._watchdog = watchdog
        self._poll_min, self._poll_max = poll_interval
        self._history_delays = tuple(history_delays) or (0.0,)
        self._exception_handler = exception_handler
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: Dict[str, JobState] = {}
        self._current: Optional[str] = None  # the prompt the server runs for this client
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    # ------------------------------------------------------------------ public surface

    @property
    def polling(self) -> bool:
        return self._polling

    def has_unfinished(self) -> bool:
        with self._lock:
            return bool(self._jobs)

    def submit(
        self,
        workflow: Mapping[str, Any],
        options: Mapping[str, Any],
        *,
        subscribe: Sequence[Tuple[ev.EventKey, Callback]] = (),
        want_future: bool = True,
    ) -> PromptJob:
        """Register a new prompt id, subscribe ``subscribe`` to it, then POST the prompt."""
        now = time.monotonic()
        prompt_id = str(uuid.uuid4())
        state = JobState(prompt_id, len(workflow), now, self._exception_handler)
        for key, callback in subscribe:
            state.bus.on(key, callback)
        if want_future:
            future: Future[PromptResult] = Future()
            future.set_running_or_notify_cancel()  # the server owns it now: no Future.cancel
            state.future = future
        with self._lock:
            if self._closed:
                raise ComfyConnectionError("this ComfyApi is closed")
            self._jobs[prompt_id] = state
            self._ensure_thread()
        try:
            answer = self._ops.post_prompt(workflow, prompt_id, options)
        except BaseException:
            with self._lock:
                self._jobs.pop(prompt_id, None)
            raise
        with self._lock:
            state.number = getattr(answer, "number", None)
            state.node_errors = dict(getattr(answer, "node_errors", None) or {})
            state.submitted = True
            now = time.monotonic()
            state.last_news = now
            if self._polling:
                state.poll_delay = self._poll_min
                state.next_check = now + self._poll_min
            server_id = getattr(answer, "prompt_id", None)
            if isinstance(server_id, str) and server_id and server_id != prompt_id:
                self._rekey(state, server_id, now)
            self._wake.notify()
        return PromptJob(state, self)

    def _rekey(self, state: JobState, server_id: str, now: float) -> None:
        """The server queued the prompt under an id of its own (a server that ignores the
        client's ``prompt_id``, or an on-prompt hook that changed it): its events carry that
        id, so follow it. Events that came before the answer were not recognised; ask the
        server at once instead of waiting for them. Lock held."""
        log.warning(
            "%s: the server queued prompt %s under id %s; following its id",
            self._name, state.prompt_id, server_id,
        )
        if self._jobs.get(state.prompt_id) is state:
            del self._jobs[state.prompt_id]
        if state.finished:
            return
        if server_id in self._jobs:  # two jobs cannot share one id: their events would mix
            raise ComfyError(
                f"the server queued the prompt under id {server_id}, which another job of "
                "this client already has; it cannot be followed"
            )
        state.prompt_id = server_id
        self._jobs[server_id] = state
        state.needs_check = True
        state.next_check = now

    def cancel(self, state: JobState) -> bool:
        with self._lock:
            if state.finished:
                return False
            state.cancel_requested = True
        try:
            self._ops.cancel_prompt(state.prompt_id)
        except BaseException:
            with self._lock:
                state.cancel_requested = False  # not cancelled: a vanished prompt is lost
            raise
        # A dequeued prompt sends nothing more: find out what happened.
        self._request_check([state], delay=0.0)
        return True

    def progress_of(self, state: JobState) -> JobProgress:
        with self._lock:
            done = len(state.finished_nodes)
            total = max(state.nodes_total, done)
            if state.status == "success":
                done = total
            return JobProgress(
                node=state.node,
                value=state.value,
                max=state.max,
                nodes_done=done,
                nodes_total=total,
                nodes=dict(state.node_states),
                preview=state.preview,
            )

    def set_polling(self, polling: bool) -> None:
        """Switch tracking mode; every unfinished job is checked at once."""
        with self._lock:
            if self._polling == polling:
                return
            self._polling = polling
            jobs = list(self._jobs.values())
        log.info("%s: tracking prompts by %s", self._name, "HTTP polling" if polling else "events")
        self._request_check(jobs, delay=0.0)

    def on_socket_ready(self, reconnected: bool) -> None:
        """Listener hook (listener thread): reconcile everything after a reconnect."""
        with self._lock:
            jobs = list(self._jobs.values())
        if reconnected and jobs:
            log.debug("%s: socket back, reconciling %d prompt(s)", self._name, len(jobs))
        self._request_check(jobs, delay=0.0)

    def owns_current_thread(self) -> bool:
        """True on the tracker thread (future callbacks may run there). Stays true after
        close(), which keeps the reference for this check."""
        return self._thread is threading.current_thread()

    def close(self, timeout: float = 30.0) -> None:
        """Stop and join the thread; unfinished jobs end with ``ComfyConnectionError``."""
        with self._lock:
            self._closed = True
            thread = self._thread  # kept: _ensure_thread() starts nothing once closed
            self._wake.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: tracker thread still busy after %.0f s", self._name, timeout)
        with self._lock:
            left = list(self._jobs.values())
        for state in left:
            self._finish(
                state,
                error=ComfyConnectionError(
                    f"the client was closed before prompt {state.prompt_id} finished "
                    "(it may still run on the server)"
                ),
            )

    # ------------------------------------------------------------------ events (listener)

    def handle_event(self, event: ev.Event) -> None:
        """Bus ``"*"`` subscriber: update the event's prompt, pass it to ``job.on`` callbacks."""
        if isinstance(event, ev.ReconnectionFailed):
            self.set_polling(True)
            return
        if isinstance(event, ev.Status):
            self._queue_changed()
            return
        prompt_id = event.prompt_id
        if prompt_id is None and isinstance(event, (ev.Executing, ev.Preview, ev.ProgressText)):
            prompt_id = self._current  # repeated `executing` after a reconnect; type-1 previews
        if prompt_id is None:
            return
        error: Optional[PromptError] = None
        with self._lock:
            state = self._jobs.get(prompt_id)
            if state is None or state.finished:
                return
            state.last_news = time.monotonic()
            error = self._apply(state, event)
            if state.end_signal is not None:
                self._wake.notify()
        state.bus.emit(event)
        if error is not None:
            self._finish(state, error=error)

    def _queue_changed(self) -> None:
        """A ``status`` broadcast: the queue changed. A prompt deleted from the queue sends
        nothing else, so check the prompts that have not started yet (debounced)."""
        with self._lock:
            when = time.monotonic() + QUEUE_CHANGE_DELAY
            waiting = [
                s for s in self._jobs.values()
                if s.submitted and s.status == "pending" and not s.needs_check
                and s.end_signal is None
            ]
            for state in waiting:
                state.needs_check = True
                state.next_check = when
            if waiting:
                self._wake.notify()

    def _apply(self, state: JobState, event: ev.Event) -> Optional[PromptError]:
        """Update ``state`` from one of its events (lock held). Returns a final error."""
        now = state.last_news
        if isinstance(event, ev.ExecutionStart):
            state.status = "running"
            state.started_ms = event.timestamp
            self._current = state.prompt_id
        elif isinstance(event, ev.ExecutionCached):
            state.status = "running"
            state.cached = list(event.nodes)
            state.finished_nodes.update(event.nodes)
            self._current = state.prompt_id
        elif isinstance(event, ev.Executing):
            if event.node is None:
                if self._current == state.prompt_id:
                    self._current = None
                if state.end_signal != "done":
                    state.end_signal = "done"  # history is written by now: read it at once
                    state.history_tries = 0
                    state.needs_check = False  # reading the history answers any check
                    state.next_check = now
            else:
                state.status = "running"
                if state.node is not None and state.node != event.node:
                    state.finished_nodes.add(state.node)
                state.node, state.value, state.max = event.node, 0.0, 0.0
        elif isinstance(event, ev.Progress):
            state.status = "running"
            state.node = event.node or state.node
            state.value, state.max = event.value, event.max
        elif isinstance(event, ev.ProgressState):
            state.node_states.update(event.nodes)
            for node_id, node in event.nodes.items():
                if node.state == "finished":
                    state.finished_nodes.add(node_id)
        elif isinstance(event, ev.Executed):
            if event.node is not None:
                state.executed[event.node] = event.output
                state.finished_nodes.add(event.node)
        elif isinstance(event, ev.ExecutionSuccess):
            state.finished_ms = event.timestamp
            state.success_seen = True
            if state.end_signal is None:
                state.end_signal = "success"
                state.history_tries = 0
                state.needs_check = False
                state.next_check = now + SUCCESS_GRACE
        elif isinstance(event, ev.ExecutionError):
            if event.timestamp is None and event.exception_type == "ExecutionBlocked":
                return None  # an ExecutionBlocker message: execution goes on
            return _error_from_event(event)
        elif isinstance(event, ev.ExecutionInterrupted):
            return PromptInterruptedError(
                prompt_id=state.prompt_id,
                node_id=event.node_id,
                node_type=event.node_type,
                executed=list(event.executed),
            )
        elif isinstance(event, ev.Preview):
            state.preview = event
        return None

    # ------------------------------------------------------------------ ending a job

    def _finish(
        self,
        state: JobState,
        *,
        result: Optional[PromptResult] = None,
        error: Optional[BaseException] = None,
    ) -> bool:
        with self._lock:
            if state.finished:
                return False
            state.finished = True
            if result is not None:
                state.status = "success"
            elif error is not None:
                state.status = _status_of(error) or state.status
            state.result, state.error = result, error
            self._jobs.pop(state.prompt_id, None)
            if self._current == state.prompt_id:
                self._current = None
        state.done.set()
        future = state.future
        if future is not None and not future.done():
            if result is not None:
                future.set_result(result)
            else:
                future.set_exception(error or ComfyError("prompt ended without an outcome"))
        log.debug("%s: prompt %s ended: %s", self._name, state.prompt_id, state.status)
        return True

    def _finish_from_history(self, state: JobState, entry: Mapping[str, Any]) -> None:
        error = history_outcome(state.prompt_id, entry)
        if error is not None:
            self._finish(state, error=error)
            return
        with self._lock:
            executed = dict(state.executed)
            cached = list(state.cached)
            started, finished = state.started_ms, state.finished_ms
        result = build_result(
            state.prompt_id,
            history=entry,
            executed=executed,
            cached_nodes=cached,
            started_ms=started,
            finished_ms=finished,
            node_errors=state.node_errors,
            client=self._files,
        )
        self._finish(state, result=result)

    def _finish_missing(self, state: JobState) -> None:
        """In neither /queue nor /history: cancelled, or lost."""
        if state.cancel_requested:
            error: PromptError = PromptInterruptedError(prompt_id=state.prompt_id)
        else:
            error = PromptLostError(
                f"prompt {state.prompt_id} is in neither the queue nor the history: it was "
                "deleted from the queue, or the server restarted or cleared its history",
                prompt_id=state.prompt_id,
            )
        self._finish(state, error=error)

    # ------------------------------------------------------------------ tracker thread

    def _request_check(self, jobs: Sequence[JobState], *, delay: float) -> None:
        with self._lock:
            when = time.monotonic() + delay
            for state in jobs:
                if not state.finished:
                    state.next_check = min(state.next_check, when) if state.needs_check else when
                    state.needs_check = True
            if jobs:
                self._ensure_thread()
            self._wake.notify()

    def _ensure_thread(self) -> None:
        """Start the tracker thread (lock held)."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name=f"comfysync-tracker-{self._name}", daemon=True
            )
            self._thread.start()

    def _on_watchdog(self, state: JobState) -> bool:
        """True when nothing but the no-news watchdog schedules the job's next check."""
        return state.end_signal is None and not state.needs_check and not self._polling

    def _due_at(self, state: JobState) -> float:
        if self._on_watchdog(state):
            return state.last_news + self._watchdog
        return state.next_check

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                due: List[JobState] = []
                later: List[Tuple[float, JobState]] = []
                for state in self._jobs.values():
                    if state.submitted:
                        at = self._due_at(state)
                        if at <= now:
                            due.append(state)
                        else:
                            later.append((at, state))
                if not due:
                    wait = min(at for at, _ in later) - now if later else _IDLE_WAIT
                    self._wake.wait(wait)
                    continue
                # One GET /queue serves many prompts: bring watchdog checks that are due
                # soon forward instead of asking again a moment later.
                due.extend(
                    s for at, s in later if self._on_watchdog(s) and at - now < self._watchdog / 2
                )
            try:
                self._process(due)
            except Exception:  # a bug must not kill the thread that ends every wait
                log.exception("%s: tracker step failed", self._name)
                self._retry_later(due)

    def _process(self, due: List[JobState]) -> None:
        ended = [s for s in due if s.end_signal is not None and not s.needs_check]
        others = [s for s in due if s not in ended]
        for state in ended:
            self._read_history(state)
        if others:
            self._reconcile(others)

    def _read_history(self, state: JobState) -> None:
        try:
            entry = self._ops.history_entry(state.prompt_id)
        except ComfyError as exc:
            log.debug("%s: history of %s unavailable: %s", self._name, state.prompt_id, exc)
            self._retry_later([state])
            return
        if entry is not None:
            self._finish_from_history(state, entry)
            return
        with self._lock:
            state.history_tries += 1
            tries = state.history_tries
            if tries < len(self._history_delays):
                state.next_check = time.monotonic() + self._history_delays[tries]
                return
            succeeded = state.success_seen
        if succeeded:
            log.warning(
                "%s: prompt %s succeeded but has no history entry; using the outputs "
                "seen on the socket",
                self._name,
                state.prompt_id,
            )
            self._finish_from_history(state, {})
            return
        # An end signal but no history entry: never conclude from one message; the queue
        # (then history once more) decides between "still there" and lost.
        with self._lock:
            state.end_signal = None
            state.needs_check = True
            state.next_check = time.monotonic()

    def _reconcile(self, states: List[JobState]) -> None:
        try:
            findings = check_prompts(self._ops, [s.prompt_id for s in states])
        except ComfyError as exc:
            log.debug("%s: reconciling failed (%s); retrying", self._name, exc)
            self._retry_later(states)
            return
        for state in states:
            finding = findings[state.prompt_id]
            if finding.where == "history" and finding.entry is not None:
                self._finish_from_history(state, finding.entry)
            elif finding.where == "missing":
                if state.success_seen:
                    self._finish_from_history(state, {})
                else:
                    self._finish_missing(state)
            else:
                with self._lock:
                    now = time.monotonic()
                    if finding.where == "running":
                        state.status = "running"
                    state.needs_check = False
                    state.retry_delay = RETRY_MIN
                    state.last_news = now
                    if state.end_signal is not None:
                        # it ended after GET /queue answered: read its history now
                        state.history_tries = 0
                        state.next_check = now
                        continue
                    state.poll_delay = min(
                        self._poll_max, max(self._poll_min, state.poll_delay * 1.5)
                    )
                    state.next_check = now + state.poll_delay

    def _retry_later(self, states: Sequence[JobState]) -> None:
        with self._lock:
            now = time.monotonic()
            for state in states:
                state.needs_check = True
                state.next_check = now + state.retry_delay
                state.retry_delay = min(RETRY_MAX, state.retry_delay * 2)
