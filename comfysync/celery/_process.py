"""One client per worker process: a :class:`~comfysync.ComfyApi` for one server, a
:class:`~comfysync.ComfyPool` for several.

Celery's prefork pool forks its child processes from the worker's main process. A client owns
threads and sockets, which a fork does not carry over (the child would inherit a copy of the
socket with no thread reading it). So the client is created lazily, in the process that runs
the first task, and a process that finds a client created by another process (its parent,
before a fork) drops the reference without closing it — closing would speak on the parent's
socket. Each process closes its own client when it shuts down (Celery's
``worker_process_shutdown`` in a prefork child, ``worker_shutdown`` in the main process of a
solo or threads pool).

Both kinds of client are driven through :class:`Running`, what a task needs of one prompt:
its future, the server it is on, its latest progress, and a way to cancel it.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from typing import Callable, Dict, Optional, Set

from attrs import define

from .._client import ComfyApi
from .._pool.pool import ComfyPool
from .._results import PromptResult
from .._types import WorkflowLike
from ..errors import PromptLostError
from ..events import Progress
from ._settings import API_KEYWORDS, Settings

__all__ = ["ProcessClient", "ProgressBoard", "Running", "Snapshot"]

log = logging.getLogger("comfysync.celery")


@define(frozen=True)
class Snapshot:
    """The latest ``progress`` event of one prompt: the node running and its bar."""

    node: Optional[str]
    value: float
    max: float

    @property
    def fraction(self) -> float:
        return max(0.0, min(1.0, self.value / self.max)) if self.max > 0 else 0.0


class ProgressBoard:
    """The latest progress of the prompts this process's tasks follow, fed by one
    subscription on the client (listener threads) and read by the task threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: Set[str] = set()
        self._latest: Dict[str, Snapshot] = {}

    def watch(self, prompt_id: str) -> None:
        """Start keeping the progress of ``prompt_id`` (before it is submitted: no event of
        it is missed)."""
        with self._lock:
            self._watched.add(prompt_id)

    def forget(self, prompt_id: str) -> None:
        with self._lock:
            self._watched.discard(prompt_id)
            self._latest.pop(prompt_id, None)

    def on_progress(self, event: Progress) -> None:
        prompt_id = event.prompt_id
        if prompt_id is None:
            return
        with self._lock:
            if prompt_id in self._watched:
                self._latest[prompt_id] = Snapshot(event.node, event.value, event.max)

    def latest(self, prompt_id: str) -> Optional[Snapshot]:
        with self._lock:
            return self._latest.get(prompt_id)


class Running:
    """A prompt a task follows: ``future`` resolves with its result or error; ``server()``
    is the URL of the server it is on (None while a pool still holds it); ``cancel()``
    dequeues or interrupts it on that server."""

    def __init__(
        self,
        prompt_id: str,
        future: Future[PromptResult],
        server: Callable[[], Optional[str]],
        cancel: Callable[[], object],
    ) -> None:
        self.prompt_id = prompt_id
        self.future = future
        self._server = server
        self._cancel = cancel

    def server(self) -> Optional[str]:
        return self._server()

    def cancel(self) -> None:
        self._cancel()


class _Client:
    """The process's client and the board its progress events feed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.board = ProgressBoard()
        options = dict(settings.client_options)
        self.api: Optional[ComfyApi] = None
        self.pool: Optional[ComfyPool] = None
        if settings.pool:
            self.pool = ComfyPool(list(settings.servers), **options)
            self.pool.on("progress", self._on_pool_progress)
        else:
            self.api = ComfyApi(str(settings.servers[0]), **options)
            self.api.on(Progress, self.board.on_progress)
        # ComfyApi keywords only, for the short-lived clients that cancel on a pool's server
        self._api_options = {k: v for k, v in options.items() if k in API_KEYWORDS}

    def _on_pool_progress(self, event: object, server: str) -> None:
        if isinstance(event, Progress):
            self.board.on_progress(event)

    def start(self, workflow: WorkflowLike, prompt_id: str, *, careful: bool = False) -> Running:
        """Submit ``workflow`` as ``prompt_id`` — or follow the prompt of that id when a
        server already has it (an earlier delivery of the same task submitted it): the
        client asks its server, the pool every server (all at once), one look each, before
        posting. ``careful`` (an earlier attempt may have posted it moments ago, when the
        server may still be validating it): first the careful lookup of ``attach``, which
        concludes "absent" only from two answers about a second apart."""
        if careful:
            self._look_carefully(prompt_id)
        if self.api is not None:
            api = self.api
            job = api.submit(workflow, prompt_id=prompt_id)
            return Running(prompt_id, job.future, lambda: api.url, job.cancel)
        assert self.pool is not None
        future = self.pool.submit(workflow, prompt_id=prompt_id)

        def cancel() -> None:
            if future.cancel():  # still waiting in the pool: never sent
                return
            job, server = future.job, future.server
            if job is not None:
                job.cancel()
            elif server is not None:  # its POST is under way: no job to cancel through yet
                self._cancel_on(server, prompt_id)

        return Running(prompt_id, future, lambda: future.server, cancel)

    def _look_carefully(self, prompt_id: str) -> None:
        """Find ``prompt_id`` with ``attach``: found → the client follows it from now on
        (the submit that comes next follows that job); surely absent → the submit posts it.
        A server that cannot be asked raises (the task is retried)."""
        try:
            if self.api is not None:
                self.api.attach(prompt_id)
            else:
                assert self.pool is not None
                self.pool.attach(prompt_id)
        except PromptLostError:
            log.info("prompt %s of an earlier attempt is on no server: posting it", prompt_id)
        else:
            log.info("prompt %s of an earlier attempt found: following it", prompt_id)

    def _cancel_on(self, server: str, prompt_id: str) -> None:
        """Dequeue, then interrupt, ``prompt_id`` on ``server`` over REST — in that order,
        so a prompt that starts in between is still interrupted; an interrupt naming a
        prompt that is not running is ignored by the server."""
        api = ComfyApi(server, **self._api_options)  # REST only: no socket, no thread
        try:
            api.delete_from_queue([prompt_id])
            api.interrupt(prompt_id)
        finally:
            api.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.api is not None:
            self.api.close()


class ProcessClient:
    """The lazily created client of the current process (see the module's docstring)."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: Optional[_Client] = None
        self._pid = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # the parent's client (threads gone, sockets shared) must never be used or closed
        self._lock = threading.Lock()
        self._client = None

    def get(self) -> _Client:
        """The process's client, created on first use (in this process)."""
        with self._lock:
            client = self._client
            if client is None or self._pid != os.getpid():
                client = _Client(self._settings())
                self._client, self._pid = client, os.getpid()
                log.info("comfysync client for process %d: %s", self._pid,
                         ", ".join(map(str, client.settings.servers)))
            return client

    def close(self) -> None:
        """Close the client of this process, if it made one. Idempotent."""
        with self._lock:
            client, self._client = self._client, None
            if client is None or self._pid != os.getpid():
                return
        log.info("closing the comfysync client of process %d", os.getpid())
        client.close()

    @property
    def created(self) -> bool:
        return self._client is not None and self._pid == os.getpid()
