"""``run_workflow(..., progress=True)``: a progress bar and, in a notebook, a live preview.

The bar comes from ``tqdm.auto`` (a widget in Jupyter, text on a terminal's stderr); in a
Jupyter kernel the prompt's latest preview image is shown once and updated in place through
an IPython display handle. Both are optional dependencies, imported only here and only when
asked for.

Everything is drawn on the thread that called ``run_workflow`` while it waits, never on the
listener thread that delivers events: a kernel routes output by the thread (and cell) it
comes from, and the listener may have been started by an earlier cell. The state drawn is
the job's own progress snapshot (``job.progress``), which the tracker keeps from every event
of the prompt, so nothing that arrived before the bar appeared is missed; the job's events
only wake the drawing loop early.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from typing import Any, Callable, Optional, TypeVar

from . import events as ev
from ._dispatch import Subscription
from ._tracking.job import JobProgress, PromptJob
from .errors import ComfyError

__all__ = ["ProgressDisplay", "in_notebook"]

log = logging.getLogger("comfysync.notebook")

_T = TypeVar("_T")
#: Longest pause between two looks at the job when no event wakes the loop.
_TICK = 0.25
#: Shortest pause between two redraws (events may come hundreds of times a second).
_MIN_REDRAW = 0.1


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a preview image can be shown). IPython is never
    imported here: when it was not imported already, this is no kernel."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython without get_ipython, or one failing: not a kernel we know
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class _View:
    """The bar and the preview of one wait (created on first use, closed once)."""

    def __init__(self, tqdm: Any, preview: bool) -> None:
        self._tqdm = tqdm
        self._preview = preview
        self._bar: Any = None
        self._handle: Any = None
        self._shown: Optional[ev.Preview] = None
        self._prompt_id: Optional[str] = None
        self._broken = False

    def draw(self, job: PromptJob) -> None:
        """Show the job's progress now; a display that fails is logged once and given up
        (the wait goes on: drawing must never change the outcome)."""
        if self._broken:
            return
        try:
            self.show(job.prompt_id, job.progress)
        except Exception as exc:
            self._broken = True
            log.warning("progress display failed, going on without it: %s", exc)

    def show(self, prompt_id: str, progress: JobProgress) -> None:
        if self._bar is None:  # tqdm puts ", " before the postfix: it follows the time
            self._bar = self._tqdm(total=1, unit="node", dynamic_ncols=True,
                                   desc=f"prompt {prompt_id[:8]} ",
                                   bar_format="{desc}{percentage:3.0f}%|{bar}| {elapsed}"
                                              "{postfix}")
        bar = self._bar
        if prompt_id != self._prompt_id:  # a pool may run the job again on another server
            self._prompt_id = prompt_id
            bar.set_description_str(f"prompt {prompt_id[:8]} ", refresh=False)
        total = max(progress.nodes_total, 1)
        bar.total = total
        bar.n = round(progress.fraction * total, 3)
        step = ""
        if progress.node is not None:
            step = f"node {progress.node}"
            if progress.max > 0:
                step += f" {progress.value:g}/{progress.max:g}"
        bar.set_postfix_str(
            f"{min(progress.nodes_done, total)}/{total} nodes" + (f", {step}" if step else ""),
            refresh=False,
        )
        bar.refresh()
        if self._preview and progress.preview is not None and progress.preview is not self._shown:
            self._show_preview(progress.preview)

    def _show_preview(self, preview: ev.Preview) -> None:
        display = importlib.import_module("IPython.display").display
        bundle = preview._repr_mimebundle_()
        if len(bundle) < 2:  # only text/plain: this image type cannot be shown
            return
        self._shown = preview
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def finish(self, ok: bool, status: str) -> None:
        bar = self._bar
        if bar is None:
            return
        if ok:
            bar.n = bar.total
            bar.set_postfix_str(f"{bar.total}/{bar.total} nodes, {status}", refresh=False)
        else:
            bar.set_postfix_str(status, refresh=False)
        bar.refresh()
        bar.close()  # a notebook bar left short of its total turns red


class ProgressDisplay:
    """The progress shown while one ``run_workflow`` call waits.

    Made before anything is sent, so that a missing ``tqdm`` is an ``ImportError`` that
    leaves no prompt behind; :meth:`wait` then draws until the job ends.
    """

    def __init__(self) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise ImportError(
                'run_workflow(progress=True) needs tqdm: pip install "comfysync[notebook]" '
                "(or pip install tqdm)"
            ) from None
        self._tqdm = tqdm

    def wait(
        self,
        wait: Callable[[Optional[float]], _T],
        done: Callable[[], bool],
        current_job: Callable[[], Optional[PromptJob]],
        timeout: Optional[float],
    ) -> _T:
        """Draw the progress of ``current_job()`` (None while no server took it yet; another
        job when a pool sends it elsewhere) until ``done()`` or ``timeout`` seconds, then
        return ``wait(seconds left)`` — the caller's own wait, which returns the result or
        raises exactly as without a display."""
        deadline = None if timeout is None else time.monotonic() + timeout
        view = _View(self._tqdm, preview=in_notebook())
        wake = threading.Event()
        watched: Optional[PromptJob] = None
        subscription: Optional[Subscription] = None
        last_draw = 0.0
        outcome = "failed"
        try:
            while not done():
                job = current_job()
                if job is not watched:
                    if subscription is not None:
                        subscription.cancel()
                    watched, subscription = job, _subscribe(job, wake)
                now = time.monotonic()
                if job is not None and now - last_draw >= _MIN_REDRAW:
                    view.draw(job)
                    last_draw = now
                left = None if deadline is None else deadline - now
                if left is not None and left <= 0:
                    break
                wake.wait(_TICK if left is None else min(_TICK, left))
                wake.clear()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            job = current_job()
            if job is not None:
                view.draw(job)  # the last preview and counts
            result = wait(left)
            outcome = "done"
            return result
        except BaseException as exc:  # the bar says how it ended (Ctrl-C included)
            outcome = type(exc).__name__
            raise
        finally:
            if subscription is not None:
                subscription.cancel()
            try:
                view.finish(outcome == "done", outcome)
            except Exception as exc:  # drawing must never hide the outcome
                log.debug("could not close the progress display: %s", exc)


def _subscribe(job: Optional[PromptJob], wake: threading.Event) -> Optional[Subscription]:
    if job is None:
        return None
    try:
        return job.on("*", lambda _event: wake.set())
    except ComfyError:  # the job ended meanwhile: the loop sees it on its next look
        return None
