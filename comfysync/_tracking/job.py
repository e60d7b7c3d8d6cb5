"""What users hold while a prompt runs: :class:`PromptJob`, the one job class.

A ``PromptJob`` is a thin handle on the tracker's per-prompt record
(:class:`~comfysync._tracking.state.JobState`): it reads the outcome that the tracker stores there
and waits on its ``threading.Event``; everything that changes a job goes through the tracker
(:class:`JobControl`), under its lock.
"""

from __future__ import annotations

import math
import numbers
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Dict, Iterator, Optional, Protocol

from .. import events as ev
from .._dispatch import Callback, Subscription
from .._results import PromptResult
from .._types import JobStatus
from ..errors import PromptTimeoutError
from .progress import JobProgress
from .state import JobState

__all__ = ["JobControl", "JobProgress", "PromptJob", "check_timeout"]


def check_timeout(timeout: object, name: str = "timeout") -> Optional[float]:
    """``timeout`` as the seconds to give ``threading`` waits: None (no limit) or a
    non-negative real number (not a bool). Checked before anything is sent, so that a bad
    value never leaves a prompt queued behind a ``TypeError``; infinity, and anything longer
    than ``threading.TIMEOUT_MAX``, means no limit."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(
            f"{name} must be None or a number of seconds, not {type(timeout).__name__} "
            f"({timeout!r})"
        )
    seconds = float(timeout)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(
            f"{name} must be a non-negative number of seconds (None waits without limit), "
            f"not {timeout!r}"
        )
    return None if seconds > threading.TIMEOUT_MAX else seconds


class JobControl(Protocol):
    """What a job asks of the tracker that follows it (the tracker implements it)."""

    def progress_of(self, state: JobState) -> JobProgress: ...

    def cancel(self, state: JobState) -> bool: ...

    def delivers_on_current_thread(self) -> bool: ...


class PromptJob:
    """A submitted (or attached) prompt: its status, progress, events, result.

    ``wait()`` blocks until it ends and returns the :class:`PromptResult` or raises
    ``PromptExecutionError`` / ``PromptInterruptedError`` / ``PromptLostError``;
    ``wait(timeout)`` raises ``PromptTimeoutError`` on expiry and may be called again.
    ``future`` is the same outcome as a ``concurrent.futures.Future``.
    """

    def __init__(self, state: JobState, tracker: JobControl, *, future: bool = True) -> None:
        self._state = state
        self._tracker = tracker
        self._has_future = future  # False only for the seed-compatible deferred handle

    @property
    def future(self) -> Future[PromptResult]:
        """The outcome as a ``concurrent.futures.Future`` (resolved when the job ends; its
        callbacks run on the thread that ended it). ``future.cancel()`` does not cancel the
        prompt — the future is running from the start; use :meth:`cancel`.

        None only on the handle of the seed-compatible ``submit_workflow(wf,
        return_future=False)``, as in comfy-api-client (use ``client.fetch_results``)."""
        if not self._has_future:
            return None  # type: ignore[return-value]  # the seed API's documented shape
        return self._state.future

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
    def status(self) -> JobStatus:
        """``"pending"``, ``"running"``, ``"success"``, ``"error"``, ``"interrupted"`` or
        ``"lost"``."""
        return self._state.status

    @property
    def progress(self) -> JobProgress:
        return self._tracker.progress_of(self._state)

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
        callback: it blocks the listener thread that delivers this prompt's events.
        ``timeout`` must be None or a non-negative number (``TypeError`` / ``ValueError``
        otherwise)."""
        seconds = check_timeout(timeout)
        state = self._state
        if not state.done.is_set() and self._tracker.delivers_on_current_thread():
            raise RuntimeError(
                "job.wait() called from an event or future callback, on the thread that "
                "would deliver the job's end: use job.future.add_done_callback(...), or "
                "wait on another thread"
            )
        if not state.done.wait(seconds):
            raise self._timeout_error(seconds)
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

    def events(self, timeout: Optional[float] = None) -> Iterator[ev.Event]:
        """This job's events, in arrival order, from this call on (none is lost between
        ``next()`` calls: they are queued as they arrive), for scripts that prefer a loop to
        callbacks::

            for event in job.events(timeout=600):
                if isinstance(event, events.Progress):
                    fraction = event.value / event.max
            result = job.wait()

        The iteration ends after the job's final event (its outcome is then ``job.wait()``'s);
        it raises ``PromptTimeoutError`` when the job has not ended ``timeout`` seconds after
        this call. Do not iterate on the listener thread (in a callback)."""
        seconds = check_timeout(timeout)
        if not self._state.done.is_set() and self._tracker.delivers_on_current_thread():
            raise RuntimeError(
                "job.events() iterated in an event or future callback, on the thread that "
                "delivers them: use job.on(...) there"
            )
        arrived: queue.SimpleQueue[Optional[ev.Event]] = queue.SimpleQueue()
        subscription = self._state.bus.on("*", arrived.put)
        # None marks the end: the future resolves after the job's last event was delivered
        self._state.future.add_done_callback(lambda _: arrived.put(None))
        deadline = None if seconds is None else time.monotonic() + seconds
        return self._drain(arrived, subscription, deadline, seconds)

    def _drain(
        self,
        arrived: queue.SimpleQueue[Optional[ev.Event]],
        subscription: Subscription,
        deadline: Optional[float],
        seconds: Optional[float],
    ) -> Iterator[ev.Event]:
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    event = arrived.get(timeout=left)
                except queue.Empty:
                    raise self._timeout_error(seconds) from None
                if event is None:  # an event delivered while the job ended may follow
                    while True:
                        try:
                            late = arrived.get_nowait()
                        except queue.Empty:
                            return
                        if late is not None:
                            yield late
                yield event
        finally:
            subscription.cancel()

    def _timeout_error(self, seconds: Optional[float]) -> PromptTimeoutError:
        state = self._state
        return PromptTimeoutError(
            f"prompt {state.prompt_id} did not finish within {seconds} s "
            f"(status {state.status}; it keeps running unless cancelled with job.cancel())",
            prompt_id=state.prompt_id,
            timeout=seconds,
            job=self,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.prompt_id} {self.status}>"
