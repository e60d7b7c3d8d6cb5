"""In-memory stand-ins for ComfyApi, to test ComfyPool's own logic without servers.

A :class:`Hub` plays every server: it decides whether a server refuses connections, keeps
the jobs each one was given (the test completes them by hand, or the hub does it at once in
``auto`` mode) and lets the test wait for submissions with a condition, never with sleeps.
A client made with ``tracker="http"`` (passed through the pool) has no socket, like the real
one: ``connected`` stays False, so the pool checks its health with ``poll_status``.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

from comfysync import events as ev
from comfysync._results import PromptResult
from comfysync.errors import ComfyConnectionError, PromptLostError

WAIT = 20.0  # upper bound of every wait (generous for a loaded CI machine); none waits it out


def result_for(prompt_id: str, text: str) -> PromptResult:
    return PromptResult(
        prompt_id=prompt_id,
        status="success",
        outputs={"1": {"text": [text]}},
        text={"1": [text]},
    )


class FakeSub:
    def __init__(self, api: FakeApi, key: str, callback: Callable[[Any], None]) -> None:
        self.api, self.key, self.callback = api, key, callback

    def cancel(self) -> None:
        with self.api.hub.cond:
            if self in self.api.subs:
                self.api.subs.remove(self)


class FakeJob:
    def __init__(self, api: FakeApi, workflow: Any, kwargs: Dict[str, Any]) -> None:
        self.api = api
        self.workflow = workflow
        self.kwargs = kwargs
        self.number = next(api.hub.ids)
        self.prompt_id = str(kwargs.get("prompt_id") or f"p{self.number}")
        self.future: Future[PromptResult] = Future()
        self.future.set_running_or_notify_cancel()
        self.cancelled = False

    @property
    def text(self) -> str:
        return str(self.workflow.get("text", "")) if isinstance(self.workflow, dict) else ""

    def succeed(self) -> None:
        self.future.set_result(result_for(self.prompt_id, self.text))

    def fail(self, error: BaseException) -> None:
        self.future.set_exception(error)

    def cancel(self) -> bool:
        """Like ``PromptJob.cancel``: the server dequeues or interrupts it (recorded)."""
        hub = self.api.hub
        with hub.cond:
            self.cancelled = True
            hub.removals.append(("cancel", self.api.url, [self.prompt_id]))
            hub.cond.notify_all()
        return True


class FakeApi:
    def __init__(self, hub: Hub, url: str, **kwargs: Any) -> None:
        self.hub = hub
        self.url = url
        self.kwargs = kwargs
        self.polling = kwargs.get("tracker") == "http"
        self.connected = False  # a live socket (never, when polling)
        self.closed = False
        self.subs: List[FakeSub] = []
        self.jobs: List[FakeJob] = []
        self.deleted: List[str] = []
        self.interrupted: List[str] = []

    def _answer_or_refuse(self) -> None:
        """Every request to a server the test put in ``hub.refusing`` is refused."""
        if self.url in self.hub.refusing:
            raise ComfyConnectionError(f"connection refused by {self.url}", url=self.url)

    def connect(self, timeout: float = 10.0) -> None:
        with self.hub.cond:
            self.hub.connects.append(self.url)
            self.hub.cond.notify_all()
            self._answer_or_refuse()
            self.connected = not self.polling

    def poll_status(self, timeout: float = 1.0) -> ev.Status:
        """The pool's health ping: refused like everything else, else a ``status`` event."""
        with self.hub.cond:
            self.hub.pings.append(self.url)
            self.hub.cond.notify_all()
            self._answer_or_refuse()
            status = ev.Status(queue_remaining=len([j for j in self.jobs if not j.future.done()]))
        self.emit(status)
        return status

    def close(self) -> None:
        with self.hub.cond:
            self.closed = True
            self.hub.cond.notify_all()
            open_jobs = [j for j in self.jobs if not j.future.done()]
        for job in open_jobs:  # like Tracker.close()
            job.fail(ComfyConnectionError("the client was closed"))

    def on(self, key: Any, callback: Callable[[Any], None]) -> FakeSub:
        sub = FakeSub(self, ev.normalize_key(key), callback)
        with self.hub.cond:
            self.subs.append(sub)
        return sub

    def emit(self, event: ev.Event) -> None:
        with self.hub.cond:
            subs = [s for s in self.subs if s.key in (event.type, "*")]
        for sub in subs:
            sub.callback(event)

    def submit(self, workflow: Any, **kwargs: Any) -> FakeJob:
        hub = self.hub
        with hub.cond:
            self._answer_or_refuse()
            error = hub.submit_errors.get(self.url)
            if error is not None:
                raise error
            job = FakeJob(self, workflow, kwargs)
            self.jobs.append(job)
            hub.jobs.append(job)
            hub.cond.notify_all()
            if self.url in hub.lose_answers:  # queued there, but the answer never came
                hub.lose_answers.discard(self.url)
                raise ComfyConnectionError("the answer was lost", url=self.url, request_sent=True)
        if callable(hub.auto):
            hub.auto(job)
        elif hub.auto:
            job.succeed()
        return job

    def get_models(self, folder: str) -> List[str]:
        self._answer_or_refuse()
        return list(self.hub.models.get((self.url, folder), []))

    def delete_from_queue(self, prompt_ids: Any) -> None:
        self._answer_or_refuse()
        with self.hub.cond:
            self.deleted.extend(prompt_ids)
            self.hub.removals.append(("delete", self.url, list(prompt_ids)))
            self.hub.cond.notify_all()

    def interrupt(self, prompt_id: Optional[str] = None) -> None:
        self._answer_or_refuse()
        with self.hub.cond:
            self.interrupted.append(str(prompt_id))
            self.hub.removals.append(("interrupt", self.url, [str(prompt_id)]))
            self.hub.cond.notify_all()

    def attach(self, prompt_id: str, *, settle: bool = True) -> FakeJob:
        """The job of this server with that id (any client of it), like ``api.attach``."""
        self._answer_or_refuse()
        with self.hub.cond:
            self.hub.lookups.append((self.url, prompt_id, settle))
        with self.hub.cond:
            for job in self.hub.jobs:
                if job.api.url == self.url and job.prompt_id == prompt_id:
                    self.hub.attached.append((self.url, prompt_id))
                    return job
        raise PromptLostError(f"{self.url} does not have {prompt_id}", prompt_id=prompt_id)


class Hub:
    """All fake servers of one test. ``auto``: True completes every job as it is submitted;
    a callable ``auto(job)`` decides each job's outcome then."""

    def __init__(self, auto: Union[bool, Callable[[FakeJob], None]] = False) -> None:
        self.cond = threading.Condition()
        self.auto = auto
        self.apis: List[FakeApi] = []
        self.jobs: List[FakeJob] = []
        self.connects: List[str] = []
        self.pings: List[str] = []
        self.refusing: Set[str] = set()
        self.submit_errors: Dict[str, BaseException] = {}
        self.removals: List[Tuple[str, str, List[str]]] = []  # (what, url, prompt ids)
        self.lose_answers: Set[str] = set()  # servers whose next submit answer is lost
        self.attached: List[Tuple[str, str]] = []
        self.lookups: List[Tuple[str, str, bool]] = []  # (url, prompt id, settle)
        self.models: Dict[Tuple[str, str], List[str]] = {}
        self.ids = iter(range(1, 1_000_000))

    def factory(self, url: str, **kwargs: Any) -> FakeApi:
        api = FakeApi(self, url, **kwargs)
        with self.cond:
            self.apis.append(api)
        return api

    def api(self, url: str) -> FakeApi:
        """The newest client of ``url`` (the pool replaces a client after a failure)."""
        with self.cond:
            return [a for a in self.apis if a.url == url][-1]

    def wait_jobs(self, count: int, timeout: float = WAIT) -> List[FakeJob]:
        """Block until at least ``count`` jobs were submitted; the first ``count``."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.jobs) >= count, timeout)
            assert ok, f"only {len(self.jobs)} of {count} jobs were submitted"
            return list(self.jobs[:count])

    def wait_until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        """Block until ``predicate()`` (about hub state: connects, pings, closed clients)
        holds; every such change notifies ``cond``."""
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), "condition not reached in time"

    def open_jobs(self, url: Optional[str] = None) -> List[FakeJob]:
        with self.cond:
            return [
                j for j in self.jobs if not j.future.done() and (url is None or j.api.url == url)
            ]
