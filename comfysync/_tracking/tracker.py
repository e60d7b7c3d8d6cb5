"""Following submitted prompts to their end: the :class:`Tracker`.

Guarantees:

* The prompt id is chosen (``str(uuid4())``) and the job registered **before** ``POST
  /prompt``, so no event of the prompt can arrive before we know it; a refused POST
  unregisters the job and re-raises. A server that queues the prompt under an id of its own
  is followed under that id.
* Every event passes through :meth:`Tracker.handle_event` before the user's subscriptions
  see it: it is the one place that attributes id-less frames to their prompt
  (:class:`~comfysync._tracking.attribution.Attribution`), and events update only their own
  prompt's state. ``job.on(...)`` sees only that prompt.
* A job ends on ``execution_error`` / ``execution_interrupted`` (from the event alone), or
  after ``execution_success`` / ``executing(node=None)`` once ``/history/{id}`` was read (it
  is written just after ``execution_success``, so a few short retries) and merged with the
  live ``executed`` outputs.
* Never one message alone: after a reconnect, when a job had no news for ``watchdog``
  seconds, after ``cancel()``, when an end signal has no history entry, and on every poll of
  the HTTP tracker, unfinished jobs are checked with the surface's ``status``
  (``/queue`` then ``/history/{id}`` on a native server): a prompt the server surely does not
  have is lost (deleted from the queue, or the server restarted).

The per-prompt record and its transitions (when to ask the server what) are
:class:`~comfysync._tracking.state.JobState`; the user's handle is
:class:`~comfysync._tracking.job.PromptJob`. The tracker owns the registry, the lock and the
thread; it reaches the server only through its
:class:`~comfysync._tracking.surface.ServerSurface`.

Threads: events arrive on the listener thread and only touch memory. Every HTTP call the
tracker makes runs on its one daemon thread (``comfysync-tracker-<id>``), started with the
first submitted prompt and joined by :meth:`Tracker.close`. Waiters block on a
``threading.Event`` with a timeout, never while holding the lock; futures are resolved and
``job.on`` callbacks run outside it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .. import events as ev
from .._dispatch import Callback, ExceptionHandler
from .._rest.models import HistoryEntry
from .._results import FileClient, PromptResult, websocket_nodes
from ..errors import ComfyConnectionError, ComfyError, PromptLostError
from .attribution import Attribution
from .job import PromptJob
from .outcome import history_outcome
from .progress import JobProgress
from .state import JobState
from .submission import ABSENT_SETTLE, canonical_prompt_id, find_prompt, post_prompt
from .surface import PromptStatus, ServerSurface, Submitted

__all__ = ["Tracker", "HISTORY_DELAYS"]

log = logging.getLogger("comfysync.tracking")

#: Delays between GET /history/{id} attempts after a prompt ended (the entry is written
#: right after ``execution_success``; ``executing(None)`` comes after it is written).
HISTORY_DELAYS: Tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8)
#: Debounce of the check of not-yet-started prompts after a ``status`` (queue changed).
QUEUE_CHANGE_DELAY = 0.25
#: How long the idle tracker thread sleeps between looks (it is woken on every change).
_IDLE_WAIT = 5.0
#: How long a check asked for an id not followed yet is kept for it (see ``check_prompt``).
_EARLY_CHECK_KEEP = 30.0


class Tracker:
    """Registry of unfinished prompts of one client plus the thread doing their HTTP work.

    The client hands every event to :meth:`handle_event` first and passes on the event it
    returns (attributed) to the user's subscriptions; ``set_polling(True)`` switches every
    job to HTTP polling (``tracker="http"``, socket unavailable, listener gave up).
    """

    def __init__(
        self,
        surface: ServerSurface,
        *,
        name: str,
        files: Optional[FileClient] = None,
        polling: bool = False,
        watchdog: float = 10.0,
        poll_interval: Tuple[float, float] = (0.05, 1.0),
        history_delays: Sequence[float] = HISTORY_DELAYS,
        resolve_timeout: float = 30.0,
        exception_handler: Optional[ExceptionHandler] = None,
        on_event_thread: Callable[[], bool] = lambda: False,
    ) -> None:
        self._surface = surface
        self._on_event_thread = on_event_thread
        self._name = name
        self._files = files
        self._polling = polling
        self._watchdog = watchdog
        self._poll_min, self._poll_max = poll_interval
        self._history_delays = tuple(history_delays) or (0.0,)
        self._resolve_timeout = resolve_timeout
        self._stopping = threading.Event()  # set by close(): ends a submit's questions
        self._exception_handler = exception_handler
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: Dict[str, JobState] = {}
        self._early_checks: Dict[str, float] = {}  # id → when a check was asked before it
        self._attribution = Attribution()  # the prompt the server runs for this client
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    # ------------------------------------------------------------------ public surface

    @property
    def polling(self) -> bool:
        """True when prompts are followed by HTTP polling for good (``tracker="http"``, no
        socket, the listener gave up)."""
        return self._polling

    def _polls_now(self) -> bool:
        """True while completion must come from the surface's ``status`` at the polling pace:
        polling for good, or the event source is down (reconnecting) or gives hints only."""
        events = self._surface.events
        return self._polling or not (events.connected and events.authoritative)

    def has_unfinished(self) -> bool:
        with self._lock:
            return bool(self._jobs)

    def submit(
        self,
        workflow: Mapping[str, Any],
        options: Mapping[str, Any],
        *,
        prompt_id: Optional[str] = None,
        subscribe: Sequence[Tuple[ev.EventKey, Callback]] = (),
        deadline: Optional[float] = None,
    ) -> PromptJob:
        """Register the prompt id (a new one, or the caller's ``prompt_id``), subscribe
        ``subscribe`` to it, then post the prompt — unless the caller's id is one the server
        already has (queued, running or in history): then the job follows that prompt.

        A post whose fate is unknown is resolved by asking the server (see
        :mod:`comfysync._tracking.submission`) until ``deadline`` (``time.monotonic()``;
        default ``resolve_timeout`` from now); when it is still unknown then, the error is
        raised with ``prompt_id`` set."""
        chosen = prompt_id is not None
        pid = canonical_prompt_id(prompt_id) if chosen else str(uuid.uuid4())
        existing = self._registered(pid, subscribe)
        if existing is not None:
            return existing
        state = JobState(pid, len(workflow), time.monotonic(), self._exception_handler,
                         websocket_nodes=websocket_nodes(workflow))
        for key, callback in subscribe:
            state.bus.on(key, callback)
        self._register(state)
        try:
            if chosen:
                found = self._surface.status([pid]).get(pid)
                if found is not None and found.where in ("queued", "running", "done"):
                    log.info("%s: prompt %s is already on the server; following it",
                             self._name, pid)
                    self._adopt(state, found, polled=True)
                    return PromptJob(state, self)
            self._post(state, workflow, options, deadline)
        except BaseException as exc:
            with self._lock:
                if self._jobs.get(pid) is state and not state.submitted:
                    del self._jobs[pid]
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                self._withdraw(pid)
            raise
        return PromptJob(state, self)

    def _withdraw(self, prompt_id: str) -> None:
        """A submit was interrupted (Ctrl-C) while its POST may have reached the server:
        nobody will follow that prompt, so it must not run (best effort)."""
        try:
            self._surface.cancel(prompt_id)
        except Exception as exc:
            log.warning("%s: could not withdraw the interrupted prompt %s: %s",
                        self._name, prompt_id, exc)
        else:
            log.info("%s: submit interrupted; prompt %s withdrawn from the server",
                     self._name, prompt_id)

    def attach(
        self,
        prompt_id: str,
        *,
        subscribe: Sequence[Tuple[ev.EventKey, Callback]] = (),
        settle: bool = True,
    ) -> PromptJob:
        """Follow a prompt already on the server (submitted by anyone) to its end. It is
        polled at the HTTP tracker's pace (its events reach this client only when it was
        submitted with this client's id). ``PromptLostError`` when the server surely does
        not have it; its ``ComfyError`` when the server cannot be asked. ``settle=False``:
        one look decides (absent means absent), for a prompt no attempt may have posted
        moments ago — the server may still be validating such a one."""
        pid = canonical_prompt_id(prompt_id)
        existing = self._registered(pid, subscribe)
        if existing is not None:
            return existing
        state = JobState(pid, 0, time.monotonic(), self._exception_handler)
        for key, callback in subscribe:
            state.bus.on(key, callback)
        self._register(state)
        try:
            now = time.monotonic()
            found, error = find_prompt(
                self._surface, pid, deadline=now + 2 * ABSENT_SETTLE if settle else now,
                heard=lambda: state.heard, stop=self._stopping,
                settle=ABSENT_SETTLE if settle else 0.0,
            )
            if found is None:
                raise PromptLostError(
                    f"prompt {pid} is not on the server (neither queued, running nor in its "
                    "history)",
                    prompt_id=pid,
                )
            if found.where == "unknown":
                raise error or ComfyConnectionError(f"could not ask the server about {pid}")
            self._adopt(state, found, polled=True)
        except BaseException:
            with self._lock:
                if self._jobs.get(pid) is state and not state.submitted:
                    del self._jobs[pid]
            raise
        return PromptJob(state, self)

    def _registered(
        self, prompt_id: str, subscribe: Sequence[Tuple[ev.EventKey, Callback]]
    ) -> Optional[PromptJob]:
        """The job of ``prompt_id`` when this client already follows it (its one state:
        events must not be split between two), with ``subscribe`` added."""
        with self._lock:
            if self._closed:
                raise ComfyConnectionError("this ComfyApi is closed")
            state = self._jobs.get(prompt_id)
        if state is None:
            return None
        for key, callback in subscribe:
            state.bus.on(key, callback)
        return PromptJob(state, self)

    def _register(self, state: JobState) -> None:
        with self._lock:
            if self._closed:
                raise ComfyConnectionError("this ComfyApi is closed")
            if state.prompt_id in self._jobs:  # two submits of one id at the same moment
                raise ComfyError(f"prompt {state.prompt_id} is being submitted already")
            self._jobs[state.prompt_id] = state
            self._ensure_thread()

    def _post(
        self,
        state: JobState,
        workflow: Mapping[str, Any],
        options: Mapping[str, Any],
        deadline: Optional[float],
    ) -> None:
        """POST the prompt; resolve a failure whose outcome is unknown by asking the server,
        posting again (same id) only once it surely does not have the prompt."""
        pid = state.prompt_id
        if deadline is None:
            deadline = time.monotonic() + self._resolve_timeout
        with self._lock:  # checks asked for from now on are not served by the answer
            served = state.check_requests
        answer = post_prompt(self._surface, workflow, pid, options, deadline=deadline,
                             heard=lambda: state.heard, stop=self._stopping)
        if isinstance(answer, PromptStatus):  # found on the server after a lost answer
            self._adopt(state, answer, polled=False)
            return
        with self._lock:
            now = time.monotonic()
            state.posted(answer, now, self._poll_min if self._polls_now() else None)
            if answer.prompt_id and answer.prompt_id != pid:
                self._rekey(state, answer.prompt_id, now, expected=answer.assigns_ids,
                            checked=answer.status is not None)
            self._wake.notify()
        if answer.status is not None:  # the surface asked already: no thread hop, no request
            self._settle(state, answer.status, served)

    def _adopt(self, state: JobState, found: PromptStatus, *, polled: bool) -> None:
        """Follow ``state`` from what the server said of it (without a POST answer)."""
        with self._lock:
            state.polled = polled
            state.posted(Submitted(state.prompt_id), time.monotonic(),
                         self._poll_min if polled or self._polls_now() else None)
            self._wake.notify()
        self._settle(state, found)

    def _rekey(self, state: JobState, server_id: str, now: float, *,
               expected: bool = False, checked: bool = False) -> None:
        """The server queued the prompt under an id of its own (a server that ignores the
        client's ``prompt_id``, or an on-prompt hook that changed it): its events carry that
        id, so follow it. Events that came before the answer were not recognised; ask the
        server at once instead of waiting for them (unless ``checked``: the answer says where
        the server has it — and no check was asked for that id meanwhile). Lock held."""
        log.log(
            logging.DEBUG if expected else logging.WARNING,
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
        if self._early_checks.pop(server_id, None) is not None or not checked:
            state.request_check(now)

    def cancel(self, state: JobState) -> bool:
        """Dequeue or interrupt the prompt (on the calling thread). A prompt not yet started
        sends nothing once deleted, so the server is asked at once, here, whether it is gone
        (``/queue``, then its history): when it is, the job has ended as cancelled by the
        time this returns. A running prompt ends with its ``execution_interrupted`` event;
        a failed check is left to the tracker thread."""
        with self._lock:
            if state.finished:
                return False
            state.cancel_requested = True
            pending = state.status == "pending"
        try:
            self._surface.cancel(state.prompt_id)
        except BaseException:
            with self._lock:
                state.cancel_requested = False  # not cancelled: a vanished prompt is lost
            raise
        if pending:
            with self._lock:
                served = state.check_requests
            try:
                findings = self._surface.status([state.prompt_id])
            except ComfyError as exc:
                log.debug("%s: checking cancelled prompt %s failed: %s",
                          self._name, state.prompt_id, exc)
            else:
                self._settle(state, findings[state.prompt_id], served)
                return True
        self._request_check([state], delay=0.0)
        return True

    def cancel_all(self) -> int:
        """Cancel every unfinished prompt of this client; how many cancels were sent. A
        failed cancel of one prompt does not stop the others (it is logged)."""
        with self._lock:
            states = [s for s in self._jobs.values() if not s.finished]
        # The waiting ones first: interrupting the running one first would let the server
        # start the next waiting prompt before its turn to be removed came (and that one
        # would run, be interrupted, and start the next). Which one runs is the server's
        # word: this client's view lags behind it until the `executing` event arrives.
        running = {s.prompt_id for s in states if s.status == "running"}
        if states:
            try:
                found = self._surface.status([s.prompt_id for s in states])
                running |= {pid for pid, f in found.items() if f.where == "running"}
            except ComfyError as exc:
                log.debug("%s: asking which prompt runs failed: %s", self._name, exc)
        states.sort(key=lambda s: s.prompt_id in running)
        cancelled = 0
        for state in states:
            try:
                if self.cancel(state):
                    cancelled += 1
            except ComfyError as exc:
                log.warning("%s: cancelling prompt %s failed: %s", self._name, state.prompt_id,
                            exc)
        return cancelled

    def progress_of(self, state: JobState) -> JobProgress:
        with self._lock:
            return state.progress()

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
        """The socket (re)opened: check every unfinished prompt, whose end may have been
        missed while it was down."""
        with self._lock:
            jobs = list(self._jobs.values())
        if reconnected and jobs:
            log.debug("%s: socket back, reconciling %d prompt(s)", self._name, len(jobs))
        self._request_check(jobs, delay=0.0)

    def check_prompt(self, prompt_id: str) -> None:
        """Ask the server about one prompt now (an event source says it ended, e.g. a v2
        job's stream). An id not followed yet — the stream of a job the deployment named
        may speak before the submit's answer reaches tracking — is kept for a while and
        checked as soon as a job is followed under it (see :meth:`_rekey`)."""
        with self._lock:
            state = self._jobs.get(prompt_id)
            if state is None:
                now = time.monotonic()
                self._early_checks = {
                    k: t for k, t in self._early_checks.items() if now - t < _EARLY_CHECK_KEEP
                }
                self._early_checks[prompt_id] = now
                return
        self._request_check([state], delay=0.0)

    def delivers_on_current_thread(self) -> bool:
        """True on a thread that delivers job endings (the listener, which runs event
        callbacks, or the tracker thread, which runs future callbacks): a job waited for
        there could never end."""
        return self.owns_current_thread() or self._on_event_thread()

    def owns_current_thread(self) -> bool:
        """True on the tracker thread (future callbacks may run there). Stays true after
        close(), which keeps the reference for this check."""
        return self._thread is threading.current_thread()

    def close(self, timeout: float = 30.0) -> None:
        """End unfinished jobs with ``ComfyConnectionError`` (at once: the thread may be busy
        in an HTTP request), then stop and join the thread."""
        self._stopping.set()
        with self._lock:
            self._closed = True
            thread = self._thread  # kept: _ensure_thread() starts nothing once closed
            left = list(self._jobs.values())
            self._wake.notify_all()
        for state in left:
            self._finish(
                state,
                error=ComfyConnectionError(
                    f"the client was closed before prompt {state.prompt_id} finished "
                    "(it may still run on the server)"
                ),
            )
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s: tracker thread still busy after %.0f s", self._name, timeout)

    # ------------------------------------------------------------------ events (listener)

    def handle_event(self, event: ev.Event) -> ev.Event:
        """The first step of every event: attribute an id-less frame to its prompt, update
        that prompt, run its ``job.on`` callbacks. Returns the (attributed) event, for the
        user's subscriptions."""
        if isinstance(event, ev.ReconnectionFailed):
            self.set_polling(True)
            return event
        if isinstance(event, ev.Status):
            self._queue_changed()
            return event
        if isinstance(event, (ev.Connected, ev.Reconnected)):
            self.on_socket_ready(isinstance(event, ev.Reconnected))
            return event
        if isinstance(event, ev.Disconnected):
            with self._lock:  # unfinished prompts are polled until the socket is back
                self._wake.notify()
            return event
        error: Optional[BaseException] = None
        with self._lock:
            event = self._attribution.attribute(event)
            prompt_id = event.prompt_id
            state = self._jobs.get(prompt_id) if prompt_id is not None else None
            if state is None or state.finished:
                return event
            error = state.apply(event, time.monotonic())
            if state.end_signal is not None:
                self._wake.notify()
        state.bus.emit(event)
        if error is not None:
            self._finish(state, error=error)
        return event

    def _queue_changed(self) -> None:
        """A ``status`` broadcast: the queue changed. A prompt deleted from the queue sends
        nothing else, so check the prompts that have not started yet (debounced)."""
        with self._lock:
            when = time.monotonic() + QUEUE_CHANGE_DELAY
            scheduled = [s.check_if_waiting(when) for s in self._jobs.values()]
            if any(scheduled):
                self._wake.notify()

    # ------------------------------------------------------------------ ending a job

    def _finish(
        self,
        state: JobState,
        *,
        result: Optional[PromptResult] = None,
        error: Optional[BaseException] = None,
    ) -> bool:
        with self._lock:
            if not state.conclude(result, error):
                return False
            self._jobs.pop(state.prompt_id, None)
            self._attribution.forget(state.prompt_id)
        state.announce()  # outside the lock: future callbacks are user code
        log.debug("%s: prompt %s ended: %s", self._name, state.prompt_id, state.status)
        return True

    def _finish_from_history(self, state: JobState, entry: HistoryEntry) -> None:
        error = history_outcome(state.prompt_id, entry, cancelled=state.cancel_requested)
        if error is not None:
            self._finish(state, error=error)
            return
        with self._lock:
            result = state.result_from(entry, self._files)
        self._finish(state, result=result)

    def _finish_live(self, state: JobState) -> None:
        """execution_success was seen but the server has no history entry (cleared at once,
        or a server that keeps none): the outputs seen on the socket are the result."""
        log.warning(
            "%s: prompt %s succeeded but has no history entry; using the outputs seen on "
            "the socket",
            self._name,
            state.prompt_id,
        )
        self._finish_from_history(state, HistoryEntry(state.prompt_id))  # an empty entry

    # ------------------------------------------------------------------ tracker thread

    def _request_check(self, jobs: Sequence[JobState], *, delay: float) -> None:
        with self._lock:
            when = time.monotonic() + delay
            for state in jobs:
                state.request_check(when)
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

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                due = self._due_jobs(time.monotonic())
                if due is None:
                    continue  # waited: look again
            try:
                self._process(due)
            except Exception:  # a bug must not kill the thread that ends every wait
                log.exception("%s: tracker step failed", self._name)
                self._retry_later(due)

    def _due_jobs(self, now: float) -> Optional[List[JobState]]:
        """The jobs to ask the server about now; None after waiting for the next one to come
        due (or for a change). Lock held."""
        due: List[JobState] = []
        later: List[Tuple[float, JobState]] = []
        polling = self._polls_now()
        for state in self._jobs.values():
            if state.submitted:
                at = state.due_at(self._watchdog, polling or state.polled)
                if at <= now:
                    due.append(state)
                else:
                    later.append((at, state))
        if not due:
            self._wake.wait(min(at for at, _ in later) - now if later else _IDLE_WAIT)
            return None
        # One GET /queue serves many prompts: bring watchdog checks that are due soon
        # forward instead of asking again a moment later.
        soon = now + self._watchdog / 2
        due.extend(s for at, s in later if s.on_watchdog(polling or s.polled) and at < soon)
        return due

    def _process(self, due: List[JobState]) -> None:
        ended = [s for s in due if s.reads_history]
        others = [s for s in due if not s.reads_history]
        for state in ended:
            self._read_history(state)
        if others:
            self._reconcile(others)

    def _read_history(self, state: JobState) -> None:
        try:
            entry = self._surface.result(state.prompt_id)
        except ComfyError as exc:
            log.debug("%s: history of %s unavailable: %s", self._name, state.prompt_id, exc)
            self._retry_later([state])
            return
        if entry is not None:
            self._finish_from_history(state, entry)
            return
        with self._lock:
            # "retry" and "check" are scheduled; a check never trusts the end signal alone
            step = state.history_missing(time.monotonic(), self._history_delays)
        if step == "live":
            self._finish_live(state)

    def _reconcile(self, states: List[JobState]) -> None:
        with self._lock:  # the requests this read serves: those made before it is sent
            served = {id(s): s.check_requests for s in states}
        try:
            findings = self._surface.status([s.prompt_id for s in states])
        except ComfyError as exc:
            log.debug("%s: reconciling failed (%s); retrying", self._name, exc)
            self._retry_later(states)
            return
        for state in states:
            finding = findings.get(state.prompt_id)
            if finding is None:
                self._retry_later([state])
            else:
                self._settle(state, finding, served[id(state)])

    def _settle(self, state: JobState, finding: PromptStatus,
                served: Optional[int] = None) -> None:
        """Act on where the server has the prompt: end it, or schedule the next check
        (``served``: the check requests the read answers, see ``JobState.still_queued``)."""
        if finding.where == "done" and finding.entry is not None:
            self._finish_from_history(state, finding.entry)
        elif finding.where == "unknown":
            self._retry_later([state])
        elif finding.where == "absent":
            if state.success_seen:
                self._finish_live(state)
            else:  # cancelled, or lost
                self._finish(state, error=state.missing_error())
        else:
            with self._lock:
                if not state.finished:
                    state.still_queued(
                        finding.where, time.monotonic(), self._poll_min, self._poll_max,
                        served,
                    )

    def _retry_later(self, states: Sequence[JobState]) -> None:
        with self._lock:
            now = time.monotonic()
            for state in states:
                state.retry_later(now)
