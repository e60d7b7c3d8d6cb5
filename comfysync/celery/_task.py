"""The Celery side: :class:`ComfyTask`, the ``comfysync.run_workflow`` task, :func:`install`.

Exactly one execution per task. Celery delivers a task again when the process running it
died (``acks_late`` and ``reject_on_worker_lost``, on by default here) and when the task asks
to be retried. Every delivery of a task therefore submits its prompt under the same id —
derived from the task id, and from how many prompts the task body submitted before it — so
a server that already has the prompt (queued, running or finished) is followed instead of
being given a second copy.

What a failure becomes:

- the server cannot be reached, times out, restarted and forgot the prompt, or answers 5xx:
  Celery retries the task, after ``uniform(0, min(retry_backoff_max, retry_backoff * 2**n))``
  seconds, at most ``max_retries`` times, then it fails with :class:`ComfyTaskError`;
- the workflow is refused or fails on the server, is interrupted, or outlives the task's
  ``timeout``: the task fails with :class:`ComfyTaskError` carrying the error's fields, not
  retried;
- the task is revoked with ``terminate=True`` or hits its soft time limit: its prompt is
  cancelled on the server (dequeued, or interrupted if it runs), then the task ends as
  Celery ends such tasks.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any, Dict, Mapping, NoReturn, Optional, Tuple, Union

from celery import Celery, Task, signals

from .._backoff import Backoff
from .._results import PromptResult
from .._tracking.job import check_timeout
from .._workflow.workflow import Workflow
from ..errors import ComfyError, PromptError, PromptTimeoutError
from ._documents import ComfyTaskError, WorkflowRun, error_fields, is_retriable
from ._process import ProcessClient, Running, Snapshot
from ._settings import Settings, read_settings

__all__ = [
    "PROGRESS",
    "SUBMITTING",
    "ComfyTask",
    "TaskPrompt",
    "install",
    "prompt_id_for",
    "settings_of",
]

log = logging.getLogger("comfysync.celery")

#: The task state published while a prompt runs (meta: node, value, max, fraction, and the
#: current/total/percent/description keys that Celery progress-bar helpers read).
PROGRESS = "PROGRESS"

#: The task state written just before a task's first prompt is posted: a later delivery of
#: the task that finds it (or ``PROGRESS``) in the result backend knows an earlier attempt may
#: have posted that prompt moments ago, and looks for it carefully before posting.
SUBMITTING = "SUBMITTING"

#: States of the task id showing that an earlier attempt reached its submit.
_EARLIER_ATTEMPT = frozenset({SUBMITTING, PROGRESS})

#: Namespace of the prompt ids derived from task ids (uuid5: same task → same id).
_PROMPT_NAMESPACE = uuid.UUID("6f6b2b8e-4a1c-5d5e-9a52-3c0e6d1f7c21")

_PathLike = Union[str, "os.PathLike[str]"]


def prompt_id_for(task_id: str, index: int = 0) -> str:
    """The prompt id of the ``index``-th prompt (from 0) a task submits: a canonical UUID
    derived from ``task_id``, the same on every delivery of the task."""
    name = task_id if index == 0 else f"{task_id}/{index}"
    return str(uuid.uuid5(_PROMPT_NAMESPACE, name))


# ---------------------------------------------------------------------- per-app state

class _AppState:
    """What one Celery app holds for comfysync: its settings (read once, in the process
    that first needs them) and the process's client."""

    def __init__(self, app: Celery) -> None:
        self._app_ref = weakref.ref(app)
        self._settings: Optional[Settings] = None
        self._lock = threading.Lock()
        self.client = ProcessClient(self.settings)
        self.tasks: Dict[str, Any] = {}  # name → task registered by install()
        _CLIENTS.add(self.client)

    def settings(self) -> Settings:
        with self._lock:
            if self._settings is None:
                app = self._app_ref()
                config = app.conf.get("comfysync") if app is not None else None
                self._settings = read_settings(config)
            return self._settings


_STATES: weakref.WeakKeyDictionary[Any, _AppState] = weakref.WeakKeyDictionary()
_CLIENTS: weakref.WeakSet[ProcessClient] = weakref.WeakSet()
_STATES_LOCK = threading.Lock()


def _state_of(app: Celery) -> _AppState:
    with _STATES_LOCK:
        state = _STATES.get(app)
        if state is None:
            state = _STATES[app] = _AppState(app)
        return state


def settings_of(app: Celery) -> Settings:
    """The app's checked comfysync settings (raises ``ValueError`` / ``TypeError`` naming
    the bad key or value)."""
    return _state_of(app).settings()


def _close_clients(**_: Any) -> None:
    """``worker_process_shutdown`` / ``worker_shutdown``: close this process's clients."""
    for client in list(_CLIENTS):
        try:
            client.close()
        except Exception:  # a shutdown hook must let the others run
            log.exception("closing a comfysync client failed")


signals.worker_process_shutdown.connect(_close_clients, weak=False)
signals.worker_shutdown.connect(_close_clients, weak=False)


# ---------------------------------------------------------------------- the task class

def _prepare(workflow: Any, values: Optional[Mapping[str, Any]]) -> Any:
    """``workflow`` with ``values`` (``{"3.seed": 42, "Positive.text": "a cat"}``) set."""
    if not values:
        return workflow
    if not isinstance(values, Mapping):
        raise ComfyTaskError(
            f"set must map '<node id or title>.<input>' to values, not {values!r}",
            {"kind": "workflow"},
        )
    wf = Workflow.load(workflow) if isinstance(workflow, (str, os.PathLike)) else Workflow(workflow)
    return wf.set_many(values)


def _checked_timeout(task: ComfyTask, timeout: object) -> Optional[float]:
    """``timeout`` as seconds (None: no limit), or the task fails: a string from a JSON
    caller or a negative number is refused before anything is sent or waited for."""
    try:
        return check_timeout(timeout)
    except (TypeError, ValueError) as exc:
        task._fail(exc, None, None)


#: The record, inside a saved prompt folder, of its files' names in the result's order.
SAVED_RECORD = ".comfysync-saved.json"


def save_once(result: PromptResult, base: Path) -> Tuple[Path, ...]:
    """Save ``result``'s files into ``<base>/<prompt id>/`` once, whatever number of
    deliveries the task gets: they are saved into a temporary folder beside it
    (``.<prompt id>.*.partial``), with a record of their names (:data:`SAVED_RECORD`), and
    the folder is renamed into place in one step. A folder already in place is complete — an
    earlier attempt saved it — so its paths are reported again and nothing is written (no
    ``-1`` copies). A partial folder left by an attempt that died stays behind, ignored."""
    final = base / result.prompt_id
    if not final.is_dir():
        base.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{result.prompt_id}.", suffix=".partial",
                                        dir=base))
        try:
            names = [p.name for p in result.save_all(partial)]
            (partial / SAVED_RECORD).write_text(
                json.dumps({"prompt_id": result.prompt_id, "files": names}), encoding="utf-8")
            try:
                os.rename(partial, final)  # refused when another attempt placed it first
            except OSError:
                if not final.is_dir():
                    raise
            else:
                return tuple(final / name for name in names)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
    return _saved_before(result, final)


def _saved_before(result: PromptResult, final: Path) -> Tuple[Path, ...]:
    """The paths an earlier attempt saved into ``final``, from its record."""
    try:
        record = json.loads((final / SAVED_RECORD).read_text(encoding="utf-8"))
        names = record["files"]
        valid = (record.get("prompt_id") == result.prompt_id and isinstance(names, list)
                 and len(names) == len(result.files)
                 and all(isinstance(n, str) and (final / n).is_file() for n in names))
    except (OSError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise ComfyTaskError(
            f"{final} already exists but is not a complete save of prompt {result.prompt_id} "
            f"(no valid {SAVED_RECORD}); move it away and retry the task",
            {"kind": "saving", "prompt_id": result.prompt_id, "directory": str(final)},
        )
    log.info("files of prompt %s already saved in %s by an earlier attempt", result.prompt_id,
             final)
    return tuple(final / n for n in names)


class TaskPrompt:
    """A prompt submitted by a :class:`ComfyTask` (``self.submit(...)``).

    ``wait()`` follows it to its end while publishing the task's ``PROGRESS`` state, cancels
    it on the server when the task is revoked or runs out of time, and turns its failure into
    a Celery retry or a :class:`ComfyTaskError`.
    """

    def __init__(self, task: ComfyTask, running: Running, settings: Settings) -> None:
        self._task = task
        self._running = running
        self._settings = settings
        self._task_id: Optional[str] = task.request.id
        self._progress_on = True

    @property
    def prompt_id(self) -> str:
        return self._running.prompt_id

    @property
    def server(self) -> Optional[str]:
        """URL of the server the prompt is on (None while a pool still holds it)."""
        return self._running.server()

    def cancel(self) -> None:
        """Dequeue or interrupt the prompt on its server."""
        self._running.cancel()

    def wait(
        self, timeout: Optional[float] = None, save_to: Optional[_PathLike] = None
    ) -> WorkflowRun:
        """Block until the prompt ends and return the :class:`WorkflowRun`. After ``timeout``
        seconds the prompt is cancelled and :class:`ComfyTaskError` (``kind="timeout"``)
        raised.

        With ``save_to``, the files are saved into ``<save_to>/<prompt id>/``: workers on
        several machines and servers write into one shared folder, and servers name their
        files alike (``ComfyUI_00001_.png`` on each), so one folder per prompt is what keeps
        two tasks from writing the same path. The folder appears complete or not at all (see
        :func:`save_once`), so a redelivered task reuses what an earlier attempt saved."""
        result = self._result(_checked_timeout(self._task, timeout))
        saved: Tuple[Path, ...] = ()
        if save_to is not None:
            try:
                saved = save_once(result, Path(save_to).expanduser())
            except ComfyError as exc:
                self._task._fail(exc, self._running.prompt_id, self.server)
        return WorkflowRun(result, self.server, saved)

    def _result(self, timeout: Optional[float]) -> PromptResult:
        """The prompt's result, publishing progress meanwhile (see :meth:`wait`)."""
        running, interval = self._running, self._settings.progress_interval
        deadline = None if timeout is None else time.monotonic() + timeout
        published: Optional[Snapshot] = None
        board = self._task._client().board
        try:
            while True:
                step = max(interval, 0.01)
                if deadline is not None:
                    step = min(step, max(0.0, deadline - time.monotonic()))
                try:
                    return running.future.result(timeout=step)
                except concurrent.futures.TimeoutError:
                    pass
                if deadline is not None and time.monotonic() >= deadline:
                    raise PromptTimeoutError(
                        f"prompt {running.prompt_id} did not finish within {timeout} s; "
                        "it was cancelled",
                        prompt_id=running.prompt_id,
                        timeout=timeout,
                    ) from None
                snapshot = board.latest(running.prompt_id)
                if snapshot is not None and snapshot != published:
                    self._publish(snapshot)
                    published = snapshot
        except PromptError as exc:
            if isinstance(exc, PromptTimeoutError):
                self._cancel_quietly("timed out")
            self._task._fail(exc, running.prompt_id, self.server)
        except ComfyError as exc:
            self._task._fail(exc, running.prompt_id, self.server)
        except BaseException as exc:
            # SoftTimeLimitExceeded, or SystemExit from the SIGTERM of a revoke(terminate=True)
            self._cancel_quietly(type(exc).__name__)
            raise
        finally:
            board.forget(running.prompt_id)

    def _cancel_quietly(self, why: str) -> None:
        log.info("task %s %s: cancelling prompt %s on %s", self._task_id, why,
                 self._running.prompt_id, self.server)
        try:
            self._running.cancel()
        except Exception as exc:  # the task's own failure matters more than this one
            log.warning("could not cancel prompt %s: %s", self._running.prompt_id, exc)

    def _publish(self, snapshot: Snapshot) -> None:
        if self._task_id is None or not self._progress_on:
            return  # called directly (no task id), or the app cannot store states
        fraction = snapshot.fraction
        meta: Dict[str, Any] = {
            "prompt_id": self._running.prompt_id,
            "server": self.server,
            "node": snapshot.node,
            "value": snapshot.value,
            "max": snapshot.max,
            "fraction": fraction,
            # what celery-progress style helpers read
            "pending": False,
            "current": snapshot.value,
            "total": snapshot.max,
            "percent": round(fraction * 100.0, 2),
            "description": f"node {snapshot.node}" if snapshot.node is not None else "",
        }
        try:
            self._task.update_state(task_id=self._task_id, state=PROGRESS, meta=meta)
        except Exception as exc:  # no result backend, or it is down: the render goes on
            self._progress_on = False
            log.warning("task %s: cannot publish its PROGRESS state (%s); no more tries for "
                        "prompt %s", self._task_id, exc, self._running.prompt_id)


class ComfyTask(Task):  # type: ignore[misc]  # Celery ships no type information
    """Base class for tasks that run ComfyUI workflows::

        @app.task(base=comfysync.celery.ComfyTask, bind=True)
        def render(self, wf):
            return self.run_workflow(wf).to_json()

    ``self.run_workflow(...)`` / ``self.submit(...)`` use the worker process's client (made
    from ``app.conf.comfysync`` on first use). Each prompt's id derives from the task id and
    the number of prompts the task submitted before it, so a redelivered or retried task
    finds its prompts again instead of running them twice — keep the order of the calls the
    same on every run of the task. ``acks_late`` and ``reject_on_worker_lost`` are on.
    """

    acks_late = True
    reject_on_worker_lost = True
    throws = (ComfyTaskError,)

    def _client(self) -> Any:
        return _state_of(self.app).client.get()

    def _next_prompt_id(self) -> str:
        request = self.request
        if request.id is None:  # called directly: no task id to derive from
            return str(uuid.uuid4())
        index = getattr(request, "_comfysync_prompts", 0)
        request._comfysync_prompts = index + 1
        return prompt_id_for(request.id, index)

    def _may_have_run(self) -> bool:
        """Whether an earlier attempt of this task may have posted its prompts: Celery says
        the message was delivered before, the task is being retried, or the result backend
        holds a state an earlier attempt wrote before posting. Asked once per run of the
        task; a first run then records :data:`SUBMITTING` (the one extra write per task that
        lets a first delivery post at once, without the careful lookup's second)."""
        request = self.request
        known = getattr(request, "_comfysync_earlier", None)
        if known is not None:
            return bool(known)
        delivery = request.delivery_info or {}
        earlier = bool(delivery.get("redelivered")) or bool(request.retries)
        if not earlier:
            try:
                earlier = self.AsyncResult(request.id).state in _EARLIER_ATTEMPT
            except Exception as exc:  # no result backend: Celery's own flags only
                log.debug("task %s: cannot read its state (%s)", request.id, exc)
        try:
            self.update_state(task_id=request.id, state=SUBMITTING)
        except Exception as exc:  # no result backend, or it is down: the render goes on
            log.debug("task %s: cannot record its state (%s)", request.id, exc)
        request._comfysync_earlier = earlier
        if earlier:
            log.info("task %s may have run before: looking for its prompts carefully",
                     request.id)
        return earlier

    def submit(
        self,
        workflow: Any,
        *,
        set: Optional[Mapping[str, Any]] = None,
        prompt_id: Optional[str] = None,
    ) -> TaskPrompt:
        """Queue ``workflow`` (an API-format dict, a ``Workflow`` or a JSON file path on the
        worker) with the inputs of ``set`` changed, and return its :class:`TaskPrompt`.
        ``prompt_id`` overrides the id derived from the task."""
        settings = _state_of(self.app).settings()
        client = self._client()
        pid = prompt_id if prompt_id is not None else self._next_prompt_id()
        try:
            prepared = _prepare(workflow, set)
        except ComfyError as exc:
            self._fail(exc, pid, None)
        careful = self.request.id is not None and self._may_have_run()
        client.board.watch(pid)
        try:
            running = client.start(prepared, pid, careful=careful)
        except ComfyError as exc:
            client.board.forget(pid)
            self._fail(exc, pid, None)
        except BaseException:
            client.board.forget(pid)
            raise
        return TaskPrompt(self, running, settings)

    def run_workflow(
        self,
        workflow: Any,
        *,
        set: Optional[Mapping[str, Any]] = None,
        save_to: Optional[_PathLike] = None,
        timeout: Optional[float] = None,
        prompt_id: Optional[str] = None,
    ) -> WorkflowRun:
        """Run ``workflow`` and return its :class:`WorkflowRun` (``.to_json()`` for a task
        result): :meth:`submit`, then :meth:`TaskPrompt.wait`. A bad ``timeout`` fails the
        task before anything is sent."""
        _checked_timeout(self, timeout)
        return self.submit(workflow, set=set, prompt_id=prompt_id).wait(timeout, save_to)

    def _fail(
        self, exc: BaseException, prompt_id: Optional[str], server: Optional[str]
    ) -> NoReturn:
        """Retry the task (server trouble) or fail it with :class:`ComfyTaskError`."""
        if isinstance(exc, ComfyTaskError):
            raise exc
        fields = error_fields(exc, prompt_id=prompt_id, server=server)
        error = ComfyTaskError(str(exc), fields)
        if is_retriable(exc):
            settings = _state_of(self.app).settings()
            retries = self.request.retries
            if not self.request.called_directly and retries < settings.max_retries:
                backoff = Backoff(settings.retry_backoff, settings.retry_backoff_max)
                backoff.failures = retries  # the task's retries so far are the schedule's n
                countdown = backoff.next_delay()
                log.warning("task %s: %s; retry %d/%d in %.1f s", self.request.id, exc,
                            retries + 1, settings.max_retries, countdown)
                raise self.retry(exc=error, countdown=countdown,
                                 max_retries=settings.max_retries) from exc
        raise error from exc


# ---------------------------------------------------------------------- install

def _run_workflow(
    self: ComfyTask,
    workflow: Any,
    set: Optional[Mapping[str, Any]] = None,
    save_to: Optional[str] = None,
    timeout: Optional[float] = None,
) -> Dict[str, Any]:
    """Run a ComfyUI workflow and return its result document (see ``WorkflowRun.to_json``)."""
    return self.run_workflow(workflow, set=set, save_to=save_to, timeout=timeout).to_json()


def install(app: Celery, *, name: str = "comfysync.run_workflow", **options: Any) -> Any:
    """Register the ready task ``comfysync.run_workflow(workflow, set=None, save_to=None,
    timeout=None)`` on ``app`` and return it (the same task when called again). ``options``
    go to ``app.task`` (``queue``, ``soft_time_limit``, ``rate_limit``, ...). Creates no
    client: each worker process makes its own on its first task."""
    state = _state_of(app)
    task = state.tasks.get(name)
    if task is None:
        task = app.task(name=name, base=ComfyTask, bind=True, **options)(_run_workflow)
        state.tasks[name] = task
    return task
