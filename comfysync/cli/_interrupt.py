"""Ctrl-C (or SIGTERM) while ``comfysync run`` submits and waits: cancel the prompt, never
lose track of it.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be. Raised
inside ``api.submit()`` it could strike after the prompt was posted but before we learned its
id, leaving it running on the server. So while a prompt is submitted and awaited, SIGINT only
*sets a flag* (:class:`CtrlC`); :func:`wait_interruptibly` checks the flag between short waits
and raises ``KeyboardInterrupt`` at a point where the job is known and can be cancelled.
A second Ctrl-C raises at once, for a user who does not want to wait for the cancellation.
SIGTERM (``docker stop``, ``timeout``, a CI cancelling a job) is handled the same way and
raises :class:`~comfysync.cli.Terminated` (a ``KeyboardInterrupt``; exit code 143).
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any, Dict, Optional, Type

from .. import errors
from .._results import PromptResult
from .._tracking.job import PromptJob
from . import Terminated

__all__ = ["CtrlC", "wait_interruptibly"]

#: How long one ``job.wait`` lasts, i.e. how soon a Ctrl-C is acted upon. The wait itself
#: returns the moment the prompt ends, so this adds no latency to a run.
WAIT_SLICE = 0.1


#: The signals that ask ``run`` to stop: Ctrl-C and a polite kill.
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class CtrlC:
    """Context manager: inside it, the first SIGINT or SIGTERM sets :attr:`pressed` (and
    :attr:`signum`) instead of raising.

    Only the main thread can own signal handlers; elsewhere (``cli.main`` called from a
    worker thread) it does nothing and ``KeyboardInterrupt`` behaves as usual.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    @property
    def pressed(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.signum is not None:  # the second signal: stop now
            raise _interrupt_for(signum)
        self.signum = signum

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` (:class:`~comfysync.cli.Terminated` for SIGTERM) if
        a signal asked to stop."""
        if self.signum is not None:
            raise _interrupt_for(self.signum)


def wait_interruptibly(job: PromptJob, timeout: Optional[float], ctrl_c: CtrlC) -> PromptResult:
    """``job.wait(timeout)``, in slices so a Ctrl-C recorded by ``ctrl_c`` is acted upon.

    Raises ``KeyboardInterrupt`` after Ctrl-C, ``PromptTimeoutError`` after ``timeout``
    seconds, or the job's own error.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ctrl_c.check()
        step = WAIT_SLICE
        if deadline is not None:
            step = max(0.0, min(step, deadline - time.monotonic()))
        try:
            return job.wait(timeout=step)
        except errors.PromptTimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.PromptTimeoutError(
                    f"prompt {job.prompt_id} did not finish within {timeout:g} s",
                    prompt_id=job.prompt_id, timeout=timeout, job=job) from None
