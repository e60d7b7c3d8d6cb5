"""What users hold while a prompt runs: :class:`PromptJob` and its :class:`JobProgress`.

A ``PromptJob`` is a thin handle on the tracker's per-prompt record
(:class:`~comfysync._tracking.state.JobState`): it reads the outcome that the tracker stores there
and waits on its ``threading.Event``; everything that changes a job goes through the
:class:`~comfysync._tracking.tracker.Tracker`, under its lock.
"""

from __future__ import annotations

import math
import numbers
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from attrs import define, field

from .. import events as ev
from .._dispatch import Callback, Subscription
from .._results import PromptResult
from .._types import JobStatus
from ..errors import PromptTimeoutError

if TYPE_CHECKING:
    from .state import JobState
    from .tracker import Tracker

__all__ = ["JobProgress", "JobHandle", "PromptJob", "check_timeout"]


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


class JobHandle:
    """Everything a handle on a submitted prompt offers except ``future``: status, progress,
    events, ``wait``, ``cancel``. :class:`PromptJob` adds the future; the seed-compatible
    ``submit_workflow(wf, return_future=False)`` returns a handle whose ``future`` is None
    (``comfysync._compat``), which is why the future is not declared here."""

    def __init__(self, state: JobState, tracker: Tracker) -> None:  # made by Tracker.submit
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
            raise PromptTimeoutError(
                f"prompt {state.prompt_id} did not finish within {timeout} s "
                f"(status {state.status}; it keeps running unless cancelled with "
                "job.cancel())",
                prompt_id=state.prompt_id,
                timeout=seconds,
                job=self if isinstance(self, PromptJob) else PromptJob(state, self._tracker),
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
        return f"<{type(self).__name__} {self.prompt_id} {self.status}>"


class PromptJob(JobHandle):
    """A submitted prompt (``api.submit(workflow)``): its status, progress, events, result.

    ``wait()`` blocks until it ends and returns the :class:`PromptResult` or raises
    ``PromptExecutionError`` / ``PromptInterruptedError`` / ``PromptLostError``;
    ``wait(timeout)`` raises ``PromptTimeoutError`` on expiry and may be called again.
    ``future`` is the same outcome as a ``concurrent.futures.Future``.
    """

    @property
    def future(self) -> Future[PromptResult]:
        """The outcome as a ``concurrent.futures.Future`` (resolved when the job ends; its
        callbacks run on the thread that ended it). ``future.cancel()`` does not cancel the
        prompt — the future is running from the start; use :meth:`cancel`."""
        return self._state.future
